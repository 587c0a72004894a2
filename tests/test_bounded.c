/* tests/test_bounded.c — bounded mailboxes: the three policies, their
 * counters, blocked senders woken as room appears (or the target's end),
 * and the answers across workers and from foreign threads. */
#include "testutil.h"

struct bctx {
    pc_ref driver, r;
    int want; /* holder: receive exactly this many (0: what is queued) */
    atomic_int done;
};

static pc_mailbox_stats
stats(pc_ref r)
{
    pc_mailbox_stats st;

    TCHECK_RC(pc_mailbox_stats_get(r, &st, PT_LONG), PC_OK);
    return st;
}

/* Says "ready", waits for a resume, then reports what it received: each
 * message's u64 in order, then "end". */
static pc_msg *
holder(void *arg)
{
    struct bctx *c = arg;
    pc_msg *m;

    pt_send(c->driver, "ready");
    pc_suspend(PT_LONG, NULL);
    for (int n = 0; (c->want == 0 || n < c->want) &&
                    pc_recv(&m, c->want ? PT_LONG : 0) == PC_OK;
         n++) {
        pt_send_u64(c->driver, "got", pt_u64(m));
        pc_msg_free(&m);
    }
    pt_send(c->driver, "end");
    return NULL;
}

static pc_ref
spawn_holder(struct bctx *c, int w, uint32_t cap, pc_mbox_policy pol)
{
    pc_spawn_opts o = pt_on(w, 0);
    pc_ref r = PC_REF_NIL;

    o.mailbox_cap = cap;
    o.mailbox_policy = pol;
    TCHECK_RC(pc_spawn(holder, c, &o, &r), PC_OK);
    PT_EXPECT("ready");
    return r;
}

static int
send_u64(pc_ref to, uint64_t v)
{
    pc_msg *m = NULL;
    int rc = pc_msg_new(&m, "n", &v, sizeof v);

    if (rc == PC_OK && (rc = pc_send(to, &m)) != PC_OK) {
        TCHECK(m != NULL); /* refused: still the sender's */
        pc_msg_free(&m);
    }
    return rc;
}

/* The next message of `type` (others stay queued); its u64. */
static uint64_t
expect_type(const char *type)
{
    pc_msg *m = NULL;
    uint64_t v = ~(uint64_t)0;

    TCHECK_RC(pc_recv_type(type, &m, PT_LONG), PC_OK);
    if (m)
        v = pt_u64(m);
    pc_msg_free(&m);
    return v;
}

/* Resume r and check it received exactly want[0..n). */
static void
drain_expect(pc_ref r, const uint64_t *want, int n)
{
    TCHECK_RC(pc_resume(r, NULL), PC_OK);
    for (int i = 0; i < n; i++)
        TCHECK_EQ(PT_EXPECT("got"), want[i]);
    PT_EXPECT("end");
}

static pc_msg *
policies_main(void *arg)
{
    struct bctx *c = arg;
    static const uint64_t first2[] = {0, 1};
    pc_mailbox_stats st;

    c->driver = pc_self();
    /* FAIL on the same worker: the sender hears PC_EFULL, keeps the msg */
    pc_ref r = spawn_holder(c, PT_SELF, 2, PC_MB_FAIL);
    for (int i = 0; i < 4; i++)
        TCHECK_RC(send_u64(r, (uint64_t)i), i < 2 ? PC_OK : PC_EFULL);
    st = stats(r);
    TCHECK_EQ(st.depth, 2);
    TCHECK_EQ(st.cap, 2);
    TCHECK_EQ(st.refused, 2);
    drain_expect(r, first2, 2);

    /* DROP: every send is "OK", the newest are dropped and counted */
    r = spawn_holder(c, PT_SELF, 2, PC_MB_DROP);
    for (int i = 0; i < 5; i++)
        TCHECK_RC(send_u64(r, (uint64_t)i), PC_OK);
    st = stats(r);
    TCHECK_EQ(st.depth, 2);
    TCHECK_EQ(st.dropped, 3);
    drain_expect(r, first2, 2);

    /* on another worker (W=2): FAIL refuses on arrival, which pc_deliver
     * reports; DROP drops; the counters come back by request */
    r = spawn_holder(c, 1, 1, PC_MB_FAIL);
    pc_msg *m = NULL;
    uint64_t v = 7;
    TCHECK_RC(pc_msg_new(&m, "n", &v, sizeof v), PC_OK);
    TCHECK_RC(pc_deliver(r, &m, PT_LONG), PC_OK);
    TCHECK_RC(pc_msg_new(&m, "n", &v, sizeof v), PC_OK);
    TCHECK_RC(pc_deliver(r, &m, PT_LONG), PC_EFULL);
    TCHECK(m != NULL && pt_u64(m) == 7); /* refused: still the sender's */
    pc_msg_free(&m);
    st = stats(r);
    TCHECK_EQ(st.depth, 1);
    TCHECK_EQ(st.refused, 1);
    drain_expect(r, &v, 1);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(policies)
static void
policies(int W)
{
    struct bctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, policies_main, &c, &c.done, 1);
}

