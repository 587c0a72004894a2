/* tests/test_cli.c — the `picos` CLI (apps/picos/) run as a real process
 * against a real picos-registry.
 *
 * The test judges the CLI by what a user sees: exit status, stdout,
 * stderr. For the commands that need a cluster, each test starts
 * PICOS_REGISTRY_EXE on tcp://127.0.0.1:0 (its endpoint read from its
 * startup line), and the test program itself is the node that joins it
 * and registers a few names (two tasks and a service of one holder task);
 * then it runs PICOS_CLI with pipes and checks the tables, the JSON (parsed
 * with jansson) and the exit statuses. An unreachable registry is a port
 * the test holds bound but not listening, so nobody can take it meanwhile.
 *
 * `picos call` runs against an rps_peer process (tests/rps_peer.c: a
 * service node with bytes services and the typed cli.all of
 * tests/test.proto) joined to the same registry; this program, as a
 * client of those services too, watches what the service saw (its call
 * count, its queue) with pc_rps_describe().
 *
 * Children are proctest.h's: process groups of their own with
 * PR_SET_PDEATHSIG, killed and reaped at the end of each test, at exit
 * and on fatal signals, with a cleaned environment (no PICOS_SECRET*,
 * PICOS_REGISTRY, PICOS_LOG of the caller). Files live in a directory of
 * pt_tmpdir(), removed with it at exit.
 */
#define _GNU_SOURCE
#include <jansson.h>
#include <sys/stat.h>
#include <termios.h>

#include "picos/registry.h"
#include "picos/rps.h"

#include "proctest.h"
#include "status.pb-c.h"
#include "testutil.h"

/* Waits that must end: generous, so a loaded sanitizer run never trips
 * them; a hang still fails long before ctest's timeout. */
#define CLI_WAIT 30.0

/* ---- children ---------------------------------------------------------- */

static char tmpdir[64];
static char secret1[96], secret2[96];

/* The test's directory (under pt_tmpdir()) and its secrets, once. */
static void
guard(void)
{
    if (!*tmpdir) {
        CU_ASSERT_FATAL(pt_mkdtemp(tmpdir, sizeof tmpdir, "cli"));
        snprintf(secret1, sizeof secret1, "%s/s1", tmpdir);
        snprintf(secret2, sizeof secret2, "%s/s2", tmpdir);
        write_file(secret1, "the right cluster secret\n");
        write_file(secret2, "some other cluster secret\n");
    }
}

/* Run picos with args and extra environment to its end: its exit status,
 * stdout and stderr; -1 when it could not start or did not end. */
static int
cli_run_env(const char *const *args, const char *const *env, char *out,
            size_t osize, char *err, size_t esize)
{
    kid *k = kid_start(PICOS_CLI, args, env, NULL);
    int rc = -1;

    *out = *err = '\0';
    if (!k)
        return -1;
    if (kid_drain(k, out, osize, err, esize, CLI_WAIT) && kid_wait(k, CLI_WAIT))
        rc = exit_code(k);
    kid_free(k);
    return rc;
}

/* A CLI run's output. */
typedef struct run {
    int rc;
    char out[32768], err[4096];
} run;

static run R;

/* Run picos with args (NULL-terminated) into R; returns R.rc. */
#define CLI(...)                                                               \
    cli_run_env((const char *const[]){__VA_ARGS__, NULL}, NULL, R.out,         \
                sizeof R.out, R.err, sizeof R.err)
#define CLI_ENV(env, ...)                                                      \
    cli_run_env((const char *const[]){__VA_ARGS__, NULL}, (env), R.out,        \
                sizeof R.out, R.err, sizeof R.err)

/* Whether a line of s holds a and b (b may be NULL). */
static bool
line_with(const char *s, const char *a, const char *b)
{
    while (*s) {
        const char *nl = strchr(s, '\n');
        size_t len = nl ? (size_t)(nl - s) : strlen(s);
        char line[1024];

        snprintf(line, sizeof line, "%.*s", (int)len, s);
        if (strstr(line, a) && (!b || strstr(line, b)))
            return true;
        s += len + (nl != NULL);
    }
    return false;
}

/* R.err is exactly one line starting "picos: " and holding `what`. */
#define ONE_LINE(what) check_one_line(R.err, "picos: ", (what), __LINE__)

/* ---- the registry and this node --------------------------------------------- */

static kid *reg;
static char reg_ep[256];

/* The first "tcp://HOST:PORT" in `line` into ep. */
static bool
endpoint_in(const char *line, char *ep, size_t size)
{
    const char *p = strstr(line, "tcp://");
    size_t n;

    if (!p)
        return false;
    n = strcspn(p, " \t,;()'\"");
    while (n > 0 && (p[n - 1] == '.' || p[n - 1] == ':'))
        n--;
    if (n >= size)
        return false;
    memcpy(ep, p, n);
    ep[n] = '\0';
    return strchr(ep + 6, ':') != NULL;
}

/* Start picos-registry on a free port with secret1, in a fresh data dir
 * (no log of an earlier test replayed), its stderr in DIR.err; its
 * endpoint into ep, from the first line on stdout that names one. */
static kid *
registry_run(char *ep, size_t size)
{
    static int seq;
    char dir[160], errpath[176], line[1024];
    double end = pc_now() + CLI_WAIT;
    kid *k;

    guard();
    snprintf(dir, sizeof dir, "%s/reg-%d", tmpdir, seq++);
    CU_ASSERT_FATAL(mkdir(dir, 0700) == 0);
    snprintf(errpath, sizeof errpath, "%s.err", dir);
    k = kid_start(PICOS_REGISTRY_EXE,
                  (const char *[]){"--listen", "tcp://127.0.0.1:0",
                                   "--data-dir", dir, "--secret-file", secret1,
                                   NULL},
                  NULL, errpath);
    CU_ASSERT_FATAL(k != NULL);
    *ep = '\0';
    while (!*ep && read_line(k->out, line, sizeof line, end - pc_now()))
        endpoint_in(line, ep, size);
    if (!*ep) {
        char err[2048];
        fprintf(stderr, "picos-registry did not say where it listens: %s\n",
                kid_errtext(k, err, sizeof err));
    }
    CU_ASSERT_FATAL(*ep != '\0');
    return k;
}

static void
registry_start(void)
{
    reg = registry_run(reg_ep, sizeof reg_ep);
}

#define NODE_NAME "cli-test-node"

static pc_ref holder;

/* The holder of the names: waits until the node ends. */
static pc_msg *
hold(void *arg)
{
    pc_msg *m = NULL;

    (void)arg;
    while (pc_recv(&m, -1) == PC_OK)
        pc_msg_free(&m);
    return NULL;
}

/* The registry, and this program as a node that joined it holding tasks
 * cli.alpha and cli.beta and service cli.svc. */
