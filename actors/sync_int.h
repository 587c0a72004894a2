/* actors/sync_int.h — what the sync objects' sources share (sync.c: the
 * waiter records, queues and blocking; sync_lock.c: locks and conditions;
 * sync_sem.c: events and semaphores). See sync.c for the design.
 */
#ifndef PICOS_ACTORS_SYNC_INT_H
#define PICOS_ACTORS_SYNC_INT_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "picos/sync.h"

#include "internal.h"

/* ---- spinlock ---------------------------------------------------------------- */

/* Test-and-test-and-set; yields the CPU after a short spin, since a foreign
 * thread holding it may have been preempted. */
static inline void
pc__spin_lock(atomic_bool *s)
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
pc__spin_unlock(atomic_bool *s)
{
    atomic_store_explicit(s, false, memory_order_release);
}

/* ---- owners, records, queues ------------------------------------------------- */

/* A task or light actor (the id of its ref: the node is this one), or else
 * a thread (id 0). */
typedef struct pc__owner {
    uint64_t id;
    pthread_t thread;
} pc__owner;

typedef struct pc__mtx pc__mtx;
typedef struct pc__wq pc__wq;

/* What a waiter waits for, so that the end of a task killed in the wait
 * knows what to give back. */
enum pc__rec_kind { PC__REC_LOCK, PC__REC_COND, PC__REC_SEM, PC__REC_EVENT };

/* A waiter's place in an object's queue. Each task (pc__psync) and each
 * foreign thread has one, as it waits for one thing at a time. Fields but
 * `rt` before the wait are written under the object's spinlock. */
typedef struct pc__waiter {
    struct pc__waiter *next, *prev;
    pc__wq *q;       /* the queue it is on; NULL once unlinked */
    pc__mtx *m;      /* lock and condition waiters: the lock they get */
    pc__reply_to rt; /* the blocked task or thread */
    pc__owner who;   /* lock waiters: the owner-to-be... */
    unsigned depth;  /* ... at this depth */
    int grant_rc;    /* what getting the lock returns (cond: notified?) */
    int rc;          /* valid when done */
    uint8_t kind;    /* enum pc__rec_kind */
    bool done;       /* served: unlinked, rc set, wake sent or on its way */
} pc__waiter;

struct pc__wq {
    pc__waiter *head, *tail;
};

static inline void
pc__wq_push(pc__wq *q, pc__waiter *r)
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

