/* tests/test_contract.c — the runtime's API contract where features meet:
 * joins, waits, refs, senders, allocation failures, slot reuse.
 *
 * Joins across workers with "don't wait" (timeout 0) and with timeouts that
 * expire, reply tokens that wrap, refs kept across a node restart with the
 * same fixed node id, what pc_msg_sender names, pc_monitor's answer when it
 * can't allocate, and slots that must be reused when procs end on another
 * worker than the one that spawned them. Some checks look at runtime
 * internals (a proc's joiner list, a task's reply token, the slot table)
 * through actors/internal.h: the tests link the static library.
 */
#include "../actors/internal.h"
#include "testutil.h"

/* Allocation failure on demand: this executable's malloc() fails the next
 * `fail_mallocs` calls of the thread that set it, else it is glibc's. The
 * sanitizers bring their own malloc, so there the test says SKIP. */
#if defined(PC__ASAN) || defined(PC__TSAN)
#define PT_FAIL_MALLOC 0
#else
#define PT_FAIL_MALLOC 1
extern void *__libc_malloc(size_t n);
static _Thread_local int fail_mallocs;

void *malloc(size_t n);
void *
malloc(size_t n)
{
    if (fail_mallocs > 0) {
        fail_mallocs--;
        return NULL;
    }
    return __libc_malloc(n);
}
#endif

struct join_ctx {
    pc_ref target, main;
    atomic_int done;
};

static pc_msg *
value_task(void *arg)
{
    pc_msg *v = NULL;

    (void)arg;
    TCHECK_RC(pc_msg_new_str(&v, "value", "forty-two"), PC_OK);
    return v;
}

/* A joinable task on worker 1 has ended; a task on worker 0 joins it with
 * timeout 0: the value is there, so it gets it (it used to get
 * PC_ETIMEDOUT while the value was destroyed). */
static pc_msg *
zero_join_main(void *arg)
{
    struct join_ctx *c = arg;
    pc_ref t = pt_spawn(value_task, NULL, 1, PC_TASK_JOINABLE);
    pc_msg *v = NULL;

    while (pc_alive(t)) /* until it has ended: a zombie is not alive */
        pc_sleep(0.001);
    TCHECK_RC(pc_task_join(t, 0, &v), PC_OK);
    TCHECK(v && pc_msg_is(v, "value"));
    TCHECK_STR(v ? pc_msg_str(v) : NULL, "forty-two");
    pc_msg_free(&v);
    TCHECK_RC(pc_task_join(t, 0, &v), PC_ENOENT); /* collected once */
    TCHECK_RC(pc_task_join(t, 1.0, &v), PC_ENOENT);

    /* timeout 0 on a running task: PC_ETIMEDOUT, and the value is kept */
    pc_ref r = pt_spawn(value_task, NULL, 1, PC_TASK_JOINABLE);
    int rc = pc_task_join(r, 0, &v);
    TCHECK(rc == PC_ETIMEDOUT || rc == PC_OK);
    if (rc == PC_ETIMEDOUT)
        TCHECK_RC(pc_task_join(r, PT_LONG, &v), PC_OK);
    TCHECK(v && pc_msg_is(v, "value"));
    pc_msg_free(&v);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(join_zero_timeout)
static void
join_zero_timeout(int W)
{
    struct join_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, zero_join_main, &c, &c.done, 1);
}

/* The target counts its joiner records when asked. */
static pc_msg *
counting_target(void *arg)
{
    struct join_ctx *c = arg;
    pc_msg *m = NULL;

    while (pc_recv(&m, PT_LONG) == PC_OK && !pc_msg_is(m, "end")) {
        pc__proc *p = pc__proc_lookup(pc__tls_worker, pc_self());
        uint64_t n = 0;
        for (pc__joiner *j = p && p->x ? p->x->joiners : NULL; j; j = j->next)
            n++;
        if (pc_msg_is(m, "count"))
            TCHECK_RC(pt_send_u64(pc_msg_sender(m), "joiners", n), PC_OK);
        pc_msg_free(&m);
    }
    pc_msg_free(&m);
    (void)c;
    return NULL;
}

