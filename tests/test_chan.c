/* tests/test_chan.c — channels: fan-out by reference, deliver and its
 * counts (waiting for n subscribers, nested channels), transforms, cycle
 * and depth refusal, the subscriber set (duplicates, unsubscribe, gone
 * tasks), fairness against direct mail, FIFO per publisher, foreign
 * threads, light actors, churn under traffic, and free.
 *
 * Synchronisation is by messages only, as in test_task.c: a task that sends
 * "ready" and then blocks without yielding is known to be blocked once
 * whoever runs on its worker receives "ready". "Worker 1" means worker 0 when
 * there is only one (pt_on takes the index modulo W).
 *
 * Absence checks ("nobody got it") rely on FIFO per sender: when a task has
 * taken a later message from the same sender and its mailbox is empty, an
 * earlier one that should not have come never came.
 */
#include "testutil.h"

/* Receive `total` messages within PT_LONG each and count them by type:
 * types[] is NULL-terminated; others count as a failure. */
static void
expect_types(int total, const char *const *types, int *counts)
{
    for (int i = 0; types[i]; i++)
        counts[i] = 0;
    for (int k = 0; k < total; k++) {
        pc_msg *m = NULL;
        int i;
        TCHECK_RC(pc_recv(&m, PT_LONG), PC_OK);
        if (!m)
            return;
        for (i = 0; types[i] && !pc_msg_is(m, types[i]); i++)
            ;
        if (types[i])
            counts[i]++;
        else
            TCHECK_STR(pc_msg_type(m), "(an expected type)");
        pc_msg_free(&m);
    }
}

/* A fresh message of `type` carrying one 64-bit value. */
static pc_msg *
msg_u64(const char *type, uint64_t v)
{
    pc_msg *m = NULL;

    TCHECK_RC(pc_msg_new(&m, type, &v, sizeof v), PC_OK);
    return m;
}

static pc_chan_stats
stats_of(const pc_chan *ch)
{
    pc_chan_stats s;

    memset(&s, 0, sizeof s);
    TCHECK_RC(pc_chan_stats_get(ch, &s), PC_OK);
    return s;
}

/* ---- fan-out --------------------------------------------------------------- */

#define FAN_N 8

struct fan_ctx {
    pc_chan *ch;
    pc_ref main;
    _Atomic(pc_msg *) sent;
    atomic_int done;
};

static pc_msg *
fan_sub(void *arg)
{
    struct fan_ctx *c = arg;
    pc_msg *m = NULL;

    TCHECK_RC(pc_chan_subscribe(c->ch, pc_self()), PC_OK);
    TCHECK_RC(pt_send(c->main, "ready"), PC_OK);
    TCHECK_RC(pc_recv(&m, PT_LONG), PC_OK);
    /* the very message the publisher made, not a copy */
    TCHECK(m != NULL && m == atomic_load(&c->sent));
    TCHECK(m != NULL && pc_msg_is(m, "news"));
    TCHECK_STR(m ? pc_msg_str(m) : NULL, "hello");
    pc_msg_free(&m);
    TCHECK_RC(pt_send(c->main, "got"), PC_OK);
    PT_EXPECT("stop");
    TCHECK_EQ(pc_mailbox_depth(), 0); /* exactly one */
    return NULL;
}

static pc_msg *
fan_main(void *arg)
{
    struct fan_ctx *c = arg;
    pc_ref subs[FAN_N];
    pc_msg *m = NULL;

    c->main = pc_self();
    TCHECK_RC(pc_chan_new(&c->ch, "fan", NULL, NULL), PC_OK);
    for (int i = 0; i < FAN_N; i++)
        subs[i] = pt_spawn(fan_sub, c, i % 2, 0);
    for (int i = 0; i < FAN_N; i++)
        PT_EXPECT("ready");
    TCHECK_EQ(pc_chan_subscribers(c->ch), FAN_N);
    TCHECK_RC(pc_msg_new(&m, "news", "hello", 5), PC_OK);
    atomic_store(&c->sent, m);
    TCHECK_RC(pc_chan_send(c->ch, &m), PC_OK);
    TCHECK(m == NULL);
    for (int i = 0; i < FAN_N; i++)
        PT_EXPECT("got");
    for (int i = 0; i < FAN_N; i++)
        TCHECK_RC(pt_send(subs[i], "stop"), PC_OK);
    pc_chan_stats s = stats_of(c->ch);
    TCHECK_EQ(s.messages, 1);
    TCHECK_EQ(s.deliveries, FAN_N);
    TCHECK_EQ(s.lost, 0);
    TCHECK_EQ(s.dropped, 0);
    TCHECK_EQ(s.subscribers, FAN_N);
    pc_chan_free(&c->ch);
    TCHECK(c->ch == NULL);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* One send reaches every subscriber on both workers exactly once, as the
 * same message object. */
PT_WTEST(fanout)
static void
fanout(int W)
{
    struct fan_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, fan_main, &c, &c.done, 1);
}

/* ---- deliver waits for n subscribers --------------------------------------- */

struct dn_ctx {
    pc_chan *ch;
    pc_ref main;
    atomic_int done;
};

static pc_msg *
dn_sub(void *arg)
{
    struct dn_ctx *c = arg;
    pc_msg *m = NULL;

    PT_EXPECT("go");
    TCHECK_RC(pc_chan_subscribe(c->ch, pc_self()), PC_OK);
    TCHECK_RC(pt_send(c->main, "subscribed"), PC_OK);
    TCHECK_RC(pc_recv(&m, PT_LONG), PC_OK);
    TCHECK(m != NULL && pc_msg_is(m, "hello"));
    pc_msg_free(&m);
    TCHECK_RC(pt_send(c->main, "got"), PC_OK);
    PT_EXPECT("stop");
    TCHECK_EQ(pc_mailbox_depth(), 0); /* the timed-out deliver sent nothing */
    return NULL;
}

static pc_msg *
dn_pub(void *arg)
{
    struct dn_ctx *c = arg;
    pc_msg *m = msg_u64("hello", 1);
    int reached = -1;

    TCHECK_RC(pt_send(c->main, "ready"), PC_OK);
    /* blocks: nobody is subscribed yet */
    TCHECK_RC(pc_chan_deliver(c->ch, &m, 3, PT_LONG, &reached), PC_OK);
    TCHECK(m == NULL);
    TCHECK_EQ(reached, 3);
    /* 5 never come: the message isn't sent, 0 reached */
    m = msg_u64("late", 2);
    reached = -1;
    TCHECK_RC(pc_chan_deliver(c->ch, &m, 5, 0.05, &reached), PC_ETIMEDOUT);
    TCHECK(m != NULL && pc_msg_is(m, "late")); /* an error: still ours */
    TCHECK_EQ(reached, 0);
    pc_msg_free(&m);
    m = msg_u64("late", 3);
    TCHECK_RC(pc_chan_deliver(c->ch, &m, 5, 0, &reached), PC_ETIMEDOUT);
    TCHECK(m != NULL);
    pc_msg_free(&m);
    TCHECK_RC(pt_send(c->main, "delivered"), PC_OK);
    return NULL;
}

