/* tests/test_task.c — tasks: wake rules, timeouts, join, terminate, stale
 * refs, daemons and node life cycle, stacks.
 *
 * Synchronisation is by messages only. One pattern recurs: a task sends
 * "ready" and then blocks without yielding in between. Its worker can't run
 * anything else until it blocks, and a wake-up from another worker is decided
 * on the target's worker (task.h), so whoever receives "ready" knows the task
 * is already in (or committed to) its blocking call.
 *
 * Most tests are run with one worker and with two; "worker 1" below means
 * worker 0 when there is only one (pt_on takes the index modulo W), so with
 * two workers the tasks under test sit on the other worker than the task
 * driving them.
 */
#include <pthread.h>

#include "testutil.h"

/* ---- resume and the wake rules -------------------------------------------- */

struct wake_ctx {
    pc_ref main;
    int token;
    atomic_int phase;
    atomic_int done;
};

static pc_msg *
suspended_task(void *arg)
{
    struct wake_ctx *c = arg;
    void *v = NULL;

    TCHECK_RC(pt_send(c->main, "ready"), PC_OK);
    TCHECK_RC(pc_suspend(-1, &v), PC_OK);
    TCHECK(v == &c->token);
    TCHECK_EQ(atomic_load(&c->phase), 1);

    /* A resume with the value pointer NULL: the value is dropped. */
    TCHECK_RC(pt_send(c->main, "ready"), PC_OK);
    TCHECK_RC(pc_suspend(PT_LONG, NULL), PC_OK);
    return NULL;
}

static pc_msg *
resume_main(void *arg)
{
    struct wake_ctx *c = arg;
    pc_ref a;

    c->main = pc_self();
    a = pt_spawn(suspended_task, c, 1, PC_TASK_JOINABLE);
    PT_EXPECT("ready");
    atomic_store(&c->phase, 1);
    TCHECK_RC(pc_resume(a, &c->token), PC_OK);
    PT_EXPECT("ready");
    TCHECK_RC(pc_resume(a, &c->phase), PC_OK);
    TCHECK_RC(pc_task_join(a, PT_LONG, NULL), PC_OK);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* pc_resume wakes a task in pc_suspend and hands it the value. */
PT_WTEST(resume_wakes_suspend)
static void
resume_wakes_suspend(int W)
{
    struct wake_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, resume_main, &c, &c.done, 1);
}

static pc_msg *
receiving_task(void *arg)
{
    struct wake_ctx *c = arg;
    pc_msg *m = NULL;
    void *v = NULL;

    TCHECK_RC(pt_send(c->main, "ready"), PC_OK);
    TCHECK_RC(pc_recv(&m, PT_LONG), PC_OK);
    /* woken by the message, not by the earlier resume */
    TCHECK(m != NULL && pc_msg_is(m, "go"));
    TCHECK_EQ(atomic_load(&c->phase), 1);
    pc_msg_free(&m);
    /* the resume was dropped, not remembered for a later suspend */
    TCHECK_RC(pc_suspend(0.05, &v), PC_ETIMEDOUT);
    TCHECK_RC(pc_recv(&m, 0), PC_ETIMEDOUT);
    TCHECK(m == NULL);
    return NULL;
}

static pc_msg *
resume_recv_main(void *arg)
{
    struct wake_ctx *c = arg;
    pc_ref a;

    c->main = pc_self();
    a = pt_spawn(receiving_task, c, 1, PC_TASK_JOINABLE);
    PT_EXPECT("ready");
    /* a exists, so PC_OK, but a waits for a message: not woken */
    TCHECK_RC(pc_resume(a, &c->token), PC_OK);
    /* If a had been made runnable, it would run now (same worker). */
    TCHECK_RC(pc_yield(), PC_OK);
    TCHECK_RC(pc_yield(), PC_OK);
    atomic_store(&c->phase, 1);
    TCHECK_RC(pt_send(a, "go"), PC_OK);
    TCHECK_RC(pc_task_join(a, PT_LONG, NULL), PC_OK);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* pc_resume does not wake a task blocked in pc_recv; it gets its message
 * later as usual. */
PT_WTEST(resume_does_not_wake_recv)
static void
resume_does_not_wake_recv(int W)
{
    struct wake_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, resume_recv_main, &c, &c.done, 1);
}

static pc_msg *
suspended_gets_mail(void *arg)
{
    struct wake_ctx *c = arg;
    pc_msg *m = NULL;
    void *v = NULL;

    TCHECK_RC(pt_send(c->main, "ready"), PC_OK);
    TCHECK_RC(pc_suspend(PT_LONG, &v), PC_OK);
    /* woken by the resume, after the message had arrived */
    TCHECK(v == &c->token);
    TCHECK_EQ(atomic_load(&c->phase), 1);
    TCHECK_EQ(pc_mailbox_depth(), 1);
    TCHECK_RC(pc_recv(&m, 0), PC_OK);
    TCHECK(m != NULL && pc_msg_is(m, "data"));
    pc_msg_free(&m);
    TCHECK_EQ(pc_mailbox_depth(), 0);
    return NULL;
}

static pc_msg *
send_suspend_main(void *arg)
{
    struct wake_ctx *c = arg;
    pc_msg *m = NULL;
    pc_ref a;

    c->main = pc_self();
    a = pt_spawn(suspended_gets_mail, c, 1, PC_TASK_JOINABLE);
    PT_EXPECT("ready");
    /* deliver: in a's mailbox when it returns, so a wrong wake-up has
     * happened (or not) by then */
    TCHECK_RC(pc_msg_new(&m, "data", "d", 1), PC_OK);
    TCHECK_RC(pc_deliver(a, &m, PT_LONG), PC_OK);
    TCHECK(m == NULL);
    TCHECK_RC(pc_yield(), PC_OK);
    TCHECK_RC(pc_yield(), PC_OK);
    atomic_store(&c->phase, 1);
    TCHECK_RC(pc_resume(a, &c->token), PC_OK);
    TCHECK_RC(pc_task_join(a, PT_LONG, NULL), PC_OK);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* A message doesn't wake a task in pc_suspend; it finds it with
 * pc_recv(…, 0) once resumed. */
PT_WTEST(send_does_not_wake_suspend)
static void
send_does_not_wake_suspend(int W)
{
    struct wake_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, send_suspend_main, &c, &c.done, 1);
}

/* ---- timeouts --------------------------------------------------------------- */

struct simple_ctx {
    atomic_int done;
};

static pc_msg *
recv_timeout_task(void *arg)
{
    struct simple_ctx *c = arg;
    static int sentinel;
    pc_msg *m = (pc_msg *)(void *)&sentinel;
    double t0 = pc_now();

    TCHECK_RC(pc_recv(&m, 0.05), PC_ETIMEDOUT);
    TCHECK(pt_since(t0) >= 0.045);
    TCHECK(m == NULL);

    /* 0: only look */
    m = (pc_msg *)(void *)&sentinel;
    TCHECK_RC(pc_recv(&m, 0), PC_ETIMEDOUT);
    TCHECK(m == NULL);

    /* a queued message is taken at once, with any timeout */
    TCHECK_RC(pt_send(pc_self(), "self1"), PC_OK);
    TCHECK_RC(pt_send(pc_self(), "self2"), PC_OK);
    TCHECK_EQ(pc_mailbox_depth(), 2);
    TCHECK_RC(pc_recv(&m, 0), PC_OK);
    TCHECK(m != NULL && pc_msg_is(m, "self1"));
    if (m)
        TCHECK(pc_ref_eq(pc_msg_sender(m), pc_self()));
    pc_msg_free(&m);
    /* taken early: the 0.05 s timer of this recv must not fire into the
     * suspend below */
    TCHECK_RC(pc_recv(&m, 0.05), PC_OK);
    TCHECK(m != NULL && pc_msg_is(m, "self2"));
    pc_msg_free(&m);
    TCHECK_EQ(pc_mailbox_depth(), 0);
    t0 = pc_now();
    TCHECK_RC(pc_suspend(0.3, NULL), PC_ETIMEDOUT);
    TCHECK(pt_since(t0) >= 0.29);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(recv_timeout_and_poll)
static void
recv_timeout_and_poll(int W)
{
    struct simple_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, recv_timeout_task, &c, &c.done, 1);
}

