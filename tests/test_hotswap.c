/* tests/test_hotswap.c — hot swap: accept, decline, postponement until the
 * task is swappable, stale offers, the mailbox and ref kept, swaps across
 * workers, and swapping whole modules loaded with dlopen().
 */
#include "picos/hotswap.h"

#include "testutil.h"

struct hctx {
    pc_ref driver;
    atomic_int done;
};

static pc_msg *v2(void *arg);

/* Answers "get" with `version`; "enable" makes it swappable; "quit" ends
 * it. What it does with an offer depends on `accept`. */
static pc_msg *
serve(const char *version, bool accept, bool swappable)
{
    pc_msg *m, *kept = NULL;

    pc_hot_swappable(swappable);
    while (pc_recv(&m, -1) == PC_OK) {
        if (pc_msg_is(m, PC_MSG_HOTSWAP)) {
            if (accept) {
                pc_hot_swap_accept(&m);
                TCHECK(!"pc_hot_swap_accept returned");
            }
            pc_task_fn fn = NULL;
            TCHECK_RC(pc_hot_swap_offered(m, &fn, NULL), PC_OK);
            TCHECK(fn == v2); /* what this test always offers */
            /* declining: keep the first offer, show the others to the
             * driver (the sender is the task that asked) */
            if (!kept) {
                kept = m;
                m = NULL;
                pt_send(pc_msg_sender(kept), "declined");
            } else {
                pc_send(pc_msg_sender(m), &m);
            }
        } else if (pc_msg_is(m, "get")) {
            pc_send_data(pc_msg_sender(m), "version", version, strlen(version));
        } else if (pc_msg_is(m, "enable")) {
            pc_hot_swappable(true);
        } else if (pc_msg_is(m, "try")) {
            /* a newer request came since: the kept offer is refused */
            TCHECK(kept != NULL);
            TCHECK_RC(pc_hot_swap_accept(&kept), PC_EINVAL);
            TCHECK(kept != NULL);
            pc_msg_free(&kept);
            pt_send(pc_msg_sender(m), "tried");
        } else if (pc_msg_is(m, "quit")) {
            pc_msg_free(&m);
            pc_msg_free(&kept);
            return NULL;
        }
        pc_msg_free(&m);
    }
    return NULL;
}

static pc_msg *
v1(void *arg)
{
    (void)arg;
    return serve("v1", true, true);
}

static pc_msg *
v1_later(void *arg)
{
    (void)arg;
    return serve("v1", true, false);
}

static pc_msg *
v1_declines(void *arg)
{
    (void)arg;
    return serve("v1", false, true);
}

static pc_msg *
v2(void *arg)
{
    struct hctx *c = arg;

    /* same ref as before the swap */
    pt_send_ref(c->driver, "v2-self", pc_self());
    return serve("v2", true, true);
}

/* Send "get" to t and check the version it answers with. */
static void
expect_version(pc_ref t, const char *want)
{
    pc_msg *m = NULL;

    TCHECK_RC(pt_send(t, "get"), PC_OK);
    TCHECK_RC(pc_recv_type("version", &m, PT_LONG), PC_OK);
    if (m)
        TCHECK_STR(pc_msg_str(m), want);
    pc_msg_free(&m);
}

static pc_ref
expect_ref(const char *type)
{
    pc_msg *m = NULL;
    pc_ref r = PC_REF_NIL;
    size_t len = 0;

    TCHECK_RC(pc_recv_type(type, &m, PT_LONG), PC_OK);
    if (m) {
        const void *d = pc_msg_data(m, &len);
        if (len == sizeof r)
            memcpy(&r, d, sizeof r);
    }
    pc_msg_free(&m);
    return r;
}

