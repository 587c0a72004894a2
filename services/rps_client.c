/* services/rps_client.c — the client side of Remote Pico Services.
 *
 * One agent task per process (spawned on first use, again after a node
 * restart) holds every call in flight in a table keyed by the call's
 * 64-bit id (ids count up per process, never reused). Callers never talk
 * to the service themselves: pc_rps_call() packs the RpsCall in its own
 * thread (so the caller's request is never touched by anyone else and
 * stays the caller's on every error), puts the call in the table and hands
 * it to the agent, which sends it — so the service's answers (RpsAccepted,
 * RpsRefused, RpsDone) come back to the agent, the one reader of them.
 *
 * Each call has two pc_events: `accepted` (set by RpsAccepted, a refusal,
 * or an end) and `done` (set once its outcome is known). A describe is the
 * same record without a task: its RpsInfo is its outcome. The outcome stays
 * in the call until pc_rps_call_free(), so finish may be called late or
 * again. The agent monitors each acceptor it sends to, once (not once per
 * call: each monitor is an envelope each way and a remote watch), and
 * its DOWN ends every call of that service still open, accepted or not:
 * PC_EUNREACH when it says PC_DOWN_NODE, else PC_ECLOSED. That covers the
 * call tasks too, without a monitor each: they run on the acceptor's node,
 * and an acceptor ends only after the RpsDone of every call it ran, which
 * come before its DOWN on the same link. A call is shared by its owner, the
 * table (until its end) and the message handing it to the agent: a reference
 * count decides who frees it; the mutex `mu` guards the table and every call's
 * state. Each end has a one-line text (the service's refusal or
 * error text, or what happened here); the caller's thread copies it into
 * the handle for pc_rps_client_error() when its call returns the error.
 */
#define _GNU_SOURCE
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

#define CL_GO "picos.rps.go"
#define NBUCKET 1024

struct pc_rps_client {
    _Atomic int refs;
    pc_ref acceptor;
    char name[PC_NAME_MAX + 1];
    pc_ref *watchers; /* under mu */
    size_t nwatchers;
    char err[256]; /* pc_rps_client_error(); written under mu */
};

enum { ST_SENT, ST_ACCEPTED, ST_DONE };
enum { K_CALL, K_DESCRIBE };