static pc_msg *
suspend_sleep_task(void *arg)
{
    struct simple_ctx *c = arg;
    void *v = NULL;
    double t0 = pc_now();

    TCHECK_RC(pc_suspend(0.05, &v), PC_ETIMEDOUT);
    TCHECK(pt_since(t0) >= 0.045);
    TCHECK_RC(pc_suspend(0, &v), PC_ETIMEDOUT);

    t0 = pc_now();
    TCHECK_RC(pc_sleep(0.05), PC_OK);
    TCHECK(pt_since(t0) >= 0.045);
    TCHECK_RC(pc_sleep(0), PC_OK);
    TCHECK_RC(pc_sleep(-1), PC_OK);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* pc_suspend with a timeout returns PC_ETIMEDOUT; pc_sleep returns PC_OK
 * after the full time. */
PT_WTEST(suspend_and_sleep_timeouts)
static void
suspend_and_sleep_timeouts(int W)
{
    struct simple_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, suspend_sleep_task, &c, &c.done, 1);
}

static pc_msg *
sleeper_task(void *arg)
{
    struct wake_ctx *c = arg;
    double t0;

    TCHECK_RC(pt_send(c->main, "ready"), PC_OK);
    TCHECK_RC(pc_sleep(60), PC_EINTR);
    /* nothing left over from the interrupted sleep */
    t0 = pc_now();
    TCHECK_RC(pc_sleep(0.05), PC_OK);
    TCHECK(pt_since(t0) >= 0.045);
    return NULL;
}

static pc_msg *
sleep_intr_main(void *arg)
{
    struct wake_ctx *c = arg;
    pc_ref a;

    c->main = pc_self();
    a = pt_spawn(sleeper_task, c, 1, PC_TASK_JOINABLE);
    PT_EXPECT("ready");
    TCHECK_RC(pc_resume(a, &c->token), PC_OK);
    TCHECK_RC(pc_task_join(a, 2 * PT_LONG, NULL), PC_OK);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* pc_sleep returns PC_EINTR when resumed early. */
PT_WTEST(sleep_interrupted)
static void
sleep_interrupted(int W)
{
    struct wake_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, sleep_intr_main, &c, &c.done, 1);
}

/* ---- yield ------------------------------------------------------------------ */

#define YIELDS 20

struct yield_ctx {
    atomic_int n;
    char log[2 * YIELDS + 8];
    atomic_int done;
};

struct yield_arg {
    struct yield_ctx *c;
    char id;
};

static pc_msg *
yielder(void *arg)
{
    struct yield_arg *a = arg;

    for (int i = 0; i < YIELDS; i++) {
        int k = atomic_fetch_add(&a->c->n, 1);
        if (k < (int)sizeof a->c->log)
            a->c->log[k] = a->id;
        TCHECK_RC(pc_yield(), PC_OK);
    }
    return NULL;
}

static pc_msg *
yield_main(void *arg)
{
    struct yield_ctx *c = arg;
    struct yield_arg aa = {c, 'A'}, ab = {c, 'B'};
    pc_ref a, b;

    /* both on this worker, both runnable before this task blocks */
    a = pt_spawn(yielder, &aa, PT_SELF, PC_TASK_JOINABLE);
    b = pt_spawn(yielder, &ab, PT_SELF, PC_TASK_JOINABLE);
    TCHECK_RC(pc_task_join(a, PT_LONG, NULL), PC_OK);
    TCHECK_RC(pc_task_join(b, PT_LONG, NULL), PC_OK);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* Two tasks that yield in a loop on one worker alternate strictly. */
PT_WTEST(yield_interleaves)
static void
yield_interleaves(int W)
{
    struct yield_ctx c;

    memset(&c, 0, sizeof c);
    PT_START(W);
    pc_spawn_opts o = pt_on(1, 0); /* the driver on the yielders' worker */
    CU_ASSERT_EQUAL(pc_spawn(yield_main, &c, &o, NULL), PC_OK);
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&c.done), 1);
    CU_ASSERT_EQUAL_FATAL(atomic_load(&c.n), 2 * YIELDS);
    for (int i = 1; i < 2 * YIELDS; i++)
        CU_ASSERT(c.log[i] != c.log[i - 1]);
}

/* ---- exit values and join --------------------------------------------------- */

struct join_ctx {
    pc_ref main;
    pc_ref target;
    atomic_int after; /* code that must never run */
    atomic_int ran;
    atomic_int done;
};

static void
exit_inner(void)
{
    pc_msg *m = NULL;

    if (pc_msg_new_str(&m, "exit.value", "from deep") != PC_OK)
        m = NULL;
    pc_exit(m);
}

/* A few frames deep, so pc_exit has a stack to abandon. */
__attribute__((noinline)) static void
exit_middle(volatile int *depth)
{
    char pad[256];

    memset(pad, 1, sizeof pad);
    __asm__ volatile("" : : "r"(pad) : "memory");
    (*depth)++;
    exit_inner();
}

__attribute__((noinline)) static void
exit_outer(volatile int *depth)
{
    (*depth)++;
    exit_middle(depth);
}

static pc_msg *
exiting_task(void *arg)
{
    struct join_ctx *c = arg;

    volatile int depth = 0;

    exit_outer(&depth);
    atomic_fetch_add(&c->after, 1);
    return NULL;
}

static pc_msg *
returning_task(void *arg)
{
    pc_msg *m = NULL;

    (void)arg;
    TCHECK_RC(pc_msg_new_str(&m, "ret.value", "returned"), PC_OK);
    return m;
}

static pc_msg *
null_task(void *arg)
{
    (void)arg;
    return NULL;
}

static pc_msg *
exit_null_task(void *arg)
{
    struct join_ctx *c = arg;

    pc_exit(NULL);
    atomic_fetch_add(&c->after, 1);
    return NULL;
}

static pc_msg *
exit_main(void *arg)
{
    struct join_ctx *c = arg;
    pc_ref a, b, n, e, f;
    pc_msg *v = NULL;

    a = pt_spawn(exiting_task, c, 1, PC_TASK_JOINABLE);
    b = pt_spawn(returning_task, c, 1, PC_TASK_JOINABLE);
    n = pt_spawn(null_task, c, 1, PC_TASK_JOINABLE);
    e = pt_spawn(exit_null_task, c, 1, PC_TASK_JOINABLE);
    f = pt_spawn(returning_task, c, 1, PC_TASK_JOINABLE);

    TCHECK_RC(pc_task_join(a, PT_LONG, &v), PC_OK);
    TCHECK(v != NULL);
    if (v) {
        TCHECK_STR(pc_msg_type(v), "exit.value");
        TCHECK_STR(pc_msg_str(v), "from deep");
        TCHECK(pc_ref_eq(pc_msg_sender(v), a));
    }
    pc_msg_free(&v);

    TCHECK_RC(pc_task_join(b, PT_LONG, &v), PC_OK);
    TCHECK(v != NULL && pc_msg_is(v, "ret.value"));
    if (v)
        TCHECK(pc_ref_eq(pc_msg_sender(v), b));
    pc_msg_free(&v);

    v = (pc_msg *)(void *)c; /* must be overwritten with NULL */
    TCHECK_RC(pc_task_join(n, PT_LONG, &v), PC_OK);
    TCHECK(v == NULL);
    v = (pc_msg *)(void *)c;
    TCHECK_RC(pc_task_join(e, PT_LONG, &v), PC_OK);
    TCHECK(v == NULL);
    /* value pointer NULL: the runtime frees the value (LSan checks) */
    TCHECK_RC(pc_task_join(f, PT_LONG, NULL), PC_OK);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* pc_exit with a value from a nested call, return values, NULL values. */
PT_WTEST(exit_values)
static void
exit_values(int W)
{
    struct join_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, exit_main, &c, &c.done, 1);
    CU_ASSERT_EQUAL(atomic_load(&c.after), 0);
}

