/* services/compute_session.c — one computation on a compute node: the
 * session task, its control and its close (docs/computations.md, "Inside
 * a node"; proto/compute.proto, both conversations).
 *
 * One task per session owns everything of it — the upload
 * (compute_upload.c), the setup process and the workers
 * (compute_workers.c), the queue and the client's events
 * (compute_jobs.c) — so nothing takes a lock: those files are the parts
 * of this task, sharing its ss_state (compute_node_int.h). Helper tasks,
 * on the session's own worker thread, turn I/O into messages to it
 * (compute_workers.c); only the session task writes.
 *
 * The session monitors the client's task: its DOWN (the client ended, or
 * its node was lost) ends the session at once. The life of a session:
 *
 *   upload   the client's ComputeChunks, each acknowledged, every file
 *            hashed as it comes (compute_upload.c);
 *   start    w<i> directories and ctl.sock, then picos-worker; its
 *            `ready` line makes the session send `spawn I` for every
 *            worker (compute_workers.c);
 *   run      the first W_READY sends ComputeReady, the others
 *            NODE_WORKER_UP; queued jobs go FIFO to idle workers, their
 *            events batched into one ComputeEvents per wake of the session
 *            (compute_jobs.c);
 *   close    queued jobs end CANCELLED, running ones get the grace, then
 *            their workers are killed (CANCELLED); W_QUIT to the workers,
 *            `quit` to the setup process, reap it, remove s-<id>/, send
 *            NODE_CLOSED — the last message.
 *
 * Each wake of the loop handles up to DRAIN_MAX messages, then dispatches
 * what idle workers can take, runs the timers (job deadlines, the grace,
 * the wait for the workers to quit) and sends the events collected.
 * Suspension, the client's (ComputeControl) or the node's (CN_T_SUSPEND),
 * only stops dispatch: running jobs finish. NODE_SUSPENDED / RESUMED tell
 * the client when either changes the whole; a client's resume while the
 * node's suspension holds gets NODE_SUSPENDED again ("the node is
 * suspended"), since the client marks its node resumed on its own call.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/log.h"
#include "picos/monitor.h"
#include "picos/node.h"
#include "picos/task.h"

#include "compute_node_int.h"

#define QUIT_WAIT 2.0
#define DRAIN_MAX 256

/* ---- small things ---------------------------------------------------------------- */

void
pc__ss_add_u(atomic_uint *c, int d)
{
    if (d > 0)
        atomic_fetch_add(c, (unsigned)d);
    else if (d < 0)
        atomic_fetch_sub(c, (unsigned)-d);
}

void
pc__ss_busy_add(ss_state *st, int d)
{
    st->c_busy += d;
    pc__ss_add_u(&pc__compute_stats.workers_busy, d);
}

void
pc__ss_one_line(char *s)
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

void
pc__ss_node_event(ss_state *st, Picos__V1__ComputeNodeEventKind kind,
                  int worker, const char *text)
{
    Picos__V1__ComputeNodeEvent e = PICOS__V1__COMPUTE_NODE_EVENT__INIT;

    if (st->client_gone)
        return;
    e.kind = kind;
    e.worker = worker;
    e.text = (char *)(text ? text : "");
    (void)pc__cp_send(st->p.client, CP_T_NODE_EVENT, &e.base);
}

void
pc__ss_fail(ss_state *st, const char *text)
{
    Picos__V1__ComputeFailed f = PICOS__V1__COMPUTE_FAILED__INIT;
    char t[512];

    if (st->failed || st->phase == PH_END)
        return;
    st->failed = true;
    snprintf(t, sizeof t, "%s", text);
    pc__ss_one_line(t);
    PC_LOG_WARN("compute", "s-%" PRIu64 ": %s", st->p.id, t);
    pc__ss_flush_events(st);
    if (!st->client_gone) {
        f.text = t;
        (void)pc__cp_send(st->p.client, CP_T_FAILED, &f.base);
    }
    st->phase = PH_END;
}

