/* actors/task.c — tasks: stackful coroutines, their waits and messaging.
 *
 * A task runs on its own stack (from the worker's pool, taken when it first
 * runs) or, in small-memory mode, on the worker's one shared stack: its
 * frames are copied out only when another small task needs the stack, and
 * copied back before it runs again, so an idle small task costs just the
 * bytes its frames use.
 *
 * Every blocking call is the same three steps: record what the task waits
 * for (its state), arm a timer if it has a timeout, and switch away. The
 * matching event — and only that one (PYCOS_SPEC §0) — puts it back on the
 * run queue with a result code: a message wakes only PC__ST_AWAIT_MSG,
 * pc_resume() only PC__ST_SUSPENDED, fd readiness only PC__ST_AWAIT_FD,
 * replies (join results, deliver acks) only PC__ST_AWAIT_REPLY with the
 * matching token. A blocking task switches directly to the next runnable
 * task when it can, and to the scheduler context otherwise (when the next
 * proc is a light actor, when two small tasks would share the stack, when
 * the switch budget is spent, or when the task ends: its stack can only be
 * released from another stack).
 *
 * Timeouts are lazy. A wait records its deadline and arms the task's timer
 * only when no armed timer would fire before that deadline; a wake by the
 * awaited event leaves the timer armed. When the timer fires, the callback
 * compares the clock with the current deadline and either times the wait
 * out or re-arms for the rest. A request/reply loop with a timeout on every
 * receive thus costs one clock read per wait, not a heap insert and delete.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#ifdef PC__ASAN
#include <sanitizer/asan_interface.h>
#endif

/* Small mode copies raw stack memory, which ASan's shadow and the ucontext
 * fallback's approximate stack pointer can't follow: there, small tasks get
 * a private stack instead. */
#if defined(PC__ASAN) || defined(PC__CTX_UCONTEXT)
#define SMALL_MODE 0
#else
#define SMALL_MODE 1
#endif

/* Switch from the running context (saved into `from`) to task `to`, or to
 * the scheduler when `to` is NULL. Returns when someone switches back. */
static void
go(pc__worker *w, pc__ctx *from, pc__task *to, bool dying)
{
#ifdef PC__ASAN
    void *fake = NULL;
    const void *lo = to ? (void *)to->stack->lo : w->sched_stack_lo;
    size_t size = to ? to->stack->size : w->sched_stack_size;
    __sanitizer_start_switch_fiber(dying ? NULL : &fake, lo, size);
#endif
#ifdef PC__TSAN
    __tsan_switch_to_fiber(to ? to->fiber : w->sched_fiber, 0);
#endif
    (void)dying;
    w->cur = to ? &to->p : NULL;
    pc__ctx_switch(from, to ? &to->ctx : &w->sched_ctx);
#ifdef PC__ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
}

static void task_entry(void);

static char *
shared_top(pc__worker *w)
{
    return w->shared->lo + w->shared->size;
}

/* Put t's frames on the shared stack, saving the current owner's first.
 * Never called while running on the shared stack. */
static bool
shared_claim(pc__worker *w, pc__task *t)
{
    pc__task *o = w->shared_owner;

    if (o == t)
        return true;
    if (!w->shared && !(w->shared = pc__stack_get(&w->pool, w->shared_size)))
        return false;
    if (o) {
        size_t len = (size_t)(shared_top(w) - (char *)o->ctx.sp);
        if (!o->save || len > o->save->cap) {
            pc__save *nb = realloc(o->save, sizeof *nb + len);
            if (!nb)
                return false;
            o->save = nb;
            o->save->cap = len;
        }
        memcpy(o->save->data, o->ctx.sp, len);
        o->save->len = len;
    }
    w->shared_owner = t;
    if (t->ctx.sp) {
        memcpy(shared_top(w) - t->save->len, t->save->data, t->save->len);
    } else {
        pc__ctx_make(&t->ctx, w->shared->lo, w->shared->size, task_entry);
    }
    return true;
}

