/* actors/mailbox.c — a proc's mailbox: two FIFO rings of messages, and the
 * bounds of a bounded one.
 *
 * Ordinary mail and channel mail (fan-out from pc_chan_*) go to separate
 * rings (the channel one in the proc's extension, made with its first
 * channel message), and a receive takes from them in turn when both hold
 * messages, so a busy channel can delay a task's direct mail by at most one
 * message per receive and never starve it (CAF dropped its groups over exactly
 * this). Within each ring order is FIFO, so FIFO per sender→receiver holds for
 * each kind of mail.
 *
 * Every message gets a sequence number when it is queued, stored beside it
 * in its slot. A receive mark is a sequence number (Erlang's receive marker:
 * a request/reply loop marks the mailbox before it sends the request and
 * then looks only at what arrived after the mark), and a scan finds where
 * to start by binary search, because slots stay sorted by number whatever
 * moves. Selective receive takes a message out of the middle and leaves a
 * hole (NULL); holes never outlive the next look at them: a scan packs the
 * messages it passed over toward its end, so the holes among them gather
 * just before where it started — dropped off the ring when that is the head,
 * else renumbered below the scan's start so that no later scan from that
 * mark or a newer one lands on them. A taken last slot is dropped at once,
 * and when holes still outnumber messages the whole ring is packed. So an
 * unmatched message at the head no longer makes request/reply grow the ring,
 * and a scan looks at O(messages) slots: packing costs what the scan that
 * triggers it already paid, and each hole is made once.
 *
 * A ring grows by doubling and shrinks back to nothing after a burst (or,
 * when packing leaves it mostly empty, to a quarter). Most rings hold at
 * most one message at a time (request/reply, rings of tasks, actors that get
 * one message), so until a second one arrives there is no buffer: with
 * cap == 0 the ring holds the single message itself, numbered next - 1.
 *
 * PC_MB_BLOCK: tasks of the target's worker that wait in pc_send for room
 * are linked, oldest first, in a ring through their pc__task (no allocation,
 * O(1) in and out). Room wakes them oldest first, one per free slot; a woken
 * sender keeps its turn until it runs (it re-queues at the front if the
 * mailbox filled again meanwhile), a terminated one leaves the ring when it
 * ends and passes the wake on, so a live sender never sleeps while there is
 * room. System messages (PC__MB_SYS: DOWN, EXIT, replies) are never made to
 * wait or refused: they go in beyond the capacity, counted in mb_over.
 */
#include <stdlib.h>

#include "internal.h"

_Thread_local uint64_t pc__mb_visits;

/* Slot i of a buffered ring (0 = head). */
static inline pc__mail *
at(pc__ring *r, uint32_t i)
{
    return &r->buf[(r->head + i) & (r->cap - 1)];
}

/* The ring has no slots left: give a burst's memory back. */
static void
emptied(pc__ring *r)
{
    r->head = 0;
    if (r->cap > 64) {
        free(r->buf);
        r->buf = NULL;
        r->cap = 0;
    }
}

/* Move the messages into a buffer of `cap` slots (a power of two, at least
 * r->live + 1), dropping the holes. False when out of memory. */
static bool
rebuffer(pc__ring *r, uint32_t cap)
{
    pc__mail *nb = malloc(cap * sizeof *nb);
    uint32_t n = 0;

    if (!nb)
        return false;
    if (r->cap == 0) {
        if (r->len)
            nb[n++] = (pc__mail){r->one, r->next - 1};
    } else {
        for (uint32_t i = 0; i < r->len; i++)
            if (at(r, i)->m)
                nb[n++] = *at(r, i);
        free(r->buf);
    }
    r->buf = nb;
    r->cap = cap;
    r->head = 0;
    r->len = n;
    return true;
}

static bool
ring_push(pc__ring *r, pc_msg *m)
{
    if (pc__ring_put_one(r, m))
        return true;
    if (r->len >= r->cap) { /* full, or one message and no buffer */
        uint32_t cap = r->cap ? r->cap * 2 : 4;
        if (cap < r->cap || !rebuffer(r, cap))
            return false;
    }
    *at(r, r->len) = (pc__mail){m, r->next++};
    r->len++;
    r->live++;
    return true;
}

static pc_msg *
ring_pop(pc__ring *r)
{
    pc_msg *m;

    if (r->cap == 0)
        return pc__ring_take_one(r);
    while (r->len) {
        m = at(r, 0)->m;
        r->head = (r->head + 1) & (r->cap - 1);
        if (--r->len == 0)
            emptied(r);
        if (m) {
            r->live--;
            return m;
        }
    }
    return NULL;
}

/* Index of the first slot numbered `from` or later (r->len: none). Slots
 * are sorted by number, holes included. */
