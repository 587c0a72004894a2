/* tests/test_select.c — selective receive: pc_recv_type, pc_recv_match with
 * a predicate and its context, timeouts and polls, waiting while unmatched
 * mail arrives, the receive mark, takes from the middle of a large (grown,
 * wrapped) mailbox checked against a model, and the calls' error codes.
 *
 * Every message carries a 64-bit value (pt_send_u64), so the order of what
 * stays queued is checked exactly: after a selective take, plain pc_recv must
 * give the others back in the order they were sent.
 *
 * Mail from another task is fenced with a last message of its own type
 * ("filled", "prefilled"): FIFO per sender means that once it is taken, all
 * that sender's earlier messages are queued. Helpers are placed on worker 1,
 * so with two workers their mail crosses workers. Timeouts only bound
 * failures, except where a timeout is what is tested.
 */
#include "../actors/internal.h" /* the ring's shape, pc__mb_visits */
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------- */

/* Predicate context: the value wanted, and how many messages were looked at. */
struct want {
    uint64_t v;
    long calls;
};

static bool
value_is(const pc_msg *m, void *ctx)
{
    struct want *w = ctx;

    w->calls++;
    return pt_u64(m) == w->v;
}

static bool
type_and_value(const pc_msg *m, void *ctx)
{
    struct want *w = ctx;

    w->calls++;
    return pc_msg_is(m, "reply") && pt_u64(m) == w->v;
}

/* Type and value. */
struct tv {
    const char *type;
    uint64_t v;
};

static bool
tv_is(const pc_msg *m, void *ctx)
{
    struct tv *w = ctx;

    return pc_msg_is(m, w->type) && pt_u64(m) == w->v;
}

/* Take the message of `type` with value v (timeout 0) and check it. */
#define TAKE(type, v) take_at(__FILE__, __LINE__, (type), (v))

static void
take_at(const char *file, int line, const char *type, uint64_t v)
{
    struct tv w = {type, v};
    pc_msg *m = NULL;
    int rc = pc_recv_match(tv_is, &w, NULL, &m, 0);

    if (rc != PC_OK || !m)
        pt_fail_at(file, line, "take of %s/%" PRIu64 ": %s", type, v,
                   pc_err_name(rc));
    else if (!pc_msg_is(m, type) || pt_u64(m) != v)
        pt_fail_at(file, line, "take: got %s/%" PRIu64 ", want %s/%" PRIu64,
                   pc_msg_type(m), pt_u64(m), type, v);
    pc_msg_free(&m);
}

static bool
is_reply(const pc_msg *m, void *ctx)
{
    long *calls = ctx;

    (*calls)++;
    return pc_msg_is(m, "reply");
}

static bool
any_msg(const pc_msg *m, void *ctx)
{
    (void)m;
    (void)ctx;
    return true;
}

static bool
never(const pc_msg *m, void *ctx)
{
    long *calls = ctx;

    (void)m;
    if (calls)
        (*calls)++;
    return false;
}

/* Take one message with pc_recv(…, 0) and check its type and value. */
#define EXPECT_NEXT(type, v) expect_next_at(__FILE__, __LINE__, (type), (v))

static void
expect_next_at(const char *file, int line, const char *type, uint64_t v)
{
    pc_msg *m = NULL;
    int rc = pc_recv(&m, 0);

    if (rc != PC_OK || !m) {
        pt_fail_at(file, line, "recv of %s/%" PRIu64 ": %s", type, v,
                   pc_err_name(rc));
        return;
    }
    if (!pc_msg_is(m, type) || pt_u64(m) != v)
        pt_fail_at(file, line, "recv: got %s/%" PRIu64 ", want %s/%" PRIu64,
                   pc_msg_type(m), pt_u64(m), type, v);
    pc_msg_free(&m);
}

/* Check that *m is a message of `type` with value v, then free it. */
#define CHECK_MSG(m, type, v) check_msg_at(__FILE__, __LINE__, (m), (type), (v))

static void
check_msg_at(const char *file, int line, pc_msg **m, const char *type,
             uint64_t v)
{
    if (!*m) {
        pt_fail_at(file, line, "no message, want %s/%" PRIu64, type, v);
        return;
    }
    if (!pc_msg_is(*m, type) || pt_u64(*m) != v)
        pt_fail_at(file, line, "got %s/%" PRIu64 ", want %s/%" PRIu64,
                   pc_msg_type(*m), pt_u64(*m), type, v);
    pc_msg_free(m);
}

struct sel_ctx {
    pc_ref main;
    pc_ref helper;
    atomic_int done;
};

/* ---- pc_recv_type -------------------------------------------------------- */

static pc_msg *
filler_abcd(void *arg)
{
    struct sel_ctx *c = arg;

    /* a, b, c, b2, d; "b2" is a second message of type "b" */
    TCHECK_RC(pt_send_u64(c->main, "a", 1), PC_OK);
    TCHECK_RC(pt_send_u64(c->main, "b", 2), PC_OK);
    TCHECK_RC(pt_send_u64(c->main, "c", 3), PC_OK);
    TCHECK_RC(pt_send_u64(c->main, "b", 4), PC_OK);
    TCHECK_RC(pt_send_u64(c->main, "d", 5), PC_OK);
    TCHECK_RC(pt_send(c->main, "filled"), PC_OK);
    return NULL;
}

