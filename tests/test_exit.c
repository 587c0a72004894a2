/* tests/test_exit.c — pc_at_exit() handlers: they run as the ending task or
 * actor (pc_self() is its ref, it can release its own locks), however it
 * ends, also at the node's end; blocking calls in them fail with PC_EPERM
 * instead of blocking or crashing; a lock a handler leaves held is handed
 * on like any dead owner's.
 *
 * As in test_sync, a waiter tells a relay task on its own worker that it is
 * about to block, so when the relay's "queued" reaches the driver the waiter
 * is in the lock's queue.
 */
#include "testutil.h"

enum end_how { END_RETURN, END_ERROR, END_KILL, END_HOWS };

struct x_ctx {
    pc_lock *l, *busy; /* busy: held by the driver while handlers run */
    pc_sem *sem;
    pc_event *ev;
    pc_cond *cond;
    pc_ref driver, relay[2], self, other[2];
    atomic_int how;
    atomic_int ran;     /* handlers that ran */
    atomic_int self_ok; /* ... and saw their own ref in pc_self() */
    atomic_int rel_rc;  /* the handler's pc_lock_release() */
    atomic_int wait_rc; /* the waiter's pc_lock_acquire() */
    atomic_int done;
};

static pc_msg *
relay_task(void *arg)
{
    struct x_ctx *c = arg;
    pc_msg *m;

    while (pc_recv(&m, -1) == PC_OK) {
        pc_msg_free(&m);
        TCHECK_RC(pt_send(c->driver, "queued"), PC_OK);
    }
    return NULL;
}

static void
start_relays(struct x_ctx *c)
{
    c->driver = pc_self();
    for (int k = 0; k < 2; k++)
        c->relay[k] = pt_spawn(relay_task, c, k, PC_TASK_DAEMON);
}

static void
make_objects(struct x_ctx *c)
{
    TCHECK_RC(pc_lock_new(&c->l, false), PC_OK);
    TCHECK_RC(pc_lock_new(&c->busy, false), PC_OK);
    TCHECK_RC(pc_sem_new(&c->sem, 0), PC_OK);
    TCHECK_RC(pc_event_new(&c->ev), PC_OK);
    TCHECK_RC(pc_cond_new(&c->cond), PC_OK);
}

static void
free_objects(struct x_ctx *c)
{
    pc_lock_free(&c->l);
    pc_lock_free(&c->busy);
    pc_sem_free(&c->sem);
    pc_event_free(&c->ev);
    pc_cond_free(&c->cond);
}

/* Waits for c->l on worker 0, after telling the driver through the relay. */
static pc_msg *
lock_waiter(void *arg)
{
    struct x_ctx *c = arg;
    int rc;

    TCHECK_RC(pt_send(c->relay[0], "ready"), PC_OK);
    rc = pc_lock_acquire(c->l, PT_LONG);
    atomic_store(&c->wait_rc, rc);
    if (rc == PC_OK || rc == PC_EOWNERDEAD)
        TCHECK_RC(pc_lock_release(c->l), PC_OK);
    return NULL;
}

static pc_ref
queue_lock_waiter(struct x_ctx *c)
{
    pc_ref r = pt_spawn(lock_waiter, c, 0, PC_TASK_JOINABLE);

    PT_EXPECT("queued");
    return r;
}

/* ---- the handler releases the task's lock --------------------------------- */

static void
release_handler(void *arg)
{
    struct x_ctx *c = arg;

    atomic_fetch_add(&c->ran, 1);
    if (pc_ref_eq(pc_self(), c->self))
        atomic_fetch_add(&c->self_ok, 1);
    atomic_store(&c->rel_rc, pc_lock_release(c->l));
}

