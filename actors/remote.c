/* actors/remote.c — the runtime's side of the transport interface.
 *
 * One transport at a time is registered (picos/transport.h). Calls into it
 * are bracketed by an in-flight counter: a caller bumps it, then loads the
 * ops pointer; unregister swaps the pointer to NULL, then waits for the
 * counter to drain, so no op runs once unregister returns and stop() is
 * called (seq_cst on both sides: either the caller sees NULL, or the
 * unregisterer sees the caller's increment).
 *
 * While an unregister is under way (draining, stop(), failing what is
 * left) a new transport can't register: it would be torn down with the old.
 *
 * The runtime keeps, under one mutex, what it must settle when a peer node
 * dies: the pending tickets (deliver and join requests to remote refs, each
 * with the reply_to of its waiter) and the remote watches (local procs
 * monitoring or linked to remote ones, the link made from either side).
 * pc_transport_node_down() walks both for that node, unregister for all
 * nodes. Lists, not hash tables: they hold what is in flight or watched
 * across nodes, which is small next to local traffic.
 *
 * A ticket can be answered before its waiter waits: inside the op itself
 * (a transport that knows at once), or by a node-down meanwhile. A task's
 * wake-up would be lost then (it is not waiting yet), so until the waiter
 * has "armed" the ticket an answer is kept in it and the waiter takes it
 * without waiting.
 *
 * A watch is recorded before the op that asks the peer: the peer's answer
 * (a DOWN or EXIT for a target already gone) may come back through the
 * transport's thread before the op has returned, and it removes the watch.
 */
#include <math.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct ticket {
    struct ticket *next;
    uint64_t id, node;
    pc__reply_to rt;
    bool armed; /* the waiter waits on rt: an answer wakes it */
    bool done;  /* answered before that: off the list, rc and value here */
    int rc;
    pc_msg *value;
} ticket;

typedef struct watch {
    struct watch *next;
    pc_ref local, remote;
    bool link; /* else a monitor */
} watch;

static pc_transport_ops the_ops;
static _Atomic(const pc_transport_ops *) cur_ops;
static atomic_int inflight;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static ticket *tickets;
static watch *watches;
static uint64_t next_ticket = 1;
static bool unregistering; /* under mu */

static const pc_transport_ops *
ops_get(void)
{
    const pc_transport_ops *o;

    atomic_fetch_add(&inflight, 1);
    if (!(o = atomic_load(&cur_ops)))
        atomic_fetch_sub(&inflight, 1);
    return o;
}

static void
ops_put(void)
{
    atomic_fetch_sub(&inflight, 1);
}

pc_err
pc_transport_register(const pc_transport_ops *ops)
{
    const pc_transport_ops *none = NULL;

    if (!ops || !ops->send)
        return PC_EINVAL;
    if (!pc__the_node)
        return PC_ESTATE;
    pthread_mutex_lock(&mu);
    if (atomic_load(&cur_ops) || unregistering) {
        pthread_mutex_unlock(&mu);
        return PC_ESTATE;
    }
    the_ops = *ops;
    atomic_compare_exchange_strong(&cur_ops, &none, &the_ops);
    pthread_mutex_unlock(&mu);
    PC_LOG_DEBUG("transport", "registered %s", ops->name ? ops->name : "?");
    return PC_OK;
}

/* Answer t, just taken off the list (mu held): returns t when its waiter
 * is to be woken (after unlocking), or NULL when the answer waits in t for
 * the waiter, which is not waiting yet (*value is then taken). */
static ticket *
answer_locked(ticket *t, int rc, pc_msg **value)
{
    if (t->armed)
        return t;
    t->done = true;
    t->rc = rc;
    t->value = *value;
    *value = NULL;
    return NULL;
}

/* Take every ticket (of `node`, or all) off the list and fail it with rc. */
static void
fail_tickets(uint64_t node, bool all, int rc)
{
    ticket *t, *wake = NULL, **tp;
    pc_msg *none = NULL;

    pthread_mutex_lock(&mu);
    for (tp = &tickets; (t = *tp);) {
        if (all || t->node == node) {
            *tp = t->next;
            if (answer_locked(t, rc, &none)) {
                t->next = wake;
                wake = t;
            }
        } else {
            tp = &t->next;
        }
    }
    pthread_mutex_unlock(&mu);
    while ((t = wake)) {
        wake = t->next;
        pc__wake(t->rt, rc, NULL, NULL);
        free(t);
    }
}

