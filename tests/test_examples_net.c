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
 * Nothing is left behind: every child runs in a process group of its own
 * with PR_SET_PDEATHSIG, lives in the static table `kids` (static, so a
 * CU_ASSERT_FATAL's longjmp leaves nothing dangling), and the group is
 * killed and reaped by kids_kill() — at the end of each test, from atexit, and
 * from the handler of SIGALRM (the watchdog: it replaces testutil.h's,
 * which would _exit without cleaning), SIGTERM, SIGINT and SIGHUP. The
 * secret files live in one mkdtemp directory removed on the same paths.
 * Children get a cleaned environment: no PICOS_SECRET*, no PICOS_LOG from
 * the caller, so each test says exactly which secret a program holds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "testutil.h"

extern char **environ;

/* Waits that must end: generous, so a loaded sanitizer run never trips
 * them; a hang still fails long before ctest's timeout. */
#define EX_WAIT 30.0

/* ---- children ---------------------------------------------------------- */

typedef struct kid {
    bool used;
    pid_t pid;    /* 0 once reaped */
    int out, err; /* read ends of its stdout and stderr pipes, or -1 */
    int status;   /* waitpid() status once reaped */
} kid;

#define MAX_KIDS 8
static kid kids[MAX_KIDS];
static char tmpdir[80];
static char secret1[96], secret2[96];
static char tsan_supp[96], tsan_env[1024]; /* under TSan only */
static char regdir[128], reglog[160];      /* the registry test's log */

/* Kill k's group, reap it, close its pipes, free its slot. */
static void
kid_free(kid *k)
{
    if (k->pid > 0) {
        kill(-k->pid, SIGKILL);
        waitpid(k->pid, &k->status, 0);
        k->pid = 0;
    }
    if (k->out >= 0)
        close(k->out);
    if (k->err >= 0)
        close(k->err);
    k->out = k->err = -1;
    k->used = false;
}

/* Async-signal-safe: kill, waitpid, close, unlink, rmdir only. */
static void
kids_kill(void)
{
    for (int i = 0; i < MAX_KIDS; i++)
        if (kids[i].used)
            kid_free(&kids[i]);
}
static void
cleanup(void)
{
    kids_kill();
    if (*tmpdir) {
        unlink(secret1);
        unlink(secret2);
        unlink(tsan_supp);
        if (*regdir) {
            unlink(reglog);
            rmdir(regdir);
        }
        rmdir(tmpdir);
    }
}

static void
on_fatal_signal(int sig)
{
    static const char msg[] = "\n*** test_examples_net: killed by a signal "
                              "(watchdog?), children killed\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    cleanup();
    _exit(sig == SIGALRM ? 3 : 128 + sig);
}

/* The test's directory: secrets, and under TSan the suppressions the
 * children need (tsan_supp.h's: libzmq is not instrumented; the examples
 * do not carry them, so they come through $TSAN_OPTIONS). */
static void
make_tmpdir(void)
{
    CU_ASSERT_FATAL(pt_mkdtemp(tmpdir, sizeof tmpdir, "exnet"));
#if defined(__SANITIZE_THREAD__)
    {
        const char *o = getenv("TSAN_OPTIONS");
        FILE *f;
        snprintf(tsan_supp, sizeof tsan_supp, "%s/tsan.supp", tmpdir);
        CU_ASSERT_FATAL((f = fopen(tsan_supp, "w")) != NULL);
        fputs(__tsan_default_suppressions(), f);
        fclose(f);
        snprintf(tsan_env, sizeof tsan_env, "TSAN_OPTIONS=%s%ssuppressions=%s",
                 o ? o : "", o && *o ? ":" : "", tsan_supp);
    }
#endif
}

static void
guard(void)
{
    static bool once;
    if (!once) {
        atexit(cleanup);
        make_tmpdir();
        once = true;
    }
    signal(SIGALRM, on_fatal_signal); /* after pt_arm()'s own */
    signal(SIGTERM, on_fatal_signal);
    signal(SIGINT, on_fatal_signal);
    signal(SIGHUP, on_fatal_signal);
}

/* The environment for children: ours without the variables the programs
 * read, plus `extra` (NULL-terminated "NAME=value" strings). */
static char **
child_env(const char *const *extra)
{
    static char *env[512];
    int n = 0;

    for (char **e = environ; *e && n < 500; e++)
        if (strncmp(*e, "PICOS_SECRET", 12) && strncmp(*e, "PICOS_LOG=", 10) &&
            (!*tsan_env || strncmp(*e, "TSAN_OPTIONS=", 13)))
            env[n++] = *e;
    if (*tsan_env)
        env[n++] = tsan_env;
    while (extra && *extra && n < 510)
        env[n++] = (char *)*extra++;
    env[n] = NULL;
    return env;
}

/* Start `path` with args (NULL-terminated, after argv[0]); NULL on
 * failure. */
static kid *
kid_start(const char *path, const char *const *args,
          const char *const *extra_env)
{
    const char *argv[32];
    int po[2], pe[2], n = 0;
    char **env = child_env(extra_env);
    pid_t parent = getpid();
    kid *k = NULL;

    for (int i = 0; i < MAX_KIDS && !k; i++)
        if (!kids[i].used)
            k = &kids[i];
    if (!k)
        return NULL;
    argv[n++] = path;
    while (*args && n < 31)
        argv[n++] = *args++;
    argv[n] = NULL;
    if (pipe2(po, O_CLOEXEC))
        return NULL;
    if (pipe2(pe, O_CLOEXEC)) {
        close(po[0]), close(po[1]);
        return NULL;
    }
    fflush(NULL);
    *k = (kid){.used = true, .pid = fork(), .out = po[0], .err = pe[0]};
    if (k->pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) /* the test died before prctl */
            _exit(127);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        execve(path, (char *const *)argv, env);
        _exit(127);
    }
    close(po[1]), close(pe[1]);
    if (k->pid < 0) {
        k->pid = 0;
        kid_free(k);
        return NULL;
    }
    setpgid(k->pid, k->pid); /* also here: no race with kill(-pid) */
    return k;
}

