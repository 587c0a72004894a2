/* tests/test_spawn.c — spawning: many tasks, placement, pooled stacks,
 * spawns from actors and threads.
 *
 * The 100k-alive test keeps every task's stack in use at the same time: with
 * one mmap per stack it would exceed the kernel's map count (65530 by
 * default), so it passes only when stacks are pooled.
 */
#include "testutil.h"

#define MANY 100000

/* ---- 100k joinable tasks ------------------------------------------------------ */

struct many_ctx {
    long n;
    pc_ref *refs;
    atomic_long wrong;
    atomic_long joined;
    atomic_int done;
};

static pc_msg *
indexed_child(void *arg)
{
    uint64_t i = (uint64_t)(uintptr_t)arg;
    pc_msg *m = NULL;

    if (pc_msg_new(&m, "idx", &i, sizeof i) != PC_OK)
        TCHECK(!"pc_msg_new");
    return m;
}

static pc_msg *
spawn_join_main(void *arg)
{
    struct many_ctx *c = arg;
    pc_spawn_opts o;

    memset(&o, 0, sizeof o);
    o.worker = PC_WORKER_ANY;
    o.flags = PC_TASK_JOINABLE;
    for (long i = 0; i < c->n; i++) {
        int rc = pc_spawn(indexed_child, (void *)(uintptr_t)i, &o, &c->refs[i]);
        if (rc != PC_OK) {
            TCHECK_RC(rc, PC_OK);
            c->n = i;
            break;
        }
    }
    for (long i = 0; i < c->n; i++) {
        pc_msg *v = NULL;
        int rc = pc_task_join(c->refs[i], PT_LONG, &v);

        if (rc != PC_OK || !v || pt_u64(v) != (uint64_t)i) {
            if (atomic_fetch_add(&c->wrong, 1) == 0)
                TCHECK_RC(rc, PC_OK);
        }
        pc_msg_free(&v);
        atomic_fetch_add(&c->joined, 1);
    }
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* 100k tasks spawned, then joined, each returning its index. */
PT_WTEST(spawn_join_100k)
static void
spawn_join_100k(int W)
{
    struct many_ctx c;
    long n = pt_scaled(MANY, 50);

    memset(&c, 0, sizeof c);
    c.n = n;
    c.refs = calloc((size_t)n, sizeof *c.refs);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c.refs);
    PT_RUN_TASK(W, spawn_join_main, &c, &c.done, 1);
    CU_ASSERT_EQUAL(c.n, n);
    CU_ASSERT_EQUAL(atomic_load(&c.joined), n);
    CU_ASSERT_EQUAL(atomic_load(&c.wrong), 0);
    /* all refs distinct: sort-free check on a sample */
    for (long i = 1; i < n && i < 2000; i++)
        CU_ASSERT(!pc_ref_eq(c.refs[i], c.refs[i - 1]));
    free(c.refs);
}

/* ---- 100k tasks alive at once ------------------------------------------------- */

struct alive_ctx {
    pc_ref main;
    long n;
    pc_ref *refs;
    atomic_long finished;
    atomic_long ready;
    atomic_int done;
};

static pc_msg *
waiting_child(void *arg)
{
    struct alive_ctx *c = arg;
    pc_msg *m = NULL;

    if (pt_send(c->main, "ready") != PC_OK)
        TCHECK(!"send ready");
    if (pc_recv(&m, PT_LONG) != PC_OK || !m || !pc_msg_is(m, "go"))
        TCHECK(!"no go");
    pc_msg_free(&m);
    atomic_fetch_add(&c->finished, 1);
    return NULL;
}

