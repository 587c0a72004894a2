/* transport/fdwait.c — the closable fd wait and the references shared by
 * sockets and TLS connections.
 *
 * A waiter registers its task ref and the id of the pc_wait_fd() it is
 * about to make under the object's lock, waits without the lock, and
 * unregisters. A close cancels every registered wait by that id, so a
 * cancel that arrives after its task left the wait does nothing to the
 * task's next one.
 *
 * A terminated task never unregisters and never leaves its call: its entry
 * stays, with the call's reference. Every entry is such a reference, so
 * prune() drops one per entry whose task is gone. The close and the release
 * prune; the close has a race of its own: a task terminated from another
 * worker may still look alive when the close cancels it, and then nobody
 * would come back to the object. So a closed object that keeps waiters goes
 * on the watch list (with a reference), as does a connecting socket nobody
 * else knows of; sweep() prunes them again and lets go of those whose only
 * reference left is the list's. A call leaving a closed object and a
 * release of one sweep at once (so the usual close, which cancels live
 * waiters, still closes the fd as soon as the last of them is out), and a
 * daemon task, the reaper, sweeps with growing pauses (1 to 50 ms) while
 * the list is not empty, for the waiters that died instead of leaving. The
 * hot path (a wait) never looks at the list.
 */
#include "fdwait.h"

#include <stdlib.h>
#include <string.h>

#define REAP_NAP_MIN 0.001
#define REAP_NAP_MAX 0.05

static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static tp_obj *watch_head;     /* under watch_lock */
static atomic_size_t nwatched; /* written under watch_lock */
static pc_ref reaper;          /* under watch_lock; nil or gone: none */

/* ---- references -------------------------------------------------------------- */

void
tp_obj_init(tp_obj *o, void (*destroy)(tp_obj *o))
{
    atomic_init(&o->refs, 1);
    atomic_init(&o->closed, false);
    pthread_mutex_init(&o->lock, NULL);
    o->waiters = NULL;
    o->n = o->cap = 0;
    o->destroy = destroy;
    o->watch_prev = o->watch_next = NULL;
    o->watched = false;
}

void
tp_obj_fini(tp_obj *o)
{
    pthread_mutex_destroy(&o->lock);
    free(o->waiters);
    o->waiters = NULL;
    o->n = o->cap = 0;
}

void
tp_obj_retain(tp_obj *o)
{
    atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
}

void
tp_obj_unref(tp_obj *o)
{
    if (atomic_fetch_sub_explicit(&o->refs, 1, memory_order_acq_rel) == 1)
        o->destroy(o);
}

/* Under o->lock: drop the entries of waiters that are gone, returning how
 * many (each one a call reference the caller must drop; never the last,
 * since the caller holds one of its own). */
static int
prune(tp_obj *o)
{
    int k = 0;

    for (size_t i = 0; i < o->n;) {
        if (pc_alive(o->waiters[i].task)) {
            i++;
            continue;
        }
        o->waiters[i] = o->waiters[--o->n];
        k++;
    }
    return k;
}

static void
drop_pruned(tp_obj *o, int k)
{
    if (k > 0)
        atomic_fetch_sub_explicit(&o->refs, k, memory_order_acq_rel);
}

/* ---- the watch list -------------------------------------------------------------- */

static void
watch_unlink(tp_obj *o)
{
    if (o->watch_prev)
        o->watch_prev->watch_next = o->watch_next;
    else
        watch_head = o->watch_next;
    if (o->watch_next)
        o->watch_next->watch_prev = o->watch_prev;
    o->watch_prev = o->watch_next = NULL;
    o->watched = false;
    atomic_store(&nwatched, atomic_load(&nwatched) - 1);
}

static pc_msg *reaper_main(void *arg);

/* Under watch_lock: make sure a reaper runs, and have it look soon. */
static void
reaper_kick(void)
{
    pc_spawn_opts so;

    if (pc_alive(reaper)) {
        (void)pc_resume(reaper, NULL); /* from its longest pause */
        return;
    }
    memset(&so, 0, sizeof so);
    so.worker = PC_WORKER_ANY;
    so.flags = PC_TASK_DAEMON;
    so.name = "picos-fdwait-reaper";
    if (pc_spawn(reaper_main, NULL, &so, &reaper) != PC_OK)
        reaper = PC_REF_NIL; /* no node: no task can die in a wait either */
}

void
tp_obj_watch(tp_obj *o)
{
    pthread_mutex_lock(&watch_lock);
    if (!o->watched) {
        tp_obj_retain(o);
        o->watched = true;
        o->watch_prev = NULL;
        o->watch_next = watch_head;
        if (watch_head)
            watch_head->watch_prev = o;
        watch_head = o;
        atomic_store(&nwatched, atomic_load(&nwatched) + 1);
    }
    reaper_kick();
    pthread_mutex_unlock(&watch_lock);
}

void
tp_obj_unwatch(tp_obj *o)
{
    bool was;

    pthread_mutex_lock(&watch_lock);
    was = o->watched;
    if (was)
        watch_unlink(o);
    pthread_mutex_unlock(&watch_lock);
    if (was)
        tp_obj_unref(o);
}

/* Prune every watched object; let go of those only the list still holds
 * (nobody else has a pointer to them, so nobody can take a reference). */
