/* transport/proc.c — subprocesses and pipelines with async pipes.
 *
 * Design. Processes start with posix_spawnp(): glibc runs it as
 * clone(CLONE_VM|CLONE_VFORK) + exec, so nothing but async-signal-safe code
 * runs in the child even though this process has worker threads, and an
 * exec failure (ENOENT) comes back as the call's result. Every pipe is made
 * with O_CLOEXEC, so a child started concurrently by another task never
 * inherits the ends of someone else's pipes (which would keep them open and
 * hide an end of file); the spawn's file actions dup2() the child's ends to
 * 0/1/2, which clears the flag on those. Since pc_fd_open() ignores SIGPIPE
 * in this process, the child is given back the default disposition (and an
 * empty signal mask, as worker threads may block signals).
 *
 * Exit statuses: libev's child watchers need the default loop, which picos
 * workers don't use, and a SIGCHLD handler would be process-wide. Instead
 * each child gets a pidfd (pidfd_open, Linux >= 5.3), which becomes readable
 * when the child exits; the waiting task sleeps in pc_wait_fd() on it and
 * then reaps with waitpid(WNOHANG). Without pidfd_open (ENOSYS, or a seccomp
 * filter) the task polls waitpid(WNOHANG) with sleeps growing from 1 ms to
 * 50 ms. Only the pids of this pc_proc are ever waited for. The pidfd stays
 * open until pc_proc_free(), and signals go through pidfd_send_signal(), so
 * a kill racing with the reap of another thread can never hit a recycled
 * pid (it gets ESRCH, taken as success).
 *
 * communicate() must write stdin while reading stdout and stderr, or a
 * child that fills one pipe while we block on another deadlocks us both.
 * pc_wait_fd() waits on one fd per task, so the pipes go into an epoll fd
 * and the caller alone waits on that: it moves what each pipe takes or
 * holds (non-blocking), then waits until one is ready again. No helper
 * task and no other thread ever sees the call's state, and that state
 * (the epoll fd, the output buffers) lives in the pc_proc, not on the
 * caller's stack: a task terminated inside the call leaves it to the next
 * call or to pc_proc_free().
 */
#define _GNU_SOURCE /* pipe2 */
#include "picos/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "picos/node.h"
#include "picos/task.h"

extern char **environ;

void pc__file_ignore_sigpipe(void);

struct child {
    pid_t pid;
    int pidfd;          /* -1: none (fallback to polling) */
    atomic_bool reaped; /* read by pc_proc_kill() from any thread */
    int status;
};

struct comm;
static void comm_free(struct comm **cp);

struct pc_proc {
    pc_fd *in, *out, *err;
    struct comm *comm; /* pc_proc_communicate()'s state */
    size_t n;
    struct child c[];
};

/* ---- spawning ---------------------------------------------------------------- */

/* PICOS_PROC_NO_PIDFD set (to anything) forces the polling fallback; the
 * tests use it to cover that path. */
static int
open_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
    if (getenv("PICOS_PROC_NO_PIDFD"))
        return -1;
    long r = syscall(SYS_pidfd_open, pid, 0);
    return r < 0 ? -1 : (int)r;
#else
    (void)pid;
    return -1;
#endif
}

static void
close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* The fds of one child: src[k] >= 0 is dup2'd to k; -2 means /dev/null;
 * -1 inherit; for stderr -3 means 2>&1. */
