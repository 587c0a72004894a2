/* registry/regstate.c — the registry's members and names, and the log
 * records and events each change makes.
 *
 * Two chained hash tables that double when they fill (members by node id,
 * names by kind and name), owned by the server task alone, so no locks.
 * Each member keeps a doubly linked list of its names: removing a node is
 * O(its names), not O(all names). Every mutation here appends its RegRecord
 * to the store (not while replaying the log: then the same functions
 * rebuild the state silently) and queues the events it causes in the
 * outbox, which server.c sends after the sync that makes the records
 * durable — a watcher never hears of a change a crash could undo.
 * `live_bytes` follows what the live records would weigh in a compacted
 * log, so server.c can tell when the log is mostly history.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "picos/log.h"
#include "picos/monitor.h"
#include "picos/task.h"

#include "server_int.h"

/* Per record in the file: length and CRC. */
#define REC_HDR 8u

static size_t
hash_name(int kind, const char *name)
{
    size_t h = 14695981039346656037u ^ (size_t)kind; /* FNV-1a */
    while (*name)
        h = (h ^ (unsigned char)*name++) * 1099511628211u;
    return h;
}

static size_t
hash_node(uint64_t node)
{
    node ^= node >> 33;
    node *= 0xff51afd7ed558ccdull;
    node ^= node >> 33;
    return (size_t)node;
}

static const char *
kind_str(int kind)
{
    return kind == PICOS__V1__NAME_KIND__CHANNEL   ? "channel"
           : kind == PICOS__V1__NAME_KIND__SERVICE ? "service"
                                                   : "task";
}

static char *
dup(const char *s)
{
    return strdup(s ? s : "");
}

void
pc__reg_state_init(reg_state *s)
{
    memset(s, 0, sizeof *s);
}

static void
member_free(reg_member *m)
{
    if (!m)
        return;
    free(m->name);
    free(m->host);
    free(m->endpoint);
    free(m->pub_endpoint);
    free(m);
}

void
pc__reg_pjoin_refuse(reg_pjoin *p, const char *why)
{
    free(p->buf);
    p->buf = NULL;
    p->len = p->cap = 0;
    p->nnames = 0;
    p->refused = true;
    snprintf(p->text, sizeof p->text, "%s", why);
}

