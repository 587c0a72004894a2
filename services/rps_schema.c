/* services/rps_schema.c — the RpsSchema of a typed service: its request
 * and response types, and every message and enum type they reach, built
 * from protobuf-c's descriptors (proto/rps.proto, RpsSchema).
 *
 * The walk is breadth first over one list of the message types found so
 * far: the request, the response, then the field types of each type in
 * turn, each added only when not already in the list, so recursive and
 * mutually recursive types (a tree of nodes, A -> B -> A) end the walk and
 * every type is described once, in an order fixed by the descriptors.
 * Enums are collected the same way. protobuf-c keeps no JSON names: they
 * are computed as protoc does (ToJsonName: an underscore is dropped and
 * the next character upper-cased, nothing else changes). protobuf-c's
 * labels say presence: NONE is a proto3 singular field (no presence),
 * OPTIONAL one with presence (proto2 optional, proto3 `optional`); oneof
 * members, NONE with the ONEOF flag, have presence too. The result is an
 * ordinary heap-allocated protobuf-c message, so
 * protobuf_c_message_free_unpacked() frees it, also half built.
 */
#include <stdlib.h>
#include <string.h>

#include "rps_int.h"

/* The types found so far; msgs[] is also the walk's queue. */
typedef struct walk {
    const ProtobufCMessageDescriptor **msgs;
    size_t nmsgs, capm;
    const ProtobufCEnumDescriptor **enums;
    size_t nenums, cape;
} walk;

/* Add p to *v (of *n, room for *cap) unless it is there; false: no
 * memory. Linear: a service's types are few. */
static bool
add_once(const void ***v, size_t *n, size_t *cap, const void *p)
{
    for (size_t i = 0; i < *n; i++)
        if ((*v)[i] == p)
            return true;
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 16;
        const void **nv = realloc((void *)*v, c * sizeof *nv);
        if (!nv)
            return false;
        *v = nv;
        *cap = c;
    }
    (*v)[(*n)++] = p;
    return true;
}

static bool
add_msg(walk *w, const ProtobufCMessageDescriptor *d)
{
    return add_once((const void ***)&w->msgs, &w->nmsgs, &w->capm, d);
}

static bool
add_enum(walk *w, const ProtobufCEnumDescriptor *d)
{
    return add_once((const void ***)&w->enums, &w->nenums, &w->cape, d);
}

/* Every type reachable from the ones already in w. PC_EINVAL for a
 * descriptor that is not one (bad magic: not a protobuf-c descriptor). */
static pc_err
collect(walk *w)
{
    for (size_t i = 0; i < w->nmsgs; i++) {
        const ProtobufCMessageDescriptor *d = w->msgs[i];

        if (d->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC)
            return PC_EINVAL;
        for (unsigned k = 0; k < d->n_fields; k++) {
            const ProtobufCFieldDescriptor *f = &d->fields[k];
            const ProtobufCEnumDescriptor *e = f->descriptor;

            if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
                if (!f->descriptor)
                    return PC_EINVAL;
                if (!add_msg(w, f->descriptor))
                    return PC_ENOMEM;
            } else if (f->type == PROTOBUF_C_TYPE_ENUM) {
                if (!e || e->magic != PROTOBUF_C__ENUM_DESCRIPTOR_MAGIC)
                    return PC_EINVAL;
                if (!add_enum(w, e))
                    return PC_ENOMEM;
            }
        }
    }
    return PC_OK;
}

/* ---- building the message --------------------------------------------------- */

/* A heap copy of s (free_unpacked frees every string that is not the
 * field's default), or NULL. */
static char *
dup(const char *s)
{
    return strdup(s ? s : "");
}

/* protoc's ToJsonName of a field name. */
static char *
json_name(const char *name)
{
    char *out = malloc(strlen(name) + 1), *o = out;
    bool up = false;

    if (!out)
        return NULL;
    for (const char *p = name; *p; p++) {
        if (*p == '_')
            up = true;
        else if (up) {
            *o++ = (*p >= 'a' && *p <= 'z') ? (char)(*p - 'a' + 'A') : *p;
            up = false;
        } else
            *o++ = *p;
    }
    *o = '\0';
    return out;
}

static Picos__V1__RpsFieldLabel
label(const ProtobufCFieldDescriptor *f)
{
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) /* protobuf-c says NONE */
        return PICOS__V1__RPS_FIELD_LABEL__RPS_LABEL_PRESENT;
    switch (f->label) {
    case PROTOBUF_C_LABEL_REQUIRED:
        return PICOS__V1__RPS_FIELD_LABEL__RPS_LABEL_REQUIRED;
    case PROTOBUF_C_LABEL_OPTIONAL:
        return PICOS__V1__RPS_FIELD_LABEL__RPS_LABEL_PRESENT;
    case PROTOBUF_C_LABEL_REPEATED:
        return PICOS__V1__RPS_FIELD_LABEL__RPS_LABEL_REPEATED;
    default: /* NONE: proto3 singular */
        return PICOS__V1__RPS_FIELD_LABEL__RPS_LABEL_OPTIONAL;
    }
}