/* ---- BLOCK ------------------------------------------------------------------ */

static pc_msg *
blocked_sender(void *arg)
{
    struct bctx *c = arg;

    for (uint64_t i = 0; i < 3; i++) /* the 2nd and 3rd wait for room */
        TCHECK_RC(send_u64(c->r, i), PC_OK);
    pt_send(c->driver, "sent");
    return NULL;
}

static pc_msg *
resumer(void *arg)
{
    struct bctx *c = arg;

    TCHECK_RC(pc_resume(c->r, NULL), PC_OK);
    return NULL;
}

static pc_msg *
block_main(void *arg)
{
    struct bctx *c = arg;
    static const uint64_t all3[] = {0, 1, 2};
    pc_mailbox_stats st;

    c->driver = pc_self();
    c->want = 3; /* it must not end before the blocked sender is done */
    c->r = spawn_holder(c, 0, 1, PC_MB_BLOCK);
    /* the sender (on r's worker) fills r and blocks; only then does the
     * resumer, spawned after it on the same worker, let r drain */
    pt_spawn(blocked_sender, c, 0, 0);
    pt_spawn(resumer, c, 0, 0);
    for (int i = 0; i < 3; i++)
        TCHECK_EQ(expect_type("got"), all3[i]);
    expect_type("end");
    expect_type("sent");

    /* from another worker (W=2) or this task when r is elsewhere: can't
     * wait, so taken beyond the capacity and counted */
    c->want = 0;
    c->r = spawn_holder(c, 1, 1, PC_MB_BLOCK);
    if (pc_node_workers() > 1) {
        for (int i = 0; i < 3; i++)
            TCHECK_RC(send_u64(c->r, (uint64_t)i), PC_OK);
        st = stats(c->r);
        TCHECK_EQ(st.depth, 3);
        TCHECK_EQ(st.over, 2);
        drain_expect(c->r, all3, 3);
    } else {
        TCHECK_RC(send_u64(c->r, 0), PC_OK);
        drain_expect(c->r, all3, 1);
    }
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(block)
static void
block(int W)
{
    struct bctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, block_main, &c, &c.done, 1);
}

/* A sender blocked on a full mailbox learns of its owner's end. */
static pc_msg *
waits_then_checks(void *arg)
{
    struct bctx *c = arg;

    TCHECK_RC(send_u64(c->r, 2), PC_ENOENT); /* blocked, then r ended */
    pt_send(c->driver, "checked");
    return NULL;
}

static pc_msg *
killer(void *arg)
{
    struct bctx *c = arg;

    TCHECK_RC(pc_task_terminate(c->r), PC_OK);
    return NULL;
}