static pc_msg *
holder(void *arg)
{
    struct x_ctx *c = arg;

    c->self = pc_self();
    TCHECK_RC(pc_lock_acquire(c->l, PT_LONG), PC_OK);
    TCHECK_RC(pc_at_exit(release_handler, c), PC_OK);
    TCHECK_RC(pt_send(c->driver, "held"), PC_OK);
    PT_EXPECT("end"); /* END_KILL: terminated in here */
    if (atomic_load(&c->how) == END_ERROR)
        pc_exit_error("ends");
    return NULL;
}

static pc_msg *
release_main(void *arg)
{
    struct x_ctx *c = arg;
    static const int joined[END_HOWS] = {PC_OK, PC_EFAILED, PC_EKILLED};

    start_relays(c);
    make_objects(c);
    for (int how = 0; how < END_HOWS; how++) {
        pc_ref h, w;
        atomic_store(&c->how, how);
        h = pt_spawn(holder, c, 1, PC_TASK_JOINABLE);
        PT_EXPECT("held");
        w = queue_lock_waiter(c);
        if (how == END_KILL)
            TCHECK_RC(pc_task_terminate(h), PC_OK);
        else
            TCHECK_RC(pt_send(h, "end"), PC_OK);
        TCHECK_RC(pc_task_join(h, PT_LONG, NULL), joined[how]);
        TCHECK_RC(pc_task_join(w, PT_LONG, NULL), PC_OK);
        TCHECK_EQ(atomic_load(&c->ran), how + 1);
        TCHECK_EQ(atomic_load(&c->self_ok), how + 1);
        TCHECK_RC(atomic_load(&c->rel_rc), PC_OK);
        /* released properly: not an owner's death */
        TCHECK_RC(atomic_load(&c->wait_rc), PC_OK);
        if (atomic_load(&c->wait_rc) != PC_OK)
            break;
        TCHECK_RC(pc_lock_acquire(c->l, 0), PC_OK);
        TCHECK_RC(pc_lock_release(c->l), PC_OK);
    }
    free_objects(c);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* However the task ends, its handler runs as the task (pc_self() is its
 * ref) and releases its lock, so a waiter on the other worker gets it with
 * PC_OK. */
PT_WTEST(handler_releases_lock)
static void
handler_releases_lock(int W)
{
    struct x_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, release_main, &c, &c.done, 1);
}

/* ---- what a handler may not do ----------------------------------------------- */

