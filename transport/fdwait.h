/* transport/fdwait.h — closable, reference-counted objects whose fd tasks
 * wait on (sockets and TLS connections).
 *
 * Any task may close such an object while others wait in pc_wait_fd() on
 * its fd. The object keeps the refs of its waiting tasks under its own lock
 * (never held across a wait); close marks it closed and cancels every wait
 * (pc_wait_fd_cancel), so the waiters return PC_ECLOSED.
 *
 * References: holders own one each, and a call holds one more from
 * tp_obj_enter() to tp_obj_leave(), so the fd (under a libev watcher) and
 * the memory outlive every call in progress. A call can be stopped for good
 * only where it waits (pc_task_terminate() removes a task at its wait), and
 * there it is registered: a registered task that is no longer alive
 * (pc_alive(), false only after its watcher has been stopped) left its call
 * reference behind, and whoever finds it drops it — the close, the release,
 * or the sweep of the watch list. The watch list holds the objects that
 * may still have such a waiter although nobody will touch them again:
 * closed objects with waiters left, and connecting sockets not yet handed
 * to anyone. */
#ifndef PICOS_TRANSPORT_FDWAIT_H
#define PICOS_TRANSPORT_FDWAIT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "picos/node.h"
#include "picos/task.h"

typedef struct tp_obj tp_obj;

/* A task in a registered wait, and that pc_wait_fd()'s id (0: a sleep). */
typedef struct tp_waiter {
    pc_ref task;
    uint32_t wait;
} tp_waiter;

struct tp_obj {
    atomic_int refs;
    atomic_bool closed;
    pthread_mutex_t lock;
    tp_waiter *waiters; /* tasks in a registered wait; under lock */
    size_t n, cap;
    void (*destroy)(tp_obj *o);      /* the last reference went */
    tp_obj *watch_prev, *watch_next; /* under the watch list's lock */
    bool watched;
};

/* One reference (the creator's); destroy runs when the last one goes and
 * must call tp_obj_fini(). */
void tp_obj_init(tp_obj *o, void (*destroy)(tp_obj *o));
void tp_obj_fini(tp_obj *o);

void tp_obj_retain(tp_obj *o);
void tp_obj_unref(tp_obj *o);

static inline bool
tp_obj_closed(const tp_obj *o)
{
    return atomic_load(&o->closed);
}

/* Start a call: PC_EINVAL (o NULL), PC_EPERM (not a task), PC_ECLOSED,
 * else PC_OK with a reference held until tp_obj_leave(), which returns
 * rc. */
pc_err tp_obj_enter(tp_obj *o);
pc_err tp_obj_leave(tp_obj *o, pc_err rc);

/* Wait for `ev` on fd until `deadline`, registered so that a close wakes
 * us; PC_ECLOSED once o is closed. Inside a call (entered). */
pc_err tp_obj_wait(tp_obj *o, int fd, int ev, double deadline);

/* pc_sleep(secs), registered as a waiter (for polling). */
pc_err tp_obj_sleep(tp_obj *o, double secs);

/* Close o for every holder: on the first close, on_close(o) (may be NULL)
 * runs under o's lock, then every registered wait is cancelled. Then drop
 * the caller's reference. Any thread. */
void tp_obj_close(tp_obj *o, void (*on_close)(tp_obj *o));

/* Drop the caller's reference without closing. Any thread. */
void tp_obj_release(tp_obj *o);

/* Put o on the watch list (a reference of its own) / take it off. */
void tp_obj_watch(tp_obj *o);
void tp_obj_unwatch(tp_obj *o);

#endif
