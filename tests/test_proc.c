/* tests/test_proc.c — subprocesses: pycos's pipe_csum.py (communicate with
 * sha1sum, and a custom feeder/reader pair) and pipe_grep.py (a pipeline
 * `grep -i error | wc -l` fed by a writer task, read by lines), several MB
 * through cat without deadlock, the output bound, exit statuses (exit 3,
 * false, killed by a signal), a wait that times out, bounded readline,
 * separate stderr, many subprocesses at once from tasks on both workers, a
 * missing program, and a wait from main().
 */
#define _GNU_SOURCE /* pipe2, O_CLOEXEC, pread, mkdtemp, setenv */
#include <errno.h>
#include <fcntl.h>
#include <sys/wait.h>

#include "picos/proc.h"

#include "testutil.h"

#define LONG_T 60.0

static unsigned char
pat(size_t i)
{
    return (unsigned char)((i * 2654435761u) >> 11);
}

/* Open fds of this process: equal before and after a test's node run, so
 * no pipe, pidfd or file is leaked. */
static int
nfds(void)
{
    int n = 0;

    for (int fd = 0; fd < 1024; fd++)
        n += fcntl(fd, F_GETFD) >= 0;
    return n;
}

#define RUN_TASK(W, fn, ctx, done, want)                                       \
    do {                                                                       \
        int fds_ = nfds();                                                     \
        PT_RUN_TASK(W, fn, ctx, done, want);                                   \
        CU_ASSERT_EQUAL(nfds(), fds_);                                         \
    } while (0)

/* ---- pipe_csum ----------------------------------------------------------------- */

struct csum_ctx {
    char dir[64];
    char path[128];
    unsigned char *data;
    size_t len;
    atomic_int done;
};

static pc_msg *
feeder(void *arg)
{
    void **a = arg;
    pc_proc *p = a[0];
    struct csum_ctx *c = a[1];

    for (size_t off = 0; off < c->len; off += 7919) {
        size_t k = c->len - off < 7919 ? c->len - off : 7919, n = 0;
        TCHECK_RC(pc_proc_write(p, c->data + off, k, PT_LONG, &n), PC_OK);
        TCHECK_EQ(n, k);
    }
    TCHECK_RC(pc_proc_close_stdin(p), PC_OK);
    TCHECK_RC(pc_proc_close_stdin(p), PC_OK); /* idempotent */
    return NULL;
}

