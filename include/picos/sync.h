/* picos/sync.h — task-level locks, conditions, events and semaphores
 * (pycos's Lock, RLock, Condition, Event and Semaphore, PYCOS_SPEC §1.5),
 * with robust locks (POSIX's robust mutexes).
 *
 * These block the calling task only, never its worker: the worker runs its
 * other tasks meanwhile. Unlike pycos's (one scheduler, no preemption), they
 * work across workers: tasks on different workers and foreign threads (main,
 * a thread pool) may share one object, so code that touches shared memory
 * from more than one worker needs them.
 *
 * Common rules:
 *   - Waiters are served in FIFO order, and a release, notify, set or post
 *     hands the object straight to the first waiter, wherever it runs: a
 *     caller that arrives later can't take it first (no barging).
 *   - Every blocking call takes a timeout in seconds: negative waits
 *     forever, 0 takes the object only if it is free now and otherwise
 *     returns PC_ETIMEDOUT at once (it never waits, so it can't race a
 *     hand-off, and never lets go of anything: see pc_cond_wait()). A waiter
 *     that times out leaves the queue; one that was handed the object at the
 *     moment it timed out keeps it and returns PC_OK.
 *   - Who may block: tasks and foreign threads. In a light-actor handler, a
 *     pc_at_exit() handler (task.h) or a worker's own callbacks every call
 *     with a timeout other than 0 returns PC_EPERM, whether or not it would
 *     have had to wait; the try forms (timeout 0) and the non-blocking calls
 *     work there.
 *   - The owner of a lock is the calling task or light actor (pc_self()),
 *     or, outside them, the calling thread. A task's pc_at_exit() handler
 *     runs as the task, so it can release the task's locks.
 *   - Locks (plain, recursive, a condition's) are robust. When the task or
 *     light actor that owns one ends without releasing it — it returns,
 *     fails (pc_exit_error), is terminated, or the node ends; its exit
 *     handler still may release it — the lock goes to its first waiter, or
 *     is left free, and that next owner is told with PC_EOWNERDEAD instead
 *     of PC_OK from the call that got it (pc_lock_acquire, pc_cond_acquire,
 *     pc_cond_wait). PC_EOWNERDEAD is a success: the caller owns the lock
 *     (at the depth it asked for), but what the lock guards may have been
 *     left half-updated, so it should check or repair it, then go on as
 *     usual. Only that next owner is told (once, unlike POSIX the lock
 *     needs no "consistent" call): its own release is an ordinary one. A
 *     foreign thread is not tracked: a thread that exits holding a lock
 *     leaves it held.
 *   - A task terminated while it waits leaves the queue. What was handed to
 *     it before it could run again — a lock, a semaphore unit, a
 *     notification and the lock after it — goes on to the next waiter, or
 *     back, as if the task had been skipped (a lock it never ran with comes
 *     with PC_OK, or PC_EOWNERDEAD if a dead owner left it), also when it
 *     ran on another worker and its wake-up was still on the way.
 *     Semaphores have no owner: units a task took and didn't release stay
 *     taken when it ends.
 *   - pc_*_free() may be called while tasks or threads wait in the object:
 *     each is woken with PC_ECLOSED and no longer touches it. Other calls
 *     must not race with the free (the caller owns the object).
 *   - A task terminated (pc_task_terminate) while it holds a lock keeps it
 *     held for ever; one terminated while it waits is skipped when the
 *     object is handed on, except in the window between the hand-off and
 *     its wake-up, where what it was handed is lost. End tasks that use
 *     these objects with messages instead.
 */
#ifndef PICOS_SYNC_H
#define PICOS_SYNC_H

#include <stdbool.h>

#include "picos/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- locks ----------------------------------------------------------------- */

/* A mutual-exclusion lock owned by one task (or thread) at a time. */
typedef struct pc_lock pc_lock;

/* Create an unlocked lock into *out. A recursive lock (pycos RLock) may be
 * acquired again by its owner, which must then release it as many times.
 * Returns PC_OK, PC_EINVAL (out NULL), PC_ENOMEM. The caller owns *out and
 * frees it with pc_lock_free(). Any thread. */
pc_err pc_lock_new(pc_lock **out, bool recursive);

/* Free *l and set *l to NULL (NULL or *l NULL: nothing). Waiters get
 * PC_ECLOSED. It may be held, by the caller or by a task that must then not
 * touch it again (its end lets go of it). Any thread. */
void pc_lock_free(pc_lock **l);

/* Acquire l, waiting up to `timeout` seconds (negative: forever, 0: try).
 * Returns PC_OK (the caller owns it; a recursive lock's owner adds one
 * level), PC_EOWNERDEAD (the caller owns it, and is the first owner since
 * one ended holding it: repair what it guards), PC_ETIMEDOUT, PC_ECLOSED
 * (freed while waiting), PC_EPERM (timeout not 0 in a light-actor or exit
 * handler), PC_ESTATE (the owner of a non-recursive lock asked to wait for
 * it: that would never end; with timeout 0 it gets PC_ETIMEDOUT),
 * PC_EINVAL, PC_ENOMEM. Tasks and foreign threads; light actors and exit
 * handlers with timeout 0. */
pc_err pc_lock_acquire(pc_lock *l, double timeout);

/* Release one level of l; at the last one the lock goes to the first
 * waiter, if any. Returns PC_OK, or PC_EPERM when the caller doesn't own it,
 * PC_EINVAL. Any thread (the owner). */
