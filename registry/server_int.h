/* registry/server_int.h — the registry server's internals (server.c,
 * regstate.c, regreq.c; the fuzz target of the request decoder).
 *
 * The state is two hash tables owned by the server task alone: members by
 * node id and names by (kind, name); each member keeps a list of the names
 * it owns, so a node that goes down loses them in O(its names). Every
 * change goes through regstate.c, which appends its RegRecord to the store
 * and queues the events it causes in the server's outbox; the outbox is
 * sent only after the store has synced (group commit).
 */
#ifndef PICOS_REGISTRY_SERVER_INT_H
#define PICOS_REGISTRY_SERVER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "picos/msg.h"
#include "picos/pool.h"
#include "picos/ref.h"
#include "picos/registry.h"
#include "picos/registry_server.h"

#include "registry.pb-c.h"
#include "status.h" /* services/: the bounds of a NodeStatus */
#include "status.pb-c.h"
#include "statusdb.h"
#include "store.h"

#define REG_MSG_REQUEST "picos.v1.RegRequest"
#define REG_MSG_REPLY "picos.v1.RegReply"
#define REG_MSG_EVENT "picos.v1.RegEvent"
/* A member's status, without reply (proto/status.proto). */
#define REG_MSG_STATUS "picos.v1.NodeStatus"
/* A probe's result to the server task (server_restart.c). */
#define MSG_PROBE "picos.registry.probe"

/* ---- decoding (regreq.c) ---------------------------------------------------- */

/* Unpack and check one RegRequest: the op is known, the names the op needs
 * are there with a known kind and a name of 1..PC_NAME_MAX bytes, a JOIN's
 * node has its ids, an agent on that node and bounded strings, and every
 * ref of a name is on the same node. Returns the request (free it with
 * picos__v1__reg_request__free_unpacked(r, NULL)) or NULL with *why set to
 * a line saying what is wrong; when the bytes decoded but did not pass,
 * *id gets the request's id (0 otherwise), so the reply can name it. No
 * node needed (the fuzz target calls it bare). */
Picos__V1__RegRequest *pc__reg_decode(const void *data, size_t len,
                                      uint64_t *id, const char **why);

/* Unpack and check one NodeStatus: node id and incarnation set, strings
 * bounded (names PC_NAME_MAX, host 255, endpoints PC_ENDPOINT_MAX, data_dir
 * PC__STATUS_MAX_PATH), the lists within PC__STATUS_MAX_* with no missing
 * element, the floats finite (JSON has no NaN). Returns the status (free
 * with picos__v1__node_status__free_unpacked(s, NULL)) or NULL with *why
 * set. Who may send it is the server's check (server.c), not this one. No
 * node needed (tests/fuzz_regstatus.c calls it bare). */
Picos__V1__NodeStatus *pc__reg_status_decode(const void *data, size_t len,
                                             const char **why);

/* ---- the state (regstate.c) ------------------------------------------------- */

typedef struct reg_member reg_member;

typedef struct reg_name {
    struct reg_name *hnext;         /* hash chain */
    struct reg_name *mprev, *mnext; /* the owner's list */
    reg_member *owner;
    int kind;
    pc_ref ref;
    uint64_t ref_inc; /* the ref's incarnation, as the wire gave it */
    uint64_t claimed_us;
    uint32_t mark; /* a JOIN's pass over its node's names */
    char name[];
} reg_name;

struct reg_member {
    struct reg_member *hnext;
    uint64_t node, incarnation;
    char *name, *host, *endpoint, *pub_endpoint;
    uint32_t pid;
    pc_ref agent;
    uint64_t agent_inc;
    uint64_t joined_us;
    bool confirmed; /* joined in this run; false: replayed, recovering */
    bool monitored; /* the server monitors `agent` */
    uint32_t probe; /* generation of its probe (a stale answer is ignored) */
    reg_name *names;
    size_t nnames;
};

/* A message to send once the store synced (or at once, `now`). */
typedef struct reg_out {
    pc_ref to;
    pc_msg *m;
} reg_out;

/* A LOCATE waiting for its name. */
typedef struct reg_park {
    struct reg_park *next;
    pc_ref from;
    uint64_t id;
    int kind;
    double deadline;
    char name[];
} reg_park;

/* One name of a JOIN being received in chunks, packed in its buffer. */
typedef struct reg_jname {
    uint64_t node, id, inc, claimed_us; /* the ref, the claim */
    int32_t kind;
    uint32_t len;
    char name[];
} reg_jname;

/* A JOIN arriving in chunks (RegRequest.more): the names of its chunks so
 * far (reg_jname records, 8-aligned, in buf) until its last chunk. A
 * refused one (`refused`, why in text; buf freed) answers its later chunks
 * BAD_REQUEST until its last one. Dropped when no chunk comes by
 * `deadline`. */
typedef struct reg_pjoin {
    struct reg_pjoin *next;
    uint64_t node, incarnation, agent_id;
    uint64_t last_id; /* the id of the last chunk taken */
    double deadline;
    size_t nnames;
    uint8_t *buf;
    size_t len, cap;
    bool refused;
    char text[96];
} reg_pjoin;

