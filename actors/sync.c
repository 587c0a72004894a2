/* actors/sync.c — locks, conditions, events and semaphores for tasks.
 *
 * Every object is a small heap struct guarded by its own spinlock, held only
 * for a few loads and stores and never while anybody blocks, so tasks of
 * different workers and foreign threads can share it. A caller that must
 * wait puts a waiter record (heap, never on its stack: small tasks' stacks
 * move) on the object's FIFO queue and blocks with the runtime's one
 * blocking primitive (pc__wait_prepare / pc__wait_block / pc__wake,
 * internal.h). Whoever gives the object away — a release, notify, set, post
 * or free — does all the work for the waiter under the spinlock: it unlinks
 * the record, makes the waiter the owner (or takes the unit for it), marks
 * the record done with the result, and only then, after unlocking, wakes
 * it. So a woken waiter has nothing left to do and returns without touching
 * the object again, and a lock is never free while someone waits for it
 * (no barging, no thundering herd).
 *
 * The one race is a timeout: the waiter's timer may fire while a hand-off
 * is on its way. The record settles it: the timed-out waiter takes the
 * spinlock, and a record already marked done means it was served (it keeps
 * what it got); otherwise it unlinks itself, and as nobody else will ever
 * see its rt, drops it (pc__wait_drop). A condition waiter that times out
 * still has to get the lock back, so it moves itself to the lock's queue
 * and blocks again without a timeout.
 *
 * Only a waiter with a timeout may look at its record (and the object)
 * again after its wake, so only such a waiter owns its record and holds a
 * reference on the object; pc_*_free() wakes the waiters with PC_ECLOSED
 * and the memory goes with the last reference. A waiter without a timeout
 * never looks back: whoever serves it recycles its record as the object's
 * one spare, so a steady hand-off between two tasks costs two spinlock
 * round trips and a switch, and no malloc, reference count or other atomic.
 */
#include "picos/sync.h"

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* ---- spinlock --------------------------------------------------------------- */

/* Test-and-test-and-set; yields the CPU after a short spin, since a foreign
 * thread holding it may have been preempted. */
static inline void
spin_lock(atomic_bool *s)
{
    unsigned n = 0;

    while (atomic_exchange_explicit(s, true, memory_order_acquire)) {
        while (atomic_load_explicit(s, memory_order_relaxed)) {
            if (++n < 100)
                pc__cpu_relax();
            else
                sched_yield();
        }
    }
}

static inline void
spin_unlock(atomic_bool *s)
{
    atomic_store_explicit(s, false, memory_order_release);
}

/* ---- owners, waiters, queues ---------------------------------------------- */

/* A task or light actor (the id of its ref: the node is this one), or else
 * a thread (id 0). */
typedef struct owner {
    uint64_t id;
    pthread_t thread;
} owner;

static inline owner
self_owner(void)
{
    pc__worker *w = pc__tls_worker;
    owner o;

    if (w && w->cur) {
        o.id = ((uint64_t)w->cur->gen << 32) | w->cur->idx; /* pc_self() */
        memset(&o.thread, 0, sizeof o.thread);
    } else {
        o.id = 0;
        o.thread = pthread_self();
    }
    return o;
}

static inline bool
owner_eq(const owner *a, const owner *b)
{
    return a->id == b->id &&
           (a->id != 0 || pthread_equal(a->thread, b->thread));
}

/* True when the caller may block: a task, or a thread that isn't a worker
 * (a light-actor handler or a worker's callback must not). */
static bool
can_block(void)
{
    pc__worker *w = pc__tls_worker;

    return !w || (w->cur && w->cur->kind == PC__TASK);
}

struct mtx;

typedef struct waiter {
    struct waiter *next, *prev;
    struct wq *q;    /* the queue it is on; NULL once unlinked */
    struct mtx *m;   /* condition waiters: the lock to get back */
    pc__reply_to rt; /* the blocked task or thread */
    owner who;       /* lock waiters: the owner-to-be */
    unsigned depth;  /* ... at this depth */
    int grant_rc;    /* the result once served */
    int rc;          /* valid when done */
    bool done;       /* served: unlinked, rc set, wake sent or on its way */
    bool timed;      /* the waiter owns the record and a reference */
} waiter;

