/* tests/test_cluster.c — the registry client against real picos-registry
 * processes: joining, names across nodes, locate (waiting, cached, not
 * found vs timed out), membership watches, failures of nodes and
 * registries, two registries, a conflict after a partition, wrong secret.
 *
 * The test program is one node (the driver, joined from a test task); the
 * others are cluster_peer processes (commands to their "ctl" task) and
 * picos-registry processes, all started in process groups of their own
 * on 127.0.0.1 port 0 and killed on every way out (netutil.h). Checks
 * wait for what they expect with PT_LONG bounds, never for a time.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>

#include "picos/net.h"
#include "picos/registry.h"

#include "netutil.h"
#include "registry.pb-c.h"
#include "status.pb-c.h"
#include "testutil.h"

/* ---- registries ------------------------------------------------------------------ */

typedef struct rg {
    nt_child c;
    char dir[128];
    char ep[256];
} rg;

/* Start picos-registry on `listen` (NULL: port 0) with data dir r->dir
 * (made when empty; a restart appends to its stderr file); false when it
 * did not print its line. */
static bool
rg_start(rg *r, const char *listen)
{
    char line[512] = "";
    kid_opts o = {.errpath = r->c.errpath, .err_append = true};

    secrets();
    if (!r->dir[0]) {
        if (!pt_mkdtemp(r->dir, sizeof r->dir, "reg"))
            return false;
    }
    snprintf(r->c.errpath, sizeof r->c.errpath, "%s/stderr", r->dir);
    if (!kid_run(&r->c, REGISTRY,
                 (const char *[]){
                     "--listen", listen ? listen : "tcp://127.0.0.1:0",
                     "--data-dir", r->dir, "--secret-file", secret_path,
                     "--heartbeat", NET_HB, "--timeout", NET_TIMEOUT, NULL},
                 &o))
        return false;
    if (!read_line(r->c.out, line, sizeof line, 20.0) ||
        sscanf(line, "%*s %*s listening on %255s", r->ep) != 1) {
        fprintf(stderr, "picos-registry did not start: '%s'\n", line);
        nt_stop(&r->c);
        return false;
    }
    snprintf(r->c.ep, sizeof r->c.ep, "%s", r->ep);
    return true;
}

static void
rg_kill(rg *r)
{
    nt_stop(&r->c);
}

/* ---- peers ------------------------------------------------------------------------- */

static bool
peer_start(nt_child *c, const char *registries)
{
    const char *args[] = {"--registries", registries,    "--secret-file",
                          secret_path,    "--heartbeat", NET_HB,
                          "--timeout",    NET_TIMEOUT,   NULL};
    secrets();
    return nt_start(c, args);
}

/* The ctl task of peer c (connecting to it). */
static pc_ref
ctl_of(const nt_child *c)
{
    pc_ref r = PC_REF_NIL;
    TCHECK_RC(pc_node_connect(c->ep, PT_LONG, NULL), PC_OK);
    TCHECK_RC(pc_locate_at(c->ep, "ctl", PT_LONG, &r), PC_OK);
    return r;
}

/* Send `cmd` to ctl and return its answer's pc_err (ref into *ref). */
static pc_err
ask(pc_ref ctl, const char *cmd, pc_ref *ref)
{
    pc_msg *m = NULL;
    int32_t rc = PC_EPROTO;
    size_t len = 0;
    const uint8_t *d;

    TCHECK_RC(pc_send_data(ctl, "cmd", cmd, strlen(cmd)), PC_OK);
    TCHECK_RC(pc_recv_type("rc", &m, 3 * PT_LONG), PC_OK);
    if (m && (d = pc_msg_data(m, &len)) && len == 20) {
        memcpy(&rc, d, 4);
        if (ref) {
            memcpy(&ref->node, d + 4, 8);
            memcpy(&ref->id, d + 12, 8);
        }
    }
    pc_msg_free(&m);
    return rc;
}

/* Join the driver to `registries` (its own heartbeat and timeout). */
static pc_err
driver_join(const char *registries, const char *secret)
{
    pc_cluster_opts o = {0};
    o.registries = registries;
    o.net.secret_file = secret ? secret : secret_path;
    o.net.heartbeat = atof(NET_HB);
    o.net.timeout = atof(NET_TIMEOUT);
    o.join_timeout = PT_LONG;
    return pc_cluster_join(&o);
}

static void
driver_run(pc_task_fn fn)
{
    secrets();
    PT_START(2);
    CU_ASSERT_EQUAL(pc_spawn(fn, NULL, NULL, NULL), PC_OK);
    PT_RUN();
}

/* Locate with timeout 0 until the answer is `want` (PT_LONG bound). */
static pc_err
locate_until(const char *name, pc_err want, pc_ref *out)
{
    double t0 = pc_now();
    pc_err rc;
    while ((rc = pc_locate(PC_NAME_TASK, name, 0, out)) != want &&
           pt_since(t0) < PT_LONG)
        pc_sleep(0.05);
    return rc;
}

/* ---- one registry: names across nodes --------------------------------------------- */

static rg R1, R2;
static nt_child B, C;

/* New data dirs for the next registries started. */
static void
fresh(void)
{
    R1.dir[0] = R2.dir[0] = '\0';
}