typedef struct reg_state {
    /* the tables */
    reg_member **mb;
    size_t nmb, mcap; /* members, buckets */
    reg_name **nb;
    size_t nnames, ncap;
    size_t unconfirmed;
    /* the store, and what its live records weigh (for compaction) */
    pc__store *store;
    uint64_t live_bytes;
    bool replaying;
    pc_err store_err; /* first append error since the last sync */
    /* the outbox: sent after the next sync */
    reg_out *out;
    size_t nout, outcap;
    /* who we are, for events */
    uint64_t self_node;
    /* JOINs being received in chunks; their bound */
    reg_pjoin *pjoins;
    size_t max_node_names;
    double pjoin_ttl; /* seconds a chunked JOIN may wait for its next chunk */
    /* the members' statuses (NULL: none kept): marked down with them */
    pc__statusdb *sdb;
    /* counters */
    uint64_t bad, expired;
} reg_state;

void pc__reg_state_init(reg_state *s);
void pc__reg_state_fini(reg_state *s);

/* The replay callback of pc__store_open(): applies one RegRecord without
 * logging it. PC_EPROTO for a record that does not decode. */
pc_err pc__reg_replay(void *ctx, const void *payload, size_t len);

reg_member *pc__reg_member(reg_state *s, uint64_t node);
reg_name *pc__reg_name(reg_state *s, int kind, const char *name);

/* Add (or update, same node and incarnation) a member from a JOIN's
 * NodeInfo; a member of that node with another incarnation is removed
 * first as down ("a new start"). Logs REC_JOIN. *fresh: it was not a
 * confirmed member before. NULL: out of memory. */
reg_member *pc__reg_join(reg_state *s, const Picos__V1__NodeInfo *ni,
                         bool *fresh);

/* The member is down: its names go (NAME_GONE to every agent), REC_DOWN
 * is logged, NODE_DOWN goes to every other agent, and it is freed. */
void pc__reg_down(reg_state *s, reg_member *m, const char *reason);

/* Refuse the chunked join p (its names are freed; its later chunks are
 * answered BAD_REQUEST with `why`). */
void pc__reg_pjoin_refuse(reg_pjoin *p, const char *why);
/* Unlink and free p. */
void pc__reg_pjoin_free(reg_state *s, reg_pjoin *p);

/* Claim an entry for member m (the conflict rule of docs/registry.md).
 * Returns PICOS__V1__REG_STATUS__OK (taken, or held by the same ref) or
 * _TAKEN with *holder set to the entry that keeps it. */
int pc__reg_claim(reg_state *s, reg_member *m, const Picos__V1__NameEntry *e,
                  reg_name **holder);

/* Drop a name (REC_UNNAME, NAME_GONE to every agent). */
void pc__reg_unname(reg_state *s, reg_name *n);

/* Queue an event to every confirmed member's agent except `skip`. */
void pc__reg_event_all(reg_state *s, int kind, const reg_member *about,
                       const reg_name *name, const char *reason,
                       const reg_member *skip);
/* Queue one event to one agent. */
void pc__reg_event_to(reg_state *s, pc_ref to, int kind,
                      const reg_member *about, const reg_name *name,
                      const char *reason);

/* Queue *m for `to` in the outbox (taken; freed on failure). */
void pc__reg_outbox(reg_state *s, pc_ref to, pc_msg **m);

/* Fill protobuf views of the state. The strings point into the state: use
 * the view before the state changes, and free only the structs. */
void pc__reg_node_view(const reg_member *m, Picos__V1__NodeInfo *ni,
                       Picos__V1__Ref *agent);
void pc__reg_name_view(const reg_name *n, Picos__V1__NameEntry *e,
                       Picos__V1__Ref *ref, bool with_owner);

/* Every live record (REC_JOIN of each member, REC_NAME of each name)
 * through fn, for compaction. */
pc_err pc__reg_each_record(reg_state *s,
                           pc_err (*fn)(void *ctx, const void *p, size_t len),
                           void *ctx);

/* ---- the server task (server.c, server_restart.c) ------------------------ */

/* The server task's state, its own (no lock); srv in server.c is the one
 * running. */
typedef struct reg_server {
    reg_state st;
    pc_pool *pool;
    pc_ref task;
    char name[PC_NAME_MAX + 1];
    char endpoint[PC_ENDPOINT_MAX + 1];
    char data_dir[256];
    double grace_deadline, probe_timeout, retry_at;
    uint64_t compact_bytes, started_us;
    size_t replayed_nodes, replayed_names;
    reg_park *parked;
    uint32_t join_gen;
    bool names_changed, stopping, sync_failing;
    /* NodeStatus messages taken, and dropped (undecodable, out of bounds,
     * or not from the joined member they describe) */
    uint64_t statuses, statuses_dropped;
} reg_server;

/* Is a join of member m's start arriving? (grace waits for it;
 * server.c) */
bool pc__reg_pjoin_live(reg_server *v, const reg_member *m);

/* Start a probe task for each unconfirmed member of the log. */
void pc__reg_probes_start(reg_server *v);
/* A probe's result (MSG_PROBE): a member that is not there is dropped. */
void pc__reg_on_probe(reg_server *v, const pc_msg *m);
/* Drop the members of the log that did not come back within grace. */
void pc__reg_grace_pass(reg_server *v);

/* Name kinds on the wire. */
static inline bool
pc__reg_kind_ok(int kind)
{
    return kind >= PICOS__V1__NAME_KIND__TASK &&
           kind <= PICOS__V1__NAME_KIND__SERVICE;
}

#endif
