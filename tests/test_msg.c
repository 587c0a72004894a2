/* tests/test_msg.c — messages: payload, type, refcount, sender, protobuf.
 *
 * Leaks and double frees are left to ASan/LSan: every test drops every
 * reference it takes, so a runtime that leaks or frees early shows up there.
 * The protobuf cases use tests/test.proto (picos.test.Ping), compiled by
 * protoc-c into the build dir.
 */
#include "test.pb-c.h"
#include "testutil.h"

PT_TEST(msg_basic)
static void
msg_basic(void)
{
    char src[] = "hello";
    pc_msg *m = NULL;
    size_t len = 99;
    const char *d;

    CU_ASSERT_EQUAL_FATAL(pc_msg_new(&m, "t.greet", src, 5), PC_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    src[0] = 'J'; /* the payload is a copy */
    CU_ASSERT_STRING_EQUAL(pc_msg_type(m), "t.greet");
    CU_ASSERT(pc_msg_is(m, "t.greet"));
    CU_ASSERT(!pc_msg_is(m, "t.gree"));
    CU_ASSERT(!pc_msg_is(m, "t.greets"));
    CU_ASSERT(!pc_msg_is(m, ""));
    d = pc_msg_data(m, &len);
    CU_ASSERT_EQUAL(len, 5);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_EQUAL(memcmp(d, "hello", 5), 0);
    CU_ASSERT_EQUAL(d[5], '\0'); /* stored with a NUL after it */
    CU_ASSERT_STRING_EQUAL(pc_msg_str(m), "hello");
    CU_ASSERT_PTR_NULL(pc_msg_pb(m));
    CU_ASSERT(pc_ref_is_nil(pc_msg_sender(m)));
    pc_msg_free(&m);
    CU_ASSERT_PTR_NULL(m);
}

PT_TEST(msg_binary_payload)
static void
msg_binary_payload(void)
{
    unsigned char bin[300];
    pc_msg *m = NULL;
    size_t len = 0;
    const unsigned char *d;

    for (size_t i = 0; i < sizeof bin; i++)
        bin[i] = (unsigned char)(i * 7); /* includes NUL bytes */
    CU_ASSERT_EQUAL_FATAL(pc_msg_new(&m, "bin", bin, sizeof bin), PC_OK);
    d = pc_msg_data(m, &len);
    CU_ASSERT_EQUAL(len, sizeof bin);
    CU_ASSERT_EQUAL(memcmp(d, bin, sizeof bin), 0);
    CU_ASSERT_EQUAL(d[sizeof bin], 0);
    pc_msg_free(&m);
}

PT_TEST(msg_empty)
static void
msg_empty(void)
{
    pc_msg *m = NULL;
    size_t len = 99;

    CU_ASSERT_EQUAL_FATAL(pc_msg_new(&m, "empty", NULL, 0), PC_OK);
    pc_msg_data(m, &len);
    CU_ASSERT_EQUAL(len, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pc_msg_str(m));
    CU_ASSERT_STRING_EQUAL(pc_msg_str(m), "");
    pc_msg_free(&m);

    /* NULL type means "". */
    CU_ASSERT_EQUAL_FATAL(pc_msg_new(&m, NULL, "x", 1), PC_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pc_msg_type(m));
    CU_ASSERT_STRING_EQUAL(pc_msg_type(m), "");
    CU_ASSERT(pc_msg_is(m, ""));
    CU_ASSERT_STRING_EQUAL(pc_msg_str(m), "x");
    pc_msg_free(&m);

    /* Non-NULL data with len 0 is fine too. */
    CU_ASSERT_EQUAL_FATAL(pc_msg_new(&m, "e2", "ignored", 0), PC_OK);
    len = 99;
    pc_msg_data(m, &len);
    CU_ASSERT_EQUAL(len, 0);
    CU_ASSERT_STRING_EQUAL(pc_msg_str(m), "");
    pc_msg_free(&m);
}

PT_TEST(msg_new_str)
static void
msg_new_str(void)
{
    pc_msg *m = NULL;
    size_t len = 0;

    CU_ASSERT_EQUAL_FATAL(pc_msg_new_str(&m, "s", "some text"), PC_OK);
    pc_msg_data(m, &len);
    CU_ASSERT_EQUAL(len, strlen("some text")); /* NUL not counted */
    CU_ASSERT_STRING_EQUAL(pc_msg_str(m), "some text");
    CU_ASSERT_STRING_EQUAL(pc_msg_type(m), "s");
    pc_msg_free(&m);

    CU_ASSERT_EQUAL_FATAL(pc_msg_new_str(&m, "s", ""), PC_OK);
    pc_msg_data(m, &len);
    CU_ASSERT_EQUAL(len, 0);
    CU_ASSERT_STRING_EQUAL(pc_msg_str(m), "");
    pc_msg_free(&m);
}

PT_TEST(msg_type_length)
static void
msg_type_length(void)
{
    char name[PC_MSG_TYPE_MAX + 2];
    pc_msg *m = NULL;

    memset(name, 'a', sizeof name);
    name[PC_MSG_TYPE_MAX] = '\0'; /* exactly the maximum */
    CU_ASSERT_EQUAL_FATAL(pc_msg_new(&m, name, "x", 1), PC_OK);
    CU_ASSERT_STRING_EQUAL(pc_msg_type(m), name);
    CU_ASSERT(pc_msg_is(m, name));
    pc_msg_free(&m);

    name[PC_MSG_TYPE_MAX] = 'a';
    name[PC_MSG_TYPE_MAX + 1] = '\0'; /* one too long */
    m = NULL;
    CU_ASSERT_EQUAL(pc_msg_new(&m, name, "x", 1), PC_EINVAL);
    pc_msg_free(&m); /* whatever *out holds must be freeable (NULL) */
    CU_ASSERT_EQUAL(pc_msg_new_str(&m, name, "x"), PC_EINVAL);
    pc_msg_free(&m);
}

/* pc_send_data() with a literal type goes through pc_send_data_n() with
 * the length the compiler knows; the other forms through the function:
 * every one must carry the same type and payload. */
static pc_msg *
send_forms_task(void *arg)
{
    char longtype[PC_MSG_TYPE_MAX + 2];
    const char *var = arg; /* not a constant to the compiler */
    pc_err (*fn)(pc_ref, const char *, const void *, size_t) = &pc_send_data;
    const char *want[] = {"t.lit", var, "t.ptr", "t.n", NULL, var};
    pc_msg *m = NULL;

    TCHECK_RC(pc_send_data(pc_self(), "t.lit", "1", 1), PC_OK);
    TCHECK_RC(pc_send_data(pc_self(), var, "2", 1), PC_OK);
    TCHECK_RC(fn(pc_self(), "t.ptr", "3", 1), PC_OK);
    TCHECK_RC(pc_send_data_n(pc_self(), "t.n", 3, "4", 1), PC_OK);
    TCHECK_RC(pc_send_data(pc_self(), NULL, "5", 1), PC_OK);
    TCHECK_RC((pc_send_data)(pc_self(), var, "6", 1), PC_OK);
    memset(longtype, 'x', sizeof longtype - 1);
    longtype[sizeof longtype - 1] = '\0';
    TCHECK_RC(pc_send_data(pc_self(), longtype, "7", 1), PC_EINVAL);
    TCHECK_RC(pc_send_data_n(pc_self(), longtype, sizeof longtype - 1, "7", 1),
              PC_EINVAL);
    for (int i = 0; i < 6; i++) {
        char d[2] = {(char)('1' + i), 0};
        size_t len = 0;
        const char *got;
        TCHECK_RC(pc_recv(&m, PT_LONG), PC_OK);
        got = m ? pc_msg_data(m, &len) : NULL;
        TCHECK(len == 1 && got && got[0] == d[0]);
        TCHECK_STR(m ? pc_msg_type(m) : "?", want[i] ? want[i] : "");
        pc_msg_free(&m);
    }
    TCHECK_RC(pc_recv(&m, 0), PC_ETIMEDOUT); /* the long types sent nothing */
    return NULL;
}

PT_TEST(send_data_forms)
static void
send_data_forms(void)
{
    static char var[] = "t.var";
    PT_START(1);
    CU_ASSERT_EQUAL(pc_spawn(send_forms_task, var, NULL, NULL), PC_OK);
    PT_RUN();
}

PT_TEST(msg_refcount)
static void
msg_refcount(void)
{
    pc_msg *m = NULL, *m2, *m3;
    pc_msg *none = NULL;

    CU_ASSERT_EQUAL_FATAL(pc_msg_new_str(&m, "rc", "shared"), PC_OK);
    m2 = pc_msg_ref(m);
    CU_ASSERT_PTR_EQUAL(m2, m);
    m3 = pc_msg_ref(m2);
    CU_ASSERT_PTR_EQUAL(m3, m);
    pc_msg_free(&m);
    CU_ASSERT_PTR_NULL(m);
    CU_ASSERT_STRING_EQUAL(pc_msg_str(m2), "shared"); /* still alive */
    pc_msg_free(&m2);
    CU_ASSERT_PTR_NULL(m2);
    CU_ASSERT_STRING_EQUAL(pc_msg_str(m3), "shared");
    CU_ASSERT_STRING_EQUAL(pc_msg_type(m3), "rc");
    pc_msg_free(&m3); /* the last reference: freed (ASan checks) */
    CU_ASSERT_PTR_NULL(m3);

    pc_msg_free(NULL);
    pc_msg_free(&none);
    CU_ASSERT_PTR_NULL(none);
}

/* References dropped concurrently by threads: exactly one frees. */
#define RC_THREADS 4
#define RC_MSGS 2000

static pc_msg *rc_msgs[RC_MSGS];

static void *
rc_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < RC_MSGS; i++) {
        pc_msg *m = rc_msgs[i];
        pc_msg *extra = pc_msg_ref(m);
        if (strcmp(pc_msg_str(m), "concurrent") != 0)
            TCHECK(!"payload changed");
        pc_msg_free(&extra);
        pc_msg_free(&m);
    }
    return NULL;
}