static pc_msg *
dn_main(void *arg)
{
    static const char *const types[] = {"subscribed", "got", "delivered", NULL};
    struct dn_ctx *c = arg;
    pc_ref subs[3];
    int counts[3];

    c->main = pc_self();
    TCHECK_RC(pc_chan_new(&c->ch, NULL, NULL, NULL), PC_OK);
    for (int i = 0; i < 3; i++)
        subs[i] = pt_spawn(dn_sub, c, 1, 0);
    pt_spawn(dn_pub, c, PT_SELF, 0);
    PT_EXPECT("ready"); /* the publisher waits in pc_chan_deliver now */
    TCHECK_EQ(pc_chan_subscribers(c->ch), 0);
    for (int i = 0; i < 3; i++)
        TCHECK_RC(pt_send(subs[i], "go"), PC_OK);
    expect_types(7, types, counts);
    TCHECK_EQ(counts[0], 3);
    TCHECK_EQ(counts[1], 3);
    TCHECK_EQ(counts[2], 1);
    for (int i = 0; i < 3; i++)
        TCHECK_RC(pt_send(subs[i], "stop"), PC_OK);
    TCHECK_EQ(stats_of(c->ch).messages, 1);
    pc_chan_free(&c->ch);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* pc_chan_deliver(n) waits for subscribers that come later, then counts the
 * tasks reached; when n never come it sends nothing and returns 0. */
PT_WTEST(deliver_waits_for_n)
static void
deliver_waits_for_n(int W)
{
    struct dn_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, dn_main, &c, &c.done, 1);
}

/* A deliverer terminated while it waits for subscribers: the subscribe
 * that would have woken it frees its wait record and drops its hold on
 * the channel instead (LeakSanitizer sees both leak otherwise), and it
 * delivers nothing. */
static pc_msg *dt_msg; /* the publisher's: freed for it once it is gone */

static pc_msg *
dt_pub(void *arg)
{
    struct dn_ctx *c = arg;

    dt_msg = msg_u64("never", 1);
    TCHECK_RC(pt_send(c->main, "ready"), PC_OK);
    pc_chan_deliver(c->ch, &dt_msg, 2, -1, NULL); /* terminated in here */
    TCHECK(0);
    return NULL;
}

static pc_msg *
dt_idle(void *arg)
{
    (void)arg;
    PT_EXPECT("stop");
    return NULL;
}

static pc_msg *
dt_main(void *arg)
{
    struct dn_ctx *c = arg;
    pc_ref pub, subs[2];

    c->main = pc_self();
    TCHECK_RC(pc_chan_new(&c->ch, NULL, NULL, NULL), PC_OK);
    pub = pt_spawn(dt_pub, c, PT_SELF, 0);
    PT_EXPECT("ready"); /* same worker: it waits in pc_chan_deliver now */
    TCHECK_RC(pc_task_terminate(pub), PC_OK);
    pc_msg_free(&dt_msg);
    for (int i = 0; i < 2; i++) {
        subs[i] = pt_spawn(dt_idle, c, PT_SELF, 0);
        TCHECK_RC(pc_chan_subscribe(c->ch, subs[i]), PC_OK);
    }
    for (int i = 0; i < 2; i++) {
        pc_mailbox_stats st;
        TCHECK_RC(pc_mailbox_stats_get(subs[i], &st, PT_LONG), PC_OK);
        TCHECK_EQ(st.depth, 0);
        TCHECK_RC(pt_send(subs[i], "stop"), PC_OK);
    }
    pc_chan_free(&c->ch);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(deliver_terminated)
static void
deliver_terminated(int W)
{
    struct dn_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, dt_main, &c, &c.done, 1);
}

/* ---- nested channels --------------------------------------------------------- */

struct nest_ctx {
    pc_chan *a, *b;
    pc_ref main;
    atomic_int b_calls;
    atomic_int bad_name;
    atomic_int done;
};

/* B's transform: passes everything on, checks its name. */
static pc_msg *
nest_xf(void *ctx, const char *name, pc_msg *m)
{
    struct nest_ctx *c = ctx;

    if (strcmp(name, "B") != 0)
        atomic_fetch_add(&c->bad_name, 1);
    atomic_fetch_add(&c->b_calls, 1);
    return m;
}

struct nest_arg {
    struct nest_ctx *c;
    pc_chan *ch;
};

/* Subscribes to its channel, then counts what comes before "end", checking
 * the order one, two[, three]. */
static pc_msg *
nest_member(void *arg)
{
    static const char *const order[] = {"one", "two", "three"};
    const struct nest_arg a = *(struct nest_arg *)arg; /* main's stack */
    uint64_t n = 0;

    TCHECK_RC(pc_chan_subscribe(a.ch, pc_self()), PC_OK);
    TCHECK_RC(pt_send(a.c->main, "ready"), PC_OK);
    for (;;) {
        pc_msg *m = NULL;
        TCHECK_RC(pc_recv(&m, PT_LONG), PC_OK);
        if (!m || pc_msg_is(m, "end")) {
            pc_msg_free(&m);
            break;
        }
        if (n < 3)
            TCHECK_STR(pc_msg_type(m), order[n]);
        n++;
        pc_msg_free(&m);
    }
    TCHECK_EQ(pc_mailbox_depth(), 0);
    TCHECK_RC(pt_send_u64(a.c->main, "count", n), PC_OK);
    return NULL;
}

static pc_msg *
nest_main(void *arg)
{
    struct nest_ctx *c = arg;
    struct nest_arg aa = {c, NULL}, ba = {c, NULL};
    pc_msg *m;
    int reached = -1;
    uint64_t sum = 0;

    c->main = pc_self();
    TCHECK_RC(pc_chan_new(&c->a, "A", NULL, NULL), PC_OK);
    TCHECK_RC(pc_chan_new(&c->b, "B", nest_xf, c), PC_OK);
    aa.ch = c->a;
    ba.ch = c->b;
    TCHECK_RC(pc_chan_subscribe_chan(c->a, c->b), PC_OK);
    for (int i = 0; i < 2; i++)
        pt_spawn(nest_member, &aa, i, 0);
    for (int i = 0; i < 3; i++)
        pt_spawn(nest_member, &ba, i + 1, 0);
    for (int i = 0; i < 5; i++)
        PT_EXPECT("ready");
    TCHECK_EQ(pc_chan_subscribers(c->a), 3); /* 2 tasks + B */
    TCHECK_EQ(pc_chan_subscribers(c->b), 3);

    m = msg_u64("one", 1);
    TCHECK_RC(pc_chan_deliver(c->a, &m, 0, PT_LONG, &reached), PC_OK);
    TCHECK_EQ(reached, 5); /* end-point tasks over the hierarchy */
    m = msg_u64("two", 2);
    TCHECK_RC(pc_chan_send(c->a, &m), PC_OK);
    m = msg_u64("three", 3);
    TCHECK_RC(pc_chan_deliver(c->b, &m, 0, PT_LONG, &reached), PC_OK);
    TCHECK_EQ(reached, 3);
    /* n = 2 is met by the time the fan-out is over or soon after: the
     * count is at least 2 and at most 5 */
    m = msg_u64("end", 4);
    TCHECK_RC(pc_chan_deliver(c->a, &m, 2, PT_LONG, &reached), PC_OK);
    TCHECK(reached >= 2 && reached <= 5);
    for (int i = 0; i < 5; i++)
        sum += PT_EXPECT("count");
    TCHECK_EQ(sum, 2 * 2 + 3 * 3);

    pc_chan_stats sa = stats_of(c->a), sb = stats_of(c->b);
    TCHECK_EQ(sa.messages, 3);
    TCHECK_EQ(sa.deliveries, 2 * 3);
    TCHECK_EQ(sb.messages, 4);
    TCHECK_EQ(sb.deliveries, 3 * 4);
    TCHECK_EQ(atomic_load(&c->b_calls), 4);
    TCHECK_EQ(atomic_load(&c->bad_name), 0);
    pc_chan_free(&c->a);
    pc_chan_free(&c->b);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* A with 2 tasks and sub-channel B with 3: a deliver to A reaches 5, to B
 * 3; B's transform sees everything that enters B; order holds through B. */
PT_WTEST(deliver_nested)
static void
deliver_nested(int W)
{
    struct nest_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, nest_main, &c, &c.done, 1);
}

