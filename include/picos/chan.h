/* picos/chan.h — channels: local publish-subscribe (pycos's Channel).
 *
 * A channel has a name, an optional transform and a set of subscribers:
 * tasks and light actors (by ref), and other channels, which makes
 * hierarchies (a message sent to a channel flows on into its sub-channels,
 * whose transforms apply in turn). A send applies the channel's transform,
 * then hands every subscriber task one more reference to the same message
 * (pc_msg_ref(); nothing is ever copied) through the channel side of its
 * mailbox: a receive takes channel mail and direct mail in turn, so a busy
 * channel can't starve a task's direct mail. Messages from one publisher
 * reach each subscriber in the order sent.
 *
 * pc_chan_send() is best effort (pycos's send): it never blocks, and mail to
 * a task that ends before taking it is lost (at most once, like pc_send()).
 * pc_chan_deliver() is acknowledged: it returns how many end-point tasks had
 * the message put in their mailbox. Subscriber tasks found gone by a send or
 * deliver are unsubscribed on the spot (as pycos does).
 *
 * Lifetime: a channel is the caller's heap object. It doesn't belong to the
 * node: it may be made before pc_node_start() and it outlives
 * pc_node_run(); only pc_chan_free() ends it. Task subscribers don't survive
 * their node: once it has ended they are stale refs, unsubscribed by the
 * next send or deliver. Sends while no node runs return PC_ESTATE.
 *
 * Threads: every call may be made from any thread (tasks, light-actor
 * handlers, foreign threads) unless said otherwise; a channel has its own
 * small lock, held only briefly and never while a call blocks, fans out or
 * runs the transform. The one rule: pc_chan_free() must not race with
 * another call on the same channel, nor be followed by one — except
 * pc_chan_deliver() calls already under way, which hold the channel and
 * return PC_ECLOSED when it is freed while they wait for subscribers.
 */
#ifndef PICOS_CHAN_H
#define PICOS_CHAN_H

#include <stddef.h>
#include <stdint.h>

#include "picos/err.h"
#include "picos/msg.h"
#include "picos/ref.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pc_chan pc_chan;

/* Longest chain of channels a message may pass through (a channel and its
 * sub-channels, their sub-channels, ...). pc_chan_subscribe_chan() refuses
 * a link that would make a longer one. */
#define PC_CHAN_MAX_DEPTH 16

/* Longest channel name, in bytes. */
#define PC_CHAN_NAME_MAX 255

/* A transform, applied to every message entering the channel before it is
 * fanned out (at the channel's home node). It takes over the caller's
 * reference to m and returns the reference to fan out:
 *   - m itself, to pass it on unchanged;
 *   - another message (usually a new one), after dropping m with
 *     pc_msg_free(&m) — or keeping it, then it is the transform's;
 *   - NULL to drop the message, after pc_msg_free(&m).
 * m is shared with other subscribers and must not be changed. It runs on
 * the publisher's thread, possibly on several threads at once, and with no
 * channel lock held, so it must be thread-safe and must not block; it may
 * call any pc_chan_* function except pc_chan_deliver() and pc_chan_free(). */
typedef pc_msg *(*pc_chan_transform_fn)(void *ctx, const char *chan_name,
                                        pc_msg *m);

/* Make a channel. `name` (copied) is unique in the process — one node per
 * process, so per node — and pc_chan_find() finds it; NULL or "" makes an
 * anonymous channel that pc_chan_find() can't find. fn may be NULL (no
 * transform); ctx is passed to it and stays the caller's. On PC_OK *out is
 * the new channel, which the caller frees with pc_chan_free(). Returns
 * PC_ESTATE when a channel of that name exists (nothing is made), PC_EINVAL
 * (out NULL, name longer than PC_CHAN_NAME_MAX), PC_ENOMEM. Any thread. */
pc_err pc_chan_new(pc_chan **out, const char *name, pc_chan_transform_fn fn,
                   void *ctx);

/* The channel named `name`, or NULL. The pointer is borrowed: it stays valid
 * until the owner calls pc_chan_free() on that channel. Any thread. */
pc_chan *pc_chan_find(const char *name);

/* Unregister the channel's name, unsubscribe all of its subscribers, take
 * it out of every channel it is subscribed to, wake pc_chan_deliver()s that
 * wait for subscribers (they return PC_ECLOSED), then drop the caller's
 * reference and set *ch to NULL. Fan-outs already under way through it
 * finish safely; the memory goes with the last of them. NULL and *ch ==
 * NULL are no-ops. Any thread, once no other call uses *ch (see above). */
void pc_chan_free(pc_chan **ch);

/* The name given to pc_chan_new() ("" when anonymous). Valid while the
 * channel is. Any thread. */
const char *pc_chan_name(const pc_chan *ch);

/* Replace the transform (fn NULL: none) for messages sent from now on.
 * Returns PC_OK, PC_EINVAL, PC_ECLOSED. Any thread. */
