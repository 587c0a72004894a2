/* registry/store.c — the registry's append-only log (store.h).
 *
 * Design. The file is a 16-byte header ("PICOSLG1", u32 version 1, u32
 * reserved 0, little endian) and then framed records (u32 length, u32
 * CRC-32 of the payload, payload). Appends go to an in-memory buffer,
 * already framed, so pc__store_sync() is one write of the whole buffer on
 * an O_APPEND fd and one fdatasync: the group commit of a batch. The store
 * knows how many bytes of the file are synced (size); a sync that fails
 * truncates the file back to that size before returning, so the retry
 * writes the same records once and never after a half-written one (when
 * the truncate itself fails, the next sync tries it again before writing).
 *
 * Replay reads the image through a `src` (a buffer in memory, or the file
 * through a sliding window filled with pread, so a big log is streamed and
 * never loaded whole) and is the one walker behind pc__store_open() and
 * pc__store_replay_buf(). A bad record that reaches the end of the file —
 * a header cut short, a length past the end, a CRC mismatch on the last
 * record, or nothing but zero bytes to the end (a file extended by a crash
 * before its data reached the disk) — is a torn tail: it is what a crash in
 * the middle of a write leaves, so it is dropped and the file truncated
 * before it. Any other bad record (one with bytes after it, a length of 0
 * or over PC__STORE_RECORD_MAX followed by data) or a bad header is
 * corruption: the open fails and the file is left as it is for a person to
 * look at. A file shorter than the header that holds nothing but zeros or
 * a prefix of the header is one whose creation was cut short: it holds no
 * record, so it is started again. The directory is locked (flock) while a
 * store is open, so two registries can't interleave writes in one log.
 *
 * Compaction writes the header and the caller's live records to
 * registry.log.tmp (buffered, flushed every COMPACT_FLUSH bytes); the
 * commit then copies the records synced to the old log since begin, fsyncs
 * the new file, renames it over the log, fsyncs the directory and keeps the
 * new file's fd as the log's. The live state must include every record
 * appended before begin: those still queued at commit are in it, so they
 * are dropped from the queue (they are durable in the new file); records
 * appended after begin stay queued for the next sync. A registry.log.tmp
 * found at open is a compaction a crash interrupted, and is removed.
 */
#define _GNU_SOURCE /* O_CLOEXEC, O_DIRECTORY, pread, fdatasync */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include <zlib.h>

#include "picos/log.h"

#define MOD "registry"

#define LOG_NAME "registry.log"
#define TMP_NAME "registry.log.tmp"

#define HDR_LEN 16u
#define REC_HDR 8u
#define VERSION 1u
static const char magic[8] = {'P', 'I', 'C', 'O', 'S', 'L', 'G', '1'};

/* The replay window: room for the largest record and its frame, with slack
 * so a small-record log needs one pread per WINDOW bytes. */
#define WINDOW (256u * 1024u)
/* Live records are written to the temporary file in pieces of this size. */
#define COMPACT_FLUSH (1024u * 1024u)
/* Bytes copied per pread/write when the commit moves the old log's tail. */
#define COPY_CHUNK (64u * 1024u)

#define FILE_MODE 0600

typedef struct buf {
    unsigned char *p;
    size_t len, cap;
} buf;

struct pc__store {
    int fd;    /* the log, O_RDWR | O_APPEND */
    int dirfd; /* the data dir: fsynced after renames, flock'ed */
    char *path, *tmp_path, *dir;
    uint64_t size; /* bytes of the file known good and synced */
    bool dirty;    /* the file may hold bytes past size (a failed sync) */
    buf q;         /* framed records not yet synced */
    size_t nq;     /* how many */
    /* compaction */
    int cfd;         /* the temporary file, -1 when none is begun */
    buf c;           /* live records not yet written to cfd */
    uint64_t c_size; /* bytes written to cfd */
    uint64_t c_mark; /* the old log's records past c_mark go after them */
    size_t c_pre;    /* bytes of q queued before begin, still queued */
    size_t c_pre_n;  /* records among them */
};

