/* actors/chan.c — channels: local publish-subscribe.
 *
 * A channel's subscribers are kept in two arrays that are shared,
 * copy-on-write, with the fan-outs in progress: task refs (with an
 * open-addressing index over them, so subscribe, unsubscribe and the
 * duplicate check are O(1) even with a million light actors subscribed) and
 * sub-channels. A send takes the channel's small mutex only to pick up the
 * current arrays (one reference each) and the transform, then fans out with
 * no lock held: it applies the transform, hands every task one more
 * reference to the message through the channel ring of its mailbox
 * (pc__send_ex), and recurses into the sub-channels. A change to the set
 * edits the arrays in place when no fan-out holds them, else copies them
 * first, so publishers on any thread never wait for each other beyond that
 * pick-up. Tasks a fan-out finds gone (their refs are stale) are removed
 * afterwards, which is pycos's auto-unsubscribe.
 *
 * The transform runs where the message enters the channel, i.e. at its home
 * node; fan-out is by reference count only. Remote channels (DESIGN §3) keep
 * this shape: the home applies the transform and a node-level subscriber
 * fans out locally.
 *
 * pc_chan_deliver() counts acknowledgements: each end-point gets its copy
 * with an ack callback (called on the target's worker, or at once for a
 * target on the caller's worker) that updates a heap record shared by the
 * deliverer and the acks in flight, refcounted because the deliverer may
 * give up waiting first. While the fan-out runs the record holds one extra
 * "pending" count, so nobody can wake the deliverer before it waits; after
 * it, the deliverer arms the record and blocks (pc__wait_*), and whichever
 * of the last ack or the timeout comes first decides under the record's
 * mutex. Waiting for n subscribers works the same way with waiter records
 * listed in the channel and woken by subscribe.
 *
 * The hierarchy (which channel subscribes which), the name registry and the
 * cycle and depth checks are guarded by one process-wide mutex, taken only
 * by calls that change the topology or look a name up, never on the message
 * path. Lock order: topo_mu, then one channel's mu; a channel's mu is never
 * held while another one's is taken, nor during a fan-out, a transform or a
 * wait.
 */
#include "picos/chan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/stats.h"

#include "chan_int.h"
#include "internal.h"

static pthread_mutex_t topo_mu = PTHREAD_MUTEX_INITIALIZER;
static pc_chan **named; /* hash buckets, chained through next_named */
static size_t nbuckets, nnamed;
static uint64_t search_gen;

/* ---- reference counts ---------------------------------------------------- */

void
pc__chan_tasks_unref(tasks *t)
{
    if (t && atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1)
        free(t);
}

void
pc__chan_kids_unref(kids *k)
{
    if (k &&
        atomic_fetch_sub_explicit(&k->refs, 1, memory_order_acq_rel) == 1) {
        for (uint32_t i = 0; i < k->n; i++)
            pc__chan_unref(k->ch[i]);
        free(k);
    }
}

void
pc__chan_unref(pc_chan *c)
{
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    /* closed by pc_chan_free: no subscribers, parents or waiters left */
    pc__chan_tasks_unref(c->tasks);
    pc__chan_kids_unref(c->kids);
    free(c->index);
    free(c->parents);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void
pc__chan_update_count(pc_chan *c)
{
    atomic_store_explicit(&c->nsubs,
                          (size_t)(c->tasks ? c->tasks->n : 0) +
                              (c->kids ? c->kids->n : 0) + c->remote_subs,
                          memory_order_relaxed);
    if (c->home)
        pc__chan_proxy_count(c);
}

/* Under c->mu, after the count grew: wake the delivers waiting for it. A
 * waiter terminated while it waited is freed here instead, and the hold
 * its pc_chan_deliver() had on c dropped (never the last: the caller of
 * whatever changed the count holds c too). */
static void
wake_waiters(pc_chan *c, int rc)
{
    size_t have = atomic_load_explicit(&c->nsubs, memory_order_relaxed);
    nwait **pp = &c->waiters;

    while (*pp) {
        nwait *w = *pp;
        if (pc__wait_gone(&w->rt)) {
            *pp = w->next;
            free(w);
            atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel);
        } else if (rc != PC_OK || w->n <= have) {
            *pp = w->next;
            w->taken = true; /* the waiter frees w once it holds mu */
            pc__wake(w->rt, rc, NULL, NULL);
        } else {
            pp = &w->next;
        }
    }
}

