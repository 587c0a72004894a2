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
#include <math.h>

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

PT_MAIN("pbjson", PT_ENTRY(schema_types_once), PT_ENTRY(schema_proto2_labels),
        PT_ENTRY(schema_edges))
