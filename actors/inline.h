/* actors/inline.h — the runtime's hot paths, inline: slot lookup and
 * routing, slots from and back to a worker's own free list, the run queue, a
 * task's wake, a mailbox holding one message, a sender's stamp, the block
 * caches' local lists and making a message. Each has its general case out of
 * line in the module named in its section. Included at the end of internal.h
 * (it needs all of its types); include internal.h, not this.
 */
#ifndef PICOS_ACTORS_INLINE_H
#define PICOS_ACTORS_INLINE_H

#include <stdlib.h>
#include <string.h>

/* ---- slots and routing (slot.c) ------------------------------------ */

static inline pc__slot *
pc__slot_get(uint32_t idx)
{
    pc__node *n = pc__the_node;
    pc__slot *chunk;

    if (!n || idx == 0)
        return NULL;
    chunk = atomic_load_explicit(&n->chunks[idx >> PC__CHUNK_BITS],
                                 memory_order_acquire);
    return chunk ? &chunk[idx & (PC__CHUNK_SLOTS - 1)] : NULL;
}

/* The slot of a ref of this node whose generation still matches (a live
 * proc or a zombie), or NULL: stale, nil, another node's. Any thread. */
static inline pc__slot *
pc__slot_of(pc_ref r)
{
    pc__node *n = pc__the_node;
    pc__slot *s;

    if (!n || r.node != n->id || !(s = pc__slot_get((uint32_t)r.id)) ||
        atomic_load_explicit(&s->gen, memory_order_acquire) !=
            (uint32_t)(r.id >> 32))
        return NULL;
    return s;
}

/* The worker owning the proc in slot s. */
static inline pc__worker *
pc__slot_worker(const pc__slot *s)
{
    return &pc__the_node->workers[atomic_load_explicit(&s->worker,
                                                       memory_order_acquire)];
}

/* The proc in slot s, when it is the one r names. Only the owning worker
 * may dereference it: nobody else frees it. */
static inline pc__proc *
pc__slot_proc(pc__slot *s, pc_ref r)
{
    pc__proc *p = atomic_load_explicit(&s->proc, memory_order_acquire);

    if (!p || ((uintptr_t)p & 1) || p->idx != (uint32_t)r.id ||
        p->gen != (uint32_t)(r.id >> 32))
        return NULL;
    return p;
}

/* Route a ref of a live proc: PC_OK with *tw its worker and, when that is
 * the caller's worker, *local the proc; else PC_ENOENT / PC_EUNREACH /
 * PC_ESTATE. */
static inline pc_err
pc__route(pc_ref to, pc__worker **tw, pc__proc **local)
{
    /* written out, not pc__slot_of(): every load here is done once (after
     * an acquire load the compiler must read globals again) */
    pc__node *n = pc__the_node;
    pc__worker *me = pc__tls_worker;
    uint32_t idx = (uint32_t)to.id;
    pc__slot *chunk, *s;
    uint16_t wi;

    *local = NULL;
    if (!n)
        return PC_ESTATE;
    if (to.node != n->id)
        return pc_ref_is_nil(to) ? PC_ENOENT : PC_EUNREACH;
    if (!idx || !(chunk = atomic_load_explicit(
                      &n->chunks[idx >> PC__CHUNK_BITS], memory_order_acquire)))
        return PC_ENOENT;
    s = &chunk[idx & (PC__CHUNK_SLOTS - 1)];
    if (atomic_load_explicit(&s->gen, memory_order_acquire) !=
            (uint32_t)(to.id >> 32) ||
        atomic_load_explicit(&s->zombie, memory_order_acquire))
        return PC_ENOENT;
    wi = atomic_load_explicit(&s->worker, memory_order_acquire);
    if (!me || me->index != wi) {
        *tw = &n->workers[wi];
        return PC_OK;
    }
    *tw = me;
    return (*local = pc__slot_proc(s, to)) ? PC_OK : PC_ENOENT;
}

/* pc__slot_alloc() with its common case inline: the top of w's own free
 * list or, with no spares waiting, the next index of its reserved batch
 * (but the first of a populate block, whose alloc readies the next). */
static inline pc_err
pc__slot_alloc_fast(pc__worker *w, uint32_t *idx, uint32_t *gen)
{
    pc__slot *s;
    uint32_t i;

    if (w && (i = w->free_slot) != 0 && (s = pc__slot_get(i))) {
        /* free slots are chained through proc: (next << 1) | 1 */
        w->free_slot = (uint32_t)((uintptr_t)atomic_load_explicit(
                                      &s->proc, memory_order_relaxed) >>
                                  1);
        atomic_store_explicit(&s->proc, NULL, memory_order_relaxed);
        w->nfree--;
        *gen = atomic_load_explicit(&s->gen, memory_order_relaxed);
    } else if (w && !i && (i = w->batch_next) < w->batch_end &&
               i % PC__SLOT_POPULATE != 0 &&
               !atomic_load_explicit(&pc__the_node->nspare,
                                     memory_order_relaxed) &&
               (s = pc__slot_get(i))) {
        w->batch_next++;
        *gen = pc__the_node->gen_base; /* the never-used slot's first */
        atomic_store_explicit(&s->gen, *gen, memory_order_relaxed);
    } else {
        return pc__slot_alloc(w, idx, gen);
    }
    *idx = i;
    return PC_OK;
}

