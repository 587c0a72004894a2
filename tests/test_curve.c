/* tests/test_curve.c — the cluster's CURVE keys and the ZAP handler
 * (transport/curve.c, transport/zmon.c).
 *
 * Keys: derivation (same secret, same pair; a pinned known answer, since
 * the derivation is part of the protocol), key files (round trip, mode,
 * corruption), secrets from files and the environment; every refusal logs
 * exactly one line, counted by a log sink. Handshakes run over real
 * ZeroMQ sockets on tcp://127.0.0.1 (port chosen by the kernel): the test
 * thread plays the link thread, polling the ZAP handler's and the
 * monitors' fds with zmq_poll and draining them after every wake, until the
 * expected event is seen or a generous deadline passes (no sleeps). The ZAP
 * handler is also fed hand-made requests over inproc to check that it
 * answers, refuses and drops exactly as it should.
 */
#define _GNU_SOURCE /* mkdtemp, setenv */
#include <dirent.h>
#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>

#include <zmq.h>

#include "curve.h"
#include "testutil.h"
#include "zmon.h"

/* ---- log capture ------------------------------------------------------------ */

static pthread_mutex_t cap_lock = PTHREAD_MUTEX_INITIALIZER;
static int cap_errors, cap_warns;
static char cap_last[1024];

static void
cap_sink(pc_log_level level, const char *module, const char *text, void *u)
{
    (void)u;
    pthread_mutex_lock(&cap_lock);
    if (strcmp(module, "net") == 0) {
        if (level == PC_LOG_LEVEL_ERROR)
            cap_errors++;
        else if (level == PC_LOG_LEVEL_WARN)
            cap_warns++;
        snprintf(cap_last, sizeof cap_last, "%s", text);
    }
    pthread_mutex_unlock(&cap_lock);
}

static void
cap_start(void)
{
    pthread_mutex_lock(&cap_lock);
    cap_errors = cap_warns = 0;
    cap_last[0] = '\0';
    pthread_mutex_unlock(&cap_lock);
    pc_log_set_level(PC_LOG_LEVEL_WARN);
    pc_log_set_sink(cap_sink, NULL);
}

static void
cap_stop(void)
{
    pc_log_set_sink(NULL, NULL);
}

/* Errors logged since cap_start(); the last line into `last` when given. */
static int
cap_nerrors(char *last, size_t size)
{
    int n;

    pthread_mutex_lock(&cap_lock);
    n = cap_errors;
    if (last)
        snprintf(last, size, "%s", cap_last);
    pthread_mutex_unlock(&cap_lock);
    return n;
}

static int
cap_nwarns(void)
{
    int n;

    pthread_mutex_lock(&cap_lock);
    n = cap_warns;
    pthread_mutex_unlock(&cap_lock);
    return n;
}

/* Run `call`, expect `want` and exactly one error line containing `text`. */
#define EXPECT_ONE_ERROR(call, want, text)                                     \
    do {                                                                       \
        char last_[1024];                                                      \
        int before_ = cap_nerrors(NULL, 0);                                    \
        CU_ASSERT_EQUAL((call), (want));                                       \
        CU_ASSERT_EQUAL(cap_nerrors(last_, sizeof last_), before_ + 1);        \
        if (!strstr(last_, (text)))                                            \
            fprintf(stderr, "\nlogged: \"%s\", wanted \"%s\"\n", last_,        \
                    (text));                                                   \
        CU_ASSERT_PTR_NOT_NULL(strstr(last_, (text)));                         \
    } while (0)

/* ---- temp files ------------------------------------------------------------- */

struct tmp {
    char dir[64];
};

static void
tmp_make(struct tmp *t)
{
    CU_ASSERT_FATAL(pt_mkdtemp(t->dir, sizeof t->dir, "curve"));
}

static void
tmp_path(struct tmp *t, const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", t->dir, name);
}

