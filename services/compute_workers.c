/* services/compute_workers.c — a session's processes: the setup process
 * (picos-worker) and its workers, their connections and frames, and how a
 * worker's end is told (docs/computations.md, "Inside a node";
 * proto/compute.proto, WorkerFrame; apps/worker/ is the other side).
 *
 * Start: w<i> directories and ctl.sock (owned by the session's uid when
 * the node is root), then picos-worker with the limits on its command
 * line; its `ready` line makes the session send `spawn I` for every
 * worker. Helper tasks, on the session's own worker thread, turn I/O into
 * messages to the session: one reads the setup process's stdout lines
 * (CN_T_LINE, CN_T_LINE_EOF), one accepts the workers' connections on
 * ctl.sock (CN_T_CONN, after the SO_PEERCRED check: the session's uid
 * when confined), and one per connection reads its frames (CN_T_FRAME
 * tagged with the connection's number, then CN_T_GONE). Only the session
 * task writes: the setup process's stdin and the workers' sockets. Every
 * frame is judged by pc__cw_check() (compute_wframe.c) against what the
 * session knows of its connection: a worker that breaks the protocol is
 * killed, and its job, if any, ends CRASHED with the violation.
 *
 * A worker's end is reported from the setup process's `exit` line, which
 * has its wait status and peak RSS: a worker the session killed ends its
 * job with the reason it was killed for (timeout, cancel, a protocol
 * violation); else SIGXCPU and SIGXFSZ are limits, a death by a signal
 * with a peak RSS at CN_MEMORY_SHARE of the address-space limit or more is
 * the memory limit, and anything else is a crash. A dead worker is
 * replaced (`spawn I`) unless workers died more than CN_CRASH_FACTOR ×
 * workers times in a row without a job ending normally: then the
 * computation fails here ("workers keep crashing").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "picos/log.h"
#include "picos/proc.h"
#include "picos/sock.h"
#include "picos/task.h"

#include "compute_node_int.h"

/* ---- the setup process and the workers -------------------------------------------- */

/* "VERB I" to the setup process. */
static void
cmd(ss_state *st, const char *verb, int i)
{
    char line[64];
    int n = snprintf(line, sizeof line, "%s %d\n", verb, i);

    if (st->proc && !st->proc_eof &&
        pc_proc_write(st->proc, line, (size_t)n, SS_WRITE_TIMEOUT, NULL) !=
            PC_OK)
        PC_LOG_WARN("compute",
                    "s-%" PRIu64 ": can't write '%.*s' to "
                    "picos-worker",
                    st->p.id, n - 1, line);
}

