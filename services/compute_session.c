/* services/compute_session.c — one computation on a compute node: its
 * files, its setup process and workers, its jobs (docs/computations.md,
 * "Inside a node"; proto/compute.proto, both conversations).
 *
 * One task per session owns everything of it — the upload, the queue, the
 * workers' states, the client's events — so nothing takes a lock. Helper
 * tasks, on the session's own worker thread, turn I/O into messages to it:
 * one reads the setup process's stdout lines (CN_T_LINE, CN_T_LINE_EOF),
 * one accepts the workers' connections on ctl.sock (CN_T_CONN, after the
 * SO_PEERCRED check), and one per connection reads its frames (CN_T_FRAME
 * tagged with the connection's number, then CN_T_GONE). Only the session
 * task writes: the setup process's stdin and the workers' sockets.
 *
 * The session monitors the client's task: its DOWN (the client ended, or
 * its node was lost) ends the session at once. The life of a session:
 *
 *   upload   ComputeChunks in order per file (the offset must be what was
 *            received), each acknowledged; the library goes to
 *            lib/<sha256>.so (through a temporary name, renamed once its
 *            hash matched), data files to data/ (0444); every file is
 *            hashed as it comes and checked against the Reserve's hash;
 *   start    w<i> directories and ctl.sock (owned by the session's uid
 *            when the node is root), then picos-worker; its `ready` line
 *            makes the session send `spawn I` for every worker;
 *   run      the first W_READY sends ComputeReady (the jobs list), the
 *            others NODE_WORKER_UP; queued jobs go FIFO to idle workers
 *            (a job of k CPUs waits for k idle ones and holds k-1 of them
 *            while it runs); JOB_STARTED and JOB_DONE events are batched
 *            into one ComputeEvents per wake of the session (bounded to
 *            one link message); ComputeFromJob goes at once, after the
 *            events before it;
 *   close    queued jobs end CANCELLED, running ones get the grace, then
 *            their workers are killed (CANCELLED); W_QUIT to the workers,
 *            `quit` to the setup process, reap it, remove s-<id>/, send
 *            NODE_CLOSED — the last message.
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
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "picos/computation.h"
#include "picos/log.h"
#include "picos/monitor.h"
#include "picos/node.h"
#include "picos/proc.h"
#include "picos/sock.h"
#include "picos/task.h"

#include "compute_node_int.h"

#define QUEUE_MAX 65536
#define WRITE_TIMEOUT 5.0
#define QUIT_WAIT 2.0
#define DRAIN_MAX 256

enum { PH_UPLOAD, PH_START, PH_RUN, PH_CLOSING, PH_QUITTING, PH_END };

enum {
    WS_NONE,     /* not spawned (yet, or again) */
    WS_SPAWNING, /* `spawn I` sent */
    WS_UP,       /* connected, W_HELLO seen */
    WS_IDLE,     /* W_READY seen, no job */
    WS_BUSY,     /* runs a job */
    WS_HELD,     /* held for a job of several CPUs */
    WS_DYING,    /* killed, or its connection ended: its `exit` to come */
};

typedef struct cs_msg {
    uint8_t *data;
    size_t len;
    struct cs_msg *next;
} cs_msg;

typedef struct cs_job {
    uint64_t id;
    uint32_t attempt;
    char *fn;
    int cpus;
    int64_t timeout_ms;
    char **files_out;
    size_t nfiles_out;
    uint8_t *packed; /* the ComputeJob as the client sent it */
    size_t plen;
    cs_msg *to_job, *to_job_tail; /* sent before it ran */
    int worker;                   /* -1 while queued */
    double deadline;              /* pc_now(); < 0: none */
    uint64_t started_us;
    int kill_why; /* WHY_OK: not killed by the session */
    char kill_text[200];
    struct cs_job *next;
} cs_job;

typedef struct cs_conn {
    int id;
    pc_sock *sock;
    pid_t pid;
    int worker; /* -1 before W_HELLO */
    struct cs_conn *next;
} cs_conn;

typedef struct cs_worker {
    int state;
    pid_t pid;
    cs_conn *conn;
    cs_job *job;  /* running it (BUSY) or held by it (HELD) */
    bool counted; /* in pc__compute_stats.workers */
    /* killed by the session for a protocol violation without a job */
    char violation[200];
} cs_worker;

typedef struct cs_file {
    int fd;
    uint64_t got;
    pc__cst_sha sha;
    bool done;
    char path[4600], tmp[4600];
} cs_file;

typedef struct cs_ev {
    Picos__V1__ComputeJobEvent *ev;
    bool unpacked; /* protobuf-c's (a W_DONE's), else made by ev_new() */
} cs_ev;

typedef struct cs_state {
    pc__cs_params p;
    char dir[4200];
    int phase;
    bool client_susp, node_susp, client_gone, failed;
    double close_at; /* end of the grace; < 0: none */
    double quit_at;
    /* upload */
    cs_file *files; /* 1 + p.nfiles: the library first */
    /* processes */
    pc_proc *proc;
    pc_ref line_reader, acceptor;
    pc_sock *listener;
    bool setup_ready, proc_eof;
    cs_worker *w;
    cs_conn *conns;
    int next_conn;
    int ready_sent;
    int crashes; /* in a row */
    int up;      /* workers ready */
    char **jobs; /* the library's job names (W_READY) */
    size_t njobs;
    /* jobs */
    cs_job *qhead, *qtail, *running;
    int nqueued;
    /* events to send */
    cs_ev *evs;
    size_t nevs, evcap, evbytes;
    /* counters this session added to pc__compute_stats */
    int c_busy;
} cs_state;

/* ---- small things ---------------------------------------------------------------- */

static void
add_u(atomic_uint *c, int d)
{
    if (d > 0)
        atomic_fetch_add(c, (unsigned)d);
    else if (d < 0)
        atomic_fetch_sub(c, (unsigned)-d);
}

static void
queued_add(cs_state *st, int d)
{
    st->nqueued += d;
    add_u(&pc__compute_stats.jobs_queued, d);
}

static void
busy_add(cs_state *st, int d)
{
    st->c_busy += d;
    add_u(&pc__compute_stats.workers_busy, d);
}