static void
cluster_up(void)
{
    pc_cluster_opts o;
    pc_err rc;

    registry_start();
    memset(&o, 0, sizeof o);
    o.node.workers = 1;
    o.net.name = NODE_NAME;
    o.net.secret_file = secret1;
    o.registries = reg_ep;
    o.join_timeout = CLI_WAIT;
    o.status_interval = 0.2; /* picos top, status: soon a status */
    rc = pc_cluster_start(&o);
    if (rc != PC_OK)
        fprintf(stderr, "pc_cluster_start: %s\n", pc_err_name(rc));
    CU_ASSERT_FATAL(rc == PC_OK);
    CU_ASSERT_EQUAL_FATAL(pc_spawn(hold, NULL, NULL, &holder), PC_OK);
    CU_ASSERT_EQUAL(
        pc_name_register(PC_NAME_TASK, "cli.alpha", holder, CLI_WAIT), PC_OK);
    CU_ASSERT_EQUAL(
        pc_name_register(PC_NAME_TASK, "cli.beta", holder, CLI_WAIT), PC_OK);
    CU_ASSERT_EQUAL(
        pc_name_register(PC_NAME_SERVICE, "cli.svc", holder, CLI_WAIT), PC_OK);
}

static void
cluster_down(void)
{
    pc_node_stop();
    CU_ASSERT_EQUAL(pc_node_run(), PC_OK);
    kids_kill();
    reg = NULL;
}

/* The registry endpoint option for the CLI. */
#define REG "--registry", reg_ep, "--secret-file", secret1

/* The object of array `a` whose `key` is the string `val`, or NULL. */
static json_t *
find(json_t *a, const char *key, const char *val)
{
    size_t i;
    json_t *o;

    json_array_foreach(a, i, o)
    {
        const char *s = json_string_value(json_object_get(o, key));
        if (s && !strcmp(s, val))
            return o;
    }
    return NULL;
}

static const char *
jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "(missing)";
}

/* ---- tests without a registry ----------------------------------------------- */

/* keygen writes a 0600 key file, refuses to overwrite it (exit 1, one
 * line, the file unchanged), and --force replaces it. */