void
pc__chan_wake_waiters(pc_chan *c)
{
    wake_waiters(c, PC_OK);
}

/* ---- the task set: array + index ----------------------------------------- */

static inline uint32_t
ref_hash(pc_ref r)
{
    uint64_t x = r.id ^ (r.node * 0x9E3779B97F4A7C15ull);

    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (uint32_t)x;
}

/* The index slot holding r, or the empty slot where it would go. */
static uint32_t
index_find(const pc_chan *c, pc_ref r)
{
    uint32_t mask = c->icap - 1, i = ref_hash(r) & mask;

    while (c->index[i] && !pc_ref_eq(c->tasks->ref[c->index[i] - 1], r))
        i = (i + 1) & mask;
    return i;
}

static bool
index_grow(pc_chan *c, uint32_t cap)
{
    uint32_t *old = c->index, n = c->tasks ? c->tasks->n : 0;

    if (!(c->index = calloc(cap, sizeof *c->index))) {
        c->index = old;
        return false;
    }
    free(old);
    c->icap = cap;
    for (uint32_t p = 0; p < n; p++)
        c->index[index_find(c, c->tasks->ref[p])] = p + 1;
    return true;
}

/* Empty slot i, moving later entries of its probe run back (linear probing
 * without tombstones). */
static void
index_delete(pc_chan *c, uint32_t i)
{
    uint32_t mask = c->icap - 1, j = i;

    for (;;) {
        j = (j + 1) & mask;
        if (!c->index[j])
            break;
        uint32_t k = ref_hash(c->tasks->ref[c->index[j] - 1]) & mask;
        if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
            continue; /* its home lies after the hole: it stays */
        c->index[i] = c->index[j];
        i = j;
    }
    c->index[i] = 0;
}

/* Make c->tasks private to the channel (not shared with a fan-out) with
 * room for `need` refs. Positions don't change, so the index stays valid. */
static bool
tasks_own(pc_chan *c, uint32_t need)
{
    tasks *t = c->tasks, *nt;
    uint32_t cap = t ? t->cap : 0;

    if (t && !SHARED(t) && cap >= need)
        return true;
    while (cap < need)
        cap = cap ? cap * 2 : 8;
    if (t && !SHARED(t)) {
        if (!(nt = realloc(t, sizeof *t + (size_t)cap * sizeof t->ref[0])))
            return false;
    } else {
        if (!(nt = malloc(sizeof *nt + (size_t)cap * sizeof nt->ref[0])))
            return false;
        atomic_init(&nt->refs, 1);
        nt->n = t ? t->n : 0;
        if (t)
            memcpy(nt->ref, t->ref, (size_t)t->n * sizeof t->ref[0]);
        pc__chan_tasks_unref(t);
    }
    nt->cap = cap;
    c->tasks = nt;
    return true;
}

/* Under c->mu. */
static pc_err
tasks_add(pc_chan *c, pc_ref r)
{
    uint32_t n = c->tasks ? c->tasks->n : 0;

    if (c->icap && c->index[index_find(c, r)])
        return PC_OK; /* a set: already there */
    if (n >= UINT32_MAX / 4)
        return PC_ENOMEM;
    if ((n + 1) * 2 > c->icap && !index_grow(c, c->icap ? c->icap * 2 : 16))
        return PC_ENOMEM;
    if (!tasks_own(c, n + 1))
        return PC_ENOMEM;
    c->tasks->ref[n] = r;
    c->tasks->n = n + 1;
    c->index[index_find(c, r)] = n + 1;
    return PC_OK;
}

