/* tests/test_mailbox.c — mailboxes: FIFO per sender, cross-worker traffic,
 * sends from foreign threads, pc_deliver, depth, and what happens to mail
 * nobody reads.
 *
 * Ordering is checked per sender only (the contract: FIFO per sender ->
 * receiver pair); payloads carry the sender's index and sequence number.
 * Leftover mail is checked by LSan in the sanitizer builds.
 */
#include "picos/chan.h"

#include "testutil.h"

/* ---- FIFO per sender --------------------------------------------------------- */

#define SENDERS 4
#define PER_SENDER 10000

struct seq_payload {
    uint32_t stream;
    uint32_t seq;
    pc_ref self;
};

struct fifo_ctx {
    pc_ref receiver;
    struct fifo_arg {
        struct fifo_ctx *c;
        uint32_t i;
    } args[SENDERS];
    atomic_long out_of_order;
    atomic_long bad_sender;
    atomic_long received;
    atomic_int senders_done;
    atomic_int done;
    long per_sender;
};

static pc_msg *
fifo_sender(void *arg)
{
    struct fifo_arg *a = arg;
    struct seq_payload p;

    p.stream = a->i;
    p.self = pc_self();
    for (long s = 0; s < a->c->per_sender; s++) {
        p.seq = (uint32_t)s;
        TCHECK_RC(pc_send_data(a->c->receiver, "seq", &p, sizeof p), PC_OK);
        if (s % 97 == 0)
            pc_yield(); /* mix the senders on one worker */
    }
    atomic_fetch_add(&a->c->senders_done, 1);
    return NULL;
}

static pc_msg *
fifo_receiver(void *arg)
{
    struct fifo_ctx *c = arg;
    uint32_t next[SENDERS] = {0};
    long total = c->per_sender * SENDERS;

    for (long n = 0; n < total; n++) {
        pc_msg *m = NULL;
        struct seq_payload p;
        size_t len = 0;
        const void *d;

        if (pc_recv(&m, PT_LONG) != PC_OK || !m) {
            TCHECK(!"message lost");
            break;
        }
        d = pc_msg_data(m, &len);
        if (len != sizeof p || !pc_msg_is(m, "seq")) {
            TCHECK(!"unexpected message");
            pc_msg_free(&m);
            continue;
        }
        memcpy(&p, d, sizeof p);
        if (p.stream >= SENDERS) {
            atomic_fetch_add(&c->bad_sender, 1);
        } else {
            if (p.seq != next[p.stream])
                atomic_fetch_add(&c->out_of_order, 1);
            next[p.stream] = p.seq + 1;
            if (!pc_ref_eq(pc_msg_sender(m), p.self))
                atomic_fetch_add(&c->bad_sender, 1);
        }
        atomic_fetch_add(&c->received, 1);
        pc_msg_free(&m);
    }
    for (int i = 0; i < SENDERS; i++)
        TCHECK_EQ(next[i], c->per_sender);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* 4 senders x 10k messages to one receiver; senders on both workers. */
PT_WTEST(fifo_per_sender)
static void
fifo_per_sender(int W)
{
    struct fifo_ctx c;
    pc_spawn_opts o;

    memset(&c, 0, sizeof c);
    c.per_sender = pt_scaled(PER_SENDER, 1);
    PT_START(W);
    o = pt_on(0, 0);
    CU_ASSERT_EQUAL_FATAL(pc_spawn(fifo_receiver, &c, &o, &c.receiver), PC_OK);
    for (uint32_t i = 0; i < SENDERS; i++) {
        c.args[i].c = &c;
        c.args[i].i = i;
        o = pt_on((int)i, 0);
        CU_ASSERT_EQUAL(pc_spawn(fifo_sender, &c.args[i], &o, NULL), PC_OK);
    }
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&c.done), 1);
    CU_ASSERT_EQUAL(atomic_load(&c.senders_done), SENDERS);
    CU_ASSERT_EQUAL(atomic_load(&c.received), SENDERS * c.per_sender);
    CU_ASSERT_EQUAL(atomic_load(&c.out_of_order), 0);
    CU_ASSERT_EQUAL(atomic_load(&c.bad_sender), 0);
}

/* ---- ping-pong under load ---------------------------------------------------- */

#define PAIRS 8
#define ROUND_TRIPS 100000

