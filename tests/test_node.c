/* tests/test_node.c — picos-node (apps/node/) as a real process: a
 * picos-registry, picos-node hosting the node_svc libraries
 * (tests/node_svc.c), this program as the client node, `picos reload`.
 *
 * The main thread drives: it starts the processes (proctest.h: process
 * groups of their own, killed on every way out), reads their lines,
 * signals them, runs the CLI, and calls the services itself through the
 * RPS API (a foreign thread may); load runs in tasks of this program's
 * node. The library a node hosts is a file of the test's (dir/svc.so)
 * that the test overwrites in place with another build before a reload,
 * as a user would with cp. Calls are held in flight by the service's
 * "wait" request: the call task answers once the test sends it a message,
 * so "in flight during the reload" is a fact, not a matter of timing.
 * Waits are bounded by PT_LONG; the few polls wait for a condition the
 * node reaches on its own (a line in its stderr file, a copy unmapped).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/stat.h>

#include "picos/net.h"
#include "picos/registry.h"
#include "picos/rps.h"

#include "netutil.h"
#include "testutil.h"

/* The stop's grace: long enough for a released call to end within it. */
#if defined(__SANITIZE_THREAD__)
#define GRACE "8"
#else
#define GRACE "2"
#endif

/* ---- processes ------------------------------------------------------------------ */

typedef struct rg {
    kid k;
    char dir[128], ep[256];
} rg;

static rg R;

static void
rg_start(void)
{
    char line[512] = "", err[2048];
    kid_opts o = {.errpath = R.k.errpath, .clean_env = true};

    secrets();
    CU_ASSERT_FATAL(pt_mkdtemp(R.dir, sizeof R.dir, "reg"));
    snprintf(R.k.errpath, sizeof R.k.errpath, "%s/stderr", R.dir);
    CU_ASSERT_FATAL(kid_run(
        &R.k, REGISTRY,
        (const char *[]){"--listen", "tcp://127.0.0.1:0", "--data-dir", R.dir,
                         "--secret-file", secret_path, "--heartbeat", NET_HB,
                         "--timeout", NET_TIMEOUT, NULL},
        &o));
    if (!read_line(R.k.out, line, sizeof line, PT_LONG) ||
        sscanf(line, "%*s %*s listening on %255s", R.ep) != 1) {
        fprintf(stderr, "picos-registry did not start: '%s' %s\n", line,
                kid_errtext(&R.k, err, sizeof err));
        kid_free(&R.k);
        CU_FAIL_FATAL("picos-registry did not start");
    }
}

/* A picos-node: its directory with its config and its library copy. */
typedef struct node {
    kid k;
    char dir[128], lib[192], ini[192], errfile[192];
    char line[2048]; /* its startup line */
} node;

/* Write `src`'s bytes over `dst` in place (O_TRUNC: the same inode), as
 * cp does. */
static void
put_file(const char *dst, const char *src)
{
    static char buf[1 << 22];
    int in = open(src, O_RDONLY | O_CLOEXEC), out;
    ssize_t n;

    CU_ASSERT_FATAL(in >= 0);
    n = read(in, buf, sizeof buf);
    close(in);
    CU_ASSERT_FATAL(n > 0 && n < (ssize_t)sizeof buf);
    out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    CU_ASSERT_FATAL(out >= 0);
    CU_ASSERT_FATAL(write(out, buf, (size_t)n) == n);
    close(out);
}

/* The config: [node] with the registry, the secret and the library;
 * [service "svc"] with the service's name, its reply prefix, and `more`
 * (extra lines, may be ""). */
static void
node_config(node *n, const char *svc, const char *prefix, const char *more)
{
    char text[2048];

    snprintf(text, sizeof text,
             "; written by test_node\n"
             "[node]\n"
             "name = from-the-config\n"
             "registry = %s\n"
             "secret_file = %s\n"
             "heartbeat = " NET_HB "\n"
             "timeout = " NET_TIMEOUT "\n"
             "service = %s\n"
             "\n"
             "[service \"svc\"]\n"
             "name = %s\n"
             "prefix = %s\n"
             "%s",
             R.ep, secret_path, n->lib, svc, prefix, more);
    write_file(n->ini, text);
}