/* Under c->mu: remove r. PC_ENOENT when it isn't there. */
pc_err
pc__chan_tasks_del(pc_chan *c, pc_ref r)
{
    uint32_t slot, p, last;

    if (!c->icap || !c->index[slot = index_find(c, r)])
        return PC_ENOENT;
    if (!tasks_own(c, c->tasks->n))
        return PC_ENOMEM;
    p = c->index[slot] - 1;
    last = c->tasks->n - 1;
    index_delete(c, slot);
    if (p != last) { /* the last one fills the gap */
        pc_ref moved = c->tasks->ref[last];
        c->tasks->ref[p] = moved;
        c->index[index_find(c, moved)] = p + 1;
    }
    c->tasks->n = last;
    return PC_OK;
}

/* ---- the channel set ----------------------------------------------------- */

/* Under c->mu: add sub (taking a reference) or remove it (dropping it
 * later: *old receives the array to unref after unlocking). */
static pc_err
kids_edit(pc_chan *c, pc_chan *add, pc_chan *del, kids **old)
{
    kids *k = c->kids, *nk;
    uint32_t n = k ? k->n : 0, cap = k ? k->cap : 0;

    *old = NULL;
    if (del) {
        uint32_t i = 0;
        while (i < n && k->ch[i] != del)
            i++;
        if (i == n)
            return PC_ENOENT;
        if (SHARED(k)) {
            if (!(nk = malloc(sizeof *nk + (size_t)cap * sizeof nk->ch[0])))
                return PC_ENOMEM;
            atomic_init(&nk->refs, 1);
            nk->cap = cap;
            nk->n = 0;
            for (uint32_t j = 0; j < n; j++) {
                if (j == i)
                    continue;
                nk->ch[nk->n++] = k->ch[j];
                TAKE(k->ch[j]);
            }
            *old = k; /* drops its references, del's among them */
            c->kids = nk;
        } else {
            k->ch[i] = k->ch[--k->n];
            pc__chan_unref(del); /* the caller still holds its own */
        }
        return PC_OK;
    }
    if (!k || SHARED(k) || n == cap) {
        uint32_t ncap = n == cap ? (cap ? cap * 2 : 4) : cap;
        if (!(nk = malloc(sizeof *nk + (size_t)ncap * sizeof nk->ch[0])))
            return PC_ENOMEM;
        atomic_init(&nk->refs, 1);
        nk->cap = ncap;
        nk->n = n;
        for (uint32_t j = 0; j < n; j++) {
            nk->ch[j] = k->ch[j];
            TAKE(k->ch[j]);
        }
        *old = k;
        c->kids = k = nk;
    }
    TAKE(add);
    k->ch[k->n++] = add;
    return PC_OK;
}

/* Under topo_mu. */
static bool
parents_add(pc_chan *c, pc_chan *p)
{
    if (c->nparents == c->pcap) {
        uint32_t cap = c->pcap ? c->pcap * 2 : 2;
        pc_chan **np = realloc(c->parents, cap * sizeof *np);
        if (!np)
            return false;
        c->parents = np;
        c->pcap = cap;
    }
    c->parents[c->nparents++] = p;
    return true;
}

static void
parents_del(pc_chan *c, pc_chan *p)
{
    for (uint32_t i = 0; i < c->nparents; i++) {
        if (c->parents[i] == p) {
            c->parents[i] = c->parents[--c->nparents];
            return;
        }
    }
}

/* Under topo_mu: the longest chain of channels starting at c going down
 * (down) or ending at c going up, counting c; *hit is set when `target`
 * lies on the way down. Memoised per search, so a diamond-rich hierarchy
 * is walked once; the recursion depth is bounded by PC_CHAN_MAX_DEPTH,
 * which every existing chain respects. */
