/* picos/net.h — nodes talking to nodes: ZeroMQ links, CURVE, naming.
 *
 * pc_net_start() plugs picos's ZeroMQ transport into the running node
 * (transport.h): from then on pc_send, pc_deliver, pc_monitor, pc_link,
 * pc_task_terminate and pc_task_join work on refs of connected nodes just
 * as on local ones. A node binds a ROUTER (directed traffic in) and a PUB
 * (its channels out) with pc_node_listen(), and reaches another node with
 * pc_node_connect() — pycos's peer(). docs/PROTOCOL.md is the wire.
 *
 *     pc_node_start(NULL);
 *     pc_net_start(NULL);                      // secret from PICOS_SECRET_FILE
 *     pc_node_listen("tcp://127.0.0.1:0", ep, sizeof ep);
 *     pc_node_connect("tcp://10.0.0.2:9706", 5.0, &peer);
 *     pc_locate_at("tcp://10.0.0.2:9706", "server", 5.0, &ref);
 *     pc_send(ref, &m);                        // reaches the remote task
 *
 * Security is on by default: every link is CURVE-encrypted with the
 * cluster's key pair, derived from a shared secret or read from a key file,
 * and a ZAP handler admits only peers that hold it. A wrong secret is
 * refused before one byte of payload is decoded, and both ends log one
 * line saying so. Plain links only when opts.plain says so (warned).
 *
 * Failure detection: heartbeats both ways; a peer silent for
 * opts.timeout is declared down — monitors of its tasks get DOWN
 * (PC_DOWN_NODE), links fire, pending delivers and joins fail with
 * PC_EUNREACH — and its incarnation is refused from then on (a node that
 * comes back, even after SIGSTOP/SIGCONT, must be a new start).
 */
#ifndef PICOS_NET_H
#define PICOS_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "picos/err.h"
#include "picos/ref.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- cluster keys ---------------------------------------------------------- */

/* A CURVE key pair (Curve25519), raw bytes. */
typedef struct pc_curve_keys {
    uint8_t pub[32];
    uint8_t sec[32];
} pc_curve_keys;

/* Shortest secret accepted, bytes. */
#define PC_SECRET_MIN 16
/* Longest secret read from a file or the environment, bytes. */
#define PC_SECRET_MAX 4096

/* The cluster key pair every node derives from the same secret (`len`
 * bytes, at least PC_SECRET_MIN, any bytes): a keyed BLAKE2b of the secret
 * seeds crypto_box_seed_keypair(). Same secret, same keys, on every
 * machine (the derivation is part of the protocol, docs/transport.md).
 * Returns PC_OK, PC_EINVAL (NULL, too short), PC_ESYS (libsodium failed to
 * initialise). Any thread. */
pc_err pc_curve_from_secret(const void *secret, size_t len, pc_curve_keys *out);

/* A fresh random key pair (for `picos keygen`). Returns PC_OK, PC_EINVAL
 * (NULL), PC_ESYS (libsodium failed to initialise). Any thread. */
pc_err pc_curve_keygen(pc_curve_keys *out);

/* Write k to `path` as a key file (two lines, "public Z85" and "secret
 * Z85", mode 0600, replaced atomically: written beside it, then renamed).
 * Returns PC_OK, PC_EINVAL (NULL or empty path), PC_ENOMEM, PC_ESYS (one
 * line is logged). Any thread. */
pc_err pc_curve_write(const char *path, const pc_curve_keys *k);

/* Read a key file written by pc_curve_write(). Returns PC_OK, PC_EINVAL
 * (NULL), PC_ESYS (can't open or read), PC_EPERM (any permission for group
 * or others: readable leaks the key, writable lets someone choose it),
 * PC_EPROTO (not a regular file, malformed, or the public key is not the
 * secret key's); on error one line saying what is wrong is logged and *out
 * is not touched. Any thread. */
pc_err pc_curve_read(const char *path, pc_curve_keys *out);

