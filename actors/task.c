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
 *
 * Work for a proc on another worker travels as an envelope through that
 * worker's inbox; pc__handle_env() applies it on the owner's thread.
 */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#ifdef PC__ASAN
#include <sanitizer/asan_interface.h>
#endif

#define CONTAINER(ptr, type, field)                                            \
    ((type *)(void *)((char *)(ptr)-offsetof(type, field)))

/* Small mode copies raw stack memory, which ASan's shadow and the ucontext
 * fallback's approximate stack pointer can't follow: there, small tasks get
 * a private stack instead. */
#if defined(PC__ASAN) || defined(PC__CTX_UCONTEXT)
#define SMALL_MODE 0
#else
#define SMALL_MODE 1
#endif

static inline pc__task *
cur_task(pc__worker *w)
{
    return (w && w->cur && w->cur->kind == PC__TASK) ? (pc__task *)w->cur
                                                     : NULL;
}

/* ---- switching -------------------------------------------------------------------- */

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
static void task_exit(pc__worker *w, pc__task *t, int rc, pc_msg *value)
    __attribute__((noreturn));

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
        if (len > o->save_cap) {
            char *nb = realloc(o->save, len);
            if (!nb)
                return false;
            o->save = nb;
            o->save_cap = len;
        }
        memcpy(o->save, o->ctx.sp, len);
        o->save_len = len;
    }
    w->shared_owner = t;
    if (t->ctx.sp) {
        memcpy(shared_top(w) - t->save_len, t->save, t->save_len);
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
        pc__ctx_make(&t->ctx, t->stack->lo, t->stack->size, task_entry);
    }
    return true;
}

/* The running task t has recorded its wait (or is on the run queue after a
 * yield): run something else until t is woken. */
static void
schedule_out(pc__worker *w, pc__task *t)
{
    pc__proc *next = w->rq_head;

    pc__stack_check(t->stack, __builtin_frame_address(0), t->p.name);
    if (next == &t->p && w->budget > 0) { /* yield with nobody else ready */
        w->budget--;
        w->rq_head = next->next;
        if (!w->rq_head)
            w->rq_tail = NULL;
        t->p.state = PC__ST_RUNNING;
        return;
    }
    if (next && next->kind == PC__TASK && !next->killed && w->budget > 0 &&
        !(next->small && t->p.small)) {
        pc__task *n = (pc__task *)next;
        if (prepare(w, n)) {
            w->budget--;
            w->rq_head = next->next;
            if (!w->rq_head)
                w->rq_tail = NULL;
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
                     t->p.name ? t->p.name : "");
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
        pc_msg *v = d->p.exit_val;
        d->p.exit_val = NULL;
        pc__proc_finish(w, &d->p, d->p.exit_rc, v);
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
    task_exit(pc__tls_worker, t, PC_OK, v);
}

static void
task_exit(pc__worker *w, pc__task *t, int rc, pc_msg *value)
{
    pc__stack_check(t->stack, __builtin_frame_address(0), t->p.name);
    t->p.exit_rc = rc;
    t->p.exit_val = value;
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
    t->save_len = 0;
    go(w, &t->ctx, NULL, true);
    abort(); /* never resumed: the scheduler starts it afresh */
}

pc__task *
pc__cur_task(pc__worker *w)
{
    return cur_task(w);
}

void
pc__task_release(pc__worker *w, pc__task *t)
{
    if (ev_is_active(&t->timer))
        ev_timer_stop(w->loop, &t->timer);
    if (ev_is_active(&t->io))
        ev_io_stop(w->loop, &t->io);
    pc__mb_sender_gone(t); /* blocked in pc_send: its turn goes on */
    pc__stack_check_end(t->stack, t->p.name);
    pc__stack_put(&w->pool, &t->stack);
    if (w->shared_owner == t)
        w->shared_owner = NULL;
    free(t->save);
    t->save = NULL;
    t->save_len = t->save_cap = 0;
    pc_msg_free(&t->reply_msg);
#ifdef PC__TSAN
    if (t->fiber && t != (pc__task *)w->cur) {
        __tsan_destroy_fiber(t->fiber);
        t->fiber = NULL;
    }
#endif
}

void
pc__task_wake(pc__task *t, int rc)
{
    pc__worker *w = t->p.w;

    t->deadline = 0; /* the timer stays armed; its callback will see this */
    if (ev_is_active(&t->io))
        ev_io_stop(w->loop, &t->io);
    t->wake_rc = rc;
    pc__runq_push(w, &t->p);
}

/* Monotonic seconds, the precise clock: the coarse one can lag by more
 * than its resolution when ticks run late, which made sleeps end early. */
static double
clock_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void
timer_arm(pc__worker *w, pc__task *t, double in)
{
    if (ev_is_active(&t->timer))
        ev_timer_stop(w->loop, &t->timer);
    /* libev adds `in` to its loop time, which may lag: then it fires early
     * and timer_cb re-arms. It never fires late. */
    ev_timer_set(&t->timer, in, 0.);
    ev_timer_start(w->loop, &t->timer);
    t->armed = t->deadline;
}

static void
timer_cb(struct ev_loop *loop, ev_timer *tm, int revents)
{
    pc__task *t = CONTAINER(tm, pc__task, timer);
    double now;

    (void)loop;
    (void)revents;
    if (t->deadline == 0)
        return; /* woken by its event meanwhile: nothing to time out */
    now = clock_now();
    if (now >= t->deadline)
        pc__task_wake(t, PC_ETIMEDOUT);
    else
        timer_arm(t->p.w, t, t->deadline - now);
}

static void
io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    pc__task *t = CONTAINER(io, pc__task, io);

    (void)loop;
    if (t->p.state != PC__ST_AWAIT_FD)
        return;
    t->wake_val = (void *)(intptr_t)(((revents & EV_READ) ? PC_READ : 0) |
                                     ((revents & EV_WRITE) ? PC_WRITE : 0));
    pc__task_wake(t, PC_OK);
}

