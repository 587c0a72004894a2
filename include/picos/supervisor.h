/* picos/supervisor.h — supervisors: tasks that restart other tasks (OTP's).
 *
 * A supervisor is a task that starts its children from child specs, links
 * with each of them and traps exits, so it hears of every child's end and
 * dies with its children's supervisor in turn (killing a supervisor kills
 * its children: they are linked and don't trap exits unless they choose to).
 *
 * When a child ends, its restart kind decides whether it comes back:
 * permanent always, transient only after an abnormal end (error, killed),
 * temporary never. The strategy decides who restarts with it: one-for-one
 * just the child, one-for-all every child, rest-for-one the child and those
 * started after it (in spec order; the others are terminated first, then
 * all are started again in spec order). More than `intensity` restarts
 * within `period` seconds and the supervisor gives up: it terminates its
 * children and ends with an error ("restart intensity reached"), which its
 * own supervisor, monitors and links then see.
 *
 * Children start on the supervisor's worker unless their spawn options say
 * otherwise; there they can't run before the supervisor has linked them. A
 * child on another worker that ends before the link is set is seen as ended
 * with PC_DOWN_NOPROC, which counts as abnormal.
 */
#ifndef PICOS_SUPERVISOR_H
#define PICOS_SUPERVISOR_H

#include <stddef.h>

#include "picos/err.h"
#include "picos/ref.h"
#include "picos/task.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum pc_sup_strategy {
    PC_SUP_ONE_FOR_ONE = 0,
    PC_SUP_ONE_FOR_ALL,
    PC_SUP_REST_FOR_ONE
} pc_sup_strategy;

typedef enum pc_restart {
    PC_RESTART_PERMANENT = 0,
    PC_RESTART_TRANSIENT,
    PC_RESTART_TEMPORARY
} pc_restart;

typedef struct pc_child_spec {
    const char *name; /* unique among the children; copied */
    pc_task_fn fn;
    void *arg;
    pc_restart restart;
    pc_spawn_opts opts; /* worker, flags (not JOINABLE), stack size */
} pc_child_spec;

typedef struct pc_sup_opts {
    pc_sup_strategy strategy;
    int intensity; /* at most this many restarts... (0: none allowed) */
    double period; /* ...in this many seconds (<= 0 means 5) */
} pc_sup_opts;

/* Start a supervisor task with `n` children (specs are copied) and return
 * its ref. sup_spawn may be NULL (own worker, not a daemon: pc_node_run()
 * then waits until the supervisor ends). Returns PC_OK, PC_EINVAL (bad spec:
 * no fn, no or duplicate name, JOINABLE child), PC_ENOMEM, PC_ESTATE. Any
 * thread. */
pc_err pc_supervisor_start(const pc_sup_opts *opts,
                           const pc_child_spec *children, size_t n,
                           const pc_spawn_opts *sup_spawn, pc_ref *sup);

/* The current ref of child `name` of supervisor `sup` (it changes with each
 * restart). Returns PC_OK, PC_ENOENT (no such supervisor or child, or the
 * child is not running), PC_ETIMEDOUT. Tasks only (it asks the supervisor
 * by message). */
pc_err pc_supervisor_child(pc_ref sup, const char *name, pc_ref *child,
                           double timeout);

/* Restarts so far (all children), same rules as pc_supervisor_child(). */
pc_err pc_supervisor_restarts(pc_ref sup, long *count, double timeout);

/* Ask the supervisor to stop: it terminates its children (last started
 * first) and ends normally. Returns PC_OK or PC_ENOENT. Any thread. */
pc_err pc_supervisor_stop(pc_ref sup);

#ifdef __cplusplus
}
#endif
#endif
