/* tests/test_wire.c — the wire encoder (transport/wire.c) against
 * protobuf-c: the hand encoder of simple envelopes must give exactly the
 * bytes protobuf-c packs, for every combination of fields it handles, and
 * what it writes must unpack to the same values. */
#include "envelope.pb-c.h"
#include "testutil.h"
#include "wire.h"

static uint64_t rng = 88172645463325252u;

static uint64_t
next(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

/* A value that is 0, small, or big, so each field is left out, short or
 * long. */
static uint64_t
pick(void)
{
    switch (next() % 4) {
    case 0:
        return 0;
    case 1:
        return next() % 200;
    case 2:
        return next() >> (next() % 60);
    default:
        return next();
    }
}

PT_TEST(hand_encoder_matches_protobuf_c)
static void
hand_encoder_matches_protobuf_c(void)
{
    static uint8_t payload[70000];
    char type[300];

    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)next();
    for (int round = 0; round < 20000; round++) {
        wire_env e = PICOS__V1__ENVELOPE__INIT;
        wire_ref from, to;
        wire_buf b = {0};
        size_t tl = next() % 3 ? next() % 40 : next() % 256, n;
        uint8_t *want;

        for (size_t k = 0; k < tl; k++)
            type[k] = (char)('a' + next() % 26);
        type[tl] = '\0';
        picos__v1__ref__init(&from);
        picos__v1__ref__init(&to);
        from.node = pick(), from.incarnation = pick(), from.id = pick();
        to.node = pick(), to.incarnation = pick(), to.id = pick();
        e.version = (uint32_t)(next() % 3);
        e.kind = (Picos__V1__Kind)(next() % 26);
        e.from = next() % 5 ? &from : NULL;
        e.to = next() % 5 ? &to : NULL;
        e.corr = pick();
        e.timeout_us = pick();
        e.status =
            next() % 3 ? (int32_t) - (int64_t)(next() % 30) : (int32_t)pick();
        e.count = pick();
        e.type = type;
        e.payload.data = payload;
        e.payload.len = next() % 4 ? next() % 300 : next() % sizeof payload;
        CU_ASSERT_EQUAL_FATAL(wire_append(&b, &e), PC_OK);
        n = protobuf_c_message_get_packed_size(&e.base);
        want = malloc(n);
        protobuf_c_message_pack(&e.base, want);
        /* b: tag, length, then the envelope */
        CU_ASSERT_EQUAL(wire_size(&e), b.len);
        CU_ASSERT_EQUAL(b.p[0], 0x0a);
        {
            const uint8_t *q = b.p, *env;
            size_t elen;
            CU_ASSERT_EQUAL(wire_next(&q, b.p + b.len, &env, &elen), 1);
            CU_ASSERT_EQUAL(elen, n);
            if (elen == n && memcmp(env, want, n)) {
                CU_FAIL("hand-encoded bytes differ from protobuf-c's");
                break;
            }
        }
        free(want);
        wire_buf_free(&b);
    }
}

PT_TEST(append_max_refuses_past_limit)
static void
append_max_refuses_past_limit(void)
{
    wire_env e = PICOS__V1__ENVELOPE__INIT;
    wire_buf b = {0};
    size_t one;

    e.version = 1;
    e.kind = PICOS__V1__KIND__HEARTBEAT;
    one = wire_size(&e);
    /* the first always goes in, even over the limit */
    CU_ASSERT_EQUAL(wire_append_max(&b, &e, 1), PC_OK);
    CU_ASSERT_EQUAL(wire_append_max(&b, &e, 2 * one), PC_OK);
    CU_ASSERT_EQUAL(wire_append_max(&b, &e, 2 * one), PC_EFULL);
    CU_ASSERT_EQUAL(b.n, 2);
    CU_ASSERT_EQUAL(b.len, 2 * one);
    wire_buf_free(&b);
}

PT_MAIN("wire", PT_ENTRY(hand_encoder_matches_protobuf_c),
        PT_ENTRY(append_max_refuses_past_limit))
