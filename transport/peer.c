/* transport/peer.c — the link thread's peer records: connections, their
 * life and death (link thread only).
 *
 * A record is one connection to a peer node: a DEALER we opened (it
 * reconnects, and says Hello again until answered) or a routing id that
 * reached our ROUTER. This file makes and frees records (reaped when
 * marked gone, never freed under a caller), turns socket-monitor events
 * into one log line each (a wrong secret shows up here), and runs the tick:
 * heartbeats out, silence judged (only on a tick that came on time: a
 * late tick means this thread was not reading either), node down
 * (pc_transport_node_down, tombstone of the incarnation, reconnect), and
 * waiters that expire. link.c has the loop and the frames.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "picos/log.h"
#include "picos/node.h"
#include "picos/sync.h"

#include "net_int.h"

#define TOMBS_MAX 4096

/* ---- helpers ---------------------------------------------------------------- */

static const char *
peer_label(const peer *p, char *buf, size_t size)
{
    if (p->node)
        snprintf(buf, size, "node %s (%016" PRIx64 ")%s%s",
                 p->name[0] ? p->name : "?", p->node, p->endpoint ? " at " : "",
                 p->endpoint ? p->endpoint : "");
    else
        snprintf(buf, size, "%s", p->endpoint ? p->endpoint : "a peer");
    return buf;
}

peer *
pc__link_peer_of(net *n, uint64_t node)
{
    for (peer *p = n->peers; p; p = p->next)
        if (p->node == node && p->up && !p->primary && !p->gone)
            return p;
    return NULL;
}

static bool
tomb_has(net *n, uint64_t node, uint64_t incarnation)
{
    for (tomb *t = n->tombs; t; t = t->next)
        if (t->node == node && t->incarnation == incarnation)
            return true;
    return false;
}

static void
tomb_add(net *n, uint64_t node, uint64_t incarnation)
{
    tomb *t;

    if (tomb_has(n, node, incarnation) || !(t = malloc(sizeof *t)))
        return;
    t->node = node, t->incarnation = incarnation;
    t->next = n->tombs;
    n->tombs = t;
    if (++n->ntombs > TOMBS_MAX) { /* forget the oldest */
        tomb **tp = &n->tombs;
        while ((*tp)->next)
            tp = &(*tp)->next;
        free(*tp);
        *tp = NULL;
        n->ntombs--;
    }
}

/* ---- peer records --------------------------------------------------------------- */

static void on_dealer(struct ev_loop *loop, ev_io *io, int revents);
static void on_dealer_mon(struct ev_loop *loop, ev_io *io, int revents);

peer *
pc__peer_new(net *n)
{
    peer *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->pending_tail = &p->pending;
    p->max_frame = 64 * 1024; /* until its hello says more */
    p->since = pc_now();
    last_in_set(p, p->since);
    pthread_mutex_lock(&n->mu);
    p->next = n->peers;
    n->peers = p;
    pthread_mutex_unlock(&n->mu);
    return p;
}

/* Open p's DEALER to p->endpoint. */
static pc_err
dealer_open(net *n, peer *p)
{
    int fd;
    size_t sz = sizeof fd;
    void *s = zmq_socket(n->zctx, ZMQ_DEALER);

    if (!s)
        return PC_ESYS;
    pc__zsetint(s, ZMQ_LINGER, 0);
    pc__zsetint(s, ZMQ_SNDHWM, PC__HWM);
    pc__zsetint(s, ZMQ_RCVHWM, PC__HWM);
    pc__zsetint(s, ZMQ_RECONNECT_IVL, 100);
    {
        /* a routing id of our own (node, incarnation, dealer number): when
         * ZeroMQ reconnects after a reset, the peer's ROUTER hands the
         * same id over to the new connection (ROUTER_HANDOVER), so the
         * link goes on without a new hello */
        static atomic_uint dealers;
        uint8_t id[20];
        uint32_t k = atomic_fetch_add(&dealers, 1);
        memcpy(id, &n->node, 8);
        memcpy(id + 8, &n->incarnation, 8);
        memcpy(id + 16, &k, 4);
        zmq_setsockopt(s, ZMQ_ROUTING_ID, id, sizeof id);
    }
    pc__zsetint(s, ZMQ_RECONNECT_IVL_MAX, 1000);
    {
        int64_t max = (int64_t)n->max_frame;
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof max);
    }
    if (!n->plain && pc__curve_client(s, &n->keys) != PC_OK)
        goto fail;
    if (pc__zmon_open(&p->mon, n->zctx, s,
                      ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED |
                          ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                          ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                          ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                          ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) != PC_OK)
        goto fail;
    if (zmq_connect(s, p->endpoint)) {
        PC_LOG_ERROR("net", "can't connect to %s: %s", p->endpoint,
                     zmq_strerror(errno));
        goto fail;
    }
    if (zmq_getsockopt(s, ZMQ_FD, &fd, &sz))
        goto fail;
    p->dealer = s;
    p->connected = p->handshook = false;
    ev_io_init(&p->io, on_dealer, fd, EV_READ);
    p->io.data = p;
    ev_io_start(n->loop, &p->io);
    p->dirty = true;
    if (p->mon) {
        ev_io_init(&p->mon_io, on_dealer_mon, pc__zmon_fd(p->mon), EV_READ);
        p->mon_io.data = p;
        ev_io_start(n->loop, &p->mon_io);
    }
    return PC_OK;
