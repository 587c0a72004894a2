/* picos/hotswap.h — replacing a running task's function (pycos's hot swap),
 * and loading new versions of task functions from shared libraries.
 *
 * A task opts in with pc_hot_swappable(true). pc_hot_swap(ref, fn, arg)
 * then asks it to continue as fn(arg): the request waits for the task's
 * next safe point, which is its next plain pc_recv() — a task waiting for
 * its next message at top level, as in pycos. There, instead of a message,
 * pc_recv() returns an offer: a message of type PC_MSG_HOTSWAP whose sender
 * is the task that asked (nil when a foreign thread did). The task
 * accepts with pc_hot_swap_accept(&offer), which does not return: the task
 * starts over as fn(arg) on a fresh stack frame, with the same ref and the
 * same queued messages (so the new code handles what the old one left). A
 * task declines by freeing the offer (and may hand over state first, e.g. by
 * sending itself a message the new code reads). A task that isn't swappable
 * keeps the request until it becomes swappable. Light actors can't be
 * swapped (PC_ENOTSUP).
 *
 * Modules: pc_module_load() dlopen()s a shared library; pc_hot_swap_module()
 * then swaps every task running one of the named functions of the old
 * module to the function of the same name in the new one (each task still
 * decides at its safe point). Unload the old module only once no task runs
 * its code.
 */
#ifndef PICOS_HOTSWAP_H
#define PICOS_HOTSWAP_H

#include <stdbool.h>
#include <stddef.h>

#include "picos/err.h"
#include "picos/msg.h"
#include "picos/ref.h"
#include "picos/task.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PC_MSG_HOTSWAP "picos.hotswap"

/* The calling task accepts hot swaps from now on (or not). Tasks only. */
pc_err pc_hot_swappable(bool on);

/* Ask task `ref` to continue as fn(arg) at its next safe point; a newer
 * request replaces an older one not yet accepted. The request reaches the
 * task before any message the caller sends it afterwards. Returns PC_OK,
 * PC_ENOENT, PC_EINVAL (fn NULL), PC_ENOTSUP (a light actor). Any thread. */
pc_err pc_hot_swap(pc_ref ref, pc_task_fn fn, void *arg);

/* What an offer proposes: the function and arg the task would continue as
 * (to decide whether to accept; dladdr() gives the function's name).
 * Returns PC_OK, or PC_EINVAL when `offer` is not a hot-swap offer. */
pc_err pc_hot_swap_offered(const pc_msg *offer, pc_task_fn *fn, void **arg);

/* Accept the offer pc_recv() returned: does not return on success (the task
 * restarts as the new function). Returns PC_EINVAL when *offer is not the
 * current offer of this task (it then stays the caller's). Tasks only. */
pc_err pc_hot_swap_accept(pc_msg **offer);

typedef struct pc_module pc_module;

/* dlopen() the shared library at `path` (RTLD_NOW | RTLD_LOCAL). Returns
 * PC_OK, PC_ENOENT (with the loader's reason logged as one line), PC_EINVAL,
 * PC_ENOMEM. Any thread. */
pc_err pc_module_load(const char *path, pc_module **out);

/* The task function `name` of the module, or NULL. */
pc_task_fn pc_module_fn(pc_module *m, const char *name);

/* Swap every task of this node whose function is `name` in `old` to `name`
 * in `new_mod`, for each of the n names (each task keeps its arg). Returns
 * PC_OK, or PC_ENOENT when a name is missing in either module (nothing is
 * swapped then). Any thread. */
pc_err pc_hot_swap_module(pc_module *old, pc_module *new_mod,
                          const char *const *names, size_t n);

/* Swap every task whose function is old_fn to new_fn (keeping its arg).
 * The request reaches each task before any message the caller sends it
 * afterwards. Any thread. */
pc_err pc_hot_swap_all(pc_task_fn old_fn, pc_task_fn new_fn);

/* Free the module handle; *m becomes NULL. The library itself stays
 * loaded until the process ends, since tasks may still run its code (a
 * later pc_module_load of the same path gets the same mapping). */
void pc_module_free(pc_module **m);

#ifdef __cplusplus
}
#endif
#endif
