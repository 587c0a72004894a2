/* tests/test_transport.c — the transport interface (picos/transport.h),
 * through a loop-back transport.
 *
 * The loop-back pretends that a second node F = pc_node_id() ^ 1 exists
 * whose tasks are this node's own: the "remote ref" {F, id} names the local
 * task {N, id}. The runtime hands everything addressed to F to the ops
 * registered here, which only queue the work; the transport's own thread (a
 * pthread with a mutex + condvar queue, like a network transport's I/O
 * thread) performs it through the pc_transport_*_in() calls. On the way
 * every ref of this node that a message carries is rewritten to F: the
 * sender, and the `who` of DOWN/EXIT payloads (re-encoded, see lb_down), so
 * a task sees its peer's remote ref as the sender and a DOWN about a remote
 * target names that remote ref — which is also what the runtime's watch of
 * the remote target is keyed on. Payloads of other messages cross without a
 * copy: the new message points into the original one's data, which it keeps
 * as the hint of its free_fn.
 *
 * Ordering: the loop-back queue is FIFO and a local worker's inbox is too,
 * so a request sent through the loop-back (monitor, link, terminate) is in
 * place at the target before a message sent through it afterwards: tests
 * say "go" to a remote end through its remote ref for that reason.
 *
 * Test modes: `hold` keeps deliver and join requests back until lb_release()
 * (a slow or silent peer); `direct` performs each op at once on the calling
 * thread (what a fast transport thread may do between the op's return and
 * the caller's next step, made deterministic); `reply_now` answers deliver
 * and join tickets inside the op (a transport that knows at once the peer is
 * unreachable). The loop-back checks in every op that stop() has not been
 * called yet, and counts the remote messages it makes and frees.
 */
#include <math.h>

#include "testutil.h"

/* ---- the loop-back transport ------------------------------------------------ */

enum {
    LB_SEND,
    LB_DELIVER,
    LB_MONITOR,
    LB_LINK,
    LB_EXIT,
    LB_TERMINATE,
    LB_JOIN
};

/* One queued op. a, b: send, deliver, terminate, join: a = to; monitor: a
 * watcher, b target; link: a local, b remote; exit: a from, b to. */
typedef struct lb_item {
    struct lb_item *next;
    int op;
    pc_ref a, b;
    bool flag; /* send: chan; monitor, link: on */
    pc_msg *m;
    double deadline;
    uint64_t ticket;
} lb_item;

static struct lb {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    lb_item *head, **tail;  /* work for the thread */
    lb_item *held, **htail; /* held back (hold mode) */
    int nheld;
    bool hold, quit, busy; /* busy: the thread is performing an item */
    bool gate, in_stop;    /* stop() waits while gate is closed */
    double join_deadline;  /* of the last join op */
    atomic_bool direct, reply_now;
    atomic_bool stopped;     /* stop() was called */
    atomic_long made, freed; /* remote messages */
    atomic_long late_ops;    /* ops called after stop() */
    uint64_t near, far;      /* N and F */
} lb;

static pc_ref
lb_far(pc_ref r)
{
    return r.node == lb.near ? (pc_ref){lb.far, r.id} : r;
}

static pc_ref
lb_near(pc_ref r)
{
    return r.node == lb.far ? (pc_ref){lb.near, r.id} : r;
}

/* free_fn of a payload taken without copying: the original message. */
static void
lb_free_msg(void *data, void *hint)
{
    pc_msg *orig = hint;

    (void)data;
    pc_msg_free(&orig);
    atomic_fetch_add(&lb.freed, 1);
}

/* free_fn of a re-encoded DOWN/EXIT payload. */
static void
lb_free_buf(void *data, void *hint)
{
    (void)hint;
    free(data);
    atomic_fetch_add(&lb.freed, 1);
}

/* A DOWN/EXIT payload crossing the loop-back: a copy whose `who` is
 * rewritten to F. The payload layout is monitor.c's wire form (version,
 * reason, u16, then who's node as a little-endian u64 at offset 4); the
 * result is parsed back to check the rewrite. */
static pc_err
lb_down(const pc_msg *orig, pc_msg **out)
{
    size_t len;
    const unsigned char *p = pc_msg_data(orig, &len);
    unsigned char *copy;
    pc_down d;
    pc_err rc;

    if ((rc = pc_down_parse(orig, &d)) != PC_OK)
        return rc;
    if (!(copy = malloc(len + 1)))
        return PC_ENOMEM;
    memcpy(copy, p, len);
    copy[len] = '\0'; /* every payload is NUL-terminated */
    pc_ref who = lb_far(d.who);
    for (int i = 0; i < 8; i++)
        copy[4 + i] = (unsigned char)(who.node >> (8 * i));
    rc = pc_msg_new_remote(out, lb_far(pc_msg_sender(orig)), pc_msg_type(orig),
                           copy, len, lb_free_buf, NULL);
    if (rc != PC_OK) {
        free(copy);
        return rc;
    }
    atomic_fetch_add(&lb.made, 1);
    TCHECK(pc_down_parse(*out, &d) == PC_OK && pc_ref_eq(d.who, who));
    return PC_OK;
}

/* The message *orig as it arrives from F (consumes *orig). */
static pc_err
lb_remote_msg(pc_msg **orig, pc_msg **out)
{
    size_t len;
    const void *data = pc_msg_data(*orig, &len);
    pc_err rc;

    if (pc_msg_is(*orig, PC_MSG_DOWN) || pc_msg_is(*orig, PC_MSG_EXIT)) {
        rc = lb_down(*orig, out);
        pc_msg_free(orig);
        return rc;
    }
    rc =
        pc_msg_new_remote(out, lb_far(pc_msg_sender(*orig)), pc_msg_type(*orig),
                          (void *)data, len, lb_free_msg, *orig);
    if (rc != PC_OK) {
        pc_msg_free(orig);
        return rc;
    }
    atomic_fetch_add(&lb.made, 1);
    *orig = NULL; /* it is the hint now */
    return PC_OK;
}

/* Hand *orig to local `to` as a message from F; consumes *orig. */
static pc_err
lb_forward(pc_ref to, pc_msg **orig, bool chan, void (*ack)(void *, pc_err),
           void *ctx)
{
    pc_msg *m = NULL;
    pc_err rc;

    if ((rc = lb_remote_msg(orig, &m)) != PC_OK)
        return rc;
    if ((rc = pc_transport_inject(to, &m, chan, ack, ctx)) != PC_OK)
        pc_msg_free(&m);
    return rc;
}

static void
lb_ack(void *ctx, pc_err rc)
{
    pc_transport_reply((uint64_t)(uintptr_t)ctx, rc, NULL);
}

static bool
lb_quitting(void)
{
    pthread_mutex_lock(&lb.mu);
    bool q = lb.quit;
    pthread_mutex_unlock(&lb.mu);
    return q;
}

/* Join on the transport thread, in slices so that stop() is not held up by
 * a task that never ends (the runtime fails the ticket then). */
static void
lb_join(lb_item *it)
{
    pc_msg *v = NULL;
    int rc;

    for (;;) {
        double left = pc_deadline_left(it->deadline);
        double slice = left < 0 || left > 0.1 ? 0.1 : left;
        rc = pc_task_join(lb_near(it->a), slice, &v);
        if (rc != PC_ETIMEDOUT || (left >= 0 && left <= slice))
            break;
        if (lb_quitting())
            return;
    }
    pc_transport_reply(it->ticket, rc, v);
}

