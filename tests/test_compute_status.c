/* tests/test_compute_status.c — what operators see of computations
 * (docs/monitoring.md): NodeStatus.compute from the node's compute
 * counters (services/status.c), the registry's JSON API and /metrics over
 * it (services/api.c, registry/statusdb.c), and the dashboard's node-wide
 * suspend action reaching pc_compute_node_suspend() (registry/
 * agent_status.c).
 *
 * A real picos-registry with --http 127.0.0.1:0; this program is the
 * member node whose status is looked at. Its compute counters are set
 * directly in pc__compute_stats (services/compute_int.h), the way the
 * compute server keeps them, and its suspend hook is this program's: so
 * every figure the API shows is one the test chose. Nothing is waited for
 * by sleeping: each check polls the API until the figure shows or the
 * deadline passes. /metrics is read with python3-prometheus-client's text
 * parser (skipped without it).
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <jansson.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include "picos/compute.h"
#include "picos/picos.h"
#include "picos/registry.h"

#include "compute_int.h"
#include "httpclient.h"
#include "proctest.h"
#include "testutil.h"

#define WAIT 20.0
#define NODE_NAME "cstatus-node"
#define TOKEN "0123456789abcdef-compute-token"
#define AUTH "Authorization: Bearer " TOKEN "\r\n"

static char tmpdir[64], secret[96], tokfile[96], me[17], reg_ep[256];
static kid *reg;
static uint16_t port;

/* ---- the cluster: a registry with --http, this program a member ---------- */

static void
cluster_up(void)
{
    char dir[140], errpath[160], line[1024], ep[256] = "";
    const char *args[] = {"--listen",
                          "tcp://127.0.0.1:0",
                          "--data-dir",
                          dir,
                          "--secret-file",
                          secret,
                          "--http",
                          "127.0.0.1:0",
                          "--http-token-file",
                          tokfile,
                          NULL};
    pc_cluster_opts o;
    pc_err rc;

    if (reg)
        return;
    CU_ASSERT_FATAL(pt_mkdtemp(tmpdir, sizeof tmpdir, "cstatus"));
    snprintf(secret, sizeof secret, "%s/secret", tmpdir);
    snprintf(tokfile, sizeof tokfile, "%s/token", tmpdir);
    write_file(secret, "the compute status test's cluster secret\n");
    write_file(tokfile, TOKEN "\n");
    chmod(tokfile, 0600);
    snprintf(dir, sizeof dir, "%s/reg", tmpdir);
    CU_ASSERT_FATAL(mkdir(dir, 0700) == 0);
    snprintf(errpath, sizeof errpath, "%s.err", dir);
    reg = kid_start(REGISTRY, args, NULL, errpath);
    CU_ASSERT_FATAL(reg != NULL);
    if (read_line(reg->out, line, sizeof line, WAIT)) {
        const char *t = strstr(line, "tcp://"), *hh = strstr(line, ", http");
        const char *h = hh ? strstr(hh, "127.0.0.1:") : NULL;
        if (t)
            snprintf(ep, sizeof ep, "%.*s", (int)strcspn(t, " "), t);
        if (h)
            port = (uint16_t)atoi(h + strlen("127.0.0.1:"));
    }
    if (!port || !*ep) {
        char err[2048];
        fprintf(stderr, "picos-registry did not say where it listens: %s\n",
                kid_errtext(reg, err, sizeof err));
    }
    CU_ASSERT_FATAL(port != 0 && *ep);
    snprintf(reg_ep, sizeof reg_ep, "%s", ep);
    memset(&o, 0, sizeof o);
    o.node.workers = 2;
    o.net.name = NODE_NAME;
    o.net.secret_file = secret;
    o.registries = ep;
    o.join_timeout = WAIT;
    o.status_interval = 0.2;
    o.status_dir = tmpdir; /* its disk figures are that directory's */
    rc = pc_cluster_start(&o);
    if (rc != PC_OK)
        fprintf(stderr, "pc_cluster_start: %s\n", pc_err_name(rc));
    CU_ASSERT_FATAL(rc == PC_OK);
    snprintf(me, sizeof me, "%016" PRIx64, pc_node_id());
}