/* Block the running task in `state` up to timeout seconds (negative:
 * forever); returns the code it was woken with. */
static int
task_wait(pc__worker *w, pc__task *t, int state, double timeout)
{
    if (timeout >= 0) {
        t->deadline = clock_now() + timeout;
        if (!ev_is_active(&t->timer) || t->armed > t->deadline)
            timer_arm(w, t, timeout);
    }
    t->p.state = (uint8_t)state;
    schedule_out(w, t);
    return t->wake_rc;
}

/* ---- spawning ---------------------------------------------------------------------- */

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
    ev_init(&t->timer, timer_cb);
    ev_init(&t->io, io_cb);
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

    return (w && w->cur && w->cur->name) ? w->cur->name : "";
}

bool
pc_in_task(void)
{
    return cur_task(pc__tls_worker) != NULL;
}

pc_err
pc_set_daemon(bool daemon)
{
    pc__worker *w = pc__tls_worker;
    pc__proc *p = w ? w->cur : NULL;

    if (!p)
        return PC_EPERM;
    if (p->daemon != daemon) {
        p->daemon = daemon;
        pc__nondaemon_add(daemon ? -1 : 1);
    }
    return PC_OK;
}

pc_err
pc_at_exit(void (*fn)(void *arg), void *arg)
{
    pc__worker *w = pc__tls_worker;
    pc__proc *p = w ? w->cur : NULL;

    if (!p)
        return PC_EPERM;
    p->at_exit = fn;
    p->at_exit_arg = arg;
    return PC_OK;
}

/* ---- messaging ------------------------------------------------------------------- */

int
pc__deliver_local(pc__worker *w, pc__proc *p, pc_msg *m, unsigned how)
{
    int rc;

    if (p->state >= PC__ST_ZOMBIE)
        return PC_ENOENT;
    if ((rc = pc__mb_put(p, m, how)) != PC_OK)
        return rc;
    if (p->state == PC__ST_AWAIT_MSG)
        pc__task_wake((pc__task *)p, PC_OK);
    else if (p->state == PC__ST_IDLE)
        pc__runq_push(w, p);
    return PC_OK;
}

