/* actors/node.c — the node, its workers, the slot table and the scheduler loop.
 *
 * One node per process. pc_node_start() makes W workers; each is a thread
 * with one libev loop, a FIFO run queue, a stack pool and an inbox. A worker
 * owns its tasks and actors outright: only its thread touches them, so the
 * hot paths (same-worker send, wake, switch) take no locks and no atomics.
 * Other threads reach a worker by pushing an envelope on its inbox (Vyukov's
 * wait-free MPSC queue) and ringing its doorbell — an ev_async, rung only
 * when the worker is about to sleep in the loop, so a busy worker is never
 * sent a system call.
 *
 * Refs are checked against a global slot table: chunked so it grows without
 * moving, never freed while the node lives, and each slot carries a
 * generation bumped when its proc ends. Any thread can therefore tell a
 * stale ref (PC_ENOENT) without touching the proc. Free slots go on the
 * freeing worker's own list; fresh indexes come from one atomic counter in
 * batches of 64, so spawn is O(1) and contention-free in the common case.
 *
 * The scheduler loop: drain the inbox, run up to a batch of runnable procs
 * (a task runs until it blocks; a light actor handles up to 64 messages),
 * poll libev without blocking, and block in libev only when nothing is
 * runnable and the inbox stayed empty for a short spin. Tasks switch straight
 * to the next runnable task when they block (no trip through the scheduler), up
 * to a budget, after which the scheduler polls I/O, so a ping-pong pair can't
 * starve fds and timers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define SLOT_BATCH 64
#define RUN_BATCH 256
#define SWITCH_BUDGET 256
#define IDLE_SPINS 512 /* pause instructions before sleeping: ~10-20 us */

pc__node *pc__the_node;
_Thread_local pc__worker *pc__tls_worker;
pc_err (*pc__remote_send)(pc_ref to, pc_msg **m);

static pthread_mutex_t start_mu = PTHREAD_MUTEX_INITIALIZER;

double
pc_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- slots ---------------------------------------------------------------- */