/* Suspension changed (the client's or the node's). */
static void
suspension(ss_state *st, bool before)
{
    bool now = st->client_susp || st->node_susp;

    if (now != before)
        pc__ss_node_event(
            st,
            now ? PICOS__V1__COMPUTE_NODE_EVENT_KIND__NODE_SUSPENDED
                : PICOS__V1__COMPUTE_NODE_EVENT_KIND__NODE_RESUMED,
            -1, st->node_susp ? "the node is suspended" : "");
}

/* Close with `grace` seconds for the running jobs (negative: for ever). */
static void
begin_close(ss_state *st, double grace)
{
    if (st->phase >= PH_CLOSING)
        return;
    if (st->phase < PH_RUN) { /* nothing runs yet */
        st->phase = PH_END;
        return;
    }
    st->phase = PH_CLOSING;
    pc__ss_cancel_queued(st,
                         "the computation closed on this node before it ran");
    st->close_at = grace < 0 ? -1 : pc_now() + grace;
}

static void
on_control(ss_state *st, const pc_msg *m)
{
    Picos__V1__ComputeControl *c =
        pc__cp_unpack(&picos__v1__compute_control__descriptor, m);
    bool before = st->client_susp || st->node_susp;

    if (!c)
        return;
    if (c->op == PICOS__V1__COMPUTE_OP__COMPUTE_SUSPEND ||
        c->op == PICOS__V1__COMPUTE_OP__COMPUTE_RESUME) {
        bool was = st->client_susp;
        st->client_susp = c->op == PICOS__V1__COMPUTE_OP__COMPUTE_SUSPEND;
        suspension(st, before);
        /* the client resumed what the node still suspends: say so again,
         * or the client (which took its resume for the node's) would
         * keep sending jobs that can't start here */
        if (was && !st->client_susp && st->node_susp)
            pc__ss_node_event(
                st, PICOS__V1__COMPUTE_NODE_EVENT_KIND__NODE_SUSPENDED, -1,
                "the node is suspended");
    } else if (c->op == PICOS__V1__COMPUTE_OP__COMPUTE_CLOSE) {
        begin_close(st, c->grace);
    }
    pc__cp_free(c);
}

/* ---- timers, phases ------------------------------------------------------------------ */

static bool
anyone_up(const ss_state *st)
{
    for (int i = 0; i < st->p.cpus; i++)
        if (st->w[i].conn || st->w[i].state != WS_NONE)
            return true; /* connected, or its `exit` line still to come */
    return false;
}