PT_TEST(msg_refcount_threads)
static void
msg_refcount_threads(void)
{
    pthread_t th[RC_THREADS];

    for (int i = 0; i < RC_MSGS; i++) {
        CU_ASSERT_EQUAL_FATAL(pc_msg_new_str(&rc_msgs[i], "c", "concurrent"),
                              PC_OK);
        for (int t = 1; t < RC_THREADS; t++)
            pc_msg_ref(rc_msgs[i]); /* one reference per thread */
    }
    for (int t = 0; t < RC_THREADS; t++)
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[t], NULL, rc_thread, NULL), 0);
    for (int t = 0; t < RC_THREADS; t++)
        pthread_join(th[t], NULL);
    pt_flush();
}

/* ---- sender ----------------------------------------------------------------- */

struct sender_ctx {
    pc_ref self_seen;
    pc_ref sender;
    pc_ref got_sender; /* sender of a message received from another task */
    pc_ref peer;
    atomic_int done;
};

static pc_msg *
sender_peer(void *arg)
{
    struct sender_ctx *c = arg;
    pc_msg *m = NULL;

    TCHECK_RC(pc_recv(&m, PT_LONG), PC_OK);
    if (m) {
        c->got_sender = pc_msg_sender(m);
        pc_msg_free(&m);
    }
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

static pc_msg *
sender_task(void *arg)
{
    struct sender_ctx *c = arg;
    pc_msg *m = NULL;

    c->self_seen = pc_self();
    TCHECK_RC(pc_msg_new(&m, "from.task", "x", 1), PC_OK);
    if (m) {
        c->sender = pc_msg_sender(m);
        TCHECK_RC(pc_send(c->peer, &m), PC_OK);
        TCHECK(m == NULL);
        pc_msg_free(&m);
    }
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(msg_sender)
static void
msg_sender(int W)
{
    struct sender_ctx c;
    pc_msg *m = NULL;
    pc_spawn_opts o;

    memset(&c, 0, sizeof c);

    /* No node: nil. */
    CU_ASSERT_EQUAL_FATAL(pc_msg_new(&m, "main", NULL, 0), PC_OK);
    CU_ASSERT(pc_ref_is_nil(pc_msg_sender(m)));
    pc_msg_free(&m);

    PT_START(W);
    /* Node running, but the main thread is no task: still nil. */
    CU_ASSERT_EQUAL_FATAL(pc_msg_new(&m, "main", NULL, 0), PC_OK);
    CU_ASSERT(pc_ref_is_nil(pc_msg_sender(m)));
    pc_msg_free(&m);

    o = pt_on(1, 0);
    CU_ASSERT_EQUAL(pc_spawn(sender_peer, &c, &o, &c.peer), PC_OK);
    o = pt_on(0, 0);
    CU_ASSERT_EQUAL(pc_spawn(sender_task, &c, &o, NULL), PC_OK);
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&c.done), 2);
    CU_ASSERT(!pc_ref_is_nil(c.self_seen));
    CU_ASSERT(pc_ref_eq(c.sender, c.self_seen));
    CU_ASSERT(pc_ref_eq(c.got_sender, c.self_seen));
}

