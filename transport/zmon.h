/* transport/zmon.h — ZeroMQ socket monitors on the link thread (internal to
 * transport/).
 *
 * A monitor is zmq_socket_monitor() on a fresh inproc://picos-mon-N
 * endpoint plus the PAIR socket that reads it; its ZMQ_FD goes on the link
 * thread's libev loop like the link sockets. Events tell the link what
 * ZeroMQ never reports through messages: handshakes that failed (wrong
 * secret, refused key) and connections lost. All calls are from the thread
 * that owns the monitored socket; nothing blocks.
 */
#ifndef PICOS_TRANSPORT_ZMON_H
#define PICOS_TRANSPORT_ZMON_H

#include <stdint.h>

#include "picos/err.h"

typedef struct pc__zmon pc__zmon;

/* One decoded event: ZMQ_EVENT_*, its value (an fd, errno, ZAP status or
 * ZMQ_PROTOCOL_ERROR_*, per libzmq) and the endpoint it concerns
 * (NUL-terminated, valid during the call only, "" when libzmq gave none). */
typedef void (*pc__zmon_fn)(void *ctx, int event, int value,
                            const char *endpoint);

/* Monitor `events` (a ZMQ_EVENT_* mask) of zsock, a socket of zctx. Call
 * before zsock binds or connects: events that happen before the reading
 * PAIR is connected are lost. Returns PC_OK, PC_EINVAL, PC_ENOMEM, PC_ESYS
 * (logged). */
pc_err pc__zmon_open(pc__zmon **out, void *zctx, void *zsock, int events);

/* ZMQ_FD of the reading PAIR (edge-triggered: call pc__zmon_drain() after
 * every wake). -1 on error. */
int pc__zmon_fd(const pc__zmon *m);

/* Read every pending event (until EAGAIN) and call fn(ctx, ...) for each;
 * malformed ones (not two frames: 6 bytes of u16 event + u32 value, then
 * the endpoint) are dropped. fn may not close m. */
void pc__zmon_drain(pc__zmon *m, pc__zmon_fn fn, void *ctx);

/* A short sentence for an event, for log lines: e.g. "CURVE handshake
 * failed (wrong cluster secret?)" or "peer key refused by ZAP (not the
 * cluster's key)". Never NULL; static storage. Any thread. */
const char *pc__zmon_describe(int event, int value);

/* Stop the monitor, close the reading PAIR and free m; *m is set to NULL
 * (NULL fine). Call it before closing the monitored socket: libzmq's IO
 * thread sends a closing socket's last events with a blocking send, and a
 * PAIR whose reader is gone would hang it. */
void pc__zmon_close(pc__zmon **m);

#endif
