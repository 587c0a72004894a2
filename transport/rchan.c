/* transport/rchan.c — channels across nodes, the transport's half (link
 * thread only).
 *
 * Home side: `rhome` records one channel of ours that other nodes
 * subscribe to, with each node's count of end-point subscribers (sent in
 * SUBSCRIBE); their sum is the channel's remote_subs in the runtime, so it
 * counts for deliver(n), and makes each fan-out hand us the message (op
 * chan_publish). A send is published once on our PUB (topic: the name and
 * a NUL, so "news" never matches "newsflash"), numbered per channel; a
 * deliver goes directed to each subscribing node instead, and an `rpend`
 * adds up their CHAN_DELIVER_ACK counts and acknowledges the total to the
 * runtime — nodes that go down meanwhile count as none. Without a PUB (a
 * node that only connects) publications go directed too.
 *
 * Subscriber side: `rsub` records our proxy of another node's channel.
 * When its local count leaves 0 we SUB to that node's PUB (one SUB socket
 * per peer, CURVE like every link) and tell the home our count; every
 * publication that arrives is checked against the channel's sequence, and
 * what PUB dropped at its high-water mark is counted (chan_missed), never
 * silent. Remote sends and delivers on the proxy go directed to the home.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "picos/chan.h"
#include "picos/log.h"
#include "picos/node.h"
#include "picos/task.h"

#include "net_int.h"

typedef struct rnode {
    struct rnode *next;
    uint64_t node;
    size_t count;
} rnode;

typedef struct rhome {
    struct rhome *next;
    rnode *nodes;
    uint64_t seq;
    char name[];
} rhome;

typedef struct rsub {
    struct rsub *next;
    uint64_t home;
    size_t count;
    uint64_t last_seq;
    bool subscribed; /* the topic is set on the peer's SUB */
    bool synced;     /* ... and the home's CHAN_SYNC came through it */
    size_t told;     /* the count the home has from us */
    char name[];
} rsub;

typedef struct rpend {
    struct rpend *next;
    uint64_t corr;
    void (*ack)(void *actx, int reached);
    void *actx;
    int total;
    uint64_t waiting[]; /* nodes still to answer, 0 once answered */
} rpend;

/* ---- helpers ------------------------------------------------------------------ */

static rhome *
home_get(net *n, const char *name, bool make)
{
    rhome *h;
    size_t len = strlen(name);

    for (h = n->homes; h; h = h->next)
        if (!strcmp(h->name, name))
            return h;
    if (!make || !(h = calloc(1, sizeof *h + len + 1)))
        return NULL;
    memcpy(h->name, name, len + 1);
    h->next = n->homes;
    n->homes = h;
    return h;
}

static size_t
home_total(const rhome *h)
{
    size_t t = 0;
    for (rnode *r = h->nodes; r; r = r->next)
        t += r->count;
    return t;
}

/* Tell the runtime how many subscribe to h elsewhere. */
static void
home_apply(rhome *h)
{
    pc_chan *ch = pc_transport_chan_get(h->name);
    if (ch)
        pc_chan_set_remote_subs(ch, home_total(h));
    pc_transport_chan_put(ch);
}

static rsub *
sub_get(net *n, uint64_t home, const char *name, bool make)
{
    rsub *s;
    size_t len = strlen(name);

    for (s = n->subs; s; s = s->next)
        if (s->home == home && !strcmp(s->name, name))
            return s;
    if (!make || !(s = calloc(1, sizeof *s + len + 1)))
        return NULL;
    memcpy(s->name, name, len + 1);
    s->home = home;
    s->next = n->subs;
    n->subs = s;
    return s;
}

