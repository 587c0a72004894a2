/* tests/test_worker.c — picos-worker driven directly, this program acting
 * as the node (docs/computations.md "Inside a node").
 *
 * Each test makes a session directory as the node would (data/ with its
 * files, w0 and w1 owned by the session's uid, ctl.sock bound here with
 * plain socket(2)), starts picos-worker in a process group of its own with
 * pipes for its stdin and stdout, waits for `ready`, spawns workers with
 * `spawn I`, accepts their connections (checking the peer's uid with
 * SO_PEERCRED), reads W_HELLO and W_READY, then sends W_RUN frames and
 * checks the W_DONE that answers each — and, for deaths, the `exit` line
 * the setup process prints. Every wait has a deadline (PT_LONG); every
 * process is killed on every way out (proctest.h's table).
 *
 * As root (here and in CI) the workers are confined (--confine on, uid
 * and gid 200123) and the tests check what the sandbox promises; not as
 * root, those checks print SKIP. Sanitizer builds set no address-space
 * limit (ASan and TSan reserve terabytes of shadow), so the memory tests
 * print SKIP there.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "compute_int.h"
#include "proctest.h"
#include "wframe.h"

#define UID 200123u
#define MEM (256ull << 20)
#define NPROC 64

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define NO_AS_LIMIT 1
#else
#define NO_AS_LIMIT 0
#endif

typedef Picos__V1__WorkerFrame wframe;

typedef struct sess {
    char root[90];
    int lsock;   /* ctl.sock, listening */
    kid k;       /* picos-worker: k.out its stdout */
    int in;      /* its stdin */
    int conn[2]; /* worker i's connection */
    int wpid[2]; /* worker i's pid */
    bool confine;
} sess;

static bool
is_root(void)
{
    return geteuid() == 0;
}

static void
skip(const char *what)
{
    printf("\n    SKIP: %s ", what);
}

static void
mkfile(const char *dir, const char *name, const char *text, mode_t mode)
{
    char p[400];

    snprintf(p, sizeof p, "%s/%s", dir, name);
    write_file(p, text);
    CU_ASSERT_FATAL(chmod(p, mode) == 0);
}

/* The session directory and its socket. */
static void
sess_make(sess *s, bool confine, const char *setup_txt, bool fail_setup)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    char p[400];

    memset(s, 0, sizeof *s);
    s->lsock = s->in = s->conn[0] = s->conn[1] = -1;
    s->k.out = s->k.err = -1;
    s->confine = confine;
    CU_ASSERT_FATAL(pt_mkdtemp(s->root, sizeof s->root, "s"));
    CU_ASSERT_FATAL(chmod(s->root, 0755) == 0);
    snprintf(p, sizeof p, "%s/data", s->root);
    CU_ASSERT_FATAL(mkdir(p, 0755) == 0);
    if (setup_txt)
        mkfile(p, "setup.txt", setup_txt, 0444);
    if (fail_setup)
        mkfile(p, "fail_setup.txt", "x", 0444);
    mkfile(p, "lines.txt", "first line\nsecond\n", 0444);
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/w%d", s->root, i);
        CU_ASSERT_FATAL(mkdir(p, 0700) == 0);
        if (confine)
            CU_ASSERT_FATAL(chown(p, UID, UID) == 0);
    }
    snprintf(a.sun_path, sizeof a.sun_path, "%s/ctl.sock", s->root);
    s->lsock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CU_ASSERT_FATAL(s->lsock >= 0);
    CU_ASSERT_FATAL(bind(s->lsock, (struct sockaddr *)&a, sizeof a) == 0);
    CU_ASSERT_FATAL(listen(s->lsock, 8) == 0);
    if (confine)
        CU_ASSERT_FATAL(chown(a.sun_path, UID, UID) == 0);
    CU_ASSERT_FATAL(chmod(a.sun_path, 0600) == 0);
}

/* Start picos-worker for s (2 workers) with `lib`; stdin and stdout
 * pipes, stderr into a file. */
