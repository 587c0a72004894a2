/* picos/tls.h — TLS 1.3 over asynchronous sockets (wolfSSL inside).
 *
 * Fixes pycos's weak defaults (PYCOS_SPEC §1.7, §2.8): only TLS 1.3 is
 * spoken (a TLS 1.2 peer is refused), a client always verifies the server
 * against a CA file *and* checks the host name against the certificate's
 * names (SAN DNS entries, then CN), and a server can require client
 * certificates (mutual TLS).
 *
 * Use: make one pc_tls_ctx per role and configuration (any thread), then per
 * connection wrap a connected pc_sock with pc_tls_wrap() and run
 * pc_tls_handshake() in a task; read and write with pc_tls_read() /
 * pc_tls_write_all(); end with pc_tls_close(). Blocking calls suspend only
 * the calling task (built on pc_wait_fd()); they take a timeout in seconds
 * (negative: forever; 0: try once) and return PC_EPERM outside tasks.
 *
 * Errors: PC_EAUTH when a certificate check fails (untrusted or self-signed
 * peer, host name mismatch, missing client certificate, or the peer's alert
 * saying it rejected ours); PC_EPROTO for protocol failures (plaintext on a
 * TLS port, version mismatch, bad records); PC_ETIMEDOUT; PC_ECLOSED (closed
 * locally, reset, or the peer vanished without close_notify). Each failed
 * handshake, and each real error later (a bad record, an alert), is logged
 * once at WARN (module "tls") with wolfSSL's reason and which check
 * failed. A peer that ends the connection after the handshake — with
 * close_notify, by closing the socket, or with a reset — is normal and is
 * logged at DEBUG only.
 *
 * Concurrency: one reader task and one writer task may use a pc_tls at once
 * (every wolfSSL call is made under the connection's mutex, never held
 * across a wait). pc_tls_close() works from any thread and wakes tasks
 * waiting in calls on the connection with PC_ECLOSED.
 */
#ifndef PICOS_TLS_H
#define PICOS_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "picos/err.h"
#include "picos/sock.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A TLS configuration (certificates, role); opaque, reference counted. */
typedef struct pc_tls_ctx pc_tls_ctx;

/* One TLS connection over a pc_sock; opaque, heap. */
typedef struct pc_tls pc_tls;

/* Options of pc_tls_ctx_new(). Files are PEM. */
typedef struct pc_tls_ctx_opts {
    bool server;           /* true: accepting side; false: connecting side */
    const char *cert_file; /* own certificate chain: required for a server,
                              optional for a client (needed for mutual TLS) */
    const char *key_file;  /* private key of cert_file (required with it) */
    const char *ca_file;   /* CAs that sign acceptable peers: required for a
                              client, and for a server with verify_peer */
    bool verify_peer;      /* server: require and verify a client certificate
                              (mutual TLS). Ignored for a client: a client
                              always verifies the server. */
} pc_tls_ctx_opts;

/* Make a TLS 1.3-only context. Every named file is loaded now: a missing or
 * unreadable file, a file without usable PEM data, or a missing required
 * file fails here with PC_EINVAL and one ERROR log line
 * naming the file and the reason. On PC_OK *ctx is owned by the caller
 * (free with pc_tls_ctx_free()). Returns PC_OK, PC_EINVAL, PC_ENOMEM. Any
 * thread. */
pc_err pc_tls_ctx_new(pc_tls_ctx **ctx, const pc_tls_ctx_opts *opts);

/* Drop the caller's reference and set *ctx to NULL; connections made from
 * it keep their own reference. NULL / *ctx NULL: no-op. Any thread. */
void pc_tls_ctx_free(pc_tls_ctx **ctx);

/* Wrap the connected stream socket `sock` for TLS with ctx's role. A client
 * must give the `hostname` the server's certificate must name (checked in
 * the handshake); a server passes NULL. No I/O is done: call
 * pc_tls_handshake() next. On PC_OK *tls is owned by the caller and takes
 * over the caller's reference to sock (don't close or release it yourself;
 * pc_tls_close() closes it); on error the caller still owns sock. Returns
 * PC_OK, PC_EINVAL (NULL argument, client without hostname), PC_ENOMEM.
 * Any thread. */
pc_err pc_tls_wrap(pc_tls **tls, pc_tls_ctx *ctx, pc_sock *sock,
                   const char *hostname);

/* Run the TLS handshake within `timeout`. Returns PC_OK, PC_EAUTH (a
 * certificate check failed, here or at the peer), PC_EPROTO, PC_ETIMEDOUT,
 * PC_ECLOSED, PC_EPERM (not a task). After an error, only pc_tls_close() is
 * useful. Note that in TLS 1.3 a client's handshake can succeed before the
 * server has checked the client's certificate: a rejection then shows as an
 * error from the client's next read. Tasks only. */
pc_err pc_tls_handshake(pc_tls *tls, double timeout);

/* Read what is available, at least 1 byte and at most len plaintext bytes,
 * waiting up to `timeout`. Returns PC_OK with *n >= 1, or PC_OK with *n == 0
 * when the peer closed cleanly (close_notify); PC_ECLOSED when the stream
 * ended without close_notify (possible truncation), was reset or closed
 * locally; PC_ETIMEDOUT (*n 0); PC_EAUTH / PC_EPROTO (peer alert, bad
 * record); PC_EINVAL (len 0); PC_ESTATE (no handshake done). Tasks only. */
pc_err pc_tls_read(pc_tls *tls, void *buf, size_t len, double timeout,
                   size_t *n);

/* Write all len bytes within `timeout` in all. Returns PC_OK, PC_ETIMEDOUT
 * (part of the data may have gone: close the connection), PC_ECLOSED,
 * PC_EPROTO, PC_ESTATE (no handshake done). Never raises SIGPIPE. Tasks
 * only. */
pc_err pc_tls_write_all(pc_tls *tls, const void *buf, size_t len,
                        double timeout);

/* Close: send close_notify (best effort, one non-blocking try, only after a
 * completed handshake), wake every task waiting in a call on this connection
 * (they return PC_ECLOSED), drop the caller's reference and set *tls to
 * NULL. The socket is closed and the memory freed when the last task has
 * left its call; a task terminated inside a call counts as gone (as for
 * pc_sock, picos/sock.h). After a write was terminated midway the stream
 * is out of step (wolfSSL expects that write to be retried): close it. NULL /
 * *tls NULL: no-op. Any thread. */
void pc_tls_close(pc_tls **tls);

#ifdef __cplusplus
}
#endif
#endif
