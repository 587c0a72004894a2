/* tests/test_wait_fd.c — pc_wait_fd: readiness, timeouts, bad arguments,
 * cross-worker wake-ups, many waiters, and the wake rules (neither a
 * message nor a resume wakes a task waiting for an fd).
 *
 * The writer always writes after the reader said "ready" and went straight
 * into pc_wait_fd (see test_task.c for why that is race-free).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>

#include "testutil.h"

static void
nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        abort();
}

/* ---- read readiness ------------------------------------------------------------ */

struct pipe_ctx {
    int p[2];
    pc_ref main;
    pc_ref reader;
    atomic_int phase;
    atomic_int got;
    atomic_int done;
};

static pc_msg *
pipe_reader(void *arg)
{
    struct pipe_ctx *c = arg;
    int rev = 0;
    char ch = 0;

    TCHECK_RC(pt_send(c->main, "ready"), PC_OK);
    TCHECK_RC(pc_wait_fd(c->p[0], PC_READ, PT_LONG, &rev), PC_OK);
    TCHECK(rev & PC_READ);
    TCHECK_EQ(atomic_load(&c->phase), 1); /* not before the write */
    TCHECK_EQ(read(c->p[0], &ch, 1), 1);
    TCHECK_EQ(ch, 'x');
    /* nothing more: a second wait times out */
    TCHECK_RC(pc_wait_fd(c->p[0], PC_READ, 0.05, &rev), PC_ETIMEDOUT);

    /* wait forever, revents not wanted */
    TCHECK_RC(pt_send(c->main, "ready"), PC_OK);
    TCHECK_RC(pc_wait_fd(c->p[0], PC_READ, -1, NULL), PC_OK);
    TCHECK_EQ(read(c->p[0], &ch, 1), 1);
    TCHECK_EQ(ch, 'y');
    atomic_fetch_add(&c->got, 1);
    return NULL;
}

static pc_msg *
pipe_writer_main(void *arg)
{
    struct pipe_ctx *c = arg;
    pc_ref r;

    c->main = pc_self();
    r = pt_spawn(pipe_reader, c, 0, PC_TASK_JOINABLE);
    PT_EXPECT("ready");
    TCHECK_RC(pc_yield(), PC_OK); /* a reader woken early would run now */
    atomic_store(&c->phase, 1);
    TCHECK_EQ(write(c->p[1], "x", 1), 1);
    PT_EXPECT("ready");
    TCHECK_EQ(write(c->p[1], "y", 1), 1);
    TCHECK_RC(pc_task_join(r, PT_LONG, NULL), PC_OK);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* The reader waits on worker 0; the writer writes from worker 1 (when there
 * are two) after the reader is waiting. */
PT_WTEST(wait_fd_read_ready)
static void
wait_fd_read_ready(int W)
{
    struct pipe_ctx c;
    pc_spawn_opts o;

    memset(&c, 0, sizeof c);
    CU_ASSERT_FATAL(pipe(c.p) == 0);
    nonblock(c.p[0]);
    PT_START(W);
    o = pt_on(1, 0);
    CU_ASSERT_EQUAL(pc_spawn(pipe_writer_main, &c, &o, NULL), PC_OK);
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&c.done), 1);
    CU_ASSERT_EQUAL(atomic_load(&c.got), 1);
    close(c.p[0]);
    close(c.p[1]);
}

/* ---- timeouts, write readiness, bad arguments -------------------------------- */