/* pc_send, pc_send_timeout, pc__send_ex: *m is consumed only on PC_OK. */
static pc_err
send_msg(pc_ref to, pc_msg **m, unsigned how, double timeout, pc__ack_fn ack,
         void *ctx)
{
    pc__worker *tw;
    pc__proc *p;
    pc_err rc;

    if (!m || !*m)
        return PC_EINVAL;
    if ((rc = pc__route(to, &tw, &p)) != PC_OK) {
        if (rc == PC_EUNREACH && pc__remote_send && !ack &&
            !(how & PC__MB_CHAN))
            return pc__remote_send(to, m);
        return rc;
    }
    if (p) {
        /* only ordinary mail waits for room (or is refused at the call) */
        if (!how && p->mb_cap &&
            (rc = pc__mb_admit(tw, to, &p, timeout)) != PC_OK)
            return rc;
        rc = pc__deliver_local(tw, p, *m, how);
        if (rc != PC_OK && rc != PC_EFULL)
            return rc;
        if (rc == PC_EFULL) /* dropped by the policy, as across workers */
            pc_msg_free(m);
        *m = NULL;
        if (ack)
            ack(ctx, rc);
        return PC_OK;
    }
    pc__env *e = pc__env_new(PC__ENV_MSG);
    if (!e)
        return PC_ENOMEM;
    e->to = to;
    e->msg = *m;
    e->how = (uint8_t)how;
    e->ack = ack;
    e->ptr = ctx;
    *m = NULL;
    pc__env_push(tw, e);
    return PC_OK;
}

pc_err
pc__send_ex(pc_ref to, pc_msg **m, unsigned how, pc__ack_fn ack, void *ctx)
{
    return send_msg(to, m, how, -1, ack, ctx);
}

void
pc__send_sys(pc_ref to, pc_msg **m)
{
    if (send_msg(to, m, PC__MB_SYS, -1, NULL, NULL) != PC_OK)
        pc_msg_free(m);
}

pc_err
pc_send(pc_ref to, pc_msg **m)
{
    return send_msg(to, m, 0, -1, NULL, NULL);
}

pc_err
pc_send_timeout(pc_ref to, pc_msg **m, double timeout)
{
    return send_msg(to, m, 0, timeout, NULL, NULL);
}

pc_err
pc_send_data(pc_ref to, const char *type, const void *data, size_t len)
{
    pc_msg *m;
    pc_err rc = pc_msg_new(&m, type, data, len);

    if (rc == PC_OK && (rc = pc_send(to, &m)) != PC_OK)
        pc_msg_free(&m);
    return rc;
}

/* Post an envelope that is answered through `rt`, then wait for the answer:
 * as the running task (with a fresh token) or as a foreign thread. */
static int
request(pc__worker *tw, pc__env *e, double timeout, pc_msg **reply)
{
    pc__worker *w = pc__tls_worker;
    pc__task *t = cur_task(w);
    int rc;

    if (t) {
        e->rt.task = pc__proc_ref(&t->p);
        e->rt.token = ++t->token;
        pc__env_push(tw, e);
        rc = task_wait(w, t, PC__ST_AWAIT_REPLY, timeout);
        if (reply) {
            *reply = t->reply_msg;
            t->reply_msg = NULL;
        } else {
            pc_msg_free(&t->reply_msg);
        }
        return rc;
    }
    pc__sync *s = pc__sync_new();
    if (!s) {
        pc_msg_free(&e->msg);
        pc__env_free(e);
        return PC_ENOMEM;
    }
    atomic_fetch_add(&s->refs, 1); /* one for the envelope's reply */
    e->rt.sync = s;
    pc__env_push(tw, e);
    rc = pc__sync_wait(s, timeout, reply);
    pc__sync_unref(s);
    return rc;
}

int
pc__wait_prepare(pc__reply_to *rt)
{
    pc__worker *w = pc__tls_worker;
    pc__task *t = cur_task(w);

    memset(rt, 0, sizeof *rt);
    if (t) {
        rt->task = pc__proc_ref(&t->p);
        rt->token = ++t->token;
        return PC_OK;
    }
    if (w && w->cur)
        return PC_EPERM; /* a light actor can't block */
    if (!(rt->sync = pc__sync_new()))
        return PC_ENOMEM;
    atomic_fetch_add(&rt->sync->refs, 1); /* the waker's */
    return PC_OK;
}

