/* services/rps_server.c — the server side of Remote Pico Services.
 *
 * A service is one *acceptor* task, registered cluster-wide as the
 * service's name (PC_NAME_SERVICE). It alone owns the service's state (the
 * calls running, the queue, the watchers), so nothing here takes a lock:
 * pc_rps_monitor() and pc_rps_close() talk to it with local messages.
 *
 * An RpsCall that finds a free slot is spawned at once as a task of its
 * own running fn(request), which the acceptor monitors; the caller gets
 * RpsAccepted with the task's ref. Without a free slot it waits in a FIFO
 * of at most max_queued calls, and beyond that it is refused BUSY — refusing
 * rather than growing is the backpressure. The DOWN of a call task is its
 * outcome: the acceptor sends the caller RpsDone and every watcher a
 * PC_MSG_RPS_OUTCOME, then starts the next queued call. Call tasks are
 * joinable and the outcome is taken by pc_task_join() at the DOWN: a task
 * on another worker may end before the monitor is set (a DOWN saying
 * NOPROC), and the join still has its exit value.
 *
 * Deadlines: the acceptor's pc_recv() waits until the earliest deadline of
 * its calls; a running call past it is terminated and marked so that its
 * DOWN reports TIMED_OUT; a queued one is refused EXPIRED. pc_rps_close()
 * terminates every running call the same way (CLOSED), refuses the queue,
 * and the acceptor ends once the last DOWN came.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/log.h"
#include "picos/monitor.h"
#include "picos/node.h"
#include "picos/registry.h"
#include "picos/task.h"

#include "rps_int.h"

#define SV_WATCH "picos.rps.watch"
#define SV_CLOSE "picos.rps.close"

enum { END_NONE, END_TIMED_OUT, END_CLOSED };

typedef struct sv_call {
    uint64_t id;
    pc_ref caller, task;
    double deadline;    /* pc_now() seconds; < 0: none */
    pc_msg *req;        /* while queued */
    struct sv_job *job; /* while running: freed at its DOWN */
    int end;
    struct sv_call *next;
} sv_call;

struct pc_rps {
    pc_rps_opts o;
    char name[PC_NAME_MAX + 1];
    pc_ref acceptor;
};

typedef struct sv_state {
    pc_rps *s;
    sv_call *running; /* unordered list */
    int nrunning;
    sv_call *qhead, *qtail;
    int nqueued;
    pc_ref *watchers;
    size_t nwatchers;
    bool closing;
} sv_state;

/* What a call task starts with. The acceptor frees it at the task's DOWN;
 * the request in it is the task's once it runs (its exit handler frees a
 * request not yet handed to fn), else the acceptor's: a task terminated
 * before it first ran never set its exit handler. Exit handlers run
 * before monitors are told, so at the DOWN nobody else touches the job. */
typedef struct sv_job {
    pc_rps_fn fn;
    pc_msg *req;
} sv_job;

pc_err
pc__rps_send_pb(pc_ref to, const char *type, const ProtobufCMessage *pb)
{
    size_t len = protobuf_c_message_get_packed_size(pb);
    uint8_t stackbuf[256],
        *buf = len <= sizeof stackbuf ? stackbuf : malloc(len);
    pc_msg *m = NULL;
    pc_err rc;

    if (!buf)
        return PC_ENOMEM;
    protobuf_c_message_pack(pb, buf);
    rc = pc_msg_new(&m, type, buf, len);
    if (buf != stackbuf)
        free(buf);
    if (rc == PC_OK && (rc = pc_send(to, &m)) != PC_OK)
        pc_msg_free(&m);
    return rc;
}

pc_err
pc__rps_send_outcome(pc_ref to, uint64_t id, pc_err rc, const char *error)
{
    uint8_t buf[12 + 255];
    size_t n = error ? strnlen(error, 255) : 0;
    int32_t v = rc;
    memcpy(buf, &v, 4);
    memcpy(buf + 4, &id, 8);
    if (n)
        memcpy(buf + 12, error, n);
    return pc_send_data(to, PC_MSG_RPS_OUTCOME, buf, 12 + n);
}

pc_err
pc_rps_outcome_parse(const pc_msg *m, pc_rps_outcome *out)
{
    size_t len = 0;
    const uint8_t *d;
    int32_t v;

    if (!m || !out || !pc_msg_is(m, PC_MSG_RPS_OUTCOME))
        return PC_EINVAL;
    d = pc_msg_data(m, &len);
    if (len < 12 || len > 12 + 255)
        return PC_EINVAL;
    memcpy(&v, d, 4);
    memcpy(&out->id, d + 4, 8);
    out->rc = (pc_err)v;
    memcpy(out->error, d + 12, len - 12);
    out->error[len - 12] = '\0';
    return PC_OK;
}