/* pc__slot_release() with its common case inline: w keeps the slot. */
static inline void
pc__slot_release_fast(pc__worker *w, uint32_t idx)
{
    pc__slot *s = pc__slot_get(idx);
    uint32_t g;

    if (w->nfree >= PC__SLOT_KEEP || !s) {
        pc__slot_release(w, idx);
        return;
    }
    g = atomic_load_explicit(&s->gen, memory_order_relaxed) + 1;
    atomic_store_explicit(&s->gen, g, memory_order_release);
    atomic_store_explicit(&s->zombie, 0, memory_order_relaxed);
    atomic_store_explicit(&s->proc,
                          (pc__proc *)(((uintptr_t)w->free_slot << 1) | 1),
                          memory_order_relaxed);
    w->free_slot = idx;
    w->nfree++;
}

/* ---- run queue, switches and wakes (sched.c, task.c, stack.c) ------ */

/* A task (proc p) switching away with stack pointer sp: abort if sp left
 * its stack s. The name is looked up only then, off the switch path. */
static inline void
pc__stack_check(const pc__stack *s, const void *sp, const pc__proc *p)
{
    if (s && ((const char *)sp < s->lo || (const char *)sp > s->lo + s->size))
        pc__stack_overflow(s, pc__proc_name(p));
}

/* The run queue, FIFO (inline: every send and every switch uses it). */
static inline void
pc__runq_push(pc__worker *w, pc__proc *p)
{
    p->state = PC__ST_READY;
    p->next = NULL;
    if (w->rq_tail)
        w->rq_tail->next = p;
    else
        w->rq_head = p;
    w->rq_tail = p;
}

static inline pc__proc *
pc__runq_pop(pc__worker *w)
{
    pc__proc *p = w->rq_head;

    if (p) {
        w->rq_head = p->next;
        if (!w->rq_head)
            w->rq_tail = NULL;
        p->next = NULL;
    }
    return p;
}

/* Make t runnable with wake code rc (the awaited event came). */
static inline void
pc__task_wake(pc__task *t, int rc)
{
    if (t->x)
        pc__task_wake_x(t);
    t->wake_rc = rc;
    pc__runq_push(t->p.w, &t->p);
}

/* ---- mailboxes (mailbox.c) ----------------------------------------- */

/* A ring with no buffer (cap 0) holds one message in place: put it there
 * when it is empty (false: not so, take the general path)... */
static inline bool
pc__ring_put_one(pc__ring *r, pc_msg *m)
{
    if (r->cap || r->len)
        return false;
    r->one = m;
    r->len = r->live = 1;
    r->next++;
    return true;
}

/* ... and take it (cap 0 only). */
static inline pc_msg *
pc__ring_take_one(pc__ring *r)
{
    pc_msg *m = r->len ? r->one : NULL;

    r->one = NULL;
    r->len = r->live = 0;
    return m;
}

/* pc__mb_put and pc__mb_pop with their common case inline: ordinary mail
 * into an unbounded mailbox with nothing queued, and out of one with no
 * channel mail and no buffer (request/reply, ping-pong, one message an
 * actor). */
static inline int
pc__mb_put_fast(pc__proc *p, pc_msg *m, unsigned how)
{
    if (!how && !p->mb_cap && pc__ring_put_one(&p->mb, m))
        return PC_OK;
    return pc__mb_put(p, m, how);
}

/* Channel mail queued for p (its ring is in p's extension). */
static inline uint32_t
pc__cmb_live(const pc__proc *p)
{
    return p->x ? p->x->cmb.live : 0;
}

static inline pc_msg *
pc__mb_pop_fast(pc__proc *p)
{
    if (!p->mb.cap && !p->mb_cap && !pc__cmb_live(p)) {
        p->cturn = true; /* as pc__mb_pop() leaves it */
        return pc__ring_take_one(&p->mb);
    }
    return pc__mb_pop(p);
}

static inline size_t
pc__mb_len(const pc__proc *p)
{
    return (size_t)p->mb.live + pc__cmb_live(p);
}

/* ---- refs and senders ---------------------------------------------- */

static inline pc_ref
pc__proc_ref(const pc__proc *p)
{
    return (pc_ref){pc__the_node->id, ((uint64_t)p->gen << 32) | p->idx};
}

/* pc__msg_stamp(mp, pc_self()), with the common case inline: a send from
 * the running proc of a message that already names it. */
