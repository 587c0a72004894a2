/* apps/worker/picos-worker.c — a computation's setup process
 * (docs/computations.md "Inside a node").
 *
 * One per computation per node, started by the node's session task, which
 * talks to it over stdin/stdout one text line at a time. It sandboxes
 * itself first (sandbox.c: limits, chroot and the session's uid when
 * --confine on, no-new-privs, seccomp — its filter still lets it fork),
 * then loads the library, checks its ABI, runs node_setup() and says
 * `ready NAME VERSION` (or `failed TEXT` and exits 1). Loading inside the
 * sandbox means not even the library's constructors run as the node's
 * user; since the node's copy of the library (DATA_DIR/compute/lib) is
 * outside the chroot, a confined setup process first copies it, as root,
 * into the session directory (ROOT/.library.so, 0444) and loads that.
 *
 * Then it waits on two things only, with poll(): its stdin (`spawn I`,
 * `kill I`, `quit`) and a signalfd for SIGCHLD (blocked, so no handler
 * and no race with fork). Each worker is a fork (worker.c) — the
 * library and what node_setup() built are shared copy-on-write — and
 * each end is reaped with wait4() so that the node gets the raw status and
 * the peak RSS (`exit I PID STATUS MAXRSS_KB`), which is how it tells a
 * memory-limit death from a crash. On `quit`, or stdin's end (the node
 * gone), it kills every worker, reaps them and exits 0: it never outlives
 * its node, and its workers never outlive it (PR_SET_PDEATHSIG).
 *
 * It is a plain single-threaded program: no picos runtime, no threads,
 * blocking writes of short lines to its stdout.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "worker.h"

#define JOBS_MAX 4096
#define NAME_MAX_LEN 255

static pid_t *pids; /* worker i's pid, 0 when none */
static int n_workers;

static __attribute__((noreturn)) void
finish(int code)
{
    fflush(NULL);
    _exit(code);
}

static void quit_all(void) __attribute__((noreturn));

/* One line to the node. A node gone (EPIPE) is a quit. */
static __attribute__((format(printf, 1, 2))) void
say(const char *fmt, ...)
{
    char line[600];
    va_list ap;
    size_t n, put = 0;
    int len;

    va_start(ap, fmt);
    len = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    n = len < 0                         ? 0
        : (size_t)len < sizeof line - 1 ? (size_t)len
                                        : sizeof line - 2;
    line[n++] = '\n';
    while (put < n) {
        ssize_t w = write(1, line + put, n - put);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            quit_all();
        put += (size_t)w;
    }
}

/* `failed TEXT` (one line) and exit 1. */
static __attribute__((noreturn, format(printf, 1, 2))) void
failed(const char *fmt, ...)
{
    char text[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    pc__worker_one_line(text);
    fprintf(stderr, "picos-worker: %s\n", text);
    say("failed %s", text);
    finish(1);
}

static void
quit_all(void)
{
    for (int i = 0; i < n_workers; i++)
        if (pids && pids[i] > 0)
            kill(pids[i], SIGKILL);
    for (int i = 0; i < n_workers; i++)
        if (pids && pids[i] > 0) {
            while (waitpid(pids[i], NULL, 0) < 0 && errno == EINTR)
                ;
            pids[i] = 0;
        }
    finish(0);
}

/* ---- arguments ------------------------------------------------------------ */

static uint64_t
num(const char *opt, const char *v, uint64_t min, uint64_t max)
{
    char *end;
    unsigned long long x;

    errno = 0;
    x = v && *v && *v != '-' ? strtoull(v, &end, 10) : 0;
    if (!v || !*v || *v == '-' || errno || *end || x < min || x > max)
        failed("bad argument: %s %s (want a number from %" PRIu64 " to %" PRIu64
               ")",
               opt, v ? v : "(missing)", min, max);
    return x;
}

static bool
on_off(const char *opt, const char *v)
{
    if (v && !strcmp(v, "on"))
        return true;
    if (v && !strcmp(v, "off"))
        return false;
    failed("bad argument: %s %s (want on or off)", opt, v ? v : "(missing)");
}

static void
parse(int argc, char **argv, pc__worker_opts *o)
{
    memset(o, 0, sizeof *o);
    o->sb.nofile = 256;
    o->sb.seccomp = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--library"))
            o->library = v;
        else if (!strcmp(a, "--root"))
            o->root = o->sb.root = v;
        else if (!strcmp(a, "--workers"))
            o->workers = (int)num(a, v, 1, 1024);
        else if (!strcmp(a, "--uid"))
            o->sb.uid = (uid_t)num(a, v, 0, UINT32_MAX - 1);
        else if (!strcmp(a, "--gid"))
            o->sb.gid = (gid_t)num(a, v, 0, UINT32_MAX - 1);
        else if (!strcmp(a, "--memory"))
            o->sb.memory = num(a, v, 0, UINT64_MAX);
        else if (!strcmp(a, "--cpu-seconds"))
            o->sb.cpu_seconds = (long)num(a, v, 0, LONG_MAX - 1);
        else if (!strcmp(a, "--nofile"))
            o->sb.nofile = (long)num(a, v, 16, 1 << 20);
        else if (!strcmp(a, "--nproc"))
            o->sb.nproc = (long)num(a, v, 0, LONG_MAX);
        else if (!strcmp(a, "--fsize"))
            o->sb.fsize = num(a, v, 0, UINT64_MAX);
        else if (!strcmp(a, "--seccomp"))
            o->sb.seccomp = on_off(a, v);
        else if (!strcmp(a, "--confine"))
            o->sb.confine = on_off(a, v);
        else
            failed("bad argument: %s (usage: picos-worker --library PATH "
                   "--root DIR --workers N [--uid U --gid G --memory B "
                   "--cpu-seconds S --nofile N --nproc N --fsize B --seccomp "
                   "on|off --confine on|off])",
                   a);
        if (!v)
            failed("bad argument: %s needs a value", a);
        i++;
    }
    if (!o->library || !*o->library)
        failed("bad argument: --library PATH is required");
    if (!o->root || o->root[0] != '/')
        failed("bad argument: --root must be an absolute directory");
    if (!o->workers)
        failed("bad argument: --workers N is required");
    if (o->sb.confine && geteuid() != 0)
        failed("--confine on needs root");
    if (o->sb.confine && (o->sb.uid == 0 || o->sb.gid == 0))
        failed("--confine on needs --uid and --gid other than 0");
}

