/* tests/test_actor.c — light actors: handler order and state, stop and
 * terminate with fini, stale refs, PC_EPERM for blocking calls, a million
 * actors, request/reply with tasks, join.
 *
 * A handler runs on its actor's worker one message at a time, so an actor's
 * state needs no atomics; the test reads it in main after pc_node_run().
 */
#include "testutil.h"

/* ---- order, state, stop, stale ------------------------------------------------- */

#define ORDERED 1000

struct order_state {
    pc_ref expected_self;
    pc_ref driver;
    uint64_t next;
    long count;
    long bad_order;
    long bad_self;
    long bad_sender;
    long in_task;
    long after_stop;
    bool stopped;
    char name[32];
    atomic_int fini;
    long count_at_fini;
};

static int
order_handler(void *state, pc_msg *msg)
{
    struct order_state *s = state;

    if (s->stopped)
        s->after_stop++;
    if (!pc_ref_eq(pc_self(), s->expected_self))
        s->bad_self++;
    if (pc_in_task())
        s->in_task++;
    if (!pc_ref_eq(pc_msg_sender(msg), s->driver))
        s->bad_sender++;
    if (s->count == 0)
        snprintf(s->name, sizeof s->name, "%s", pc_self_name());
    if (pc_msg_is(msg, "stop")) {
        s->stopped = true;
        return PC_ACTOR_STOP;
    }
    if (pt_u64(msg) != s->next)
        s->bad_order++;
    s->next = pt_u64(msg) + 1;
    s->count++;
    return PC_ACTOR_CONTINUE;
}

static void
order_fini(void *state)
{
    struct order_state *s = state;

    s->count_at_fini = s->count;
    atomic_fetch_add(&s->fini, 1);
}

struct order_ctx {
    struct order_state st;
    atomic_int done;
};

static pc_msg *
order_driver(void *arg)
{
    struct order_ctx *c = arg;
    pc_spawn_opts o = pt_on(1, PC_TASK_JOINABLE);
    pc_msg *v = (pc_msg *)(void *)c;
    pc_ref a = PC_REF_NIL;

    o.name = "ordered";
    c->st.driver = pc_self();
    TCHECK_RC(pc_actor_spawn(order_handler, &c->st, order_fini, &o, &a), PC_OK);
    c->st.expected_self = a; /* read by the handler after the first send */
    TCHECK(pc_alive(a));
    TCHECK_EQ(a.node, pc_node_id());
    for (uint64_t i = 0; i < ORDERED; i++)
        TCHECK_RC(pt_send_u64(a, "n", i), PC_OK);
    TCHECK_RC(pt_send(a, "stop"), PC_OK);
    /* queued behind the stop: never handled, freed with the actor */
    for (int i = 0; i < 3; i++) {
        int rc = pt_send(a, "after");
        TCHECK(rc == PC_OK || rc == PC_ENOENT);
    }
    TCHECK_RC(pc_task_join(a, PT_LONG, &v), PC_OK);
    TCHECK(v == NULL); /* actors have no exit value */
    pc_msg_free(&v);
    TCHECK_EQ(atomic_load(&c->st.fini), 1); /* ended means finalised */

    /* stale now */
    TCHECK(!pc_alive(a));
    TCHECK_RC(pt_send(a, "late"), PC_ENOENT);
    TCHECK_RC(pc_resume(a, NULL), PC_ENOENT);
    TCHECK_RC(pc_task_terminate(a), PC_ENOENT);
    TCHECK_RC(pc_task_join(a, 0.01, NULL), PC_ENOENT);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* Messages arrive in order with the actor's state; PC_ACTOR_STOP ends it,
 * fini runs once, and its ref is stale afterwards. */
PT_WTEST(actor_order_stop_fini)
static void
actor_order_stop_fini(int W)
{
    struct order_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, order_driver, &c, &c.done, 1);
    CU_ASSERT_EQUAL(c.st.count, ORDERED);
    CU_ASSERT_EQUAL(c.st.bad_order, 0);
    CU_ASSERT_EQUAL(c.st.bad_self, 0);
    CU_ASSERT_EQUAL(c.st.bad_sender, 0);
    CU_ASSERT_EQUAL(c.st.in_task, 0);
    CU_ASSERT_EQUAL(c.st.after_stop, 0);
    CU_ASSERT(c.st.stopped);
    CU_ASSERT_STRING_EQUAL(c.st.name, "ordered");
    CU_ASSERT_EQUAL(atomic_load(&c.st.fini), 1);
    CU_ASSERT_EQUAL(c.st.count_at_fini, ORDERED);
}