static inline pc_err
pc__msg_stamp_self(pc_msg **mp)
{
    pc__worker *w = pc__tls_worker;
    pc_ref me;

    if (!w || !w->cur)
        return PC_OK; /* outside procs: the sender stays */
    me = pc__proc_ref(w->cur);
    return pc_ref_eq((*mp)->sender, me) ? PC_OK : pc__msg_stamp(mp, me);
}

/* ---- block caches (cache.c) ---------------------------------------- */

static inline void *
pc__cache_get(pc__worker *w, int c, uint16_t *home)
{
    pc__cache *k;
    void *b;

    if (!w || !(b = (k = &w->caches[c])->local))
        return pc__cache_alloc(w, c, home);
    k->local = *(void **)b; /* a free block's first word links the next */
    if (k->nlocal)
        k->nlocal--;
    *home = (uint16_t)(w->index + 1);
    return b;
}

static inline void
pc__cache_put(int c, uint16_t home, void *p)
{
    pc__worker *w = pc__tls_worker;
    pc__cache *k;

    if (w && home == w->index + 1 &&
        (k = &w->caches[c])->nlocal < PC__CACHE_MAX) {
        *(void **)p = k->local;
        k->local = p;
        k->nlocal++;
        return;
    }
    pc__cache_free(c, home, p);
}

/* ---- messages (msg.c) --------------------------------------------- */

/* memcpy(d, s, n), with n of 16 or less (a word or two, a short type) as
 * two overlapping moves instead of a call. */
static inline void
pc__copy(char *d, const char *s, size_t n)
{
    uint64_t a, b;
    uint32_t c, e;

    if (n > 16) {
        memcpy(d, s, n);
    } else if (n >= 8) {
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
        memcpy(d, &a, 8);
        memcpy(d + n - 8, &b, 8);
    } else if (n >= 4) {
        memcpy(&c, s, 4);
        memcpy(&e, s + n - 4, 4);
        memcpy(d, &c, 4);
        memcpy(d + n - 4, &e, 4);
    } else if (n) {
        d[0] = s[0];
        d[n / 2] = s[n / 2];
        d[n - 1] = s[n - 1];
    }
}

/* Fill in the header of m (a block of cache class cls from home, or
 * malloc'd: home 0) for type (tlen bytes) and dlen bytes of payload from
 * `sender`, `pre` bytes (0, or a pc__msg_foreign) before the type; the
 * payload is the caller's to copy. */
static inline __attribute__((always_inline)) void
pc__msg_init(pc_msg *m, uint16_t home, int cls, pc_ref sender, const char *type,
             size_t tlen, size_t dlen, size_t pre)
{
    atomic_init(&m->refs, 1);
    m->home = home;
    m->cls = (uint8_t)cls;
    m->len = dlen;
    m->sender = sender;
    m->foreign = false;
    m->pb = NULL;
    pc__copy(m->inl + pre, type, tlen);
    m->inl[pre + tlen] = '\0';
    m->data = m->inl + pre + tlen + 1;
    m->data[dlen] = '\0';
}

/* A message of type (tlen bytes) with room for dlen bytes of payload, its
 * sender the running proc, and `pre` bytes (0, or a pc__msg_foreign) before
 * the type; NULL when out of memory. msg.c's makers. */
static inline __attribute__((always_inline)) pc_msg *
pc__msg_alloc(const char *type, size_t tlen, size_t dlen, size_t pre)
{
    size_t room = pre + tlen + 1 + dlen + 1;
    pc__worker *w = pc__tls_worker;
    uint16_t home = 0;
    int cls = room <= PC__MSG_TINY_ROOM ? PC__CACHE_MSG_TINY : PC__CACHE_MSG;
    pc_msg *m;

    if (room <= PC__MSG_SMALL_ROOM)
        m = pc__cache_get(w, cls, &home);
    else
        m = malloc(sizeof *m + room);
    if (!m)
        return NULL;
    pc__msg_init(m, home, cls,
                 (w && w->cur) ? pc__proc_ref(w->cur) : PC_REF_NIL, type, tlen,
                 dlen, pre);
    return m;
}

/* pc_msg_new() (msg.h), inline for pc_send_data(). */
static inline pc_err
pc__msg_new(pc_msg **out, const char *type, const void *data, size_t len)
{
    size_t tlen;
    pc_msg *m;

    if (!out || (!data && len))
        return PC_EINVAL;
    *out = NULL;
    if (!type)
        type = "";
    tlen = strnlen(type, PC_MSG_TYPE_MAX + 1);
    if (tlen > PC_MSG_TYPE_MAX || len > SIZE_MAX / 2)
        return PC_EINVAL;
    if (!(m = pc__msg_alloc(type, tlen, len, 0)))
        return PC_ENOMEM;
    pc__copy(m->data, data, len);
    *out = m;
    return PC_OK;
}

#endif