/* An envelope about channel `name` (and carrying m) to p. */
static bool
chan_out(net *n, peer *p, int kind, const char *name, pc_msg *m, uint64_t corr,
         uint64_t count, uint64_t seq, int32_t status, double deadline)
{
    wire_env e = PICOS__V1__ENVELOPE__INIT;
    Picos__V1__Chan c = PICOS__V1__CHAN__INIT;
    wire_ref from, to, who;
    Picos__V1__Down down;

    wire_ref_set(&from, m ? pc_msg_sender(m) : PC_REF_NIL, n->incarnation);
    from.node = n->node;
    wire_ref_set(&to, PC_REF_NIL, p->incarnation);
    to.node = p->node;
    c.name = (char *)name;
    e.kind = (Picos__V1__Kind)kind;
    e.from = &from;
    e.to = &to;
    e.corr = corr;
    e.count = count;
    e.seq = seq;
    e.status = status;
    if (isfinite(deadline)) {
        double left = deadline - pc_now();
        e.timeout_us = left > 1e-6 ? (uint64_t)(left * 1e6) : 1;
    }
    if (m && wire_msg_out(&e, m, &down, &who) != PC_OK)
        return false;
    /* a Down body would take the oneof: channel traffic is type + bytes */
    if (e.body_case == PICOS__V1__ENVELOPE__BODY_DOWN) {
        size_t len;
        const void *d = pc_msg_data(m, &len);
        e.type = (char *)pc_msg_type(m);
        e.payload.data = (uint8_t *)d;
        e.payload.len = len;
    }
    e.body_case = PICOS__V1__ENVELOPE__BODY_CHAN;
    e.chan = &c;
    return pc__link_out(n, p, &e);
}

/* ---- subscriber side ------------------------------------------------------------ */

static void
on_sub(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop, (void)io, (void)revents; /* the pump drains */
    pc__link_stir(pc__net);
}

/* p's SUB socket, made on first use. */
static void *
sub_socket(net *n, peer *p)
{
    int fd;
    size_t sz = sizeof fd;
    int64_t max = (int64_t)n->max_frame;
    void *s;

    if (p->sub)
        return p->sub;
    if (!p->pub_endpoint[0] || !(s = zmq_socket(n->zctx, ZMQ_SUB)))
        return NULL;
    fd = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &fd, sizeof fd);
    zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof max);
    if ((!n->plain && pc__curve_client(s, &n->keys) != PC_OK) ||
        zmq_connect(s, p->pub_endpoint) ||
        zmq_getsockopt(s, ZMQ_FD, &fd, &sz)) {
        PC_LOG_WARN("net", "can't subscribe to %s's channels at %s: %s",
                    p->name, p->pub_endpoint, zmq_strerror(errno));
        zmq_close(s);
        return NULL;
    }
    p->sub = s;
    ev_io_init(&p->sub_io, on_sub, fd, EV_READ);
    p->sub_io.data = p;
    ev_io_start(n->loop, &p->sub_io);
    p->sub_dirty = true;
    return s;
}

void
pc__rchan_sub_close(net *n, peer *p)
{
    if (!p->sub)
        return;
    ev_io_stop(n->loop, &p->sub_io);
    zmq_close(p->sub);
    p->sub = NULL;
    for (rsub *s = n->subs; s; s = s->next)
        if (s->home == p->node)
            s->subscribed = s->synced = false;
}

/* Tell the home our count once our SUB receives its channel: before
 * that, its publications would miss us (ZeroMQ's slow joiner), and the
 * home must not count us for a deliver(n). */
static void
tell_home(net *n, peer *p, rsub *s)
{
    if (s->count == s->told || (s->count && !s->synced))
        return;
    s->told = s->count;
    chan_out(n, p,
             s->count ? PICOS__V1__KIND__SUBSCRIBE
                      : PICOS__V1__KIND__UNSUBSCRIBE,
             s->name, NULL, 0, s->count, 0, 0, INFINITY);
}

/* Our proxy's count changed: SUB or not, and tell the home. */
static void
subs_changed(net *n, uint64_t home, const char *name, size_t count)
{
    rsub *s = sub_get(n, home, name, true);
    peer *p = pc__link_peer_of(n, home);
    char topic[WIRE_NAME_MAX + 2];
    size_t tlen = strlen(name) + 1;

    if (!s)
        return;
    s->count = count;
    if (!p)
        return;                /* the link is gone: nothing to tell */
    memcpy(topic, name, tlen); /* with its NUL */
    if (count && !s->subscribed) {
        void *sock = p->pub_endpoint[0] ? sub_socket(n, p) : NULL;
        p->sub_dirty = true;
        if (sock && !zmq_setsockopt(sock, ZMQ_SUBSCRIBE, topic, tlen)) {
            s->subscribed = true;
            s->synced = false; /* until its CHAN_SYNC arrives */
        } else if (!p->pub_endpoint[0]) {
            s->synced = true; /* no PUB there: it publishes directed */
        }
    } else if (!count && s->subscribed && p->sub) {
        zmq_setsockopt(p->sub, ZMQ_UNSUBSCRIBE, topic, tlen);
        s->subscribed = s->synced = false;
    }
    tell_home(n, p, s);
}

