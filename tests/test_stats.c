/* tests/test_stats.c — the node's counters (picos/stats.h): spawned,
 * alive, sent, received, dropped and refused move by exactly what the test
 * did, and pc_node_deepest() finds the mailboxes of known depth. Each test
 * starts a node of its own and nothing else runs in it, so the counters
 * start at zero and every event is the test's. */
#include "picos/stats.h"

#include "testutil.h"

/* The counters, once every other worker has counted what it did before
 * now: a worker counts a send after the message left, so a message can
 * arrive before its count. pc_node_deepest() asks each other worker in
 * turn and each answers between its procs' runs: after it, what they did
 * before is counted and visible. */
static pc_node_stats
stats(void)
{
    pc_mbox_depth d[1];
    pc_node_stats s;

    (void)pc_node_deepest(d, 1);
    TCHECK_RC(pc_node_stats_get(&s), PC_OK);
    return s;
}

struct sctx {
    pc_ref driver;
    int acked; /* actor: messages seen */
    atomic_int done;
};

/* Says "ready", receives until "end", says "done". */
static pc_msg *
sink(void *arg)
{
    struct sctx *c = arg;
    pc_msg *m;

    pt_send(c->driver, "ready");
    while (pc_recv(&m, PT_LONG) == PC_OK) {
        bool end = pc_msg_is(m, "end");
        pc_msg_free(&m);
        if (end)
            break;
    }
    pt_send(c->driver, "done");
    return NULL;
}

/* An actor: "ping" answers "pong", "end" answers "bye" and stops. */
static int
counter_actor(void *state, pc_msg *m)
{
    struct sctx *c = state;

    c->acked++;
    if (pc_msg_is(m, "ping"))
        pt_send(c->driver, "pong");
    if (pc_msg_is(m, "end")) {
        pt_send(c->driver, "bye");
        return PC_ACTOR_STOP;
    }
    return PC_ACTOR_CONTINUE;
}

enum { K = 5, N = 40, M = 9 };

static void *
foreign_send(void *arg)
{
    struct sctx *c = arg;

    TCHECK_RC(pt_send(c->driver, "foreign"), PC_OK);
    return NULL;
}