fail:
    pc__zmon_close(&p->mon);
    zmq_close(s);
    return PC_EINVAL;
}

static void
dealer_close(net *n, peer *p)
{
    if (!p->dealer)
        return;
    ev_io_stop(n->loop, &p->io);
    if (p->mon)
        ev_io_stop(n->loop, &p->mon_io);
    pc__zmon_close(&p->mon);
    zmq_close(p->dealer);
    p->dealer = NULL;
}

peer *
pc__link_dealer(net *n, const char *endpoint)
{
    peer *p = pc__peer_new(n);

    if (!p)
        return NULL;
    pthread_mutex_lock(&n->mu); /* pc_net_peers_get() reads it */
    p->endpoint = strdup(endpoint);
    pthread_mutex_unlock(&n->mu);
    if (!p->endpoint || dealer_open(n, p) != PC_OK) {
        p->gone = true;
        return NULL;
    }
    pc__link_hello(n, p);
    return p;
}

static void
drop_pending(peer *p)
{
    frame *f;
    size_t res = p->out.res;

    wire_buf_free(&p->out);
    while ((f = p->pending)) {
        p->pending = f->next;
        res += f->b.res;
        wire_buf_free(&f->b);
        free(f);
    }
    p->pending_tail = &p->pending;
    atomic_fetch_sub(&p->queued, res);
}

void
pc__peer_fail_waiters(waiter **list, pc_err rc)
{
    waiter *w;
    while ((w = *list)) {
        *list = w->next;
        pc__net_waiter_done(w, rc);
        pc__net_waiter_put(w);
    }
}

void
pc__link_down(net *n, peer *p, const char *why)
{
    char label[512];
    uint64_t node = p->node;
    bool was_up = p->up && !p->primary;

    if (p->gone)
        return;
    if (p->up && !strcmp(why, "it left"))
        PC_LOG_INFO("net", "%s left", peer_label(p, label, sizeof label));
    else if (p->up)
        PC_LOG_WARN("net", "%s is down: %s", peer_label(p, label, sizeof label),
                    why);
    if (node && p->incarnation && !p->primary)
        tomb_add(n, node, p->incarnation);
    pthread_mutex_lock(&n->mu);
    p->up = false;
    p->node = p->incarnation = 0;
    p->primary = NULL; /* read under mu by the stats calls */
    pthread_mutex_unlock(&n->mu);
    drop_pending(p);
    if (was_up) {
        atomic_fetch_add(&n->nodes_down, 1);
        /* its aliases go with it; lookups waiting on it fail */
        for (peer *q = n->peers; q; q = q->next)
            if (q->primary == p)
                pc__link_down(n, q, why);
        for (waiter **wp = &n->waiters; *wp;) {
            waiter *w = *wp;
            if (w->node == node) {
                *wp = w->next;
                pc__net_waiter_done(w, PC_EUNREACH);
                pc__net_waiter_put(w);
            } else
                wp = &w->next;
        }
        pc__rchan_node_down(n, node);
        pc_transport_node_down(node);
    }
    if (p->endpoint && p->dealer && !atomic_load(&n->stopping) &&
        strcmp(why, "it left")) {
        /* reconnect: a new start of that node will answer the hello. Not
         * after a goodbye: that node ended on purpose (as in Erlang, a
         * node that left is connected again only when asked to) */
        dealer_close(n, p);
        p->hello_sent = false;
        p->auth_failed = 0;
        p->rejoin = true;
        if (dealer_open(n, p) == PC_OK)
            pc__link_hello(n, p);
        else
            p->gone = true;
    } else {
        p->gone = true;
    }
}