static int
spawn_one(pid_t *pid, char *const argv[], char *const envp[], const int src[3])
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, def;
    int e;

    e = posix_spawn_file_actions_init(&fa);
    if (e)
        return e;
    e = posix_spawnattr_init(&at);
    if (e) {
        posix_spawn_file_actions_destroy(&fa);
        return e;
    }
    for (int k = 0; k < 3 && !e; k++) {
        if (src[k] >= 0)
            e = posix_spawn_file_actions_adddup2(&fa, src[k], k);
        else if (src[k] == -2)
            e = posix_spawn_file_actions_addopen(&fa, k, "/dev/null", O_RDWR,
                                                 0);
        else if (src[k] == -3)
            e = posix_spawn_file_actions_adddup2(&fa, 1, 2);
    }
    sigemptyset(&none);
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    if (!e)
        e = posix_spawnattr_setsigmask(&at, &none);
    if (!e)
        e = posix_spawnattr_setsigdefault(&at, &def);
    if (!e)
        e = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK |
                                              POSIX_SPAWN_SETSIGDEF);
    if (!e)
        e = posix_spawnp(pid, argv[0], &fa, &at, argv, envp ? envp : environ);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    return e;
}

static pc_err
errno_rc(int e)
{
    errno = e;
    if (e == ENOENT)
        return PC_ENOENT;
    if (e == ENOMEM)
        return PC_ENOMEM;
    return PC_ESYS;
}

static void
reap_blocking(struct child *c)
{
    int st;

    if (c->reaped)
        return;
    while (waitpid(c->pid, &st, 0) < 0 && errno == EINTR)
        ;
    c->status = st;
    atomic_store(&c->reaped, true);
}

pc_err
pc_proc_pipeline(pc_proc **out, char *const *const argvs[], size_t n,
                 const pc_proc_opts *opts)
{
    unsigned fl = opts ? opts->flags : 0;
    char *const *envp = opts ? opts->envp : NULL;
    int inp[2] = {-1, -1}, outp[2] = {-1, -1}, errp[2] = {-1, -1};
    int prev = -1; /* read end of the pipe into the next command */
    int dflt = (fl & PC_PROC_DEVNULL) ? -2 : -1;
    pc_proc *p;
    pc_err rc = PC_OK;
    size_t started = 0;
    int e;

    if (!out || !argvs || n == 0)
        return PC_EINVAL;
    *out = NULL;
    for (size_t i = 0; i < n; i++)
        if (!argvs[i] || !argvs[i][0])
            return PC_EINVAL;
    pc__file_ignore_sigpipe();
    p = calloc(1, sizeof *p + n * sizeof p->c[0]);
    if (!p)
        return PC_ENOMEM;
    p->n = n;
    if (((fl & PC_PROC_STDIN) && pipe2(inp, O_CLOEXEC) < 0) ||
        ((fl & PC_PROC_STDOUT) && pipe2(outp, O_CLOEXEC) < 0) ||
        ((fl & PC_PROC_STDERR) && pipe2(errp, O_CLOEXEC) < 0)) {
        rc = errno_rc(errno);
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        int src[3], next[2] = {-1, -1};
        bool last = i + 1 == n;

        src[0] = i == 0 ? ((fl & PC_PROC_STDIN) ? inp[0] : dflt) : prev;
        if (!last) {
            if (pipe2(next, O_CLOEXEC) < 0) {
                rc = errno_rc(errno);
                goto fail;
            }
            src[1] = next[1];
        } else {
            src[1] = (fl & PC_PROC_STDOUT) ? outp[1] : dflt;
        }
        if (fl & PC_PROC_STDERR_TO_STDOUT)
            src[2] = -3;
        else if (last && (fl & PC_PROC_STDERR))
            src[2] = errp[1];
        else
            src[2] = dflt;
        e = spawn_one(&p->c[i].pid, argvs[i], envp, src);
        close_fd(&prev);
        close_fd(&next[1]);
        prev = next[0];
        if (e) {
            close_fd(&prev);
            rc = errno_rc(e);
            goto fail;
        }
        p->c[i].pidfd = open_pidfd(p->c[i].pid);
        started++;
    }
    close_fd(&inp[0]);
    close_fd(&outp[1]);
    close_fd(&errp[1]);
    if (((fl & PC_PROC_STDIN) && (rc = pc_fd_open(&p->in, inp[1])) != 0) ||
        ((fl & PC_PROC_STDOUT) && (rc = pc_fd_open(&p->out, outp[0])) != 0) ||
        ((fl & PC_PROC_STDERR) && (rc = pc_fd_open(&p->err, errp[0])) != 0))
        goto fail;
    inp[1] = outp[0] = errp[0] = -1;
    *out = p;
    return PC_OK;

fail:
    e = errno;
    for (size_t i = 0; i < started; i++) {
        kill(p->c[i].pid, SIGKILL);
        reap_blocking(&p->c[i]);
        close_fd(&p->c[i].pidfd);
    }
    for (int k = 0; k < 2; k++) {
        if (!p->in)
            close_fd(&inp[k]);
        if (!p->out)
            close_fd(&outp[k]);
        if (!p->err)
            close_fd(&errp[k]);
    }
    pc_fd_close(&p->in);
    pc_fd_close(&p->out);
    pc_fd_close(&p->err);
    free(p);
    errno = e;
    return rc;
}