typedef struct wq {
    waiter *head, *tail;
} wq;

static void
wq_push(wq *q, waiter *r)
{
    r->next = NULL;
    r->prev = q->tail;
    if (q->tail)
        q->tail->next = r;
    else
        q->head = r;
    q->tail = r;
    r->q = q;
}

static void
wq_remove(waiter *r)
{
    wq *q = r->q;

    if (r->prev)
        r->prev->next = r->next;
    else
        q->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        q->tail = r->prev;
    r->next = r->prev = NULL;
    r->q = NULL;
}

/* A waiting task that was terminated: it will never run again, so nobody
 * would free its record or answer for what it is handed. (pc_alive(),
 * inlined: this is on every hand-off.) */
static bool
waiter_dead(const waiter *r)
{
    uint32_t idx = (uint32_t)r->rt.task.id;
    pc__slot *s;

    if (r->rt.sync)
        return false;
    if (!pc__the_node || r->rt.task.node != pc__the_node->id ||
        !(s = pc__slot_get(idx)))
        return true;
    return atomic_load_explicit(&s->gen, memory_order_acquire) !=
               (uint32_t)(r->rt.task.id >> 32) ||
           atomic_load_explicit(&s->zombie, memory_order_acquire);
}

/* ---- the common object header ----------------------------------------------- */

typedef struct sobj {
    atomic_bool spin;
    atomic_int refs; /* the user's + one per timed waiter */
    waiter *spare;   /* under the spinlock: a record for the next wait */
} sobj;

static void
sobj_init(sobj *o)
{
    atomic_init(&o->spin, false);
    atomic_init(&o->refs, 1);
    o->spare = NULL;
}

static void
sobj_unref(sobj *o)
{
    if (atomic_fetch_sub_explicit(&o->refs, 1, memory_order_acq_rel) == 1) {
        free(o->spare);
        free(o);
    }
}

/* A blank record (spinlock held). */
static waiter *
rec_get(sobj *o)
{
    waiter *r = o->spare;

    if (r)
        o->spare = NULL;
    else if (!(r = malloc(sizeof *r)))
        return NULL;
    r->next = r->prev = NULL;
    r->q = NULL;
    r->m = NULL;
    r->depth = 0;
    r->grant_rc = r->rc = PC_OK;
    r->done = r->timed = false;
    return r;
}

/* Keep r as the spare, or free it (spinlock held). */
static void
rec_put(sobj *o, waiter *r)
{
    if (!o->spare)
        o->spare = r;
    else
        free(r);
}

/* Drop a terminated waiter found on a queue (spinlock held; the caller is
 * inside a call on the object, so the user's reference keeps it alive). */
static void
reap(sobj *o, waiter *r)
{
    wq_remove(r);
    if (r->timed)
        atomic_fetch_sub_explicit(&o->refs, 1, memory_order_relaxed);
    rec_put(o, r);
}

/* The first waiter of q that is still alive, unlinked; dead ones before it
 * are reaped. NULL when none. */
static waiter *
pop_live(sobj *o, wq *q)
{
    waiter *r;

    while ((r = q->head)) {
        if (!waiter_dead(r)) {
            wq_remove(r);
            return r;
        }
        reap(o, r);
    }
    return NULL;
}

/* Mark an unlinked waiter served with rc (spinlock held); returns the rt to
 * wake after the spinlock is released. A waiter without a timeout won't
 * look at r again: it goes back to the object at once. */
static pc__reply_to
serve(sobj *o, waiter *r, int rc)
{
    pc__reply_to rt = r->rt;

    r->done = true;
    r->rc = rc;
    if (!r->timed)
        rec_put(o, r);
    return rt;
}

