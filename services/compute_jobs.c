/* services/compute_jobs.c — a session's jobs: the queue, their dispatch
 * to the workers and the events the client gets of them
 * (docs/computations.md, "Inside a node"; proto/compute.proto,
 * ComputeSubmit, ComputeCancel, ComputeToJob, ComputeEvents).
 *
 * A submitted job is checked (its function known once the library listed
 * its jobs, CPUs, sizes and plain file names) and kept as the bytes the
 * client sent, or ends at once REFUSED; a duplicate (id and attempt) is
 * dropped. Queued jobs go FIFO to idle workers: a job of k CPUs waits for
 * k idle ones and holds k-1 of them (WS_HELD) while it runs on the first.
 * W_RUN carries the client's bytes of the job untouched (fields may come
 * in any order), and the messages that came for it while it was queued
 * follow. A cancel of a queued job ends it at once; of a running one,
 * kills its worker (compute_workers.c reports the end from its `exit`
 * line). JOB_STARTED and JOB_DONE events are batched into one
 * ComputeEvents per wake of the session, bounded to one link message
 * (CN_EVENTS_MAX): a result that does not fit ends the job FAILED.
 * ComputeFromJob goes at once, after the events before it.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/computation.h"
#include "picos/log.h"
#include "picos/node.h"
#include "picos/task.h"

#include "compute_node_int.h"

#define QUEUE_MAX 65536

/* ---- the queue ------------------------------------------------------------------ */

static void
queued_add(ss_state *st, int d)
{
    st->nqueued += d;
    pc__ss_add_u(&pc__compute_stats.jobs_queued, d);
}

/* Take queued job j out of the queue. */
static void
queue_del(ss_state *st, ss_job *j)
{
    ss_job *prev = NULL;

    for (ss_job *q = st->qhead; q != j; q = q->next)
        prev = q;
    if (prev)
        prev->next = j->next;
    else
        st->qhead = j->next;
    if (st->qtail == j)
        st->qtail = prev;
    j->next = NULL;
    queued_add(st, -1);
}

/* The first message for job j that came while it was queued, out of its
 * list (NULL: none). */
static ss_msg *
msg_pop(ss_job *j)
{
    ss_msg *m = j->to_job;

    if (m && !(j->to_job = m->next))
        j->to_job_tail = NULL;
    return m;
}

/* A message for queued job j, sent once it runs (dropped when there is no
 * memory for it, as one lost on the way). */
static void
msg_push(ss_job *j, const uint8_t *data, size_t len)
{
    ss_msg *q = calloc(1, sizeof *q);

    if (!q || !(q->data = malloc(len ? len : 1))) {
        free(q);
        return;
    }
    memcpy(q->data, data, len);
    q->len = len;
    if (j->to_job_tail)
        j->to_job_tail->next = q;
    else
        j->to_job = q;
    j->to_job_tail = q;
}

static void
msg_free(ss_msg *m)
{
    free(m->data);
    free(m);
}

static void
job_free(ss_job *j)
{
    ss_msg *m;

    if (!j)
        return;
    free(j->fn);
    for (size_t i = 0; i < j->nfiles_out; i++)
        free(j->files_out[i]);
    free(j->files_out);
    free(j->packed);
    while ((m = msg_pop(j)))
        msg_free(m);
    free(j);
}

void
pc__ss_cancel_queued(ss_state *st, const char *text)
{
    while (st->qhead) {
        ss_job *j = st->qhead;
        queue_del(st, j);
        pc__ss_job_done(st, j, PICOS__V1__COMPUTE_WHY__WHY_CANCELLED, text);
    }
}

void
pc__ss_jobs_fini(ss_state *st)
{
    while (st->qhead) {
        ss_job *j = st->qhead;
        queue_del(st, j);
        job_free(j);
    }
    while (st->running) {
        ss_job *j = st->running;
        st->running = j->next;
        job_free(j);
    }
}

/* ---- events ---------------------------------------------------------------------- */

static void
ev_free(ss_ev *e)
{
    if (e->unpacked) {
        picos__v1__compute_job_event__free_unpacked(e->ev, NULL);
    } else if (e->ev) {
        free(e->ev->error);
        free(e->ev);
    }
    e->ev = NULL;
}

void
pc__ss_flush_events(ss_state *st)
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
        if (pc__cp_send(st->p.client, CP_T_EVENTS, &b.base) != PC_OK)
            PC_LOG_WARN("compute", "s-%" PRIu64 ": %zu events not sent",
                        st->p.id, st->nevs);
        free(v);
    }
    for (size_t i = 0; i < st->nevs; i++)
        ev_free(&st->evs[i]);
    st->nevs = 0;
    st->evbytes = 0;
}