pc_err
pc_proc_spawn(pc_proc **out, char *const argv[], const pc_proc_opts *opts)
{
    char *const *argvs[1] = {argv};

    return pc_proc_pipeline(out, argvs, 1, opts);
}

pid_t
pc_proc_pid(const pc_proc *p, size_t i)
{
    return p && i < p->n ? p->c[i].pid : -1;
}

pc_fd *
pc_proc_stdin(pc_proc *p)
{
    return p ? p->in : NULL;
}

pc_fd *
pc_proc_stdout(pc_proc *p)
{
    return p ? p->out : NULL;
}

pc_fd *
pc_proc_stderr(pc_proc *p)
{
    return p ? p->err : NULL;
}

/* ---- streams ------------------------------------------------------------------ */

pc_err
pc_proc_write(pc_proc *p, const void *buf, size_t len, double timeout,
              size_t *n)
{
    if (n)
        *n = 0;
    if (!p || !p->in)
        return PC_EINVAL;
    return pc_fd_write_all(p->in, buf, len, timeout, n);
}

pc_err
pc_proc_close_stdin(pc_proc *p)
{
    if (!p)
        return PC_EINVAL;
    return pc_fd_close(&p->in);
}

pc_err
pc_proc_read(pc_proc *p, void *buf, size_t len, double timeout, size_t *n)
{
    if (!p || !p->out)
        return PC_EINVAL;
    return pc_fd_read(p->out, buf, len, timeout, n);
}

pc_err
pc_proc_readline(pc_proc *p, char **line, size_t *len, size_t max,
                 double timeout)
{
    if (!p || !p->out)
        return PC_EINVAL;
    return pc_fd_readline(p->out, line, len, max, timeout);
}

pc_err
pc_proc_read_stderr(pc_proc *p, void *buf, size_t len, double timeout,
                    size_t *n)
{
    if (!p || !p->err)
        return PC_EINVAL;
    return pc_fd_read(p->err, buf, len, timeout, n);
}

pc_err
pc_proc_readline_stderr(pc_proc *p, char **line, size_t *len, size_t max,
                        double timeout)
{
    if (!p || !p->err)
        return PC_EINVAL;
    return pc_fd_readline(p->err, line, len, max, timeout);
}

/* ---- waiting ------------------------------------------------------------------ */

static pc_err
wait_child(struct child *c, double deadline)
{
    double nap = 0.001;

    while (!c->reaped) {
        int st = 0;
        pid_t r = waitpid(c->pid, &st, WNOHANG);
        if (r == c->pid) {
            c->status = st;
            atomic_store(&c->reaped, true);
            break;
        }
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return PC_ESYS;
        }
        double l = pc_deadline_left(deadline);
        if (l == 0)
            return PC_ETIMEDOUT;
        if (c->pidfd >= 0) {
            pc_err rc = pc_wait_fd(c->pidfd, PC_READ, l, NULL);
            if (rc != PC_OK && rc != PC_ETIMEDOUT)
                return rc;
        } else {
            pc_err rc = pc_sleep(l >= 0 && l < nap ? l : nap);
            if (rc != PC_OK && rc != PC_EINTR)
                return rc;
            if (nap < 0.05)
                nap *= 2;
        }
    }
    return PC_OK;
}

