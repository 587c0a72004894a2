/* bench_net — picos's remote rows, measured between picos nodes.
 *
 * One call is one run: write the secret, fork the node(s) B, wait for their
 * endpoints, and only then start node A here, so that neither a node nor a
 * ZeroMQ context ever crosses a fork. A B is one task ("bench", registered)
 * that answers by message type: "echo" goes back to its sender, "d" is
 * taken and freed, "m" is counted, "c" is counted with the time it was
 * taken, "sub" (an endpoint) connects to that node and subscribes the task
 * to its channel "bench", "mark" (an 8-byte count) starts a count and a
 * stats snapshot, "report" answers with the count, the time of the last
 * "c" and B's counters since the mark ("end"), as does the mark-th "m" or
 * "c", and "quit" ends B. One loop serves every workload: warm-up (echoes;
 * for the channel ones, which have BENCH_NET_SUBS Bs and make A listen too,
 * subscribing, delivers and publications), a mark, the timed part, an
 * "end" from each B, a quit. The driver on A is a task too, so every
 * message it sends or takes goes through the same pc_send / pc_recv /
 * pc_deliver / pc_chan_* paths an application's would.
 *
 * Every wait is bounded: the endpoints' arrival is polled, each picos call
 * that waits has a timeout, a B has an alarm and dies with the thread that
 * forked it, and its exit is waited for only so long before it is killed.
 * A failure prints one line on stderr (the first one only: the rest follow
 * from it) and the call returns -1 after killing and reaping every B.
 */
#define _GNU_SOURCE /* close_range, pipe2 */

#include "bench_net.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "picos/picos.h"

#define WAIT_S 30.0       /* any one picos wait (connect, reply, verdict) */
#define STREAM_WAIT_S 120 /* for the end of a stream */
#define EP_WAIT_MS 20000  /* for B's endpoint */
#define EXIT_WAIT_MS 5000 /* for B's exit once told to stop */
#define EP_SIZE 256

typedef enum { RTT, STREAM, DELIVER, CHAN, CHAN_DELIVER } kind;

int bench_net_link_worker; /* pc_net_opts.link_worker: 0, the default */

/* What B sends back in "end": when (the mark-th "m": then; else its last
 * "c"), how many it counted and its counters since the mark. */
typedef struct end_report {
    int64_t t_ns;
    int64_t got;
    pc_net_stats d;
} end_report;

