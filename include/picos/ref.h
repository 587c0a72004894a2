/* picos/ref.h — addresses of tasks and light actors.
 *
 * A pc_ref is a small value: the node id of the process the task lives in
 * and a task id (slot index plus a generation number). Copy it, compare it,
 * send it in messages. A ref to a task that has ended is stale: every call
 * taking one returns PC_ENOENT, never crashes, even after the slot has been
 * reused (the generation differs). The nil ref (all zero) names nothing.
 */
#ifndef PICOS_REF_H
#define PICOS_REF_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pc_ref {
    uint64_t node; /* node id, unique per process start */
    uint64_t id;   /* generation << 32 | slot index (index 0 is never used) */
} pc_ref;

#define PC_REF_NIL ((pc_ref){0, 0})

static inline bool
pc_ref_eq(pc_ref a, pc_ref b)
{
    return a.node == b.node && a.id == b.id;
}

static inline bool
pc_ref_is_nil(pc_ref r)
{
    return r.id == 0;
}

/* Format as "node:slot.gen" (hex node) into buf; returns buf. 48 bytes is
 * always enough. */
char *pc_ref_str(pc_ref r, char *buf, unsigned size);

#ifdef __cplusplus
}
#endif
#endif
