/* actors/pool.c — the thread pool (pycos's AsyncThreadPool).
 *
 * One mutex guards the pool: a FIFO of queued jobs (doubly linked, so a
 * waiter that gives up takes its job out in O(1)), the running count, the
 * list of pc_pool_join() waiters and the closed flag. Jobs run outside the
 * lock. Waiting is the runtime's one blocking primitive (internal.h): the
 * caller makes a reply-to with pc__wait_prepare() — a task's ref and token,
 * or a condvar for a foreign thread — stores it in the job and blocks in
 * pc__wait_block(); the pool thread that ran the job hands the result over
 * with pc__wake(), which for a task posts an envelope to the task's own
 * worker and rings its doorbell. So a waiting task costs its worker
 * nothing, and nothing polls.
 *
 * Every handover is decided under the pool's lock, by the job's state:
 * QUEUED → RUNNING (a thread took it) → DONE (result stored, the thread
 * will wake the waiter), or CANCELLED (pc_pool_free). A waiter that times
 * out takes the lock and looks: QUEUED, it unlinks the job and takes its
 * reply-to back (pc__wait_drop), so the job never runs; RUNNING, it marks the
 * job abandoned and takes the reply-to back, and the thread later hands the
 * result to the job's discard function and frees the job; DONE or
 * CANCELLED, the wake raced with the timeout, so the waiter returns what the
 * job holds. Whoever is last to touch a job frees it: the waiter, except
 * for an abandoned job (the thread). Jobs live on the heap, never on a
 * task's stack (small tasks' stacks move).
 *
 * Lifetime. The pool is refcounted: pc_pool_new()'s reference, dropped by
 * pc_pool_free() after its threads have ended, plus one per call waiting
 * inside the pool. So pc_pool_free() needs to wait only for the running
 * jobs, not for waiters (one may be a timed-out task on the freeing task's
 * own worker, which could not run while that worker's thread blocked), and
 * the last waiter to leave frees the memory. A task terminated while it
 * waits never comes back for its job; the thread that ends the job sees the
 * waiter is gone (pc_alive) and cleans up for it.
 *
 * Latency. An idle thread spins on the queue for about 20 µs before it
 * sleeps on the condvar, like a worker on its inbox: a task that calls
 * pc_pool_run() in a loop then never pays for a futex wake-up. At most one
 * thread spins at a time, and a job is signalled to a sleeping thread only
 * when there are more queued jobs than spinning threads.
 */
#define _GNU_SOURCE
#include "picos/pool.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "internal.h"

#define SPINS 1024 /* pause instructions before an idle thread sleeps */

enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_CANCELLED };

typedef struct job {
    struct job *prev, *next; /* queue links */
    pc_pool_fn fn;
    void *arg;
    pc_pool_discard_fn discard;
    void *result;    /* DONE */
    pc__reply_to rt; /* the waiter; unused by submitted jobs */
    uint8_t state;
    bool waited;    /* pc_pool_run: someone waits for it */
    bool abandoned; /* the waiter gave up while it ran */
} job;

typedef struct joiner {
    struct joiner *prev, *next;
    pc__reply_to rt;
    bool linked; /* still on the pool's list: the waiter may take it back */
} joiner;

struct pc_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;    /* idle threads sleep here */
    job *head, *tail;     /* queued jobs, oldest first */
    atomic_size_t queued; /* written under mu; read by the spinning thread */
    int running;
    int nsleep, nspin; /* idle threads on the condvar / spinning */
    bool closed;
    joiner *joiners;
    joiner free_joiner; /* pc_pool_free's own wait: it must not fail */
    atomic_int refs;
    int nthreads;
    pthread_t threads[];
};

/* The pool whose job the calling thread runs (joining or freeing it from
 * there would wait for itself). */
static _Thread_local pc_pool *tls_pool;

static void
pool_unref(pc_pool *p)
{
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
        free(p);
    }
}

/* A light-actor or exit handler can't wait (a task or a foreign thread can). */
static bool
may_wait(void)
{
    pc__worker *w = pc__tls_worker;

    return !(w && w->cur && !pc__cur_task(w));
}

