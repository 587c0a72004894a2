/* apps/picos/topview.h — what `picos top` and `picos status` show of a
 * NodeStatusList (proto/status.proto, docs/monitoring.md), as text: no
 * terminal, no cluster, so it is tested alone with hand-built lists
 * (tests/test_top.c).
 *
 * Rates (messages and calls per second) need two samples of the same node:
 * a top_mem remembers, per node, the counters of the last two distinct
 * samples it was given (a status fetched twice, when the CLI asks more
 * often than the node reports, is one sample). Everything here runs on
 * the caller's thread; a top_mem is single-threaded.
 */
#ifndef PICOS_APPS_TOPVIEW_H
#define PICOS_APPS_TOPVIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli.h"
#include "status.pb-c.h"

typedef struct top_mem top_mem;

/* A new, empty memory; NULL: no memory. */
top_mem *top_mem_new(void);
void top_mem_free(top_mem **m);

/* Take the samples of l (the entries with a status): a node's counters
 * become its latest sample when they are newer than the one kept (the
 * kept one becomes the base of its rates); nodes no longer in l are
 * forgotten. false: out of memory (the memory stays usable, some rates
 * unknown). */
bool top_mem_update(top_mem *m, const Picos__V1__NodeStatusList *l);

/* The rates of node status s per second from the two samples m holds for
 * it (s must be the latest given). false, and the rates untouched, when
 * they are not known (one sample, a restarted node, m NULL). */
typedef struct top_rates {
    double sent, received; /* messages */
    double calls;          /* calls accepted, all services */
    double jobs;           /* computations' jobs ended (NodeStatus.compute);
                              -1 on a node that takes none */
} top_rates;
bool top_node_rates(const top_mem *m, const Picos__V1__NodeStatus *s,
                    top_rates *out);

/* Calls per second of service `name` of node s; false when not known. */
bool top_service_rate(const top_mem *m, const Picos__V1__NodeStatus *s,
                      const char *name, double *out);

/* The entries shown, as indices into l->nodes, sorted by name then node
 * id: those with a status, except the node `self` and the picos CLI's
 * own (CLI_NODE_PREFIX). Returns how many (idx holds l->n_nodes). */
size_t top_order(const Picos__V1__NodeStatusList *l, uint64_t self,
                 size_t *idx);

/* The node table of the entries idx[0..n) of l at wall-clock time now_us
 * (to tell how old each status is), one row each: NAME, STATE (up,
 * DOWN), CPU (available), MEM (available), RSS, TASKS, SENT/S, RECV/S,
 * CALLS/S, P99 (the highest of its services' p99 over the last
 * interval), AGE (since the registry got the status), NODE ID, NOTE (why
 * it is down, and since when). When any of them takes computations
 * (NodeStatus.compute), JOBS/S and BUSY (workers busy / CPUs, "-" on the
 * others) come after P99. `brief`: without the rate, latency and compute
 * columns (picos status). NULL: no memory. */
cli_table *top_nodes_table(const Picos__V1__NodeStatusList *l,
                           const size_t *idx, size_t n, const top_mem *m,
                           uint64_t now_us, bool brief);

/* Totals of the entries idx[0..n): one line "N nodes: U up, D down |
 * tasks T | msg/s sent X, received Y | calls/s Z" into buf, and, when
 * any computes, " | compute: C nodes, busy B/P, jobs/s J, done D,
 * failed F" (the compute nodes that are up). */
void top_totals(const Picos__V1__NodeStatusList *l, const size_t *idx, size_t n,
                const top_mem *m, char *buf, size_t size);

/* The detail of one entry as text (malloc'd, lines ending in '\n'; NULL:
 * no memory): the node, its machine and counters, then its services,
 * channels, peers and deepest mailboxes, each a table. */
char *top_detail(const Picos__V1__NodeStatusEntry *e, const top_mem *m,
                 uint64_t now_us);

/* Compact units for narrow columns: "3.2G", "512M", "870B". */
char *top_fmt_bytes(uint64_t v, char *buf, size_t size);
/* A rate: "-" when negative (unknown), "12.5", "3.4k", "1.2M". */
char *top_fmt_rate(double v, char *buf, size_t size);
/* A latency in µs: "-" for 0 (no calls), "850us", "12.3ms", "1.25s". */
char *top_fmt_us(uint64_t us, char *buf, size_t size);
/* An age in seconds: "0.4s", "12s", "5m", "3h". */
char *top_fmt_age(double s, char *buf, size_t size);

#endif
