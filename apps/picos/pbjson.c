/* apps/picos/pbjson.c — JSON <-> protobuf wire bytes through an RpsSchema
 * (pbjson.h says what is mapped how).
 *
 * The schema arrives as bytes from the service node; protobuf-c unpacks it
 * and pbjson_schema_load() turns it into an index that is checked whole
 * before any message is touched: types sorted by name (a name twice is an
 * error), each message's fields sorted by number (for the decoder's binary
 * search) and by name and JSON name in one sorted key table (for the
 * encoder's; two fields answering to one key is an error), every MESSAGE
 * and ENUM field resolved to its type once. After that the encoder and the
 * decoder follow pointers and never look a name up in the network's data
 * again, so an unknown type or a cycle of types costs nothing at run time:
 * only the data's nesting recurses, bounded by PBJSON_MAX_DEPTH.
 *
 * The encoder walks a message's fields in number order (the order
 * protobuf's own encoders use) and looks each up in the JSON object; a
 * first pass over the object's keys reports the keys no field answers to.
 * A nested message is encoded into a buffer of its own, then appended with
 * its length; every buffer stops at PBJSON_MAX_BYTES.
 *
 * The decoder reads records with every length checked against what is
 * left before anything is allocated, and builds the JSON object as
 * protobuf reads a message: a scalar seen twice keeps the last value, a
 * message seen twice is merged, repeated values (packed or not, whatever
 * the schema says) append. Unknown fields are skipped (groups refused). A
 * last pass puts the keys in field-number order and drops empty arrays.
 *
 * pbjson_dumps() is a small printer of its own because jansson prints
 * every real with 17 digits (0.1 as 0.10000000000000001); here a real gets
 * the fewest digits that read back as the same double, and a float field
 * is decoded through its own shortest form, so 0.1f prints as 0.1.
 */
#define _GNU_SOURCE
#include "pbjson.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "rps.pb-c.h"

#define NAME_LEN_MAX 512 /* type, field and enum value names */
#define FIELD_NUMBER_MAX 536870911u
#define TYPES_MAX 65536  /* messages + enums in a schema */
#define FIELDS_MAX 65536 /* fields of one message */
/* The smallest double that rounds to a float infinity: FLT_MAX plus half
 * its last place (FLT_MAX's last bit is 1, so the tie goes up). */
#define FLOAT_INF_FROM 0x1.ffffffp127

typedef Picos__V1__RpsField rfield;

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

typedef struct pj_value {
    int32_t number;
    size_t pos; /* in the schema's list: the first of aliases wins */
    const char *name;
} pj_value;

typedef struct pj_enum {
    const char *name;
    pj_value *by_num;  /* sorted by number, then position */
    pj_value *by_name; /* sorted by name (a name twice is an error) */
    size_t n;
} pj_enum;

struct pj_msg;

typedef struct pj_field {
    const rfield *f;
    const char *json;   /* f->json_name, or f->name when it is empty */
    struct pj_msg *msg; /* MESSAGE fields */
    const pj_enum *en;  /* ENUM fields */
    int wt;             /* the wire type of one value */
    bool repeated;      /* REPEATED */
    bool presence;      /* PRESENT, REQUIRED: printed even at default */
    bool packable;      /* a repeated scalar number: may come packed */
} pj_field;

typedef struct pj_key {
    const char *key;
    const pj_field *f;
} pj_key;

typedef struct pj_msg {
    const char *name;
    pj_field *fields; /* sorted by number */
    size_t n;
    pj_key *keys; /* names and JSON names, sorted */
    size_t nkeys;
} pj_msg;

struct pbjson_schema {
    Picos__V1__RpsSchema *s;
    pj_msg *msgs; /* sorted by name */
    size_t nmsgs;
    pj_enum *enums; /* sorted by name */
    size_t nenums;
};

/* ---- errors --------------------------------------------------------------- */

typedef struct ctx {
    char *err;
    size_t size;
} ctx;

/* The error line into c->err (control characters of names from the
 * network made '?', so the line stays one line); returns PC_EINVAL. */