static void
node_files(node *n, const char *lib_src, const char *svc, const char *prefix,
           const char *more)
{
    memset(n, 0, sizeof *n);
    n->k.out = n->k.err = -1;
    CU_ASSERT_FATAL(pt_mkdtemp(n->dir, sizeof n->dir, "node"));
    snprintf(n->lib, sizeof n->lib, "%s/svc.so", n->dir);
    snprintf(n->ini, sizeof n->ini, "%s/node.ini", n->dir);
    snprintf(n->errfile, sizeof n->errfile, "%s/stderr", n->dir);
    put_file(n->lib, lib_src);
    node_config(n, svc, prefix, more);
}

/* Start it with --config, `name` and `grace`, the test's environment
 * cleaned of PICOS_* plus `env` (NULL-terminated, may be NULL), and read
 * its startup line. */
static void
node_start_env(node *n, const char *name, const char *grace,
               const char *const *env)
{
    kid_opts o = {.errpath = n->errfile, .clean_env = true, .env = env};
    char err[4096];

    CU_ASSERT_FATAL(kid_run(&n->k, NODE_BIN,
                            (const char *[]){"--config", n->ini, "--name", name,
                                             "--grace", grace, NULL},
                            &o));
    if (!read_line(n->k.out, n->line, sizeof n->line, PT_LONG) ||
        !strstr(n->line, " listening on ")) {
        kid_wait(&n->k, 1.0);
        fprintf(stderr, "picos-node did not start: '%s' %s\n", n->line,
                kid_errtext(&n->k, err, sizeof err));
        kid_free(&n->k);
        CU_FAIL_FATAL("picos-node did not start");
    }
}

static void
node_start(node *n, const char *name, const char *grace)
{
    node_start_env(n, name, grace, NULL);
}

/* SIGTERM, then its exit status (-1: it did not end). */
static int
node_term(node *n)
{
    int rc = -1;

    kill(n->k.pid, SIGTERM);
    if (kid_wait(&n->k, PT_LONG))
        rc = exit_code(&n->k);
    kid_free(&n->k);
    return rc;
}

/* Whether the node's stderr file holds `text` `times` times, waiting up
 * to PT_LONG for them to appear. */
static bool
node_said_times(const node *n, const char *text, int times)
{
    static char buf[1 << 20];
    double t0 = pc_now();

    do {
        int found = 0;
        kid_errtext(&n->k, buf, sizeof buf);
        for (const char *p = buf; (p = strstr(p, text)); p++)
            found++;
        if (found >= times)
            return true;
        usleep(10000);
    } while (pt_since(t0) < PT_LONG);
    fprintf(stderr, "picos-node's stderr lacks '%s' x %d:\n%s\n", text, times,
            buf);
    return false;
}

static bool
node_said(const node *n, const char *text)
{
    return node_said_times(n, text, 1);
}

/* Run a program to its end: exit status (-1: it did not end), stdout and
 * stderr. */
static int
run(const char *path, const char *const *args, char *out, size_t osize,
    char *err, size_t esize)
{
    static int seq;
    char errpath[160], name[32];
    kid k;
    kid_opts o = {.errpath = errpath, .clean_env = true};
    int rc = -1;

    snprintf(name, sizeof name, "run-%d.err", seq++);
    pt_tmppath(errpath, sizeof errpath, name);
    out[0] = err[0] = '\0';
    if (!kid_run(&k, path, args, &o))
        return -1;
    if (kid_wait(&k, 2 * PT_LONG))
        rc = exit_code(&k);
    slurp(k.out, out, osize);
    kid_errtext(&k, err, esize);
    kid_free(&k);
    return rc;
}

#define CLI(out, err, ...)                                                     \
    run(PICOS_CLI,                                                             \
        (const char *[]){"--registry", R.ep, "--secret-file", secret_path,     \
                         __VA_ARGS__, NULL},                                   \
        out, sizeof out, err, sizeof err)