/* Wake-ups collected under the spinlock, sent after it. */
typedef struct wake {
    pc__reply_to rt;
    int rc;
} wake;

typedef struct wakes {
    wake local[16];
    wake *v;
    size_t n, cap;
    bool direct; /* out of memory: wake at once, under the spinlock */
} wakes;

static void
wakes_init(wakes *b)
{
    b->v = b->local;
    b->n = 0;
    b->cap = sizeof b->local / sizeof b->local[0];
    b->direct = false;
}

static void
wakes_add(wakes *b, pc__reply_to rt, int rc)
{
    if (b->n == b->cap && !b->direct) {
        size_t cap = b->cap * 2;
        wake *v = b->v == b->local ? malloc(cap * sizeof *v)
                                   : realloc(b->v, cap * sizeof *v);
        if (!v) {
            b->direct = true; /* pc__wake never takes our spinlock */
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

static void
wakes_send(wakes *b)
{
    for (size_t i = 0; i < b->n; i++)
        pc__wake(b->v[i].rt, b->v[i].rc, NULL, NULL);
    if (b->v != b->local)
        free(b->v);
}

/* Serve every waiter of q with rc (spinlock held). */
static void
serve_all(sobj *o, wq *q, int rc, wakes *b)
{
    waiter *r;

    while ((r = pop_live(o, q)))
        wakes_add(b, serve(o, r, rc), rc);
}

/* ---- the lock core (pc_lock, and pc_cond's lock) ------------------------- */

typedef struct mtx {
    bool recursive;
    bool held; /* false implies an empty queue: release hands it on */
    owner own;
    unsigned depth;
    wq q;
} mtx;

enum { TAKEN, BUSY, SELF };

/* Take m for `who` at `depth` if that needs no wait (spinlock held). */
static int
mtx_try(mtx *m, const owner *who, unsigned depth)
{
    if (!m->held) {
        m->held = true;
        m->own = *who;
        m->depth = depth;
        return TAKEN;
    }
    if (!owner_eq(&m->own, who))
        return BUSY;
    if (!m->recursive)
        return SELF;
    if (m->depth > UINT_MAX - depth)
        return SELF; /* can't count further */
    m->depth += depth;
    return TAKEN;
}

/* Give m up entirely (spinlock held): to the first live waiter, whose rt
 * goes to *rt (returns true), or free it. */
static bool
mtx_pass(sobj *o, mtx *m, pc__reply_to *rt, int *rc)
{
    waiter *r = pop_live(o, &m->q);

    if (!r) {
        m->held = false;
        m->depth = 0;
        return false;
    }
    m->own = r->who;
    m->depth = r->depth;
    *rc = r->grant_rc;
    *rt = serve(o, r, r->grant_rc);
    return true;
}

/* ---- blocking ------------------------------------------------------------ */

/* A fresh record for the caller with a prepared rt (spinlock held). */
static int
rec_new(sobj *o, double timeout, waiter **out)
{
    waiter *r = rec_get(o);
    int rc;

    *out = NULL;
    if (!r)
        return PC_ENOMEM;
    if ((rc = pc__wait_prepare(&r->rt)) != PC_OK) {
        rec_put(o, r);
        return rc;
    }
    r->timed = timeout >= 0;
    *out = r;
    return PC_OK;
}

/* Wait again, without a timeout, on a record that is still queued (spinlock
 * held, and held again on return). The old rt was published, so it is
 * dropped, and a fresh one (new token) replaces it under the spinlock. */
static void
rewait(sobj *o, waiter *r)
{
    pc__wait_drop(&r->rt);
    if (pc__wait_prepare(&r->rt) != PC_OK) {
        /* Only a foreign thread's allocation can fail: poll for the
         * hand-off instead (the zeroed rt makes the waker's wake a no-op). */
        memset(&r->rt, 0, sizeof r->rt);
        while (!r->done) {
            struct timespec ts = {0, 1000000};
            spin_unlock(&o->spin);
            nanosleep(&ts, NULL);
            spin_lock(&o->spin);
        }
        return;
    }
    spin_unlock(&o->spin);
    pc__wait_block(&r->rt, -1, NULL);
    spin_lock(&o->spin);
}

/* Block on record r, which the caller linked with the spinlock held;
 * releases the spinlock, then sends `pass` (a lock the caller gave away,
 * when not NULL). Returns the result; a timed waiter then gives its record
 * and reference back. */
static int
block(sobj *o, waiter *r, double timeout, const wake *pass)
{
    pc__reply_to rt = r->rt; /* r is someone else's once served, if untimed */
    int rc;

    if (r->timed)
        atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
    spin_unlock(&o->spin);
    if (pass)
        pc__wake(pass->rt, pass->rc, NULL, NULL);
    rc = pc__wait_block(&rt, timeout, NULL);
    if (timeout < 0)
        return rc; /* served: nothing left to do */
    if (rc == PC_ETIMEDOUT) {
        spin_lock(&o->spin);
        while (!r->done) {
            if (r->m && r->q != &r->m->q) {
                /* a condition waiter not notified: back to its lock */
                wq_remove(r);
                r->grant_rc = PC_ETIMEDOUT;
                if (mtx_try(r->m, &r->who, r->depth) == TAKEN) {
                    pc__wait_drop(&r->rt);
                    r->done = true;
                    r->rc = PC_ETIMEDOUT;
                    break;
                }
                wq_push(&r->m->q, r);
            } else if (!r->m) {
                wq_remove(r);
                pc__wait_drop(&r->rt);
                r->done = true;
                r->rc = PC_ETIMEDOUT;
                break;
            }
            rewait(o, r); /* queued for the lock: wait for it */
        }
        rc = r->rc;
        spin_unlock(&o->spin);
    }
    /* else the waker marked r done with rc and won't touch it again */
    free(r);
    sobj_unref(o);
    return rc;
}

/* Queue the caller on q and block (spinlock held; released on return). */
static int
enqueue_and_block(sobj *o, wq *q, waiter *r, double timeout)
{
    wq_push(q, r);
    return block(o, r, timeout, NULL);
}

/* Wake every waiter of the given queues with PC_ECLOSED and drop the user's
 * reference. */
static void
close_obj(sobj *o, wq *q1, wq *q2)
{
    wakes b;

    wakes_init(&b);
    spin_lock(&o->spin);
    serve_all(o, q1, PC_ECLOSED, &b);
    if (q2)
        serve_all(o, q2, PC_ECLOSED, &b);
    spin_unlock(&o->spin);
    wakes_send(&b);
    sobj_unref(o);
}

/* Acquire m (the lock of object o) for the caller. */
static pc_err
mtx_acquire(sobj *o, mtx *m, double timeout)
{
    owner me = self_owner();
    waiter *r;
    int rc;

    if (timeout != 0 && !can_block())
        return PC_EPERM;
    spin_lock(&o->spin);
    switch (mtx_try(m, &me, 1)) {
    case TAKEN:
        spin_unlock(&o->spin);
        return PC_OK;
    case SELF:
        spin_unlock(&o->spin);
        return timeout == 0 ? PC_ETIMEDOUT : PC_ESTATE;
    default:
        break;
    }
    if (timeout == 0) {
        spin_unlock(&o->spin);
        return PC_ETIMEDOUT;
    }
    if ((rc = rec_new(o, timeout, &r)) != PC_OK) {
        spin_unlock(&o->spin);
        return rc;
    }
    r->who = me;
    r->depth = 1;
    r->grant_rc = PC_OK;
    return enqueue_and_block(o, &m->q, r, timeout);
}

static pc_err
mtx_release(sobj *o, mtx *m)
{
    owner me = self_owner();
    wake pass;
    bool passed;

    spin_lock(&o->spin);
    if (!m->held || !owner_eq(&m->own, &me)) {
        spin_unlock(&o->spin);
        return PC_EPERM;
    }
    if (--m->depth > 0) {
        spin_unlock(&o->spin);
        return PC_OK;
    }
    passed = mtx_pass(o, m, &pass.rt, &pass.rc);
    spin_unlock(&o->spin);
    if (passed)
        pc__wake(pass.rt, pass.rc, NULL, NULL);
    return PC_OK;
}

/* ---- pc_lock --------------------------------------------------------------- */

struct pc_lock {
    sobj o;
    mtx m;
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
    sobj_init(&l->o);
    l->m.recursive = recursive;
    *out = l;
    return PC_OK;
}

void
pc_lock_free(pc_lock **l)
{
    if (!l || !*l)
        return;
    close_obj(&(*l)->o, &(*l)->m.q, NULL);
    *l = NULL;
}

pc_err
pc_lock_acquire(pc_lock *l, double timeout)
{
    if (!l)
        return PC_EINVAL;
    return mtx_acquire(&l->o, &l->m, timeout);
}

pc_err
pc_lock_release(pc_lock *l)
{
    if (!l)
        return PC_EINVAL;
    return mtx_release(&l->o, &l->m);
}

/* ---- pc_cond --------------------------------------------------------------- */

struct pc_cond {
    sobj o;
    mtx m;
    wq waiting; /* in pc_cond_wait, not yet notified */
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
    sobj_init(&c->o);
    c->m.recursive = true;
    *out = c;
    return PC_OK;
}

void
pc_cond_free(pc_cond **c)
{
    if (!c || !*c)
        return;
    close_obj(&(*c)->o, &(*c)->waiting, &(*c)->m.q);
    *c = NULL;
}

pc_err
pc_cond_acquire(pc_cond *c, double timeout)
{
    if (!c)
        return PC_EINVAL;
    return mtx_acquire(&c->o, &c->m, timeout);
}

pc_err
pc_cond_release(pc_cond *c)
{
    if (!c)
        return PC_EINVAL;
    return mtx_release(&c->o, &c->m);
}

pc_err
pc_cond_wait(pc_cond *c, double timeout)
{
    owner me = self_owner();
    wake pass;
    waiter *r;
    int rc;
    bool passed;

    if (!c)
        return PC_EINVAL;
    if (!can_block())
        return PC_EPERM;
    spin_lock(&c->o.spin);
    if (!c->m.held || !owner_eq(&c->m.own, &me)) {
        spin_unlock(&c->o.spin);
        return PC_EPERM;
    }
    if ((rc = rec_new(&c->o, timeout, &r)) != PC_OK) {
        spin_unlock(&c->o.spin);
        return rc;
    }
    r->who = me;
    r->depth = c->m.depth;
    r->m = &c->m;
    r->grant_rc = PC_OK;
    passed = mtx_pass(&c->o, &c->m, &pass.rt, &pass.rc);
    wq_push(&c->waiting, r);
    return block(&c->o, r, timeout, passed ? &pass : NULL);
}

pc_err
pc_cond_notify(pc_cond *c, unsigned n)
{
    owner me = self_owner();
    waiter *r;

    if (!c)
        return PC_EINVAL;
    spin_lock(&c->o.spin);
    if (!c->m.held || !owner_eq(&c->m.own, &me)) {
        spin_unlock(&c->o.spin);
        return PC_EPERM;
    }
    /* The caller holds the lock, so the notified just queue for it. */
    while (n > 0 && (r = pop_live(&c->o, &c->waiting))) {
        wq_push(&c->m.q, r);
        n--;
    }
    spin_unlock(&c->o.spin);
    return PC_OK;
}

pc_err
pc_cond_notify_all(pc_cond *c)
{
    return pc_cond_notify(c, UINT_MAX);
}

/* ---- pc_event -------------------------------------------------------------- */

struct pc_event {
    sobj o;
    atomic_bool set; /* written under the spinlock */
    wq q;
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
    sobj_init(&e->o);
    atomic_init(&e->set, false);
    *out = e;
    return PC_OK;
}

void
pc_event_free(pc_event **e)
{
    if (!e || !*e)
        return;
    close_obj(&(*e)->o, &(*e)->q, NULL);
    *e = NULL;
}

pc_err
pc_event_set(pc_event *e)
{
    wakes b;

    if (!e)
        return PC_EINVAL;
    wakes_init(&b);
    spin_lock(&e->o.spin);
    atomic_store_explicit(&e->set, true, memory_order_release);
    serve_all(&e->o, &e->q, PC_OK, &b);
    spin_unlock(&e->o.spin);
    wakes_send(&b);
    return PC_OK;
}

pc_err
pc_event_clear(pc_event *e)
{
    if (!e)
        return PC_EINVAL;
    spin_lock(&e->o.spin);
    atomic_store_explicit(&e->set, false, memory_order_release);
    spin_unlock(&e->o.spin);
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
    waiter *r;
    int rc;

    if (!e)
        return PC_EINVAL;
    if (timeout != 0 && !can_block())
        return PC_EPERM;
    if (atomic_load_explicit(&e->set, memory_order_acquire))
        return PC_OK;
    if (timeout == 0)
        return PC_ETIMEDOUT;
    spin_lock(&e->o.spin);
    if (atomic_load_explicit(&e->set, memory_order_relaxed)) {
        spin_unlock(&e->o.spin);
        return PC_OK;
    }
    if ((rc = rec_new(&e->o, timeout, &r)) != PC_OK) {
        spin_unlock(&e->o.spin);
        return rc;
    }
    r->grant_rc = PC_OK;
    return enqueue_and_block(&e->o, &e->q, r, timeout);
}

/* ---- pc_sem ---------------------------------------------------------------- */

struct pc_sem {
    sobj o;
    atomic_uint value; /* written under the spinlock; 0 while q is not empty */
    wq q;
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
    sobj_init(&s->o);
    atomic_init(&s->value, value);
    *out = s;
    return PC_OK;
}

void
pc_sem_free(pc_sem **s)
{
    if (!s || !*s)
        return;
    close_obj(&(*s)->o, &(*s)->q, NULL);
    *s = NULL;
}

pc_err
pc_sem_acquire(pc_sem *s, double timeout)
{
    unsigned v;
    waiter *r;
    int rc;

    if (!s)
        return PC_EINVAL;
    if (timeout != 0 && !can_block())
        return PC_EPERM;
    spin_lock(&s->o.spin);
    v = atomic_load_explicit(&s->value, memory_order_relaxed);
    if (v > 0) {
        atomic_store_explicit(&s->value, v - 1, memory_order_relaxed);
        spin_unlock(&s->o.spin);
        return PC_OK;
    }
    if (timeout == 0) {
        spin_unlock(&s->o.spin);
        return PC_ETIMEDOUT;
    }
    if ((rc = rec_new(&s->o, timeout, &r)) != PC_OK) {
        spin_unlock(&s->o.spin);
        return rc;
    }
    r->grant_rc = PC_OK;
    return enqueue_and_block(&s->o, &s->q, r, timeout);
}

pc_err
pc_sem_release(pc_sem *s)
{
    pc__reply_to rt;
    waiter *r;
    unsigned v;

    if (!s)
        return PC_EINVAL;
    spin_lock(&s->o.spin);
    if ((r = pop_live(&s->o, &s->q))) {
        rt = serve(&s->o, r, PC_OK);
        spin_unlock(&s->o.spin);
        pc__wake(rt, PC_OK, NULL, NULL);
        return PC_OK;
    }
    v = atomic_load_explicit(&s->value, memory_order_relaxed);
    if (v == UINT_MAX) {
        spin_unlock(&s->o.spin);
        return PC_ETOOBIG;
    }
    atomic_store_explicit(&s->value, v + 1, memory_order_relaxed);
    spin_unlock(&s->o.spin);
    return PC_OK;
}

unsigned
pc_sem_value(const pc_sem *s)
{
    return s ? atomic_load_explicit(&s->value, memory_order_relaxed) : 0;
}
