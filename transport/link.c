/* transport/link.c — the link thread: its loop, every ZeroMQ socket of
 * the node, frames in and out (peer.c: the peer records, heartbeats and
 * failure detection).
 *
 * One thread with its own libev loop owns the ZeroMQ context's sockets
 * (ZeroMQ sockets belong to one thread): the ROUTER that peers' DEALERs
 * connect to, the PUB, one DEALER per node this node connected to, the ZAP
 * handler and the socket monitors. ZMQ_FD is edge-triggered and may stay
 * quiet after a send changed the socket's state, so an ev_prepare watcher
 * drains every data socket while ZMQ_EVENTS says POLLIN before each poll;
 * their ev_io watchers only wake the loop (ZAP and monitors, which carry
 * little, drain in their own callbacks).
 *
 * A connection is a `peer` record: a DEALER we made, or a routing id that
 * reached our ROUTER. Both ends send a Hello first; a record takes nothing
 * else before it. The first record of a node to get its Hello is the
 * node's path for this incarnation and stays so (FIFO per pair: one path);
 * another connection of the same node becomes an alias whose traffic is
 * taken as the path's.
 *
 * Out: commands (net.c) and answers become envelopes appended to their
 * peer's frame buffer; after each batch of commands every touched peer's
 * buffer goes out as one ZeroMQ message — batching costs nothing when the
 * queue is short and packs many envelopes per frame when it builds up. A
 * frame ZeroMQ refuses (high-water mark) waits in the peer's pending list
 * and is retried on a short timer; the peer's reservations (net.c) stay
 * held, so callers see PC_EFULL rather than an unbounded queue.
 *
 * Failure: every interval a heartbeat goes to each peer that heard nothing
 * from us lately; a peer silent for `timeout` is declared down
 * (pc_transport_node_down), its incarnation is remembered as dead and
 * refused from then on, and a DEALER record reconnects and sends its Hello
 * again so that a new start of that node is found.
 *
 * On a worker (net.link_worker >= 0) all of this runs on that worker's
 * loop instead of a loop of its own: the loop turns one iteration per call
 * from the scheduler, so an ev_check pumps after the poll as the ev_prepare
 * does before it, and the pump looks at the sockets only after link code
 * ran (net.stirred) — a look is two system calls, and a spinning worker
 * turns its loop every few microseconds. Leaving runs in on_wake, and every
 * watcher then leaves the loop, which outlives the links.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "picos/log.h"
#include "picos/node.h"
#include "picos/sync.h"

#include "net_int.h"

/* ---- frames out --------------------------------------------------------------- */

/* Hand p's pending frames to ZeroMQ until it refuses one. A refused frame
 * (high-water mark) stalls p until the retry timer: trying again at every
 * pass of the loop would spin it (each try marks the socket to drain). */
static void
send_pending(net *n, peer *p)
{
    frame *f;

    while (!p->stalled && (f = p->pending)) {
        int rc;
        if (p->dealer)
            p->dirty = true; /* a send may eat its fd's edge */
        else
            n->router_dirty = true;
        if (p->dealer) {
            rc = zmq_send(p->dealer, f->b.p, f->b.len, ZMQ_DONTWAIT);
        } else {
            rc = zmq_send(n->router, p->rid, p->rid_len,
                          ZMQ_DONTWAIT | ZMQ_SNDMORE);
            if (rc >= 0)
                rc = zmq_send(n->router, f->b.p, f->b.len, ZMQ_DONTWAIT);
        }
        if (rc < 0) {
            if (errno == EAGAIN && p->up) {
                p->stalled = true;
                atomic_fetch_add_explicit(&n->send_stalls, 1,
                                          memory_order_relaxed);
                if (!ev_is_active(&n->retry))
                    ev_timer_start(n->loop, &n->retry);
                return;
            }
            /* EAGAIN before the Hello came back: ZeroMQ's queue for a
             * connection not made yet is full. What waits is Hellos: sent
             * again once it takes them (drain_dealer sees POLLOUT, the
             * monitor the handshake), and by the tick every second. */
            if (errno == EAGAIN)
                p->hello_lost = true;
            /* EHOSTUNREACH: the connection is gone; heartbeats will say */
        } else {
            atomic_fetch_add_explicit(&n->frames_out, 1, memory_order_relaxed);
        }
        atomic_fetch_sub_explicit(&p->queued, f->b.res, memory_order_relaxed);
        p->pending = f->next;
        if (!p->pending)
            p->pending_tail = &p->pending;
        wire_buf_free(&f->b);
        free(f);
    }
}

