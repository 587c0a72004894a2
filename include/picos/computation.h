/* picos/computation.h — the ABI a computation implements
 * (docs/computations.md).
 *
 * A computation is a shared library that a client sends to picos-nodes
 * started with --compute. A node checks it against the SHA-256 the client
 * declared, then starts one *setup process* for it (picos-worker): the
 * setup process loads the library, runs node_setup() once — memory it
 * fills is shared, copy-on-write, with the workers —, then forks one
 * *worker process* per CPU the client reserved. Each worker runs
 * worker_setup(), then jobs one at a time, then worker_cleanup() when the
 * computation closes. Everything runs sandboxed (docs/computations.md):
 * chrooted into the computation's directory (its data files under
 * pc_job_data_dir(), the worker's own scratch directory as the working
 * directory), as an unprivileged user of its own, with resource limits,
 * no new privileges and a seccomp filter. A crash or a leak in user code
 * ends a worker process, never the node.
 *
 * The library exports one symbol, PC_COMPUTATION_SYMBOL, made by
 * PC_COMPUTATION(...):
 *
 *     #include <picos/computation.h>
 *     static int square(pc_job *j, const void *in, size_t len)
 *     {
 *         long x;
 *         if (len != sizeof x)
 *             return pc_job_fail(j, "want %zu bytes, got %zu", sizeof x, len);
 *         memcpy(&x, in, sizeof x);
 *         x *= x;
 *         return pc_job_return(j, &x, sizeof x);
 *     }
 *     static const pc_job_def jobs[] = {{.name = "square", .fn = square},
 *                                       {0}};
 *     PC_COMPUTATION(.name = "squares", .version = 1, .jobs = jobs);
 *
 * Build it with `cc -shared -fPIC -o squares.so squares.c`: it links
 * nothing; the pc_job_*() functions come from the worker process that
 * loads it.
 */
#ifndef PICOS_COMPUTATION_H
#define PICOS_COMPUTATION_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI version this header describes. A node refuses a library whose
 * pc_computation.abi it does not know ("ABI 7, this node runs 1"). */
#define PC_COMPUTATION_ABI 1u

/* The one symbol a computation exports. */
#define PC_COMPUTATION_SYMBOL "picos_computation"

/* The job running in this worker (one at a time). Valid until the job
 * function returns. */
typedef struct pc_job pc_job;

/* A job function. `in`/`len` is the job's input (the bytes the client
 * submitted; valid until the function returns). Set the result with
 * pc_job_return() and return 0; on failure return non-zero — with the text
 * given to pc_job_fail(), or "job NAME returned N" without one. A job that
 * fails on its own is reported to the client and never retried. */
typedef int (*pc_job_fn)(pc_job *job, const void *in, size_t len);

typedef struct pc_job_def {
    const char *name; /* what clients submit by (pc_job_spec.fn) */
    pc_job_fn fn;
    /* ProtobufCMessageDescriptor * of the input, or NULL (bytes). With a
     * descriptor the worker unpacks each input before the function runs
     * (pc_job_input_pb() gives it); an input that does not parse fails the
     * job ("input does not parse as pkg.Type"), without calling fn. */
    const void *in_desc;
} pc_job_def;

typedef struct pc_computation {
    uint32_t abi;     /* PC_COMPUTATION_ABI (PC_COMPUTATION() sets it) */
    const char *name; /* for logs, status and the dashboard */
    uint32_t version; /* the computation's own version, shown beside it */
    /* Once per node, in the setup process, before any worker starts.
     * data_dir is where the computation's data files are (by their base
     * names). Return 0; or non-zero with a one-line reason in err: the
     * computation then fails to start on this node, and the client is told
     * the reason. NULL: nothing to do. */
    int (*node_setup)(const char *data_dir, char *err, size_t err_size);
    /* Once per worker process (worker is 0 .. workers-1), before its first
     * job; the same contract as node_setup. NULL: nothing to do. */
    int (*worker_setup)(int worker, char *err, size_t err_size);
    /* Once per worker process when the computation closes normally (not
     * after a crash or a kill). NULL: nothing to do. */
    void (*worker_cleanup)(int worker);
    /* The job functions, ended by an entry whose name is NULL. */
    const pc_job_def *jobs;
} pc_computation;

#define PC_COMPUTATION(...)                                                    \
    __attribute__((visibility("default")))                                     \
    const pc_computation picos_computation = {.abi = PC_COMPUTATION_ABI,       \
                                              __VA_ARGS__}

/* ---- what a running job can do (provided by the worker process) ---------- */

/* Set the job's result: len bytes copied (a later call replaces it). At
 * most PC_JOB_RESULT_MAX bytes. Returns 0, or -1 (too big, no memory: the
 * job then fails with that reason). */
int pc_job_return(pc_job *job, const void *data, size_t len);
#define PC_JOB_RESULT_MAX (768u * 1024u)

/* Set the job's error text (one line, printf-style, cut at 255 bytes).
 * Returns -1, so a job can `return pc_job_fail(job, "...")`. */
int pc_job_fail(pc_job *job, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Send the client a message (it arrives as PC_MSG_COMPUTE_JOB_MSG at the
 * task the client named in pc_compute_opts.messages, in the order sent).
 * At most PC_JOB_MSG_MAX bytes. Returns 0, or -1 (too big, node gone). */
int pc_job_send(pc_job *job, const void *data, size_t len);
#define PC_JOB_MSG_MAX (768u * 1024u)

/* Wait up to `timeout` seconds (negative: for ever, 0: don't wait) for the
 * next message the client sent this job (pc_compute_send()). Returns 0
 * with *data (malloc'd, NUL-terminated, the caller frees it) and *len; 1
 * when the timeout passed; -1 when the node is gone (the job should
 * return). */
int pc_job_recv(pc_job *job, double timeout, void **data, size_t *len);

/* The job's id (as the client's pc_compute_submit() gave it), its attempt
 * (1 for the first run, 2 for its first retry, ...), its function's name,
 * and the worker it runs on. */
uint64_t pc_job_id(const pc_job *job);
int pc_job_attempt(const pc_job *job);
const char *pc_job_name(const pc_job *job);
int pc_job_worker(const pc_job *job);

/* The unpacked input of a job whose pc_job_def has in_desc (a
 * ProtobufCMessage *, freed by the worker after the job), else NULL. */
const void *pc_job_input_pb(const pc_job *job);

/* The directory of the computation's data files ("/data" inside the
 * sandbox). The working directory is the worker's scratch directory
 * (emptied before each job; the job's input files are there, and the
 * files it leaves there are what pc_job_spec.files_out fetches). */
const char *pc_job_data_dir(void);

#ifdef __cplusplus
}
#endif

#endif
