/* tests/test_python.c — the Python client (clients/python/) against real
 * processes: a picos-registry, an rps_peer service node (tests/rps_peer.c),
 * and clients/python/picos_call.py run by the Debian python3.
 *
 * This is the proof that the wire is open: the client is written from
 * docs/PROTOCOL.md and proto/ alone, and its protobuf modules are
 * generated here, at test time, by protoc --python_out from proto/ into
 * pt_tmpdir() (never committed). The test judges the client as a user
 * would: exit status, stdout, the one line on stderr. Calls return the
 * service's value; a failure brings its text back; a service that is not
 * there exits 3; a deadline passed, a killed call task, and the service
 * node killed during a call each end with their own line; a wrong secret
 * and a key file of another cluster fail with the key's line — not a hang
 * and not a timeout; a key file of the cluster's pair (written by
 * pc_curve_write, as `picos keygen` does) works. And the example service
 * pico_service.so (apps/examples/), hosted by a real picos-node, answers
 * the client as clients/python/README.md shows.
 *
 * Without python3, its zmq (with CURVE) and protobuf modules, or protoc,
 * the program prints one "SKIP: ..." line and exits 77, which ctest
 * reports as skipped (`make deps` installs them). Children are proctest.h's:
 * process groups of their own, killed and reaped on every way out.
 */
#define _GNU_SOURCE
#include "picos/net.h"

#include "netutil.h"
#include "testutil.h"

/* Waits that must end: generous for a loaded sanitizer run; a hang still
 * fails long before ctest's timeout. */
#define WAIT 30.0

static char pbdir[192], pbenv[224];
static char key_ok[192], key_other[192];

/* ---- the cluster: one registry, one service node --------------------------- */

static kid reg;
static nt_child peer;
static char reg_ep[256], reg_dir[128];

static void
cluster_up(void)
{
    char line[512] = "", err[2048];
    kid_opts o = {.errpath = reg.errpath};

    secrets();
    if (reg.pid > 0 && peer.pid > 0)
        return;
    nt_stop(&peer);
    kid_free(&reg);
    CU_ASSERT_FATAL(pt_mkdtemp(reg_dir, sizeof reg_dir, "reg"));
    snprintf(reg.errpath, sizeof reg.errpath, "%s/stderr", reg_dir);
    o.errpath = reg.errpath;
    CU_ASSERT_FATAL(kid_run(
        &reg, REGISTRY,
        (const char *[]){"--listen", "tcp://127.0.0.1:0", "--data-dir", reg_dir,
                         "--secret-file", secret_path, "--heartbeat", NET_HB,
                         "--timeout", NET_TIMEOUT, NULL},
        &o));
    if (!read_line(reg.out, line, sizeof line, WAIT) ||
        sscanf(line, "%*s %*s listening on %255s", reg_ep) != 1) {
        fprintf(stderr, "picos-registry did not start: '%s' %s\n", line,
                kid_errtext(&reg, err, sizeof err));
        CU_FAIL_FATAL("picos-registry");
    }
    CU_ASSERT_FATAL(nt_start(
        &peer, (const char *[]){"--registries", reg_ep, "--secret-file",
                                secret_path, "--heartbeat", NET_HB, "--timeout",
                                NET_TIMEOUT, NULL}));
}

/* ---- the client ---------------------------------------------------------------- */

/* A run's output. */
typedef struct run {
    int rc;
    char out[4096], err[4096];
} run;

static run R;
static kid py; /* the client (static: a fatal assertion's longjmp leaves no
                  dangling pointer in proctest.h's table) */

/* Start picos_call.py with args (NULL-terminated) as k, its stderr into
 * errpath (a file), or into a pipe when errpath is NULL. */
static bool
client_start(kid *k, const char *const *args, const char *errpath)
{
    const char *argv[32] = {"-B", "-s", CLIENT_PY};
    const char *env[] = {pbenv, "PYTHONDONTWRITEBYTECODE=1", NULL};
    kid_opts o = {.env = env, .clean_env = true, .errpath = errpath};
    int n = 3;

    while (*args && n < 31)
        argv[n++] = *args++;
    argv[n] = NULL;
    return kid_run(k, PYTHON3, argv, &o);
}

