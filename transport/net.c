/* transport/net.c — the ZeroMQ transport's front: pc_net_start(), the
 * blocking calls (listen, connect, locate_at) and the ops the runtime calls.
 *
 * Every op runs in the caller's thread and never blocks: it checks the
 * node table under one mutex (is the peer up, is its queue under
 * peer_queue, does the message fit its max_frame) so a refusal is the
 * caller's own error with the message still its own, then pushes a command
 * onto a lock-free MPSC stack and rings the link thread only when the stack
 * was empty (the link thread takes the whole stack at once, so one wake
 * carries a whole batch). The link thread (link.c) owns all the rest.
 * With the links on a worker (pc_net_opts.link_worker), that worker is the
 * link thread: a task of its own appends its command to the backlog, which
 * the worker's next pass through its loop takes, and other threads ring it
 * as above; the start and the stop run on that worker (a task spawned
 * there, the doorbell's callback) while the caller waits on an event.
 *
 * Blocking calls wait on a pc_event inside a reference-counted waiter: the
 * link thread answers it or lets it expire at its deadline, and whichever
 * of the caller and the link thread lets go last frees it, so a caller that
 * gives up early never leaves the link thread a dangling pointer.
 */
#define _GNU_SOURCE
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "picos/log.h"
#include "picos/monitor.h"
#include "picos/node.h"
#include "picos/stats.h"
#include "picos/sync.h"
#include "picos/task.h"

#include "net_int.h"

net *pc__net;

/* pc__net is set by pc_net_start() and cleared by pc__net_free() with
 * net_rw held for writing; the calls of other threads that look at the net
 * (stats, endpoints, peers) hold it for reading while they do, so the end
 * of a node can't free the net under them (a task's status sample meets
 * pc_node_run's stop). */
static pthread_rwlock_t net_rw = PTHREAD_RWLOCK_INITIALIZER;

/* The net to look at, net_rw held for reading; NULL (not held) when none. */
static net *
net_look(void)
{
    net *n;

    pthread_rwlock_rdlock(&net_rw);
    if (!(n = pc__net))
        pthread_rwlock_unlock(&net_rw);
    return n;
}

static void
net_done(void)
{
    pthread_rwlock_unlock(&net_rw);
}

static void
net_set(net *n)
{
    pthread_rwlock_wrlock(&net_rw);
    pc__net = n;
    pthread_rwlock_unlock(&net_rw);
}

/* ---- commands ------------------------------------------------------------- */

void
pc__net_cmd_free(cmd *c)
{
    if (!c)
        return;
    pc_msg_free(&c->msg);
    free(c->str);
    free(c->str2);
    if (c->w)
        pc__net_waiter_put(c->w);
    free(c);
}

void
pc__net_push(net *n, cmd *c)
{
    if (n->link_worker >= 0 && pc_worker_index() == n->link_worker) {
        /* the links' own thread (a task of the link worker, or the links'
         * code): straight onto the backlog, which the worker's next pass
         * through its loop takes (ev_prepare) — no doorbell, no wake;
         * after what other threads pushed before (a command pushed from
         * the main thread before it spawned this task goes first) */
        pc__link_take_inq(n);
        c->next = NULL;
        *n->backlog_tail = c;
        n->backlog_tail = &c->next;
        return;
    }
    cmd *head = atomic_load_explicit(&n->inq, memory_order_relaxed);
    do
        c->next = head;
    while (!atomic_compare_exchange_weak_explicit(
        &n->inq, &head, c, memory_order_release, memory_order_relaxed));
    if (!head)
        ev_async_send(n->loop, &n->wake);
}

static cmd *
cmd_new(int kind, pc_ref from, pc_ref to)
{
    cmd *c = calloc(1, sizeof *c);
    if (c) {
        c->kind = kind;
        c->node = to.node;
        c->from = from;
        c->to = to;
        c->deadline = INFINITY;
    }
    return c;
}

/* Reserve room for one envelope to `node`: PC_OK, PC_EUNREACH (not up),
 * PC_EFULL (its queue is at peer_queue), PC_ETOOBIG (len can't fit one of
 * its frames). */
static pc_err
reserve(net *n, uint64_t node, size_t len)
{
    pc_err rc = PC_EUNREACH;

    pthread_mutex_lock(&n->mu);
    for (peer *p = n->peers; p; p = p->next) {
        if (p->node != node || !p->up || p->primary)
            continue;
        if (len + 1024 > p->max_frame)
            rc = PC_ETOOBIG;
        else if (atomic_fetch_add_explicit(
                     &p->queued, 1, memory_order_relaxed) >= n->peer_queue) {
            atomic_fetch_sub_explicit(&p->queued, 1, memory_order_relaxed);
            rc = PC_EFULL;
        } else
            rc = PC_OK;
        break;
    }
    pthread_mutex_unlock(&n->mu);
    return rc;
}

