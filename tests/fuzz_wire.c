/* tests/fuzz_wire.c — fuzz target for the decoder of node links' frames
 * (transport/wire.c: wire_next, wire_unpack, wire_msg_in, wire_value_in),
 * the only code that reads bytes another node sent.
 *
 * Each input is one ZeroMQ message, i.e. one picos.v1.Frame. It is walked
 * with wire_next() and compared, field by field, with a model of the framing
 * computed from the input alone (tag 0x0a, a varint of at most 5 bytes, a
 * length that fits what is left); every envelope is unpacked into an arena
 * that is reset after it. An envelope wire_unpack() accepts must satisfy
 * the contract of wire.h (version 1, a known kind, the body the kind needs,
 * refs where the kind needs them, bounded names), and must survive a round
 * trip: wire_append() of it walks as exactly one envelope of
 * wire_size() bytes that unpacks again to the same bytes. The receive-side
 * conversions run where they need no node (pc_msg_new_remote and
 * pc_down_msg_new only allocate): wire_msg_in() for every kind that carries
 * a message must succeed, and its message must give the envelope's type and
 * payload (or its Down body) back, through pc_down_parse() and
 * wire_msg_out(); wire_value_in() runs on every Down body. Any difference
 * aborts. The dispatch side (dispatch.c) needs a running node and sockets
 * and is not exercised here.
 *
 * Seeds are built in code (a valid frame with one envelope of each kind,
 * each kind alone, and broken ones: a huge declared length, a length
 * beyond the frame, truncated envelopes, unknown and nested fields, a
 * varint that never ends, wrong wire types, overlong names). With
 * FZ_WIRE_SEEDS=DIR in the environment they are also written to DIR, one
 * file each (tests/fuzz_seeds/wire/ was made so), as a libFuzzer corpus.
 *
 * Built with clang and -DPICOS_FUZZ=ON it is a libFuzzer target; otherwise
 * fz_driver() (fuzzutil.h) runs the seeds and their mutations for ctest. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/monitor.h"
#include "picos/transport.h"

#include "fuzzutil.h"
#include "wire.h"

/* ---- the model of the framing ------------------------------------------------ */

/* What wire_next() must give at *pos: 1 with the envelope at *off, *len
 * bytes; 0 at the end; -1 for a malformed frame. */
static int
model_next(const uint8_t *d, size_t size, size_t *pos, size_t *off, size_t *len)
{
    size_t p = *pos;
    uint64_t n = 0;
    int i;

    if (p == size)
        return 0;
    if (d[p++] != 0x0a)
        return -1;
    for (i = 0; i < 5; i++) {
        if (p == size)
            return -1;
        n |= (uint64_t)(d[p] & 0x7f) << (7 * i);
        if (!(d[p++] & 0x80))
            break;
    }
    if (i == 5 || n > size - p)
        return -1;
    *off = p, *len = (size_t)n;
    *pos = p + (size_t)n;
    return 1;
}

/* ---- what an accepted envelope must be ------------------------------------------- */

static int
bounded(const char *s, size_t max)
{
    return s && strlen(s) <= max;
}

