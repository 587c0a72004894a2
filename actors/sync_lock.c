/* actors/sync_lock.c — locks (plain and recursive) and conditions, on the
 * waiter queues of sync.c.
 *
 * The lock core (pc__mtx) is shared by pc_lock and pc_cond's lock. It is
 * robust, like a POSIX robust mutex: a task or light actor that ends holding
 * it — returns, fails, is terminated, or its exit handler keeps it — hands
 * it to the next waiter, or leaves it free, and that next owner is told once
 * with PC_EOWNERDEAD. For that each proc lists the locks it holds (its
 * pc__psync's held list, linked through the locks themselves): a lock goes
 * on the list when the proc takes it, or, when it was handed over, when the
 * proc wakes up with it; a proc killed between the hand-off and its wake-up
 * is covered by its waiter record instead (sync.c). The list's links are
 * only ever touched by the owner's own thread (a lock changes hands, under
 * its spinlock, only after its owner unlinked it), and `linked` is written
 * under the spinlock, where a pc_*_free() on another thread reads it.
 *
 * A free that finds the lock on someone else's held list can't unlink it
 * there: the memory then stays until that owner lets go of it (release, or
 * its end), which takes over the user's reference.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sync_int.h"

/* ---- the held list ---------------------------------------------------------- */

/* m was taken by the caller (spinlock held). A recursive lock taken again is
 * on the list already; a thread keeps no list. */
static void
held_link(pc__psync *ps, pc__mtx *m)
{
    if (!ps->track || m->linked)
        return;
    m->hprev = NULL;
    m->hnext = ps->held;
    if (ps->held)
        ps->held->hprev = m;
    ps->held = m;
    m->linked = true;
}

/* m leaves its owner's list (spinlock held; ps is the owner's). */
static void
held_unlink(pc__psync *ps, pc__mtx *m)
{
    if (!m->linked)
        return;
    if (m->hprev)
        m->hprev->hnext = m->hnext;
    else
        ps->held = m->hnext;
    if (m->hnext)
        m->hnext->hprev = m->hprev;
    m->hnext = m->hprev = NULL;
    m->linked = false;
}

/* ---- the lock core ------------------------------------------------------------ */

enum { BUSY = 1, SELF = 2 };

static void
mtx_init(pc__mtx *m, pc__sobj *o, bool recursive)
{
    memset(m, 0, sizeof *m);
    m->o = o;
    m->recursive = recursive;
}

/* Take m for `who` at `depth` if that needs no wait (spinlock held):
 * PC_OK or PC_EOWNERDEAD (taken), else BUSY or SELF (a non-recursive owner,
 * or a depth that can't count further). */
static int
mtx_try(pc__mtx *m, const pc__owner *who, unsigned depth)
{
    if (!m->held) {
        int rc = m->owner_died ? PC_EOWNERDEAD : PC_OK;
        m->held = true;
        m->owner_died = false;
        m->own = *who;
        m->depth = depth;
        return rc;
    }
    if (!pc__owner_eq(&m->own, who))
        return BUSY;
    if (!m->recursive || m->depth > UINT_MAX - depth)
        return SELF;
    m->depth += depth;
    return PC_OK;
}

bool
pc__mtx_pass(pc__mtx *m, bool died, pc__handoff *wk)
{
    pc__waiter *r = pc__wq_pop(&m->q);

    if (!r) {
        m->held = false;
        m->depth = 0;
        m->owner_died = died;
        return false;
    }
    m->own = r->who;
    m->depth = r->depth;
    m->owner_died = false;
    wk->rc = died ? PC_EOWNERDEAD : r->grant_rc;
    wk->rt = pc__serve(r, wk->rc);
    return true;
}

int
pc__mtx_adopt(pc__mtx *m, pc__psync *ps, int rc)
{
    if (m->o->closed)
        return PC_ECLOSED;
    held_link(ps, m);
    return rc;
}

void
pc__mtx_owner_ended(pc__psync *ps)
{
    pc__mtx *m;

    while ((m = ps->held)) {
        pc__sobj *o = m->o;
        pc__handoff wk;
        bool wake = false, closed;
        pc__spin_lock(&o->spin);
        held_unlink(ps, m);
        closed = o->closed;
        if (!closed)
            wake = pc__mtx_pass(m, true, &wk);
        pc__spin_unlock(&o->spin);
        if (wake)
            pc__wake(wk.rt, wk.rc, NULL, NULL);
        if (closed)
            pc__sobj_unref(o); /* the user's, which the list kept */
    }
}