static pc_msg *
fd_basics(void *arg)
{
    struct pipe_ctx *c = arg;
    int rev = 0, sp[2];
    double t0 = pc_now();
    char ch;

    /* nothing to read */
    TCHECK_RC(pc_wait_fd(c->p[0], PC_READ, 0.05, &rev), PC_ETIMEDOUT);
    TCHECK(pt_since(t0) >= 0.045);
    TCHECK_RC(pc_wait_fd(c->p[0], PC_READ, 0, &rev), PC_ETIMEDOUT);

    /* an empty pipe is writable at once */
    rev = 0;
    TCHECK_RC(pc_wait_fd(c->p[1], PC_WRITE, PT_LONG, &rev), PC_OK);
    TCHECK_EQ(rev, PC_WRITE);

    /* readable when there is data already */
    TCHECK_EQ(write(c->p[1], "z", 1), 1);
    rev = 0;
    TCHECK_RC(pc_wait_fd(c->p[0], PC_READ, PT_LONG, &rev), PC_OK);
    TCHECK_EQ(rev, PC_READ);
    TCHECK_EQ(read(c->p[0], &ch, 1), 1);

    /* both asked, only write ready */
    TCHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0);
    rev = 0;
    TCHECK_RC(pc_wait_fd(sp[0], PC_READ | PC_WRITE, PT_LONG, &rev), PC_OK);
    TCHECK_EQ(rev, PC_WRITE);
    TCHECK_EQ(write(sp[1], "q", 1), 1);
    rev = 0;
    TCHECK_RC(pc_wait_fd(sp[0], PC_READ | PC_WRITE, PT_LONG, &rev), PC_OK);
    TCHECK(rev & PC_READ);
    close(sp[0]);
    close(sp[1]);

    /* a full pipe is not writable: times out */
    while (write(c->p[1], "fffffffffffffffffffffffffffffff", 32) > 0)
        ;
    TCHECK(errno == EAGAIN || errno == EWOULDBLOCK);
    TCHECK_RC(pc_wait_fd(c->p[1], PC_WRITE, 0.05, &rev), PC_ETIMEDOUT);

    /* bad arguments */
    TCHECK_RC(pc_wait_fd(c->p[0], 0, 0.01, &rev), PC_EINVAL);
    TCHECK_RC(pc_wait_fd(c->p[0], 0x4, 0.01, &rev), PC_EINVAL);
    TCHECK_RC(pc_wait_fd(c->p[0], PC_READ | 0x8, 0.01, &rev), PC_EINVAL);
    TCHECK_RC(pc_wait_fd(-1, PC_READ, 0.01, &rev), PC_EINVAL);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(wait_fd_basics)
static void
wait_fd_basics(int W)
{
    struct pipe_ctx c;

    memset(&c, 0, sizeof c);
    CU_ASSERT_FATAL(pipe(c.p) == 0);
    nonblock(c.p[0]);
    nonblock(c.p[1]);
    PT_RUN_TASK(W, fd_basics, &c, &c.done, 1);
    close(c.p[0]);
    close(c.p[1]);
}

/* ---- wake rules ----------------------------------------------------------------- */

static pc_msg *
fd_waiter_rules(void *arg)
{
    struct pipe_ctx *c = arg;
    int rev = 0;
    char ch;

    TCHECK_RC(pt_send(c->main, "ready"), PC_OK);
    TCHECK_RC(pc_wait_fd(c->p[0], PC_READ, PT_LONG, &rev), PC_OK);
    TCHECK(rev & PC_READ);
    TCHECK_EQ(atomic_load(&c->phase), 1);
    TCHECK_EQ(read(c->p[0], &ch, 1), 1);
    /* the message sent meanwhile is waiting */
    TCHECK_EQ(pc_mailbox_depth(), 1);
    PT_EXPECT("poke");
    return NULL;
}

static pc_msg *
fd_rules_main(void *arg)
{
    struct pipe_ctx *c = arg;
    pc_msg *m = NULL;
    pc_ref r;

    c->main = pc_self();
    r = pt_spawn(fd_waiter_rules, c, 0, PC_TASK_JOINABLE);
    PT_EXPECT("ready");
    TCHECK_RC(pc_msg_new(&m, "poke", NULL, 0), PC_OK);
    TCHECK_RC(pc_deliver(r, &m, PT_LONG), PC_OK);
    TCHECK_RC(pc_resume(r, c), PC_OK);
    TCHECK_RC(pc_yield(), PC_OK);
    TCHECK_RC(pc_yield(), PC_OK);
    atomic_store(&c->phase, 1);
    TCHECK_EQ(write(c->p[1], "w", 1), 1);
    TCHECK_RC(pc_task_join(r, PT_LONG, NULL), PC_OK);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* Neither a message nor pc_resume wakes a task in pc_wait_fd. */
PT_WTEST(wait_fd_wake_rules)
static void
wait_fd_wake_rules(int W)
{
    struct pipe_ctx c;
    pc_spawn_opts o;

    memset(&c, 0, sizeof c);
    CU_ASSERT_FATAL(pipe(c.p) == 0);
    nonblock(c.p[0]);
    PT_START(W);
    o = pt_on(1, 0);
    CU_ASSERT_EQUAL(pc_spawn(fd_rules_main, &c, &o, NULL), PC_OK);
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&c.done), 1);
    close(c.p[0]);
    close(c.p[1]);
}

static pc_msg *
fd_forever(void *arg)
{
    struct pipe_ctx *c = arg;

    TCHECK_RC(pt_send(c->main, "ready"), PC_OK);
    pc_wait_fd(c->p[0], PC_READ, -1, NULL);
    atomic_fetch_add(&c->got, 1); /* must never run */
    return NULL;
}

