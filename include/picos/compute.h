/* picos/compute.h — distributed computations, the client side
 * (docs/computations.md; the library's ABI is picos/computation.h).
 *
 * pc_compute_open() sends a computation (a shared library and data files)
 * to the compute nodes of the cluster (picos-node --compute), reserving
 * CPUs on each: every node runs one sandboxed worker process per reserved
 * CPU. Jobs are submitted in batches that never wait for a round trip;
 * this process schedules them itself — each goes to the least-loaded node
 * that satisfies its resource request, and each node is kept fed with
 * enough jobs that no reserved CPU waits while a result travels back.
 * Every job ends exactly once: its result, or a failure with its reason.
 * A job whose worker crashed or whose node was lost is run again (up to
 * max_retries), elsewhere when its node was lost; a job that failed on its
 * own (pc_job_fail(), a resource limit, its timeout) is not.
 *
 * Several clients may use a cluster at once: each has its own CPUs
 * reserved on each node and its own worker processes; a node's CPUs not
 * reserved by anyone are what a new client can get.
 *
 * The cluster must be joined (pc_cluster_start / pc_cluster_join).
 * Timeouts are seconds: negative waits forever, 0 does not wait. Every
 * call may be made from tasks and from foreign threads.
 *
 *     pc_compute_opts o = {.library = "./squares.so"};
 *     pc_compute *c;
 *     pc_compute_open(&o, 10.0, &c);
 *     long x = 7;
 *     pc_job_spec j = {.fn = "square", .input = &x, .len = sizeof x};
 *     uint64_t id;
 *     pc_compute_submit(c, &j, 1, &id);
 *     pc_job_result *r;
 *     pc_compute_wait_any(c, 10.0, &r);   // r->rc == PC_OK, r->data: 49
 *     pc_job_result_free(&r);
 *     pc_compute_close(&c, 5.0);
 */
#ifndef PICOS_COMPUTE_H
#define PICOS_COMPUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "picos/err.h"
#include "picos/msg.h"
#include "picos/ref.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The registered name of a compute node's server task is this prefix and
 * the node's name (kind PC_NAME_TASK): "picos.compute/nodeA". */
#define PC_COMPUTE_NAME_PREFIX "picos.compute/"

typedef struct pc_compute pc_compute;

typedef struct pc_compute_opts {
    const char *library; /* path of the computation's .so (required) */
    /* Data files sent with it (NULL-terminated; NULL: none): every node
     * has them under pc_job_data_dir() by their base names (which must
     * differ). */
    const char *const *files;
    /* Names (glob patterns) of the nodes to use, NULL-terminated; NULL:
     * every compute node of the cluster, also those that come later. */
    const char *const *nodes;
    int cpus;        /* CPUs (worker processes) to reserve per node; 0: all
                        the node has free */
    size_t memory;   /* address-space limit of each worker process, bytes;
                        0: the node's default (a node that can't give this
                        much is not used) */
    int max_retries; /* runs after the first of a job whose worker crashed
                        or whose node was lost; 0: 3; negative: none */
    /* Jobs sent to a node beyond the ones its workers run, per worker, so
     * that a worker finds its next job there when one ends; 0: 2. */
    int prefetch;
    pc_ref status;   /* gets PC_MSG_COMPUTE_STATUS events; 0: none */
    pc_ref messages; /* gets PC_MSG_COMPUTE_JOB_MSG from jobs; 0: dropped
                        (and counted) */
} pc_compute_opts;

/* Send the computation to the nodes (its library and files checked by
 * SHA-256 on each), reserve CPUs and start the workers; wait up to
 * `timeout` until at least one node has its workers ready (with opts.nodes
 * naming nodes without patterns: until every node named has answered —
 * ready, refused, failed or lost — and one of them is ready). Nodes that come
 * later, or free CPUs later, are taken as they do. Returns PC_OK and *out
 * (the caller's: pc_compute_close()); PC_EINVAL (no library, unreadable
 * file, not a computation: no PC_COMPUTATION_SYMBOL), PC_ENOENT (no compute
 * node in the cluster matches), PC_EFULL (nodes found, none with a free
 * CPU now: all reserved by other computations, or the node suspended by
 * its operator — worth trying again later), PC_EFAILED (every node
 * refused it for good: the text tells why, e.g. its node_setup's error),
 * PC_ETIMEDOUT, PC_ESTATE (not joined), PC_ENOMEM. On error *out is NULL and
 * pc_compute_error(NULL) has a one-line reason. */
