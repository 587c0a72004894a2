/* tests/test_pool.c — the thread pool: results to the right task on its own
 * worker, concurrency with exact results, a blocking job that doesn't block
 * its caller's worker, FIFO order, timeouts (queued and running) with the
 * late result discarded, join, free with queued jobs, calls from foreign
 * threads, PC_EPERM from a light actor, a waiter terminated mid-wait.
 *
 * Blocking jobs read one byte from a pipe (a "gate") that a task writes
 * when the test is ready; a job tells the test it has started by sending a
 * message from the pool thread (pc_send works from any thread). Tasks that
 * must be queued in the pool before the test goes on sit on the driver's own
 * worker and send "ready" right before pc_pool_run(): a task runs until it
 * blocks, so when the driver gets "ready" the job is queued.
 */
#include <fcntl.h>

#include "testutil.h"

/* ---- helpers ------------------------------------------------------------- */

/* PT_RUN_TASK for a test with a pool: once the tasks are done, the pool is
 * freed before the node ends (pool.h: its threads may still be handing a
 * result to a worker, and only pc_pool_free waits until they are done). */
#define POOL_RUN_TASK(W, fn, ctx, done, want, poolp)                           \
    do {                                                                       \
        PT_START(W);                                                           \
        pc_spawn_opts pool_mo_ = pt_on(0, 0);                                  \
        CU_ASSERT_EQUAL(pc_spawn((fn), (ctx), &pool_mo_, NULL), PC_OK);        \
        CU_ASSERT_EQUAL(pc_node_join(-1), PC_OK);                              \
        CU_ASSERT_EQUAL(pc_pool_free(poolp), PC_OK);                           \
        CU_ASSERT_PTR_NULL(*(poolp));                                          \
        PT_RUN();                                                              \
        CU_ASSERT_EQUAL(atomic_load(done), (want));                            \
    } while (0)

/* A job that checks it runs on a pool thread and returns 2 * arg + 1. */
static void *
twice_plus_one(void *arg)
{
    TCHECK_EQ(pc_worker_index(), -1);
    TCHECK(!pc_in_task());
    TCHECK(pc_ref_is_nil(pc_self()));
    return (void *)(2 * (uintptr_t)arg + 1);
}

struct gate {
    int fd[2];
    int note[2];   /* a byte is written to note[1] when a job starts */
    pc_ref notify; /* told "infn" when the job starts (if not nil) */
    atomic_int started;
};

static void
gate_init(struct gate *g)
{
    memset(g, 0, sizeof *g);
    CU_ASSERT_EQUAL_FATAL(pipe(g->fd), 0);
    CU_ASSERT_EQUAL_FATAL(pipe(g->note), 0);
    fcntl(g->note[1], F_SETFL, O_NONBLOCK); /* unread notes are dropped */
}

static void
gate_fini(struct gate *g)
{
    close(g->fd[0]);
    close(g->fd[1]);
    close(g->note[0]);
    close(g->note[1]);
}

/* For a foreign thread: wait until a gate job has started. */
static void
gate_wait_started(struct gate *g)
{
    char b;

    CU_ASSERT_EQUAL(read(g->note[0], &b, 1), 1);
}

/* Let one job blocked on the gate through, handing it byte b. */
static void
gate_open(struct gate *g, char b)
{
    TCHECK_EQ(write(g->fd[1], &b, 1), 1);
}

/* A job that blocks until the gate opens; returns the byte it read. */
static void *
gate_job(void *arg)
{
    struct gate *g = arg;
    char b = 0;

    TCHECK_EQ(pc_worker_index(), -1);
    atomic_fetch_add(&g->started, 1);
    (void)!write(g->note[1], "s", 1);
    if (!pc_ref_is_nil(g->notify))
        TCHECK_RC(pt_send(g->notify, "infn"), PC_OK);
    if (read(g->fd[0], &b, 1) != 1)
        return (void *)(intptr_t)-1;
    return (void *)(intptr_t)b;
}

/* As gate_job, returning a malloc'd copy of the byte (for discard tests). */
static void *
gate_job_alloc(void *arg)
{
    char *r = malloc(1);

    TCHECK(r != NULL);
    *r = (char)(intptr_t)gate_job(arg);
    return r;
}

static atomic_int discarded;
static atomic_int discarded_byte;

static void
discard_free(void *result)
{
    atomic_fetch_add(&discarded, 1);
    atomic_store(&discarded_byte, *(char *)result);
    free(result);
}

/* ---- results come back to the caller, on its worker ---------------------- */

struct basic_ctx {
    pc_pool *pool;
    pc_ref main;
    atomic_int done;
};