static void
lb_perform(lb_item *it)
{
    pc_msg *x = NULL;
    pc_err rc;

    switch (it->op) {
    case LB_SEND:
        lb_forward(lb_near(it->a), &it->m, it->flag, NULL, NULL);
        break;
    case LB_DELIVER:
        rc = lb_forward(lb_near(it->a), &it->m, false, lb_ack,
                        (void *)(uintptr_t)it->ticket);
        if (rc != PC_OK)
            pc_transport_reply(it->ticket, rc, NULL);
        break;
    case LB_MONITOR:
        pc_transport_monitor_in(lb_far(it->a), lb_near(it->b), it->flag);
        break;
    case LB_LINK:
        pc_transport_link_in(lb_far(it->a), lb_near(it->b), it->flag);
        break;
    case LB_EXIT:
        if (lb_remote_msg(&it->m, &x) == PC_OK &&
            pc_transport_exit_in(lb_far(it->a), lb_near(it->b), &x) != PC_OK)
            pc_msg_free(&x);
        break;
    case LB_TERMINATE:
        pc_task_terminate(lb_near(it->a));
        break;
    case LB_JOIN:
        lb_join(it);
        break;
    }
    pc_msg_free(&it->m);
    free(it);
}

static void *
lb_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lb.mu);
    for (;;) {
        while (!lb.head && !lb.quit)
            pthread_cond_wait(&lb.cv, &lb.mu);
        if (lb.quit)
            break;
        lb_item *it = lb.head;
        if (!(lb.head = it->next))
            lb.tail = &lb.head;
        it->next = NULL;
        if (lb.hold && (it->op == LB_DELIVER || it->op == LB_JOIN)) {
            *lb.htail = it;
            lb.htail = &it->next;
            lb.nheld++;
            pthread_cond_broadcast(&lb.cv);
            continue;
        }
        lb.busy = true;
        pthread_mutex_unlock(&lb.mu);
        lb_perform(it);
        pthread_mutex_lock(&lb.mu);
        lb.busy = false;
        pthread_cond_broadcast(&lb.cv);
    }
    pthread_mutex_unlock(&lb.mu);
    return NULL;
}

/* An item for an op, or NULL (PC_ENOMEM); every op starts here. */
static lb_item *
lb_new(int op, pc_ref a, pc_ref b)
{
    lb_item *it;

    if (atomic_load(&lb.stopped))
        atomic_fetch_add(&lb.late_ops, 1);
    if (!(it = calloc(1, sizeof *it)))
        return NULL;
    it->op = op;
    it->a = a;
    it->b = b;
    return it;
}

static pc_err
lb_push(lb_item *it)
{
    if (atomic_load(&lb.direct)) {
        lb_perform(it);
        return PC_OK;
    }
    pthread_mutex_lock(&lb.mu);
    *lb.tail = it;
    lb.tail = &it->next;
    pthread_cond_broadcast(&lb.cv);
    pthread_mutex_unlock(&lb.mu);
    return PC_OK;
}

static pc_err
op_send(void *ctx, pc_ref to, pc_msg **m, bool chan)
{
    lb_item *it = lb_new(LB_SEND, to, PC_REF_NIL);

    (void)ctx;
    if (to.node != lb.far) {
        free(it);
        return PC_EUNREACH; /* F is the only other node */
    }
    if (!it)
        return PC_ENOMEM;
    it->flag = chan;
    it->m = *m;
    *m = NULL;
    return lb_push(it);
}

static pc_err
op_deliver(void *ctx, pc_ref to, pc_msg **m, double deadline, uint64_t ticket)
{
    lb_item *it = lb_new(LB_DELIVER, to, PC_REF_NIL);

    (void)ctx;
    if (to.node != lb.far || !it) {
        free(it);
        return to.node != lb.far ? PC_EUNREACH : PC_ENOMEM;
    }
    if (atomic_load(&lb.reply_now)) {
        free(it);
        pc_msg_free(m); /* taken, and answered at once */
        pc_transport_reply(ticket, PC_EUNREACH, NULL);
        return PC_OK;
    }
    it->m = *m;
    *m = NULL;
    it->deadline = deadline;
    it->ticket = ticket;
    return lb_push(it);
}

static pc_err
op_monitor(void *ctx, pc_ref watcher, pc_ref target, bool on)
{
    lb_item *it = lb_new(LB_MONITOR, watcher, target);

    (void)ctx;
    if (!it)
        return PC_ENOMEM;
    it->flag = on;
    return lb_push(it);
}

static pc_err
op_link(void *ctx, pc_ref local, pc_ref remote, bool on)
{
    lb_item *it = lb_new(LB_LINK, local, remote);

    (void)ctx;
    if (!it)
        return PC_ENOMEM;
    it->flag = on;
    return lb_push(it);
}

static pc_err
op_exit(void *ctx, pc_ref from, pc_ref to, pc_msg **exit)
{
    lb_item *it = lb_new(LB_EXIT, from, to);

    (void)ctx;
    if (!it)
        return PC_ENOMEM;
    it->m = *exit;
    *exit = NULL;
    return lb_push(it);
}

static pc_err
op_terminate(void *ctx, pc_ref target)
{
    lb_item *it = lb_new(LB_TERMINATE, target, PC_REF_NIL);

    (void)ctx;
    return it ? lb_push(it) : PC_ENOMEM;
}

static pc_err
op_join(void *ctx, pc_ref target, double deadline, uint64_t ticket)
{
    lb_item *it = lb_new(LB_JOIN, target, PC_REF_NIL);

    (void)ctx;
    if (!it)
        return PC_ENOMEM;
    pthread_mutex_lock(&lb.mu);
    lb.join_deadline = deadline;
    pthread_mutex_unlock(&lb.mu);
    if (atomic_load(&lb.reply_now)) {
        free(it);
        pc_transport_reply(ticket, PC_EUNREACH, NULL);
        return PC_OK;
    }
    it->deadline = deadline;
    it->ticket = ticket;
    return lb_push(it);
}

static void
lb_free_list(lb_item *it)
{
    while (it) {
        lb_item *next = it->next;
        pc_msg_free(&it->m);
        free(it);
        it = next;
    }
}

static void
op_stop(void *ctx)
{
    (void)ctx;
    atomic_store(&lb.stopped, true);
    pthread_mutex_lock(&lb.mu);
    lb.in_stop = true;
    pthread_cond_broadcast(&lb.cv);
    while (lb.gate)
        pthread_cond_wait(&lb.cv, &lb.mu);
    lb.quit = true;
    pthread_cond_broadcast(&lb.cv);
    pthread_mutex_unlock(&lb.mu);
    pthread_join(lb.thread, NULL);
    lb_free_list(lb.head); /* never performed: their tickets are failed */
    lb_free_list(lb.held);
    lb.head = lb.held = NULL;
}

static const pc_transport_ops lb_ops = {
    .name = "loop-back",
    .send = op_send,
    .deliver = op_deliver,
    .monitor = op_monitor,
    .link = op_link,
    .exit_signal = op_exit,
    .terminate = op_terminate,
    .join = op_join,
    .stop = op_stop,
};

/* Fresh loop-back state and thread, not registered. */
static void
lb_init(void)
{
    pthread_condattr_t ca;

    memset(&lb, 0, sizeof lb);
    pthread_mutex_init(&lb.mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&lb.cv, &ca);
    pthread_condattr_destroy(&ca);
    lb.tail = &lb.head;
    lb.htail = &lb.held;
    lb.near = pc_node_id();
    lb.far = lb.near ^ 1;
    CU_ASSERT_FATAL(pthread_create(&lb.thread, NULL, lb_main, NULL) == 0);
}

/* Start a node of W workers and register the loop-back on it. */
static void
lb_start(int W)
{
    PT_START(W);
    lb_init();
    CU_ASSERT_EQUAL_FATAL(pc_transport_register(&lb_ops), PC_OK);
}