pc_err
pc_proc_wait(pc_proc *p, double timeout, int *status)
{
    double deadline = pc_deadline(timeout);

    if (!p)
        return PC_EINVAL;
    for (size_t i = 0; i < p->n; i++) {
        if (!pc_in_task()) {
            reap_blocking(&p->c[i]);
            continue;
        }
        pc_err rc = wait_child(&p->c[i], deadline);
        if (rc != PC_OK)
            return rc;
    }
    if (status)
        *status = p->c[p->n - 1].status;
    return PC_OK;
}

pc_err
pc_proc_kill(pc_proc *p, int sig)
{
    pc_err rc = PC_OK;

    if (!p)
        return PC_EINVAL;
    for (size_t i = 0; i < p->n; i++) {
        struct child *c = &p->c[i];
        int r;
        if (atomic_load(&c->reaped))
            continue;
#ifdef SYS_pidfd_send_signal
        if (c->pidfd >= 0)
            r = (int)syscall(SYS_pidfd_send_signal, c->pidfd, sig, NULL, 0);
        else
#endif
            r = kill(c->pid, sig);
        if (r < 0 && errno != ESRCH)
            rc = PC_ESYS;
    }
    return rc;
}

void
pc_proc_free(pc_proc **pp)
{
    pc_proc *p;

    if (!pp || !*pp)
        return;
    p = *pp;
    *pp = NULL;
    pc_fd_close(&p->in);
    pc_fd_close(&p->out);
    pc_fd_close(&p->err);
    comm_free(&p->comm);
    for (size_t i = 0; i < p->n; i++)
        close_fd(&p->c[i].pidfd);
    free(p);
}

/* ---- communicate ------------------------------------------------------------ */

struct sink {
    pc_fd *fd; /* NULL: not read (not piped, or at its end) */
    size_t max;
    char *buf;
    size_t len, cap;
    bool toobig;
};

/* A call's state, in p (not on the caller's stack): a task terminated
 * inside the call leaves it to the next call or to pc_proc_free(). */
struct comm {
    int ep; /* epoll fd over the pipes still in use */
    struct sink out, err;
};

static void
comm_free(struct comm **cp)
{
    struct comm *c = *cp;

    if (!c)
        return;
    *cp = NULL;
    if (c->ep >= 0)
        close(c->ep);
    free(c->out.buf);
    free(c->err.buf);
    free(c);
}

/* Take what the pipe of s holds now (at most max bytes kept, the rest
 * dropped). PC_OK with s->fd NULL at its end; PC_ETIMEDOUT when it is
 * empty for now. */
static pc_err
sink_take(struct comm *c, struct sink *s)
{
    char scratch[4096];

    for (;;) {
        char *dst = scratch;
        size_t room = sizeof scratch, k = 0;
        pc_err rc;

        if (s->len < s->max) {
            if (s->cap - s->len < 2) {
                size_t cap = s->cap ? s->cap * 2 : 4096;
                if (cap > s->max + 1)
                    cap = s->max + 1;
                char *nb = realloc(s->buf, cap);
                if (!nb)
                    return PC_ENOMEM;
                s->buf = nb;
                s->cap = cap;
            }
            dst = s->buf + s->len;
            room = s->cap - s->len - 1;
            if (room > s->max - s->len)
                room = s->max - s->len;
        }
        rc = pc_fd_read(s->fd, dst, room, 0, &k);
        if (rc != PC_OK)
            return rc;
        if (k == 0) {
            epoll_ctl(c->ep, EPOLL_CTL_DEL, pc_fd_fd(s->fd), NULL);
            s->fd = NULL;
            return PC_OK;
        }
        if (dst == scratch)
            s->toobig = true;
        else
            s->len += k;
    }
}

