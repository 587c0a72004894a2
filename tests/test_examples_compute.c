/* tests/test_examples_compute.c — the dispycos examples
 * (apps/examples/dispycos_*.c and their computations in
 * apps/examples/compute/) as real processes: a picos-registry, two
 * `picos-node --compute` of 2 CPUs each, and each example client run to its
 * end, its output checked for what the example is there to show.
 * The cluster's pieces are computetest.h's.
 */
#define _GNU_SOURCE
#include "computetest.h"

/* Run an example against the cluster; its output on stderr when it did
 * not exit 0 (every example here must). */
#define EX(path, ...)                                                          \
    ex_run((path), (const char *const[]){                                      \
                       "--registry", ct_reg_ep, "--secret-file", ct_secret,    \
                       "--timeout", "30", __VA_ARGS__, NULL})

static int
ex_run(const char *path, const char *const *args)
{
    if (ct_exec(path, NULL, args) != 0)
        fprintf(stderr, "\n%s exit %d\nstdout: %s\nstderr: %s\n", path, R.rc,
                R.out, R.err);
    return R.rc;
}

/* The cluster, once for all the tests (each example cleans up after
 * itself: its computation closes with it). */
static void
up(void)
{
    ct_cluster_up((const char *const[]){"exnode1", "exnode2", NULL});
}

/* client2: every job's result, where it ran, and the summary. */
PT_TEST(client2_results)
static void
client2_results(void)
{
    up();
    CU_ASSERT_EQUAL(EX(EX_CLIENT2, "-n", "12"), 0);
    CU_ASSERT_EQUAL(ct_lines_starting(R.out, "job "), 12);
    /* job 1 counts the primes below 100000: 9592 */
    CU_ASSERT_TRUE(ct_line_with(R.out, "100000: 9592 primes", NULL));
    CU_ASSERT_TRUE(ct_line_with(R.out, "12 jobs: 12 ok, 0 failed, on ", NULL));
    CU_ASSERT_STRING_EQUAL(R.err, "");
}

/* client4: each job's out.txt came back and was checked. */
PT_TEST(client4_files)
static void
client4_files(void)
{
    up();
    CU_ASSERT_EQUAL(EX(EX_CLIENT4, "-n", "6"), 0);
    CU_ASSERT_EQUAL(ct_lines_starting(R.out, "job "), 6);
    for (int i = 1; i <= 6; i++) {
        char want[32];
        snprintf(want, sizeof want, "job %d on ", i);
        CU_ASSERT_TRUE(ct_line_with(R.out, want, "3 lines; out.txt"));
    }
    CU_ASSERT_TRUE(ct_line_with(R.out, "6 jobs: 6 files checked ok", NULL));
}

/* client9: on each of the two nodes, the data was loaded once, by the
 * setup process, and every worker saw the same data. */
PT_TEST(client9_node_setup)
static void
client9_node_setup(void)
{
    up();
    CU_ASSERT_EQUAL(EX(EX_CLIENT9, "--nodes", "2"), 0);
    CU_ASSERT_TRUE(ct_line_with(R.out,
                                "node exnode1: 2 workers, data loaded "
                                "once, by setup process ",
                                NULL));
    CU_ASSERT_TRUE(ct_line_with(R.out,
                                "node exnode2: 2 workers, data loaded "
                                "once, by setup process ",
                                NULL));
    CU_ASSERT_TRUE(
        ct_line_with(R.out, "same data on all 4 workers of 2 nodes", NULL));
    /* 3 jobs per worker */
    CU_ASSERT_EQUAL(ct_lines_starting(R.out, "job "), 12);
}

/* live analytics: signals streamed back while the jobs run; the saved
 * series is what was sent. */
PT_TEST(live_analytics_signals)
static void
live_analytics_signals(void)
{
    up();
    CU_ASSERT_EQUAL(EX(EX_LIVE, "-n", "60"), 0);
    CU_ASSERT_TRUE(ct_line_with(R.out, "signal: up at value ", NULL));
    CU_ASSERT_TRUE(ct_line_with(R.out, "signal: down at value ", NULL));
    CU_ASSERT_TRUE(ct_line_with(R.out, "trend: 60 values, ", "signals"));
    CU_ASSERT_TRUE(ct_line_with(R.out, "save: 60 values saved; series.txt",
                                "is the series sent"));
}

/* Not an example's own test: the cluster's end. */
PT_TEST(zz_down)
static void
zz_down(void)
{
    ct_cluster_down();
}

PT_MAIN("examples_compute", PT_ENTRY(client2_results), PT_ENTRY(client4_files),
        PT_ENTRY(client9_node_setup), PT_ENTRY(live_analytics_signals),
        PT_ENTRY(zz_down))
