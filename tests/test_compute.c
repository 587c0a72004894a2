/* tests/test_compute.c — distributed computations end to end, with real
 * processes: a picos-registry, two `picos-node --compute` (cA, cB: 2 CPUs
 * each, their own data dirs, workers limited to 256 MiB), this program as
 * the client (pc_cluster_join, then the compute API from the main thread,
 * a foreign thread), and for two tests a second client process
 * (tests/compute_client_proc.c). The computation is tests/compute_lib.c
 * (compute_test.so), whose job names and results are the contract.
 *
 * Each test starts its own cluster and ends it (processes in their own
 * process groups, killed on every way out: proctest.h). A collector task
 * of this program gets the status events and the jobs' messages and keeps
 * them in order; the checks read it. Waits are bounded by PT_LONG and poll
 * conditions (an event seen, a name registered), never a sleep standing
 * in for one; nothing asserts wall time — "the lost jobs were retried
 * within the heartbeat timeout" is checked as: every retry event comes
 * after the kill, and the jobs all end while the test waits for them.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>

#include "picos/compute.h"
#include "picos/net.h"
#include "picos/registry.h"

#include "compute.pb-c.h"
#include "netutil.h"
#include "status.pb-c.h"
#include "test.pb-c.h"
#include "testutil.h"

/* ---- processes --------------------------------------------------------------- */

static kid reg;
static char reg_dir[128], reg_ep[256];

typedef struct cnode {
    kid k;
    char name[16], dir[128], errfile[192], line[2048];
} cnode;

static cnode N[2];

static void
registry_start(void)
{
    CU_ASSERT_FATAL(pt_mkdtemp(reg_dir, sizeof reg_dir, "reg"));
    if (!nt_registry_start(&reg, REGISTRY, reg_dir, reg_ep))
        CU_FAIL_FATAL("picos-registry did not start");
}

/* picos-node NAME --compute --cpus 2 as n, with the extra arguments
 * `extra` (NULL-terminated; NULL: none), its statuses every 0.2 s and uids
 * of its own (as tests/computetest.h: apart from the compute nodes of
 * other tests running beside this one). */
static void
node_start(cnode *n, const char *name, const char *const *extra)
{
    kid_opts o = {.errpath = n->errfile, .clean_env = true};
    const char *argv[48];
    char err[4096], uid[16];
    size_t k = 0;

    memset(n, 0, sizeof *n);
    n->k.out = n->k.err = -1;
    snprintf(n->name, sizeof n->name, "%s", name);
    CU_ASSERT_FATAL(pt_mkdtemp(n->dir, sizeof n->dir, name));
    snprintf(n->errfile, sizeof n->errfile, "%s/stderr", n->dir);
    o.errpath = n->errfile;
    snprintf(uid, sizeof uid, "%u",
             6000000u + (unsigned)(getpid() % 100000) * 32u +
                 16u * (unsigned)(n - N));
    const char *const base[] = {"--registry",
                                reg_ep,
                                "--secret-file",
                                secret_path,
                                "--name",
                                name,
                                "--heartbeat",
                                NET_HB,
                                "--timeout",
                                NET_TIMEOUT,
                                "--grace",
                                "2",
                                "--status-interval",
                                "0.2",
                                "--compute",
                                "--cpus",
                                "2",
                                "--data-dir",
                                n->dir,
                                "--compute-memory",
                                "256M",
                                "--compute-worker",
                                WORKER_BIN,
                                "--compute-uid-base",
                                uid,
                                NULL};
    for (size_t i = 0; base[i]; i++)
        argv[k++] = base[i];
    for (size_t i = 0; extra && extra[i] && k + 1 < sizeof argv / sizeof *argv;
         i++)
        argv[k++] = extra[i];
    argv[k] = NULL;
    CU_ASSERT_FATAL(kid_run(&n->k, NODE_BIN, argv, &o));
    if (!read_line(n->k.out, n->line, sizeof n->line, PT_LONG) ||
        !strstr(n->line, " listening on ")) {
        kid_wait(&n->k, 1.0);
        fprintf(stderr, "picos-node %s did not start: '%s' %s\n", name, n->line,
                kid_errtext(&n->k, err, sizeof err));
        kid_free(&n->k);
        CU_FAIL_FATAL("picos-node did not start");
    }
}

/* Whether node n's process is still there. */
static bool
node_alive(cnode *n)
{
    siginfo_t si;

    memset(&si, 0, sizeof si);
    return n->k.pid > 0 &&
           !waitid(P_PID, (id_t)n->k.pid, &si, WEXITED | WNOHANG | WNOWAIT) &&
           si.si_pid == 0;
}

/* ---- the collector ------------------------------------------------------------- */

#define EV_MAX 20000
#define MSG_MAX 64

static pthread_mutex_t col_mu = PTHREAD_MUTEX_INITIALIZER;
static pc_compute_event col_ev[EV_MAX];
static int col_nev;
static struct {
    uint64_t id;
    char data[64];
    size_t len;
} col_msg[MSG_MAX];
static int col_nmsg;
static pc_ref collector;

static pc_msg *
collect(void *arg)
{
    (void)arg;
    for (;;) {
        pc_msg *m = NULL;
        pc_compute_event e;
        uint64_t id;
        const void *d;
        size_t len;
        if (pc_recv(&m, -1) != PC_OK)
            continue;
        if (pc_msg_is(m, "test.stop")) {
            pc_msg_free(&m);
            break;
        }
        pthread_mutex_lock(&col_mu);
        if (pc_compute_event_parse(m, &e) == PC_OK) {
            if (col_nev < EV_MAX)
                col_ev[col_nev++] = e;
        } else if (pc_compute_job_msg_parse(m, &id, &d, &len) == PC_OK) {
            if (col_nmsg < MSG_MAX) {
                col_msg[col_nmsg].id = id;
                col_msg[col_nmsg].len = len < 63 ? len : 63;
                memcpy(col_msg[col_nmsg].data, d, col_msg[col_nmsg].len);
                col_msg[col_nmsg].data[col_msg[col_nmsg].len] = '\0';
                col_nmsg++;
            }
        } else {
            pt_fail_at(__FILE__, __LINE__, "collector: unexpected %s",
                       pc_msg_type(m));
        }
        pthread_mutex_unlock(&col_mu);
        pc_msg_free(&m);
    }
    return NULL;
}

/* Events of kind about job (0: any) from index `from` on. */
static int
count_ev(pc_compute_event_kind kind, uint64_t job, int from)
{
    int n = 0;

    pthread_mutex_lock(&col_mu);
    for (int i = from; i < col_nev; i++)
        n += col_ev[i].kind == kind && (!job || col_ev[i].job == job);
    pthread_mutex_unlock(&col_mu);
    return n;
}

static int
nev_now(void)
{
    int n;
    pthread_mutex_lock(&col_mu);
    n = col_nev;
    pthread_mutex_unlock(&col_mu);
    return n;
}

/* Wait (bounded) until `count` events of kind about job have come. */
static bool
wait_ev(pc_compute_event_kind kind, uint64_t job, int count)
{
    double t0 = pc_now();

    while (count_ev(kind, job, 0) < count) {
        if (pt_since(t0) > PT_LONG) {
            fprintf(stderr, "no %d '%s' events for job %llu\n", count,
                    pc_compute_event_str(kind), (unsigned long long)job);
            return false;
        }
        usleep(5000);
    }
    return true;
}

static bool
wait_msgs(int count)
{
    double t0 = pc_now();

    for (;;) {
        pthread_mutex_lock(&col_mu);
        int n = col_nmsg;
        pthread_mutex_unlock(&col_mu);
        if (n >= count)
            return true;
        if (pt_since(t0) > PT_LONG)
            return false;
        usleep(5000);
    }
}

/* ---- a cluster per test ---------------------------------------------------------- */