/* ---- transforms ------------------------------------------------------------- */

struct xf_ctx {
    pc_chan *ch;
    pc_ref main;
    _Atomic(pc_msg *) pass;
    atomic_int calls;
    atomic_int bad_name;
    atomic_int done;
};

/* "num" v: odd is dropped, even becomes a new "double" 2v; the rest passes
 * unchanged. */
static pc_msg *
xf_fn(void *ctx, const char *name, pc_msg *m)
{
    struct xf_ctx *c = ctx;
    pc_msg *out = NULL;
    uint64_t v;

    atomic_fetch_add(&c->calls, 1);
    if (strcmp(name, "xf") != 0)
        atomic_fetch_add(&c->bad_name, 1);
    if (!pc_msg_is(m, "num"))
        return m;
    v = pt_u64(m);
    pc_msg_free(&m);
    if (v % 2)
        return NULL;
    v *= 2;
    return pc_msg_new(&out, "double", &v, sizeof v) == PC_OK ? out : NULL;
}

static pc_msg *
xf_sub(void *arg)
{
    struct xf_ctx *c = arg;
    pc_msg *m = NULL;

    TCHECK_RC(pc_chan_subscribe(c->ch, pc_self()), PC_OK);
    TCHECK_RC(pt_send(c->main, "ready"), PC_OK);
    /* the dropped 3 never comes: 4 rewritten is the first */
    TCHECK_EQ(PT_EXPECT("double"), 8);
    TCHECK_RC(pc_recv(&m, PT_LONG), PC_OK);
    TCHECK(m != NULL && m == atomic_load(&c->pass)); /* passed unchanged */
    pc_msg_free(&m);
    TCHECK_EQ(PT_EXPECT("num"), 5); /* no transform any more */
    TCHECK_EQ(pc_mailbox_depth(), 0);
    TCHECK_RC(pt_send(c->main, "got"), PC_OK);
    return NULL;
}

static pc_msg *
xf_main(void *arg)
{
    struct xf_ctx *c = arg;
    pc_msg *m;
    int reached = -1;

    c->main = pc_self();
    TCHECK_RC(pc_chan_new(&c->ch, "xf", xf_fn, c), PC_OK);
    pt_spawn(xf_sub, c, 0, 0);
    pt_spawn(xf_sub, c, 1, 0);
    PT_EXPECT("ready");
    PT_EXPECT("ready");
    m = msg_u64("num", 3);
    TCHECK_RC(pc_chan_deliver(c->ch, &m, 0, PT_LONG, &reached), PC_OK);
    TCHECK(m == NULL);
    TCHECK_EQ(reached, 0); /* dropped */
    m = msg_u64("num", 4);
    TCHECK_RC(pc_chan_deliver(c->ch, &m, 0, PT_LONG, &reached), PC_OK);
    TCHECK_EQ(reached, 2);
    m = msg_u64("pass", 0);
    atomic_store(&c->pass, m);
    TCHECK_RC(pc_chan_send(c->ch, &m), PC_OK);
    TCHECK_RC(pc_chan_set_transform(c->ch, NULL, NULL), PC_OK);
    m = msg_u64("num", 5);
    TCHECK_RC(pc_chan_send(c->ch, &m), PC_OK);
    PT_EXPECT("got");
    PT_EXPECT("got");
    pc_chan_stats s = stats_of(c->ch);
    TCHECK_EQ(s.messages, 4);
    TCHECK_EQ(s.dropped, 1);
    TCHECK_EQ(s.deliveries, 2 * 3);
    TCHECK_EQ(atomic_load(&c->calls), 3);
    TCHECK_EQ(atomic_load(&c->bad_name), 0);
    pc_chan_free(&c->ch);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* A transform rewrites (new message), passes (same object) or drops (deliver
 * reaches 0, nobody gets it); set_transform replaces it. */
PT_WTEST(transform)
static void
transform(int W)
{
    struct xf_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, xf_main, &c, &c.done, 1);
}

/* ---- hierarchy: cycles and depth (no node needed) --------------------------- */

