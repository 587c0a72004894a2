/* tests/test_examples_net.c — picos-remote-task-server and -client
 * (apps/examples/remote_task_*.c) and picos-remote-channel-server and
 * -client (apps/examples/remote_channel_*.c) run as real processes; so do
 * the RPS and chat pairs (rps_pico_*, rps_monitor_*, pico_*_task,
 * chat_chan_*), each with a picos-registry of its own (EX_PICO_SERVICE ...
 * EX_CHAT_CLIENT), judged by their results, counts and exit statuses.
 *
 * Each test starts the programs the way a user would, from their paths
 * (EX_SERVER, EX_CLIENT, EX_CHAN_SERVER, EX_CHAN_CLIENT, set by CMake), and
 * judges them by what a user sees: exit status, stdout, stderr. The two
 * pairs share options, secret handling and error lines, so the tests of
 * those are written once and run for each pair (an `example`). The server binds
 * tcp://127.0.0.1:0 and the test reads the endpoint from its first line; an
 * unreachable peer is a port the test holds bound but not listening, so nobody
 * else can take it during the test.
 *
 * Children are proctest.h's: process groups of their own with
 * PR_SET_PDEATHSIG, killed and reaped by kids_kill() at the end of each
 * test, at exit and on fatal signals, with a cleaned environment (no
 * PICOS_SECRET*, PICOS_LOG from the caller), so each test says exactly
 * which secret a program holds. The secret files live in pt_tmpdir().
 */
#define _GNU_SOURCE
#include "proctest.h"
#include "testutil.h"

/* Waits that must end: generous, so a loaded sanitizer run never trips
 * them; a hang still fails long before ctest's timeout. */
#define EX_WAIT 30.0

/* ---- children ---------------------------------------------------------- */

static char secret1[160], secret2[160];
static char regdir[160]; /* the registry test's data dir */

static int
count_of(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)); p += strlen(what))
        n++;
    return n;
}

/* Whether every line of s holds `what` (true for ""). */
static bool
only_lines_with(const char *s, const char *what)
{
    while (*s) {
        const char *nl = strchr(s, '\n'), *hit = strstr(s, what);
        if (!nl)
            nl = s + strlen(s);
        if (!hit || hit > nl)
            return false;
        s = *nl ? nl + 1 : nl;
    }
    return true;
}

/* ---- the programs ------------------------------------------------------ */

/* A server and its client. */
typedef struct example {
    const char *server, *client;
} example;

static const example task_ex = {EX_SERVER, EX_CLIENT};
static const example chan_ex = {EX_CHAN_SERVER, EX_CHAN_CLIENT};

/* The program's name: what it prefixes its lines with. */
static const char *
prog_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static void
secrets(void)
{
    write_tmp_file(secret1, sizeof secret1, "s1", "the right cluster secret\n");
    write_tmp_file(secret2, sizeof secret2, "s2",
                   "some other cluster secret\n");
}

/* Start x's server with `args`; its endpoint into ep. NULL on failure
 * (what it said is printed). */
static kid *
server_start(const example *x, const char *const *args, const char *const *env,
             char *ep, size_t size)
{
    char pre[128], line[512] = "", err[2048];
    size_t plen = (size_t)snprintf(pre, sizeof pre, "%s: listening on ",
                                   prog_name(x->server));
    kid *k = kid_start(x->server, args, env, NULL);

    if (!k)
        return NULL;
    if (read_line(k->out, line, sizeof line, EX_WAIT) &&
        !strncmp(line, pre, plen) && strlen(line + plen) < size) {
        memcpy(ep, line + plen, strlen(line + plen) + 1);
        return k;
    }
    kill(-k->pid, SIGKILL);
    kid_wait(k, EX_WAIT);
    slurp(k->err, err, sizeof err);
    fprintf(stderr, "server did not start (first line '%s'): %s\n", line, err);
    kid_free(k);
    return NULL;
}

/* Run x's client to its end; its exit status, stdout and stderr (out and
 * err); -1 when it could not start or did not end. */
static int
client_run(const example *x, const char *const *args, const char *const *env,
           char *out, size_t osize, char *err, size_t esize)
{
    kid *k = kid_start(x->client, args, env, NULL);
    int rc = -1;

    *out = *err = '\0';
    if (!k)
        return -1;
    if (kid_wait(k, EX_WAIT)) {
        slurp(k->out, out, osize);
        slurp(k->err, err, esize);
        rc = exit_code(k);
    }
    kid_free(k);
    return rc;
}

/* SIGTERM the server and check it ends cleanly, with status 0. */
static void
server_term(kid *k)
{
    CU_ASSERT_EQUAL(kill(k->pid, SIGTERM), 0);
    CU_ASSERT_FATAL(kid_wait(k, EX_WAIT));
    CU_ASSERT_EQUAL(exit_code(k), 0);
}

/* ---- tests --------------------------------------------------------------- */

/* Same secret: the client's 7 messages reach the server, in order, each
 * acknowledged; "done" ends the server by itself, with status 0. */
