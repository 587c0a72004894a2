/* tests/test_store.c — the registry's append-only log (registry/store.c).
 *
 * Every test works in its own directory made with mkdtemp under /tmp and
 * removed at the end. Records are made from their index (st_payload), so a
 * replay is checked record by record against what was appended, in order.
 * A crash is a forked child that _exit()s with records queued; a torn write
 * is the file cut at every offset inside its last record; a failing write
 * is RLIMIT_FSIZE (EFBIG), so the sync's error path runs for real. Log
 * lines go to a sink that keeps them, so the tests check what the user is
 * told (the path, the offset). No node is started: the store is plain
 * code, and CUnit is called from the main thread only.
 */
#define _GNU_SOURCE /* mkdtemp, nftw */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store.h"
#include "testutil.h"

/* ---- scaffolding ------------------------------------------------------------ */

/* The log lines of the test so far (WARN and ERROR). */
#define CAP_MAX 16
static char cap_lines[CAP_MAX][512];
static int cap_n, cap_errors, cap_warns;

static void
cap_sink(pc_log_level level, const char *module, const char *text, void *u)
{
    (void)u;
    (void)module;
    if (level >= PC_LOG_LEVEL_ERROR)
        cap_errors++;
    else if (level >= PC_LOG_LEVEL_WARN)
        cap_warns++;
    if (cap_n < CAP_MAX)
        snprintf(cap_lines[cap_n++], sizeof cap_lines[0], "%s", text);
}

static void
cap_reset(void)
{
    pc_log_set_sink(cap_sink, NULL);
    cap_n = cap_errors = cap_warns = 0;
}

/* Whether some captured line holds every one of the (NULL-ended) words. */
static int
cap_has(const char *a, const char *b, const char *c)
{
    for (int i = 0; i < cap_n; i++)
        if (strstr(cap_lines[i], a) && (!b || strstr(cap_lines[i], b)) &&
            (!c || strstr(cap_lines[i], c)))
            return 1;
    return 0;
}

static void
cap_dump(void)
{
    for (int i = 0; i < cap_n; i++)
        printf("    log: %s\n", cap_lines[i]);
}

static char st_dir[96];
static char st_log[128], st_tmp[128];

static void
dir_make(void)
{
    CU_ASSERT_FATAL(pt_mkdtemp(st_dir, sizeof st_dir, "store"));
    snprintf(st_log, sizeof st_log, "%s/registry.log", st_dir);
    snprintf(st_tmp, sizeof st_tmp, "%s/registry.log.tmp", st_dir);
    cap_reset();
}

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(p);
}

static void
dir_remove(void)
{
    chmod(st_dir, 0700);
    TCHECK(nftw(st_dir, rm_one, 8, FTW_DEPTH | FTW_PHYS) == 0);
    pt_flush();
}

/* Record i: 4 bytes of i, then bytes made from i; lengths vary from 1 to
 * about 200, and every 97th record is 60,000 bytes (a record larger than
 * what is left of the replay window). */
static size_t
st_len(int i)
{
    if (i % 97 == 96)
        return 60000;
    return 4 + (size_t)((i * 37) % 197);
}

static unsigned char st_pbuf[PC__STORE_RECORD_MAX + 1];

static const unsigned char *
st_payload(int i, size_t *len)
{
    size_t n = st_len(i);

    memcpy(st_pbuf, &i, 4);
    for (size_t j = 4; j < n; j++)
        st_pbuf[j] = (unsigned char)(i * 31 + (int)j);
    *len = n;
    return st_pbuf;
}

static pc_err
append_i(pc__store *s, int i)
{
    size_t n;
    const unsigned char *p = st_payload(i, &n);

    return pc__store_append(s, p, n);
}

/* What a replay gave: the index of each record, -1 where it differs from
 * every st_payload (checked against the index in its first bytes). */
#define COL_MAX 20000
typedef struct col {
    int n;
    int idx[COL_MAX];
    int fail_at; /* return PC_ENOMEM at this record (0: never) */
} col;

static col st_col;

