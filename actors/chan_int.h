/* actors/chan_int.h — what chan.c (channels, subscriber sets, topology)
 * and chan_send.c (fan-out, send, deliver) share. See chan.c's opening
 * comment for the design. */
#ifndef PICOS_ACTORS_CHAN_INT_H
#define PICOS_ACTORS_CHAN_INT_H

#include "internal.h"

/* Task subscribers, shared with fan-outs in progress. */
typedef struct tasks {
    atomic_uint refs;
    uint32_t n, cap;
    pc_ref ref[];
} tasks;

/* Sub-channels, shared likewise; holds a reference to each. */
typedef struct kids {
    atomic_uint refs;
    uint32_t n, cap;
    pc_chan *ch[];
} kids;

/* A pc_chan_deliver() waiting for n subscribers. Heap, not the waiter's
 * stack (small tasks' stacks move); freed by the waiter. */
typedef struct nwait {
    struct nwait *next;
    pc__reply_to rt;
    size_t n;
    bool taken; /* a waker unlinked it and woke rt */
} nwait;

struct pc_chan {
    atomic_uint refs; /* the owner's, each kids array's, each deliver's */
    pthread_mutex_t mu;
    /* under mu */
    pc_chan_transform_fn fn;
    void *ctx;
    tasks *tasks;    /* NULL: none yet */
    uint32_t *index; /* over tasks->ref: position + 1, 0 = empty slot */
    uint32_t icap;   /* index slots, a power of two; 0: no index yet */
    nwait *waiters;
    /* under mu and topo_mu to change, either to read */
    kids *kids;
    bool closed;
    /* under topo_mu */
    pc_chan **parents; /* channels whose kids list this one (no refs) */
    uint32_t nparents, pcap;
    pc_chan *next_named; /* registry bucket chain */
    uint64_t mark;       /* graph searches: visited in search `mark` */
    int memo;            /* ... with this depth */
    /* the network (chan_remote.c), under mu */
    size_t remote_subs; /* end-point subscribers on other nodes */
    uint64_t home;      /* a proxy of node `home`'s channel `name`; 0: ours */
    size_t told;        /* a proxy: subscriber count last told the transport */
    pc_chan *next_proxy;
    /* counters, relaxed */
    atomic_uint_fast64_t messages, dropped, deliveries, lost;
    atomic_size_t nsubs; /* tasks->n + kids->n, for lock-free reads */
    char name[];
};

#define GONE_MAX 16 /* gone subscribers removed per fan-out (more: later) */

/* One more reference to an array or a channel. Fan-outs take theirs on the
 * arrays under the channel's mu, so a count of 1 seen under mu means that no
 * fan-out reads the array and it may be edited in place. */
#define TAKE(a) atomic_fetch_add_explicit(&(a)->refs, 1, memory_order_relaxed)
#define SHARED(a) (atomic_load_explicit(&(a)->refs, memory_order_acquire) > 1)

void pc__chan_unref(pc_chan *c);
void pc__chan_kids_unref(kids *k);
void pc__chan_tasks_unref(tasks *t);
void pc__chan_update_count(pc_chan *c);
/* Under c->mu, after the count grew: wake delivers waiting for it. */
void pc__chan_wake_waiters(pc_chan *c);
/* Under c->mu: remove r. PC_ENOENT when it isn't there. */
pc_err pc__chan_tasks_del(pc_chan *c, pc_ref r);

/* chan_send.c: fan m out through c with no forwarding (a publication that
 * came from c's home node); done(ctx, reached), when not NULL, is called
 * once every end-point task has acknowledged. */
pc_err pc__chan_fanout_local(pc_chan *c, pc_msg **m,
                             void (*done)(void *ctx, int reached), void *ctx);

/* chan_remote.c */
/* Under c->mu, after the subscribers changed: a proxy tells its count to
 * the transport. */
void pc__chan_proxy_count(pc_chan *c);
/* pc_chan_send / pc_chan_deliver on a proxy: to its home node. */
pc_err pc__chan_proxy_send(pc_chan *c, pc_msg **m);
pc_err pc__chan_proxy_deliver(pc_chan *c, pc_msg **m, int n, double timeout,
                              int *reached);
/* In a fan-out of c (a channel of ours with remote subscribers): hand them
 * m (a reference, consumed); ack, when not NULL, is called exactly once. */
void pc__chan_remote_fanout(pc_chan *c, pc_msg *m,
                            void (*ack)(void *actx, int reached), void *actx);

#endif