static void
blocking_handler(void *arg)
{
    struct x_ctx *c = arg;
    pc_msg *m = NULL;
    void *v = NULL;

    atomic_fetch_add(&c->ran, 1);
    if (pc_ref_eq(pc_self(), c->self))
        atomic_fetch_add(&c->self_ok, 1);
    TCHECK_STR(pc_self_name(), "ending");
    TCHECK(!pc_in_task());
    /* joins, on this worker and on the other one, never wait */
    for (int k = 0; k < 2; k++) {
        TCHECK_RC(pc_task_join(c->other[k], 1.0, NULL), PC_EPERM);
        TCHECK_RC(pc_task_join(c->other[k], -1, NULL), PC_EPERM);
        TCHECK_RC(pc_task_join(c->other[k], 0, NULL), PC_EPERM);
    }
    TCHECK_RC(pc_recv(&m, 1.0), PC_EPERM);
    TCHECK_RC(pc_recv(&m, 0), PC_EPERM);
    TCHECK(m == NULL);
    TCHECK_RC(pc_recv_type("x", &m, 1.0), PC_EPERM);
    TCHECK_RC(pc_sleep(0.01), PC_EPERM);
    TCHECK_RC(pc_sleep(0), PC_EPERM);
    TCHECK_RC(pc_yield(), PC_EPERM);
    TCHECK_RC(pc_suspend(1.0, &v), PC_EPERM);
    TCHECK_RC(pc_wait_fd(0, PC_READ, 1.0, NULL), PC_EPERM);
    TCHECK_RC(pc_at_exit(blocking_handler, c), PC_ESTATE);
    /* sync objects: the light-actor rules (timeout 0 only) */
    TCHECK_RC(pc_lock_acquire(c->busy, 1.0), PC_EPERM);
    TCHECK_RC(pc_lock_acquire(c->busy, -1), PC_EPERM);
    TCHECK_RC(pc_lock_acquire(c->busy, 0), PC_ETIMEDOUT);
    TCHECK_RC(pc_lock_acquire(c->l, 1.0), PC_EPERM); /* even when free */
    TCHECK_RC(pc_sem_acquire(c->sem, 1.0), PC_EPERM);
    TCHECK_RC(pc_sem_acquire(c->sem, 0), PC_ETIMEDOUT);
    TCHECK_RC(pc_event_wait(c->ev, 1.0), PC_EPERM);
    TCHECK_RC(pc_event_wait(c->ev, 0), PC_ETIMEDOUT);
    TCHECK_RC(pc_cond_acquire(c->cond, 0), PC_OK);
    TCHECK_RC(pc_cond_wait(c->cond, 1.0), PC_EPERM);
    TCHECK_RC(pc_cond_wait(c->cond, 0), PC_ETIMEDOUT);
    TCHECK_RC(pc_cond_release(c->cond), PC_OK);
    /* non-blocking calls work; mail to itself is dropped (it is ending) */
    TCHECK_RC(pt_send(c->driver, "from handler"), PC_OK);
    TCHECK_RC(pc_msg_new(&m, "self", NULL, 0), PC_OK);
    if (pc_send(pc_self(), &m) != PC_OK)
        pc_msg_free(&m);
    TCHECK(m == NULL);
    pc_task_terminate(pc_self()); /* a no-op: it is ending already */
    /* a lock it takes and keeps is handed on as a dead owner's */
    TCHECK_RC(pc_lock_acquire(c->l, 0), PC_OK);
}

/* Waits forever; the handler tries to join it. */
static pc_msg *
idle_task(void *arg)
{
    pc_msg *m = NULL;

    (void)arg;
    while (pc_recv(&m, -1) == PC_OK) {
        bool quit = pc_msg_is(m, "quit");
        pc_msg_free(&m);
        if (quit)
            break;
    }
    return NULL;
}

static pc_msg *
ending_task(void *arg)
{
    struct x_ctx *c = arg;

    c->self = pc_self();
    TCHECK_RC(pc_at_exit(blocking_handler, c), PC_OK);
    TCHECK_RC(pt_send(c->driver, "armed"), PC_OK);
    PT_EXPECT("end");
    if (atomic_load(&c->how) == END_ERROR)
        pc_exit_error("ends");
    return NULL;
}

static pc_msg *
blocking_main(void *arg)
{
    struct x_ctx *c = arg;

    make_objects(c);
    c->driver = pc_self();
    TCHECK_RC(pc_lock_acquire(c->busy, 0), PC_OK);
    for (int k = 0; k < 2; k++)
        c->other[k] = pt_spawn(idle_task, c, k, PC_TASK_JOINABLE);
    for (int how = 0; how < END_HOWS; how++) {
        pc_spawn_opts o = pt_on(1, PC_TASK_JOINABLE);
        pc_ref t;
        int rc;
        o.name = "ending";
        atomic_store(&c->how, how);
        TCHECK_RC(pc_spawn(ending_task, c, &o, &t), PC_OK);
        PT_EXPECT("armed");
        if (how == END_KILL)
            TCHECK_RC(pc_task_terminate(t), PC_OK);
        else
            TCHECK_RC(pt_send(t, "end"), PC_OK);
        pc_task_join(t, PT_LONG, NULL);
        PT_EXPECT("from handler");
        /* the lock the handler kept: its owner is dead */
        rc = pc_lock_acquire(c->l, 0);
        TCHECK_RC(rc, PC_EOWNERDEAD);
        if (rc == PC_OK || rc == PC_EOWNERDEAD)
            TCHECK_RC(pc_lock_release(c->l), PC_OK);
    }
    TCHECK_EQ(atomic_load(&c->ran), END_HOWS);
    TCHECK_EQ(atomic_load(&c->self_ok), END_HOWS);
    for (int k = 0; k < 2; k++) {
        TCHECK_RC(pt_send(c->other[k], "quit"), PC_OK);
        TCHECK_RC(pc_task_join(c->other[k], PT_LONG, NULL), PC_OK);
    }
    TCHECK_RC(pc_lock_release(c->busy), PC_OK);
    free_objects(c);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* In a handler, blocking calls (join, recv, sleep, yield, suspend, wait_fd,
 * sync waits with a timeout) return PC_EPERM, try forms and sends work. */
PT_WTEST(handler_cannot_block)
static void
handler_cannot_block(int W)
{
    struct x_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, blocking_main, &c, &c.done, 1);
}

