/* tests/regproto.h — the registry's raw protocol by hand, for
 * test_regserver and its helper node reg_peer: a task builds a RegRequest,
 * sends it to the registry's task and waits for the RegReply with its id
 * (other messages, RegEvents included, stay in the mailbox for later).
 * Tasks only. */
#ifndef PICOS_TESTS_REGPROTO_H
#define PICOS_TESTS_REGPROTO_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "picos/picos.h"
#include "picos/registry.h"
#include "picos/transport.h"

#include "registry.pb-c.h"

#define RP_REQUEST "picos.v1.RegRequest"
#define RP_REPLY "picos.v1.RegReply"
#define RP_EVENT "picos.v1.RegEvent"

/* Atomic: tasks on two workers send requests at once (a race TSan saw). */
static _Atomic uint64_t rp_next_id = 1;

static inline uint64_t
rp_wall_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

/* A name entry of this node (ref = the task `ref`); strings copied into
 * the entry's own storage: free with rp_entries_free. */
typedef struct rp_entry {
    Picos__V1__NameEntry e;
    Picos__V1__Ref ref;
    char name[512]; /* room for names too long, to test their refusal */
} rp_entry;

static inline void
rp_entry_set(rp_entry *x, int kind, const char *name, pc_ref ref)
{
    picos__v1__name_entry__init(&x->e);
    picos__v1__ref__init(&x->ref);
    snprintf(x->name, sizeof x->name, "%s", name);
    x->ref.node = ref.node;
    x->ref.id = ref.id;
    x->ref.incarnation = pc_node_incarnation();
    x->e.kind = (Picos__V1__NameKind)kind;
    x->e.name = x->name;
    x->e.ref = &x->ref;
    x->e.claimed_us = rp_wall_us();
}

/* Send request r (id set here) to `reg`; returns the id, 0 on error. */
static inline uint64_t
rp_send(pc_ref reg, Picos__V1__RegRequest *r)
{
    size_t len;
    uint8_t *buf;
    pc_msg *m = NULL;
    pc_err rc;

    r->id = atomic_fetch_add(&rp_next_id, 1); /* first: part of the size */
    len = picos__v1__reg_request__get_packed_size(r);
    if (!(buf = malloc(len ? len : 1)))
        return 0;
    picos__v1__reg_request__pack(r, buf);
    rc = pc_msg_new(&m, RP_REQUEST, buf, len);
    free(buf);
    if (rc != PC_OK)
        return 0;
    /* a full link queue refuses at once: let it drain */
    for (int i = 0; (rc = pc_send(reg, &m)) == PC_EFULL && i < 20000; i++)
        pc_sleep(0.001);
    if (rc != PC_OK) {
        pc_msg_free(&m);
        return 0;
    }
    return r->id;
}

static bool
rp_is_reply(const pc_msg *m, void *ctx)
{
    Picos__V1__RegReply *r;
    bool yes;

    if (!pc_msg_is(m, RP_REPLY))
        return false;
    if (!ctx)
        return true;
    {
        size_t len = 0;
        const void *d = pc_msg_data(m, &len);
        if (!(r = picos__v1__reg_reply__unpack(NULL, len, d)))
            return false;
    }
    yes = r->id == *(uint64_t *)ctx;
    picos__v1__reg_reply__free_unpacked(r, NULL);
    return yes;
}

/* The reply with `id` (NULL: any reply), or NULL after `timeout`. Free
 * with picos__v1__reg_reply__free_unpacked(r, NULL). */
static inline Picos__V1__RegReply *
rp_wait(uint64_t *id, double timeout)
{
    pc_msg *m = NULL;
    Picos__V1__RegReply *r;
    size_t len = 0;
    const void *d;

    if (pc_recv_match(rp_is_reply, id, NULL, &m, timeout) != PC_OK)
        return NULL;
    d = pc_msg_data(m, &len);
    r = picos__v1__reg_reply__unpack(NULL, len, d);
    pc_msg_free(&m);
    return r;
}

/* Send and wait. */
static inline Picos__V1__RegReply *
rp_call(pc_ref reg, Picos__V1__RegRequest *r, double timeout)
{
    uint64_t id = rp_send(reg, r);
    return id ? rp_wait(&id, timeout) : NULL;
}