int
pc__wait_block(pc__reply_to *rt, double timeout, void **ptr)
{
    pc__worker *w = pc__tls_worker;
    int rc;

    if (ptr)
        *ptr = NULL;
    if (rt->sync) {
        rc = pc__sync_wait(rt->sync, timeout, NULL);
        if (ptr && rc != PC_ETIMEDOUT)
            *ptr = rt->sync->ptr;
        pc__sync_unref(rt->sync); /* the waiter's */
        return rc;
    }
    pc__task *t = cur_task(w);
    if (timeout == 0)
        return PC_ETIMEDOUT;
    t->wake_val = NULL;
    rc = task_wait(w, t, PC__ST_AWAIT_REPLY, timeout);
    pc_msg_free(&t->reply_msg);
    if (ptr && rc != PC_ETIMEDOUT)
        *ptr = t->wake_val;
    return rc;
}

void
pc__wait_drop(pc__reply_to *rt)
{
    if (rt->sync)
        pc__sync_unref(rt->sync); /* the waker's: it will never wake */
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

pc_err
pc_deliver(pc_ref to, pc_msg **m, double timeout)
{
    pc__worker *w = pc__tls_worker, *tw;
    pc__proc *p;
    pc_err rc;

    if (!m || !*m)
        return PC_EINVAL;
    if (w && w->cur && w->cur->kind != PC__TASK)
        return PC_EPERM;
    if ((rc = pc__route(to, &tw, &p)) != PC_OK)
        return rc;
    if (p) {
        if (p->mb_cap && (rc = pc__mb_admit(tw, to, &p, timeout)) != PC_OK)
            return rc;
        if ((rc = pc__deliver_local(tw, p, *m, 0)) == PC_OK)
            *m = NULL;
        return rc;
    }
    if (timeout == 0)
        timeout = 1e-9; /* "don't wait" can't confirm anything: barely wait */
    pc__env *e = pc__env_new(PC__ENV_MSG);
    if (!e)
        return PC_ENOMEM;
    e->to = to;
    e->msg = pc_msg_ref(*m); /* ours stays with the caller until the verdict */
    if ((rc = request(tw, e, timeout, NULL)) == PC_OK)
        pc_msg_free(m);
    return rc;
}

pc_err
pc_recv(pc_msg **out, double timeout)
{
    pc__worker *w = pc__tls_worker;
    pc__task *t = cur_task(w);
    int rc;

    if (!out)
        return PC_EINVAL;
    *out = NULL;
    if (!t)
        return PC_EPERM;
    if ((*out = pc__swap_offer(t)))
        return PC_OK;
    if (pc__mb_len(&t->p)) {
        *out = pc__mb_pop(&t->p);
        return PC_OK;
    }
    if (timeout == 0)
        return PC_ETIMEDOUT;
    rc = task_wait(w, t, PC__ST_AWAIT_MSG, timeout);
    if ((*out = pc__swap_offer(t)))
        return PC_OK;      /* woken for a hot swap */
    if (pc__mb_len(&t->p)) /* a message that raced the timer counts */
        rc = PC_OK;
    if (rc == PC_OK)
        *out = pc__mb_pop(&t->p);
    return rc;
}

pc_mark
pc_mailbox_mark(void)
{
    pc__worker *w = pc__tls_worker;
    pc_mark mk = {{0, 0}};

    if (w && w->cur)
        pc__mb_mark(w->cur, mk.seq);
    return mk;
}

pc_err
pc_recv_match(pc_match_fn match, void *ctx, const pc_mark *after, pc_msg **out,
              double timeout)
{
    pc__worker *w = pc__tls_worker;
    pc__task *t = cur_task(w);
    uint64_t from[2] = {0, 0};
    double deadline = timeout > 0 ? pc_now() + timeout : 0, left = timeout;

    if (!out || !match)
        return PC_EINVAL;
    *out = NULL;
    if (!t)
        return PC_EPERM;
    if (after) {
        from[0] = after->seq[0];
        from[1] = after->seq[1];
    }
    for (;;) {
        if ((*out = pc__mb_take(&t->p, from, match, ctx)))
            return PC_OK;
        if (timeout > 0 && (left = deadline - pc_now()) <= 0)
            return PC_ETIMEDOUT;
        if (timeout == 0 ||
            task_wait(w, t, PC__ST_AWAIT_MSG, left) == PC_ETIMEDOUT) {
            *out = pc__mb_take(&t->p, from, match, ctx); /* raced the timer */
            return *out ? PC_OK : PC_ETIMEDOUT;
        }
    }
}

static bool
type_is(const pc_msg *m, void *type)
{
    return pc_msg_is(m, type);
}

pc_err
pc_recv_type(const char *type, pc_msg **out, double timeout)
{
    if (!type)
        return PC_EINVAL;
    return pc_recv_match(type_is, (void *)type, NULL, out, timeout);
}

static void
stats_fill(const pc__proc *p, pc_mbox_stats *st)
{
    st->depth = pc__mb_len(p);
    st->cap = p->mb_cap;
    st->dropped = p->mb_dropped;
    st->refused = p->mb_refused;
    st->over = p->mb_over;
}

pc_err
pc_mailbox_stats(pc_ref ref, pc_mbox_stats *out, double timeout)
{
    pc__worker *tw;
    pc__proc *p;
    pc_msg *reply = NULL;
    size_t len;
    int rc;

    if (!out)
        return PC_EINVAL;
    memset(out, 0, sizeof *out);
    if ((rc = pc__route(ref, &tw, &p)) != PC_OK)
        return rc;
    if (p) {
        stats_fill(p, out);
        return PC_OK;
    }
    if (pc__tls_worker && pc__tls_worker->cur &&
        pc__tls_worker->cur->kind != PC__TASK)
        return PC_EPERM;
    pc__env *e = pc__env_new(PC__ENV_STATS);
    if (!e)
        return PC_ENOMEM;
    e->to = ref;
    /* the answer comes as a message, freed by the runtime if we gave up */
    rc = request(tw, e, timeout == 0 ? 1e-9 : timeout, &reply);
    if (rc == PC_OK) {
        const void *d = pc_msg_data(reply, &len);
        if (len == sizeof *out)
            memcpy(out, d, sizeof *out);
        else
            rc = PC_EPROTO;
    }
    pc_msg_free(&reply);
    return rc;
}

size_t
pc_mailbox_depth(void)
{
    pc__worker *w = pc__tls_worker;

    return (w && w->cur) ? pc__mb_len(w->cur) : 0;
}

/* ---- sleeping and resuming --------------------------------------------------------- */

pc_err
pc_yield(void)
{
    pc__worker *w = pc__tls_worker;
    pc__task *t = cur_task(w);

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
    pc__task *t = cur_task(w);
    int rc;

    if (value)
        *value = NULL;
    if (!t)
        return PC_EPERM;
    if (timeout == 0)
        return PC_ETIMEDOUT;
    t->wake_val = NULL;
    rc = task_wait(w, t, PC__ST_SUSPENDED, timeout);
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

static void
resume_local(pc__proc *p, void *value)
{
    if (p && p->kind == PC__TASK && p->state == PC__ST_SUSPENDED) {
        ((pc__task *)p)->wake_val = value;
        pc__task_wake((pc__task *)p, PC_OK);
    }
}

pc_err
pc_resume(pc_ref ref, void *value)
{
    pc__worker *tw;
    pc__proc *p;
    pc_err rc;

    if ((rc = pc__route(ref, &tw, &p)) != PC_OK)
        return rc;
    if (p) {
        resume_local(p, value);
        return PC_OK;
    }
    return pc__post(tw, PC__ENV_RESUME, ref, value);
}

/* ---- ending, joining ---------------------------------------------------------------- */

void
pc_exit_error(const char *reason)
{
    pc__worker *w = pc__tls_worker;
    pc__task *t = cur_task(w);
    pc_msg *m = NULL;

    if (!t) {
        PC_LOG_ERROR("actors", "pc_exit_error() called outside a task");
        abort();
    }
    pc_msg_new_str(&m, PC_MSG_ERROR, reason ? reason : "");
    task_exit(w, t, PC_EFAILED, m);
}

void
pc_exit(pc_msg *value)
{
    pc__worker *w = pc__tls_worker;
    pc__task *t = cur_task(w);

    if (!t) {
        PC_LOG_ERROR("actors", "pc_exit() called outside a task");
        abort();
    }
    task_exit(w, t, PC_OK, value);
}

void
pc__terminate_local(pc__worker *w, pc__proc *p)
{
    if (!p)
        return;
    switch (p->state) {
    case PC__ST_NEW:
    case PC__ST_READY:
        p->killed = true; /* finished when linked or popped */
        break;
    case PC__ST_RUNNING: /* the caller itself */
        if (p->kind == PC__TASK)
            task_exit(w, (pc__task *)p, PC_EKILLED, NULL);
        p->killed = true; /* an actor: ends when its handler returns */
        break;
    case PC__ST_ZOMBIE:
    case PC__ST_DEAD:
        break;
    default:
        pc__proc_finish(w, p, PC_EKILLED, NULL);
    }
}

pc_err
pc_task_terminate(pc_ref ref)
{
    pc__worker *tw;
    pc__proc *p;
    pc_err rc;

    if ((rc = pc__route(ref, &tw, &p)) != PC_OK)
        return rc;
    if (p) {
        pc__terminate_local(tw, p);
        return PC_OK;
    }
    return pc__post(tw, PC__ENV_TERMINATE, ref, NULL);
}

/* On the target's worker: answer a join now (zombie, gone) or queue it. */
static void
join_local(pc__proc *p, pc__reply_to rt)
{
    pc__joiner *j;

    if (!p || p->state == PC__ST_DEAD) {
        pc__reply(rt, PC_ENOENT, NULL);
    } else if (p->state == PC__ST_ZOMBIE) {
        pc_msg *v = p->exit_val;
        int rc = p->exit_rc;
        p->exit_val = NULL;
        pc__zombie_free(p->w, p);
        pc__reply(rt, rc, v);
    } else if (!(j = malloc(sizeof *j))) {
        pc__reply(rt, PC_ENOMEM, NULL);
    } else {
        j->rt = rt;
        j->next = p->joiners;
        p->joiners = j;
    }
}

/* One join attempt: PC__ENDED means "it ended, join again to collect". */
static int
join_once(pc__worker *w, pc__worker *tw, pc_ref ref, double timeout, pc_msg **v)
{
    if (tw != w) {
        pc__env *e = pc__env_new(PC__ENV_JOIN);
        if (!e)
            return PC_ENOMEM;
        e->to = ref;
        return request(tw, e, timeout == 0 ? 1e-9 : timeout, v);
    }
    pc__proc *p = pc__proc_lookup(w, ref);
    pc__task *t = cur_task(w);
    pc__joiner *j;
    int rc;

    if (!p)
        return PC_ENOENT;
    if (p->state == PC__ST_ZOMBIE) {
        *v = p->exit_val;
        rc = p->exit_rc;
        p->exit_val = NULL;
        pc__zombie_free(w, p);
        return rc;
    }
    if (timeout == 0)
        return PC_ETIMEDOUT;
    if (!(j = malloc(sizeof *j)))
        return PC_ENOMEM;
    *j = (pc__joiner){p->joiners, {pc__proc_ref(&t->p), ++t->token, NULL}};
    p->joiners = j;
    rc = task_wait(w, t, PC__ST_AWAIT_REPLY, timeout);
    *v = t->reply_msg;
    t->reply_msg = NULL;
    if (rc == PC_ETIMEDOUT && (p = pc__proc_lookup(w, ref))) {
        for (pc__joiner **jp = &p->joiners; *jp; jp = &(*jp)->next) {
            if ((*jp)->rt.token == t->token &&
                pc_ref_eq((*jp)->rt.task, pc__proc_ref(&t->p))) {
                j = *jp;
                *jp = j->next;
                free(j);
                break;
            }
        }
    }
    return rc;
}

pc_err
pc_task_join(pc_ref ref, double timeout, pc_msg **value)
{
    pc__worker *w = pc__tls_worker;
    pc__node *n = pc__the_node;
    double deadline = timeout > 0 ? pc_now() + timeout : 0;
    pc__slot *s;
    pc_msg *v = NULL;
    int rc;

    if (value)
        *value = NULL;
    if (w && w->cur && w->cur->kind != PC__TASK)
        return PC_EPERM;
    if (pc_ref_eq(ref, pc_self()))
        return PC_EINVAL;
    if (!n)
        return PC_ESTATE;
    if (ref.node != n->id)
        return pc_ref_is_nil(ref) ? PC_ENOENT : PC_EUNREACH;
    /* not pc__route(): it refuses zombies, and joins are what they wait for */
    s = pc__slot_get((uint32_t)ref.id);
    if (!s || atomic_load_explicit(&s->gen, memory_order_acquire) !=
                  (uint32_t)(ref.id >> 32))
        return PC_ENOENT;
    pc__worker *tw =
        &n->workers[atomic_load_explicit(&s->worker, memory_order_relaxed)];
    while ((rc = join_once(w, tw, ref, timeout, &v)) == PC__ENDED) {
        if (timeout > 0 && (timeout = deadline - pc_now()) <= 0)
            timeout = 1e-9; /* it has ended: the collecting join is quick */
    }
    if (value)
        *value = v;
    else
        pc_msg_free(&v);
    return rc;
}

/* ---- fds -------------------------------------------------------------------------------- */

pc_err
pc_wait_fd(int fd, int events, double timeout, int *revents)
{
    pc__worker *w = pc__tls_worker;
    pc__task *t = cur_task(w);
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
    ev_io_set(&t->io, fd,
              ((events & PC_READ) ? EV_READ : 0) |
                  ((events & PC_WRITE) ? EV_WRITE : 0));
    ev_io_start(w->loop, &t->io);
    rc = task_wait(w, t, PC__ST_AWAIT_FD, timeout);
    if (rc == PC_OK && revents)
        *revents = (int)(intptr_t)t->wake_val;
    return rc;
}

static void
fd_cancel_local(pc__proc *p)
{
    if (p && p->kind == PC__TASK && p->state == PC__ST_AWAIT_FD)
        pc__task_wake((pc__task *)p, PC_ECLOSED);
}

pc_err
pc_wait_fd_cancel(pc_ref ref)
{
    pc__worker *tw;
    pc__proc *p;
    pc_err rc;

    if ((rc = pc__route(ref, &tw, &p)) != PC_OK)
        return rc;
    if (p) {
        fd_cancel_local(p);
        return PC_OK;
    }
    return pc__post(tw, PC__ENV_FD_CANCEL, ref, NULL);
}

/* ---- envelopes from other threads ------------------------------------------------------ */

void
pc__handle_env(pc__worker *w, pc__env *e)
{
    pc__proc *p;
    int rc;

    switch (e->kind) {
    case PC__ENV_SPAWN:
        pc__link(w, e->ptr);
        break;
    case PC__ENV_MSG:
        p = pc__proc_lookup(w, e->to);
        rc = p ? pc__deliver_local(w, p, e->msg, e->how) : PC_ENOENT;
        if (rc == PC_OK)
            e->msg = NULL;
        else
            pc_msg_free(&e->msg); /* refused, dropped or too late: counted */
        if (e->rt.sync || e->rt.token)
            pc__reply(e->rt, rc, NULL);
        if (e->ack)
            e->ack(e->ptr, rc);
        break;
    case PC__ENV_RESUME:
        resume_local(pc__proc_lookup(w, e->to), e->ptr);
        break;
    case PC__ENV_TERMINATE:
        pc__terminate_local(w, pc__proc_lookup(w, e->to));
        break;
    case PC__ENV_JOIN:
        join_local(pc__proc_lookup(w, e->to), e->rt);
        break;
    case PC__ENV_MONITOR:
    case PC__ENV_DEMONITOR:
    case PC__ENV_LINK:
    case PC__ENV_UNLINK:
    case PC__ENV_EXIT_SIG:
        pc__mon_handle_env(w, e);
        break;
    case PC__ENV_FD_CANCEL:
        fd_cancel_local(pc__proc_lookup(w, e->to));
        break;
    case PC__ENV_SWAP:
    case PC__ENV_SWAP_ALL:
        pc__swap_handle_env(w, e);
        break;
    case PC__ENV_STATS:
        if ((p = pc__proc_lookup(w, e->to))) {
            pc_mbox_stats st;
            pc_msg *m = NULL;
            stats_fill(p, &st);
            pc_msg_new(&m, "picos.mbox.stats", &st, sizeof st);
            pc__reply(e->rt, m ? PC_OK : PC_ENOMEM, m);
        } else {
            pc__reply(e->rt, PC_ENOENT, NULL);
        }
        break;
    case PC__ENV_REPLY:
        pc__wake(e->rt, e->rc, e->msg, e->ptr); /* on the waiter's worker */
        break;
    }
    pc__env_free(e);
}