/* ---- a light actor's handler ------------------------------------------------ */

static int
locking_actor(void *state, pc_msg *msg)
{
    struct x_ctx *c = state;

    (void)msg;
    c->self = pc_self();
    TCHECK_RC(pc_lock_acquire(c->l, 0), PC_OK);
    TCHECK_RC(pc_at_exit(release_handler, c), PC_OK);
    TCHECK_RC(pt_send(c->driver, "held"), PC_OK);
    return PC_ACTOR_CONTINUE; /* keeps it across messages */
}

static pc_msg *
actor_main(void *arg)
{
    struct x_ctx *c = arg;
    pc_spawn_opts o = pt_on(1, PC_TASK_JOINABLE);
    pc_ref a, w;

    start_relays(c);
    make_objects(c);
    TCHECK_RC(pc_actor_spawn(locking_actor, c, NULL, &o, &a), PC_OK);
    TCHECK_RC(pt_send(a, "take"), PC_OK);
    PT_EXPECT("held");
    w = queue_lock_waiter(c);
    TCHECK_RC(pc_task_terminate(a), PC_OK);
    TCHECK_RC(pc_task_join(a, PT_LONG, NULL), PC_EKILLED);
    TCHECK_RC(pc_task_join(w, PT_LONG, NULL), PC_OK);
    TCHECK_EQ(atomic_load(&c->ran), 1);
    TCHECK_EQ(atomic_load(&c->self_ok), 1);
    TCHECK_RC(atomic_load(&c->rel_rc), PC_OK);
    TCHECK_RC(atomic_load(&c->wait_rc), PC_OK);
    free_objects(c);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* An actor's handler runs as the actor too. */
PT_WTEST(actor_handler_releases_lock)
static void
actor_handler_releases_lock(int W)
{
    struct x_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, actor_main, &c, &c.done, 1);
}

/* ---- a handler of a waiter handed the lock before it ran --------------------- */

static void
inflight_handler(void *arg)
{
    struct x_ctx *c = arg;

    atomic_fetch_add(&c->ran, 1);
    atomic_store(&c->rel_rc, pc_lock_release(c->l)); /* it was handed it */
}

static pc_msg *
inflight_waiter(void *arg)
{
    struct x_ctx *c = arg;

    TCHECK_RC(pc_at_exit(inflight_handler, c), PC_OK);
    TCHECK_RC(pt_send(c->relay[0], "ready"), PC_OK);
    pc_lock_acquire(c->l, PT_LONG);
    TCHECK(!"terminated before it runs again");
    return NULL;
}

static pc_msg *
keeping_waiter(void *arg)
{
    struct x_ctx *c = arg;

    TCHECK_RC(pt_send(c->relay[0], "ready"), PC_OK);
    atomic_store(&c->wait_rc, pc_lock_acquire(c->l, PT_LONG));
    TCHECK_RC(pt_send(c->driver, "got"), PC_OK);
    PT_EXPECT("go");
    TCHECK_RC(pc_lock_release(c->l), PC_OK);
    return NULL;
}