static void
sess_start_opts(sess *s, const char *lib, uint64_t memory, int cpu_seconds)
{
    char mem[32], uid[16], errpath[160], cpu[16];
    const char *argv[40];
    int n = 0, pi[2], po[2], slot = -1;
    pid_t parent = getpid();
    int ef;

    snprintf(mem, sizeof mem, "%llu", (unsigned long long)memory);
    snprintf(uid, sizeof uid, "%u", UID);
    snprintf(cpu, sizeof cpu, "%d", cpu_seconds);
    argv[n++] = PICOS_WORKER;
    argv[n++] = "--library", argv[n++] = lib;
    argv[n++] = "--root", argv[n++] = s->root;
    argv[n++] = "--workers", argv[n++] = "2";
    argv[n++] = "--uid", argv[n++] = s->confine ? uid : "0";
    argv[n++] = "--gid", argv[n++] = s->confine ? uid : "0";
    argv[n++] = "--memory", argv[n++] = mem;
    argv[n++] = "--cpu-seconds", argv[n++] = cpu;
    argv[n++] = "--nofile", argv[n++] = "256";
    argv[n++] = "--nproc", argv[n++] = s->confine ? "64" : "0";
    argv[n++] = "--fsize", argv[n++] = "1073741824";
    argv[n++] = "--seccomp", argv[n++] = "on";
    argv[n++] = "--confine", argv[n++] = s->confine ? "on" : "off";
    argv[n] = NULL;
    snprintf(errpath, sizeof errpath, "%s.err", s->root);
    snprintf(s->k.errpath, sizeof s->k.errpath, "%s", errpath);
    for (int i = 0; i < KID_MAX && slot < 0; i++)
        if (!kid_all[i])
            slot = i;
    CU_ASSERT_FATAL(slot >= 0);
    CU_ASSERT_FATAL(pipe2(pi, O_CLOEXEC) == 0);
    CU_ASSERT_FATAL(pipe2(po, O_CLOEXEC) == 0);
    ef = open(errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CU_ASSERT_FATAL(ef >= 0);
    kid_guard();
    fflush(NULL);
    s->k.pid = fork();
    if (s->k.pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(pi[0], 0);
        dup2(po[1], 1);
        dup2(ef, 2);
        execv(PICOS_WORKER, (char *const *)argv);
        _exit(127);
    }
    close(pi[0]), close(po[1]), close(ef);
    CU_ASSERT_FATAL(s->k.pid > 0);
    setpgid(s->k.pid, s->k.pid);
    kid_all[slot] = &s->k;
    s->k.out = po[0];
    s->in = pi[1];
}

static void
sess_start(sess *s, const char *lib)
{
    sess_start_opts(s, lib, MEM, 0);
}

/* Close picos-worker's stdin and let it reap its workers and exit (a kill
 * of its group would leave them to init to reap, still counted against
 * the session uid's RLIMIT_NPROC until it does); then kill what is left. */
static void
sess_free(sess *s)
{
    if (s->in >= 0)
        close(s->in);
    if (s->k.pid > 0)
        CU_ASSERT(kid_wait(&s->k, PT_LONG));
    kid_free(&s->k);
    for (int i = 0; i < 2; i++)
        if (s->conn[i] >= 0)
            close(s->conn[i]);
    if (s->lsock >= 0)
        close(s->lsock);
    s->in = s->lsock = s->conn[0] = s->conn[1] = -1;
}

static void
cmd(sess *s, const char *line)
{
    size_t n = strlen(line);

    CU_ASSERT_FATAL(write(s->in, line, n) == (ssize_t)n);
}

static bool
line(sess *s, char *buf, size_t size)
{
    bool ok = read_line(s->k.out, buf, size, PT_LONG);

    if (!ok) {
        char e[2048];
        fprintf(stderr, "\nno line from picos-worker; its stderr: %s\n",
                kid_errtext(&s->k, e, sizeof e));
    }
    return ok;
}

/* The next frame on fd within PT_LONG: 0 with *f, 1 on EOF, -1. */
static int
rd(int fd, wframe **f)
{
    struct pollfd p = {fd, POLLIN, 0};

    *f = NULL;
    if (poll(&p, 1, (int)(PT_LONG * 1000)) != 1)
        return -1;
    return pc__wframe_read(fd, CP_WFRAME_MAX, f);
}

static void
expect_ready(sess *s)
{
    char l[256];

    CU_ASSERT_FATAL(line(s, l, sizeof l));
    CU_ASSERT_STRING_EQUAL_FATAL(l, "ready compute_test 1");
}

/* spawn i: the spawned line, the connection, W_HELLO and W_READY. */
static void
spawn(sess *s, int i)
{
    char l[256], want[32];
    struct ucred cr;
    socklen_t cl = sizeof cr;
    struct pollfd p = {s->lsock, POLLIN, 0};
    wframe *f;
    int pid;
    bool echo = false;

    snprintf(want, sizeof want, "spawn %d\n", i);
    cmd(s, want);
    CU_ASSERT_FATAL(line(s, l, sizeof l));
    if (sscanf(l, "spawned %*d %d", &pid) != 1) {
        char e[2048];
        fprintf(stderr, "\nspawn %d: got '%s'; stderr: %s\n", i, l,
                kid_errtext(&s->k, e, sizeof e));
    }
    CU_ASSERT_FATAL(sscanf(l, "spawned %*d %d", &pid) == 1);
    snprintf(want, sizeof want, "spawned %d ", i);
    CU_ASSERT_FATAL(!strncmp(l, want, strlen(want)));
    s->wpid[i] = pid;
    CU_ASSERT_FATAL(poll(&p, 1, (int)(PT_LONG * 1000)) == 1);
    s->conn[i] = accept4(s->lsock, NULL, NULL, SOCK_CLOEXEC);
    CU_ASSERT_FATAL(s->conn[i] >= 0);
    CU_ASSERT_FATAL(getsockopt(s->conn[i], SOL_SOCKET, SO_PEERCRED, &cr, &cl) ==
                    0);
    CU_ASSERT_EQUAL(cr.uid, s->confine ? UID : getuid());
    CU_ASSERT_EQUAL(cr.pid, pid);
    CU_ASSERT_FATAL(rd(s->conn[i], &f) == 0);
    CU_ASSERT_EQUAL(f->op, PICOS__V1__WORKER_OP__W_HELLO);
    CU_ASSERT_EQUAL(f->worker, i);
    CU_ASSERT_EQUAL(f->pid, (uint32_t)pid);
    picos__v1__worker_frame__free_unpacked(f, NULL);
    CU_ASSERT_FATAL(rd(s->conn[i], &f) == 0);
    CU_ASSERT_EQUAL_FATAL(f->op, PICOS__V1__WORKER_OP__W_READY);
    CU_ASSERT_STRING_EQUAL(f->name, "compute_test");
    CU_ASSERT_EQUAL(f->version, 1);
    for (size_t k = 0; k < f->n_jobs; k++)
        echo |= !strcmp(f->jobs[k], "echo");
    CU_ASSERT(echo);
    CU_ASSERT(f->n_jobs >= 17);
    picos__v1__worker_frame__free_unpacked(f, NULL);
}

static void
sess_up(sess *s, int workers)
{
    expect_ready(s);
    for (int i = 0; i < workers; i++)
        spawn(s, i);
}

typedef struct jfile {
    const char *name, *data;
} jfile;

static void
send_run(sess *s, int i, uint64_t id, uint32_t attempt, const char *fn,
         const void *in, size_t len, const jfile *fin, const char **fout)
{
    wframe f = PICOS__V1__WORKER_FRAME__INIT;
    Picos__V1__ComputeJob j = PICOS__V1__COMPUTE_JOB__INIT;
    Picos__V1__ComputeJobFile files[8], *fp[8];
    size_t nf = 0, no = 0;

    for (; fin && fin[nf].name; nf++) {
        picos__v1__compute_job_file__init(&files[nf]);
        files[nf].name = (char *)fin[nf].name;
        files[nf].data.data = (uint8_t *)fin[nf].data;
        files[nf].data.len = strlen(fin[nf].data);
        fp[nf] = &files[nf];
    }
    while (fout && fout[no])
        no++;
    j.id = id;
    j.attempt = attempt;
    j.fn = (char *)fn;
    j.input.data = (uint8_t *)in;
    j.input.len = len;
    j.cpus = 1;
    j.files_in = fp;
    j.n_files_in = nf;
    j.files_out = (char **)fout;
    j.n_files_out = no;
    f.op = PICOS__V1__WORKER_OP__W_RUN;
    f.worker = i;
    f.job = &j;
    CU_ASSERT_FATAL(pc__wframe_write(s->conn[i], CP_WFRAME_MAX, &f) == 0);
}

/* The W_DONE of job id on worker i (the caller frees it). */
static wframe *
done_of(sess *s, int i, uint64_t id)
{
    wframe *f;

    CU_ASSERT_FATAL(rd(s->conn[i], &f) == 0);
    CU_ASSERT_EQUAL_FATAL(f->op, PICOS__V1__WORKER_OP__W_DONE);
    CU_ASSERT_FATAL(f->done != NULL);
    CU_ASSERT_EQUAL(f->worker, i);
    CU_ASSERT_EQUAL(f->done->id, id);
    CU_ASSERT_EQUAL(f->done->kind, PICOS__V1__COMPUTE_EVENT_KIND__JOB_DONE);
    CU_ASSERT_EQUAL(f->done->worker, i);
    CU_ASSERT(f->done->started_us > 0);
    CU_ASSERT(f->done->ended_us >= f->done->started_us);
    return f;
}

/* Run fn(in) on worker i: the W_DONE. */
static wframe *
run(sess *s, int i, uint64_t id, const char *fn, const void *in, size_t len)
{
    send_run(s, i, id, 1, fn, in, len, NULL, NULL);
    return done_of(s, i, id);
}

/* Run fn(text) and check it ends OK with result `want`. */
static void
run_ok(sess *s, int i, uint64_t id, const char *fn, const char *in,
       const char *want)
{
    wframe *f = run(s, i, id, fn, in, strlen(in));
    bool same = f->done->result.len == strlen(want) &&
                (!f->done->result.len ||
                 !memcmp(f->done->result.data, want, strlen(want)));

    CU_ASSERT_EQUAL(f->done->why, PICOS__V1__COMPUTE_WHY__WHY_OK);
    if (f->done->why != PICOS__V1__COMPUTE_WHY__WHY_OK)
        fprintf(stderr, "\n%s: %s\n", fn, f->done->error);
    CU_ASSERT(same);
    if (!same) {
        fprintf(stderr, "\n%s: got '%.*s', want '%s'\n", fn,
                (int)f->done->result.len, (char *)f->done->result.data, want);
    }
    picos__v1__worker_frame__free_unpacked(f, NULL);
}

/* Run fn(text) and check it fails (why) with an error starting `want`. */
static void
run_fail(sess *s, int i, uint64_t id, const char *fn, const char *in, int why,
         const char *want)
{
    wframe *f = run(s, i, id, fn, in, strlen(in));

    CU_ASSERT_EQUAL(f->done->why, why);
    CU_ASSERT(!strncmp(f->done->error, want, strlen(want)));
    if (strncmp(f->done->error, want, strlen(want)))
        fprintf(stderr, "\n%s: error '%s', want '%s...'\n", fn, f->done->error,
                want);
    picos__v1__worker_frame__free_unpacked(f, NULL);
}

/* The `exit I PID STATUS MAXRSS` line of worker i: its status, maxrss. */
static void
expect_exit(sess *s, int i, int *status, long *maxrss)
{
    char l[256];
    int wi = -1, pid = -1;

    CU_ASSERT_FATAL(line(s, l, sizeof l));
    CU_ASSERT_FATAL(sscanf(l, "exit %d %d %d %ld", &wi, &pid, status, maxrss) ==
                    4);
    CU_ASSERT_EQUAL(wi, i);
    CU_ASSERT_EQUAL(pid, s->wpid[i]);
}

/* Wait for k to exit without reaping it (its pid, and so its workers'
 * group, can't be reused meanwhile); true when it did. */
static bool
exited_unreaped(const kid *k)
{
    double end = pc_now() + PT_LONG;
    siginfo_t si;

    do {
        memset(&si, 0, sizeof si);
        if (waitid(P_PID, (id_t)k->pid, &si, WEXITED | WNOHANG | WNOWAIT))
            return false;
        if (si.si_pid == k->pid)
            return true;
        poll(NULL, 0, 10);
    } while (pc_now() < end);
    return false;
}

/* The socket's end: EOF, or ECONNRESET when the worker died with frames
 * unread. */
static void
expect_eof(int fd)
{
    wframe *f = NULL;
    int r = rd(fd, &f);

    /* a peer that dies with frames unread in its socket leaves a reset,
     * not an end of file: either is the socket's end */
    if (r == -1 && errno == ECONNRESET)
        r = 1;
    CU_ASSERT_EQUAL(r, 1);
    if (r != 1)
        fprintf(stderr, "\nexpected EOF, got %d (%s, op %d)\n", r,
                strerror(errno), f ? (int)f->op : -1);
    if (f)
        picos__v1__worker_frame__free_unpacked(f, NULL);
}

/* ---- tests ------------------------------------------------------------------ */

PT_TEST(echo_square)
static void
echo_square(void)
{
    sess s;
    long x = 12345, y;
    wframe *f;

    signal(SIGPIPE, SIG_IGN);
    sess_make(&s, is_root(), "from setup", false);
    sess_start(&s, COMPUTE_LIB);
    sess_up(&s, 2);
    run_ok(&s, 0, 1, "echo", "hello", "hello");
    run_ok(&s, 1, 2, "echo", "", "");
    f = run(&s, 1, 3, "square", &x, sizeof x);
    CU_ASSERT_EQUAL(f->done->why, PICOS__V1__COMPUTE_WHY__WHY_OK);
    CU_ASSERT_EQUAL_FATAL(f->done->result.len, sizeof y);
    memcpy(&y, f->done->result.data, sizeof y);
    CU_ASSERT_EQUAL(y, x * x);
    picos__v1__worker_frame__free_unpacked(f, NULL);
    run_fail(&s, 0, 4, "square", "abc", PICOS__V1__COMPUTE_WHY__WHY_FAILED,
             "want 8 bytes, got 3");
    run_fail(&s, 0, 5, "nope", "", PICOS__V1__COMPUTE_WHY__WHY_FAILED,
             "no job function nope");
    /* node_setup's memory reached both workers; worker_setup's index */
    run_ok(&s, 0, 6, "setup_value", "", "from setup");
    run_ok(&s, 1, 7, "setup_value", "", "from setup");
    run_ok(&s, 0, 8, "worker", "", "0");
    run_ok(&s, 1, 9, "worker", "", "1");
    run_ok(&s, 1, 10, "data", "lines.txt", "first line");
    sess_free(&s);
}

PT_TEST(fail)
static void
fail(void)
{
    sess s;

    signal(SIGPIPE, SIG_IGN);
    sess_make(&s, is_root(), NULL, false);
    sess_start(&s, COMPUTE_LIB);
    sess_up(&s, 1);
    run_fail(&s, 0, 1, "fail", "because", PICOS__V1__COMPUTE_WHY__WHY_FAILED,
             "asked to fail: because");
    run_ok(&s, 0, 2, "setup_value", "", "none"); /* no setup.txt */
    sess_free(&s);
}

PT_TEST(crash)
static void
crash(void)
{
    sess s;
    int st;
    long rss;

    signal(SIGPIPE, SIG_IGN);
    sess_make(&s, is_root(), NULL, false);
    sess_start(&s, COMPUTE_LIB);
    sess_up(&s, 2);
    send_run(&s, 0, 1, 1, "crash", "", 0, NULL, NULL);
    expect_exit(&s, 0, &st, &rss);
    CU_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);
    expect_eof(s.conn[0]);
    /* the other worker goes on; worker 0 comes back with a fork */
    run_ok(&s, 1, 2, "echo", "still here", "still here");
    close(s.conn[0]);
    spawn(&s, 0);
    send_run(&s, 0, 3, 1, "crash_once", "", 0, NULL, NULL);
    expect_exit(&s, 0, &st, &rss);
    CU_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);
    close(s.conn[0]);
    spawn(&s, 0);
    send_run(&s, 0, 3, 2, "crash_once", "", 0, NULL, NULL);
    {
        wframe *f = done_of(&s, 0, 3);
        CU_ASSERT_EQUAL(f->done->attempt, 2);
        CU_ASSERT_EQUAL(f->done->why, PICOS__V1__COMPUTE_WHY__WHY_OK);
        CU_ASSERT_EQUAL(f->done->result.len, 8);
        picos__v1__worker_frame__free_unpacked(f, NULL);
    }
    sess_free(&s);
}

