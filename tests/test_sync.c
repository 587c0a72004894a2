/* tests/test_sync.c — locks, conditions, events and semaphores: FIFO
 * hand-off, timeouts, recursion, ownership, notify counts, contention
 * across workers and with foreign threads, free with waiters, terminated
 * waiters, light-actor handlers.
 *
 * Synchronisation is by messages only. To know that a waiter is queued in a
 * sync object, the waiter sends "ready" to a relay task on its own worker
 * and then blocks at once: the relay can't run before the waiter has
 * blocked (no preemption within a worker), so when the relay forwards
 * "queued" to the driver the waiter is on the object's queue. Waiters are
 * spread over both workers (worker i % 2), so with W=2 hand-offs cross
 * workers in both directions.
 *
 * Most tests are written once per primitive kind (op() / undo() below) and
 * run with one worker and with two.
 */
#include <limits.h>
#include <pthread.h>

#include "picos/supervisor.h"

#include "testutil.h"

/* ---- the kinds, as one "take" and one "give back" ------------------------- */

enum kind {
    K_LOCK,     /* pc_lock_acquire */
    K_SEM,      /* pc_sem_acquire */
    K_EVENT,    /* pc_event_wait */
    K_COND,     /* pc_cond_acquire + pc_cond_wait */
    K_CONDLOCK, /* pc_cond_acquire only */
    K_RLOCK,    /* pc_lock_acquire on a recursive lock */
};

#define NW 5 /* waiters per test */

struct q_ctx;

struct q_arg {
    struct q_ctx *c;
    int i;
    enum kind kind;
};

struct q_ctx {
    pc_lock *lock, *rlock;
    pc_sem *sem;
    pc_event *ev;
    pc_cond *cond;
    pc_ref driver, relay[2];
    struct q_arg args[NW];
    pc_ref w[NW];
    int order[NW];
    atomic_int pos;
    atomic_int rcs[NW];
    long counter; /* guarded by the object under test */
    long n;
    atomic_int done;
};

static pc_msg *
relay_task(void *arg)
{
    struct q_ctx *c = arg;
    pc_msg *m;

    while (pc_recv(&m, -1) == PC_OK) {
        uint64_t v = pt_u64(m);
        pc_msg_free(&m);
        TCHECK_RC(pt_send_u64(c->driver, "queued", v), PC_OK);
    }
    return NULL;
}

/* In the driver: relays on workers 0 and 1 (daemons: the node ends them). */
static void
start_relays(struct q_ctx *c)
{
    c->driver = pc_self();
    for (int k = 0; k < 2; k++)
        c->relay[k] = pt_spawn(relay_task, c, k, PC_TASK_DAEMON);
}

/* In a waiter, right before it blocks. */
static void
queued(struct q_arg *a)
{
    TCHECK_RC(pt_send_u64(a->c->relay[a->i % 2], "ready", (uint64_t)a->i),
              PC_OK);
}

/* In the driver: spawn waiter i (fn) on worker i % 2 and wait until it is
 * queued in the object. */
static void
queue_waiter(struct q_ctx *c, pc_task_fn fn, int i, enum kind kind)
{
    c->args[i].c = c;
    c->args[i].i = i;
    c->args[i].kind = kind;
    c->w[i] = pt_spawn(fn, &c->args[i], i % 2, PC_TASK_JOINABLE);
    TCHECK_EQ(PT_EXPECT("queued"), i);
}

static int
op(struct q_ctx *c, enum kind kind, double timeout, struct q_arg *a)
{
    if (kind == K_COND) {
        TCHECK_RC(pc_cond_acquire(c->cond, PT_LONG), PC_OK);
        if (a)
            queued(a);
        return pc_cond_wait(c->cond, timeout);
    }
    if (a)
        queued(a);
    switch (kind) {
    case K_LOCK:
        return pc_lock_acquire(c->lock, timeout);
    case K_RLOCK:
        return pc_lock_acquire(c->rlock, timeout);
    case K_SEM:
        return pc_sem_acquire(c->sem, timeout);
    case K_EVENT:
        return pc_event_wait(c->ev, timeout);
    default:
        return pc_cond_acquire(c->cond, timeout);
    }
}

/* Whether op() returning rc left the caller holding something. */
static bool
holds(enum kind kind, int rc)
{
    if (kind == K_EVENT)
        return false;
    if (rc == PC_EOWNERDEAD) /* a lock whose owner ended holding it */
        return kind != K_SEM;
    if (kind == K_COND)
        return rc == PC_OK || rc == PC_ETIMEDOUT; /* re-acquired either way */
    return rc == PC_OK;
}

static void
undo(struct q_ctx *c, enum kind kind)
{
    switch (kind) {
    case K_LOCK:
        TCHECK_RC(pc_lock_release(c->lock), PC_OK);
        break;
    case K_RLOCK:
        TCHECK_RC(pc_lock_release(c->rlock), PC_OK);
        break;
    case K_SEM:
        TCHECK_RC(pc_sem_release(c->sem), PC_OK);
        break;
    case K_EVENT:
        break;
    default:
        TCHECK_RC(pc_cond_release(c->cond), PC_OK);
    }
}

static void
make_objects(struct q_ctx *c, unsigned sem_value)
{
    TCHECK_RC(pc_lock_new(&c->lock, false), PC_OK);
    TCHECK_RC(pc_lock_new(&c->rlock, true), PC_OK);
    TCHECK_RC(pc_sem_new(&c->sem, sem_value), PC_OK);
    TCHECK_RC(pc_event_new(&c->ev), PC_OK);
    TCHECK_RC(pc_cond_new(&c->cond), PC_OK);
}

static void
free_objects(struct q_ctx *c)
{
    pc_lock_free(&c->lock);
    pc_lock_free(&c->rlock);
    pc_sem_free(&c->sem);
    pc_event_free(&c->ev);
    pc_cond_free(&c->cond);
    TCHECK(!c->lock && !c->rlock && !c->sem && !c->ev && !c->cond);
}

/* In the driver: make the waiters of `kind` wait (K_COND needs nothing). */
static void
shut(struct q_ctx *c, enum kind kind)
{
    if (kind == K_LOCK)
        TCHECK_RC(pc_lock_acquire(c->lock, 0), PC_OK);
    else if (kind == K_RLOCK)
        TCHECK_RC(pc_lock_acquire(c->rlock, 0), PC_OK);
    else if (kind == K_CONDLOCK)
        TCHECK_RC(pc_cond_acquire(c->cond, 0), PC_OK);
    else if (kind == K_SEM)
        TCHECK_EQ(pc_sem_value(c->sem), 0);
}

/* ... and let them go: one hand-off (they pass it on), or a set, or a
 * notification of `n` condition waiters. */
static void
open_(struct q_ctx *c, enum kind kind, unsigned n)
{
    switch (kind) {
    case K_LOCK:
        TCHECK_RC(pc_lock_release(c->lock), PC_OK);
        break;
    case K_RLOCK:
        TCHECK_RC(pc_lock_release(c->rlock), PC_OK);
        break;
    case K_SEM:
        TCHECK_RC(pc_sem_release(c->sem), PC_OK);
        break;
    case K_EVENT:
        TCHECK_RC(pc_event_set(c->ev), PC_OK);
        break;
    case K_COND:
        TCHECK_RC(pc_cond_acquire(c->cond, 0), PC_OK);
        TCHECK_RC(n == UINT_MAX ? pc_cond_notify_all(c->cond)
                                : pc_cond_notify(c->cond, n),
                  PC_OK);
        TCHECK_RC(pc_cond_release(c->cond), PC_OK);
        break;
    case K_CONDLOCK:
        TCHECK_RC(pc_cond_release(c->cond), PC_OK);
        break;
    }
}

/* After the test: the object is free again (nothing lost or still held,
 * and no owner's death left to report). */
static void
check_free(struct q_ctx *c, enum kind kind)
{
    switch (kind) {
    case K_LOCK:
        TCHECK_RC(pc_lock_acquire(c->lock, 0), PC_OK);
        TCHECK_RC(pc_lock_release(c->lock), PC_OK);
        break;
    case K_RLOCK:
        TCHECK_RC(pc_lock_acquire(c->rlock, 0), PC_OK);
        TCHECK_RC(pc_lock_release(c->rlock), PC_OK);
        break;
    case K_SEM:
        TCHECK_EQ(pc_sem_value(c->sem), 1);
        break;
    case K_EVENT:
        break;
    default:
        TCHECK_RC(pc_cond_acquire(c->cond, 0), PC_OK);
        TCHECK_RC(pc_cond_release(c->cond), PC_OK);
    }
}