static void
conn_close(ss_state *st, ss_conn *c)
{
    for (ss_conn **pp = &st->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    if (c->worker >= 0 && st->w[c->worker].conn == c)
        st->w[c->worker].conn = NULL;
    pc_sock_close(&c->sock);
    free(c);
}

/* Kill worker i (its `exit` line reports it); its job, when it has one,
 * ends with `why` and `text`. */
void
pc__ss_kill_worker(ss_state *st, int i, int why, const char *text)
{
    ss_worker *w = &st->w[i];

    if (w->job && w->state == WS_BUSY && !w->job->kill_why) {
        w->job->kill_why = why;
        snprintf(w->job->kill_text, sizeof w->job->kill_text, "%s", text);
    } else if (!w->job && why == PICOS__V1__COMPUTE_WHY__WHY_CRASHED &&
               !w->violation[0]) {
        snprintf(w->violation, sizeof w->violation, "%s", text);
    }
    if (w->state == WS_DYING)
        return; /* its kill is on its way */
    if (w->state == WS_BUSY)
        pc__ss_busy_add(st, -1);
    w->state = WS_DYING;
    cmd(st, "kill", i);
}

/* Send worker i a frame; a worker that can't take it is killed. */
bool
pc__ss_send_frame(ss_state *st, int i, const uint8_t *buf, size_t len)
{
    ss_worker *w = &st->w[i];
    pc_err rc;
    char t[160];

    if (!w->conn)
        return false;
    if ((rc = pc_sock_send_msg(w->conn->sock, buf, len, SS_WRITE_TIMEOUT)) ==
        PC_OK)
        return true;
    snprintf(t, sizeof t, "worker crashed: can't write to it (%s)",
             pc_strerror(rc));
    pc__ss_kill_worker(st, i, PICOS__V1__COMPUTE_WHY__WHY_CRASHED, t);
    return false;
}

bool
pc__ss_send_wframe(ss_state *st, int i, const Picos__V1__WorkerFrame *f)
{
    size_t len = protobuf_c_message_get_packed_size(&f->base);
    uint8_t *buf = malloc(len ? len : 1);
    bool ok;

    if (!buf)
        return false;
    protobuf_c_message_pack(&f->base, buf);
    ok = pc__ss_send_frame(st, i, buf, len);
    free(buf);
    return ok;
}

void
pc__ss_quit_worker(ss_state *st, int i)
{
    Picos__V1__WorkerFrame q = PICOS__V1__WORKER_FRAME__INIT;

    q.op = PICOS__V1__WORKER_OP__W_QUIT;
    (void)pc__ss_send_wframe(st, i, &q);
}

/* How worker i's death with wait status `status` and peak RSS `rss_kb`
 * ends job j. */
static Picos__V1__ComputeWhy
classify(const ss_state *st, const ss_job *j, int status,
         unsigned long long rss_kb, char *t, size_t size)
{
    if (j && j->kill_why) {
        snprintf(t, size, "%s", j->kill_text);
        return (Picos__V1__ComputeWhy)j->kill_why;
    }
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char *abbrev = sigabbrev_np(sig);
        if (sig == SIGXCPU) {
            snprintf(t, size, "CPU time limit (%.0f s)", st->p.cpu_seconds);
            return PICOS__V1__COMPUTE_WHY__WHY_LIMIT;
        }
        if (sig == SIGXFSZ) {
            snprintf(t, size, "file size limit");
            return PICOS__V1__COMPUTE_WHY__WHY_LIMIT;
        }
        if ((double)rss_kb * 1024.0 >= CN_MEMORY_SHARE * (double)st->p.memory) {
            snprintf(t, size, "memory limit (%" PRIu64 " MiB)",
                     st->p.memory >> 20);
            return PICOS__V1__COMPUTE_WHY__WHY_LIMIT;
        }
        if (abbrev)
            snprintf(t, size, "worker crashed: SIG%s", abbrev);
        else
            snprintf(t, size, "worker crashed: signal %d", sig);
    } else {
        snprintf(t, size, "worker exited with status %d",
                 WIFEXITED(status) ? WEXITSTATUS(status) : status);
    }
    return PICOS__V1__COMPUTE_WHY__WHY_CRASHED;
}

/* `exit I PID STATUS MAXRSS_KB`. */
static void
on_exit_line(ss_state *st, int i, int status, unsigned long long rss_kb)
{
    ss_worker *w = &st->w[i];
    ss_job *j = w->state == WS_BUSY ||
                        (w->state == WS_DYING && w->job && w->job->worker == i)
                    ? w->job
                    : NULL;
    bool by_us = false, was_up = w->counted; /* its READY was seen */
    char t[240], lost[240];

    if (w->conn)
        conn_close(st, w->conn);
    if (w->counted) {
        pc__ss_add_u(&pc__compute_stats.workers, -1);
        w->counted = false;
        st->up--;
    }
    if (w->state == WS_BUSY)
        pc__ss_busy_add(st, -1);
    if (w->job && !j) { /* held for another worker's job */
        w->job = NULL;
    }
    if (st->phase >= PH_QUITTING) {
        w->state = WS_NONE;
        w->pid = 0;
        if (was_up)
            pc__ss_node_event(
                st, PICOS__V1__COMPUTE_NODE_EVENT_KIND__NODE_WORKER_CLOSED, i,
                WIFEXITED(status) && WEXITSTATUS(status) == 0
                    ? "closed"
                    : "stopped at the close");
        if (j) {
            pc__ss_unrun(st, j);
            pc__ss_job_done(st, j, PICOS__V1__COMPUTE_WHY__WHY_CANCELLED,
                            "the computation closed on this node");
        }
        return;
    }
    if (j) {
        Picos__V1__ComputeWhy why =
            classify(st, j, status, rss_kb, t, sizeof t);
        by_us = j->kill_why == PICOS__V1__COMPUTE_WHY__WHY_TIMEDOUT ||
                j->kill_why == PICOS__V1__COMPUTE_WHY__WHY_CANCELLED;
        snprintf(lost, sizeof lost, "%s", t);
        pc__ss_unrun(st, j);
        pc__ss_job_done(st, j, why, t);
    } else if (w->violation[0]) {
        snprintf(lost, sizeof lost, "%s", w->violation);
    } else {
        classify(st, NULL, status, rss_kb, lost, sizeof lost);
    }
    w->violation[0] = '\0';
    w->state = WS_NONE;
    w->pid = 0;
    if (!by_us) {
        atomic_fetch_add(&pc__compute_stats.workers_lost, 1);
        pc__ss_node_event(
            st, PICOS__V1__COMPUTE_NODE_EVENT_KIND__NODE_WORKER_LOST, i, lost);
        if (++st->crashes > CN_CRASH_FACTOR * st->p.cpus) {
            pc__ss_fail(st, "workers keep crashing");
            return;
        }
    }
    if (st->phase == PH_RUN || st->phase == PH_START) {
        w->state = WS_SPAWNING;
        cmd(st, "spawn", i);
    }
}

