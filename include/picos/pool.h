/* picos/pool.h — a thread pool for blocking functions (pycos's
 * AsyncThreadPool).
 *
 * A task that must call something blocking (a disk read, a DNS lookup, a
 * database client) hands it to a pool thread with pc_pool_run(): only the
 * calling task waits; its worker goes on running the others, and the result
 * comes back to the task on its own worker. Jobs start in FIFO order.
 *
 *     pc_pool *pool;
 *     pc_pool_new(&pool, 4);
 *     ...in a task:
 *     void *res;
 *     if (pc_pool_run(pool, lookup, name, 5.0, &res) == PC_OK) ...
 *     ...
 *     pc_pool_free(&pool);
 *
 * Pool threads are not workers: fn may block, may take locks shared with
 * other threads, and may call the picos functions marked "any thread"
 * (pc_send(), pc_spawn(), ...), but not the task-only ones. A job that waits
 * for another job of its own pool deadlocks once every thread does so.
 *
 * Timeouts. The timeout of pc_pool_run() covers the time in the queue and
 * the time running. A job that has not started when its waiter gives up is
 * taken out of the queue and never runs. A job that has started can't be
 * stopped: it runs to its end, and its result — which nobody will read —
 * goes to the job's discard function (pc_pool_run_ex()), or is dropped when
 * there is none (fine for results that own nothing).
 *
 * Life cycle. pc_pool_free() stops accepting jobs, cancels the queued ones
 * (their waiters get PC_ECLOSED; submitted jobs are dropped without running),
 * waits for the running ones to end and delivers their results, then stops
 * the threads. Call pc_pool_join() first to let the queue drain instead.
 *
 * A pool used by tasks must be freed before the node ends: its threads hand
 * results to tasks through the node's workers, and only pc_pool_free()
 * (which joins the threads) waits until they are done touching them. So free
 * it from a task, or from main between pc_node_join() and pc_node_run():
 *
 *     pc_node_join(-1); pc_pool_free(&pool); pc_node_run();
 *
 * A pool used only by foreign threads needs no node at all.
 */
#ifndef PICOS_POOL_H
#define PICOS_POOL_H

#include "picos/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pc_pool pc_pool;

/* A job: runs on a pool thread; its return value is the job's result. */
typedef void *(*pc_pool_fn)(void *arg);

/* Disposes of a result that nobody will read (its waiter timed out while the
 * job ran, or asked for no result). Runs on a pool thread or in the waiter;
 * must not block for long. */
typedef void (*pc_pool_discard_fn)(void *result);

/* Most threads a pool may have. */
#define PC_POOL_MAX_THREADS 1024

/* Make a pool of `threads` threads (1 .. PC_POOL_MAX_THREADS), started at
 * once. Returns PC_OK and *out, PC_EINVAL, PC_ENOMEM or PC_ESYS (a thread
 * could not be started). Needs no node. Any thread. */
pc_err pc_pool_new(pc_pool **out, int threads);

/* Stop the pool and free it, setting *p to NULL: no job is accepted any
 * more, queued jobs are cancelled (waiters get PC_ECLOSED, submitted jobs
 * are dropped unrun), running jobs are waited for and their results
 * delivered (or discarded), then the threads end. A task waits without
 * blocking its worker. Calls still inside the pool (a waiter that is just
 * returning) finish safely; new calls after this returns are invalid.
 * Returns PC_OK, or PC_EPERM (nothing done) from a light-actor handler or
 * one of the pool's own threads. NULL and *p == NULL are no-ops (PC_OK).
 * Tasks and any thread. */
pc_err pc_pool_free(pc_pool **p);

/* Wait up to `timeout` seconds (negative: forever) until no job is queued
 * or running. Returns PC_OK, PC_ETIMEDOUT, PC_EPERM (light-actor handler, or
 * one of the pool's own threads, which would wait for itself), PC_EINVAL
 * (p NULL) or PC_ENOMEM. Tasks and any thread; a task waits without
 * blocking its worker. */
pc_err pc_pool_join(pc_pool *p, double timeout);

/* Run fn(arg) on a pool thread and wait up to `timeout` seconds (negative:
 * forever) for its result. Only the calling task waits; its worker runs
 * other tasks meanwhile, and the caller resumes on its own worker.
 * Returns:
 *   PC_OK        fn ran; *result (if result is not NULL) is its return value.
 *   PC_ETIMEDOUT fn did not start in time: it never will, and arg is the
 *                caller's again.
 *   PC_ERUNNING  fn started and did not end in time: it runs on, so arg is
 *                still in use until it returns; its result is discarded
 *                (see pc_pool_run_ex()).
 *   PC_ECLOSED   the pool is being freed; fn did not run.
 *   PC_EPERM     called from a light-actor handler (can't wait there).
 *   PC_EINVAL    p or fn NULL.  PC_ENOMEM.
 * Tasks and any thread (a foreign thread waits on a condition variable). */
pc_err pc_pool_run(pc_pool *p, pc_pool_fn fn, void *arg, double timeout,
                   void **result);

/* As pc_pool_run(), with `discard` (may be NULL) called with the result
 * when nobody will take it: after this call timed out while fn ran (then
 * on the pool thread, when fn returns), when result is NULL (then here, in
 * the caller), or when the waiting task was terminated. discard never sees
 * a result that this call handed back. */
pc_err pc_pool_run_ex(pc_pool *p, pc_pool_fn fn, void *arg,
                      pc_pool_discard_fn discard, double timeout,
                      void **result);

/* Queue fn(arg) to run on a pool thread without waiting for it; fn's
 * return value is ignored. FIFO with the other jobs. A submitted job still
 * queued when the pool is freed is dropped without running (pc_pool_join()
 * first to run them all). Returns PC_OK, PC_ECLOSED (pool being freed),
 * PC_EINVAL, PC_ENOMEM. Any thread, light-actor handlers included. */
pc_err pc_pool_submit(pc_pool *p, pc_pool_fn fn, void *arg);

#ifdef __cplusplus
}
#endif
#endif