static void
sweep(void)
{
    tp_obj *drop = NULL;

    if (atomic_load(&nwatched) == 0)
        return;
    pthread_mutex_lock(&watch_lock);
    for (tp_obj *o = watch_head, *next; o; o = next) {
        int k;
        next = o->watch_next;
        pthread_mutex_lock(&o->lock);
        k = prune(o);
        pthread_mutex_unlock(&o->lock);
        drop_pruned(o, k);
        if (atomic_load_explicit(&o->refs, memory_order_acquire) == 1) {
            watch_unlink(o);
            o->watch_next = drop;
            drop = o;
        }
    }
    pthread_mutex_unlock(&watch_lock);
    while (drop) { /* destroy may close other objects: outside the lock */
        tp_obj *o = drop;
        drop = o->watch_next;
        o->watch_next = NULL;
        tp_obj_unref(o);
    }
}

static pc_msg *
reaper_main(void *arg)
{
    double nap = REAP_NAP_MIN;

    (void)arg;
    for (;;) {
        sweep();
        pthread_mutex_lock(&watch_lock);
        if (!watch_head) {
            reaper = PC_REF_NIL;
            pthread_mutex_unlock(&watch_lock);
            return NULL;
        }
        pthread_mutex_unlock(&watch_lock);
        if (pc_sleep(nap) == PC_EINTR)
            nap = REAP_NAP_MIN;
        else if (nap < REAP_NAP_MAX)
            nap *= 2;
    }
}

/* ---- calls ------------------------------------------------------------------------ */

pc_err
tp_obj_enter(tp_obj *o)
{
    if (!o)
        return PC_EINVAL;
    if (!pc_in_task())
        return PC_EPERM;
    if (tp_obj_closed(o))
        return PC_ECLOSED;
    tp_obj_retain(o);
    return PC_OK;
}

pc_err
tp_obj_leave(tp_obj *o, pc_err rc)
{
    bool closed = tp_obj_closed(o);

    tp_obj_unref(o);
    if (closed)
        sweep(); /* o may be on the watch list, waiting for us */
    return rc;
}

static pc_err
wait_register(tp_obj *o, tp_waiter me)
{
    pthread_mutex_lock(&o->lock);
    if (tp_obj_closed(o)) {
        pthread_mutex_unlock(&o->lock);
        return PC_ECLOSED;
    }
    if (o->n == o->cap) {
        size_t cap = o->cap ? 2 * o->cap : 4;
        tp_waiter *r = realloc(o->waiters, cap * sizeof *r);
        if (!r) {
            pthread_mutex_unlock(&o->lock);
            return PC_ENOMEM;
        }
        o->waiters = r;
        o->cap = cap;
    }
    o->waiters[o->n++] = me;
    pthread_mutex_unlock(&o->lock);
    return PC_OK;
}

/* Unregister; true when o was closed meanwhile. */
static bool
wait_unregister(tp_obj *o, tp_waiter me)
{
    bool closed;

    pthread_mutex_lock(&o->lock);
    for (size_t i = 0; i < o->n; i++) {
        if (o->waiters[i].wait == me.wait &&
            pc_ref_eq(o->waiters[i].task, me.task)) {
            o->waiters[i] = o->waiters[--o->n];
            break;
        }
    }
    closed = tp_obj_closed(o);
    pthread_mutex_unlock(&o->lock);
    return closed;
}

pc_err
tp_obj_wait(tp_obj *o, int fd, int ev, double deadline)
{
    tp_waiter me = {pc_self(), pc_wait_fd_next()};
    pc_err rc = wait_register(o, me);

    if (rc != PC_OK)
        return rc;
    rc = pc_wait_fd(fd, ev, pc_deadline_left(deadline), NULL);
    return wait_unregister(o, me) ? PC_ECLOSED : rc;
}

pc_err
tp_obj_sleep(tp_obj *o, double secs)
{
    tp_waiter me = {pc_self(), 0}; /* a sleep: no fd wait to cancel */
    pc_err rc = wait_register(o, me);

    if (rc != PC_OK)
        return rc;
    rc = pc_sleep(secs);
    if (rc == PC_EINTR)
        rc = PC_OK;
    return wait_unregister(o, me) ? PC_ECLOSED : rc;
}

/* ---- closing ------------------------------------------------------------------------ */

void
tp_obj_close(tp_obj *o, void (*on_close)(tp_obj *o))
{
    bool left;
    int k;

    pthread_mutex_lock(&o->lock);
    if (!atomic_exchange(&o->closed, true)) {
        if (on_close)
            on_close(o);
        for (size_t i = 0; i < o->n; i++)
            if (o->waiters[i].wait)
                pc_wait_fd_cancel(o->waiters[i].task, o->waiters[i].wait);
    }
    k = prune(o);
    left = o->n > 0;
    pthread_mutex_unlock(&o->lock);
    drop_pruned(o, k);
    if (left) /* they leave soon (cancelled), unless terminated meanwhile */
        tp_obj_watch(o);
    tp_obj_unref(o);
    sweep();
}

void
tp_obj_release(tp_obj *o)
{
    bool closed;
    int k;

    pthread_mutex_lock(&o->lock);
    k = prune(o);
    closed = tp_obj_closed(o);
    pthread_mutex_unlock(&o->lock);
    drop_pruned(o, k);
    tp_obj_unref(o);
    if (closed)
        sweep(); /* o may be on the watch list, waiting for us */
}
