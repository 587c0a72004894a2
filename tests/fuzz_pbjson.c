/* tests/fuzz_pbjson.c — fuzz target for picos call's JSON <-> protobuf
 * conversion (apps/picos/pbjson.c), which reads a schema and replies that
 * came from the network, and JSON a user typed.
 *
 * The first byte of an input picks what the rest is:
 *   0  the bytes of a picos.test.All (tests/test.proto), decoded with the
 *      schema pc__rps_schema_build() makes of All and Tree;
 *   1  JSON text, encoded as a picos.test.All with that schema;
 *   2  a schema and a message: two bytes of length (little endian), that
 *      many bytes of a picos.v1.RpsSchema, the rest a message decoded as
 *      each of the schema's first 8 message types.
 * Whatever is decoded must survive the round trip: its JSON is printed
 * (pbjson_dumps never fails on what the decoder made), encoded again (it
 * must be taken: what we print we must read, except a proto2 required
 * field the bytes lacked), and decodes to the same JSON. Whatever JSON is
 * encoded must decode, and encoding that JSON again gives the same bytes
 * (the encoder's output is canonical). For All, the bytes our encoder
 * makes must also unpack with protobuf-c's own descriptor. Any difference
 * aborts; a refusal must say why (a non-empty line).
 *
 * Seeds are built in code: a full All packed by protobuf-c, JSON texts
 * with every field, the schema of All with messages, hostile schemas (a
 * type naming itself, unknown types, huge counts) and broken bytes.
 * FZ_PBJSON_SEEDS=DIR writes them to DIR as a libFuzzer corpus.
 *
 * Built with clang and -DPICOS_FUZZ=ON it is a libFuzzer target; otherwise
 * fz_driver() (fuzzutil.h) runs the seeds and their mutations for ctest. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzutil.h"
#include "pbjson.h"
#include "rps_int.h"
#include "test.pb-c.h"

static char err[PBJSON_ERR_MAX];

static void
refused_says_why(pc_err rc)
{
    if (rc != PC_EINVAL && rc != PC_ENOMEM)
        abort();
    if (!err[0] || strchr(err, '\n'))
        abort();
}

/* j (decoded as type) encoded again and decoded again is j. */
static void
round_trip_json(const pbjson_schema *s, const char *type, json_t *j)
{
    uint8_t *b = NULL;
    size_t n = 0;
    json_t *j2 = NULL;
    char *text = pbjson_dumps(j, true);
    pc_err rc;

    if (!text)
        abort(); /* the decoder makes finite reals only */
    free(text);
    rc = pbjson_encode(s, type, j, &b, &n, err, sizeof err);
    if (rc != PC_OK) {
        refused_says_why(rc);
        if (rc == PC_EINVAL && !strstr(err, ": required"))
            abort(); /* what we print, we must read */
        return;
    }
    if (pbjson_decode(s, type, b, n, &j2, err, sizeof err) != PC_OK ||
        !json_equal(j, j2))
        abort();
    json_decref(j2);
    free(b);
}

static void
decode_as(const pbjson_schema *s, const char *type, const uint8_t *p, size_t n)
{
    json_t *j = NULL;
    pc_err rc = pbjson_decode(s, type, p, n, &j, err, sizeof err);

    if (rc != PC_OK) {
        if (j)
            abort();
        refused_says_why(rc);
        return;
    }
    round_trip_json(s, type, j);
    json_decref(j);
}

static pbjson_schema *all_schema;

static void
load_all_schema(void)
{
    Picos__V1__RpsSchema *s = NULL;
    uint8_t *b;
    size_t n;

    if (all_schema)
        return;
    if (pc__rps_schema_build(&picos__test__all__descriptor,
                             &picos__test__tree__descriptor, &s) != PC_OK)
        abort();
    n = picos__v1__rps_schema__get_packed_size(s);
    if (!(b = malloc(n)))
        abort();
    picos__v1__rps_schema__pack(s, b);
    pc__rps_schema_free(&s);
    if (pbjson_schema_load(b, n, &all_schema, err, sizeof err) != PC_OK)
        abort();
    free(b);
}

/* JSON text as an All: if taken, its bytes unpack with protobuf-c, decode,
 * and the decoded JSON encodes to the same bytes. */
static void
json_in(const uint8_t *p, size_t n)
{
    json_t *j = json_loadb((const char *)p, n, JSON_DECODE_ANY, NULL), *j2;
    uint8_t *b = NULL, *b2 = NULL;
    size_t len = 0, len2 = 0;
    Picos__Test__All *a;
    pc_err rc;

    if (!j)
        return;
    rc = pbjson_encode(all_schema, "picos.test.All", j, &b, &len, err,
                       sizeof err);
    json_decref(j);
    if (rc != PC_OK) {
        if (b)
            abort();
        refused_says_why(rc);
        return;
    }
    if (!(a = picos__test__all__unpack(NULL, len, b)))
        abort(); /* protobuf-c must take what we encode */
    picos__test__all__free_unpacked(a, NULL);
    j2 = NULL;
    if (pbjson_decode(all_schema, "picos.test.All", b, len, &j2, err,
                      sizeof err) != PC_OK)
        abort();
    if (pbjson_encode(all_schema, "picos.test.All", j2, &b2, &len2, err,
                      sizeof err) != PC_OK ||
        len2 != len || (len && memcmp(b, b2, len)))
        abort(); /* canonical: the same bytes again */
    json_decref(j2);
    free(b);
    free(b2);
}