static pc_err
chunk_ensure(pc__node *n, uint32_t idx)
{
    uint32_t c = idx >> PC__CHUNK_BITS;
    pc_err rc = PC_OK;

    if (c >= PC__MAX_CHUNKS)
        return PC_ENOMEM;
    if (atomic_load_explicit(&n->chunks[c], memory_order_acquire))
        return PC_OK;
    pthread_mutex_lock(&n->chunk_mu);
    if (!atomic_load_explicit(&n->chunks[c], memory_order_relaxed)) {
        /* zero pages from the kernel, touched only as slots are used: an
         * all-zero slot is a valid free slot of generation 0 */
        void *chunk =
            mmap(NULL, PC__CHUNK_SLOTS * sizeof(pc__slot),
                 PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (chunk != MAP_FAILED)
            atomic_store_explicit(&n->chunks[c], chunk, memory_order_release);
        else
            rc = PC_ENOMEM;
    }
    pthread_mutex_unlock(&n->chunk_mu);
    return rc;
}

/* A fresh index: from the worker's reserved batch, else the global counter. */
static pc_err
slot_fresh(pc__worker *w, uint32_t *idx)
{
    pc__node *n = pc__the_node;
    uint32_t i;

    if (w && w->batch_next < w->batch_end) {
        i = w->batch_next++;
    } else if (w) {
        i = (uint32_t)atomic_fetch_add(&n->slot_next, SLOT_BATCH);
        if (i > UINT32_MAX - 2 * SLOT_BATCH)
            return PC_ENOMEM;
        w->batch_next = i + 1;
        w->batch_end = i + SLOT_BATCH;
    } else {
        i = (uint32_t)atomic_fetch_add(&n->slot_next, 1);
        if (i > UINT32_MAX - 2 * SLOT_BATCH)
            return PC_ENOMEM;
    }
    /* a batch never straddles chunks: SLOT_BATCH divides PC__CHUNK_SLOTS
     * only when batches are aligned, so just ensure each index's chunk */
    *idx = i;
    return chunk_ensure(n, i);
}

pc_err
pc__slot_alloc(pc__worker *w, uint32_t *idx, uint32_t *gen)
{
    pc_err rc;

    if (w && w->free_slot) {
        pc__slot *s = pc__slot_get(w->free_slot);
        *idx = w->free_slot;
        w->free_slot = (uint32_t)((uintptr_t)atomic_load_explicit(
                                      &s->proc, memory_order_relaxed) >>
                                  1);
        atomic_store_explicit(&s->proc, NULL, memory_order_relaxed);
        *gen = atomic_load_explicit(&s->gen, memory_order_relaxed);
        return PC_OK;
    }
    if ((rc = slot_fresh(w, idx)) != PC_OK)
        return rc;
    *gen = atomic_load_explicit(&pc__slot_get(*idx)->gen, memory_order_relaxed);
    return PC_OK;
}

/* The slot's proc ended: bump the generation (stale refs now fail) and put
 * the index on this worker's free list. */
static void
slot_release(pc__worker *w, uint32_t idx)
{
    pc__slot *s = pc__slot_get(idx);
    uint32_t g = atomic_load_explicit(&s->gen, memory_order_relaxed) + 1;

    atomic_store_explicit(&s->gen, g, memory_order_release);
    atomic_store_explicit(&s->zombie, 0, memory_order_relaxed);
    atomic_store_explicit(&s->proc,
                          (pc__proc *)(((uintptr_t)w->free_slot << 1) | 1),
                          memory_order_relaxed);
    w->free_slot = idx;
}

static inline bool
ref_split(pc_ref r, uint32_t *idx, uint32_t *gen)
{
    *idx = (uint32_t)r.id;
    *gen = (uint32_t)(r.id >> 32);
    return *idx != 0;
}

pc__proc *
pc__proc_lookup(pc__worker *w, pc_ref r)
{
    uint32_t idx, gen;
    pc__slot *s;
    pc__proc *p;

    if (!ref_split(r, &idx, &gen) || !(s = pc__slot_get(idx)) ||
        atomic_load_explicit(&s->gen, memory_order_acquire) != gen)
        return NULL;
    /* Only a proc of this worker may be dereferenced: nobody else frees it. */
    if (atomic_load_explicit(&s->worker, memory_order_relaxed) != w->index)
        return NULL;
    p = atomic_load_explicit(&s->proc, memory_order_acquire);
    if (!p || ((uintptr_t)p & 1) || p->gen != gen || p->idx != idx)
        return NULL;
    return p;
}

pc_err
pc__route(pc_ref to, pc__worker **tw, pc__proc **local)
{
    pc__node *n = pc__the_node;
    pc__worker *w = pc__tls_worker;
    uint32_t idx, gen;
    pc__slot *s;
    pc__proc *p;

    *local = NULL;
    if (!n)
        return PC_ESTATE;
    if (to.node != n->id)
        return pc_ref_is_nil(to) ? PC_ENOENT : PC_EUNREACH;
    if (!ref_split(to, &idx, &gen) || !(s = pc__slot_get(idx)) ||
        atomic_load_explicit(&s->gen, memory_order_acquire) != gen ||
        atomic_load_explicit(&s->zombie, memory_order_acquire))
        return PC_ENOENT;
    *tw = &n->workers[atomic_load_explicit(&s->worker, memory_order_relaxed)];
    if (*tw != w)
        return PC_OK;
    /* ours: nobody else frees it, so it may be dereferenced */
    p = atomic_load_explicit(&s->proc, memory_order_acquire);
    if (!p || ((uintptr_t)p & 1) || p->gen != gen || p->idx != idx)
        return PC_ENOENT;
    *local = p;
    return PC_OK;
}

bool
pc_alive(pc_ref r)
{
    pc__node *n = pc__the_node;
    uint32_t idx, gen;
    pc__slot *s;

    if (!n || r.node != n->id || !ref_split(r, &idx, &gen) ||
        !(s = pc__slot_get(idx)))
        return false;
    return atomic_load_explicit(&s->gen, memory_order_acquire) == gen &&
           !atomic_load_explicit(&s->zombie, memory_order_acquire);
}

/* ---- inbox ---------------------------------------------------------------- */

static void
mpsc_init(pc__mpsc *q)
{
    atomic_init(&q->stub.next, NULL);
    atomic_init(&q->head, &q->stub);
    q->tail = &q->stub;
}

static void
mpsc_push(pc__mpsc *q, pc__env *e)
{
    pc__env *prev;

    atomic_store_explicit(&e->next, NULL, memory_order_relaxed);
    prev = atomic_exchange_explicit(&q->head, e, memory_order_acq_rel);
    atomic_store_explicit(&prev->next, e, memory_order_release);
}

/* NULL when empty, or when a push is half done (its producer will finish it
 * and the consumer sees it on a later pass: the producer also rings). */
static pc__env *
mpsc_pop(pc__mpsc *q)
{
    pc__env *tail = q->tail;
    pc__env *next = atomic_load_explicit(&tail->next, memory_order_acquire);

    if (tail == &q->stub) {
        if (!next)
            return NULL;
        q->tail = next;
        tail = next;
        next = atomic_load_explicit(&next->next, memory_order_acquire);
    }
    if (next) {
        q->tail = next;
        return tail;
    }
    if (tail != atomic_load_explicit(&q->head, memory_order_acquire))
        return NULL;
    mpsc_push(q, &q->stub);
    next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (next) {
        q->tail = next;
        return tail;
    }
    return NULL;
}

static bool
mpsc_empty(pc__mpsc *q)
{
    return q->tail == atomic_load_explicit(&q->head, memory_order_acquire) &&
           !atomic_load_explicit(&q->tail->next, memory_order_acquire);
}

pc__env *
pc__env_new(int kind)
{
    uint16_t home;
    pc__env *e = pc__cache_alloc(pc__tls_worker, PC__CACHE_ENV, &home);

    if (e) {
        memset(e, 0, sizeof *e);
        e->kind = (uint8_t)kind;
        e->home = home;
    }
    return e;
}

void
pc__env_free(pc__env *e)
{
    pc__cache_free(PC__CACHE_ENV, e->home, e);
}

void
pc__env_push(pc__worker *target, pc__env *e)
{
    /* A foreign thread may still be in here when the task it woke has run
     * and the node ends: pc_node_run() waits for such pushes to finish. */
    bool foreign = !pc__tls_worker;

    if (foreign)
        atomic_fetch_add(&pc__the_node->foreign_pushes, 1);
    mpsc_push(&target->inbox, e);
    /* Pairs with the fence in worker_idle(): either the worker sees our
     * envelope before sleeping, or we see it sleeping and ring. */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&target->sleeping, memory_order_relaxed))
        ev_async_send(target->loop, &target->doorbell);
    if (foreign)
        atomic_fetch_sub(&pc__the_node->foreign_pushes, 1);
}

