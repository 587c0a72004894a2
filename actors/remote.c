/* actors/remote.c — the runtime's side of the transport interface.
 *
 * One transport at a time is registered (picos/transport.h). Calls into it
 * are bracketed by an in-flight counter: a caller bumps it, then loads the
 * ops pointer; unregister swaps the pointer to NULL, then waits for the
 * counter to drain, so no op runs once unregister returns and stop() is
 * called (seq_cst on both sides: either the caller sees NULL, or the
 * unregisterer sees the caller's increment).
 *
 * The runtime keeps, under one mutex, what it must settle when a peer node
 * dies: the pending tickets (deliver and join requests to remote refs, each
 * with the reply_to of its waiter) and the remote watches (local procs
 * monitoring or linked to remote ones). pc_transport_node_down() walks both
 * for that node. Lists, not hash tables: they hold what is in flight or
 * watched across nodes, which is small next to local traffic.
 */
#include <math.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct ticket {
    struct ticket *next;
    uint64_t id, node;
    pc__reply_to rt;
} ticket;

typedef struct watch {
    struct watch *next;
    pc_ref local, remote;
    bool link; /* else a monitor */
} watch;

static pc_transport_ops the_ops;
static _Atomic(const pc_transport_ops *) cur_ops;
static atomic_int inflight;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static ticket *tickets;
static watch *watches;
static uint64_t next_ticket = 1;

static const pc_transport_ops *
ops_get(void)
{
    const pc_transport_ops *o;

    atomic_fetch_add(&inflight, 1);
    if (!(o = atomic_load(&cur_ops)))
        atomic_fetch_sub(&inflight, 1);
    return o;
}

static void
ops_put(void)
{
    atomic_fetch_sub(&inflight, 1);
}

pc_err
pc_transport_register(const pc_transport_ops *ops)
{
    const pc_transport_ops *none = NULL;

    if (!ops || !ops->send)
        return PC_EINVAL;
    if (!pc__the_node)
        return PC_ESTATE;
    pthread_mutex_lock(&mu);
    if (atomic_load(&cur_ops)) {
        pthread_mutex_unlock(&mu);
        return PC_ESTATE;
    }
    the_ops = *ops;
    atomic_compare_exchange_strong(&cur_ops, &none, &the_ops);
    pthread_mutex_unlock(&mu);
    PC_LOG_DEBUG("transport", "registered %s", ops->name ? ops->name : "?");
    return PC_OK;
}

/* Take every ticket (of `node`, or all with node 0) off the list and fail
 * its waiter with rc. */
static void
fail_tickets(uint64_t node, int rc)
{
    ticket *t, *fail = NULL, **tp;

    pthread_mutex_lock(&mu);
    for (tp = &tickets; (t = *tp);) {
        if (!node || t->node == node) {
            *tp = t->next;
            t->next = fail;
            fail = t;
        } else {
            tp = &t->next;
        }
    }
    pthread_mutex_unlock(&mu);
    while ((t = fail)) {
        fail = t->next;
        pc__wake(t->rt, rc, NULL, NULL);
        free(t);
    }
}

pc_err
pc_transport_unregister(void)
{
    const pc_transport_ops *o = atomic_exchange(&cur_ops, NULL);

    if (!o)
        return PC_ESTATE;
    while (atomic_load(&inflight) > 0)
        sched_yield(); /* an op is queueing its work: microseconds */
    if (o->stop)
        o->stop(o->ctx);
    fail_tickets(0, PC_EUNREACH);
    return PC_OK;
}

void
pc__transport_fini(void)
{
    watch *w;

    pc_transport_unregister();
    pthread_mutex_lock(&mu);
    while ((w = watches)) {
        watches = w->next;
        free(w);
    }
    pthread_mutex_unlock(&mu);
}

uint64_t
pc_node_incarnation(void)
{
    return pc__the_node ? pc__the_node->incarnation : 0;
}

/* ---- calls out ------------------------------------------------------------- */

pc_err
pc__remote_send(pc_ref to, pc_msg **m, bool chan)
{
    const pc_transport_ops *o = ops_get();
    pc_err rc;

    if (!o)
        return PC_EUNREACH;
    rc = o->send(o->ctx, to, m, chan);
    ops_put();
    return rc;
}

/* Wait for the answer to a ticket request made by `call`; returns the
 * reply's rc (and *value), PC_ETIMEDOUT, or the op's own error. */
