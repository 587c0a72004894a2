/* picos-bench-rps — the benchmark table of Remote Pico Services (issue 10).
 *
 *     picos-bench-rps [--quick] [--calls N] [--pipelined N] [--tasks N]
 *                     [--window N] [--workers N] [--net-timeout S]
 *                     [--registry-bin PATH]
 *     picos-bench-rps --serve --registries EP --secret-file F [--workers N]
 *                     [--net-timeout S]
 *
 * Three processes on 127.0.0.1, CURVE on every link: a real picos-registry
 * (fork + exec, as picos-bench-registry starts it), a service node (this
 * program again, exec'd with --serve: one node per process, so the service
 * node can't be a second node in here) and this process, the client node.
 * Each process is in a process group of its own, killed with it on every
 * exit path (atexit, and PR_SET_PDEATHSIG); the secret is a random one in
 * a 0600 file of a temporary directory removed at exit.
 *
 * The service node registers the service "bench.echo" (its function
 * returns the request: a task spawned per call, its exit value the
 * result) and a task "bench.task" (cluster-wide, pc_register) that sends
 * back every message it takes. The client's driver task measures:
 *
 *   rps-task-rtt     the baseline: a new 100-byte message sent to
 *                    bench.task (pc_send_data) and its echo taken
 *                    (pc_recv_type) — the plain remote round trip
 *   rps-call-rtt     pc_rps_call() of a new 100-byte request, then
 *                    pc_rps_finish() and pc_rps_call_free(), one at a time
 *   rps-request-rtt  pc_rps_request() of a new 100-byte request
 *
 * in interleaved blocks of BLOCK (task, call, request, task, ...), so that
 * the three see the same machine: the VM is noisy (±40 % from one minute to
 * the next) and a baseline measured a minute apart would say more about the
 * neighbours than about the RPS layer. Each round trip is timed on its own
 * (CLOCK_MONOTONIC): the rows give the mean, and p50 / p99 of all of them.
 * Before the first block WARMUP untimed round trips of each kind are made.
 * Then rps-pipelined: `tasks` client tasks each keep up to `window`
 * accepted calls in flight (pc_rps_call, and pc_rps_finish of the oldest
 * when the window is full), `pipelined` calls in all; timed from the spawn
 * of the first task to the end of the last. pc_rps_call() returns once the
 * service accepted the call (an RpsAccepted back), so a task has at most
 * one call being accepted at any moment: the calls being accepted at once
 * are bounded by the tasks, the calls in flight by tasks × window.
 *
 * Last, deadline expiry: the service node also registers "bench.sleep",
 * whose call task sleeps SLEEP_S, far past any deadline, and a task
 * "bench.cancels" that pc_rps_monitor()s it, counting the outcomes. The
 * client makes DL_CALLS calls (--quick: DL_QUICK), DL_FLIGHT tasks each
 * making its share one after the other, each with the deadline DL_S, and
 * takes each outcome with pc_rps_finish(call, -1): its overshoot is the
 * time it came minus (the call's start + DL_S). The row gives p50 / p99 /
 * max; its target is on the max, so that no call of the run may come
 * late, and it is met only when every outcome is PC_ETIMEDOUT. Then the
 * client asks bench.cancels (the control channel: a registered task, as
 * bench.task) for its counts, once it saw as many outcomes as calls were
 * made (or WAIT_S passed): the calls the service node ended at their
 * deadline ("server-side cancellations: K of K") and any other outcome.
 *
 * The notes give the wire messages each kind cost this node (envelopes
 * sent and received per operation, from pc_net_stats) and the CPU time
 * both nodes spent per operation (this process's CPU clock; the service
 * node's utime + stime, in 10 ms ticks), which the neighbours on a shared
 * machine disturb far less than the wall time; it includes the workers'
 * short idle spins before they sleep. Every result is
 * checked (the echo is the request's size; the call's value too); a failure
 * ends the program with exit status 2 and one line on stderr — but for the
 * deadline row's calls, whose failures (an outcome other than
 * PC_ETIMEDOUT) make its rows unmet, the first one told on stderr. The exit
 * status is 0 when everything ran, whether or not the targets were met: no
 * test asserts a time (bench_rps_smoke runs --quick and checks only that).
 */
#define _GNU_SOURCE

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "picos/picos.h"
#include "picos/registry.h"
#include "picos/rps.h"

#include "bench_common.h"