static pc_msg *
alive_main(void *arg)
{
    struct alive_ctx *c = arg;
    pc_spawn_opts o;

    c->main = pc_self();
    memset(&o, 0, sizeof o);
    o.worker = PC_WORKER_ANY;
    for (long i = 0; i < c->n; i++) {
        int rc = pc_spawn(waiting_child, c, &o, &c->refs[i]);
        if (rc != PC_OK) {
            TCHECK_RC(rc, PC_OK);
            c->n = i;
            break;
        }
    }
    /* every child has run and holds its stack, waiting in pc_recv */
    for (long i = 0; i < c->n; i++) {
        pc_msg *m = NULL;
        if (pc_recv(&m, PT_LONG) != PC_OK) {
            TCHECK(!"ready lost");
            break;
        }
        pc_msg_free(&m);
        atomic_fetch_add(&c->ready, 1);
    }
    TCHECK_EQ(atomic_load(&c->finished), 0);
    for (long i = 0; i < c->n; i++)
        if (pt_send(c->refs[i], "go") != PC_OK)
            TCHECK(!"send go");
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(alive_100k)
static void
alive_100k(int W)
{
    struct alive_ctx c;
    long n = pt_scaled(MANY, 50);

    memset(&c, 0, sizeof c);
    c.n = n;
    c.refs = calloc((size_t)n, sizeof *c.refs);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c.refs);
    PT_RUN_TASK(W, alive_main, &c, &c.done, 1);
    CU_ASSERT_EQUAL(c.n, n);
    CU_ASSERT_EQUAL(atomic_load(&c.ready), n);
    CU_ASSERT_EQUAL(atomic_load(&c.finished), n);
    free(c.refs);
}

/* ---- placement ---------------------------------------------------------------- */

#define ANY_SPAWNS 100

static pc_msg *
report_worker(void *arg)
{
    (void)arg;
    uint64_t w = (uint64_t)pc_worker_index();
    pc_msg *m = NULL;

    TCHECK_RC(pc_msg_new(&m, "w", &w, sizeof w), PC_OK);
    return m;
}

/* Spawn with `worker` and return the worker the child ran on. */
static int
child_worker(int worker)
{
    pc_spawn_opts o;
    pc_ref r = PC_REF_NIL;
    pc_msg *v = NULL;
    int w;

    memset(&o, 0, sizeof o);
    o.worker = worker;
    o.flags = PC_TASK_JOINABLE;
    TCHECK_RC(pc_spawn(report_worker, NULL, &o, &r), PC_OK);
    TCHECK_RC(pc_task_join(r, PT_LONG, &v), PC_OK);
    w = v ? (int)pt_u64(v) : -2;
    pc_msg_free(&v);
    return w;
}

struct place_ctx {
    int W;
    atomic_int done;
};

static pc_msg *
place_from(void *arg)
{
    struct place_ctx *c = arg;
    int me = pc_worker_index(), any[8] = {0};

    TCHECK(me >= 0 && me < c->W);
    for (int i = 0; i < c->W; i++)
        TCHECK_EQ(child_worker(PC_WORKER(i)), i);
    TCHECK_EQ(child_worker(PC_WORKER_SELF), me);
    for (int i = 0; i < ANY_SPAWNS; i++) {
        int w = child_worker(PC_WORKER_ANY);
        TCHECK(w >= 0 && w < c->W);
        if (w >= 0 && w < 8)
            any[w]++;
    }
    for (int i = 0; i < c->W; i++)
        TCHECK(any[i] > 0); /* round-robin reaches every worker */
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* From tasks on every worker: PC_WORKER(i), _SELF and _ANY. */
PT_WTEST(spawn_placement_from_tasks)
static void
spawn_placement_from_tasks(int W)
{
    struct place_ctx c;

    memset(&c, 0, sizeof c);
    c.W = W;
    PT_START(W);
    for (int i = 0; i < W; i++) {
        pc_spawn_opts o = pt_on(i, 0);
        CU_ASSERT_EQUAL(pc_spawn(place_from, &c, &o, NULL), PC_OK);
    }
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&c.done), W);
}

static void *
place_thread(void *arg)
{
    struct place_ctx *c = arg;
    int seen[8] = {0};

    /* outside workers both SELF and ANY are round-robin */
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < ANY_SPAWNS; i++) {
            int w = child_worker(k ? PC_WORKER_ANY : PC_WORKER_SELF);
            TCHECK(w >= 0 && w < c->W);
            if (w >= 0 && w < 8)
                seen[w]++;
        }
    }
    for (int i = 0; i < c->W; i++)
        TCHECK(seen[i] > 0);
    for (int i = 0; i < c->W; i++)
        TCHECK_EQ(child_worker(PC_WORKER(i)), i);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* From the main thread and from another thread while the node runs. */
