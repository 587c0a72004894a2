/* tests/test_examples_net.c — picos-remote-task-server and -client
 * (apps/examples/remote_task_*.c) and picos-remote-channel-server and
 * -client (apps/examples/remote_channel_*.c) run as real processes.
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
#include <sys/stat.h>

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

/* Start picos-registry on a port of its choosing with its log in a dir
 * of pt_tmpdir() (once per run); its endpoint into ep (read from its startup
 * line). */
static kid *
registry_start(char *ep, size_t size)
{
    char line[512] = "", err[2048];
    const char *p;
    kid *k;

    pt_tmppath(regdir, sizeof regdir, "registry");
    CU_ASSERT_FATAL(mkdir(regdir, 0700) == 0);
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
                                     secret1, "--timeout", "0.3", NULL},
                    NULL, out, sizeof out, err, sizeof err);
    CU_ASSERT_EQUAL(rc, 1);
    CU_ASSERT_EQUAL(count_lines(err), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "no server_task in the cluster"));
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
        PT_ENTRY(by_name_through_a_registry))
