/* transport/curve.c — the cluster's CURVE keys (derived, generated, key
 * files, the secret) and the ZAP handler that admits only them.
 *
 * One key pair per cluster. pc_curve_from_secret() hashes the secret with
 * keyed BLAKE2b (crypto_generichash, a fixed context key, so the seed is
 * not a plain hash of the secret that could be reused elsewhere) into the
 * 32-byte seed of crypto_box_seed_keypair(): every node given the same
 * secret computes the same pair, and nothing but the secret is needed.
 *
 * Files holding key material are opened with O_NONBLOCK (a FIFO can't hang
 * the caller), must be regular files, and are refused when any group or
 * other permission bit is set (ssh's rule: a group-writable key file lets
 * someone else choose our key). Everything read passes through one stack
 * buffer that is wiped (sodium_memzero) on every path out. Every error
 * logs exactly one line naming the file and what is wrong, never the
 * secret. A key file is written to a mkstemp() file beside it (mode 0600
 * from the start), fsync'd and renamed over the old one, so a reader sees
 * the old file or the new one, never half of one.
 *
 * The ZAP handler (RFC 27) is a ROUTER rather than the usual REP: a REP
 * that fails to send one reply is stuck in its send state for good, and a
 * ROUTER may simply drop a request it can't parse. libzmq's requests come
 * as [routing id][empty][1.0][request id][domain][address][routing id of
 * the peer][mechanism][credentials...]; every frame count and size is
 * checked before use, and only a CURVE request in our domain whose one
 * credential is the cluster's public key gets "200". Refusals are logged,
 * rate-limited per peer address (a small table, oldest entry reused), so a
 * scanner can't flood the log.
 */
#define _GNU_SOURCE /* O_CLOEXEC, mkstemp */
#include "curve.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "picos/log.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"

/* The BLAKE2b key that makes the seed ours (16..64 bytes). Changing it
 * changes every cluster's keys: it is part of the protocol (v1). */
static const char ctx_key[] = "picos-curve-v1/cluster-key-seed";

/* A Z85 key: 32 bytes -> 40 characters. */
#define Z85_LEN 40

/* The largest key file read: two lines with slack for "\r\n". */
#define KEYFILE_MAX 256

#if !defined(ZMQ_ZAP_ENFORCE_DOMAIN)
/* A draft option of libzmq 4.3 (zmq.h hides it unless ZMQ_BUILD_DRAFT_API);
 * libraries built with drafts accept it, the others answer EINVAL. */
#define ZMQ_ZAP_ENFORCE_DOMAIN 93
#endif

static bool
sodium_ready(void)
{
    /* Thread-safe and idempotent: 0 the first time, 1 after. */
    if (sodium_init() < 0) {
        PC_LOG_ERROR("net", "libsodium failed to initialise");
        return false;
    }
    return true;
}

/* ---- keys ------------------------------------------------------------------- */

pc_err
pc_curve_from_secret(const void *secret, size_t len, pc_curve_keys *out)
{
    uint8_t seed[crypto_box_SEEDBYTES];

    if (!secret || !out || len < PC_SECRET_MIN)
        return PC_EINVAL;
    if (!sodium_ready())
        return PC_ESYS;
    _Static_assert(sizeof ctx_key - 1 >= crypto_generichash_KEYBYTES_MIN &&
                       sizeof ctx_key - 1 <= crypto_generichash_KEYBYTES_MAX,
                   "BLAKE2b key length");
    _Static_assert(crypto_box_PUBLICKEYBYTES == sizeof out->pub &&
                       crypto_box_SECRETKEYBYTES == sizeof out->sec,
                   "CURVE key sizes");
    crypto_generichash(seed, sizeof seed, secret, len,
                       (const unsigned char *)ctx_key, sizeof ctx_key - 1);
    crypto_box_seed_keypair(out->pub, out->sec, seed);
    sodium_memzero(seed, sizeof seed);
    return PC_OK;
}

pc_err
pc_curve_keygen(pc_curve_keys *out)
{
    if (!out)
        return PC_EINVAL;
    if (!sodium_ready())
        return PC_ESYS;
    crypto_box_keypair(out->pub, out->sec);
    return PC_OK;
}

