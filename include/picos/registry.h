/* picos/registry.h — the cluster: joining registries, names across nodes,
 * membership.
 *
 * A registry (picos-registry, registry_server.h) is a picos node with a
 * well-known endpoint. A node joins one or several with pc_cluster_start()
 * (or pc_cluster_join() on a node already running): it tells them who it is
 * and where it listens, heartbeats through its links, and from then on
 *
 *   - pc_register(name, ref) registers the name on this node *and*
 *     cluster-wide (kind PC_NAME_TASK); pc_name_register() does any kind;
 *   - pc_locate(kind, name, timeout, &ref) finds a name anywhere in the
 *     cluster, waiting until it appears or the timeout passes (PC_ENOENT
 *     and PC_ETIMEDOUT are different answers), connects to the owner node
 *     and caches the answer until the name goes;
 *   - pc_cluster_watch(task) sends the task a message for every node that
 *     comes up or goes down (pycos peer_status).
 *
 * Names die with their node's start (incarnation): when a node is declared
 * down (link timeout), leaves, or starts again, its names are removed and
 * every node is told. Messages between nodes never pass through the
 * registry; the registry only says where. docs/registry.md has the
 * consistency model for several registries and the on-disk format.
 *
 *     pc_cluster_opts o = {.registries = "tcp://10.0.0.1:9705"};
 *     pc_cluster_start(&o);                       // node + net + listen + join
 *     pc_register("server", pc_self());           // from a task
 *     ...
 *     pc_locate(PC_NAME_TASK, "server", 5.0, &ref); // on another node
 *     pc_send(ref, &m);
 *
 * Every call takes a timeout (0: don't wait, negative: forever); a registry
 * that is down gives PC_EUNREACH at once, never a hang. Calls may be made
 * from tasks (the task waits) and from foreign threads. Timeout 0 means
 * "don't wait for anything to happen at the registry": the request is
 * sent once and its answer waited for at most one round trip (1 s); so
 * pc_locate(..., 0, ...) answers PC_OK or PC_ENOENT. A registry that goes
 * down is noticed by the links (its node declared down after the link
 * timeout): then calls in flight move to the next registry or fail with
 * PC_EUNREACH. docs/registry.md, "The client", has the details.
 */
#ifndef PICOS_REGISTRY_H
#define PICOS_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "picos/err.h"
#include "picos/msg.h"
#include "picos/net.h"
#include "picos/node.h"
#include "picos/ref.h"
#include "picos/task.h" /* PC_NAME_MAX */

