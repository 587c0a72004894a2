/* picos-bench-registry — the registry's benchmark table.
 *
 *     picos-bench-registry [--quick] [--names N] [--registry-bin PATH]
 *
 * A real picos-registry process (fork + exec, its own process group, a
 * temporary data dir and secret, fsync on as always) and this process as a
 * cluster node on 127.0.0.1. The rows:
 *
 *   reg-register-1   one task registers names one after another: each waits
 *                    for the registry's fsync (no batching possible)
 *   reg-register-4   4 tasks register N names in all: the registry's group
 *                    commit fsyncs once for what arrived meanwhile
 *   reg-rtt-raw      one task sends the registry task a hand-packed LOCATE
 *                    of an absent name with pc_send_data() and waits for
 *                    the reply: the plain remote round trip to the
 *                    registry, no client library
 *   reg-lookup-rtt   pc_locate() of absent names (timeout 0) from 1 task:
 *                    the mean round trip through the client
 *   reg-lookup       4 tasks pc_locate() half the names once each (none
 *                    cached: each a round trip). Synchronous calls: 4 tasks
 *                    are bound by 4 / reg-lookup-rtt (printed beside it),
 *                    so the ">= 100k/s" is the pipelined row's.
 *   reg-lookup-pipelined  4 tasks, each keeping 64 pc_locate_send() in
 *                    flight, the other half of the names (uncached), then
 *                    as many absent names (NOT_FOUND, a longer sample).
 *                    Target >= 100k/s.
 *   reg-lookup-cached 4 tasks look every name up again: the node's cache
 *   reg-recover      the registry is killed (SIGKILL) and started again on
 *                    its log: seconds from the exec until it serves all N
 *                    names again (replay, then this node's agent notices,
 *                    reconnects and joins again with its names), and the
 *                    replay alone (from its startup line to its status
 *                    answering)
 *
 * Every figure is one run; the VM is noisy (±40 %). The registry process is
 * killed on every exit path (atexit, and PR_SET_PDEATHSIG).
 */
#define _GNU_SOURCE

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "picos/picos.h"
#include "picos/registry.h"

#include "bench_common.h"

#define CLIENTS 4
#define WAIT_S 30.0
#define WINDOW 64

static int g_names = 10000;
static char g_bin[PATH_MAX];
static char g_dir[64] = "/tmp/picos-bench-reg.XXXXXX";
static char g_data[128], g_secret[128], g_ep[256];
static pid_t g_reg = -1;

static void
die(const char *what, int rc)
{
    fprintf(stderr, "picos-bench-registry: %s: %s\n", what,
            rc ? pc_strerror(rc) : strerror(errno));
    exit(2);
}

/* ---- the registry process ---------------------------------------------- */

static void
cleanup(void)
{
    bench_kill_group(&g_reg, SIGKILL);
    bench_remove_dir("picos-bench-registry", g_dir);
}

/* Start picos-registry on port `port` (0: any) and read its startup line
 * into g_ep; returns the seconds from fork to that line. */
static double
reg_start(int port)
{
    char listen[64];
    char *argv[] = {g_bin,  "--listen",      listen,   "--data-dir",
                    g_data, "--secret-file", g_secret, NULL};
    double t0 = bench_now();

    snprintf(listen, sizeof listen, "tcp://127.0.0.1:%d", port);
    g_reg = bench_start_child("picos-bench-registry", argv, g_ep, sizeof g_ep);
    return bench_now() - t0;
}

/* ---- the workloads ------------------------------------------------------- */

typedef enum { REGISTER, LOOKUP, PIPELINED, PIPELINED_ABSENT } op;

typedef struct job {
    op what;
    int from, to; /* names [from, to) */
    pc_ref self;
    _Atomic long *failed;
} job;

static void
name_of(int i, char *buf, size_t size)
{
    snprintf(buf, size, "bench.name.%06d", i);
}

static void
absent_of(int i, char *buf, size_t size)
{
    snprintf(buf, size, "bench.absent.%06d", i);
}