void
pc__link_refused(net *n, peer *p)
{
    (void)n;
    pc__peer_fail_waiters(&p->connect_waiters, PC_EREFUSED);
    if (p->endpoint)
        PC_LOG_ERROR("net",
                     "%s was declared down by this node and must "
                     "start again before it can be reached",
                     p->endpoint);
    p->gone = true;
}

void
pc__peer_reap(net *n)
{
    pthread_mutex_lock(&n->mu);
    for (peer **pp = &n->peers; *pp;) {
        peer *p = *pp;
        if (!p->gone) {
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        dealer_close(n, p);
        pc__rchan_sub_close(n, p);
        drop_pending(p);
        pc__peer_fail_waiters(&p->connect_waiters, PC_EUNREACH);
        free(p->endpoint);
        free(p);
    }
    pthread_mutex_unlock(&n->mu);
}

/* ---- monitors -------------------------------------------------------------------- */

/* Say why p can't be reached, once, and drop it: a failed connect leaves
 * nothing behind. */
static void
connect_gave_up(net *n, peer *p, pc_err rc)
{
    char label[512];
    (void)n;

    pc_log_write(rc == PC_EAUTH ? PC_LOG_LEVEL_WARN : PC_LOG_LEVEL_INFO, "net",
                 "can't reach %s: %s", peer_label(p, label, sizeof label),
                 rc == PC_EAUTH ? "it refused our key (wrong cluster secret?)"
                                : "no answer");
    p->gone = true;
}

/* The handshake failed for want of the cluster's key: connects waiting on
 * p can't succeed, so they hear it now rather than at their deadline. A
 * hang-up in the middle of a handshake counts on its second time (the
 * first may be a peer going away). */
static void
auth_failed(net *n, peer *p, bool certain)
{
    if (!p->connect_waiters || p->up || (!certain && p->auth_failed < 2))
        return;
    pc__peer_fail_waiters(&p->connect_waiters, PC_EAUTH);
    connect_gave_up(n, p, PC_EAUTH);
}

static void
dealer_event(void *ctx, int event, int value, const char *endpoint)
{
    peer *p = ctx;
    net *n = pc__net;
    (void)endpoint;

    switch (event) {
    case ZMQ_EVENT_CONNECTED:
        p->connected = true;
        p->handshook = false;
        break;
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        p->handshook = true;
        /* the connection is ready now: a Hello ZeroMQ refused before had
         * nowhere to go, so send it again at once instead of at the
         * tick's retry a second later */
        if (p->hello_lost && !p->up && !p->gone) {
            p->hello_lost = false;
            pc__link_hello(n, p);
        }
        break;
    case ZMQ_EVENT_DISCONNECTED:
        if (p->connected && !p->handshook && !n->plain) {
            if (!p->auth_failed++ && !p->connect_waiters)
                PC_LOG_ERROR("net",
                             "%s closed the connection during the CURVE "
                             "handshake: it does not hold our cluster key "
                             "(wrong cluster secret?)",
                             p->endpoint);
            atomic_fetch_add(&n->auth_failed, 1);
            auth_failed(n, p, false);
        }
        p->connected = false;
        break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        if (!p->auth_failed++ && !p->connect_waiters)
            PC_LOG_ERROR("net", "%s refused this node: %s", p->endpoint,
                         pc__zmon_describe(event, value));
        atomic_fetch_add(&n->auth_failed, 1);
        p->connected = false;
        p->handshook = true; /* counted already */
        auth_failed(n, p, true);
        break;
    default:
        break;
    }
}

static void
router_event(void *ctx, int event, int value, const char *endpoint)
{
    net *n = ctx;
    double now = pc_now();

    if (event != ZMQ_EVENT_HANDSHAKE_FAILED_AUTH &&
        event != ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
        event != ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
        return;
    atomic_fetch_add(&n->auth_failed, 1);
    if (now - n->auth_log_at >= 10.0 || n->auth_log_at == 0) {
        n->auth_log_at = now;
        PC_LOG_ERROR("net", "refused a connection on %s: %s", endpoint,
                     pc__zmon_describe(event, value));
    }
}

/* A socket's fd fired: the pump looks at it (ZMQ_FD only signals). */
static void
on_dealer(struct ev_loop *loop, ev_io *io, int revents)
{
    peer *p = io->data;
    (void)loop, (void)revents;
    p->dirty = true;
    pc__link_stir(pc__net);
}

void
pc__peer_on_router_mon(struct ev_loop *loop, ev_io *io, int revents)
{
    net *n = io->data;
    (void)loop, (void)revents;
    pc__link_begin(n);
    pc__zmon_drain(n->router_mon, router_event, n);
    pc__link_end(n);
}

static void
on_dealer_mon(struct ev_loop *loop, ev_io *io, int revents)
{
    peer *p = io->data;
    (void)loop, (void)revents;
    pc__link_begin(pc__net);
    if (p->mon)
        pc__zmon_drain(p->mon, dealer_event, p);
    pc__link_end(pc__net);
}

static void
expire(waiter **list, double now, pc_err rc)
{
    for (waiter **wp = list; *wp;) {
        waiter *w = *wp;
        if (w->deadline <= now) {
            *wp = w->next;
            pc__net_waiter_done(w, rc);
            pc__net_waiter_put(w);
        } else
            wp = &w->next;
    }
}

static void tick(net *n);

void
pc__peer_on_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
    net *n = t->data;
    (void)loop, (void)revents;
    pc__link_begin(n);
    tick(n);
    pc__link_end(n);
}

static void
tick(net *n)
{
    double now = pc_now();
    /* a tick that comes late means this thread was not reading either:
     * judge peers' silence only after a slice of catching up */
    bool late = now - n->last_tick > n->timeout / 2;

    n->last_tick = now;
    /* (ZAP and monitors drain in their callbacks; once more here, in case
     * an edge was missed: a stuck ZAP request would stall a handshake) */
    if (n->zap)
        pc__zap_drain(n->zap);
    if (n->router_mon)
        pc__zmon_drain(n->router_mon, router_event, n);
    for (peer *p = n->peers; p; p = p->next)
        if (p->mon)
            pc__zmon_drain(p->mon, dealer_event, p);
    if (late)
        pc__link_pump(n);
    for (peer *p = n->peers; p; p = p->next) {
        if (p->gone)
            continue;
        if (p->up && !p->primary) {
            if (!late && now - last_in_get(p) > n->timeout) {
                char why[96];
                snprintf(why, sizeof why, "silent for %.2f s (timeout %.2f s)",
                         now - last_in_get(p), n->timeout);
                pc__link_down(n, p, why);
                continue;
            }
            if (now - p->last_out >= n->hb * 0.75) {
                wire_env e = PICOS__V1__ENVELOPE__INIT;
                e.kind = PICOS__V1__KIND__HEARTBEAT;
                pc__link_out(n, p, &e);
            }
        } else if (p->dealer && !p->node && !p->connect_waiters && !p->rejoin &&
                   p->bg_until && now > p->bg_until) {
            connect_gave_up(n, p, PC_ETIMEDOUT); /* a timeout-0 connect */
            continue;
        } else if (p->dealer && !p->up && now - p->hello_at >= 1.0 &&
                   (p->connected || !p->mon)) {
            /* connected, and no answer yet: say it again (while there is
             * no connection, ZeroMQ holds the last Hello for it) */
            pc__link_hello(n, p);
        } else if (!p->dealer && !p->up && now - p->since > 10.0) {
            p->gone = true; /* a connection that never said hello */
        }
        if (p->connect_waiters) {
            pc_err rc = p->auth_failed ? PC_EAUTH : PC_ETIMEDOUT;
            bool had = p->connect_waiters != NULL;
            expire(&p->connect_waiters, now, rc);
            /* a record made for the connect goes with it; one that was
             * reconnecting before anyone asked goes on */
            if (had && !p->connect_waiters && !p->up && !p->rejoin)
                connect_gave_up(n, p, rc);
        }
    }
    expire(&n->waiters, now, PC_ETIMEDOUT);
    pc__link_flush_all(n);
    pc__peer_reap(n);
}