pc_err pc_compute_open(const pc_compute_opts *o, double timeout,
                       pc_compute **out);

/* The last error's one-line text: of c's last call, or (c NULL) of this
 * thread's last pc_compute_open(). Never NULL. */
const char *pc_compute_error(const pc_compute *c);

/* A file written into the job's scratch directory before it starts. */
typedef struct pc_job_file {
    const char *name; /* a plain name: no '/', not "." or ".." */
    const void *data;
    size_t len;
} pc_job_file;

typedef struct pc_job_spec {
    const char *fn;    /* the job function's name (pc_job_def.name) */
    const void *input; /* its input (copied) */
    size_t len;
    int cpus;       /* worker CPUs the job holds while it runs; 0: 1 */
    size_t memory;  /* bytes it needs: only nodes whose workers' limit
                       is at least this run it; 0: any */
    double timeout; /* seconds it may run once started (carried to the
                       node, which kills its worker then: PC_JOB_TIMEDOUT);
                       0 or negative: no limit */
    const pc_job_file *files_in; /* written into its scratch dir */
    size_t nfiles_in;
    /* Names of files fetched from its scratch dir when it ends (NULL-
     * terminated; NULL: none); a missing one is simply absent. */
    const char *const *files_out;
} pc_job_spec;

/* Queue n jobs; ids[i] (when ids is not NULL) is jobs[i]'s id, unique in
 * c. Never waits for a node: the jobs go out in batches as workers can take
 * them. Everything is copied. Returns PC_OK; PC_EINVAL (NULL c or jobs, an
 * unknown job name, a bad file name, cpus more than any node's reserved
 * CPUs): nothing queued; PC_ECLOSED (closing), PC_ENOMEM. */
pc_err pc_compute_submit(pc_compute *c, const pc_job_spec *jobs, size_t n,
                         uint64_t *ids);

/* Why a job ended. */
typedef enum pc_job_why {
    PC_JOB_OK = 0,        /* its result is in data */
    PC_JOB_FAILED = 1,    /* the job failed on its own: error is its text */
    PC_JOB_CRASHED = 2,   /* its worker process died (a signal, an exit)
                             on every one of its 1 + max_retries runs */
    PC_JOB_LOST = 3,      /* its node was lost on its last allowed run */
    PC_JOB_TIMEDOUT = 4,  /* ran past pc_job_spec.timeout: worker killed */
    PC_JOB_CANCELLED = 5, /* pc_compute_cancel(), or c closed before it ran */
    PC_JOB_LIMIT = 6,     /* a resource limit stopped it (memory, CPU time,
                             file size): error says which */
    PC_JOB_REFUSED = 7,   /* no node could ever run it (its cpus or
                             memory), or its input was refused */
} pc_job_why;

/* "ok", "failed", "crashed", "lost", "timed out", "cancelled", "limit",
 * "refused". */
const char *pc_job_why_str(pc_job_why why);

typedef struct pc_job_result {
    uint64_t id;
    pc_err rc; /* PC_OK, PC_EFAILED (FAILED, CRASHED, LIMIT, REFUSED),
                  PC_EUNREACH (LOST), PC_ETIMEDOUT, PC_ECLOSED
                  (CANCELLED) */
    pc_job_why why;
    char error[256]; /* one line; "" when OK */
    void *data;      /* the result (NUL after it), NULL when none */
    size_t len;
    pc_job_file *files; /* the files_out found (name and data owned here) */
    size_t nfiles;
    char node[64];  /* where it last ran ("" if never) */
    int worker;     /* and on which worker (-1 if never) */
    int attempts;   /* runs started: 1 unless retried */
    double started; /* wall clock (pc_wall_us() / 1e6) of its last start,
                       0 if never */
    double ended;   /* and of its end */
} pc_job_result;