static int
depth(pc_chan *c, bool down, const pc_chan *target, bool *hit)
{
    int d = 0;

    if (c == target)
        *hit = true;
    if (c->mark == search_gen)
        return c->memo;
    if (down) {
        for (uint32_t i = 0; c->kids && i < c->kids->n; i++) {
            int x = depth(c->kids->ch[i], true, target, hit);
            d = x > d ? x : d;
        }
    } else {
        for (uint32_t i = 0; i < c->nparents; i++) {
            int x = depth(c->parents[i], false, target, hit);
            d = x > d ? x : d;
        }
    }
    c->mark = search_gen;
    c->memo = d + 1;
    return d + 1;
}

/* ---- the name registry (topo_mu) ----------------------------------------- */

static size_t
name_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;

    while (*s)
        h = (h ^ (unsigned char)*s++) * 0x100000001b3ull;
    return (size_t)h;
}

static pc_chan *
reg_find(const char *name)
{
    if (!nbuckets)
        return NULL;
    for (pc_chan *c = named[name_hash(name) & (nbuckets - 1)]; c;
         c = c->next_named)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

static bool
reg_add(pc_chan *c)
{
    if (nnamed >= nbuckets) {
        size_t nb = nbuckets ? nbuckets * 2 : 16;
        pc_chan **b = calloc(nb, sizeof *b);
        if (!b)
            return false;
        for (size_t i = 0; i < nbuckets; i++) {
            pc_chan *x, *next;
            for (x = named[i]; x; x = next) {
                size_t h = name_hash(x->name) & (nb - 1);
                next = x->next_named;
                x->next_named = b[h];
                b[h] = x;
            }
        }
        free(named);
        named = b;
        nbuckets = nb;
    }
    size_t h = name_hash(c->name) & (nbuckets - 1);
    c->next_named = named[h];
    named[h] = c;
    nnamed++;
    return true;
}

static void
reg_del(pc_chan *c)
{
    pc_chan **pp = &named[name_hash(c->name) & (nbuckets - 1)];

    while (*pp != c)
        pp = &(*pp)->next_named;
    *pp = c->next_named;
    if (--nnamed == 0) {
        free(named);
        named = NULL;
        nbuckets = 0;
    }
}

/* ---- create, find, free -------------------------------------------------- */

pc_err
pc_chan_new(pc_chan **out, const char *name, pc_chan_transform_fn fn, void *ctx)
{
    size_t len = name ? strlen(name) : 0;
    pc_chan *c;

    if (!out)
        return PC_EINVAL;
    *out = NULL;
    if (len > PC_CHAN_NAME_MAX)
        return PC_EINVAL;
    if (!(c = calloc(1, sizeof *c + len + 1)))
        return PC_ENOMEM;
    atomic_init(&c->refs, 1);
    pthread_mutex_init(&c->mu, NULL);
    c->fn = fn;
    c->ctx = ctx;
    memcpy(c->name, name ? name : "", len + 1);
    if (len) {
        pc_err rc = PC_OK;
        pthread_mutex_lock(&topo_mu);
        if (reg_find(c->name))
            rc = PC_ESTATE;
        else if (!reg_add(c))
            rc = PC_ENOMEM;
        pthread_mutex_unlock(&topo_mu);
        if (rc != PC_OK) {
            pc__chan_unref(c);
            return rc;
        }
    }
    *out = c;
    return PC_OK;
}

pc_chan *
pc_chan_find(const char *name)
{
    pc_chan *c;

    if (!name || !*name)
        return NULL;
    pthread_mutex_lock(&topo_mu);
    c = reg_find(name);
    pthread_mutex_unlock(&topo_mu);
    return c;
}

pc_chan *
pc_transport_chan_get(const char *name)
{
    pc_chan *c;

    if (!name || !*name)
        return NULL;
    pthread_mutex_lock(&topo_mu);
    if ((c = reg_find(name)))
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&topo_mu);
    return c;
}

