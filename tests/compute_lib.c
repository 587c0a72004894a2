/* tests/compute_lib.c — the test computation (compute_test.so): one job
 * function per behaviour the worker, the node and the client must handle
 * (docs/computations.md). tests/test_worker.c drives it through
 * picos-worker directly; the node's and the client's tests load it too, so
 * the job names and their results are a contract: change them with those
 * tests.
 *
 *   echo         result = input
 *   square       8-byte long in, its square out
 *   sleep        input: decimal milliseconds; sleeps, returns "slept"
 *   fail         fails with "asked to fail: <input>"
 *   crash        dies by SIGSEGV
 *   crash_once   dies by SIGSEGV on attempt 1, returns "survived" after
 *   fork         fork() 1000 times: "forks: N ok, first errno E"
 *   read_outside opens /etc/passwd, ../../../../etc/passwd and the path
 *                given as input: "etc=E rel=E input=E" (errno, 0: opened)
 *   hog          mallocs and touches 16 MiB chunks until malloc fails, then
 *                fails with "out of memory: malloc refused after N MiB"
 *   hog_crash    the same, then writes through NULL
 *   whoami       "uid=U gid=G nnp=N seccomp=S capeff=HEX cwd=PATH
 *                nofile=N as=N nproc=N core=N" (limits: soft, or "inf")
 *   chat         replies to each message with it uppercased, until "bye"
 *                (waits 10 s at most for each): "chatted N"
 *   files        reads in.txt, writes out.txt reversed, returns its length
 *   data         the first line of the data file named by the input
 *   setup_value  what node_setup read from the data file setup.txt, or
 *                "none"
 *   worker       the index worker_setup was given, as text
 *   spin         burns input milliseconds of CPU time, returns "spun"
 *
 * node_setup fails ("setup refused: fail_setup.txt present") when the data
 * file fail_setup.txt exists; worker_setup fails ("worker setup refused:
 * fail_worker.txt present") when fail_worker.txt does. Built with
 * COMPUTE_BAD_ABI, the same code declares ABI 7 (compute_test_badabi.so); with
 * COMPUTE_NO_SYMBOL it exports no picos_computation (compute_test_nosym.so).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "picos/computation.h"

#include "test.pb-c.h"

static char setup_buf[4096] = "none";
static int my_worker = -1;

/* The input as a NUL-terminated string (at most size - 1 bytes). */
static const char *
text(const void *in, size_t len, char *buf, size_t size)
{
    size_t n = len < size - 1 ? len : size - 1;

    memcpy(buf, in, n);
    buf[n] = '\0';
    return buf;
}

static int
ret_str(pc_job *j, const char *s)
{
    return pc_job_return(j, s, strlen(s));
}

static int
echo(pc_job *j, const void *in, size_t len)
{
    return pc_job_return(j, in, len);
}

static int
square(pc_job *j, const void *in, size_t len)
{
    long x;

    if (len != sizeof x)
        return pc_job_fail(j, "want %zu bytes, got %zu", sizeof x, len);
    memcpy(&x, in, sizeof x);
    x *= x;
    return pc_job_return(j, &x, sizeof x);
}

static int
sleep_ms(pc_job *j, const void *in, size_t len)
{
    char b[32];
    long ms = atol(text(in, len, b, sizeof b));
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) && errno == EINTR)
        ;
    return ret_str(j, "slept");
}

static int
fail(pc_job *j, const void *in, size_t len)
{
    return pc_job_fail(j, "asked to fail: %.*s", (int)len, (const char *)in);
}

/* A store through NULL, as a buggy job would (not UBSan's to report) */
__attribute__((no_sanitize("undefined"))) static void
segv(void)
{
    char *volatile p = NULL;

    signal(SIGSEGV, SIG_DFL); /* not a sanitizer's handler: the signal */
    *p = 1;
    raise(SIGSEGV);
}

static int
crash(pc_job *j, const void *in, size_t len)
{
    (void)j, (void)in, (void)len;
    segv();
    return 1;
}

static int
crash_once(pc_job *j, const void *in, size_t len)
{
    (void)in, (void)len;
    if (pc_job_attempt(j) == 1)
        segv();
    return ret_str(j, "survived");
}

static int
forks(pc_job *j, const void *in, size_t len)
{
    char r[80];
    int ok = 0, first = 0;

    (void)in, (void)len;
    for (int i = 0; i < 1000; i++) {
        pid_t p = fork();
        if (p == 0)
            _exit(0);
        if (p > 0) {
            ok++;
            waitpid(p, NULL, 0);
        } else if (!first) {
            first = errno;
        }
    }
    snprintf(r, sizeof r, "forks: %d ok, first errno %d", ok, first);
    return ret_str(j, r);
}

