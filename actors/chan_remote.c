/* actors/chan_remote.c — channels across nodes, the runtime's half.
 *
 * Two roles, both plain pc_chan objects so that local code can't tell:
 *
 * A *proxy* stands for another node's channel here (pc_chan_proxy): an
 * anonymous channel with `home` set. Local tasks subscribe to it; its
 * subscriber count goes to the transport whenever it changes (so the home
 * node knows how many end-points this node has, and the transport SUBs or
 * stops); pc_chan_send/pc_chan_deliver on it are forwarded to the home
 * (ops chan_send, and chan_deliver with a ticket); and what the home
 * publishes enters through pc_transport_chan_in(), which fans out locally
 * only. Proxies are the node's: one per (home, name), kept on one list,
 * freed when the node is.
 *
 * A channel of ours with subscribers elsewhere carries their count in
 * remote_subs (the transport sets it): it counts toward pc_chan_deliver's
 * n, and each fan-out hands the transport one reference (op chan_publish),
 * which publishes it once for all those nodes — or, for a deliver, asks
 * each and acknowledges their total.
 */
#include <stdlib.h>
#include <string.h>

#include "chan_int.h"

static pthread_mutex_t proxy_mu = PTHREAD_MUTEX_INITIALIZER;
static pc_chan *proxies;

/* The proxy of (home, name), or NULL (proxy_mu held). */
static pc_chan *
proxy_find(uint64_t home, const char *name)
{
    for (pc_chan *c = proxies; c; c = c->next_proxy)
        if (c->home == home && !strcmp(c->name, name))
            return c;
    return NULL;
}

pc_err
pc_chan_proxy(pc_chan **out, uint64_t home, const char *name)
{
    size_t len = name ? strlen(name) : 0;
    pc_chan *c;

    if (!out || !home || !len || len > PC_CHAN_NAME_MAX)
        return PC_EINVAL;
    if (!pc_node_id())
        return PC_ESTATE;
    pthread_mutex_lock(&proxy_mu);
    if (!(c = proxy_find(home, name)) && (c = calloc(1, sizeof *c + len + 1))) {
        atomic_init(&c->refs, 1);
        pthread_mutex_init(&c->mu, NULL);
        memcpy(c->name, name, len + 1);
        c->home = home;
        c->next_proxy = proxies;
        proxies = c;
    }
    pthread_mutex_unlock(&proxy_mu);
    *out = c;
    return c ? PC_OK : PC_ENOMEM;
}

void
pc__chan_proxies_clear(void)
{
    pc_chan *c;

    pthread_mutex_lock(&proxy_mu);
    while ((c = proxies)) {
        proxies = c->next_proxy;
        c->home = 0; /* an ordinary anonymous channel now: free it so */
        c->name[0] = '\0';
        pc_chan_free(&c);
    }
    pthread_mutex_unlock(&proxy_mu);
}

pc_err
pc_chan_set_remote_subs(pc_chan *ch, size_t n)
{
    if (!ch || ch->home)
        return PC_EINVAL;
    pthread_mutex_lock(&ch->mu);
    ch->remote_subs = n;
    pc__chan_update_count(ch);
    pc__chan_wake_waiters(ch);
    pthread_mutex_unlock(&ch->mu);
    return PC_OK;
}

pc_err
pc_transport_chan_in(uint64_t home, const char *name, pc_msg **m,
                     void (*ack)(void *ctx, int reached), void *ctx)
{
    pc_chan *c;

    if (!name || !m || !*m)
        return PC_EINVAL;
    pthread_mutex_lock(&proxy_mu);
    if ((c = proxy_find(home, name)))
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&proxy_mu);
    if (!c)
        return PC_ENOENT;
    pc_err rc = pc__chan_fanout_local(c, m, ack, ctx);
    pc__chan_unref(c);
    return rc;
}

void
pc__chan_proxy_count(pc_chan *c)
{
    size_t n =
        (size_t)(c->tasks ? c->tasks->n : 0) + (c->kids ? c->kids->n : 0);

    if (n != c->told) {
        c->told = n;
        pc__remote_chan_subscribers(c->home, c->name, n);
    }
}

pc_err
pc__chan_proxy_send(pc_chan *c, pc_msg **m)
{
    return pc__remote_chan_send(c->home, c->name, m);
}

pc_err
pc__chan_proxy_deliver(pc_chan *c, pc_msg **m, int n, double timeout,
                       int *reached)
{
    return pc__remote_chan_deliver(c->home, c->name, m, n, timeout, reached);
}

void
pc__chan_remote_fanout(pc_chan *c, pc_msg *m,
                       void (*ack)(void *actx, int reached), void *actx)
{
    if (pc__remote_chan_publish(c->name, &m, ack, actx) != PC_OK) {
        pc_msg_free(&m);
        if (ack)
            ack(actx, 0);
    }
}
