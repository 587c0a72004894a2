/* transport/dispatch.c — what each envelope does, both ways (link thread).
 *
 * In: an envelope that passed wire_unpack() from a connection that said
 * Hello is checked against the connection — `from` must be a ref of the
 * node that connection belongs to, `to` a ref of this node's current
 * incarnation — and then handed to the runtime through transport.h: a
 * message is injected into its mailbox (a deliver with an ack whose verdict
 * is queued back as DELIVER_ACK), monitors, links, exit signals and
 * terminations go to their pc_transport_*_in() call, a join runs in a small
 * daemon task (joining may wait) that queues its JOIN_REPLY, and a lookup is
 * answered at once from pc_whereis(). Anything else is refused and counted,
 * never fatal.
 *
 * Out: commands from the ops (net.c) and the answers above become envelopes
 * for their peer's path; a command whose node is not up any more fails the
 * way a node down does (deliver and join answer PC_EUNREACH).
 *
 * Deadlines go on the wire as the time left when the envelope is packed
 * (timeout_us; 0 is none), as gRPC does: no clock is shared between hosts.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/chan.h"
#include "picos/log.h"
#include "picos/monitor.h"
#include "picos/node.h"
#include "picos/task.h"

#include "net_int.h"

/* ---- out ------------------------------------------------------------------- */

static uint64_t
timeout_us(double deadline)
{
    double left;

    if (!isfinite(deadline))
        return 0;
    left = deadline - pc_now();
    return left > 1e-6 ? (uint64_t)(left * 1e6) : 1;
}

/* c as an envelope to p; `reserved`: it holds a queue reservation. */
static void
out_cmd(net *n, peer *p, cmd *c, bool reserved)
{
    wire_env e = PICOS__V1__ENVELOPE__INIT;
    wire_ref from, to, who;
    Picos__V1__Down down;

    e.kind = (Picos__V1__Kind)c->kind;
    wire_ref_set(&from, c->from, n->incarnation);
    from.node = n->node; /* from outside tasks: the node itself (id 0) */
    wire_ref_set(&to, c->to, p->incarnation);
    e.from = &from;
    e.to = &to;
    e.corr = c->corr;
    e.status = c->status;
    e.count = c->count;
    e.timeout_us = timeout_us(c->deadline);
    if (c->msg && wire_msg_out(&e, c->msg, &down, &who) != PC_OK) {
        atomic_fetch_add(&n->dropped, 1);
        if (reserved)
            atomic_fetch_sub(&p->queued, 1);
        return;
    }
    if (wire_size(&e) + 64 > p->max_frame) {
        /* only answers and DOWNs get here that big (sends were refused
         * PC_ETOOBIG): they go without the value rather than not at all */
        if (e.body_case == PICOS__V1__ENVELOPE__BODY_DOWN) {
            down.value.len = 0;
            down.value_type = (char *)"";
        } else {
            e.payload.len = 0;
            e.type = (char *)"";
            e.count = 0;
            if (e.kind == PICOS__V1__KIND__JOIN_REPLY)
                e.status = PC_ETOOBIG;
        }
    }
    if (pc__link_out(n, p, &e)) {
        if (reserved)
            p->out.res++;
    } else if (reserved) {
        atomic_fetch_sub(&p->queued, 1);
    }
}

/* A request that can't go: answer it as the node being down would. */
static void
fail_cmd(net *n, cmd *c)
{
    atomic_fetch_add(&n->dropped, 1);
    if (c->kind == PICOS__V1__KIND__DELIVER || c->kind == PICOS__V1__KIND__JOIN)
        pc_transport_reply(c->corr, PC_EUNREACH, NULL);
}

static peer *
find_where(net *n, const char *where)
{
    uint64_t node = 0;
    char *end;

    if (!strncmp(where, "0x", 2)) {
        node = strtoull(where + 2, &end, 16);
        if (*end)
            node = 0;
        return node ? pc__link_peer_of(n, node) : NULL;
    }
    for (peer *p = n->peers; p; p = p->next) {
        if (!p->gone && p->endpoint && !strcmp(p->endpoint, where) && p->up)
            return p->primary ? p->primary : p;
    }
    return NULL;
}