static pc_err
col_fn(void *ctx, const void *p, size_t len)
{
    col *c = ctx;
    int i = -1;
    size_t n;

    if (c->fail_at && c->n + 1 == c->fail_at)
        return PC_ENOMEM;
    if (len >= 4) {
        memcpy(&i, p, 4);
        if (i < 0 || i > 1000000)
            i = -1;
        else if (st_len(i) != len || memcmp(st_payload(i, &n), p, len) != 0)
            i = -1;
    }
    if (c->n < COL_MAX)
        c->idx[c->n] = i;
    c->n++;
    return PC_OK;
}

static col *
col_reset(void)
{
    memset(&st_col, 0, sizeof st_col);
    return &st_col;
}

/* The collected records are exactly first .. first + n - 1. */
#define CHECK_COL(first, count) check_col_at(__LINE__, (first), (count))

static void
check_col_at(int line, int first, int count)
{
    if (st_col.n != count) {
        pt_fail_at(__FILE__, line, "replayed %d records, want %d", st_col.n,
                   count);
        return;
    }
    for (int k = 0; k < count && k < COL_MAX; k++)
        if (st_col.idx[k] != first + k) {
            pt_fail_at(__FILE__, line, "record %d is %d, want %d", k,
                       st_col.idx[k], first + k);
            return;
        }
}

/* Reopen the log and replay it into st_col. */
static pc_err
reopen(pc__store **s)
{
    return pc__store_open(s, st_dir, col_fn, col_reset());
}

static off_t
file_size(const char *p)
{
    struct stat st;

    return stat(p, &st) == 0 ? st.st_size : -1;
}

/* The file's bytes (malloc'd) and length. */
static unsigned char *
file_read(const char *p, size_t *len)
{
    FILE *f = fopen(p, "rb");
    unsigned char *b = NULL;
    long n;

    *len = 0;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
        fseek(f, 0, SEEK_SET) == 0 && (b = malloc((size_t)n + 1)) &&
        fread(b, 1, (size_t)n, f) == (size_t)n)
        *len = (size_t)n;
    fclose(f);
    return b;
}

static void
file_write(const char *p, const void *b, size_t len)
{
    FILE *f = fopen(p, "wb");

    CU_ASSERT_FATAL(f != NULL);
    CU_ASSERT_FATAL(fwrite(b, 1, len, f) == len);
    CU_ASSERT_FATAL(fclose(f) == 0);
}

/* A log of records 0 .. n-1, synced and closed. */
static void
make_log(int n)
{
    pc__store *s = NULL;

    CU_ASSERT_FATAL(pc__store_open(&s, st_dir, NULL, NULL) == PC_OK);
    for (int i = 0; i < n; i++)
        TCHECK_RC(append_i(s, i), PC_OK);
    TCHECK_RC(pc__store_sync(s), PC_OK);
    pc__store_close(&s);
}

/* Offset of record k in a log made by make_log. */
static size_t
rec_off(int k)
{
    size_t off = 16;

    for (int i = 0; i < k; i++)
        off += 8 + st_len(i);
    return off;
}

/* ---- append, sync, replay --------------------------------------------------------- */

PT_TEST(append_sync_reopen)
static void
append_sync_reopen(void)
{
    pc__store *s = NULL;

    dir_make();
    TCHECK_RC(reopen(&s), PC_OK);
    CU_ASSERT_FATAL(s != NULL);
    CHECK_COL(0, 0);
    TCHECK_EQ(file_size(st_log), 16); /* a new log: just the header */
    TCHECK_EQ(pc__store_size(s), 16);
    for (int i = 0; i < 3; i++)
        TCHECK_RC(append_i(s, i), PC_OK);
    TCHECK_EQ(pc__store_pending(s), 3);
    TCHECK_EQ(pc__store_size(s), 16); /* queued, not synced */
    TCHECK_EQ(file_size(st_log), 16); /* nothing written before sync */
    TCHECK_RC(pc__store_sync(s), PC_OK);
    TCHECK_EQ(pc__store_pending(s), 0);
    TCHECK_EQ(pc__store_size(s), rec_off(3));
    TCHECK_EQ(file_size(st_log), rec_off(3));
    TCHECK_RC(pc__store_sync(s), PC_OK); /* nothing queued: a no-op */
    pc__store_close(&s);
    TCHECK(s == NULL);
    pc__store_close(&s); /* NULL is fine */

    TCHECK_RC(reopen(&s), PC_OK);
    CHECK_COL(0, 3);
    TCHECK_EQ(pc__store_size(s), rec_off(3));
    /* appending after a replay goes after the replayed records */
    TCHECK_RC(append_i(s, 3), PC_OK);
    pc__store_close(&s); /* close syncs what is queued */
    TCHECK_RC(reopen(&s), PC_OK);
    CHECK_COL(0, 4);
    pc__store_close(&s);
    TCHECK_EQ(cap_n, 0);
    cap_dump();
    dir_remove();
}

