/* transport/tls.c — TLS 1.3 over pc_sock with wolfSSL, without blocking a
 * worker.
 *
 * Design. A pc_tls owns one WOLFSSL object bound to the socket's
 * non-blocking fd through our own I/O callbacks (recv/send with
 * MSG_NOSIGNAL, so no SIGPIPE, and errno kept for the mapping). Every call
 * loops: run one wolfSSL step (connect/accept, read, write) under the
 * connection's mutex; on WANT_READ / WANT_WRITE drop the mutex and suspend
 * the task in pc_wait_fd() for that direction, with the one deadline of the
 * call; try again. Because the mutex is never held across a wait, one task
 * may read while another writes: wolfSSL sees serialised calls, as under an
 * event loop.
 *
 * Closing mirrors sock.c, through the same tp_obj (fdwait.c): waiting
 * tasks are registered (under the mutex) and pc_tls_close() cancels their
 * pc_wait_fd() so they return PC_ECLOSED from any worker; a late cancel
 * meant for an earlier wait is absorbed by waiting again while `closed` is
 * false. The object is reference counted and each call holds a reference,
 * so the WOLFSSL object and the socket (hence the fd number under a libev
 * watcher) outlive every call in progress; the reference of a call whose
 * task was terminated in its wait is found and dropped (fdwait.h).
 *
 * Policy (fixing pycos, PYCOS_SPEC §1.7/§2.8): TLS 1.3 methods only, so a
 * 1.2 peer fails the version negotiation; clients always use
 * WOLFSSL_VERIFY_PEER and wolfSSL_check_domain_name(); servers asked for
 * mutual TLS use VERIFY_PEER | FAIL_IF_NO_PEER_CERT. Handshake failures are
 * classified once (classify()) from wolfSSL's error code and the last alert
 * received: certificate problems -> PC_EAUTH, the rest -> PC_EPROTO, socket
 * trouble -> PC_ECLOSED; and logged with wolfSSL's reason and the check.
 *
 * wolfSSL_Init() runs once (pthread_once); wolfSSL_Cleanup() is never
 * called, as other users of the library in the process may still need it.
 */
#define _GNU_SOURCE
#include "picos/tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdwait.h"

/* wolfSSL's options.h must come before its other headers */
/* clang-format off */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
/* clang-format on */

#include "picos/log.h"
#include "picos/node.h"
#include "picos/ref.h"
#include "picos/task.h"

struct pc_tls_ctx {
    WOLFSSL_CTX *ctx;
    bool server;
    atomic_int refs;
};

struct pc_tls {
    tp_obj o; /* references, lock, closed flag, waiters (fdwait.h); first */
    pc_tls_ctx *ctx;
    pc_sock *sock;
    int fd;
    WOLFSSL *ssl;
    bool handshaken; /* under o.lock */
    int io_errno;    /* last errno of the I/O callbacks; under o.lock */
};

/* ---- library init ---------------------------------------------------------------- */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;

#ifdef FP_ECC
/* wolfSSL's ECC fixed-point cache is per thread and is freed only by
 * wc_ecc_fp_free() on that thread: a thread that did TLS work frees it
 * when it ends, through this key's destructor. */
static pthread_key_t fp_key;
static bool fp_key_ok;

static void
fp_free(void *unused)
{
    (void)unused;
    wc_ecc_fp_free();
}
#endif

static void
init_lib(void)
{
    init_rc = wolfSSL_Init();
#ifdef FP_ECC
    fp_key_ok = pthread_key_create(&fp_key, fp_free) == 0;
#endif
}

/* Arrange for this thread's wolfSSL caches to go when it ends. */
static void
thread_uses_tls(void)
{
#ifdef FP_ECC
    if (fp_key_ok && !pthread_getspecific(fp_key))
        (void)pthread_setspecific(fp_key, &fp_key);
#endif
}

static bool
lib_ready(void)
{
    pthread_once(&init_once, init_lib);
    return init_rc == WOLFSSL_SUCCESS;
}

/* ---- contexts ---------------------------------------------------------------------- */