PT_TEST(whoami)
static void
whoami(void)
{
    sess s;
    char want[512];

    signal(SIGPIPE, SIG_IGN);
    if (!is_root()) {
        skip("not root: no confinement to check");
        return;
    }
    sess_make(&s, true, NULL, false);
    sess_start(&s, COMPUTE_LIB);
    sess_up(&s, 2);
    if (NO_AS_LIMIT)
        snprintf(want, sizeof want,
                 "uid=%u gid=%u nnp=1 seccomp=2 capeff=0 cwd=/w0 nofile=256 "
                 "as=inf nproc=%d core=0",
                 UID, UID, NPROC);
    else
        snprintf(want, sizeof want,
                 "uid=%u gid=%u nnp=1 seccomp=2 capeff=0 cwd=/w0 nofile=256 "
                 "as=%llu nproc=%d core=0",
                 UID, UID, (unsigned long long)MEM, NPROC);
    run_ok(&s, 0, 1, "whoami", "", want);
    sess_free(&s);
}

PT_TEST(fork_denied)
static void
fork_denied(void)
{
    sess s;
    char want[64];

    signal(SIGPIPE, SIG_IGN);
    sess_make(&s, is_root(), NULL, false);
    sess_start(&s, COMPUTE_LIB);
    sess_up(&s, 1);
    snprintf(want, sizeof want, "forks: 0 ok, first errno %d", EPERM);
    run_ok(&s, 0, 1, "fork", "", want);
    sess_free(&s);
}

