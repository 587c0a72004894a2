/* registry/agent.c — the node's registry agent: one daemon task that owns
 * every conversation with the registries.
 *
 * It keeps, as its own unshared state, the registries (each DOWN,
 * CONNECTING, JOINING or UP), the requests in flight (`op`, matched to
 * replies by id and by the replying registry's node), the names this node
 * holds (sent with every JOIN, in chunks of RC_JOIN_CHUNK bytes so that a
 * node with many names still fits the frame limit), the members (with a bit per
 * registry that says the node is up: a node is down once every registry that
 * knew it said so) and the watcher tasks. Callers reach it only through the
 * shared queue (client_int.h); what it writes that callers read is the
 * cache and the registry tasks send their own LOCATEs to (the first one
 * up: publish()); when that one goes down it wakes the tasks waiting for
 * such a reply (waiters_wake()). A pc_locate_send() call is answered with
 * a PC_MSG_LOCATED message to its task instead of an event.
 *
 * Connecting blocks (pc_node_connect, pc_locate_at of the registry task),
 * so each registry that is not joined has a connector task of its own that
 * retries with backoff (0.1 s doubling to 1 s) and posts each result to
 * the queue; the agent itself never blocks on a registry, and a dead one
 * only delays what is addressed to it. When a joined registry's server
 * task goes DOWN (its node declared down by the links), the agent forgets
 * the cache entries it gave, moves lookups in flight to the next joined
 * registry (none: PC_EUNREACH), counts it as silent for registrations, and
 * starts its connector again: back, it is JOINed again with every name.
 *
 * Several registries (docs/registry.md): REGISTER and UNREGISTER go to
 * every registry joined (or being joined, which takes them after the JOIN);
 * a registration succeeds when one accepted and none answered TAKEN, and a
 * TAKEN undoes it at the others. Lookups go to the first joined registry in
 * the order given. A name reported lost (RegEvent NAME_LOST, or a JOIN
 * reply's list) is unregistered everywhere and logged once.
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

#include "client_int.h"

enum { R_DOWN, R_CONNECTING, R_JOINING, R_UP };
enum { ST_NONE, ST_SENT, ST_OK, ST_TAKEN, ST_NOTFOUND, ST_BAD, ST_SILENT };

typedef struct reg {
    char *ep; /* the shared state's string */
    int state;
    uint64_t node;
    pc_ref server;
    pc_err last_rc;               /* the connector's last result */
    uint64_t join_first, join_id; /* the ids of a JOIN's chunks */
    bool ever_up;
} reg;

typedef struct op {
    struct op *next;
    uint64_t id;
    int kind;   /* Picos__V1__RegOp */
    rc_call *c; /* NULL: the agent's own (undo, lost names) */
    double deadline;
    int target; /* lookups: the registry asked */
    uint8_t st[RC_MAX_REGS];
    int out; /* registries that have not answered */
    bool answered;
    pc_err result; /* when answered */
    int nkind;
    char name[PC_NAME_MAX + 1];
    pc_ref ref;
    uint64_t claimed_us;
    char text[256];
} op;

typedef struct member {
    struct member *next;
    pc_node_info info;
    uint32_t up, was; /* bit i: registry i says it is up */
} member;

typedef struct watcher {
    struct watcher *next;
    pc_ref ref;
} watcher;

typedef struct agent {
    rc_shared *s;
    reg regs[RC_MAX_REGS];
    int nregs;
    op *ops;
    uint64_t next_id;
    rc_names held;
    member *members;
    watcher *watchers;
    rc_call *joins; /* CALL_JOIN waiters */
    pc_ref self;
    double due; /* no deadline passes before: expire() has nothing to do */
} agent;

#define RC_JOIN_TIMEOUT_MS 10000u
/* A JOIN's names go in chunks of at most this many packed bytes, well
 * under a peer's frame limit (1 MiB by default). */
#define RC_JOIN_CHUNK (256u * 1024u)
/* Messages the agent takes in a row before it looks at its queue. */
#define BATCH 256

/* ---- sending -------------------------------------------------------------------- */

static void
stat_add(uint64_t *field, int64_t d)
{
    pthread_mutex_lock(&pc__rc_mu);
    *field += (uint64_t)d;
    pthread_mutex_unlock(&pc__rc_mu);
}

static void
ref_pb(Picos__V1__Ref *r, pc_ref ref)
{
    picos__v1__ref__init(r);
    r->node = ref.node;
    r->incarnation = ref.node == pc_node_id() ? pc_node_incarnation() : 0;
    r->id = ref.id;
}

static uint32_t
ms_left(double deadline)
{
    double left = pc_deadline_left(deadline);
    if (left < 0 || left * 1000 >= (double)UINT32_MAX)
        return UINT32_MAX;
    return (uint32_t)(left * 1000);
}

