/* tests/test_pbjson.c — the RpsSchema builder (services/rps_schema.c) and
 * picos call's JSON <-> protobuf conversion driven by it
 * (apps/picos/pbjson.c).
 *
 * The schema is built from the descriptors protoc-c made of tests/test.proto
 * (picos.test.All: every field type, repeated, nested, recursive, enum,
 * oneof) and tests/test2.proto (proto2 labels). The conversions are judged
 * by protobuf-c itself: JSON -> bytes is unpacked with the real descriptor
 * and compared field by field; a message packed by protobuf-c -> JSON is
 * compared with what the proto3 JSON mapping says. Leaks are left to ASan.
 */
#include <float.h>
#include <math.h>

#include "pbjson.h"
#include "rps_int.h"
#include "test.pb-c.h"
#include "test2.pb-c.h"
#include "testutil.h"

/* ---- the schema builder --------------------------------------------------------- */

static const Picos__V1__RpsMessageType *
schema_msg(const Picos__V1__RpsSchema *s, const char *name)
{
    const Picos__V1__RpsMessageType *found = NULL;

    for (size_t i = 0; i < s->n_messages; i++)
        if (!strcmp(s->messages[i]->name, name)) {
            CU_ASSERT_PTR_NULL(found); /* once */
            found = s->messages[i];
        }
    return found;
}

static const Picos__V1__RpsField *
schema_field(const Picos__V1__RpsMessageType *m, const char *name)
{
    for (size_t i = 0; m && i < m->n_fields; i++)
        if (!strcmp(m->fields[i]->name, name))
            return m->fields[i];
    return NULL;
}

/* Field `name` of m has this json name, label, type, type name, packing. */
static void
check_field(const Picos__V1__RpsMessageType *m, const char *name,
            const char *json, uint32_t number, int label, int type,
            const char *type_name, bool packed)
{
    const Picos__V1__RpsField *f = schema_field(m, name);

    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    if (strcmp(f->json_name, json))
        fprintf(stderr, "\n%s: json name %s, not %s\n", name, f->json_name,
                json);
    CU_ASSERT_STRING_EQUAL(f->json_name, json);
    CU_ASSERT_EQUAL(f->number, number);
    CU_ASSERT_EQUAL(f->label, label);
    CU_ASSERT_EQUAL(f->type, type);
    CU_ASSERT_STRING_EQUAL(f->type_name, type_name);
    CU_ASSERT_EQUAL(f->packed, packed);
}

#define L(x) PICOS__V1__RPS_FIELD_LABEL__RPS_LABEL_##x
#define T(x) PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_##x
#define FIELD_NUMBER_MAX_TEST 536870911u

/* Every type reachable from All and Tree once (recursion, mutual recursion,
 * an enum used three times), fields with protoc's JSON names, labels,
 * types, type names and packing. */