PT_TEST(read_outside)
static void
read_outside(void)
{
    sess s;
    char data[300], want[64];

    signal(SIGPIPE, SIG_IGN);
    if (!is_root()) {
        skip("not root: no chroot to check");
        return;
    }
    sess_make(&s, true, NULL, false);
    sess_start(&s, COMPUTE_LIB);
    sess_up(&s, 1);
    snprintf(data, sizeof data, "%s/data/lines.txt", s.root);
    snprintf(want, sizeof want, "etc=%d rel=%d input=%d", ENOENT, ENOENT,
             ENOENT);
    run_ok(&s, 0, 1, "read_outside", data, want);
    /* and what is inside is there */
    run_ok(&s, 0, 2, "read_outside", "/data/lines.txt", "etc=2 rel=2 input=0");
    sess_free(&s);
}

PT_TEST(hog)
static void
hog(void)
{
    sess s;
    int st;
    long rss;

    signal(SIGPIPE, SIG_IGN);
    if (NO_AS_LIMIT) {
        skip("sanitizer build: no address-space limit");
        return;
    }
    sess_make(&s, is_root(), NULL, false);
    sess_start(&s, COMPUTE_LIB);
    sess_up(&s, 1);
    run_fail(&s, 0, 1, "hog", "", PICOS__V1__COMPUTE_WHY__WHY_FAILED,
             "out of memory: malloc refused after");
    run_ok(&s, 0, 2, "echo", "after", "after"); /* it gave it back */
    send_run(&s, 0, 3, 1, "hog_crash", "", 0, NULL, NULL);
    expect_exit(&s, 0, &st, &rss);
    CU_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);
    CU_ASSERT(rss >= (long)(MEM / 1024 * 3 / 4));
    if (rss < (long)(MEM / 1024 * 3 / 4))
        fprintf(stderr, "\nhog_crash: maxrss %ld KiB\n", rss);
    sess_free(&s);
}

