/* tests/test_sock.c — pc_sock: TCP echo under load across workers, partial
 * reads and writes, timeouts, refused connections, close waking waiters
 * (also across workers), framing (round trips, oversize and hostile
 * lengths, EOF inside a frame), UDP, Unix sockets and IPv6 (not
 * registered, and a SKIP line printed, on a host without ::1), tasks
 * terminated inside a read or a connect.
 *
 * Loopback only, ephemeral ports only (port 0 + pc_sock_port), so the tests
 * can run in parallel with anything. Nothing sleeps to synchronise: tasks
 * hand-shake with messages.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/stat.h>

#include "picos/sock.h"

#include "testutil.h"

/* A connected TCP pair made by one task: listen, connect, accept. */
static void
tcp_pair(const char *host, pc_sock **a, pc_sock **b)
{
    pc_sock *l = NULL;

    *a = *b = NULL;
    TCHECK_RC(pc_sock_listen(&l, host, 0, 8), PC_OK);
    if (!l)
        return;
    TCHECK(pc_sock_port(l) != 0);
    TCHECK_RC(pc_sock_connect(a, host, pc_sock_port(l), PT_LONG), PC_OK);
    TCHECK_RC(pc_sock_accept(l, b, PT_LONG), PC_OK);
    pc_sock_close(&l);
    TCHECK(l == NULL);
}

static uint32_t
rnd(uint32_t *st)
{
    uint32_t x = *st;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *st = x;
}

/* ---- TCP echo under load ------------------------------------------------------- */

struct echo_ctx {
    pc_sock *listener;
    uint16_t port;
    long clients, rounds;
    atomic_long echoed; /* round trips verified */
    atomic_int handlers;
    atomic_int done;
};

static pc_msg *
echo_handler(void *arg)
{
    pc_sock *c = arg;
    char buf[2048];
    size_t n;

    for (;;) {
        pc_err rc = pc_sock_read(c, buf, sizeof buf, PT_LONG, &n);
        TCHECK_RC(rc, PC_OK);
        if (rc != PC_OK || n == 0)
            break;
        TCHECK_RC(pc_sock_write_all(c, buf, n, PT_LONG, NULL), PC_OK);
    }
    pc_sock_close(&c);
    return NULL;
}

static pc_msg *
echo_server(void *arg)
{
    struct echo_ctx *c = arg;
    pc_sock *cl = NULL;
    pc_err rc;

    /* ends when the main task closes the listener under it */
    while ((rc = pc_sock_accept(c->listener, &cl, -1)) == PC_OK) {
        atomic_fetch_add(&c->handlers, 1);
        pt_spawn(echo_handler, cl, atomic_load(&c->handlers) % 2, 0);
    }
    TCHECK_RC(rc, PC_ECLOSED);
    pc_sock_release(&c->listener);
    return NULL;
}

static pc_msg *
echo_client(void *arg)
{
    struct echo_ctx *c = arg;
    uint32_t st = (uint32_t)(uintptr_t)pc_self().id * 2654435761u | 1;
    unsigned char *out = malloc(8192), *in = malloc(8192);
    pc_sock *s = NULL;

    TCHECK_RC(pc_sock_connect(&s, "127.0.0.1", c->port, PT_LONG), PC_OK);
    for (long r = 0; s && r < c->rounds; r++) {
        size_t len = 1 + rnd(&st) % 8192, got = 0;
        for (size_t i = 0; i < len; i++)
            out[i] = (unsigned char)rnd(&st);
        TCHECK_RC(pc_sock_write_all(s, out, len, PT_LONG, NULL), PC_OK);
        TCHECK_RC(pc_sock_read_exact(s, in, len, PT_LONG, &got), PC_OK);
        TCHECK_EQ(got, len);
        if (got == len && memcmp(in, out, len) == 0)
            atomic_fetch_add(&c->echoed, 1);
    }
    pc_sock_close(&s);
    free(out);
    free(in);
    return NULL;
}