PT_TEST(schema_types_once)
static void
schema_types_once(void)
{
    Picos__V1__RpsSchema *s = NULL;
    const Picos__V1__RpsMessageType *all, *tree;
    const Picos__V1__RpsEnumType *color;

    CU_ASSERT_EQUAL_FATAL(pc__rps_schema_build(&picos__test__all__descriptor,
                                               &picos__test__tree__descriptor,
                                               &s),
                          PC_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(s->n_messages, 4); /* All, Tree, Inner, Forest */
    CU_ASSERT_STRING_EQUAL(s->messages[0]->name, "picos.test.All");
    CU_ASSERT_STRING_EQUAL(s->messages[1]->name, "picos.test.Tree");
    CU_ASSERT_PTR_NOT_NULL(schema_msg(s, "picos.test.Inner"));
    CU_ASSERT_PTR_NOT_NULL(schema_msg(s, "picos.test.Forest"));
    CU_ASSERT_EQUAL_FATAL(s->n_enums, 1);
    color = s->enums[0];
    CU_ASSERT_STRING_EQUAL(color->name, "picos.test.Color");
    CU_ASSERT_EQUAL_FATAL(color->n_values, 4);
    for (size_t i = 0; i < color->n_values; i++) {
        const Picos__V1__RpsEnumValue *v = color->values[i];
        int want = !strcmp(v->name, "COLOR_UNSPECIFIED") ? 0
                   : !strcmp(v->name, "RED")             ? 1
                   : !strcmp(v->name, "GREEN")           ? 2
                   : !strcmp(v->name, "INFRARED")        ? -1
                                                         : 99;
        CU_ASSERT_EQUAL(v->number, want);
    }

    all = schema_msg(s, "picos.test.All");
    CU_ASSERT_PTR_NOT_NULL_FATAL(all);
    CU_ASSERT_EQUAL(all->n_fields, 32);
    check_field(all, "i32", "i32", 1, L(OPTIONAL), T(INT32), "", false);
    check_field(all, "sf64", "sf64", 6, L(OPTIONAL), T(SFIXED64), "", false);
    check_field(all, "fl", "fl", 11, L(OPTIONAL), T(FLOAT), "", false);
    check_field(all, "color", "color", 14, L(OPTIONAL), T(ENUM),
                "picos.test.Color", false);
    check_field(all, "by", "by", 16, L(OPTIONAL), T(BYTES), "", false);
    check_field(all, "inner", "inner", 17, L(OPTIONAL), T(MESSAGE),
                "picos.test.Inner", false);
    check_field(all, "r_i32", "rI32", 18, L(REPEATED), T(INT32), "", true);
    check_field(all, "r_s64", "rS64", 19, L(REPEATED), T(SINT64), "", true);
    check_field(all, "r_str", "rStr", 24, L(REPEATED), T(STRING), "", false);
    check_field(all, "r_inner", "rInner", 26, L(REPEATED), T(MESSAGE),
                "picos.test.Inner", false);
    check_field(all, "r_u64", "rU64", 27, L(REPEATED), T(UINT64), "", false);
    check_field(all, "pick_name", "pickName", 30, L(PRESENT), T(STRING), "",
                false);
    check_field(all, "pick_num", "pickNum", 31, L(PRESENT), T(INT32), "",
                false);
    check_field(all, "snake_case_name_2x", "snakeCaseName2x", 32, L(OPTIONAL),
                T(STRING), "", false);
    check_field(all, "top_number", "topNumber", 536870911, L(OPTIONAL),
                T(UINT32), "", false);
    tree = schema_msg(s, "picos.test.Tree");
    check_field(tree, "kids", "kids", 2, L(REPEATED), T(MESSAGE),
                "picos.test.Tree", false);
    check_field(tree, "forest", "forest", 3, L(OPTIONAL), T(MESSAGE),
                "picos.test.Forest", false);

    /* it is a valid message: packs and unpacks to as many types */
    {
        size_t n = picos__v1__rps_schema__get_packed_size(s);
        uint8_t *buf = malloc(n);
        Picos__V1__RpsSchema *u;
        CU_ASSERT_FATAL(buf != NULL);
        picos__v1__rps_schema__pack(s, buf);
        u = picos__v1__rps_schema__unpack(NULL, n, buf);
        CU_ASSERT_PTR_NOT_NULL_FATAL(u);
        CU_ASSERT_EQUAL(u->n_messages, 4);
        CU_ASSERT_EQUAL(u->n_enums, 1);
        picos__v1__rps_schema__free_unpacked(u, NULL);
        free(buf);
    }
    pc__rps_schema_free(&s);
    CU_ASSERT_PTR_NULL(s);
    pc__rps_schema_free(&s); /* NULL: nothing */
}

/* proto2: required, optional (presence), unpacked and packed repeated. */
PT_TEST(schema_proto2_labels)
static void
schema_proto2_labels(void)
{
    Picos__V1__RpsSchema *s = NULL;
    const Picos__V1__RpsMessageType *m;

    CU_ASSERT_EQUAL_FATAL(
        pc__rps_schema_build(NULL, &picos__test2__legacy__descriptor, &s),
        PC_OK);
    CU_ASSERT_EQUAL(s->n_messages, 1);
    CU_ASSERT_EQUAL(s->n_enums, 0);
    m = schema_msg(s, "picos.test2.Legacy");
    check_field(m, "id", "id", 1, L(REQUIRED), T(INT32), "", false);
    check_field(m, "note", "note", 2, L(PRESENT), T(STRING), "", false);
    check_field(m, "big", "big", 3, L(PRESENT), T(INT64), "", false);
    check_field(m, "nums", "nums", 4, L(REPEATED), T(INT32), "", false);
    check_field(m, "packed_nums", "packedNums", 5, L(REPEATED), T(INT32), "",
                true);
    pc__rps_schema_free(&s);
}

/* The same type as request and response is described once; no type at
 * all, or something that is not a descriptor, is PC_EINVAL. */
PT_TEST(schema_edges)
static void
schema_edges(void)
{
    Picos__V1__RpsSchema *s = (Picos__V1__RpsSchema *)1;
    ProtobufCMessageDescriptor bad = picos__test__inner__descriptor;

    CU_ASSERT_EQUAL(pc__rps_schema_build(NULL, NULL, &s), PC_EINVAL);
    CU_ASSERT_PTR_NULL(s);
    CU_ASSERT_EQUAL(pc__rps_schema_build(&picos__test__inner__descriptor,
                                         &picos__test__inner__descriptor, &s),
                    PC_OK);
    CU_ASSERT_EQUAL(s->n_messages, 1);
    CU_ASSERT_EQUAL(s->messages[0]->n_fields, 1);
    CU_ASSERT_STRING_EQUAL(s->messages[0]->fields[0]->name, "value");
    pc__rps_schema_free(&s);
    bad.magic = 0;
    CU_ASSERT_EQUAL(pc__rps_schema_build(&bad, NULL, &s), PC_EINVAL);
    CU_ASSERT_PTR_NULL(s);
}

/* ---- JSON <-> bytes -------------------------------------------------------------- */

static char err[PBJSON_ERR_MAX];

/* The schema of All and Tree, through the wire as picos call gets it. */
static pbjson_schema *
schema_of(const ProtobufCMessageDescriptor *a,
          const ProtobufCMessageDescriptor *b)
{
    Picos__V1__RpsSchema *s = NULL;
    pbjson_schema *ps = NULL;
    uint8_t *buf;
    size_t n;

    CU_ASSERT_EQUAL_FATAL(pc__rps_schema_build(a, b, &s), PC_OK);
    n = picos__v1__rps_schema__get_packed_size(s);
    CU_ASSERT_FATAL((buf = malloc(n)) != NULL);
    picos__v1__rps_schema__pack(s, buf);
    pc__rps_schema_free(&s);
    if (pbjson_schema_load(buf, n, &ps, err, sizeof err) != PC_OK)
        fprintf(stderr, "\nschema: %s\n", err);
    free(buf);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ps);
    return ps;
}

static pbjson_schema *
all_schema(void)
{
    return schema_of(&picos__test__all__descriptor,
                     &picos__test__tree__descriptor);
}

/* JSON text -> bytes of type, or NULL with err set (a test failure when
 * `ok`). */
static uint8_t *
encode(const pbjson_schema *s, const char *type, const char *text, size_t *n,
       bool ok)
{
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
    uint8_t *out = NULL;
    pc_err rc;

    if (!j)
        fprintf(stderr, "\nbad test JSON %s: %s\n", text, je.text);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    rc = pbjson_encode(s, type, j, &out, n, err, sizeof err);
    json_decref(j);
    if (ok && rc != PC_OK)
        fprintf(stderr, "\nencode %s: %s\n", text, err);
    CU_ASSERT_EQUAL(rc == PC_OK, ok);
    if (rc == PC_OK)
        CU_ASSERT_STRING_EQUAL(err, "");
    if (rc != PC_OK)
        CU_ASSERT_PTR_NULL(out);
    return out;
}