static void
check_accepted(const wire_env *e)
{
    int body = e->body_case, k = e->kind;
    int refs = k != PICOS__V1__KIND__HELLO && k != PICOS__V1__KIND__HEARTBEAT &&
               k != PICOS__V1__KIND__GOODBYE && k != PICOS__V1__KIND__REFUSED;

    if (e->version != WIRE_VERSION || k < PICOS__V1__KIND__HELLO ||
        k > PICOS__V1__KIND__CHAN_SYNC || (refs && (!e->from || !e->to)) ||
        !bounded(e->type, PC_MSG_TYPE_MAX))
        abort();
    switch (k) {
    case PICOS__V1__KIND__HELLO:
        if (body != PICOS__V1__ENVELOPE__BODY_HELLO || !e->hello->node ||
            !e->hello->incarnation || !bounded(e->hello->name, WIRE_NAME_MAX) ||
            !bounded(e->hello->host, WIRE_NAME_MAX) ||
            !bounded(e->hello->endpoint, WIRE_ENDPOINT_MAX) ||
            !bounded(e->hello->pub_endpoint, WIRE_ENDPOINT_MAX))
            abort();
        break;
    case PICOS__V1__KIND__DOWN:
    case PICOS__V1__KIND__EXIT:
        if (body != PICOS__V1__ENVELOPE__BODY_DOWN)
            abort();
        break;
    case PICOS__V1__KIND__SEND:
    case PICOS__V1__KIND__DELIVER:
    case PICOS__V1__KIND__JOIN_REPLY:
        if (body != PICOS__V1__ENVELOPE__BODY__NOT_SET &&
            body != PICOS__V1__ENVELOPE__BODY_DOWN)
            abort();
        break;
    case PICOS__V1__KIND__LOOKUP:
        if (body != PICOS__V1__ENVELOPE__BODY_LOOKUP ||
            !bounded(e->lookup->name, WIRE_NAME_MAX))
            abort();
        break;
    case PICOS__V1__KIND__SUBSCRIBE:
    case PICOS__V1__KIND__UNSUBSCRIBE:
    case PICOS__V1__KIND__CHAN_SEND:
    case PICOS__V1__KIND__CHAN_PUBLISH:
    case PICOS__V1__KIND__CHAN_DELIVER:
    case PICOS__V1__KIND__CHAN_DELIVER_ACK:
    case PICOS__V1__KIND__CHAN_SYNC:
        if (body != PICOS__V1__ENVELOPE__BODY_CHAN ||
            !bounded(e->chan->name, WIRE_NAME_MAX))
            abort();
        break;
    case PICOS__V1__KIND__REFUSED:
        if (body != PICOS__V1__ENVELOPE__BODY_REFUSAL ||
            !bounded(e->refusal->text, 4096))
            abort();
        break;
    default:
        if (body != PICOS__V1__ENVELOPE__BODY__NOT_SET)
            abort();
    }
    if (body == PICOS__V1__ENVELOPE__BODY_DOWN &&
        (!e->down->who || e->down->reason < PICOS__V1__REASON__NORMAL ||
         e->down->reason > PICOS__V1__REASON__NOPROC ||
         !bounded(e->down->value_type, PC_MSG_TYPE_MAX) ||
         !bounded(e->down->error, 4096)))
        abort();
}

/* ---- round trips --------------------------------------------------------------- */

static wire_arena arena, arena2;

/* Does m (not its submessages) hold an unknown field numbered 0? protobuf-c
 * 1.4 takes one whose tag is an overlong varint (80 80 00) but packs it as
 * 00, which it refuses: the one case where a repacked envelope may not
 * unpack (picos never repacks what it received). */
static int
tag0(const void *pm)
{
    const ProtobufCMessage *m = pm;

    for (unsigned i = 0; m && i < m->n_unknown_fields; i++)
        if (m->unknown_fields[i].tag == 0)
            return 1;
    return 0;
}

static int
has_tag0(const wire_env *e)
{
    return tag0(e) || tag0(e->from) || tag0(e->to) ||
           (e->body_case == PICOS__V1__ENVELOPE__BODY_HELLO &&
            tag0(e->hello)) ||
           (e->body_case == PICOS__V1__ENVELOPE__BODY_DOWN &&
            (tag0(e->down) || tag0(e->down->who))) ||
           (e->body_case == PICOS__V1__ENVELOPE__BODY_LOOKUP &&
            tag0(e->lookup)) ||
           (e->body_case == PICOS__V1__ENVELOPE__BODY_CHAN && tag0(e->chan)) ||
           (e->body_case == PICOS__V1__ENVELOPE__BODY_REFUSAL &&
            tag0(e->refusal));
}

/* e packed again: one envelope of wire_size(e) bytes that unpacks and packs
 * to the same bytes. */