static pc_err
watch(struct comm *c, pc_fd *fd, uint32_t events)
{
    struct epoll_event ev;

    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.fd = pc_fd_fd(fd);
    return epoll_ctl(c->ep, EPOLL_CTL_ADD, ev.data.fd, &ev) < 0 ? PC_ESYS
                                                                : PC_OK;
}

/* Hand a sink's buffer to the caller (NUL-terminated; "" for a piped
 * stream that said nothing). */
static void
give(struct sink *s, bool piped, char **buf, size_t *len)
{
    if (piped && !s->buf)
        s->buf = malloc(1);
    if (s->buf)
        s->buf[s->len] = '\0';
    if (buf)
        *buf = s->buf;
    else
        free(s->buf);
    if (len)
        *len = s->buf ? s->len : 0;
    s->buf = NULL;
}

pc_err
pc_proc_communicate(pc_proc *p, const void *input, size_t len, char **out,
                    size_t *outlen, char **err, size_t *errlen, size_t max,
                    double timeout)
{
    double deadline = pc_deadline(timeout);
    const char *in = input;
    size_t sent = 0;
    struct comm *c;
    pc_err rc = PC_OK;

    if (out)
        *out = NULL;
    if (err)
        *err = NULL;
    if (outlen)
        *outlen = 0;
    if (errlen)
        *errlen = 0;
    if (!p || (!input && len))
        return PC_EINVAL;
    if (!pc_in_task())
        return PC_EPERM;
    comm_free(&p->comm); /* left by a call whose task was terminated */
    if (!(c = calloc(1, sizeof *c)))
        return PC_ENOMEM;
    p->comm = c;
    c->out.fd = p->out;
    c->out.max = max;
    c->err.fd = p->err;
    c->err.max = max;
    c->ep = epoll_create1(EPOLL_CLOEXEC);
    if (c->ep < 0)
        rc = errno_rc(errno);
    if (p->in && len == 0)
        pc_proc_close_stdin(p);
    if (rc == PC_OK && p->in)
        rc = watch(c, p->in, EPOLLOUT);
    if (rc == PC_OK && c->out.fd)
        rc = watch(c, c->out.fd, EPOLLIN);
    if (rc == PC_OK && c->err.fd)
        rc = watch(c, c->err.fd, EPOLLIN);

    /* Move what each pipe takes or holds now; then wait on the epoll fd
     * until one of them is ready again. */
    while (rc == PC_OK && (p->in || c->out.fd || c->err.fd)) {
        if (p->in) {
            size_t k = 0;
            rc = pc_fd_write(p->in, in + sent, len - sent, 0, &k);
            sent += k;
            if (rc == PC_ECLOSED || (rc == PC_OK && sent == len)) {
                /* all in, or the child stopped reading: the rest is
                 * dropped */
                epoll_ctl(c->ep, EPOLL_CTL_DEL, pc_fd_fd(p->in), NULL);
                pc_proc_close_stdin(p);
                rc = PC_OK;
            }
            if (rc == PC_ETIMEDOUT)
                rc = PC_OK;
        }
        if (rc == PC_OK && c->out.fd &&
            (rc = sink_take(c, &c->out)) == PC_ETIMEDOUT)
            rc = PC_OK;
        if (rc == PC_OK && c->err.fd &&
            (rc = sink_take(c, &c->err)) == PC_ETIMEDOUT)
            rc = PC_OK;
        if (rc != PC_OK || !(p->in || c->out.fd || c->err.fd))
            break;
        double l = pc_deadline_left(deadline);
        rc = l == 0 ? PC_ETIMEDOUT : pc_wait_fd(c->ep, PC_READ, l, NULL);
    }
    pc_proc_close_stdin(p);
    if (rc == PC_OK)
        rc = pc_proc_wait(p, pc_deadline_left(deadline), NULL);
    if (rc == PC_OK && (c->out.toobig || c->err.toobig))
        rc = PC_ETOOBIG;
    give(&c->out, p->out != NULL, out, outlen);
    give(&c->err, p->err != NULL, err, errlen);
    comm_free(&p->comm);
    return rc;
}