/* s is one line (ends with its only newline) starting `start` and holding
 * `what`. */
static bool
one_line(const char *s, const char *start, const char *what)
{
    bool ok = count_lines(s) == 1 && !strncmp(s, start, strlen(start)) &&
              strstr(s, what);
    if (!ok)
        fprintf(stderr, "want one line '%s...%s...', got:\n%s\n", start, what,
                s);
    return ok;
}

/* ---- the client ------------------------------------------------------------------ */

static void
client_join(void)
{
    pc_cluster_opts o = {0};
    pc_err rc;

    PT_START(2);
    o.registries = R.ep;
    o.net.secret_file = secret_path;
    o.net.heartbeat = atof(NET_HB);
    o.net.timeout = atof(NET_TIMEOUT);
    o.join_timeout = PT_LONG;
    rc = pc_cluster_join(&o);
    CU_ASSERT_EQUAL_FATAL(rc, PC_OK);
}

static void
client_leave(void)
{
    pc_node_stop();
    PT_RUN();
}

/* One request/reply with text `req`: the result, the reply's text in out. */
static pc_err
request(pc_rps_client *c, const char *req, char *out, size_t size)
{
    pc_msg *m = NULL, *r = NULL;
    pc_err rc;

    out[0] = '\0';
    if (!c || pc_msg_new_str(&m, "text", req) != PC_OK)
        return PC_ENOMEM;
    if ((rc = pc_rps_request(c, &m, PT_LONG, &r)) != PC_OK)
        pc_msg_free(&m);
    if (r)
        snprintf(out, size, "%s", pc_msg_str(r));
    pc_msg_free(&r);
    return rc;
}

/* A call of c with text `req`, accepted (its task runs), or NULL. */
static struct pc_rps_call *
call(pc_rps_client *c, const char *req)
{
    struct pc_rps_call *k = NULL;
    pc_msg *m = NULL;

    if (!c || pc_msg_new_str(&m, "text", req) != PC_OK)
        return NULL;
    TCHECK_RC(pc_rps_call(c, &m, PT_LONG, &k), PC_OK);
    pc_msg_free(&m);
    return k;
}

/* Let a "wait" call go on (its task waits for a message from us). */
static void
release_call(struct pc_rps_call *k)
{
    if (k)
        TCHECK_RC(pc_send_data(pc_rps_call_task(k), "go", NULL, 0), PC_OK);
}

/* Finish k: its result must be `want`, its text `text` (when PC_OK). */
static void
finish(struct pc_rps_call **k, pc_err want, const char *text)
{
    pc_msg *v = NULL;

    if (!*k) {
        TCHECK(!"no call");
        return;
    }
    TCHECK_RC(pc_rps_finish(*k, PT_LONG, &v), want);
    if (want == PC_OK)
        TCHECK_STR(v ? pc_msg_str(v) : "(no value)", text);
    pc_msg_free(&v);
    pc_rps_call_free(k);
}

/* ---- bad libraries, bad options: exit 2 with one line ----------------------------- */

/* Run picos-node with args; its status must be `code` and its stderr one
 * line holding `what`. */
static void
expect_exit(const char *const *args, int code, const char *what)
{
    char out[4096], err[4096];
    int rc = run(NODE_BIN, args, out, sizeof out, err, sizeof err);

    CU_ASSERT_EQUAL(rc, code);
    CU_ASSERT(one_line(err, "picos-node: ", what));
    CU_ASSERT_STRING_EQUAL(out, "");
}