PT_TEST(same_secret_n_messages)
static void
same_secret_n_messages(void)
{
    kid *s;
    char ep[256], out[4096], err[4096], sout[8192], serr[4096], want[64];
    const char *p;
    int rc;

    secrets();
    s = server_start(&task_ex, (const char *[]){"--secret-file", secret1, NULL},
                     NULL, ep, sizeof ep);
    CU_ASSERT_FATAL(s != NULL);
    rc = client_run(&task_ex,
                    (const char *[]){"--connect", ep, "--secret-file", secret1,
                                     "--count", "7", NULL},
                    NULL, out, sizeof out, err, sizeof err);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_STRING_EQUAL(out, "client: server_task acknowledged 7 "
                                "messages\n");
    CU_ASSERT_STRING_EQUAL(err, "");
    if (rc != 0)
        fprintf(stderr, "client stderr: %s\n", err);

    CU_ASSERT_FATAL(kid_wait(s, EX_WAIT)); /* ended by "done" */
    CU_ASSERT_EQUAL(exit_code(s), 0);
    slurp(s->out, sout, sizeof sout);
    slurp(s->err, serr, sizeof serr);
    CU_ASSERT_EQUAL(count_of(sout, "server_task: received 'message "), 7);
    p = sout;
    for (int i = 1; i <= 7 && p; i++) {
        snprintf(want, sizeof want, "received 'message %d' from ", i);
        p = strstr(p, want);
        CU_ASSERT_PTR_NOT_NULL(p);
    }
    CU_ASSERT_PTR_NOT_NULL(p && strstr(p, " is done\n"));
    CU_ASSERT_TRUE(only_lines_with(serr, " is down: it left"));
    if (!only_lines_with(serr, " is down: it left"))
        fprintf(stderr, "server stderr: %s\n", serr);
    kids_kill();
}

/* --forever: two clients in a row are served, then SIGTERM ends the server
 * with status 0 (and the secret can come from $PICOS_SECRET). */
PT_TEST(forever_then_sigterm)
static void
forever_then_sigterm(void)
{
    static const char *const env[] = {"PICOS_SECRET=a secret in the env", NULL};
    kid *s;
    char ep[256], out[4096], err[4096], sout[8192];

    s = server_start(&task_ex, (const char *[]){"--forever", NULL}, env, ep,
                     sizeof ep);
    CU_ASSERT_FATAL(s != NULL);
    for (int i = 0; i < 2; i++) {
        CU_ASSERT_EQUAL(
            client_run(&task_ex,
                       (const char *[]){"--connect", ep, "--count", "3", NULL},
                       env, out, sizeof out, err, sizeof err),
            0);
        CU_ASSERT_STRING_EQUAL(err, "");
    }
    server_term(s);
    slurp(s->out, sout, sizeof sout);
    CU_ASSERT_EQUAL(count_of(sout, "received 'message 3'"), 2);
    CU_ASSERT_EQUAL(count_of(sout, " is done\n"), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(sout, "Terminated, stopping\n"));
    kids_kill();
}

/* A different secret: x's client fails with one line that says so and
 * names its secret file; the server goes on (the channel server still
 * waiting for a subscriber: nothing delivered) and ends cleanly on
 * SIGTERM. */
static void
wrong_secret(const example *x)
{
    kid *s;
    char ep[256], out[4096], err[4096], sout[4096], serr[16384], want[128];

    secrets();
    s = server_start(x, (const char *[]){"--secret-file", secret1, NULL}, NULL,
                     ep, sizeof ep);
    CU_ASSERT_FATAL(s != NULL);
    CU_ASSERT_EQUAL(
        client_run(x,
                   (const char *[]){"--connect", ep, "--secret-file", secret2,
                                    "--timeout", "10", NULL},
                   NULL, out, sizeof out, err, sizeof err),
        1);
    CU_ASSERT_EQUAL(count_lines(err), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "wrong cluster secret"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, secret2));
    CU_ASSERT_STRING_EQUAL(out, "");
    if (count_lines(err) != 1)
        fprintf(stderr, "client stderr: %s\n", err);
    CU_ASSERT_EQUAL(kill(s->pid, SIGTERM), 0);
    CU_ASSERT_FATAL(kid_wait(s, EX_WAIT));
    slurp(s->err, serr, sizeof serr);
    CU_ASSERT_EQUAL(exit_code(s), 0);
    if (exit_code(s) != 0)
        fprintf(stderr, "server exit %d, stderr: %s\n", exit_code(s), serr);
    slurp(s->out, sout, sizeof sout);
    snprintf(want, sizeof want, "%s: Terminated, stopping\n",
             prog_name(x->server));
    CU_ASSERT_STRING_EQUAL(sout, want);
    kids_kill();
}

/* Nobody listens: x's client says so in one line, exit 1, within the
 * --timeout. */
static void
unreachable(const example *x)
{
    char ep[64], out[4096], err[4096];
    int fd;

    secrets();
    fd = dead_endpoint(ep, sizeof ep);
    CU_ASSERT_EQUAL(
        client_run(x,
                   (const char *[]){"--connect", ep, "--secret-file", secret1,
                                    "--timeout", "1", NULL},
                   NULL, out, sizeof out, err, sizeof err),
        1);
    close(fd);
    CU_ASSERT_EQUAL(count_lines(err), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "no node answered at "));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, ep));
    CU_ASSERT_STRING_EQUAL(out, "");
    if (count_lines(err) != 1)
        fprintf(stderr, "client stderr: %s\n", err);
}