/* Keep WINDOW pc_locate_send() in flight until [from, to) are answered,
 * each exactly once with the expected result. */
static void
pipelined(job *j)
{
    bool absent = j->what == PIPELINED_ABSENT;
    int n = j->to - j->from, sent = 0, done = 0;
    uint8_t *seen = calloc((size_t)n, 1);
    char name[64];

    if (!seen)
        die("calloc", PC_ENOMEM);
    while (done < n) {
        pc_msg *m = NULL;
        uint64_t tag;
        pc_err rc, want = absent ? PC_ENOENT : PC_OK;

        for (; sent < n && sent - done < WINDOW; sent++) {
            (absent ? absent_of : name_of)(j->from + sent, name, sizeof name);
            if ((rc = pc_locate_send(PC_NAME_TASK, name, absent ? 0 : WAIT_S,
                                     (uint64_t)sent)) != PC_OK)
                die("pc_locate_send", rc);
        }
        if ((rc = pc_recv_type(PC_MSG_LOCATED, &m, 2 * WAIT_S)) != PC_OK)
            die("no answer to pc_locate_send", rc);
        if (pc_located_parse(m, &tag, &rc, NULL) != PC_OK ||
            tag >= (uint64_t)n || seen[tag]++ || rc != want) {
            if (atomic_fetch_add(j->failed, 1) == 0)
                fprintf(stderr,
                        "picos-bench-registry: a bad answer (tag %llu:"
                        " %s)\n",
                        (unsigned long long)tag, pc_strerror(rc));
        }
        pc_msg_free(&m);
        done++;
    }
    free(seen);
}

static pc_msg *
worker(void *arg)
{
    job *j = arg;
    char name[64];

    if (j->what == PIPELINED || j->what == PIPELINED_ABSENT) {
        pipelined(j);
        return NULL;
    }
    for (int i = j->from; i < j->to; i++) {
        pc_ref r;
        pc_err rc;

        name_of(i, name, sizeof name);
        rc = j->what == REGISTER
                 ? pc_name_register(PC_NAME_TASK, name, j->self, WAIT_S)
                 : pc_locate(PC_NAME_TASK, name, WAIT_S, &r);
        if (rc != PC_OK && atomic_fetch_add(j->failed, 1) == 0)
            fprintf(stderr, "picos-bench-registry: %s %s: %s\n",
                    j->what == REGISTER ? "register" : "locate", name,
                    pc_strerror(rc));
    }
    return NULL;
}

/* Run `what` over names [from, to) split across `tasks` tasks; returns
 * the seconds it took (every task joined). */
static double
run(op what, int from, int to, int tasks, pc_ref self)
{
    int n = to - from;
    job jobs[CLIENTS];
    pc_ref refs[CLIENTS];
    _Atomic long failed = 0;
    pc_spawn_opts o = {.flags = PC_TASK_JOINABLE};
    double t0 = bench_now();

    for (int k = 0; k < tasks; k++) {
        jobs[k] = (job){what, from + n * k / tasks, from + n * (k + 1) / tasks,
                        self, &failed};
        if (pc_spawn(worker, &jobs[k], &o, &refs[k]) != PC_OK)
            die("spawn", PC_ENOMEM);
    }
    for (int k = 0; k < tasks; k++)
        pc_task_join(refs[k], -1, NULL);
    if (failed) {
        fprintf(stderr, "picos-bench-registry: %ld calls failed\n",
                (long)failed);
        exit(2);
    }
    return bench_now() - t0;
}

static void
row(const char *name, double figure, const char *unit, const char *target,
    const char *note)
{
    printf("| %-20s | %12.0f | %-9s | %-8s | %s |\n", name, figure, unit,
           target, note);
}

/* Poll the registry's status until it holds `n` names and is not
 * recovering; returns the seconds waited. */