/* Give up an rt from pc__wait_prepare() that was never published: release
 * the waker's share, then the waiter's (a zero wait returns at once). */
static void
rt_abandon(pc__reply_to *rt)
{
    pc__wait_drop(rt);
    (void)pc__wait_block(rt, 0, NULL);
}

/* ---- the queue (under mu) ------------------------------------------------ */

static void
enqueue(pc_pool *p, job *j)
{
    size_t q;

    j->state = JOB_QUEUED;
    j->next = NULL;
    j->prev = p->tail;
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    q = atomic_load_explicit(&p->queued, memory_order_relaxed) + 1;
    atomic_store_explicit(&p->queued, q, memory_order_release);
    if (p->nsleep > 0 && q > (size_t)p->nspin)
        pthread_cond_signal(&p->cv);
}

static void
unlink_job(pc_pool *p, job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        p->head = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        p->tail = j->prev;
    j->prev = j->next = NULL;
    atomic_store_explicit(
        &p->queued, atomic_load_explicit(&p->queued, memory_order_relaxed) - 1,
        memory_order_relaxed);
}

static void
link_joiner(pc_pool *p, joiner *jn)
{
    jn->prev = NULL;
    jn->next = p->joiners;
    if (p->joiners)
        p->joiners->prev = jn;
    p->joiners = jn;
    jn->linked = true;
}

static void
unlink_joiner(pc_pool *p, joiner *jn)
{
    if (jn->prev)
        jn->prev->next = jn->next;
    else
        p->joiners = jn->next;
    if (jn->next)
        jn->next->prev = jn->prev;
    jn->linked = false;
}

/* When nothing is queued or running, take the whole joiner list: the
 * caller wakes them after unlocking (wake_joiners). */
static joiner *
take_joiners_if_idle(pc_pool *p)
{
    joiner *list = NULL;

    if (p->head || p->running > 0)
        return NULL;
    list = p->joiners;
    p->joiners = NULL;
    for (joiner *jn = list; jn; jn = jn->next) {
        jn->linked = false;
        /* pc_pool_free's own ref is dropped only by pc_pool_free */
        if (jn != &p->free_joiner && pc__wait_gone(&jn->rt))
            atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel);
    }
    return list;
}

static void
wake_joiners(pc_pool *p, joiner *list)
{
    while (list) {
        joiner *next = list->next;
        pc__wake(list->rt, PC_OK, NULL, NULL);
        if (list != &p->free_joiner)
            free(list);
        list = next;
    }
}

/* ---- pool threads -------------------------------------------------------- */

/* Under mu: the next job to run, or NULL when the pool closes. Waits. */
static job *
take_job(pc_pool *p)
{
    for (;;) {
        job *j = p->head;
        if (j) {
            unlink_job(p, j);
            j->state = JOB_RUNNING;
            p->running++;
            return j;
        }
        if (p->closed)
            return NULL;
        if (p->nspin == 0) {
            p->nspin = 1;
            pthread_mutex_unlock(&p->mu);
            for (int i = 0; i < SPINS; i++) {
                if (atomic_load_explicit(&p->queued, memory_order_acquire))
                    break;
                pc__cpu_relax();
            }
            pthread_mutex_lock(&p->mu);
            p->nspin = 0;
            if (p->head || p->closed)
                continue;
        }
        p->nsleep++;
        pthread_cond_wait(&p->cv, &p->mu);
        p->nsleep--;
    }
}

/* Under mu, after j ran and returned r: hand r over (unlocking meanwhile). */
static void
finish_job(pc_pool *p, job *j, void *r)
{
    pc__reply_to rt;
    bool wake = false;
    joiner *joiners;

    p->running--;
    if (!j->waited) {
        r = NULL; /* submitted: the result is ignored */
    } else if (j->abandoned) {
        /* the waiter took its rt back: r goes to discard */
    } else if (pc__wait_gone(&j->rt)) {
        /* terminated while waiting: leave the pool for it. Its rt is a
         * task's, which holds nothing, so it needs no wake. */
        atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel);
    } else {
        j->state = JOB_DONE;
        j->result = r;
        rt = j->rt;
        wake = true; /* from here on the waiter owns j */
    }
    joiners = take_joiners_if_idle(p);
    pthread_mutex_unlock(&p->mu);
    if (wake) {
        pc__wake(rt, PC_OK, NULL, r);
    } else {
        if (r && j->discard)
            j->discard(r);
        free(j);
    }
    wake_joiners(p, joiners);
    pthread_mutex_lock(&p->mu);
}