#define POLLS 300

/* Joins that time out (from a task on the other worker) leave no joiner
 * record behind on the target's worker: polling can't grow it. */
/* Ask the target how many joiner records it holds (none, we want), then
 * let it end. The drops of the timed-out joins travel ahead of the
 * question (FIFO from one worker). */
static pc_msg *
ask_no_joiners(void *arg)
{
    struct join_ctx *c = arg;
    pc_msg *m = NULL;

    TCHECK_RC(pt_send(c->target, "count"), PC_OK);
    TCHECK_RC(pc_recv_type("joiners", &m, PT_LONG), PC_OK);
    TCHECK_EQ(m ? pt_u64(m) : 99, 0);
    pc_msg_free(&m);
    TCHECK_RC(pt_send(c->target, "end"), PC_OK);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

static pc_msg *
poll_join_main(void *arg)
{
    struct join_ctx *c = arg;

    c->target = pt_spawn(counting_target, c, 1, 0);
    for (int i = 0; i < POLLS; i++)
        TCHECK_RC(pc_task_join(c->target, 0.0005, NULL), PC_ETIMEDOUT);
    return ask_no_joiners(c);
}

PT_WTEST(join_timeouts_leave_nothing)
static void
join_timeouts_leave_nothing(int W)
{
    struct join_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, poll_join_main, &c, &c.done, 1);
}

/* The same from a foreign thread (main): its waits are pc__sync objects. */
PT_TEST(join_timeouts_foreign_thread)
static void
join_timeouts_foreign_thread(void)
{
    struct join_ctx c;
    pc_spawn_opts o = pt_on(0, 0);

    memset(&c, 0, sizeof c);
    PT_START(1);
    CU_ASSERT_EQUAL(pc_spawn(counting_target, &c, &o, &c.target), PC_OK);
    for (int i = 0; i < POLLS; i++)
        CU_ASSERT_EQUAL(pc_task_join(c.target, 0.0005, NULL), PC_ETIMEDOUT);
    CU_ASSERT_EQUAL(pc_task_join(c.target, 0, NULL), PC_ETIMEDOUT);
    /* the asker is spawned after the drops were pushed: they come first */
    CU_ASSERT_EQUAL(pc_spawn(ask_no_joiners, &c, &o, NULL), PC_OK);
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&c.done), 1);
}

/* A reply token that wraps must not become 0 ("no reply wanted"): a
 * deliver and a join across workers still get their answers. */
static pc_msg *
wrap_main(void *arg)
{
    struct join_ctx *c = arg;
    pc__task *me = pc__cur_task(pc__tls_worker);
    pc_ref t = pt_spawn(counting_target, c, 1, PC_TASK_JOINABLE);
    pc_msg *m = NULL;

    for (int i = 0; i < 3; i++) {
        me->token = UINT32_MAX; /* the next one wraps */
        TCHECK_RC(pc_msg_new(&m, "ping", NULL, 0), PC_OK);
        TCHECK_RC(pc_deliver(t, &m, PT_LONG), PC_OK);
        pc_msg_free(&m);
        if (pc_node_workers() > 1) /* across workers: it took a token */
            TCHECK_EQ(me->token, 1);
    }
    TCHECK_RC(pt_send(t, "end"), PC_OK);
    me->token = UINT32_MAX;
    TCHECK_RC(pc_task_join(t, PT_LONG, NULL), PC_OK);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(token_wrap)
static void
token_wrap(int W)
{
    struct join_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, wrap_main, &c, &c.done, 1);
}

/* A node restarted with the same fixed node id: refs from the first one
 * name nothing in the second, even where the slot index is reused. */
