/* registry/agent_events.c — what the registries tell the agent unasked:
 * members, the watchers told of them, and the cache's invalidation.
 *
 * The members carry a bit per registry that says the node is up: a node is
 * down once every registry that knew it said so, and only then are the
 * watcher tasks told (PC_MSG_NODE_EVENT). The cache (client_int.h) is
 * written here only: an answer is put, and dropped when its name goes, its
 * node goes or the registry that gave it goes.
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

/* ---- the cache --------------------------------------------------------------- */

static bool
by_node(rc_name *e, void *ctx)
{
    return e->info.ref.node == *(uint64_t *)ctx;
}

/* Every invalidation counts (inval), whether or not it found an entry: a
 * direct lookup whose answer is still on its way must not cache a name
 * that went meanwhile (its NAME_GONE came before the entry existed). */
void
pc__rc_cache_drop_if(rc_agent *a, bool (*pred)(rc_name *, void *), void *ctx)
{
    pthread_mutex_lock(&pc__rc_mu);
    pc__rc_names_drop_if(&a->s->cache, pred, ctx);
    a->s->inval++;
    pthread_mutex_unlock(&pc__rc_mu);
}

void
pc__rc_cache_del(rc_agent *a, int kind, const char *name)
{
    pthread_mutex_lock(&pc__rc_mu);
    pc__rc_names_del(&a->s->cache, kind, name);
    a->s->inval++;
    pthread_mutex_unlock(&pc__rc_mu);
}

void
pc__rc_cache_put(rc_agent *a, int i, const pc_name_info *info)
{
    rc_name *e;

    pthread_mutex_lock(&pc__rc_mu);
    if ((e = pc__rc_names_put(&a->s->cache, (int)info->kind, info->name))) {
        e->info = *info;
        e->reg = i;
    }
    pthread_mutex_unlock(&pc__rc_mu);
}

/* ---- membership -------------------------------------------------------------- */

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
fan_out(rc_agent *a, rc_member *m, bool up, const char *reason, pc_ref only)
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
        for (rc_watcher **wp = &a->watchers; *wp;) {
            rc_watcher *w = *wp;
            if (pc_send_data(w->ref, PC_MSG_NODE_EVENT, buf, len) ==
                PC_ENOENT) {
                *wp = w->next;
                free(w);
            } else
                wp = &w->next;
        }
    free(buf);
}

static rc_member *
member_find(rc_agent *a, uint64_t node, uint64_t incarnation, rc_member ***prev)
{
    for (rc_member **mp = &a->members; *mp; mp = &(*mp)->next)
        if ((*mp)->info.node == node &&
            (!incarnation || (*mp)->info.incarnation == incarnation)) {
            if (prev)
                *prev = mp;
            return *mp;
        }
    return NULL;
}

/* Registry i says node p is up. */
static rc_member *
member_up(rc_agent *a, int i, const Picos__V1__NodeInfo *p)
{
    rc_member *m = member_find(a, p->node, p->incarnation, NULL);

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
member_gone(rc_agent *a, rc_member *m, const char *reason)
{
    uint64_t node = m->info.node;

    fan_out(a, m, false, reason, PC_REF_NIL);
    for (rc_member **mp = &a->members; *mp; mp = &(*mp)->next)
        if (*mp == m) {
            *mp = m->next;
            break;
        }
    free(m);
    pc__rc_cache_drop_if(a, by_node, &node);
}

/* Registry i's member list (a JOIN reply) replaces what it said before. */
void
pc__rc_members_sync(rc_agent *a, int i, Picos__V1__NodeInfo **nodes, size_t n)
{
    char reason[PC_ENDPOINT_MAX + 64];

    for (rc_member *m = a->members; m; m = m->next) {
        m->was = m->up;
        m->up &= ~(1u << i);
    }
    for (size_t k = 0; k < n; k++)
        if (nodes[k]) {
            rc_member *m =
                member_find(a, nodes[k]->node, nodes[k]->incarnation, NULL);
            uint32_t was = m ? m->was : 0;
            if ((m = member_up(a, i, nodes[k])))
                m->was = was;
        }
    snprintf(reason, sizeof reason, "not a member at %s", a->regs[i].ep);
    for (rc_member *m = a->members, *next; m; m = next) {
        next = m->next;
        if (!m->was && m->up)
            fan_out(a, m, true, "", PC_REF_NIL);
        else if (m->was && !m->up)
            member_gone(a, m, reason);
    }
}

/* ---- watchers ---------------------------------------------------------------- */

void
pc__rc_watch(rc_agent *a, rc_call *c)
{
    rc_watcher *w;

    for (w = a->watchers; w; w = w->next)
        if (pc_ref_eq(w->ref, c->ref))
            break;
    if (!w && (w = calloc(1, sizeof *w))) {
        w->ref = c->ref;
        w->next = a->watchers;
        a->watchers = w;
        pc_monitor(a->self, c->ref);
        for (rc_member *m = a->members; m; m = m->next)
            if (m->up)
                fan_out(a, m, true, "", c->ref);
    }
    pc__rc_answer(c, w ? PC_OK : PC_ENOMEM, NULL);
}

void
pc__rc_unwatch(rc_agent *a, rc_call *c)
{
    for (rc_watcher **wp = &a->watchers; *wp; wp = &(*wp)->next)
        if (pc_ref_eq((*wp)->ref, c->ref)) {
            rc_watcher *w = *wp;
            *wp = w->next;
            free(w);
            pc_demonitor(a->self, c->ref);
            break;
        }
    pc__rc_answer(c, PC_OK, NULL);
}

void
pc__rc_watcher_gone(rc_agent *a, pc_ref who)
{
    for (rc_watcher **wp = &a->watchers; *wp; wp = &(*wp)->next)
        if (pc_ref_eq((*wp)->ref, who)) {
            rc_watcher *w = *wp;
            *wp = w->next;
            free(w);
            break;
        }
}

/* ---- events ------------------------------------------------------------------ */

void
pc__rc_on_event(rc_agent *a, const pc_msg *m)
{
    int i = pc__rc_reg_of(a, pc_msg_sender(m).node);
    const void *data;
    size_t len;
    Picos__V1__RegEvent *ev;
    rc_member *mb;

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
            pc__rc_cache_drop_if(a, by_node, &node);
        }
        break;
    case PICOS__V1__REG_EVENT_KIND__NAME_GONE:
        if (ev->name && ev->name->name)
            pc__rc_cache_del(a, ev->name->kind, ev->name->name);
        break;
    case PICOS__V1__REG_EVENT_KIND__NAME_LOST:
        if (ev->name && ev->name->name)
            pc__rc_name_lost(a, ev->name->kind, ev->name->name, i, ev->reason);
        break;
    default:
        break;
    }
    picos__v1__reg_event__free_unpacked(ev, NULL);
}
