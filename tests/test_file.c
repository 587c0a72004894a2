/* tests/test_file.c — pc_fd over pipes (read, read_exact, bounded readline,
 * timeouts, EOF, EPIPE) and pc_file through the pool: a multi-MB round trip
 * while other tasks of the same worker keep exchanging messages (so the
 * worker is shown not to block), pread/pwrite, a missing file, and a pool
 * given by the caller. Temp files live in a mkdtemp() directory removed at
 * the end of each test.
 */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "picos/file.h"

#include "testutil.h"

/* Open fds of this process: equal before and after a test's node run, so
 * no pipe, pidfd or file is leaked. */
static int
nfds(void)
{
    int n = 0;

    for (int fd = 0; fd < 1024; fd++)
        n += fcntl(fd, F_GETFD) >= 0;
    return n;
}

#define RUN_TASK(W, fn, ctx, done, want)                                       \
    do {                                                                       \
        int fds_ = nfds();                                                     \
        PT_RUN_TASK(W, fn, ctx, done, want);                                   \
        CU_ASSERT_EQUAL(nfds(), fds_);                                         \
    } while (0)

/* ---- pc_fd on pipes --------------------------------------------------------- */

struct fd_ctx {
    int p[2];
    pc_ref reader;
    atomic_int done;
};

static pc_msg *
fd_writer(void *arg)
{
    struct fd_ctx *c = arg;
    pc_fd *w = NULL;
    static const char text[] = "hello\nabcdefghij\nxyz\n0123456789tail";

    TCHECK_RC(pc_fd_open(&w, c->p[1]), PC_OK);
    PT_EXPECT("go");
    /* byte by byte, yielding, so the reader really waits between them */
    for (size_t i = 0; i < sizeof text - 1; i++) {
        size_t n = 0;
        TCHECK_RC(pc_fd_write(w, &text[i], 1, PT_LONG, &n), PC_OK);
        TCHECK_EQ(n, 1);
        TCHECK_RC(pc_yield(), PC_OK);
    }
    TCHECK_RC(pc_fd_close(&w), PC_OK);
    TCHECK(w == NULL);
    return NULL;
}