PT_TEST(bad_library_exit_2)
static void
bad_library_exit_2(void)
{
    char dead[64], text[160], missing[160], ini[160], out[8192], err[1024];
    int fd = dead_endpoint(dead, sizeof dead);

    secrets();
    write_tmp_file(text, sizeof text, "text.so", "not a shared library\n");
    pt_tmppath(missing, sizeof missing, "missing.so");
#define NODE_ARGS(lib)                                                         \
    "--registry", dead, "--secret-file", secret_path, "--service", (lib)
    expect_exit((const char *[]){NODE_ARGS(SVC_NOSYM), NULL}, 2,
                SVC_NOSYM ": no picos_service_abi symbol: not a picos service "
                          "library");
    expect_exit((const char *[]){NODE_ARGS(SVC_BADABI), NULL}, 2,
                SVC_BADABI ": service ABI 99, this picos-node takes 1");
    expect_exit((const char *[]){NODE_ARGS(text), NULL}, 2,
                "text.so: can't load it: ");
    expect_exit((const char *[]){NODE_ARGS(text), NULL}, 2,
                "(not a shared library)");
    expect_exit((const char *[]){NODE_ARGS(missing), NULL}, 2,
                "missing.so: can't read it: No such file");
    /* the good one first: every library is checked before the node starts */
    expect_exit(
        (const char *[]){NODE_ARGS(SVC_V1), "--service", SVC_BADABI, NULL}, 2,
        "service ABI 99");
    /* two libraries of one name would share a config section */
    expect_exit((const char *[]){NODE_ARGS(SVC_V1), "--service", SVC_V1, NULL},
                2, "is given already");
#undef NODE_ARGS
    /* options and config */
    expect_exit((const char *[]){"--registry", dead, NULL}, 2,
                "no service library");
    expect_exit((const char *[]){"--bogus", "1", NULL}, 2,
                "unknown option '--bogus'");
    expect_exit((const char *[]){"--grace", "soon", "--service", SVC_V1, NULL},
                2, "--grace: bad value 'soon'");
    write_tmp_file(ini, sizeof ini, "bad.ini", "[node]\nservise = x.so\n");
    expect_exit((const char *[]){"--config", ini, NULL}, 2,
                "bad.ini:2: unknown key 'servise'");
    write_tmp_file(ini, sizeof ini, "bad2.ini", "[nodes]\nname = x\n");
    expect_exit((const char *[]){"--config", ini, NULL}, 2,
                "unknown section 'nodes'");
    CU_ASSERT_EQUAL(run(NODE_BIN, (const char *[]){"--help", NULL}, out,
                        sizeof out, err, sizeof err),
                    0);
    CU_ASSERT(strstr(out, "usage: picos-node") != NULL);
    close(fd);
}

/* ---- calls, config, the startup line ---------------------------------------------- */

PT_TEST(calls_and_startup_line)
static void
calls_and_startup_line(void)
{
    static node n;
    char want[512], out[256], err[4096];
    pc_rps_client *c;
    pc_ref ctl;

    rg_start();
    node_files(&n, SVC_V1, "echo1", "p-", "");
    /* --name on the command line beats the config's */
    node_start(&n, "nodeA", GRACE);
    CU_ASSERT(!strncmp(n.line, "picos-node nodeA listening on tcp://", 36));
    snprintf(want, sizeof want,
             " (registry %s; 2 services: echo1 v1 [svc.so], echo1.old v1 "
             "[svc.so])",
             R.ep);
    CU_ASSERT(strstr(n.line, want) != NULL);
    if (!strstr(n.line, want))
        fprintf(stderr, "startup line: %s\nwant: ...%s\n", n.line, want);
    client_join();
    c = nt_locate("echo1");
    TCHECK_RC(request(c, "x", out, sizeof out), PC_OK);
    TCHECK_STR(out, "v1 p-x"); /* the prefix came from [service "svc"] */
    pc_rps_client_free(&c);
    c = nt_locate("echo1.old");
    TCHECK_RC(request(c, "y", out, sizeof out), PC_OK);
    TCHECK_STR(out, "v1 p-y");
    pc_rps_client_free(&c);
    /* the control task of `picos reload` */
    TCHECK_RC(pc_locate(PC_NAME_TASK, "picos-node/nodeA", 0, &ctl), PC_OK);
    client_leave();
    CU_ASSERT_EQUAL(node_term(&n), 0);
    /* a clean stop says nothing */
    CU_ASSERT_STRING_EQUAL(kid_errtext(&n.k, err, sizeof err), "");
    kid_free(&R.k);
}