static int
try_open(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return errno;
    close(fd);
    return 0;
}

static int
read_outside(pc_job *j, const void *in, size_t len)
{
    char path[4096], r[160];

    text(in, len, path, sizeof path);
    snprintf(r, sizeof r, "etc=%d rel=%d input=%d", try_open("/etc/passwd"),
             try_open("../../../../etc/passwd"), try_open(path));
    return ret_str(j, r);
}

#define CHUNK (16u << 20)

/* Allocate and touch CHUNKs until malloc fails; returns the MiB held and
 * the chain of chunks in *head (each starts with the next's pointer). */
static size_t
hog_all(void **head)
{
    size_t mib = 0;

    *head = NULL;
    for (;;) {
        char *c = malloc(CHUNK);
        if (!c)
            return mib;
        memset(c, 0xa5, CHUNK);
        memcpy(c, head, sizeof *head);
        *head = c;
        mib += CHUNK >> 20;
    }
}

static int
hog(pc_job *j, const void *in, size_t len)
{
    void *head, *next;
    size_t mib;

    (void)in, (void)len;
    mib = hog_all(&head);
    for (; head; head = next) {
        memcpy(&next, head, sizeof next);
        free(head);
    }
    return pc_job_fail(j, "out of memory: malloc refused after %zu MiB", mib);
}

static int
hog_crash(pc_job *j, const void *in, size_t len)
{
    void *head;

    (void)j, (void)in, (void)len;
    hog_all(&head);
    segv();
    return 1;
}

static void
lim(char *buf, size_t size, const char *name, int res)
{
    struct rlimit rl;
    size_t n = strlen(buf);

    if (getrlimit(res, &rl))
        snprintf(buf + n, size - n, " %s=?", name);
    else if (rl.rlim_cur == RLIM_INFINITY)
        snprintf(buf + n, size - n, " %s=inf", name);
    else
        snprintf(buf + n, size - n, " %s=%llu", name,
                 (unsigned long long)rl.rlim_cur);
}

static int
whoami(pc_job *j, const void *in, size_t len)
{
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
    char cwd[1024], r[2048];
    unsigned long long eff = ~0ull;

    (void)in, (void)len;
    memset(d, 0, sizeof d);
    if (syscall(SYS_capget, &h, d) == 0)
        eff = (unsigned long long)d[1].effective << 32 | d[0].effective;
    if (!getcwd(cwd, sizeof cwd))
        snprintf(cwd, sizeof cwd, "?");
    snprintf(r, sizeof r, "uid=%u gid=%u nnp=%d seccomp=%d capeff=%llx cwd=%s",
             (unsigned)getuid(), (unsigned)getgid(),
             prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0),
             prctl(PR_GET_SECCOMP, 0, 0, 0, 0), eff, cwd);
    lim(r, sizeof r, "nofile", RLIMIT_NOFILE);
    lim(r, sizeof r, "as", RLIMIT_AS);
    lim(r, sizeof r, "nproc", RLIMIT_NPROC);
    lim(r, sizeof r, "core", RLIMIT_CORE);
    return ret_str(j, r);
}

static int
chat(pc_job *j, const void *in, size_t len)
{
    char r[32];
    int n = 0;

    (void)in, (void)len;
    for (;;) {
        void *m;
        size_t ml;
        int rc = pc_job_recv(j, 10.0, &m, &ml);
        if (rc == 1)
            return pc_job_fail(j, "chat: no message in 10 s");
        if (rc < 0)
            return pc_job_fail(j, "chat: node gone");
        if (ml == 3 && !memcmp(m, "bye", 3)) {
            free(m);
            break;
        }
        for (size_t i = 0; i < ml; i++)
            if (((char *)m)[i] >= 'a' && ((char *)m)[i] <= 'z')
                ((char *)m)[i] = (char)(((char *)m)[i] - 'a' + 'A');
        rc = pc_job_send(j, m, ml);
        free(m);
        if (rc)
            return pc_job_fail(j, "chat: send failed");
        n++;
    }
    snprintf(r, sizeof r, "chatted %d", n);
    return ret_str(j, r);
}

static int
files(pc_job *j, const void *in, size_t len)
{
    char buf[65536], r[32];
    ssize_t n;
    FILE *f = fopen("in.txt", "r");

    (void)in, (void)len;
    if (!f)
        return pc_job_fail(j, "in.txt: %s", strerror(errno));
    n = (ssize_t)fread(buf, 1, sizeof buf, f);
    fclose(f);
    for (ssize_t a = 0, b = n - 1; a < b; a++, b--) {
        char t = buf[a];
        buf[a] = buf[b];
        buf[b] = t;
    }
    if (!(f = fopen("out.txt", "w")))
        return pc_job_fail(j, "out.txt: %s", strerror(errno));
    if (fwrite(buf, 1, (size_t)n, f) != (size_t)n || fclose(f))
        return pc_job_fail(j, "out.txt: write failed");
    snprintf(r, sizeof r, "%zd", n);
    return ret_str(j, r);
}

