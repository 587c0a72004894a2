/* tests/test_supervisor.c — supervisors: restart kinds, strategies,
 * intensity, stop, and death by link.
 *
 * Every child announces itself to the test's driver task with a "started"
 * message carrying its index and ref, so the driver learns of each (re)start
 * from its mailbox instead of polling the supervisor or sleeping.
 */
#include "picos/supervisor.h"

#include "testutil.h"

#define MAXKIDS 3

struct sctx {
    pc_ref driver;
    atomic_int done;
};

struct kid_arg {
    struct sctx *c;
    int index;
};

struct started {
    int index;
    pc_ref ref;
};

/* A child: says it started, then obeys "crash" / "quit" messages. */
static pc_msg *
kid(void *arg)
{
    struct kid_arg *a = arg;
    struct started s = {a->index, pc_self()};
    pc_msg *m;

    pc_send_data(a->c->driver, "started", &s, sizeof s);
    while (pc_recv(&m, -1) == PC_OK) {
        bool crash = pc_msg_is(m, "crash"), quit = pc_msg_is(m, "quit");
        pc_msg_free(&m);
        if (crash)
            pc_exit_error("crash");
        if (quit)
            return NULL;
    }
    return NULL;
}

/* The next "started" message: its child index and ref. */
static int
expect_started(pc_ref *ref)
{
    pc_msg *m = NULL;
    struct started s = {-1, PC_REF_NIL};
    size_t len = 0;

    if (pc_recv_type("started", &m, PT_LONG) != PC_OK) {
        TCHECK(!"a child start was expected");
        return -1;
    }
    const void *d = pc_msg_data(m, &len);
    if (len == sizeof s)
        memcpy(&s, d, sizeof s);
    pc_msg_free(&m);
    *ref = s.ref;
    return s.index;
}

/* No child start pending: a probe sent to ourselves comes back first. */
static void
expect_no_start(void)
{
    pc_msg *m = NULL;

    TCHECK_RC(pt_send(pc_self(), "probe"), PC_OK);
    TCHECK_RC(pc_recv(&m, PT_LONG), PC_OK);
    TCHECK(m && pc_msg_is(m, "probe"));
    pc_msg_free(&m);
}

static struct kid_arg args[MAXKIDS];

static pc_ref
start_sup(struct sctx *c, pc_sup_strategy st, int intensity,
          const pc_restart *kinds, int n, pc_ref kids[])
{
    static const char *names[MAXKIDS] = {"a", "b", "c"};
    pc_child_spec spec[MAXKIDS];
    pc_sup_opts o = {st, intensity, 30};
    pc_ref sup = PC_REF_NIL;

    memset(spec, 0, sizeof spec);
    for (int i = 0; i < n; i++) {
        args[i].c = c;
        args[i].index = i;
        spec[i].name = names[i];
        spec[i].fn = kid;
        spec[i].arg = &args[i];
        spec[i].restart = kinds[i];
    }
    TCHECK_RC(pc_supervisor_start(&o, spec, (size_t)n, NULL, &sup), PC_OK);
    for (int i = 0; i < n; i++) {
        pc_ref r;
        int k = expect_started(&r);
        TCHECK_EQ(k, i); /* started in spec order */
        if (k >= 0 && k < n)
            kids[k] = r;
    }
    return sup;
}

/* Down of `who` (monitored by the caller) with the given reason. */
static void
expect_down(pc_ref who, pc_down_reason reason)
{
    pc_msg *m = NULL;
    pc_down d;

    TCHECK_RC(pc_recv_type(PC_MSG_DOWN, &m, PT_LONG), PC_OK);
    if (!m)
        return;
    TCHECK_RC(pc_down_parse(m, &d), PC_OK);
    TCHECK(pc_ref_eq(d.who, who));
    TCHECK_EQ(d.reason, reason);
    pc_msg_free(&m);
}

static void
stop_sup(pc_ref sup)
{
    TCHECK_RC(pc_monitor(pc_self(), sup), PC_OK);
    TCHECK_RC(pc_supervisor_stop(sup), PC_OK);
    expect_down(sup, PC_DOWN_NORMAL);
}

/* ---- one-for-one ---------------------------------------------------------- */