/* Does pub belong to sec? */
static bool
pair_matches(const pc_curve_keys *k)
{
    uint8_t pub[crypto_scalarmult_BYTES];
    bool ok;

    if (crypto_scalarmult_base(pub, k->sec) != 0)
        return false;
    ok = sodium_memcmp(pub, k->pub, sizeof pub) == 0;
    sodium_memzero(pub, sizeof pub);
    return ok;
}

/* ---- files with key material ------------------------------------------------ */

static bool
write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

pc_err
pc_curve_write(const char *path, const pc_curve_keys *k)
{
    char zpub[Z85_LEN + 1], zsec[Z85_LEN + 1];
    char text[2 * (Z85_LEN + 8) + 1];
    char *tmp;
    size_t plen;
    int fd, n, err;
    pc_err rc = PC_ESYS;

    if (!path || !*path || !k)
        return PC_EINVAL;
    plen = strlen(path);
    tmp = malloc(plen + sizeof ".XXXXXX");
    if (!tmp)
        return PC_ENOMEM;
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".XXXXXX", sizeof ".XXXXXX");
    if (!zmq_z85_encode(zpub, k->pub, sizeof k->pub) ||
        !zmq_z85_encode(zsec, k->sec, sizeof k->sec)) {
        PC_LOG_ERROR("net", "key file %s: cannot encode the keys", path);
        goto out;
    }
    n = snprintf(text, sizeof text, "public %s\nsecret %s\n", zpub, zsec);
    if (n < 0 || (size_t)n >= sizeof text)
        goto out;
    /* mkstemp creates the file 0600 whatever the umask. */
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        PC_LOG_ERROR("net", "key file %s: cannot create %s: %s", path, tmp,
                     strerror(errno));
        goto out;
    }
    if (fchmod(fd, 0600) != 0 || !write_all(fd, text, (size_t)n) ||
        fsync(fd) != 0) {
        err = errno;
        close(fd);
        unlink(tmp);
        PC_LOG_ERROR("net", "key file %s: cannot write %s: %s", path, tmp,
                     strerror(err));
        goto out;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        err = errno;
        unlink(tmp);
        PC_LOG_ERROR("net", "key file %s: cannot write it: %s", path,
                     strerror(err));
        goto out;
    }
    rc = PC_OK;
out:
    sodium_memzero(zsec, sizeof zsec);
    sodium_memzero(text, sizeof text);
    free(tmp);
    return rc;
}

/* Read all of the file at `path` (a `what`: "key file", "secret file")
 * into buf, at most `cap` bytes; *n gets the count, and is cap + 1 when
 * the file holds more than cap bytes (nothing beyond cap is stored). The
 * file must be a regular file without group or other permissions. Logs
 * and returns PC_ESYS or PC_EPERM; PC_EPROTO for something not a regular
 * file. */
static pc_err
slurp(const char *path, const char *what, char *buf, size_t cap, size_t *n)
{
    struct stat st;
    size_t got = 0;
    int fd, err;
    pc_err rc = PC_ESYS;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        PC_LOG_ERROR("net", "%s %s: cannot open it: %s", what, path,
                     strerror(errno));
        return PC_ESYS;
    }
    if (fstat(fd, &st) != 0) {
        PC_LOG_ERROR("net", "%s %s: cannot stat it: %s", what, path,
                     strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        PC_LOG_ERROR("net", "%s %s is not a regular file", what, path);
        rc = PC_EPROTO;
        goto out;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        PC_LOG_ERROR(
            "net", "%s %s is %s by others (mode %04o): chmod 600 it", what,
            path, st.st_mode & (S_IRGRP | S_IROTH) ? "readable" : "accessible",
            (unsigned)(st.st_mode & 07777));
        rc = PC_EPERM;
        goto out;
    }
    for (;;) {
        char extra;
        ssize_t r =
            got < cap ? read(fd, buf + got, cap - got) : read(fd, &extra, 1);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            err = errno;
            PC_LOG_ERROR("net", "%s %s: cannot read it: %s", what, path,
                         strerror(err));
            goto out;
        }
        if (r == 0)
            break;
        if (got == cap) {
            got = cap + 1;
            break;
        }
        got += (size_t)r;
    }
    *n = got;
    rc = PC_OK;
out:
    close(fd);
    return rc;
}

/* Decode the Z85 key after `tag ` on line (NUL-terminated, no newline)
 * into out. */