void pc_job_result_free(pc_job_result **r);

/* The next job to end, each exactly once, in the order they ended. Returns
 * PC_OK and *out (the caller's); PC_ETIMEDOUT (none ended in time);
 * PC_ENOENT (no job submitted is still unreported: nothing to wait for);
 * PC_EINVAL. */
pc_err pc_compute_wait_any(pc_compute *c, double timeout, pc_job_result **out);

/* Job `id`'s end (it is then not given by wait_any). Returns PC_OK and
 * *out; PC_ETIMEDOUT; PC_ENOENT (no such job, or already reported). */
pc_err pc_compute_wait(pc_compute *c, uint64_t id, double timeout,
                       pc_job_result **out);

/* Wait until every job submitted so far has ended (their results stay for
 * wait_any / wait). Returns PC_OK, PC_ETIMEDOUT. */
pc_err pc_compute_wait_all(pc_compute *c, double timeout);

/* Cancel job `id`: a queued one never runs; a running one's worker is
 * killed (and replaced). It ends PC_JOB_CANCELLED — unless it ended first.
 * Returns PC_OK (cancelled or being cancelled), PC_ENOENT (no such job, or
 * it has ended). */
pc_err pc_compute_cancel(pc_compute *c, uint64_t id);

/* Send job `id` a message (pc_job_recv() reads it): kept until the job
 * runs when it is queued; lost when it is retried (a new run starts
 * afresh). At most PC_JOB_MSG_MAX bytes. Returns PC_OK, PC_ENOENT (ended),
 * PC_ETOOBIG, PC_ENOMEM. */
pc_err pc_compute_send(pc_compute *c, uint64_t id, const void *data,
                       size_t len);

/* Message type of what jobs send (pc_job_send()); the payload is the job's
 * id (8 bytes, little-endian) then its bytes: pc_compute_job_msg_parse(). */
#define PC_MSG_COMPUTE_JOB_MSG "picos.compute.job_msg"
pc_err pc_compute_job_msg_parse(const pc_msg *m, uint64_t *id,
                                const void **data, size_t *len);

/* Suspend (on) or resume (off) node `node` (its name) for this
 * computation, or every node when node is NULL: its running jobs finish,
 * no new ones start there. Returns PC_OK, PC_ENOENT (not one of c's). */
pc_err pc_compute_suspend(pc_compute *c, const char *node, bool on);

/* Close this computation on one node: its jobs there finish within
 * `grace` seconds (then are killed and run elsewhere), its workers end,
 * its CPUs are freed. Returns PC_OK, PC_ENOENT. */
pc_err pc_compute_close_node(pc_compute *c, const char *node, double grace);

/* Close c: queued jobs end CANCELLED, running ones get up to `grace`
 * seconds to end (reported if they do; then killed, CANCELLED), every node
 * frees its CPUs and removes the computation's files; *c is freed and set
 * to NULL, and results not taken are dropped. Returns PC_OK, or
 * PC_ETIMEDOUT when some node did not confirm within grace + 5 s (it still
 * ends the computation when it sees this client gone). */
pc_err pc_compute_close(pc_compute **c, double grace);

/* ---- node side (picos-node --compute) ----------------------------------- */

typedef struct pc_compute_server pc_compute_server;

typedef struct pc_compute_serve_opts {
    const char *name;     /* the node's name, as its links say it
                             (pc_net_opts.name; required): the compute
                             task is PC_COMPUTE_NAME_PREFIX + name */
    int cpus;             /* worker processes, all clients; 0: the CPUs */
    const char *data_dir; /* required; DATA_DIR/compute/ is made 0700 */
    const char *worker;   /* path of picos-worker (required) */
    size_t memory;        /* a worker's default address-space limit; 0:
                             1 GiB */
    size_t memory_max;    /* the most a client may ask; 0: 4 GiB */
    double cpu_seconds;   /* RLIMIT_CPU of a worker; 0: none */
    unsigned uid_base;    /* as root: computation k runs as uid/gid
                             uid_base + k; 0: 200000 */
    bool no_seccomp;      /* the seccomp filter off (on by default) */
} pc_compute_serve_opts;