/* Whether both compute names are registered (bounded wait). */
static bool
compute_names_up(int want)
{
    double t0 = pc_now();

    for (;;) {
        pc_name_info *ni = NULL;
        size_t n = 0;
        int found = 0;
        if (pc_cluster_names(PC_NAME_TASK, &ni, &n, 2.0) == PC_OK) {
            for (size_t i = 0; i < n; i++)
                found += !strncmp(ni[i].name, PC_COMPUTE_NAME_PREFIX,
                                  strlen(PC_COMPUTE_NAME_PREFIX));
            free(ni);
        }
        if (found >= want)
            return true;
        if (pt_since(t0) > PT_LONG)
            return false;
        usleep(20000);
    }
}

/* The registry, cA and cB (with extra arguments xa, xb: may be NULL),
 * this program joined, the collector. */
static void
cluster_up_x(const char *const *xa, const char *const *xb)
{
    pc_spawn_opts so = {.flags = PC_TASK_DAEMON};

    pthread_mutex_lock(&col_mu);
    col_nev = col_nmsg = 0;
    pthread_mutex_unlock(&col_mu);
    registry_start();
    node_start(&N[0], "cA", xa);
    node_start(&N[1], "cB", xb);
    PT_START(2);
    CU_ASSERT_EQUAL_FATAL(nt_cluster_join(reg_ep), PC_OK);
    CU_ASSERT_EQUAL_FATAL(pc_spawn(collect, NULL, &so, &collector), PC_OK);
    CU_ASSERT_FATAL(compute_names_up(2));
}

static void
cluster_up(void)
{
    cluster_up_x(NULL, NULL);
}

static void
cluster_down(void)
{
    char err[8192];

    (void)pt_send(collector, "test.stop");
    pc_node_stop();
    PT_RUN();
    for (int i = 0; i < 2; i++) {
        if (N[i].k.pid > 0) {
            kill(N[i].k.pid, SIGTERM);
            if (!kid_wait(&N[i].k, PT_LONG) || exit_code(&N[i].k) != 0) {
                fprintf(stderr, "picos-node %s: exit %d\n%s\n", N[i].name,
                        N[i].k.pid ? -1 : exit_code(&N[i].k),
                        kid_errtext(&N[i].k, err, sizeof err));
                CU_FAIL("picos-node did not stop cleanly");
            }
        }
        kid_free(&N[i].k);
    }
    kid_free(&reg);
}

static const char *const both[] = {"cA", "cB", NULL};

/* Open COMPUTE_LIB on both nodes with status and messages to the
 * collector; extra options from *x (may be NULL). */
static pc_compute *
open_both(const pc_compute_opts *x)
{
    pc_compute_opts o = x ? *x : (pc_compute_opts){0};
    pc_compute *c = NULL;
    pc_err rc;

    o.library = COMPUTE_LIB;
    if (!o.nodes)
        o.nodes = both;
    o.status = collector;
    o.messages = collector;
    rc = pc_compute_open(&o, PT_LONG, &c);
    if (rc != PC_OK)
        fprintf(stderr, "pc_compute_open: %s: %s\n", pc_err_name(rc),
                pc_compute_error(NULL));
    CU_ASSERT_EQUAL_FATAL(rc, PC_OK);
    return c;
}

/* One job of fn with the text input; its result (the caller's). */
static pc_job_result *
run1(pc_compute *c, const pc_job_spec *j)
{
    pc_job_result *r = NULL;
    uint64_t id = 0;

    CU_ASSERT_EQUAL_FATAL(pc_compute_submit(c, j, 1, &id), PC_OK);
    CU_ASSERT_EQUAL_FATAL(pc_compute_wait(c, id, PT_LONG, &r), PC_OK);
    CU_ASSERT_EQUAL(r->id, id);
    return r;
}

static pc_job_result *
run_text(pc_compute *c, const char *fn, const char *in)
{
    pc_job_spec j = {.fn = fn, .input = in, .len = in ? strlen(in) : 0};
    return run1(c, &j);
}

static bool
result_is(const pc_job_result *r, const char *text)
{
    bool ok = r->rc == PC_OK && r->len == strlen(text) &&
              !memcmp(r->data, text, r->len);
    if (!ok)
        fprintf(stderr, "job %llu: %s why %s '%s', data '%.*s', want '%s'\n",
                (unsigned long long)r->id, pc_err_name(r->rc),
                pc_job_why_str(r->why), r->error, (int)r->len,
                r->data ? (const char *)r->data : "", text);
    return ok;
}

/* ---- tests -------------------------------------------------------------------------- */

PT_TEST(squares_1000_two_nodes)
static void
squares_1000_two_nodes(void)
{
    enum { NJ = 1000 };
    static pc_job_spec jobs[NJ];
    static long in[NJ];
    static uint64_t ids[NJ];
    static int seen[NJ + 1];
    pc_compute_stats st;
    int on[2] = {0, 0};
    pc_job_result *r = NULL;

    cluster_up();
    pc_compute *c = open_both(NULL);
    CU_ASSERT_EQUAL(pc_compute_stats_get(c, &st), PC_OK);
    CU_ASSERT_EQUAL(st.nodes, 2);
    CU_ASSERT(wait_ev(PC_CE_NODE_INITIALIZED, 0, 2));
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < NJ; i++) {
        in[i] = i - 500;
        jobs[i] =
            (pc_job_spec){.fn = "square", .input = &in[i], .len = sizeof in[i]};
    }
    CU_ASSERT_EQUAL_FATAL(pc_compute_submit(c, jobs, NJ, ids), PC_OK);
    for (int i = 0; i < NJ; i++) {
        long v;
        CU_ASSERT_EQUAL_FATAL(pc_compute_wait_any(c, PT_LONG, &r), PC_OK);
        CU_ASSERT_FATAL(r->id >= ids[0] && r->id <= ids[NJ - 1]);
        int k = (int)(r->id - ids[0]);
        seen[k]++;
        CU_ASSERT_EQUAL(r->rc, PC_OK);
        CU_ASSERT_EQUAL(r->why, PC_JOB_OK);
        CU_ASSERT_EQUAL(r->len, sizeof v);
        if (r->len == sizeof v) {
            memcpy(&v, r->data, sizeof v);
            CU_ASSERT_EQUAL(v, in[k] * in[k]);
        }
        CU_ASSERT_EQUAL(r->attempts, 1);
        CU_ASSERT(r->worker >= 0 && r->worker < 2);
        CU_ASSERT(r->ended >= r->started && r->started > 0);
        on[0] += !strcmp(r->node, "cA");
        on[1] += !strcmp(r->node, "cB");
        pc_job_result_free(&r);
        CU_ASSERT_PTR_NULL(r);
    }
    for (int i = 0; i < NJ; i++)
        CU_ASSERT_EQUAL(seen[i], 1);
    CU_ASSERT_EQUAL(on[0] + on[1], NJ);
    CU_ASSERT(on[0] > 0 && on[1] > 0);
    CU_ASSERT_EQUAL(pc_compute_wait_any(c, 0, &r), PC_ENOENT);
    CU_ASSERT_EQUAL(pc_compute_wait(c, ids[3], 0, &r), PC_ENOENT);
    CU_ASSERT_EQUAL(pc_compute_wait_all(c, 0), PC_OK);
    CU_ASSERT_EQUAL(pc_compute_stats_get(c, &st), PC_OK);
    CU_ASSERT_EQUAL(st.submitted, NJ);
    CU_ASSERT_EQUAL(st.done, NJ);
    CU_ASSERT_EQUAL(st.failed, 0);
    CU_ASSERT_EQUAL(st.retried, 0);
    CU_ASSERT_EQUAL(st.queued + st.running, 0);
    CU_ASSERT_EQUAL(st.workers, 4);
    /* bad submissions queue nothing */
    pc_job_spec bad = {.fn = "no_such_job"};
    CU_ASSERT_EQUAL(pc_compute_submit(c, &bad, 1, NULL), PC_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(pc_compute_error(c), "no_such_job"));
    bad = (pc_job_spec){.fn = "echo", .cpus = 3};
    CU_ASSERT_EQUAL(pc_compute_submit(c, &bad, 1, NULL), PC_EINVAL);
    CU_ASSERT_EQUAL(pc_compute_stats_get(c, &st), PC_OK);
    CU_ASSERT_EQUAL(st.submitted, NJ);
    CU_ASSERT_EQUAL(pc_compute_close(&c, 5.0), PC_OK);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT(wait_ev(PC_CE_CLOSED, 0, 1));
    CU_ASSERT_EQUAL(count_ev(PC_CE_JOB_FINISHED, 0, 0), NJ);
    CU_ASSERT_EQUAL(count_ev(PC_CE_JOB_STARTED, 0, 0), NJ);
    /* each of the 4 workers (2 nodes × 2) closed, before its node did */
    CU_ASSERT_EQUAL(count_ev(PC_CE_WORKER_CLOSED, 0, 0), 4);
    CU_ASSERT_EQUAL(count_ev(PC_CE_NODE_CLOSED, 0, 0), 2);
    CU_ASSERT_EQUAL(col_ev[col_nev - 1].kind, PC_CE_CLOSED);
    cluster_down();
}