static double
now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Wait up to `timeout` s for k to exit; true when it did (status in
 * k->status). Its group is killed before it is reaped, while its pid (the
 * group's id) can't be reused. The poll is only a bounded pause between
 * checks: the exit itself is what waitid() reports. */
static bool
kid_wait(kid *k, double timeout)
{
    double end = now() + timeout;
    siginfo_t si;

    while (k->pid > 0) {
        memset(&si, 0, sizeof si);
        if (waitid(P_PID, (id_t)k->pid, &si, WEXITED | WNOHANG | WNOWAIT))
            return false;
        if (si.si_pid == k->pid) {
            kill(-k->pid, SIGKILL); /* anything left in its group */
            waitpid(k->pid, &k->status, 0);
            k->pid = 0;
            break;
        }
        if (now() > end)
            return false;
        poll(NULL, 0, 10);
    }
    return true;
}

static int
exit_code(const kid *k)
{
    return WIFEXITED(k->status) ? WEXITSTATUS(k->status)
                                : 1000 + WTERMSIG(k->status);
}

/* One line from fd within `timeout` s (without the newline). */
static bool
read_line(int fd, char *buf, size_t size, double timeout)
{
    double end = now() + timeout;
    size_t n = 0;

    while (n + 1 < size) {
        struct pollfd p = {fd, POLLIN, 0};
        double left = end - now();
        char ch;
        if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) <= 0 ||
            read(fd, &ch, 1) != 1)
            return false;
        if (ch == '\n')
            break;
        buf[n++] = ch;
    }
    buf[n] = '\0';
    return true;
}

/* Everything left in a pipe whose writer has exited. */
static void
slurp(int fd, char *buf, size_t size)
{
    size_t n = 0;
    ssize_t r;

    while (n + 1 < size && (r = read(fd, buf + n, size - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = '\0';
}

static int
count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

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
make_secret(char *path, size_t size, const char *name, const char *text)
{
    int fd;

    snprintf(path, size, "%s/%s", tmpdir, name);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
}

static void
secrets(void)
{
    guard();
    make_secret(secret1, sizeof secret1, "s1", "the right cluster secret\n");
    make_secret(secret2, sizeof secret2, "s2", "some other cluster secret\n");
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
    kid *k = kid_start(x->server, args, env);

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
    kid *k = kid_start(x->client, args, env);
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

    guard();
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
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    char ep[64], out[4096], err[4096];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    secrets();
    /* Bound, never listening: connections are refused, and the port is
     * ours until the test ends. */
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    CU_ASSERT_FATAL(getsockname(fd, (struct sockaddr *)&a, &alen) == 0);
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", ntohs(a.sin_port));
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
    kid *s = kid_start(x->server, args, NULL);

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

    guard();
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
 * under tmpdir (once per run); its endpoint into ep (read from its startup
 * line). */
static kid *
registry_start(char *ep, size_t size)
{
    char line[512] = "", err[2048];
    const char *p;
    kid *k;

    snprintf(regdir, sizeof regdir, "%s/registry", tmpdir);
    snprintf(reglog, sizeof reglog, "%s/registry.log", regdir);
    CU_ASSERT_FATAL(mkdir(regdir, 0700) == 0);
    k = kid_start(EX_REGISTRY,
                  (const char *[]){"--listen", "tcp://127.0.0.1:0",
                                   "--data-dir", regdir, "--secret-file",
                                   secret1, NULL},
                  NULL);
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
