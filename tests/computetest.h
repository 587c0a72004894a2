/* tests/computetest.h — a cluster for the tests of distributed
 * computations' user side (test_cli_compute.c: `picos submit` and `picos
 * jobs`; test_examples_compute.c: the dispycos examples): a real
 * picos-registry and real `picos-node --compute` processes, and programs
 * run to their end with their stdout and stderr.
 *
 * Everything is proctest.h's: children in process groups of their own,
 * killed and reaped on every way out; files under pt_tmpdir(). Ports are
 * bound to 0 and read back from each daemon's startup line. The test
 * program itself joins the registry too (ct_join), so that it can wait
 * for a compute node's task name to be registered (pc_locate with a
 * deadline) instead of guessing when the node is ready.
 */
#ifndef PICOS_TESTS_COMPUTETEST_H
#define PICOS_TESTS_COMPUTETEST_H

#define _GNU_SOURCE
#include <sys/stat.h>

#include "picos/compute.h"
#include "picos/registry.h"

#include "proctest.h"
#include "testutil.h"

/* Failure detection's timing, as netutil.h's (which needs a NET_PEER). */
#if defined(__SANITIZE_THREAD__)
#define NET_HB "0.5"
#define NET_TIMEOUT "10"
#else
#define NET_HB "0.2"
#define NET_TIMEOUT "2"
#endif

/* Waits that must end: generous, so a loaded sanitizer run never trips
 * them; a hang still fails long before ctest's timeout. */
#define CT_WAIT 60.0

static char ct_dir[64];
static char ct_secret[96];

/* The test's directory and the cluster secret, once. */
static void
ct_guard(void)
{
    if (!*ct_dir) {
        CU_ASSERT_FATAL(pt_mkdtemp(ct_dir, sizeof ct_dir, "compute"));
        snprintf(ct_secret, sizeof ct_secret, "%s/secret", ct_dir);
        write_file(ct_secret, "the compute tests' cluster secret\n");
    }
}

/* A program's run. */
typedef struct ct_run {
    int rc;
    char out[65536], err[16384];
} ct_run;

static ct_run R;

/* Run `path` with args (NULL-terminated) in directory `cwd` (NULL: ours)
 * to its end, into R; returns R.rc (-1: could not start, did not end). */
static int
ct_exec(const char *path, const char *cwd, const char *const *args)
{
    char here[512];
    kid *k;

    R.rc = -1;
    R.out[0] = R.err[0] = '\0';
    CU_ASSERT_FATAL(getcwd(here, sizeof here) != NULL);
    if (cwd)
        CU_ASSERT_FATAL(chdir(cwd) == 0);
    k = kid_start(path, args, NULL, NULL);
    if (cwd)
        CU_ASSERT_FATAL(chdir(here) == 0);
    if (!k)
        return -1;
    if (kid_drain(k, R.out, sizeof R.out, R.err, sizeof R.err, CT_WAIT) &&
        kid_wait(k, CT_WAIT))
        R.rc = exit_code(k);
    if (R.rc != 0 && getenv("CT_VERBOSE"))
        fprintf(stderr, "\n%s exit %d\nstdout: %s\nstderr: %s\n", path, R.rc,
                R.out, R.err);
    kid_free(k);
    return R.rc;
}

/* Whether a line of s holds a and b (b may be NULL). */
static bool
ct_line_with(const char *s, const char *a, const char *b)
{
    while (*s) {
        const char *nl = strchr(s, '\n');
        size_t len = nl ? (size_t)(nl - s) : strlen(s);
        char line[2048];

        snprintf(line, sizeof line, "%.*s", (int)len, s);
        if (strstr(line, a) && (!b || strstr(line, b)))
            return true;
        s += len + (nl != NULL);
    }
    return false;
}

