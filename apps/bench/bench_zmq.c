/* bench_zmq — raw ZeroMQ baselines measured between two processes.
 *
 * One call is one run: make the CURVE keys (they need no context), fork the
 * peer, and only then make this side's context, so that no ZeroMQ context
 * ever crosses a fork. The peer binds a ROUTER on port 0 and writes the
 * port into a pipe; this side connects a DEALER to it. The peer is told
 * what to do by what it inherits: echo the first `echo` messages, count the
 * next `count` and answer the last with the time it took it, and stop at
 * the first empty message. That one loop serves both workloads: a round
 * trip run is warm-up + n echoes and no count; a stream run is warm-up
 * echoes, then n counted.
 *
 * Every wait is bounded, so a broken peer turns into a failed call rather
 * than a hang: the pipe is polled, both sockets have send and receive
 * timeouts, the peer has an alarm and dies with the thread that forked it,
 * and its exit is waited for only so long before it is killed. A failure
 * prints one line on stderr and returns -1; the peer is killed and reaped
 * on every path.
 */
#define _GNU_SOURCE /* close_range */

#include "bench_zmq.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#define IO_TIMEOUT_MS 10000 /* any one send, receive or the port's arrival */
#define EXIT_WAIT_MS 5000   /* for the peer's exit once told to stop */

typedef struct keys {
    char srv_pub[41], srv_sec[41], cli_pub[41], cli_sec[41];
} keys;

/* What the peer does; see the file comment. */
typedef struct plan {
    bool curve;
    size_t size;
    long echo, count;
} plan;

static int64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int
zfail(const char *who, const char *what)
{
    fprintf(stderr, "bench_zmq %s: %s: %s\n", who, what, zmq_strerror(errno));
    return -1;
}

static int
setopt_int(void *s, int opt, int v)
{
    return zmq_setsockopt(s, opt, &v, sizeof v);
}

/* The options both ends share: bounded waits and a bounded linger (long
 * enough for a last message to leave before zmq_ctx_term() returns). */
static int
common_opts(void *s)
{
    return setopt_int(s, ZMQ_SNDTIMEO, IO_TIMEOUT_MS) ||
                   setopt_int(s, ZMQ_RCVTIMEO, IO_TIMEOUT_MS) ||
                   setopt_int(s, ZMQ_LINGER, IO_TIMEOUT_MS)
               ? -1
               : 0;
}

/* zmq_send / zmq_recv, retried on EINTR (the caller may have handlers). */
static int
zsend(void *s, const void *buf, size_t len, int flags)
{
    int rc;

    while ((rc = zmq_send(s, buf, len, flags)) < 0 && errno == EINTR)
        ;
    return rc;
}