static void
round_trip(const wire_env *e)
{
    wire_buf b = {0}, b2 = {0};
    const uint8_t *q, *env;
    const char *why;
    wire_env *e2;
    size_t len;

    if (wire_append(&b, e) != PC_OK)
        return; /* PC_ENOMEM */
    q = b.p;
    if (b.n != 1 || b.len != wire_size(e) ||
        wire_next(&q, b.p + b.len, &env, &len) != 1 || q != b.p + b.len ||
        wire_next(&q, b.p + b.len, &env, &len) != 0)
        abort();
    if (!(e2 = wire_unpack(&arena2, env, len, &why)) || why) {
        if (!has_tag0(e))
            abort(); /* what we pack, we must take */
        wire_buf_free(&b);
        wire_arena_reset(&arena2);
        return;
    }
    check_accepted(e2);
    if (e2->kind != e->kind || e2->body_case != e->body_case ||
        e2->corr != e->corr || e2->status != e->status ||
        e2->timeout_us != e->timeout_us || e2->count != e->count ||
        strcmp(e2->type, e->type) != 0 || e2->payload.len != e->payload.len)
        abort();
    if (wire_append(&b2, e2) == PC_OK &&
        (b2.len != b.len || memcmp(b2.p, b.p, b.len) != 0))
        abort(); /* packing is not stable */
    wire_buf_free(&b2);
    wire_buf_free(&b);
    wire_arena_reset(&arena2);
}

static int
same_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
    return alen == blen && (!alen || memcmp(a, b, alen) == 0);
}

/* The Down body d as the message m that wire_msg_in made of it. */
static void
check_down_msg(const Picos__V1__Down *d, const pc_msg *m)
{
    pc_down pd;
    pc_ref who = wire_ref_get(d->who);

    if (pc_down_parse(m, &pd) != PC_OK || !pc_ref_eq(pd.who, who) ||
        (int)pd.reason != (int)d->reason || !pc_ref_eq(pc_msg_sender(m), who))
        abort();
    if (d->reason == PICOS__V1__REASON__ERROR && strcmp(pd.error, d->error))
        abort();
    if (d->reason == PICOS__V1__REASON__NORMAL && d->value_type[0] &&
        (!pd.value_type || strcmp(pd.value_type, d->value_type) ||
         !same_bytes(pd.value, pd.value_len, d->value.data, d->value.len)))
        abort();
}

/* The message e carries, and back onto an envelope. */
static void
check_msg_in(const wire_env *e, pc_ref sender)
{
    wire_env o = PICOS__V1__ENVELOPE__INIT;
    Picos__V1__Down down;
    wire_ref who;
    const void *data;
    size_t len;
    pc_msg *m = NULL;
    pc_err rc = wire_msg_in(e, sender, &m);

    if (rc == PC_ENOMEM)
        return;
    if (rc != PC_OK || !m)
        abort(); /* an accepted envelope's message always converts */
    data = pc_msg_data(m, &len);
    if (data && ((const char *)data)[len] != '\0')
        abort(); /* pc_msg_str() and pc_down_parse() read up to the NUL */
    if (e->body_case == PICOS__V1__ENVELOPE__BODY_DOWN) {
        /* EXIT and DOWN say which; a SEND names it in its type */
        const char *want = e->kind == PICOS__V1__KIND__EXIT   ? PC_MSG_EXIT
                           : e->kind == PICOS__V1__KIND__DOWN ? PC_MSG_DOWN
                           : !strcmp(e->type, PC_MSG_EXIT)    ? PC_MSG_EXIT
                                                              : PC_MSG_DOWN;
        if (!pc_msg_is(m, want))
            abort();
        check_down_msg(e->down, m);
    } else if (strcmp(pc_msg_type(m), e->type) != 0 ||
               !same_bytes(data, len, e->payload.data, e->payload.len) ||
               !pc_ref_eq(pc_msg_sender(m), sender)) {
        abort();
    }
    /* out again: type + payload, or a Down body for a DOWN/EXIT message;
     * PC_EINVAL only for a picos.down/exit type whose payload doesn't parse
     * (a peer may send one as type + payload: it is taken as it is) */
    rc = wire_msg_out(&o, m, &down, &who);
    if (e->body_case == PICOS__V1__ENVELOPE__BODY_DOWN) {
        if (rc != PC_OK || o.body_case != PICOS__V1__ENVELOPE__BODY_DOWN ||
            !pc_ref_eq(wire_ref_get(o.down->who), wire_ref_get(e->down->who)) ||
            o.down->reason != e->down->reason)
            abort();
    } else if (rc == PC_OK &&
               o.body_case == PICOS__V1__ENVELOPE__BODY__NOT_SET) {
        if (strcmp(o.type, e->type) != 0 ||
            !same_bytes(o.payload.data, o.payload.len, e->payload.data,
                        e->payload.len))
            abort();
    } else if (strcmp(e->type, PC_MSG_DOWN) && strcmp(e->type, PC_MSG_EXIT)) {
        abort(); /* only those types may turn into a Down body, or fail */
    } else if (rc != PC_OK && rc != PC_EINVAL) {
        abort();
    }
    pc_msg_free(&m);
}