static pc_msg *
block_end2_main(void *arg)
{
    struct bctx *c = arg;

    c->driver = pc_self();
    c->r = spawn_holder(c, PT_SELF, 1, PC_MB_BLOCK);
    TCHECK_RC(send_u64(c->r, 1), PC_OK);
    pt_spawn(waits_then_checks, c, PT_SELF, 0); /* blocks: r is full */
    pt_spawn(killer, c, PT_SELF, 0);            /* then r is ended */
    PT_EXPECT("checked");
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(block_target_ends)
static void
block_target_ends(int W)
{
    struct bctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, block_end2_main, &c, &c.done, 1);
}

/* ---- BLOCK: the wake for room goes to a live sender ------------------------- */

struct live_ctx {
    pc_ref driver, r, s[3];
    bool kill_woken; /* the receiver kills the sender its first pop woke */
    struct live_arg {
        struct live_ctx *c;
        uint64_t i;
        pc_msg *m; /* the sender's until sent; freed at its end */
    } arg[3];
    atomic_int done;
};

static void
free_held(void *arg)
{
    pc_msg_free(arg);
}

/* Tells the driver it is about to send, then sends its index to r: the
 * send blocks (r is full) before anything else runs on this worker. The
 * message is the sender's until the send succeeds, so a sender terminated
 * while blocked frees it at its end. */
static pc_msg *
sender_i(void *arg)
{
    struct live_arg *a = arg;

    TCHECK_RC(pc_msg_new(&a->m, "n", &a->i, sizeof a->i), PC_OK);
    TCHECK_RC(pc_at_exit(free_held, &a->m), PC_OK);
    TCHECK_RC(pt_send(a->c->driver, "sending"), PC_OK);
    TCHECK_RC(pc_send(a->c->r, &a->m), PC_OK);
    TCHECK(a->m == NULL);
    TCHECK_RC(pt_send_u64(a->c->driver, "sent", a->i), PC_OK);
    return NULL;
}

/* Receives the filler, then the two live senders' messages, reporting each. */
static pc_msg *
live_receiver(void *arg)
{
    struct live_ctx *c = arg;
    pc_msg *m = NULL;

    pc_suspend(PT_LONG, NULL);
    for (int n = 0; n < 3; n++) {
        if (pc_recv(&m, PT_LONG) != PC_OK) {
            TCHECK(!"a live sender never got the room");
            break;
        }
        /* the pop woke the oldest blocked sender: kill it before it runs */
        if (n == 0 && c->kill_woken)
            TCHECK_RC(pc_task_terminate(c->s[0]), PC_OK);
        TCHECK_RC(pt_send_u64(c->driver, "got", pt_u64(m)), PC_OK);
        pc_msg_free(&m);
    }
    TCHECK_RC(pt_send(c->driver, "end"), PC_OK);
    return NULL;
}

static pc_msg *
live_main(void *arg)
{
    struct live_ctx *c = arg;
    pc_spawn_opts o = pt_on(PT_SELF, 0);

    c->driver = pc_self();
    o.mailbox_cap = 1;
    o.mailbox_policy = PC_MB_BLOCK;
    TCHECK_RC(pc_spawn(live_receiver, c, &o, &c->r), PC_OK);
    TCHECK_RC(send_u64(c->r, 100), PC_OK); /* now it is full */
    for (int i = 0; i < 3; i++) {
        c->arg[i] = (struct live_arg){c, (uint64_t)i, NULL};
        c->s[i] = pt_spawn(sender_i, &c->arg[i], PT_SELF, 0);
        PT_EXPECT("sending"); /* and it blocked right after */
    }
    if (!c->kill_woken) /* the oldest blocked sender dies first */
        TCHECK_RC(pc_task_terminate(c->s[0]), PC_OK);
    TCHECK_RC(pc_resume(c->r, NULL), PC_OK);
    TCHECK_EQ(expect_type("got"), 100);
    TCHECK_EQ(expect_type("got"), 1); /* the next live one, in order */
    TCHECK_EQ(expect_type("got"), 2);
    expect_type("end");
    TCHECK_EQ(expect_type("sent"), 1);
    TCHECK_EQ(expect_type("sent"), 2);
    TCHECK(!pc_alive(c->s[0]));
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* Three senders blocked on a full PC_MB_BLOCK mailbox, the oldest
 * terminated: the receiver's pop wakes the next live one (the wake used to
 * go to the dead one, and the live ones slept with room available). */
