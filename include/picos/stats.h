/* picos/stats.h — what a node counts about itself, for monitoring
 * (docs/monitoring.md; proto/status.proto carries it to the registry).
 *
 * Counters are totals since the node started; gauges are values now.
 * Reading them is cheap and never blocks the runtime: each worker keeps
 * its own counters (written by their worker only, read with relaxed
 * atomics), and a reader sums them. A reader may see a total a few
 * events behind; never a torn or decreasing one. Any thread.
 */
#ifndef PICOS_STATS_H
#define PICOS_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "picos/err.h"
#include "picos/ref.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pc_node_stats {
    uint32_t workers;
    uint64_t tasks;         /* tasks alive now */
    uint64_t actors;        /* light actors alive now */
    uint64_t spawned;       /* tasks and actors started, total */
    uint64_t msgs_sent;     /* messages sent by this node's tasks, total
                               (local and remote): pc_send*() and
                               pc_deliver() calls that returned PC_OK, from
                               tasks and foreign threads (not channel
                               fan-out, not the runtime's DOWN/EXIT) */
    uint64_t msgs_received; /* messages taken from mailboxes, total:
                               pc_recv*() and light-actor handler calls */
    uint64_t msgs_dropped;  /* dropped: PC_MB_DROP mailboxes full, dead
                               targets (mail that reached its target's
                               worker after the target ended), total */
    uint64_t msgs_refused;  /* refused: PC_MB_FAIL mailboxes full (and
                               PC_MB_BLOCK sends that could not wait or
                               timed out), PC_EFULL to a peer, total */
} pc_node_stats;

/* This node's runtime counters. Returns PC_OK, PC_ESTATE (no node),
 * PC_EINVAL. */
pc_err pc_node_stats_get(pc_node_stats *out);

typedef struct pc_mbox_depth {
    pc_ref task;
    size_t depth;
} pc_mbox_depth;

/* The (at most) `max` deepest non-empty mailboxes of this node's tasks
 * and actors, deepest first, into out[]; returns how many. Walks every
 * task: meant for a status sample a second, not a hot path. Each worker
 * walks its own procs (a request to it, answered within 0.5 s or left
 * out); from a light actor's handler, which can't wait, only its own
 * worker's. (The type is pc_mbox_depth: pc_mailbox_depth() is taken.) */
size_t pc_node_deepest(pc_mbox_depth *out, size_t max);

typedef struct pc_peer_stats {
    uint64_t node; /* 0 while it has not said hello */
    char name[128];
    char endpoint[256];
    bool up;
    double heartbeat_age; /* seconds since its last frame */
    uint32_t queue;       /* envelopes waiting to go to it */
} pc_peer_stats;

/* The link to each peer of this node, at most `max`, into out[]; returns
 * how many there are (may be more than max). 0 without a transport. */
size_t pc_net_peers_get(pc_peer_stats *out, size_t max);

typedef struct pc_rps_stats {
    char name[256];
    uint32_t version;
    uint64_t calls;    /* accepted, total */
    uint64_t failures; /* ended other than normally, total */
    uint64_t refused;  /* busy, bad request, expired, total */
    uint32_t running, queued;
    bool suspended;
    /* latency (accepted to ended) of the calls that ended since the
     * previous pc_rps_stats_all(..., true): µs, 0 when none */
    uint32_t p50_us, p90_us, p99_us, max_us;
} pc_rps_stats;

/* Every service open on this node, at most `max`, into out[]; returns how
 * many there are. With `take_latency`, the latency window restarts (the
 * status sampler does this once per interval; others pass false). */
size_t pc_rps_stats_all(pc_rps_stats *out, size_t max, bool take_latency);

typedef struct pc_chan_node_stats {
    char name[256];
    uint64_t published, delivered, dropped;
    uint32_t subscribers;
} pc_chan_node_stats;

/* Every named channel whose home is this node, at most `max`, into out[];
 * returns how many there are. */
size_t pc_chan_stats_all(pc_chan_node_stats *out, size_t max);

/* ---- computations (docs/computations.md) --------------------------------- */

/* This node's compute side (picos-node --compute): what NodeStatus.compute
 * reports. The compute server (services/compute_node.c) keeps the counters
 * with pc__compute_stats (services/compute_stats.c). */
typedef struct pc_compute_node_stats {
    bool enabled;           /* this node takes computations */
    bool suspended;         /* takes no new jobs now */
    uint32_t cpus;          /* worker processes it may run, all clients */
    uint32_t cpus_reserved; /* reserved by computations now */
    uint32_t sessions;      /* computations open on it */
    uint32_t workers;       /* worker processes up */
    uint32_t workers_busy;  /* running a job */
    uint32_t jobs_queued;   /* sent to it, waiting for a worker */
    uint64_t jobs_done;     /* ended, total (every why) */
    uint64_t jobs_failed;   /* ended other than OK, total */
    uint64_t workers_lost;  /* worker processes that died, total */
} pc_compute_node_stats;

/* Fill *out (all zero, enabled false, when this node is not a compute
 * node). Returns PC_OK, PC_EINVAL. Any thread. */
pc_err pc_compute_node_stats_get(pc_compute_node_stats *out);

/* Suspend (on) or resume (off) every computation on this node, as the
 * dashboard's suspend action does: running jobs finish, no new ones start.
 * Returns PC_OK, PC_ENOENT (not a compute node). Any thread. */
pc_err pc_compute_node_suspend(bool on);

#ifdef __cplusplus
}
#endif

#endif