/* One clear line for a file that can't be used. */
static pc_err
file_fail(const char *what, const char *path, int rc)
{
    char why[96];

    if (!path) {
        PC_LOG_ERROR("tls", "tls ctx: %s is required but not given", what);
        return PC_EINVAL;
    }
    if (access(path, R_OK) != 0) {
        PC_LOG_ERROR("tls", "tls ctx: %s \"%s\": %s", what, path,
                     strerror(errno));
        return PC_EINVAL;
    }
    if (rc == WOLFSSL_FAILURE)
        snprintf(why, sizeof why, "no usable PEM data");
    else
        wolfSSL_ERR_error_string_n((unsigned long)rc, why, sizeof why);
    PC_LOG_ERROR("tls", "tls ctx: %s \"%s\": not usable: %s (%d)", what, path,
                 why, rc);
    return PC_EINVAL;
}

pc_err
pc_tls_ctx_new(pc_tls_ctx **out, const pc_tls_ctx_opts *o)
{
    pc_tls_ctx *c;
    WOLFSSL_METHOD *m;
    pc_err rc = PC_OK;
    int r;

    if (!out || !o)
        return PC_EINVAL;
    *out = NULL;
    if (!lib_ready())
        return PC_ENOMEM;
    thread_uses_tls();
    if (o->server && !o->cert_file)
        return file_fail("certificate file (server)", NULL, 0);
    if (o->cert_file && !o->key_file)
        return file_fail("key file (for the certificate)", NULL, 0);
    if (!o->server && !o->ca_file)
        return file_fail("CA file (client: verifies the server)", NULL, 0);
    if (o->server && o->verify_peer && !o->ca_file)
        return file_fail("CA file (server with verify_peer)", NULL, 0);

    m = o->server ? wolfTLSv1_3_server_method() : wolfTLSv1_3_client_method();
    c = calloc(1, sizeof *c);
    if (!c || !m || !(c->ctx = wolfSSL_CTX_new(m))) {
        free(c);
        return PC_ENOMEM;
    }
    c->server = o->server;
    atomic_init(&c->refs, 1);

    if (o->cert_file) {
        r = wolfSSL_CTX_use_certificate_chain_file(c->ctx, o->cert_file);
        if (r != WOLFSSL_SUCCESS) {
            rc = file_fail("certificate file", o->cert_file, r);
            goto fail;
        }
        r = wolfSSL_CTX_use_PrivateKey_file(c->ctx, o->key_file,
                                            WOLFSSL_FILETYPE_PEM);
        if (r != WOLFSSL_SUCCESS) {
            rc = file_fail("key file", o->key_file, r);
            goto fail;
        }
        if (wolfSSL_CTX_check_private_key(c->ctx) != WOLFSSL_SUCCESS) {
            PC_LOG_ERROR("tls",
                         "tls ctx: key file \"%s\" does not match "
                         "certificate \"%s\"",
                         o->key_file, o->cert_file);
            rc = PC_EINVAL;
            goto fail;
        }
    }
    if (o->ca_file) {
        r = wolfSSL_CTX_load_verify_locations(c->ctx, o->ca_file, NULL);
        if (r != WOLFSSL_SUCCESS) {
            rc = file_fail("CA file", o->ca_file, r);
            goto fail;
        }
    }
    if (!o->server)
        wolfSSL_CTX_set_verify(c->ctx, WOLFSSL_VERIFY_PEER, NULL);
    else if (o->verify_peer)
        wolfSSL_CTX_set_verify(
            c->ctx, WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT,
            NULL);
    else
        wolfSSL_CTX_set_verify(c->ctx, WOLFSSL_VERIFY_NONE, NULL);
    *out = c;
    return PC_OK;
fail:
    wolfSSL_CTX_free(c->ctx);
    free(c);
    return rc;
}

static void
ctx_unref(pc_tls_ctx *c)
{
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    wolfSSL_CTX_free(c->ctx);
    free(c);
}

void
pc_tls_ctx_free(pc_tls_ctx **cp)
{
    if (!cp || !*cp)
        return;
    ctx_unref(*cp);
    *cp = NULL;
}

/* ---- I/O callbacks ------------------------------------------------------------------ */

