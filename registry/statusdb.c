/* registry/statusdb.c — the registry's store of node statuses (statusdb.h).
 *
 * One entry per node: its latest NodeStatus as a deep copy (packed and
 * unpacked again, so it shares nothing with the message it came in and
 * frees with protobuf-c's free_unpacked), whether it is up, and a ring of
 * the last `samples` compact samples for the charts. A sample keeps only
 * what a series is computed from (the counters and gauges the series
 * names use, and per service its calls and latencies), not the whole
 * status: 600 whole statuses of a node with many services would be
 * megabytes, 600 samples are tens of kilobytes. The service names of a
 * node's history are interned per entry (at most SVC_NAMES; services past
 * that have no history), so a sample's service points are small fixed
 * records.
 *
 * Entries are an array searched linearly: a registry has tens or hundreds
 * of members, each putting once a second, so a put costs a few hundred
 * compares; a list packs them all anyway. A down entry stays KEEP_US after
 * it went down, then a sweep drops it; sweeps run at every call, with the
 * latest registry time seen (put and down give it; list and series also
 * take the wall clock, so a registry whose members all went down still
 * forgets them).
 *
 * Rates are computed between consecutive samples, over the time the node
 * says passed between them (its sampled_us: the interval the counters
 * cover, free of the jitter of their way to the registry), falling back to
 * the registry's times when the node's clock did not advance. A counter
 * that went down (it can't within one incarnation) gives no point.
 *
 * One mutex guards everything; the change callback is called after it is
 * released, so a callback may call back into the db.
 */
#define _GNU_SOURCE
#include "statusdb.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "picos/node.h"

/* How long a down node's last status is kept, µs. */
#define KEEP_US (600ull * 1000000ull)
/* Service names with a history, per node. */
#define SVC_NAMES 256

typedef struct svc_pt {
    uint32_t idx; /* into the entry's svcs */
    uint32_t p50, p99;
    uint64_t calls;
} svc_pt;

typedef struct sample {
    uint64_t t_us; /* registry clock, when it came */
    uint64_t s_us; /* the node's clock, when it was taken */
    uint64_t sent, received, rss, tasks;
    uint64_t jobs_done, jobs_failed; /* NodeStatus.compute (0 without) */
    double cpu;
    uint32_t nsvc;
    svc_pt *svc;
} sample;

typedef struct entry {
    uint64_t node, incarnation;
    Picos__V1__NodeStatus *latest;
    uint64_t received_us, down_us;
    bool up;
    char reason[128];
    sample *ring;   /* db->samples slots */
    size_t head, n; /* next slot, samples held */
    char *svcs[SVC_NAMES];
    uint32_t nsvcs;
} entry;

struct pc__statusdb {
    pthread_mutex_t mu;
    size_t samples;
    entry **v;
    size_t n, cap;
    uint64_t last_now;
    pc__statusdb_cb cb;
    void *cb_arg;
};

pc_err
pc__statusdb_new(size_t samples, pc__statusdb **out)
{
    pc__statusdb *db;

    if (!out)
        return PC_EINVAL;
    *out = NULL;
    if (!(db = calloc(1, sizeof *db)))
        return PC_ENOMEM;
    pthread_mutex_init(&db->mu, NULL);
    db->samples = samples ? samples : 600;
    *out = db;
    return PC_OK;
}

static void
entry_clear_history(entry *e, size_t samples)
{
    if (e->ring)
        for (size_t i = 0; i < samples; i++)
            free(e->ring[i].svc);
    free(e->ring);
    e->ring = NULL;
    e->head = e->n = 0;
    for (uint32_t i = 0; i < e->nsvcs; i++)
        free(e->svcs[i]);
    e->nsvcs = 0;
}

static void
entry_free(entry *e, size_t samples)
{
    if (!e)
        return;
    entry_clear_history(e, samples);
    if (e->latest)
        picos__v1__node_status__free_unpacked(e->latest, NULL);
    free(e);
}

void
pc__statusdb_free(pc__statusdb **db)
{
    if (!db || !*db)
        return;
    for (size_t i = 0; i < (*db)->n; i++)
        entry_free((*db)->v[i], (*db)->samples);
    free((*db)->v);
    pthread_mutex_destroy(&(*db)->mu);
    free(*db);
    *db = NULL;
}