struct pc_rps_call {
    _Atomic int refs;
    uint64_t id;
    int kind;
    pc_rps_client *client;
    pc_ref task;
    int state;
    pc_err rc;     /* refusal or outcome */
    pc_msg *value; /* outcome's value or error message; a describe's RpsInfo */
    char text[256];
    pc_event *accepted, *done;
    uint8_t
        *wire; /* the packed RpsCall / RpsDescribe until the agent sends it */
    size_t wire_len;
    const char *wire_type;
    struct pc_rps_call *next; /* in its bucket */
    bool in_table;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct pc_rps_call *table[NBUCKET];
static pc_ref agent_ref;
static _Atomic uint64_t next_id = 1;
/* The acceptors the agent monitors, until their DOWN: the agent's alone. */
static pc_ref *watched;
static size_t nwatched;

static void
client_unref(pc_rps_client *c)
{
    if (c && atomic_fetch_sub(&c->refs, 1) == 1) {
        free(c->watchers);
        free(c);
    }
}

static void
call_unref(struct pc_rps_call *k)
{
    if (k && atomic_fetch_sub(&k->refs, 1) == 1) {
        pc_event_free(&k->accepted);
        pc_event_free(&k->done);
        pc_msg_free(&k->value);
        free(k->wire);
        client_unref(k->client);
        free(k);
    }
}

/* Under mu. */
static struct pc_rps_call *
find(uint64_t id)
{
    for (struct pc_rps_call *k = table[id % NBUCKET]; k; k = k->next)
        if (k->id == id)
            return k;
    return NULL;
}

/* Under mu: take k out of the table (its reference passes to the caller). */
static void
untable(struct pc_rps_call *k)
{
    struct pc_rps_call **pp = &table[k->id % NBUCKET];
    while (*pp && *pp != k)
        pp = &(*pp)->next;
    if (*pp)
        *pp = k->next;
    k->in_table = false;
}

/* Under mu: k ends with rc (value: the caller's reference passes to k).
 * Returns true when k was not ended before; the table's reference is then
 * the caller's to drop (after mu). */
static bool
end_call(struct pc_rps_call *k, pc_err rc, pc_msg *value, const char *text)
{
    if (k->state == ST_DONE) {
        pc_msg_free(&value);
        return false;
    }
    k->state = ST_DONE;
    k->rc = rc;
    k->value = value;
    snprintf(k->text, sizeof k->text, "%s", text ? text : "");
    if (k->in_table)
        untable(k);
    for (size_t i = 0; k->kind == K_CALL && i < k->client->nwatchers; i++)
        (void)pc__rps_send_outcome(k->client->watchers[i], k->id, rc,
                                   rc == PC_EFAILED ? k->text : NULL);
    pc_event_set(k->accepted);
    pc_event_set(k->done);
    return true;
}

static pc_err
refusal_rc(Picos__V1__RpsRefusal code)
{
    switch (code) {
    case PICOS__V1__RPS_REFUSAL__RPS_BUSY:
        return PC_EFULL;
    case PICOS__V1__RPS_REFUSAL__RPS_BAD_REQUEST:
        return PC_EINVAL;
    case PICOS__V1__RPS_REFUSAL__RPS_CLOSED:
        return PC_ECLOSED;
    case PICOS__V1__RPS_REFUSAL__RPS_EXPIRED:
        return PC_ETIMEDOUT;
    default:
        return PC_ENOENT;
    }
}

/* The agent monitors acceptor a, unless it does already. */
static void
watch_acceptor(pc_ref a)
{
    pc_ref *w;

    for (size_t i = 0; i < nwatched; i++)
        if (pc_ref_eq(watched[i], a))
            return;
    if (pc_monitor(pc_self(), a) != PC_OK)
        return; /* the send below fails the same way */
    if ((w = realloc(watched, (nwatched + 1) * sizeof *w))) {
        watched = w;
        watched[nwatched++] = a;
    } /* else: monitored again next time (the target keeps one) */
}

/* The DOWN of a came: a later call monitors it again (and its NOPROC DOWN
 * ends that call). */
static void
unwatch_acceptor(pc_ref a)
{
    for (size_t i = 0; i < nwatched; i++) {
        if (pc_ref_eq(watched[i], a)) {
            watched[i] = watched[--nwatched];
            return;
        }
    }
}

static void
on_go(pc_msg *m)
{
    struct pc_rps_call *k = NULL;
    size_t len = 0;
    const void *d = pc_msg_data(m, &len);
    pc_msg *w = NULL;
    pc_err rc;
    bool drop = false;

    if (len != sizeof k)
        return;
    memcpy(&k, d, sizeof k);
    pthread_mutex_lock(&mu);
    if (k->state == ST_DONE) { /* the caller gave up already */
        pthread_mutex_unlock(&mu);
        call_unref(k); /* the go message's reference */
        return;
    }
    rc = pc_msg_new(&w, k->wire_type, k->wire, k->wire_len);
    free(k->wire);
    k->wire = NULL;
    if (rc == PC_OK) {
        watch_acceptor(k->client->acceptor);
        if ((rc = pc_send(k->client->acceptor, &w)) != PC_OK)
            pc_msg_free(&w);
    }
    if (rc != PC_OK) {
        char text[PC_NAME_MAX + 64];
        snprintf(text, sizeof text, "could not send to service %s: %s",
                 k->client->name, pc_strerror(rc));
        drop = end_call(k,
                        rc != PC_ENOENT     ? rc
                        : k->kind == K_CALL ? PC_ECLOSED
                                            : PC_ENOENT,
                        NULL, text);
    }
    pthread_mutex_unlock(&mu);
    if (drop)
        call_unref(k);
    call_unref(k); /* the go message's reference */
}

static void
on_answer(pc_msg *m)
{
    size_t len = 0;
    const uint8_t *d = pc_msg_data(m, &len);
    struct pc_rps_call *k, *drop = NULL;

    if (pc_msg_is(m, RPS_T_ACCEPTED)) {
        Picos__V1__RpsAccepted *a =
            picos__v1__rps_accepted__unpack(NULL, len, d);
        if (!a)
            return;
        pthread_mutex_lock(&mu);
        if ((k = find(a->id)) && k->state == ST_SENT && a->task) {
            k->task = (pc_ref){a->task->node, a->task->id};
            k->state = ST_ACCEPTED;
            pc_event_set(k->accepted);
        }
        pthread_mutex_unlock(&mu);
        picos__v1__rps_accepted__free_unpacked(a, NULL);
    } else if (pc_msg_is(m, RPS_T_REFUSED)) {
        Picos__V1__RpsRefused *r = picos__v1__rps_refused__unpack(NULL, len, d);
        if (!r)
            return;
        pthread_mutex_lock(&mu);
        if ((k = find(r->id)) &&
            end_call(k, refusal_rc(r->code), NULL, r->text))
            drop = k;
        pthread_mutex_unlock(&mu);
        picos__v1__rps_refused__free_unpacked(r, NULL);
    } else if (pc_msg_is(m, RPS_T_INFO)) {
        Picos__V1__RpsInfo *in = picos__v1__rps_info__unpack(NULL, len, d);
        if (!in)
            return;
        pthread_mutex_lock(&mu);
        if ((k = find(in->id)) && k->kind == K_DESCRIBE &&
            end_call(k, PC_OK, pc_msg_ref(m), NULL))
            drop = k;
        pthread_mutex_unlock(&mu);
        picos__v1__rps_info__free_unpacked(in, NULL);
    } else if (pc_msg_is(m, RPS_T_DONE)) {
        Picos__V1__RpsDone *dn = picos__v1__rps_done__unpack(NULL, len, d);
        pc_msg *v = NULL;
        pc_err rc = PC_OK;
        char text[PC_NAME_MAX + 64];
        const char *why = NULL, *post = ""; /* text: why, the name, post */
        if (!dn)
            return;
        switch (dn->outcome) {
        case PICOS__V1__RPS_OUTCOME__RPS_NORMAL:
            if (dn->value_type[0] || dn->value.len)
                (void)pc_msg_new(&v, dn->value_type, dn->value.data,
                                 dn->value.len);
            break;
        case PICOS__V1__RPS_OUTCOME__RPS_ERROR:
            rc = PC_EFAILED;
            (void)pc_msg_new_str(&v, PC_MSG_ERROR, dn->error);
            break;
        case PICOS__V1__RPS_OUTCOME__RPS_TIMED_OUT:
            rc = PC_ETIMEDOUT;
            why = "deadline passed: service ";
            post = " terminated the call";
            break;
        case PICOS__V1__RPS_OUTCOME__RPS_CLOSED_DONE:
            rc = PC_ECLOSED;
            why = "service ";
            post = " closed during the call";
            break;
        default:
            rc = PC_EKILLED;
            why = "killed: the call's task at service ";
            post = " was terminated";
        }
        pthread_mutex_lock(&mu);
        if ((k = find(dn->id)) && k->kind == K_CALL) {
            if (why)
                snprintf(text, sizeof text, "%s%s%s", why, k->client->name,
                         post);
            if (end_call(k, rc, v, why ? text : dn->error))
                drop = k;
            v = NULL;
        }
        pthread_mutex_unlock(&mu);
        pc_msg_free(&v);
        picos__v1__rps_done__free_unpacked(dn, NULL);
    }
    call_unref(drop);
}

/* An acceptor ended: every call of it still open ends (the RpsDone of
 * those it ran came first, unless its node went down). */
static void
on_down(pc_msg *m)
{
    pc_down d;
    struct pc_rps_call *drops = NULL;

    if (pc_down_parse(m, &d) != PC_OK)
        return;
    unwatch_acceptor(d.who);
    pthread_mutex_lock(&mu);
    for (int b = 0; b < NBUCKET; b++) {
        for (struct pc_rps_call *k = table[b], *nx; k; k = nx) {
            nx = k->next;
            if (!pc_ref_eq(k->client->acceptor, d.who))
                continue;
            char text[PC_NAME_MAX + 64];
            snprintf(text, sizeof text,
                     d.reason == PC_DOWN_NODE ? "service node down (service %s)"
                                              : "service %s gone",
                     k->client->name);
            if (end_call(k,
                         d.reason == PC_DOWN_NODE ? PC_EUNREACH
                         : k->kind == K_CALL      ? PC_ECLOSED
                                                  : PC_ENOENT,
                         NULL, text)) {
                k->next = drops;
                drops = k;
            }
        }
    }
    pthread_mutex_unlock(&mu);
    while (drops) {
        struct pc_rps_call *k = drops;
        drops = k->next;
        call_unref(k);
    }
}

/* The agent's end (node stopped): every call in the table ends CLOSED. */
static void
agent_end(void *arg)
{
    struct pc_rps_call *drops = NULL;
    (void)arg;
    free(watched); /* a new agent monitors afresh */
    watched = NULL;
    nwatched = 0;
    pthread_mutex_lock(&mu);
    for (int b = 0; b < NBUCKET; b++) {
        while (table[b]) {
            struct pc_rps_call *k = table[b];
            if (end_call(k, PC_ECLOSED, NULL, "node stopped")) {
                k->next = drops;
                drops = k;
            } else
                untable(k);
        }
    }
    pthread_mutex_unlock(&mu);
    while (drops) {
        struct pc_rps_call *k = drops;
        drops = k->next;
        call_unref(k);
    }
}

static pc_msg *
agent(void *arg)
{
    (void)arg;
    pc_at_exit(agent_end, NULL);
    for (;;) {
        pc_msg *m = NULL;
        if (pc_recv(&m, -1) != PC_OK)
            continue;
        if (pc_msg_is(m, CL_GO))
            on_go(m);
        else if (pc_msg_is(m, PC_MSG_DOWN))
            on_down(m);
        else
            on_answer(m);
        pc_msg_free(&m);
    }
    return NULL;
}

/* The agent's ref, spawning it when there is none alive. */
static pc_err
agent_get(pc_ref *out)
{
    pc_spawn_opts o = {.flags = PC_TASK_DAEMON, .name = "rps.agent"};
    pc_err rc = PC_OK;
    pthread_mutex_lock(&mu);
    if (pc_ref_is_nil(agent_ref) || !pc_alive(agent_ref))
        rc = pc_spawn(agent, NULL, &o, &agent_ref);
    *out = agent_ref;
    pthread_mutex_unlock(&mu);
    return rc;
}

/* ---- the API ----------------------------------------------------------------- */

pc_err
pc_rps_locate(const char *name, double timeout, pc_rps_client **out)
{
    pc_rps_client *c;
    pc_ref r;
    pc_err rc;

    if (!name || !out || strlen(name) > PC_NAME_MAX)
        return PC_EINVAL;
    *out = NULL;
    if ((rc = pc_locate(PC_NAME_SERVICE, name, timeout, &r)) != PC_OK)
        return rc;
    if (!(c = calloc(1, sizeof *c)))
        return PC_ENOMEM;
    atomic_init(&c->refs, 1);
    c->acceptor = r;
    snprintf(c->name, sizeof c->name, "%s", name);
    *out = c;
    return PC_OK;
}

/* The handle's error text, from the caller's thread. */
static void
set_err(pc_rps_client *c, const char *text)
{
    pthread_mutex_lock(&mu);
    snprintf(c->err, sizeof c->err, "%s", text);
    pthread_mutex_unlock(&mu);
}

/* Same, from k's end (its text is written under mu). */
static void
set_err_from(struct pc_rps_call *k)
{
    pthread_mutex_lock(&mu);
    snprintf(k->client->err, sizeof k->client->err, "%s", k->text);
    pthread_mutex_unlock(&mu);
}

/* A new record of kind for c (references: the caller's, the table's, the
 * go message's), its id in *id: the caller packs its message with it. */
static pc_err
rec_new(pc_rps_client *c, int kind, struct pc_rps_call **out)
{
    struct pc_rps_call *k = calloc(1, sizeof *k);

    *out = NULL;
    if (!k)
        return PC_ENOMEM;
    atomic_init(&k->refs, 3);
    atomic_fetch_add(&c->refs, 1);
    k->client = c;
    k->kind = kind;
    k->id = atomic_fetch_add(&next_id, 1);
    if (pc_event_new(&k->accepted) != PC_OK ||
        pc_event_new(&k->done) != PC_OK) {
        atomic_store(&k->refs, 1);
        call_unref(k);
        return PC_ENOMEM;
    }
    *out = k;
    return PC_OK;
}

/* rec_new() for a request that waits up to `timeout` for its answer; the
 * error's text (timeout 0: "timeout 0: WHAT was not sent", nothing is
 * there to take without sending) on c. */
static pc_err
rec_begin(pc_rps_client *c, int kind, double timeout, const char *what,
          struct pc_rps_call **out)
{
    char text[64];
    pc_err rc;