/* x's server run with `args` exits with `code`, one line on stderr holding
 * `what` (NULL: any). */
static void
server_fails(const example *x, const char *const *args, int code,
             const char *what)
{
    char err[4096];
    kid *s = kid_start(x->server, args, NULL, NULL);

    CU_ASSERT_FATAL(s != NULL);
    CU_ASSERT_FATAL(kid_wait(s, EX_WAIT));
    CU_ASSERT_EQUAL(exit_code(s), code);
    slurp(s->err, err, sizeof err);
    CU_ASSERT_EQUAL(count_lines(err), 1);
    if (what)
        CU_ASSERT_PTR_NOT_NULL(strstr(err, what));
    kids_kill();
}

/* No secret anywhere, and bad options: one line each, non-zero; --help
 * prints the usage and exits 0. */
static void
secret_and_options(const example *x)
{
    char out[4096], err[4096];

    CU_ASSERT_EQUAL(
        client_run(x, (const char *[]){"--connect", "tcp://127.0.0.1:9", NULL},
                   NULL, out, sizeof out, err, sizeof err),
        1);
    CU_ASSERT_EQUAL(count_lines(err), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "no cluster secret"));
    server_fails(x, (const char *[]){NULL}, 1, "no cluster secret");

    CU_ASSERT_EQUAL(
        client_run(x,
                   (const char *[]){"--connect", "tcp://127.0.0.1:9", "--count",
                                    "ten", NULL},
                   NULL, out, sizeof out, err, sizeof err),
        2);
    CU_ASSERT_EQUAL(count_lines(err), 1);
    CU_ASSERT_EQUAL(client_run(x, (const char *[]){"--count", "3", NULL}, NULL,
                               out, sizeof out, err, sizeof err),
                    2);
    CU_ASSERT_EQUAL(count_lines(err), 1);
    server_fails(x, (const char *[]){"--bogus", NULL}, 2, "bad option");
    CU_ASSERT_EQUAL(client_run(x, (const char *[]){"--help", NULL}, NULL, out,
                               sizeof out, err, sizeof err),
                    0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "--connect ENDPOINT"));
}

PT_TEST(wrong_secret_one_line)
static void
wrong_secret_one_line(void)
{
    wrong_secret(&task_ex);
}

PT_TEST(unreachable_one_line)
static void
unreachable_one_line(void)
{
    unreachable(&task_ex);
}

PT_TEST(missing_secret_and_bad_options)
static void
missing_secret_and_bad_options(void)
{
    secret_and_options(&task_ex);
}

/* ---- the channel pair ------------------------------------------------------ */

/* Where `line` (with its newline) next occurs at p or after as a whole
 * line of s: just past it, or NULL. */
static const char *
find_line(const char *s, const char *p, const char *line)
{
    for (; (p = strstr(p, line)); p++)
        if (p == s || p[-1] == '\n')
            return p + strlen(line);
    return NULL;
}

/* Whether s holds the lines "<pre>i<post>" for i = 1..n, in that order,
 * then `last`. */
static bool
lines_in_order(const char *s, const char *pre, const char *post, int n,
               const char *last)
{
    char want[128];
    const char *p = s;

    for (int i = 1; i <= n && p; i++) {
        snprintf(want, sizeof want, "%s%d%s", pre, i, post);
        p = find_line(s, p, want);
    }
    return p && find_line(s, p, last);
}

/* The channel "2clients" with one subscriber on the server and one on the
 * client: every deliver(n = 2) reaches both (reached=2), the client prints
 * the 7 messages in order and ends on "done", the server ends by itself;
 * both exit 0. */
PT_TEST(chan_deliver_two_nodes)
static void
chan_deliver_two_nodes(void)
{
    kid *s;
    char ep[256], out[4096], err[4096], sout[8192], serr[4096];
    int rc;

    secrets();
    s = server_start(
        &chan_ex,
        (const char *[]){"--secret-file", secret1, "--count", "7", NULL}, NULL,
        ep, sizeof ep);
    CU_ASSERT_FATAL(s != NULL);
    rc = client_run(&chan_ex,
                    (const char *[]){"--connect", ep, "--secret-file", secret1,
                                     "--count", "7", NULL},
                    NULL, out, sizeof out, err, sizeof err);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_STRING_EQUAL(err, "");
    if (rc != 0)
        fprintf(stderr, "client stdout: %s\nclient stderr: %s\n", out, err);
    CU_ASSERT_EQUAL(count_lines(out), 8);
    CU_ASSERT_EQUAL(count_of(out, "client: received 'message "), 7);
    CU_ASSERT_TRUE(lines_in_order(out, "client: received 'message ", "'\n", 7,
                                  "client: 7 messages, in order, then "
                                  "done\n"));

    CU_ASSERT_FATAL(kid_wait(s, EX_WAIT)); /* ended after "done" */
    CU_ASSERT_EQUAL(exit_code(s), 0);
    slurp(s->out, sout, sizeof sout);
    slurp(s->err, serr, sizeof serr);
    /* 7 messages and "done": 8 delivers, each reached both */
    CU_ASSERT_EQUAL(count_of(sout, "reached="), 8);
    CU_ASSERT_EQUAL(count_of(sout, "reached=2\n"), 8);
    CU_ASSERT_TRUE(lines_in_order(sout, "publisher: delivered 'message ",
                                  "', reached=2\n", 7,
                                  "publisher: delivered done (7 sent), "
                                  "reached=2\n"));
    CU_ASSERT_TRUE(lines_in_order(sout, "local subscriber: received 'message ",
                                  "'\n", 7,
                                  "local subscriber: done after 7 "
                                  "messages\n"));
    CU_ASSERT_EQUAL(count_lines(sout), 16);
    CU_ASSERT_TRUE(only_lines_with(serr, " is down: it left"));
    if (count_of(sout, "reached=2\n") != 8 ||
        !only_lines_with(serr, " is down: it left"))
        fprintf(stderr, "server stdout: %s\nserver stderr: %s\n", sout, serr);
    kids_kill();
}