/* How many lines of s start with `prefix`. */
static int
ct_lines_starting(const char *s, const char *prefix)
{
    int n = 0;

    for (const char *p = s; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
        n += !strncmp(p, prefix, strlen(prefix));
    return n;
}

/* ---- the cluster ------------------------------------------------------------ */

static kid ct_reg;
static char ct_reg_ep[256];

/* picos-registry on a free port, in a fresh data dir. */
static void
ct_registry_start(void)
{
    static int seq;
    char dir[128], line[1024] = "", err[2048];
    kid_opts o = {.errpath = ct_reg.errpath, .clean_env = true};

    ct_guard();
    snprintf(dir, sizeof dir, "%s/reg-%d", ct_dir, seq++);
    CU_ASSERT_FATAL(mkdir(dir, 0700) == 0);
    snprintf(ct_reg.errpath, sizeof ct_reg.errpath, "%s.err", dir);
    CU_ASSERT_FATAL(
        kid_run(&ct_reg, PICOS_REGISTRY_EXE,
                (const char *[]){"--listen", "tcp://127.0.0.1:0", "--data-dir",
                                 dir, "--secret-file", ct_secret, "--heartbeat",
                                 NET_HB, "--timeout", NET_TIMEOUT, NULL},
                &o));
    if (!read_line(ct_reg.out, line, sizeof line, CT_WAIT) ||
        sscanf(line, "%*s %*s listening on %255s", ct_reg_ep) != 1) {
        fprintf(stderr, "picos-registry did not start: '%s' %s\n", line,
                kid_errtext(&ct_reg, err, sizeof err));
        CU_FAIL_FATAL("picos-registry did not start");
    }
}

/* This program as a member of the registry's cluster. */
static void
ct_join(void)
{
    pc_cluster_opts o;
    pc_err rc;

    memset(&o, 0, sizeof o);
    o.node.workers = 1;
    o.net.name = "compute-test";
    o.net.secret_file = ct_secret;
    o.registries = ct_reg_ep;
    o.join_timeout = CT_WAIT;
    o.status_interval = -1;
    rc = pc_cluster_start(&o);
    if (rc != PC_OK)
        fprintf(stderr, "pc_cluster_start: %s\n", pc_err_name(rc));
    CU_ASSERT_FATAL(rc == PC_OK);
}

#define CT_NODES 2
static kid ct_node[CT_NODES];

/* picos-node NAME --compute --cpus CPUS as ct_node[i], its statuses every
 * 0.2 s, uids of its own; returns when its compute task's name is
 * registered. */
static void
ct_node_start(int i, const char *name, int cpus)
{
    char dir[128], line[2048] = "", err[4096], ncpus[16], task[128], uid[16];
    kid_opts o = {.errpath = ct_node[i].errpath, .clean_env = true};
    pc_ref ref;

    snprintf(dir, sizeof dir, "%s/%s", ct_dir, name);
    CU_ASSERT_FATAL(mkdir(dir, 0700) == 0 || errno == EEXIST);
    snprintf(ct_node[i].errpath, sizeof ct_node[i].errpath, "%s.err", dir);
    snprintf(ncpus, sizeof ncpus, "%d", cpus);
    /* as root, computation k runs as uid base + k, with RLIMIT_NPROC per
     * uid: bases of their own, apart from each other and from the compute
     * nodes of other tests running beside this one */
    snprintf(uid, sizeof uid, "%u",
             5000000u + (unsigned)(getpid() % 100000) * 32u +
                 16u * (unsigned)i);
    CU_ASSERT_FATAL(kid_run(&ct_node[i], PICOS_NODE_EXE,
                            (const char *[]){"--registry",
                                             ct_reg_ep,
                                             "--secret-file",
                                             ct_secret,
                                             "--name",
                                             name,
                                             "--heartbeat",
                                             NET_HB,
                                             "--timeout",
                                             NET_TIMEOUT,
                                             "--status-interval",
                                             "0.2",
                                             "--compute",
                                             "--cpus",
                                             ncpus,
                                             "--data-dir",
                                             dir,
                                             "--compute-uid-base",
                                             uid,
                                             NULL},
                            &o));
    if (!read_line(ct_node[i].out, line, sizeof line, CT_WAIT) ||
        !strstr(line, " listening on ")) {
        kid_wait(&ct_node[i], 1.0);
        fprintf(stderr, "picos-node did not start: '%s' %s\n", line,
                kid_errtext(&ct_node[i], err, sizeof err));
        CU_FAIL_FATAL("picos-node did not start");
    }
    snprintf(task, sizeof task, PC_COMPUTE_NAME_PREFIX "%s", name);
    CU_ASSERT_EQUAL_FATAL(pc_locate(PC_NAME_TASK, task, CT_WAIT, &ref), PC_OK);
}

/* Stop this program's node and every child. */
static void
ct_down(void)
{
    pc_node_stop();
    pc_node_run();
    kids_kill();
}

static bool ct_cluster_is_up;

/* The registry, this program in the cluster and one node of 2 CPUs per
 * name in names (NULL-terminated), once: later calls return at once. */
static inline void
ct_cluster_up(const char *const *names)
{
    if (ct_cluster_is_up)
        return;
    ct_registry_start();
    ct_join();
    for (int i = 0; names[i]; i++)
        ct_node_start(i, names[i], 2);
    ct_cluster_is_up = true;
}

/* The end of what ct_cluster_up() started (none: nothing to do). */
static inline void
ct_cluster_down(void)
{
    if (ct_cluster_is_up)
        ct_down();
    ct_cluster_is_up = false;
}

#endif