/* Pack rq and send it to registry i. false: it could not go. */
static bool
send_req(agent *a, int i, Picos__V1__RegRequest *rq)
{
    size_t len = picos__v1__reg_request__get_packed_size(rq);
    uint8_t *buf = malloc(len ? len : 1);
    pc_msg *m = NULL;
    pc_err rc = PC_ENOMEM;

    if (buf) {
        picos__v1__reg_request__pack(rq, buf);
        rc = pc_msg_new(&m, RC_MSG_REQUEST, buf, len);
        free(buf);
    }
    if (rc == PC_OK && (rc = pc_send(a->regs[i].server, &m)) != PC_OK)
        pc_msg_free(&m);
    if (rc != PC_OK) {
        PC_LOG_DEBUG("registry", "request to %s not sent: %s", a->regs[i].ep,
                     pc_strerror(rc));
        return false;
    }
    stat_add(&a->s->stats.requests, 1);
    return true;
}

/* Send op o (REGISTER, UNREGISTER, LOCATE, lists, STATUS) to registry i. */
static bool
send_op(agent *a, int i, op *o)
{
    Picos__V1__RegRequest rq = PICOS__V1__REG_REQUEST__INIT;
    Picos__V1__NameEntry e = PICOS__V1__NAME_ENTRY__INIT, *ep = &e;
    Picos__V1__Ref r;

    rq.id = o->id;
    rq.op = (Picos__V1__RegOp)o->kind;
    rq.timeout_ms = ms_left(o->deadline);
    switch (o->kind) {
    case PICOS__V1__REG_OP__LOCATE:
        /* the caller's own timeout: 0 asks without waiting */
        if (o->c && o->c->timeout == 0)
            rq.timeout_ms = 0;
        else if (o->c && o->c->timeout > 0)
            rq.timeout_ms = ms_left(o->deadline - RC_RTT / 2);
        /* fallthrough */
    case PICOS__V1__REG_OP__REGISTER:
    case PICOS__V1__REG_OP__UNREGISTER:
        e.kind = (Picos__V1__NameKind)o->nkind;
        e.name = o->name;
        if (o->kind == PICOS__V1__REG_OP__REGISTER) {
            ref_pb(&r, o->ref);
            e.ref = &r;
            e.claimed_us = o->claimed_us;
        }
        rq.n_names = 1;
        rq.names = &ep;
        break;
    case PICOS__V1__REG_OP__LIST_NAMES:
        if (o->c && o->c->has_kind) {
            rq.has_kind = true;
            rq.kind = (Picos__V1__NameKind)o->c->kind;
        }
        break;
    default:
        break;
    }
    if (!send_req(a, i, &rq))
        return false;
    o->st[i] = ST_SENT;
    o->out++;
    return true;
}

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
    ref_pb(&k->r[k->n], h->info.ref);
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
static void
send_join(agent *a, int i)
{
    Picos__V1__RegRequest rq = PICOS__V1__REG_REQUEST__INIT;
    Picos__V1__NodeInfo self = a->s->self;
    Picos__V1__Ref ar;
    size_t n = a->held.n ? a->held.n : 1, start = 0;
    collect k = {calloc(n, sizeof *k.e), calloc(n, sizeof *k.ep),
                 calloc(n, sizeof *k.r), 0};
    reg *r = &a->regs[i];
    uint64_t first = a->next_id;

    if (!k.e || !k.ep || !k.r) {
        PC_LOG_ERROR("registry", "no memory to join %s", r->ep);
        goto out;
    }
    pc__rc_names_drop_if(&a->held, collect_one, &k);
    ref_pb(&ar, a->self);
    self.agent = &ar;
    rq.op = PICOS__V1__REG_OP__JOIN;
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
        if (!send_req(a, i, &rq))
            goto out; /* the registry drops the part at our next JOIN */
        start = end;
    } while (start < k.n);
    r->join_first = first;
    r->join_id = rq.id;
    r->state = R_JOINING;
    if (r->ever_up)
        stat_add(&a->s->stats.rejoins, 1);
out:
    free(k.e);
    free(k.ep);
    free(k.r);
}

/* ---- connectors ------------------------------------------------------------------ */

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

static void
start_connector(agent *a, int i, double delay)
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

/* ---- the cache ----------------------------------------------------------------- */

static bool
by_reg(rc_name *e, void *ctx)
{
    return e->reg == *(int *)ctx;
}

static bool
by_node(rc_name *e, void *ctx)
{
    return e->info.ref.node == *(uint64_t *)ctx;
}

/* Every invalidation counts (inval), whether or not it found an entry: a
 * direct lookup whose answer is still on its way must not cache a name
 * that went meanwhile (its NAME_GONE came before the entry existed). */
static void
cache_drop_if(agent *a, bool (*pred)(rc_name *, void *), void *ctx)
{
    pthread_mutex_lock(&pc__rc_mu);
    pc__rc_names_drop_if(&a->s->cache, pred, ctx);
    a->s->inval++;
    pthread_mutex_unlock(&pc__rc_mu);
}

static void
cache_del(agent *a, int kind, const char *name)
{
    pthread_mutex_lock(&pc__rc_mu);
    pc__rc_names_del(&a->s->cache, kind, name);
    a->s->inval++;
    pthread_mutex_unlock(&pc__rc_mu);
}