/* After the node ended: stop() ran, no op came after it, every remote
 * message was freed exactly once. */
static void
lb_check_end(void)
{
    CU_ASSERT(atomic_load(&lb.stopped));
    CU_ASSERT_EQUAL(atomic_load(&lb.late_ops), 0);
    CU_ASSERT_EQUAL(atomic_load(&lb.made), atomic_load(&lb.freed));
    pthread_mutex_destroy(&lb.mu);
    pthread_cond_destroy(&lb.cv);
}

static void
lb_set_hold(bool on)
{
    pthread_mutex_lock(&lb.mu);
    lb.hold = on;
    pthread_mutex_unlock(&lb.mu);
}

/* Stop holding; what was held goes to the front of the queue. Any thread. */
static void
lb_release(void)
{
    pthread_mutex_lock(&lb.mu);
    lb.hold = false;
    if (lb.held) {
        *lb.htail = lb.head;
        if (!lb.head)
            lb.tail = lb.htail;
        lb.head = lb.held;
        lb.held = NULL;
        lb.htail = &lb.held;
        lb.nheld = 0;
        pthread_cond_broadcast(&lb.cv);
    }
    pthread_mutex_unlock(&lb.mu);
}

/* Block until n requests are held back (main thread: it blocks). */
static void
lb_wait_held(int n)
{
    pthread_mutex_lock(&lb.mu);
    while (lb.nheld < n)
        pthread_cond_wait(&lb.cv, &lb.mu);
    pthread_mutex_unlock(&lb.mu);
}

/* Block until the thread has performed everything queued (main thread). */
static void
lb_quiesce(void)
{
    pthread_mutex_lock(&lb.mu);
    while (lb.head || lb.busy)
        pthread_cond_wait(&lb.cv, &lb.mu);
    pthread_mutex_unlock(&lb.mu);
}

/* ---- helpers ---------------------------------------------------------------- */

/* A task that ends at its first message, with exit value the string `arg`
 * (type "value"; NULL: no value). */
static pc_msg *
until_go(void *arg)
{
    pc_msg *m = NULL, *v = NULL;

    TCHECK_RC(pc_recv(&m, PT_LONG), PC_OK);
    pc_msg_free(&m);
    if (arg)
        pc_msg_new_str(&v, "value", arg);
    return v;
}

/* A ref of this node whose task has ended. */
static pc_ref
ended_ref(void)
{
    pc_ref r = pt_spawn(until_go, NULL, 0, PC_TASK_JOINABLE);

    TCHECK_RC(pt_send(r, "go"), PC_OK);
    TCHECK_RC(pc_task_join(r, PT_LONG, NULL), PC_OK);
    return r;
}

static bool
down_about(const pc_msg *m, void *ctx)
{
    const pc_ref *who = ctx;
    pc_down d;

    return (pc_msg_is(m, PC_MSG_DOWN) || pc_msg_is(m, PC_MSG_EXIT)) &&
           pc_down_parse(m, &d) == PC_OK && pc_ref_eq(d.who, *who);
}

/* Receive the DOWN or EXIT (type) about `who` and check its reason and
 * that its sender is `who`; returns it (NULL, recorded, when none came). */
#define EXPECT_DOWN(type, who, reason)                                         \
    expect_down_at(__FILE__, __LINE__, (type), (who), (reason))

static pc_msg *
expect_down_at(const char *file, int line, const char *type, pc_ref who,
               pc_down_reason reason)
{
    pc_msg *m = NULL;
    pc_down d;
    char a[48];
    int rc = pc_recv_match(down_about, &who, NULL, &m, PT_LONG);

    if (rc != PC_OK) {
        pt_fail_at(file, line, "no %s about %s: %s", type,
                   pc_ref_str(who, a, sizeof a), pc_err_name(rc));
        return NULL;
    }
    pc_down_parse(m, &d);
    if (!pc_msg_is(m, type))
        pt_fail_at(file, line, "got %s, want %s", pc_msg_type(m), type);
    if (d.reason != reason)
        pt_fail_at(file, line, "reason %d, want %d", (int)d.reason,
                   (int)reason);
    if (!pc_ref_eq(pc_msg_sender(m), who))
        pt_fail_at(file, line, "sender %s is not who",
                   pc_ref_str(pc_msg_sender(m), a, sizeof a));
    return m;
}

static bool
is_type(const pc_msg *m, void *type)
{
    return pc_msg_is(m, type);
}

/* Send `sentinel` to the caller's own remote ref and wait for it: what the
 * loop-back or this worker had queued for the caller before is in its
 * mailbox then (FIFO through the loop-back queue and the worker's inbox).
 * Then nothing else may be waiting. */
static void
expect_nothing_more(void)
{
    pc_msg *m = NULL;

    TCHECK_RC(pt_send(lb_far(pc_self()), "sentinel"), PC_OK);
    TCHECK_RC(pc_recv_match(is_type, "sentinel", NULL, &m, PT_LONG), PC_OK);
    pc_msg_free(&m);
    if (pc_recv(&m, 0) == PC_OK) {
        pc_down d = {0};
        pc_down_parse(m, &d);
        pt_fail_at(__FILE__, __LINE__, "unexpected %s (reason %d)",
                   pc_msg_type(m), (int)d.reason);
        pc_msg_free(&m);
    }
}

/* ---- ping-pong ----------------------------------------------------------------- */

#define ROUNDS 100

struct pp {
    pc_ref a, b;
    const void *first_data; /* payload of A's first ping */
    atomic_int pongs;
};

static pc_msg *
pp_b(void *arg)
{
    struct pp *p = arg;
    pc_msg *m = NULL;

    for (int i = 0; i < ROUNDS; i++) {
        if (pc_recv_type("ping", &m, PT_LONG) != PC_OK) {
            TCHECK(!"no ping");
            break;
        }
        TCHECK(pc_ref_eq(pc_msg_sender(m), lb_far(p->a)));
        TCHECK_STR(pc_msg_str(m), "ping");
        if (i == 0) /* taken without a copy */
            TCHECK(pc_msg_data(m, NULL) == p->first_data);
        TCHECK_RC(pc_send_data(pc_msg_sender(m), "pong", "pong", 4), PC_OK);
        pc_msg_free(&m);
    }
    /* from a foreign thread: no sender, and none made up on the way */
    TCHECK_RC(pc_recv_type("foreign", &m, PT_LONG), PC_OK);
    TCHECK(pc_ref_is_nil(pc_msg_sender(m)));
    pc_msg_free(&m);
    return NULL;
}

static pc_msg *
pp_a(void *arg)
{
    struct pp *p = arg;
    pc_msg *m = NULL;

    p->a = pc_self();
    for (int i = 0; i < ROUNDS; i++) {
        TCHECK_RC(pc_msg_new_str(&m, "ping", "ping"), PC_OK);
        if (i == 0)
            p->first_data = pc_msg_data(m, NULL);
        TCHECK_RC(pc_send(lb_far(p->b), &m), PC_OK);
        TCHECK(m == NULL);
        TCHECK_RC(pc_recv(&m, PT_LONG), PC_OK);
        TCHECK(pc_msg_is(m, "pong"));
        TCHECK(pc_ref_eq(pc_msg_sender(m), lb_far(p->b)));
        if (pc_msg_is(m, "pong"))
            atomic_fetch_add(&p->pongs, 1);
        pc_msg_free(&m);
    }
    /* only F is there: another node's ref is unreachable */
    pc_ref other = {lb.near ^ 2, p->b.id};
    TCHECK_RC(pt_send(other, "x"), PC_EUNREACH);
    return NULL;
}

