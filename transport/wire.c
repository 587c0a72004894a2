/* transport/wire.c — Envelopes into Frames and back, sizes checked.
 *
 * Output: a frame is built by appending envelopes, each as field 1 of
 * `picos.v1.Frame` (tag 0x0a, varint length, the packed Envelope), straight
 * into one growing buffer, so a batch costs one allocation at most and the
 * result is a valid Frame for any protobuf library.
 *
 * Input: this is the only code that reads network bytes. By the time a
 * frame gets here ZeroMQ has authenticated its peer (CURVE + ZAP) and
 * refused it if it was over the link's max_frame, so every length below is
 * bounded by that. wire_next() walks the frame's fields without
 * allocating; wire_unpack() unpacks one envelope with protobuf-c into an
 * arena (a fixed buffer, malloc beyond it) and then checks what protobuf
 * cannot: version, that the body is the one the kind needs, that refs are
 * present, that names and type names are bounded and NUL-free. The schema
 * is not recursive, so unpacking depth is bounded by the schema itself.
 */
#include "wire.h"

#include <stdlib.h>
#include <string.h>

#include "picos/monitor.h"
#include "picos/transport.h"

/* ---- output ---------------------------------------------------------------- */

static size_t
varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80)
        v >>= 7, n++;
    return n;
}

/* ---- the hand encoder --------------------------------------------------------
 *
 * Messages are most of the traffic, and protobuf-c walks an envelope twice
 * (size, then pack) through its descriptors. An envelope with no body and
 * no trace or seq — SEND, DELIVER and every answer — is encoded here in
 * one pass instead, byte for byte what protobuf-c packs (fields in number
 * order, proto3 zeros left out); test_wire checks the two agree. */

static bool
simple(const wire_env *e)
{
    return e->body_case == PICOS__V1__ENVELOPE__BODY__NOT_SET && !e->trace &&
           !e->seq;
}

static size_t
ref_len(const wire_ref *r)
{
    return r ? 9u * ((r->node != 0) + (r->incarnation != 0) + (r->id != 0)) : 0;
}

static uint32_t
zigzag(int32_t v)
{
    return ((uint32_t)v << 1) ^ (uint32_t)(v >> 31);
}

static size_t
simple_size(const wire_env *e)
{
    size_t n = 0, tl = strlen(e->type);

    n += e->version ? 1 + varint_len(e->version) : 0;
    n += e->kind ? 1 + varint_len((uint64_t)e->kind) : 0;
    if (e->from)
        n += 1 + varint_len(ref_len(e->from)) + ref_len(e->from);
    if (e->to)
        n += 1 + varint_len(ref_len(e->to)) + ref_len(e->to);
    n += e->corr ? 1 + varint_len(e->corr) : 0;
    n += e->timeout_us ? 1 + varint_len(e->timeout_us) : 0;
    n += e->status ? 1 + varint_len(zigzag(e->status)) : 0;
    n += e->count ? 1 + varint_len(e->count) : 0;
    n += tl ? 1 + varint_len(tl) + tl : 0;
    n += e->payload.len ? 1 + varint_len(e->payload.len) + e->payload.len : 0;
    return n;
}

