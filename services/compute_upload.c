/* services/compute_upload.c — a session's files: the library and the data
 * files the client uploads (docs/computations.md, "Inside a node";
 * proto/compute.proto, ComputeChunk and ComputeChunkAck).
 *
 * The Reserve declared every file (size and SHA-256: pc__cs_params); the
 * client sends each in ComputeChunks, in order per file: a chunk's offset
 * must be what was received of it, its size at most CP_CHUNK_MAX and
 * within the declared size, else the computation fails here with one line
 * saying why. Each chunk is written at once, hashed as it comes and
 * acknowledged (the client keeps at most CP_CHUNK_WINDOW unacknowledged).
 * The library goes to lib/<sha256>.so of the node's compute directory,
 * through a temporary name of this session renamed once its hash matched
 * (so sessions of one library share it, and a half-written one is never
 * loaded); data files go to the session's data/ (0444 once complete).
 * Empty files need no chunk. When the last file is complete the workers
 * start (compute_workers.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compute_node_int.h"

static void
file_paths(ss_state *st, size_t i)
{
    ss_file *f = &st->files[i];
    char hex[65];

    if (i == 0) {
        pc__cst_hex(st->p.lib.sha, hex);
        snprintf(f->path, sizeof f->path, "%s/lib/%s.so", st->p.root, hex);
        snprintf(f->tmp, sizeof f->tmp, "%s/lib/.%s.s%" PRIu64 ".tmp",
                 st->p.root, hex, st->p.id);
    } else {
        snprintf(f->path, sizeof f->path, "%s/data/%s", st->dir,
                 st->p.files[i - 1].name);
        snprintf(f->tmp, sizeof f->tmp, "%s", f->path);
    }
}

static const pc__cs_file *
declared(const ss_state *st, size_t i)
{
    return i == 0 ? &st->p.lib : &st->p.files[i - 1];
}

/* File i is complete: check its hash. */
static bool
file_complete(ss_state *st, size_t i)
{
    ss_file *f = &st->files[i];
    const pc__cs_file *dcl = declared(st, i);
    uint8_t sha[32];
    char a[65], b[65], t[640];

    pc__cst_sha_final(&f->sha, sha);
    f->done = true;
    if (f->fd >= 0) {
        if (i > 0)
            (void)fchmod(f->fd, 0444);
        close(f->fd);
        f->fd = -1;
    }
    if (memcmp(sha, dcl->sha, 32)) {
        pc__cst_hex(dcl->sha, a);
        pc__cst_hex(sha, b);
        if (i == 0)
            snprintf(t, sizeof t,
                     "library SHA-256 mismatch: declared %s, got %s", a, b);
        else
            snprintf(t, sizeof t,
                     "file %s SHA-256 mismatch: declared %s, got %s", dcl->name,
                     a, b);
        pc__ss_fail(st, t);
        return false;
    }
    if (i == 0 && rename(f->tmp, f->path) != 0) {
        snprintf(t, sizeof t, "can't store the library: %s", strerror(errno));
        pc__ss_fail(st, t);
        return false;
    }
    return true;
}

static bool
file_open(ss_state *st, size_t i)
{
    ss_file *f = &st->files[i];
    char t[400];

    f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                 i == 0 ? 0600 : 0644);
    if (f->fd < 0) {
        snprintf(t, sizeof t, "can't write %.200s: %s", f->tmp,
                 strerror(errno));
        pc__ss_fail(st, t);
        return false;
    }
    return true;
}

static bool
all_done(const ss_state *st)
{
    for (size_t i = 0; i <= st->p.nfiles; i++)
        if (!st->files[i].done)
            return false;
    return true;
}

void
pc__ss_on_chunk(ss_state *st, const pc_msg *m)
{
    Picos__V1__ComputeChunk *c =
        pc__cp_unpack(&picos__v1__compute_chunk__descriptor, m);
    Picos__V1__ComputeChunkAck ack = PICOS__V1__COMPUTE_CHUNK_ACK__INIT;
    const pc__cs_file *dcl;
    ss_file *f;
    char t[300];

    if (!c) {
        pc__ss_fail(st, "a ComputeChunk that does not parse");
        return;
    }
    if (st->phase != PH_UPLOAD) {
        snprintf(t, sizeof t, "a chunk of file %u after the upload",
                 (unsigned)c->file);
        goto bad;
    }
    if (c->file > st->p.nfiles) {
        snprintf(t, sizeof t, "a chunk of file %u, there are %zu",
                 (unsigned)c->file, st->p.nfiles + 1);
        goto bad;
    }
    f = &st->files[c->file];
    dcl = declared(st, c->file);
    if (c->data.len > CP_CHUNK_MAX) {
        snprintf(t, sizeof t, "a chunk of %zu bytes, the most is %u",
                 c->data.len, CP_CHUNK_MAX);
        goto bad;
    }
    if (f->done || c->offset != f->got) {
        snprintf(t, sizeof t,
                 "chunk of file %u at offset %" PRIu64 ", %" PRIu64
                 " bytes of it received",
                 (unsigned)c->file, c->offset, f->got);
        goto bad;
    }
    if (c->data.len > dcl->size - f->got) {
        snprintf(t, sizeof t,
                 "chunk of file %u goes past its %" PRIu64 " bytes",
                 (unsigned)c->file, dcl->size);
        goto bad;
    }
    if (f->fd < 0 && !file_open(st, c->file))
        goto out;
    for (size_t off = 0; off < c->data.len;) {
        ssize_t n = write(f->fd, c->data.data + off, c->data.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(t, sizeof t, "can't write %.200s: %s", f->tmp,
                     strerror(errno));
            pc__ss_fail(st, t);
            goto out;
        }
        off += (size_t)n;
    }
    pc__cst_sha_update(&f->sha, c->data.data, c->data.len);
    f->got += c->data.len;
    ack.file = c->file;
    ack.received = f->got;
    (void)pc__cp_send(st->p.client, CP_T_CHUNK_ACK, &ack.base);
    if (f->got == dcl->size && file_complete(st, c->file) && all_done(st))
        (void)pc__ss_start_workers(st);
    goto out;
bad:
    pc__ss_fail(st, t);
out:
    pc__cp_free(c);
}

void
pc__ss_upload_begin(ss_state *st)
{
    for (size_t i = 0; i <= st->p.nfiles && st->phase == PH_UPLOAD; i++) {
        file_paths(st, i);
        pc__cst_sha_init(&st->files[i].sha);
        if (declared(st, i)->size == 0 && file_open(st, i))
            (void)file_complete(st, i);
    }
    if (st->phase == PH_UPLOAD && all_done(st))
        (void)pc__ss_start_workers(st);
}

void
pc__ss_upload_fini(ss_state *st)
{
    for (size_t i = 0; st->files && i <= st->p.nfiles; i++) {
        if (st->files[i].fd >= 0)
            close(st->files[i].fd);
        st->files[i].fd = -1;
    }
    if (st->files && !st->files[0].done)
        (void)unlink(st->files[0].tmp);
}