/* Move p's frame buffer to its pending list and send what can go. */
void
pc__link_flush(net *n, peer *p)
{
    frame *f;

    if (p->out.n) {
        if (!(f = malloc(sizeof *f))) {
            atomic_fetch_sub(&p->queued, p->out.res);
            atomic_fetch_add(&n->dropped, p->out.n);
            wire_buf_free(&p->out);
            return;
        }
        f->b = p->out;
        f->next = NULL;
        memset(&p->out, 0, sizeof p->out);
        *p->pending_tail = f;
        p->pending_tail = &f->next;
    }
    send_pending(n, p);
}

/* Frames are batches of at most this many bytes (or the peer's max_frame):
 * big enough to take CURVE's per-message cost away, small enough that a
 * burst streams through ZeroMQ's pipe instead of waiting for one huge
 * frame to fill. */
#define BATCH_MAX (64u * 1024u)

bool
pc__link_out(net *n, peer *p, wire_env *e)
{
    size_t limit = p->max_frame < BATCH_MAX ? p->max_frame : BATCH_MAX;

    pc_err rc;

    e->version = 1;
    if ((rc = wire_append_max(&p->out, e, limit)) == PC_EFULL) {
        pc__link_flush(n, p);
        rc = wire_append(&p->out, e);
    }
    if (rc != PC_OK) {
        atomic_fetch_add(&n->dropped, 1);
        return false;
    }
    atomic_fetch_add_explicit(&n->env_out, 1, memory_order_relaxed);
    p->last_out = pc_now();
    return true;
}

void
pc__link_flush_all(net *n)
{
    for (peer *p = n->peers; p; p = p->next)
        if (p->out.n || p->pending)
            pc__link_flush(n, p);
}

/* Try the stalled peers' frames again, and send what is waiting. */
static void
retry_all(net *n)
{
    for (peer *p = n->peers; p; p = p->next)
        p->stalled = false;
    pc__link_flush_all(n);
}

static void
on_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
    net *n = t->data;
    (void)loop, (void)revents;
    pc__link_begin(n);
    ev_timer_stop(n->loop, &n->retry);
    retry_all(n);
    pc__link_end(n);
}

void
pc__link_hello(net *n, peer *p)
{
    wire_env e = PICOS__V1__ENVELOPE__INIT;
    Picos__V1__Hello h = PICOS__V1__HELLO__INIT;
    uint32_t versions[] = {1};

    h.node = n->node;
    h.incarnation = n->incarnation;
    h.name = n->name;
    h.n_versions = 1;
    h.versions = versions;
    h.endpoint = n->router_ep;
    h.pub_endpoint = n->pub_ep;
    h.heartbeat_ms = (uint32_t)(n->hb * 1000);
    h.timeout_ms = (uint32_t)(n->timeout * 1000);
    h.max_frame = (uint32_t)n->max_frame;
    h.host = n->host;
    h.pid = (uint32_t)getpid();
    e.kind = PICOS__V1__KIND__HELLO;
    e.body_case = PICOS__V1__ENVELOPE__BODY_HELLO;
    e.hello = &h;
    pc__link_out(n, p, &e);
    pc__link_flush(n, p);
    p->hello_sent = true;
    p->hello_at = pc_now();
}

void
pc__link_refuse(net *n, peer *p, int code, const char *text)
{
    wire_env e = PICOS__V1__ENVELOPE__INIT;
    Picos__V1__Refusal r = PICOS__V1__REFUSAL__INIT;

    atomic_fetch_add(&n->refused, 1);
    r.code = (Picos__V1__RefusalCode)code;
    r.text = (char *)text;
    e.kind = PICOS__V1__KIND__REFUSED;
    e.body_case = PICOS__V1__ENVELOPE__BODY_REFUSAL;
    e.refusal = &r;
    pc__link_out(n, p, &e);
}

