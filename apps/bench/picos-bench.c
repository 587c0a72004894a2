/* picos-bench — the runtime's figures, printed as one Markdown table.
 *
 * Each benchmark is a function that starts its own node with the worker
 * count it needs, runs a driver task that times the measured part with
 * pc_now(), and stops the node again. It runs once per process, and nothing
 * is warmed up first: the anchors the table is compared with (Erlang, CAF,
 * pycos) were measured running once in a fresh process, so a figure here is
 * a cold start too, with the allocator, the page tables and the caches as a
 * new process finds them. Where they allocate a message per send, so do the
 * rows compared with them; the zero-allocation variants are rows of their
 * own, labelled so.
 *
 * The table is made by a parent that runs no benchmark itself: for each row
 * it re-executes this program (/proc/self/exe --row NAME) --samples times
 * (3, or 1 with --quick) and prints the median sample; the note lists every
 * sample. A crash or a hang (each child has an alarm) becomes a row saying
 * so instead of ending the table. The child hands its result back through a
 * pipe (--result-fd); run by hand, `picos-bench --row NAME` prints it.
 * --no-fork runs every row once in this process instead, which is what you
 * want under perf or callgrind (later rows then start warm).
 *
 * Driver tasks hand results back through file-static structs: the node's
 * threads are joined by pc_node_run() before the benchmark function reads
 * them. A failed picos call ends the process with a message (the child's
 * exit status then marks the row as failed); the exit status is 0 when every
 * benchmark ran, whether or not it met its target.
 */
#define _XOPEN_SOURCE 700

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zmq.h>

#include "picos/picos.h"

#include "bench_common.h"
#include "bench_net.h"
#include "bench_zmq.h"

#define MAX_SAMPLES 15

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

/* A failed system call outside picos (the TCP floor, the certificates). */
static void
sys_fail(const char *what)
{
    fprintf(stderr, "picos-bench: %s: %s\n", what, strerror(errno));
    _exit(2);
}

/* ------------------------------------------------------------------------ */
/* Results                                                                  */