static void
drain_inbox(pc__worker *w)
{
    pc__env *e;

    while ((e = mpsc_pop(&w->inbox)))
        pc__handle_env(w, e);
}

/* ---- replies to waiters ------------------------------------------------------ */

pc__sync *
pc__sync_new(void)
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

static void
deadline_ts(double timeout, struct timespec *ts)
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

int
pc__sync_wait(pc__sync *s, double timeout, pc_msg **msg)
{
    struct timespec ts;
    int rc;

    if (timeout >= 0)
        deadline_ts(timeout, &ts);
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
    uint32_t idx, gen;
    pc__slot *s;

    if (rt.sync) {
        rt.sync->ptr = ptr; /* read by the waiter only after the post */
        pc__sync_post(rt.sync, rc, msg);
        pc__sync_unref(rt.sync);
        return;
    }
    if (!ref_split(rt.task, &idx, &gen) || !(s = pc__slot_get(idx)) ||
        atomic_load_explicit(&s->gen, memory_order_acquire) != gen) {
        pc_msg_free(&msg);
        return;
    }
    pc__worker *tw =
        &pc__the_node
             ->workers[atomic_load_explicit(&s->worker, memory_order_acquire)];
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

/* ---- run queue -------------------------------------------------------------- */

void
pc__runq_push(pc__worker *w, pc__proc *p)
{
    p->state = PC__ST_READY;
    p->next = NULL;
    if (w->rq_tail)
        w->rq_tail->next = p;
    else
        w->rq_head = p;
    w->rq_tail = p;
}

static pc__proc *
runq_pop(pc__worker *w)
{
    pc__proc *p = w->rq_head;

    if (p) {
        w->rq_head = p->next;
        if (!w->rq_head)
            w->rq_tail = NULL;
        p->next = NULL;
    }
    return p;
}

/* ---- spawning ----------------------------------------------------------------- */

void
pc__nondaemon_add(long n)
{
    pc__node *nd = pc__the_node;

    if (atomic_fetch_add(&nd->nondaemon, n) + n == 0) {
        pthread_mutex_lock(&nd->mu);
        pthread_cond_broadcast(&nd->cv);
        pthread_mutex_unlock(&nd->mu);
    }
}

int
pc__pick_worker(int want)
{
    pc__node *n = pc__the_node;
    pc__worker *w = pc__tls_worker;

    if (want > 0)
        return want - 1 < n->nworkers ? want - 1 : -1;
    if (want == PC_WORKER_SELF && w)
        return w->index;
    if (want != PC_WORKER_SELF && want != PC_WORKER_ANY)
        return -1;
    if (w)
        return (int)(w->rr++ % (uint64_t)n->nworkers);
    return (int)(atomic_fetch_add(&n->rr, 1) % (uint64_t)n->nworkers);
}

/* Called on the proc's own worker: it now exists there. */
void
pc__link(pc__worker *w, pc__proc *p)
{
    p->w = w;
    if (p->killed) {
        pc__proc_finish(w, p, PC_EKILLED, NULL);
        return;
    }
    if (p->kind == PC__ACTOR) {
        p->state = PC__ST_IDLE;
        if (pc__mb_len(p))
            pc__runq_push(w, p);
    } else {
        pc__runq_push(w, p);
    }
}

/* Make a built proc reachable: publish its slot, then link it (own worker)
 * or post it to its worker. */
void
pc__publish(pc__proc *p, int worker)
{
    pc__node *n = pc__the_node;
    pc__worker *w = pc__tls_worker, *tw = &n->workers[worker];
    pc__slot *s = pc__slot_get(p->idx);

    p->w = tw;
    if (!p->daemon)
        pc__nondaemon_add(1);
    atomic_store_explicit(&s->worker, (uint16_t)worker, memory_order_relaxed);
    atomic_store_explicit(&s->proc, p, memory_order_release);
    if (tw == w) {
        pc__link(w, p);
        return;
    }
    pc__env *e = pc__env_new(PC__ENV_SPAWN);
    if (!e)
        abort(); /* 80 bytes; the proc itself was just allocated */
    e->ptr = p;
    pc__env_push(tw, e);
}

/* ---- ending ----------------------------------------------------------------- */

/* The proc ended with rc (PC_OK: normal exit with value; PC_EKILLED...).
 * Frees the mailbox and the proc and its slot, handing joiners the result —
 * or, for a joinable proc, keeps a zombie with rc and value and tells the
 * joiners PC__ENDED, so that the one that still waits collects it with a
 * second join. Consumes value. */
void
pc__proc_finish(pc__worker *w, pc__proc *p, int rc, pc_msg *value)
{
    pc__joiner *j, *joiners = p->joiners;
    pc__mon *watchers, *links;
    pc_ref who = pc__proc_ref(p);
    bool zombie = p->joinable;

    p->state = PC__ST_DEAD; /* ending: nothing wakes, runs or ends it again */
    p->joiners = NULL;
    if (p->kind == PC__ACTOR)
        pc__actor_release((pc__actor *)p);
    else
        pc__task_release(w, (pc__task *)p);
    /* as p, before its links, mail and locks go */
    pc__at_exit_run(w, p);
    pc__sync_proc_ended(w, p);
    pc__mon_detach(p, &watchers, &links);
    pc__mb_clear(p);
    if (!p->daemon)
        pc__nondaemon_add(-1);
    p->daemon = true; /* counted once */
    /* The ref must be stale (or a zombie's) before any joiner can learn of
     * the end, so that pc_alive() after a join is false on every worker. */
    if (zombie) {
        p->exit_val = value;
        p->exit_rc = rc;
        p->state = PC__ST_ZOMBIE;
        atomic_store_explicit(&pc__slot_get(p->idx)->zombie, 1,
                              memory_order_release);
        value = NULL;
    } else {
        pc__zombie_free(w, p);
    }
    while ((j = joiners)) {
        joiners = j->next;
        if (zombie)
            pc__reply(j->rt, PC__ENDED, NULL);
        else
            pc__reply(j->rt, rc, value ? pc_msg_ref(value) : NULL);
        free(j);
    }
    if (watchers || links) /* may end linked procs: last, with p settled */
        pc__mon_notify(w, who, watchers, links, rc,
                       zombie ? pc_msg_ref(p->exit_val) : pc_msg_ref(value));
    pc_msg_free(&value);
}

pc_err
pc__proc_new(int kind, size_t size, const pc_spawn_opts *opts, pc__proc **out,
             int *worker)
{
    pc_spawn_opts o = {0};
    pc__proc *p;
    pc_err rc;

    if (opts)
        o = *opts;
    if (!pc__the_node)
        return PC_ESTATE;
    if ((*worker = pc__pick_worker(o.worker)) < 0 ||
        o.mailbox_policy > PC_MB_BLOCK)
        return PC_EINVAL;
    if (!(p = pc__proc_alloc(
              kind == PC__ACTOR ? PC__CACHE_ACTOR : PC__CACHE_TASK, size)))
        return PC_ENOMEM;
    p->kind = (uint8_t)kind;
    if ((o.name && !(p->name = strdup(o.name)))) {
        pc__proc_free(p);
        return PC_ENOMEM;
    }
    if ((rc = pc__slot_alloc(pc__tls_worker, &p->idx, &p->gen)) != PC_OK) {
        pc__proc_free(p);
        return rc;
    }
    p->daemon = (o.flags & PC_TASK_DAEMON) != 0;
    p->joinable = (o.flags & PC_TASK_JOINABLE) != 0;
    p->mb_cap = o.mailbox_cap;
    p->mb_policy = (uint8_t)o.mailbox_policy;
    *out = p;
    return PC_OK;
}

pc_err
pc__post(pc__worker *tw, int kind, pc_ref to, void *ptr)
{
    pc__env *e = pc__env_new(kind);

    if (!e)
        return PC_ENOMEM;
    e->to = to;
    e->ptr = ptr;
    pc__env_push(tw, e);
    return PC_OK;
}

pc__proc *
pc__proc_alloc(int c, size_t size)
{
    uint16_t home;
    pc__proc *p = pc__cache_alloc(pc__tls_worker, c, &home);

    if (p) {
        memset(p, 0, size);
        p->home = home;
    }
    return p;
}

void
pc__proc_free(pc__proc *p)
{
    free(p->name);
    pc__cache_free(p->kind == PC__ACTOR ? PC__CACHE_ACTOR : PC__CACHE_TASK,
                   p->home, p);
}

/* Free an ended proc (a zombie whose value was taken, or a finished one). */
void
pc__zombie_free(pc__worker *w, pc__proc *p)
{
    p->state = PC__ST_DEAD;
    slot_release(w, p->idx);
    pc__proc_free(p);
}

/* ---- the worker loop --------------------------------------------------------- */

static void
doorbell_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)loop;
    (void)a;
    (void)revents;
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