static pc_msg *
one_for_one_main(void *arg)
{
    struct sctx *c = arg;
    pc_restart kinds[2] = {PC_RESTART_PERMANENT, PC_RESTART_PERMANENT};
    pc_ref k[2], r, q;
    long restarts = -1;

    c->driver = pc_self();
    pc_ref sup = start_sup(c, PC_SUP_ONE_FOR_ONE, 5, kinds, 2, k);
    TCHECK_RC(pt_send(k[0], "crash"), PC_OK);
    TCHECK_EQ(expect_started(&r), 0);
    TCHECK(!pc_ref_eq(r, k[0]));
    TCHECK(!pc_alive(k[0]));
    TCHECK(pc_alive(k[1])); /* its sibling was left alone */
    TCHECK_RC(pc_supervisor_child(sup, "a", &q, PT_LONG), PC_OK);
    TCHECK(pc_ref_eq(q, r));
    TCHECK_RC(pc_supervisor_child(sup, "b", &q, PT_LONG), PC_OK);
    TCHECK(pc_ref_eq(q, k[1]));
    TCHECK_RC(pc_supervisor_child(sup, "zz", &q, PT_LONG), PC_ENOENT);
    TCHECK_RC(pc_supervisor_restarts(sup, &restarts, PT_LONG), PC_OK);
    TCHECK_EQ(restarts, 1);
    /* a permanent child that ends normally comes back too */
    TCHECK_RC(pt_send(k[1], "quit"), PC_OK);
    TCHECK_EQ(expect_started(&r), 1);
    stop_sup(sup);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(one_for_one)
static void
one_for_one(int W)
{
    struct sctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, one_for_one_main, &c, &c.done, 1);
}

/* ---- restart kinds -------------------------------------------------------- */

static pc_msg *
kinds_main(void *arg)
{
    struct sctx *c = arg;
    pc_restart kinds[3] = {PC_RESTART_TRANSIENT, PC_RESTART_TRANSIENT,
                           PC_RESTART_TEMPORARY};
    pc_ref k[3], r;

    c->driver = pc_self();
    pc_ref sup = start_sup(c, PC_SUP_ONE_FOR_ONE, 5, kinds, 3, k);
    /* transient: a normal end is final... */
    TCHECK_RC(pc_monitor(pc_self(), k[0]), PC_OK);
    TCHECK_RC(pt_send(k[0], "quit"), PC_OK);
    expect_down(k[0], PC_DOWN_NORMAL);
    /* ...an error end is not */
    TCHECK_RC(pt_send(k[1], "crash"), PC_OK);
    TCHECK_EQ(expect_started(&r), 1);
    /* temporary: never comes back */
    TCHECK_RC(pc_monitor(pc_self(), k[2]), PC_OK);
    TCHECK_RC(pt_send(k[2], "crash"), PC_OK);
    expect_down(k[2], PC_DOWN_ERROR);
    /* the supervisor has handled both ends before it answers this */
    TCHECK_RC(pc_supervisor_child(sup, "a", &r, PT_LONG), PC_ENOENT);
    TCHECK_RC(pc_supervisor_child(sup, "c", &r, PT_LONG), PC_ENOENT);
    expect_no_start();
    stop_sup(sup);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(restart_kinds)
static void
restart_kinds(int W)
{
    struct sctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, kinds_main, &c, &c.done, 1);
}

/* ---- one-for-all and rest-for-one ---------------------------------------- */

static pc_msg *
strategies_main(void *arg)
{
    struct sctx *c = arg;
    pc_restart kinds[3] = {PC_RESTART_PERMANENT, PC_RESTART_PERMANENT,
                           PC_RESTART_PERMANENT};
    pc_ref k[3], r[3];

    c->driver = pc_self();
    /* one-for-all: b crashes, a, b and c all start again, in order */
    pc_ref sup = start_sup(c, PC_SUP_ONE_FOR_ALL, 5, kinds, 3, k);
    TCHECK_RC(pt_send(k[1], "crash"), PC_OK);
    for (int i = 0; i < 3; i++) {
        TCHECK_EQ(expect_started(&r[i]), i);
        TCHECK(!pc_ref_eq(r[i], k[i]));
        TCHECK(!pc_alive(k[i]));
    }
    stop_sup(sup);
    expect_no_start();

    /* rest-for-one: b crashes, b and c start again, a stays */
    sup = start_sup(c, PC_SUP_REST_FOR_ONE, 5, kinds, 3, k);
    TCHECK_RC(pt_send(k[1], "crash"), PC_OK);
    TCHECK_EQ(expect_started(&r[1]), 1);
    TCHECK_EQ(expect_started(&r[2]), 2);
    TCHECK(pc_alive(k[0]));
    TCHECK(!pc_alive(k[2]));
    stop_sup(sup);
    /* the stop terminated every child */
    TCHECK(!pc_alive(k[0]) && !pc_alive(r[1]) && !pc_alive(r[2]));
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(strategies)
static void
strategies(int W)
{
    struct sctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, strategies_main, &c, &c.done, 1);
}

/* ---- intensity ------------------------------------------------------------- */