/* ---- reading the API ---------------------------------------------------- */

/* This node's NodeStatus as the API shows it (a new reference), once it
 * has sent one (sampledUs set); NULL when none came within WAIT. */
static json_t *
my_status(void)
{
    char path[64];
    double end = pc_now() + WAIT;

    snprintf(path, sizeof path, "/api/v1/nodes/%s", me);
    while (pc_now() < end) {
        json_t *j = hc_get_json(port, path, WAIT), *s;
        s = json_object_get(json_object_get(j, "node"), "status");
        if (s && json_object_get(s, "sampledUs")) {
            json_incref(s);
            json_decref(j);
            return s;
        }
        json_decref(j);
        poll(NULL, 0, 50);
    }
    return NULL;
}

/* A field of an object as a number: JSON numbers and the proto3 mapping's
 * 64-bit strings alike; 0 when absent (proto3 leaves defaults out). */
static double
field(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);

    if (json_is_string(v))
        return strtod(json_string_value(v), NULL);
    return json_is_number(v) ? json_number_value(v) : 0;
}

/* Assert that o's fields keys[i] (as field() reads them) are want[i],
 * naming on stderr each one that is not. */
static void
fields_are(const json_t *o, const char *const *keys, const double *want,
           size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double got = field(o, keys[i]);
        if (got != want[i])
            fprintf(stderr, "compute.%s: %g, want %g\n", keys[i], got, want[i]);
        CU_ASSERT_EQUAL(got, want[i]);
    }
}

/* Poll this node's status until its compute.jobsDone is `done` (and
 * compute present); the status (a new reference), or NULL. */
static json_t *
status_with_done(uint64_t done)
{
    double end = pc_now() + WAIT;

    while (pc_now() < end) {
        json_t *s = my_status(), *c = json_object_get(s, "compute");
        if (c && field(c, "jobsDone") == (double)done)
            return s;
        json_decref(s);
        poll(NULL, 0, 50);
    }
    return NULL;
}

/* Run python3-prometheus-client's parser over /metrics and check that the
 * sample `name` with label node = this node has value `want` (want < 0:
 * that no such sample exists). 77: the parser is not installed. */
static int
metric_check(const char *const *names, const double *want, size_t n)
{
    static const char py[] =
        "import sys\n"
        "try:\n"
        "    from prometheus_client.parser import "
        "text_string_to_metric_families as parse\n"
        "except ImportError:\n"
        "    sys.exit(77)\n"
        "got = {}\n"
        "for f in parse(open(sys.argv[1]).read()):\n"
        "    for s in f.samples:\n"
        "        got[(s.name, s.labels.get('node'))] = s.value\n"
        "node = sys.argv[2]\n"
        "for a in sys.argv[3:]:\n"
        "    name, want = a.split('=')\n"
        "    v = got.get((name, node))\n"
        "    if float(want) < 0:\n"
        "        assert v is None, (name, v)\n"
        "    else:\n"
        "        assert v == float(want), (name, v, want)\n";
    char *body = NULL, path[160], pyf[160], cmd[2048];
    size_t off;
    int st, rc;

    st = hc_request(port, "GET", "/metrics", NULL, NULL, &body, WAIT);
    CU_ASSERT_EQUAL_FATAL(st, 200);
    CU_ASSERT_PTR_NOT_NULL_FATAL(body);
    snprintf(path, sizeof path, "%s/metrics.txt", tmpdir);
    write_file(path, body);
    free(body);
    snprintf(pyf, sizeof pyf, "%s/check.py", tmpdir);
    write_file(pyf, py);
    off = (size_t)snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s %s", pyf,
                           path, me);
    for (size_t i = 0; i < n && off < sizeof cmd; i++)
        off += (size_t)snprintf(cmd + off, sizeof cmd - off, " %s=%.17g",
                                names[i], want[i]);
    rc = system(cmd);
    if (WIFEXITED(rc) && WEXITSTATUS(rc) == 77)
        return 77;
    if (!WIFEXITED(rc) || WEXITSTATUS(rc) != 0)
        fprintf(stderr, "the metrics check failed on %s\n", path);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 1;
}