/* Nothing runnable: first spin a few microseconds on the inbox (another
 * worker's reply is often that close, and sleeping costs two system calls
 * and a wake-up), then sleep in libev until an fd, a timer or the doorbell. */
static void
worker_idle(pc__worker *w)
{
    for (int i = 0; i < IDLE_SPINS; i++) {
        if (!mpsc_empty(&w->inbox)) {
            ev_run(w->loop, EVRUN_NOWAIT); /* fds and timers still get a turn */
            return;
        }
        pc__cpu_relax();
    }
    atomic_store_explicit(&w->sleeping, true, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    if (mpsc_empty(&w->inbox) &&
        !atomic_load_explicit(&w->stop, memory_order_relaxed))
        ev_run(w->loop, EVRUN_ONCE);
    else
        ev_run(w->loop, EVRUN_NOWAIT);
    atomic_store_explicit(&w->sleeping, false, memory_order_relaxed);
}

static void *
worker_main(void *arg)
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

        drain_inbox(w);
        w->budget = SWITCH_BUDGET;
        /* until the batch or the switch budget is spent: then poll I/O */
        while (n++ < RUN_BATCH && w->budget > 0 && (p = runq_pop(w)))
            run_proc(w, p);
        if (w->rq_head)
            ev_run(w->loop, EVRUN_NOWAIT);
        else
            worker_idle(w);
    }
    pc__tls_worker = NULL;
    return NULL;
}

