/* actors/fd.c — pc_wait_fd: a task waits for an fd, its worker runs others.
 *
 * The task's own ev_io watcher is set to the fd and started for the wait;
 * readiness wakes only a task in PC__ST_AWAIT_FD. pc_wait_fd_cancel() wakes
 * it early with PC_ECLOSED (sockets being closed by another task). Each
 * wait has an id (pc_wait_fd_next() tells the next one), and a cancel names
 * the wait it is for: one that arrives after its task left that wait does
 * nothing to the task's next wait.
 */
#include <poll.h>

#include "internal.h"

static void
io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    pc__task *t = PC__CONTAINER(io, pc__task_x, io)->t;

    (void)loop;
    if (t->p.state != PC__ST_AWAIT_FD)
        return;
    t->wake_val = (void *)(intptr_t)(((revents & EV_READ) ? PC_READ : 0) |
                                     ((revents & EV_WRITE) ? PC_WRITE : 0));
    pc__task_wake(t, PC_OK);
}

pc_err
pc_wait_fd(int fd, int events, double timeout, int *revents)
{
    pc__worker *w = pc__tls_worker;
    pc__task *t = pc__cur_task(w);
    int rc;

    if (revents)
        *revents = 0;
    if (fd < 0 || !events || (events & ~(PC_READ | PC_WRITE)))
        return PC_EINVAL;
    if (!t)
        return PC_EPERM;
    if (timeout == 0) {
        struct pollfd pfd = {fd,
                             (short)(((events & PC_READ) ? POLLIN : 0) |
                                     ((events & PC_WRITE) ? POLLOUT : 0)),
                             0};
        if (poll(&pfd, 1, 0) <= 0)
            return PC_ETIMEDOUT;
        if (revents)
            *revents =
                ((pfd.revents & (POLLIN | POLLHUP | POLLERR))
                     ? (events & PC_READ)
                     : 0) |
                ((pfd.revents & (POLLOUT | POLLERR)) ? (events & PC_WRITE) : 0);
        return PC_OK;
    }
    uint32_t id = pc_wait_fd_next(); /* the id it promised */
    pc__task_x *x = pc__task_x_get(t);
    if (!x)
        return PC_ENOMEM;
    x->fd_wait = id;
    ev_io_set(&x->io, fd,
              ((events & PC_READ) ? EV_READ : 0) |
                  ((events & PC_WRITE) ? EV_WRITE : 0));
    ev_io_start(w->loop, &x->io);
    rc = pc__task_wait(w, t, PC__ST_AWAIT_FD, timeout);
    if (rc == PC_OK && revents)
        *revents = (int)(intptr_t)t->wake_val;
    return rc;
}

void
pc__fd_io_init(pc__task_x *x)
{
    ev_init(&x->io, io_cb);
}

uint32_t
pc_wait_fd_next(void)
{
    pc__task *t = pc__cur_task(pc__tls_worker);

    if (!t)
        return 0;
    uint32_t last = t->x ? t->x->fd_wait : 0;

    return last + 1 ? last + 1 : 1;
}

void
pc__fd_cancel_local(pc__worker *w, pc__env *e)
{
    pc__proc *p = pc__proc_lookup(w, e->to);

    if (p && p->kind == PC__TASK && p->state == PC__ST_AWAIT_FD &&
        ((pc__task *)p)->x->fd_wait == e->rt.token)
        pc__task_wake((pc__task *)p, PC_ECLOSED);
}

pc_err
pc_wait_fd_cancel(pc_ref ref, uint32_t wait)
{
    if (!wait)
        return PC_EINVAL;
    return pc__at_owner(&(pc__env){
        .kind = PC__ENV_FD_CANCEL, .to = ref, .rt = {.token = wait}});
}
