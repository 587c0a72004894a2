/* actors/chan_send.c — publishing on a channel: fan-out, send, deliver.
 *
 * A send picks up the channel's current subscriber arrays and transform
 * under its mutex (one reference each), then fans out with no lock held:
 * the transform, one more reference to the message into each subscriber's
 * channel ring (pc__send_ex), and the sub-channels, recursively. A deliver
 * counts acknowledgements in a refcounted record shared with the acks in
 * flight (the deliverer may give up first); see chan.c for the whole
 * design.
 */
#include <stdlib.h>
#include <string.h>

#include "chan_int.h"

/* ---- fan-out ------------------------------------------------------------- */

/* One pc_chan_deliver()'s acknowledgements. refs: the deliverer's plus one
 * per ack still to come. */
typedef struct dlv {
    atomic_uint refs;
    pthread_mutex_t mu;
    /* under mu */
    int pending; /* acks to come, + 1 while the fan-out runs */
    int reached; /* acks with PC_OK */
    int want;    /* n > 0: enough once this many are in */
    bool armed;  /* the deliverer waits on rt; the first to clear it wakes */
    pc__reply_to rt;
    /* or, for a deliver that came from another node: told once, when
     * complete */
    void (*done)(void *ctx, int reached);
    void *done_ctx;
    /* a local deliver's hold on its channel: released by the deliverer,
     * or by the ack that finds it terminated while it waited */
    pc_chan *held;
} dlv;

static bool
dlv_complete(const dlv *d)
{
    return d->pending == 0 || (d->want > 0 && d->reached >= d->want);
}

static void
dlv_unref(dlv *d)
{
    if (atomic_fetch_sub_explicit(&d->refs, 1, memory_order_acq_rel) == 1) {
        pthread_mutex_destroy(&d->mu);
        free(d);
    }
}

/* One acknowledgement for `reached` end-point tasks (under d->mu); tells
 * the waiter when that completes d. */
static void
dlv_count(dlv *d, int reached)
{
    pc__reply_to rt = {.token = 0};
    void (*done)(void *, int) = NULL;
    pc_chan *orphan = NULL;
    bool wake = false;
    int total;

    pthread_mutex_lock(&d->mu);
    d->reached += reached;
    d->pending--;
    total = d->reached;
    if (d->armed && pc__wait_gone(&d->rt)) {
        /* the deliverer was terminated where it waited: its reference on
         * d and its hold on the channel are ours to drop */
        d->armed = false;
        orphan = d->held;
        atomic_fetch_sub_explicit(&d->refs, 1, memory_order_acq_rel);
    } else if (d->armed && dlv_complete(d)) {
        d->armed = false;
        rt = d->rt;
        wake = true;
    }
    if (d->done && dlv_complete(d)) {
        done = d->done;
        d->done = NULL;
    }
    pthread_mutex_unlock(&d->mu);
    if (wake)
        pc__wake(rt, PC_OK, NULL, NULL);
    if (done)
        done(d->done_ctx, total);
    dlv_unref(d);
    if (orphan)
        pc__chan_unref(orphan);
}

/* pc__send_ex's ack: on the target's worker, or inside the send. */
static void
dlv_ack(void *ctx, int rc)
{
    dlv_count(ctx, rc == PC_OK);
}

/* The remote subscribers' ack: how many they reached in all. */
static void
dlv_ack_n(void *ctx, int reached)
{
    dlv_count(ctx, reached > 0 ? reached : 0);
}

/* Under no lock: drop the subscribers a fan-out found gone. */
static void
drop_gone(pc_chan *c, const pc_ref *gone, int n)
{
    bool changed = false;

    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < n; i++)
        changed |= pc__chan_tasks_del(c, gone[i]) == PC_OK;
    if (changed)
        pc__chan_update_count(c);
    pthread_mutex_unlock(&c->mu);
}

/* Fan m (the caller's reference, consumed) out through c and, recursively,
 * its sub-channels; with d, every hand-off is acknowledged into d. With
 * `top`, a closed channel returns PC_ECLOSED and leaves m alone. */
