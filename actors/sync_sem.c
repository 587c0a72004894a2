/* actors/sync_sem.c — events and semaphores, on the waiter queues of
 * sync.c.
 *
 * Neither has an owner, so neither is robust the way locks are: what a
 * task that ends had taken from a semaphore stays taken (units are not tied
 * to who took them). What is handed to a waiter that ends before it runs is
 * not lost, though: sync.c gives a semaphore unit back through
 * pc__sem_put(), and an event needs nothing back. The flag and the count
 * are atomics only so that pc_event_is_set() and pc_sem_value() can read
 * them without the spinlock; they are written under it.
 */
#include <limits.h>
#include <stdlib.h>

#include "sync_int.h"

/* A caller that may wait `timeout` seconds here, with its state. */
static int
waiter_state(double timeout, pc__psync **ps)
{
    if (timeout != 0 && !pc__sync_can_block())
        return PC_EPERM;
    if (!(*ps = pc__sync_self(true)))
        return PC_ENOMEM;
    return PC_OK;
}

/* Queue the caller on q of o (spinlock held, released on return) and wait. */
static int
wait_in(pc__sobj *o, pc__wq *q, pc__psync *ps, int kind, double timeout)
{
    pc__waiter *r;
    int rc = pc__sync_rec(o, ps, kind, &r);

    if (rc != PC_OK) {
        pc__spin_unlock(&o->spin);
        return rc;
    }
    pc__wq_push(q, r);
    return pc__sync_block(o, ps, timeout, NULL);
}

/* Free an object whose waiters are on q. */
static void
close_obj(pc__sobj *o, pc__wq *q)
{
    pc__wakeups b;

    pc__wakeups_init(&b);
    pc__spin_lock(&o->spin);
    pc__sync_closing(o, q, NULL, &b);
    pc__spin_unlock(&o->spin);
    pc__wakeups_send(&b);
    pc__sobj_unref(o);
}

/* ---- pc_event -------------------------------------------------------------------- */

struct pc_event {
    pc__sobj o;
    atomic_bool set;
    pc__wq q;
};

pc_err
pc_event_new(pc_event **out)
{
    pc_event *e;

    if (!out)
        return PC_EINVAL;
    *out = NULL;
    if (!(e = calloc(1, sizeof *e)))
        return PC_ENOMEM;
    pc__sobj_init(&e->o);
    atomic_init(&e->set, false);
    *out = e;
    return PC_OK;
}

void
pc_event_free(pc_event **e)
{
    if (!e || !*e)
        return;
    close_obj(&(*e)->o, &(*e)->q);
    *e = NULL;
}

pc_err
pc_event_set(pc_event *e)
{
    pc__wakeups b;

    if (!e)
        return PC_EINVAL;
    pc__wakeups_init(&b);
    pc__spin_lock(&e->o.spin);
    atomic_store_explicit(&e->set, true, memory_order_release);
    pc__serve_all(&e->q, PC_OK, &b);
    pc__spin_unlock(&e->o.spin);
    pc__wakeups_send(&b);
    return PC_OK;
}

pc_err
pc_event_clear(pc_event *e)
{
    if (!e)
        return PC_EINVAL;
    pc__spin_lock(&e->o.spin);
    atomic_store_explicit(&e->set, false, memory_order_release);
    pc__spin_unlock(&e->o.spin);
    return PC_OK;
}

bool
pc_event_is_set(const pc_event *e)
{
    return e && atomic_load_explicit(&e->set, memory_order_acquire);
}

pc_err
pc_event_wait(pc_event *e, double timeout)
{
    pc__psync *ps;

    if (!e)
        return PC_EINVAL;
    if (timeout != 0 && !pc__sync_can_block())
        return PC_EPERM;
    if (atomic_load_explicit(&e->set, memory_order_acquire))
        return PC_OK;
    if (timeout == 0)
        return PC_ETIMEDOUT;
    if (!(ps = pc__sync_self(true)))
        return PC_ENOMEM;
    pc__spin_lock(&e->o.spin);
    if (atomic_load_explicit(&e->set, memory_order_relaxed)) {
        pc__spin_unlock(&e->o.spin);
        return PC_OK;
    }
    return wait_in(&e->o, &e->q, ps, PC__REC_EVENT, timeout);
}

/* ---- pc_sem -------------------------------------------------------------------- */

struct pc_sem {
    pc__sobj o;
    atomic_uint value; /* 0 while q is not empty */
    pc__wq q;
};

pc_err
pc_sem_new(pc_sem **out, unsigned value)
{
    pc_sem *s;

    if (!out)
        return PC_EINVAL;
    *out = NULL;
    if (!(s = calloc(1, sizeof *s)))
        return PC_ENOMEM;
    pc__sobj_init(&s->o);
    atomic_init(&s->value, value);
    *out = s;
    return PC_OK;
}

void
pc_sem_free(pc_sem **s)
{
    if (!s || !*s)
        return;
    close_obj(&(*s)->o, &(*s)->q);
    *s = NULL;
}

pc_err
pc_sem_acquire(pc_sem *s, double timeout)
{
    pc__psync *ps = NULL;
    unsigned v;
    int rc;

    if (!s)
        return PC_EINVAL;
    if (timeout != 0 && (rc = waiter_state(timeout, &ps)) != PC_OK)
        return rc;
    pc__spin_lock(&s->o.spin);
    v = atomic_load_explicit(&s->value, memory_order_relaxed);
    if (v > 0) {
        atomic_store_explicit(&s->value, v - 1, memory_order_relaxed);
        pc__spin_unlock(&s->o.spin);
        return PC_OK;
    }
    if (timeout == 0) {
        pc__spin_unlock(&s->o.spin);
        return PC_ETIMEDOUT;
    }
    return wait_in(&s->o, &s->q, ps, PC__REC_SEM, timeout);
}

int
pc__sem_put(pc__sobj *o, pc__handoff *wk)
{
    pc_sem *s = (pc_sem *)(void *)o;
    pc__waiter *r = pc__wq_pop(&s->q);
    unsigned v;

    if (r) {
        wk->rc = PC_OK;
        wk->rt = pc__serve(r, PC_OK);
        return 1;
    }
    v = atomic_load_explicit(&s->value, memory_order_relaxed);
    if (v == UINT_MAX)
        return PC_ETOOBIG;
    atomic_store_explicit(&s->value, v + 1, memory_order_relaxed);
    return 0;
}

pc_err
pc_sem_release(pc_sem *s)
{
    pc__handoff wk;
    int rc;

    if (!s)
        return PC_EINVAL;
    pc__spin_lock(&s->o.spin);
    rc = pc__sem_put(&s->o, &wk);
    pc__spin_unlock(&s->o.spin);
    if (rc == 1)
        pc__wake(wk.rt, wk.rc, NULL, NULL);
    return rc == PC_ETOOBIG ? PC_ETOOBIG : PC_OK;
}

unsigned
pc_sem_value(const pc_sem *s)
{
    return s ? atomic_load_explicit(&s->value, memory_order_relaxed) : 0;
}