/* One line, at most 255 bytes, in place. */
static void
one_line(char *s)
{
    size_t n;

    if (!s || !*s) /* maybe protobuf-c's read-only "" */
        return;
    n = strnlen(s, 255);
    s[n] = '\0';
    for (char *p = s; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
}

static void
send_node_event(cs_state *st, Picos__V1__ComputeNodeEventKind kind, int worker,
                const char *text)
{
    Picos__V1__ComputeNodeEvent e = PICOS__V1__COMPUTE_NODE_EVENT__INIT;

    if (st->client_gone)
        return;
    e.kind = kind;
    e.worker = worker;
    e.text = (char *)(text ? text : "");
    (void)pc__cn_send_pb(st->p.client, CP_T_NODE_EVENT, &e.base);
}

static void
job_free(cs_job *j)
{
    if (!j)
        return;
    free(j->fn);
    for (size_t i = 0; i < j->nfiles_out; i++)
        free(j->files_out[i]);
    free(j->files_out);
    free(j->packed);
    while (j->to_job) {
        cs_msg *m = j->to_job;
        j->to_job = m->next;
        free(m->data);
        free(m);
    }
    free(j);
}

/* ---- events ---------------------------------------------------------------------- */

static void
ev_free(cs_ev *e)
{
    if (e->unpacked) {
        picos__v1__compute_job_event__free_unpacked(e->ev, NULL);
    } else if (e->ev) {
        free(e->ev->error);
        free(e->ev);
    }
    e->ev = NULL;
}

static void
flush_events(cs_state *st)
{
    Picos__V1__ComputeEvents b = PICOS__V1__COMPUTE_EVENTS__INIT;
    Picos__V1__ComputeJobEvent **v;

    if (!st->nevs)
        return;
    if (!st->client_gone && (v = malloc(st->nevs * sizeof *v))) {
        for (size_t i = 0; i < st->nevs; i++)
            v[i] = st->evs[i].ev;
        b.n_events = st->nevs;
        b.events = v;
        if (pc__cn_send_pb(st->p.client, CP_T_EVENTS, &b.base) != PC_OK)
            PC_LOG_WARN("compute", "s-%" PRIu64 ": %zu events not sent",
                        st->p.id, st->nevs);
        free(v);
    }
    for (size_t i = 0; i < st->nevs; i++)
        ev_free(&st->evs[i]);
    st->nevs = 0;
    st->evbytes = 0;
}

/* Queue event ev (protobuf-c's when `unpacked`) for the next batch. */
static void
ev_push(cs_state *st, Picos__V1__ComputeJobEvent *ev, bool unpacked)
{
    cs_ev e = {ev, unpacked};
    size_t sz = protobuf_c_message_get_packed_size(&ev->base) + 16;

    if (st->nevs && st->evbytes + sz > CN_EVENTS_MAX)
        flush_events(st);
    if (st->nevs == st->evcap) {
        size_t cap = st->evcap ? 2 * st->evcap : 16;
        cs_ev *n = realloc(st->evs, cap * sizeof *n);
        if (!n) {
            ev_free(&e);
            return;
        }
        st->evs = n;
        st->evcap = cap;
    }
    st->evs[st->nevs++] = e;
    st->evbytes += sz;
}

/* A new event of ours about j. */
static Picos__V1__ComputeJobEvent *
ev_new(const cs_job *j, Picos__V1__ComputeEventKind kind)
{
    Picos__V1__ComputeJobEvent *e = malloc(sizeof *e);

    if (!e)
        return NULL;
    picos__v1__compute_job_event__init(e);
    e->id = j->id;
    e->attempt = j->attempt;
    e->kind = kind;
    e->worker = j->worker;
    e->started_us = j->started_us;
    e->error = NULL;
    return e;
}

/* The end of job j (taken out of every list already; freed here). */
static void
job_done(cs_state *st, cs_job *j, Picos__V1__ComputeWhy why, const char *error)
{
    Picos__V1__ComputeJobEvent *e =
        ev_new(j, PICOS__V1__COMPUTE_EVENT_KIND__JOB_DONE);

    atomic_fetch_add(&pc__compute_stats.jobs_done, 1);
    if (why != PICOS__V1__COMPUTE_WHY__WHY_OK)
        atomic_fetch_add(&pc__compute_stats.jobs_failed, 1);
    if (e) {
        e->why = why;
        e->ended_us = pc_wall_us();
        if (!(e->error = strdup(error ? error : ""))) {
            free(e);
            e = NULL;
        } else {
            one_line(e->error);
            ev_push(st, e, false);
        }
    }
    job_free(j);
}

/* ---- the setup process and the workers -------------------------------------------- */

/* "VERB I" to the setup process. */
static void
cmd(cs_state *st, const char *verb, int i)
{
    char line[64];
    int n = snprintf(line, sizeof line, "%s %d\n", verb, i);

    if (st->proc && !st->proc_eof &&
        pc_proc_write(st->proc, line, (size_t)n, WRITE_TIMEOUT, NULL) != PC_OK)
        PC_LOG_WARN("compute",
                    "s-%" PRIu64 ": can't write '%.*s' to "
                    "picos-worker",
                    st->p.id, n - 1, line);
}

static void
conn_close(cs_state *st, cs_conn *c)
{
    for (cs_conn **pp = &st->conns; *pp; pp = &(*pp)->next)
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
static void
kill_worker(cs_state *st, int i, int why, const char *text)
{
    cs_worker *w = &st->w[i];

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
        busy_add(st, -1);
    w->state = WS_DYING;
    cmd(st, "kill", i);
}

/* Send worker i a frame; a worker that can't take it is killed. */
static bool
send_frame(cs_state *st, int i, const uint8_t *buf, size_t len)
{
    cs_worker *w = &st->w[i];
    pc_err rc;
    char t[160];

    if (!w->conn)
        return false;
    if ((rc = pc_sock_send_msg(w->conn->sock, buf, len, WRITE_TIMEOUT)) ==
        PC_OK)
        return true;
    snprintf(t, sizeof t, "worker crashed: can't write to it (%s)",
             pc_strerror(rc));
    kill_worker(st, i, PICOS__V1__COMPUTE_WHY__WHY_CRASHED, t);
    return false;
}

static bool
send_wframe(cs_state *st, int i, const Picos__V1__WorkerFrame *f)
{
    size_t len = protobuf_c_message_get_packed_size(&f->base);
    uint8_t *buf = malloc(len ? len : 1);
    bool ok;

    if (!buf)
        return false;
    protobuf_c_message_pack(&f->base, buf);
    ok = send_frame(st, i, buf, len);
    free(buf);
    return ok;
}

static void
to_job(cs_state *st, cs_job *j, const uint8_t *data, size_t len)
{
    Picos__V1__WorkerFrame f = PICOS__V1__WORKER_FRAME__INIT;

    f.op = PICOS__V1__WORKER_OP__W_TO_JOB;
    f.worker = j->worker;
    f.job_id = j->id;
    f.data.data = (uint8_t *)data;
    f.data.len = len;
    (void)send_wframe(st, j->worker, &f);
}

/* W_RUN: the frame's op and worker, then field 4 (job) as the client's
 * bytes of it — fields may come in any order. */
static bool
run_on(cs_state *st, cs_job *j, int i)
{
    Picos__V1__WorkerFrame f = PICOS__V1__WORKER_FRAME__INIT;
    size_t head, n;
    uint8_t *buf;
    bool ok;

    f.op = PICOS__V1__WORKER_OP__W_RUN;
    f.worker = i;
    head = protobuf_c_message_get_packed_size(&f.base);
    if (!(buf = malloc(head + 11 + j->plen)))
        return false;
    protobuf_c_message_pack(&f.base, buf);
    n = head;
    buf[n++] = (4 << 3) | 2;
    for (uint64_t v = j->plen;; v >>= 7) {
        if (v < 0x80) {
            buf[n++] = (uint8_t)v;
            break;
        }
        buf[n++] = (uint8_t)(v | 0x80);
    }
    memcpy(buf + n, j->packed, j->plen);
    ok = send_frame(st, i, buf, n + j->plen);
    free(buf);
    return ok;
}

static bool
known_fn(const cs_state *st, const char *fn)
{
    for (size_t i = 0; i < st->njobs; i++)
        if (!strcmp(st->jobs[i], fn))
            return true;
    return false;
}

static int
idle_count(const cs_state *st)
{
    int n = 0;
    for (int i = 0; i < st->p.cpus; i++)
        n += st->w[i].state == WS_IDLE;
    return n;
}

/* Start queued jobs while idle workers can take them (FIFO). */
static void
dispatch(cs_state *st)
{
    while (st->qhead && st->phase == PH_RUN && !st->client_susp &&
           !st->node_susp) {
        cs_job *j = st->qhead;
        int k = j->cpus, first = -1;
        Picos__V1__ComputeJobEvent *e;

        if (st->njobs && !known_fn(st, j->fn)) {
            char t[320];
            snprintf(t, sizeof t, "unknown function '%.64s'", j->fn);
            st->qhead = j->next;
            queued_add(st, -1);
            j->next = NULL;
            job_done(st, j, PICOS__V1__COMPUTE_WHY__WHY_REFUSED, t);
            continue;
        }
        if (idle_count(st) < k)
            break;
        if (!(st->qhead = j->next))
            st->qtail = NULL;
        queued_add(st, -1);
        for (int i = 0; i < st->p.cpus && k > 0; i++) {
            if (st->w[i].state != WS_IDLE)
                continue;
            st->w[i].job = j;
            if (first < 0) {
                first = i;
                st->w[i].state = WS_BUSY;
                busy_add(st, 1);
            } else {
                st->w[i].state = WS_HELD;
            }
            k--;
        }
        j->worker = first;
        j->started_us = pc_wall_us();
        j->deadline = j->timeout_ms > 0 ? pc_now() + j->timeout_ms / 1e3 : -1;
        j->next = st->running;
        st->running = j;
        if ((e = ev_new(j, PICOS__V1__COMPUTE_EVENT_KIND__JOB_STARTED)))
            ev_push(st, e, false);
        if (run_on(st, j, first))
            while (j->to_job) {
                cs_msg *m = j->to_job;
                j->to_job = m->next;
                to_job(st, j, m->data, m->len);
                free(m->data);
                free(m);
            }
    }
}

/* Take j out of the running list and give its workers back. */
static void
unrun(cs_state *st, cs_job *j)
{
    for (cs_job **pp = &st->running; *pp; pp = &(*pp)->next)
        if (*pp == j) {
            *pp = j->next;
            break;
        }
    j->next = NULL;
    for (int i = 0; i < st->p.cpus; i++) {
        cs_worker *w = &st->w[i];
        if (w->job != j)
            continue;
        w->job = NULL;
        if (w->state == WS_BUSY) {
            busy_add(st, -1);
            w->state = WS_IDLE;
        } else if (w->state == WS_HELD) {
            w->state = WS_IDLE;
        }
    }
}

/* The computation can't go on here: tell the client, close at once. */
static void
fail(cs_state *st, const char *text)
{
    Picos__V1__ComputeFailed f = PICOS__V1__COMPUTE_FAILED__INIT;
    char t[512];

    if (st->failed || st->phase == PH_END)
        return;
    st->failed = true;
    snprintf(t, sizeof t, "%s", text);
    one_line(t);
    PC_LOG_WARN("compute", "s-%" PRIu64 ": %s", st->p.id, t);
    flush_events(st);
    if (!st->client_gone) {
        f.text = t;
        (void)pc__cn_send_pb(st->p.client, CP_T_FAILED, &f.base);
    }
    st->phase = PH_END;
}

/* How worker i's death with wait status `status` and peak RSS `rss_kb`
 * ends job j. */
static Picos__V1__ComputeWhy
classify(const cs_state *st, const cs_job *j, int status,
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
on_exit_line(cs_state *st, int i, int status, unsigned long long rss_kb)
{
    cs_worker *w = &st->w[i];
    cs_job *j = w->state == WS_BUSY ||
                        (w->state == WS_DYING && w->job && w->job->worker == i)
                    ? w->job
                    : NULL;
    bool by_us = false;
    char t[240], lost[240];

    if (w->conn)
        conn_close(st, w->conn);
    if (w->counted) {
        add_u(&pc__compute_stats.workers, -1);
        w->counted = false;
        st->up--;
    }
    if (w->state == WS_BUSY)
        busy_add(st, -1);
    if (w->job && !j) { /* held for another worker's job */
        w->job = NULL;
    }
    if (st->phase >= PH_QUITTING) {
        w->state = WS_NONE;
        w->pid = 0;
        if (j) {
            unrun(st, j);
            job_done(st, j, PICOS__V1__COMPUTE_WHY__WHY_CANCELLED,
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
        unrun(st, j);
        job_done(st, j, why, t);
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
        send_node_event(
            st, PICOS__V1__COMPUTE_NODE_EVENT_KIND__NODE_WORKER_LOST, i, lost);
        if (++st->crashes > CN_CRASH_FACTOR * st->p.cpus) {
            fail(st, "workers keep crashing");
            return;
        }
    }
    if (st->phase == PH_RUN || st->phase == PH_START) {
        w->state = WS_SPAWNING;
        cmd(st, "spawn", i);
    }
}

static void
on_line(cs_state *st, const char *line)
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
        fail(st, *t ? t : "picos-worker failed");
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

static cs_conn *
conn_find(cs_state *st, int id)
{
    for (cs_conn *c = st->conns; c; c = c->next)
        if (c->id == id)
            return c;
    return NULL;
}

static void
violation(cs_state *st, cs_conn *c, const char *why)
{
    char t[240];

    snprintf(t, sizeof t, "protocol violation: %s", why);
    if (c->worker < 0) {
        PC_LOG_WARN("compute", "s-%" PRIu64 ": a worker connection: %s",
                    st->p.id, t);
        conn_close(st, c);
        return;
    }
    kill_worker(st, c->worker, PICOS__V1__COMPUTE_WHY__WHY_CRASHED, t);
}

static void
on_ready(cs_state *st, int i, Picos__V1__WorkerFrame *f)
{
    cs_worker *w = &st->w[i];

    w->state = WS_IDLE;
    w->counted = true;
    st->up++;
    add_u(&pc__compute_stats.workers, 1);
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
            (void)pc__cn_send_pb(st->p.client, CP_T_READY, &r.base);
        PC_LOG_INFO("compute", "s-%" PRIu64 ": %s v%u ready", st->p.id, f->name,
                    (unsigned)f->version);
    } else {
        send_node_event(st, PICOS__V1__COMPUTE_NODE_EVENT_KIND__NODE_WORKER_UP,
                        i, "");
    }
}

static void
on_frame(cs_state *st, const pc_msg *m)
{
    size_t len = 0;
    const uint8_t *d = pc_msg_data(m, &len);
    Picos__V1__WorkerFrame *f;
    pc__cw_view v = {.workers = st->p.cpus, .worker = -1};
    cs_worker *w = NULL;
    cs_conn *c;
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
            Picos__V1__WorkerFrame q = PICOS__V1__WORKER_FRAME__INIT;
            q.op = PICOS__V1__WORKER_OP__W_QUIT;
            w->state = WS_IDLE;
            (void)send_wframe(st, c->worker, &q);
            break;
        }
        on_ready(st, c->worker, f);
        break;
    case PICOS__V1__WORKER_OP__W_SETUP_FAILED: {
        char t[320];
        snprintf(t, sizeof t, "%s",
                 f->text[0] ? f->text : "worker_setup failed");
        fail(st, t);
        break;
    }
    case PICOS__V1__WORKER_OP__W_FROM_JOB: {
        Picos__V1__ComputeFromJob fj = PICOS__V1__COMPUTE_FROM_JOB__INIT;
        flush_events(st);
        fj.id = w->job->id;
        fj.attempt = w->job->attempt;
        fj.data = f->data;
        if (!st->client_gone)
            (void)pc__cn_send_pb(st->p.client, CP_T_FROM_JOB, &fj.base);
        break;
    }
    case PICOS__V1__WORKER_OP__W_DONE: {
        cs_job *j = w->job;
        Picos__V1__ComputeJobEvent *e = f->done;
        unrun(st, j);
        st->crashes = 0;
        e->id = j->id;
        e->attempt = j->attempt;
        e->kind = PICOS__V1__COMPUTE_EVENT_KIND__JOB_DONE;
        e->worker = j->worker;
        e->started_us = j->started_us;
        e->ended_us = pc_wall_us();
        one_line(e->error);
        if (protobuf_c_message_get_packed_size(&e->base) + 64 > CN_EVENTS_MAX) {
            char t[160];
            snprintf(t, sizeof t,
                     "result and files out of %zu bytes don't fit in one "
                     "message",
                     protobuf_c_message_get_packed_size(&e->base));
            job_done(st, j, PICOS__V1__COMPUTE_WHY__WHY_FAILED, t);
            break;
        }
        atomic_fetch_add(&pc__compute_stats.jobs_done, 1);
        if (e->why != PICOS__V1__COMPUTE_WHY__WHY_OK)
            atomic_fetch_add(&pc__compute_stats.jobs_failed, 1);
        f->done = NULL; /* the event's now */
        ev_push(st, e, true);
        job_free(j);
        break;
    }
    default:
        break;
    }
    picos__v1__worker_frame__free_unpacked(f, NULL);
}

static void
on_gone(cs_state *st, const pc_msg *m)
{
    size_t len = 0;
    const uint8_t *d = pc_msg_data(m, &len);
    int32_t id, rc;
    cs_conn *c;

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

static void
on_conn(cs_state *st, const pc_msg *m)
{
    size_t len = 0;
    const void *d = pc_msg_data(m, &len);
    pc_spawn_opts so = {.flags = PC_TASK_DAEMON, .name = "compute.wreader"};
    conn_msg cm;
    cs_conn *c;
    rd_arg *a;

    if (len != sizeof cm)
        return;
    memcpy(&cm, d, sizeof cm);
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

/* ---- upload ------------------------------------------------------------------------- */

static void
file_paths(cs_state *st, size_t i)
{
    cs_file *f = &st->files[i];
    char hex[65];

    if (i == 0) {
        pc__cst_hex(st->p.lib.sha, hex);
        snprintf(f->path, sizeof f->path, "%s/lib/%s.so", st->p.root, hex);
        snprintf(f->tmp, sizeof f->tmp, "%s/lib/.%s.s%" PRIu64 ".tmp",
                 st->p.root, hex, st->p.id);
    } else {
        snprintf(f->path, sizeof f->path, "%s/data/%s", st->dir,
                 st->p.files[i - 1].name);
        snprintf(f->tmp, sizeof f->tmp, "%s", f->path);
    }
}

static const pc__cs_file *
declared(const cs_state *st, size_t i)
{
    return i == 0 ? &st->p.lib : &st->p.files[i - 1];
}

static bool start_workers(cs_state *st);

/* File i is complete: check its hash. */
static bool
file_complete(cs_state *st, size_t i)
{
    cs_file *f = &st->files[i];
    const pc__cs_file *dcl = declared(st, i);
    uint8_t sha[32];
    char a[65], b[65], t[640];

    pc__cst_sha_final(&f->sha, sha);
    f->done = true;
    if (f->fd >= 0) {
        if (i > 0)
            (void)fchmod(f->fd, 0444);
        close(f->fd);
        f->fd = -1;
    }
    if (memcmp(sha, dcl->sha, 32)) {
        pc__cst_hex(dcl->sha, a);
        pc__cst_hex(sha, b);
        if (i == 0)
            snprintf(t, sizeof t,
                     "library SHA-256 mismatch: declared %s, got %s", a, b);
        else
            snprintf(t, sizeof t,
                     "file %s SHA-256 mismatch: declared %s, got %s", dcl->name,
                     a, b);
        fail(st, t);
        return false;
    }
    if (i == 0 && rename(f->tmp, f->path) != 0) {
        snprintf(t, sizeof t, "can't store the library: %s", strerror(errno));
        fail(st, t);
        return false;
    }
    return true;
}

static bool
file_open(cs_state *st, size_t i)
{
    cs_file *f = &st->files[i];
    char t[400];

    f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                 i == 0 ? 0600 : 0644);
    if (f->fd < 0) {
        snprintf(t, sizeof t, "can't write %.200s: %s", f->tmp,
                 strerror(errno));
        fail(st, t);
        return false;
    }
    return true;
}

static bool
all_done(const cs_state *st)
{
    for (size_t i = 0; i <= st->p.nfiles; i++)
        if (!st->files[i].done)
            return false;
    return true;
}

static void
on_chunk(cs_state *st, const pc_msg *m)
{
    size_t len = 0;
    const uint8_t *d = pc_msg_data(m, &len);
    Picos__V1__ComputeChunk *c = picos__v1__compute_chunk__unpack(NULL, len, d);
    Picos__V1__ComputeChunkAck ack = PICOS__V1__COMPUTE_CHUNK_ACK__INIT;
    const pc__cs_file *dcl;
    cs_file *f;
    char t[300];

    if (!c) {
        fail(st, "a ComputeChunk that does not parse");
        return;
    }
    if (st->phase != PH_UPLOAD) {
        snprintf(t, sizeof t, "a chunk of file %u after the upload",
                 (unsigned)c->file);
        goto bad;
    }
    if (c->file > st->p.nfiles) {
        snprintf(t, sizeof t, "a chunk of file %u, there are %zu",
                 (unsigned)c->file, st->p.nfiles + 1);
        goto bad;
    }
    f = &st->files[c->file];
    dcl = declared(st, c->file);
    if (c->data.len > CP_CHUNK_MAX) {
        snprintf(t, sizeof t, "a chunk of %zu bytes, the most is %u",
                 c->data.len, CP_CHUNK_MAX);
        goto bad;
    }
    if (f->done || c->offset != f->got) {
        snprintf(t, sizeof t,
                 "chunk of file %u at offset %" PRIu64 ", %" PRIu64
                 " bytes of it received",
                 (unsigned)c->file, c->offset, f->got);
        goto bad;
    }
    if (c->data.len > dcl->size - f->got) {
        snprintf(t, sizeof t,
                 "chunk of file %u goes past its %" PRIu64 " bytes",
                 (unsigned)c->file, dcl->size);
        goto bad;
    }
    if (f->fd < 0 && !file_open(st, c->file))
        goto out;
    for (size_t off = 0; off < c->data.len;) {
        ssize_t n = write(f->fd, c->data.data + off, c->data.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(t, sizeof t, "can't write %.200s: %s", f->tmp,
                     strerror(errno));
            fail(st, t);
            goto out;
        }
        off += (size_t)n;
    }
    pc__cst_sha_update(&f->sha, c->data.data, c->data.len);
    f->got += c->data.len;
    ack.file = c->file;
    ack.received = f->got;
    (void)pc__cn_send_pb(st->p.client, CP_T_CHUNK_ACK, &ack.base);
    if (f->got == dcl->size && file_complete(st, c->file) && all_done(st))
        (void)start_workers(st);
    goto out;
bad:
    fail(st, t);
out:
    picos__v1__compute_chunk__free_unpacked(c, NULL);
}

/* ---- start -------------------------------------------------------------------------- */

static bool
own(cs_state *st, const char *path)
{
    char t[4600];

    if (!st->p.confine || chown(path, st->p.uid, st->p.gid) == 0)
        return true;
    snprintf(t, sizeof t, "can't give %s to uid %u: %s", path,
             (unsigned)st->p.uid, strerror(errno));
    fail(st, t);
    return false;
}

static bool
start_workers(cs_state *st)
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
            fail(st, t);
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
        fail(st, t);
        return false;
    }
    if (chmod(path, 0600) != 0 || !own(st, path)) {
        if (!st->failed) {
            snprintf(t, sizeof t, "can't chmod %s: %s", path, strerror(errno));
            fail(st, t);
        }
        return false;
    }
    if (!(aa = malloc(sizeof *aa))) {
        fail(st, "out of memory");
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
        fail(st, "can't start the acceptor task");
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
        fail(st, t);
        return false;
    }
    if (!(la = malloc(sizeof *la))) {
        fail(st, "out of memory");
        return false;
    }
    la->session = pc_self();
    la->proc = st->proc;
    if (pc_spawn(line_task, la, &so, &st->line_reader) != PC_OK) {
        free(la);
        fail(st, "can't start the line reader task");
        return false;
    }
    return true;
}

/* ---- jobs from the client ----------------------------------------------------------- */

static cs_job *
find_job(cs_state *st, uint64_t id, uint32_t attempt, bool *queued)
{
    for (cs_job *j = st->qhead; j; j = j->next)
        if (j->id == id && (!attempt || j->attempt == attempt)) {
            *queued = true;
            return j;
        }
    for (cs_job *j = st->running; j; j = j->next)
        if (j->id == id && (!attempt || j->attempt == attempt)) {
            *queued = false;
            return j;
        }
    return NULL;
}

/* Why job pb can't be taken ("" when it can) into t. */
static void
refusal(const cs_state *st, const Picos__V1__ComputeJob *pb, char *t,
        size_t size)
{
    size_t total = 0;

    t[0] = '\0';
    if (!pb->fn || !pb->fn[0] || strlen(pb->fn) > 255) {
        snprintf(t, size, "no function name");
        return;
    }
    if (pb->cpus > (uint32_t)st->p.cpus) {
        snprintf(t, size, "needs %u CPUs, its computation has %d here",
                 (unsigned)pb->cpus, st->p.cpus);
        return;
    }
    if (pb->input.len > PC_JOB_RESULT_MAX) {
        snprintf(t, size, "input of %zu bytes, the most is %u", pb->input.len,
                 PC_JOB_RESULT_MAX);
        return;
    }
    for (size_t i = 0; i < pb->n_files_in; i++) {
        if (!pb->files_in[i] || !pc__cst_plain_name(pb->files_in[i]->name)) {
            snprintf(t, size, "input file name '%.64s' is not a plain name",
                     pb->files_in[i] ? pb->files_in[i]->name : "");
            return;
        }
        total += pb->files_in[i]->data.len;
    }
    if (total > CP_JOB_FILES_MAX) {
        snprintf(t, size, "input files of %zu bytes, the most is %u", total,
                 CP_JOB_FILES_MAX);
        return;
    }
    if (pb->n_files_out > CP_FILES_MAX) {
        snprintf(t, size, "%zu output files, the most is %d", pb->n_files_out,
                 CP_FILES_MAX);
        return;
    }
    for (size_t i = 0; i < pb->n_files_out; i++)
        if (!pc__cst_plain_name(pb->files_out[i])) {
            snprintf(t, size, "output file name '%.64s' is not a plain name",
                     pb->files_out[i]);
            return;
        }
    if (st->njobs && !known_fn(st, pb->fn))
        snprintf(t, size, "unknown function '%.64s'", pb->fn);
    else if (st->nqueued >= QUEUE_MAX)
        snprintf(t, size, "%d jobs queued on this node already", QUEUE_MAX);
}

static void
on_submit(cs_state *st, const pc_msg *m)
{
    size_t len = 0;
    const uint8_t *d = pc_msg_data(m, &len);
    Picos__V1__ComputeSubmit *s =
        picos__v1__compute_submit__unpack(NULL, len, d);
    char t[320];

    if (!s) {
        PC_LOG_WARN("compute", "s-%" PRIu64 ": a submit that does not parse",
                    st->p.id);
        return;
    }
    for (size_t i = 0; i < s->n_jobs; i++) {
        Picos__V1__ComputeJob *pb = s->jobs[i];
        cs_job *j;
        bool q;

        if (find_job(st, pb->id, pb->attempt ? pb->attempt : 1, &q))
            continue; /* a duplicate */
        if (!(j = calloc(1, sizeof *j)))
            break;
        j->id = pb->id;
        j->attempt = pb->attempt ? pb->attempt : 1;
        j->cpus = pb->cpus ? (int)pb->cpus : 1;
        j->timeout_ms = pb->timeout_ms;
        j->worker = -1;
        j->deadline = -1;
        refusal(st, pb, t, sizeof t);
        if (!(j->fn = strdup(pb->fn ? pb->fn : ""))) {
            free(j);
            break;
        }
        if (st->phase >= PH_CLOSING && !t[0])
            snprintf(t, sizeof t, "the computation is closing on this node");
        if (t[0]) {
            job_done(st, j,
                     st->phase >= PH_CLOSING
                         ? PICOS__V1__COMPUTE_WHY__WHY_CANCELLED
                         : PICOS__V1__COMPUTE_WHY__WHY_REFUSED,
                     t);
            continue;
        }
        j->plen = picos__v1__compute_job__get_packed_size(pb);
        j->packed = malloc(j->plen ? j->plen : 1);
        j->files_out = pb->n_files_out
                           ? calloc(pb->n_files_out, sizeof *j->files_out)
                           : NULL;
        if (!j->packed || (pb->n_files_out && !j->files_out)) {
            job_done(st, j, PICOS__V1__COMPUTE_WHY__WHY_REFUSED,
                     "the node is out of memory");
            continue;
        }
        picos__v1__compute_job__pack(pb, j->packed);
        for (size_t k = 0; k < pb->n_files_out; k++)
            if ((j->files_out[j->nfiles_out] = strdup(pb->files_out[k])))
                j->nfiles_out++;
        if (st->qtail)
            st->qtail->next = j;
        else
            st->qhead = j;
        st->qtail = j;
        queued_add(st, 1);
    }
    picos__v1__compute_submit__free_unpacked(s, NULL);
}

static void
on_cancel(cs_state *st, const pc_msg *m)
{
    size_t len = 0;
    const uint8_t *d = pc_msg_data(m, &len);
    Picos__V1__ComputeCancel *c =
        picos__v1__compute_cancel__unpack(NULL, len, d);
    cs_job *j;
    bool queued;

    if (!c)
        return;
    if ((j = find_job(st, c->id, c->attempt, &queued))) {
        if (queued) {
            cs_job **pp;
            for (pp = &st->qhead; *pp != j; pp = &(*pp)->next)
                ;
            *pp = j->next;
            if (st->qtail == j) {
                st->qtail = NULL;
                for (cs_job *q = st->qhead; q; q = q->next)
                    st->qtail = q;
            }
            j->next = NULL;
            queued_add(st, -1);
            job_done(st, j, PICOS__V1__COMPUTE_WHY__WHY_CANCELLED, "cancelled");
        } else if (!j->kill_why) {
            kill_worker(st, j->worker, PICOS__V1__COMPUTE_WHY__WHY_CANCELLED,
                        "cancelled");
        }
    }
    picos__v1__compute_cancel__free_unpacked(c, NULL);
}

static void
on_to_job(cs_state *st, const pc_msg *m)
{
    size_t len = 0;
    const uint8_t *d = pc_msg_data(m, &len);
    Picos__V1__ComputeToJob *tj =
        picos__v1__compute_to_job__unpack(NULL, len, d);
    cs_job *j;
    bool queued;

    if (!tj)
        return;
    if (tj->data.len <= PC_JOB_MSG_MAX &&
        (j = find_job(st, tj->id, tj->attempt, &queued))) {
        if (!queued) {
            if (!j->kill_why)
                to_job(st, j, tj->data.data, tj->data.len);
        } else {
            cs_msg *q = calloc(1, sizeof *q);
            if (q && (q->data = malloc(tj->data.len ? tj->data.len : 1))) {
                memcpy(q->data, tj->data.data, tj->data.len);
                q->len = tj->data.len;
                if (j->to_job_tail)
                    j->to_job_tail->next = q;
                else
                    j->to_job = q;
                j->to_job_tail = q;
            } else {
                free(q);
            }
        }
    }
    picos__v1__compute_to_job__free_unpacked(tj, NULL);
}

/* Suspension changed (the client's or the node's). */
static void
suspension(cs_state *st, bool before)
{
    bool now = st->client_susp || st->node_susp;

    if (now != before)
        send_node_event(st,
                        now ? PICOS__V1__COMPUTE_NODE_EVENT_KIND__NODE_SUSPENDED
                            : PICOS__V1__COMPUTE_NODE_EVENT_KIND__NODE_RESUMED,
                        -1, st->node_susp ? "the node is suspended" : "");
}

/* Close with `grace` seconds for the running jobs (negative: for ever). */
static void
begin_close(cs_state *st, double grace)
{
    if (st->phase >= PH_CLOSING)
        return;
    if (st->phase < PH_RUN) { /* nothing runs yet */
        st->phase = PH_END;
        return;
    }
    st->phase = PH_CLOSING;
    while (st->qhead) {
        cs_job *j = st->qhead;
        st->qhead = j->next;
        j->next = NULL;
        queued_add(st, -1);
        job_done(st, j, PICOS__V1__COMPUTE_WHY__WHY_CANCELLED,
                 "the computation closed on this node before it ran");
    }
    st->qtail = NULL;
    st->close_at = grace < 0 ? -1 : pc_now() + grace;
}

static void
on_control(cs_state *st, const pc_msg *m)
{
    size_t len = 0;
    const uint8_t *d = pc_msg_data(m, &len);
    Picos__V1__ComputeControl *c =
        picos__v1__compute_control__unpack(NULL, len, d);
    bool before = st->client_susp || st->node_susp;

    if (!c)
        return;
    if (c->op == PICOS__V1__COMPUTE_OP__COMPUTE_SUSPEND) {
        st->client_susp = true;
        suspension(st, before);
    } else if (c->op == PICOS__V1__COMPUTE_OP__COMPUTE_RESUME) {
        st->client_susp = false;
        suspension(st, before);
    } else if (c->op == PICOS__V1__COMPUTE_OP__COMPUTE_CLOSE) {
        begin_close(st, c->grace);
    }
    picos__v1__compute_control__free_unpacked(c, NULL);
}

/* ---- timers, phases ------------------------------------------------------------------ */

static bool
anyone_up(const cs_state *st)
{
    for (int i = 0; i < st->p.cpus; i++)
        if (st->w[i].conn || st->w[i].state == WS_DYING)
            return true;
    return false;
}

/* Deadlines and the phases' ends; the seconds to the next (-1: none). */
static double
timers(cs_state *st)
{
    double now = pc_now(), next = -1;
    char t[200];

    for (cs_job *j = st->running; j; j = j->next) {
        if (j->kill_why || j->deadline < 0)
            continue;
        if (j->deadline <= now) {
            snprintf(t, sizeof t, "ran longer than its timeout (%.3g s)",
                     j->timeout_ms / 1e3);
            kill_worker(st, j->worker, PICOS__V1__COMPUTE_WHY__WHY_TIMEDOUT, t);
        } else if (next < 0 || j->deadline < next) {
            next = j->deadline;
        }
    }
    if (st->phase == PH_CLOSING) {
        if (st->close_at >= 0 && st->close_at <= now) {
            for (cs_job *j = st->running; j; j = j->next)
                if (!j->kill_why)
                    kill_worker(st, j->worker,
                                PICOS__V1__COMPUTE_WHY__WHY_CANCELLED,
                                "the computation closed on this node");
            st->close_at = -1;
            st->quit_at = now + QUIT_WAIT; /* for the kills' `exit` lines */
        }
        if (!st->running ||
            (st->close_at < 0 && st->quit_at > 0 && st->quit_at <= now)) {
            Picos__V1__WorkerFrame q = PICOS__V1__WORKER_FRAME__INIT;
            while (st->running) { /* their `exit` did not come */
                cs_job *j = st->running;
                unrun(st, j);
                job_done(st, j, PICOS__V1__COMPUTE_WHY__WHY_CANCELLED,
                         "the computation closed on this node");
            }
            st->phase = PH_QUITTING;
            st->quit_at = now + QUIT_WAIT;
            q.op = PICOS__V1__WORKER_OP__W_QUIT;
            for (int i = 0; i < st->p.cpus; i++)
                if (st->w[i].conn && st->w[i].state != WS_DYING)
                    (void)send_wframe(st, i, &q);
        } else {
            double at = st->close_at >= 0 ? st->close_at : st->quit_at;
            if (at > 0 && (next < 0 || at < next))
                next = at;
        }
    }
    if (st->phase == PH_QUITTING) {
        if (!anyone_up(st) || st->quit_at <= now || st->proc_eof)
            st->phase = PH_END;
        else if (next < 0 || st->quit_at < next)
            next = st->quit_at;
    }
    return next < 0 ? -1 : next - now;
}

static void
handle(cs_state *st, pc_msg *m)
{
    bool from_client = pc_ref_eq(pc_msg_sender(m), st->p.client);

    if (pc_msg_is(m, PC_MSG_DOWN)) {
        pc_down dn;
        if (pc_down_parse(m, &dn) == PC_OK && pc_ref_eq(dn.who, st->p.client) &&
            from_client) {
            st->client_gone = true;
            st->phase = PH_END;
        }
        return;
    }
    if (from_client) {
        if (pc_msg_is(m, CP_T_CHUNK))
            on_chunk(st, m);
        else if (pc_msg_is(m, CP_T_SUBMIT))
            on_submit(st, m);
        else if (pc_msg_is(m, CP_T_CANCEL))
            on_cancel(st, m);
        else if (pc_msg_is(m, CP_T_TO_JOB))
            on_to_job(st, m);
        else if (pc_msg_is(m, CP_T_CONTROL))
            on_control(st, m);
        return;
    }
    if (!pc__cn_local(m))
        return;
    if (pc_msg_is(m, CN_T_LINE)) {
        size_t len = 0;
        const char *d = pc_msg_data(m, &len);
        char line[CN_LINE_MAX + 1];
        if (len > CN_LINE_MAX)
            len = CN_LINE_MAX;
        memcpy(line, d, len);
        line[len] = '\0';
        on_line(st, line);
    } else if (pc_msg_is(m, CN_T_LINE_EOF)) {
        st->proc_eof = true;
        if (st->phase < PH_QUITTING)
            fail(st, st->setup_ready ? "picos-worker ended"
                                     : "picos-worker ended before it was "
                                       "ready");
    } else if (pc_msg_is(m, CN_T_CONN)) {
        on_conn(st, m);
    } else if (pc_msg_is(m, CN_T_FRAME)) {
        on_frame(st, m);
    } else if (pc_msg_is(m, CN_T_GONE)) {
        on_gone(st, m);
    } else if (pc_msg_is(m, CN_T_SUSPEND)) {
        size_t len = 0;
        const void *d = pc_msg_data(m, &len);
        bool before = st->client_susp || st->node_susp;
        if (len == sizeof st->node_susp) {
            memcpy(&st->node_susp, d, sizeof st->node_susp);
            suspension(st, before);
        }
    } else if (pc_msg_is(m, CN_T_STOP)) {
        size_t len = 0;
        const void *d = pc_msg_data(m, &len);
        double grace = 0;
        if (len == sizeof grace)
            memcpy(&grace, d, sizeof grace);
        begin_close(st, grace);
    }
}

/* ---- the end --------------------------------------------------------------------------- */

/* Stop the processes and helper tasks, remove the files. The session
 * task's last act (or its exit handler's, when it was killed). */
static void
finish(cs_state *st, bool can_wait)
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
    for (size_t i = 0; st->files && i <= st->p.nfiles; i++) {
        if (st->files[i].fd >= 0)
            close(st->files[i].fd);
        st->files[i].fd = -1;
    }
    if (st->files && !st->files[0].done)
        (void)unlink(st->files[0].tmp);
    (void)pc__cst_rm_tree(st->dir);
    /* what this session still counts */
    while (st->qhead) {
        cs_job *j = st->qhead;
        st->qhead = j->next;
        job_free(j);
    }
    add_u(&pc__compute_stats.jobs_queued, -st->nqueued);
    st->nqueued = 0;
    while (st->running) {
        cs_job *j = st->running;
        st->running = j->next;
        job_free(j);
    }
    add_u(&pc__compute_stats.workers_busy, -st->c_busy);
    st->c_busy = 0;
    for (int i = 0; st->w && i < st->p.cpus; i++)
        if (st->w[i].counted) {
            add_u(&pc__compute_stats.workers, -1);
            st->w[i].counted = false;
        }
}