PT_TEST(ten_thousand_records)
static void
ten_thousand_records(void)
{
    pc__store *s = NULL;
    const int n = 10000;

    dir_make();
    TCHECK_RC(reopen(&s), PC_OK);
    for (int i = 0; i < n; i++) {
        TCHECK_RC(append_i(s, i), PC_OK);
        if (i % 500 == 499) /* group commits of 500 */
            TCHECK_RC(pc__store_sync(s), PC_OK);
    }
    pc__store_close(&s);
    /* ~7 MB: many replay windows, 60 kB records across their edges */
    TCHECK_EQ(file_size(st_log), rec_off(n));
    TCHECK_RC(reopen(&s), PC_OK);
    CHECK_COL(0, n);
    TCHECK_EQ(pc__store_size(s), rec_off(n));
    pc__store_close(&s);
    TCHECK_EQ(cap_n, 0);
    dir_remove();
}

/* Records queued and not synced when the process dies are not in the log;
 * the synced ones all are. */
PT_TEST(unsynced_lost_on_crash)
static void
unsynced_lost_on_crash(void)
{
    pc__store *s = NULL;
    int status = 0;
    pid_t pid;

    dir_make();
    make_log(2);
    fflush(NULL);
    pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        pc__store *c = NULL;
        if (pc__store_open(&c, st_dir, NULL, NULL) != PC_OK)
            _exit(10);
        for (int i = 2; i < 7; i++)
            if (append_i(c, i) != PC_OK)
                _exit(11);
        if (pc__store_sync(c) != PC_OK)
            _exit(12);
        for (int i = 7; i < 10; i++)
            if (append_i(c, i) != PC_OK)
                _exit(13);
        if (pc__store_pending(c) != 3)
            _exit(14);
        _exit(0); /* the crash: three records queued */
    }
    CU_ASSERT_FATAL(waitpid(pid, &status, 0) == pid);
    TCHECK(WIFEXITED(status));
    TCHECK_EQ(WEXITSTATUS(status), 0);
    TCHECK_RC(reopen(&s), PC_OK); /* the child's lock went with it */
    CHECK_COL(0, 7);
    pc__store_close(&s);
    dir_remove();
}

/* ---- torn tails ------------------------------------------------------------------ */

/* The log cut at every offset inside its last record: each open replays
 * the records before it, truncates the file there and says so, and the
 * log takes appends after it. The in-memory replay agrees on the cut. */
PT_TEST(torn_tail_every_offset)
static void
torn_tail_every_offset(void)
{
    const int n = 4;
    unsigned char *img;
    size_t len, start = rec_off(n - 1), end = rec_off(n);
    pc__store *s = NULL;
    char off_text[32];

    dir_make();
    make_log(n);
    img = file_read(st_log, &len);
    CU_ASSERT_FATAL(img != NULL && len == end);
    snprintf(off_text, sizeof off_text, "offset %zu", start);
    for (size_t cut = start; cut < end; cut++) {
        size_t good = 0;
        col *c = col_reset();

        TCHECK_RC(pc__store_replay_buf(img, cut, "img", col_fn, c, &good),
                  PC_OK);
        TCHECK_EQ(good, start);
        CHECK_COL(0, n - 1);

        file_write(st_log, img, cut);
        cap_reset();
        TCHECK_RC(reopen(&s), PC_OK);
        CHECK_COL(0, n - 1);
        TCHECK_EQ(file_size(st_log), start);
        TCHECK_EQ(pc__store_size(s), start);
        if (cut > start) { /* one WARN naming the file and the offset */
            TCHECK_EQ(cap_warns, 1);
            TCHECK(cap_has(st_log, off_text, "torn"));
        } else {
            TCHECK_EQ(cap_n, 0);
        }
        TCHECK_EQ(cap_errors, 0);
        if (cut == start + 1 || cut == end - 1) { /* appends go on from it */
            TCHECK_RC(append_i(s, n - 1), PC_OK);
            TCHECK_RC(pc__store_sync(s), PC_OK);
            pc__store_close(&s);
            TCHECK_RC(reopen(&s), PC_OK);
            CHECK_COL(0, n);
            TCHECK_EQ(file_size(st_log), end);
        }
        pc__store_close(&s);
    }
    free(img);
    dir_remove();
}