PT_TEST(chan_wrong_secret_one_line)
static void
chan_wrong_secret_one_line(void)
{
    wrong_secret(&chan_ex);
}

PT_TEST(chan_unreachable_one_line)
static void
chan_unreachable_one_line(void)
{
    unreachable(&chan_ex);
}

/* The pair's common cases, and the server's own --count and --timeout. */
PT_TEST(chan_missing_secret_bad_options)
static void
chan_missing_secret_bad_options(void)
{
    secret_and_options(&chan_ex);
    server_fails(&chan_ex, (const char *[]){"--count", "-1", NULL}, 2,
                 "bad option");
    server_fails(&chan_ex, (const char *[]){"--timeout", "0", NULL}, 2,
                 "bad option");
}

/* ---- through a registry ------------------------------------------------------ */

/* Start picos-registry on a port of its choosing with its log in a new
 * dir of pt_tmpdir(); its endpoint into ep (read from its startup line). */
static kid *
registry_start(char *ep, size_t size)
{
    char line[512] = "", err[2048];
    const char *p;
    kid *k;

    CU_ASSERT_FATAL(pt_mkdtemp(regdir, sizeof regdir, "registry"));
    k = kid_start(EX_REGISTRY,
                  (const char *[]){"--listen", "tcp://127.0.0.1:0",
                                   "--data-dir", regdir, "--secret-file",
                                   secret1, NULL},
                  NULL, NULL);
    if (!k)
        return NULL;
    if (read_line(k->out, line, sizeof line, EX_WAIT) &&
        (p = strstr(line, " listening on tcp://"))) {
        p += strlen(" listening on ");
        snprintf(ep, size, "%.*s", (int)strcspn(p, " ,("), p);
        return k;
    }
    kill(-k->pid, SIGKILL);
    kid_wait(k, EX_WAIT);
    slurp(k->err, err, sizeof err);
    fprintf(stderr, "registry did not start (line '%s'): %s\n", line, err);
    kid_free(k);
    return NULL;
}

/* --registry instead of --connect: each server registers its task or its
 * channel cluster-wide and its client finds it by name alone; the clients
 * print what they do with --connect and exit 0; the registry ends on
 * SIGTERM with status 0 (and the servers are stopped the same way). */
PT_TEST(by_name_through_a_registry)
static void
by_name_through_a_registry(void)
{
    kid *r, *s;
    char reg[256], ep[256], out[4096], err[4096];
    int rc;

    secrets();
    r = registry_start(reg, sizeof reg);
    CU_ASSERT_FATAL(r != NULL);

    s = server_start(&task_ex,
                     (const char *[]){"--registry", reg, "--secret-file",
                                      secret1, "--forever", NULL},
                     NULL, ep, sizeof ep);
    CU_ASSERT_FATAL(s != NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(ep, "server_task registered at"));
    rc = client_run(&task_ex,
                    (const char *[]){"--registry", reg, "--secret-file",
                                     secret1, "--count", "4", NULL},
                    NULL, out, sizeof out, err, sizeof err);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_STRING_EQUAL(out, "client: server_task acknowledged 4 "
                                "messages\n");
    CU_ASSERT_STRING_EQUAL(err, "");
    if (rc != 0)
        fprintf(stderr, "client stderr: %s\n", err);
    server_term(s);

    s = server_start(&chan_ex,
                     (const char *[]){"--registry", reg, "--secret-file",
                                      secret1, "--count", "3", NULL},
                     NULL, ep, sizeof ep);
    CU_ASSERT_FATAL(s != NULL);
    rc = client_run(&chan_ex,
                    (const char *[]){"--registry", reg, "--secret-file",
                                     secret1, "--count", "3", NULL},
                    NULL, out, sizeof out, err, sizeof err);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_TRUE(lines_in_order(out, "client: received 'message ", "'\n", 3,
                                  "client: 3 messages, in order, then "
                                  "done\n"));
    CU_ASSERT_STRING_EQUAL(err, "");
    if (rc != 0)
        fprintf(stderr, "client stdout: %s\nstderr: %s\n", out, err);
    CU_ASSERT_FATAL(kid_wait(s, EX_WAIT)); /* ended after "done" */
    CU_ASSERT_EQUAL(exit_code(s), 0);

    /* a name nobody registers: not found within the client's timeout */
    rc = client_run(&task_ex,
                    (const char *[]){"--registry", reg, "--secret-file",
                                     secret1, "--timeout", "1", NULL},
                    NULL, out, sizeof out, err, sizeof err);
    CU_ASSERT_EQUAL(rc, 1);
    CU_ASSERT_EQUAL(count_lines(err), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "no server_task in the cluster"));
    server_term(r);
    kids_kill();
}