static void
cache_put(agent *a, int i, const pc_name_info *info)
{
    rc_name *e;

    pthread_mutex_lock(&pc__rc_mu);
    if ((e = pc__rc_names_put(&a->s->cache, (int)info->kind, info->name))) {
        e->info = *info;
        e->reg = i;
    }
    pthread_mutex_unlock(&pc__rc_mu);
}

/* ---- direct lookups --------------------------------------------------------- */

/* Publish where tasks send their LOCATEs: the first registry up (the one
 * lookup_next() would pick). Under pc__rc_mu. */
static void
publish_locked(agent *a)
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

static void
publish(agent *a)
{
    pthread_mutex_lock(&pc__rc_mu);
    publish_locked(a);
    pthread_mutex_unlock(&pc__rc_mu);
}

/* Registry i is down: no task sends it LOCATEs from now on, and every task
 * waiting for one it sent there is woken by an RC_MSG_GONE (sent outside
 * the mutex: a send may wait). */
static void
waiters_wake(agent *a, int i)
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

/* ---- membership ------------------------------------------------------------------- */

static void
node_pb(Picos__V1__NodeInfo *p, pc_node_info *n)
{
    picos__v1__node_info__init(p);
    p->node = n->node;
    p->incarnation = n->incarnation;
    p->name = n->name;
    p->host = n->host;
    p->pid = n->pid;
    p->endpoint = n->endpoint;
    p->pub_endpoint = n->pub_endpoint;
    p->joined_us = (uint64_t)(n->joined * 1e6);
    p->up = n->up;
}

/* Tell every watcher (or only `only`, when not nil) that m is up or down. */
static void
fan_out(agent *a, member *m, bool up, const char *reason, pc_ref only)
{
    Picos__V1__RegEvent ev = PICOS__V1__REG_EVENT__INIT;
    Picos__V1__NodeInfo n;
    uint8_t *buf;
    size_t len;

    m->info.up = up;
    node_pb(&n, &m->info);
    ev.kind = up ? PICOS__V1__REG_EVENT_KIND__NODE_UP
                 : PICOS__V1__REG_EVENT_KIND__NODE_DOWN;
    ev.node = &n;
    ev.reason = (char *)(reason ? reason : "");
    len = picos__v1__reg_event__get_packed_size(&ev);
    if (!(buf = malloc(len ? len : 1)))
        return;
    picos__v1__reg_event__pack(&ev, buf);
    if (!pc_ref_is_nil(only))
        pc_send_data(only, PC_MSG_NODE_EVENT, buf, len);
    else
        for (watcher **wp = &a->watchers; *wp;) {
            watcher *w = *wp;
            if (pc_send_data(w->ref, PC_MSG_NODE_EVENT, buf, len) ==
                PC_ENOENT) {
                *wp = w->next;
                free(w);
            } else
                wp = &w->next;
        }
    free(buf);
}

static member *
member_find(agent *a, uint64_t node, uint64_t incarnation, member ***prev)
{
    for (member **mp = &a->members; *mp; mp = &(*mp)->next)
        if ((*mp)->info.node == node &&
            (!incarnation || (*mp)->info.incarnation == incarnation)) {
            if (prev)
                *prev = mp;
            return *mp;
        }
    return NULL;
}

/* Registry i says node p is up. */
static member *
member_up(agent *a, int i, const Picos__V1__NodeInfo *p)
{
    member *m = member_find(a, p->node, p->incarnation, NULL);

    if (!m) {
        if (!(m = calloc(1, sizeof *m)))
            return NULL;
        m->next = a->members;
        a->members = m;
    }
    pc__rc_node_from_pb(p, &m->info);
    m->up |= 1u << i;
    return m;
}

static void
member_gone(agent *a, member *m, const char *reason)
{
    uint64_t node = m->info.node;

    fan_out(a, m, false, reason, PC_REF_NIL);
    for (member **mp = &a->members; *mp; mp = &(*mp)->next)
        if (*mp == m) {
            *mp = m->next;
            break;
        }
    free(m);
    cache_drop_if(a, by_node, &node);
}

/* Registry i's member list (a JOIN reply) replaces what it said before. */
static void
members_sync(agent *a, int i, Picos__V1__NodeInfo **nodes, size_t n)
{
    char reason[PC_ENDPOINT_MAX + 64];

    for (member *m = a->members; m; m = m->next) {
        m->was = m->up;
        m->up &= ~(1u << i);
    }
    for (size_t k = 0; k < n; k++)
        if (nodes[k]) {
            member *m =
                member_find(a, nodes[k]->node, nodes[k]->incarnation, NULL);
            uint32_t was = m ? m->was : 0;
            if ((m = member_up(a, i, nodes[k])))
                m->was = was;
        }
    snprintf(reason, sizeof reason, "not a member at %s", a->regs[i].ep);
    for (member *m = a->members, *next; m; m = next) {
        next = m->next;
        if (!m->was && m->up)
            fan_out(a, m, true, "", PC_REF_NIL);
        else if (m->was && !m->up)
            member_gone(a, m, reason);
    }
}