static void
do_connect(net *n, cmd *c)
{
    waiter *w = c->w;
    peer *p;

    for (p = n->peers; p; p = p->next)
        if (!p->gone && p->endpoint && !strcmp(p->endpoint, c->str))
            break;
    if (p && p->up) {
        w->node = p->node;
        pc__net_waiter_done(w, PC_OK);
        return;
    }
    if (!p && !(p = pc__link_dealer(n, c->str))) {
        pc__net_waiter_done(w, PC_EINVAL);
        return;
    }
    if (w->deadline <= pc_now()) { /* timeout 0: the link goes on alone */
        /* ... for a while: a node that never answers is given up, as a
         * connect that waited would be */
        double until = pc_now() + (n->timeout > 5.0 ? n->timeout : 5.0);
        if (!p->node && p->bg_until < until)
            p->bg_until = until;
        pc__net_waiter_done(w, PC_ETIMEDOUT);
        return;
    }
    c->w = NULL; /* its reference moves to the record's list */
    w->next = p->connect_waiters;
    p->connect_waiters = w;
}

static void
do_lookup(net *n, cmd *c)
{
    waiter *w = c->w;
    peer *p = find_where(n, c->str);
    wire_env e = PICOS__V1__ENVELOPE__INIT;
    Picos__V1__Lookup l = PICOS__V1__LOOKUP__INIT;
    wire_ref from, to;

    if (!p) {
        pc__net_waiter_done(w, PC_EUNREACH);
        return;
    }
    if (w->deadline <= pc_now()) { /* timeout 0: an answer needs a wait */
        pc__net_waiter_done(w, PC_ETIMEDOUT);
        return;
    }
    w->corr = n->next_corr++;
    w->node = p->node;
    c->w = NULL;
    w->next = n->waiters;
    n->waiters = w;
    wire_ref_set(&from, PC_REF_NIL, n->incarnation);
    from.node = n->node;
    wire_ref_set(&to, PC_REF_NIL, p->incarnation);
    to.node = p->node;
    l.name = c->str2;
    l.channel = c->kind == CMD_CHAN_LOOKUP;
    e.kind = PICOS__V1__KIND__LOOKUP;
    e.from = &from;
    e.to = &to;
    e.corr = w->corr;
    e.timeout_us = timeout_us(w->deadline);
    e.body_case = PICOS__V1__ENVELOPE__BODY_LOOKUP;
    e.lookup = &l;
    pc__link_out(n, p, &e);
}

void
pc__dispatch_cmd(net *n, cmd *c)
{
    peer *p;

    switch (c->kind) {
    case CMD_LISTEN: {
        pc_err rc = pc__link_listen(n, c->str, c->w->text, sizeof c->w->text);
        pc__net_waiter_done(c->w, rc);
        break;
    }
    case CMD_CONNECT:
        do_connect(n, c);
        break;
    case CMD_LOOKUP:
    case CMD_CHAN_LOOKUP:
        do_lookup(n, c);
        break;
    case CMD_CHAN_SUBS:
    case CMD_CHAN_PUB:
    case PICOS__V1__KIND__CHAN_SEND:
    case PICOS__V1__KIND__CHAN_DELIVER:
    case PICOS__V1__KIND__CHAN_DELIVER_ACK:
        pc__rchan_cmd(n, c);
        break;
    default: {
        bool answer = c->kind == PICOS__V1__KIND__DELIVER_ACK ||
                      c->kind == PICOS__V1__KIND__JOIN_REPLY;
        p = pc__link_peer_of(n, c->node);
        if (p && answer && c->incarnation && c->incarnation != p->incarnation)
            p = NULL; /* the asker's node started again since */
        if (!p) {
            if (!answer)
                fail_cmd(n, c);
            break;
        }
        out_cmd(n, p, c, !answer);
        break;
    }
    }
    pc__net_cmd_free(c);
}

/* ---- in --------------------------------------------------------------------- */

/* An answer for peer p's task `to` (an asker), queued by a worker. */
static void
answer(net *n, uint64_t node, uint64_t incarnation, int kind, pc_ref from,
       pc_ref to, uint64_t corr, pc_err status, pc_msg *value)
{
    cmd *c = calloc(1, sizeof *c);

    if (!c) {
        pc_msg_free(&value);
        return;
    }
    c->kind = kind;
    c->node = node;
    c->incarnation = incarnation;
    c->from = from;
    c->to = to;
    c->corr = corr;
    c->status = status;
    c->deadline = INFINITY;
    c->msg = value;
    c->count = value != NULL;
    pc__net_push(n, c);
}