pc_err pc_chan_set_transform(pc_chan *ch, pc_chan_transform_fn fn, void *ctx);

/* Add task or light actor `task` (a live one of the running node) to the
 * subscribers. Subscribers are a set: subscribing again changes nothing and
 * returns PC_OK. Returns PC_OK, PC_ENOENT (no such task: ended or nil ref),
 * PC_EUNREACH (a ref of another node: remote subscribers come with the
 * transport), PC_ESTATE (no node runs), PC_ECLOSED, PC_EINVAL, PC_ENOMEM.
 * Any thread. */
pc_err pc_chan_subscribe(pc_chan *ch, pc_ref task);

/* Remove `task` from the subscribers: messages sent after this returns
 * don't reach it (ones already in its mailbox stay there). Returns PC_OK,
 * PC_ENOENT (it wasn't subscribed), PC_EINVAL. Any thread. */
pc_err pc_chan_unsubscribe(pc_chan *ch, pc_ref task);

/* Make channel `sub` a subscriber of ch: every message that ch fans out
 * also enters sub (through sub's transform) and reaches sub's subscribers.
 * A set, like tasks (again: PC_OK, no change). Returns PC_OK, PC_ESTATE when
 * the link would close a cycle (sub == ch, or ch is already reachable from
 * sub), PC_ETOOBIG when it would make a chain longer than
 * PC_CHAN_MAX_DEPTH, PC_ECLOSED, PC_EINVAL, PC_ENOMEM. ch holds a reference
 * to sub while subscribed; pc_chan_free(&sub) unsubscribes it. Any
 * thread. */
pc_err pc_chan_subscribe_chan(pc_chan *ch, pc_chan *sub);

/* Remove channel `sub` from ch's subscribers. Returns PC_OK, PC_ENOENT (it
 * wasn't subscribed), PC_EINVAL. Any thread. */
pc_err pc_chan_unsubscribe_chan(pc_chan *ch, pc_chan *sub);

/* Publish *m: apply the transform, then hand one reference to every
 * subscriber task and pass the message on into every sub-channel. Best
 * effort: never blocks (a full bounded mailbox applies its policy, but a
 * PC_MB_BLOCK one takes it beyond the capacity), and a subscriber found gone
 * is unsubscribed and counted as lost. Returns PC_OK with *m NULL (also when
 * the transform dropped the message or nobody is subscribed); PC_EINVAL,
 * PC_ESTATE (no node runs), PC_ECLOSED: the caller keeps *m (msg.h's rule).
 * Any thread. */
pc_err pc_chan_send(pc_chan *ch, pc_msg **m);

/* Publish *m with acknowledgements (pycos's deliver). When n > 0 it first
 * waits until the channel has at least n direct subscribers (tasks and
 * channels); if `timeout` passes first the message is not sent, *reached
 * is 0 and PC_ETIMEDOUT returned. Then it fans out like pc_chan_send() and
 * waits, for what is left of the timeout, until every end-point task of the
 * hierarchy has acknowledged — or, when n > 0, until n of them have (pycos).
 * *reached (may be NULL) is the number of end-point tasks that got the
 * message in their mailbox by then; it may be more or less than n, and 0 when
 * the transform dropped it. timeout: seconds, negative waits forever, 0
 * doesn't wait (acks from other workers then usually miss the count).
 * Returns PC_OK when all (or n) acks are in, with *m NULL. Every other
 * return leaves *m with the caller (msg.h's rule): PC_ETIMEDOUT when the
 * timeout passed first (after the fan-out, more tasks may still get it);
 * PC_ECLOSED when the channel was freed while it waited for subscribers;
 * PC_EINVAL (n < 0), PC_ESTATE (no node runs), PC_ENOMEM. Tasks and foreign
 * threads; PC_EPERM from a light-actor handler. */
pc_err pc_chan_deliver(pc_chan *ch, pc_msg **m, int n, double timeout,
                       int *reached);

/* The number of direct subscribers: tasks and channels (sub-channels'
 * subscribers are not counted). 0 for NULL. Any thread. */
size_t pc_chan_subscribers(const pc_chan *ch);

/* Counters of one channel since it was made, for monitoring. Each is read
 * on its own (relaxed), so a snapshot taken under traffic needn't add up. */
typedef struct pc_chan_stats {
    uint64_t messages;    /* entered: sends, delivers, from parent channels */
    uint64_t dropped;     /* of those, dropped by the transform (or because
                             the channel was closed meanwhile) */
    uint64_t deliveries;  /* references handed to subscriber tasks */
    uint64_t lost;        /* not handed over: subscriber gone, no memory */
    uint64_t subscribers; /* direct subscribers now */
} pc_chan_stats;

/* Fill *out with ch's counters. Returns PC_OK or PC_EINVAL. Any thread. */
pc_err pc_chan_stats_get(const pc_chan *ch, pc_chan_stats *out);

#ifdef __cplusplus
}
#endif
#endif