static int64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* b - a, counter by counter (peers: b's). */
static pc_net_stats
stats_diff(const pc_net_stats *b, const pc_net_stats *a)
{
    pc_net_stats d = *b;

    d.frames_out -= a->frames_out, d.frames_in -= a->frames_in;
    d.env_out -= a->env_out, d.env_in -= a->env_in;
    d.refused -= a->refused, d.dropped -= a->dropped;
    d.auth_failed -= a->auth_failed, d.nodes_down -= a->nodes_down;
    d.chan_missed -= a->chan_missed;
    return d;
}

/* ------------------------------------------------------------------------ */
/* Node B (the child)                                                       */

static void
b_end(pc_ref to, const pc_net_stats *mark, long got, int64_t t_ns)
{
    end_report e = {.t_ns = t_ns, .got = got};
    pc_net_stats now = {0};

    pc_net_stats_get(&now);
    e.d = stats_diff(&now, mark);
    if (pc_send_data(to, "end", &e, sizeof e) != PC_OK)
        fprintf(stderr, "bench_net B: can't send the end\n");
}

/* "sub": reach the node at `home` and subscribe this task to its channel
 * "bench" (a subscriber node needs its own link to the home). */
static pc_err
b_subscribe(const char *home)
{
    pc_chan *ch = NULL;
    pc_err rc = pc_node_connect(home, WAIT_S, NULL);

    if (rc == PC_OK)
        rc = pc_chan_locate_at(home, "bench", WAIT_S, &ch);
    if (rc == PC_OK)
        rc = pc_chan_subscribe(ch, pc_self());
    return rc;
}

static pc_msg *
b_task(void *arg)
{
    long expect = 0, got = 0;
    int64_t last = 0;
    pc_ref boss = PC_REF_NIL;
    pc_net_stats mark = {0};

    (void)arg;
    for (;;) {
        pc_msg *m = NULL;
        size_t len;
        if (pc_recv(&m, -1) != PC_OK)
            return NULL;
        if (pc_msg_is(m, "m")) {
            if (++got == expect)
                b_end(boss, &mark, got, now_ns());
        } else if (pc_msg_is(m, "c")) {
            last = now_ns();
            if (++got == expect)
                b_end(boss, &mark, got, last);
        } else if (pc_msg_is(m, "echo")) {
            pc_ref to = pc_msg_sender(m);
            if (pc_send(to, &m) != PC_OK)
                fprintf(stderr, "bench_net B: can't echo\n");
        } else if (pc_msg_is(m, "mark")) {
            const void *d = pc_msg_data(m, &len);
            int64_t v = 0;
            if (len == sizeof v)
                memcpy(&v, d, sizeof v);
            expect = (long)v, got = 0, last = 0;
            boss = pc_msg_sender(m);
            pc_net_stats_get(&mark);
            pc_send_data(boss, "marked", NULL, 0);
        } else if (pc_msg_is(m, "report")) {
            b_end(pc_msg_sender(m), &mark, got, last);
        } else if (pc_msg_is(m, "sub")) {
            int32_t rc = b_subscribe(pc_msg_str(m));
            pc_send_data(pc_msg_sender(m), "subscribed", &rc, sizeof rc);
        } else if (pc_msg_is(m, "quit")) {
            pc_msg_free(&m);
            return NULL;
        }
        pc_msg_free(&m); /* "d", and whatever was not sent on */
    }
}

static void
b_fail(const char *what, pc_err rc)
{
    fprintf(stderr, "bench_net B: %s: %s\n", what, pc_strerror(rc));
    _exit(3);
}

/* The forked child: nothing of the parent's but memory and three stdio
 * descriptors stays in use. Never returns. */
static void
b_main(int wfd, pid_t parent, const char *secret)
{
    pc_node_opts o = {.workers = 1};
    pc_net_opts no = {.secret_file = secret,
                      .timeout = BENCH_NET_TIMEOUT,
                      .link_worker = bench_net_link_worker};
    pc_spawn_opts so = {.name = "bench"};
    char ep[EP_SIZE] = "";
    pc_ref r;
    pc_err rc;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) /* the parent died before prctl() */
        _exit(4);
    alarm(BENCH_NET_PEER_TIMEOUT);
    if (wfd > 3)
        close_range(3, (unsigned)wfd - 1, 0);
    close_range((unsigned)wfd + 1, ~0U, 0);
    if ((rc = pc_node_start(&o)) != PC_OK)
        b_fail("pc_node_start", rc);
    if ((rc = pc_net_start(&no)) != PC_OK)
        b_fail("pc_net_start", rc);
    if ((rc = pc_node_listen("tcp://127.0.0.1:0", ep, sizeof ep)) != PC_OK)
        b_fail("pc_node_listen", rc);
    if ((rc = pc_spawn(b_task, NULL, &so, &r)) != PC_OK)
        b_fail("pc_spawn", rc);
    if ((rc = pc_register("bench", r)) != PC_OK)
        b_fail("pc_register", rc);
    if (write(wfd, ep, sizeof ep) != (ssize_t)sizeof ep)
        b_fail("write the endpoint", PC_ESYS);
    close(wfd);
    pc_node_run();
    _exit(0);
}

/* ------------------------------------------------------------------------ */
/* Node A (this process)                                                    */

static struct {
    kind k;
    size_t size;
    long n;
    int senders;
    int nb;              /* nodes B */
    char (*ep)[EP_SIZE]; /* theirs */
    char aep[EP_SIZE];   /* ours (channel kinds) */
    char *buf;
    pc_ref b[BENCH_NET_SUBS]; /* their "bench" tasks */
    pc_chan *ch;              /* ours, "bench" (channel kinds) */
    atomic_long efull;
    atomic_int failed;
    int64_t t0, t1;
    bench_net_info info;
} g;

/* The first failure is printed, the rest follow from it. */
static void
a_fail(const char *what, pc_err rc)
{
    if (atomic_exchange(&g.failed, 1) == 0)
        fprintf(stderr, "bench_net: %s: %s (%s)\n", what, pc_err_name(rc),
                pc_strerror(rc));
}