static void
schema_in(const uint8_t *p, size_t n)
{
    pbjson_schema *s = NULL;
    Picos__V1__RpsSchema *raw;
    size_t sl;
    pc_err rc;

    if (n < 2)
        return;
    sl = p[0] | (size_t)p[1] << 8;
    p += 2;
    n -= 2;
    if (sl > n)
        sl = n;
    rc = pbjson_schema_load(p, sl, &s, err, sizeof err);
    if (rc != PC_OK) {
        if (s)
            abort();
        refused_says_why(rc);
        return;
    }
    /* the loader took it: decode the rest as each of its first types */
    raw = picos__v1__rps_schema__unpack(NULL, sl, p);
    if (!raw)
        abort();
    for (size_t i = 0; i < raw->n_messages && i < 8; i++) {
        if (!pbjson_schema_has(s, raw->messages[i]->name))
            abort();
        decode_as(s, raw->messages[i]->name, p + sl, n - sl);
    }
    picos__v1__rps_schema__free_unpacked(raw, NULL);
    pbjson_schema_free(&s);
    if (s)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    load_all_schema();
    if (!size)
        return 0;
    switch (data[0] % 3) {
    case 0:
        decode_as(all_schema, "picos.test.All", data + 1, size - 1);
        decode_as(all_schema, "picos.test.Tree", data + 1, size - 1);
        break;
    case 1:
        json_in(data + 1, size - 1);
        break;
    default:
        schema_in(data + 1, size - 1);
    }
    return 0;
}

/* ---- seeds ------------------------------------------------------------------------- */

#define NSEEDS 32
static struct fz_seed seeds[NSEEDS];
static size_t nseeds;

static void
seed(uint8_t mode, const void *p, size_t n)
{
    uint8_t *b = malloc(n + 1);

    if (!b)
        abort();
    b[0] = mode;
    memcpy(b + 1, p, n);
    fz_seed_add(seeds, &nseeds, NSEEDS, b, n + 1);
    free(b);
}

static void
seed_pb(uint8_t mode, const ProtobufCMessage *m, const void *prefix,
        size_t plen)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(plen + n + 1);

    if (!b)
        abort();
    if (plen)
        memcpy(b, prefix, plen);
    protobuf_c_message_pack(m, b + plen);
    seed(mode, b, plen + n);
    free(b);
}

/* A schema (as mode 2 wants it: its length first) followed by msg. */
static void
seed_schema(const Picos__V1__RpsSchema *s, const void *msg, size_t mlen)
{
    size_t n = picos__v1__rps_schema__get_packed_size(s);
    uint8_t *b = malloc(2 + n + mlen);

    if (!b || n > 0xffff)
        abort();
    b[0] = (uint8_t)n;
    b[1] = (uint8_t)(n >> 8);
    picos__v1__rps_schema__pack(s, b + 2);
    memcpy(b + 2 + n, msg, mlen);
    seed(2, b, 2 + n + mlen);
    free(b);
}