/* Run the client to its end: R.rc (-1: it did not end within WAIT), R.out,
 * R.err. Its output is small: the pipe holds it until it has exited. */
static int
client_run(const char *const *args)
{
    static int seq;
    char name[32];
    char errpath[160];

    snprintf(name, sizeof name, "py-%d.err", seq++);
    pt_tmppath(errpath, sizeof errpath, name);
    R.rc = -1;
    R.out[0] = R.err[0] = '\0';
    CU_ASSERT_FATAL(client_start(&py, args, errpath));
    if (kid_wait(&py, WAIT))
        R.rc = exit_code(&py);
    slurp(py.out, R.out, sizeof R.out);
    kid_errtext(&py, R.err, sizeof R.err);
    kid_free(&py);
    if (R.rc != 0 && R.rc != 1 && R.rc != 3)
        fprintf(stderr, "\nclient exit %d, stderr: %s\n", R.rc, R.err);
    return R.rc;
}

/* picos_call.py with the cluster's registry and secret, and args. */
#define CALL(...)                                                              \
    client_run((const char *const[]){"--registry", reg_ep, "--secret-file",    \
                                     secret_path, "--timeout", "10",           \
                                     __VA_ARGS__, NULL})

/* R.err is exactly one line starting "picos_call: " and holding `what`. */
#define ONE_LINE(what) check_one_line(R.err, "picos_call: ", (what), __LINE__)

/* ---- tests ------------------------------------------------------------------------ */

/* A call returns the service's value: a literal, and from stdin. */
PT_TEST(call_returns_value)
static void
call_returns_value(void)
{
    cluster_up();
    CU_ASSERT_EQUAL(CALL("echo", "hello from python"), 0);
    CU_ASSERT_STRING_EQUAL(R.out, "hello from python\n");
    CU_ASSERT_STRING_EQUAL(R.err, "");
    /* a second client, a second start: nothing of the first is reused */
    CU_ASSERT_EQUAL(CALL("echo", "again"), 0);
    CU_ASSERT_STRING_EQUAL(R.out, "again\n");
}

/* Each way a call can end badly comes back as its own line. */
PT_TEST(failures_with_reasons)
static void
failures_with_reasons(void)
{
    cluster_up();
    /* pc_exit_error("boom: <request>") */
    CU_ASSERT_EQUAL(CALL("fail", "bad input"), 1);
    ONE_LINE("service fail: failed: boom: bad input");
    CU_ASSERT_STRING_EQUAL(R.out, "");
    /* the call's task terminated itself */
    CU_ASSERT_EQUAL(CALL("killme", "x"), 1);
    ONE_LINE("service killme: killed");
    /* still running at the deadline: the service ends it and says so */
    CU_ASSERT_EQUAL(client_run((const char *const[]){
                        "--registry", reg_ep, "--secret-file", secret_path,
                        "--timeout", "0.5", "slow", "30", NULL}),
                    1);
    ONE_LINE("timed out");
}

/* A service nobody registered: exit 3, one line. */
PT_TEST(not_found)
static void
not_found(void)
{
    cluster_up();
    CU_ASSERT_EQUAL(CALL("no.such.service", "x"), 3);
    ONE_LINE("service no.such.service: not found");
    CU_ASSERT_STRING_EQUAL(R.out, "");
}

/* Another cluster's secret: the registry can't open the CURVE handshake
 * and hangs up. The client says so at once — the line is the key's, not
 * a timeout's, which is what a client waiting for a Hello would give. */
PT_TEST(wrong_secret)
static void
wrong_secret(void)
{
    cluster_up();
    CU_ASSERT_EQUAL(client_run((const char *const[]){
                        "--registry", reg_ep, "--secret-file", other_path,
                        "--timeout", "20", "echo", "x", NULL}),
                    1);
    ONE_LINE("during the CURVE handshake: it does not hold our key (wrong "
             "cluster secret or key file?)");
}

/* Key files: the cluster's own pair written by pc_curve_write (what
 * `picos keygen` writes) is as good as the secret; a fresh pair of
 * another cluster is refused like a wrong secret. */