static pc_msg *
names_task(void *arg)
{
    pc_ref ctl, ref = PC_REF_NIL, got = PC_REF_NIL;
    pc_cluster_stats s0, s1;
    (void)arg;

    TCHECK_RC(driver_join(R1.ep, NULL), PC_OK);
    TCHECK(pc_cluster_joined());
    ctl = ctl_of(&B);
    /* register on B, locate here */
    TCHECK_RC(ask(ctl, "reg svc", NULL), PC_OK);
    TCHECK_RC(pc_locate(PC_NAME_TASK, "svc", PT_LONG, &got), PC_OK);
    TCHECK(pc_ref_eq(got, ctl));
    /* the same again from B is fine; another owner is refused */
    TCHECK_RC(ask(ctl, "reg svc", NULL), PC_OK);
    TCHECK_RC(pc_name_register(PC_NAME_TASK, "svc", pc_self(), PT_LONG),
              PC_EEXIST);
    /* not found (0) vs timed out */
    TCHECK_RC(pc_locate(PC_NAME_TASK, "nobody", 0, &ref), PC_ENOENT);
    TCHECK_RC(pc_locate(PC_NAME_TASK, "nobody", 0.3, &ref), PC_ETIMEDOUT);
    /* a second locate is answered here: no request leaves */
    TCHECK_RC(pc_cluster_stats_get(&s0), PC_OK);
    TCHECK_RC(pc_locate(PC_NAME_TASK, "svc", PT_LONG, &got), PC_OK);
    TCHECK(pc_ref_eq(got, ctl));
    TCHECK_RC(pc_cluster_stats_get(&s1), PC_OK);
    TCHECK_EQ(s1.requests, s0.requests);
    TCHECK_EQ(s1.cache_hits, s0.cache_hits + 1);
    /* a locate that waits for a name registered 0.3 s later */
    TCHECK_RC(ask(ctl, "later 0.3 late", NULL), PC_OK);
    TCHECK_RC(pc_locate(PC_NAME_TASK, "late", PT_LONG, &got), PC_OK);
    TCHECK_EQ(got.node, B.node);
    /* pc_register() on B is cluster-wide */
    TCHECK_RC(ask(ctl, "pcreg hooked", NULL), PC_OK);
    TCHECK_RC(pc_locate(PC_NAME_TASK, "hooked", PT_LONG, &got), PC_OK);
    TCHECK(pc_ref_eq(got, ctl));
    /* B unregisters: the cache here drops it (NAME_GONE) */
    TCHECK_RC(ask(ctl, "unreg svc", NULL), PC_OK);
    TCHECK_RC(ask(ctl, "unreg svc", NULL), PC_ENOENT);
    TCHECK_RC(locate_until("svc", PC_ENOENT, &got), PC_ENOENT);
    /* our own names */
    TCHECK_RC(pc_name_register(PC_NAME_TASK, "mine", pc_self(), PT_LONG),
              PC_OK);
    TCHECK_RC(ask(ctl, "locate mine 5", &got), PC_OK);
    TCHECK(pc_ref_eq(got, pc_self()));
    TCHECK_RC(pc_name_unregister(PC_NAME_TASK, "mine", PT_LONG), PC_OK);
    TCHECK_RC(pc_name_unregister(PC_NAME_TASK, "mine", PT_LONG), PC_ENOENT);
    pc_node_stop();
    return NULL;
}

PT_TEST(names_across_nodes)
static void
names_across_nodes(void)
{
    fresh();
    CU_ASSERT_FATAL(rg_start(&R1, NULL));
    CU_ASSERT_FATAL(peer_start(&B, R1.ep));
    driver_run(names_task);
    nt_stop(&B);
    rg_kill(&R1);
}

/* ---- membership and failures ------------------------------------------------------------ */

static int fail_signal;

/* Expect a node event for `node` of direction up; returns its reason. */
static void
expect_event(uint64_t node, bool up, pc_node_event *out)
{
    double t0 = pc_now();
    pc_msg *m = NULL;

    while (pt_since(t0) < 2 * PT_LONG) {
        pc_node_event ev;
        if (pc_recv_type(PC_MSG_NODE_EVENT, &m, 2 * PT_LONG) != PC_OK)
            break;
        TCHECK_RC(pc_node_event_parse(m, &ev), PC_OK);
        pc_msg_free(&m);
        if (ev.node.node == node && ev.up == up) {
            *out = ev;
            return;
        }
    }
    TCHECK(!"the node event did not come");
}

static pc_msg *
failure_task(void *arg)
{
    pc_ref ctl, got;
    pc_node_event ev;
    (void)arg;

    TCHECK_RC(driver_join(R1.ep, NULL), PC_OK);
    TCHECK_RC(pc_cluster_watch(pc_self()), PC_OK);
    CU_ASSERT_FATAL(peer_start(&B, R1.ep));
    expect_event(B.node, true, &ev);
    TCHECK(ev.node.pid == (uint32_t)B.pid);
    TCHECK(ev.node.endpoint[0] != '\0');
    ctl = ctl_of(&B);
    TCHECK_RC(ask(ctl, "reg doomed", NULL), PC_OK);
    TCHECK_RC(pc_locate(PC_NAME_TASK, "doomed", PT_LONG, &got), PC_OK);
    kill(-B.pid, fail_signal);
    expect_event(B.node, false, &ev);
    TCHECK_EQ(ev.node.incarnation != 0, 1);
    printf("  [node down: %s]\n", ev.reason);
    /* gone from the registry and from the cache */
    TCHECK_RC(locate_until("doomed", PC_ENOENT, &got), PC_ENOENT);
    TCHECK_RC(pc_cluster_unwatch(pc_self()), PC_OK);
    if (fail_signal == SIGSTOP)
        kill(-B.pid, SIGCONT);
    pc_node_stop();
    return NULL;
}