static pc_msg *
basic_caller(void *arg)
{
    struct basic_ctx *c = arg;
    int w = pc_worker_index();
    uintptr_t base = (uintptr_t)w * 1000;

    TCHECK(w >= 0);
    for (uintptr_t i = 0; i < 50; i++) {
        void *r = NULL;
        TCHECK_RC(pc_pool_run(c->pool, twice_plus_one, (void *)(base + i),
                              PT_LONG, &r),
                  PC_OK);
        TCHECK_EQ((uintptr_t)r, 2 * (base + i) + 1);
        TCHECK_EQ(pc_worker_index(), w);
    }
    /* result may be NULL: the value is dropped */
    TCHECK_RC(pc_pool_run(c->pool, twice_plus_one, NULL, PT_LONG, NULL), PC_OK);
    TCHECK_RC(pt_send(c->main, "done"), PC_OK);
    return NULL;
}

static pc_msg *
basic_main(void *arg)
{
    struct basic_ctx *c = arg;

    c->main = pc_self();
    pt_spawn(basic_caller, c, 0, 0);
    pt_spawn(basic_caller, c, 1, 0);
    pt_spawn(basic_caller, c, 1, PC_TASK_SMALL);
    for (int i = 0; i < 3; i++)
        PT_EXPECT("done");
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* pc_pool_run hands fn's value back to the calling task, which resumes on
 * its own worker; fn runs on a thread that is not a worker. */
PT_WTEST(run_basic)
static void
run_basic(int W)
{
    struct basic_ctx c;

    memset(&c, 0, sizeof c);
    CU_ASSERT_EQUAL_FATAL(pc_pool_new(&c.pool, 2), PC_OK);
    POOL_RUN_TASK(W, basic_main, &c, &c.done, 1, &c.pool);
    CU_ASSERT_PTR_NULL(c.pool);
}

/* ---- many callers at once ------------------------------------------------ */

struct many_ctx {
    pc_pool *pool;
    pc_ref main;
    long calls;
    atomic_long ok;
    atomic_int done;
};

static pc_msg *
many_caller(void *arg)
{
    struct many_ctx *c = arg;
    uintptr_t base = (uintptr_t)(pc_self().id & 0xffffffffu) << 20;
    int w = pc_worker_index();

    for (long i = 0; i < c->calls; i++) {
        void *r = NULL;
        uintptr_t x = base + (uintptr_t)i;
        int rc = pc_pool_run(c->pool, twice_plus_one, (void *)x, PT_LONG, &r);
        TCHECK_RC(rc, PC_OK);
        TCHECK_EQ((uintptr_t)r, 2 * x + 1);
        TCHECK_EQ(pc_worker_index(), w);
        if (rc == PC_OK && (uintptr_t)r == 2 * x + 1)
            atomic_fetch_add(&c->ok, 1);
    }
    TCHECK_RC(pt_send(c->main, "done"), PC_OK);
    return NULL;
}

#define MANY_TASKS 16

static pc_msg *
many_main(void *arg)
{
    struct many_ctx *c = arg;

    c->main = pc_self();
    for (int i = 0; i < MANY_TASKS; i++)
        pt_spawn(many_caller, c, i % 2, i % 4 == 3 ? PC_TASK_SMALL : 0);
    for (int i = 0; i < MANY_TASKS; i++)
        PT_EXPECT("done");
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* Many tasks on both workers call into a 3-thread pool at once; every one
 * gets exactly its own results. */
PT_WTEST(run_many)
static void
run_many(int W)
{
    struct many_ctx c;

    memset(&c, 0, sizeof c);
    c.calls = pt_scaled(500, 5);
    CU_ASSERT_EQUAL_FATAL(pc_pool_new(&c.pool, 3), PC_OK);
    POOL_RUN_TASK(W, many_main, &c, &c.done, 1, &c.pool);
    CU_ASSERT_EQUAL(atomic_load(&c.ok), MANY_TASKS * c.calls);
}

/* ---- a blocking job doesn't block its caller's worker -------------------- */

struct block_ctx {
    pc_pool *pool;
    struct gate g;
    pc_ref main, talker, echo;
    atomic_int waiter_back;
    atomic_int done;
};

static pc_msg *
block_waiter(void *arg)
{
    struct block_ctx *c = arg;
    void *r = NULL;

    TCHECK_RC(pc_pool_run(c->pool, gate_job, &c->g, PT_LONG, &r), PC_OK);
    TCHECK_EQ((intptr_t)r, 'x');
    atomic_store(&c->waiter_back, 1);
    TCHECK_RC(pt_send(c->main, "done"), PC_OK);
    return NULL;
}

static pc_msg *
block_echo(void *arg)
{
    (void)arg;
    for (;;) {
        pc_msg *m = NULL;
        TCHECK_RC(pc_recv(&m, PT_LONG), PC_OK);
        if (!m || pc_msg_is(m, "stop")) {
            pc_msg_free(&m);
            return NULL;
        }
        TCHECK_RC(pc_send(pc_msg_sender(m), &m), PC_OK);
        pc_msg_free(&m);
    }
}

/* On the waiter's worker: once the job runs, exchange messages with the
 * echo while the waiter waits, then open the gate. */
static pc_msg *
block_talker(void *arg)
{
    struct block_ctx *c = arg;

    PT_EXPECT("infn"); /* from the pool thread */
    for (uint64_t i = 0; i < 200; i++) {
        TCHECK_RC(pt_send_u64(c->echo, "ping", i), PC_OK);
        TCHECK_EQ(PT_EXPECT("ping"), i);
    }
    TCHECK_EQ(atomic_load(&c->waiter_back), 0);
    gate_open(&c->g, 'x');
    TCHECK_RC(pt_send(c->echo, "stop"), PC_OK);
    TCHECK_RC(pt_send(c->main, "done"), PC_OK);
    return NULL;
}

static pc_msg *
block_main(void *arg)
{
    struct block_ctx *c = arg;

    c->main = pc_self();
    c->echo = pt_spawn(block_echo, c, 1, 0);
    c->talker = pt_spawn(block_talker, c, 0, 0);
    c->g.notify = c->talker;
    pt_spawn(block_waiter, c, 0, 0);
    PT_EXPECT("done");
    PT_EXPECT("done");
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* While a task waits for a job blocked in read(), another task of the same
 * worker keeps exchanging messages; then it opens the gate. */
PT_WTEST(blocking_job)
static void
blocking_job(int W)
{
    struct block_ctx c;

    memset(&c, 0, sizeof c);
    gate_init(&c.g);
    CU_ASSERT_EQUAL_FATAL(pc_pool_new(&c.pool, 1), PC_OK);
    POOL_RUN_TASK(W, block_main, &c, &c.done, 1, &c.pool);
    gate_fini(&c.g);
}

/* ---- FIFO order ---------------------------------------------------------- */

#define FIFO_JOBS 100

struct fifo_ctx {
    pc_pool *pool;
    struct gate g;
    int order[FIFO_JOBS + 1];
    int n; /* only the pool's one thread writes order[] and n */
    atomic_int done;
};

static struct fifo_ctx *fifo_c;

static void *
fifo_record(void *arg)
{
    fifo_c->order[fifo_c->n++] = (int)(intptr_t)arg;
    return (void *)(intptr_t)fifo_c->n;
}

static pc_msg *
fifo_main(void *arg)
{
    struct fifo_ctx *c = arg;
    void *r = NULL;

    c->g.notify = pc_self();
    TCHECK_RC(pc_pool_submit(c->pool, gate_job, &c->g), PC_OK);
    PT_EXPECT("infn"); /* the one thread is busy: the rest queue up */
    for (intptr_t i = 0; i < FIFO_JOBS; i++)
        TCHECK_RC(pc_pool_submit(c->pool, fifo_record, (void *)i), PC_OK);
    gate_open(&c->g, 'f');
    /* a waited job after them all: it runs last */
    TCHECK_RC(pc_pool_run(c->pool, fifo_record, (void *)(intptr_t)FIFO_JOBS,
                          PT_LONG, &r),
              PC_OK);
    TCHECK_EQ((intptr_t)r, FIFO_JOBS + 1);
    for (int i = 0; i <= FIFO_JOBS; i++)
        TCHECK_EQ(c->order[i], i);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* With one thread, jobs run in the order they were queued. */
PT_WTEST(fifo_order)
static void
fifo_order(int W)
{
    struct fifo_ctx c;

    memset(&c, 0, sizeof c);
    fifo_c = &c;
    gate_init(&c.g);
    CU_ASSERT_EQUAL_FATAL(pc_pool_new(&c.pool, 1), PC_OK);
    POOL_RUN_TASK(W, fifo_main, &c, &c.done, 1, &c.pool);
    gate_fini(&c.g);
}

/* ---- timeouts ------------------------------------------------------------ */

struct timeout_ctx {
    pc_pool *pool;
    struct gate g;
    pc_ref main;
    atomic_int recorded;
    atomic_int done;
};

static void *
count_job(void *arg)
{
    atomic_int *n = arg;

    atomic_fetch_add(n, 1);
    return NULL;
}

/* Gives up on a job that is running (blocked on the gate). */
static pc_msg *
timeout_running_waiter(void *arg)
{
    struct timeout_ctx *c = arg;
    void *r = &r;
    double t0 = pc_now();

    TCHECK_RC(
        pc_pool_run_ex(c->pool, gate_job_alloc, &c->g, discard_free, 0.3, &r),
        PC_ERUNNING);
    TCHECK(r == NULL);
    TCHECK(pt_since(t0) >= 0.29);
    TCHECK_RC(pt_send(c->main, "timedout"), PC_OK);
    return NULL;
}

static pc_msg *
timeout_main(void *arg)
{
    struct timeout_ctx *c = arg;

    c->main = pc_self();
    c->g.notify = c->main;

    /* 1. Running: the waiter (on the other worker when W=2) times out; the
     * job ends later and its malloc'd result goes to discard_free. */
    pt_spawn(timeout_running_waiter, c, 1, 0);
    PT_EXPECT("infn");
    PT_EXPECT("timedout");
    TCHECK_EQ(atomic_load(&discarded), 0);
    gate_open(&c->g, 'L');
    TCHECK_RC(pc_pool_join(c->pool, PT_LONG), PC_OK);
    TCHECK_EQ(atomic_load(&discarded), 1);
    TCHECK_EQ(atomic_load(&discarded_byte), 'L');

    /* 2. Queued: the one thread is busy, so the job times out in the queue
     * and never runs. */
    TCHECK_RC(pc_pool_submit(c->pool, gate_job, &c->g), PC_OK);
    PT_EXPECT("infn");
    TCHECK_RC(pc_pool_run(c->pool, count_job, &c->recorded, 0.05, NULL),
              PC_ETIMEDOUT);
    TCHECK_RC(pc_pool_run(c->pool, count_job, &c->recorded, 0, NULL),
              PC_ETIMEDOUT);
    gate_open(&c->g, 'q');
    TCHECK_RC(pc_pool_join(c->pool, PT_LONG), PC_OK);
    TCHECK_EQ(atomic_load(&c->recorded), 0);

    /* 3. Join times out while a job runs. */
    TCHECK_RC(pc_pool_submit(c->pool, gate_job, &c->g), PC_OK);
    PT_EXPECT("infn");
    TCHECK_RC(pc_pool_join(c->pool, 0.05), PC_ETIMEDOUT);
    TCHECK_RC(pc_pool_join(c->pool, 0), PC_ETIMEDOUT);
    gate_open(&c->g, 'j');
    TCHECK_RC(pc_pool_join(c->pool, PT_LONG), PC_OK);
    TCHECK_RC(pc_pool_join(c->pool, 0), PC_OK);

    /* The pool still works. */
    TCHECK_RC(pc_pool_run(c->pool, count_job, &c->recorded, PT_LONG, NULL),
              PC_OK);
    TCHECK_EQ(atomic_load(&c->recorded), 1);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* A waiter that times out: a running job's late result goes to the discard
 * function (no leak under ASan); a queued job is taken back and never runs;
 * join times out while a job runs. */
PT_WTEST(timeouts)
static void
timeouts(int W)
{
    struct timeout_ctx c;

    memset(&c, 0, sizeof c);
    atomic_store(&discarded, 0);
    gate_init(&c.g);
    CU_ASSERT_EQUAL_FATAL(pc_pool_new(&c.pool, 1), PC_OK);
    POOL_RUN_TASK(W, timeout_main, &c, &c.done, 1, &c.pool);
    gate_fini(&c.g);
}

/* ---- join ---------------------------------------------------------------- */

struct join_ctx {
    pc_pool *pool;
    struct gate g;
    pc_ref main, joiner;
    atomic_int count;
    atomic_int joined;
    atomic_int done;
};

#define JOIN_JOBS 200

/* Joins from a task of the driver's worker while the driver keeps going. */
static pc_msg *
join_task(void *arg)
{
    struct join_ctx *c = arg;

    TCHECK_RC(pt_send(c->main, "ready"), PC_OK);
    TCHECK_RC(pc_pool_join(c->pool, PT_LONG), PC_OK);
    TCHECK_EQ(atomic_load(&c->count), JOIN_JOBS);
    atomic_store(&c->joined, 1);
    TCHECK_RC(pt_send(c->main, "joined"), PC_OK);
    return NULL;
}

static pc_msg *
join_main(void *arg)
{
    struct join_ctx *c = arg;

    c->main = pc_self();
    c->g.notify = c->main;
    TCHECK_RC(pc_pool_join(c->pool, 0), PC_OK); /* idle */
    TCHECK_RC(pc_pool_submit(c->pool, gate_job, &c->g), PC_OK);
    for (int i = 1; i < JOIN_JOBS; i++)
        TCHECK_RC(pc_pool_submit(c->pool, count_job, &c->count), PC_OK);
    PT_EXPECT("infn");
    pt_spawn(join_task, c, PT_SELF, 0);
    PT_EXPECT("ready"); /* it is in pc_pool_join now */
    TCHECK_EQ(atomic_load(&c->joined), 0);
    atomic_fetch_add(&c->count, 1); /* for the gate job */
    gate_open(&c->g, 'j');
    PT_EXPECT("joined");
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

static void *
join_thread(void *arg)
{
    struct join_ctx *c = arg;

    TCHECK_RC(pc_pool_join(c->pool, PT_LONG), PC_OK);
    return NULL;
}

/* pc_pool_join from a task waits for queued and running jobs without
 * blocking its worker (the driver on the same worker opens the gate);
 * from main and another thread too. */
PT_WTEST(join)
static void
join(int W)
{
    struct join_ctx c;
    pthread_t th;

    memset(&c, 0, sizeof c);
    gate_init(&c.g);
    CU_ASSERT_EQUAL_FATAL(pc_pool_new(&c.pool, 2), PC_OK);

    /* from foreign threads (no node yet): main and one more */
    CU_ASSERT_EQUAL(pc_pool_submit(c.pool, gate_job, &c.g), PC_OK);
    for (int i = 0; i < 50; i++)
        CU_ASSERT_EQUAL(pc_pool_submit(c.pool, count_job, &c.count), PC_OK);
    CU_ASSERT_EQUAL(pthread_create(&th, NULL, join_thread, &c), 0);
    CU_ASSERT_EQUAL(pc_pool_join(c.pool, 0.02), PC_ETIMEDOUT);
    gate_open(&c.g, 'm');
    CU_ASSERT_EQUAL(pc_pool_join(c.pool, PT_LONG), PC_OK);
    CU_ASSERT_EQUAL(atomic_load(&c.count), 50);
    pthread_join(th, NULL);
    pt_flush();

    /* from tasks */
    atomic_store(&c.count, 0);
    POOL_RUN_TASK(W, join_main, &c, &c.done, 1, &c.pool);
    gate_fini(&c.g);
}

/* ---- free with queued jobs ----------------------------------------------- */

#define FREE_WAITERS 4

struct free_ctx {
    pc_pool *pool;
    struct gate g;
    pc_ref main, opener;
    atomic_int ran;     /* queued jobs that ran anyway */
    atomic_int closed;  /* waiters that got PC_ECLOSED */
    atomic_int freeing; /* the driver is in pc_pool_free */
    atomic_int done;
};

static pc_msg *
free_waiter(void *arg)
{
    struct free_ctx *c = arg;
    void *r = &r;

    TCHECK_RC(pt_send(c->main, "ready"), PC_OK);
    TCHECK_RC(pc_pool_run(c->pool, count_job, &c->ran, PT_LONG, &r),
              PC_ECLOSED);
    TCHECK(r == NULL);
    atomic_fetch_add(&c->closed, 1);
    TCHECK_RC(pt_send(c->opener, "closed"), PC_OK);
    return NULL;
}

/* Opens the gate once every waiter was told PC_ECLOSED: so pc_pool_free
 * (a task) cancelled them while the gate job still ran. */
static pc_msg *
free_opener(void *arg)
{
    struct free_ctx *c = arg;

    for (int i = 0; i < FREE_WAITERS; i++)
        PT_EXPECT("closed");
    TCHECK_EQ(atomic_load(&c->freeing), 1);
    gate_open(&c->g, 'o');
    return NULL;
}

static pc_msg *
free_main(void *arg)
{
    struct free_ctx *c = arg;

    c->main = pc_self();
    c->g.notify = c->main;
    c->opener = pt_spawn(free_opener, c, 1, 0);
    TCHECK_RC(pc_pool_submit(c->pool, gate_job, &c->g), PC_OK);
    PT_EXPECT("infn");
    for (int i = 0; i < FREE_WAITERS; i++) {
        pt_spawn(free_waiter, c, PT_SELF, i % 2 ? PC_TASK_SMALL : 0);
        PT_EXPECT("ready"); /* its job is queued */
    }
    for (int i = 0; i < 10; i++)
        TCHECK_RC(pc_pool_submit(c->pool, count_job, &c->ran), PC_OK);
    atomic_store(&c->freeing, 1);
    /* The waiters run on this worker while this task waits in free. */
    TCHECK_RC(pc_pool_free(&c->pool), PC_OK);
    TCHECK(c->pool == NULL);
    TCHECK_RC(pc_pool_free(&c->pool), PC_OK); /* *p NULL: no-op */
    TCHECK_EQ(atomic_load(&c->closed), FREE_WAITERS);
    TCHECK_EQ(atomic_load(&c->ran), 0);
    TCHECK_EQ(atomic_load(&c->g.started), 1);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* pc_pool_free from a task: queued jobs are cancelled (waiters get
 * PC_ECLOSED, submitted jobs never run), the running one is waited for
 * without blocking the worker. */
PT_WTEST(free_queued)
static void
free_queued(int W)
{
    struct free_ctx c;

    memset(&c, 0, sizeof c);
    gate_init(&c.g);
    CU_ASSERT_EQUAL_FATAL(pc_pool_new(&c.pool, 1), PC_OK);
    PT_RUN_TASK(W, free_main, &c, &c.done, 1);
    CU_ASSERT_PTR_NULL(c.pool);
    gate_fini(&c.g);
}

/* ---- foreign threads ----------------------------------------------------- */

struct thr_ctx {
    pc_pool *pool;
    uintptr_t base;
    int ok;
};

static void *
caller_thread(void *arg)
{
    struct thr_ctx *t = arg;

    for (uintptr_t i = 0; i < 300; i++) {
        void *r = NULL;
        uintptr_t x = t->base + i;
        if (pc_pool_run(t->pool, twice_plus_one, (void *)x, PT_LONG, &r) ==
                PC_OK &&
            (uintptr_t)r == 2 * x + 1)
            t->ok++;
    }
    return NULL;
}

static void *
self_join_job(void *arg)
{
    pc_pool **pp = arg;

    TCHECK_RC(pc_pool_join(*pp, 1), PC_EPERM);
    TCHECK_RC(pc_pool_free(pp), PC_EPERM);
    TCHECK(*pp != NULL);
    return (void *)7;
}

struct opener {
    pc_pool *pool;
    struct gate *g;
    atomic_int *n;
    int rc;
};

/* Queues a job behind the blocked ones; once pc_pool_free cancels it,
 * lets the two running jobs end. */
static void *
opener_thread(void *arg)
{
    struct opener *o = arg;

    o->rc = pc_pool_run(o->pool, count_job, o->n, PT_LONG, NULL);
    gate_open(o->g, 'e');
    gate_open(o->g, 'f');
    return NULL;
}

/* Without a node: run, submit, join, timeouts and free from plain threads;
 * join and free from a job of the pool itself are refused. */
PT_TEST(foreign_threads)
static void
foreign_threads(void)
{
    struct thr_ctx t[3];
    pthread_t th[3];
    pc_pool *pool = NULL;
    struct gate g;
    atomic_int n;
    void *r = NULL;

    CU_ASSERT_EQUAL(pc_pool_new(&pool, 0), PC_EINVAL);
    CU_ASSERT_EQUAL(pc_pool_new(&pool, -1), PC_EINVAL);
    CU_ASSERT_EQUAL(pc_pool_new(&pool, PC_POOL_MAX_THREADS + 1), PC_EINVAL);
    CU_ASSERT_EQUAL(pc_pool_new(NULL, 1), PC_EINVAL);
    CU_ASSERT_PTR_NULL(pool);
    CU_ASSERT_EQUAL(pc_pool_free(NULL), PC_OK);
    CU_ASSERT_EQUAL(pc_pool_free(&pool), PC_OK);

    CU_ASSERT_EQUAL_FATAL(pc_pool_new(&pool, 2), PC_OK);
    CU_ASSERT_EQUAL(pc_pool_run(NULL, twice_plus_one, NULL, 1, &r), PC_EINVAL);
    CU_ASSERT_EQUAL(pc_pool_run(pool, NULL, NULL, 1, &r), PC_EINVAL);
    CU_ASSERT_EQUAL(pc_pool_submit(pool, NULL, NULL), PC_EINVAL);
    CU_ASSERT_EQUAL(pc_pool_join(NULL, 1), PC_EINVAL);

    CU_ASSERT_EQUAL(pc_pool_run(pool, twice_plus_one, (void *)20, -1, &r),
                    PC_OK);
    CU_ASSERT_EQUAL((uintptr_t)r, 41);
    CU_ASSERT_EQUAL(pc_pool_run(pool, self_join_job, &pool, -1, &r), PC_OK);
    CU_ASSERT_EQUAL((uintptr_t)r, 7);

    for (int i = 0; i < 3; i++) {
        t[i].pool = pool;
        t[i].base = (uintptr_t)(i + 1) << 20;
        t[i].ok = 0;
        CU_ASSERT_EQUAL_FATAL(
            pthread_create(&th[i], NULL, caller_thread, &t[i]), 0);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        CU_ASSERT_EQUAL(t[i].ok, 300);
    }

    /* timeouts: both threads blocked on the gate, a third job queued */
    gate_init(&g);
    atomic_init(&n, 0);
    CU_ASSERT_EQUAL(pc_pool_submit(pool, gate_job, &g), PC_OK);
    CU_ASSERT_EQUAL(pc_pool_submit(pool, gate_job, &g), PC_OK);
    CU_ASSERT_EQUAL(pc_pool_run(pool, count_job, &n, 0.05, NULL), PC_ETIMEDOUT);
    CU_ASSERT_EQUAL(pc_pool_join(pool, 0.01), PC_ETIMEDOUT);
    /* a running job timing out: its result is discarded later */
    atomic_store(&discarded, 0);
    gate_open(&g, 'a'); /* one thread takes the next job */
    CU_ASSERT_EQUAL(pc_pool_join(pool, 0.05), PC_ETIMEDOUT);
    /* running by then (one thread was free), or at worst still queued */
    pc_err rr = pc_pool_run_ex(pool, gate_job_alloc, &g, discard_free, 0.2, &r);
    CU_ASSERT(rr == PC_ERUNNING || rr == PC_ETIMEDOUT);
    gate_open(&g, 'b');
    gate_open(&g, 'c');
    CU_ASSERT_EQUAL(pc_pool_join(pool, PT_LONG), PC_OK);
    CU_ASSERT_EQUAL(atomic_load(&n), 0);
    CU_ASSERT_EQUAL(atomic_load(&discarded), 1);
    /* result NULL with a discard function: discarded at once */
    CU_ASSERT_EQUAL(atomic_load(&g.started), 3);
    gate_open(&g, 'd');
    CU_ASSERT_EQUAL(
        pc_pool_run_ex(pool, gate_job_alloc, &g, discard_free, PT_LONG, NULL),
        PC_OK);
    CU_ASSERT_EQUAL(atomic_load(&discarded), 2);
    CU_ASSERT_EQUAL(atomic_load(&discarded_byte), 'd');
    pt_flush();

    /* free with jobs queued (from main): they never run; the running ones
     * are waited for (the opener lets them end once its own queued call
     * was cancelled, i.e. during the free) */
    struct opener o = {pool, &g, &n, PC_OK};
    pthread_t oth;
    for (int i = atomic_load(&g.started); i > 0; i--)
        gate_wait_started(&g); /* the notes of the jobs above (all ended) */
    CU_ASSERT_EQUAL(pc_pool_submit(pool, gate_job, &g), PC_OK);
    CU_ASSERT_EQUAL(pc_pool_submit(pool, gate_job, &g), PC_OK);
    gate_wait_started(&g);
    gate_wait_started(&g); /* both threads are in the gate */
    for (int i = 0; i < 5; i++)
        CU_ASSERT_EQUAL(pc_pool_submit(pool, count_job, &n), PC_OK);
    CU_ASSERT_EQUAL_FATAL(pthread_create(&oth, NULL, opener_thread, &o), 0);
    CU_ASSERT_EQUAL(pc_pool_free(&pool), PC_OK);
    CU_ASSERT_PTR_NULL(pool);
    pthread_join(oth, NULL);
    CU_ASSERT_EQUAL(o.rc, PC_ECLOSED);
    CU_ASSERT_EQUAL(atomic_load(&n), 0);
    gate_fini(&g);
    pt_flush();
}

/* A foreign thread (main) calls into the pool while a node runs; tasks use
 * the same pool. */
static pc_msg *
mixed_task(void *arg)
{
    pc_pool *pool = arg;

    for (uintptr_t i = 0; i < 100; i++) {
        void *r = NULL;
        TCHECK_RC(pc_pool_run(pool, twice_plus_one, (void *)i, PT_LONG, &r),
                  PC_OK);
        TCHECK_EQ((uintptr_t)r, 2 * i + 1);
    }
    return NULL;
}

PT_WTEST(main_with_node)
static void
main_with_node(int W)
{
    pc_pool *pool = NULL;
    void *r = NULL;

    CU_ASSERT_EQUAL_FATAL(pc_pool_new(&pool, 2), PC_OK);
    PT_START(W);
    for (int i = 0; i < 4; i++) {
        pc_spawn_opts o = pt_on(i, 0);
        CU_ASSERT_EQUAL(pc_spawn(mixed_task, pool, &o, NULL), PC_OK);
    }
    for (uintptr_t i = 0; i < 100; i++) {
        CU_ASSERT_EQUAL(
            pc_pool_run(pool, twice_plus_one, (void *)(i + 5), PT_LONG, &r),
            PC_OK);
        CU_ASSERT_EQUAL((uintptr_t)r, 2 * (i + 5) + 1);
    }
    CU_ASSERT_EQUAL(pc_node_join(-1), PC_OK);
    CU_ASSERT_EQUAL(pc_pool_free(&pool), PC_OK); /* before the node ends */
    PT_RUN();
}

/* ---- light actors -------------------------------------------------------- */

struct actor_state {
    pc_pool *pool;
    pc_ref driver;
    int run, join, free_rc, submit;
    atomic_int count;
};

static int
pool_actor(void *state, pc_msg *msg)
{
    struct actor_state *s = state;
    void *r = &r;

    (void)msg;
    s->run = pc_pool_run(s->pool, twice_plus_one, NULL, 1, &r);
    TCHECK(r == NULL);
    s->join = pc_pool_join(s->pool, 1);
    s->free_rc = pc_pool_free(&s->pool);
    TCHECK(s->pool != NULL);
    s->submit = pc_pool_submit(s->pool, count_job, &s->count);
    TCHECK_RC(pt_send(s->driver, "handled"), PC_OK);
    return PC_ACTOR_STOP;
}

struct actor_ctx {
    struct actor_state st;
    atomic_int done;
};

static pc_msg *
actor_main(void *arg)
{
    struct actor_ctx *c = arg;
    pc_spawn_opts o = pt_on(1, 0);
    pc_ref a;

    c->st.driver = pc_self();
    TCHECK_RC(pc_actor_spawn(pool_actor, &c->st, NULL, &o, &a), PC_OK);
    TCHECK_RC(pt_send(a, "go"), PC_OK);
    PT_EXPECT("handled");
    TCHECK_RC(pc_pool_join(c->st.pool, PT_LONG), PC_OK);
    TCHECK_EQ(atomic_load(&c->st.count), 1);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* The waiting calls return PC_EPERM in a light-actor handler; submit works. */
PT_WTEST(actor_eperm)
static void
actor_eperm(int W)
{
    struct actor_ctx c;

    memset(&c, 0, sizeof c);
    CU_ASSERT_EQUAL_FATAL(pc_pool_new(&c.st.pool, 1), PC_OK);
    POOL_RUN_TASK(W, actor_main, &c, &c.done, 1, &c.st.pool);
    CU_ASSERT_EQUAL(c.st.run, PC_EPERM);
    CU_ASSERT_EQUAL(c.st.join, PC_EPERM);
    CU_ASSERT_EQUAL(c.st.free_rc, PC_EPERM);
    CU_ASSERT_EQUAL(c.st.submit, PC_OK);
}

/* ---- a waiter terminated mid-wait ---------------------------------------- */

struct term_ctx {
    pc_pool *pool;
    struct gate g;
    atomic_int done;
};

static pc_msg *
term_waiter(void *arg)
{
    struct term_ctx *c = arg;
    void *r = NULL;

    (void)pc_pool_run_ex(c->pool, gate_job_alloc, &c->g, discard_free, PT_LONG,
                         &r);
    TCHECK(0 && "terminated waiter ran on");
    return NULL;
}

static pc_msg *
term_main(void *arg)
{
    struct term_ctx *c = arg;
    pc_ref w;

    c->g.notify = pc_self();
    w = pt_spawn(term_waiter, c, 1, PC_TASK_JOINABLE);
    PT_EXPECT("infn");
    TCHECK_RC(pc_task_terminate(w), PC_OK);
    TCHECK_RC(pc_task_join(w, PT_LONG, NULL), PC_EKILLED);
    gate_open(&c->g, 'k');
    TCHECK_RC(pc_pool_join(c->pool, PT_LONG), PC_OK);
    TCHECK_EQ(atomic_load(&discarded), 1);
    TCHECK_EQ(atomic_load(&discarded_byte), 'k');
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* A task terminated while it waits for a running job: the job's result is
 * discarded when it ends, and the pool frees cleanly (no leak under ASan). */
PT_WTEST(terminated_waiter)
static void
terminated_waiter(int W)
{
    struct term_ctx c;

    memset(&c, 0, sizeof c);
    atomic_store(&discarded, 0);
    gate_init(&c.g);
    CU_ASSERT_EQUAL_FATAL(pc_pool_new(&c.pool, 1), PC_OK);
    POOL_RUN_TASK(W, term_main, &c, &c.done, 1, &c.pool);
    gate_fini(&c.g);
}

PT_MAIN("pool", PT_WENTRY(run_basic), PT_WENTRY(run_many),
        PT_WENTRY(blocking_job), PT_WENTRY(fifo_order), PT_WENTRY(timeouts),
        PT_WENTRY(join), PT_WENTRY(free_queued), PT_ENTRY(foreign_threads),
        PT_WENTRY(main_with_node), PT_WENTRY(actor_eperm),
        PT_WENTRY(terminated_waiter))