/* Wait again, without a timeout, on a record that is still queued (spinlock
 * held, and held again on return). The old rt was published, so it is
 * dropped, and a fresh one (new token) replaces it under the spinlock. */
static void
rewait(pc__sobj *o, pc__waiter *r)
{
    pc__reply_to rt;

    pc__wait_drop(&r->rt);
    if (pc__wait_prepare(&r->rt) != PC_OK) {
        /* Only a foreign thread's allocation can fail: poll for the
         * hand-off instead (the zeroed rt makes the waker's wake a no-op). */
        memset(&r->rt, 0, sizeof r->rt);
        while (!r->done) {
            struct timespec ts = {0, 1000000};
            pc__spin_unlock(&o->spin);
            nanosleep(&ts, NULL);
            pc__spin_lock(&o->spin);
        }
        return;
    }
    rt = r->rt;
    pc__spin_unlock(&o->spin);
    pc__wait_block(&rt, -1, NULL);
    pc__spin_lock(&o->spin);
}

void
pc__mtx_cond_timeout(pc__sobj *o, pc__psync *ps)
{
    pc__waiter *r = &ps->rec;
    pc__mtx *m = r->m;

    while (!r->done) {
        if (r->q != &m->q) {
            /* not notified: back to the lock, or get it now */
            int rc;
            pc__wq_remove(r);
            r->grant_rc = PC_ETIMEDOUT;
            rc = mtx_try(m, &r->who, r->depth);
            if (rc <= 0) {
                pc__wait_drop(&r->rt);
                r->done = true;
                r->rc = rc == PC_EOWNERDEAD ? rc : PC_ETIMEDOUT;
                break;
            }
            pc__wq_push(&m->q, r);
        }
        rewait(o, r); /* queued for the lock: wait for it */
    }
}

/* The caller and its state, when it may take a lock with this timeout. */
static int
caller(double timeout, pc__owner *me, pc__psync **ps)
{
    if (timeout != 0 && !pc__sync_can_block())
        return PC_EPERM;
    if (!(*ps = pc__sync_self(true)))
        return PC_ENOMEM;
    *me = pc__sync_owner();
    return PC_OK;
}

static pc_err
mtx_acquire(pc__mtx *m, double timeout)
{
    pc__sobj *o = m->o;
    pc__owner me;
    pc__psync *ps;
    pc__waiter *r;
    int rc;

    if ((rc = caller(timeout, &me, &ps)) != PC_OK)
        return rc;
    pc__spin_lock(&o->spin);
    if ((rc = mtx_try(m, &me, 1)) <= 0) {
        held_link(ps, m);
        pc__spin_unlock(&o->spin);
        return rc;
    }
    if (timeout == 0 || rc == SELF) {
        pc__spin_unlock(&o->spin);
        return timeout == 0 ? PC_ETIMEDOUT : PC_ESTATE;
    }
    if ((rc = pc__sync_rec(o, ps, PC__REC_LOCK, &r)) != PC_OK) {
        pc__spin_unlock(&o->spin);
        return rc;
    }
    r->m = m;
    r->who = me;
    r->depth = 1;
    pc__wq_push(&m->q, r);
    return pc__sync_block(o, ps, timeout, NULL);
}

/* Whether the caller holds m (spinlock held). */
static bool
mine(const pc__mtx *m, const pc__owner *me)
{
    return m->held && pc__owner_eq(&m->own, me);
}

static pc_err
mtx_release(pc__mtx *m)
{
    pc__sobj *o = m->o;
    pc__owner me = pc__sync_owner();
    pc__psync *ps = pc__sync_self(false);
    pc__handoff wk;
    bool wake;

    pc__spin_lock(&o->spin);
    if (!mine(m, &me)) {
        pc__spin_unlock(&o->spin);
        return PC_EPERM;
    }
    if (--m->depth > 0) {
        pc__spin_unlock(&o->spin);
        return PC_OK;
    }
    if (ps) /* NULL: a proc that never took a lock itself */
        held_unlink(ps, m);
    wake = pc__mtx_pass(m, false, &wk);
    pc__spin_unlock(&o->spin);
    if (wake)
        pc__wake(wk.rt, wk.rc, NULL, NULL);
    return PC_OK;
}

