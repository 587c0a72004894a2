/* apps/picos/pbjson.h — JSON <-> protobuf wire bytes, driven by a
 * picos.v1.RpsSchema (proto/rps.proto) instead of compiled descriptors:
 * what `picos call --json` uses to write a typed service's request and
 * read its reply (docs/cli.md).
 *
 * The mapping is proto3's JSON mapping: fields by their JSON name
 * (lowerCamelCase; the .proto name is accepted too when parsing), 64-bit
 * integers as strings (numbers accepted), enums by name (numbers
 * accepted), bytes as base64 (standard or URL-safe, padded or not, when
 * parsing), repeated fields as arrays, messages as objects, NaN and
 * Infinity as the strings "NaN", "Infinity", "-Infinity"; null is the
 * field's default. A field whose json_name the schema leaves empty answers
 * to its .proto name only. Output omits fields of proto3 singular scalars that
 * hold their default (fields with presence are always printed), prints
 * unknown enum numbers as numbers and drops unknown fields. Not mapped
 * specially: maps (arrays of {"key", "value"} objects, as on the wire),
 * well-known types (ordinary messages), groups (refused).
 *
 * The schema and the bytes may come from the network: both are checked
 * before use (unknown or duplicate types and fields, bad numbers, types
 * and labels; lengths against what is left before anything is
 * allocated; nesting at most PBJSON_MAX_DEPTH). Every failure gives
 * PC_EINVAL (or PC_ENOMEM) and one line in `err`, e.g. "field 'x' of
 * pkg.T: expected a number" or "unknown field 'y' in pkg.T".
 *
 * Single-threaded use; a schema may be shared by readers once loaded.
 */
#ifndef PICOS_APPS_PBJSON_H
#define PICOS_APPS_PBJSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "picos/err.h"

/* Nesting of messages (JSON objects or wire bytes) beyond this is refused. */
#define PBJSON_MAX_DEPTH 64
/* An encoded message larger than this is refused. */
#define PBJSON_MAX_BYTES (64u << 20)
/* Room for any error line. */
#define PBJSON_ERR_MAX 512

typedef struct pbjson_schema pbjson_schema;

/* Load a schema from the bytes of a picos.v1.RpsSchema message (as
 * pc_rps_describe() gives it). Returns PC_OK and *out (the caller's,
 * pbjson_schema_free()), or PC_EINVAL with the line in err (does not
 * parse; a type named twice or not at all; a field with a bad number,
 * type or label, named twice, or of an unknown type), PC_ENOMEM. */
pc_err pbjson_schema_load(const void *data, size_t len, pbjson_schema **out,
                          char *err, size_t errsize);

/* Whether the schema describes message type `type` (a full name). */
bool pbjson_schema_has(const pbjson_schema *s, const char *type);

void pbjson_schema_free(pbjson_schema **s);

/* Encode JSON object j as a message of type `type`. Returns PC_OK with
 * *out (malloc'd, the caller's; NULL when *len is 0) and *len, or
 * PC_EINVAL with the line in err (unknown type or field, a value of the
 * wrong kind or out of range, a required field missing, too deep, too
 * big), PC_ENOMEM. */
pc_err pbjson_encode(const pbjson_schema *s, const char *type, const json_t *j,
                     uint8_t **out, size_t *len, char *err, size_t errsize);

/* Decode len bytes of a message of type `type` into a new JSON object.
 * Returns PC_OK with *out (a new reference, the caller's), or PC_EINVAL
 * with the line in err (unknown type, bytes that do not parse as it, a
 * string that is not UTF-8, too deep), PC_ENOMEM. */
pc_err pbjson_decode(const pbjson_schema *s, const char *type, const void *data,
                     size_t len, json_t **out, char *err, size_t errsize);

/* Standard base64 of n bytes at p, padded, NUL-terminated (malloc'd;
 * NULL: no memory), as JSON carries bytes. */
char *pbjson_base64(const void *p, size_t n);

/* j as JSON text (malloc'd, NUL-terminated, no final newline): indented
 * by 2 when `pretty`, else on one line. Reals are printed with the fewest
 * digits that read back the same (0.1, not 0.10000000000000001). NULL:
 * no memory, or j holds a non-finite real. */
char *pbjson_dumps(const json_t *j, bool pretty);

#endif