PT_TEST(node_kill9_names_go)
static void
node_kill9_names_go(void)
{
    fresh();
    CU_ASSERT_FATAL(rg_start(&R1, NULL));
    fail_signal = SIGKILL;
    driver_run(failure_task);
    nt_stop(&B);
    rg_kill(&R1);
}

PT_TEST(node_sigstop_names_go)
static void
node_sigstop_names_go(void)
{
    fresh();
    CU_ASSERT_FATAL(rg_start(&R1, NULL));
    fail_signal = SIGSTOP;
    driver_run(failure_task);
    nt_stop(&B);
    rg_kill(&R1);
}

static pc_msg *
registry_down_task(void *arg)
{
    pc_ref got;
    pc_registry_info ri;
    (void)arg;

    TCHECK_RC(driver_join(R1.ep, NULL), PC_OK);
    TCHECK_RC(pc_registry_status(NULL, &ri, PT_LONG), PC_OK);
    rg_kill(&R1);
    /* a locate parked at the registry ends when it is declared down */
    TCHECK_RC(pc_locate(PC_NAME_TASK, "never", 3 * PT_LONG, &got), PC_EUNREACH);
    /* and then everything answers at once */
    TCHECK_RC(pc_locate(PC_NAME_TASK, "never", 3 * PT_LONG, &got), PC_EUNREACH);
    TCHECK_RC(pc_name_register(PC_NAME_TASK, "x", pc_self(), 3 * PT_LONG),
              PC_EUNREACH);
    TCHECK_RC(pc_registry_status(NULL, &ri, 3 * PT_LONG), PC_EUNREACH);
    pc_node_stop();
    return NULL;
}

PT_TEST(registry_down_unreach)
static void
registry_down_unreach(void)
{
    fresh();
    CU_ASSERT_FATAL(rg_start(&R1, NULL));
    driver_run(registry_down_task);
    rg_kill(&R1);
}

static pc_msg *
wrong_secret_task(void *arg)
{
    (void)arg;
    TCHECK_RC(driver_join(R1.ep, other_path), PC_EAUTH);
    TCHECK(!pc_cluster_joined());
    pc_node_stop();
    return NULL;
}

PT_TEST(wrong_secret_refused)
static void
wrong_secret_refused(void)
{
    fresh();
    CU_ASSERT_FATAL(rg_start(&R1, NULL));
    driver_run(wrong_secret_task);
    rg_kill(&R1);
}

/* ---- join_timeout < 0: wait for a registry as long as it takes ------------------------ */

/* Let the stopped R1 go on later than the default join timeout (5 s): a
 * join told to wait forever must still be waiting then. */
static void *
late_registry(void *arg)
{
    (void)arg;
    usleep(6500 * 1000);
    kill(-R1.c.pid, SIGCONT);
    return NULL;
}

static pc_msg *
join_forever_task(void *arg)
{
    pc_cluster_opts o = {0};
    pthread_t t;
    (void)arg;

    o.registries = R1.ep;
    o.net.secret_file = secret_path;
    o.net.heartbeat = atof(NET_HB);
    o.net.timeout = atof(NET_TIMEOUT);
    o.join_timeout = -1; /* negative: forever */
    TCHECK(pthread_create(&t, NULL, late_registry, NULL) == 0);
    TCHECK_RC(pc_cluster_join(&o), PC_OK);
    pthread_join(t, NULL);
    TCHECK(pc_cluster_joined());
    pc_node_stop();
    return NULL;
}

PT_TEST(join_timeout_negative_waits)
static void
join_timeout_negative_waits(void)
{
    fresh();
    CU_ASSERT_FATAL(rg_start(&R1, NULL));
    CU_ASSERT_FATAL(kill(-R1.c.pid, SIGSTOP) == 0); /* there, not answering */
    driver_run(join_forever_task);
    rg_kill(&R1);
}

/* ---- lookups in flight (pc_locate_send) ------------------------------------------------ */

#define INFLIGHT 400

/* Take PC_MSG_LOCATED answers until tags [0, n) all came; each must come
 * once, with want[tag] as its result (its ref into refs[tag]). */
static void
collect_located(int n, const pc_err *want, pc_ref *refs)
{
    static uint8_t seen[INFLIGHT];
    int got = 0;

    memset(seen, 0, sizeof seen);
    while (got < n) {
        pc_msg *m = NULL;
        uint64_t tag = UINT64_MAX;
        pc_err rc = PC_OK;
        pc_ref ref = PC_REF_NIL;

        if (pc_recv_type(PC_MSG_LOCATED, &m, 3 * PT_LONG) != PC_OK) {
            TCHECK(!"an answer did not come");
            return;
        }
        TCHECK_RC(pc_located_parse(m, &tag, &rc, &ref), PC_OK);
        pc_msg_free(&m);
        TCHECK(tag < (uint64_t)n);
        if (tag >= (uint64_t)n)
            continue;
        TCHECK_EQ(seen[tag], 0); /* once */
        seen[tag]++;
        TCHECK_RC(rc, want[tag]);
        if (refs)
            refs[tag] = ref;
        got++;
    }
}

/* After a round trip through the agent, no answer is left over. */
static void
no_more_located(void)
{
    pc_registry_info ri;
    pc_msg *m = NULL;

    (void)pc_registry_status(NULL, &ri, PT_LONG);
    TCHECK_RC(pc_recv_type(PC_MSG_LOCATED, &m, 0), PC_ETIMEDOUT);
    pc_msg_free(&m);
}