#define TRY(call)                                                              \
    do {                                                                       \
        pc_err rc_ = (call);                                                   \
        if (rc_ != PC_OK) {                                                    \
            a_fail(#call, rc_);                                                \
            goto out;                                                          \
        }                                                                      \
    } while (0)

static pc_err
round_trips(long n)
{
    for (long i = 0; i < n; i++) {
        pc_msg *m = NULL;
        pc_err rc = pc_send_data(g.b[0], "echo", g.buf, g.size);
        if (rc == PC_OK)
            rc = pc_recv_type("echo", &m, WAIT_S);
        if (rc != PC_OK)
            return rc;
        size_t len;
        pc_msg_data(m, &len);
        pc_msg_free(&m);
        if (len != g.size)
            return PC_EPROTO;
    }
    return PC_OK;
}

static pc_msg *
a_sender(void *arg)
{
    long count = (long)(intptr_t)arg;

    for (long i = 0; i < count && !atomic_load(&g.failed); i++) {
        pc_msg *m = NULL;
        pc_err rc = pc_msg_new(&m, "m", g.buf, g.size);
        if (rc == PC_OK)
            while ((rc = pc_send(g.b[0], &m)) == PC_EFULL) {
                atomic_fetch_add_explicit(&g.efull, 1, memory_order_relaxed);
                pc_sleep(BENCH_NET_EFULL_SLEEP);
            }
        if (rc != PC_OK) {
            pc_msg_free(&m);
            a_fail("stream: pc_send", rc);
        }
    }
    return NULL;
}

/* Index of B whose task is `r`, or -1. */
static int
b_index(pc_ref r)
{
    for (int i = 0; i < g.nb; i++)
        if (pc_ref_eq(r, g.b[i]))
            return i;
    return -1;
}

/* Ask every B that isn't done for its report. */
static pc_err
ask_reports(const bool *done)
{
    for (int i = 0; i < g.nb; i++) {
        pc_err rc = done[i] ? PC_OK : pc_send_data(g.b[i], "report", NULL, 0);
        if (rc != PC_OK)
            return rc;
    }
    return PC_OK;
}

/* Every B's end report, into e[i]. A report is final when its count is
 * `want` (0: any report is; the caller asked for them); with `settle`,
 * also when it is the same in two answers to "report"s asked for
 * BENCH_NET_SETTLE apart (what the PUB dropped never comes), asked
 * whenever that long passes with nothing taken. PC_EUNREACH when a B's
 * task is reported down first (the driver monitors them: a node declared
 * down must not leave the driver waiting out the whole timeout). */
static pc_err
take_ends(double timeout, long want, bool settle, end_report *e)
{
    double deadline = pc_now() + timeout;
    bool done[BENCH_NET_SUBS] = {0};
    long prev[BENCH_NET_SUBS];
    int todo = g.nb;

    for (int i = 0; i < g.nb; i++)
        prev[i] = -1;
    while (todo > 0) {
        double left = deadline - pc_now(), wait = left;
        pc_msg *m = NULL;
        end_report r;
        size_t len;
        pc_err rc;

        if (settle && wait > BENCH_NET_SETTLE)
            wait = BENCH_NET_SETTLE;
        rc = pc_recv(&m, wait > 0 ? wait : 0);
        if (rc == PC_ETIMEDOUT && settle && left > wait) {
            if ((rc = ask_reports(done)) != PC_OK)
                return rc;
            continue;
        }
        if (rc != PC_OK)
            return rc;
        if (pc_msg_is(m, PC_MSG_DOWN)) {
            pc_msg_free(&m);
            return PC_EUNREACH;
        }
        int i = pc_msg_is(m, "end") ? b_index(pc_msg_sender(m)) : -1;
        const void *d = pc_msg_data(m, &len);
        if (i >= 0 && len == sizeof r)
            memcpy(&r, d, sizeof r);
        pc_msg_free(&m);
        if (i < 0 || done[i])
            continue; /* not a report, or a late answer to "report" */
        if (len != sizeof r)
            return PC_EPROTO;
        if (want == 0 || r.got == want || (settle && r.got == prev[i])) {
            e[i] = r, done[i] = true, todo--;
        } else {
            prev[i] = r.got;
        }
    }
    return PC_OK;
}

/* Tell every B `what` (payload: `len` bytes at `v`), take `answer` from
 * each; an answer of 4 bytes is B's verdict (a pc_err). */
static pc_err
ask_all(const char *what, const void *v, size_t len, const char *answer)
{
    for (int i = 0; i < g.nb; i++) {
        pc_err rc = pc_send_data(g.b[i], what, v, len);
        if (rc != PC_OK)
            return rc;
    }
    for (int i = 0; i < g.nb; i++) {
        pc_msg *m = NULL;
        int32_t v32 = PC_OK;
        size_t got;
        pc_err rc = pc_recv_type(answer, &m, WAIT_S);
        if (rc != PC_OK)
            return rc;
        const void *d = pc_msg_data(m, &got);
        if (got == sizeof v32)
            memcpy(&v32, d, sizeof v32);
        pc_msg_free(&m);
        if (v32 != PC_OK)
            return (pc_err)v32;
    }
    return PC_OK;
}

/* `n` new messages of `type` published on our channel, best effort. */
static pc_err
publish(long n, const char *type)
{
    for (long i = 0; i < n; i++) {
        pc_msg *m = NULL;
        pc_err rc = pc_msg_new(&m, type, g.buf, g.size);
        if (rc == PC_OK)
            rc = pc_chan_send(g.ch, &m);
        if (rc != PC_OK) {
            pc_msg_free(&m);
            return rc;
        }
    }
    return PC_OK;
}

/* `n` pc_chan_deliver()s with n = every B, one at a time; each must
 * count them all. */
static pc_err
chan_delivers(long n)
{
    for (long i = 0; i < n; i++) {
        pc_msg *m = NULL;
        int reached = 0;
        pc_err rc = pc_msg_new(&m, "d", g.buf, g.size);
        if (rc == PC_OK)
            rc = pc_chan_deliver(g.ch, &m, g.nb, WAIT_S, &reached);
        pc_msg_free(&m); /* still ours on error */
        if (rc != PC_OK)
            return rc;
        if (reached != g.nb) {
            char what[64];
            snprintf(what, sizeof what, "pc_chan_deliver reached %d of %d",
                     reached, g.nb);
            a_fail(what, PC_EPROTO);
            return PC_EPROTO;
        }
    }
    return PC_OK;
}

/* Channel kinds, once we listen and have reached every B: make "bench",
 * every B reaches us and subscribes its task; warm-up delivers (the first
 * waits until all of them count) and publications. */
static pc_err
chan_setup(void)
{
    pc_err rc = pc_chan_new(&g.ch, "bench", NULL, NULL);

    if (rc == PC_OK)
        rc = ask_all("sub", g.aep, strlen(g.aep), "subscribed");
    if (rc == PC_OK)
        rc = chan_delivers(1 + BENCH_NET_WARMUP);
    if (rc == PC_OK)
        rc = publish(BENCH_NET_WARMUP, "w"); /* B frees them */
    return rc;
}

static pc_msg *
a_driver(void *arg)
{
    bool chan = g.k == CHAN || g.k == CHAN_DELIVER;
    int64_t expect = g.k == STREAM || g.k == CHAN ? g.n : 0;
    pc_net_stats before = {0}, after = {0};
    end_report e[BENCH_NET_SUBS] = {0};
    pc_msg *m = NULL;

    (void)arg;
    /* Listen before connecting: a peer takes our PUB's endpoint from the
     * hello of the first connection, and without it its node never SUBs
     * (it expects publications directed, which a node with a PUB never
     * sends: every one would be lost, uncounted). */
    if (chan)
        TRY(pc_node_listen("tcp://127.0.0.1:0", g.aep, sizeof g.aep));
    for (int i = 0; i < g.nb; i++) {
        TRY(pc_node_connect(g.ep[i], WAIT_S, NULL));
        TRY(pc_locate_at(g.ep[i], "bench", WAIT_S, &g.b[i]));
        TRY(pc_monitor(pc_self(), g.b[i]));
    }
    if (chan)
        TRY(chan_setup());
    else
        TRY(round_trips(BENCH_NET_WARMUP));
    TRY(ask_all("mark", &expect, sizeof expect, "marked"));
    TRY(pc_net_stats_get(&before));
    if (g.k == STREAM) {
        long each = g.n / g.senders;
        for (int i = 0; i < g.senders; i++) {
            long count = each + (i == 0 ? g.n % g.senders : 0);
            TRY(pc_spawn(a_sender, (void *)(intptr_t)count, NULL, NULL));
        }
        /* They run when this task blocks, in take_ends. */
        g.t0 = now_ns();
        TRY(take_ends(STREAM_WAIT_S, g.n, false, e));
        g.t1 = e[0].t_ns;
    } else if (g.k == CHAN) {
        g.t0 = now_ns();
        TRY(publish(g.n, "c"));
        TRY(take_ends(STREAM_WAIT_S, g.n, true, e));
        for (int i = 0; i < g.nb; i++)
            if (e[i].t_ns > g.t1)
                g.t1 = e[i].t_ns;
    } else {
        g.t0 = now_ns();
        if (g.k == RTT) {
            TRY(round_trips(g.n));
        } else if (g.k == CHAN_DELIVER) {
            TRY(chan_delivers(g.n));
        } else {
            for (long i = 0; i < g.n; i++) {
                TRY(pc_msg_new(&m, "d", g.buf, g.size));
                pc_err rc = pc_deliver(g.b[0], &m, WAIT_S);
                pc_msg_free(&m); /* still ours on error */
                TRY(rc);
            }
        }
        g.t1 = now_ns();
        bool none[BENCH_NET_SUBS] = {0};
        TRY(ask_reports(none));
        TRY(take_ends(WAIT_S, 0, false, e));
    }
    TRY(pc_net_stats_get(&after));
    g.info.a = stats_diff(&after, &before);
    g.info.b = e[0].d;
    g.info.efull = atomic_load(&g.efull);
    for (int i = 0; i < g.nb; i++) {
        g.info.got[i] = (long)e[i].got;
        g.info.chan_missed += e[i].d.chan_missed;
    }
    /* Sent, not delivered one B after another: a B that leaves breaks this
     * node's links to the others (transport/link.c, 2026-12: they go
     * silent and are declared down). The transport sends what was asked
     * before it says goodbye; each B's exit status says it got it. */
    for (int i = 0; i < g.nb; i++)
        TRY(pc_send_data(g.b[i], "quit", NULL, 0));
    return NULL;
out:
    pc_node_stop(); /* don't wait for senders that may be stuck */
    return NULL;
}

static void
kill_b(pid_t *pid)
{
    if (*pid > 0) {
        kill(*pid, SIGKILL);
        while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR)
            ;
        *pid = 0;
    }
}