/* ---- frames in ---------------------------------------------------------------- */

/* Returns how many envelopes it took (for the slice budget). */
static int
handle_frame(net *n, peer *p, const uint8_t *data, size_t len)
{
    const uint8_t *q = data, *env;
    size_t elen;
    int r, count = 0;

    atomic_fetch_add_explicit(&n->frames_in, 1, memory_order_relaxed);
    last_in_set(p, pc_now());
    if (p->primary)
        last_in_set(p->primary, last_in_get(p));
    while ((r = wire_next(&q, data + len, &env, &elen)) == 1) {
        const char *why;
        wire_env *e = wire_unpack(&n->arena, env, elen, &why);
        if (!e) {
            PC_LOG_WARN("net", "malformed envelope from %s: %s",
                        p->name[0] ? p->name : "a peer", why);
            pc__link_refuse(n, p,
                            strstr(why, "version")
                                ? PICOS__V1__REFUSAL_CODE__VERSION
                                : PICOS__V1__REFUSAL_CODE__MALFORMED,
                            why);
            wire_arena_reset(&n->arena);
            return count + 1;
        }
        count++;
        atomic_fetch_add_explicit(&n->env_in, 1, memory_order_relaxed);
        if (!p->up && e->kind != PICOS__V1__KIND__HELLO &&
            e->kind != PICOS__V1__KIND__REFUSED) {
            pc__link_refuse(n, p, PICOS__V1__REFUSAL_CODE__NOT_HELLO,
                            "no hello from you on this connection");
            wire_arena_reset(&n->arena);
            return count;
        }
        pc__dispatch(n, p, e);
        wire_arena_reset(&n->arena);
        if (p->gone || !p->up)
            return count; /* refused, or declared down by what it sent */
    }
    if (r < 0) {
        PC_LOG_WARN("net", "malformed frame from %s",
                    p->name[0] ? p->name : "a peer");
        pc__link_refuse(n, p, PICOS__V1__REFUSAL_CODE__MALFORMED,
                        "frame does not decode");
    }
    return count ? count : 1;
}

static peer *
router_peer(net *n, const uint8_t *rid, size_t len)
{
    peer *p;

    for (p = n->peers; p; p = p->next)
        if (!p->dealer && !p->endpoint && !p->gone && p->rid_len == len &&
            !memcmp(p->rid, rid, len))
            return p;
    if (!(p = pc__peer_new(n)))
        return NULL;
    memcpy(p->rid, rid, len);
    p->rid_len = len;
    return p;
}

/* Take what the ROUTER has, at most *budget frames. */
static void
drain_router(net *n, int *budget)
{
    while (*budget > 0) {
        zmq_msg_t id, body;
        int more = 0, ev = 0;
        size_t sz = sizeof ev;
        peer *p;

        if (!n->router || zmq_getsockopt(n->router, ZMQ_EVENTS, &ev, &sz) ||
            !(ev & ZMQ_POLLIN)) {
            n->router_dirty = false;
            return;
        }
        zmq_msg_init(&id);
        if (zmq_msg_recv(&id, n->router, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&id);
            return;
        }
        zmq_msg_init(&body);
        if (!zmq_msg_more(&id) ||
            zmq_msg_recv(&body, n->router, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&id), zmq_msg_close(&body);
            continue;
        }
        /* frames are one part: a longer message is dropped whole */
        bool extra = zmq_msg_more(&body);
        for (more = extra; more;) {
            zmq_msg_t part;
            zmq_msg_init(&part);
            more = zmq_msg_recv(&part, n->router, ZMQ_DONTWAIT) >= 0 &&
                   zmq_msg_more(&part);
            zmq_msg_close(&part);
        }
        --*budget;
        if (extra || zmq_msg_size(&id) > sizeof p->rid) {
            atomic_fetch_add(&n->refused, 1);
        } else if ((p = router_peer(n, zmq_msg_data(&id), zmq_msg_size(&id)))) {
            *budget -=
                handle_frame(n, p, zmq_msg_data(&body), zmq_msg_size(&body)) -
                1;
        }
        zmq_msg_close(&id);
        zmq_msg_close(&body);
    }
}

