/* actors/stats.c — what the node counts about itself (picos/stats.h).
 *
 * Each worker keeps its counters in its own struct (pc__wstats) and is the
 * only thread that writes them: pc__count() is a relaxed load and store,
 * which compiles to a plain add, so a send or a receive pays no locked
 * instruction and no shared cache line for being counted. A reader sums the
 * workers' counters with relaxed loads: each is monotonic (the alive gauges
 * move only on their own worker), so a sum is never torn or decreasing,
 * only a few events behind. Foreign threads (main(), pools, the transport's
 * thread) count in the node's own atomics with fetch_add: they are off the
 * hot paths.
 *
 * The deepest mailboxes: only a proc's worker may look at it, so each worker
 * walks the slot table for its own procs (a DEEPEST request, answered with
 * a message holding its top entries) and the caller merges the answers. A
 * walk reads every slot once: meant for a sample a second, not a hot path.
 * A caller on a worker walks its own worker directly; from a light actor's
 * handler (which can't wait) only its own worker is seen.
 */
#include "picos/stats.h"

#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* At most this many entries per answer (and per call). */
#define DEEPEST_MAX 1024
/* How long the caller waits for each other worker's answer (a busy worker
 * is left out of the sample rather than holding the sampler up). */
#define DEEPEST_WAIT 0.5

static uint64_t
load(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

pc_err
pc_node_stats_get(pc_node_stats *out)
{
    pc__node *n = pc__the_node;

    if (!out)
        return PC_EINVAL;
    memset(out, 0, sizeof *out);
    if (!n)
        return PC_ESTATE;
    out->workers = (uint32_t)n->nworkers;
    for (int i = 0; i < n->nworkers; i++) {
        pc__wstats *s = &n->workers[i].st;
        out->tasks += load(&s->tasks);
        out->actors += load(&s->actors);
        out->spawned += load(&s->spawned);
        out->msgs_sent += load(&s->sent);
        out->msgs_received += load(&s->received);
        out->msgs_dropped += load(&s->dropped);
        out->msgs_refused += load(&s->refused);
    }
    out->msgs_sent += load(&n->foreign_sent);
    out->msgs_refused += load(&n->foreign_refused);
    return PC_OK;
}

/* Keep (r, depth) in out[0..*len), at most max, deepest first. */
static void
keep(pc_mbox_depth *out, size_t *len, size_t max, pc_ref r, size_t depth)
{
    size_t i = *len;

    if (i == max) {
        if (depth <= out[max - 1].depth)
            return;
        i = max - 1; /* the shallowest goes */
    } else {
        (*len)++;
    }
    for (; i > 0 && out[i - 1].depth < depth; i--)
        out[i] = out[i - 1];
    out[i] = (pc_mbox_depth){r, depth};
}

/* Worker w's own procs with mail, on w's thread. A slot whose proc we read
 * (acquire) and then find marked as ours holds our proc for the whole walk:
 * only we free our procs, and we publish none meanwhile. */
static void
walk(pc__worker *w, pc_mbox_depth *out, size_t *len, size_t max)
{
    pc__node *n = pc__the_node;
    uint32_t top = (uint32_t)atomic_load(&n->slot_next);

    for (uint32_t idx = 1; idx < top; idx++) {
        pc__slot *chunk = atomic_load_explicit(
            &n->chunks[idx >> PC__CHUNK_BITS], memory_order_acquire);
        if (!chunk) {
            idx |= PC__CHUNK_SLOTS - 1; /* the next chunk */
            continue;
        }
        pc__slot *s = &chunk[idx & (PC__CHUNK_SLOTS - 1)];
        pc__proc *p = atomic_load_explicit(&s->proc, memory_order_acquire);
        if (!p || ((uintptr_t)p & 1) ||
            atomic_load_explicit(&s->worker, memory_order_relaxed) !=
                w->index ||
            p->state >= PC__ST_ZOMBIE || !pc__mb_len(p))
            continue;
        keep(out, len, max, pc__proc_ref(p), pc__mb_len(p));
    }
}

void
pc__deepest_local(pc__worker *w, pc__env *e)
{
    size_t max = (size_t)(uintptr_t)e->ptr, len = 0;
    pc_mbox_depth *top = malloc(max * sizeof *top);
    pc_msg *m = NULL;

    if (top) {
        walk(w, top, &len, max);
        pc_msg_new(&m, "picos.stats.deepest", top, len * sizeof *top);
        free(top);
    }
    pc__reply(e->rt, m ? PC_OK : PC_ENOMEM, m);
}

/* Ask worker tw for its deepest and merge them into out. */
static void
ask(pc__worker *tw, pc_mbox_depth *out, size_t *len, size_t max)
{
    pc__env *e = pc__env_new(PC__ENV_DEEPEST);
    pc_msg *reply = NULL;
    size_t bytes;

    if (!e)
        return;
    e->ptr = (void *)(uintptr_t)max;
    /* a late answer is freed by the runtime */
    if (pc__request(tw, e, DEEPEST_WAIT, &reply) == PC_OK) {
        const pc_mbox_depth *d = pc_msg_data(reply, &bytes);
        for (size_t i = 0; i < bytes / sizeof *d; i++)
            keep(out, len, max, d[i].task, d[i].depth);
    }
    pc_msg_free(&reply);
}

size_t
pc_node_deepest(pc_mbox_depth *out, size_t max)
{
    pc__node *n = pc__the_node;
    pc__worker *me = pc__tls_worker;
    bool can_wait = !me || pc__cur_task(me) != NULL;
    size_t len = 0;

    if (!n || !out || !max)
        return 0;
    if (max > DEEPEST_MAX)
        max = DEEPEST_MAX;
    for (int i = 0; i < n->nworkers; i++) {
        if (me && me->index == i)
            walk(me, out, &len, max);
        else if (can_wait)
            ask(&n->workers[i], out, &len, max);
    }
    return len;
}