static pc_msg *
ends_after_done(void *arg)
{
    struct join_ctx *c = arg;
    pc_msg *m = NULL;

    TCHECK_RC(pt_send(c->main, "done"), PC_OK);
    TCHECK_RC(pc_msg_new_str(&m, "late.value", "kept"), PC_OK);
    return m;
}

static pc_msg *
join_ended_main(void *arg)
{
    struct join_ctx *c = arg;
    pc_msg *v = NULL;
    pc_ref a;
    long spins = 0;

    c->main = pc_self();
    a = pt_spawn(ends_after_done, c, 1, PC_TASK_JOINABLE);
    PT_EXPECT("done");
    /* it returns right after sending; let it finish (bounded) */
    while (pc_alive(a) && spins++ < 1000000)
        pc_yield();
    TCHECK(!pc_alive(a));
    TCHECK_RC(pc_task_join(a, PT_LONG, &v), PC_OK);
    TCHECK(v != NULL && pc_msg_is(v, "late.value"));
    pc_msg_free(&v);
    /* the value went to the first join; the ref is stale now */
    TCHECK_RC(pc_task_join(a, 0.05, &v), PC_ENOENT);
    TCHECK(v == NULL);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* A PC_TASK_JOINABLE task that already ended keeps its value for one join. */
PT_WTEST(join_ended_joinable)
static void
join_ended_joinable(int W)
{
    struct join_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, join_ended_main, &c, &c.done, 1);
}

static pc_msg *
join_running_main(void *arg)
{
    struct join_ctx *c = arg;
    pc_msg *v = NULL;
    pc_ref a;

    /* a is on this worker and can't run before this task blocks in join */
    a = pt_spawn(returning_task, c, PT_SELF, 0);
    TCHECK(pc_alive(a));
    TCHECK_RC(pc_task_join(a, PT_LONG, &v), PC_OK);
    TCHECK(v != NULL && pc_msg_is(v, "ret.value"));
    pc_msg_free(&v);
    TCHECK(!pc_alive(a));
    TCHECK_RC(pc_task_join(a, 0, &v), PC_ENOENT);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* A task without PC_TASK_JOINABLE can be joined while it runs. */
PT_WTEST(join_running_nonjoinable)
static void
join_running_nonjoinable(int W)
{
    struct join_ctx c;

    memset(&c, 0, sizeof c);
    PT_START(W);
    pc_spawn_opts o = pt_on(1, 0);
    CU_ASSERT_EQUAL(pc_spawn(join_running_main, &c, &o, NULL), PC_OK);
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&c.done), 1);
}

static pc_msg *
go_sender(void *arg)
{
    struct join_ctx *c = arg;

    TCHECK_RC(pt_send(c->target, "go"), PC_OK);
    return NULL;
}

static pc_msg *waits_for_go(void *arg);

#define JOIN_ROUNDS 200

static pc_msg *
join_then_stale_main(void *arg)
{
    struct join_ctx *c = arg;
    int ok = 0;

    for (int i = 0; i < JOIN_ROUNDS; i++) {
        pc_msg *v = NULL;
        pc_ref a = pt_spawn(waits_for_go, c, 1, 0);
        int rc;

        c->target = a;
        pt_spawn(go_sender, c, PT_SELF, 0); /* runs once the join blocks */
        rc = pc_task_join(a, PT_LONG, &v);
        /* not joinable: the join may arrive after the end (PC_ENOENT) */
        TCHECK(rc == PC_OK || rc == PC_ENOENT);
        if (rc == PC_OK) {
            ok++;
            /* it has ended, so its ref is stale from now on */
            TCHECK(!pc_alive(a));
            TCHECK_RC(pc_task_terminate(a), PC_ENOENT);
            TCHECK_RC(pc_task_join(a, 0, NULL), PC_ENOENT);
        }
        pc_msg_free(&v);
    }
    TCHECK(ok > 0);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* Once pc_task_join has returned, the ref is stale at once, also when the
 * task ended on another worker. */
PT_WTEST(join_then_stale)
static void
join_then_stale(int W)
{
    struct join_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, join_then_stale_main, &c, &c.done, 1);
    CU_ASSERT_EQUAL(atomic_load(&c.ran), JOIN_ROUNDS);
}

static pc_msg *
waits_for_go(void *arg)
{
    struct join_ctx *c = arg;

    PT_EXPECT("go");
    atomic_fetch_add(&c->ran, 1);
    return NULL;
}

static pc_msg *
join_timeout_main(void *arg)
{
    struct join_ctx *c = arg;
    pc_msg *v = (pc_msg *)(void *)c;
    pc_ref a;
    double t0 = pc_now();

    a = pt_spawn(waits_for_go, c, 1, PC_TASK_JOINABLE);
    TCHECK_RC(pc_task_join(a, 0.05, &v), PC_ETIMEDOUT);
    TCHECK(pt_since(t0) >= 0.045);
    TCHECK(v == NULL);
    TCHECK_RC(pc_task_join(a, 0, NULL), PC_ETIMEDOUT);
    TCHECK(pc_alive(a));
    TCHECK_RC(pt_send(a, "go"), PC_OK);
    /* a ends meanwhile; the timed-out joins must not wake this suspend */
    TCHECK_RC(pc_suspend(0.2, NULL), PC_ETIMEDOUT);
    TCHECK_RC(pc_task_join(a, PT_LONG, &v), PC_OK);
    TCHECK(v == NULL);
    TCHECK_EQ(atomic_load(&c->ran), 1);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(join_timeout)
static void
join_timeout(int W)
{
    struct join_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, join_timeout_main, &c, &c.done, 1);
}

static pc_msg *
join_self_task(void *arg)
{
    struct join_ctx *c = arg;
    pc_msg *v = NULL;

    TCHECK_RC(pc_task_join(pc_self(), -1, &v), PC_EINVAL);
    TCHECK_RC(pc_task_join(pc_self(), 0.01, NULL), PC_EINVAL);
    TCHECK(v == NULL);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(join_self)
static void
join_self(int W)
{
    struct join_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, join_self_task, &c, &c.done, 1);
}

static pc_msg *
blocked_forever(void *arg)
{
    struct join_ctx *c = arg;
    pc_msg *m = NULL;

    TCHECK_RC(pt_send(c->main, "ready"), PC_OK);
    pc_recv(&m, -1);
    pc_msg_free(&m);
    atomic_fetch_add(&c->after, 1);
    return NULL;
}

static pc_msg *
killer_task(void *arg)
{
    struct join_ctx *c = arg;

    TCHECK_RC(pc_task_terminate(c->target), PC_OK);
    return NULL;
}

static pc_msg *
join_killed_main(void *arg)
{
    struct join_ctx *c = arg;
    pc_msg *v = (pc_msg *)(void *)c;
    pc_ref a, b;

    c->main = pc_self();
    /* joinable, terminated before the join */
    a = pt_spawn(blocked_forever, c, 1, PC_TASK_JOINABLE);
    PT_EXPECT("ready");
    TCHECK_RC(pc_task_terminate(a), PC_OK);
    TCHECK_RC(pc_task_join(a, PT_LONG, &v), PC_EKILLED);
    TCHECK(v == NULL);
    TCHECK(!pc_alive(a));
    TCHECK_RC(pc_task_terminate(a), PC_ENOENT);
    TCHECK_RC(pc_task_join(a, 0, NULL), PC_ENOENT);

    /* not joinable, terminated by a third task while joined: b and the
     * killer are on this worker and run only once the join blocks */
    b = pt_spawn(blocked_forever, c, PT_SELF, 0);
    c->target = b;
    pt_spawn(killer_task, c, PT_SELF, 0);
    v = (pc_msg *)(void *)c;
    TCHECK_RC(pc_task_join(b, PT_LONG, &v), PC_EKILLED);
    TCHECK(v == NULL);
    PT_EXPECT("ready"); /* b did run up to its recv */
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* Joining a terminated task gives PC_EKILLED. */
PT_WTEST(join_terminated)
static void
join_terminated(int W)
{
    struct join_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, join_killed_main, &c, &c.done, 1);
    CU_ASSERT_EQUAL(atomic_load(&c.after), 0);
}