static pc_msg *
csum_task(void *arg)
{
    struct csum_ctx *c = arg;
    char *const ref_argv[] = {"sha1sum", c->path, NULL};
    char *const argv[] = {"sha1sum", NULL};
    pc_proc_opts o = {.flags = PC_PROC_STDIN | PC_PROC_STDOUT};
    pc_proc *p = NULL;
    char *ref = NULL, *out = NULL, *err = NULL;
    size_t reflen = 0, outlen = 0, errlen = 7;
    int st = -1;

    /* the reference: sha1sum of the temp file holding the same bytes */
    pc_proc_opts ro = {.flags = PC_PROC_STDOUT};
    TCHECK_RC(pc_proc_spawn(&p, ref_argv, &ro), PC_OK);
    TCHECK_RC(pc_proc_communicate(p, NULL, 0, &ref, &reflen, &err, &errlen,
                                  4096, LONG_T),
              PC_OK);
    TCHECK(err == NULL && errlen == 0); /* stderr not piped */
    TCHECK_RC(pc_proc_wait(p, 0, &st), PC_OK);
    TCHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    pc_proc_free(&p);
    TCHECK(p == NULL);
    TCHECK(ref && reflen > 40);

    /* communicate(input) */
    TCHECK_RC(pc_proc_spawn(&p, argv, &o), PC_OK);
    TCHECK_RC(pc_proc_communicate(p, c->data, c->len, &out, &outlen, NULL, NULL,
                                  4096, LONG_T),
              PC_OK);
    TCHECK(out && outlen > 40);
    TCHECK(ref && out && memcmp(ref, out, 40) == 0);
    TCHECK_RC(pc_proc_wait(p, 0, &st), PC_OK);
    TCHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    pc_proc_free(&p);
    free(out);

    /* the custom feeder and reader pair */
    TCHECK_RC(pc_proc_spawn(&p, argv, &o), PC_OK);
    void *fa[2] = {p, c};
    pc_ref fr = pt_spawn(feeder, fa, PT_SELF, PC_TASK_JOINABLE);
    char buf[128];
    size_t got = 0, n = 0;
    do {
        TCHECK_RC(pc_proc_read(p, buf + got, sizeof buf - 1 - got, PT_LONG, &n),
                  PC_OK);
        got += n;
    } while (n > 0 && got < sizeof buf - 1);
    TCHECK(got > 40);
    TCHECK(ref && memcmp(ref, buf, 40) == 0);
    TCHECK_RC(pc_task_join(fr, PT_LONG, NULL), PC_OK);
    TCHECK_RC(pc_proc_wait(p, PT_LONG, &st), PC_OK);
    TCHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    pc_proc_free(&p);
    free(ref);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(pipe_csum)
static void
pipe_csum(int W)
{
    struct csum_ctx c;
    FILE *f;

    memset(&c, 0, sizeof c);
    c.len = 3u << 20;
    c.data = malloc(c.len);
    CU_ASSERT_FATAL(c.data != NULL);
    for (size_t i = 0; i < c.len; i++)
        c.data[i] = pat(i);
    CU_ASSERT_FATAL(pt_mkdtemp(c.dir, sizeof c.dir, "proc"));
    snprintf(c.path, sizeof c.path, "%s/data", c.dir);
    f = fopen(c.path, "wb");
    CU_ASSERT_FATAL(f != NULL);
    CU_ASSERT_EQUAL(fwrite(c.data, 1, c.len, f), c.len);
    fclose(f);
    RUN_TASK(W, csum_task, &c, &c.done, 1);
    unlink(c.path);
    CU_ASSERT_EQUAL(rmdir(c.dir), 0);
    free(c.data);
}

/* ---- pipe_grep ------------------------------------------------------------------ */

#define GREP_LINES 20000

static bool
has_error(long i)
{
    return i % 7 == 0 || i % 13 == 0;
}

static pc_msg *
grep_writer(void *arg)
{
    pc_proc *p = arg;
    char line[80];

    for (long i = 0; i < GREP_LINES; i++) {
        int k = snprintf(line, sizeof line, "line %ld: %s\n", i,
                         has_error(i) ? (i % 2 ? "an ERROR here" : "error")
                                      : "all fine");
        TCHECK_RC(pc_proc_write(p, line, (size_t)k, PT_LONG, NULL), PC_OK);
    }
    TCHECK_RC(pc_proc_close_stdin(p), PC_OK);
    return NULL;
}

static pc_msg *
grep_task(void *arg)
{
    atomic_int *done = arg;
    char *const grep[] = {"grep", "-i", "error", NULL};
    char *const wc[] = {"wc", "-l", NULL};
    char *const *const argvs[] = {grep, wc};
    pc_proc_opts o = {.flags = PC_PROC_STDIN | PC_PROC_STDOUT};
    pc_proc *p = NULL;
    char *line = NULL;
    long want = 0;
    int st = -1;

    for (long i = 0; i < GREP_LINES; i++)
        want += has_error(i);
    TCHECK_RC(pc_proc_pipeline(&p, argvs, 2, &o), PC_OK);
    TCHECK(pc_proc_pid(p, 0) > 0 && pc_proc_pid(p, 1) > 0);
    TCHECK_EQ(pc_proc_pid(p, 2), -1);
    /* the writer on the other worker (when there are two) */
    pc_ref w = pt_spawn(grep_writer, p, 1, PC_TASK_JOINABLE);
    TCHECK_RC(pc_proc_readline(p, &line, NULL, 100, LONG_T), PC_OK);
    TCHECK(line != NULL);
    TCHECK_EQ(line ? atol(line) : -1, want);
    free(line);
    TCHECK_RC(pc_proc_readline(p, &line, NULL, 100, LONG_T), PC_ECLOSED);
    TCHECK_RC(pc_task_join(w, PT_LONG, NULL), PC_OK);
    TCHECK_RC(pc_proc_wait(p, PT_LONG, &st), PC_OK);
    TCHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    pc_proc_free(&p);
    atomic_fetch_add(done, 1);
    return NULL;
}

PT_WTEST(pipe_grep)
static void
pipe_grep(int W)
{
    atomic_int done = 0;

    RUN_TASK(W, grep_task, &done, &done, 1);
}

/* ---- large output, output bound --------------------------------------------- */

static pc_msg *
big_task(void *arg)
{
    atomic_int *done = arg;
    size_t len = 6u << 20;
    unsigned char *in = malloc(len);
    char *const cat[] = {"cat", NULL};
    pc_proc_opts o = {.flags = PC_PROC_STDIN | PC_PROC_STDOUT | PC_PROC_STDERR};
    pc_proc *p = NULL;
    char *out = NULL, *err = NULL;
    size_t outlen = 0, errlen = 0;
    int st = -1;

    for (size_t i = 0; i < len; i++)
        in[i] = pat(i);
    TCHECK_RC(pc_proc_spawn(&p, cat, &o), PC_OK);
    TCHECK_RC(pc_proc_communicate(p, in, len, &out, &outlen, &err, &errlen, len,
                                  LONG_T),
              PC_OK);
    TCHECK_EQ(outlen, len);
    TCHECK(out && memcmp(out, in, len) == 0);
    TCHECK(err && errlen == 0 && err[0] == '\0');
    TCHECK_RC(pc_proc_wait(p, 0, &st), PC_OK);
    TCHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    pc_proc_free(&p);
    free(out);
    free(err);

    /* bounded: the rest is read and dropped, no deadlock */
    TCHECK_RC(pc_proc_spawn(&p, cat, &o), PC_OK);
    TCHECK_RC(pc_proc_communicate(p, in, len, &out, &outlen, NULL, NULL, 1000,
                                  LONG_T),
              PC_ETOOBIG);
    TCHECK_EQ(outlen, 1000);
    TCHECK(out && memcmp(out, in, 1000) == 0 && out[1000] == '\0');
    TCHECK_RC(pc_proc_wait(p, 0, &st), PC_OK);
    TCHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    pc_proc_free(&p);
    free(out);

    /* a child that doesn't read its input: the rest is dropped */
    char *const sh[] = {"sh", "-c", "exec 0<&-; echo done", NULL};
    TCHECK_RC(pc_proc_spawn(&p, sh, &o), PC_OK);
    TCHECK_RC(
        pc_proc_communicate(p, in, len, &out, &outlen, NULL, NULL, 100, LONG_T),
        PC_OK);
    TCHECK_STR(out, "done\n");
    TCHECK_RC(pc_proc_wait(p, 0, &st), PC_OK);
    pc_proc_free(&p);
    free(out);
    free(in);
    atomic_fetch_add(done, 1);
    return NULL;
}

PT_WTEST(large_output)
static void
large_output(int W)
{
    atomic_int done = 0;

    RUN_TASK(W, big_task, &done, &done, 1);
}

/* ---- exit statuses, timeouts, kill ------------------------------------------- */

static pc_msg *
status_task(void *arg)
{
    atomic_int *done = arg;
    char *const ex3[] = {"sh", "-c", "exit 3", NULL};
    char *const fls[] = {"false", NULL};
    char *const slp[] = {"sleep", "5", NULL};
    char *const nope[] = {"picos-no-such-program-xyz", NULL};
    pc_proc *p = NULL;
    int st = -1;
    double t0;

    TCHECK_RC(pc_proc_spawn(&p, ex3, NULL), PC_OK);
    TCHECK_RC(pc_proc_wait(p, PT_LONG, &st), PC_OK);
    TCHECK(WIFEXITED(st) && WEXITSTATUS(st) == 3);
    st = -1;
    TCHECK_RC(pc_proc_wait(p, 0, &st), PC_OK); /* collected: at once */
    TCHECK(WIFEXITED(st) && WEXITSTATUS(st) == 3);
    TCHECK_RC(pc_proc_kill(p, SIGTERM), PC_OK); /* reaped: nothing sent */
    pc_proc_free(&p);

    TCHECK_RC(pc_proc_spawn(&p, fls, NULL), PC_OK);
    TCHECK_RC(pc_proc_wait(p, PT_LONG, &st), PC_OK);
    TCHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    pc_proc_free(&p);

    /* a wait that times out, then kill */
    t0 = pc_now();
    TCHECK_RC(pc_proc_spawn(&p, slp, NULL), PC_OK);
    TCHECK_RC(pc_proc_wait(p, 0.1, &st), PC_ETIMEDOUT);
    TCHECK(pt_since(t0) >= 0.09);
    TCHECK_RC(pc_proc_wait(p, 0, &st), PC_ETIMEDOUT);
    TCHECK_RC(pc_proc_kill(p, SIGKILL), PC_OK);
    TCHECK_RC(pc_proc_wait(p, PT_LONG, &st), PC_OK);
    TCHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    TCHECK(pt_since(t0) < 4.0);
    pc_proc_free(&p);

    /* SIGPIPE is back at its default in the child: `yes | head -1` ends */
    char *const yes[] = {"yes", NULL};
    char *const head[] = {"head", "-1", NULL};
    char *const *const yh[] = {yes, head};
    pc_proc_opts oo = {.flags = PC_PROC_STDOUT};
    char *out = NULL;
    TCHECK_RC(pc_proc_pipeline(&p, yh, 2, &oo), PC_OK);
    TCHECK_RC(
        pc_proc_communicate(p, NULL, 0, &out, NULL, NULL, NULL, 100, LONG_T),
        PC_OK);
    TCHECK_STR(out, "y\n");
    free(out);
    TCHECK_RC(pc_proc_wait(p, 0, &st), PC_OK);
    TCHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    pc_proc_free(&p);

    /* communicate times out while the child holds its stdout open */
    char *const slp_out[] = {"sh", "-c", "echo early; exec sleep 5", NULL};
    t0 = pc_now();
    TCHECK_RC(pc_proc_spawn(&p, slp_out, &oo), PC_OK);
    TCHECK_RC(pc_proc_communicate(p, NULL, 0, &out, NULL, NULL, NULL, 100, 0.3),
              PC_ETIMEDOUT);
    TCHECK_STR(out, "early\n"); /* what came before the timeout */
    free(out);
    TCHECK_RC(pc_proc_kill(p, SIGTERM), PC_OK);
    TCHECK_RC(pc_proc_wait(p, PT_LONG, &st), PC_OK);
    TCHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
    TCHECK(pt_since(t0) < 4.0);
    pc_proc_free(&p);

    /* envp, and /dev/null for the streams not piped */
    char *const env[] = {"PICOS_T=bar", NULL};
    char *const echo_env[] = {"sh", "-c", "echo $PICOS_T; cat", NULL};
    pc_proc_opts eo = {.flags = PC_PROC_STDOUT | PC_PROC_DEVNULL, .envp = env};
    TCHECK_RC(pc_proc_spawn(&p, echo_env, &eo), PC_OK);
    TCHECK_RC(
        pc_proc_communicate(p, NULL, 0, &out, NULL, NULL, NULL, 100, LONG_T),
        PC_OK);
    TCHECK_STR(out, "bar\n"); /* and cat saw EOF on /dev/null at once */
    free(out);
    TCHECK_RC(pc_proc_wait(p, 0, &st), PC_OK);
    TCHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    pc_proc_free(&p);

    /* no such program */
    errno = 0;
    TCHECK_RC(pc_proc_spawn(&p, nope, NULL), PC_ENOENT);
    TCHECK_EQ(errno, ENOENT);
    TCHECK(p == NULL);
    char *const *const bad[] = {fls, nope};
    TCHECK_RC(pc_proc_pipeline(&p, bad, 2, NULL), PC_ENOENT);
    TCHECK(p == NULL);
    TCHECK_RC(pc_proc_spawn(&p, NULL, NULL), PC_EINVAL);
    atomic_fetch_add(done, 1);
    return NULL;
}

PT_WTEST(exit_status)
static void
exit_status(int W)
{
    atomic_int done = 0;

    RUN_TASK(W, status_task, &done, &done, 1);
}

/* The same without pidfd: waitpid(WNOHANG) polled with short sleeps. */
PT_WTEST(exit_status_polling)
static void
exit_status_polling(int W)
{
    atomic_int done = 0;

    setenv("PICOS_PROC_NO_PIDFD", "1", 1);
    RUN_TASK(W, status_task, &done, &done, 1);
    unsetenv("PICOS_PROC_NO_PIDFD");
}

/* A task on the other worker kills the process the first one waits for. */
static pc_msg *
killer(void *arg)
{
    TCHECK_RC(pc_proc_kill(arg, SIGKILL), PC_OK);
    return NULL;
}

static pc_msg *
kill_task(void *arg)
{
    atomic_int *done = arg;
    char *const slp[] = {"sleep", "5", NULL};
    pc_proc *p = NULL;
    int st = -1;
    double t0 = pc_now();

    TCHECK_RC(pc_proc_spawn(&p, slp, NULL), PC_OK);
    pc_ref k = pt_spawn(killer, p, 1, PC_TASK_JOINABLE);
    TCHECK_RC(pc_proc_wait(p, PT_LONG, &st), PC_OK);
    TCHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    TCHECK(pt_since(t0) < 4.0);
    TCHECK_RC(pc_task_join(k, PT_LONG, NULL), PC_OK);
    TCHECK_RC(pc_proc_kill(p, SIGKILL), PC_OK); /* exited: a no-op */
    pc_proc_free(&p);
    atomic_fetch_add(done, 1);
    return NULL;
}

PT_WTEST(kill_while_waiting)
static void
kill_while_waiting(int W)
{
    atomic_int done = 0;

    RUN_TASK(W, kill_task, &done, &done, 1);
}

/* ---- readline bound, stderr ------------------------------------------------------ */

static pc_msg *
streams_task(void *arg)
{
    atomic_int *done = arg;
    char *const pf[] = {"sh", "-c",
                        "printf 'abcdefghij\\nxy\\n'; printf 'oops\\n' >&2; "
                        "exit 0",
                        NULL};
    pc_proc_opts o = {.flags = PC_PROC_STDOUT | PC_PROC_STDERR};
    pc_proc *p = NULL;
    char *line = NULL, *out = NULL, *err = NULL;
    size_t len = 0, outlen = 0, errlen = 0;
    int st = -1;

    TCHECK_RC(pc_proc_spawn(&p, pf, &o), PC_OK);
    TCHECK(pc_proc_stdin(p) == NULL);
    TCHECK(pc_proc_stdout(p) != NULL && pc_proc_stderr(p) != NULL);
    TCHECK_RC(pc_proc_write(p, "x", 1, 1, NULL), PC_EINVAL);
    TCHECK_RC(pc_proc_readline(p, &line, &len, 6, PT_LONG), PC_ETOOBIG);
    TCHECK_STR(line, "abcdef");
    free(line);
    TCHECK_RC(pc_proc_readline(p, &line, &len, 6, PT_LONG), PC_OK);
    TCHECK_STR(line, "ghij\n");
    free(line);
    TCHECK_RC(pc_proc_readline_stderr(p, &line, &len, 100, PT_LONG), PC_OK);
    TCHECK_STR(line, "oops\n");
    free(line);
    TCHECK_RC(pc_proc_readline(p, &line, &len, 100, PT_LONG), PC_OK);
    TCHECK_STR(line, "xy\n");
    free(line);
    TCHECK_RC(pc_proc_readline(p, &line, &len, 100, PT_LONG), PC_ECLOSED);
    char b[8];
    size_t n = 9;
    TCHECK_RC(pc_proc_read_stderr(p, b, sizeof b, PT_LONG, &n), PC_OK);
    TCHECK_EQ(n, 0);
    TCHECK_RC(pc_proc_wait(p, PT_LONG, &st), PC_OK);
    pc_proc_free(&p);

    /* communicate keeps the two apart */
    char *const both[] = {"sh", "-c", "echo out; echo err >&2; echo out2",
                          NULL};
    TCHECK_RC(pc_proc_spawn(&p, both, &o), PC_OK);
    TCHECK_RC(pc_proc_communicate(p, NULL, 0, &out, &outlen, &err, &errlen, 100,
                                  LONG_T),
              PC_OK);
    TCHECK_STR(out, "out\nout2\n");
    TCHECK_STR(err, "err\n");
    TCHECK_EQ(errlen, 4);
    pc_proc_free(&p);
    free(out);
    free(err);

    /* 2>&1 */
    pc_proc_opts m = {.flags = PC_PROC_STDOUT | PC_PROC_STDERR_TO_STDOUT};
    char *const e2[] = {"sh", "-c", "echo err >&2", NULL};
    TCHECK_RC(pc_proc_spawn(&p, e2, &m), PC_OK);
    TCHECK_RC(
        pc_proc_communicate(p, NULL, 0, &out, &outlen, NULL, NULL, 100, LONG_T),
        PC_OK);
    TCHECK_STR(out, "err\n");
    pc_proc_free(&p);
    free(out);
    atomic_fetch_add(done, 1);
    return NULL;
}

PT_WTEST(streams)
static void
streams(int W)
{
    atomic_int done = 0;

    RUN_TASK(W, streams_task, &done, &done, 1);
}

/* ---- many at once ---------------------------------------------------------------- */

struct many_ctx {
    atomic_int ok;
    atomic_int done;
    long n;
};

static pc_msg *
one_proc(void *arg)
{
    struct many_ctx *c = arg;
    uintptr_t id = (uintptr_t)pc_self().id;
    char word[32], *out = NULL;
    char *const tr[] = {"tr", "a-z", "A-Z", NULL};
    pc_proc_opts o = {.flags = PC_PROC_STDIN | PC_PROC_STDOUT};
    pc_proc *p = NULL;
    int st = -1;

    snprintf(word, sizeof word, "task%lu\n", (unsigned long)id);
    TCHECK_RC(pc_proc_spawn(&p, tr, &o), PC_OK);
    TCHECK_RC(pc_proc_communicate(p, word, strlen(word), &out, NULL, NULL, NULL,
                                  100, LONG_T),
              PC_OK);
    snprintf(word, sizeof word, "TASK%lu\n", (unsigned long)id);
    TCHECK_STR(out, word);
    TCHECK_RC(pc_proc_wait(p, 0, &st), PC_OK);
    if (out && strcmp(out, word) == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)
        atomic_fetch_add(&c->ok, 1);
    free(out);
    pc_proc_free(&p);
    return NULL;
}

static pc_msg *
many_main(void *arg)
{
    struct many_ctx *c = arg;
    pc_ref r[64];

    for (long i = 0; i < c->n; i++)
        r[i] = pt_spawn(one_proc, c, (int)(i % 2), PC_TASK_JOINABLE);
    for (long i = 0; i < c->n; i++)
        TCHECK_RC(pc_task_join(r[i], LONG_T, NULL), PC_OK);
    TCHECK_EQ(atomic_load(&c->ok), c->n);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(many_procs)
static void
many_procs(int W)
{
    struct many_ctx c;

    memset(&c, 0, sizeof c);
    c.n = pt_scaled(64, 4);
    RUN_TASK(W, many_main, &c, &c.done, 1);
}

/* ---- communicate's state off the caller's stack ------------------------------- */

/* The task modes every call is tried in: a task with its own stack, and a
 * small task (PC_TASK_SMALL), whose stack is another small task's while it
 * waits. */
static const unsigned modes[] = {0, PC_TASK_SMALL};

#define NSMALL 16
#define SMALL_IN (256u << 10) /* more than a pipe holds: the writes wait */

struct small_ctx {
    unsigned char *in;
    atomic_int done;
};

static pc_msg *
small_comm(void *arg)
{
    struct small_ctx *c = arg;
    char *const cat[] = {"sh", "-c", "cat; echo oops >&2", NULL};
    pc_proc_opts o = {.flags = PC_PROC_STDIN | PC_PROC_STDOUT | PC_PROC_STDERR};
    pc_proc *p = NULL;
    char *out = NULL, *err = NULL;
    size_t outlen = 0, errlen = 0;

    TCHECK_RC(pc_proc_spawn(&p, cat, &o), PC_OK);
    TCHECK_RC(pc_proc_communicate(p, c->in, SMALL_IN, &out, &outlen, &err,
                                  &errlen, SMALL_IN, LONG_T),
              PC_OK);
    TCHECK_EQ(outlen, SMALL_IN);
    TCHECK(out && memcmp(out, c->in, SMALL_IN) == 0);
    TCHECK_STR(err, "oops\n");
    pc_proc_free(&p);
    free(out);
    free(err);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(communicate_small_tasks)
static void
communicate_small_tasks(int W)
{
    struct small_ctx c;

    memset(&c, 0, sizeof c);
    c.in = malloc(SMALL_IN);
    CU_ASSERT_FATAL(c.in != NULL);
    for (size_t i = 0; i < SMALL_IN; i++)
        c.in[i] = pat(i);
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        int fds = nfds();
        atomic_store(&c.done, 0);
        PT_START(W);
        for (int i = 0; i < NSMALL; i++) {
            pc_spawn_opts so = pt_on(0, modes[m]);
            CU_ASSERT_EQUAL(pc_spawn(small_comm, &c, &so, NULL), PC_OK);
        }
        PT_RUN();
        CU_ASSERT_EQUAL(atomic_load(&c.done), NSMALL);
        CU_ASSERT_EQUAL(nfds(), fds);
    }
    free(c.in);
}

/* A task terminated inside communicate: nothing of the call keeps running
 * on the input (freed by its owner) or on p (freed once the child is
 * reaped). */
struct kill_ctx {
    unsigned flags;
    pc_proc *p;
    unsigned char *in;
    pc_ref killer;
    atomic_int done;
};

static pc_msg *
comm_victim(void *arg)
{
    struct kill_ctx *c = arg;

    TCHECK_RC(pt_send(c->killer, "started"), PC_OK);
    /* the child neither reads nor writes: every pipe waits */
    (void)pc_proc_communicate(c->p, c->in, SMALL_IN, NULL, NULL, NULL, NULL,
                              100, -1);
    TCHECK(!"the terminated task went on");
    return NULL;
}

static pc_msg *
comm_killer(void *arg)
{
    struct kill_ctx *c = arg;
    char *const slp[] = {"sleep", "30", NULL};
    pc_proc_opts o = {.flags = PC_PROC_STDIN | PC_PROC_STDOUT | PC_PROC_STDERR};
    int st = 0;
    pc_ref v;

    c->killer = pc_self();
    c->in = calloc(1, SMALL_IN);
    TCHECK_RC(pc_proc_spawn(&c->p, slp, &o), PC_OK);
    v = pt_spawn(comm_victim, c, 1, c->flags | PC_TASK_JOINABLE);
    PT_EXPECT("started");
    TCHECK_RC(pc_sleep(0.05), PC_OK); /* most likely waiting by now */
    TCHECK_RC(pc_task_terminate(v), PC_OK);
    TCHECK_RC(pc_task_join(v, PT_LONG, NULL), PC_EKILLED);
    free(c->in); /* the caller is gone: the input is its owner's again */
    c->in = NULL;
    /* Free p (the call's state with it) while the child still runs, then
     * end the child: the pipes then close under nothing of the call.
     * (Killing it first would make the dead task's epoll fd ready, and its
     * old worker's libev would drop it from its epoll set while we close
     * it: an fd race TSan sees, which is the runtime's, not this test's.) */
    pid_t pid = pc_proc_pid(c->p, 0);
    pc_proc_free(&c->p);
    TCHECK(kill(pid, SIGKILL) == 0);
    TCHECK(waitpid(pid, &st, 0) == pid);
    TCHECK(WIFSIGNALED(st));
    /* let anything woken by the child's end run before the check */
    TCHECK_RC(pc_sleep(0.05), PC_OK);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(communicate_terminated)
static void
communicate_terminated(int W)
{
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        struct kill_ctx c;

        memset(&c, 0, sizeof c);
        c.flags = modes[m];
        RUN_TASK(W, comm_killer, &c, &c.done, 1);
    }
}

/* ---- from main(), no node -------------------------------------------------------- */

PT_TEST(wait_from_main)
static void
wait_from_main(void)
{
    char *const ex[] = {"sh", "-c", "exit 7", NULL};
    pc_proc *p = NULL;
    int st = -1;

    CU_ASSERT_EQUAL_FATAL(pc_proc_spawn(&p, ex, NULL), PC_OK);
    CU_ASSERT_EQUAL(pc_proc_wait(p, -1, &st), PC_OK);
    CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 7);
    pc_proc_free(&p);
}

PT_MAIN("proc", PT_WENTRY(pipe_csum), PT_WENTRY(pipe_grep),
        PT_WENTRY(large_output), PT_WENTRY(exit_status),
        PT_WENTRY(exit_status_polling), PT_WENTRY(kill_while_waiting),
        PT_WENTRY(streams), PT_WENTRY(many_procs), PT_ENTRY(wait_from_main),
        PT_WENTRY(communicate_small_tasks), PT_WENTRY(communicate_terminated))