static void
on_line(ss_state *st, const char *line)
{
    int i, pid, status;
    unsigned long long rss;
    char word[16];

    if (sscanf(line, "%15s", word) != 1)
        return;
    if (!strcmp(word, "ready")) {
        if (st->setup_ready)
            return;
        st->setup_ready = true;
        st->phase = st->phase == PH_START ? PH_RUN : st->phase;
        for (i = 0; i < st->p.cpus; i++) {
            st->w[i].state = WS_SPAWNING;
            cmd(st, "spawn", i);
        }
    } else if (!strcmp(word, "failed")) {
        const char *t = line + 6;
        while (*t == ' ')
            t++;
        pc__ss_fail(st, *t ? t : "picos-worker failed");
    } else if (!strcmp(word, "spawned")) {
        if (sscanf(line, "spawned %d %d", &i, &pid) == 2 && i >= 0 &&
            i < st->p.cpus)
            st->w[i].pid = pid;
    } else if (!strcmp(word, "exit")) {
        if (sscanf(line, "exit %d %d %d %llu", &i, &pid, &status, &rss) == 4 &&
            i >= 0 && i < st->p.cpus)
            on_exit_line(st, i, status, rss);
    } else {
        PC_LOG_WARN("compute", "s-%" PRIu64 ": picos-worker said '%.80s'",
                    st->p.id, line);
    }
}

void
pc__ss_on_line(ss_state *st, const pc_msg *m)
{
    size_t len = 0;
    const char *d = pc_msg_data(m, &len);
    char line[CN_LINE_MAX + 1];

    if (len > CN_LINE_MAX)
        len = CN_LINE_MAX;
    memcpy(line, d, len);
    line[len] = '\0';
    on_line(st, line);
}

static ss_conn *
conn_find(ss_state *st, int id)
{
    for (ss_conn *c = st->conns; c; c = c->next)
        if (c->id == id)
            return c;
    return NULL;
}

static void
violation(ss_state *st, ss_conn *c, const char *why)
{
    char t[240];

    snprintf(t, sizeof t, "protocol violation: %s", why);
    if (c->worker < 0) {
        PC_LOG_WARN("compute", "s-%" PRIu64 ": a worker connection: %s",
                    st->p.id, t);
        conn_close(st, c);
        return;
    }
    pc__ss_kill_worker(st, c->worker, PICOS__V1__COMPUTE_WHY__WHY_CRASHED, t);
}