static pc_msg *
echo_main(void *arg)
{
    struct echo_ctx *c = arg;
    pc_ref *cl = calloc((size_t)c->clients, sizeof *cl);

    TCHECK_RC(pc_sock_listen(&c->listener, "127.0.0.1", 0, 128), PC_OK);
    c->port = pc_sock_port(c->listener);
    pc_sock *mine = pc_sock_retain(c->listener); /* the server owns one */
    pt_spawn(echo_server, c, 0, 0);
    for (long i = 0; i < c->clients; i++)
        cl[i] = pt_spawn(echo_client, c, (int)i % 2, PC_TASK_JOINABLE);
    for (long i = 0; i < c->clients; i++)
        TCHECK_RC(pc_task_join(cl[i], PT_LONG * 3, NULL), PC_OK);
    pc_sock_close(&mine); /* wakes the server's accept with PC_ECLOSED */
    free(cl);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(sock_echo_load)
static void
sock_echo_load(int W)
{
    struct echo_ctx c;

    memset(&c, 0, sizeof c);
    c.clients = pt_scaled(50, 5);
    c.rounds = pt_scaled(100, 4);
    PT_RUN_TASK(W, echo_main, &c, &c.done, 1);
    CU_ASSERT_EQUAL(atomic_load(&c.echoed), c.clients * c.rounds);
    CU_ASSERT_EQUAL(atomic_load(&c.handlers), c.clients);
}

/* ---- partial reads and writes ------------------------------------------------------ */

#define BIG (1 << 20)

struct part_ctx {
    pc_sock *a, *b;
    pc_ref main;
    atomic_long verified;
    atomic_int done;
};

static unsigned char
pat(size_t i)
{
    return (unsigned char)(i * 7 + (i >> 11));
}

static pc_msg *
part_reader(void *arg)
{
    struct part_ctx *c = arg;
    unsigned char buf[997];
    size_t total = 0, n;
    bool ok = true;

    PT_EXPECT("go"); /* the writer has filled the buffers */
    while (total < BIG) {
        size_t want = 1 + total % sizeof buf;
        if (want > BIG - total)
            want = BIG - total;
        TCHECK_RC(pc_sock_read(c->b, buf, want, PT_LONG, &n), PC_OK);
        if (n == 0)
            break;
        TCHECK(n <= want);
        for (size_t i = 0; i < n; i++)
            ok = ok && buf[i] == pat(total + i);
        total += n;
    }
    TCHECK(ok);
    TCHECK_EQ(total, BIG);
    /* EOF after the writer shut its side */
    TCHECK_RC(pc_sock_read(c->b, buf, sizeof buf, PT_LONG, &n), PC_OK);
    TCHECK_EQ(n, 0);
    atomic_store(&c->verified, (long)total);
    return NULL;
}

static pc_msg *
part_main(void *arg)
{
    struct part_ctx *c = arg;
    unsigned char *big = malloc(BIG);
    int small = 65536; /* well below 1 MB: writes must be partial */
    size_t sent = 0, more = 0;
    pc_ref r;

    for (size_t i = 0; i < BIG; i++)
        big[i] = pat(i);
    tcp_pair("127.0.0.1", &c->a, &c->b);
    if (!c->a || !c->b)
        goto out;
    setsockopt(pc_sock_fd(c->a), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(pc_sock_fd(c->b), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    r = pt_spawn(part_reader, c, 1, PC_TASK_JOINABLE);
    /* nobody reads yet: a short timeout stops a partial write */
    TCHECK_RC(pc_sock_write_all(c->a, big, BIG, 0.05, &sent), PC_ETIMEDOUT);
    TCHECK(sent > 0 && sent < BIG);
    TCHECK_RC(pt_send(r, "go"), PC_OK);
    TCHECK_RC(pc_sock_write_all(c->a, big + sent, BIG - sent, PT_LONG, &more),
              PC_OK);
    TCHECK_EQ(sent + more, BIG);
    TCHECK_RC(pc_sock_shutdown(c->a, PC_WRITE), PC_OK);
    TCHECK_RC(pc_task_join(r, PT_LONG, NULL), PC_OK);
    TCHECK_EQ(atomic_load(&c->verified), BIG);
out:
    pc_sock_close(&c->a);
    pc_sock_close(&c->b);
    free(big);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(sock_partial)
static void
sock_partial(int W)
{
    struct part_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, part_main, &c, &c.done, 1);
}

/* ---- timeouts and refused connections ----------------------------------------------- */

struct simple_ctx {
    atomic_int done;
};

static pc_msg *
timeouts_main(void *arg)
{
    struct simple_ctx *c = arg;
    pc_sock *a, *b, *l = NULL, *x = NULL;
    char buf[16];
    size_t n = 99, got = 99;
    double t0;

    tcp_pair("127.0.0.1", &a, &b);
    t0 = pc_now();
    TCHECK_RC(pc_sock_read(a, buf, sizeof buf, 0.05, &n), PC_ETIMEDOUT);
    TCHECK(pt_since(t0) >= 0.045);
    TCHECK_EQ(n, 0);
    TCHECK_RC(pc_sock_read(a, buf, sizeof buf, 0, &n), PC_ETIMEDOUT);
    /* read_exact reports what arrived before the timeout */
    TCHECK_RC(pc_sock_write_all(b, "abc", 3, PT_LONG, NULL), PC_OK);
    TCHECK_RC(pc_sock_read_exact(a, buf, 10, 0.1, &got), PC_ETIMEDOUT);
    TCHECK_EQ(got, 3);
    TCHECK(memcmp(buf, "abc", 3) == 0);
    /* EOF before n: PC_ECLOSED with the count */
    TCHECK_RC(pc_sock_write_all(b, "de", 2, PT_LONG, NULL), PC_OK);
    TCHECK_RC(pc_sock_shutdown(b, PC_WRITE), PC_OK);
    TCHECK_RC(pc_sock_read_exact(a, buf, 10, PT_LONG, &got), PC_ECLOSED);
    TCHECK_EQ(got, 2);
    TCHECK_RC(pc_sock_read(a, buf, 0, 0.1, &n), PC_EINVAL);
    pc_sock_close(&a);
    pc_sock_close(&b);

    /* accept timeout */
    TCHECK_RC(pc_sock_listen(&l, "127.0.0.1", 0, 1), PC_OK);
    t0 = pc_now();
    TCHECK_RC(pc_sock_accept(l, &x, 0.05), PC_ETIMEDOUT);
    TCHECK(pt_since(t0) >= 0.045);
    TCHECK(x == NULL);

    /* connect timeout: a listener that never accepts, backlog full; the
     * kernel drops further SYNs, so a connect eventually can't finish */
    {
        pc_sock *cs[32] = {0};
        int i, timed = 0;
        for (i = 0; i < 32 && !timed; i++) {
            pc_err rc =
                pc_sock_connect(&cs[i], "127.0.0.1", pc_sock_port(l), 0.2);
            if (rc == PC_ETIMEDOUT)
                timed = 1;
            else
                TCHECK_RC(rc, PC_OK);
        }
        TCHECK(timed);
        for (i = 0; i < 32; i++)
            pc_sock_close(&cs[i]);
    }

    /* refused: the port of a listener that is gone */
    {
        uint16_t port = pc_sock_port(l);
        pc_sock_close(&l);
        errno = 0;
        TCHECK_RC(pc_sock_connect(&x, "127.0.0.1", port, PT_LONG), PC_EREFUSED);
        TCHECK_EQ(errno, ECONNREFUSED);
        TCHECK(x == NULL);
    }
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(sock_timeouts)
static void
sock_timeouts(int W)
{
    struct simple_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, timeouts_main, &c, &c.done, 1);
}

/* Outside tasks, blocking calls refuse. */
PT_TEST(sock_eperm)
static void
sock_eperm(void)
{
    pc_sock *s = NULL, *c = NULL;
    char b[4];
    size_t n;

    CU_ASSERT_EQUAL(pc_sock_listen(&s, "127.0.0.1", 0, 1), PC_OK);
    CU_ASSERT(pc_sock_port(s) != 0);
    CU_ASSERT_EQUAL(pc_sock_accept(s, &c, 0), PC_EPERM);
    CU_ASSERT_EQUAL(pc_sock_read(s, b, 4, 0, &n), PC_EPERM);
    CU_ASSERT_EQUAL(pc_sock_connect(&c, "127.0.0.1", 1, 0), PC_EPERM);
    pc_sock_close(&s);
    CU_ASSERT(s == NULL);
    pc_sock_close(&s); /* no-op */
}

/* ---- close wakes waiters -------------------------------------------------------------- */

struct close_ctx {
    pc_sock *a, *b;
    pc_ref main;
    atomic_int woken;
    atomic_int done;
};

static pc_msg *
close_reader(void *arg)
{
    struct close_ctx *c = arg;
    pc_sock *s = pc_sock_retain(c->a);
    char buf[8];
    size_t n = 7;

    TCHECK_RC(pt_send(c->main, "ready"), PC_OK);
    TCHECK_RC(pc_sock_read(s, buf, sizeof buf, -1, &n), PC_ECLOSED);
    TCHECK_EQ(n, 0);
    /* closed for every holder */
    TCHECK_RC(pc_sock_read(s, buf, sizeof buf, -1, &n), PC_ECLOSED);
    TCHECK_RC(pc_sock_shutdown(s, PC_WRITE), PC_ECLOSED);
    pc_sock_release(&s);
    atomic_fetch_add(&c->woken, 1);
    return NULL;
}

static pc_msg *
close_writer(void *arg)
{
    struct close_ctx *c = arg;
    pc_sock *s = pc_sock_retain(c->a);
    size_t len = 8 << 20, sent = 0;
    char *big = calloc(1, len);

    TCHECK_RC(pt_send(c->main, "ready"), PC_OK);
    /* the peer never reads: this blocks until the close */
    TCHECK_RC(pc_sock_write_all(s, big, len, -1, &sent), PC_ECLOSED);
    TCHECK(sent < len);
    pc_sock_release(&s);
    free(big);
    atomic_fetch_add(&c->woken, 1);
    return NULL;
}

static pc_msg *
close_main(void *arg)
{
    struct close_ctx *c = arg;
    pc_ref r[3];

    int small = 4096;

    c->main = pc_self();
    tcp_pair("127.0.0.1", &c->a, &c->b);
    if (!c->a || !c->b)
        return NULL;
    setsockopt(pc_sock_fd(c->a), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(pc_sock_fd(c->b), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    /* two readers and a writer, on this worker and the other */
    r[0] = pt_spawn(close_reader, c, 0, PC_TASK_JOINABLE);
    r[1] = pt_spawn(close_reader, c, 1, PC_TASK_JOINABLE);
    r[2] = pt_spawn(close_writer, c, 1, PC_TASK_JOINABLE);
    for (int i = 0; i < 3; i++)
        PT_EXPECT("ready");
    TCHECK_RC(pc_yield(), PC_OK);
    pc_sock_close(&c->a);
    for (int i = 0; i < 3; i++)
        TCHECK_RC(pc_task_join(r[i], PT_LONG, NULL), PC_OK);
    TCHECK_EQ(atomic_load(&c->woken), 3);
    pc_sock_close(&c->b);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(sock_close_wakes)
static void
sock_close_wakes(int W)
{
    struct close_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, close_main, &c, &c.done, 1);
}

/* The waiter holds no reference of its own: only its call's reference keeps
 * the object alive after the owner's close (ASan would see a use after
 * free). Same worker, so the yield makes sure it waits before the close. */
struct noref_ctx {
    pc_sock *a;
    atomic_int done;
};

static pc_msg *
noref_reader(void *arg)
{
    struct noref_ctx *c = arg;
    char buf[8];
    size_t n;

    TCHECK_RC(pc_sock_read(c->a, buf, sizeof buf, PT_LONG, &n), PC_ECLOSED);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

static pc_msg *
noref_main(void *arg)
{
    struct noref_ctx *c = arg;
    pc_sock *a, *b;
    pc_ref r;

    tcp_pair("127.0.0.1", &a, &b);
    c->a = a;
    r = pt_spawn(noref_reader, c, PT_SELF, PC_TASK_JOINABLE);
    TCHECK_RC(pc_yield(), PC_OK); /* the reader runs into its wait */
    pc_sock_close(&a);            /* drops the last holder's reference */
    TCHECK_RC(pc_task_join(r, PT_LONG, NULL), PC_OK);
    pc_sock_close(&b);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(sock_close_noref)
static void
sock_close_noref(int W)
{
    struct noref_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, noref_main, &c, &c.done, 2);
}

/* Close from a foreign thread (main) while a task waits in accept. */
struct fclose_ctx {
    pc_sock *l;
    atomic_int waiting;
    atomic_int done;
};

static pc_msg *
fclose_task(void *arg)
{
    struct fclose_ctx *c = arg;
    pc_sock *x = NULL;

    atomic_store(&c->waiting, 1);
    TCHECK_RC(pc_sock_accept(c->l, &x, PT_LONG), PC_ECLOSED);
    pc_sock_release(&c->l);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_TEST(sock_close_foreign)
static void
sock_close_foreign(void)
{
    struct fclose_ctx c;
    pc_spawn_opts o;
    pc_sock *l = NULL;

    memset(&c, 0, sizeof c);
    CU_ASSERT_FATAL(pc_sock_listen(&l, "127.0.0.1", 0, 4) == PC_OK);
    c.l = pc_sock_retain(l); /* the task's reference */
    PT_START(1);
    o = pt_on(0, 0);
    CU_ASSERT_EQUAL(pc_spawn(fclose_task, &c, &o, NULL), PC_OK);
    while (!atomic_load(&c.waiting))
        sched_yield();
    pc_sock_close(&l); /* before or during the wait: PC_ECLOSED both ways */
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&c.done), 1);
}

/* ---- framing --------------------------------------------------------------------------- */

static const size_t frame_sizes[] = {0, 1, 5, 1000, 70000, 300000};

struct frame_send {
    pc_sock *s;
    const unsigned char *data;
};

/* Sends the frames from its own task, so big ones don't fill the buffers
 * while nobody reads. */
static pc_msg *
frame_sender(void *arg)
{
    struct frame_send *f = arg;

    for (size_t k = 0; k < sizeof frame_sizes / sizeof frame_sizes[0]; k++)
        TCHECK_RC(pc_sock_send_msg(f->s, f->data, frame_sizes[k], PT_LONG),
                  PC_OK);
    return NULL;
}

static pc_msg *
frame_main(void *arg)
{
    struct simple_ctx *c = arg;
    const size_t *sizes = frame_sizes;
    struct frame_send fs;
    pc_ref sr;
    pc_sock *a, *b;
    unsigned char *data = malloc(300000);
    void *buf = NULL;
    size_t len = 0;
    double t0;

    for (size_t i = 0; i < 300000; i++)
        data[i] = pat(i);
    tcp_pair("127.0.0.1", &a, &b);
    fs.s = a;
    fs.data = data;
    sr = pt_spawn(frame_sender, &fs, 1, PC_TASK_JOINABLE);
    for (size_t k = 0; k < sizeof frame_sizes / sizeof frame_sizes[0]; k++) {
        size_t sz = sizes[k];
        TCHECK_RC(pc_sock_recv_msg(b, 1 << 20, &buf, &len, PT_LONG), PC_OK);
        TCHECK_EQ(len, sz);
        TCHECK(buf != NULL);
        if (buf) {
            TCHECK(memcmp(buf, data, sz) == 0);
            TCHECK_EQ(((char *)buf)[sz], 0);
        }
        free(buf);
    }
    TCHECK_RC(pc_task_join(sr, PT_LONG, NULL), PC_OK);
    /* text frames read back as C strings */
    TCHECK_RC(pc_sock_send_msg(a, "hello", 5, PT_LONG), PC_OK);
    TCHECK_RC(pc_sock_recv_msg(b, 100, &buf, &len, PT_LONG), PC_OK);
    TCHECK_STR(buf, "hello");
    free(buf);

    /* a frame above max is refused */
    TCHECK_RC(pc_sock_send_msg(a, data, 2000, PT_LONG), PC_OK);
    TCHECK_RC(pc_sock_recv_msg(b, 1000, &buf, &len, PT_LONG), PC_ETOOBIG);
    TCHECK(buf == NULL);
    pc_sock_close(&a);
    pc_sock_close(&b);

    /* a hostile 0xFFFFFFFF length: refused at once, nothing allocated (the
     * code checks before malloc; under ASan a 4 GiB malloc would show) */
    tcp_pair("127.0.0.1", &a, &b);
    TCHECK_RC(pc_sock_write_all(a, "\xff\xff\xff\xff", 4, PT_LONG, NULL),
              PC_OK);
    t0 = pc_now();
    TCHECK_RC(pc_sock_recv_msg(b, (size_t)1 << 20, &buf, &len, PT_LONG),
              PC_ETOOBIG);
    TCHECK(pt_since(t0) < 5);
    TCHECK(buf == NULL && len == 0);
    pc_sock_close(&a);
    pc_sock_close(&b);

    /* EOF inside a frame: PC_EPROTO; EOF inside a header too */
    tcp_pair("127.0.0.1", &a, &b);
    TCHECK_RC(pc_sock_write_all(a,
                                "\0\0\0\x0a"
                                "abc",
                                7, PT_LONG, NULL),
              PC_OK);
    TCHECK_RC(pc_sock_shutdown(a, PC_WRITE), PC_OK);
    TCHECK_RC(pc_sock_recv_msg(b, 100, &buf, &len, PT_LONG), PC_EPROTO);
    TCHECK(buf == NULL);
    pc_sock_close(&a);
    pc_sock_close(&b);
    tcp_pair("127.0.0.1", &a, &b);
    TCHECK_RC(pc_sock_write_all(a, "\0\0", 2, PT_LONG, NULL), PC_OK);
    TCHECK_RC(pc_sock_shutdown(a, PC_WRITE), PC_OK);
    TCHECK_RC(pc_sock_recv_msg(b, 100, &buf, &len, PT_LONG), PC_EPROTO);
    pc_sock_close(&a);
    pc_sock_close(&b);

    /* EOF between frames: PC_ECLOSED; timeout with nothing: PC_ETIMEDOUT */
    tcp_pair("127.0.0.1", &a, &b);
    TCHECK_RC(pc_sock_recv_msg(b, 100, &buf, &len, 0.05), PC_ETIMEDOUT);
    TCHECK_RC(pc_sock_send_msg(a, "x", 1, PT_LONG), PC_OK);
    TCHECK_RC(pc_sock_shutdown(a, PC_WRITE), PC_OK);
    TCHECK_RC(pc_sock_recv_msg(b, 100, &buf, &len, PT_LONG), PC_OK);
    TCHECK_STR(buf, "x");
    free(buf);
    TCHECK_RC(pc_sock_recv_msg(b, 100, &buf, &len, PT_LONG), PC_ECLOSED);
    pc_sock_close(&a);
    pc_sock_close(&b);
    free(data);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(sock_framing)
static void
sock_framing(int W)
{
    struct simple_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, frame_main, &c, &c.done, 1);
}

/* ---- UDP ------------------------------------------------------------------------------- */

static pc_msg *
udp_main(void *arg)
{
    struct simple_ctx *c = arg;
    pc_sock *a = NULL, *b = NULL, *d = NULL;
    pc_sock_addr to, from;
    char buf[64], fmt[64];
    size_t n = 0;

    TCHECK_RC(pc_sock_udp(&a, "127.0.0.1", 0), PC_OK);
    TCHECK_RC(pc_sock_udp(&b, "127.0.0.1", 0), PC_OK);
    if (!a || !b)
        goto out;
    TCHECK_RC(pc_sock_recvfrom(b, buf, sizeof buf, &n, &from, 0.05),
              PC_ETIMEDOUT);
    TCHECK_RC(pc_sock_addr_make(&to, "127.0.0.1", pc_sock_port(b)), PC_OK);
    TCHECK_RC(pc_sock_sendto(a, "ping", 4, &to, PT_LONG), PC_OK);
    TCHECK_RC(pc_sock_recvfrom(b, buf, sizeof buf, &n, &from, PT_LONG), PC_OK);
    TCHECK_EQ(n, 4);
    TCHECK(memcmp(buf, "ping", 4) == 0);
    TCHECK_EQ(pc_sock_addr_port(&from), pc_sock_port(a));
    snprintf(buf, sizeof buf, "127.0.0.1:%u", (unsigned)pc_sock_port(a));
    TCHECK_STR(pc_sock_addr_format(&from, fmt, sizeof fmt), buf);
    TCHECK_RC(pc_sock_sendto(b, "pong!", 5, &from, PT_LONG), PC_OK);
    TCHECK_RC(pc_sock_recvfrom(a, buf, sizeof buf, &n, NULL, PT_LONG), PC_OK);
    TCHECK_EQ(n, 5);
    /* a datagram longer than the buffer is cut and reported */
    TCHECK_RC(pc_sock_sendto(a, "0123456789", 10, &to, PT_LONG), PC_OK);
    TCHECK_RC(pc_sock_recvfrom(b, buf, 4, &n, NULL, PT_LONG), PC_ETOOBIG);
    TCHECK_EQ(n, 4);
    /* an any-address (dual-stack) socket reaches an IPv4 peer */
    TCHECK_RC(pc_sock_udp(&d, NULL, 0), PC_OK);
    if (d) {
        TCHECK_RC(pc_sock_sendto(d, "dual", 4, &to, PT_LONG), PC_OK);
        TCHECK_RC(pc_sock_recvfrom(b, buf, sizeof buf, &n, NULL, PT_LONG),
                  PC_OK);
        TCHECK_EQ(n, 4);
    }
out:
    pc_sock_close(&a);
    pc_sock_close(&b);
    pc_sock_close(&d);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(sock_udp)
static void
sock_udp(int W)
{
    struct simple_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, udp_main, &c, &c.done, 1);
}

/* ---- Unix sockets ---------------------------------------------------------------------- */

struct unix_ctx {
    char dir[64];
    char path[128];
    atomic_int done;
};

static pc_msg *
unix_main(void *arg)
{
    struct unix_ctx *c = arg;
    pc_sock *l = NULL, *a = NULL, *b = NULL;
    char nope[160];
    void *buf = NULL;
    size_t len;

    TCHECK_RC(pc_sock_unix_listen(&l, c->path, 4), PC_OK);
    if (!l)
        goto out;
    TCHECK_EQ(pc_sock_port(l), 0);
    TCHECK_RC(pc_sock_unix_connect(&a, c->path, PT_LONG), PC_OK);
    TCHECK_RC(pc_sock_accept(l, &b, PT_LONG), PC_OK);
    if (a && b) {
        TCHECK_RC(pc_sock_send_msg(a, "over unix", 9, PT_LONG), PC_OK);
        TCHECK_RC(pc_sock_recv_msg(b, 64, &buf, &len, PT_LONG), PC_OK);
        TCHECK_STR(buf, "over unix");
        free(buf);
    }
    snprintf(nope, sizeof nope, "%s/nope", c->dir);
    pc_sock *x = NULL;
    TCHECK_RC(pc_sock_unix_connect(&x, nope, 1), PC_ENOENT);
    memset(nope, 'a', sizeof nope - 1);
    nope[sizeof nope - 1] = 0;
    TCHECK_RC(pc_sock_unix_listen(&x, nope, 1), PC_EINVAL);
out:
    pc_sock_close(&a);
    pc_sock_close(&b);
    pc_sock_close(&l);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(sock_unix)
static void
sock_unix(int W)
{
    struct unix_ctx c;

    memset(&c, 0, sizeof c);
    CU_ASSERT_FATAL(pt_mkdtemp(c.dir, sizeof c.dir, "sock"));
    snprintf(c.path, sizeof c.path, "%s/s", c.dir);
    PT_RUN_TASK(W, unix_main, &c, &c.done, 1);
    CU_ASSERT_EQUAL(unlink(c.path), 0);
    CU_ASSERT_EQUAL(rmdir(c.dir), 0);
}

/* ---- IPv6 ------------------------------------------------------------------------------ */

static pc_msg *
v6_main(void *arg)
{
    struct simple_ctx *c = arg;
    pc_sock *l = NULL, *a = NULL, *b = NULL;
    pc_sock_addr pa;
    char want[64], got[64], buf[8];

    /* registered only when ::1 works (main: has_ipv6_loopback) */
    TCHECK_RC(pc_sock_listen(&l, "::1", 0, 4), PC_OK);
    if (!l)
        goto out;
    TCHECK_RC(pc_sock_connect(&a, "::1", pc_sock_port(l), PT_LONG), PC_OK);
    TCHECK_RC(pc_sock_accept(l, &b, PT_LONG), PC_OK);
    if (a && b) {
        TCHECK_RC(pc_sock_peer_addr(a, &pa), PC_OK);
        snprintf(want, sizeof want, "[::1]:%u", (unsigned)pc_sock_port(l));
        TCHECK_STR(pc_sock_addr_format(&pa, got, sizeof got), want);
        TCHECK_RC(pc_sock_write_all(a, "six", 3, PT_LONG, NULL), PC_OK);
        TCHECK_RC(pc_sock_read_exact(b, buf, 3, PT_LONG, NULL), PC_OK);
        TCHECK(memcmp(buf, "six", 3) == 0);
    }
out:
    pc_sock_close(&a);
    pc_sock_close(&b);
    pc_sock_close(&l);
    /* a listener on every address takes IPv4 clients too */
    TCHECK_RC(pc_sock_listen(&l, NULL, 0, 4), PC_OK);
    if (l) {
        TCHECK_RC(pc_sock_connect(&a, "127.0.0.1", pc_sock_port(l), PT_LONG),
                  PC_OK);
        TCHECK_RC(pc_sock_accept(l, &b, PT_LONG), PC_OK);
    }
    pc_sock_close(&a);
    pc_sock_close(&b);
    pc_sock_close(&l);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(sock_ipv6)
static void
sock_ipv6(int W)
{
    struct simple_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, v6_main, &c, &c.done, 1);
}

/* ---- a task terminated inside a call ----------------------------------------------- */

/* The task modes every call is tried in: a task of its own stack, and a
 * small task (PC_TASK_SMALL), whose stack is shared while it waits. */
static const unsigned modes[] = {0, PC_TASK_SMALL};

static bool
fd_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0 || errno != EBADF;
}

struct kill_ctx {
    unsigned flags;
    pc_sock *a;
    pc_ref main;
    char dir[64];
    char path[128];
    atomic_int done;
};

/* Holds no reference of its own: its call's is the one it leaves behind. */
static pc_msg *
kill_reader(void *arg)
{
    struct kill_ctx *c = arg;
    pc_sock *a = c->a; /* before "ready": c->a is NULLed by the close */
    char buf[8];
    size_t n;

    TCHECK_RC(pt_send(c->main, "ready"), PC_OK);
    (void)pc_sock_read(a, buf, sizeof buf, -1, &n);
    TCHECK(!"the terminated reader went on");
    return NULL;
}

static pc_msg *
kill_main(void *arg)
{
    struct kill_ctx *c = arg;
    pc_sock *b = NULL, *x = NULL;
    char buf[8];
    size_t n = 9;
    int afd;
    pc_ref r;

    c->main = pc_self();
    tcp_pair("127.0.0.1", &c->a, &b);
    if (!c->a || !b)
        return NULL;
    afd = pc_sock_fd(c->a);
    r = pt_spawn(kill_reader, c, 1, c->flags | PC_TASK_JOINABLE);
    PT_EXPECT("ready");
    TCHECK_RC(pc_sleep(0.02), PC_OK); /* most likely in its wait now */
    TCHECK_RC(pc_task_terminate(r), PC_OK);
    /* at once: on another worker the reader may not be gone yet */
    pc_sock_close(&c->a);
    /* the peer sees the close... */
    TCHECK_RC(pc_sock_read(b, buf, sizeof buf, PT_LONG, &n), PC_OK);
    TCHECK_EQ(n, 0);
    /* ...and the fd goes once the reader is gone (by the next close at
     * the latest: b's) */
    TCHECK_RC(pc_task_join(r, PT_LONG, NULL), PC_EKILLED);
    TCHECK_RC(pc_sock_listen(&x, "127.0.0.1", 0, 1), PC_OK);
    pc_sock_close(&x);
    TCHECK(!fd_open(afd));
    pc_sock_close(&b);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(sock_terminate_in_read)
static void
sock_terminate_in_read(int W)
{
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        struct kill_ctx c;

        memset(&c, 0, sizeof c);
        c.flags = modes[m];
        PT_RUN_TASK(W, kill_main, &c, &c.done, 1);
    }
}

/* A connect that waits (a Unix listener with a full backlog) terminated:
 * its new fd is closed. */
static pc_msg *
kill_connector(void *arg)
{
    struct kill_ctx *c = arg;
    pc_sock *s = NULL;

    TCHECK_RC(pt_send(c->main, "ready"), PC_OK);
    (void)pc_sock_unix_connect(&s, c->path, -1);
    TCHECK(!"the terminated connector went on");
    return NULL;
}

static int
nfds(void)
{
    int n = 0;

    for (int fd = 0; fd < 1024; fd++)
        n += fd_open(fd);
    return n;
}

static pc_msg *
kill_connect_main(void *arg)
{
    struct kill_ctx *c = arg;
    pc_sock *l = NULL, *q[2] = {NULL, NULL}, *x = NULL;
    int fds;
    pc_ref r;

    c->main = pc_self();
    TCHECK_RC(pc_sock_unix_listen(&l, c->path, 1), PC_OK);
    /* nobody accepts: two connections fill a backlog of 1 */
    for (int i = 0; i < 2; i++)
        TCHECK_RC(pc_sock_unix_connect(&q[i], c->path, PT_LONG), PC_OK);
    TCHECK_RC(pc_sock_unix_connect(&x, c->path, 0), PC_ETIMEDOUT);
    fds = nfds();
    r = pt_spawn(kill_connector, c, 1, c->flags | PC_TASK_JOINABLE);
    PT_EXPECT("ready");
    TCHECK_RC(pc_sleep(0.02), PC_OK); /* most likely polling by now */
    TCHECK_RC(pc_task_terminate(r), PC_OK);
    TCHECK_RC(pc_task_join(r, PT_LONG, NULL), PC_EKILLED);
    pc_sock_close(&q[0]); /* a close sweeps for the dead connector */
    TCHECK_EQ(nfds(), fds - 1);
    pc_sock_close(&q[1]);
    pc_sock_close(&l);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(sock_terminate_in_connect)
static void
sock_terminate_in_connect(int W)
{
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        struct kill_ctx c;

        memset(&c, 0, sizeof c);
        c.flags = modes[m];
        CU_ASSERT_FATAL(pt_mkdtemp(c.dir, sizeof c.dir, "sock"));
        snprintf(c.path, sizeof c.path, "%s/s", c.dir);
        PT_RUN_TASK(W, kill_connect_main, &c, &c.done, 1);
        CU_ASSERT_EQUAL(unlink(c.path), 0);
        CU_ASSERT_EQUAL(rmdir(c.dir), 0);
    }
}

/* Whether this host has an IPv6 loopback to test on: bind a socket to
 * [::1]:0. */
static bool
has_ipv6_loopback(void)
{
    struct sockaddr_in6 a;
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok;

    if (fd < 0)
        return false;
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* CUnit has no "skipped" state: a test that can't run here is not
 * registered (so it can't count as passed) and a SKIP line says so. */
int
main(int argc, char **argv)
{
    static const pt_test all[] = {
        PT_WENTRY(sock_echo_load),
        PT_WENTRY(sock_partial),
        PT_WENTRY(sock_timeouts),
        PT_ENTRY(sock_eperm),
        PT_WENTRY(sock_close_wakes),
        PT_WENTRY(sock_close_noref),
        PT_ENTRY(sock_close_foreign),
        PT_WENTRY(sock_framing),
        PT_WENTRY(sock_udp),
        PT_WENTRY(sock_unix),
        PT_WENTRY(sock_ipv6),
        PT_WENTRY(sock_terminate_in_read),
        PT_WENTRY(sock_terminate_in_connect),
    };
    pt_test run[sizeof all / sizeof all[0]];
    bool v6 = has_ipv6_loopback();
    size_t n = 0;

    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (!v6 && strncmp(all[i].name, "sock_ipv6", 9) == 0) {
            printf("SKIP: %s: no IPv6 loopback (::1) on this host; not run, "
                   "not counted as passed\n",
                   all[i].name);
            continue;
        }
        run[n++] = all[i];
    }
    return pt_main(argc, argv, "sock", run, n);
}