static void
refuse(pc_ref to, uint64_t id, Picos__V1__RpsRefusal code, const char *text)
{
    Picos__V1__RpsRefused r = PICOS__V1__RPS_REFUSED__INIT;
    r.id = id;
    r.code = code;
    r.text = (char *)text;
    (void)pc__rps_send_pb(to, RPS_T_REFUSED, &r.base);
}

static void
job_end(void *arg)
{
    sv_job *j = arg;
    pc_msg_free(&j->req);
}

static pc_msg *
call_main(void *arg)
{
    sv_job *j = arg;
    pc_msg *req = j->req;
    j->req = NULL; /* fn owns it now */
    return j->fn(req);
}

/* The call's task: its exit handler frees the request however it ends. */
static pc_msg *
call_task(void *arg)
{
    pc_at_exit(job_end, arg);
    return call_main(arg);
}

/* Spawn c's task (c->req passes to it) and tell the caller. */
static void
start(sv_state *st, sv_call *c)
{
    pc_spawn_opts o = {.worker = PC_WORKER_ANY,
                       .flags = PC_TASK_DAEMON | PC_TASK_JOINABLE,
                       .stack_size = st->s->o.stack_size,
                       .name = st->s->name};
    sv_job *j = malloc(sizeof *j);
    Picos__V1__RpsAccepted a = PICOS__V1__RPS_ACCEPTED__INIT;
    Picos__V1__Ref r = PICOS__V1__REF__INIT;
    pc_err rc;

    if (!j) {
        rc = PC_ENOMEM;
        goto fail;
    }
    j->fn = st->s->o.fn;
    j->req = c->req;
    if ((rc = pc_spawn(call_task, j, &o, &c->task)) != PC_OK) {
        free(j);
        goto fail;
    }
    c->req = NULL;
    c->job = j;
    pc_monitor(pc_self(), c->task);
    c->next = st->running;
    st->running = c;
    st->nrunning++;
    a.id = c->id;
    r.node = c->task.node;
    r.id = c->task.id;
    a.task = &r;
    (void)pc__rps_send_pb(c->caller, RPS_T_ACCEPTED, &a.base);
    return;
fail:
    refuse(c->caller, c->id, PICOS__V1__RPS_REFUSAL__RPS_BUSY, pc_strerror(rc));
    pc_msg_free(&c->req);
    free(c);
}

static void
on_call(sv_state *st, pc_msg *m)
{
    size_t len = 0;
    const uint8_t *d = pc_msg_data(m, &len);
    Picos__V1__RpsCall *rq = picos__v1__rps_call__unpack(NULL, len, d);
    pc_ref from = pc_msg_sender(m);
    char text[160];
    sv_call *c;

    if (!rq) {
        PC_LOG_WARN("rps", "%s: a call that does not decode, dropped",
                    st->s->name);
        return;
    }
    if (st->closing) {
        refuse(from, rq->id, PICOS__V1__RPS_REFUSAL__RPS_CLOSED,
               "service closing");
        goto out;
    }
    if (rq->deadline_ms == 0) {
        refuse(from, rq->id, PICOS__V1__RPS_REFUSAL__RPS_EXPIRED,
               "deadline passed");
        goto out;
    }
    if (st->nrunning >= st->s->o.max_inflight &&
        st->nqueued >= st->s->o.max_queued) {
        snprintf(text, sizeof text, "service busy: %d running, %d queued",
                 st->nrunning, st->nqueued);
        refuse(from, rq->id, PICOS__V1__RPS_REFUSAL__RPS_BUSY, text);
        goto out;
    }
    if (!(c = calloc(1, sizeof *c))) {
        refuse(from, rq->id, PICOS__V1__RPS_REFUSAL__RPS_BUSY, "out of memory");
        goto out;
    }
    c->id = rq->id;
    c->caller = from;
    c->deadline = rq->deadline_ms < 0 ? -1 : pc_now() + rq->deadline_ms / 1e3;
    if (st->s->o.req_desc) {
        ProtobufCMessage *pb = protobuf_c_message_unpack(
            st->s->o.req_desc, NULL, rq->request.len, rq->request.data);
        if (!pb || pc_msg_new_pb(&c->req, pb) != PC_OK) {
            snprintf(
                text, sizeof text,
                "request does not parse as %s (protobuf-c unpack failed)",
                ((const ProtobufCMessageDescriptor *)st->s->o.req_desc)->name);
            if (pb)
                protobuf_c_message_free_unpacked(pb, NULL);
            refuse(from, rq->id, PICOS__V1__RPS_REFUSAL__RPS_BAD_REQUEST, text);
            free(c);
            goto out;
        }
    } else if (pc_msg_new(&c->req, rq->request_type, rq->request.data,
                          rq->request.len) != PC_OK) {
        refuse(from, rq->id, PICOS__V1__RPS_REFUSAL__RPS_BAD_REQUEST,
               "bad request type");
        free(c);
        goto out;
    }
    if (st->nrunning < st->s->o.max_inflight) {
        start(st, c);
    } else {
        if (st->qtail)
            st->qtail->next = c;
        else
            st->qhead = c;
        st->qtail = c;
        st->nqueued++;
    }
out:
    picos__v1__rps_call__free_unpacked(rq, NULL);
}