/* Bytes of type -> compact JSON text (malloc'd), or NULL with err set. */
static char *
decode(const pbjson_schema *s, const char *type, const void *p, size_t n)
{
    json_t *j = NULL;
    char *t;

    if (pbjson_decode(s, type, p, n, &j, err, sizeof err) != PC_OK) {
        CU_ASSERT_PTR_NULL(j);
        return NULL;
    }
    CU_ASSERT_STRING_EQUAL(err, "");
    t = pbjson_dumps(j, false);
    json_decref(j);
    CU_ASSERT_PTR_NOT_NULL(t);
    return t;
}

static char *
decode_pb(const pbjson_schema *s, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    char *t;

    CU_ASSERT_FATAL(buf != NULL);
    protobuf_c_message_pack(m, buf);
    t = decode(s, m->descriptor->name, buf, n);
    if (!t)
        fprintf(stderr, "\ndecode %s: %s\n", m->descriptor->name, err);
    free(buf);
    return t;
}

static void
check_text(char *got, const char *want, int line)
{
    if (!got || strcmp(got, want))
        fprintf(stderr, "\nline %d:\n got  %s\n want %s\n", line,
                got ? got : "(null)", want);
    CU_ASSERT_TRUE(got && !strcmp(got, want));
    free(got);
}
#define TEXT_IS(got, want) check_text((got), (want), __LINE__)

/* Every field type written as JSON (JSON names and .proto names, numbers
 * and strings for integers, enum names and numbers, both base64
 * alphabets, NaN and Infinity) is what protobuf-c unpacks. */