static void
check_value_in(const Picos__V1__Down *d, pc_ref sender)
{
    pc_msg *m = (pc_msg *)1;
    pc_err rc = wire_value_in(d, sender, &m);
    const void *data;
    size_t len;

    if (rc == PC_ENOMEM)
        return;
    if (rc != PC_OK)
        abort();
    if (!m) {
        if (d->reason == PICOS__V1__REASON__ERROR ||
            (d->reason == PICOS__V1__REASON__NORMAL &&
             (d->value_type[0] || d->value.len)))
            abort(); /* a value was there */
        return;
    }
    data = pc_msg_data(m, &len);
    if (d->reason == PICOS__V1__REASON__ERROR
            ? !pc_msg_is(m, PC_MSG_ERROR) ||
                  !same_bytes(data, len, d->error, strlen(d->error))
            : strcmp(pc_msg_type(m), d->value_type) ||
                  !same_bytes(data, len, d->value.data, d->value.len))
        abort();
    pc_msg_free(&m);
}

/* ---- the target ------------------------------------------------------------------- */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    const uint8_t *p = data, *end = data + size, *env;
    size_t pos = 0, off, len, mlen;
    int r, want;

    if (!ready) {
        wire_arena_init(&arena);
        wire_arena_init(&arena2);
        ready = 1;
    }
    for (;;) {
        const char *why = (const char *)1;
        wire_env *e;
        pc_ref sender;

        want = model_next(data, size, &pos, &off, &mlen);
        r = wire_next(&p, end, &env, &len);
        if (r != (want < 0 ? PC_EPROTO : want))
            abort();
        if (r != 1)
            break;
        if (env != data + off || len != mlen || p != data + pos)
            abort();
        e = wire_unpack(&arena, env, len, &why);
        if (!e) {
            if (!why)
                abort(); /* a refusal says why */
            wire_arena_reset(&arena);
            continue;
        }
        if (why)
            abort();
        check_accepted(e);
        round_trip(e);
        sender = wire_ref_get(e->from);
        switch (e->kind) {
        case PICOS__V1__KIND__SEND:
        case PICOS__V1__KIND__DELIVER:
        case PICOS__V1__KIND__DOWN:
        case PICOS__V1__KIND__EXIT:
            check_msg_in(e, sender);
            break;
        case PICOS__V1__KIND__JOIN_REPLY:
            if (e->count) /* as dispatch.c: count 1 says a value is there */
                check_msg_in(e, sender);
            break;
        default:
            break;
        }
        if (e->body_case == PICOS__V1__ENVELOPE__BODY_DOWN)
            check_value_in(e->down, sender);
        wire_arena_reset(&arena);
    }
    return 0;
}

/* ---- seeds ------------------------------------------------------------------------- */

#define NSEEDS 64
static struct fz_seed seeds[NSEEDS];
static size_t nseeds;

#define seed_add(p, n) fz_seed_add(seeds, &nseeds, NSEEDS, (p), (n))

/* Raw bytes as one more seed; a literal's NUL is not part of it. */
#define SEED_RAW(s) seed_add((s), sizeof(s) - 1)

static void
seed_buf(wire_buf *b)
{
    seed_add(b->p, b->len);
    wire_buf_free(b);
}

static wire_ref r_from, r_to, r_who;

/* A valid envelope of kind k, with the body it needs (storage static: one
 * envelope at a time). */