static void
on_ready(ss_state *st, int i, Picos__V1__WorkerFrame *f)
{
    ss_worker *w = &st->w[i];

    w->state = WS_IDLE;
    w->counted = true;
    st->up++;
    pc__ss_add_u(&pc__compute_stats.workers, 1);
    if (!st->ready_sent) {
        Picos__V1__ComputeReady r = PICOS__V1__COMPUTE_READY__INIT;
        st->ready_sent = 1;
        if (f->n_jobs && (st->jobs = calloc(f->n_jobs, sizeof *st->jobs))) {
            for (size_t k = 0; k < f->n_jobs; k++)
                if ((st->jobs[st->njobs] = strdup(f->jobs[k])))
                    st->njobs++;
        }
        r.workers = (uint32_t)st->up;
        r.n_jobs = st->njobs;
        r.jobs = st->jobs;
        r.name = f->name;
        r.version = f->version;
        if (!st->client_gone)
            (void)pc__cp_send(st->p.client, CP_T_READY, &r.base);
        PC_LOG_INFO("compute", "s-%" PRIu64 ": %s v%u ready", st->p.id, f->name,
                    (unsigned)f->version);
    } else {
        pc__ss_node_event(
            st, PICOS__V1__COMPUTE_NODE_EVENT_KIND__NODE_WORKER_UP, i, "");
    }
}

void
pc__ss_on_frame(ss_state *st, const pc_msg *m)
{
    size_t len = 0;
    const uint8_t *d = pc_msg_data(m, &len);
    Picos__V1__WorkerFrame *f;
    pc__cw_view v = {.workers = st->p.cpus, .worker = -1};
    ss_worker *w = NULL;
    ss_conn *c;
    int32_t id;
    char why[200];

    if (len < 4)
        return;
    memcpy(&id, d, 4);
    if (!(c = conn_find(st, id)))
        return;
    v.peer_pid = c->pid;
    if (c->worker >= 0) {
        w = &st->w[c->worker];
        if (w->state == WS_DYING)
            return; /* killed: what it says no longer counts */
        v.worker = c->worker;
        v.ready = w->state >= WS_IDLE;
        if (w->state == WS_BUSY && w->job) {
            v.running = true;
            v.job_id = w->job->id;
            v.files_out = w->job->files_out;
            v.nfiles_out = w->job->nfiles_out;
        }
    }
    if (!pc__cw_check(&v, d + 4, len - 4, &f, why, sizeof why)) {
        violation(st, c, why);
        return;
    }
    switch (f->op) {
    case PICOS__V1__WORKER_OP__W_HELLO:
        if (st->w[f->worker].conn || (st->w[f->worker].state != WS_SPAWNING &&
                                      st->w[f->worker].state != WS_NONE)) {
            snprintf(why, sizeof why, "worker %d is connected already",
                     (int)f->worker);
            picos__v1__worker_frame__free_unpacked(f, NULL);
            violation(st, c, why);
            return;
        }
        c->worker = f->worker;
        st->w[f->worker].conn = c;
        st->w[f->worker].state = WS_UP;
        if (!st->w[f->worker].pid)
            st->w[f->worker].pid = (pid_t)f->pid;
        break;
    case PICOS__V1__WORKER_OP__W_READY:
        if (st->phase >= PH_CLOSING) {
            w->state = WS_IDLE;
            pc__ss_quit_worker(st, c->worker);
            break;
        }
        on_ready(st, c->worker, f);
        break;
    case PICOS__V1__WORKER_OP__W_SETUP_FAILED: {
        char t[320];
        snprintf(t, sizeof t, "%s",
                 f->text[0] ? f->text : "worker_setup failed");
        pc__ss_fail(st, t);
        break;
    }
    case PICOS__V1__WORKER_OP__W_FROM_JOB: {
        Picos__V1__ComputeFromJob fj = PICOS__V1__COMPUTE_FROM_JOB__INIT;
        pc__ss_flush_events(st);
        fj.id = w->job->id;
        fj.attempt = w->job->attempt;
        fj.data = f->data;
        if (!st->client_gone)
            (void)pc__cp_send(st->p.client, CP_T_FROM_JOB, &fj.base);
        break;
    }
    case PICOS__V1__WORKER_OP__W_DONE:
        st->crashes = 0;
        pc__ss_job_result(st, w->job, f);
        break;
    default:
        break;
    }
    picos__v1__worker_frame__free_unpacked(f, NULL);
}