typedef struct asker {
    uint64_t node, incarnation, corr;
    pc_ref from, to;
    double timeout;
} asker;

static asker *
asker_of(const peer *p, const wire_env *e)
{
    asker *a = malloc(sizeof *a);
    if (a) {
        a->node = p->node;
        a->incarnation = p->incarnation;
        a->corr = e->corr;
        a->from = wire_ref_get(e->from);
        a->to = wire_ref_get(e->to);
        a->timeout = e->timeout_us ? (double)e->timeout_us / 1e6 : -1;
    }
    return a;
}

static void
deliver_ack(void *ctx, pc_err rc)
{
    asker *a = ctx;
    if (pc__net)
        answer(pc__net, a->node, a->incarnation, PICOS__V1__KIND__DELIVER_ACK,
               a->to, a->from, a->corr, rc, NULL);
    free(a);
}

static pc_msg *
join_task(void *arg)
{
    asker *a = arg;
    pc_msg *v = NULL;
    pc_err rc = pc_task_join(a->to, a->timeout, &v);

    if (pc__net)
        answer(pc__net, a->node, a->incarnation, PICOS__V1__KIND__JOIN_REPLY,
               a->to, a->from, a->corr, rc, v);
    else
        pc_msg_free(&v);
    free(a);
    return NULL;
}

static void
hello_in(net *n, peer *p, const Picos__V1__Hello *h)
{
    bool v1 = false;
    peer *q;

    for (size_t i = 0; i < h->n_versions; i++)
        v1 |= h->versions[i] == 1;
    if (!v1) {
        pc__link_refuse(n, p, PICOS__V1__REFUSAL_CODE__VERSION,
                        "this node speaks protocol version 1 only");
        return;
    }
    if (h->node == n->node) {
        PC_LOG_ERROR("net", "%s is this node itself",
                     p->endpoint ? p->endpoint : "a peer");
        pc__link_refuse(n, p, PICOS__V1__REFUSAL_CODE__REFUSAL_UNSPECIFIED,
                        "connected to itself");
        return;
    }
    /* a dead incarnation stays dead */
    for (tomb *t = n->tombs; t; t = t->next) {
        if (t->node == h->node && t->incarnation == h->incarnation) {
            PC_LOG_WARN("net",
                        "refused node %s (%016" PRIx64 "): this start of it "
                        "was declared down",
                        h->name, h->node);
            pc__link_refuse(n, p, PICOS__V1__REFUSAL_CODE__DECLARED_DOWN,
                            "this node declared you down; a node that was "
                            "declared down must start again");
            pc__link_refused(n, p); /* connects to it fail; no reconnect */
            return;
        }
    }
    if (p->up) {
        if (p->incarnation == h->incarnation) {
            /* a repeated hello: it may bring endpoints it has now (a
             * node that listened after connecting says Hello again) */
            if (!p->pub_endpoint[0] && h->pub_endpoint[0]) {
                snprintf(p->pub_endpoint, sizeof p->pub_endpoint, "%s",
                         h->pub_endpoint);
                pc__rchan_peer_pub(n, p);
            }
            return;
        }
        pc__link_down(n, p, "it started again");
        if (p->gone)
            return;
    }
    q = pc__link_peer_of(n, h->node);
    if (q && q != p && q->incarnation != h->incarnation) {
        pc__link_down(n, q, "it started again");
        q = NULL;
    }
    if (q && q != p && !q->dealer && !p->dealer) {
        /* the same start on a new connection to our ROUTER: its old one
         * is gone (a reconnect), so the path moves over to this one */
        memcpy(q->rid, p->rid, p->rid_len);
        q->rid_len = p->rid_len;
        last_in_set(q, pc_now());
        p->gone = true;
        pc__link_hello(n, q);
        return;
    }
    pthread_mutex_lock(&n->mu);
    p->node = h->node;
    p->incarnation = h->incarnation;
    p->max_frame = h->max_frame >= 4096 ? h->max_frame : 4096;
    if (p->max_frame > n->max_frame)
        p->max_frame = (uint32_t)n->max_frame; /* ours bounds what we send */
    p->primary = q && q != p ? q : NULL;
    p->up = true;
    snprintf(p->name, sizeof p->name, "%s", h->name);
    pthread_mutex_unlock(&n->mu);
    snprintf(p->pub_endpoint, sizeof p->pub_endpoint, "%s", h->pub_endpoint);
    if (!p->hello_sent)
        pc__link_hello(n, p);
    if (!p->primary)
        PC_LOG_INFO("net", "node %s (%016" PRIx64 ") is up%s%s", p->name,
                    p->node, p->endpoint ? " at " : "",
                    p->endpoint ? p->endpoint : "");
    while (p->connect_waiters) {
        waiter *w = p->connect_waiters;
        p->connect_waiters = w->next;
        w->node = p->node;
        pc__net_waiter_done(w, PC_OK);
        pc__net_waiter_put(w);
    }
}