static uint8_t *
put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static uint8_t *
put_fixed(uint8_t *p, uint8_t tag, uint64_t v)
{
    if (!v)
        return p;
    *p++ = tag;
    for (int i = 0; i < 8; i++)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

static uint8_t *
put_ref(uint8_t *p, uint8_t tag, const wire_ref *r)
{
    if (!r)
        return p;
    *p++ = tag;
    p = put_varint(p, ref_len(r));
    p = put_fixed(p, 0x09, r->node);
    p = put_fixed(p, 0x11, r->incarnation);
    return put_fixed(p, 0x19, r->id);
}

static uint8_t *
put_bytes(uint8_t *p, uint8_t tag, const void *d, size_t len)
{
    if (!len)
        return p;
    *p++ = tag;
    p = put_varint(p, len);
    memcpy(p, d, len);
    return p + len;
}

static void
simple_pack(const wire_env *e, uint8_t *p)
{
    if (e->version)
        *p++ = 0x08, p = put_varint(p, e->version);
    if (e->kind)
        *p++ = 0x10, p = put_varint(p, (uint64_t)e->kind);
    p = put_ref(p, 0x1a, e->from);
    p = put_ref(p, 0x22, e->to);
    if (e->corr)
        *p++ = 0x28, p = put_varint(p, e->corr);
    if (e->timeout_us)
        *p++ = 0x30, p = put_varint(p, e->timeout_us);
    if (e->status)
        *p++ = 0x40, p = put_varint(p, zigzag(e->status));
    if (e->count)
        *p++ = 0x48, p = put_varint(p, e->count);
    p = put_bytes(p, 0x5a, e->type, strlen(e->type));
    put_bytes(p, 0x62, e->payload.data, e->payload.len);
}

static size_t
packed_size(const wire_env *e)
{
    return simple(e) ? simple_size(e)
                     : protobuf_c_message_get_packed_size(&e->base);
}

size_t
wire_size(const wire_env *e)
{
    size_t n = packed_size(e);
    return 1 + varint_len(n) + n;
}

pc_err
wire_append_max(wire_buf *b, const wire_env *e, size_t limit)
{
    size_t n = packed_size(e);
    size_t need = 1 + varint_len(n) + n;
    uint8_t *p;

    if (b->n && b->len + need > limit)
        return PC_EFULL;
    if (b->len + need > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + need)
            cap *= 2;
        if (!(p = realloc(b->p, cap)))
            return PC_ENOMEM;
        b->p = p, b->cap = cap;
    }
    p = put_varint(b->p + b->len, 0x0a); /* field 1, length-delimited */
    p = put_varint(p, n);
    if (simple(e))
        simple_pack(e, p);
    else
        protobuf_c_message_pack(&e->base, p);
    b->len += need;
    b->n++;
    return PC_OK;
}

pc_err
wire_append(wire_buf *b, const wire_env *e)
{
    return wire_append_max(b, e, SIZE_MAX);
}