/* ---- the RPS and chat examples (cluster_ex.h): always through a registry -- */

static const example pico_ex = {EX_PICO_SERVICE, EX_PICO_CLIENT};
static const example mon_ex = {EX_MON_SERVER, EX_MON_CLIENT};
static const example task2_ex = {EX_TASK_SERVICE, EX_TASK_CLIENT};
static const example chat_ex = {EX_CHAT_SERVER, EX_CHAT_CLIENT};

/* A registry and x's server joined to it (with `more` args after the
 * common ones); the registry's endpoint into reg. */
static kid *
cluster_server(const example *x, kid **r, char *reg, size_t size,
               const char *const *more)
{
    const char *args[16] = {"--registry", NULL, "--secret-file", secret1};
    int n = 4;
    char ep[512];
    kid *s;

    secrets();
    *r = registry_start(reg, size);
    CU_ASSERT_FATAL(*r != NULL);
    args[1] = reg;
    while (more && *more && n < 15)
        args[n++] = *more++;
    args[n] = NULL;
    s = server_start(x, args, NULL, ep, sizeof ep);
    CU_ASSERT_FATAL(s != NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(ep, " registered at "));
    return s;
}

/* Run x's client against registry `reg` with `more` args; as client_run. */
static int
cluster_client(const example *x, const char *reg, const char *const *more,
               char *out, size_t osize, char *err, size_t esize)
{
    const char *args[24] = {"--registry", reg, "--secret-file", secret1};
    int n = 4, rc;

    while (more && *more && n < 23)
        args[n++] = *more++;
    args[n] = NULL;
    rc = client_run(x, args, NULL, out, osize, err, esize);
    if (rc != 0)
        fprintf(stderr, "%s exit %d\nstdout: %s\nstderr: %s\n",
                prog_name(x->client), rc, out, err);
    return rc;
}

/* Read k's stdout lines into buf (appended, each with its newline) until
 * `n` of them hold `what`; false when it stops first. */
static bool
lines_until(kid *k, const char *what, int n, char *buf, size_t size)
{
    size_t len = strlen(buf);
    char line[512];

    while (count_of(buf, what) < n) {
        if (!read_line(k->out, line, sizeof line, EX_WAIT))
            return false;
        len += (size_t)snprintf(buf + len, size - len, "%s\n", line);
        if (len >= size)
            return false;
    }
    return true;
}

/* rps_pico: 20 calls all in flight, each result collected by finish, in
 * order; an unknown request fails every call with the service's error
 * text and the client exits 1 with one line; SIGTERM ends the server with
 * status 0. */
PT_TEST(rps_pico_n_calls)
static void
rps_pico_n_calls(void)
{
    kid *r, *s;
    char reg[256], out[8192], err[4096], want[64];
    const char *p;

    s = cluster_server(&pico_ex, &r, reg, sizeof reg,
                       (const char *[]){"--delay", "0.05", NULL});
    CU_ASSERT_EQUAL(cluster_client(&pico_ex, reg,
                                   (const char *[]){"-n", "20", NULL}, out,
                                   sizeof out, err, sizeof err),
                    0);
    CU_ASSERT_STRING_EQUAL(err, "");
    CU_ASSERT_EQUAL(count_lines(out), 21);
    p = out;
    for (int i = 1; i <= 20 && p; i++) {
        snprintf(want, sizeof want, "result %d: ", i);
        CU_ASSERT_PTR_NOT_NULL(p = find_line(out, p, want));
    }
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\n20 calls: 20 ok, 0 failed\n"));

    CU_ASSERT_EQUAL(
        client_run(&pico_ex,
                   (const char *[]){"--registry", reg, "--secret-file", secret1,
                                    "-n", "3", "--request", "date", NULL},
                   NULL, out, sizeof out, err, sizeof err),
        1);
    CU_ASSERT_EQUAL(count_of(out, "failed: unknown request 'date'\n"), 3);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "3 calls: 0 ok, 3 failed\n"));
    CU_ASSERT_EQUAL(count_lines(err), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "3 of 3 calls failed"));
    server_term(s);
    server_term(r);
    kids_kill();
}

/* rps_monitor: of 7 + 2 calls, every 3rd fails with its error, one is
 * killed by the client, one passes its deadline; the client's monitor and
 * the service's both count 5 normal, 4 failed, and every call ended as
 * intended (client exit 0). */
