/* tests/proctest.h — child processes for the tests that run real programs
 * (picos-registry, the CLI, the examples, net_peer and its kin).
 *
 * One implementation of what each of those tests needs: start a program
 * (kid_run into the caller's storage, kid_start into a slot of a static
 * pool), read a line of its stdout with a deadline, wait for its exit with
 * a deadline, kill its process group and reap it, slurp what is left in a
 * pipe, read its stdout and stderr to their end, and its exit code.
 *
 * Nothing is left behind: every child runs in a process group of its own
 * with PR_SET_PDEATHSIG (and exits at once when the test died before the
 * prctl), and is remembered in the static table kid_all (static, so a
 * CU_ASSERT_FATAL's longjmp leaves nothing dangling). kids_kill() kills
 * and reaps every child in it; it runs from atexit (registered after
 * pt_main's, so before testutil.h removes pt_tmpdir()) and from the
 * handler of SIGALRM, SIGTERM, SIGINT and SIGHUP, which kid_run installs
 * at every start (pt_arm() sets SIGALRM again for each test). The handler
 * uses only async-signal-safe calls (kill, waitpid, close, write) and then
 * hands SIGALRM to testutil.h's watchdog, which names the hung test.
 *
 * Children are started while this program's node runs: everything is
 * prepared before fork (pipes and the stderr file O_CLOEXEC, argv, the
 * environment), and between fork and exec the child calls only
 * async-signal-safe functions. Files go in pt_tmpdir() (testutil.h).
 */
#ifndef PICOS_TESTS_PROCTEST_H
#define PICOS_TESTS_PROCTEST_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

extern char **environ;

typedef struct kid {
    pid_t pid;         /* 0 once reaped */
    int out, err;      /* read ends of its stdout and stderr pipes, or -1 */
    int status;        /* waitpid() status once reaped */
    char errpath[160]; /* the file its stderr went to, or "" */
    char ep[256];      /* the endpoint it said it bound (callers fill it) */
    uint64_t node;     /* its node id, when it said one */
} kid;

/* How kid_run starts a program. */
typedef struct kid_opts {
    const char *const *env; /* extra "NAME=value" strings, NULL-terminated */
    bool clean_env;         /* drop PICOS_SECRET*, PICOS_LOG, PICOS_REGISTRY */
    const char *errpath;    /* stderr into this file, else into a pipe */
    bool err_append;        /* append to errpath instead of truncating */
    /* A pseudo-terminal of this size instead of pipes (forkpty): the
     * child's stdin, stdout and (without errpath) stderr, its controlling
     * terminal; k->out is the master side, read and written. */
    const struct winsize *pty;
} kid_opts;

#define KID_MAX 16
static kid *kid_all[KID_MAX]; /* every child not yet freed */
static kid kid_pool[8];       /* kid_start's slots */

/* Kill k's group, reap it, close its pipes, forget it. Async-signal-safe. */
static inline void
kid_free(kid *k)
{
    if (k->pid > 0) {
        kill(-k->pid, SIGKILL);
        kill(k->pid, SIGKILL);
        waitpid(k->pid, &k->status, 0);
        k->pid = 0;
    }
    if (k->out >= 0)
        close(k->out);
    if (k->err >= 0)
        close(k->err);
    k->out = k->err = -1;
    for (int i = 0; i < KID_MAX; i++)
        if (kid_all[i] == k)
            kid_all[i] = NULL;
}

/* Every child still alive. Async-signal-safe. */
static inline void
kids_kill(void)
{
    for (int i = 0; i < KID_MAX; i++)
        if (kid_all[i])
            kid_free(kid_all[i]);
}

static inline void
kid_on_signal(int sig)
{
    static const char msg[] = ": killed by a signal, children killed\n";
    ssize_t r = write(2, "\n*** ", 5);

    r = write(2, pt_prog, strlen(pt_prog));
    r = write(2, msg, sizeof msg - 1);
    (void)r;
    kids_kill();
    if (sig == SIGALRM)
        pt_watchdog(sig); /* names the test; _exit(3) */
    _exit(128 + sig);
}

/* atexit once; the signal handlers again (after pt_arm()'s own). */
static inline void
kid_guard(void)
{
    static bool once;

    if (!once) {
        atexit(kids_kill);
        once = true;
    }
    signal(SIGALRM, kid_on_signal);
    signal(SIGTERM, kid_on_signal);
    signal(SIGINT, kid_on_signal);
    signal(SIGHUP, kid_on_signal);
}