static int
ticket_wait(pc_ref to, double timeout, pc_msg **value,
            pc_err (*call)(const pc_transport_ops *o, uint64_t id, void *arg),
            void *arg)
{
    pc__worker *w = pc__tls_worker;
    ticket *t = calloc(1, sizeof *t);
    const pc_transport_ops *o;
    int rc;

    if (!t)
        return PC_ENOMEM;
    if ((rc = pc__wait_prepare(&t->rt)) != PC_OK) {
        free(t);
        return rc;
    }
    pthread_mutex_lock(&mu);
    t->id = next_ticket++;
    t->node = to.node;
    t->next = tickets;
    tickets = t;
    pthread_mutex_unlock(&mu);
    uint64_t id = t->id;
    pc__reply_to rt = t->rt; /* t may be freed by a reply from now on */
    if (!(o = ops_get())) {
        rc = PC_EUNREACH;
    } else {
        rc = call(o, id, arg);
        ops_put();
    }
    if (rc != PC_OK) { /* nobody will answer: take it back */
        pthread_mutex_lock(&mu);
        for (ticket **tp = &tickets; *tp; tp = &(*tp)->next) {
            if ((*tp)->id == id) {
                t = *tp;
                *tp = t->next;
                pthread_mutex_unlock(&mu);
                pc__wait_cancel(&t->rt);
                free(t);
                return rc;
            }
        }
        pthread_mutex_unlock(&mu);
        /* answered meanwhile (node down): fall through and take it */
    }
    (void)w;
    pc_msg *reply = NULL;
    rc = pc__wait_block_msg(&rt, timeout, NULL, &reply);
    if (rc == PC_ETIMEDOUT) {
        bool mine = false;
        pthread_mutex_lock(&mu);
        for (ticket **tp = &tickets; *tp; tp = &(*tp)->next) {
            if ((*tp)->id == id) {
                t = *tp;
                *tp = t->next;
                mine = true;
                break;
            }
        }
        pthread_mutex_unlock(&mu);
        if (mine) {
            pc__wait_drop(&t->rt);
            free(t);
        }
        return PC_ETIMEDOUT;
    }
    if (value)
        *value = reply;
    else
        pc_msg_free(&reply);
    return rc;
}

struct deliver_arg {
    pc_ref to;
    pc_msg **m;
    double deadline;
};

static pc_err
call_deliver(const pc_transport_ops *o, uint64_t id, void *arg)
{
    struct deliver_arg *a = arg;

    if (!o->deliver)
        return PC_ENOTSUP;
    return o->deliver(o->ctx, a->to, a->m, a->deadline, id);
}

pc_err
pc__remote_deliver(pc_ref to, pc_msg **m, double timeout)
{
    pc_msg *keep = pc_msg_ref(*m); /* the caller keeps it on any error */
    struct deliver_arg a = {to, m, pc_deadline(timeout)};
    int rc = ticket_wait(to, timeout, NULL, call_deliver, &a);

    if (rc == PC_OK) {
        pc_msg_free(&keep);
        *m = NULL;
    } else {
        if (*m) /* the op refused it: drop our extra reference */
            pc_msg_free(&keep);
        else
            *m = keep; /* it left: the caller holds the reference we kept */
    }
    return rc;
}

static pc_err
call_join(const pc_transport_ops *o, uint64_t id, void *arg)
{
    pc_ref *to = arg;

    if (!o->join)
        return PC_ENOTSUP;
    return o->join(o->ctx, *to, pc_deadline(-1), id);
}

pc_err
pc__remote_join(pc_ref to, double timeout, pc_msg **value)
{
    if (timeout == 0)
        return PC_ETIMEDOUT; /* another node: only a wait could tell */
    return ticket_wait(to, timeout, value, call_join, &to);
}

pc_err
pc__remote_terminate(pc_ref to)
{
    const pc_transport_ops *o = ops_get();
    pc_err rc;

    if (!o)
        return PC_EUNREACH;
    rc = o->terminate ? o->terminate(o->ctx, to) : PC_ENOTSUP;
    ops_put();
    return rc;
}

static void
watch_set(pc_ref local, pc_ref remote, bool link, bool on)
{
    watch *w, **wp;

    pthread_mutex_lock(&mu);
    for (wp = &watches; (w = *wp); wp = &w->next) {
        if (w->link == link && pc_ref_eq(w->local, local) &&
            pc_ref_eq(w->remote, remote))
            break;
    }
    if (on && !w && (w = malloc(sizeof *w))) {
        *w = (watch){watches, local, remote, link};
        watches = w;
    } else if (!on && w) {
        *wp = w->next;
        free(w);
    }
    pthread_mutex_unlock(&mu);
}

pc_err
pc__remote_monitor(pc_ref watcher, pc_ref target, bool on)
{
    const pc_transport_ops *o = ops_get();
    pc_err rc;

    if (!o)
        return PC_EUNREACH;
    rc = o->monitor ? o->monitor(o->ctx, watcher, target, on) : PC_ENOTSUP;
    ops_put();
    if (rc == PC_OK)
        watch_set(watcher, target, false, on);
    return rc;
}

