/* registry/server.c — the registry server: one task, its request loop, its
 * group commit, pc_registry_start/stop.
 *
 * The server is ONE task (registered as PC_REGISTRY_TASK) that owns the
 * whole state (regstate.c), so nothing here takes a lock. It works in
 * batches: it takes one message, then whatever else waits in its mailbox
 * (up to BATCH), applies each request, and then makes the batch durable
 * with ONE pc__store_sync() — run on a pc_pool thread, so the fdatasync
 * blocks neither the worker's other tasks nor the link thread, and so the
 * next batch piles up in the mailbox meanwhile. Replies that acknowledge a
 * change (JOIN, LEAVE, REGISTER, UNREGISTER) and every event wait in the
 * outbox until that sync returned OK; replies that change nothing (LOCATE,
 * the lists, STATUS) go at once. A failed sync keeps the outbox and the
 * records and tries again a little later: an acknowledgement is never sent
 * for a record that is not on disk.
 *
 * A LOCATE of a name that is absent (or whose owner is not confirmed yet)
 * is parked until the name appears (answered OK after the sync that made
 * it so) or its deadline passes (TIMED_OUT). Requests carry no send time,
 * so a request's timeout_ms counts from when the server takes it.
 *
 * After a restart the members of the log are unconfirmed: probes and the
 * grace that reconcile them are in server_restart.c.
 *
 * Members also send their NodeStatus (docs/monitoring.md), with no reply.
 * It is taken only from the agent of the confirmed member it describes
 * (the sender's ref is the member's agent, the status's node and
 * incarnation the member's), into the status store (statusdb.c) that
 * NODES_STATUS and the HTTP API read; anything else is counted and
 * dropped. Statuses are not logged: the group commit never sees them.
 *
 * A node's JOIN may come in chunks (RegRequest.more: a node with many
 * names can't fit them in one frame). The chunks' names are copied into a
 * compact buffer per node (reg_pjoin: what the server holds for a half-
 * received join is bounded by max_node_names) and the last chunk applies
 * the join once, with their union: the records and events are those of a
 * JOIN of one message. Chunks with `more` change nothing and are answered
 * OK at once; consecutive ids tie the chunks of one join together, so a
 * join its sender gave up half-way is dropped, never merged into the next.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "picos/log.h"
#include "picos/monitor.h"
#include "picos/node.h"
#include "picos/pool.h"
#include "picos/task.h"
#include "picos/transport.h"

#include "server_int.h"

/* Requests taken from the mailbox per batch (one sync each). */
#define BATCH 4096
/* A LIST_NAMES reply bigger than this leaves out each entry's node name and
 * endpoint (the reply's nodes have them); one bigger than LIST_MAX is cut
 * (its text says so), to stay under a peer's default 1 MiB frame. */
#define LIST_SLIM (640u * 1024u)
#define LIST_MAX (960u * 1024u)
/* After a failed sync, seconds before the next try. */
#define SYNC_RETRY 0.2

#define MSG_GO "picos.registry.go"
#define MSG_STOP "picos.registry.stop"

static pthread_mutex_t srv_mu = PTHREAD_MUTEX_INITIALIZER;
static reg_server *srv;

static const char *
kind_str(int kind)
{
    return kind == PICOS__V1__NAME_KIND__CHANNEL   ? "channel"
           : kind == PICOS__V1__NAME_KIND__SERVICE ? "service"
                                                   : "task";
}

/* ---- replies ------------------------------------------------------------------- */

/* Pack r as a RegReply for `to`: now, or in the outbox (after the sync). */
static void
reply_send(reg_server *v, pc_ref to, Picos__V1__RegReply *r, bool after_sync)
{
    size_t len = picos__v1__reg_reply__get_packed_size(r);
    uint8_t stack[2048], *buf = stack;
    pc_msg *m = NULL;

    if (pc_ref_is_nil(to))
        return;
    if (len > sizeof stack && !(buf = malloc(len)))
        return;
    picos__v1__reg_reply__pack(r, buf);
    if (pc_msg_new(&m, REG_MSG_REPLY, buf, len) == PC_OK) {
        if (after_sync)
            pc__reg_outbox(&v->st, to, &m);
        else if (pc_send(to, &m) != PC_OK)
            pc_msg_free(&m);
    }
    if (buf != stack)
        free(buf);
}

static void
reply_status(reg_server *v, pc_ref to, uint64_t id, int status,
             const char *text, bool after_sync)
{
    Picos__V1__RegReply r = PICOS__V1__REG_REPLY__INIT;

    r.id = id;
    r.status = (Picos__V1__RegStatus)status;
    r.text = (char *)(text ? text : "");
    reply_send(v, to, &r, after_sync);
}

/* One entry as a reply (LOCATE, TAKEN). */
static void
reply_entry(reg_server *v, pc_ref to, uint64_t id, int status, const char *text,
            const reg_name *n, bool after_sync)
{
    Picos__V1__RegReply r = PICOS__V1__REG_REPLY__INIT;
    Picos__V1__NameEntry e, *ep = &e;
    Picos__V1__Ref ref;

    pc__reg_name_view(n, &e, &ref, true);
    r.id = id;
    r.status = (Picos__V1__RegStatus)status;
    r.text = (char *)(text ? text : "");
    r.n_names = 1;
    r.names = &ep;
    reply_send(v, to, &r, after_sync);
}