PT_TEST(crash_retried)
static void
crash_retried(void)
{
    pc_job_result *r;

    cluster_up();
    pc_compute *c = open_both(NULL);
    r = run_text(c, "crash", NULL);
    CU_ASSERT_EQUAL(r->rc, PC_EFAILED);
    CU_ASSERT_EQUAL(r->why, PC_JOB_CRASHED);
    CU_ASSERT_EQUAL(r->attempts, 4);
    CU_ASSERT_PTR_NOT_NULL(strstr(r->error, "SIGSEGV"));
    /* its events, the end's last, may come after its result */
    CU_ASSERT(wait_ev(PC_CE_JOB_FINISHED, r->id, 1));
    CU_ASSERT_EQUAL(count_ev(PC_CE_JOB_RETRIED, r->id, 0), 3);
    CU_ASSERT_EQUAL(count_ev(PC_CE_JOB_ABANDONED, r->id, 0), 1);
    pc_job_result_free(&r);
    r = run_text(c, "crash_once", NULL);
    CU_ASSERT(result_is(r, "survived"));
    CU_ASSERT_EQUAL(r->attempts, 2);
    CU_ASSERT(wait_ev(PC_CE_JOB_FINISHED, r->id, 1));
    CU_ASSERT_EQUAL(count_ev(PC_CE_JOB_RETRIED, r->id, 0), 1);
    pc_job_result_free(&r);
    /* a job that fails on its own is not retried */
    r = run_text(c, "fail", "please");
    CU_ASSERT_EQUAL(r->rc, PC_EFAILED);
    CU_ASSERT_EQUAL(r->why, PC_JOB_FAILED);
    CU_ASSERT_STRING_EQUAL(r->error, "asked to fail: please");
    CU_ASSERT_EQUAL(r->attempts, 1);
    pc_job_result_free(&r);
    /* the nodes lived, and their workers were replaced */
    CU_ASSERT(node_alive(&N[0]) && node_alive(&N[1]));
    r = run_text(c, "echo", "still here");
    CU_ASSERT(result_is(r, "still here"));
    pc_job_result_free(&r);
    CU_ASSERT(wait_ev(PC_CE_WORKER_LOST, 0, 5));
    CU_ASSERT_EQUAL(pc_compute_close(&c, 5.0), PC_OK);
    cluster_down();
}

PT_TEST(node_killed_midway)
static void
node_killed_midway(void)
{
    enum { NJ = 400 };
    static pc_job_spec jobs[NJ];
    static uint64_t ids[NJ];
    static int seen[NJ];
    int mark = 0, retried_on_a = 0, after = 0, lost_jobs;
    pc_job_result *r = NULL;
    pc_compute_stats st;

    cluster_up();
    pc_compute *c = open_both(NULL);
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < NJ; i++)
        jobs[i] = (pc_job_spec){.fn = "sleep", .input = "20", .len = 2};
    CU_ASSERT_EQUAL_FATAL(pc_compute_submit(c, jobs, NJ, ids), PC_OK);
    for (int i = 0; i < NJ; i++) {
        if (i == NJ / 2) {
            mark = nev_now();
            kill(N[1].k.pid, SIGKILL);
            CU_ASSERT(kid_wait(&N[1].k, PT_LONG));
        }
        CU_ASSERT_EQUAL_FATAL(pc_compute_wait_any(c, PT_LONG, &r), PC_OK);
        int k = (int)(r->id - ids[0]);
        CU_ASSERT_FATAL(k >= 0 && k < NJ);
        seen[k]++;
        CU_ASSERT(result_is(r, "slept"));
        if (i >= NJ / 2)
            after++;
        if (r->attempts > 1) {
            CU_ASSERT_STRING_EQUAL(r->node, "cA");
            retried_on_a++;
        }
        pc_job_result_free(&r);
    }
    for (int i = 0; i < NJ; i++)
        CU_ASSERT_EQUAL(seen[i], 1); /* 0 lost, 0 duplicated */
    /* the lost node's jobs were retried, after the kill only */
    CU_ASSERT(wait_ev(PC_CE_JOB_FINISHED, 0, NJ));
    lost_jobs = count_ev(PC_CE_JOB_RETRIED, 0, 0);
    CU_ASSERT(lost_jobs > 0);
    CU_ASSERT_EQUAL(count_ev(PC_CE_JOB_RETRIED, 0, mark), lost_jobs);
    CU_ASSERT_EQUAL(retried_on_a, lost_jobs);
    CU_ASSERT_EQUAL(count_ev(PC_CE_NODE_LOST, 0, mark), 1);
    pthread_mutex_lock(&col_mu);
    for (int i = mark; i < col_nev; i++)
        if (col_ev[i].kind == PC_CE_JOB_RETRIED) {
            CU_ASSERT_EQUAL(col_ev[i].why, PC_JOB_LOST);
            CU_ASSERT_STRING_EQUAL(col_ev[i].node, "cB");
        }
    pthread_mutex_unlock(&col_mu);
    CU_ASSERT_EQUAL(pc_compute_stats_get(c, &st), PC_OK);
    CU_ASSERT_EQUAL(st.retried, (uint64_t)lost_jobs);
    CU_ASSERT_EQUAL(st.nodes, 1);
    CU_ASSERT_EQUAL(pc_compute_close(&c, 5.0), PC_OK);
    CU_ASSERT(node_alive(&N[0]));
    cluster_down();
}