static bool
parse_key_line(const char *line, const char *tag, uint8_t out[32])
{
    size_t tl = strlen(tag);

    if (strncmp(line, tag, tl) != 0 || line[tl] != ' ' ||
        strlen(line + tl + 1) != Z85_LEN)
        return false;
    return zmq_z85_decode(out, line + tl + 1) != NULL;
}

pc_err
pc_curve_read(const char *path, pc_curve_keys *out)
{
    char buf[KEYFILE_MAX + 1];
    char *line[2] = {NULL, NULL};
    pc_curve_keys k;
    size_t n = 0, nl = 0;
    pc_err rc;

    if (!path || !*path || !out)
        return PC_EINVAL;
    rc = slurp(path, "key file", buf, KEYFILE_MAX, &n);
    if (rc != PC_OK)
        goto out;
    rc = PC_EPROTO;
    if (n > KEYFILE_MAX) {
        PC_LOG_ERROR("net", "key file %s is too long for a key file", path);
        goto out;
    }
    if (memchr(buf, '\0', n)) {
        PC_LOG_ERROR("net", "key file %s holds a NUL byte: not a key file",
                     path);
        goto out;
    }
    buf[n] = '\0';
    /* Exactly two lines, each ended by "\n" or "\r\n" (the last may lack
     * it). */
    for (char *p = buf; *p;) {
        char *e = strchr(p, '\n');

        if (nl == 2) {
            nl = 3;
            break;
        }
        line[nl++] = p;
        if (e) {
            if (e > p && e[-1] == '\r')
                e[-1] = '\0';
            *e = '\0';
            p = e + 1;
        } else {
            p += strlen(p);
        }
    }
    if (nl != 2 || !parse_key_line(line[0], "public", k.pub) ||
        !parse_key_line(line[1], "secret", k.sec)) {
        PC_LOG_ERROR("net",
                     "key file %s is malformed (want two lines, \"public "
                     "<Z85>\" and \"secret <Z85>\")",
                     path);
        goto out;
    }
    if (!pair_matches(&k)) {
        PC_LOG_ERROR("net",
                     "key file %s: its public key is not its secret key's "
                     "(corrupted or edited?)",
                     path);
        goto out;
    }
    *out = k;
    rc = PC_OK;
out:
    sodium_memzero(buf, sizeof buf);
    sodium_memzero(&k, sizeof k);
    return rc;
}

/* Check a secret (n bytes at src, from `what` `name`: "secret file" and
 * its path, or "" and "$PICOS_SECRET") and hand it to the caller. */
static pc_err
give_secret(const char *src, size_t n, const char *what, const char *name,
            void *buf, size_t size, size_t *len)
{
    const char *sep = *what ? " " : "";

    if (memchr(src, '\0', n)) {
        PC_LOG_ERROR("net", "cluster secret from %s%s%s holds a NUL byte", what,
                     sep, name);
        return PC_EINVAL;
    }
    if (n < PC_SECRET_MIN) {
        PC_LOG_ERROR("net",
                     "cluster secret from %s%s%s is %s (%zu bytes; at least "
                     "%d needed)",
                     what, sep, name, n == 0 ? "empty" : "too short", n,
                     PC_SECRET_MIN);
        return PC_EINVAL;
    }
    if (n > PC_SECRET_MAX || n > size) {
        PC_LOG_ERROR("net",
                     "cluster secret from %s%s%s is too long (at most %zu "
                     "bytes)",
                     what, sep, name,
                     size < PC_SECRET_MAX ? size : (size_t)PC_SECRET_MAX);
        return PC_EINVAL;
    }
    memcpy(buf, src, n);
    *len = n;
    return PC_OK;
}