static int
zrecv(void *s, void *buf, size_t len)
{
    int rc;

    while ((rc = zmq_recv(s, buf, len, 0)) < 0 && errno == EINTR)
        ;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The peer                                                                 */

/* The ROUTER's loop; 0 when it ended on the empty message. */
static int
peer_loop(void *r, const plan *p)
{
    unsigned char id[256];
    char *buf = malloc(p->size + 1);
    long echoed = 0, counted = 0;
    int rc = -1;

    if (!buf)
        return -1;
    for (;;) {
        int idlen = zrecv(r, id, sizeof id);
        int len = idlen < 0 ? -1 : zrecv(r, buf, p->size + 1);
        if (idlen < 0 || len < 0) {
            zfail("peer", "recv");
            break;
        }
        if (len == 0) {
            rc = 0;
            break;
        }
        if ((size_t)len != p->size) {
            fprintf(stderr, "bench_zmq peer: a %d-byte message, not %zu\n", len,
                    p->size);
            break;
        }
        if (echoed < p->echo) {
            echoed++;
            if (zsend(r, id, (size_t)idlen, ZMQ_SNDMORE) < 0 ||
                zsend(r, buf, (size_t)len, 0) < 0) {
                zfail("peer", "echo");
                break;
            }
        } else if (++counted == p->count) {
            int64_t t = now_ns();
            if (zsend(r, id, (size_t)idlen, ZMQ_SNDMORE) < 0 ||
                zsend(r, &t, sizeof t, 0) < 0) {
                zfail("peer", "report the end");
                break;
            }
        } else if (counted > p->count) {
            fprintf(stderr, "bench_zmq peer: more messages than planned\n");
            break;
        }
    }
    free(buf);
    return rc;
}

static int
peer_run(int wfd, const plan *p, const keys *k)
{
    char ep[64];
    size_t eplen = sizeof ep;
    void *ctx = zmq_ctx_new(), *r = ctx ? zmq_socket(ctx, ZMQ_ROUTER) : NULL;
    int rc = -1;

    if (!r) {
        zfail("peer", "context or socket");
    } else if (common_opts(r) ||
               (p->curve &&
                (setopt_int(r, ZMQ_CURVE_SERVER, 1) ||
                 zmq_setsockopt(r, ZMQ_CURVE_SECRETKEY, k->srv_sec, 40)))) {
        zfail("peer", "socket options");
    } else if (zmq_bind(r, "tcp://127.0.0.1:0") != 0 ||
               zmq_getsockopt(r, ZMQ_LAST_ENDPOINT, ep, &eplen) != 0) {
        zfail("peer", "bind");
    } else {
        const char *colon = strrchr(ep, ':');
        int port = colon ? atoi(colon + 1) : 0;
        if (port <= 0 || write(wfd, &port, sizeof port) != sizeof port)
            fprintf(stderr, "bench_zmq peer: cannot pass the port on\n");
        else
            rc = peer_loop(r, p);
    }
    close(wfd);
    if (r)
        zmq_close(r);
    if (ctx)
        zmq_ctx_term(ctx);
    return rc;
}

/* The forked child: nothing of the parent's but memory and three stdio
 * descriptors stays in use. Never returns. */
static void
peer_main(int wfd, pid_t parent, const plan *p, const keys *k)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) /* the parent died before prctl() */
        _exit(4);
    alarm(BENCH_ZMQ_PEER_TIMEOUT);
    if (wfd > 3)
        close_range(3, (unsigned)wfd - 1, 0);
    close_range((unsigned)wfd + 1, ~0U, 0);
    _exit(peer_run(wfd, p, k) == 0 ? 0 : 3);
}

/* ------------------------------------------------------------------------ */
/* This side                                                                */

typedef struct run {
    pid_t pid;
    void *ctx, *dealer;
    char *buf;
} run;

static void
kill_peer(run *x)
{
    if (x->pid > 0) {
        kill(x->pid, SIGKILL);
        while (waitpid(x->pid, NULL, 0) < 0 && errno == EINTR)
            ;
        x->pid = 0;
    }
}

/* Wait for the peer to exit by itself, for EXIT_WAIT_MS at most; 0 when it
 * exited with status 0. */
static int
reap_peer(run *x)
{
    int status = 0;

    for (int ms = 0; ms < EXIT_WAIT_MS; ms++) {
        pid_t got = waitpid(x->pid, &status, WNOHANG);
        if (got == x->pid) {
            x->pid = 0;
            if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return 0;
            fprintf(stderr, "bench_zmq: the peer failed (status %#x)\n",
                    status);
            return -1;
        }
        if (got < 0 && errno != EINTR)
            break;
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    }
    fprintf(stderr, "bench_zmq: the peer did not exit; killed\n");
    kill_peer(x);
    return -1;
}