static void
drain_dealer(net *n, peer *p, int *budget)
{
    while (p->dealer && !p->gone && *budget > 0) {
        zmq_msg_t body;
        int ev = 0;
        size_t sz = sizeof ev;
        void *s = p->dealer;

        if (zmq_getsockopt(s, ZMQ_EVENTS, &ev, &sz)) {
            p->dirty = false;
            return;
        }
        if ((ev & ZMQ_POLLOUT) && p->hello_lost && !p->up) {
            p->hello_lost = false; /* connected now: say it again */
            pc__link_hello(n, p);
        }
        if (!(ev & ZMQ_POLLIN)) {
            p->dirty = false;
            return;
        }
        zmq_msg_init(&body);
        if (zmq_msg_recv(&body, s, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&body);
            return;
        }
        --*budget;
        if (zmq_msg_more(&body)) {
            atomic_fetch_add(&n->refused, 1);
            while (zmq_msg_more(&body) &&
                   zmq_msg_recv(&body, s, ZMQ_DONTWAIT) >= 0)
                ;
        } else {
            *budget -=
                handle_frame(n, p, zmq_msg_data(&body), zmq_msg_size(&body)) -
                1;
        }
        zmq_msg_close(&body);
    }
}

/* ---- the loop ---------------------------------------------------------------------- */

/* A socket's fd fired: the pump looks at it (ZMQ_FD only signals). */
static void
on_router(struct ev_loop *loop, ev_io *io, int revents)
{
    net *n = io->data;
    (void)loop, (void)revents;
    pc__link_stir(n);
    n->router_dirty = true;
}

static void
on_pub(struct ev_loop *loop, ev_io *io, int revents)
{
    net *n = io->data;
    (void)loop, (void)revents;
    pc__link_stir(n);
    n->pub_dirty = true;
}

/* ZAP and the monitors carry little: drained right in their callbacks. */
static void
on_zap(struct ev_loop *loop, ev_io *io, int revents)
{
    net *n = io->data;
    (void)loop, (void)revents;
    pc__link_stir(n);
    pc__zap_drain(n->zap);
}

/* Work is done in slices — at most CMD_BUDGET commands and ENV_BUDGET
 * envelopes in one go — so that a burst never keeps the loop from its timers:
 * a link thread that did not look at its sockets for a second would
 * otherwise take its own lag for a peer's silence. What is left over keeps
 * an ev_idle watcher running until it is done. */
#define CMD_BUDGET 4096
#define ENV_BUDGET 8192 /* envelopes taken in */

static void
run_backlog(net *n)
{
    cmd *c;
    for (int i = 0; i < CMD_BUDGET && (c = n->backlog); i++) {
        n->backlog = c->next;
        if (!n->backlog)
            n->backlog_tail = &n->backlog;
        pc__dispatch_cmd(n, c);
    }
}

/* One slice: commands, then every data socket whose ZMQ_EVENTS says
 * POLLIN (ZMQ_FD is edge-triggered and a send may eat its edge). Sends made
 * on the way mark their sockets again, so a few rounds run until none is
 * left or the budget is. */