PT_TEST(rps_monitor_counts)
static void
rps_monitor_counts(void)
{
    static const char counts[] = "9 calls: 5 normal, 4 failed (2 errors, 1 "
                                 "killed, 1 timed out, 0 other)\n";
    kid *r, *s;
    char reg[256], out[8192], err[4096], sout[8192] = "";

    s = cluster_server(&mon_ex, &r, reg, sizeof reg, NULL);
    CU_ASSERT_EQUAL(cluster_client(&mon_ex, reg,
                                   (const char *[]){"-n", "7", NULL}, out,
                                   sizeof out, err, sizeof err),
                    0);
    CU_ASSERT_STRING_EQUAL(err, "");
    CU_ASSERT_PTR_NOT_NULL(find_line(out, out, "client monitor: "));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, counts));
    CU_ASSERT_EQUAL(count_lines(out), 10);
    for (int i = 1; i <= 7; i++) {
        char want[64];
        snprintf(want, sizeof want,
                 i % 3 ? "call %d (b=0.1): normal, 'msg:%d'\n"
                       : "call %d (b=0): failed: invalid "
                         "invocation: 0\n",
                 i, i);
        CU_ASSERT_PTR_NOT_NULL(find_line(out, out, want));
    }
    CU_ASSERT_PTR_NOT_NULL(
        find_line(out, out, "call 8 (killed by the client): failed: killed\n"));
    CU_ASSERT_PTR_NOT_NULL(find_line(
        out, out,
        "call 9 (deadline 1 s): failed: past its deadline, stopped\n"));

    /* the service's monitor saw the 9 outcomes too (they may come after
     * the client's, so it is read until they are all there) */
    CU_ASSERT_TRUE(lines_until(s, "monitor: call ", 9, sout, sizeof sout));
    CU_ASSERT_EQUAL(count_of(sout, " ended: normal"), 5);
    CU_ASSERT_EQUAL(count_of(sout, " failed: invalid invocation: 0 "), 2);
    CU_ASSERT_EQUAL(count_of(sout, "monitor: call 8 failed: killed "), 1);
    CU_ASSERT_EQUAL(
        count_of(sout, "monitor: call 9 failed: past its deadline, stopped "),
        1);
    server_term(s);
    slurp(s->out, sout, sizeof sout);
    CU_ASSERT_PTR_NOT_NULL(strstr(sout, "Terminated, stopping\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(sout, counts));
    if (!strstr(sout, counts))
        fprintf(stderr, "server stdout: %s\n", sout);

    /* a service nobody registered: not found within the client's timeout */
    CU_ASSERT_EQUAL(
        client_run(&pico_ex,
                   (const char *[]){"--registry", reg, "--secret-file", secret1,
                                    "--timeout", "1", NULL},
                   NULL, out, sizeof out, err, sizeof err),
        1);
    CU_ASSERT_EQUAL(count_lines(err), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "no service pico_service in the "));
    CU_ASSERT_STRING_EQUAL(out, "");
    server_term(r);
    kids_kill();
}

/* pico_*_task: three requests, three replies; then one whose work outlasts
 * its deadline: the client gets "timed out" (exit 1, one line) and the
 * service's monitor says it stopped the work. */
PT_TEST(pico_task_request_reply_and_timeout)
static void
pico_task_request_reply_and_timeout(void)
{
    kid *r, *s;
    char reg[256], out[4096], err[4096], sout[8192] = "", want[32];
    const char *p;

    s = cluster_server(&task2_ex, &r, reg, sizeof reg, NULL);
    CU_ASSERT_EQUAL(cluster_client(&task2_ex, reg,
                                   (const char *[]){"-n", "3", NULL}, out,
                                   sizeof out, err, sizeof err),
                    0);
    CU_ASSERT_STRING_EQUAL(err, "");
    p = out;
    for (int i = 1; i <= 3 && p; i++) {
        snprintf(want, sizeof want, "reply %d: ", i);
        CU_ASSERT_PTR_NOT_NULL(p = find_line(out, p, want));
    }
    CU_ASSERT_EQUAL(count_lines(out), 4);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(out, "\n3 requests: 3 replies, 0 timed out, 0 failed\n"));
    CU_ASSERT_TRUE(lines_until(s, " answered\n", 3, sout, sizeof sout));

    CU_ASSERT_EQUAL(
        client_run(&task2_ex,
                   (const char *[]){"--registry", reg, "--secret-file", secret1,
                                    "--delay", "30", "--deadline", "0.5", NULL},
                   NULL, out, sizeof out, err, sizeof err),
        1);
    CU_ASSERT_STRING_EQUAL(out, "request 1: timed out after 0.5 s (the "
                                "service stopped the work)\n1 requests: 0 "
                                "replies, 1 timed out, 0 failed\n");
    CU_ASSERT_EQUAL(count_lines(err), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "1 of 1 requests got no reply"));
    CU_ASSERT_TRUE(lines_until(s,
                               " passed its deadline: the client gave up, "
                               "the work was stopped\n",
                               1, sout, sizeof sout));
    server_term(s);
    server_term(r);
    kids_kill();
}

/* chat_chan: two clients on two nodes talk through the server's channel;
 * each hears the other's lines rewritten by the transform ("says: "),
 * the joining and leaving announced, and never the shouting, which the
 * transform dropped at the home node (2 of the channel's 10 messages). */
