/* actors/mailbox.c — a proc's mailbox: two FIFO rings of message pointers.
 *
 * Ordinary mail and channel mail (fan-out from pc_chan_*) go to separate
 * rings, and a receive takes from them in turn when both hold messages, so a
 * busy channel can delay a task's direct mail by at most one message per
 * receive and never starve it (CAF dropped its groups over exactly this).
 * Within each ring order is FIFO, so FIFO per sender→receiver holds for each
 * kind of mail.
 *
 * Selective receive takes a message out of the middle: its slot becomes a
 * hole that pops skip, so every message keeps its sequence number (base +
 * slot) and a scan can resume where the last one stopped — Erlang's receive
 * marker: a request/reply loop marks the mailbox before it sends the request
 * and then looks only at what arrived after the mark.
 *
 * A ring grows by doubling and shrinks back to nothing after a burst. Most
 * rings hold at most one message at a time (request/reply, rings of tasks,
 * actors that get one message), so until a second one arrives there is no
 * buffer: with cap == 0 the `buf` field holds the single message itself.
 */
#include <stdlib.h>

#include "internal.h"

/* Slot i of a ring (0 = head). */
static inline pc_msg **
slot(pc__ring *r, uint32_t i)
{
    return r->cap ? &r->buf[(r->head + i) & (r->cap - 1)]
                  : (pc_msg **)(void *)&r->buf;
}

static bool
ring_push(pc__ring *r, pc_msg *m)
{
    if (r->cap == 0 && r->len == 0) {
        r->buf = (pc_msg **)(void *)m;
        r->len = r->live = 1;
        return true;
    }
    if (r->len >= r->cap) { /* full, or one message and no buffer */
        uint32_t cap = r->cap ? r->cap * 2 : 4;
        pc_msg **nb = malloc(cap * sizeof *nb);
        if (!nb || cap < r->cap)
            return free(nb), false;
        for (uint32_t i = 0; i < r->len; i++)
            nb[i] = *slot(r, i);
        if (r->cap)
            free(r->buf);
        r->buf = nb;
        r->cap = cap;
        r->head = 0;
    }
    r->buf[(r->head + r->len) & (r->cap - 1)] = m;
    r->len++;
    r->live++;
    return true;
}

/* Drop slot 0 (a message or a hole). */
static void
advance(pc__ring *r)
{
    r->base++;
    if (r->cap == 0) {
        r->buf = NULL;
        r->len = 0;
        return;
    }
    r->head = (r->head + 1) & (r->cap - 1);
    if (--r->len == 0 && r->cap > 64) {
        free(r->buf); /* a burst is over: give the memory back */
        r->buf = NULL;
        r->cap = 0;
        r->head = 0;
    }
}

static pc_msg *
ring_pop(pc__ring *r)
{
    while (r->len) {
        pc_msg *m = *slot(r, 0);
        advance(r);
        if (m) {
            r->live--;
            return m;
        }
    }
    return NULL;
}

/* The first message at or after sequence number *from that `match` accepts,
 * taken out (its slot becomes a hole, so later sequence numbers stay put);
 * *from is moved past everything looked at. */
static pc_msg *
ring_take(pc__ring *r, uint64_t *from, pc__match_fn match, void *ctx)
{
    uint64_t end = r->base + r->len;
    uint64_t s = *from > r->base ? *from : r->base;

    for (; s < end; s++) {
        pc_msg **sl = slot(r, (uint32_t)(s - r->base));
        if (*sl && match(*sl, ctx)) {
            pc_msg *m = *sl;
            *sl = NULL;
            r->live--;
            while (r->len && !*slot(r, 0))
                advance(r);
            *from = s + 1;
            return m;
        }
    }
    *from = end;
    return NULL;
}

static void
ring_clear(pc__ring *r)
{
    pc_msg *m;

    while ((m = ring_pop(r)))
        pc_msg_free(&m);
    if (r->cap)
        free(r->buf);
    r->buf = NULL;
    r->cap = r->len = r->head = r->live = 0;
}

bool
pc__mb_push(pc__proc *p, pc_msg *m, bool chan)
{
    return ring_push(chan ? &p->cmb : &p->mb, m);
}

/* A bounded mailbox has room again: wake the longest-waiting blocked
 * sender (the list is newest-first). It re-checks the room itself. */
static void
room(pc__proc *p)
{
    pc__joiner **jp = &p->space_waiters, *j;

    if (!*jp || pc__mb_len(p) >= p->mb_cap)
        return;
    while ((*jp)->next)
        jp = &(*jp)->next;
    j = *jp;
    *jp = NULL;
    pc__wake(j->rt, PC_OK, NULL, NULL);
    free(j);
}

void
pc__mb_wake_senders(pc__proc *p)
{
    pc__joiner *j;

    while ((j = p->space_waiters)) {
        p->space_waiters = j->next;
        pc__wake(j->rt, PC_ENOENT, NULL, NULL);
        free(j);
    }
}

pc_msg *
pc__mb_pop(pc__proc *p)
{
    pc_msg *m;

    if (p->cmb.live && (p->cturn || !p->mb.live)) {
        p->cturn = false;
        m = ring_pop(&p->cmb);
    } else {
        p->cturn = true;
        m = ring_pop(&p->mb);
    }
    if (p->space_waiters)
        room(p);
    return m;
}

pc_msg *
pc__mb_take(pc__proc *p, uint64_t from[2], pc__match_fn match, void *ctx)
{
    pc_msg *m = ring_take(&p->mb, &from[0], match, ctx);

    if (!m)
        m = ring_take(&p->cmb, &from[1], match, ctx);
    if (m && p->space_waiters)
        room(p);
    return m;
}

void
pc__mb_mark(const pc__proc *p, uint64_t mark[2])
{
    mark[0] = p->mb.base + p->mb.len;
    mark[1] = p->cmb.base + p->cmb.len;
}

void
pc__mb_clear(pc__proc *p)
{
    pc__mb_wake_senders(p); /* they find it gone when they retry */
    ring_clear(&p->mb);
    ring_clear(&p->cmb);
}