void
wire_buf_free(wire_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

void
wire_ref_set(wire_ref *w, pc_ref r, uint64_t incarnation)
{
    picos__v1__ref__init(w);
    w->node = r.node;
    w->incarnation = incarnation;
    w->id = r.id;
}

pc_ref
wire_ref_get(const wire_ref *w)
{
    return w ? (pc_ref){w->node, w->id} : PC_REF_NIL;
}

/* ---- the arena --------------------------------------------------------------- */

typedef struct big_block {
    struct big_block *next;
    _Alignas(16) uint8_t data[];
} big_block;

static void *
arena_alloc(void *ctx, size_t n)
{
    wire_arena *a = ctx;
    size_t need = (n + 15) & ~(size_t)15;
    big_block *b;

    if (need >= n && a->used + need <= sizeof a->buf) {
        void *p = a->buf + a->used;
        a->used += need;
        return p;
    }
    if (n > SIZE_MAX - sizeof *b || !(b = malloc(sizeof *b + n)))
        return NULL;
    b->next = a->big;
    a->big = b;
    return b->data;
}

static void
arena_free(void *ctx, void *p)
{
    (void)ctx, (void)p; /* freed all at once by wire_arena_reset() */
}

void
wire_arena_init(wire_arena *a)
{
    a->alloc.alloc = arena_alloc;
    a->alloc.free = arena_free;
    a->alloc.allocator_data = a;
    a->used = 0;
    a->big = NULL;
}

void
wire_arena_reset(wire_arena *a)
{
    big_block *b;
    while ((b = a->big)) {
        a->big = b->next;
        free(b);
    }
    a->used = 0;
}

/* ---- input ----------------------------------------------------------------- */

int
wire_next(const uint8_t **pp, const uint8_t *end, const uint8_t **env,
          size_t *len)
{
    const uint8_t *p = *pp;
    uint64_t n = 0;

    if (p >= end)
        return 0;
    if (*p++ != 0x0a)
        return PC_EPROTO;
    for (int shift = 0;; shift += 7) {
        if (p >= end || shift > 28) /* frames are far below 2^35 bytes */
            return PC_EPROTO;
        n |= (uint64_t)(*p & 0x7f) << shift;
        if (!(*p++ & 0x80))
            break;
    }
    if (n > (uint64_t)(end - p))
        return PC_EPROTO;
    *env = p;
    *len = (size_t)n;
    *pp = p + n;
    return 1;
}

static bool
name_ok(const char *s, size_t max)
{
    return s && strnlen(s, max + 1) <= max;
}

/* The body each kind must carry (NOT_SET: none; -1: any). */
static int
body_of(Picos__V1__Kind k)
{
    switch (k) {
    case PICOS__V1__KIND__HELLO:
        return PICOS__V1__ENVELOPE__BODY_HELLO;
    case PICOS__V1__KIND__DOWN:
    case PICOS__V1__KIND__EXIT:
        return PICOS__V1__ENVELOPE__BODY_DOWN;
    case PICOS__V1__KIND__SEND: /* a DOWN or EXIT message goes as a Down */
    case PICOS__V1__KIND__DELIVER:
    case PICOS__V1__KIND__JOIN_REPLY:
        return -1;
    case PICOS__V1__KIND__LOOKUP:
        return PICOS__V1__ENVELOPE__BODY_LOOKUP;
    case PICOS__V1__KIND__SUBSCRIBE:
    case PICOS__V1__KIND__UNSUBSCRIBE:
    case PICOS__V1__KIND__CHAN_SEND:
    case PICOS__V1__KIND__CHAN_PUBLISH:
    case PICOS__V1__KIND__CHAN_DELIVER:
    case PICOS__V1__KIND__CHAN_DELIVER_ACK:
    case PICOS__V1__KIND__CHAN_SYNC:
        return PICOS__V1__ENVELOPE__BODY_CHAN;
    case PICOS__V1__KIND__REFUSED:
        return PICOS__V1__ENVELOPE__BODY_REFUSAL;
    default:
        return PICOS__V1__ENVELOPE__BODY__NOT_SET;
    }
}

static const char *
check(const wire_env *e)
{
    int want;

    if (e->version != WIRE_VERSION)
        return "unknown protocol version";
    if (e->kind <= PICOS__V1__KIND__KIND_UNSPECIFIED ||
        e->kind > PICOS__V1__KIND__CHAN_SYNC)
        return "unknown kind";
    want = body_of(e->kind);
    if (want >= 0 && (int)e->body_case != want)
        return "body does not match the kind";
    if (want < 0 && e->body_case != PICOS__V1__ENVELOPE__BODY__NOT_SET &&
        e->body_case != PICOS__V1__ENVELOPE__BODY_DOWN)
        return "body does not match the kind";
    if (e->kind != PICOS__V1__KIND__HELLO &&
        e->kind != PICOS__V1__KIND__HEARTBEAT &&
        e->kind != PICOS__V1__KIND__GOODBYE &&
        e->kind != PICOS__V1__KIND__REFUSED && (!e->from || !e->to))
        return "missing from/to";
    if (!name_ok(e->type, PC_MSG_TYPE_MAX))
        return "type name too long";
    switch (e->body_case) {
    case PICOS__V1__ENVELOPE__BODY_HELLO: {
        const Picos__V1__Hello *h = e->hello;
        if (!h->node || !h->incarnation)
            return "hello without node id or incarnation";
        if (!name_ok(h->name, WIRE_NAME_MAX) ||
            !name_ok(h->host, WIRE_NAME_MAX) ||
            !name_ok(h->endpoint, WIRE_ENDPOINT_MAX) ||
            !name_ok(h->pub_endpoint, WIRE_ENDPOINT_MAX))
            return "hello string too long";
        break;
    }
    case PICOS__V1__ENVELOPE__BODY_DOWN: {
        const Picos__V1__Down *d = e->down;
        if (!d->who || d->reason < 0 || d->reason > PICOS__V1__REASON__NOPROC)
            return "bad down";
        if (!name_ok(d->value_type, PC_MSG_TYPE_MAX) ||
            !name_ok(d->error, 4096))
            return "down strings too long";
        break;
    }
    case PICOS__V1__ENVELOPE__BODY_LOOKUP:
        if (!name_ok(e->lookup->name, WIRE_NAME_MAX))
            return "name too long";
        break;
    case PICOS__V1__ENVELOPE__BODY_CHAN:
        if (!name_ok(e->chan->name, WIRE_NAME_MAX))
            return "channel name too long";
        break;
    case PICOS__V1__ENVELOPE__BODY_REFUSAL:
        if (!name_ok(e->refusal->text, 4096))
            return "refusal text too long";
        break;
    default:
        break;
    }
    return NULL;
}

wire_env *
wire_unpack(wire_arena *a, const uint8_t *p, size_t len, const char **why)
{
    wire_env *e = picos__v1__envelope__unpack(&a->alloc, len, p);

    *why = NULL;
    if (!e) {
        *why = "envelope does not decode";
        return NULL;
    }
    if ((*why = check(e)))
        return NULL;
    return e;
}

/* ---- messages -------------------------------------------------------------- */

static int
is_down(const pc_msg *m)
{
    return pc_msg_is(m, PC_MSG_DOWN) || pc_msg_is(m, PC_MSG_EXIT);
}

pc_err
wire_msg_out(wire_env *e, const pc_msg *m, Picos__V1__Down *down, wire_ref *who)
{
    size_t len;
    const void *data;

    if (is_down(m)) {
        pc_down d;
        if (pc_down_parse(m, &d) != PC_OK)
            return PC_EINVAL;
        picos__v1__down__init(down);
        wire_ref_set(who, d.who, 0);
        down->who = who;
        down->reason = (Picos__V1__Reason)d.reason;
        down->error = (char *)(d.error ? d.error : "");
        down->value_type = (char *)(d.value_type ? d.value_type : "");
        down->value.data = (uint8_t *)d.value;
        down->value.len = d.value_len;
        e->body_case = PICOS__V1__ENVELOPE__BODY_DOWN;
        e->down = down;
        e->type = (char *)pc_msg_type(m); /* picos.down or picos.exit */
        return PC_OK;
    }
    data = pc_msg_data(m, &len);
    e->type = (char *)pc_msg_type(m);
    e->payload.data = (uint8_t *)data;
    e->payload.len = len;
    return PC_OK;
}

static void
free_copy(void *data, void *hint)
{
    (void)hint;
    free(data);
}

/* A message of `type` with a copy of `len` bytes (pc_msg_new_remote wants
 * a NUL after them), from `sender`. */
static pc_err
msg_copy(pc_msg **out, pc_ref sender, const char *type, const void *data,
         size_t len)
{
    char *copy = malloc(len + 1);
    pc_err rc;

    if (!copy)
        return PC_ENOMEM;
    if (len)
        memcpy(copy, data, len);
    copy[len] = '\0';
    rc = pc_msg_new_remote(out, sender, type, copy, len, free_copy, NULL);
    if (rc != PC_OK)
        free(copy);
    return rc;
}

pc_err
wire_value_in(const Picos__V1__Down *d, pc_ref sender, pc_msg **out)
{
    *out = NULL;
    if (!d)
        return PC_OK;
    if (d->reason == PICOS__V1__REASON__ERROR)
        return msg_copy(out, sender, PC_MSG_ERROR, d->error, strlen(d->error));
    if (d->reason != PICOS__V1__REASON__NORMAL ||
        (!d->value_type[0] && !d->value.len))
        return PC_OK;
    return msg_copy(out, sender, d->value_type, d->value.data, d->value.len);
}

pc_err
wire_msg_in(const wire_env *e, pc_ref sender, pc_msg **out)
{
    if (e->body_case == PICOS__V1__ENVELOPE__BODY_DOWN) {
        const Picos__V1__Down *d = e->down;
        pc_down pd = {
            .who = wire_ref_get(d->who),
            .reason = (pc_down_reason)d->reason,
            .error = d->error,
            .value_type = d->value_type[0] ? d->value_type : NULL,
            .value = d->value.data,
            .value_len = d->value.len,
        };
        const char *type = e->kind == PICOS__V1__KIND__EXIT   ? PC_MSG_EXIT
                           : e->kind == PICOS__V1__KIND__DOWN ? PC_MSG_DOWN
                           : !strcmp(e->type, PC_MSG_EXIT)    ? PC_MSG_EXIT
                                                              : PC_MSG_DOWN;
        return pc_down_msg_new(out, type, &pd);
    }
    return msg_copy(out, sender, e->type, e->payload.data, e->payload.len);
}
