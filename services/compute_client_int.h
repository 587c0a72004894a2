/* services/compute_client_int.h — what the compute client's files share
 * (compute_client.c: the API; compute_agent.c: the agent task, the only
 * one on the wire; compute_lister.c: the task that finds the nodes;
 * compute_client_files.c: the library and files read and checked;
 * compute_sched.c: the
 * per-node state and the placement / prefetch / retry / exactly-once rules
 * as functions of plain data; compute_events.c: the status events and the
 * job messages, encoded and parsed). tests/test_compute_sched.c drives
 * compute_sched.c directly, without processes.
 *
 * Every job is one cs_job record, in exactly one list at a time: the
 * client's queue (queued), its node's list (sent or running), the results
 * (ended, not yet reported), or none (reported: freed). Nodes are an array
 * of cs_node that only grows; jobs name their node by index.
 */
#ifndef PICOS_SERVICES_COMPUTE_CLIENT_INT_H
#define PICOS_SERVICES_COMPUTE_CLIENT_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "picos/compute.h"
#include "picos/sync.h"
#include "picos/task.h"

/* ---- jobs ----------------------------------------------------------------- */

enum { CJ_QUEUED, CJ_SENT, CJ_RUNNING, CJ_DONE };

/* A message for a job that was queued when pc_compute_send() was called:
 * sent right after the job goes out. */
typedef struct cs_tomsg {
    struct cs_tomsg *next;
    size_t len;
    unsigned char data[];
} cs_tomsg;

typedef struct cs_job {
    uint64_t id;
    uint32_t attempt; /* the current (or last) run's number; 0: never sent */
    int state;        /* CJ_* */
    int node;         /* index of its node while sent or running, else the
                         last one (-1: never sent) */
    int worker;       /* the worker of its last start, -1 */
    int cpus;         /* >= 1 */
    size_t memory;
    bool cancel;   /* pc_compute_cancel() while sent or running */
    bool reported; /* taken by wait / wait_any (then freed) */
    char *fn;
    /* The rest of the spec, as the client keeps it (compute_client.c):
     * the packed ComputeJob without its attempt, NULL in unit tests. */
    void *wire;
    size_t wire_len;
    cs_tomsg *tomsgs, **tomsgs_tail;
    pc_job_result *res;         /* once ended (the scheduler allocates it) */
    double started;             /* wall clock of the last start, 0 */
    struct cs_job *prev, *next; /* in the one list it is in */
    struct cs_job *hnext;       /* in the id table */
} cs_job;

typedef struct cs_list {
    cs_job *head, *tail;
    size_t n;
} cs_list;

void pc__cs_list_push(cs_list *l, cs_job *j);  /* at the tail */
void pc__cs_list_front(cs_list *l, cs_job *j); /* at the head */
void pc__cs_list_del(cs_list *l, cs_job *j);

/* ---- nodes ---------------------------------------------------------------- */

enum {
    CN_RESERVING, /* ComputeReserve sent, no answer yet */
    CN_UPLOADING, /* reserved: library and files on the way */
    CN_READY,     /* its workers take jobs */
    CN_CLOSING,   /* ComputeControl CLOSE sent */
    CN_REFUSED,   /* ComputeRefused (refusal: its code) */
    CN_FAILED,    /* ComputeFailed: the computation failed there */
    CN_LOST,      /* its session (or compute task) went down */
    CN_CLOSED,    /* closed on purpose (close_node, close) */
};

typedef struct cs_node {
    char name[PC_NAME_MAX + 1];
    int state;   /* CN_* */
    int refusal; /* CN_REFUSED: the ComputeRefusal code */
    int workers; /* CPUs reserved there */
    int up;      /* worker processes up now */
    size_t memory;
    bool suspended;
    bool close_asked; /* pc_compute_close_node(): never reserved again */
    int load;         /* cpus of its jobs sent or running */
    cs_list jobs;     /* those jobs */
    char **fns;       /* the library's job names (ComputeReady) */
    size_t nfns;
    char text[192]; /* the last refusal or failure */
    /* The wire (compute_client.c's). */
    pc_ref task, session;
    uint32_t max_chunk;
    unsigned file;   /* upload: the file being sent (0: the library) */
    uint64_t off;    /* and how much of it is sent */
    int unacked;     /* chunks sent and not acknowledged */
    double retry_at; /* CN_REFUSED: when to ask again */
} cs_node;

/* ---- the scheduler -------------------------------------------------------- */

