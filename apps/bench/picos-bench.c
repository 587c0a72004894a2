/* picos-bench — the runtime's figures, printed as one Markdown table.
 *
 * Each benchmark is a function that starts its own node with the worker
 * count it needs, runs a driver task that times only the measured part with
 * pc_now(), and stops the node again. The latency and throughput ones do this
 * three times (three node lifetimes) and keep the best run; the memory ones
 * run once and read the resident set from /proc/self/statm before and after.
 *
 * By default every benchmark runs in a forked child: a crash or a hang (each
 * child has an alarm) becomes a row saying so instead of ending the table,
 * and the memory figures are not blurred by what earlier benchmarks left in
 * the allocator. The child hands its figure back through a pipe; the parent
 * prints the table at the end. --no-fork runs everything in-process, which is
 * what you want under perf or callgrind.
 *
 * Driver tasks hand results back through file-static structs: the node's
 * threads are joined by pc_node_run() before main() reads them. A failed
 * picos call ends the process with a message (the child's exit status then
 * marks the row as failed); the exit status is 0 when every benchmark ran,
 * whether or not it met its target.
 */
#define _XOPEN_SOURCE 700

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "picos/picos.h"

#define RUNS 3 /* node lifetimes per timed benchmark; the best is kept */

static int g_quick;   /* --quick: small sizes */
static int g_workers; /* --workers N: 0 means each benchmark's default */

/* Full size, or the --quick one. */
#define SIZE(full, quick) (g_quick ? (quick) : (full))

static void
fail(const char *what, int rc)
{
    fprintf(stderr, "picos-bench: %s: %s (%s)\n", what, pc_err_name(rc),
            pc_strerror(rc));
    _exit(2);
}