/* ---- calls ------------------------------------------------------------------------ */

static void
answer(rc_call *c, pc_err rc, const char *text)
{
    if (!c)
        return;
    if (c->async) { /* pc_locate_send(): one PC_MSG_LOCATED, whatever rc */
        pc_ref ref = rc == PC_OK ? c->entry.ref : PC_REF_NIL;
        /* the owner node's link is made in the background (timeout 0) */
        if (rc == PC_OK && ref.node != pc_node_id() && c->entry.endpoint[0])
            pc_node_connect(c->entry.endpoint, 0, NULL);
        pc__rc_located_send(c->reply_to, c->tag, rc, ref);
        c->async = false;
    }
    if (text)
        snprintf(c->text, sizeof c->text, "%s", text);
    if (rc != PC_OK && !c->ev && c->op == PICOS__V1__REG_OP__REGISTER)
        PC_LOG_WARN("registry", "cluster name '%s' not registered: %s", c->name,
                    c->text[0] ? c->text : pc_strerror(rc));
    pc__rc_call_done(c, rc);
}

static void
op_free(agent *a, op *o)
{
    for (op **op_ = &a->ops; *op_; op_ = &(*op_)->next)
        if (*op_ == o) {
            *op_ = o->next;
            break;
        }
    if (!o->answered)
        answer(o->c, PC_ESTATE, NULL);
    free(o);
}

static op *
op_new(agent *a, int kind, rc_call *c, double deadline)
{
    op *o = calloc(1, sizeof *o);

    if (!o) {
        answer(c, PC_ENOMEM, NULL);
        return NULL;
    }
    o->id = a->next_id++;
    o->kind = kind;
    o->c = c;
    o->deadline = deadline;
    if (deadline < a->due)
        a->due = deadline;
    o->target = -1;
    o->next = a->ops;
    a->ops = o;
    return o;
}

static bool
joined_reg(const reg *r)
{
    return r->state == R_JOINING || r->state == R_UP;
}

/* Send o to every registry joined or being joined; how many took it. */
static int
send_all(agent *a, op *o)
{
    int n = 0;
    for (int i = 0; i < a->nregs; i++)
        if (joined_reg(&a->regs[i]) && send_op(a, i, o))
            n++;
    return n;
}

/* Our own UNREGISTER of (kind, name) everywhere (undo, lost names). */
static void
unregister_all(agent *a, int kind, const char *name, int except)
{
    op *o =
        op_new(a, PICOS__V1__REG_OP__UNREGISTER, NULL, pc_deadline(2 * RC_RTT));
    if (!o)
        return;
    o->answered = true;
    o->nkind = kind;
    snprintf(o->name, sizeof o->name, "%s", name);
    for (int i = 0; i < a->nregs; i++)
        if (i != except && joined_reg(&a->regs[i]))
            send_op(a, i, o);
    if (!o->out)
        op_free(a, o);
}

/* A name this node held was given to an earlier claim. */
static void
name_lost(agent *a, int kind, const char *name, int from, const char *why)
{
    rc_name *h = pc__rc_names_get(&a->held, kind, name);

    if (!h)
        return;
    PC_LOG_WARN("registry",
                "cluster name '%s' (%s) lost to an earlier claim (%s at %s): "
                "unregistered here",
                name, pc_name_kind_str((pc_name_kind)kind),
                why && *why ? why : "registries disagreed",
                from >= 0 ? a->regs[from].ep : "?");
    stat_add(&a->s->stats.names_lost, 1);
    pc__rc_names_del(&a->held, kind, name);
    cache_del(a, kind, name);
    unregister_all(a, kind, name, from);
}

static void
finish_register(agent *a, op *o, bool expired)
{
    int ok = 0, taken = 0, bad = 0;
    rc_name *h = pc__rc_names_get(&a->held, o->nkind, o->name);
    bool ours = h && pc_ref_eq(h->info.ref, o->ref);

    for (int i = 0; i < a->nregs; i++) {
        ok += o->st[i] == ST_OK;
        taken += o->st[i] == ST_TAKEN;
        bad += o->st[i] == ST_BAD;
    }
    if (taken) {
        o->result = PC_EEXIST;
        if (ours)
            pc__rc_names_del(&a->held, o->nkind, o->name);
        for (int i = 0; i < a->nregs; i++)
            if (o->st[i] == ST_OK) {
                op *u = op_new(a, PICOS__V1__REG_OP__UNREGISTER, NULL,
                               pc_deadline(2 * RC_RTT));
                if (u) {
                    u->answered = true;
                    u->nkind = o->nkind;
                    snprintf(u->name, sizeof u->name, "%s", o->name);
                    if (!send_op(a, i, u))
                        op_free(a, u);
                }
            }
    } else if (ok) {
        o->result = PC_OK;
        if (ours) {
            h->pending = false;
            if (o->nkind != PC_NAME_CHANNEL)
                pc_monitor(a->self, o->ref); /* its end frees the name */
        }
    } else {
        o->result = bad ? PC_EINVAL : expired ? PC_ETIMEDOUT : PC_EUNREACH;
        if (ours)
            pc__rc_names_del(&a->held, o->nkind, o->name);
    }
    o->answered = true;
    answer(o->c, o->result, o->text[0] ? o->text : NULL);
}