static int
io_result(pc_tls *t, ssize_t r, bool reading)
{
    int e = errno;

    if (r > 0)
        return (int)r;
    if (r == 0 && reading)
        return WOLFSSL_CBIO_ERR_CONN_CLOSE;
    t->io_errno = e;
    if (e == EAGAIN || e == EWOULDBLOCK)
        return reading ? WOLFSSL_CBIO_ERR_WANT_READ
                       : WOLFSSL_CBIO_ERR_WANT_WRITE;
    if (e == EINTR)
        return WOLFSSL_CBIO_ERR_ISR;
    if (e == ECONNRESET || e == EPIPE || e == ECONNABORTED)
        return WOLFSSL_CBIO_ERR_CONN_RST;
    return WOLFSSL_CBIO_ERR_GENERAL;
}

static int
io_recv(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
    pc_tls *t = arg;

    (void)ssl;
    return io_result(t, recv(t->fd, buf, (size_t)sz, 0), true);
}

static int
io_send(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
    pc_tls *t = arg;

    (void)ssl;
    return io_result(t, send(t->fd, buf, (size_t)sz, MSG_NOSIGNAL), false);
}

/* ---- connections --------------------------------------------------------------------- */

static void
tls_destroy(tp_obj *o)
{
    pc_tls *t = (pc_tls *)o;

    wolfSSL_free(t->ssl);
    pc_sock_close(&t->sock);
    ctx_unref(t->ctx);
    tp_obj_fini(&t->o);
    free(t);
}

pc_err
pc_tls_wrap(pc_tls **out, pc_tls_ctx *ctx, pc_sock *sock, const char *hostname)
{
    pc_tls *t;

    if (!out || !ctx || !sock || (!ctx->server && !hostname))
        return PC_EINVAL;
    *out = NULL;
    t = calloc(1, sizeof *t);
    if (!t)
        return PC_ENOMEM;
    t->ssl = wolfSSL_new(ctx->ctx);
    if (!t->ssl) {
        free(t);
        return PC_ENOMEM;
    }
    if (hostname && !ctx->server &&
        (wolfSSL_check_domain_name(t->ssl, hostname) != WOLFSSL_SUCCESS ||
         wolfSSL_UseSNI(t->ssl, WOLFSSL_SNI_HOST_NAME, hostname,
                        (unsigned short)strlen(hostname)) != WOLFSSL_SUCCESS)) {
        wolfSSL_free(t->ssl);
        free(t);
        return PC_ENOMEM;
    }
    t->fd = pc_sock_fd(sock);
    wolfSSL_SSLSetIORecv(t->ssl, io_recv);
    wolfSSL_SSLSetIOSend(t->ssl, io_send);
    wolfSSL_SetIOReadCtx(t->ssl, t);
    wolfSSL_SetIOWriteCtx(t->ssl, t);
    atomic_fetch_add_explicit(&ctx->refs, 1, memory_order_relaxed);
    t->ctx = ctx;
    t->sock = sock;
    tp_obj_init(&t->o, tls_destroy);
    *out = t;
    return PC_OK;
}

/* Under the lock, at the first close: one try at close_notify (a full
 * buffer loses it). The socket itself is closed with the last reference.
 * (It is not shut down here: that would make the fd ready under the stale
 * epoll registrations other workers keep for it, whose libev then touches
 * the fd while we close it.) */
static void
tls_on_close(tp_obj *o)
{
    pc_tls *t = (pc_tls *)o;

    if (t->handshaken)
        (void)wolfSSL_shutdown(t->ssl);
}

void
pc_tls_close(pc_tls **tp)
{
    pc_tls *t;

    if (!tp || !*tp)
        return;
    t = *tp;
    *tp = NULL;
    tp_obj_close(&t->o, tls_on_close);
}

static pc_err
enter(pc_tls *t)
{
    pc_err rc = t ? tp_obj_enter(&t->o) : PC_EINVAL;

    if (rc == PC_OK)
        thread_uses_tls();
    return rc;
}

static pc_err
leave(pc_tls *t, pc_err rc)
{
    return tp_obj_leave(&t->o, rc);
}

/* Wait for `ev` on the fd until the deadline, registered so that a close
 * wakes us. Called without the lock. */