static entry *
find(pc__statusdb *db, uint64_t node, size_t *at)
{
    for (size_t i = 0; i < db->n; i++)
        if (db->v[i]->node == node) {
            if (at)
                *at = i;
            return db->v[i];
        }
    return NULL;
}

/* Drop the entries down for longer than KEEP_US at `now`. */
static void
sweep(pc__statusdb *db, uint64_t now)
{
    if (now > db->last_now)
        db->last_now = now;
    now = db->last_now;
    for (size_t i = 0; i < db->n;) {
        entry *e = db->v[i];
        if (!e->up && now >= e->down_us && now - e->down_us > KEEP_US) {
            entry_free(e, db->samples);
            memmove(&db->v[i], &db->v[i + 1], (db->n - i - 1) * sizeof *db->v);
            db->n--;
        } else
            i++;
    }
}

/* A deep copy of s, NULL when out of memory. */
static Picos__V1__NodeStatus *
copy_status(const Picos__V1__NodeStatus *s)
{
    size_t len = picos__v1__node_status__get_packed_size(s);
    uint8_t *buf = malloc(len ? len : 1);
    Picos__V1__NodeStatus *c = NULL;

    if (!buf)
        return NULL;
    picos__v1__node_status__pack(s, buf);
    c = picos__v1__node_status__unpack(NULL, len, buf);
    free(buf);
    return c;
}

/* The index of service `name` in e's history names, interning it when
 * `add`; -1 when absent (or no room). */
static int
svc_index(entry *e, const char *name, bool add)
{
    for (uint32_t i = 0; i < e->nsvcs; i++)
        if (!strcmp(e->svcs[i], name))
            return (int)i;
    if (!add || e->nsvcs >= SVC_NAMES || !(e->svcs[e->nsvcs] = strdup(name)))
        return -1;
    return (int)e->nsvcs++;
}

static void
record(pc__statusdb *db, entry *e, const Picos__V1__NodeStatus *s, uint64_t now)
{
    sample *p;
    svc_pt *pts = NULL;
    uint32_t k = 0;

    if (!e->ring && !(e->ring = calloc(db->samples, sizeof *e->ring)))
        return;
    if (s->n_services && (pts = calloc(s->n_services, sizeof *pts)))
        for (size_t i = 0; i < s->n_services; i++) {
            const Picos__V1__ServiceStatus *v = s->services[i];
            int idx = v && v->name ? svc_index(e, v->name, true) : -1;
            if (idx < 0)
                continue;
            pts[k].idx = (uint32_t)idx;
            pts[k].calls = v->calls;
            pts[k].p50 = v->latency_p50_us;
            pts[k].p99 = v->latency_p99_us;
            k++;
        }
    p = &e->ring[e->head];
    free(p->svc);
    *p = (sample){.t_us = now,
                  .s_us = s->sampled_us,
                  .sent = s->msgs_sent,
                  .received = s->msgs_received,
                  .rss = s->rss,
                  .tasks = s->tasks,
                  .jobs_done = s->compute ? s->compute->jobs_done : 0,
                  .jobs_failed = s->compute ? s->compute->jobs_failed : 0,
                  .cpu = s->cpu_available_pct,
                  .nsvc = k,
                  .svc = pts};
    e->head = (e->head + 1) % db->samples;
    if (e->n < db->samples)
        e->n++;
}

static void
notify(pc__statusdb *db, uint64_t node, bool down)
{
    pc__statusdb_cb cb;
    void *arg;

    pthread_mutex_lock(&db->mu);
    cb = db->cb;
    arg = db->cb_arg;
    pthread_mutex_unlock(&db->mu);
    if (cb)
        cb(arg, node, down);
}

