/* actors/send.c — send, deliver and receive.
 *
 * A send to a proc on the caller's worker puts the message straight into
 * its mailbox (and makes it runnable); to another worker a message the
 * sender holds alone travels on the target worker's inbox as it is, others
 * (shared, channel mail, acked sends) in a MSG envelope; to another node it
 * goes to the registered transport. FIFO per
 * sender→receiver holds on each path: one worker runs a sender at a time,
 * and an inbox is FIFO. Receive pops the mailbox or waits in PC__ST_AWAIT_MSG
 * (pc_recv() is in task.c, with the wait it inlines); selective receive
 * scans from a mark (mailbox.c).
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* pc__deliver_local(), inlined into the send path. */
static inline int
deliver(pc__worker *w, pc__proc *p, pc_msg *m, unsigned how)
{
    int rc;

    if (p->state >= PC__ST_ZOMBIE)
        return PC_ENOENT;
    if ((rc = pc__mb_put_fast(p, m, how)) != PC_OK)
        return rc;
    if (p->state == PC__ST_AWAIT_MSG)
        pc__task_wake((pc__task *)p, PC_OK);
    else if (p->state == PC__ST_IDLE)
        pc__runq_push(w, p);
    return PC_OK;
}

int
pc__deliver_local(pc__worker *w, pc__proc *p, pc_msg *m, unsigned how)
{
    return deliver(w, p, m, how);
}

/* send_msg() to a proc of the caller's worker (p), but for its fast path. */
static __attribute__((noinline)) pc_err
send_here(pc__worker *tw, pc__proc *p, pc_ref to, pc_msg **m, unsigned how,
          double timeout, pc__ack_fn ack, void *ctx)
{
    pc_err rc;

    /* only ordinary mail waits for room (or is refused at the call) */
    if (!how && p->mb_cap && (rc = pc__mb_admit(tw, to, &p, timeout)) != PC_OK)
        return rc;
    rc = deliver(tw, p, *m, how);
    if (rc != PC_OK && rc != PC_EFULL)
        return rc;
    if (rc == PC_EFULL) /* dropped by the policy, as across workers */
        pc_msg_free(m);
    *m = NULL;
    if (ack)
        ack(ctx, rc);
    return PC_OK;
}

/* send_msg() to another worker's proc (tw), or after pc__route()'s rc. */
static __attribute__((noinline)) pc_err
send_there(pc__worker *tw, pc_err rc, pc_ref to, pc_msg **m, unsigned how,
           pc__ack_fn ack, void *ctx)
{
    if (rc != PC_OK) {
        if (rc == PC_EUNREACH && !ack)
            return pc__remote_send(to, m, (how & PC__MB_CHAN) != 0);
        return rc;
    }
    if (!how && !ack &&
        atomic_load_explicit(&(*m)->refs, memory_order_acquire) == 1) {
        pc__msg_post(tw, to, *m); /* ours alone: it is its own envelope */
        *m = NULL;
        return PC_OK;
    }
    pc__env *e = pc__env_new(PC__ENV_MSG);
    if (!e)
        return PC_ENOMEM;
    e->to = to;
    e->msg = *m;
    e->how = (uint8_t)how;
    e->ack = ack;
    e->ptr = ctx;
    *m = NULL;
    pc__env_push(tw, e);
    return PC_OK;
}

/* pc_send, pc_send_timeout, pc__send_ex: *m is consumed only on PC_OK.
 * Inline, with the common case written out (ordinary mail to an unbounded
 * mailbox of the caller's worker that is empty: one message in place, a
 * wake), so that a send from pc_send_data() makes no call at all; the rest
 * is out of line. */