/* Reserve and push c, which carries *m when m is not NULL (taken on PC_OK;
 * on error c is freed and *m stays the caller's). */
static pc_err
submit(net *n, cmd *c, pc_msg **m)
{
    size_t len = 0;
    pc_err rc;

    if (!c)
        return PC_ENOMEM;
    if (m && c->kind != PICOS__V1__KIND__DOWN)
        (void)pc_msg_data(*m, &len); /* a protobuf is packed here, once */
    /* (a DOWN always goes: too big, it loses its exit value — dispatch.c) */
    if ((rc = reserve(n, c->node, len)) != PC_OK) {
        if (rc == PC_EFULL || rc == PC_EUNREACH)
            atomic_fetch_add(&n->dropped, 1);
        free(c);
        return rc;
    }
    if (m) {
        c->msg = *m;
        *m = NULL;
    }
    pc__net_push(n, c);
    return PC_OK;
}

/* ---- the ops ----------------------------------------------------------------- */

static pc_err
op_send(void *ctx, pc_ref to, pc_msg **m, bool chan)
{
    /* the runtime's monitor notifications go as DOWN: the same as a SEND
     * to the receiver, but a reader of the wire can tell them apart */
    int kind = pc_msg_is(*m, PC_MSG_DOWN) ? PICOS__V1__KIND__DOWN
                                          : PICOS__V1__KIND__SEND;
    (void)chan;
    return submit(ctx, cmd_new(kind, pc_msg_sender(*m), to), m);
}

static pc_err
op_deliver(void *ctx, pc_ref to, pc_msg **m, double deadline, uint64_t ticket)
{
    cmd *c = cmd_new(PICOS__V1__KIND__DELIVER, pc_msg_sender(*m), to);
    if (c)
        c->corr = ticket, c->deadline = deadline;
    return submit(ctx, c, m);
}

static pc_err
op_monitor(void *ctx, pc_ref watcher, pc_ref target, bool on)
{
    return submit(
        ctx,
        cmd_new(on ? PICOS__V1__KIND__MONITOR : PICOS__V1__KIND__DEMONITOR,
                watcher, target),
        NULL);
}

static pc_err
op_link(void *ctx, pc_ref local, pc_ref remote, bool on)
{
    return submit(ctx,
                  cmd_new(on ? PICOS__V1__KIND__LINK : PICOS__V1__KIND__UNLINK,
                          local, remote),
                  NULL);
}

static pc_err
op_exit_signal(void *ctx, pc_ref from, pc_ref to, pc_msg **exit)
{
    return submit(ctx, cmd_new(PICOS__V1__KIND__EXIT, from, to), exit);
}

static pc_err
op_terminate(void *ctx, pc_ref target)
{
    return submit(ctx, cmd_new(PICOS__V1__KIND__TERMINATE, pc_self(), target),
                  NULL);
}

static pc_err
op_join(void *ctx, pc_ref target, double deadline, uint64_t ticket)
{
    cmd *c = cmd_new(PICOS__V1__KIND__JOIN, pc_self(), target);
    if (c)
        c->corr = ticket, c->deadline = deadline;
    return submit(ctx, c, NULL);
}

static cmd *
chan_cmd(int kind, uint64_t home, const char *name)
{
    cmd *c = calloc(1, sizeof *c);
    if (c && !(c->str = strdup(name))) {
        free(c);
        c = NULL;
    }
    if (c) {
        c->kind = kind;
        c->node = home;
        c->deadline = INFINITY;
    }
    return c;
}

/* submit() for commands that carry a name. */
static pc_err
submit_named(net *n, cmd *c, pc_msg **m)
{
    char *name = c ? c->str : NULL;
    pc_err rc = submit(n, c, m);
    if (rc != PC_OK)
        free(name); /* submit freed c, not its name */
    return rc;
}

static pc_err
op_chan_send(void *ctx, uint64_t home, const char *name, pc_msg **m)
{
    return submit_named(ctx, chan_cmd(PICOS__V1__KIND__CHAN_SEND, home, name),
                        m);
}