/* A request of op with one name entry (kind, name, ref). */
static inline Picos__V1__RegReply *
rp_name_op(pc_ref reg, int op, int kind, const char *name, pc_ref ref,
           uint32_t timeout_ms, double wait)
{
    Picos__V1__RegRequest r = PICOS__V1__REG_REQUEST__INIT;
    Picos__V1__NameEntry *ep;
    rp_entry x;

    rp_entry_set(&x, kind, name, ref);
    if (op != PICOS__V1__REG_OP__REGISTER)
        x.e.ref = pc_ref_is_nil(ref) ? NULL : x.e.ref;
    ep = &x.e;
    r.op = (Picos__V1__RegOp)op;
    r.timeout_ms = timeout_ms;
    r.n_names = 1;
    r.names = &ep;
    return rp_call(reg, &r, wait);
}

/* One JOIN chunk as this node with agent = the calling task and names
 * PREFIX<first>..PREFIX<first+n-1> (kind task, ref = the calling task),
 * `more` as given; sent with id *id when id is not NULL and *id != 0 (set
 * to the id used). */
static inline Picos__V1__RegReply *
rp_join_part(pc_ref reg, const char *node_name, const char *endpoint,
             const char *prefix, size_t first, size_t n, bool more,
             uint64_t *id, double wait)
{
    Picos__V1__RegRequest r = PICOS__V1__REG_REQUEST__INIT;
    Picos__V1__NodeInfo ni = PICOS__V1__NODE_INFO__INIT;
    Picos__V1__Ref agent = PICOS__V1__REF__INIT;
    rp_entry *x = n ? calloc(n, sizeof *x) : NULL;
    Picos__V1__NameEntry **p = n ? calloc(n, sizeof *p) : NULL;
    Picos__V1__RegReply *rep;

    for (size_t i = 0; i < n && x && p; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s%zu", prefix, first + i);
        rp_entry_set(&x[i], PICOS__V1__NAME_KIND__TASK, name, pc_self());
        p[i] = &x[i].e;
    }
    agent.node = pc_self().node;
    agent.id = pc_self().id;
    agent.incarnation = pc_node_incarnation();
    ni.node = pc_node_id();
    ni.incarnation = pc_node_incarnation();
    ni.name = (char *)node_name;
    ni.host = "localhost";
    ni.pid = (uint32_t)getpid();
    ni.endpoint = (char *)endpoint;
    ni.agent = &agent;
    r.op = PICOS__V1__REG_OP__REG_JOIN;
    r.node = &ni;
    r.n_names = x && p ? n : 0;
    r.names = p;
    r.more = more;
    if (id && *id)
        atomic_store(&rp_next_id, *id);
    {
        uint64_t sent = rp_send(reg, &r);
        if (id)
            *id = sent;
        rep = sent ? rp_wait(&sent, wait) : NULL;
    }
    free(x);
    free(p);
    return rep;
}

/* JOIN as this node (one request) with names PREFIX0..PREFIX(n-1). */
static inline Picos__V1__RegReply *
rp_join(pc_ref reg, const char *node_name, const char *endpoint,
        const char *prefix, size_t n, double wait)
{
    return rp_join_part(reg, node_name, endpoint, prefix, 0, n, false, NULL,
                        wait);
}

/* A request with no arguments (STATUS, LIST_NODES, LIST_NAMES, LEAVE). */
static inline Picos__V1__RegReply *
rp_simple(pc_ref reg, int op, double wait)
{
    Picos__V1__RegRequest r = PICOS__V1__REG_REQUEST__INIT;
    r.op = (Picos__V1__RegOp)op;
    return rp_call(reg, &r, wait);
}

/* Connect to the registry at ep and find its task. */
static inline pc_err
rp_find(const char *ep, double timeout, pc_ref *reg)
{
    pc_err rc = pc_node_connect(ep, timeout, NULL);
    if (rc == PC_OK)
        rc = pc_locate_at(ep, PC_REGISTRY_TASK, timeout, reg);
    return rc;
}

#endif