static pc_err
wait_io(pc_tls *t, int ev, double deadline)
{
    return tp_obj_wait(&t->o, t->fd, ev, deadline);
}

/* ---- error classification -------------------------------------------------------------- */

static bool
alert_is_auth(int code)
{
    switch (code) {
    case bad_certificate:
    case unsupported_certificate:
    case certificate_revoked:
    case certificate_expired:
    case certificate_unknown:
    case unknown_ca:
    case access_denied:
    case certificate_required:
        return true;
    default:
        return false;
    }
}

/* Map a failed wolfSSL call (err = wolfSSL_get_error()) to a pc_err and
 * name the check. Under lock. */
static pc_err
classify(pc_tls *t, int err, const char **check)
{
    WOLFSSL_ALERT_HISTORY h;

    memset(&h, 0, sizeof h);
    switch (err) {
    case ASN_NO_SIGNER_E:
        *check = "peer certificate not signed by a trusted CA";
        return PC_EAUTH;
    case ASN_SELF_SIGNED_E:
        *check = "peer certificate is self-signed and not trusted";
        return PC_EAUTH;
    case ASN_AFTER_DATE_E:
    case ASN_BEFORE_DATE_E:
        *check = "peer certificate outside its validity dates";
        return PC_EAUTH;
    case ASN_SIG_CONFIRM_E:
        *check = "peer certificate signature does not verify";
        return PC_EAUTH;
    case DOMAIN_NAME_MISMATCH:
        *check = "host name not in the server certificate (SAN/CN)";
        return PC_EAUTH;
    case NO_PEER_CERT:
        *check = "peer sent no certificate but one is required";
        return PC_EAUTH;
    case VERIFY_CERT_ERROR:
        *check = "peer certificate verification failed";
        return PC_EAUTH;
    case SOCKET_ERROR_E:
    case SOCKET_PEER_CLOSED_E:
        *check = "connection closed or reset by the peer";
        return PC_ECLOSED;
    case VERSION_ERROR:
        *check = "TLS version mismatch (only TLS 1.3 is allowed)";
        return PC_EPROTO;
    default:
        break;
    }
    if (err == FATAL_ERROR) {
        (void)wolfSSL_get_alert_history(t->ssl, &h);
        if (alert_is_auth(h.last_rx.code)) {
            *check = "peer rejected our certificate (alert)";
            return PC_EAUTH;
        }
        if (h.last_rx.code == protocol_version) {
            *check = "peer refused the TLS version (alert)";
            return PC_EPROTO;
        }
    }
    *check = "TLS protocol error";
    return PC_EPROTO;
}

static const char *
side(const pc_tls *t)
{
    return t->ctx->server ? "server" : "client";
}

/* One wolfSSL step failed with return value ret: PC_EAGAIN with *ev set
 * when it only needs the fd, else the mapped error (logged when `what`). */
static pc_err
step_fail(pc_tls *t, int ret, int *ev, const char *what)
{
    int err = wolfSSL_get_error(t->ssl, ret);
    const char *check = "";
    char why[96];
    pc_err rc;

    if (err == WOLFSSL_ERROR_WANT_READ) {
        *ev = PC_READ;
        return PC_EAGAIN;
    }
    if (err == WOLFSSL_ERROR_WANT_WRITE) {
        *ev = PC_WRITE;
        return PC_EAGAIN;
    }
    if (tp_obj_closed(&t->o))
        return PC_ECLOSED;
    if (err == WOLFSSL_ERROR_ZERO_RETURN) {
        PC_LOG_DEBUG("tls", "%s (%s side): the peer closed (close_notify)",
                     what ? what : "call", side(t));
        return PC_ECLOSED;
    }
    rc = classify(t, err, &check);
    if (rc == PC_ECLOSED && t->handshaken) {
        /* a peer that goes away after the handshake is not a failure */
        PC_LOG_DEBUG("tls", "%s (%s side): %s", what ? what : "call", side(t),
                     check);
    } else if (what) {
        long vr = wolfSSL_get_verify_result(t->ssl);
        wolfSSL_ERR_error_string_n((unsigned long)err, why, sizeof why);
        PC_LOG_WARN("tls",
                    "%s (%s side) failed: %s: %s (wolfSSL %d, verify "
                    "result %ld) -> %s",
                    what, side(t), check, why, err, vr, pc_err_name(rc));
    }
    return rc;
}

