/* actors/inbox.c — envelopes: how other threads reach a worker.
 *
 * A worker owns its procs outright; another thread that wants something
 * done to one (deliver a message, wake, terminate, join, monitor...) pushes
 * an envelope on the owner's inbox — Vyukov's intrusive MPSC queue, a
 * wait-free push — and rings its doorbell (an ev_async) only when the
 * worker is about to sleep, so a busy worker is never sent a system call.
 * The owner applies envelopes with env_apply(), which is also what
 * pc__at_owner() calls directly when the target is on the caller's own
 * worker: one code path for "here" and "there".
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void handle_env(pc__worker *w, pc__env *e);

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
    /* seq_cst: with the load of `sleeping` after it, one half of the
     * sleep/ring handshake (pc__env_push, worker_idle) */
    prev = atomic_exchange_explicit(&q->head, e, memory_order_seq_cst);
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
    return q->tail == atomic_load_explicit(&q->head, memory_order_seq_cst) &&
           !atomic_load_explicit(&q->tail->next, memory_order_acquire);
}

pc__env *
pc__env_new(int kind)
{
    uint16_t home;
    pc__env *e = pc__cache_get(pc__tls_worker, PC__CACHE_ENV, &home);

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
    pc__cache_put(PC__CACHE_ENV, e->home, e);
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
    /* Dekker with worker_idle(), all four accesses seq_cst: we swap the
     * inbox head then read `sleeping`, the worker sets `sleeping` then reads
     * the head, so either it sees our envelope before sleeping or we see it
     * sleeping and ring (on x86 the swap is the only barrier). */
    if (atomic_load_explicit(&target->sleeping, memory_order_seq_cst))
        ev_async_send(target->loop, &target->doorbell);
    if (foreign)
        atomic_fetch_sub(&pc__the_node->foreign_pushes, 1);
}

void
pc__inbox_init(pc__worker *w)
{
    mpsc_init(&w->inbox);
}

void
pc__inbox_drain(pc__worker *w)
{
    pc__env *e;

    while ((e = mpsc_pop(&w->inbox)))
        handle_env(w, e);
}

pc__env *
pc__inbox_pop(pc__worker *w)
{
    return mpsc_pop(&w->inbox);
}

bool
pc__inbox_empty(pc__worker *w)
{
    return mpsc_empty(&w->inbox);
}

/* Apply e on the owner's worker w (does not free e)... */
static void
env_apply(pc__worker *w, pc__env *e)
{
    switch (e->kind) {
    case PC__ENV_SPAWN:
        pc__link(w, e->ptr);
        break;
    case PC__ENV_MSG:
        pc__msg_local(w, e);
        break;
    case PC__ENV_RESUME:
        pc__resume_local(w, e);
        break;
    case PC__ENV_TERMINATE:
        pc__terminate_local(w, pc__proc_lookup(w, e->to));
        break;
    case PC__ENV_JOIN:
        pc__join_local(w, e);
        break;
    case PC__ENV_UNJOIN:
        pc__unjoin_local(w, e);
        break;
    case PC__ENV_MONITOR:
    case PC__ENV_DEMONITOR:
    case PC__ENV_LINK:
    case PC__ENV_UNLINK:
    case PC__ENV_EXIT_SIG:
        pc__mon_handle_env(w, e);
        break;
    case PC__ENV_FD_CANCEL:
        pc__fd_cancel_local(w, e);
        break;
    case PC__ENV_SWAP:
    case PC__ENV_SWAP_ALL:
        pc__swap_handle_env(w, e);
        break;
    case PC__ENV_STATS:
        pc__stats_local(w, e);
        break;
    case PC__ENV_REPLY:
        pc__wake(e->rt, e->rc, e->msg, e->ptr); /* on the waiter's worker */
        e->msg = NULL;
        break;
    }
}

/* ... and free it: what a worker does with each envelope it pops. */
static void
handle_env(pc__worker *w, pc__env *e)
{
    env_apply(w, e);
    pc__env_free(e);
}

pc_err
pc__at_owner(const pc__env *req)
{
    pc__worker *tw;
    pc__proc *p;
    pc__env *e;
    pc_err rc;

    if ((rc = pc__route(req->to, &tw, &p)) != PC_OK)
        return rc;
    if (p) {
        pc__env local = *req;
        env_apply(tw, &local);
        return PC_OK;
    }
    if (!(e = pc__env_new(req->kind)))
        return PC_ENOMEM;
    uint16_t home = e->home;
    *e = *req;
    e->home = home;
    atomic_init(&e->next, NULL);
    pc__env_push(tw, e);
    return PC_OK;
}