PT_TEST(sandbox)
static void
sandbox(void)
{
    pc_job_result *r;
    int e1 = 0, e2 = 0, e3 = 0;

    cluster_up();
    pc_compute *c = open_both(NULL);
    r = run_text(c, "read_outside", "/etc/passwd");
    CU_ASSERT_EQUAL(r->rc, PC_OK);
    CU_ASSERT_EQUAL(
        sscanf(r->data ? r->data : "", "etc=%d rel=%d input=%d", &e1, &e2, &e3),
        3);
    CU_ASSERT(e1 != 0 && e2 != 0 && e3 != 0); /* every open failed */
    pc_job_result_free(&r);
    r = run_text(c, "fork", NULL);
    CU_ASSERT_EQUAL(r->rc, PC_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(r->data ? r->data : "", "forks: 0 ok"));
    pc_job_result_free(&r);
#if !defined(PICOS_SANITIZE_ADDRESS) && !defined(PICOS_SANITIZE_THREAD)
    /* (sanitizer builds of picos-worker set no address-space limit) */
    r = run_text(c, "hog", NULL);
    CU_ASSERT_EQUAL(r->rc, PC_EFAILED);
    CU_ASSERT(r->why == PC_JOB_FAILED || r->why == PC_JOB_LIMIT);
    CU_ASSERT_PTR_NOT_NULL(strstr(r->error, "memory"));
    if (r->rc != PC_EFAILED)
        fprintf(stderr, "hog: %s %s\n", pc_job_why_str(r->why), r->error);
    pc_job_result_free(&r);
#endif
    r = run_text(c, "whoami", NULL);
    CU_ASSERT_EQUAL(r->rc, PC_OK);
    if (r->data) {
        unsigned uid = 0;
        const char *s = r->data;
        CU_ASSERT_PTR_NOT_NULL(strstr(s, "nnp=1"));
        CU_ASSERT_PTR_NOT_NULL(strstr(s, "seccomp=2"));
        CU_ASSERT_PTR_NOT_NULL(strstr(s, "core=0"));
        CU_ASSERT_EQUAL(sscanf(s, "uid=%u", &uid), 1);
        if (getuid() == 0) {
            /* a uid of its own, chrooted: cwd is its scratch dir */
            CU_ASSERT(uid >= 200000);
            CU_ASSERT_PTR_NOT_NULL(strstr(s, "capeff=0 "));
            CU_ASSERT_PTR_NOT_NULL(strstr(s, "cwd=/w"));
        }
    }
    pc_job_result_free(&r);
    /* a job past its timeout: its worker killed, not retried */
    pc_job_spec j = {.fn = "sleep", .input = "10000", .len = 5, .timeout = 0.3};
    r = run1(c, &j);
    CU_ASSERT_EQUAL(r->rc, PC_ETIMEDOUT);
    CU_ASSERT_EQUAL(r->why, PC_JOB_TIMEDOUT);
    CU_ASSERT_EQUAL(r->attempts, 1);
    pc_job_result_free(&r);
    CU_ASSERT(node_alive(&N[0]) && node_alive(&N[1]));
    CU_ASSERT_EQUAL(pc_compute_close(&c, 5.0), PC_OK);
    cluster_down();
}

PT_TEST(cancel_queued_and_running)
static void
cancel_queued_and_running(void)
{
    pc_compute_opts o = {.cpus = 1, .prefetch = 1};
    pc_job_spec j[5];
    uint64_t ids[5], run = 0;
    pc_job_result *r;
    pc_compute_stats st;

    cluster_up();
    pc_compute *c = open_both(&o);
    /* one CPU per node and one prefetched: 4 go out, the 5th waits here */
    for (int i = 0; i < 5; i++)
        j[i] = (pc_job_spec){.fn = "sleep", .input = "30000", .len = 5};
    CU_ASSERT_EQUAL_FATAL(pc_compute_submit(c, j, 5, ids), PC_OK);
    double t0 = pc_now();
    do { /* the agent sends them out after the submit returned */
        CU_ASSERT_EQUAL(pc_compute_stats_get(c, &st), PC_OK);
        if (st.running == 4)
            break;
        usleep(5000);
    } while (pt_since(t0) < PT_LONG);
    CU_ASSERT_EQUAL(st.running, 4);
    CU_ASSERT_EQUAL(st.queued, 1);
    CU_ASSERT_EQUAL(pc_compute_cancel(c, ids[4]), PC_OK);
    CU_ASSERT_EQUAL(pc_compute_wait(c, ids[4], PT_LONG, &r), PC_OK);
    CU_ASSERT_EQUAL(r->rc, PC_ECLOSED);
    CU_ASSERT_EQUAL(r->why, PC_JOB_CANCELLED);
    CU_ASSERT_EQUAL(r->attempts, 0);
    pc_job_result_free(&r);
    CU_ASSERT_EQUAL(pc_compute_cancel(c, ids[4]), PC_ENOENT);
    /* a running one: its worker is killed, it ends cancelled */
    CU_ASSERT_FATAL(wait_ev(PC_CE_JOB_STARTED, 0, 1));
    pthread_mutex_lock(&col_mu);
    for (int i = 0; i < col_nev && !run; i++)
        if (col_ev[i].kind == PC_CE_JOB_STARTED)
            run = col_ev[i].job;
    pthread_mutex_unlock(&col_mu);
    CU_ASSERT_EQUAL(pc_compute_cancel(c, run), PC_OK);
    CU_ASSERT_EQUAL(pc_compute_wait(c, run, PT_LONG, &r), PC_OK);
    CU_ASSERT_EQUAL(r->why, PC_JOB_CANCELLED);
    CU_ASSERT_EQUAL(r->attempts, 1);
    pc_job_result_free(&r);
    /* the node's next job runs on the replaced worker */
    CU_ASSERT(wait_ev(PC_CE_JOB_STARTED, 0, 3));
    /* the rest end with the close */
    CU_ASSERT_EQUAL(pc_compute_close(&c, 0), PC_OK);
    CU_ASSERT(wait_ev(PC_CE_CLOSED, 0, 1));
    CU_ASSERT_EQUAL(count_ev(PC_CE_JOB_FINISHED, 0, 0), 5);
    cluster_down();
}

PT_TEST(chat_messages)
static void
chat_messages(void)
{
    pc_job_spec j = {.fn = "chat"};
    uint64_t id = 0;
    pc_job_result *r = NULL;

    cluster_up();
    pc_compute *c = open_both(NULL);
    CU_ASSERT_EQUAL_FATAL(pc_compute_submit(c, &j, 1, &id), PC_OK);
    CU_ASSERT_EQUAL(pc_compute_send(c, id, "hello", 5), PC_OK);
    CU_ASSERT_EQUAL(pc_compute_send(c, id, "world", 5), PC_OK);
    CU_ASSERT(wait_msgs(2));
    CU_ASSERT_EQUAL(pc_compute_send(c, id, "bye", 3), PC_OK);
    CU_ASSERT_EQUAL(pc_compute_wait(c, id, PT_LONG, &r), PC_OK);
    CU_ASSERT(r && result_is(r, "chatted 2"));
    pc_job_result_free(&r);
    pthread_mutex_lock(&col_mu);
    CU_ASSERT_EQUAL(col_nmsg, 2);
    CU_ASSERT_EQUAL(col_msg[0].id, id);
    CU_ASSERT_STRING_EQUAL(col_msg[0].data, "HELLO");
    CU_ASSERT_STRING_EQUAL(col_msg[1].data, "WORLD");
    pthread_mutex_unlock(&col_mu);
    CU_ASSERT_EQUAL(pc_compute_send(c, id, "late", 4), PC_ENOENT);
    CU_ASSERT_EQUAL(pc_compute_close(&c, 5.0), PC_OK);
    cluster_down();
}

PT_TEST(files_in_and_out)
static void
files_in_and_out(void)
{
    pc_job_file in = {.name = "in.txt", .data = "abcdef", .len = 6};
    const char *const out[] = {"out.txt", "absent.txt", NULL};
    pc_job_spec j = {
        .fn = "files", .files_in = &in, .nfiles_in = 1, .files_out = out};
    pc_job_result *r;

    cluster_up();
    pc_compute *c = open_both(NULL);
    r = run1(c, &j);
    CU_ASSERT(result_is(r, "6"));
    CU_ASSERT_EQUAL(r->nfiles, 1);
    if (r->nfiles == 1) {
        CU_ASSERT_STRING_EQUAL(r->files[0].name, "out.txt");
        CU_ASSERT_EQUAL(r->files[0].len, 6);
        CU_ASSERT_EQUAL(memcmp(r->files[0].data, "fedcba", 6), 0);
    }
    pc_job_result_free(&r);
    /* names that are not plain file names are refused at submit */
    pc_job_file bad = {.name = "../x", .data = "x", .len = 1};
    j.files_in = &bad;
    CU_ASSERT_EQUAL(pc_compute_submit(c, &j, 1, NULL), PC_EINVAL);
    const char *const badout[] = {"a/b", NULL};
    j.files_in = &in;
    j.files_out = badout;
    CU_ASSERT_EQUAL(pc_compute_submit(c, &j, 1, NULL), PC_EINVAL);
    CU_ASSERT_EQUAL(pc_compute_close(&c, 5.0), PC_OK);
    cluster_down();
}