static pc_msg *
inflight_task(void *arg)
{
    static pc_err want[INFLIGHT];
    static pc_ref refs[INFLIGHT];
    pc_ref ctl, late = PC_REF_NIL;
    pc_msg *m = NULL;
    (void)arg;

    TCHECK_RC(driver_join(R1.ep, NULL), PC_OK);
    ctl = ctl_of(&B);
    TCHECK_RC(ask(ctl, "reg svc", NULL), PC_OK);
    /* B registers "late" 0.3 s from now: its lookups wait for it */
    TCHECK_RC(ask(ctl, "later 0.3 late", NULL), PC_OK);
    for (int i = 0; i < INFLIGHT; i++) {
        const char *name;
        double t;
        switch (i % 4) {
        case 0:
            name = "svc", t = PT_LONG, want[i] = PC_OK;
            break;
        case 1:
            name = "nobody", t = 0, want[i] = PC_ENOENT;
            break;
        case 2:
            name = "late", t = PT_LONG, want[i] = PC_OK;
            break;
        default:
            name = "never", t = 0.3, want[i] = PC_ETIMEDOUT;
        }
        TCHECK_RC(pc_locate_send(PC_NAME_TASK, name, t, (uint64_t)i), PC_OK);
    }
    collect_located(INFLIGHT, want, refs);
    for (int i = 0; i < INFLIGHT; i++) {
        if (i % 4 == 0)
            TCHECK(pc_ref_eq(refs[i], ctl));
        else if (i % 4 == 2) {
            TCHECK_EQ(refs[i].node, B.node);
            if (pc_ref_is_nil(late))
                late = refs[i];
            TCHECK(pc_ref_eq(refs[i], late));
        } else
            TCHECK(pc_ref_is_nil(refs[i]));
    }
    no_more_located();
    /* cached now: answered at once, by a local message */
    TCHECK_RC(pc_locate_send(PC_NAME_TASK, "svc", 0, 7), PC_OK);
    TCHECK_RC(pc_recv_type(PC_MSG_LOCATED, &m, PT_LONG), PC_OK);
    {
        uint64_t tag = 0;
        pc_err rc = PC_EFAILED;
        pc_ref ref = PC_REF_NIL;
        TCHECK_RC(pc_located_parse(m, &tag, &rc, &ref), PC_OK);
        TCHECK_EQ(tag, 7);
        TCHECK_RC(rc, PC_OK);
        TCHECK(pc_ref_eq(ref, ctl));
    }
    pc_msg_free(&m);
    /* bad arguments: no answer comes */
    TCHECK_RC(pc_locate_send(PC_NAME_TASK, "", 0, 8), PC_EINVAL);
    TCHECK_RC(pc_locate_send((pc_name_kind)9, "x", 0, 8), PC_EINVAL);
    no_more_located();
    pc_node_stop();
    return NULL;
}

PT_TEST(locate_send_in_flight)
static void
locate_send_in_flight(void)
{
    fresh();
    CU_ASSERT_FATAL(rg_start(&R1, NULL));
    CU_ASSERT_FATAL(peer_start(&B, R1.ep));
    driver_run(inflight_task);
    nt_stop(&B);
    rg_kill(&R1);
}

static pc_msg *
inflight_down_task(void *arg)
{
    static pc_err want[INFLIGHT];
    char name[32];
    pc_registry_info ri;
    (void)arg;

    TCHECK_RC(driver_join(R1.ep, NULL), PC_OK);
    TCHECK_RC(pc_registry_status(NULL, &ri, PT_LONG), PC_OK);
    /* parked at the registry (names nobody registers) */
    for (int i = 0; i < INFLIGHT; i++) {
        snprintf(name, sizeof name, "never.%d", i);
        want[i] = PC_EUNREACH;
        TCHECK_RC(pc_locate_send(PC_NAME_TASK, name, 3 * PT_LONG, (uint64_t)i),
                  PC_OK);
    }
    rg_kill(&R1);
    collect_located(INFLIGHT, want, NULL);
    /* and from then on at once */
    TCHECK_RC(pc_locate_send(PC_NAME_TASK, "never", 3 * PT_LONG, 0), PC_OK);
    collect_located(1, want, NULL);
    no_more_located();
    pc_node_stop();
    return NULL;
}

PT_TEST(locate_send_registry_down)
static void
locate_send_registry_down(void)
{
    fresh();
    CU_ASSERT_FATAL(rg_start(&R1, NULL));
    driver_run(inflight_down_task);
    rg_kill(&R1);
}

/* ---- two registries ----------------------------------------------------------------------- */

/* Ask the registry at ep directly (a raw LIST_NAMES from this task) for
 * the owner node of task name `name`: 0 when it has none. */
static uint64_t
owner_at(const char *ep, const char *name)
{
    Picos__V1__RegRequest rq = PICOS__V1__REG_REQUEST__INIT;
    Picos__V1__RegReply *rp;
    pc_ref server = PC_REF_NIL;
    uint8_t buf[64];
    pc_msg *m = NULL;
    uint64_t owner = 0;
    const void *d;
    size_t len;

    TCHECK_RC(pc_node_connect(ep, PT_LONG, NULL), PC_OK);
    TCHECK_RC(pc_locate_at(ep, PC_REGISTRY_TASK, PT_LONG, &server), PC_OK);
    rq.id = 777;
    rq.op = PICOS__V1__REG_OP__LIST_NAMES;
    rq.timeout_ms = 5000;
    len = picos__v1__reg_request__pack(&rq, buf);
    TCHECK_RC(pc_send_data(server, "picos.v1.RegRequest", buf, len), PC_OK);
    for (;;) {
        if (pc_recv_type("picos.v1.RegReply", &m, PT_LONG) != PC_OK)
            return 0;
        d = pc_msg_data(m, &len);
        rp = picos__v1__reg_reply__unpack(NULL, len, d);
        pc_msg_free(&m);
        if (rp && rp->id == 777)
            break;
        if (rp)
            picos__v1__reg_reply__free_unpacked(rp, NULL);
    }
    for (size_t i = 0; i < rp->n_names; i++)
        if (!strcmp(rp->names[i]->name, name) && rp->names[i]->ref)
            owner = rp->names[i]->ref->node;
    picos__v1__reg_reply__free_unpacked(rp, NULL);
    return owner;
}