static pc_msg *
recv_type_main(void *arg)
{
    struct sel_ctx *c = arg;
    static int sentinel;
    pc_msg *m = NULL;

    c->main = pc_self();
    pt_spawn(filler_abcd, c, 1, 0);
    /* "filled" is last: taking it waits for the filler and leaves the
     * five others queued */
    TCHECK_RC(pc_recv_type("filled", &m, PT_LONG), PC_OK);
    TCHECK(m != NULL && pc_msg_is(m, "filled"));
    pc_msg_free(&m);
    TCHECK_EQ(pc_mailbox_depth(), 5);

    /* the first "b", not the second */
    TCHECK_RC(pc_recv_type("b", &m, 0), PC_OK);
    CHECK_MSG(&m, "b", 2);
    TCHECK_EQ(pc_mailbox_depth(), 4);

    /* no such type: PC_ETIMEDOUT, *out NULL, nothing taken */
    m = (pc_msg *)(void *)&sentinel;
    TCHECK_RC(pc_recv_type("zzz", &m, 0), PC_ETIMEDOUT);
    TCHECK(m == NULL);
    TCHECK_EQ(pc_mailbox_depth(), 4);

    /* the rest in order, the second "b" in its place */
    EXPECT_NEXT("a", 1);
    EXPECT_NEXT("c", 3);
    EXPECT_NEXT("b", 4);
    EXPECT_NEXT("d", 5);
    TCHECK_EQ(pc_mailbox_depth(), 0);
    TCHECK_RC(pc_recv(&m, 0), PC_ETIMEDOUT);

    /* again from the back: the last message taken first */
    for (uint64_t i = 1; i <= 5; i++)
        TCHECK_RC(pt_send_u64(pc_self(), i == 5 ? "last" : "x", i), PC_OK);
    TCHECK_RC(pc_recv_type("last", &m, 0), PC_OK);
    CHECK_MSG(&m, "last", 5);
    for (uint64_t i = 1; i <= 4; i++)
        EXPECT_NEXT("x", i);

    /* a mailbox holding a single message: not matched, then matched */
    TCHECK_RC(pt_send_u64(pc_self(), "only", 7), PC_OK);
    TCHECK_RC(pc_recv_type("other", &m, 0), PC_ETIMEDOUT);
    TCHECK_EQ(pc_mailbox_depth(), 1);
    TCHECK_RC(pc_recv_type("only", &m, 0), PC_OK);
    CHECK_MSG(&m, "only", 7);
    TCHECK_EQ(pc_mailbox_depth(), 0);
    /* and the mailbox still works afterwards */
    TCHECK_RC(pt_send_u64(pc_self(), "after", 8), PC_OK);
    TCHECK_RC(pt_send_u64(pc_self(), "after", 9), PC_OK);
    EXPECT_NEXT("after", 8);
    EXPECT_NEXT("after", 9);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* pc_recv_type takes the first message of its type; the others stay queued
 * in order. */
PT_WTEST(recv_type_first_of_type)
static void
recv_type_first_of_type(int W)
{
    struct sel_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, recv_type_main, &c, &c.done, 1);
}

/* ---- pc_recv_match: predicate, ctx, timeouts, polls ---------------------- */

static pc_msg *
match_timeout_main(void *arg)
{
    struct sel_ctx *c = arg;
    static int sentinel;
    struct want w;
    pc_msg *m = NULL;
    double t0;

    for (uint64_t v = 10; v < 20; v++)
        TCHECK_RC(pt_send_u64(pc_self(), "n", v), PC_OK);

    /* the predicate sees each message up to the match, with its ctx */
    w.v = 15;
    w.calls = 0;
    TCHECK_RC(pc_recv_match(value_is, &w, NULL, &m, 0), PC_OK);
    CHECK_MSG(&m, "n", 15);
    TCHECK_EQ(w.calls, 6);
    TCHECK_EQ(pc_mailbox_depth(), 9);

    /* nothing matches: a timed wait expires with *out NULL and nothing
     * taken; every message was looked at, none twice */
    w.v = 99;
    w.calls = 0;
    m = (pc_msg *)(void *)&sentinel;
    t0 = pc_now();
    TCHECK_RC(pc_recv_match(value_is, &w, NULL, &m, 0.05), PC_ETIMEDOUT);
    TCHECK(pt_since(t0) >= 0.045);
    TCHECK(m == NULL);
    TCHECK_EQ(w.calls, 9);
    TCHECK_EQ(pc_mailbox_depth(), 9);

    /* timeout 0 polls: no wait, no match */
    m = (pc_msg *)(void *)&sentinel;
    t0 = pc_now();
    TCHECK_RC(pc_recv_match(value_is, &w, NULL, &m, 0), PC_ETIMEDOUT);
    TCHECK(pt_since(t0) < 1.0);
    TCHECK(m == NULL);
    TCHECK_EQ(pc_mailbox_depth(), 9);

    /* a poll that finds one; the first of several candidates */
    w.v = 12;
    TCHECK_RC(pc_recv_match(value_is, &w, NULL, &m, 0), PC_OK);
    CHECK_MSG(&m, "n", 12);
    /* a queued match is taken at once whatever the timeout */
    w.v = 19;
    TCHECK_RC(pc_recv_match(value_is, &w, NULL, &m, -1), PC_OK);
    CHECK_MSG(&m, "n", 19);
    w.v = 10;
    TCHECK_RC(pc_recv_match(value_is, &w, NULL, &m, PT_LONG), PC_OK);
    CHECK_MSG(&m, "n", 10);

    /* the others, in order */
    TCHECK_EQ(pc_mailbox_depth(), 6);
    EXPECT_NEXT("n", 11);
    EXPECT_NEXT("n", 13);
    EXPECT_NEXT("n", 14);
    EXPECT_NEXT("n", 16);
    EXPECT_NEXT("n", 17);
    EXPECT_NEXT("n", 18);
    TCHECK_EQ(pc_mailbox_depth(), 0);

    /* an empty mailbox: poll and timed wait */
    TCHECK_RC(pc_recv_match(any_msg, NULL, NULL, &m, 0), PC_ETIMEDOUT);
    TCHECK(m == NULL);
    t0 = pc_now();
    TCHECK_RC(pc_recv_match(any_msg, NULL, NULL, &m, 0.05), PC_ETIMEDOUT);
    TCHECK(pt_since(t0) >= 0.045);
    TCHECK(m == NULL);
    /* the timers of the waits above must not fire into this one */
    TCHECK_RC(pc_suspend(0.1, NULL), PC_ETIMEDOUT);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(recv_match_timeout_and_poll)
static void
recv_match_timeout_and_poll(int W)
{
    struct sel_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, match_timeout_main, &c, &c.done, 1);
}

