/* registry/client_int.h — the registry client's shared pieces (internal).
 *
 * Three parts: client.c is the public API, run in the callers' threads
 * (tasks, foreign threads); agent.c is the one agent task that talks to
 * the registries (its other files agent_*.c, its own state agent_int.h);
 * nametab.c is the (kind, name) table both use, for the
 * cache of answers and for the names this node holds.
 *
 * Callers and the agent meet in `rc_shared` under one mutex (`pc__rc_mu`):
 * a queue of calls the agent takes whenever it wakes (a call is a
 * refcounted waiter, as in transport/net.c: the caller's reference and the
 * agent's; whoever lets go last frees it, so a caller that gave up never
 * leaves the agent a dangling pointer), the cache, and the counters.
 * Nothing but a doorbell message ("picos.regclient.wake", no payload)
 * travels through the agent's mailbox from the callers: a pointer in a
 * message could be forged by any peer that can send to the agent.
 */
#ifndef PICOS_REGISTRY_CLIENT_INT_H
#define PICOS_REGISTRY_CLIENT_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "picos/msg.h"
#include "picos/registry.h"
#include "picos/sync.h"

#include "registry.pb-c.h"

/* Most registries a node joins. */
#define RC_MAX_REGS 8
/* How long an answer may take to cross a link and back: the wait of a
 * call with timeout 0 (ask once, don't wait for the name to appear). */
#define RC_RTT 1.0

#define RC_MSG_WAKE "picos.regclient.wake"
/* The agent to a task waiting for a direct LOCATE: its registry is down. */
#define RC_MSG_GONE "picos.regclient.gone"
#define RC_MSG_REQUEST "picos.v1.RegRequest"
#define RC_MSG_REPLY "picos.v1.RegReply"
#define RC_MSG_EVENT "picos.v1.RegEvent"

/* ---- the name table (nametab.c) ------------------------------------------ */

typedef struct rc_name {
    struct rc_name *next;
    pc_name_info info;
    uint64_t claimed_us;
    int reg;        /* cache: the registry that answered */
    bool connected; /* cache: the owner node is connected */
    bool pending;   /* held: its REGISTER is still out */
} rc_name;

typedef struct rc_names {
    rc_name **b;
    size_t nb, n;
} rc_names;

rc_name *pc__rc_names_get(rc_names *t, int kind, const char *name);
/* Insert or replace (kind, name): the entry, or NULL (no memory). */
rc_name *pc__rc_names_put(rc_names *t, int kind, const char *name);
bool pc__rc_names_del(rc_names *t, int kind, const char *name);
/* Remove every entry for which drop(e, ctx) is true; returns how many. */
size_t pc__rc_names_drop_if(rc_names *t, bool (*drop)(rc_name *e, void *ctx),
                            void *ctx);
void pc__rc_names_clear(rc_names *t);

/* ---- calls ---------------------------------------------------------------- */

enum {
    CALL_JOIN = 100, /* answered when the first registry accepted */
    CALL_WATCH,
    CALL_UNWATCH,
    CALL_CONN, /* a connector's result (agent_join.c) */
};

typedef struct rc_call {
    struct rc_call *next; /* the queue; then the agent's list */
    atomic_int refs;
    pc_event *ev; /* NULL: nobody waits (the agent logs a failure) */
    int op;       /* Picos__V1__RegOp or CALL_* */
    double timeout, deadline;
    /* the request */
    int kind;
    char name[PC_NAME_MAX + 1];
    pc_ref ref;
    bool has_kind;
    char endpoint[PC_ENDPOINT_MAX + 1]; /* STATUS: which registry */
    /* CALL_CONN */
    uint64_t gen;
    int reg;
    uint64_t node;
    /* the answer */
    pc_err rc;
    char text[256];
    pc_name_info entry;
    pc_node_info *nodes;
    pc_name_info *names;
    size_t n;
    pc_registry_info status;
    pc_msg *statuses; /* NODES_STATUS: a picos.v1.NodeStatusList */
    /* pc_locate_send(): the answer goes to `reply_to` as PC_MSG_LOCATED */
    bool async;
    pc_ref reply_to;
    uint64_t tag;
} rc_call;

rc_call *pc__rc_call_new(int op, double timeout, bool wait);
void pc__rc_call_put(rc_call *c);
/* Answer c (the agent's reference goes). */
void pc__rc_call_done(rc_call *c, pc_err rc);

/* A task waiting for the answer of a LOCATE it sent to a registry itself
 * (client.c): malloc'd by the task, in rc_shared.waiters while it waits.
 * When that registry goes down the agent unlinks it, sets `gone` and sends
 * the task one RC_MSG_GONE (which the task then takes). The task always
 * frees it (the agent never does). */
typedef struct rc_waiter {
    struct rc_waiter *next;
    pc_ref task;
    int reg;
    bool gone;
} rc_waiter;

/* ---- shared state ------------------------------------------------------------ */

typedef struct rc_shared {
    uint64_t gen;  /* this join's number (connectors check it) */
    pc_ref agent;  /* the agent task */
    bool joined;   /* pc_cluster_join() succeeded */
    bool stopping; /* the agent is to end (a failed join) */
    bool rung;     /* a doorbell is on its way */
    rc_call *q, **qtail;
    rc_names cache; /* (kind, name) -> answer */
    double register_timeout;
    double status_interval; /* seconds; <= 0: no NodeStatus */
    char *status_dir;       /* its disk figures' directory; NULL: cwd */
    pc_cluster_stats stats;
    /* Where tasks send LOCATEs themselves (the agent's view, kept by it):
     * the first registry up (lk_reg < 0: none; then the agent's path),
     * its server task and node. */
    int lk_reg;
    pc_ref lk_server;
    uint64_t lk_node;
    uint64_t lk_epoch; /* +1 at every registry down */
    uint64_t inval;    /* +1 at every cache entry dropped */
    uint64_t next_id;  /* ids of direct LOCATEs (from 1 << 62) */
    rc_waiter *waiters;
    /* the join's parameters (agent.c reads them once) */
    char *eps[RC_MAX_REGS];
    int neps;
    Picos__V1__NodeInfo self; /* strings below */
    char name[PC_NAME_MAX + 1], host[256];
    char endpoint[PC_ENDPOINT_MAX + 1], pub_endpoint[PC_ENDPOINT_MAX + 1];
} rc_shared;

extern pthread_mutex_t pc__rc_mu;
extern rc_shared *pc__rc; /* NULL: not joined (pc__rc_mu) */

/* Queue c for the agent (taking the caller's second reference) and ring
 * its doorbell. Returns PC_OK or PC_ESTATE (no agent: c is put). */
pc_err pc__rc_submit(rc_call *c);

/* The agent's exit handler frees s (and clears the names hook). */
void pc__rc_shared_free(rc_shared *s);

/* Answer an asynchronous call (pc_locate_send): a PC_MSG_LOCATED to its
 * task. */
void pc__rc_located_send(pc_ref to, uint64_t tag, pc_err rc, pc_ref ref);

/* The agent task (agent.c); arg is the rc_shared it serves. */
pc_msg *pc__rc_agent_main(void *arg);

/* Wall clock, µs. */

/* Wire to API forms (strings truncated to fit). */
void pc__rc_node_from_pb(const Picos__V1__NodeInfo *p, pc_node_info *out);
void pc__rc_name_from_pb(const Picos__V1__NameEntry *p, pc_name_info *out);
void pc__rc_status_from_pb(const Picos__V1__RegistryStatus *p,
                           pc_registry_info *out);
pc_ref pc__rc_ref_from_pb(const Picos__V1__Ref *p);

#endif