PT_TEST(json_to_pb_every_type)
static void
json_to_pb_every_type(void)
{
    static const char text[] =
        "{\"i32\": -5, \"s32\": -7, \"sf32\": \"-9\","
        " \"i64\": \"-9223372036854775808\", \"s64\": -123456789012345,"
        " \"sf64\": 42, \"u32\": 4294967295, \"f32\": \"7\","
        " \"u64\": \"18446744073709551615\", \"f64\": 1.0, \"fl\": 0.1,"
        " \"db\": 1e300, \"b\": true, \"color\": \"INFRARED\","
        " \"str\": \"h\\u00e9llo\", \"by\": \"AAEC/w==\","
        " \"inner\": {\"value\": \"-3\"},"
        " \"rI32\": [1, -2, 3], \"r_s64\": [\"5\", -6],"
        " \"rF32\": [1, 4294967295], \"rDb\": [0.25, \"Infinity\", "
        "\"-Infinity\","
        " \"NaN\"], \"rB\": [true, false], \"rColor\": [\"RED\", 2, 7],"
        " \"rStr\": [\"a\", \"\"], \"rBy\": [\"\", \"_-8\"],"
        " \"rInner\": [{\"value\": 1}, {}], \"rU64\": [\"1\", 2],"
        " \"tree\": {\"label\": \"root\", \"kids\": [{\"label\": \"a\"},"
        " {\"label\": \"b\", \"forest\": {\"trees\": [{\"label\": \"c\"}],"
        " \"tint\": \"GREEN\"}}]},"
        " \"pickNum\": 0, \"snake_case_name_2x\": \"s\", \"topNumber\": 1,"
        " \"f64\": null}";
    pbjson_schema *s = all_schema();
    Picos__Test__All *a;
    uint8_t *b;
    size_t n;

    b = encode(s, "picos.test.All", text, &n, true);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    a = picos__test__all__unpack(NULL, n, b);
    free(b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_EQUAL(a->i32, -5);
    CU_ASSERT_EQUAL(a->s32, -7);
    CU_ASSERT_EQUAL(a->sf32, -9);
    CU_ASSERT_EQUAL(a->i64, INT64_MIN);
    CU_ASSERT_EQUAL(a->s64, -123456789012345LL);
    CU_ASSERT_EQUAL(a->sf64, 42);
    CU_ASSERT_EQUAL(a->u32, UINT32_MAX);
    CU_ASSERT_EQUAL(a->f32, 7);
    CU_ASSERT_EQUAL(a->u64, UINT64_MAX);
    CU_ASSERT_EQUAL(a->f64, 0); /* null: the default */
    CU_ASSERT_EQUAL(a->fl, 0.1f);
    CU_ASSERT_EQUAL(a->db, 1e300);
    CU_ASSERT_TRUE(a->b);
    CU_ASSERT_EQUAL(a->color, PICOS__TEST__COLOR__INFRARED);
    CU_ASSERT_STRING_EQUAL(a->str, "h\xc3\xa9llo");
    CU_ASSERT_EQUAL_FATAL(a->by.len, 4);
    CU_ASSERT_EQUAL(memcmp(a->by.data, "\x00\x01\x02\xff", 4), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a->inner);
    CU_ASSERT_EQUAL(a->inner->value, -3);
    CU_ASSERT_EQUAL_FATAL(a->n_r_i32, 3);
    CU_ASSERT(a->r_i32[0] == 1 && a->r_i32[1] == -2 && a->r_i32[2] == 3);
    CU_ASSERT_EQUAL_FATAL(a->n_r_s64, 2);
    CU_ASSERT(a->r_s64[0] == 5 && a->r_s64[1] == -6);
    CU_ASSERT_EQUAL_FATAL(a->n_r_f32, 2);
    CU_ASSERT(a->r_f32[0] == 1 && a->r_f32[1] == UINT32_MAX);
    CU_ASSERT_EQUAL_FATAL(a->n_r_db, 4);
    CU_ASSERT(a->r_db[0] == 0.25 && isinf(a->r_db[1]) && a->r_db[1] > 0 &&
              isinf(a->r_db[2]) && a->r_db[2] < 0 && isnan(a->r_db[3]));
    CU_ASSERT_EQUAL_FATAL(a->n_r_b, 2);
    CU_ASSERT(a->r_b[0] && !a->r_b[1]);
    CU_ASSERT_EQUAL_FATAL(a->n_r_color, 3);
    CU_ASSERT(a->r_color[0] == PICOS__TEST__COLOR__RED &&
              a->r_color[1] == PICOS__TEST__COLOR__GREEN &&
              (int)a->r_color[2] == 7);
    CU_ASSERT_EQUAL_FATAL(a->n_r_str, 2);
    CU_ASSERT_STRING_EQUAL(a->r_str[0], "a");
    CU_ASSERT_STRING_EQUAL(a->r_str[1], "");
    CU_ASSERT_EQUAL_FATAL(a->n_r_by, 2);
    CU_ASSERT_EQUAL(a->r_by[0].len, 0);
    CU_ASSERT_EQUAL_FATAL(a->r_by[1].len, 2);
    CU_ASSERT_EQUAL(memcmp(a->r_by[1].data, "\xff\xef", 2), 0);
    CU_ASSERT_EQUAL_FATAL(a->n_r_inner, 2);
    CU_ASSERT_EQUAL(a->r_inner[0]->value, 1);
    CU_ASSERT_EQUAL(a->r_inner[1]->value, 0);
    CU_ASSERT_EQUAL_FATAL(a->n_r_u64, 2);
    CU_ASSERT(a->r_u64[0] == 1 && a->r_u64[1] == 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a->tree);
    CU_ASSERT_STRING_EQUAL(a->tree->label, "root");
    CU_ASSERT_EQUAL_FATAL(a->tree->n_kids, 2);
    CU_ASSERT_STRING_EQUAL(a->tree->kids[1]->label, "b");
    CU_ASSERT_PTR_NOT_NULL_FATAL(a->tree->kids[1]->forest);
    CU_ASSERT_EQUAL(a->tree->kids[1]->forest->tint, PICOS__TEST__COLOR__GREEN);
    CU_ASSERT_EQUAL_FATAL(a->tree->kids[1]->forest->n_trees, 1);
    CU_ASSERT_STRING_EQUAL(a->tree->kids[1]->forest->trees[0]->label, "c");
    /* a oneof member has presence: its 0 is sent */
    CU_ASSERT_EQUAL(a->choice_case, PICOS__TEST__ALL__CHOICE_PICK_NUM);
    CU_ASSERT_EQUAL(a->pick_num, 0);
    CU_ASSERT_STRING_EQUAL(a->snake_case_name_2x, "s");
    CU_ASSERT_EQUAL(a->top_number, 1);
    picos__test__all__free_unpacked(a, NULL);
    pbjson_schema_free(&s);
    CU_ASSERT_PTR_NULL(s);
}

/* A message packed by protobuf-c, as JSON: JSON names, field-number
 * order, 64-bit integers as strings, enum names (unknown numbers as
 * numbers), base64, shortest reals, NaN/Infinity strings, defaults of
 * fields without presence left out. */
PT_TEST(pb_to_json_every_type)
static void
pb_to_json_every_type(void)
{
    pbjson_schema *s = all_schema();
    Picos__Test__All a = PICOS__TEST__ALL__INIT;
    Picos__Test__Inner in = PICOS__TEST__INNER__INIT, r0 = in, r1 = in;
    Picos__Test__Inner *rin[] = {&r0, &r1};
    Picos__Test__Tree t = PICOS__TEST__TREE__INIT, k = t, *kids[] = {&k};
    Picos__Test__Forest f = PICOS__TEST__FOREST__INIT;
    int32_t ri[] = {1, -2};
    int64_t rs[] = {INT64_MAX, INT64_MIN};
    uint32_t rf[] = {0, UINT32_MAX};
    double rd[] = {0.1, 1e-300};
    protobuf_c_boolean rb[] = {1, 0};
    Picos__Test__Color rc[] = {PICOS__TEST__COLOR__GREEN, 9};
    char *rstr[] = {"x\"y\\z\n", ""};
    ProtobufCBinaryData rby[] = {{1, (uint8_t *)"\xfb"}, {0, NULL}};
    uint64_t ru[] = {UINT64_MAX};

    TEXT_IS(decode_pb(s, &a.base), "{}");
    a.i32 = -1;
    a.s32 = INT32_MIN;
    a.sf32 = -2;
    a.i64 = INT64_MIN;
    a.s64 = -1;
    a.sf64 = 3;
    a.u32 = UINT32_MAX;
    a.f32 = 4;
    a.u64 = UINT64_MAX;
    a.f64 = 5;
    a.fl = 0.1f;
    a.db = NAN;
    a.b = 1;
    a.color = PICOS__TEST__COLOR__INFRARED;
    a.str = "caf\xc3\xa9";
    a.by = (ProtobufCBinaryData){3, (uint8_t *)"abc"};
    in.value = -7;
    a.inner = &in;
    a.n_r_i32 = 2, a.r_i32 = ri;
    a.n_r_s64 = 2, a.r_s64 = rs;
    a.n_r_f32 = 2, a.r_f32 = rf;
    a.n_r_db = 2, a.r_db = rd;
    a.n_r_b = 2, a.r_b = rb;
    a.n_r_color = 2, a.r_color = rc;
    a.n_r_str = 2, a.r_str = rstr;
    a.n_r_by = 2, a.r_by = rby;
    r0.value = 8;
    a.n_r_inner = 2, a.r_inner = rin;
    a.n_r_u64 = 1, a.r_u64 = ru;
    t.label = "root";
    k.label = "kid";
    f.tint = PICOS__TEST__COLOR__RED;
    k.forest = &f; /* an empty list of trees: "trees" left out */
    t.n_kids = 1, t.kids = kids;
    a.tree = &t;
    a.choice_case = PICOS__TEST__ALL__CHOICE_PICK_NAME;
    a.pick_name = "";
    a.snake_case_name_2x = "snake";
    a.top_number = 77;
    TEXT_IS(decode_pb(s, &a.base),
            "{\"i32\":-1,\"s32\":-2147483648,\"sf32\":-2,"
            "\"i64\":\"-9223372036854775808\",\"s64\":\"-1\",\"sf64\":\"3\","
            "\"u32\":4294967295,\"f32\":4,\"u64\":\"18446744073709551615\","
            "\"f64\":\"5\",\"fl\":0.1,\"db\":\"NaN\",\"b\":true,"
            "\"color\":\"INFRARED\",\"str\":\"caf\xc3\xa9\",\"by\":\"YWJj\","
            "\"inner\":{\"value\":\"-7\"},\"rI32\":[1,-2],"
            "\"rS64\":[\"9223372036854775807\",\"-9223372036854775808\"],"
            "\"rF32\":[0,4294967295],\"rDb\":[0.1,1e-300],"
            "\"rB\":[true,false],\"rColor\":[\"GREEN\",9],"
            "\"rStr\":[\"x\\\"y\\\\z\\n\",\"\"],\"rBy\":[\"+w==\",\"\"],"
            "\"rInner\":[{\"value\":\"8\"},{}],"
            "\"rU64\":[\"18446744073709551615\"],"
            "\"tree\":{\"label\":\"root\",\"kids\":[{\"label\":\"kid\","
            "\"forest\":{\"tint\":\"RED\"}}]},\"pickName\":\"\","
            "\"snakeCaseName2x\":\"snake\",\"topNumber\":77}");
    /* infinities, and a double that needs all 17 digits */
    {
        Picos__Test__All b = PICOS__TEST__ALL__INIT;
        b.fl = -INFINITY;
        b.db = 0.30000000000000004;
        TEXT_IS(decode_pb(s, &b.base),
                "{\"fl\":\"-Infinity\",\"db\":0.30000000000000004}");
        b.fl = 0;
        b.db = 2;
        TEXT_IS(decode_pb(s, &b.base), "{\"db\":2.0}");
    }
    pbjson_schema_free(&s);
}

/* JSON -> bytes -> JSON gives the canonical form back: JSON names, and
 * what equals the default gone. */
PT_TEST(json_round_trip)
static void
json_round_trip(void)
{
    static const char *const cases[][2] = {
        {"{\"r_i32\": [3], \"i32\": 0, \"str\": \"\", \"color\": 0,"
         " \"i64\": 12}",
         "{\"i64\":\"12\",\"rI32\":[3]}"},
        {"{\"pickName\": \"n\", \"inner\": {}}",
         "{\"inner\":{},\"pickName\":\"n\"}"},
        {"{\"tree\": {\"kids\": [{\"kids\": [{\"label\": \"deep\"}]}]}}",
         "{\"tree\":{\"kids\":[{\"kids\":[{\"label\":\"deep\"}]}]}}"},
        {"{\"fl\": \"1e3\", \"db\": -0.5, \"rColor\": []}",
         "{\"fl\":1000.0,\"db\":-0.5}"},
        /* -0.0 is not the default 0 (its bits are not 0), as in protobuf */
        {"{\"fl\": -0.0, \"db\": -0.0}", "{\"fl\":-0.0,\"db\":-0.0}"},
        {"{}", "{}"},
    };
    pbjson_schema *s = all_schema();

    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t n;
        uint8_t *b = encode(s, "picos.test.All", cases[i][0], &n, true);
        TEXT_IS(decode(s, "picos.test.All", b, n), cases[i][1]);
        free(b);
    }
    /* an empty message is no bytes at all */
    {
        size_t n = 99;
        uint8_t *b = encode(s, "picos.test.All", "{\"b\": false}", &n, true);
        CU_ASSERT_EQUAL(n, 0);
        CU_ASSERT_PTR_NULL(b);
    }
    pbjson_schema_free(&s);
}

