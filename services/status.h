/* services/status.h — a node's NodeStatus sampler (internal; the registry
 * agent, registry/agent.c, sends what it makes every status interval).
 *
 * A sampler remembers the previous sample's CPU counters, so the CPU
 * shares it reports are over the interval between two samples (the first:
 * since the sampler was made). One owner (the agent task): not for
 * concurrent use.
 */
#ifndef PICOS_SERVICES_STATUS_H
#define PICOS_SERVICES_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include "picos/err.h"

/* What a NodeStatus may hold: the registry drops a status past these
 * (registry/regreq.c), the sampler cuts its lists to them. */
#define PC__STATUS_MAX_LIST 1024 /* services, channels, peers */
#define PC__STATUS_MAX_DEEPEST 10
#define PC__STATUS_MAX_PATH 4096 /* data_dir */

typedef struct pc__status_sampler pc__status_sampler;

/* A sampler for this node: its `name` and `host` as it joined, the
 * directory whose free space it reports (NULL or "": the current
 * directory, resolved now), and the interval it is sampled at (reported
 * as interval_ms). Returns PC_OK, PC_EINVAL, PC_ENOMEM. */
pc_err pc__status_sampler_new(const char *name, const char *host,
                              const char *data_dir, double interval,
                              pc__status_sampler **out);
void pc__status_sampler_free(pc__status_sampler **s);

/* Take one sample: a packed picos.v1.NodeStatus in a malloc()ed *out of
 * *len bytes (the caller frees). What can't be read (a /proc file missing)
 * stays 0. Lists are cut to the bounds above.
 * Returns PC_OK, PC_ENOMEM. */
pc_err pc__status_sample(pc__status_sampler *s, uint8_t **out, size_t *len);

#endif