/* Start taking computations on this node: a compute task registered as
 * PC_COMPUTE_NAME_PREFIX + the node's name (the cluster must be joined).
 * `what` (when not NULL) gets a one-line summary for the startup line:
 * "8 CPUs, data dir D, sandbox: chroot, uid 200000+, seccomp" or what is
 * missing and why (and on an error the reason, when there is one).
 * Returns PC_OK and *out; PC_EINVAL (no name, data_dir or worker, worker
 * not executable), PC_ESYS (data dir unusable: what says
 * why), PC_EEXIST (name taken), PC_ESTATE (not joined), PC_ETIMEDOUT /
 * PC_EUNREACH (registry), PC_ENOMEM. Tasks and foreign threads. */
pc_err pc_compute_serve(const pc_compute_serve_opts *o, char *what,
                        size_t what_size, pc_compute_server **out);

/* Stop: new computations are refused; each open one gets `grace` seconds
 * for its running jobs (their clients get the results), then its workers
 * are killed (the clients retry those jobs elsewhere) and its files
 * removed; the name is unregistered. Frees *s, sets it NULL. Returns
 * PC_OK, PC_ETIMEDOUT (not everything ended within grace + 5 s). */
pc_err pc_compute_serve_stop(pc_compute_server **s, double grace);

/* ---- status events ------------------------------------------------------ */

/* Message type of the events sent to pc_compute_opts.status. */
#define PC_MSG_COMPUTE_STATUS "picos.compute.status"

typedef enum pc_compute_event_kind {
    PC_CE_NODE_INITIALIZED = 1, /* its workers are ready (n: how many) */
    PC_CE_NODE_SUSPENDED = 2,
    PC_CE_NODE_RESUMED = 3,
    PC_CE_NODE_CLOSED = 4,
    PC_CE_NODE_LOST = 5,    /* down, or its computation failed: text */
    PC_CE_NODE_REFUSED = 6, /* would not take it: text says why */
    PC_CE_WORKER_INITIALIZED = 11,
    PC_CE_WORKER_CLOSED = 12,
    PC_CE_WORKER_LOST = 13, /* crashed or killed: text */
    PC_CE_JOB_STARTED = 21,
    PC_CE_JOB_FINISHED = 22,  /* every end, why tells how */
    PC_CE_JOB_RETRIED = 23,   /* why: what ended the attempt */
    PC_CE_JOB_ABANDONED = 24, /* given up: no retry left (why), or refused */
    PC_CE_CLOSED = 31,        /* the computation closed (the last event) */
} pc_compute_event_kind;

typedef struct pc_compute_event {
    pc_compute_event_kind kind;
    char node[64]; /* "" for CLOSED */
    int worker;    /* -1 when not about a worker */
    uint64_t job;  /* 0 when not about a job */
    int attempt;   /* the job's run (1, 2, ...) */
    pc_job_why why;
    int n; /* NODE_INITIALIZED: workers */
    char text[192];
} pc_compute_event;

pc_err pc_compute_event_parse(const pc_msg *m, pc_compute_event *out);

/* "node initialized", "job finished", ... */
const char *pc_compute_event_str(pc_compute_event_kind kind);

/* ---- figures ------------------------------------------------------------ */

typedef struct pc_compute_stats {
    int nodes;   /* nodes whose workers are up for c */
    int workers; /* worker processes up, all nodes */
    uint64_t submitted, queued, running, done, failed, retried;
    uint64_t msgs_dropped; /* job messages with no pc_compute_opts.messages */
} pc_compute_stats;

pc_err pc_compute_stats_get(const pc_compute *c, pc_compute_stats *out);

#ifdef __cplusplus
}
#endif

#endif