struct pp_ctx {
    struct pp_pair {
        struct pp_ctx *c;
        pc_ref pong;
        int forward; /* pong sends the very message back */
    } pairs[PAIRS];
    long per_pair;
    atomic_long wrong;
    atomic_long copied;
    atomic_long trips;
    atomic_int pongs_done;
    atomic_int done;
};

static pc_msg *
pong_task(void *arg)
{
    struct pp_pair *p = arg;

    for (;;) {
        pc_msg *m = NULL;

        if (pc_recv(&m, PT_LONG) != PC_OK || !m) {
            TCHECK(!"pong: message lost");
            break;
        }
        if (pc_msg_is(m, "stop")) {
            pc_msg_free(&m);
            break;
        }
        pc_ref back = pc_msg_sender(m);
        if (p->forward) {
            /* a received message belongs to the receiver: send it on */
            TCHECK_RC(pc_send(back, &m), PC_OK);
            TCHECK(m == NULL);
        } else {
            TCHECK_RC(pt_send_u64(back, "pong", pt_u64(m)), PC_OK);
        }
        pc_msg_free(&m);
    }
    atomic_fetch_add(&p->c->pongs_done, 1);
    return NULL;
}

static pc_msg *
ping_task(void *arg)
{
    struct pp_pair *p = arg;
    struct pp_ctx *c = p->c;

    for (long i = 0; i < c->per_pair; i++) {
        pc_msg *m = NULL, *r = NULL;
        const pc_msg *sent;

        TCHECK_RC(pc_msg_new(&m, "ping", &i, sizeof i), PC_OK);
        sent = m;
        TCHECK_RC(pc_send(p->pong, &m), PC_OK);
        if (pc_recv(&r, PT_LONG) != PC_OK || !r) {
            TCHECK(!"ping: reply lost");
            break;
        }
        if (pt_u64(r) != (uint64_t)i)
            atomic_fetch_add(&c->wrong, 1);
        if (p->forward && (r != sent || !pc_msg_is(r, "ping")))
            atomic_fetch_add(&c->copied, 1);
        if (!p->forward && !pc_msg_is(r, "pong"))
            atomic_fetch_add(&c->wrong, 1);
        pc_msg_free(&r);
        atomic_fetch_add(&c->trips, 1);
    }
    TCHECK_RC(pt_send(p->pong, "stop"), PC_OK);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* Many ping-pong pairs at once, ping on worker 0 and pong on worker 1:
 * 100k round trips in all. */
PT_WTEST(pingpong_cross_worker)
static void
pingpong_cross_worker(int W)
{
    struct pp_ctx c;
    pc_spawn_opts o;

    memset(&c, 0, sizeof c);
    c.per_pair = pt_scaled(ROUND_TRIPS, 4) / PAIRS;
    if (c.per_pair < 1)
        c.per_pair = 1;
    PT_START(W);
    for (int i = 0; i < PAIRS; i++) {
        c.pairs[i].c = &c;
        c.pairs[i].forward = i % 2;
        o = pt_on(1, 0);
        CU_ASSERT_EQUAL_FATAL(
            pc_spawn(pong_task, &c.pairs[i], &o, &c.pairs[i].pong), PC_OK);
    }
    for (int i = 0; i < PAIRS; i++) {
        o = pt_on(0, 0);
        CU_ASSERT_EQUAL(pc_spawn(ping_task, &c.pairs[i], &o, NULL), PC_OK);
    }
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&c.done), PAIRS);
    CU_ASSERT_EQUAL(atomic_load(&c.pongs_done), PAIRS);
    CU_ASSERT_EQUAL(atomic_load(&c.trips), PAIRS * c.per_pair);
    CU_ASSERT_EQUAL(atomic_load(&c.wrong), 0);
    CU_ASSERT_EQUAL(atomic_load(&c.copied), 0);
}

/* ---- sends from foreign threads ----------------------------------------------- */

#define MAIN_SENDS 3
#define THREAD_SENDS 1000

struct foreign_ctx {
    pc_ref r;
    atomic_long wrong;
    atomic_long got;
    atomic_int done;
};

struct stream_payload {
    uint32_t stream;
    uint32_t seq;
};