static pc_msg *
fd_terminate_main(void *arg)
{
    struct pipe_ctx *c = arg;
    pc_ref r;

    c->main = pc_self();
    r = pt_spawn(fd_forever, c, 0, PC_TASK_JOINABLE);
    PT_EXPECT("ready");
    TCHECK_RC(pc_task_terminate(r), PC_OK);
    TCHECK_RC(pc_task_join(r, PT_LONG, NULL), PC_EKILLED);
    /* its watcher is gone: readiness now wakes nobody and breaks nothing */
    TCHECK_EQ(write(c->p[1], "k", 1), 1);
    TCHECK_RC(pc_sleep(0.02), PC_OK);
    /* and the fd can be waited on again by another task */
    int rev = 0;
    TCHECK_RC(pc_wait_fd(c->p[0], PC_READ, PT_LONG, &rev), PC_OK);
    TCHECK(rev & PC_READ);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* A task terminated while in pc_wait_fd. */
PT_WTEST(wait_fd_terminate)
static void
wait_fd_terminate(int W)
{
    struct pipe_ctx c;
    pc_spawn_opts o;

    memset(&c, 0, sizeof c);
    CU_ASSERT_FATAL(pipe(c.p) == 0);
    nonblock(c.p[0]);
    PT_START(W);
    o = pt_on(1, 0);
    CU_ASSERT_EQUAL(pc_spawn(fd_terminate_main, &c, &o, NULL), PC_OK);
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&c.done), 1);
    CU_ASSERT_EQUAL(atomic_load(&c.got), 0);
    close(c.p[0]);
    close(c.p[1]);
}

/* ---- many waiters ---------------------------------------------------------------- */

#define PAIRS 200

struct many_ctx {
    pc_ref main;
    int sp[PAIRS][2];
    struct many_arg {
        struct many_ctx *c;
        int i;
    } args[PAIRS];
    atomic_int ok;
    atomic_int done;
};

static pc_msg *
sp_waiter(void *arg)
{
    struct many_arg *a = arg;
    struct many_ctx *c = a->c;
    int rev = 0;
    unsigned char b = 0;

    TCHECK_RC(pt_send(c->main, "ready"), PC_OK);
    if (pc_wait_fd(c->sp[a->i][0], PC_READ, PT_LONG, &rev) != PC_OK ||
        !(rev & PC_READ)) {
        TCHECK(!"waiter not woken");
        return NULL;
    }
    if (read(c->sp[a->i][0], &b, 1) == 1 && b == (unsigned char)a->i)
        atomic_fetch_add(&c->ok, 1);
    /* reply through the socket */
    b = (unsigned char)(b + 1);
    TCHECK_EQ(write(c->sp[a->i][0], &b, 1), 1);
    return NULL;
}

static pc_msg *
many_main(void *arg)
{
    struct many_ctx *c = arg;
    pc_ref r[PAIRS];

    c->main = pc_self();
    for (int i = 0; i < PAIRS; i++) {
        c->args[i].c = c;
        c->args[i].i = i;
        r[i] = pt_spawn(sp_waiter, &c->args[i], i, PC_TASK_JOINABLE);
    }
    for (int i = 0; i < PAIRS; i++)
        PT_EXPECT("ready");
    /* wake them in reverse order */
    for (int i = PAIRS - 1; i >= 0; i--) {
        unsigned char b = (unsigned char)i;
        TCHECK_EQ(write(c->sp[i][1], &b, 1), 1);
    }
    for (int i = 0; i < PAIRS; i++) {
        unsigned char b = 0;
        int rev = 0;
        TCHECK_RC(pc_wait_fd(c->sp[i][1], PC_READ, PT_LONG, &rev), PC_OK);
        TCHECK_EQ(read(c->sp[i][1], &b, 1), 1);
        TCHECK_EQ(b, (unsigned char)(i + 1));
    }
    for (int i = 0; i < PAIRS; i++)
        TCHECK_RC(pc_task_join(r[i], PT_LONG, NULL), PC_OK);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* 200 tasks on both workers, each waiting on its own socketpair. */
PT_WTEST(wait_fd_many)
static void
wait_fd_many(int W)
{
    struct many_ctx *c = calloc(1, sizeof *c);

    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    for (int i = 0; i < PAIRS; i++) {
        CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, c->sp[i]) == 0);
        nonblock(c->sp[i][0]);
        nonblock(c->sp[i][1]);
    }
    PT_RUN_TASK(W, many_main, c, &c->done, 1);
    CU_ASSERT_EQUAL(atomic_load(&c->ok), PAIRS);
    for (int i = 0; i < PAIRS; i++) {
        close(c->sp[i][0]);
        close(c->sp[i][1]);
    }
    free(c);
}

