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
 * Messages, tasks and light actors come from slabs of SLAB_BLOCKS instead,
 * carved from arenas whose pages are made present ahead of the carving,
 * POPULATE_STEP at a time, by one madvise(MADV_POPULATE_WRITE) each (not
 * the whole arena at once: 100k idle tasks would pay up to 20 bytes each
 * for a 2 MiB arena's unused tail): a million of them made at once then
 * cost a few thousand system calls, not a million mallocs whose
 * heap grows by a page or two at a time (glibc grows a thread's arena with
 * one mprotect per page: 51k calls and 61k page faults for a million tasks
 * that each message their parent). The arenas belong to the process, not to
 * a node, because a message can outlive its node (an exit value main()
 * holds): slab blocks are never freed one by one nor unmapped, memory stays
 * at its peak and is reused by the next node. A worker's lists go back to a
 * process-wide free list when its node ends, and so does a block freed after
 * that. A class whose lists are empty first borrows a free block of a larger
 * slab class from the same worker, so the messages that ended tasks send
 * reuse those tasks' memory instead of growing the heap. (Transparent huge
 * pages for the arenas were tried and dropped: on a VM whose host backs
 * guest memory lazily, zeroing fresh 2 MiB pages cost a million light
 * actors 0.6-0.9 s of system time against 0.1 s for the 4 KiB faults.)
 * Under ASan messages and tasks stay plain mallocs, so a use after free is
 * still caught.
 */
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "internal.h"

/* A free block is linked through its first word; the first block of a
 * chain on the process's free list links the next chain with its second. */
typedef struct blk {
    struct blk *next;
    struct blk *next_chain;
} blk;

#define SLAB_BLOCKS 64
#define ARENA_MIN (64u << 10) /* the first arena; each next one doubles */
#define ARENA_MAX (2u << 20)
#define POPULATE_STEP (256u << 10)
#define RFREE_BATCH 32

static bool
slab_class(int c)
{
#ifdef PC__ASAN
    return c == PC__CACHE_ACTOR;
#else
    return c != PC__CACHE_ENV;
#endif
}

/* The process's slab memory: arenas and the blocks no worker holds. */
static struct {
    pthread_mutex_t mu;
    void *arenas;          /* linked through their first word, never unmapped */
    char *next, *end;      /* room left in the newest arena */
    char *ready;           /* its pages are present below this */
    blk *free[PC__CACHES]; /* chains given back by ended nodes or freed
                              after them (see blk) */
} slabs = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* A fresh arena with room for a slab of `need` bytes. Its header links it
 * to the previous one and says its size: twice the previous one's, up to
 * ARENA_MAX, so a program with a few procs maps little — or bigger when
 * one slab needs it (a task with a ucontext_t inside is over 1 KiB: 64 of
 * them don't fit the first arena). Under slabs.mu. */
static bool
arena_new(size_t need)
{
    size_t size = slabs.arenas ? ((size_t *)slabs.arenas)[1] * 2 : ARENA_MIN;
    char *a;

    if (size > ARENA_MAX)
        size = ARENA_MAX;
    while (size < need + 64) /* 64: the header */
        size *= 2;
    a = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
             -1, 0);
    if (a == MAP_FAILED)
        return false;
    ((void **)(void *)a)[0] = slabs.arenas;
    ((size_t *)(void *)a)[1] = size;
    slabs.arenas = a;
    slabs.next = a + 64;
    slabs.end = a + size;
    slabs.ready = a;
    return true;
}

/* Make the newest arena's pages present up to `upto` and a step beyond:
 * one system call instead of a page fault per page. Where the kernel lacks
 * MADV_POPULATE_WRITE (before 5.14) the pages fault in as they are used.
 * Under slabs.mu. */
static void
arena_populate(char *upto)
{
    size_t n;

    if (upto <= slabs.ready)
        return;
    n = (size_t)(upto - slabs.ready) + POPULATE_STEP - 1;
    n -= n % POPULATE_STEP;
    if (n > (size_t)(slabs.end - slabs.ready))
        n = (size_t)(slabs.end - slabs.ready);
#ifdef MADV_POPULATE_WRITE
    (void)madvise(slabs.ready, n, MADV_POPULATE_WRITE);
#endif
    slabs.ready += n;
}

/* Refill k (class c, empty) from the blocks given back, else with a new
 * slab; false when out of memory. */
static bool
slab_grow(pc__cache *k, int c)
{
    /* 8-byte aligned blocks (16 for tasks, whose contexts may want it): a
     * light actor is then 104 bytes, not 112 */
    size_t al = c == PC__CACHE_TASK ? 16 : 8;
    size_t bs = (pc__cache_size[c] + al - 1) & ~(al - 1),
           len = SLAB_BLOCKS * bs;
    bool ok = true;

    pthread_mutex_lock(&slabs.mu);
    if (slabs.free[c]) { /* a chain: nlocal stays a guess */
        k->local = slabs.free[c];
        slabs.free[c] = slabs.free[c]->next_chain;
    } else if ((size_t)(slabs.end - slabs.next) < len && !arena_new(len)) {
        ok = false;
    } else {
        char *slab = slabs.next;
        slabs.next += len;
        arena_populate(slabs.next);
        for (int i = SLAB_BLOCKS - 1; i >= 0; i--) {
            blk *b = (blk *)(void *)(slab + (size_t)i * bs);
            b->next = k->local;
            k->local = b;
        }
    }
    pthread_mutex_unlock(&slabs.mu);
    return ok;
}

/* A freed block of another slab class of w at least as big as class c's,
 * or NULL. Only freed ones (nlocal counts them): taking the rest of a slab
 * just carved would only waste the difference in size. */
static blk *
borrow(pc__worker *w, int c)
{
    for (int d = 0; d < PC__CACHES; d++) {
        pc__cache *k = &w->caches[d];
        blk *b = k->local;
        if (d == c || !b || !k->nlocal || !slab_class(d) ||
            pc__cache_size[d] < pc__cache_size[c])
            continue;
        k->local = b->next;
        if (k->nlocal)
            k->nlocal--;
        return b;
    }
    return NULL;
}

/* Give the chain b of class c to the process's free list: O(1), without
 * walking a node's million blocks at its end. */
static void
slabs_give(int c, blk *b)
{
    pthread_mutex_lock(&slabs.mu);
    b->next_chain = slabs.free[c];
    slabs.free[c] = b;
    pthread_mutex_unlock(&slabs.mu);
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
    if (!(b = k->local)) {
        if (!slab_class(c))
            b = malloc(pc__cache_size[c]);
        else if (!(b = borrow(w, c)) && slab_grow(k, c))
            b = k->local;
        if (!b)
            return NULL;
    }
    if (b == k->local) {
        k->local = b->next;
        if (k->nlocal)
            k->nlocal--;
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
        if (home && slab_class(c)) { /* a message that outlived its node */
            b->next = NULL;
            slabs_give(c, b);
        } else {
            free(p);
        }
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
        for (int pass = 0; pass < 2; pass++) {
            if (b && slab_class(c)) { /* back to the process */
                slabs_give(c, b);
                b = NULL;
            }
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