/* ---- terminate -------------------------------------------------------------- */

struct term_ctx {
    pc_ref main;
    atomic_int after;  /* code after a blocking call that must never run */
    atomic_int unborn; /* a task terminated before it first ran */
    atomic_int done;
};

static pc_msg *
t_recv(void *arg)
{
    struct term_ctx *c = arg;
    pc_msg *m = NULL;

    TCHECK_RC(pt_send(c->main, "ready"), PC_OK);
    pc_recv(&m, -1);
    pc_msg_free(&m);
    atomic_fetch_add(&c->after, 1);
    return NULL;
}

static pc_msg *
t_recv_timeout(void *arg)
{
    struct term_ctx *c = arg;
    pc_msg *m = NULL;

    TCHECK_RC(pt_send(c->main, "ready"), PC_OK);
    pc_recv(&m, 60);
    pc_msg_free(&m);
    atomic_fetch_add(&c->after, 1);
    return NULL;
}

static pc_msg *
t_sleep(void *arg)
{
    struct term_ctx *c = arg;

    TCHECK_RC(pt_send(c->main, "ready"), PC_OK);
    pc_sleep(60);
    atomic_fetch_add(&c->after, 1);
    return NULL;
}

static pc_msg *
t_suspend(void *arg)
{
    struct term_ctx *c = arg;

    TCHECK_RC(pt_send(c->main, "ready"), PC_OK);
    pc_suspend(-1, NULL);
    atomic_fetch_add(&c->after, 1);
    return NULL;
}

static pc_msg *
t_unborn(void *arg)
{
    struct term_ctx *c = arg;

    atomic_fetch_add(&c->unborn, 1);
    return NULL;
}

static pc_msg *
terminate_main(void *arg)
{
    struct term_ctx *c = arg;
    pc_task_fn fns[] = {t_recv, t_recv_timeout, t_sleep, t_suspend};
    enum { N = sizeof fns / sizeof fns[0] };
    pc_ref r[N], u;
    pc_msg *v;

    c->main = pc_self();
    for (int i = 0; i < N; i++)
        r[i] = pt_spawn(fns[i], c, 1, PC_TASK_JOINABLE);
    for (int i = 0; i < N; i++)
        PT_EXPECT("ready");
    /* mail queued in the suspended one is freed with it (LSan) */
    for (int i = 0; i < 5; i++)
        TCHECK_RC(pt_send(r[3], "queued"), PC_OK);
    for (int i = 0; i < N; i++)
        TCHECK_RC(pc_task_terminate(r[i]), PC_OK);
    for (int i = 0; i < N; i++) {
        v = (pc_msg *)(void *)c;
        TCHECK_RC(pc_task_join(r[i], PT_LONG, &v), PC_EKILLED);
        TCHECK(v == NULL);
        TCHECK(!pc_alive(r[i]));
        TCHECK_RC(pc_task_terminate(r[i]), PC_ENOENT);
        TCHECK_RC(pt_send(r[i], "late"), PC_ENOENT);
    }

    /* spawned on this worker and terminated before it ever ran */
    u = pt_spawn(t_unborn, c, PT_SELF, PC_TASK_JOINABLE);
    TCHECK_RC(pc_task_terminate(u), PC_OK);
    TCHECK_RC(pc_task_join(u, PT_LONG, NULL), PC_EKILLED);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* pc_task_terminate of tasks blocked in recv, recv with timeout, sleep and
 * suspend: they run no more code, joiners get PC_EKILLED, refs go stale. */
PT_WTEST(terminate_blocked)
static void
terminate_blocked(int W)
{
    struct term_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, terminate_main, &c, &c.done, 1);
    CU_ASSERT_EQUAL(atomic_load(&c.after), 0);
    CU_ASSERT_EQUAL(atomic_load(&c.unborn), 0);
}

/* ---- stale, nil and foreign refs ------------------------------------------- */

#define REUSE_TASKS 300

struct stale_ctx {
    pc_ref main;
    atomic_int wrong_first; /* a new task got mail meant for a stale ref */
    atomic_int reused_a;    /* a new task took a's slot */
    atomic_int reused_b;    /* ... b's slot */
    atomic_int done;
};

/* Every operation on a ref that names no live task of this node. */
static void
check_dead_ref(pc_ref r, pc_err want)
{
    pc_msg *m = NULL;

    TCHECK(!pc_alive(r));
    TCHECK_RC(pc_msg_new(&m, "stale", NULL, 0), PC_OK);
    TCHECK_RC(pc_send(r, &m), want);
    TCHECK(m != NULL); /* on error the caller keeps it */
    pc_msg_free(&m);
    TCHECK_RC(pc_send_data(r, "stale", "x", 1), want);
    if (want != PC_ENOENT) {
        /* resume/terminate/join on another node's ref: not specified
         * beyond "not PC_OK" */
        TCHECK(pc_resume(r, NULL) != PC_OK);
        TCHECK(pc_task_terminate(r) != PC_OK);
        return;
    }
    TCHECK_RC(pc_resume(r, NULL), PC_ENOENT);
    TCHECK_RC(pc_task_terminate(r), PC_ENOENT);
    TCHECK_RC(pc_task_join(r, 0.01, NULL), PC_ENOENT);
    TCHECK_RC(pc_task_join(r, -1, NULL), PC_ENOENT);
    TCHECK_RC(pc_msg_new(&m, "stale", NULL, 0), PC_OK);
    TCHECK_RC(pc_deliver(r, &m, PT_LONG), PC_ENOENT);
    pc_msg_free(&m); /* kept or freed: both allowed */
}

static pc_msg *
first_must_be_end(void *arg)
{
    struct stale_ctx *c = arg;
    pc_msg *m = NULL;

    TCHECK_RC(pt_send(c->main, "ready"), PC_OK);
    TCHECK_RC(pc_recv(&m, PT_LONG), PC_OK);
    if (m && !pc_msg_is(m, "end"))
        atomic_fetch_add(&c->wrong_first, 1);
    pc_msg_free(&m);
    return NULL;
}

/* Free slots are kept per worker, so new tasks reuse b's slot (b ended on
 * worker 1) only when spawned there: this task spawns them on its own
 * worker and reports their refs. */
static pc_msg *
spawner_there(void *arg)
{
    struct stale_ctx *c = arg;

    for (int i = 0; i < REUSE_TASKS; i++)
        TCHECK_RC(pt_send_ref(c->main, "live",
                              pt_spawn(first_must_be_end, c, PT_SELF,
                                       PC_TASK_JOINABLE)),
                  PC_OK);
    return NULL;
}