/* From the main thread: PC_EPERM. */
PT_TEST(wait_fd_outside_task)
static void
wait_fd_outside_task(void)
{
    int p[2], rev = 0;

    CU_ASSERT_FATAL(pipe(p) == 0);
    PT_START(1);
    CU_ASSERT_EQUAL(pc_wait_fd(p[0], PC_READ, 0.01, &rev), PC_EPERM);
    CU_ASSERT_EQUAL(pc_wait_fd(p[1], PC_WRITE, -1, &rev), PC_EPERM);
    PT_RUN();
    close(p[0]);
    close(p[1]);
}

/* ---- pc_wait_fd_cancel ---------------------------------------------------- */

struct cancel_ctx {
    int p[2];
    pc_ref driver;
    uint32_t wait; /* the waiter's first wait id */
    atomic_int done;
};

static pc_msg *
cancel_waiter(void *arg)
{
    struct cancel_ctx *c = arg;
    int rev = -1;

    c->wait = pc_wait_fd_next();
    TCHECK(c->wait != 0);
    pt_send(c->driver, "waiting");
    /* nothing is written yet: only the cancel can end this wait */
    TCHECK_RC(pc_wait_fd(c->p[0], PC_READ, PT_LONG, &rev), PC_ECLOSED);
    TCHECK_EQ(rev, 0);
    TCHECK(pc_wait_fd_next() != c->wait);
    pt_send(c->driver, "cancelled");
    /* a second wait: a late cancel of the first must not end it */
    TCHECK_RC(pc_wait_fd(c->p[0], PC_READ, PT_LONG, &rev), PC_OK);
    TCHECK_EQ(rev, PC_READ);
    pt_send(c->driver, "readable");
    return NULL;
}

static pc_msg *
cancel_main(void *arg)
{
    struct cancel_ctx *c = arg;
    char b = 'x';

    c->driver = pc_self();
    TCHECK_EQ(pc_wait_fd_next(), pc_wait_fd_next()); /* only waits count */
    for (int w = 0; w < 2; w++) { /* same worker, then the other (W=2) */
        pc_ref t = pt_spawn(cancel_waiter, c, w, 0);
        pc_msg *m = NULL;
        PT_EXPECT("waiting");
        /* a resume doesn't end that wait, only the cancel does; across
         * workers the waiter may not be in pc_wait_fd yet, so cancel until
         * it reports (a cancel before its wait is a no-op by contract) */
        TCHECK_RC(pc_resume(t, NULL), PC_OK);
        TCHECK_RC(pc_wait_fd_cancel(t, c->wait + 1), PC_OK); /* not its id */
        do {
            TCHECK_RC(pc_wait_fd_cancel(t, c->wait), PC_OK);
        } while (pc_recv_type("cancelled", &m, 0.01) == PC_ETIMEDOUT);
        pc_msg_free(&m);
        /* On the same worker the waiter is in its second wait by now (it
         * ran until it blocked): the stale cancel must not wake it. */
        TCHECK_RC(pc_wait_fd_cancel(t, c->wait), PC_OK);
        TCHECK_EQ(write(c->p[1], &b, 1), 1);
        PT_EXPECT("readable");
        TCHECK_EQ(read(c->p[0], &b, 1), 1);
    }
    TCHECK_RC(pc_wait_fd_cancel(PC_REF_NIL, 1), PC_ENOENT);
    TCHECK_RC(pc_wait_fd_cancel(c->driver, 0), PC_EINVAL);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(wait_fd_cancel)
static void
wait_fd_cancel(int W)
{
    struct cancel_ctx c;

    memset(&c, 0, sizeof c);
    CU_ASSERT_FATAL(pipe(c.p) == 0);
    PT_RUN_TASK(W, cancel_main, &c, &c.done, 1);
    close(c.p[0]);
    close(c.p[1]);
}

PT_MAIN("wait_fd", PT_WENTRY(wait_fd_read_ready), PT_WENTRY(wait_fd_basics),
        PT_WENTRY(wait_fd_wake_rules), PT_WENTRY(wait_fd_terminate),
        PT_WENTRY(wait_fd_many), PT_WENTRY(wait_fd_cancel),
        PT_ENTRY(wait_fd_outside_task))