/* ---- terminate, node end --------------------------------------------------------- */

struct term_state {
    long handled;
    atomic_int fini;
};

static int
echo_handler(void *state, pc_msg *msg)
{
    struct term_state *s = state;

    s->handled++;
    TCHECK_RC(pt_send(pc_msg_sender(msg), "echo"), PC_OK);
    return PC_ACTOR_CONTINUE;
}

static void
term_fini(void *state)
{
    struct term_state *s = state;

    atomic_fetch_add(&s->fini, 1);
}

struct term_ctx {
    struct term_state joinable, plain;
    atomic_int done;
};

static pc_msg *
term_driver(void *arg)
{
    struct term_ctx *c = arg;
    pc_spawn_opts o = pt_on(1, PC_TASK_JOINABLE);
    pc_msg *v = (pc_msg *)(void *)c;
    pc_ref a = PC_REF_NIL, b = PC_REF_NIL;

    TCHECK_RC(pc_actor_spawn(echo_handler, &c->joinable, term_fini, &o, &a),
              PC_OK);
    o = pt_on(1, 0);
    TCHECK_RC(pc_actor_spawn(echo_handler, &c->plain, term_fini, &o, &b),
              PC_OK);
    TCHECK_RC(pt_send(a, "ping"), PC_OK);
    TCHECK_RC(pt_send(b, "ping"), PC_OK);
    PT_EXPECT("echo");
    PT_EXPECT("echo");
    for (int i = 0; i < 10; i++) /* queued mail freed with it */
        TCHECK_RC(pt_send(a, "queued"), PC_OK);
    TCHECK_RC(pc_task_terminate(a), PC_OK);
    TCHECK_RC(pc_task_join(a, PT_LONG, &v), PC_EKILLED);
    TCHECK(v == NULL);
    TCHECK(!pc_alive(a));
    TCHECK_EQ(atomic_load(&c->joinable.fini), 1);
    TCHECK_RC(pc_task_terminate(a), PC_ENOENT);
    TCHECK_RC(pc_task_terminate(b), PC_OK);
    /* drain the echoes of the queued messages, if any were handled */
    for (;;) {
        pc_msg *m = NULL;
        if (pc_recv(&m, 0) != PC_OK)
            break;
        pc_msg_free(&m);
    }
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* pc_task_terminate on an actor runs its fini once; joiners get
 * PC_EKILLED. */
PT_WTEST(actor_terminate_fini)
static void
actor_terminate_fini(int W)
{
    struct term_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, term_driver, &c, &c.done, 1);
    CU_ASSERT_EQUAL(atomic_load(&c.joinable.fini), 1);
    CU_ASSERT_EQUAL(atomic_load(&c.plain.fini), 1);
    CU_ASSERT(c.plain.handled == 1);
}

static int
idle_handler(void *state, pc_msg *msg)
{
    (void)state;
    (void)msg;
    return PC_ACTOR_CONTINUE;
}

/* Actors still alive when the node ends (a daemon actor at the normal end,
 * any actor at pc_node_stop) are finalised once. */
PT_WTEST(actor_fini_at_node_end)
static void
actor_fini_at_node_end(int W)
{
    struct term_state s1, s2, s3;
    pc_spawn_opts o;
    pc_ref r = PC_REF_NIL;

    memset(&s1, 0, sizeof s1);
    memset(&s2, 0, sizeof s2);
    memset(&s3, 0, sizeof s3);
    PT_START(W);
    o = pt_on(1, PC_TASK_DAEMON);
    CU_ASSERT_EQUAL(pc_actor_spawn(idle_handler, &s1, term_fini, &o, &r),
                    PC_OK);
    CU_ASSERT_EQUAL(pt_send(r, "x"), PC_OK);
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&s1.fini), 1);

    PT_START(W);
    o = pt_on(0, 0);
    CU_ASSERT_EQUAL(pc_actor_spawn(idle_handler, &s2, term_fini, &o, NULL),
                    PC_OK);
    o = pt_on(1, PC_TASK_DAEMON);
    CU_ASSERT_EQUAL(pc_actor_spawn(idle_handler, &s3, term_fini, &o, NULL),
                    PC_OK);
    pc_node_stop();
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&s2.fini), 1);
    CU_ASSERT_EQUAL(atomic_load(&s3.fini), 1);
}

