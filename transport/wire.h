/* transport/wire.h — frames of node links: Envelopes packed into Frames and
 * taken apart again, with every size checked (internal).
 *
 * The only code that decodes bytes from the network. A Frame is the
 * protobuf `picos.v1.Frame`: field 1 repeated, each one Envelope, so a
 * frame is walked envelope by envelope without unpacking it whole, and
 * each envelope is unpacked into an arena that is reset after it.
 */
#ifndef PICOS_TRANSPORT_WIRE_H
#define PICOS_TRANSPORT_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "picos/err.h"
#include "picos/msg.h"
#include "picos/ref.h"

#include "envelope.pb-c.h"

#define WIRE_VERSION 1
/* Longest node name, channel or registered name carried, bytes. */
#define WIRE_NAME_MAX 255
/* Longest endpoint string in a hello. */
#define WIRE_ENDPOINT_MAX 1024

typedef Picos__V1__Envelope wire_env;
typedef Picos__V1__Ref wire_ref;

/* A growing output buffer: one frame being filled. */
typedef struct wire_buf {
    uint8_t *p;
    size_t len, cap;
    unsigned n;   /* envelopes in it */
    unsigned res; /* of which hold a peer-queue reservation (net.c) */
} wire_buf;

/* Append e to b as one more field 1 of a Frame. PC_ENOMEM. */
pc_err wire_append(wire_buf *b, const wire_env *e);
/* The same, unless b holds envelopes already and e would take it past
 * `limit` bytes: PC_EFULL then (send b first). */
pc_err wire_append_max(wire_buf *b, const wire_env *e, size_t limit);
/* The bytes e takes in a frame (what wire_append adds). */
size_t wire_size(const wire_env *e);
void wire_buf_free(wire_buf *b);

/* Refs on the wire: e's from/to point at wire_refs the caller owns. */
void wire_ref_set(wire_ref *w, pc_ref r, uint64_t incarnation);
pc_ref wire_ref_get(const wire_ref *w);

/* An arena for one envelope's unpacking: no malloc for small ones. */
typedef struct wire_arena {
    ProtobufCAllocator alloc;
    size_t used;
    void *big; /* chain of blocks malloc gave beyond buf */
    _Alignas(16) uint8_t buf[8192];
} wire_arena;

void wire_arena_init(wire_arena *a);
void wire_arena_reset(wire_arena *a);

/* Walk a frame: the next envelope's bytes into *env and *len. Returns 1, 0 at
 * the end, or PC_EPROTO when the frame is malformed (a field that is not 1
 * or not length-delimited, a length beyond the frame). */
int wire_next(const uint8_t **p, const uint8_t *end, const uint8_t **env,
              size_t *len);

/* Unpack and check one envelope (version, kind and body agree, refs
 * present where the kind needs them, names and types bounded). NULL when
 * it is malformed; *why says what (static text). */
wire_env *wire_unpack(wire_arena *a, const uint8_t *p, size_t len,
                      const char **why);

/* Messages: a DOWN or EXIT message goes as a Down body, any other as type
 * + payload. wire_msg_out fills e (kind set by the caller) and returns
 * PC_OK or PC_EINVAL (a DOWN that doesn't parse); `down` is storage for the
 * body, `who` for its ref. */
pc_err wire_msg_out(wire_env *e, const pc_msg *m, Picos__V1__Down *down,
                    wire_ref *who);
/* The message e carries (SEND, DELIVER, DOWN, EXIT, JOIN_REPLY values),
 * from `sender`. PC_OK, PC_EINVAL (malformed), PC_ENOMEM. */
pc_err wire_msg_in(const wire_env *e, pc_ref sender, pc_msg **out);
/* The value of a JOIN_REPLY's Down body (NULL when it has none). */
pc_err wire_value_in(const Picos__V1__Down *d, pc_ref sender, pc_msg **out);

#endif
