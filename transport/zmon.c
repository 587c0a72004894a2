/* transport/zmon.c — socket monitors read on the link thread.
 *
 * zmq_socket_monitor() makes libzmq publish a socket's events on an inproc
 * PAIR it binds; we connect our own PAIR to it at once and read it without
 * blocking, so the link thread learns of failed handshakes (the only place
 * a wrong secret or a refused key shows) and lost connections. Endpoints
 * are inproc://picos-mon-N with N from a process-wide counter, unique in
 * every context. An event is two frames: 6 bytes (u16 event, u32 value, in
 * host order) and the endpoint; anything else is dropped whole, and the
 * endpoint is copied (truncated) into a NUL-terminated buffer before the
 * callback sees it.
 */
#include "zmon.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "picos/log.h"

/* Longest endpoint passed to the callback (an ipc path is < 108 bytes). */
#define EP_MAX 512

struct pc__zmon {
    void *pair;
    void *sock; /* the socket watched */
};

static atomic_uint_fast64_t mon_seq;

pc_err
pc__zmon_open(pc__zmon **out, void *zctx, void *zsock, int events)
{
    char ep[64];
    pc__zmon *m;
    int zero = 0;

    if (!out || !zctx || !zsock)
        return PC_EINVAL;
    m = calloc(1, sizeof *m);
    if (!m)
        return PC_ENOMEM;
    snprintf(ep, sizeof ep, "inproc://picos-mon-%llu",
             (unsigned long long)atomic_fetch_add(&mon_seq, 1));
    if (zmq_socket_monitor(zsock, ep, events) != 0) {
        PC_LOG_ERROR("net", "zmq_socket_monitor(%s): %s", ep,
                     zmq_strerror(errno));
        free(m);
        return PC_ESYS;
    }
    m->sock = zsock;
    m->pair = zmq_socket(zctx, ZMQ_PAIR);
    /* RCVHWM 0 makes the inproc pipe unbounded: libzmq's IO thread sends
     * events with a blocking send, so a full pipe would stall every socket
     * it serves; the link thread drains at least once a tick */
    if (!m->pair || (zmq_setsockopt(m->pair, ZMQ_LINGER, &zero, sizeof zero),
                     zmq_setsockopt(m->pair, ZMQ_RCVHWM, &zero, sizeof zero),
                     zmq_connect(m->pair, ep) != 0)) {
        PC_LOG_ERROR("net", "monitor %s: %s", ep, zmq_strerror(errno));
        if (m->pair)
            zmq_close(m->pair);
        zmq_socket_monitor(zsock, NULL, 0);
        free(m);
        return PC_ESYS;
    }
    *out = m;
    return PC_OK;
}

int
pc__zmon_fd(const pc__zmon *m)
{
    int fd = -1;
    size_t n = sizeof fd;

    if (!m || zmq_getsockopt(m->pair, ZMQ_FD, &fd, &n) != 0)
        return -1;
    return fd;
}

static bool
rcvmore(void *sock)
{
    int more = 0;
    size_t n = sizeof more;

    return zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &n) == 0 && more;
}

/* Read the rest of a message and drop it. */
static void
skip_rest(void *sock)
{
    while (rcvmore(sock)) {
        zmq_msg_t f;

        zmq_msg_init(&f);
        if (zmq_msg_recv(&f, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&f);
            return;
        }
        zmq_msg_close(&f);
    }
}