void
pc__ss_events_free(ss_state *st)
{
    for (size_t i = 0; i < st->nevs; i++)
        ev_free(&st->evs[i]);
    free(st->evs);
    st->evs = NULL;
    st->nevs = st->evcap = st->evbytes = 0;
}

/* Queue event ev (protobuf-c's when `unpacked`) for the next batch. */
static void
ev_push(ss_state *st, Picos__V1__ComputeJobEvent *ev, bool unpacked)
{
    ss_ev e = {ev, unpacked};
    size_t sz = protobuf_c_message_get_packed_size(&ev->base) + 16;

    if (st->nevs && st->evbytes + sz > CN_EVENTS_MAX)
        pc__ss_flush_events(st);
    if (st->nevs == st->evcap) {
        size_t cap = st->evcap ? 2 * st->evcap : 16;
        ss_ev *n = realloc(st->evs, cap * sizeof *n);
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

/* Event e is of kind `kind` about j. */
static void
ev_about(Picos__V1__ComputeJobEvent *e, const ss_job *j,
         Picos__V1__ComputeEventKind kind)
{
    e->id = j->id;
    e->attempt = j->attempt;
    e->kind = kind;
    e->worker = j->worker;
    e->started_us = j->started_us;
}

/* A new event of ours about j. */
static Picos__V1__ComputeJobEvent *
ev_new(const ss_job *j, Picos__V1__ComputeEventKind kind)
{
    Picos__V1__ComputeJobEvent *e = malloc(sizeof *e);

    if (!e)
        return NULL;
    picos__v1__compute_job_event__init(e);
    ev_about(e, j, kind);
    e->error = NULL;
    return e;
}

/* A job ended, in the node's counters. */
static void
count_end(Picos__V1__ComputeWhy why)
{
    atomic_fetch_add(&pc__compute_stats.jobs_done, 1);
    if (why != PICOS__V1__COMPUTE_WHY__WHY_OK)
        atomic_fetch_add(&pc__compute_stats.jobs_failed, 1);
}

/* The end of job j (taken out of every list already; freed here). */
void
pc__ss_job_done(ss_state *st, ss_job *j, Picos__V1__ComputeWhy why,
                const char *error)
{
    Picos__V1__ComputeJobEvent *e =
        ev_new(j, PICOS__V1__COMPUTE_EVENT_KIND__JOB_DONE);

    count_end(why);
    if (e) {
        e->why = why;
        e->ended_us = pc_wall_us();
        if (!(e->error = strdup(error ? error : ""))) {
            free(e);
            e = NULL;
        } else {
            pc__ss_one_line(e->error);
            ev_push(st, e, false);
        }
    }
    job_free(j);
}

void
pc__ss_job_result(ss_state *st, ss_job *j, Picos__V1__WorkerFrame *f)
{
    Picos__V1__ComputeJobEvent *e = f->done;
    size_t size;

    pc__ss_unrun(st, j);
    ev_about(e, j, PICOS__V1__COMPUTE_EVENT_KIND__JOB_DONE);
    e->ended_us = pc_wall_us();
    pc__ss_one_line(e->error);
    if ((size = protobuf_c_message_get_packed_size(&e->base)) + 64 >
        CN_EVENTS_MAX) {
        char t[160];
        snprintf(t, sizeof t,
                 "result and files out of %zu bytes don't fit in one "
                 "message",
                 size);
        pc__ss_job_done(st, j, PICOS__V1__COMPUTE_WHY__WHY_FAILED, t);
        return;
    }
    count_end(e->why);
    f->done = NULL; /* the event's now */
    ev_push(st, e, true);
    job_free(j);
}

static void
to_job(ss_state *st, ss_job *j, const uint8_t *data, size_t len)
{
    Picos__V1__WorkerFrame f = PICOS__V1__WORKER_FRAME__INIT;

    f.op = PICOS__V1__WORKER_OP__W_TO_JOB;
    f.worker = j->worker;
    f.job_id = j->id;
    f.data.data = (uint8_t *)data;
    f.data.len = len;
    (void)pc__ss_send_wframe(st, j->worker, &f);
}

/* W_RUN: the frame's op and worker, then field 4 (job) as the client's
 * bytes of it — fields may come in any order. */
static bool
run_on(ss_state *st, ss_job *j, int i)
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
    ok = pc__ss_send_frame(st, i, buf, n + j->plen);
    free(buf);
    return ok;
}

static bool
known_fn(const ss_state *st, const char *fn)
{
    for (size_t i = 0; i < st->njobs; i++)
        if (!strcmp(st->jobs[i], fn))
            return true;
    return false;
}

static int
idle_count(const ss_state *st)
{
    int n = 0;
    for (int i = 0; i < st->p.cpus; i++)
        n += st->w[i].state == WS_IDLE;
    return n;
}

/* Start queued jobs while idle workers can take them (FIFO). */
void
pc__ss_dispatch(ss_state *st)
{
    while (st->qhead && st->phase == PH_RUN && !st->client_susp &&
           !st->node_susp) {
        ss_job *j = st->qhead;
        int k = j->cpus, first = -1;
        Picos__V1__ComputeJobEvent *e;

        if (st->njobs && !known_fn(st, j->fn)) {
            char t[320];
            snprintf(t, sizeof t, "unknown function '%.64s'", j->fn);
            queue_del(st, j);
            pc__ss_job_done(st, j, PICOS__V1__COMPUTE_WHY__WHY_REFUSED, t);
            continue;
        }
        if (idle_count(st) < k)
            break;
        queue_del(st, j);
        for (int i = 0; i < st->p.cpus && k > 0; i++) {
            if (st->w[i].state != WS_IDLE)
                continue;
            st->w[i].job = j;
            if (first < 0) {
                first = i;
                st->w[i].state = WS_BUSY;
                pc__ss_busy_add(st, 1);
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
        if (run_on(st, j, first)) {
            ss_msg *m;
            while ((m = msg_pop(j))) {
                to_job(st, j, m->data, m->len);
                msg_free(m);
            }
        }
    }
}

/* Take j out of the running list and give its workers back. */
void
pc__ss_unrun(ss_state *st, ss_job *j)
{
    for (ss_job **pp = &st->running; *pp; pp = &(*pp)->next)
        if (*pp == j) {
            *pp = j->next;
            break;
        }
    j->next = NULL;
    for (int i = 0; i < st->p.cpus; i++) {
        ss_worker *w = &st->w[i];
        if (w->job != j)
            continue;
        w->job = NULL;
        if (w->state == WS_BUSY) {
            pc__ss_busy_add(st, -1);
            w->state = WS_IDLE;
        } else if (w->state == WS_HELD) {
            w->state = WS_IDLE;
        }
    }
}

/* ---- jobs from the client ----------------------------------------------------------- */

static ss_job *
find_job(ss_state *st, uint64_t id, uint32_t attempt, bool *queued)
{
    for (ss_job *j = st->qhead; j; j = j->next)
        if (j->id == id && (!attempt || j->attempt == attempt)) {
            *queued = true;
            return j;
        }
    for (ss_job *j = st->running; j; j = j->next)
        if (j->id == id && (!attempt || j->attempt == attempt)) {
            *queued = false;
            return j;
        }
    return NULL;
}

/* Why job pb can't be taken ("" when it can) into t. */
static void
refusal(const ss_state *st, const Picos__V1__ComputeJob *pb, char *t,
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

void
pc__ss_on_submit(ss_state *st, const pc_msg *m)
{
    Picos__V1__ComputeSubmit *s =
        pc__cp_unpack(&picos__v1__compute_submit__descriptor, m);
    char t[320];

    if (!s) {
        PC_LOG_WARN("compute", "s-%" PRIu64 ": a submit that does not parse",
                    st->p.id);
        return;
    }
    for (size_t i = 0; i < s->n_jobs; i++) {
        Picos__V1__ComputeJob *pb = s->jobs[i];
        ss_job *j;
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
            pc__ss_job_done(st, j,
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
            pc__ss_job_done(st, j, PICOS__V1__COMPUTE_WHY__WHY_REFUSED,
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
    pc__cp_free(s);
}

void
pc__ss_on_cancel(ss_state *st, const pc_msg *m)
{
    Picos__V1__ComputeCancel *c =
        pc__cp_unpack(&picos__v1__compute_cancel__descriptor, m);
    ss_job *j;
    bool queued;

    if (c && (j = find_job(st, c->id, c->attempt, &queued))) {
        if (queued) {
            queue_del(st, j);
            pc__ss_job_done(st, j, PICOS__V1__COMPUTE_WHY__WHY_CANCELLED,
                            "cancelled");
        } else if (!j->kill_why) {
            pc__ss_kill_worker(st, j->worker,
                               PICOS__V1__COMPUTE_WHY__WHY_CANCELLED,
                               "cancelled");
        }
    }
    pc__cp_free(c);
}

void
pc__ss_on_to_job(ss_state *st, const pc_msg *m)
{
    Picos__V1__ComputeToJob *tj =
        pc__cp_unpack(&picos__v1__compute_to_job__descriptor, m);
    ss_job *j;
    bool queued;

    if (tj && tj->data.len <= PC_JOB_MSG_MAX &&
        (j = find_job(st, tj->id, tj->attempt, &queued))) {
        if (queued)
            msg_push(j, tj->data.data, tj->data.len);
        else if (!j->kill_why)
            to_job(st, j, tj->data.data, tj->data.len);
    }
    pc__cp_free(tj);
}
