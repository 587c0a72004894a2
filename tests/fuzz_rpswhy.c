/* tests/fuzz_rpswhy.c — fuzz target for pc__rps_why() (services/rps_why.c),
 * which reads the bytes of a request a typed service could not unpack (they
 * come from the network) and names its first defect for the refusal text.
 *
 * The first byte of an input picks the type (picos.test.All — every field
 * type, packed and not, a oneof, nested and recursive messages —,
 * picos.test2.Legacy — proto2 required and defaults —, picos.test.Tree or
 * picos.v1.RpsInfo), the rest are the bytes. The walk must agree with
 * protobuf-c both ways: it finds a defect exactly when
 * protobuf_c_message_unpack() fails (never stricter, so the text never
 * blames a sound field; never silent, so every refusal says why), and its
 * text is one line. Any difference aborts. Seeds (built in code) are sound
 * messages of each type and a few broken ones. Built with clang and
 * -DPICOS_FUZZ=ON it is a libFuzzer target; otherwise fz_driver()
 * (fuzzutil.h) runs seeds and mutations. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzutil.h"
#include "rps_int.h"
#include "test.pb-c.h"
#include "test2.pb-c.h"

static const ProtobufCMessageDescriptor *const types[] = {
    &picos__test__all__descriptor,
    &picos__test2__legacy__descriptor,
    &picos__test__tree__descriptor,
    &picos__v1__rps_info__descriptor,
};
#define NTYPES (sizeof types / sizeof types[0])

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const ProtobufCMessageDescriptor *d;
    ProtobufCMessage *m;
    char why[192];
    bool bad;

    if (size < 1)
        return 0;
    d = types[data[0] % NTYPES];
    m = protobuf_c_message_unpack(d, NULL, size - 1, data + 1);
    bad = pc__rps_why(d, data + 1, size - 1, why, sizeof why);
    if (m && bad) {
        fprintf(stderr, "fuzz_rpswhy: %s unpacks, but: %s\n", d->name, why);
        abort();
    }
    if (!m && !bad) {
        fprintf(stderr, "fuzz_rpswhy: %s does not unpack, and no reason\n",
                d->name);
        abort();
    }
    if (strlen(why) >= sizeof why || strchr(why, '\n') || (bad && !why[0]))
        abort();
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}

/* ---- seeds ------------------------------------------------------------------ */

#define NSEEDS 16
static struct fz_seed seeds[NSEEDS];
static size_t nseeds;

/* Type t's packed message pb as one more seed. */
static void
seed_pb(uint8_t t, const ProtobufCMessage *pb)
{
    size_t n = protobuf_c_message_get_packed_size(pb);
    uint8_t *b = malloc(n + 1);
    if (!b)
        abort();
    b[0] = t;
    protobuf_c_message_pack(pb, b + 1);
    fz_seed_add(seeds, &nseeds, NSEEDS, b, n + 1);
    free(b);
}

__attribute__((constructor)) static void
make_seeds(void)
{
    Picos__Test__All a = PICOS__TEST__ALL__INIT;
    Picos__Test__Inner in = PICOS__TEST__INNER__INIT;
    Picos__Test__Tree kid = PICOS__TEST__TREE__INIT,
                      tree = PICOS__TEST__TREE__INIT;
    Picos__Test__Tree *kids[] = {&kid, &kid};
    Picos__Test2__Legacy l = PICOS__TEST2__LEGACY__INIT;
    Picos__V1__RpsInfo info = PICOS__V1__RPS_INFO__INIT;
    int32_t nums[] = {1, -2, 300000};
    int64_t s64[] = {-1, 1LL << 40};
    uint32_t f32[] = {7, 8};
    double db[] = {1.5, -2.25};
    protobuf_c_boolean bs[] = {1, 0, 1};
    uint64_t u64[] = {1, 1ULL << 63};
    char *strs[] = {"a", ""};
    static const uint8_t junk[] = {0, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t wrong[] = {0, 0x78, 0x01}; /* str (15) as varint */
    static const uint8_t group[] = {1, 0x0b, 0x08, 0x01, 0x0c};
    static const uint8_t no_id[] = {1, 0x12, 0x01, 'x'}; /* Legacy, no id */

    a.i32 = -5;
    a.s32 = -6;
    a.sf32 = 7;
    a.i64 = -8;
    a.s64 = 9;
    a.sf64 = -10;
    a.u32 = 11;
    a.f32 = 12;
    a.u64 = 13;
    a.f64 = 14;
    a.fl = 1.5f;
    a.db = 2.5;
    a.b = 1;
    a.color = PICOS__TEST__COLOR__INFRARED;
    a.str = "text";
    a.by.data = (uint8_t *)"\x01\x02";
    a.by.len = 2;
    in.value = -77;
    a.inner = &in;
    a.n_r_i32 = 3;
    a.r_i32 = nums;
    a.n_r_s64 = 2;
    a.r_s64 = s64;
    a.n_r_f32 = 2;
    a.r_f32 = f32;
    a.n_r_db = 2;
    a.r_db = db;
    a.n_r_b = 3;
    a.r_b = bs;
    a.n_r_str = 2;
    a.r_str = strs;
    a.n_r_u64 = 2;
    a.r_u64 = u64;
    a.choice_case = PICOS__TEST__ALL__CHOICE_PICK_NUM;
    a.pick_num = 42;
    a.top_number = 3;
    seed_pb(0, &a.base);
    kid.label = "leaf";
    tree.label = "root";
    tree.n_kids = 2;
    tree.kids = kids;
    a.tree = &tree;
    seed_pb(0, &a.base);
    seed_pb(2, &tree.base);
    l.id = 5;
    l.note = "n";
    l.has_big = 1;
    l.big = 9;
    l.n_nums = 3;
    l.nums = nums;
    l.n_packed_nums = 3;
    l.packed_nums = nums;
    seed_pb(1, &l.base);
    info.id = 1;
    info.name = "svc";
    info.request_type = "picos.test.All";
    info.response_type = "";
    info.calls = 12;
    seed_pb(3, &info.base);
    fz_seed_add(seeds, &nseeds, NSEEDS, junk, sizeof junk);
    fz_seed_add(seeds, &nseeds, NSEEDS, wrong, sizeof wrong);
    fz_seed_add(seeds, &nseeds, NSEEDS, group, sizeof group);
    fz_seed_add(seeds, &nseeds, NSEEDS, no_id, sizeof no_id);
    /* FZ_MAIN takes the whole table: the rest repeats the first seeds */
    for (size_t i = nseeds; i < NSEEDS; i++)
        seeds[i] = seeds[i % nseeds];
}

FZ_MAIN("fuzz_rpswhy", seeds)
