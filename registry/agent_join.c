/* registry/agent_join.c — the agent's registries: connecting, JOINing,
 * JOINing again, and what a registry going down takes with it.
 *
 * Connecting blocks (pc_node_connect, pc_locate_at of the registry task),
 * so each registry that is not joined has a connector task of its own that
 * retries with backoff (0.1 s doubling to 1 s) and posts each result to
 * the queue; the agent itself never blocks on a registry, and a dead one
 * only delays what is addressed to it. A JOIN carries the names this node
 * holds, in chunks of RC_JOIN_CHUNK bytes so that a node with many names
 * still fits the frame limit. When a joined registry's server task goes
 * DOWN (its node declared down by the links), the agent forgets the cache
 * entries it gave, moves lookups in flight to the next joined registry
 * (none: PC_EUNREACH), counts it as silent for registrations, and starts
 * its connector again: back, it is JOINed again with every name. The
 * registry tasks send their own LOCATEs to is published here (the first
 * one up: publish()); when that one goes down the tasks waiting for such a
 * reply are woken (waiters_wake()).
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

#define RC_JOIN_TIMEOUT_MS 10000u
/* A JOIN's names go in chunks of at most this many packed bytes, well
 * under a peer's frame limit (1 MiB by default). */
#define RC_JOIN_CHUNK (256u * 1024u)

/* ---- JOIN -------------------------------------------------------------------- */

typedef struct collect {
    Picos__V1__NameEntry *e;
    Picos__V1__NameEntry **ep;
    Picos__V1__Ref *r;
    size_t n;
} collect;

static bool
collect_one(rc_name *h, void *ctx)
{
    collect *k = ctx;
    Picos__V1__NameEntry *e = &k->e[k->n];

    picos__v1__name_entry__init(e);
    e->kind = (Picos__V1__NameKind)h->info.kind;
    e->name = h->info.name;
    pc__rc_ref_pb(&k->r[k->n], h->info.ref);
    e->ref = &k->r[k->n];
    e->claimed_us = h->claimed_us;
    k->ep[k->n] = e;
    k->n++;
    return false;
}

/* JOIN registry i with every name held: in chunks of RC_JOIN_CHUNK bytes
 * of names (RegRequest.more on all but the last), consecutive ids, sent
 * in one go (the link keeps their order); the join is done at the last
 * one's reply. */
void
pc__rc_send_join(rc_agent *a, int i)
{
    Picos__V1__RegRequest rq = PICOS__V1__REG_REQUEST__INIT;
    Picos__V1__NodeInfo self = a->s->self;
    Picos__V1__Ref ar;
    size_t n = a->held.n ? a->held.n : 1, start = 0;
    collect k = {calloc(n, sizeof *k.e), calloc(n, sizeof *k.ep),
                 calloc(n, sizeof *k.r), 0};
    rc_reg *r = &a->regs[i];
    uint64_t first = a->next_id;

    if (!k.e || !k.ep || !k.r) {
        PC_LOG_ERROR("registry", "no memory to join %s", r->ep);
        goto out;
    }
    pc__rc_names_drop_if(&a->held, collect_one, &k);
    pc__rc_ref_pb(&ar, a->self);
    self.agent = &ar;
    rq.op = PICOS__V1__REG_OP__REG_JOIN;
    rq.timeout_ms = RC_JOIN_TIMEOUT_MS;
    rq.node = &self;
    do {
        size_t end = start, bytes = 0;
        while (end < k.n) {
            /* the entry, its tag and its length */
            size_t len = picos__v1__name_entry__get_packed_size(k.ep[end]) + 4;
            if (end > start && bytes + len > RC_JOIN_CHUNK)
                break;
            bytes += len;
            end++;
        }
        rq.id = a->next_id++;
        rq.more = end < k.n;
        rq.n_names = end - start;
        rq.names = k.ep + start;
        if (!pc__rc_send_req(a, i, &rq))
            goto out; /* the registry drops the part at our next JOIN */
        start = end;
    } while (start < k.n);
    r->join_first = first;
    r->join_id = rq.id;
    r->state = R_JOINING;
    if (r->ever_up)
        pc__rc_stat_add(&a->s->stats.rejoins, 1);
out:
    free(k.e);
    free(k.ep);
    free(k.r);
}

/* ---- connectors -------------------------------------------------------------- */