PT_TEST(keygen_mode_and_overwrite)
static void
keygen_mode_and_overwrite(void)
{
    char path[128], first[256] = "", again[256] = "";
    struct stat st;
    FILE *f;

    guard();
    snprintf(path, sizeof path, "%s/keys", tmpdir);
    unlink(path);
    CU_ASSERT_EQUAL(CLI("keygen", path), 0);
    CU_ASSERT_STRING_EQUAL(R.err, "");
    CU_ASSERT_TRUE(line_with(R.out, "wrote", path));
    CU_ASSERT_FATAL(stat(path, &st) == 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
    CU_ASSERT_FATAL((f = fopen(path, "r")) != NULL);
    CU_ASSERT(fread(first, 1, sizeof first - 1, f) > 0);
    fclose(f);
    CU_ASSERT_EQUAL(strncmp(first, "public ", 7), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(first, "\nsecret "));

    CU_ASSERT_EQUAL(CLI("keygen", path), 1);
    ONE_LINE("exists");
    CU_ASSERT_STRING_EQUAL(R.out, "");
    CU_ASSERT_FATAL((f = fopen(path, "r")) != NULL);
    CU_ASSERT(fread(again, 1, sizeof again - 1, f) > 0);
    fclose(f);
    CU_ASSERT_STRING_EQUAL(again, first);

    CU_ASSERT_EQUAL(CLI("keygen", "--force", path), 0);
    CU_ASSERT_FATAL(stat(path, &st) == 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
    memset(again, 0, sizeof again);
    CU_ASSERT_FATAL((f = fopen(path, "r")) != NULL);
    CU_ASSERT(fread(again, 1, sizeof again - 1, f) > 0);
    fclose(f);
    CU_ASSERT_STRING_NOT_EQUAL(again, first);

    /* --json, and a key file the library reads back */
    CU_ASSERT_EQUAL(CLI("--json", "keygen", "-f", path), 0);
    {
        json_error_t je;
        json_t *j = json_loads(R.out, 0, &je);
        pc_curve_keys k;
        CU_ASSERT_PTR_NOT_NULL(j);
        CU_ASSERT_STRING_EQUAL(jstr(j, "file"), path);
        CU_ASSERT_EQUAL(strlen(jstr(j, "public")), 40);
        json_decref(j);
        CU_ASSERT_EQUAL(pc_curve_read(path, &k), PC_OK);
    }
    CU_ASSERT_EQUAL(CLI("keygen"), 2);
    ONE_LINE("see picos --help");
}

/* Usage errors: exit 2, one line pointing at --help, nothing on stdout;
 * --help: exit 0, the commands listed. */
PT_TEST(usage_errors_and_help)
static void
usage_errors_and_help(void)
{
    static const char *const bad[][3] = {
        {"frobnicate", NULL, NULL}, {"--frob", "ls", NULL},
        {"ls", "--frob", NULL},     {"ls", "everything", NULL},
        {"--timeout", "x", "ls"},   {"--timeout", "0", "status"},
        {"status", "extra", NULL},  {"--registry", NULL, NULL},
        {"keygen", "a", "b"},
    };

    guard();
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *args[4] = {bad[i][0], bad[i][1], bad[i][2], NULL};
        int rc =
            cli_run_env(args, NULL, R.out, sizeof R.out, R.err, sizeof R.err);
        if (rc != 2)
            fprintf(stderr, "\n%s %s: exit %d\n", bad[i][0],
                    bad[i][1] ? bad[i][1] : "", rc);
        CU_ASSERT_EQUAL(rc, 2);
        ONE_LINE("(see picos --help)");
        CU_ASSERT_STRING_EQUAL(R.out, "");
    }
    CU_ASSERT_EQUAL(cli_run_env((const char *const[]){NULL}, NULL, R.out,
                                sizeof R.out, R.err, sizeof R.err),
                    2);
    ONE_LINE("no command");

    CU_ASSERT_EQUAL(CLI("--help"), 0);
    CU_ASSERT_STRING_EQUAL(R.err, "");
    CU_ASSERT_TRUE(line_with(R.out, "usage: picos", NULL));
    CU_ASSERT_TRUE(line_with(R.out, "  ls ", NULL));
    CU_ASSERT_TRUE(line_with(R.out, "  status ", NULL));
    CU_ASSERT_TRUE(line_with(R.out, "  keygen ", NULL));
    CU_ASSERT_TRUE(line_with(R.out, "--registry", NULL));
    CU_ASSERT_EQUAL(CLI("ls", "--help"), 0);
    CU_ASSERT_TRUE(line_with(R.out, "usage: picos [OPTIONS] ls", NULL));
    CU_ASSERT_EQUAL(CLI("help", "status"), 0);
    CU_ASSERT_TRUE(line_with(R.out, "usage: picos [OPTIONS] status", NULL));
}

/* A registry endpoint with nothing listening: exit 1 once --timeout
 * passed, with the one line; no secret at all: exit 1, one line. */
PT_TEST(unreachable_and_no_secret)
static void
unreachable_and_no_secret(void)
{
    char ep[64], want[160];
    int fd;

    guard();
    fd = dead_endpoint(ep, sizeof ep);
    snprintf(want, sizeof want,
             "picos: registry %s: unreachable (is picos-registry running?)\n",
             ep);
    CU_ASSERT_EQUAL(CLI("--registry", ep, "--secret-file", secret1, "--timeout",
                        "0.5", "ls"),
                    1);
    CU_ASSERT_STRING_EQUAL(R.err, want);
    CU_ASSERT_STRING_EQUAL(R.out, "");
    /* the same through the environment, for status */
    {
        char e1[96], e2[128];
        snprintf(e1, sizeof e1, "PICOS_REGISTRY=%s", ep);
        snprintf(e2, sizeof e2, "PICOS_SECRET_FILE=%s", secret1);
        CU_ASSERT_EQUAL(CLI_ENV(((const char *const[]){e1, e2, NULL}),
                                "--timeout", "0.5", "status"),
                        1);
        CU_ASSERT_STRING_EQUAL(R.err, want);
    }
    close(fd);

    CU_ASSERT_EQUAL(CLI("--registry", ep, "ls"), 1);
    ONE_LINE("no cluster secret");
}

/* ---- tests against a registry --------------------------------------------- */

/* ls nodes: the header and this node's row (name, id, pid, endpoint);
 * the CLI's own node is not listed. */
PT_TEST(ls_nodes_table)
static void
ls_nodes_table(void)
{
    char id[24], pid[16];

    cluster_up();
    snprintf(id, sizeof id, "0x%016" PRIx64, pc_node_id());
    snprintf(pid, sizeof pid, " %d ", (int)getpid());
    CU_ASSERT_EQUAL(CLI(REG, "ls"), 0);
    CU_ASSERT_STRING_EQUAL(R.err, "");
    CU_ASSERT_TRUE(line_with(R.out, "NAME", "NODE ID"));
    CU_ASSERT_TRUE(line_with(R.out, "HOST", "UP SINCE"));
    CU_ASSERT_TRUE(line_with(R.out, NODE_NAME, id));
    CU_ASSERT_TRUE(line_with(R.out, NODE_NAME, pid));
    CU_ASSERT_TRUE(line_with(R.out, NODE_NAME, "tcp://127.0.0.1:"));
    CU_ASSERT_FALSE(line_with(R.out, "picos-cli:", NULL));
    CU_ASSERT_EQUAL(count_lines(R.out), 2); /* header + this node */
    /* explicit list name, and a pattern on the node id */
    CU_ASSERT_EQUAL(CLI(REG, "ls", "nodes", id), 0);
    CU_ASSERT_TRUE(line_with(R.out, NODE_NAME, id));
    CU_ASSERT_EQUAL(CLI(REG, "ls", "nodes", "no-such-node*"), 3);
    ONE_LINE("no nodes matching 'no-such-node*'");
    cluster_down();
}

/* ls names / tasks / services: KIND NAME REF NODE ENDPOINT rows, each
 * list only its kind; a pattern matching nothing: exit 3. */
PT_TEST(ls_names_table)
static void
ls_names_table(void)
{
    char ref[48];

    cluster_up();
    pc_ref_str(holder, ref, sizeof ref);
    CU_ASSERT_EQUAL(CLI(REG, "ls", "names"), 0);
    CU_ASSERT_STRING_EQUAL(R.err, "");
    CU_ASSERT_TRUE(line_with(R.out, "KIND", "ENDPOINT"));
    CU_ASSERT_TRUE(line_with(R.out, "task ", "cli.alpha"));
    CU_ASSERT_TRUE(line_with(R.out, "cli.alpha", ref));
    CU_ASSERT_TRUE(line_with(R.out, "cli.alpha", NODE_NAME));
    CU_ASSERT_TRUE(line_with(R.out, "task ", "cli.beta"));
    CU_ASSERT_TRUE(line_with(R.out, "service ", "cli.svc"));
    CU_ASSERT_EQUAL(count_lines(R.out), 4);

    CU_ASSERT_EQUAL(CLI(REG, "ls", "services"), 0);
    CU_ASSERT_TRUE(line_with(R.out, "service ", "cli.svc"));
    CU_ASSERT_FALSE(line_with(R.out, "cli.alpha", NULL));
    CU_ASSERT_EQUAL(CLI(REG, "ls", "tasks", "cli.*"), 0);
    CU_ASSERT_TRUE(line_with(R.out, "cli.alpha", NULL));
    CU_ASSERT_TRUE(line_with(R.out, "cli.beta", NULL));
    CU_ASSERT_FALSE(line_with(R.out, "cli.svc", NULL));
    CU_ASSERT_EQUAL(CLI(REG, "ls", "channels"), 0);
    CU_ASSERT_EQUAL(count_lines(R.out), 1); /* the header only */

    CU_ASSERT_EQUAL(CLI(REG, "ls", "names", "cli.alpha", "cli.gamma"), 3);
    ONE_LINE("no names matching 'cli.gamma'");
    CU_ASSERT_TRUE(line_with(R.out, "cli.alpha", NULL));
    cluster_down();
}

/* --json: arrays of objects with the documented keys and values. */
PT_TEST(ls_json)
static void
ls_json(void)
{
    char id[24], ref[48];
    json_error_t je;
    json_t *j, *o;

    cluster_up();
    snprintf(id, sizeof id, "0x%016" PRIx64, pc_node_id());
    pc_ref_str(holder, ref, sizeof ref);

    CU_ASSERT_EQUAL(CLI(REG, "ls", "--json"), 0);
    CU_ASSERT_STRING_EQUAL(R.err, "");
    j = json_loads(R.out, 0, &je);
    CU_ASSERT_FATAL(json_is_array(j));
    CU_ASSERT_EQUAL(json_array_size(j), 1);
    o = find(j, "name", NODE_NAME);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    CU_ASSERT_STRING_EQUAL(jstr(o, "node"), id);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "pid")), getpid());
    CU_ASSERT_EQUAL(strncmp(jstr(o, "endpoint"), "tcp://127.0.0.1:", 16), 0);
    CU_ASSERT_TRUE(json_is_true(json_object_get(o, "up")));
    CU_ASSERT_TRUE(json_is_number(json_object_get(o, "joined")));
    CU_ASSERT_TRUE(json_is_string(json_object_get(o, "incarnation")));
    CU_ASSERT_TRUE(json_is_string(json_object_get(o, "host")));
    json_decref(j);

    CU_ASSERT_EQUAL(CLI(REG, "--json", "ls", "names"), 0);
    j = json_loads(R.out, 0, &je);
    CU_ASSERT_FATAL(json_is_array(j));
    CU_ASSERT_EQUAL(json_array_size(j), 3);
    o = find(j, "name", "cli.alpha");
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    CU_ASSERT_STRING_EQUAL(jstr(o, "kind"), "task");
    CU_ASSERT_STRING_EQUAL(jstr(o, "ref"), ref);
    CU_ASSERT_STRING_EQUAL(jstr(o, "node"), id);
    CU_ASSERT_STRING_EQUAL(jstr(o, "node_name"), NODE_NAME);
    CU_ASSERT_TRUE(json_is_number(json_object_get(o, "claimed")));
    o = find(j, "name", "cli.svc");
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    CU_ASSERT_STRING_EQUAL(jstr(o, "kind"), "service");
    CU_ASSERT_PTR_NOT_NULL(find(j, "name", "cli.beta"));
    json_decref(j);
    cluster_down();
}