/* Every remote watch (of `node`, or all) fires as its node's end. */
static void
watches_down(uint64_t node, bool all)
{
    watch *w, *gone = NULL, **wp;

    pthread_mutex_lock(&mu);
    for (wp = &watches; (w = *wp);) {
        if (all || w->remote.node == node) {
            *wp = w->next;
            w->next = gone;
            gone = w;
        } else {
            wp = &w->next;
        }
    }
    pthread_mutex_unlock(&mu);
    while ((w = gone)) {
        gone = w->next;
        pc__mon_node_down(w->local, w->remote, w->link);
        free(w);
    }
}

pc_err
pc_transport_unregister(void)
{
    const pc_transport_ops *o;
    pc_transport_ops ops;

    pthread_mutex_lock(&mu);
    if (!(o = atomic_exchange(&cur_ops, NULL))) {
        pthread_mutex_unlock(&mu);
        return PC_ESTATE;
    }
    ops = *o;
    unregistering = true; /* the_ops stays ours until the end */
    pthread_mutex_unlock(&mu);
    while (atomic_load(&inflight) > 0)
        sched_yield(); /* an op is queueing its work: microseconds */
    if (ops.stop)
        ops.stop(ops.ctx);
    /* nothing answers through it any more: no DOWN or reply will come */
    fail_tickets(0, true, PC_EUNREACH);
    watches_down(0, true);
    pthread_mutex_lock(&mu);
    unregistering = false;
    pthread_mutex_unlock(&mu);
    return PC_OK;
}

void
pc__transport_fini(void)
{
    watch *w;

    pc_transport_unregister();
    /* what a misbehaving transport added after its unregister: the refs
     * would be stale in the next node */
    pthread_mutex_lock(&mu);
    while ((w = watches)) {
        watches = w->next;
        free(w);
    }
    pthread_mutex_unlock(&mu);
}

uint64_t
pc_node_incarnation(void)
{
    return pc__the_node ? pc__the_node->incarnation : 0;
}

/* ---- calls out ------------------------------------------------------------- */

pc_err
pc__remote_send(pc_ref to, pc_msg **m, bool chan)
{
    const pc_transport_ops *o = ops_get();
    pc_err rc;

    if (!o)
        return PC_EUNREACH;
    rc = o->send(o->ctx, to, m, chan);
    ops_put();
    if (rc == PC_EFULL) /* the peer's queue is full: refused */
        pc__count_refused();
    return rc;
}

/* Take ticket `id` off the list (mu held); NULL when it is gone. */
static ticket *
ticket_take(uint64_t id)
{
    for (ticket **tp = &tickets; *tp; tp = &(*tp)->next) {
        if ((*tp)->id == id) {
            ticket *t = *tp;
            *tp = t->next;
            return t;
        }
    }
    return NULL;
}

/* Ask `call` for a ticketed request to `node`, then wait up to timeout for
 * the answer; returns the answer's rc (and *value), PC_ETIMEDOUT, or the
 * op's own error. */
static int
ticket_wait(uint64_t node, double timeout, pc_msg **value,
            pc_err (*call)(const pc_transport_ops *o, uint64_t id, void *arg),
            void *arg)
{
    ticket *t = calloc(1, sizeof *t);
    const pc_transport_ops *o;
    pc_msg *reply = NULL;
    int rc;

    if (!t)
        return PC_ENOMEM;
    if ((rc = pc__wait_prepare(&t->rt)) != PC_OK) {
        free(t);
        return rc;
    }
    pthread_mutex_lock(&mu);
    t->id = next_ticket++;
    t->node = node;
    t->next = tickets;
    tickets = t;
    pthread_mutex_unlock(&mu);
    if (!(o = ops_get())) {
        rc = PC_EUNREACH;
    } else {
        rc = call(o, t->id, arg);
        ops_put();
    }
    pthread_mutex_lock(&mu);
    if (t->done || rc != PC_OK) { /* answered already, or nobody will */
        if (!t->done)
            ticket_take(t->id);
        pthread_mutex_unlock(&mu);
        pc__wait_cancel(&t->rt);
        if (rc == PC_OK) {
            rc = t->rc;
            reply = t->value;
        } else {
            pc_msg_free(&t->value);
        }
        free(t);
        goto out;
    }
    t->armed = true;
    uint64_t id = t->id;
    pc__reply_to rt = t->rt; /* t may be freed by an answer from now on */
    pthread_mutex_unlock(&mu);
    rc = pc__wait_block_msg(&rt, timeout, NULL, &reply);
    if (rc == PC_ETIMEDOUT) {
        pthread_mutex_lock(&mu);
        t = ticket_take(id); /* NULL: an answer is on its way, dropped */
        pthread_mutex_unlock(&mu);
        if (t) {
            pc__wait_drop(&t->rt);
            free(t);
        }
        pc_msg_free(&reply);
        return PC_ETIMEDOUT;
    }
out:
    if (value)
        *value = reply;
    else
        pc_msg_free(&reply);
    return rc;
}

