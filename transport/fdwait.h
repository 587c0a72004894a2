/* transport/fdwait.h — waiting on an fd that another task may close.
 *
 * Sockets and TLS connections let any task close them while others wait in
 * pc_wait_fd() on their fd. The object keeps the refs of its waiting tasks
 * here, under its own lock; close marks it closed and cancels every wait
 * (pc_wait_fd_cancel), so the waiters return PC_ECLOSED. */
#ifndef PICOS_TRANSPORT_FDWAIT_H
#define PICOS_TRANSPORT_FDWAIT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "picos/node.h"
#include "picos/task.h"

typedef struct tp_waiter {
    pc_ref task;
    uint32_t wait; /* its pc_wait_fd()'s id */
} tp_waiter;

typedef struct tp_waiters {
    tp_waiter *refs; /* tasks in pc_wait_fd() on the fd; under the lock */
    size_t n, cap;
} tp_waiters;

/* Absolute deadline for a timeout (negative: none), and seconds left until
 * it (-1: forever; 0: only poll). */
double tp_deadline(double timeout);
double tp_left(double deadline);

/* Wait for `ev` on fd until `deadline`, registered in w (guarded by lock)
 * so that a close wakes us; PC_ECLOSED once *closed is set. */
pc_err tp_wait_fd(tp_waiters *w, pthread_mutex_t *lock,
                  const atomic_bool *closed, int fd, int ev, double deadline);

/* Cancel every registered wait; call with the lock held, after setting
 * closed. */
void tp_waiters_cancel(tp_waiters *w);

void tp_waiters_free(tp_waiters *w);

#endif