void
pc__zmon_drain(pc__zmon *m, pc__zmon_fn fn, void *ctx)
{
    if (!m)
        return;
    for (;;) {
        char ep[EP_MAX];
        zmq_msg_t f;
        uint16_t event;
        uint32_t value;
        size_t n;
        bool ok;

        zmq_msg_init(&f);
        if (zmq_msg_recv(&f, m->pair, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&f);
            if (errno == EINTR)
                continue;
            return;
        }
        ok = zmq_msg_size(&f) == 6 && zmq_msg_more(&f);
        if (ok) {
            memcpy(&event, zmq_msg_data(&f), sizeof event);
            memcpy(&value, (const char *)zmq_msg_data(&f) + 2, sizeof value);
        }
        zmq_msg_close(&f);
        if (!ok) {
            skip_rest(m->pair);
            continue;
        }
        zmq_msg_init(&f);
        if (zmq_msg_recv(&f, m->pair, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&f);
            continue;
        }
        n = zmq_msg_size(&f);
        if (n >= sizeof ep)
            n = sizeof ep - 1;
        memcpy(ep, zmq_msg_data(&f), n);
        ep[n] = '\0';
        ok = !zmq_msg_more(&f);
        zmq_msg_close(&f);
        if (!ok) {
            skip_rest(m->pair);
            continue;
        }
        if (fn)
            fn(ctx, event, (int)value, ep);
    }
}

const char *
pc__zmon_describe(int event, int value)
{
    switch (event) {
    case ZMQ_EVENT_CONNECTED:
        return "connected";
    case ZMQ_EVENT_CONNECT_DELAYED:
        return "connect delayed";
    case ZMQ_EVENT_CONNECT_RETRIED:
        return "connect retried";
    case ZMQ_EVENT_LISTENING:
        return "listening";
    case ZMQ_EVENT_BIND_FAILED:
        return "bind failed";
    case ZMQ_EVENT_ACCEPTED:
        return "connection accepted";
    case ZMQ_EVENT_ACCEPT_FAILED:
        return "accept failed";
    case ZMQ_EVENT_CLOSED:
        return "closed";
    case ZMQ_EVENT_CLOSE_FAILED:
        return "close failed";
    case ZMQ_EVENT_DISCONNECTED:
        return "disconnected";
    case ZMQ_EVENT_MONITOR_STOPPED:
        return "monitor stopped";
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        return "handshake succeeded";
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        /* What a client with the wrong secret sees: the server, unable
         * to open its HELLO, hangs up (EPIPE, ECONNRESET). */
        return "handshake cut off (wrong cluster secret, or the peer went "
               "away)";
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        switch ((unsigned)value) {
        case ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
            return "CURVE handshake failed (wrong cluster secret?)";
        case ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
            return "security mechanism mismatch (one side without CURVE?)";
        case ZMQ_PROTOCOL_ERROR_ZAP_UNSPECIFIED:
        case ZMQ_PROTOCOL_ERROR_ZAP_MALFORMED_REPLY:
        case ZMQ_PROTOCOL_ERROR_ZAP_BAD_REQUEST_ID:
        case ZMQ_PROTOCOL_ERROR_ZAP_BAD_VERSION:
        case ZMQ_PROTOCOL_ERROR_ZAP_INVALID_STATUS_CODE:
        case ZMQ_PROTOCOL_ERROR_ZAP_INVALID_METADATA:
            return "bad answer from the ZAP handler";
        default:
            return "handshake failed (ZMTP protocol error: not a picos "
                   "peer?)";
        }
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        switch (value) {
        case 400:
            return "peer key refused by ZAP (not the cluster's key)";
        case 300:
            return "authentication failed for now (ZAP 300)";
        case 500:
            return "ZAP handler error (500)";
        default:
            return "authentication failed";
        }
    default:
        return "unknown socket event";
    }
}

void
pc__zmon_close(pc__zmon **mp)
{
    pc__zmon *m = mp ? *mp : NULL;

    if (!m)
        return;
    /* stop the monitor before our end goes: libzmq would go on sending
     * the socket's last events (DISCONNECTED while it closes) into a PAIR
     * with no peer, and that blocking send hangs its IO thread, and with
     * it every link of the node */
    zmq_socket_monitor(m->sock, NULL, 0);
    zmq_close(m->pair);
    free(m);
    *mp = NULL;
}