typedef struct cs_sched {
    cs_node *nodes;
    size_t nnodes, nodes_cap;
    int prefetch;    /* >= 0 */
    int max_retries; /* >= 0 */
    bool listed;     /* the node list came at least once */
    bool closing;    /* pc_compute_close(): ends are CANCELLED */
    cs_list queue, results;
    cs_job **table; /* by id */
    size_t table_cap, njobs;
    uint64_t next_id;
    uint64_t submitted, ended, failed, retried, running, msgs_dropped;
    /* Status events, in the order things happened (may be NULL). */
    void (*emit)(void *ctx, const pc_compute_event *e);
    void *emit_ctx;
} cs_sched;

void pc__cs_init(cs_sched *s, int prefetch, int max_retries);
/* Every job and node freed. */
void pc__cs_fini(cs_sched *s);

/* A new node (state CN_RESERVING) named `name`: its index, or -1 (no
 * memory). */
int pc__cs_node_add(cs_sched *s, const char *name);
int pc__cs_node_find(const cs_sched *s, const char *name);
/* Node i is ready with `workers` CPUs of `memory` bytes each and the job
 * names fns (copied). Returns PC_OK, PC_ENOMEM. */
pc_err pc__cs_node_ready(cs_sched *s, int i, int workers, size_t memory,
                         char *const *fns, size_t nfns);
/* Whether function fn is in node i's list. */
bool pc__cs_node_has(const cs_node *n, const char *fn);
/* True once no node is waiting for an answer (reserve, upload) and the
 * node list came: what can't run on the ready nodes never will. */
bool pc__cs_all_answered(const cs_sched *s);

/* A new queued job (id from s->next_id), at the queue's tail. fn is
 * copied. NULL: no memory. */
cs_job *pc__cs_job_add(cs_sched *s, const char *fn, int cpus, size_t memory);
cs_job *pc__cs_job_find(const cs_sched *s, uint64_t id);
/* Undo pc__cs_job_add() of a job still queued (never seen by anyone). */
void pc__cs_job_drop(cs_sched *s, cs_job *j);
/* Free a job that is in no list (reported, or never queued). */
void pc__cs_job_free(cs_sched *s, cs_job *j);

/* The node a job goes to now: the least loaded (load / workers) of the
 * ready, not suspended nodes whose workers satisfy its cpus and memory and
 * that know its function, with room for it (load + cpus <= workers × (1 +
 * prefetch)). -1: none has room now; *never (may be NULL) then says
 * whether no node ever will (nothing ready satisfies it, or knows fn,
 * once every node answered). */
int pc__cs_place(const cs_sched *s, const cs_job *j, bool *never);

/* Move what can go from the queue to nodes, in queue order: each job
 * placed gets its next attempt and state CJ_SENT, and goes into out[] (at
 * most cap: the rest waits for the next call). Jobs no node will ever run
 * end PC_JOB_REFUSED. Returns how many went into out. */
size_t pc__cs_dispatch(cs_sched *s, cs_job **out, size_t cap);

/* What a node reported of a job. */
typedef enum cs_verdict {
    CS_DROP,  /* not the current attempt, or already ended: ignored */
    CS_END,   /* it ended: j->res is set, j is in the results */
    CS_RETRY, /* queued again (at the head) for a new attempt */
} cs_verdict;

/* JOB_STARTED of j's `attempt` on node i's `worker`. Returns CS_DROP for a
 * stale one, else CS_END (meaning: taken; j is CJ_RUNNING). */
cs_verdict pc__cs_started(cs_sched *s, cs_job *j, int node, uint32_t attempt,
                          int worker, double started);
/* JOB_DONE of j's `attempt` on node i with `why` (error: its text, may be
 * NULL). Exactly once: only the current attempt of a job sent there and
 * not ended counts. A crash is retried while attempts <= max_retries, then
 * ends PC_JOB_CRASHED; a CANCELLED the client did not ask for (its node
 * closing) is retried; a job cancelled by the client ends CANCELLED unless
 * it ended otherwise first. On CS_END the caller may fill j->res's data
 * and files. */
cs_verdict pc__cs_done(cs_sched *s, cs_job *j, int node, uint32_t attempt,
                       pc_job_why why, const char *error);
/* Node i is gone (state: CN_LOST, CN_FAILED or CN_CLOSED; text: why):
 * every job there not ended is retried (attempts left), ends
 * PC_JOB_LOST (none left) or PC_JOB_CANCELLED (cancelled, or the
 * computation is closing). */
void pc__cs_node_gone(cs_sched *s, int i, int state, const char *text);