/* The user frees the object of lock m (and q2, a condition's waiters). */
static void
mtx_close(pc__mtx *m, pc__wq *q2)
{
    pc__sobj *o = m->o;
    pc__owner me = pc__sync_owner();
    pc__psync *ps = pc__sync_self(false);
    pc__wakeups b;
    bool keep = false;

    pc__wakeups_init(&b);
    pc__spin_lock(&o->spin);
    pc__sync_closing(o, &m->q, q2, &b);
    if (m->linked) {
        if (ps && mine(m, &me))
            held_unlink(ps, m); /* the owner frees it: off its own list */
        else
            keep = true; /* until its owner, elsewhere, lets go of it */
    }
    pc__spin_unlock(&o->spin);
    pc__wakeups_send(&b);
    if (!keep)
        pc__sobj_unref(o);
}

/* ---- pc_lock --------------------------------------------------------------------- */

struct pc_lock {
    pc__sobj o;
    pc__mtx m;
};

pc_err
pc_lock_new(pc_lock **out, bool recursive)
{
    pc_lock *l;

    if (!out)
        return PC_EINVAL;
    *out = NULL;
    if (!(l = calloc(1, sizeof *l)))
        return PC_ENOMEM;
    pc__sobj_init(&l->o);
    mtx_init(&l->m, &l->o, recursive);
    *out = l;
    return PC_OK;
}

void
pc_lock_free(pc_lock **l)
{
    if (!l || !*l)
        return;
    mtx_close(&(*l)->m, NULL);
    *l = NULL;
}

pc_err
pc_lock_acquire(pc_lock *l, double timeout)
{
    if (!l)
        return PC_EINVAL;
    return mtx_acquire(&l->m, timeout);
}

pc_err
pc_lock_release(pc_lock *l)
{
    if (!l)
        return PC_EINVAL;
    return mtx_release(&l->m);
}

/* ---- pc_cond --------------------------------------------------------------------- */

struct pc_cond {
    pc__sobj o;
    pc__mtx m;
    pc__wq waiting; /* in pc_cond_wait, not yet notified */
};

pc_err
pc_cond_new(pc_cond **out)
{
    pc_cond *c;

    if (!out)
        return PC_EINVAL;
    *out = NULL;
    if (!(c = calloc(1, sizeof *c)))
        return PC_ENOMEM;
    pc__sobj_init(&c->o);
    mtx_init(&c->m, &c->o, true);
    *out = c;
    return PC_OK;
}

void
pc_cond_free(pc_cond **c)
{
    if (!c || !*c)
        return;
    mtx_close(&(*c)->m, &(*c)->waiting);
    *c = NULL;
}

pc_err
pc_cond_acquire(pc_cond *c, double timeout)
{
    if (!c)
        return PC_EINVAL;
    return mtx_acquire(&c->m, timeout);
}

pc_err
pc_cond_release(pc_cond *c)
{
    if (!c)
        return PC_EINVAL;
    return mtx_release(&c->m);
}

pc_err
pc_cond_wait(pc_cond *c, double timeout)
{
    pc__owner me;
    pc__psync *ps;
    pc__handoff wk;
    pc__waiter *r;
    int rc;
    bool wake;

    if (!c)
        return PC_EINVAL;
    if ((rc = caller(timeout, &me, &ps)) != PC_OK)
        return rc;
    pc__spin_lock(&c->o.spin);
    if (!mine(&c->m, &me) || timeout == 0) {
        /* 0: no notification can come without a wait, and the lock stays */
        pc__spin_unlock(&c->o.spin);
        return timeout == 0 && mine(&c->m, &me) ? PC_ETIMEDOUT : PC_EPERM;
    }
    if ((rc = pc__sync_rec(&c->o, ps, PC__REC_COND, &r)) != PC_OK) {
        pc__spin_unlock(&c->o.spin);
        return rc;
    }
    r->m = &c->m;
    r->who = me;
    r->depth = c->m.depth;
    held_unlink(ps, &c->m);
    wake = pc__mtx_pass(&c->m, false, &wk);
    pc__wq_push(&c->waiting, r);
    return pc__sync_block(&c->o, ps, timeout, wake ? &wk : NULL);
}

pc_err
pc_cond_notify(pc_cond *c, unsigned n)
{
    pc__owner me = pc__sync_owner();
    pc__waiter *r;

    if (!c)
        return PC_EINVAL;
    pc__spin_lock(&c->o.spin);
    if (!mine(&c->m, &me)) {
        pc__spin_unlock(&c->o.spin);
        return PC_EPERM;
    }
    /* The caller holds the lock, so the notified just queue for it. */
    while (n > 0 && (r = pc__wq_pop(&c->waiting))) {
        pc__wq_push(&c->m.q, r);
        n--;
    }
    pc__spin_unlock(&c->o.spin);
    return PC_OK;
}

pc_err
pc_cond_notify_all(pc_cond *c)
{
    return pc_cond_notify(c, UINT_MAX);
}
