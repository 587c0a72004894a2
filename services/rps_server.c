/* services/rps_server.c — the server side of Remote Pico Services.
 *
 * A service is one *acceptor* task, registered cluster-wide as the
 * service's name (PC_NAME_SERVICE). It alone owns the service's state (the
 * calls running, the queue, the watchers, the code), so that state takes
 * no lock: pc_rps_monitor() and pc_rps_close() talk to it with local
 * messages (control messages from other nodes are ignored).
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
 * Hot swap: the code (function, descriptors, version, limits) is a
 * *generation*; each call records the generation it was accepted under
 * and runs that one's function, queued or not. pc_rps_update() queues a
 * new generation on the handle (under its mutex, so that the acceptor's
 * end can never miss one) and rings; the acceptor installs it and retires
 * the old one with the update's release callback. Retired generations are
 * released oldest first, each once no call of it or of an older one is
 * left — so a release may unload everything its update replaced.
 *
 * Deadlines: the acceptor's pc_recv() waits until the earliest deadline of
 * its calls (or the end of a close's grace); a running call past it is
 * terminated and marked so that its DOWN reports TIMED_OUT; a queued one is
 * refused EXPIRED. pc_rps_close() refuses new calls at once, lets the
 * running (and queued) ones go on for the grace, then terminates those
 * left (CLOSED) and refuses the queue; the acceptor ends once the last DOWN
 * came. The handle and the acceptor share pc_rps by a reference count, so
 * a close that gives up waiting leaves the acceptor nothing freed.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/log.h"
#include "picos/monitor.h"
#include "picos/node.h"
#include "picos/registry.h"
#include "picos/sync.h"
#include "picos/task.h"

#include "rps_int.h"

#define SV_WATCH "picos.rps.watch"
#define SV_CLOSE "picos.rps.close"
#define SV_UPDATE "picos.rps.update"

enum { END_NONE, END_TIMED_OUT, END_CLOSED };

/* One generation of the service's code: what pc_rps_register() or one
 * pc_rps_update() gave. The acceptor's. */
typedef struct sv_gen {
    pc_rps_fn fn;
    const ProtobufCMessageDescriptor *req_desc, *resp_desc;
    uint32_t version;
    int max_inflight, max_queued;
    size_t stack_size;
    int calls;                 /* accepted under it, queued or running */
    pc_rps_release_fn release; /* of the update that retired it */
    void *arg;
    Picos__V1__RpsSchema *schema; /* built by the first describe asking */
    struct sv_gen *next;          /* retired: the next newer one */
} sv_gen;

typedef struct sv_call {
    uint64_t id;
    pc_ref caller, task;
    double deadline;    /* pc_now() seconds; < 0: none */
    double since;       /* when it came */
    pc_msg *req;        /* while queued */
    struct sv_job *job; /* while running: freed at its DOWN */
    sv_gen *gen;        /* the code it was accepted under */
    int end;
    struct sv_call *next;
} sv_call;

/* An update on its way: queued on the handle, taken by the acceptor. */
typedef struct sv_upd {
    _Atomic int refs; /* the caller's and the queue's */
    sv_gen *gen;
    pc_rps_release_fn release;
    void *arg;
    pc_event *taken;
    struct sv_upd *next;
} sv_upd;

struct pc_rps {
    _Atomic int refs; /* the handle's and the acceptor's */
    char name[PC_NAME_MAX + 1];
    pc_ref acceptor;
    pthread_mutex_t mu; /* guards ended and the updates queue */
    bool ended;
    sv_upd *uhead, *utail;
    struct pc_rps *next_open; /* in open_list, under open_mu */
};

