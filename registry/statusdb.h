/* registry/statusdb.h — the registry's store of node statuses: the latest
 * NodeStatus of each member and a history of samples for charts
 * (docs/monitoring.md). In memory only (a restarted registry starts
 * empty: statuses come again within a second).
 *
 * Written by the registry's server task (pc__statusdb_put on each
 * NodeStatus message, pc__statusdb_down when a member goes down), read by
 * the HTTP API (services/api.c) on other tasks and threads: every function
 * takes the db's mutex; readers get copies (packed bytes or their own
 * series), never pointers into the db.
 */
#ifndef PICOS_REGISTRY_STATUSDB_H
#define PICOS_REGISTRY_STATUSDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "picos/err.h"

#include "status.pb-c.h"

typedef struct pc__statusdb pc__statusdb;

/* history: `samples` per node (0: 600, i.e. 10 minutes at 1 s). */
pc_err pc__statusdb_new(size_t samples, pc__statusdb **out);
void pc__statusdb_free(pc__statusdb **db);

/* Take status s (unpacked; copied) of member (node, incarnation), received
 * at registry time now_us. A new incarnation replaces the old one's
 * entry. */
pc_err pc__statusdb_put(pc__statusdb *db, const Picos__V1__NodeStatus *s,
                        uint64_t now_us);

/* Member (node, incarnation) went down at now_us for `reason`. Its last
 * status and history stay (shown as down) for `keep` seconds more. */
void pc__statusdb_down(pc__statusdb *db, uint64_t node, uint64_t incarnation,
                       uint64_t now_us, const char *reason);

/* The latest status of every node as a packed NodeStatusList into a
 * malloc()ed buffer (*out, *len; the caller frees). */
pc_err pc__statusdb_list(pc__statusdb *db, uint8_t **out, size_t *len);

/* One series for charts: of node `node`, the samples newer than since_us,
 * as (t_us, value) pairs computed by `what`: "msgs_sent_rate",
 * "msgs_received_rate", "cpu_available_pct", "rss", "tasks",
 * "jobs_done_rate", "jobs_failed_rate" (NodeStatus.compute; 0 on a node
 * without it), "service_p50_us:NAME", "service_p99_us:NAME",
 * "service_calls_rate:NAME". *t and *v are malloc()ed arrays of *n entries (the
 * caller frees). Returns PC_OK, PC_ENOENT (no such node), PC_EINVAL (unknown
 * what). */
pc_err pc__statusdb_series(pc__statusdb *db, uint64_t node, const char *what,
                           uint64_t since_us, uint64_t **t, double **v,
                           size_t *n);

/* Called (with the db's mutex NOT held) after every put and down, for the
 * SSE streams: at most one callback. */
typedef void (*pc__statusdb_cb)(void *arg, uint64_t node, bool down);
void pc__statusdb_on_change(pc__statusdb *db, pc__statusdb_cb cb, void *arg);

/* The statuses of the registry running on this node (server.c; the HTTP
 * API reads them), or NULL when none runs. The db lives from
 * pc_registry_start() until pc_registry_stop() returns: stop its readers
 * (the HTTP server) before the registry. Any thread. */
pc__statusdb *pc__registry_statusdb(void);

#endif
