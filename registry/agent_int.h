/* registry/agent_int.h — the registry agent's own state, shared by its
 * files (internal).
 *
 * The agent (agent.c) is one task, so its state needs no lock: these
 * types and calls are for agent*.c only, all run on the agent's thread.
 * What the agent shares with callers is in client_int.h.
 */
#ifndef PICOS_REGISTRY_AGENT_INT_H
#define PICOS_REGISTRY_AGENT_INT_H

#include "client_int.h"

enum { R_DOWN, R_CONNECTING, R_JOINING, R_UP };
enum { ST_NONE, ST_SENT, ST_OK, ST_TAKEN, ST_NOTFOUND, ST_BAD, ST_SILENT };

typedef struct rc_reg {
    char *ep; /* the shared state's string */
    int state;
    uint64_t node;
    pc_ref server;
    pc_err last_rc;               /* the connector's last result */
    uint64_t join_first, join_id; /* the ids of a JOIN's chunks */
    bool ever_up;
} rc_reg;

typedef struct rc_op {
    struct rc_op *next;
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
} rc_op;

typedef struct rc_member {
    struct rc_member *next;
    pc_node_info info;
    uint32_t up, was; /* bit i: registry i says it is up */
} rc_member;

typedef struct rc_watcher {
    struct rc_watcher *next;
    pc_ref ref;
} rc_watcher;

typedef struct rc_agent {
    rc_shared *s;
    rc_reg regs[RC_MAX_REGS];
    int nregs;
    rc_op *ops;
    uint64_t next_id;
    rc_names held;
    rc_member *members;
    rc_watcher *watchers;
    rc_call *joins; /* CALL_JOIN waiters */
    pc_ref self;
    double due; /* no deadline passes before: expire() has nothing to do */
    /* the NodeStatus sent every s->status_interval (agent_status.c) */
    struct pc__status_sampler *sampler;
    double status_at; /* next one due (INFINITY: never) */
} rc_agent;

/* ---- requests in flight and answers (agent_calls.c) ------------------------ */

/* Add d to a counter of the shared stats (under pc__rc_mu). */
void pc__rc_stat_add(uint64_t *field, int64_t d);
void pc__rc_ref_pb(Picos__V1__Ref *r, pc_ref ref);
/* Pack rq and send it to registry i. false: it could not go. */
bool pc__rc_send_req(rc_agent *a, int i, Picos__V1__RegRequest *rq);
/* Send op o (REGISTER, UNREGISTER, LOCATE, lists, STATUS) to registry i. */
bool pc__rc_send_op(rc_agent *a, int i, rc_op *o);
/* Answer call c (NULL: nothing to do); text, when not NULL, explains. */
void pc__rc_answer(rc_call *c, pc_err rc, const char *text);
/* Unlink and free o, answering its call PC_ESTATE if it was not. */
void pc__rc_op_free(rc_agent *a, rc_op *o);
/* A new op, linked; NULL: no memory (c is answered). */
rc_op *pc__rc_op_new(rc_agent *a, int kind, rc_call *c, double deadline);
/* Send o to every registry joined or being joined; how many took it. */
int pc__rc_send_all(rc_agent *a, rc_op *o);
/* Send lookup o to the first registry up after `after` (-1: the first). */
void pc__rc_lookup_next(rc_agent *a, rc_op *o, int after);
void pc__rc_lookup_start(rc_agent *a, rc_call *c);
bool pc__rc_is_lookup(int kind);
void pc__rc_on_lookup_reply(rc_agent *a, int i, rc_op *o,
                            Picos__V1__RegReply *rp);

/* ---- registries (agent_join.c) --------------------------------------------- */

/* JOIN registry i with every name held. */
void pc__rc_send_join(rc_agent *a, int i);
/* Start registry i's connector task, first try after delay s. */
void pc__rc_start_connector(rc_agent *a, int i, double delay);
/* Publish where tasks send their LOCATEs (the first registry up). */
void pc__rc_publish(rc_agent *a);
bool pc__rc_joined_reg(const rc_reg *r);
/* The joined registry on node `node`, or -1. */
int pc__rc_reg_of(rc_agent *a, uint64_t node);
void pc__rc_join_wait(rc_agent *a, rc_call *c);
void pc__rc_answer_joins(rc_agent *a, pc_err rc, const char *text);
/* Registry i does not answer from now on. */
void pc__rc_reg_down(rc_agent *a, int i, const char *why);
void pc__rc_conn_result(rc_agent *a, rc_call *c);
void pc__rc_on_join_reply(rc_agent *a, int i, Picos__V1__RegReply *rp);

/* ---- names held (agent_names.c) -------------------------------------------- */

/* A name this node held was given to an earlier claim. */
void pc__rc_name_lost(rc_agent *a, int kind, const char *name, int from,
                      const char *why);
void pc__rc_finish_register(rc_agent *a, rc_op *o, bool expired);
void pc__rc_finish_unregister(rc_agent *a, rc_op *o, bool expired);
/* Every registry a REGISTER or UNREGISTER went to has answered or gone
 * silent: finish it (unless answered already) and free it. */
void pc__rc_name_op_settle(rc_agent *a, rc_op *o);
void pc__rc_register_start(rc_agent *a, rc_call *c);
void pc__rc_unregister_start(rc_agent *a, rc_call *c);
void pc__rc_on_name_reply(rc_agent *a, int i, rc_op *o,
                          Picos__V1__RegReply *rp);
/* The names held by task `who`, which ended, go everywhere. */
void pc__rc_names_of_ended(rc_agent *a, pc_ref who);

/* ---- the node's status (agent_status.c) ------------------------------------ */

/* Make the sampler (a failure: no statuses, one WARN) and the first due
 * time. */
void pc__rc_status_init(rc_agent *a);
void pc__rc_status_fini(rc_agent *a);
/* When due: one NodeStatus to every registry joined, fire-and-forget. */
void pc__rc_status_tick(rc_agent *a, double now);

/* ---- members, watchers, the cache (agent_events.c) ------------------------- */

void pc__rc_cache_del(rc_agent *a, int kind, const char *name);
void pc__rc_cache_put(rc_agent *a, int i, const pc_name_info *info);
void pc__rc_members_sync(rc_agent *a, int i, Picos__V1__NodeInfo **nodes,
                         size_t n);
void pc__rc_watch(rc_agent *a, rc_call *c);
void pc__rc_unwatch(rc_agent *a, rc_call *c);
/* Task `who` ended: it watches no more. */
void pc__rc_watcher_gone(rc_agent *a, pc_ref who);
void pc__rc_on_event(rc_agent *a, const pc_msg *m);
/* Drop the cache entries pred() picks; every call counts as an
 * invalidation. */
void pc__rc_cache_drop_if(rc_agent *a, bool (*pred)(rc_name *, void *),
                          void *ctx);

#endif
