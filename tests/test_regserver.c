/* tests/test_regserver.c — the registry daemon as a real process.
 *
 * Every test starts its own picos-registry processes on 127.0.0.1 port 0
 * (the endpoint is read back from the startup line) with a data dir of its
 * own, in their own process groups, killed on every way out (netutil.h's
 * table and atexit). The test program is a node that speaks the raw
 * protocol (regproto.h): its test task is the agent of its JOIN. Other
 * members are reg_peer processes (started with nt_start: NET_PEER is
 * reg_peer here). Tests check what the registry answered and told, never
 * how long it took; the times the issue names are printed.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/stat.h>

#include "picos/net.h"

#include "netutil.h"
#include "regproto.h"
#include "testutil.h"

static char driver_ep[256];
/* More arguments for the next registries started (NULL-terminated). */
static const char *rg_extra[4];

/* A fresh data dir for one test. */
static void
data_dir(char *buf, size_t size, const char *tag)
{
    if (!pt_mkdtemp(buf, size, tag))
        CU_FAIL_FATAL("can't make a data dir");
}

/* ---- registry processes ------------------------------------------------------- */

typedef struct rg {
    nt_child c;
    size_t nodes, names; /* from the startup line */
} rg;

/* Start picos-registry with args (NULL-terminated), stdout to a pipe,
 * stderr to c->errpath. */
static bool
rg_spawn(nt_child *c, const char *const *args)
{
    static int seq;
    char name[32];
    kid_opts o = {.errpath = c->errpath};

    snprintf(name, sizeof name, "rg-%d.err", seq++);
    pt_tmppath(c->errpath, sizeof c->errpath, name);
    return kid_run(c, REG_BIN, args, &o);
}

