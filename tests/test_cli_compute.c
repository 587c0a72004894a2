/* tests/test_cli_compute.c — `picos submit` and `picos jobs` (apps/picos/
 * submit.c, jobs.c) as real processes against a real picos-registry and a
 * real `picos-node --compute`, running the jobs of tests/compute_lib.c
 * (compute_test.so).
 *
 * The test judges by what a user sees: the exit status, the lines on
 * stdout and stderr, the JSON (parsed with jansson), the files written in
 * the working directory. Usage errors are checked without a cluster
 * (nothing is sent before the command's input is known good, so none is
 * needed); "no compute node" with a registry and no compute node; the
 * rest with one compute node of 2 CPUs. The cluster's pieces are
 * computetest.h's.
 */
#define _GNU_SOURCE
#include <jansson.h>

#include "computetest.h"

#define CLI(...)                                                               \
    ct_exec(PICOS_CLI, NULL, (const char *const[]){__VA_ARGS__, NULL})
#define CLI_IN(dir, ...)                                                       \
    ct_exec(PICOS_CLI, (dir), (const char *const[]){__VA_ARGS__, NULL})
#define REG "--registry", ct_reg_ep, "--secret-file", ct_secret
#define ONE_LINE(what) check_one_line(R.err, "picos: ", (what), __LINE__)

static int ran; /* jobs run on cnode1 so far */

/* The registry and cnode1, once for the tests that need them. */
static void
up(void)
{
    ct_cluster_up((const char *const[]){"cnode1", NULL});
}

/* ---- without a cluster -------------------------------------------------------- */

/* Bad arguments: exit 2, one line, before anything is joined (there is
 * no registry at all here). */
PT_TEST(submit_usage_errors)
static void
submit_usage_errors(void)
{
    char path[256];

    ct_guard();
    CU_ASSERT_EQUAL(CLI("submit", "/no/such/lib.so", "echo"), 2);
    ONE_LINE("library /no/such/lib.so: No such file or directory");
    CU_ASSERT_STRING_EQUAL(R.out, "");
    CU_ASSERT_EQUAL(CLI("submit"), 2);
    ONE_LINE("submit: no LIB given");
    CU_ASSERT_EQUAL(CLI("submit", COMPUTE_TEST_SO), 2);
    ONE_LINE("no FN given");
    CU_ASSERT_EQUAL(
        CLI("submit", COMPUTE_TEST_SO, "echo", "--data", "x", "--lines", "-"),
        2);
    ONE_LINE("--data and --lines");
    CU_ASSERT_EQUAL(CLI("submit", COMPUTE_TEST_SO, "echo", "--in", "a=b"), 2);
    ONE_LINE("--in 'a=b': not NAME=@PATH");
    CU_ASSERT_EQUAL(CLI("submit", COMPUTE_TEST_SO, "echo", "--in", "../x=@/y"),
                    2);
    ONE_LINE("plain file name");
    CU_ASSERT_EQUAL(CLI("submit", COMPUTE_TEST_SO, "echo", "--out", "a/b"), 2);
    ONE_LINE("--out 'a/b': not a plain file name");
    CU_ASSERT_EQUAL(CLI("submit", COMPUTE_TEST_SO, "echo", "--count", "0"), 2);
    ONE_LINE("--count '0'");
    CU_ASSERT_EQUAL(CLI("submit", COMPUTE_TEST_SO, "echo", "--memory", "lots"),
                    2);
    ONE_LINE("--memory 'lots'");
    CU_ASSERT_EQUAL(
        CLI("submit", COMPUTE_TEST_SO, "echo", "--data", "@/no/such/input"), 2);
    ONE_LINE("/no/such/input: No such file or directory");
    CU_ASSERT_EQUAL(CLI("submit", COMPUTE_TEST_SO, "echo", "--frob"), 2);
    ONE_LINE("submit: unknown option '--frob'");
    CU_ASSERT_EQUAL(CLI("submit", COMPUTE_TEST_SO, "echo", "extra"), 2);
    ONE_LINE("unexpected argument 'extra'");
    CU_ASSERT_EQUAL(CLI("submit", "--help"), 0);
    CU_ASSERT_TRUE(
        ct_line_with(R.out, "usage: picos [OPTIONS] submit LIB FN", NULL));
    CU_ASSERT_EQUAL(CLI("jobs", "--interval", "0"), 2);
    ONE_LINE("jobs: --interval '0'");
    CU_ASSERT_EQUAL(CLI("jobs", "--help"), 0);
    CU_ASSERT_TRUE(ct_line_with(R.out, "JOBS/S", NULL));

    /* an output file that exists: refused before anything runs (exit 1) */
    snprintf(path, sizeof path, "%s/out.txt", ct_dir);
    write_file(path, "keep me\n");
    CU_ASSERT_EQUAL(
        CLI_IN(ct_dir, "submit", COMPUTE_TEST_SO, "files", "--out", "out.txt"),
        1);
    ONE_LINE("out.txt exists: not overwritten (--force replaces it)");
    unlink(path);
}

