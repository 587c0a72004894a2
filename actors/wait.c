/* actors/wait.c — the clock, and waiting for an answer from another thread.
 *
 * A task waits by switching away (pc__task_wait in task.c); a foreign thread
 * (main(), a pool thread) waits on a refcounted mutex + condvar, pc__sync.
 * pc__wake() is the one way to answer either: it finds the waiter's worker
 * and, when that is another thread's, posts a REPLY envelope there, so the
 * task is only ever woken by its own worker. Each task wait carries a fresh
 * token (never 0: 0 means "no ack wanted"), so a late answer to a wait the
 * task has given up is dropped instead of waking the next wait.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

double
pc_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t
pc_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

double
pc_deadline(double timeout)
{
    return timeout < 0 ? INFINITY : pc_now() + timeout;
}

double
pc_deadline_left(double deadline)
{
    double left;

    if (isinf(deadline))
        return -1;
    left = deadline - pc_now();
    return left > 0 ? left : 0;
}

static pc__sync *
sync_new(void)
{
    pc__sync *s = calloc(1, sizeof *s);
    pthread_condattr_t ca;

    if (!s)
        return NULL;
    atomic_init(&s->refs, 1);
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    return s;
}

void
pc__sync_unref(pc__sync *s)
{
    if (s && atomic_fetch_sub(&s->refs, 1) == 1) {
        pc_msg_free(&s->msg);
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        free(s);
    }
}

void
pc__sync_post(pc__sync *s, int rc, pc_msg *msg)
{
    pthread_mutex_lock(&s->mu);
    if (!s->done) {
        s->done = true;
        s->rc = rc;
        s->msg = msg;
        msg = NULL;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    pc_msg_free(&msg);
}

void
pc__deadline_ts(double timeout, struct timespec *ts)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    double t = (double)ts->tv_sec + (double)ts->tv_nsec * 1e-9 + timeout;
    ts->tv_sec = (time_t)t;
    ts->tv_nsec = (long)((t - (double)ts->tv_sec) * 1e9);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Wait up to timeout (negative: forever); returns the posted rc or
 * PC_ETIMEDOUT; on PC_OK-like results *msg gets the posted message. */