void
pc__rchan_peer_pub(net *n, peer *p)
{
    for (rsub *s = n->subs; s; s = s->next) {
        if (s->home != p->node || !s->count || s->subscribed)
            continue;
        /* it counts us already (told): subscribe the SUB, and its
         * CHAN_SYNC changes nothing more */
        s->synced = false;
        subs_changed(n, s->home, s->name, s->count);
    }
}

/* A publication of p's channel arrived (PUB or directed without corr). */
static void
publication_in(net *n, peer *p, const wire_env *e)
{
    rsub *s = sub_get(n, p->node, e->chan->name, false);
    pc_msg *m = NULL;

    if (s && e->seq) {
        if (s->last_seq && e->seq > s->last_seq + 1)
            atomic_fetch_add(&n->chan_missed, e->seq - s->last_seq - 1);
        if (e->seq > s->last_seq)
            s->last_seq = e->seq;
    }
    if (wire_msg_in(e, wire_ref_get(e->from), &m) != PC_OK ||
        pc_transport_chan_in(p->node, e->chan->name, &m, NULL, NULL) != PC_OK) {
        pc_msg_free(&m);
        atomic_fetch_add(&n->dropped, 1);
    }
}

/* Our SUB receives p's channel now (from seq on): tell p our count. */
static void
sync_in(net *n, peer *p, const wire_env *e)
{
    rsub *s = sub_get(n, p->node, e->chan->name, false);

    if (!s || !s->subscribed || s->synced)
        return;
    s->synced = true;
    if (e->seq > s->last_seq)
        s->last_seq = e->seq;
    tell_home(n, p, s);
}

void
pc__rchan_drain_sub(net *n, peer *p, int *budget)
{
    while (p->sub && *budget > 0) {
        zmq_msg_t topic, body;
        int ev = 0;
        size_t sz = sizeof ev;

        if (zmq_getsockopt(p->sub, ZMQ_EVENTS, &ev, &sz) ||
            !(ev & ZMQ_POLLIN)) {
            p->sub_dirty = false;
            return;
        }
        zmq_msg_init(&topic);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&topic, p->sub, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&topic), zmq_msg_close(&body);
            return;
        }
        --*budget;
        if (zmq_msg_more(&topic) &&
            zmq_msg_recv(&body, p->sub, ZMQ_DONTWAIT) >= 0 &&
            !zmq_msg_more(&body)) {
            const uint8_t *q = zmq_msg_data(&body),
                          *end = q + zmq_msg_size(&body), *env;
            size_t elen;
            const char *why;
            while (wire_next(&q, end, &env, &elen) == 1) {
                wire_env *e = wire_unpack(&n->arena, env, elen, &why);
                bool ours = e && e->from && e->from->node == p->node &&
                            e->from->incarnation == p->incarnation;
                if (ours && e->kind == PICOS__V1__KIND__CHAN_PUBLISH)
                    publication_in(n, p, e);
                else if (ours && e->kind == PICOS__V1__KIND__CHAN_SYNC)
                    sync_in(n, p, e);
                else
                    atomic_fetch_add(&n->refused, 1);
                wire_arena_reset(&n->arena);
            }
        } else {
            atomic_fetch_add(&n->refused, 1);
        }
        while (zmq_msg_more(&body) &&
               zmq_msg_recv(&body, p->sub, ZMQ_DONTWAIT) >= 0)
            ;
        zmq_msg_close(&topic);
        zmq_msg_close(&body);
    }
}

/* ---- home side ----------------------------------------------------------------------- */

static void
pend_check(net *n, rpend **pp)
{
    rpend *r = *pp;
    size_t k = 0;

    while (r->waiting[k] != UINT64_MAX && !r->waiting[k])
        k++;
    if (r->waiting[k] != UINT64_MAX)
        return; /* someone still to answer */
    *pp = r->next;
    r->ack(r->actx, r->total);
    free(r);
    (void)n;
}

/* One envelope of `kind` about channel `name` on our PUB, numbered seq (m:
 * its message, or NULL for a CHAN_SYNC). */
