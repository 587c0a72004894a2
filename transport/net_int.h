/* transport/net_int.h — the ZeroMQ transport's shared state (internal).
 *
 * One link thread owns every ZeroMQ socket and every peer record; the ops
 * the runtime calls from workers (net.c) only push commands onto one MPSC
 * stack and ring the link thread's ev_async. The one thing they read
 * directly is the node table — which peers are up, their queue depth and
 * frame limit — under `mu`, so that a full or unknown peer is refused in the
 * caller's own call, with its message still its own.
 *
 * "The link thread" is the links' own thread, or (link_worker >= 0) the
 * worker whose loop they run on; whatever is "link thread only" below is
 * then that worker's, and a task of that worker pushes its commands
 * straight onto the backlog (docs/transport.md, "Links on a worker").
 */
#ifndef PICOS_TRANSPORT_NET_INT_H
#define PICOS_TRANSPORT_NET_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <ev.h>
#include <zmq.h>

#include "picos/net.h"
#include "picos/sync.h"
#include "picos/transport.h"

#include "curve.h"
#include "wire.h"
#include "zmon.h"

/* Commands that are not envelope kinds. */
enum {
    CMD_LISTEN = 100, /* bind ROUTER + PUB at str */
    CMD_CONNECT,      /* connect a DEALER to str */
    CMD_LOOKUP,       /* ask node (or endpoint str) for name str2 */
    CMD_CHAN_LOOKUP,  /* the same for a channel */
    CMD_CHAN_SUBS,    /* our proxy of node's channel str has count subs */
    CMD_CHAN_PUB,     /* our channel str published msg (ack: a deliver) */
};

typedef struct waiter waiter;

/* A request for the link thread. */
typedef struct cmd {
    struct cmd *next;
    int kind;             /* Picos__V1__Kind or CMD_* */
    uint64_t node;        /* the peer it goes to */
    uint64_t incarnation; /* kinds answering a request: the asker's */
    pc_ref from, to;
    uint64_t corr;
    double deadline; /* absolute pc_now(); INFINITY: none */
    int32_t status;
    uint64_t count;
    pc_msg *msg; /* the message or value carried; owned */
    waiter *w;   /* CMD_*: who waits for the answer */
    char *str;   /* CMD_*: endpoint or node; owned */
    char *str2;  /* CMD_LOOKUP: the name; owned */
    void (*ack)(void *actx, int reached); /* CMD_CHAN_PUB of a deliver */
    void *actx;
} cmd;

/* A caller of pc_node_listen / connect / locate_at waiting for the link
 * thread. Two references: the caller's and the link thread's. */
struct waiter {
    waiter *next; /* link thread's list */
    /* a task's call: the caller's side, on the list of such calls (net.c,
     * owned_mu) until the caller takes its result; nil for a foreign
     * thread */
    pc_ref owner;
    waiter *onext, **oprev;
    atomic_int refs;
    pc_event *ev;
    double deadline;
    uint64_t corr;
    pc_err rc;
    uint64_t node;
    pc_ref ref;
    char text[256]; /* a bound endpoint */
};

/* One connection to a peer node: a DEALER we connected (`dealer`), or a
 * connection that reached our ROUTER (`rid`). */
