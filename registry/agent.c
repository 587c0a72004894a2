/* registry/agent.c — the node's registry agent: one daemon task that owns
 * every conversation with the registries.
 *
 * It keeps, as its own unshared state (rc_agent, agent_int.h), the
 * registries (each DOWN, CONNECTING, JOINING or UP), the requests in flight
 * (`op`, matched to replies by id and by the replying registry's node), the
 * names this node holds, the members and the watcher tasks. Callers reach
 * it only through the shared queue (client_int.h); what it writes that
 * callers read is the cache and the registry tasks send their own LOCATEs
 * to. This file is the task itself: its loop takes the queued calls and the
 * messages (replies, events, DOWNs) and hands each to the file of its
 * concern, and answers what passed its deadline. The rest is cut by
 * concern: agent_join.c (connectors, JOIN, re-JOIN, a registry down),
 * agent_names.c (the names held: REGISTER and UNREGISTER everywhere),
 * agent_calls.c (requests in flight, lookups, answers to callers),
 * agent_events.c (members, watchers, the cache) and agent_status.c (the
 * node's status, every status interval).
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/log.h"
#include "picos/monitor.h"
#include "picos/node.h"
#include "picos/task.h"
#include "picos/transport.h"

#include "agent_int.h"

/* Messages the agent takes in a row before it looks at its queue. */
#define BATCH 256

/* ---- dispatch ---------------------------------------------------------------- */

static void
start_call(rc_agent *a, rc_call *c)
{
    switch (c->op) {
    case CALL_JOIN:
        pc__rc_join_wait(a, c);
        return;
    case CALL_WATCH:
        pc__rc_watch(a, c);
        return;
    case CALL_UNWATCH:
        pc__rc_unwatch(a, c);
        return;
    case PICOS__V1__REG_OP__REGISTER:
        pc__rc_register_start(a, c);
        return;
    case PICOS__V1__REG_OP__UNREGISTER:
        pc__rc_unregister_start(a, c);
        return;
    case PICOS__V1__REG_OP__LOCATE:
    case PICOS__V1__REG_OP__LIST_NODES:
    case PICOS__V1__REG_OP__LIST_NAMES:
    case PICOS__V1__REG_OP__STATUS:
    case PICOS__V1__REG_OP__NODES_STATUS:
        pc__rc_lookup_start(a, c);
        return;
    default:
        pc__rc_answer(c, PC_EINVAL, NULL);
    }
}

static void
on_reply(rc_agent *a, const pc_msg *m)
{
    int i = pc__rc_reg_of(a, pc_msg_sender(m).node);
    const void *data;
    size_t len;
    Picos__V1__RegReply *rp;

    if (i < 0)
        return;
    data = pc_msg_data(m, &len);
    if (!(rp = picos__v1__reg_reply__unpack(NULL, len, data))) {
        PC_LOG_WARN("registry", "undecodable reply from %s dropped",
                    a->regs[i].ep);
        return;
    }
    if (a->regs[i].state == R_JOINING && rp->id == a->regs[i].join_id)
        pc__rc_on_join_reply(a, i, rp);
    else if (a->regs[i].state == R_JOINING && rp->id >= a->regs[i].join_first &&
             rp->id < a->regs[i].join_id) {
        /* a chunk refused: the whole JOIN */
        if (rp->status != PICOS__V1__REG_STATUS__OK)
            pc__rc_on_join_reply(a, i, rp);
    } else
        for (rc_op *o = a->ops; o; o = o->next) {
            if (o->id != rp->id || o->st[i] != ST_SENT)
                continue;
            if (pc__rc_is_lookup(o->kind))
                pc__rc_on_lookup_reply(a, i, o, rp);
            else
                pc__rc_on_name_reply(a, i, o, rp);
            break;
        }
    picos__v1__reg_reply__free_unpacked(rp, NULL);
}

static void
on_down(rc_agent *a, const pc_msg *m)
{
    pc_down d;

    if (pc_down_parse(m, &d) != PC_OK)
        return;
    for (int i = 0; i < a->nregs; i++)
        if (pc__rc_joined_reg(&a->regs[i]) &&
            pc_ref_eq(a->regs[i].server, d.who)) {
            pc__rc_reg_down(a, i,
                            d.reason == PC_DOWN_NODE ? "its node went down"
                                                     : "its task ended");
            return;
        }
    pc__rc_watcher_gone(a, d.who);
    pc__rc_names_of_ended(a, d.who);
}

/* ---- the loop ---------------------------------------------------------------- */

static double next_deadline(rc_agent *a);

/* Answer what passed its deadline; a->due says when to look again (only a
 * full pass moves it later: with many lookups in flight, a message costs
 * no walk of them all). */