static void *
pool_main(void *arg)
{
    pc_pool *p = arg;
    job *j;

    tls_pool = p;
    pthread_mutex_lock(&p->mu);
    while ((j = take_job(p))) {
        pthread_mutex_unlock(&p->mu);
        void *r = j->fn(j->arg);
        pthread_mutex_lock(&p->mu);
        finish_job(p, j, r);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ---- public API ---------------------------------------------------------- */

pc_err
pc_pool_new(pc_pool **out, int threads)
{
    pc_pool *p;
    int err;

    if (!out)
        return PC_EINVAL;
    *out = NULL;
    if (threads < 1 || threads > PC_POOL_MAX_THREADS)
        return PC_EINVAL;
    if (!(p = calloc(1, sizeof *p + (size_t)threads * sizeof(pthread_t))))
        return PC_ENOMEM;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    atomic_init(&p->queued, 0);
    atomic_init(&p->refs, 1);
    for (; p->nthreads < threads; p->nthreads++) {
        err = pthread_create(&p->threads[p->nthreads], NULL, pool_main, p);
        if (err) {
            pthread_mutex_lock(&p->mu);
            p->closed = true; /* no job yet: the threads just end */
            pthread_cond_broadcast(&p->cv);
            pthread_mutex_unlock(&p->mu);
            for (int i = 0; i < p->nthreads; i++)
                pthread_join(p->threads[i], NULL);
            pool_unref(p);
            errno = err;
            return PC_ESYS;
        }
        pthread_setname_np(p->threads[p->nthreads], "picos-pool");
    }
    *out = p;
    return PC_OK;
}

pc_err
pc_pool_free(pc_pool **pp)
{
    pc_pool *p = pp ? *pp : NULL;
    joiner *jn = NULL, *idle;
    pc__reply_to rt;
    job *j;

    if (!p)
        return PC_OK;
    if (tls_pool == p || !may_wait())
        return PC_EPERM;
    pthread_mutex_lock(&p->mu);
    assert(!p->closed && "pc_pool_free called twice");
    p->closed = true;
    while ((j = p->head)) {
        unlink_job(p, j);
        j->state = JOB_CANCELLED;
        if (!j->waited) {
            free(j);
        } else if (pc__wait_gone(&j->rt)) {
            atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel);
            free(j);
        } else {
            /* Woken under mu: a waiter timing out meanwhile frees j as
             * soon as it gets mu, so j can't be read after unlocking. */
            pc__wake(j->rt, PC_ECLOSED, NULL, NULL);
        }
    }
    pthread_cond_broadcast(&p->cv);
    /* Wait for the running jobs as a joiner, so that a task waits without
     * blocking its worker; the threads then end at once. (Should the rt
     * fail, pthread_join waits instead.) */
    if (p->running > 0 && pc__wait_prepare(&rt) == PC_OK) {
        jn = &p->free_joiner;
        jn->rt = rt;
        link_joiner(p, jn);
    }
    idle = take_joiners_if_idle(p); /* pc_pool_join()s already waiting */
    pthread_mutex_unlock(&p->mu);
    wake_joiners(p, idle);
    if (jn)
        (void)pc__wait_block(&rt, -1, NULL);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    *pp = NULL;
    pool_unref(p);
    return PC_OK;
}

pc_err
pc_pool_join(pc_pool *p, double timeout)
{
    pc__reply_to rt;
    joiner *jn;
    int rc;

    if (!p)
        return PC_EINVAL;
    if (tls_pool == p)
        return PC_EPERM;
    if ((rc = pc__wait_prepare(&rt)) != PC_OK)
        return rc;
    pthread_mutex_lock(&p->mu);
    if (!p->head && p->running == 0) {
        pthread_mutex_unlock(&p->mu);
        rt_abandon(&rt);
        return PC_OK;
    }
    if (timeout == 0 || !(jn = malloc(sizeof *jn))) {
        pthread_mutex_unlock(&p->mu);
        rt_abandon(&rt);
        return timeout == 0 ? PC_ETIMEDOUT : PC_ENOMEM;
    }
    jn->rt = rt;
    link_joiner(p, jn);
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_acq_rel);
    pthread_mutex_unlock(&p->mu);

    rc = pc__wait_block(&rt, timeout, NULL);
    if (rc == PC_ETIMEDOUT) {
        pthread_mutex_lock(&p->mu);
        if (jn->linked) {
            unlink_joiner(p, jn);
            pc__wait_drop(&rt);
            free(jn);
        } else {
            rc = PC_OK; /* idle came with the timeout: the waker has jn */
        }
        pthread_mutex_unlock(&p->mu);
    }
    pool_unref(p);
    return rc;
}