static void
pub_out(net *n, const char *name, uint64_t seq, int kind, pc_msg *m)
{
    wire_env e = PICOS__V1__ENVELOPE__INIT;
    Picos__V1__Chan c = PICOS__V1__CHAN__INIT;
    wire_ref from, to;
    wire_buf b = {0};

    wire_ref_set(&from, m ? pc_msg_sender(m) : PC_REF_NIL, n->incarnation);
    from.node = n->node;
    wire_ref_set(&to, PC_REF_NIL, 0); /* every subscriber */
    c.name = (char *)name;
    e.version = 1;
    e.kind = (Picos__V1__Kind)kind;
    e.from = &from;
    e.to = &to;
    e.seq = seq;
    if (m) {
        size_t len;
        const void *d = pc_msg_data(m, &len);
        e.type = (char *)pc_msg_type(m);
        e.payload.data = (uint8_t *)d;
        e.payload.len = len;
    }
    e.body_case = PICOS__V1__ENVELOPE__BODY_CHAN;
    e.chan = &c;
    n->pub_dirty = true;
    if (wire_append(&b, &e) == PC_OK &&
        zmq_send(n->pub, name, strlen(name) + 1, ZMQ_SNDMORE | ZMQ_DONTWAIT) >=
            0 &&
        zmq_send(n->pub, b.p, b.len, ZMQ_DONTWAIT) >= 0) {
        atomic_fetch_add(&n->frames_out, 1);
        atomic_fetch_add(&n->env_out, 1);
    } else if (m) {
        atomic_fetch_add(&n->dropped, 1);
    }
    wire_buf_free(&b);
}

/* Subscriptions reaching our XPUB (each one: ZMQ_XPUB_VERBOSE): answer
 * each with a CHAN_SYNC on its topic, so that subscriber knows its SUB
 * works and from which seq. */
void
pc__rchan_drain_xpub(net *n, int *budget)
{
    while (n->pub && *budget > 0) {
        zmq_msg_t s;
        int ev = 0;
        size_t sz = sizeof ev, len;
        const char *d;

        if (zmq_getsockopt(n->pub, ZMQ_EVENTS, &ev, &sz) ||
            !(ev & ZMQ_POLLIN)) {
            n->pub_dirty = false;
            return;
        }
        zmq_msg_init(&s);
        if (zmq_msg_recv(&s, n->pub, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&s);
            return;
        }
        --*budget;
        d = zmq_msg_data(&s);
        len = zmq_msg_size(&s);
        /* 1, the name, its NUL */
        if (len >= 3 && len <= WIRE_NAME_MAX + 2 && d[0] == 1 &&
            d[len - 1] == '\0' && memchr(d + 1, '\0', len - 1) == d + len - 1) {
            rhome *h = home_get(n, d + 1, false);
            pub_out(n, d + 1, h ? h->seq : 0, PICOS__V1__KIND__CHAN_SYNC, NULL);
        }
        zmq_msg_close(&s);
    }
}

/* A publication of our channel `name`: PUB for a send, directed for a
 * deliver (and for a send when we have no PUB). */
static void
publish(net *n, const char *name, pc_msg *m, void (*ack)(void *, int),
        void *actx)
{
    rhome *h = home_get(n, name, false);
    size_t k = 0, nn = 0;
    rpend *r = NULL;

    if (!h || !home_total(h)) {
        if (ack)
            ack(actx, 0);
        return;
    }
    h->seq++;
    if (!ack && n->pub) {
        pub_out(n, h->name, h->seq, PICOS__V1__KIND__CHAN_PUBLISH, m);
        return;
    }
    for (rnode *x = h->nodes; x; x = x->next)
        nn++;
    if (ack && !(r = calloc(1, sizeof *r + (nn + 1) * sizeof(uint64_t)))) {
        ack(actx, 0);
        return;
    }
    if (r) {
        r->corr = (1ull << 63) | ++n->next_pub;
        r->ack = ack;
        r->actx = actx;
    }
    for (rnode *x = h->nodes; x; x = x->next) {
        peer *p = x->count ? pc__link_peer_of(n, x->node) : NULL;
        if (p &&
            chan_out(n, p, PICOS__V1__KIND__CHAN_PUBLISH, name, m,
                     r ? r->corr : 0, 0, h->seq, 0, INFINITY) &&
            r)
            r->waiting[k++] = x->node;
    }
    if (r) {
        r->waiting[k] = UINT64_MAX;
        r->next = n->pends;
        n->pends = r;
        pend_check(n, &n->pends);
    }
}

static void
deliver_ack_in(net *n, peer *p, const wire_env *e)
{
    for (rpend **pp = &n->pends; *pp; pp = &(*pp)->next) {
        rpend *r = *pp;
        if (r->corr != e->corr)
            continue;
        for (size_t k = 0; r->waiting[k] != UINT64_MAX; k++) {
            if (r->waiting[k] == p->node) {
                r->waiting[k] = 0;
                if (e->status == PC_OK)
                    r->total +=
                        (int)(e->count > INT32_MAX ? INT32_MAX : e->count);
                pend_check(n, pp);
                return;
            }
        }
        return;
    }
}