PT_TEST(cycles_refused)
static void
cycles_refused(void)
{
    pc_chan *a, *b, *c, *d, *chain[PC_CHAN_MAX_DEPTH + 1];

    CU_ASSERT_EQUAL(pc_chan_new(&a, NULL, NULL, NULL), PC_OK);
    CU_ASSERT_EQUAL(pc_chan_new(&b, NULL, NULL, NULL), PC_OK);
    CU_ASSERT_EQUAL(pc_chan_new(&c, NULL, NULL, NULL), PC_OK);
    CU_ASSERT_EQUAL(pc_chan_new(&d, NULL, NULL, NULL), PC_OK);

    CU_ASSERT_EQUAL(pc_chan_subscribe_chan(a, a), PC_ESTATE); /* self */
    CU_ASSERT_EQUAL(pc_chan_subscribe_chan(a, b), PC_OK);
    CU_ASSERT_EQUAL(pc_chan_subscribe_chan(b, a), PC_ESTATE); /* A→B→A */
    CU_ASSERT_EQUAL(pc_chan_subscribe_chan(a, b), PC_OK);     /* a set */
    CU_ASSERT_EQUAL(pc_chan_subscribers(a), 1);
    CU_ASSERT_EQUAL(pc_chan_subscribe_chan(b, c), PC_OK);
    CU_ASSERT_EQUAL(pc_chan_subscribe_chan(c, a), PC_ESTATE); /* A→B→C→A */
    CU_ASSERT_EQUAL(pc_chan_subscribe_chan(c, b), PC_ESTATE);
    CU_ASSERT_EQUAL(pc_chan_subscribe_chan(a, c), PC_OK); /* a shortcut */
    CU_ASSERT_EQUAL(pc_chan_subscribe_chan(b, d), PC_OK); /* a diamond */
    CU_ASSERT_EQUAL(pc_chan_subscribe_chan(c, d), PC_OK);
    CU_ASSERT_EQUAL(pc_chan_subscribe_chan(d, a), PC_ESTATE);
    CU_ASSERT_EQUAL(pc_chan_subscribers(a), 2);
    CU_ASSERT_EQUAL(pc_chan_unsubscribe_chan(a, d), PC_ENOENT);
    CU_ASSERT_EQUAL(pc_chan_unsubscribe_chan(a, c), PC_OK);
    CU_ASSERT_EQUAL(pc_chan_unsubscribe_chan(a, c), PC_ENOENT);
    CU_ASSERT_EQUAL(pc_chan_subscribers(a), 1);
    /* once A→C is gone, C→A is no cycle */
    CU_ASSERT_EQUAL(pc_chan_unsubscribe_chan(b, c), PC_OK);
    CU_ASSERT_EQUAL(pc_chan_subscribe_chan(c, a), PC_OK);
    CU_ASSERT_EQUAL(pc_chan_subscribe_chan(d, c), PC_ESTATE); /* C→A→B→D */
    CU_ASSERT_EQUAL(pc_chan_subscribe_chan(NULL, a), PC_EINVAL);
    CU_ASSERT_EQUAL(pc_chan_subscribe_chan(a, NULL), PC_EINVAL);

    /* a chain of PC_CHAN_MAX_DEPTH channels is allowed, one more is not,
     * at either end */
    for (int i = 0; i <= PC_CHAN_MAX_DEPTH; i++)
        CU_ASSERT_EQUAL(pc_chan_new(&chain[i], NULL, NULL, NULL), PC_OK);
    for (int i = 0; i + 2 < PC_CHAN_MAX_DEPTH; i++)
        CU_ASSERT_EQUAL(pc_chan_subscribe_chan(chain[i + 1], chain[i + 2]),
                        PC_OK);
    /* chain[1..MAX-1]: MAX-1 channels */
    CU_ASSERT_EQUAL(pc_chan_subscribe_chan(chain[0], chain[1]), PC_OK);
    CU_ASSERT_EQUAL(pc_chan_subscribe_chan(chain[PC_CHAN_MAX_DEPTH - 1],
                                           chain[PC_CHAN_MAX_DEPTH]),
                    PC_ETOOBIG);
    CU_ASSERT_EQUAL(pc_chan_unsubscribe_chan(chain[0], chain[1]), PC_OK);
    CU_ASSERT_EQUAL(pc_chan_subscribe_chan(chain[PC_CHAN_MAX_DEPTH - 1],
                                           chain[PC_CHAN_MAX_DEPTH]),
                    PC_OK);
    CU_ASSERT_EQUAL(pc_chan_subscribe_chan(chain[0], chain[1]), PC_ETOOBIG);
    for (int i = 0; i <= PC_CHAN_MAX_DEPTH; i++)
        pc_chan_free(&chain[i]);

    /* freeing a channel in the middle takes it out of its parents */
    pc_chan_free(&b);
    CU_ASSERT_PTR_NULL(b);
    CU_ASSERT_EQUAL(pc_chan_subscribers(a), 0);
    CU_ASSERT_EQUAL(pc_chan_subscribers(c), 2); /* C→A, C→D */
    pc_chan_free(&a);
    CU_ASSERT_EQUAL(pc_chan_subscribers(c), 1);
    pc_chan_free(&c);
    pc_chan_free(&d);
}

/* ---- names, arguments, no node ----------------------------------------------- */

PT_TEST(names_and_args)
static void
names_and_args(void)
{
    char name[PC_CHAN_NAME_MAX + 2], buf[32];
    pc_chan *a, *b, *x, *y, *many[100];
    pc_msg *m = NULL;
    int reached = -1;

    CU_ASSERT_EQUAL(pc_chan_new(&a, "news", NULL, NULL), PC_OK);
    b = a;
    CU_ASSERT_EQUAL(pc_chan_new(&b, "news", NULL, NULL), PC_ESTATE);
    CU_ASSERT_PTR_NULL(b);
    CU_ASSERT_PTR_EQUAL(pc_chan_find("news"), a);
    CU_ASSERT_STRING_EQUAL(pc_chan_name(a), "news");
    CU_ASSERT_PTR_NULL(pc_chan_find("other"));
    CU_ASSERT_PTR_NULL(pc_chan_find(NULL));
    CU_ASSERT_PTR_NULL(pc_chan_find(""));
    /* anonymous channels never clash */
    CU_ASSERT_EQUAL(pc_chan_new(&x, NULL, NULL, NULL), PC_OK);
    CU_ASSERT_EQUAL(pc_chan_new(&y, "", NULL, NULL), PC_OK);
    CU_ASSERT_STRING_EQUAL(pc_chan_name(x), "");
    memset(name, 'n', sizeof name);
    name[PC_CHAN_NAME_MAX + 1] = '\0';
    CU_ASSERT_EQUAL(pc_chan_new(&b, name, NULL, NULL), PC_EINVAL);
    name[PC_CHAN_NAME_MAX] = '\0';
    CU_ASSERT_EQUAL(pc_chan_new(&b, name, NULL, NULL), PC_OK);
    CU_ASSERT_PTR_EQUAL(pc_chan_find(name), b);
    pc_chan_free(&b);
    CU_ASSERT_EQUAL(pc_chan_new(NULL, "z", NULL, NULL), PC_EINVAL);
    for (int i = 0; i < 100; i++) {
        snprintf(buf, sizeof buf, "c%d", i);
        CU_ASSERT_EQUAL(pc_chan_new(&many[i], buf, NULL, NULL), PC_OK);
    }
    for (int i = 0; i < 100; i++) {
        snprintf(buf, sizeof buf, "c%d", i);
        CU_ASSERT_PTR_EQUAL(pc_chan_find(buf), many[i]);
    }
    for (int i = 0; i < 100; i += 2)
        pc_chan_free(&many[i]);
    for (int i = 0; i < 100; i++) {
        snprintf(buf, sizeof buf, "c%d", i);
        CU_ASSERT_PTR_EQUAL(pc_chan_find(buf), many[i]);
    }
    for (int i = 1; i < 100; i += 2)
        pc_chan_free(&many[i]);

    /* without a node: nothing to send to; the caller keeps the message */
    CU_ASSERT_EQUAL(pc_msg_new(&m, "x", NULL, 0), PC_OK);
    CU_ASSERT_EQUAL(pc_chan_send(a, &m), PC_ESTATE);
    CU_ASSERT_PTR_NOT_NULL(m);
    CU_ASSERT_EQUAL(pc_chan_deliver(a, &m, 0, 0, &reached), PC_ESTATE);
    CU_ASSERT_PTR_NOT_NULL(m);
    CU_ASSERT_EQUAL(reached, 0);
    CU_ASSERT_EQUAL(pc_chan_deliver(a, &m, -1, 0, NULL), PC_EINVAL);
    CU_ASSERT_EQUAL(pc_chan_subscribe(a, PC_REF_NIL), PC_ESTATE);
    CU_ASSERT_EQUAL(pc_chan_unsubscribe(a, PC_REF_NIL), PC_ENOENT);
    CU_ASSERT_EQUAL(pc_chan_send(NULL, &m), PC_EINVAL);
    CU_ASSERT_EQUAL(pc_chan_send(a, NULL), PC_EINVAL);
    CU_ASSERT_EQUAL(pc_chan_stats_get(a, NULL), PC_EINVAL);
    CU_ASSERT_EQUAL(pc_chan_subscribers(NULL), 0);
    pc_msg_free(&m);

    pc_chan_free(&a);
    CU_ASSERT_PTR_NULL(a);
    CU_ASSERT_PTR_NULL(pc_chan_find("news"));
    CU_ASSERT_EQUAL(pc_chan_new(&a, "news", NULL, NULL), PC_OK); /* again */
    pc_chan_free(&a);
    pc_chan_free(&x);
    pc_chan_free(&y);
    pc_chan_free(&a); /* NULL: no-op */
    pc_chan_free(NULL);
}

/* ---- the subscriber set ------------------------------------------------------ */