static void
status_view(reg_server *v, Picos__V1__RegistryStatus *s)
{
    picos__v1__registry_status__init(s);
    s->node = pc_node_id();
    s->incarnation = pc_node_incarnation();
    s->name = v->name;
    s->endpoint = v->endpoint;
    s->started_us = v->started_us;
    s->nodes_up = (uint32_t)(v->st.nmb - v->st.unconfirmed);
    s->names = (uint32_t)v->st.nnames;
    s->log_bytes = v->st.store ? pc__store_size(v->st.store) : 0;
    s->data_dir = v->data_dir;
    s->recovering = v->st.unconfirmed > 0;
}

/* Views of every member, for a reply (free with nodes_free). */
typedef struct node_views {
    Picos__V1__NodeInfo *ni, **p;
    Picos__V1__Ref *agents;
    size_t n;
} node_views;

static bool
nodes_make(reg_server *v, node_views *w)
{
    size_t n = v->st.nmb, k = 0;

    memset(w, 0, sizeof *w);
    if (!n)
        return true;
    w->ni = calloc(n, sizeof *w->ni);
    w->p = calloc(n, sizeof *w->p);
    w->agents = calloc(n, sizeof *w->agents);
    if (!w->ni || !w->p || !w->agents)
        return false;
    for (size_t i = 0; i < v->st.mcap; i++)
        for (reg_member *m = v->st.mb[i]; m; m = m->hnext) {
            pc__reg_node_view(m, &w->ni[k], &w->agents[k]);
            w->p[k] = &w->ni[k];
            k++;
        }
    w->n = k;
    return true;
}

static void
nodes_free(node_views *w)
{
    free(w->ni);
    free(w->p);
    free(w->agents);
}

/* ---- the ops ------------------------------------------------------------------ */

typedef struct req {
    Picos__V1__RegRequest *r;
    pc_ref from;
} req;

static void
monitor_agent(reg_server *v, reg_member *m, pc_ref old)
{
    if (m->monitored && !pc_ref_eq(old, m->agent)) {
        pc_demonitor(v->task, old);
        m->monitored = false;
    }
    if (!m->monitored)
        m->monitored = pc_monitor(v->task, m->agent) == PC_OK;
    if (!m->monitored)
        PC_LOG_WARN("registry", "can't monitor the agent of node %s", m->name);
}

/* ---- JOIN, in chunks ---------------------------------------------------------- */

/* The chunked join of q's node that q continues (same incarnation and
 * agent, the id after the last chunk's), else a new one (dropping a
 * half-received one: its sender gave it up). NULL: out of memory. */
static reg_pjoin *
pjoin_for(reg_server *v, const req *q)
{
    const Picos__V1__RegRequest *r = q->r;
    reg_pjoin *p;

    for (p = v->st.pjoins; p; p = p->next)
        if (p->node == r->node->node)
            break;
    if (p && p->incarnation == r->node->incarnation &&
        p->agent_id == r->node->agent->id && r->id == p->last_id + 1)
        return p;
    if (p)
        pc__reg_pjoin_free(&v->st, p);
    if (!(p = calloc(1, sizeof *p)))
        return NULL;
    p->node = r->node->node;
    p->incarnation = r->node->incarnation;
    p->agent_id = r->node->agent->id;
    p->next = v->st.pjoins;
    v->st.pjoins = p;
    return p;
}

/* Append the chunk's names to p; false: out of memory. */
static bool
pjoin_add(reg_pjoin *p, const Picos__V1__RegRequest *r)
{
    for (size_t i = 0; i < r->n_names; i++) {
        const Picos__V1__NameEntry *e = r->names[i];
        size_t len = strlen(e->name),
               need = (sizeof(reg_jname) + len + 1 + 7) & ~(size_t)7;
        reg_jname *j;
        if (p->len + need > p->cap) {
            size_t cap = p->cap ? p->cap * 2 : 64 * 1024;
            uint8_t *b;
            while (cap < p->len + need)
                cap *= 2;
            if (!(b = realloc(p->buf, cap)))
                return false;
            p->buf = b;
            p->cap = cap;
        }
        j = (reg_jname *)(void *)(p->buf + p->len);
        j->node = e->ref->node;
        j->id = e->ref->id;
        j->inc = e->ref->incarnation;
        j->claimed_us = e->claimed_us;
        j->kind = (int32_t)e->kind;
        j->len = (uint32_t)len;
        memcpy(j->name, e->name, len + 1);
        p->len += need;
        p->nnames++;
    }
    return true;
}

/* The next name of p's buffer at *off (advanced), or NULL at the end. */
static const reg_jname *
pjoin_next(const reg_pjoin *p, size_t *off)
{
    const reg_jname *j;

    if (*off >= p->len)
        return NULL;
    j = (const reg_jname *)(const void *)(p->buf + *off);
    *off += (sizeof(reg_jname) + j->len + 1 + 7) & ~(size_t)7;
    return j;
}

static void
jname_entry(const reg_jname *j, Picos__V1__NameEntry *e, Picos__V1__Ref *ref)
{
    picos__v1__name_entry__init(e);
    picos__v1__ref__init(ref);
    ref->node = j->node;
    ref->id = j->id;
    ref->incarnation = j->inc;
    e->kind = (Picos__V1__NameKind)j->kind;
    e->name = (char *)j->name;
    e->ref = ref;
    e->claimed_us = j->claimed_us;
}