void
pc_transport_chan_put(pc_chan *ch)
{
    if (ch)
        pc__chan_unref(ch);
}

void
pc_chan_free(pc_chan **ch)
{
    pc_chan *c = ch ? *ch : NULL;
    kids *k, *old;
    tasks *t;

    if (!c)
        return;
    *ch = NULL;
    if (c->home)
        return; /* a proxy of another node's channel: the node keeps it */
    pthread_mutex_lock(&topo_mu);
    if (c->name[0])
        reg_del(c);
    for (uint32_t i = 0; i < c->nparents; i++) {
        pc_chan *p = c->parents[i];
        pthread_mutex_lock(&p->mu);
        /* Out of memory: c stays listed (closed, it takes nothing) and
         * goes with p. */
        if (kids_edit(p, NULL, c, &old) == PC_OK)
            pc__chan_update_count(p);
        pthread_mutex_unlock(&p->mu);
        pc__chan_kids_unref(old);
    }
    c->nparents = 0;
    pthread_mutex_lock(&c->mu);
    c->closed = true;
    k = c->kids;
    t = c->tasks;
    c->kids = NULL;
    c->tasks = NULL;
    c->icap = 0;
    free(c->index);
    c->index = NULL;
    pc__chan_update_count(c);
    wake_waiters(c, PC_ECLOSED);
    pthread_mutex_unlock(&c->mu);
    for (uint32_t i = 0; k && i < k->n; i++)
        parents_del(k->ch[i], c);
    pthread_mutex_unlock(&topo_mu);
    pc__chan_kids_unref(k);
    pc__chan_tasks_unref(t);
    pc__chan_unref(c);
}

const char *
pc_chan_name(const pc_chan *ch)
{
    return ch ? ch->name : "";
}

pc_err
pc_chan_set_transform(pc_chan *ch, pc_chan_transform_fn fn, void *ctx)
{
    pc_err rc = PC_OK;

    if (!ch)
        return PC_EINVAL;
    pthread_mutex_lock(&ch->mu);
    if (ch->closed) {
        rc = PC_ECLOSED;
    } else {
        ch->fn = fn;
        ch->ctx = ctx;
    }
    pthread_mutex_unlock(&ch->mu);
    return rc;
}

/* ---- subscribe ----------------------------------------------------------- */

pc_err
pc_chan_subscribe(pc_chan *ch, pc_ref task)
{
    uint64_t node = pc_node_id();
    pc_err rc;

    if (!ch)
        return PC_EINVAL;
    if (!node)
        return PC_ESTATE;
    if (pc_ref_is_nil(task))
        return PC_ENOENT;
    if (task.node != node)
        return PC_EUNREACH;
    if (!pc_alive(task))
        return PC_ENOENT;
    pthread_mutex_lock(&ch->mu);
    if (ch->closed) {
        rc = PC_ECLOSED;
    } else if ((rc = tasks_add(ch, task)) == PC_OK) {
        pc__chan_update_count(ch);
        wake_waiters(ch, PC_OK);
    }
    pthread_mutex_unlock(&ch->mu);
    return rc;
}

pc_err
pc_chan_unsubscribe(pc_chan *ch, pc_ref task)
{
    pc_err rc;

    if (!ch)
        return PC_EINVAL;
    pthread_mutex_lock(&ch->mu);
    if ((rc = pc__chan_tasks_del(ch, task)) == PC_OK)
        pc__chan_update_count(ch);
    pthread_mutex_unlock(&ch->mu);
    return rc;
}