void
pc__ss_on_gone(ss_state *st, const pc_msg *m)
{
    size_t len = 0;
    const uint8_t *d = pc_msg_data(m, &len);
    int32_t id, rc;
    ss_conn *c;

    if (len != 8)
        return;
    memcpy(&id, d, 4);
    memcpy(&rc, d + 4, 4);
    if (!(c = conn_find(st, id)))
        return;
    if (c->worker >= 0 && rc == PC_ETOOBIG) {
        violation(st, c, "oversized frame");
        return;
    }
    /* EOF, even inside a frame: its process is ending, and its `exit`
     * line will say how */
    conn_close(st, c);
}

/* ---- helper tasks ------------------------------------------------------------------ */

typedef struct line_arg {
    pc_ref session;
    pc_proc *proc;
} line_arg;

static pc_msg *
line_task(void *arg)
{
    line_arg a;
    bool skip = false;

    memcpy(&a, arg, sizeof a);
    free(arg);
    for (;;) {
        char *line = NULL;
        size_t len = 0;
        pc_err rc = pc_proc_readline(a.proc, &line, &len, CN_LINE_MAX, -1);
        if (rc == PC_OK || rc == PC_ETOOBIG) {
            bool whole = rc == PC_OK && len && line[len - 1] == '\n';
            if (!skip) {
                while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
                    line[--len] = '\0';
                (void)pc_send_data(a.session, CN_T_LINE, line, len);
            }
            skip = !whole && rc == PC_ETOOBIG;
            if (whole)
                skip = false;
            free(line);
            continue;
        }
        free(line);
        break;
    }
    (void)pc_send_data(a.session, CN_T_LINE_EOF, NULL, 0);
    return NULL;
}

typedef struct conn_msg {
    pc_sock *sock;
    pid_t pid;
} conn_msg;

typedef struct acc_arg {
    pc_ref session;
    pc_sock *listener; /* a reference of its own */
    bool confine;
    uid_t uid;
    uint64_t id;
} acc_arg;

static pc_msg *
accept_task(void *arg)
{
    acc_arg a;

    memcpy(&a, arg, sizeof a);
    free(arg);
    for (;;) {
        pc_sock *c = NULL;
        struct ucred cr;
        socklen_t crl = sizeof cr;
        conn_msg cm;
        pc_err rc = pc_sock_accept(a.listener, &c, -1);

        if (rc == PC_ECLOSED)
            break;
        if (rc != PC_OK) {
            if (pc_sleep(0.05) == PC_OK)
                continue;
            break;
        }
        memset(&cr, 0, sizeof cr);
        if (getsockopt(pc_sock_fd(c), SOL_SOCKET, SO_PEERCRED, &cr, &crl) !=
                0 ||
            (a.confine && cr.uid != a.uid)) {
            PC_LOG_WARN("compute",
                        "s-%" PRIu64 ": a connection to ctl.sock from uid %u "
                        "(not the session's %u): closed",
                        a.id, (unsigned)cr.uid, (unsigned)a.uid);
            pc_sock_close(&c);
            continue;
        }
        cm.sock = c;
        cm.pid = cr.pid;
        if (pc_send_data(a.session, CN_T_CONN, &cm, sizeof cm) != PC_OK)
            pc_sock_close(&c);
    }
    pc_sock_release(&a.listener);
    return NULL;
}

typedef struct rd_arg {
    pc_ref session;
    int32_t id;
    pc_sock *sock; /* a reference of its own */
} rd_arg;

static pc_msg *
reader_task(void *arg)
{
    rd_arg a;
    int32_t rc32;
    uint8_t gone[8];

    memcpy(&a, arg, sizeof a);
    free(arg);
    for (;;) {
        void *buf = NULL;
        size_t len = 0;
        pc_msg *m = NULL;
        pc_err rc = pc_sock_recv_msg(a.sock, CP_WFRAME_MAX, &buf, &len, -1);

        if (rc != PC_OK) {
            rc32 = rc;
            break;
        }
        {
            uint8_t *t = malloc(4 + len);
            pc_err mrc = t ? PC_OK : PC_ENOMEM;
            if (t) {
                memcpy(t, &a.id, 4);
                memcpy(t + 4, buf, len);
                mrc = pc_msg_new(&m, CN_T_FRAME, t, 4 + len);
                free(t);
            }
            free(buf);
            if (mrc != PC_OK) {
                rc32 = PC_ENOMEM;
                break;
            }
        }
        if (pc_send(a.session, &m) != PC_OK) {
            pc_msg_free(&m);
            rc32 = PC_ECLOSED;
            break;
        }
    }
    memcpy(gone, &a.id, 4);
    memcpy(gone + 4, &rc32, 4);
    (void)pc_send_data(a.session, CN_T_GONE, gone, sizeof gone);
    pc_sock_release(&a.sock);
    return NULL;
}