/* The environment for a child: ours (without the variables picos reads
 * when `clean`), plus `extra`. Under TSan ours carries the suppressions
 * (pt_tsan_children()). */
static inline char **
kid_env(bool clean, const char *const *extra)
{
    static char *env[512];
    int n = 0;

    if (!clean && !(extra && *extra))
        return environ;
    for (char **e = environ; *e && n < 500; e++)
        if (!clean ||
            (strncmp(*e, "PICOS_SECRET", 12) && strncmp(*e, "PICOS_LOG=", 10) &&
             strncmp(*e, "PICOS_REGISTRY=", 15)))
            env[n++] = *e;
    while (extra && *extra && n < 510)
        env[n++] = (char *)*extra++;
    env[n] = NULL;
    return env;
}

/* Start `path` with args (NULL-terminated, after argv[0]; not pointing
 * into k, which is reset first) as k, remembered until kid_free(k). False
 * when it could not be started. o may be NULL (environment inherited,
 * stderr into a pipe). */
static inline bool
kid_run(kid *k, const char *path, const char *const *args, const kid_opts *o)
{
    static const kid_opts none;
    const char *argv[40];
    char errpath[sizeof k->errpath] = "";
    int po[2], pe[2], n = 0, slot = -1;
    char **env;
    pid_t parent = getpid();

    o = o ? o : &none;
    env = kid_env(o->clean_env, o->env);
    if (o->errpath)
        snprintf(errpath, sizeof errpath, "%s", o->errpath); /* may be k's */
    memset(k, 0, sizeof *k);
    k->out = k->err = -1;
    memcpy(k->errpath, errpath, sizeof errpath);
    for (int i = 0; i < KID_MAX && slot < 0; i++)
        if (!kid_all[i])
            slot = i;
    if (slot < 0)
        return false;
    argv[n++] = path;
    while (*args && n < 39)
        argv[n++] = *args++;
    argv[n] = NULL;
    kid_guard();
    if (o->pty) {
        int fd = -1, ef = *errpath
                              ? open(errpath,
                                     O_WRONLY | O_CREAT | O_CLOEXEC |
                                         (o->err_append ? O_APPEND : O_TRUNC),
                                     0600)
                              : -1;
        if (*errpath && ef < 0)
            return false;
        fflush(NULL);
        /* the child is a session leader: its own process group */
        k->pid = forkpty(&fd, NULL, NULL, o->pty);
        if (k->pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent)
                _exit(127);
            if (ef >= 0)
                dup2(ef, 2);
            execve(path, (char *const *)argv, env);
            _exit(127);
        }
        if (ef >= 0)
            close(ef);
        if (k->pid < 0) {
            k->pid = 0;
            return false;
        }
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        k->out = fd;
        kid_all[slot] = k;
        return true;
    }
    if (pipe2(po, O_CLOEXEC))
        return false;
    if (*errpath) {
        /* a daemon's log nobody reads must not fill a pipe and block it */
        pe[0] = -1;
        pe[1] = open(errpath,
                     O_WRONLY | O_CREAT | O_CLOEXEC |
                         (o->err_append ? O_APPEND : O_TRUNC),
                     0600);
    } else if (pipe2(pe, O_CLOEXEC)) {
        pe[1] = -1;
    }
    if (pe[1] < 0) {
        close(po[0]), close(po[1]);
        return false;
    }
    fflush(NULL);
    k->pid = fork();
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
    k->out = po[0], k->err = pe[0];
    if (k->pid < 0) {
        k->pid = 0;
        kid_free(k);
        return false;
    }
    setpgid(k->pid, k->pid); /* also here: no race with kill(-pid) */
    kid_all[slot] = k;
    return true;
}

/* Start `path` in a free slot of the pool, with a cleaned environment
 * plus extra_env, its stderr into errpath when not NULL, else a pipe.
 * NULL on failure. */
static inline kid *
kid_start(const char *path, const char *const *args,
          const char *const *extra_env, const char *errpath)
{
    kid_opts o = {.env = extra_env, .clean_env = true, .errpath = errpath};

    for (size_t i = 0; i < sizeof kid_pool / sizeof *kid_pool; i++) {
        bool used = false;
        for (int j = 0; j < KID_MAX; j++)
            used |= kid_all[j] == &kid_pool[i];
        if (!used)
            return kid_run(&kid_pool[i], path, args, &o) ? &kid_pool[i] : NULL;
    }
    return NULL;
}