static void
counters_set(uint32_t cpus, uint32_t reserved, uint32_t sessions,
             uint32_t workers, uint32_t busy, uint32_t queued, uint64_t done,
             uint64_t failed, uint64_t lost)
{
    pc__compute_counters *c = &pc__compute_stats;

    atomic_store(&c->cpus, cpus);
    atomic_store(&c->cpus_reserved, reserved);
    atomic_store(&c->sessions, sessions);
    atomic_store(&c->workers, workers);
    atomic_store(&c->workers_busy, busy);
    atomic_store(&c->jobs_queued, queued);
    atomic_store(&c->jobs_done, done);
    atomic_store(&c->jobs_failed, failed);
    atomic_store(&c->workers_lost, lost);
}

/* ---- the tests ------------------------------------------------------------- */

/* A node that takes no computations: no "compute" in its status, no
 * picos_compute_* sample for it, no compute node in the cluster's sum. */
PT_TEST(absent_without_compute)
static void
absent_without_compute(void)
{
    json_t *s, *j;
    int rc;

    cluster_up();
    s = my_status();
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_PTR_NULL(json_object_get(s, "compute"));
    {
        const char *d = json_string_value(json_object_get(s, "dataDir"));
        CU_ASSERT_STRING_EQUAL(d ? d : "(none)", tmpdir);
    }
    json_decref(s);
    j = hc_get_json(port, "/api/v1/cluster", WAIT);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_TRUE(json_is_object(json_object_get(j, "compute")));
    CU_ASSERT_EQUAL(field(json_object_get(j, "compute"), "nodes"), 0);
    json_decref(j);
    rc = metric_check(
        (const char *[]){"picos_compute_cpus", "picos_compute_jobs_done_total"},
        (const double[]){-1, -1}, 2);
    if (rc == 77)
        printf("\n    SKIP (metrics): python3-prometheus-client is missing\n");
    else
        CU_ASSERT_EQUAL(rc, 0);
}

/* The counters set here reach /api/v1/nodes/{id}, /api/v1/cluster's
 * compute sum and /metrics, each figure as set. */
PT_TEST(counters_reach_api)
static void
counters_reach_api(void)
{
    static const char *const names[] = {"picos_compute_cpus",
                                        "picos_compute_cpus_reserved",
                                        "picos_compute_sessions",
                                        "picos_compute_workers",
                                        "picos_compute_workers_busy",
                                        "picos_compute_jobs_queued",
                                        "picos_compute_suspended",
                                        "picos_compute_jobs_done_total",
                                        "picos_compute_jobs_failed_total",
                                        "picos_compute_workers_lost_total"};
    static const double want[] = {4, 2, 1, 3, 2, 5, 0, 1234, 7, 3};
    /* the node's status, and the cluster's sum of it */
    static const char *const node_keys[] = {
        "cpus",        "cpusReserved", "sessions",   "workers",
        "workersBusy", "jobsQueued",   "jobsFailed", "workersLost"};
    static const double node_want[] = {4, 2, 1, 3, 2, 5, 7, 3};
    static const char *const sum_keys[] = {
        "nodes",       "cpus",       "cpusReserved", "workers",
        "workersBusy", "jobsQueued", "jobsDone",     "jobsFailed"};
    static const double sum_want[] = {1, 4, 2, 3, 2, 5, 1234, 7};
    json_t *s, *c, *j;
    int rc;

    cluster_up();
    counters_set(4, 2, 1, 3, 2, 5, 1234, 7, 3);
    atomic_store(&pc__compute_stats.enabled, true);
    s = status_with_done(1234);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    c = json_object_get(s, "compute");
    fields_are(c, node_keys, node_want, sizeof node_want / sizeof node_want[0]);
    /* proto3 JSON: 64-bit counters as strings, false left out */
    CU_ASSERT_TRUE(json_is_string(json_object_get(c, "jobsDone")));
    CU_ASSERT_PTR_NULL(json_object_get(c, "suspended"));
    json_decref(s);

    j = hc_get_json(port, "/api/v1/cluster", WAIT);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    c = json_object_get(j, "compute");
    fields_are(c, sum_keys, sum_want, sizeof sum_want / sizeof sum_want[0]);
    CU_ASSERT_TRUE(json_is_number(json_object_get(c, "jobsPerS")));
    json_decref(j);

    rc = metric_check(names, want, sizeof want / sizeof want[0]);
    if (rc == 77)
        printf("\n    SKIP (metrics): python3-prometheus-client is missing\n");
    else
        CU_ASSERT_EQUAL(rc, 0);
}

