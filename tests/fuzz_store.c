/* tests/fuzz_store.c — fuzz target for the replay of the registry's log
 * (registry/store.c: pc__store_replay_buf, the walker pc__store_open runs
 * on the file), the code that reads what a crash or a disk left behind.
 *
 * Each input is a whole log image. The replay is compared with a model
 * computed from the input alone (the header, then records of u32 length in
 * 1 .. PC__STORE_RECORD_MAX, u32 CRC-32, payload; a bad record reaching the
 * end — cut header, length past the end, CRC mismatch of the last record,
 * zeros to the end — is a torn tail, any other one is corruption; a short
 * image of zeros or of the header's first bytes is a new log): the result,
 * the valid prefix and every record handed to the callback (its place in
 * the image, its length, its CRC) must agree. The callback fails at a
 * record chosen by the input's last byte, and the replay must stop there
 * with its code. Replaying the valid prefix again must give the same
 * records and no torn tail (what the open leaves after truncating).
 *
 * Seeds are built in code (a valid 3-record log, a torn one, corrupt ones,
 * a bad header, a new file). With FZ_STORE_SEEDS=DIR in the environment
 * they are also written to DIR, one file each (tests/fuzz_seeds/store/ was
 * made so), as a libFuzzer corpus.
 *
 * Built with clang and -DPICOS_FUZZ=ON it is a libFuzzer target; otherwise
 * fz_driver() (fuzzutil.h) runs the seeds and their mutations for ctest. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fuzzutil.h"
#include "store.h"

/* ---- the model ------------------------------------------------------------------ */

static uint32_t
le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static int
zeros(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static const uint8_t hdr[16] = {'P', 'I', 'C', 'O', 'S', 'L', 'G', '1',
                                1,   0,   0,   0,   0,   0,   0,   0};

/* A record takes 9 bytes at least: longer inputs are skipped. */
#define MAXREC (1u << 15)
#define MAXINPUT (16u + 9u * MAXREC)

typedef struct model {
    pc_err rc;
    size_t good;
    size_t n;           /* records before the end or the bad one */
    size_t off[MAXREC]; /* where each record's header is */
} model;

static void
model_run(const uint8_t *d, size_t size, model *m)
{
    size_t pos = 16;

    m->n = 0;
    m->good = 0;
    if (size < 16) {
        m->rc = zeros(d, size) || memcmp(d, hdr, size) == 0 ? PC_OK : PC_EPROTO;
        return;
    }
    if (memcmp(d, hdr, 16) != 0) {
        m->rc = PC_EPROTO;
        return;
    }
    m->rc = PC_OK;
    while (pos < size) {
        size_t left = size - pos;
        uint32_t len, sum;
        if (left < 8)
            break;
        len = le32(d + pos);
        sum = le32(d + pos + 4);
        if (len == 0 || len > PC__STORE_RECORD_MAX) {
            if (!zeros(d + pos, left))
                m->rc = PC_EPROTO;
            break;
        }
        if (len > left - 8)
            break;
        if ((uint32_t)crc32(0, d + pos + 8, len) != sum) {
            if (len != left - 8)
                m->rc = PC_EPROTO;
            break;
        }
        if (m->n == MAXREC)
            abort();
        m->off[m->n++] = pos;
        pos += 8 + len;
    }
    m->good = pos;
}

/* ---- the callback: checks each record against the model ------------------------ */

typedef struct seen {
    const uint8_t *base;
    size_t size;
    const model *m;
    size_t n;
    size_t fail_at; /* 1-based record to fail at, 0: never */
} seen;

static pc_err
on_record(void *ctx, const void *payload, size_t len)
{
    seen *s = ctx;
    const uint8_t *p = payload;

    if (s->fail_at && s->n + 1 == s->fail_at)
        return PC_ENOMEM;
    /* the record the model found next, in place, whole and checked */
    if (s->n >= s->m->n || p != s->base + s->m->off[s->n] + 8 ||
        len != le32(p - 8) || len == 0 || len > PC__STORE_RECORD_MAX ||
        p + len > s->base + s->size ||
        (uint32_t)crc32(0, p, (uInt)len) != le32(p - 4))
        abort();
    s->n++;
    return PC_OK;
}

static model m1, m2;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    seen s = {data, size, &m1, 0, 0};
    size_t good = (size_t)-1;
    pc_err rc, want;

    if (size > MAXINPUT)
        return 0;
    pc_log_set_level(PC_LOG_LEVEL_OFF); /* every corrupt input logs */
    model_run(data, size, &m1);
    s.fail_at = size ? data[size - 1] % 8 : 0;
    rc = pc__store_replay_buf(data, size, "fuzz", on_record, &s, &good);
    want = m1.rc;
    if (s.fail_at && s.fail_at <= m1.n)
        want = PC_ENOMEM; /* stopped at the failing record */
    if (rc != want)
        abort();
    if (rc == PC_ENOMEM) {
        if (s.n != s.fail_at - 1)
            abort();
        return 0;
    }
    if (s.n != m1.n)
        abort();
    if (rc != PC_OK) {
        if (good != (size_t)-1) /* *good untouched on error */
            abort();
        return 0;
    }
    if (good != m1.good || good > size)
        abort();
    /* the valid prefix (what the open truncates to) replays the same */
    model_run(data, good, &m2);
    s = (seen){data, good, &m2, 0, 0};
    if (pc__store_replay_buf(data, good, "fuzz", on_record, &s, &good) !=
            PC_OK ||
        good != m1.good || s.n != m1.n || m2.n != m1.n)
        abort();
    return 0;
}