static pc_msg *
foreign_receiver(void *arg)
{
    struct foreign_ctx *c = arg;
    uint32_t next[2] = {0, 0};

    for (int n = 0; n < MAIN_SENDS + THREAD_SENDS; n++) {
        pc_msg *m = NULL;
        struct stream_payload p;
        size_t len = 0;
        const void *d;

        if (pc_recv(&m, PT_LONG) != PC_OK || !m) {
            TCHECK(!"message lost");
            break;
        }
        d = pc_msg_data(m, &len);
        TCHECK(pc_ref_is_nil(pc_msg_sender(m)));
        if (len == sizeof p) {
            memcpy(&p, d, sizeof p);
            if (p.stream > 1 || p.seq != next[p.stream])
                atomic_fetch_add(&c->wrong, 1);
            else
                next[p.stream]++;
        } else {
            atomic_fetch_add(&c->wrong, 1);
        }
        atomic_fetch_add(&c->got, 1);
        pc_msg_free(&m);
    }
    TCHECK_EQ(next[0], MAIN_SENDS);
    TCHECK_EQ(next[1], THREAD_SENDS);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

static void *
foreign_sender(void *arg)
{
    struct foreign_ctx *c = arg;

    for (uint32_t i = 0; i < THREAD_SENDS; i++) {
        struct stream_payload p = {1, i};
        pc_msg *m = NULL;

        TCHECK_RC(pc_msg_new(&m, "t", &p, sizeof p), PC_OK);
        TCHECK(pc_ref_is_nil(pc_msg_sender(m)));
        TCHECK_RC(pc_send(c->r, &m), PC_OK);
        TCHECK(m == NULL);
        pc_msg_free(&m);
    }
    return NULL;
}

/* pc_send from the main thread (before pc_node_run) and from another
 * thread while the node runs. */
PT_WTEST(send_from_foreign_threads)
static void
send_from_foreign_threads(int W)
{
    struct foreign_ctx c;
    pc_spawn_opts o;
    pthread_t th;

    memset(&c, 0, sizeof c);
    PT_START(W);
    o = pt_on(1, 0);
    CU_ASSERT_EQUAL_FATAL(pc_spawn(foreign_receiver, &c, &o, &c.r), PC_OK);
    for (uint32_t i = 0; i < MAIN_SENDS; i++) {
        struct stream_payload p = {0, i};
        pc_msg *m = NULL;
        CU_ASSERT_EQUAL_FATAL(pc_msg_new(&m, "m", &p, sizeof p), PC_OK);
        CU_ASSERT_EQUAL(pc_send(c.r, &m), PC_OK);
        CU_ASSERT_PTR_NULL(m);
    }
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, foreign_sender, &c), 0);
    /* a foreign thread's picos calls must be over before pc_node_run()
     * frees the node */
    pthread_join(th, NULL);
    PT_RUN();
    pt_flush();
    CU_ASSERT_EQUAL(atomic_load(&c.done), 1);
    CU_ASSERT_EQUAL(atomic_load(&c.got), MAIN_SENDS + THREAD_SENDS);
    CU_ASSERT_EQUAL(atomic_load(&c.wrong), 0);
}

/* Bad arguments to pc_send. */
static pc_msg *
send_einval_task(void *arg)
{
    atomic_int *done = arg;
    pc_msg *none = NULL;

    TCHECK_RC(pc_send(pc_self(), NULL), PC_EINVAL);
    TCHECK_RC(pc_send(pc_self(), &none), PC_EINVAL);
    TCHECK_RC(pc_deliver(pc_self(), NULL, 0.1), PC_EINVAL);
    TCHECK_RC(pc_deliver(pc_self(), &none, 0.1), PC_EINVAL);
    TCHECK_EQ(pc_mailbox_depth(), 0);
    atomic_fetch_add(done, 1);
    return NULL;
}

PT_TEST(send_einval)
static void
send_einval(void)
{
    atomic_int done = 0;

    PT_RUN_TASK(1, send_einval_task, &done, &done, 1);
}

/* ---- deliver ---------------------------------------------------------------- */

#define DELIVERS 5

struct deliver_ctx {
    pc_ref r, d;
    atomic_int r_done;
    atomic_int done;
    /* the main-thread variant */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int suspended;
};