/* jobs done per second: jobs end (the counter grows) while the test
 * watches; the node's jobs_done_rate series and the cluster's jobsPerS
 * show a rate above 0. */
PT_TEST(jobs_rate)
static void
jobs_rate(void)
{
    char path[160];
    double end, rate = 0, sum = 0;
    uint64_t done = 5000;

    cluster_up();
    atomic_store(&pc__compute_stats.enabled, true);
    atomic_store(&pc__compute_stats.jobs_done, done);
    {
        json_t *s = status_with_done(done);
        CU_ASSERT_PTR_NOT_NULL(s);
        json_decref(s);
    }
    snprintf(path, sizeof path,
             "/api/v1/series?node=%s&what=jobs_done_rate&since=0", me);
    end = pc_now() + WAIT;
    while (pc_now() < end && (rate <= 0 || sum <= 0)) {
        json_t *j, *v;
        done += 100;
        atomic_store(&pc__compute_stats.jobs_done, done);
        j = hc_get_json(port, path, WAIT);
        v = json_object_get(j, "v");
        if (json_array_size(v))
            rate = json_number_value(json_array_get(v, json_array_size(v) - 1));
        json_decref(j);
        j = hc_get_json(port, "/api/v1/cluster", WAIT);
        sum = field(json_object_get(j, "compute"), "jobsPerS");
        json_decref(j);
        poll(NULL, 0, 50);
    }
    CU_ASSERT(rate > 0);
    CU_ASSERT(sum > 0);
    snprintf(path, sizeof path,
             "/api/v1/series?node=%s&what=jobs_failed_rate&since=0", me);
    CU_ASSERT_EQUAL(hc_request(port, "GET", path, NULL, NULL, NULL, WAIT), 200);
}

/* The suspend hook of the compute server, as this test's: records each
 * call and shows it in the counters. */
static atomic_int suspend_calls;
static atomic_bool suspend_last;

static pc_err
suspend_hook(bool on)
{
    atomic_store(&suspend_last, on);
    atomic_store(&pc__compute_stats.suspended, on);
    atomic_fetch_add(&suspend_calls, 1);
    return PC_OK;
}

/* Poll until the hook was called `calls` times in all. */
static bool
hook_called(int calls)
{
    double end = pc_now() + WAIT;

    while (pc_now() < end && atomic_load(&suspend_calls) < calls)
        poll(NULL, 0, 10);
    return atomic_load(&suspend_calls) == calls;
}

/* Poll until this node's status says compute.suspended == on. */
static bool
shows_suspended(bool on)
{
    double end = pc_now() + WAIT;

    while (pc_now() < end) {
        json_t *s = my_status();
        bool is = json_is_true(
            json_object_get(json_object_get(s, "compute"), "suspended"));
        bool has = json_object_get(s, "compute") != NULL;
        json_decref(s);
        if (has && is == on)
            return true;
        poll(NULL, 0, 50);
    }
    return false;
}