static pc_msg *
inflight_main(void *arg)
{
    struct x_ctx *c = arg;
    pc_ref x, z;

    start_relays(c);
    make_objects(c);
    TCHECK_RC(pc_lock_acquire(c->l, 0), PC_OK);
    x = pt_spawn(inflight_waiter, c, 0, PC_TASK_JOINABLE);
    PT_EXPECT("queued");
    z = pt_spawn(keeping_waiter, c, 0, PC_TASK_JOINABLE);
    PT_EXPECT("queued");
    TCHECK_RC(pc_lock_release(c->l), PC_OK); /* to x, which can't run yet */
    TCHECK_RC(pc_task_terminate(x), PC_OK);
    TCHECK_RC(pc_task_join(x, PT_LONG, NULL), PC_EKILLED);
    TCHECK_EQ(atomic_load(&c->ran), 1);
    TCHECK_RC(atomic_load(&c->rel_rc), PC_OK);
    PT_EXPECT("got");
    TCHECK_RC(atomic_load(&c->wait_rc), PC_OK);
    TCHECK_RC(pc_lock_acquire(c->l, 0), PC_ETIMEDOUT); /* z has it */
    TCHECK_RC(pt_send(z, "go"), PC_OK);
    TCHECK_RC(pc_task_join(z, PT_LONG, NULL), PC_OK);
    TCHECK_RC(pc_lock_acquire(c->l, 0), PC_OK);
    TCHECK_RC(pc_lock_release(c->l), PC_OK);
    free_objects(c);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* A waiter handed the lock and terminated before it ran owns it in its
 * handler, which may release it: the lock goes on once, to the next. */
PT_WTEST(handler_of_handed_waiter)
static void
handler_of_handed_waiter(int W)
{
    struct x_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, inflight_main, &c, &c.done, 1);
}

/* ---- at the node's end ------------------------------------------------------- */

static pc_msg *
daemon_holder(void *arg)
{
    struct x_ctx *c = arg;
    pc_msg *m = NULL;

    c->self = pc_self();
    TCHECK_RC(pc_lock_acquire(c->l, PT_LONG), PC_OK);
    TCHECK_RC(pc_at_exit(release_handler, c), PC_OK);
    atomic_fetch_add(&c->done, 1);
    while (pc_recv(&m, -1) == PC_OK) /* until the node ends it */
        pc_msg_free(&m);
    return NULL;
}

/* A daemon still running when the node ends: pc_node_run() runs its
 * handler, as the daemon. */
PT_WTEST(handler_at_node_end)
static void
handler_at_node_end(int W)
{
    static struct x_ctx c;
    pc_spawn_opts o;

    memset(&c, 0, sizeof c);
    CU_ASSERT_EQUAL(pc_lock_new(&c.l, false), PC_OK);
    PT_START(W);
    o = pt_on(1, PC_TASK_DAEMON);
    CU_ASSERT_EQUAL(pc_spawn(daemon_holder, &c, &o, NULL), PC_OK);
    while (atomic_load(&c.done) == 0) /* it holds the lock */
        sched_yield();
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&c.ran), 1);
    CU_ASSERT_EQUAL(atomic_load(&c.self_ok), 1);
    CU_ASSERT_EQUAL(atomic_load(&c.rel_rc), PC_OK);
    CU_ASSERT_EQUAL(pc_lock_acquire(c.l, 0), PC_OK);
    CU_ASSERT_EQUAL(pc_lock_release(c.l), PC_OK);
    pc_lock_free(&c.l);
}

PT_MAIN("exit", PT_WENTRY(handler_releases_lock),
        PT_WENTRY(handler_cannot_block), PT_WENTRY(actor_handler_releases_lock),
        PT_WENTRY(handler_of_handed_waiter), PT_WENTRY(handler_at_node_end))
