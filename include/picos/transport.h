/* picos/transport.h — the interface a network transport plugs into.
 *
 * The runtime (actors/) knows no network. A transport — picos's ZeroMQ node
 * links, or a test's loop-back — registers one table of operations, and the
 * runtime calls it for every ref whose node is not this one: pc_send,
 * pc_deliver, pc_monitor / pc_demonitor, pc_link / pc_unlink (and the exit
 * signals a link carries), pc_task_terminate and pc_task_join all work on
 * remote refs through it (location transparency). In the other direction
 * the transport hands the runtime what arrives from its peers through the
 * pc_transport_*_in() calls below, from any thread (its own I/O thread).
 *
 * Contracts:
 *   - Ownership: an op taking `pc_msg **m` that returns PC_OK owns *m (and
 *     NULLs it); on any error *m is untouched and stays the caller's.
 *   - Replies: deliver and join ops get a `ticket`; the transport answers
 *     each exactly once with pc_transport_reply(ticket, rc, value), from
 *     any thread and at any time after the op was called (inside the op
 *     too), or the runtime gives up on it (timeout, node down, unregister)
 *     and a late reply is dropped. Deadlines are absolute pc_now() times
 *     (INFINITY: none); the transport carries them on the wire.
 *   - Node down: when the transport declares a peer dead (heartbeats), it
 *     calls pc_transport_node_down(node): every local watcher of that node's
 *     tasks gets DOWN with PC_DOWN_NODE, links to them fire, and pending
 *     delivers and joins to them fail with PC_EUNREACH.
 *   - Teardown: ops are called only between pc_transport_register() and
 *     pc_transport_unregister(); unregister waits until no call is inside
 *     an op, then calls ops->stop(); after that the transport calls nothing
 *     in (its threads have ended). What went through it ends as on node
 *     down: pending delivers and joins fail with PC_EUNREACH, local
 *     watchers of remote procs get DOWN with PC_DOWN_NODE, links to them
 *     fire. pc_node_run() unregisters the transport before it stops the
 *     workers, so a transport's threads end while the node can still take
 *     what they push.
 * Ops may be called from any thread (workers, foreign threads) and must not
 * block: queue the work for the transport's own thread.
 */
#ifndef PICOS_TRANSPORT_H
#define PICOS_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "picos/err.h"
#include "picos/msg.h"
#include "picos/ref.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pc_transport_ops {
    const char *name; /* for logs */
    void *ctx;        /* passed to every op */
    /* A message for `to` (a ref of another node): at most once, FIFO per
     * sender→receiver; never blocks (a full peer queue is PC_EFULL, and the
     * caller keeps *m). `chan`: it is channel traffic. */
    pc_err (*send)(void *ctx, pc_ref to, pc_msg **m, bool chan);
    /* The same, acknowledged: answer `ticket` with the remote mailbox's
     * verdict (PC_OK, PC_ENOENT, PC_EFULL...) or PC_ETIMEDOUT / PC_EUNREACH. */
    pc_err (*deliver)(void *ctx, pc_ref to, pc_msg **m, double deadline,
                      uint64_t ticket);
    /* Local `watcher` starts (on) or stops watching remote `target`: the
     * remote node sends the DOWN (a PC_MSG_DOWN message) when it ends. */
    pc_err (*monitor)(void *ctx, pc_ref watcher, pc_ref target, bool on);
    /* Local proc `local` links (on) or unlinks with remote `remote`. */
    pc_err (*link)(void *ctx, pc_ref local, pc_ref remote, bool on);
    /* Exit signal of linked local proc `from` to remote `to` (*exit: the
     * PC_MSG_EXIT message). */
    pc_err (*exit_signal)(void *ctx, pc_ref from, pc_ref to, pc_msg **exit);
    pc_err (*terminate)(void *ctx, pc_ref target);
    /* Answer `ticket` with how remote `target` ended and its exit value. */
    pc_err (*join)(void *ctx, pc_ref target, double deadline, uint64_t ticket);
    /* Channels across nodes (all may be NULL: channels stay local).
     * A proxy of node `home`'s channel `name` (pc_chan_proxy()) forwards
     * pc_chan_send() here, and pc_chan_deliver() with a ticket to answer
     * with pc_transport_reply(ticket, rc, value): value's payload is the
     * int32_t number of end-point tasks reached. */
    pc_err (*chan_send)(void *ctx, uint64_t home, const char *name, pc_msg **m);
    pc_err (*chan_deliver)(void *ctx, uint64_t home, const char *name,
                           pc_msg **m, int n, double deadline, uint64_t ticket);
    /* That proxy's local subscribers are now `n` (0: none left). Called
     * with the channel's lock held: queue it, call nothing back. */
    void (*chan_subscribers)(void *ctx, uint64_t home, const char *name,
                             size_t n);
    /* A channel of ours with remote subscribers (pc_chan_set_remote_subs)
     * fanned out *m (a reference for the op, taken on PC_OK): hand it to
     * those nodes. With ack (a deliver), call ack(actx, reached) exactly
     * once — also on unregister — with the end-point tasks they reached;
     * on an error return the runtime counts them as none. */
    pc_err (*chan_publish)(void *ctx, const char *name, pc_msg **m,
                           void (*ack)(void *actx, int reached), void *actx);
    /* Unregistered: end the transport's threads; no op is called after. */
    void (*stop)(void *ctx);
} pc_transport_ops;