struct deliver_arg {
    pc_ref to;
    pc_msg **m;
    double deadline;
};

static pc_err
call_deliver(const pc_transport_ops *o, uint64_t id, void *arg)
{
    struct deliver_arg *a = arg;

    if (!o->deliver)
        return PC_ENOTSUP;
    return o->deliver(o->ctx, a->to, a->m, a->deadline, id);
}

pc_err
pc__remote_deliver(pc_ref to, pc_msg **m, double timeout)
{
    pc_msg *keep = pc_msg_ref(*m); /* the caller keeps it on any error */
    struct deliver_arg a = {to, m, pc_deadline(timeout)};
    int rc = ticket_wait(to.node, timeout, NULL, call_deliver, &a);

    if (rc == PC_OK) {
        pc_msg_free(&keep);
        *m = NULL;
    } else {
        if (*m) /* the op refused it: drop our extra reference */
            pc_msg_free(&keep);
        else
            *m = keep; /* it left: the caller holds the reference we kept */
    }
    return rc;
}

struct join_arg {
    pc_ref to;
    double deadline;
};

static pc_err
call_join(const pc_transport_ops *o, uint64_t id, void *arg)
{
    struct join_arg *a = arg;

    if (!o->join)
        return PC_ENOTSUP;
    return o->join(o->ctx, a->to, a->deadline, id);
}

pc_err
pc__remote_join(pc_ref to, double timeout, pc_msg **value)
{
    struct join_arg a = {to, pc_deadline(timeout)};

    if (timeout == 0)
        return PC_ETIMEDOUT; /* another node: only a wait could tell */
    return ticket_wait(to.node, timeout, value, call_join, &a);
}

/* ---- channels ------------------------------------------------------------ */

pc_err
pc__remote_chan_send(uint64_t home, const char *name, pc_msg **m)
{
    const pc_transport_ops *o = ops_get();
    pc_err rc;

    if (!o)
        return PC_EUNREACH;
    rc = o->chan_send ? o->chan_send(o->ctx, home, name, m) : PC_ENOTSUP;
    ops_put();
    return rc;
}

struct chan_deliver_arg {
    uint64_t home;
    const char *name;
    pc_msg **m;
    int n;
    double deadline;
};

static pc_err
call_chan_deliver(const pc_transport_ops *o, uint64_t id, void *arg)
{
    struct chan_deliver_arg *a = arg;

    if (!o->chan_deliver)
        return PC_ENOTSUP;
    return o->chan_deliver(o->ctx, a->home, a->name, a->m, a->n, a->deadline,
                           id);
}

pc_err
pc__remote_chan_deliver(uint64_t home, const char *name, pc_msg **m, int n,
                        double timeout, int *reached)
{
    pc_msg *keep = pc_msg_ref(*m), *value = NULL;
    struct chan_deliver_arg a = {home, name, m, n, pc_deadline(timeout)};
    int rc = ticket_wait(home, timeout, &value, call_chan_deliver, &a);
    size_t len = 0;
    const void *d = value ? pc_msg_data(value, &len) : NULL;
    int32_t count = 0;

    if (d && len == sizeof count)
        memcpy(&count, d, sizeof count);
    pc_msg_free(&value);
    if (reached)
        *reached = count;
    if (rc == PC_OK) {
        pc_msg_free(&keep);
        *m = NULL;
    } else if (*m) {
        pc_msg_free(&keep);
    } else {
        *m = keep;
    }
    return rc;
}

void
pc__remote_chan_subscribers(uint64_t home, const char *name, size_t n)
{
    const pc_transport_ops *o = ops_get();

    if (!o)
        return;
    if (o->chan_subscribers)
        o->chan_subscribers(o->ctx, home, name, n);
    ops_put();
}

pc_err
pc__remote_chan_publish(const char *name, pc_msg **m,
                        void (*ack)(void *actx, int reached), void *actx)
{
    const pc_transport_ops *o = ops_get();
    pc_err rc;

    if (!o)
        return PC_EUNREACH;
    rc = o->chan_publish ? o->chan_publish(o->ctx, name, m, ack, actx)
                         : PC_ENOTSUP;
    ops_put();
    return rc;
}