static pc_err
op_chan_deliver(void *ctx, uint64_t home, const char *name, pc_msg **m, int n,
                double deadline, uint64_t ticket)
{
    cmd *c = chan_cmd(PICOS__V1__KIND__CHAN_DELIVER, home, name);
    if (c) {
        c->corr = ticket;
        c->count = (uint64_t)(n > 0 ? n : 0);
        c->deadline = deadline;
    }
    return submit_named(ctx, c, m);
}

static void
op_chan_subscribers(void *ctx, uint64_t home, const char *name, size_t count)
{
    cmd *c = chan_cmd(CMD_CHAN_SUBS, home, name);
    if (c) {
        c->count = count;
        pc__net_push(ctx, c);
    }
}

static pc_err
op_chan_publish(void *ctx, const char *name, pc_msg **m,
                void (*ack)(void *actx, int reached), void *actx)
{
    cmd *c = chan_cmd(CMD_CHAN_PUB, 0, name);
    if (!c)
        return PC_ENOMEM;
    c->msg = *m;
    *m = NULL;
    c->ack = ack;
    c->actx = actx;
    pc__net_push(ctx, c);
    return PC_OK;
}

static void
op_stop(void *ctx)
{
    net *n = ctx;
    if (n->link_worker >= 0)
        pc__keeper_stop(n); /* first: it must not outlive the sockets */
    atomic_store(&n->stopping, true);
    ev_async_send(n->loop, &n->wake);
    if (n->link_worker < 0) {
        pthread_join(n->thread, NULL);
    } else {
        /* the worker leaves in on_wake (a task of its own waits too: the
         * worker runs on_wake meanwhile) */
        (void)pc_event_wait(n->left, -1);
        pc_event_free(&n->left);
    }
    pc__net_free(n);
}

/* ---- waiters ------------------------------------------------------------------ */

/* A waiter has two references: the link thread's and the caller's. A task
 * terminated inside a call (a node's stop ends its daemon tasks where they
 * wait) never drops its own, so a task's calls are kept on `owned` until
 * the caller takes its result: each new call, and each transport start,
 * drops the caller's reference of every call whose task is no longer alive
 * (it will never run again). Nothing a terminated caller held is lost
 * track of, and nothing of it outlives the next call. */
static pthread_mutex_t owned_mu = PTHREAD_MUTEX_INITIALIZER;
static waiter *owned;

static void
owned_unlink(waiter *w)
{
    if ((*w->oprev = w->onext))
        w->onext->oprev = w->oprev;
    w->oprev = NULL;
}

/* Drop the callers' references of calls whose tasks have ended. */
static void
owned_prune(void)
{
    waiter *dead = NULL;

    pthread_mutex_lock(&owned_mu);
    for (waiter *w = owned, *next; w; w = next) {
        next = w->onext;
        if (!pc_alive(w->owner)) {
            owned_unlink(w);
            w->onext = dead;
            dead = w;
        }
    }
    pthread_mutex_unlock(&owned_mu);
    while (dead) {
        waiter *w = dead;
        dead = w->onext;
        pc__net_waiter_put(w);
    }
}

static waiter *
waiter_new(double timeout)
{
    waiter *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    if (pc_event_new(&w->ev) != PC_OK) {
        free(w);
        return NULL;
    }
    atomic_init(&w->refs, 2);
    w->deadline = pc_deadline(timeout);
    w->rc = PC_ETIMEDOUT;
    if (pc_in_task()) {
        owned_prune();
        w->owner = pc_self();
        pthread_mutex_lock(&owned_mu);
        if ((w->onext = owned))
            owned->oprev = &w->onext;
        w->oprev = &owned;
        owned = w;
        pthread_mutex_unlock(&owned_mu);
    }
    return w;
}

/* The caller is done with w (it has its result). */
static void
caller_put(waiter *w)
{
    if (!pc_ref_is_nil(w->owner)) {
        pthread_mutex_lock(&owned_mu);
        if (w->oprev)
            owned_unlink(w);
        pthread_mutex_unlock(&owned_mu);
    }
    pc__net_waiter_put(w);
}

void
pc__net_waiter_put(waiter *w)
{
    if (atomic_fetch_sub(&w->refs, 1) == 1) {
        pc_event_free(&w->ev);
        free(w);
    }
}

void
pc__net_waiter_done(waiter *w, pc_err rc)
{
    w->rc = rc;
    pc_event_set(w->ev);
}

