/* actors/slot.c — the slot table: refs to procs, checked from any thread.
 *
 * Refs are checked against a global slot table: chunked so it grows without
 * moving, never freed while the node lives, and each slot carries a
 * generation bumped when its proc ends. Any thread can therefore tell a
 * stale ref (PC_ENOENT) without touching the proc. Free slots go on the
 * freeing worker's own list; fresh indexes come from one atomic counter in
 * batches of 64, so spawn is O(1) and contention-free in the common case.
 * A worker keeps at most SLOT_KEEP free slots and gives half of them to the
 * node's spare list (under a mutex) beyond that; a spawn that finds its own
 * list empty takes spares before fresh indexes. Without it, slots freed on
 * one worker and spawned from another (or from a foreign thread) would make
 * the table grow for ever. A worker's own list and its batch are used
 * inline (inline.h); this file has the rest.
 *
 * Generations of fresh slots start at the node's random `gen_base`, not at
 * 0, so a ref kept from an earlier node with the same fixed node id does not
 * name a task of this one (it would match only by a 1-in-2^32 chance).
 */
#include <stdlib.h>
#include <sys/mman.h>

#include "internal.h"

#define SLOT_BATCH 64
#define SLOT_POPULATE PC__SLOT_POPULATE
#define SLOT_KEEP PC__SLOT_KEEP

/* Make the pages of the SLOT_POPULATE slots from `first` (a multiple of
 * it) of chunk present; where the kernel lacks MADV_POPULATE_WRITE they
 * fault in as slots are used. */
static void
populate(pc__slot *chunk, uint32_t first)
{
#ifdef MADV_POPULATE_WRITE
    if (first < PC__CHUNK_SLOTS)
        (void)madvise(&chunk[first], SLOT_POPULATE * sizeof(pc__slot),
                      MADV_POPULATE_WRITE);
#else
    (void)chunk;
    (void)first;
#endif
}