/* The wire as protobuf reads it: packed or not whatever the schema says,
 * the last scalar wins, a message seen twice is merged, unknown fields
 * are skipped, a later default clears. */
PT_TEST(decode_wire_rules)
static void
decode_wire_rules(void)
{
    pbjson_schema *s = all_schema();
    /* r_u64 (27, unpacked in the schema) packed; r_i32 (18) unpacked */
    static const uint8_t packed[] = {0xda, 0x01, 0x02, 0x05, 0x06, /* 27 */
                                     0x90, 0x01, 0x07, 0x90, 0x01, 0x08};
    /* i32 = 1, then 2; inner {value 1}, then inner {} merged; field 99 */
    static const uint8_t twice[] = {
        0x08, 0x01, 0x08, 0x02, 0x8a, 0x01, 0x02, 0x08, 0x02, 0x8a, 0x01, 0x00,
        0x98, 0x06, 0x05, 0x9a, 0x06, 0x01, 0xff, 0x9d, 0x06, 1,    2,    3,
        4,    0x99, 0x06, 1,    2,    3,    4,    5,    6,    7,    8};
    /* u32 = 5 then 0 */
    static const uint8_t cleared[] = {0x38, 0x05, 0x38, 0x00};

    TEXT_IS(decode(s, "picos.test.All", packed, sizeof packed),
            "{\"rI32\":[7,8],\"rU64\":[\"5\",\"6\"]}");
    TEXT_IS(decode(s, "picos.test.All", twice, sizeof twice),
            "{\"i32\":2,\"inner\":{\"value\":\"1\"}}");
    TEXT_IS(decode(s, "picos.test.All", cleared, sizeof cleared), "{}");
    pbjson_schema_free(&s);
}

/* Floats at the ends of their range print and read back to the same
 * bits (the shortest text of FLT_MAX reads as a double just beyond
 * FLT_MAX: still a float); no bytes at all, even as NULL, is {}. */
PT_TEST(float_extremes)
static void
float_extremes(void)
{
    /* (not -0.0: protobuf-c does not pack it, it compares it to 0) */
    static const float v[] = {FLT_MAX, -FLT_MAX,    FLT_MIN,
                              1e-45f,  16777217.0f, 0.3f};
    pbjson_schema *s = all_schema();

    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        Picos__Test__All a = PICOS__TEST__ALL__INIT, *back;
        size_t n = 0;
        char *t;
        uint8_t *b;

        a.fl = v[i];
        t = decode_pb(s, &a.base);
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        b = encode(s, "picos.test.All", t, &n, true);
        free(t);
        back = picos__test__all__unpack(NULL, n, b);
        CU_ASSERT_PTR_NOT_NULL_FATAL(back);
        CU_ASSERT_EQUAL(memcmp(&back->fl, &v[i], sizeof(float)), 0);
        picos__test__all__free_unpacked(back, NULL);
        free(b);
    }
    TEXT_IS(decode(s, "picos.test.All", NULL, 0), "{}");
    pbjson_schema_free(&s);
}