/* ---- tasks for what may wait ----------------------------------------------------------- */

typedef struct chan_job {
    uint64_t node, incarnation, corr;
    int n;
    double timeout;
    pc_msg *m;
    char name[WIRE_NAME_MAX + 1];
} chan_job;

/* An answer to p's node, pushed from any thread. */
static void
answer_ack(uint64_t node, uint64_t incarnation, uint64_t corr, pc_err status,
           int count, const char *name)
{
    cmd *c = calloc(1, sizeof *c);

    if (!c || !pc__net || !(c->str = strdup(name))) {
        free(c);
        return;
    }
    c->kind = PICOS__V1__KIND__CHAN_DELIVER_ACK;
    c->node = node;
    c->incarnation = incarnation;
    c->corr = corr;
    c->status = status;
    c->count = count > 0 ? (uint64_t)count : 0;
    c->deadline = INFINITY;
    pc__net_push(pc__net, c);
}

/* A remote deliver on our channel: pc_chan_deliver waits, so in a task. */
static pc_msg *
deliver_task(void *arg)
{
    chan_job *j = arg;
    pc_chan *ch = pc_transport_chan_get(j->name);
    int reached = 0;
    pc_err rc =
        ch ? pc_chan_deliver(ch, &j->m, j->n, j->timeout, &reached) : PC_ENOENT;

    pc_transport_chan_put(ch);
    pc_msg_free(&j->m);
    answer_ack(j->node, j->incarnation, j->corr, rc, reached, j->name);
    free(j);
    return NULL;
}

/* A directed publication of p's channel, acknowledged. */
static void
published_ack(void *ctx, int reached)
{
    chan_job *j = ctx;
    answer_ack(j->node, j->incarnation, j->corr, PC_OK, reached, j->name);
    free(j);
}

static chan_job *
job_of(const peer *p, const wire_env *e)
{
    chan_job *j = calloc(1, sizeof *j);
    if (j) {
        j->node = p->node;
        j->incarnation = p->incarnation;
        j->corr = e->corr;
        j->n = e->count > INT32_MAX ? INT32_MAX : (int)e->count;
        j->timeout = e->timeout_us ? (double)e->timeout_us / 1e6 : -1;
        snprintf(j->name, sizeof j->name, "%s", e->chan->name);
    }
    return j;
}

/* ---- entry points -------------------------------------------------------------------- */

void
pc__rchan_in(net *n, peer *p, const wire_env *e)
{
    const char *name = e->chan ? e->chan->name : "";
    pc_msg *m = NULL;
    chan_job *j;

    switch (e->kind) {
    case PICOS__V1__KIND__SUBSCRIBE:
    case PICOS__V1__KIND__UNSUBSCRIBE: {
        /* records only for channels that exist: names are the peer's */
        rhome *h = home_get(n, name, pc_chan_find(name) != NULL);
        rnode **rp;
        size_t count =
            e->kind == PICOS__V1__KIND__SUBSCRIBE ? (size_t)e->count : 0;
        if (!h)
            return;
        for (rp = &h->nodes; *rp && (*rp)->node != p->node; rp = &(*rp)->next)
            ;
        if (!*rp && count && (*rp = calloc(1, sizeof **rp)))
            (*rp)->node = p->node;
        if (*rp)
            (*rp)->count = count;
        home_apply(h);
        return;
    }
    case PICOS__V1__KIND__CHAN_SEND: {
        pc_chan *ch = pc_transport_chan_get(name);
        if (!ch || wire_msg_in(e, wire_ref_get(e->from), &m) != PC_OK ||
            pc_chan_send(ch, &m) != PC_OK) {
            pc_msg_free(&m);
            atomic_fetch_add(&n->dropped, 1);
        }
        pc_transport_chan_put(ch);
        return;
    }
    case PICOS__V1__KIND__CHAN_DELIVER: {
        pc_spawn_opts o = {.worker = PC_WORKER_ANY,
                           .flags = PC_TASK_DAEMON | PC_TASK_SMALL,
                           .name = "net.chan_deliver"};
        pc_err rc = PC_ENOMEM;
        if ((j = job_of(p, e)) &&
            (rc = wire_msg_in(e, wire_ref_get(e->from), &j->m)) == PC_OK &&
            (rc = pc_spawn(deliver_task, j, &o, NULL)) == PC_OK)
            return;
        if (j)
            pc_msg_free(&j->m);
        free(j);
        answer_ack(p->node, p->incarnation, e->corr, rc, 0, name);
        return;
    }
    case PICOS__V1__KIND__CHAN_PUBLISH:
        if (!e->corr) {
            publication_in(n, p, e);
            return;
        }
        if (!(j = job_of(p, e)) ||
            wire_msg_in(e, wire_ref_get(e->from), &m) != PC_OK ||
            pc_transport_chan_in(p->node, name, &m, published_ack, j) !=
                PC_OK) {
            pc_msg_free(&m);
            answer_ack(p->node, p->incarnation, e->corr, PC_OK, 0, name);
            free(j);
        }
        return;
    case PICOS__V1__KIND__CHAN_DELIVER_ACK:
        if (e->corr >> 63) {
            deliver_ack_in(n, p, e);
        } else { /* the answer to a deliver on our proxy */
            pc_msg *v = NULL;
            int32_t count =
                (int32_t)(e->count > INT32_MAX ? INT32_MAX : e->count);
            pc_msg_new(&v, "picos.count", &count, sizeof count);
            pc_transport_reply(e->corr, e->status, v);
        }
        return;
    default:
        return;
    }
}