/* ---- waiting while other mail arrives ------------------------------------ */

#define NOISE 40

static pc_msg *
noise_then_match(void *arg)
{
    struct sel_ctx *c = arg;
    pc_msg *m = NULL;

    PT_EXPECT("go");
    for (uint64_t i = 0; i < NOISE; i++) {
        /* delivered: in the waiter's mailbox (so it has been woken) before
         * the next one; the yield lets it run again when on this worker */
        TCHECK_RC(pc_msg_new(&m, "noise", &i, sizeof i), PC_OK);
        TCHECK_RC(pc_deliver(c->main, &m, PT_LONG), PC_OK);
        TCHECK_RC(pc_yield(), PC_OK);
    }
    TCHECK_RC(pt_send_u64(c->main, "want", 1000), PC_OK);
    TCHECK_RC(pt_send_u64(c->main, "noise", NOISE), PC_OK);
    return NULL;
}

static pc_msg *
noise_only(void *arg)
{
    struct sel_ctx *c = arg;

    PT_EXPECT("go");
    for (uint64_t i = 0; i < NOISE; i++) {
        TCHECK_RC(pt_send_u64(c->main, "noise", i), PC_OK);
        TCHECK_RC(pc_yield(), PC_OK);
    }
    TCHECK_RC(pt_send(c->main, "filled"), PC_OK);
    return NULL;
}

/* Unmatched mail every 20 ms for 0.8 s, then "filled". */
static pc_msg *
noise_slow(void *arg)
{
    struct sel_ctx *c = arg;

    PT_EXPECT("go");
    for (uint64_t i = 0; i < NOISE; i++) {
        TCHECK_RC(pt_send_u64(c->main, "noise", i), PC_OK);
        TCHECK_RC(pc_sleep(0.02), PC_OK);
    }
    TCHECK_RC(pt_send(c->main, "filled"), PC_OK);
    return NULL;
}

static pc_msg *
wait_main(void *arg)
{
    struct sel_ctx *c = arg;
    struct want w = {1000, 0};
    pc_msg *m = NULL;
    pc_ref h;

    c->main = pc_self();

    /* 1. Wait forever; NOISE unmatched messages arrive one by one while it
     * waits, then the match: it ends the wait, the noise stays in order. */
    h = pt_spawn(noise_then_match, c, 1, PC_TASK_JOINABLE);
    TCHECK_RC(pt_send(h, "go"), PC_OK);
    TCHECK_RC(pc_recv_match(value_is, &w, NULL, &m, -1), PC_OK);
    CHECK_MSG(&m, "want", 1000);
    /* each message looked at once: a waiting receive only looks at new
     * arrivals, and the noise sent after the match was not looked at */
    TCHECK_EQ(w.calls, NOISE + 1);
    TCHECK_RC(pc_task_join(h, PT_LONG, NULL), PC_OK);
    /* the helper's last message follows the match: depth is final */
    TCHECK_EQ(pc_mailbox_depth(), NOISE + 1);
    for (uint64_t i = 0; i <= NOISE; i++)
        EXPECT_NEXT("noise", i);

    /* 2. The same with pc_recv_type and a timeout (a bound only). */
    h = pt_spawn(noise_then_match, c, 1, PC_TASK_JOINABLE);
    TCHECK_RC(pt_send(h, "go"), PC_OK);
    TCHECK_RC(pc_recv_type("want", &m, PT_LONG), PC_OK);
    CHECK_MSG(&m, "want", 1000);
    TCHECK_RC(pc_task_join(h, PT_LONG, NULL), PC_OK);
    for (uint64_t i = 0; i <= NOISE; i++)
        EXPECT_NEXT("noise", i);
    TCHECK_EQ(pc_mailbox_depth(), 0);

    /* 3. Unmatched arrivals during a timed wait that never matches: it
     * still times out, and nothing is lost. */
    w.v = 4242;
    w.calls = 0;
    h = pt_spawn(noise_only, c, 1, PC_TASK_JOINABLE);
    TCHECK_RC(pt_send(h, "go"), PC_OK);
    TCHECK_RC(pc_recv_match(value_is, &w, NULL, &m, 0.2), PC_ETIMEDOUT);
    TCHECK(m == NULL);
    TCHECK_RC(pc_recv_type("filled", &m, PT_LONG), PC_OK);
    pc_msg_free(&m);
    TCHECK_RC(pc_task_join(h, PT_LONG, NULL), PC_OK);
    TCHECK_EQ(pc_mailbox_depth(), NOISE);
    for (uint64_t i = 0; i < NOISE; i++)
        EXPECT_NEXT("noise", i);

    /* 4. The same while unmatched mail keeps coming for longer than the
     * timeout: each arrival wakes the wait, but the deadline stays where
     * it was (if each wake restarted it, the wait would last until the
     * noise stops, 0.8 s + 0.2 s). */
    h = pt_spawn(noise_slow, c, 1, PC_TASK_JOINABLE);
    TCHECK_RC(pt_send(h, "go"), PC_OK);
    {
        double t0 = pc_now(), el;
        TCHECK_RC(pc_recv_match(value_is, &w, NULL, &m, 0.2), PC_ETIMEDOUT);
        el = pt_since(t0);
        TCHECK(el >= 0.19);
        TCHECK(el < 0.6);
    }
    TCHECK_RC(pc_recv_type("filled", &m, PT_LONG), PC_OK);
    pc_msg_free(&m);
    TCHECK_RC(pc_task_join(h, PT_LONG, NULL), PC_OK);
    TCHECK_EQ(pc_mailbox_depth(), NOISE);
    for (uint64_t i = 0; i < NOISE; i++)
        EXPECT_NEXT("noise", i);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* A waiting pc_recv_match is woken by a matching message sent later from
 * another task (the other worker with two); unmatched arrivals don't end
 * the wait and stay queued in order. */
PT_WTEST(recv_match_waits)
static void
recv_match_waits(int W)
{
    struct sel_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, wait_main, &c, &c.done, 1);
}