static int
sync_wait(pc__sync *s, double timeout, pc_msg **msg)
{
    struct timespec ts;
    int rc;

    if (timeout >= 0)
        pc__deadline_ts(timeout, &ts);
    pthread_mutex_lock(&s->mu);
    while (!s->done) {
        if (timeout < 0) {
            pthread_cond_wait(&s->cv, &s->mu);
        } else if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT) {
            break;
        }
    }
    if (s->done) {
        rc = s->rc;
        if (msg) {
            *msg = s->msg;
            s->msg = NULL;
        }
    } else {
        rc = PC_ETIMEDOUT;
        s->done = true; /* a late post frees its message */
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Send a reply (join result, deliver ack) to a waiter; consumes msg. */
void
pc__reply(pc__reply_to rt, int rc, pc_msg *msg)
{
    pc__wake(rt, rc, msg, NULL);
}

void
pc__wake(pc__reply_to rt, int rc, pc_msg *msg, void *ptr)
{
    pc__worker *w = pc__tls_worker;
    pc__slot *s;

    if (rt.sync) {
        rt.sync->ptr = ptr; /* read by the waiter only after the post */
        pc__sync_post(rt.sync, rc, msg);
        pc__sync_unref(rt.sync);
        return;
    }
    if (!(s = pc__slot_of(rt.task))) {
        pc_msg_free(&msg);
        return;
    }
    pc__worker *tw = pc__slot_worker(s);
    if (tw == w) {
        pc__task *t = (pc__task *)pc__proc_lookup(w, rt.task);
        if (t && t->p.state == PC__ST_AWAIT_REPLY && t->token == rt.token) {
            pc_msg_free(&t->reply_msg);
            t->reply_msg = msg;
            t->wake_val = ptr;
            pc__task_wake(t, rc);
        } else {
            pc_msg_free(&msg);
        }
        return;
    }
    pc__env *e = pc__env_new(PC__ENV_REPLY);
    if (!e) {
        pc_msg_free(&msg);
        return;
    }
    e->rc = rc;
    e->msg = msg;
    e->ptr = ptr;
    e->rt = rt;
    pc__env_push(tw, e);
}

int
pc__request_keep(pc__worker *tw, pc__env *e, double timeout, pc_msg **reply,
                 pc__reply_to *gave_up)
{
    pc__worker *w = pc__tls_worker;
    pc__task *t = pc__cur_task(w);
    int rc;

    if (t) {
        e->rt.task = pc__proc_ref(&t->p);
        e->rt.token = pc__task_token(t);
        if (gave_up)
            *gave_up = e->rt;
        pc__env_push(tw, e);
        rc = pc__task_wait(w, t, PC__ST_AWAIT_REPLY, timeout);
        if (reply) {
            *reply = t->reply_msg;
            t->reply_msg = NULL;
        } else {
            pc_msg_free(&t->reply_msg);
        }
        return rc;
    }
    pc__sync *s = sync_new();
    if (!s) {
        pc_msg_free(&e->msg);
        pc__env_free(e);
        return PC_ENOMEM;
    }
    atomic_fetch_add(&s->refs, 1); /* one for the envelope's reply */
    e->rt.sync = s;
    pc__env_push(tw, e);
    rc = sync_wait(s, timeout, reply);
    if (rc == PC_ETIMEDOUT && gave_up)
        *gave_up = (pc__reply_to){.sync = s}; /* our reference goes with it */
    else
        pc__sync_unref(s);
    return rc;
}

int
pc__request(pc__worker *tw, pc__env *e, double timeout, pc_msg **reply)
{
    return pc__request_keep(tw, e, timeout, reply, NULL);
}

int
pc__wait_prepare(pc__reply_to *rt)
{
    pc__worker *w = pc__tls_worker;
    pc__task *t = pc__cur_task(w);

    memset(rt, 0, sizeof *rt);
    if (t) {
        rt->task = pc__proc_ref(&t->p);
        rt->token = pc__task_token(t);
        return PC_OK;
    }
    if (w && w->cur)
        return PC_EPERM; /* a light actor can't block */
    if (!(rt->sync = sync_new()))
        return PC_ENOMEM;
    atomic_fetch_add(&rt->sync->refs, 1); /* the waker's */
    return PC_OK;
}

int
pc__wait_block_msg(pc__reply_to *rt, double timeout, void **ptr, pc_msg **msg)
{
    pc__worker *w = pc__tls_worker;
    int rc;

    if (ptr)
        *ptr = NULL;
    if (msg)
        *msg = NULL;
    if (rt->sync) {
        rc = sync_wait(rt->sync, timeout, msg);
        if (ptr && rc != PC_ETIMEDOUT)
            *ptr = rt->sync->ptr;
        pc__sync_unref(rt->sync); /* the waiter's */
        return rc;
    }
    pc__task *t = pc__cur_task(w);
    if (timeout == 0)
        return PC_ETIMEDOUT;
    t->wake_val = NULL;
    rc = pc__task_wait(w, t, PC__ST_AWAIT_REPLY, timeout);
    if (msg) {
        *msg = t->reply_msg;
        t->reply_msg = NULL;
    } else {
        pc_msg_free(&t->reply_msg);
    }
    if (ptr && rc != PC_ETIMEDOUT)
        *ptr = t->wake_val;
    return rc;
}

int
pc__wait_block(pc__reply_to *rt, double timeout, void **ptr)
{
    return pc__wait_block_msg(rt, timeout, ptr, NULL);
}

void
pc__wait_drop(pc__reply_to *rt)
{
    if (rt->sync)
        pc__sync_unref(rt->sync); /* the waker's: it will never wake */
}

bool
pc__wait_gone(const pc__reply_to *rt)
{
    return !rt->sync && !pc_ref_is_nil(rt->task) && !pc_alive(rt->task);
}

void
pc__wait_cancel(pc__reply_to *rt)
{
    if (rt->sync) {
        pc__sync_unref(rt->sync); /* the waker's */
        pc__sync_unref(rt->sync); /* and the waiter's */
        rt->sync = NULL;
    }
}