pc_err
pc__statusdb_put(pc__statusdb *db, const Picos__V1__NodeStatus *s,
                 uint64_t now_us)
{
    Picos__V1__NodeStatus *c;
    entry *e;

    if (!db || !s || !s->node)
        return PC_EINVAL;
    if (!(c = copy_status(s)))
        return PC_ENOMEM;
    pthread_mutex_lock(&db->mu);
    sweep(db, now_us);
    e = find(db, s->node, NULL);
    if (e && e->incarnation != s->incarnation) { /* a new start */
        entry_clear_history(e, db->samples);
        e->incarnation = s->incarnation;
    }
    if (!e) {
        entry **v = db->v;
        if (db->n == db->cap &&
            !(v = realloc(db->v, (db->cap ? db->cap * 2 : 16) * sizeof *v))) {
            pthread_mutex_unlock(&db->mu);
            picos__v1__node_status__free_unpacked(c, NULL);
            return PC_ENOMEM;
        }
        if (db->n == db->cap) {
            db->v = v;
            db->cap = db->cap ? db->cap * 2 : 16;
        }
        if (!(e = calloc(1, sizeof *e))) {
            pthread_mutex_unlock(&db->mu);
            picos__v1__node_status__free_unpacked(c, NULL);
            return PC_ENOMEM;
        }
        e->node = s->node;
        e->incarnation = s->incarnation;
        db->v[db->n++] = e;
    }
    if (e->latest)
        picos__v1__node_status__free_unpacked(e->latest, NULL);
    e->latest = c;
    e->received_us = now_us;
    e->up = true; /* a member again (it joined again, same start) */
    e->down_us = 0;
    e->reason[0] = '\0';
    record(db, e, s, now_us);
    pthread_mutex_unlock(&db->mu);
    notify(db, s->node, false);
    return PC_OK;
}

void
pc__statusdb_down(pc__statusdb *db, uint64_t node, uint64_t incarnation,
                  uint64_t now_us, const char *reason)
{
    entry *e;
    bool changed = false;

    if (!db)
        return;
    pthread_mutex_lock(&db->mu);
    sweep(db, now_us);
    /* of another start (a newer one reported already): not this one's */
    if ((e = find(db, node, NULL)) && e->incarnation == incarnation && e->up) {
        e->up = false;
        e->down_us = now_us;
        snprintf(e->reason, sizeof e->reason, "%s", reason ? reason : "");
        changed = true;
    }
    pthread_mutex_unlock(&db->mu);
    if (changed)
        notify(db, node, true);
}

pc_err
pc__statusdb_list(pc__statusdb *db, uint8_t **out, size_t *len)
{
    Picos__V1__NodeStatusList l = PICOS__V1__NODE_STATUS_LIST__INIT;
    Picos__V1__NodeStatusEntry *es = NULL, **ps = NULL;
    pc_err rc = PC_OK;
    size_t n;

    if (!db || !out || !len)
        return PC_EINVAL;
    *out = NULL;
    *len = 0;
    pthread_mutex_lock(&db->mu);
    sweep(db, pc_wall_us());
    if (db->n && (!(es = calloc(db->n, sizeof *es)) ||
                  !(ps = calloc(db->n, sizeof *ps)))) {
        rc = PC_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < db->n; i++) {
        entry *e = db->v[i];
        picos__v1__node_status_entry__init(&es[i]);
        es[i].status = e->latest;
        es[i].up = e->up;
        es[i].received_us = e->received_us;
        es[i].down_us = e->down_us;
        es[i].down_reason = e->reason;
        ps[i] = &es[i];
    }
    l.n_nodes = db->n;
    l.nodes = ps;
    n = picos__v1__node_status_list__get_packed_size(&l);
    if (!(*out = malloc(n ? n : 1))) {
        rc = PC_ENOMEM;
        goto done;
    }
    picos__v1__node_status_list__pack(&l, *out);
    *len = n;
done:
    pthread_mutex_unlock(&db->mu);
    free(es);
    free(ps);
    return rc;
}

/* ---- series ------------------------------------------------------------------ */

enum {
    W_SENT_RATE,
    W_RECV_RATE,
    W_CPU,
    W_RSS,
    W_TASKS,
    W_JOBS_RATE,
    W_JOBS_FAILED_RATE,
    W_SVC_CALLS_RATE,
    W_SVC_P50,
    W_SVC_P99
};

static int
parse_what(const char *what, const char **svc)
{
    static const struct {
        const char *name;
        int w;
    } plain[] = {{"msgs_sent_rate", W_SENT_RATE},
                 {"msgs_received_rate", W_RECV_RATE},
                 {"cpu_available_pct", W_CPU},
                 {"rss", W_RSS},
                 {"tasks", W_TASKS},
                 {"jobs_done_rate", W_JOBS_RATE},
                 {"jobs_failed_rate", W_JOBS_FAILED_RATE}},
      svcs[] = {{"service_calls_rate:", W_SVC_CALLS_RATE},
                {"service_p50_us:", W_SVC_P50},
                {"service_p99_us:", W_SVC_P99}};

    *svc = NULL;
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        if (!strcmp(what, plain[i].name))
            return plain[i].w;
    for (size_t i = 0; i < sizeof svcs / sizeof svcs[0]; i++) {
        size_t l = strlen(svcs[i].name);
        if (!strncmp(what, svcs[i].name, l) && what[l]) {
            *svc = what + l;
            return svcs[i].w;
        }
    }
    return -1;
}