pc_err
pc_secret_load(const char *file, void *buf, size_t size, size_t *len)
{
    /* The secret, a "\r\n" and one byte more to see the file is longer. */
    char tmp[PC_SECRET_MAX + 3];
    const char *env;
    size_t n = 0;
    pc_err rc;

    if (!buf || !len)
        return PC_EINVAL;
    if (!file) {
        env = getenv("PICOS_SECRET_FILE");
        if (env && *env) {
            file = env;
        } else if ((env = getenv("PICOS_SECRET")) != NULL) {
            return give_secret(env, strlen(env), "", "$PICOS_SECRET", buf, size,
                               len);
        } else {
            PC_LOG_ERROR("net", "no cluster secret: give a secret file, or set "
                                "PICOS_SECRET_FILE or PICOS_SECRET");
            return PC_ENOENT;
        }
    }
    rc = slurp(file, "secret file", tmp, PC_SECRET_MAX + 2, &n);
    if (rc == PC_OK) {
        /* One trailing "\n" or "\r\n" is the editor's, not the secret's. */
        if (n <= PC_SECRET_MAX + 2 && n > 0 && tmp[n - 1] == '\n') {
            n--;
            if (n > 0 && tmp[n - 1] == '\r')
                n--;
        }
        rc = give_secret(tmp, n > PC_SECRET_MAX + 2 ? PC_SECRET_MAX + 2 : n,
                         "secret file", file, buf, size, len);
    }
    sodium_memzero(tmp, sizeof tmp);
    return rc;
}

/* ---- CURVE on a socket ------------------------------------------------------ */

static pc_err
setopt(void *zsock, int opt, const char *name, const void *v, size_t n)
{
    if (zmq_setsockopt(zsock, opt, v, n) == 0)
        return PC_OK;
    if (!zmq_has("curve")) {
        PC_LOG_ERROR("net", "this libzmq has no CURVE (built without "
                            "libsodium?): links can't be secured");
        return PC_ENOTSUP;
    }
    PC_LOG_ERROR("net", "zmq_setsockopt(%s): %s", name, zmq_strerror(errno));
    return PC_ESYS;
}

pc_err
pc__curve_server(void *zsock, const pc_curve_keys *k)
{
    int one = 1;
    pc_err rc;

    if (!zsock || !k)
        return PC_EINVAL;
    if ((rc = setopt(zsock, ZMQ_CURVE_SERVER, "ZMQ_CURVE_SERVER", &one,
                     sizeof one)) != PC_OK ||
        (rc = setopt(zsock, ZMQ_CURVE_SECRETKEY, "ZMQ_CURVE_SECRETKEY", k->sec,
                     sizeof k->sec)) != PC_OK ||
        (rc = setopt(zsock, ZMQ_ZAP_DOMAIN, "ZMQ_ZAP_DOMAIN", PC__ZAP_DOMAIN,
                     strlen(PC__ZAP_DOMAIN))) != PC_OK)
        return rc;
    /* Best effort: only libzmq built with drafts knows it. */
    (void)zmq_setsockopt(zsock, ZMQ_ZAP_ENFORCE_DOMAIN, &one, sizeof one);
    return PC_OK;
}

pc_err
pc__curve_client(void *zsock, const pc_curve_keys *k)
{
    pc_err rc;

    if (!zsock || !k)
        return PC_EINVAL;
    if ((rc = setopt(zsock, ZMQ_CURVE_SERVERKEY, "ZMQ_CURVE_SERVERKEY", k->pub,
                     sizeof k->pub)) != PC_OK ||
        (rc = setopt(zsock, ZMQ_CURVE_PUBLICKEY, "ZMQ_CURVE_PUBLICKEY", k->pub,
                     sizeof k->pub)) != PC_OK ||
        (rc = setopt(zsock, ZMQ_CURVE_SECRETKEY, "ZMQ_CURVE_SECRETKEY", k->sec,
                     sizeof k->sec)) != PC_OK)
        return rc;
    return PC_OK;
}

/* ---- ZAP handler ------------------------------------------------------------ */

/* [routing id][""] + RFC 27's six frames + one credential (CURVE). */
#define ZAP_FRAMES 9
/* Frames read of a request at most; the rest of a longer one is dropped. */
#define ZAP_MAXF 12
/* Peer addresses remembered for rate-limiting the refusal warnings. */
#define ZAP_WARN_SLOTS 32
/* Longest address kept (an IPv6 literal is at most 45). */
#define ZAP_ADDR_MAX 64

enum {
    F_RID,
    F_DELIM,
    F_VERSION,
    F_REQID,
    F_DOMAIN,
    F_ADDRESS,
    F_IDENTITY,
    F_MECH,
    F_CRED
};

struct warn_slot {
    char addr[ZAP_ADDR_MAX];
    double last;         /* monotonic seconds of the last line logged */
    uint64_t suppressed; /* refusals not logged since */
};