void
pc__link_pump(net *n)
{
    int budget = ENV_BUDGET;
    bool dirty = true;

    if (n->link_worker >= 0) {
        if (!n->stirred && !n->backlog)
            return; /* nothing ran that could have eaten an edge */
        n->stirred = false;
    }
    run_backlog(n);
    if (n->link_worker >= 0)   /* (a link thread did so in on_wake) */
        pc__link_flush_all(n); /* what the commands made goes first */
    /* every data socket once per loop iteration: looking only at those
     * whose fd fired or that we used lost an edge now and then (tests
     * stalled), so the saving is kept for ZAP and the monitors only */
    n->router_dirty = n->router != NULL;
    n->pub_dirty = n->pub != NULL;
    for (peer *p = n->peers; p; p = p->next)
        p->dirty = p->dealer != NULL, p->sub_dirty = p->sub != NULL;
    for (int round = 0; dirty && round < 4 && budget > 0; round++) {
        if (n->router_dirty)
            drain_router(n, &budget);
        if (n->pub_dirty)
            pc__rchan_drain_xpub(n, &budget);
        for (peer *p = n->peers; p; p = p->next) {
            if (p->dirty)
                drain_dealer(n, p, &budget);
            if (p->sub_dirty)
                pc__rchan_drain_sub(n, p, &budget);
        }
        pc__link_flush_all(n);
        dirty = (n->router_dirty && n->router) || (n->pub_dirty && n->pub);
        for (peer *p = n->peers; p && !dirty; p = p->next)
            dirty = (p->dirty && p->dealer) || (p->sub_dirty && p->sub);
    }
    pc__peer_reap(n);
    if (dirty || n->backlog) {
        if (!ev_is_active(&n->idle))
            ev_idle_start(n->loop, &n->idle);
    } else if (ev_is_active(&n->idle)) {
        ev_idle_stop(n->loop, &n->idle);
    }
}

/* The pump from a callback (on a worker: only when link code ran, under
 * link_mu). */
static void
pump_cb(net *n)
{
    if (n->link_worker >= 0 && !n->stirred && !n->backlog)
        return; /* the pump's own test, without taking link_mu */
    pc__link_begin(n);
    pc__link_pump(n);
    pc__link_end(n);
}

static void
on_pump(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop, (void)revents;
    pump_cb(w->data);
}

static void
on_idle(struct ev_loop *loop, ev_idle *w, int revents)
{
    (void)loop, (void)revents;
    pc__link_stir(w->data); /* what is left over from a slice */
    pump_cb(w->data);
}

/* Links on a worker: that loop runs one iteration per call (the worker
 * goes back to its procs in between), so what a poll brought is taken
 * right after it rather than at the next call. */
static void
on_check(struct ev_loop *loop, ev_check *w, int revents)
{
    (void)loop, (void)revents;
    pump_cb(w->data);
}

/* Take the whole command stack onto the backlog, oldest first (link
 * thread). */
void
pc__link_take_inq(net *n)
{
    cmd *c, *rev = NULL;

    c = atomic_exchange_explicit(&n->inq, NULL, memory_order_acquire);
    while (c) {
        cmd *next = c->next;
        c->next = rev;
        rev = c;
        c = next;
    }
    if (rev) {
        *n->backlog_tail = rev;
        while (rev->next)
            rev = rev->next;
        n->backlog_tail = &rev->next;
    }
}

/* ---- the heartbeat keeper (links on a worker) --------------------------- */

/* A task that keeps the link worker from its loop holds up our heartbeats
 * with everything else, and past the peers' timeout they would declare
 * this node down. So a small thread looks every half heartbeat: when the
 * worker's tick is late (a heartbeat interval) and link_mu is free (the
 * worker is not in link code), it sends each up peer that heard nothing
 * from us for 3/4 of an interval a frame of one HEARTBEAT, straight to its
 * socket (the frame being filled and those ZeroMQ refused stay as they
 * are: a heartbeat carries nothing to keep in order), then rings the
 * worker so that its next pass looks at the sockets (a send may eat an
 * edge). It reads nothing and judges nothing: the worker does that when it
 * comes back, on a tick it takes for late. */
static void
keeper_beat(net *n, peer *p)
{
    wire_env e = PICOS__V1__ENVELOPE__INIT;
    wire_buf b = {0};
    int rc;

    e.version = 1;
    e.kind = PICOS__V1__KIND__HEARTBEAT;
    if (wire_append(&b, &e) != PC_OK) {
        wire_buf_free(&b);
        return;
    }
    if (p->dealer) {
        rc = zmq_send(p->dealer, b.p, b.len, ZMQ_DONTWAIT);
    } else {
        rc =
            zmq_send(n->router, p->rid, p->rid_len, ZMQ_DONTWAIT | ZMQ_SNDMORE);
        if (rc >= 0)
            rc = zmq_send(n->router, b.p, b.len, ZMQ_DONTWAIT);
    }
    if (rc >= 0) {
        atomic_fetch_add_explicit(&n->frames_out, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&n->env_out, 1, memory_order_relaxed);
        p->last_out = pc_now();
    }
    wire_buf_free(&b);
}