/* Pending joins whose next chunk did not come in time: refused (kept a
 * while, so their late chunks are refused too), then dropped. Returns the
 * nearest deadline left (INFINITY: none). */
static double
pjoin_pass(reg_server *v)
{
    double now = pc_now(), next = INFINITY;

    for (reg_pjoin *p = v->st.pjoins, *nx; p; p = nx) {
        nx = p->next;
        if (p->deadline <= now) {
            if (p->refused) {
                pc__reg_pjoin_free(&v->st, p);
                continue;
            }
            pc__reg_pjoin_refuse(p, "the JOIN's next chunk did not come in "
                                    "time (join again)");
            p->deadline = now + v->st.pjoin_ttl;
        }
        if (p->deadline < next)
            next = p->deadline;
    }
    return next;
}

/* Is a join of member m's start arriving? (grace waits for it) */
bool
pc__reg_pjoin_live(reg_server *v, const reg_member *m)
{
    for (reg_pjoin *p = v->st.pjoins; p; p = p->next)
        if (p->node == m->node && p->incarnation == m->incarnation &&
            !p->refused)
            return true;
    return false;
}

/* What a JOIN does, once, with every name of its chunks (p). */
static void
join_apply(reg_server *v, const req *q, const reg_pjoin *p)
{
    const Picos__V1__RegRequest *r = q->r;
    Picos__V1__RegReply rep = PICOS__V1__REG_REPLY__INIT;
    Picos__V1__RegistryStatus st;
    Picos__V1__NameEntry *le = NULL, **lost = NULL;
    Picos__V1__Ref *lr = NULL;
    const reg_jname **lj = NULL, *j;
    node_views w;
    reg_member *m, *was = pc__reg_member(&v->st, r->node->node);
    pc_ref old = was && was->incarnation == r->node->incarnation ? was->agent
                                                                 : PC_REF_NIL;
    bool fresh, was_monitored = was && was->monitored &&
                                was->incarnation == r->node->incarnation;
    size_t nlost = 0, off = 0;
    uint32_t gen = ++v->join_gen;

    if (!(m = pc__reg_join(&v->st, r->node, &fresh))) {
        reply_status(v, q->from, r->id, PICOS__V1__REG_STATUS__BAD_REQUEST,
                     "out of memory", false);
        return;
    }
    m->probe++; /* a probe still running has nothing more to say */
    m->monitored = was_monitored;
    if (fresh) {
        PC_LOG_INFO("registry", "node %s (%016" PRIx64 ") joined at %s",
                    m->name, m->node, m->endpoint[0] ? m->endpoint : "-");
        pc__reg_event_all(&v->st, PICOS__V1__REG_EVENT_KIND__NODE_UP, m, NULL,
                          "joined", m);
    }
    if (p->nnames && !(lj = calloc(p->nnames, sizeof *lj)))
        return;
    /* its list replaces what we had: claim each, then drop the others */
    while ((j = pjoin_next(p, &off))) {
        Picos__V1__NameEntry e;
        Picos__V1__Ref ref;
        reg_name *h, *n;
        jname_entry(j, &e, &ref);
        if (pc__reg_claim(&v->st, m, &e, &h) != PICOS__V1__REG_STATUS__OK)
            lj[nlost++] = j;
        else if ((n = pc__reg_name(&v->st, j->kind, j->name)))
            n->mark = gen;
    }
    for (reg_name *n = m->names, *next; n; n = next) {
        next = n->mnext;
        if (n->mark != gen)
            pc__reg_unname(&v->st, n);
    }
    monitor_agent(v, m, old);
    v->names_changed = true;
    if (nlost && (le = calloc(nlost, sizeof *le)) &&
        (lr = calloc(nlost, sizeof *lr)) &&
        (lost = calloc(nlost, sizeof *lost)))
        for (size_t i = 0; i < nlost; i++) {
            jname_entry(lj[i], &le[i], &lr[i]);
            le[i].ref = &lr[i];
            lost[i] = &le[i];
        }
    rep.id = r->id;
    rep.n_names = lost ? nlost : 0;
    rep.names = lost;
    if (nodes_make(v, &w)) {
        rep.n_nodes = w.n;
        rep.nodes = w.p;
    }
    status_view(v, &st);
    rep.registry = &st;
    reply_send(v, q->from, &rep, true);
    nodes_free(&w);
    free(lj), free(le), free(lr), free(lost);
}

/* A JOIN, or one chunk of it: chunks with `more` are kept (answered OK at
 * once); the last one applies the join with the union of their names. */