static uint64_t
owner_until(const char *ep, const char *name, uint64_t want)
{
    double t0 = pc_now();
    uint64_t o;
    while ((o = owner_at(ep, name)) != want && pt_since(t0) < 2 * PT_LONG)
        pc_sleep(0.1);
    return o;
}

static char both[600];

static pc_msg *
two_task(void *arg)
{
    pc_ref ctl, got;
    char ep1[256];
    (void)arg;

    TCHECK_RC(driver_join(both, NULL), PC_OK);
    ctl = ctl_of(&B);
    TCHECK_RC(ask(ctl, "reg a", NULL), PC_OK);
    TCHECK_EQ(owner_until(R1.ep, "a", B.node), B.node);
    TCHECK_EQ(owner_until(R2.ep, "a", B.node), B.node);
    /* one registry dies: registering and locating go on */
    snprintf(ep1, sizeof ep1, "%s", R1.ep);
    rg_kill(&R1);
    TCHECK_RC(ask(ctl, "reg b", NULL), PC_OK);
    TCHECK_RC(pc_locate(PC_NAME_TASK, "b", PT_LONG, &got), PC_OK);
    TCHECK(pc_ref_eq(got, ctl));
    TCHECK_RC(pc_locate(PC_NAME_TASK, "a", PT_LONG, &got), PC_OK);
    /* back, empty: it gets the names at the agents' re-JOIN */
    R1.dir[0] = '\0';
    CU_ASSERT_FATAL(rg_start(&R1, ep1));
    TCHECK_EQ(owner_until(R1.ep, "a", B.node), B.node);
    TCHECK_EQ(owner_until(R1.ep, "b", B.node), B.node);
    pc_node_stop();
    return NULL;
}

PT_TEST(two_registries_one_killed)
static void
two_registries_one_killed(void)
{
    fresh();
    CU_ASSERT_FATAL(rg_start(&R1, NULL));
    CU_ASSERT_FATAL(rg_start(&R2, NULL));
    snprintf(both, sizeof both, "%s,%s", R1.ep, R2.ep);
    CU_ASSERT_FATAL(peer_start(&B, both));
    driver_run(two_task);
    nt_stop(&B);
    rg_kill(&R1);
    rg_kill(&R2);
}

/* X claims "n" while only R1 is up; then, while X is stopped and R1 is
 * dead, Y claims "n" at R2. X wakes and re-JOINs R2 with its earlier
 * claim; R1 comes back and both re-JOIN it: every registry says X. */
static pc_msg *
conflict_task(void *arg)
{
    pc_ref xctl, yctl;
    char ep1[256], ep2[256];
    pc_net_opts no = {.secret_file = secret_path};
    pc_err rc;
    double t0;
    (void)arg;

    no.heartbeat = atof(NET_HB);
    no.timeout = atof(NET_TIMEOUT);
    TCHECK_RC(pc_net_start(&no), PC_OK);
    snprintf(ep1, sizeof ep1, "%s", R1.ep);
    snprintf(ep2, sizeof ep2, "%s", R2.ep);
    rg_kill(&R2); /* its endpoint is known: it starts later */
    CU_ASSERT_FATAL(peer_start(&B, both)); /* X */
    xctl = ctl_of(&B);
    TCHECK_RC(ask(xctl, "reg n", NULL), PC_OK);
    kill(-B.pid, SIGSTOP);
    rg_kill(&R1);
    CU_ASSERT_FATAL(rg_start(&R2, ep2));
    CU_ASSERT_FATAL(peer_start(&C, both)); /* Y */
    yctl = ctl_of(&C);
    rc = ask(yctl, "reg n", NULL);
    TCHECK(rc == PC_OK || rc == PC_EEXIST);
    kill(-B.pid, SIGCONT);
    TCHECK_EQ(owner_until(ep2, "n", B.node), B.node);
    CU_ASSERT_FATAL(rg_start(&R1, ep1));
    TCHECK_EQ(owner_until(ep1, "n", B.node), B.node);
    TCHECK_EQ(owner_until(ep2, "n", B.node), B.node);
    /* Y gave it up: it is not Y's to unregister, and Y said so once */
    TCHECK_RC(ask(yctl, "unreg n", NULL), PC_ENOENT);
    if (rc == PC_OK) {
        t0 = pc_now();
        while (!nt_stderr_has(&C, "lost to an earlier claim") &&
               pt_since(t0) < PT_LONG)
            pc_sleep(0.05);
        TCHECK(nt_stderr_has(&C, "lost to an earlier claim"));
    }
    printf("  [Y's claim: %s]\n", pc_err_name(rc));
    pc_node_stop();
    return NULL;
}

PT_TEST(partition_conflict_earlier_wins)
static void
partition_conflict_earlier_wins(void)
{
    fresh();
    CU_ASSERT_FATAL(rg_start(&R1, NULL));
    CU_ASSERT_FATAL(rg_start(&R2, NULL));
    snprintf(both, sizeof both, "%s,%s", R1.ep, R2.ep);
    driver_run(conflict_task);
    nt_stop(&B);
    nt_stop(&C);
    rg_kill(&R1);
    rg_kill(&R2);
}