static wire_env *
valid_env(int k)
{
    static wire_env e;
    static Picos__V1__Hello h;
    static Picos__V1__Down d;
    static Picos__V1__Lookup l;
    static Picos__V1__Chan c;
    static Picos__V1__Refusal rf;
    static uint32_t versions[] = {1};
    static char payload[] = "ping";

    picos__v1__envelope__init(&e);
    wire_ref_set(&r_from, (pc_ref){0x1111, 0x100000001ull}, 0xaaaa);
    wire_ref_set(&r_to, (pc_ref){0x2222, 0x200000002ull}, 0xbbbb);
    wire_ref_set(&r_who, (pc_ref){0x1111, 0x300000003ull}, 0);
    e.version = 1;
    e.kind = (Picos__V1__Kind)k;
    e.from = &r_from;
    e.to = &r_to;
    e.corr = 7;
    e.trace = 9;
    switch (k) {
    case PICOS__V1__KIND__HELLO:
        picos__v1__hello__init(&h);
        h.node = 0x1111, h.incarnation = 0xaaaa;
        h.name = "a", h.host = "host", h.endpoint = "tcp://127.0.0.1:9706";
        h.pub_endpoint = "tcp://127.0.0.1:9707";
        h.versions = versions, h.n_versions = 1;
        h.heartbeat_ms = 200, h.timeout_ms = 1000, h.max_frame = 1u << 20;
        h.pid = 42;
        e.from = e.to = NULL;
        e.body_case = PICOS__V1__ENVELOPE__BODY_HELLO;
        e.hello = &h;
        break;
    case PICOS__V1__KIND__DOWN:
    case PICOS__V1__KIND__EXIT:
    case PICOS__V1__KIND__JOIN_REPLY:
        picos__v1__down__init(&d);
        d.who = &r_who;
        d.reason = PICOS__V1__REASON__NORMAL;
        d.value_type = "value";
        d.value.data = (uint8_t *)"42", d.value.len = 2;
        e.body_case = PICOS__V1__ENVELOPE__BODY_DOWN;
        e.down = &d;
        e.count = k == PICOS__V1__KIND__JOIN_REPLY;
        break;
    case PICOS__V1__KIND__SEND:
    case PICOS__V1__KIND__DELIVER:
        e.type = "ping";
        e.payload.data = (uint8_t *)payload, e.payload.len = 4;
        e.timeout_us = k == PICOS__V1__KIND__DELIVER ? 1000000 : 0;
        break;
    case PICOS__V1__KIND__LOOKUP:
        picos__v1__lookup__init(&l);
        l.name = "echo";
        e.body_case = PICOS__V1__ENVELOPE__BODY_LOOKUP;
        e.lookup = &l;
        break;
    case PICOS__V1__KIND__SUBSCRIBE:
    case PICOS__V1__KIND__UNSUBSCRIBE:
    case PICOS__V1__KIND__CHAN_SEND:
    case PICOS__V1__KIND__CHAN_PUBLISH:
    case PICOS__V1__KIND__CHAN_DELIVER:
    case PICOS__V1__KIND__CHAN_DELIVER_ACK:
    case PICOS__V1__KIND__CHAN_SYNC:
        picos__v1__chan__init(&c);
        c.name = "news";
        e.body_case = PICOS__V1__ENVELOPE__BODY_CHAN;
        e.chan = &c;
        e.type = "ping";
        e.payload.data = (uint8_t *)payload, e.payload.len = 4;
        e.seq = k == PICOS__V1__KIND__CHAN_PUBLISH ? 5 : 0;
        e.count = k == PICOS__V1__KIND__CHAN_DELIVER_ACK ? 3 : 0;
        break;
    case PICOS__V1__KIND__REFUSED:
        picos__v1__refusal__init(&rf);
        rf.code = PICOS__V1__REFUSAL_CODE__NOT_HELLO;
        rf.text = "no hello from you on this connection";
        e.from = e.to = NULL;
        e.body_case = PICOS__V1__ENVELOPE__BODY_REFUSAL;
        e.refusal = &rf;
        break;
    case PICOS__V1__KIND__DELIVER_ACK:
    case PICOS__V1__KIND__LOOKUP_REPLY:
        e.status = PC_ENOENT;
        break;
    case PICOS__V1__KIND__HEARTBEAT:
    case PICOS__V1__KIND__GOODBYE:
        e.from = e.to = NULL;
        break;
    default:
        break;
    }
    return &e;
}

/* The packed envelope alone (no frame tag), into buf; its length. */
static size_t
env_bytes(const wire_env *e, uint8_t *buf, size_t cap)
{
    size_t n = protobuf_c_message_get_packed_size(&e->base);

    if (n > cap)
        abort();
    return protobuf_c_message_pack(&e->base, buf);
}