/* ---- failures to start: exit 1 (runtime) or 2 (the library) ----------------------- */

PT_TEST(start_failures)
static void
start_failures(void)
{
    static node a, b;
    char dead[64], out[1024], err[4096];
    int fd;

    rg_start();
    /* wrong secret */
    node_files(&b, SVC_V1, "ws", "", "");
    CU_ASSERT_EQUAL(run(NODE_BIN,
                        (const char *[]){"--config", b.ini, "--secret-file",
                                         other_path, NULL},
                        out, sizeof out, err, sizeof err),
                    1);
    CU_ASSERT(one_line(
        err, "picos-node: ", "refused our key: wrong cluster secret?"));
    /* no registry within the join timeout */
    fd = dead_endpoint(dead, sizeof dead);
    CU_ASSERT_EQUAL(run(NODE_BIN,
                        (const char *[]){"--config", b.ini, "--registry", dead,
                                         "--join-timeout", "0.5", NULL},
                        out, sizeof out, err, sizeof err),
                    1);
    CU_ASSERT(one_line(err, "picos-node: ", "no answer within 0.5 s"));
    close(fd);
    /* the library's init fails: a bad library, found after the join */
    node_files(&b, SVC_V1, "fi", "", "fail_init = yes\n");
    CU_ASSERT_EQUAL(run(NODE_BIN, (const char *[]){"--config", b.ini, NULL},
                        out, sizeof out, err, sizeof err),
                    2);
    CU_ASSERT(one_line(err, "picos-node: ",
                       "svc.so: picos_service_init failed: invalid argument"));
    /* names taken: a service's, the node's */
    node_files(&a, SVC_V1, "dup", "", "");
    node_start(&a, "nodeD", GRACE);
    node_files(&b, SVC_V1, "dup", "", "");
    CU_ASSERT_EQUAL(
        run(NODE_BIN,
            (const char *[]){"--config", b.ini, "--name", "nodeE", NULL}, out,
            sizeof out, err, sizeof err),
        1);
    CU_ASSERT(one_line(
        err, "picos-node: ", "service dup: the name is taken (another node"));
    node_files(&b, SVC_V1, "notdup", "", "");
    CU_ASSERT_EQUAL(
        run(NODE_BIN,
            (const char *[]){"--config", b.ini, "--name", "nodeD", NULL}, out,
            sizeof out, err, sizeof err),
        1);
    CU_ASSERT(one_line(err, "picos-node: ", "node name nodeD is taken"));
    CU_ASSERT_EQUAL(node_term(&a), 0);
    /* no secret at all; then the secret from $PICOS_SECRET_FILE */
    {
        const char *args[] = {"--registry", R.ep,        "--name",      "nodeS",
                              "--service",  b.lib,       "--heartbeat", NET_HB,
                              "--timeout",  NET_TIMEOUT, NULL};
        char env[200], line[1024];
        const char *envv[] = {env, NULL};
        kid_opts o = {.env = envv, .clean_env = true, .errpath = b.errfile};

        CU_ASSERT_EQUAL(run(NODE_BIN, args, out, sizeof out, err, sizeof err),
                        1);
        CU_ASSERT(one_line(err, "picos-node: ", "no cluster secret"));
        snprintf(env, sizeof env, "PICOS_SECRET_FILE=%s", secret_path);
        CU_ASSERT_FATAL(kid_run(&b.k, NODE_BIN, args, &o));
        CU_ASSERT(read_line(b.k.out, line, sizeof line, PT_LONG) &&
                  strstr(line, "picos-node nodeS listening on "));
        CU_ASSERT_EQUAL(node_term(&b), 0);
    }
    kid_free(&R.k);
}

/* ---- SIGTERM with calls in flight ------------------------------------------------- */