/* A typed job (pc_job_def.in_desc): the worker unpacks the input as
 * picos.test.Ping before the job runs; an input that does not parse fails
 * the job without running it, and is not retried. */
PT_TEST(typed_input)
static void
typed_input(void)
{
    Picos__Test__Ping p = PICOS__TEST__PING__INIT;
    int32_t nums[] = {1, 2, 3};
    uint8_t buf[128];
    size_t len;
    pc_job_result *r;

    p.seq = 7;
    p.text = "hi";
    p.nums = nums;
    p.n_nums = 3;
    len = picos__test__ping__pack(&p, buf);
    cluster_up();
    pc_compute *c = open_both(NULL);
    pc_job_spec j = {.fn = "ping_pb", .input = buf, .len = len};
    r = run1(c, &j);
    CU_ASSERT(result_is(r, "seq=7 text=hi nums=3"));
    pc_job_result_free(&r);
    /* field 1 as length-delimited: not a Ping */
    j.input = "\x0a\x05hello";
    j.len = 7;
    r = run1(c, &j);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(r->why, PC_JOB_FAILED);
    CU_ASSERT_EQUAL(r->attempts, 1);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(r->error, "does not parse as picos.test.Ping"));
    pc_job_result_free(&r);
    CU_ASSERT_EQUAL(pc_compute_close(&c, 5.0), PC_OK);
    cluster_down();
}

PT_TEST(data_files_and_setup)
static void
data_files_and_setup(void)
{
    char setup[192], d1[192], fail[192];
    pc_job_result *r;
    pc_compute *c = NULL;

    write_tmp_file(setup, sizeof setup, "setup.txt", "from node_setup");
    write_tmp_file(d1, sizeof d1, "d1.txt", "first line\nsecond\n");
    write_tmp_file(fail, sizeof fail, "fail_setup.txt", "x");
    cluster_up();
    const char *const files[] = {setup, d1, NULL};
    pc_compute_opts o = {.files = files};
    c = open_both(&o);
    r = run_text(c, "setup_value", NULL);
    CU_ASSERT(result_is(r, "from node_setup"));
    pc_job_result_free(&r);
    r = run_text(c, "data", "d1.txt");
    CU_ASSERT(result_is(r, "first line"));
    pc_job_result_free(&r);
    CU_ASSERT_EQUAL(pc_compute_close(&c, 5.0), PC_OK);
    /* node_setup fails on every node: the open fails with its text */
    const char *const ffiles[] = {fail, NULL};
    pc_compute_opts fo = {
        .library = COMPUTE_LIB, .files = ffiles, .status = collector};
    CU_ASSERT_EQUAL(pc_compute_open(&fo, PT_LONG, &c), PC_EFAILED);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(pc_compute_error(NULL),
                                  "setup refused: fail_setup.txt present"));
    /* bad opens, before any node is asked */
    pc_compute_opts bo = {.library = "/nonexistent.so"};
    CU_ASSERT_EQUAL(pc_compute_open(&bo, PT_LONG, &c), PC_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(pc_compute_error(NULL), "/nonexistent.so"));
    bo.library = REGISTRY; /* an ELF file, not a computation */
    CU_ASSERT_EQUAL(pc_compute_open(&bo, PT_LONG, &c), PC_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(pc_compute_error(NULL), "not a computation"));
    const char *const nobody[] = {"no-such-node*", NULL};
    pc_compute_opts no = {.library = COMPUTE_LIB, .nodes = nobody};
    CU_ASSERT_EQUAL(pc_compute_open(&no, PT_LONG, &c), PC_ENOENT);
    /* the nodes lived through it all */
    CU_ASSERT(node_alive(&N[0]) && node_alive(&N[1]));
    c = open_both(NULL);
    r = run_text(c, "setup_value", NULL);
    CU_ASSERT(result_is(r, "none"));
    pc_job_result_free(&r);
    CU_ASSERT_EQUAL(pc_compute_close(&c, 5.0), PC_OK);
    cluster_down();
}

PT_TEST(suspend_and_close_node)
static void
suspend_and_close_node(void)
{
    enum { NJ = 40 };
    static pc_job_spec jobs[NJ];
    int on_b = 0;

    cluster_up();
    pc_compute *c = open_both(NULL);
    CU_ASSERT_EQUAL(pc_compute_suspend(c, "nope", true), PC_ENOENT);
    CU_ASSERT_EQUAL(pc_compute_suspend(c, "cB", true), PC_OK);
    CU_ASSERT(wait_ev(PC_CE_NODE_SUSPENDED, 0, 1));
    for (int i = 0; i < NJ; i++)
        jobs[i] = (pc_job_spec){.fn = "echo", .input = "x", .len = 1};
    CU_ASSERT_EQUAL_FATAL(pc_compute_submit(c, jobs, NJ, NULL), PC_OK);
    for (int i = 0; i < NJ; i++) {
        pc_job_result *r = NULL;
        CU_ASSERT_EQUAL_FATAL(pc_compute_wait_any(c, PT_LONG, &r), PC_OK);
        CU_ASSERT(result_is(r, "x"));
        on_b += !strcmp(r->node, "cB");
        pc_job_result_free(&r);
    }
    CU_ASSERT_EQUAL(on_b, 0); /* none started on the suspended node */
    CU_ASSERT_EQUAL(pc_compute_suspend(c, NULL, false), PC_OK);
    CU_ASSERT(wait_ev(PC_CE_NODE_RESUMED, 0, 1));
    /* cA closed for this computation: what follows runs on cB */
    CU_ASSERT_EQUAL(pc_compute_close_node(c, "cA", 1.0), PC_OK);
    CU_ASSERT(wait_ev(PC_CE_NODE_CLOSED, 0, 1));
    CU_ASSERT_EQUAL_FATAL(pc_compute_submit(c, jobs, NJ, NULL), PC_OK);
    for (int i = 0; i < NJ; i++) {
        pc_job_result *r = NULL;
        CU_ASSERT_EQUAL_FATAL(pc_compute_wait_any(c, PT_LONG, &r), PC_OK);
        CU_ASSERT(result_is(r, "x"));
        CU_ASSERT_STRING_EQUAL(r->node, "cB");
        pc_job_result_free(&r);
    }
    CU_ASSERT_EQUAL(pc_compute_close(&c, 5.0), PC_OK);
    cluster_down();
}

/* compute_client_proc with the secret `secret`, reserving `cpus`; with
 * `hold` it keeps them after its jobs until it gets SIGUSR1. */
static void
client_proc(kid *k, const char *secret, const char *cpus, const char *jobs,
            bool hold)
{
    kid_opts o = {.clean_env = true};

    CU_ASSERT_FATAL(
        kid_run(k, CLIENT_PROC,
                (const char *[]){reg_ep, secret, COMPUTE_LIB, cpus, jobs, "50",
                                 "cA,cB", hold ? "hold" : NULL, NULL},
                &o));
}