/* A frame of one envelope given as raw bytes (tag, varint length). */
static void
seed_env_raw(const uint8_t *env, size_t n)
{
    uint8_t buf[4096];
    size_t k = 0;

    if (n + 6 > sizeof buf)
        abort();
    buf[k++] = 0x0a;
    for (size_t v = n;; v >>= 7) {
        buf[k++] = (uint8_t)(v < 0x80 ? v : (v & 0x7f) | 0x80);
        if (v < 0x80)
            break;
    }
    memcpy(buf + k, env, n);
    seed_add(buf, k + n);
}

__attribute__((constructor)) static void
make_seeds(void)
{
    wire_buf b = {0};
    uint8_t env[2048], big[600];
    size_t n;
    const char *dir;

    /* a valid frame with one envelope of each kind, then each alone */
    for (int k = PICOS__V1__KIND__HELLO; k <= PICOS__V1__KIND__CHAN_SYNC; k++)
        if (wire_append(&b, valid_env(k)) != PC_OK)
            abort();
    seed_buf(&b);
    for (int k = PICOS__V1__KIND__HELLO; k <= PICOS__V1__KIND__CHAN_SYNC; k++) {
        if (wire_append(&b, valid_env(k)) != PC_OK)
            abort();
        seed_buf(&b);
    }
    /* a SEND carrying a Down body, an EXIT of an error, a JOIN_REPLY with a
     * type + payload value (what dispatch.c really sends) */
    {
        wire_env *e = valid_env(PICOS__V1__KIND__DOWN);
        e->kind = PICOS__V1__KIND__SEND;
        wire_append(&b, e);
        e = valid_env(PICOS__V1__KIND__EXIT);
        e->down->reason = PICOS__V1__REASON__ERROR;
        e->down->error = "boom";
        e->down->value_type = "";
        e->down->value.len = 0;
        wire_append(&b, e);
        e = valid_env(PICOS__V1__KIND__SEND);
        e->kind = PICOS__V1__KIND__JOIN_REPLY;
        e->count = 1;
        e->type = PC_MSG_ERROR;
        wire_append(&b, e);
        e = valid_env(PICOS__V1__KIND__SEND);
        e->type = PC_MSG_DOWN; /* a DOWN type as type + payload */
        wire_append(&b, e);
        seed_buf(&b);
    }
    SEED_RAW("");
    SEED_RAW("\x0a\x00");               /* an empty envelope */
    SEED_RAW("\x0a\xff\xff\xff\xff\x0f" /* 2^32-1 bytes declared */
             "\x08\x01\x10\x02");
    SEED_RAW("\x0a\xff\xff\xff\xff\x7f\x08\x01"); /* 2^35-1 declared */
    SEED_RAW("\x0a\x80\x80\x80\x80\x80\x80\x01"); /* a 7-byte varint */
    SEED_RAW("\x0a\x80\x80\x80\x80\x80\x80\x80"); /* a varint that never ends */
    SEED_RAW("\x0a\x10\x08\x01\x10\x03");         /* length beyond the frame */
    SEED_RAW("\x08\x01");                         /* field 1 as a varint */
    SEED_RAW("\x12\x02\x08\x01");                 /* field 2, not 1 */
    SEED_RAW("\x0b\x08\x01\x0c");                 /* field 1 as a group */
    /* truncated envelopes: valid ones cut, framed with the cut length */
    n = env_bytes(valid_env(PICOS__V1__KIND__HELLO), env, sizeof env);
    seed_env_raw(env, n / 2);
    seed_env_raw(env, n - 1);
    n = env_bytes(valid_env(PICOS__V1__KIND__DOWN), env, sizeof env);
    seed_env_raw(env, n - 3);
    /* a frame whose last envelope is cut by the frame's end */
    wire_append(&b, valid_env(PICOS__V1__KIND__SEND));
    wire_append(&b, valid_env(PICOS__V1__KIND__DELIVER));
    b.len -= 2;
    seed_buf(&b);
    /* envelopes with unknown fields, nested unknown fields, wrong wire
     * types, varints that never end inside an envelope */
    {
        static const uint8_t unknown[] = {
            0x08, 0x01, 0x10, 0x02,                   /* version 1, HEARTBEAT */
            0xf8, 0x06, 0x2a,                         /* field 111: varint */
            0xfa, 0x06, 0x06, 0x0a, 0x04, 0x0a, 0x02, /* field 111: nested */
            0x0a, 0x00,                               /* ... messages */
            0xfd, 0x06, 1,    2,    3,    4,          /* field 111: fixed32 */
            0xf9, 0x06, 1,    2,    3,    4,    5,
            6,    7,    8, /* field 111: fixed64 */
        };
        static const uint8_t group[] = {
            0x08, 0x01, 0x10, 0x02, 0xfb, 0x06, 0x08, 0x01, 0xfc, 0x06,
        };
        static const uint8_t kind_ld[] = {0x08, 0x01, 0x12, 0x01, 0x02};
        static const uint8_t from_varint[] = {0x08, 0x01, 0x10, 0x03,
                                              0x18, 0x05, 0x20, 0x06};
        static const uint8_t corr_endless[] = {
            0x08, 0x01, 0x10, 0x02, 0x28, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
        static const uint8_t ref_inner_ld[] = {
            /* HEARTBEAT whose from has node as length-delimited */
            0x08, 0x01, 0x10, 0x02, 0x1a, 0x04, 0x0a, 0x02, 0x41, 0x42};
        static const uint8_t down_deep[] = {
            /* DOWN, from/to, Down{who{unknown nested x3}, reason 9} */
            0x08, 0x01, 0x10, 0x08, 0x1a, 0x00, 0x22, 0x00,
            0xaa, 0x01, 0x0c, 0x0a, 0x08, 0xfa, 0x06, 0x05,
            0xfa, 0x06, 0x02, 0xfa, 0x06, 0x00, 0x10, 0x09};
        static const uint8_t versions_unpacked[] = {
            /* HELLO with versions [2, 3] unpacked, node and incarnation */
            0x08, 0x01, 0x10, 0x01, 0xa2, 0x01, 0x16, 0x09, 1,   0,
            0,    0,    0,    0,    0,    0,    0x11, 2,    0,   0,
            0,    0,    0,    0,    0,    0x20, 0x02, 0x20, 0x03};
        static const uint8_t bad_enum[] = {0x08, 0x01, 0x10, 0x7f,
                                           0x1a, 0x00, 0x22, 0x00};
        static const uint8_t hello_tag0[] = {
            /* a HELLO whose body holds field 0 with an overlong tag */
            0x08, 0x01, 0x10, 0x01, 0xa2, 0x01, 0x16, 0x09, 0x01, 0x00,
            0x80, 0x00, 0x00, 0x00, 0x00, 0xf5, 0x11, 0x02, 0x2e, 0x00,
            0x00, 0x00, 0x01, 0x00, 0x0a, 0x80, 0x80, 0x00, 0x18};
        seed_env_raw(hello_tag0, sizeof hello_tag0);
        seed_env_raw(unknown, sizeof unknown);
        seed_env_raw(group, sizeof group);
        seed_env_raw(kind_ld, sizeof kind_ld);
        seed_env_raw(from_varint, sizeof from_varint);
        seed_env_raw(corr_endless, sizeof corr_endless);
        seed_env_raw(ref_inner_ld, sizeof ref_inner_ld);
        seed_env_raw(down_deep, sizeof down_deep);
        seed_env_raw(versions_unpacked, sizeof versions_unpacked);
        seed_env_raw(bad_enum, sizeof bad_enum);
    }
    /* overlong names: a 256-byte type and lookup name, and 255 (the limit) */
    memset(big, 'x', sizeof big);
    big[256] = '\0';
    {
        wire_env *e = valid_env(PICOS__V1__KIND__SEND);
        e->type = (char *)big;
        wire_append(&b, e);
        seed_buf(&b);
        big[255] = '\0';
        wire_append(&b, e);
        seed_buf(&b);
        big[255] = 'x';
        e = valid_env(PICOS__V1__KIND__LOOKUP);
        e->lookup->name = (char *)big;
        wire_append(&b, e);
        seed_buf(&b);
    }
    if ((dir = getenv("FZ_WIRE_SEEDS")) && *dir)
        fz_write_seeds(dir, seeds, nseeds);
    /* FZ_MAIN takes the whole table: the rest repeats the first seeds */
    for (size_t i = nseeds; i < NSEEDS; i++)
        seeds[i] = seeds[i % nseeds];
}

FZ_MAIN("fuzz_wire", seeds)