PT_WTEST(ping_pong)
static void
ping_pong(int W)
{
    struct pp p = {0};

    lb_start(W);
    p.b = pt_spawn(pp_b, &p, 1, 0);
    pt_spawn(pp_a, &p, 0, 0);
    CU_ASSERT_EQUAL(pt_send(lb_far(p.b), "foreign"), PC_OK);
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&p.pongs), ROUNDS);
    lb_check_end();
}

/* ---- pc_deliver ---------------------------------------------------------------- */

struct dl {
    pc_ref b, ended;
    atomic_int done;
};

/* B: takes "one", then the held message, and ends with value "bval". */
static pc_msg *
dl_b(void *arg)
{
    pc_msg *m = NULL, *v = NULL;

    (void)arg;
    TCHECK_RC(pc_recv_type("one", &m, PT_LONG), PC_OK);
    pc_msg_free(&m);
    TCHECK_RC(pc_recv_type("held", &m, PT_LONG), PC_OK);
    TCHECK_STR(pc_msg_str(m), "held back");
    pc_msg_free(&m);
    pc_msg_new_str(&v, "value", "bval");
    return v;
}

static pc_msg *
dl_driver(void *arg)
{
    struct dl *d = arg;
    pc_msg *m = NULL, *v = NULL;

    pc_msg_new_str(&m, "one", "1");
    TCHECK_RC(pc_deliver(lb_far(d->b), &m, PT_LONG), PC_OK);
    TCHECK(m == NULL);

    /* gone: the remote mailbox's verdict, and the caller keeps *m */
    pc_msg_new_str(&m, "x", "to the ended");
    TCHECK_RC(pc_deliver(lb_far(d->ended), &m, PT_LONG), PC_ENOENT);
    TCHECK(m && pc_msg_is(m, "x"));
    pc_msg_free(&m);

    /* held back: times out, *m is still the caller's and readable */
    lb_set_hold(true);
    pc_msg_new_str(&m, "held", "held back");
    TCHECK_RC(pc_deliver(lb_far(d->b), &m, 0.05), PC_ETIMEDOUT);
    TCHECK(m != NULL);
    TCHECK_STR(pc_msg_str(m), "held back");
    pc_msg_free(&m);

    /* The held message goes on; its late reply (from B's worker, before B
     * can run) must not answer the join that waits meanwhile: only B's end
     * does, with B's value. */
    lb_release();
    TCHECK_RC(pc_task_join(lb_far(d->b), PT_LONG, &v), PC_OK);
    TCHECK(v && pc_msg_is(v, "value"));
    TCHECK_STR(v ? pc_msg_str(v) : NULL, "bval");
    pc_msg_free(&v);
    atomic_fetch_add(&d->done, 1);
    return NULL;
}

PT_WTEST(deliver)
static void
deliver(int W)
{
    struct dl d = {0};
    pc_msg *m = NULL;

    lb_start(W);
    d.ended = ended_ref();
    d.b = pt_spawn(dl_b, NULL, 1, PC_TASK_JOINABLE);
    /* a foreign thread waits on a sync object, not a task token */
    pc_msg_new_str(&m, "x", "from main");
    CU_ASSERT_EQUAL(pc_deliver(lb_far(d.ended), &m, PT_LONG), PC_ENOENT);
    CU_ASSERT_PTR_NOT_NULL(m);
    pc_msg_free(&m);
    pt_spawn(dl_driver, &d, 0, 0);
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&d.done), 1);
    lb_check_end();
}

/* ---- remote monitor ----------------------------------------------------------- */

struct mon {
    pc_ref t1, t2, t3;
    atomic_int done;
};

/* On `target`'s worker: watches it locally, tells `report` it is armed,
 * and once target's DOWN came — after everything target's end sent, the
 * DOWNs to its remote watchers included — says "sentinel" to report through
 * the loop-back, so it arrives behind them. */
static pc_msg *
sentinel_fn(void *arg)
{
    pc_ref *r = arg; /* target, report */
    pc_msg *m;

    TCHECK_RC(pc_monitor(pc_self(), r[0]), PC_OK);
    TCHECK_RC(pt_send(r[1], "armed"), PC_OK);
    m = EXPECT_DOWN(PC_MSG_DOWN, r[0], PC_DOWN_NORMAL);
    pc_msg_free(&m);
    TCHECK_RC(pt_send(lb_far(r[1]), "sentinel"), PC_OK);
    return NULL;
}

static pc_msg *
mon_driver(void *arg)
{
    struct mon *s = arg;
    pc_ref t1 = lb_far(s->t1), t2 = lb_far(s->t2), t3 = lb_far(s->t3);
    pc_msg *m;
    pc_down d;

    /* normal end, with the exit value */
    TCHECK_RC(pc_monitor(pc_self(), t1), PC_OK);
    TCHECK_RC(pt_send(t1, "go"), PC_OK); /* after the monitor: FIFO */
    if ((m = EXPECT_DOWN(PC_MSG_DOWN, t1, PC_DOWN_NORMAL))) {
        pc_down_parse(m, &d);
        TCHECK_STR(d.value_type, "value");
        TCHECK_EQ(d.value_len, 2);
        TCHECK(d.value && memcmp(d.value, "t1", 2) == 0);
        pc_msg_free(&m);
    }
    /* killed through its remote ref */
    TCHECK_RC(pc_monitor(pc_self(), t2), PC_OK);
    TCHECK_RC(pc_task_terminate(t2), PC_OK);
    m = EXPECT_DOWN(PC_MSG_DOWN, t2, PC_DOWN_KILLED);
    pc_msg_free(&m);
    /* gone already */
    TCHECK_RC(pc_monitor(pc_self(), t1), PC_OK);
    m = EXPECT_DOWN(PC_MSG_DOWN, t1, PC_DOWN_NOPROC);
    pc_msg_free(&m);
    /* demonitored: its end sends nothing */
    pc_ref sen[2] = {s->t3, pc_self()};
    pt_spawn(sentinel_fn, sen, 1, 0); /* t3's worker */
    TCHECK_RC(pc_monitor(pc_self(), t3), PC_OK);
    TCHECK_RC(pc_demonitor(pc_self(), t3), PC_OK);
    TCHECK_RC(pc_recv_type("armed", &m, PT_LONG), PC_OK);
    pc_msg_free(&m);
    TCHECK_RC(pt_send(t3, "go"), PC_OK);
    TCHECK_RC(pc_recv_type("sentinel", &m, PT_LONG), PC_OK);
    pc_msg_free(&m);
    if (pc_recv(&m, 0) == PC_OK) {
        TCHECK(!"a message after the demonitor");
        pc_msg_free(&m);
    }
    atomic_fetch_add(&s->done, 1);
    return NULL;
}

PT_WTEST(monitor)
static void
monitor(int W)
{
    struct mon s = {0};

    lb_start(W);
    s.t1 = pt_spawn(until_go, "t1", 1, 0);
    s.t2 = pt_spawn(until_go, NULL, 1, 0);
    s.t3 = pt_spawn(until_go, NULL, 1, 0);
    pt_spawn(mon_driver, &s, 0, 0);
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&s.done), 1);
    lb_check_end();
}

/* ---- remote link ------------------------------------------------------------- */

struct lk {
    pc_ref r1, r2, r3;
    atomic_int done;
};

/* Links with remote `r`, tells the driver, waits to be killed. */
static pc_msg *
lk_linker(void *arg)
{
    pc_ref *r = arg;
    pc_msg *m = NULL;

    TCHECK_RC(pc_link(lb_far(*r)), PC_OK);
    TCHECK_RC(pt_send(r[1], "linked"), PC_OK);
    pc_recv(&m, PT_LONG); /* killed first */
    TCHECK(!"linker survived");
    pc_msg_free(&m);
    return NULL;
}