static pc_msg *
stale_main(void *arg)
{
    struct stale_ctx *c = arg;
    pc_ref a, b, live[2 * REUSE_TASKS], g;
    uint64_t node = pc_node_id();
    int nlive = 0, nready = 0;

    c->main = pc_self();
    /* a ends on this worker, b on worker 1 (the other one, if any) */
    a = pt_spawn(null_task, c, PT_SELF, PC_TASK_JOINABLE);
    b = pt_spawn(null_task, c, 1, PC_TASK_JOINABLE);
    TCHECK_EQ(a.node, node);
    TCHECK_RC(pc_task_join(a, PT_LONG, NULL), PC_OK);
    TCHECK_RC(pc_task_join(b, PT_LONG, NULL), PC_OK);
    check_dead_ref(a, PC_ENOENT);
    check_dead_ref(b, PC_ENOENT);

    /* Fill the slots again with live tasks, on both workers. None may get
     * what is sent to the stale refs. */
    for (int i = 0; i < REUSE_TASKS; i++)
        live[nlive++] =
            pt_spawn(first_must_be_end, c, PT_SELF, PC_TASK_JOINABLE);
    pt_spawn(spawner_there, c, 1, 0);
    while (nlive < 2 * REUSE_TASKS || nready < 2 * REUSE_TASKS) {
        pc_msg *m = NULL;
        if (pc_recv(&m, PT_LONG) != PC_OK || !m) {
            TCHECK(!"lost a live/ready message");
            break;
        }
        if (pc_msg_is(m, "live") && nlive < 2 * REUSE_TASKS)
            live[nlive++] = pt_msg_ref(m);
        else if (pc_msg_is(m, "ready"))
            nready++;
        else
            TCHECK(!"unexpected message");
        pc_msg_free(&m);
    }
    for (int i = 0; i < nlive; i++) {
        if ((uint32_t)live[i].id == (uint32_t)a.id)
            atomic_store(&c->reused_a, 1);
        if ((uint32_t)live[i].id == (uint32_t)b.id)
            atomic_store(&c->reused_b, 1);
        TCHECK(!pc_ref_eq(live[i], a));
        TCHECK(!pc_ref_eq(live[i], b));
    }
    check_dead_ref(a, PC_ENOENT);
    check_dead_ref(b, PC_ENOENT);

    /* forged refs: another generation of a live slot, slots never used */
    g = live[0];
    g.id += 1ull << 32;
    check_dead_ref(g, PC_ENOENT);
    g = live[nlive - 1];
    g.id -= 1ull << 32;
    check_dead_ref(g, PC_ENOENT);
    g.id = (0x7ull << 32) | 0x7ffffff0u;
    check_dead_ref(g, PC_ENOENT);
    g.id = 0xffffffffffffffffull;
    check_dead_ref(g, PC_ENOENT);

    /* nil */
    check_dead_ref(PC_REF_NIL, PC_ENOENT);

    /* a live task's id under another node id: unreachable */
    g = live[1];
    g.node = node + 1;
    check_dead_ref(g, PC_EUNREACH);
    g.node = node ^ 0x8000000000000000ull;
    check_dead_ref(g, PC_EUNREACH);

    for (int i = 0; i < nlive; i++) {
        TCHECK(pc_alive(live[i]));
        TCHECK_RC(pt_send(live[i], "end"), PC_OK);
    }
    for (int i = 0; i < nlive; i++)
        TCHECK_RC(pc_task_join(live[i], PT_LONG, NULL), PC_OK);
    for (int i = 0; i < nlive; i += 17)
        check_dead_ref(live[i], PC_ENOENT);
    check_dead_ref(a, PC_ENOENT);
    check_dead_ref(b, PC_ENOENT);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* Stale refs give PC_ENOENT (also after their slot was reused), the nil ref
 * too, and refs of another node PC_EUNREACH. */
PT_WTEST(stale_refs)
static void
stale_refs(int W)
{
    struct stale_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, stale_main, &c, &c.done, 1);
    CU_ASSERT_EQUAL(atomic_load(&c.wrong_first), 0);
    /* free slots are reused last-in first-out on the worker that freed
     * them, so the live tasks took a's and b's slots: the stale checks
     * above ran against reused slots */
    CU_ASSERT_EQUAL(atomic_load(&c.reused_a), 1);
    CU_ASSERT_EQUAL(atomic_load(&c.reused_b), 1);
}

/* From the main thread, with no node and with one. */
PT_TEST(stale_refs_main_thread)
static void
stale_refs_main_thread(void)
{
    pc_ref r = PC_REF_NIL;
    pc_msg *m = NULL;

    pc_spawn_opts jo = {0};

    jo.flags = PC_TASK_JOINABLE; /* it may end before the join arrives */
    PT_START(1);
    CU_ASSERT_EQUAL(pc_spawn(null_task, NULL, &jo, &r), PC_OK);
    CU_ASSERT_EQUAL(pc_task_join(r, PT_LONG, NULL), PC_OK);
    CU_ASSERT(!pc_alive(r));
    CU_ASSERT_EQUAL(pc_send_data(r, "x", NULL, 0), PC_ENOENT);
    CU_ASSERT_EQUAL(pc_resume(r, NULL), PC_ENOENT);
    CU_ASSERT_EQUAL(pc_task_terminate(r), PC_ENOENT);
    CU_ASSERT_EQUAL(pc_task_join(r, 0.01, NULL), PC_ENOENT);
    CU_ASSERT_EQUAL_FATAL(pc_msg_new(&m, "x", NULL, 0), PC_OK);
    CU_ASSERT_EQUAL(pc_send(PC_REF_NIL, &m), PC_ENOENT);
    CU_ASSERT_PTR_NOT_NULL(m);
    pc_msg_free(&m);
    CU_ASSERT(!pc_alive(PC_REF_NIL));
    PT_RUN();
}

/* ---- daemons and the node's end -------------------------------------------- */

struct daemon_ctx {
    pc_ref a;
    atomic_int d_started, d_after; /* spawned with PC_TASK_DAEMON */
    atomic_int s_started, s_after; /* became one by pc_set_daemon(true) */
    atomic_int u_finished;         /* daemon that un-daemoned itself */
    atomic_int a_done;
};

static pc_msg *
daemon_flagged(void *arg)
{
    struct daemon_ctx *c = arg;
    pc_msg *m = NULL;

    atomic_store(&c->d_started, 1);
    TCHECK_RC(pt_send(c->a, "ready"), PC_OK);
    pc_recv(&m, -1);
    pc_msg_free(&m);
    atomic_store(&c->d_after, 1);
    return NULL;
}

static pc_msg *
daemon_by_call(void *arg)
{
    struct daemon_ctx *c = arg;

    TCHECK_RC(pc_set_daemon(true), PC_OK);
    atomic_store(&c->s_started, 1);
    TCHECK_RC(pt_send(c->a, "ready"), PC_OK);
    pc_suspend(-1, NULL);
    atomic_store(&c->s_after, 1);
    return NULL;
}

static pc_msg *
undaemoned(void *arg)
{
    struct daemon_ctx *c = arg;

    TCHECK_RC(pc_set_daemon(false), PC_OK);
    TCHECK_RC(pt_send(c->a, "ready"), PC_OK);
    /* the node must wait for this one now */
    TCHECK_RC(pc_sleep(0.1), PC_OK);
    atomic_store(&c->u_finished, 1);
    return NULL;
}

static pc_msg *
non_daemon(void *arg)
{
    struct daemon_ctx *c = arg;

    for (int i = 0; i < 3; i++)
        PT_EXPECT("ready");
    atomic_store(&c->a_done, 1);
    return NULL;
}

/* pc_node_run returns when the non-daemon tasks are done, while daemons
 * still wait; it terminates them. pc_set_daemon works from the task. */
PT_WTEST(daemon_finish)
static void
daemon_finish(int W)
{
    struct daemon_ctx c;
    pc_spawn_opts o;

    memset(&c, 0, sizeof c);
    PT_START(W);
    o = pt_on(0, 0);
    CU_ASSERT_EQUAL_FATAL(pc_spawn(non_daemon, &c, &o, &c.a), PC_OK);
    o = pt_on(1, PC_TASK_DAEMON);
    CU_ASSERT_EQUAL(pc_spawn(daemon_flagged, &c, &o, NULL), PC_OK);
    o = pt_on(1, 0);
    CU_ASSERT_EQUAL(pc_spawn(daemon_by_call, &c, &o, NULL), PC_OK);
    o = pt_on(1, PC_TASK_DAEMON);
    CU_ASSERT_EQUAL(pc_spawn(undaemoned, &c, &o, NULL), PC_OK);
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&c.a_done), 1);
    CU_ASSERT_EQUAL(atomic_load(&c.d_started), 1);
    CU_ASSERT_EQUAL(atomic_load(&c.d_after), 0);
    CU_ASSERT_EQUAL(atomic_load(&c.s_started), 1);
    CU_ASSERT_EQUAL(atomic_load(&c.s_after), 0);
    CU_ASSERT_EQUAL(atomic_load(&c.u_finished), 1);
}