PT_TEST(wrong_secret)
static void
wrong_secret(void)
{
    kid k;
    char err[4096] = "", out[256];
    pc_job_result *r;

    cluster_up();
    client_proc(&k, other_path, "1", "10", false);
    CU_ASSERT(kid_wait(&k, PT_LONG));
    CU_ASSERT_EQUAL(exit_code(&k), 3);
    slurp(k.err, err, sizeof err);
    slurp(k.out, out, sizeof out);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "join: PC_EAUTH"));
    CU_ASSERT_PTR_NULL(strstr(out, "OPENED"));
    kid_free(&k);
    CU_ASSERT(node_alive(&N[0]) && node_alive(&N[1]));
    pc_compute *c = open_both(NULL);
    r = run_text(c, "echo", "fine");
    CU_ASSERT(result_is(r, "fine"));
    pc_job_result_free(&r);
    CU_ASSERT_EQUAL(pc_compute_close(&c, 5.0), PC_OK);
    cluster_down();
}

PT_TEST(two_clients)
static void
two_clients(void)
{
    enum { NJ = 60 };
    static pc_job_spec jobs[NJ];
    kid k;
    char line[256] = "", err[4096];
    pc_compute_opts o = {.cpus = 1};
    pc_compute *c2 = NULL;
    pc_compute_stats st;
    int good = 0;

    cluster_up();
    /* it keeps its CPUs until told (SIGUSR1), however fast its jobs run */
    client_proc(&k, secret_path, "1", "60", true);
    if (!read_line(k.out, line, sizeof line, PT_LONG) ||
        strcmp(line, "OPENED")) {
        kid_wait(&k, 1.0);
        slurp(k.err, err, sizeof err);
        fprintf(stderr, "compute_client_proc: '%s' %s\n", line, err);
        CU_FAIL_FATAL("the other client did not open");
    }
    /* it holds one CPU of each node; this one gets the other */
    pc_compute *c = open_both(&o);
    CU_ASSERT_EQUAL(pc_compute_stats_get(c, &st), PC_OK);
    CU_ASSERT_EQUAL(st.nodes, 2);
    /* and a third finds every CPU taken */
    pc_compute_opts o3 = {.library = COMPUTE_LIB, .cpus = 1};
    CU_ASSERT_EQUAL(pc_compute_open(&o3, PT_LONG, &c2), PC_EFULL);
    for (int i = 0; i < NJ; i++)
        jobs[i] = (pc_job_spec){.fn = "sleep", .input = "50", .len = 2};
    CU_ASSERT_EQUAL_FATAL(pc_compute_submit(c, jobs, NJ, NULL), PC_OK);
    for (int i = 0; i < NJ; i++) {
        pc_job_result *r = NULL;
        CU_ASSERT_EQUAL_FATAL(pc_compute_wait_any(c, PT_LONG, &r), PC_OK);
        good += result_is(r, "slept");
        pc_job_result_free(&r);
    }
    CU_ASSERT_EQUAL(good, NJ);
    CU_ASSERT(read_line(k.out, line, sizeof line, PT_LONG));
    CU_ASSERT_STRING_EQUAL(line, "DONE 60");
    kill(k.pid, SIGUSR1);
    CU_ASSERT(kid_wait(&k, PT_LONG));
    CU_ASSERT_EQUAL(exit_code(&k), 0);
    if (exit_code(&k) != 0) {
        slurp(k.err, err, sizeof err);
        fprintf(stderr, "compute_client_proc: %s\n", err);
    }
    kid_free(&k);
    CU_ASSERT_EQUAL(pc_compute_close(&c, 5.0), PC_OK);
    cluster_down();
}

/* ---- the node's side: the operator's control, its counters ------------------------- */

static const char *const only_a[] = {"cA", NULL};
static const char *const only_b[] = {"cB", NULL};

/* The operator's suspend (on) or resume: a ComputeControl sent to node's
 * compute task, as the registry's action path does. */
static void
node_control(const char *node, bool on)
{
    Picos__V1__ComputeControl cc = PICOS__V1__COMPUTE_CONTROL__INIT;
    uint8_t buf[64];
    char task[96];
    pc_ref ref;
    size_t n;

    cc.op = on ? PICOS__V1__COMPUTE_OP__COMPUTE_SUSPEND
               : PICOS__V1__COMPUTE_OP__COMPUTE_RESUME;
    snprintf(task, sizeof task, PC_COMPUTE_NAME_PREFIX "%s", node);
    CU_ASSERT_EQUAL_FATAL(pc_locate(PC_NAME_TASK, task, PT_LONG, &ref), PC_OK);
    n = picos__v1__compute_control__pack(&cc, buf);
    CU_ASSERT_EQUAL(pc_send_data(ref, "picos.v1.ComputeControl", buf, n),
                    PC_OK);
}

/* Index in the collector of the first event of kind about job (0: any)
 * from `from` on; -1 when none. */
static int
find_ev(pc_compute_event_kind kind, uint64_t job, int from)
{
    int at = -1;

    pthread_mutex_lock(&col_mu);
    for (int i = from; i < col_nev && at < 0; i++)
        if (col_ev[i].kind == kind && (!job || col_ev[i].job == job))
            at = i;
    pthread_mutex_unlock(&col_mu);
    return at;
}

/* Poll the registry's statuses until node `name` has reported one sampled
 * at or after `since_us` (its wall clock, µs) for which want(cs) holds
 * (want NULL: any); true and *out then. The statuses come every 0.2 s. */
static bool
node_compute_status(const char *name, uint64_t since_us,
                    bool (*want)(const Picos__V1__ComputeStatus *),
                    Picos__V1__ComputeStatus *out)
{
    double t0 = pc_now();
    bool seen = false, ok = false;

    memset(out, 0, sizeof *out);
    while (!ok && pt_since(t0) < PT_LONG) {
        pc_msg *m = NULL;
        Picos__V1__NodeStatusList *l = NULL;
        const void *d;
        size_t len = 0;

        if (pc_cluster_nodes_status(2.0, &m) == PC_OK) {
            d = pc_msg_data(m, &len);
            l = picos__v1__node_status_list__unpack(NULL, len, d);
        }
        for (size_t i = 0; l && i < l->n_nodes && !ok; i++) {
            const Picos__V1__NodeStatus *s = l->nodes[i]->status;
            if (!s || strcmp(s->name, name) || !s->compute ||
                s->sampled_us < since_us)
                continue;
            seen = true;
            *out = *s->compute;
            out->base = (ProtobufCMessage)PROTOBUF_C_MESSAGE_INIT(
                &picos__v1__compute_status__descriptor);
            ok = !want || want(out);
        }
        if (l)
            picos__v1__node_status_list__free_unpacked(l, NULL);
        pc_msg_free(&m);
        if (!ok)
            usleep(50000);
    }
    if (!ok)
        fprintf(stderr,
                "%s: %s: cpus_reserved %u sessions %u workers %u busy %u "
                "queued %u done %llu failed %llu suspended %d\n",
                name, seen ? "no status as wanted" : "no status",
                out->cpus_reserved, out->sessions, out->workers,
                out->workers_busy, out->jobs_queued,
                (unsigned long long)out->jobs_done,
                (unsigned long long)out->jobs_failed, out->suspended);
    return ok;
}

static bool
suspended_idle_2queued(const Picos__V1__ComputeStatus *cs)
{
    return cs->suspended && cs->workers_busy == 0 && cs->jobs_queued == 2;
}

/* The operator suspends a node (a ComputeControl to its compute task):
 * new clients are refused, an open computation is told, its running job
 * finishes, the jobs queued there wait for the resume, then all end. */