/* Make t runnable on a stack: first run takes one, a small task claims the
 * shared one. On failure t is left as it was. */
static bool
prepare(pc__worker *w, pc__task *t)
{
#ifdef PC__TSAN
    if (!t->fiber)
        t->fiber = __tsan_create_fiber(0);
#endif
    if (t->p.small)
        return shared_claim(w, t);
    if (!t->ctx.sp) {
        if (!t->stack && !(t->stack = pc__stack_get(&w->pool, t->stack_size)))
            return false;
        pc__ctx_make(&t->ctx, t->stack->lo, t->stack->size - t->stack->color,
                     task_entry);
    }
    return true;
}

/* The running task t has recorded its wait (or is on the run queue after a
 * yield): run something else until t is woken. */
static void
schedule_out(pc__worker *w, pc__task *t)
{
    pc__proc *next = w->rq_head;

    pc__stack_check(t->stack, __builtin_frame_address(0), &t->p);
    if (next == &t->p && w->budget > 0) { /* yield with nobody else ready */
        w->budget--;
        pc__runq_pop(w);
        t->p.state = PC__ST_RUNNING;
        return;
    }
    if (next && next->kind == PC__TASK && !next->killed && w->budget > 0 &&
        !(next->small && t->p.small)) {
        pc__task *n = (pc__task *)next;
        /* prepare() only for a first run or a small task: not the call */
        if ((!next->small && n->ctx.sp) || prepare(w, n)) {
            w->budget--;
            pc__runq_pop(w);
            next->state = PC__ST_RUNNING;
            go(w, &t->ctx, n, false);
            return;
        }
    }
    go(w, &t->ctx, NULL, false);
}

/* From the scheduler loop: run task t until it switches back here. */
void
pc__task_run(pc__worker *w, pc__task *t)
{
    if (!prepare(w, t)) {
        PC_LOG_ERROR("actors", "no memory for the stack of task '%s'",
                     pc__proc_name(&t->p) ? pc__proc_name(&t->p) : "");
        pc__proc_finish(w, &t->p, PC_ENOMEM, NULL);
        return;
    }
    t->p.state = PC__ST_RUNNING;
    go(w, &w->sched_ctx, t, false);
    if (w->reborn) { /* hot-swapped: its old frames are abandoned */
        pc__task *r = w->reborn;
        w->reborn = NULL;
        r->ctx.sp = NULL; /* prepare() makes a fresh context */
#ifdef PC__TSAN
        __tsan_destroy_fiber(r->fiber); /* its shadow stack is abandoned */
        r->fiber = NULL;
#endif
#ifdef PC__ASAN
        __asan_unpoison_memory_region(r->stack->lo, r->stack->size);
#endif
        pc__runq_push(w, &r->p);
    }
    if (w->dead) { /* a task ended; now off its stack, release it */
        pc__task *d = w->dead;
        w->dead = NULL;
#ifdef PC__TSAN
        __tsan_destroy_fiber(d->fiber);
        d->fiber = NULL;
#endif
        pc_msg *v = w->dead_val;
        w->dead_val = NULL;
        pc__proc_finish(w, &d->p, w->dead_rc, v);
    }
}

static void
task_entry(void)
{
    pc__worker *w = pc__tls_worker;
#ifdef PC__ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    pc__task *t = (pc__task *)w->cur;
    pc_msg *v = t->fn(t->arg);
    pc__task_exit(pc__tls_worker, t, PC_OK, v);
}

void
pc__task_exit(pc__worker *w, pc__task *t, int rc, pc_msg *value)
{
    pc__stack_check(t->stack, __builtin_frame_address(0), &t->p);
    w->dead_rc = rc;
    w->dead_val = value;
    w->dead = t;
    if (w->shared_owner == t)
        w->shared_owner = NULL; /* its frames are garbage now */
    go(w, &t->ctx, NULL, true);
    abort(); /* never resumed */
}