/* ---- node life cycle -------------------------------------------------------- */

static uint64_t
random_id(void)
{
    uint64_t id = 0;

    while (id == 0) {
        if (getrandom(&id, sizeof id, 0) != (ssize_t)sizeof id)
            id = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    }
    return id;
}

static void
node_free(pc__node *n)
{
    if (n->chunks) {
        for (uint32_t c = 0; c < PC__MAX_CHUNKS; c++) {
            pc__slot *chunk = atomic_load(&n->chunks[c]);
            if (chunk)
                munmap(chunk, PC__CHUNK_SLOTS * sizeof(pc__slot));
        }
        free(n->chunks);
    }
    for (int i = 0; n->workers && i < n->nworkers; i++) {
        pc__worker *w = &n->workers[i];
        pc__cache_fini(w);
        pc__stack_put(&w->pool, &w->shared);
        pc__stack_pool_fini(&w->pool);
        if (w->loop)
            ev_loop_destroy(w->loop);
    }
    free(n->workers);
    pthread_mutex_destroy(&n->mu);
    pthread_cond_destroy(&n->cv);
    pthread_mutex_destroy(&n->chunk_mu);
    free(n);
}

pc_err
pc_node_start(const pc_node_opts *opts)
{
    pc_node_opts o = {0};
    pc__node *n;
    pthread_condattr_t ca;
    int started = 0;

    if (opts)
        o = *opts;
    if (pc__tls_worker)
        return PC_ESTATE;
    if (o.workers < 0 || o.workers > 4096)
        return PC_EINVAL;
    if (o.workers == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        o.workers = c > 0 ? (int)c : 1;
    }
    if (!o.stack_size)
        o.stack_size = PC_STACK_DEFAULT;
    if (o.stack_size < 16384)
        o.stack_size = 16384;
    if (!o.shared_stack_size)
        o.shared_stack_size = PC_SHARED_STACK_DEFAULT;
    if (o.guard_pages == 0)
        o.guard_pages = 4096;

    pthread_mutex_lock(&start_mu);
    if (pc__the_node) {
        pthread_mutex_unlock(&start_mu);
        return PC_ESTATE;
    }
    n = calloc(1, sizeof *n);
    if (!n)
        goto nomem;
    n->id = o.node_id ? o.node_id : random_id();
    n->nworkers = o.workers;
    n->stack_size = o.stack_size;
    pthread_mutex_init(&n->mu, NULL);
    pthread_mutex_init(&n->chunk_mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&n->cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&n->slot_next, 1); /* index 0 is never used */
    n->chunks = calloc(PC__MAX_CHUNKS, sizeof *n->chunks);
    n->workers = calloc((size_t)o.workers, sizeof *n->workers);
    if (!n->chunks || !n->workers)
        goto nomem_free;
    for (int i = 0; i < o.workers; i++) {
        pc__worker *w = &n->workers[i];
        w->index = i;
        mpsc_init(&w->inbox);
        w->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
        if (!w->loop)
            goto nomem_free;
        ev_async_init(&w->doorbell, doorbell_cb);
        ev_async_start(w->loop, &w->doorbell);
        ev_set_userdata(w->loop, w);
        pc__stack_pool_init(&w->pool, o.stack_size,
                            o.guard_pages < 0 ? 0 : o.guard_pages);
        w->shared_size = o.shared_stack_size;
    }
    pc__the_node = n;
    for (; started < o.workers; started++) {
        if (pthread_create(&n->workers[started].thread, NULL, worker_main,
                           &n->workers[started]) != 0)
            break;
    }
    if (started < o.workers) {
        for (int i = 0; i < started; i++) {
            atomic_store(&n->workers[i].stop, true);
            ev_async_send(n->workers[i].loop, &n->workers[i].doorbell);
            pthread_join(n->workers[i].thread, NULL);
        }
        pc__the_node = NULL;
        node_free(n);
        pthread_mutex_unlock(&start_mu);
        return PC_ESYS;
    }
    pthread_mutex_unlock(&start_mu);
    PC_LOG_DEBUG("node", "started node %llx with %d workers",
                 (unsigned long long)n->id, n->nworkers);
    return PC_OK;

nomem_free:
    node_free(n);
nomem:
    pthread_mutex_unlock(&start_mu);
    return PC_ENOMEM;
}