static inline __attribute__((always_inline)) pc_err
send_msg(pc_ref to, pc_msg **m, unsigned how, double timeout, pc__ack_fn ack,
         void *ctx)
{
    pc__worker *tw = NULL;
    pc__proc *p;
    pc_err rc;

    if (!m || !*m)
        return PC_EINVAL;
    if ((rc = pc__route(to, &tw, &p)) != PC_OK || !p)
        return send_there(tw, rc, to, m, how, ack, ctx);
    if (how || p->mb_cap || p->state >= PC__ST_ZOMBIE ||
        !pc__ring_put_one(&p->mb, *m))
        return send_here(tw, p, to, m, how, timeout, ack, ctx);
    if (p->state == PC__ST_AWAIT_MSG)
        pc__task_wake((pc__task *)p, PC_OK);
    else if (p->state == PC__ST_IDLE)
        pc__runq_push(tw, p);
    *m = NULL;
    if (ack)
        ack(ctx, PC_OK);
    return PC_OK;
}

pc_err
pc__send_ex(pc_ref to, pc_msg **m, unsigned how, pc__ack_fn ack, void *ctx)
{
    return send_msg(to, m, how, -1, ack, ctx);
}

void
pc__send_sys(pc_ref to, pc_msg **m)
{
    if (send_msg(to, m, PC__MB_SYS, -1, NULL, NULL) != PC_OK)
        pc_msg_free(m);
}

pc_err
pc_send_timeout(pc_ref to, pc_msg **m, double timeout)
{
    pc_err rc;

    if (!m || !*m)
        return PC_EINVAL;
    if ((rc = pc__msg_stamp_self(m)) != PC_OK)
        return rc;
    if ((rc = send_msg(to, m, 0, timeout, NULL, NULL)) == PC_OK)
        pc__count_sent();
    return rc;
}

pc_err
pc_send(pc_ref to, pc_msg **m)
{
    return pc_send_timeout(to, m, -1);
}

/* pc_send_data() in general: make the message, send it. */
static __attribute__((noinline)) pc_err
send_data(pc_ref to, const char *type, const void *data, size_t len)
{
    pc_msg *m;
    pc_err rc = pc__msg_new(&m, type, data, len);

    /* a new message already names its maker, pc_self(): no stamp needed */
    if (rc == PC_OK && (rc = send_msg(to, &m, 0, -1, NULL, NULL)) != PC_OK)
        pc_msg_free(&m);
    if (rc == PC_OK)
        pc__count_sent();
    return rc;
}

/* The length of type when the type, NUL and len bytes of payload fit a
 * cached message, else more than PC__MSG_SMALL_ROOM (a loop, not a call:
 * types are short). */
static inline size_t
short_type_len(const char *type, size_t len)
{
    size_t n = 0, max = PC__MSG_SMALL_ROOM - 2 - len;

    if (len > PC__MSG_SMALL_ROOM - 2)
        return PC__MSG_SMALL_ROOM;
    while (n <= max && type[n])
        n++;
    return n;
}

/* pc_send_data() of a type of tlen bytes, with its common case written out
 * and no call in it (so it needs no stack frame): a proc sends a short
 * message, for which its worker's cache has a block at hand, to a proc of
 * the same worker with an empty unbounded mailbox. The rest is
 * send_data(). */
