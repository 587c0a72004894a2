/* apps/worker/worker.h — what picos-worker's files share: its options, the
 * computation it loaded, and the running job (docs/computations.md
 * "Inside a node"). */
#ifndef PICOS_APPS_WORKER_WORKER_H
#define PICOS_APPS_WORKER_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "picos/computation.h"

#include "compute.pb-c.h"
#include "sandbox.h"

/* A W_DONE's result and files out together (bytes): what fits a worker
 * frame (CP_WFRAME_MAX) and, at the node, one link frame (1 MiB) with room
 * for the envelope. A job that leaves more fails ("result and files out
 * too big"). */
#define PC__WORKER_DONE_MAX (960u * 1024u)

/* The longest error text of a job (pc_job_fail), NUL included. */
#define PC__WORKER_ERR_MAX 256

typedef struct pc__worker_opts {
    const char *library; /* --library */
    const char *root;    /* --root */
    int workers;         /* --workers */
    pc__sandbox_opts sb; /* the limits, --uid/--gid, --seccomp, --confine */
} pc__worker_opts;

/* Set by picos-worker.c before node_setup: the options, the loaded
 * computation, and its data directory as the sandbox sees it ("/data"
 * when confined, else ROOT/data; pc_job_data_dir() returns it). */
extern const pc__worker_opts *pc__worker_o;
extern const pc_computation *pc__worker_comp;
extern char pc__worker_data_dir[4096];

/* The running job: pc_job_*() (jobapi.c) act on it. */
struct pc_job {
    uint64_t id;
    int attempt;
    const char *name;
    int worker;
    int sock;             /* the worker's ctl.sock connection */
    const void *input_pb; /* unpacked input (in_desc), or NULL */
    void *result;         /* pc_job_return()'s copy (malloc'd) */
    size_t result_len;
    char error[PC__WORKER_ERR_MAX]; /* pc_job_fail()'s text, or "" */
    /* pc_job_return() could not keep the result: the job fails with
     * `error` whatever it returns; `limit` when malloc refused. */
    bool forced, limit;
    bool gone;   /* EOF or W_QUIT seen: the node wants no more of it */
    bool broken; /* the socket failed: the worker exits after the job */
};

/* Worker `index`, just forked from the setup process: its sandbox, its
 * connection, worker_setup, then its jobs until W_QUIT (exit 0) or the
 * socket's EOF (exit 1). Never returns. */
void pc__worker_main(int index) __attribute__((noreturn));

/* A frame pc_job_recv() read that is not for the job (W_RUN, W_QUIT, ...):
 * kept, in order, for the worker's loop to handle after the job. Takes f. */
void pc__worker_defer(Picos__V1__WorkerFrame *f);

/* Replace control characters (newlines included) by spaces, in place, so
 * that a text fits one line of the protocol; returns s. */
char *pc__worker_one_line(char *s);

#endif