/* Other shapes of a torn tail: a CRC mismatch in the last record (its
 * bytes reached the disk in part), zeros to the end of the file (the size
 * did and the data did not). */
PT_TEST(torn_tail_crc_and_zeros)
static void
torn_tail_crc_and_zeros(void)
{
    static const unsigned char zeros[300];
    unsigned char *img;
    size_t len;
    pc__store *s = NULL;

    dir_make();
    make_log(3);
    img = file_read(st_log, &len);
    CU_ASSERT_FATAL(img != NULL);

    img[len - 1] ^= 0x40; /* the last payload byte */
    file_write(st_log, img, len);
    TCHECK_RC(reopen(&s), PC_OK);
    CHECK_COL(0, 2);
    TCHECK_EQ(file_size(st_log), rec_off(2));
    TCHECK(cap_has(st_log, "CRC", NULL));
    pc__store_close(&s);
    img[len - 1] ^= 0x40;

    for (size_t z = 1; z <= sizeof zeros; z += 37) {
        FILE *f;
        file_write(st_log, img, len);
        CU_ASSERT_FATAL((f = fopen(st_log, "ab")) != NULL);
        TCHECK(fwrite(zeros, 1, z, f) == z);
        fclose(f);
        TCHECK_RC(reopen(&s), PC_OK);
        CHECK_COL(0, 3);
        TCHECK_EQ(file_size(st_log), len);
        pc__store_close(&s);
    }
    TCHECK_EQ(cap_errors, 0);
    free(img);
    dir_remove();
}

/* ---- corruption ------------------------------------------------------------------ */

/* Open img (written as the log) and expect PC_EPROTO with the file left as
 * it is, *out untouched, nothing replayed past the bad record and one
 * ERROR line holding the path, `a` and `b`. */
#define EXPECT_CORRUPT(img, len, a, b)                                         \
    expect_corrupt_at(__LINE__, (img), (len), (a), (b))

static void
expect_corrupt_at(int line, const unsigned char *img, size_t len, const char *a,
                  const char *b)
{
    pc__store *s = (pc__store *)&st_col; /* a sentinel: must stay */
    unsigned char *after;
    size_t alen, good = 12345;

    file_write(st_log, img, len);
    cap_reset();
    if (pc__store_open(&s, st_dir, col_fn, col_reset()) != PC_EPROTO)
        pt_fail_at(__FILE__, line, "open did not fail with PC_EPROTO");
    if (s != (pc__store *)&st_col)
        pt_fail_at(__FILE__, line, "*out was changed");
    after = file_read(st_log, &alen);
    if (!after || alen != len || memcmp(after, img, len) != 0)
        pt_fail_at(__FILE__, line, "the corrupt file was changed");
    free(after);
    if (cap_errors != 1 || !cap_has(st_log, a, b) ||
        !cap_has("move the file aside", NULL, NULL)) {
        pt_fail_at(__FILE__, line, "no ERROR line with the path, \"%s\"", a);
        cap_dump();
    }
    /* the in-memory replay says the same */
    if (pc__store_replay_buf(img, len, "img", NULL, NULL, &good) != PC_EPROTO ||
        good != 12345)
        pt_fail_at(__FILE__, line, "replay_buf disagrees");
}