/* Its exit status, 1000 + the signal when a signal ended it. */
static inline int
exit_code(const kid *k)
{
    return WIFEXITED(k->status) ? WEXITSTATUS(k->status)
                                : 1000 + WTERMSIG(k->status);
}

/* Wait up to `timeout` s for k to exit; true when it did (status in
 * k->status). Its group is killed before it is reaped, while its pid (the
 * group's id) can't be reused. The poll is only a bounded pause between
 * checks: the exit itself is what waitid() reports. */
static inline bool
kid_wait(kid *k, double timeout)
{
    double end = pc_now() + timeout;
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
        if (pc_now() > end)
            return false;
        poll(NULL, 0, 10);
    }
    return true;
}

/* One line from fd within `timeout` s (without the newline). */
static inline bool
read_line(int fd, char *buf, size_t size, double timeout)
{
    double end = pc_now() + timeout;
    size_t n = 0;

    while (n + 1 < size) {
        struct pollfd p = {fd, POLLIN, 0};
        double left = end - pc_now();
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
static inline void
slurp(int fd, char *buf, size_t size)
{
    size_t n = 0;
    ssize_t r;

    while (fd >= 0 && n + 1 < size && (r = read(fd, buf + n, size - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = '\0';
}

/* Read k's stdout and stderr (k->out, k->err) until both are at EOF or the
 * deadline: true at EOF. What does not fit the buffers is dropped. */
static inline bool
kid_drain(kid *k, char *out, size_t osize, char *err, size_t esize,
          double timeout)
{
    double end = pc_now() + timeout;
    size_t on = 0, en = 0;

    while (k->out >= 0 || k->err >= 0) {
        struct pollfd p[2] = {{k->out, POLLIN, 0}, {k->err, POLLIN, 0}};
        double left = end - pc_now();
        char buf[4096];

        if (left <= 0 || poll(p, 2, (int)(left * 1000) + 1) < 0)
            return false;
        for (int i = 0; i < 2; i++) {
            int *fd = i ? &k->err : &k->out;
            char *dst = i ? err : out;
            size_t *n = i ? &en : &on, size = i ? esize : osize;
            ssize_t r;

            if (*fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            r = read(*fd, buf, sizeof buf);
            if (r <= 0) {
                close(*fd);
                *fd = -1;
                continue;
            }
            for (ssize_t j = 0; j < r && *n + 1 < size; j++)
                dst[(*n)++] = buf[j];
        }
    }
    out[on] = '\0';
    err[en] = '\0';
    return true;
}

/* What k wrote to its stderr file so far (at most size - 1 bytes, "" when
 * there is none); returns buf. */
static inline char *
kid_errtext(const kid *k, char *buf, size_t size)
{
    FILE *f = *k->errpath ? fopen(k->errpath, "r") : NULL;

    buf[0] = '\0';
    if (f) {
        buf[fread(buf, 1, size - 1, f)] = '\0';
        fclose(f);
    }
    return buf;
}

static inline int
count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* err is exactly one line starting with `prefix` ("picos: ") and holding
 * `what`; when not, says so on stderr with the test's line. */
static inline void
check_one_line(const char *err, const char *prefix, const char *what, int line)
{
    bool ok = count_lines(err) == 1 && !strncmp(err, prefix, strlen(prefix)) &&
              strstr(err, what);
    if (!ok)
        fprintf(stderr, "\nline %d: stderr is not one line with '%s': '%s'\n",
                line, what, err);
    CU_ASSERT_TRUE(ok);
}

/* Write `text` to `path` (mode 0600: good for a secret file). */
static inline void
write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
}

/* write_file() of pt_tmpdir()/name, that path into path. */
static inline void
write_tmp_file(char *path, size_t size, const char *name, const char *text)
{
    write_file(pt_tmppath(path, size, name), text);
}

/* "tcp://127.0.0.1:PORT" into ep for a port bound but never listening:
 * connections are refused, and the port is ours until the returned fd is
 * closed. */
static inline int
dead_endpoint(char *ep, size_t size)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    CU_ASSERT_FATAL(getsockname(fd, (struct sockaddr *)&a, &alen) == 0);
    snprintf(ep, size, "tcp://127.0.0.1:%d", ntohs(a.sin_port));
    return fd;
}

#endif