static pc_msg *
lone_daemon(void *arg)
{
    pc_msg *m = NULL;

    atomic_store((atomic_int *)arg, 1);
    pc_recv(&m, -1);
    pc_msg_free(&m);
    atomic_store((atomic_int *)arg, 2);
    return NULL;
}

/* A node with no tasks, and one with only a daemon, end at once. */
PT_WTEST(node_empty_and_daemon_only)
static void
node_empty_and_daemon_only(int W)
{
    atomic_int state = 0;
    pc_spawn_opts o;

    PT_START(W);
    PT_RUN();

    PT_START(W);
    o = pt_on(1, PC_TASK_DAEMON);
    CU_ASSERT_EQUAL(pc_spawn(lone_daemon, &state, &o, NULL), PC_OK);
    PT_RUN();
    CU_ASSERT(atomic_load(&state) != 2);
}

struct stop_ctx {
    pc_ref stopper;
    atomic_int after;
    atomic_int stop_returned;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int flag;
};

static pc_msg *
stop_waiter(void *arg)
{
    struct stop_ctx *c = arg;
    pc_msg *m = NULL;

    TCHECK_RC(pt_send(c->stopper, "ready"), PC_OK);
    pc_recv(&m, -1);
    pc_msg_free(&m);
    atomic_store(&c->after, 1);
    return NULL;
}

static pc_msg *
stop_sleeper(void *arg)
{
    struct stop_ctx *c = arg;

    TCHECK_RC(pt_send(c->stopper, "ready"), PC_OK);
    pc_sleep(60);
    atomic_store(&c->after, 1);
    return NULL;
}

static pc_msg *
stopper(void *arg)
{
    struct stop_ctx *c = arg;

    PT_EXPECT("ready");
    PT_EXPECT("ready");
    pc_node_stop();
    atomic_store(&c->stop_returned, 1);
    return NULL;
}

/* pc_node_stop from a task ends pc_node_run though other non-daemon tasks
 * still wait. */
PT_WTEST(node_stop_from_task)
static void
node_stop_from_task(int W)
{
    struct stop_ctx c;
    pc_spawn_opts o;

    memset(&c, 0, sizeof c);
    PT_START(W);
    o = pt_on(1, 0);
    CU_ASSERT_EQUAL_FATAL(pc_spawn(stopper, &c, &o, &c.stopper), PC_OK);
    o = pt_on(0, 0);
    CU_ASSERT_EQUAL(pc_spawn(stop_waiter, &c, &o, NULL), PC_OK);
    o = pt_on(1, 0);
    CU_ASSERT_EQUAL(pc_spawn(stop_sleeper, &c, &o, NULL), PC_OK);
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&c.stop_returned), 1);
    CU_ASSERT_EQUAL(atomic_load(&c.after), 0);
}

static pc_msg *
signal_then_wait(void *arg)
{
    struct stop_ctx *c = arg;
    pc_msg *m = NULL;

    pthread_mutex_lock(&c->lock);
    c->flag = 1;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);
    pc_recv(&m, -1);
    pc_msg_free(&m);
    atomic_store(&c->after, 1);
    return NULL;
}

static void *
stop_thread(void *arg)
{
    struct stop_ctx *c = arg;

    pthread_mutex_lock(&c->lock);
    while (!c->flag)
        pthread_cond_wait(&c->cond, &c->lock);
    pthread_mutex_unlock(&c->lock);
    pc_node_stop();
    atomic_store(&c->stop_returned, 1);
    return NULL;
}

/* pc_node_stop from a foreign thread. */
PT_WTEST(node_stop_from_thread)
static void
node_stop_from_thread(int W)
{
    struct stop_ctx c;
    pthread_t th;
    pc_spawn_opts o;

    memset(&c, 0, sizeof c);
    pthread_mutex_init(&c.lock, NULL);
    pthread_cond_init(&c.cond, NULL);
    PT_START(W);
    o = pt_on(1, 0);
    CU_ASSERT_EQUAL(pc_spawn(signal_then_wait, &c, &o, NULL), PC_OK);
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, stop_thread, &c), 0);
    PT_RUN();
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(atomic_load(&c.stop_returned), 1);
    CU_ASSERT_EQUAL(atomic_load(&c.after), 0);
    pthread_mutex_destroy(&c.lock);
    pthread_cond_destroy(&c.cond);
}

/* pc_node_stop from a foreign thread that calls it over and over while
 * nodes start, run and are torn down: each call finds a whole node or none,
 * never one being freed (ASan: use after free; TSan: a race on the node
 * pointer). Each node's task waits for ever, so only a stop ends a node:
 * none is lost either. */
#define STOP_RACE_NODES 50

struct stop_race {
    atomic_int calls, done;
};

static void *
stop_spinner(void *arg)
{
    struct stop_race *r = arg;

    while (!atomic_load(&r->done)) {
        pc_node_stop();
        atomic_fetch_add(&r->calls, 1);
    }
    return NULL;
}

PT_TEST(node_stop_races_end)
static void
node_stop_races_end(void)
{
    struct stop_race r;
    pthread_t th;

    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, stop_spinner, &r), 0);
    for (int i = 0; i < STOP_RACE_NODES; i++) {
        PT_START(1 + i % 2);
        CU_ASSERT_EQUAL(pc_spawn(pt_idle_task, NULL, NULL, NULL), PC_OK);
        PT_RUN();
    }
    atomic_store(&r.done, 1);
    pthread_join(th, NULL);
    CU_ASSERT(atomic_load(&r.calls) >= STOP_RACE_NODES);
}

static pc_msg *
node_calls_from_task(void *arg)
{
    atomic_int *done = arg;

    TCHECK_RC(pc_node_join(0), PC_ESTATE);
    TCHECK_RC(pc_node_run(), PC_ESTATE);
    TCHECK_RC(pc_node_start(NULL), PC_ESTATE);
    PT_EXPECT("go");
    atomic_fetch_add(done, 1);
    return NULL;
}

/* pc_node_join(timeout) from the main thread: PC_ETIMEDOUT while a task
 * runs, PC_OK once it ended; the node keeps running until pc_node_run. */
PT_WTEST(node_join_timeout)
static void
node_join_timeout(int W)
{
    atomic_int done = 0;
    pc_ref a = PC_REF_NIL;
    pc_spawn_opts o;
    double t0;

    PT_START(W);
    CU_ASSERT_EQUAL(pc_node_join(0), PC_OK); /* no tasks yet */
    o = pt_on(1, 0);
    CU_ASSERT_EQUAL_FATAL(pc_spawn(node_calls_from_task, &done, &o, &a), PC_OK);
    t0 = pc_now();
    CU_ASSERT_EQUAL(pc_node_join(0.05), PC_ETIMEDOUT);
    CU_ASSERT(pt_since(t0) >= 0.045);
    CU_ASSERT_EQUAL(pc_node_join(0), PC_ETIMEDOUT);
    CU_ASSERT_EQUAL(pt_send(a, "go"), PC_OK);
    CU_ASSERT_EQUAL(pc_node_join(PT_LONG), PC_OK);
    CU_ASSERT_EQUAL(atomic_load(&done), 1);
    /* still running: a new task works */
    CU_ASSERT_EQUAL(pc_node_workers(), W);
    CU_ASSERT_EQUAL(pc_spawn(null_task, NULL, NULL, NULL), PC_OK);
    PT_RUN();
}

/* ---- calls from outside tasks, node states ---------------------------------- */