/* Register the transport (ops is copied). One at a time: PC_ESTATE when
 * one is registered (or still being unregistered) or no node runs;
 * PC_EINVAL without send. Any thread. */
pc_err pc_transport_register(const pc_transport_ops *ops);

/* Unregister it: waits for calls inside ops to return, then calls stop().
 * Pending delivers and joins through it fail with PC_EUNREACH, and remote
 * monitors and links fire as on pc_transport_node_down() of every node.
 * Not from inside an op. Returns PC_ESTATE when none is registered. Any
 * thread. */
pc_err pc_transport_unregister(void);

/* This node start's incarnation: random, never 0, new at every start (a
 * restarted node is a new node even with a fixed node id). 0: no node. */
uint64_t pc_node_incarnation(void);

/* ---- names across nodes ------------------------------------------------------ */

/* The runtime's plug for a cluster-wide name service (registry/client.c
 * sets it while the node has joined a registry): pc_register() calls reg()
 * after the name was registered on this node — a name newly taken, not the
 * same ref again — and on an error of reg() removes the local entry again
 * and returns that error, so the caller's state is as before.
 * pc_unregister() calls unreg() after the local entry went. Both are called
 * without any runtime lock held, in the caller's thread (reg may wait). */
typedef struct pc_names_hook {
    pc_err (*reg)(void *ctx, const char *name, pc_ref ref);
    void (*unreg)(void *ctx, const char *name);
    void *ctx;
} pc_names_hook;

/* Install h (copied; NULL removes the hook). A call already inside the old
 * hook finishes with it. Any thread. */
void pc_names_set_hook(const pc_names_hook *h);

/* ---- from the network ---------------------------------------------------- */

/* A message from remote `sender` whose payload is `data` (len bytes) taken
 * without copying: free_fn(data, hint) is called when the message is
 * freed (free_fn may be NULL when the data outlives the message). Like
 * every payload, data[len] must be a NUL (pc_msg_str() and pc_down_parse()
 * read up to it): PC_EINVAL otherwise. type is copied. On error data is
 * still the caller's. Any thread. */
pc_err pc_msg_new_remote(pc_msg **out, pc_ref sender, const char *type,
                         void *data, size_t len,
                         void (*free_fn)(void *data, void *hint), void *hint);

/* A DOWN or EXIT message (type PC_MSG_DOWN or PC_MSG_EXIT) as the runtime
 * makes it, from the fields of d (what pc_down_parse() gives back; error is
 * used with PC_DOWN_ERROR, value_type/value with PC_DOWN_NORMAL), sent by
 * d->who: what a transport rebuilds from its wire form. Returns PC_OK,
 * PC_EINVAL, PC_ENOMEM. Any thread. */
struct pc_down;
pc_err pc_down_msg_new(pc_msg **out, const char *type, const struct pc_down *d);

/* Put m in the mailbox of local `to`. With ack, ack(ctx, rc) is called
 * exactly once (on to's worker) with the mailbox's verdict, when this
 * returns PC_OK. Returns PC_OK (*m taken), or PC_ENOENT / PC_EUNREACH (not
 * a ref of this node) with *m untouched. Any thread; but from a task on
 * to's own worker it is a local send: a full bounded mailbox answers
 * PC_EFULL at once (*m untouched, no ack) and a PC_MB_BLOCK one makes that
 * task wait for room — inject from the transport's own thread. */
pc_err pc_transport_inject(pc_ref to, pc_msg **m, bool chan,
                           void (*ack)(void *ctx, pc_err rc), void *ctx);

/* The libev loop (a `struct ev_loop *`) of the worker whose thread calls
 * this, from a task or a callback of that loop; NULL on any other thread.
 * For a transport that runs on a worker's loop instead of a thread of its
 * own (picos's node links with pc_net_opts.link_worker): it starts its
 * watchers from that worker (a task spawned there), and its callbacks run
 * between procs. What such a callback injects (pc_transport_inject) for a
 * proc of that worker arrives as from another thread: a full bounded
 * mailbox takes or refuses it by its policy, and ack hears the verdict. */