/* Traps exits, links with remote `r`, expects its EXIT (killed). */
static pc_msg *
lk_trapper(void *arg)
{
    pc_ref *r = arg;
    pc_msg *m;

    TCHECK_RC(pc_trap_exits(true), PC_OK);
    TCHECK_RC(pc_link(lb_far(*r)), PC_OK);
    TCHECK_RC(pt_send(r[1], "linked"), PC_OK);
    m = EXPECT_DOWN(PC_MSG_EXIT, lb_far(*r), PC_DOWN_KILLED);
    pc_msg_free(&m);
    TCHECK_RC(pt_send(r[1], "trapped"), PC_OK);
    return NULL;
}

static pc_msg *
lk_driver(void *arg)
{
    struct lk *s = arg;
    pc_ref self = pc_self();
    pc_ref a1[2] = {s->r1, self}, a2[2] = {s->r2, self}, a3[2] = {s->r3, self};
    pc_msg *m;

    /* killing the remote end kills a non-trapping linker */
    pc_ref l1 = pt_spawn(lk_linker, a1, 0, 0);
    TCHECK_RC(pc_monitor(self, l1), PC_OK);
    TCHECK_RC(pc_recv_type("linked", &m, PT_LONG), PC_OK);
    pc_msg_free(&m);
    TCHECK_RC(pc_task_terminate(lb_far(s->r1)), PC_OK);
    m = EXPECT_DOWN(PC_MSG_DOWN, l1, PC_DOWN_KILLED);
    pc_msg_free(&m);

    /* ... and gives a trapping one an EXIT */
    pt_spawn(lk_trapper, a2, 0, 0);
    TCHECK_RC(pc_recv_type("linked", &m, PT_LONG), PC_OK);
    pc_msg_free(&m);
    TCHECK_RC(pc_task_terminate(lb_far(s->r2)), PC_OK);
    TCHECK_RC(pc_recv_type("trapped", &m, PT_LONG), PC_OK);
    pc_msg_free(&m);

    /* killing the local linker kills the remote end */
    pc_ref l3 = pt_spawn(lk_linker, a3, 0, 0);
    TCHECK_RC(pc_monitor(self, s->r3), PC_OK);
    TCHECK_RC(pc_recv_type("linked", &m, PT_LONG), PC_OK);
    pc_msg_free(&m);
    TCHECK_RC(pc_task_terminate(l3), PC_OK);
    m = EXPECT_DOWN(PC_MSG_DOWN, s->r3, PC_DOWN_KILLED);
    pc_msg_free(&m);
    atomic_fetch_add(&s->done, 1);
    return NULL;
}

PT_WTEST(links)
static void
links(int W)
{
    struct lk s = {0};

    lb_start(W);
    s.r1 = pt_spawn(until_go, NULL, 1, 0);
    s.r2 = pt_spawn(until_go, NULL, 1, 0);
    s.r3 = pt_spawn(until_go, NULL, 1, 0);
    pt_spawn(lk_driver, &s, 0, 0);
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&s.done), 1);
    lb_check_end();
}

/* ---- terminate and join -------------------------------------------------- */

struct tj {
    pc_ref t1, t2, ended;
    atomic_int done;
};

static pc_msg *
tj_driver(void *arg)
{
    struct tj *s = arg;
    pc_msg *v = NULL;

    /* the exit value of a remote joinable task */
    TCHECK_RC(pt_send(lb_far(s->t1), "go"), PC_OK);
    TCHECK_RC(pc_task_join(lb_far(s->t1), PT_LONG, &v), PC_OK);
    TCHECK_STR(v ? pc_msg_str(v) : NULL, "tj1");
    pc_msg_free(&v);
    /* the deadline goes to the transport (it carries it on the wire) */
    pthread_mutex_lock(&lb.mu);
    TCHECK(isfinite(lb.join_deadline) && lb.join_deadline > 0);
    pthread_mutex_unlock(&lb.mu);
    /* terminated through its remote ref */
    TCHECK_RC(pc_task_terminate(lb_far(s->t2)), PC_OK);
    TCHECK_RC(pc_task_join(lb_far(s->t2), PT_LONG, &v), PC_EKILLED);
    TCHECK(v == NULL);
    /* gone */
    TCHECK_RC(pc_task_join(lb_far(s->ended), PT_LONG, &v), PC_ENOENT);
    /* timeout 0 only looks, and another node can't be looked at */
    TCHECK_RC(pc_task_join(lb_far(s->ended), 0, &v), PC_ETIMEDOUT);
    atomic_fetch_add(&s->done, 1);
    return NULL;
}

PT_WTEST(terminate_join)
static void
terminate_join(int W)
{
    struct tj s = {0};
    pc_msg *v = NULL;

    lb_start(W);
    s.ended = ended_ref();
    s.t1 = pt_spawn(until_go, "tj1", 1, PC_TASK_JOINABLE);
    s.t2 = pt_spawn(until_go, NULL, 1, PC_TASK_JOINABLE);
    pt_spawn(tj_driver, &s, 0, 0);
    /* and from a foreign thread */
    pc_ref t3 = pt_spawn(until_go, "tj3", 1, PC_TASK_JOINABLE);
    CU_ASSERT_EQUAL(pt_send(lb_far(t3), "go"), PC_OK);
    CU_ASSERT_EQUAL(pc_task_join(lb_far(t3), PT_LONG, &v), PC_OK);
    CU_ASSERT_STRING_EQUAL(v ? pc_msg_str(v) : "", "tj3");
    pc_msg_free(&v);
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&s.done), 1);
    lb_check_end();
}

/* ---- node down ------------------------------------------------------------------ */

struct nd {
    pc_sem *ready;
    pc_ref t, b, l, r, r2;
    atomic_int done;
};

/* Watches remote t; gets the DOWN of its node. */
static pc_msg *
nd_watcher(void *arg)
{
    struct nd *s = arg;
    pc_msg *m;

    TCHECK_RC(pc_monitor(pc_self(), lb_far(s->t)), PC_OK);
    TCHECK_RC(pc_sem_release(s->ready), PC_OK);
    m = EXPECT_DOWN(PC_MSG_DOWN, lb_far(s->t), PC_DOWN_NODE);
    pc_msg_free(&m);
    atomic_fetch_add(&s->done, 1);
    return NULL;
}

/* Links with remote r (not trapping): the node's end kills it. */
static pc_msg *
nd_linker(void *arg)
{
    struct nd *s = arg;
    pc_msg *m = NULL;

    TCHECK_RC(pc_link(lb_far(s->r)), PC_OK);
    TCHECK_RC(pc_sem_release(s->ready), PC_OK);
    pc_recv(&m, PT_LONG);
    TCHECK(!"linker survived its node-down");
    pc_msg_free(&m);
    return NULL;
}

/* Traps exits; linked with remote l2: gets its EXIT with PC_DOWN_NODE. */
static pc_msg *
nd_trapper(void *arg)
{
    struct nd *s = arg;
    pc_msg *m;

    TCHECK_RC(pc_trap_exits(true), PC_OK);
    TCHECK_RC(pc_link(lb_far(s->r2)), PC_OK);
    TCHECK_RC(pc_sem_release(s->ready), PC_OK);
    m = EXPECT_DOWN(PC_MSG_EXIT, lb_far(s->r2), PC_DOWN_NODE);
    pc_msg_free(&m);
    atomic_fetch_add(&s->done, 1);
    return NULL;
}

/* r: the far end of nd_linker's link, as the remote side linked it (the
 * loop-back's link_in): it traps exits and must get the EXIT too — a link
 * made from the other node fires on node-down as well. */