/* At most one hello a second in answer to refusals. */
static bool
now_ok(peer *p)
{
    return pc_now() - p->hello_at >= 0.2;
}

static void
refused_in(net *n, peer *p, const Picos__V1__Refusal *r)
{
    const char *who = p->name[0]    ? p->name
                      : p->endpoint ? p->endpoint
                                    : "a peer";

    switch (r->code) {
    case PICOS__V1__REFUSAL_CODE__DECLARED_DOWN:
        /* it will never take this start of ours again: stop trying */
        PC_LOG_ERROR("net", "%s refuses this node: %s", who, r->text);
        pc__link_down(n, p, "it declared this node down");
        if (!p->gone)
            pc__link_refused(n, p);
        break;
    case PICOS__V1__REFUSAL_CODE__NOT_HELLO:
    case PICOS__V1__REFUSAL_CODE__INCARNATION:
        /* it does not know this connection (a reconnect it took for a new
         * one, or it started again): say hello again. Its answer tells
         * which — the same start goes on, a new one replaces the old. */
        if (now_ok(p))
            pc__link_hello(n, p);
        break;
    default:
        PC_LOG_WARN("net", "%s refused an envelope: %s", who, r->text);
        break;
    }
}

void
pc__dispatch(net *n, peer *p, const wire_env *e)
{
    pc_ref from, to;
    pc_msg *m = NULL;
    asker *a;

    switch (e->kind) {
    case PICOS__V1__KIND__HELLO:
        hello_in(n, p, e->hello);
        return;
    case PICOS__V1__KIND__HEARTBEAT:
        return;
    case PICOS__V1__KIND__GOODBYE:
        pc__link_down(n, p, "it left");
        return;
    case PICOS__V1__KIND__REFUSED:
        refused_in(n, p, e->refusal);
        return;
    default:
        break;
    }
    if (p->primary)
        p = p->primary;
    from = wire_ref_get(e->from);
    to = wire_ref_get(e->to);
    if (from.node != p->node || e->from->incarnation != p->incarnation ||
        to.node != n->node || e->to->incarnation != n->incarnation) {
        atomic_fetch_add(&n->refused, 1);
        /* a request for another start of this node, or from a ref that
         * isn't the peer's: PC_ENOENT, from this node to the asker */
        if ((e->kind == PICOS__V1__KIND__DELIVER ||
             e->kind == PICOS__V1__KIND__JOIN) &&
            from.node == p->node)
            answer(n, p->node, p->incarnation,
                   e->kind == PICOS__V1__KIND__DELIVER
                       ? PICOS__V1__KIND__DELIVER_ACK
                       : PICOS__V1__KIND__JOIN_REPLY,
                   (pc_ref){n->node, 0}, from, e->corr, PC_ENOENT, NULL);
        return;
    }
    if ((e->kind == PICOS__V1__KIND__DOWN ||
         e->kind == PICOS__V1__KIND__EXIT) &&
        (!e->down || e->down->who->node != p->node)) {
        atomic_fetch_add(&n->refused, 1); /* about a task not of that node */
        return;
    }
    switch (e->kind) {
    case PICOS__V1__KIND__SEND:
    case PICOS__V1__KIND__DOWN:
        if (wire_msg_in(e, from, &m) != PC_OK ||
            pc_transport_inject(to, &m, false, NULL, NULL) != PC_OK) {
            atomic_fetch_add(&n->dropped, 1);
            pc_msg_free(&m);
        }
        break;
    case PICOS__V1__KIND__DELIVER: {
        pc_err rc = wire_msg_in(e, from, &m);
        if (rc == PC_OK && !(a = asker_of(p, e)))
            rc = PC_ENOMEM;
        if (rc == PC_OK &&
            (rc = pc_transport_inject(to, &m, false, deliver_ack, a)) != PC_OK)
            free(a);
        if (rc != PC_OK) {
            pc_msg_free(&m);
            answer(n, p->node, p->incarnation, PICOS__V1__KIND__DELIVER_ACK, to,
                   from, e->corr, rc, NULL);
        }
        break;
    }
    case PICOS__V1__KIND__DELIVER_ACK:
        pc_transport_reply_from(p->node, e->corr, e->status, NULL);
        break;
    case PICOS__V1__KIND__MONITOR:
    case PICOS__V1__KIND__DEMONITOR:
        pc_transport_monitor_in(from, to, e->kind == PICOS__V1__KIND__MONITOR);
        break;
    case PICOS__V1__KIND__LINK:
    case PICOS__V1__KIND__UNLINK:
        pc_transport_link_in(from, to, e->kind == PICOS__V1__KIND__LINK);
        break;
    case PICOS__V1__KIND__EXIT:
        if (wire_msg_in(e, from, &m) == PC_OK &&
            pc_transport_exit_in(from, to, &m) != PC_OK)
            pc_msg_free(&m);
        break;
    case PICOS__V1__KIND__TERMINATE:
        (void)pc_task_terminate(to);
        break;
    case PICOS__V1__KIND__JOIN: {
        pc_spawn_opts o = {.worker = PC_WORKER_ANY,
                           .flags = PC_TASK_DAEMON | PC_TASK_SMALL,
                           .name = "net.join"};
        if (!(a = asker_of(p, e)) ||
            pc_spawn(join_task, a, &o, NULL) != PC_OK) {
            free(a);
            answer(n, p->node, p->incarnation, PICOS__V1__KIND__JOIN_REPLY, to,
                   from, e->corr, PC_ENOMEM, NULL);
        }
        break;
    }
    case PICOS__V1__KIND__JOIN_REPLY:
        if (e->count && wire_msg_in(e, from, &m) != PC_OK)
            m = NULL;
        pc_transport_reply_from(p->node, e->corr, e->status, m);
        break;
    case PICOS__V1__KIND__LOOKUP: {
        pc_ref found = PC_REF_NIL;
        pc_err rc = e->lookup->channel
                        ? (pc_chan_find(e->lookup->name) ? PC_OK : PC_ENOENT)
                        : pc_whereis(e->lookup->name, &found);
        wire_env r = PICOS__V1__ENVELOPE__INIT;
        wire_ref rf, rt;
        wire_ref_set(&rf, found, n->incarnation);
        rf.node = n->node;
        wire_ref_set(&rt, from, p->incarnation);
        r.kind = PICOS__V1__KIND__LOOKUP_REPLY;
        r.from = &rf;
        r.to = &rt;
        r.corr = e->corr;
        r.status = rc;
        pc__link_out(n, p, &r);
        break;
    }
    case PICOS__V1__KIND__LOOKUP_REPLY:
        for (waiter **wp = &n->waiters; *wp; wp = &(*wp)->next) {
            waiter *w = *wp;
            if (w->corr != e->corr || w->node != p->node)
                continue;
            *wp = w->next;
            w->ref = from;
            pc__net_waiter_done(w, e->status);
            pc__net_waiter_put(w);
            break;
        }
        break;
    case PICOS__V1__KIND__SUBSCRIBE:
    case PICOS__V1__KIND__UNSUBSCRIBE:
    case PICOS__V1__KIND__CHAN_SEND:
    case PICOS__V1__KIND__CHAN_PUBLISH:
    case PICOS__V1__KIND__CHAN_DELIVER:
    case PICOS__V1__KIND__CHAN_DELIVER_ACK:
        pc__rchan_in(n, p, e);
        break;
    default:
        atomic_fetch_add(&n->refused, 1);
        break;
    }
}