/* Wait for B to exit by itself, EXIT_WAIT_MS at most; 0 when it exited
 * with status 0. */
static int
reap_b(pid_t *pid)
{
    int status = 0;

    for (int ms = 0; ms < EXIT_WAIT_MS; ms++) {
        pid_t got = waitpid(*pid, &status, WNOHANG);
        if (got == *pid) {
            *pid = 0;
            if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return 0;
            fprintf(stderr, "bench_net: node B failed (status %#x)\n", status);
            return -1;
        }
        if (got < 0 && errno != EINTR)
            break;
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    }
    fprintf(stderr, "bench_net: node B did not exit; killed\n");
    kill_b(pid);
    return -1;
}

/* A fresh random secret in a new 0600 file; its path into `path`. */
static int
write_secret(char *path)
{
    unsigned char raw[32];
    char hex[2 * sizeof raw + 1];
    int fd = mkstemp(path); /* creates it 0600 */

    if (fd < 0) {
        perror("bench_net: mkstemp");
        return -1;
    }
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        perror("bench_net: getrandom");
        close(fd);
        unlink(path);
        return -1;
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    ssize_t w = write(fd, hex, strlen(hex));
    if (close(fd) != 0 || w != (ssize_t)strlen(hex)) {
        perror("bench_net: write the secret");
        unlink(path);
        return -1;
    }
    return 0;
}