static void
finish_unregister(agent *a, op *o, bool expired)
{
    int ok = 0, no = 0;
    for (int i = 0; i < a->nregs; i++) {
        ok += o->st[i] == ST_OK;
        no += o->st[i] == ST_NOTFOUND;
    }
    o->answered = true;
    answer(o->c,
           ok   ? PC_OK
           : no ? PC_ENOENT
                : (expired ? PC_ETIMEDOUT : PC_EUNREACH),
           NULL);
    (void)a;
}

/* Send lookup o to the first registry up after `after` (-1: the first). */
static void
lookup_next(agent *a, op *o, int after)
{
    for (int i = after + 1; i < a->nregs; i++) {
        if (a->regs[i].state != R_UP)
            continue;
        if (o->c->endpoint[0] && strcmp(o->c->endpoint, a->regs[i].ep))
            continue;
        if (send_op(a, i, o)) {
            o->target = i;
            return;
        }
    }
    o->answered = true;
    answer(o->c, PC_EUNREACH, "no registry reachable");
    op_free(a, o);
}

static void
start_call(agent *a, rc_call *c)
{
    rc_name *h;
    op *o;

    switch (c->op) {
    case CALL_JOIN:
        for (int i = 0; i < a->nregs; i++)
            if (a->regs[i].state == R_UP) {
                answer(c, PC_OK, NULL);
                return;
            }
        c->next = a->joins;
        a->joins = c;
        if (c->deadline < a->due)
            a->due = c->deadline;
        return;
    case CALL_WATCH: {
        watcher *w;
        for (w = a->watchers; w; w = w->next)
            if (pc_ref_eq(w->ref, c->ref))
                break;
        if (!w && (w = calloc(1, sizeof *w))) {
            w->ref = c->ref;
            w->next = a->watchers;
            a->watchers = w;
            pc_monitor(a->self, c->ref);
            for (member *m = a->members; m; m = m->next)
                if (m->up)
                    fan_out(a, m, true, "", c->ref);
        }
        answer(c, w ? PC_OK : PC_ENOMEM, NULL);
        return;
    }
    case CALL_UNWATCH:
        for (watcher **wp = &a->watchers; *wp; wp = &(*wp)->next)
            if (pc_ref_eq((*wp)->ref, c->ref)) {
                watcher *w = *wp;
                *wp = w->next;
                free(w);
                pc_demonitor(a->self, c->ref);
                break;
            }
        answer(c, PC_OK, NULL);
        return;
    case PICOS__V1__REG_OP__REGISTER:
        h = pc__rc_names_get(&a->held, c->kind, c->name);
        if (h && pc_ref_eq(h->info.ref, c->ref) && !h->pending) {
            answer(c, PC_OK, NULL); /* held already: idempotent */
            return;
        }
        if (h) {
            char text[PC_NAME_MAX + 64];
            snprintf(text, sizeof text,
                     "name '%s' (%s) is held by another task of this node",
                     c->name, pc_name_kind_str((pc_name_kind)c->kind));
            answer(c, PC_EEXIST, text);
            return;
        }
        if (!(h = pc__rc_names_put(&a->held, c->kind, c->name))) {
            answer(c, PC_ENOMEM, NULL);
            return;
        }
        h->info.ref = c->ref;
        h->claimed_us = pc__rc_wall_us();
        h->pending = true;
        if (!(o = op_new(a, c->op, c, c->deadline))) {
            pc__rc_names_del(&a->held, c->kind, c->name);
            return;
        }
        o->nkind = c->kind;
        snprintf(o->name, sizeof o->name, "%s", c->name);
        o->ref = c->ref;
        o->claimed_us = h->claimed_us;
        if (!send_all(a, o)) {
            pc__rc_names_del(&a->held, c->kind, c->name);
            o->answered = true;
            answer(c, PC_EUNREACH, "no registry reachable");
            op_free(a, o);
        }
        return;
    case PICOS__V1__REG_OP__UNREGISTER:
        if (!pc__rc_names_del(&a->held, c->kind, c->name)) {
            answer(c, PC_ENOENT, NULL);
            return;
        }
        cache_del(a, c->kind, c->name);
        if (!(o = op_new(a, c->op, c, c->deadline)))
            return;
        o->nkind = c->kind;
        snprintf(o->name, sizeof o->name, "%s", c->name);
        if (!send_all(a, o)) {
            /* gone here; a registry gets the list without it at its JOIN */
            o->answered = true;
            answer(c, PC_EUNREACH, "no registry reachable");
            op_free(a, o);
        }
        return;
    case PICOS__V1__REG_OP__LOCATE:
    case PICOS__V1__REG_OP__LIST_NODES:
    case PICOS__V1__REG_OP__LIST_NAMES:
    case PICOS__V1__REG_OP__STATUS:
        if (!(o = op_new(a, c->op, c, c->deadline)))
            return;
        o->nkind = c->kind;
        snprintf(o->name, sizeof o->name, "%s", c->name);
        lookup_next(a, o, -1);
        return;
    default:
        answer(c, PC_EINVAL, NULL);
    }
}