/* ---- a registry, no compute node ------------------------------------------------ */

PT_TEST(no_compute_node_exit_3)
static void
no_compute_node_exit_3(void)
{
    ct_registry_start();
    CU_ASSERT_EQUAL(CLI(REG, "submit", COMPUTE_TEST_SO, "echo", "--data", "x"),
                    3);
    ONE_LINE("no compute node in the cluster");
    CU_ASSERT_STRING_EQUAL(R.out, "");
    CU_ASSERT_EQUAL(CLI(REG, "jobs"), 3);
    ONE_LINE("no compute node in the cluster");
    CU_ASSERT_EQUAL(CLI(REG, "jobs", "--json"), 3);
    CU_ASSERT_STRING_EQUAL(R.out, "[]\n");
    kids_kill();
}

/* ---- one compute node ----------------------------------------------------------- */

/* The text of job N's line "job N ok cnode1/wK S s: TEXT" in R.out, or
 * NULL. */
static const char *
job_text(int n, char *buf, size_t size)
{
    char prefix[32];
    const char *p = R.out;

    snprintf(prefix, sizeof prefix, "job %d ok cnode1/w", n);
    for (; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
        if (!strncmp(p, prefix, strlen(prefix))) {
            const char *c = strstr(p, " s: "), *nl = strchr(p, '\n');
            if (!c || (nl && c > nl))
                return NULL;
            c += 4;
            snprintf(buf, size, "%.*s", (int)(nl ? nl - c : (long)strlen(c)),
                     c);
            return buf;
        }
    return NULL;
}

/* One job: a text result, a binary one (in hex), --count. */
PT_TEST(submit_results)
static void
submit_results(void)
{
    char path[256], text[300], buf[256];
    long x = 7;
    FILE *f;

    up();
    CU_ASSERT_EQUAL(
        CLI(REG, "submit", COMPUTE_TEST_SO, "echo", "--data", "hello"), 0);
    CU_ASSERT_STRING_EQUAL(R.err, "");
    CU_ASSERT_STRING_EQUAL(job_text(1, buf, sizeof buf), "hello");
    ran += 1;

    /* 7 squared, a little-endian long: binary, printed in hex */
    snprintf(path, sizeof path, "%s/seven", ct_dir);
    CU_ASSERT_FATAL((f = fopen(path, "wb")) != NULL);
    CU_ASSERT(fwrite(&x, sizeof x, 1, f) == 1);
    fclose(f);
    snprintf(text, sizeof text, "@%s", path);
    CU_ASSERT_EQUAL(
        CLI(REG, "submit", COMPUTE_TEST_SO, "square", "--data", text), 0);
    CU_ASSERT_STRING_EQUAL(job_text(1, buf, sizeof buf), "3100000000000000");
    ran += 1;

    /* the same input 3 times */
    CU_ASSERT_EQUAL(CLI(REG, "submit", COMPUTE_TEST_SO, "echo", "--data", "c",
                        "--count", "3"),
                    0);
    CU_ASSERT_EQUAL(ct_lines_starting(R.out, "job "), 3);
    for (int i = 1; i <= 3; i++)
        CU_ASSERT_STRING_EQUAL(job_text(i, buf, sizeof buf), "c");
    ran += 3;
}

/* --lines: 50 jobs, each line's echo under its line's number; then the
 * same as JSON lines. */
PT_TEST(submit_lines_50)
static void
submit_lines_50(void)
{
    char path[256], text[1024], buf[256];
    json_error_t je;
    json_t *e;
    int ok = 0;

    up();
    snprintf(path, sizeof path, "%s/lines", ct_dir);
    text[0] = '\0';
    for (int i = 1; i <= 50; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "line-%d\n",
                 i);
    write_file(path, text);
    CU_ASSERT_EQUAL(
        CLI(REG, "submit", COMPUTE_TEST_SO, "echo", "--lines", path), 0);
    CU_ASSERT_STRING_EQUAL(R.err, "");
    CU_ASSERT_EQUAL(ct_lines_starting(R.out, "job "), 50);
    for (int i = 1; i <= 50; i++) {
        char want[32];
        const char *t = job_text(i, buf, sizeof buf);
        snprintf(want, sizeof want, "line-%d", i);
        ok += t && !strcmp(t, want);
    }
    CU_ASSERT_EQUAL(ok, 50);
    ran += 50;

    CU_ASSERT_EQUAL(
        CLI(REG, "submit", COMPUTE_TEST_SO, "echo", "--lines", path, "--json"),
        0);
    CU_ASSERT_EQUAL(ct_lines_starting(R.out, "{"), 50);
    ok = 0;
    for (const char *p = R.out; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
        if ((e = json_loadb(p, strcspn(p, "\n"), 0, &je))) {
            const char *res = json_string_value(json_object_get(e, "result"));
            const char *why = json_string_value(json_object_get(e, "why"));
            const char *node = json_string_value(json_object_get(e, "node"));
            char want[32];
            snprintf(want, sizeof want, "line-%d",
                     (int)json_integer_value(json_object_get(e, "job")));
            ok += json_is_true(json_object_get(e, "ok")) && why &&
                  !strcmp(why, "ok") && node && !strcmp(node, "cnode1") &&
                  res && !strcmp(res, want);
            json_decref(e);
        }
    CU_ASSERT_EQUAL(ok, 50);
    ran += 50;
}

/* A job that fails: exit 1 and its one line; an unknown function and a
 * library that is not a computation: exit 2. */
PT_TEST(submit_failures)
static void
submit_failures(void)
{
    up();
    CU_ASSERT_EQUAL(
        CLI(REG, "submit", COMPUTE_TEST_SO, "fail", "--data", "oops"), 1);
    ONE_LINE("job 1 failed cnode1/w");
    CU_ASSERT_TRUE(ct_line_with(R.err, "oops", NULL));
    CU_ASSERT_STRING_EQUAL(R.out, "");
    ran += 1;

    CU_ASSERT_EQUAL(CLI(REG, "submit", COMPUTE_TEST_SO, "nosuchfn"), 2);
    ONE_LINE("no job function \"nosuchfn\"");
    CU_ASSERT_EQUAL(CLI(REG, "submit", ct_secret, "echo"), 2);
    ONE_LINE("is not a computation");
}

/* --in / --out: a file into the job, the one it wrote back into the
 * working directory (compute_test.so's "files" writes in.txt reversed as
 * out.txt); not over an existing one unless --force. */
PT_TEST(submit_out_file)
static void
submit_out_file(void)
{
    char dir[160], in[200], path[200], arg[220], got[64] = "";
    FILE *f;

    up();
    snprintf(dir, sizeof dir, "%s/outdir", ct_dir);
    CU_ASSERT_FATAL(mkdir(dir, 0700) == 0);
    snprintf(in, sizeof in, "%s/in.txt", ct_dir);
    write_file(in, "abc");
    snprintf(arg, sizeof arg, "in.txt=@%s", in);
    snprintf(path, sizeof path, "%s/out.txt", dir);
    CU_ASSERT_EQUAL(CLI_IN(dir, REG, "submit", COMPUTE_TEST_SO, "files", "--in",
                           arg, "--out", "out.txt"),
                    0);
    CU_ASSERT_TRUE(ct_line_with(R.out, "job 1 wrote out.txt (3 bytes)", NULL));
    CU_ASSERT_FATAL((f = fopen(path, "r")) != NULL);
    CU_ASSERT(fgets(got, sizeof got, f) != NULL);
    fclose(f);
    CU_ASSERT_STRING_EQUAL(got, "cba");
    ran += 1;
    CU_ASSERT_EQUAL(CLI_IN(dir, REG, "submit", COMPUTE_TEST_SO, "files", "--in",
                           arg, "--out", "out.txt"),
                    1);
    ONE_LINE("out.txt exists");
    CU_ASSERT_EQUAL(CLI_IN(dir, REG, "submit", COMPUTE_TEST_SO, "files", "--in",
                           arg, "--out", "out.txt", "--force"),
                    0);
    ran += 1;
    /* several jobs: out.txt.K each */
    CU_ASSERT_EQUAL(CLI_IN(dir, REG, "submit", COMPUTE_TEST_SO, "files", "--in",
                           arg, "--out", "out.txt", "--count", "2"),
                    0);
    snprintf(path, sizeof path, "%s/out.txt.2", dir);
    CU_ASSERT_EQUAL(access(path, R_OK), 0);
    ran += 2;
}

/* picos jobs: the node, with at least the jobs run so far done (its
 * status comes every 0.2 s: ask until it shows them). */
PT_TEST(jobs_shows_the_node)
static void
jobs_shows_the_node(void)
{
    json_error_t je;
    json_t *j, *e;

    up();
    for (double end = pc_now() + CT_WAIT;;) {
        json_int_t done;
        CU_ASSERT_EQUAL_FATAL(CLI(REG, "jobs", "--json"), 0);
        j = json_loads(R.out, 0, &je);
        CU_ASSERT_FATAL(json_is_array(j));
        CU_ASSERT_EQUAL(json_array_size(j), 1);
        e = json_array_get(j, 0);
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(e, "name")),
                               "cnode1");
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(e, "cpus")), 2);
        CU_ASSERT_TRUE(json_is_true(json_object_get(e, "up")));
        done = json_integer_value(json_object_get(e, "jobs_done"));
        if (done >= ran) {
            CU_ASSERT(json_integer_value(json_object_get(e, "jobs_failed")) >=
                      (ran > 0));
            json_decref(j);
            break;
        }
        json_decref(j);
        CU_ASSERT_FATAL(pc_now() < end);
    }
    CU_ASSERT_EQUAL(CLI(REG, "jobs"), 0);
    CU_ASSERT_TRUE(ct_line_with(R.out, "NAME", "JOBS/S"));
    CU_ASSERT_TRUE(ct_line_with(R.out, "cnode1", " up "));
    CU_ASSERT_EQUAL(CLI(REG, "jobs", "nosuch*"), 3);
    ONE_LINE("no compute node matching 'nosuch*'");
}

/* The cluster's end. */
PT_TEST(zz_down)
static void
zz_down(void)
{
    ct_cluster_down();
}

PT_MAIN("cli_compute", PT_ENTRY(submit_usage_errors),
        PT_ENTRY(no_compute_node_exit_3), PT_ENTRY(submit_results),
        PT_ENTRY(submit_lines_50), PT_ENTRY(submit_failures),
        PT_ENTRY(submit_out_file), PT_ENTRY(jobs_shows_the_node),
        PT_ENTRY(zz_down))
