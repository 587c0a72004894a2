/* actors/sched.c — the run queue and the worker loop.
 *
 * Each worker runs: drain the inbox, run up to a batch of runnable procs (a
 * task runs until it blocks; a light actor handles up to 64 messages), poll
 * libev without blocking, and block in libev only when nothing is runnable
 * and the inbox stayed empty for a short spin. The spin adapts to how far
 * the worker's work comes from (see worker_idle). Tasks switch straight to the
 * next runnable task when they block (no trip through the scheduler), up to
 * a budget, after which the scheduler polls I/O, so a ping-pong pair can't
 * starve fds and timers.
 */
#define _GNU_SOURCE /* pthread_getattr_np */
#include <time.h>

#include "internal.h"

#define RUN_BATCH 256
#define SWITCH_BUDGET 256
#define IDLE_SPINS 512      /* pause instructions before sleeping: ~10-20 us */
#define IDLE_SPINS_MIN 16   /* ... at the least, once spinning did not pay */
#define SPIN_WORTH_NS 20000 /* a sleep shorter than this: spinning pays */
#define FD_POLL_SPINS 32    /* spins between two polls of the fds: ~1 us */
#define IDLE_STEP_MAX 16    /* at most this many spins between inbox looks */

static void
doorbell_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)loop;
    (void)a;
    (void)revents;
}

pc_err
pc__worker_init(pc__worker *w, int index, const pc_node_opts *o)
{
    w->index = index;
    w->spin_max = IDLE_SPINS;
    pc__inbox_init(w);
    if (!(w->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK)))
        return PC_ENOMEM;
    ev_async_init(&w->doorbell, doorbell_cb);
    ev_async_start(w->loop, &w->doorbell);
    ev_set_userdata(w->loop, w);
    pc__stack_pool_init(&w->pool, o->stack_size,
                        o->guard_pages < 0 ? 0 : o->guard_pages);
    w->shared_size = o->shared_stack_size;
    return PC_OK;
}

static void
run_proc(pc__worker *w, pc__proc *p)
{
    w->budget--;
    if (p->killed) {
        pc__proc_finish(w, p, PC_EKILLED, NULL);
    } else if (p->kind == PC__ACTOR) {
        pc__actor_run(w, (pc__actor *)p);
    } else {
        pc__task_run(w, (pc__task *)p);
    }
}

static inline uint64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Work came while spinning, or soon after a sleep began: spin longer. */
static inline void
spin_paid(pc__worker *w)
{
    w->spin_max = w->spin_max * 2 < IDLE_SPINS ? w->spin_max * 2 : IDLE_SPINS;
}

/* Nothing runnable: first spin a few microseconds (another worker's reply
 * is often that close, and sleeping costs two system calls and a wake-up),
 * looking at the inbox with growing gaps (1, 2, 4 ... IDLE_STEP_MAX pauses)
 * and at the fds and timers every FD_POLL_SPINS pauses, so a socket that
 * becomes readable meanwhile is served at once instead of after the spin;
 * then sleep in libev until an fd, a timer or the doorbell.
 *
 * The spin adapts, as glibc's adaptive mutexes do: it doubles (up to
 * IDLE_SPINS) when work came during it or within SPIN_WORTH_NS of the
 * sleep, and halves (down to IDLE_SPINS_MIN) after a longer sleep. A
 * worker whose work comes from far (another node's answer, tens of µs
 * away) thus stops burning a core that the threads bringing that work —
 * ZeroMQ's, the kernel's, the other node's — need on a machine of few
 * cores; a worker fed from close by keeps the whole spin. */
static void
worker_idle(pc__worker *w)
{
    uint64_t t0;

    /* a pause: blocks freed here go home now */
    pc__cache_flush(pc__the_node, w);
    for (int i = 0, step = 1; i < w->spin_max; i += step) {
        if (!pc__inbox_empty(w)) {
            /* fds and timers still get a turn, now and then: a worker fed
             * only by its inbox never reaches the loop's own poll */
            if ((++w->inbox_wakes & 15) == 0)
                ev_run(w->loop, EVRUN_NOWAIT);
            spin_paid(w);
            return;
        }
        if (i / FD_POLL_SPINS != (i + step) / FD_POLL_SPINS) {
            ev_run(w->loop, EVRUN_NOWAIT);
            if (w->rq_head) {
                spin_paid(w);
                return;
            }
        }
        /* back off: a tight loop on the inbox's cache line slows down the
         * producers that write it */
        for (int k = 0; k < step; k++)
            pc__cpu_relax();
        if (step < IDLE_STEP_MAX)
            step *= 2;
    }
    pc__nondaemon_flush(w); /* what an fd or timer callback ended */
    /* the other half of pc__env_push()'s handshake: set, then look */
    atomic_store_explicit(&w->sleeping, true, memory_order_seq_cst);
    if (pc__inbox_empty(w) &&
        !atomic_load_explicit(&w->stop, memory_order_relaxed)) {
        t0 = mono_ns();
        ev_run(w->loop, EVRUN_ONCE);
        if (mono_ns() - t0 < SPIN_WORTH_NS)
            spin_paid(w);
        else if (w->spin_max / 2 >= IDLE_SPINS_MIN)
            w->spin_max /= 2;
    } else {
        ev_run(w->loop, EVRUN_NOWAIT);
    }
    atomic_store_explicit(&w->sleeping, false, memory_order_relaxed);
}

void *
pc__worker_main(void *arg)
{
    pc__worker *w = arg;

    pc__tls_worker = w;
#ifdef PC__ASAN
    {
        pthread_attr_t a;
        pthread_getattr_np(pthread_self(), &a);
        pthread_attr_getstack(&a, &w->sched_stack_lo, &w->sched_stack_size);
        pthread_attr_destroy(&a);
    }
#endif
#ifdef PC__TSAN
    w->sched_fiber = __tsan_get_current_fiber();
#endif
    while (!atomic_load_explicit(&w->stop, memory_order_acquire)) {
        pc__proc *p;
        int n = 0;

        pc__inbox_drain(w);
        w->budget = SWITCH_BUDGET;
        /* until the batch or the switch budget is spent: then poll I/O */
        while (n++ < RUN_BATCH && w->budget > 0 && (p = pc__runq_pop(w)))
            run_proc(w, p);
        pc__nondaemon_flush(w); /* the node's count is exact between batches */
        if (w->rq_head)
            ev_run(w->loop, EVRUN_NOWAIT);
        else
            worker_idle(w);
    }
    pc__tls_worker = NULL;
    return NULL;
}