PT_WTEST(block_skips_terminated)
static void
block_skips_terminated(int W)
{
    struct live_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, live_main, &c, &c.done, 1);
}

/* The sender a pop woke is terminated before it runs: its turn passes on. */
PT_WTEST(block_woken_then_terminated)
static void
block_woken_then_terminated(int W)
{
    struct live_ctx c;

    memset(&c, 0, sizeof c);
    c.kill_woken = true;
    PT_RUN_TASK(W, live_main, &c, &c.done, 1);
}

/* ---- BLOCK: pc_send_timeout --------------------------------------------------- */

static pc_msg *
patient_sender(void *arg)
{
    struct bctx *c = arg;
    pc_msg *m = NULL;
    uint64_t v = 5;

    TCHECK_RC(pc_msg_new(&m, "n", &v, sizeof v), PC_OK);
    TCHECK_RC(pt_send(c->driver, "sending"), PC_OK);
    TCHECK_RC(pc_send_timeout(c->r, &m, -1), PC_OK); /* as pc_send */
    TCHECK(m == NULL);
    TCHECK_RC(pt_send(c->driver, "sent"), PC_OK);
    return NULL;
}

static pc_msg *
timeout_main(void *arg)
{
    struct bctx *c = arg;
    static const uint64_t got[] = {1};
    pc_mailbox_stats st;
    pc_msg *m = NULL;
    uint64_t v = 9;

    c->driver = pc_self();
    c->want = 2;
    c->r = spawn_holder(c, PT_SELF, 1, PC_MB_BLOCK);
    TCHECK_RC(send_u64(c->r, 1), PC_OK);
    TCHECK_RC(pc_msg_new(&m, "n", &v, sizeof v), PC_OK);
    /* 0: don't wait */
    TCHECK_RC(pc_send_timeout(c->r, &m, 0), PC_EFULL);
    TCHECK(m != NULL && pt_u64(m) == 9);
    /* a wait that runs out; the caller keeps the message */
    TCHECK_RC(pc_send_timeout(c->r, &m, 0.02), PC_ETIMEDOUT);
    TCHECK(m != NULL && pt_u64(m) == 9 && pc_msg_is(m, "n"));
    st = stats(c->r);
    TCHECK_EQ(st.depth, 1);
    TCHECK_EQ(st.refused, 2);
    /* a forever sender queued after a timed-out one gets the room */
    pt_spawn(patient_sender, c, PT_SELF, 0);
    PT_EXPECT("sending");
    TCHECK_RC(pc_resume(c->r, NULL), PC_OK);
    TCHECK_EQ(expect_type("got"), 1);
    TCHECK_EQ(expect_type("got"), 5);
    expect_type("end");
    expect_type("sent");
    /* for the other policies, and with room, it is pc_send */
    TCHECK_RC(pc_send_timeout(pc_self(), &m, 5), PC_OK);
    TCHECK(m == NULL);
    PT_EXPECT("n");
    c->want = 0;
    c->r = spawn_holder(c, PT_SELF, 1, PC_MB_FAIL);
    TCHECK_RC(send_u64(c->r, 1), PC_OK);
    TCHECK_RC(pc_msg_new(&m, "n", &v, sizeof v), PC_OK);
    TCHECK_RC(pc_send_timeout(c->r, &m, PT_LONG), PC_EFULL); /* no wait */
    TCHECK(m != NULL);
    pc_msg_free(&m);
    drain_expect(c->r, got, 1);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* pc_send_timeout on a full PC_MB_BLOCK mailbox: 0 is PC_EFULL at once, a
 * timeout PC_ETIMEDOUT, and the caller keeps the message both times; a
 * sender that gave up doesn't take the room from one still waiting. */
PT_WTEST(block_send_timeout)
static void
block_send_timeout(int W)
{
    struct bctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, timeout_main, &c, &c.done, 1);
}

