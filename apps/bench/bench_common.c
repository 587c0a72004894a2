/* bench_common.c — see bench_common.h.
 *
 * The table's columns count characters, not bytes ("µ", "≤" and "×" are
 * two or three), and its figure column is right-aligned, so the Markdown
 * reads as a table in a terminal too. A helper process is started by fork
 * + exec with its stdout on a pipe: its first line that names a tcp://
 * endpoint is its startup line (picos-registry's "listening on EP", the
 * service node's "READY EP"); later lines get EPIPE.
 */
#define _GNU_SOURCE
#include "bench_common.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double
bench_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void
bench_fmt(char *buf, size_t size, const char *f, ...)
{
    va_list ap;

    va_start(ap, f);
    vsnprintf(buf, size, f, ap);
    va_end(ap);
}

double
bench_load_average(void)
{
    double load = -1;
    FILE *f = fopen("/proc/loadavg", "r");

    if (f) {
        if (fscanf(f, "%lf", &load) != 1)
            load = -1;
        fclose(f);
    }
    return load;
}

static int
text_width(const char *s)
{
    int n = 0;

    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* One cell, padded to width; the figure column is right-aligned. */
static void
cell(const char *s, int width, bool right)
{
    int pad = width - text_width(s);

    printf(" %*s%s%*s |", right ? pad : 0, "", s, right ? 0 : pad, "");
}

static void
print_row(const char *const *v, const int *w)
{
    printf("|");
    for (int c = 0; c < BENCH_COLS; c++)
        cell(v[c], w[c], c == 1);
    printf("\n");
}

void
bench_print_table(const char *const *cells, int n)
{
    static const char *const head[BENCH_COLS] = {"benchmark", "figure", "unit",
                                                 "target", "met"};
    int w[BENCH_COLS];

    for (int c = 0; c < BENCH_COLS; c++)
        w[c] = text_width(head[c]);
    for (int i = 0; i < n; i++)
        for (int c = 0; c < BENCH_COLS; c++)
            if (text_width(cells[i * BENCH_COLS + c]) > w[c])
                w[c] = text_width(cells[i * BENCH_COLS + c]);
    print_row(head, w);
    printf("|");
    for (int c = 0; c < BENCH_COLS; c++) {
        printf(" ");
        for (int k = 0; k < w[c] - (c == 1); k++)
            printf("-");
        printf("%s |", c == 1 ? ":" : "");
    }
    printf("\n");
    for (int i = 0; i < n; i++)
        print_row(cells + i * BENCH_COLS, w);
}

static void __attribute__((noreturn))
fail(const char *prog, const char *what, const char *arg)
{
    fprintf(stderr, "%s: %s%s\n", prog, what, arg);
    exit(2);
}

pid_t
bench_start_child(const char *prog, char *const argv[], char *ep, size_t size)
{
    char line[1024];
    int fds[2];
    size_t used = 0;
    pid_t pid;

    if (pipe2(fds, O_CLOEXEC))
        fail(prog, "pipe: ", strerror(errno));
    fflush(NULL);
    if ((pid = fork()) < 0)
        fail(prog, "fork: ", strerror(errno));
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fds[1], 1);
        execv(argv[0], argv);
        _exit(127);
    }
    setpgid(pid, pid);
    close(fds[1]);
    for (;;) {
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        char *nl, *at;
        ssize_t r;

        if (poll(&p, 1, 30000) <= 0)
            fail(prog, "no startup line in 30 s from ", argv[0]);
        if ((r = read(fds[0], line + used, sizeof line - 1 - used)) <= 0)
            fail(prog, "exited before its startup line: ", argv[0]);
        used += (size_t)r;
        line[used] = '\0';
        if (!(nl = strchr(line, '\n')))
            continue;
        *nl = '\0';
        if (!(at = strstr(line, "tcp://")))
            fail(prog, "no endpoint in the startup line: ", line);
        at[strcspn(at, " ,()")] = '\0';
        snprintf(ep, size, "%s", at);
        break;
    }
    close(fds[0]);
    return pid;
}

void
bench_kill_group(pid_t *pid, int sig)
{
    if (*pid > 0) {
        kill(-*pid, sig);
        while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR)
            ;
        *pid = -1;
    }
}

bool
bench_write_secret(const char *path)
{
    uint8_t raw[32];
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);

    if (fd < 0)
        return false;
    if (getrandom(raw, sizeof raw, 0) != sizeof raw) {
        close(fd);
        return false;
    }
    for (size_t i = 0; i < sizeof raw; i++) /* printable: 64 hex digits */
        dprintf(fd, "%02x", raw[i]);
    close(fd);
    return true;
}

void
bench_remove_dir(const char *prog, const char *dir)
{
    char cmd[160];

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "%s: can't remove %s\n", prog, dir);
}