PT_TEST(corrupt_middle_record)
static void
corrupt_middle_record(void)
{
    unsigned char *img;
    size_t len, off1 = rec_off(1);
    char at[32];

    dir_make();
    make_log(3);
    img = file_read(st_log, &len);
    CU_ASSERT_FATAL(img != NULL);
    snprintf(at, sizeof at, "offset %zu", off1);

    img[off1 + 8 + 2] ^= 0x01; /* a payload byte of record 1 */
    EXPECT_CORRUPT(img, len, at, "CRC mismatch");
    TCHECK(st_col.n <= 1); /* nothing past the bad record */
    img[off1 + 8 + 2] ^= 0x01;

    img[off1 + 4] ^= 0x80; /* its CRC */
    EXPECT_CORRUPT(img, len, at, "CRC mismatch");
    img[off1 + 4] ^= 0x80;

    memset(img + off1, 0, 4); /* a length of 0 */
    EXPECT_CORRUPT(img, len, at, "length 0");

    img[off1 + 2] = 0x01; /* 65536 */
    img[off1 + 0] = 0x01; /* 65537: one over the limit */
    EXPECT_CORRUPT(img, len, at, "65537 over the limit");

    free(img);

    /* a length over the limit in the last record is corruption too, not
     * a length past the end: no write of ours makes one */
    TCHECK(unlink(st_log) == 0);
    make_log(3);
    img = file_read(st_log, &len);
    CU_ASSERT_FATAL(img != NULL);
    snprintf(at, sizeof at, "offset %zu", rec_off(2));
    img[rec_off(2) + 2] = 0x10;
    EXPECT_CORRUPT(img, len, at, "over the limit");
    free(img);
    dir_remove();
}

PT_TEST(corrupt_header)
static void
corrupt_header(void)
{
    unsigned char *img;
    size_t len;
    pc__store *s = NULL;

    dir_make();
    make_log(2);
    img = file_read(st_log, &len);
    CU_ASSERT_FATAL(img != NULL);

    img[0] = 'X';
    EXPECT_CORRUPT(img, len, "bad magic", NULL);
    img[0] = 'P';
    img[8] = 2; /* version 2 */
    EXPECT_CORRUPT(img, len, "version 2", NULL);
    img[8] = 1;
    img[12] = 1; /* reserved */
    EXPECT_CORRUPT(img, len, "corrupt header", NULL);
    img[12] = 0;
    EXPECT_CORRUPT((const unsigned char *)"hello", 5, "corrupt header", NULL);
    /* a header alone with bad magic, no records */
    img[3] = 'X';
    EXPECT_CORRUPT(img, 16, "bad magic", NULL);
    img[3] = 'O';

    /* shorter than a header and nothing but zeros or the header's first
     * bytes: a creation cut short, started again */
    for (size_t k = 0; k < 16; k++) {
        static const unsigned char z[16];
        file_write(st_log, k % 2 ? img : z, k);
        cap_reset();
        TCHECK_RC(reopen(&s), PC_OK);
        CHECK_COL(0, 0);
        TCHECK_EQ(file_size(st_log), 16);
        TCHECK_EQ(cap_errors, 0);
        pc__store_close(&s);
    }
    free(img);
    img = file_read(st_log, &len);
    TCHECK(img && len == 16 &&
           memcmp(img, "PICOSLG1\1\0\0\0\0\0\0\0", 16) == 0);
    free(img);
    dir_remove();
}

/* The callback's error stops the replay and fails the open. */
PT_TEST(callback_error)
static void
callback_error(void)
{
    pc__store *s = NULL;
    col *c;

    dir_make();
    make_log(5);
    c = col_reset();
    c->fail_at = 3;
    TCHECK_RC(pc__store_open(&s, st_dir, col_fn, c), PC_ENOMEM);
    TCHECK(s == NULL);
    TCHECK_EQ(c->n, 2);
    TCHECK_EQ(file_size(st_log), rec_off(5));
    dir_remove();
}

/* ---- the data dir ---------------------------------------------------------------- */

/* In a child as uid/gid 65534: open in `path` (made 0500, owned by it)
 * must fail with PC_ESYS and "Permission denied". 0 when it does, 77 when
 * the child can't become nobody, another code otherwise. */
static int
ro_as_nobody(const char *path)
{
    int status = 0;
    pid_t pid;

    if (chown(path, 65534, 65534) != 0 || chmod(st_dir, 0711) != 0)
        return 77;
    fflush(NULL);
    if ((pid = fork()) < 0)
        return 1;
    if (pid == 0) {
        pc__store *s = NULL;
        char want[200];
        if (setgid(65534) != 0 || setuid(65534) != 0 || geteuid() == 0)
            _exit(77);
        cap_reset();
        if (pc__store_open(&s, path, NULL, NULL) != PC_ESYS)
            _exit(2);
        snprintf(want, sizeof want, "data dir %s: Permission denied", path);
        _exit(cap_has(want, NULL, NULL) && cap_n == 1 ? 0 : 3);
    }
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return 4;
    chmod(st_dir, 0700);
    return WEXITSTATUS(status);
}