/* ---- system messages go in beyond the capacity ---------------------------------- */

struct sys_ctx {
    pc_ref driver, watcher, target;
    pc_mbox_policy pol;
    int watcher_on; /* worker of the watcher (the others are on 0) */
    atomic_int done;
};

/* A task that waits until it is terminated (or told to end). */
static pc_msg *
sitter(void *arg)
{
    int how = (int)(intptr_t)arg;

    pc_suspend(PT_LONG, NULL);
    if (how == 1)
        pc_exit_error("boom");
    return NULL;
}

static pc_msg *
terminator(void *arg)
{
    struct sys_ctx *c = arg;

    /* ends the target here: its DOWN goes to a full mailbox */
    TCHECK_RC(pc_task_terminate(c->target), PC_OK);
    TCHECK_RC(pt_send(c->driver, "terminated"), PC_OK);
    return NULL;
}

/* Traps exits and links with the target, says so, then waits to be
 * resumed and reports what it has: each message's type. */
static pc_msg *
sys_watcher(void *arg)
{
    struct sys_ctx *c = arg;
    pc_msg *m = NULL;

    TCHECK_RC(pc_trap_exits(true), PC_OK);
    TCHECK_RC(pc_link(c->target), PC_OK);
    TCHECK_RC(pt_send(c->driver, "linked"), PC_OK);
    pc_suspend(PT_LONG, NULL);
    while (pc_recv(&m, 0) == PC_OK) {
        pc_msg *r = NULL;
        TCHECK_RC(pc_msg_new_str(&r, "had", pc_msg_type(m)), PC_OK);
        TCHECK_RC(pc_send(c->driver, &r), PC_OK);
        pc_msg_free(&m);
    }
    TCHECK_RC(pt_send(c->driver, "end"), PC_OK);
    return NULL;
}

static void
expect_had(const char *type)
{
    pc_msg *m = NULL;

    TCHECK_RC(pc_recv_type("had", &m, PT_LONG), PC_OK);
    if (m)
        TCHECK_STR(pc_msg_str(m), type);
    pc_msg_free(&m);
}

/* One round: a watcher with a full bounded mailbox monitors and links the
 * target, which then ends (how: 0 terminated by a task of its worker, 1 an
 * error exit, 2 a normal return); the DOWN and the EXIT both arrive, beyond
 * the capacity, and ending the target never waits for room. */
static void
sys_round(struct sys_ctx *c, int how)
{
    pc_spawn_opts o = pt_on(c->watcher_on, 0);
    pc_mailbox_stats st;

    o.mailbox_cap = 1;
    o.mailbox_policy = c->pol;
    c->target = pt_spawn(sitter, (void *)(intptr_t)how, 0, 0);
    TCHECK_RC(pc_spawn(sys_watcher, c, &o, &c->watcher), PC_OK);
    expect_type("linked");
    TCHECK_RC(pc_monitor(c->watcher, c->target), PC_OK);
    TCHECK_RC(pc_monitor(pc_self(), c->target), PC_OK);
    TCHECK_RC(send_u64(c->watcher, 1), PC_OK); /* now it is full */
    if (how == 0) {
        pt_spawn(terminator, c, 0, 0);
        expect_type("terminated"); /* it used to block in terminate */
    } else {
        TCHECK_RC(pc_resume(c->target, NULL), PC_OK);
    }
    /* our DOWN comes from the same notification as the watcher's DOWN
     * and EXIT, which were sent first or at once, and FIFO per pair holds
     * for the stats request after them */
    expect_type(PC_MSG_DOWN);
    st = stats(c->watcher);
    TCHECK_EQ(st.depth, 3);
    TCHECK_EQ(st.over, 2);
    TCHECK_EQ(st.refused + st.dropped, 0);
    TCHECK_RC(pc_resume(c->watcher, NULL), PC_OK);
    expect_had("n");
    expect_had(PC_MSG_DOWN); /* monitors are told before links */
    expect_had(PC_MSG_EXIT);
    expect_type("end");
}