/* status: one row per registry; --json with the counts; a second
 * endpoint that does not answer gets its row, a line, and exit 1. */
PT_TEST(status_table_and_json)
static void
status_table_and_json(void)
{
    json_error_t je;
    json_t *j, *o;
    char two[600], dead[64];
    int fd;

    cluster_up();
    CU_ASSERT_EQUAL(CLI(REG, "status"), 0);
    CU_ASSERT_STRING_EQUAL(R.err, "");
    CU_ASSERT_TRUE(line_with(R.out, "ENDPOINT", "STATE"));
    CU_ASSERT_TRUE(line_with(R.out, reg_ep, " ok "));
    /* header + the registry, then (once this node reported) its nodes */
    CU_ASSERT(count_lines(R.out) == 2 ||
              strstr(R.out, " ok ") < strstr(R.out, "\n\nNAME "));

    CU_ASSERT_EQUAL(CLI(REG, "status", "--json"), 0);
    j = json_loads(R.out, 0, &je);
    CU_ASSERT_FATAL(json_is_array(j) && json_array_size(j) == 1);
    o = json_array_get(j, 0);
    CU_ASSERT_STRING_EQUAL(jstr(o, "endpoint"), reg_ep);
    CU_ASSERT_STRING_EQUAL(jstr(o, "state"), "ok");
    /* this node; the CLI's own may or may not be counted yet */
    CU_ASSERT(json_integer_value(json_object_get(o, "nodes_up")) >= 1);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "names")), 3);
    CU_ASSERT(json_integer_value(json_object_get(o, "log_bytes")) > 0);
    CU_ASSERT_TRUE(json_is_false(json_object_get(o, "recovering")));
    CU_ASSERT_TRUE(json_is_string(json_object_get(o, "node")));
    json_decref(j);

    fd = dead_endpoint(dead, sizeof dead);
    snprintf(two, sizeof two, "%s,%s", reg_ep, dead);
    /* (not 1 s: a first connection takes about one) */
    CU_ASSERT_EQUAL(CLI("--registry", two, "--secret-file", secret1,
                        "--timeout", "5", "status"),
                    1);
    ONE_LINE(dead);
    CU_ASSERT_TRUE(line_with(R.out, reg_ep, " ok "));
    CU_ASSERT_TRUE(line_with(R.out, dead, "unreachable"));
    close(fd);

    /* two live registries: both answer, though the second is joined in
     * the background after the command's join returned */
    {
        char ep2[256];
        registry_run(ep2, sizeof ep2);
        snprintf(two, sizeof two, "%s,%s", reg_ep, ep2);
        CU_ASSERT_EQUAL(CLI("--registry", two, "--secret-file", secret1,
                            "--json", "status"),
                        0);
        CU_ASSERT_STRING_EQUAL(R.err, "");
        j = json_loads(R.out, 0, &je);
        CU_ASSERT_FATAL(json_is_array(j) && json_array_size(j) == 2);
        CU_ASSERT_STRING_EQUAL(jstr(json_array_get(j, 1), "endpoint"), ep2);
        CU_ASSERT_STRING_EQUAL(jstr(json_array_get(j, 1), "state"), "ok");
        CU_ASSERT_EQUAL(
            json_integer_value(json_object_get(json_array_get(j, 1), "names")),
            0);
        json_decref(j);
    }
    cluster_down();
}

/* A secret the registry does not hold: exit 1, the one line, also when
 * --timeout ends the join before the transport's connect gives up. */
PT_TEST(wrong_secret_one_line)
static void
wrong_secret_one_line(void)
{
    char want[400];

    guard();
    registry_start();
    snprintf(want, sizeof want,
             "picos: registry %s refused our key: wrong cluster secret?\n",
             reg_ep);
    CU_ASSERT_EQUAL(CLI("--registry", reg_ep, "--secret-file", secret2, "ls"),
                    1);
    CU_ASSERT_STRING_EQUAL(R.err, want);
    CU_ASSERT_STRING_EQUAL(R.out, "");
    CU_ASSERT_EQUAL(CLI("--registry", reg_ep, "--secret-file", secret2,
                        "--timeout", "1", "status"),
                    1);
    CU_ASSERT_STRING_EQUAL(R.err, want);
    /* and the right one, through $PICOS_SECRET */
    CU_ASSERT_EQUAL(CLI_ENV(((const char *const[]){
                                "PICOS_SECRET=the right cluster secret", NULL}),
                            "--registry", reg_ep, "status"),
                    0);
    CU_ASSERT_STRING_EQUAL(R.err, "");
    kids_kill();
    reg = NULL;
}

/* ---- picos top, status's nodes ---------------------------------------------------- */

/* Until the registry has a status of this node (it reports every 0.2 s). */
static void
wait_own_status(void)
{
    double end = pc_now() + CLI_WAIT;
    bool seen = false;

    while (!seen && pc_now() < end) {
        pc_msg *m = NULL;
        Picos__V1__NodeStatusList *l = NULL;
        size_t len = 0;

        if (pc_cluster_nodes_status(CLI_WAIT, &m) == PC_OK) {
            const void *d = pc_msg_data(m, &len);
            l = picos__v1__node_status_list__unpack(NULL, len, d);
        }
        for (size_t i = 0; l && i < l->n_nodes; i++)
            seen |= l->nodes[i]->status &&
                    l->nodes[i]->status->node == pc_node_id() &&
                    l->nodes[i]->up;
        if (l)
            picos__v1__node_status_list__free_unpacked(l, NULL);
        pc_msg_free(&m);
        if (!seen)
            usleep(50000); /* a pause between asks, not a wait for it */
    }
    CU_ASSERT_FATAL(seen);
}

/* A terminal of SCR_ROWS x SCR_COLS fed with what picos top writes: the
 * control sequences ncurses uses for TERM=xterm (cursor moves, erases,
 * repeats); colours, modes and the rest are skipped. Enough to read the
 * screen's text back, not a full emulator. */
#define SCR_ROWS 30
#define SCR_COLS 100

typedef struct screen {
    char c[SCR_ROWS][SCR_COLS + 1];
    int y, x;
    char last; /* for REP */
    int state; /* 0 text, 1 after ESC, 2 CSI, 3 OSC, 4 charset */
    char par[64];
    size_t npar;
} screen;