typedef struct result {
    double figure;
    char shown[64]; /* the figure cell, when the row wants more than figure */
    char note[640];
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

/* The driver's clock: it brackets the measured part with clock_start()
 * and clock_stop(); run_node() returns the time between them. */
static double g_t0, g_secs;

static void
clock_start(void)
{
    g_t0 = pc_now();
}

static void
clock_stop(void)
{
    g_secs = pc_now() - g_t0;
}

/* Start a node of `workers` workers, run fn(arg) on worker `on` as the
 * driver, and return when every non-daemon task has ended: the seconds the
 * driver's clock measured (0 if it used none). */
static double
run_node(int workers, int on, pc_task_fn fn, void *arg)
{
    pc_node_opts o = {0};
    pc_spawn_opts so = {0};

    o.workers = workers;
    so.worker = PC_WORKER(on);
    so.name = "driver";
    g_secs = 0;
    CHECK(pc_node_start(&o));
    CHECK(pc_spawn(fn, arg, &so, NULL));
    CHECK(pc_node_run());
    return g_secs;
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
/* Ping-pong and ring: a token carrying an 8-byte count goes from task to
 * task. "New message" rows do what the anchors do: each hop frees the
 * message it received and sends a new one with the count + 1, which the
 * driver checks at the end. "Bounce" rows hand the very message received on
 * (pc_send of a message the task owns): no allocation at all. */

static long
take_count(pc_msg **m)
{
    long v;
    size_t len;
    const void *d = pc_msg_data(*m, &len);

    if (len != sizeof v)
        fail("token: unexpected message", PC_EPROTO);
    memcpy(&v, d, sizeof v);
    pc_msg_free(m);
    return v;
}

/* Hand the token *m on to `to`: a new message (count + 1) or the same. */
static void
pass_on(pc_ref to, pc_msg **m, bool fresh)
{
    if (fresh) {
        long v = take_count(m) + 1;
        CHECK(pc_send_data(to, "token", &v, sizeof v));
    } else {
        CHECK(pc_send(to, m));
    }
}

static struct {
    long n;
    bool fresh;
} pp;

static pc_msg *
pp_echo(void *arg)
{
    (void)arg;
    for (long i = 0; i < pp.n; i++) {
        pc_msg *m;
        CHECK(pc_recv(&m, -1));
        pass_on(pc_msg_sender(m), &m, pp.fresh);
    }
    return NULL;
}

static pc_msg *
pp_driver(void *arg)
{
    long zero = 0;
    pc_ref echo;
    pc_msg *m = NULL;

    (void)arg;
    CHECK(pc_spawn(pp_echo, NULL, NULL, &echo));
    if (!pp.fresh)
        CHECK(pc_msg_new(&m, "token", &zero, sizeof zero));
    clock_start();
    for (long i = 0; i < pp.n; i++) {
        if (pp.fresh)
            CHECK(pc_send_data(echo, "token", &i, sizeof i));
        else
            CHECK(pc_send(echo, &m));
        CHECK(pc_recv(&m, -1));
        if (pp.fresh && take_count(&m) != i + 1)
            fail("ping-pong: wrong count", PC_EPROTO);
    }
    clock_stop();
    pc_msg_free(&m);
    return NULL;
}

static void
bench_pingpong(result *r, int fresh)
{
    char b[32];

    pp.n = SIZE(1000000, 20000);
    pp.fresh = fresh;
    r->figure = run_node(1, 0, pp_driver, NULL) / pp.n * 1e6;
    note(r,
         "2 tasks on 1 worker, %s; %s round trips, timed from the first "
         "send",
         fresh ? "a new 8-byte message each way (pc_send_data), the "
                 "received one freed"
               : "one 8-byte message sent back and forth with pc_send, "
                 "no allocation",
         count_str(pp.n, b));
}

/* Ring: task i passes the token to task i+1; the driver is task 0. */

static struct {
    int n;
    long rounds;
    bool fresh;
    pc_ref *refs;
} rg;

static pc_msg *
ring_member(void *arg)
{
    const pc_ref *next = arg; /* read after the first token: all spawned */

    for (long r = 0; r < rg.rounds; r++) {
        pc_msg *m;
        CHECK(pc_recv(&m, -1));
        pass_on(*next, &m, rg.fresh);
    }
    return NULL;
}

static pc_msg *
ring_driver(void *arg)
{
    long zero = 0;
    pc_msg *m;

    (void)arg;
    rg.refs = calloc((size_t)rg.n, sizeof *rg.refs);
    if (!rg.refs)
        fail("calloc", PC_ENOMEM);
    rg.refs[0] = pc_self();
    for (int i = rg.n - 1; i >= 1; i--)
        CHECK(
            pc_spawn(ring_member, &rg.refs[(i + 1) % rg.n], NULL, &rg.refs[i]));
    CHECK(pc_msg_new(&m, "token", &zero, sizeof zero));
    clock_start();
    for (long r = 0; r < rg.rounds; r++) {
        pass_on(rg.refs[1], &m, rg.fresh);
        CHECK(pc_recv(&m, -1));
    }
    clock_stop();
    /* Fresh: each of the hops added one. */
    if (rg.fresh && take_count(&m) != rg.rounds * rg.n)
        fail("ring: wrong count", PC_EPROTO);
    pc_msg_free(&m);
    free(rg.refs);
    return NULL;
}

static void
bench_ring(result *r, int fresh)
{
    char b1[32], b2[32], b3[32];

    rg.n = 1000;
    rg.rounds = SIZE(1000, 20);
    rg.fresh = fresh;
    long hops = rg.n * rg.rounds;
    r->figure = run_node(1, 0, ring_driver, NULL) / (double)hops * 1e6;
    note(r,
         "%s tasks on 1 worker, spawned before the clock starts; each %s "
         "to the next; %s rounds = %s hops, timed from the first send",
         count_str(rg.n, b1),
         fresh ? "receives the token, frees it and sends a new 8-byte one"
               : "passes on the one 8-byte message it received (pc_send, no "
                 "allocation)",
         count_str(rg.rounds, b2), count_str(hops, b3));
}

/* ------------------------------------------------------------------------ */
/* Lock hand-off: two tasks on one worker take turns on one pc_lock. Each
 * releases while the other is queued on the lock, so every release hands it
 * over and every acquire after it waits: two hand-offs per driver round. */

static struct {
    long n;
    pc_lock *l;
    bool stop; /* read and written under the lock */
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
    clock_start();
    for (long i = 0; i < lk.n; i++) {
        CHECK(pc_lock_release(lk.l));
        CHECK(pc_lock_acquire(lk.l, -1));
    }
    clock_stop();
    lk.stop = true;
    CHECK(pc_lock_release(lk.l)); /* to the peer, which then ends */
    CHECK(pc_task_join(peer, -1, NULL));
    pc_lock_free(&lk.l);
    return NULL;
}

static void
bench_lock_handoff(result *r, int unused)
{
    char b[32];

    (void)unused;
    lk.n = SIZE(1000000, 20000);
    r->figure = run_node(1, 0, lk_driver, NULL) / (2.0 * (double)lk.n) * 1e6;
    note(r,
         "2 tasks on 1 worker, one pc_lock; %s hand-offs, each release to "
         "the task queued on the lock",
         count_str(2 * lk.n, b));
}

/* ------------------------------------------------------------------------ */
/* Spawn + exit: the driver spawns all N before any runs (W=1: they run when
 * it blocks), then receives the N messages they send it, as the Erlang
 * anchor does (spawn(fun() -> Parent ! done end), N times, then N
 * receives). Light actors are each sent a new message and, on it, send the
 * driver one and stop. */

static struct {
    long n;
    bool actors;
    pc_ref driver;
} sp;

static pc_msg *
sp_task(void *arg)
{
    (void)arg;
    CHECK(pc_send_data(sp.driver, "done", NULL, 0));
    return NULL;
}

static int
sp_actor(void *state, pc_msg *msg)
{
    (void)state;
    (void)msg;
    return PC_ACTOR_STOP;
}

static pc_msg *
sp_driver(void *arg)
{
    (void)arg;
    pc_ref a = PC_REF_NIL;

    sp.driver = pc_self();
    clock_start();
    for (long i = 0; i < sp.n; i++) {
        if (sp.actors) {
            CHECK(pc_actor_spawn(sp_actor, NULL, NULL, NULL, &a));
            CHECK(pc_send_data(a, "go", NULL, 0));
        } else {
            CHECK(pc_spawn(sp_task, NULL, NULL, NULL));
        }
    }
    if (sp.actors) {
        /* one worker, FIFO: when the last one has stopped, all have */
        while (pc_alive(a))
            CHECK(pc_yield());
    } else {
        for (long i = 0; i < sp.n; i++)
            recv_one();
    }
    clock_stop();
    return NULL;
}

static void
bench_spawn(result *r, int actors)
{
    char b[32];

    sp.n = SIZE(1000000, 20000);
    sp.actors = actors;
    r->figure = run_node(1, 0, sp_driver, NULL) * 1e6 / sp.n; /* s per 1M */
    count_str(sp.n, b);
    if (actors)
        note(r,
             "1 worker; the driver spawns %s light actors (pc_actor_spawn) "
             "and sends each a new empty message; each, on it, stops; timed "
             "from the first spawn until the last one has stopped",
             b);
    else
        note(r,
             "1 worker; the driver spawns %s tasks (pc_spawn, default "
             "stacks), none runs before the last is spawned; each sends the "
             "driver a new empty message and returns; the driver receives "
             "all %s; timed from the first spawn to the last receive",
             b, b);
    note(r, "%s; peak RSS %.0f MiB", g_quick ? " (scaled to 1M)" : "",
         peak_rss_mb());
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
bench_rss_actors(result *r, int unused)
{
    char b[32];

    (void)unused;
    rs.n = SIZE(1000000, 20000);
    run_node(1, 0, rss_actors_driver, NULL);
    double delta = (double)(rs.after - rs.before);
    r->figure = delta * (1e6 / rs.n) / (1024.0 * 1024.0); /* MiB per 1M */
    note(r,
         "1 worker; %s light actors spawned (pc_actor_spawn, no message "
         "yet), all alive; process RSS %.1f -> %.1f MiB, %.0f bytes per "
         "actor%s",
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
bench_rss_tasks(result *r, int flags)
{
    char b[32];

    rs.n = SIZE(100000, 10000);
    rs.flags = (unsigned)flags;
    run_node(1, 0, rss_tasks_driver, NULL);
    double delta = (double)(rs.after - rs.before);
    r->figure = delta / rs.n / 1024.0;
    note(r,
         "1 worker; %s tasks (pc_spawn%s), each blocked in pc_recv(); "
         "process RSS %.1f -> %.1f MiB",
         count_str(rs.n, b), flags ? ", PC_TASK_SMALL" : ", default stacks",
         rs.before / 1048576.0, rs.after / 1048576.0);
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
    clock_start();
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
    clock_stop();
    free(next);
    return NULL;
}

static void
bench_mailbox(result *r, int workers)
{
    char b1[32], b2[32];

    mb.senders = 100;
    mb.per_sender = SIZE(50000, 1000);
    mb.workers = workers;
    long total = mb.senders * mb.per_sender;
    r->figure = total / run_node(workers, 0, mb_receiver, NULL) / 1e6;
    note(r,
         "%d worker%s; 100 sender tasks%s each send %s new 16-byte messages "
         "(pc_send_data), yielding every %d; 1 receiver task%s takes all %s "
         "and checks per-sender order; timed from the first spawn",
         workers, workers > 1 ? "s" : "", workers > 1 ? " on worker 1" : "",
         count_str(mb.per_sender, b1), MB_BATCH,
         workers > 1 ? " on worker 0" : "", count_str(total, b2));
}

/* ------------------------------------------------------------------------ */
/* Parallel CPU work: 64 equal tasks placed round-robin (PC_WORKER_ANY). */

static struct {
    int tasks;
    long iters;
    atomic_long done;
    atomic_ulong sink; /* keeps the work from being optimised away */
    pc_ref driver;
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
    clock_start();
    for (int i = 0; i < par.tasks; i++)
        CHECK(pc_spawn(par_worker, (void *)(intptr_t)i, &o, NULL));
    recv_one();
    clock_stop();
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
bench_parallel(result *r, int unused)
{
    int w = g_workers ? g_workers : 2;
    char b[32];

    (void)unused;
    par.tasks = 64;
    par.iters = SIZE(2000000, 50000);
    double t1 = run_node(1, 0, par_driver, NULL);
    double tw = run_node(w, 0, par_driver, NULL);
    r->figure = t1 / tw;
    note(r,
         "%d tasks x %s xorshift steps, spread with PC_WORKER_ANY: W=1 %.1f "
         "ms, then W=%d %.1f ms (two nodes, one after the other)",
         par.tasks, count_str(par.iters, b), t1 * 1e3, w, tw * 1e3);
    t1 = par_threads(1);
    tw = par_threads(w);
    note(r, "; the same work on 1 vs %d plain threads, now: %.2f×", w, t1 / tw);
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
} sv;

/* Take k "done" notices, then stop the clock. */
static void
sv_finish(int k)
{
    for (int i = 0; i < k; i++)
        (void)sv_recv();
    clock_stop();
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
    clock_start();
    for (long i = 0; i < sv.n; i++) {
        sv_send(pong, K_PING, 0, i);
        if (sv_recv().value != i)
            fail("savina pingpong: wrong pong", PC_EPROTO);
    }
    clock_stop();
    sv_send(pong, K_STOP, 0, 0);
    return NULL;
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
    clock_start();
    sv_send(sv.b, K_START, 0, 0);
    sv_finish(1);
    return NULL;
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
    clock_start();
    sv_send(sv.refs[0], K_PING, 0, sv.n);
    sv_finish(1);
    return NULL; /* the ring still reads sv.refs while STOP goes round */
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
    clock_start();
    for (long i = 0; i < sv.n; i++)
        for (int a = 0; a < sv.actors; a++)
            sv_send(sv.refs[a], K_WORK, 0, i);
    sv_finish(sv.actors);
    return NULL;
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
    clock_start();
    for (long i = 0; i < sv.n; i++) {
        pc_ref a;
        CHECK(pc_actor_spawn(svfjc_actor, NULL, NULL, &o, &a));
        sv_send(a, K_WORK, 0, i);
    }
    sv_finish(1);
    return NULL;
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
    clock_start();
    for (int a = 0; a < sv.actors; a++)
        sv_send(sv.refs[a], K_START, 0, 0);
    sv_finish(sv.actors);
    /* No ping is in flight once all are done: each had one at most. */
    for (int a = 0; a < sv.actors; a++)
        sv_send(sv.refs[a], K_STOP, 0, 0);
    return NULL;
}

/* The Savina rows: each runs its driver once; the figure is its time in
 * ms. The refs and actor states live outside the node, so nothing is freed
 * while an actor or task may still use it. */

enum {
    SV_PINGPONG,
    SV_COUNTING,
    SV_THREADRING,
    SV_FJ_THROUGHPUT,
    SV_FJ_CREATION,
    SV_BIG
};

static const struct sv_def {
    pc_task_fn driver;
    size_t state_size; /* per actor */
    int actors;
    long n, n_quick;
    const char *what, *per; /* the note: "what; n per" */
} sv_defs[] = {
    [SV_PINGPONG] = {svpp_driver, 0, 0, 40000, 4000,
                     "2 tasks (the pong task on worker 1 when W > 1), a new "
                     "16-byte message each way",
                     "pings"},
    [SV_COUNTING] = {svc_driver, 0, 0, 1000000, 20000,
                     "a producer light actor sends a counter light actor new "
                     "16-byte messages, then asks for the count",
                     "messages"},
    [SV_THREADRING] = {svtr_driver, 0, 100, 100000, 10000,
                       "100 tasks in a ring, a new 16-byte token per pass",
                       "passes"},
    [SV_FJ_THROUGHPUT] = {svfjt_driver, sizeof(fj_state), 60, 10000, 1000,
                          "the driver sends each of 60 light actors new "
                          "16-byte messages, 8 LCG steps per message",
                          "messages to each"},
    [SV_FJ_CREATION] = {svfjc_driver, 0, 0, 40000, 4000,
                        "light actors, each spawned, sent one new 16-byte "
                        "message and ending on it",
                        "actors"},
    [SV_BIG] = {svbig_driver, sizeof(big_state), 120, 20000, 1000,
                "120 light actors, each pings a random peer and waits for "
                "its pong; new 16-byte messages",
                "pings each"},
};

static void
bench_savina(result *r, int which)
{
    const struct sv_def *d = &sv_defs[which];
    char b[32];

    sv.actors = d->actors;
    sv.n = SIZE(d->n, d->n_quick);
    sv.refs = calloc((size_t)sv.actors + 1, sizeof *sv.refs);
    sv.state = calloc((size_t)sv.actors + 1, d->state_size ? d->state_size : 1);
    if (!sv.refs || !sv.state)
        fail("calloc", PC_ENOMEM);
    r->figure = run_node(sv_workers(), 0, d->driver, NULL) * 1e3;
    free(sv.refs);
    free(sv.state);
    note(r, "%s; %s %s", d->what, count_str(sv.n, b), d->per);
}

/* ------------------------------------------------------------------------ */
/* Thread pool: a task calls pc_pool_run() with a trivial function, over and
 * over: task → pool thread → back to the task on its own worker. The pool
 * is made and freed by the driver (a pool must be freed before the node
 * ends). */

static struct {
    long n;
} tp;

static void *
tp_fn(void *arg)
{
    return arg;
}

static pc_msg *
tp_driver(void *arg)
{
    pc_pool *pool;

    (void)arg;
    CHECK(pc_pool_new(&pool, 1));
    clock_start();
    for (long i = 0; i < tp.n; i++) {
        void *res = NULL;
        CHECK(pc_pool_run(pool, tp_fn, (void *)(intptr_t)(i + 1), -1, &res));
        if (res != (void *)(intptr_t)(i + 1))
            fail("pc_pool_run: wrong result", PC_EPROTO);
    }
    clock_stop();
    CHECK(pc_pool_free(&pool));
    return NULL;
}

static void
bench_pool(result *r, int unused)
{
    char b[32];

    (void)unused;
    tp.n = SIZE(200000, 5000);
    r->figure = run_node(1, 0, tp_driver, NULL) / tp.n * 1e6;
    note(r,
         "1 task on 1 worker, 1 pool thread; %s pc_pool_run calls one after "
         "the other, fn returns its argument",
         count_str(tp.n, b));
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
    clock_start();
    for (long i = 0; i < cf.k; i++) {
        pc_msg *m;
        CHECK(pc_msg_new(&m, "tick", &i, sizeof i));
        CHECK(pc_chan_send(ch, &m));
        if (i % CF_BATCH == CF_BATCH - 1)
            CHECK(pc_yield());
    }
    recv_one();
    clock_stop();
    pc_chan_free(&ch);
    return NULL;
}

static void
bench_chan_fanout(result *r, int unused)
{
    char b1[32], b2[32];

    (void)unused;
    cf.subs = 1000;
    cf.k = SIZE(10000, 200);
    if (!(cf.got = calloc((size_t)cf.subs, sizeof *cf.got)))
        fail("calloc", PC_ENOMEM);
    r->figure = (double)cf.k * cf.subs / run_node(1, 0, cf_driver, NULL) / 1e6;
    free(cf.got);
    note(r,
         "1 worker; the driver publishes %s new 8-byte messages with "
         "pc_chan_send (yielding every %d) to %s light-actor subscribers, "
         "each counts its own; a delivery is one message taken by one "
         "subscriber",
         count_str(cf.k, b1), CF_BATCH, count_str(cf.subs, b2));
}

/* ------------------------------------------------------------------------ */
/* HTTP. The picos-webserver loop (an accept task per worker, a task per
 * connection spread over the workers, keep-alive) in this process on an
 * ephemeral loopback port, loaded by wrk from the main thread, which is not
 * a worker. Plain and TLS connections share one request loop, given the
 * connection's read and write calls. */

static const char hb_pong[] = "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n"
                              "Connection: keep-alive\r\n\r\nping pong";

typedef struct hb_io {
    pc_err (*read)(void *c, void *buf, size_t len, size_t *n);
    pc_err (*write)(void *c, const void *buf, size_t len);
} hb_io;

static struct {
    pc_task_fn conn; /* one task per accepted connection */
    pc_tls_ctx *ctx; /* https: the server's context */
    const char *wrk; /* the wrk options, for the note */
} hb;

/* Answer every request on connection c with hb_pong, the answers to one
 * read's requests in one write, until EOF or an error. */
static void
hb_serve(void *c, const hb_io *io)
{
    char buf[8193], out[16 * (sizeof hb_pong - 1)];
    size_t used = 0, n;

    while (used < sizeof buf - 1 &&
           io->read(c, buf + used, sizeof buf - 1 - used, &n) == PC_OK &&
           n > 0) {
        char *p = buf, *e;
        size_t outlen = 0;
        int ok = 1;

        used += n;
        buf[used] = '\0';
        while (ok && (e = strstr(p, "\r\n\r\n"))) { /* one per request */
            if (outlen == sizeof out) {
                ok = io->write(c, out, outlen) == PC_OK;
                outlen = 0;
            }
            memcpy(out + outlen, hb_pong, sizeof hb_pong - 1);
            outlen += sizeof hb_pong - 1;
            p = e + 4;
        }
        if (!ok || (outlen && io->write(c, out, outlen) != PC_OK))
            break;
        used -= (size_t)(p - buf);
        memmove(buf, p, used);
    }
}

static pc_err
hb_sock_read(void *c, void *buf, size_t len, size_t *n)
{
    return pc_sock_read(c, buf, len, -1, n);
}

static pc_err
hb_sock_write(void *c, const void *buf, size_t len)
{
    return pc_sock_write_all(c, buf, len, -1, NULL);
}

static pc_err
hb_tls_read(void *c, void *buf, size_t len, size_t *n)
{
    return pc_tls_read(c, buf, len, -1, n);
}

static pc_err
hb_tls_write(void *c, const void *buf, size_t len)
{
    return pc_tls_write_all(c, buf, len, -1);
}

static pc_msg *
hb_conn(void *arg)
{
    static const hb_io io = {hb_sock_read, hb_sock_write};
    pc_sock *s = arg;

    hb_serve(s, &io);
    pc_sock_close(&s);
    return NULL;
}

static pc_msg *
hb_tls_conn(void *arg)
{
    static const hb_io io = {hb_tls_read, hb_tls_write};
    pc_sock *s = arg;
    pc_tls *t;

    if (pc_tls_wrap(&t, hb.ctx, s, NULL) != PC_OK) {
        pc_sock_close(&s);
        return NULL;
    }
    if (pc_tls_handshake(t, 10.0) == PC_OK)
        hb_serve(t, &io);
    pc_tls_close(&t);
    return NULL;
}

static pc_msg *
hb_accept(void *arg)
{
    pc_sock *l = arg, *c;
    pc_spawn_opts any = {.worker = PC_WORKER_ANY}; /* accept is bursty */

    while (pc_sock_accept(l, &c, -1) == PC_OK)
        if (pc_spawn(hb.conn, c, &any, NULL) != PC_OK)
            pc_sock_close(&c);
    pc_sock_release(&l);
    return NULL;
}

/* One node lifetime with one wrk run against `scheme`://: sets the figure
 * (requests/s) and the note, or a "skipped" note and figure 0 when wrk is
 * missing or says nothing (not a failure of picos). */
static void
hb_run(result *r, const char *scheme)
{
    pc_node_opts o = {.workers = 2};
    pc_sock *l;
    char cmd[192], line[256], summary[128] = "";
    double rps = -1;
    int status;
    FILE *f;

    CHECK(pc_node_start(&o));
    CHECK(pc_sock_listen(&l, "127.0.0.1", 0, 5000));
    for (int w = 0; w < 2; w++)
        CHECK(pc_spawn(hb_accept, pc_sock_retain(l),
                       &(pc_spawn_opts){.worker = PC_WORKER(w)}, NULL));
    hb.wrk = g_quick ? "-t2 -c100 -d1s" : "-t2 -c100 -d5s";
    snprintf(cmd, sizeof cmd, "wrk %s %s://127.0.0.1:%u/ 2>&1", hb.wrk, scheme,
             (unsigned)pc_sock_port(l));
    fflush(NULL);
    f = popen(cmd, "r"); /* from main(), which is not a worker */
    while (f && fgets(line, sizeof line, f)) {
        sscanf(line, "Requests/sec: %lf", &rps);
        if (strstr(line, "requests in")) {
            char *p = line + strspn(line, " ");
            snprintf(summary, sizeof summary, "%.*s", (int)strcspn(p, "\n"), p);
        }
    }
    status = f ? pclose(f) : -1;
    /* The node ends by itself: closing l ends the accept tasks, and wrk's
     * exit the connection tasks. (pc_node_stop() would end them before
     * they release their listener and socket references.) */
    pc_sock_close(&l);
    CHECK(pc_node_run());
    r->figure = rps > 0 ? rps : 0;
    if (rps < 0)
        note(r, "skipped: %s",
             WIFEXITED(status) && WEXITSTATUS(status) == 127
                 ? "wrk not found (apt-get install wrk)"
                 : "wrk printed no Requests/sec");
    else
        note(r,
             "2 workers, an accept task on each, a task per connection "
             "(PC_WORKER_ANY), keep-alive, a 9-byte body; wrk %s from the "
             "same 2 cores: %s",
             hb.wrk, summary);
}

static void
bench_http(result *r, int unused)
{
    (void)unused;
    hb.conn = hb_conn;
    hb_run(r, "http");
}

/* HTTP over TLS: the same loop over pc_tls (TLS 1.3, EC P-256 certs made by
 * the openssl CLI in a temp dir), loaded by wrk over https (wrk does not
 * verify certificates). Target: half the plain http-wrk target. */
static void
bench_https(result *r, int unused)
{
    char dir[64] = "/tmp/picos-bench-tls-XXXXXX", cmd[1536];
    char f_crt[96], f_key[96];

    (void)unused;
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
        pc_tls_ctx_new(&hb.ctx, &(pc_tls_ctx_opts){.server = true,
                                                   .cert_file = f_crt,
                                                   .key_file = f_key}) !=
            PC_OK) {
        note(r, "skipped: openssl could not make a certificate");
    } else {
        hb.conn = hb_tls_conn;
        hb_run(r, "https");
        if (r->figure > 0)
            note(r, "; TLS 1.3 (wolfSSL), EC P-256; target is half the "
                    "plain http-wrk target");
    }
    pc_tls_ctx_free(&hb.ctx);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

/* ------------------------------------------------------------------------ */
/* TCP echo: a client task and an echo task on one worker, 32-byte messages
 * over one loopback connection. Beside it, in the same process right after,
 * its floor: one plain pthread, no picos, that plays both ends of the same
 * kind of connection and makes the system calls a picos worker makes for a
 * round trip (each side tries the read first, as pc_sock does, and waits in
 * epoll when it finds nothing):
 *
 *   write(c) read(c)=EAGAIN epoll_wait=s read(s) write(s) read(s)=EAGAIN
 *   epoll_wait=c read(c)
 *
 * on a level-triggered epoll set holding both fds from the start. The figure
 * is picos's time over the floor's. */

#define TE_SIZE 32

static struct {
    long n;
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

static pc_msg *
te_driver(void *arg)
{
    char msg[TE_SIZE] = "ping", back[TE_SIZE];
    pc_sock *l, *s;

    (void)arg;
    CHECK(pc_sock_listen(&l, "127.0.0.1", 0, 0));
    uint16_t port = pc_sock_port(l);
    CHECK(pc_spawn(te_echo, l, NULL, NULL)); /* the echo owns l now */
    CHECK(pc_sock_connect(&s, "127.0.0.1", port, 5.0));
    clock_start();
    for (long i = 0; i < te.n; i++) {
        CHECK(pc_sock_write_all(s, msg, sizeof msg, -1, NULL));
        CHECK(pc_sock_read_exact(s, back, sizeof back, -1, NULL));
    }
    clock_stop();
    pc_sock_close(&s);
    return NULL;
}

/* The floor's pieces. Each checks what it expects and ends the run if the
 * kernel does otherwise. */
static void
fl_write(int fd, const char *buf)
{
    if (write(fd, buf, TE_SIZE) != TE_SIZE)
        sys_fail("floor: write");
}

static void
fl_nothing(int fd)
{
    char b[1];

    if (read(fd, b, sizeof b) >= 0 || errno != EAGAIN)
        sys_fail("floor: read did not find nothing");
}

static void
fl_wait(int ep, int fd)
{
    struct epoll_event ev;

    if (epoll_wait(ep, &ev, 1, -1) != 1 || ev.data.fd != fd)
        sys_fail("floor: epoll_wait");
}

static void
fl_read(int fd, char *buf)
{
    if (read(fd, buf, TE_SIZE) != TE_SIZE) /* loopback: all 32 at once */
        sys_fail("floor: read");
}

/* A connected loopback TCP pair like pc_sock's: non-blocking, TCP_NODELAY. */
static void
fl_pair(int *c, int *s)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t alen = sizeof a;
    int one = 1, l = socket(AF_INET, SOCK_STREAM, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(l, 1) != 0 || getsockname(l, (struct sockaddr *)&a, &alen) != 0)
        sys_fail("floor: listen");
    if ((*c = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
        connect(*c, (struct sockaddr *)&a, sizeof a) != 0 ||
        (*s = accept(l, NULL, NULL)) < 0)
        sys_fail("floor: connect");
    close(l);
    for (int i = 0; i < 2; i++) {
        int fd = i ? *s : *c;
        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0 ||
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
            sys_fail("floor: socket options");
    }
}

static void *
fl_thread(void *arg)
{
    char msg[TE_SIZE] = "ping", buf[TE_SIZE];
    double *secs = arg;
    int c, s, ep = epoll_create1(0);

    fl_pair(&c, &s);
    for (int i = 0; i < 2; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = i ? s : c};
        if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ev.data.fd, &ev) != 0)
            sys_fail("floor: epoll");
    }
    double t0 = pc_now();
    for (long i = 0; i < te.n; i++) {
        fl_write(c, msg); /* the client sends */
        fl_nothing(c);    /* and finds no answer yet */
        fl_wait(ep, s);   /* the loop: the echo's side is readable */
        fl_read(s, buf);  /* the echo reads */
        fl_write(s, buf); /* and answers */
        fl_nothing(s);    /* and finds no next request yet */
        fl_wait(ep, c);   /* the loop: the client's side is readable */
        fl_read(c, buf);  /* the client reads the answer */
    }
    *secs = pc_now() - t0;
    close(ep);
    close(c);
    close(s);
    return NULL;
}

static void
bench_tcp_echo(result *r, int unused)
{
    pthread_t th;
    double floor_secs = 0;
    char b[32];

    (void)unused;
    te.n = SIZE(100000, 5000);
    double us = run_node(1, 0, te_driver, NULL) / te.n * 1e6;
    if (pthread_create(&th, NULL, fl_thread, &floor_secs) != 0)
        fail("pthread_create", PC_ESYS);
    pthread_join(th, NULL);
    double floor_us = floor_secs / te.n * 1e6;
    r->figure = us / floor_us;
    snprintf(r->shown, sizeof r->shown, "%.2f (%.1f vs %.1f µs)", r->figure, us,
             floor_us);
    note(r,
         "%s round trips of %d bytes over one loopback TCP connection "
         "(TCP_NODELAY); picos: a client task and an echo task on 1 worker "
         "(pc_sock_write_all, pc_sock_read_exact / pc_sock_read), %.2f µs; "
         "floor, measured next in the same process: one plain pthread "
         "playing both ends on a level-triggered epoll set, 2 writes, 4 "
         "reads (2 finding nothing) and 2 epoll_waits per round trip, %.2f "
         "µs",
         count_str(te.n, b), TE_SIZE, us, floor_us);
}

/* ------------------------------------------------------------------------ */
/* Raw ZeroMQ baselines (bench_zmq.c): no picos, two processes on loopback,
 * the figures picos's remote rows are compared with. param: ZB_CURVE and
 * ZB_STREAM bits. */

enum { ZB_CURVE = 1, ZB_STREAM = 2 };

#define ZB_SIZE 100

static void
bench_zmq(result *r, int param)
{
    bool curve = param & ZB_CURVE, stream = param & ZB_STREAM;
    long n = stream ? SIZE(1000000, 20000) : SIZE(20000, 500);
    char b[32];
    double v = stream ? bench_zmq_stream(curve, ZB_SIZE, n)
                      : bench_zmq_rtt(curve, ZB_SIZE, n);

    if (v < 0)
        fail(stream ? "bench_zmq_stream" : "bench_zmq_rtt", PC_ESYS);
    r->figure = stream ? v / 1e6 : v;
    if (stream)
        note(r,
             "libzmq %d.%d.%d, no picos: a DEALER in this process sends %s "
             "%d-byte messages, one ZeroMQ message each (zmq_send), to a "
             "ROUTER in a forked process that counts them; timed from the "
             "first send to the ROUTER taking the last (it sends back that "
             "time, CLOCK_MONOTONIC)",
             ZMQ_VERSION_MAJOR, ZMQ_VERSION_MINOR, ZMQ_VERSION_PATCH,
             count_str(n, b), ZB_SIZE);
    else
        note(r,
             "libzmq %d.%d.%d, no picos: a DEALER in this process sends a "
             "%d-byte message to a ROUTER in a forked process, which echoes "
             "it back; the mean of %s round trips, one at a time",
             ZMQ_VERSION_MAJOR, ZMQ_VERSION_MINOR, ZMQ_VERSION_PATCH, ZB_SIZE,
             count_str(n, b));
    note(r,
         "; tcp://127.0.0.1, %s, default high-water marks, after %d untimed "
         "round trips (bench_zmq.c)",
         curve ? "CURVE (zmq_curve_keypair, no ZAP handler)"
               : "plain (NULL mechanism)",
         BENCH_ZMQ_WARMUP);
}

/* ------------------------------------------------------------------------ */
/* Remote rows (bench_net.c): two picos nodes, one worker each, on loopback
 * with CURVE; the raw-ZeroMQ baseline each is compared with is measured
 * first, in the same run, before this process has a node. The channel rows
 * have BENCH_NET_SUBS subscriber nodes and no baseline. */

enum { NB_RTT, NB_STREAM, NB_DELIVER, NB_CHAN, NB_CHAN_DELIVER, NB_RTT_THREAD };

#define NB_SENDERS 4

/* "A 1,000/10 (100.0)": envelopes / frames a node sent (per frame). */
static void
note_frames(result *r, const char *who, const pc_net_stats *s)
{
    char b1[32], b2[32];

    note(r, " %s %s/%s (%.1f)", who, count_str((long)s->env_out, b1),
         count_str((long)s->frames_out, b2),
         s->frames_out ? (double)s->env_out / (double)s->frames_out : 0.0);
}

static void
bench_net(result *r, int param)
{
    bench_net_info in = {0};
    char b[32];
    /* NB_RTT with every node's links on a thread of their own (what a node
     * of 2+ workers gets by default); else the default of a node of one
     * worker: on its loop */
    bool thread = param == NB_RTT_THREAD;

    if (thread)
        param = NB_RTT;
    bench_net_link_worker = thread ? PC_NET_LINK_THREAD : 0;
    long n = param == NB_STREAM ? SIZE(1000000, 20000)
             : param == NB_CHAN ? SIZE(200000, 5000)
                                : SIZE(20000, 500);
    double raw = 0, v;

    if (param == NB_RTT)
        raw = bench_zmq_rtt(true, ZB_SIZE, n);
    else if (param == NB_STREAM)
        raw = bench_zmq_stream(true, ZB_SIZE, n);
    if (raw < 0)
        fail("raw ZeroMQ baseline", PC_ESYS);
    v = param == NB_RTT       ? bench_net_rtt(ZB_SIZE, n, &in)
        : param == NB_STREAM  ? bench_net_stream(ZB_SIZE, n, NB_SENDERS, &in)
        : param == NB_DELIVER ? bench_net_deliver(ZB_SIZE, n, &in)
        : param == NB_CHAN    ? bench_net_chan(ZB_SIZE, n, &in)
                              : bench_net_chan_deliver(ZB_SIZE, n, &in);
    if (v < 0)
        fail("bench_net", PC_ESYS);
    count_str(n, b);
    if (param == NB_RTT) {
        r->figure = v / raw;
        snprintf(r->shown, sizeof r->shown, "%.2f (%.1f vs %.1f µs)", r->figure,
                 v, raw);
        note(r,
             "a task on node A sends a new %d-byte message (pc_send_data) "
             "to a task on node B, which sends it back (pc_send); mean of %s "
             "round trips, %.1f µs vs raw %.1f µs",
             ZB_SIZE, b, v, raw);
    } else if (param == NB_STREAM) {
        double ratio = v / raw;
        /* Two targets, both 1: the figure is the smaller, so "met" means
         * both are. */
        r->figure = ratio < v / 1e6 ? ratio : v / 1e6;
        snprintf(r->shown, sizeof r->shown, "%.2f × raw, %.2f M msg/s", ratio,
                 v / 1e6);
        note(r,
             "figure: the smaller, both targets being 1; %d tasks on node A "
             "send %s new %d-byte messages (pc_send; %ld PC_EFULL retried "
             "after a %.1f ms sleep) to a task on node B; timed to B taking "
             "the last: %.3f vs raw %.3f M msg/s",
             NB_SENDERS, b, ZB_SIZE, in.efull, BENCH_NET_EFULL_SLEEP * 1e3,
             v / 1e6, raw / 1e6);
    } else if (param == NB_CHAN) {
        long sum = 0;
        for (int i = 0; i < BENCH_NET_SUBS; i++)
            sum += in.got[i];
        r->figure = v / 1e6;
        snprintf(r->shown, sizeof r->shown, "%.2f (%ld missed)", r->figure,
                 n * BENCH_NET_SUBS - sum);
        note(r,
             "a task on node A pc_chan_send()s %s new %d-byte messages on its "
             "channel (best effort: one PUB message each) to a counting task "
             "on each of %d nodes B (pc_chan_locate_at, pc_chan_subscribe); "
             "timed from the first send to the last take on any B; "
             "deliveries per B:",
             b, ZB_SIZE, BENCH_NET_SUBS);
        for (int i = 0; i < BENCH_NET_SUBS; i++)
            note(r, "%s %ld", i ? " /" : "", in.got[i]);
        note(r,
             ", missed %ld of %ld (PUB high-water marks; the Bs' "
             "chan_missed, from sequence gaps: %llu; the rest were dropped "
             "after a B's last take, which no later number shows; a B that "
             "never gets all is done when its "
             "count stays put for %g s)",
             n * BENCH_NET_SUBS - sum, n * BENCH_NET_SUBS, in.chan_missed,
             BENCH_NET_SETTLE);
    } else {
        r->figure = v;
        if (param == NB_DELIVER)
            note(r,
                 "a task on node A pc_deliver()s a new %d-byte message to a "
                 "task on node B (which frees it), each waiting for B's "
                 "verdict; mean of %s",
                 ZB_SIZE, b);
        else
            note(r,
                 "a task on node A pc_chan_deliver()s a new %d-byte message "
                 "on its channel with n = %d: a subscriber task on each of %d "
                 "nodes B (which frees it); each waits for the count of all "
                 "%d; mean of %s",
                 ZB_SIZE, BENCH_NET_SUBS, BENCH_NET_SUBS, BENCH_NET_SUBS, b);
    }
    bool chan = param == NB_CHAN || param == NB_CHAN_DELIVER;
    note(r, "; envelopes/frames sent (per frame):");
    note_frames(r, "A", &in.a);
    note_frames(r, chan ? "first B" : "B", &in.b);
    note(r,
         "; W=1 per node, links %s, %s forked, tcp://127.0.0.1, CURVE, "
         "heartbeat timeout %g s, after %d untimed %s (bench_net.c)%s",
         thread ? "on a thread of their own (PC_NET_LINK_THREAD; the "
                  "default of a node of 2+ workers)"
                : "on the worker's loop (the default of a node of one worker)",
         chan ? "the Bs" : "B",
         BENCH_NET_TIMEOUT > 0 ? BENCH_NET_TIMEOUT : 1.0 /* the default */,
         BENCH_NET_WARMUP,
         chan ? "pc_chan_deliver()s and as many publications" : "round trips",
         param == NB_RTT || param == NB_STREAM
             ? "; raw: libzmq CURVE DEALER→ROUTER, measured first "
               "(bench_zmq.c)"
             : "");
}

/* ------------------------------------------------------------------------ */
/* The table                                                                */

typedef enum { NONE, AT_MOST, AT_LEAST } goal;

typedef struct bench {
    const char *name;  /* what --only and --row match */
    const char *label; /* first column */
    const char *unit;
    goal goal;
    double target;
    int uses_workers; /* --workers applies: show W in the label */
    void (*run)(result *r, int param);
    int param; /* the variant: a flag, a worker count, a Savina row */
} bench;

static const bench benches[] = {
    {"pingpong", "ping-pong round trip, new message each way (W=1)", "µs",
     AT_MOST, 0.06, 0, bench_pingpong, 1},
    {"pingpong-bounce", "ping-pong round trip, zero-allocation bounce (W=1)",
     "µs", NONE, 0, 0, bench_pingpong, 0},
    {"lock-handoff", "lock hand-off between two tasks (W=1)", "µs", AT_MOST,
     0.1, 0, bench_lock_handoff, 0},
    {"ring", "ring of 1,000 tasks, per hop, new message per hop (W=1)", "µs",
     AT_MOST, 0.06, 0, bench_ring, 1},
    {"ring-bounce",
     "ring of 1,000 tasks, per hop, zero-allocation bounce (W=1)", "µs", NONE,
     0, 0, bench_ring, 0},
    {"pool", "thread-pool round trip (W=1)", "µs", AT_MOST, 10, 0, bench_pool,
     0},
    {"spawn-tasks", "spawn + exit of 1M tasks, each messages the driver (W=1)",
     "s", AT_MOST, 0.3, 0, bench_spawn, 0},
    {"spawn-actors", "spawn 1M light actors, 1 message each (W=1)", "s",
     AT_MOST, 0.15, 0, bench_spawn, 1},
    {"rss-actors", "1M live idle light actors, RSS", "MB", AT_MOST, 160, 0,
     bench_rss_actors, 0},
    {"rss-tasks", "100k live idle tasks, RSS per task", "KB", AT_MOST, 4.3, 0,
     bench_rss_tasks, 0},
    {"rss-tasks-small", "100k live idle tasks (PC_TASK_SMALL), RSS per task",
     "KB", AT_MOST, 2.5, 0, bench_rss_tasks, PC_TASK_SMALL},
    {"mailbox-w1", "N:1 mailbox, 100 senders → 1 receiver (W=1)", "M msg/s",
     AT_LEAST, 20, 0, bench_mailbox, 1},
    {"mailbox-w2", "N:1 mailbox, 100 senders on worker 1 → 1 on 0 (W=2)",
     "M msg/s", AT_LEAST, 20, 0, bench_mailbox, 2},
    {"parallel", "parallel CPU work, speed-up over W=1", "×", AT_LEAST, 0.9, 1,
     bench_parallel, 0},
    {"savina-pingpong", "Savina PingPong: 40k pings, tasks", "ms", NONE, 0, 1,
     bench_savina, SV_PINGPONG},
    {"savina-counting", "Savina Counting: 1M messages, actors", "ms", NONE, 0,
     1, bench_savina, SV_COUNTING},
    {"savina-threadring", "Savina ThreadRing: 100 tasks, 100k passes", "ms",
     NONE, 0, 1, bench_savina, SV_THREADRING},
    {"savina-fj-throughput", "Savina Fork-join throughput: 60 actors × 10k",
     "ms", NONE, 0, 1, bench_savina, SV_FJ_THROUGHPUT},
    {"savina-fj-creation", "Savina Fork-join creation: 40k actors", "ms", NONE,
     0, 1, bench_savina, SV_FJ_CREATION},
    {"savina-big", "Savina Big: 120 actors × 20k pings", "ms", NONE, 0, 1,
     bench_savina, SV_BIG},
    {"chan-fanout", "channel fan-out, 1 publisher → 1,000 subscribers (W=1)",
     "M deliveries/s", AT_LEAST, 20, 0, bench_chan_fanout, 0},
    {"http-wrk", "HTTP ping-pong, wrk 100 connections (W=2)", "req/s", AT_LEAST,
     100000, 0, bench_http, 0},
    {"https-wrk-tls", "HTTP ping-pong over TLS, wrk 100 connections (W=2)",
     "req/s", AT_LEAST, 50000, 0, bench_https, 0},
    {"tcp-echo",
     "TCP echo round trip, 32 B, loopback, vs a plain epoll thread (W=1)",
     "× floor", AT_MOST, 1.5, 0, bench_tcp_echo, 0},
    {"zmq-rtt",
     "raw ZeroMQ DEALER→ROUTER round trip, 100 B, CURVE, 2 processes", "µs",
     NONE, 0, 0, bench_zmq, ZB_CURVE},
    {"zmq-rtt-plain",
     "raw ZeroMQ DEALER→ROUTER round trip, 100 B, plain, 2 processes", "µs",
     NONE, 0, 0, bench_zmq, 0},
    {"zmq-stream",
     "raw ZeroMQ one-way stream, 100 B messages, CURVE, 2 processes", "M msg/s",
     NONE, 0, 0, bench_zmq, ZB_STREAM | ZB_CURVE},
    {"zmq-stream-plain",
     "raw ZeroMQ one-way stream, 100 B messages, plain, 2 processes", "M msg/s",
     NONE, 0, 0, bench_zmq, ZB_STREAM},
    {"net-rtt",
     "remote round trip task→task, 100 B, CURVE, links on the worker, vs raw "
     "ZeroMQ",
     "× raw", AT_MOST, 1.3, 0, bench_net, NB_RTT},
    {"net-rtt-thread",
     "remote round trip task→task, 100 B, CURVE, link thread, vs raw ZeroMQ",
     "× raw", NONE, 0, 0, bench_net, NB_RTT_THREAD},
    {"net-stream",
     "remote one-way stream, 100 B, CURVE, 4 tasks → 1, vs raw ZeroMQ",
     "× raw, M msg/s", AT_LEAST, 1.0, 0, bench_net, NB_STREAM},
    {"net-deliver", "remote pc_deliver round trip, 100 B, CURVE", "µs", NONE, 0,
     0, bench_net, NB_DELIVER},
    {"net-chan", "channel publish to 3 subscriber nodes, 100 B, CURVE",
     "M deliveries/s", NONE, 0, 0, bench_net, NB_CHAN},
    {"net-chan-deliver",
     "channel pc_chan_deliver, n = 3 subscriber nodes, 100 B, CURVE", "µs",
     NONE, 0, 0, bench_net, NB_CHAN_DELIVER},
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

static const bench *
find_bench(const char *name)
{
    for (int k = 0; k < NBENCH; k++)
        if (strcmp(benches[k].name, name) == 0)
            return &benches[k];
    return NULL;
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

/* Read exactly size bytes from fd; how many came. */
static size_t
read_full(int fd, void *buf, size_t size)
{
    size_t got = 0;

    while (got < size) {
        ssize_t n = read(fd, (char *)buf + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return got;
}

/* One sample of a row: this program again, in a fresh process, running
 * only that row (--row), its result back through a pipe. 0 when it ran. */
static int
run_fresh(const bench *b, result *res, char *why, size_t why_size)
{
    char fd_arg[16], workers_arg[16];
    int fds[2], status;
    pid_t pid;

    if (pipe(fds) != 0) {
        snprintf(why, why_size, "pipe: %s", strerror(errno));
        return -1;
    }
    snprintf(fd_arg, sizeof fd_arg, "%d", fds[1]);
    snprintf(workers_arg, sizeof workers_arg, "%d", g_workers);
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        snprintf(why, why_size, "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        char *argv[10] = {"picos-bench", "--row", (char *)b->name,
                          "--result-fd", fd_arg};
        int argc = 5;

        if (g_quick)
            argv[argc++] = "--quick";
        if (g_workers) {
            argv[argc++] = "--workers";
            argv[argc++] = workers_arg;
        }
        close(fds[0]);
        alarm(g_quick ? 120 : 600); /* kept across exec: a hang fails */
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    close(fds[1]);
    size_t got = read_full(fds[0], res, sizeof *res);
    close(fds[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFSIGNALED(status)) {
        snprintf(why, why_size, "failed: %s",
                 WTERMSIG(status) == SIGALRM ? "timed out"
                                             : strsignal(WTERMSIG(status)));
        return -1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || got != sizeof *res) {
        snprintf(why, why_size, "failed: exit %d", WEXITSTATUS(status));
        return -1;
    }
    return 0;
}

static int
by_figure(const void *a, const void *b)
{
    double x = ((const result *)a)->figure, y = ((const result *)b)->figure;

    return (x > y) - (x < y);
}

/* The row's figure: `samples` fresh processes (or, with fork_each 0, one
 * run in this one); *res becomes the median sample (the lower of the two
 * middle ones for an even count, so it is a run that happened), its note
 * followed by every sample in the order they ran. 0 when all ran. */
static int
run_samples(const bench *b, int samples, int fork_each, result *res, char *why,
            size_t why_size)
{
    result s[MAX_SAMPLES], sorted[MAX_SAMPLES];

    if (!fork_each) {
        memset(res, 0, sizeof *res);
        b->run(res, b->param);
        return 0;
    }
    for (int i = 0; i < samples; i++) {
        memset(&s[i], 0, sizeof s[i]);
        if (run_fresh(b, &s[i], why, why_size) != 0)
            return -1;
    }
    memcpy(sorted, s, (size_t)samples * sizeof *s);
    qsort(sorted, (size_t)samples, sizeof *sorted, by_figure);
    *res = sorted[(samples - 1) / 2];
    if (samples > 1) {
        note(res, "; median of %d fresh processes:", samples);
        for (int i = 0; i < samples; i++)
            note(res, "%s %.4g", i ? " /" : "", s[i].figure);
        note(res, " %s", b->unit);
    }
    return 0;
}

/* --row: run one benchmark once, here, and hand the result to the parent
 * (result_fd >= 0) or print it. */
static int
run_row(const char *name, int result_fd)
{
    const bench *b = find_bench(name);
    result res;

    if (!b) {
        fprintf(stderr, "picos-bench: no benchmark '%s' (--list)\n", name);
        return 2;
    }
    memset(&res, 0, sizeof res);
    b->run(&res, b->param);
    if (result_fd >= 0)
        return write(result_fd, &res, sizeof res) == (ssize_t)sizeof res ? 0
                                                                         : 3;
    char fig[64];
    fmt_figure(fig, sizeof fig, res.figure);
    printf("%s: %s %s\n%s\n", b->name, res.shown[0] ? res.shown : fig, b->unit,
           res.note);
    return 0;
}

static void
print_table(const row *rows, int n)
{
    const char *v[NBENCH][BENCH_COLS];

    for (int i = 0; i < n; i++) {
        const char *r[BENCH_COLS] = {rows[i].label, rows[i].figure,
                                     rows[i].unit, rows[i].target, rows[i].met};
        memcpy(v[i], r, sizeof r);
    }
    bench_print_table(v[0], n);
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
            "[--samples N] [--no-fork] [--list] [--row NAME]\n"
            "  --quick      small sizes and 1 sample (a smoke run)\n"
            "  --only NAME  run the benchmarks whose name contains NAME\n"
            "  --workers N  workers for the parallel speed-up (default 2) "
            "and Savina (default 1)\n"
            "  --samples N  fresh processes per row, the median is shown "
            "(default 3, --quick 1, at most %d)\n"
            "  --no-fork    run each row once in this process (for perf, "
            "callgrind, gdb; later rows start warm)\n"
            "  --row NAME   run benchmark NAME once in this process and print "
            "its figure\n"
            "  --list       print the benchmark names\n",
            MAX_SAMPLES);
}

int
main(int argc, char **argv)
{
    const char *only = NULL, *row_name = NULL;
    int fork_each = 1, samples = 0, result_fd = -1;
    row rows[NBENCH];
    int nrows = 0, failures = 0, met = 0, goals = 0;
    double load = bench_load_average();

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            g_quick = 1;
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            only = argv[++i];
        } else if (strcmp(argv[i], "--row") == 0 && i + 1 < argc) {
            row_name = argv[++i];
        } else if (strcmp(argv[i], "--result-fd") == 0 && i + 1 < argc) {
            result_fd = atoi(argv[++i]); /* internal: set by run_fresh */
        } else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
            g_workers = atoi(argv[++i]);
            if (g_workers < 1 || g_workers > 1024) {
                fprintf(stderr, "picos-bench: bad --workers\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--samples") == 0 && i + 1 < argc) {
            samples = atoi(argv[++i]);
            if (samples < 1 || samples > MAX_SAMPLES) {
                fprintf(stderr, "picos-bench: bad --samples\n");
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
    if (row_name)
        return run_row(row_name, result_fd);
    if (!samples)
        samples = g_quick ? 1 : 3;
    if (!fork_each)
        samples = 1;

    for (int k = 0; k < NBENCH; k++) {
        const bench *b = &benches[k];
        row *rw = &rows[nrows];
        result res;
        char why[128] = "";

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

        int ok = run_samples(b, samples, fork_each, &res, why, sizeof why) == 0;

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
        if (res.shown[0])
            snprintf(rw->figure, sizeof rw->figure, "%s", res.shown);
        else
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
    printf("\n%d of %d targets met. KB and MB are 1024 and 1024² bytes. ", met,
           goals);
    if (fork_each)
        printf("Each figure is the median of %d sample%s, each a fresh "
               "process running its row once: a cold start, nothing warmed "
               "up.\n\n",
               samples, samples > 1 ? "s" : "");
    else
        printf("--no-fork: one run per row, all in this process (later rows "
               "start warm).\n\n");
    for (int i = 0; i < nrows; i++)
        if (rows[i].note[0])
            printf("- %s: %s\n", rows[i].label, rows[i].note);
    return failures ? 1 : 0;
}