static pc_msg *
sys_main(void *arg)
{
    struct sys_ctx *c = arg;
    static const pc_mbox_policy pols[] = {PC_MB_BLOCK, PC_MB_FAIL, PC_MB_DROP};

    c->driver = pc_self();
    for (int w = 0; w < pc_node_workers(); w++) {
        for (int p = 0; p < 3; p++) {
            for (int how = 0; how < 3; how++) {
                c->watcher_on = w;
                c->pol = pols[p];
                sys_round(c, how);
            }
        }
    }
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* DOWN and EXIT messages are never refused, dropped or waited for: a full
 * mailbox of any policy takes them beyond its capacity (counted as over),
 * from the target's worker and from another, and pc_task_terminate never
 * blocks on a full PC_MB_BLOCK watcher. */
PT_WTEST(down_exit_beyond_capacity)
static void
down_exit_beyond_capacity(int W)
{
    struct sys_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, sys_main, &c, &c.done, 1);
}

/* Asks the supervisor with its own bounded mailbox full. */
static pc_msg *
asker(void *arg)
{
    struct sys_ctx *c = arg;
    pc_mailbox_stats st;
    long count = -1;

    TCHECK_RC(send_u64(pc_self(), 1), PC_OK); /* now it is full */
    TCHECK_RC(pc_supervisor_restarts(c->target, &count, PT_LONG), PC_OK);
    TCHECK_EQ(count, 0);
    st = stats(pc_self());
    TCHECK_EQ(st.over, 1);
    TCHECK_EQ(st.refused + st.dropped, 0);
    TCHECK_RC(pt_send(c->driver, "asked"), PC_OK);
    return NULL;
}

static pc_msg *
reply_main(void *arg)
{
    struct sys_ctx *c = arg;
    static const pc_mbox_policy pols[] = {PC_MB_BLOCK, PC_MB_FAIL, PC_MB_DROP};
    pc_sup_opts so = {.strategy = PC_SUP_ONE_FOR_ONE, .intensity = 1};

    c->driver = pc_self();
    TCHECK_RC(pc_supervisor_start(&so, NULL, 0, NULL, &c->target), PC_OK);
    for (int w = 0; w < pc_node_workers(); w++) {
        for (int p = 0; p < 3; p++) {
            pc_spawn_opts o = pt_on(w, 0);
            o.mailbox_cap = 1;
            o.mailbox_policy = pols[p];
            TCHECK_RC(pc_spawn(asker, c, &o, NULL), PC_OK);
            expect_type("asked");
        }
    }
    TCHECK_RC(pc_supervisor_stop(c->target), PC_OK);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* A supervisor's reply reaches an asker whose bounded mailbox is full, and
 * the supervisor never waits for room in it. */
PT_WTEST(reply_beyond_capacity)
static void
reply_beyond_capacity(int W)
{
    struct sys_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, reply_main, &c, &c.done, 1);
}

/* ---- ownership: *m is the sender's on every error ------------------------------ */

/* A message of type "own" carrying v. */
static pc_msg *
own_msg(uint64_t v)
{
    pc_msg *m = NULL;

    TCHECK_RC(pc_msg_new(&m, "own", &v, sizeof v), PC_OK);
    return m;
}

/* *m is still a valid "own" message with v; freed here. */
#define KEPT(m, v) kept_at(__FILE__, __LINE__, (m), (v))

static void
kept_at(const char *file, int line, pc_msg **m, uint64_t v)
{
    if (!*m)
        pt_fail_at(file, line, "an error took the message (*m NULL)");
    else if (!pc_msg_is(*m, "own") || pt_u64(*m) != v)
        pt_fail_at(file, line, "*m changed: %s", pc_msg_type(*m));
    pc_msg_free(m);
}