static void
scr_clear(screen *s, int y0, int x0, int y1, int x1) /* inclusive */
{
    for (int y = y0; y <= y1; y++)
        for (int x = y == y0 ? x0 : 0; x < (y == y1 ? x1 + 1 : SCR_COLS); x++)
            s->c[y][x] = ' ';
}

static void
scr_init(screen *s)
{
    memset(s, 0, sizeof *s);
    scr_clear(s, 0, 0, SCR_ROWS - 1, SCR_COLS - 1);
}

static void
scr_put(screen *s, char ch)
{
    if (s->x >= SCR_COLS) {
        s->x = 0;
        s->y++;
    }
    if (s->y >= SCR_ROWS) {
        memmove(s->c[0], s->c[1], sizeof s->c[0] * (SCR_ROWS - 1));
        scr_clear(s, SCR_ROWS - 1, 0, SCR_ROWS - 1, SCR_COLS - 1);
        s->y = SCR_ROWS - 1;
    }
    s->c[s->y][s->x++] = ch;
    s->last = ch;
}

static void
scr_csi(screen *s, char f)
{
    int p[8] = {0}, np = 0;
    bool priv = s->npar && (s->par[0] == '?' || s->par[0] == '>');

    for (size_t i = priv; i < s->npar && np < 8; i++) {
        if (s->par[i] == ';')
            np++;
        else if (s->par[i] >= '0' && s->par[i] <= '9')
            p[np] = p[np] * 10 + (s->par[i] - '0');
    }
    if (priv)
        return;
    int n = p[0] ? p[0] : 1;
    switch (f) {
    case 'H':
    case 'f':
        s->y = n - 1;
        s->x = (p[1] ? p[1] : 1) - 1;
        break;
    case 'A':
        s->y -= n;
        break;
    case 'B':
        s->y += n;
        break;
    case 'C':
        s->x += n;
        break;
    case 'D':
        s->x -= n;
        break;
    case 'G':
    case '`':
        s->x = n - 1;
        break;
    case 'd':
        s->y = n - 1;
        break;
    case 'K':
        if (p[0] == 0)
            scr_clear(s, s->y, s->x, s->y, SCR_COLS - 1);
        else if (p[0] == 1)
            scr_clear(s, s->y, 0, s->y, s->x);
        else
            scr_clear(s, s->y, 0, s->y, SCR_COLS - 1);
        break;
    case 'J':
        if (p[0] == 0)
            scr_clear(s, s->y, s->x, SCR_ROWS - 1, SCR_COLS - 1);
        else if (p[0] == 1)
            scr_clear(s, 0, 0, s->y, s->x);
        else
            scr_clear(s, 0, 0, SCR_ROWS - 1, SCR_COLS - 1);
        break;
    case 'X':
        for (int i = 0; i < n && s->x + i < SCR_COLS; i++)
            s->c[s->y][s->x + i] = ' ';
        break;
    case 'b':
        for (int i = 0; i < n; i++)
            scr_put(s, s->last);
        break;
    default: /* m, r, t, h, l, ...: no text */
        break;
    }
    if (s->y < 0)
        s->y = 0;
    if (s->y >= SCR_ROWS)
        s->y = SCR_ROWS - 1;
    if (s->x < 0)
        s->x = 0;
    if (s->x > SCR_COLS)
        s->x = SCR_COLS;
}

static void
scr_feed(screen *s, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char ch = b[i];

        switch (s->state) {
        case 1:
            s->state = ch == '['                  ? 2
                       : ch == ']'                ? 3
                       : (ch == '(' || ch == ')') ? 4
                                                  : 0;
            s->npar = 0;
            continue;
        case 2:
            if ((ch >= 0x40 && ch <= 0x7e)) {
                scr_csi(s, ch);
                s->state = 0;
            } else if (s->npar + 1 < sizeof s->par)
                s->par[s->npar++] = ch;
            continue;
        case 3:
            if (ch == '\a' || ch == '\\')
                s->state = 0;
            continue;
        case 4:
            s->state = 0;
            continue;
        default:
            break;
        }
        if (ch == '\033')
            s->state = 1;
        else if (ch == '\r')
            s->x = 0;
        else if (ch == '\n') {
            if (++s->y >= SCR_ROWS) {
                s->y = SCR_ROWS - 1;
                memmove(s->c[0], s->c[1], sizeof s->c[0] * (SCR_ROWS - 1));
                scr_clear(s, SCR_ROWS - 1, 0, SCR_ROWS - 1, SCR_COLS - 1);
            }
        } else if (ch == '\b') {
            if (s->x > 0)
                s->x--;
        } else if (ch == '\t')
            s->x = (s->x / 8 + 1) * 8 > SCR_COLS - 1 ? SCR_COLS - 1
                                                     : (s->x / 8 + 1) * 8;
        else if ((unsigned char)ch >= 0x20 && ch != 0x7f)
            scr_put(s, ch);
    }
}

/* A row of the screen holding a and b (b may be NULL). */
static bool
scr_row(const screen *s, const char *a, const char *b)
{
    for (int y = 0; y < SCR_ROWS; y++)
        if (strstr(s->c[y], a) && (!b || strstr(s->c[y], b)))
            return true;
    return false;
}

/* picos top on a pseudo-terminal, its output and screen. */
typedef struct tty {
    kid *k;
    screen scr;
    char out[1 << 20];
    size_t n;
} tty;

static tty T;

static void
tty_start(const char *const *args)
{
    static kid k;
    static const struct winsize ws = {SCR_ROWS, SCR_COLS, 0, 0};
    kid_opts o = {.env = (const char *const[]){"TERM=xterm", NULL},
                  .clean_env = true,
                  .pty = &ws};

    memset(&T, 0, sizeof T);
    scr_init(&T.scr);
    CU_ASSERT_FATAL(kid_run(&k, PICOS_CLI, args, &o));
    T.k = &k;
}

/* Read the terminal until a row holds a and b, or EOF / the deadline. */
static bool
tty_until(const char *a, const char *b)
{
    double end = pc_now() + CLI_WAIT;

    while (!scr_row(&T.scr, a, b)) {
        struct pollfd p = {T.k->out, POLLIN, 0};
        double left = end - pc_now();
        ssize_t r;

        if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) <= 0)
            return false;
        if ((r = read(T.k->out, T.out + T.n, sizeof T.out - 1 - T.n)) <= 0)
            return false; /* EIO: the program closed the terminal */
        scr_feed(&T.scr, T.out + T.n, (size_t)r);
        T.n += (size_t)r;
        T.out[T.n] = '\0';
    }
    return true;
}

/* Read to EOF, wait for the exit: its status, -1 when it did not end. */
static int
tty_end(void)
{
    double end = pc_now() + CLI_WAIT;

    for (;;) {
        struct pollfd p = {T.k->out, POLLIN, 0};
        double left = end - pc_now();
        ssize_t r;

        if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) <= 0)
            break;
        if ((r = read(T.k->out, T.out + T.n, sizeof T.out - 1 - T.n)) <= 0)
            break;
        scr_feed(&T.scr, T.out + T.n, (size_t)r);
        T.n += (size_t)r;
        T.out[T.n] = '\0';
    }
    return kid_wait(T.k, CLI_WAIT) ? exit_code(T.k) : -1;
}

