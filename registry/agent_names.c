/* registry/agent_names.c — the names this node holds, kept in step at
 * every registry.
 *
 * Several registries (docs/registry.md): REGISTER and UNREGISTER go to
 * every registry joined (or being joined, which takes them after the JOIN);
 * a registration succeeds when one accepted and none answered TAKEN, and a
 * TAKEN undoes it at the others. A name reported lost (RegEvent NAME_LOST,
 * or a JOIN reply's list) is unregistered everywhere and logged once. The
 * names of a task that ends go with it.
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

/* Our own UNREGISTER of (kind, name) everywhere (undo, lost names). */
static void
unregister_all(rc_agent *a, int kind, const char *name, int except)
{
    rc_op *o = pc__rc_op_new(a, PICOS__V1__REG_OP__UNREGISTER, NULL,
                             pc_deadline(2 * RC_RTT));
    if (!o)
        return;
    o->answered = true;
    o->nkind = kind;
    snprintf(o->name, sizeof o->name, "%s", name);
    for (int i = 0; i < a->nregs; i++)
        if (i != except && pc__rc_joined_reg(&a->regs[i]))
            pc__rc_send_op(a, i, o);
    if (!o->out)
        pc__rc_op_free(a, o);
}

/* A name this node held was given to an earlier claim. */
void
pc__rc_name_lost(rc_agent *a, int kind, const char *name, int from,
                 const char *why)
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
    pc__rc_stat_add(&a->s->stats.names_lost, 1);
    pc__rc_names_del(&a->held, kind, name);
    pc__rc_cache_del(a, kind, name);
    unregister_all(a, kind, name, from);
}

void
pc__rc_finish_register(rc_agent *a, rc_op *o, bool expired)
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
                rc_op *u = pc__rc_op_new(a, PICOS__V1__REG_OP__UNREGISTER, NULL,
                                         pc_deadline(2 * RC_RTT));
                if (u) {
                    u->answered = true;
                    u->nkind = o->nkind;
                    snprintf(u->name, sizeof u->name, "%s", o->name);
                    if (!pc__rc_send_op(a, i, u))
                        pc__rc_op_free(a, u);
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
    pc__rc_answer(o->c, o->result, o->text[0] ? o->text : NULL);
}

void
pc__rc_finish_unregister(rc_agent *a, rc_op *o, bool expired)
{
    int ok = 0, no = 0;
    for (int i = 0; i < a->nregs; i++) {
        ok += o->st[i] == ST_OK;
        no += o->st[i] == ST_NOTFOUND;
    }
    o->answered = true;
    pc__rc_answer(o->c,
                  ok   ? PC_OK
                  : no ? PC_ENOENT
                       : (expired ? PC_ETIMEDOUT : PC_EUNREACH),
                  NULL);
    (void)a;
}

void
pc__rc_name_op_settle(rc_agent *a, rc_op *o)
{
    if (!o->answered) {
        if (o->kind == PICOS__V1__REG_OP__REGISTER)
            pc__rc_finish_register(a, o, false);
        else
            pc__rc_finish_unregister(a, o, false);
    }
    pc__rc_op_free(a, o);
}

void
pc__rc_register_start(rc_agent *a, rc_call *c)
{
    rc_name *h;
    rc_op *o;

    h = pc__rc_names_get(&a->held, c->kind, c->name);
    if (h && pc_ref_eq(h->info.ref, c->ref) && !h->pending) {
        pc__rc_answer(c, PC_OK, NULL); /* held already: idempotent */
        return;
    }
    if (h) {
        char text[PC_NAME_MAX + 64];
        snprintf(text, sizeof text,
                 "name '%s' (%s) is held by another task of this node", c->name,
                 pc_name_kind_str((pc_name_kind)c->kind));
        pc__rc_answer(c, PC_EEXIST, text);
        return;
    }
    if (!(h = pc__rc_names_put(&a->held, c->kind, c->name))) {
        pc__rc_answer(c, PC_ENOMEM, NULL);
        return;
    }
    h->info.ref = c->ref;
    h->claimed_us = pc_wall_us();
    h->pending = true;
    if (!(o = pc__rc_op_new(a, c->op, c, c->deadline))) {
        pc__rc_names_del(&a->held, c->kind, c->name);
        return;
    }
    o->nkind = c->kind;
    snprintf(o->name, sizeof o->name, "%s", c->name);
    o->ref = c->ref;
    o->claimed_us = h->claimed_us;
    if (!pc__rc_send_all(a, o)) {
        pc__rc_names_del(&a->held, c->kind, c->name);
        o->answered = true;
        pc__rc_answer(c, PC_EUNREACH, "no registry reachable");
        pc__rc_op_free(a, o);
    }
}

void
pc__rc_unregister_start(rc_agent *a, rc_call *c)
{
    rc_op *o;

    if (!pc__rc_names_del(&a->held, c->kind, c->name)) {
        pc__rc_answer(c, PC_ENOENT, NULL);
        return;
    }
    pc__rc_cache_del(a, c->kind, c->name);
    if (!(o = pc__rc_op_new(a, c->op, c, c->deadline)))
        return;
    o->nkind = c->kind;
    snprintf(o->name, sizeof o->name, "%s", c->name);
    if (!pc__rc_send_all(a, o)) {
        /* gone here; a registry gets the list without it at its JOIN */
        o->answered = true;
        pc__rc_answer(c, PC_EUNREACH, "no registry reachable");
        pc__rc_op_free(a, o);
    }
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

void
pc__rc_on_name_reply(rc_agent *a, int i, rc_op *o, Picos__V1__RegReply *rp)
{
    uint8_t st = name_st(rp->status);

    o->st[i] = st;
    o->out--;
    if (rp->status == PICOS__V1__REG_STATUS__NOT_JOINED &&
        a->regs[i].state == R_UP) {
        PC_LOG_WARN("registry", "registry %s forgot this node: joining again",
                    a->regs[i].ep);
        pc__rc_send_join(a, i);
    }
    if (st == ST_TAKEN && rp->text && *rp->text)
        snprintf(o->text, sizeof o->text, "%s", rp->text);
    if (o->kind == PICOS__V1__REG_OP__REGISTER && o->answered && o->c) {
        /* a late answer: make this registry agree with what we answered */
        if (st == ST_OK && o->result != PC_OK)
            unregister_all(a, o->nkind, o->name, -1);
        else if (st == ST_TAKEN && o->result == PC_OK)
            pc__rc_name_lost(a, o->nkind, o->name, i, o->text);
    }
    if (!o->out)
        pc__rc_name_op_settle(a, o);
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

void
pc__rc_names_of_ended(rc_agent *a, pc_ref who)
{
    by_ref_ctx k = {0};

    /* the names of a task that ended go with it (64 at a time: the DOWN of
     * a task holding more is rare; the rest go at its node's end) */
    k.ref = who;
    pc__rc_names_drop_if(&a->held, held_by, &k);
    for (int j = 0; j < k.n; j++) {
        pc__rc_names_del(&a->held, k.kinds[j], k.names[j]);
        pc__rc_cache_del(a, k.kinds[j], k.names[j]);
        unregister_all(a, k.kinds[j], k.names[j], -1);
        free(k.names[j]);
    }
}