/* Deadlines and the phases' ends; the seconds to the next (-1: none). */
static double
timers(ss_state *st)
{
    double now = pc_now(), next = -1;
    char t[200];

    for (ss_job *j = st->running; j; j = j->next) {
        if (j->kill_why || j->deadline < 0)
            continue;
        if (j->deadline <= now) {
            snprintf(t, sizeof t, "ran longer than its timeout (%.3g s)",
                     j->timeout_ms / 1e3);
            pc__ss_kill_worker(st, j->worker,
                               PICOS__V1__COMPUTE_WHY__WHY_TIMEDOUT, t);
        } else if (next < 0 || j->deadline < next) {
            next = j->deadline;
        }
    }
    if (st->phase == PH_CLOSING) {
        if (st->close_at >= 0 && st->close_at <= now) {
            for (ss_job *j = st->running; j; j = j->next)
                if (!j->kill_why)
                    pc__ss_kill_worker(st, j->worker,
                                       PICOS__V1__COMPUTE_WHY__WHY_CANCELLED,
                                       "the computation closed on this node");
            st->close_at = -1;
            st->quit_at = now + QUIT_WAIT; /* for the kills' `exit` lines */
        }
        if (!st->running ||
            (st->close_at < 0 && st->quit_at > 0 && st->quit_at <= now)) {
            while (st->running) { /* their `exit` did not come */
                ss_job *j = st->running;
                pc__ss_unrun(st, j);
                pc__ss_job_done(st, j, PICOS__V1__COMPUTE_WHY__WHY_CANCELLED,
                                "the computation closed on this node");
            }
            st->phase = PH_QUITTING;
            st->quit_at = now + QUIT_WAIT;
            for (int i = 0; i < st->p.cpus; i++)
                if (st->w[i].conn && st->w[i].state != WS_DYING)
                    pc__ss_quit_worker(st, i);
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
handle(ss_state *st, pc_msg *m)
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
            pc__ss_on_chunk(st, m);
        else if (pc_msg_is(m, CP_T_SUBMIT))
            pc__ss_on_submit(st, m);
        else if (pc_msg_is(m, CP_T_CANCEL))
            pc__ss_on_cancel(st, m);
        else if (pc_msg_is(m, CP_T_TO_JOB))
            pc__ss_on_to_job(st, m);
        else if (pc_msg_is(m, CP_T_CONTROL))
            on_control(st, m);
        return;
    }
    if (!pc__cn_local(m))
        return;
    if (pc_msg_is(m, CN_T_LINE)) {
        pc__ss_on_line(st, m);
    } else if (pc_msg_is(m, CN_T_LINE_EOF)) {
        st->proc_eof = true;
        if (st->phase < PH_QUITTING)
            pc__ss_fail(st, st->setup_ready
                                ? "picos-worker ended"
                                : "picos-worker ended before it was "
                                  "ready");
    } else if (pc_msg_is(m, CN_T_CONN)) {
        pc__ss_on_conn(st, m);
    } else if (pc_msg_is(m, CN_T_FRAME)) {
        pc__ss_on_frame(st, m);
    } else if (pc_msg_is(m, CN_T_GONE)) {
        pc__ss_on_gone(st, m);
    } else if (pc_msg_is(m, CN_T_SUSPEND)) {
        bool before = st->client_susp || st->node_susp;
        if (pc__cn_value(m, &st->node_susp, sizeof st->node_susp))
            suspension(st, before);
    } else if (pc_msg_is(m, CN_T_STOP)) {
        double grace = 0;
        (void)pc__cn_value(m, &grace, sizeof grace);
        begin_close(st, grace);
    }
}

/* ---- the end --------------------------------------------------------------------------- */

/* Stop the processes and helper tasks, remove the files. The session
 * task's last act (or its exit handler's, when it was killed). */
static void
finish(ss_state *st, bool can_wait)
{
    pc__ss_workers_fini(st, can_wait);
    pc__ss_upload_fini(st);
    (void)pc__cst_rm_tree(st->dir);
    /* what this session still counts */
    pc__ss_jobs_fini(st);
    pc__ss_add_u(&pc__compute_stats.workers_busy, -st->c_busy);
    st->c_busy = 0;
    for (int i = 0; st->w && i < st->p.cpus; i++)
        if (st->w[i].counted) {
            pc__ss_add_u(&pc__compute_stats.workers, -1);
            st->w[i].counted = false;
        }
}

static void
state_free(ss_state *st)
{
    pc__ss_events_free(st);
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
    ss_state *st = arg;

    if (st->phase != PH_END + 1) /* killed: clean up without waiting */
        finish(st, false);
    state_free(st);
}

static pc_msg *
session_task(void *arg)
{
    ss_state *st = arg;
    char t[4600];
    int e;

    pc_at_exit(session_exit, st);
    pc_monitor(pc_self(), st->p.client);
    if ((e = pc__cst_mkdir(st->dir, 0755)) ||
        (snprintf(t, sizeof t, "%s/data", st->dir),
         (e = pc__cst_mkdir(t, 0755)))) {
        snprintf(t, sizeof t, "can't make %s: %s", st->dir, strerror(e));
        pc__ss_fail(st, t);
    }
    if (st->phase == PH_UPLOAD)
        pc__ss_upload_begin(st);
    while (st->phase != PH_END) {
        pc_msg *m = NULL;
        double wait;
        int n = 0;

        pc__ss_dispatch(st);
        wait = timers(st); /* also the deadlines of jobs just started */
        pc__ss_flush_events(st);
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
    pc__ss_flush_events(st);
    finish(st, true);
    if (!st->client_gone)
        pc__ss_node_event(st, PICOS__V1__COMPUTE_NODE_EVENT_KIND__NODE_CLOSED,
                          -1, st->failed ? "failed" : "");
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
    ss_state *st = calloc(1, sizeof *st);
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
