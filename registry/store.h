/* registry/store.h — the registry's append-only log (internal).
 *
 * One file, DIR/registry.log: a header, then records, each
 *
 *     u32 length (little endian) | u32 CRC-32 (zlib) of the payload | payload
 *
 * where the payload is opaque here (the server packs RegRecord messages).
 * Records are appended to a buffer and made durable by pc__store_sync():
 * one write and one fdatasync for everything appended since the last sync
 * (group commit: the caller syncs once per batch of requests). Opening
 * replays every record in order; a bad record at the end of the file (cut
 * off by a crash mid-write) is dropped and the file truncated before it; a
 * bad record followed by more data, or a bad header, means the file is
 * corrupt: the open fails with one line naming the file and the offset, and
 * nothing is served. Compaction writes the live state to DIR/registry.log.tmp,
 * fsyncs it, renames it over the log and fsyncs the directory, so a crash at
 * any point leaves either the old log or the new one.
 *
 * One thread at a time per store (the server task).
 */
#ifndef PICOS_REGISTRY_STORE_H
#define PICOS_REGISTRY_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "picos/err.h"

/* Largest payload of a record, bytes: a longer length field is corruption
 * (checked before anything is allocated). */
#define PC__STORE_RECORD_MAX (64u * 1024u)

typedef struct pc__store pc__store;

/* Called for each record replayed, in file order. A non-PC_OK return stops
 * the replay and fails the open with that code. */
typedef pc_err (*pc__store_fn)(void *ctx, const void *payload, size_t len);

/* Open (creating it when absent) DIR/registry.log and replay it through fn.
 * Returns PC_OK with *out, PC_EINVAL (NULL), PC_ESYS (DIR missing, not a
 * directory, not writable; the log can't be opened, read, truncated),
 * PC_EPROTO (corrupt), PC_ENOMEM, or fn's error; on error one line says what
 * is wrong (naming the path, and the offset for corruption) and *out is
 * untouched. */
pc_err pc__store_open(pc__store **out, const char *dir, pc__store_fn fn,
                      void *ctx);

/* Queue one record (len <= PC__STORE_RECORD_MAX). Not durable until
 * pc__store_sync() returns PC_OK. Returns PC_OK, PC_ETOOBIG, PC_ENOMEM. */
pc_err pc__store_append(pc__store *s, const void *payload, size_t len);

/* Write what was appended and fdatasync. Returns PC_OK (durable), PC_ESYS
 * (one line logged; the records stay queued and the next sync retries
 * them). */
pc_err pc__store_sync(pc__store *s);

/* Records queued and not yet synced. */
size_t pc__store_pending(const pc__store *s);

/* Bytes in the log file, synced records only. */
uint64_t pc__store_size(const pc__store *s);

/* Compaction: begin, add every live record, commit. Records appended to s
 * between begin and commit are kept (written after the live state). abort
 * drops the temporary file. Returns PC_OK, PC_ESYS (one line logged; the
 * old log stays in use), PC_ETOOBIG, PC_ENOMEM, PC_ESTATE (no compaction
 * begun / one already begun). */
pc_err pc__store_compact_begin(pc__store *s);
pc_err pc__store_compact_add(pc__store *s, const void *payload, size_t len);
pc_err pc__store_compact_commit(pc__store *s);
void pc__store_compact_abort(pc__store *s);

/* Sync what is queued, close the file, free s; *s NULL (NULL fine). */
void pc__store_close(pc__store **s);

/* The replay of a log image in memory, as pc__store_open() does it: for
 * the fuzz target and tests. *good gets the length of the valid prefix
 * (where a torn tail would be cut). Returns PC_OK, PC_EPROTO (corrupt; one
 * line logged with `name` and the offset), or fn's error. */
pc_err pc__store_replay_buf(const void *buf, size_t len, const char *name,
                            pc__store_fn fn, void *ctx, size_t *good);

#endif