/* ---- little helpers --------------------------------------------------------- */

static uint32_t
get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static void
put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static uint32_t
crc(const void *p, size_t n)
{
    /* n <= PC__STORE_RECORD_MAX, so it fits zlib's uInt */
    return (uint32_t)crc32(crc32(0L, Z_NULL, 0), (const Bytef *)p, (uInt)n);
}

static void
header(unsigned char h[HDR_LEN])
{
    memcpy(h, magic, sizeof magic);
    put32(h + 8, VERSION);
    put32(h + 12, 0);
}

static pc_err
buf_reserve(buf *b, size_t more)
{
    size_t cap = b->cap ? b->cap : 4096;
    unsigned char *p;

    if (b->len + more <= b->cap)
        return PC_OK;
    while (cap < b->len + more)
        cap *= 2;
    if (!(p = realloc(b->p, cap)))
        return PC_ENOMEM;
    b->p = p;
    b->cap = cap;
    return PC_OK;
}

/* Frame one record onto b. */
static pc_err
buf_record(buf *b, const void *payload, size_t len)
{
    if (len > PC__STORE_RECORD_MAX)
        return PC_ETOOBIG;
    if (len == 0 || !payload)
        return PC_EINVAL; /* a zero length is how corruption looks */
    if (buf_reserve(b, REC_HDR + len) != PC_OK)
        return PC_ENOMEM;
    put32(b->p + b->len, (uint32_t)len);
    put32(b->p + b->len + 4, crc(payload, len));
    memcpy(b->p + b->len + REC_HDR, payload, len);
    b->len += REC_HDR + len;
    return PC_OK;
}