static pc_msg *
nd_far_end(void *arg)
{
    struct nd *s = arg;
    pc_msg *m;

    TCHECK_RC(pc_trap_exits(true), PC_OK);
    TCHECK_RC(pc_sem_release(s->ready), PC_OK);
    TCHECK_RC(pc_recv_type("arm", &m, PT_LONG), PC_OK); /* s->l is set */
    pc_msg_free(&m);
    m = EXPECT_DOWN(PC_MSG_EXIT, lb_far(s->l), PC_DOWN_NODE);
    pc_msg_free(&m);
    atomic_fetch_add(&s->done, 1);
    return NULL;
}

static pc_msg *
nd_deliver(void *arg)
{
    struct nd *s = arg;
    pc_msg *m = NULL;

    pc_msg_new_str(&m, "x", "pending");
    TCHECK_RC(pc_deliver(lb_far(s->b), &m, PT_LONG), PC_EUNREACH);
    TCHECK(m != NULL);
    TCHECK_STR(m ? pc_msg_str(m) : NULL, "pending");
    pc_msg_free(&m);
    atomic_fetch_add(&s->done, 1);
    return NULL;
}

static pc_msg *
nd_join(void *arg)
{
    struct nd *s = arg;
    pc_msg *v = NULL;

    TCHECK_RC(pc_task_join(lb_far(s->b), PT_LONG, &v), PC_EUNREACH);
    TCHECK(v == NULL);
    atomic_fetch_add(&s->done, 1);
    return NULL;
}

/* Watches the linker and r2 locally: both must end killed. */
static pc_msg *
nd_checker(void *arg)
{
    struct nd *s = arg;
    pc_msg *m;

    TCHECK_RC(pc_monitor(pc_self(), s->l), PC_OK);
    TCHECK_RC(pc_monitor(pc_self(), s->r2), PC_OK);
    TCHECK_RC(pc_sem_release(s->ready), PC_OK);
    m = EXPECT_DOWN(PC_MSG_DOWN, s->l, PC_DOWN_KILLED);
    pc_msg_free(&m);
    m = EXPECT_DOWN(PC_MSG_DOWN, s->r2, PC_DOWN_KILLED);
    pc_msg_free(&m);
    atomic_fetch_add(&s->done, 1);
    return NULL;
}

PT_WTEST(node_down)
static void
node_down(int W)
{
    struct nd s = {0};

    lb_start(W);
    CU_ASSERT_EQUAL_FATAL(pc_sem_new(&s.ready, 0), PC_OK);
    lb_set_hold(true);
    s.t = pt_spawn(until_go, NULL, 1, 0);
    s.b = pt_spawn(until_go, NULL, 1, 0);
    s.r = pt_spawn(nd_far_end, &s, 1, 0);
    s.r2 = pt_spawn(until_go, NULL, 1, 0);
    s.l = pt_spawn(nd_linker, &s, 0, 0);
    pt_spawn(nd_checker, &s, 0, 0);
    pt_spawn(nd_watcher, &s, 0, 0);
    pt_spawn(nd_trapper, &s, 0, 0);
    pt_spawn(nd_deliver, &s, 0, 0);
    pt_spawn(nd_join, &s, 0, 0);
    CU_ASSERT_EQUAL(pt_send(s.r, "arm"), PC_OK);
    for (int i = 0; i < 5; i++) /* far end, linker, checker, watcher, trapper */
        CU_ASSERT_EQUAL(pc_sem_acquire(s.ready, PT_LONG), PC_OK);
    lb_wait_held(2); /* the deliver and the join are pending */
    lb_quiesce();    /* the link_in()s and monitor_in() are done */
    pc_transport_node_down(lb.far);
    CU_ASSERT_EQUAL(pt_send(s.t, "quit"), PC_OK);
    CU_ASSERT_EQUAL(pt_send(s.b, "quit"), PC_OK);
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&s.done), 6);
    pc_sem_free(&s.ready);
    lb_check_end();
}

/* ---- races made deterministic (direct mode) -------------------------------------- */

/* A monitor of a gone remote target answers with DOWN NOPROC, which may come
 * back before the monitor call has returned (direct mode makes it so). The
 * runtime's watch for node-down must not outlive that DOWN: a node-down
 * afterwards sends nothing more. */
static pc_msg *
race_monitor(void *arg)
{
    atomic_int *done = arg;
    pc_ref gone = lb_far(ended_ref());
    pc_msg *m;

    atomic_store(&lb.direct, true);
    TCHECK_RC(pc_monitor(pc_self(), gone), PC_OK);
    atomic_store(&lb.direct, false);
    m = EXPECT_DOWN(PC_MSG_DOWN, gone, PC_DOWN_NOPROC);
    pc_msg_free(&m);
    pc_transport_node_down(lb.far);
    expect_nothing_more();
    atomic_fetch_add(done, 1);
    return NULL;
}

/* The same for a link to a gone remote proc (EXIT NOPROC). */
static pc_msg *
race_link(void *arg)
{
    atomic_int *done = arg;
    pc_ref gone = lb_far(ended_ref());
    pc_msg *m;

    TCHECK_RC(pc_trap_exits(true), PC_OK);
    atomic_store(&lb.direct, true);
    TCHECK_RC(pc_link(gone), PC_OK);
    atomic_store(&lb.direct, false);
    m = EXPECT_DOWN(PC_MSG_EXIT, gone, PC_DOWN_NOPROC);
    pc_msg_free(&m);
    pc_transport_node_down(lb.far);
    expect_nothing_more();
    atomic_fetch_add(done, 1);
    return NULL;
}

PT_WTEST(race_watch)
static void
race_watch(int W)
{
    atomic_int done = 0;

    lb_start(W);
    pc_ref a = pt_spawn(race_monitor, &done, 0, PC_TASK_JOINABLE);
    CU_ASSERT_EQUAL(pc_task_join(a, PT_LONG, NULL), PC_OK);
    pc_ref b = pt_spawn(race_link, &done, 0, PC_TASK_JOINABLE);
    CU_ASSERT_EQUAL(pc_task_join(b, PT_LONG, NULL), PC_OK);
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&done), 2);
    lb_check_end();
}

/* A transport may answer a ticket inside the op (it knows the peer is gone):
 * the task that asked is not waiting yet, and must still get the answer. */
static pc_msg *
reply_now_task(void *arg)
{
    atomic_int *done = arg;
    pc_ref far = lb_far(pc_self());
    pc_msg *m = NULL, *v = NULL;

    atomic_store(&lb.reply_now, true);
    pc_msg_new_str(&m, "x", "answered at once");
    TCHECK_RC(pc_deliver(far, &m, PT_LONG), PC_EUNREACH);
    TCHECK(m != NULL);
    pc_msg_free(&m);
    pc_ref t = pt_spawn(until_go, NULL, PT_SELF, 0);
    TCHECK_RC(pc_task_join(lb_far(t), PT_LONG, &v), PC_EUNREACH);
    TCHECK_RC(pt_send(t, "go"), PC_OK);
    atomic_store(&lb.reply_now, false);
    atomic_fetch_add(done, 1);
    return NULL;
}

PT_WTEST(reply_in_op)
static void
reply_in_op(int W)
{
    atomic_int done = 0;

    lb_start(W);
    pt_spawn(reply_now_task, &done, 0, 0);
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&done), 1);
    lb_check_end();
}

/* ---- unregister ----------------------------------------------------------------- */

/* Unregistering ends what went through the transport: pending tickets fail
 * and every remote watch fires as on node-down (no DOWN would ever come),
 * on both ends of a link. */