pc_err
pc__remote_link(pc_ref local, pc_ref remote, bool on)
{
    const pc_transport_ops *o = ops_get();
    pc_err rc;

    if (!o)
        return PC_EUNREACH;
    rc = o->link ? o->link(o->ctx, local, remote, on) : PC_ENOTSUP;
    ops_put();
    if (rc == PC_OK)
        watch_set(local, remote, true, on);
    return rc;
}

pc_err
pc__remote_exit(pc_ref from, pc_ref to, pc_msg **exit)
{
    const pc_transport_ops *o = ops_get();
    pc_err rc;

    if (!o)
        return PC_EUNREACH;
    rc = o->exit_signal ? o->exit_signal(o->ctx, from, to, exit) : PC_ENOTSUP;
    ops_put();
    return rc;
}

/* ---- calls in ------------------------------------------------------------------- */

pc_err
pc_transport_inject(pc_ref to, pc_msg **m, bool chan,
                    void (*ack)(void *ctx, pc_err rc), void *ctx)
{
    pc_down d;

    if (!m || !*m)
        return PC_EINVAL;
    if (!pc__the_node || to.node != pc__the_node->id)
        return PC_EUNREACH;
    /* a DOWN from a remote target ends the watch kept for node-down */
    if (pc_msg_is(*m, PC_MSG_DOWN) && pc_down_parse(*m, &d) == PC_OK)
        watch_set(to, d.who, false, false);
    return pc__send_ex(to, m, chan ? PC__MB_CHAN : 0, (pc__ack_fn)ack, ctx);
}

void
pc_transport_reply(uint64_t id, pc_err rc, pc_msg *value)
{
    ticket *t, **tp;

    pthread_mutex_lock(&mu);
    for (tp = &tickets; (t = *tp); tp = &t->next) {
        if (t->id == id) {
            *tp = t->next;
            break;
        }
    }
    pthread_mutex_unlock(&mu);
    if (!t) {
        pc_msg_free(&value); /* given up: late */
        return;
    }
    pc__wake(t->rt, rc, value, NULL);
    free(t);
}

pc_err
pc_transport_monitor_in(pc_ref watcher, pc_ref target, bool on)
{
    if (!pc__the_node || target.node != pc__the_node->id)
        return PC_EUNREACH;
    return on ? pc__mon_request(PC__ENV_MONITOR, target, watcher)
              : pc__mon_request(PC__ENV_DEMONITOR, target, watcher);
}

pc_err
pc_transport_link_in(pc_ref remote, pc_ref local, bool on)
{
    if (!pc__the_node || local.node != pc__the_node->id)
        return PC_EUNREACH;
    return pc__mon_request(on ? PC__ENV_LINK : PC__ENV_UNLINK, local, remote);
}

pc_err
pc_transport_exit_in(pc_ref from, pc_ref to, pc_msg **exit)
{
    pc_down d;

    if (!exit || !*exit || pc_down_parse(*exit, &d) != PC_OK)
        return PC_EINVAL;
    if (!pc__the_node || to.node != pc__the_node->id)
        return PC_EUNREACH;
    watch_set(to, from, true, false);
    pc__mon_exit(to, from, (int)d.reason, *exit);
    *exit = NULL;
    return PC_OK;
}

void
pc_transport_node_down(uint64_t node)
{
    watch *w, *gone = NULL, **wp;

    pthread_mutex_lock(&mu);
    for (wp = &watches; (w = *wp);) {
        if (w->remote.node == node) {
            *wp = w->next;
            w->next = gone;
            gone = w;
        } else {
            wp = &w->next;
        }
    }
    pthread_mutex_unlock(&mu);
    while ((w = gone)) {
        gone = w->next;
        pc__mon_node_down(w->local, w->remote, w->link);
        free(w);
    }
    fail_tickets(node, PC_EUNREACH);
}

/* ---- refs on the wire ---------------------------------------------------------- */

static void
put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t
get64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

size_t
pc_ref_encode(pc_ref r, uint64_t incarnation, void *buf, size_t size)
{
    unsigned char *p = buf;

    if (!p || size < PC_REF_WIRE_SIZE)
        return 0;
    p[0] = 1;
    put64(p + 1, r.node);
    put64(p + 9, incarnation);
    put64(p + 17, r.id);
    return PC_REF_WIRE_SIZE;
}

pc_err
pc_ref_decode(const void *buf, size_t len, pc_ref *r, uint64_t *incarnation)
{
    const unsigned char *p = buf;

    if (!p || !r || len != PC_REF_WIRE_SIZE)
        return PC_EINVAL;
    if (p[0] != 1)
        return PC_EPROTO;
    r->node = get64(p + 1);
    if (incarnation)
        *incarnation = get64(p + 9);
    r->id = get64(p + 17);
    return PC_OK;
}