static pc_err
wait_done(double timeout)
{
    pc__node *n = pc__the_node;
    struct timespec ts;
    pc_err rc = PC_OK;

    if (!n || pc__tls_worker)
        return PC_ESTATE;
    if (timeout >= 0)
        deadline_ts(timeout, &ts);
    pthread_mutex_lock(&n->mu);
    while (atomic_load(&n->nondaemon) > 0 && !atomic_load(&n->stop_requested)) {
        if (timeout < 0) {
            pthread_cond_wait(&n->cv, &n->mu);
        } else if (pthread_cond_timedwait(&n->cv, &n->mu, &ts) == ETIMEDOUT) {
            rc = atomic_load(&n->nondaemon) > 0 ? PC_ETIMEDOUT : PC_OK;
            break;
        }
    }
    pthread_mutex_unlock(&n->mu);
    return rc;
}

pc_err
pc_node_join(double timeout)
{
    return wait_done(timeout);
}

/* After the workers stopped: end every proc still alive, on this thread.
 * Nothing runs concurrently any more, so each worker's state is ours. */
static void
reap_all(pc__node *n)
{
    uint32_t top = (uint32_t)atomic_load(&n->slot_next);

    for (int i = 0; i < n->nworkers; i++) {
        pc__worker *w = &n->workers[i];
        pc__tls_worker = w; /* so finish/reply act as that worker */
        drain_inbox(w);
        pc__tls_worker = NULL;
    }
    for (uint32_t idx = 1; idx < top; idx++) {
        pc__slot *s = pc__slot_get(idx);
        pc__proc *p;
        if (!s)
            continue;
        p = atomic_load(&s->proc);
        if (!p || ((uintptr_t)p & 1) || p->idx != idx ||
            p->gen != atomic_load(&s->gen))
            continue;
        pc__tls_worker = p->w;
        if (p->state == PC__ST_ZOMBIE) {
            pc_msg_free(&p->exit_val);
            pc__zombie_free(p->w, p);
        } else {
            pc__proc_finish(p->w, p, PC_EKILLED, NULL);
        }
        /* replies posted to other inboxes while reaping: drop them below */
    }
    for (int i = 0; i < n->nworkers; i++) {
        pc__worker *w = &n->workers[i];
        pc__env *e;
        while ((e = mpsc_pop(&w->inbox))) {
            pc_msg_free(&e->msg);
            if (e->kind == PC__ENV_MSG && e->ack)
                e->ack(e->ptr, PC_ECLOSED); /* "exactly once" holds here too */
            if (e->rt.sync) {
                pc__sync_post(e->rt.sync, PC_ECLOSED, NULL);
                pc__sync_unref(e->rt.sync);
            }
            pc__env_free(e);
        }
    }
    pc__tls_worker = NULL;
}