/* The last occurrence of `what` in the output, or NULL. */
static const char *
out_last(const char *what)
{
    const char *p = NULL, *q = T.out;

    while ((q = memmem(q, T.n - (size_t)(q - T.out), what, strlen(what)))) {
        p = q;
        q++;
    }
    return p;
}

/* The terminal as picos top left it: canonical mode and echo back on (the
 * pty keeps its modes after the child is gone), the alternate screen left
 * last, with nothing drawn after. */
static void
check_restored(void)
{
    struct termios tio;
    const char *enter = out_last("\033[?1049h"),
               *leave = out_last("\033[?1049l");

    CU_ASSERT_EQUAL_FATAL(tcgetattr(T.k->out, &tio), 0);
    CU_ASSERT(tio.c_lflag & ICANON);
    CU_ASSERT(tio.c_lflag & ECHO);
    CU_ASSERT_PTR_NOT_NULL(enter);
    CU_ASSERT_PTR_NOT_NULL_FATAL(leave);
    CU_ASSERT(leave > enter);
    /* after it only the reset of modes ("\033[23;0;0t\r\033[?1l\033>"):
     * escape sequences and carriage returns, no text drawn */
    for (const char *p = leave, *e = T.out + T.n; p < e; p++) {
        if (*p == '\r')
            continue;
        CU_ASSERT_EQUAL_FATAL(*p, '\033');
        if (p + 1 < e && p[1] == '[') {
            for (p += 2; p < e && !(*p >= 0x40 && *p <= 0x7e); p++)
                ;
        } else
            p++;
    }
    kid_free(T.k);
}

/* picos top under a pseudo-terminal (TERM=xterm, 100x30): this node's row
 * with "up" on the screen, Enter shows its detail, q quits with status 0
 * and the terminal restored. */
PT_TEST(top_tty_q)
static void
top_tty_q(void)
{
    cluster_up();
    wait_own_status();
    tty_start((const char *const[]){REG, "top", "--interval", "0.2", NULL});
    CU_ASSERT_TRUE(tty_until(NODE_NAME, " up "));
    CU_ASSERT_TRUE(scr_row(&T.scr, "NAME", "STATE"));
    CU_ASSERT_TRUE(scr_row(&T.scr, "picos top", "registry"));
    /* the CLI's own node is not a row */
    CU_ASSERT_FALSE(scr_row(&T.scr, "picos-cli:", NULL));
    CU_ASSERT_EQUAL(write(T.k->out, "\r", 1), 1);
    CU_ASSERT_TRUE(tty_until("DEEPEST MAILBOXES", NULL));
    CU_ASSERT_TRUE(tty_until("host", NODE_NAME));
    CU_ASSERT_EQUAL(write(T.k->out, "q", 1), 1);
    CU_ASSERT_EQUAL(tty_end(), 0);
    check_restored();
    cluster_down();
}

/* SIGTERM and Ctrl-C (the terminal's SIGINT) end picos top as q does:
 * status 0, the terminal restored. */
PT_TEST(top_tty_signals)
static void
top_tty_signals(void)
{
    cluster_up();
    wait_own_status();
    tty_start((const char *const[]){REG, "top", NULL});
    CU_ASSERT_TRUE(tty_until(NODE_NAME, " up "));
    CU_ASSERT_EQUAL(kill(T.k->pid, SIGTERM), 0);
    CU_ASSERT_EQUAL(tty_end(), 0);
    check_restored();

    tty_start((const char *const[]){REG, "top", NULL});
    CU_ASSERT_TRUE(tty_until(NODE_NAME, " up "));
    CU_ASSERT_EQUAL(write(T.k->out, "\003", 1), 1); /* ^C: VINTR */
    CU_ASSERT_EQUAL(tty_end(), 0);
    check_restored();
    cluster_down();
}

/* Without a terminal (or --once): the table once, exit 0; status shows the
 * node too, and its --json holds the node's status (pid = this process). */
PT_TEST(top_once_status_nodes)
static void
top_once_status_nodes(void)
{
    json_error_t je;
    json_t *j, *nodes, *e = NULL, *st = NULL;
    char id[24];
    size_t i;

    cluster_up();
    wait_own_status();
    snprintf(id, sizeof id, "0x%016" PRIx64, pc_node_id());
    CU_ASSERT_EQUAL(CLI(REG, "top", "--once"), 0);
    CU_ASSERT_STRING_EQUAL(R.err, "");
    CU_ASSERT_TRUE(line_with(R.out, "NAME", "STATE"));
    CU_ASSERT_TRUE(line_with(R.out, NODE_NAME, " up "));
    CU_ASSERT_TRUE(line_with(R.out, NODE_NAME, id));
    CU_ASSERT_TRUE(line_with(R.out, "registry", reg_ep));
    CU_ASSERT_FALSE(line_with(R.out, "picos-cli:", NULL));
    CU_ASSERT_EQUAL(CLI(REG, "top"), 0); /* stdout a pipe: the same */
    CU_ASSERT_TRUE(line_with(R.out, NODE_NAME, " up "));
    CU_ASSERT_FALSE(strchr(R.out, '\033'));

    CU_ASSERT_EQUAL(CLI(REG, "status"), 0);
    CU_ASSERT_TRUE(line_with(R.out, reg_ep, " ok "));
    CU_ASSERT_TRUE(line_with(R.out, NODE_NAME, " up "));

    CU_ASSERT_EQUAL(CLI(REG, "status", "--json"), 0);
    CU_ASSERT_STRING_EQUAL(R.err, "");
    j = json_loads(R.out, 0, &je);
    CU_ASSERT_FATAL(json_is_array(j) && json_array_size(j) == 1);
    CU_ASSERT_STRING_EQUAL(jstr(json_array_get(j, 0), "state"), "ok");
    nodes = json_object_get(json_array_get(j, 0), "nodes");
    CU_ASSERT_FATAL(json_is_array(nodes));
    json_array_foreach(nodes, i, e)
    {
        json_t *s = json_object_get(e, "status");
        if (!strcmp(jstr(s, "name"), NODE_NAME))
            break;
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    st = json_object_get(e, "status");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(st, "pid")), getpid());
    CU_ASSERT_STRING_EQUAL(jstr(st, "node"), id);
    CU_ASSERT_TRUE(json_is_true(json_object_get(e, "up")));
    /* proto3 JSON: lowerCamelCase, 64-bit counters as strings */
    CU_ASSERT_TRUE(json_is_string(json_object_get(e, "receivedUs")));
    CU_ASSERT_TRUE(json_is_string(json_object_get(st, "sampledUs")));
    json_decref(j);

    CU_ASSERT_EQUAL(CLI(REG, "top", "--interval", "0"), 2);
    ONE_LINE("--interval '0'");
    CU_ASSERT_EQUAL(CLI(REG, "top", "--frob"), 2);
    ONE_LINE("unknown option '--frob'");
    cluster_down();
}