static void
rg_args(const char **a, size_t *n, const char *dir, const char *listen)
{
    const char *fixed[] = {"--listen",      listen,      "--data-dir",  dir,
                           "--secret-file", secret_path, "--heartbeat", NET_HB,
                           "--timeout",     NET_TIMEOUT, "--grace",     "30",
                           "--name",        "reg-test"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        a[(*n)++] = fixed[i];
}

/* Start a registry on dir; false (stderr shown) when it gave no startup
 * line within 20 s. */
static bool
rg_start(rg *g, const char *dir, const char *listen)
{
    const char *a[32];
    size_t n = 0;
    char line[512];
    const char *p;

    rg_args(a, &n, dir, listen ? listen : "tcp://127.0.0.1:0");
    for (size_t i = 0; rg_extra[i]; i++)
        a[n++] = rg_extra[i];
    a[n] = NULL;
    memset(g, 0, sizeof *g);
    if (!rg_spawn(&g->c, a))
        return false;
    if (!read_line(g->c.out, line, sizeof line, 20.0) ||
        !(p = strstr(line, " listening on ")) ||
        sscanf(p, " listening on %255s", g->c.ep) != 1 ||
        !(p = strstr(line, ", ")) ||
        sscanf(p, ", %zu nodes and %zu names", &g->nodes, &g->names) != 2) {
        char err[1024];
        fprintf(stderr, "picos-registry did not start: %s\n",
                kid_errtext(&g->c, err, sizeof err));
        nt_stop(&g->c);
        return false;
    }
    return true;
}

/* Wait for the child to exit (20 s at most); its exit status, or -1. */
static int
rg_wait(nt_child *c)
{
    int st = kid_wait(c, 20.0) ? exit_code(c) : -1;
    nt_stop(c);
    return st;
}

/* SIGTERM and its exit status. */
static int
rg_term(rg *g)
{
    kill(g->c.pid, SIGTERM);
    return rg_wait(&g->c);
}

/* Run a registry that must fail; its exit status, its stderr in err. */
static int
rg_fail(const char *const *args, char *err, size_t size)
{
    nt_child c;
    int st;

    if (!rg_spawn(&c, args))
        return -1;
    st = rg_wait(&c);
    kid_errtext(&c, err, size);
    return st;
}

static size_t
lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* ---- the driver node ---------------------------------------------------------------- */

static void
driver_start(const char *secret)
{
    pc_net_opts o = {0};

    secrets();
    PT_START(2);
    o.name = "driver";
    o.secret_file = secret ? secret : secret_path;
    o.heartbeat = atof(NET_HB);
    o.timeout = atof(NET_TIMEOUT);
    CU_ASSERT_FATAL(pc_net_start(&o) == PC_OK);
    CU_ASSERT_FATAL(pc_node_listen("tcp://127.0.0.1:0", driver_ep,
                                   sizeof driver_ep) == PC_OK);
}

static bool
peer_start(nt_child *c, const char *reg_ep, const char *prefix,
           const char *names)
{
    const char *args[] = {"--registry",  reg_ep, "--secret-file", secret_path,
                          "--names",     names,  "--prefix",      prefix,
                          "--heartbeat", NET_HB, "--timeout",     NET_TIMEOUT,
                          NULL};
    return nt_start(c, args);
}

static pc_ref
find(const char *ep)
{
    pc_ref reg = PC_REF_NIL;
    TCHECK_RC(rp_find(ep, PT_LONG, &reg), PC_OK);
    return reg;
}

/* Check a reply's status; frees it. */
#define REPLY_IS(expr, want)                                                   \
    do {                                                                       \
        Picos__V1__RegReply *r_ = (expr);                                      \
        TCHECK(r_ != NULL);                                                    \
        if (r_) {                                                              \
            if ((int)r_->status != (int)(want))                                \
                pt_fail_at(__FILE__, __LINE__, "%s: status %d (%s), want %d",  \
                           #expr, (int)r_->status, r_->text, (int)(want));     \
            picos__v1__reg_reply__free_unpacked(r_, NULL);                     \
        }                                                                      \
    } while (0)

static void
join_self(pc_ref reg, const char *prefix, size_t n)
{
    REPLY_IS(rp_join(reg, "driver", driver_ep, prefix, n, PT_LONG),
             PICOS__V1__REG_STATUS__OK);
}

/* Events until NODE_DOWN of `node`: the NAME_GONE of its names counted. */
static bool
wait_down(uint64_t node, size_t *gone, double timeout)
{
    double t0 = pc_now();

    *gone = 0;
    while (pt_since(t0) < timeout) {
        pc_msg *m = NULL;
        Picos__V1__RegEvent *ev;
        size_t len = 0;
        const void *d;
        bool down = false;
        if (pc_recv_type(RP_EVENT, &m, timeout - pt_since(t0)) != PC_OK)
            return false;
        d = pc_msg_data(m, &len);
        if ((ev = picos__v1__reg_event__unpack(NULL, len, d))) {
            if (ev->kind == PICOS__V1__REG_EVENT_KIND__NAME_GONE && ev->name &&
                ev->name->ref && ev->name->ref->node == node)
                (*gone)++;
            down = ev->kind == PICOS__V1__REG_EVENT_KIND__NODE_DOWN &&
                   ev->node && ev->node->node == node;
            picos__v1__reg_event__free_unpacked(ev, NULL);
        }
        pc_msg_free(&m);
        if (down)
            return true;
    }
    return false;
}

/* ---- register, duplicate, locate, unregister -------------------------------------------- */

static rg R1, R2;
static nt_child P;

static pc_msg *
late_register(void *arg)
{
    pc_ref reg = *(pc_ref *)arg;
    pc_sleep(0.2); /* so that the LOCATE is parked first (not needed for
                      correctness: it would succeed at once otherwise) */
    REPLY_IS(rp_name_op(reg, PICOS__V1__REG_OP__REGISTER,
                        PICOS__V1__NAME_KIND__TASK, "late", pc_self(), 0,
                        PT_LONG),
             PICOS__V1__REG_STATUS__OK);
    pc_recv(NULL, PT_LONG); /* stay alive until the test says so */
    return NULL;
}

static pc_msg *
names_task(void *arg)
{
    Picos__V1__RegReply *r;
    pc_ref reg, helper;
    (void)arg;

    reg = find(R1.c.ep);
    join_self(reg, "", 0);
    REPLY_IS(rp_name_op(reg, PICOS__V1__REG_OP__REGISTER,
                        PICOS__V1__NAME_KIND__TASK, "a", pc_self(), 0, PT_LONG),
             PICOS__V1__REG_STATUS__OK);
    REPLY_IS(rp_name_op(reg, PICOS__V1__REG_OP__REGISTER,
                        PICOS__V1__NAME_KIND__TASK, "a", pc_self(), 0, PT_LONG),
             PICOS__V1__REG_STATUS__OK); /* again: idempotent */
    r = rp_name_op(reg, PICOS__V1__REG_OP__LOCATE, PICOS__V1__NAME_KIND__TASK,
                   "a", PC_REF_NIL, 0, PT_LONG);
    TCHECK(r && r->status == PICOS__V1__REG_STATUS__OK && r->n_names == 1);
    if (r && r->n_names == 1 && r->names[0]->ref) {
        TCHECK_EQ(r->names[0]->ref->id, pc_self().id);
        TCHECK_EQ(r->names[0]->ref->node, pc_node_id());
        TCHECK_STR(r->names[0]->node_name, "driver");
        TCHECK_STR(r->names[0]->endpoint, driver_ep);
    }
    if (r)
        picos__v1__reg_reply__free_unpacked(r, NULL);
    /* the same name of another kind is another name */
    REPLY_IS(rp_name_op(reg, PICOS__V1__REG_OP__LOCATE,
                        PICOS__V1__NAME_KIND__SERVICE, "a", PC_REF_NIL, 0,
                        PT_LONG),
             PICOS__V1__REG_STATUS__NOT_FOUND);
    /* not found (don't wait) vs timed out (waited) */
    REPLY_IS(rp_name_op(reg, PICOS__V1__REG_OP__LOCATE,
                        PICOS__V1__NAME_KIND__TASK, "nope", PC_REF_NIL, 0,
                        PT_LONG),
             PICOS__V1__REG_STATUS__NOT_FOUND);
    REPLY_IS(rp_name_op(reg, PICOS__V1__REG_OP__LOCATE,
                        PICOS__V1__NAME_KIND__TASK, "never", PC_REF_NIL, 300,
                        PT_LONG),
             PICOS__V1__REG_STATUS__TIMED_OUT);
    /* a parked locate answered when another task registers the name */
    helper = pt_spawn(late_register, &reg, 1, 0);
    r = rp_name_op(reg, PICOS__V1__REG_OP__LOCATE, PICOS__V1__NAME_KIND__TASK,
                   "late", PC_REF_NIL, 20000, PT_LONG);
    TCHECK(r && r->status == PICOS__V1__REG_STATUS__OK && r->n_names == 1);
    if (r && r->n_names == 1 && r->names[0]->ref)
        TCHECK_EQ(r->names[0]->ref->id, helper.id);
    if (r)
        picos__v1__reg_reply__free_unpacked(r, NULL);
    pt_send(helper, "done");
    /* another node's names: duplicate, unregister by a non-owner */
    TCHECK(peer_start(&P, R1.c.ep, "p", "3"));
    r = rp_name_op(reg, PICOS__V1__REG_OP__REGISTER, PICOS__V1__NAME_KIND__TASK,
                   "p0", pc_self(), 0, PT_LONG);
    TCHECK(r && r->status == PICOS__V1__REG_STATUS__TAKEN && r->n_names == 1);
    if (r && r->n_names == 1) {
        TCHECK(r->names[0]->ref && r->names[0]->ref->node == P.node);
        TCHECK(strstr(r->text, "'p0'") && strstr(r->text, "reg_peer"));
        printf("\n    TAKEN: %s\n", r->text);
    }
    if (r)
        picos__v1__reg_reply__free_unpacked(r, NULL);
    REPLY_IS(rp_name_op(reg, PICOS__V1__REG_OP__UNREGISTER,
                        PICOS__V1__NAME_KIND__TASK, "p1", PC_REF_NIL, 0,
                        PT_LONG),
             PICOS__V1__REG_STATUS__NOT_OWNER);
    REPLY_IS(rp_name_op(reg, PICOS__V1__REG_OP__UNREGISTER,
                        PICOS__V1__NAME_KIND__TASK, "zzz", PC_REF_NIL, 0,
                        PT_LONG),
             PICOS__V1__REG_STATUS__NOT_FOUND);
    REPLY_IS(rp_name_op(reg, PICOS__V1__REG_OP__UNREGISTER,
                        PICOS__V1__NAME_KIND__TASK, "a", PC_REF_NIL, 0,
                        PT_LONG),
             PICOS__V1__REG_STATUS__OK);
    REPLY_IS(rp_name_op(reg, PICOS__V1__REG_OP__LOCATE,
                        PICOS__V1__NAME_KIND__TASK, "a", PC_REF_NIL, 0,
                        PT_LONG),
             PICOS__V1__REG_STATUS__NOT_FOUND);
    /* a name too long, and a message that is no request */
    {
        char big[300];
        memset(big, 'x', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        REPLY_IS(rp_name_op(reg, PICOS__V1__REG_OP__LOCATE,
                            PICOS__V1__NAME_KIND__TASK, big, PC_REF_NIL, 0,
                            PT_LONG),
                 PICOS__V1__REG_STATUS__BAD_REQUEST);
    }
    TCHECK_RC(pc_send_data(reg, "garbage", "x", 1), PC_OK);
    REPLY_IS(rp_wait(NULL, PT_LONG), PICOS__V1__REG_STATUS__BAD_REQUEST);
    nt_stop(&P);
    return NULL;
}

PT_TEST(names)
static void
names(void)
{
    char dir[128];

    (void)nt_stderr_has; /* netutil.h's, unused here */
    driver_start(NULL);
    data_dir(dir, sizeof dir, "names");
    CU_ASSERT_FATAL(rg_start(&R1, dir, NULL));
    pt_spawn(names_task, NULL, 0, 0);
    PT_RUN();
    CU_ASSERT_EQUAL(rg_term(&R1), 0);
}

/* ---- a member killed, a member stopped -------------------------------------------------- */

static int down_sig;

static pc_msg *
down_task(void *arg)
{
    pc_ref reg;
    size_t gone = 0;
    double t0;
    (void)arg;

    reg = find(R1.c.ep);
    join_self(reg, "", 0);
    TCHECK(peer_start(&P, R1.c.ep, "k", "5"));
    t0 = pc_now();
    kill(-P.pid, down_sig);
    TCHECK(wait_down(P.node, &gone, PT_LONG));
    TCHECK_EQ(gone, 5);
    printf("\n    %s: NODE_DOWN after %.2f s (link timeout %s s)\n",
           down_sig == SIGKILL ? "kill -9" : "SIGSTOP", pt_since(t0),
           NET_TIMEOUT);
    REPLY_IS(rp_name_op(reg, PICOS__V1__REG_OP__LOCATE,
                        PICOS__V1__NAME_KIND__TASK, "k0", PC_REF_NIL, 0,
                        PT_LONG),
             PICOS__V1__REG_STATUS__NOT_FOUND);
    nt_stop(&P);
    return NULL;
}

static void
node_down(int sig)
{
    char dir[128];

    down_sig = sig;
    driver_start(NULL);
    data_dir(dir, sizeof dir, "down");
    CU_ASSERT_FATAL(rg_start(&R1, dir, NULL));
    pt_spawn(down_task, NULL, 0, 0);
    PT_RUN();
    CU_ASSERT_EQUAL(rg_term(&R1), 0);
}

PT_TEST(node_kill9)
static void
node_kill9(void)
{
    node_down(SIGKILL);
}

PT_TEST(node_sigstop)
static void
node_sigstop(void)
{
    node_down(SIGSTOP);
}

/* ---- registry kill -9 with 10,000 names, restart ------------------------------------------ */

/* 10,000 names; under TSan a fiftieth (pt_scaled): there every process runs
 * ten times slower on two shared cores and 10,000 fsynced registrations
 * took ~50 s, so the steps after them outran the watchdog; 1,000 still
 * had the restarted registry's replay and re-joins outrun the link
 * timeout now and then: 200 under TSan. */
#define MANY ((int)pt_scaled(10000, 50))
static char restart_dir[128];

static pc_msg *
restart_task(void *arg)
{
    Picos__V1__RegReply *r;
    pc_ref reg;
    pc_msg *m = NULL;
    size_t ok = 0, got = 0;
    double t0;
    char *seen;
    (void)arg;

    reg = find(R1.c.ep);
    join_self(reg, "", 0);
    TCHECK(peer_start(&P, R1.c.ep, "gone-", "5"));
    /* 10,000 registrations in flight at once: group commit */
    t0 = pc_now();
    for (int i = 0; i < MANY; i++) {
        Picos__V1__RegRequest q = PICOS__V1__REG_REQUEST__INIT;
        Picos__V1__NameEntry *ep;
        rp_entry x;
        char name[32];
        snprintf(name, sizeof name, "d-%d", i);
        rp_entry_set(&x, PICOS__V1__NAME_KIND__TASK, name, pc_self());
        ep = &x.e;
        q.op = PICOS__V1__REG_OP__REGISTER;
        q.n_names = 1;
        q.names = &ep;
        TCHECK(rp_send(reg, &q) != 0);
    }
    for (int i = 0; i < MANY; i++) {
        if (!(r = rp_wait(NULL, PT_LONG)))
            break;
        got++;
        ok += r->status == PICOS__V1__REG_STATUS__OK;
        picos__v1__reg_reply__free_unpacked(r, NULL);
    }
    TCHECK_EQ(got, MANY);
    TCHECK_EQ(ok, MANY);
    printf("\n    %d registrations acknowledged (fsynced) in %.2f s\n", MANY,
           pt_since(t0));
    /* the registry dies, then the other member while it is down */
    TCHECK_RC(pc_monitor(pc_self(), reg), PC_OK);
    kill(-R1.c.pid, SIGKILL);
    TCHECK_RC(pc_recv_type(PC_MSG_DOWN, &m, PT_LONG), PC_OK);
    pc_msg_free(&m);
    nt_stop(&R1.c);
    nt_stop(&P);
    /* back on the same endpoint and data */
    t0 = pc_now();
    TCHECK(rg_start(&R2, restart_dir, R1.c.ep));
    TCHECK_EQ(R2.nodes, 2);
    TCHECK_EQ(R2.names, MANY + 5);
    reg = find(R2.c.ep);
    join_self(reg, "d-", MANY); /* what our agent would send */
    /* recovering until the killed member is dropped (probe or grace) */
    for (;;) {
        bool recovering = true;
        r = rp_simple(reg, PICOS__V1__REG_OP__STATUS, PT_LONG);
        TCHECK(r && r->registry);
        if (r && r->registry)
            recovering = r->registry->recovering;
        if (r)
            picos__v1__reg_reply__free_unpacked(r, NULL);
        if (!recovering || !r || pt_since(t0) > 60)
            break;
        pc_sleep(0.05);
    }
    printf("    restart: reconciled after %.2f s\n", pt_since(t0));
    r = rp_simple(reg, PICOS__V1__REG_OP__LIST_NAMES, PT_LONG);
    TCHECK(r != NULL);
    seen = calloc(MANY, 1);
    if (r && seen) {
        size_t stale = 0, mine = 0;
        TCHECK_STR(r->text, "");
        for (size_t i = 0; i < r->n_names; i++) {
            int k;
            if (!strncmp(r->names[i]->name, "gone-", 5))
                stale++;
            else if (sscanf(r->names[i]->name, "d-%d", &k) == 1 && k >= 0 &&
                     k < MANY && !seen[k]) {
                seen[k] = 1;
                mine++;
            }
        }
        TCHECK_EQ(mine, MANY);
        TCHECK_EQ(stale, 0);
        TCHECK_EQ(r->n_names, MANY);
    }
    free(seen);
    if (r)
        picos__v1__reg_reply__free_unpacked(r, NULL);
    r = rp_simple(reg, PICOS__V1__REG_OP__LIST_NODES, PT_LONG);
    TCHECK(r && r->n_nodes == 1);
    if (r)
        picos__v1__reg_reply__free_unpacked(r, NULL);
    /* here: R2 was forked by this worker thread, and PR_SET_PDEATHSIG kills
     * it when the thread ends */
    TCHECK_EQ(rg_term(&R2), 0);
    return NULL;
}

PT_TEST(restart_10k)
static void
restart_10k(void)
{
    driver_start(NULL);
    data_dir(restart_dir, sizeof restart_dir, "restart");
    CU_ASSERT_FATAL(rg_start(&R1, restart_dir, NULL));
    pt_spawn(restart_task, NULL, 0, 0);
    PT_RUN();
    nt_stop(&R1.c);
}

/* ---- compaction under churn ------------------------------------------------------------ */

static char compact_dir[160];

/* Under TSan every fsynced record costs ~25x: a third of the churn against
 * a quarter of the threshold is the same test, still ~12x the threshold. */
#if defined(__SANITIZE_THREAD__)
#define CHURN_ROUNDS 10
#define COMPACT_BYTES 16384
#define COMPACT_ARG "16384"
#else
#define CHURN_ROUNDS 30
#define COMPACT_BYTES 65536
#define COMPACT_ARG "65536"
#endif
#define CHURN_NAMES 200
#define KEEP_NAMES 50

/* REGISTER (or UNREGISTER) names prefix0.. prefix(n-1), all in flight at
 * once, then every answer; how many were OK. */
static size_t
name_batch(pc_ref reg, int op, const char *prefix, int n)
{
    size_t ok = 0;

    for (int i = 0; i < n; i++) {
        Picos__V1__RegRequest q = PICOS__V1__REG_REQUEST__INIT;
        Picos__V1__NameEntry *ep;
        rp_entry x;
        char name[32];
        snprintf(name, sizeof name, "%s%d", prefix, i);
        rp_entry_set(&x, PICOS__V1__NAME_KIND__TASK, name, pc_self());
        ep = &x.e;
        q.op = op;
        q.n_names = 1;
        q.names = &ep;
        TCHECK(rp_send(reg, &q) != 0);
    }
    for (int i = 0; i < n; i++) {
        Picos__V1__RegReply *r = rp_wait(NULL, PT_LONG);
        if (!r)
            break;
        ok += r->status == PICOS__V1__REG_STATUS__OK;
        picos__v1__reg_reply__free_unpacked(r, NULL);
    }
    return ok;
}

static pc_msg *
compact_task(void *arg)
{
    char log[200];
    struct stat st;
    pc_ref reg;
    (void)arg;

    reg = find(R1.c.ep);
    join_self(reg, "", 0);
    TCHECK_EQ(name_batch(reg, PICOS__V1__REG_OP__REGISTER, "keep-", KEEP_NAMES),
              KEEP_NAMES);
    /* 30 rounds of 200 names registered and dropped: ~12,000 records,
     * about ten times the compaction threshold (TSan: 10 rounds, a quarter
     * of the threshold) */
    for (int round = 0; round < CHURN_ROUNDS; round++) {
        TCHECK_EQ(
            name_batch(reg, PICOS__V1__REG_OP__REGISTER, "churn-", CHURN_NAMES),
            CHURN_NAMES);
        TCHECK_EQ(name_batch(reg, PICOS__V1__REG_OP__UNREGISTER, "churn-",
                             CHURN_NAMES),
                  CHURN_NAMES);
    }
    snprintf(log, sizeof log, "%s/registry.log", compact_dir);
    TCHECK(stat(log, &st) == 0);
    printf("\n    log after the churn: %lld bytes\n", (long long)st.st_size);
    /* compacted: far below the ~600 KB (TSan: ~200 KB) the records take
     * uncompacted */
    TCHECK(st.st_size < 3 * COMPACT_BYTES);
    /* what the compacted log holds comes back after a kill -9 */
    kill(-R1.c.pid, SIGKILL);
    nt_stop(&R1.c);
    TCHECK(rg_start(&R2, compact_dir, NULL));
    TCHECK_EQ(R2.names, KEEP_NAMES);
    TCHECK_EQ(R2.nodes, 1);
    TCHECK_EQ(rg_term(&R2), 0);
    return NULL;
}

/* The log is compacted as it grows past --compact-bytes (and twice the live
 * state), and a compacted log replays to the same state. */
PT_TEST(compaction)
static void
compaction(void)
{
    driver_start(NULL);
    data_dir(compact_dir, sizeof compact_dir, "compact");
    rg_extra[0] = "--compact-bytes";
    rg_extra[1] = COMPACT_ARG;
    CU_ASSERT_FATAL(rg_start(&R1, compact_dir, NULL));
    rg_extra[0] = NULL;
    pt_spawn(compact_task, NULL, 0, 0);
    PT_RUN();
    nt_stop(&R1.c);
}

/* ---- a JOIN in chunks; over the names per node --------------------------------- */

/* Names (kind task) the registry holds with `prefix`, counted. */
static size_t
count_names(pc_ref reg, const char *prefix)
{
    Picos__V1__RegReply *r =
        rp_simple(reg, PICOS__V1__REG_OP__LIST_NAMES, PT_LONG);
    size_t n = 0;

    TCHECK(r != NULL);
    for (size_t i = 0; r && i < r->n_names; i++)
        n += !strncmp(r->names[i]->name, prefix, strlen(prefix));
    if (r)
        picos__v1__reg_reply__free_unpacked(r, NULL);
    return n;
}

#define JOIN_PART(first, n, more, id)                                          \
    rp_join_part(reg, "driver", driver_ep, "c-", first, n, more, id, PT_LONG)

static pc_msg *
chunks_task(void *arg)
{
    Picos__V1__RegReply *r;
    pc_ref reg;
    uint64_t id = 0;
    (void)arg;

    reg = find(R1.c.ep);
    /* over --max-node-names 100 in its second chunk: the whole JOIN is
     * refused, its last chunk too, and nothing of it applied */
    REPLY_IS(JOIN_PART(0, 60, true, &id), PICOS__V1__REG_STATUS__OK);
    id++;
    r = JOIN_PART(60, 60, true, &id);
    TCHECK(r && r->status == PICOS__V1__REG_STATUS__BAD_REQUEST);
    if (r) {
        TCHECK(strstr(r->text, "more than 100 names") != NULL);
        printf("\n    refused: %s\n", r->text);
        picos__v1__reg_reply__free_unpacked(r, NULL);
    }
    id++;
    REPLY_IS(JOIN_PART(120, 10, false, &id),
             PICOS__V1__REG_STATUS__BAD_REQUEST);
    REPLY_IS(rp_simple(reg, PICOS__V1__REG_OP__LIST_NODES, PT_LONG),
             PICOS__V1__REG_STATUS__OK);
    TCHECK_EQ(count_names(reg, "c-"), 0);
    REPLY_IS(rp_name_op(reg, PICOS__V1__REG_OP__REGISTER,
                        PICOS__V1__NAME_KIND__TASK, "x", pc_self(), 0, PT_LONG),
             PICOS__V1__REG_STATUS__NOT_JOINED);
    /* a half-received JOIN whose next chunk never comes is dropped by
     * the next JOIN (its id does not follow) */
    id = 0;
    REPLY_IS(JOIN_PART(500, 5, true, &id), PICOS__V1__REG_STATUS__OK);
    id += 10;
    /* 3 chunks, 90 names: the union is what the node holds */
    REPLY_IS(JOIN_PART(0, 40, true, &id), PICOS__V1__REG_STATUS__OK);
    TCHECK_EQ(count_names(reg, "c-"), 0); /* nothing yet */
    id++;
    REPLY_IS(JOIN_PART(40, 40, true, &id), PICOS__V1__REG_STATUS__OK);
    id++;
    REPLY_IS(JOIN_PART(80, 10, false, &id), PICOS__V1__REG_STATUS__OK);
    TCHECK_EQ(count_names(reg, "c-"), 90);
    REPLY_IS(rp_name_op(reg, PICOS__V1__REG_OP__LOCATE,
                        PICOS__V1__NAME_KIND__TASK, "c-500", PC_REF_NIL, 0,
                        PT_LONG),
             PICOS__V1__REG_STATUS__NOT_FOUND);
    REPLY_IS(rp_name_op(reg, PICOS__V1__REG_OP__LOCATE,
                        PICOS__V1__NAME_KIND__TASK, "c-45", PC_REF_NIL, 0,
                        PT_LONG),
             PICOS__V1__REG_STATUS__OK);
    /* joined again in 2 chunks without c-0..c-49: those go */
    id = 0;
    REPLY_IS(JOIN_PART(50, 20, true, &id), PICOS__V1__REG_STATUS__OK);
    id++;
    REPLY_IS(JOIN_PART(70, 20, false, &id), PICOS__V1__REG_STATUS__OK);
    TCHECK_EQ(count_names(reg, "c-"), 40);
    REPLY_IS(rp_name_op(reg, PICOS__V1__REG_OP__LOCATE,
                        PICOS__V1__NAME_KIND__TASK, "c-10", PC_REF_NIL, 0,
                        PT_LONG),
             PICOS__V1__REG_STATUS__NOT_FOUND);
    return NULL;
}

PT_TEST(join_chunks)
static void
join_chunks(void)
{
    char dir[128];

    driver_start(NULL);
    data_dir(dir, sizeof dir, "chunks");
    rg_extra[0] = "--max-node-names";
    rg_extra[1] = "100";
    CU_ASSERT_FATAL(rg_start(&R1, dir, NULL));
    rg_extra[0] = NULL;
    pt_spawn(chunks_task, NULL, 0, 0);
    PT_RUN();
    CU_ASSERT_EQUAL(rg_term(&R1), 0);
}

/* ---- torn and corrupt logs --------------------------------------------------------------- */

/* A log of one member with 10 names, written by a registry stopped with
 * SIGTERM. */
static void
make_log(char *dir, size_t size, const char *tag, char *log, size_t lsize)
{
    secrets();
    data_dir(dir, size, tag);
    CU_ASSERT_FATAL(rg_start(&R1, dir, NULL));
    CU_ASSERT_FATAL(peer_start(&P, R1.c.ep, "t", "10"));
    CU_ASSERT_EQUAL(rg_term(&R1), 0);
    nt_stop(&P);
    snprintf(log, lsize, "%s/registry.log", dir);
}

/* Offsets of the records of a log (16-byte header, then u32 len, u32 crc,
 * payload). */
static size_t
records(const char *log, long *off, size_t max)
{
    FILE *f = fopen(log, "rb");
    size_t n = 0;
    long pos = 16;
    unsigned char h[8];

    if (!f)
        return 0;
    while (n < max && fseek(f, pos, SEEK_SET) == 0 && fread(h, 1, 8, f) == 8) {
        uint32_t len = h[0] | h[1] << 8 | h[2] << 16 | (uint32_t)h[3] << 24;
        off[n++] = pos;
        pos += 8 + (long)len;
    }
    fclose(f);
    return n;
}

PT_TEST(torn_log)
static void
torn_log(void)
{
    char dir[128], log[160];
    struct stat st;

    make_log(dir, sizeof dir, "torn", log, sizeof log);
    CU_ASSERT_FATAL(stat(log, &st) == 0);
    CU_ASSERT_FATAL(truncate(log, st.st_size - 3) == 0); /* mid-record */
    CU_ASSERT_FATAL(rg_start(&R1, dir, NULL));
    CU_ASSERT_EQUAL(R1.nodes, 1);
    CU_ASSERT_EQUAL(R1.names, 9); /* the torn last REC_NAME is dropped */
    CU_ASSERT_EQUAL(rg_term(&R1), 0);
}

PT_TEST(corrupt_log)
static void
corrupt_log(void)
{
    char dir[128], log[160], err[2048];
    long off[64];
    size_t n;
    int fd;
    unsigned char b;
    const char *a[32];
    size_t na = 0;

    make_log(dir, sizeof dir, "corrupt", log, sizeof log);
    n = records(log, off, 64);
    CU_ASSERT_FATAL(n >= 5);
    fd = open(log, O_RDWR);
    CU_ASSERT_FATAL(fd >= 0);
    /* a byte of the payload of a middle record */
    CU_ASSERT_FATAL(pread(fd, &b, 1, off[n / 2] + 10) == 1);
    b ^= 0x5a;
    CU_ASSERT_FATAL(pwrite(fd, &b, 1, off[n / 2] + 10) == 1);
    close(fd);
    rg_args(a, &na, dir, "tcp://127.0.0.1:0");
    a[na] = NULL;
    CU_ASSERT_EQUAL(rg_fail(a, err, sizeof err), 1);
    CU_ASSERT_EQUAL(lines(err), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "registry.log"));
    printf("\n    %s", err);
}

/* ---- bad config, busy port, wrong secret ------------------------------------------------------ */

PT_TEST(bad_config)
static void
bad_config(void)
{
    char ini[128], err[2048], want[256];
    const char *a[] = {"--config", ini, NULL};

    pt_tmppath(ini, sizeof ini, "bad.ini");
    write_file(ini, "[registry]\nlisten = tcp://127.0.0.1:0\nbogus = 1\n");
    CU_ASSERT_EQUAL(rg_fail(a, err, sizeof err), 2);
    snprintf(want, sizeof want, "picos-registry: %s:3: unknown key 'bogus'\n",
             ini);
    CU_ASSERT_STRING_EQUAL(err, want);
    write_file(ini, "[registry]\ntimeout = soon\n");
    CU_ASSERT_EQUAL(rg_fail(a, err, sizeof err), 2);
    CU_ASSERT_EQUAL(lines(err), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, ":2: bad value 'soon'"));
    unlink(ini);
    CU_ASSERT_EQUAL(rg_fail(a, err, sizeof err), 2); /* missing file */
    CU_ASSERT_EQUAL(lines(err), 1);
}

PT_TEST(busy_port)
static void
busy_port(void)
{
    char dir[128], dir2[128], err[2048];
    const char *a[32];
    size_t n = 0;

    secrets();
    data_dir(dir, sizeof dir, "busy1");
    data_dir(dir2, sizeof dir2, "busy2");
    CU_ASSERT_FATAL(rg_start(&R1, dir, NULL));
    rg_args(a, &n, dir2, R1.c.ep);
    a[n] = NULL;
    CU_ASSERT_EQUAL(rg_fail(a, err, sizeof err), 1);
    CU_ASSERT_EQUAL(lines(err), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "in use"));
    printf("\n    %s", err);
    CU_ASSERT_EQUAL(rg_term(&R1), 0);
}

PT_TEST(wrong_secret)
static void
wrong_secret(void)
{
    char dir[128];

    secrets();
    data_dir(dir, sizeof dir, "secret");
    CU_ASSERT_FATAL(rg_start(&R1, dir, NULL));
    driver_start(other_path);
    CU_ASSERT_EQUAL(pc_node_connect(R1.c.ep, 5.0, NULL), PC_EAUTH);
    PT_RUN();
    CU_ASSERT_EQUAL(rg_term(&R1), 0);
}

PT_MAIN("regserver", PT_ENTRY(names), PT_ENTRY(compaction),
        PT_ENTRY(node_kill9), PT_ENTRY(node_sigstop), PT_ENTRY(restart_10k),
        PT_ENTRY(join_chunks), PT_ENTRY(torn_log), PT_ENTRY(corrupt_log),
        PT_ENTRY(bad_config), PT_ENTRY(busy_port), PT_ENTRY(wrong_secret))