static pc_msg *
deliver_receiver(void *arg)
{
    struct deliver_ctx *c = arg;
    void *v = NULL;
    pc_msg *m = NULL;
    size_t k;

    TCHECK_RC(pt_send(c->d, "ready"), PC_OK);
    /* not woken by the delivered messages; resumed once they are in */
    TCHECK_RC(pc_suspend(PT_LONG, &v), PC_OK);
    k = (size_t)(uintptr_t)v;
    TCHECK_EQ(k, DELIVERS);
    TCHECK_EQ(pc_mailbox_depth(), k);
    for (size_t i = 0; i < k; i++) {
        TCHECK_RC(pc_recv(&m, 0), PC_OK);
        TCHECK(m != NULL && pt_u64(m) == i);
        pc_msg_free(&m);
        TCHECK_EQ(pc_mailbox_depth(), k - i - 1);
    }
    TCHECK_RC(pc_recv(&m, 0), PC_ETIMEDOUT);
    atomic_fetch_add(&c->r_done, 1);
    return NULL;
}

static pc_msg *
deliverer(void *arg)
{
    struct deliver_ctx *c = arg;
    pc_msg *m = NULL;

    c->d = pc_self();
    c->r = pt_spawn(deliver_receiver, c, 0, PC_TASK_JOINABLE);
    PT_EXPECT("ready");
    for (uint64_t i = 0; i < DELIVERS; i++) {
        TCHECK_RC(pc_msg_new(&m, "d", &i, sizeof i), PC_OK);
        TCHECK_RC(pc_deliver(c->r, &m, PT_LONG), PC_OK);
        TCHECK(m == NULL);
        pc_msg_free(&m);
    }
    TCHECK_RC(pc_resume(c->r, (void *)(uintptr_t)DELIVERS), PC_OK);
    TCHECK_RC(pc_task_join(c->r, PT_LONG, NULL), PC_OK);

    /* stale target */
    TCHECK_RC(pc_msg_new(&m, "d", NULL, 0), PC_OK);
    TCHECK_RC(pc_deliver(c->r, &m, PT_LONG), PC_ENOENT);
    TCHECK(m != NULL); /* an error: still the caller's */
    pc_msg_free(&m);
    TCHECK_RC(pc_msg_new(&m, "d", NULL, 0), PC_OK);
    TCHECK_RC(pc_deliver(PC_REF_NIL, &m, PT_LONG), PC_ENOENT);
    pc_msg_free(&m);

    /* to itself */
    TCHECK_RC(pc_msg_new(&m, "self", NULL, 0), PC_OK);
    TCHECK_RC(pc_deliver(pc_self(), &m, PT_LONG), PC_OK);
    TCHECK_EQ(pc_mailbox_depth(), 1);
    PT_EXPECT("self");
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* pc_deliver returns PC_OK only once the message is in the mailbox: the
 * receiver, resumed after the delivers returned, finds them all there. The
 * deliverer sits on the other worker when there are two. */
PT_WTEST(deliver_enqueued)
static void
deliver_enqueued(int W)
{
    struct deliver_ctx c;
    pc_spawn_opts o;

    memset(&c, 0, sizeof c);
    PT_START(W);
    o = pt_on(1, 0);
    CU_ASSERT_EQUAL(pc_spawn(deliverer, &c, &o, NULL), PC_OK);
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&c.r_done), 1);
    CU_ASSERT_EQUAL(atomic_load(&c.done), 1);
}

static pc_msg *
main_deliver_receiver(void *arg)
{
    struct deliver_ctx *c = arg;
    void *v = NULL;

    pthread_mutex_lock(&c->lock);
    c->suspended = 1;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);
    TCHECK_RC(pc_suspend(PT_LONG, &v), PC_OK);
    TCHECK_EQ(pc_mailbox_depth(), (uintptr_t)v);
    for (uintptr_t i = 0; i < (uintptr_t)v; i++)
        TCHECK_EQ(PT_EXPECT("d"), i);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* pc_deliver from the main thread. */