static void
check_not_task(void)
{
    pc_msg *m = NULL;
    void *v = NULL;
    int rev = 0;

    TCHECK(!pc_in_task());
    TCHECK(pc_ref_is_nil(pc_self()));
    TCHECK_EQ(pc_worker_index(), -1);
    TCHECK_EQ(pc_mailbox_depth(), 0);
    TCHECK_RC(pc_recv(&m, 0), PC_EPERM);
    TCHECK(m == NULL);
    TCHECK_RC(pc_recv(&m, 0.01), PC_EPERM);
    TCHECK_RC(pc_recv(&m, -1), PC_EPERM); /* must not block */
    TCHECK_RC(pc_sleep(0.01), PC_EPERM);
    TCHECK_RC(pc_sleep(-1), PC_EPERM);
    TCHECK_RC(pc_suspend(0.01, &v), PC_EPERM);
    TCHECK_RC(pc_suspend(-1, &v), PC_EPERM);
    TCHECK_RC(pc_yield(), PC_EPERM);
    TCHECK_RC(pc_set_daemon(true), PC_EPERM);
    TCHECK_RC(pc_wait_fd(0, PC_READ, 0.01, &rev), PC_EPERM);
}

static void *
not_task_thread(void *arg)
{
    (void)arg;
    check_not_task();
    return NULL;
}

/* Blocking calls from the main thread or another thread: PC_EPERM. */
PT_WTEST(blocking_calls_outside_tasks)
static void
blocking_calls_outside_tasks(int W)
{
    pthread_t th;

    PT_START(W);
    check_not_task();
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, not_task_thread, NULL), 0);
    pthread_join(th, NULL);
    PT_RUN();
}

/* Without a node: PC_ESTATE; bad options: PC_EINVAL. */
PT_TEST(node_states)
static void
node_states(void)
{
    pc_ref r = PC_REF_NIL;
    pc_spawn_opts o;
    pc_node_opts no;

    CU_ASSERT_EQUAL(pc_node_id(), 0);
    CU_ASSERT_EQUAL(pc_node_workers(), 0);
    CU_ASSERT_EQUAL(pc_worker_index(), -1);
    CU_ASSERT_EQUAL(pc_spawn(null_task, NULL, NULL, &r), PC_ESTATE);
    CU_ASSERT(pc_ref_is_nil(r));
    CU_ASSERT_EQUAL(pc_node_run(), PC_ESTATE);
    CU_ASSERT_EQUAL(pc_node_join(0), PC_ESTATE);
    CU_ASSERT_EQUAL(pc_node_join(0.01), PC_ESTATE);
    CU_ASSERT(!pc_alive(r));

    memset(&no, 0, sizeof no);
    no.workers = -1;
    CU_ASSERT_EQUAL(pc_node_start(&no), PC_EINVAL);
    CU_ASSERT_EQUAL(pc_node_workers(), 0);

    PT_START(2);
    CU_ASSERT_EQUAL(pc_node_workers(), 2);
    CU_ASSERT(pc_node_id() != 0);
    CU_ASSERT_EQUAL(pc_node_start(NULL), PC_ESTATE);
    memset(&o, 0, sizeof o);
    o.worker = PC_WORKER(2);
    CU_ASSERT_EQUAL(pc_spawn(null_task, NULL, &o, NULL), PC_EINVAL);
    o.worker = PC_WORKER(1000);
    CU_ASSERT_EQUAL(pc_spawn(null_task, NULL, &o, NULL), PC_EINVAL);
    o.worker = -2;
    CU_ASSERT_EQUAL(pc_spawn(null_task, NULL, &o, NULL), PC_EINVAL);
    PT_RUN();

    CU_ASSERT_EQUAL(pc_spawn(null_task, NULL, NULL, NULL), PC_ESTATE);
    CU_ASSERT_EQUAL(pc_node_run(), PC_ESTATE);
    CU_ASSERT_EQUAL(pc_node_workers(), 0);

    /* workers = 0: one per core */
    CU_ASSERT_EQUAL_FATAL(pc_node_start(NULL), PC_OK);
    CU_ASSERT(pc_node_workers() >= 1);
    CU_ASSERT_EQUAL(pc_node_workers(), (int)sysconf(_SC_NPROCESSORS_ONLN));
    PT_RUN();
}

/* ---- placement, identity, names --------------------------------------------- */

struct ident_ctx {
    int worker_seen[4];
    int workers_seen[4];
    bool in_task[4];
    pc_ref self[4];
    char name[4][32];
    atomic_int done;
};

struct ident_arg {
    struct ident_ctx *c;
    int i;
};

static pc_msg *
ident_task(void *arg)
{
    struct ident_arg *a = arg;
    struct ident_ctx *c = a->c;
    const char *n = pc_self_name();

    c->worker_seen[a->i] = pc_worker_index();
    c->workers_seen[a->i] = pc_node_workers();
    c->in_task[a->i] = pc_in_task();
    c->self[a->i] = pc_self();
    snprintf(c->name[a->i], sizeof c->name[a->i], "%s", n ? n : "(null)");
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(task_identity)
static void
task_identity(int W)
{
    struct ident_ctx c;
    struct ident_arg args[4];
    pc_ref refs[4];
    char namebuf[32];
    pc_spawn_opts o;

    memset(&c, 0, sizeof c);
    PT_START(W);
    for (int i = 0; i < 4; i++) {
        args[i].c = &c;
        args[i].i = i;
        o = pt_on(i, 0);
        snprintf(namebuf, sizeof namebuf, "task-%d", i);
        o.name = i == 3 ? NULL : namebuf;
        CU_ASSERT_EQUAL(pc_spawn(ident_task, &args[i], &o, &refs[i]), PC_OK);
        memset(namebuf, 'z', sizeof namebuf - 1); /* the name was copied */
        namebuf[sizeof namebuf - 1] = '\0';
    }
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&c.done), 4);
    for (int i = 0; i < 4; i++) {
        char want[32];
        CU_ASSERT_EQUAL(c.worker_seen[i], i % W);
        CU_ASSERT_EQUAL(c.workers_seen[i], W);
        CU_ASSERT(c.in_task[i]);
        CU_ASSERT(pc_ref_eq(c.self[i], refs[i]));
        snprintf(want, sizeof want, "task-%d", i);
        CU_ASSERT_STRING_EQUAL(c.name[i], i == 3 ? "" : want);
        for (int j = 0; j < i; j++)
            CU_ASSERT(!pc_ref_eq(refs[i], refs[j]));
    }
}

/* ---- stacks ----------------------------------------------------------------- */

#define BIG (200 * 1024)

__attribute__((noinline)) static void
fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed + i * 31u);
    __asm__ volatile("" : : "r"(p) : "memory");
}

__attribute__((noinline)) static size_t
count_bad(const unsigned char *p, size_t n, unsigned seed)
{
    size_t bad = 0;

    __asm__ volatile("" : : "r"(p) : "memory");
    for (size_t i = 0; i < n; i++)
        bad += p[i] != (unsigned char)(seed + i * 31u);
    return bad;
}

struct stack_ctx {
    atomic_int done;
};

static pc_msg *
big_stack_task(void *arg)
{
    struct stack_ctx *c = arg;
    unsigned char buf[BIG];

    fill(buf, sizeof buf, 7);
    TCHECK_RC(pc_yield(), PC_OK);
    TCHECK_RC(pc_sleep(0.001), PC_OK);
    TCHECK_EQ(count_bad(buf, sizeof buf, 7), 0);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* A task using a 200 KB local array runs with stack_size 1 MB, set per task
 * or as the node's default. */
PT_WTEST(stack_size_custom)
static void
stack_size_custom(int W)
{
    struct stack_ctx c;
    pc_spawn_opts o;
    pc_node_opts no;

    memset(&c, 0, sizeof c);
    PT_START(W);
    for (int i = 0; i < 2 * W; i++) {
        o = pt_on(i, 0);
        o.stack_size = 1024 * 1024;
        CU_ASSERT_EQUAL(pc_spawn(big_stack_task, &c, &o, NULL), PC_OK);
    }
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&c.done), 2 * W);

    memset(&no, 0, sizeof no);
    no.workers = W;
    no.stack_size = 1024 * 1024;
    CU_ASSERT_EQUAL_FATAL(pc_node_start(&no), PC_OK);
    for (int i = 0; i < 2 * W; i++) {
        o = pt_on(i, 0);
        CU_ASSERT_EQUAL(pc_spawn(big_stack_task, &c, &o, NULL), PC_OK);
    }
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&c.done), 4 * W);
}