/* ---- protobuf --------------------------------------------------------------- */

/* A Ping built with malloc'd fields, as protobuf-c's unpack would. */
static Picos__Test__Ping *
make_ping(uint32_t seq, const char *text)
{
    Picos__Test__Ping *p = malloc(sizeof *p);
    Picos__Test__Inner *in = malloc(sizeof *in);

    if (!p || !in)
        abort();
    picos__test__ping__init(p);
    picos__test__inner__init(in);
    p->seq = seq;
    p->text = strdup(text);
    p->blob.len = 4;
    p->blob.data = malloc(4);
    memcpy(p->blob.data, "\0\1\2\3", 4);
    p->n_nums = 3;
    p->nums = malloc(3 * sizeof *p->nums);
    p->nums[0] = -1;
    p->nums[1] = 0;
    p->nums[2] = 1 << 30;
    in->value = -1234567890123ll;
    p->inner = in;
    return p;
}

static void
check_ping_bytes(const void *d, size_t len, uint32_t seq, const char *text)
{
    Picos__Test__Ping *u = picos__test__ping__unpack(NULL, len, d);

    TCHECK(u != NULL);
    if (!u)
        return;
    TCHECK_EQ(u->seq, seq);
    TCHECK_STR(u->text, text);
    TCHECK_EQ(u->blob.len, 4);
    TCHECK(u->blob.len == 4 && memcmp(u->blob.data, "\0\1\2\3", 4) == 0);
    TCHECK_EQ(u->n_nums, 3);
    if (u->n_nums == 3) {
        TCHECK_EQ(u->nums[0], -1);
        TCHECK_EQ(u->nums[1], 0);
        TCHECK_EQ(u->nums[2], 1 << 30);
    }
    TCHECK(u->inner != NULL);
    if (u->inner)
        TCHECK_EQ(u->inner->value, -1234567890123ll);
    picos__test__ping__free_unpacked(u, NULL);
}