PT_TEST(files)
static void
files(void)
{
    sess s;
    const jfile in[] = {{"in.txt", "abcdef"}, {NULL, NULL}};
    const jfile bad[] = {{"../x", "no"}, {NULL, NULL}};
    const char *out[] = {"out.txt", "missing.txt", "../etc", NULL};
    wframe *f;

    signal(SIGPIPE, SIG_IGN);
    sess_make(&s, is_root(), NULL, false);
    sess_start(&s, COMPUTE_LIB);
    sess_up(&s, 1);
    send_run(&s, 0, 1, 1, "files", "", 0, in, out);
    f = done_of(&s, 0, 1);
    CU_ASSERT_EQUAL(f->done->why, PICOS__V1__COMPUTE_WHY__WHY_OK);
    CU_ASSERT(f->done->result.len == 1 && f->done->result.data[0] == '6');
    CU_ASSERT_EQUAL_FATAL(f->done->n_files_out, 1);
    CU_ASSERT_STRING_EQUAL(f->done->files_out[0]->name, "out.txt");
    CU_ASSERT(f->done->files_out[0]->data.len == 6 &&
              !memcmp(f->done->files_out[0]->data.data, "fedcba", 6));
    picos__v1__worker_frame__free_unpacked(f, NULL);
    /* the scratch directory is emptied before the next job */
    run_fail(&s, 0, 2, "files", "", PICOS__V1__COMPUTE_WHY__WHY_FAILED,
             "in.txt: No such file");
    send_run(&s, 0, 3, 1, "files", "", 0, bad, NULL);
    f = done_of(&s, 0, 3);
    CU_ASSERT_EQUAL(f->done->why, PICOS__V1__COMPUTE_WHY__WHY_FAILED);
    CU_ASSERT_STRING_EQUAL(f->done->error, "file in: not a plain name");
    picos__v1__worker_frame__free_unpacked(f, NULL);
    sess_free(&s);
}