/* ---- the receive mark ---------------------------------------------------- */

#define OLD 50
#define ROUNDS 200

/* Answers "prefill" with OLD replies (values 0..OLD-1) and "prefilled",
 * "request" v with "reply" v + 1,000,000, and ends on "stop". With "burst"
 * v it first sends v noise messages, then the reply. */
static pc_msg *
server(void *arg)
{
    struct sel_ctx *c = arg;
    pc_msg *m = NULL;

    for (;;) {
        if (pc_recv(&m, PT_LONG) != PC_OK) {
            TCHECK(!"server: no request");
            return NULL;
        }
        if (pc_msg_is(m, "stop")) {
            pc_msg_free(&m);
            return NULL;
        }
        if (pc_msg_is(m, "prefill")) {
            for (uint64_t i = 0; i < OLD; i++)
                TCHECK_RC(pt_send_u64(c->main, "reply", i), PC_OK);
            TCHECK_RC(pt_send(c->main, "prefilled"), PC_OK);
        } else if (pc_msg_is(m, "request")) {
            TCHECK_RC(pt_send_u64(c->main, "reply", pt_u64(m) + 1000000),
                      PC_OK);
        } else if (pc_msg_is(m, "burst")) {
            uint64_t n = pt_u64(m);
            for (uint64_t i = 0; i < n; i++)
                TCHECK_RC(pt_send_u64(c->main, "noise", i), PC_OK);
            TCHECK_RC(pt_send_u64(c->main, "reply", 2000000), PC_OK);
        } else {
            TCHECK(!"server: unexpected message");
        }
        pc_msg_free(&m);
    }
}

static pc_msg *
mark_main(void *arg)
{
    struct sel_ctx *c = arg;
    pc_msg *m = NULL;
    long calls = 0;
    pc_mark mk;
    pc_ref s;

    c->main = pc_self();
    s = pt_spawn(server, c, 1, PC_TASK_JOINABLE);

    /* OLD replies from the server queued before the mark */
    TCHECK_RC(pt_send(s, "prefill"), PC_OK);
    TCHECK_RC(pc_recv_type("prefilled", &m, PT_LONG), PC_OK);
    pc_msg_free(&m);
    TCHECK_EQ(pc_mailbox_depth(), OLD);

    /* mark, request, wait for a reply after the mark: the new one, and
     * nothing before the mark is even looked at */
    mk = pc_mailbox_mark();
    TCHECK_RC(pt_send_u64(s, "request", 7), PC_OK);
    TCHECK_RC(pc_recv_match(is_reply, &calls, &mk, &m, PT_LONG), PC_OK);
    CHECK_MSG(&m, "reply", 1000007);
    TCHECK_EQ(calls, 1);
    TCHECK_EQ(pc_mailbox_depth(), OLD);

    /* nothing after the mark any more: times out though older replies
     * match, and leaves them */
    TCHECK_RC(pc_recv_match(is_reply, &calls, &mk, &m, 0), PC_ETIMEDOUT);
    TCHECK(m == NULL);
    TCHECK_RC(pc_recv_match(is_reply, &calls, &mk, &m, 0.02), PC_ETIMEDOUT);
    TCHECK(m == NULL);
    TCHECK_EQ(pc_mailbox_depth(), OLD);

    /* a mark stays valid while older messages are popped or taken */
    mk = pc_mailbox_mark();
    TCHECK_RC(pt_send_u64(s, "request", 8), PC_OK);
    EXPECT_NEXT("reply", 0);
    EXPECT_NEXT("reply", 1);
    {
        struct want w = {OLD - 1, 0};
        TCHECK_RC(pc_recv_match(value_is, &w, NULL, &m, 0), PC_OK);
        CHECK_MSG(&m, "reply", OLD - 1);
    }
    TCHECK_RC(pc_recv_match(is_reply, &calls, &mk, &m, PT_LONG), PC_OK);
    CHECK_MSG(&m, "reply", 1000008);

    /* the ring grows between the mark and the reply: many messages after
     * the mark, the reply last */
    mk = pc_mailbox_mark();
    TCHECK_RC(pt_send_u64(s, "burst", 300), PC_OK);
    TCHECK_RC(pc_recv_match(is_reply, &calls, &mk, &m, PT_LONG), PC_OK);
    CHECK_MSG(&m, "reply", 2000000);

    /* the old replies (but the three taken) and the burst, in order */
    TCHECK_EQ(pc_mailbox_depth(), OLD - 3 + 300);
    for (uint64_t i = 2; i < OLD - 1; i++)
        EXPECT_NEXT("reply", i);
    for (uint64_t i = 0; i < 300; i++)
        EXPECT_NEXT("noise", i);
    TCHECK_EQ(pc_mailbox_depth(), 0);

    /* request/reply in a loop while stale replies pile up before each
     * mark: each receive takes its own reply, never an old one */
    for (uint64_t i = 0; i < ROUNDS; i++) {
        struct want w = {1000000 + i, 0};
        TCHECK_RC(pt_send_u64(pc_self(), "reply", 5000000 + i), PC_OK);
        mk = pc_mailbox_mark();
        TCHECK_RC(pt_send_u64(s, "request", i), PC_OK);
        calls = 0;
        TCHECK_RC(pc_recv_match(is_reply, &calls, &mk, &m, PT_LONG), PC_OK);
        if (m && pt_u64(m) != w.v)
            TCHECK_EQ(pt_u64(m), w.v);
        pc_msg_free(&m);
        TCHECK_EQ(calls, 1); /* no rescan of the i stale ones */
    }
    TCHECK_EQ(pc_mailbox_depth(), ROUNDS);
    for (uint64_t i = 0; i < ROUNDS; i++)
        EXPECT_NEXT("reply", 5000000 + i);

    /* a mark taken with an empty mailbox, and one with one message in it
     * (no ring buffer yet) */
    mk = pc_mailbox_mark();
    TCHECK_RC(pt_send_u64(pc_self(), "reply", 1), PC_OK);
    TCHECK_RC(pc_recv_match(is_reply, &calls, &mk, &m, 0), PC_OK);
    CHECK_MSG(&m, "reply", 1);
    TCHECK_RC(pt_send_u64(pc_self(), "reply", 2), PC_OK);
    mk = pc_mailbox_mark();
    TCHECK_RC(pc_recv_match(is_reply, &calls, &mk, &m, 0), PC_ETIMEDOUT);
    TCHECK_RC(pt_send_u64(s, "request", 3), PC_OK);
    {
        struct want w = {1000003, 0};
        TCHECK_RC(pc_recv_match(type_and_value, &w, &mk, &m, PT_LONG), PC_OK);
        CHECK_MSG(&m, "reply", 1000003);
    }
    EXPECT_NEXT("reply", 2);

    TCHECK_RC(pt_send(s, "stop"), PC_OK);
    TCHECK_RC(pc_task_join(s, PT_LONG, NULL), PC_OK);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* With `after` = a mark taken before the request, the receive returns the
 * reply sent after the mark, not an older message of the same type, and
 * looks only at what came after the mark. */
PT_WTEST(mark_skips_older)
static void
mark_skips_older(int W)
{
    struct sel_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, mark_main, &c, &c.done, 1);
}