/* ---- a node with 40,000 names re-joins a restarted registry ------------------ */

/* 40,000 names: a JOIN with all of them packs to ~2 MB, twice a peer's
 * frame limit, so it must go in chunks (a tenth under TSan, pt_scaled:
 * chunks still, at a smaller count). BIG_GONE of them are unregistered
 * while the registry is down: the re-join must drop them there. */
#define BIG ((int)pt_scaled(40000, 10))
#define BIG_GONE 1000
#define BIG_TASKS 64

typedef struct big_arg {
    pc_ref owner;
    int first;
} big_arg;

/* Register every BIG_TASKS-th name from `first` (ref: the owner task). */
static pc_msg *
big_register(void *arg)
{
    big_arg *b = arg;
    char name[32];

    for (int i = b->first; i < BIG; i += BIG_TASKS) {
        snprintf(name, sizeof name, "big-%d", i);
        TCHECK_RC(pc_name_register(PC_NAME_TASK, name, b->owner, PT_LONG),
                  PC_OK);
    }
    return NULL;
}

/* The registry at ep, asked directly (raw): send r, wait for its reply. */
static Picos__V1__RegReply *
raw_call(pc_ref server, Picos__V1__RegRequest *rq)
{
    static uint64_t next = 1u << 30;
    uint8_t buf[512];
    size_t len;
    uint64_t id = rq->id = next++;

    len = picos__v1__reg_request__pack(rq, buf);
    TCHECK_RC(pc_send_data(server, "picos.v1.RegRequest", buf, len), PC_OK);
    for (;;) {
        pc_msg *m = NULL;
        Picos__V1__RegReply *rp;
        const void *d;
        if (pc_recv_type("picos.v1.RegReply", &m, PT_LONG) != PC_OK)
            return NULL;
        d = pc_msg_data(m, &len);
        rp = picos__v1__reg_reply__unpack(NULL, len, d);
        pc_msg_free(&m);
        if (rp && rp->id == id)
            return rp;
        if (rp)
            picos__v1__reg_reply__free_unpacked(rp, NULL);
    }
}

static pc_msg *
big_task(void *arg)
{
    static big_arg args[BIG_TASKS];
    pc_ref tasks[BIG_TASKS], server = PC_REF_NIL;
    pc_spawn_opts so = {.worker = PC_WORKER_ANY, .flags = PC_TASK_JOINABLE};
    char ep1[256];
    size_t ok = 0, absent = 0, got = 0;
    uint32_t names = 0;
    double t0;
    (void)arg;

    TCHECK_RC(driver_join(R1.ep, NULL), PC_OK);
    t0 = pc_now();
    for (int t = 0; t < BIG_TASKS; t++) {
        args[t].owner = pc_self();
        args[t].first = t;
        TCHECK_RC(pc_spawn(big_register, &args[t], &so, &tasks[t]), PC_OK);
    }
    for (int t = 0; t < BIG_TASKS; t++)
        TCHECK_RC(pc_task_join(tasks[t], 3 * PT_LONG, NULL), PC_OK);
    printf("\n    %d names registered in %.2f s\n", BIG, pt_since(t0));
    /* the registry dies; names go while it is down */
    snprintf(ep1, sizeof ep1, "%s", R1.ep);
    rg_kill(&R1);
    for (int i = 0; i < BIG_GONE; i++) {
        char name[32];
        snprintf(name, sizeof name, "big-%d", i);
        (void)pc_name_unregister(PC_NAME_TASK, name, PT_LONG);
        TCHECK_RC(pc_name_unregister(PC_NAME_TASK, name, 0), PC_ENOENT);
    }
    /* back on its log: the agent re-joins it with every name it holds */
    t0 = pc_now();
    CU_ASSERT_FATAL(rg_start(&R1, ep1));
    TCHECK_RC(pc_node_connect(R1.ep, PT_LONG, NULL), PC_OK);
    TCHECK_RC(pc_locate_at(R1.ep, PC_REGISTRY_TASK, PT_LONG, &server), PC_OK);
    for (;;) {
        Picos__V1__RegRequest rq = PICOS__V1__REG_REQUEST__INIT;
        Picos__V1__RegReply *rp;
        bool done = false;
        rq.op = PICOS__V1__REG_OP__STATUS;
        if ((rp = raw_call(server, &rq))) {
            if (rp->registry) {
                names = rp->registry->names;
                done = !rp->registry->recovering &&
                       rp->registry->nodes_up == 1 &&
                       names == (uint32_t)(BIG - BIG_GONE);
            }
            picos__v1__reg_reply__free_unpacked(rp, NULL);
        }
        if (done || pt_since(t0) > 2 * PT_LONG)
            break;
        pc_sleep(0.05);
    }
    TCHECK_EQ(names, BIG - BIG_GONE);
    printf("    re-joined with %u names in %.2f s\n", names, pt_since(t0));
    /* every name asked at the registry: the held ones there, none other */
    for (int i = 0; i < BIG; i++) {
        Picos__V1__RegRequest rq = PICOS__V1__REG_REQUEST__INIT;
        Picos__V1__NameEntry e = PICOS__V1__NAME_ENTRY__INIT, *ep = &e;
        uint8_t buf[128];
        char name[32];
        size_t len;
        snprintf(name, sizeof name, "big-%d", i);
        e.name = name;
        rq.id = (uint64_t)i + 1;
        rq.op = PICOS__V1__REG_OP__LOCATE;
        rq.n_names = 1;
        rq.names = &ep;
        len = picos__v1__reg_request__pack(&rq, buf);
        TCHECK_RC(pc_send_data(server, "picos.v1.RegRequest", buf, len), PC_OK);
    }
    while (got < (size_t)BIG) {
        pc_msg *m = NULL;
        Picos__V1__RegReply *rp;
        const void *d;
        size_t len;
        if (pc_recv_type("picos.v1.RegReply", &m, PT_LONG) != PC_OK)
            break;
        d = pc_msg_data(m, &len);
        rp = picos__v1__reg_reply__unpack(NULL, len, d);
        pc_msg_free(&m);
        if (!rp)
            continue;
        if (rp->id >= 1 && rp->id <= (uint64_t)BIG) {
            bool gone = rp->id <= BIG_GONE;
            got++;
            if (!gone && rp->status == PICOS__V1__REG_STATUS__OK &&
                rp->n_names == 1 && rp->names[0]->ref &&
                rp->names[0]->ref->id == pc_self().id)
                ok++;
            if (gone && rp->status == PICOS__V1__REG_STATUS__NOT_FOUND)
                absent++;
        }
        picos__v1__reg_reply__free_unpacked(rp, NULL);
    }
    TCHECK_EQ(got, BIG);
    TCHECK_EQ(ok, BIG - BIG_GONE);
    TCHECK_EQ(absent, BIG_GONE);
    pc_node_stop();
    return NULL;
}

