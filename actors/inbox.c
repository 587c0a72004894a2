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
 *
 * A plain send to another worker posts no envelope: the message the sender
 * owns alone goes on the inbox itself, linked through its own pc__qnode with
 * the target's id beside it, and a tag bit in the link tells the consumer it
 * is a message. That saves an allocation, a free sent home and two cache
 * lines crossing between the cores per message; the order of a sender's
 * messages and envelopes is still the inbox's one FIFO.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void handle_env(pc__worker *w, pc__env *e);

static inline pc__qnode *
node_of(uintptr_t link)
{
    return (pc__qnode *)(link & ~PC__Q_MSG);
}

static void
mpsc_init(pc__mpsc *q)
{
    atomic_init(&q->stub.q.next, 0);
    atomic_init(&q->head, (uintptr_t)&q->stub.q);
    q->tail = (uintptr_t)&q->stub.q;
}

/* Push node n, tagged PC__Q_MSG when it is a message. */
static void
mpsc_push(pc__mpsc *q, pc__qnode *n, uintptr_t tag)
{
    uintptr_t link = (uintptr_t)n | tag, prev;

    atomic_store_explicit(&n->next, 0, memory_order_relaxed);
    /* seq_cst: with the load of `sleeping` after it, one half of the
     * sleep/ring handshake (pc__env_push, worker_idle) */
    prev = atomic_exchange_explicit(&q->head, link, memory_order_seq_cst);
    atomic_store_explicit(&node_of(prev)->next, link, memory_order_release);
}

/* The next link (tagged), or 0 when empty or when a push is half done (its
 * producer will finish it and the consumer sees it on a later pass: the
 * producer also rings). */
static uintptr_t
mpsc_pop(pc__mpsc *q)
{
    const uintptr_t stub = (uintptr_t)&q->stub.q;
    uintptr_t tail = q->tail;
    uintptr_t next =
        atomic_load_explicit(&node_of(tail)->next, memory_order_acquire);

    if (tail == stub) {
        if (!next)
            return 0;
        q->tail = next;
        tail = next;
        next = atomic_load_explicit(&node_of(next)->next, memory_order_acquire);
    }
    if (next) {
        q->tail = next;
        return tail;
    }
    if (tail != atomic_load_explicit(&q->head, memory_order_acquire))
        return 0;
    mpsc_push(q, &q->stub.q, 0);
    next = atomic_load_explicit(&node_of(tail)->next, memory_order_acquire);
    if (next) {
        q->tail = next;
        return tail;
    }
    return 0;
}

static bool
mpsc_empty(pc__mpsc *q)
{
    return q->tail == atomic_load_explicit(&q->head, memory_order_seq_cst) &&
           !atomic_load_explicit(&node_of(q->tail)->next, memory_order_acquire);
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

/* Post node n (tag: PC__Q_MSG for a message) on target's inbox. */
static void
post(pc__worker *target, pc__qnode *n, uintptr_t tag)
{
    /* A foreign thread may still be in here when the task it woke has run
     * and the node ends: pc_node_run() waits for such pushes to finish. */
    bool foreign = !pc__tls_worker;

    if (foreign)
        atomic_fetch_add(&pc__the_node->foreign_pushes, 1);
    mpsc_push(&target->inbox, n, tag);
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
pc__env_push(pc__worker *target, pc__env *e)
{
    post(target, &e->q, 0);
}

void
pc__msg_post(pc__worker *target, pc_ref to, pc_msg *m)
{
    m->to = to.id;
    post(target, &m->q, PC__Q_MSG);
}

/* A posted message arrives: into its target's mailbox, or freed (the target
 * ended, or its bounded mailbox refused it: counted there). */
static void
msg_arrive(pc__worker *w, pc_msg *m)
{
    pc__proc *p = pc__proc_lookup(w, (pc_ref){pc__the_node->id, m->to});
    int rc = p ? pc__deliver_local(w, p, m, 0) : PC_ENOENT;

    if (rc != PC_OK) {
        if (rc != PC_EFULL) /* the policy's drops are counted by the mailbox */
            pc__count(&w->st.dropped, 1);
        pc_msg_free(&m);
    }
}

void
pc__inbox_init(pc__worker *w)
{
    mpsc_init(&w->inbox);
}

void
pc__inbox_drain(pc__worker *w)
{
    uintptr_t link;

    while ((link = mpsc_pop(&w->inbox))) {
        if (link & PC__Q_MSG)
            msg_arrive(w, (pc_msg *)(void *)node_of(link));
        else
            handle_env(w, (pc__env *)(void *)node_of(link));
    }
}

pc__env *
pc__inbox_pop(pc__worker *w)
{
    uintptr_t link;

    while ((link = mpsc_pop(&w->inbox))) {
        pc_msg *m = (pc_msg *)(void *)node_of(link);
        if (!(link & PC__Q_MSG))
            return (pc__env *)(void *)m;
        pc_msg_free(&m); /* a message nobody will receive now */
    }
    return NULL;
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
    case PC__ENV_DEEPEST:
        pc__deepest_local(w, e);
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
    atomic_init(&e->q.next, 0);
    pc__env_push(tw, e);
    return PC_OK;
}