struct pc__zap {
    void *sock;
    uint8_t pub[32];
    uint64_t accepted, rejected;
    struct warn_slot warn[ZAP_WARN_SLOTS];
};

static double
mono_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

pc_err
pc__zap_open(pc__zap **out, void *zctx, const pc_curve_keys *k)
{
    pc__zap *z;
    int zero = 0;
    pc_err rc = PC_ESYS;

    if (!out || !zctx || !k)
        return PC_EINVAL;
    z = calloc(1, sizeof *z);
    if (!z)
        return PC_ENOMEM;
    memcpy(z->pub, k->pub, sizeof z->pub);
    z->sock = zmq_socket(zctx, ZMQ_ROUTER);
    if (!z->sock) {
        PC_LOG_ERROR("net", "ZAP handler: zmq_socket: %s", zmq_strerror(errno));
        goto fail;
    }
    zmq_setsockopt(z->sock, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind(z->sock, ZAP_ENDPOINT) != 0) {
        if (errno == EADDRINUSE) {
            PC_LOG_ERROR("net", "ZAP handler: this context has one already");
            rc = PC_ESTATE;
        } else {
            PC_LOG_ERROR("net", "ZAP handler: bind %s: %s", ZAP_ENDPOINT,
                         zmq_strerror(errno));
        }
        goto fail;
    }
    *out = z;
    return PC_OK;
fail:
    if (z->sock)
        zmq_close(z->sock);
    free(z);
    return rc;
}

int
pc__zap_fd(const pc__zap *z)
{
    int fd = -1;
    size_t n = sizeof fd;

    if (!z || zmq_getsockopt(z->sock, ZMQ_FD, &fd, &n) != 0)
        return -1;
    return fd;
}

uint64_t
pc__zap_accepted(const pc__zap *z)
{
    return z ? z->accepted : 0;
}

uint64_t
pc__zap_rejected(const pc__zap *z)
{
    return z ? z->rejected : 0;
}

/* Log a refusal of `addr` unless one was logged for it in the last
 * PC__ZAP_WARN_EVERY seconds. */
static void
warn_refused(pc__zap *z, const char *addr, const char *why)
{
    struct warn_slot *s = NULL, *free_slot = NULL, *oldest = &z->warn[0];
    double now = mono_now();

    for (int i = 0; i < ZAP_WARN_SLOTS && !s; i++) {
        struct warn_slot *w = &z->warn[i];

        if (!w->addr[0])
            free_slot = free_slot ? free_slot : w;
        else if (strcmp(w->addr, addr) == 0)
            s = w;
        else if (w->last < oldest->last)
            oldest = w;
    }
    if (s && now - s->last < PC__ZAP_WARN_EVERY) {
        s->suppressed++;
        return;
    }
    if (!s) {
        s = free_slot ? free_slot : oldest;
        snprintf(s->addr, sizeof s->addr, "%s", addr);
        s->suppressed = 0;
    }
    if (s->suppressed)
        PC_LOG_WARN("net",
                    "refused a peer from %s: %s (%" PRIu64
                    " more refusals since the last line)",
                    addr, why, s->suppressed);
    else
        PC_LOG_WARN("net", "refused a peer from %s: %s", addr, why);
    s->last = now;
    s->suppressed = 0;
}

static bool
frame_is(zmq_msg_t *f, const char *s)
{
    size_t n = strlen(s);

    return zmq_msg_size(f) == n && memcmp(zmq_msg_data(f), s, n) == 0;
}

static bool
send_frame(void *sock, const void *p, size_t n, bool more)
{
    return zmq_send(sock, p, n, ZMQ_DONTWAIT | (more ? ZMQ_SNDMORE : 0)) >= 0;
}