static pc_err
fan_out(pc_chan *c, pc_msg *m, dlv *d, int level, bool top)
{
    pc_chan_transform_fn fn;
    pc_ref gone[GONE_MAX];
    uint64_t handed = 0, lost = 0;
    int ngone = 0;
    tasks *t;
    kids *k;
    void *ctx;

    pthread_mutex_lock(&c->mu);
    if (c->closed || level >= PC_CHAN_MAX_DEPTH) {
        pthread_mutex_unlock(&c->mu);
        if (top)
            return PC_ECLOSED;
        atomic_fetch_add_explicit(&c->messages, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&c->dropped, 1, memory_order_relaxed);
        pc_msg_free(&m);
        return PC_OK;
    }
    fn = c->fn;
    ctx = c->ctx;
    if ((t = c->tasks))
        TAKE(t);
    if ((k = c->kids))
        TAKE(k);
    bool remote = c->remote_subs > 0;
    pthread_mutex_unlock(&c->mu);
    atomic_fetch_add_explicit(&c->messages, 1, memory_order_relaxed);

    if (fn && !(m = fn(ctx, c->name, m))) {
        atomic_fetch_add_explicit(&c->dropped, 1, memory_order_relaxed);
        goto out;
    }
    uint32_t nt = t ? t->n : 0, nk = k ? k->n : 0;
    if (remote) { /* subscribers on other nodes: the transport's part */
        if (d) {
            atomic_fetch_add_explicit(&d->refs, 1, memory_order_relaxed);
            pthread_mutex_lock(&d->mu);
            d->pending++;
            pthread_mutex_unlock(&d->mu);
        }
        pc__chan_remote_fanout(c, pc_msg_ref(m), d ? dlv_ack_n : NULL, d);
    }
    if (d && nt) {
        atomic_fetch_add_explicit(&d->refs, nt, memory_order_relaxed);
        pthread_mutex_lock(&d->mu);
        d->pending += (int)nt;
        pthread_mutex_unlock(&d->mu);
    }
    for (uint32_t i = 0; i < nt; i++) {
        /* the last hand-off gives away our own reference */
        bool last = i + 1 == nt && !nk;
        pc_msg *r = last ? m : pc_msg_ref(m);
        pc_err rc;
        if (last)
            m = NULL;
        rc = pc__send_ex(t->ref[i], &r, PC__MB_CHAN, d ? dlv_ack : NULL, d);
        if (rc == PC_OK) {
            handed++;
            continue;
        }
        pc_msg_free(&r);
        lost++;
        if (d)
            dlv_ack(d, rc); /* no ack will come for it */
        if ((rc == PC_ENOENT || rc == PC_EUNREACH) && ngone < GONE_MAX)
            gone[ngone++] = t->ref[i];
    }
    for (uint32_t i = 0; i < nk; i++) {
        bool last = i + 1 == nk;
        pc_msg *r = last ? m : pc_msg_ref(m);
        if (last)
            m = NULL;
        fan_out(k->ch[i], r, d, level + 1, false);
    }
    if (handed)
        atomic_fetch_add_explicit(&c->deliveries, handed, memory_order_relaxed);
    if (lost)
        atomic_fetch_add_explicit(&c->lost, lost, memory_order_relaxed);
out:
    pc_msg_free(&m);
    if (ngone)
        drop_gone(c, gone, ngone);
    pc__chan_tasks_unref(t);
    pc__chan_kids_unref(k);
    return PC_OK;
}

pc_err
pc_chan_send(pc_chan *ch, pc_msg **m)
{
    pc_err rc;

    if (!ch || !m || !*m)
        return PC_EINVAL;
    if (!pc_node_id())
        return PC_ESTATE;
    if (ch->home) /* another node's channel: it goes there */
        return pc__chan_proxy_send(ch, m);
    if ((rc = fan_out(ch, *m, NULL, 0, true)) == PC_OK)
        *m = NULL;
    return rc;
}

pc_err
pc__chan_fanout_local(pc_chan *c, pc_msg **m,
                      void (*done)(void *ctx, int reached), void *ctx)
{
    dlv *d = NULL;
    pc_err rc;

    if (done) {
        if (!(d = calloc(1, sizeof *d)))
            return PC_ENOMEM;
        atomic_init(&d->refs, 1);
        pthread_mutex_init(&d->mu, NULL);
        d->pending = 1; /* the fan-out itself */
        d->done = done;
        d->done_ctx = ctx;
    }
    if ((rc = fan_out(c, *m, d, 0, true)) == PC_OK)
        *m = NULL;
    else if (d)
        d->done = NULL; /* the caller keeps *m and answers itself */
    if (d)
        dlv_count(d, 0); /* the fan-out is over */
    return rc;
}