static pc_msg *
fd_reader(void *arg)
{
    struct fd_ctx *c = arg;
    pc_fd *r = NULL;
    char *line = NULL, buf[16];
    size_t len = 0, n = 0;
    pc_ref w;

    TCHECK_RC(pc_fd_open(&r, c->p[0]), PC_OK);
    TCHECK_EQ(pc_fd_fd(r), c->p[0]);
    TCHECK(fcntl(c->p[0], F_GETFL) & O_NONBLOCK);
    /* nothing yet: timeouts */
    TCHECK_RC(pc_fd_readline(r, &line, &len, 100, 0.02), PC_ETIMEDOUT);
    TCHECK(line == NULL);
    TCHECK_RC(pc_fd_read(r, buf, sizeof buf, 0, &n), PC_ETIMEDOUT);
    TCHECK_EQ(n, 0);

    w = pt_spawn(fd_writer, c, 1, PC_TASK_JOINABLE);
    TCHECK_RC(pt_send(w, "go"), PC_OK);

    TCHECK_RC(pc_fd_readline(r, &line, &len, 100, PT_LONG), PC_OK);
    TCHECK_STR(line, "hello\n");
    TCHECK_EQ(len, 6);
    free(line);
    /* bounded: 4 bytes at a time */
    TCHECK_RC(pc_fd_readline(r, &line, &len, 4, PT_LONG), PC_ETOOBIG);
    TCHECK_STR(line, "abcd");
    free(line);
    TCHECK_RC(pc_fd_readline(r, &line, &len, 4, PT_LONG), PC_ETOOBIG);
    TCHECK_STR(line, "efgh");
    free(line);
    TCHECK_RC(pc_fd_readline(r, &line, &len, 4, PT_LONG), PC_OK);
    TCHECK_STR(line, "ij\n");
    free(line);
    /* read drains what readline buffered first */
    TCHECK_RC(pc_fd_read_exact(r, buf, 4, PT_LONG, &n), PC_OK);
    TCHECK_EQ(n, 4);
    TCHECK(memcmp(buf, "xyz\n", 4) == 0);
    TCHECK_RC(pc_fd_read_exact(r, buf, 10, PT_LONG, &n), PC_OK);
    TCHECK_EQ(n, 10);
    TCHECK(memcmp(buf, "0123456789", 10) == 0);
    /* the last line has no newline, then EOF */
    TCHECK_RC(pc_fd_readline(r, &line, &len, 100, PT_LONG), PC_OK);
    TCHECK_STR(line, "tail");
    free(line);
    TCHECK_RC(pc_fd_readline(r, &line, &len, 100, PT_LONG), PC_ECLOSED);
    TCHECK(line == NULL);
    TCHECK_RC(pc_fd_read(r, buf, sizeof buf, PT_LONG, &n), PC_OK);
    TCHECK_EQ(n, 0);
    TCHECK_RC(pc_fd_read_exact(r, buf, sizeof buf, PT_LONG, &n), PC_ECLOSED);
    TCHECK_EQ(n, 0);
    TCHECK_RC(pc_task_join(w, PT_LONG, NULL), PC_OK);
    TCHECK_RC(pc_fd_close(&r), PC_OK);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(fd_pipe)
static void
fd_pipe(int W)
{
    struct fd_ctx c;

    int fds = nfds();

    memset(&c, 0, sizeof c);
    CU_ASSERT_FATAL(pipe2(c.p, O_CLOEXEC) == 0);
    PT_RUN_TASK(W, fd_reader, &c, &c.done, 1);
    CU_ASSERT_EQUAL(nfds(), fds); /* pc_fd_close closed both ends */
}

static pc_msg *
fd_epipe(void *arg)
{
    atomic_int *done = arg;
    int p[2];
    pc_fd *w = NULL;
    static char big[1 << 20]; /* more than a pipe holds */
    size_t n = 0;

    TCHECK(pipe2(p, O_CLOEXEC) == 0);
    TCHECK_RC(pc_fd_open(&w, p[1]), PC_OK);
    /* a full pipe times out with the partial count */
    TCHECK_RC(pc_fd_write_all(w, big, sizeof big, 0.05, &n), PC_ETIMEDOUT);
    TCHECK(n > 0 && n < sizeof big);
    close(p[0]);
    /* reader gone: PC_ECLOSED, not SIGPIPE */
    TCHECK_RC(pc_fd_write_all(w, big, sizeof big, PT_LONG, &n), PC_ECLOSED);
    TCHECK_RC(pc_fd_close(&w), PC_OK);
    TCHECK_RC(pc_fd_open(&w, -1), PC_EINVAL);
    TCHECK_RC(pc_fd_close(&w), PC_OK);

    /* read_exact: end of file before len is PC_ECLOSED, with the count */
    {
        pc_fd *r = NULL;
        char buf[10];
        TCHECK(pipe2(p, O_CLOEXEC) == 0);
        TCHECK_EQ(write(p[1], "abc", 3), 3);
        close(p[1]);
        TCHECK_RC(pc_fd_open(&r, p[0]), PC_OK);
        TCHECK_RC(pc_fd_read_exact(r, buf, sizeof buf, PT_LONG, &n),
                  PC_ECLOSED);
        TCHECK_EQ(n, 3);
        TCHECK(memcmp(buf, "abc", 3) == 0);
        TCHECK_RC(pc_fd_read_exact(r, buf, 0, PT_LONG, NULL), PC_OK);
        TCHECK_RC(pc_fd_close(&r), PC_OK);
    }
    atomic_fetch_add(done, 1);
    return NULL;
}

PT_WTEST(fd_write_closed)
static void
fd_write_closed(int W)
{
    atomic_int done = 0;

    RUN_TASK(W, fd_epipe, &done, &done, 1);
}

/* ---- pc_file through the pool ------------------------------------------------ */

#define BIG (8u << 20)
#define CHUNK (1u << 20)

struct file_ctx {
    char dir[64];
    char path[128];
    pc_pool *pool; /* NULL: the default pool */
    atomic_int io_done;
    atomic_long rounds; /* ping-pongs while the I/O ran */
    atomic_int done;
};

static void
tmpdir(struct file_ctx *c)
{
    CU_ASSERT_FATAL(pt_mkdtemp(c->dir, sizeof c->dir, "file"));
    snprintf(c->path, sizeof c->path, "%s/big", c->dir);
}

static void
rmtmp(struct file_ctx *c)
{
    unlink(c->path);
    CU_ASSERT_EQUAL(rmdir(c->dir), 0);
}

static unsigned char
pat(size_t i)
{
    return (unsigned char)((i * 2654435761u) >> 13);
}

static pc_msg *
ponger(void *arg)
{
    (void)arg;
    for (;;) {
        pc_msg *m = NULL;
        if (pc_recv(&m, PT_LONG) != PC_OK)
            break;
        bool stop = pc_msg_is(m, "stop");
        pc_ref from = pc_msg_sender(m);
        pc_msg_free(&m);
        if (stop)
            break;
        TCHECK_RC(pt_send(from, "pong"), PC_OK);
    }
    return NULL;
}

static pc_msg *
pinger(void *arg)
{
    struct file_ctx *c = arg;
    pc_ref po = pt_spawn(ponger, NULL, 0, PC_TASK_JOINABLE);

    while (!atomic_load(&c->io_done)) {
        TCHECK_RC(pt_send(po, "ping"), PC_OK);
        PT_EXPECT("pong");
        atomic_fetch_add(&c->rounds, 1);
    }
    TCHECK_RC(pt_send(po, "stop"), PC_OK);
    TCHECK_RC(pc_task_join(po, PT_LONG, NULL), PC_OK);
    return NULL;
}

static pc_msg *
file_roundtrip(void *arg)
{
    struct file_ctx *c = arg;
    unsigned char *buf = malloc(BIG), *back = malloc(BIG);
    pc_file *f = NULL;
    size_t n = 0, total = 0;
    long before;

    TCHECK(buf && back);
    for (size_t i = 0; i < BIG; i++)
        buf[i] = pat(i);
    /* the ping-pong pair runs on this worker while we do file I/O */
    pc_ref pi = pt_spawn(pinger, c, 0, PC_TASK_JOINABLE);
    TCHECK_RC(pc_yield(), PC_OK);
    before = atomic_load(&c->rounds);

    TCHECK_RC(pc_file_open(&f, c->path, O_WRONLY | O_CREAT | O_TRUNC, 0600,
                           c->pool, PT_LONG),
              PC_OK);
    for (size_t off = 0; off < BIG; off += CHUNK) {
        TCHECK_RC(pc_file_write(f, buf + off, CHUNK, PT_LONG, &n), PC_OK);
        TCHECK_EQ(n, CHUNK);
    }
    TCHECK_RC(pc_file_close(&f, PT_LONG), PC_OK);
    TCHECK(f == NULL);

    TCHECK_RC(pc_file_open(&f, c->path, O_RDONLY, 0, c->pool, PT_LONG), PC_OK);
    for (;;) {
        TCHECK_RC(pc_file_read(f, back + total, BIG - total, PT_LONG, &n),
                  PC_OK);
        if (n == 0 || total == BIG)
            break;
        total += n;
    }
    TCHECK_EQ(total, BIG);
    TCHECK(memcmp(buf, back, BIG) == 0);
    TCHECK_RC(pc_file_close(&f, PT_LONG), PC_OK);

    /* the worker kept running the others while the pool did the I/O */
    TCHECK(atomic_load(&c->rounds) > before);
    atomic_store(&c->io_done, 1);
    TCHECK_RC(pc_task_join(pi, PT_LONG, NULL), PC_OK);
    free(buf);
    free(back);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(file_big_roundtrip)
static void
file_big_roundtrip(int W)
{
    struct file_ctx c;

    memset(&c, 0, sizeof c);
    tmpdir(&c);
    RUN_TASK(W, file_roundtrip, &c, &c.done, 1);
    rmtmp(&c);
}

static pc_msg *
file_misc(void *arg)
{
    struct file_ctx *c = arg;
    pc_file *f = NULL;
    char missing[160], buf[32];
    size_t n = 0;

    TCHECK_RC(pc_pool_new(&c->pool, 2), PC_OK);
    /* missing file: a clear error, errno ENOENT */
    snprintf(missing, sizeof missing, "%s/no-such-file", c->dir);
    errno = 0;
    TCHECK_RC(pc_file_open(&f, missing, O_RDONLY, 0, NULL, PT_LONG), PC_ENOENT);
    TCHECK_EQ(errno, ENOENT);
    TCHECK(f == NULL);
    TCHECK_RC(pc_file_open(&f, missing, O_RDONLY, 0, c->pool, PT_LONG),
              PC_ENOENT);
    /* a directory can't be opened for writing */
    TCHECK_RC(pc_file_open(&f, c->dir, O_WRONLY, 0, c->pool, PT_LONG), PC_ESYS);
    TCHECK_EQ(errno, EISDIR);

    /* pwrite / pread at offsets, the position untouched */
    TCHECK_RC(pc_file_open(&f, c->path, O_RDWR | O_CREAT | O_TRUNC, 0600,
                           c->pool, PT_LONG),
              PC_OK);
    TCHECK(pc_file_fd(f) >= 0);
    TCHECK_RC(pc_file_pwrite(f, "world", 5, 6, PT_LONG, &n), PC_OK);
    TCHECK_EQ(n, 5);
    TCHECK_RC(pc_file_pwrite(f, "hello ", 6, 0, PT_LONG, &n), PC_OK);
    TCHECK_RC(pc_file_pread(f, buf, 5, 6, PT_LONG, &n), PC_OK);
    TCHECK_EQ(n, 5);
    TCHECK(memcmp(buf, "world", 5) == 0);
    TCHECK_RC(pc_file_pread(f, buf, sizeof buf, 0, PT_LONG, &n), PC_OK);
    TCHECK_EQ(n, 11); /* short only at end of file */
    TCHECK(memcmp(buf, "hello world", 11) == 0);
    TCHECK_RC(pc_file_pread(f, buf, sizeof buf, 100, PT_LONG, &n), PC_OK);
    TCHECK_EQ(n, 0);
    /* position still 0: a plain read starts at the beginning */
    TCHECK_RC(pc_file_read(f, buf, 5, PT_LONG, &n), PC_OK);
    TCHECK_EQ(n, 5);
    TCHECK(memcmp(buf, "hello", 5) == 0);
    TCHECK_RC(pc_file_pread(f, buf, 1, -1, PT_LONG, &n), PC_EINVAL);
    TCHECK_RC(pc_file_close(&f, PT_LONG), PC_OK);
    TCHECK_RC(pc_file_close(&f, PT_LONG), PC_OK); /* no-op */
    TCHECK_RC(pc_pool_free(&c->pool), PC_OK);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(file_misc_ops)
static void
file_misc_ops(int W)
{
    struct file_ctx c;

    memset(&c, 0, sizeof c);
    tmpdir(&c);
    RUN_TASK(W, file_misc, &c, &c.done, 1);
    rmtmp(&c);
}

/* From main(), no node: the default pool works for a foreign thread too. */
PT_TEST(file_foreign_thread)
static void
file_foreign_thread(void)
{
    struct file_ctx c;
    pc_file *f = NULL;
    char buf[8];
    size_t n = 0;

    memset(&c, 0, sizeof c);
    tmpdir(&c);
    CU_ASSERT_EQUAL(
        pc_file_open(&f, c.path, O_RDWR | O_CREAT, 0600, NULL, PT_LONG), PC_OK);
    CU_ASSERT_EQUAL(pc_file_write(f, "abc", 3, PT_LONG, &n), PC_OK);
    CU_ASSERT_EQUAL(pc_file_pread(f, buf, sizeof buf, 0, PT_LONG, &n), PC_OK);
    CU_ASSERT_EQUAL(n, 3);
    CU_ASSERT_EQUAL(pc_file_close(&f, PT_LONG), PC_OK);
    rmtmp(&c);
}

/* ---- job state off the caller's stack ------------------------------------ */

/* The task modes every pool-backed call is tried in: a task of its own
 * stack, and a small task (PC_TASK_SMALL), whose stack is shared with the
 * worker's other small tasks while it is suspended. */
static const unsigned modes[] = {0, PC_TASK_SMALL};

#define NSMALL 64
#define SMALL_ROUNDS 50
#define SMALL_LEN 4096

struct many_ctx {
    struct file_ctx f;
    atomic_int done;
};

/* open / pread 4 KiB / close, SMALL_ROUNDS times: while one task waits for
 * the pool, the others of its worker run on the same (shared) stack. */
static pc_msg *
many_reader(void *arg)
{
    struct many_ctx *c = arg;
    unsigned char *buf = malloc(SMALL_LEN);

    TCHECK(buf != NULL);
    for (int r = 0; r < SMALL_ROUNDS && buf; r++) {
        pc_file *f = NULL;
        size_t n = 0;
        TCHECK_RC(pc_file_open(&f, c->f.path, O_RDONLY, 0, NULL, PT_LONG),
                  PC_OK);
        memset(buf, 0, SMALL_LEN);
        TCHECK_RC(pc_file_pread(f, buf, SMALL_LEN, 0, PT_LONG, &n), PC_OK);
        TCHECK_EQ(n, SMALL_LEN);
        for (size_t i = 0; i < SMALL_LEN; i++)
            if (buf[i] != pat(i)) {
                TCHECK(buf[i] == pat(i));
                break;
            }
        TCHECK_RC(pc_file_close(&f, PT_LONG), PC_OK);
    }
    free(buf);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

static void
write_pattern(const char *path, size_t len)
{
    unsigned char *b = malloc(len);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    CU_ASSERT_FATAL(b != NULL && fd >= 0);
    for (size_t i = 0; i < len; i++)
        b[i] = pat(i);
    CU_ASSERT_EQUAL(write(fd, b, len), (ssize_t)len);
    close(fd);
    free(b);
}

PT_WTEST(file_many_small_tasks)
static void
file_many_small_tasks(int W)
{
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        struct many_ctx c;
        int fds = nfds();

        memset(&c, 0, sizeof c);
        tmpdir(&c.f);
        write_pattern(c.f.path, SMALL_LEN);
        PT_START(W);
        for (int i = 0; i < NSMALL; i++) {
            pc_spawn_opts o = pt_on(0, modes[m]);
            CU_ASSERT_EQUAL(pc_spawn(many_reader, &c, &o, NULL), PC_OK);
        }
        PT_RUN();
        CU_ASSERT_EQUAL(atomic_load(&c.done), NSMALL);
        CU_ASSERT_EQUAL(nfds(), fds);
        rmtmp(&c.f);
    }
}

/* A task terminated while the pool reads for it: the read lands in the
 * job, not in the caller's buffer, which its owner frees at once. */
struct kill_ctx {
    struct file_ctx f;
    unsigned flags;
    pc_file *file;
    unsigned char *buf;
    pc_ref killer;
    atomic_int done;
};

static pc_msg *
blocked_reader(void *arg)
{
    struct kill_ctx *c = arg;
    size_t n = 0;

    TCHECK_RC(pc_file_open(&c->file, c->f.path, O_RDONLY, 0, NULL, PT_LONG),
              PC_OK);
    TCHECK_RC(pt_send(c->killer, "opened"), PC_OK);
    /* blocks on the pool thread: the FIFO has a writer and no data */
    (void)pc_file_read(c->file, c->buf, SMALL_LEN, -1, &n);
    TCHECK(!"the terminated reader went on");
    return NULL;
}

static pc_msg *
file_killer(void *arg)
{
    struct kill_ctx *c = arg;
    int wfd = open(c->f.path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    static unsigned char data[SMALL_LEN];
    pc_ref r;

    TCHECK(wfd >= 0);
    c->killer = pc_self();
    c->buf = malloc(SMALL_LEN);
    r = pt_spawn(blocked_reader, c, 1, c->flags | PC_TASK_JOINABLE);
    PT_EXPECT("opened");
    TCHECK_RC(pc_sleep(0.05), PC_OK); /* most likely inside read(2) now */
    TCHECK_RC(pc_task_terminate(r), PC_OK);
    TCHECK_RC(pc_task_join(r, PT_LONG, NULL), PC_EKILLED);
    free(c->buf); /* the caller is gone: its buffer is its owner's again */
    c->buf = NULL;
    memset(data, 0xab, sizeof data);
    TCHECK_EQ(write(wfd, data, sizeof data), (ssize_t)sizeof data);
    /* the last close frees the default pool: waits for the late read */
    TCHECK_RC(pc_file_close(&c->file, PT_LONG), PC_OK);
    close(wfd);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(file_terminate_in_read)
static void
file_terminate_in_read(int W)
{
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        struct kill_ctx c;

        memset(&c, 0, sizeof c);
        c.flags = modes[m];
        tmpdir(&c.f);
        CU_ASSERT_FATAL(mkfifo(c.f.path, 0600) == 0);
        RUN_TASK(W, file_killer, &c, &c.done, 1);
        rmtmp(&c.f);
    }
}

/* Timeouts: a read, an open and a close that can't finish in time give
 * PC_ETIMEDOUT; the late jobs end safely later (their reads into nothing
 * of the caller's, the late open's fd closed), and a timed-out close
 * leaves the file open for a second close. */
struct to_ctx {
    struct file_ctx f;
    unsigned flags;
    atomic_int done;
};

static pc_msg *
file_to_task(void *arg)
{
    struct to_ctx *c = arg;
    pc_file *f = NULL;
    size_t n = 9;
    int wfd;

    {
        char buf[64]; /* on the (maybe shared) stack: gone after the call */
        /* a FIFO without a writer: open(2) blocks */
        TCHECK_RC(pc_file_open(&f, c->f.path, O_RDONLY, 0, NULL, 0.05),
                  PC_ETIMEDOUT);
        TCHECK(f == NULL);
        wfd = open(c->f.path, O_RDWR | O_NONBLOCK | O_CLOEXEC); /* the late
                                                  open now ends, unwanted */
        TCHECK(wfd >= 0);
        TCHECK_RC(pc_file_open(&f, c->f.path, O_RDONLY, 0, NULL, PT_LONG),
                  PC_OK);
        /* a writer and no data: read(2) blocks */
        TCHECK_RC(pc_file_read(f, buf, sizeof buf, 0.05, &n), PC_ETIMEDOUT);
        TCHECK_EQ(n, 0);
        TCHECK_RC(pc_file_read(f, buf, sizeof buf, 0, &n), PC_ETIMEDOUT);
    }
    TCHECK_RC(pc_yield(), PC_OK); /* another frame over the old buf */
    /* the late reads hold the default pool busy */
    TCHECK_RC(pc_file_close(&f, 0.05), PC_ETIMEDOUT);
    TCHECK(f != NULL);
    close(wfd); /* end of file: the late reads end */
    TCHECK_RC(pc_file_close(&f, PT_LONG), PC_OK);
    TCHECK(f == NULL);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(file_timeouts)
static void
file_timeouts(int W)
{
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        struct to_ctx c;

        memset(&c, 0, sizeof c);
        c.flags = modes[m];
        tmpdir(&c.f);
        CU_ASSERT_FATAL(mkfifo(c.f.path, 0600) == 0);
        {
            int fds = nfds();
            PT_START(W);
            pc_spawn_opts o = pt_on(0, c.flags);
            CU_ASSERT_EQUAL(pc_spawn(file_to_task, &c, &o, NULL), PC_OK);
            PT_RUN();
            CU_ASSERT_EQUAL(atomic_load(&c.done), 1);
            CU_ASSERT_EQUAL(nfds(), fds);
        }
        rmtmp(&c.f);
    }
}

PT_MAIN("file", PT_WENTRY(fd_pipe), PT_WENTRY(fd_write_closed),
        PT_WENTRY(file_big_roundtrip), PT_WENTRY(file_misc_ops),
        PT_ENTRY(file_foreign_thread), PT_WENTRY(file_many_small_tasks),
        PT_WENTRY(file_terminate_in_read), PT_WENTRY(file_timeouts))
