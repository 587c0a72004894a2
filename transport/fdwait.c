/* transport/fdwait.c — the closable fd wait shared by sockets and TLS.
 *
 * A waiter registers its task ref under the owner's lock, waits in
 * pc_wait_fd() without the lock, and unregisters. A close cancels every
 * registered wait, named by its id, so a cancel that arrives after its
 * task left that wait does nothing to the task's next one. */
#include "fdwait.h"

#include <stdlib.h>

double
tp_deadline(double timeout)
{
    return timeout < 0 ? -1 : pc_now() + timeout;
}

double
tp_left(double deadline)
{
    double r;

    if (deadline < 0)
        return -1;
    r = deadline - pc_now();
    return r > 0 ? r : 0;
}

pc_err
tp_wait_fd(tp_waiters *w, pthread_mutex_t *lock, const atomic_bool *closed,
           int fd, int ev, double deadline)
{
    tp_waiter me = {pc_self(), pc_wait_fd_next()};
    bool was_closed;
    pc_err rc;

    pthread_mutex_lock(lock);
    if (atomic_load(closed)) {
        pthread_mutex_unlock(lock);
        return PC_ECLOSED;
    }
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 4;
        tp_waiter *r = realloc(w->refs, cap * sizeof *r);
        if (!r) {
            pthread_mutex_unlock(lock);
            return PC_ENOMEM;
        }
        w->refs = r;
        w->cap = cap;
    }
    w->refs[w->n++] = me;
    pthread_mutex_unlock(lock);

    rc = pc_wait_fd(fd, ev, tp_left(deadline), NULL);

    pthread_mutex_lock(lock);
    for (size_t i = 0; i < w->n; i++) {
        if (w->refs[i].wait == me.wait && pc_ref_eq(w->refs[i].task, me.task)) {
            w->refs[i] = w->refs[--w->n];
            break;
        }
    }
    was_closed = atomic_load(closed);
    pthread_mutex_unlock(lock);
    return was_closed ? PC_ECLOSED : rc;
}

void
tp_waiters_cancel(tp_waiters *w)
{
    for (size_t i = 0; i < w->n; i++)
        pc_wait_fd_cancel(w->refs[i].task, w->refs[i].wait);
}

void
tp_waiters_free(tp_waiters *w)
{
    free(w->refs);
    w->refs = NULL;
    w->n = w->cap = 0;
}