static inline __attribute__((always_inline)) pc_err
send_data_fast(pc_ref to, const char *type, size_t tlen, const void *data,
               size_t len)
{
    pc__worker *w = pc__tls_worker, *tw;
    pc__proc *p;
    int cls;
    pc_msg *m;

    if (!w || !w->cur || !type || (!data && len) || tlen > PC__MSG_SMALL_ROOM ||
        len > PC__MSG_SMALL_ROOM || tlen + len + 2 > PC__MSG_SMALL_ROOM ||
        pc__route(to, &tw, &p) != PC_OK || !p || p->mb_cap ||
        p->state >= PC__ST_ZOMBIE || p->mb.cap || p->mb.len)
        return send_data(to, type, data, len);
    cls = tlen + len + 2 <= PC__MSG_TINY_ROOM ? PC__CACHE_MSG_TINY
                                              : PC__CACHE_MSG;
    pc__cache *k = &w->caches[cls];
    if (!(m = k->local))
        return send_data(to, type, data, len);
    k->local = *(void **)m; /* pc__cache_get()'s fast path */
    if (k->nlocal)
        k->nlocal--;
    pc__msg_init(m, (uint16_t)(w->index + 1), cls, pc__proc_ref(w->cur), type,
                 tlen, len, 0);
    pc__copy(m->data, data, len);
    p->mb.one = m; /* pc__ring_put_one() into the empty ring */
    p->mb.len = p->mb.live = 1;
    p->mb.next++;
    if (p->state == PC__ST_AWAIT_MSG)
        pc__task_wake((pc__task *)p, PC_OK);
    else if (p->state == PC__ST_IDLE)
        pc__runq_push(w, p);
    pc__count(&w->st.sent, 1);
    return PC_OK;
}

pc_err(pc_send_data)(pc_ref to, const char *type, const void *data, size_t len)
{
    return send_data_fast(to, type, type ? short_type_len(type, len) : 0, data,
                          len);
}

pc_err
pc_send_data_n(pc_ref to, const char *type, size_t type_len, const void *data,
               size_t len)
{
    return send_data_fast(to, type, type_len, data, len);
}

/* pc_deliver, but for the count. */
static pc_err
deliver_msg(pc_ref to, pc_msg **m, double timeout)
{
    pc__worker *w = pc__tls_worker, *tw;
    pc__proc *p;
    pc_err rc;

    if (!m || !*m)
        return PC_EINVAL;
    if (w && w->cur && !pc__cur_task(w))
        return PC_EPERM;
    if ((rc = pc__msg_stamp_self(m)) != PC_OK)
        return rc;
    if ((rc = pc__route(to, &tw, &p)) != PC_OK)
        return rc == PC_EUNREACH ? pc__remote_deliver(to, m, timeout) : rc;
    if (p) {
        if (p->mb_cap && (rc = pc__mb_admit(tw, to, &p, timeout)) != PC_OK)
            return rc;
        if ((rc = pc__deliver_local(tw, p, *m, 0)) == PC_OK)
            *m = NULL;
        return rc;
    }
    if (timeout == 0)
        return PC_ETIMEDOUT; /* only a wait could confirm it: nothing sent */
    pc__env *e = pc__env_new(PC__ENV_MSG);
    if (!e)
        return PC_ENOMEM;
    e->to = to;
    e->msg = pc_msg_ref(*m); /* ours stays with the caller until the verdict */
    if ((rc = pc__request(tw, e, timeout, NULL)) == PC_OK)
        pc_msg_free(m);
    return rc;
}

pc_err
pc_deliver(pc_ref to, pc_msg **m, double timeout)
{
    pc_err rc = deliver_msg(to, m, timeout);

    if (rc == PC_OK)
        pc__count_sent();
    return rc;
}

pc_mark
pc_mailbox_mark(void)
{
    pc__worker *w = pc__tls_worker;
    pc_mark mk = {{0, 0}};

    if (w && w->cur)
        pc__mb_mark(w->cur, mk.seq);
    return mk;
}

pc_err
pc_recv_match(pc_match_fn match, void *ctx, const pc_mark *after, pc_msg **out,
              double timeout)
{
    pc__worker *w = pc__tls_worker;
    pc__task *t = pc__cur_task(w);
    uint64_t from[2] = {0, 0};
    double deadline = pc_deadline(timeout), left = timeout;

    if (!out || !match)
        return PC_EINVAL;
    *out = NULL;
    if (!t)
        return PC_EPERM;
    if (after) {
        from[0] = after->seq[0];
        from[1] = after->seq[1];
    }
    for (;;) {
        if ((*out = pc__mb_take(&t->p, from, match, ctx))) {
            pc__count(&w->st.received, 1);
            return PC_OK;
        }
        if (timeout > 0 && (left = pc_deadline_left(deadline)) <= 0)
            return PC_ETIMEDOUT;
        if (timeout == 0 ||
            pc__task_wait(w, t, PC__ST_AWAIT_MSG, left) == PC_ETIMEDOUT) {
            *out = pc__mb_take(&t->p, from, match, ctx); /* raced the timer */
            if (!*out)
                return PC_ETIMEDOUT;
            pc__count(&w->st.received, 1);
            return PC_OK;
        }
    }
}