void
pc__ss_on_conn(ss_state *st, const pc_msg *m)
{
    pc_spawn_opts so = {.flags = PC_TASK_DAEMON, .name = "compute.wreader"};
    conn_msg cm;
    ss_conn *c;
    rd_arg *a;

    if (!pc__cn_value(m, &cm, sizeof cm))
        return;
    if (st->phase >= PH_END || !(c = calloc(1, sizeof *c)) ||
        !(a = malloc(sizeof *a))) {
        if (st->phase < PH_END)
            free(c);
        pc_sock_close(&cm.sock);
        return;
    }
    c->id = ++st->next_conn;
    c->sock = cm.sock;
    c->pid = cm.pid;
    c->worker = -1;
    a->session = pc_self();
    a->id = c->id;
    a->sock = pc_sock_retain(c->sock);
    if (pc_spawn(reader_task, a, &so, NULL) != PC_OK) {
        pc_sock_release(&a->sock);
        free(a);
        pc_sock_close(&c->sock);
        free(c);
        return;
    }
    c->next = st->conns;
    st->conns = c;
}

/* ---- start -------------------------------------------------------------------------- */

static bool
own(ss_state *st, const char *path)
{
    char t[4600];

    if (!st->p.confine || chown(path, st->p.uid, st->p.gid) == 0)
        return true;
    snprintf(t, sizeof t, "can't give %s to uid %u: %s", path,
             (unsigned)st->p.uid, strerror(errno));
    pc__ss_fail(st, t);
    return false;
}