/* End j (queued, sent or running) with why and error now (a cancel of a
 * queued job, a refusal, a close). */
void pc__cs_end(cs_sched *s, cs_job *j, pc_job_why why, const char *error);

/* The first result not yet reported (id 0) or job id's: taken out of the
 * results and marked reported; the caller frees the job with
 * pc__cs_job_free() after taking its res. NULL: none. */
cs_job *pc__cs_take(cs_sched *s, uint64_t id);

/* Jobs not ended (queued, sent, running). */
uint64_t pc__cs_pending(const cs_sched *s);

/* ---- events and job messages (compute_events.c) --------------------------- */

pc_err pc__ce_msg(const pc_compute_event *e, pc_msg **out);
pc_err pc__compute_job_msg_new(uint64_t id, const void *data, size_t len,
                               pc_msg **out);
/* The wire's ComputeWhy as a pc_job_why, and the rc of each why. */
pc_job_why pc__cp_why(int wire_why);
pc_err pc__cp_why_rc(pc_job_why why);

/* ---- the client (compute_client.c, compute_agent.c, compute_lister.c,
 * compute_client_files.c) ------------------------------------------------ */

/* Local messages to the agent (CL_GO, CL_NODES) and to the lister
 * (CL_STOP). */
#define CL_GO "picos.compute.go"
#define CL_NODES "picos.compute.nodes"
#define CL_STOP "picos.compute.stop"

/* A file of the computation, in memory once. */
typedef struct cfile {
    char *name; /* base name; "" for the library */
    unsigned char *data;
    size_t len;
    uint8_t sha[32];
} cfile;

enum { OP_CANCEL, OP_TOJOB, OP_SUSPEND, OP_CLOSE_NODE, OP_CLOSE };

typedef struct op {
    struct op *next;
    int kind;
    uint64_t id;
    bool on, all;
    double grace;
    char node[PC_NAME_MAX + 1];
    size_t len;
    unsigned char data[];
} op;

typedef struct waiter {
    struct waiter *next;
    pc_event *ev;
} waiter;

/* A node name the lister has located: the ref the registry listed and
 * the one pc_locate() gave. */
typedef struct lknown {
    char name[PC_NAME_MAX + 1];
    pc_ref listed, located;
} lknown;

/* What the lister shares with the client (and what it keeps, freed with
 * the last reference however the lister ends). */
typedef struct lshare {
    _Atomic int refs;
    pthread_mutex_t mu;
    bool stop;
    char **patterns;
    size_t npatterns;
    pc_ref agent;
    lknown *known; /* the lister's */
    size_t nknown;
} lshare;

/* The lister's list, handed to the agent (a pointer in CL_NODES). */
typedef struct nlist {
    size_t n;
    struct {
        pc_ref ref;
        char name[PC_NAME_MAX + 1];
    } e[];
} nlist;

struct pc_compute {
    pthread_mutex_t mu;
    cs_sched s;
    cfile *files; /* files[0]: the library */
    size_t nfiles;
    char **patterns;
    size_t npatterns;
    bool literal; /* every pattern is a plain name */
    int cpus;
    size_t memory;
    pc_ref status, messages;
    uint64_t client;
    char label[128];
    pc_ref agent, lister;
    lshare *ls;
    /* under mu */
    bool go_pending;
    op *ops, **ops_tail;
    pc_msg **evq;
    size_t nevq, evq_cap;
    waiter *waiters;
    bool closing, agent_done, close_timed_out;
    double close_deadline;
    char err[256];
};

/* Under mu: every waiter looks again. */
void pc__cc_notify(pc_compute *c);
/* Under mu: the scheduler's event into the queue the agent sends (the
 * scheduler's emit, ctx the pc_compute). */
void pc__cc_emit(void *ctx, const pc_compute_event *e);
/* A plain file name: not empty, no '/', not . or .., at most PC_NAME_MAX
 * bytes. */
bool pc__cc_plain_name(const char *s);
/* Read, check and hash the library and the files of o into c->files (err:
 * why not). */
pc_err pc__cc_load_files(pc_compute *c, const pc_compute_opts *o, char *err,
                         size_t esize);
/* The agent task (arg: the pc_compute) and the lister task (arg: its
 * lshare, one reference of which it takes). */
pc_msg *pc__cc_agent(void *arg);
pc_msg *pc__cc_lister(void *arg);
/* Drop a reference to ls (freed with the last). */
void pc__cc_ls_unref(lshare *ls);

#endif