static bool
type_is(const pc_msg *m, void *type)
{
    return pc_msg_is(m, type);
}

pc_err
pc_recv_type(const char *type, pc_msg **out, double timeout)
{
    if (!type)
        return PC_EINVAL;
    return pc_recv_match(type_is, (void *)type, NULL, out, timeout);
}

static void
stats_fill(const pc__proc *p, pc_mailbox_stats *st)
{
    st->depth = pc__mb_len(p);
    st->cap = p->mb_cap;
    st->dropped = p->x ? p->x->mb_dropped : 0;
    st->refused = p->x ? p->x->mb_refused : 0;
    st->over = p->x ? p->x->mb_over : 0;
}

pc_err
pc_mailbox_stats_get(pc_ref ref, pc_mailbox_stats *out, double timeout)
{
    pc__worker *tw;
    pc__proc *p;
    pc_msg *reply = NULL;
    size_t len;
    int rc;

    if (!out)
        return PC_EINVAL;
    memset(out, 0, sizeof *out);
    if ((rc = pc__route(ref, &tw, &p)) != PC_OK)
        return rc;
    if (p) {
        stats_fill(p, out);
        return PC_OK;
    }
    if (pc__tls_worker && pc__tls_worker->cur && !pc__cur_task(pc__tls_worker))
        return PC_EPERM;
    if (timeout == 0)
        return PC_ETIMEDOUT; /* only its worker can read it: that's a wait */
    pc__env *e = pc__env_new(PC__ENV_STATS);
    if (!e)
        return PC_ENOMEM;
    e->to = ref;
    /* the answer comes as a message, freed by the runtime if we gave up */
    rc = pc__request(tw, e, timeout, &reply);
    if (rc == PC_OK) {
        const void *d = pc_msg_data(reply, &len);
        if (len == sizeof *out)
            memcpy(out, d, sizeof *out);
        else
            rc = PC_EPROTO;
    }
    pc_msg_free(&reply);
    return rc;
}

void
pc__stats_local(pc__worker *w, pc__env *e)
{
    pc__proc *p = pc__proc_lookup(w, e->to);
    pc_mailbox_stats st;
    pc_msg *m = NULL;

    if (!p) {
        pc__reply(e->rt, PC_ENOENT, NULL);
        return;
    }
    stats_fill(p, &st);
    pc_msg_new(&m, "picos.mbox.stats", &st, sizeof st);
    pc__reply(e->rt, m ? PC_OK : PC_ENOMEM, m);
}

void
pc__msg_local(pc__worker *w, pc__env *e)
{
    pc__proc *p = pc__proc_lookup(w, e->to);
    int rc;

    rc = p ? pc__deliver_local(w, p, e->msg, e->how) : PC_ENOENT;
    if (rc == PC_OK) {
        e->msg = NULL;
    } else {
        if (rc != PC_EFULL) /* the policy's drops are counted by the mailbox */
            pc__count(&w->st.dropped, 1);
        pc_msg_free(&e->msg); /* refused, dropped or too late: counted */
    }
    if (e->rt.sync || e->rt.token)
        pc__reply(e->rt, rc, NULL);
    if (e->ack)
        e->ack(e->ptr, rc);
}

size_t
pc_mailbox_depth(void)
{
    pc__worker *w = pc__tls_worker;

    return (w && w->cur) ? pc__mb_len(w->cur) : 0;
}