PT_WTEST(deliver_from_main_thread)
static void
deliver_from_main_thread(int W)
{
    struct deliver_ctx c;
    pc_spawn_opts o;
    pc_msg *m = NULL;

    memset(&c, 0, sizeof c);
    pthread_mutex_init(&c.lock, NULL);
    pthread_cond_init(&c.cond, NULL);
    PT_START(W);
    o = pt_on(1, 0);
    CU_ASSERT_EQUAL_FATAL(pc_spawn(main_deliver_receiver, &c, &o, &c.r), PC_OK);
    pthread_mutex_lock(&c.lock);
    while (!c.suspended)
        pthread_cond_wait(&c.cond, &c.lock);
    pthread_mutex_unlock(&c.lock);
    for (uint64_t i = 0; i < DELIVERS; i++) {
        CU_ASSERT_EQUAL_FATAL(pc_msg_new(&m, "d", &i, sizeof i), PC_OK);
        CU_ASSERT_EQUAL(pc_deliver(c.r, &m, PT_LONG), PC_OK);
        CU_ASSERT_PTR_NULL(m);
        pc_msg_free(&m);
    }
    CU_ASSERT_EQUAL(pc_resume(c.r, (void *)(uintptr_t)DELIVERS), PC_OK);
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&c.done), 1);
    pthread_mutex_destroy(&c.lock);
    pthread_cond_destroy(&c.cond);
}

/* ---- depth ------------------------------------------------------------------ */

static pc_msg *
depth_task(void *arg)
{
    atomic_int *done = arg;
    pc_msg *m = NULL;

    TCHECK_EQ(pc_mailbox_depth(), 0);
    for (int i = 0; i < 100; i++) {
        TCHECK_RC(pt_send_u64(pc_self(), "n", (uint64_t)i), PC_OK);
        TCHECK_EQ(pc_mailbox_depth(), i + 1);
    }
    for (int i = 0; i < 100; i++) {
        TCHECK_RC(pc_recv(&m, 0), PC_OK);
        TCHECK(m && pt_u64(m) == (uint64_t)i);
        pc_msg_free(&m);
        TCHECK_EQ(pc_mailbox_depth(), 99 - i);
    }
    /* grows past any initial ring size and shrinks again */
    for (int i = 0; i < 5000; i++)
        TCHECK_RC(pt_send_u64(pc_self(), "n", (uint64_t)i), PC_OK);
    TCHECK_EQ(pc_mailbox_depth(), 5000);
    for (int i = 0; i < 5000; i++) {
        TCHECK_RC(pc_recv(&m, 0), PC_OK);
        if (!m || pt_u64(m) != (uint64_t)i) {
            TCHECK(!"self-sent messages out of order");
            pc_msg_free(&m);
            break;
        }
        pc_msg_free(&m);
    }
    TCHECK_EQ(pc_mailbox_depth(), 0);
    atomic_fetch_add(done, 1);
    return NULL;
}

PT_WTEST(mailbox_depth_counts)
static void
mailbox_depth_counts(int W)
{
    atomic_int done = 0;

    PT_RUN_TASK(W, depth_task, &done, &done, 1);
}

/* ---- mail nobody reads --------------------------------------------------------- */

struct leftover_ctx {
    pc_ref s;
    atomic_int r_ended;
    atomic_int done;
};

static pc_msg *
leaves_mail(void *arg)
{
    struct leftover_ctx *c = arg;

    TCHECK_RC(pt_send(c->s, "ready"), PC_OK);
    TCHECK_RC(pc_suspend(PT_LONG, NULL), PC_OK);
    TCHECK(pc_mailbox_depth() >= 100); /* + "late" mail sent before it ran */
    atomic_store(&c->r_ended, 1);
    return NULL; /* ends with 100 messages unread */
}

static pc_msg *
zombie_value(void *arg)
{
    pc_msg *m = NULL;

    (void)arg;
    TCHECK_RC(pc_msg_new_str(&m, "never.joined", "value"), PC_OK);
    return m;
}

static pc_msg *
daemon_with_mail(void *arg)
{
    struct leftover_ctx *c = arg;

    TCHECK_RC(pt_send(c->s, "ready"), PC_OK);
    pc_suspend(-1, NULL);
    return NULL;
}