/* The cluster secret: read from `file` when not NULL, else from the file
 * named by $PICOS_SECRET_FILE (when set and not empty), else from
 * $PICOS_SECRET. One trailing "\n" or "\r\n" of a file is not part of
 * the secret. Writes at most `size` bytes into buf (not NUL-terminated)
 * and the length into *len. Returns PC_OK, PC_ENOENT (none given),
 * PC_ESYS (can't read the file), PC_EPERM (the file has permissions for
 * group or others), PC_EPROTO (not a regular file), PC_EINVAL (NULL
 * buf/len; empty, shorter than PC_SECRET_MIN, longer than PC_SECRET_MAX or
 * `size`, or holding a NUL byte); on error one line saying what is wrong
 * is logged (never the secret). Any thread. */
pc_err pc_secret_load(const char *file, void *buf, size_t size, size_t *len);

/* ---- the transport ---------------------------------------------------------- */

typedef struct pc_net_opts {
    /* Node name in hellos and logs; NULL: "host:pid". */
    const char *name;
    /* Keys: `keys` when not NULL; else the key file `key_file`; else the
     * secret from `secret_file` / the environment (pc_secret_load()). */
    const pc_curve_keys *keys;
    const char *key_file;
    const char *secret_file;
    /* No CURVE at all (a warning is logged): only when asked for. */
    bool plain;
    /* Heartbeat interval and the silence after which a peer is declared
     * down, seconds; 0: 0.2 and 1.0. */
    double heartbeat;
    double timeout;
    /* Largest frame taken from a peer, bytes (bigger ones are refused by
     * ZeroMQ before allocation and the peer disconnected); 0: 1 MiB. */
    size_t max_frame;
    /* Envelopes queued for one peer before pc_send() to it answers
     * PC_EFULL (the caller keeps its message); 0: 65536. */
    size_t peer_queue;
    /* Where the links run. 0 (the default): on the worker's loop when the
     * node has one worker (its tasks wait for that worker anyway), else a
     * thread of their own, which no task can hold up. PC_WORKER(i): on
     * worker i's own loop, between its procs — a remote message then wakes
     * no thread of ours on the way in or out for a task of that worker (a
     * round trip costs what raw ZeroMQ's does), but the links wait for that
     * worker: a task that keeps it busy holds up every remote message (only
     * the heartbeats go on, from a small thread, so the node is not
     * declared down; a task computing for long belongs on another worker,
     * or in pc_pool). 0 reads $PICOS_NET_LINK_WORKER first: "i" is worker i
     * (modulo the workers), anything else non-empty a thread of their own;
     * PC_NET_LINK_THREAD: a thread of their own whatever the environment
     * and the worker count say. */
    int link_worker;
} pc_net_opts;

#define PC_NET_LINK_THREAD (-1)

#define PC_NET_MAX_FRAME_DEFAULT (1u << 20)

/* Start the ZeroMQ transport on the running node (one I/O thread) and
 * register it. opts may be NULL. Returns PC_OK, PC_ESTATE (no node, or a
 * transport is registered), PC_ENOENT / PC_EPERM / PC_EINVAL / PC_EPROTO
 * (keys: see above; one line is logged), PC_EINVAL (link_worker names no
 * worker of the node), PC_ESYS. Any thread but a light actor's handler
 * (with link_worker it waits for that worker to start the links);
 * pc_node_run() stops it (peers are told goodbye). */
pc_err pc_net_start(const pc_net_opts *opts);

/* Bind the node's ROUTER on `endpoint` ("tcp://ADDR:PORT", port 0 or "*"
 * for any; "ipc://PATH") and its PUB beside it (tcp: any free port of the
 * same address; ipc: PATH.pub). Peers learn both from this node's Hello,
 * so listen on the address they should use (not 0.0.0.0); peers that
 * connected before are told with a second Hello. The ROUTER's bound
 * endpoint is written to `bound` (`size` bytes; may be NULL). One ROUTER
 * per node. Returns PC_OK, PC_ESTATE (no net, or already listening),
 * PC_ESYS (can't bind: address in use, bad endpoint — one line is logged),
 * PC_EINVAL. Any thread. */