/* proto2: a required field missing is refused before sending; optional
 * fields print their value, default or not. */
PT_TEST(proto2_required_and_presence)
static void
proto2_required_and_presence(void)
{
    pbjson_schema *s = schema_of(&picos__test2__legacy__descriptor, NULL);
    Picos__Test2__Legacy *l;
    uint8_t *b;
    size_t n;

    CU_ASSERT_PTR_NULL(
        encode(s, "picos.test2.Legacy", "{\"note\": \"x\"}", &n, false));
    CU_ASSERT_STRING_EQUAL(err, "field 'id' of picos.test2.Legacy: required");
    b = encode(s, "picos.test2.Legacy",
               "{\"id\": 0, \"note\": \"\", \"nums\": [1, 2],"
               " \"packedNums\": [3, 4]}",
               &n, true);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    l = picos__test2__legacy__unpack(NULL, n, b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    CU_ASSERT_EQUAL(l->id, 0);
    CU_ASSERT_TRUE(l->note != NULL && !strcmp(l->note, ""));
    CU_ASSERT_FALSE(l->has_big);
    CU_ASSERT_EQUAL(l->n_nums, 2);
    CU_ASSERT_EQUAL(l->n_packed_nums, 2);
    CU_ASSERT_EQUAL(l->packed_nums[1], 4);
    picos__test2__legacy__free_unpacked(l, NULL);
    TEXT_IS(decode(s, "picos.test2.Legacy", b, n),
            "{\"id\":0,\"note\":\"\",\"nums\":[1,2],\"packedNums\":[3,4]}");
    free(b);
    pbjson_schema_free(&s);
}

/* Each JSON mistake: refused with its one line, nothing encoded. */
PT_TEST(encode_errors)
static void
encode_errors(void)
{
    static const char *const cases[][2] = {
        {"{\"nope\": 1}", "unknown field 'nope' in picos.test.All"},
        {"{\"i32\": \"x\"}",
         "field 'i32' of picos.test.All: expected an integer (int32)"},
        {"{\"i32\": 2147483648}",
         "field 'i32' of picos.test.All: out of range for int32"},
        {"{\"u32\": -1}",
         "field 'u32' of picos.test.All: out of range for uint32"},
        {"{\"i32\": 1.5}",
         "field 'i32' of picos.test.All: expected an integer (int32)"},
        {"{\"i64\": \"12 \"}",
         "field 'i64' of picos.test.All: expected an integer (int64)"},
        {"{\"u64\": \"18446744073709551616\"}",
         "field 'u64' of picos.test.All: out of range for uint64"},
        {"{\"b\": 1}", "field 'b' of picos.test.All: expected true or false"},
        {"{\"color\": \"BLUE\"}",
         "field 'color' of picos.test.All: 'BLUE' is no value of "
         "picos.test.Color"},
        {"{\"color\": 1.5}", "field 'color' of picos.test.All: expected a "
                             "name of picos.test.Color or a number"},
        {"{\"by\": \"!!!!\"}", "field 'by' of picos.test.All: not base64"},
        {"{\"str\": 5}", "field 'str' of picos.test.All: expected a string"},
        {"{\"fl\": 1e39}",
         "field 'fl' of picos.test.All: out of range for float"},
        {"{\"fl\": -3.4028235677973366e38}",
         "field 'fl' of picos.test.All: out of range for float"},
        {"{\"db\": \"inf\"}", "field 'db' of picos.test.All: expected a "
                              "number"},
        {"{\"inner\": 5}", "field 'inner' of picos.test.All: expected an "
                           "object (picos.test.Inner)"},
        {"{\"inner\": {\"value\": \"x\"}}",
         "field 'value' of picos.test.Inner: expected an integer (sint64)"},
        {"{\"rI32\": [1, \"a\"]}",
         "field 'rI32[1]' of picos.test.All: expected an integer (int32)"},
        {"{\"rI32\": [1, null]}",
         "field 'rI32[1]' of picos.test.All: null in an array"},
        {"{\"rI32\": 5}", "field 'rI32' of picos.test.All: expected an array"},
        {"{\"r_i32\": [1], \"rI32\": [2]}",
         "field 'rI32' of picos.test.All given twice (as 'rI32' and "
         "'r_i32')"},
        {"{\"tree\": {\"kids\": [{\"lable\": \"x\"}]}}",
         "unknown field 'lable' in picos.test.Tree"},
        {"[1]", "picos.test.All: expected a JSON object"},
    };
    pbjson_schema *s = all_schema();
    size_t n;

    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        CU_ASSERT_PTR_NULL(encode(s, "picos.test.All", cases[i][0], &n, false));
        if (strcmp(err, cases[i][1]))
            fprintf(stderr, "\n%s:\n got  %s\n want %s\n", cases[i][0], err,
                    cases[i][1]);
        CU_ASSERT_STRING_EQUAL(err, cases[i][1]);
    }
    CU_ASSERT_PTR_NULL(encode(s, "picos.test.Nope", "{}", &n, false));
    CU_ASSERT_STRING_EQUAL(err, "unknown message type 'picos.test.Nope'");
    CU_ASSERT_FALSE(pbjson_schema_has(s, "picos.test.Nope"));
    CU_ASSERT_TRUE(pbjson_schema_has(s, "picos.test.Forest"));
    /* nesting: 64 levels are taken, 65 are not */
    {
        char text[4096] = "";
        for (int d = 1; d < PBJSON_MAX_DEPTH; d++)
            strcat(text, "{\"kids\": [");
        strcat(text, "{}");
        for (int d = 1; d < PBJSON_MAX_DEPTH; d++)
            strcat(text, "]}");
        free(encode(s, "picos.test.Tree", text, &n, true));
        memmove(text + 10, text, strlen(text) + 1);
        memcpy(text, "{\"kids\": [", 10);
        strcat(text, "]}");
        CU_ASSERT_PTR_NULL(encode(s, "picos.test.Tree", text, &n, false));
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "nested deeper than 64"));
    }
    pbjson_schema_free(&s);
}