static double
wait_recovered(int n, double t0)
{
    for (;;) {
        pc_registry_info ri;

        if (pc_registry_status(NULL, &ri, 1.0) == PC_OK && !ri.recovering &&
            ri.names >= (uint32_t)n)
            return bench_now() - t0;
        if (bench_now() - t0 > 120)
            die("the registry did not recover in 120 s", PC_ETIMEDOUT);
        pc_sleep(0.005);
    }
}

static pc_msg *
driver(void *arg)
{
    int n = g_names, port;
    pc_ref self = pc_self();
    char note[256];
    double t, t0, first, raw_us, rtt_us;
    (void)arg;

    printf("| figure               |       result | unit      | target   | "
           "notes |\n|---|---|---|---|---|\n");
    t = run(REGISTER, 0, n / 10, 1, self);
    snprintf(note, sizeof note, "%d names from 1 task: an fsync each", n / 10);
    row("reg-register-1", n / 10 / t, "names/s", "-", note);
    t = run(REGISTER, n / 10, n, CLIENTS, self);
    snprintf(note, sizeof note, "%d names from %d tasks: group commit",
             n - n / 10, CLIENTS);
    row("reg-register-4", (n - n / 10) / t, "names/s", "-", note);

    {
        /* the plain remote round trip: a hand-packed LOCATE (absent name,
         * timeout 0) to the registry task, its NOT_FOUND back */
        int k = n / 10;
        pc_ref server = PC_REF_NIL;
        pc_err rc;
        if ((rc = pc_locate_at(g_ep, "picos.registry", 5.0, &server)) != PC_OK)
            die("pc_locate_at picos.registry", rc);
        t0 = bench_now();
        for (int i = 0; i < k; i++) {
            uint8_t b[96], *p = b, *len_at;
            char name[64];
            pc_msg *m = NULL;
            absent_of(i, name, sizeof name);
            *p++ = 0x08; /* id */
            for (uint64_t id = (uint64_t)i + 1;; id >>= 7) {
                *p++ = (uint8_t)((id & 0x7f) | (id > 0x7f ? 0x80 : 0));
                if (id <= 0x7f)
                    break;
            }
            *p++ = 0x10; /* op LOCATE */
            *p++ = 5;
            *p++ = 0x2a; /* names[0]: {name} (kind task = 0) */
            len_at = p++;
            *p++ = 0x12;
            *p++ = (uint8_t)strlen(name);
            memcpy(p, name, strlen(name));
            p += strlen(name);
            *len_at = (uint8_t)(p - len_at - 1);
            if ((rc = pc_send_data(server, "picos.v1.RegRequest", b,
                                   (size_t)(p - b))) != PC_OK ||
                (rc = pc_recv_type("picos.v1.RegReply", &m, WAIT_S)) != PC_OK)
                die("a raw LOCATE", rc);
            pc_msg_free(&m);
        }
        t = bench_now() - t0;
        raw_us = t / k * 1e6;
        snprintf(note, sizeof note,
                 "%d raw LOCATEs (pc_send_data, pc_recv_type) from 1 task: "
                 "the plain remote round trip",
                 k);
        row("reg-rtt-raw", raw_us, "us", "-", note);
    }
    {
        /* a round trip per lookup: names not in the cache (not there) */
        int k = n / 10;
        t0 = bench_now();
        for (int i = 0; i < k; i++) {
            pc_ref r;
            char name[64];
            absent_of(i, name, sizeof name);
            if (pc_locate(PC_NAME_TASK, name, 0, &r) != PC_ENOENT)
                die("an absent name was found", PC_EFAILED);
        }
        t = bench_now() - t0;
        rtt_us = t / k * 1e6;
        snprintf(note, sizeof note,
                 "%d pc_locate() of absent names from 1 task: the round "
                 "trip through the client (+%.0f us over raw)",
                 k, rtt_us - raw_us);
        row("reg-lookup-rtt", rtt_us, "us", "-", note);
    }
    t = run(LOOKUP, 0, n / 2, CLIENTS, self);
    snprintf(note, sizeof note,
             "%d names, each once, from %d synchronous tasks: bound by %d / "
             "rtt = %.0fk/s (raw: %.0fk/s); >= 100k needs many in flight",
             n / 2, CLIENTS, CLIENTS, CLIENTS / rtt_us * 1e3,
             CLIENTS / raw_us * 1e3);
    row("reg-lookup", n / 2 / t, "lookups/s", ">= 100k (pipelined row)", note);
    t = run(PIPELINED, n / 2, n, CLIENTS, self);
    snprintf(note, sizeof note,
             "%d names (uncached), each once, from %d tasks with %d "
             "pc_locate_send() in flight each",
             n - n / 2, CLIENTS, WINDOW);
    row("reg-lookup-pipelined", (n - n / 2) / t, "lookups/s", ">= 100k", note);
    t = run(PIPELINED_ABSENT, 0, 4 * n, CLIENTS, self);
    snprintf(note, sizeof note,
             "%d absent names (NOT_FOUND), as reg-lookup-pipelined", 4 * n);
    row("reg-lookup-pipelined", 4 * n / t, "lookups/s", ">= 100k", note);
    t = run(LOOKUP, 0, n, CLIENTS, self);
    snprintf(note, sizeof note, "the same names again: from this node's cache");
    row("reg-lookup-cached", n / t, "lookups/s", "-", note);

    /* kill -9, restart on the same port and log */
    if (sscanf(strrchr(g_ep, ':') + 1, "%d", &port) != 1)
        die("the registry's port", PC_EINVAL);
    bench_kill_group(&g_reg, SIGKILL);
    t0 = bench_now();
    first = reg_start(port);
    {
        double replay = wait_recovered(0, t0);
        double all = wait_recovered(n, t0);
        snprintf(note, sizeof note,
                 "kill -9, exec to all %d names served; startup line after "
                 "%.3f s, status after %.3f s",
                 n, first, replay);
        row("reg-recover", all * 1000, "ms", "-", note);
    }
    return NULL;
}