/* The dashboard's node-wide suspend/resume (ServiceControl with service
 * "") suspends and resumes the node's computations; a one-service suspend
 * does not touch them (it was sent first: the agent takes its messages in
 * order, so when the node-wide one has reached the hook, the other one had
 * its turn before). */
PT_TEST(suspend_action)
static void
suspend_action(void)
{
    char body[160], one[200];
    int rc;

    cluster_up();
    /* the hook before `enabled`, as compute_node.c does: a reader that
     * sees enabled sees the hook */
    pc__compute_stats.suspend = suspend_hook;
    atomic_store(&pc__compute_stats.enabled, true);
    snprintf(body, sizeof body, "{\"node\": \"%s\"}", me);
    snprintf(one, sizeof one, "{\"node\": \"%s\", \"service\": \"no.such\"}",
             me);
    CU_ASSERT_EQUAL(hc_request(port, "POST", "/api/v1/actions/suspend", AUTH,
                               one, NULL, WAIT),
                    200);
    CU_ASSERT_EQUAL(hc_request(port, "POST", "/api/v1/actions/suspend", AUTH,
                               body, NULL, WAIT),
                    200);
    CU_ASSERT_TRUE(hook_called(1));
    CU_ASSERT_TRUE(atomic_load(&suspend_last));
    CU_ASSERT_TRUE(shows_suspended(true));
    rc = metric_check((const char *[]){"picos_compute_suspended"},
                      (const double[]){1}, 1);
    CU_ASSERT(rc == 0 || rc == 77);

    CU_ASSERT_EQUAL(hc_request(port, "POST", "/api/v1/actions/resume", AUTH,
                               one, NULL, WAIT),
                    200);
    CU_ASSERT_EQUAL(hc_request(port, "POST", "/api/v1/actions/resume", AUTH,
                               body, NULL, WAIT),
                    200);
    CU_ASSERT_TRUE(hook_called(2));
    CU_ASSERT_FALSE(atomic_load(&suspend_last));
    CU_ASSERT_TRUE(shows_suspended(false));
    atomic_store(&pc__compute_stats.enabled, false);
    pc__compute_stats.suspend = NULL;
}

#ifdef COMPUTE_LIB
/* The entry of node `name` in /api/v1/nodes (a new reference) once its
 * status has compute.jobsDone >= done; NULL when not within WAIT. */
static json_t *
node_done(const char *name, double done)
{
    double end = pc_now() + WAIT;

    while (pc_now() < end) {
        json_t *j = hc_get_json(port, "/api/v1/nodes", WAIT), *e;
        size_t i;
        json_array_foreach(json_object_get(j, "nodes"), i, e)
        {
            json_t *s = json_object_get(e, "status");
            const char *n = json_string_value(json_object_get(s, "name"));
            if (n && !strcmp(n, name) &&
                field(json_object_get(s, "compute"), "jobsDone") >= done) {
                json_incref(s);
                json_decref(j);
                return s;
            }
        }
        json_decref(j);
        poll(NULL, 0, 50);
    }
    return NULL;
}

/* A real compute node (picos-node --compute --cpus 1) runs JOBS jobs of
 * this program's computation: its status, the cluster's sum and /metrics
 * count them. */