#define SERVICE "bench.echo"
#define TASK "bench.task"
#define SLEEPER "bench.sleep"   /* the deadline row's service */
#define CANCELS "bench.cancels" /* counts its outcomes at the service node */
#define COUNT_T "bench.count"   /* asking CANCELS, and its answer */
#define MSG_T "bench"
#define SIZE 100      /* bytes of each request, as picos-bench's net rows */
#define WAIT_S 30.0   /* any one wait: a locate, a reply, a call's deadline */
#define BLOCK 500     /* round trips of one kind before the next kind's */
#define MAX_TASKS 256 /* --tasks */
#define MAX_WINDOW 256
#define SLEEP_S 10.0 /* a bench.sleep call task's sleep */
#define DL_S 0.2     /* each deadline-row call's deadline */
#define DL_CALLS 100 /* the deadline row's calls; --quick: DL_QUICK */
#define DL_QUICK 10
#define DL_FLIGHT 20 /* calls in flight at once (tasks) in that row */

static struct {
    bool quick;
    long calls;     /* round trips of each kind */
    long pipelined; /* calls of rps-pipelined */
    long warmup;
    long dl_calls; /* the deadline row's */
    int tasks, window, workers;
    char timeout[32];   /* --net-timeout: every link's, as given; "" default */
    char bin[PATH_MAX]; /* picos-registry */
    char self[PATH_MAX - 64]; /* this program, for --serve */
    char dir[64];
    char data[128], secret[128];
    char reg_ep[256], svc_ep[256];
    pid_t reg, svc;
} g = {.calls = 20000,
       .pipelined = 200000,
       .warmup = 1000,
       .dl_calls = DL_CALLS,
       .tasks = 64,
       .window = 16,
       .workers = 1,
       .dir = "/tmp/picos-bench-rps.XXXXXX",
       .reg = -1,
       .svc = -1};