static pc_msg *
intensity_main(void *arg)
{
    struct sctx *c = arg;
    pc_restart kinds[2] = {PC_RESTART_PERMANENT, PC_RESTART_PERMANENT};
    pc_ref k[2], r, cur;
    pc_msg *m = NULL;
    pc_down d;

    c->driver = pc_self();
    pc_ref sup = start_sup(c, PC_SUP_ONE_FOR_ONE, 2, kinds, 2, k);
    TCHECK_RC(pc_monitor(pc_self(), sup), PC_OK);
    TCHECK_RC(pc_monitor(pc_self(), k[1]), PC_OK);
    cur = k[0];
    for (int i = 0; i < 2; i++) { /* two restarts are allowed */
        TCHECK_RC(pt_send(cur, "crash"), PC_OK);
        TCHECK_EQ(expect_started(&r), 0);
        cur = r;
    }
    TCHECK_RC(pt_send(cur, "crash"), PC_OK); /* the third is one too many */
    for (int seen = 0; seen < 2;) { /* b killed, then the supervisor's end */
        TCHECK_RC(pc_recv_type(PC_MSG_DOWN, &m, PT_LONG), PC_OK);
        if (!m)
            break;
        TCHECK_RC(pc_down_parse(m, &d), PC_OK);
        if (pc_ref_eq(d.who, k[1])) {
            TCHECK_EQ(d.reason, PC_DOWN_KILLED);
            seen++;
        } else if (pc_ref_eq(d.who, sup)) {
            TCHECK_EQ(d.reason, PC_DOWN_ERROR);
            TCHECK_STR(d.error, "restart intensity reached");
            seen++;
        }
        pc_msg_free(&m);
    }
    expect_no_start();
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(intensity)
static void
intensity(int W)
{
    struct sctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, intensity_main, &c, &c.done, 1);
}

/* ---- a terminated supervisor takes its children with it -------------------- */

static pc_msg *
killed_main(void *arg)
{
    struct sctx *c = arg;
    pc_restart kinds[2] = {PC_RESTART_PERMANENT, PC_RESTART_TRANSIENT};
    pc_ref k[2];

    c->driver = pc_self();
    pc_ref sup = start_sup(c, PC_SUP_ONE_FOR_ONE, 5, kinds, 2, k);
    TCHECK_RC(pc_monitor(pc_self(), k[0]), PC_OK);
    TCHECK_RC(pc_monitor(pc_self(), k[1]), PC_OK);
    TCHECK_RC(pc_task_terminate(sup), PC_OK);
    for (int i = 0; i < 2; i++) {
        pc_msg *m = NULL;
        pc_down d;
        TCHECK_RC(pc_recv_type(PC_MSG_DOWN, &m, PT_LONG), PC_OK);
        if (m && pc_down_parse(m, &d) == PC_OK)
            TCHECK_EQ(d.reason, PC_DOWN_KILLED);
        pc_msg_free(&m);
    }
    TCHECK(!pc_alive(k[0]) && !pc_alive(k[1]));
    expect_no_start();
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(killed_supervisor)
static void
killed_supervisor(int W)
{
    struct sctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, killed_main, &c, &c.done, 1);
}

/* ---- bad specs --------------------------------------------------------------- */

PT_TEST(bad_specs)
static void
bad_specs(void)
{
    pc_child_spec s[2];
    pc_sup_opts o = {PC_SUP_ONE_FOR_ONE, 1, 1};
    pc_ref r;

    memset(s, 0, sizeof s);
    s[0].name = "x";
    s[0].fn = kid;
    s[1] = s[0];
    PT_START(1);
    CU_ASSERT_EQUAL(pc_supervisor_start(&o, s, 2, NULL, &r), PC_EINVAL);
    s[1].name = NULL;
    CU_ASSERT_EQUAL(pc_supervisor_start(&o, s, 2, NULL, &r), PC_EINVAL);
    s[1].name = "y";
    s[1].fn = NULL;
    CU_ASSERT_EQUAL(pc_supervisor_start(&o, s, 2, NULL, &r), PC_EINVAL);
    s[1].fn = kid;
    s[1].opts.flags = PC_TASK_JOINABLE;
    CU_ASSERT_EQUAL(pc_supervisor_start(&o, s, 2, NULL, &r), PC_EINVAL);
    CU_ASSERT_EQUAL(pc_supervisor_start(NULL, s, 1, NULL, &r), PC_EINVAL);
    CU_ASSERT_EQUAL(pc_supervisor_child(PC_REF_NIL, "x", &r, 1), PC_EPERM);
    PT_RUN();
}

PT_MAIN("supervisor", PT_WENTRY(one_for_one), PT_WENTRY(restart_kinds),
        PT_WENTRY(strategies), PT_WENTRY(intensity),
        PT_WENTRY(killed_supervisor), PT_ENTRY(bad_specs))