static void
start_queued(sv_state *st)
{
    while (st->qhead && st->nrunning < st->s->o.max_inflight) {
        sv_call *c = st->qhead;
        if (!(st->qhead = c->next))
            st->qtail = NULL;
        st->nqueued--;
        c->next = NULL;
        start(st, c);
    }
}

static void
on_down(sv_state *st, pc_msg *m)
{
    pc_down d;
    sv_call **pp, *c;
    Picos__V1__RpsDone done = PICOS__V1__RPS_DONE__INIT;
    pc_msg *v = NULL;
    const char *err = "";
    pc_err rc = PC_OK, jr;

    if (pc_down_parse(m, &d) != PC_OK)
        return;
    for (pp = &st->running; (c = *pp); pp = &c->next)
        if (pc_ref_eq(c->task, d.who))
            break;
    if (!c)
        return;
    *pp = c->next;
    st->nrunning--;
    done.id = c->id;
    done.error = "";
    done.value_type = "";
    /* The outcome comes from the join: a task that ended before the
     * monitor was set gives a DOWN saying only NOPROC, while its joinable
     * exit value waits for us either way. It has ended: the join answers
     * at once (the bound is for a worker that is slow to reply). */
    jr = pc_task_join(c->task, 1.0, &v);
    if (jr == PC_ETIMEDOUT || jr == PC_ENOENT)
        jr = d.reason == PC_DOWN_NORMAL  ? PC_OK
             : d.reason == PC_DOWN_ERROR ? PC_EFAILED
                                         : PC_EKILLED;
    if (c->end == END_TIMED_OUT) {
        done.outcome = PICOS__V1__RPS_OUTCOME__RPS_TIMED_OUT;
        rc = PC_ETIMEDOUT;
    } else if (c->end == END_CLOSED) {
        done.outcome = PICOS__V1__RPS_OUTCOME__RPS_CLOSED_DONE;
        rc = PC_ECLOSED;
    } else if (jr == PC_OK) {
        done.outcome = PICOS__V1__RPS_OUTCOME__RPS_NORMAL;
        if (v) {
            size_t len = 0;
            done.value_type = (char *)pc_msg_type(v);
            done.value.data = (uint8_t *)pc_msg_data(v, &len);
            done.value.len = len;
        } else if (d.value_type) {
            done.value_type = (char *)d.value_type;
            done.value.data = (uint8_t *)d.value;
            done.value.len = d.value_len;
        }
    } else if (jr == PC_EFAILED) {
        done.outcome = PICOS__V1__RPS_OUTCOME__RPS_ERROR;
        err = v ? pc_msg_str(v) : d.error;
        done.error = (char *)err;
        rc = PC_EFAILED;
    } else {
        done.outcome = PICOS__V1__RPS_OUTCOME__RPS_KILLED;
        rc = PC_EKILLED;
    }
    (void)pc__rps_send_pb(c->caller, RPS_T_DONE, &done.base);
    for (size_t i = 0; i < st->nwatchers; i++)
        (void)pc__rps_send_outcome(st->watchers[i], c->id, rc,
                                   rc == PC_EFAILED ? err : NULL);
    pc_msg_free(&v);
    pc_msg_free(&c->job->req);
    free(c->job);
    free(c);
    start_queued(st);
}

/* End overdue calls; return the seconds to the next deadline (-1: none). */
static double
deadlines(sv_state *st)
{
    double now = pc_now(), next = -1;
    sv_call **pp, *c;

    for (c = st->running; c; c = c->next) {
        if (c->end || c->deadline < 0)
            continue;
        if (c->deadline <= now) {
            c->end = END_TIMED_OUT;
            pc_task_terminate(c->task);
        } else if (next < 0 || c->deadline < next)
            next = c->deadline;
    }
    for (pp = &st->qhead; (c = *pp);) {
        if (c->deadline >= 0 && c->deadline <= now) {
            *pp = c->next;
            st->nqueued--;
            refuse(c->caller, c->id, PICOS__V1__RPS_REFUSAL__RPS_EXPIRED,
                   "deadline passed while queued");
            pc_msg_free(&c->req);
            free(c);
            continue;
        }
        if (c->deadline >= 0 && (next < 0 || c->deadline < next))
            next = c->deadline;
        st->qtail = c;
        pp = &c->next;
    }
    if (!st->qhead)
        st->qtail = NULL;
    return next < 0 ? -1 : next - now;
}