struct ur {
    pc_sem *ready;
    pc_ref t, w;
    atomic_int done;
};

static pc_msg *
ur_watcher(void *arg)
{
    struct ur *s = arg;
    pc_msg *m;

    TCHECK_RC(pc_monitor(pc_self(), lb_far(s->t)), PC_OK);
    TCHECK_RC(pc_trap_exits(true), PC_OK);
    TCHECK_RC(pc_link(lb_far(s->t)), PC_OK);
    TCHECK_RC(pc_sem_release(s->ready), PC_OK);
    m = EXPECT_DOWN(PC_MSG_DOWN, lb_far(s->t), PC_DOWN_NODE);
    pc_msg_free(&m);
    m = EXPECT_DOWN(PC_MSG_EXIT, lb_far(s->t), PC_DOWN_NODE);
    pc_msg_free(&m);
    atomic_fetch_add(&s->done, 1);
    return NULL;
}

/* The watcher's link target, linked from "F": traps, gets the EXIT too. */
static pc_msg *
ur_far_end(void *arg)
{
    struct ur *s = arg;
    pc_msg *m;

    TCHECK_RC(pc_trap_exits(true), PC_OK);
    TCHECK_RC(pc_sem_release(s->ready), PC_OK);
    TCHECK_RC(pc_recv_type("arm", &m, PT_LONG), PC_OK); /* s->w is set */
    pc_msg_free(&m);
    m = EXPECT_DOWN(PC_MSG_EXIT, lb_far(s->w), PC_DOWN_NODE);
    pc_msg_free(&m);
    atomic_fetch_add(&s->done, 1);
    return NULL;
}

PT_WTEST(unregister_watches)
static void
unregister_watches(int W)
{
    struct ur s = {0};

    lb_start(W);
    CU_ASSERT_EQUAL_FATAL(pc_sem_new(&s.ready, 0), PC_OK);
    s.t = pt_spawn(ur_far_end, &s, 1, 0);
    s.w = pt_spawn(ur_watcher, &s, 0, 0);
    CU_ASSERT_EQUAL(pt_send(s.t, "arm"), PC_OK);
    CU_ASSERT_EQUAL(pc_sem_acquire(s.ready, PT_LONG), PC_OK);
    CU_ASSERT_EQUAL(pc_sem_acquire(s.ready, PT_LONG), PC_OK);
    lb_quiesce(); /* the monitor_in and link_in are done */
    CU_ASSERT_EQUAL(pc_transport_unregister(), PC_OK);
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&s.done), 2);
    pc_sem_free(&s.ready);
    lb_check_end();
}

/* Teardown: a foreign thread and tasks keep sending to remote refs while the
 * main thread unregisters. No crash, no op after stop() (lb.late_ops),
 * every message accounted for; after it, the sends fail with PC_EUNREACH. */
struct hm {
    pc_ref b;
    pc_sem *ready;
    atomic_long sent;
};

static void
hammer(struct hm *h)
{
    pc_ref to = lb_far(h->b);
    int rc;

    while ((rc = pt_send(to, "h")) == PC_OK) {
        atomic_fetch_add(&h->sent, 1);
        if (pc_in_task())
            pc_yield();
    }
    TCHECK_RC(rc, PC_EUNREACH);
}

static pc_msg *
hammer_task(void *arg)
{
    hammer(arg);
    return NULL;
}

static void *
hammer_thread(void *arg)
{
    hammer(arg);
    return NULL;
}

/* Counts arrivals; tells main once some came; ends on "quit". */
static pc_msg *
hm_b(void *arg)
{
    struct hm *h = arg;
    pc_msg *m = NULL;
    int n = 0;

    while (pc_recv(&m, PT_LONG) == PC_OK) {
        bool quit = pc_msg_is(m, "quit");
        pc_msg_free(&m);
        if (quit)
            return NULL;
        if (++n == 200)
            TCHECK_RC(pc_sem_release(h->ready), PC_OK);
    }
    TCHECK(!"no quit");
    return NULL;
}

PT_WTEST(teardown)
static void
teardown(int W)
{
    struct hm h = {0};
    pthread_t th;

    lb_start(W);
    CU_ASSERT_EQUAL_FATAL(pc_sem_new(&h.ready, 0), PC_OK);
    h.b = pt_spawn(hm_b, &h, 1, 0);
    pt_spawn(hammer_task, &h, 0, 0);
    pt_spawn(hammer_task, &h, 1, 0);
    CU_ASSERT_FATAL(pthread_create(&th, NULL, hammer_thread, &h) == 0);
    CU_ASSERT_EQUAL(pc_sem_acquire(h.ready, PT_LONG), PC_OK);
    CU_ASSERT_EQUAL(pc_transport_unregister(), PC_OK);
    CU_ASSERT(atomic_load(&lb.stopped));
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(pt_send(h.b, "quit"), PC_OK);
    PT_RUN();
    CU_ASSERT(atomic_load(&h.sent) >= 200);
    pc_sem_free(&h.ready);
    lb_check_end();
}

/* ---- registration, no transport, the wire form of refs --------------------------- */

static pc_err
none_send(void *ctx, pc_ref to, pc_msg **m, bool chan)
{
    (void)ctx, (void)to, (void)m, (void)chan;
    return PC_EUNREACH;
}

static void *
unregister_thread(void *arg)
{
    *(int *)arg = pc_transport_unregister();
    return NULL;
}

PT_TEST(registration)
static void
registration(void)
{
    pc_transport_ops bad = {.name = "no send"};
    pc_transport_ops other = {.name = "other", .send = none_send};
    pthread_t th;
    int urc = -100;

    CU_ASSERT_EQUAL(pc_transport_register(&lb_ops), PC_ESTATE); /* no node */
    CU_ASSERT_EQUAL(pc_node_incarnation(), 0);
    PT_START(1);
    uint64_t inc = pc_node_incarnation();
    CU_ASSERT_NOT_EQUAL(inc, 0);
    CU_ASSERT_EQUAL(pc_transport_unregister(), PC_ESTATE);
    CU_ASSERT_EQUAL(pc_transport_register(NULL), PC_EINVAL);
    CU_ASSERT_EQUAL(pc_transport_register(&bad), PC_EINVAL);
    lb_init();
    CU_ASSERT_EQUAL(pc_transport_register(&lb_ops), PC_OK);
    CU_ASSERT_EQUAL(pc_transport_register(&lb_ops), PC_ESTATE);
    CU_ASSERT_EQUAL(pc_transport_register(&other), PC_ESTATE);

    /* while unregister waits in stop(), no other transport can come in: it
     * would be stopped or torn down by the unregister still under way */
    lb.gate = true;
    CU_ASSERT_FATAL(pthread_create(&th, NULL, unregister_thread, &urc) == 0);
    pthread_mutex_lock(&lb.mu);
    while (!lb.in_stop)
        pthread_cond_wait(&lb.cv, &lb.mu);
    pthread_mutex_unlock(&lb.mu);
    CU_ASSERT_EQUAL(pc_transport_register(&other), PC_ESTATE);
    pthread_mutex_lock(&lb.mu);
    lb.gate = false;
    pthread_cond_broadcast(&lb.cv);
    pthread_mutex_unlock(&lb.mu);
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(urc, PC_OK);
    CU_ASSERT_EQUAL(pc_transport_unregister(), PC_ESTATE);
    lb_check_end();

    /* a new one after that, ended by the node's end */
    CU_ASSERT_EQUAL(pc_transport_register(&other), PC_OK);
    PT_RUN();
    CU_ASSERT_EQUAL(pc_transport_unregister(), PC_ESTATE);
    PT_START(1);
    CU_ASSERT_NOT_EQUAL(pc_node_incarnation(), inc); /* new at every start */
    CU_ASSERT_EQUAL(pc_transport_unregister(), PC_ESTATE);
    PT_RUN();
}

