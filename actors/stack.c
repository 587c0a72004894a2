/* actors/stack.c — task stacks from a per-worker pool.
 *
 * A stack is an anonymous private mapping with MAP_NORESERVE: only the pages
 * a task touches cost memory, so a 64 KiB stack holding a task blocked in
 * pc_recv() costs one page. Stacks are reused, never mapped per spawn: an
 * ended task's stack goes back to its worker's pool (up to max_free of them;
 * extras are unmapped), and a task takes one only when it first runs.
 * Each new stack gets a colour: its first frame starts a little below its
 * top (below), so that blocked tasks' frames spread over the cache.
 *
 * Overflow: the kernel allows about 65k mappings per process and a guard
 * page splits a mapping in two, so only the first `guards` stacks of each
 * worker get a PROT_NONE guard page (a clean SIGSEGV on overflow). Every
 * stack is also checked when its task switches away and when it ends: the
 * saved stack pointer must lie inside it, and its lowest word, which a task
 * never writes unless it overflowed, must still be zero. The check reads an
 * untouched page as the shared zero page, so it costs no memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

/* Cache colouring: every stack's top is page-aligned, so the lines a
 * blocked task's frames occupy sit at the same page offsets in every
 * stack, and in a physically indexed cache those offsets map to 1/64 of
 * the sets: a thousand tasks taking turns (a ring) thrash those sets while
 * the rest of the cache idles. Each new stack therefore starts its frames
 * up to STACK_COLOR_SPAN bytes below its top, in 64-byte steps, round
 * robin; the span stays within the top page with room for a blocked task's
 * frames, so an idle task still costs one page. */
#define STACK_COLOR_SPAN 2048

#ifdef PC__ASAN
#include <sanitizer/asan_interface.h>
#endif

static size_t
page_size(void)
{
    static size_t ps;

    if (!ps)
        ps = (size_t)sysconf(_SC_PAGESIZE);
    return ps;
}

void
pc__stack_pool_init(pc__stack_pool *p, size_t size, int guards)
{
    size_t ps = page_size();

    p->free = NULL;
    p->nfree = 0;
    p->max_free = 256;
    p->size = (size + ps - 1) / ps * ps;
    p->guards_left = guards;
}

static void
stack_unmap(pc__stack *s)
{
#ifdef PC__ASAN
    /* the shadow outlives the mapping: don't leave poison for the next
     * mapping at this address (a slot chunk, say) */
    __asan_unpoison_memory_region(s->lo, s->size);
#endif
    munmap(s->map, s->map_size);
    free(s);
}

void
pc__stack_pool_fini(pc__stack_pool *p)
{
    pc__stack *s;

    while ((s = p->free)) {
        p->free = s->next;
        stack_unmap(s);
    }
    p->nfree = 0;
}

pc__stack *
pc__stack_get(pc__stack_pool *p, size_t size)
{
    size_t ps = page_size();
    pc__stack *s;

    size = size ? (size + ps - 1) / ps * ps : p->size;
    if (size == p->size && p->free) {
        s = p->free;
        p->free = s->next;
        p->nfree--;
        goto out;
    }
    if (!(s = malloc(sizeof *s)))
        return NULL;
    s->guarded = p->guards_left > 0;
    s->map_size = size + (s->guarded ? ps : 0);
    s->map =
        mmap(NULL, s->map_size, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (s->map == MAP_FAILED) {
        free(s);
        return NULL;
    }
    if (s->guarded) {
        if (mprotect(s->map, ps, PROT_NONE) == 0) {
            p->guards_left--;
        } else {
            s->guarded = false; /* out of mappings: canary only */
        }
    }
    s->lo = s->map + (s->map_size - size);
    s->size = size;
    s->color = size > 4 * STACK_COLOR_SPAN
                   ? (p->colors++ % (STACK_COLOR_SPAN / 64)) * 64u
                   : 0;
    s->next = NULL;
out:
#ifdef PC__ASAN
    /* An ended task never unwound, so its frames' redzones are still
     * poisoned in the shadow, also of memory unmapped and mapped again. */
    __asan_unpoison_memory_region(s->lo, s->size);
#endif
    return s;
}

void
pc__stack_put(pc__stack_pool *p, pc__stack **sp)
{
    pc__stack *s = *sp;

    if (!s)
        return;
    *sp = NULL;
    if (s->size != p->size || p->nfree >= p->max_free) {
        if (s->guarded)
            p->guards_left++;
        stack_unmap(s);
        return;
    }
    s->next = p->free;
    p->free = s;
    p->nfree++;
}

void
pc__stack_overflow(const pc__stack *s, const char *name)
{
    fprintf(stderr,
            "picos: stack overflow in task '%s' (stack of %zu bytes; spawn it "
            "with a larger stack_size)\n",
            name ? name : "", s->size);
    abort();
}

void
pc__stack_check_end(const pc__stack *s, const char *name)
{
    if (s && *(volatile const uint64_t *)(const void *)s->lo != 0)
        pc__stack_overflow(s, name);
}