/* ---- seeds ------------------------------------------------------------------------- */

#define NSEEDS 16
static struct fz_seed seeds[NSEEDS];
static size_t nseeds;

#define seed_add(p, n) fz_seed_add(seeds, &nseeds, NSEEDS, (p), (n))

/* A log image being built. */
static uint8_t img[4096];
static size_t ilen;

static void
put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static size_t
add_rec(const char *payload)
{
    size_t n = strlen(payload), at = ilen;

    put_le32(img + ilen, (uint32_t)n);
    put_le32(img + ilen + 4,
             (uint32_t)crc32(0, (const Bytef *)payload, (uInt)n));
    memcpy(img + ilen + 8, payload, n);
    ilen += 8 + n;
    return at;
}

__attribute__((constructor)) static void
make_seeds(void)
{
    size_t r1, r2;
    uint32_t l1;
    const char *dir;

    memcpy(img, hdr, 16);
    ilen = 16;
    add_rec("\x08\x01\x12\x0a join node"); /* shaped like RegRecords */
    r1 = add_rec("\x08\x03\x1a\x08name one");
    r2 = add_rec("\x08\x04\x1a\x0bname gone!!");
    seed_add(img, ilen);     /* 00: a valid 3-record log */
    seed_add(img, ilen - 5); /* 01: torn: the last record cut */
    seed_add(img, r2 + 5);   /* 02: torn: its header cut */
    img[r1 + 10] ^= 0x20;
    seed_add(img, ilen); /* 03: corrupt: CRC of record 1 */
    img[r1 + 10] ^= 0x20;
    l1 = le32(img + r1);
    put_le32(img + r1, 0);
    seed_add(img, ilen); /* 04: corrupt: a length of 0 */
    put_le32(img + r1, PC__STORE_RECORD_MAX + 1);
    seed_add(img, ilen); /* 05: corrupt: length over the limit */
    put_le32(img + r1, l1);
    img[ilen - 1] ^= 1;
    seed_add(img, ilen); /* 06: torn: CRC of the last record */
    img[ilen - 1] ^= 1;
    memset(img + ilen, 0, 40);
    seed_add(img, ilen + 40); /* 07: torn: zeros to the end */
    img[2] = 'X';
    seed_add(img, ilen); /* 08: bad magic */
    img[2] = 'C';
    img[8] = 2;
    seed_add(img, ilen); /* 09: version 2 */
    img[8] = 1;
    seed_add(img, 16);       /* 10: a header alone */
    seed_add(img, 0);        /* 11: a new (empty) file */
    seed_add(img, 7);        /* 12: a header cut short */
    seed_add("PICOSXYZ", 8); /* 13: a short file of something else */
    if ((dir = getenv("FZ_STORE_SEEDS")) && *dir)
        fz_write_seeds(dir, seeds, nseeds);
    for (size_t i = nseeds; i < NSEEDS; i++)
        seeds[i] = seeds[i % nseeds];
}

FZ_MAIN("fuzz_store", seeds)