pc_err
pc__remote_terminate(pc_ref to)
{
    const pc_transport_ops *o = ops_get();
    pc_err rc;

    if (!o)
        return PC_EUNREACH;
    rc = o->terminate ? o->terminate(o->ctx, to) : PC_ENOTSUP;
    ops_put();
    return rc;
}

static watch **
watch_find(pc_ref local, pc_ref remote, bool link)
{
    watch **wp;

    for (wp = &watches; *wp; wp = &(*wp)->next) {
        if ((*wp)->link == link && pc_ref_eq((*wp)->local, local) &&
            pc_ref_eq((*wp)->remote, remote))
            break;
    }
    return wp;
}

/* Record that local proc `local` watches (monitor) or is linked with
 * remote `remote`; *added: it was not yet. */
static pc_err
watch_add(pc_ref local, pc_ref remote, bool link, bool *added)
{
    watch *w = malloc(sizeof *w);
    watch **wp;

    *added = false;
    if (!w)
        return PC_ENOMEM;
    pthread_mutex_lock(&mu);
    if (!*(wp = watch_find(local, remote, link))) {
        *w = (watch){watches, local, remote, link};
        watches = w;
        w = NULL;
        *added = true;
    }
    pthread_mutex_unlock(&mu);
    free(w);
    return PC_OK;
}

static void
watch_del(pc_ref local, pc_ref remote, bool link)
{
    watch *w, **wp;

    pthread_mutex_lock(&mu);
    if ((w = *(wp = watch_find(local, remote, link))))
        *wp = w->next;
    pthread_mutex_unlock(&mu);
    free(w);
}

/* Set or end a watch around `ask`, the request that tells the other side:
 * recorded before it (its answer may come back first and end the watch),
 * taken back when it fails; ended whatever it says when `on` is false. */
static pc_err
watch_around(pc_ref local, pc_ref remote, bool link, bool on,
             pc_err (*ask)(pc_ref local, pc_ref remote, bool link, bool on))
{
    bool added = false;
    pc_err rc;

    if (on && (rc = watch_add(local, remote, link, &added)) != PC_OK)
        return rc;
    rc = ask(local, remote, link, on);
    if (!on || (rc != PC_OK && added))
        watch_del(local, remote, link);
    return rc;
}

static pc_err
ask_remote(pc_ref local, pc_ref remote, bool link, bool on)
{
    const pc_transport_ops *o = ops_get();
    pc_err rc;

    if (!o)
        return PC_EUNREACH;
    if (link)
        rc = o->link ? o->link(o->ctx, local, remote, on) : PC_ENOTSUP;
    else
        rc = o->monitor ? o->monitor(o->ctx, local, remote, on) : PC_ENOTSUP;
    ops_put();
    return rc;
}

pc_err
pc__remote_monitor(pc_ref watcher, pc_ref target, bool on)
{
    return watch_around(watcher, target, false, on, ask_remote);
}

pc_err
pc__remote_link(pc_ref local, pc_ref remote, bool on)
{
    return watch_around(local, remote, true, on, ask_remote);
}

pc_err
pc__remote_exit(pc_ref from, pc_ref to, pc_msg **exit)
{
    const pc_transport_ops *o;
    pc_err rc;

    watch_del(from, to, true); /* the link ends with its signal */
    if (!(o = ops_get()))
        return PC_EUNREACH;
    rc = o->exit_signal ? o->exit_signal(o->ctx, from, to, exit) : PC_ENOTSUP;
    ops_put();
    return rc;
}

/* ---- calls in ------------------------------------------------------------------- */

/* A transport running on a worker's own loop (its callbacks, between
 * procs) injects for a proc of that worker: the message arrives as one
 * from another worker would (pc__msg_local: a full bounded mailbox takes
 * it or refuses it by its policy, and the verdict goes to ack), never as a
 * task's local send, which a full mailbox refuses at the call. Returns
 * false when that is not the case (*m untouched). */
static bool
inject_here(pc_ref to, pc_msg **m, bool chan, void (*ack)(void *ctx, pc_err rc),
            void *ctx)
{
    pc__worker *w = pc__tls_worker, *tw;
    pc__proc *p;
    pc__env e = {0};

    if (!w || w->cur || pc__route(to, &tw, &p) != PC_OK || !p)
        return false;
    e.to = to;
    e.msg = *m;
    e.how = chan ? PC__MB_CHAN : 0;
    e.ack = (pc__ack_fn)ack;
    e.ptr = ctx;
    *m = NULL;
    pc__msg_local(w, &e);
    return true;
}