PT_TEST(big_node_rejoins_restarted_registry)
static void
big_node_rejoins_restarted_registry(void)
{
    fresh();
    CU_ASSERT_FATAL(rg_start(&R1, NULL));
    driver_run(big_task);
    rg_kill(&R1);
}

/* ---- node status (docs/monitoring.md) ------------------------------------------ */

/* The entry of `node` in a picos.v1.NodeStatusList message, or NULL. */
static const Picos__V1__NodeStatusEntry *
st_entry(const Picos__V1__NodeStatusList *l, uint64_t node)
{
    for (size_t i = 0; l && i < l->n_nodes; i++)
        if (l->nodes[i]->status && l->nodes[i]->status->node == node)
            return l->nodes[i];
    return NULL;
}

/* The registry's statuses now (NULL: the call failed; checked). */
static Picos__V1__NodeStatusList *
st_list(void)
{
    pc_msg *m = NULL;
    size_t len = 0;
    const void *d;
    Picos__V1__NodeStatusList *l = NULL;

    TCHECK_RC(pc_cluster_nodes_status(PT_LONG, &m), PC_OK);
    if (!m)
        return NULL;
    TCHECK(pc_msg_is(m, "picos.v1.NodeStatusList"));
    d = pc_msg_data(m, &len);
    l = picos__v1__node_status_list__unpack(NULL, len, d);
    TCHECK(l != NULL);
    pc_msg_free(&m);
    return l;
}

typedef bool (*st_pred)(const Picos__V1__NodeStatusEntry *e, void *ctx);

/* Poll the statuses (PT_LONG bound) until pred(entry of node) holds;
 * returns that list (the caller frees) or NULL (checked). */
static Picos__V1__NodeStatusList *
st_until(uint64_t node, st_pred pred, void *ctx)
{
    double t0 = pc_now();

    do {
        Picos__V1__NodeStatusList *l = st_list();
        const Picos__V1__NodeStatusEntry *e = st_entry(l, node);
        if (e && pred(e, ctx))
            return l;
        picos__v1__node_status_list__free_unpacked(l, NULL);
        pc_sleep(0.05);
    } while (pt_since(t0) < PT_LONG);
    TCHECK(!"the status did not come");
    return NULL;
}

static bool
st_any(const Picos__V1__NodeStatusEntry *e, void *ctx)
{
    (void)ctx;
    return e->up;
}

static bool
st_down(const Picos__V1__NodeStatusEntry *e, void *ctx)
{
    (void)ctx;
    return !e->up;
}

/* "Key: N kB" of /proc/meminfo, bytes. */
static uint64_t
meminfo_bytes(const char *key)
{
    char line[256];
    unsigned long long v = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    size_t kl = strlen(key);

    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ':')
            v = strtoull(line + kl + 1, NULL, 10) * 1024u;
    if (f)
        fclose(f);
    return v;
}

/* Send the registry task a NodeStatus made here (by this test task, not
 * by the agent of the node it names). */
static void
st_forge(pc_ref server, uint64_t node, uint64_t inc, const char *name)
{
    Picos__V1__NodeStatus s = PICOS__V1__NODE_STATUS__INIT;
    uint8_t buf[256];
    size_t len;

    s.node = node;
    s.incarnation = inc;
    s.name = (char *)name;
    s.msgs_sent = 123456789;
    len = picos__v1__node_status__pack(&s, buf);
    TCHECK_RC(pc_send_data(server, "picos.v1.NodeStatus", buf, len), PC_OK);
}

/* One STATUS request from this task to the registry task and its reply:
 * what this task sent it before has been handled (one link, one mailbox:
 * in order). */
static void
st_sync(pc_ref server)
{
    Picos__V1__RegRequest rq = PICOS__V1__REG_REQUEST__INIT;
    uint8_t buf[64];
    size_t len;
    pc_msg *m = NULL;

    rq.id = 77;
    rq.op = PICOS__V1__REG_OP__STATUS;
    len = picos__v1__reg_request__pack(&rq, buf);
    TCHECK_RC(pc_send_data(server, "picos.v1.RegRequest", buf, len), PC_OK);
    TCHECK_RC(pc_recv_type("picos.v1.RegReply", &m, PT_LONG), PC_OK);
    pc_msg_free(&m);
}