/* Fork B; its endpoint into ep. 0 when B is up; *pid set when forked. */
static int
start_b(const char *secret, char *ep, pid_t *pid)
{
    int fds[2];
    pid_t self = getpid();

    if (pipe2(fds, O_CLOEXEC) != 0) {
        perror("bench_net: pipe");
        return -1;
    }
    fflush(NULL);
    *pid = fork();
    if (*pid == 0) {
        close(fds[0]);
        b_main(fds[1], self, secret);
    }
    close(fds[1]);
    if (*pid < 0) {
        perror("bench_net: fork");
        *pid = 0;
        close(fds[0]);
        return -1;
    }
    size_t got = 0;
    while (got < EP_SIZE) {
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        int ready = poll(&pfd, 1, EP_WAIT_MS);
        if (ready < 0 && errno == EINTR)
            continue;
        ssize_t r = ready == 1 ? read(fds[0], ep + got, EP_SIZE - got) : -1;
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fds[0]);
    if (got != EP_SIZE || !memchr(ep, '\0', EP_SIZE) || !ep[0]) {
        fprintf(stderr, "bench_net: no endpoint from node B\n");
        return -1;
    }
    return 0;
}

/* Fork `nb` Bs, one after another (none of them, nor this process, has a
 * node or a ZeroMQ context yet); their endpoints into ep. 0 when all are
 * up; pid[i] set for each one forked. */