static void
to_job(sess *s, int i, uint64_t id, const char *text)
{
    wframe f = PICOS__V1__WORKER_FRAME__INIT;

    f.op = PICOS__V1__WORKER_OP__W_TO_JOB;
    f.job_id = id;
    f.data.data = (uint8_t *)text;
    f.data.len = strlen(text);
    CU_ASSERT_FATAL(pc__wframe_write(s->conn[i], CP_WFRAME_MAX, &f) == 0);
}

PT_TEST(chat)
static void
chat(void)
{
    sess s;
    wframe *f;

    signal(SIGPIPE, SIG_IGN);
    sess_make(&s, is_root(), NULL, false);
    sess_start(&s, COMPUTE_LIB);
    sess_up(&s, 1);
    send_run(&s, 0, 7, 1, "chat", "", 0, NULL, NULL);
    to_job(&s, 0, 6, "not for you"); /* an earlier job's: dropped */
    to_job(&s, 0, 7, "hello");
    CU_ASSERT_FATAL(rd(s.conn[0], &f) == 0);
    CU_ASSERT_EQUAL(f->op, PICOS__V1__WORKER_OP__W_FROM_JOB);
    CU_ASSERT_EQUAL(f->job_id, 7);
    CU_ASSERT(f->data.len == 5 && !memcmp(f->data.data, "HELLO", 5));
    picos__v1__worker_frame__free_unpacked(f, NULL);
    to_job(&s, 0, 7, "again");
    CU_ASSERT_FATAL(rd(s.conn[0], &f) == 0);
    CU_ASSERT(f->data.len == 5 && !memcmp(f->data.data, "AGAIN", 5));
    picos__v1__worker_frame__free_unpacked(f, NULL);
    to_job(&s, 0, 7, "bye");
    f = done_of(&s, 0, 7);
    CU_ASSERT_EQUAL(f->done->why, PICOS__V1__COMPUTE_WHY__WHY_OK);
    CU_ASSERT(f->done->result.len == 9 &&
              !memcmp(f->done->result.data, "chatted 2", 9));
    picos__v1__worker_frame__free_unpacked(f, NULL);
    sess_free(&s);
}