pc_err pc_lock_release(pc_lock *l);

/* ---- conditions ------------------------------------------------------------ */

/* A condition variable with its own recursive lock (pycos Condition). */
typedef struct pc_cond pc_cond;

/* Create a condition into *out. Returns PC_OK, PC_EINVAL, PC_ENOMEM. The
 * caller owns *out and frees it with pc_cond_free(). Any thread. */
pc_err pc_cond_new(pc_cond **out);

/* Free *c and set *c to NULL (NULL or *c NULL: nothing). Tasks waiting for
 * a notification or for its lock get PC_ECLOSED. Any thread. */
void pc_cond_free(pc_cond **c);

/* Acquire / release c's lock: as pc_lock_acquire() / pc_lock_release() on a
 * recursive lock (robust too: PC_EOWNERDEAD). */
pc_err pc_cond_acquire(pc_cond *c, double timeout);
pc_err pc_cond_release(pc_cond *c);

/* Release c's lock fully (all levels), wait up to `timeout` seconds for a
 * notification, then acquire the lock again at the level it had (waiting as
 * long as that takes, also after a timeout). Timeout 0 can't be notified (a
 * notification is never kept for later): it returns PC_ETIMEDOUT at once
 * and never lets the lock go. Returns PC_OK (notified), PC_ETIMEDOUT (not
 * notified; the lock is held again all the same), PC_EOWNERDEAD (the lock
 * is held again, got from an owner that ended holding it; notified or not
 * is not known: check the condition as after any wake-up), PC_EPERM (the
 * caller doesn't hold the lock, or timeout not 0 in a light-actor or exit
 * handler), PC_ECLOSED (c was freed; nothing is held), PC_EINVAL, PC_ENOMEM
 * (the lock is still held). Tasks and foreign threads; light actors and
 * exit handlers with timeout 0. */
pc_err pc_cond_wait(pc_cond *c, double timeout);

/* Wake up to n of the tasks waiting in pc_cond_wait(), oldest first; each
 * then waits for the lock, behind those already waiting for it. The caller
 * must hold the lock. Returns PC_OK (also when nobody waits), PC_EPERM (not
 * the owner), PC_EINVAL. Any thread (the owner). */
pc_err pc_cond_notify(pc_cond *c, unsigned n);

/* pc_cond_notify() for every waiter. */
pc_err pc_cond_notify_all(pc_cond *c);

/* ---- events ---------------------------------------------------------------- */

/* A flag tasks can wait to see set (pycos Event). */
typedef struct pc_event pc_event;

/* Create a cleared event into *out. Returns PC_OK, PC_EINVAL, PC_ENOMEM.
 * The caller owns *out and frees it with pc_event_free(). Any thread. */
pc_err pc_event_new(pc_event **out);

/* Free *e and set *e to NULL (NULL or *e NULL: nothing). Waiters get
 * PC_ECLOSED. Any thread. */
void pc_event_free(pc_event **e);

/* Set the flag and wake every waiter (a pc_event_clear() right after does
 * not stop them). Returns PC_OK or PC_EINVAL. Any thread. */
pc_err pc_event_set(pc_event *e);

/* Clear the flag. Returns PC_OK or PC_EINVAL. Any thread. */
pc_err pc_event_clear(pc_event *e);

/* Whether the flag is set (false for NULL). Any thread. */
bool pc_event_is_set(const pc_event *e);

/* Return PC_OK at once when e is set, else wait up to `timeout` seconds for
 * pc_event_set(). Returns PC_OK, PC_ETIMEDOUT, PC_ECLOSED, PC_EPERM (timeout
 * not 0 in a light-actor handler), PC_EINVAL, PC_ENOMEM. Tasks and foreign
 * threads; light actors with timeout 0. */
pc_err pc_event_wait(pc_event *e, double timeout);

/* ---- semaphores ------------------------------------------------------------ */

/* A counting semaphore (pycos Semaphore, plus a timeout on acquire). */
typedef struct pc_sem pc_sem;

/* Create a semaphore with `value` free units into *out (0 is allowed: the
 * first acquire then waits for a release). Returns PC_OK, PC_EINVAL,
 * PC_ENOMEM. The caller owns *out and frees it with pc_sem_free(). Any
 * thread. */
pc_err pc_sem_new(pc_sem **out, unsigned value);

/* Free *s and set *s to NULL (NULL or *s NULL: nothing). Waiters get
 * PC_ECLOSED. Any thread. */
void pc_sem_free(pc_sem **s);

/* Take one unit, waiting up to `timeout` seconds for one (negative:
 * forever, 0: try). Returns PC_OK, PC_ETIMEDOUT, PC_ECLOSED, PC_EPERM
 * (timeout not 0 in a light-actor handler), PC_EINVAL, PC_ENOMEM. Tasks and
 * foreign threads; light actors with timeout 0. */
pc_err pc_sem_acquire(pc_sem *s, double timeout);

/* Give back one unit: to the first waiter if any, else to the count. Units
 * are not tied to who took them (anyone may release). Returns PC_OK,
 * PC_ETOOBIG (the count is already UINT_MAX), PC_EINVAL. Any thread. */
pc_err pc_sem_release(pc_sem *s);

/* The free units now (0 while tasks wait). Any thread. */
unsigned pc_sem_value(const pc_sem *s);

#ifdef __cplusplus
}
#endif
#endif