static const svc_pt *
svc_of(const sample *p, int idx)
{
    for (uint32_t i = 0; i < p->nsvc; i++)
        if ((int)p->svc[i].idx == idx)
            return &p->svc[i];
    return NULL;
}

/* Per second, from counter a (earlier, at p) to b (at q); false: no
 * point (the counter went back, or no time passed). */
static bool
rate(const sample *p, const sample *q, uint64_t a, uint64_t b, double *out)
{
    uint64_t dt = q->s_us > p->s_us   ? q->s_us - p->s_us
                  : q->t_us > p->t_us ? q->t_us - p->t_us
                                      : 0;
    if (b < a || !dt)
        return false;
    *out = (double)(b - a) * 1e6 / (double)dt;
    return true;
}

/* The value of series w at sample q (p: the one before it, or NULL). */
static bool
value(int w, int idx, const sample *p, const sample *q, double *out)
{
    const svc_pt *a, *b;

    switch (w) {
    case W_SENT_RATE:
        return p && rate(p, q, p->sent, q->sent, out);
    case W_RECV_RATE:
        return p && rate(p, q, p->received, q->received, out);
    case W_CPU:
        *out = q->cpu;
        return true;
    case W_RSS:
        *out = (double)q->rss;
        return true;
    case W_TASKS:
        *out = (double)q->tasks;
        return true;
    case W_JOBS_RATE:
        return p && rate(p, q, p->jobs_done, q->jobs_done, out);
    case W_JOBS_FAILED_RATE:
        return p && rate(p, q, p->jobs_failed, q->jobs_failed, out);
    case W_SVC_CALLS_RATE:
        return p && (a = svc_of(p, idx)) && (b = svc_of(q, idx)) &&
               rate(p, q, a->calls, b->calls, out);
    case W_SVC_P50:
        return (b = svc_of(q, idx)) && ((*out = b->p50), true);
    default: /* W_SVC_P99 */
        return (b = svc_of(q, idx)) && ((*out = b->p99), true);
    }
}

pc_err
pc__statusdb_series(pc__statusdb *db, uint64_t node, const char *what,
                    uint64_t since_us, uint64_t **t, double **v, size_t *n)
{
    const char *svc;
    int w, idx = -1;
    entry *e;
    pc_err rc = PC_OK;

    if (!db || !what || !t || !v || !n)
        return PC_EINVAL;
    *t = NULL;
    *v = NULL;
    *n = 0;
    if ((w = parse_what(what, &svc)) < 0)
        return PC_EINVAL;
    pthread_mutex_lock(&db->mu);
    sweep(db, pc_wall_us());
    if (!(e = find(db, node, NULL))) {
        rc = PC_ENOENT;
        goto done;
    }
    if (svc && (idx = svc_index(e, svc, false)) < 0)
        goto done; /* a service without history: an empty series */
    if (!e->n)
        goto done;
    if (!(*t = malloc(e->n * sizeof **t)) ||
        !(*v = malloc(e->n * sizeof **v))) {
        free(*t);
        *t = NULL;
        rc = PC_ENOMEM;
        goto done;
    }
    {
        size_t first = (e->head + db->samples - e->n) % db->samples;
        const sample *prev = NULL;
        for (size_t i = 0; i < e->n; i++) {
            const sample *q = &e->ring[(first + i) % db->samples];
            double x;
            if (q->t_us > since_us && value(w, idx, prev, q, &x)) {
                (*t)[*n] = q->t_us;
                (*v)[*n] = x;
                (*n)++;
            }
            prev = q;
        }
    }
done:
    pthread_mutex_unlock(&db->mu);
    return rc;
}

void
pc__statusdb_on_change(pc__statusdb *db, pc__statusdb_cb cb, void *arg)
{
    if (!db)
        return;
    pthread_mutex_lock(&db->mu);
    db->cb = cb;
    db->cb_arg = arg;
    pthread_mutex_unlock(&db->mu);
}