/* RpsFieldType lists protobuf-c's types in protobuf-c's order. */
_Static_assert((int)PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_INT32 ==
                       (int)PROTOBUF_C_TYPE_INT32 &&
                   (int)PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_FIXED64 ==
                       (int)PROTOBUF_C_TYPE_FIXED64 &&
                   (int)PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_BOOL ==
                       (int)PROTOBUF_C_TYPE_BOOL &&
                   (int)PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_MESSAGE ==
                       (int)PROTOBUF_C_TYPE_MESSAGE,
               "RpsFieldType follows ProtobufCType");

static pc_err
field(const ProtobufCFieldDescriptor *f, Picos__V1__RpsField **out)
{
    Picos__V1__RpsField *r = malloc(sizeof *r);
    const char *tn = NULL;

    if (!r)
        return PC_ENOMEM;
    picos__v1__rps_field__init(r);
    *out = r; /* the caller's from here: freed with the schema */
    r->number = f->id;
    r->label = label(f);
    r->type = (Picos__V1__RpsFieldType)f->type;
    r->packed = (f->flags & PROTOBUF_C_FIELD_FLAG_PACKED) != 0;
    if (f->type == PROTOBUF_C_TYPE_MESSAGE)
        tn = ((const ProtobufCMessageDescriptor *)f->descriptor)->name;
    else if (f->type == PROTOBUF_C_TYPE_ENUM)
        tn = ((const ProtobufCEnumDescriptor *)f->descriptor)->name;
    if (!(r->name = dup(f->name)) || !(r->json_name = json_name(f->name)) ||
        (tn && !(r->type_name = dup(tn))))
        return PC_ENOMEM;
    return PC_OK;
}

static pc_err
message(const ProtobufCMessageDescriptor *d, Picos__V1__RpsMessageType **out)
{
    Picos__V1__RpsMessageType *m = malloc(sizeof *m);
    pc_err rc;

    if (!m)
        return PC_ENOMEM;
    picos__v1__rps_message_type__init(m);
    *out = m;
    if (!(m->name = dup(d->name)))
        return PC_ENOMEM;
    if (d->n_fields && !(m->fields = calloc(d->n_fields, sizeof *m->fields)))
        return PC_ENOMEM;
    for (unsigned k = 0; k < d->n_fields; k++) {
        rc = field(&d->fields[k], &m->fields[k]);
        if (m->fields[k])
            m->n_fields = k + 1;
        if (rc != PC_OK)
            return rc;
    }
    return PC_OK;
}

static pc_err
enumtype(const ProtobufCEnumDescriptor *d, Picos__V1__RpsEnumType **out)
{
    Picos__V1__RpsEnumType *e = malloc(sizeof *e);

    if (!e)
        return PC_ENOMEM;
    picos__v1__rps_enum_type__init(e);
    *out = e;
    if (!(e->name = dup(d->name)))
        return PC_ENOMEM;
    if (d->n_values && !(e->values = calloc(d->n_values, sizeof *e->values)))
        return PC_ENOMEM;
    for (unsigned k = 0; k < d->n_values; k++) {
        Picos__V1__RpsEnumValue *v = malloc(sizeof *v);
        if (!v)
            return PC_ENOMEM;
        picos__v1__rps_enum_value__init(v);
        e->values[k] = v;
        e->n_values = k + 1; /* v is whole: init set every field */
        v->number = d->values[k].value;
        if (!(v->name = dup(d->values[k].name)))
            return PC_ENOMEM;
    }
    return PC_OK;
}

static pc_err
build(const walk *w, Picos__V1__RpsSchema *s)
{
    pc_err rc;

    if (!(s->messages = calloc(w->nmsgs, sizeof *s->messages)) ||
        (w->nenums && !(s->enums = calloc(w->nenums, sizeof *s->enums))))
        return PC_ENOMEM;
    for (size_t i = 0; i < w->nmsgs; i++) {
        rc = message(w->msgs[i], &s->messages[i]);
        if (s->messages[i])
            s->n_messages = i + 1;
        if (rc != PC_OK)
            return rc;
    }
    for (size_t i = 0; i < w->nenums; i++) {
        rc = enumtype(w->enums[i], &s->enums[i]);
        if (s->enums[i])
            s->n_enums = i + 1;
        if (rc != PC_OK)
            return rc;
    }
    return PC_OK;
}

pc_err
pc__rps_schema_build(const ProtobufCMessageDescriptor *req,
                     const ProtobufCMessageDescriptor *resp,
                     Picos__V1__RpsSchema **out)
{
    walk w = {0};
    Picos__V1__RpsSchema *s = NULL;
    pc_err rc = PC_ENOMEM;

    if (!out)
        return PC_EINVAL;
    *out = NULL;
    if (!req && !resp)
        return PC_EINVAL;
    if ((req && !add_msg(&w, req)) || (resp && !add_msg(&w, resp)))
        goto done;
    if ((rc = collect(&w)) != PC_OK)
        goto done;
    rc = PC_ENOMEM;
    if (!(s = malloc(sizeof *s)))
        goto done;
    picos__v1__rps_schema__init(s);
    if ((rc = build(&w, s)) != PC_OK)
        pc__rps_schema_free(&s);
done:
    free((void *)w.msgs);
    free((void *)w.enums);
    *out = s;
    return rc;
}

void
pc__rps_schema_free(Picos__V1__RpsSchema **s)
{
    if (s && *s) {
        protobuf_c_message_free_unpacked(&(*s)->base, NULL);
        *s = NULL;
    }
}