#define CHECK(call)                                                            \
    do {                                                                       \
        int rc_ = (call);                                                      \
        if (rc_ != PC_OK)                                                      \
            fail(#call, rc_);                                                  \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Results                                                                  */

typedef struct result {
    double figure;
    char note[480];
} result;

static void note(result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
note(result *r, const char *fmt, ...)
{
    size_t used = strlen(r->note);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(r->note + used, sizeof r->note - used, fmt, ap);
    va_end(ap);
}

/* A count >= 0 as "1,000,000" into buf (32 bytes); returns buf. */
static char *
count_str(long n, char *buf)
{
    char raw[24];
    int len = snprintf(raw, sizeof raw, "%ld", n);
    int j = 0;

    for (int i = 0; i < len; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            buf[j++] = ',';
        buf[j++] = raw[i];
    }
    buf[j] = '\0';
    return buf;
}

static double
min_of(const double *t, int n)
{
    double m = t[0];

    for (int i = 1; i < n; i++)
        if (t[i] < m)
            m = t[i];
    return m;
}

/* Adds "runs: a / b / c unit" (each run scaled by `scale`) to the note. */
static void
note_runs(result *r, const double *t, double scale, const char *unit)
{
    note(r, "; runs:");
    for (int i = 0; i < RUNS; i++)
        note(r, "%s %.4g", i ? " /" : "", t[i] * scale);
    note(r, " %s", unit);
}

static long
rss_bytes(void)
{
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (!f || fscanf(f, "%ld %ld", &size, &resident) != 2) {
        fprintf(stderr, "picos-bench: can't read /proc/self/statm\n");
        _exit(2);
    }
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

static double
peak_rss_mb(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0; /* ru_maxrss is in KiB on Linux */
}

/* Start a node of `workers` workers, run fn(arg) on worker `on` as the
 * driver, and return when every non-daemon task has ended. */
static void
run_node(int workers, int on, pc_task_fn fn, void *arg)
{
    pc_node_opts o = {0};
    pc_spawn_opts so = {0};

    o.workers = workers;
    so.worker = PC_WORKER(on);
    so.name = "driver";
    CHECK(pc_node_start(&o));
    CHECK(pc_spawn(fn, arg, &so, NULL));
    CHECK(pc_node_run());
}

/* Receive one message and drop it (a "done" notice). */
static void
recv_one(void)
{
    pc_msg *m;

    CHECK(pc_recv(&m, -1));
    pc_msg_free(&m);
}

/* ------------------------------------------------------------------------ */
/* Ping-pong: the echo sends the very message it received back; it owns it. */

static struct {
    long n, warm;
    double secs;
} pp;

static pc_msg *
pp_echo(void *arg)
{
    (void)arg;
    for (long i = 0; i < pp.warm + pp.n; i++) {
        pc_msg *m;
        CHECK(pc_recv(&m, -1));
        CHECK(pc_send(pc_msg_sender(m), &m));
    }
    return NULL;
}

static void
pp_rounds(pc_ref echo, pc_msg **m, long n)
{
    for (long i = 0; i < n; i++) {
        CHECK(pc_send(echo, m));
        CHECK(pc_recv(m, -1));
    }
}

static pc_msg *
pp_driver(void *arg)
{
    pc_ref echo;
    pc_msg *m;

    (void)arg;
    CHECK(pc_spawn(pp_echo, NULL, NULL, &echo));
    CHECK(pc_msg_new(&m, "ping", NULL, 0));
    pp_rounds(echo, &m, pp.warm);
    double t0 = pc_now();
    pp_rounds(echo, &m, pp.n);
    pp.secs = pc_now() - t0;
    pc_msg_free(&m);
    return NULL;
}

static void
bench_pingpong(result *r)
{
    double t[RUNS];
    char b[32];

    pp.n = SIZE(1000000, 20000);
    pp.warm = pp.n / 100;
    for (int k = 0; k < RUNS; k++) {
        run_node(1, 0, pp_driver, NULL);
        t[k] = pp.secs / pp.n;
    }
    r->figure = min_of(t, RUNS) * 1e6;
    note(r, "%s round trips, the echo returns the received message",
         count_str(pp.n, b));
    note_runs(r, t, 1e6, "µs");
}

/* ------------------------------------------------------------------------ */
/* Lock hand-off: two tasks on one worker take turns on one pc_lock. Each
 * releases while the other is queued on the lock, so every release hands it
 * over and every acquire after it waits: two hand-offs per driver round. */

static struct {
    long n, warm;
    pc_lock *l;
    bool stop; /* read and written under the lock */
    double secs;
} lk;

static pc_msg *
lk_peer(void *arg)
{
    (void)arg;
    for (;;) {
        CHECK(pc_lock_acquire(lk.l, -1));
        bool stop = lk.stop;
        CHECK(pc_lock_release(lk.l));
        if (stop)
            return NULL;
    }
}

static void
lk_rounds(long n)
{
    for (long i = 0; i < n; i++) {
        CHECK(pc_lock_release(lk.l));
        CHECK(pc_lock_acquire(lk.l, -1));
    }
}

static pc_msg *
lk_driver(void *arg)
{
    pc_spawn_opts so = {0};
    pc_ref peer;

    (void)arg;
    so.flags = PC_TASK_JOINABLE;
    CHECK(pc_lock_new(&lk.l, false));
    lk.stop = false;
    CHECK(pc_lock_acquire(lk.l, 0));
    CHECK(pc_spawn(lk_peer, NULL, &so, &peer));
    CHECK(pc_yield()); /* the peer runs and queues on the lock */
    lk_rounds(lk.warm);
    double t0 = pc_now();
    lk_rounds(lk.n);
    lk.secs = pc_now() - t0;
    lk.stop = true;
    CHECK(pc_lock_release(lk.l)); /* to the peer, which then ends */
    CHECK(pc_task_join(peer, -1, NULL));
    pc_lock_free(&lk.l);
    return NULL;
}

static void
bench_lock_handoff(result *r)
{
    double t[RUNS];
    char b[32];

    lk.n = SIZE(1000000, 20000);
    lk.warm = lk.n / 100;
    for (int k = 0; k < RUNS; k++) {
        run_node(1, 0, lk_driver, NULL);
        t[k] = lk.secs / (2.0 * (double)lk.n);
    }
    r->figure = min_of(t, RUNS) * 1e6;
    note(r, "%s hand-offs, each release to the task queued on the lock",
         count_str(2 * lk.n, b));
    note_runs(r, t, 1e6, "µs");
}

/* ------------------------------------------------------------------------ */
/* Ring: task i forwards the token to task i+1; the driver is task 0. The
 * same message goes all the way round. Round 0 is a warm-up (first run of
 * every task). */

static struct {
    int n;
    long rounds;
    pc_ref *refs;
    double secs;
} rg;

static pc_msg *
ring_member(void *arg)
{
    const pc_ref *next = arg; /* read after the first token: all spawned */

    for (long r = 0; r <= rg.rounds; r++) {
        pc_msg *m;
        CHECK(pc_recv(&m, -1));
        CHECK(pc_send(*next, &m));
    }
    return NULL;
}

static pc_msg *
ring_driver(void *arg)
{
    pc_msg *m;
    double t0 = 0;

    (void)arg;
    rg.refs = calloc((size_t)rg.n, sizeof *rg.refs);
    if (!rg.refs)
        fail("calloc", PC_ENOMEM);
    rg.refs[0] = pc_self();
    for (int i = rg.n - 1; i >= 1; i--)
        CHECK(
            pc_spawn(ring_member, &rg.refs[(i + 1) % rg.n], NULL, &rg.refs[i]));
    CHECK(pc_msg_new(&m, "token", NULL, 0));
    for (long r = 0; r <= rg.rounds; r++) {
        if (r == 1)
            t0 = pc_now();
        CHECK(pc_send(rg.refs[1], &m));
        CHECK(pc_recv(&m, -1));
    }
    rg.secs = pc_now() - t0;
    pc_msg_free(&m);
    free(rg.refs);
    return NULL;
}

static void
bench_ring(result *r)
{
    double t[RUNS];
    char b1[32], b2[32];

    rg.n = 1000;
    rg.rounds = SIZE(1000, 20);
    long hops = rg.n * rg.rounds;
    for (int k = 0; k < RUNS; k++) {
        run_node(1, 0, ring_driver, NULL);
        t[k] = rg.secs / (double)hops;
    }
    r->figure = min_of(t, RUNS) * 1e6;
    note(r, "%s tasks, %s hops", count_str(rg.n, b1), count_str(hops, b2));
    note_runs(r, t, 1e6, "µs");
}

/* ------------------------------------------------------------------------ */
/* Spawn + exit: the driver spawns all N before any runs (W=1: they run when
 * it blocks); the last one to end tells it. Light actors are each sent a
 * fresh message and stop on it. */

static struct {
    long n;
    bool actors;
    atomic_long ended;
    pc_ref driver;
    double secs;
} sp;

/* Called once by each task or actor as it ends. */
static void
sp_ended(void)
{
    if (atomic_fetch_add_explicit(&sp.ended, 1, memory_order_relaxed) + 1 ==
        sp.n)
        CHECK(pc_send_data(sp.driver, "done", NULL, 0));
}

static pc_msg *
sp_task(void *arg)
{
    (void)arg;
    sp_ended();
    return NULL;
}

static int
sp_actor(void *state, pc_msg *msg)
{
    (void)state;
    (void)msg;
    sp_ended();
    return PC_ACTOR_STOP;
}

static pc_msg *
sp_driver(void *arg)
{
    (void)arg;
    atomic_store(&sp.ended, 0);
    sp.driver = pc_self();
    double t0 = pc_now();
    for (long i = 0; i < sp.n; i++) {
        if (sp.actors) {
            pc_ref a;
            CHECK(pc_actor_spawn(sp_actor, NULL, NULL, NULL, &a));
            CHECK(pc_send_data(a, "go", NULL, 0));
        } else {
            CHECK(pc_spawn(sp_task, NULL, NULL, NULL));
        }
    }
    recv_one();
    sp.secs = pc_now() - t0;
    return NULL;
}

static void
spawn_bench(result *r, bool actors)
{
    double t[RUNS];
    char b[32];

    sp.n = SIZE(1000000, 20000);
    sp.actors = actors;
    for (int k = 0; k < RUNS; k++) {
        run_node(1, 0, sp_driver, NULL);
        t[k] = sp.secs;
    }
    r->figure = min_of(t, RUNS) * 1e6 / sp.n; /* s per 1M */
    note(r, "%s %s%s; peak RSS %.0f MiB", count_str(sp.n, b),
         actors ? "actors, one new message each"
                : "tasks, all spawned before the first runs",
         g_quick ? " (scaled to 1M)" : "", peak_rss_mb());
    note_runs(r, t, 1e3, "ms");
}

static void
bench_spawn_tasks(result *r)
{
    spawn_bench(r, false);
}

static void
bench_spawn_actors(result *r)
{
    spawn_bench(r, true);
}

/* ------------------------------------------------------------------------ */
/* Memory of idle actors and tasks. They are daemons, so the node ends (and
 * terminates them) when the driver returns. */

static struct {
    long n;
    unsigned flags;
    atomic_long ready;
    long before, after;
} rs;

static int
idle_handler(void *state, pc_msg *msg)
{
    (void)state;
    (void)msg;
    return PC_ACTOR_CONTINUE;
}

static pc_msg *
rss_actors_driver(void *arg)
{
    pc_spawn_opts o = {0};
    pc_ref last = PC_REF_NIL;

    (void)arg;
    o.flags = PC_TASK_DAEMON;
    rs.before = rss_bytes();
    for (long i = 0; i < rs.n; i++)
        CHECK(pc_actor_spawn(idle_handler, NULL, NULL, &o, &last));
    CHECK(pc_yield()); /* let the worker settle whatever spawn deferred */
    if (!pc_alive(last))
        fail("pc_alive(last idle actor)", PC_ENOENT);
    rs.after = rss_bytes();
    return NULL;
}

static void
bench_rss_actors(result *r)
{
    char b[32];

    rs.n = SIZE(1000000, 20000);
    run_node(1, 0, rss_actors_driver, NULL);
    double delta = (double)(rs.after - rs.before);
    r->figure = delta * (1e6 / rs.n) / (1024.0 * 1024.0); /* MiB per 1M */
    note(r, "%s actors: RSS %.1f -> %.1f MiB, %.0f bytes per actor%s",
         count_str(rs.n, b), rs.before / 1048576.0, rs.after / 1048576.0,
         delta / rs.n, g_quick ? " (scaled to 1M)" : "");
}

static pc_msg *
idle_task(void *arg)
{
    pc_msg *m;

    (void)arg;
    atomic_fetch_add_explicit(&rs.ready, 1, memory_order_relaxed);
    if (pc_recv(&m, -1) == PC_OK)
        pc_msg_free(&m);
    return NULL;
}

static pc_msg *
rss_tasks_driver(void *arg)
{
    pc_spawn_opts o = {0};

    (void)arg;
    o.flags = PC_TASK_DAEMON | rs.flags;
    atomic_store(&rs.ready, 0);
    rs.before = rss_bytes();
    for (long i = 0; i < rs.n; i++)
        CHECK(pc_spawn(idle_task, NULL, &o, NULL));
    /* Every task must have run up to its pc_recv(): one yield is enough on
     * one FIFO worker, the loop makes it so on any. */
    while (atomic_load_explicit(&rs.ready, memory_order_relaxed) < rs.n)
        CHECK(pc_yield());
    rs.after = rss_bytes();
    return NULL;
}

static void
rss_tasks(result *r, unsigned flags)
{
    char b[32];

    rs.n = SIZE(100000, 10000);
    rs.flags = flags;
    run_node(1, 0, rss_tasks_driver, NULL);
    double delta = (double)(rs.after - rs.before);
    r->figure = delta / rs.n / 1024.0;
    note(r, "%s tasks in pc_recv(): RSS %.1f -> %.1f MiB", count_str(rs.n, b),
         rs.before / 1048576.0, rs.after / 1048576.0);
}

static void
bench_rss_tasks(result *r)
{
    rss_tasks(r, 0);
}

static void
bench_rss_tasks_small(result *r)
{
    rss_tasks(r, PC_TASK_SMALL);
}

/* ------------------------------------------------------------------------ */
/* N:1 mailbox. Senders yield every BATCH messages, so they interleave, and
 * hold back while more than WINDOW messages are unread, so a receiver that
 * is slower than 100 senders (W=2) doesn't turn the run into a test of
 * memory. They hold back by sleeping, not by yielding in a loop: a spinning
 * worker would take CPU from the receiver on a busy 2-core machine. With
 * W=1 the window is never reached. The receiver checks FIFO order per
 * sender. */

#define MB_BATCH 256
#define MB_WINDOW (1L << 16)

typedef struct mb_payload {
    int sender;
    long seq;
} mb_payload;

static struct {
    int senders, workers;
    long per_sender;
    pc_ref receiver;
    atomic_long sent, received;
    double secs;
} mb;

static pc_msg *
mb_sender(void *arg)
{
    mb_payload p = {(int)(intptr_t)arg, 0};

    for (p.seq = 0; p.seq < mb.per_sender; p.seq++) {
        CHECK(pc_send_data(mb.receiver, "n", &p, sizeof p));
        if (p.seq % MB_BATCH == MB_BATCH - 1) {
            long s = atomic_fetch_add_explicit(&mb.sent, MB_BATCH,
                                               memory_order_relaxed);
            while (
                s - atomic_load_explicit(&mb.received, memory_order_relaxed) >
                MB_WINDOW)
                CHECK(pc_sleep(1e-4));
            CHECK(pc_yield());
        }
    }
    return NULL;
}

static pc_msg *
mb_receiver(void *arg)
{
    pc_spawn_opts o = {0};
    long total = mb.senders * mb.per_sender;
    long *next = calloc((size_t)mb.senders, sizeof *next);

    (void)arg;
    if (!next)
        fail("calloc", PC_ENOMEM);
    atomic_store(&mb.sent, 0);
    atomic_store(&mb.received, 0);
    mb.receiver = pc_self();
    o.worker = PC_WORKER(mb.workers - 1); /* W=2: the other worker */
    double t0 = pc_now();
    for (int i = 0; i < mb.senders; i++)
        CHECK(pc_spawn(mb_sender, (void *)(intptr_t)i, &o, NULL));
    for (long got = 0; got < total; got++) {
        pc_msg *m;
        mb_payload p;
        size_t len;

        CHECK(pc_recv(&m, -1));
        const void *data = pc_msg_data(m, &len);
        if (len != sizeof p)
            fail("N:1 mailbox: unexpected message", PC_EPROTO);
        memcpy(&p, data, sizeof p);
        if (p.sender < 0 || p.sender >= mb.senders || p.seq != next[p.sender]++)
            fail("N:1 mailbox: message out of order", PC_EPROTO);
        pc_msg_free(&m);
        if (got % 1024 == 0)
            atomic_store_explicit(&mb.received, got, memory_order_relaxed);
    }
    mb.secs = pc_now() - t0;
    free(next);
    return NULL;
}

static void
mailbox(result *r, int workers)
{
    double t[RUNS];
    char b[32];

    mb.senders = 100;
    mb.per_sender = SIZE(50000, 1000);
    mb.workers = workers;
    long total = mb.senders * mb.per_sender;
    for (int k = 0; k < RUNS; k++) {
        run_node(workers, 0, mb_receiver, NULL);
        t[k] = mb.secs;
    }
    r->figure = total / min_of(t, RUNS) / 1e6;
    note(r, "100 senders x %s messages (new 16-byte message each)%s",
         count_str(mb.per_sender, b),
         workers > 1 ? ", senders on worker 1, receiver on worker 0" : "");
    note_runs(r, t, 1e3, "ms");
}

static void
bench_mailbox_w1(result *r)
{
    mailbox(r, 1);
}

static void
bench_mailbox_w2(result *r)
{
    mailbox(r, 2);
}

/* ------------------------------------------------------------------------ */
/* Parallel CPU work: 2 x 32 equal tasks placed round-robin (PC_WORKER_ANY). */

static struct {
    int tasks;
    long iters;
    atomic_long done;
    atomic_ulong sink; /* keeps the work from being optimised away */
    pc_ref driver;
    double secs;
} par;

static uint64_t
par_work(uintptr_t seed)
{
    uint64_t x = 0x9E3779B97F4A7C15ull + seed;

    for (long i = 0; i < par.iters; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    return x;
}

static pc_msg *
par_worker(void *arg)
{
    atomic_fetch_xor_explicit(&par.sink, par_work((uintptr_t)arg),
                              memory_order_relaxed);
    if (atomic_fetch_add_explicit(&par.done, 1, memory_order_acq_rel) + 1 ==
        par.tasks)
        CHECK(pc_send_data(par.driver, "done", NULL, 0));
    return NULL;
}

static pc_msg *
par_driver(void *arg)
{
    pc_spawn_opts o = {0};

    (void)arg;
    o.worker = PC_WORKER_ANY;
    atomic_store(&par.done, 0);
    par.driver = pc_self();
    double t0 = pc_now();
    for (int i = 0; i < par.tasks; i++)
        CHECK(pc_spawn(par_worker, (void *)(intptr_t)i, &o, NULL));
    recv_one();
    par.secs = pc_now() - t0;
    return NULL;
}

/* The same work on plain threads, no picos: what the machine gives right
 * now (other load on a 2-core box shows here first). */
static void *
par_thread(void *arg)
{
    int w = (int)(intptr_t)arg >> 16, n = (int)(intptr_t)arg & 0xffff;

    for (int i = w; i < par.tasks; i += n)
        atomic_fetch_xor_explicit(&par.sink, par_work((uintptr_t)i),
                                  memory_order_relaxed);
    return NULL;
}

static double
par_threads(int n)
{
    pthread_t th[64];

    if (n > 64)
        n = 64;
    double t0 = pc_now();
    for (int i = 0; i < n; i++)
        if (pthread_create(&th[i], NULL, par_thread,
                           (void *)(intptr_t)(i << 16 | n)) != 0)
            fail("pthread_create", PC_ESYS);
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    return pc_now() - t0;
}

static void
bench_parallel(result *r)
{
    int w = g_workers ? g_workers : 2;
    double t1[RUNS], tw[RUNS];
    char b[32];

    par.tasks = 64;
    par.iters = SIZE(2000000, 50000);
    for (int k = 0; k < RUNS; k++) {
        run_node(1, 0, par_driver, NULL);
        t1[k] = par.secs;
        run_node(w, 0, par_driver, NULL);
        tw[k] = par.secs;
    }
    double best1 = min_of(t1, RUNS), bestw = min_of(tw, RUNS);
    r->figure = best1 / bestw;
    note(r, "%d tasks x %s xorshift steps: W=1 %.1f ms, W=%d %.1f ms",
         par.tasks, count_str(par.iters, b), best1 * 1e3, w, bestw * 1e3);
    for (int k = 0; k < RUNS; k++) {
        t1[k] = par_threads(1);
        tw[k] = par_threads(w);
    }
    note(r, "; the same work on %d plain threads, now: %.2f×", w,
         min_of(t1, RUNS) / min_of(tw, RUNS));
}

/* ------------------------------------------------------------------------ */
/* Savina micro set. Messages carry a small struct; the kind says what it
 * is. Actor-based benchmarks use light actors, the others tasks. Workers: 1
 * unless --workers says otherwise; with more, peers are spread round-robin. */

enum {
    K_START = 1,
    K_PING,
    K_PONG,
    K_INC,
    K_GET,
    K_RESULT,
    K_WORK,
    K_DONE,
    K_STOP
};

typedef struct sv_msg {
    int kind;
    int from;
    long value;
} sv_msg;

static int
sv_workers(void)
{
    return g_workers ? g_workers : 1;
}

static pc_spawn_opts
sv_place(void)
{
    pc_spawn_opts o = {0};

    o.worker = sv_workers() > 1 ? PC_WORKER_ANY : PC_WORKER_SELF;
    return o;
}

static pc_err
sv_try_send(pc_ref to, int kind, int from, long value)
{
    sv_msg p = {kind, from, value};

    return pc_send_data(to, "sv", &p, sizeof p);
}

static void
sv_send(pc_ref to, int kind, int from, long value)
{
    CHECK(sv_try_send(to, kind, from, value));
}

static sv_msg
sv_get(const pc_msg *m)
{
    sv_msg p = {0};
    size_t len;
    const void *d = pc_msg_data(m, &len);

    if (len != sizeof p)
        fail("savina: unexpected message", PC_EPROTO);
    memcpy(&p, d, sizeof p);
    return p;
}

/* Receive (tasks) and unpack. */
static sv_msg
sv_recv(void)
{
    pc_msg *m;

    CHECK(pc_recv(&m, -1));
    sv_msg p = sv_get(m);
    pc_msg_free(&m);
    return p;
}

/* The tiny computation Savina's fork-join benchmarks do per message. */
static uint64_t
sv_compute(uint64_t x)
{
    for (int i = 0; i < 8; i++)
        x = x * 6364136223846793005ull + 1442695040888963407ull;
    return x;
}

/* Shared by the Savina benchmarks: sizes, refs, counters, the time. */
static struct {
    long n;     /* pings, messages, passes or actors */
    int actors; /* actors or tasks taking part */
    pc_ref driver, a, b;
    pc_ref *refs; /* one per actor or task */
    void *state;  /* one state struct per actor */
    atomic_long count;
    double secs;
} sv;

/* Run driver `fn` RUNS times; the figure is the best time in ms. The refs
 * and actor states live outside the nodes, so nothing is freed while an
 * actor or task may still use it. */
static void
sv_run(result *r, pc_task_fn fn, size_t state_size)
{
    double t[RUNS];

    sv.refs = calloc((size_t)sv.actors + 1, sizeof *sv.refs);
    sv.state = calloc((size_t)sv.actors + 1, state_size ? state_size : 1);
    if (!sv.refs || !sv.state)
        fail("calloc", PC_ENOMEM);
    for (int k = 0; k < RUNS; k++) {
        run_node(sv_workers(), 0, fn, NULL);
        t[k] = sv.secs;
    }
    free(sv.refs);
    free(sv.state);
    r->figure = min_of(t, RUNS) * 1e3;
    note_runs(r, t, 1e3, "ms");
}

/* PingPong: two tasks, a new message each way. */

static pc_msg *
svpp_pong(void *arg)
{
    (void)arg;
    for (;;) {
        sv_msg p = sv_recv();
        if (p.kind == K_STOP)
            return NULL;
        sv_send(sv.driver, K_PONG, 0, p.value);
    }
}

static pc_msg *
svpp_driver(void *arg)
{
    pc_spawn_opts o = {0};
    pc_ref pong;

    (void)arg;
    o.worker = PC_WORKER(sv_workers() > 1 ? 1 : 0);
    sv.driver = pc_self();
    CHECK(pc_spawn(svpp_pong, NULL, &o, &pong));
    double t0 = pc_now();
    for (long i = 0; i < sv.n; i++) {
        sv_send(pong, K_PING, 0, i);
        if (sv_recv().value != i)
            fail("savina pingpong: wrong pong", PC_EPROTO);
    }
    sv.secs = pc_now() - t0;
    sv_send(pong, K_STOP, 0, 0);
    return NULL;
}

static void
bench_sv_pingpong(result *r)
{
    char b[32];

    sv.n = SIZE(40000, 4000);
    note(r, "%s pings", count_str(sv.n, b));
    sv_run(r, svpp_driver, 0);
}

/* Counting: a producer actor sends N increments to a counter actor, then
 * asks for the count. */

static int
svc_counter(void *state, pc_msg *msg)
{
    long *count = state;
    sv_msg p = sv_get(msg);

    if (p.kind == K_INC) {
        ++*count;
        return PC_ACTOR_CONTINUE;
    }
    sv_send(sv.b, K_RESULT, 0, *count); /* K_GET */
    return PC_ACTOR_STOP;
}

static int
svc_producer(void *state, pc_msg *msg)
{
    sv_msg p = sv_get(msg);

    (void)state;
    if (p.kind == K_START) {
        for (long i = 0; i < sv.n; i++)
            sv_send(sv.a, K_INC, 0, 0);
        sv_send(sv.a, K_GET, 0, 0);
        return PC_ACTOR_CONTINUE;
    }
    if (p.value != sv.n) /* K_RESULT */
        fail("savina counting: wrong count", PC_EPROTO);
    sv_send(sv.driver, K_DONE, 0, 0);
    return PC_ACTOR_STOP;
}

static pc_msg *
svc_driver(void *arg)
{
    pc_spawn_opts o = sv_place();
    long count = 0;

    (void)arg;
    sv.driver = pc_self();
    CHECK(pc_actor_spawn(svc_counter, &count, NULL, &o, &sv.a));
    CHECK(pc_actor_spawn(svc_producer, NULL, NULL, &o, &sv.b));
    double t0 = pc_now();
    sv_send(sv.b, K_START, 0, 0);
    (void)sv_recv();
    sv.secs = pc_now() - t0;
    return NULL;
}

static void
bench_sv_counting(result *r)
{
    char b[32];

    sv.n = SIZE(1000000, 20000);
    note(r, "%s messages to a counter actor", count_str(sv.n, b));
    sv_run(r, svc_driver, 0);
}

/* ThreadRing: a token with a count goes round a ring of tasks, one hop per
 * count; whoever gets 0 tells the driver and sends STOP round the ring. */

static pc_msg *
svtr_member(void *arg)
{
    const pc_ref *next = arg; /* read after the first message: all spawned */

    for (;;) {
        sv_msg p = sv_recv();
        if (p.kind == K_STOP) {
            (void)sv_try_send(*next, K_STOP, 0, 0); /* may have ended */
            return NULL;
        }
        if (p.value == 0) {
            sv_send(sv.driver, K_DONE, 0, 0);
            sv_send(*next, K_STOP, 0, 0);
            return NULL;
        }
        sv_send(*next, K_PING, 0, p.value - 1);
    }
}

static pc_msg *
svtr_driver(void *arg)
{
    pc_spawn_opts o = sv_place();

    (void)arg;
    sv.driver = pc_self();
    for (int i = sv.actors - 1; i >= 0; i--)
        CHECK(pc_spawn(svtr_member, &sv.refs[(i + 1) % sv.actors], &o,
                       &sv.refs[i]));
    double t0 = pc_now();
    sv_send(sv.refs[0], K_PING, 0, sv.n);
    (void)sv_recv();
    sv.secs = pc_now() - t0;
    return NULL; /* the ring still reads sv.refs while STOP goes round */
}

static void
bench_sv_threadring(result *r)
{
    char b[32];

    sv.actors = 100;
    sv.n = SIZE(100000, 10000);
    note(r, "100 tasks, %s token passes", count_str(sv.n, b));
    sv_run(r, svtr_driver, 0);
}

/* Fork-join throughput: the driver sends N messages to each of K actors;
 * each does a tiny computation per message and reports after its N-th. */

typedef struct fj_state {
    long count;
    uint64_t acc;
} fj_state;

static int
svfjt_actor(void *state, pc_msg *msg)
{
    fj_state *st = state;

    (void)msg;
    st->acc = sv_compute(st->acc + (uint64_t)st->count);
    if (++st->count < sv.n)
        return PC_ACTOR_CONTINUE;
    sv_send(sv.driver, K_DONE, 0, 0);
    return PC_ACTOR_STOP;
}

static pc_msg *
svfjt_driver(void *arg)
{
    pc_spawn_opts o = sv_place();
    fj_state *st = sv.state;

    (void)arg;
    memset(st, 0, (size_t)sv.actors * sizeof *st);
    sv.driver = pc_self();
    for (int a = 0; a < sv.actors; a++)
        CHECK(pc_actor_spawn(svfjt_actor, &st[a], NULL, &o, &sv.refs[a]));
    double t0 = pc_now();
    for (long i = 0; i < sv.n; i++)
        for (int a = 0; a < sv.actors; a++)
            sv_send(sv.refs[a], K_WORK, 0, i);
    for (int a = 0; a < sv.actors; a++)
        (void)sv_recv();
    sv.secs = pc_now() - t0;
    return NULL;
}

static void
bench_sv_fjthroughput(result *r)
{
    char b[32];

    sv.actors = 60;
    sv.n = SIZE(10000, 1000);
    note(r, "60 actors x %s messages", count_str(sv.n, b));
    sv_run(r, svfjt_driver, sizeof(fj_state));
}

/* Fork-join creation: N actors, each created, sent one message, ending on
 * it; the last one to end tells the driver. */

static int
svfjc_actor(void *state, pc_msg *msg)
{
    static _Thread_local uint64_t acc;

    (void)state;
    acc = sv_compute(acc + (uint64_t)sv_get(msg).value);
    if (atomic_fetch_add_explicit(&sv.count, 1, memory_order_acq_rel) + 1 ==
        sv.n)
        sv_send(sv.driver, K_DONE, 0, (long)(acc & 1));
    return PC_ACTOR_STOP;
}

static pc_msg *
svfjc_driver(void *arg)
{
    pc_spawn_opts o = sv_place();

    (void)arg;
    sv.driver = pc_self();
    atomic_store(&sv.count, 0);
    double t0 = pc_now();
    for (long i = 0; i < sv.n; i++) {
        pc_ref a;
        CHECK(pc_actor_spawn(svfjc_actor, NULL, NULL, &o, &a));
        sv_send(a, K_WORK, 0, i);
    }
    (void)sv_recv();
    sv.secs = pc_now() - t0;
    return NULL;
}

static void
bench_sv_fjcreation(result *r)
{
    char b[32];

    sv.n = SIZE(40000, 4000);
    note(r, "%s actors", count_str(sv.n, b));
    sv_run(r, svfjc_driver, 0);
}

/* Big: each actor pings a random peer and waits for its pong before the
 * next ping, answering other actors' pings meanwhile; after N pongs it
 * reports. When all have, the driver stops them. */

typedef struct big_state {
    int id;
    long pongs;
    uint64_t rng;
} big_state;

static void
big_ping(big_state *st)
{
    int peer;

    do {
        st->rng ^= st->rng << 13;
        st->rng ^= st->rng >> 7;
        st->rng ^= st->rng << 17;
        peer = (int)(st->rng % (uint64_t)sv.actors);
    } while (peer == st->id);
    sv_send(sv.refs[peer], K_PING, st->id, 0);
}

static int
svbig_actor(void *state, pc_msg *msg)
{
    big_state *st = state;
    sv_msg p = sv_get(msg);

    switch (p.kind) {
    case K_START:
        big_ping(st);
        break;
    case K_PING:
        sv_send(sv.refs[p.from], K_PONG, st->id, 0);
        break;
    case K_PONG:
        if (++st->pongs < sv.n)
            big_ping(st);
        else
            sv_send(sv.driver, K_DONE, st->id, 0);
        break;
    default: /* K_STOP */
        return PC_ACTOR_STOP;
    }
    return PC_ACTOR_CONTINUE;
}

static pc_msg *
svbig_driver(void *arg)
{
    pc_spawn_opts o = sv_place();
    big_state *st = sv.state;

    (void)arg;
    sv.driver = pc_self();
    for (int a = 0; a < sv.actors; a++) {
        st[a].pongs = 0;
        st[a].id = a;
        st[a].rng = 0x2545F4914F6CDD1Dull * (uint64_t)(a + 1);
        CHECK(pc_actor_spawn(svbig_actor, &st[a], NULL, &o, &sv.refs[a]));
    }
    double t0 = pc_now();
    for (int a = 0; a < sv.actors; a++)
        sv_send(sv.refs[a], K_START, 0, 0);
    for (int a = 0; a < sv.actors; a++)
        (void)sv_recv();
    sv.secs = pc_now() - t0;
    /* No ping is in flight once all are done: each had one at most. */
    for (int a = 0; a < sv.actors; a++)
        sv_send(sv.refs[a], K_STOP, 0, 0);
    return NULL;
}

static void
bench_sv_big(result *r)
{
    char b[32];

    sv.actors = 120;
    sv.n = SIZE(20000, 1000);
    note(r, "120 actors x %s pings to random peers", count_str(sv.n, b));
    sv_run(r, svbig_driver, sizeof(big_state));
}

/* ------------------------------------------------------------------------ */
/* Thread pool: a task calls pc_pool_run() with a trivial function, over and
 * over: task → pool thread → back to the task on its own worker. The pool
 * is made and freed by the driver (a pool must be freed before the node
 * ends). */

static struct {
    long n, warm;
    double secs;
} tp;

static void *
tp_fn(void *arg)
{
    return arg;
}

static void
tp_rounds(pc_pool *pool, long n)
{
    for (long i = 0; i < n; i++) {
        void *res = NULL;
        CHECK(pc_pool_run(pool, tp_fn, (void *)(intptr_t)(i + 1), -1, &res));
        if (res != (void *)(intptr_t)(i + 1))
            fail("pc_pool_run: wrong result", PC_EPROTO);
    }
}

static pc_msg *
tp_driver(void *arg)
{
    pc_pool *pool;

    (void)arg;
    CHECK(pc_pool_new(&pool, 1));
    tp_rounds(pool, tp.warm);
    double t0 = pc_now();
    tp_rounds(pool, tp.n);
    tp.secs = pc_now() - t0;
    CHECK(pc_pool_free(&pool));
    return NULL;
}

static void
bench_pool(result *r)
{
    double t[RUNS];
    char b[32];

    tp.n = SIZE(200000, 5000);
    tp.warm = tp.n / 100;
    for (int k = 0; k < RUNS; k++) {
        run_node(1, 0, tp_driver, NULL);
        t[k] = tp.secs / tp.n;
    }
    r->figure = min_of(t, RUNS) * 1e6;
    note(r, "%s pc_pool_run calls, 1 pool thread, fn returns its argument",
         count_str(tp.n, b));
    note_runs(r, t, 1e6, "µs");
}

/* ------------------------------------------------------------------------ */
/* Channel fan-out: the driver publishes K messages on a channel that 1,000
 * light actors are subscribed to by ref, yielding every CF_BATCH so they
 * take their mail in batches; each actor counts its K and the last one
 * done tells the driver. A delivery is one reference handed to one
 * subscriber and taken by it. The actors are daemons: the node ends them. */

#define CF_BATCH 32

static struct {
    long k;
    int subs;
    long *got; /* per actor, its state */
    atomic_int finished;
    pc_ref driver;
    double secs;
} cf;

static int
cf_actor(void *state, pc_msg *msg)
{
    long *got = state;

    (void)msg;
    if (++*got == cf.k &&
        atomic_fetch_add_explicit(&cf.finished, 1, memory_order_relaxed) + 1 ==
            cf.subs)
        CHECK(pc_send_data(cf.driver, "done", NULL, 0));
    return PC_ACTOR_CONTINUE;
}

static pc_msg *
cf_driver(void *arg)
{
    pc_spawn_opts o = {0};
    pc_chan *ch;

    (void)arg;
    o.flags = PC_TASK_DAEMON;
    atomic_store(&cf.finished, 0);
    cf.driver = pc_self();
    CHECK(pc_chan_new(&ch, NULL, NULL, NULL));
    for (int i = 0; i < cf.subs; i++) {
        pc_ref a;
        cf.got[i] = 0;
        CHECK(pc_actor_spawn(cf_actor, &cf.got[i], NULL, &o, &a));
        CHECK(pc_chan_subscribe(ch, a));
    }
    double t0 = pc_now();
    for (long i = 0; i < cf.k; i++) {
        pc_msg *m;
        CHECK(pc_msg_new(&m, "tick", &i, sizeof i));
        CHECK(pc_chan_send(ch, &m));
        if (i % CF_BATCH == CF_BATCH - 1)
            CHECK(pc_yield());
    }
    recv_one();
    cf.secs = pc_now() - t0;
    pc_chan_free(&ch);
    return NULL;
}

static void
bench_chan_fanout(result *r)
{
    double t[RUNS];
    char b1[32], b2[32];

    cf.subs = 1000;
    cf.k = SIZE(10000, 200);
    if (!(cf.got = calloc((size_t)cf.subs, sizeof *cf.got)))
        fail("calloc", PC_ENOMEM);
    for (int k = 0; k < RUNS; k++) {
        run_node(1, 0, cf_driver, NULL);
        t[k] = cf.secs;
    }
    free(cf.got);
    double deliveries = (double)cf.k * cf.subs;
    r->figure = deliveries / min_of(t, RUNS) / 1e6;
    note(r, "%s messages x %s light-actor subscribers, pc_chan_send",
         count_str(cf.k, b1), count_str(cf.subs, b2));
    note_runs(r, t, 1e3, "ms");
}

/* ------------------------------------------------------------------------ */
/* Sockets. HTTP: the picos-webserver loop (an accept task per worker, a task
 * per connection spread over the workers, keep-alive) in this process on an
 * ephemeral loopback port, loaded by wrk from the main thread, which is not a
 * worker. TCP echo: a client task and an echo task on one worker, 32-byte
 * messages. */

static const char hb_pong[] = "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n"
                              "Connection: keep-alive\r\n\r\nping pong";

static pc_msg *
hb_conn(void *arg)
{
    pc_sock *s = arg;
    char buf[8193], out[16 * (sizeof hb_pong - 1)];
    size_t used = 0, n;

    while (used < sizeof buf - 1 &&
           pc_sock_read(s, buf + used, sizeof buf - 1 - used, -1, &n) ==
               PC_OK &&
           n > 0) {
        char *p = buf, *e;
        size_t outlen = 0;
        int ok = 1;

        used += n;
        buf[used] = '\0';
        while (ok && (e = strstr(p, "\r\n\r\n"))) { /* one per request */
            if (outlen == sizeof out) {
                ok = pc_sock_write_all(s, out, outlen, -1, NULL) == PC_OK;
                outlen = 0;
            }
            memcpy(out + outlen, hb_pong, sizeof hb_pong - 1);
            outlen += sizeof hb_pong - 1;
            p = e + 4;
        }
        if (!ok ||
            (outlen && pc_sock_write_all(s, out, outlen, -1, NULL) != PC_OK))
            break;
        used -= (size_t)(p - buf);
        memmove(buf, p, used);
    }
    pc_sock_close(&s);
    return NULL;
}

static pc_msg *
hb_accept(void *arg)
{
    pc_sock *l = arg, *c;
    pc_spawn_opts any = {.worker = PC_WORKER_ANY}; /* accept is bursty */

    while (pc_sock_accept(l, &c, -1) == PC_OK)
        if (pc_spawn(hb_conn, c, &any, NULL) != PC_OK)
            pc_sock_close(&c);
    pc_sock_release(&l);
    return NULL;
}

/* One node lifetime with one wrk run: requests/s, or -1 with *why set. */
static double
hb_run(char *summary, size_t size, const char **why)
{
    pc_node_opts o = {.workers = 2};
    pc_sock *l;
    char cmd[160], line[256];
    double rps = -1;
    int status;
    FILE *f;

    CHECK(pc_node_start(&o));
    CHECK(pc_sock_listen(&l, "127.0.0.1", 0, 5000));
    for (int w = 0; w < 2; w++)
        CHECK(pc_spawn(
            hb_accept, pc_sock_retain(l),
            &(pc_spawn_opts){.worker = PC_WORKER(w), .flags = PC_TASK_DAEMON},
            NULL));
    snprintf(cmd, sizeof cmd, "wrk -t2 -c100 -d%ds http://127.0.0.1:%u/ 2>&1",
             SIZE(5, 1), (unsigned)pc_sock_port(l));
    fflush(NULL);
    f = popen(cmd, "r"); /* from main(), which is not a worker */
    while (f && fgets(line, sizeof line, f)) {
        sscanf(line, "Requests/sec: %lf", &rps);
        if (strstr(line, "requests in")) {
            char *p = line + strspn(line, " ");
            snprintf(summary, size, "%.*s", (int)strcspn(p, "\n"), p);
        }
    }
    status = f ? pclose(f) : -1;
    pc_sock_close(&l);
    pc_node_stop(); /* ends the accept and connection tasks */
    CHECK(pc_node_run());
    if (rps < 0)
        *why = WIFEXITED(status) && WEXITSTATUS(status) == 127
                   ? "wrk not found (apt-get install wrk)"
                   : "wrk printed no Requests/sec";
    return rps;
}

static void
bench_http(result *r)
{
    double t[RUNS];
    char summary[RUNS][128] = {{0}};
    const char *why = NULL;
    int best = 0;

    for (int k = 0; k < RUNS; k++) {
        t[k] = hb_run(summary[k], sizeof summary[k], &why);
        if (t[k] < 0) { /* not a failure of picos: say so, don't fail */
            r->figure = 0;
            note(r, "skipped: %s", why);
            return;
        }
        if (t[k] > t[best])
            best = k;
    }
    r->figure = t[best];
    note(r, "best: %s; wrk -t2 -c100 -d%ds shares the 2 cores", summary[best],
         SIZE(5, 1));
    note_runs(r, t, 1e-3, "k req/s");
}

/* HTTP over TLS: hb_conn's ping-pong over pc_tls (TLS 1.3, EC P-256 certs
 * made by the openssl CLI in a temp dir), loaded by wrk over https (wrk does
 * not verify certificates). Target: half the plain http-wrk target. */

static pc_tls_ctx *hbt_ctx;

static pc_msg *
hbt_conn(void *arg)
{
    pc_sock *s = arg;
    pc_tls *t;
    char buf[8193], out[16 * (sizeof hb_pong - 1)];
    size_t used = 0, n;

    if (pc_tls_wrap(&t, hbt_ctx, s, NULL) != PC_OK) {
        pc_sock_close(&s);
        return NULL;
    }
    if (pc_tls_handshake(t, 10.0) != PC_OK) {
        pc_tls_close(&t);
        return NULL;
    }
    while (used < sizeof buf - 1 &&
           pc_tls_read(t, buf + used, sizeof buf - 1 - used, -1, &n) == PC_OK &&
           n > 0) {
        char *p = buf, *e;
        size_t outlen = 0;
        int ok = 1;

        used += n;
        buf[used] = '\0';
        while (ok && (e = strstr(p, "\r\n\r\n"))) {
            if (outlen == sizeof out) {
                ok = pc_tls_write_all(t, out, outlen, -1) == PC_OK;
                outlen = 0;
            }
            memcpy(out + outlen, hb_pong, sizeof hb_pong - 1);
            outlen += sizeof hb_pong - 1;
            p = e + 4;
        }
        if (!ok || (outlen && pc_tls_write_all(t, out, outlen, -1) != PC_OK))
            break;
        used -= (size_t)(p - buf);
        memmove(buf, p, used);
    }
    pc_tls_close(&t);
    return NULL;
}

static pc_msg *
hbt_accept(void *arg)
{
    pc_sock *l = arg, *c;
    pc_spawn_opts any = {.worker = PC_WORKER_ANY};

    while (pc_sock_accept(l, &c, -1) == PC_OK)
        if (pc_spawn(hbt_conn, c, &any, NULL) != PC_OK)
            pc_sock_close(&c);
    pc_sock_release(&l);
    return NULL;
}

static void
bench_https(result *r)
{
    char dir[64] = "/tmp/picos-bench-tls-XXXXXX", cmd[1536], line[256];
    char f_crt[96], f_key[96], summary[128] = "";
    double rps = -1;
    pc_node_opts o = {.workers = 2};
    pc_sock *l;
    FILE *f;

    r->figure = 0;
    if (!mkdtemp(dir)) {
        note(r, "skipped: mkdtemp failed");
        return;
    }
    snprintf(cmd, sizeof cmd,
             "cd %s && openssl req -x509 -newkey ec -pkeyopt "
             "ec_paramgen_curve:prime256v1 -nodes -keyout srv.key -out "
             "srv.pem -days 2 -subj /CN=localhost -addext "
             "subjectAltName=DNS:localhost,IP:127.0.0.1 >make.log 2>&1",
             dir);
    snprintf(f_crt, sizeof f_crt, "%s/srv.pem", dir);
    snprintf(f_key, sizeof f_key, "%s/srv.key", dir);
    if (system(cmd) != 0 ||
        pc_tls_ctx_new(&hbt_ctx, &(pc_tls_ctx_opts){.server = true,
                                                    .cert_file = f_crt,
                                                    .key_file = f_key}) !=
            PC_OK) {
        note(r, "skipped: openssl could not make a certificate");
        goto out;
    }
    CHECK(pc_node_start(&o));
    CHECK(pc_sock_listen(&l, "127.0.0.1", 0, 5000));
    for (int w = 0; w < 2; w++)
        CHECK(pc_spawn(
            hbt_accept, pc_sock_retain(l),
            &(pc_spawn_opts){.worker = PC_WORKER(w), .flags = PC_TASK_DAEMON},
            NULL));
    snprintf(cmd, sizeof cmd, "wrk -t2 -c100 -d%ds https://127.0.0.1:%u/ 2>&1",
             SIZE(5, 1), (unsigned)pc_sock_port(l));
    fflush(NULL);
    f = popen(cmd, "r");
    while (f && fgets(line, sizeof line, f)) {
        sscanf(line, "Requests/sec: %lf", &rps);
        if (strstr(line, "requests in")) {
            char *p = line + strspn(line, " ");
            snprintf(summary, sizeof summary, "%.*s", (int)strcspn(p, "\n"), p);
        }
    }
    if (f)
        pclose(f);
    pc_sock_close(&l);
    pc_node_stop();
    CHECK(pc_node_run());
    if (rps < 0)
        note(r, "skipped: wrk not found or printed no Requests/sec");
    else {
        r->figure = rps;
        note(r,
             "%s; TLS 1.3 (wolfSSL), wrk -t2 -c100 -d%ds; target is half "
             "the plain http-wrk target",
             summary, SIZE(5, 1));
    }
out:
    pc_tls_ctx_free(&hbt_ctx);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

static struct {
    long n, warm;
    double secs;
} te;

static pc_msg *
te_echo(void *arg)
{
    pc_sock *l = arg, *c;
    char buf[64];
    size_t n;

    CHECK(pc_sock_accept(l, &c, -1));
    pc_sock_close(&l);
    while (pc_sock_read(c, buf, sizeof buf, -1, &n) == PC_OK && n > 0)
        CHECK(pc_sock_write_all(c, buf, n, -1, NULL));
    pc_sock_close(&c);
    return NULL;
}

static void
te_rounds(pc_sock *s, long n)
{
    char msg[32] = "ping", back[32];

    for (long i = 0; i < n; i++) {
        CHECK(pc_sock_write_all(s, msg, sizeof msg, -1, NULL));
        CHECK(pc_sock_read_exact(s, back, sizeof back, -1, NULL));
    }
}

static pc_msg *
te_driver(void *arg)
{
    pc_sock *l, *s;
    uint16_t port;

    (void)arg;
    CHECK(pc_sock_listen(&l, "127.0.0.1", 0, 0));
    port = pc_sock_port(l);
    CHECK(pc_spawn(te_echo, l, NULL, NULL)); /* the echo owns l now */
    CHECK(pc_sock_connect(&s, "127.0.0.1", port, 5.0));
    te_rounds(s, te.warm);
    double t0 = pc_now();
    te_rounds(s, te.n);
    te.secs = pc_now() - t0;
    pc_sock_close(&s);
    return NULL;
}

static void
bench_tcp_echo(result *r)
{
    double t[RUNS];
    char b[32];

    te.n = SIZE(100000, 5000);
    te.warm = te.n / 100;
    for (int k = 0; k < RUNS; k++) {
        run_node(1, 0, te_driver, NULL);
        t[k] = te.secs / te.n;
    }
    r->figure = min_of(t, RUNS) * 1e6;
    note(r, "%s round trips of 32 bytes over loopback TCP (TCP_NODELAY)",
         count_str(te.n, b));
    note_runs(r, t, 1e6, "µs");
}

/* ------------------------------------------------------------------------ */
/* The table                                                                */

typedef enum { NONE, AT_MOST, AT_LEAST } goal;

typedef struct bench {
    const char *name;  /* what --only matches */
    const char *label; /* first column */
    const char *unit;
    goal goal;
    double target;
    int uses_workers; /* --workers applies: show W in the label */
    void (*run)(result *r);
} bench;

static const bench benches[] = {
    {"pingpong", "ping-pong round trip, 2 tasks (W=1)", "µs", AT_MOST, 0.1, 0,
     bench_pingpong},
    {"lock-handoff", "lock hand-off between two tasks (W=1)", "µs", AT_MOST,
     0.1, 0, bench_lock_handoff},
    {"ring", "ring of 1,000 tasks, per hop (W=1)", "µs", AT_MOST, 0.06, 0,
     bench_ring},
    {"pool", "thread-pool round trip (W=1)", "µs", AT_MOST, 10, 0, bench_pool},
    {"spawn-tasks", "spawn + exit of 1M tasks (W=1)", "s", AT_MOST, 0.2, 0,
     bench_spawn_tasks},
    {"spawn-actors", "spawn 1M light actors, 1 message each (W=1)", "s",
     AT_MOST, 0.1, 0, bench_spawn_actors},
    {"rss-actors", "1M live idle light actors, RSS", "MB", AT_MOST, 256, 0,
     bench_rss_actors},
    {"rss-tasks", "100k live idle tasks, RSS per task", "KB", AT_MOST, 4.5, 0,
     bench_rss_tasks},
    {"rss-tasks-small", "100k live idle tasks (PC_TASK_SMALL), RSS per task",
     "KB", AT_MOST, 2.5, 0, bench_rss_tasks_small},
    {"mailbox-w1", "N:1 mailbox, 100 senders → 1 receiver (W=1)", "M msg/s",
     AT_LEAST, 20, 0, bench_mailbox_w1},
    {"mailbox-w2", "N:1 mailbox, 100 senders on worker 1 → 1 on 0 (W=2)",
     "M msg/s", AT_LEAST, 20, 0, bench_mailbox_w2},
    {"parallel", "parallel CPU work, speed-up over W=1", "×", AT_LEAST, 0.9, 1,
     bench_parallel},
    {"savina-pingpong", "Savina PingPong: 40k pings, tasks", "ms", NONE, 0, 1,
     bench_sv_pingpong},
    {"savina-counting", "Savina Counting: 1M messages, actors", "ms", NONE, 0,
     1, bench_sv_counting},
    {"savina-threadring", "Savina ThreadRing: 100 tasks, 100k passes", "ms",
     NONE, 0, 1, bench_sv_threadring},
    {"savina-fj-throughput", "Savina Fork-join throughput: 60 actors × 10k",
     "ms", NONE, 0, 1, bench_sv_fjthroughput},
    {"savina-fj-creation", "Savina Fork-join creation: 40k actors", "ms", NONE,
     0, 1, bench_sv_fjcreation},
    {"savina-big", "Savina Big: 120 actors × 20k pings", "ms", NONE, 0, 1,
     bench_sv_big},
    {"chan-fanout", "channel fan-out, 1 publisher → 1,000 subscribers (W=1)",
     "M deliveries/s", AT_LEAST, 20, 0, bench_chan_fanout},
    {"http-wrk", "HTTP ping-pong, wrk 100 connections (W=2)", "req/s", AT_LEAST,
     100000, 0, bench_http},
    {"https-wrk-tls", "HTTP ping-pong over TLS, wrk 100 connections (W=2)",
     "req/s", AT_LEAST, 50000, 0, bench_https},
    {"tcp-echo", "TCP echo round trip (W=1)", "µs", NONE, 0, 0, bench_tcp_echo},
};

#define NBENCH ((int)(sizeof benches / sizeof benches[0]))

typedef struct row {
    char label[128];
    char figure[128]; /* a number, or why the run failed */
    char target[32];
    const char *met;
    const char *unit;
    char note[sizeof((result *)0)->note];
} row;

static int
bench_workers(const bench *b)
{
    if (!b->uses_workers)
        return 1;
    if (g_workers)
        return g_workers;
    return strcmp(b->name, "parallel") == 0 ? 2 : 1;
}

static double
bench_target(const bench *b)
{
    /* The speed-up target scales with the workers: 0.9 x W (1.8 for W=2). */
    return strcmp(b->name, "parallel") == 0 ? b->target * bench_workers(b)
                                            : b->target;
}

static void
fmt_figure(char *buf, size_t size, double v)
{
    if (v >= 100)
        snprintf(buf, size, "%.0f", v);
    else if (v >= 10)
        snprintf(buf, size, "%.1f", v);
    else if (v >= 1)
        snprintf(buf, size, "%.2f", v);
    else
        snprintf(buf, size, "%.3f", v);
}

/* Run one benchmark in a forked child; 0 when it ran. */
static int
run_forked(const bench *b, result *res, char *why, size_t why_size)
{
    int fds[2];
    pid_t pid;
    int status;
    ssize_t got = 0;

    if (pipe(fds) != 0) {
        snprintf(why, why_size, "pipe: %s", strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        snprintf(why, why_size, "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        alarm(g_quick ? 120 : 600); /* a hang becomes a failed row */
        memset(res, 0, sizeof *res);
        b->run(res);
        _exit(write(fds[1], res, sizeof *res) == (ssize_t)sizeof *res ? 0 : 3);
    }
    close(fds[1]);
    while (got < (ssize_t)sizeof *res) {
        ssize_t n = read(fds[0], (char *)res + got, sizeof *res - (size_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += n;
    }
    close(fds[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFSIGNALED(status)) {
        snprintf(why, why_size, "failed: %s",
                 WTERMSIG(status) == SIGALRM ? "timed out"
                                             : strsignal(WTERMSIG(status)));
        return -1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
        got != (ssize_t)sizeof *res) {
        snprintf(why, why_size, "failed: exit %d", WEXITSTATUS(status));
        return -1;
    }
    return 0;
}

/* Columns count characters, not bytes: "µ", "≤" and "×" are two or three. */
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
cell(const char *s, int width, int right)
{
    int pad = width - text_width(s);

    printf(" %*s%s%*s |", right ? pad : 0, "", s, right ? 0 : pad, "");
}

static void
print_table(const row *rows, int n)
{
    const char *head[5] = {"benchmark", "figure", "unit", "target", "met"};
    int w[5];

    for (int c = 0; c < 5; c++)
        w[c] = text_width(head[c]);
    for (int i = 0; i < n; i++) {
        const char *v[5] = {rows[i].label, rows[i].figure, rows[i].unit,
                            rows[i].target, rows[i].met};
        for (int c = 0; c < 5; c++)
            if (text_width(v[c]) > w[c])
                w[c] = text_width(v[c]);
    }
    printf("|");
    for (int c = 0; c < 5; c++)
        cell(head[c], w[c], c == 1);
    printf("\n|");
    for (int c = 0; c < 5; c++) {
        printf(" ");
        for (int k = 0; k < w[c] - (c == 1); k++)
            printf("-");
        printf("%s |", c == 1 ? ":" : "");
    }
    printf("\n");
    for (int i = 0; i < n; i++) {
        const char *v[5] = {rows[i].label, rows[i].figure, rows[i].unit,
                            rows[i].target, rows[i].met};
        printf("|");
        for (int c = 0; c < 5; c++)
            cell(v[c], w[c], c == 1);
        printf("\n");
    }
}

/* The 1-minute load average, read before the first benchmark: on a small
 * machine other work shows in every figure. */
static double
load_average(void)
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

static void
print_machine(double load)
{
    char line[256], model[160] = "unknown CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");

    if (f) {
        while (fgets(line, sizeof line, f)) {
            char *colon = strchr(line, ':');
            if (strncmp(line, "model name", 10) == 0 && colon) {
                snprintf(model, sizeof model, "%s", colon + 2);
                model[strcspn(model, "\n")] = '\0';
                break;
            }
        }
        fclose(f);
    }
    printf("picos %s benchmarks on %s, %ld cores, load average %.2f before the "
           "run%s\n\n",
           PICOS_VERSION, model, sysconf(_SC_NPROCESSORS_ONLN), load,
           g_quick ? " (--quick: reduced sizes, figures only indicative)" : "");
}

static void
usage(FILE *to)
{
    fprintf(to,
            "usage: picos-bench [--quick] [--only NAME] [--workers N] "
            "[--no-fork] [--list]\n"
            "  --quick      small sizes (a smoke run)\n"
            "  --only NAME  run the benchmarks whose name contains NAME\n"
            "  --workers N  workers for the parallel speed-up (default 2) "
            "and Savina (default 1)\n"
            "  --no-fork    run in this process (for perf, callgrind, gdb)\n"
            "  --list       print the benchmark names\n");
}

int
main(int argc, char **argv)
{
    const char *only = NULL;
    int fork_each = 1;
    row rows[NBENCH];
    int nrows = 0, failures = 0, met = 0, goals = 0;
    double load = load_average();

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            g_quick = 1;
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            only = argv[++i];
        } else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
            g_workers = atoi(argv[++i]);
            if (g_workers < 1 || g_workers > 1024) {
                fprintf(stderr, "picos-bench: bad --workers\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--no-fork") == 0) {
            fork_each = 0;
        } else if (strcmp(argv[i], "--list") == 0) {
            for (int k = 0; k < NBENCH; k++)
                printf("%-22s %s\n", benches[k].name, benches[k].label);
            return 0;
        } else if (strcmp(argv[i], "-h") == 0 ||
                   strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }

    for (int k = 0; k < NBENCH; k++) {
        const bench *b = &benches[k];
        row *rw = &rows[nrows];
        result res;
        char why[128] = "";
        int ok = 0;

        if (only && !strstr(b->name, only))
            continue;
        nrows++;
        memset(rw, 0, sizeof *rw);
        if (b->uses_workers)
            snprintf(rw->label, sizeof rw->label, "%s (W=%d)", b->label,
                     bench_workers(b));
        else
            snprintf(rw->label, sizeof rw->label, "%s", b->label);
        rw->unit = b->unit;
        fprintf(stderr, "picos-bench: %-22s ... ", b->name);

        if (fork_each) {
            ok = run_forked(b, &res, why, sizeof why) == 0;
        } else {
            memset(&res, 0, sizeof res);
            b->run(&res);
            ok = 1;
        }

        double target = bench_target(b);
        if (b->goal == NONE)
            snprintf(rw->target, sizeof rw->target, "—");
        else
            snprintf(rw->target, sizeof rw->target, "%s %g",
                     b->goal == AT_MOST ? "≤" : "≥", target);
        if (!ok) {
            failures++;
            snprintf(rw->figure, sizeof rw->figure, "%s", why);
            rw->met = b->goal == NONE ? "—" : "no";
            goals += b->goal != NONE;
            fprintf(stderr, "%s\n", why);
            continue;
        }
        fmt_figure(rw->figure, sizeof rw->figure, res.figure);
        snprintf(rw->note, sizeof rw->note, "%s", res.note);
        if (b->goal == NONE) {
            rw->met = "—";
        } else {
            int yes = b->goal == AT_MOST ? res.figure <= target
                                         : res.figure >= target;
            rw->met = yes ? "yes" : "no";
            met += yes;
            goals++;
        }
        fprintf(stderr, "%s %s\n", rw->figure, b->unit);
    }

    if (nrows == 0) {
        fprintf(stderr, "picos-bench: no benchmark matches '%s' (--list)\n",
                only);
        return 2;
    }
    print_machine(load);
    print_table(rows, nrows);
    printf("\n%d of %d targets met. KB and MB are 1024 and 1024² bytes; "
           "times are the best of %d runs, each in a fresh node.\n\n",
           met, goals, RUNS);
    for (int i = 0; i < nrows; i++)
        if (rows[i].note[0])
            printf("- %s: %s\n", rows[i].label, rows[i].note);
    return failures ? 1 : 0;
}