/* ---- many takes from the middle ------------------------------------------ */

#define BIGN 1000

static bool
every_third(const pc_msg *m, void *ctx)
{
    (void)ctx;
    return pt_u64(m) % 3 == 0;
}

static pc_msg *
filler_n(void *arg)
{
    struct sel_ctx *c = arg;

    for (uint64_t i = 0; i < BIGN; i++)
        TCHECK_RC(pt_send_u64(c->main, "n", i), PC_OK);
    TCHECK_RC(pt_send(c->main, "filled"), PC_OK);
    return NULL;
}

static pc_msg *
many_takes_main(void *arg)
{
    struct sel_ctx *c = arg;
    pc_msg *m = NULL;

    c->main = pc_self();

    /* 1. every third by a ctx-free predicate, in ascending order */
    pt_spawn(filler_n, c, 1, 0);
    TCHECK_RC(pc_recv_type("filled", &m, PT_LONG), PC_OK);
    pc_msg_free(&m);
    TCHECK_EQ(pc_mailbox_depth(), BIGN);
    for (uint64_t i = 0; i < BIGN; i += 3) {
        TCHECK_RC(pc_recv_match(every_third, NULL, NULL, &m, 0), PC_OK);
        CHECK_MSG(&m, "n", i);
    }
    TCHECK_RC(pc_recv_match(every_third, NULL, NULL, &m, 0), PC_ETIMEDOUT);
    TCHECK_EQ(pc_mailbox_depth(), BIGN - (BIGN + 2) / 3);
    for (uint64_t i = 0; i < BIGN; i++)
        if (i % 3 != 0)
            EXPECT_NEXT("n", i);
    TCHECK_EQ(pc_mailbox_depth(), 0);

    /* 2. every third by value, from the back to the front, so holes open
     * behind the ones still to take */
    pt_spawn(filler_n, c, 1, 0);
    TCHECK_RC(pc_recv_type("filled", &m, PT_LONG), PC_OK);
    pc_msg_free(&m);
    for (long i = (BIGN - 1) / 3 * 3; i >= 0; i -= 3) {
        struct want w = {(uint64_t)i, 0};
        TCHECK_RC(pc_recv_match(value_is, &w, NULL, &m, 0), PC_OK);
        CHECK_MSG(&m, "n", (uint64_t)i);
    }
    /* 3. pops and pushes move the ring's head round: takes across the
     * wrap point, then a wrapped ring with holes grows */
    {
        uint64_t rest[BIGN];
        size_t nr = 0, left = 0;

        for (uint64_t i = 0; i < BIGN; i++)
            if (i % 3 != 0)
                rest[nr++] = i;
        for (size_t k = 0; k < 100; k++)
            EXPECT_NEXT("n", rest[k]);
        for (uint64_t v = 0; v < 150; v++)
            TCHECK_RC(pt_send_u64(pc_self(), "m", v), PC_OK);
        for (uint64_t v = 0; v < 150; v += 2)
            TAKE("m", v);
        for (size_t k = 100; k < nr; k += 2)
            TAKE("n", rest[k]);
        for (uint64_t v = 0; v < 300; v++)
            TCHECK_RC(pt_send_u64(pc_self(), "p", v), PC_OK);
        for (uint64_t v = 1; v < 150; v += 4)
            TAKE("m", v);
        for (uint64_t v = 0; v < 300; v += 3)
            TAKE("p", v);
        for (size_t k = 101; k < nr; k += 2)
            left++;
        left += 150 / 4 + 200;
        TCHECK_EQ(pc_mailbox_depth(), left);
        for (size_t k = 101; k < nr; k += 2)
            EXPECT_NEXT("n", rest[k]);
        for (uint64_t v = 3; v < 150; v += 4)
            EXPECT_NEXT("m", v);
        for (uint64_t v = 0; v < 300; v++)
            if (v % 3 != 0)
                EXPECT_NEXT("p", v);
    }
    TCHECK_EQ(pc_mailbox_depth(), 0);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* 1,000 queued messages, every third taken by predicate, the rest read in
 * exact order with pc_recv. */
PT_WTEST(many_takes_from_middle)
static void
many_takes_from_middle(int W)
{
    struct sel_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, many_takes_main, &c, &c.done, 1);
}

/* ---- holes: an unmatched head, reused marks -------------------------------- */