int
main(int argc, char **argv)
{
    char exe[PATH_MAX - 64]; /* room for the suffix in g_bin */
    ssize_t len;
    pc_cluster_opts o = {0};
    pc_err rc;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            g_names = 1000;
        else if (!strcmp(argv[i], "--names") && i + 1 < argc)
            g_names = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--registry-bin") && i + 1 < argc)
            snprintf(g_bin, sizeof g_bin, "%s", argv[++i]);
        else {
            fprintf(stderr, "usage: picos-bench-registry [--quick] [--names "
                            "N] [--registry-bin PATH]\n");
            return 2;
        }
    }
    if (g_names < 40)
        g_names = 40;
    if (!g_bin[0]) { /* beside this program: build/apps/registry/ */
        if ((len = readlink("/proc/self/exe", exe, sizeof exe - 1)) < 0)
            die("readlink /proc/self/exe", 0);
        exe[len] = '\0';
        *strrchr(exe, '/') = '\0';
        snprintf(g_bin, sizeof g_bin, "%s/../registry/picos-registry", exe);
    }
    if (!mkdtemp(g_dir))
        die("mkdtemp", 0);
    atexit(cleanup);
    snprintf(g_data, sizeof g_data, "%s/data", g_dir);
    snprintf(g_secret, sizeof g_secret, "%s/secret", g_dir);
    if (mkdir(g_data, 0700) || !bench_write_secret(g_secret))
        die("the data dir and secret", 0);
    reg_start(0);

    o.registries = g_ep;
    o.net.secret_file = g_secret;
    o.node.workers = 2;
    if ((rc = pc_cluster_start(&o)) != PC_OK)
        die("joining the registry", rc);
    printf("picos-bench-registry: %d names, registry %s, data on %s\n\n",
           g_names, g_ep, g_dir);
    if ((rc = pc_spawn(driver, NULL, NULL, NULL)) != PC_OK)
        die("spawn", rc);
    pc_node_run();
    return 0;
}