PT_TEST(sigterm_grace)
static void
sigterm_grace(void)
{
    static node n;
    struct pc_rps_call *a, *b;
    pc_rps_client *c;
    char out[128];
    double t0;

    rg_start();
    node_files(&n, SVC_V1, "gr", "", "");
    node_start(&n, "nodeG", GRACE);
    client_join();
    c = nt_locate("gr");
    a = call(c, "wait a");
    b = call(c, "wait b");
    kill(n.k.pid, SIGTERM);
    /* the close has begun once the service refuses calls */
    t0 = pc_now();
    while (request(c, "x", out, sizeof out) == PC_OK && pt_since(t0) < PT_LONG)
        ;
    TCHECK(pt_since(t0) < PT_LONG);
    /* a may finish within the grace: it does once we let it */
    release_call(a);
    finish(&a, PC_OK, "v1 a");
    /* b never goes on: CLOSED once the grace has passed */
    finish(&b, PC_ECLOSED, NULL);
    pc_rps_client_free(&c);
    CU_ASSERT(kid_wait(&n.k, PT_LONG));
    CU_ASSERT_EQUAL(exit_code(&n.k), 0);
    kid_free(&n.k);
    client_leave();
    kid_free(&R.k);
}

/* ---- reload under load ----------------------------------------------------------- */

#define HELD 100 /* calls held in flight across each reload */
#define LOADERS 4

/* Each reload's copy answers with a prefix of its own: "p-" the first,
 * "q-" the second, "r-" the third. A call started after the test learnt
 * of reload `phase` must run that copy or a later one; calls started
 * during a reload may run either. */
static atomic_bool load_stop;
static atomic_long load_calls, load_ok, load_wrong, load_phase_calls[3];
static atomic_int phase;

static pc_msg *
loader(void *arg)
{
    pc_rps_client *c = nt_locate(arg);
    char out[128];

    while (c && !atomic_load(&load_stop)) {
        int p = atomic_load(&phase), gen;
        pc_err rc = request(c, "q", out, sizeof out);
        atomic_fetch_add(&load_calls, 1);
        if (rc != PC_OK) {
            TCHECK_RC(rc, PC_OK);
            continue;
        }
        atomic_fetch_add(&load_ok, 1);
        atomic_fetch_add(&load_phase_calls[p], 1);
        gen = strlen(out) > 3 ? out[3] - 'p' : -1;
        if (gen < p || gen > 2 || strcmp(out + 4, "-q") ||
            out[1] != (gen == 1 ? '2' : '1')) {
            if (atomic_fetch_add(&load_wrong, 1) == 0)
                fprintf(stderr, "loader: after reload %d got '%s'\n", p, out);
            TCHECK(!"a call started after a reload ran older code");
        }
    }
    pc_rps_client_free(&c);
    return NULL;
}

/* Wait until every loader has made calls in phase p (they run during
 * each reload, not only around it). */
static void
load_seen(int p)
{
    double t0 = pc_now();
    while (atomic_load(&load_phase_calls[p]) < LOADERS &&
           pt_since(t0) < PT_LONG)
        usleep(1000);
    CU_ASSERT(atomic_load(&load_phase_calls[p]) >= LOADERS);
}

/* How many copies of the node's library are mapped in it now. */
static int
copies_mapped(const node *n)
{
    char path[64], line[1024], seen[8][256];
    int count = 0;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%d/maps", (int)n->k.pid);
    if (!(f = fopen(path, "r")))
        return -1;
    while (fgets(line, sizeof line, f)) {
        char *p = strstr(line, "/picos-node.");
        bool dup = false;
        if (!p || !strstr(p, "-svc.so"))
            continue;
        p[strcspn(p, "\n")] = '\0';
        for (int i = 0; i < count; i++)
            dup |= !strcmp(seen[i], p);
        if (!dup && count < 8)
            snprintf(seen[count++], sizeof seen[0], "%s", p);
    }
    fclose(f);
    return count;
}

/* Wait (bounded) for the node to have unloaded its `unloads`th old copy:
 * its log says so (PICOS_LOG=info), and only one copy is left mapped.
 * (Not under TSan, whose runtime keeps a dlclose()d library mapped.) */