    *out = NULL;
    if (timeout == 0) {
        snprintf(text, sizeof text, "timeout 0: %s was not sent", what);
        set_err(c, text);
        return PC_ETIMEDOUT;
    }
    if ((rc = rec_new(c, kind, out)) != PC_OK)
        set_err(c, pc_strerror(rc));
    return rc;
}

/* Pack pb (type) into k, put k in the table and hand it to the agent. On
 * an error k has ended and only the caller's reference is left. */
static pc_err
rec_submit(struct pc_rps_call *k, const char *type, const ProtobufCMessage *pb)
{
    pc_msg *go = NULL;
    pc_ref ag;
    pc_err rc;
    bool drop;

    if ((rc = agent_get(&ag)) != PC_OK)
        goto fail;
    k->wire_type = type;
    k->wire_len = protobuf_c_message_get_packed_size(pb);
    if (!(k->wire = malloc(k->wire_len ? k->wire_len : 1))) {
        rc = PC_ENOMEM;
        goto fail;
    }
    protobuf_c_message_pack(pb, k->wire);
    pthread_mutex_lock(&mu);
    k->next = table[k->id % NBUCKET];
    table[k->id % NBUCKET] = k;
    k->in_table = true;
    pthread_mutex_unlock(&mu);
    if ((rc = pc_msg_new(&go, CL_GO, &k, sizeof k)) != PC_OK ||
        (rc = pc_send(ag, &go)) != PC_OK) {
        pc_msg_free(&go);
        call_unref(k); /* the go message's: it never left */
        pthread_mutex_lock(&mu);
        drop = end_call(k, rc, NULL, pc_strerror(rc));
        pthread_mutex_unlock(&mu);
        if (drop)
            call_unref(k);
        return rc;
    }
    return PC_OK;
fail:
    snprintf(k->text, sizeof k->text, "%s", pc_strerror(rc));
    atomic_store(&k->refs, 1);
    return rc;
}

/* k was not answered in time: it ends here (a late answer finds no call). */
static void
rec_give_up(struct pc_rps_call *k, double timeout)
{
    char text[PC_NAME_MAX + 64];
    bool drop;

    snprintf(text, sizeof text, "no answer from service %s within %.3g s",
             k->client->name, timeout);
    pthread_mutex_lock(&mu);
    drop = end_call(k, PC_ETIMEDOUT, NULL, text);
    pthread_mutex_unlock(&mu);
    if (drop)
        call_unref(k);
}

pc_err
pc_rps_call(pc_rps_client *c, pc_msg **req, double timeout,
            struct pc_rps_call **out)
{
    Picos__V1__RpsCall w = PICOS__V1__RPS_CALL__INIT;
    struct pc_rps_call *k;
    size_t len = 0;
    pc_err rc;