/* ---- what a handler may call ------------------------------------------------------ */

struct perm_state {
    pc_ref driver;
    int recv, sleep, suspend, yield, deliver, join, wait_fd, set_daemon;
    int depth, self_send;
    bool in_task;
    bool self_ok;
    pc_ref self;
    int calls;
};

static int
perm_handler(void *state, pc_msg *msg)
{
    struct perm_state *s = state;
    pc_msg *m = NULL;
    int rev = 0;

    (void)msg;
    if (s->calls++ > 0)
        return PC_ACTOR_STOP; /* the three self-sent messages */
    s->in_task = pc_in_task();
    s->self = pc_self();
    s->recv = pc_recv(&m, 0);
    pc_msg_free(&m);
    s->sleep = pc_sleep(0.01);
    s->suspend = pc_suspend(0.01, NULL);
    s->yield = pc_yield();
    s->join = pc_task_join(s->driver, 0.01, NULL);
    s->wait_fd = pc_wait_fd(0, PC_READ, 0.01, &rev);
    if (pc_msg_new(&m, "d", NULL, 0) == PC_OK) {
        s->deliver = pc_deliver(s->driver, &m, 0.01);
        pc_msg_free(&m); /* kept on PC_EPERM, or NULL */
    }
    s->set_daemon = pc_set_daemon(false);
    s->self_send = PC_OK;
    for (int i = 0; i < 3; i++)
        if (pt_send(pc_self(), "self") != PC_OK)
            s->self_send = PC_EINVAL;
    s->depth = (int)pc_mailbox_depth();
    TCHECK_RC(pt_send(s->driver, "handled"), PC_OK);
    return PC_ACTOR_CONTINUE;
}

struct perm_ctx {
    struct perm_state st;
    pc_ref actor;
    atomic_int done;
};

static pc_msg *
perm_driver(void *arg)
{
    struct perm_ctx *c = arg;
    pc_spawn_opts o = pt_on(1, 0);

    c->st.driver = pc_self();
    TCHECK_RC(pc_actor_spawn(perm_handler, &c->st, NULL, &o, &c->actor), PC_OK);
    TCHECK_RC(pt_send(c->actor, "go"), PC_OK);
    PT_EXPECT("handled");
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* Blocking calls from a handler return PC_EPERM; non-blocking ones work;
 * pc_self is the actor's ref. (fini may be NULL.) */
PT_WTEST(actor_handler_calls)
static void
actor_handler_calls(int W)
{
    struct perm_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, perm_driver, &c, &c.done, 1);
    CU_ASSERT_EQUAL(c.st.recv, PC_EPERM);
    CU_ASSERT_EQUAL(c.st.sleep, PC_EPERM);
    CU_ASSERT_EQUAL(c.st.suspend, PC_EPERM);
    CU_ASSERT_EQUAL(c.st.yield, PC_EPERM);
    CU_ASSERT_EQUAL(c.st.join, PC_EPERM);
    CU_ASSERT_EQUAL(c.st.wait_fd, PC_EPERM);
    CU_ASSERT_EQUAL(c.st.deliver, PC_EPERM);
    CU_ASSERT_EQUAL(c.st.set_daemon, PC_OK);
    CU_ASSERT_EQUAL(c.st.self_send, PC_OK);
    CU_ASSERT_EQUAL(c.st.depth, 3);
    CU_ASSERT(!c.st.in_task);
    CU_ASSERT(pc_ref_eq(c.st.self, c.actor));
    CU_ASSERT_EQUAL(c.st.calls, 2);
}

/* ---- a million actors ---------------------------------------------------------- */

#define MILLION 1000000

struct million_ctx {
    long n;
    atomic_long handled;
    atomic_long fini;
    atomic_long spawned;
    atomic_int done;
};