PT_TEST(chat_two_clients_filtered)
static void
chat_two_clients_filtered(void)
{
    kid *r, *s, *a;
    char reg[256], line[512] = "", aout[4096], aerr[4096], out[4096], err[4096],
                   sout[4096];
    const char *p;

    s = cluster_server(&chat_ex, &r, reg, sizeof reg, NULL);
    a = kid_start(EX_CHAT_CLIENT,
                  (const char *[]){"--registry", reg, "--secret-file", secret1,
                                   "--peers", "1", "hello from one",
                                   "I AM SHOUTING", "how are you?", NULL},
                  NULL, NULL);
    CU_ASSERT_FATAL(a != NULL);
    /* in the chat: its subscription works, the second may come */
    CU_ASSERT_FATAL(read_line(a->out, line, sizeof line, EX_WAIT));
    CU_ASSERT_STRING_EQUAL(line, "client 1: in the chat, with 0 others");
    CU_ASSERT_EQUAL(
        cluster_client(&chat_ex, reg,
                       (const char *[]){"--peers", "1", "hi from two", "QUIET!",
                                        "fine, thanks", NULL},
                       out, sizeof out, err, sizeof err),
        0);
    CU_ASSERT_FATAL(kid_wait(a, EX_WAIT));
    CU_ASSERT_EQUAL(exit_code(a), 0);
    slurp(a->out, aout, sizeof aout);
    slurp(a->err, aerr, sizeof aerr);
    CU_ASSERT_STRING_EQUAL(aerr, "");
    CU_ASSERT_STRING_EQUAL(err, "");

    CU_ASSERT_STRING_EQUAL(aout, "client 1: 2 joined :-)\n"
                                 "client 1: 2 says: hi from two\n"
                                 "client 1: 2 says: fine, thanks\n"
                                 "client 1: 2 left :-(\n"
                                 "client 1: said 3 lines, bye\n");
    CU_ASSERT_STRING_EQUAL(out, "client 2: in the chat, with 1 others\n"
                                "client 2: 1 says: hello from one\n"
                                "client 2: 1 says: how are you?\n"
                                "client 2: 1 left :-(\n"
                                "client 2: said 3 lines, bye\n");
    server_term(s);
    slurp(s->out, sout, sizeof sout);
    CU_ASSERT_PTR_NOT_NULL(p = strstr(sout, "chat_server: client 1 joined"));
    CU_ASSERT_PTR_NOT_NULL(p && strstr(p, "chat_server: client 2 joined"));
    CU_ASSERT_EQUAL(count_of(sout, " left ("), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(sout, "chat_channel: 10 messages, 2 dropped "
                                        "by the transform\n"));
    if (!strstr(sout, "2 dropped"))
        fprintf(stderr, "server stdout: %s\n", sout);
    server_term(r);
    kids_kill();
}

/* Every one of the eight programs: --help (exit 0, the common options
 * listed), a bad option (exit 2, one line), no secret (exit 1, picos's one
 * line); a client with the wrong secret or no registry listening: one line
 * that says so, exit 1. */
PT_TEST(cluster_examples_options_and_errors)
static void
cluster_examples_options_and_errors(void)
{
    static const char *const progs[] = {
        EX_PICO_SERVICE, EX_PICO_CLIENT, EX_MON_SERVER,  EX_MON_CLIENT,
        EX_TASK_SERVICE, EX_TASK_CLIENT, EX_CHAT_SERVER, EX_CHAT_CLIENT};
    kid *r;
    char reg[256], dead[64], out[4096], err[4096];
    int fd;

    for (size_t i = 0; i < sizeof progs / sizeof *progs; i++) {
        const example x = {progs[i], progs[i]};
        CU_ASSERT_EQUAL(client_run(&x, (const char *[]){"--help", NULL}, NULL,
                                   out, sizeof out, err, sizeof err),
                        0);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "--registry EP"));
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "--secret-file FILE"));
        CU_ASSERT_EQUAL(client_run(&x, (const char *[]){"--bogus", NULL}, NULL,
                                   out, sizeof out, err, sizeof err),
                        2);
        CU_ASSERT_EQUAL(count_lines(err), 1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "bad option '--bogus'"));
        CU_ASSERT_EQUAL(client_run(&x, (const char *[]){"--timeout", "x", NULL},
                                   NULL, out, sizeof out, err, sizeof err),
                        2);
        CU_ASSERT_EQUAL(client_run(&x, (const char *[]){NULL}, NULL, out,
                                   sizeof out, err, sizeof err),
                        1);
        CU_ASSERT_EQUAL(count_lines(err), 1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "no cluster secret"));
        if (count_lines(err) != 1)
            fprintf(stderr, "%s stderr: %s\n", progs[i], err);
    }

    secrets();
    r = registry_start(reg, sizeof reg);
    CU_ASSERT_FATAL(r != NULL);
    CU_ASSERT_EQUAL(client_run(&pico_ex,
                               (const char *[]){"--registry", reg,
                                                "--secret-file", secret2, NULL},
                               NULL, out, sizeof out, err, sizeof err),
                    1);
    CU_ASSERT_EQUAL(count_lines(err), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "wrong cluster secret"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, secret2));
    if (count_lines(err) != 1)
        fprintf(stderr, "client stderr: %s\n", err);
    server_term(r);

    fd = dead_endpoint(dead, sizeof dead);
    CU_ASSERT_EQUAL(
        client_run(&chat_ex,
                   (const char *[]){"--registry", dead, "--secret-file",
                                    secret1, "--timeout", "0.5", NULL},
                   NULL, out, sizeof out, err, sizeof err),
        1);
    close(fd);
    CU_ASSERT_EQUAL(count_lines(err), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "no registry answered at "));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, dead));
    if (count_lines(err) != 1)
        fprintf(stderr, "client stderr: %s\n", err);
    kids_kill();
}