pc_err
pc_pool_run_ex(pc_pool *p, pc_pool_fn fn, void *arg, pc_pool_discard_fn discard,
               double timeout, void **result)
{
    pc__reply_to rt;
    void *r = NULL;
    job *j;
    int rc;

    if (result)
        *result = NULL;
    if (!p || !fn)
        return PC_EINVAL;
    if ((rc = pc__wait_prepare(&rt)) != PC_OK)
        return rc;
    if (!(j = malloc(sizeof *j))) {
        rt_abandon(&rt);
        return PC_ENOMEM;
    }
    j->fn = fn;
    j->arg = arg;
    j->discard = discard;
    j->result = NULL;
    j->rt = rt;
    j->waited = true;
    j->abandoned = false;
    pthread_mutex_lock(&p->mu);
    if (p->closed) {
        pthread_mutex_unlock(&p->mu);
        free(j);
        rt_abandon(&rt);
        return PC_ECLOSED;
    }
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_acq_rel);
    enqueue(p, j);
    pthread_mutex_unlock(&p->mu);

    rc = pc__wait_block(&rt, timeout, &r);
    if (rc == PC_ETIMEDOUT) {
        pthread_mutex_lock(&p->mu);
        switch (j->state) {
        case JOB_QUEUED: /* never started: it never will */
            unlink_job(p, j);
            pc__wait_drop(&rt);
            break;
        case JOB_RUNNING: /* its thread discards the result and frees j */
            j->abandoned = true;
            pc__wait_drop(&rt);
            j = NULL;
            rc = PC_ERUNNING; /* unlike a queued one, arg is still in use */
            break;
        case JOB_DONE: /* the result came with the timeout */
            rc = PC_OK;
            r = j->result;
            break;
        default: /* JOB_CANCELLED */
            rc = PC_ECLOSED;
            break;
        }
        pthread_mutex_unlock(&p->mu);
    }
    free(j);
    pool_unref(p);
    if (rc == PC_OK) {
        if (result)
            *result = r;
        else if (discard && r)
            discard(r);
    }
    return rc;
}

pc_err
pc_pool_run(pc_pool *p, pc_pool_fn fn, void *arg, double timeout, void **result)
{
    return pc_pool_run_ex(p, fn, arg, NULL, timeout, result);
}

pc_err
pc_pool_submit(pc_pool *p, pc_pool_fn fn, void *arg)
{
    job *j;

    if (!p || !fn)
        return PC_EINVAL;
    if (!(j = calloc(1, sizeof *j)))
        return PC_ENOMEM;
    j->fn = fn;
    j->arg = arg;
    pthread_mutex_lock(&p->mu);
    if (p->closed) {
        pthread_mutex_unlock(&p->mu);
        free(j);
        return PC_ECLOSED;
    }
    enqueue(p, j);
    pthread_mutex_unlock(&p->mu);
    return PC_OK;
}