PT_TEST(data_dir_errors)
static void
data_dir_errors(void)
{
    pc__store *s = NULL, *t = NULL;
    char path[160], want[200];

    dir_make();
    snprintf(path, sizeof path, "%s/missing", st_dir);
    TCHECK_RC(pc__store_open(&s, path, NULL, NULL), PC_ESYS);
    snprintf(want, sizeof want, "data dir %s: No such file or directory", path);
    TCHECK(cap_has(want, NULL, NULL));
    TCHECK(s == NULL);

    snprintf(path, sizeof path, "%s/file", st_dir);
    file_write(path, "x", 1);
    cap_reset();
    TCHECK_RC(pc__store_open(&s, path, NULL, NULL), PC_ESYS);
    snprintf(want, sizeof want, "data dir %s: Not a directory", path);
    TCHECK(cap_has(want, NULL, NULL));
    TCHECK_EQ(cap_n, 1);

    TCHECK_RC(pc__store_open(NULL, st_dir, NULL, NULL), PC_EINVAL);
    TCHECK_RC(pc__store_open(&s, NULL, NULL, NULL), PC_EINVAL);

    /* one store per directory: a second open is refused */
    TCHECK_RC(pc__store_open(&s, st_dir, NULL, NULL), PC_OK);
    cap_reset();
    TCHECK_RC(pc__store_open(&t, st_dir, NULL, NULL), PC_ESYS);
    TCHECK(cap_has("in use", NULL, NULL));
    TCHECK(t == NULL);
    pc__store_close(&s);
    TCHECK_RC(pc__store_open(&t, st_dir, NULL, NULL), PC_OK);
    pc__store_close(&t);

    snprintf(path, sizeof path, "%s/ro", st_dir);
    CU_ASSERT_FATAL(mkdir(path, 0700) == 0);
    CU_ASSERT_FATAL(chmod(path, 0500) == 0);
    if (geteuid() != 0) {
        cap_reset();
        TCHECK_RC(pc__store_open(&s, path, NULL, NULL), PC_ESYS);
        snprintf(want, sizeof want, "data dir %s: Permission denied", path);
        TCHECK(cap_has(want, NULL, NULL));
    } else {
        /* root writes through permissions (and access(2) says so): the
         * check runs in a child that became nobody, on a directory nobody
         * owns with mode 0500 */
        int rc = ro_as_nobody(path);
        if (rc == 77)
            printf("\n    SKIP read-only data dir: root, can't be nobody ");
        else
            TCHECK_EQ(rc, 0);
    }
    chmod(path, 0700);
    dir_remove();
}

/* ---- limits ---------------------------------------------------------------------- */

PT_TEST(oversized_append)
static void
oversized_append(void)
{
    static unsigned char big[PC__STORE_RECORD_MAX + 1];
    pc__store *s = NULL;
    size_t good = 0;
    unsigned char *img;
    size_t len;

    dir_make();
    TCHECK_RC(pc__store_open(&s, st_dir, NULL, NULL), PC_OK);
    memset(big, 0xab, sizeof big);
    TCHECK_RC(pc__store_append(s, big, sizeof big), PC_ETOOBIG);
    TCHECK_EQ(pc__store_pending(s), 0);
    TCHECK_RC(pc__store_append(s, big, 0), PC_EINVAL); /* reads as corrupt */
    TCHECK_RC(pc__store_append(s, big, PC__STORE_RECORD_MAX), PC_OK);
    TCHECK_RC(pc__store_compact_begin(s), PC_OK);
    TCHECK_RC(pc__store_compact_add(s, big, sizeof big), PC_ETOOBIG);
    pc__store_compact_abort(s);
    pc__store_close(&s);
    img = file_read(st_log, &len);
    TCHECK_EQ(len, 16 + 8 + PC__STORE_RECORD_MAX);
    TCHECK_RC(pc__store_replay_buf(img, len, "img", NULL, NULL, &good), PC_OK);
    TCHECK_EQ(good, len);
    free(img);
    dir_remove();
}

/* A sync whose write fails (the file size limit: EFBIG after a short
 * write) reports PC_ESYS, keeps the records queued and leaves the file as
 * it was; the retry writes them once. */
