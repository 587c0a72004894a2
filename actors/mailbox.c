/* actors/mailbox.c — a proc's mailbox: two FIFO rings of message pointers.
 *
 * Ordinary mail and channel mail (fan-out from pc_chan_*) go to separate
 * rings, and a receive takes from them in turn when both hold messages, so a
 * busy channel can delay a task's direct mail by at most one message per
 * receive and never starve it (CAF dropped its groups over exactly this).
 * Within each ring order is FIFO, so FIFO per sender→receiver holds for each
 * kind of mail.
 *
 * A ring grows by doubling and shrinks back to nothing after a burst. Most
 * rings hold at most one message at a time (request/reply, rings of tasks,
 * actors that get one message), so until a second one arrives there is no
 * buffer: with cap == 0 the `buf` field holds the single message itself.
 */
#include <stdlib.h>

#include "internal.h"

static bool
ring_push(pc__ring *r, pc_msg *m)
{
    if (r->cap == 0 && r->len == 0) {
        r->buf = (pc_msg **)(void *)m;
        r->len = 1;
        return true;
    }
    if (r->len >= r->cap) { /* full, or one message and no buffer */
        uint32_t cap = r->cap ? r->cap * 2 : 4;
        pc_msg **nb = malloc(cap * sizeof *nb);
        if (!nb || cap < r->cap)
            return free(nb), false;
        if (r->cap == 0) {
            nb[0] = (pc_msg *)(void *)r->buf;
        } else {
            for (uint32_t i = 0; i < r->len; i++)
                nb[i] = r->buf[(r->head + i) & (r->cap - 1)];
            free(r->buf);
        }
        r->buf = nb;
        r->cap = cap;
        r->head = 0;
    }
    r->buf[(r->head + r->len) & (r->cap - 1)] = m;
    r->len++;
    return true;
}

static pc_msg *
ring_pop(pc__ring *r)
{
    pc_msg *m;

    if (!r->len)
        return NULL;
    if (r->cap == 0) {
        m = (pc_msg *)(void *)r->buf;
        r->buf = NULL;
        r->len = 0;
        return m;
    }
    m = r->buf[r->head];
    r->head = (r->head + 1) & (r->cap - 1);
    if (--r->len == 0 && r->cap > 64) {
        free(r->buf); /* a burst is over: give the memory back */
        r->buf = NULL;
        r->cap = 0;
        r->head = 0;
    }
    return m;
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
    r->cap = r->len = r->head = 0;
}

bool
pc__mb_push(pc__proc *p, pc_msg *m, bool chan)
{
    return ring_push(chan ? &p->cmb : &p->mb, m);
}

pc_msg *
pc__mb_pop(pc__proc *p)
{
    if (p->cmb.len && (p->cturn || !p->mb.len)) {
        p->cturn = false;
        return ring_pop(&p->cmb);
    }
    p->cturn = true;
    return ring_pop(&p->mb);
}

void
pc__mb_clear(pc__proc *p)
{
    ring_clear(&p->mb);
    ring_clear(&p->cmb);
}