typedef struct peer {
    struct peer *next;
    /* read by ops under net.mu, written by the link thread under it */
    uint64_t node, incarnation; /* 0 until its hello */
    bool up;                    /* hello taken: the node's path */
    uint32_t max_frame;
    atomic_size_t queued; /* envelopes not yet handed to ZeroMQ */
    /* link thread only */
    struct peer *primary; /* another record is this node's path */
    void *dealer;
    ev_io io;      /* the dealer's ZMQ_FD */
    pc__zmon *mon; /* the dealer's handshake events */
    uint8_t rid[256];
    size_t rid_len;
    /* a dealer's: where it (re)connects; set and freed under net.mu */
    char *endpoint;
    char name[WIRE_NAME_MAX + 1]; /* from its hello, written under net.mu */
    char pub_endpoint[WIRE_ENDPOINT_MAX + 1];
    bool hello_sent;
    bool hello_lost; /* ZeroMQ refused it: its queue was full */
    bool stalled;    /* ZeroMQ refused a frame: tried again by the retry
                        timer only */
    bool gone;       /* to be freed by the link thread's reaper */
    bool rejoin;     /* reconnecting to a node that went down: a connect
                        that gives up waiting on it leaves it be */
    bool connected, handshook; /* a dealer's connection events */
    /* its last frame (pc_now()): also read by pc_net_peers_get, relaxed;
     * last_in_set / last_in_get */
    _Atomic double last_in;
    double last_out, since, hello_at;
    /* a connect nobody waits for (timeout 0): given up at this time unless
     * its node answered; 0: not such a connect */
    double bg_until;
    wire_buf out;                          /* the frame being filled */
    struct frame *pending, **pending_tail; /* frames ZeroMQ refused (HWM) */
    unsigned auth_failed;
    waiter *connect_waiters; /* pc_node_connect() callers */
    void *sub;               /* SUB to its PUB, once we subscribe */
    ev_io sub_io;
    ev_io mon_io; /* its monitor's fd */
    /* ZMQ_EVENTS may say POLLIN (its fd fired, or we used the socket
     * since it was last drained): the pump looks only at these */
    bool dirty, sub_dirty;
} peer;

static inline void
last_in_set(peer *p, double t)
{
    atomic_store_explicit(&p->last_in, t, memory_order_relaxed);
}

static inline double
last_in_get(peer *p)
{
    return atomic_load_explicit(&p->last_in, memory_order_relaxed);
}

typedef struct frame {
    struct frame *next;
    wire_buf b;
} frame;

/* A node incarnation declared down: refused forever after. */
typedef struct tomb {
    struct tomb *next;
    uint64_t node, incarnation;
} tomb;

typedef struct net {
    void *zctx;
    struct ev_loop *loop; /* the link thread's, or the link worker's */
    pthread_t thread;     /* link_worker < 0: the link thread */
    ev_async wake;
    ev_timer tick;
    ev_prepare pump;
    ev_idle idle;                 /* work left over from a slice */
    cmd *backlog, **backlog_tail; /* commands taken, not yet done */
    double last_tick;
    ev_io router_io;
    ev_io zap_io;
    ev_io mon_io;
    ev_io pub_io;
    bool router_dirty, pub_dirty; /* as peer.dirty */
    _Atomic(cmd *) inq;
    pthread_mutex_t mu; /* peers' node/up/max_frame; the peer list */
    peer *peers;
    tomb *tombs;
    unsigned ntombs;
    waiter *waiters;
    uint64_t next_corr;
    /* config */
    pc_curve_keys keys;
    bool plain;
    double hb, timeout;
    size_t max_frame, peer_queue;
    /* >= 0: the links run on that worker's loop (pc_net_opts.link_worker)
     * and its tasks' commands go straight onto the backlog; -1: a thread */
    int link_worker;
    uint64_t node, incarnation;
    char name[WIRE_NAME_MAX + 1];
    char host[WIRE_NAME_MAX + 1];
    /* sockets */
    void *router, *pub;
    pc__zap *zap;
    pc__zmon *router_mon;
    char router_ep[WIRE_ENDPOINT_MAX + 1];
    char pub_ep[WIRE_ENDPOINT_MAX + 1];
    atomic_bool stopping;
    ev_timer retry;   /* frames ZeroMQ refused wait for it */
    wire_arena arena; /* one envelope's unpacking */
    double auth_log_at;
    /* channels across nodes (rchan.c) */
    struct rhome *homes; /* our channels with subscribers elsewhere */
    struct rsub *subs;   /* our proxies of channels elsewhere */
    struct rpend *pends; /* directed publications awaiting acks */
    uint64_t next_pub;
    /* counters */
    atomic_uint_fast64_t frames_out, frames_in, env_out, env_in, refused,
        dropped, auth_failed, nodes_down, chan_missed, send_stalls;
    /* links on a worker (link_worker >= 0, with the config above): an
     * ev_check pumps after each poll as the ev_prepare does before it, and
     * `left` is set when the worker has run the leaving sequence (op_stop
     * waits) */
    ev_check check;
    pc_event *left;
    /* links on a worker: some link code ran (a callback, a command) since
     * the pump last looked at every socket; only then can a ZeroMQ call
     * have eaten a socket's edge, so only then does the pump look again
     * (each look at ZMQ_EVENTS is two system calls, and a worker's loop
     * turns every few microseconds while it spins) */
    bool stirred;
    /* links on a worker: the heartbeat keeper (link.c), a thread that
     * sends our heartbeats while a task keeps the worker from its tick;
     * the worker holds link_mu while link code runs (pc__link_begin) and
     * the keeper takes it only to send them */
    pthread_mutex_t link_mu;
    pthread_mutex_t keeper_mu; /* keeper_stop, keeper_cv */
    pthread_cond_t keeper_cv;
    bool keeper_stop, has_keeper;
    pthread_t keeper;
} net;