static void
close_all(sv_state *st)
{
    st->closing = true;
    for (sv_call *c = st->running; c; c = c->next) {
        if (!c->end) {
            c->end = END_CLOSED;
            pc_task_terminate(c->task);
        }
    }
    while (st->qhead) {
        sv_call *c = st->qhead;
        st->qhead = c->next;
        refuse(c->caller, c->id, PICOS__V1__RPS_REFUSAL__RPS_CLOSED,
               "service closed");
        pc_msg_free(&c->req);
        free(c);
    }
    st->qtail = NULL;
    st->nqueued = 0;
}

static pc_msg *
acceptor(void *arg)
{
    sv_state st = {.s = arg};

    for (;;) {
        pc_msg *m = NULL;
        double wait = deadlines(&st);

        if (st.closing && !st.nrunning)
            break;
        if (pc_recv(&m, wait) != PC_OK)
            continue;
        if (pc_msg_is(m, RPS_T_CALL))
            on_call(&st, m);
        else if (pc_msg_is(m, PC_MSG_DOWN))
            on_down(&st, m);
        else if (pc_msg_is(m, SV_WATCH)) {
            size_t len = 0;
            const void *d = pc_msg_data(m, &len);
            pc_ref *w =
                realloc(st.watchers, (st.nwatchers + 1) * sizeof *st.watchers);
            if (w && len == sizeof(pc_ref)) {
                st.watchers = w;
                memcpy(&w[st.nwatchers++], d, sizeof(pc_ref));
            } else if (w)
                st.watchers = w;
        } else if (pc_msg_is(m, SV_CLOSE))
            close_all(&st);
        pc_msg_free(&m);
    }
    free(st.watchers);
    return NULL;
}

pc_err
pc_rps_register(const pc_rps_opts *o, double timeout, pc_rps **out)
{
    pc_spawn_opts so = {.flags = PC_TASK_DAEMON | PC_TASK_JOINABLE,
                        .name = "rps.acceptor"};
    pc_rps *s;
    pc_err rc;

    if (!o || !out || !o->name || !o->fn || !o->name[0] ||
        strlen(o->name) > PC_NAME_MAX)
        return PC_EINVAL;
    *out = NULL;
    if (!(s = calloc(1, sizeof *s)))
        return PC_ENOMEM;
    s->o = *o;
    snprintf(s->name, sizeof s->name, "%s", o->name);
    s->o.name = s->name;
    if (s->o.max_inflight <= 0)
        s->o.max_inflight = 64;
    if (s->o.max_queued == 0)
        s->o.max_queued = 256;
    else if (s->o.max_queued < 0)
        s->o.max_queued = 0;
    if ((rc = pc_spawn(acceptor, s, &so, &s->acceptor)) != PC_OK) {
        free(s);
        return rc;
    }
    if ((rc = pc_name_register(PC_NAME_SERVICE, s->name, s->acceptor, timeout)) !=
        PC_OK) {
        pc_send_data(s->acceptor, SV_CLOSE, NULL, 0);
        pc_task_join(s->acceptor, -1, NULL);
        free(s);
        return rc;
    }
    *out = s;
    return PC_OK;
}

pc_err
pc_rps_monitor(pc_rps *s, pc_ref watcher)
{
    if (!s || pc_ref_is_nil(watcher))
        return PC_EINVAL;
    return pc_send_data(s->acceptor, SV_WATCH, &watcher, sizeof watcher) ==
                   PC_OK
               ? PC_OK
               : PC_ESTATE;
}

pc_err
pc_rps_close(pc_rps **sp, double grace)
{
    pc_rps *s = sp ? *sp : NULL;
    (void)grace; /* TODO(issue 10): grace for running calls */
    if (!s)
        return PC_OK;
    *sp = NULL;
    (void)pc_name_unregister(PC_NAME_SERVICE, s->name, 5.0);
    if (pc_send_data(s->acceptor, SV_CLOSE, NULL, 0) == PC_OK)
        pc_task_join(s->acceptor, -1, NULL);
    free(s);
    return PC_OK;
}