PT_TEST(node_suspend_resume)
static void
node_suspend_resume(void)
{
    pc_compute_opts o = {.nodes = only_a, .cpus = 1, .prefetch = 2};
    pc_compute_opts o2 = {.library = COMPUTE_LIB, .nodes = only_a, .cpus = 1};
    pc_job_spec chat = {.fn = "chat"}, echo[3];
    uint64_t chat_id = 0, ids[3];
    Picos__V1__ComputeStatus cs;
    pc_compute_stats st;
    pc_compute *c2 = NULL;
    pc_job_result *r = NULL;
    int susp, resumed;

    cluster_up();
    pc_compute *c = open_both(&o);
    CU_ASSERT_FATAL(wait_ev(PC_CE_NODE_INITIALIZED, 0, 1));
    /* one job running (it waits for its "bye"), two queued at the node
     * (prefetch 2 of its 1 worker), the third kept here */
    CU_ASSERT_EQUAL_FATAL(pc_compute_submit(c, &chat, 1, &chat_id), PC_OK);
    CU_ASSERT_FATAL(wait_ev(PC_CE_JOB_STARTED, chat_id, 1));
    for (int i = 0; i < 3; i++)
        echo[i] = (pc_job_spec){.fn = "echo", .input = "e", .len = 1};
    CU_ASSERT_EQUAL_FATAL(pc_compute_submit(c, echo, 3, ids), PC_OK);
    double t0 = pc_now();
    do {
        CU_ASSERT_EQUAL(pc_compute_stats_get(c, &st), PC_OK);
        if (st.running == 3)
            break;
        usleep(5000);
    } while (pt_since(t0) < PT_LONG);
    CU_ASSERT_EQUAL_FATAL(st.running, 3);

    node_control("cA", true);
    CU_ASSERT_FATAL(wait_ev(PC_CE_NODE_SUSPENDED, 0, 1));
    susp = find_ev(PC_CE_NODE_SUSPENDED, 0, 0);
    pthread_mutex_lock(&col_mu);
    CU_ASSERT_STRING_EQUAL(col_ev[susp].node, "cA");
    CU_ASSERT_PTR_NOT_NULL(strstr(col_ev[susp].text, "suspended"));
    pthread_mutex_unlock(&col_mu);
    /* a new client is refused: not a failure, the node has no CPU for it
     * now (documented: PC_EFULL) */
    CU_ASSERT_EQUAL(pc_compute_open(&o2, PT_LONG, &c2), PC_EFULL);
    CU_ASSERT_PTR_NULL(c2);
    CU_ASSERT_PTR_NOT_NULL(strstr(pc_compute_error(NULL), "suspended"));
    if (!strstr(pc_compute_error(NULL), "suspended"))
        fprintf(stderr, "open while suspended: %s\n", pc_compute_error(NULL));
    /* the running job finishes */
    CU_ASSERT_EQUAL(pc_compute_send(c, chat_id, "bye", 3), PC_OK);
    CU_ASSERT_EQUAL_FATAL(pc_compute_wait(c, chat_id, PT_LONG, &r), PC_OK);
    CU_ASSERT(result_is(r, "chatted 0"));
    CU_ASSERT_EQUAL(r->attempts, 1);
    pc_job_result_free(&r);
    /* the node, sampled after that: its worker idle, the two queued */
    CU_ASSERT(
        node_compute_status("cA", pc_wall_us(), suspended_idle_2queued, &cs));
    CU_ASSERT_EQUAL(count_ev(PC_CE_JOB_STARTED, ids[0], 0) +
                        count_ev(PC_CE_JOB_STARTED, ids[1], 0) +
                        count_ev(PC_CE_JOB_STARTED, ids[2], 0),
                    0);
    CU_ASSERT_EQUAL(pc_compute_wait(c, ids[0], 0, &r), PC_ETIMEDOUT);
    /* the client's own suspend and resume don't lift the node's: it is
     * told the node is still suspended */
    CU_ASSERT_EQUAL(pc_compute_suspend(c, "cA", true), PC_OK);
    CU_ASSERT_EQUAL(pc_compute_suspend(c, "cA", false), PC_OK);
    CU_ASSERT(wait_ev(PC_CE_NODE_SUSPENDED, 0, 2));
    CU_ASSERT_EQUAL(count_ev(PC_CE_NODE_RESUMED, 0, 0), 0);

    node_control("cA", false);
    CU_ASSERT_FATAL(wait_ev(PC_CE_NODE_RESUMED, 0, 1));
    resumed = find_ev(PC_CE_NODE_RESUMED, 0, 0);
    CU_ASSERT(resumed > susp);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL_FATAL(pc_compute_wait(c, ids[i], PT_LONG, &r), PC_OK);
        CU_ASSERT(result_is(r, "e"));
        CU_ASSERT_EQUAL(r->attempts, 1);
        pc_job_result_free(&r);
        CU_ASSERT(wait_ev(PC_CE_JOB_STARTED, ids[i], 1));
        /* each started after the resume, none before */
        CU_ASSERT(find_ev(PC_CE_JOB_STARTED, ids[i], 0) > resumed);
    }
    /* and a new client is taken again */
    CU_ASSERT_EQUAL(pc_compute_open(&o2, PT_LONG, &c2), PC_OK);
    if (c2) {
        r = run_text(c2, "echo", "second");
        CU_ASSERT(result_is(r, "second"));
        pc_job_result_free(&r);
        CU_ASSERT_EQUAL(pc_compute_close(&c2, 5.0), PC_OK);
    }
    CU_ASSERT_EQUAL(pc_compute_close(&c, 5.0), PC_OK);
    cluster_down();
}

/* A job of 2 CPUs on a node of 2 workers runs alone: the other worker is
 * held idle, the 1-CPU jobs behind it start once it has ended. More CPUs
 * than any node's workers is refused at submit. */
PT_TEST(multi_cpu_jobs)
static void
multi_cpu_jobs(void)
{
    pc_compute_opts o = {.nodes = only_a};
    pc_compute_opts ob = {.nodes = only_b, .cpus = 1};
    pc_job_spec j[3] = {
        {.fn = "sleep", .input = "300", .len = 3, .cpus = 2},
        {.fn = "sleep", .input = "50", .len = 2},
        {.fn = "sleep", .input = "50", .len = 2},
    };
    uint64_t ids[3];
    pc_job_result *r[3] = {NULL, NULL, NULL};
    int big_end;

    cluster_up();
    pc_compute *c = open_both(&o);
    CU_ASSERT_EQUAL_FATAL(pc_compute_submit(c, j, 3, ids), PC_OK);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL_FATAL(pc_compute_wait(c, ids[i], PT_LONG, &r[i]),
                              PC_OK);
        CU_ASSERT(result_is(r[i], "slept"));
        CU_ASSERT_STRING_EQUAL(r[i]->node, "cA");
        CU_ASSERT(r[i]->worker >= 0 && r[i]->worker < 2);
        CU_ASSERT_EQUAL(r[i]->attempts, 1);
    }
    /* the node's clock: the small ones started once the big one ended */
    for (int i = 1; i < 3; i++)
        CU_ASSERT(r[i]->started >= r[0]->ended);
    for (int i = 0; i < 3; i++)
        CU_ASSERT(wait_ev(PC_CE_JOB_FINISHED, ids[i], 1));
    big_end = find_ev(PC_CE_JOB_FINISHED, ids[0], 0);
    CU_ASSERT(find_ev(PC_CE_JOB_STARTED, ids[0], 0) >= 0);
    CU_ASSERT(find_ev(PC_CE_JOB_STARTED, ids[0], 0) < big_end);
    for (int i = 1; i < 3; i++) {
        int at = find_ev(PC_CE_JOB_STARTED, ids[i], 0);
        CU_ASSERT(at > big_end);
        if (at <= big_end)
            fprintf(stderr,
                    "job %d started (event %d) before the 2-CPU job "
                    "ended (event %d)\n",
                    i, at, big_end);
    }
    for (int i = 0; i < 3; i++)
        pc_job_result_free(&r[i]);
    /* 3 CPUs: no node has that many workers */
    pc_job_spec big = {.fn = "echo", .input = "x", .len = 1, .cpus = 3};
    CU_ASSERT_EQUAL(pc_compute_submit(c, &big, 1, NULL), PC_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(pc_compute_error(c), "at most 2"));
    /* a computation of one CPU per node: 2 is more than it has */
    pc_compute *c1 = open_both(&ob);
    big.cpus = 2;
    CU_ASSERT_EQUAL(pc_compute_submit(c1, &big, 1, NULL), PC_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(pc_compute_error(c1), "at most 1"));
    big.cpus = 1;
    r[0] = run1(c1, &big);
    CU_ASSERT(result_is(r[0], "x"));
    pc_job_result_free(&r[0]);
    CU_ASSERT_EQUAL(pc_compute_close(&c1, 5.0), PC_OK);
    CU_ASSERT_EQUAL(pc_compute_close(&c, 5.0), PC_OK);
    cluster_down();
}