static pc_err
chunk_ensure(pc__node *n, uint32_t idx)
{
    uint32_t c = idx >> PC__CHUNK_BITS;
    pc_err rc = PC_OK;

    if (c >= PC__MAX_CHUNKS)
        return PC_ENOMEM;
    if (atomic_load_explicit(&n->chunks[c], memory_order_acquire))
        return PC_OK;
    pthread_mutex_lock(&n->chunk_mu);
    if (!atomic_load_explicit(&n->chunks[c], memory_order_relaxed)) {
        /* zero pages from the kernel, touched only as slots are used: an
         * all-zero slot is a valid free slot of generation 0 */
        void *chunk =
            mmap(NULL, PC__CHUNK_SLOTS * sizeof(pc__slot),
                 PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (chunk != MAP_FAILED) {
            populate(chunk, 0);
            atomic_store_explicit(&n->chunks[c], chunk, memory_order_release);
        } else
            rc = PC_ENOMEM;
    }
    pthread_mutex_unlock(&n->chunk_mu);
    return rc;
}

/* A fresh index: from the worker's reserved batch, else the global counter. */
static pc_err
slot_fresh(pc__worker *w, uint32_t *idx)
{
    pc__node *n = pc__the_node;
    uint32_t i;

    if (w && w->batch_next < w->batch_end) {
        i = w->batch_next++;
    } else if (w) {
        i = (uint32_t)atomic_fetch_add(&n->slot_next, SLOT_BATCH);
        if (i > UINT32_MAX - 2 * SLOT_BATCH)
            return PC_ENOMEM;
        w->batch_next = i + 1;
        w->batch_end = i + SLOT_BATCH;
    } else {
        i = (uint32_t)atomic_fetch_add(&n->slot_next, 1);
        if (i > UINT32_MAX - 2 * SLOT_BATCH)
            return PC_ENOMEM;
    }
    /* a batch never straddles chunks: SLOT_BATCH divides PC__CHUNK_SLOTS
     * only when batches are aligned, so just ensure each index's chunk */
    *idx = i;
    if (chunk_ensure(n, i) != PC_OK)
        return PC_ENOMEM;
    /* the first slot of a populate block readies the next one */
    if (i % SLOT_POPULATE == 0)
        populate(atomic_load_explicit(&n->chunks[i >> PC__CHUNK_BITS],
                                      memory_order_relaxed),
                 (i & (PC__CHUNK_SLOTS - 1)) + SLOT_POPULATE);
    return PC_OK;
}

/* Free slots are chained through their proc field: (next << 1) | 1. */
static uint32_t
chain_next(uint32_t i)
{
    return (uint32_t)((uintptr_t)atomic_load_explicit(&pc__slot_get(i)->proc,
                                                      memory_order_relaxed) >>
                      1);
}

static void
chain_link(uint32_t i, uint32_t next)
{
    atomic_store_explicit(&pc__slot_get(i)->proc,
                          (pc__proc *)(((uintptr_t)next << 1) | 1),
                          memory_order_relaxed);
}

static uint32_t
chain_pop(uint32_t *head)
{
    uint32_t i = *head;

    *head = chain_next(i);
    atomic_store_explicit(&pc__slot_get(i)->proc, NULL, memory_order_relaxed);
    return i;
}

static void
chain_push(uint32_t *head, uint32_t i)
{
    chain_link(i, *head);
    *head = i;
}

/* Move up to `want` spare slots onto *head (a worker's list, or a foreign
 * spawn's single one); how many came. */
static uint32_t
spare_take(pc__node *n, uint32_t *head, uint32_t want)
{
    uint32_t got = 0;

    if (!atomic_load_explicit(&n->nspare, memory_order_relaxed))
        return 0;
    pthread_mutex_lock(&n->spare_mu);
    for (; got < want && n->spare; got++)
        chain_push(head, chain_pop(&n->spare));
    atomic_fetch_sub_explicit(&n->nspare, got, memory_order_relaxed);
    pthread_mutex_unlock(&n->spare_mu);
    return got;
}

pc_err
pc__slot_alloc(pc__worker *w, uint32_t *idx, uint32_t *gen)
{
    pc__node *n = pc__the_node;
    uint32_t mine = 0;
    pc_err rc;

    if (w && !w->free_slot)
        w->nfree += spare_take(n, &w->free_slot, SLOT_BATCH);
    if (w ? w->free_slot != 0 : spare_take(n, &mine, 1) != 0) {
        *idx = w ? chain_pop(&w->free_slot) : chain_pop(&mine);
        if (w)
            w->nfree--;
        *gen = atomic_load_explicit(&pc__slot_get(*idx)->gen,
                                    memory_order_relaxed);
        return PC_OK;
    }
    if ((rc = slot_fresh(w, idx)) != PC_OK)
        return rc;
    *gen = pc__the_node->gen_base; /* the never-used slot's first */
    atomic_store_explicit(&pc__slot_get(*idx)->gen, *gen, memory_order_relaxed);
    return PC_OK;
}

/* The slot's proc ended: bump the generation (stale refs now fail) and put
 * the index on this worker's free list. */
void
pc__slot_release(pc__worker *w, uint32_t idx)
{
    pc__slot *s = pc__slot_get(idx);
    uint32_t g = atomic_load_explicit(&s->gen, memory_order_relaxed) + 1;

    atomic_store_explicit(&s->gen, g, memory_order_release);
    atomic_store_explicit(&s->zombie, 0, memory_order_relaxed);
    chain_push(&w->free_slot, idx);
    if (++w->nfree > SLOT_KEEP) { /* give half to the spawns elsewhere */
        /* the first k of the list, found outside the lock and spliced on
         * the spares in one step (a million procs ending at once: this ran
         * for every other one) */
        pc__node *n = pc__the_node;
        uint32_t k = SLOT_KEEP / 2, first = w->free_slot, last = first;
        for (uint32_t j = 1; j < k; j++)
            last = chain_next(last);
        w->free_slot = chain_next(last);
        w->nfree -= k;
        pthread_mutex_lock(&n->spare_mu);
        chain_link(last, n->spare);
        n->spare = first;
        atomic_fetch_add_explicit(&n->nspare, k, memory_order_relaxed);
        pthread_mutex_unlock(&n->spare_mu);
    }
}

pc__proc *
pc__proc_lookup(pc__worker *w, pc_ref r)
{
    pc__slot *s = pc__slot_of(r);

    if (!s ||
        atomic_load_explicit(&s->worker, memory_order_relaxed) != w->index)
        return NULL;
    return pc__slot_proc(s, r);
}

bool
pc_alive(pc_ref r)
{
    pc__slot *s = pc__slot_of(r);
    uintptr_t p;

    /* a slot never handed out has generation 0 and no proc: a made-up ref
     * (id < 2^32) matches its generation, not its proc */
    if (!s)
        return false;
    p = (uintptr_t)atomic_load_explicit(&s->proc, memory_order_acquire);
    return p && !(p & 1) &&
           !atomic_load_explicit(&s->zombie, memory_order_acquire);
}