PT_TEST(real_compute_run)
static void
real_compute_run(void)
{
    enum { JOBS = 10 };
    static const char *const only[] = {"cstatus-compute", NULL};
    char ddir[160], errpath[160], line[1024], me2[17];
    pc_compute_opts co = {.library = COMPUTE_LIB, .nodes = only, .cpus = 1};
    pc_job_spec j[JOBS];
    pc_compute *c = NULL;
    json_t *s, *cl;
    kid *node;
    pc_err rc;
    int mrc;

    cluster_up();
    snprintf(ddir, sizeof ddir, "%s/cnode", tmpdir);
    CU_ASSERT_FATAL(mkdir(ddir, 0700) == 0);
    snprintf(errpath, sizeof errpath, "%s/cnode.err", tmpdir);
    {
        /* as root, computation k runs as uid base + k with RLIMIT_NPROC
         * per uid: a base of its own, apart from other nodes of the
         * machine (other tests running beside this one) */
        char ep[256], uid[16];
        snprintf(ep, sizeof ep, "%s", reg_ep);
        snprintf(uid, sizeof uid, "%u",
                 3000000u + (unsigned)(getpid() % 100000) * 16u);
        node = kid_start(
            NODE_BIN,
            (const char *[]){"--registry", ep, "--secret-file", secret,
                             "--name", "cstatus-compute", "--status-interval",
                             "0.2", "--compute", "--cpus", "1", "--data-dir",
                             ddir, "--compute-uid-base", uid, NULL},
            NULL, errpath);
    }
    CU_ASSERT_FATAL(node != NULL);
    if (!read_line(node->out, line, sizeof line, WAIT)) {
        char err[2048];
        fprintf(stderr, "picos-node --compute did not start: %s\n",
                kid_errtext(node, err, sizeof err));
        CU_FAIL_FATAL("no startup line");
    }
    rc = pc_compute_open(&co, WAIT, &c);
    if (rc != PC_OK)
        fprintf(stderr, "pc_compute_open: %s: %s\n", pc_err_name(rc),
                pc_compute_error(NULL));
    CU_ASSERT_EQUAL_FATAL(rc, PC_OK);
    for (int i = 0; i < JOBS; i++)
        j[i] = (pc_job_spec){.fn = "echo", .input = "x", .len = 1};
    CU_ASSERT_EQUAL(pc_compute_submit(c, j, JOBS, NULL), PC_OK);
    for (int i = 0; i < JOBS; i++) {
        pc_job_result *r = NULL;
        CU_ASSERT_EQUAL_FATAL(pc_compute_wait_any(c, WAIT, &r), PC_OK);
        CU_ASSERT_EQUAL(r->rc, PC_OK);
        pc_job_result_free(&r);
    }
    s = node_done("cstatus-compute", JOBS);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(field(json_object_get(s, "compute"), "jobsDone"), JOBS);
    CU_ASSERT_EQUAL(field(json_object_get(s, "compute"), "jobsFailed"), 0);
    CU_ASSERT_EQUAL(field(json_object_get(s, "compute"), "cpus"), 1);
    snprintf(me2, sizeof me2, "%s",
             json_string_value(json_object_get(s, "node")));
    json_decref(s);
    CU_ASSERT_EQUAL(pc_compute_close(&c, WAIT), PC_OK);
    cl = hc_get_json(port, "/api/v1/cluster", WAIT);
    CU_ASSERT(field(json_object_get(cl, "compute"), "jobsDone") >= JOBS);
    CU_ASSERT(field(json_object_get(cl, "compute"), "nodes") >= 1);
    json_decref(cl);
    {
        char keep[17];
        memcpy(keep, me, sizeof keep);
        memcpy(me, me2, sizeof me); /* metric_check looks at node `me` */
        mrc = metric_check((const char *[]){"picos_compute_jobs_done_total",
                                            "picos_compute_cpus"},
                           (const double[]){JOBS, 1}, 2);
        memcpy(me, keep, sizeof keep);
    }
    CU_ASSERT(mrc == 0 || mrc == 77);
    kid_free(node);
}
#endif

/* The node's end, last. */
PT_TEST(cluster_down)
static void
cluster_down(void)
{
    if (!reg)
        return;
    pc_node_stop();
    CU_ASSERT_EQUAL(pc_node_run(), PC_OK);
    kids_kill();
    reg = NULL;
}

#ifdef COMPUTE_LIB
#define REAL_RUN PT_ENTRY(real_compute_run),
#else
#define REAL_RUN
#endif

PT_MAIN("compute_status", PT_ENTRY(absent_without_compute),
        PT_ENTRY(counters_reach_api), PT_ENTRY(jobs_rate),
        PT_ENTRY(suspend_action), REAL_RUN PT_ENTRY(cluster_down))