/* Push c (owning w's second reference) and wait for w's answer. */
static pc_err
wait_for(net *n, cmd *c, waiter *w, double timeout)
{
    pc_err rc;

    c->w = w;
    pc__net_push(n, c);
    /* the link thread answers by w's deadline (its tick expires it); the
     * extra half second only bounds a link thread that never answers */
    rc = pc_event_wait(w->ev, timeout < 0 ? -1 : timeout + 0.5);
    return rc == PC_OK ? w->rc : rc;
}

/* ---- the public calls ----------------------------------------------------------- */

static pc_err
load_keys(const pc_net_opts *o, pc_curve_keys *k)
{
    uint8_t secret[PC_SECRET_MAX];
    size_t len = 0;
    pc_err rc;

    if (o->keys) {
        *k = *o->keys;
        return PC_OK;
    }
    if (o->key_file)
        return pc_curve_read(o->key_file, k);
    rc = pc_secret_load(o->secret_file, secret, sizeof secret, &len);
    if (rc == PC_OK)
        rc = pc_curve_from_secret(secret, len, k);
    memset(secret, 0, sizeof secret);
    return rc;
}

/* Links on a worker: its loop, its watchers, started from the worker. */
static pc_msg *
link_init_task(void *arg)
{
    net *n = arg;

    n->loop = pc_transport_worker_loop();
    pc__link_init(n);
    pc__link_stir(n);
    pthread_setname_np(pthread_self(), "picos-link"); /* top -H, and tests */
    pc_event_set(n->left); /* "ready": reset below for the leaving */
    return NULL;
}

/* Which worker the links run on: -1 for a thread of their own. Left to
 * us (0, no environment), a node of one worker keeps them on it: its tasks
 * wait for that worker whatever the links do, and a thread of their own
 * would cost two wake-ups per message each way; a node of more keeps them
 * on a thread that no task of any worker can hold up. */
static int
link_worker_of(const pc_net_opts *o)
{
    const char *env = getenv("PICOS_NET_LINK_WORKER");
    int workers = pc_node_workers();
    char *end;
    long i;

    if (o->link_worker > 0)
        return o->link_worker - 1 < workers ? o->link_worker - 1 : -2;
    if (o->link_worker < 0)
        return -1;
    if (!env || !*env)
        return workers == 1 ? 0 : -1;
    i = strtol(env, &end, 10);
    return *end || i < 0 ? -1 : (int)(i % workers);
}

/* Start the links on worker n->link_worker, and wait until they are. */
static pc_err
start_on_worker(net *n)
{
    pc_spawn_opts so = {.worker = PC_WORKER(n->link_worker),
                        .flags = PC_TASK_DAEMON,
                        .name = "net.link"};
    pc_err rc;

    if ((rc = pc_event_new(&n->left)) != PC_OK)
        return rc;
    if ((rc = pc_spawn(link_init_task, n, &so, NULL)) != PC_OK) {
        pc_event_free(&n->left);
        return rc;
    }
    /* (a light actor can't wait: it would be refused; n must not go) */
    while (pc_event_wait(n->left, -1) != PC_OK)
        sched_yield();
    pc_event_clear(n->left);
    return PC_OK;
}