/* Wait until c has n direct subscribers. */
static pc_err
wait_subscribers(pc_chan *c, size_t n, double deadline)
{
    pc_err rc = PC_OK;

    pthread_mutex_lock(&c->mu);
    while (!c->closed &&
           atomic_load_explicit(&c->nsubs, memory_order_relaxed) < n) {
        double secs = pc_deadline_left(deadline);
        nwait *w;
        if (secs == 0) {
            rc = PC_ETIMEDOUT;
            break;
        }
        if (!(w = calloc(1, sizeof *w))) {
            rc = PC_ENOMEM;
            break;
        }
        if ((rc = pc__wait_prepare(&w->rt)) != PC_OK) {
            free(w);
            break;
        }
        w->n = n;
        w->next = c->waiters;
        c->waiters = w;
        pthread_mutex_unlock(&c->mu);
        pc__wait_block(&w->rt, secs, NULL);
        pthread_mutex_lock(&c->mu);
        if (!w->taken) { /* timed out before any waker saw it */
            nwait **pp = &c->waiters;
            while (*pp != w)
                pp = &(*pp)->next;
            *pp = w->next;
            pc__wait_drop(&w->rt);
        }
        free(w);
    }
    if (rc == PC_OK && c->closed)
        rc = PC_ECLOSED;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* pc_chan_deliver() once the arguments are checked; ch is held. */
static pc_err
deliver(pc_chan *ch, pc_msg **m, int n, double deadline, int *reached)
{
    bool armed = false;
    dlv *d;
    pc_err rc;

    if (n > 0 && (rc = wait_subscribers(ch, (size_t)n, deadline)) != PC_OK)
        return rc;
    if (!(d = calloc(1, sizeof *d)))
        return PC_ENOMEM;
    atomic_init(&d->refs, 1);
    pthread_mutex_init(&d->mu, NULL);
    d->pending = 1;
    d->want = n;
    d->held = ch;
    /* the fan-out gets a reference of its own: *m stays the caller's until
     * the verdict is PC_OK */
    pc_msg *r = pc_msg_ref(*m);
    if ((rc = fan_out(ch, r, d, 0, true)) != PC_OK) {
        pc_msg_free(&r); /* closed since the wait: fan_out left it alone */
        dlv_unref(d);
        return rc;
    }

    pthread_mutex_lock(&d->mu);
    d->pending--; /* the fan-out is over */
    if (!dlv_complete(d)) {
        rc = pc__wait_prepare(&d->rt);
        armed = d->armed = rc == PC_OK;
    }
    pthread_mutex_unlock(&d->mu);
    if (armed) {
        pc__wait_block(&d->rt, pc_deadline_left(deadline), NULL);
        pthread_mutex_lock(&d->mu);
        if (d->armed) { /* timed out and no ack took rt meanwhile */
            d->armed = false;
            pc__wait_drop(&d->rt);
            rc = dlv_complete(d) ? PC_OK : PC_ETIMEDOUT;
        }
        pthread_mutex_unlock(&d->mu);
    }
    pthread_mutex_lock(&d->mu);
    if (reached)
        *reached = d->reached;
    pthread_mutex_unlock(&d->mu);
    dlv_unref(d);
    if (rc == PC_OK)
        pc_msg_free(m);
    return rc;
}

pc_err
pc_chan_deliver(pc_chan *ch, pc_msg **m, int n, double timeout, int *reached)
{
    pc__worker *w = pc__tls_worker;
    pc_err rc;

    if (reached)
        *reached = 0;
    if (!ch || !m || !*m || n < 0)
        return PC_EINVAL;
    if (w && !pc__cur_task(w))
        return PC_EPERM; /* a handler (or the scheduler) can't block */
    if (!pc_node_id())
        return PC_ESTATE;
    if (ch->home)
        return pc__chan_proxy_deliver(ch, m, n, timeout, reached);
    TAKE(ch); /* a pc_chan_free() while we wait wakes us; ch stays valid */
    rc = deliver(ch, m, n, pc_deadline(timeout), reached);
    pc__chan_unref(ch);
    return rc;
}