/* ---- calls ------------------------------------------------------------------------------- */

/* After a wolfSSL step that returned *rc: true to retry it once the fd is
 * ready for `ev` (PC_EAGAIN, time left, the wait went well); else *rc is
 * the call's result. */
static bool
again(pc_tls *t, pc_err *rc, int ev, double deadline)
{
    if (*rc != PC_EAGAIN)
        return false;
    if (pc_deadline_left(deadline) == 0) {
        *rc = PC_ETIMEDOUT;
        return false;
    }
    *rc = wait_io(t, ev, deadline);
    return *rc == PC_OK;
}

pc_err
pc_tls_handshake(pc_tls *t, double timeout)
{
    double deadline = pc_deadline(timeout);
    pc_err rc = enter(t);
    int ev = 0;

    if (rc != PC_OK)
        return rc;
    for (;;) {
        int r;
        pthread_mutex_lock(&t->o.lock);
        r = t->ctx->server ? wolfSSL_accept(t->ssl) : wolfSSL_connect(t->ssl);
        if (r == WOLFSSL_SUCCESS) {
            t->handshaken = true;
            rc = PC_OK;
        } else {
            rc = step_fail(t, r, &ev, "handshake");
        }
        pthread_mutex_unlock(&t->o.lock);
        if (!again(t, &rc, ev, deadline))
            break;
    }
    return leave(t, rc);
}

pc_err
pc_tls_read(pc_tls *t, void *buf, size_t len, double timeout, size_t *n)
{
    double deadline = pc_deadline(timeout);
    pc_err rc;
    int ev = 0;

    if (n)
        *n = 0;
    if (!buf || !n || len == 0)
        return PC_EINVAL;
    if ((rc = enter(t)) != PC_OK)
        return rc;
    if (len > 0x7fffffff)
        len = 0x7fffffff;
    for (;;) {
        int r;
        pthread_mutex_lock(&t->o.lock);
        if (!t->handshaken) {
            pthread_mutex_unlock(&t->o.lock);
            rc = PC_ESTATE;
            break;
        }
        r = wolfSSL_read(t->ssl, buf, (int)len);
        if (r > 0) {
            *n = (size_t)r;
            rc = PC_OK;
        } else if (wolfSSL_get_error(t->ssl, r) == WOLFSSL_ERROR_ZERO_RETURN) {
            PC_LOG_DEBUG("tls",
                         "read (%s side): the peer closed "
                         "(close_notify)",
                         side(t));
            rc = PC_OK; /* close_notify: clean EOF */
        } else {
            rc = step_fail(t, r, &ev, "read");
        }
        pthread_mutex_unlock(&t->o.lock);
        if (!again(t, &rc, ev, deadline))
            break;
    }
    return leave(t, rc);
}

pc_err
pc_tls_write_all(pc_tls *t, const void *buf, size_t len, double timeout)
{
    double deadline = pc_deadline(timeout);
    const char *p = buf;
    pc_err rc;
    int ev = 0;

    if (!buf && len)
        return PC_EINVAL;
    if ((rc = enter(t)) != PC_OK)
        return rc;
    while (len > 0) {
        /* a retry after WANT_WRITE must repeat the same buffer and size */
        int chunk = len > 0x100000 ? 0x100000 : (int)len, r;
        pthread_mutex_lock(&t->o.lock);
        if (!t->handshaken) {
            pthread_mutex_unlock(&t->o.lock);
            rc = PC_ESTATE;
            break;
        }
        r = wolfSSL_write(t->ssl, p, chunk);
        if (r > 0) {
            p += r;
            len -= (size_t)r;
            rc = PC_OK;
        } else {
            rc = step_fail(t, r, &ev, "write");
        }
        pthread_mutex_unlock(&t->o.lock);
        if (rc == PC_OK)
            continue;
        if (!again(t, &rc, ev, deadline))
            break;
    }
    return leave(t, rc);
}
