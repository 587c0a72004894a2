/* picos/node.h — the node: one per process, W worker threads.
 *
 * A node owns W worker threads, each running one libev loop and the tasks
 * and light actors placed on it. A task stays on its worker for its whole
 * life, so tasks on one worker never run at the same time and need no locks
 * among themselves; parallelism comes from several workers.
 *
 * Life cycle, from the program's main thread (or any non-worker thread):
 *
 *     pc_node_start(NULL);            // W = number of cores
 *     pc_spawn(main_task, arg, NULL, &ref);
 *     pc_node_run();                  // returns when non-daemon tasks are done
 *
 * pc_node_run() is pycos's finish(): it waits until every non-daemon task has
 * ended (daemon tasks are not waited for); then, in this order, it
 * unregisters the transport (its threads end), stops and joins the workers,
 * terminates what is still alive (daemons, uncollected zombies) without
 * running more task code — their exit handlers and monitors still fire —
 * answers what is left in the inboxes with PC_ECLOSED, and frees the node. A
 * task or another thread may call pc_node_stop() to end it early (pycos's
 * terminate()). After pc_node_run() returns, pc_node_start() may be called
 * again.
 *
 * Calls marked "any thread" also work from threads that are not workers
 * (main(), a thread pool); such a thread must be done with picos calls before
 * pc_node_run() frees the node (join it first).
 */
#ifndef PICOS_NODE_H
#define PICOS_NODE_H

#include <stddef.h>
#include <stdint.h>

#include "picos/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pc_node_opts {
    /* Worker threads; 0 means the number of online cores. */
    int workers;
    /* Node id carried by every ref made here; 0 picks a random one. */
    uint64_t node_id;
    /* Default stack size of a task (bytes, rounded up to pages); 0 means
     * PC_STACK_DEFAULT. Only touched pages cost memory. */
    size_t stack_size;
    /* Size of each worker's shared stack for small-memory tasks
     * (PC_TASK_SMALL); 0 means PC_SHARED_STACK_DEFAULT. */
    size_t shared_stack_size;
    /* Stacks with a PROT_NONE guard page below them, at most this many per
     * worker (each costs two kernel mappings; the kernel allows ~65k in all).
     * Stacks beyond it are checked with a canary word at every switch. 0
     * means 4096; negative disables guard pages. */
    int guard_pages;
} pc_node_opts;

#define PC_STACK_DEFAULT (64u * 1024u)
#define PC_SHARED_STACK_DEFAULT (256u * 1024u)

/* Start the node with W workers. opts may be NULL for defaults.
 * Returns PC_OK, PC_ESTATE if a node is already running, PC_EINVAL, or
 * PC_ENOMEM / PC_ESYS. Not from a worker thread. */
pc_err pc_node_start(const pc_node_opts *opts);

/* Wait until every non-daemon task has ended (or pc_node_stop() was called),
 * then terminate the remaining (daemon) tasks, stop the workers and free the
 * node. Returns PC_OK, or PC_ESTATE when no node runs or when called from a
 * worker thread (a task can't wait for its own node). */
pc_err pc_node_run(void);

/* Wait up to `timeout` seconds (negative: forever) until every non-daemon
 * task has ended; the node keeps running. Returns PC_OK, PC_ETIMEDOUT, or
 * PC_ESTATE (no node, or called from a worker thread). pycos's join(). */
pc_err pc_node_join(double timeout);

/* Ask the node to end now: pc_node_run() stops waiting for non-daemon tasks
 * and terminates every task. Any thread, including tasks, at any time: a
 * call racing the node's own end acts on the whole node or does nothing
 * (no node); it never blocks for longer than a lock taken for a store. */
void pc_node_stop(void);

/* The running node's id, or 0 when none runs. Any thread. */
uint64_t pc_node_id(void);

/* Number of workers of the running node (0 when none). Any thread. */
int pc_node_workers(void);

/* Index of the worker the caller runs on, or -1 outside workers. */
int pc_worker_index(void);

/* Monotonic time in seconds (CLOCK_MONOTONIC). Any thread. */
double pc_now(void);

/* Wall-clock time in µs since the Unix epoch (CLOCK_REALTIME): for
 * timestamps shown to people or sent to other hosts, never for timeouts.
 * Any thread. */
uint64_t pc_wall_us(void);

/* Timeouts and deadlines, for calls that wait in several steps: the
 * absolute pc_now() time `timeout` seconds from now (negative: forever,
 * INFINITY), and the timeout left until `deadline` (-1 for INFINITY, 0 once
 * it has passed: "don't wait"). Any thread. */
double pc_deadline(double timeout);
double pc_deadline_left(double deadline);

#ifdef __cplusplus
}
#endif
#endif