static void *
keeper_main(void *arg)
{
    net *n = arg;
    struct timespec ts;

    pthread_mutex_lock(&n->keeper_mu);
    while (!n->keeper_stop) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        double at = (double)ts.tv_sec + ts.tv_nsec / 1e9 + n->hb / 2;
        ts.tv_sec = (time_t)at;
        ts.tv_nsec = (long)((at - (double)ts.tv_sec) * 1e9);
        pthread_cond_timedwait(&n->keeper_cv, &n->keeper_mu, &ts);
        if (n->keeper_stop || pthread_mutex_trylock(&n->link_mu))
            continue;
        double now = pc_now();
        bool sent = false;
        if (now - n->last_tick > n->hb) {
            for (peer *p = n->peers; p; p = p->next)
                if (p->up && !p->primary && !p->gone &&
                    now - p->last_out >= n->hb * 0.75)
                    keeper_beat(n, p), sent = true;
        }
        pthread_mutex_unlock(&n->link_mu);
        if (sent)
            ev_async_send(n->loop, &n->wake);
    }
    pthread_mutex_unlock(&n->keeper_mu);
    return NULL;
}

pc_err
pc__keeper_start(net *n)
{
    pthread_condattr_t ca;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&n->keeper_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&n->keeper_mu, NULL);
    if (pthread_create(&n->keeper, NULL, keeper_main, n)) {
        pthread_cond_destroy(&n->keeper_cv);
        pthread_mutex_destroy(&n->keeper_mu);
        return PC_ESYS;
    }
    pthread_setname_np(n->keeper, "picos-beat");
    n->has_keeper = true;
    return PC_OK;
}

void
pc__keeper_stop(net *n)
{
    if (!n->has_keeper)
        return;
    pthread_mutex_lock(&n->keeper_mu);
    n->keeper_stop = true;
    pthread_cond_signal(&n->keeper_cv);
    pthread_mutex_unlock(&n->keeper_mu);
    pthread_join(n->keeper, NULL);
    pthread_cond_destroy(&n->keeper_cv);
    pthread_mutex_destroy(&n->keeper_mu);
    n->has_keeper = false;
}

/* ---- leaving ------------------------------------------------------------ */

/* The node stops (op_stop): on the link thread after its loop, or on the
 * link worker in on_wake (the worker waits here, up to the linger, while
 * the node stops anyway). */
static void
link_leave(net *n)
{
    /* leaving: first what was asked before (the last sends and DOWNs of a
     * node that ends), then tell peers, so they need not wait for the
     * timeout; the sockets linger so that ZeroMQ sends all of it */
    for (;;) {
        pc__link_take_inq(n);
        if (!n->backlog)
            break;
        while (n->backlog)
            run_backlog(n);
    }
    for (peer *p = n->peers; p; p = p->next) {
        if (p->up && !p->primary && !p->gone) {
            wire_env e = PICOS__V1__ENVELOPE__INIT;
            e.kind = PICOS__V1__KIND__GOODBYE;
            pc__link_out(n, p, &e);
        }
        if (p->dealer)
            pc__zsetint(p->dealer, ZMQ_LINGER, 1000);
    }
    pc__link_flush_all(n);
    for (int i = 0; i < 100; i++) { /* frames ZeroMQ refused (PC__HWM) */
        bool left = false;
        for (peer *p = n->peers; p; p = p->next)
            left |= p->pending != NULL;
        if (!left)
            break;
        zmq_poll(NULL, 0, 10);
        retry_all(n);
    }
    if (n->router)
        pc__zsetint(n->router, ZMQ_LINGER, 1000);
    for (cmd *c = atomic_exchange(&n->inq, NULL); c;) {
        cmd *next = c->next;
        pc__net_cmd_free(c);
        c = next;
    }
    while (n->backlog) {
        cmd *c = n->backlog;
        n->backlog = c->next;
        pc__net_cmd_free(c);
    }
    for (peer *p = n->peers; p; p = p->next)
        p->gone = true;
    pc__peer_reap(n);
    pc__rchan_fini(n);
    pc__peer_fail_waiters(&n->waiters, PC_ECLOSED);
    while (n->tombs) {
        tomb *t = n->tombs;
        n->tombs = t->next;
        free(t);
    }
    pc__zmon_close(&n->router_mon);
    if (n->router)
        zmq_close(n->router);
    if (n->pub)
        zmq_close(n->pub);
    pc__zap_close(&n->zap);
    zmq_ctx_term(n->zctx);
    wire_arena_reset(&n->arena);
}