static pc_msg *
status_task(void *arg)
{
    pc_cluster_opts o = {0};
    Picos__V1__NodeStatusList *l;
    const Picos__V1__NodeStatusEntry *e;
    const Picos__V1__NodeStatus *s;
    char cwd[4096] = "", host[256] = "";
    pc_ref server = PC_REF_NIL;
    uint64_t forged = 0xF0F0F0F0F0F0F0F0ull;
    uint32_t bpid;
    (void)arg;

    o.registries = R1.ep;
    o.net.secret_file = secret_path;
    o.net.heartbeat = atof(NET_HB);
    o.net.timeout = atof(NET_TIMEOUT);
    o.join_timeout = PT_LONG;
    o.status_interval = 0.2;
    TCHECK_RC(pc_cluster_join(&o), PC_OK);
    CU_ASSERT_FATAL(peer_start(&B, R1.ep)); /* the default interval: 1 s */
    TCHECK(getcwd(cwd, sizeof cwd) != NULL);
    gethostname(host, sizeof host - 1);

    /* ours, as /proc and the runtime say */
    if ((l = st_until(pc_node_id(), st_any, NULL))) {
        e = st_entry(l, pc_node_id());
        s = e->status;
        TCHECK_EQ(s->incarnation, pc_node_incarnation());
        TCHECK_EQ(s->pid, (uint32_t)getpid());
        TCHECK_STR(s->host, host);
        TCHECK_STR(s->data_dir, cwd);
        TCHECK_EQ(s->interval_ms, 200);
        TCHECK_EQ(s->mem_total, meminfo_bytes("MemTotal"));
        TCHECK(s->mem_available > 0 && s->mem_available <= s->mem_total);
        TCHECK(s->rss > 0 && s->rss < s->mem_total);
        TCHECK(s->disk_free > 0);
        TCHECK(s->cpus >= 1);
        TCHECK(s->cpu_available_pct >= 0 && s->cpu_available_pct <= 100);
        TCHECK(s->swap_available_pct >= 0 && s->swap_available_pct <= 100);
        TCHECK(s->proc_cpu_pct >= 0);
        TCHECK(s->started_us > 0 && s->started_us <= s->sampled_us);
        TCHECK_EQ(s->workers, (uint32_t)pc_node_workers());
        TCHECK(e->received_us > 0 && e->down_us == 0);
        picos__v1__node_status_list__free_unpacked(l, NULL);
    }
    /* B's, from its own agent */
    if ((l = st_until(B.node, st_any, NULL))) {
        s = st_entry(l, B.node)->status;
        TCHECK_EQ(s->pid, (uint32_t)B.pid);
        TCHECK_EQ(s->interval_ms, 1000);
        picos__v1__node_status_list__free_unpacked(l, NULL);
    }

    /* forged statuses: for a node that is no member, for B (a member, but
     * this task is not its agent) and for us from another task than our
     * agent: all dropped */
    TCHECK_RC(pc_locate_at(R1.ep, PC_REGISTRY_TASK, PT_LONG, &server), PC_OK);
    st_forge(server, forged, 1, "forged");
    st_forge(server, B.node, 0x1234, "forged");
    st_forge(server, pc_node_id(), pc_node_incarnation(), "forged");
    st_sync(server);
    if ((l = st_list())) {
        TCHECK(st_entry(l, forged) == NULL);
        TCHECK((e = st_entry(l, B.node)) && e->status->incarnation != 0x1234 &&
               strcmp(e->status->name, "forged") &&
               e->status->msgs_sent != 123456789);
        TCHECK((e = st_entry(l, pc_node_id())) &&
               strcmp(e->status->name, "forged"));
        picos__v1__node_status_list__free_unpacked(l, NULL);
    }

    /* B killed: shown down with a reason, its last status kept */
    bpid = (uint32_t)B.pid;
    nt_stop(&B);
    if ((l = st_until(B.node, st_down, NULL))) {
        e = st_entry(l, B.node);
        TCHECK(e->down_us >= e->received_us);
        TCHECK(e->down_reason && e->down_reason[0]);
        TCHECK_EQ(e->status->pid, bpid);
        TCHECK((e = st_entry(l, pc_node_id())) && e->up);
        picos__v1__node_status_list__free_unpacked(l, NULL);
    }
    pc_node_stop();
    return NULL;
}

/* NodeStatus end to end: this node and a peer report to a real registry,
 * pc_cluster_nodes_status() shows them (the numbers checked against /proc
 * and the runtime), forged statuses are dropped, a killed peer is shown
 * down. */
PT_TEST(node_status_reported)
static void
node_status_reported(void)
{
    fresh();
    CU_ASSERT_FATAL(rg_start(&R1, NULL));
    driver_run(status_task);
    nt_stop(&B);
    rg_kill(&R1);
}

PT_MAIN("cluster", PT_ENTRY(names_across_nodes), PT_ENTRY(node_kill9_names_go),
        PT_ENTRY(node_sigstop_names_go), PT_ENTRY(registry_down_unreach),
        PT_ENTRY(wrong_secret_refused), PT_ENTRY(join_timeout_negative_waits),
        PT_ENTRY(two_registries_one_killed),
        PT_ENTRY(partition_conflict_earlier_wins),
        PT_ENTRY(locate_send_in_flight), PT_ENTRY(locate_send_registry_down),
        PT_ENTRY(big_node_rejoins_restarted_registry),
        PT_ENTRY(node_status_reported))