typedef struct conn_arg {
    uint64_t gen;
    int reg;
    double delay;
    char ep[PC_ENDPOINT_MAX + 1];
} conn_arg;

static bool
wanted(uint64_t gen)
{
    bool ok;
    pthread_mutex_lock(&pc__rc_mu);
    ok = pc__rc && pc__rc->gen == gen && !pc__rc->stopping;
    pthread_mutex_unlock(&pc__rc_mu);
    return ok;
}

static pc_msg *
connector(void *arg)
{
    conn_arg *ca = arg;

    pc_at_exit(free, ca);
    for (;;) {
        uint64_t node = 0;
        pc_ref ref = PC_REF_NIL;
        rc_call *c;
        pc_err rc;

        if (ca->delay > 0)
            pc_sleep(ca->delay);
        if (!wanted(ca->gen))
            return NULL;
        /* (a first connection can take more than a second: a Hello that
         * meets no connection yet waits for the link tick) */
        rc = pc_node_connect(ca->ep, 5.0, &node);
        if (rc == PC_OK)
            rc = pc_locate_at(ca->ep, PC_REGISTRY_TASK, 2.0, &ref);
        if (!(c = pc__rc_call_new(CALL_CONN, -1, false)))
            return NULL;
        c->gen = ca->gen;
        c->reg = ca->reg;
        c->node = node;
        c->ref = ref;
        c->rc = rc;
        if (pc__rc_submit(c) != PC_OK) {
            pc__rc_call_put(c);
            return NULL;
        }
        pc__rc_call_put(c);
        if (rc == PC_OK)
            return NULL;
        ca->delay = ca->delay < 0.1    ? 0.1
                    : ca->delay >= 0.5 ? 1.0
                                       : ca->delay * 2;
    }
}

void
pc__rc_start_connector(rc_agent *a, int i, double delay)
{
    pc_spawn_opts so = {.worker = PC_WORKER_SELF,
                        .flags = PC_TASK_DAEMON,
                        .name = "picos.registry-connect"};
    conn_arg *ca = calloc(1, sizeof *ca);

    a->regs[i].state = R_CONNECTING;
    if (!ca)
        return;
    ca->gen = a->s->gen;
    ca->reg = i;
    ca->delay = delay;
    snprintf(ca->ep, sizeof ca->ep, "%s", a->regs[i].ep);
    if (pc_spawn(connector, ca, &so, NULL) != PC_OK) {
        free(ca);
        PC_LOG_ERROR("registry", "can't start connecting to %s", a->regs[i].ep);
    }
}

/* ---- direct lookups ---------------------------------------------------------- */

/* Publish where tasks send their LOCATEs: the first registry up (the one
 * pc__rc_lookup_next() would pick). Under pc__rc_mu. */
static void
publish_locked(rc_agent *a)
{
    rc_shared *s = a->s;

    s->lk_reg = -1;
    for (int i = 0; i < a->nregs; i++)
        if (a->regs[i].state == R_UP) {
            s->lk_reg = i;
            s->lk_server = a->regs[i].server;
            s->lk_node = a->regs[i].node;
            break;
        }
}

void
pc__rc_publish(rc_agent *a)
{
    pthread_mutex_lock(&pc__rc_mu);
    publish_locked(a);
    pthread_mutex_unlock(&pc__rc_mu);
}

/* Registry i is down: no task sends it LOCATEs from now on, and every task
 * waiting for one it sent there is woken by an RC_MSG_GONE (sent outside
 * the mutex: a send may wait). */
static void
waiters_wake(rc_agent *a, int i)
{
    pc_ref to[32];
    size_t n;

    pthread_mutex_lock(&pc__rc_mu);
    a->s->lk_epoch++;
    publish_locked(a);
    pthread_mutex_unlock(&pc__rc_mu);
    do {
        n = 0;
        pthread_mutex_lock(&pc__rc_mu);
        for (rc_waiter **wp = &a->s->waiters; *wp && n < 32;) {
            rc_waiter *w = *wp;
            if (w->reg != i) {
                wp = &w->next;
                continue;
            }
            *wp = w->next;
            w->gone = true; /* the task takes the RC_MSG_GONE */
            to[n++] = w->task;
        }
        pthread_mutex_unlock(&pc__rc_mu);
        for (size_t k = 0; k < n; k++)
            pc_send_data(to[k], RC_MSG_GONE, NULL, 0);
    } while (n == 32);
}