static pc_err __attribute__((format(printf, 2, 3)))
fail(ctx *c, const char *fmt, ...)
{
    va_list ap;

    if (!c->err || !c->size)
        return PC_EINVAL;
    va_start(ap, fmt);
    vsnprintf(c->err, c->size, fmt, ap);
    va_end(ap);
    for (char *p = c->err; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return PC_EINVAL;
}

static pc_err
nomem(ctx *c)
{
    fail(c, "out of memory");
    return PC_ENOMEM;
}

/* "key" or "key[i]" (i >= 0) for an error line. */
static const char *
where(char *buf, size_t size, const char *key, long i)
{
    if (i < 0)
        snprintf(buf, size, "%.200s", key);
    else
        snprintf(buf, size, "%.200s[%ld]", key, i);
    return buf;
}

/* ---- the schema ------------------------------------------------------------ */

static bool
good_name(const char *s)
{
    return s && *s && strnlen(s, NAME_LEN_MAX + 1) <= NAME_LEN_MAX;
}

static int
msg_cmp(const void *a, const void *b)
{
    return strcmp(((const pj_msg *)a)->name, ((const pj_msg *)b)->name);
}

static int
enum_cmp(const void *a, const void *b)
{
    return strcmp(((const pj_enum *)a)->name, ((const pj_enum *)b)->name);
}

static int
field_cmp(const void *a, const void *b)
{
    uint32_t x = ((const pj_field *)a)->f->number,
             y = ((const pj_field *)b)->f->number;
    return x < y ? -1 : x > y;
}

static int
key_cmp(const void *a, const void *b)
{
    return strcmp(((const pj_key *)a)->key, ((const pj_key *)b)->key);
}

/* By number; equal numbers (aliases) by their position in the schema, so
 * the first name of a number is the one printed. */
static int
value_cmp(const void *a, const void *b)
{
    const pj_value *x = a, *y = b;

    if (x->number != y->number)
        return x->number < y->number ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static int
value_name_cmp(const void *a, const void *b)
{
    return strcmp(((const pj_value *)a)->name, ((const pj_value *)b)->name);
}

static const char *
strip_dot(const char *s)
{
    return *s == '.' ? s + 1 : s;
}

static pj_msg *
find_msg(const pbjson_schema *s, const char *name)
{
    pj_msg key = {.name = strip_dot(name)};

    return s->nmsgs ? bsearch(&key, s->msgs, s->nmsgs, sizeof key, msg_cmp)
                    : NULL;
}

static const pj_enum *
find_enum(const pbjson_schema *s, const char *name)
{
    pj_enum key = {.name = strip_dot(name)};

    return s->nenums ? bsearch(&key, s->enums, s->nenums, sizeof key, enum_cmp)
                     : NULL;
}

static int
wire_type(Picos__V1__RpsFieldType t)
{
    switch (t) {
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_SFIXED32:
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_FIXED32:
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_FLOAT:
        return WT_I32;
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_SFIXED64:
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_FIXED64:
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_DOUBLE:
        return WT_I64;
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_STRING:
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_BYTES:
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_MESSAGE:
        return WT_LEN;
    default:
        return WT_VARINT;
    }
}

static pc_err
load_enum(ctx *c, const Picos__V1__RpsEnumType *e, pj_enum *pe)
{
    if (!good_name(e->name))
        return fail(c, "schema: an enum type without a proper name");
    pe->name = e->name;
    if (e->n_values > FIELDS_MAX)
        return fail(c, "schema: enum %s has too many values", e->name);
    for (size_t i = 0; i < e->n_values; i++)
        if (!good_name(e->values[i]->name))
            return fail(c, "schema: enum %s: a value without a proper name",
                        e->name);
    if (!e->n_values)
        return PC_OK;
    if (!(pe->by_num = malloc(e->n_values * sizeof *pe->by_num)) ||
        !(pe->by_name = malloc(e->n_values * sizeof *pe->by_name)))
        return nomem(c);
    pe->n = e->n_values;
    for (size_t i = 0; i < e->n_values; i++)
        pe->by_num[i] = (pj_value){e->values[i]->number, i, e->values[i]->name};
    memcpy(pe->by_name, pe->by_num, pe->n * sizeof *pe->by_name);
    qsort(pe->by_num, pe->n, sizeof *pe->by_num, value_cmp);
    qsort(pe->by_name, pe->n, sizeof *pe->by_name, value_name_cmp);
    for (size_t i = 1; i < pe->n; i++)
        if (!strcmp(pe->by_name[i].name, pe->by_name[i - 1].name))
            return fail(c, "schema: enum %s: two values named %s", e->name,
                        pe->by_name[i].name);
    return PC_OK;
}

/* The fields of m (not yet their types: every type must be in place
 * first). */
static pc_err
load_msg(ctx *c, const Picos__V1__RpsMessageType *t, pj_msg *m)
{
    if (!good_name(t->name))
        return fail(c, "schema: a message type without a proper name");
    m->name = t->name;
    if (t->n_fields > FIELDS_MAX)
        return fail(c, "schema: %s has too many fields", t->name);
    if (!t->n_fields)
        return PC_OK;
    if (!(m->fields = calloc(t->n_fields, sizeof *m->fields)) ||
        !(m->keys = calloc(2 * t->n_fields, sizeof *m->keys)))
        return nomem(c);
    m->n = t->n_fields;
    for (size_t i = 0; i < m->n; i++) {
        const rfield *f = t->fields[i];
        pj_field *pf = &m->fields[i];

        pf->f = f;
        if (!good_name(f->name))
            return fail(c, "schema: %s: a field without a proper name",
                        t->name);
        pf->json = f->json_name && *f->json_name ? f->json_name : f->name;
        if (!good_name(pf->json))
            return fail(c, "schema: field '%s' of %s: bad JSON name", f->name,
                        t->name);
        if (f->number < 1 || f->number > FIELD_NUMBER_MAX)
            return fail(c, "schema: field '%s' of %s: bad number %" PRIu32,
                        f->name, t->name, f->number);
        if ((unsigned)f->type > PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_MESSAGE)
            return fail(c, "schema: field '%s' of %s: unknown type %d", f->name,
                        t->name, (int)f->type);
        if ((unsigned)f->label > PICOS__V1__RPS_FIELD_LABEL__RPS_LABEL_PRESENT)
            return fail(c, "schema: field '%s' of %s: unknown label %d",
                        f->name, t->name, (int)f->label);
        pf->wt = wire_type(f->type);
        pf->repeated =
            f->label == PICOS__V1__RPS_FIELD_LABEL__RPS_LABEL_REPEATED;
        pf->presence =
            f->label == PICOS__V1__RPS_FIELD_LABEL__RPS_LABEL_PRESENT ||
            f->label == PICOS__V1__RPS_FIELD_LABEL__RPS_LABEL_REQUIRED;
        pf->packable = pf->repeated && pf->wt != WT_LEN;
    }
    qsort(m->fields, m->n, sizeof *m->fields, field_cmp);
    for (size_t i = 0; i < m->n; i++) {
        pj_field *pf = &m->fields[i];

        if (i && pf->f->number == m->fields[i - 1].f->number)
            return fail(c, "schema: %s: two fields numbered %" PRIu32, t->name,
                        pf->f->number);
        m->keys[m->nkeys++] = (pj_key){pf->f->name, pf};
        if (strcmp(pf->json, pf->f->name))
            m->keys[m->nkeys++] = (pj_key){pf->json, pf};
    }
    qsort(m->keys, m->nkeys, sizeof *m->keys, key_cmp);
    for (size_t i = 1; i < m->nkeys; i++)
        if (!strcmp(m->keys[i].key, m->keys[i - 1].key))
            return fail(c, "schema: %s: two fields named '%s'", t->name,
                        m->keys[i].key);
    return PC_OK;
}

/* Every MESSAGE and ENUM field of m pointed at its type. */
static pc_err
resolve(ctx *c, pbjson_schema *s, pj_msg *m)
{
    for (size_t i = 0; i < m->n; i++) {
        pj_field *pf = &m->fields[i];
        const char *tn = pf->f->type_name ? pf->f->type_name : "";

        if (pf->f->type == PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_MESSAGE &&
            !(pf->msg = find_msg(s, tn)))
            return fail(c,
                        "schema: field '%s' of %s: unknown message type "
                        "'%.200s'",
                        pf->f->name, m->name, tn);
        if (pf->f->type == PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_ENUM &&
            !(pf->en = find_enum(s, tn)))
            return fail(c,
                        "schema: field '%s' of %s: unknown enum type "
                        "'%.200s'",
                        pf->f->name, m->name, tn);
    }
    return PC_OK;
}

static pc_err
load(ctx *c, pbjson_schema *s)
{
    const Picos__V1__RpsSchema *r = s->s;
    pc_err rc;

    if (r->n_messages + r->n_enums > TYPES_MAX)
        return fail(c, "schema: too many types (%zu)",
                    r->n_messages + r->n_enums);
    if ((r->n_messages &&
         !(s->msgs = calloc(r->n_messages, sizeof *s->msgs))) ||
        (r->n_enums && !(s->enums = calloc(r->n_enums, sizeof *s->enums))))
        return nomem(c);
    /* counted as they are filled: pbjson_schema_free frees what is there */
    for (size_t i = 0; i < r->n_enums; i++) {
        s->nenums = i + 1;
        if ((rc = load_enum(c, r->enums[i], &s->enums[i])) != PC_OK)
            return rc;
    }
    for (size_t i = 0; i < r->n_messages; i++) {
        s->nmsgs = i + 1;
        if ((rc = load_msg(c, r->messages[i], &s->msgs[i])) != PC_OK)
            return rc;
    }
    if (s->nmsgs) /* (qsort wants a base even for none) */
        qsort(s->msgs, s->nmsgs, sizeof *s->msgs, msg_cmp);
    if (s->nenums)
        qsort(s->enums, s->nenums, sizeof *s->enums, enum_cmp);
    for (size_t i = 1; i < s->nmsgs; i++)
        if (!strcmp(s->msgs[i].name, s->msgs[i - 1].name))
            return fail(c, "schema: message type %s described twice",
                        s->msgs[i].name);
    for (size_t i = 1; i < s->nenums; i++)
        if (!strcmp(s->enums[i].name, s->enums[i - 1].name))
            return fail(c, "schema: enum type %s described twice",
                        s->enums[i].name);
    for (size_t i = 0; i < s->nmsgs; i++)
        if ((rc = resolve(c, s, &s->msgs[i])) != PC_OK)
            return rc;
    return PC_OK;
}

pc_err
pbjson_schema_load(const void *data, size_t len, pbjson_schema **out, char *err,
                   size_t errsize)
{
    ctx c = {err, errsize};
    pbjson_schema *s;
    pc_err rc;

    if (err && errsize)
        *err = '\0';
    if (!out)
        return fail(&c, "no schema");
    *out = NULL;
    if (!(s = calloc(1, sizeof *s)))
        return nomem(&c);
    s->s = picos__v1__rps_schema__unpack(NULL, len, data);
    if (!s->s) {
        free(s);
        return fail(&c, "schema: does not parse as picos.v1.RpsSchema");
    }
    if ((rc = load(&c, s)) != PC_OK) {
        pbjson_schema_free(&s);
        return rc;
    }
    *out = s;
    return PC_OK;
}

bool
pbjson_schema_has(const pbjson_schema *s, const char *type)
{
    return s && type && find_msg(s, type) != NULL;
}

void
pbjson_schema_free(pbjson_schema **sp)
{
    pbjson_schema *s = sp ? *sp : NULL;

    if (!s)
        return;
    for (size_t i = 0; i < s->nmsgs; i++) {
        free(s->msgs[i].fields);
        free(s->msgs[i].keys);
    }
    for (size_t i = 0; i < s->nenums; i++) {
        free(s->enums[i].by_num);
        free(s->enums[i].by_name);
    }
    free(s->msgs);
    free(s->enums);
    if (s->s)
        picos__v1__rps_schema__free_unpacked(s->s, NULL);
    free(s);
    *sp = NULL;
}

static const pj_field *
field_by_key(const pj_msg *m, const char *key)
{
    pj_key k = {.key = key}, *r;

    if (!m->nkeys)
        return NULL;
    r = bsearch(&k, m->keys, m->nkeys, sizeof k, key_cmp);
    return r ? r->f : NULL;
}

static const pj_field *
field_by_number(const pj_msg *m, uint32_t n)
{
    size_t lo = 0, hi = m->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint32_t x = m->fields[mid].f->number;
        if (x == n)
            return &m->fields[mid];
        if (x < n)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static const char *
enum_name(const pj_enum *e, int32_t v)
{
    size_t lo = 0, hi = e->n;

    while (lo < hi) { /* the first of equal numbers */
        size_t mid = lo + (hi - lo) / 2;
        if (e->by_num[mid].number < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < e->n && e->by_num[lo].number == v ? e->by_num[lo].name : NULL;
}

static bool
enum_value(const pj_enum *e, const char *name, int32_t *v)
{
    pj_value key = {.name = name}, *r;

    r = e->n ? bsearch(&key, e->by_name, e->n, sizeof key, value_name_cmp)
             : NULL;
    if (r)
        *v = r->number;
    return r != NULL;
}

/* ---- base64 ---------------------------------------------------------------- */

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *
pbjson_base64(const void *data, size_t n)
{
    const uint8_t *p = data;
    char *out = malloc(4 * ((n + 2) / 3) + 1), *o = out;

    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        *o++ = b64[v >> 18];
        *o++ = b64[(v >> 12) & 63];
        *o++ = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        *o++ = i + 2 < n ? b64[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

static int
b64_digit(char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+' || ch == '-')
        return 62;
    if (ch == '/' || ch == '_')
        return 63;
    return -1;
}

/* Standard or URL-safe base64, padded or not. 1 ok (*out malloc'd, may be
 * NULL when *len is 0), 0 not base64, -1 no memory. */
static int
b64_decode(const char *s, size_t n, uint8_t **out, size_t *len)
{
    uint8_t *o;
    uint32_t acc = 0;
    size_t bits = 0, k = 0;

    *out = NULL;
    *len = 0;
    if (n % 4 == 0 && n >= 1 && s[n - 1] == '=')
        n -= (n >= 2 && s[n - 2] == '=') ? 2 : 1;
    if (n % 4 == 1)
        return 0;
    if (!n)
        return 1;
    if (!(o = malloc(n / 4 * 3 + 3)))
        return -1;
    for (size_t i = 0; i < n; i++) {
        int d = b64_digit(s[i]);
        if (d < 0) {
            free(o);
            return 0;
        }
        acc = (acc << 6) | (uint32_t)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[k++] = (uint8_t)(acc >> bits);
        }
    }
    *out = o;
    *len = k;
    return 1;
}

/* ---- encoding ---------------------------------------------------------------- */

typedef struct buf {
    uint8_t *p;
    size_t len, cap;
} buf;

typedef struct enc {
    ctx c;
} enc;

static pc_err
bput(enc *e, buf *b, const void *d, size_t n)
{
    if (n > PBJSON_MAX_BYTES - b->len)
        return fail(&e->c, "the message would be larger than %u bytes",
                    PBJSON_MAX_BYTES);
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        uint8_t *p;
        while (cap < b->len + n)
            cap *= 2;
        if (!(p = realloc(b->p, cap)))
            return nomem(&e->c);
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, d, n);
    b->len += n;
    return PC_OK;
}

static pc_err
bvarint(enc *e, buf *b, uint64_t v)
{
    uint8_t t[10];
    size_t n = 0;

    do {
        t[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return bput(e, b, t, n);
}

static pc_err
bfixed(enc *e, buf *b, uint64_t v, size_t n)
{
    uint8_t t[8];

    for (size_t i = 0; i < n; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    return bput(e, b, t, n);
}

static pc_err
btag(enc *e, buf *b, uint32_t number, int wt)
{
    return bvarint(e, b, ((uint64_t)number << 3) | (unsigned)wt);
}

/* One value ready for the wire: u (a varint, or a fixed value's bits) or
 * data/len (LEN types; own is what to free). */
typedef struct wv {
    uint64_t u;
    const uint8_t *data;
    size_t len;
    uint8_t *own;
} wv;

static bool
is_default(const pj_field *pf, const wv *w)
{
    if (pf->f->type == PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_MESSAGE)
        return false;
    return pf->wt == WT_LEN ? w->len == 0 : w->u == 0;
}

/* JSON integer (a number with no fraction, or a decimal string) into *v:
 * 0 ok, -1 not an integer, -2 out of [lo, hi]. */
static int
j_signed(const json_t *j, int64_t lo, int64_t hi, int64_t *v)
{
    if (json_is_integer(j)) {
        *v = json_integer_value(j);
    } else if (json_is_real(j)) {
        double d = json_real_value(j);
        /* (beyond 2^53 every double is an integer: range first) */
        if (!isfinite(d))
            return -1;
        if (d < -9223372036854775808.0 || d >= 9223372036854775808.0)
            return -2;
        *v = (int64_t)d;
        if ((double)*v != d)
            return -1;
    } else if (json_is_string(j)) {
        const char *s = json_string_value(j), *p = s + (*s == '-');
        char *end;
        if (!*p || strspn(p, "0123456789") != strlen(p) ||
            json_string_length(j) != strlen(s))
            return -1;
        errno = 0;
        *v = strtoll(s, &end, 10);
        if (errno == ERANGE)
            return -2;
    } else {
        return -1;
    }
    return *v < lo || *v > hi ? -2 : 0;
}

static int
j_unsigned(const json_t *j, uint64_t hi, uint64_t *v)
{
    if (json_is_integer(j)) {
        json_int_t i = json_integer_value(j);
        if (i < 0)
            return -2;
        *v = (uint64_t)i;
    } else if (json_is_real(j)) {
        double d = json_real_value(j);
        if (!isfinite(d))
            return -1;
        if (d > -1 && d < 0)
            return -1; /* a fraction, below 0 */
        if (d < 0 || d >= 18446744073709551616.0)
            return d == (double)(int64_t)d || d < -9e18 ? -2 : -1;
        *v = (uint64_t)d;
        if ((double)*v != d)
            return -1;
    } else if (json_is_string(j)) {
        const char *s = json_string_value(j), *p = s + (*s == '-');
        char *end;
        if (!*p || strspn(p, "0123456789") != strlen(p) ||
            json_string_length(j) != strlen(s))
            return -1;
        if (*s == '-')
            return strspn(p, "0") == strlen(p) ? (*v = 0, 0) : -2;
        errno = 0;
        *v = strtoull(s, &end, 10);
        if (errno == ERANGE)
            return -2;
    } else {
        return -1;
    }
    return *v > hi ? -2 : 0;
}

/* JSON number or "NaN" / "Infinity" / "-Infinity" / a number in a string:
 * 0 ok, -1 not a number. */
static int
j_double(const json_t *j, double *v)
{
    const char *s;
    char *end;

    if (json_is_number(j)) {
        *v = json_number_value(j);
        return 0;
    }
    if (!json_is_string(j))
        return -1;
    s = json_string_value(j);
    if (!strcmp(s, "NaN"))
        *v = NAN;
    else if (!strcmp(s, "Infinity"))
        *v = INFINITY;
    else if (!strcmp(s, "-Infinity"))
        *v = -INFINITY;
    else {
        /* a JSON number's characters only: no "inf", "nan", hex, spaces */
        if (!*s || strspn(s, "0123456789+-.eE") != strlen(s) ||
            json_string_length(j) != strlen(s))
            return -1;
        errno = 0;
        *v = strtod(s, &end);
        if (*end || !isfinite(*v))
            return -1;
    }
    return 0;
}

static const char *const type_names[] = {
    "int32",  "sint32",  "sfixed32", "int64",   "sint64", "sfixed64",
    "uint32", "fixed32", "uint64",   "fixed64", "float",  "double",
    "bool",   "enum",    "string",   "bytes",   "message"};

static pc_err msg_encode(enc *e, const pj_msg *m, const json_t *obj, int depth,
                         buf *out);

/* An integer of field pf's type from j into w->u (two's complement or
 * zigzag as the wire wants). */
static pc_err
int_value(enc *e, const pj_field *pf, const pj_msg *m, const json_t *j,
          const char *at, wv *w)
{
    int64_t s = 0;
    uint64_t u = 0;
    int r;

    switch (pf->f->type) {
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_INT32:
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_SINT32:
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_SFIXED32:
        r = j_signed(j, INT32_MIN, INT32_MAX, &s);
        break;
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_INT64:
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_SINT64:
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_SFIXED64:
        r = j_signed(j, INT64_MIN, INT64_MAX, &s);
        break;
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_UINT32:
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_FIXED32:
        r = j_unsigned(j, UINT32_MAX, &u);
        break;
    default:
        r = j_unsigned(j, UINT64_MAX, &u);
    }
    if (r == -1)
        return fail(&e->c, "field '%s' of %s: expected an integer (%s)", at,
                    m->name, type_names[pf->f->type]);
    if (r == -2)
        return fail(&e->c, "field '%s' of %s: out of range for %s", at, m->name,
                    type_names[pf->f->type]);
    switch (pf->f->type) {
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_INT32:
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_INT64:
        w->u = (uint64_t)s; /* a negative int32 is sign-extended: 10 bytes */
        break;
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_SFIXED32:
        w->u = (uint32_t)(int32_t)s;
        break;
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_SFIXED64:
        w->u = (uint64_t)s;
        break;
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_SINT32:
        w->u = (uint32_t)(s < 0 ? ~((uint32_t)s << 1) : (uint32_t)s << 1);
        break;
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_SINT64:
        w->u = s < 0 ? ~((uint64_t)s << 1) : (uint64_t)s << 1;
        break;
    default:
        w->u = u;
    }
    return PC_OK;
}

/* JSON value j of field pf (one element when repeated) as a wire value. */
static pc_err
value(enc *e, const pj_field *pf, const pj_msg *m, const json_t *j,
      const char *at, int depth, wv *w)
{
    double d;
    int32_t ev;
    int r;

    memset(w, 0, sizeof *w);
    switch (pf->f->type) {
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_FLOAT:
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_DOUBLE:
        if (j_double(j, &d) < 0)
            return fail(&e->c, "field '%s' of %s: expected a number", at,
                        m->name);
        if (pf->f->type == PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_FLOAT) {
            float f = (float)d;
            uint32_t bits;
            /* out of range: what rounds to infinity, not what is beyond
             * FLT_MAX (the shortest text of -FLT_MAX reads as a double a
             * little beyond it) */
            if (isfinite(d) && (d >= FLOAT_INF_FROM || d <= -FLOAT_INF_FROM))
                return fail(&e->c, "field '%s' of %s: out of range for float",
                            at, m->name);
            memcpy(&bits, &f, 4);
            w->u = bits;
        } else {
            memcpy(&w->u, &d, 8);
        }
        return PC_OK;
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_BOOL:
        if (!json_is_boolean(j))
            return fail(&e->c, "field '%s' of %s: expected true or false", at,
                        m->name);
        w->u = json_is_true(j);
        return PC_OK;
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_ENUM:
        if (json_is_string(j)) {
            if (!enum_value(pf->en, json_string_value(j), &ev))
                return fail(&e->c,
                            "field '%s' of %s: '%.100s' is no value of "
                            "%s",
                            at, m->name, json_string_value(j), pf->en->name);
        } else {
            int64_t s;
            if (j_signed(j, INT32_MIN, INT32_MAX, &s) < 0)
                return fail(&e->c,
                            "field '%s' of %s: expected a name of %s "
                            "or a number",
                            at, m->name, pf->en->name);
            ev = (int32_t)s;
        }
        w->u = (uint64_t)(int64_t)ev;
        return PC_OK;
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_STRING:
        if (!json_is_string(j))
            return fail(&e->c, "field '%s' of %s: expected a string", at,
                        m->name);
        w->data = (const uint8_t *)json_string_value(j);
        w->len = json_string_length(j);
        return PC_OK;
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_BYTES:
        if (!json_is_string(j))
            return fail(&e->c, "field '%s' of %s: expected a base64 string", at,
                        m->name);
        r = b64_decode(json_string_value(j), json_string_length(j), &w->own,
                       &w->len);
        if (r < 0)
            return nomem(&e->c);
        if (r == 0)
            return fail(&e->c, "field '%s' of %s: not base64", at, m->name);
        w->data = w->own;
        return PC_OK;
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_MESSAGE: {
        buf b = {0};
        pc_err rc;
        if (!json_is_object(j))
            return fail(&e->c, "field '%s' of %s: expected an object (%s)", at,
                        m->name, pf->msg->name);
        if (depth + 1 > PBJSON_MAX_DEPTH)
            return fail(&e->c, "field '%s' of %s: nested deeper than %d", at,
                        m->name, PBJSON_MAX_DEPTH);
        if ((rc = msg_encode(e, pf->msg, j, depth + 1, &b)) != PC_OK) {
            free(b.p);
            return rc;
        }
        w->own = b.p;
        w->data = b.p;
        w->len = b.len;
        return PC_OK;
    }
    default:
        return int_value(e, pf, m, j, at, w);
    }
}

/* w as field pf's value, without its tag (LEN: the length first). */
static pc_err
put_value(enc *e, buf *b, const pj_field *pf, const wv *w)
{
    pc_err rc;

    switch (pf->wt) {
    case WT_VARINT:
        return bvarint(e, b, w->u);
    case WT_I32:
        return bfixed(e, b, w->u, 4);
    case WT_I64:
        return bfixed(e, b, w->u, 8);
    default:
        if ((rc = bvarint(e, b, w->len)) != PC_OK)
            return rc;
        return bput(e, b, w->data, w->len);
    }
}

static pc_err
put_field(enc *e, buf *b, const pj_field *pf, const wv *w)
{
    pc_err rc = btag(e, b, pf->f->number, pf->wt);

    return rc == PC_OK ? put_value(e, b, pf, w) : rc;
}

/* A repeated field: each element its own record, or one packed record. */
static pc_err
repeated(enc *e, buf *b, const pj_field *pf, const pj_msg *m, const json_t *arr,
         const char *key, int depth)
{
    bool packed = pf->packable && pf->f->packed;
    buf p = {0};
    pc_err rc = PC_OK;
    char at[256];

    if (!json_is_array(arr))
        return fail(&e->c, "field '%s' of %s: expected an array", key, m->name);
    for (size_t i = 0; rc == PC_OK && i < json_array_size(arr); i++) {
        const json_t *j = json_array_get(arr, i);
        wv w;
        where(at, sizeof at, key, (long)i);
        if (json_is_null(j))
            rc = fail(&e->c, "field '%s' of %s: null in an array", at, m->name);
        else if ((rc = value(e, pf, m, j, at, depth, &w)) == PC_OK) {
            rc = packed ? put_value(e, &p, pf, &w) : put_field(e, b, pf, &w);
            free(w.own);
        }
    }
    if (rc == PC_OK && packed && p.len) {
        wv w = {.data = p.p, .len = p.len};
        if ((rc = btag(e, b, pf->f->number, WT_LEN)) == PC_OK &&
            (rc = bvarint(e, b, w.len)) == PC_OK)
            rc = bput(e, b, w.data, w.len);
    }
    free(p.p);
    return rc;
}

static pc_err
msg_encode(enc *e, const pj_msg *m, const json_t *obj, int depth, buf *out)
{
    const char *key;
    const json_t *v;
    pc_err rc;

    /* first the keys no field answers to, and fields given twice */
    json_object_foreach((json_t *)obj, key, v)
    {
        const pj_field *pf = field_by_key(m, key);
        if (!pf)
            return fail(&e->c, "unknown field '%.200s' in %s", key, m->name);
        if (strcmp(pf->json, pf->f->name) && !strcmp(key, pf->f->name) &&
            json_object_get(obj, pf->json))
            return fail(&e->c,
                        "field '%s' of %s given twice (as '%s' and "
                        "'%s')",
                        pf->json, m->name, pf->json, pf->f->name);
    }
    for (size_t i = 0; i < m->n; i++) {
        const pj_field *pf = &m->fields[i];
        const char *k = pf->json;
        wv w;

        if (!(v = json_object_get(obj, k)))
            v = json_object_get(obj, k = pf->f->name);
        if (!v || json_is_null(v)) {
            if (pf->f->label == PICOS__V1__RPS_FIELD_LABEL__RPS_LABEL_REQUIRED)
                return fail(&e->c, "field '%s' of %s: required", pf->json,
                            m->name);
            continue;
        }
        if (pf->repeated) {
            if ((rc = repeated(e, out, pf, m, v, k, depth)) != PC_OK)
                return rc;
            continue;
        }
        if ((rc = value(e, pf, m, v, k, depth, &w)) != PC_OK)
            return rc;
        if (pf->presence || !is_default(pf, &w))
            rc = put_field(e, out, pf, &w);
        free(w.own);
        if (rc != PC_OK)
            return rc;
    }
    return PC_OK;
}

pc_err
pbjson_encode(const pbjson_schema *s, const char *type, const json_t *j,
              uint8_t **out, size_t *len, char *err, size_t errsize)
{
    enc e = {{err, errsize}};
    const pj_msg *m;
    buf b = {0};
    pc_err rc;

    if (err && errsize)
        *err = '\0';
    if (!out || !len)
        return fail(&e.c, "nowhere to put the message");
    *out = NULL;
    *len = 0;
    if (!s || !type || !(m = find_msg(s, type)))
        return fail(&e.c, "unknown message type '%.200s'", type ? type : "");
    if (!json_is_object(j))
        return fail(&e.c, "%s: expected a JSON object", m->name);
    if ((rc = msg_encode(&e, m, j, 1, &b)) != PC_OK) {
        free(b.p);
        return rc;
    }
    *out = b.p;
    *len = b.len;
    return PC_OK;
}

/* ---- decoding ---------------------------------------------------------------- */

typedef struct rd {
    const uint8_t *p, *end;
} rd;

static bool
rd_varint(rd *r, uint64_t *v)
{
    uint64_t x = 0;

    for (int i = 0; i < 10; i++) {
        uint8_t b;
        if (r->p == r->end)
            return false;
        b = *r->p++;
        if (i == 9 && b > 1)
            return false; /* beyond 64 bits */
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

static bool
rd_fixed(rd *r, size_t n, uint64_t *v)
{
    uint64_t x = 0;

    if ((size_t)(r->end - r->p) < n)
        return false;
    for (size_t i = 0; i < n; i++)
        x |= (uint64_t)r->p[i] << (8 * i);
    r->p += n;
    *v = x;
    return true;
}

/* A length and that many bytes, checked against what is left. */
static bool
rd_len(rd *r, const uint8_t **d, size_t *n)
{
    uint64_t len;

    if (!rd_varint(r, &len) || len > (uint64_t)(r->end - r->p))
        return false;
    *d = r->p;
    *n = (size_t)len;
    r->p += len;
    return true;
}

/* One value of wire type wt: its varint or fixed bits in *u, or its bytes. */
static bool
rd_value(rd *r, int wt, uint64_t *u, const uint8_t **d, size_t *n)
{
    switch (wt) {
    case WT_VARINT:
        return rd_varint(r, u);
    case WT_I64:
        return rd_fixed(r, 8, u);
    case WT_I32:
        return rd_fixed(r, 4, u);
    case WT_LEN:
        return rd_len(r, d, n);
    default:
        return false;
    }
}

/* Well-formed UTF-8 (no overlong forms, surrogates or code points beyond
 * U+10FFFF), as jansson wants its strings. */
static bool
utf8_ok(const uint8_t *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        uint8_t c = s[i];
        uint32_t cp;
        size_t k;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            k = 1, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            k = 2, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            k = 3, cp = c & 0x07;
        else
            return false;
        if (n - i <= k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if ((k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (k == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        i += k + 1;
    }
    return true;
}

typedef struct dec {
    ctx c;
} dec;

/* The shortest decimal form of a float, as the double it reads as (and
 * that double must give the float back: reading the text as a double
 * then rounding to float can differ from reading it as a float). */
static double
float_value(float f)
{
    char t[32];

    for (int p = 1; p <= 9; p++) {
        double d;
        snprintf(t, sizeof t, "%.*g", p, (double)f);
        d = strtod(t, NULL);
        if ((float)d == f)
            return d;
    }
    return (double)f;
}

static json_t *
real_json(double d)
{
    if (isnan(d))
        return json_string("NaN");
    if (isinf(d))
        return json_string(d > 0 ? "Infinity" : "-Infinity");
    return json_real(d);
}

static json_t *
i64_json(int64_t v)
{
    char t[24];

    snprintf(t, sizeof t, "%" PRId64, v);
    return json_string(t);
}

static json_t *
u64_json(uint64_t v)
{
    char t[24];

    snprintf(t, sizeof t, "%" PRIu64, v);
    return json_string(t);
}

/* A numeric value u of field pf as JSON; *def when it is the default. */
static json_t *
number_json(const pj_field *pf, uint64_t u, bool *def)
{
    uint32_t u32 = (uint32_t)u;
    float f;
    double d;
    const char *name;

    *def = u == 0;
    switch (pf->f->type) {
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_INT32:
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_SFIXED32:
        *def = u32 == 0; /* an int32 is its low 32 bits */
        return json_integer((int32_t)u32);
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_UINT32:
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_FIXED32:
        *def = u32 == 0;
        return json_integer(u32);
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_SINT32:
        *def = u32 == 0;
        return json_integer((u32 & 1) ? -(json_int_t)(u32 >> 1) - 1
                                      : (json_int_t)(u32 >> 1));
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_INT64:
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_SFIXED64:
        return i64_json((int64_t)u);
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_SINT64:
        return i64_json((u & 1) ? -(int64_t)(u >> 1) - 1 : (int64_t)(u >> 1));
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_UINT64:
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_FIXED64:
        return u64_json(u);
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_BOOL:
        return json_boolean(u != 0);
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_ENUM:
        *def = u32 == 0;
        name = enum_name(pf->en, (int32_t)u32);
        return name ? json_string(name) : json_integer((int32_t)u32);
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_FLOAT:
        memcpy(&f, &u32, 4);
        *def = u32 == 0;
        return real_json(isfinite(f) ? float_value(f) : (double)f);
    default: /* DOUBLE */
        memcpy(&d, &u, 8);
        return real_json(d);
    }
}

static pc_err msg_decode(dec *d, const pj_msg *m, const uint8_t *p, size_t n,
                         json_t *obj, int depth);

/* Put v (a new reference, NULL: no memory) as field pf's value in obj. */
static pc_err
store(dec *d, json_t *obj, const pj_field *pf, json_t *v, bool def)
{
    json_t *arr;

    if (!v)
        return nomem(&d->c);
    if (pf->repeated) {
        if (!(arr = json_object_get(obj, pf->json))) {
            if (!(arr = json_array()) ||
                json_object_set_new(obj, pf->json, arr)) {
                json_decref(v);
                return nomem(&d->c);
            }
        }
        return json_array_append_new(arr, v) ? nomem(&d->c) : PC_OK;
    }
    if (def && !pf->presence) { /* a later default clears an earlier value */
        json_decref(v);
        json_object_del(obj, pf->json);
        return PC_OK;
    }
    return json_object_set_new(obj, pf->json, v) ? nomem(&d->c) : PC_OK;
}

/* A LEN value of field pf. */
static pc_err
len_value(dec *d, const pj_msg *m, const pj_field *pf, const uint8_t *p,
          size_t n, json_t *obj, int depth)
{
    json_t *v;
    char *t;
    pc_err rc;

    switch (pf->f->type) {
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_STRING:
        if (!utf8_ok(p, n))
            return fail(&d->c, "field '%s' of %s: not UTF-8", pf->json,
                        m->name);
        return store(d, obj, pf, json_stringn_nocheck((const char *)p, n),
                     n == 0);
    case PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_BYTES:
        if (!(t = pbjson_base64(p, n)))
            return nomem(&d->c);
        v = json_string_nocheck(t);
        free(t);
        return store(d, obj, pf, v, n == 0);
    default: /* MESSAGE */
        if (depth + 1 > PBJSON_MAX_DEPTH)
            return fail(&d->c, "field '%s' of %s: nested deeper than %d",
                        pf->json, m->name, PBJSON_MAX_DEPTH);
        if (pf->repeated) {
            if (!(v = json_object()))
                return nomem(&d->c);
            if ((rc = msg_decode(d, pf->msg, p, n, v, depth + 1)) != PC_OK) {
                json_decref(v);
                return rc;
            }
            return store(d, obj, pf, v, false);
        }
        /* a message seen again is merged into the first */
        if (!(v = json_object_get(obj, pf->json))) {
            if (!(v = json_object()) || json_object_set_new(obj, pf->json, v))
                return nomem(&d->c);
        }
        return msg_decode(d, pf->msg, p, n, v, depth + 1);
    }
}

/* Skip an unknown field's value. */
static bool
skip(rd *r, int wt)
{
    uint64_t u;
    const uint8_t *p;
    size_t n;

    return wt != 3 && wt != 4 && rd_value(r, wt, &u, &p, &n);
}

static pc_err
msg_decode(dec *d, const pj_msg *m, const uint8_t *p, size_t n, json_t *obj,
           int depth)
{
    rd r = {p, p ? p + n : p}; /* (no bytes may come as NULL) */
    pc_err rc;

    while (r.p < r.end) {
        uint64_t tag, u = 0;
        const uint8_t *vp = NULL;
        size_t vn = 0;
        const pj_field *pf;
        bool def = false;
        json_t *v;
        int wt;

        if (!rd_varint(&r, &tag) || tag > UINT32_MAX || (tag >> 3) == 0)
            return fail(&d->c, "%s: bad field tag", m->name);
        wt = (int)(tag & 7);
        if (!(pf = field_by_number(m, (uint32_t)(tag >> 3)))) {
            if (!skip(&r, wt))
                return fail(&d->c,
                            "%s: unknown field %" PRIu64 " does not "
                            "parse",
                            m->name, tag >> 3);
            continue;
        }
        if (pf->packable && wt == WT_LEN) { /* packed, whatever the schema */
            rd pr;
            if (!rd_len(&r, &vp, &vn))
                return fail(&d->c, "field '%s' of %s: truncated", pf->json,
                            m->name);
            pr = (rd){vp, vp + vn};
            while (pr.p < pr.end) {
                if (!rd_value(&pr, pf->wt, &u, NULL, NULL))
                    return fail(&d->c, "field '%s' of %s: truncated", pf->json,
                                m->name);
                v = number_json(pf, u, &def);
                if ((rc = store(d, obj, pf, v, def)) != PC_OK)
                    return rc;
            }
            continue;
        }
        if (wt != pf->wt)
            return fail(&d->c, "field '%s' of %s: wire type %d, not %d",
                        pf->json, m->name, wt, pf->wt);
        if (!rd_value(&r, wt, &u, &vp, &vn))
            return fail(&d->c, "field '%s' of %s: truncated", pf->json,
                        m->name);
        if (wt == WT_LEN)
            rc = len_value(d, m, pf, vp, vn, obj, depth);
        else {
            v = number_json(pf, u, &def); /* sets def: before store() */
            rc = store(d, obj, pf, v, def);
        }
        if (rc != PC_OK)
            return rc;
    }
    return PC_OK;
}

/* obj's keys in field-number order, submessages too, empty arrays
 * dropped; a new object, NULL: no memory. */
static json_t *
ordered(const pj_msg *m, json_t *obj)
{
    json_t *o = json_object();

    for (size_t i = 0; o && i < m->n; i++) {
        const pj_field *pf = &m->fields[i];
        json_t *v = json_object_get(obj, pf->json), *nv;
        bool sub = pf->f->type == PICOS__V1__RPS_FIELD_TYPE__RPS_TYPE_MESSAGE;

        if (!v || (json_is_array(v) && !json_array_size(v)))
            continue;
        if (sub && pf->repeated) {
            for (size_t k = 0; v && k < json_array_size(v); k++) {
                json_t *e = ordered(pf->msg, json_array_get(v, k));
                if (!e || json_array_set_new(v, k, e))
                    v = NULL;
            }
            nv = v ? json_incref(v) : NULL;
        } else {
            nv = sub ? ordered(pf->msg, v) : json_incref(v);
        }
        if (!nv || json_object_set_new(o, pf->json, nv)) {
            json_decref(o);
            o = NULL;
        }
    }
    return o;
}

pc_err
pbjson_decode(const pbjson_schema *s, const char *type, const void *data,
              size_t len, json_t **out, char *err, size_t errsize)
{
    dec d = {{err, errsize}};
    const pj_msg *m;
    json_t *obj;
    pc_err rc;

    if (err && errsize)
        *err = '\0';
    if (!out)
        return fail(&d.c, "nowhere to put the JSON");
    *out = NULL;
    if (!s || !type || !(m = find_msg(s, type)))
        return fail(&d.c, "unknown message type '%.200s'", type ? type : "");
    if (len && !data)
        return fail(&d.c, "%s: no bytes", m->name);
    if (!(obj = json_object()))
        return nomem(&d.c);
    if ((rc = msg_decode(&d, m, data, len, obj, 1)) != PC_OK) {
        json_decref(obj);
        return rc;
    }
    *out = ordered(m, obj);
    json_decref(obj);
    return *out ? PC_OK : nomem(&d.c);
}

/* ---- printing ------------------------------------------------------------------ */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool bad;
} sbuf;

static void
sput(sbuf *b, const char *s, size_t n)
{
    if (b->bad)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *p;
        while (cap < b->len + n + 1)
            cap *= 2;
        if (!(p = realloc(b->p, cap))) {
            b->bad = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void
sputs(sbuf *b, const char *s)
{
    sput(b, s, strlen(s));
}

static void
sstring(sbuf *b, const char *s, size_t n)
{
    sputs(b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char t[8];
        size_t run = i;

        while (run < n && (unsigned char)s[run] >= 0x20 && s[run] != '"' &&
               s[run] != '\\')
            run++;
        if (run > i) {
            sput(b, s + i, run - i);
            i = run - 1;
            continue;
        }
        switch (ch) {
        case '"':
            sputs(b, "\\\"");
            break;
        case '\\':
            sputs(b, "\\\\");
            break;
        case '\n':
            sputs(b, "\\n");
            break;
        case '\t':
            sputs(b, "\\t");
            break;
        case '\r':
            sputs(b, "\\r");
            break;
        default:
            snprintf(t, sizeof t, "\\u%04x", ch);
            sputs(b, t);
        }
    }
    sputs(b, "\"");
}

static void
sindent(sbuf *b, bool pretty, int level)
{
    if (!pretty)
        return;
    sputs(b, "\n");
    for (int i = 0; i < level; i++)
        sputs(b, "  ");
}

/* The fewest significant digits that read back as d; written without an
 * exponent from 1e-4 to 1e16 (as Python and JavaScript do: 1000.0, not
 * 1e+03), and with a ".0" where it would otherwise read as an integer. */
static void
sreal(sbuf *b, double d)
{
    char t[48];
    int p, x;

    if (!isfinite(d)) {
        b->bad = true;
        return;
    }
    for (p = 1; p < 17; p++) {
        snprintf(t, sizeof t, "%.*e", p - 1, d);
        if (strtod(t, NULL) == d)
            break;
    }
    x = atoi(strchr(t, 'e') + 1); /* the decimal exponent */
    if (x >= -4 && x < 16)
        snprintf(t, sizeof t, "%.*g", p > x + 1 ? p : x + 1, d);
    else
        snprintf(t, sizeof t, "%.*g", p, d);
    if (!strpbrk(t, ".eE"))
        strcat(t, ".0");
    sputs(b, t);
}

static void
dump(sbuf *b, const json_t *j, bool pretty, int level)
{
    char t[32];

    if (level > 10000) {
        b->bad = true;
        return;
    }
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *v;
        bool first = true;
        if (!json_object_size(j)) {
            sputs(b, "{}");
            return;
        }
        sputs(b, "{");
        json_object_foreach((json_t *)j, key, v)
        {
            if (!first)
                sputs(b, ",");
            first = false;
            sindent(b, pretty, level + 1);
            sstring(b, key, strlen(key));
            sputs(b, pretty ? ": " : ":");
            dump(b, v, pretty, level + 1);
        }
        sindent(b, pretty, level);
        sputs(b, "}");
        return;
    }
    case JSON_ARRAY:
        if (!json_array_size(j)) {
            sputs(b, "[]");
            return;
        }
        sputs(b, "[");
        for (size_t i = 0; i < json_array_size(j); i++) {
            if (i)
                sputs(b, ",");
            sindent(b, pretty, level + 1);
            dump(b, json_array_get(j, i), pretty, level + 1);
        }
        sindent(b, pretty, level);
        sputs(b, "]");
        return;
    case JSON_STRING:
        sstring(b, json_string_value(j), json_string_length(j));
        return;
    case JSON_INTEGER:
        snprintf(t, sizeof t, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
        sputs(b, t);
        return;
    case JSON_REAL:
        sreal(b, json_real_value(j));
        return;
    case JSON_TRUE:
        sputs(b, "true");
        return;
    case JSON_FALSE:
        sputs(b, "false");
        return;
    default:
        sputs(b, "null");
    }
}

char *
pbjson_dumps(const json_t *j, bool pretty)
{
    sbuf b = {0};

    if (!j)
        return NULL;
    dump(&b, j, pretty, 0);
    if (b.bad || !b.p) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