/* Files left in the directory. */
static int
tmp_count(struct tmp *t)
{
    DIR *d = opendir(t->dir);
    struct dirent *e;
    int n = 0;

    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void
tmp_remove(struct tmp *t)
{
    DIR *d = opendir(t->dir);
    struct dirent *e;
    char p[512];

    if (d) {
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof p, "%s/%s", t->dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    CU_ASSERT_EQUAL(rmdir(t->dir), 0);
}

static void
put_file(const char *path, const void *data, size_t n, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL((size_t)write(fd, data, n), n);
    CU_ASSERT_EQUAL(fchmod(fd, mode), 0);
    close(fd);
}

static void
put_text(const char *path, const char *s, mode_t mode)
{
    put_file(path, s, strlen(s), mode);
}

static bool
keys_eq(const pc_curve_keys *a, const pc_curve_keys *b)
{
    return memcmp(a->pub, b->pub, 32) == 0 && memcmp(a->sec, b->sec, 32) == 0;
}

static bool
pair_ok(const pc_curve_keys *k)
{
    uint8_t pub[32];

    return crypto_scalarmult_base(pub, k->sec) == 0 &&
           memcmp(pub, k->pub, 32) == 0;
}

static const char secret_a[] = "correct horse battery staple";
static const char secret_b[] = "correct horse battery stapler";
/* Z85 of the public key derived from secret_a, computed independently
 * (Python: hashlib.blake2b keyed with the context key, SHA-512 of the seed,
 * X25519 of the base point). */
#define KAT_PUB "=3o$s.xS(Os]]kT)m<%M3lh4AIeQqU/-35Pj()T+"

/* ---- keys ------------------------------------------------------------------- */

PT_TEST(derive)
static void
derive(void)
{
    pc_curve_keys a, a2, b;
    char z[41];

    CU_ASSERT_EQUAL(pc_curve_from_secret(secret_a, strlen(secret_a), &a),
                    PC_OK);
    CU_ASSERT_EQUAL(pc_curve_from_secret(secret_a, strlen(secret_a), &a2),
                    PC_OK);
    CU_ASSERT(keys_eq(&a, &a2));
    CU_ASSERT(pair_ok(&a));
    CU_ASSERT_EQUAL(pc_curve_from_secret(secret_b, strlen(secret_b), &b),
                    PC_OK);
    CU_ASSERT(memcmp(a.pub, b.pub, 32) != 0);
    CU_ASSERT(memcmp(a.sec, b.sec, 32) != 0);
    CU_ASSERT(pair_ok(&b));

    /* The derivation is the protocol: every node of every version must
     * agree on it. This pins it (keyed BLAKE2b + crypto_box_seed_keypair). */
    CU_ASSERT_PTR_NOT_NULL(zmq_z85_encode(z, a.pub, 32));
    CU_ASSERT_STRING_EQUAL(z, KAT_PUB);

    /* Exactly PC_SECRET_MIN is enough; one byte less, empty or NULL not. */
    CU_ASSERT_EQUAL(pc_curve_from_secret(secret_a, PC_SECRET_MIN, &b), PC_OK);
    CU_ASSERT_EQUAL(pc_curve_from_secret(secret_a, PC_SECRET_MIN - 1, &b),
                    PC_EINVAL);
    CU_ASSERT_EQUAL(pc_curve_from_secret(secret_a, 0, &b), PC_EINVAL);
    CU_ASSERT_EQUAL(pc_curve_from_secret(NULL, 32, &b), PC_EINVAL);
    CU_ASSERT_EQUAL(pc_curve_from_secret(secret_a, 32, NULL), PC_EINVAL);
}

PT_TEST(keygen)
static void
keygen(void)
{
    pc_curve_keys a, b;

    CU_ASSERT_EQUAL(pc_curve_keygen(&a), PC_OK);
    CU_ASSERT_EQUAL(pc_curve_keygen(&b), PC_OK);
    CU_ASSERT(pair_ok(&a));
    CU_ASSERT(pair_ok(&b));
    CU_ASSERT(memcmp(a.pub, b.pub, 32) != 0);
    CU_ASSERT_EQUAL(pc_curve_keygen(NULL), PC_EINVAL);
}

PT_TEST(keyfile_roundtrip)
static void
keyfile_roundtrip(void)
{
    pc_curve_keys a, b, back;
    char path[256];
    struct stat st;
    struct tmp t;
    mode_t old = umask(0);

    tmp_make(&t);
    tmp_path(&t, "cluster.key", path, sizeof path);
    CU_ASSERT_EQUAL(pc_curve_keygen(&a), PC_OK);
    CU_ASSERT_EQUAL(pc_curve_keygen(&b), PC_OK);
    CU_ASSERT_EQUAL(pc_curve_write(path, &a), PC_OK);
    CU_ASSERT_EQUAL(stat(path, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 07777, 0600); /* even with umask 0 */
    CU_ASSERT_EQUAL(pc_curve_read(path, &back), PC_OK);
    CU_ASSERT(keys_eq(&a, &back));
    /* Replaced, not appended to; no temp file left beside it. */
    CU_ASSERT_EQUAL(pc_curve_write(path, &b), PC_OK);
    CU_ASSERT_EQUAL(pc_curve_read(path, &back), PC_OK);
    CU_ASSERT(keys_eq(&b, &back));
    CU_ASSERT_EQUAL(tmp_count(&t), 1);
    umask(old);

    /* The format is two text lines, and CRLF endings are fine. */
    {
        char zp[41], zs[41], text[128];

        zmq_z85_encode(zp, a.pub, 32);
        zmq_z85_encode(zs, a.sec, 32);
        snprintf(text, sizeof text, "public %s\r\nsecret %s\r\n", zp, zs);
        put_text(path, text, 0600);
        CU_ASSERT_EQUAL(pc_curve_read(path, &back), PC_OK);
        CU_ASSERT(keys_eq(&a, &back));
        snprintf(text, sizeof text, "public %s\nsecret %s", zp, zs);
        put_text(path, text, 0400);
        CU_ASSERT_EQUAL(pc_curve_read(path, &back), PC_OK);
        CU_ASSERT(keys_eq(&a, &back));
    }

    cap_start();
    tmp_path(&t, "nodir/cluster.key", path, sizeof path);
    EXPECT_ONE_ERROR(pc_curve_write(path, &a), PC_ESYS, path);
    cap_stop();
    CU_ASSERT_EQUAL(pc_curve_write(NULL, &a), PC_EINVAL);
    CU_ASSERT_EQUAL(pc_curve_read(NULL, &a), PC_EINVAL);
    tmp_remove(&t);
}

PT_TEST(keyfile_mode)
static void
keyfile_mode(void)
{
    static const mode_t modes[] = {0644, 0640, 0604, 0620, 0602, 0610};
    pc_curve_keys a, back;
    char path[256], want[400];
    struct tmp t;

    tmp_make(&t);
    tmp_path(&t, "cluster.key", path, sizeof path);
    CU_ASSERT_EQUAL(pc_curve_keygen(&a), PC_OK);
    CU_ASSERT_EQUAL(pc_curve_write(path, &a), PC_OK);
    cap_start();
    CU_ASSERT_EQUAL(chmod(path, 0644), 0);
    snprintf(want, sizeof want,
             "key file %s is readable by others (mode 0644): chmod 600 it",
             path);
    EXPECT_ONE_ERROR(pc_curve_read(path, &back), PC_EPERM, want);
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        CU_ASSERT_EQUAL(chmod(path, modes[i]), 0);
        EXPECT_ONE_ERROR(pc_curve_read(path, &back), PC_EPERM, "chmod 600");
    }
    CU_ASSERT_EQUAL(chmod(path, 0600), 0);
    CU_ASSERT_EQUAL(pc_curve_read(path, &back), PC_OK);
    CU_ASSERT_EQUAL(cap_nerrors(NULL, 0), 1 + 6);
    cap_stop();
    tmp_remove(&t);
}

PT_TEST(keyfile_corrupt)
static void
keyfile_corrupt(void)
{
    pc_curve_keys a, b, back;
    char path[256], zpa[41], zsa[41], zpb[41], text[256];
    struct tmp t;

    tmp_make(&t);
    tmp_path(&t, "cluster.key", path, sizeof path);
    CU_ASSERT_EQUAL(pc_curve_keygen(&a), PC_OK);
    CU_ASSERT_EQUAL(pc_curve_keygen(&b), PC_OK);
    zmq_z85_encode(zpa, a.pub, 32);
    zmq_z85_encode(zsa, a.sec, 32);
    zmq_z85_encode(zpb, b.pub, 32);
    cap_start();

    /* Another pair's public key: well-formed, but a lie. */
    snprintf(text, sizeof text, "public %s\nsecret %s\n", zpb, zsa);
    put_text(path, text, 0600);
    EXPECT_ONE_ERROR(pc_curve_read(path, &back), PC_EPROTO,
                     "public key is not its secret key's");

    /* One character of the public key changed. */
    snprintf(text, sizeof text, "public %s\nsecret %s\n", zpa, zsa);
    text[7] = text[7] == 'a' ? 'b' : 'a';
    put_text(path, text, 0600);
    EXPECT_ONE_ERROR(pc_curve_read(path, &back), PC_EPROTO,
                     "public key is not its secret key's");

    const char *bad[] = {
        "",                             /* empty */
        "public only\n",                /* one line */
        "garbage\ngarbage\n",           /* no tags */
        "public \x01\x02\nsecret xx\n", /* not Z85 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        put_text(path, bad[i], 0600);
        EXPECT_ONE_ERROR(pc_curve_read(path, &back), PC_EPROTO, "malformed");
    }
    /* Swapped lines, a third line, a truncated key, a bad Z85 character. */
    snprintf(text, sizeof text, "secret %s\npublic %s\n", zsa, zpa);
    put_text(path, text, 0600);
    EXPECT_ONE_ERROR(pc_curve_read(path, &back), PC_EPROTO, "malformed");
    snprintf(text, sizeof text, "public %s\nsecret %s\nmore\n", zpa, zsa);
    put_text(path, text, 0600);
    EXPECT_ONE_ERROR(pc_curve_read(path, &back), PC_EPROTO, "malformed");
    snprintf(text, sizeof text, "public %s\nsecret %.39s\n", zpa, zsa);
    put_text(path, text, 0600);
    EXPECT_ONE_ERROR(pc_curve_read(path, &back), PC_EPROTO, "malformed");
    snprintf(text, sizeof text, "public %s\nsecret %s\n", zpa, zsa);
    text[7] = '"'; /* outside Z85's alphabet */
    put_text(path, text, 0600);
    EXPECT_ONE_ERROR(pc_curve_read(path, &back), PC_EPROTO, "malformed");
    /* NUL bytes, a huge file, a directory, a missing file. */
    put_file(path, "public \0x\n", 10, 0600);
    EXPECT_ONE_ERROR(pc_curve_read(path, &back), PC_EPROTO, "NUL");
    {
        static char big[100000];

        memset(big, 'a', sizeof big);
        put_file(path, big, sizeof big, 0600);
        EXPECT_ONE_ERROR(pc_curve_read(path, &back), PC_EPROTO, "too long");
    }
    EXPECT_ONE_ERROR(pc_curve_read(t.dir, &back), PC_EPROTO,
                     "not a regular file");
    tmp_path(&t, "missing.key", path, sizeof path);
    EXPECT_ONE_ERROR(pc_curve_read(path, &back), PC_ESYS, path);
    cap_stop();
    tmp_remove(&t);
}

/* ---- secrets ---------------------------------------------------------------- */

static void
unset_env(void)
{
    unsetenv("PICOS_SECRET_FILE");
    unsetenv("PICOS_SECRET");
}

PT_TEST(secret_file)
static void
secret_file(void)
{
    char path[256], buf[PC_SECRET_MAX];
    size_t len = 0;
    struct tmp t;

    unset_env();
    tmp_make(&t);
    tmp_path(&t, "secret", path, sizeof path);
    cap_start();

    put_text(path, "0123456789abcdef\n", 0600);
    CU_ASSERT_EQUAL(pc_secret_load(path, buf, sizeof buf, &len), PC_OK);
    CU_ASSERT_EQUAL(len, 16);
    CU_ASSERT_EQUAL(memcmp(buf, "0123456789abcdef", 16), 0);
    put_text(path, "0123456789abcdefg\r\n", 0400);
    CU_ASSERT_EQUAL(pc_secret_load(path, buf, sizeof buf, &len), PC_OK);
    CU_ASSERT_EQUAL(len, 17);
    CU_ASSERT_EQUAL(memcmp(buf, "0123456789abcdefg", 17), 0);
    /* No newline: all of it; only one newline is stripped. */
    put_text(path, "0123456789abcdef\n\n", 0600);
    CU_ASSERT_EQUAL(pc_secret_load(path, buf, sizeof buf, &len), PC_OK);
    CU_ASSERT_EQUAL(len, 17);
    /* Binary secrets are fine (but not NUL). */
    put_file(path, "\x80\xff\x01 binary secret ok", 20, 0600);
    CU_ASSERT_EQUAL(pc_secret_load(path, buf, sizeof buf, &len), PC_OK);
    CU_ASSERT_EQUAL(len, 20);
    CU_ASSERT_EQUAL(cap_nerrors(NULL, 0), 0);

    put_text(path, "0123456789abcdef\n", 0644);
    EXPECT_ONE_ERROR(pc_secret_load(path, buf, sizeof buf, &len), PC_EPERM,
                     "readable by others (mode 0644): chmod 600 it");
    put_text(path, "0123456789abcde\n", 0600); /* 15 bytes */
    EXPECT_ONE_ERROR(pc_secret_load(path, buf, sizeof buf, &len), PC_EINVAL,
                     "too short");
    put_text(path, "\n", 0600);
    EXPECT_ONE_ERROR(pc_secret_load(path, buf, sizeof buf, &len), PC_EINVAL,
                     "empty");
    put_text(path, "", 0600);
    EXPECT_ONE_ERROR(pc_secret_load(path, buf, sizeof buf, &len), PC_EINVAL,
                     "empty");
    put_file(path, "0123456789\0abcdef", 17, 0600);
    EXPECT_ONE_ERROR(pc_secret_load(path, buf, sizeof buf, &len), PC_EINVAL,
                     "NUL");
    /* The caller's buffer bounds it, and so does PC_SECRET_MAX. */
    put_text(path, "0123456789abcdef0123\n", 0600);
    EXPECT_ONE_ERROR(pc_secret_load(path, buf, 19, &len), PC_EINVAL,
                     "too long");
    CU_ASSERT_EQUAL(pc_secret_load(path, buf, 20, &len), PC_OK);
    {
        static char big[PC_SECRET_MAX + 2];

        memset(big, 's', sizeof big);
        big[PC_SECRET_MAX] = '\n';
        put_file(path, big, PC_SECRET_MAX + 1, 0600);
        CU_ASSERT_EQUAL(pc_secret_load(path, buf, sizeof buf, &len), PC_OK);
        CU_ASSERT_EQUAL(len, PC_SECRET_MAX);
        put_file(path, big, PC_SECRET_MAX + 2, 0600);
        EXPECT_ONE_ERROR(pc_secret_load(path, buf, sizeof buf, &len), PC_EINVAL,
                         "too long");
    }
    tmp_path(&t, "missing", path, sizeof path);
    EXPECT_ONE_ERROR(pc_secret_load(path, buf, sizeof buf, &len), PC_ESYS,
                     path);
    CU_ASSERT_EQUAL(pc_secret_load(path, NULL, 10, &len), PC_EINVAL);
    cap_stop();
    tmp_remove(&t);
}

PT_TEST(secret_env)
static void
secret_env(void)
{
    char path[256], other[256], buf[64];
    size_t len = 0;
    struct tmp t;

    unset_env();
    tmp_make(&t);
    tmp_path(&t, "secret", path, sizeof path);
    tmp_path(&t, "other", other, sizeof other);
    put_text(path, "from the file named by env\n", 0600);
    put_text(other, "from the file given directly\n", 0600);
    cap_start();

    EXPECT_ONE_ERROR(pc_secret_load(NULL, buf, sizeof buf, &len), PC_ENOENT,
                     "PICOS_SECRET");

    setenv("PICOS_SECRET", "from the environment itself", 1);
    CU_ASSERT_EQUAL(pc_secret_load(NULL, buf, sizeof buf, &len), PC_OK);
    CU_ASSERT_EQUAL(len, strlen("from the environment itself"));
    CU_ASSERT_EQUAL(memcmp(buf, "from the environment itself", len), 0);

    /* PICOS_SECRET_FILE comes before PICOS_SECRET... */
    setenv("PICOS_SECRET_FILE", path, 1);
    CU_ASSERT_EQUAL(pc_secret_load(NULL, buf, sizeof buf, &len), PC_OK);
    CU_ASSERT_EQUAL(len, strlen("from the file named by env"));
    CU_ASSERT_EQUAL(memcmp(buf, "from the file named by env", len), 0);
    /* ...and the file given to the call before both. */
    CU_ASSERT_EQUAL(pc_secret_load(other, buf, sizeof buf, &len), PC_OK);
    CU_ASSERT_EQUAL(len, strlen("from the file given directly"));
    CU_ASSERT_EQUAL(memcmp(buf, "from the file given directly", len), 0);
    CU_ASSERT_EQUAL(cap_nerrors(NULL, 0), 1);

    /* A bad file named by the environment is an error, not a fallback. */
    CU_ASSERT_EQUAL(chmod(path, 0640), 0);
    EXPECT_ONE_ERROR(pc_secret_load(NULL, buf, sizeof buf, &len), PC_EPERM,
                     path);
    unsetenv("PICOS_SECRET_FILE");
    setenv("PICOS_SECRET", "short", 1);
    EXPECT_ONE_ERROR(pc_secret_load(NULL, buf, sizeof buf, &len), PC_EINVAL,
                     "$PICOS_SECRET is too short");
    setenv("PICOS_SECRET", "", 1);
    EXPECT_ONE_ERROR(pc_secret_load(NULL, buf, sizeof buf, &len), PC_EINVAL,
                     "empty");
    cap_stop();
    unset_env();
    tmp_remove(&t);
}

/* ---- the ZAP handler, fed by hand ------------------------------------------- */

/* Send one ZAP request (RFC 27, as libzmq frames it after the delimiter). */
static void
zap_request(void *d, const char *domain, const char *mech, const void *cred,
            size_t credlen)
{
    zmq_send(d, "", 0, ZMQ_SNDMORE);
    zmq_send(d, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(d, "42", 2, ZMQ_SNDMORE);
    zmq_send(d, domain, strlen(domain), ZMQ_SNDMORE);
    zmq_send(d, "10.1.2.3", 8, ZMQ_SNDMORE);
    zmq_send(d, "", 0, ZMQ_SNDMORE);
    zmq_send(d, mech, strlen(mech), cred ? ZMQ_SNDMORE : 0);
    if (cred)
        zmq_send(d, cred, credlen, 0);
}

/* Drain the handler until a reply reaches d; its status code into code
 * ("" when none came within a short wait, which is not a failure by
 * itself: some tests expect no reply). */
static void
zap_reply_code(pc__zap *z, void *d, char code[4], double wait)
{
    double t0 = pc_now();
    char f[7][64];
    int n = 0, more = 1, sz[7];
    size_t ml;

    code[0] = '\0';
    while (pt_since(t0) < wait) {
        zmq_pollitem_t it = {d, 0, ZMQ_POLLIN, 0};

        pc__zap_drain(z);
        if (zmq_poll(&it, 1, 20) == 1)
            break;
    }
    for (n = 0; more && n < 7; n++) {
        int r = zmq_recv(d, f[n], sizeof f[n] - 1, ZMQ_DONTWAIT);

        if (r < 0)
            return;
        sz[n] = r;
        ml = sizeof more;
        zmq_getsockopt(d, ZMQ_RCVMORE, &more, &ml);
    }
    CU_ASSERT_EQUAL(n, 7);
    CU_ASSERT_FALSE(more);
    CU_ASSERT_EQUAL(sz[0], 0); /* delimiter */
    CU_ASSERT_EQUAL(memcmp(f[1], "1.0", 3), 0);
    CU_ASSERT_EQUAL(memcmp(f[2], "42", 2), 0); /* request id echoed */
    memcpy(code, f[3], 3);
    code[3] = '\0';
}

PT_TEST(zap_by_hand)
static void
zap_by_hand(void)
{
    void *ctx = zmq_ctx_new();
    pc_curve_keys a, b;
    pc__zap *z = NULL, *z2 = NULL;
    void *d;
    char code[4];
    int zero = 0;

    CU_ASSERT_EQUAL(pc_curve_from_secret(secret_a, strlen(secret_a), &a),
                    PC_OK);
    CU_ASSERT_EQUAL(pc_curve_keygen(&b), PC_OK);
    CU_ASSERT_EQUAL_FATAL(pc__zap_open(&z, ctx, &a), PC_OK);
    cap_start();
    EXPECT_ONE_ERROR(pc__zap_open(&z2, ctx, &a), PC_ESTATE, "one already");
    CU_ASSERT_PTR_NULL(z2);
    CU_ASSERT(pc__zap_fd(z) >= 0);
    d = zmq_socket(ctx, ZMQ_DEALER);
    zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof zero);
    CU_ASSERT_EQUAL(zmq_connect(d, "inproc://zeromq.zap.01"), 0);

    zap_request(d, "picos", "CURVE", a.pub, 32);
    zap_reply_code(z, d, code, PT_LONG);
    CU_ASSERT_STRING_EQUAL(code, "200");
    CU_ASSERT_EQUAL(pc__zap_accepted(z), 1);
    CU_ASSERT_EQUAL(cap_nwarns(), 0);

    zap_request(d, "picos", "CURVE", b.pub, 32);
    zap_reply_code(z, d, code, PT_LONG);
    CU_ASSERT_STRING_EQUAL(code, "400");
    CU_ASSERT_EQUAL(cap_nwarns(), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(cap_last, "10.1.2.3"));
    /* The cluster's key, but: a short credential, another domain, the
     * NULL mechanism, two credentials. Each refused, one line for all
     * (same address, within 10 s). */
    zap_request(d, "picos", "CURVE", a.pub, 31);
    zap_reply_code(z, d, code, PT_LONG);
    CU_ASSERT_STRING_EQUAL(code, "400");
    zap_request(d, "other", "CURVE", a.pub, 32);
    zap_reply_code(z, d, code, PT_LONG);
    CU_ASSERT_STRING_EQUAL(code, "400");
    zap_request(d, "picos", "NULL", NULL, 0);
    zap_reply_code(z, d, code, PT_LONG);
    CU_ASSERT_STRING_EQUAL(code, "400");
    zmq_send(d, "", 0, ZMQ_SNDMORE);
    zmq_send(d, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(d, "42", 2, ZMQ_SNDMORE);
    zmq_send(d, "picos", 5, ZMQ_SNDMORE);
    zmq_send(d, "10.1.2.3", 8, ZMQ_SNDMORE);
    zmq_send(d, "", 0, ZMQ_SNDMORE);
    zmq_send(d, "CURVE", 5, ZMQ_SNDMORE);
    zmq_send(d, a.pub, 32, ZMQ_SNDMORE);
    zmq_send(d, a.pub, 32, 0);
    zap_reply_code(z, d, code, PT_LONG);
    CU_ASSERT_STRING_EQUAL(code, "400");
    CU_ASSERT_EQUAL(pc__zap_rejected(z), 5);
    CU_ASSERT_EQUAL(pc__zap_accepted(z), 1);
    CU_ASSERT_EQUAL(cap_nwarns(), 1);

    /* Without the delimiter, or too short to answer: dropped, no reply. */
    zmq_send(d, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(d, "42", 2, 0);
    for (int i = 0; i < 20; i++) /* a dozen frames and more */
        zmq_send(d, "", 0, ZMQ_SNDMORE);
    zmq_send(d, "", 0, 0);
    /* A good request after them still gets its answer: nothing stuck. */
    zap_request(d, "picos", "CURVE", a.pub, 32);
    zap_reply_code(z, d, code, PT_LONG);
    CU_ASSERT_STRING_EQUAL(code, "200");
    CU_ASSERT_EQUAL(pc__zap_rejected(z), 7);
    CU_ASSERT_EQUAL(pc__zap_accepted(z), 2);
    cap_stop();

    zmq_close(d);
    pc__zap_close(&z);
    CU_ASSERT_PTR_NULL(z);
    pc__zap_close(&z);
    pc__zap_close(NULL);
    CU_ASSERT_EQUAL(zmq_ctx_term(ctx), 0);
}

/* ---- handshakes over TCP ---------------------------------------------------- */

#define MAX_EV 256

struct evlog {
    int n;
    int ev[MAX_EV], val[MAX_EV];
};

static void
on_event(void *ctx, int event, int value, const char *endpoint)
{
    struct evlog *l = ctx;

    (void)endpoint;
    if (l->n < MAX_EV) {
        l->ev[l->n] = event;
        l->val[l->n] = value;
        l->n++;
    }
}

static int
ev_count(const struct evlog *l, int event, int value)
{
    int n = 0;

    for (int i = 0; i < l->n; i++)
        n += l->ev[i] == event && (value < 0 || l->val[i] == value);
    return n;
}

struct hs {
    void *ctx;
    pc__zap *zap;
    void *router;
    pc__zmon *smon;
    struct evlog sev;
    char ep[256];
    int got; /* "hello" messages received by the router */
    void *dealer[2];
    pc__zmon *cmon[2];
    struct evlog cev[2];
    int nclients;
};

static void
hs_server(struct hs *h, const pc_curve_keys *k)
{
    size_t n = sizeof h->ep;
    int zero = 0;

    memset(h, 0, sizeof *h);
    h->ctx = zmq_ctx_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(h->ctx);
    CU_ASSERT_EQUAL_FATAL(pc__zap_open(&h->zap, h->ctx, k), PC_OK);
    h->router = zmq_socket(h->ctx, ZMQ_ROUTER);
    zmq_setsockopt(h->router, ZMQ_LINGER, &zero, sizeof zero);
    CU_ASSERT_EQUAL_FATAL(pc__curve_server(h->router, k), PC_OK);
    CU_ASSERT_EQUAL_FATAL(
        pc__zmon_open(&h->smon, h->ctx, h->router, ZMQ_EVENT_ALL), PC_OK);
    CU_ASSERT_EQUAL_FATAL(zmq_bind(h->router, "tcp://127.0.0.1:*"), 0);
    CU_ASSERT_EQUAL(zmq_getsockopt(h->router, ZMQ_LAST_ENDPOINT, h->ep, &n), 0);
}

/* A DEALER that connects and sends "hello". It retries only after ten
 * minutes, so each refusal happens once, while its session (and the
 * queued message) lives on after a lost connection. k == NULL: the pair
 * `own` with the server key server_key. A client that is to fail may be
 * refused before the send (then libzmq drops its pipe and the send says
 * EAGAIN): its send is not checked. */
static void
hs_client(struct hs *h, const pc_curve_keys *k, const pc_curve_keys *own,
          const uint8_t *server_key, bool ok)
{
    int i = h->nclients++, zero = 0, later = 600000, r;
    void *d = zmq_socket(h->ctx, ZMQ_DEALER);

    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    h->dealer[i] = d;
    zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(d, ZMQ_RECONNECT_IVL, &later, sizeof later);
    if (k) {
        CU_ASSERT_EQUAL_FATAL(pc__curve_client(d, k), PC_OK);
    } else {
        zmq_setsockopt(d, ZMQ_CURVE_SERVERKEY, server_key, 32);
        zmq_setsockopt(d, ZMQ_CURVE_PUBLICKEY, own->pub, 32);
        zmq_setsockopt(d, ZMQ_CURVE_SECRETKEY, own->sec, 32);
    }
    CU_ASSERT_EQUAL_FATAL(pc__zmon_open(&h->cmon[i], h->ctx, d, ZMQ_EVENT_ALL),
                          PC_OK);
    CU_ASSERT_EQUAL_FATAL(zmq_connect(d, h->ep), 0);
    r = zmq_send(d, "hello", 5, ZMQ_DONTWAIT);
    if (ok)
        CU_ASSERT_EQUAL(r, 5);
}

/* One round of the link thread: wait for any fd (bounded), drain all. */
static void
hs_pump(struct hs *h)
{
    zmq_pollitem_t it[3 + 2] = {
        {h->router, 0, ZMQ_POLLIN, 0},
        {NULL, pc__zap_fd(h->zap), ZMQ_POLLIN, 0},
        {NULL, pc__zmon_fd(h->smon), ZMQ_POLLIN, 0},
    };
    int n = 3;
    char buf[64];

    for (int i = 0; i < h->nclients; i++)
        it[n++] =
            (zmq_pollitem_t){NULL, pc__zmon_fd(h->cmon[i]), ZMQ_POLLIN, 0};
    zmq_poll(it, n, 50);
    pc__zap_drain(h->zap);
    pc__zmon_drain(h->smon, on_event, &h->sev);
    for (int i = 0; i < h->nclients; i++)
        pc__zmon_drain(h->cmon[i], on_event, &h->cev[i]);
    for (;;) {
        int r = zmq_recv(h->router, buf, sizeof buf, ZMQ_DONTWAIT);

        if (r < 0)
            break;
        if (r == 5 && memcmp(buf, "hello", 5) == 0)
            h->got++;
    }
}

#define PUMP_UNTIL(h, cond)                                                    \
    do {                                                                       \
        double t0_ = pc_now();                                                 \
        while (!(cond) && pt_since(t0_) < PT_LONG)                             \
            hs_pump(h);                                                        \
        CU_ASSERT(cond);                                                       \
    } while (0)

static void
hs_close(struct hs *h)
{
    for (int i = 0; i < h->nclients; i++) {
        pc__zmon_close(&h->cmon[i]);
        zmq_close(h->dealer[i]);
    }
    pc__zmon_close(&h->smon);
    CU_ASSERT_PTR_NULL(h->smon);
    zmq_close(h->router);
    pc__zap_close(&h->zap);
    CU_ASSERT_EQUAL(zmq_ctx_term(h->ctx), 0);
}

PT_TEST(handshake_ok)
static void
handshake_ok(void)
{
    pc_curve_keys a, a2;
    struct hs h;

    CU_ASSERT_EQUAL(pc_curve_from_secret(secret_a, strlen(secret_a), &a),
                    PC_OK);
    CU_ASSERT_EQUAL(pc_curve_from_secret(secret_a, strlen(secret_a), &a2),
                    PC_OK);
    hs_server(&h, &a);
    hs_client(&h, &a2, NULL, NULL, true); /* the same secret, derived again */
    PUMP_UNTIL(&h, h.got == 1 &&
                       ev_count(&h.cev[0], ZMQ_EVENT_HANDSHAKE_SUCCEEDED, -1));
    CU_ASSERT_EQUAL(pc__zap_accepted(h.zap), 1);
    CU_ASSERT_EQUAL(pc__zap_rejected(h.zap), 0);
    CU_ASSERT_EQUAL(ev_count(&h.sev, ZMQ_EVENT_HANDSHAKE_SUCCEEDED, -1), 1);
    CU_ASSERT_EQUAL(ev_count(&h.sev, ZMQ_EVENT_LISTENING, -1), 1);
    CU_ASSERT_EQUAL(ev_count(&h.sev, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, -1), 0);
    hs_close(&h);
}

PT_TEST(handshake_wrong_secret)
static void
handshake_wrong_secret(void)
{
    pc_curve_keys a, b;
    struct hs h;
    const int want = (int)ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC;

    CU_ASSERT_EQUAL(pc_curve_from_secret(secret_a, strlen(secret_a), &a),
                    PC_OK);
    CU_ASSERT_EQUAL(pc_curve_from_secret(secret_b, strlen(secret_b), &b),
                    PC_OK);
    hs_server(&h, &a);
    hs_client(&h, &b, NULL, NULL, false);
    PUMP_UNTIL(
        &h, ev_count(&h.sev, ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL, want) == 1);
    /* One more round for anything that might still come. */
    hs_pump(&h);
    CU_ASSERT_EQUAL(h.got, 0);
    /* Refused before ZAP is even asked: the HELLO didn't open. */
    CU_ASSERT_EQUAL(pc__zap_accepted(h.zap), 0);
    CU_ASSERT_EQUAL(pc__zap_rejected(h.zap), 0);
    CU_ASSERT_EQUAL(ev_count(&h.sev, ZMQ_EVENT_HANDSHAKE_SUCCEEDED, -1), 0);
    CU_ASSERT_EQUAL(ev_count(&h.cev[0], ZMQ_EVENT_HANDSHAKE_SUCCEEDED, -1), 0);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(pc__zmon_describe(ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL, want),
               "wrong cluster secret"));
    /* The client only sees the server hang up in the middle of the
     * handshake (no detail, an errno such as EPIPE): that is all CURVE lets
     * it know, and the text says what it most likely means. */
    PUMP_UNTIL(
        &h, ev_count(&h.cev[0], ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL, -1) == 1);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(pc__zmon_describe(ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL, EPIPE),
               "wrong cluster secret"));
    hs_close(&h);
}

PT_TEST(handshake_foreign_key)
static void
handshake_foreign_key(void)
{
    pc_curve_keys a, c, c2;
    struct hs h;

    CU_ASSERT_EQUAL(pc_curve_from_secret(secret_a, strlen(secret_a), &a),
                    PC_OK);
    CU_ASSERT_EQUAL(pc_curve_keygen(&c), PC_OK);
    CU_ASSERT_EQUAL(pc_curve_keygen(&c2), PC_OK);
    cap_start();
    hs_server(&h, &a);
    /* Knows the server's public key, not the secret: its own pair. */
    hs_client(&h, NULL, &c, a.pub, false);
    PUMP_UNTIL(&h, ev_count(&h.sev, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, 400) == 1);
    hs_pump(&h);
    CU_ASSERT_EQUAL(h.got, 0);
    CU_ASSERT_EQUAL(pc__zap_rejected(h.zap), 1);
    CU_ASSERT_EQUAL(pc__zap_accepted(h.zap), 0);
    CU_ASSERT_EQUAL(ev_count(&h.sev, ZMQ_EVENT_HANDSHAKE_SUCCEEDED, -1), 0);
    CU_ASSERT_EQUAL(cap_nwarns(), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(cap_last, "127.0.0.1"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(pc__zmon_describe(ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, 400),
               "refused by ZAP"));
    /* The client is told too (ZMTP ERROR "400"). */
    PUMP_UNTIL(&h,
               ev_count(&h.cev[0], ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, 400) == 1);

    /* A second one from the same address within 10 s: refused, counted,
     * but not logged again. */
    hs_client(&h, NULL, &c2, a.pub, false);
    PUMP_UNTIL(&h, ev_count(&h.sev, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, 400) == 2);
    CU_ASSERT_EQUAL(pc__zap_rejected(h.zap), 2);
    CU_ASSERT_EQUAL(h.got, 0);
    CU_ASSERT_EQUAL(cap_nwarns(), 1);
    cap_stop();
    hs_close(&h);
}

PT_TEST(describe)
static void
describe(void)
{
    CU_ASSERT_PTR_NOT_NULL(strstr(
        pc__zmon_describe(ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL,
                          (int)ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH),
        "without CURVE"));
    CU_ASSERT_STRING_EQUAL(pc__zmon_describe(ZMQ_EVENT_DISCONNECTED, 7),
                           "disconnected");
    CU_ASSERT_PTR_NOT_NULL(pc__zmon_describe(0x7fff0000, 0));
    CU_ASSERT_PTR_NOT_NULL(
        pc__zmon_describe(ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, 12345));
}

PT_MAIN("curve", PT_ENTRY(derive), PT_ENTRY(keygen),
        PT_ENTRY(keyfile_roundtrip), PT_ENTRY(keyfile_mode),
        PT_ENTRY(keyfile_corrupt), PT_ENTRY(secret_file), PT_ENTRY(secret_env),
        PT_ENTRY(zap_by_hand), PT_ENTRY(handshake_ok),
        PT_ENTRY(handshake_wrong_secret), PT_ENTRY(handshake_foreign_key),
        PT_ENTRY(describe))