static int
data(pc_job *j, const void *in, size_t len)
{
    char name[256], path[4096], line[4096];
    FILE *f;

    text(in, len, name, sizeof name);
    snprintf(path, sizeof path, "%s/%s", pc_job_data_dir(), name);
    if (!(f = fopen(path, "r")))
        return pc_job_fail(j, "%s: %s", path, strerror(errno));
    if (!fgets(line, sizeof line, f))
        line[0] = '\0';
    fclose(f);
    line[strcspn(line, "\n")] = '\0';
    return ret_str(j, line);
}

static int
setup_value(pc_job *j, const void *in, size_t len)
{
    (void)in, (void)len;
    return ret_str(j, setup_buf);
}

static int
worker(pc_job *j, const void *in, size_t len)
{
    char r[16];

    (void)in, (void)len;
    snprintf(r, sizeof r, "%d", my_worker);
    return ret_str(j, r);
}

static double
cpu_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
spin(pc_job *j, const void *in, size_t len)
{
    char b[32];
    double end = cpu_now() + (double)atol(text(in, len, b, sizeof b)) / 1e3;
    volatile unsigned long x = 0;

    while (cpu_now() < end)
        for (int i = 0; i < 10000; i++)
            x = x + (unsigned long)i;
    return ret_str(j, "spun");
}

static int
node_setup(const char *dir, char *err, size_t size)
{
    char path[4096];
    FILE *f;
    size_t n;

    snprintf(path, sizeof path, "%s/fail_setup.txt", dir);
    if (access(path, F_OK) == 0) {
        snprintf(err, size, "setup refused: fail_setup.txt present");
        return 1;
    }
    snprintf(path, sizeof path, "%s/setup.txt", dir);
    if ((f = fopen(path, "r"))) {
        n = fread(setup_buf, 1, sizeof setup_buf - 1, f);
        setup_buf[n] = '\0';
        fclose(f);
    }
    return 0;
}

static int
worker_setup(int w, char *err, size_t size)
{
    char path[4096];

    snprintf(path, sizeof path, "%s/fail_worker.txt", pc_job_data_dir());
    if (access(path, F_OK) == 0) {
        snprintf(err, size, "worker setup refused: fail_worker.txt present");
        return 1;
    }
    my_worker = w;
    return 0;
}

/* "ping_pb": a typed job (pc_job_def.in_desc): its input is unpacked by the
 * worker as picos.test.Ping before it runs; the result tells its fields. */
static int
ping_pb(pc_job *j, const void *in, size_t len)
{
    const Picos__Test__Ping *p = pc_job_input_pb(j);
    char out[160];

    (void)in, (void)len;
    if (!p)
        return pc_job_fail(j, "no unpacked input");
    snprintf(out, sizeof out, "seq=%u text=%.100s nums=%zu", p->seq,
             p->text ? p->text : "", p->n_nums);
    return pc_job_return(j, out, strlen(out));
}

static const pc_job_def jobs[] = {
    {"ping_pb", ping_pb, &picos__test__ping__descriptor},
    {"echo", echo, NULL},
    {"square", square, NULL},
    {"sleep", sleep_ms, NULL},
    {"fail", fail, NULL},
    {"crash", crash, NULL},
    {"crash_once", crash_once, NULL},
    {"fork", forks, NULL},
    {"read_outside", read_outside, NULL},
    {"hog", hog, NULL},
    {"hog_crash", hog_crash, NULL},
    {"whoami", whoami, NULL},
    {"chat", chat, NULL},
    {"files", files, NULL},
    {"data", data, NULL},
    {"setup_value", setup_value, NULL},
    {"worker", worker, NULL},
    {"spin", spin, NULL},
    {NULL, NULL, NULL},
};

#if defined(COMPUTE_BAD_ABI)
__attribute__((visibility("default")))
const pc_computation picos_computation = {.abi = 7,
                                          .name = "compute_test",
                                          .version = 1,
                                          .node_setup = node_setup,
                                          .worker_setup = worker_setup,
                                          .jobs = jobs};
#elif defined(COMPUTE_NO_SYMBOL)
__attribute__((visibility("default")))
const pc_computation not_it = {.abi = PC_COMPUTATION_ABI,
                               .name = "compute_test",
                               .version = 1,
                               .node_setup = node_setup,
                               .worker_setup = worker_setup,
                               .jobs = jobs};
#else
PC_COMPUTATION(.name = "compute_test", .version = 1, .node_setup = node_setup,
               .worker_setup = worker_setup, .jobs = jobs);
#endif
