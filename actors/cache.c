/* actors/cache.c — per-worker caches of fixed-size blocks (messages,
 * envelopes), with frees from other threads sent home.
 *
 * Producer/consumer traffic across workers allocates on one thread and frees
 * on another, which malloc handles badly (arena locks, consolidation). Each
 * block here remembers its home worker. A free on the home worker pushes it
 * on the worker's local list (no atomics); a free anywhere else pushes it on
 * the home's `remote` stack with one compare-exchange. The home takes the
 * whole remote stack with one exchange when its local list runs dry, so
 * blocks circulate between producer and consumer without malloc, and the
 * stack has no ABA problem (the only pop is "take all"). Each list keeps at
 * most PC__CACHE_MAX blocks; the rest go back to malloc. A worker freeing
 * another home's blocks collects them in a batch per home and class and
 * pushes RFREE_BATCH of them with one compare-exchange (the rest when it
 * goes idle), so a stream across workers doesn't pay a contended atomic
 * per block.
 *
 * Light actors come from slabs of SLAB_BLOCKS instead, carved from arenas
 * mapped with MAP_POPULATE: a million actors spawned at once then cost a
 * few hundred system calls, not thousands of mallocs (each growing malloc's
 * heap by a page or two) and ~40k page faults. Slab blocks are never freed
 * one by one: they stay on the lists (memory is kept at its peak) and the
 * arenas go with the node, which is safe because no proc outlives its node.
 * Messages can outlive the node (an exit value held by main()), so they don't
 * use slabs; tasks don't either (measured: a million-task spawn whose messages
 * reuse the ended tasks' freed memory peaks at 249 MiB with malloc and 402 MiB
 * with slabs, for no speed).
 */
#include <stdlib.h>
#include <sys/mman.h>

#include "internal.h"

/* A free block is linked through its first word. */
typedef struct blk {
    struct blk *next;
} blk;

#define SLAB_BLOCKS 64
#define ARENA_MIN (64u << 10) /* the first arena; each next one doubles */
#define ARENA_MAX (2u << 20)
#define RFREE_BATCH 32

static bool
slab_class(int c)
{
    return c == PC__CACHE_ACTOR;
}

/* A fresh arena, its pages made present by the mmap itself (one system
 * call for all its pages, not a fault each). Its header links it to the
 * previous one and says its size: twice the previous one's, up to
 * ARENA_MAX, so a program with a few actors maps little. */