/* ---- registries -------------------------------------------------------------- */

static void
answer_joins(agent *a, pc_err rc, const char *text)
{
    rc_call *c;
    while ((c = a->joins)) {
        a->joins = c->next;
        answer(c, rc, text);
    }
}

static bool
is_lookup(int kind)
{
    return kind == PICOS__V1__REG_OP__LOCATE ||
           kind == PICOS__V1__REG_OP__LIST_NODES ||
           kind == PICOS__V1__REG_OP__LIST_NAMES ||
           kind == PICOS__V1__REG_OP__STATUS;
}

/* Registry i does not answer from now on. */
static void
reg_down(agent *a, int i, const char *why)
{
    reg *r = &a->regs[i];

    if (r->state == R_UP)
        PC_LOG_WARN("registry",
                    "registry %s is down (%s): joining it again "
                    "when it is back",
                    r->ep, why);
    r->state = R_DOWN;
    pc_demonitor(a->self, r->server);
    cache_drop_if(a, by_reg, &i);
    waiters_wake(a, i);
    for (op *o = a->ops, *next; o; o = next) {
        next = o->next;
        if (o->st[i] != ST_SENT)
            continue;
        o->st[i] = ST_SILENT;
        o->out--;
        if (is_lookup(o->kind)) {
            if (!o->answered)
                lookup_next(a, o, i);
            else
                op_free(a, o);
        } else if (!o->out) {
            if (!o->answered) {
                if (o->kind == PICOS__V1__REG_OP__REGISTER)
                    finish_register(a, o, false);
                else
                    finish_unregister(a, o, false);
            }
            op_free(a, o);
        }
    }
    start_connector(a, i, 0.1);
}

static void
conn_result(agent *a, rc_call *c)
{
    reg *r;
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
        send_join(a, c->reg);
        if (r->state != R_JOINING) /* could not send: try again */
            start_connector(a, c->reg, 1.0);
        return;
    }
    for (int i = 0; i < a->nregs; i++)
        all_auth &= a->regs[i].last_rc == PC_EAUTH;
    if (all_auth)
        answer_joins(a, PC_EAUTH, NULL);
}

/* ---- replies and events -------------------------------------------------------------- */

static int
reg_of(agent *a, uint64_t node)
{
    for (int i = 0; i < a->nregs; i++)
        if (joined_reg(&a->regs[i]) && a->regs[i].node == node)
            return i;
    return -1;
}

static void
on_join_reply(agent *a, int i, Picos__V1__RegReply *rp)
{
    reg *r = &a->regs[i];

    if (rp->status != PICOS__V1__REG_STATUS__OK) {
        PC_LOG_WARN("registry", "registry %s refused our JOIN: %s", r->ep,
                    rp->text && *rp->text ? rp->text : "?");
        r->state = R_DOWN;
        pc_demonitor(a->self, r->server);
        start_connector(a, i, 1.0);
        return;
    }
    r->state = R_UP;
    if (!r->ever_up || a->joins)
        PC_LOG_INFO("registry", "joined registry %s", r->ep);
    else
        PC_LOG_INFO("registry", "joined registry %s again", r->ep);
    r->ever_up = true;
    members_sync(a, i, rp->nodes, rp->n_nodes);
    for (size_t k = 0; k < rp->n_names; k++)
        if (rp->names[k] && rp->names[k]->name)
            name_lost(a, rp->names[k]->kind, rp->names[k]->name, i,
                      "a JOIN's answer");
    answer_joins(a, PC_OK, NULL);
}

static pc_err
lookup_rc(Picos__V1__RegStatus st)
{
    switch (st) {
    case PICOS__V1__REG_STATUS__OK:
        return PC_OK;
    case PICOS__V1__REG_STATUS__NOT_FOUND:
        return PC_ENOENT;
    case PICOS__V1__REG_STATUS__TIMED_OUT:
        return PC_ETIMEDOUT;
    case PICOS__V1__REG_STATUS__BAD_REQUEST:
        return PC_EINVAL;
    default:
        return PC_EUNREACH;
    }
}