    if (out)
        *out = NULL;
    if (!c || !req || !*req || !out)
        return PC_EINVAL;
    if ((rc = rec_begin(c, K_CALL, timeout, "the call", &k)) != PC_OK)
        return rc;
    w.id = k->id;
    w.deadline_ms = timeout < 0 ? -1 : (int64_t)(timeout * 1e3) + 1;
    w.request_type = (char *)pc_msg_type(*req);
    w.request.data = (uint8_t *)pc_msg_data(*req, &len);
    w.request.len = len;
    if ((rc = rec_submit(k, RPS_T_CALL, &w.base)) != PC_OK)
        goto out;
    rc = pc_event_wait(k->accepted, timeout);
    if (rc != PC_OK) {
        /* not accepted in time: the service ends it at the same deadline */
        rec_give_up(k, timeout);
        rc = PC_ETIMEDOUT;
    } else {
        pthread_mutex_lock(&mu);
        if (k->state == ST_DONE && !k->task.id)
            rc = k->rc; /* refused, or failed before it was accepted */
        pthread_mutex_unlock(&mu);
    }
out:
    if (rc != PC_OK) {
        set_err_from(k);
        if (rc == PC_EFULL)
            PC_LOG_WARN("rps", "%s: %s", c->name, c->err);
        call_unref(k);
        return rc;
    }
    pc_msg_free(req);
    *out = k;
    return PC_OK;
}

pc_ref
pc_rps_call_task(const struct pc_rps_call *k)
{
    pc_ref r = PC_REF_NIL;
    if (k) {
        pthread_mutex_lock(&mu);
        r = k->task;
        pthread_mutex_unlock(&mu);
    }
    return r;
}

uint64_t
pc_rps_call_id(const struct pc_rps_call *k)
{
    return k ? k->id : 0;
}

pc_err
pc_rps_finish(struct pc_rps_call *k, double timeout, pc_msg **value)
{
    pc_err rc;

    if (value)
        *value = NULL;
    if (!k)
        return PC_EINVAL;
    if ((rc = pc_event_wait(k->done, timeout)) != PC_OK) {
        char text[96];
        snprintf(text, sizeof text,
                 "no outcome within %.3g s (the call goes on)", timeout);
        set_err(k->client, text);
        return rc == PC_ECLOSED ? PC_ECLOSED : PC_ETIMEDOUT;
    }
    pthread_mutex_lock(&mu);
    rc = k->rc;
    if (value && k->value)
        *value = pc_msg_ref(k->value);
    if (rc != PC_OK)
        snprintf(k->client->err, sizeof k->client->err, "%s", k->text);
    pthread_mutex_unlock(&mu);
    return rc;
}

void
pc_rps_call_free(struct pc_rps_call **k)
{
    if (k && *k) {
        call_unref(*k);
        *k = NULL;
    }
}

pc_err
pc_rps_request(pc_rps_client *c, pc_msg **req, double timeout, pc_msg **reply)
{
    double until = timeout < 0 ? -1 : pc_now() + timeout;
    struct pc_rps_call *k = NULL;
    pc_msg *mine;
    pc_err rc;

    if (reply)
        *reply = NULL;
    if (!c || !req || !*req || !reply)
        return PC_EINVAL;
    mine = pc_msg_ref(*req); /* so that *req stays the caller's on errors */
    if ((rc = pc_rps_call(c, &mine, timeout, &k)) != PC_OK) {
        pc_msg_free(&mine);
        return rc;
    }
    /* a little past the deadline: the service's TIMED_OUT comes by then */
    rc = pc_rps_finish(k, until < 0 ? -1 : until - pc_now() + 1.0, reply);
    pc_rps_call_free(&k);
    if (rc == PC_OK)
        pc_msg_free(req);
    else if (rc != PC_EFAILED)
        pc_msg_free(reply);
    return rc;
}

pc_err
pc_rps_client_monitor(pc_rps_client *c, pc_ref watcher)
{
    pc_ref *w;
    if (!c || pc_ref_is_nil(watcher))
        return PC_EINVAL;
    pthread_mutex_lock(&mu);
    w = realloc(c->watchers, (c->nwatchers + 1) * sizeof *w);
    if (w) {
        c->watchers = w;
        w[c->nwatchers++] = watcher;
    }
    pthread_mutex_unlock(&mu);
    return w ? PC_OK : PC_ENOMEM;
}

const char *
pc_rps_client_error(const pc_rps_client *c)
{
    return c ? c->err : "";
}

/* RpsInfo *in into *info (strings cut to fit). */
static void
info_fill(pc_rps_info *info, const Picos__V1__RpsInfo *in)
{
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "%s", in->name);
    info->version = in->version;
    snprintf(info->request_type, sizeof info->request_type, "%s",
             in->request_type);
    snprintf(info->response_type, sizeof info->response_type, "%s",
             in->response_type);
    info->running = in->running;
    info->queued = in->queued;
    info->max_inflight = in->max_inflight;
    info->max_queued = in->max_queued;
    info->calls = in->calls;
}