/* CPU seconds of this process (every thread). */
static double
cpu_self(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* CPU seconds of process `pid` (utime + stime of /proc/PID/stat, in clock
 * ticks: 10 ms on Linux); -1 when unreadable. */
static double
cpu_of(pid_t pid)
{
    char path[64], buf[1024], *p;
    unsigned long ut, st;
    FILE *f;
    size_t n;

    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (!(f = fopen(path, "r")))
        return -1;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* after the command name's ')': state, then fields 4..13, then 14, 15 */
    if (!(p = strrchr(buf, ')')) ||
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
               &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* rc: a pc_err, or 0 for errno. */
static void
die(const char *what, int rc)
{
    fprintf(stderr, "picos-bench-rps: %s: %s\n", what,
            rc ? pc_strerror(rc) : strerror(errno));
    exit(2);
}

#define CHECK(call)                                                            \
    do {                                                                       \
        pc_err rc_ = (call);                                                   \
        if (rc_ != PC_OK)                                                      \
            die(#call, rc_);                                                   \
    } while (0)

/* ------------------------------------------------------------------------ */
/* The service node (--serve)                                               */

static pc_msg *
echo_fn(pc_msg *req)
{
    return req;
}

static pc_msg *
echo_task(void *arg)
{
    (void)arg;
    for (;;) {
        pc_msg *m = NULL;
        if (pc_recv(&m, -1) != PC_OK)
            continue;
        pc_ref to = pc_msg_sender(m);
        if (pc_send(to, &m) != PC_OK)
            pc_msg_free(&m);
    }
    return NULL;
}

/* bench.sleep: far past its deadline, ended there by the service (the
 * request freed first: a terminated task does not unwind). */
static pc_msg *
sleep_fn(pc_msg *req)
{
    pc_msg_free(&req);
    pc_sleep(SLEEP_S);
    return NULL;
}

/* bench.cancels: counts the outcomes of bench.sleep's calls (from
 * pc_rps_monitor), [0] the PC_ETIMEDOUT ones, [1] any other. A COUNT_T
 * message (its data: a long, the calls made) is answered with the counts
 * (two longs) once that many outcomes came, or WAIT_S after it asked:
 * the client may have its outcomes a little before the monitor has its. */
static pc_msg *
cancel_task(void *arg)
{
    long n[2] = {0, 0}, want = -1;
    pc_ref asker = PC_REF_NIL;
    double until = 0;

    (void)arg;
    for (;;) {
        pc_msg *m = NULL;
        pc_rps_outcome o;
        size_t len = 0;
        const void *d;

        if (want >= 0 && (n[0] + n[1] >= want || bench_now() >= until)) {
            if (pc_send_data(asker, COUNT_T, n, sizeof n) != PC_OK)
                fprintf(stderr, "picos-bench-rps: can't answer the count\n");
            want = -1;
        }
        double wait = want < 0 ? -1 : until - bench_now();
        if (pc_recv(&m, wait < 0 && want >= 0 ? 0 : wait) != PC_OK)
            continue;
        if (pc_msg_is(m, PC_MSG_RPS_OUTCOME) &&
            pc_rps_outcome_parse(m, &o) == PC_OK)
            n[o.rc != PC_ETIMEDOUT]++;
        else if (pc_msg_is(m, COUNT_T) && (d = pc_msg_data(m, &len)) &&
                 len == sizeof want) {
            memcpy(&want, d, sizeof want);
            asker = pc_msg_sender(m);
            until = bench_now() + WAIT_S;
        }
        pc_msg_free(&m);
    }
    return NULL;
}

/* Join, register the services and the tasks, say READY with the endpoint,
 * run until killed. */
static int
serve(const char *registries, const char *secret)
{
    pc_cluster_opts co = {0};
    pc_rps_opts so = {.name = SERVICE,
                      .fn = echo_fn,
                      .max_inflight = MAX_TASKS * MAX_WINDOW,
                      .max_queued = 4096};
    pc_rps_opts sl = {.name = SLEEPER, .fn = sleep_fn, .max_inflight = 64};
    pc_rps *s = NULL, *sleeper = NULL;
    pc_ref t, cancels;
    char ep[256];

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (!registries || !secret)
        die("--serve needs --registries and --secret-file", PC_EINVAL);
    co.registries = registries;
    co.net.secret_file = secret;
    co.node.workers = g.workers;
    co.net.timeout = atof(g.timeout);
    co.join_timeout = WAIT_S;
    CHECK(pc_cluster_start(&co));
    /* not a daemon: it keeps pc_node_run() going until we are killed */
    CHECK(pc_spawn(echo_task, NULL, NULL, &t));
    CHECK(pc_register(TASK, t));
    CHECK(pc_rps_register(&so, WAIT_S, &s));
    CHECK(pc_spawn(cancel_task, NULL, NULL, &cancels));
    CHECK(pc_register(CANCELS, cancels));
    CHECK(pc_rps_register(&sl, WAIT_S, &sleeper));
    CHECK(pc_rps_monitor(sleeper, cancels));
    CHECK(pc_net_endpoints(ep, NULL, sizeof ep));
    printf("READY %s\n", ep);
    fflush(stdout);
    pc_node_run();
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The other processes                                                      */

static void
cleanup(void)
{
    bench_kill_group(&g.svc, SIGKILL);
    bench_kill_group(&g.reg, SIGKILL);
    bench_remove_dir("picos-bench-rps", g.dir);
}

/* ------------------------------------------------------------------------ */
/* Measurements                                                             */

typedef enum { K_TASK, K_CALL, K_REQUEST, NKIND } kindt;

/* The round trips of one kind: each one's µs, and the wire counters. */
typedef struct series {
    double *us;
    long n;
    double sum;
    uint64_t env_out, env_in;
    double cpu_client, cpu_service; /* seconds */
} series;

static series S[NKIND];
static char g_buf[SIZE];
static pc_ref g_task, g_cancels;
static pc_rps_client *g_client, *g_sleeper;

static pc_msg *
new_req(void)
{
    pc_msg *m = NULL;

    CHECK(pc_msg_new(&m, MSG_T, g_buf, sizeof g_buf));
    return m;
}

static void
check_value(pc_msg **v, const char *what)
{
    size_t len = 0;

    if (!*v || !pc_msg_is(*v, MSG_T) || (pc_msg_data(*v, &len), len != SIZE))
        die(what, PC_EPROTO);
    pc_msg_free(v);
}

/* One round trip of kind k. */
static void
once(kindt k)
{
    struct pc_rps_call *call = NULL;
    pc_msg *m = new_req(), *v = NULL;

    switch (k) {
    case K_TASK:
        CHECK(pc_send(g_task, &m));
        CHECK(pc_recv_type(MSG_T, &v, WAIT_S));
        check_value(&v, "the task's echo");
        break;
    case K_CALL:
        CHECK(pc_rps_call(g_client, &m, WAIT_S, &call));
        CHECK(pc_rps_finish(call, WAIT_S, &v));
        pc_rps_call_free(&call);
        check_value(&v, "the call's value");
        break;
    default:
        CHECK(pc_rps_request(g_client, &m, WAIT_S, &v));
        check_value(&v, "the reply");
    }
}

static void
block(kindt k, long n)
{
    series *s = &S[k];
    pc_net_stats a, b;
    double c0 = cpu_self(), s0 = cpu_of(g.svc);

    CHECK(pc_net_stats_get(&a));
    for (long i = 0; i < n; i++) {
        double t0 = bench_now(), us;
        once(k);
        us = (bench_now() - t0) * 1e6;
        s->us[s->n++] = us;
        s->sum += us;
    }
    CHECK(pc_net_stats_get(&b));
    s->env_out += b.env_out - a.env_out;
    s->env_in += b.env_in - a.env_in;
    s->cpu_client += cpu_self() - c0;
    s->cpu_service += cpu_of(g.svc) - s0;
}

static int
by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* The p-th percentile (nearest rank) of s, sorted. */
static double
pct(const series *s, double p)
{
    long i = (long)(p / 100.0 * (double)s->n + 0.999999) - 1;

    if (i < 0)
        i = 0;
    if (i >= s->n)
        i = s->n - 1;
    return s->us[i];
}

/* rps-pipelined */
static struct {
    long each, extra; /* calls per task (the first does the rest too) */
    atomic_long failed;
    double secs;
    uint64_t env_out, env_in;
    double cpu_client, cpu_service;
} P;

static pc_msg *
piper(void *arg)
{
    long n = P.each + (arg ? P.extra : 0), done = 0, sent = 0;
    struct pc_rps_call *ring[MAX_WINDOW];
    pc_rps_client *c = g_client; /* one handle shared by every task */
    int head = 0, used = 0;
    pc_err rc = PC_OK;

    while (done < n) {
        if (sent < n && used < g.window) {
            pc_msg *m = new_req();
            struct pc_rps_call *k = NULL;
            if ((rc = pc_rps_call(c, &m, WAIT_S, &k)) != PC_OK) {
                pc_msg_free(&m);
                goto out;
            }
            ring[(head + used++) % g.window] = k;
            sent++;
            continue;
        }
        pc_msg *v = NULL;
        rc = pc_rps_finish(ring[head], WAIT_S, &v);
        pc_rps_call_free(&ring[head]);
        head = (head + 1) % g.window;
        used--;
        done++;
        if (rc != PC_OK)
            goto out;
        check_value(&v, "a pipelined call's value");
    }
out:
    if (rc != PC_OK && atomic_fetch_add(&P.failed, 1) == 0)
        fprintf(stderr, "picos-bench-rps: a pipelined call: %s\n",
                pc_strerror(rc));
    while (used-- > 0) {
        pc_rps_call_free(&ring[head]);
        head = (head + 1) % g.window;
    }
    return NULL;
}

static void
pipelined(void)
{
    pc_spawn_opts o = {.flags = PC_TASK_JOINABLE};
    pc_ref refs[MAX_TASKS];
    pc_net_stats a, b;
    double t0;

    P.each = g.pipelined / g.tasks;
    P.extra = g.pipelined % g.tasks;
    double c0 = cpu_self(), s0 = cpu_of(g.svc);
    CHECK(pc_net_stats_get(&a));
    t0 = bench_now();
    for (int i = 0; i < g.tasks; i++)
        CHECK(pc_spawn(piper, i == 0 ? (void *)1 : NULL, &o, &refs[i]));
    for (int i = 0; i < g.tasks; i++)
        CHECK(pc_task_join(refs[i], -1, NULL));
    P.secs = bench_now() - t0;
    CHECK(pc_net_stats_get(&b));
    P.env_out = b.env_out - a.env_out;
    P.env_in = b.env_in - a.env_in;
    P.cpu_client = cpu_self() - c0;
    P.cpu_service = cpu_of(g.svc) - s0;
    if (atomic_load(&P.failed))
        die("rps-pipelined", PC_EFAILED);
}

/* The deadline row */
static struct {
    series over; /* each PC_ETIMEDOUT outcome's overshoot, µs */
    atomic_long taken, failed;
    long each, extra;
    char first[192]; /* the first failure; written by its task alone */
    long server[2];  /* bench.cancels' counts: PC_ETIMEDOUT, other */
    double secs;
} DL;

static pc_msg *
expirer(void *arg)
{
    long n = DL.each + (arg ? DL.extra : 0);

    for (long i = 0; i < n; i++) {
        struct pc_rps_call *k = NULL;
        pc_msg *m = new_req();
        const char *what = "pc_rps_call";
        double t0 = bench_now(), t1;
        pc_err rc = pc_rps_call(g_sleeper, &m, DL_S, &k);

        if (rc == PC_OK) {
            what = "pc_rps_finish";
            rc = pc_rps_finish(k, -1, NULL);
        }
        t1 = bench_now();
        pc_rps_call_free(&k);
        pc_msg_free(&m); /* still ours when the call failed */
        if (rc == PC_ETIMEDOUT && !strcmp(what, "pc_rps_finish"))
            DL.over.us[atomic_fetch_add(&DL.taken, 1)] =
                (t1 - (t0 + DL_S)) * 1e6;
        else if (atomic_fetch_add(&DL.failed, 1) == 0)
            snprintf(DL.first, sizeof DL.first, "%s: %s (%s)", what,
                     pc_strerror(rc), pc_rps_client_error(g_sleeper));
    }
    return NULL;
}

static void
deadline(void)
{
    int tasks = g.dl_calls < DL_FLIGHT ? (int)g.dl_calls : DL_FLIGHT;
    pc_spawn_opts o = {.flags = PC_TASK_JOINABLE};
    pc_ref refs[DL_FLIGHT];
    long want = g.dl_calls;
    pc_msg *m = NULL;
    const void *d;
    size_t len = 0;
    double t0;

    if (!(DL.over.us = calloc((size_t)g.dl_calls, sizeof *DL.over.us)))
        die("calloc", PC_ENOMEM);
    DL.each = g.dl_calls / tasks;
    DL.extra = g.dl_calls % tasks;
    t0 = bench_now();
    for (int i = 0; i < tasks; i++)
        CHECK(pc_spawn(expirer, i == 0 ? (void *)1 : NULL, &o, &refs[i]));
    for (int i = 0; i < tasks; i++)
        CHECK(pc_task_join(refs[i], -1, NULL));
    DL.secs = bench_now() - t0;
    DL.over.n = atomic_load(&DL.taken);
    qsort(DL.over.us, (size_t)DL.over.n, sizeof *DL.over.us, by_value);
    CHECK(pc_send_data(g_cancels, COUNT_T, &want, sizeof want));
    CHECK(pc_recv_type(COUNT_T, &m, 2 * WAIT_S));
    if (!(d = pc_msg_data(m, &len)) || len != sizeof DL.server)
        die("bench.cancels' answer", PC_EPROTO);
    memcpy(DL.server, d, sizeof DL.server);
    pc_msg_free(&m);
    if (atomic_load(&DL.failed))
        fprintf(stderr,
                "picos-bench-rps: %ld deadline-row call(s) failed, "
                "the first: %s\n",
                atomic_load(&DL.failed), DL.first);
}

static pc_msg *
driver(void *arg)
{
    (void)arg;
    for (int k = 0; k < NKIND; k++)
        if (!(S[k].us = calloc((size_t)g.calls, sizeof *S[k].us)))
            die("calloc", PC_ENOMEM);
    CHECK(pc_locate(PC_NAME_TASK, TASK, WAIT_S, &g_task));
    CHECK(pc_rps_locate(SERVICE, WAIT_S, &g_client));
    CHECK(pc_locate(PC_NAME_TASK, CANCELS, WAIT_S, &g_cancels));
    CHECK(pc_rps_locate(SLEEPER, WAIT_S, &g_sleeper));
    for (int k = 0; k < NKIND; k++)
        for (long i = 0; i < g.warmup; i++)
            once((kindt)k);
    for (long done = 0; done < g.calls;) {
        long n = g.calls - done < BLOCK ? g.calls - done : BLOCK;
        for (int k = 0; k < NKIND; k++)
            block((kindt)k, n);
        done += n;
    }
    for (int k = 0; k < NKIND; k++)
        qsort(S[k].us, (size_t)S[k].n, sizeof *S[k].us, by_value);
    pipelined();
    deadline();
    pc_rps_client_free(&g_sleeper);
    pc_rps_client_free(&g_client);
    pc_node_stop();
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* The table, as picos-bench prints it                                      */

typedef struct row {
    char label[128], figure[96], unit[32], target[32];
    const char *met;
    char note[1024];
} row;

#define NROWS 10
static row rows[NROWS];
static int nrows, goals, met;

static row *
add_row(const char *label, const char *unit)
{
    row *r = &rows[nrows++];

    snprintf(r->label, sizeof r->label, "%s", label);
    snprintf(r->unit, sizeof r->unit, "%s", unit);
    snprintf(r->target, sizeof r->target, "—");
    r->met = "—";
    return r;
}

/* r's target is `target`, met or not. */
static void
mark(row *r, const char *target, bool yes)
{
    bench_fmt(r->target, sizeof r->target, "%s", target);
    r->met = yes ? "yes" : "no";
    goals++;
    met += yes;
}

/* "≤ target" (at_most) or "≥ target" on r, met or not by `v`. */
static void
goal(row *r, bool at_most, double target, const char *shown, double v)
{
    char text[32];

    bench_fmt(text, sizeof text, "%s %s", at_most ? "≤" : "≥", shown);
    mark(r, text, at_most ? v <= target : v >= target);
}

static void
print_table(void)
{
    const char *v[NROWS][BENCH_COLS];

    for (int i = 0; i < nrows; i++) {
        const char *r[BENCH_COLS] = {rows[i].label, rows[i].figure,
                                     rows[i].unit, rows[i].target, rows[i].met};
        memcpy(v[i], r, sizeof r);
    }
    bench_print_table(v[0], nrows);
    printf("\n%d of %d targets met.\n\n", met, goals);
    for (int i = 0; i < nrows; i++)
        if (rows[i].note[0])
            printf("- %s: %s\n", rows[i].label, rows[i].note);
}

static double
mean(kindt k)
{
    return S[k].sum / (double)S[k].n;
}

static void
wire_note(row *r, kindt k)
{
    size_t used = strlen(r->note);

    bench_fmt(
        r->note + used, sizeof r->note - used,
        "; wire per round trip at the client: %.2f envelopes out, %.2f in; "
        "CPU per round trip: client %.1f µs, service node %.1f µs",
        (double)S[k].env_out / (double)S[k].n,
        (double)S[k].env_in / (double)S[k].n,
        S[k].cpu_client * 1e6 / (double)S[k].n,
        S[k].cpu_service * 1e6 / (double)S[k].n);
}

static void
deadline_rows(void)
{
    const series *o = &DL.over;
    long failed = atomic_load(&DL.failed);
    double top = o->n ? o->us[o->n - 1] / 1e3 : 0;
    char label[128];
    row *r;

    bench_fmt(
        label, sizeof label,
        "RPS deadline expiry: outcome past start + %.0f ms deadline, p50 / "
        "p99 / max",
        DL_S * 1e3);
    r = add_row(label, "ms");
    if (o->n)
        bench_fmt(r->figure, sizeof r->figure, "%.1f / %.1f / %.1f",
                  pct(o, 50) / 1e3, pct(o, 99) / 1e3, top);
    else
        bench_fmt(r->figure, sizeof r->figure, "—");
    mark(r, "≤ 50 (max)", o->n && !failed && top <= 50);
    bench_fmt(
        r->note, sizeof r->note,
        "%ld calls to \"%s\" (its call task sleeps %.0f s), %ld at once, "
        "each with the deadline %.0f ms (pc_rps_call) and its outcome taken "
        "by pc_rps_finish(call, -1); each one's lateness: when the outcome "
        "came minus (its pc_rps_call's start + the deadline); the target is "
        "on the max (no call may come late), and met only when every "
        "outcome is PC_ETIMEDOUT: %ld were, %ld failed%s%s; min %.1f ms; "
        "%.2f s in all; server-side cancellations: %ld of %ld",
        g.dl_calls, SLEEPER, SLEEP_S,
        g.dl_calls < DL_FLIGHT ? g.dl_calls : (long)DL_FLIGHT, DL_S * 1e3, o->n,
        failed, failed ? ", the first: " : "", failed ? DL.first : "",
        o->n ? o->us[0] / 1e3 : 0, DL.secs, DL.server[0], g.dl_calls);

    r = add_row("RPS deadline expiry: call tasks the service node ended at "
                "the deadline",
                "calls");
    bench_fmt(r->figure, sizeof r->figure, "%ld of %ld", DL.server[0],
              g.dl_calls);
    mark(r, "all", DL.server[0] == g.dl_calls && DL.server[1] == 0);
    bench_fmt(
        r->note, sizeof r->note,
        "server-side cancellations: %ld of %ld — PC_ETIMEDOUT outcomes "
        "counted by a task of the service node that pc_rps_monitor()s "
        "\"%s\", asked by the client after the last call (its answer waits "
        "for as many outcomes as calls, up to %.0f s); other outcomes: %ld",
        DL.server[0], g.dl_calls, SLEEPER, WAIT_S, DL.server[1]);
}

static void
make_rows(double load)
{
    const double task = mean(K_TASK);
    const char *what[NKIND] = {"task round trip", "call round trip",
                               "request round trip"};
    row *r;

    r = add_row("remote task round trip, 100 B (the baseline)", "µs");
    bench_fmt(r->figure, sizeof r->figure, "%.1f", task);
    bench_fmt(
        r->note, sizeof r->note,
        "a task sends a new %d-byte message to a task on the service node "
        "(pc_send), which sends it back; mean of %ld",
        SIZE, S[K_TASK].n);
    wire_note(r, K_TASK);

    r = add_row("RPS call round trip: pc_rps_call + pc_rps_finish, a task "
                "spawned per call",
                "× task rtt");
    bench_fmt(r->figure, sizeof r->figure, "%.2f (%.1f vs %.1f µs)",
              mean(K_CALL) / task, mean(K_CALL), task);
    goal(r, true, 1.3, "1.3", mean(K_CALL) / task);
    bench_fmt(
        r->note, sizeof r->note,
        "pc_rps_call() of a new %d-byte request to \"%s\" (returns once the "
        "call task runs), pc_rps_finish() for its value (the request echoed), "
        "pc_rps_call_free(); one at a time, mean of %ld",
        SIZE, SERVICE, S[K_CALL].n);
    wire_note(r, K_CALL);

    r = add_row("RPS request/reply round trip: pc_rps_request", "× task rtt");
    bench_fmt(r->figure, sizeof r->figure, "%.2f (%.1f vs %.1f µs)",
              mean(K_REQUEST) / task, mean(K_REQUEST), task);
    goal(r, true, 1.3, "1.3", mean(K_REQUEST) / task);
    bench_fmt(
        r->note, sizeof r->note,
        "pc_rps_request() of a new %d-byte request, one at a time, mean of "
        "%ld",
        SIZE, S[K_REQUEST].n);
    wire_note(r, K_REQUEST);

    for (int k = 0; k < NKIND; k++) {
        char label[96];
        bench_fmt(label, sizeof label, "%s, p50 / p99", what[k]);
        r = add_row(label, "µs");
        bench_fmt(r->figure, sizeof r->figure, "%.1f / %.1f", pct(&S[k], 50),
                  pct(&S[k], 99));
        bench_fmt(r->note, sizeof r->note,
                  "each of the %ld round trips timed on its own; min %.1f, p90 "
                  "%.1f, p99.9 %.1f, max %.1f µs",
                  S[k].n, S[k].us[0], pct(&S[k], 90), pct(&S[k], 99.9),
                  S[k].us[S[k].n - 1]);
    }

    r = add_row("RPS calls pipelined from one client node", "calls/s");
    bench_fmt(r->figure, sizeof r->figure, "%.0f",
              (double)g.pipelined / P.secs);
    goal(r, false, 50000, "50000", (double)g.pipelined / P.secs);
    bench_fmt(
        r->note, sizeof r->note,
        "%ld calls from %d tasks, each keeping up to %d accepted calls in "
        "flight (pc_rps_call; pc_rps_finish of the oldest when full) and "
        "one being accepted; %.3f s; wire at the client per call: %.2f "
        "envelopes out, %.2f in; CPU per call: client %.1f µs, service "
        "node %.1f µs",
        g.pipelined, g.tasks, g.window, P.secs,
        (double)P.env_out / (double)g.pipelined,
        (double)P.env_in / (double)g.pipelined,
        P.cpu_client * 1e6 / (double)g.pipelined,
        P.cpu_service * 1e6 / (double)g.pipelined);

    deadline_rows();

    printf("picos %s RPS benchmarks: registry, service node and client node "
           "on tcp://127.0.0.1, CURVE, %d worker%s per node; %ld cores, load "
           "average %.2f before the run%s\n\n",
           PICOS_VERSION, g.workers, g.workers > 1 ? "s" : "",
           sysconf(_SC_NPROCESSORS_ONLN), load,
           g.quick ? " (--quick: few round trips, figures only indicative)"
                   : "");
    print_table();
    printf("- all round-trip rows: interleaved blocks of %d (task, call, "
           "request, ...) after %ld untimed round trips of each kind; one run "
           "(the VM is noisy, ±40 %%)\n",
           BLOCK, g.warmup);
}

/* ------------------------------------------------------------------------ */

static void
usage(FILE *to)
{
    fprintf(to,
            "usage: picos-bench-rps [--quick] [--calls N] [--pipelined N] "
            "[--tasks N] [--window N] [--workers N] [--registry-bin PATH]\n"
            "  --quick         few round trips and calls (a smoke run)\n"
            "  --calls N       timed round trips of each kind (default %ld)\n"
            "  --pipelined N   calls of the pipelined row (default %ld)\n"
            "  --tasks N       client tasks of the pipelined row (default %d, "
            "at most %d)\n"
            "  --window N      calls in flight per task (default %d, at most "
            "%d)\n"
            "  --workers N     workers of each node (default %d)\n"
            "  --net-timeout S silence before a node is declared down, every "
            "node's (default 1; more under sanitizers and valgrind)\n"
            "  --registry-bin  the picos-registry program (default: beside "
            "this one, ../registry/picos-registry)\n",
            g.calls, g.pipelined, g.tasks, MAX_TASKS, g.window, MAX_WINDOW,
            g.workers);
}

int
main(int argc, char **argv)
{
    const char *registries = NULL, *secret = NULL;
    bool serving = false;
    double load = bench_load_average();
    pc_cluster_opts o = {0};
    char workers[16];
    ssize_t len;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool used = true;
        if (!strcmp(a, "--quick")) {
            g.quick = true, g.calls = 500, g.pipelined = 5000, g.warmup = 50;
            g.dl_calls = DL_QUICK;
            used = false;
        } else if (!strcmp(a, "--serve")) {
            serving = true, used = false;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!v) {
            usage(stderr);
            return 2;
        } else if (!strcmp(a, "--calls"))
            g.calls = atol(v);
        else if (!strcmp(a, "--pipelined"))
            g.pipelined = atol(v);
        else if (!strcmp(a, "--tasks"))
            g.tasks = atoi(v);
        else if (!strcmp(a, "--window"))
            g.window = atoi(v);
        else if (!strcmp(a, "--workers"))
            g.workers = atoi(v);
        else if (!strcmp(a, "--net-timeout") && atof(v) > 0)
            snprintf(g.timeout, sizeof g.timeout, "%s", v);
        else if (!strcmp(a, "--registry-bin"))
            snprintf(g.bin, sizeof g.bin, "%s", v);
        else if (!strcmp(a, "--registries"))
            registries = v;
        else if (!strcmp(a, "--secret-file"))
            secret = v;
        else {
            usage(stderr);
            return 2;
        }
        i += used;
    }
    if (g.calls < 1 || g.pipelined < 1 || g.tasks < 1 || g.tasks > MAX_TASKS ||
        g.window < 1 || g.window > MAX_WINDOW || g.workers < 1 ||
        g.workers > 64) {
        usage(stderr);
        return 2;
    }
    if (serving)
        return serve(registries, secret);

    if ((len = readlink("/proc/self/exe", g.self, sizeof g.self - 1)) < 0)
        die("readlink /proc/self/exe", 0);
    g.self[len] = '\0';
    if (!g.bin[0]) { /* beside this program: build/apps/registry/ */
        char dir[sizeof g.self];
        memcpy(dir, g.self, sizeof dir);
        *strrchr(dir, '/') = '\0';
        snprintf(g.bin, sizeof g.bin, "%s/../registry/picos-registry", dir);
    }
    if (!mkdtemp(g.dir))
        die("mkdtemp", 0);
    atexit(cleanup);
    snprintf(g.data, sizeof g.data, "%s/data", g.dir);
    snprintf(g.secret, sizeof g.secret, "%s/secret", g.dir);
    if (mkdir(g.data, 0700))
        die("the data dir", 0);
    if (!bench_write_secret(g.secret))
        die("the secret", 0);
    snprintf(workers, sizeof workers, "%d", g.workers);
    {
        /* the --net-timeout pairs go last: cut off when not given */
        char *reg[] = {g.bin,        "--listen",  "tcp://127.0.0.1:0",
                       "--data-dir", g.data,      "--secret-file",
                       g.secret,     "--timeout", g.timeout,
                       NULL};
        char *svc[] = {g.self,
                       "--serve",
                       "--registries",
                       g.reg_ep,
                       "--secret-file",
                       g.secret,
                       "--workers",
                       workers,
                       "--net-timeout",
                       g.timeout,
                       NULL};
        if (!g.timeout[0])
            reg[7] = svc[8] = NULL;
        g.reg = bench_start_child("picos-bench-rps", reg, g.reg_ep,
                                  sizeof g.reg_ep);
        g.svc = bench_start_child("picos-bench-rps", svc, g.svc_ep,
                                  sizeof g.svc_ep);
    }

    o.registries = g.reg_ep;
    o.net.secret_file = g.secret;
    o.node.workers = g.workers;
    o.net.timeout = atof(g.timeout);
    o.join_timeout = WAIT_S;
    CHECK(pc_cluster_start(&o));
    fprintf(stderr, "picos-bench-rps: registry %s, service node %s\n", g.reg_ep,
            g.svc_ep);
    CHECK(pc_spawn(driver, NULL, NULL, NULL));
    CHECK(pc_node_run());
    make_rows(load);
    return 0;
}