/* Every remote-ref call without a transport: PC_EUNREACH. */
static void
unreachable_calls(void)
{
    pc_ref far = {pc_node_id() ^ 1, (1ull << 32) | 1};
    pc_msg *m = NULL, *v = NULL;

    TCHECK_RC(pt_send(far, "x"), PC_EUNREACH);
    pc_msg_new_str(&m, "x", "kept");
    TCHECK_RC(pc_deliver(far, &m, PT_LONG), PC_EUNREACH);
    TCHECK(m != NULL);
    pc_msg_free(&m);
    TCHECK_RC(pc_task_terminate(far), PC_EUNREACH);
    TCHECK_RC(pc_task_join(far, PT_LONG, &v), PC_EUNREACH);
    TCHECK(v == NULL);
    if (pc_in_task()) {
        TCHECK_RC(pc_monitor(pc_self(), far), PC_EUNREACH);
        TCHECK_RC(pc_demonitor(pc_self(), far), PC_EUNREACH);
        TCHECK_RC(pc_link(far), PC_EUNREACH);
    }
}

static pc_msg *
unreachable_task(void *arg)
{
    unreachable_calls();
    atomic_fetch_add((atomic_int *)arg, 1);
    return NULL;
}

PT_WTEST(no_transport)
static void
no_transport(int W)
{
    atomic_int done = 0;

    PT_START(W);
    pt_spawn(unreachable_task, &done, 0, 0);
    unreachable_calls(); /* and from a foreign thread */
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&done), 1);
}

/* pc_msg_new_remote takes the payload as it is, so it must be followed by a
 * NUL like every payload (pc_msg_str(), pc_down_parse() read up to it). */
PT_TEST(remote_msg)
static void
remote_msg(void)
{
    char buf[8] = "abcdXYZ";
    pc_ref from = {42, 7};
    pc_msg *m = NULL;

    CU_ASSERT_EQUAL(pc_msg_new_remote(&m, from, "t", buf, 4, NULL, NULL),
                    PC_EINVAL); /* buf[4] is 'X' */
    CU_ASSERT_PTR_NULL(m);
    buf[4] = '\0';
    CU_ASSERT_EQUAL(pc_msg_new_remote(&m, from, "t", buf, 4, NULL, NULL),
                    PC_OK);
    CU_ASSERT_PTR_EQUAL(pc_msg_data(m, NULL), buf);
    CU_ASSERT_STRING_EQUAL(pc_msg_str(m), "abcd");
    CU_ASSERT(pc_ref_eq(pc_msg_sender(m), from));
    pc_msg_free(&m);
    CU_ASSERT_EQUAL(pc_msg_new_remote(&m, from, "t", NULL, 0, NULL, NULL),
                    PC_OK);
    CU_ASSERT_STRING_EQUAL(pc_msg_str(m), "");
    pc_msg_free(&m);
    CU_ASSERT_EQUAL(pc_msg_new_remote(&m, from, "t", NULL, 3, NULL, NULL),
                    PC_EINVAL);
}

/* A transport's hold on a channel outlives the owner's pc_chan_free(): calls
 * on it answer PC_ECLOSED instead of touching freed memory (ASan sees a
 * use after free with pc_chan_find()'s borrowed pointer). */
PT_TEST(chan_hold)
static void
chan_hold(void)
{
    pc_chan *ch = NULL, *held;
    pc_msg *m = NULL;

    PT_START(1);
    CU_ASSERT_PTR_NULL(pc_transport_chan_get("held"));
    CU_ASSERT_FATAL(pc_chan_new(&ch, "held", NULL, NULL) == PC_OK);
    held = pc_transport_chan_get("held");
    CU_ASSERT_PTR_EQUAL(held, ch);
    pc_chan_free(&ch);
    CU_ASSERT_PTR_NULL(pc_transport_chan_get("held")); /* name gone */
    pc_msg_new(&m, "x", NULL, 0);
    CU_ASSERT_EQUAL(pc_chan_send(held, &m), PC_ECLOSED);
    CU_ASSERT_PTR_NOT_NULL(m); /* refused: still ours */
    pc_msg_free(&m);
    CU_ASSERT_EQUAL(pc_chan_set_remote_subs(held, 2), PC_OK);
    pc_transport_chan_put(held);
    pc_transport_chan_put(NULL);
    PT_RUN();
}

PT_TEST(ref_wire)
static void
ref_wire(void)
{
    unsigned char buf[PC_REF_WIRE_SIZE + 1];
    pc_ref r = {0x0102030405060708ull, 0x1112131415161718ull}, back;
    uint64_t inc = 0;

    CU_ASSERT_EQUAL(pc_ref_encode(r, 0xa1a2a3a4a5a6a7a8ull, buf, sizeof buf),
                    PC_REF_WIRE_SIZE);
    CU_ASSERT_EQUAL(buf[0], 1);
    CU_ASSERT_EQUAL(buf[1], 0x08); /* little-endian node */
    CU_ASSERT_EQUAL(buf[8], 0x01);
    CU_ASSERT_EQUAL(buf[9], 0xa8);  /* incarnation */
    CU_ASSERT_EQUAL(buf[17], 0x18); /* id */
    CU_ASSERT_EQUAL(buf[24], 0x11);
    CU_ASSERT_EQUAL(pc_ref_decode(buf, PC_REF_WIRE_SIZE, &back, &inc), PC_OK);
    CU_ASSERT(pc_ref_eq(back, r));
    CU_ASSERT_EQUAL(inc, 0xa1a2a3a4a5a6a7a8ull);
    CU_ASSERT_EQUAL(pc_ref_decode(buf, PC_REF_WIRE_SIZE, &back, NULL), PC_OK);

    CU_ASSERT_EQUAL(pc_ref_encode(r, 1, buf, PC_REF_WIRE_SIZE - 1), 0);
    CU_ASSERT_EQUAL(pc_ref_encode(r, 1, NULL, sizeof buf), 0);
    CU_ASSERT_EQUAL(pc_ref_decode(buf, PC_REF_WIRE_SIZE - 1, &back, &inc),
                    PC_EINVAL);
    CU_ASSERT_EQUAL(pc_ref_decode(buf, PC_REF_WIRE_SIZE + 1, &back, &inc),
                    PC_EINVAL);
    CU_ASSERT_EQUAL(pc_ref_decode(NULL, PC_REF_WIRE_SIZE, &back, &inc),
                    PC_EINVAL);
    CU_ASSERT_EQUAL(pc_ref_decode(buf, PC_REF_WIRE_SIZE, NULL, &inc),
                    PC_EINVAL);
    const unsigned char versions[] = {0, 2, 255};
    for (size_t i = 0; i < sizeof versions; i++) {
        buf[0] = versions[i];
        CU_ASSERT_EQUAL(pc_ref_decode(buf, PC_REF_WIRE_SIZE, &back, &inc),
                        PC_EPROTO);
    }
}

PT_MAIN("transport", PT_WENTRY(ping_pong), PT_WENTRY(deliver),
        PT_WENTRY(monitor), PT_WENTRY(links), PT_WENTRY(terminate_join),
        PT_WENTRY(node_down), PT_WENTRY(race_watch), PT_WENTRY(reply_in_op),
        PT_WENTRY(unregister_watches), PT_WENTRY(teardown),
        PT_ENTRY(registration), PT_WENTRY(no_transport), PT_ENTRY(remote_msg),
        PT_ENTRY(ref_wire), PT_ENTRY(chan_hold))