static uint32_t
first_from(pc__ring *r, uint64_t from)
{
    uint32_t lo = 0, hi = r->len;

    if (hi == 0 || at(r, 0)->seq >= from)
        return 0;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (at(r, mid)->seq < from)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Pack the messages of slots [a, e] toward e, keeping their order, so the
 * h holes among them end up in [a, a + h): dropped when a is the head,
 * else numbered as slot a - 1 (below any scan that started at a, and still
 * sorted). Returns h. */
static uint32_t
pack(pc__ring *r, uint32_t a, uint32_t e)
{
    uint32_t d = e + 1, h;

    for (uint32_t s = e + 1; s-- > a;) {
        pc__mail *x = at(r, s);
        if (x->m && --d != s)
            *at(r, d) = *x;
    }
    h = d - a;
    if (h == 0)
        return 0;
    if (a == 0) {
        r->head = (r->head + h) & (r->cap - 1);
        if ((r->len -= h) == 0)
            emptied(r);
    } else {
        uint64_t below = at(r, a - 1)->seq;
        for (uint32_t i = a; i < d; i++)
            *at(r, i) = (pc__mail){NULL, below};
    }
    return h;
}

/* After a take: drop trailing holes, and pack everything (shrinking a
 * mostly empty buffer) when holes outnumber messages. */
static void
tidy(pc__ring *r)
{
    uint32_t cap = r->cap;

    while (r->len && !at(r, r->len - 1)->m)
        r->len--;
    if (r->len == 0) {
        emptied(r);
        return;
    }
    if (r->len - r->live <= r->live)
        return;
    while (cap > 64 && r->live * 4 <= cap / 2)
        cap /= 2;
    if (cap == r->cap || !rebuffer(r, cap))
        pack(r, 0, r->len - 1);
}

/* The first message numbered *from or later that `match` accepts, taken
 * out; *from is moved past everything looked at. */
static pc_msg *
ring_take(pc__ring *r, uint64_t *from, pc__match_fn match, void *ctx)
{
    uint32_t a, i, holes = 0;
    pc_msg *m = NULL;

    if (r->live == 0) {
        *from = r->next;
        return NULL;
    }
    if (r->cap == 0) { /* the one message, numbered next - 1 */
        pc__mb_visits++;
        if (*from < r->next && match(r->one, ctx)) {
            m = r->one;
            r->one = NULL;
            r->len = r->live = 0;
        }
        *from = r->next;
        return m;
    }
    a = first_from(r, *from);
    for (i = a; i < r->len; i++) {
        pc__mail *x = at(r, i);
        if (!x->m) {
            holes++;
        } else if (match(x->m, ctx)) {
            m = x->m;
            x->m = NULL;
            r->live--;
            *from = x->seq + 1;
            break;
        }
    }
    pc__mb_visits += i - a + (m != NULL);
    if (m) {
        pack(r, a, i);
        tidy(r);
    } else {
        *from = r->next;
        if (holes)
            pack(r, a, r->len - 1);
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
    r->cap = r->len = r->head = r->live = 0;
}

/* ---- blocked senders (PC_MB_BLOCK) ------------------------------------------ */

/* Link t into p's blocked senders: last, or at the front when it had its
 * turn already and lost the room to someone else. */
static void
waiter_link(pc__proc *p, pc__task *t, bool front)
{
    pc__task *h = p->x->space_waiters;

    t->x->room_for = p;
    if (!h) {
        t->x->room_next = t->x->room_prev = t;
        p->x->space_waiters = t;
        return;
    }
    t->x->room_next = h;
    t->x->room_prev = h->x->room_prev;
    h->x->room_prev->x->room_next = t;
    h->x->room_prev = t;
    if (front)
        p->x->space_waiters = t;
}

static void
waiter_unlink(pc__task *t)
{
    pc__proc *p = t->x->room_for;

    if (t->x->room_next == t) {
        p->x->space_waiters = NULL;
    } else {
        t->x->room_prev->x->room_next = t->x->room_next;
        t->x->room_next->x->room_prev = t->x->room_prev;
        if (p->x->space_waiters == t)
            p->x->space_waiters = t->x->room_next;
    }
    t->x->room_next = t->x->room_prev = NULL;
    t->x->room_for = NULL;
}

/* p's mailbox may have room: wake blocked senders, oldest first, one per
 * free slot. A sender woken earlier that hasn't run yet holds its slot; a
 * terminated one (killed, about to end) doesn't. */
static void
room(pc__proc *p)
{
    pc__task *t = p->x ? p->x->space_waiters : NULL;
    size_t len = pc__mb_len(p);

    if (!t)
        return;
    do {
        if (len >= p->mb_cap)
            return;
        if (!t->p.killed) {
            if (t->p.state == PC__ST_AWAIT_REPLY)
                pc__task_wake(t, PC_OK);
            len++;
        }
        t = t->x->room_next;
    } while (t != p->x->space_waiters);
}

/* p ended: wake every blocked sender; they find it gone. */
static void
wake_senders(pc__proc *p)
{
    pc__task *t;

    while (p->x && (t = p->x->space_waiters)) {
        waiter_unlink(t);
        if (t->p.state == PC__ST_AWAIT_REPLY)
            pc__task_wake(t, PC_ENOENT);
    }
}

void
pc__mb_sender_gone(pc__task *t)
{
    pc__proc *p = t->x ? t->x->room_for : NULL;

    if (p) {
        waiter_unlink(t);
        room(p); /* the turn it may have held goes on */
    }
}

/* Block task `me` until room() or wake_senders() wakes it or `timeout`
 * passes; returns that wake's code or PC_ETIMEDOUT. */
static int
wait_room(pc__proc *p, pc__task *me, double timeout, bool front)
{
    pc__reply_to rt;
    int rc;

    if (!pc__task_x_get(me))
        return PC_ENOMEM;
    pc__wait_prepare(&rt);
    waiter_link(p, me, front);
    rc = pc__wait_block(&rt, timeout, NULL);
    if (me->x->room_for)
        waiter_unlink(me);
    return rc;
}

/* A message p's full mailbox refused: in its counters and its worker's
 * (the caller runs on that worker). */
static void
refused(pc__proc *p)
{
    p->x->mb_refused++;
    pc__count(&p->w->st.refused, 1);
}

static bool
full(const pc__proc *p)
{
    return p->mb_cap && pc__mb_len(p) >= p->mb_cap;
}

int
pc__mb_admit(pc__worker *w, pc_ref to, pc__proc **pp, double timeout)
{
    pc__task *me = pc__cur_task(w);
    double deadline = pc_deadline(timeout), left = timeout;
    bool again = false;
    pc__worker *tw;
    int rc;

    while (full(*pp)) {
        pc__proc *p = *pp;
        if (p->mb_policy == PC_MB_DROP)
            return PC_OK; /* dropped and counted on delivery */
        if (p->mb_policy == PC_MB_FAIL || !me || &me->p == p || timeout == 0) {
            refused(p); /* FAIL, or a BLOCK sender that can't wait */
            return PC_EFULL;
        }
        if (timeout > 0 && (left = pc_deadline_left(deadline)) <= 0) {
            refused(p);
            return PC_ETIMEDOUT;
        }
        rc = wait_room(p, me, left, again);
        again = true;
        if (pc__route(to, &tw, pp) != PC_OK || !*pp)
            return PC_ENOENT; /* it ended while we waited */
        if (rc == PC_ETIMEDOUT && full(*pp)) {
            refused(*pp);
            return PC_ETIMEDOUT;
        }
    }
    return PC_OK;
}

/* ---- the mailbox ---------------------------------------------------------------- */

int
pc__mb_put(pc__proc *p, pc_msg *m, unsigned how)
{
    if (full(p)) {
        if ((how & PC__MB_SYS) || p->mb_policy == PC_MB_BLOCK) {
            p->x->mb_over++;
        } else {
            if (p->mb_policy == PC_MB_DROP) {
                p->x->mb_dropped++;
                pc__count(&p->w->st.dropped, 1);
            } else {
                refused(p);
            }
            return PC_EFULL;
        }
    }
    if (how & PC__MB_CHAN) {
        if (!pc__proc_x_get(p) || !ring_push(&p->x->cmb, m))
            return PC_ENOMEM;
    } else if (!ring_push(&p->mb, m)) {
        return PC_ENOMEM;
    }
    return PC_OK;
}

pc_msg *
pc__mb_pop(pc__proc *p)
{
    pc_msg *m;

    if (pc__cmb_live(p) && (p->cturn || !p->mb.live)) {
        p->cturn = false;
        m = ring_pop(&p->x->cmb);
    } else {
        p->cturn = true;
        m = ring_pop(&p->mb);
    }
    if (p->mb_cap && p->x->space_waiters)
        room(p);
    return m;
}

pc_msg *
pc__mb_take(pc__proc *p, uint64_t from[2], pc__match_fn match, void *ctx)
{
    pc_msg *m = ring_take(&p->mb, &from[0], match, ctx);

    if (!m)
        m = p->x ? ring_take(&p->x->cmb, &from[1], match, ctx) : NULL;
    if (m && p->mb_cap && p->x->space_waiters)
        room(p);
    return m;
}

void
pc__mb_mark(const pc__proc *p, uint64_t mark[2])
{
    mark[0] = p->mb.next;
    mark[1] = p->x ? p->x->cmb.next : 0;
}

void
pc__mb_clear(pc__proc *p)
{
    wake_senders(p); /* they find it gone when they retry */
    ring_clear(&p->mb);
    if (p->x)
        ring_clear(&p->x->cmb);
}