/* Fork the peer, wait for its port and connect to it. 0 when connected. */
static int
start(run *x, const plan *p)
{
    keys k = {0};
    int fds[2], port = 0;
    pid_t self = getpid();

    if (p->size < 1) {
        fprintf(stderr, "bench_zmq: size must be at least 1\n");
        return -1;
    }
    if (p->curve &&
        (!zmq_has("curve") || zmq_curve_keypair(k.srv_pub, k.srv_sec) != 0 ||
         zmq_curve_keypair(k.cli_pub, k.cli_sec) != 0)) {
        fprintf(stderr, "bench_zmq: libzmq has no CURVE\n");
        return -1;
    }
    if (!(x->buf = calloc(1, p->size + 1))) {
        fprintf(stderr, "bench_zmq: out of memory\n");
        return -1;
    }
    if (pipe2(fds, O_CLOEXEC) != 0) {
        perror("bench_zmq: pipe");
        return -1;
    }
    fflush(NULL);
    x->pid = fork();
    if (x->pid == 0) {
        close(fds[0]);
        peer_main(fds[1], self, p, &k);
    }
    close(fds[1]);
    if (x->pid < 0) {
        perror("bench_zmq: fork");
        close(fds[0]);
        return -1;
    }
    struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
    int ready;
    while ((ready = poll(&pfd, 1, IO_TIMEOUT_MS)) < 0 && errno == EINTR)
        ;
    ssize_t got = ready == 1 ? read(fds[0], &port, sizeof port) : -1;
    close(fds[0]);
    if (got != sizeof port) {
        fprintf(stderr, "bench_zmq: no port from the peer\n");
        return -1;
    }

    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port);
    x->ctx = zmq_ctx_new();
    x->dealer = x->ctx ? zmq_socket(x->ctx, ZMQ_DEALER) : NULL;
    if (!x->dealer)
        return zfail("dealer", "context or socket");
    if (common_opts(x->dealer) ||
        (p->curve &&
         (zmq_setsockopt(x->dealer, ZMQ_CURVE_SERVERKEY, k.srv_pub, 40) ||
          zmq_setsockopt(x->dealer, ZMQ_CURVE_PUBLICKEY, k.cli_pub, 40) ||
          zmq_setsockopt(x->dealer, ZMQ_CURVE_SECRETKEY, k.cli_sec, 40))))
        return zfail("dealer", "socket options");
    if (zmq_connect(x->dealer, ep) != 0)
        return zfail("dealer", "connect");
    return 0;
}

/* `n` round trips of x->buf; 0 when each came back whole. */
static int
round_trips(run *x, size_t size, long n)
{
    for (long i = 0; i < n; i++) {
        if (zsend(x->dealer, x->buf, size, 0) < 0)
            return zfail("dealer", "send");
        int len = zrecv(x->dealer, x->buf, size + 1);
        if (len < 0)
            return zfail("dealer", "recv");
        if ((size_t)len != size) {
            fprintf(stderr, "bench_zmq: a %d-byte answer, not %zu\n", len,
                    size);
            return -1;
        }
    }
    return 0;
}

/* Tell the peer to stop, end this side's context (the linger lets the
 * empty message leave first) and reap the peer; with ok 0, kill it at once
 * instead. Returns 0 when everything ended cleanly and ok was 1. */
static int
finish(run *x, int ok)
{
    if (ok && zsend(x->dealer, "", 0, 0) < 0)
        ok = zfail("dealer", "send the stop") == 0;
    if (!ok) {
        kill_peer(x);
        if (x->dealer)
            setopt_int(x->dealer, ZMQ_LINGER, 0);
    }
    if (x->dealer)
        zmq_close(x->dealer);
    if (x->ctx)
        zmq_ctx_term(x->ctx);
    free(x->buf);
    if (ok)
        return reap_peer(x);
    return -1;
}

double
bench_zmq_rtt(bool curve, size_t size, long n)
{
    plan p = {.curve = curve, .size = size, .echo = BENCH_ZMQ_WARMUP + n};
    run x = {0};
    int64_t t0 = 0, t1 = 0;
    int ok = n >= 1 && start(&x, &p) == 0 &&
             round_trips(&x, size, BENCH_ZMQ_WARMUP) == 0;

    if (ok) {
        t0 = now_ns();
        ok = round_trips(&x, size, n) == 0;
        t1 = now_ns();
    }
    if (finish(&x, ok) != 0)
        return -1;
    return (double)(t1 - t0) / 1e3 / (double)n;
}

double
bench_zmq_stream(bool curve, size_t size, long n)
{
    plan p = {
        .curve = curve, .size = size, .echo = BENCH_ZMQ_WARMUP, .count = n};
    run x = {0};
    int64_t t0 = 0, end = 0;
    int ok = n >= 1 && start(&x, &p) == 0 &&
             round_trips(&x, size, BENCH_ZMQ_WARMUP) == 0;

    if (ok) {
        t0 = now_ns();
        for (long i = 0; ok && i < n; i++)
            if (zsend(x.dealer, x.buf, size, 0) < 0)
                ok = zfail("dealer", "send") == 0;
        if (ok && zrecv(x.dealer, &end, sizeof end) != sizeof end)
            ok = zfail("dealer", "recv the end") == 0;
        if (ok && end <= t0) {
            fprintf(stderr, "bench_zmq: the stream ended before it began\n");
            ok = 0;
        }
    }
    if (finish(&x, ok) != 0)
        return -1;
    return (double)n / ((double)(end - t0) / 1e9);
}