static void
on_lookup_reply(agent *a, int i, op *o, Picos__V1__RegReply *rp)
{
    rc_call *c = o->c;
    pc_err rc = lookup_rc(rp->status);

    if (rc == PC_OK)
        switch (o->kind) {
        case PICOS__V1__REG_OP__LOCATE:
            if (rp->n_names < 1 || !rp->names[0]) {
                rc = PC_EPROTO;
                break;
            }
            pc__rc_name_from_pb(rp->names[0], &c->entry);
            cache_put(a, i, &c->entry);
            break;
        case PICOS__V1__REG_OP__LIST_NODES:
            if (!(c->nodes = calloc(rp->n_nodes + 1, sizeof *c->nodes))) {
                rc = PC_ENOMEM;
                break;
            }
            for (size_t k = 0; k < rp->n_nodes; k++)
                pc__rc_node_from_pb(rp->nodes[k], &c->nodes[k]);
            c->n = rp->n_nodes;
            break;
        case PICOS__V1__REG_OP__LIST_NAMES:
            if (!(c->names = calloc(rp->n_names + 1, sizeof *c->names))) {
                rc = PC_ENOMEM;
                break;
            }
            for (size_t k = 0; k < rp->n_names; k++)
                pc__rc_name_from_pb(rp->names[k], &c->names[k]);
            c->n = rp->n_names;
            break;
        case PICOS__V1__REG_OP__STATUS:
            pc__rc_status_from_pb(rp->registry, &c->status);
            break;
        }
    o->answered = true;
    answer(c, rc, rp->text && *rp->text ? rp->text : NULL);
    op_free(a, o);
}

static uint8_t
name_st(Picos__V1__RegStatus st)
{
    switch (st) {
    case PICOS__V1__REG_STATUS__OK:
        return ST_OK;
    case PICOS__V1__REG_STATUS__TAKEN:
        return ST_TAKEN;
    case PICOS__V1__REG_STATUS__NOT_FOUND:
    case PICOS__V1__REG_STATUS__NOT_OWNER:
        return ST_NOTFOUND;
    case PICOS__V1__REG_STATUS__BAD_REQUEST:
        return ST_BAD;
    default:
        return ST_SILENT;
    }
}

static void
on_name_reply(agent *a, int i, op *o, Picos__V1__RegReply *rp)
{
    uint8_t st = name_st(rp->status);

    o->st[i] = st;
    o->out--;
    if (rp->status == PICOS__V1__REG_STATUS__NOT_JOINED &&
        a->regs[i].state == R_UP) {
        PC_LOG_WARN("registry", "registry %s forgot this node: joining again",
                    a->regs[i].ep);
        send_join(a, i);
    }
    if (st == ST_TAKEN && rp->text && *rp->text)
        snprintf(o->text, sizeof o->text, "%s", rp->text);
    if (o->kind == PICOS__V1__REG_OP__REGISTER && o->answered && o->c) {
        /* a late answer: make this registry agree with what we answered */
        if (st == ST_OK && o->result != PC_OK)
            unregister_all(a, o->nkind, o->name, -1);
        else if (st == ST_TAKEN && o->result == PC_OK)
            name_lost(a, o->nkind, o->name, i, o->text);
    }
    if (!o->out) {
        if (!o->answered) {
            if (o->kind == PICOS__V1__REG_OP__REGISTER)
                finish_register(a, o, false);
            else
                finish_unregister(a, o, false);
        }
        op_free(a, o);
    }
}

static void
on_reply(agent *a, const pc_msg *m)
{
    int i = reg_of(a, pc_msg_sender(m).node);
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
        on_join_reply(a, i, rp);
    else if (a->regs[i].state == R_JOINING && rp->id >= a->regs[i].join_first &&
             rp->id < a->regs[i].join_id) {
        if (rp->status != PICOS__V1__REG_STATUS__OK)
            on_join_reply(a, i, rp); /* a chunk refused: the whole JOIN */
    } else
        for (op *o = a->ops; o; o = o->next) {
            if (o->id != rp->id || o->st[i] != ST_SENT)
                continue;
            if (is_lookup(o->kind))
                on_lookup_reply(a, i, o, rp);
            else
                on_name_reply(a, i, o, rp);
            break;
        }
    picos__v1__reg_reply__free_unpacked(rp, NULL);
}

static void
on_event(agent *a, const pc_msg *m)
{
    int i = reg_of(a, pc_msg_sender(m).node);
    const void *data;
    size_t len;
    Picos__V1__RegEvent *ev;
    member *mb;

    if (i < 0)
        return;
    data = pc_msg_data(m, &len);
    if (!(ev = picos__v1__reg_event__unpack(NULL, len, data)))
        return;
    switch (ev->kind) {
    case PICOS__V1__REG_EVENT_KIND__NODE_UP:
        if (ev->node) {
            mb = member_find(a, ev->node->node, ev->node->incarnation, NULL);
            bool was = mb && mb->up;
            if ((mb = member_up(a, i, ev->node)) && !was)
                fan_out(a, mb, true, "", PC_REF_NIL);
        }
        break;
    case PICOS__V1__REG_EVENT_KIND__NODE_DOWN:
        if (ev->node) {
            uint64_t node = ev->node->node;
            if ((mb = member_find(a, node, ev->node->incarnation, NULL))) {
                mb->up &= ~(1u << i);
                if (!mb->up)
                    member_gone(a, mb, ev->reason);
            }
            cache_drop_if(a, by_node, &node);
        }
        break;
    case PICOS__V1__REG_EVENT_KIND__NAME_GONE:
        if (ev->name && ev->name->name)
            cache_del(a, ev->name->kind, ev->name->name);
        break;
    case PICOS__V1__REG_EVENT_KIND__NAME_LOST:
        if (ev->name && ev->name->name)
            name_lost(a, ev->name->kind, ev->name->name, i, ev->reason);
        break;
    default:
        break;
    }
    picos__v1__reg_event__free_unpacked(ev, NULL);
}