typedef struct sv_state {
    pc_rps *s;
    sv_gen *gen;            /* the code of new calls */
    sv_gen *old, *old_tail; /* retired, oldest first, not yet released */
    sv_call *running;       /* unordered list */
    int nrunning;
    sv_call *qhead, *qtail;
    int nqueued;
    uint64_t accepted;
    pc_ref *watchers;
    size_t nwatchers;
    bool closing;
    bool finished;   /* finish() ran */
    double close_at; /* the grace's end; < 0: none (yet) */
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

/* The services open on this node: a second one of a name would take the
 * name from the first at the registry (a node is the judge of its own). */
static pthread_mutex_t open_mu = PTHREAD_MUTEX_INITIALIZER;
static pc_rps *open_list;

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

/* Control messages and DOWNs count only from this node: another node could
 * send any type to the acceptor's ref. */
static bool
local(const pc_msg *m)
{
    pc_ref from = pc_msg_sender(m);
    return from.node == 0 || from.node == pc_node_id();
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

static sv_gen *
gen_new(const pc_rps_opts *o)
{
    sv_gen *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->fn = o->fn;
    g->req_desc = o->req_desc;
    g->resp_desc = o->resp_desc;
    g->version = o->version;
    g->stack_size = o->stack_size;
    g->max_inflight = o->max_inflight > 0 ? o->max_inflight : 64;
    g->max_queued = o->max_queued == 0  ? 256
                    : o->max_queued < 0 ? 0
                                        : o->max_queued;
    return g;
}

static void
gen_free(sv_gen *g)
{
    if (g) {
        pc__rps_schema_free(&g->schema);
        free(g);
    }
}

static void
upd_unref(sv_upd *u)
{
    if (u && atomic_fetch_sub(&u->refs, 1) == 1) {
        gen_free(u->gen);
        pc_event_free(&u->taken);
        free(u);
    }
}

static void
sv_unref(pc_rps *s)
{
    if (s && atomic_fetch_sub(&s->refs, 1) == 1) {
        pthread_mutex_destroy(&s->mu);
        free(s);
    }
}

/* Release the retired generations, oldest first, while no call of one is
 * left: a release then covers every call accepted before its update. */
static void
release_ready(sv_state *st)
{
    while (st->old && st->old->calls == 0) {
        sv_gen *g = st->old;
        if (!(st->old = g->next))
            st->old_tail = NULL;
        if (g->release)
            g->release(g->arg);
        gen_free(g);
    }
}

/* A call leaves the service (ended, refused from the queue, or not
 * started): its generation may be released now. */
static void
call_gone(sv_state *st, sv_call *c)
{
    c->gen->calls--;
    pc_msg_free(&c->req);
    free(c);
    release_ready(st);
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

/* Spawn c's task on the code c was accepted under (c->req passes to it)
 * and tell the caller. */
static void
start(sv_state *st, sv_call *c)
{
    pc_spawn_opts o = {.worker = PC_WORKER_ANY,
                       .flags = PC_TASK_DAEMON | PC_TASK_JOINABLE,
                       .stack_size = c->gen->stack_size,
                       .name = st->s->name};
    sv_job *j = malloc(sizeof *j);
    Picos__V1__RpsAccepted a = PICOS__V1__RPS_ACCEPTED__INIT;
    Picos__V1__Ref r = PICOS__V1__REF__INIT;
    char text[PC_NAME_MAX + 160];
    pc_err rc;

    if (!j) {
        rc = PC_ENOMEM;
        goto fail;
    }
    j->fn = c->gen->fn;
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
    snprintf(text, sizeof text, "service %s could not start the call: %s",
             st->s->name, pc_strerror(rc));
    refuse(c->caller, c->id, PICOS__V1__RPS_REFUSAL__RPS_BUSY, text);
    call_gone(st, c);
}

static void
start_queued(sv_state *st)
{
    while (st->qhead && st->nrunning < st->gen->max_inflight) {
        sv_call *c = st->qhead;
        if (!(st->qhead = c->next))
            st->qtail = NULL;
        st->nqueued--;
        c->next = NULL;
        start(st, c);
    }
}

/* The request as a message for fn: unpacked for a typed service. Returns
 * false with the refusal's text in text. */
static bool
request_msg(const sv_gen *g, const Picos__V1__RpsCall *rq, pc_msg **out,
            char *text, size_t size)
{
    ProtobufCMessage *pb;
    char why[192];

    if (!g->req_desc) {
        if (pc_msg_new(out, rq->request_type, rq->request.data,
                       rq->request.len) == PC_OK)
            return true;
        snprintf(text, size, "request type '%.100s' is not a message type",
                 rq->request_type);
        return false;
    }
    pb = protobuf_c_message_unpack(g->req_desc, NULL, rq->request.len,
                                   rq->request.data);
    if (pb && pc_msg_new_pb(out, pb) == PC_OK)
        return true;
    if (pb) {
        protobuf_c_message_free_unpacked(pb, NULL);
        snprintf(text, size, "request as %s: out of memory", g->req_desc->name);
        return false;
    }
    if (!pc__rps_why(g->req_desc, rq->request.data, rq->request.len, why,
                     sizeof why))
        snprintf(why, sizeof why, "protobuf-c could not unpack it");
    snprintf(text, size, "request does not parse as %s: %s", g->req_desc->name,
             why);
    return false;
}

static void
on_call(sv_state *st, pc_msg *m)
{
    size_t len = 0;
    const uint8_t *d = pc_msg_data(m, &len);
    Picos__V1__RpsCall *rq = picos__v1__rps_call__unpack(NULL, len, d);
    pc_ref from = pc_msg_sender(m);
    sv_gen *g = st->gen;
    char text[320];
    sv_call *c;

    if (!rq) {
        PC_LOG_WARN("rps", "%s: a call that does not decode, dropped",
                    st->s->name);
        return;
    }
    if (st->closing) {
        snprintf(text, sizeof text, "service %s is closing", st->s->name);
        refuse(from, rq->id, PICOS__V1__RPS_REFUSAL__RPS_CLOSED, text);
        goto out;
    }
    if (rq->deadline_ms == 0) {
        refuse(from, rq->id, PICOS__V1__RPS_REFUSAL__RPS_EXPIRED,
               "deadline passed before the call came (0 ms left)");
        goto out;
    }
    if (st->nrunning >= g->max_inflight && st->nqueued >= g->max_queued) {
        snprintf(text, sizeof text, "service busy: %d running, %d queued",
                 st->nrunning, st->nqueued);
        refuse(from, rq->id, PICOS__V1__RPS_REFUSAL__RPS_BUSY, text);
        goto out;
    }
    if (!(c = calloc(1, sizeof *c))) {
        refuse(from, rq->id, PICOS__V1__RPS_REFUSAL__RPS_BUSY,
               "service out of memory");
        goto out;
    }
    if (!request_msg(g, rq, &c->req, text, sizeof text)) {
        refuse(from, rq->id, PICOS__V1__RPS_REFUSAL__RPS_BAD_REQUEST, text);
        free(c);
        goto out;
    }
    c->id = rq->id;
    c->caller = from;
    c->since = pc_now();
    c->deadline = rq->deadline_ms < 0 ? -1 : c->since + rq->deadline_ms / 1e3;
    c->gen = g;
    g->calls++;
    st->accepted++;
    if (st->nrunning < g->max_inflight) {
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
    call_gone(st, c);
    start_queued(st);
}

/* Refuse every queued call: the service closed. */
static void
refuse_queued(sv_state *st)
{
    char text[PC_NAME_MAX + 32];

    snprintf(text, sizeof text, "service %s closed", st->s->name);
    while (st->qhead) {
        sv_call *c = st->qhead;
        st->qhead = c->next;
        st->nqueued--;
        refuse(c->caller, c->id, PICOS__V1__RPS_REFUSAL__RPS_CLOSED, text);
        call_gone(st, c);
    }
    st->qtail = NULL;
}

/* Terminate every running call (CLOSED) and refuse the queue. */
static void
close_all(sv_state *st)
{
    for (sv_call *c = st->running; c; c = c->next) {
        if (!c->end) {
            c->end = END_CLOSED;
            pc_task_terminate(c->task);
        }
    }
    refuse_queued(st);
}

/* End overdue calls and a grace that is over; return the seconds to the
 * next of them (-1: none). */
static double
timers(sv_state *st)
{
    double now = pc_now(), next = -1;
    sv_call **pp, *c;
    char text[PC_NAME_MAX + 160];

    if (st->closing && st->close_at >= 0) {
        if (st->close_at <= now) {
            st->close_at = -1;
            close_all(st);
        } else
            next = st->close_at;
    }
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
            snprintf(text, sizeof text,
                     "deadline passed after %.0f ms in the queue of service "
                     "%s (%d running, %d queued)",
                     (now - c->since) * 1e3, st->s->name, st->nrunning,
                     st->nqueued);
            refuse(c->caller, c->id, PICOS__V1__RPS_REFUSAL__RPS_EXPIRED, text);
            call_gone(st, c);
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

/* Update u: its generation takes new calls, the current one retires with
 * u's release. */
static void
install(sv_state *st, sv_upd *u)
{
    sv_gen *g = st->gen;

    g->release = u->release;
    g->arg = u->arg;
    g->next = NULL;
    if (st->old_tail)
        st->old_tail->next = g;
    else
        st->old = g;
    st->old_tail = g;
    st->gen = u->gen;
    u->gen = NULL;
    release_ready(st);
}

/* Install the updates of list u in their order, each one's caller told. */
static void
install_all(sv_state *st, sv_upd *u)
{
    while (u) {
        sv_upd *next = u->next;
        install(st, u);
        pc_event_set(u->taken);
        upd_unref(u);
        u = next;
    }
}

static void
take_updates(sv_state *st)
{
    sv_upd *u;

    pthread_mutex_lock(&st->s->mu);
    u = st->s->uhead;
    st->s->uhead = st->s->utail = NULL;
    pthread_mutex_unlock(&st->s->mu);
    install_all(st, u);
    start_queued(st); /* the new limits may allow more */
}

static void
on_close(sv_state *st, const pc_msg *m)
{
    size_t len = 0;
    const void *d = pc_msg_data(m, &len);
    double grace = 0;

    if (len == sizeof grace)
        memcpy(&grace, d, sizeof grace);
    st->closing = true;
    if (grace == 0)
        close_all(st);
    else if (grace > 0)
        st->close_at = pc_now() + grace;
}

static void
on_watch(sv_state *st, const pc_msg *m)
{
    size_t len = 0;
    const void *d = pc_msg_data(m, &len);
    pc_ref *w;

    if (len != sizeof(pc_ref) ||
        !(w = realloc(st->watchers, (st->nwatchers + 1) * sizeof *w)))
        return;
    st->watchers = w;
    memcpy(&w[st->nwatchers++], d, sizeof(pc_ref));
}

/* RpsDescribe: answered at once, whatever the load. */
static void
on_describe(sv_state *st, const pc_msg *m)
{
    size_t len = 0;
    const uint8_t *d = pc_msg_data(m, &len);
    Picos__V1__RpsDescribe *rq = picos__v1__rps_describe__unpack(NULL, len, d);
    Picos__V1__RpsInfo in = PICOS__V1__RPS_INFO__INIT;
    sv_gen *g = st->gen;

    if (!rq)
        return;
    in.id = rq->id;
    in.name = st->s->name;
    in.version = g->version;
    in.request_type = g->req_desc ? (char *)g->req_desc->name : "";
    in.response_type = g->resp_desc ? (char *)g->resp_desc->name : "";
    in.running = (uint32_t)st->nrunning;
    in.queued = (uint32_t)st->nqueued;
    in.max_inflight = (uint32_t)g->max_inflight;
    in.max_queued = (uint32_t)g->max_queued;
    in.calls = st->accepted;
    if (rq->schema && (g->req_desc || g->resp_desc) && !g->schema &&
        pc__rps_schema_build(g->req_desc, g->resp_desc, &g->schema) != PC_OK)
        PC_LOG_WARN("rps", "%s: no schema for describe: out of memory",
                    st->s->name);
    if (rq->schema)
        in.schema = g->schema;
    (void)pc__rps_send_pb(pc_msg_sender(m), RPS_T_INFO, &in.base);
    picos__v1__rps_describe__free_unpacked(rq, NULL);
}

/* The acceptor's end, on its task or in its exit handler (when it was
 * killed, e.g. by pc_node_stop(): then calls may still run). Updates still
 * queued are taken (no new call will come), and what can be released is. */
static void
finish(sv_state *st)
{
    pc_rps *s = st->s;
    sv_upd *u;
    int left = 0;

    if (st->finished)
        return;
    st->finished = true;
    pthread_mutex_lock(&s->mu);
    s->ended = true;
    u = s->uhead;
    s->uhead = s->utail = NULL;
    pthread_mutex_unlock(&s->mu);
    refuse_queued(st);
    install_all(st, u);
    /* calls still running (killed): their jobs stay theirs, their code is
     * not released */
    while (st->running) {
        sv_call *c = st->running;
        st->running = c->next;
        free(c);
        left++;
    }
    if (st->old)
        PC_LOG_WARN("rps",
                    "service %s ended with %d calls running: the code they "
                    "run is not released",
                    s->name, left);
    while (st->old) {
        sv_gen *g = st->old;
        st->old = g->next;
        gen_free(g);
    }
    gen_free(st->gen);
    st->gen = NULL;
    free(st->watchers);
    st->watchers = NULL;
    sv_unref(s);
}

static void
acceptor_exit(void *arg)
{
    sv_state *st = arg;
    finish(st);
    free(st);
}

static pc_msg *
acceptor(void *arg)
{
    sv_state *st = arg;

    pc_at_exit(acceptor_exit, st);
    for (;;) {
        pc_msg *m = NULL;
        double wait = timers(st);

        if (st->closing && !st->nrunning && !st->nqueued)
            break;
        if (pc_recv(&m, wait) != PC_OK)
            continue;
        if (pc_msg_is(m, RPS_T_CALL))
            on_call(st, m);
        else if (pc_msg_is(m, RPS_T_DESCRIBE))
            on_describe(st, m);
        else if (!local(m))
            ; /* control messages and DOWNs are this node's */
        else if (pc_msg_is(m, PC_MSG_DOWN))
            on_down(st, m);
        else if (pc_msg_is(m, SV_UPDATE))
            take_updates(st);
        else if (pc_msg_is(m, SV_WATCH))
            on_watch(st, m);
        else if (pc_msg_is(m, SV_CLOSE))
            on_close(st, m);
        pc_msg_free(&m);
    }
    finish(st);
    return NULL;
}

/* Take name for s on this node; false when an open service has it. */
static bool
open_add(pc_rps *s)
{
    pthread_mutex_lock(&open_mu);
    for (pc_rps *o = open_list; o; o = o->next_open) {
        if (!strcmp(o->name, s->name)) {
            pthread_mutex_unlock(&open_mu);
            return false;
        }
    }
    s->next_open = open_list;
    open_list = s;
    pthread_mutex_unlock(&open_mu);
    return true;
}

static void
open_del(pc_rps *s)
{
    pthread_mutex_lock(&open_mu);
    for (pc_rps **pp = &open_list; *pp; pp = &(*pp)->next_open) {
        if (*pp == s) {
            *pp = s->next_open;
            break;
        }
    }
    pthread_mutex_unlock(&open_mu);
}

/* Ask the acceptor to close with `grace`. */
static pc_err
send_close(pc_rps *s, double grace)
{
    return pc_send_data(s->acceptor, SV_CLOSE, &grace, sizeof grace);
}

pc_err
pc_rps_register(const pc_rps_opts *o, double timeout, pc_rps **out)
{
    pc_spawn_opts so = {.flags = PC_TASK_DAEMON | PC_TASK_JOINABLE,
                        .name = "rps.acceptor"};
    pc_rps *s;
    sv_state *st;
    pc_err rc;

    if (out)
        *out = NULL;
    if (!o || !out || !o->name || !o->fn || !o->name[0] ||
        strlen(o->name) > PC_NAME_MAX)
        return PC_EINVAL;
    s = calloc(1, sizeof *s);
    st = calloc(1, sizeof *st);
    if (!s || !st || !(st->gen = gen_new(o))) {
        free(s);
        if (st)
            free(st->gen);
        free(st);
        return PC_ENOMEM;
    }
    atomic_init(&s->refs, 2);
    pthread_mutex_init(&s->mu, NULL);
    snprintf(s->name, sizeof s->name, "%s", o->name);
    st->s = s;
    st->close_at = -1;
    if (!open_add(s)) {
        PC_LOG_WARN("rps", "service %s is open on this node already", s->name);
        rc = PC_EEXIST;
        goto undo;
    }
    if ((rc = pc_spawn(acceptor, st, &so, &s->acceptor)) != PC_OK) {
        open_del(s);
        goto undo;
    }
    if ((rc = pc_name_register(PC_NAME_SERVICE, s->name, s->acceptor,
                               timeout)) != PC_OK) {
        /* the registry agent undoes an OK that comes later */
        open_del(s);
        (void)send_close(s, 0);
        (void)pc_task_join(s->acceptor, -1, NULL);
        sv_unref(s);
        return rc;
    }
    *out = s;
    return PC_OK;
undo:
    gen_free(st->gen);
    free(st);
    pthread_mutex_destroy(&s->mu);
    free(s);
    return rc;
}

pc_err
pc_rps_update(pc_rps *s, const pc_rps_opts *o, pc_rps_release_fn release,
              void *arg, double timeout)
{
    sv_upd *u;
    pc_err rc;

    if (!s || !o || !o->fn || (o->name && strcmp(o->name, s->name)))
        return PC_EINVAL;
    if (!(u = calloc(1, sizeof *u)) || !(u->gen = gen_new(o)) ||
        pc_event_new(&u->taken) != PC_OK) {
        if (u) {
            atomic_init(&u->refs, 1);
            upd_unref(u);
        }
        return PC_ENOMEM;
    }
    atomic_init(&u->refs, 2);
    u->release = release;
    u->arg = arg;
    pthread_mutex_lock(&s->mu);
    if (s->ended) {
        pthread_mutex_unlock(&s->mu);
        atomic_store(&u->refs, 1);
        upd_unref(u);
        return PC_ESTATE;
    }
    if (s->utail)
        s->utail->next = u;
    else
        s->uhead = u;
    s->utail = u;
    pthread_mutex_unlock(&s->mu);
    /* a doorbell: the queue is taken at the acceptor's end if not before */
    (void)pc_send_data(s->acceptor, SV_UPDATE, NULL, 0);
    rc = pc_event_wait(u->taken, timeout);
    upd_unref(u);
    return rc == PC_OK ? PC_OK : PC_ETIMEDOUT;
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
    pc_err rc = PC_OK;

    if (!s)
        return PC_OK;
    *sp = NULL;
    open_del(s);
    (void)pc_name_unregister(PC_NAME_SERVICE, s->name, 5.0);
    if (send_close(s, grace) == PC_OK &&
        pc_task_join(s->acceptor, grace < 0 ? -1 : grace + 5.0, NULL) ==
            PC_ETIMEDOUT) {
        PC_LOG_WARN("rps", "service %s: calls did not end within %.3g s",
                    s->name, grace + 5.0);
        rc = PC_ETIMEDOUT;
    }
    sv_unref(s);
    return rc;
}