pc_err pc_node_listen(const char *endpoint, char *bound, size_t size);

/* Connect to the node listening at `endpoint` and wait up to `timeout`
 * seconds for its hello. *node (may be NULL) gets its node id. Connecting
 * to a node already connected returns at once; timeout 0 answers at once
 * either way (PC_ETIMEDOUT when not connected yet; the link is made in the
 * background). The link reconnects by
 * itself when the connection breaks. Returns PC_OK, PC_ETIMEDOUT (no
 * answer), PC_EAUTH (the CURVE handshake failed: not the same cluster
 * secret; a line says so), PC_EREFUSED (that node's start was declared down
 * here: it must start again), PC_ESTATE, PC_EINVAL (a bad endpoint).
 * Tasks (the task waits) and foreign threads. */
pc_err pc_node_connect(const char *endpoint, double timeout, uint64_t *node);

/* The ref registered as `name` at the node `where` — a node id in hex
 * ("0x..."), or the endpoint it was connected with — waiting up to
 * `timeout` seconds for the answer (the answer needs a round trip: with
 * timeout 0 it is PC_ETIMEDOUT at once, nothing is asked). Returns PC_OK,
 * PC_ENOENT (no such name there), PC_EUNREACH (not a connected node),
 * PC_ETIMEDOUT. Tasks and foreign threads. */
pc_err pc_locate_at(const char *where, const char *name, double timeout,
                    pc_ref *out);

/* Another node's channel: the proxy of channel `name` of the node `where`
 * (as for pc_locate_at()), after asking that node that it exists. Local
 * tasks pc_chan_subscribe() to the proxy; the home node then counts them
 * among its subscribers and sends this node what it publishes, which the
 * proxy fans out here (the home applies its transform once, for all).
 * pc_chan_send() and pc_chan_deliver() on the proxy publish on the home
 * node; a deliver's count covers end-point tasks on every node. The node
 * owns proxies (pc_chan_free only clears the pointer); they live until
 * pc_node_run() ends. Subscribe after the link is up: a link that goes
 * down takes its subscriptions with it. Returns PC_OK, PC_ENOENT (no
 * such channel there), PC_EUNREACH, PC_ETIMEDOUT. Tasks and foreign
 * threads. */
struct pc_chan;
pc_err pc_chan_locate_at(const char *where, const char *name, double timeout,
                         struct pc_chan **out);

/* This node's bound ROUTER and PUB endpoints (pc_node_listen()) into
 * router / pub (`size` bytes each; either may be NULL); "" when it does not
 * listen. Returns PC_OK, PC_ESTATE (no transport), PC_EINVAL. Any
 * thread. */
pc_err pc_net_endpoints(char *router, char *pub, size_t size);

/* Counters of the links, for status and tests. */
typedef struct pc_net_stats {
    uint64_t peers; /* peers up now */
    uint64_t frames_out, frames_in;
    uint64_t env_out, env_in;
    uint64_t refused;     /* envelopes refused (incarnation, malformed) */
    uint64_t dropped;     /* sends lost: peer queue full, peer down */
    uint64_t auth_failed; /* handshakes that failed (wrong key/secret) */
    uint64_t nodes_down;  /* peers declared down */
    uint64_t chan_missed; /* channel publications this node's SUBs missed
                             (sequence gaps: PUB's high-water mark) */
    uint64_t send_stalls; /* frames ZeroMQ refused at a link's high-water
                             mark (a peer not reading): each is tried
                             again after 1 ms, the frames behind it wait */
} pc_net_stats;

pc_err pc_net_stats_get(pc_net_stats *out);

#ifdef __cplusplus
}
#endif
#endif
