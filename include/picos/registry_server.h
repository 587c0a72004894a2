/* picos/registry_server.h — the registry itself, run on a node.
 *
 * picos-registry is a thin main around this; a program may embed a
 * registry in its own node the same way. The registry's server task
 * (registered on the node as PC_REGISTRY_TASK) keeps the members and the
 * names, answers the agents of registry.h, tells watchers, and writes every
 * change to an append-only log in the data dir (fsynced before a
 * registration is acknowledged, replayed at start, compacted as it grows;
 * docs/registry.md has the format). After a restart the members of the log
 * are "recovering" until they join again (their agents do so by
 * themselves) or `grace` passes; then the names of the ones that did not
 * come back are dropped.
 */
#ifndef PICOS_REGISTRY_SERVER_H
#define PICOS_REGISTRY_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "picos/err.h"
#include "picos/net.h"
#include "picos/registry.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pc_registry_opts {
    /* The ROUTER endpoint; NULL: PC_REGISTRY_DEFAULT. Port 0 picks one
     * (written back through pc_registry_start()'s `bound`). */
    const char *listen;
    /* The directory of the log (registry.log); it must exist and be
     * writable. Required. */
    const char *data_dir;
    /* The transport: secret, name, heartbeat and timeout. */
    pc_net_opts net;
    /* After a restart: seconds the log's members have to join again;
     * 0: 3 x the link timeout + 2 s. */
    double grace;
    /* Compact the log when it is bigger than this and than twice the live
     * state; 0: 64 MiB. */
    uint64_t compact_bytes;
    /* The most names one node's JOIN may carry (all its chunks together,
     * docs/registry.md): a JOIN over it is refused (BAD_REQUEST), so a
     * node can't make the registry hold unbounded memory. 0:
     * PC_REGISTRY_MAX_NODE_NAMES. */
    size_t max_node_names;
} pc_registry_opts;

#define PC_REGISTRY_MAX_NODE_NAMES ((size_t)1000000)

/* Start a registry on the running node: open and replay the log, start the
 * transport, listen, and spawn the server task. The bound endpoint is
 * written to `bound` (`size` bytes; may be NULL). Returns PC_OK, PC_ESTATE
 * (no node, or a registry runs), PC_EINVAL (no data dir), PC_ESYS (the data
 * dir is unusable, or the endpoint can't be bound — address in use: one
 * line says which), PC_EPROTO (the log is corrupt: one line names the file
 * and the offset; it is never served), or the key errors of pc_net_start().
 * Not from a task. */
pc_err pc_registry_start(const pc_registry_opts *o, char *bound, size_t size);

/* What the log held when the running registry started: its members (all
 * "recovering" until they join again) and names, for the daemon's startup
 * line. Returns PC_OK, PC_ESTATE (none runs). Any thread. */
pc_err pc_registry_replayed(size_t *nodes, size_t *names);

/* Stop the registry: the server task flushes the log, tells its members
 * goodbye and ends. Waits up to `timeout` seconds. Returns PC_OK, PC_ESTATE
 * (none runs), PC_ETIMEDOUT. Not from a task. */
pc_err pc_registry_stop(double timeout);

#ifdef __cplusplus
}
#endif
#endif