static void
copies_unloaded(const node *n, int unloads)
{
    CU_ASSERT(node_said_times(n, "svc.so: old copy unloaded", unloads));
#if !defined(__SANITIZE_THREAD__)
    double t0 = pc_now();
    while (copies_mapped(n) != 1 && pt_since(t0) < PT_LONG)
        usleep(10000);
    CU_ASSERT_EQUAL(copies_mapped(n), 1);
#endif
}

/* Start HELD "wait" calls of c named tag0.. tagN into k. */
static void
hold(pc_rps_client *c, const char *tag, struct pc_rps_call **k)
{
    for (int i = 0; i < HELD; i++) {
        char req[32];
        snprintf(req, sizeof req, "wait %s%d", tag, i);
        k[i] = call(c, req);
    }
}

/* Let them go and check each ends with "v<version> <prefix><tag><i>". */
static void
release_all(struct pc_rps_call **k, int version, const char *prefix,
            const char *tag)
{
    for (int i = 0; i < HELD; i++)
        release_call(k[i]);
    for (int i = 0; i < HELD; i++) {
        char want[64];
        snprintf(want, sizeof want, "v%d %s%s%d", version, prefix, tag, i);
        finish(&k[i], PC_OK, want);
    }
}

PT_TEST(reload_under_load)
static void
reload_under_load(void)
{
    static node n;
    static struct pc_rps_call *old[HELD], *nu[HELD];
    char line[1024], out[4096], err[2048], want[512];
    pc_spawn_opts so = {.flags = PC_TASK_JOINABLE};
    pc_ref loaders[LOADERS];
    pc_rps_client *c, *added;

    rg_start();
    node_files(&n, SVC_V1, "rl", "p-", "");
    node_start_env(&n, "nodeR", GRACE,
                   (const char *[]){"PICOS_LOG=info", NULL});
    client_join();
    c = nt_locate("rl");
    atomic_store(&load_stop, false);
    for (int i = 0; i < LOADERS; i++)
        TCHECK_RC(pc_spawn(loader, "rl", &so, &loaders[i]), PC_OK);
    load_seen(0);

    /* 1. v2 copied over the library, SIGHUP */
    hold(c, "o", old);
    put_file(n.lib, SVC_V2);
    node_config(&n, "rl", "q-", ""); /* the new copy's init reads it anew */
    kill(n.k.pid, SIGHUP);
    CU_ASSERT(read_line(n.k.out, line, sizeof line, PT_LONG));
    snprintf(want, sizeof want,
             "picos-node nodeR reloaded %s: rl v1 -> v2, rl.new v2 added, "
             "rl.old v1 closed",
             n.lib);
    CU_ASSERT_STRING_EQUAL(line, want);
    atomic_store(&phase, 1);
    /* both copies mapped while old calls run the old one */
    CU_ASSERT_EQUAL(copies_mapped(&n), 2);
    load_seen(1);
    hold(c, "n", nu);
    added = nt_locate("rl.new");
    TCHECK_RC(request(added, "z", out, sizeof out), PC_OK);
    TCHECK_STR(out, "v2 q-z");
    pc_rps_client_free(&added);
    /* calls in flight finish on the code and the state they started with */
    release_all(old, 1, "p-", "o");
    release_all(nu, 2, "q-", "n");
    /* the old copy is unloaded after its last call */
    copies_unloaded(&n, 1);

    /* 2. v1 copied back, `picos reload NODE SERVICE` */
    hold(c, "o", old);
    put_file(n.lib, SVC_V1);
    node_config(&n, "rl", "r-", "");
    CU_ASSERT_EQUAL(CLI(out, err, "reload", "nodeR", "rl"), 0);
    CU_ASSERT(strstr(out, "rl") && strstr(out, "updated") &&
              strstr(out, "v2 -> v1"));
    CU_ASSERT(strstr(out, "rl.old") && strstr(out, "added"));
    CU_ASSERT(strstr(out, "rl.new") && strstr(out, "closed"));
    CU_ASSERT_STRING_EQUAL(err, "");
    CU_ASSERT(read_line(n.k.out, line, sizeof line, PT_LONG));
    CU_ASSERT(strstr(line, "picos-node nodeR reloaded ") != NULL);
    atomic_store(&phase, 2);
    load_seen(2);
    hold(c, "n", nu);
    release_all(old, 2, "q-", "o");
    release_all(nu, 1, "r-", "n");
    copies_unloaded(&n, 2);

    atomic_store(&load_stop, true);
    for (int i = 0; i < LOADERS; i++)
        TCHECK_RC(pc_task_join(loaders[i], PT_LONG, NULL), PC_OK);
    /* not one call lost, not one with the wrong code */
    CU_ASSERT_EQUAL(atomic_load(&load_ok), atomic_load(&load_calls));
    CU_ASSERT_EQUAL(atomic_load(&load_wrong), 0);
    pc_rps_client_free(&c);
    CU_ASSERT_EQUAL(node_term(&n), 0);
    client_leave();
    kid_free(&R.k);
}