/* ---- picos call ------------------------------------------------------------------ */

/* The registry, this node, and an rps_peer service node joined to it. */
static void
services_up(void)
{
    char line[512];
    kid *k;

    cluster_up();
    k = kid_start(RPS_PEER,
                  (const char *[]){"--registries", reg_ep, "--secret-file",
                                   secret1, NULL},
                  NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(k);
    CU_ASSERT_FATAL(read_line(k->out, line, sizeof line, CLI_WAIT));
    if (strncmp(line, "READY ", 6)) {
        char err[2048];
        slurp(k->err, err, sizeof err);
        fprintf(stderr, "rps_peer: %s %s\n", line, err);
    }
    CU_ASSERT_FATAL(!strncmp(line, "READY ", 6));
}

/* Run picos with args, its stdin from file `in`. */
static int
cli_run_in(const char *in, const char *const *args)
{
    const char *sh[32] = {"-c", "exec \"$0\" \"$@\" < \"$CLI_IN\"", PICOS_CLI};
    char env[256];
    size_t n = 3;
    kid *k;
    int rc = -1;

    snprintf(env, sizeof env, "CLI_IN=%s", in);
    while (*args && n < 31)
        sh[n++] = *args++;
    sh[n] = NULL;
    *R.out = *R.err = '\0';
    if (!(k = kid_start("/bin/sh", sh, (const char *const[]){env, NULL}, NULL)))
        return -1;
    if (kid_drain(k, R.out, sizeof R.out, R.err, sizeof R.err, CLI_WAIT) &&
        kid_wait(k, CLI_WAIT))
        rc = exit_code(k);
    kid_free(k);
    return rc;
}
#define CLI_IN(in, ...)                                                        \
    cli_run_in((in), (const char *const[]){__VA_ARGS__, NULL})

/* What service `name` says of itself, asked from this node. */
static pc_rps_info
describe(const char *name)
{
    pc_rps_client *c = NULL;
    pc_rps_info info;

    memset(&info, 0, sizeof info);
    CU_ASSERT_EQUAL_FATAL(pc_rps_locate(name, CLI_WAIT, &c), PC_OK);
    CU_ASSERT_EQUAL(pc_rps_describe(c, CLI_WAIT, &info, NULL), PC_OK);
    pc_rps_client_free(&c);
    return info;
}

/* Bytes in, bytes out, exactly: --data TEXT, @FILE (bytes a text never
 * has), - (stdin), nothing; no newline added on a pipe. */
PT_TEST(call_bytes)
static void
call_bytes(void)
{
    static const char bin[] = "\x01\xfe\tline\n\x7f";
    char path[160];

    services_up();
    CU_ASSERT_EQUAL(CLI(REG, "call", "echo", "--data", "hello"), 0);
    CU_ASSERT_STRING_EQUAL(R.err, "");
    CU_ASSERT_STRING_EQUAL(R.out, "hello");
    snprintf(path, sizeof path, "%s/bin", tmpdir);
    write_file(path, bin);
    {
        char at[170];
        snprintf(at, sizeof at, "@%s", path);
        CU_ASSERT_EQUAL(CLI(REG, "call", "echo", "--data", at), 0);
        CU_ASSERT_STRING_EQUAL(R.out, bin);
        CU_ASSERT_EQUAL(CLI(REG, "call",
                            "--data="
                            "@/no/such/file",
                            "echo"),
                        1);
        ONE_LINE("/no/such/file: No such file or directory");
    }
    CU_ASSERT_EQUAL(CLI_IN(path, REG, "call", "echo", "--data", "-"), 0);
    CU_ASSERT_STRING_EQUAL(R.err, "");
    CU_ASSERT_STRING_EQUAL(R.out, bin);
    CU_ASSERT_EQUAL(CLI(REG, "call", "echo"), 0);
    CU_ASSERT_STRING_EQUAL(R.out, "");
    CU_ASSERT_STRING_EQUAL(R.err, "");
    /* the global options after the command, and before it */
    CU_ASSERT_EQUAL(CLI("--timeout", "10", "call", "echo", REG, "--data", "x"),
                    0);
    CU_ASSERT_STRING_EQUAL(R.out, "x");
    cluster_down();
}

/* --json: the request as JSON through the service's schema, the reply
 * back as JSON (64-bit integers as strings, enums by name, bytes in
 * base64); --compact on one line; a bytes service refuses --json. */
PT_TEST(call_json)
static void
call_json(void)
{
    json_error_t je;
    json_t *j, *v;
    char path[160];

    services_up();
    CU_ASSERT_EQUAL(
        CLI(REG, "call", "cli.all", "--json", "--data",
            "{\"i32\": 41, \"str\": \"x\", \"rColor\": [\"RED\", 7],"
            " \"u64\": \"18446744073709551615\", \"by\": \"AAE=\","
            " \"inner\": {\"value\": -2}, \"r_str\": [\"a\"]}"),
        0);
    CU_ASSERT_STRING_EQUAL(R.err, "");
    j = json_loads(R.out, 0, &je);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "i32")), 42);
    CU_ASSERT_STRING_EQUAL(jstr(j, "str"), "got x");
    CU_ASSERT_STRING_EQUAL(jstr(j, "u64"), "18446744073709551615");
    CU_ASSERT_STRING_EQUAL(jstr(j, "by"), "AAE=");
    CU_ASSERT_STRING_EQUAL(jstr(json_object_get(j, "inner"), "value"), "-2");
    v = json_object_get(j, "rColor");
    CU_ASSERT_TRUE(json_is_array(v) && json_array_size(v) == 2);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_array_get(v, 0)), "RED");
    CU_ASSERT_EQUAL(json_integer_value(json_array_get(v, 1)), 7);
    CU_ASSERT_STRING_EQUAL(
        json_string_value(json_array_get(json_object_get(j, "rStr"), 0)), "a");
    CU_ASSERT_EQUAL(json_object_size(j), 7);
    json_decref(j);
    CU_ASSERT(count_lines(R.out) > 1); /* indented */

    /* from a file, compact; no data: {} */
    snprintf(path, sizeof path, "@%s/req.json", tmpdir);
    write_file(path + 1, "{\"fl\": 0.1, \"color\": \"INFRARED\"}\n");
    CU_ASSERT_EQUAL(
        CLI(REG, "--json", "call", "cli.all", "--compact", "--data", path), 0);
    CU_ASSERT_STRING_EQUAL(
        R.out,
        "{\"i32\":1,\"fl\":0.1,\"color\":\"INFRARED\",\"str\":\"got \"}\n");
    CU_ASSERT_EQUAL(CLI(REG, "call", "cli.all", "--json", "--compact"), 0);
    CU_ASSERT_STRING_EQUAL(R.out, "{\"i32\":1,\"str\":\"got \"}\n");

    CU_ASSERT_EQUAL(CLI(REG, "call", "echo", "--json", "--data", "{}"), 1);
    ONE_LINE("service 'echo' takes bytes, not JSON: call it without --json");
    CU_ASSERT_STRING_EQUAL(R.out, "");
    cluster_down();
}