pc_err
pc_node_run(void)
{
    pc__node *n = pc__the_node;
    pc_err rc;

    if ((rc = wait_done(-1)) != PC_OK)
        return rc;
    pthread_mutex_lock(&start_mu);
    for (int i = 0; i < n->nworkers; i++) {
        atomic_store(&n->workers[i].stop, true);
        ev_async_send(n->workers[i].loop, &n->workers[i].doorbell);
    }
    for (int i = 0; i < n->nworkers; i++)
        pthread_join(n->workers[i].thread, NULL);
    while (atomic_load(&n->foreign_pushes) > 0)
        sched_yield(); /* a foreign thread is finishing a push: a few ns */
    reap_all(n);
    pc__the_node = NULL;
    node_free(n);
    pthread_mutex_unlock(&start_mu);
    return PC_OK;
}

void
pc_node_stop(void)
{
    pc__node *n = pc__the_node;

    if (!n)
        return;
    atomic_store(&n->stop_requested, true);
    pthread_mutex_lock(&n->mu);
    pthread_cond_broadcast(&n->cv);
    pthread_mutex_unlock(&n->mu);
}

uint64_t
pc_node_id(void)
{
    return pc__the_node ? pc__the_node->id : 0;
}

int
pc_node_workers(void)
{
    return pc__the_node ? pc__the_node->nworkers : 0;
}

int
pc_worker_index(void)
{
    return pc__tls_worker ? pc__tls_worker->index : -1;
}