static pc_msg *
leftover_sender(void *arg)
{
    struct leftover_ctx *c = arg;
    pc_msg *m = NULL;
    char big[1024];
    pc_ref r, d;
    pc_spawn_opts o;

    memset(big, 'b', sizeof big);
    c->s = pc_self();
    r = pt_spawn(leaves_mail, c, 0, PC_TASK_JOINABLE);
    o = pt_on(0, PC_TASK_DAEMON);
    TCHECK_RC(pc_spawn(daemon_with_mail, c, &o, &d), PC_OK);
    PT_EXPECT("ready");
    PT_EXPECT("ready");
    for (int i = 0; i < 100; i++) {
        TCHECK_RC(pc_msg_new(&m, "big", big, sizeof big), PC_OK);
        TCHECK_RC(pc_deliver(r, &m, PT_LONG), PC_OK);
        TCHECK_RC(pc_msg_new(&m, "big", big, sizeof big), PC_OK);
        TCHECK_RC(pc_send(d, &m), PC_OK);
    }
    TCHECK_RC(pc_resume(r, NULL), PC_OK);
    /* sent while r ends: delivered and dropped, or refused (and freed by
     * pc_send_data); never leaked */
    for (int i = 0; i < 100; i++) {
        int rc = pc_send_data(r, "late", big, sizeof big);
        TCHECK(rc == PC_OK || rc == PC_ENOENT);
    }
    TCHECK_RC(pc_task_join(r, PT_LONG, NULL), PC_OK);
    TCHECK_RC(pc_send_data(r, "late", big, sizeof big), PC_ENOENT);
    /* a joinable task whose value is never taken */
    pt_spawn(zombie_value, c, 0, PC_TASK_JOINABLE);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* Messages left in the mailbox of an ending task, of a daemon at the node's
 * end, and an exit value never joined, are all freed (LSan). */
PT_WTEST(leftover_mail_freed)
static void
leftover_mail_freed(int W)
{
    struct leftover_ctx c;

    memset(&c, 0, sizeof c);
    PT_START(W);
    pc_spawn_opts o = pt_on(1, 0);
    CU_ASSERT_EQUAL(pc_spawn(leftover_sender, &c, &o, NULL), PC_OK);
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&c.done), 1);
    CU_ASSERT_EQUAL(atomic_load(&c.r_ended), 1);
}

/* ---- ownership on error: *m is the caller's on every error ------------------- */

/* *m is still a valid message of `type` (readable, and freed here). */
#define KEPT(m, type) kept_at(__FILE__, __LINE__, (m), (type))

static void
kept_at(const char *file, int line, pc_msg **m, const char *type)
{
    if (!*m)
        pt_fail_at(file, line, "an error took the message (*m NULL)");
    else if (!pc_msg_is(*m, type))
        pt_fail_at(file, line, "*m is \"%s\", want \"%s\"", pc_msg_type(*m),
                   type);
    pc_msg_free(m);
}

static pc_msg *
new_msg(const char *type)
{
    pc_msg *m = NULL;

    TCHECK_RC(pc_msg_new_str(&m, type, "payload"), PC_OK);
    return m;
}

struct own_ctx {
    pc_ref main, target, kill; /* kill: the spinner terminates it first */
    atomic_bool go;
    atomic_int done;
};

/* Holds its worker until `go` (so nothing reaches that worker's tasks),
 * optionally ending a task of its worker first. */
static pc_msg *
spinner(void *arg)
{
    struct own_ctx *c = arg;

    TCHECK_RC(pt_send(c->main, "spinning"), PC_OK);
    while (!atomic_load(&c->go))
        ;
    if (!pc_ref_is_nil(c->kill))
        TCHECK_RC(pc_task_terminate(c->kill), PC_OK);
    return NULL;
}

static pc_msg *
releaser(void *arg)
{
    struct own_ctx *c = arg;

    atomic_store(&c->go, true);
    return NULL;
}

/* Reports every message it gets, until "stop". */
static pc_msg *
reporter(void *arg)
{
    struct own_ctx *c = arg;
    pc_msg *m = NULL;

    while (pc_recv(&m, PT_LONG) == PC_OK && !pc_msg_is(m, "stop")) {
        pc_msg *r = NULL;
        TCHECK_RC(pc_msg_new_str(&r, "had", pc_msg_str(m)), PC_OK);
        TCHECK_RC(pc_send(c->main, &r), PC_OK);
        pc_msg_free(&m);
    }
    pc_msg_free(&m);
    return NULL;
}