PT_TEST(fixed_node_id_restart)
static void
fixed_node_id_restart(void)
{
    pc_node_opts o = {.workers = 1, .node_id = 0x42};
    pc_spawn_opts d = {.flags = PC_TASK_DAEMON};
    pc_ref old[8], now[8];
    int same_slot = 0;

    CU_ASSERT_FATAL(pc_node_start(&o) == PC_OK);
    for (int i = 0; i < 8; i++)
        CU_ASSERT_EQUAL(pc_spawn(pt_idle_task, NULL, &d, &old[i]), PC_OK);
    CU_ASSERT_EQUAL(pc_node_run(), PC_OK);
    CU_ASSERT_FATAL(pc_node_start(&o) == PC_OK);
    for (int i = 0; i < 8; i++)
        CU_ASSERT_EQUAL(pc_spawn(pt_idle_task, NULL, &d, &now[i]), PC_OK);
    for (int i = 0; i < 8; i++) {
        CU_ASSERT_EQUAL(old[i].node, now[i].node);
        same_slot += (uint32_t)old[i].id == (uint32_t)now[i].id;
        CU_ASSERT(!pc_alive(old[i]));
        CU_ASSERT_EQUAL(pc_send_data(old[i], "x", NULL, 0), PC_ENOENT);
        CU_ASSERT(pc_alive(now[i]));
    }
    CU_ASSERT_EQUAL(same_slot, 8); /* the case that matters did happen */
    CU_ASSERT_EQUAL(pc_node_run(), PC_OK);
}

/* pc_msg_sender names who sent the message, also when it is forwarded or
 * handed back, and when the message is shared by several holders. */
static pc_msg *
echo_task(void *arg)
{
    pc_msg *m = NULL;

    (void)arg;
    while (pc_recv(&m, PT_LONG) == PC_OK && !pc_msg_is(m, "end")) {
        pc_msg *keep = pc_msg_is(m, "shared") ? pc_msg_ref(m) : NULL;
        TCHECK_RC(pc_send(pc_msg_sender(m), &m), PC_OK);
        TCHECK(m == NULL);
        if (keep) /* our copy still names the first sender */
            TCHECK(!pc_ref_eq(pc_msg_sender(keep), pc_self()));
        pc_msg_free(&keep);
    }
    pc_msg_free(&m);
    return NULL;
}

static pc_msg *
sender_main(void *arg)
{
    struct join_ctx *c = arg;
    pc_ref e = pt_spawn(echo_task, NULL, 1, 0);
    pc_msg *m = NULL;

    TCHECK_RC(pc_msg_new_str(&m, "hello", "hi"), PC_OK);
    TCHECK(pc_ref_eq(pc_msg_sender(m), pc_self())); /* made here */
    TCHECK_RC(pc_send(e, &m), PC_OK);
    TCHECK_RC(pc_recv_type("hello", &m, PT_LONG), PC_OK);
    TCHECK(m && pc_ref_eq(pc_msg_sender(m), e)); /* the echo sent it back */
    TCHECK_STR(m ? pc_msg_str(m) : NULL, "hi");
    pc_msg_free(&m);
    TCHECK_RC(pc_msg_new_str(&m, "shared", "payload"), PC_OK);
    TCHECK_RC(pc_send(e, &m), PC_OK);
    TCHECK_RC(pc_recv_type("shared", &m, PT_LONG), PC_OK);
    TCHECK(m && pc_ref_eq(pc_msg_sender(m), e));
    TCHECK_STR(m ? pc_msg_str(m) : NULL, "payload");
    pc_msg_free(&m);
    TCHECK_RC(pt_send(e, "end"), PC_OK);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(sender_is_who_sent)
static void
sender_is_who_sent(int W)
{
    struct join_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, sender_main, &c, &c.done, 1);
}

/* pc_monitor / pc_link that can't allocate say so (they used to answer
 * PC_OK and set nothing up). */