/* Links on a worker: the loop outlives them, so every watcher of theirs
 * leaves it (the peers' went with their records). */
static void
link_unwatch(net *n)
{
    struct ev_loop *l = n->loop;

    ev_async_stop(l, &n->wake);
    ev_timer_stop(l, &n->tick);
    ev_timer_stop(l, &n->retry);
    ev_prepare_stop(l, &n->pump);
    ev_check_stop(l, &n->check);
    ev_idle_stop(l, &n->idle);
    ev_io_stop(l, &n->router_io);
    ev_io_stop(l, &n->pub_io);
    ev_io_stop(l, &n->zap_io);
    ev_io_stop(l, &n->mon_io);
}

static void
on_wake(struct ev_loop *loop, ev_async *a, int revents)
{
    net *n = a->data;
    (void)revents;
    pc__link_begin(n);
    pc__link_take_inq(n);
    run_backlog(n);
    pc__link_flush_all(n);
    if (atomic_load(&n->stopping)) {
        if (n->link_worker < 0) {
            ev_break(loop, EVBREAK_ALL); /* pc__link_main leaves */
        } else {
            link_leave(n); /* the worker's loop goes on without us */
            link_unwatch(n);
            pc__link_end(n);
            pc_event_set(n->left); /* op_stop frees n */
            return;
        }
    }
    pc__link_end(n);
}

void
pc__link_init(net *n)
{
    wire_arena_init(&n->arena);
    ev_async_init(&n->wake, on_wake);
    n->wake.data = n;
    ev_async_start(n->loop, &n->wake);
    ev_timer_init(&n->tick, pc__peer_on_tick, n->hb / 2, n->hb / 2);
    n->tick.data = n;
    ev_timer_start(n->loop, &n->tick);
    ev_timer_init(&n->retry, on_retry, 0.001, 0.001);
    n->retry.data = n;
    ev_prepare_init(&n->pump, on_pump);
    n->pump.data = n;
    ev_prepare_start(n->loop, &n->pump);
    ev_idle_init(&n->idle, on_idle);
    n->idle.data = n;
    n->backlog_tail = &n->backlog;
    n->last_tick = pc_now();
    if (n->zap) {
        ev_io_init(&n->zap_io, on_zap, pc__zap_fd(n->zap), EV_READ);
        n->zap_io.data = n;
        ev_io_start(n->loop, &n->zap_io);
    }
    if (n->link_worker >= 0) {
        ev_check_init(&n->check, on_check);
        ev_set_priority(&n->check, EV_MINPRI); /* after the fds' callbacks */
        n->check.data = n;
        ev_check_start(n->loop, &n->check);
    }
}