/* Reply to the request in f[] (its envelope and request id checked). */
static void
zap_reply(pc__zap *z, zmq_msg_t *f, bool ok)
{
    const char *code = ok ? "200" : "400";
    const char *text = ok ? "OK" : "not the cluster's key";
    void *s = z->sock;

    /* A ROUTER drops what it can't route; a failed frame mid-message is
     * not possible for inproc below the HWM and harmless above it (the
     * handshake times out). */
    (void)(send_frame(s, zmq_msg_data(&f[F_RID]), zmq_msg_size(&f[F_RID]),
                      true) &&
           send_frame(s, "", 0, true) && send_frame(s, "1.0", 3, true) &&
           send_frame(s, zmq_msg_data(&f[F_REQID]), zmq_msg_size(&f[F_REQID]),
                      true) &&
           send_frame(s, code, 3, true) &&
           send_frame(s, text, strlen(text), true) &&
           send_frame(s, PC__ZAP_DOMAIN, ok ? strlen(PC__ZAP_DOMAIN) : 0,
                      true) &&
           send_frame(s, "", 0, false));
}

/* Judge one request of n frames (more: it had more than ZAP_MAXF). */
static void
zap_handle(pc__zap *z, zmq_msg_t *f, int n, bool more)
{
    char addr[ZAP_ADDR_MAX];
    const char *why = NULL;
    bool ok = false;

    /* An envelope we can't answer: drop it (libzmq never sends these). */
    if (more || n < F_MECH + 1 || zmq_msg_size(&f[F_RID]) == 0 ||
        zmq_msg_size(&f[F_RID]) > 255 || zmq_msg_size(&f[F_DELIM]) != 0 ||
        zmq_msg_size(&f[F_REQID]) > 255) {
        z->rejected++;
        PC_LOG_WARN("net", "ZAP handler: dropped a malformed request");
        return;
    }
    if (zmq_msg_size(&f[F_ADDRESS]) < sizeof addr) {
        memcpy(addr, zmq_msg_data(&f[F_ADDRESS]), zmq_msg_size(&f[F_ADDRESS]));
        addr[zmq_msg_size(&f[F_ADDRESS])] = '\0';
        for (char *p = addr; *p; p++)
            if (*p < 0x20 || *p > 0x7e)
                *p = '?';
    } else {
        snprintf(addr, sizeof addr, "%s", "(overlong address)");
    }
    if (!frame_is(&f[F_VERSION], "1.0"))
        why = "ZAP request of an unknown version";
    else if (!frame_is(&f[F_DOMAIN], PC__ZAP_DOMAIN))
        why = "ZAP request for another domain";
    else if (!frame_is(&f[F_MECH], "CURVE"))
        why = "not CURVE (a peer without security?)";
    else if (n != ZAP_FRAMES || zmq_msg_size(&f[F_CRED]) != sizeof z->pub)
        why = "malformed CURVE credentials";
    else if (sodium_memcmp(zmq_msg_data(&f[F_CRED]), z->pub, sizeof z->pub) !=
             0)
        why = "its key is not the cluster's (no cluster secret?)";
    else
        ok = true;
    if (ok) {
        z->accepted++;
    } else {
        z->rejected++;
        warn_refused(z, addr, why);
    }
    zap_reply(z, f, ok);
}

void
pc__zap_drain(pc__zap *z)
{
    zmq_msg_t f[ZAP_MAXF];

    if (!z)
        return;
    for (;;) {
        int n = 0, more = 0;
        bool extra = false;
        size_t ml = sizeof more;

        zmq_msg_init(&f[0]);
        if (zmq_msg_recv(&f[0], z->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&f[0]);
            if (errno == EINTR)
                continue;
            return; /* EAGAIN, or the context is ending */
        }
        n = 1;
        for (;;) {
            zmq_msg_t *m = n < ZAP_MAXF ? &f[n] : NULL;
            zmq_msg_t sink;

            ml = sizeof more;
            if (zmq_getsockopt(z->sock, ZMQ_RCVMORE, &more, &ml) != 0 || !more)
                break;
            if (!m) {
                m = &sink;
                extra = true;
            }
            zmq_msg_init(m);
            /* The rest of a message is there once its first frame is. */
            if (zmq_msg_recv(m, z->sock, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(m);
                extra = true;
                break;
            }
            if (m == &sink)
                zmq_msg_close(m);
            else
                n++;
        }
        zap_handle(z, f, n, extra);
        for (int i = 0; i < n; i++)
            zmq_msg_close(&f[i]);
    }
}

void
pc__zap_close(pc__zap **zp)
{
    pc__zap *z = zp ? *zp : NULL;

    if (!z)
        return;
    zmq_close(z->sock);
    sodium_memzero(z, sizeof *z);
    free(z);
    *zp = NULL;
}