pc_err
pc_chan_subscribe_chan(pc_chan *ch, pc_chan *sub)
{
    kids *old = NULL;
    bool cycle = false;
    pc_err rc = PC_OK;

    if (!ch || !sub)
        return PC_EINVAL;
    pthread_mutex_lock(&topo_mu);
    if (ch->closed || sub->closed) {
        rc = PC_ECLOSED;
        goto out;
    }
    for (uint32_t i = 0; ch->kids && i < ch->kids->n; i++)
        if (ch->kids->ch[i] == sub)
            goto out; /* a set: already there */
    search_gen++;
    int below = depth(sub, true, ch, &cycle);
    if (cycle) {
        rc = PC_ESTATE;
        goto out;
    }
    search_gen++;
    if (depth(ch, false, NULL, &cycle) + below > PC_CHAN_MAX_DEPTH) {
        rc = PC_ETOOBIG;
        goto out;
    }
    if (!parents_add(sub, ch)) {
        rc = PC_ENOMEM;
        goto out;
    }
    pthread_mutex_lock(&ch->mu);
    if ((rc = kids_edit(ch, sub, NULL, &old)) == PC_OK) {
        pc__chan_update_count(ch);
        wake_waiters(ch, PC_OK);
    }
    pthread_mutex_unlock(&ch->mu);
    if (rc != PC_OK)
        parents_del(sub, ch);
out:
    pthread_mutex_unlock(&topo_mu);
    pc__chan_kids_unref(old);
    return rc;
}

pc_err
pc_chan_unsubscribe_chan(pc_chan *ch, pc_chan *sub)
{
    kids *old = NULL;
    pc_err rc;

    if (!ch || !sub)
        return PC_EINVAL;
    pthread_mutex_lock(&topo_mu);
    pthread_mutex_lock(&ch->mu);
    if ((rc = kids_edit(ch, NULL, sub, &old)) == PC_OK)
        pc__chan_update_count(ch);
    pthread_mutex_unlock(&ch->mu);
    if (rc == PC_OK)
        parents_del(sub, ch);
    pthread_mutex_unlock(&topo_mu);
    pc__chan_kids_unref(old);
    return rc;
}

size_t
pc_chan_subscribers(const pc_chan *ch)
{
    return ch ? atomic_load_explicit(&ch->nsubs, memory_order_relaxed) : 0;
}

pc_err
pc_chan_stats_get(const pc_chan *ch, pc_chan_stats *out)
{
    if (!ch || !out)
        return PC_EINVAL;
    out->messages = atomic_load_explicit(&ch->messages, memory_order_relaxed);
    out->dropped = atomic_load_explicit(&ch->dropped, memory_order_relaxed);
    out->deliveries =
        atomic_load_explicit(&ch->deliveries, memory_order_relaxed);
    out->lost = atomic_load_explicit(&ch->lost, memory_order_relaxed);
    out->subscribers = atomic_load_explicit(&ch->nsubs, memory_order_relaxed);
    return PC_OK;
}

/* The named channels of the process that are not proxies of another node's
 * (channels belong to the process, not the node: one per process), walked
 * under topo_mu (names don't change meanwhile), each channel's home and
 * remote subscribers under its mu. dropped: by the transform and not handed
 * over (pc_chan_stats' dropped + lost); subscribers: direct ones here and
 * end-points on other nodes. */
size_t
pc_chan_stats_all(pc_chan_node_stats *out, size_t max)
{
    size_t count = 0;

    pthread_mutex_lock(&topo_mu);
    for (size_t b = 0; b < nbuckets; b++) {
        for (pc_chan *c = named[b]; c; c = c->next_named) {
            pthread_mutex_lock(&c->mu);
            uint64_t home = c->home;
            size_t remote = c->remote_subs;
            pthread_mutex_unlock(&c->mu);
            if (home)
                continue;
            if (out && count < max) {
                pc_chan_node_stats *s = &out[count];
                pc_chan_stats st;
                pc_chan_stats_get(c, &st);
                memset(s, 0, sizeof *s);
                snprintf(s->name, sizeof s->name, "%s", c->name);
                s->published = st.messages;
                s->delivered = st.deliveries;
                s->dropped = st.dropped + st.lost;
                s->subscribers = (uint32_t)(st.subscribers + remote);
            }
            count++;
        }
    }
    pthread_mutex_unlock(&topo_mu);
    return count;
}