/* picos-worker says `failed TEXT` and exits 1. */
static void
expect_failed(sess *s, const char *want)
{
    char l[512];

    CU_ASSERT_FATAL(line(s, l, sizeof l));
    CU_ASSERT(!strncmp(l, "failed ", 7) && strstr(l, want));
    if (strncmp(l, "failed ", 7) || !strstr(l, want))
        fprintf(stderr, "\ngot '%s', want 'failed ...%s...'\n", l, want);
    CU_ASSERT_FATAL(kid_wait(&s->k, PT_LONG));
    CU_ASSERT_EQUAL(exit_code(&s->k), 1);
}

PT_TEST(setup_fails)
static void
setup_fails(void)
{
    sess s;
    char missing[300];

    signal(SIGPIPE, SIG_IGN);
    sess_make(&s, is_root(), NULL, true);
    sess_start(&s, COMPUTE_LIB);
    expect_failed(&s, "setup refused: fail_setup.txt present");
    sess_free(&s);

    sess_make(&s, is_root(), NULL, false);
    snprintf(missing, sizeof missing, "%s/no-such.so", s.root);
    sess_start(&s, missing);
    expect_failed(&s, "no-such.so");
    sess_free(&s);

    sess_make(&s, is_root(), NULL, false);
    sess_start(&s, COMPUTE_NOSYM);
    expect_failed(&s, "is not a computation: no symbol picos_computation");
    sess_free(&s);

    sess_make(&s, is_root(), NULL, false);
    sess_start(&s, COMPUTE_BADABI);
    expect_failed(&s, "ABI 7, this worker runs 1");
    sess_free(&s);

    sess_make(&s, is_root(), NULL, false);
    sess_start(&s, PICOS_WORKER); /* an executable, not a library */
    expect_failed(&s, "cannot load");
    sess_free(&s);
}