struct set_ctx {
    pc_chan *ch;
    pc_ref main;
    atomic_int done;
};

/* Subscribes twice, takes "one", reports, then "stop" must be all that
 * is left. */
static pc_msg *
set_sub(void *arg)
{
    struct set_ctx *c = arg;

    TCHECK_RC(pc_chan_subscribe(c->ch, pc_self()), PC_OK);
    TCHECK_RC(pc_chan_subscribe(c->ch, pc_self()), PC_OK); /* ignored */
    TCHECK_RC(pt_send(c->main, "ready"), PC_OK);
    PT_EXPECT("one");
    TCHECK_RC(pt_send(c->main, "got"), PC_OK);
    PT_EXPECT("stop");
    TCHECK_EQ(pc_mailbox_depth(), 0);
    return NULL;
}

static pc_msg *
set_main(void *arg)
{
    struct set_ctx *c = arg;
    pc_ref s;
    pc_msg *m;

    c->main = pc_self();
    TCHECK_RC(pc_chan_new(&c->ch, NULL, NULL, NULL), PC_OK);
    s = pt_spawn(set_sub, c, 1, PC_TASK_JOINABLE);
    PT_EXPECT("ready");
    TCHECK_EQ(pc_chan_subscribers(c->ch), 1);
    TCHECK_RC(pc_chan_subscribe(c->ch, s), PC_OK); /* from outside: too */
    TCHECK_EQ(pc_chan_subscribers(c->ch), 1);
    m = msg_u64("one", 1);
    TCHECK_RC(pc_chan_send(c->ch, &m), PC_OK);
    PT_EXPECT("got");
    TCHECK_RC(pc_chan_unsubscribe(c->ch, s), PC_OK);
    TCHECK_RC(pc_chan_unsubscribe(c->ch, s), PC_ENOENT);
    TCHECK_EQ(pc_chan_subscribers(c->ch), 0);
    m = msg_u64("two", 2); /* reaches nobody */
    TCHECK_RC(pc_chan_send(c->ch, &m), PC_OK);
    TCHECK(m == NULL);
    TCHECK_RC(pt_send(s, "stop"), PC_OK);
    TCHECK_RC(pc_task_join(s, PT_LONG, NULL), PC_OK);
    /* an ended task can't subscribe */
    TCHECK_RC(pc_chan_subscribe(c->ch, s), PC_ENOENT);
    TCHECK_RC(pc_chan_subscribe(c->ch, PC_REF_NIL), PC_ENOENT);
    pc_ref other = pc_self();
    other.node ^= 1;
    TCHECK_RC(pc_chan_subscribe(c->ch, other), PC_EUNREACH);
    pc_chan_stats st = stats_of(c->ch);
    TCHECK_EQ(st.messages, 2);
    TCHECK_EQ(st.deliveries, 1);
    pc_chan_free(&c->ch);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* Subscribing twice is one subscription; unsubscribe stops the flow and a
 * second one says PC_ENOENT; ended, nil and foreign refs are refused. */
PT_WTEST(subscribe_set)
static void
subscribe_set(int W)
{
    struct set_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, set_main, &c, &c.done, 1);
}

/* A subscriber that says ready and then takes two messages, or (leave)
 * ends at once. */
struct gone_arg {
    struct set_ctx *c;
    bool leave;
};

static pc_msg *
gone_sub(void *arg)
{
    const struct gone_arg a = *(struct gone_arg *)arg; /* main's stack */

    TCHECK_RC(pc_chan_subscribe(a.c->ch, pc_self()), PC_OK);
    TCHECK_RC(pt_send(a.c->main, "ready"), PC_OK);
    if (a.leave)
        return NULL;
    PT_EXPECT("one");
    PT_EXPECT("two");
    TCHECK_RC(pt_send(a.c->main, "got"), PC_OK);
    return NULL;
}

static pc_msg *
gone_main(void *arg)
{
    struct set_ctx *c = arg;
    struct gone_arg stay = {c, false}, leave = {c, true};
    pc_ref l;
    pc_msg *m;
    int reached = -1;

    c->main = pc_self();
    TCHECK_RC(pc_chan_new(&c->ch, NULL, NULL, NULL), PC_OK);
    pt_spawn(gone_sub, &stay, 0, 0);
    pt_spawn(gone_sub, &stay, 1, 0);
    l = pt_spawn(gone_sub, &leave, 1, PC_TASK_JOINABLE);
    for (int i = 0; i < 3; i++)
        PT_EXPECT("ready");
    TCHECK_RC(pc_task_join(l, PT_LONG, NULL), PC_OK);
    TCHECK_EQ(pc_chan_subscribers(c->ch), 3);
    m = msg_u64("one", 1);
    TCHECK_RC(pc_chan_send(c->ch, &m), PC_OK);
    TCHECK_EQ(pc_chan_subscribers(c->ch), 2); /* the ended one is out */
    m = msg_u64("two", 2);
    TCHECK_RC(pc_chan_deliver(c->ch, &m, 0, PT_LONG, &reached), PC_OK);
    TCHECK_EQ(reached, 2);
    PT_EXPECT("got");
    PT_EXPECT("got");
    pc_chan_stats st = stats_of(c->ch);
    TCHECK_EQ(st.lost, 1);
    TCHECK_EQ(st.deliveries, 4);
    pc_chan_free(&c->ch);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* A subscriber that ended is unsubscribed by the next send (pycos). */
PT_WTEST(auto_unsubscribe)
static void
auto_unsubscribe(int W)
{
    struct set_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, gone_main, &c, &c.done, 1);
}

/* ---- fairness and order ---------------------------------------------------------- */

#define FLOOD 10000

struct flood_ctx {
    pc_chan *ch;
    pc_ref main;
    long n;
    atomic_int done;
};

static pc_msg *
flood_sub(void *arg)
{
    struct flood_ctx *c = arg;
    uint64_t next = 0;
    int direct_at = -1;

    TCHECK_RC(pc_chan_subscribe(c->ch, pc_self()), PC_OK);
    TCHECK_RC(pt_send(c->main, "ready"), PC_OK);
    TCHECK_RC(pc_suspend(PT_LONG, NULL), PC_OK); /* messages don't wake it */
    TCHECK_EQ(pc_mailbox_depth(), c->n + 1);
    for (long i = 0; i <= c->n; i++) {
        pc_msg *m = NULL;
        TCHECK_RC(pc_recv(&m, 0), PC_OK);
        if (!m)
            break;
        if (pc_msg_is(m, "direct")) {
            direct_at = (int)i;
        } else {
            TCHECK_EQ(pt_u64(m), next); /* FIFO per publisher */
            next = pt_u64(m) + 1;
        }
        pc_msg_free(&m);
    }
    TCHECK(direct_at >= 0 && direct_at < 2);
    TCHECK_EQ(next, c->n);
    TCHECK_RC(pt_send(c->main, "got"), PC_OK);
    return NULL;
}