typedef struct by_ref_ctx {
    pc_ref ref;
    int kinds[64];
    char *names[64];
    int n;
} by_ref_ctx;

static bool
held_by(rc_name *e, void *ctx)
{
    by_ref_ctx *k = ctx;
    if (!pc_ref_eq(e->info.ref, k->ref) || e->pending || k->n == 64)
        return false;
    k->kinds[k->n] = (int)e->info.kind;
    k->names[k->n] = strdup(e->info.name);
    k->n += k->names[k->n] != NULL;
    return false;
}

static void
on_down(agent *a, const pc_msg *m)
{
    pc_down d;
    by_ref_ctx k = {0};

    if (pc_down_parse(m, &d) != PC_OK)
        return;
    for (int i = 0; i < a->nregs; i++)
        if (joined_reg(&a->regs[i]) && pc_ref_eq(a->regs[i].server, d.who)) {
            reg_down(a, i,
                     d.reason == PC_DOWN_NODE ? "its node went down"
                                              : "its task ended");
            return;
        }
    for (watcher **wp = &a->watchers; *wp; wp = &(*wp)->next)
        if (pc_ref_eq((*wp)->ref, d.who)) {
            watcher *w = *wp;
            *wp = w->next;
            free(w);
            break;
        }
    /* the names of a task that ended go with it (64 at a time: the DOWN of
     * a task holding more is rare; the rest go at its node's end) */
    k.ref = d.who;
    pc__rc_names_drop_if(&a->held, held_by, &k);
    for (int j = 0; j < k.n; j++) {
        pc__rc_names_del(&a->held, k.kinds[j], k.names[j]);
        cache_del(a, k.kinds[j], k.names[j]);
        unregister_all(a, k.kinds[j], k.names[j], -1);
        free(k.names[j]);
    }
}

/* ---- the loop ----------------------------------------------------------------------- */

static double next_deadline(agent *a);

/* Answer what passed its deadline; a->due says when to look again (only a
 * full pass moves it later: with many lookups in flight, a message costs
 * no walk of them all). */
static void
expire(agent *a, double now)
{
    if (now < a->due)
        return;
    for (op *o = a->ops, *next; o; o = next) {
        next = o->next;
        if (o->deadline > now)
            continue;
        if (!o->answered) {
            if (o->kind == PICOS__V1__REG_OP__REGISTER)
                finish_register(a, o, true);
            else if (o->kind == PICOS__V1__REG_OP__UNREGISTER)
                finish_unregister(a, o, true);
            else {
                o->answered = true;
                answer(o->c, PC_ETIMEDOUT, NULL);
            }
        }
        /* a registration's late answers are still wanted, for a while */
        if (is_lookup(o->kind) || !o->c || o->deadline + 2 * RC_RTT <= now)
            op_free(a, o);
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
        answer(c, auth ? PC_EAUTH : PC_EUNREACH, NULL);
    }
    a->due = next_deadline(a);
}

static double
next_deadline(agent *a)
{
    double d = INFINITY;
    for (op *o = a->ops; o; o = o->next) {
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
drain(agent *a)
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
            answer(c, PC_ESTATE, NULL);
        } else if (c->op == CALL_CONN) {
            conn_result(a, c);
            pc__rc_call_put(c);
        } else
            start_call(a, c);
    }
    return stop;
}

static void
on_exit_(void *arg)
{
    agent *a = arg;
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
        answer(c, PC_ESTATE, NULL);
    }
    while (a->ops)
        op_free(a, a->ops);
    answer_joins(a, PC_ESTATE, NULL);
    pc__rc_names_clear(&a->held);
    while (a->members) {
        member *m = a->members;
        a->members = m->next;
        free(m);
    }
    while (a->watchers) {
        watcher *w = a->watchers;
        a->watchers = w->next;
        free(w);
    }
    free(a);
    pc__rc_shared_free(s);
}

pc_msg *
pc__rc_agent_main(void *arg)
{
    rc_shared *s = arg;
    agent *a = calloc(1, sizeof *a);

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
    pc_at_exit(on_exit_, a);
    for (int i = 0; i < a->nregs; i++)
        start_connector(a, i, 0);
    for (;;) {
        pc_msg *m = NULL;
        double d, left;

        if (drain(a))
            break;
        publish(a);
        expire(a, pc_now());
        d = a->due;
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
                on_event(a, m);
            else if (pc_msg_is(m, PC_MSG_DOWN))
                on_down(a, m);
            pc_msg_free(&m);
        }
    }
    return NULL;
}