static void
buf_fini(buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* write() until all of it is out; -1 with errno on an error (a short write
 * is retried, so the second attempt reports why it was short). */
static int
write_all(int fd, const void *p, size_t n)
{
    const unsigned char *c = p;

    while (n > 0) {
        ssize_t k = write(fd, c, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -1;
        if (k == 0) {
            errno = EIO;
            return -1;
        }
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

static char *
join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + 1 + b + 1);

    if (p) {
        memcpy(p, dir, a);
        p[a] = '/';
        memcpy(p + a + 1, name, b + 1);
    }
    return p;
}

/* ---- replay ------------------------------------------------------------------- */

/* Where replay reads the image: a buffer, or a file through a window. */
typedef struct src {
    uint64_t total;
    const unsigned char *mem; /* the whole image, or NULL for a file */
    int fd;
    unsigned char *win; /* file: WINDOW bytes, holding [woff, woff + wlen) */
    uint64_t woff;
    size_t wlen;
} src;

/* n bytes at off (off + n <= total, n <= WINDOW), or NULL with errno when
 * the file can't be read. */
static const unsigned char *
src_at(src *s, uint64_t off, size_t n)
{
    if (s->mem)
        return s->mem + off;
    if (off < s->woff || off + n > s->woff + s->wlen) {
        uint64_t want = s->total - off < WINDOW ? s->total - off : WINDOW;
        size_t got = 0;
        while (got < want) {
            ssize_t k = pread(s->fd, s->win + got, (size_t)want - got,
                              (off_t)(off + got));
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                if (k == 0)
                    errno = EIO; /* shorter than fstat said: not ours */
                s->wlen = 0;
                return NULL;
            }
            got += (size_t)k;
        }
        s->woff = off;
        s->wlen = got;
    }
    return s->win + (off - s->woff);
}

/* Whether bytes [off, total) are all zero; -1 on a read error. */
static int
src_zero(src *s, uint64_t off)
{
    while (off < s->total) {
        size_t n = s->total - off < WINDOW ? (size_t)(s->total - off) : WINDOW;
        const unsigned char *p = src_at(s, off, n);
        if (!p)
            return -1;
        for (size_t i = 0; i < n; i++)
            if (p[i])
                return 0;
        off += n;
    }
    return 1;
}

/* What a replay found. */
typedef struct replay_out {
    uint64_t good;    /* the valid prefix */
    bool fresh;       /* no header yet: a new (or cut-short new) file */
    const char *torn; /* why the tail past good was dropped, or NULL */
} replay_out;

static void
corrupt_line(const char *name, const char *what)
{
    PC_LOG_ERROR(MOD,
                 "%s: %s; not serving it — move the file aside to start "
                 "empty",
                 name, what);
}

/* Walk the image: fn for every good record; PC_OK with *o, PC_EPROTO
 * (logged), PC_ESYS (a read error, logged) or fn's code. */
static pc_err
replay(src *s, const char *name, pc__store_fn fn, void *ctx, replay_out *o)
{
    unsigned char want[HDR_LEN];
    const unsigned char *p;
    uint64_t pos = HDR_LEN;
    char what[128];

    memset(o, 0, sizeof *o);
    header(want);
    if (s->total < HDR_LEN) {
        /* no record fits: a creation cut short (zeros from a file extended
         * without its data, or part of our header) is a new file */
        int z = src_zero(s, 0);
        if (z < 0 || !(p = src_at(s, 0, (size_t)s->total)))
            goto ioerr;
        if (z || memcmp(p, want, (size_t)s->total) == 0) {
            o->fresh = true;
            return PC_OK;
        }
        corrupt_line(name, "corrupt header (shorter than a header)");
        return PC_EPROTO;
    }
    if (!(p = src_at(s, 0, HDR_LEN)))
        goto ioerr;
    if (memcmp(p, magic, sizeof magic) != 0) {
        corrupt_line(name, "corrupt header (bad magic: not a picos registry "
                           "log)");
        return PC_EPROTO;
    }
    if (get32(p + 8) != VERSION || get32(p + 12) != 0) {
        snprintf(what, sizeof what,
                 "corrupt header (version %u, reserved %u; this build reads "
                 "version %u)",
                 (unsigned)get32(p + 8), (unsigned)get32(p + 12), VERSION);
        corrupt_line(name, what);
        return PC_EPROTO;
    }
    while (pos < s->total) {
        uint64_t left = s->total - pos;
        uint32_t len, sum;
        const char *bad = NULL;

        if (left < REC_HDR) {
            o->torn = "record header cut short";
            break;
        }
        if (!(p = src_at(s, pos, REC_HDR)))
            goto ioerr;
        len = get32(p);
        sum = get32(p + 4);
        if (len == 0 || len > PC__STORE_RECORD_MAX) {
            int z = src_zero(s, pos);
            if (z < 0)
                goto ioerr;
            if (z) {
                o->torn = "zero bytes to the end";
                break;
            }
            if (len == 0)
                snprintf(what, sizeof what, "length 0");
            else
                snprintf(what, sizeof what, "length %u over the limit %u",
                         (unsigned)len, (unsigned)PC__STORE_RECORD_MAX);
            bad = what;
        } else if (len > left - REC_HDR) {
            o->torn = "length past the end of the file";
            break;
        } else {
            if (!(p = src_at(s, pos + REC_HDR, len)))
                goto ioerr;
            if (crc(p, len) != sum) {
                if (len == left - REC_HDR) {
                    o->torn = "CRC mismatch in the last record";
                    break;
                }
                bad = "CRC mismatch";
            }
        }
        if (bad) {
            char line[200];
            snprintf(line, sizeof line, "corrupt record at offset %llu (%s)",
                     (unsigned long long)pos, bad);
            corrupt_line(name, line);
            return PC_EPROTO;
        }
        pc_err rc = fn ? fn(ctx, p, len) : PC_OK;
        if (rc != PC_OK)
            return rc;
        pos += REC_HDR + len;
    }
    o->good = o->torn ? pos : s->total;
    return PC_OK;
ioerr:
    PC_LOG_ERROR(MOD, "%s: read: %s", name, strerror(errno));
    return PC_ESYS;
}

pc_err
pc__store_replay_buf(const void *b, size_t len, const char *name,
                     pc__store_fn fn, void *ctx, size_t *good)
{
    src s = {0};
    replay_out o;
    pc_err rc;

    if (!b && len)
        return PC_EINVAL;
    s.total = len;
    s.mem = b ? b : (const unsigned char *)"";
    rc = replay(&s, name ? name : "(buffer)", fn, ctx, &o);
    if (rc == PC_OK && good)
        *good = (size_t)o.good;
    return rc;
}

/* ---- open and close ------------------------------------------------------------- */

static void
store_free(pc__store *s)
{
    if (!s)
        return;
    pc__store_compact_abort(s);
    if (s->fd >= 0)
        close(s->fd);
    if (s->dirfd >= 0)
        close(s->dirfd); /* drops the flock */
    buf_fini(&s->q);
    free(s->path);
    free(s->tmp_path);
    free(s->dir);
    free(s);
}

static pc_err
sys_fail(const char *path, const char *what)
{
    PC_LOG_ERROR(MOD, "%s: %s%s%s", path, what, *what ? ": " : "",
                 strerror(errno));
    return PC_ESYS;
}

/* 0, or -1 with errno: ENOENT, ENOTDIR, EACCES (by access(2)'s rules, so
 * root may write anywhere), EROFS. */
static int
dir_usable(const char *dir)
{
    struct stat st;

    if (stat(dir, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return access(dir, W_OK | X_OK);
}

/* The data dir exists, is a directory we may write, and nobody else has a
 * store open in it. */
static pc_err
open_dir(pc__store *s, const char *dir)
{
    if (dir_usable(dir) != 0 ||
        (s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        PC_LOG_ERROR(MOD, "data dir %s: %s", dir, strerror(errno));
        return PC_ESYS;
    }
    if (flock(s->dirfd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            PC_LOG_ERROR(MOD, "data dir %s: in use by another registry", dir);
        else
            PC_LOG_ERROR(MOD, "data dir %s: flock: %s", dir, strerror(errno));
        return PC_ESYS;
    }
    return PC_OK;
}

/* Write the header into the empty log and make it durable. */
static pc_err
write_header(pc__store *s, bool created)
{
    unsigned char h[HDR_LEN];

    header(h);
    if (ftruncate(s->fd, 0) != 0 || write_all(s->fd, h, sizeof h) != 0 ||
        fsync(s->fd) != 0)
        return sys_fail(s->path, "writing the header");
    if (created && fsync(s->dirfd) != 0)
        return sys_fail(s->dir, "fsync");
    s->size = HDR_LEN;
    return PC_OK;
}

static pc_err
open_log(pc__store *s, pc__store_fn fn, void *ctx)
{
    bool created = false;
    struct stat st;
    replay_out o;
    src r = {0};
    pc_err rc;

    /* a compaction a crash interrupted: the log itself is still whole */
    if (unlink(s->tmp_path) == 0)
        PC_LOG_WARN(MOD,
                    "%s: removed, left by a compaction that did not "
                    "finish",
                    s->tmp_path);
    else if (errno != ENOENT)
        return sys_fail(s->tmp_path, "unlink");

    s->fd = open(s->path, O_RDWR | O_APPEND | O_CLOEXEC);
    if (s->fd < 0 && errno == ENOENT) {
        s->fd = open(s->path, O_RDWR | O_APPEND | O_CLOEXEC | O_CREAT | O_EXCL,
                     FILE_MODE);
        created = true;
    }
    if (s->fd < 0)
        return sys_fail(s->path, "open");
    if (fstat(s->fd, &st) != 0)
        return sys_fail(s->path, "fstat");
    if (!S_ISREG(st.st_mode)) {
        PC_LOG_ERROR(MOD, "%s: not a regular file", s->path);
        return PC_ESYS;
    }
    r.fd = s->fd;
    r.total = (uint64_t)st.st_size;
    if (!(r.win = malloc(WINDOW)))
        return PC_ENOMEM;
    rc = replay(&r, s->path, fn, ctx, &o);
    free(r.win);
    if (rc != PC_OK)
        return rc;
    if (o.fresh) {
        if (r.total > 0)
            PC_LOG_WARN(MOD,
                        "%s: %llu bytes, no whole header (its creation was "
                        "cut short): started again, empty",
                        s->path, (unsigned long long)r.total);
        return write_header(s, created);
    }
    if (o.torn) {
        if (ftruncate(s->fd, (off_t)o.good) != 0 || fsync(s->fd) != 0)
            return sys_fail(s->path, "dropping the torn tail");
        PC_LOG_WARN(MOD,
                    "%s: torn record at offset %llu (%s, left by a crash in "
                    "a write): dropped %llu bytes, the file truncated there",
                    s->path, (unsigned long long)o.good, o.torn,
                    (unsigned long long)(r.total - o.good));
    }
    s->size = o.good;
    return PC_OK;
}

pc_err
pc__store_open(pc__store **out, const char *dir, pc__store_fn fn, void *ctx)
{
    pc__store *s;
    pc_err rc;

    if (!out || !dir || !*dir)
        return PC_EINVAL;
    if (!(s = calloc(1, sizeof *s)))
        return PC_ENOMEM;
    s->fd = s->dirfd = s->cfd = -1;
    s->dir = strdup(dir);
    s->path = join(dir, LOG_NAME);
    s->tmp_path = join(dir, TMP_NAME);
    if (!s->dir || !s->path || !s->tmp_path)
        rc = PC_ENOMEM;
    else if ((rc = open_dir(s, dir)) == PC_OK)
        rc = open_log(s, fn, ctx);
    if (rc != PC_OK) {
        store_free(s);
        return rc;
    }
    *out = s;
    return PC_OK;
}

void
pc__store_close(pc__store **sp)
{
    if (!sp || !*sp)
        return;
    if ((*sp)->nq)
        (void)pc__store_sync(*sp); /* a failure was logged */
    store_free(*sp);
    *sp = NULL;
}

/* ---- append and sync ------------------------------------------------------------ */

pc_err
pc__store_append(pc__store *s, const void *payload, size_t len)
{
    pc_err rc;

    if (!s)
        return PC_EINVAL;
    if ((rc = buf_record(&s->q, payload, len)) == PC_OK)
        s->nq++;
    return rc;
}

pc_err
pc__store_sync(pc__store *s)
{
    if (!s)
        return PC_EINVAL;
    if (s->nq == 0)
        return PC_OK;
    if (s->dirty) { /* the last failure left bytes we could not cut off */
        if (ftruncate(s->fd, (off_t)s->size) != 0)
            return sys_fail(s->path, "sync: truncating a failed write");
        s->dirty = false;
    }
    if (write_all(s->fd, s->q.p, s->q.len) != 0 || fdatasync(s->fd) != 0) {
        /* keep the records queued; the file back to what was synced, so
         * the retry neither duplicates them nor follows a torn one */
        pc_err rc = sys_fail(s->path, "sync");
        int e = errno;
        if (ftruncate(s->fd, (off_t)s->size) != 0)
            s->dirty = true;
        errno = e;
        return rc;
    }
    s->size += s->q.len;
    s->q.len = 0;
    s->nq = 0;
    if (s->cfd >= 0) {
        /* records queued before begin are now in the old log; they are in
         * the live state, so the tail to copy starts after them */
        s->c_mark += s->c_pre;
        s->c_pre = 0;
        s->c_pre_n = 0;
    }
    return PC_OK;
}

size_t
pc__store_pending(const pc__store *s)
{
    return s ? s->nq : 0;
}

uint64_t
pc__store_size(const pc__store *s)
{
    return s ? s->size : 0;
}

/* ---- compaction ----------------------------------------------------------------- */

void
pc__store_compact_abort(pc__store *s)
{
    if (!s || s->cfd < 0)
        return;
    close(s->cfd);
    s->cfd = -1;
    if (unlink(s->tmp_path) != 0 && errno != ENOENT)
        PC_LOG_WARN(MOD, "%s: unlink: %s", s->tmp_path, strerror(errno));
    buf_fini(&s->c);
    s->c_size = 0;
}

/* A compaction step failed: log, drop the temporary file, PC_ESYS. */
static pc_err
compact_fail(pc__store *s, const char *what)
{
    pc_err rc = sys_fail(s->tmp_path, what);

    pc__store_compact_abort(s);
    return rc;
}

static pc_err
compact_flush(pc__store *s)
{
    if (s->c.len == 0)
        return PC_OK;
    if (write_all(s->cfd, s->c.p, s->c.len) != 0)
        return compact_fail(s, "compaction: write");
    s->c_size += s->c.len;
    s->c.len = 0;
    return PC_OK;
}

pc_err
pc__store_compact_begin(pc__store *s)
{
    unsigned char h[HDR_LEN];

    if (!s)
        return PC_EINVAL;
    if (s->cfd >= 0)
        return PC_ESTATE;
    s->cfd = open(s->tmp_path,
                  O_RDWR | O_APPEND | O_CLOEXEC | O_CREAT | O_TRUNC, FILE_MODE);
    if (s->cfd < 0)
        return sys_fail(s->tmp_path, "compaction: open");
    header(h);
    s->c.len = 0;
    s->c_size = 0;
    s->c_mark = s->size;
    s->c_pre = s->q.len;
    s->c_pre_n = s->nq;
    if (buf_reserve(&s->c, HDR_LEN) != PC_OK) {
        pc__store_compact_abort(s);
        return PC_ENOMEM;
    }
    memcpy(s->c.p, h, HDR_LEN);
    s->c.len = HDR_LEN;
    return PC_OK;
}

pc_err
pc__store_compact_add(pc__store *s, const void *payload, size_t len)
{
    pc_err rc;

    if (!s)
        return PC_EINVAL;
    if (s->cfd < 0)
        return PC_ESTATE;
    if ((rc = buf_record(&s->c, payload, len)) != PC_OK)
        return rc;
    return s->c.len >= COMPACT_FLUSH ? compact_flush(s) : PC_OK;
}

/* Copy the old log's bytes [from, s->size) to the temporary file. */
static pc_err
copy_tail(pc__store *s, uint64_t from)
{
    unsigned char *b;
    pc_err rc = PC_OK;

    if (from >= s->size)
        return PC_OK;
    if (!(b = malloc(COPY_CHUNK)))
        return PC_ENOMEM;
    while (from < s->size && rc == PC_OK) {
        size_t n =
            s->size - from < COPY_CHUNK ? (size_t)(s->size - from) : COPY_CHUNK;
        ssize_t k = pread(s->fd, b, n, (off_t)from);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            if (k == 0)
                errno = EIO;
            rc = sys_fail(s->path, "compaction: read");
        } else if (write_all(s->cfd, b, (size_t)k) != 0) {
            rc = sys_fail(s->tmp_path, "compaction: write");
        } else {
            from += (uint64_t)k;
            s->c_size += (uint64_t)k;
        }
    }
    free(b);
    return rc;
}

pc_err
pc__store_compact_commit(pc__store *s)
{
    pc_err rc;

    if (!s)
        return PC_EINVAL;
    if (s->cfd < 0)
        return PC_ESTATE;
    if ((rc = compact_flush(s)) != PC_OK)
        return rc;
    if ((rc = copy_tail(s, s->c_mark)) != PC_OK) {
        pc__store_compact_abort(s);
        return rc;
    }
    if (fsync(s->cfd) != 0)
        return compact_fail(s, "compaction: fsync");
    if (rename(s->tmp_path, s->path) != 0)
        return compact_fail(s, "compaction: rename");
    /* the new file is the log now, whatever happens next */
    close(s->fd);
    s->fd = s->cfd;
    s->cfd = -1;
    s->size = s->c_size;
    s->dirty = false;
    buf_fini(&s->c);
    if (s->c_pre) {
        memmove(s->q.p, s->q.p + s->c_pre, s->q.len - s->c_pre);
        s->q.len -= s->c_pre;
        s->nq -= s->c_pre_n;
        s->c_pre = s->c_pre_n = 0;
    }
    if (fsync(s->dirfd) != 0)
        return sys_fail(s->dir, "compaction: fsync after the rename (the "
                                "new log is in use; a crash may bring the "
                                "old one back)");
    return PC_OK;
}