static pc_msg *
flood_main(void *arg)
{
    struct flood_ctx *c = arg;
    pc_ref s;

    c->main = pc_self();
    TCHECK_RC(pc_chan_new(&c->ch, NULL, NULL, NULL), PC_OK);
    s = pt_spawn(flood_sub, c, 1, 0);
    PT_EXPECT("ready");
    for (long i = 0; i < c->n; i++) {
        pc_msg *m = msg_u64("n", (uint64_t)i);
        TCHECK_RC(pc_chan_send(c->ch, &m), PC_OK);
    }
    TCHECK_RC(pt_send(s, "direct"), PC_OK);
    TCHECK_RC(pc_resume(s, NULL), PC_OK); /* after the mail, on its worker */
    PT_EXPECT("got");
    pc_chan_free(&c->ch);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* A task with 10k queued channel messages and then one direct message gets
 * the direct one within its first two receives. */
PT_WTEST(no_starvation)
static void
no_starvation(int W)
{
    struct flood_ctx c;

    memset(&c, 0, sizeof c);
    c.n = FLOOD;
    PT_RUN_TASK(W, flood_main, &c, &c.done, 1);
}

#define FIFO_PUBS 2
#define FIFO_SUBS 3

struct fifo_ctx {
    pc_chan *ch;
    pc_ref main;
    long k;
    atomic_int done;
};

struct fifo_msg {
    uint64_t pub, seq;
};

static pc_msg *
fifo_pub(void *arg)
{
    struct fifo_ctx *c = arg;
    struct fifo_msg p = {0, 0};
    pc_msg *m = NULL;

    TCHECK_RC(pc_recv(&m, PT_LONG), PC_OK); /* "go" with its number */
    p.pub = m ? pt_u64(m) : 0;
    pc_msg_free(&m);
    for (p.seq = 0; p.seq < (uint64_t)c->k; p.seq++) {
        TCHECK_RC(pc_msg_new(&m, "seq", &p, sizeof p), PC_OK);
        TCHECK_RC(pc_chan_send(c->ch, &m), PC_OK);
        if (p.seq % 64 == 63)
            TCHECK_RC(pc_yield(), PC_OK);
    }
    return NULL;
}

static pc_msg *
fifo_sub(void *arg)
{
    struct fifo_ctx *c = arg;
    uint64_t next[FIFO_PUBS] = {0};

    TCHECK_RC(pc_chan_subscribe(c->ch, pc_self()), PC_OK);
    TCHECK_RC(pt_send(c->main, "ready"), PC_OK);
    for (long i = 0; i < FIFO_PUBS * c->k; i++) {
        pc_msg *m = NULL;
        struct fifo_msg p;
        size_t len = 0;
        TCHECK_RC(pc_recv(&m, PT_LONG), PC_OK);
        if (!m)
            break;
        const void *d = pc_msg_data(m, &len);
        TCHECK_EQ(len, sizeof p);
        if (len == sizeof p) {
            memcpy(&p, d, sizeof p);
            TCHECK(p.pub < FIFO_PUBS);
            if (p.pub < FIFO_PUBS) {
                TCHECK_EQ(p.seq, next[p.pub]);
                next[p.pub] = p.seq + 1;
            }
        }
        pc_msg_free(&m);
    }
    TCHECK_RC(pt_send(c->main, "got"), PC_OK);
    return NULL;
}

static pc_msg *
fifo_main(void *arg)
{
    struct fifo_ctx *c = arg;
    pc_ref pubs[FIFO_PUBS];

    c->main = pc_self();
    TCHECK_RC(pc_chan_new(&c->ch, NULL, NULL, NULL), PC_OK);
    for (int i = 0; i < FIFO_SUBS; i++)
        pt_spawn(fifo_sub, c, i, 0);
    for (int i = 0; i < FIFO_SUBS; i++)
        PT_EXPECT("ready");
    for (int i = 0; i < FIFO_PUBS; i++)
        pubs[i] = pt_spawn(fifo_pub, c, i, 0);
    for (int i = 0; i < FIFO_PUBS; i++)
        TCHECK_RC(pt_send_u64(pubs[i], "go", (uint64_t)i), PC_OK);
    for (int i = 0; i < FIFO_SUBS; i++)
        PT_EXPECT("got");
    TCHECK_EQ(stats_of(c->ch).deliveries, FIFO_PUBS * FIFO_SUBS * c->k);
    pc_chan_free(&c->ch);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* Two publishers on different workers: every subscriber sees each one's
 * messages in the order it sent them. */
PT_WTEST(fifo_per_publisher)
static void
fifo_per_publisher(int W)
{
    struct fifo_ctx c;

    memset(&c, 0, sizeof c);
    c.k = pt_scaled(3000, 10);
    PT_RUN_TASK(W, fifo_main, &c, &c.done, 1);
}

/* ---- foreign threads ---------------------------------------------------------------- */

#define FT_SUBS 4

struct ft_ctx {
    pc_chan *ch;
    atomic_int done;
};

static pc_msg *
ft_sub(void *arg)
{
    struct ft_ctx *c = arg;

    TCHECK_RC(pc_chan_subscribe(c->ch, pc_self()), PC_OK);
    PT_EXPECT("first");
    PT_EXPECT("second");
    TCHECK_EQ(pc_mailbox_depth(), 0);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* main() as a foreign thread: deliver waits for the subscribers on a
 * condition variable, gets the acks from the workers, then a send. */
PT_WTEST(foreign_thread)
static void
foreign_thread(int W)
{
    struct ft_ctx c;
    pc_msg *m = NULL;
    int reached = -1;

    memset(&c, 0, sizeof c);
    CU_ASSERT_EQUAL(pc_chan_new(&c.ch, "ft", NULL, NULL), PC_OK);
    PT_START(W);
    for (int i = 0; i < FT_SUBS; i++) {
        pc_spawn_opts o = pt_on(i, 0);
        CU_ASSERT_EQUAL(pc_spawn(ft_sub, &c, &o, NULL), PC_OK);
    }
    CU_ASSERT_EQUAL(pc_msg_new(&m, "first", NULL, 0), PC_OK);
    CU_ASSERT_EQUAL(pc_chan_deliver(c.ch, &m, FT_SUBS, PT_LONG, &reached),
                    PC_OK);
    CU_ASSERT_PTR_NULL(m);
    CU_ASSERT_EQUAL(reached, FT_SUBS);
    CU_ASSERT_EQUAL(pc_msg_new(&m, "second", NULL, 0), PC_OK);
    CU_ASSERT_EQUAL(pc_chan_send(c.ch, &m), PC_OK);
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&c.done), FT_SUBS);
    /* the channel outlives the node; its subscribers don't */
    CU_ASSERT_EQUAL(pc_chan_subscribers(c.ch), FT_SUBS);
    PT_START(W);
    CU_ASSERT_EQUAL(pc_msg_new(&m, "third", NULL, 0), PC_OK);
    CU_ASSERT_EQUAL(pc_chan_deliver(c.ch, &m, 0, PT_LONG, &reached), PC_OK);
    CU_ASSERT_EQUAL(reached, 0);
    CU_ASSERT_EQUAL(pc_chan_subscribers(c.ch), 0);
    PT_RUN();
    pc_chan_free(&c.ch);
}

/* ---- free ---------------------------------------------------------------------------- */

struct free_ctx {
    pc_chan *parent, *doomed, *kid;
    pc_ref main;
    atomic_int done;
};

struct free_arg {
    struct free_ctx *c;
    pc_chan *ch;
    bool kid;
};

static pc_msg *
free_sub(void *arg)
{
    const struct free_arg a = *(struct free_arg *)arg; /* main's stack */

    TCHECK_RC(pc_chan_subscribe(a.ch, pc_self()), PC_OK);
    TCHECK_RC(pt_send(a.c->main, "ready"), PC_OK);
    if (a.kid) {
        PT_EXPECT("k");
        TCHECK_RC(pt_send(a.c->main, "got"), PC_OK);
    }
    PT_EXPECT("stop");
    TCHECK_EQ(pc_mailbox_depth(), 0);
    return NULL;
}

/* Waits in deliver for subscribers that never come; the free ends it. */
static pc_msg *
free_waiter(void *arg)
{
    struct free_ctx *c = arg;
    pc_msg *m = msg_u64("never", 0);
    int reached = -1;

    TCHECK_RC(pt_send(c->main, "ready"), PC_OK);
    TCHECK_RC(pc_chan_deliver(c->doomed, &m, 10, PT_LONG, &reached),
              PC_ECLOSED);
    TCHECK(m != NULL && pc_msg_is(m, "never")); /* an error: still ours */
    pc_msg_free(&m);
    TCHECK_EQ(reached, 0);
    TCHECK_RC(pt_send(c->main, "closed"), PC_OK);
    return NULL;
}

static pc_msg *
free_main(void *arg)
{
    struct free_ctx *c = arg;
    struct free_arg da = {c, NULL, false}, ka = {c, NULL, true};
    pc_ref subs[3];
    pc_msg *m;

    c->main = pc_self();
    TCHECK_RC(pc_chan_new(&c->parent, NULL, NULL, NULL), PC_OK);
    TCHECK_RC(pc_chan_new(&c->doomed, "doomed", NULL, NULL), PC_OK);
    TCHECK_RC(pc_chan_new(&c->kid, NULL, NULL, NULL), PC_OK);
    da.ch = c->doomed;
    ka.ch = c->kid;
    TCHECK_RC(pc_chan_subscribe_chan(c->parent, c->doomed), PC_OK);
    TCHECK_RC(pc_chan_subscribe_chan(c->doomed, c->kid), PC_OK);
    subs[0] = pt_spawn(free_sub, &da, 0, 0);
    subs[1] = pt_spawn(free_sub, &da, 1, 0);
    subs[2] = pt_spawn(free_sub, &ka, 1, 0);
    for (int i = 0; i < 3; i++)
        PT_EXPECT("ready");
    pt_spawn(free_waiter, c, PT_SELF, 0);
    PT_EXPECT("ready"); /* it waits in pc_chan_deliver now */
    TCHECK_EQ(pc_chan_subscribers(c->parent), 1);
    TCHECK_EQ(pc_chan_subscribers(c->doomed), 3);

    pc_chan_free(&c->doomed);
    TCHECK(c->doomed == NULL);
    PT_EXPECT("closed");
    TCHECK(pc_chan_find("doomed") == NULL);
    TCHECK_EQ(pc_chan_subscribers(c->parent), 0);
    m = msg_u64("p", 0); /* reaches nobody */
    TCHECK_RC(pc_chan_send(c->parent, &m), PC_OK);
    TCHECK_EQ(stats_of(c->parent).deliveries, 0);
    m = msg_u64("k", 0); /* the kid lives on */
    TCHECK_RC(pc_chan_send(c->kid, &m), PC_OK);
    PT_EXPECT("got");
    for (int i = 0; i < 3; i++)
        TCHECK_RC(pt_send(subs[i], "stop"), PC_OK);
    /* the kid can be linked again: nothing left of the old parent */
    TCHECK_RC(pc_chan_subscribe_chan(c->kid, c->parent), PC_OK);
    pc_chan_free(&c->parent);
    pc_chan_free(&c->kid);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* Freeing a channel with task subscribers, a parent, a sub-channel and a
 * waiting deliver: the deliver returns PC_ECLOSED, the parent forgets it,
 * the sub-channel lives on, nobody gets more mail. */
PT_WTEST(free_with_subscribers)
static void
free_with_subscribers(int W)
{
    struct free_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, free_main, &c, &c.done, 1);
}

/* ---- light actors ----------------------------------------------------------------------- */

#define ACT_N 6

struct act_ctx {
    pc_chan *ch, *echo;
    pc_ref main;
    atomic_int done;
};

/* A subscriber actor: on "ping" it may not deliver (a handler can't block)
 * but may send, here into the echo channel. */
static int
act_handler(void *state, pc_msg *msg)
{
    struct act_ctx *c = state;
    pc_msg *m = msg_u64("x", 0);
    int reached = -1;

    TCHECK(pc_msg_is(msg, "ping"));
    TCHECK_RC(pc_chan_deliver(c->ch, &m, 0, 0, &reached), PC_EPERM);
    TCHECK(m != NULL);
    TCHECK_EQ(reached, 0);
    pc_msg_free(&m);
    m = msg_u64("echo", 1);
    TCHECK_RC(pc_chan_send(c->echo, &m), PC_OK);
    TCHECK(m == NULL);
    return PC_ACTOR_STOP;
}

static pc_msg *
act_main(void *arg)
{
    struct act_ctx *c = arg;
    pc_msg *m;
    int reached = -1;

    c->main = pc_self();
    TCHECK_RC(pc_chan_new(&c->ch, NULL, NULL, NULL), PC_OK);
    TCHECK_RC(pc_chan_new(&c->echo, NULL, NULL, NULL), PC_OK);
    TCHECK_RC(pc_chan_subscribe(c->echo, pc_self()), PC_OK);
    for (int i = 0; i < ACT_N; i++) {
        pc_spawn_opts o = pt_on(i, 0);
        pc_ref a;
        TCHECK_RC(pc_actor_spawn(act_handler, c, NULL, &o, &a), PC_OK);
        TCHECK_RC(pc_chan_subscribe(c->ch, a), PC_OK);
    }
    m = msg_u64("ping", 0);
    TCHECK_RC(pc_chan_deliver(c->ch, &m, ACT_N, PT_LONG, &reached), PC_OK);
    TCHECK_EQ(reached, ACT_N);
    for (int i = 0; i < ACT_N; i++)
        PT_EXPECT("echo");
    TCHECK_EQ(stats_of(c->echo).deliveries, ACT_N);
    pc_chan_free(&c->ch);
    pc_chan_free(&c->echo);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* Light actors subscribe by ref; from a handler send works and deliver
 * is PC_EPERM. */
PT_WTEST(actor_subscribers)
static void
actor_subscribers(int W)
{
    struct act_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, act_main, &c, &c.done, 1);
}

/* ---- churn: the set changes while messages flow --------------------------------------- */

#define CHURN_ACTORS 64

struct churn_ctx {
    pc_chan *ch;
    pc_ref main;
    pc_ref actors[CHURN_ACTORS];
    long msgs, rounds;
    atomic_long received;
    atomic_int done;
};

struct churn_actor {
    struct churn_ctx *c;
    long count;
};

static int
churn_handler(void *state, pc_msg *msg)
{
    struct churn_actor *a = state;

    if (pc_msg_is(msg, "stop")) {
        atomic_fetch_add(&a->c->received, a->count);
        TCHECK_RC(pt_send(a->c->main, "done"), PC_OK);
        return PC_ACTOR_STOP;
    }
    a->count++;
    return PC_ACTOR_CONTINUE;
}

static pc_msg *
churn_pub(void *arg)
{
    struct churn_ctx *c = arg;

    for (long i = 0; i < c->msgs; i++) {
        pc_msg *m = msg_u64("n", (uint64_t)i);
        TCHECK_RC(pc_chan_send(c->ch, &m), PC_OK);
        if (i % 16 == 15)
            TCHECK_RC(pc_yield(), PC_OK);
    }
    TCHECK_RC(pt_send(c->main, "published"), PC_OK);
    return NULL;
}

static pc_msg *
churn_changer(void *arg)
{
    struct churn_ctx *c = arg;

    for (long r = 0; r < c->rounds; r++) {
        for (int i = 0; i < CHURN_ACTORS; i++) {
            if ((r + i) % 3 == 0) {
                int rc = pc_chan_unsubscribe(c->ch, c->actors[i]);
                TCHECK(rc == PC_OK || rc == PC_ENOENT);
            } else {
                TCHECK_RC(pc_chan_subscribe(c->ch, c->actors[i]), PC_OK);
            }
        }
        TCHECK_RC(pc_yield(), PC_OK);
    }
    for (int i = 0; i < CHURN_ACTORS; i++)
        TCHECK_RC(pc_chan_subscribe(c->ch, c->actors[i]), PC_OK);
    TCHECK_RC(pt_send(c->main, "churned"), PC_OK);
    return NULL;
}

static pc_msg *
churn_main(void *arg)
{
    static const char *const types[] = {"published", "churned", NULL};
    struct churn_ctx *c = arg;
    struct churn_actor st[CHURN_ACTORS];
    int counts[2];
    pc_msg *m;

    c->main = pc_self();
    TCHECK_RC(pc_chan_new(&c->ch, NULL, NULL, NULL), PC_OK);
    for (int i = 0; i < CHURN_ACTORS; i++) {
        pc_spawn_opts o = pt_on(i, 0);
        st[i].c = c;
        st[i].count = 0;
        TCHECK_RC(
            pc_actor_spawn(churn_handler, &st[i], NULL, &o, &c->actors[i]),
            PC_OK);
        /* the changer keeps about 2/3 of them subscribed at any time */
        TCHECK_RC(pc_chan_subscribe(c->ch, c->actors[i]), PC_OK);
    }
    pt_spawn(churn_pub, c, 0, 0);
    pt_spawn(churn_changer, c, 1, 0);
    expect_types(2, types, counts);
    TCHECK_EQ(counts[0], 1);
    TCHECK_EQ(counts[1], 1);
    TCHECK_EQ(pc_chan_subscribers(c->ch), CHURN_ACTORS);
    /* after everything the publisher sent: FIFO on the channel ring */
    m = msg_u64("stop", 0);
    TCHECK_RC(pc_chan_send(c->ch, &m), PC_OK);
    for (int i = 0; i < CHURN_ACTORS; i++)
        PT_EXPECT("done");
    pc_chan_stats s = stats_of(c->ch);
    TCHECK_EQ(s.lost, 0);
    TCHECK_EQ(s.messages, c->msgs + 1);
    TCHECK_EQ(s.deliveries, atomic_load(&c->received) + CHURN_ACTORS);
    TCHECK(atomic_load(&c->received) > 0);
    pc_chan_free(&c->ch);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* Subscribe and unsubscribe from one worker while another publishes: every
 * reference handed out is received, none lost, none twice. */
PT_WTEST(churn)
static void
churn(int W)
{
    struct churn_ctx c;

    memset(&c, 0, sizeof c);
    c.msgs = pt_scaled(4000, 10);
    c.rounds = pt_scaled(400, 10);
    PT_RUN_TASK(W, churn_main, &c, &c.done, 1);
}

/* ---- a large set ---------------------------------------------------------------------------- */

struct many_ctx {
    pc_chan *ch;
    long n;
    atomic_int done;
};

static int
many_handler(void *state, pc_msg *msg)
{
    (void)state;
    (void)msg;
    return PC_ACTOR_CONTINUE;
}

static pc_msg *
many_main(void *arg)
{
    struct many_ctx *c = arg;
    pc_ref *r = calloc((size_t)c->n, sizeof *r);
    pc_msg *m;
    int reached = -1;

    TCHECK(r != NULL);
    if (!r)
        return NULL;
    TCHECK_RC(pc_chan_new(&c->ch, NULL, NULL, NULL), PC_OK);
    for (long i = 0; i < c->n; i++) {
        pc_spawn_opts o = pt_on((int)i, PC_TASK_DAEMON);
        TCHECK_RC(pc_actor_spawn(many_handler, c, NULL, &o, &r[i]), PC_OK);
        TCHECK_RC(pc_chan_subscribe(c->ch, r[i]), PC_OK);
    }
    for (long i = 0; i < c->n; i++) /* all duplicates */
        TCHECK_RC(pc_chan_subscribe(c->ch, r[i]), PC_OK);
    TCHECK_EQ(pc_chan_subscribers(c->ch), c->n);
    for (long i = 1; i < c->n; i += 2)
        TCHECK_RC(pc_chan_unsubscribe(c->ch, r[i]), PC_OK);
    TCHECK_EQ(pc_chan_subscribers(c->ch), c->n / 2);
    for (long i = 1; i < c->n; i += 2)
        TCHECK_RC(pc_chan_unsubscribe(c->ch, r[i]), PC_ENOENT);
    m = msg_u64("m", 0);
    TCHECK_RC(pc_chan_deliver(c->ch, &m, 0, PT_LONG, &reached), PC_OK);
    TCHECK_EQ(reached, c->n / 2);
    for (long i = 0; i < c->n; i += 2)
        TCHECK_RC(pc_chan_unsubscribe(c->ch, r[i]), PC_OK);
    TCHECK_EQ(pc_chan_subscribers(c->ch), 0);
    for (long i = c->n - 1; i >= 0; i--)
        TCHECK_RC(pc_chan_subscribe(c->ch, r[i]), PC_OK);
    TCHECK_EQ(pc_chan_subscribers(c->ch), c->n);
    m = msg_u64("m", 1);
    TCHECK_RC(pc_chan_deliver(c->ch, &m, 0, PT_LONG, &reached), PC_OK);
    TCHECK_EQ(reached, c->n);
    TCHECK_EQ(stats_of(c->ch).deliveries, c->n / 2 + c->n);
    pc_chan_free(&c->ch);
    free(r);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* Thousands of subscribers: the set stays exact through duplicates,
 * unsubscribes in and out of order, and re-subscribes. */
PT_WTEST(many_subscribers)
static void
many_subscribers(int W)
{
    struct many_ctx c;

    memset(&c, 0, sizeof c);
    c.n = pt_scaled(20000, 10);
    PT_RUN_TASK(W, many_main, &c, &c.done, 1);
}

PT_MAIN("chan", PT_WENTRY(fanout), PT_WENTRY(deliver_waits_for_n),
        PT_WENTRY(deliver_terminated), PT_WENTRY(deliver_nested),
        PT_WENTRY(transform), PT_ENTRY(cycles_refused),
        PT_ENTRY(names_and_args), PT_WENTRY(subscribe_set),
        PT_WENTRY(auto_unsubscribe), PT_WENTRY(no_starvation),
        PT_WENTRY(fifo_per_publisher), PT_WENTRY(foreign_thread),
        PT_WENTRY(free_with_subscribers), PT_WENTRY(actor_subscribers),
        PT_WENTRY(churn), PT_WENTRY(many_subscribers))