/* ---- registries -------------------------------------------------------------- */

bool
pc__rc_joined_reg(const rc_reg *r)
{
    return r->state == R_JOINING || r->state == R_UP;
}

int
pc__rc_reg_of(rc_agent *a, uint64_t node)
{
    for (int i = 0; i < a->nregs; i++)
        if (pc__rc_joined_reg(&a->regs[i]) && a->regs[i].node == node)
            return i;
    return -1;
}

void
pc__rc_join_wait(rc_agent *a, rc_call *c)
{
    for (int i = 0; i < a->nregs; i++)
        if (a->regs[i].state == R_UP) {
            pc__rc_answer(c, PC_OK, NULL);
            return;
        }
    c->next = a->joins;
    a->joins = c;
    if (c->deadline < a->due)
        a->due = c->deadline;
}

void
pc__rc_answer_joins(rc_agent *a, pc_err rc, const char *text)
{
    rc_call *c;
    while ((c = a->joins)) {
        a->joins = c->next;
        pc__rc_answer(c, rc, text);
    }
}

static bool
by_reg(rc_name *e, void *ctx)
{
    return e->reg == *(int *)ctx;
}

/* Registry i does not answer from now on. */
void
pc__rc_reg_down(rc_agent *a, int i, const char *why)
{
    rc_reg *r = &a->regs[i];

    if (r->state == R_UP)
        PC_LOG_WARN("registry",
                    "registry %s is down (%s): joining it again "
                    "when it is back",
                    r->ep, why);
    r->state = R_DOWN;
    pc_demonitor(a->self, r->server);
    pc__rc_cache_drop_if(a, by_reg, &i);
    waiters_wake(a, i);
    for (rc_op *o = a->ops, *next; o; o = next) {
        next = o->next;
        if (o->st[i] != ST_SENT)
            continue;
        o->st[i] = ST_SILENT;
        o->out--;
        if (pc__rc_is_lookup(o->kind)) {
            if (!o->answered)
                pc__rc_lookup_next(a, o, i);
            else
                pc__rc_op_free(a, o);
        } else if (!o->out)
            pc__rc_name_op_settle(a, o);
    }
    pc__rc_start_connector(a, i, 0.1);
}

void
pc__rc_conn_result(rc_agent *a, rc_call *c)
{
    rc_reg *r;
    bool all_auth = true;

    if (c->gen != a->s->gen || c->reg < 0 || c->reg >= a->nregs ||
        a->regs[c->reg].state != R_CONNECTING)
        return;
    r = &a->regs[c->reg];
    r->last_rc = c->rc;
    if (c->rc == PC_OK) {
        r->node = c->node;
        r->server = c->ref;
        pc_monitor(a->self, r->server);
        pc__rc_send_join(a, c->reg);
        if (r->state != R_JOINING) /* could not send: try again */
            pc__rc_start_connector(a, c->reg, 1.0);
        return;
    }
    for (int i = 0; i < a->nregs; i++)
        all_auth &= a->regs[i].last_rc == PC_EAUTH;
    if (all_auth)
        pc__rc_answer_joins(a, PC_EAUTH, NULL);
}

void
pc__rc_on_join_reply(rc_agent *a, int i, Picos__V1__RegReply *rp)
{
    rc_reg *r = &a->regs[i];

    if (rp->status != PICOS__V1__REG_STATUS__OK) {
        PC_LOG_WARN("registry", "registry %s refused our JOIN: %s", r->ep,
                    rp->text && *rp->text ? rp->text : "?");
        r->state = R_DOWN;
        pc_demonitor(a->self, r->server);
        pc__rc_start_connector(a, i, 1.0);
        return;
    }
    r->state = R_UP;
    if (!r->ever_up || a->joins)
        PC_LOG_INFO("registry", "joined registry %s", r->ep);
    else
        PC_LOG_INFO("registry", "joined registry %s again", r->ep);
    r->ever_up = true;
    pc__rc_members_sync(a, i, rp->nodes, rp->n_nodes);
    for (size_t k = 0; k < rp->n_names; k++)
        if (rp->names[k] && rp->names[k]->name)
            pc__rc_name_lost(a, rp->names[k]->kind, rp->names[k]->name, i,
                             "a JOIN's answer");
    pc__rc_answer_joins(a, PC_OK, NULL);
}