static pc_msg *
counts_main(void *arg)
{
    struct sctx *c = arg;
    pc_ref sinks[K], a;
    pc_msg *m = NULL;
    pc_node_stats s0, s;
    pthread_t th;

    c->driver = pc_self();
    /* a foreign thread's send (counted in the node's atomics) */
    TCHECK(pthread_create(&th, NULL, foreign_send, c) == 0);
    pthread_join(th, NULL);
    TCHECK_RC(pc_recv(&m, PT_LONG), PC_OK);
    TCHECK(m && pc_msg_is(m, "foreign"));
    pc_msg_free(&m);
    s0 = stats();
    TCHECK_EQ(s0.workers, (uint32_t)pc_node_workers());
    TCHECK_EQ(s0.spawned, 1); /* this task */
    TCHECK_EQ(s0.tasks, 1);
    TCHECK_EQ(s0.actors, 0);
    TCHECK_EQ(s0.msgs_sent, 1);
    TCHECK_EQ(s0.msgs_received, 1);
    TCHECK_EQ(s0.msgs_dropped, 0);
    TCHECK_EQ(s0.msgs_refused, 0);

    for (int i = 0; i < K; i++)
        sinks[i] = pt_spawn(sink, c, 1 + i, PC_TASK_JOINABLE);
    for (int i = 0; i < K; i++)
        PT_EXPECT("ready");
    s = stats();
    TCHECK_EQ(s.spawned, 1 + K);
    TCHECK_EQ(s.tasks, 1 + K);
    TCHECK_EQ(s.msgs_sent, 1 + K);     /* K "ready" */
    TCHECK_EQ(s.msgs_received, 1 + K); /* ... received */
    TCHECK_EQ(s.actors, 0);

    for (int i = 0; i < N; i++)
        TCHECK_RC(pt_send_u64(sinks[i % K], "n", (uint64_t)i), PC_OK);
    for (int i = 0; i < K; i++)
        TCHECK_RC(pt_send(sinks[i], "end"), PC_OK);
    for (int i = 0; i < K; i++)
        PT_EXPECT("done");
    for (int i = 0; i < K; i++)
        TCHECK_RC(pc_task_join(sinks[i], PT_LONG, NULL), PC_OK);
    s = stats();
    TCHECK_EQ(s.spawned, 1 + K);
    TCHECK_EQ(s.tasks, 1); /* the sinks ended */
    /* sent: foreign 1, ready K, n N, end K, done K */
    TCHECK_EQ(s.msgs_sent, 1 + 3 * K + N);
    /* received: foreign 1, ready K (us), n N + end K (sinks), done K (us) */
    TCHECK_EQ(s.msgs_received, 1 + 3 * K + N);

    /* a light actor on another worker (W=2): M messages, then ping */
    pc_spawn_opts o = pt_on(1, 0);
    TCHECK_RC(pc_actor_spawn(counter_actor, c, NULL, &o, &a), PC_OK);
    for (int i = 0; i < M; i++)
        TCHECK_RC(pt_send(a, "x"), PC_OK);
    TCHECK_RC(pt_send(a, "ping"), PC_OK);
    PT_EXPECT("pong");
    s0 = s;
    s = stats();
    TCHECK_EQ(s.spawned, s0.spawned + 1);
    TCHECK_EQ(s.actors, 1);
    TCHECK_EQ(s.tasks, 1);
    TCHECK_EQ(s.msgs_sent, s0.msgs_sent + M + 2); /* x M, ping, pong */
    TCHECK_EQ(s.msgs_received, s0.msgs_received + M + 2);
    TCHECK_RC(pt_send(a, "end"), PC_OK);
    PT_EXPECT("bye");
    int jrc = pc_task_join(a, PT_LONG, NULL); /* it may be gone already */
    TCHECK(jrc == PC_OK || jrc == PC_ENOENT);
    s = stats();
    TCHECK_EQ(s.actors, 0);
    TCHECK_EQ(c->acked, M + 2);
    TCHECK_EQ(s.msgs_sent, s0.msgs_sent + M + 4);
    TCHECK_EQ(s.msgs_received, s0.msgs_received + M + 4);
    TCHECK_EQ(s.msgs_dropped, 0);
    TCHECK_EQ(s.msgs_refused, 0);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(counts)
static void
counts(int W)
{
    struct sctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, counts_main, &c, &c.done, 1);
}

/* ---- dropped and refused ------------------------------------------------- */

/* Says "ready", then waits for a resume without reading its mail. */
static pc_msg *
holder(void *arg)
{
    struct sctx *c = arg;

    pt_send(c->driver, "ready");
    pc_suspend(PT_LONG, NULL);
    return NULL;
}

static pc_ref
spawn_holder(struct sctx *c, int w, uint32_t cap, pc_mbox_policy pol)
{
    pc_spawn_opts o = pt_on(w, 0);
    pc_ref r = PC_REF_NIL;

    o.mailbox_cap = cap;
    o.mailbox_policy = pol;
    TCHECK_RC(pc_spawn(holder, c, &o, &r), PC_OK);
    PT_EXPECT("ready");
    return r;
}

