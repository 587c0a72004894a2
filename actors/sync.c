/* actors/sync.c — the waiter queues under locks, conditions, events and
 * semaphores (those are in sync_lock.c and sync_sem.c), and what a task's
 * end does to them.
 *
 * Every object is a small heap struct guarded by its own spinlock, held only
 * for a few loads and stores and never while anybody blocks, so tasks of
 * different workers and foreign threads can share it. A caller that must
 * wait puts its waiter record on the object's FIFO queue and blocks with
 * the runtime's one blocking primitive (pc__wait_prepare / pc__wait_block /
 * pc__handoff, internal.h). The record is never on the caller's stack (small
 * tasks' stacks move): a task waits for one thing at a time, so its one
 * record lives in its pc__psync, and a foreign thread's in thread-local
 * storage. Whoever gives the object away — a release, notify, set, post or
 * free — does all the work for the waiter under the spinlock: it unlinks the
 * record, makes the waiter the owner (or takes the unit for it), marks the
 * record done with the result, and only then, after unlocking, wakes it. So
 * a lock is never free while someone waits for it (no barging, no
 * thundering herd), and a woken waiter only has to note what it got.
 *
 * A waiter's timer may fire while a hand-off is on its way. The record
 * settles it: the timed-out waiter takes the spinlock, and a record already
 * marked done means it was served (it keeps what it got); otherwise it
 * unlinks itself and, as nobody else will ever see its rt, drops it
 * (pc__wait_drop). A condition waiter that times out still has to get the
 * lock back, so it moves itself to the lock's queue and blocks again
 * without a timeout.
 *
 * A task can also end in a wait (pc_task_terminate), or after it was served
 * but before it ran, and it can end holding locks. Its pc__proc_finish()
 * calls pc__sync_proc_ended(), on its own worker: under the spinlock of the
 * object it waited in, a record still queued is unlinked, and what a served
 * one was given (a lock, a unit) is handed on as if the task had been
 * skipped; then every lock on its held list goes to the next waiter (or is
 * freed) marked as a dead owner's, which the next owner is told once
 * (PC_EOWNERDEAD). Whichever of the hook and a waker takes the spinlock
 * first wins, so a hand-off racing the end — on another worker, with the
 * wake-up still in an inbox — is never lost. For that the waiter holds a
 * reference on the object for the whole wait (a free meanwhile leaves the
 * memory to the last reference). The held list is only ever touched by the
 * owner's thread (links, and the owner's own end); see sync_lock.c.
 */
#include <stdlib.h>
#include <string.h>

#include "sync_int.h"

/* ---- who is calling ---------------------------------------------------------- */

/* A foreign thread's (or a worker's own callbacks') state: untracked. */
static _Thread_local pc__psync thread_ps;

pc__psync *
pc__sync_self(bool make)
{
    pc__worker *w = pc__tls_worker;
    pc__proc *p = w ? w->cur : NULL;

    if (!p)
        return &thread_ps;
    pc__proc_x *x = make ? pc__proc_x_get(p) : p->x;

    if (!x)
        return NULL;
    if (!x->psync && make && (x->psync = calloc(1, sizeof *x->psync)))
        x->psync->track = true;
    return x->psync;
}

pc__owner
pc__sync_owner(void)
{
    pc__worker *w = pc__tls_worker;
    pc__owner o;

    if (w && w->cur) {
        o.id = ((uint64_t)w->cur->gen << 32) | w->cur->idx; /* pc_self() */
        memset(&o.thread, 0, sizeof o.thread);
    } else {
        o.id = 0;
        o.thread = pthread_self();
    }
    return o;
}

/* ---- objects ------------------------------------------------------------------ */

void
pc__sobj_init(pc__sobj *o)
{
    atomic_init(&o->spin, false);
    atomic_init(&o->refs, 1);
    o->closed = false;
}

void
pc__sobj_unref(pc__sobj *o)
{
    if (atomic_fetch_sub_explicit(&o->refs, 1, memory_order_acq_rel) == 1)
        free(o);
}

/* ---- wake-up batches ------------------------------------------------------------ */

void
pc__wakeups_init(pc__wakeups *b)
{
    b->v = b->local;
    b->n = 0;
    b->cap = sizeof b->local / sizeof b->local[0];
    b->direct = false;
}

void
pc__wakeups_add(pc__wakeups *b, pc__reply_to rt, int rc)
{
    if (b->n == b->cap && !b->direct) {
        size_t cap = b->cap * 2;
        pc__handoff *v = b->v == b->local ? malloc(cap * sizeof *v)
                                          : realloc(b->v, cap * sizeof *v);
        if (!v) {
            b->direct = true; /* pc__handoff never takes our spinlock */
        } else {
            if (b->v == b->local)
                memcpy(v, b->local, sizeof b->local);
            b->v = v;
            b->cap = cap;
        }
    }
    if (b->direct && b->n == b->cap) {
        pc__wake(rt, rc, NULL, NULL);
        return;
    }
    b->v[b->n].rt = rt;
    b->v[b->n].rc = rc;
    b->n++;
}