static inline void
pc__wq_remove(pc__waiter *r)
{
    pc__wq *q = r->q;

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

/* The first waiter of q, unlinked; NULL when none. */
static inline pc__waiter *
pc__wq_pop(pc__wq *q)
{
    pc__waiter *r = q->head;

    if (r)
        pc__wq_remove(r);
    return r;
}

/* Mark an unlinked waiter served with rc (spinlock held); returns the rt to
 * wake once the spinlock is released. */
static inline pc__reply_to
pc__serve(pc__waiter *r, int rc)
{
    r->done = true;
    r->rc = rc;
    return r->rt;
}

/* ---- objects and their users ---------------------------------------------------- */

/* The header of every object. */
typedef struct pc__sobj {
    atomic_bool spin;
    atomic_int refs; /* the user's, one per waiter (see sync_lock.c for a
                        lock freed while on its owner's held list) */
    bool closed;     /* freed by the user (spinlock) */
} pc__sobj;

/* A task's or light actor's sync state (pc__proc.psync), made at its first
 * lock or wait and freed at its end; a foreign thread has one too, where
 * `track` is false: a thread's end is not seen, so its locks aren't listed. */
struct pc__psync {
    pc__mtx *held;  /* the locks it holds, linked through the locks */
    pc__sobj *wobj; /* the object it waits in (with a reference), or NULL */
    pc__waiter rec; /* its record there */
    bool track;     /* a proc: keep `held` */
};
typedef struct pc__psync pc__psync;

/* The caller's sync state; a proc's is made on first use when `make` (NULL:
 * no memory), else NULL until then. */
pc__psync *pc__sync_self(bool make);
/* The caller as an owner. */
pc__owner pc__sync_owner(void);

static inline bool
pc__owner_eq(const pc__owner *a, const pc__owner *b)
{
    return a->id == b->id &&
           (a->id != 0 || pthread_equal(a->thread, b->thread));
}

/* True when the caller may block: a task that isn't ending (in its exit
 * handler), or a thread that isn't a worker. */
static inline bool
pc__sync_can_block(void)
{
    pc__worker *w = pc__tls_worker;

    return !w ||
           (w->cur && w->cur->kind == PC__TASK && !pc__proc_ending(w->cur));
}

void pc__sobj_init(pc__sobj *o);
void pc__sobj_unref(pc__sobj *o);

/* Start the caller's wait in o of `kind` (spinlock held): its record,
 * blank but for a prepared rt, and a reference on o. The caller fills in
 * the rest, links it and calls pc__sync_block(). */
int pc__sync_rec(pc__sobj *o, pc__psync *ps, int kind, pc__waiter **out);

/* A wake-up to send after the spinlock. */
typedef struct pc__handoff {
    pc__reply_to rt;
    int rc;
} pc__handoff;

/* Block on the record linked by the caller (spinlock held, released here;
 * then `pass`, a lock the caller gave away, is woken when not NULL).
 * Returns the result; a lock got is on the caller's held list. */
int pc__sync_block(pc__sobj *o, pc__psync *ps, double timeout,
                   const pc__handoff *pass);

/* Wake-ups collected under the spinlock, sent after it. */
typedef struct pc__wakeups {
    pc__handoff local[16];
    pc__handoff *v;
    size_t n, cap;
    bool direct; /* out of memory: wake at once, under the spinlock */
} pc__wakeups;

void pc__wakeups_init(pc__wakeups *b);
void pc__wakeups_add(pc__wakeups *b, pc__reply_to rt, int rc);
void pc__wakeups_send(pc__wakeups *b);
/* Serve every waiter of q with rc (spinlock held). */
void pc__serve_all(pc__wq *q, int rc, pc__wakeups *b);
/* Mark o freed and wake the waiters of q1 and q2 (may be NULL) with
 * PC_ECLOSED (spinlock held). */
void pc__sync_closing(pc__sobj *o, pc__wq *q1, pc__wq *q2, pc__wakeups *b);

/* ---- the lock core (sync_lock.c) ------------------------------------------------ */

struct pc__mtx {
    pc__sobj *o;
    bool recursive;
    bool held;       /* false implies an empty queue: release hands it on */
    bool owner_died; /* free since its owner ended holding it: tell the next */
    bool linked;     /* on its owner's held list */
    pc__owner own;
    unsigned depth;
    pc__wq q;
    pc__mtx *hnext, *hprev; /* the held list (the owner's thread only) */
};

/* A condition waiter timed out and not yet served (spinlock held, held again
 * on return): back to its lock's queue, or the lock itself. Sets r done. */
void pc__mtx_cond_timeout(pc__sobj *o, pc__psync *ps);
/* The caller got m through its record (spinlock held): list it, or
 * PC_ECLOSED when m was freed meanwhile; else rc. */
int pc__mtx_adopt(pc__mtx *m, pc__psync *ps, int rc);
/* Give m up entirely (spinlock held): to the first waiter, whose wake-up
 * goes to *wk (returns true), or free it; `died`: the owner ended with it,
 * so the next owner gets PC_EOWNERDEAD. */
bool pc__mtx_pass(pc__mtx *m, bool died, pc__handoff *wk);
/* A proc's end: hand on every lock still on its held list. */
void pc__mtx_owner_ended(pc__psync *ps);

/* ---- semaphores (sync_sem.c) ------------------------------------------------------ */

/* Give a unit of semaphore o back (spinlock held): to the first waiter,
 * whose wake-up goes to *wk (returns 1), or to the count (0); PC_ETOOBIG
 * when the count is full. */
int pc__sem_put(pc__sobj *o, pc__handoff *wk);

#endif
