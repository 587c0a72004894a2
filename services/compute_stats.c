/* services/compute_stats.c — the compute node's counters, read by the
 * status sampler (NodeStatus.compute) and the dashboard's actions.
 *
 * Plain atomics, written by the compute server's tasks (compute_node.c)
 * and read from any thread: no lock, and nothing here when the node takes
 * no computations (enabled stays false). */
#include <string.h>

#include "compute_int.h"

pc__compute_counters pc__compute_stats;

pc_err
pc_compute_node_stats_get(pc_compute_node_stats *out)
{
    pc__compute_counters *c = &pc__compute_stats;

    if (!out)
        return PC_EINVAL;
    memset(out, 0, sizeof *out);
    if (!atomic_load(&c->enabled))
        return PC_OK;
    out->enabled = true;
    out->suspended = atomic_load(&c->suspended);
    out->cpus = atomic_load(&c->cpus);
    out->cpus_reserved = atomic_load(&c->cpus_reserved);
    out->sessions = atomic_load(&c->sessions);
    out->workers = atomic_load(&c->workers);
    out->workers_busy = atomic_load(&c->workers_busy);
    out->jobs_queued = atomic_load(&c->jobs_queued);
    out->jobs_done = atomic_load(&c->jobs_done);
    out->jobs_failed = atomic_load(&c->jobs_failed);
    out->workers_lost = atomic_load(&c->workers_lost);
    return PC_OK;
}

pc_err
pc_compute_node_suspend(bool on)
{
    pc_err (*fn)(bool);

    /* enabled first: its store (after the hook's) orders the hook's read */
    if (!atomic_load(&pc__compute_stats.enabled) ||
        !(fn = pc__compute_stats.suspend))
        return PC_ENOENT;
    return fn(on);
}