PT_TEST(msg_pb_roundtrip)
static void
msg_pb_roundtrip(void)
{
    Picos__Test__Ping *p = make_ping(77, "ping text");
    pc_msg *m = NULL;
    const void *d, *d2;
    size_t len = 0, len2 = 0;

    CU_ASSERT_EQUAL_FATAL(pc_msg_new_pb(&m, p), PC_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(pc_msg_type(m), "picos.test.Ping");
    CU_ASSERT_STRING_EQUAL(pc_msg_type(m), picos__test__ping__descriptor.name);
    CU_ASSERT(pc_msg_is(m, "picos.test.Ping"));
    CU_ASSERT_PTR_EQUAL(pc_msg_pb(m), p);
    CU_ASSERT(pc_ref_is_nil(pc_msg_sender(m)));

    d = pc_msg_data(m, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_EQUAL(len, picos__test__ping__get_packed_size(p));
    check_ping_bytes(d, len, 77, "ping text");
    d2 = pc_msg_data(m, &len2); /* packed once and kept */
    CU_ASSERT_PTR_EQUAL(d2, d);
    CU_ASSERT_EQUAL(len2, len);
    pt_flush();

    /* Extra references: the pb is freed with the last one only. */
    pc_msg *m2 = pc_msg_ref(m);
    pc_msg_free(&m);
    CU_ASSERT_PTR_EQUAL(pc_msg_pb(m2), p);
    CU_ASSERT_EQUAL(((const Picos__Test__Ping *)pc_msg_pb(m2))->seq, 77);
    pc_msg_free(&m2); /* frees p (LSan reports it otherwise) */

    /* Freed without ever being packed. */
    CU_ASSERT_EQUAL_FATAL(pc_msg_new_pb(&m, make_ping(1, "unpacked")), PC_OK);
    pc_msg_free(&m);

    /* An empty message packs to zero bytes. */
    Picos__Test__Inner *in = malloc(sizeof *in);
    picos__test__inner__init(in);
    CU_ASSERT_EQUAL_FATAL(pc_msg_new_pb(&m, in), PC_OK);
    CU_ASSERT_STRING_EQUAL(pc_msg_type(m), "picos.test.Inner");
    len = 99;
    pc_msg_data(m, &len);
    CU_ASSERT_EQUAL(len, 0);
    pc_msg_free(&m);
}

/* A pb message unpacked by protobuf-c itself (the documented source). */
PT_TEST(msg_pb_from_unpack)
static void
msg_pb_from_unpack(void)
{
    Picos__Test__Ping *p = make_ping(5, "five");
    size_t n = picos__test__ping__get_packed_size(p);
    uint8_t *buf = malloc(n);
    pc_msg *m = NULL;
    size_t len = 0;
    const void *d;

    picos__test__ping__pack(p, buf);
    picos__test__ping__free_unpacked(p, NULL);
    p = picos__test__ping__unpack(NULL, n, buf);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL_FATAL(pc_msg_new_pb(&m, p), PC_OK);
    d = pc_msg_data(m, &len);
    CU_ASSERT_EQUAL(len, n);
    CU_ASSERT(d && memcmp(d, buf, n) == 0);
    pc_msg_free(&m);
    free(buf);
}

/* One pb message shared by tasks on both workers: each packs it at about
 * the same time (the first pc_msg_data must be thread-safe) and all see the
 * one packing that is kept. */
#define PB_READERS 4

struct pb_ctx {
    struct pb_reader_arg {
        struct pb_ctx *c;
        int k;
    } args[PB_READERS];
    const void *data[PB_READERS];
    size_t len[PB_READERS];
    atomic_int done;
};

static pc_msg *
pb_reader(void *arg)
{
    struct pb_reader_arg *a = arg;
    struct pb_ctx *c = a->c;
    const Picos__Test__Ping *p;
    pc_msg *m = NULL;

    TCHECK_RC(pc_recv(&m, PT_LONG), PC_OK);
    if (!m)
        return NULL;
    p = pc_msg_pb(m);
    TCHECK(p != NULL);
    if (p) {
        TCHECK_EQ(p->seq, 9);
        TCHECK_STR(p->text, "shared");
    }
    c->data[a->k] = pc_msg_data(m, &c->len[a->k]);
    check_ping_bytes(c->data[a->k], c->len[a->k], 9, "shared");
    TCHECK_STR(pc_msg_type(m), "picos.test.Ping");
    pc_msg_free(&m);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

static pc_msg *
pb_fanout(void *arg)
{
    struct pb_ctx *c = arg;
    pc_msg *m = NULL;
    pc_ref r[PB_READERS];

    for (int i = 0; i < PB_READERS; i++)
        r[i] = pt_spawn(pb_reader, &c->args[i], i, 0);
    TCHECK_RC(pc_msg_new_pb(&m, make_ping(9, "shared")), PC_OK);
    for (int i = 0; i < PB_READERS && m; i++) {
        pc_msg *ref = pc_msg_ref(m);
        TCHECK_RC(pc_send(r[i], &ref), PC_OK);
        TCHECK(ref == NULL);
    }
    pc_msg_free(&m);
    return NULL;
}

PT_WTEST(msg_pb_shared)
static void
msg_pb_shared(int W)
{
    struct pb_ctx c;

    memset(&c, 0, sizeof c);
    for (int i = 0; i < PB_READERS; i++) {
        c.args[i].c = &c;
        c.args[i].k = i;
    }
    PT_START(W);
    CU_ASSERT_EQUAL(pc_spawn(pb_fanout, &c, NULL, NULL), PC_OK);
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&c.done), PB_READERS);
    for (int i = 1; i < PB_READERS; i++) {
        CU_ASSERT_PTR_EQUAL(c.data[i], c.data[0]);
        CU_ASSERT_EQUAL(c.len[i], c.len[0]);
    }
}

/* A pb message still shared by its maker, handed back by an echo: the
 * echo's send gives it a new header naming the echo, over the same
 * payload, and the receiver still finds the unpacked message. */
struct pbfwd_ctx {
    atomic_int done;
};

static pc_msg *
pb_echo(void *arg)
{
    pc_msg *m = NULL;

    (void)arg;
    TCHECK_RC(pc_recv(&m, PT_LONG), PC_OK);
    if (m)
        TCHECK_RC(pc_send(pc_msg_sender(m), &m), PC_OK);
    pc_msg_free(&m);
    return NULL;
}

static pc_msg *
pb_forward_main(void *arg)
{
    struct pbfwd_ctx *c = arg;
    pc_ref e = pt_spawn(pb_echo, NULL, 1, 0);
    pc_msg *m = NULL, *keep, *r = NULL;
    const Picos__Test__Ping *p;

    TCHECK_RC(pc_msg_new_pb(&m, make_ping(77, "shared")), PC_OK);
    keep = pc_msg_ref(m); /* shared while the echo forwards it */
    TCHECK_RC(pc_send(e, &m), PC_OK);
    TCHECK_RC(pc_recv(&r, PT_LONG), PC_OK);
    TCHECK(r && r != keep);                            /* a new header... */
    TCHECK(r && pc_ref_eq(pc_msg_sender(r), e));       /* ...naming the echo */
    TCHECK(pc_ref_eq(pc_msg_sender(keep), pc_self())); /* ours unchanged */
    p = r ? pc_msg_pb(r) : NULL;
    TCHECK(p != NULL && p == pc_msg_pb(keep)); /* the same unpacked message */
    TCHECK(p && p->seq == 77);
    TCHECK(r && pc_msg_is(r, pc_msg_type(keep)));
    pc_msg_free(&keep); /* r keeps the original alive */
    p = r ? pc_msg_pb(r) : NULL;
    TCHECK(p && p->seq == 77 && strcmp(p->text, "shared") == 0);
    pc_msg_free(&r);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(msg_pb_forwarded_shared)
static void
msg_pb_forwarded_shared(int W)
{
    struct pbfwd_ctx c;

    memset(&c, 0, sizeof c);
    PT_RUN_TASK(W, pb_forward_main, &c, &c.done, 1);
}

/* ---- messages outliving their node ----------------------------------------- */

/* Small messages come from slabs that belong to the process: a message kept
 * after its node ended must stay intact, and freeing it then must hand its
 * block to the next node without disturbing the ones still held. */
#define OUT_MSGS 300 /* per worker: several slabs */

static struct {
    pc_msg *held[2][OUT_MSGS];
    int round;
    atomic_int done;
} out;

static bool
out_intact(pc_msg *m, int round, int w, int i)
{
    char want[32];

    snprintf(want, sizeof want, "r%d.w%d.%d", round, w, i);
    return m && strcmp(pc_msg_str(m), want) == 0;
}

static pc_msg *
out_maker(void *arg)
{
    int w = (int)(intptr_t)arg;

    for (int i = 0; i < OUT_MSGS; i++) {
        char text[32];
        snprintf(text, sizeof text, "r%d.w%d.%d", out.round, w, i);
        TCHECK_RC(pc_msg_new_str(&out.held[w][i], "out", text), PC_OK);
    }
    atomic_fetch_add(&out.done, 1);
    return NULL;
}

static void
out_node(int W)
{
    PT_START(W);
    for (int w = 0; w < W; w++)
        pt_spawn(out_maker, (void *)(intptr_t)w, w, 0);
    PT_RUN();
}

PT_WTEST(msg_outlives_node)
static void
msg_outlives_node(int W)
{
    pc_msg *old[2][OUT_MSGS / 2];

    memset(&out, 0, sizeof out);
    out_node(W);
    CU_ASSERT_EQUAL(atomic_load(&out.done), W);
    /* keep the odd ones, free the even ones with no node running */
    for (int w = 0; w < W; w++) {
        for (int i = 0; i < OUT_MSGS; i++) {
            CU_ASSERT(out_intact(out.held[w][i], 0, w, i));
            if (i % 2)
                old[w][i / 2] = out.held[w][i];
            else
                pc_msg_free(&out.held[w][i]);
        }
    }
    out.round = 1; /* a new node makes as many: the freed blocks are reused */
    out_node(W);
    CU_ASSERT_EQUAL(atomic_load(&out.done), 2 * W);
    for (int w = 0; w < W; w++) {
        for (int i = 0; i < OUT_MSGS; i++) {
            CU_ASSERT(out_intact(out.held[w][i], 1, w, i));
            pc_msg_free(&out.held[w][i]);
            if (i % 2) {
                CU_ASSERT(out_intact(old[w][i / 2], 0, w, i));
                pc_msg_free(&old[w][i / 2]);
            }
        }
    }
}

PT_MAIN("msg", PT_WENTRY(msg_pb_forwarded_shared), PT_ENTRY(msg_basic),
        PT_ENTRY(send_data_forms), PT_ENTRY(msg_binary_payload),
        PT_ENTRY(msg_empty), PT_ENTRY(msg_new_str), PT_ENTRY(msg_type_length),
        PT_ENTRY(msg_refcount), PT_ENTRY(msg_refcount_threads),
        PT_WENTRY(msg_sender), PT_ENTRY(msg_pb_roundtrip),
        PT_ENTRY(msg_pb_from_unpack), PT_WENTRY(msg_pb_shared),
        PT_WENTRY(msg_outlives_node))