void
pc__task_rebirth(pc__worker *w, pc__task *t)
{
    w->reborn = t;
    if (w->shared_owner == t)
        w->shared_owner = NULL; /* its frames are garbage now */
    if (t->save)
        t->save->len = 0;
    go(w, &t->ctx, NULL, true);
    abort(); /* never resumed: the scheduler starts it afresh */
}

void
pc__task_release(pc__worker *w, pc__task *t)
{
    pc__mb_sender_gone(t); /* blocked in pc_send: its turn goes on */
    if (t->x) {
        if (ev_is_active(&t->x->timer))
            ev_timer_stop(w->loop, &t->x->timer);
        if (ev_is_active(&t->x->io))
            ev_io_stop(w->loop, &t->x->io);
        free(t->x);
        t->x = NULL;
    }
    pc__stack_check_end(t->stack, pc__proc_name(&t->p));
    pc__stack_put(&w->pool, &t->stack);
    if (w->shared_owner == t)
        w->shared_owner = NULL;
    free(t->save);
    t->save = NULL;
    pc_msg_free(&t->reply_msg);
#ifdef PC__TSAN
    if (t->fiber && t != (pc__task *)w->cur) {
        __tsan_destroy_fiber(t->fiber);
        t->fiber = NULL;
    }
#endif
}

void
pc__task_wake_x(pc__task *t)
{
    t->x->deadline = 0; /* the timer stays armed; its callback sees it */
    if (ev_is_active(&t->x->io))
        ev_io_stop(t->p.w->loop, &t->x->io);
}

static void
timer_arm(pc__worker *w, pc__task_x *x, double in)
{
    if (ev_is_active(&x->timer))
        ev_timer_stop(w->loop, &x->timer);
    /* libev adds `in` to its loop time, which may lag: then it fires early
     * and timer_cb re-arms. It never fires late. */
    ev_timer_set(&x->timer, in, 0.);
    ev_timer_start(w->loop, &x->timer);
    x->armed = x->deadline;
}

static void
timer_cb(struct ev_loop *loop, ev_timer *tm, int revents)
{
    pc__task_x *x = PC__CONTAINER(tm, pc__task_x, timer);
    double now;

    (void)loop;
    (void)revents;
    if (x->deadline == 0)
        return; /* woken by its event meanwhile: nothing to time out */
    now = pc_now();
    if (now >= x->deadline)
        pc__task_wake(x->t, PC_ETIMEDOUT);
    else
        timer_arm(x->t->p.w, x, x->deadline - now);
}

pc__task_x *
pc__task_x_get(pc__task *t)
{
    if (!t->x && (t->x = calloc(1, sizeof *t->x))) {
        t->x->t = t;
        ev_init(&t->x->timer, timer_cb);
        pc__fd_io_init(t->x);
    }
    return t->x;
}

/* pc__task_wait(), inline in pc_recv(): one stack frame for the receive
 * and the wait. */
static inline __attribute__((always_inline)) int
task_wait(pc__worker *w, pc__task *t, int state, double timeout)
{
    if (timeout >= 0) {
        pc__task_x *x = pc__task_x_get(t);
        if (!x)
            return PC_ENOMEM; /* no timer: don't wait for ever instead */
        x->deadline = pc_now() + timeout;
        if (!ev_is_active(&x->timer) || x->armed > x->deadline)
            timer_arm(w, x, timeout);
    }
    t->p.state = (uint8_t)state;
    schedule_out(w, t);
    return t->wake_rc;
}

int
pc__task_wait(pc__worker *w, pc__task *t, int state, double timeout)
{
    return task_wait(w, t, state, timeout);
}