static bool
arena_new(pc__cache *k)
{
    size_t size = k->arenas ? ((size_t *)k->arenas)[1] * 2 : ARENA_MIN;
    char *a;

    if (size > ARENA_MAX)
        size = ARENA_MAX;
    a = mmap(NULL, size, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (a == MAP_FAILED)
        return false;
    ((void **)(void *)a)[0] = k->arenas;
    ((size_t *)(void *)a)[1] = size;
    k->arenas = a;
    k->arena_next = a + 64;
    k->arena_end = a + size;
    return true;
}

/* Carve a new slab into the local list; false when out of memory. */
static bool
slab_grow(pc__cache *k, size_t size)
{
    size_t bs = (size + 15) & ~(size_t)15, len = SLAB_BLOCKS * bs;
    char *slab;

    if ((size_t)(k->arena_end - k->arena_next) < len && !arena_new(k))
        return false;
    slab = k->arena_next;
    k->arena_next += len;
    for (int i = SLAB_BLOCKS - 1; i >= 0; i--) {
        blk *b = (blk *)(void *)(slab + (size_t)i * bs);
        b->next = k->local;
        k->local = b;
    }
    return true;
}

void *
pc__cache_alloc(pc__worker *w, int c, uint16_t *home)
{
    pc__cache *k;
    blk *b;

    *home = 0;
    if (!w)
        return malloc(pc__cache_size[c]);
    k = &w->caches[c];
    if (!k->local && atomic_load_explicit(&k->remote, memory_order_relaxed)) {
        k->local =
            atomic_exchange_explicit(&k->remote, NULL, memory_order_acquire);
        k->nlocal = 0; /* unknown: recounted as blocks come back */
    }
    if (!k->local && slab_class(c) && !slab_grow(k, pc__cache_size[c]))
        return NULL;
    if ((b = k->local)) {
        k->local = b->next;
        if (k->nlocal)
            k->nlocal--;
    } else if (!(b = malloc(pc__cache_size[c]))) {
        return NULL;
    }
    *home = (uint16_t)(w->index + 1);
    return b;
}

/* Splice the chain first..last onto home cache k's remote stack. */
static void
push_home(pc__cache *k, blk *first, blk *last)
{
    void *head = atomic_load_explicit(&k->remote, memory_order_relaxed);

    do {
        last->next = head;
    } while (!atomic_compare_exchange_weak_explicit(
        &k->remote, &head, first, memory_order_release, memory_order_relaxed));
}

static void
flush_one(pc__worker *w, pc__node *n, pc__rfree *r, int c, int home)
{
    if (!r->n)
        return;
    push_home(&n->workers[home].caches[c], r->head, r->tail);
    w->rfree_n -= r->n;
    r->head = r->tail = NULL;
    r->n = 0;
}

/* Add b to worker w's batch for (home, c); false when there is no batch
 * (out of memory: then the caller pushes b alone). */
static bool
batch(pc__worker *w, pc__node *n, int c, uint16_t home, blk *b)
{
    pc__rfree *r;

    if (!w->rfree &&
        !(w->rfree = calloc((size_t)n->nworkers * PC__CACHES, sizeof *r)))
        return false;
    r = &w->rfree[(home - 1) * PC__CACHES + c];
    b->next = r->head;
    r->head = b;
    if (!r->tail)
        r->tail = b;
    w->rfree_n++;
    if (++r->n >= RFREE_BATCH)
        flush_one(w, n, r, c, home - 1);
    return true;
}

void
pc__cache_flush(pc__node *n, pc__worker *w)
{
    if (!w->rfree_n) /* the common case: nothing waits to go home */
        return;
    for (int h = 0; h < n->nworkers; h++)
        for (int c = 0; c < PC__CACHES; c++)
            flush_one(w, n, &w->rfree[h * PC__CACHES + c], c, h);
}

void
pc__cache_free(int c, uint16_t home, void *p)
{
    pc__node *n = pc__the_node;
    pc__worker *w = pc__tls_worker;
    blk *b = p;
    pc__cache *k;

    if (!home || !n || home > n->nworkers) {
        free(p);
        return;
    }
    k = &n->workers[home - 1].caches[c];
    if (w && w->index == home - 1) {
        if (k->nlocal >= PC__CACHE_MAX && !slab_class(c)) {
            free(p);
            return;
        }
        b->next = k->local;
        k->local = b;
        k->nlocal++;
        return;
    }
    if (w && batch(w, n, c, home, b))
        return;
    push_home(k, b, b);
}

void
pc__cache_fini(pc__worker *w)
{
    free(w->rfree); /* flushed by node_free() before any fini */
    w->rfree = NULL;
    for (int c = 0; c < PC__CACHES; c++) {
        pc__cache *k = &w->caches[c];
        blk *b = atomic_exchange(&k->remote, NULL);
        if (slab_class(c)) { /* the blocks live in the arenas */
            void *a;
            while ((a = k->arenas)) {
                k->arenas = *(void **)a;
                munmap(a, ((size_t *)a)[1]);
            }
            k->arena_next = k->arena_end = NULL;
            k->local = NULL;
            continue;
        }
        for (int pass = 0; pass < 2; pass++) {
            while (b) {
                blk *next = b->next;
                free(b);
                b = next;
            }
            b = k->local;
            k->local = NULL;
        }
        k->nlocal = 0;
    }
}
