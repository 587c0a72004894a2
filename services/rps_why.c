/* services/rps_why.c — why protobuf-c would not unpack a request.
 *
 * protobuf-c says only that protobuf_c_message_unpack() failed. For the
 * refusal text of a typed service (RpsRefused BAD_REQUEST), pc__rps_why()
 * walks the bytes by protobuf-c's own rules — tags of at most 5 bytes and
 * not field 0, varints of at most 10, length prefixes of at most 5 that
 * stay inside the data, the wire type a known field's type takes (bool
 * takes any, as in protobuf-c), packed runs of a repeated scalar field,
 * sub-messages, proto2 required fields without a default — and names the
 * first defect, the field and the byte offset. It must never be stricter
 * than protobuf-c (fuzz_rpswhy checks both directions), and it only reads:
 * the bytes come from the network.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "rps_int.h"

enum { WT_VARINT = 0, WT_64 = 1, WT_LEN = 2, WT_32 = 5 };

/* protobuf-c's parse_tag_and_wiretype(): the tag's length, 0 when bad. */
static size_t
tag_parse(const uint8_t *p, size_t rem, uint32_t *tag, unsigned *wt)
{
    size_t max = rem > 5 ? 5 : rem;
    uint32_t t = (p[0] & 0x7f) >> 3;
    unsigned shift = 4;

    if ((p[0] & 0xf8) == 0)
        return 0;
    *wt = p[0] & 7;
    if (!(p[0] & 0x80)) {
        *tag = t;
        return 1;
    }
    for (size_t i = 1; i < max; i++) {
        if (p[i] & 0x80) {
            t |= (uint32_t)(p[i] & 0x7f) << shift;
            shift += 7;
        } else {
            *tag = t | (uint32_t)p[i] << shift;
            return i + 1;
        }
    }
    return 0;
}

/* A varint's length (at most max bytes), 0 when unterminated. */
static size_t
varint_len(const uint8_t *p, size_t rem, size_t max)
{
    if (rem < max)
        max = rem;
    for (size_t i = 0; i < max; i++)
        if (!(p[i] & 0x80))
            return i + 1;
    return 0;
}

static unsigned
wire_of(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
        return WT_32;
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return WT_64;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE:
        return WT_LEN;
    default:
        return WT_VARINT;
    }
}

static const char *
wire_name(unsigned wt)
{
    static const char *const n[] = {"varint",           "64-bit",
                                    "length-delimited", "group start",
                                    "group end",        "32-bit"};
    return wt < 6 ? n[wt] : "invalid";
}

/* A packed run of field f (data of len bytes at base): its defect, if any. */
static bool
packed_bad(const ProtobufCFieldDescriptor *f, const uint8_t *p, size_t len,
           size_t base, char *out, size_t size)
{
    unsigned wt = wire_of(f->type);

    if (wt == WT_32 || wt == WT_64) {
        size_t w = wt == WT_32 ? 4 : 8;
        if (len % w == 0)
            return false;
        snprintf(out, size,
                 "packed field '%s' (%u) at byte %zu: %zu bytes, not a "
                 "multiple of %zu",
                 f->name, f->id, base, len, w);
        return true;
    }
    for (size_t off = 0; off < len;) {
        size_t n = varint_len(p + off, len - off, 10);
        if (!n) {
            snprintf(out, size,
                     "packed field '%s' (%u): unterminated varint at byte %zu",
                     f->name, f->id, base + off);
            return true;
        }
        off += n;
    }
    return false;
}

/* Whether field `id` occurs in data the walk found sound. */
static bool
has_field(const uint8_t *p, size_t len, uint32_t id)
{
    for (size_t off = 0; off < len;) {
        uint32_t tag = 0;
        unsigned wt = 0;
        size_t n = tag_parse(p + off, len - off, &tag, &wt), pl;
        uint64_t v = 0;

        if (!n)
            return false;
        if (tag == id)
            return true;
        off += n;
        switch (wt) {
        case WT_VARINT:
            off += varint_len(p + off, len - off, 10);
            break;
        case WT_64:
            off += 8;
            break;
        case WT_32:
            off += 4;
            break;
        case WT_LEN:
            pl = varint_len(p + off, len - off, 5);
            for (size_t i = 0; i < pl; i++)
                v |= (uint64_t)(p[off + i] & 0x7f) << (7 * i);
            off += pl + v;
            break;
        default:
            return false;
        }
    }
    return false;
}