/* Bytes that are not the type: each refused with its line, nothing
 * returned; nesting bounded. */
PT_TEST(decode_errors)
static void
decode_errors(void)
{
    static const struct {
        const char *bytes;
        size_t n;
        const char *want;
    } cases[] = {
        {"\x08", 1, "field 'i32' of picos.test.All: truncated"},
        {"\x0a\x01x", 3, "field 'i32' of picos.test.All: wire type 2, not 0"},
        {"\x7a\x05xy", 4, "field 'str' of picos.test.All: truncated"},
        {"\x7a\x02\xc3\x28", 4, "field 'str' of picos.test.All: not UTF-8"},
        {"\x7a\x03\xed\xa0\x80", 5,
         "field 'str' of picos.test.All: not "
         "UTF-8"},
        {"\x00\x01", 2, "picos.test.All: bad field tag"},
        {"\xa3\x06", 2, "picos.test.All: unknown field 100 does not parse"},
        {"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 11,
         "field 'i32' of picos.test.All: truncated"},
        {"\x8a\x01\x01\x08", 4,
         "field 'value' of picos.test.Inner: "
         "truncated"},
        {"\x92\x01\x03\x01\x02", 5,
         "field 'rI32' of picos.test.All: "
         "truncated"},
        {"\xfa\x07\x80\x80\x80\x80\x10", 7,
         "picos.test.All: unknown field 127 does not parse"},
        {"\x80\x80\x80\x80\x10\x00", 6, "picos.test.All: bad field tag"},
    };
    pbjson_schema *s = all_schema();

    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *t = decode(s, "picos.test.All", cases[i].bytes, cases[i].n);
        CU_ASSERT_PTR_NULL(t);
        free(t);
        if (strcmp(err, cases[i].want))
            fprintf(stderr, "\ncase %zu:\n got  %s\n want %s\n", i, err,
                    cases[i].want);
        CU_ASSERT_STRING_EQUAL(err, cases[i].want);
    }
    /* Tree.kids nested 65 deep: refused; 64: taken */
    {
        uint8_t b[1024];
        size_t n = 0;
        /* kids (field 2, LEN) holding kids holding ... an empty Tree */
        for (int d = PBJSON_MAX_DEPTH; d > 0; d--) {
            memmove(b + 2, b, n);
            b[0] = 0x12;
            b[1] = (uint8_t)n;
            n += 2;
        }
        /* 64 records of kids: the 64th kid is at depth 65 */
        CU_ASSERT_PTR_NULL(decode(s, "picos.test.Tree", b, n));
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "nested deeper than 64"));
        free(decode(s, "picos.test.Tree", b + 2, n - 2));
        CU_ASSERT_STRING_EQUAL(err, "");
    }
    CU_ASSERT_PTR_NULL(decode(s, "nope", "", 0));
    CU_ASSERT_STRING_EQUAL(err, "unknown message type 'nope'");
    pbjson_schema_free(&s);
}

/* ---- hostile schemas ------------------------------------------------------------ */

/* A schema of one message "t.M" whose one field is f (and the enum e when
 * given), packed, loaded: its rc and err. */
static pc_err
load_one(const Picos__V1__RpsField *f, const Picos__V1__RpsEnumType *e,
         const Picos__V1__RpsMessageType *extra)
{
    Picos__V1__RpsSchema s = PICOS__V1__RPS_SCHEMA__INIT;
    Picos__V1__RpsMessageType m = PICOS__V1__RPS_MESSAGE_TYPE__INIT,
                              *ms[2] = {&m, (Picos__V1__RpsMessageType *)extra};
    Picos__V1__RpsField *fs[1] = {(Picos__V1__RpsField *)f};
    Picos__V1__RpsEnumType *es[1] = {(Picos__V1__RpsEnumType *)e};
    pbjson_schema *ps = NULL;
    uint8_t buf[1024];
    size_t n;
    pc_err rc;

    m.name = "t.M";
    m.n_fields = f ? 1 : 0;
    m.fields = fs;
    s.n_messages = extra ? 2 : 1;
    s.messages = ms;
    s.n_enums = e ? 1 : 0;
    s.enums = es;
    n = picos__v1__rps_schema__get_packed_size(&s);
    CU_ASSERT_FATAL(n <= sizeof buf);
    picos__v1__rps_schema__pack(&s, buf);
    rc = pbjson_schema_load(buf, n, &ps, err, sizeof err);
    CU_ASSERT_EQUAL(rc == PC_OK, ps != NULL);
    pbjson_schema_free(&ps);
    return rc;
}

/* A schema from the network that does not hold together is refused
 * before use, with its line; a recursive one is fine. */