static int
stop_at_once(void *state, pc_msg *msg)
{
    struct million_ctx *c = state;

    (void)msg;
    atomic_fetch_add_explicit(&c->handled, 1, memory_order_relaxed);
    return PC_ACTOR_STOP;
}

static void
million_fini(void *state)
{
    struct million_ctx *c = state;

    atomic_fetch_add_explicit(&c->fini, 1, memory_order_relaxed);
}

static pc_msg *
million_driver(void *arg)
{
    struct million_ctx *c = arg;
    pc_spawn_opts o;

    memset(&o, 0, sizeof o);
    o.worker = PC_WORKER_ANY;
    for (long i = 0; i < c->n; i++) {
        pc_ref r;
        int rc = pc_actor_spawn(stop_at_once, c, million_fini, &o, &r);
        if (rc != PC_OK) {
            TCHECK_RC(rc, PC_OK);
            break;
        }
        atomic_fetch_add_explicit(&c->spawned, 1, memory_order_relaxed);
        if (pt_send(r, "stop") != PC_OK) {
            TCHECK(!"send to a new actor failed");
            break;
        }
        if (i % 4096 == 0)
            pc_yield();
    }
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* 1M actors spawned over both workers, each stopped by one message. */
PT_WTEST(actor_million)
static void
actor_million(int W)
{
    struct million_ctx c;

    memset(&c, 0, sizeof c);
    c.n = pt_scaled(MILLION, 20);
    PT_RUN_TASK(W, million_driver, &c, &c.done, 1);
    CU_ASSERT_EQUAL(atomic_load(&c.spawned), c.n);
    CU_ASSERT_EQUAL(atomic_load(&c.handled), c.n);
    CU_ASSERT_EQUAL(atomic_load(&c.fini), c.n);
}

/* ---- request / reply ------------------------------------------------------------- */

#define CLIENTS 4
#define REQUESTS 1000

struct add_req {
    int64_t a, b;
    pc_ref client; /* where the doubler sends the result */
};

struct rr_state {
    pc_ref doubler;
    long handled;
    atomic_int fini;
};

/* Adds and passes the sum to the doubler actor, which answers the client. */
static int
adder(void *state, pc_msg *msg)
{
    struct rr_state *s = state;
    struct add_req r;
    size_t len = 0;
    const void *d = pc_msg_data(msg, &len);

    if (pc_msg_is(msg, "stop"))
        return PC_ACTOR_STOP;
    if (len != sizeof r) {
        TCHECK(!"adder: bad request");
        return PC_ACTOR_CONTINUE;
    }
    memcpy(&r, d, sizeof r);
    s->handled++;
    if (r.client.id == 0) {
        /* direct: reply to the sender */
        int64_t sum = r.a + r.b;
        TCHECK_RC(pc_send_data(pc_msg_sender(msg), "sum", &sum, sizeof sum),
                  PC_OK);
    } else {
        r.a = r.a + r.b;
        r.b = 0;
        TCHECK_RC(pc_send_data(s->doubler, "double", &r, sizeof r), PC_OK);
    }
    return PC_ACTOR_CONTINUE;
}

static int
doubler(void *state, pc_msg *msg)
{
    struct rr_state *s = state;
    struct add_req r;
    size_t len = 0;
    const void *d = pc_msg_data(msg, &len);
    int64_t v;

    if (pc_msg_is(msg, "stop"))
        return PC_ACTOR_STOP;
    if (len != sizeof r) {
        TCHECK(!"doubler: bad request");
        return PC_ACTOR_CONTINUE;
    }
    memcpy(&r, d, sizeof r);
    s->handled++;
    v = 2 * r.a;
    TCHECK_RC(pc_send_data(r.client, "double", &v, sizeof v), PC_OK);
    return PC_ACTOR_CONTINUE;
}

static void
rr_fini(void *state)
{
    struct rr_state *s = state;

    atomic_fetch_add(&s->fini, 1);
}

struct rr_ctx {
    struct rr_state add_st, dbl_st;
    pc_ref adder, doubler;
    atomic_long wrong;
    atomic_long answers;
    atomic_int done;
};

static pc_msg *
rr_client(void *arg)
{
    struct rr_ctx *c = arg;

    for (int i = 0; i < REQUESTS; i++) {
        struct add_req r = {i, 1000 * i, PC_REF_NIL};
        bool chain = i % 2 == 1;
        pc_msg *m = NULL;
        int64_t got = 0;
        size_t len = 0;
        const void *d;

        if (chain)
            r.client = pc_self();
        TCHECK_RC(pc_send_data(c->adder, "add", &r, sizeof r), PC_OK);
        if (pc_recv(&m, PT_LONG) != PC_OK || !m) {
            TCHECK(!"no answer");
            break;
        }
        d = pc_msg_data(m, &len);
        if (len == sizeof got)
            memcpy(&got, d, sizeof got);
        if (got != (chain ? 2 : 1) * (int64_t)(1001 * i))
            atomic_fetch_add(&c->wrong, 1);
        /* the answer's sender is the actor that made it */
        if (!pc_ref_eq(pc_msg_sender(m), chain ? c->doubler : c->adder))
            atomic_fetch_add(&c->wrong, 1);
        pc_msg_free(&m);
        atomic_fetch_add(&c->answers, 1);
    }
    return NULL;
}

static pc_msg *
rr_driver(void *arg)
{
    struct rr_ctx *c = arg;
    pc_spawn_opts o = pt_on(1, 0);
    pc_ref cl[CLIENTS];

    TCHECK_RC(pc_actor_spawn(doubler, &c->dbl_st, rr_fini, &o, &c->doubler),
              PC_OK);
    c->add_st.doubler = c->doubler;
    o = pt_on(0, 0);
    TCHECK_RC(pc_actor_spawn(adder, &c->add_st, rr_fini, &o, &c->adder), PC_OK);
    for (int i = 0; i < CLIENTS; i++)
        cl[i] = pt_spawn(rr_client, c, i, PC_TASK_JOINABLE);
    for (int i = 0; i < CLIENTS; i++)
        TCHECK_RC(pc_task_join(cl[i], PT_LONG, NULL), PC_OK);
    /* they end before the node does; fini is checked after the run */
    TCHECK_RC(pt_send(c->adder, "stop"), PC_OK);
    TCHECK_RC(pt_send(c->doubler, "stop"), PC_OK);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* Tasks on both workers call an adder actor; half of the calls go on to a
 * doubler actor on the other worker, which answers the task. */
PT_WTEST(actor_request_reply)
static void
actor_request_reply(int W)
{
    struct rr_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, rr_driver, &c, &c.done, 1);
    CU_ASSERT_EQUAL(atomic_load(&c.answers), CLIENTS * REQUESTS);
    CU_ASSERT_EQUAL(atomic_load(&c.wrong), 0);
    CU_ASSERT_EQUAL(c.add_st.handled, CLIENTS * REQUESTS);
    CU_ASSERT_EQUAL(c.dbl_st.handled, CLIENTS * REQUESTS / 2);
    CU_ASSERT_EQUAL(atomic_load(&c.add_st.fini), 1);
    CU_ASSERT_EQUAL(atomic_load(&c.dbl_st.fini), 1);
}

/* ---- join ----------------------------------------------------------------------- */

static int
stop_handler(void *state, pc_msg *msg)
{
    (void)state;
    return pc_msg_is(msg, "stop") ? PC_ACTOR_STOP : PC_ACTOR_CONTINUE;
}

struct join_ctx {
    pc_ref target;
    atomic_int done;
};

static pc_msg *
send_stop(void *arg)
{
    struct join_ctx *c = arg;

    TCHECK_RC(pt_send(c->target, "stop"), PC_OK);
    return NULL;
}

static pc_msg *
join_actor_driver(void *arg)
{
    struct join_ctx *c = arg;
    pc_spawn_opts o = pt_on(PT_SELF, 0);
    pc_msg *v = (pc_msg *)(void *)c;
    pc_ref a = PC_REF_NIL;

    /* not joinable: joined while alive; the stop comes from a task that
     * runs only once this one blocks in the join */
    TCHECK_RC(pc_actor_spawn(stop_handler, NULL, NULL, &o, &a), PC_OK);
    c->target = a;
    pt_spawn(send_stop, c, PT_SELF, 0);
    TCHECK_RC(pc_task_join(a, PT_LONG, &v), PC_OK);
    TCHECK(v == NULL);
    TCHECK(!pc_alive(a));

    /* joinable, on the other worker: timeout first, then the stop */
    o = pt_on(1, PC_TASK_JOINABLE);
    TCHECK_RC(pc_actor_spawn(stop_handler, NULL, NULL, &o, &a), PC_OK);
    TCHECK_RC(pc_task_join(a, 0.05, NULL), PC_ETIMEDOUT);
    TCHECK_RC(pt_send(a, "stop"), PC_OK);
    TCHECK_RC(pc_task_join(a, PT_LONG, NULL), PC_OK);
    TCHECK_RC(pc_task_join(a, 0, NULL), PC_ENOENT);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

static int
bye_handler(void *state, pc_msg *msg)
{
    (void)state;
    TCHECK_RC(pt_send(pc_msg_sender(msg), "bye"), PC_OK);
    return PC_ACTOR_STOP;
}

static pc_msg *
join_ended_actor_driver(void *arg)
{
    struct join_ctx *c = arg;
    pc_spawn_opts o = pt_on(1, PC_TASK_JOINABLE);
    pc_msg *v = (pc_msg *)(void *)c;
    pc_ref a = PC_REF_NIL;
    long spins = 0;

    TCHECK_RC(pc_actor_spawn(bye_handler, NULL, NULL, &o, &a), PC_OK);
    TCHECK_RC(pt_send(a, "stop"), PC_OK);
    PT_EXPECT("bye");
    while (pc_alive(a) && spins++ < 1000000)
        pc_yield();
    TCHECK(!pc_alive(a));
    /* ended before the join: PC_TASK_JOINABLE keeps it joinable once */
    TCHECK_RC(pc_task_join(a, PT_LONG, &v), PC_OK);
    TCHECK(v == NULL);
    TCHECK_RC(pc_task_join(a, 0, NULL), PC_ENOENT);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* A PC_TASK_JOINABLE actor that already ended can still be joined once
 * (actor.h: opts as for pc_spawn, only stack_size and PC_TASK_SMALL are
 * ignored). */
PT_WTEST(actor_join_ended_joinable)
static void
actor_join_ended_joinable(int W)
{
    struct join_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, join_ended_actor_driver, &c, &c.done, 1);
}

/* pc_task_join works on actors. */
PT_WTEST(actor_join)
static void
actor_join(int W)
{
    struct join_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, join_actor_driver, &c, &c.done, 1);
}

/* From the main thread: PC_ESTATE without a node, PC_EINVAL for a bad
 * worker, and sends and a timed join work with one. */
PT_TEST(actor_spawn_states)
static void
actor_spawn_states(void)
{
    pc_spawn_opts o;
    pc_ref r = PC_REF_NIL;
    struct term_state s;

    memset(&s, 0, sizeof s);
    CU_ASSERT_EQUAL(pc_actor_spawn(idle_handler, NULL, NULL, NULL, &r),
                    PC_ESTATE);
    PT_START(2);
    memset(&o, 0, sizeof o);
    o.worker = PC_WORKER(2);
    CU_ASSERT_EQUAL(pc_actor_spawn(idle_handler, NULL, NULL, &o, &r),
                    PC_EINVAL);
    o.worker = PC_WORKER(1);
    o.flags = 0;
    CU_ASSERT_EQUAL_FATAL(pc_actor_spawn(stop_handler, &s, term_fini, &o, &r),
                          PC_OK);
    CU_ASSERT(pc_alive(r));
    CU_ASSERT_EQUAL(pc_task_join(r, 0.02, NULL), PC_ETIMEDOUT);
    CU_ASSERT_EQUAL(pt_send(r, "stop"), PC_OK);
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&s.fini), 1);
}

PT_MAIN("actor", PT_WENTRY(actor_order_stop_fini),
        PT_WENTRY(actor_terminate_fini), PT_WENTRY(actor_fini_at_node_end),
        PT_WENTRY(actor_handler_calls), PT_WENTRY(actor_million),
        PT_WENTRY(actor_request_reply), PT_WENTRY(actor_join),
        PT_WENTRY(actor_join_ended_joinable), PT_ENTRY(actor_spawn_states))