/* ---- a broken library on reload ------------------------------------------------------ */

PT_TEST(reload_broken_keeps_old)
static void
reload_broken_keeps_old(void)
{
    static node n;
    char out[4096], err[2048], text[160], want[512];
    pc_rps_client *c;

    rg_start();
    node_files(&n, SVC_V1, "bk", "p-", "");
    node_start(&n, "nodeB", GRACE);
    client_join();
    c = nt_locate("bk");
    /* not a shared library: the CLI says why, the old code serves on */
    write_tmp_file(text, sizeof text, "junk", "this is not a library\n");
    put_file(n.lib, text);
    CU_ASSERT_EQUAL(CLI(out, err, "reload", "nodeB"), 1);
    snprintf(want, sizeof want,
             "reload on node nodeB: %s: can't load it: ", n.lib);
    CU_ASSERT(one_line(err, "picos: ", want));
    CU_ASSERT(strstr(err, "(the old code keeps running)") != NULL);
    CU_ASSERT(node_said(&n, "(the old code keeps running)"));
    TCHECK_RC(request(c, "x", out, sizeof out), PC_OK);
    TCHECK_STR(out, "v1 p-x");
    /* a wrong ABI, by SIGHUP: one line on the node's stderr */
    put_file(n.lib, SVC_BADABI);
    kill(n.k.pid, SIGHUP);
    CU_ASSERT(node_said(&n, "service ABI 99"));
    TCHECK_RC(request(c, "y", out, sizeof out), PC_OK);
    TCHECK_STR(out, "v1 p-y");
    /* not found: a service, a node */
    CU_ASSERT_EQUAL(CLI(out, err, "reload", "nodeB", "nosuch"), 3);
    CU_ASSERT(one_line(err, "picos: ", "no service or library named 'nosuch'"));
    CU_ASSERT_EQUAL(CLI(out, err, "reload", "nosuchnode"), 3);
    CU_ASSERT(one_line(err, "picos: ", "no picos-node named 'nosuchnode'"));
    /* and a good library after all that; by the library's name, --json */
    put_file(n.lib, SVC_V2);
    CU_ASSERT_EQUAL(CLI(out, err, "--json", "reload", "nodeB", "svc"), 0);
    CU_ASSERT(strstr(out, "\"change\": \"updated\"") != NULL);
    CU_ASSERT(strstr(out, "\"version\": 2") != NULL);
    TCHECK_RC(request(c, "z", out, sizeof out), PC_OK);
    TCHECK_STR(out, "v2 p-z");
    pc_rps_client_free(&c);
    CU_ASSERT_EQUAL(node_term(&n), 0);
    client_leave();
    kid_free(&R.k);
}

PT_MAIN("node", PT_ENTRY(bad_library_exit_2), PT_ENTRY(calls_and_startup_line),
        PT_ENTRY(start_failures), PT_ENTRY(sigterm_grace),
        PT_ENTRY(reload_under_load), PT_ENTRY(reload_broken_keeps_old))