/* Resource limits, classified end to end: a worker past its CPU time
 * (--compute-cpu-seconds 1) and one dying at its memory limit (256 MiB)
 * end their jobs PC_JOB_LIMIT, not retried; the node replaces them. */
PT_TEST(resource_limits)
static void
resource_limits(void)
{
    const char *const cpu1[] = {"--compute-cpu-seconds", "1", NULL};
    pc_compute_opts o = {.nodes = only_a};
    pc_job_result *r;

    cluster_up_x(cpu1, NULL);
    pc_compute *c = open_both(&o);
    r = run_text(c, "spin", "3000");
    CU_ASSERT_EQUAL(r->rc, PC_EFAILED);
    CU_ASSERT_EQUAL(r->why, PC_JOB_LIMIT);
    CU_ASSERT_PTR_NOT_NULL(strstr(r->error, "CPU time limit"));
    CU_ASSERT_EQUAL(r->attempts, 1);
    if (r->why != PC_JOB_LIMIT)
        fprintf(stderr, "spin: %s '%s'\n", pc_job_why_str(r->why), r->error);
    CU_ASSERT(wait_ev(PC_CE_JOB_FINISHED, r->id, 1));
    CU_ASSERT_EQUAL(count_ev(PC_CE_JOB_RETRIED, r->id, 0), 0);
    pc_job_result_free(&r);
#if !defined(PICOS_SANITIZE_ADDRESS) && !defined(PICOS_SANITIZE_THREAD)
    r = run_text(c, "hog_crash", NULL);
    CU_ASSERT_EQUAL(r->rc, PC_EFAILED);
    CU_ASSERT_EQUAL(r->why, PC_JOB_LIMIT);
    CU_ASSERT_PTR_NOT_NULL(strstr(r->error, "memory limit"));
    CU_ASSERT_EQUAL(r->attempts, 1);
    if (r->why != PC_JOB_LIMIT)
        fprintf(stderr, "hog_crash: %s '%s'\n", pc_job_why_str(r->why),
                r->error);
    CU_ASSERT(wait_ev(PC_CE_JOB_FINISHED, r->id, 1));
    CU_ASSERT_EQUAL(count_ev(PC_CE_JOB_RETRIED, r->id, 0), 0);
    pc_job_result_free(&r);
#else
    printf("SKIP hog_crash: sanitizer builds of picos-worker set no "
           "address-space limit\n");
#endif
    /* the workers were replaced */
    r = run_text(c, "echo", "after");
    CU_ASSERT(result_is(r, "after"));
    pc_job_result_free(&r);
    CU_ASSERT(node_alive(&N[0]));
    CU_ASSERT_EQUAL(pc_compute_close(&c, 5.0), PC_OK);
    cluster_down();
}

static bool
any_status(const Picos__V1__ComputeStatus *cs)
{
    (void)cs;
    return true;
}

static bool
released(const Picos__V1__ComputeStatus *cs)
{
    return cs->cpus_reserved == 0 && cs->sessions == 0 && cs->workers == 0;
}

/* The node's counters (NodeStatus.compute, from pc_compute_node_stats)
 * after a known run: 20 jobs, 3 of them failing, on cA; nothing on cB. */
PT_TEST(node_counters)
static void
node_counters(void)
{
    enum { NJ = 20, NF = 3 };
    pc_compute_opts o = {.nodes = only_a};
    pc_job_spec j[NJ];
    Picos__V1__ComputeStatus cs;
    int ok = 0, failed = 0;

    cluster_up();
    CU_ASSERT(node_compute_status("cA", 0, any_status, &cs));
    CU_ASSERT_EQUAL(cs.cpus, 2);
    CU_ASSERT_EQUAL(cs.jobs_done, 0);
    pc_compute *c = open_both(&o);
    for (int i = 0; i < NJ; i++)
        j[i] = i % 7 == 3 ? (pc_job_spec){.fn = "fail", .input = "x", .len = 1}
                          : (pc_job_spec){.fn = "echo", .input = "y", .len = 1};
    CU_ASSERT_EQUAL_FATAL(pc_compute_submit(c, j, NJ, NULL), PC_OK);
    for (int i = 0; i < NJ; i++) {
        pc_job_result *r = NULL;
        CU_ASSERT_EQUAL_FATAL(pc_compute_wait_any(c, PT_LONG, &r), PC_OK);
        ok += r->why == PC_JOB_OK;
        failed += r->why == PC_JOB_FAILED;
        CU_ASSERT_STRING_EQUAL(r->node, "cA");
        pc_job_result_free(&r);
    }
    CU_ASSERT_EQUAL(ok, NJ - NF);
    CU_ASSERT_EQUAL(failed, NF);
    /* a status sampled after the last result: every job counted, once */
    CU_ASSERT(node_compute_status("cA", pc_wall_us(), any_status, &cs));
    CU_ASSERT_EQUAL(cs.jobs_done, NJ);
    CU_ASSERT_EQUAL(cs.jobs_failed, NF);
    CU_ASSERT_EQUAL(cs.workers_busy, 0);
    CU_ASSERT_EQUAL(cs.jobs_queued, 0);
    CU_ASSERT_EQUAL(cs.cpus_reserved, 2);
    CU_ASSERT_EQUAL(cs.sessions, 1);
    CU_ASSERT_EQUAL(cs.workers, 2);
    CU_ASSERT_EQUAL(cs.workers_lost, 0);
    CU_ASSERT(!cs.suspended);
    CU_ASSERT(node_compute_status("cB", pc_wall_us(), any_status, &cs));
    CU_ASSERT_EQUAL(cs.jobs_done, 0);
    CU_ASSERT_EQUAL(cs.cpus_reserved, 0);
    CU_ASSERT_EQUAL(pc_compute_close(&c, 5.0), PC_OK);
    /* closed: its CPUs and workers given back, the totals kept */
    CU_ASSERT(node_compute_status("cA", pc_wall_us(), released, &cs));
    CU_ASSERT_EQUAL(cs.jobs_done, NJ);
    CU_ASSERT_EQUAL(cs.jobs_failed, NF);
    CU_ASSERT_EQUAL(cs.workers_busy, 0);
    CU_ASSERT_EQUAL(cs.jobs_queued, 0);
    cluster_down();
}

PT_MAIN("compute", PT_ENTRY(squares_1000_two_nodes), PT_ENTRY(crash_retried),
        PT_ENTRY(node_killed_midway), PT_ENTRY(sandbox),
        PT_ENTRY(cancel_queued_and_running), PT_ENTRY(chat_messages),
        PT_ENTRY(files_in_and_out), PT_ENTRY(typed_input),
        PT_ENTRY(data_files_and_setup), PT_ENTRY(suspend_and_close_node),
        PT_ENTRY(wrong_secret), PT_ENTRY(two_clients),
        PT_ENTRY(node_suspend_resume), PT_ENTRY(multi_cpu_jobs),
        PT_ENTRY(resource_limits), PT_ENTRY(node_counters))
