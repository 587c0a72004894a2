/* registry/agent_calls.c — the agent's requests in flight and its answers
 * to callers.
 *
 * A request in flight is an `op`, matched to replies by id and by the
 * replying registry's node; an op with no call is the agent's own (undo,
 * lost names). Lookups (LOCATE, the lists, STATUS, NODES_STATUS) go to the
 * first joined registry in the order given, and on to the next when it goes
 * down. Each call is answered once: by an event to its waiter, or for
 * pc_locate_send() by a PC_MSG_LOCATED message to its task.
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

/* ---- sending ----------------------------------------------------------------- */

void
pc__rc_stat_add(uint64_t *field, int64_t d)
{
    pthread_mutex_lock(&pc__rc_mu);
    *field += (uint64_t)d;
    pthread_mutex_unlock(&pc__rc_mu);
}

void
pc__rc_ref_pb(Picos__V1__Ref *r, pc_ref ref)
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
bool
pc__rc_send_req(rc_agent *a, int i, Picos__V1__RegRequest *rq)
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
    pc__rc_stat_add(&a->s->stats.requests, 1);
    return true;
}

/* Send op o (REGISTER, UNREGISTER, LOCATE, lists, STATUS) to registry i. */
bool
pc__rc_send_op(rc_agent *a, int i, rc_op *o)
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
            pc__rc_ref_pb(&r, o->ref);
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
    if (!pc__rc_send_req(a, i, &rq))
        return false;
    o->st[i] = ST_SENT;
    o->out++;
    return true;
}

/* ---- calls ------------------------------------------------------------------- */

void
pc__rc_answer(rc_call *c, pc_err rc, const char *text)
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

void
pc__rc_op_free(rc_agent *a, rc_op *o)
{
    for (rc_op **op_ = &a->ops; *op_; op_ = &(*op_)->next)
        if (*op_ == o) {
            *op_ = o->next;
            break;
        }
    if (!o->answered)
        pc__rc_answer(o->c, PC_ESTATE, NULL);
    free(o);
}

rc_op *
pc__rc_op_new(rc_agent *a, int kind, rc_call *c, double deadline)
{
    rc_op *o = calloc(1, sizeof *o);

    if (!o) {
        pc__rc_answer(c, PC_ENOMEM, NULL);
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

/* Send o to every registry joined or being joined; how many took it. */
int
pc__rc_send_all(rc_agent *a, rc_op *o)
{
    int n = 0;
    for (int i = 0; i < a->nregs; i++)
        if (pc__rc_joined_reg(&a->regs[i]) && pc__rc_send_op(a, i, o))
            n++;
    return n;
}

/* ---- lookups ----------------------------------------------------------------- */

/* Send lookup o to the first registry up after `after` (-1: the first). */
void
pc__rc_lookup_next(rc_agent *a, rc_op *o, int after)
{
    for (int i = after + 1; i < a->nregs; i++) {
        if (a->regs[i].state != R_UP)
            continue;
        if (o->c->endpoint[0] && strcmp(o->c->endpoint, a->regs[i].ep))
            continue;
        if (pc__rc_send_op(a, i, o)) {
            o->target = i;
            return;
        }
    }
    o->answered = true;
    pc__rc_answer(o->c, PC_EUNREACH, "no registry reachable");
    pc__rc_op_free(a, o);
}

void
pc__rc_lookup_start(rc_agent *a, rc_call *c)
{
    rc_op *o;

    if (!(o = pc__rc_op_new(a, c->op, c, c->deadline)))
        return;
    o->nkind = c->kind;
    snprintf(o->name, sizeof o->name, "%s", c->name);
    pc__rc_lookup_next(a, o, -1);
}

bool
pc__rc_is_lookup(int kind)
{
    return kind == PICOS__V1__REG_OP__LOCATE ||
           kind == PICOS__V1__REG_OP__LIST_NODES ||
           kind == PICOS__V1__REG_OP__LIST_NAMES ||
           kind == PICOS__V1__REG_OP__STATUS ||
           kind == PICOS__V1__REG_OP__NODES_STATUS;
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

void
pc__rc_on_lookup_reply(rc_agent *a, int i, rc_op *o, Picos__V1__RegReply *rp)
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
            pc__rc_cache_put(a, i, &c->entry);
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
        case PICOS__V1__REG_OP__NODES_STATUS:
            if (pc_msg_new(&c->statuses, "picos.v1.NodeStatusList",
                           rp->statuses.data, rp->statuses.len) != PC_OK)
                rc = PC_ENOMEM;
            break;
        }
    o->answered = true;
    pc__rc_answer(c, rc, rp->text && *rp->text ? rp->text : NULL);
    pc__rc_op_free(a, o);
}