static pc_msg *
own_main(void *arg)
{
    struct own_ctx *c = arg;
    pc_ref gone = pt_spawn(reporter, c, 1, PC_TASK_JOINABLE);
    pc_ref far = {pc_node_id() + 1, 1ull << 32 | 1}; /* another node's */
    pc_chan *ch = NULL;
    pc_msg *m;
    int reached = -1;

    c->main = pc_self();
    /* a stale ref, the nil ref, another node's ref: found at the call */
    TCHECK_RC(pt_send(gone, "stop"), PC_OK);
    TCHECK_RC(pc_task_join(gone, PT_LONG, NULL), PC_OK);
    const pc_ref bad[] = {gone, PC_REF_NIL, far};
    const pc_err why[] = {PC_ENOENT, PC_ENOENT, PC_EUNREACH};
    for (int i = 0; i < 3; i++) {
        m = new_msg("a");
        TCHECK_RC(pc_send(bad[i], &m), why[i]);
        KEPT(&m, "a");
        m = new_msg("b");
        TCHECK_RC(pc_send_timeout(bad[i], &m, 0), why[i]);
        KEPT(&m, "b");
        m = new_msg("c");
        TCHECK_RC(pc_deliver(bad[i], &m, PT_LONG), why[i]);
        KEPT(&m, "c");
    }
    /* success: NULL */
    m = new_msg("self");
    TCHECK_RC(pc_send_timeout(pc_self(), &m, 0), PC_OK);
    TCHECK(m == NULL);
    PT_EXPECT("self");

    /* channels: a bad n, nobody subscribing in time */
    TCHECK_RC(pc_chan_new(&ch, NULL, NULL, NULL), PC_OK);
    m = new_msg("d");
    TCHECK_RC(pc_chan_send(NULL, &m), PC_EINVAL);
    KEPT(&m, "d");
    m = new_msg("e");
    TCHECK_RC(pc_chan_deliver(ch, &m, -1, PT_LONG, &reached), PC_EINVAL);
    KEPT(&m, "e");
    m = new_msg("f");
    TCHECK_RC(pc_chan_deliver(ch, &m, 1, 0.01, &reached), PC_ETIMEDOUT);
    KEPT(&m, "f");

    if (pc_node_workers() > 1) {
        /* the verdict comes from the other worker: the target ended
         * before the message got there */
        c->target = pt_spawn(reporter, c, 1, 0);
        c->kill = c->target;
        pt_spawn(spinner, c, 1, 0);
        PT_EXPECT("spinning");
        pt_spawn(releaser, c, PT_SELF, 0); /* runs once we wait */
        m = new_msg("g");
        TCHECK_RC(pc_deliver(c->target, &m, PT_LONG), PC_ENOENT);
        KEPT(&m, "g");

        /* no verdict in time: the target's worker is held */
        atomic_store(&c->go, false);
        c->kill = PC_REF_NIL;
        c->target = pt_spawn(reporter, c, 1, 0);
        pt_spawn(spinner, c, 1, 0);
        PT_EXPECT("spinning");
        m = new_msg("h");
        TCHECK_RC(pc_deliver(c->target, &m, 0.02), PC_ETIMEDOUT);
        TCHECK(m != NULL); /* ours, though it may still arrive */
        TCHECK_RC(pc_chan_subscribe(ch, c->target), PC_OK);
        pc_msg *n = new_msg("i");
        TCHECK_RC(pc_chan_deliver(ch, &n, 0, 0.02, &reached), PC_ETIMEDOUT);
        TCHECK_EQ(reached, 0);
        KEPT(&n, "i");
        atomic_store(&c->go, true);
        /* it did arrive later, intact, and both references are fine */
        TCHECK_RC(pc_recv_type("had", &n, PT_LONG), PC_OK);
        if (n)
            TCHECK_STR(pc_msg_str(n), "payload");
        pc_msg_free(&n);
        KEPT(&m, "h");
        TCHECK_RC(pc_recv_type("had", &m, PT_LONG), PC_OK); /* "i"'s */
        pc_msg_free(&m);
        TCHECK_RC(pt_send(c->target, "stop"), PC_OK);
    }
    pc_chan_free(&ch);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* Every call that takes `pc_msg **` leaves *m with the caller on every
 * error — found at the call or reported back by the target's worker — and
 * NULLs it on success (msg.h). pc_deliver used to free the message when the
 * failure was found on the other worker, and pc_chan_deliver on a timeout. */
PT_WTEST(ownership_on_error)
static void
ownership_on_error(int W)
{
    struct own_ctx c;
    pc_chan *ch = NULL;
    pc_msg *m = new_msg("nonode");

    memset(&c, 0, sizeof c);
    /* no node runs yet */
    CU_ASSERT_EQUAL(pc_send(PC_REF_NIL, &m), PC_ESTATE);
    CU_ASSERT_EQUAL_FATAL(pc_chan_new(&ch, NULL, NULL, NULL), PC_OK);
    CU_ASSERT_EQUAL(pc_chan_send(ch, &m), PC_ESTATE);
    CU_ASSERT_EQUAL(pc_chan_deliver(ch, &m, 0, 0, NULL), PC_ESTATE);
    CU_ASSERT_PTR_NOT_NULL(m);
    CU_ASSERT_STRING_EQUAL(pc_msg_type(m), "nonode");
    pc_chan_free(&ch);
    PT_RUN_TASK(W, own_main, &c, &c.done, 1);
    /* from a foreign thread (main) while no node runs */
    CU_ASSERT_EQUAL(pc_deliver(PC_REF_NIL, &m, 0.01), PC_ESTATE);
    CU_ASSERT_PTR_NOT_NULL(m);
    pc_msg_free(&m);
}

/* ---- posted messages and envelopes in one FIFO ------------------------------ */

/* A plain send to another worker posts the message itself on the inbox; a
 * shared one (more references) travels in an envelope. From one sender they
 * must still arrive in order, and a received message forwarded across
 * workers again (its inbox link reused) too. */
#define MIX_N 4000

struct mix_ctx {
    pc_ref receiver, sink;
    atomic_long out_of_order, sink_out_of_order;
    atomic_int done;
};

static uint32_t
mix_seq(const pc_msg *m)
{
    size_t len = 0;
    const uint32_t *d = pc_msg_data(m, &len);

    return len == sizeof *d ? *d : UINT32_MAX;
}

static pc_msg *
mix_sink(void *arg)
{
    struct mix_ctx *c = arg;

    for (uint32_t i = 0; i < MIX_N; i++) {
        pc_msg *m = NULL;
        TCHECK_RC(pc_recv(&m, PT_LONG), PC_OK);
        if (mix_seq(m) != i)
            atomic_fetch_add(&c->sink_out_of_order, 1);
        pc_msg_free(&m);
    }
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

static pc_msg *
mix_receiver(void *arg)
{
    struct mix_ctx *c = arg;

    for (uint32_t i = 0; i < MIX_N; i++) {
        pc_msg *m = NULL;
        TCHECK_RC(pc_recv(&m, PT_LONG), PC_OK);
        if (mix_seq(m) != i)
            atomic_fetch_add(&c->out_of_order, 1);
        TCHECK_RC(pc_send(c->sink, &m), PC_OK); /* across workers again */
        pc_msg_free(&m);
    }
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

static pc_msg *
mix_sender(void *arg)
{
    struct mix_ctx *c = arg;

    for (uint32_t i = 0; i < MIX_N; i++) {
        pc_msg *m = NULL, *extra = NULL;
        TCHECK_RC(pc_msg_new(&m, "mix", &i, sizeof i), PC_OK);
        if (i % 3 == 1)
            extra = pc_msg_ref(m); /* shared: goes in an envelope */
        TCHECK_RC(pc_send(c->receiver, &m), PC_OK);
        pc_msg_free(&m);
        pc_msg_free(&extra);
        if (i % 64 == 0)
            TCHECK_RC(pc_yield(), PC_OK);
    }
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

static pc_msg *
mix_main(void *arg)
{
    struct mix_ctx *c = arg;

    c->sink = pt_spawn(mix_sink, c, 1, 0);
    c->receiver = pt_spawn(mix_receiver, c, 0, 0);
    pt_spawn(mix_sender, c, 1, 0);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(fifo_posted_and_enveloped)
static void
fifo_posted_and_enveloped(int W)
{
    struct mix_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, mix_main, &c, &c.done, 4);
    CU_ASSERT_EQUAL(atomic_load(&c.out_of_order), 0);
    CU_ASSERT_EQUAL(atomic_load(&c.sink_out_of_order), 0);
}

PT_MAIN("mailbox", PT_WENTRY(fifo_per_sender), PT_WENTRY(pingpong_cross_worker),
        PT_WENTRY(send_from_foreign_threads), PT_ENTRY(send_einval),
        PT_WENTRY(deliver_enqueued), PT_WENTRY(deliver_from_main_thread),
        PT_WENTRY(mailbox_depth_counts), PT_WENTRY(leftover_mail_freed),
        PT_WENTRY(ownership_on_error), PT_WENTRY(fifo_posted_and_enveloped))