/* ---- the library ----------------------------------------------------------- */

/* Copy the library into the session directory, for a chrooted dlopen. */
static void
copy_library(const pc__worker_opts *o, char *dst, size_t size)
{
    char buf[65536];
    int in, out;
    ssize_t r;

    if ((size_t)snprintf(dst, size, "%s/.library.so", o->root) >= size)
        failed("--root too long");
    in = open(o->library, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        failed("library %s: %s", o->library, strerror(errno));
    if (unlink(dst) && errno != ENOENT)
        failed("%s: %s", dst, strerror(errno));
    out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0444);
    if (out < 0)
        failed("%s: %s", dst, strerror(errno));
    while ((r = read(in, buf, sizeof buf)) != 0) {
        size_t put = 0;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            failed("library %s: %s", o->library, strerror(errno));
        while (put < (size_t)r) {
            ssize_t w = write(out, buf + put, (size_t)r - put);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                failed("%s: %s", dst, strerror(errno));
            put += (size_t)w;
        }
    }
    if (fchown(out, 0, 0) || fchmod(out, 0444) || close(out))
        failed("%s: %s", dst, strerror(errno));
    close(in);
    snprintf(dst, size, "/.library.so");
}

static const pc_computation *
load(const char *path, const char *shown)
{
    const pc_computation *c;
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    size_t n = 0;

    if (!h) {
        const char *e = dlerror();
        failed("cannot load %s: %s", shown, e ? e : "dlopen failed");
    }
    *(void **)&c = dlsym(h, PC_COMPUTATION_SYMBOL);
    if (!c)
        failed("%s is not a computation: no symbol %s", shown,
               PC_COMPUTATION_SYMBOL);
    if (c->abi != PC_COMPUTATION_ABI)
        failed("ABI %u, this worker runs %u", c->abi, PC_COMPUTATION_ABI);
    if (!c->jobs)
        failed("%s defines no job functions", shown);
    for (const pc_job_def *d = c->jobs; d->name; d++, n++) {
        if (n >= JOBS_MAX)
            failed("%s defines more than %d job functions", shown, JOBS_MAX);
        if (!*d->name || strlen(d->name) > NAME_MAX_LEN || !d->fn)
            failed("%s: job function %zu has no name, a name over %d bytes "
                   "or no function",
                   shown, n, NAME_MAX_LEN);
    }
    return c;
}

/* The computation's name for the ready line: one word. */
static const char *
word(const char *s, char *buf, size_t size)
{
    size_t n = 0;

    for (; s && *s && n + 1 < size && n < NAME_MAX_LEN; s++)
        buf[n++] = (unsigned char)*s <= ' ' || *s == 0x7f ? '_' : *s;
    if (!n)
        buf[n++] = '-';
    buf[n] = '\0';
    return buf;
}

/* ---- the loop -------------------------------------------------------------- */

static int
index_of(const char *arg)
{
    char *end;
    long i;

    errno = 0;
    i = arg ? strtol(arg, &end, 10) : -1;
    if (!arg || !*arg || errno || *end || i < 0 || i >= n_workers)
        return -1;
    return (int)i;
}