bool
pc__ss_start_workers(ss_state *st)
{
    pc_proc_opts po = {.flags = PC_PROC_STDIN | PC_PROC_STDOUT};
    pc_spawn_opts so = {.flags = PC_TASK_DAEMON | PC_TASK_JOINABLE,
                        .name = "compute.lines"};
    pc_spawn_opts ao = {.flags = PC_TASK_DAEMON | PC_TASK_JOINABLE,
                        .name = "compute.accept"};
    char path[4500], t[4700];
    char a_n[16], a_uid[16], a_gid[16], a_mem[24], a_cpu[24], a_nproc[16],
        a_fsize[24];
    char *argv[32];
    line_arg *la;
    acc_arg *aa;
    int k = 0, e;
    pc_err rc;

    st->phase = PH_START;
    for (int i = 0; i < st->p.cpus; i++) {
        snprintf(path, sizeof path, "%s/w%d", st->dir, i);
        if ((e = pc__cst_mkdir(path, 0700))) {
            snprintf(t, sizeof t, "can't make %s: %s", path, strerror(e));
            pc__ss_fail(st, t);
            return false;
        }
        if (!own(st, path))
            return false;
    }
    snprintf(path, sizeof path, "%s/ctl.sock", st->dir);
    if ((rc = pc_sock_unix_listen(&st->listener, path, 0)) != PC_OK) {
        snprintf(t, sizeof t, "can't listen on %s: %s", path,
                 rc == PC_EINVAL ? "path too long for a Unix socket"
                                 : pc_strerror(rc));
        pc__ss_fail(st, t);
        return false;
    }
    if (chmod(path, 0600) != 0 || !own(st, path)) {
        if (!st->failed) {
            snprintf(t, sizeof t, "can't chmod %s: %s", path, strerror(errno));
            pc__ss_fail(st, t);
        }
        return false;
    }
    if (!(aa = malloc(sizeof *aa))) {
        pc__ss_fail(st, "out of memory");
        return false;
    }
    aa->session = pc_self();
    aa->listener = pc_sock_retain(st->listener);
    aa->confine = st->p.confine;
    aa->uid = st->p.uid;
    aa->id = st->p.id;
    if (pc_spawn(accept_task, aa, &ao, &st->acceptor) != PC_OK) {
        pc_sock_release(&aa->listener);
        free(aa);
        pc__ss_fail(st, "can't start the acceptor task");
        return false;
    }
    snprintf(a_n, sizeof a_n, "%d", st->p.cpus);
    snprintf(a_uid, sizeof a_uid, "%u", (unsigned)st->p.uid);
    snprintf(a_gid, sizeof a_gid, "%u", (unsigned)st->p.gid);
    snprintf(a_mem, sizeof a_mem, "%" PRIu64, st->p.memory);
    snprintf(a_cpu, sizeof a_cpu, "%.0f", st->p.cpu_seconds);
    snprintf(a_nproc, sizeof a_nproc, "%d", 4 * st->p.cpus);
    snprintf(a_fsize, sizeof a_fsize, "%llu", 1ull << 30);
    argv[k++] = st->p.worker;
    argv[k++] = "--library";
    argv[k++] = st->files[0].path;
    argv[k++] = "--root";
    argv[k++] = st->dir;
    argv[k++] = "--workers";
    argv[k++] = a_n;
    argv[k++] = "--uid";
    argv[k++] = a_uid;
    argv[k++] = "--gid";
    argv[k++] = a_gid;
    argv[k++] = "--memory";
    argv[k++] = a_mem;
    argv[k++] = "--cpu-seconds";
    argv[k++] = a_cpu;
    argv[k++] = "--nofile";
    argv[k++] = "256";
    argv[k++] = "--nproc";
    argv[k++] = a_nproc;
    argv[k++] = "--fsize";
    argv[k++] = a_fsize;
    argv[k++] = "--seccomp";
    argv[k++] = st->p.seccomp ? "on" : "off";
    argv[k++] = "--confine";
    argv[k++] = st->p.confine ? "on" : "off";
    argv[k] = NULL;
    if ((rc = pc_proc_spawn(&st->proc, argv, &po)) != PC_OK) {
        snprintf(t, sizeof t, "can't start %s: %s", st->p.worker,
                 pc_strerror(rc));
        pc__ss_fail(st, t);
        return false;
    }
    if (!(la = malloc(sizeof *la))) {
        pc__ss_fail(st, "out of memory");
        return false;
    }
    la->session = pc_self();
    la->proc = st->proc;
    if (pc_spawn(line_task, la, &so, &st->line_reader) != PC_OK) {
        free(la);
        pc__ss_fail(st, "can't start the line reader task");
        return false;
    }
    return true;
}

void
pc__ss_workers_fini(ss_state *st, bool can_wait)
{
    if (st->listener)
        pc_sock_close(&st->listener);
    while (st->conns)
        conn_close(st, st->conns);
    if (st->proc) {
        int status;
        if (can_wait) {
            if (!st->proc_eof)
                (void)pc_proc_write(st->proc, "quit\n", 5, 1.0, NULL);
            (void)pc_proc_close_stdin(st->proc);
            if (pc_proc_wait(st->proc, 5.0, &status) != PC_OK) {
                PC_LOG_WARN("compute",
                            "s-%" PRIu64 ": picos-worker did not "
                            "quit: killed",
                            st->p.id);
                (void)pc_proc_kill(st->proc, SIGKILL);
                (void)pc_proc_wait(st->proc, 5.0, &status);
            }
            if (pc_task_join(st->line_reader, 2.0, NULL) == PC_ETIMEDOUT)
                (void)pc_task_terminate(st->line_reader);
        } else {
            (void)pc_proc_kill(st->proc, SIGKILL);
            (void)pc_task_terminate(st->line_reader);
        }
        pc_proc_free(&st->proc);
    }
    if (!pc_ref_is_nil(st->acceptor)) {
        if (!can_wait || pc_task_join(st->acceptor, 2.0, NULL) != PC_OK)
            (void)pc_task_terminate(st->acceptor);
        st->acceptor = (pc_ref){0};
    }
}