static void
op_join(reg_server *v, const req *q)
{
    const Picos__V1__RegRequest *r = q->r;
    reg_pjoin *p;

    if (q->from.node != r->node->node) {
        reply_status(v, q->from, r->id, PICOS__V1__REG_STATUS__BAD_REQUEST,
                     "JOIN from another node than the one it names", false);
        return;
    }
    if (!(p = pjoin_for(v, q))) {
        reply_status(v, q->from, r->id, PICOS__V1__REG_STATUS__BAD_REQUEST,
                     "out of memory", false);
        return;
    }
    p->last_id = r->id;
    p->deadline = pc_now() + v->st.pjoin_ttl;
    if (!p->refused && (p->nnames + r->n_names > v->st.max_node_names ||
                        p->nnames + r->n_names < p->nnames)) {
        char why[96];
        snprintf(why, sizeof why, "a JOIN of more than %zu names per node",
                 v->st.max_node_names);
        PC_LOG_WARN("registry", "node %s (%016" PRIx64 "): %s: refused",
                    r->node->name, r->node->node, why);
        pc__reg_pjoin_refuse(p, why);
    }
    if (!p->refused && !pjoin_add(p, r))
        pc__reg_pjoin_refuse(p, "out of memory");
    if (p->refused) {
        v->st.bad++;
        reply_status(v, q->from, r->id, PICOS__V1__REG_STATUS__BAD_REQUEST,
                     p->text, false);
        if (!r->more)
            pc__reg_pjoin_free(&v->st, p);
        return;
    }
    if (r->more) {
        reply_status(v, q->from, r->id, PICOS__V1__REG_STATUS__OK, "", false);
        return;
    }
    /* (unlinked first: a "new start" inside must not refuse it) */
    for (reg_pjoin **pp = &v->st.pjoins; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    p->next = NULL;
    join_apply(v, q, p);
    free(p->buf);
    free(p);
}

static void
op_leave(reg_server *v, const req *q)
{
    reg_member *m = pc__reg_member(&v->st, q->from.node);

    if (!m) {
        reply_status(v, q->from, q->r->id, PICOS__V1__REG_STATUS__NOT_JOINED,
                     "this node has not joined", true);
        return;
    }
    pc__reg_down(&v->st, m, "left");
    reply_status(v, q->from, q->r->id, PICOS__V1__REG_STATUS__OK, "", true);
}

/* "name 'x' (task) is held by node NAME (0x...) task 0x..." */
static void
held_text(char *buf, size_t size, const reg_name *n)
{
    char ref[48];

    pc_ref_str(n->ref, ref, sizeof ref);
    snprintf(buf, size,
             "name '%s' (%s) is held by node %s (0x%016" PRIx64 ") task %s",
             n->name, kind_str(n->kind), n->owner->name, n->owner->node, ref);
}

static void
op_register(reg_server *v, const req *q)
{
    const Picos__V1__NameEntry *e = q->r->names[0];
    reg_member *m = pc__reg_member(&v->st, q->from.node);
    reg_name *holder;
    char text[640];

    if (!m || !m->confirmed) {
        reply_status(v, q->from, q->r->id, PICOS__V1__REG_STATUS__NOT_JOINED,
                     "this node has not joined (JOIN first)", true);
        return;
    }
    if (e->ref->node != m->node) {
        reply_status(v, q->from, q->r->id, PICOS__V1__REG_STATUS__BAD_REQUEST,
                     "the name's ref is not of the sender's node", true);
        return;
    }
    if (pc__reg_claim(&v->st, m, e, &holder) == PICOS__V1__REG_STATUS__TAKEN) {
        held_text(text, sizeof text, holder);
        reply_entry(v, q->from, q->r->id, PICOS__V1__REG_STATUS__TAKEN, text,
                    holder, true);
        return;
    }
    v->names_changed = true;
    reply_status(v, q->from, q->r->id, PICOS__V1__REG_STATUS__OK, "", true);
}

static void
op_unregister(reg_server *v, const req *q)
{
    const Picos__V1__NameEntry *e = q->r->names[0];
    reg_member *m = pc__reg_member(&v->st, q->from.node);
    reg_name *n = pc__reg_name(&v->st, (int)e->kind, e->name);
    char text[640];

    if (!m) {
        reply_status(v, q->from, q->r->id, PICOS__V1__REG_STATUS__NOT_JOINED,
                     "this node has not joined (JOIN first)", true);
        return;
    }
    if (!n) {
        snprintf(text, sizeof text, "no name '%s' (%s)", e->name,
                 kind_str((int)e->kind));
        reply_status(v, q->from, q->r->id, PICOS__V1__REG_STATUS__NOT_FOUND,
                     text, true);
        return;
    }
    if (n->owner != m) {
        held_text(text, sizeof text, n);
        reply_status(v, q->from, q->r->id, PICOS__V1__REG_STATUS__NOT_OWNER,
                     text, true);
        return;
    }
    pc__reg_unname(&v->st, n);
    reply_status(v, q->from, q->r->id, PICOS__V1__REG_STATUS__OK, "", true);
}

static reg_name *
visible(reg_server *v, int kind, const char *name)
{
    reg_name *n = pc__reg_name(&v->st, kind, name);
    return n && n->owner->confirmed ? n : NULL;
}

static void
op_locate(reg_server *v, const req *q)
{
    const Picos__V1__NameEntry *e = q->r->names[0];
    reg_name *n = visible(v, (int)e->kind, e->name);
    size_t len = strlen(e->name);
    char text[320];
    reg_park *p;

    if (n) {
        reply_entry(v, q->from, q->r->id, PICOS__V1__REG_STATUS__OK, "", n,
                    false);
        return;
    }
    if (!q->r->timeout_ms) {
        snprintf(text, sizeof text, "no name '%s' (%s)", e->name,
                 kind_str((int)e->kind));
        reply_status(v, q->from, q->r->id, PICOS__V1__REG_STATUS__NOT_FOUND,
                     text, false);
        return;
    }
    if (pc_ref_is_nil(q->from) || !(p = calloc(1, sizeof *p + len + 1)))
        return;
    p->from = q->from;
    p->id = q->r->id;
    p->kind = (int)e->kind;
    p->deadline = pc_now() + q->r->timeout_ms / 1000.0;
    memcpy(p->name, e->name, len + 1);
    p->next = v->parked;
    v->parked = p;
}

static void
op_list_nodes(reg_server *v, const req *q)
{
    Picos__V1__RegReply rep = PICOS__V1__REG_REPLY__INIT;
    node_views w;

    rep.id = q->r->id;
    if (nodes_make(v, &w)) {
        rep.n_nodes = w.n;
        rep.nodes = w.p;
    }
    reply_send(v, q->from, &rep, false);
    nodes_free(&w);
}

static void
op_list_names(reg_server *v, const req *q)
{
    Picos__V1__RegReply rep = PICOS__V1__REG_REPLY__INIT;
    Picos__V1__NameEntry *e = NULL, **p = NULL;
    Picos__V1__Ref *refs = NULL;
    node_views w;
    size_t n = 0, all, len;
    char text[96];

    rep.id = q->r->id;
    if (v->st.nnames && (!(e = calloc(v->st.nnames, sizeof *e)) ||
                         !(p = calloc(v->st.nnames, sizeof *p)) ||
                         !(refs = calloc(v->st.nnames, sizeof *refs)))) {
        free(e), free(p), free(refs);
        reply_status(v, q->from, q->r->id, PICOS__V1__REG_STATUS__BAD_REQUEST,
                     "out of memory", false);
        return;
    }
    for (size_t i = 0; i < v->st.ncap; i++)
        for (reg_name *x = v->st.nb[i]; x; x = x->hnext) {
            if (q->r->has_kind && x->kind != (int)q->r->kind)
                continue;
            pc__reg_name_view(x, &e[n], &refs[n], true);
            p[n] = &e[n];
            n++;
        }
    all = n;
    rep.n_names = n;
    rep.names = p;
    if (nodes_make(v, &w)) {
        rep.n_nodes = w.n;
        rep.nodes = w.p;
    }
    if ((len = picos__v1__reg_reply__get_packed_size(&rep)) > LIST_SLIM) {
        for (size_t i = 0; i < n; i++)
            e[i].node_name = e[i].endpoint = (char *)protobuf_c_empty_string;
        len = picos__v1__reg_reply__get_packed_size(&rep);
    }
    while (len > LIST_MAX && rep.n_names > 0) {
        rep.n_names = rep.n_names * (LIST_MAX / 2) / (len / 2 + 1);
        len = picos__v1__reg_reply__get_packed_size(&rep);
    }
    if (rep.n_names < all) {
        snprintf(text, sizeof text, "truncated: %zu of %zu names", rep.n_names,
                 all);
        rep.text = text;
    }
    reply_send(v, q->from, &rep, false);
    nodes_free(&w);
    free(e), free(p), free(refs);
}

static void
op_status(reg_server *v, const req *q)
{
    Picos__V1__RegReply rep = PICOS__V1__REG_REPLY__INIT;
    Picos__V1__RegistryStatus st;

    rep.id = q->r->id;
    status_view(v, &st);
    rep.registry = &st;
    reply_send(v, q->from, &rep, false);
}

/* The latest status of every member as a packed NodeStatusList in
 * `statuses`; a list too big for a frame keeps as many nodes as fit (its
 * text says so). */
static void
op_nodes_status(reg_server *v, const req *q)
{
    Picos__V1__RegReply rep = PICOS__V1__REG_REPLY__INIT;
    Picos__V1__NodeStatusList *l = NULL;
    uint8_t *buf = NULL;
    size_t len = 0, all = 0;
    char text[96];

    rep.id = q->r->id;
    if (pc__statusdb_list(v->st.sdb, &buf, &len) != PC_OK) {
        reply_status(v, q->from, q->r->id, PICOS__V1__REG_STATUS__BAD_REQUEST,
                     "out of memory", false);
        return;
    }
    if (len > LIST_MAX &&
        (l = picos__v1__node_status_list__unpack(NULL, len, buf))) {
        all = l->n_nodes;
        while (len > LIST_MAX && l->n_nodes > 0) {
            l->n_nodes = l->n_nodes * (LIST_MAX / 2) / (len / 2 + 1);
            len = picos__v1__node_status_list__get_packed_size(l);
        }
        picos__v1__node_status_list__pack(l, buf);
        snprintf(text, sizeof text, "truncated: %zu of %zu nodes", l->n_nodes,
                 all);
        rep.text = text;
        l->n_nodes = all; /* free_unpacked frees them all */
        picos__v1__node_status_list__free_unpacked(l, NULL);
    }
    rep.statuses.data = buf;
    rep.statuses.len = len;
    reply_send(v, q->from, &rep, false);
    free(buf);
}

static void
on_request(reg_server *v, const pc_msg *m)
{
    size_t len = 0;
    const void *data = pc_msg_data(m, &len);
    const char *why;
    uint64_t id;
    req q = {.from = pc_msg_sender(m)};

    if (!(q.r = pc__reg_decode(data, len, &id, &why))) {
        v->st.bad++;
        reply_status(v, q.from, id, PICOS__V1__REG_STATUS__BAD_REQUEST, why,
                     false);
        return;
    }
    switch (q.r->op) {
    case PICOS__V1__REG_OP__REG_JOIN:
        op_join(v, &q);
        break;
    case PICOS__V1__REG_OP__LEAVE:
        op_leave(v, &q);
        break;
    case PICOS__V1__REG_OP__REGISTER:
        op_register(v, &q);
        break;
    case PICOS__V1__REG_OP__UNREGISTER:
        op_unregister(v, &q);
        break;
    case PICOS__V1__REG_OP__LOCATE:
        op_locate(v, &q);
        break;
    case PICOS__V1__REG_OP__LIST_NODES:
        op_list_nodes(v, &q);
        break;
    case PICOS__V1__REG_OP__LIST_NAMES:
        op_list_names(v, &q);
        break;
    case PICOS__V1__REG_OP__NODES_STATUS:
        op_nodes_status(v, &q);
        break;
    default:
        op_status(v, &q);
        break;
    }
    picos__v1__reg_request__free_unpacked(q.r, NULL);
}

/* A member's NodeStatus: kept when its agent sent it about its own start,
 * else counted and dropped (no reply: nobody waits for one). */
static void
on_status(reg_server *v, const pc_msg *m)
{
    size_t len = 0;
    const void *data = pc_msg_data(m, &len);
    pc_ref from = pc_msg_sender(m);
    const char *why = NULL;
    Picos__V1__NodeStatus *s = pc__reg_status_decode(data, len, &why);
    reg_member *mb = s ? pc__reg_member(&v->st, s->node) : NULL;

    if (s && (!mb || !mb->confirmed || mb->incarnation != s->incarnation ||
              !pc_ref_eq(from, mb->agent)))
        why = "not from the agent of the joined member it describes";
    if (!why && pc__statusdb_put(v->st.sdb, s, pc_wall_us()) != PC_OK)
        why = "out of memory";
    if (why) {
        v->statuses_dropped++;
        PC_LOG_DEBUG("registry", "a NodeStatus from %016" PRIx64 " dropped: %s",
                     from.node, why);
    } else
        v->statuses++;
    if (s)
        picos__v1__node_status__free_unpacked(s, NULL);
}

/* ---- DOWN, probes, parked locates, grace --------------------------------------- */

static void
on_down(reg_server *v, const pc_msg *m)
{
    reg_member *mb;
    const char *why;
    pc_down d;

    if (pc_down_parse(m, &d) != PC_OK ||
        !(mb = pc__reg_member(&v->st, d.who.node)) ||
        !pc_ref_eq(mb->agent, d.who))
        return;
    mb->monitored = false;
    switch (d.reason) {
    case PC_DOWN_NODE:
        why = "its node went down (silent past the link timeout)";
        break;
    case PC_DOWN_NOPROC:
        why = mb->confirmed ? "its agent is gone"
                            : "its agent is gone (not the start in the log)";
        break;
    default:
        why = "its agent ended";
    }
    pc__reg_down(&v->st, mb, why);
}

/* Answer the parked locates whose name is visible now, and the ones whose
 * deadline passed; returns the nearest deadline left (INFINITY: none). */
static double
parked_pass(reg_server *v, bool names_changed)
{
    double now = pc_now(), next = INFINITY;

    for (reg_park **pp = &v->parked; *pp;) {
        reg_park *p = *pp;
        reg_name *n = names_changed ? visible(v, p->kind, p->name) : NULL;
        if (n)
            reply_entry(v, p->from, p->id, PICOS__V1__REG_STATUS__OK, "", n,
                        true);
        else if (p->deadline <= now) {
            char text[320];
            snprintf(text, sizeof text, "no name '%s' (%s) appeared in time",
                     p->name, kind_str(p->kind));
            reply_status(v, p->from, p->id, PICOS__V1__REG_STATUS__TIMED_OUT,
                         text, false);
            v->st.expired++;
        } else {
            if (p->deadline < next)
                next = p->deadline;
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        free(p);
    }
    return next;
}

/* ---- durability ------------------------------------------------------------------ */

static void *
sync_job(void *arg)
{
    return (void *)(intptr_t)pc__store_sync(arg);
}

/* Sync what the batch logged (on a pool thread) and send the outbox. */
static void
commit(reg_server *v)
{
    if (pc__store_pending(v->st.store)) {
        void *res = NULL;
        pc_err rc = pc_pool_run(v->pool, sync_job, v->st.store, -1, &res);
        if (rc == PC_OK)
            rc = (pc_err)(intptr_t)res;
        if (rc != PC_OK) {
            if (!v->sync_failing)
                PC_LOG_ERROR("registry",
                             "the log can't be synced (%s): replies wait",
                             pc_strerror(rc));
            v->sync_failing = true;
            v->retry_at = pc_now() + SYNC_RETRY;
            return;
        }
        if (v->sync_failing)
            PC_LOG_WARN("registry", "the log syncs again");
        v->sync_failing = false;
    }
    for (size_t i = 0; i < v->st.nout; i++) {
        reg_out *o = &v->st.out[i];
        if (pc_send(o->to, &o->m) != PC_OK)
            pc_msg_free(&o->m);
    }
    v->st.nout = 0;
}

static pc_err
compact_add(void *ctx, const void *p, size_t len)
{
    return pc__store_compact_add(ctx, p, len);
}

static void *
compact_job(void *arg)
{
    reg_server *v = arg;
    pc_err rc = pc__store_compact_begin(v->st.store);

    if (rc == PC_OK &&
        (rc = pc__reg_each_record(&v->st, compact_add, v->st.store)) == PC_OK)
        rc = pc__store_compact_commit(v->st.store);
    if (rc != PC_OK)
        pc__store_compact_abort(v->st.store);
    return (void *)(intptr_t)rc;
}

static void
maybe_compact(reg_server *v)
{
    uint64_t size = pc__store_size(v->st.store);
    void *res = NULL;
    pc_err rc;

    if (size <= v->compact_bytes || size <= 2 * v->st.live_bytes ||
        pc__store_pending(v->st.store))
        return;
    rc = pc_pool_run(v->pool, compact_job, v, -1, &res);
    if (rc == PC_OK)
        rc = (pc_err)(intptr_t)res;
    if (rc == PC_OK)
        PC_LOG_INFO("registry",
                    "log compacted: %" PRIu64 " -> %" PRIu64 " bytes", size,
                    pc__store_size(v->st.store));
    else /* try again when it has grown by half again */
        v->compact_bytes = size + size / 2;
}

/* ---- the task ------------------------------------------------------------------- */

static bool
local(const pc_msg *m)
{
    pc_ref from = pc_msg_sender(m);
    return pc_ref_is_nil(from) || from.node == pc_node_id();
}

static void
on_message(reg_server *v, pc_msg *m)
{
    if (pc_msg_is(m, REG_MSG_REQUEST))
        on_request(v, m);
    else if (pc_msg_is(m, REG_MSG_STATUS))
        on_status(v, m);
    else if (pc_msg_is(m, PC_MSG_DOWN))
        on_down(v, m);
    else if (pc_msg_is(m, MSG_PROBE) && local(m))
        pc__reg_on_probe(v, m);
    else if (pc_msg_is(m, MSG_STOP) && local(m))
        v->stopping = true;
    else {
        v->st.bad++;
        reply_status(v, pc_msg_sender(m), 0, PICOS__V1__REG_STATUS__BAD_REQUEST,
                     "not a picos.v1.RegRequest", false);
    }
    pc_msg_free(&m);
}

static bool
go_or_stop(const pc_msg *m, void *ctx)
{
    (void)ctx;
    return (pc_msg_is(m, MSG_GO) || pc_msg_is(m, MSG_STOP)) && local(m);
}

static pc_msg *
server_task(void *arg)
{
    reg_server *v = arg;
    pc_msg *m = NULL;
    double next = INFINITY, pnext = INFINITY;

    /* the endpoint comes once the node listens */
    if (pc_recv_match(go_or_stop, NULL, NULL, &m, -1) != PC_OK ||
        pc_msg_is(m, MSG_STOP))
        v->stopping = true;
    else
        snprintf(v->endpoint, sizeof v->endpoint, "%s", pc_msg_str(m));
    pc_msg_free(&m);
    if (!v->stopping)
        pc__reg_probes_start(v);
    while (!v->stopping) {
        double until = next;
        if (v->st.unconfirmed && v->grace_deadline < until)
            until = v->grace_deadline;
        if (v->sync_failing && v->retry_at < until)
            until = v->retry_at;
        if (pnext < until)
            until = pnext;
        if (pc_recv(&m, isinf(until) ? -1 : pc_deadline_left(until)) == PC_OK) {
            on_message(v, m);
            for (int i = 1; i < BATCH && pc_recv(&m, 0) == PC_OK; i++)
                on_message(v, m);
        }
        pc__reg_grace_pass(v);
        pnext = pjoin_pass(v);
        next = parked_pass(v, v->names_changed);
        v->names_changed = false;
        if (v->sync_failing && pc_now() < v->retry_at)
            continue;
        commit(v);
        if (!v->sync_failing)
            maybe_compact(v);
    }
    commit(v);
    while (v->parked) {
        reg_park *p = v->parked;
        v->parked = p->next;
        free(p);
    }
    pc__store_close(&v->st.store);
    pc_pool_free(&v->pool);
    return NULL;
}

/* ---- start and stop ---------------------------------------------------------------- */

static void
server_free(reg_server *v)
{
    if (!v)
        return;
    pc__store_close(&v->st.store);
    pc_pool_free(&v->pool);
    pc__statusdb_free(&v->st.sdb); /* (state_fini clears the state) */
    pc__reg_state_fini(&v->st);
    while (v->parked) {
        reg_park *p = v->parked;
        v->parked = p->next;
        free(p);
    }
    free(v);
}

/* Ask the task to end and wait for it. */
static pc_err
task_stop(reg_server *v, double timeout)
{
    pc_err rc = pc_send_data(v->task, MSG_STOP, NULL, 0);

    if (rc == PC_OK)
        rc = pc_task_join(v->task, timeout, NULL);
    return rc == PC_ENOENT ? PC_OK : rc;
}

pc_err
pc_registry_start(const pc_registry_opts *o, char *bound, size_t size)
{
    pc_spawn_opts so = {.worker = PC_WORKER_ANY,
                        .flags = PC_TASK_DAEMON | PC_TASK_JOINABLE,
                        .name = PC_REGISTRY_TASK};
    double timeout;
    char host[128] = "", ep[PC_ENDPOINT_MAX + 1];
    reg_server *v;
    pc_err rc;

    if (!o || !o->data_dir || !o->data_dir[0])
        return PC_EINVAL;
    if (!pc_node_id() || pc_worker_index() >= 0)
        return PC_ESTATE;
    pthread_mutex_lock(&srv_mu);
    if (srv) {
        pthread_mutex_unlock(&srv_mu);
        return PC_ESTATE;
    }
    if (!(v = calloc(1, sizeof *v))) {
        pthread_mutex_unlock(&srv_mu);
        return PC_ENOMEM;
    }
    pc__reg_state_init(&v->st);
    v->st.self_node = pc_node_id();
    snprintf(v->data_dir, sizeof v->data_dir, "%s", o->data_dir);
    gethostname(host, sizeof host - 1);
    if (o->net.name && o->net.name[0])
        snprintf(v->name, sizeof v->name, "%s", o->net.name);
    else
        snprintf(v->name, sizeof v->name, "%s:%d", host, (int)getpid());
    timeout = o->net.timeout > 0 ? o->net.timeout : 1.0;
    v->probe_timeout = 2 * timeout > 1.0 ? 2 * timeout : 1.0;
    v->compact_bytes = o->compact_bytes ? o->compact_bytes : 64u << 20;
    v->started_us = pc_wall_us();
    if ((rc = pc__statusdb_new(0, &v->st.sdb)) != PC_OK)
        goto fail;
    v->st.replaying = true;
    rc = pc__store_open(&v->st.store, o->data_dir, pc__reg_replay, &v->st);
    v->st.replaying = false;
    if (rc != PC_OK) {
        if (rc == PC_EPROTO || rc == PC_ENOMEM)
            PC_LOG_ERROR("registry", "%s/registry.log: %s", o->data_dir,
                         rc == PC_EPROTO ? "a record that is not a registry "
                                           "record (corrupt log)"
                                         : "out of memory replaying");
        goto fail;
    }
    v->replayed_nodes = v->st.nmb;
    v->replayed_names = v->st.nnames;
    {
        double grace = o->grace > 0 ? o->grace : 3 * timeout + 2.0;
        if (v->probe_timeout > grace)
            v->probe_timeout = grace;
        v->grace_deadline = pc_now() + grace;
        v->st.pjoin_ttl = grace;
    }
    v->st.max_node_names =
        o->max_node_names ? o->max_node_names : PC_REGISTRY_MAX_NODE_NAMES;
    if ((rc = pc_net_start(&o->net)) != PC_OK && rc != PC_ESTATE)
        goto fail;
    if ((rc = pc_pool_new(&v->pool, 1)) != PC_OK)
        goto fail;
    if ((rc = pc_spawn(server_task, v, &so, &v->task)) != PC_OK)
        goto fail;
    if ((rc = pc_register(PC_REGISTRY_TASK, v->task)) != PC_OK ||
        (rc = pc_node_listen(o->listen ? o->listen : PC_REGISTRY_DEFAULT, ep,
                             sizeof ep)) != PC_OK) {
        if (rc == PC_EEXIST)
            PC_LOG_ERROR("registry", "the name %s is taken on this node",
                         PC_REGISTRY_TASK);
        task_stop(v, -1);
        goto fail;
    }
    /* the task owns v->endpoint from here on: it copies it from GO */
    if ((rc = pc_send_data(v->task, MSG_GO, ep, strlen(ep))) != PC_OK) {
        task_stop(v, -1);
        goto fail;
    }
    if (bound && size)
        snprintf(bound, size, "%s", ep);
    PC_LOG_INFO("registry", "%s listening on %s (%zu nodes, %zu names)",
                v->name, ep, v->replayed_nodes, v->replayed_names);
    srv = v;
    pthread_mutex_unlock(&srv_mu);
    return PC_OK;
fail:
    server_free(v);
    pthread_mutex_unlock(&srv_mu);
    return rc;
}

pc_err
pc_registry_replayed(size_t *nodes, size_t *names)
{
    pc_err rc = PC_ESTATE;

    pthread_mutex_lock(&srv_mu);
    if (srv) {
        if (nodes)
            *nodes = srv->replayed_nodes;
        if (names)
            *names = srv->replayed_names;
        rc = PC_OK;
    }
    pthread_mutex_unlock(&srv_mu);
    return rc;
}

pc__statusdb *
pc__registry_statusdb(void)
{
    pc__statusdb *db;

    pthread_mutex_lock(&srv_mu);
    db = srv ? srv->st.sdb : NULL;
    pthread_mutex_unlock(&srv_mu);
    return db;
}

pc_err
pc_registry_stop(double timeout)
{
    reg_server *v;
    pc_err rc;

    pthread_mutex_lock(&srv_mu);
    if (!(v = srv)) {
        pthread_mutex_unlock(&srv_mu);
        return PC_ESTATE;
    }
    if ((rc = task_stop(v, timeout)) == PC_OK) {
        srv = NULL;
        server_free(v);
    }
    pthread_mutex_unlock(&srv_mu);
    return rc;
}