/* The schema in RpsInfo *in as its own "picos.v1.RpsSchema" message. */
static pc_err
schema_msg(const Picos__V1__RpsInfo *in, pc_msg **out)
{
    size_t len = protobuf_c_message_get_packed_size(&in->schema->base);
    uint8_t *buf = malloc(len ? len : 1);
    pc_err rc;

    if (!buf)
        return PC_ENOMEM;
    protobuf_c_message_pack(&in->schema->base, buf);
    rc = pc_msg_new(out, RPS_T_SCHEMA, buf, len);
    free(buf);
    return rc;
}

pc_err
pc_rps_describe(pc_rps_client *c, double timeout, pc_rps_info *info,
                pc_msg **schema)
{
    Picos__V1__RpsDescribe w = PICOS__V1__RPS_DESCRIBE__INIT;
    Picos__V1__RpsInfo *in = NULL;
    struct pc_rps_call *k;
    const uint8_t *d;
    size_t len = 0;
    pc_err rc;

    if (schema)
        *schema = NULL;
    if (!c || !info)
        return PC_EINVAL;
    if ((rc = rec_begin(c, K_DESCRIBE, timeout, "describe", &k)) != PC_OK)
        return rc;
    w.id = k->id;
    w.schema = schema != NULL;
    if ((rc = rec_submit(k, RPS_T_DESCRIBE, &w.base)) != PC_OK)
        goto out;
    if (pc_event_wait(k->done, timeout) != PC_OK)
        rec_give_up(k, timeout);
    pthread_mutex_lock(&mu);
    rc = k->rc;
    pthread_mutex_unlock(&mu);
    if (rc != PC_OK)
        goto out;
    /* k->value is the RpsInfo message, k's since its end */
    d = pc_msg_data(k->value, &len);
    if (!(in = picos__v1__rps_info__unpack(NULL, len, d))) {
        rc = PC_ENOMEM; /* it unpacked in the agent */
        snprintf(k->text, sizeof k->text, "%s", pc_strerror(rc));
        goto out;
    }
    info_fill(info, in);
    if (schema && in->schema && (rc = schema_msg(in, schema)) != PC_OK)
        snprintf(k->text, sizeof k->text, "%s", pc_strerror(rc));
    picos__v1__rps_info__free_unpacked(in, NULL);
out:
    if (rc != PC_OK)
        set_err_from(k);
    call_unref(k);
    return rc;
}

void
pc_rps_client_free(pc_rps_client **c)
{
    if (c && *c) {
        client_unref(*c);
        *c = NULL;
    }
}