static bool
walk(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len,
     size_t base, int depth, char *out, size_t size)
{
    for (size_t off = 0; off < len;) {
        size_t at = off, n, flen = 0, pl = 0;
        uint32_t tag = 0;
        unsigned wt = 0;
        const ProtobufCFieldDescriptor *f;
        uint64_t v = 0;

        if (!(n = tag_parse(p + off, len - off, &tag, &wt))) {
            snprintf(out, size, "%s at byte %zu",
                     (p[off] & 0xf8) == 0 ? "field number 0"
                                          : "unterminated field tag",
                     base + at);
            return true;
        }
        off += n;
        f = protobuf_c_message_descriptor_get_field(d, tag);
        switch (wt) {
        case WT_VARINT:
            if (!(flen = varint_len(p + off, len - off, 10))) {
                snprintf(out, size, "field %u: unterminated varint at byte %zu",
                         tag, base + off);
                return true;
            }
            break;
        case WT_64:
        case WT_32:
            flen = wt == WT_64 ? 8 : 4;
            if (len - off < flen) {
                snprintf(out, size,
                         "field %u: %s value cut short at byte %zu (%zu bytes "
                         "left)",
                         tag, wire_name(wt), base + off, len - off);
                return true;
            }
            break;
        case WT_LEN:
            if (!(pl = varint_len(p + off, len - off, 5))) {
                snprintf(out, size, "field %u: unterminated length at byte %zu",
                         tag, base + off);
                return true;
            }
            for (size_t i = 0; i < pl; i++)
                v |= (uint64_t)(p[off + i] & 0x7f) << (7 * i);
            if (v > INT_MAX || pl + v > len - off) {
                snprintf(out, size,
                         "field %u: length %llu at byte %zu runs past the end "
                         "(%zu bytes left)",
                         tag, (unsigned long long)v, base + off,
                         len - off - pl);
                return true;
            }
            flen = pl + (size_t)v;
            break;
        default:
            snprintf(out, size,
                     "field %u: wire type %u (%s) at byte %zu is not supported",
                     tag, wt, wire_name(wt), base + at);
            return true;
        }
        if (f) {
            bool packable = f->type != PROTOBUF_C_TYPE_STRING &&
                            f->type != PROTOBUF_C_TYPE_BYTES &&
                            f->type != PROTOBUF_C_TYPE_MESSAGE;
            if (f->label == PROTOBUF_C_LABEL_REPEATED && wt == WT_LEN &&
                packable) {
                if (packed_bad(f, p + off + pl, flen - pl, base + off + pl, out,
                               size))
                    return true;
            } else if (f->type != PROTOBUF_C_TYPE_BOOL &&
                       wt != wire_of(f->type)) {
                snprintf(out, size,
                         "field '%s' (%u) at byte %zu is %s, its type wants %s",
                         f->name, tag, base + at, wire_name(wt),
                         wire_name(wire_of(f->type)));
                return true;
            } else if (f->type == PROTOBUF_C_TYPE_MESSAGE && depth < 64) {
                char inner[192];
                if (walk(f->descriptor, p + off + pl, flen - pl,
                         base + off + pl, depth + 1, inner, sizeof inner)) {
                    snprintf(out, size, "in field '%s': %s", f->name, inner);
                    return true;
                }
            }
        }
        off += flen;
    }
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->label == PROTOBUF_C_LABEL_REQUIRED && !f->default_value &&
            !has_field(p, len, f->id)) {
            snprintf(out, size, "required field '%s' (%u) of %s is missing",
                     f->name, f->id, d->name);
            return true;
        }
    }
    return false;
}

bool
pc__rps_why(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len,
            char *out, size_t size)
{
    if (size)
        out[0] = '\0';
    return d && (p || !len) && walk(d, p, len, 0, 0, out, size);
}