/* The running task's ordinary ring. */
static const pc__ring *
my_ring(void)
{
    return &pc__tls_worker->cur->mb;
}

static bool
reply_is(const pc_msg *m, void *ctx)
{
    return pc_msg_is(m, "reply") && pt_u64(m) == *(uint64_t *)ctx;
}

static pc_msg *
echo(void *arg)
{
    pc_msg *m = NULL;

    (void)arg;
    while (pc_recv(&m, PT_LONG) == PC_OK && !pc_msg_is(m, "stop")) {
        TCHECK_RC(pt_send_u64(pc_msg_sender(m), "reply", pt_u64(m)), PC_OK);
        pc_msg_free(&m);
    }
    pc_msg_free(&m);
    return NULL;
}

static pc_msg *
reqrep_main(void *arg)
{
    struct sel_ctx *c = arg;
    long rounds = pt_scaled(100000, 10);
    pc_sup_opts so = {.strategy = PC_SUP_ONE_FOR_ONE, .intensity = 1};
    pc_ref e = pt_spawn(echo, NULL, 1, 0), sup = PC_REF_NIL;
    uint32_t maxcap = 0, maxlen = 0;
    pc_msg *m = NULL;
    long count;

    /* a message nobody asks for stays at the head throughout */
    TCHECK_RC(pt_send_u64(pc_self(), "stuck", 7), PC_OK);
    for (uint64_t i = 0; i < (uint64_t)rounds; i++) {
        pc_mark mk = pc_mailbox_mark();
        TCHECK_RC(pt_send_u64(e, "req", i), PC_OK);
        TCHECK_RC(pc_recv_match(reply_is, &i, &mk, &m, PT_LONG), PC_OK);
        CHECK_MSG(&m, "reply", i);
        if (my_ring()->cap > maxcap)
            maxcap = my_ring()->cap;
        if (my_ring()->len > maxlen)
            maxlen = my_ring()->len;
    }
    TCHECK(maxcap <= 4); /* was: a slot per round, doubling to 128k */
    TCHECK(maxlen <= 2);
    /* the supervisor's own request/reply (a mark, then the reply) */
    TCHECK_RC(pc_supervisor_start(&so, NULL, 0, NULL, &sup), PC_OK);
    for (long i = 0; i < rounds / 10; i++)
        TCHECK_RC(pc_supervisor_restarts(sup, &count, PT_LONG), PC_OK);
    TCHECK(my_ring()->cap <= 4);
    TCHECK_EQ(pc_mailbox_depth(), 1);
    EXPECT_NEXT("stuck", 7);
    TCHECK_RC(pc_supervisor_stop(sup), PC_OK);
    TCHECK_RC(pt_send(e, "stop"), PC_OK);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* One unmatched message at the head, then 100k rounds of mark, request,
 * pc_recv_match of the reply after the mark (and rounds of the supervisor's
 * own ask()): the ring keeps its size. The reply's slot used to stay as a
 * hole, since holes were reclaimed only at the head. */
PT_WTEST(reqrep_ring_bounded)
static void
reqrep_ring_bounded(int W)
{
    struct sel_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, reqrep_main, &c, &c.done, 1);
}

static bool
type_is_ctx(const pc_msg *m, void *ctx)
{
    return pc_msg_is(m, ctx);
}

static pc_msg *
scan_main(void *arg)
{
    struct sel_ctx *c = arg;
    uint64_t n = (uint64_t)pt_scaled(20000, 10), v0;
    pc_msg *m = NULL;

    /* 1. pc_recv_type loop behind an unmatched head */
    TCHECK_RC(pt_send_u64(pc_self(), "x", 0), PC_OK);
    for (uint64_t i = 0; i < n; i++)
        TCHECK_RC(pt_send_u64(pc_self(), "b", i), PC_OK);
    v0 = pc__mb_visits;
    for (uint64_t i = 0; i < n; i++) {
        TCHECK_RC(pc_recv_type("b", &m, 0), PC_OK);
        CHECK_MSG(&m, "b", i);
    }
    TCHECK(pc__mb_visits - v0 <= 4 * n); /* was n * n / 2 */

    /* 2. one mark reused for every take, with mail queued behind */
    pc_mark mk = pc_mailbox_mark();
    for (uint64_t i = 0; i < n; i++)
        TCHECK_RC(pt_send_u64(pc_self(), "c", i), PC_OK);
    for (uint64_t i = 0; i < n; i++)
        TCHECK_RC(pt_send_u64(pc_self(), "d", i), PC_OK);
    v0 = pc__mb_visits;
    for (uint64_t i = 0; i < n; i++) {
        TCHECK_RC(pc_recv_match(type_is_ctx, "c", &mk, &m, 0), PC_OK);
        CHECK_MSG(&m, "c", i);
    }
    TCHECK(pc__mb_visits - v0 <= 4 * n);
    for (uint64_t i = 0; i < n; i++) {
        TCHECK_RC(pc_recv_type("d", &m, 0), PC_OK);
        CHECK_MSG(&m, "d", i);
    }
    TCHECK(pc__mb_visits - v0 <= 8 * n);

    /* 3. holes left by marked takes, then unmarked scans over them */
    mk = pc_mailbox_mark();
    for (uint64_t i = 0; i < n; i++)
        TCHECK_RC(pt_send_u64(pc_self(), "f", i), PC_OK);
    for (uint64_t i = 0; i < n; i++)
        TCHECK_RC(pt_send_u64(pc_self(), "e", i), PC_OK);
    v0 = pc__mb_visits;
    for (uint64_t i = 0; i < n; i++) {
        TCHECK_RC(pc_recv_match(type_is_ctx, "f", &mk, &m, 0), PC_OK);
        CHECK_MSG(&m, "f", i);
    }
    for (uint64_t i = 0; i < n; i++) {
        TCHECK_RC(pc_recv_type("e", &m, 0), PC_OK);
        CHECK_MSG(&m, "e", i);
    }
    TCHECK(pc__mb_visits - v0 <= 8 * n);
    TCHECK(my_ring()->len <= 2 * my_ring()->live + 1);

    EXPECT_NEXT("x", 0);
    TCHECK_EQ(pc_mailbox_depth(), 0);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* Selective receive loops over a mailbox that keeps unmatched mail at its
 * head look at O(messages) slots in all (counted, not timed): holes are not
 * walked again and again. */
PT_WTEST(scans_skip_holes)
static void
scans_skip_holes(int W)
{
    struct sel_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, scan_main, &c, &c.done, 1);
}