/* PC_TASK_SMALL tasks and normal ones pass a token around a ring, on both
 * workers; each keeps a 2 KB pattern on its stack and checks it after every
 * switch. */
#define RING 12
#define ROUNDS 100
#define PATTERN 2048

struct ring_ctx {
    pc_ref main;
    pc_ref refs[RING];
    struct ring_arg {
        struct ring_ctx *c;
        int i;
    } args[RING];
    atomic_long corrupt;
    atomic_long wrong_token;
    atomic_int finished;
    atomic_int done;
};

static pc_msg *
ring_task(void *arg)
{
    struct ring_arg *a = arg;
    struct ring_ctx *c = a->c;
    unsigned char buf[PATTERN];
    pc_ref next;
    pc_msg *m = NULL;

    fill(buf, sizeof buf, (unsigned)a->i * 13u + 1u);
    TCHECK_RC(pc_recv(&m, PT_LONG), PC_OK);
    TCHECK(m != NULL && pc_msg_is(m, "next"));
    next = m ? pt_msg_ref(m) : PC_REF_NIL;
    pc_msg_free(&m);
    /* no causal order across senders: the token goes round only once
     * every task has its "next" */
    TCHECK_RC(pt_send(c->main, "ack"), PC_OK);
    for (int r = 0; r < ROUNDS; r++) {
        uint64_t want = (uint64_t)r * RING + (uint64_t)a->i, got;

        if (pc_recv(&m, PT_LONG) != PC_OK || !m) {
            TCHECK(!"token lost");
            break;
        }
        got = pt_u64(m);
        pc_msg_free(&m);
        if (got != want)
            atomic_fetch_add(&c->wrong_token, 1);
        if (count_bad(buf, sizeof buf, (unsigned)a->i * 13u + 1u))
            atomic_fetch_add(&c->corrupt, 1);
        TCHECK_RC(pc_yield(), PC_OK);
        if (r % 10 == 0)
            TCHECK_RC(pc_sleep(0), PC_OK);
        if (count_bad(buf, sizeof buf, (unsigned)a->i * 13u + 1u))
            atomic_fetch_add(&c->corrupt, 1);
        if (want + 1 < (uint64_t)ROUNDS * RING)
            TCHECK_RC(pt_send_u64(next, "token", want + 1), PC_OK);
        else
            TCHECK_RC(pt_send(c->main, "finished"), PC_OK);
    }
    if (count_bad(buf, sizeof buf, (unsigned)a->i * 13u + 1u))
        atomic_fetch_add(&c->corrupt, 1);
    atomic_fetch_add(&c->finished, 1);
    return NULL;
}

static pc_msg *
ring_main(void *arg)
{
    struct ring_ctx *c = arg;

    c->main = pc_self();
    for (int i = 0; i < RING; i++) {
        /* pairs alternate: on two workers each gets small and normal ones */
        unsigned flags = (i / 2) % 2 == 0 ? PC_TASK_SMALL : 0;
        c->args[i].c = c;
        c->args[i].i = i;
        c->refs[i] = pt_spawn(ring_task, &c->args[i], i, flags);
    }
    for (int i = 0; i < RING; i++)
        TCHECK_RC(pt_send_ref(c->refs[i], "next", c->refs[(i + 1) % RING]),
                  PC_OK);
    for (int i = 0; i < RING; i++)
        PT_EXPECT("ack");
    TCHECK_RC(pt_send_u64(c->refs[0], "token", 0), PC_OK);
    PT_EXPECT("finished");
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(small_tasks_ring)
static void
small_tasks_ring(int W)
{
    struct ring_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, ring_main, &c, &c.done, 1);
    CU_ASSERT_EQUAL(atomic_load(&c.finished), RING);
    CU_ASSERT_EQUAL(atomic_load(&c.corrupt), 0);
    CU_ASSERT_EQUAL(atomic_load(&c.wrong_token), 0);
}

/* Small tasks that block in every way, with more of them than fit on the
 * shared stack at once if their copies were not taken out. */
#define SMALL_N 64

struct small_ctx {
    pc_ref main;
    atomic_long corrupt;
    atomic_int done;
    struct small_arg {
        struct small_ctx *c;
        int i;
    } args[SMALL_N];
};

static pc_msg *
small_blocker(void *arg)
{
    struct small_arg *a = arg;
    struct small_ctx *c = a->c;
    unsigned char buf[PATTERN];
    unsigned seed = (unsigned)a->i * 7u + 3u;
    pc_msg *m = NULL;

    fill(buf, sizeof buf, seed);
    TCHECK_RC(pt_send(c->main, "ready"), PC_OK);
    TCHECK_RC(pc_suspend(PT_LONG, NULL), PC_OK);
    if (count_bad(buf, sizeof buf, seed))
        atomic_fetch_add(&c->corrupt, 1);
    TCHECK_RC(pc_recv(&m, PT_LONG), PC_OK);
    pc_msg_free(&m);
    if (count_bad(buf, sizeof buf, seed))
        atomic_fetch_add(&c->corrupt, 1);
    TCHECK_RC(pc_sleep(0.01), PC_OK);
    if (count_bad(buf, sizeof buf, seed))
        atomic_fetch_add(&c->corrupt, 1);
    return NULL;
}

static pc_msg *
small_main(void *arg)
{
    struct small_ctx *c = arg;
    pc_ref r[SMALL_N];

    c->main = pc_self();
    for (int i = 0; i < SMALL_N; i++) {
        c->args[i].c = c;
        c->args[i].i = i;
        r[i] = pt_spawn(small_blocker, &c->args[i], i,
                        PC_TASK_SMALL | PC_TASK_JOINABLE);
    }
    for (int i = 0; i < SMALL_N; i++)
        PT_EXPECT("ready");
    for (int i = SMALL_N - 1; i >= 0; i--)
        TCHECK_RC(pc_resume(r[i], NULL), PC_OK);
    for (int i = 0; i < SMALL_N; i += 2)
        TCHECK_RC(pt_send(r[i], "m"), PC_OK);
    for (int i = 1; i < SMALL_N; i += 2)
        TCHECK_RC(pt_send(r[i], "m"), PC_OK);
    for (int i = 0; i < SMALL_N; i++)
        TCHECK_RC(pc_task_join(r[i], PT_LONG, NULL), PC_OK);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(small_tasks_block)
static void
small_tasks_block(int W)
{
    struct small_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, small_main, &c, &c.done, 1);
    CU_ASSERT_EQUAL(atomic_load(&c.corrupt), 0);
}

PT_MAIN("task", PT_WENTRY(resume_wakes_suspend),
        PT_WENTRY(resume_does_not_wake_recv),
        PT_WENTRY(send_does_not_wake_suspend), PT_WENTRY(recv_timeout_and_poll),
        PT_WENTRY(suspend_and_sleep_timeouts), PT_WENTRY(sleep_interrupted),
        PT_WENTRY(yield_interleaves), PT_WENTRY(exit_values),
        PT_WENTRY(join_ended_joinable), PT_WENTRY(join_running_nonjoinable),
        PT_WENTRY(join_then_stale), PT_WENTRY(join_timeout),
        PT_WENTRY(join_self), PT_WENTRY(join_terminated),
        PT_WENTRY(terminate_blocked), PT_WENTRY(stale_refs),
        PT_ENTRY(stale_refs_main_thread), PT_WENTRY(daemon_finish),
        PT_WENTRY(node_empty_and_daemon_only), PT_WENTRY(node_stop_from_task),
        PT_WENTRY(node_stop_from_thread), PT_ENTRY(node_stop_races_end),
        PT_WENTRY(node_join_timeout), PT_WENTRY(blocking_calls_outside_tasks),
        PT_ENTRY(node_states), PT_WENTRY(task_identity),
        PT_WENTRY(stack_size_custom), PT_WENTRY(small_tasks_ring),
        PT_WENTRY(small_tasks_block))