void
pc__rchan_cmd(net *n, cmd *c)
{
    peer *p;

    switch (c->kind) {
    case CMD_CHAN_SUBS:
        subs_changed(n, c->node, c->str, (size_t)c->count);
        return;
    case CMD_CHAN_PUB:
        publish(n, c->str, c->msg, c->ack, c->actx);
        return;
    case PICOS__V1__KIND__CHAN_SEND:
    case PICOS__V1__KIND__CHAN_DELIVER:
        p = pc__link_peer_of(n, c->node);
        if (p && chan_out(n, p, c->kind, c->str, c->msg, c->corr, c->count, 0,
                          0, c->deadline)) {
            p->out.res++; /* net.c reserved it */
            return;
        }
        if (p)
            atomic_fetch_sub(&p->queued, 1);
        atomic_fetch_add(&n->dropped, 1);
        if (c->kind == PICOS__V1__KIND__CHAN_DELIVER)
            pc_transport_reply(c->corr, PC_EUNREACH, NULL);
        return;
    case PICOS__V1__KIND__CHAN_DELIVER_ACK:
        p = pc__link_peer_of(n, c->node);
        if (p && (!c->incarnation || c->incarnation == p->incarnation))
            chan_out(n, p, c->kind, c->str, NULL, c->corr, c->count, 0,
                     c->status, INFINITY);
        return;
    default:
        return;
    }
}

void
pc__rchan_node_down(net *n, uint64_t node)
{
    /* its subscriptions to our channels end */
    for (rhome *h = n->homes; h; h = h->next) {
        for (rnode **rp = &h->nodes; *rp;) {
            if ((*rp)->node == node) {
                rnode *x = *rp;
                *rp = x->next;
                free(x);
                home_apply(h);
            } else {
                rp = &(*rp)->next;
            }
        }
    }
    /* delivers waiting for it count it as none */
    for (rpend **pp = &n->pends; *pp;) {
        rpend *r = *pp;
        for (size_t k = 0; r->waiting[k] != UINT64_MAX; k++)
            if (r->waiting[k] == node)
                r->waiting[k] = 0;
        rpend *before = *pp;
        pend_check(n, pp);
        if (*pp == before)
            pp = &(*pp)->next;
    }
    /* our subscriptions to its channels are gone with its PUB */
    for (rsub *s = n->subs; s; s = s->next)
        if (s->home == node)
            s->subscribed = s->synced = false, s->last_seq = s->told = 0;
}

void
pc__rchan_fini(net *n)
{
    while (n->pends) { /* every ack exactly once */
        rpend *r = n->pends;
        n->pends = r->next;
        r->ack(r->actx, r->total);
        free(r);
    }
    while (n->homes) {
        rhome *h = n->homes;
        n->homes = h->next;
        while (h->nodes) {
            rnode *x = h->nodes;
            h->nodes = x->next;
            free(x);
        }
        free(h);
    }
    while (n->subs) {
        rsub *s = n->subs;
        n->subs = s->next;
        free(s);
    }
}