/* A request that is not JSON or does not fit the type: exit 2, one line
 * naming the field, and the service never saw a call. */
PT_TEST(call_bad_json)
static void
call_bad_json(void)
{
    static const char *const cases[][2] = {
        {"{\"i32\": \"x\"}",
         "picos: request: field 'i32' of picos.test.All: expected an "
         "integer (int32)\n"},
        {"{\"nope\": 1}",
         "picos: request: unknown field 'nope' in picos.test.All\n"},
        {"{\"inner\": {\"value\": 1.5}}",
         "picos: request: field 'value' of picos.test.Inner: expected an "
         "integer (sint64)\n"},
        {"{\"color\": \"BLUE\"}",
         "picos: request: field 'color' of picos.test.All: 'BLUE' is no "
         "value of picos.test.Color\n"},
        {"[1]", "picos: request: picos.test.All: expected a JSON object\n"},
    };
    uint64_t before;

    services_up();
    before = describe("cli.all").calls;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        CU_ASSERT_EQUAL(
            CLI(REG, "call", "cli.all", "--json", "--data", cases[i][0]), 2);
        CU_ASSERT_STRING_EQUAL(R.err, cases[i][1]);
        CU_ASSERT_STRING_EQUAL(R.out, "");
    }
    CU_ASSERT_EQUAL(CLI(REG, "call", "cli.all", "--json", "--data", "{bad"), 2);
    ONE_LINE("request: not JSON: ");
    CU_ASSERT_EQUAL(describe("cli.all").calls, before);
    /* and the reverse: good JSON the service fails on, bytes it can't
     * parse (refused by the service, exit 1) */
    CU_ASSERT_EQUAL(
        CLI(REG, "call", "cli.all", "--json", "--data", "{\"str\": \"fail\"}"),
        1);
    ONE_LINE("service 'cli.all' failed: no thanks");
    CU_ASSERT_EQUAL(CLI(REG, "call", "cli.all", "--data", "\x08"), 1);
    ONE_LINE("service 'cli.all' refused the request: ");
    cluster_down();
}

/* Not found (3), timed out, failed, refused busy (1), each one line;
 * usage errors (2). */
PT_TEST(call_failures)
static void
call_failures(void)
{
    pc_rps_client *c = NULL;
    struct pc_rps_call *running = NULL;
    pc_msg *req = NULL;
    kid *queued;

    services_up();
    CU_ASSERT_EQUAL(CLI(REG, "call", "nosuch", "--data", "x"), 3);
    CU_ASSERT_STRING_EQUAL(R.err, "picos: no service 'nosuch'\n");
    CU_ASSERT_STRING_EQUAL(R.out, "");
    CU_ASSERT_EQUAL(CLI(REG, "call", "nosuch", "--json"), 3);
    CU_ASSERT_EQUAL(
        CLI(REG, "--timeout", "0.5", "call", "slow", "--data", "30"), 1);
    CU_ASSERT_STRING_EQUAL(R.err,
                           "picos: service 'slow': no reply within 0.5 s\n");
    CU_ASSERT_EQUAL(CLI(REG, "call", "fail", "--data", "hi"), 1);
    CU_ASSERT_STRING_EQUAL(R.err, "picos: service 'fail' failed: boom: hi\n");
    CU_ASSERT_STRING_EQUAL(R.out, "");
    CU_ASSERT_EQUAL(CLI(REG, "call", "killme"), 1);
    ONE_LINE("service 'killme': the call was terminated");

    /* busy (max_inflight 1, max_queued 1): one call running (this node's),
     * one queued (a CLI in the background), then the CLI is refused */
    CU_ASSERT_EQUAL_FATAL(pc_rps_locate("busy", CLI_WAIT, &c), PC_OK);
    CU_ASSERT_EQUAL_FATAL(pc_msg_new_str(&req, "text", "60"), PC_OK);
    CU_ASSERT_EQUAL_FATAL(pc_rps_call(c, &req, 120, &running), PC_OK);
    queued = kid_start(PICOS_CLI,
                       (const char *[]){REG, "--timeout", "120", "call", "busy",
                                        "--data", "60", NULL},
                       NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(queued);
    for (;;) { /* until the service has it in its queue */
        pc_rps_info in;
        CU_ASSERT_EQUAL_FATAL(pc_rps_describe(c, CLI_WAIT, &in, NULL), PC_OK);
        if (in.queued == 1)
            break;
        usleep(10000);
    }
    CU_ASSERT_EQUAL(CLI(REG, "call", "busy", "--data", "0"), 1);
    CU_ASSERT_STRING_EQUAL(R.err, "picos: service 'busy' refused the call: "
                                  "service busy: 1 running, 1 queued\n");
    pc_rps_call_free(&running);
    pc_rps_client_free(&c);

    CU_ASSERT_EQUAL(CLI(REG, "call"), 2);
    ONE_LINE("call: no SERVICE given (see picos --help)");
    CU_ASSERT_EQUAL(CLI(REG, "call", "a", "b"), 2);
    ONE_LINE("unexpected argument 'b'");
    CU_ASSERT_EQUAL(CLI(REG, "call", "echo", "--data"), 2);
    ONE_LINE("option --data needs a value");
    CU_ASSERT_EQUAL(CLI(REG, "call", "echo", "--frob"), 2);
    ONE_LINE("unknown option '--frob'");
    {
        char name[300];
        memset(name, 'n', sizeof name - 1);
        name[sizeof name - 1] = '\0';
        CU_ASSERT_EQUAL(CLI(REG, "call", name), 2);
        ONE_LINE("a service name is at most 255 bytes");
    }
    CU_ASSERT_EQUAL(CLI("call", "--help"), 0);
    CU_ASSERT_TRUE(
        line_with(R.out, "usage: picos [OPTIONS] call SERVICE", NULL));
    cluster_down();
}

PT_MAIN("cli", PT_ENTRY(keygen_mode_and_overwrite),
        PT_ENTRY(usage_errors_and_help), PT_ENTRY(unreachable_and_no_secret),
        PT_ENTRY(ls_nodes_table), PT_ENTRY(ls_names_table), PT_ENTRY(ls_json),
        PT_ENTRY(status_table_and_json), PT_ENTRY(wrong_secret_one_line),
        PT_ENTRY(top_tty_q), PT_ENTRY(top_tty_signals),
        PT_ENTRY(top_once_status_nodes), PT_ENTRY(call_bytes),
        PT_ENTRY(call_json), PT_ENTRY(call_bad_json), PT_ENTRY(call_failures))
