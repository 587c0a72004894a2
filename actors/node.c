/* actors/node.c — the node: start, run until done, stop, reap.
 *
 * One node per process. pc_node_start() makes W workers; each is a thread
 * with one libev loop, a FIFO run queue, a stack pool and an inbox
 * (sched.c, inbox.c). A worker owns its tasks and actors outright: only its
 * thread touches them, so the hot paths (same-worker send, wake, switch)
 * take no locks and no atomics.
 *
 * Shutdown order (pc_node_run): wait for the non-daemon tasks; run the
 * transport's stop hook (its threads end and push nothing more); stop and
 * join the workers; wait for foreign threads still inside a push; then, on
 * this thread, end every proc still alive (daemons, zombies) and answer
 * what is left in the inboxes with PC_ECLOSED; free the node.
 *
 * Each start draws a fresh random incarnation (and, unless the caller fixed
 * it, a random node id), and the slot generations start from a random base,
 * so refs from an earlier node in this process are stale here.
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

pc__node *pc__the_node;
_Thread_local pc__worker *pc__tls_worker;

static pthread_mutex_t start_mu = PTHREAD_MUTEX_INITIALIZER;
/* Held while pc__the_node changes and across pc_node_stop(), so that a
 * foreign thread's stop either finds the node whole or finds none (never
 * the one being freed). Never held while waiting for a worker: a task may
 * call pc_node_stop() while pc_node_run() joins its worker. */
static pthread_mutex_t stop_mu = PTHREAD_MUTEX_INITIALIZER;

static void
set_the_node(pc__node *n)
{
    pthread_mutex_lock(&stop_mu);
    pc__the_node = n;
    pthread_mutex_unlock(&stop_mu);
}

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
    pc__names_clear(); /* names die with the node */
    pc__chan_proxies_clear();
    if (n->chunks) {
        for (uint32_t c = 0; c < PC__MAX_CHUNKS; c++) {
            pc__slot *chunk = atomic_load(&n->chunks[c]);
            if (chunk)
                munmap(chunk, PC__CHUNK_SLOTS * sizeof(pc__slot));
        }
        free(n->chunks);
    }
    for (int i = 0; n->workers && i < n->nworkers; i++)
        pc__cache_flush(n, &n->workers[i]); /* before any home goes */
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
    pthread_mutex_destroy(&n->spare_mu);
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
    n->incarnation = random_id();
    n->gen_base = (uint32_t)(n->incarnation >> 32);
    n->nworkers = o.workers;
    n->stack_size = o.stack_size;
    pthread_mutex_init(&n->mu, NULL);
    pthread_mutex_init(&n->chunk_mu, NULL);
    pthread_mutex_init(&n->spare_mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&n->cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&n->slot_next, 1); /* index 0 is never used */
    n->chunks = calloc(PC__MAX_CHUNKS, sizeof *n->chunks);
    /* aligned: a worker's lines are its own (see pc__worker) */
    n->workers = aligned_alloc(_Alignof(pc__worker),
                               (size_t)o.workers * sizeof *n->workers);
    if (n->workers)
        memset(n->workers, 0, (size_t)o.workers * sizeof *n->workers);
    if (!n->chunks || !n->workers)
        goto nomem_free;
    for (int i = 0; i < o.workers; i++) {
        if (pc__worker_init(&n->workers[i], i, &o) != PC_OK)
            goto nomem_free;
    }
    set_the_node(n);
    for (; started < o.workers; started++) {
        if (pthread_create(&n->workers[started].thread, NULL, pc__worker_main,
                           &n->workers[started]) != 0)
            break;
    }
    if (started < o.workers) {
        for (int i = 0; i < started; i++) {
            atomic_store(&n->workers[i].stop, true);
            ev_async_send(n->workers[i].loop, &n->workers[i].doorbell);
            pthread_join(n->workers[i].thread, NULL);
        }
        set_the_node(NULL);
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
        pc__deadline_ts(timeout, &ts);
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
        pc__inbox_drain(w);
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
            pc_msg_free(&p->x->exit_val);
            pc__zombie_free(p->w, p);
        } else {
            pc__proc_finish(p->w, p, PC_EKILLED, NULL);
        }
        /* replies posted to other inboxes while reaping: drop them below */
    }
    for (int i = 0; i < n->nworkers; i++) {
        pc__worker *w = &n->workers[i];
        pc__env *e;
        while ((e = pc__inbox_pop(w))) {
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
    pc__transport_fini(); /* its threads end while the workers still run */
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
    set_the_node(NULL);
    node_free(n);
    pthread_mutex_unlock(&start_mu);
    return PC_OK;
}

void
pc_node_stop(void)
{
    pc__node *n;

    pthread_mutex_lock(&stop_mu);
    if ((n = pc__the_node)) {
        /* set under the lock wait_done() looks under: else it could miss
         * the broadcast and wait for ever */
        pthread_mutex_lock(&n->mu);
        atomic_store(&n->stop_requested, true);
        pthread_cond_broadcast(&n->cv);
        pthread_mutex_unlock(&n->mu);
    }
    pthread_mutex_unlock(&stop_mu);
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