PT_TEST(key_files)
static void
key_files(void)
{
    pc_curve_keys k;
    char s[PC_SECRET_MAX];
    size_t len = 0;

    cluster_up();
    pt_tmppath(key_ok, sizeof key_ok, "cluster.key");
    pt_tmppath(key_other, sizeof key_other, "other.key");
    CU_ASSERT_EQUAL_FATAL(pc_secret_load(secret_path, s, sizeof s, &len),
                          PC_OK);
    CU_ASSERT_EQUAL_FATAL(pc_curve_from_secret(s, len, &k), PC_OK);
    CU_ASSERT_EQUAL_FATAL(pc_curve_write(key_ok, &k), PC_OK);
    CU_ASSERT_EQUAL_FATAL(pc_curve_keygen(&k), PC_OK);
    CU_ASSERT_EQUAL_FATAL(pc_curve_write(key_other, &k), PC_OK);

    CU_ASSERT_EQUAL(
        client_run((const char *const[]){"--registry", reg_ep, "--key-file",
                                         key_ok, "echo", "keyed", NULL}),
        0);
    CU_ASSERT_STRING_EQUAL(R.out, "keyed\n");
    CU_ASSERT_EQUAL(
        client_run((const char *const[]){"--registry", reg_ep, "--key-file",
                                         key_other, "echo", "keyed", NULL}),
        1);
    ONE_LINE("wrong cluster secret or key file?");
    /* a secret file is not a key file: refused before anything is sent */
    CU_ASSERT_EQUAL(
        client_run((const char *const[]){"--registry", reg_ep, "--key-file",
                                         secret_path, "echo", "x", NULL}),
        1);
    ONE_LINE("not two lines");
}

/* The example service of apps/examples/: pico_service.so hosted by a real
 * picos-node (docs/node.md) in the cluster, called as the README shows.
 * "time" answers the node's time as text (the year in it, a newline added
 * by the client); anything else is the service's error, exit 1. The node
 * is static for proctest.h's table: killed at the end, or by its atexit
 * and signal handlers when an assertion leaves early. */
static kid node;

PT_TEST(example_service_on_picos_node)
static void
example_service_on_picos_node(void)
{
    char line[512] = "", err[2048], errpath[160], y0[16], y1[16];
    kid_opts o = {.clean_env = true, .errpath = errpath};
    time_t t;
    struct tm tm;

    cluster_up();
    pt_tmppath(errpath, sizeof errpath, "picos-node.err");
    CU_ASSERT_FATAL(kid_run(
        &node, PICOS_NODE,
        (const char *[]){"--registry", reg_ep, "--secret-file", secret_path,
                         "--name", "py-example", "--heartbeat", NET_HB,
                         "--timeout", NET_TIMEOUT, "--service", PICO_SERVICE_SO,
                         NULL},
        &o));
    if (!read_line(node.out, line, sizeof line, WAIT) ||
        !strstr(line, " listening on tcp://") ||
        !strstr(line, "1 service: pico_service v")) {
        kid_wait(&node, 1.0);
        fprintf(stderr, "picos-node did not start: '%s' %s\n", line,
                kid_errtext(&node, err, sizeof err));
        kid_free(&node);
        CU_FAIL_FATAL("picos-node");
    }

    /* the year before and after the call: either is the node's */
    t = time(NULL);
    localtime_r(&t, &tm);
    snprintf(y0, sizeof y0, "%d", tm.tm_year + 1900);
    CU_ASSERT_EQUAL(CALL("pico_service", "time"), 0);
    t = time(NULL);
    localtime_r(&t, &tm);
    snprintf(y1, sizeof y1, "%d", tm.tm_year + 1900);
    if (!strstr(R.out, y0) && !strstr(R.out, y1))
        fprintf(stderr, "\npico_service time: '%s'\n", R.out);
    CU_ASSERT_TRUE(strstr(R.out, y0) || strstr(R.out, y1));
    CU_ASSERT_EQUAL(count_lines(R.out), 1); /* "Tue Dec  1 16:55:00 2026" */
    CU_ASSERT_STRING_EQUAL(R.err, "");

    CU_ASSERT_EQUAL(CALL("pico_service", "date"), 1);
    ONE_LINE("unknown request 'date'");
    CU_ASSERT_STRING_EQUAL(R.out, "");

    kid_free(&node);
}