static pc_msg *
swap_main(void *arg)
{
    struct hctx *c = arg;
    pc_msg *m = NULL;

    c->driver = pc_self();
    /* accepted: the queued "get"s are answered by the new code */
    pc_ref a = pt_spawn(v1, c, 1, 0);
    TCHECK_RC(pc_monitor(pc_self(), a), PC_OK);
    expect_version(a, "v1");
    TCHECK_RC(pc_hot_swap(a, v2, c), PC_OK);
    TCHECK_RC(pt_send(a, "get"), PC_OK);
    TCHECK_RC(pt_send(a, "get"), PC_OK);
    TCHECK(pc_ref_eq(expect_ref("v2-self"), a));
    for (int i = 0; i < 2; i++) {
        TCHECK_RC(pc_recv_type("version", &m, PT_LONG), PC_OK);
        if (m)
            TCHECK_STR(pc_msg_str(m), "v2");
        pc_msg_free(&m);
    }
    TCHECK(pc_alive(a)); /* no DOWN: it was not an end */
    TCHECK_RC(pc_recv_type(PC_MSG_DOWN, &m, 0), PC_ETIMEDOUT);

    /* postponed until the task is swappable */
    pc_ref b = pt_spawn(v1_later, c, 1, 0);
    TCHECK_RC(pc_hot_swap(b, v2, c), PC_OK);
    expect_version(b, "v1");
    expect_version(b, "v1");
    TCHECK_RC(pt_send(b, "enable"), PC_OK);
    TCHECK(pc_ref_eq(expect_ref("v2-self"), b));
    expect_version(b, "v2");

    /* declined, then a newer request: the old offer can't be used */
    pc_ref d = pt_spawn(v1_declines, c, 1, 0);
    TCHECK_RC(pc_hot_swap(d, v2, c), PC_OK);
    TCHECK_RC(pc_recv_type("declined", &m, PT_LONG), PC_OK);
    pc_msg_free(&m);
    expect_version(d, "v1");                 /* declined: still the old code */
    TCHECK_RC(pc_hot_swap(d, v2, c), PC_OK); /* a newer request... */
    TCHECK_RC(pc_recv_type(PC_MSG_HOTSWAP, &m, PT_LONG), PC_OK);
    /* d handed the newer offer back: it names d, who sent it here */
    TCHECK(m && pc_ref_eq(pc_msg_sender(m), d));
    pc_msg_free(&m);
    TCHECK_RC(pt_send(d, "try"), PC_OK); /* ...so the kept one is refused */
    TCHECK_RC(pc_recv_type("tried", &m, PT_LONG), PC_OK);
    pc_msg_free(&m);
    expect_version(d, "v1");

    /* not for light actors, nor a NULL function, nor a stale ref */
    TCHECK_RC(pc_hot_swap(a, NULL, NULL), PC_EINVAL);
    TCHECK_RC(pc_hot_swap_accept(&m), PC_EINVAL);
    TCHECK_RC(pt_send(a, "quit"), PC_OK);
    TCHECK_RC(pt_send(b, "quit"), PC_OK);
    TCHECK_RC(pt_send(d, "quit"), PC_OK);
    TCHECK_RC(pc_recv_type(PC_MSG_DOWN, &m, PT_LONG), PC_OK);
    pc_msg_free(&m);
    TCHECK_RC(pc_hot_swap(a, v2, c), PC_ENOENT);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(hot_swap)
static void
hot_swap(int W)
{
    struct hctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, swap_main, &c, &c.done, 1);
}

/* ---- modules ------------------------------------------------------------------ */

#define NMOD 3

static int
actor_stop(void *state, pc_msg *m)
{
    (void)state;
    (void)m;
    return PC_ACTOR_STOP;
}

static pc_msg *
module_main(void *arg)
{
    struct hctx *c = arg;
    static const char *const names[] = {"hs_worker"};
    static const char *const missing[] = {"no_such_fn"};
    pc_module *m1 = NULL, *m2 = NULL, *bad = NULL;
    pc_ref t[NMOD], act;

    c->driver = pc_self();
    TCHECK_RC(pc_module_load(HS_V1, &m1), PC_OK);
    TCHECK_RC(pc_module_load(HS_V2, &m2), PC_OK);
    TCHECK_RC(pc_module_load("/nonexistent/picos-module.so", &bad), PC_ENOENT);
    TCHECK(bad == NULL);
    if (!m1 || !m2)
        goto out;
    TCHECK(pc_module_fn(m1, "hs_worker") != pc_module_fn(m2, "hs_worker"));
    TCHECK(pc_module_fn(m1, "no_such_fn") == NULL);
    for (int i = 0; i < NMOD; i++) {
        t[i] = pt_spawn(pc_module_fn(m1, "hs_worker"), NULL, i, 0);
        expect_version(t[i], "v1");
    }
    TCHECK_RC(pc_hot_swap_module(m1, m2, missing, 1), PC_ENOENT);
    TCHECK_RC(pc_hot_swap_module(m1, m2, names, 1), PC_OK);
    for (int i = 0; i < NMOD; i++)
        expect_version(t[i], "v2");
    TCHECK_RC(pc_actor_spawn(actor_stop, NULL, NULL, NULL, &act), PC_OK);
    TCHECK_RC(pc_hot_swap(act, pc_module_fn(m2, "hs_worker"), NULL),
              PC_ENOTSUP);
    TCHECK_RC(pt_send(act, "stop"), PC_OK);
    for (int i = 0; i < NMOD; i++) {
        TCHECK_RC(pc_monitor(pc_self(), t[i]), PC_OK);
        TCHECK_RC(pt_send(t[i], "quit"), PC_OK);
    }
    for (int i = 0; i < NMOD; i++) { /* all off the modules' code */
        pc_msg *m = NULL;
        TCHECK_RC(pc_recv_type(PC_MSG_DOWN, &m, PT_LONG), PC_OK);
        pc_msg_free(&m);
    }
out:
    pc_module_free(&m1);
    pc_module_free(&m2);
    TCHECK(m1 == NULL && m2 == NULL);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(module_swap)
static void
module_swap(int W)
{
    struct hctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, module_main, &c, &c.done, 1);
}

PT_MAIN("hotswap", PT_WENTRY(hot_swap), PT_WENTRY(module_swap))