pc_err
pc_net_start(const pc_net_opts *opts)
{
    pc_net_opts o = opts ? *opts : (pc_net_opts){0};
    pc_transport_ops ops = {0};
    net *n;
    pc_err rc;

    if (!pc_node_id() || pc__net)
        return PC_ESTATE;
    owned_prune(); /* what tasks of an earlier node left */
    if (!(n = calloc(1, sizeof *n)))
        return PC_ENOMEM;
    n->plain = o.plain;
    if (o.plain)
        PC_LOG_WARN("net", "plain links: no CURVE, no authentication — any "
                           "host that can reach this node's sockets can talk "
                           "to it");
    else if ((rc = load_keys(&o, &n->keys)) != PC_OK) {
        free(n);
        return rc;
    }
    n->hb = o.heartbeat > 0 ? o.heartbeat : 0.2;
    n->timeout = o.timeout > 0 ? o.timeout : 1.0;
    n->max_frame = o.max_frame ? o.max_frame : PC_NET_MAX_FRAME_DEFAULT;
    if (n->max_frame > UINT32_MAX)
        n->max_frame = UINT32_MAX;
    n->peer_queue = o.peer_queue ? o.peer_queue : 65536;
    n->node = pc_node_id();
    n->incarnation = pc_node_incarnation();
    if (gethostname(n->host, sizeof n->host - 1))
        strcpy(n->host, "?");
    if (o.name)
        snprintf(n->name, sizeof n->name, "%s", o.name);
    else
        snprintf(n->name, sizeof n->name, "%.200s:%d", n->host, (int)getpid());
    if ((n->link_worker = link_worker_of(&o)) < -1) {
        free(n);
        return PC_EINVAL;
    }
    pthread_mutex_init(&n->mu, NULL);
    n->next_corr = 1;
    if (!(n->zctx = zmq_ctx_new()) ||
        (n->link_worker < 0 &&
         !(n->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK)))) {
        rc = PC_ESYS;
        goto fail;
    }
    if (!n->plain && (rc = pc__zap_open(&n->zap, n->zctx, &n->keys)) != PC_OK)
        goto fail;
    net_set(n);
    if (n->link_worker >= 0) {
        pthread_mutex_init(&n->link_mu, NULL);
        if ((rc = start_on_worker(n)) != PC_OK) {
            pthread_mutex_destroy(&n->link_mu);
            goto fail;
        }
        (void)pc__keeper_start(n); /* without it, only heartbeats suffer */
    } else {
        pc__link_init(n);
        if (pthread_create(&n->thread, NULL, pc__link_main, n)) {
            rc = PC_ESYS;
            goto fail;
        }
        pthread_setname_np(n->thread, "picos-link"); /* top -H, and tests */
    }
    ops.name = "zmq";
    ops.ctx = n;
    ops.send = op_send;
    ops.deliver = op_deliver;
    ops.monitor = op_monitor;
    ops.link = op_link;
    ops.exit_signal = op_exit_signal;
    ops.terminate = op_terminate;
    ops.join = op_join;
    ops.chan_send = op_chan_send;
    ops.chan_deliver = op_chan_deliver;
    ops.chan_subscribers = op_chan_subscribers;
    ops.chan_publish = op_chan_publish;
    ops.stop = op_stop;
    if ((rc = pc_transport_register(&ops)) != PC_OK) {
        op_stop(n); /* ends the thread, which frees the sockets; frees n */
        return rc;
    }
    PC_LOG_INFO("net", "node %s (%016llx, incarnation %016llx) links %s",
                n->name, (unsigned long long)n->node,
                (unsigned long long)n->incarnation,
                n->plain ? "PLAIN" : "CURVE");
    return PC_OK;
fail:
    net_set(NULL);
    pc__zap_close(&n->zap);
    if (n->zctx)
        zmq_ctx_term(n->zctx);
    if (n->loop && n->link_worker < 0)
        ev_loop_destroy(n->loop);
    pthread_mutex_destroy(&n->mu);
    free(n);
    return rc;
}

/* After the link thread has ended (its sockets and loop are gone). */
void
pc__net_free(net *n)
{
    pthread_rwlock_wrlock(&net_rw);
    if (pc__net == n)
        pc__net = NULL;
    pthread_rwlock_unlock(&net_rw);
    if (n->link_worker >= 0)
        pthread_mutex_destroy(&n->link_mu);
    pthread_mutex_destroy(&n->mu);
    memset(&n->keys, 0, sizeof n->keys);
    free(n);
}

static pc_err
blocking_call(int kind, const char *str, const char *str2, double timeout,
              waiter **wp)
{
    net *n = net_look();
    waiter *w;
    cmd *c;
    pc_err rc;

    *wp = NULL;
    if (n)
        net_done(); /* a call as the node ends meets `stopping`, or the
                       link's end fails its waiter */
    if (!n || atomic_load(&n->stopping))
        return PC_ESTATE;
    if (!(w = waiter_new(timeout)))
        return PC_ENOMEM;
    if (!(c = calloc(1, sizeof *c)) || !(c->str = strdup(str)) ||
        (str2 && !(c->str2 = strdup(str2)))) {
        if (c)
            free(c->str), free(c);
        caller_put(w); /* the link thread's reference too: it never saw w */
        pc__net_waiter_put(w);
        return PC_ENOMEM;
    }
    c->kind = kind;
    rc = wait_for(n, c, w, timeout);
    *wp = w;
    return rc;
}

pc_err
pc_node_listen(const char *endpoint, char *bound, size_t size)
{
    waiter *w;
    pc_err rc;

    if (!endpoint || !*endpoint || strlen(endpoint) > WIRE_ENDPOINT_MAX - 16)
        return PC_EINVAL;
    rc = blocking_call(CMD_LISTEN, endpoint, NULL, 10.0, &w);
    if (rc == PC_OK && bound && size)
        snprintf(bound, size, "%s", w->text);
    if (w)
        caller_put(w);
    return rc;
}