PT_TEST(kill_and_quit)
static void
kill_and_quit(void)
{
    sess s;
    int st, w0, w1;
    long rss;
    wframe f = PICOS__V1__WORKER_FRAME__INIT;
    unsigned char huge[4] = {0xff, 0xff, 0xff, 0xff};

    signal(SIGPIPE, SIG_IGN);
    sess_make(&s, is_root(), NULL, false);
    sess_start(&s, COMPUTE_LIB);
    sess_up(&s, 2);
    /* kill I: SIGKILL, whatever the worker does */
    send_run(&s, 0, 1, 1, "sleep", "60000", 5, NULL, NULL);
    cmd(&s, "kill 0\n");
    expect_exit(&s, 0, &st, &rss);
    CU_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    expect_eof(s.conn[0]);
    close(s.conn[0]);
    /* W_QUIT: worker_cleanup, exit 0 */
    spawn(&s, 0);
    f.op = PICOS__V1__WORKER_OP__W_QUIT;
    CU_ASSERT_FATAL(pc__wframe_write(s.conn[0], CP_WFRAME_MAX, &f) == 0);
    expect_exit(&s, 0, &st, &rss);
    CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(s.conn[0]);
    /* an oversized frame from the node: the worker gives up (exit 1) */
    spawn(&s, 0);
    CU_ASSERT_FATAL(write(s.conn[0], huge, 4) == 4);
    expect_exit(&s, 0, &st, &rss);
    CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    close(s.conn[0]);
    /* stdin's end: every worker killed and reaped, exit 0 */
    spawn(&s, 0);
    w0 = s.wpid[0], w1 = s.wpid[1];
    send_run(&s, 1, 2, 1, "sleep", "60000", 5, NULL, NULL);
    close(s.in);
    s.in = -1;
    CU_ASSERT_FATAL(exited_unreaped(&s.k));
    CU_ASSERT(kill(w0, 0) < 0 && errno == ESRCH);
    CU_ASSERT(kill(w1, 0) < 0 && errno == ESRCH);
    CU_ASSERT_FATAL(kid_wait(&s.k, PT_LONG));
    CU_ASSERT_EQUAL(exit_code(&s.k), 0);
    expect_eof(s.conn[0]);
    expect_eof(s.conn[1]);
    sess_free(&s);

    /* quit: the same */
    sess_make(&s, is_root(), NULL, false);
    sess_start(&s, COMPUTE_LIB);
    sess_up(&s, 2);
    w0 = s.wpid[0], w1 = s.wpid[1];
    cmd(&s, "quit\n");
    CU_ASSERT_FATAL(exited_unreaped(&s.k));
    CU_ASSERT(kill(w0, 0) < 0 && errno == ESRCH);
    CU_ASSERT(kill(w1, 0) < 0 && errno == ESRCH);
    CU_ASSERT_FATAL(kid_wait(&s.k, PT_LONG));
    CU_ASSERT_EQUAL(exit_code(&s.k), 0);
    sess_free(&s);
}

PT_TEST(cpu_limit)
static void
cpu_limit(void)
{
    sess s;
    int st;
    long rss;

    signal(SIGPIPE, SIG_IGN);
    sess_make(&s, is_root(), NULL, false);
    sess_start_opts(&s, COMPUTE_LIB, MEM, 1);
    sess_up(&s, 1);
    send_run(&s, 0, 1, 1, "spin", "30000", 5, NULL, NULL);
    expect_exit(&s, 0, &st, &rss);
    CU_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGXCPU);
    if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGXCPU)
        fprintf(stderr, "\nspin: status %#x\n", st);
    sess_free(&s);
}

PT_TEST(worker_setup_fails)
static void
worker_setup_fails(void)
{
    sess s;
    char p[200], l[256];
    wframe *f;
    int st, pid;
    long rss;

    signal(SIGPIPE, SIG_IGN);
    sess_make(&s, is_root(), NULL, false);
    snprintf(p, sizeof p, "%s/data", s.root);
    mkfile(p, "fail_worker.txt", "x", 0444);
    sess_start(&s, COMPUTE_LIB);
    expect_ready(&s);
    cmd(&s, "spawn 1\n");
    CU_ASSERT_FATAL(line(&s, l, sizeof l));
    CU_ASSERT_FATAL(sscanf(l, "spawned 1 %d", &pid) == 1);
    s.wpid[1] = pid;
    CU_ASSERT_FATAL(poll(&(struct pollfd){s.lsock, POLLIN, 0}, 1,
                         (int)(PT_LONG * 1000)) == 1);
    s.conn[1] = accept4(s.lsock, NULL, NULL, SOCK_CLOEXEC);
    CU_ASSERT_FATAL(s.conn[1] >= 0);
    CU_ASSERT_FATAL(rd(s.conn[1], &f) == 0);
    CU_ASSERT_EQUAL(f->op, PICOS__V1__WORKER_OP__W_HELLO);
    picos__v1__worker_frame__free_unpacked(f, NULL);
    CU_ASSERT_FATAL(rd(s.conn[1], &f) == 0);
    CU_ASSERT_EQUAL(f->op, PICOS__V1__WORKER_OP__W_SETUP_FAILED);
    CU_ASSERT_EQUAL(f->worker, 1);
    CU_ASSERT_STRING_EQUAL(f->text,
                           "worker setup refused: fail_worker.txt present");
    picos__v1__worker_frame__free_unpacked(f, NULL);
    expect_exit(&s, 1, &st, &rss);
    CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    sess_free(&s);
}

PT_MAIN("worker", PT_ENTRY(echo_square), PT_ENTRY(fail), PT_ENTRY(crash),
        PT_ENTRY(whoami), PT_ENTRY(fork_denied), PT_ENTRY(read_outside),
        PT_ENTRY(hog), PT_ENTRY(files), PT_ENTRY(chat), PT_ENTRY(setup_fails),
        PT_ENTRY(kill_and_quit), PT_ENTRY(cpu_limit),
        PT_ENTRY(worker_setup_fails))