pc_err
pc_transport_inject(pc_ref to, pc_msg **m, bool chan,
                    void (*ack)(void *ctx, pc_err rc), void *ctx)
{
    pc_down d;

    if (!m || !*m)
        return PC_EINVAL;
    if (!pc__the_node || to.node != pc__the_node->id)
        return PC_EUNREACH;
    /* a DOWN from a remote target ends the watch kept for node-down */
    if (pc_msg_is(*m, PC_MSG_DOWN) && pc_down_parse(*m, &d) == PC_OK)
        watch_del(to, d.who, false);
    if (inject_here(to, m, chan, ack, ctx))
        return PC_OK;
    return pc__send_ex(to, m, chan ? PC__MB_CHAN : 0, (pc__ack_fn)ack, ctx);
}

void *
pc_transport_worker_loop(void)
{
    pc__worker *w = pc__tls_worker;

    return w ? w->loop : NULL;
}

void
pc_transport_reply(uint64_t id, pc_err rc, pc_msg *value)
{
    pc_transport_reply_from(0, id, rc, value);
}

void
pc_transport_reply_from(uint64_t node, uint64_t id, pc_err rc, pc_msg *value)
{
    ticket *t = NULL;

    pthread_mutex_lock(&mu);
    for (ticket *x = tickets; x; x = x->next)
        if (x->id == id)
            t = x;
    if (t && node && t->node != node)
        t = NULL; /* not a ticket for that node: not its answer */
    else if ((t = ticket_take(id)))
        t = answer_locked(t, rc, &value);
    pthread_mutex_unlock(&mu);
    if (!t) {
        pc_msg_free(&value); /* given up (late), or kept in the ticket */
        return;
    }
    pc__wake(t->rt, rc, value, NULL);
    free(t);
}

pc_err
pc_transport_monitor_in(pc_ref watcher, pc_ref target, bool on)
{
    if (!pc__the_node || target.node != pc__the_node->id)
        return PC_EUNREACH;
    return on ? pc__mon_request(PC__ENV_MONITOR, target, watcher)
              : pc__mon_request(PC__ENV_DEMONITOR, target, watcher);
}

static pc_err
ask_local(pc_ref local, pc_ref remote, bool link, bool on)
{
    (void)link;
    return pc__mon_request(on ? PC__ENV_LINK : PC__ENV_UNLINK, local, remote);
}

pc_err
pc_transport_link_in(pc_ref remote, pc_ref local, bool on)
{
    if (!pc__the_node || local.node != pc__the_node->id)
        return PC_EUNREACH;
    /* watched here too: the link fires on node-down whoever made it */
    return watch_around(local, remote, true, on, ask_local);
}

pc_err
pc_transport_exit_in(pc_ref from, pc_ref to, pc_msg **exit)
{
    pc_down d;

    if (!exit || !*exit || pc_down_parse(*exit, &d) != PC_OK)
        return PC_EINVAL;
    if (!pc__the_node || to.node != pc__the_node->id)
        return PC_EUNREACH;
    watch_del(to, from, true);
    pc__mon_exit(to, from, (int)d.reason, *exit);
    *exit = NULL;
    return PC_OK;
}

void
pc_transport_node_down(uint64_t node)
{
    watches_down(node, false);
    fail_tickets(node, false, PC_EUNREACH);
}

/* ---- refs on the wire ---------------------------------------------------------- */

static void
put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t
get64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

size_t
pc_ref_encode(pc_ref r, uint64_t incarnation, void *buf, size_t size)
{
    unsigned char *p = buf;

    if (!p || size < PC_REF_WIRE_SIZE)
        return 0;
    p[0] = 1;
    put64(p + 1, r.node);
    put64(p + 9, incarnation);
    put64(p + 17, r.id);
    return PC_REF_WIRE_SIZE;
}

pc_err
pc_ref_decode(const void *buf, size_t len, pc_ref *r, uint64_t *incarnation)
{
    const unsigned char *p = buf;

    if (!p || !r || len != PC_REF_WIRE_SIZE)
        return PC_EINVAL;
    if (p[0] != 1)
        return PC_EPROTO;
    r->node = get64(p + 1);
    if (incarnation)
        *incarnation = get64(p + 9);
    r->id = get64(p + 17);
    return PC_OK;
}