void
pc__reg_pjoin_free(reg_state *s, reg_pjoin *p)
{
    for (reg_pjoin **pp = &s->pjoins; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    free(p->buf);
    free(p);
}

void
pc__reg_state_fini(reg_state *s)
{
    while (s->pjoins)
        pc__reg_pjoin_free(s, s->pjoins);
    for (size_t i = 0; i < s->ncap; i++)
        for (reg_name *n = s->nb[i], *next; n; n = next) {
            next = n->hnext;
            free(n);
        }
    for (size_t i = 0; i < s->mcap; i++)
        for (reg_member *m = s->mb[i], *next; m; m = next) {
            next = m->hnext;
            member_free(m);
        }
    for (size_t i = 0; i < s->nout; i++)
        pc_msg_free(&s->out[i].m);
    free(s->nb);
    free(s->mb);
    free(s->out);
    memset(s, 0, sizeof *s);
}

/* ---- views ------------------------------------------------------------------- */

void
pc__reg_node_view(const reg_member *m, Picos__V1__NodeInfo *ni,
                  Picos__V1__Ref *agent)
{
    picos__v1__node_info__init(ni);
    picos__v1__ref__init(agent);
    agent->node = m->agent.node;
    agent->id = m->agent.id;
    agent->incarnation = m->agent_inc;
    ni->node = m->node;
    ni->incarnation = m->incarnation;
    ni->name = m->name;
    ni->host = m->host;
    ni->pid = m->pid;
    ni->endpoint = m->endpoint;
    ni->pub_endpoint = m->pub_endpoint;
    ni->agent = agent;
    ni->joined_us = m->joined_us;
    ni->up = m->confirmed;
}

void
pc__reg_name_view(const reg_name *n, Picos__V1__NameEntry *e,
                  Picos__V1__Ref *ref, bool with_owner)
{
    picos__v1__name_entry__init(e);
    picos__v1__ref__init(ref);
    ref->node = n->ref.node;
    ref->id = n->ref.id;
    ref->incarnation = n->ref_inc;
    e->kind = (Picos__V1__NameKind)n->kind;
    e->name = (char *)n->name;
    e->ref = ref;
    e->claimed_us = n->claimed_us;
    if (with_owner && n->owner) {
        e->node_name = n->owner->name;
        e->endpoint = n->owner->endpoint;
    }
}

/* ---- records ----------------------------------------------------------------- */

static size_t
member_rec_size(const reg_member *m)
{
    Picos__V1__RegRecord r = PICOS__V1__REG_RECORD__INIT;
    Picos__V1__NodeInfo ni;
    Picos__V1__Ref a;

    pc__reg_node_view(m, &ni, &a);
    ni.up = false;
    r.kind = PICOS__V1__RECORD_KIND__REC_JOIN;
    r.node = &ni;
    return picos__v1__reg_record__get_packed_size(&r) + REC_HDR;
}

static size_t
name_rec_size(const reg_name *n)
{
    Picos__V1__RegRecord r = PICOS__V1__REG_RECORD__INIT;
    Picos__V1__NameEntry e;
    Picos__V1__Ref ref;

    pc__reg_name_view(n, &e, &ref, false);
    r.kind = PICOS__V1__RECORD_KIND__REC_NAME;
    r.name = &e;
    return picos__v1__reg_record__get_packed_size(&r) + REC_HDR;
}

/* Pack r and hand it to fn (the store's append, or compaction's add). */
static pc_err
pack_to(const Picos__V1__RegRecord *r,
        pc_err (*fn)(void *ctx, const void *p, size_t len), void *ctx)
{
    uint8_t stack[1024], *buf = stack;
    size_t len = picos__v1__reg_record__get_packed_size(r);
    pc_err rc;

    if (len > sizeof stack && !(buf = malloc(len)))
        return PC_ENOMEM;
    picos__v1__reg_record__pack(r, buf);
    rc = fn(ctx, buf, len);
    if (buf != stack)
        free(buf);
    return rc;
}

static pc_err
append_fn(void *ctx, const void *p, size_t len)
{
    return pc__store_append(ctx, p, len);
}

static void
log_rec(reg_state *s, const Picos__V1__RegRecord *r)
{
    pc_err rc;

    if (s->replaying || !s->store)
        return;
    if ((rc = pack_to(r, append_fn, s->store)) != PC_OK) {
        PC_LOG_ERROR("registry", "can't log a record: %s", pc_strerror(rc));
        if (s->store_err == PC_OK)
            s->store_err = rc;
    }
}

static void
log_member(reg_state *s, const reg_member *m)
{
    Picos__V1__RegRecord r = PICOS__V1__REG_RECORD__INIT;
    Picos__V1__NodeInfo ni;
    Picos__V1__Ref a;

    pc__reg_node_view(m, &ni, &a);
    ni.up = false;
    r.kind = PICOS__V1__RECORD_KIND__REC_JOIN;
    r.node = &ni;
    log_rec(s, &r);
}

static void
log_name(reg_state *s, const reg_name *n, bool gone)
{
    Picos__V1__RegRecord r = PICOS__V1__REG_RECORD__INIT;
    Picos__V1__NameEntry e;
    Picos__V1__Ref ref;

    pc__reg_name_view(n, &e, &ref, false);
    if (gone) {
        e.ref = NULL;
        e.claimed_us = 0;
    }
    r.kind = gone ? PICOS__V1__RECORD_KIND__REC_UNNAME
                  : PICOS__V1__RECORD_KIND__REC_NAME;
    r.name = &e;
    log_rec(s, &r);
}

pc_err
pc__reg_each_record(reg_state *s,
                    pc_err (*fn)(void *ctx, const void *p, size_t len),
                    void *ctx)
{
    pc_err rc;

    for (size_t i = 0; i < s->mcap; i++)
        for (reg_member *m = s->mb[i]; m; m = m->hnext) {
            Picos__V1__RegRecord r = PICOS__V1__REG_RECORD__INIT;
            Picos__V1__NodeInfo ni;
            Picos__V1__Ref a;
            pc__reg_node_view(m, &ni, &a);
            ni.up = false;
            r.kind = PICOS__V1__RECORD_KIND__REC_JOIN;
            r.node = &ni;
            if ((rc = pack_to(&r, fn, ctx)) != PC_OK)
                return rc;
        }
    for (size_t i = 0; i < s->ncap; i++)
        for (reg_name *n = s->nb[i]; n; n = n->hnext) {
            Picos__V1__RegRecord r = PICOS__V1__REG_RECORD__INIT;
            Picos__V1__NameEntry e;
            Picos__V1__Ref ref;
            pc__reg_name_view(n, &e, &ref, false);
            r.kind = PICOS__V1__RECORD_KIND__REC_NAME;
            r.name = &e;
            if ((rc = pack_to(&r, fn, ctx)) != PC_OK)
                return rc;
        }
    return PC_OK;
}

/* ---- the outbox and events ----------------------------------------------------- */

void
pc__reg_outbox(reg_state *s, pc_ref to, pc_msg **m)
{
    if (s->nout == s->outcap) {
        size_t cap = s->outcap ? s->outcap * 2 : 256;
        reg_out *o = realloc(s->out, cap * sizeof *o);
        if (!o) {
            pc_msg_free(m);
            return;
        }
        s->out = o;
        s->outcap = cap;
    }
    s->out[s->nout].to = to;
    s->out[s->nout++].m = *m;
    *m = NULL;
}

static pc_msg *
event_msg(reg_state *s, int kind, const reg_member *about, const reg_name *name,
          const char *reason)
{
    Picos__V1__RegEvent ev = PICOS__V1__REG_EVENT__INIT;
    Picos__V1__NodeInfo ni;
    Picos__V1__NameEntry e;
    Picos__V1__Ref a, r;
    uint8_t stack[1024], *buf = stack;
    pc_msg *m = NULL;
    size_t len;

    ev.kind = (Picos__V1__RegEventKind)kind;
    ev.reason = (char *)(reason ? reason : "");
    ev.registry = s->self_node;
    if (about) {
        pc__reg_node_view(about, &ni, &a);
        ev.node = &ni;
    }
    if (name) {
        pc__reg_name_view(name, &e, &r, true);
        ev.name = &e;
    }
    len = picos__v1__reg_event__get_packed_size(&ev);
    if (len > sizeof stack && !(buf = malloc(len)))
        return NULL;
    picos__v1__reg_event__pack(&ev, buf);
    if (pc_msg_new(&m, REG_MSG_EVENT, buf, len) != PC_OK)
        m = NULL;
    if (buf != stack)
        free(buf);
    return m;
}

void
pc__reg_event_to(reg_state *s, pc_ref to, int kind, const reg_member *about,
                 const reg_name *name, const char *reason)
{
    pc_msg *m;

    if (pc_ref_is_nil(to) || s->replaying)
        return;
    if ((m = event_msg(s, kind, about, name, reason)))
        pc__reg_outbox(s, to, &m);
}

void
pc__reg_event_all(reg_state *s, int kind, const reg_member *about,
                  const reg_name *name, const char *reason,
                  const reg_member *skip)
{
    pc_msg *m = NULL;

    if (s->replaying)
        return;
    for (size_t i = 0; i < s->mcap; i++)
        for (reg_member *w = s->mb[i]; w; w = w->hnext) {
            pc_msg *one;
            if (w == skip || !w->confirmed || pc_ref_is_nil(w->agent))
                continue;
            if (!m && !(m = event_msg(s, kind, about, name, reason)))
                return;
            one = pc_msg_ref(m);
            pc__reg_outbox(s, w->agent, &one);
        }
    pc_msg_free(&m);
}

/* ---- the tables ------------------------------------------------------------- */

/* Double a table when it holds more than its buckets. */
static bool
grow_members(reg_state *s)
{
    size_t cap = s->mcap ? s->mcap * 2 : 64;
    reg_member **b;

    if (s->nmb < s->mcap)
        return true;
    if (!(b = calloc(cap, sizeof *b)))
        return s->mcap > 0; /* a fuller table still works */
    for (size_t i = 0; i < s->mcap; i++)
        for (reg_member *m = s->mb[i], *next; m; m = next) {
            next = m->hnext;
            m->hnext = b[hash_node(m->node) & (cap - 1)];
            b[hash_node(m->node) & (cap - 1)] = m;
        }
    free(s->mb);
    s->mb = b;
    s->mcap = cap;
    return true;
}

static bool
grow_names(reg_state *s)
{
    size_t cap = s->ncap ? s->ncap * 2 : 1024;
    reg_name **b;

    if (s->nnames < s->ncap)
        return true;
    if (!(b = calloc(cap, sizeof *b)))
        return s->ncap > 0;
    for (size_t i = 0; i < s->ncap; i++)
        for (reg_name *n = s->nb[i], *next; n; n = next) {
            size_t h = hash_name(n->kind, n->name) & (cap - 1);
            next = n->hnext;
            n->hnext = b[h];
            b[h] = n;
        }
    free(s->nb);
    s->nb = b;
    s->ncap = cap;
    return true;
}

reg_member *
pc__reg_member(reg_state *s, uint64_t node)
{
    if (!s->mcap)
        return NULL;
    for (reg_member *m = s->mb[hash_node(node) & (s->mcap - 1)]; m;
         m = m->hnext)
        if (m->node == node)
            return m;
    return NULL;
}

reg_name *
pc__reg_name(reg_state *s, int kind, const char *name)
{
    if (!s->ncap)
        return NULL;
    for (reg_name *n = s->nb[hash_name(kind, name) & (s->ncap - 1)]; n;
         n = n->hnext)
        if (n->kind == kind && !strcmp(n->name, name))
            return n;
    return NULL;
}

static void
name_unlink(reg_state *s, reg_name *n)
{
    reg_name **p = &s->nb[hash_name(n->kind, n->name) & (s->ncap - 1)];

    while (*p != n)
        p = &(*p)->hnext;
    *p = n->hnext;
    s->nnames--;
    if (n->mprev)
        n->mprev->mnext = n->mnext;
    else
        n->owner->names = n->mnext;
    if (n->mnext)
        n->mnext->mprev = n->mprev;
    n->owner->nnames--;
    s->live_bytes -= name_rec_size(n);
}

static void
name_give(reg_name *n, reg_member *m)
{
    n->owner = m;
    n->mprev = NULL;
    n->mnext = m->names;
    if (m->names)
        m->names->mprev = n;
    m->names = n;
    m->nnames++;
}

/* A new entry for m (not logged, no events). */
static reg_name *
name_add(reg_state *s, reg_member *m, int kind, const char *name, pc_ref ref,
         uint64_t ref_inc, uint64_t claimed_us)
{
    size_t len = strlen(name), h;
    reg_name *n;

    if (!grow_names(s) || !(n = calloc(1, sizeof *n + len + 1)))
        return NULL;
    memcpy(n->name, name, len + 1);
    n->kind = kind;
    n->ref = ref;
    n->ref_inc = ref_inc;
    n->claimed_us = claimed_us;
    h = hash_name(kind, name) & (s->ncap - 1);
    n->hnext = s->nb[h];
    s->nb[h] = n;
    s->nnames++;
    name_give(n, m);
    s->live_bytes += name_rec_size(n);
    return n;
}

void
pc__reg_unname(reg_state *s, reg_name *n)
{
    name_unlink(s, n);
    log_name(s, n, true);
    pc__reg_event_all(s, PICOS__V1__REG_EVENT_KIND__NAME_GONE, n->owner, n,
                      "unregistered", NULL);
    free(n);
}

static void
member_unlink(reg_state *s, reg_member *m)
{
    reg_member **p = &s->mb[hash_node(m->node) & (s->mcap - 1)];

    while (*p != m)
        p = &(*p)->hnext;
    *p = m->hnext;
    s->nmb--;
    if (!m->confirmed)
        s->unconfirmed--;
    s->live_bytes -= member_rec_size(m);
}

void
pc__reg_down(reg_state *s, reg_member *m, const char *reason)
{
    Picos__V1__RegRecord r = PICOS__V1__REG_RECORD__INIT;
    Picos__V1__NodeInfo ni = PICOS__V1__NODE_INFO__INIT;

    while (m->names) {
        reg_name *n = m->names;
        name_unlink(s, n);
        /* REC_DOWN below removes them all on replay: no REC_UNNAME each */
        pc__reg_event_all(s, PICOS__V1__REG_EVENT_KIND__NAME_GONE, m, n, reason,
                          m);
        free(n);
    }
    /* a join of this start in chunks: refused as a whole (the node joins
     * again from its first chunk, never with the union of a part) */
    for (reg_pjoin *p = s->pjoins; p; p = p->next)
        if (p->node == m->node && p->incarnation == m->incarnation &&
            !p->refused)
            pc__reg_pjoin_refuse(p, "the node was dropped during its JOIN "
                                    "(join again)");
    ni.node = m->node;
    ni.incarnation = m->incarnation;
    r.kind = PICOS__V1__RECORD_KIND__REC_DOWN;
    r.node = &ni;
    log_rec(s, &r);
    member_unlink(s, m);
    if (!s->replaying) {
        if (m->monitored)
            pc_demonitor(pc_self(), m->agent);
        PC_LOG_INFO("registry", "node %s (%016llx) is down: %s", m->name,
                    (unsigned long long)m->node, reason);
        /* its last status stays a while, shown as down */
        pc__statusdb_down(s->sdb, m->node, m->incarnation, pc_wall_us(),
                          reason);
    }
    pc__reg_event_all(s, PICOS__V1__REG_EVENT_KIND__NODE_DOWN, m, NULL, reason,
                      m);
    member_free(m);
}

static void
member_fill(reg_member *m, const Picos__V1__NodeInfo *ni)
{
    char *name = dup(ni->name), *host = dup(ni->host), *ep = dup(ni->endpoint),
         *pub = dup(ni->pub_endpoint);

    if (!name || !host || !ep || !pub) {
        free(name), free(host), free(ep), free(pub);
        return; /* keep the old strings (or the empty ones) */
    }
    free(m->name), free(m->host), free(m->endpoint), free(m->pub_endpoint);
    m->name = name, m->host = host, m->endpoint = ep, m->pub_endpoint = pub;
    m->pid = ni->pid;
    if (ni->agent) {
        m->agent = (pc_ref){ni->agent->node, ni->agent->id};
        m->agent_inc = ni->agent->incarnation;
    }
}

reg_member *
pc__reg_join(reg_state *s, const Picos__V1__NodeInfo *ni, bool *fresh)
{
    reg_member *m = pc__reg_member(s, ni->node);

    *fresh = true;
    if (m && m->incarnation != ni->incarnation) {
        pc__reg_down(s, m, "a new start");
        m = NULL;
    }
    if (m) {
        s->live_bytes -= member_rec_size(m);
        *fresh = !m->confirmed;
    } else {
        size_t h;
        if (!grow_members(s) || !(m = calloc(1, sizeof *m)))
            return NULL;
        if (!(m->name = dup("")) || !(m->host = dup("")) ||
            !(m->endpoint = dup("")) || !(m->pub_endpoint = dup(""))) {
            member_free(m);
            return NULL;
        }
        m->node = ni->node;
        m->incarnation = ni->incarnation;
        h = hash_node(m->node) & (s->mcap - 1);
        m->hnext = s->mb[h];
        s->mb[h] = m;
        s->nmb++;
        s->unconfirmed++; /* until confirmed below */
    }
    member_fill(m, ni);
    if (s->replaying) {
        m->joined_us = ni->joined_us;
    } else {
        if (*fresh)
            m->joined_us = pc_wall_us();
        if (!m->confirmed) {
            m->confirmed = true;
            s->unconfirmed--;
        }
    }
    s->live_bytes += member_rec_size(m);
    log_member(s, m);
    return m;
}

/* Does claim (claimed_us, node) win over holder n? The earlier claim, then
 * the lower node id; a tie keeps the holder. */
static bool
wins(uint64_t claimed_us, uint64_t node, const reg_name *n)
{
    if (claimed_us != n->claimed_us)
        return claimed_us < n->claimed_us;
    return node < n->owner->node;
}

/* Give n to m with e's ref and claim (logged). */
static void
name_replace(reg_state *s, reg_name *n, reg_member *m,
             const Picos__V1__NameEntry *e, uint64_t claimed_us)
{
    name_unlink(s, n);
    /* name_unlink took it out of the table: put it back */
    {
        size_t h = hash_name(n->kind, n->name) & (s->ncap - 1);
        n->hnext = s->nb[h];
        s->nb[h] = n;
        s->nnames++;
    }
    n->ref = (pc_ref){e->ref->node, e->ref->id};
    n->ref_inc = e->ref->incarnation;
    n->claimed_us = claimed_us;
    name_give(n, m);
    s->live_bytes += name_rec_size(n);
    log_name(s, n, false);
}

int
pc__reg_claim(reg_state *s, reg_member *m, const Picos__V1__NameEntry *e,
              reg_name **holder)
{
    uint64_t claimed = e->claimed_us ? e->claimed_us : pc_wall_us();
    pc_ref ref = {e->ref->node, e->ref->id};
    reg_name *n = pc__reg_name(s, (int)e->kind, e->name);

    *holder = NULL;
    if (!n) {
        if (!(n = name_add(s, m, (int)e->kind, e->name, ref,
                           e->ref->incarnation, claimed)))
            return PICOS__V1__REG_STATUS__BAD_REQUEST; /* out of memory */
        log_name(s, n, false);
        pc__reg_event_all(s, PICOS__V1__REG_EVENT_KIND__NAME_UP, m, n, "",
                          NULL);
        return PICOS__V1__REG_STATUS__OK;
    }
    if (n->owner == m) {
        if (pc_ref_eq(n->ref, ref))
            return PICOS__V1__REG_STATUS__OK; /* again: idempotent */
        /* the node is the judge of its own names: its new holder */
        pc__reg_event_all(s, PICOS__V1__REG_EVENT_KIND__NAME_GONE, m, n,
                          "registered again", NULL);
        name_replace(s, n, m, e, n->claimed_us);
        pc__reg_event_all(s, PICOS__V1__REG_EVENT_KIND__NAME_UP, m, n, "",
                          NULL);
        return PICOS__V1__REG_STATUS__OK;
    }
    if (!s->replaying && wins(claimed, m->node, n)) {
        reg_member *old = n->owner;
        PC_LOG_WARN("registry",
                    "name '%s' (%s): the earlier claim of node %s wins over "
                    "node %s",
                    n->name, kind_str(n->kind), m->name, old->name);
        if (old->confirmed)
            pc__reg_event_to(s, old->agent,
                             PICOS__V1__REG_EVENT_KIND__NAME_LOST, old, n,
                             "an earlier claim won");
        pc__reg_event_all(s, PICOS__V1__REG_EVENT_KIND__NAME_GONE, old, n,
                          "an earlier claim won", old);
        name_replace(s, n, m, e, claimed);
        pc__reg_event_all(s, PICOS__V1__REG_EVENT_KIND__NAME_UP, m, n, "",
                          NULL);
        return PICOS__V1__REG_STATUS__OK;
    }
    *holder = n;
    return PICOS__V1__REG_STATUS__TAKEN;
}

/* ---- replay --------------------------------------------------------------------- */

pc_err
pc__reg_replay(void *ctx, const void *payload, size_t len)
{
    reg_state *s = ctx;
    Picos__V1__RegRecord *r = picos__v1__reg_record__unpack(NULL, len, payload);
    pc_err rc = PC_OK;
    reg_member *m;
    reg_name *n;

    if (!r)
        return PC_EPROTO;
    switch (r->kind) {
    case PICOS__V1__RECORD_KIND__REC_JOIN: {
        bool fresh;
        if (!r->node || !r->node->node || !r->node->incarnation)
            rc = PC_EPROTO;
        else if (!pc__reg_join(s, r->node, &fresh))
            rc = PC_ENOMEM;
        break;
    }
    case PICOS__V1__RECORD_KIND__REC_DOWN:
        if (!r->node)
            rc = PC_EPROTO;
        else if ((m = pc__reg_member(s, r->node->node)) &&
                 m->incarnation == r->node->incarnation)
            pc__reg_down(s, m, "");
        break;
    case PICOS__V1__RECORD_KIND__REC_NAME:
        if (!r->name || !r->name->ref || !r->name->name ||
            !pc__reg_kind_ok((int)r->name->kind) ||
            strlen(r->name->name) > PC_NAME_MAX)
            rc = PC_EPROTO;
        else if ((m = pc__reg_member(s, r->name->ref->node))) {
            reg_name *h;
            if ((n = pc__reg_name(s, (int)r->name->kind, r->name->name)))
                name_replace(s, n, m, r->name, r->name->claimed_us);
            else if (pc__reg_claim(s, m, r->name, &h) !=
                     PICOS__V1__REG_STATUS__OK)
                rc = PC_ENOMEM;
        }
        /* (a name of a node that is not a member: a log written by a
         * server that lost it later; nothing to rebuild) */
        break;
    case PICOS__V1__RECORD_KIND__REC_UNNAME:
        if (!r->name || !r->name->name)
            rc = PC_EPROTO;
        else if ((n = pc__reg_name(s, (int)r->name->kind, r->name->name))) {
            name_unlink(s, n);
            free(n);
        }
        break;
    default:
        rc = PC_EPROTO;
    }
    picos__v1__reg_record__free_unpacked(r, NULL);
    return rc;
}
