/* tests/test_monitor.c — monitors, links, error exits and the DOWN / EXIT
 * messages.
 *
 * Every DOWN is checked the same way (check_down): parsed with
 * pc_down_parse, its `who` and reason compared, its sender is the proc that
 * ended, and that proc's ref is already stale when it arrives.
 *
 * Absence (no DOWN after a demonitor, no duplicate DOWN, no kill after a
 * normal end or an unlink) is shown with a sentinel, not a sleep: a
 * sentinel task on the same worker as the proc that ends monitors it and,
 * once its own DOWN has come, sends a message (or ends, so that its own DOWN
 * goes out). Both leave from the worker where the proc ended, after that
 * proc's end was handled there, so they reach every receiver after anything
 * the end itself sent (FIFO per sending worker). Requests made before a
 * "ready"/"armed" message are in place before the command that follows it:
 * they were queued on the target's worker first.
 *
 * The driver task uses selective receive (by type and sender, or by the
 * `who` of a DOWN) throughout, so a late DOWN of an earlier step can't be
 * mistaken for the message a step waits for. Tests run with one and two
 * workers; with two, each pair of ends sits on different workers.
 */
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------- */

/* Check a DOWN or EXIT message: type, who, reason, sender == who (unless
 * sender_too is false) and who stale. Fills *d (pointers into m). */
#define CHECK_DOWN(m, type, who, reason, d, sender_too)                        \
    check_down_at(__FILE__, __LINE__, (m), (type), (who), (reason), (d),       \
                  (sender_too))

static bool
check_down_at(const char *file, int line, const pc_msg *m, const char *type,
              pc_ref who, pc_down_reason reason, pc_down *d, bool sender_too)
{
    char a[48], b[48];
    int rc;

    memset(d, 0, sizeof *d);
    if (!m) {
        pt_fail_at(file, line, "no %s message", type);
        return false;
    }
    if (!pc_msg_is(m, type)) {
        pt_fail_at(file, line, "got \"%s\", want \"%s\"", pc_msg_type(m), type);
        return false;
    }
    if ((rc = pc_down_parse(m, d)) != PC_OK) {
        pt_fail_at(file, line, "pc_down_parse: %s", pc_err_name(rc));
        return false;
    }
    if (!pc_ref_eq(d->who, who))
        pt_fail_at(file, line, "who %s, want %s",
                   pc_ref_str(d->who, a, sizeof a),
                   pc_ref_str(who, b, sizeof b));
    if (d->reason != reason)
        pt_fail_at(file, line, "reason %d, want %d", (int)d->reason,
                   (int)reason);
    if (sender_too && !pc_ref_eq(pc_msg_sender(m), who))
        pt_fail_at(file, line, "sender %s, want the proc that ended %s",
                   pc_ref_str(pc_msg_sender(m), a, sizeof a),
                   pc_ref_str(who, b, sizeof b));
    if (pc_alive(who))
        pt_fail_at(file, line, "%s still alive at its DOWN/EXIT",
                   pc_ref_str(who, a, sizeof a));
    if (!d->error)
        pt_fail_at(file, line, "error is NULL");
    return true;
}

/* Predicates for selective receive. */
struct from {
    const char *type;
    pc_ref ref;
};

static bool
type_from(const pc_msg *m, void *ctx)
{
    struct from *f = ctx;

    return pc_msg_is(m, f->type) && pc_ref_eq(pc_msg_sender(m), f->ref);
}

static bool
down_about(const pc_msg *m, void *ctx)
{
    struct from *f = ctx; /* f->type: PC_MSG_DOWN or PC_MSG_EXIT */
    pc_down d;

    return pc_msg_is(m, f->type) && pc_down_parse(m, &d) == PC_OK &&
           pc_ref_eq(d.who, f->ref);
}

/* Receive the next message of `type` sent by `ref`; returns its u64. */
#define RECV_FROM(type, ref) recv_from_at(__FILE__, __LINE__, (type), (ref))

static uint64_t
recv_from_at(const char *file, int line, const char *type, pc_ref ref)
{
    struct from f = {type, ref};
    pc_msg *m = NULL;
    uint64_t v;
    int rc = pc_recv_match(type_from, &f, NULL, &m, PT_LONG);

    if (rc != PC_OK || !m) {
        pt_fail_at(file, line, "recv of \"%s\": %s", type, pc_err_name(rc));
        return ~(uint64_t)0;
    }
    v = pt_u64(m);
    pc_msg_free(&m);
    return v;
}

/* Receive the DOWN about `who` (NULL on timeout, recorded). */
#define RECV_DOWN(who) recv_down_at(__FILE__, __LINE__, PC_MSG_DOWN, (who))

static pc_msg *
recv_down_at(const char *file, int line, const char *type, pc_ref who)
{
    struct from f = {type, who};
    pc_msg *m = NULL;
    int rc = pc_recv_match(down_about, &f, NULL, &m, PT_LONG);

    if (rc != PC_OK)
        pt_fail_at(file, line, "no %s: %s", type, pc_err_name(rc));
    return m;
}

/* A foreign node's ref (no transport: PC_EUNREACH). */
static pc_ref
foreign_ref(void)
{
    pc_ref r = {pc_node_id() + 1, (1ull << 32) | 1};

    return r;
}

/* A task that waits for "go", then ends as its mode says. */
enum how { END_RETURN, END_EXIT, END_NULL, END_EMPTY, END_ERROR, END_WAIT };

struct tgt {
    enum how how;
    const char *reason; /* END_ERROR */
    atomic_int after;   /* ran past a point where it should have ended */
};

static const unsigned char VALUE[] = {'a', 'b', 0, 'c', 'd', 0xff};

static pc_msg *
target(void *arg)
{
    struct tgt *t = arg;
    pc_msg *m = NULL;

    PT_EXPECT("go");
    switch (t->how) {
    case END_RETURN:
        TCHECK_RC(pc_msg_new(&m, "exit.value", VALUE, sizeof VALUE), PC_OK);
        return m;
    case END_EXIT:
        TCHECK_RC(pc_msg_new_str(&m, "exit.value2", "xyz"), PC_OK);
        pc_exit(m);
    case END_NULL:
        return NULL;
    case END_EMPTY:
        TCHECK_RC(pc_msg_new(&m, "empty.value", NULL, 0), PC_OK);
        return m;
    case END_ERROR:
        pc_exit_error(t->reason);
    case END_WAIT:
        PT_EXPECT("never");
        break;
    }
    atomic_fetch_add(&t->after, 1);
    return NULL;
}

static pc_msg *
null_task(void *arg)
{
    (void)arg;
    return NULL;
}

struct mctx {
    pc_ref main;
    atomic_int done;
};

/* ---- DOWN reasons -------------------------------------------------------- */

/* Spawn a target on worker 1, monitor it, let it end; returns the DOWN. */
static pc_msg *
watch_end(struct tgt *t, unsigned flags, pc_ref *ref)
{
    pc_msg *m = NULL;

    *ref = pt_spawn(target, t, 1, flags);
    TCHECK_RC(pc_monitor(pc_self(), *ref), PC_OK);
    TCHECK(pc_alive(*ref));
    if (t->how == END_WAIT)
        TCHECK_RC(pc_task_terminate(*ref), PC_OK);
    else
        TCHECK_RC(pt_send(*ref, "go"), PC_OK);
    m = RECV_DOWN(*ref);
    return m;
}