pc_err
pc__link_listen(net *n, const char *endpoint, char *bound, size_t size)
{
    size_t len = size;
    int fd;
    size_t sz = sizeof fd;
    int64_t max = (int64_t)n->max_frame;
    void *r, *pub;
    char pub_ep[WIRE_ENDPOINT_MAX + 1];

    if (n->router)
        return PC_ESTATE;
    if (!(r = zmq_socket(n->zctx, ZMQ_ROUTER)) ||
        !(pub = zmq_socket(n->zctx, ZMQ_XPUB))) {
        zmq_close(r);
        return PC_ESYS;
    }
    pc__zsetint(r, ZMQ_LINGER, 0);
    pc__zsetint(r, ZMQ_ROUTER_MANDATORY, 1);
    pc__zsetint(r, ZMQ_ROUTER_HANDOVER, 1);
    pc__zsetint(r, ZMQ_SNDHWM, PC__HWM);
    pc__zsetint(r, ZMQ_RCVHWM, PC__HWM);
    zmq_setsockopt(r, ZMQ_MAXMSGSIZE, &max, sizeof max);
    pc__zsetint(pub, ZMQ_LINGER, 0);
    pc__zsetint(pub, ZMQ_SNDHWM, PC__HWM);
    pc__zsetint(pub, ZMQ_XPUB_VERBOSE,
                1); /* every subscription: rchan.c syncs */
    if (!n->plain && (pc__curve_server(r, &n->keys) != PC_OK ||
                      pc__curve_server(pub, &n->keys) != PC_OK))
        goto fail;
    if (!n->plain &&
        pc__zmon_open(&n->router_mon, n->zctx, r,
                      ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                          ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                          ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) != PC_OK)
        goto fail;
    if (zmq_bind(r, endpoint)) {
        PC_LOG_ERROR("net", "can't listen on %s: %s", endpoint,
                     zmq_strerror(errno));
        goto fail;
    }
    len = size;
    if (zmq_getsockopt(r, ZMQ_LAST_ENDPOINT, bound, &len))
        goto fail;
    /* the PUB beside it: tcp on any free port of the same address, ipc at
     * PATH.pub */
    if (!strncmp(bound, "tcp://", 6)) {
        const char *colon = strrchr(bound, ':');
        snprintf(pub_ep, sizeof pub_ep, "%.*s:*", (int)(colon - bound), bound);
    } else {
        snprintf(pub_ep, sizeof pub_ep, "%s.pub", bound);
    }
    if (zmq_bind(pub, pub_ep)) {
        PC_LOG_ERROR("net", "can't bind the PUB beside %s on %s: %s", bound,
                     pub_ep, zmq_strerror(errno));
        goto fail;
    }
    if (zmq_getsockopt(r, ZMQ_FD, &fd, &sz))
        goto fail;
    /* under mu: pc_net_endpoints() reads them from other threads */
    pthread_mutex_lock(&n->mu);
    len = sizeof n->pub_ep;
    zmq_getsockopt(pub, ZMQ_LAST_ENDPOINT, n->pub_ep, &len);
    snprintf(n->router_ep, sizeof n->router_ep, "%s", bound);
    pthread_mutex_unlock(&n->mu);
    n->router = r;
    n->pub = pub;
    ev_io_init(&n->router_io, on_router, fd, EV_READ);
    n->router_io.data = n;
    ev_io_start(n->loop, &n->router_io);
    n->router_dirty = n->pub_dirty = true;
    sz = sizeof fd;
    if (!zmq_getsockopt(pub, ZMQ_FD, &fd, &sz)) {
        ev_io_init(&n->pub_io, on_pub, fd, EV_READ);
        n->pub_io.data = n;
        ev_io_start(n->loop, &n->pub_io);
    }
    if (n->router_mon) {
        ev_io_init(&n->mon_io, pc__peer_on_router_mon,
                   pc__zmon_fd(n->router_mon), EV_READ);
        n->mon_io.data = n;
        ev_io_start(n->loop, &n->mon_io);
    }
    PC_LOG_INFO("net", "node %s listening on %s (channels on %s)", n->name,
                n->router_ep, n->pub_ep);
    /* peers that knew this node before it listened learn its endpoints */
    for (peer *p = n->peers; p; p = p->next)
        if (p->up && !p->primary && !p->gone)
            pc__link_hello(n, p);
    return PC_OK;
fail:
    pc__zmon_close(&n->router_mon);
    zmq_close(r);
    zmq_close(pub);
    return PC_ESYS;
}

void *
pc__link_main(void *arg)
{
    net *n = arg;

    ev_run(n->loop, 0);
    link_leave(n);
    ev_loop_destroy(n->loop);
    return NULL;
}