__attribute__((constructor)) static void
make_seeds(void)
{
    Picos__Test__All a = PICOS__TEST__ALL__INIT;
    Picos__Test__Inner in = PICOS__TEST__INNER__INIT, *rin[] = {&in};
    Picos__Test__Tree t = PICOS__TEST__TREE__INIT, k = t, *kids[] = {&k};
    Picos__Test__Forest f = PICOS__TEST__FOREST__INIT;
    int32_t ri[] = {1, -2, 300};
    double rd[] = {0.5, -1e300};
    char *rs[] = {"a", "\xc3\xa9"};
    uint64_t ru[] = {1, UINT64_MAX};
    Picos__Test__Color rc[] = {1, 9};
    size_t n;
    uint8_t *all;
    Picos__V1__RpsSchema *s = NULL;
    const char *dir;

    a.i32 = -1;
    a.s64 = INT64_MIN;
    a.u64 = UINT64_MAX;
    a.f64 = 9;
    a.fl = 0.1f;
    a.db = -0.0;
    a.b = 1;
    a.color = PICOS__TEST__COLOR__INFRARED;
    a.str = "text";
    a.by = (ProtobufCBinaryData){2, (uint8_t *)"\x00\xff"};
    in.value = -5;
    a.inner = &in;
    a.n_r_i32 = 3, a.r_i32 = ri;
    a.n_r_db = 2, a.r_db = rd;
    a.n_r_str = 2, a.r_str = rs;
    a.n_r_u64 = 2, a.r_u64 = ru;
    a.n_r_color = 2, a.r_color = rc;
    a.n_r_inner = 1, a.r_inner = rin;
    k.label = "kid";
    f.tint = PICOS__TEST__COLOR__GREEN;
    k.forest = &f;
    t.n_kids = 1, t.kids = kids;
    a.tree = &t;
    a.choice_case = PICOS__TEST__ALL__CHOICE_PICK_NUM;
    a.pick_num = 0;
    a.top_number = 5;
    seed_pb(0, &a.base, NULL, 0);
    seed_pb(0, &t.base, NULL, 0);
    seed(0, "", 0);
    seed(0, "\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11);
    seed(0, "\x92\x01\x03\x01\x02", 5);     /* packed, cut */
    seed(0, "\x7a\x02\xc3\x28", 4);         /* not UTF-8 */
    seed(0, "\xa3\x06\xa4\x06", 4);         /* a group */
    seed(0, "\x12\x7f\x12\x7d\x12\x7b", 6); /* kids claiming too much */

    /* JSON */
    {
        static const char *const texts[] = {
            "{\"i32\": -5, \"s64\": \"-1\", \"u64\": \"18446744073709551615\","
            " \"fl\": 0.1, \"db\": \"NaN\", \"b\": true, \"color\": \"RED\","
            " \"str\": \"x\", \"by\": \"AP8=\", \"inner\": {\"value\": 3},"
            " \"rI32\": [1, 2], \"rDb\": [\"Infinity\"], \"rColor\": [7],"
            " \"rBy\": [\"_-8\"], \"rInner\": [{}], \"rU64\": [\"3\"],"
            " \"tree\": {\"kids\": [{\"forest\": {\"trees\": [{}]}}]},"
            " \"pickName\": \"p\", \"snake_case_name_2x\": \"s\"}",
            "{\"sf32\": \"-9\", \"f32\": 1e3, \"i64\": 1.0, \"rStr\": [\"\"]}",
            "{\"r_i32\": [1], \"rI32\": [2]}",
            "{\"nope\": null}",
            "[]",
        };
        for (size_t i = 0; i < sizeof texts / sizeof *texts; i++)
            seed(1, texts[i], strlen(texts[i]));
    }

    /* the schema of All and Tree, with messages */
    if (pc__rps_schema_build(&picos__test__all__descriptor,
                             &picos__test__tree__descriptor, &s) != PC_OK)
        abort();
    n = protobuf_c_message_get_packed_size(&a.base);
    if (!(all = malloc(n)))
        abort();
    protobuf_c_message_pack(&a.base, all);
    seed_schema(s, all, n);
    seed_schema(s, "", 0);
    /* the same schema with Tree's field types broken */
    {
        Picos__V1__RpsMessageType *tree = s->messages[1];
        char *save = tree->fields[1]->type_name;
        tree->fields[1]->type_name = "picos.test.Nope";
        seed_schema(s, "\x12\x00", 2);
        tree->fields[1]->type_name = save;
        tree->fields[0]->type = 99;
        seed_schema(s, "", 0);
        tree->fields[0]->type = PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_STRING;
    }
    pc__rps_schema_free(&s);
    free(all);
    /* a message whose only field is itself, and deep bytes for it */
    {
        Picos__V1__RpsField fl = PICOS__V1__RPS_FIELD__INIT, *fs[] = {&fl};
        Picos__V1__RpsMessageType m = PICOS__V1__RPS_MESSAGE_TYPE__INIT,
                                  *ms[] = {&m};
        Picos__V1__RpsSchema one = PICOS__V1__RPS_SCHEMA__INIT;
        uint8_t deep[200];
        size_t dn = 0;

        fl.name = "me";
        fl.number = 1;
        fl.type = PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_MESSAGE;
        fl.type_name = "x.Me";
        m.name = "x.Me";
        m.n_fields = 1;
        m.fields = fs;
        one.n_messages = 1;
        one.messages = ms;
        for (int d = 0; d < 90; d++) {
            memmove(deep + 2, deep, dn);
            deep[0] = 0x0a;
            deep[1] = (uint8_t)dn;
            dn += 2;
            if (dn >= 126)
                break;
        }
        seed_schema(&one, deep, dn);
        fl.label = PICOS__V1__RPS_FIELD_LABEL__RPS_LABEL_REPEATED;
        seed_schema(&one, deep, dn);
        fl.label = PICOS__V1__RPS_FIELD_LABEL__RPS_LABEL_REQUIRED;
        fl.type = PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_INT32;
        seed_schema(&one, "\x08\x05", 2);
    }
    seed(2, "\xff\xff\x0a\x05", 4); /* a schema length beyond the input */
    if ((dir = getenv("FZ_PBJSON_SEEDS")) && *dir)
        fz_write_seeds(dir, seeds, nseeds);
    for (size_t i = nseeds; i < NSEEDS; i++)
        seeds[i] = seeds[i % nseeds];
}

FZ_MAIN("fuzz_pbjson", seeds)