static void
expire(rc_agent *a, double now)
{
    if (now < a->due)
        return;
    for (rc_op *o = a->ops, *next; o; o = next) {
        next = o->next;
        if (o->deadline > now)
            continue;
        if (!o->answered) {
            if (o->kind == PICOS__V1__REG_OP__REGISTER)
                pc__rc_finish_register(a, o, true);
            else if (o->kind == PICOS__V1__REG_OP__UNREGISTER)
                pc__rc_finish_unregister(a, o, true);
            else {
                o->answered = true;
                pc__rc_answer(o->c, PC_ETIMEDOUT, NULL);
            }
        }
        /* a registration's late answers are still wanted, for a while */
        if (pc__rc_is_lookup(o->kind) || !o->c ||
            o->deadline + 2 * RC_RTT <= now)
            pc__rc_op_free(a, o);
    }
    for (rc_call **cp = &a->joins; *cp;) {
        rc_call *c = *cp;
        if (c->deadline > now) {
            cp = &c->next;
            continue;
        }
        *cp = c->next;
        char text[1024];
        size_t n = 0;
        bool auth = false;
        for (int i = 0; i < a->nregs; i++) {
            auth |= a->regs[i].last_rc == PC_EAUTH;
            n += (size_t)snprintf(
                text + n, n < sizeof text ? sizeof text - n : 0, "%s%s (%s)",
                i ? ", " : "", a->regs[i].ep,
                a->regs[i].last_rc == PC_OK ? "no answer to JOIN"
                                            : pc_strerror(a->regs[i].last_rc));
        }
        PC_LOG_ERROR("registry", "no registry accepted this node in time: %s",
                     text);
        pc__rc_answer(c, auth ? PC_EAUTH : PC_EUNREACH, NULL);
    }
    a->due = next_deadline(a);
}

static double
next_deadline(rc_agent *a)
{
    double d = INFINITY;
    for (rc_op *o = a->ops; o; o = o->next) {
        double t = o->answered ? o->deadline + 2 * RC_RTT : o->deadline;
        if (t < d)
            d = t;
    }
    for (rc_call *c = a->joins; c; c = c->next)
        if (c->deadline < d)
            d = c->deadline;
    return d;
}

/* Take the queued calls; true: the agent is to end. */
static bool
drain(rc_agent *a)
{
    rc_call *q;
    bool stop;

    pthread_mutex_lock(&pc__rc_mu);
    q = a->s->q;
    a->s->q = NULL;
    a->s->qtail = &a->s->q;
    a->s->rung = false;
    stop = a->s->stopping;
    pthread_mutex_unlock(&pc__rc_mu);
    while (q) {
        rc_call *c = q;
        q = c->next;
        c->next = NULL;
        if (stop) {
            pc__rc_answer(c, PC_ESTATE, NULL);
        } else if (c->op == CALL_CONN) {
            pc__rc_conn_result(a, c);
            pc__rc_call_put(c);
        } else
            start_call(a, c);
    }
    return stop;
}

static void
on_exit_(void *arg)
{
    rc_agent *a = arg;
    rc_shared *s = a->s;
    rc_call *q;

    pthread_mutex_lock(&pc__rc_mu);
    if (pc__rc == s)
        pc__rc = NULL;
    q = s->q;
    s->q = NULL;
    pthread_mutex_unlock(&pc__rc_mu);
    while (q) {
        rc_call *c = q;
        q = c->next;
        pc__rc_answer(c, PC_ESTATE, NULL);
    }
    while (a->ops)
        pc__rc_op_free(a, a->ops);
    pc__rc_answer_joins(a, PC_ESTATE, NULL);
    pc__rc_names_clear(&a->held);
    while (a->members) {
        rc_member *m = a->members;
        a->members = m->next;
        free(m);
    }
    while (a->watchers) {
        rc_watcher *w = a->watchers;
        a->watchers = w->next;
        free(w);
    }
    pc__rc_status_fini(a);
    free(a);
    pc__rc_shared_free(s);
}

pc_msg *
pc__rc_agent_main(void *arg)
{
    rc_shared *s = arg;
    rc_agent *a = calloc(1, sizeof *a);

    if (!a) {
        pthread_mutex_lock(&pc__rc_mu);
        s->stopping = true;
        pthread_mutex_unlock(&pc__rc_mu);
        PC_LOG_ERROR("registry", "no memory for the registry agent");
        return NULL; /* the joiner times out and tears s down */
    }
    a->s = s;
    a->self = pc_self();
    a->due = INFINITY;
    a->next_id = 1;
    a->nregs = s->neps;
    for (int i = 0; i < a->nregs; i++) {
        a->regs[i].ep = s->eps[i];
        a->regs[i].last_rc = PC_ETIMEDOUT;
    }
    pc__rc_status_init(a);
    pc_at_exit(on_exit_, a);
    for (int i = 0; i < a->nregs; i++)
        pc__rc_start_connector(a, i, 0);
    for (;;) {
        pc_msg *m = NULL;
        double d, left;

        if (drain(a))
            break;
        pc__rc_publish(a);
        expire(a, pc_now());
        pc__rc_status_tick(a, pc_now());
        d = a->due < a->status_at ? a->due : a->status_at;
        left = d == INFINITY ? -1 : d > pc_now() ? d - pc_now() : 0;
        if (pc_recv(&m, left) != PC_OK)
            continue;
        /* what else waits too (many lookups in flight: many replies),
         * before the queue, deadlines and the published registry again */
        for (int k = 0; k < BATCH; k++) {
            if (k && pc_recv(&m, 0) != PC_OK)
                break;
            if (pc_msg_is(m, RC_MSG_REPLY))
                on_reply(a, m);
            else if (pc_msg_is(m, RC_MSG_EVENT))
                pc__rc_on_event(a, m);
            else if (pc_msg_is(m, PC_MSG_DOWN))
                on_down(a, m);
            pc_msg_free(&m);
        }
    }
    return NULL;
}
