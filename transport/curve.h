/* transport/curve.h — CURVE on the link sockets and the ZAP handler that
 * admits only the cluster's key (internal to transport/).
 *
 * The whole cluster shares one key pair (include/picos/net.h, "cluster
 * keys"). Every ROUTER and PUB is a CURVE server with it; every DEALER and
 * SUB a CURVE client whose own pair is that same pair and whose server key
 * is its public key. A wrong secret gives other keys, so the server cannot
 * open the client's HELLO (ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL,
 * ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC); a client that knows the server's
 * public key but not the secret completes the CURVE handshake with a key
 * pair of its own, and the ZAP handler refuses that key (status 400,
 * ZMQ_EVENT_HANDSHAKE_FAILED_AUTH). Either way nothing of the peer's
 * reaches the application.
 *
 * Threads: everything here is called from the one thread that owns the
 * ZeroMQ sockets (the link thread); nothing blocks.
 */
#ifndef PICOS_TRANSPORT_CURVE_H
#define PICOS_TRANSPORT_CURVE_H

#include <stdint.h>

#include "picos/err.h"
#include "picos/net.h"

/* The ZAP domain every CURVE server socket of picos is in. */
#define PC__ZAP_DOMAIN "picos"

/* Make zsock a CURVE server with k's secret key in the ZAP domain "picos"
 * (and, where libzmq has the option, with that domain enforced, so a
 * missing ZAP handler refuses peers instead of admitting them). Call before
 * zmq_bind(). Returns PC_OK, PC_ENOTSUP (libzmq without CURVE), PC_EINVAL
 * (NULL), PC_ESYS (zmq_setsockopt failed; logged). */
pc_err pc__curve_server(void *zsock, const pc_curve_keys *k);

/* Make zsock a CURVE client of the cluster: server key k->pub, own key pair
 * k. Call before zmq_connect(). Returns like pc__curve_server(). */
pc_err pc__curve_client(void *zsock, const pc_curve_keys *k);

/* ---- ZAP handler (RFC 27) --------------------------------------------------- */

typedef struct pc__zap pc__zap;

/* Bind the ZAP handler of context zctx (a ROUTER on
 * inproc://zeromq.zap.01) admitting k->pub only; k is copied. Must be
 * called before any CURVE server socket of zctx binds: libzmq 4.3 without
 * the draft option ZMQ_ZAP_ENFORCE_DOMAIN admits every CURVE client when no
 * handler is bound. Returns PC_OK, PC_EINVAL, PC_ENOMEM, PC_ESTATE (zctx
 * has a ZAP handler already), PC_ESYS (logged). */
pc_err pc__zap_open(pc__zap **out, void *zctx, const pc_curve_keys *k);

/* ZMQ_FD of the handler's socket, for an ev_io watcher. It is
 * edge-triggered: after every wake call pc__zap_drain(). -1 on error. */
int pc__zap_fd(const pc__zap *z);

/* Answer every pending request (until EAGAIN): "200" for the cluster's
 * key, "400" for any other key, mechanism or domain. A refusal logs one
 * PC_LOG_WARN line with the peer's address, at most one per address per
 * PC__ZAP_WARN_EVERY seconds (the suppressed ones are counted in the next
 * line). Malformed requests (not libzmq's) are dropped and counted as
 * refused. Never blocks. */
void pc__zap_drain(pc__zap *z);

#define PC__ZAP_WARN_EVERY 10.0

/* Requests answered 200 / refused since pc__zap_open(). */
uint64_t pc__zap_accepted(const pc__zap *z);
uint64_t pc__zap_rejected(const pc__zap *z);

/* Close the handler's socket and free it; *z is set to NULL. NULL and
 * *z == NULL are fine. Close it after the CURVE servers it serves. */
void pc__zap_close(pc__zap **z);

#endif