void
pc__wakeups_send(pc__wakeups *b)
{
    for (size_t i = 0; i < b->n; i++)
        pc__wake(b->v[i].rt, b->v[i].rc, NULL, NULL);
    if (b->v != b->local)
        free(b->v);
}

void
pc__serve_all(pc__wq *q, int rc, pc__wakeups *b)
{
    pc__waiter *r;

    while ((r = pc__wq_pop(q)))
        pc__wakeups_add(b, pc__serve(r, rc), rc);
}

void
pc__sync_closing(pc__sobj *o, pc__wq *q1, pc__wq *q2, pc__wakeups *b)
{
    o->closed = true;
    pc__serve_all(q1, PC_ECLOSED, b);
    if (q2)
        pc__serve_all(q2, PC_ECLOSED, b);
}

/* ---- blocking ------------------------------------------------------------------ */

int
pc__sync_rec(pc__sobj *o, pc__psync *ps, int kind, pc__waiter **out)
{
    pc__waiter *r = &ps->rec;
    int rc;

    *out = NULL;
    if ((rc = pc__wait_prepare(&r->rt)) != PC_OK)
        return rc;
    r->next = r->prev = NULL;
    r->q = NULL;
    r->m = NULL;
    r->depth = 0;
    r->grant_rc = r->rc = PC_OK;
    r->kind = (uint8_t)kind;
    r->done = false;
    ps->wobj = o;
    atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
    *out = r;
    return PC_OK;
}

int
pc__sync_block(pc__sobj *o, pc__psync *ps, double timeout,
               const pc__handoff *pass)
{
    pc__waiter *r = &ps->rec;
    pc__reply_to rt = r->rt;
    bool locked = false;
    int rc;

    pc__spin_unlock(&o->spin);
    if (pass)
        pc__wake(pass->rt, pass->rc, NULL, NULL);
    rc = pc__wait_block(&rt, timeout, NULL);
    if (rc == PC_ETIMEDOUT) {
        pc__spin_lock(&o->spin);
        locked = true;
        if (r->done) {
            /* served as the timer fired: it keeps what it got */
        } else if (r->kind == PC__REC_COND) {
            pc__mtx_cond_timeout(o, ps);
        } else {
            pc__wq_remove(r);
            pc__wait_drop(&r->rt);
            r->done = true;
            r->rc = PC_ETIMEDOUT;
        }
    }
    /* else the waker marked r done with rc before the wake-up */
    rc = r->rc;
    if (r->m && rc != PC_ECLOSED) { /* it got a lock: note it as held */
        if (!locked)
            pc__spin_lock(&o->spin);
        locked = true;
        rc = pc__mtx_adopt(r->m, ps, rc);
    }
    if (locked)
        pc__spin_unlock(&o->spin);
    ps->wobj = NULL;
    pc__sobj_unref(o);
    return rc;
}

/* ---- a task's end ------------------------------------------------------------- */

/* The proc ended in a wait, or served but before it ran again: take its
 * record out, and hand on what it was given, as if it had been skipped. */
static void
abandon_wait(pc__psync *ps)
{
    pc__sobj *o = ps->wobj;
    pc__waiter *r = &ps->rec;
    pc__handoff wk;
    bool wake = false;

    pc__spin_lock(&o->spin);
    if (!r->done) {
        pc__wq_remove(r);
        pc__wait_drop(&r->rt);
    } else if (o->closed || r->rc == PC_ECLOSED) {
        /* nothing to give back */
    } else if (r->m) {
        /* It never ran with the lock (unless its exit handler took it up,
         * then the held list has handed it on already); one a dead owner
         * left stays marked so. */
        if (r->m->held && pc__owner_eq(&r->m->own, &r->who))
            wake = pc__mtx_pass(r->m, r->rc == PC_EOWNERDEAD, &wk);
    } else if (r->kind == PC__REC_SEM && r->rc == PC_OK) {
        wake = pc__sem_put(o, &wk) == 1;
    }
    pc__spin_unlock(&o->spin);
    if (wake)
        pc__wake(wk.rt, wk.rc, NULL, NULL);
    ps->wobj = NULL;
    pc__sobj_unref(o);
}

void
pc__sync_proc_ended(pc__worker *w, pc__proc *p)
{
    pc__psync *ps = p->x ? p->x->psync : NULL;

    (void)w;
    if (!ps)
        return;
    p->x->psync = NULL;
    pc__mtx_owner_ended(ps);
    if (ps->wobj)
        abandon_wait(ps);
    free(ps);
}