PT_TEST(schema_load_checks)
static void
schema_load_checks(void)
{
    Picos__V1__RpsField f = PICOS__V1__RPS_FIELD__INIT;
    Picos__V1__RpsEnumType e = PICOS__V1__RPS_ENUM_TYPE__INIT;
    Picos__V1__RpsMessageType dup = PICOS__V1__RPS_MESSAGE_TYPE__INIT;
    pbjson_schema *ps = (pbjson_schema *)1;

    CU_ASSERT_EQUAL(pbjson_schema_load("\xff", 1, &ps, err, sizeof err),
                    PC_EINVAL);
    CU_ASSERT_PTR_NULL(ps);
    CU_ASSERT_STRING_EQUAL(err, "schema: does not parse as picos.v1.RpsSchema");
    f.name = "x";
    f.number = 1;
    CU_ASSERT_EQUAL(load_one(&f, NULL, NULL), PC_OK);
    CU_ASSERT_EQUAL(load_one(NULL, NULL, NULL), PC_OK);
    f.type = PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_MESSAGE;
    f.type_name = "t.Nope";
    CU_ASSERT_EQUAL(load_one(&f, NULL, NULL), PC_EINVAL);
    CU_ASSERT_STRING_EQUAL(err, "schema: field 'x' of t.M: unknown message "
                                "type 't.Nope'");
    f.type_name = ".t.M"; /* itself, with protoc's leading dot */
    CU_ASSERT_EQUAL(load_one(&f, NULL, NULL), PC_OK);
    f.type = PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_ENUM;
    CU_ASSERT_EQUAL(load_one(&f, NULL, NULL), PC_EINVAL);
    CU_ASSERT_STRING_EQUAL(err, "schema: field 'x' of t.M: unknown enum type "
                                "'.t.M'");
    e.name = "t.M"; /* an enum may share a message's name: looked up apart */
    CU_ASSERT_EQUAL(load_one(&f, &e, NULL), PC_OK);
    {
        Picos__V1__RpsEnumValue v1 = PICOS__V1__RPS_ENUM_VALUE__INIT, v2 = v1,
                                *vs[2] = {&v1, &v2};
        v1.name = v2.name = "V";
        v2.number = 1;
        e.n_values = 2;
        e.values = vs;
        CU_ASSERT_EQUAL(load_one(&f, &e, NULL), PC_EINVAL);
        CU_ASSERT_STRING_EQUAL(err, "schema: enum t.M: two values named V");
        v2.name = "W"; /* aliases (one number, two names) are fine */
        v2.number = 0;
        CU_ASSERT_EQUAL(load_one(&f, &e, NULL), PC_OK);
        e.n_values = 0;
    }
    f.type = 99;
    CU_ASSERT_EQUAL(load_one(&f, NULL, NULL), PC_EINVAL);
    CU_ASSERT_STRING_EQUAL(err, "schema: field 'x' of t.M: unknown type 99");
    f.type = PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_INT32;
    f.label = 7;
    CU_ASSERT_EQUAL(load_one(&f, NULL, NULL), PC_EINVAL);
    CU_ASSERT_STRING_EQUAL(err, "schema: field 'x' of t.M: unknown label 7");
    f.label = 0;
    f.number = 0;
    CU_ASSERT_EQUAL(load_one(&f, NULL, NULL), PC_EINVAL);
    CU_ASSERT_STRING_EQUAL(err, "schema: field 'x' of t.M: bad number 0");
    f.number = FIELD_NUMBER_MAX_TEST + 1;
    CU_ASSERT_EQUAL(load_one(&f, NULL, NULL), PC_EINVAL);
    f.number = 1;
    f.name = "";
    CU_ASSERT_EQUAL(load_one(&f, NULL, NULL), PC_EINVAL);
    CU_ASSERT_STRING_EQUAL(err, "schema: t.M: a field without a proper name");
    f.name = "x";
    dup.name = "t.M";
    CU_ASSERT_EQUAL(load_one(&f, NULL, &dup), PC_EINVAL);
    CU_ASSERT_STRING_EQUAL(err, "schema: message type t.M described twice");
    /* two fields answering to one name; two with one number */
    {
        Picos__V1__RpsField g = f, *two[2] = {&f, &g};
        Picos__V1__RpsMessageType m = PICOS__V1__RPS_MESSAGE_TYPE__INIT;
        Picos__V1__RpsSchema s = PICOS__V1__RPS_SCHEMA__INIT, *sp = &s;
        Picos__V1__RpsMessageType *ms[1] = {&m};
        uint8_t buf[512];
        size_t n;

        (void)sp;
        m.name = "t.M";
        m.n_fields = 2;
        m.fields = two;
        s.n_messages = 1;
        s.messages = ms;
        g.name = "a_b";
        g.json_name = "x";
        g.number = 2;
        n = picos__v1__rps_schema__pack(&s, buf);
        CU_ASSERT_EQUAL(pbjson_schema_load(buf, n, &ps, err, sizeof err),
                        PC_EINVAL);
        CU_ASSERT_STRING_EQUAL(err, "schema: t.M: two fields named 'x'");
        g.json_name = "aB";
        g.number = 1;
        n = picos__v1__rps_schema__pack(&s, buf);
        CU_ASSERT_EQUAL(pbjson_schema_load(buf, n, &ps, err, sizeof err),
                        PC_EINVAL);
        CU_ASSERT_STRING_EQUAL(err, "schema: t.M: two fields numbered 1");
    }
}

/* The printer: jansson's layout when pretty, one line otherwise; strings
 * escaped (a NUL too). */
PT_TEST(dumps_layout)
static void
dumps_layout(void)
{
    json_t *j = json_pack("{s:[i,s#,{}],s:{},s:b,s:n,s:[]}", "a", 1, "x\0y",
                          (size_t)3, "b", "c", 0, "d", "e");
    char *mine, *theirs;

    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    mine = pbjson_dumps(j, true);
    theirs = json_dumps(j, JSON_INDENT(2));
    CU_ASSERT_STRING_EQUAL(mine, theirs);
    free(mine);
    free(theirs);
    TEXT_IS(pbjson_dumps(j, false),
            "{\"a\":[1,\"x\\u0000y\",{}],\"b\":{},\"c\":false,\"d\":null,"
            "\"e\":[]}");
    json_decref(j);
    j = json_pack("[f,f,f,f,f,f,f,f]", 1000.0, 1e15, 1e16, 1e-4, 1e-5, 123.456,
                  -0.0, 5e-324);
    TEXT_IS(pbjson_dumps(j, false), "[1000.0,1000000000000000.0,1e+16,0.0001,"
                                    "1e-05,123.456,-0.0,5e-324]");
    json_decref(j);
    j = json_real(NAN);
    CU_ASSERT_PTR_NULL(pbjson_dumps(j, false));
    json_decref(j);
    CU_ASSERT_PTR_NULL(pbjson_dumps(NULL, false));
}

PT_MAIN("pbjson", PT_ENTRY(schema_types_once), PT_ENTRY(schema_proto2_labels),
        PT_ENTRY(schema_edges), PT_ENTRY(json_to_pb_every_type),
        PT_ENTRY(pb_to_json_every_type), PT_ENTRY(json_round_trip),
        PT_ENTRY(decode_wire_rules), PT_ENTRY(float_extremes),
        PT_ENTRY(proto2_required_and_presence), PT_ENTRY(encode_errors),
        PT_ENTRY(decode_errors), PT_ENTRY(schema_load_checks),
        PT_ENTRY(dumps_layout))