void *pc_transport_worker_loop(void);

/* Answer a deliver or join ticket (value: a join's exit value, consumed;
 * may be NULL). A ticket the runtime gave up is ignored. Any thread. */
void pc_transport_reply(uint64_t ticket, pc_err rc, pc_msg *value);

/* The same, only if the ticket is a request to `node` (0: any): an answer
 * that comes from another node is dropped. Any thread. */
void pc_transport_reply_from(uint64_t node, uint64_t ticket, pc_err rc,
                             pc_msg *value);

/* Remote `watcher` starts (on) or stops watching local `target`: when the
 * target ends, its DOWN is sent to the watcher (through the transport).
 * A gone target answers at once with a DOWN (PC_DOWN_NOPROC). Any thread. */
pc_err pc_transport_monitor_in(pc_ref watcher, pc_ref target, bool on);

/* Remote `remote` links (on) or unlinks with local `local`; the link fires
 * on pc_transport_node_down() of remote's node as well. Any thread. */
pc_err pc_transport_link_in(pc_ref remote, pc_ref local, bool on);

/* An exit signal from linked remote `from` arrives for local `to` (*exit:
 * its PC_MSG_EXIT message, taken on PC_OK): Erlang's rules apply. */
pc_err pc_transport_exit_in(pc_ref from, pc_ref to, pc_msg **exit);

/* The transport declared `node` down (or its incarnation replaced): every
 * local watcher of its procs gets DOWN (PC_DOWN_NODE), links to them fire
 * (exit reason PC_DOWN_NODE), pending delivers and joins to them fail with
 * PC_EUNREACH. Any thread. */
void pc_transport_node_down(uint64_t node);

/* ---- channels across nodes --------------------------------------------------- */

struct pc_chan;

/* The proxy of node `home`'s channel `name` in this process, made on first
 * use: local tasks subscribe to it as to any channel, pc_chan_send() and
 * pc_chan_deliver() on it go to the home node (ops chan_send and
 * chan_deliver), and what the home node publishes reaches its subscribers
 * through pc_transport_chan_in(). The node owns proxies: they live until
 * pc_node_run() ends, and pc_chan_free() on one only clears the pointer.
 * Returns PC_OK, PC_EINVAL, PC_ESTATE (no node), PC_ENOMEM. Any thread. */
pc_err pc_chan_proxy(struct pc_chan **out, uint64_t home, const char *name);

/* Our channel ch has `n` end-point subscribers on other nodes (the
 * transport's count): they count for pc_chan_deliver()'s n, and each
 * fan-out calls the chan_publish op while n > 0. PC_OK or PC_EINVAL (NULL,
 * a proxy). Any thread. */
pc_err pc_chan_set_remote_subs(struct pc_chan *ch, size_t n);

/* Our channel `name` with a reference held, or NULL: unlike
 * pc_chan_find()'s borrowed pointer it stays valid when the owner calls
 * pc_chan_free() meanwhile (calls on it then answer PC_ECLOSED), until
 * pc_transport_chan_put(). For a transport acting on a name from the wire
 * on its own thread. Any thread. */
struct pc_chan *pc_transport_chan_get(const char *name);
void pc_transport_chan_put(struct pc_chan *ch);

/* A publication of node `home`'s channel `name` arrived: fan *m out to the
 * local subscribers of its proxy (taken on PC_OK). With ack, ack(ctx,
 * reached) is called exactly once, when every local end-point task took
 * it (a deliver), on PC_OK. Returns PC_OK, PC_ENOENT (no proxy of it
 * here), PC_ENOMEM. Any thread. */
pc_err pc_transport_chan_in(uint64_t home, const char *name, pc_msg **m,
                            void (*ack)(void *ctx, int reached), void *ctx);

/* ---- refs on the wire ------------------------------------------------------ */

/* The wire form of a ref: version byte 1, then node, incarnation and id as
 * little-endian 64-bit words: PC_REF_WIRE_SIZE bytes. */
#define PC_REF_WIRE_SIZE 25

/* Encode r of a node with `incarnation` into buf (at least
 * PC_REF_WIRE_SIZE bytes). Returns the bytes written, or 0 when size is too
 * small. */
size_t pc_ref_encode(pc_ref r, uint64_t incarnation, void *buf, size_t size);

/* Decode exactly PC_REF_WIRE_SIZE bytes. Returns PC_OK, PC_EPROTO (an
 * unknown version), or PC_EINVAL (wrong length, NULL). */
pc_err pc_ref_decode(const void *buf, size_t len, pc_ref *r,
                     uint64_t *incarnation);

#ifdef __cplusplus
}
#endif
#endif