/* ---- a model: random pushes, pops, takes and marks ----------------------- */

#define MODEL_OPS 20000
#define MODEL_MAX 4096
#define MODEL_LIMIT 800 /* no pushes above this depth */

struct model {
    uint64_t q[MODEL_MAX]; /* values still queued, in order */
    int n;
    uint64_t next;       /* value of the next push */
    uint64_t rng;        /* LCG state */
    uint64_t mark_at[4]; /* first value pushed after each mark kept */
    pc_mark mark[4];
    int nmarks;
    long bad;
};

static uint32_t
rnd(struct model *md, uint32_t n)
{
    md->rng = md->rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(md->rng >> 33) % n;
}

static void
model_del(struct model *md, int i)
{
    memmove(&md->q[i], &md->q[i + 1],
            (size_t)(md->n - i - 1) * sizeof md->q[0]);
    md->n--;
}

struct mod_want {
    uint32_t k, r;
};

static bool
mod_is(const pc_msg *m, void *ctx)
{
    struct mod_want *w = ctx;

    return pt_u64(m) % w->k == w->r;
}

static bool
at_least(const pc_msg *m, void *ctx)
{
    return pt_u64(m) >= *(uint64_t *)ctx;
}

/* Check a taken message against the model's index i (-1: none expected). */
static void
model_check(struct model *md, int rc, pc_msg **m, int i)
{
    if (i < 0) {
        if (rc != PC_ETIMEDOUT || *m)
            md->bad++;
        pc_msg_free(m);
        return;
    }
    if (rc != PC_OK || !*m || pt_u64(*m) != md->q[i])
        md->bad++;
    pc_msg_free(m);
    model_del(md, i);
}

static pc_msg *
model_main(void *arg)
{
    struct sel_ctx *c = arg;
    struct model *md = calloc(1, sizeof *md);
    long ops = pt_scaled(MODEL_OPS, 4);
    pc_msg *m = NULL;
    int peak = 0;

    TCHECK(md != NULL);
    if (!md)
        return NULL;
    md->rng = 12345;
    for (long op = 0; op < ops && md->bad == 0; op++) {
        uint32_t r = rnd(md, 100);
        int i, rc;

        if (md->n == 0 || (r < 30 && md->n < MODEL_LIMIT)) {
            /* push a few, now and then a burst (grows the ring) */
            int k = rnd(md, 20) == 0 ? (int)rnd(md, 300) : (int)rnd(md, 4) + 1;
            for (int j = 0; j < k && md->n < MODEL_MAX; j++) {
                TCHECK_RC(pt_send_u64(pc_self(), "n", md->next), PC_OK);
                md->q[md->n++] = md->next++;
            }
        } else if (r < 50) { /* also a push refused at MODEL_LIMIT */
            /* pop the head (moves the ring's head: wraps it) */
            rc = pc_recv(&m, 0);
            model_check(md, rc, &m, 0);
        } else if (r < 70) {
            /* take a random one by value */
            struct want w;
            i = (int)rnd(md, (uint32_t)md->n);
            w.v = md->q[i];
            w.calls = 0;
            rc = pc_recv_match(value_is, &w, NULL, &m, 0);
            if (w.calls != i + 1) /* looked at up to it, not further */
                md->bad++;
            model_check(md, rc, &m, i);
        } else if (r < 85) {
            /* the first of a class, which may be absent */
            struct mod_want w = {rnd(md, 7) + 2, 0};
            w.r = rnd(md, w.k);
            for (i = 0; i < md->n && md->q[i] % w.k != w.r; i++)
                ;
            rc = pc_recv_match(mod_is, &w, NULL, &m, 0);
            model_check(md, rc, &m, i < md->n ? i : -1);
        } else if (r < 90) {
            /* up to four marks live at once, the oldest replaced */
            int k = md->nmarks < 4 ? md->nmarks++ : (int)rnd(md, 4);
            md->mark[k] = pc_mailbox_mark();
            md->mark_at[k] = md->next;
        } else if (md->nmarks && r < 95) {
            /* the first one after a mark, with a predicate that would take
             * anything: the mark alone must hold the older ones back */
            uint64_t zero = 0;
            int k = (int)rnd(md, (uint32_t)md->nmarks);
            for (i = 0; i < md->n && md->q[i] < md->mark_at[k]; i++)
                ;
            rc = pc_recv_match(at_least, &zero, &md->mark[k], &m, 0);
            model_check(md, rc, &m, i < md->n ? i : -1);
        } else if (md->nmarks) {
            /* a class after a mark (holes of other marks' takes between) */
            struct mod_want w = {rnd(md, 3) + 2, 0};
            int k = (int)rnd(md, (uint32_t)md->nmarks);
            w.r = rnd(md, w.k);
            for (i = 0; i < md->n &&
                        (md->q[i] < md->mark_at[k] || md->q[i] % w.k != w.r);
                 i++)
                ;
            rc = pc_recv_match(mod_is, &w, &md->mark[k], &m, 0);
            model_check(md, rc, &m, i < md->n ? i : -1);
        }
        if (pc_mailbox_depth() != (size_t)md->n)
            md->bad++;
        if (md->n > peak)
            peak = md->n;
    }
    TCHECK_EQ(md->bad, 0);
    TCHECK(peak > 64); /* the ring did grow */
    /* drain: the same order as the model */
    for (int i = 0; i < md->n; i++) {
        if (pc_recv(&m, 0) != PC_OK || !m || pt_u64(m) != md->q[i])
            md->bad++;
        pc_msg_free(&m);
    }
    TCHECK_EQ(md->bad, 0);
    TCHECK_EQ(pc_mailbox_depth(), 0);
    free(md);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* Random pushes, pops, takes by value, by class and after a mark, checked
 * after each step against an array model: order, depth, and that a take
 * looks at messages only up to the one it takes. Bursts grow the ring and
 * pops move its head round, so takes happen across the wrap point and
 * while holes are copied into a grown buffer. */
PT_WTEST(selective_model)
static void
selective_model(int W)
{
    struct sel_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, model_main, &c, &c.done, 1);
}