static int
start_bs(const char *secret, int nb, char (*ep)[EP_SIZE], pid_t *pid)
{
    for (int i = 0; i < nb; i++)
        if (start_b(secret, ep[i], &pid[i]) != 0)
            return -1;
    return 0;
}

static double
run(kind k, size_t size, long n, int senders, bench_net_info *info)
{
    char secret[] = "/tmp/picos-bench-net-XXXXXX", ep[BENCH_NET_SUBS][EP_SIZE];
    pc_node_opts o = {.workers = 1};
    pc_spawn_opts so = {.worker = PC_WORKER(0), .name = "driver"};
    pid_t pid[BENCH_NET_SUBS] = {0};
    int nb = k == CHAN || k == CHAN_DELIVER ? BENCH_NET_SUBS : 1, ok = 0;

    if (size < 1 || n < 1 || senders < 1) {
        fprintf(stderr, "bench_net: size, n and senders must be >= 1\n");
        return -1;
    }
    memset(&g, 0, sizeof g);
    g.k = k, g.size = size, g.n = n, g.senders = senders, g.nb = nb;
    g.ep = ep;
    if (!(g.buf = calloc(1, size))) {
        fprintf(stderr, "bench_net: out of memory\n");
        return -1;
    }
    if (write_secret(secret) != 0) {
        free(g.buf);
        return -1;
    }
    if (start_bs(secret, nb, ep, pid) == 0) {
        pc_net_opts no = {.secret_file = secret,
                          .timeout = BENCH_NET_TIMEOUT,
                          .link_worker = bench_net_link_worker};
        pc_err rc = pc_node_start(&o);
        if (rc != PC_OK) {
            a_fail("pc_node_start", rc);
        } else {
            if ((rc = pc_net_start(&no)) != PC_OK) {
                a_fail("pc_net_start", rc);
                pc_node_stop();
            } else if ((rc = pc_spawn(a_driver, NULL, &so, NULL)) != PC_OK) {
                a_fail("pc_spawn", rc);
                pc_node_stop();
            }
            unlink(secret); /* every node has its keys (or never will) */
            pc_node_run();
            ok = !atomic_load(&g.failed);
        }
    }
    unlink(secret); /* again, for the paths that did not get there */
    pc_chan_free(&g.ch);
    free(g.buf);
    for (int i = 0; i < nb; i++) {
        if (ok)
            ok = reap_b(&pid[i]) == 0;
        kill_b(&pid[i]);
    }
    if (!ok)
        return -1;
    if (info)
        *info = g.info;
    long got = 0;
    for (int i = 0; i < nb; i++)
        got += g.info.got[i];
    if (k == CHAN && got == 0) {
        fprintf(stderr, "bench_net: no publication reached a subscriber\n");
        return -1;
    }
    if (g.t1 <= g.t0) {
        fprintf(stderr, "bench_net: the run ended before it began\n");
        return -1;
    }
    double secs = (double)(g.t1 - g.t0) / 1e9;
    return k == STREAM ? (double)n / secs
           : k == CHAN ? (double)got / secs
                       : secs * 1e6 / (double)n;
}

double
bench_net_rtt(size_t size, long n, bench_net_info *info)
{
    return run(RTT, size, n, 1, info);
}

double
bench_net_stream(size_t size, long n, int senders, bench_net_info *info)
{
    return run(STREAM, size, n, senders, info);
}

double
bench_net_deliver(size_t size, long n, bench_net_info *info)
{
    return run(DELIVER, size, n, 1, info);
}

double
bench_net_chan(size_t size, long n, bench_net_info *info)
{
    return run(CHAN, size, n, 1, info);
}

double
bench_net_chan_deliver(size_t size, long n, bench_net_info *info)
{
    return run(CHAN_DELIVER, size, n, 1, info);
}