pc_err
pc_recv(pc_msg **out, double timeout)
{
    pc__worker *w = pc__tls_worker;
    pc__task *t = pc__cur_task(w);
    int rc;

    if (!out)
        return PC_EINVAL;
    *out = NULL;
    if (!t)
        return PC_EPERM;
    if (t->x && (*out = pc__swap_offer(t))) /* no extension: no swap */
        return PC_OK;
    if (pc__mb_len(&t->p)) {
        *out = pc__mb_pop_fast(&t->p);
        pc__count(&w->st.received, 1);
        return PC_OK;
    }
    if (timeout == 0)
        return PC_ETIMEDOUT;
    rc = task_wait(w, t, PC__ST_AWAIT_MSG, timeout);
    if (t->x && (*out = pc__swap_offer(t)))
        return PC_OK;      /* woken for a hot swap */
    if (pc__mb_len(&t->p)) /* a message that raced the timer counts */
        rc = PC_OK;
    if (rc == PC_OK) {
        *out = pc__mb_pop_fast(&t->p);
        pc__count(&w->st.received, 1);
    }
    return rc;
}

pc_err
pc_spawn(pc_task_fn fn, void *arg, const pc_spawn_opts *opts, pc_ref *ref)
{
    pc__task *t;
    int worker;
    pc_err rc;

    if (!fn)
        return pc__the_node ? PC_EINVAL : PC_ESTATE;
    if ((rc = pc__proc_new(PC__TASK, sizeof *t, opts, (pc__proc **)&t,
                           &worker)) != PC_OK)
        return rc;
    t->p.small = SMALL_MODE && opts && (opts->flags & PC_TASK_SMALL) != 0;
    t->stack_size = opts ? opts->stack_size : 0;
    t->fn = fn;
    t->arg = arg;
    if (ref)
        *ref = pc__proc_ref(&t->p); /* before publishing: it may end at once */
    pc__publish(&t->p, worker);
    return PC_OK;
}

pc_ref
pc_self(void)
{
    pc__worker *w = pc__tls_worker;

    return (w && w->cur) ? pc__proc_ref(w->cur) : PC_REF_NIL;
}

const char *
pc_self_name(void)
{
    pc__worker *w = pc__tls_worker;

    return (w && w->cur && pc__proc_name(w->cur)) ? pc__proc_name(w->cur) : "";
}

bool
pc_in_task(void)
{
    return pc__cur_task(pc__tls_worker) != NULL;
}

pc_err
pc_yield(void)
{
    pc__worker *w = pc__tls_worker;
    pc__task *t = pc__cur_task(w);

    if (!t)
        return PC_EPERM;
    pc__runq_push(w, &t->p);
    schedule_out(w, t);
    return PC_OK;
}

pc_err
pc_suspend(double timeout, void **value)
{
    pc__worker *w = pc__tls_worker;
    pc__task *t = pc__cur_task(w);
    int rc;

    if (value)
        *value = NULL;
    if (!t)
        return PC_EPERM;
    if (timeout == 0)
        return PC_ETIMEDOUT;
    t->wake_val = NULL;
    rc = pc__task_wait(w, t, PC__ST_SUSPENDED, timeout);
    if (rc == PC_OK && value)
        *value = t->wake_val;
    return rc;
}

pc_err
pc_sleep(double secs)
{
    pc_err rc;

    if (secs <= 0)
        return pc_yield();
    rc = pc_suspend(secs, NULL);
    return rc == PC_ETIMEDOUT ? PC_OK : rc == PC_OK ? PC_EINTR : rc;
}

void
pc__resume_local(pc__worker *w, pc__env *e)
{
    pc__proc *p = pc__proc_lookup(w, e->to);

    if (p && p->kind == PC__TASK && p->state == PC__ST_SUSPENDED) {
        ((pc__task *)p)->wake_val = e->ptr;
        pc__task_wake((pc__task *)p, PC_OK);
    }
}

pc_err
pc_resume(pc_ref ref, void *value)
{
    return pc__at_owner(
        &(pc__env){.kind = PC__ENV_RESUME, .to = ref, .ptr = value});
}