/* ---- errors -------------------------------------------------------------- */

struct perm_state {
    pc_ref driver;
    int type_rc, match_rc, forever_rc, mark_ok;
    bool out_null;
    size_t depth;
};

static int
perm_handler(void *state, pc_msg *msg)
{
    struct perm_state *s = state;
    pc_msg *m = NULL;
    long calls = 0;

    (void)msg;
    TCHECK_RC(pt_send(pc_self(), "x"), PC_OK);
    s->type_rc = pc_recv_type("x", &m, 0);
    s->out_null = m == NULL;
    pc_msg_free(&m);
    s->match_rc = pc_recv_match(any_msg, NULL, NULL, &m, 0.01);
    pc_msg_free(&m);
    s->forever_rc = pc_recv_match(never, &calls, NULL, &m, -1); /* no block */
    pc_msg_free(&m);
    (void)pc_mailbox_mark(); /* harmless */
    s->depth = pc_mailbox_depth();
    TCHECK_RC(pt_send(s->driver, "handled"), PC_OK);
    return PC_ACTOR_STOP;
}

static pc_msg *
errors_main(void *arg)
{
    struct sel_ctx *c = arg;
    struct perm_state *s = calloc(1, sizeof *s);
    pc_spawn_opts o = pt_on(1, PC_TASK_JOINABLE);
    pc_msg *m = NULL;
    pc_ref a;

    TCHECK(s != NULL);
    if (!s)
        return NULL;
    /* EINVAL for NULL match, NULL out, NULL type; the mailbox untouched */
    TCHECK_RC(pt_send_u64(pc_self(), "x", 1), PC_OK);
    TCHECK_RC(pc_recv_match(NULL, NULL, NULL, &m, 0), PC_EINVAL);
    TCHECK(m == NULL);
    TCHECK_RC(pc_recv_match(NULL, NULL, NULL, &m, -1), PC_EINVAL);
    TCHECK_RC(pc_recv_match(any_msg, NULL, NULL, NULL, 0), PC_EINVAL);
    TCHECK_RC(pc_recv_match(any_msg, NULL, NULL, NULL, -1), PC_EINVAL);
    TCHECK_RC(pc_recv_type("x", NULL, 0), PC_EINVAL);
    TCHECK_RC(pc_recv_type(NULL, &m, 0), PC_EINVAL);
    TCHECK(m == NULL);
    TCHECK_EQ(pc_mailbox_depth(), 1);
    EXPECT_NEXT("x", 1);

    /* EPERM from a light-actor handler, also with timeout -1 */
    s->driver = pc_self();
    TCHECK_RC(pc_actor_spawn(perm_handler, s, NULL, &o, &a), PC_OK);
    TCHECK_RC(pt_send(a, "go"), PC_OK);
    PT_EXPECT("handled");
    TCHECK_RC(pc_task_join(a, PT_LONG, NULL), PC_OK);
    TCHECK_RC(s->type_rc, PC_EPERM);
    TCHECK(s->out_null);
    TCHECK_RC(s->match_rc, PC_EPERM);
    TCHECK_RC(s->forever_rc, PC_EPERM);
    TCHECK_EQ(s->depth, 1); /* its "x" was not taken */
    free(s);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

static void
check_outside(void)
{
    pc_msg *m = NULL;
    long calls = 0;
    pc_mark mk;

    TCHECK_RC(pc_recv_type("x", &m, 0), PC_EPERM);
    TCHECK(m == NULL);
    TCHECK_RC(pc_recv_type("x", &m, -1), PC_EPERM); /* must not block */
    TCHECK_RC(pc_recv_match(never, &calls, NULL, &m, 0.01), PC_EPERM);
    TCHECK_RC(pc_recv_match(never, &calls, NULL, &m, -1), PC_EPERM);
    TCHECK(m == NULL);
    TCHECK_EQ(calls, 0);
    mk = pc_mailbox_mark(); /* harmless outside a task */
    TCHECK_RC(pc_recv_match(never, &calls, &mk, &m, 0), PC_EPERM);
}

static void *
outside_thread(void *arg)
{
    (void)arg;
    check_outside();
    return NULL;
}

/* EPERM from main, another thread and a light-actor handler; EINVAL for
 * NULL arguments. */
PT_WTEST(select_errors)
static void
select_errors(int W)
{
    struct sel_ctx c;
    pthread_t th;

    memset(&c, 0, sizeof c);
    check_outside(); /* no node at all */
    PT_START(W);
    check_outside();
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, outside_thread, NULL), 0);
    pthread_join(th, NULL);
    {
        pc_spawn_opts o = pt_on(0, 0);
        CU_ASSERT_EQUAL(pc_spawn(errors_main, &c, &o, NULL), PC_OK);
    }
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&c.done), 1);
}

PT_MAIN("select", PT_WENTRY(recv_type_first_of_type),
        PT_WENTRY(recv_match_timeout_and_poll), PT_WENTRY(recv_match_waits),
        PT_WENTRY(mark_skips_older), PT_WENTRY(many_takes_from_middle),
        PT_WENTRY(selective_model), PT_WENTRY(reqrep_ring_bounded),
        PT_WENTRY(scans_skip_holes), PT_WENTRY(select_errors))