PT_TEST(sync_failure_retry)
static void
sync_failure_retry(void)
{
    struct rlimit old, lim;
    pc__store *s = NULL;
    off_t before;

    dir_make();
    TCHECK_RC(reopen(&s), PC_OK);
    for (int i = 0; i < 3; i++)
        TCHECK_RC(append_i(s, i), PC_OK);
    TCHECK_RC(pc__store_sync(s), PC_OK);
    before = file_size(st_log);
    for (int i = 3; i < 10; i++)
        TCHECK_RC(append_i(s, i), PC_OK);

    CU_ASSERT_FATAL(getrlimit(RLIMIT_FSIZE, &old) == 0);
    signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = (rlim_t)before + 50; /* part of the batch fits */
    CU_ASSERT_FATAL(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    cap_reset();
    TCHECK_RC(pc__store_sync(s), PC_ESYS);
    TCHECK_RC(pc__store_sync(s), PC_ESYS);
    CU_ASSERT_FATAL(setrlimit(RLIMIT_FSIZE, &old) == 0);
    signal(SIGXFSZ, SIG_DFL);
    TCHECK_EQ(cap_errors, 2); /* one line per failed sync */
    TCHECK(cap_has(st_log, "sync", NULL));
    TCHECK_EQ(pc__store_pending(s), 7);
    TCHECK_EQ(pc__store_size(s), before);
    TCHECK_EQ(file_size(st_log), before); /* the short write undone */

    TCHECK_RC(pc__store_sync(s), PC_OK);
    TCHECK_EQ(pc__store_pending(s), 0);
    pc__store_close(&s);
    TCHECK_RC(reopen(&s), PC_OK);
    CHECK_COL(0, 10);
    pc__store_close(&s);
    dir_remove();
}

/* ---- compaction ------------------------------------------------------------------ */

/* The live state, then the records appended during the compaction (synced
 * to the old log before the commit, or still queued at it). Records queued
 * before begin are in the live state: dropped from the queue. */
PT_TEST(compaction)
static void
compaction(void)
{
    pc__store *s = NULL;
    uint64_t big;

    dir_make();
    TCHECK_RC(reopen(&s), PC_OK);
    for (int i = 0; i < 300; i++)
        TCHECK_RC(append_i(s, 1000 + i), PC_OK);
    TCHECK_RC(pc__store_sync(s), PC_OK);
    big = pc__store_size(s);
    TCHECK_RC(append_i(s, 1300), PC_OK); /* queued before begin */

    TCHECK_RC(pc__store_compact_add(s, "x", 1), PC_ESTATE);
    TCHECK_RC(pc__store_compact_commit(s), PC_ESTATE);
    TCHECK_RC(pc__store_compact_begin(s), PC_OK);
    TCHECK_RC(pc__store_compact_begin(s), PC_ESTATE);
    TCHECK(access(st_tmp, F_OK) == 0);
    for (int i = 0; i < 5; i++) /* the live state: records 0..4 */
        TCHECK_RC(
            pc__store_compact_add(s, st_payload(i, &(size_t){0}), st_len(i)),
            PC_OK);
    TCHECK_RC(append_i(s, 5), PC_OK); /* during it, synced to the old log */
    TCHECK_RC(append_i(s, 6), PC_OK);
    TCHECK_RC(pc__store_sync(s), PC_OK);
    TCHECK_RC(append_i(s, 7), PC_OK); /* during it, still queued */
    TCHECK_RC(pc__store_compact_commit(s), PC_OK);
    TCHECK(access(st_tmp, F_OK) != 0);
    TCHECK_EQ(pc__store_pending(s), 1);
    TCHECK_EQ(pc__store_size(s), rec_off(7));
    TCHECK_EQ(file_size(st_log), rec_off(7));
    TCHECK(pc__store_size(s) < big);
    TCHECK_RC(pc__store_sync(s), PC_OK);
    TCHECK_RC(append_i(s, 8), PC_OK);
    pc__store_close(&s);

    TCHECK_RC(reopen(&s), PC_OK);
    CHECK_COL(0, 9);
    TCHECK_EQ(file_size(st_log), rec_off(9));
    pc__store_close(&s);
    TCHECK_EQ(cap_n, 0);
    cap_dump();
    dir_remove();
}

/* Records queued before begin and not synced by the commit are in the
 * live state: the commit makes them durable and takes them off the queue,
 * so they are not written twice; those appended after begin stay queued. */
PT_TEST(compaction_takes_queued_before_begin)
static void
compaction_takes_queued_before_begin(void)
{
    pc__store *s = NULL;

    dir_make();
    make_log(3);
    TCHECK_RC(reopen(&s), PC_OK);
    TCHECK_RC(append_i(s, 100), PC_OK); /* superseded by the live state */
    TCHECK_RC(append_i(s, 101), PC_OK);
    TCHECK_RC(pc__store_compact_begin(s), PC_OK);
    for (int i = 0; i < 4; i++)
        TCHECK_RC(
            pc__store_compact_add(s, st_payload(i, &(size_t){0}), st_len(i)),
            PC_OK);
    TCHECK_RC(append_i(s, 4), PC_OK);
    TCHECK_EQ(pc__store_pending(s), 3);
    TCHECK_RC(pc__store_compact_commit(s), PC_OK);
    TCHECK_EQ(pc__store_pending(s), 1);
    TCHECK_EQ(pc__store_size(s), rec_off(4));
    TCHECK_RC(pc__store_sync(s), PC_OK);
    pc__store_close(&s);
    TCHECK_RC(reopen(&s), PC_OK);
    CHECK_COL(0, 5);
    pc__store_close(&s);
    dir_remove();
}

/* A compaction of a live state large enough to be written in pieces,
 * with nothing appended during it; and one that is aborted. */
PT_TEST(compaction_large_and_abort)
static void
compaction_large_and_abort(void)
{
    pc__store *s = NULL;
    const int n = 3000;

    dir_make();
    make_log(10);
    TCHECK_RC(reopen(&s), PC_OK);
    TCHECK_RC(pc__store_compact_begin(s), PC_OK);
    for (int i = 0; i < n; i++)
        TCHECK_RC(
            pc__store_compact_add(s, st_payload(i, &(size_t){0}), st_len(i)),
            PC_OK);
    pc__store_compact_abort(s);
    pc__store_compact_abort(s); /* none begun: a no-op */
    TCHECK(access(st_tmp, F_OK) != 0);
    TCHECK_EQ(file_size(st_log), rec_off(10));
    TCHECK_RC(append_i(s, 10), PC_OK);
    TCHECK_RC(pc__store_sync(s), PC_OK); /* the old log still in use */

    TCHECK_RC(pc__store_compact_begin(s), PC_OK);
    for (int i = 0; i < n; i++)
        TCHECK_RC(
            pc__store_compact_add(s, st_payload(i, &(size_t){0}), st_len(i)),
            PC_OK);
    TCHECK_RC(pc__store_compact_commit(s), PC_OK);
    TCHECK_EQ(pc__store_size(s), rec_off(n));
    TCHECK_RC(append_i(s, n), PC_OK);
    pc__store_close(&s);
    TCHECK_RC(reopen(&s), PC_OK);
    CHECK_COL(0, n + 1);
    pc__store_close(&s);
    dir_remove();
}

/* registry.log.tmp left by a crash during a compaction: removed at open,
 * the log replayed as it is. */
PT_TEST(stale_tmp_removed)
static void
stale_tmp_removed(void)
{
    pc__store *s = NULL;

    dir_make();
    make_log(4);
    file_write(st_tmp, "PICOSLG1 half a compaction", 26);
    TCHECK_RC(reopen(&s), PC_OK);
    CHECK_COL(0, 4);
    TCHECK(access(st_tmp, F_OK) != 0);
    TCHECK(cap_has(st_tmp, NULL, NULL));
    pc__store_close(&s);
    dir_remove();
}

PT_MAIN("store", PT_ENTRY(append_sync_reopen), PT_ENTRY(ten_thousand_records),
        PT_ENTRY(unsynced_lost_on_crash), PT_ENTRY(torn_tail_every_offset),
        PT_ENTRY(torn_tail_crc_and_zeros), PT_ENTRY(corrupt_middle_record),
        PT_ENTRY(corrupt_header), PT_ENTRY(callback_error),
        PT_ENTRY(data_dir_errors), PT_ENTRY(oversized_append),
        PT_ENTRY(sync_failure_retry), PT_ENTRY(compaction),
        PT_ENTRY(compaction_takes_queued_before_begin),
        PT_ENTRY(compaction_large_and_abort), PT_ENTRY(stale_tmp_removed))