static pc_msg *
nomem_main(void *arg)
{
    struct join_ctx *c = arg;
#if PT_FAIL_MALLOC
    pc_ref t = pt_spawn(pt_idle_task, NULL, 1, 0);
    pc_msg *m = NULL;

    fail_mallocs = 1;
    TCHECK_RC(pc_monitor(pc_self(), t), PC_ENOMEM);
    fail_mallocs = 1;
    TCHECK_RC(pc_link(t), PC_ENOMEM);
    fail_mallocs = 0;
    /* nothing was set up: ending t sends no DOWN and no EXIT */
    TCHECK_RC(pc_trap_exits(true), PC_OK);
    TCHECK_RC(pc_task_terminate(t), PC_OK);
    /* one monitor that works: its DOWN (killed, or no-proc if t ended
     * first) is the only message; a link or monitor set up by the failed
     * calls would have sent an EXIT or a second DOWN before it */
    TCHECK_RC(pc_monitor(pc_self(), t), PC_OK);
    TCHECK_RC(pc_recv(&m, PT_LONG), PC_OK);
    pc_down d;
    TCHECK_STR(m ? pc_msg_type(m) : NULL, PC_MSG_DOWN);
    TCHECK(m && pc_down_parse(m, &d) == PC_OK &&
           (d.reason == PC_DOWN_KILLED || d.reason == PC_DOWN_NOPROC));
    pc_msg_free(&m);
    TCHECK_RC(pc_recv(&m, 0.05), PC_ETIMEDOUT);
#else
    printf("\n  SKIP: malloc failure injection needs glibc's malloc "
           "(sanitizer build)\n");
#endif
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(monitor_nomem)
static void
monitor_nomem(int W)
{
    struct join_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, nomem_main, &c, &c.done, 1);
}

/* Slots freed on one worker are reused by spawns elsewhere: from a foreign
 * thread, and from a task on another worker (the table used to grow by one
 * slot per spawn in both cases, for ever). */
#define SPAWNS 20000     /* above SLOT_BOUND: one slot per spawn would fail */
#define SLOT_BOUND 16384 /* far below SPAWNS, above what a worker keeps */

static pc_msg *
quick_task(void *arg)
{
    (void)arg;
    return NULL;
}

static pc_msg *
spawner_main(void *arg)
{
    struct join_ctx *c = arg;
    pc_spawn_opts o = pt_on(1, PC_TASK_JOINABLE);

    for (int i = 0; i < SPAWNS; i++) {
        pc_ref r;
        TCHECK_RC(pc_spawn(quick_task, NULL, &o, &r), PC_OK);
        TCHECK_RC(pc_task_join(r, PT_LONG, NULL), PC_OK);
    }
    TCHECK(atomic_load(&pc__the_node->slot_next) < SLOT_BOUND);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(slots_reused_across_workers)
static void
slots_reused_across_workers(int W)
{
    struct join_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, spawner_main, &c, &c.done, 1);
}

PT_TEST(slots_reused_from_foreign_thread)
static void
slots_reused_from_foreign_thread(void)
{
    pc_spawn_opts o = {.flags = PC_TASK_JOINABLE};

    PT_START(2);
    for (int i = 0; i < SPAWNS; i++) {
        pc_ref r;
        CU_ASSERT_EQUAL_FATAL(pc_spawn(quick_task, NULL, &o, &r), PC_OK);
        CU_ASSERT_EQUAL_FATAL(pc_task_join(r, PT_LONG, NULL), PC_OK);
    }
    CU_ASSERT(atomic_load(&pc__the_node->slot_next) < SLOT_BOUND);
    PT_RUN();
}

PT_MAIN("contract", PT_WENTRY(slots_reused_across_workers),
        PT_ENTRY(slots_reused_from_foreign_thread), PT_WENTRY(monitor_nomem),
        PT_WENTRY(sender_is_who_sent), PT_WENTRY(join_zero_timeout),
        PT_WENTRY(join_timeouts_leave_nothing),
        PT_ENTRY(join_timeouts_foreign_thread), PT_WENTRY(token_wrap),
        PT_ENTRY(fixed_node_id_restart))