PT_WTEST(spawn_placement_from_threads)
static void
spawn_placement_from_threads(int W)
{
    struct place_ctx c;
    pthread_t th;

    memset(&c, 0, sizeof c);
    c.W = W;
    PT_START(W);
    place_thread(&c); /* the main thread: joins work from here too */
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, place_thread, &c), 0);
    pthread_join(th, NULL);
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&c.done), 2);
}

/* ---- spawn from a light actor ------------------------------------------------- */

struct actor_spawn_ctx {
    pc_ref requester;
    int actor_worker;
    atomic_int spawn_rc;
    atomic_int actor_spawn_rc;
    atomic_int fini;
    atomic_int done;
};

static pc_msg *
hello_child(void *arg)
{
    struct actor_spawn_ctx *c = arg;

    TCHECK_RC(
        pt_send_u64(c->requester, "hello.task", (uint64_t)pc_worker_index()),
        PC_OK);
    return NULL;
}

static int
hello_actor(void *state, pc_msg *msg)
{
    struct actor_spawn_ctx *c = state;

    (void)msg;
    TCHECK_RC(
        pt_send_u64(c->requester, "hello.actor", (uint64_t)pc_worker_index()),
        PC_OK);
    return PC_ACTOR_STOP;
}

static void
count_fini(void *state)
{
    struct actor_spawn_ctx *c = state;

    atomic_fetch_add(&c->fini, 1);
}

static int
spawning_actor(void *state, pc_msg *msg)
{
    struct actor_spawn_ctx *c = state;
    pc_spawn_opts o;
    pc_ref child = PC_REF_NIL;

    (void)msg;
    c->actor_worker = pc_worker_index();
    memset(&o, 0, sizeof o); /* PC_WORKER_SELF: the actor's worker */
    atomic_store(&c->spawn_rc, pc_spawn(hello_child, c, &o, NULL));
    atomic_store(&c->actor_spawn_rc,
                 pc_actor_spawn(hello_actor, c, count_fini, &o, &child));
    TCHECK_RC(pt_send(child, "go"), PC_OK);
    return PC_ACTOR_STOP;
}

static pc_msg *
actor_spawn_main(void *arg)
{
    struct actor_spawn_ctx *c = arg;
    pc_spawn_opts o = pt_on(1, 0);
    pc_ref a = PC_REF_NIL;
    int got_task = 0, got_actor = 0;

    c->requester = pc_self();
    TCHECK_RC(pc_actor_spawn(spawning_actor, c, count_fini, &o, &a), PC_OK);
    TCHECK_RC(pt_send(a, "spawn"), PC_OK);
    for (int i = 0; i < 2; i++) {
        pc_msg *m = NULL;
        TCHECK_RC(pc_recv(&m, PT_LONG), PC_OK);
        if (!m)
            break;
        if (pc_msg_is(m, "hello.task")) {
            got_task++;
            TCHECK_EQ(pt_u64(m), c->actor_worker);
        } else if (pc_msg_is(m, "hello.actor")) {
            got_actor++;
            TCHECK_EQ(pt_u64(m), c->actor_worker);
        }
        pc_msg_free(&m);
    }
    TCHECK_EQ(got_task, 1);
    TCHECK_EQ(got_actor, 1);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* A light actor's handler spawns a task and another actor (on its own
 * worker, PC_WORKER_SELF). */
PT_WTEST(spawn_from_actor)
static void
spawn_from_actor(int W)
{
    struct actor_spawn_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, actor_spawn_main, &c, &c.done, 1);
    CU_ASSERT_EQUAL(atomic_load(&c.spawn_rc), PC_OK);
    CU_ASSERT_EQUAL(atomic_load(&c.actor_spawn_rc), PC_OK);
    CU_ASSERT_EQUAL(atomic_load(&c.fini), 2);
    CU_ASSERT_EQUAL(c.actor_worker, 1 % W);
}

PT_MAIN("spawn", PT_WENTRY(spawn_join_100k), PT_WENTRY(alive_100k),
        PT_WENTRY(spawn_placement_from_tasks),
        PT_WENTRY(spawn_placement_from_threads), PT_WENTRY(spawn_from_actor))
