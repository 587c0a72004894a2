/* tests/netutil.h — child node processes for the multi-process tests.
 *
 * nt_start() forks and execs NET_PEER (tests/net_peer.c) in a process group
 * of its own, with PR_SET_PDEATHSIG so it dies with the test, its stderr in
 * a file the test can read, and waits (poll, bounded) for its "READY
 * <endpoint> <node>" line. Every child started is remembered; nt_stop()
 * kills its whole group and reaps it, and an atexit handler does that for
 * every child still alive on any way out of the test program, so no
 * process is left behind. Ports: children bind tcp://127.0.0.1:0 and
 * report the port the kernel gave. The stderr files are in pt_tmpdir()
 * (testutil.h), removed with it at exit.
 */
#ifndef PICOS_TESTS_NETUTIL_H
#define PICOS_TESTS_NETUTIL_H

#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

typedef struct nt_child {
    pid_t pid;
    int out;           /* its stdout */
    char ep[256];      /* the endpoint it bound */
    uint64_t node;     /* its node id */
    char errpath[160]; /* its stderr */
} nt_child;

#define NT_MAX 16
static nt_child *nt_all[NT_MAX];

static void
nt_stop(nt_child *c)
{
    if (c->pid > 0) {
        kill(-c->pid, SIGKILL);
        kill(c->pid, SIGKILL);
        waitpid(c->pid, NULL, 0);
        c->pid = 0;
    }
    if (c->out >= 0)
        close(c->out);
    c->out = -1;
    for (int i = 0; i < NT_MAX; i++)
        if (nt_all[i] == c)
            nt_all[i] = NULL;
}

static void
nt_stop_all(void)
{
    for (int i = 0; i < NT_MAX; i++)
        if (nt_all[i])
            nt_stop(nt_all[i]);
}

/* Read a line from fd within `timeout` s. */
static bool
nt_readline(int fd, char *buf, size_t size, double timeout)
{
    size_t n = 0;
    while (n + 1 < size) {
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, (int)(timeout * 1000));
        char ch;
        if (r <= 0 || read(fd, &ch, 1) != 1)
            return false;
        if (ch == '\n')
            break;
        buf[n++] = ch;
    }
    buf[n] = '\0';
    return true;
}

/* Start net_peer with args (NULL-terminated, after argv[0]); false when it
 * did not say READY within 20 s (its stderr is printed then). */
static bool
nt_start(nt_child *c, const char *const *args)
{
    static bool registered;
    static int seq;
    int p[2];
    const char *argv[32];
    char line[512], ep[256];
    int n = 0;

    memset(c, 0, sizeof *c);
    c->out = -1;
    if (!registered) {
        atexit(nt_stop_all);
        registered = true;
    }
    {
        char name[32];
        snprintf(name, sizeof name, "nt-%d.err", seq++);
        pt_tmppath(c->errpath, sizeof c->errpath, name);
    }
    argv[n++] = NET_PEER;
    while (*args && n < 31)
        argv[n++] = *args++;
    argv[n] = NULL;
    if (pipe(p))
        return false;
    fflush(NULL);
    if ((c->pid = fork()) < 0)
        return false;
    if (c->pid == 0) {
        FILE *e;
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(p[1], 1);
        close(p[0]), close(p[1]);
        if ((e = fopen(c->errpath, "w")))
            dup2(fileno(e), 2);
        execv(NET_PEER, (char *const *)argv);
        _exit(127);
    }
    setpgid(c->pid, c->pid);
    close(p[1]);
    c->out = p[0];
    for (int i = 0; i < NT_MAX; i++)
        if (!nt_all[i]) {
            nt_all[i] = c;
            break;
        }
    if (!nt_readline(c->out, line, sizeof line, 20.0) ||
        sscanf(line, "READY %255s %" SCNx64, ep, &c->node) != 2) {
        char err[1024] = "";
        FILE *e = fopen(c->errpath, "r");
        if (e) {
            size_t r = fread(err, 1, sizeof err - 1, e);
            err[r] = '\0';
            fclose(e);
        }
        fprintf(stderr, "net_peer did not start: %s\n", err);
        nt_stop(c);
        return false;
    }
    snprintf(c->ep, sizeof c->ep, "%s", ep);
    return true;
}

/* Whether the child's stderr holds `text`. */
static bool
nt_stderr_has(const nt_child *c, const char *text)
{
    char buf[16384];
    FILE *e = fopen(c->errpath, "r");
    size_t r;

    if (!e)
        return false;
    r = fread(buf, 1, sizeof buf - 1, e);
    buf[r] = '\0';
    fclose(e);
    return strstr(buf, text) != NULL;
}

#endif