static pc_msg *
bounded_main(void *arg)
{
    struct sctx *c = arg;
    pc_node_stats s0, s;
    pc_msg *m = NULL;
    pc_ref r;

    c->driver = pc_self();
    /* FAIL here: 2 taken, 2 refused at the call (and not sent) */
    r = spawn_holder(c, PT_SELF, 2, PC_MB_FAIL);
    s0 = stats();
    for (int i = 0; i < 4; i++)
        TCHECK_RC(pt_send(r, "n"), i < 2 ? PC_OK : PC_EFULL);
    s = stats();
    TCHECK_EQ(s.msgs_sent, s0.msgs_sent + 2);
    TCHECK_EQ(s.msgs_refused, s0.msgs_refused + 2);
    TCHECK_EQ(s.msgs_dropped, s0.msgs_dropped);
    TCHECK_RC(pc_resume(r, NULL), PC_OK);

    /* DROP: 5 sent, 3 dropped */
    r = spawn_holder(c, PT_SELF, 2, PC_MB_DROP);
    s0 = stats();
    for (int i = 0; i < 5; i++)
        TCHECK_RC(pt_send(r, "n"), PC_OK);
    s = stats();
    TCHECK_EQ(s.msgs_sent, s0.msgs_sent + 5);
    TCHECK_EQ(s.msgs_dropped, s0.msgs_dropped + 3);
    TCHECK_EQ(s.msgs_refused, s0.msgs_refused);
    TCHECK_RC(pc_resume(r, NULL), PC_OK);

    if (pc_node_workers() > 1) {
        /* FAIL on another worker: refused on arrival, told to pc_deliver */
        r = spawn_holder(c, 1, 1, PC_MB_FAIL);
        s0 = stats();
        for (int i = 0; i < 2; i++) {
            TCHECK_RC(pc_msg_new(&m, "n", NULL, 0), PC_OK);
            TCHECK_RC(pc_deliver(r, &m, PT_LONG), i == 0 ? PC_OK : PC_EFULL);
            pc_msg_free(&m);
        }
        s = stats();
        TCHECK_EQ(s.msgs_sent, s0.msgs_sent + 1);
        TCHECK_EQ(s.msgs_refused, s0.msgs_refused + 1);

        /* a message that reaches its target's worker after the target
         * ended is dropped there (the send may also find it gone first:
         * then it is neither sent nor dropped) */
        r = spawn_holder(c, 1, 0, PC_MB_FAIL);
        s0 = stats();
        TCHECK_RC(pc_monitor(pc_self(), r), PC_OK);
        TCHECK_RC(pc_task_terminate(r), PC_OK);
        int src = pt_send(r, "late");
        TCHECK(src == PC_OK || src == PC_ENOENT);
        TCHECK_RC(pc_recv_type(PC_MSG_DOWN, &m, PT_LONG), PC_OK);
        pc_msg_free(&m);
        /* stats() asks r's worker after the message: dropped by then */
        s = stats();
        TCHECK_EQ(s.msgs_dropped, s0.msgs_dropped + (src == PC_OK));
        TCHECK_EQ(s.msgs_sent, s0.msgs_sent + (src == PC_OK));
    }
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(bounded)
static void
bounded(int W)
{
    struct sctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, bounded_main, &c, &c.done, 1);
}

/* ---- deepest ------------------------------------------------------------- */

struct dctx {
    struct sctx c;
    pc_ref deep, shallow;
    size_t n_foreign;
    pc_mbox_depth foreign[4];
};

static void *
foreign_deepest(void *arg)
{
    struct dctx *d = arg;

    d->n_foreign = pc_node_deepest(d->foreign, 4);
    TCHECK_RC(pt_send(d->c.driver, "asked"), PC_OK);
    return NULL;
}

static pc_msg *
deepest_main(void *arg)
{
    struct dctx *d = arg;
    pc_mbox_depth out[8];
    pthread_t th;
    size_t n;

    d->c.driver = pc_self();
    d->deep = spawn_holder(&d->c, 1, 0, PC_MB_FAIL);
    d->shallow = spawn_holder(&d->c, 0, 0, PC_MB_FAIL);
    for (int i = 0; i < 7; i++)
        TCHECK_RC(pt_send(d->deep, "n"), PC_OK);
    for (int i = 0; i < 3; i++)
        TCHECK_RC(pt_send(d->shallow, "n"), PC_OK);

    n = pc_node_deepest(out, 8); /* our own mailbox is empty */
    TCHECK_EQ(n, 2);
    TCHECK(pc_ref_eq(out[0].task, d->deep));
    TCHECK_EQ(out[0].depth, 7);
    TCHECK(pc_ref_eq(out[1].task, d->shallow));
    TCHECK_EQ(out[1].depth, 3);
    TCHECK_EQ(pc_node_deepest(out, 1), 1);
    TCHECK(pc_ref_eq(out[0].task, d->deep));
    TCHECK_EQ(pc_node_deepest(out, 0), 0);

    /* from a foreign thread (it asks our worker too: we wait in pc_recv,
     * not in pthread_join, which would hold the worker) */
    TCHECK(pthread_create(&th, NULL, foreign_deepest, d) == 0);
    PT_EXPECT("asked");
    pthread_join(th, NULL);
    TCHECK_EQ(d->n_foreign, 2);
    TCHECK(pc_ref_eq(d->foreign[0].task, d->deep));
    TCHECK_EQ(d->foreign[0].depth, 7);
    TCHECK_EQ(d->foreign[1].depth, 3);

    TCHECK_RC(pc_resume(d->deep, NULL), PC_OK);
    TCHECK_RC(pc_resume(d->shallow, NULL), PC_OK);
    atomic_fetch_add(&d->c.done, 1);
    return NULL;
}