extern net *pc__net;

/* Link code is about to run (see net.stirred). */
static inline void
pc__link_stir(net *n)
{
    n->stirred = true;
}

/* A callback of the links that touches peers or sockets begins / ends (on
 * a worker: under link_mu, which the heartbeat keeper takes). */
static inline void
pc__link_begin(net *n)
{
    if (n->link_worker >= 0)
        pthread_mutex_lock(&n->link_mu);
    n->stirred = true;
}

static inline void
pc__link_end(net *n)
{
    if (n->link_worker >= 0)
        pthread_mutex_unlock(&n->link_mu);
}

/* net.c */
void pc__net_cmd_free(cmd *c);
void pc__net_waiter_put(waiter *w);
void pc__net_waiter_done(waiter *w, pc_err rc);

/* link.c: the thread */
void *pc__link_main(void *arg);
/* Queue an envelope to peer p's frame (link thread). */
bool pc__link_out(net *n, peer *p, wire_env *e); /* false: dropped */
peer *pc__link_peer_of(net *n, uint64_t node);   /* the up path, or NULL */
void pc__link_refuse(net *n, peer *p, int code, const char *text);
void pc__link_down(net *n, peer *p, const char *why);
/* p's node is a dead incarnation: fail its connects, drop the record. */
void pc__link_refused(net *n, peer *p);
void pc__link_hello(net *n, peer *p);
void pc__link_init(net *n);
peer *pc__link_dealer(net *n, const char *endpoint); /* a new DEALER record */
pc_err pc__link_listen(net *n, const char *endpoint, char *bound, size_t size);
void pc__net_free(net *n);

/* link.c */
void pc__link_flush(net *n, peer *p);
void pc__link_flush_all(net *n);
void pc__link_pump(net *n);
void pc__link_take_inq(net *n); /* the command stack onto the backlog */
/* Links on a worker: start / stop the heartbeat keeper (stop before the
 * worker leaves: the keeper must not outlive the sockets). */
pc_err pc__keeper_start(net *n);
void pc__keeper_stop(net *n);
#define PC__HWM 10000 /* ZeroMQ high-water marks of the link sockets */

/* peer.c */
peer *pc__peer_new(net *n); /* a record on the list */
void pc__peer_reap(net *n);
void pc__peer_fail_waiters(waiter **list, pc_err rc);
void pc__peer_on_tick(struct ev_loop *loop, ev_timer *t, int revents);
void pc__peer_on_router_mon(struct ev_loop *loop, ev_io *io, int revents);

static inline int
pc__zsetint(void *s, int opt, int v)
{
    return zmq_setsockopt(s, opt, &v, sizeof v);
}

/* dispatch.c: one inbound envelope from p (link thread). */
void pc__dispatch(net *n, peer *p, const wire_env *e);
/* Commands from ops and answers queued by workers (link thread). */
void pc__dispatch_cmd(net *n, cmd *c);

/* rchan.c (link thread) */
void pc__rchan_cmd(net *n, cmd *c);
void pc__rchan_in(net *n, peer *p, const wire_env *e);
void pc__rchan_drain_sub(net *n, peer *p, int *budget);
void pc__rchan_drain_xpub(net *n, int *budget);
void pc__rchan_node_down(net *n, uint64_t node);
void pc__rchan_fini(net *n);
void pc__rchan_sub_close(net *n, peer *p);
/* p's PUB became known: our proxies of its channels SUB to it. */
void pc__rchan_peer_pub(net *n, peer *p);

/* net.c: push a command for the link thread (any thread). */
void pc__net_push(net *n, cmd *c);

#endif
