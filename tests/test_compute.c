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

#include "netutil.h"
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

static void
node_start(cnode *n, const char *name)
{
    kid_opts o = {.errpath = n->errfile, .clean_env = true};
    char err[4096];

    memset(n, 0, sizeof *n);
    n->k.out = n->k.err = -1;
    snprintf(n->name, sizeof n->name, "%s", name);
    CU_ASSERT_FATAL(pt_mkdtemp(n->dir, sizeof n->dir, name));
    snprintf(n->errfile, sizeof n->errfile, "%s/stderr", n->dir);
    o.errpath = n->errfile;
    CU_ASSERT_FATAL(kid_run(&n->k, NODE_BIN,
                            (const char *[]){"--registry",
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
                                             "--compute",
                                             "--cpus",
                                             "2",
                                             "--data-dir",
                                             n->dir,
                                             "--compute-memory",
                                             "256M",
                                             "--compute-worker",
                                             WORKER_BIN,
                                             NULL},
                            &o));
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

static void
cluster_up(void)
{
    pc_spawn_opts so = {.flags = PC_TASK_DAEMON};

    pthread_mutex_lock(&col_mu);
    col_nev = col_nmsg = 0;
    pthread_mutex_unlock(&col_mu);
    registry_start();
    node_start(&N[0], "cA");
    node_start(&N[1], "cB");
    PT_START(2);
    CU_ASSERT_EQUAL_FATAL(nt_cluster_join(reg_ep), PC_OK);
    CU_ASSERT_EQUAL_FATAL(pc_spawn(collect, NULL, &so, &collector), PC_OK);
    CU_ASSERT_FATAL(compute_names_up(2));
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

/* compute_client_proc with the secret `secret`, reserving `cpus`. */
static void
client_proc(kid *k, const char *secret, const char *cpus, const char *jobs)
{
    kid_opts o = {.clean_env = true};

    CU_ASSERT_FATAL(kid_run(k, CLIENT_PROC,
                            (const char *[]){reg_ep, secret, COMPUTE_LIB, cpus,
                                             jobs, "50", "cA,cB", NULL},
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
    client_proc(&k, other_path, "1", "10");
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
    client_proc(&k, secret_path, "1", "60");
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

PT_MAIN("compute", PT_ENTRY(squares_1000_two_nodes), PT_ENTRY(crash_retried),
        PT_ENTRY(node_killed_midway), PT_ENTRY(sandbox),
        PT_ENTRY(cancel_queued_and_running), PT_ENTRY(chat_messages),
        PT_ENTRY(files_in_and_out), PT_ENTRY(data_files_and_setup),
        PT_ENTRY(suspend_and_close_node), PT_ENTRY(wrong_secret),
        PT_ENTRY(two_clients))