/* The deployment: pico_service.so hosted by a real picos-node,
 * called from the command line. `echo time | picos call pico_service
 * --data -` prints the node's time (exit 0); any other request makes
 * picos call exit 1 with the service's error in one line; the example
 * client finds the same service by name; the node and the registry end on
 * SIGTERM with status 0. */
PT_TEST(pico_service_so_on_picos_node)
static void
pico_service_so_on_picos_node(void)
{
    static const char pipe_time[] =
        "echo time | \"$0\" --registry \"$1\" --secret-file \"$2\" call "
        "pico_service --data -";
    char reg[256], line[512] = "", out[4096], err[4096], year[16];
    time_t now = time(NULL);
    struct tm tm;
    kid *r, *n, *k;

    secrets();
    CU_ASSERT_FATAL((r = registry_start(reg, sizeof reg)) != NULL);
    n = kid_start(EX_NODE,
                  (const char *[]){"--registry", reg, "--secret-file", secret1,
                                   "--name", "so-node", "--service", EX_PICO_SO,
                                   NULL},
                  NULL, NULL);
    CU_ASSERT_FATAL(n != NULL);
    CU_ASSERT_FATAL(read_line(n->out, line, sizeof line, EX_WAIT));
    CU_ASSERT_PTR_NOT_NULL(strstr(line, " listening on tcp://127.0.0.1:"));
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "1 service: pico_service v"));

    /* time: the reply is the node's time, as ctime() writes it */
    k = kid_start(
        "/bin/sh",
        (const char *[]){"-c", pipe_time, EX_PICOS, reg, secret1, NULL}, NULL,
        NULL);
    CU_ASSERT_FATAL(k != NULL);
    CU_ASSERT_FATAL(kid_wait(k, EX_WAIT));
    slurp(k->out, out, sizeof out);
    slurp(k->err, err, sizeof err);
    CU_ASSERT_EQUAL(exit_code(k), 0);
    CU_ASSERT_STRING_EQUAL(err, "");
    localtime_r(&now, &tm);
    snprintf(year, sizeof year, "%d", tm.tm_year + 1900);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, year)); /* "Tue Dec  1 ... 2026" */
    CU_ASSERT_EQUAL(count_lines(out), 0);      /* bytes as they are */
    CU_ASSERT_TRUE(strlen(out) >= 20 && strlen(out) < 40);
    kid_free(k);

    /* anything else: exit 1, the service's error in one line */
    k = kid_start(EX_PICOS,
                  (const char *[]){"--registry", reg, "--secret-file", secret1,
                                   "call", "pico_service", "--data", "date",
                                   NULL},
                  NULL, NULL);
    CU_ASSERT_FATAL(k != NULL);
    CU_ASSERT_FATAL(kid_wait(k, EX_WAIT));
    slurp(k->out, out, sizeof out);
    slurp(k->err, err, sizeof err);
    CU_ASSERT_EQUAL(exit_code(k), 1);
    CU_ASSERT_STRING_EQUAL(out, "");
    CU_ASSERT_EQUAL(count_lines(err), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown request 'date'"));
    if (!strstr(err, "unknown request 'date'"))
        fprintf(stderr, "picos call said: %s\n", err);
    kid_free(k);

    /* the example client finds the library's service by name */
    CU_ASSERT_EQUAL(
        client_run(&pico_ex,
                   (const char *[]){"--registry", reg, "--secret-file", secret1,
                                    "-n", "3", NULL},
                   NULL, out, sizeof out, err, sizeof err),
        0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "3 calls: 3 ok, 0 failed\n"));

    server_term(n);
    server_term(r);
    kids_kill();
}

PT_MAIN("examples_net", PT_ENTRY(same_secret_n_messages),
        PT_ENTRY(forever_then_sigterm), PT_ENTRY(wrong_secret_one_line),
        PT_ENTRY(unreachable_one_line),
        PT_ENTRY(missing_secret_and_bad_options),
        PT_ENTRY(chan_deliver_two_nodes), PT_ENTRY(chan_wrong_secret_one_line),
        PT_ENTRY(chan_unreachable_one_line),
        PT_ENTRY(chan_missing_secret_bad_options),
        PT_ENTRY(by_name_through_a_registry), PT_ENTRY(rps_pico_n_calls),
        PT_ENTRY(rps_monitor_counts),
        PT_ENTRY(pico_task_request_reply_and_timeout),
        PT_ENTRY(chat_two_clients_filtered),
        PT_ENTRY(cluster_examples_options_and_errors),
        PT_ENTRY(pico_service_so_on_picos_node))