static void
state_free(cs_state *st)
{
    for (size_t i = 0; i < st->nevs; i++)
        ev_free(&st->evs[i]);
    free(st->evs);
    for (size_t i = 0; i < st->njobs; i++)
        free(st->jobs[i]);
    free(st->jobs);
    free(st->w);
    free(st->files);
    free(st->p.files);
    free(st);
}

static void
session_exit(void *arg)
{
    cs_state *st = arg;

    if (st->phase != PH_END + 1) /* killed: clean up without waiting */
        finish(st, false);
    state_free(st);
}

static pc_msg *
session_task(void *arg)
{
    cs_state *st = arg;
    char t[4600];
    int e;

    pc_at_exit(session_exit, st);
    pc_monitor(pc_self(), st->p.client);
    if ((e = pc__cst_mkdir(st->dir, 0755)) ||
        (snprintf(t, sizeof t, "%s/data", st->dir),
         (e = pc__cst_mkdir(t, 0755)))) {
        snprintf(t, sizeof t, "can't make %s: %s", st->dir, strerror(e));
        fail(st, t);
    }
    for (size_t i = 0; i <= st->p.nfiles && st->phase == PH_UPLOAD; i++) {
        file_paths(st, i);
        pc__cst_sha_init(&st->files[i].sha);
        if (declared(st, i)->size == 0 && file_open(st, i))
            (void)file_complete(st, i);
    }
    if (st->phase == PH_UPLOAD && all_done(st))
        (void)start_workers(st);
    while (st->phase != PH_END) {
        pc_msg *m = NULL;
        double wait;
        int n = 0;

        dispatch(st);
        wait = timers(st); /* also the deadlines of jobs just started */
        flush_events(st);
        if (st->phase == PH_END)
            break;
        if (pc_recv(&m, wait) != PC_OK)
            continue;
        do {
            handle(st, m);
            pc_msg_free(&m);
        } while (st->phase != PH_END && ++n < DRAIN_MAX &&
                 pc_recv(&m, 0) == PC_OK);
        if (st->phase != PH_END)
            (void)timers(st);
    }
    flush_events(st);
    finish(st, true);
    if (!st->client_gone)
        send_node_event(st, PICOS__V1__COMPUTE_NODE_EVENT_KIND__NODE_CLOSED, -1,
                        st->failed ? "failed" : "");
    PC_LOG_INFO("compute", "s-%" PRIu64 " ended%s", st->p.id,
                st->client_gone ? " (its client is gone)" : "");
    st->phase = PH_END + 1;
    return NULL;
}

pc_err
pc__cs_start(pc__cs_params *p, pc_ref *out)
{
    pc_spawn_opts so = {.worker = PC_WORKER_ANY,
                        .flags = PC_TASK_DAEMON,
                        .name = "compute.session"};
    cs_state *st = calloc(1, sizeof *st);
    pc_err rc;

    if (!st || !(st->w = calloc((size_t)p->cpus, sizeof *st->w)) ||
        !(st->files = calloc(p->nfiles + 1, sizeof *st->files))) {
        if (st)
            free(st->w);
        free(st);
        free(p->files);
        free(p);
        return PC_ENOMEM;
    }
    st->p = *p;
    free(p);
    st->phase = PH_UPLOAD;
    st->close_at = -1;
    st->node_susp = st->p.suspended;
    for (size_t i = 0; i <= st->p.nfiles; i++)
        st->files[i].fd = -1;
    snprintf(st->dir, sizeof st->dir, "%s/s-%" PRIu64, st->p.root, st->p.id);
    if ((rc = pc_spawn(session_task, st, &so, out)) != PC_OK) {
        state_free(st);
        return rc;
    }
    return PC_OK;
}