static void
spawn(int i)
{
    pid_t pid;

    if (pids[i] > 0) {
        fprintf(stderr, "picos-worker: spawn %d: worker %d is running\n", i, i);
        return;
    }
    fflush(NULL);
    pid = fork();
    if (pid == 0)
        pc__worker_main(i);
    if (pid < 0) {
        /* reported as a worker that exited with status 1 at once */
        fprintf(stderr, "picos-worker: fork: %s\n", strerror(errno));
        say("exit %d 0 %d 0", i, 1 << 8);
        return;
    }
    pids[i] = pid;
    say("spawned %d %d", i, (int)pid);
}

static void
command(char *line)
{
    char *arg = strchr(line, ' ');
    int i;

    if (arg)
        *arg++ = '\0';
    if (!strcmp(line, "quit"))
        quit_all();
    if (strcmp(line, "spawn") && strcmp(line, "kill")) {
        fprintf(stderr, "picos-worker: unknown command '%.40s'\n", line);
        return;
    }
    if ((i = index_of(arg)) < 0) {
        fprintf(stderr, "picos-worker: %s: bad worker '%.20s'\n", line,
                arg ? arg : "");
        return;
    }
    if (!strcmp(line, "spawn"))
        spawn(i);
    else if (pids[i] > 0)
        kill(pids[i], SIGKILL);
}

static void
reap(int sfd)
{
    struct signalfd_siginfo si;
    struct rusage ru;
    int st;
    pid_t pid;

    while (read(sfd, &si, sizeof si) == sizeof si)
        ;
    while ((pid = wait4(-1, &st, WNOHANG, &ru)) > 0)
        for (int i = 0; i < n_workers; i++)
            if (pids[i] == pid) {
                pids[i] = 0;
                say("exit %d %d %d %ld", i, (int)pid, st, ru.ru_maxrss);
            }
}

static void
loop(int sfd)
{
    char buf[512];
    size_t have = 0;
    bool skipping = false; /* in a line too long to be a command */

    for (;;) {
        struct pollfd p[2] = {{0, POLLIN, 0}, {sfd, POLLIN, 0}};
        ssize_t r;
        char *nl;

        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "picos-worker: poll: %s\n", strerror(errno));
            quit_all();
        }
        if (p[1].revents)
            reap(sfd);
        if (!p[0].revents)
            continue;
        r = read(0, buf + have, sizeof buf - 1 - have);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0)
            quit_all(); /* the node is gone */
        have += (size_t)r;
        buf[have] = '\0';
        while ((nl = memchr(buf, '\n', have))) {
            size_t len = (size_t)(nl - buf) + 1;
            *nl = '\0';
            if (!skipping)
                command(buf);
            skipping = false;
            memmove(buf, buf + len, have - len);
            have -= len;
        }
        if (have == sizeof buf - 1) {
            fprintf(stderr, "picos-worker: command line too long\n");
            skipping = true;
            have = 0;
        }
    }
}

int
main(int argc, char **argv)
{
    static pc__worker_opts o;
    char libpath[4200], err[PC__WORKER_ERR_MAX] = "", name[NAME_MAX_LEN + 1];
    const pc_computation *c;
    pid_t parent = getppid();
    sigset_t chld;
    int sfd;

    close_range(3, ~0u, 0);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    sfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0)
        failed("signalfd: %s", strerror(errno));
    parse(argc, argv, &o);
    n_workers = o.workers;
    pids = calloc((size_t)o.workers, sizeof *pids);
    if (!pids)
        failed("out of memory");
    pc__worker_o = &o;
    if (o.sb.confine) {
        copy_library(&o, libpath, sizeof libpath);
        snprintf(pc__worker_data_dir, sizeof pc__worker_data_dir, "/data");
    } else {
        snprintf(libpath, sizeof libpath, "%s%s",
                 strchr(o.library, '/') ? "" : "./", o.library);
        if ((size_t)snprintf(pc__worker_data_dir, sizeof pc__worker_data_dir,
                             "%s/data", o.root) >= sizeof pc__worker_data_dir)
            failed("--root too long");
    }
    if (pc__sandbox_enter(&o.sb, err, sizeof err))
        failed("sandbox: %s", err);
    /* after the uid change (which clears it): die with the node */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        finish(1);
    c = pc__worker_comp = load(libpath, o.library);
    if (c->node_setup) {
        int rc = c->node_setup(pc__worker_data_dir, err, sizeof err);
        err[sizeof err - 1] = '\0';
        if (rc && err[0])
            failed("%s", err);
        if (rc)
            failed("node_setup returned %d", rc);
    }
    say("ready %s %u", word(c->name, name, sizeof name), c->version);
    loop(sfd);
}