static pc_msg *
own_main(void *arg)
{
    struct bctx *c = arg;
    static const pc_mbox_policy pols[] = {PC_MB_FAIL, PC_MB_DROP, PC_MB_BLOCK};
    static const uint64_t one[] = {1};
    pc_mailbox_stats st;
    pc_msg *m;

    c->driver = pc_self();
    for (int p = 0; p < 3; p++) {
        /* on this worker: every refusal is known at the call */
        c->r = spawn_holder(c, PT_SELF, 1, pols[p]);
        TCHECK_RC(send_u64(c->r, 1), PC_OK);
        m = own_msg(2);
        TCHECK_RC(pc_deliver(c->r, &m, 0), PC_EFULL);
        KEPT(&m, 2);
        m = own_msg(3);
        TCHECK_RC(pc_deliver(c->r, &m, 0.01),
                  pols[p] == PC_MB_BLOCK ? PC_ETIMEDOUT : PC_EFULL);
        KEPT(&m, 3);
        m = own_msg(4);
        TCHECK_RC(pc_send_timeout(c->r, &m, 0),
                  pols[p] == PC_MB_DROP ? PC_OK : PC_EFULL);
        if (pols[p] == PC_MB_DROP)
            TCHECK(m == NULL); /* dropped by the policy: a success */
        else
            KEPT(&m, 4);
        drain_expect(c->r, one, 1);
    }
    if (pc_node_workers() > 1) {
        /* from another worker: pc_send can't know, pc_deliver hears */
        c->r = spawn_holder(c, 1, 1, PC_MB_FAIL);
        TCHECK_RC(send_u64(c->r, 1), PC_OK);
        m = own_msg(5);
        TCHECK_RC(pc_send(c->r, &m), PC_OK);
        TCHECK(m == NULL); /* refused there, dropped and counted */
        m = own_msg(6);
        TCHECK_RC(pc_deliver(c->r, &m, PT_LONG), PC_EFULL);
        KEPT(&m, 6);
        st = stats(c->r);
        TCHECK_EQ(st.depth, 1);
        TCHECK_EQ(st.refused, 2);
        drain_expect(c->r, one, 1);
    }
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* pc_deliver and pc_send_timeout to full bounded mailboxes leave the
 * message with the caller on every error (pc_deliver used to free it);
 * a cross-worker pc_send reports PC_OK and the refusal is counted. */
PT_WTEST(ownership_bounded)
static void
ownership_bounded(int W)
{
    struct bctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, own_main, &c, &c.done, 1);
}

/* ---- from main, and bad options ------------------------------------------------ */

PT_TEST(stats_from_main)
static void
stats_from_main(void)
{
    struct bctx c;
    pc_spawn_opts o = {0};
    pc_mailbox_stats st;
    pc_ref r;

    memset(&c, 0, sizeof c);
    PT_START(2);
    o.mailbox_policy = (pc_mbox_policy)7;
    CU_ASSERT_EQUAL(pc_spawn(holder, &c, &o, &r), PC_EINVAL);
    o.mailbox_policy = PC_MB_DROP;
    o.mailbox_cap = 3;
    o.flags = PC_TASK_DAEMON;
    CU_ASSERT_EQUAL_FATAL(pc_spawn(holder, &c, &o, &r), PC_OK);
    CU_ASSERT_EQUAL(pc_mailbox_stats_get(r, &st, PT_LONG), PC_OK);
    CU_ASSERT_EQUAL(st.cap, 3);
    CU_ASSERT_EQUAL(pc_mailbox_stats_get(r, NULL, PT_LONG), PC_EINVAL);
    CU_ASSERT_EQUAL(pc_mailbox_stats_get(PC_REF_NIL, &st, PT_LONG), PC_ENOENT);
    PT_RUN();
}

PT_MAIN("bounded", PT_WENTRY(policies), PT_WENTRY(block),
        PT_WENTRY(block_target_ends), PT_WENTRY(block_skips_terminated),
        PT_WENTRY(block_woken_then_terminated), PT_WENTRY(block_send_timeout),
        PT_WENTRY(down_exit_beyond_capacity), PT_WENTRY(reply_beyond_capacity),
        PT_WENTRY(ownership_bounded), PT_ENTRY(stats_from_main))