PT_WTEST(deepest)
static void
deepest(int W)
{
    struct dctx d;

    memset(&d, 0, sizeof d);
    PT_RUN_TASK(W, deepest_main, &d, &d.c.done, 1);
}

/* ---- channels (pc_chan_stats_all) ---------------------------------------- */

static pc_msg *
drop_some(void *ctx, const char *name, pc_msg *m)
{
    (void)ctx;
    (void)name;
    if (pc_msg_is(m, "drop"))
        pc_msg_free(&m);
    return m;
}

/* The entry of channel `name`, or NULL. */
static const pc_chan_node_stats *
chan_entry(const pc_chan_node_stats *all, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(all[i].name, name))
            return &all[i];
    return NULL;
}

static pc_msg *
chans_main(void *arg)
{
    struct sctx *c = arg;
    pc_chan *a = NULL, *b = NULL, *anon = NULL;
    pc_chan_node_stats all[8];
    const pc_chan_node_stats *e;
    pc_msg *m = NULL;
    pc_ref h[2];

    c->driver = pc_self();
    TCHECK_EQ(pc_chan_stats_all(all, 8), 0);
    TCHECK_RC(pc_chan_new(&a, "stats.a", drop_some, NULL), PC_OK);
    TCHECK_RC(pc_chan_new(&b, "stats.b", NULL, NULL), PC_OK);
    TCHECK_RC(pc_chan_new(&anon, NULL, NULL, NULL), PC_OK); /* not listed */
    for (int i = 0; i < 2; i++) {
        h[i] = spawn_holder(c, i, 0, PC_MB_FAIL);
        TCHECK_RC(pc_chan_subscribe(a, h[i]), PC_OK);
    }
    for (int i = 0; i < 8; i++) {
        TCHECK_RC(pc_msg_new(&m, i < 6 ? "keep" : "drop", NULL, 0), PC_OK);
        TCHECK_RC(pc_chan_send(a, &m), PC_OK);
    }
    TCHECK_RC(pc_msg_new(&m, "x", NULL, 0), PC_OK);
    TCHECK_RC(pc_chan_send(anon, &m), PC_OK);

    TCHECK_EQ(pc_chan_stats_all(NULL, 0), 2); /* the count without room */
    size_t n = pc_chan_stats_all(all, 8);
    TCHECK_EQ(n, 2);
    TCHECK((e = chan_entry(all, n, "stats.a")) != NULL);
    if (e) {
        TCHECK_EQ(e->published, 8);
        TCHECK_EQ(e->dropped, 2);
        TCHECK_EQ(e->delivered, 12); /* 6 kept, 2 subscribers */
        TCHECK_EQ(e->subscribers, 2);
    }
    TCHECK((e = chan_entry(all, n, "stats.b")) != NULL);
    if (e)
        TCHECK(e->published == 0 && e->delivered == 0 && e->subscribers == 0);
    TCHECK_EQ(pc_chan_stats_all(all, 1), 2); /* one filled, two there */

    for (int i = 0; i < 2; i++)
        TCHECK_RC(pc_resume(h[i], NULL), PC_OK);
    pc_chan_free(&a);
    pc_chan_free(&b);
    pc_chan_free(&anon);
    TCHECK_EQ(pc_chan_stats_all(all, 8), 0);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(chans)
static void
chans(int W)
{
    struct sctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, chans_main, &c, &c.done, 1);
}

PT_TEST(no_node)
static void
no_node(void)
{
    pc_node_stats s;
    pc_mbox_depth d[2];

    CU_ASSERT_EQUAL(pc_node_stats_get(&s), PC_ESTATE);
    CU_ASSERT_EQUAL(pc_node_stats_get(NULL), PC_EINVAL);
    CU_ASSERT_EQUAL(pc_node_deepest(d, 2), 0);
}

PT_MAIN("stats", PT_WENTRY(counts), PT_WENTRY(bounded), PT_WENTRY(deepest),
        PT_WENTRY(chans), PT_ENTRY(no_node))