pc_err
pc_node_connect(const char *endpoint, double timeout, uint64_t *node)
{
    waiter *w;
    pc_err rc;

    if (!endpoint || !*endpoint || strlen(endpoint) > WIRE_ENDPOINT_MAX)
        return PC_EINVAL;
    rc = blocking_call(CMD_CONNECT, endpoint, NULL, timeout, &w);
    if (rc == PC_OK && node)
        *node = w->node;
    if (w)
        caller_put(w);
    return rc;
}

pc_err
pc_locate_at(const char *where, const char *name, double timeout, pc_ref *out)
{
    waiter *w;
    pc_err rc;

    if (!where || !*where || !name || !*name || strlen(name) > WIRE_NAME_MAX ||
        strlen(where) > WIRE_ENDPOINT_MAX)
        return PC_EINVAL;
    rc = blocking_call(CMD_LOOKUP, where, name, timeout, &w);
    if (rc == PC_OK && out)
        *out = w->ref;
    if (w)
        caller_put(w);
    return rc;
}

pc_err
pc_chan_locate_at(const char *where, const char *name, double timeout,
                  struct pc_chan **out)
{
    waiter *w;
    pc_err rc;

    if (!where || !*where || !name || !*name || !out ||
        strlen(name) > WIRE_NAME_MAX || strlen(where) > WIRE_ENDPOINT_MAX)
        return PC_EINVAL;
    rc = blocking_call(CMD_CHAN_LOOKUP, where, name, timeout, &w);
    if (rc == PC_OK)
        rc = pc_chan_proxy(out, w->node, name);
    if (w)
        caller_put(w);
    return rc;
}

pc_err
pc_net_endpoints(char *router, char *pub, size_t size)
{
    net *n;

    if ((router || pub) && !size)
        return PC_EINVAL;
    if (!(n = net_look()))
        return PC_ESTATE;
    pthread_mutex_lock(&n->mu);
    if (router)
        snprintf(router, size, "%s", n->router_ep);
    if (pub)
        snprintf(pub, size, "%s", n->pub_ep);
    pthread_mutex_unlock(&n->mu);
    net_done();
    return PC_OK;
}

pc_err
pc_net_stats_get(pc_net_stats *out)
{
    net *n;

    if (!out)
        return PC_EINVAL;
    if (!(n = net_look()))
        return PC_ESTATE;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&n->mu);
    for (peer *p = n->peers; p; p = p->next)
        out->peers += p->up && !p->primary;
    pthread_mutex_unlock(&n->mu);
    out->frames_out = atomic_load(&n->frames_out);
    out->frames_in = atomic_load(&n->frames_in);
    out->env_out = atomic_load(&n->env_out);
    out->env_in = atomic_load(&n->env_in);
    out->refused = atomic_load(&n->refused);
    out->dropped = atomic_load(&n->dropped);
    out->auth_failed = atomic_load(&n->auth_failed);
    out->nodes_down = atomic_load(&n->nodes_down);
    out->chan_missed = atomic_load(&n->chan_missed);
    out->send_stalls = atomic_load(&n->send_stalls);
    net_done();
    return PC_OK;
}

/* One entry per peer node: a record that another one stands for (two
 * connections with one node) and a connection to our ROUTER that has not
 * said hello are left out; a dealer still connecting, or whose node went
 * down, is there with up false. */
size_t
pc_net_peers_get(pc_peer_stats *out, size_t max)
{
    net *n = net_look();
    double now = pc_now();
    size_t count = 0;

    if (!n)
        return 0;
    pthread_mutex_lock(&n->mu);
    for (peer *p = n->peers; p; p = p->next) {
        if (p->primary || (!p->up && !p->endpoint))
            continue;
        if (out && count < max) {
            pc_peer_stats *s = &out[count];
            memset(s, 0, sizeof *s);
            s->node = p->node;
            snprintf(s->name, sizeof s->name, "%.*s", (int)sizeof s->name - 1,
                     p->name); /* cut to fit */
            snprintf(s->endpoint, sizeof s->endpoint, "%s",
                     p->endpoint ? p->endpoint : "");
            s->up = p->up;
            s->heartbeat_age = now - last_in_get(p);
            if (s->heartbeat_age < 0)
                s->heartbeat_age = 0;
            s->queue = (uint32_t)atomic_load_explicit(&p->queued,
                                                      memory_order_relaxed);
        }
        count++;
    }
    pthread_mutex_unlock(&n->mu);
    net_done();
    return count;
}