static void
join_all(struct q_ctx *c, int n, int want)
{
    for (int i = 0; i < n; i++)
        TCHECK_RC(pc_task_join(c->w[i], PT_LONG, NULL), want);
}

/* ---- FIFO order -------------------------------------------------------------- */

static struct q_ctx fifo_c;
static enum kind fifo_kind;

static pc_msg *
fifo_waiter(void *arg)
{
    struct q_arg *a = arg;
    struct q_ctx *c = a->c;

    TCHECK_RC(op(c, a->kind, PT_LONG, a), PC_OK);
    c->order[atomic_fetch_add(&c->pos, 1)] = a->i;
    if (holds(a->kind, PC_OK))
        undo(c, a->kind); /* hands it to the next one */
    return NULL;
}

static pc_msg *
fifo_main(void *arg)
{
    struct q_ctx *c = arg;
    enum kind kind = fifo_kind;

    start_relays(c);
    make_objects(c, 0);
    shut(c, kind);
    if (kind == K_COND) {
        /* Condition waiters, then one waiting for the lock itself: the
         * notified queue up behind it. */
        for (int i = 0; i < NW - 1; i++)
            queue_waiter(c, fifo_waiter, i, K_COND);
        TCHECK_RC(pc_cond_acquire(c->cond, 0), PC_OK);
        queue_waiter(c, fifo_waiter, NW - 1, K_CONDLOCK);
        TCHECK_RC(pc_cond_notify_all(c->cond), PC_OK);
        TCHECK_RC(pc_cond_release(c->cond), PC_OK);
    } else {
        for (int i = 0; i < NW; i++)
            queue_waiter(c, fifo_waiter, i, kind);
        open_(c, kind, UINT_MAX);
        if (kind == K_EVENT) /* doesn't stop those already woken */
            TCHECK_RC(pc_event_clear(c->ev), PC_OK);
    }
    join_all(c, NW, PC_OK);
    TCHECK_EQ(atomic_load(&c->pos), NW);
    if (kind == K_COND) {
        TCHECK_EQ(c->order[0], NW - 1);
        for (int i = 1; i < NW; i++)
            TCHECK_EQ(c->order[i], i - 1);
    } else if (kind == K_EVENT) {
        /* all woken in queue order; with W=2 each worker runs its own in
         * that order */
        int last[2] = {-1, -1};
        for (int i = 0; i < NW; i++) {
            int k = c->order[i] % pc_node_workers();
            TCHECK(c->order[i] > last[k]);
            last[k] = c->order[i];
        }
        TCHECK(!pc_event_is_set(c->ev));
    } else {
        for (int i = 0; i < NW; i++)
            TCHECK_EQ(c->order[i], i);
    }
    check_free(c, kind);
    free_objects(c);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

static void
run_fifo(int W, enum kind kind)
{
    memset(&fifo_c, 0, sizeof fifo_c);
    fifo_kind = kind;
    PT_RUN_TASK(W, fifo_main, &fifo_c, &fifo_c.done, 1);
}

/* 5 tasks queue on a held lock in a known order; each release hands it to
 * the next in that order. */
PT_WTEST(fifo_lock)
static void
fifo_lock(int W)
{
    run_fifo(W, K_LOCK);
}

/* A semaphore at 0: one release, then each waiter passes its unit on. */
PT_WTEST(fifo_sem)
static void
fifo_sem(int W)
{
    run_fifo(W, K_SEM);
}

/* set wakes every waiter, in queue order; a clear right after doesn't
 * undo it. */
PT_WTEST(fifo_event)
static void
fifo_event(int W)
{
    run_fifo(W, K_EVENT);
}

/* notify_all moves the condition waiters, oldest first, behind the task
 * already waiting for the lock. */
PT_WTEST(fifo_cond)
static void
fifo_cond(int W)
{
    run_fifo(W, K_COND);
}

/* Waiting for a condition's lock is FIFO too. */
PT_WTEST(fifo_cond_lock)
static void
fifo_cond_lock(int W)
{
    run_fifo(W, K_CONDLOCK);
}

/* ---- timeouts: a timed-out waiter leaves the queue ---------------------------- */

static struct q_ctx to_c;
static enum kind to_kind;

static pc_msg *
timeout_waiter(void *arg)
{
    struct q_ctx *c = arg;
    double t0 = pc_now();
    int rc = op(c, to_kind, 0.05, NULL);

    TCHECK_RC(rc, PC_ETIMEDOUT);
    TCHECK(pt_since(t0) >= 0.045);
    if (holds(to_kind, rc))
        undo(c, to_kind); /* a condition waiter holds the lock again */
    TCHECK_RC(pt_send(c->driver, "timedout"), PC_OK);
    PT_EXPECT("end"); /* stays alive, so a leftover place would be served */
    return NULL;
}

static pc_msg *
timeout_main(void *arg)
{
    struct q_ctx *c = arg;
    enum kind kind = to_kind;
    pc_ref a;

    start_relays(c);
    make_objects(c, 0);
    shut(c, kind);
    a = pt_spawn(timeout_waiter, c, 1, PC_TASK_JOINABLE);
    PT_EXPECT("timedout");
    /* the next waiter gets what is handed on, not the one that gave up */
    queue_waiter(c, fifo_waiter, 0, kind);
    open_(c, kind, 1);
    TCHECK_RC(pc_task_join(c->w[0], PT_LONG, NULL), PC_OK);
    TCHECK_EQ(atomic_load(&c->pos), 1);
    check_free(c, kind);
    TCHECK_RC(pt_send(a, "end"), PC_OK);
    TCHECK_RC(pc_task_join(a, PT_LONG, NULL), PC_OK);
    free_objects(c);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

static void
run_timeout(int W, enum kind kind)
{
    memset(&to_c, 0, sizeof to_c);
    to_kind = kind;
    PT_RUN_TASK(W, timeout_main, &to_c, &to_c.done, 1);
}

PT_WTEST(timeout_lock)
static void
timeout_lock(int W)
{
    run_timeout(W, K_LOCK);
}

PT_WTEST(timeout_sem)
static void
timeout_sem(int W)
{
    run_timeout(W, K_SEM);
}

PT_WTEST(timeout_event)
static void
timeout_event(int W)
{
    run_timeout(W, K_EVENT);
}

/* A condition waiter that times out re-acquires the lock before it returns;
 * notify(1) afterwards goes to the next waiter. */
PT_WTEST(timeout_cond)
static void
timeout_cond(int W)
{
    run_timeout(W, K_COND);
}

PT_WTEST(timeout_cond_lock)
static void
timeout_cond_lock(int W)
{
    run_timeout(W, K_CONDLOCK);
}

/* ---- a timeout racing a hand-off --------------------------------------------- */

/* The waiter waits 1 ms; the driver hands over (or notifies) at a time that
 * sweeps across the waiter's deadline, from its reading of the clock, so
 * over the rounds some hand-offs land on the timer's expiry. */
#define RACE_WAIT 0.001

struct race_ctx {
    pc_lock *l;
    pc_cond *c;
    bool cond;
    long rounds;
    pc_ref driver;
    atomic_llong t_wait; /* ns: when the waiter started to wait; 0: not yet */
    atomic_long got, timedout;
    atomic_int done;
};

static void
spin_until(double t)
{
    while (pc_now() < t)
        ;
}

static pc_msg *
race_waiter(void *arg)
{
    struct race_ctx *c = arg;

    for (;;) {
        pc_msg *m = NULL;
        int rc;
        TCHECK_RC(pc_recv(&m, PT_LONG), PC_OK);
        if (!m || !pc_msg_is(m, "go")) {
            pc_msg_free(&m);
            return NULL;
        }
        pc_msg_free(&m);
        if (c->cond) {
            TCHECK_RC(pc_cond_acquire(c->c, PT_LONG), PC_OK);
            atomic_store(&c->t_wait, (long long)(pc_now() * 1e9));
            rc = pc_cond_wait(c->c, RACE_WAIT);
            /* either way it holds the lock again */
            TCHECK_RC(pc_cond_release(c->c), PC_OK);
        } else {
            atomic_store(&c->t_wait, (long long)(pc_now() * 1e9));
            rc = pc_lock_acquire(c->l, RACE_WAIT);
            if (rc == PC_OK)
                TCHECK_RC(pc_lock_release(c->l), PC_OK);
        }
        TCHECK(rc == PC_OK || rc == PC_ETIMEDOUT);
        atomic_fetch_add(rc == PC_OK ? &c->got : &c->timedout, 1);
        TCHECK_RC(pt_send(c->driver, "res"), PC_OK);
    }
}

/* When the waiter's deadline is, as the driver sees it: with one worker
 * the waiter can't run while the driver spins, so there is no race to aim
 * at (the driver just goes on). */
static double
race_deadline(struct race_ctx *c)
{
    long long t;

    if (pc_node_workers() < 2)
        return 0;
    while ((t = atomic_load(&c->t_wait)) == 0)
        ;
    return (double)t * 1e-9 + RACE_WAIT;
}

/* The waiter's report of a round; false (a failure) when none came. */
static bool
race_result(void)
{
    pc_msg *m = NULL;
    int rc = pc_recv(&m, PT_LONG);

    TCHECK_RC(rc, PC_OK);
    TCHECK(m && pc_msg_is(m, "res"));
    pc_msg_free(&m);
    return rc == PC_OK;
}

static pc_msg *
race_main(void *arg)
{
    struct race_ctx *c = arg;
    long rounds = 0;
    pc_ref a;
    int rc;

    c->driver = pc_self();
    TCHECK_RC(pc_lock_new(&c->l, false), PC_OK);
    TCHECK_RC(pc_cond_new(&c->c), PC_OK);
    a = pt_spawn(race_waiter, c, 1, PC_TASK_JOINABLE);
    for (long r = 0; r < c->rounds; r++) {
        /* -100 µs .. +200 µs around the deadline, in 5 µs steps */
        double off = -100e-6 + 5e-6 * (double)(r % 61), dl;
        atomic_store(&c->t_wait, 0);
        if (c->cond) {
            TCHECK_RC(pt_send(a, "go"), PC_OK);
            dl = race_deadline(c);
            spin_until(dl + off);
            TCHECK_RC(pc_cond_acquire(c->c, PT_LONG), PC_OK);
            /* hold the lock a little before and after the notification:
             * the waiter may time out in either spell, and must then wait
             * for the lock */
            spin_until(dl + off + 5e-6 * (double)(r % 7));
            TCHECK_RC(pc_cond_notify(c->c, 1), PC_OK);
            spin_until(dl + off + 5e-6 * (double)(r % 7 + r % 11));
            TCHECK_RC(pc_cond_release(c->c), PC_OK);
            if (!race_result())
                break;
            /* free again; else stop at once rather than wait on it */
            rc = pc_cond_acquire(c->c, 0);
            TCHECK_RC(rc, PC_OK);
            if (rc != PC_OK)
                break;
            TCHECK_RC(pc_cond_release(c->c), PC_OK);
        } else {
            TCHECK_RC(pc_lock_acquire(c->l, PT_LONG), PC_OK);
            TCHECK_RC(pt_send(a, "go"), PC_OK);
            dl = race_deadline(c);
            spin_until(dl + off);
            TCHECK_RC(pc_lock_release(c->l), PC_OK);
            if (!race_result())
                break;
            /* not lost to a waiter that gave up */
            rc = pc_lock_acquire(c->l, 0);
            TCHECK_RC(rc, PC_OK);
            if (rc != PC_OK)
                break;
            TCHECK_RC(pc_lock_release(c->l), PC_OK);
        }
        rounds++;
    }
    TCHECK_RC(pt_send(a, "stop"), PC_OK);
    TCHECK_RC(pc_task_join(a, PT_LONG, NULL), PC_OK);
    TCHECK_EQ(rounds, c->rounds);
    if (rounds == c->rounds)
        TCHECK_EQ(atomic_load(&c->got) + atomic_load(&c->timedout), rounds);
    pc_lock_free(&c->l);
    pc_cond_free(&c->c);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

static void
run_race(int W, bool cond)
{
    struct race_ctx c;

    memset(&c, 0, sizeof c);
    c.cond = cond;
    c.rounds = pt_scaled(600, 3);
    PT_RUN_TASK(W, race_main, &c, &c.done, 1);
}

/* A lock handed to a waiter as its timeout fires: it returns PC_OK and
 * owns it, or PC_ETIMEDOUT and the lock is free; it is never lost. */
PT_WTEST(timeout_races_handoff)
static void
timeout_races_handoff(int W)
{
    run_race(W, false);
}

/* The same for a condition: notified or not, the waiter gets the lock back,
 * and the lock is free afterwards. */
PT_WTEST(timeout_races_notify)
static void
timeout_races_notify(int W)
{
    run_race(W, true);
}

/* ---- recursion and ownership ---------------------------------------------------- */

struct own_ctx {
    pc_lock *l;
    pc_cond *c;
    pc_ref driver;
    atomic_int done;
};

/* Answers each request ("try": poll l, "rel": release l, "crel": release c,
 * "cnotify": notify c) with its result; anything else ends it. */
static pc_msg *
own_helper(void *arg)
{
    struct own_ctx *c = arg;

    for (;;) {
        pc_msg *m = NULL;
        int rc;
        TCHECK_RC(pc_recv(&m, PT_LONG), PC_OK);
        if (!m)
            return NULL;
        if (pc_msg_is(m, "try"))
            rc = pc_lock_acquire(c->l, 0);
        else if (pc_msg_is(m, "rel"))
            rc = pc_lock_release(c->l);
        else if (pc_msg_is(m, "crel"))
            rc = pc_cond_release(c->c);
        else if (pc_msg_is(m, "cnotify"))
            rc = pc_cond_notify(c->c, 1);
        else {
            pc_msg_free(&m);
            return NULL;
        }
        pc_msg_free(&m);
        TCHECK_RC(pt_send_u64(c->driver, "rc", (uint64_t)(int64_t)rc), PC_OK);
    }
}

static int
ask(pc_ref h, const char *what)
{
    TCHECK_RC(pt_send(h, what), PC_OK);
    return (int)(int64_t)PT_EXPECT("rc");
}

static pc_msg *
recursive_main(void *arg)
{
    struct own_ctx *c = arg;
    pc_ref h;

    c->driver = pc_self();
    TCHECK_RC(pc_lock_new(&c->l, true), PC_OK);
    h = pt_spawn(own_helper, c, 1, PC_TASK_JOINABLE);
    for (int i = 0; i < 3; i++)
        TCHECK_RC(pc_lock_acquire(c->l, PT_LONG), PC_OK);
    TCHECK_EQ(ask(h, "try"), PC_ETIMEDOUT);
    TCHECK_EQ(ask(h, "rel"), PC_EPERM);
    TCHECK_RC(pc_lock_release(c->l), PC_OK);
    TCHECK_RC(pc_lock_release(c->l), PC_OK);
    TCHECK_EQ(ask(h, "try"), PC_ETIMEDOUT); /* depth 1 left */
    TCHECK_RC(pc_lock_release(c->l), PC_OK);
    TCHECK_RC(pc_lock_release(c->l), PC_EPERM); /* not held any more */
    TCHECK_EQ(ask(h, "try"), PC_OK);            /* the helper owns it now */
    TCHECK_RC(pc_lock_acquire(c->l, 0), PC_ETIMEDOUT);
    TCHECK_RC(pc_lock_release(c->l), PC_EPERM);
    TCHECK_EQ(ask(h, "rel"), PC_OK);
    TCHECK_RC(pc_lock_acquire(c->l, 0), PC_OK);
    TCHECK_RC(pc_lock_release(c->l), PC_OK);
    TCHECK_RC(pt_send(h, "end"), PC_OK);
    TCHECK_RC(pc_task_join(h, PT_LONG, NULL), PC_OK);
    pc_lock_free(&c->l);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* A recursive lock counts its owner's levels; others can't take or release
 * it until the last release. */
PT_WTEST(recursive_depth)
static void
recursive_depth(int W)
{
    struct own_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, recursive_main, &c, &c.done, 1);
}

static pc_msg *
nonrecursive_main(void *arg)
{
    struct own_ctx *c = arg;
    pc_ref h;

    c->driver = pc_self();
    TCHECK_RC(pc_lock_new(&c->l, false), PC_OK);
    TCHECK_RC(pc_cond_new(&c->c), PC_OK);
    h = pt_spawn(own_helper, c, 1, PC_TASK_JOINABLE);
    TCHECK_RC(pc_lock_release(c->l), PC_EPERM); /* not held */
    TCHECK_RC(pc_lock_acquire(c->l, PT_LONG), PC_OK);
    TCHECK_RC(pc_lock_acquire(c->l, 0), PC_ETIMEDOUT);
    TCHECK_RC(pc_lock_acquire(c->l, PT_LONG), PC_ESTATE); /* self-deadlock */
    TCHECK_EQ(ask(h, "rel"), PC_EPERM);
    TCHECK_RC(pc_lock_release(c->l), PC_OK);
    TCHECK_RC(pc_lock_release(c->l), PC_EPERM);
    /* a condition's lock, and notify, belong to the owner too */
    TCHECK_RC(pc_cond_notify(c->c, 1), PC_EPERM);
    TCHECK_RC(pc_cond_notify_all(c->c), PC_EPERM);
    TCHECK_RC(pc_cond_wait(c->c, 0), PC_EPERM);
    TCHECK_RC(pc_cond_acquire(c->c, PT_LONG), PC_OK);
    TCHECK_EQ(ask(h, "crel"), PC_EPERM);
    TCHECK_EQ(ask(h, "cnotify"), PC_EPERM);
    TCHECK_RC(pc_cond_notify(c->c, 0), PC_OK);
    TCHECK_RC(pc_cond_notify(c->c, 3), PC_OK); /* nobody waits: fine */
    /* wait(0) releases, times out at once and takes the lock back */
    TCHECK_RC(pc_cond_wait(c->c, 0), PC_ETIMEDOUT);
    TCHECK_RC(pc_cond_release(c->c), PC_OK);
    TCHECK_RC(pc_cond_release(c->c), PC_EPERM);
    /* NULL objects */
    TCHECK_RC(pc_lock_acquire(NULL, 0), PC_EINVAL);
    TCHECK_RC(pc_lock_release(NULL), PC_EINVAL);
    TCHECK_RC(pc_cond_wait(NULL, 0), PC_EINVAL);
    TCHECK_RC(pc_sem_acquire(NULL, 0), PC_EINVAL);
    TCHECK_RC(pc_event_wait(NULL, 0), PC_EINVAL);
    TCHECK_RC(pc_lock_new(NULL, false), PC_EINVAL);
    pc_lock_free(NULL);
    TCHECK_RC(pt_send(h, "end"), PC_OK);
    TCHECK_RC(pc_task_join(h, PT_LONG, NULL), PC_OK);
    pc_lock_free(&c->l);
    pc_cond_free(&c->c);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* Release by a non-owner is PC_EPERM; so is notify or wait without the
 * condition's lock; the owner of a plain lock can't wait for it. */
PT_WTEST(ownership)
static void
ownership(int W)
{
    struct own_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, nonrecursive_main, &c, &c.done, 1);
}

/* ---- conditions: notify counts, saved depth ------------------------------------ */

#define NCOND 4

static pc_msg *
counted_waiter(void *arg)
{
    struct q_arg *a = arg;
    struct q_ctx *c = a->c;
    int rc;

    TCHECK_RC(pc_cond_acquire(c->cond, PT_LONG), PC_OK);
    queued(a);
    rc = pc_cond_wait(c->cond, 1.0);
    atomic_store(&c->rcs[a->i], rc);
    TCHECK_RC(pc_cond_release(c->cond), PC_OK); /* held either way */
    return NULL;
}

static pc_msg *
notify_counts_main(void *arg)
{
    struct q_ctx *c = arg;

    start_relays(c);
    make_objects(c, 0);
    for (int i = 0; i < NCOND; i++)
        queue_waiter(c, counted_waiter, i, K_COND);
    TCHECK_RC(pc_cond_acquire(c->cond, 0), PC_OK);
    TCHECK_RC(pc_cond_notify(c->cond, 2), PC_OK);
    TCHECK_RC(pc_cond_release(c->cond), PC_OK);
    join_all(c, NCOND, PC_OK);
    /* the two oldest were notified, the others timed out */
    TCHECK_RC(atomic_load(&c->rcs[0]), PC_OK);
    TCHECK_RC(atomic_load(&c->rcs[1]), PC_OK);
    TCHECK_RC(atomic_load(&c->rcs[2]), PC_ETIMEDOUT);
    TCHECK_RC(atomic_load(&c->rcs[3]), PC_ETIMEDOUT);
    check_free(c, K_COND);
    free_objects(c);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* notify(2) with 4 waiters wakes exactly the 2 oldest. */
PT_WTEST(cond_notify_counts)
static void
cond_notify_counts(int W)
{
    struct q_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, notify_counts_main, &c, &c.done, 1);
}

static pc_msg *
notifier(void *arg)
{
    struct q_arg *a = arg;
    struct q_ctx *c = a->c;

    queued(a);
    TCHECK_RC(pc_cond_acquire(c->cond, PT_LONG), PC_OK);
    TCHECK_RC(pc_cond_notify(c->cond, 1), PC_OK);
    TCHECK_RC(pc_cond_release(c->cond), PC_OK);
    return NULL;
}

static pc_msg *
cond_depth_main(void *arg)
{
    struct q_ctx *c = arg;

    start_relays(c);
    make_objects(c, 0);
    for (int i = 0; i < 3; i++)
        TCHECK_RC(pc_cond_acquire(c->cond, PT_LONG), PC_OK);
    queue_waiter(c, notifier, 1, K_CONDLOCK); /* on worker 1 */
    /* releases all three levels, so the notifier gets in */
    TCHECK_RC(pc_cond_wait(c->cond, PT_LONG), PC_OK);
    for (int i = 0; i < 3; i++)
        TCHECK_RC(pc_cond_release(c->cond), PC_OK);
    TCHECK_RC(pc_cond_release(c->cond), PC_EPERM);
    TCHECK_RC(pc_task_join(c->w[1], PT_LONG, NULL), PC_OK);
    free_objects(c);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* wait releases every level of the condition's lock and restores them. */
PT_WTEST(cond_wait_depth)
static void
cond_wait_depth(int W)
{
    struct q_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, cond_depth_main, &c, &c.done, 1);
}

/* ---- events and semaphores: the plain calls ------------------------------------ */

static pc_msg *
event_sem_main(void *arg)
{
    atomic_int *done = arg;
    pc_event *e = NULL;
    pc_sem *s = NULL;
    double t0;

    TCHECK_RC(pc_event_new(&e), PC_OK);
    TCHECK(!pc_event_is_set(e));
    TCHECK_RC(pc_event_wait(e, 0), PC_ETIMEDOUT);
    t0 = pc_now();
    TCHECK_RC(pc_event_wait(e, 0.05), PC_ETIMEDOUT);
    TCHECK(pt_since(t0) >= 0.045);
    TCHECK_RC(pc_event_set(e), PC_OK);
    TCHECK_RC(pc_event_set(e), PC_OK);
    TCHECK(pc_event_is_set(e));
    TCHECK_RC(pc_event_wait(e, 0), PC_OK);
    TCHECK_RC(pc_event_wait(e, PT_LONG), PC_OK);
    TCHECK_RC(pc_event_clear(e), PC_OK);
    TCHECK(!pc_event_is_set(e));
    TCHECK_RC(pc_event_wait(e, 0), PC_ETIMEDOUT);
    pc_event_free(&e);
    TCHECK(e == NULL);
    TCHECK(!pc_event_is_set(NULL));

    TCHECK_RC(pc_sem_new(&s, 2), PC_OK);
    TCHECK_EQ(pc_sem_value(s), 2);
    TCHECK_RC(pc_sem_acquire(s, 0), PC_OK);
    TCHECK_RC(pc_sem_acquire(s, PT_LONG), PC_OK);
    TCHECK_EQ(pc_sem_value(s), 0);
    TCHECK_RC(pc_sem_acquire(s, 0), PC_ETIMEDOUT);
    t0 = pc_now();
    TCHECK_RC(pc_sem_acquire(s, 0.05), PC_ETIMEDOUT);
    TCHECK(pt_since(t0) >= 0.045);
    for (int i = 0; i < 3; i++)
        TCHECK_RC(pc_sem_release(s), PC_OK); /* anyone, beyond the start */
    TCHECK_EQ(pc_sem_value(s), 3);
    pc_sem_free(&s);
    TCHECK_RC(pc_sem_new(&s, UINT_MAX), PC_OK);
    TCHECK_RC(pc_sem_release(s), PC_ETOOBIG);
    TCHECK_EQ(pc_sem_value(s), UINT_MAX);
    pc_sem_free(&s);
    atomic_fetch_add(done, 1);
    return NULL;
}

/* Event set / clear / is_set / wait; semaphore counts and timeouts. */
PT_WTEST(event_and_sem_basics)
static void
event_and_sem_basics(int W)
{
    atomic_int done = 0;

    PT_RUN_TASK(W, event_sem_main, &done, &done, 1);
}

/* ---- contention across workers ------------------------------------------------ */

#define NCONT 4 /* tasks, alternately on workers 0 and 1 */

static struct q_ctx cont_c;
static enum kind cont_kind;

static void
count_loop(struct q_ctx *c, enum kind kind, long n)
{
    for (long i = 0; i < n; i++) {
        long v;
        TCHECK_RC(op(c, kind, -1, NULL), PC_OK);
        /* plain memory, and a read-modify-write spread out so that a
         * second owner would lose updates (and TSan would see the race) */
        v = c->counter;
        for (volatile int k = 0; k < 20; k++)
            ;
        c->counter = v + 1;
        undo(c, kind);
    }
}

static pc_msg *
counter_task(void *arg)
{
    struct q_ctx *c = arg;

    count_loop(c, cont_kind, c->n);
    return NULL;
}

static pc_msg *
contend_main(void *arg)
{
    struct q_ctx *c = arg;
    pc_ref t[NCONT];

    make_objects(c, 1);
    for (int i = 0; i < NCONT; i++)
        t[i] = pt_spawn(counter_task, c, i % 2,
                        PC_TASK_JOINABLE | (i >= 2 ? PC_TASK_SMALL : 0));
    for (int i = 0; i < NCONT; i++)
        TCHECK_RC(pc_task_join(t[i], -1, NULL), PC_OK);
    TCHECK_EQ(c->counter, NCONT * c->n);
    check_free(c, cont_kind);
    free_objects(c);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

static void
run_contend(int W, enum kind kind)
{
    memset(&cont_c, 0, sizeof cont_c);
    cont_kind = kind;
    cont_c.n = pt_scaled(20000, 20);
    PT_RUN_TASK(W, contend_main, &cont_c, &cont_c.done, 1);
}

/* Tasks on both workers (half of them small) increment one counter under
 * the lock; the total is exact. */
PT_WTEST(contend_lock)
static void
contend_lock(int W)
{
    run_contend(W, K_LOCK);
}

PT_WTEST(contend_sem)
static void
contend_sem(int W)
{
    run_contend(W, K_SEM);
}

PT_WTEST(contend_cond_lock)
static void
contend_cond_lock(int W)
{
    run_contend(W, K_CONDLOCK);
}

/* ---- foreign threads -------------------------------------------------------- */

static void *
thread_counter(void *arg)
{
    struct q_ctx *c = arg;

    count_loop(c, K_LOCK, c->n);
    return NULL;
}

/* main() and another plain thread contend with tasks of both workers. */
PT_WTEST(foreign_threads_contend)
static void
foreign_threads_contend(int W)
{
    static struct q_ctx c;
    pc_ref t[2];
    pthread_t th;

    memset(&c, 0, sizeof c);
    c.n = pt_scaled(20000, 20);
    cont_kind = K_LOCK;
    make_objects(&c, 1);
    PT_START(W);
    for (int i = 0; i < 2; i++) {
        pc_spawn_opts o = pt_on(i, 0);
        CU_ASSERT_EQUAL(pc_spawn(counter_task, &c, &o, &t[i]), PC_OK);
    }
    CU_ASSERT_EQUAL(pthread_create(&th, NULL, thread_counter, &c), 0);
    count_loop(&c, K_LOCK, c.n);
    CU_ASSERT_EQUAL(pthread_join(th, NULL), 0);
    PT_RUN();
    CU_ASSERT_EQUAL(c.counter, 4 * c.n);
    /* no node: a plain thread still can use a lock */
    TCHECK_RC(pc_lock_acquire(c.lock, 0), PC_OK);
    TCHECK_RC(pc_lock_release(c.lock), PC_OK);
    free_objects(&c);
    pt_flush();
}

struct fg_ctx {
    pc_lock *l;
    pc_event *held, *go;
    atomic_int done;
};

static pc_msg *
holder_task(void *arg)
{
    struct fg_ctx *c = arg;

    TCHECK_RC(pc_lock_acquire(c->l, PT_LONG), PC_OK);
    TCHECK_RC(pc_event_set(c->held), PC_OK);
    TCHECK_RC(pc_event_wait(c->go, PT_LONG), PC_OK);
    TCHECK_RC(pc_lock_release(c->l), PC_OK);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* main() waits for an event a task sets, times out on a lock the task
 * holds, can't release it, then gets it once the task lets go. */
PT_WTEST(foreign_thread_waits)
static void
foreign_thread_waits(int W)
{
    struct fg_ctx c;
    double t0;

    memset(&c, 0, sizeof c);
    CU_ASSERT_EQUAL(pc_lock_new(&c.l, false), PC_OK);
    CU_ASSERT_EQUAL(pc_event_new(&c.held), PC_OK);
    CU_ASSERT_EQUAL(pc_event_new(&c.go), PC_OK);
    PT_START(W);
    pc_spawn_opts o = pt_on(1, 0);
    CU_ASSERT_EQUAL(pc_spawn(holder_task, &c, &o, NULL), PC_OK);
    TCHECK_RC(pc_event_wait(c.held, PT_LONG), PC_OK);
    TCHECK_RC(pc_lock_acquire(c.l, 0), PC_ETIMEDOUT);
    t0 = pc_now();
    TCHECK_RC(pc_lock_acquire(c.l, 0.05), PC_ETIMEDOUT);
    TCHECK(pt_since(t0) >= 0.045);
    TCHECK_RC(pc_lock_release(c.l), PC_EPERM);
    TCHECK_RC(pc_event_set(c.go), PC_OK);
    TCHECK_RC(pc_lock_acquire(c.l, PT_LONG), PC_OK);
    TCHECK_RC(pc_lock_acquire(c.l, 0), PC_ETIMEDOUT); /* not recursive */
    TCHECK_RC(pc_lock_release(c.l), PC_OK);
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&c.done), 1);
    pc_lock_free(&c.l);
    pc_event_free(&c.held);
    pc_event_free(&c.go);
}

/* ---- free with waiters ----------------------------------------------------------- */

static struct q_ctx cl_c;
static enum kind cl_kind;

static pc_msg *
closed_waiter(void *arg)
{
    struct q_arg *a = arg;
    struct q_ctx *c = a->c;
    int rc = op(c, a->kind, PT_LONG, a);

    atomic_store(&c->rcs[a->i], rc);
    TCHECK_RC(rc, PC_ECLOSED);
    return NULL; /* and never touches the object again */
}

static pc_msg *
closed_main(void *arg)
{
    struct q_ctx *c = arg;
    enum kind kind = cl_kind;

    start_relays(c);
    make_objects(c, 0);
    shut(c, kind);
    if (kind == K_COND) {
        for (int i = 0; i < NW - 1; i++)
            queue_waiter(c, closed_waiter, i, K_COND);
        TCHECK_RC(pc_cond_acquire(c->cond, 0), PC_OK);
        queue_waiter(c, closed_waiter, NW - 1, K_CONDLOCK);
    } else {
        for (int i = 0; i < NW; i++)
            queue_waiter(c, closed_waiter, i, kind);
    }
    free_objects(c); /* what the driver held goes with it */
    join_all(c, NW, PC_OK);
    for (int i = 0; i < NW; i++)
        TCHECK_RC(atomic_load(&c->rcs[i]), PC_ECLOSED);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

static void
run_closed(int W, enum kind kind)
{
    memset(&cl_c, 0, sizeof cl_c);
    cl_kind = kind;
    PT_RUN_TASK(W, closed_main, &cl_c, &cl_c.done, 1);
}

/* Freeing an object wakes its waiters with PC_ECLOSED. */
PT_WTEST(free_wakes_lock)
static void
free_wakes_lock(int W)
{
    run_closed(W, K_LOCK);
}

PT_WTEST(free_wakes_sem)
static void
free_wakes_sem(int W)
{
    run_closed(W, K_SEM);
}

PT_WTEST(free_wakes_event)
static void
free_wakes_event(int W)
{
    run_closed(W, K_EVENT);
}

/* Both the condition's waiters and its lock's. */
PT_WTEST(free_wakes_cond)
static void
free_wakes_cond(int W)
{
    run_closed(W, K_COND);
}

/* ---- terminated waiters are skipped ----------------------------------------------- */

static struct q_ctx tm_c;
static enum kind tm_kind;

static pc_msg *
terminated_main(void *arg)
{
    struct q_ctx *c = arg;
    enum kind kind = tm_kind;

    start_relays(c);
    make_objects(c, 0);
    shut(c, kind);
    queue_waiter(c, fifo_waiter, 0, kind);
    queue_waiter(c, fifo_waiter, 1, kind);
    TCHECK_RC(pc_task_terminate(c->w[0]), PC_OK);
    TCHECK_RC(pc_task_join(c->w[0], PT_LONG, NULL), PC_EKILLED);
    open_(c, kind, 1); /* to waiter 1, not the dead one */
    TCHECK_RC(pc_task_join(c->w[1], PT_LONG, NULL), PC_OK);
    TCHECK_EQ(atomic_load(&c->pos), 1);
    TCHECK_EQ(c->order[0], 1);
    check_free(c, kind);
    free_objects(c);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

static void
run_terminated(int W, enum kind kind)
{
    memset(&tm_c, 0, sizeof tm_c);
    tm_kind = kind;
    PT_RUN_TASK(W, terminated_main, &tm_c, &tm_c.done, 1);
}

/* A waiter terminated while queued doesn't swallow the hand-off. */
PT_WTEST(terminated_waiter_lock)
static void
terminated_waiter_lock(int W)
{
    run_terminated(W, K_LOCK);
}

PT_WTEST(terminated_waiter_sem)
static void
terminated_waiter_sem(int W)
{
    run_terminated(W, K_SEM);
}

PT_WTEST(terminated_waiter_cond)
static void
terminated_waiter_cond(int W)
{
    run_terminated(W, K_COND);
}

/* ---- light actors: only the try forms ---------------------------------------- */

struct actor_ctx {
    struct q_ctx q;
    pc_ref driver;
    atomic_int handled;
    atomic_int done;
};

static int
sync_actor(void *state, pc_msg *msg)
{
    struct actor_ctx *a = state;
    struct q_ctx *c = &a->q;

    (void)msg;
    TCHECK_RC(pc_lock_acquire(c->lock, 1.0), PC_EPERM);
    TCHECK_RC(pc_lock_acquire(c->lock, -1), PC_EPERM);
    TCHECK_RC(pc_lock_acquire(c->lock, 0), PC_OK);
    TCHECK_RC(pc_lock_acquire(c->lock, 0), PC_ETIMEDOUT);
    TCHECK_RC(pc_lock_release(c->lock), PC_OK);
    TCHECK_RC(pc_sem_acquire(c->sem, 1.0), PC_EPERM);
    TCHECK_RC(pc_sem_acquire(c->sem, 0), PC_OK);
    TCHECK_RC(pc_sem_acquire(c->sem, 0), PC_ETIMEDOUT);
    TCHECK_RC(pc_sem_release(c->sem), PC_OK);
    TCHECK_RC(pc_event_wait(c->ev, 1.0), PC_EPERM);
    TCHECK_RC(pc_event_wait(c->ev, 0), PC_ETIMEDOUT);
    TCHECK_RC(pc_event_set(c->ev), PC_OK);
    TCHECK_RC(pc_event_wait(c->ev, 0), PC_OK);
    TCHECK_RC(pc_event_wait(c->ev, 1.0), PC_EPERM); /* even when set */
    TCHECK_RC(pc_cond_acquire(c->cond, 1.0), PC_EPERM);
    TCHECK_RC(pc_cond_acquire(c->cond, 0), PC_OK);
    TCHECK_RC(pc_cond_acquire(c->cond, 0), PC_OK); /* recursive */
    TCHECK_RC(pc_cond_notify_all(c->cond), PC_OK);
    TCHECK_RC(pc_cond_wait(c->cond, 0), PC_ETIMEDOUT); /* never waits */
    TCHECK_RC(pc_cond_wait(c->cond, 1.0), PC_EPERM);
    TCHECK_RC(pc_cond_release(c->cond), PC_OK);
    TCHECK_RC(pc_cond_release(c->cond), PC_OK);
    atomic_fetch_add(&a->handled, 1);
    TCHECK_RC(pt_send(a->driver, "handled"), PC_OK);
    return PC_ACTOR_STOP;
}

static pc_msg *
actor_main(void *arg)
{
    struct actor_ctx *a = arg;
    pc_spawn_opts o = pt_on(1, PC_TASK_JOINABLE);
    pc_ref r;

    a->driver = pc_self();
    make_objects(&a->q, 1);
    TCHECK_RC(pc_actor_spawn(sync_actor, a, NULL, &o, &r), PC_OK);
    TCHECK_RC(pt_send(r, "go"), PC_OK);
    PT_EXPECT("handled");
    TCHECK_RC(pc_task_join(r, PT_LONG, NULL), PC_OK);
    /* the actor left everything free */
    check_free(&a->q, K_LOCK);
    check_free(&a->q, K_SEM);
    check_free(&a->q, K_COND);
    TCHECK(pc_event_is_set(a->q.ev));
    free_objects(&a->q);
    atomic_fetch_add(&a->done, 1);
    return NULL;
}

/* In a light-actor handler blocking forms return PC_EPERM; tries work. */
PT_WTEST(actor_handler_eperm)
static void
actor_handler_eperm(int W)
{
    struct actor_ctx a;

    memset(&a, 0, sizeof a);
    PT_RUN_TASK(W, actor_main, &a, &a.done, 1);
    CU_ASSERT_EQUAL(atomic_load(&a.handled), 1);
}

/* ---- robust locks: an owner that ends holding a lock ----------------------- */

enum end_how { END_RETURN, END_ERROR, END_KILL, END_HOWS };

static struct q_ctx od_c;
static enum kind od_kind; /* K_LOCK, K_RLOCK, K_CONDLOCK or K_COND */
static atomic_int od_how;

/* The kind the holder takes: a condition's waiter is woken by a holder of
 * its lock. */
static enum kind
held_kind(enum kind kind)
{
    return kind == K_COND ? K_CONDLOCK : kind;
}

/* Takes the lock (a recursive one twice; a condition's notifies its waiter
 * too), says so, and ends as told without releasing it. */
static pc_msg *
dying_holder(void *arg)
{
    struct q_ctx *c = arg;
    enum kind hk = held_kind(od_kind);

    for (int i = 0; i < (hk == K_RLOCK ? 2 : 1); i++)
        TCHECK_RC(op(c, hk, PT_LONG, NULL), PC_OK);
    if (od_kind == K_COND)
        TCHECK_RC(pc_cond_notify_all(c->cond), PC_OK);
    TCHECK_RC(pt_send(c->driver, "held"), PC_OK);
    PT_EXPECT("end"); /* END_KILL: terminated in here */
    if (atomic_load(&od_how) == END_ERROR)
        pc_exit_error("ends holding the lock");
    return NULL;
}

static pc_msg *
recording_waiter(void *arg)
{
    struct q_arg *a = arg;
    struct q_ctx *c = a->c;
    int rc = op(c, a->kind, PT_LONG, a);

    atomic_store(&c->rcs[a->i], rc);
    if (holds(a->kind, rc))
        undo(c, a->kind);
    return NULL;
}

/* The try form of kind's take. */
static int
try_take(struct q_ctx *c, enum kind kind)
{
    if (kind == K_CONDLOCK)
        return pc_cond_acquire(c->cond, 0);
    return pc_lock_acquire(kind == K_RLOCK ? c->rlock : c->lock, 0);
}

/* One round: the holder ends `how`, with or without a waiter queued behind
 * it. False when the lock was not handed on (stop there: it is lost). */
static bool
owner_dies_round(struct q_ctx *c, enum end_how how, bool waiter)
{
    static const int joined[END_HOWS] = {PC_OK, PC_EFAILED, PC_EKILLED};
    enum kind kind = od_kind, hk = held_kind(kind);
    int rc;
    pc_ref h;

    atomic_store(&od_how, how);
    if (waiter && kind == K_COND) /* waits for the notification first */
        queue_waiter(c, recording_waiter, 0, K_COND);
    h = pt_spawn(dying_holder, c, 1, PC_TASK_JOINABLE);
    PT_EXPECT("held");
    if (waiter && kind != K_COND)
        queue_waiter(c, recording_waiter, 0, kind);
    if (how == END_KILL)
        TCHECK_RC(pc_task_terminate(h), PC_OK);
    else
        TCHECK_RC(pt_send(h, "end"), PC_OK);
    TCHECK_RC(pc_task_join(h, PT_LONG, NULL), joined[how]);
    if (waiter) {
        TCHECK_RC(pc_task_join(c->w[0], PT_LONG, NULL), PC_OK);
        rc = atomic_load(&c->rcs[0]);
    } else {
        rc = try_take(c, hk);
        if (holds(hk, rc))
            undo(c, hk);
    }
    TCHECK_RC(rc, PC_EOWNERDEAD);
    if (rc != PC_EOWNERDEAD)
        return false;
    check_free(c, hk); /* and told only once */
    return true;
}

static pc_msg *
owner_dies_main(void *arg)
{
    struct q_ctx *c = arg;
    bool ok = true;

    start_relays(c);
    make_objects(c, 0);
    for (int how = 0; ok && how < END_HOWS; how++)
        for (int waiter = 0; ok && waiter < 2; waiter++)
            ok = owner_dies_round(c, (enum end_how)how, waiter);
    free_objects(c);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

static void
run_owner_dies(int W, enum kind kind)
{
    memset(&od_c, 0, sizeof od_c);
    od_kind = kind;
    PT_RUN_TASK(W, owner_dies_main, &od_c, &od_c.done, 1);
}

/* A task that returns, fails or is terminated holding a lock hands it on:
 * the next owner (a waiter, or a later caller) gets PC_EOWNERDEAD, once. */
PT_WTEST(owner_dies_lock)
static void
owner_dies_lock(int W)
{
    run_owner_dies(W, K_LOCK);
}

/* The same for a recursive lock held two levels deep. */
PT_WTEST(owner_dies_rlock)
static void
owner_dies_rlock(int W)
{
    run_owner_dies(W, K_RLOCK);
}

PT_WTEST(owner_dies_cond_lock)
static void
owner_dies_cond_lock(int W)
{
    run_owner_dies(W, K_CONDLOCK);
}

/* A notified condition waiter whose notifier ends holding the lock gets it
 * back with PC_EOWNERDEAD from pc_cond_wait(). */
PT_WTEST(owner_dies_cond_wait)
static void
owner_dies_cond_wait(int W)
{
    run_owner_dies(W, K_COND);
}

/* ---- robust locks under a supervisor ------------------------------------------ */

struct sup_ctx {
    pc_lock *l;
    pc_ref driver;
    atomic_int runs;
    atomic_int done;
};

/* Run 0 takes the lock and crashes; run 1 recovers it, takes it again and
 * waits to be terminated; run 2 recovers it again. */
static pc_msg *
locking_child(void *arg)
{
    struct sup_ctx *c = arg;
    int run = atomic_fetch_add(&c->runs, 1);
    int rc = pc_lock_acquire(c->l, PT_LONG);
    pc_msg *m = NULL;

    if (run == 0) {
        TCHECK_RC(rc, PC_OK);
        pc_exit_error("crashed holding the lock");
    }
    TCHECK_RC(rc, PC_EOWNERDEAD);
    if (rc != PC_OK && rc != PC_EOWNERDEAD)
        return NULL;
    TCHECK_RC(pc_lock_release(c->l), PC_OK);
    if (run == 1)
        TCHECK_RC(pc_lock_acquire(c->l, PT_LONG), PC_OK);
    TCHECK_RC(pt_send_ref(c->driver, "recovered", pc_self()), PC_OK);
    while (pc_recv(&m, -1) == PC_OK)
        pc_msg_free(&m);
    return NULL;
}

static pc_ref
expect_recovered(void)
{
    pc_msg *m = NULL;
    pc_ref r = PC_REF_NIL;

    TCHECK_RC(pc_recv_type("recovered", &m, PT_LONG), PC_OK);
    if (m)
        r = pt_msg_ref(m);
    pc_msg_free(&m);
    return r;
}

static pc_msg *
sup_lock_main(void *arg)
{
    struct sup_ctx *c = arg;
    pc_sup_opts o = {PC_SUP_ONE_FOR_ONE, 5, 60};
    pc_child_spec spec;
    pc_ref sup, kid;

    c->driver = pc_self();
    TCHECK_RC(pc_lock_new(&c->l, false), PC_OK);
    memset(&spec, 0, sizeof spec);
    spec.name = "locker";
    spec.fn = locking_child;
    spec.arg = c;
    spec.restart = PC_RESTART_PERMANENT;
    spec.opts = pt_on(1, 0);
    TCHECK_RC(pc_supervisor_start(&o, &spec, 1, NULL, &sup), PC_OK);
    kid = expect_recovered(); /* run 1, after the crash of run 0 */
    if (!pc_ref_is_nil(kid)) {
        TCHECK_RC(pc_task_terminate(kid), PC_OK); /* holding it again */
        kid = expect_recovered();                 /* run 2 */
    }
    TCHECK(!pc_ref_is_nil(kid));
    TCHECK_RC(pc_supervisor_stop(sup), PC_OK);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* A supervised child that crashes or is killed holding a lock doesn't
 * deadlock its restarts: the new child gets the lock with PC_EOWNERDEAD. */
PT_WTEST(supervisor_restart_recovers_lock)
static void
supervisor_restart_recovers_lock(int W)
{
    struct sup_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, sup_lock_main, &c, &c.done, 1);
    CU_ASSERT_EQUAL(atomic_load(&c.runs), 3);
    pc_lock_free(&c.l);
}

/* ---- a waiter killed around its hand-off ------------------------------------ */

static struct q_ctx kw_c;
static enum kind kw_kind;

struct spin_ctx {
    atomic_int spinning, go;
};

/* Keeps its worker busy (its inbox unread) until told to stop. */
static pc_msg *
spinner(void *arg)
{
    struct spin_ctx *s = arg;

    atomic_store(&s->spinning, 1);
    while (!atomic_load(&s->go))
        ;
    return NULL;
}

/* Hand the object to waiter 1 (on worker 1) and terminate it, in either
 * order. With two workers, worker 1 is kept busy meanwhile, so both the
 * wake-up and the terminate wait in its inbox: the waiter ends before its
 * wake-up is read, or is woken and then ended before it runs. */
static void
killed_round(struct q_ctx *c, enum kind kind, bool kill_first)
{
    struct spin_ctx s;
    pc_ref sp = PC_REF_NIL;

    memset(&s, 0, sizeof s);
    if (kind == K_SEM && pc_sem_value(c->sem) > 0)
        TCHECK_RC(pc_sem_acquire(c->sem, 0), PC_OK);
    if (kind == K_EVENT)
        TCHECK_RC(pc_event_clear(c->ev), PC_OK);
    shut(c, kind);
    queue_waiter(c, fifo_waiter, 1, kind);
    if (pc_node_workers() > 1) {
        sp = pt_spawn(spinner, &s, 1, PC_TASK_JOINABLE);
        while (!atomic_load(&s.spinning))
            ;
    }
    if (kill_first)
        TCHECK_RC(pc_task_terminate(c->w[1]), PC_OK);
    open_(c, kind, 1);
    if (!kill_first)
        TCHECK_RC(pc_task_terminate(c->w[1]), PC_OK);
    atomic_store(&s.go, 1);
    if (!pc_ref_is_nil(sp))
        TCHECK_RC(pc_task_join(sp, PT_LONG, NULL), PC_OK);
    TCHECK_RC(pc_task_join(c->w[1], PT_LONG, NULL), PC_EKILLED);
    TCHECK_EQ(atomic_load(&c->pos), 0); /* it never ran on */
    check_free(c, kind);                /* nothing lost with it */
}

static pc_msg *
killed_main(void *arg)
{
    struct q_ctx *c = arg;

    start_relays(c);
    make_objects(c, 0);
    killed_round(c, kw_kind, false);
    killed_round(c, kw_kind, true);
    free_objects(c);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

static void
run_killed(int W, enum kind kind)
{
    memset(&kw_c, 0, sizeof kw_c);
    kw_kind = kind;
    PT_RUN_TASK(W, killed_main, &kw_c, &kw_c.done, 1);
}

/* A lock handed to a waiter that is terminated before it runs goes to the
 * next (here: is free again), also when the wake-up crosses workers. */
PT_WTEST(killed_waiter_lock)
static void
killed_waiter_lock(int W)
{
    run_killed(W, K_LOCK);
}

PT_WTEST(killed_waiter_rlock)
static void
killed_waiter_rlock(int W)
{
    run_killed(W, K_RLOCK);
}

/* A semaphore unit handed to it goes back. */
PT_WTEST(killed_waiter_sem)
static void
killed_waiter_sem(int W)
{
    run_killed(W, K_SEM);
}

PT_WTEST(killed_waiter_event)
static void
killed_waiter_event(int W)
{
    run_killed(W, K_EVENT);
}

/* A notified condition waiter handed the lock. */
PT_WTEST(killed_waiter_cond)
static void
killed_waiter_cond(int W)
{
    run_killed(W, K_COND);
}

PT_WTEST(killed_waiter_cond_lock)
static void
killed_waiter_cond_lock(int W)
{
    run_killed(W, K_CONDLOCK);
}

/* ---- timeout 0: take it now or fail at once ----------------------------------- */

struct zero_ctx {
    struct q_ctx q;
    atomic_int got; /* the cond-lock waiter got the lock */
    atomic_int done;
};

/* On worker 1: holds every lock (the sem is at 0, the event clear) until
 * told, then lets go. */
static pc_msg *
zero_holder(void *arg)
{
    struct q_ctx *c = arg;

    TCHECK_RC(pc_lock_acquire(c->lock, PT_LONG), PC_OK);
    TCHECK_RC(pc_lock_acquire(c->rlock, PT_LONG), PC_OK);
    TCHECK_RC(pc_cond_acquire(c->cond, PT_LONG), PC_OK);
    TCHECK_RC(pt_send(c->driver, "held"), PC_OK);
    PT_EXPECT("end");
    TCHECK_RC(pc_lock_release(c->lock), PC_OK);
    TCHECK_RC(pc_lock_release(c->rlock), PC_OK);
    TCHECK_RC(pc_cond_release(c->cond), PC_OK);
    TCHECK_RC(pc_sem_release(c->sem), PC_OK);
    TCHECK_RC(pc_event_set(c->ev), PC_OK);
    return NULL;
}

static pc_msg *
got_waiter(void *arg)
{
    struct q_arg *a = arg;
    struct zero_ctx *z = (struct zero_ctx *)(void *)a->c;

    queued(a);
    TCHECK_RC(pc_cond_acquire(z->q.cond, PT_LONG), PC_OK);
    atomic_store(&z->got, 1);
    TCHECK_RC(pc_cond_release(z->q.cond), PC_OK);
    return NULL;
}

static pc_msg *
zero_main(void *arg)
{
    struct zero_ctx *z = arg;
    struct q_ctx *c = &z->q;
    pc_ref h;

    start_relays(c);
    make_objects(c, 0);
    h = pt_spawn(zero_holder, c, 1, PC_TASK_JOINABLE);
    PT_EXPECT("held");
    TCHECK_RC(pc_lock_acquire(c->lock, 0), PC_ETIMEDOUT);
    TCHECK_RC(pc_lock_acquire(c->rlock, 0), PC_ETIMEDOUT);
    TCHECK_RC(pc_cond_acquire(c->cond, 0), PC_ETIMEDOUT);
    TCHECK_RC(pc_sem_acquire(c->sem, 0), PC_ETIMEDOUT);
    TCHECK_RC(pc_event_wait(c->ev, 0), PC_ETIMEDOUT);
    TCHECK_RC(pt_send(h, "end"), PC_OK);
    TCHECK_RC(pc_task_join(h, PT_LONG, NULL), PC_OK);
    TCHECK_RC(pc_lock_acquire(c->lock, 0), PC_OK);
    TCHECK_RC(pc_lock_acquire(c->rlock, 0), PC_OK);
    TCHECK_RC(pc_cond_acquire(c->cond, 0), PC_OK);
    TCHECK_RC(pc_sem_acquire(c->sem, 0), PC_OK);
    TCHECK_RC(pc_event_wait(c->ev, 0), PC_OK);
    TCHECK_RC(pc_lock_release(c->lock), PC_OK);
    TCHECK_RC(pc_lock_release(c->rlock), PC_OK);
    /* A condition wait of 0 can't be notified: it returns at once and
     * never lets the lock go, although a task on worker 1 waits for it. */
    queue_waiter(c, got_waiter, 1, K_CONDLOCK);
    TCHECK_RC(pc_cond_wait(c->cond, 0), PC_ETIMEDOUT);
    TCHECK_EQ(atomic_load(&z->got), 0);
    TCHECK_RC(pc_cond_release(c->cond), PC_OK); /* still ours */
    TCHECK_RC(pc_task_join(c->w[1], PT_LONG, NULL), PC_OK);
    TCHECK_EQ(atomic_load(&z->got), 1);
    free_objects(c);
    atomic_fetch_add(&z->done, 1);
    return NULL;
}

/* Timeout 0 tries without waiting, against a holder on the other worker;
 * pc_cond_wait(c, 0) keeps the lock. */
PT_WTEST(timeout_zero_tries)
static void
timeout_zero_tries(int W)
{
    struct zero_ctx z;

    memset(&z, 0, sizeof z);
    PT_RUN_TASK(W, zero_main, &z, &z.done, 1);
}

PT_MAIN("sync", PT_WENTRY(fifo_lock), PT_WENTRY(fifo_sem),
        PT_WENTRY(fifo_event), PT_WENTRY(fifo_cond), PT_WENTRY(fifo_cond_lock),
        PT_WENTRY(timeout_lock), PT_WENTRY(timeout_sem),
        PT_WENTRY(timeout_event), PT_WENTRY(timeout_cond),
        PT_WENTRY(timeout_cond_lock), PT_WENTRY(timeout_races_handoff),
        PT_WENTRY(timeout_races_notify), PT_WENTRY(recursive_depth),
        PT_WENTRY(ownership), PT_WENTRY(cond_notify_counts),
        PT_WENTRY(cond_wait_depth), PT_WENTRY(event_and_sem_basics),
        PT_WENTRY(contend_lock), PT_WENTRY(contend_sem),
        PT_WENTRY(contend_cond_lock), PT_WENTRY(foreign_threads_contend),
        PT_WENTRY(foreign_thread_waits), PT_WENTRY(free_wakes_lock),
        PT_WENTRY(free_wakes_sem), PT_WENTRY(free_wakes_event),
        PT_WENTRY(free_wakes_cond), PT_WENTRY(terminated_waiter_lock),
        PT_WENTRY(terminated_waiter_sem), PT_WENTRY(terminated_waiter_cond),
        PT_WENTRY(actor_handler_eperm), PT_WENTRY(owner_dies_lock),
        PT_WENTRY(owner_dies_rlock), PT_WENTRY(owner_dies_cond_lock),
        PT_WENTRY(owner_dies_cond_wait),
        PT_WENTRY(supervisor_restart_recovers_lock),
        PT_WENTRY(killed_waiter_lock), PT_WENTRY(killed_waiter_rlock),
        PT_WENTRY(killed_waiter_sem), PT_WENTRY(killed_waiter_event),
        PT_WENTRY(killed_waiter_cond), PT_WENTRY(killed_waiter_cond_lock),
        PT_WENTRY(timeout_zero_tries))