/* The service node killed (SIGKILL) while a call runs: the client's link
 * to it goes silent and the call ends with "node is down" — long before
 * its 60 s deadline. Last: it kills the peer (cluster_up starts another). */
PT_TEST(node_killed_during_call)
static void
node_killed_during_call(void)
{
    char line[512] = "";
    bool accepted = false;
    double end;

    cluster_up();
    CU_ASSERT_FATAL(client_start(
        &py,
        (const char *const[]){"--registry", reg_ep, "--secret-file",
                              secret_path, "--timeout", "60", "-v", "slow",
                              "50", NULL},
        NULL));
    end = pc_now() + WAIT;
    while (!accepted && read_line(py.err, line, sizeof line, end - pc_now()))
        accepted = strstr(line, "accepted: task") != NULL;
    CU_ASSERT_FATAL(accepted);
    nt_stop(&peer); /* kill -9 of its group */
    CU_ASSERT_TRUE(kid_wait(&py, WAIT));
    if (py.pid == 0)
        CU_ASSERT_EQUAL(exit_code(&py), 1);
    slurp(py.err, R.err, sizeof R.err);
    if (!strstr(R.err, "its node is down"))
        fprintf(stderr, "\nclient's stderr after the kill: '%s'\n", R.err);
    CU_ASSERT_PTR_NOT_NULL(strstr(R.err, "its node is down"));
    kid_free(&py);
}

/* ---- main: skip without the packages -------------------------------------------- */

/* Why the client can't run here, or NULL. Generates the protobuf modules
 * into pbdir. */
static const char *
missing(void)
{
    static const char check[] =
        "import zmq, google.protobuf; assert zmq.has('curve')";
    static char why[1400];
    char out[1024] = "";
    kid k;

    if (!*PYTHON3)
        return "no python3 found at configure time";
    if (!*PROTOC)
        return "no protoc (Debian package protobuf-compiler) found at "
               "configure time";
    if (!kid_run(&k, PYTHON3, (const char *[]){"-c", check, NULL}, NULL))
        return "python3 could not be started";
    if (!kid_wait(&k, WAIT) || exit_code(&k) != 0) {
        char *last;
        slurp(k.err, out, sizeof out);
        kid_free(&k);
        while (*out && out[strlen(out) - 1] == '\n')
            out[strlen(out) - 1] = '\0';
        last = strrchr(out, '\n'); /* a traceback's last line says it */
        snprintf(why, sizeof why,
                 "%s lacks zmq with CURVE or protobuf (Debian packages "
                 "python3-zmq python3-protobuf): %s",
                 PYTHON3, last ? last + 1 : out);
        return why;
    }
    kid_free(&k);
    /* the modules, from proto/, now */
    pt_tmppath(pbdir, sizeof pbdir, "pb");
    snprintf(pbenv, sizeof pbenv, "PICOS_PB_DIR=%s", pbdir);
    if (mkdir(pbdir, 0700) ||
        !kid_run(&k, PROTOC,
                 (const char *[]){
                     "-I", PROTO_DIR, "--python_out", pbdir,
                     PROTO_DIR "/control.proto", PROTO_DIR "/envelope.proto",
                     PROTO_DIR "/registry.proto", PROTO_DIR "/rps.proto", NULL},
                 NULL) ||
        !kid_wait(&k, WAIT) || exit_code(&k) != 0) {
        slurp(k.err, out, sizeof out);
        kid_free(&k);
        fprintf(stderr, "protoc --python_out failed: %s\n", out);
        exit(1); /* not a missing package: a broken schema */
    }
    kid_free(&k);
    return NULL;
}

int
main(int argc, char **argv)
{
    static const pt_test tests[] = {
        PT_ENTRY(call_returns_value),
        PT_ENTRY(failures_with_reasons),
        PT_ENTRY(not_found),
        PT_ENTRY(wrong_secret),
        PT_ENTRY(key_files),
        PT_ENTRY(example_service_on_picos_node),
        PT_ENTRY(node_killed_during_call),
    };
    const char *why;

    pt_tmpdir();
    if ((why = missing()) != NULL) {
        printf("SKIP: %s\n", why);
        return 77;
    }
    return pt_main(argc, argv, "python", tests, sizeof tests / sizeof *tests);
}