#ifdef __cplusplus
extern "C" {
#endif

/* The registry's default endpoint. */
#define PC_REGISTRY_DEFAULT "tcp://127.0.0.1:9705"
/* The name of the registry's server task on the registry node. */
#define PC_REGISTRY_TASK "picos.registry"
/* Longest endpoint kept for a node, not counting the NUL. */
#define PC_ENDPOINT_MAX 255

/* What a name names. */
typedef enum pc_name_kind {
    PC_NAME_TASK = 0,    /* a task or light actor */
    PC_NAME_CHANNEL = 1, /* a channel (the ref is its home node, id 0) */
    PC_NAME_SERVICE = 2, /* a Remote Pico Service */
} pc_name_kind;

/* "task", "channel", "service". */
const char *pc_name_kind_str(pc_name_kind kind);

typedef struct pc_cluster_opts {
    /* pc_cluster_start() only: the node's own options. */
    pc_node_opts node;
    /* The transport (name, secret or keys, heartbeat, timeout, ...). */
    pc_net_opts net;
    /* Registry endpoints, comma-separated; NULL: $PICOS_REGISTRY, else
     * PC_REGISTRY_DEFAULT. */
    const char *registries;
    /* This node's ROUTER; NULL: "tcp://127.0.0.1:0"; "": don't listen (a
     * client that only calls others: others can't connect to it). An
     * already listening node keeps its endpoint. */
    const char *listen;
    /* How long pc_cluster_join() waits for the first registry to answer;
     * 0: 5 s; negative: for ever. The other registries are joined in the
     * background. */
    double join_timeout;
    /* The timeout pc_register() uses for its cluster-wide part (it takes
     * none of its own); 0: 5 s; negative: for ever. */
    double register_timeout;
    /* How often the node sends its NodeStatus (proto/status.proto,
     * docs/monitoring.md) to every joined registry; 0: 1 s; negative:
     * never. */
    double status_interval;
    /* The directory whose file system's free space the NodeStatus reports
     * (where the node keeps its data); NULL: the working directory. */
    const char *status_dir;
} pc_cluster_opts;

/* Join the cluster from a running node: start the transport when it is not
 * started (o->net), listen (o->listen), connect to every registry, join
 * them, and wait up to o->join_timeout for the first to accept. The other
 * registries are joined as they answer; a registry that goes away is joined
 * again when it comes back, with every name this node holds. Names given
 * to pc_register() before the join returned stay this node's own (register
 * them after it, or with pc_name_register()). A failed join leaves the
 * transport and the listening socket it started. o may be NULL.
 * Returns PC_OK, PC_ESTATE (no node, or joined already), PC_EINVAL (bad
 * endpoints), PC_EUNREACH (no registry answered in time: one line names
 * them), PC_EAUTH (a registry refused our key: wrong cluster secret), or an
 * error of pc_net_start() / pc_node_listen() (keys, address in use). Tasks
 * and foreign threads. */
pc_err pc_cluster_join(const pc_cluster_opts *o);

/* pc_node_start(&o->node) then pc_cluster_join(o): a node with registries
 * and a secret in one call. On an error of the join the node is stopped
 * again. Not from a worker thread. */
pc_err pc_cluster_start(const pc_cluster_opts *o);

/* True once pc_cluster_join() succeeded (until pc_node_run() ends). */
bool pc_cluster_joined(void);

/* ---- names ------------------------------------------------------------------- */

/* Register `name` of `kind` for `ref` cluster-wide (ref must be of this
 * node; for PC_NAME_CHANNEL a channel made here with pc_chan_new(name),
 * ref ignored). Every registry reachable gets it; it succeeds when at least
 * one accepted and none refused (a refusal undoes the others). Returns
 * PC_OK, PC_EEXIST (another owner has it: one line names it), PC_EUNREACH
 * (no registry reachable), PC_ETIMEDOUT, PC_ESTATE (not joined),
 * PC_EINVAL. Tasks and foreign threads. */
pc_err pc_name_register(pc_name_kind kind, const char *name, pc_ref ref,
                        double timeout);

/* Drop a name this node registered. Returns PC_OK, PC_ENOENT (not ours or
 * not there), PC_EUNREACH, PC_ETIMEDOUT, PC_ESTATE, PC_EINVAL. */
pc_err pc_name_unregister(pc_name_kind kind, const char *name, double timeout);

/* The ref registered as `name` of `kind` anywhere in the cluster, waiting up
 * to `timeout` seconds for it to be registered; the owner node is connected
 * before this returns, so a pc_send() to the ref goes straight there.
 * Answers come from a cache when this node asked before and the name has
 * not gone since. Returns PC_OK, PC_ENOENT (timeout 0 and no such name),
 * PC_ETIMEDOUT (it did not appear in time), PC_EUNREACH (no registry
 * reachable, or the owner node can't be reached), PC_ESTATE (not joined),
 * PC_EINVAL. Tasks and foreign threads. From a task the lookup goes
 * straight from it to the registry and its reply is taken by selective
 * receive (docs/registry.md): a reply that comes after the call gave up
 * (a registry stalled past the deadline) arrives later as a
 * "picos.v1.RegReply" message, which the task should ignore. */
pc_err pc_locate(pc_name_kind kind, const char *name, double timeout,
                 pc_ref *out);

/* Message type of the answers of pc_locate_send(). */
#define PC_MSG_LOCATED "picos.located"

/* pc_locate() without waiting, for many lookups in flight from one task
 * (the actor way): sends the lookup and returns at once; the answer comes
 * later to the calling task (or light actor) as one PC_MSG_LOCATED
 * message, read with pc_located_parse(), carrying `tag` (the caller's, to
 * tell answers apart; they may come in any order). Exactly one answer per
 * call that returned PC_OK: PC_OK with the ref (from the cache: at once),
 * PC_ENOENT (timeout 0 and no such name), PC_ETIMEDOUT (it did not appear
 * in time: `timeout` as for pc_locate(), the answer comes by then),
 * PC_EUNREACH (no registry up, or the one asked went down and no other is
 * up), PC_ESTATE (the cluster client ended). Unlike pc_locate(), an OK
 * answer does not wait for the owner node's link: it is started in the
 * background (a pc_send() right away may find it not yet connected; a
 * pc_node_connect() of its endpoint waits for it). Returns PC_OK (the
 * answer will come), PC_ESTATE (not joined), PC_EINVAL (bad kind or name,
 * or not called from a task or light actor), PC_ENOMEM. Tasks and light
 * actors (it never waits). */
pc_err pc_locate_send(pc_name_kind kind, const char *name, double timeout,
                      uint64_t tag);

/* Parse a PC_MSG_LOCATED: its tag, the lookup's result (PC_OK, PC_ENOENT,
 * PC_ETIMEDOUT, PC_EUNREACH, PC_ESTATE) and, when PC_OK, the ref (else
 * nil). Any pointer may be NULL. Returns PC_OK, or PC_EINVAL (not one, or
 * not sent by this node). */
pc_err pc_located_parse(const pc_msg *m, uint64_t *tag, pc_err *rc,
                        pc_ref *ref);

/* A channel registered cluster-wide (PC_NAME_CHANNEL): pc_locate() then
 * pc_chan_locate_at() on its node (see net.h for what a proxy is). */
struct pc_chan;
pc_err pc_chan_locate(const char *name, double timeout, struct pc_chan **out);

/* ---- membership ------------------------------------------------------------ */

typedef struct pc_node_info {
    uint64_t node, incarnation;
    char name[PC_NAME_MAX + 1];
    char host[256];
    uint32_t pid;
    char endpoint[PC_ENDPOINT_MAX + 1]; /* "" when it does not listen */
    char pub_endpoint[PC_ENDPOINT_MAX + 1];
    double joined; /* registry's wall clock, seconds since the epoch */
    bool up;       /* false: down, or not yet back after a registry restart */
} pc_node_info;

/* Message type of membership events (pc_cluster_watch()). */
#define PC_MSG_NODE_EVENT "picos.node_event"

typedef struct pc_node_event {
    bool up;
    pc_node_info node;
    char reason[128]; /* down: why ("silent for 1.1 s", "left", ...) */
} pc_node_event;

/* Parse a PC_MSG_NODE_EVENT message. Returns PC_OK, PC_EINVAL (not one). */
pc_err pc_node_event_parse(const pc_msg *m, pc_node_event *out);

/* Send `watcher` a PC_MSG_NODE_EVENT for every member up now, then one for
 * each node that comes up or goes down, until pc_cluster_unwatch() or the
 * watcher ends. A node is "down" once every registry that knew it says so.
 * Returns PC_OK, PC_ESTATE (not joined), PC_EINVAL. Any thread. */
pc_err pc_cluster_watch(pc_ref watcher);
pc_err pc_cluster_unwatch(pc_ref watcher);

/* ---- lists (picos ls, picos status) ----------------------------------------- */

typedef struct pc_name_info {
    pc_name_kind kind;
    char name[PC_NAME_MAX + 1];
    pc_ref ref;
    char node_name[PC_NAME_MAX + 1];
    char endpoint[PC_ENDPOINT_MAX + 1];
    double claimed; /* owner's wall clock at the first claim, seconds */
} pc_name_info;

typedef struct pc_registry_info {
    uint64_t node, incarnation;
    char name[PC_NAME_MAX + 1];
    char endpoint[PC_ENDPOINT_MAX + 1];
    char data_dir[256];
    double started; /* wall clock, seconds since the epoch */
    uint32_t nodes_up, names;
    uint64_t log_bytes;
    bool recovering;
} pc_registry_info;

/* Every member the first reachable registry knows: a malloc'd array in *out
 * (free() it), its length in *n. Returns PC_OK, PC_EUNREACH, PC_ETIMEDOUT,
 * PC_ESTATE, PC_ENOMEM. */
pc_err pc_cluster_nodes(pc_node_info **out, size_t *n, double timeout);

/* Every name (of `kind`, or of all kinds when kind < 0), as
 * pc_cluster_nodes(). */
pc_err pc_cluster_names(int kind, pc_name_info **out, size_t *n,
                        double timeout);

/* The state of the registry at `endpoint` (NULL: the first reachable one
 * this node joined; otherwise one of the registries this node joined, as
 * given to pc_cluster_join(): another is PC_EUNREACH). Returns PC_OK,
 * PC_EUNREACH, PC_ETIMEDOUT, PC_ESTATE. */
pc_err pc_registry_status(const char *endpoint, pc_registry_info *out,
                          double timeout);

/* Counters of this node's registry client, for status, benchmarks and
 * tests. */
typedef struct pc_cluster_stats {
    uint64_t locates;    /* pc_locate() calls */
    uint64_t cache_hits; /* of them answered from the cache */
    uint64_t requests;   /* requests sent to registries */
    uint64_t rejoins;    /* JOINs after a registry came back */
    uint64_t names_lost; /* names given up to an earlier claim */
    uint64_t regs_up;    /* registries joined now */
} pc_cluster_stats;

/* The counters into *out. Returns PC_OK, PC_ESTATE (not joined),
 * PC_EINVAL. Any thread. */
pc_err pc_cluster_stats_get(pc_cluster_stats *out);

/* The latest NodeStatus of every member the first joined registry knows
 * (RegOp NODES_STATUS), waiting up to `timeout`: *out is a message of type
 * "picos.v1.NodeStatusList" (proto/status.proto; the caller's, free with
 * pc_msg_free()). Returns PC_OK, PC_ETIMEDOUT, PC_EUNREACH, PC_ESTATE (not
 * joined), PC_ENOMEM. Tasks and foreign threads. */
pc_err pc_cluster_nodes_status(double timeout, pc_msg **out);

#ifdef __cplusplus
}
#endif
#endif