static pc_msg *
reasons_main(void *arg)
{
    struct mctx *c = arg;
    struct tgt t;
    pc_msg *m = NULL, *v = NULL;
    size_t len = 0;
    const void *data;
    pc_down d;
    pc_ref r;
    char big[3000];

    c->main = pc_self();

    /* normal, returned value (joinable: the same bytes come from join) */
    memset(&t, 0, sizeof t);
    t.how = END_RETURN;
    m = watch_end(&t, PC_TASK_JOINABLE, &r);
    if (CHECK_DOWN(m, PC_MSG_DOWN, r, PC_DOWN_NORMAL, &d, true)) {
        TCHECK_STR(d.value_type, "exit.value");
        TCHECK_STR(d.error, "");
        TCHECK_EQ(d.value_len, sizeof VALUE);
        TCHECK_RC(pc_task_join(r, PT_LONG, &v), PC_OK);
        TCHECK(v != NULL);
        if (v) {
            data = pc_msg_data(v, &len);
            TCHECK_STR(d.value_type, pc_msg_type(v));
            TCHECK_EQ(d.value_len, len);
            TCHECK(d.value_len == len && memcmp(d.value, data, len) == 0);
        }
        pc_msg_free(&v);
    }
    pc_msg_free(&m);

    /* normal, pc_exit(value), not joinable */
    t.how = END_EXIT;
    m = watch_end(&t, 0, &r);
    if (CHECK_DOWN(m, PC_MSG_DOWN, r, PC_DOWN_NORMAL, &d, true)) {
        TCHECK_STR(d.value_type, "exit.value2");
        TCHECK_EQ(d.value_len, 3);
        TCHECK(d.value_len == 3 && memcmp(d.value, "xyz", 3) == 0);
    }
    pc_msg_free(&m);

    /* normal, no value */
    t.how = END_NULL;
    m = watch_end(&t, PC_TASK_JOINABLE, &r);
    if (CHECK_DOWN(m, PC_MSG_DOWN, r, PC_DOWN_NORMAL, &d, true)) {
        TCHECK(d.value_type == NULL);
        TCHECK_EQ(d.value_len, 0);
        TCHECK_STR(d.error, "");
    }
    pc_msg_free(&m);
    v = (pc_msg *)(void *)&t;
    TCHECK_RC(pc_task_join(r, PT_LONG, &v), PC_OK);
    TCHECK(v == NULL);

    /* normal, a value with an empty payload: its type is still there */
    t.how = END_EMPTY;
    m = watch_end(&t, 0, &r);
    if (CHECK_DOWN(m, PC_MSG_DOWN, r, PC_DOWN_NORMAL, &d, true)) {
        TCHECK_STR(d.value_type, "empty.value");
        TCHECK_EQ(d.value_len, 0);
    }
    pc_msg_free(&m);

    /* error exit: DOWN with the reason; join gives PC_EFAILED and a
     * PC_MSG_ERROR message holding it */
    t.how = END_ERROR;
    t.reason = "boom";
    m = watch_end(&t, PC_TASK_JOINABLE, &r);
    if (CHECK_DOWN(m, PC_MSG_DOWN, r, PC_DOWN_ERROR, &d, true)) {
        TCHECK_STR(d.error, "boom");
        TCHECK(d.value_type == NULL);
    }
    pc_msg_free(&m);
    TCHECK_RC(pc_task_join(r, PT_LONG, &v), PC_EFAILED);
    TCHECK(v != NULL);
    if (v) {
        TCHECK_STR(pc_msg_type(v), PC_MSG_ERROR);
        TCHECK_STR(pc_msg_str(v), "boom");
    }
    pc_msg_free(&v);

    /* a long reason, and an empty one */
    memset(big, 'r', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    t.reason = big;
    m = watch_end(&t, 0, &r);
    if (CHECK_DOWN(m, PC_MSG_DOWN, r, PC_DOWN_ERROR, &d, true))
        TCHECK_STR(d.error, big);
    pc_msg_free(&m);
    t.reason = "";
    m = watch_end(&t, PC_TASK_JOINABLE, &r);
    if (CHECK_DOWN(m, PC_MSG_DOWN, r, PC_DOWN_ERROR, &d, true))
        TCHECK_STR(d.error, "");
    pc_msg_free(&m);
    TCHECK_RC(pc_task_join(r, PT_LONG, &v), PC_EFAILED);
    TCHECK(v != NULL && pc_msg_is(v, PC_MSG_ERROR));
    pc_msg_free(&v);

    /* a joiner already waiting when the (not joinable) task fails: it runs
     * only once this join blocks (same worker) */
    {
        pc_spawn_opts o = pt_on(PT_SELF, 0);
        t.how = END_ERROR;
        t.reason = "early";
        TCHECK_RC(pc_spawn(target, &t, &o, &r), PC_OK);
        TCHECK_RC(pt_send(r, "go"), PC_OK);
        TCHECK_RC(pc_task_join(r, PT_LONG, &v), PC_EFAILED);
        TCHECK(v != NULL);
        if (v) {
            TCHECK_STR(pc_msg_type(v), PC_MSG_ERROR);
            TCHECK_STR(pc_msg_str(v), "early");
        }
        pc_msg_free(&v);
    }

    /* killed while blocked */
    t.how = END_WAIT;
    m = watch_end(&t, PC_TASK_JOINABLE, &r);
    if (CHECK_DOWN(m, PC_MSG_DOWN, r, PC_DOWN_KILLED, &d, true)) {
        TCHECK(d.value_type == NULL);
        TCHECK_STR(d.error, "");
    }
    pc_msg_free(&m);
    TCHECK_RC(pc_task_join(r, PT_LONG, &v), PC_EKILLED);
    TCHECK(v == NULL);
    TCHECK_EQ(atomic_load(&t.after), 0);

    /* killed before it ever ran */
    r = pt_spawn(target, &t, 1, 0);
    TCHECK_RC(pc_monitor(pc_self(), r), PC_OK);
    TCHECK_RC(pc_task_terminate(r), PC_OK);
    m = RECV_DOWN(r);
    CHECK_DOWN(m, PC_MSG_DOWN, r, PC_DOWN_KILLED, &d, true);
    pc_msg_free(&m);

    /* already gone when the monitor is set: PC_OK, then NOPROC. (The
     * sender of such a DOWN is not checked: the proc it names is gone.) */
    r = pt_spawn(null_task, NULL, 1, PC_TASK_JOINABLE);
    TCHECK_RC(pc_task_join(r, PT_LONG, NULL), PC_OK);
    TCHECK_RC(pc_monitor(pc_self(), r), PC_OK);
    m = RECV_DOWN(r);
    CHECK_DOWN(m, PC_MSG_DOWN, r, PC_DOWN_NOPROC, &d, false);
    pc_msg_free(&m);
    TCHECK_RC(pc_demonitor(pc_self(), r), PC_ENOENT);

    /* a joinable task that ended but was not joined yet is gone for a
     * monitor too, and the monitor doesn't take its value */
    t.how = END_RETURN;
    m = watch_end(&t, PC_TASK_JOINABLE, &r);
    CHECK_DOWN(m, PC_MSG_DOWN, r, PC_DOWN_NORMAL, &d, true);
    pc_msg_free(&m);
    TCHECK_RC(pc_monitor(pc_self(), r), PC_OK);
    m = RECV_DOWN(r);
    CHECK_DOWN(m, PC_MSG_DOWN, r, PC_DOWN_NOPROC, &d, false);
    pc_msg_free(&m);
    TCHECK_RC(pc_task_join(r, PT_LONG, &v), PC_OK);
    TCHECK(v != NULL && pc_msg_is(v, "exit.value"));
    pc_msg_free(&v);

    /* bad refs */
    TCHECK_RC(pc_monitor(r, pc_self()), PC_ENOENT); /* stale watcher */
    TCHECK_RC(pc_monitor(pc_self(), foreign_ref()), PC_EUNREACH);
    TCHECK_RC(pc_monitor(foreign_ref(), pc_self()), PC_EUNREACH);

    /* nothing else arrived */
    TCHECK_RC(pc_recv(&m, 0), PC_ETIMEDOUT);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* DOWN reasons and contents: normal with and without value, error (and
 * the joiner's PC_EFAILED), killed, no such proc. */
PT_WTEST(down_reasons)
static void
down_reasons(int W)
{
    struct mctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, reasons_main, &c, &c.done, 1);
}

static pc_msg *
self_kill(void *arg)
{
    struct tgt *t = arg;

    PT_EXPECT("go");
    pc_task_terminate(pc_self());
    PT_EXPECT("never"); /* removed here at the latest */
    atomic_fetch_add(&t->after, 1);
    return NULL;
}

static pc_msg *
self_kill_main(void *arg)
{
    struct mctx *c = arg;
    struct tgt t;
    pc_msg *m;
    pc_down d;
    pc_ref r;

    memset(&t, 0, sizeof t);
    r = pt_spawn(self_kill, &t, 1, PC_TASK_JOINABLE);
    TCHECK_RC(pc_monitor(pc_self(), r), PC_OK);
    TCHECK_RC(pt_send(r, "go"), PC_OK);
    m = RECV_DOWN(r);
    CHECK_DOWN(m, PC_MSG_DOWN, r, PC_DOWN_KILLED, &d, true);
    pc_msg_free(&m);
    TCHECK_RC(pc_task_join(r, PT_LONG, NULL), PC_EKILLED);
    TCHECK_EQ(atomic_load(&t.after), 0);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* A task that terminates itself: DOWN says killed. */
PT_WTEST(down_self_terminate)
static void
down_self_terminate(int W)
{
    struct mctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, self_kill_main, &c, &c.done, 1);
}

/* ---- light actors -------------------------------------------------------- */

struct actor_st {
    pc_ref main;
    /* as a watcher */
    int downs;
    pc_down_reason reason;
    pc_ref who;
    bool sender_ok, stale_ok;
    char error[16];
    atomic_int fini;
};

static int
stop_on_stop(void *state, pc_msg *msg)
{
    (void)state;
    return pc_msg_is(msg, "stop") ? PC_ACTOR_STOP : PC_ACTOR_CONTINUE;
}

static int
watching_actor(void *state, pc_msg *msg)
{
    struct actor_st *s = state;
    pc_down d;

    if (pc_msg_is(msg, "watch")) {
        TCHECK_RC(pc_monitor(pc_self(), pt_msg_ref(msg)), PC_OK);
        TCHECK_RC(pt_send(s->main, "watching"), PC_OK);
    } else if (pc_msg_is(msg, PC_MSG_DOWN)) {
        TCHECK_RC(pc_down_parse(msg, &d), PC_OK);
        s->downs++;
        s->reason = d.reason;
        s->who = d.who;
        s->sender_ok = pc_ref_eq(pc_msg_sender(msg), d.who);
        s->stale_ok = !pc_alive(d.who);
        snprintf(s->error, sizeof s->error, "%s", d.error ? d.error : "(nil)");
        TCHECK_RC(pt_send(s->main, "actor-down"), PC_OK);
        return PC_ACTOR_STOP;
    }
    return PC_ACTOR_CONTINUE;
}

static void
actor_fini(void *state)
{
    struct actor_st *s = state;

    atomic_fetch_add(&s->fini, 1);
}

static pc_msg *
actors_main(void *arg)
{
    struct mctx *c = arg;
    struct actor_st st;
    pc_spawn_opts o = pt_on(1, PC_TASK_JOINABLE);
    struct tgt t;
    pc_msg *m;
    pc_down d;
    pc_ref a, r;

    memset(&st, 0, sizeof st);
    st.main = pc_self();

    /* an actor that stops: NORMAL, no value */
    TCHECK_RC(pc_actor_spawn(stop_on_stop, &st, actor_fini, &o, &a), PC_OK);
    TCHECK_RC(pc_monitor(pc_self(), a), PC_OK);
    TCHECK_RC(pt_send(a, "stop"), PC_OK);
    m = RECV_DOWN(a);
    if (CHECK_DOWN(m, PC_MSG_DOWN, a, PC_DOWN_NORMAL, &d, true))
        TCHECK(d.value_type == NULL);
    pc_msg_free(&m);
    TCHECK_RC(pc_task_join(a, PT_LONG, NULL), PC_OK);

    /* an actor terminated: KILLED */
    TCHECK_RC(pc_actor_spawn(stop_on_stop, &st, actor_fini, &o, &a), PC_OK);
    TCHECK_RC(pc_monitor(pc_self(), a), PC_OK);
    TCHECK_RC(pc_task_terminate(a), PC_OK);
    m = RECV_DOWN(a);
    CHECK_DOWN(m, PC_MSG_DOWN, a, PC_DOWN_KILLED, &d, true);
    pc_msg_free(&m);
    TCHECK_RC(pc_task_join(a, PT_LONG, NULL), PC_EKILLED);
    TCHECK_EQ(atomic_load(&st.fini), 2);

    /* an actor as the watcher (it sets the monitor from its handler) of a
     * task on the other worker that fails */
    memset(&t, 0, sizeof t);
    t.how = END_ERROR;
    t.reason = "oops";
    r = pt_spawn(target, &t, 0, 0);
    TCHECK_RC(pc_actor_spawn(watching_actor, &st, actor_fini, &o, &a), PC_OK);
    TCHECK_RC(pt_send_ref(a, "watch", r), PC_OK);
    RECV_FROM("watching", a);
    TCHECK_RC(pt_send(r, "go"), PC_OK);
    RECV_FROM("actor-down", a);
    TCHECK_EQ(st.downs, 1);
    TCHECK_EQ(st.reason, PC_DOWN_ERROR);
    TCHECK(pc_ref_eq(st.who, r));
    TCHECK(st.sender_ok);
    TCHECK(st.stale_ok);
    TCHECK_STR(st.error, "oops");
    TCHECK_RC(pc_task_join(a, PT_LONG, NULL), PC_OK);

    /* main-thread style: a task monitored with an actor as the watcher,
     * named by another task (pc_monitor(watcher, target) from a third) */
    r = pt_spawn(target, &t, 0, 0);
    TCHECK_RC(pc_actor_spawn(watching_actor, &st, actor_fini, &o, &a), PC_OK);
    TCHECK_RC(pc_monitor(a, r), PC_OK);
    t.reason = "again";
    TCHECK_RC(pt_send(r, "go"), PC_OK);
    RECV_FROM("actor-down", a);
    TCHECK_EQ(st.downs, 2);
    TCHECK(pc_ref_eq(st.who, r));
    TCHECK_STR(st.error, "again");
    TCHECK_RC(pc_task_join(a, PT_LONG, NULL), PC_OK);
    TCHECK_EQ(atomic_load(&st.fini), 4);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* Light actors as targets (stop: NORMAL, terminate: KILLED) and as
 * watchers. */
PT_WTEST(down_actors)
static void
down_actors(int W)
{
    struct mctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, actors_main, &c, &c.done, 1);
}

/* ---- many-to-many, duplicates, demonitor --------------------------------- */

#define NW 3
#define NT 2

/* Monitors `watch`, says "armed", ends once its DOWN has come. Placed on
 * the watched proc's worker, its own DOWN follows every DOWN of that proc. */
struct sentinel {
    pc_ref main;
    pc_ref watch;
    pc_ref ping; /* nil: none; else sent "ping" after the DOWN */
};

static pc_msg *
sentinel_task(void *arg)
{
    struct sentinel s = *(struct sentinel *)arg;
    struct from f = {PC_MSG_DOWN, s.watch};
    pc_msg *m = NULL;

    TCHECK_RC(pc_monitor(pc_self(), s.watch), PC_OK);
    TCHECK_RC(pt_send(s.main, "armed"), PC_OK);
    TCHECK_RC(pc_recv_match(down_about, &f, NULL, &m, PT_LONG), PC_OK);
    pc_msg_free(&m);
    if (!pc_ref_is_nil(s.ping))
        TCHECK_RC(pt_send(s.ping, "ping"), PC_OK);
    return NULL;
}

struct m2m {
    pc_ref main;
    pc_ref t[NT];
    pc_ref s[NT]; /* sentinels */
    struct tgt tg[NT];
    struct sentinel sa[NT];
    struct warg {
        struct m2m *c;
        int i;
    } wa[NW];
    atomic_int ok;
    atomic_int done;
};

static pc_msg *
m2m_watcher(void *arg)
{
    struct warg *a = arg;
    struct m2m *c = a->c;
    int count[NT] = {0}, seen_s[NT] = {0}, order_bad = 0, ns = 0;
    pc_msg *m = NULL;

    for (int k = 0; k < NT; k++) {
        TCHECK_RC(pc_monitor(pc_self(), c->t[k]), PC_OK);
        if (a->i == 0) /* the same pair twice keeps one monitor */
            TCHECK_RC(pc_monitor(pc_self(), c->t[k]), PC_OK);
        TCHECK_RC(pc_monitor(pc_self(), c->s[k]), PC_OK);
    }
    TCHECK_RC(pt_send(c->main, "armed"), PC_OK);
    /* DOWNs in arrival order until both sentinels' */
    while (ns < NT) {
        pc_down d;
        bool known = false;

        if (pc_recv_type(PC_MSG_DOWN, &m, PT_LONG) != PC_OK) {
            TCHECK(!"watcher: DOWN missing");
            break;
        }
        TCHECK_RC(pc_down_parse(m, &d), PC_OK);
        for (int k = 0; k < NT; k++) {
            if (pc_ref_eq(d.who, c->t[k])) {
                CHECK_DOWN(m, PC_MSG_DOWN, c->t[k],
                           k == 0 ? PC_DOWN_NORMAL : PC_DOWN_ERROR, &d, true);
                count[k]++;
                if (seen_s[k])
                    order_bad++;
                known = true;
            } else if (pc_ref_eq(d.who, c->s[k])) {
                seen_s[k]++;
                ns++;
                known = true;
            }
        }
        TCHECK(known);
        pc_msg_free(&m);
    }
    for (int k = 0; k < NT; k++) {
        TCHECK_EQ(count[k], 1);
        TCHECK_EQ(seen_s[k], 1);
    }
    TCHECK_EQ(order_bad, 0);
    /* and none later either */
    TCHECK_RC(pc_recv_type(PC_MSG_DOWN, &m, 0), PC_ETIMEDOUT);
    atomic_fetch_add(&c->ok, 1);
    return NULL;
}

static pc_msg *
m2m_main(void *arg)
{
    struct m2m *c = arg;
    pc_ref w[NW];

    c->main = pc_self();
    /* targets: t0 on worker 1 ends normally, t1 on worker 0 fails */
    c->tg[0].how = END_RETURN;
    c->tg[1].how = END_ERROR;
    c->tg[1].reason = "m2m";
    for (int k = 0; k < NT; k++) {
        c->t[k] = pt_spawn(target, &c->tg[k], 1 - k, 0);
        c->sa[k].main = c->main;
        c->sa[k].watch = c->t[k];
        c->s[k] = pt_spawn(sentinel_task, &c->sa[k], 1 - k, 0);
    }
    for (int k = 0; k < NT; k++)
        PT_EXPECT("armed");
    /* watchers on workers 0, 1, 0 */
    for (int i = 0; i < NW; i++) {
        c->wa[i].c = c;
        c->wa[i].i = i;
        w[i] = pt_spawn(m2m_watcher, &c->wa[i], i, PC_TASK_JOINABLE);
    }
    for (int i = 0; i < NW; i++)
        PT_EXPECT("armed");
    for (int k = 0; k < NT; k++)
        TCHECK_RC(pt_send(c->t[k], "go"), PC_OK);
    for (int i = 0; i < NW; i++)
        TCHECK_RC(pc_task_join(w[i], PT_LONG, NULL), PC_OK);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* 3 watchers on 2 targets, across workers: exactly one DOWN per pair, also
 * for a pair set twice. */
PT_WTEST(many_to_many)
static void
many_to_many(int W)
{
    struct m2m *c = calloc(1, sizeof *c);

    CU_ASSERT_FATAL(c != NULL);
    PT_RUN_TASK(W, m2m_main, c, &c->done, 1);
    CU_ASSERT_EQUAL(atomic_load(&c->ok), NW);
    free(c);
}

static pc_msg *
demon_main(void *arg)
{
    struct mctx *c = arg;
    struct tgt t1, t2;
    struct sentinel sa;
    pc_msg *m = NULL;
    pc_down d;
    pc_ref r1, r2, s;

    c->main = pc_self();
    memset(&t1, 0, sizeof t1);
    memset(&t2, 0, sizeof t2);
    t1.how = END_RETURN;
    t2.how = END_ERROR;
    t2.reason = "x";

    /* r1: monitored, then demonitored; r2: monitored twice, demonitored
     * once (one monitor, so none left). A sentinel on their worker ends
     * after both: its DOWN must be the first and only one. */
    r1 = pt_spawn(target, &t1, 1, PC_TASK_JOINABLE);
    r2 = pt_spawn(target, &t2, 1, PC_TASK_JOINABLE);
    TCHECK_RC(pc_monitor(pc_self(), r1), PC_OK);
    TCHECK_RC(pc_monitor(pc_self(), r2), PC_OK);
    TCHECK_RC(pc_monitor(pc_self(), r2), PC_OK);
    TCHECK_RC(pc_demonitor(pc_self(), r1), PC_OK);
    TCHECK_RC(pc_demonitor(pc_self(), r2), PC_OK);
    sa.main = c->main;
    sa.watch = r2;
    sa.ping = PC_REF_NIL;
    s = pt_spawn(sentinel_task, &sa, 1, 0);
    TCHECK_RC(pc_monitor(pc_self(), s), PC_OK);
    RECV_FROM("armed", s);
    TCHECK_RC(pt_send(r1, "go"), PC_OK);
    TCHECK_RC(pc_task_join(r1, PT_LONG, NULL), PC_OK);
    TCHECK_RC(pt_send(r2, "go"), PC_OK); /* r2 ends after r1 */
    TCHECK_RC(pc_recv_type(PC_MSG_DOWN, &m, PT_LONG), PC_OK);
    CHECK_DOWN(m, PC_MSG_DOWN, s, PC_DOWN_NORMAL, &d, true);
    pc_msg_free(&m);
    TCHECK_RC(pc_recv_type(PC_MSG_DOWN, &m, 0), PC_ETIMEDOUT);
    TCHECK_RC(pc_task_join(r2, PT_LONG, NULL), PC_EFAILED);

    /* demonitor of a gone target */
    TCHECK_RC(pc_demonitor(pc_self(), r1), PC_ENOENT);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* pc_demonitor before the end: no DOWN (a later sentinel DOWN comes
 * first). */
PT_WTEST(demonitor)
static void
demonitor(int W)
{
    struct mctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, demon_main, &c, &c.done, 1);
}

/* ---- pc_monitor from main ------------------------------------------------ */

struct fctx {
    pc_ref t, t2, t3;
    struct tgt tg, tg2;
    atomic_int ok;
};

/* ends after its joinable sibling t2 ended (same worker): its DOWN comes
 * after any DOWN of t2 */
static pc_msg *
ends_after_t2(void *arg)
{
    struct fctx *c = arg;
    pc_msg *m = NULL;

    PT_EXPECT("go");
    TCHECK_RC(pc_task_join(c->t2, PT_LONG, NULL), PC_EFAILED);
    TCHECK_RC(pc_msg_new_str(&m, "t.value", "v"), PC_OK);
    return m;
}

static pc_msg *
foreign_watcher(void *arg)
{
    struct fctx *c = arg;
    pc_msg *m = NULL;
    pc_down d;

    /* "check" comes from main after its requests; the NOPROC DOWN main's
     * pc_monitor sent may be ahead of it */
    TCHECK_RC(pc_recv_type("check", &m, PT_LONG), PC_OK);
    pc_msg_free(&m);
    /* t3 was gone before main set the monitor */
    m = RECV_DOWN(c->t3);
    CHECK_DOWN(m, PC_MSG_DOWN, c->t3, PC_DOWN_NOPROC, &d, false);
    pc_msg_free(&m);
    /* t's DOWN is the first other one: t2's (demonitored) never came */
    TCHECK_RC(pc_recv_type(PC_MSG_DOWN, &m, PT_LONG), PC_OK);
    if (CHECK_DOWN(m, PC_MSG_DOWN, c->t, PC_DOWN_NORMAL, &d, true))
        TCHECK_STR(d.value_type, "t.value");
    pc_msg_free(&m);
    TCHECK_RC(pc_recv_type(PC_MSG_DOWN, &m, 0), PC_ETIMEDOUT);
    atomic_fetch_add(&c->ok, 1);
    return NULL;
}

/* pc_monitor / pc_demonitor from main() naming a task as the watcher. */
PT_WTEST(monitor_from_main)
static void
monitor_from_main(int W)
{
    struct fctx c;
    pc_spawn_opts o;
    pc_ref w, dead;

    memset(&c, 0, sizeof c);
    c.tg2.how = END_ERROR;
    c.tg2.reason = "t2";
    PT_START(W);
    o = pt_on(1, 0);
    CU_ASSERT_EQUAL_FATAL(pc_spawn(foreign_watcher, &c, &o, &w), PC_OK);
    o = pt_on(0, PC_TASK_JOINABLE);
    CU_ASSERT_EQUAL_FATAL(pc_spawn(target, &c.tg2, &o, &c.t2), PC_OK);
    o = pt_on(0, 0);
    CU_ASSERT_EQUAL_FATAL(pc_spawn(ends_after_t2, &c, &o, &c.t), PC_OK);
    o = pt_on(1, PC_TASK_JOINABLE);
    CU_ASSERT_EQUAL_FATAL(pc_spawn(null_task, NULL, &o, &c.t3), PC_OK);
    CU_ASSERT_EQUAL(pc_task_join(c.t3, PT_LONG, NULL), PC_OK);

    CU_ASSERT_EQUAL(pc_monitor(w, c.t), PC_OK);
    CU_ASSERT_EQUAL(pc_monitor(w, c.t2), PC_OK);
    CU_ASSERT_EQUAL(pc_demonitor(w, c.t2), PC_OK);
    CU_ASSERT_EQUAL(pc_monitor(w, c.t3), PC_OK); /* gone: NOPROC */
    dead = c.t3;
    CU_ASSERT_EQUAL(pc_monitor(dead, c.t), PC_ENOENT);
    CU_ASSERT_EQUAL(pc_monitor(w, foreign_ref()), PC_EUNREACH);
    CU_ASSERT_EQUAL(pt_send(c.t2, "go"), PC_OK);
    CU_ASSERT_EQUAL(pt_send(c.t, "go"), PC_OK);
    CU_ASSERT_EQUAL(pt_send(w, "check"), PC_OK);
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&c.ok), 1);
}

/* ---- links --------------------------------------------------------------- */

/* A linked end: traps or not, links at start when link_to is set, then
 * obeys commands until it ends (or is killed). What it saw is written
 * before it answers, and read by the driver after the answer. */
struct end {
    pc_ref main;
    bool trap;
    pc_ref link_to;
    int nexits;
    pc_down_reason reason;
    pc_ref who;
    bool sender_ok, stale_ok;
    char err[16], vtype[16], value[16];
    int link_rc;
};

static void
record_exit(struct end *e, const pc_msg *m)
{
    pc_down d;

    TCHECK_RC(pc_down_parse(m, &d), PC_OK);
    e->nexits++;
    e->reason = d.reason;
    e->who = d.who;
    e->sender_ok = pc_ref_eq(pc_msg_sender(m), d.who);
    e->stale_ok = !pc_alive(d.who);
    snprintf(e->err, sizeof e->err, "%s", d.error ? d.error : "(nil)");
    snprintf(e->vtype, sizeof e->vtype, "%s",
             d.value_type ? d.value_type : "(nil)");
    snprintf(e->value, sizeof e->value, "%.*s",
             (int)(d.value_len < 15 ? d.value_len : 15),
             d.value ? (const char *)d.value : "");
}

static pc_msg *
end_task(void *arg)
{
    struct end *e = arg;
    pc_msg *m = NULL;

    /* the driver's monitor is in place before anything happens here */
    TCHECK_RC(pc_recv_type("start", &m, PT_LONG), PC_OK);
    pc_msg_free(&m);
    TCHECK_RC(pc_trap_exits(e->trap), PC_OK);
    if (!pc_ref_is_nil(e->link_to))
        e->link_rc = pc_link(e->link_to);
    TCHECK_RC(pt_send(e->main, "ready"), PC_OK);
    for (;;) {
        if (pc_recv(&m, PT_LONG) != PC_OK) {
            TCHECK(!"end: no command");
            return NULL;
        }
        if (pc_msg_is(m, PC_MSG_EXIT)) {
            record_exit(e, m);
        } else if (pc_msg_is(m, "ping")) {
            TCHECK_RC(pt_send_u64(e->main, "pong", (uint64_t)e->nexits), PC_OK);
        } else if (pc_msg_is(m, "await-exit")) {
            pc_msg *x = NULL;
            if (e->nexits == 0 &&
                pc_recv_type(PC_MSG_EXIT, &x, PT_LONG) == PC_OK)
                record_exit(e, x);
            pc_msg_free(&x);
            TCHECK_RC(pt_send_u64(e->main, "exit-seen", (uint64_t)e->nexits),
                      PC_OK);
        } else if (pc_msg_is(m, "fail")) {
            pc_msg_free(&m);
            pc_exit_error("boom");
        } else if (pc_msg_is(m, "end")) {
            pc_msg_free(&m);
            TCHECK_RC(pc_msg_new_str(&m, "end.value", "bye"), PC_OK);
            return m;
        } else if (pc_msg_is(m, "link")) {
            e->link_rc = pc_link(pt_msg_ref(m));
            TCHECK_RC(pt_send(e->main, "linked"), PC_OK);
        } else if (pc_msg_is(m, "unlink")) {
            TCHECK_RC(pc_unlink(pt_msg_ref(m)), PC_OK);
            TCHECK_RC(pt_send(e->main, "unlinked"), PC_OK);
        } else if (pc_msg_is(m, "kill")) {
            TCHECK_RC(pc_task_terminate(pt_msg_ref(m)), PC_OK);
            TCHECK_RC(pt_send(e->main, "killed"), PC_OK);
        } else {
            TCHECK(!"end: unexpected message");
        }
        pc_msg_free(&m);
    }
}

/* The answer of type `type` from end y, unless y died first, which shows
 * as its DOWN (start_end monitors every end): then a failure, at once
 * rather than after a long timeout. Returns the answer's u64 (as int), or
 * -1. After a pinger's ping, "pong" carries y's EXIT count. */
#define ANSWER(type, y) answer_at(__FILE__, __LINE__, (type), (y))

static bool
answer_or_down(const pc_msg *m, void *ctx)
{
    struct from *f = ctx;
    pc_down d;

    if (pc_msg_is(m, f->type))
        return pc_ref_eq(pc_msg_sender(m), f->ref);
    return pc_msg_is(m, PC_MSG_DOWN) && pc_down_parse(m, &d) == PC_OK &&
           pc_ref_eq(d.who, f->ref);
}

static int
answer_at(const char *file, int line, const char *type, pc_ref y)
{
    struct from f = {type, y};
    pc_msg *m = NULL;
    int n = -1;

    if (pc_recv_match(answer_or_down, &f, NULL, &m, PT_LONG) != PC_OK) {
        pt_fail_at(file, line, "neither \"%s\" nor DOWN", type);
        return -1;
    }
    if (pc_msg_is(m, type))
        n = (int)pt_u64(m);
    else
        pt_fail_at(file, line, "killed before \"%s\", should have lived", type);
    pc_msg_free(&m);
    return n;
}

/* Start an end on worker w; returns once it has linked (if told to). */
#define START_END(e, w, trap, link_to)                                         \
    start_end_at(__FILE__, __LINE__, (e), (w), (trap), (link_to))

static pc_ref
start_end_at(const char *file, int line, struct end *e, int w, bool trap,
             pc_ref link_to)
{
    pc_ref r;

    memset(e, 0, sizeof *e);
    e->main = pc_self();
    e->trap = trap;
    e->link_to = link_to;
    r = pt_spawn(end_task, e, w, PC_TASK_JOINABLE);
    TCHECK_RC(pc_monitor(pc_self(), r), PC_OK);
    TCHECK_RC(pt_send(r, "start"), PC_OK);
    if (answer_at(file, line, "ready", r) >= 0 && !pc_ref_is_nil(link_to) &&
        e->link_rc != PC_OK)
        pt_fail_at(file, line, "pc_link: %s", pc_err_name(e->link_rc));
    return r;
}

/* A sentinel on worker w that pings `ping` once `watch` has ended. */
static void
start_pinger(struct sentinel *s, int w, pc_ref watch, pc_ref ping)
{
    s->main = pc_self();
    s->watch = watch;
    s->ping = ping;
    RECV_FROM("armed", pt_spawn(sentinel_task, s, w, 0));
}

struct lctx {
    int wa, wb; /* placement of the two ends */
    atomic_int done;
};

/* B fails: a non-trapping A dies, a trapping A gets EXIT(ERROR). */
static void
link_fail(int wa, int wb)
{
    struct end ea, eb;
    pc_ref a, b;
    pc_msg *v = NULL;

    b = START_END(&eb, wb, false, PC_REF_NIL);
    a = START_END(&ea, wa, false, b);
    TCHECK_RC(pt_send(b, "fail"), PC_OK);
    TCHECK_RC(pc_task_join(b, PT_LONG, &v), PC_EFAILED);
    TCHECK(v != NULL && pc_msg_is(v, PC_MSG_ERROR));
    pc_msg_free(&v);
    TCHECK_RC(pc_task_join(a, PT_LONG, NULL), PC_EKILLED);

    /* the same linked from the failing side */
    a = START_END(&ea, wa, false, PC_REF_NIL);
    b = START_END(&eb, wb, false, a);
    TCHECK_RC(pt_send(b, "fail"), PC_OK);
    TCHECK_RC(pc_task_join(b, PT_LONG, NULL), PC_EFAILED);
    TCHECK_RC(pc_task_join(a, PT_LONG, NULL), PC_EKILLED);

    /* trapping */
    b = START_END(&eb, wb, false, PC_REF_NIL);
    a = START_END(&ea, wa, true, b);
    TCHECK_RC(pt_send(b, "fail"), PC_OK);
    TCHECK_RC(pt_send(a, "await-exit"), PC_OK);
    TCHECK_EQ(ANSWER("exit-seen", a), 1);
    TCHECK_EQ(ea.reason, PC_DOWN_ERROR);
    TCHECK(pc_ref_eq(ea.who, b));
    TCHECK(ea.sender_ok);
    TCHECK(ea.stale_ok);
    TCHECK_STR(ea.err, "boom");
    TCHECK_STR(ea.vtype, "(nil)");
    TCHECK_RC(pt_send(a, "end"), PC_OK); /* still running */
    TCHECK_RC(pc_task_join(a, PT_LONG, NULL), PC_OK);
    TCHECK_RC(pc_task_join(b, PT_LONG, NULL), PC_EFAILED);
}

/* B ends normally: a non-trapping A keeps running, a trapping A gets
 * EXIT(NORMAL) with B's exit value. */
static void
link_normal(int wa, int wb)
{
    struct end ea, eb;
    struct sentinel s;
    pc_ref a, b;

    for (int trap = 0; trap < 2; trap++) {
        b = START_END(&eb, wb, false, PC_REF_NIL);
        a = START_END(&ea, wa, trap, b);
        start_pinger(&s, wb, b, a);
        TCHECK_RC(pt_send(b, "end"), PC_OK);
        TCHECK_RC(pc_task_join(b, PT_LONG, NULL), PC_OK);
        /* the ping follows any exit signal of b's end */
        TCHECK_EQ(ANSWER("pong", a), trap ? 1 : 0);
        if (trap) {
            TCHECK_EQ(ea.reason, PC_DOWN_NORMAL);
            TCHECK(pc_ref_eq(ea.who, b));
            TCHECK(ea.sender_ok);
            TCHECK(ea.stale_ok);
            TCHECK_STR(ea.vtype, "end.value");
            TCHECK_STR(ea.value, "bye");
            TCHECK_STR(ea.err, "");
        }
        TCHECK_RC(pt_send(a, "end"), PC_OK);
        TCHECK_RC(pc_task_join(a, PT_LONG, NULL), PC_OK);
    }
}

/* B terminated: A killed, or EXIT(KILLED) when trapping; also when A is
 * the one that terminates B. */
static void
link_killed(int wa, int wb)
{
    struct end ea, eb;
    pc_ref a, b;

    b = START_END(&eb, wb, false, PC_REF_NIL);
    a = START_END(&ea, wa, false, b);
    TCHECK_RC(pc_task_terminate(b), PC_OK);
    TCHECK_RC(pc_task_join(b, PT_LONG, NULL), PC_EKILLED);
    TCHECK_RC(pc_task_join(a, PT_LONG, NULL), PC_EKILLED);

    b = START_END(&eb, wb, false, PC_REF_NIL);
    a = START_END(&ea, wa, true, b);
    TCHECK_RC(pc_task_terminate(b), PC_OK);
    TCHECK_RC(pt_send(a, "await-exit"), PC_OK);
    TCHECK_EQ(ANSWER("exit-seen", a), 1);
    TCHECK_EQ(ea.reason, PC_DOWN_KILLED);
    TCHECK(pc_ref_eq(ea.who, b));
    TCHECK(ea.sender_ok);
    TCHECK(ea.stale_ok);
    TCHECK_RC(pt_send(a, "end"), PC_OK);
    TCHECK_RC(pc_task_join(a, PT_LONG, NULL), PC_OK);
    TCHECK_RC(pc_task_join(b, PT_LONG, NULL), PC_EKILLED);

    /* A terminates its own linked B: B's end kills A in turn */
    b = START_END(&eb, wb, false, PC_REF_NIL);
    a = START_END(&ea, wa, false, b);
    TCHECK_RC(pt_send_ref(a, "kill", b), PC_OK);
    TCHECK_RC(pc_task_join(b, PT_LONG, NULL), PC_EKILLED);
    TCHECK_RC(pc_task_join(a, PT_LONG, NULL), PC_EKILLED);
}

/* A-B-C: C fails, B and A are killed; a trapping A gets EXIT(KILLED) from
 * B. */
static void
link_chain(int wa, int wb)
{
    struct end ea, eb, ec;
    pc_ref a, b, c;

    for (int trap = 0; trap < 2; trap++) {
        c = START_END(&ec, wa, false, PC_REF_NIL);
        b = START_END(&eb, wb, false, c);
        a = START_END(&ea, wa, trap, b);
        TCHECK_RC(pt_send(c, "fail"), PC_OK);
        TCHECK_RC(pc_task_join(c, PT_LONG, NULL), PC_EFAILED);
        TCHECK_RC(pc_task_join(b, PT_LONG, NULL), PC_EKILLED);
        if (trap) {
            TCHECK_RC(pt_send(a, "await-exit"), PC_OK);
            TCHECK_EQ(ANSWER("exit-seen", a), 1);
            TCHECK_EQ(ea.reason, PC_DOWN_KILLED);
            TCHECK(pc_ref_eq(ea.who, b));
            TCHECK(ea.sender_ok);
            TCHECK_RC(pt_send(a, "end"), PC_OK);
            TCHECK_RC(pc_task_join(a, PT_LONG, NULL), PC_OK);
        } else {
            TCHECK_RC(pc_task_join(a, PT_LONG, NULL), PC_EKILLED);
        }
    }
}

/* pc_unlink, from either end, stops the propagation. */
static void
link_unlink(int wa, int wb)
{
    struct end ea, eb;
    struct sentinel s;
    pc_ref a, b;

    /* A links and unlinks B; B fails; A lives */
    b = START_END(&eb, wb, false, PC_REF_NIL);
    a = START_END(&ea, wa, false, b);
    TCHECK_RC(pt_send_ref(a, "unlink", b), PC_OK);
    ANSWER("unlinked", a);
    start_pinger(&s, wb, b, a);
    TCHECK_RC(pt_send(b, "fail"), PC_OK);
    TCHECK_RC(pc_task_join(b, PT_LONG, NULL), PC_EFAILED);
    TCHECK_EQ(ANSWER("pong", a), 0);
    TCHECK_RC(pt_send(a, "end"), PC_OK);
    TCHECK_RC(pc_task_join(a, PT_LONG, NULL), PC_OK);

    /* A links B, B unlinks A; A fails; B lives */
    b = START_END(&eb, wb, false, PC_REF_NIL);
    a = START_END(&ea, wa, false, b);
    TCHECK_RC(pt_send_ref(b, "unlink", a), PC_OK);
    ANSWER("unlinked", b);
    start_pinger(&s, wa, a, b);
    TCHECK_RC(pt_send(a, "fail"), PC_OK);
    TCHECK_RC(pc_task_join(a, PT_LONG, NULL), PC_EFAILED);
    TCHECK_EQ(ANSWER("pong", b), 0);
    TCHECK_RC(pt_send(b, "end"), PC_OK);
    TCHECK_RC(pc_task_join(b, PT_LONG, NULL), PC_OK);
}

/* Linking to a gone proc: a non-trapping linker is killed, a trapping one
 * gets EXIT(NOPROC). */
static void
link_dead(int wa, int wb)
{
    struct end ea;
    pc_ref a, dead;

    dead = pt_spawn(null_task, NULL, wb, PC_TASK_JOINABLE);
    TCHECK_RC(pc_task_join(dead, PT_LONG, NULL), PC_OK);

    a = START_END(&ea, wa, false, dead); /* checks pc_link's PC_OK */
    TCHECK_RC(pc_task_join(a, PT_LONG, NULL), PC_EKILLED);

    a = START_END(&ea, wa, true, dead);
    TCHECK_RC(pt_send(a, "await-exit"), PC_OK);
    TCHECK_EQ(ANSWER("exit-seen", a), 1);
    TCHECK_EQ(ea.reason, PC_DOWN_NOPROC);
    TCHECK(pc_ref_eq(ea.who, dead));
    TCHECK(ea.stale_ok);
    TCHECK_RC(pt_send(a, "end"), PC_OK);
    TCHECK_RC(pc_task_join(a, PT_LONG, NULL), PC_OK);
}

static pc_msg *
links_main(void *arg)
{
    struct lctx *c = arg;

    link_fail(c->wa, c->wb);
    link_normal(c->wa, c->wb);
    link_killed(c->wa, c->wb);
    link_chain(c->wa, c->wb);
    link_unlink(c->wa, c->wb);
    link_dead(c->wa, c->wb);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* Links, with A on worker 1 and B on worker 0 (the driver's), then the
 * other way round. */
PT_WTEST(links)
static void
links(int W)
{
    struct lctx c;

    memset(&c, 0, sizeof c);
    c.wa = 1;
    c.wb = 0;
    PT_RUN_TASK(W, links_main, &c, &c.done, 1);
    memset(&c, 0, sizeof c);
    c.wa = 0;
    c.wb = 1;
    PT_RUN_TASK(W, links_main, &c, &c.done, 1);
}

/* ---- links with light actors --------------------------------------------- */

struct alink {
    pc_ref main;
    bool trap;
    int link_rc;
    int nexits;
    pc_down_reason reason;
    pc_ref who;
    atomic_int fini;
};

static int
linking_actor(void *state, pc_msg *msg)
{
    struct alink *s = state;
    pc_down d;

    if (pc_msg_is(msg, "link")) {
        TCHECK_RC(pc_trap_exits(s->trap), PC_OK);
        s->link_rc = pc_link(pt_msg_ref(msg));
        TCHECK_RC(pt_send(s->main, "linked"), PC_OK);
    } else if (pc_msg_is(msg, PC_MSG_EXIT)) {
        TCHECK_RC(pc_down_parse(msg, &d), PC_OK);
        s->nexits++;
        s->reason = d.reason;
        s->who = d.who;
        TCHECK_RC(pt_send(s->main, "actor-exit"), PC_OK);
    } else if (pc_msg_is(msg, "stop")) {
        return PC_ACTOR_STOP;
    }
    return PC_ACTOR_CONTINUE;
}

static void
alink_fini(void *state)
{
    struct alink *s = state;

    atomic_fetch_add(&s->fini, 1);
}

static pc_msg *
actor_links_main(void *arg)
{
    struct mctx *c = arg;
    pc_spawn_opts o = pt_on(1, PC_TASK_JOINABLE);
    struct alink s;
    struct end eb;
    pc_ref a, b;

    for (int trap = 0; trap < 2; trap++) {
        memset(&s, 0, sizeof s);
        s.main = pc_self();
        s.trap = trap;
        b = START_END(&eb, 0, false, PC_REF_NIL);
        TCHECK_RC(pc_actor_spawn(linking_actor, &s, alink_fini, &o, &a), PC_OK);
        TCHECK_RC(pt_send_ref(a, "link", b), PC_OK);
        RECV_FROM("linked", a);
        TCHECK_RC(s.link_rc, PC_OK);
        TCHECK_RC(pt_send(b, "fail"), PC_OK);
        TCHECK_RC(pc_task_join(b, PT_LONG, NULL), PC_EFAILED);
        if (trap) {
            RECV_FROM("actor-exit", a);
            TCHECK_EQ(s.nexits, 1);
            TCHECK_EQ(s.reason, PC_DOWN_ERROR);
            TCHECK(pc_ref_eq(s.who, b));
            TCHECK_RC(pt_send(a, "stop"), PC_OK);
            TCHECK_RC(pc_task_join(a, PT_LONG, NULL), PC_OK);
        } else {
            TCHECK_RC(pc_task_join(a, PT_LONG, NULL), PC_EKILLED);
        }
        TCHECK_EQ(atomic_load(&s.fini), 1);
    }

    /* the actor's end reaches a linked task: terminated actor kills it */
    memset(&s, 0, sizeof s);
    s.main = pc_self();
    TCHECK_RC(pc_actor_spawn(linking_actor, &s, alink_fini, &o, &a), PC_OK);
    b = START_END(&eb, 0, false, a);
    TCHECK_RC(pc_task_terminate(a), PC_OK);
    TCHECK_RC(pc_task_join(b, PT_LONG, NULL), PC_EKILLED);
    TCHECK_RC(pc_task_join(a, PT_LONG, NULL), PC_EKILLED);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

/* A light actor linked with a task: killed by its failure, or gets the
 * EXIT when trapping; a terminated actor kills its linked task. */
PT_WTEST(links_actors)
static void
links_actors(int W)
{
    struct mctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, actor_links_main, &c, &c.done, 1);
}

/* ---- link errors --------------------------------------------------------- */

static pc_msg *
link_errors_task(void *arg)
{
    struct mctx *c = arg;

    TCHECK_RC(pc_link(pc_self()), PC_EINVAL);
    TCHECK_RC(pc_link(foreign_ref()), PC_EUNREACH);
    TCHECK_RC(pc_trap_exits(true), PC_OK);
    TCHECK_RC(pc_trap_exits(false), PC_OK);
    /* still alive and not linked to itself: a self-link would not kill,
     * but nothing may arrive either */
    TCHECK_EQ(pc_mailbox_depth(), 0);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

static void
link_errors_outside(void)
{
    pc_ref any = {pc_node_id(), (1ull << 32) | 1};

    TCHECK_RC(pc_link(any), PC_EPERM);
    TCHECK_RC(pc_unlink(any), PC_EPERM);
    TCHECK_RC(pc_trap_exits(true), PC_EPERM);
}

/* pc_link(self): PC_EINVAL; another node: PC_EUNREACH; from main:
 * PC_EPERM. */
PT_WTEST(link_errors)
static void
link_errors(int W)
{
    struct mctx c;

    memset(&c, 0, sizeof c);
    link_errors_outside(); /* no node */
    PT_START(W);
    link_errors_outside();
    {
        pc_spawn_opts o = pt_on(1, 0);
        CU_ASSERT_EQUAL(pc_spawn(link_errors_task, &c, &o, NULL), PC_OK);
    }
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&c.done), 1);
}

/* ---- pc_down_parse robustness -------------------------------------------- */

/* Build a DOWN payload by hand in the documented layout (monitor.c):
 * u8 version, u8 reason, u16 0, u64 node, u64 id, u16 type length n,
 * n type bytes, NUL, u32 value length, value bytes. Returns its length. */
static size_t
build(unsigned char *buf, int ver, int reason, pc_ref who, const char *type,
      size_t tlen_field, const void *val, size_t vlen, size_t vlen_field)
{
    size_t tlen = strlen(type), n = 0;

    buf[n++] = (unsigned char)ver;
    buf[n++] = (unsigned char)reason;
    buf[n++] = 0;
    buf[n++] = 0;
    for (int i = 0; i < 8; i++)
        buf[n++] = (unsigned char)(who.node >> (8 * i));
    for (int i = 0; i < 8; i++)
        buf[n++] = (unsigned char)(who.id >> (8 * i));
    buf[n++] = (unsigned char)tlen_field;
    buf[n++] = (unsigned char)(tlen_field >> 8);
    memcpy(buf + n, type, tlen);
    n += tlen;
    buf[n++] = 0;
    for (int i = 0; i < 4; i++)
        buf[n++] = (unsigned char)(vlen_field >> (8 * i));
    if (vlen)
        memcpy(buf + n, val, vlen);
    return n + vlen;
}

/* The message parsed last: *d points into it, so it lives until the next
 * parse_bytes(NULL, …) or parse_bytes call. */
static pc_msg *parsed_last;

static int
parse_bytes(const char *type, const void *p, size_t len, pc_down *d)
{
    pc_msg_free(&parsed_last);
    if (!type)
        return PC_OK;
    CU_ASSERT_EQUAL_FATAL(pc_msg_new(&parsed_last, type, p, len), PC_OK);
    return pc_down_parse(parsed_last, d);
}

/* When a parse succeeds, what it points at lies inside the payload. */
static void
check_bounds(const pc_msg *m, const pc_down *d)
{
    size_t len = 0;
    const unsigned char *p = pc_msg_data(m, &len);
    const unsigned char *v = d->value;

    CU_ASSERT(d->error != NULL);
    CU_ASSERT(d->value_len <= len);
    if (d->value_len)
        CU_ASSERT(v >= p && v + d->value_len <= p + len);
    if (d->value_type) {
        const unsigned char *t = (const unsigned char *)d->value_type;
        CU_ASSERT(t >= p && t + strlen(d->value_type) < p + len);
    }
    if (d->reason == PC_DOWN_ERROR)
        CU_ASSERT(strlen(d->error) == d->value_len);
}

PT_TEST(down_parse_robust)
static void
down_parse_robust(void)
{
    unsigned char buf[512], mut[512];
    const pc_ref who = {0x1122334455667788ull, 0x0000000500000007ull};
    pc_down d;
    pc_msg *m = NULL;
    size_t n, full;

    /* the hand-made layout is the real one: valid payloads parse */
    full = build(buf, 1, PC_DOWN_NORMAL, who, "abc", 3, "wxyz", 4, 4);
    CU_ASSERT_EQUAL(parse_bytes(PC_MSG_DOWN, buf, full, &d), PC_OK);
    CU_ASSERT(pc_ref_eq(d.who, who));
    CU_ASSERT_EQUAL(d.reason, PC_DOWN_NORMAL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d.value_type);
    CU_ASSERT_STRING_EQUAL(d.value_type, "abc");
    CU_ASSERT_STRING_EQUAL(d.error, "");
    CU_ASSERT_EQUAL_FATAL(d.value_len, 4);
    CU_ASSERT(memcmp(d.value, "wxyz", 4) == 0);
    CU_ASSERT_EQUAL(parse_bytes(PC_MSG_EXIT, buf, full, &d), PC_OK);
    CU_ASSERT(pc_ref_eq(d.who, who));
    n = build(buf, 1, PC_DOWN_ERROR, who, "", 0, "boom", 4, 4);
    CU_ASSERT_EQUAL(parse_bytes(PC_MSG_DOWN, buf, n, &d), PC_OK);
    CU_ASSERT_STRING_EQUAL(d.error, "boom");
    CU_ASSERT_PTR_NULL(d.value_type);
    for (int r = PC_DOWN_NORMAL; r <= PC_DOWN_NOPROC; r++) {
        n = build(buf, 1, r, who, "", 0, NULL, 0, 0);
        CU_ASSERT_EQUAL(parse_bytes(PC_MSG_DOWN, buf, n, &d), PC_OK);
        CU_ASSERT_EQUAL((int)d.reason, r);
        CU_ASSERT_PTR_NULL(d.value_type);
        CU_ASSERT_STRING_EQUAL(d.error, "");
    }

    /* not a DOWN or EXIT, NULL arguments */
    full = build(buf, 1, PC_DOWN_NORMAL, who, "abc", 3, "wxyz", 4, 4);
    CU_ASSERT_EQUAL(parse_bytes("picos.downx", buf, full, &d), PC_EINVAL);
    CU_ASSERT_EQUAL(parse_bytes("picos.dow", buf, full, &d), PC_EINVAL);
    CU_ASSERT_EQUAL(parse_bytes(PC_MSG_ERROR, buf, full, &d), PC_EINVAL);
    CU_ASSERT_EQUAL(parse_bytes("x", buf, full, &d), PC_EINVAL);
    CU_ASSERT_EQUAL(pc_down_parse(NULL, &d), PC_EINVAL);
    CU_ASSERT_EQUAL_FATAL(pc_msg_new(&m, PC_MSG_DOWN, buf, full), PC_OK);
    CU_ASSERT_EQUAL(pc_down_parse(m, NULL), PC_EINVAL);
    pc_msg_free(&m);

    /* every truncation (the header, the type, the value), and trailing
     * bytes */
    for (size_t len = 0; len < full; len++)
        CU_ASSERT_EQUAL(parse_bytes(PC_MSG_DOWN, buf, len, &d), PC_EINVAL);
    memset(buf + full, 0, 8);
    for (size_t len = full + 1; len <= full + 8; len++)
        CU_ASSERT_EQUAL(parse_bytes(PC_MSG_DOWN, buf, len, &d), PC_EINVAL);
    CU_ASSERT_EQUAL(parse_bytes(PC_MSG_DOWN, NULL, 0, &d), PC_EINVAL);

    /* type length larger than the payload (or than what is there) */
    static const size_t tl[] = {4, 5, 10, 200, 1000, 0xffff};
    for (size_t i = 0; i < sizeof tl / sizeof tl[0]; i++) {
        n = build(buf, 1, PC_DOWN_NORMAL, who, "abc", tl[i], "wxyz", 4, 4);
        CU_ASSERT_EQUAL(parse_bytes(PC_MSG_DOWN, buf, n, &d), PC_EINVAL);
    }
    /* type length shorter than the type: the NUL is not where it says */
    n = build(buf, 1, PC_DOWN_NORMAL, who, "abc", 2, "wxyz", 4, 4);
    CU_ASSERT_EQUAL(parse_bytes(PC_MSG_DOWN, buf, n, &d), PC_EINVAL);

    /* value length that doesn't match */
    static const size_t vl[] = {0,          3,          5,         100,
                                0x7fffffff, 0x80000000, 0xffffffff};
    for (size_t i = 0; i < sizeof vl / sizeof vl[0]; i++) {
        n = build(buf, 1, PC_DOWN_NORMAL, who, "abc", 3, "wxyz", 4, vl[i]);
        CU_ASSERT_EQUAL(parse_bytes(PC_MSG_DOWN, buf, n, &d), PC_EINVAL);
        n = build(buf, 1, PC_DOWN_ERROR, who, "", 0, "boom", 4, vl[i]);
        CU_ASSERT_EQUAL(parse_bytes(PC_MSG_DOWN, buf, n, &d), PC_EINVAL);
    }

    /* version and reason */
    static const int ver[] = {0, 2, 3, 0x81, 0xff};
    for (size_t i = 0; i < sizeof ver / sizeof ver[0]; i++) {
        n = build(buf, ver[i], PC_DOWN_NORMAL, who, "abc", 3, "wxyz", 4, 4);
        CU_ASSERT_EQUAL(parse_bytes(PC_MSG_DOWN, buf, n, &d), PC_EINVAL);
    }
    static const int rs[] = {PC_DOWN_NOPROC + 1, 6, 0x7f, 0x80, 0xff};
    for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++) {
        n = build(buf, 1, rs[i], who, "", 0, NULL, 0, 0);
        CU_ASSERT_EQUAL(parse_bytes(PC_MSG_DOWN, buf, n, &d), PC_EINVAL);
    }

    /* an error reason must read as a C string: no NUL inside */
    n = build(buf, 1, PC_DOWN_ERROR, who, "", 0, "bo\0m", 4, 4);
    CU_ASSERT_EQUAL(parse_bytes(PC_MSG_DOWN, buf, n, &d), PC_EINVAL);

    /* every single-byte change of a valid payload: rejected, or accepted
     * with everything it points at inside the message (ASan watches the
     * reads) */
    full = build(buf, 1, PC_DOWN_NORMAL, who, "abc", 3, "wxyz", 4, 4);
    static const unsigned char vals[] = {0, 1, 2, 3, 4, 5, 0x7f, 0x80, 0xff};
    for (size_t pos = 0; pos < full; pos++) {
        for (size_t k = 0; k < sizeof vals; k++) {
            memcpy(mut, buf, full);
            mut[pos] = vals[k];
            CU_ASSERT_EQUAL_FATAL(pc_msg_new(&m, PC_MSG_DOWN, mut, full),
                                  PC_OK);
            if (pc_down_parse(m, &d) == PC_OK)
                check_bounds(m, &d);
            pc_msg_free(&m);
        }
    }
    /* the same on an error payload, also cut short by each length */
    full = build(buf, 1, PC_DOWN_ERROR, who, "", 0, "boom", 4, 4);
    for (size_t pos = 0; pos < full; pos++) {
        for (size_t k = 0; k < sizeof vals; k++) {
            memcpy(mut, buf, full);
            mut[pos] = vals[k];
            size_t lens[2] = {pos + 1, full};
            for (int j = 0; j < 2; j++) {
                CU_ASSERT_EQUAL_FATAL(pc_msg_new(&m, PC_MSG_DOWN, mut, lens[j]),
                                      PC_OK);
                if (pc_down_parse(m, &d) == PC_OK)
                    check_bounds(m, &d);
                pc_msg_free(&m);
            }
        }
    }
    parse_bytes(NULL, NULL, 0, &d);
}

PT_MAIN("monitor", PT_WENTRY(down_reasons), PT_WENTRY(down_self_terminate),
        PT_WENTRY(down_actors), PT_WENTRY(many_to_many), PT_WENTRY(demonitor),
        PT_WENTRY(monitor_from_main), PT_WENTRY(links), PT_WENTRY(links_actors),
        PT_WENTRY(link_errors), PT_ENTRY(down_parse_robust))
