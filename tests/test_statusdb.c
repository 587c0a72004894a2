/* tests/test_statusdb.c — the registry's store of node statuses
 * (registry/statusdb.c).
 *
 * Plain code, no node: statuses are made here with known numbers and
 * registry times (a base near the wall clock, since list and series also
 * sweep with the wall clock), put, and read back through the list (packed,
 * unpacked here) and the series. CUnit is called from the main thread only;
 * the change callback runs on it too.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "statusdb.h"
#include "testutil.h"

#define S 1000000ull /* a second, µs */

static uint64_t
base_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * S + (uint64_t)tv.tv_usec;
}

/* A status of node `node` (incarnation `inc`) with the given counters. */
typedef struct st_buf {
    Picos__V1__NodeStatus s;
    Picos__V1__ServiceStatus svc[2], *psvc[2];
} st_buf;

static void
st_make(st_buf *b, uint64_t node, uint64_t inc, uint64_t sampled_us,
        uint64_t sent, uint64_t tasks)
{
    memset(b, 0, sizeof *b);
    picos__v1__node_status__init(&b->s);
    b->s.node = node;
    b->s.incarnation = inc;
    b->s.name = "n";
    b->s.sampled_us = sampled_us;
    b->s.msgs_sent = sent;
    b->s.msgs_received = 2 * sent;
    b->s.tasks = tasks;
    b->s.rss = 1000 + tasks;
    b->s.cpu_available_pct = 50.0f;
}

static void
st_service(st_buf *b, const char *name, uint64_t calls, uint32_t p50,
           uint32_t p99)
{
    size_t i = b->s.n_services++;
    picos__v1__service_status__init(&b->svc[i]);
    b->svc[i].name = (char *)name;
    b->svc[i].calls = calls;
    b->svc[i].latency_p50_us = p50;
    b->svc[i].latency_p99_us = p99;
    b->psvc[i] = &b->svc[i];
    b->s.services = b->psvc;
}

static Picos__V1__NodeStatusList *
list(pc__statusdb *db)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    Picos__V1__NodeStatusList *l;

    CU_ASSERT_FATAL(pc__statusdb_list(db, &buf, &len) == PC_OK);
    l = picos__v1__node_status_list__unpack(NULL, len, buf);
    free(buf);
    CU_ASSERT_FATAL(l != NULL);
    return l;
}

static const Picos__V1__NodeStatusEntry *
entry_of(const Picos__V1__NodeStatusList *l, uint64_t node)
{
    for (size_t i = 0; i < l->n_nodes; i++)
        if (l->nodes[i]->status && l->nodes[i]->status->node == node)
            return l->nodes[i];
    return NULL;
}

/* Latest status per node, copied (the caller's struct may go), up. */
PT_TEST(put_and_list)
static void
put_and_list(void)
{
    pc__statusdb *db = NULL;
    uint64_t t0 = base_us();
    st_buf b;
    Picos__V1__NodeStatusList *l;
    const Picos__V1__NodeStatusEntry *e;

    CU_ASSERT_FATAL(pc__statusdb_new(0, &db) == PC_OK);
    l = list(db);
    CU_ASSERT_EQUAL(l->n_nodes, 0);
    picos__v1__node_status_list__free_unpacked(l, NULL);

    st_make(&b, 0xA, 1, 10, 5, 3);
    st_service(&b, "svc", 7, 100, 900);
    CU_ASSERT(pc__statusdb_put(db, &b.s, t0) == PC_OK);
    st_make(&b, 0xB, 2, 10, 6, 4);
    CU_ASSERT(pc__statusdb_put(db, &b.s, t0 + 1) == PC_OK);
    st_make(&b, 0xA, 1, 20, 8, 9); /* replaces A's latest */
    CU_ASSERT(pc__statusdb_put(db, &b.s, t0 + 2) == PC_OK);
    memset(&b, 0xff, sizeof b); /* the db kept copies */

    l = list(db);
    CU_ASSERT_EQUAL(l->n_nodes, 2);
    CU_ASSERT_FATAL((e = entry_of(l, 0xA)) != NULL);
    CU_ASSERT(e->up);
    CU_ASSERT_EQUAL(e->received_us, t0 + 2);
    CU_ASSERT_EQUAL(e->down_us, 0);
    CU_ASSERT_EQUAL(e->status->msgs_sent, 8);
    CU_ASSERT_EQUAL(e->status->tasks, 9);
    CU_ASSERT_EQUAL(e->status->n_services, 0);
    CU_ASSERT_STRING_EQUAL(e->status->name, "n");
    CU_ASSERT_FATAL((e = entry_of(l, 0xB)) != NULL);
    CU_ASSERT_EQUAL(e->status->incarnation, 2);
    CU_ASSERT_EQUAL(e->status->msgs_sent, 6);
    picos__v1__node_status_list__free_unpacked(l, NULL);

    st_make(&b, 0, 1, 10, 5, 3); /* no node id */
    CU_ASSERT(pc__statusdb_put(db, &b.s, t0) == PC_EINVAL);
    pc__statusdb_free(&db);
    CU_ASSERT(db == NULL);
}

/* Down: marked with its time and reason, kept 10 minutes, then dropped; a
 * down of another incarnation changes nothing; a new incarnation replaces
 * the entry and starts a new history. */
PT_TEST(down_kept_then_dropped)
static void
down_kept_then_dropped(void)
{
    pc__statusdb *db = NULL;
    uint64_t t0 = base_us(), *t = NULL;
    double *v = NULL;
    size_t n = 0;
    st_buf b;
    Picos__V1__NodeStatusList *l;
    const Picos__V1__NodeStatusEntry *e;

    CU_ASSERT_FATAL(pc__statusdb_new(0, &db) == PC_OK);
    st_make(&b, 0xA, 1, 10, 5, 3);
    CU_ASSERT(pc__statusdb_put(db, &b.s, t0) == PC_OK);
    st_make(&b, 0xB, 1, 10, 5, 3);
    CU_ASSERT(pc__statusdb_put(db, &b.s, t0) == PC_OK);

    pc__statusdb_down(db, 0xA, 99, t0 + S, "wrong start");
    l = list(db);
    CU_ASSERT((e = entry_of(l, 0xA)) && e->up);
    picos__v1__node_status_list__free_unpacked(l, NULL);

    pc__statusdb_down(db, 0xA, 1, t0 + S, "silent for 1.1 s");
    pc__statusdb_down(db, 0xA, 1, t0 + 2 * S, "again"); /* no change */
    l = list(db);
    CU_ASSERT_EQUAL(l->n_nodes, 2);
    CU_ASSERT_FATAL((e = entry_of(l, 0xA)) != NULL);
    CU_ASSERT(!e->up);
    CU_ASSERT_EQUAL(e->down_us, t0 + S);
    CU_ASSERT_STRING_EQUAL(e->down_reason, "silent for 1.1 s");
    CU_ASSERT_EQUAL(e->status->msgs_sent, 5); /* its last status stays */
    picos__v1__node_status_list__free_unpacked(l, NULL);

    /* 9 min 59 s later: still there */
    st_make(&b, 0xB, 1, 20, 6, 3);
    CU_ASSERT(pc__statusdb_put(db, &b.s, t0 + S + 599 * S) == PC_OK);
    l = list(db);
    CU_ASSERT(entry_of(l, 0xA) != NULL);
    picos__v1__node_status_list__free_unpacked(l, NULL);
    /* past 10 minutes: gone, and so is its history */
    st_make(&b, 0xB, 1, 30, 7, 3);
    CU_ASSERT(pc__statusdb_put(db, &b.s, t0 + S + 601 * S) == PC_OK);
    l = list(db);
    CU_ASSERT_EQUAL(l->n_nodes, 1);
    CU_ASSERT(entry_of(l, 0xA) == NULL);
    picos__v1__node_status_list__free_unpacked(l, NULL);
    CU_ASSERT(pc__statusdb_series(db, 0xA, "tasks", 0, &t, &v, &n) ==
              PC_ENOENT);

    /* B starts again (new incarnation): a new history */
    CU_ASSERT(pc__statusdb_series(db, 0xB, "tasks", 0, &t, &v, &n) == PC_OK);
    CU_ASSERT_EQUAL(n, 3);
    free(t), free(v);
    pc__statusdb_down(db, 0xB, 1, t0 + 700 * S, "a new start");
    st_make(&b, 0xB, 2, 40, 1, 3);
    CU_ASSERT(pc__statusdb_put(db, &b.s, t0 + 701 * S) == PC_OK);
    l = list(db);
    CU_ASSERT_FATAL((e = entry_of(l, 0xB)) != NULL);
    CU_ASSERT(e->up);
    CU_ASSERT_EQUAL(e->status->incarnation, 2);
    CU_ASSERT_EQUAL(e->down_us, 0);
    CU_ASSERT_STRING_EQUAL(e->down_reason, "");
    picos__v1__node_status_list__free_unpacked(l, NULL);
    CU_ASSERT(pc__statusdb_series(db, 0xB, "tasks", 0, &t, &v, &n) == PC_OK);
    CU_ASSERT_EQUAL(n, 1);
    free(t), free(v);
    pc__statusdb_free(&db);
}

/* The ring holds `samples`; gauges are one point per sample, rates one per
 * pair (over the node's sampled_us), `since` cuts by registry time. */
PT_TEST(series_ring_and_rates)
static void
series_ring_and_rates(void)
{
    pc__statusdb *db = NULL;
    uint64_t t0 = base_us(), *t = NULL;
    double *v = NULL;
    size_t n = 0;
    st_buf b;

    CU_ASSERT_FATAL(pc__statusdb_new(5, &db) == PC_OK);
    /* sample i: sent = 100 * i * i, taken at i seconds (node clock), got
     * at t0 + i s + 0.3 s jitter on odd ones (registry clock) */
    for (uint64_t i = 0; i < 12; i++) {
        st_make(&b, 0xA, 1, 1000 * S + i * S, 100 * i * i, i);
        CU_ASSERT(pc__statusdb_put(db, &b.s, t0 + i * S + (i & 1) * S / 3) ==
                  PC_OK);
    }
    CU_ASSERT(pc__statusdb_series(db, 0xA, "tasks", 0, &t, &v, &n) == PC_OK);
    CU_ASSERT_EQUAL_FATAL(n, 5);
    for (size_t k = 0; k < n; k++) {
        CU_ASSERT_DOUBLE_EQUAL(v[k], 7.0 + (double)k, 1e-9);
        CU_ASSERT_EQUAL(t[k], t0 + (7 + k) * S + ((7 + k) & 1) * S / 3);
    }
    free(t), free(v);
    CU_ASSERT(pc__statusdb_series(db, 0xA, "rss", 0, &t, &v, &n) == PC_OK);
    CU_ASSERT(n == 5 && v[4] == 1011.0);
    free(t), free(v);
    CU_ASSERT(pc__statusdb_series(db, 0xA, "cpu_available_pct", 0, &t, &v,
                                  &n) == PC_OK);
    CU_ASSERT(n == 5 && v[0] == 50.0);
    free(t), free(v);
    /* rate between i-1 and i: 100 * (2i - 1) per second, exactly (the
     * node's clock, not the jittered arrival) */
    CU_ASSERT(pc__statusdb_series(db, 0xA, "msgs_sent_rate", 0, &t, &v, &n) ==
              PC_OK);
    CU_ASSERT_EQUAL_FATAL(n, 4);
    for (size_t k = 0; k < n; k++)
        CU_ASSERT_DOUBLE_EQUAL(v[k], 100.0 * (2.0 * (8 + (double)k) - 1), 1e-6);
    free(t), free(v);
    CU_ASSERT(pc__statusdb_series(db, 0xA, "msgs_received_rate", 0, &t, &v,
                                  &n) == PC_OK);
    CU_ASSERT(n == 4 && v[0] == 2 * 1500.0);
    free(t), free(v);
    /* since: after sample 9's arrival -> samples 10, 11; the rate of 10
     * still uses 9 */
    CU_ASSERT(pc__statusdb_series(db, 0xA, "msgs_sent_rate", t0 + 9 * S + S / 3,
                                  &t, &v, &n) == PC_OK);
    CU_ASSERT_EQUAL_FATAL(n, 2);
    CU_ASSERT_DOUBLE_EQUAL(v[0], 1900.0, 1e-6);
    CU_ASSERT_EQUAL(t[0], t0 + 10 * S);
    free(t), free(v);
    CU_ASSERT(pc__statusdb_series(db, 0xA, "nonsense", 0, &t, &v, &n) ==
              PC_EINVAL);
    CU_ASSERT(pc__statusdb_series(db, 0xA, "service_p50_us:", 0, &t, &v, &n) ==
              PC_EINVAL);
    CU_ASSERT(pc__statusdb_series(db, 0xC, "tasks", 0, &t, &v, &n) ==
              PC_ENOENT);
    pc__statusdb_free(&db);
}

/* A counter that goes back (it can't within a start, but the db must not
 * make a huge rate of it) and a sample without time passing give no point. */
PT_TEST(series_counter_back)
static void
series_counter_back(void)
{
    pc__statusdb *db = NULL;
    uint64_t t0 = base_us(), *t = NULL;
    double *v = NULL;
    size_t n = 0;
    st_buf b;

    CU_ASSERT_FATAL(pc__statusdb_new(0, &db) == PC_OK);
    st_make(&b, 0xA, 1, 10 * S, 100, 1);
    pc__statusdb_put(db, &b.s, t0);
    st_make(&b, 0xA, 1, 11 * S, 50, 1); /* back */
    pc__statusdb_put(db, &b.s, t0 + S);
    st_make(&b, 0xA, 1, 11 * S, 80, 1); /* node clock stood: registry's */
    pc__statusdb_put(db, &b.s, t0 + 3 * S);
    st_make(&b, 0xA, 1, 11 * S, 90, 1); /* no time at all */
    pc__statusdb_put(db, &b.s, t0 + 3 * S);
    CU_ASSERT(pc__statusdb_series(db, 0xA, "msgs_sent_rate", 0, &t, &v, &n) ==
              PC_OK);
    CU_ASSERT_EQUAL_FATAL(n, 1);
    CU_ASSERT_DOUBLE_EQUAL(v[0], 15.0, 1e-9);
    free(t), free(v);
    pc__statusdb_free(&db);
}

/* Service series by name: calls rate, p50, p99; a service absent from a
 * sample gives no point there; an unknown service an empty series. */
PT_TEST(series_services)
static void
series_services(void)
{
    pc__statusdb *db = NULL;
    uint64_t t0 = base_us(), *t = NULL;
    double *v = NULL;
    size_t n = 0;
    st_buf b;

    CU_ASSERT_FATAL(pc__statusdb_new(0, &db) == PC_OK);
    st_make(&b, 0xA, 1, 0, 0, 1);
    st_service(&b, "add", 0, 0, 0);
    st_service(&b, "mul", 10, 5, 50);
    pc__statusdb_put(db, &b.s, t0);
    st_make(&b, 0xA, 1, 2 * S, 0, 1);
    st_service(&b, "add", 40, 11, 99);
    pc__statusdb_put(db, &b.s, t0 + 2 * S);
    st_make(&b, 0xA, 1, 4 * S, 0, 1);
    st_service(&b, "mul", 30, 6, 60);
    st_service(&b, "add", 50, 12, 98);
    pc__statusdb_put(db, &b.s, t0 + 4 * S);

    CU_ASSERT(pc__statusdb_series(db, 0xA, "service_calls_rate:add", 0, &t, &v,
                                  &n) == PC_OK);
    CU_ASSERT_EQUAL_FATAL(n, 2);
    CU_ASSERT_DOUBLE_EQUAL(v[0], 20.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(v[1], 5.0, 1e-9);
    free(t), free(v);
    CU_ASSERT(pc__statusdb_series(db, 0xA, "service_calls_rate:mul", 0, &t, &v,
                                  &n) == PC_OK);
    CU_ASSERT_EQUAL(n, 0); /* never in two samples in a row */
    free(t), free(v);
    CU_ASSERT(pc__statusdb_series(db, 0xA, "service_p50_us:mul", 0, &t, &v,
                                  &n) == PC_OK);
    CU_ASSERT(n == 2 && v[0] == 5.0 && v[1] == 6.0 && t[1] == t0 + 4 * S);
    free(t), free(v);
    CU_ASSERT(pc__statusdb_series(db, 0xA, "service_p99_us:add", 0, &t, &v,
                                  &n) == PC_OK);
    CU_ASSERT(n == 3 && v[0] == 0.0 && v[1] == 99.0 && v[2] == 98.0);
    free(t), free(v);
    CU_ASSERT(pc__statusdb_series(db, 0xA, "service_p99_us:nope", 0, &t, &v,
                                  &n) == PC_OK);
    CU_ASSERT(n == 0 && t == NULL && v == NULL);
    pc__statusdb_free(&db);
}

/* The change callback: after every put and down, without the mutex held
 * (it reads the db from inside). */
static struct {
    pc__statusdb *db;
    int calls, downs;
    uint64_t last;
    size_t listed;
} cbs;

static void
on_change(void *arg, uint64_t node, bool down)
{
    uint8_t *buf = NULL;
    size_t len = 0;

    CU_ASSERT(arg == &cbs);
    cbs.calls++;
    cbs.downs += down;
    cbs.last = node;
    if (pc__statusdb_list(cbs.db, &buf, &len) == PC_OK) {
        Picos__V1__NodeStatusList *l =
            picos__v1__node_status_list__unpack(NULL, len, buf);
        if (l)
            cbs.listed = l->n_nodes;
        picos__v1__node_status_list__free_unpacked(l, NULL);
    }
    free(buf);
}

PT_TEST(change_callback)
static void
change_callback(void)
{
    uint64_t t0 = base_us();
    st_buf b;

    memset(&cbs, 0, sizeof cbs);
    CU_ASSERT_FATAL(pc__statusdb_new(0, &cbs.db) == PC_OK);
    pc__statusdb_on_change(cbs.db, on_change, &cbs);
    st_make(&b, 0xA, 1, 0, 0, 1);
    pc__statusdb_put(cbs.db, &b.s, t0);
    CU_ASSERT(cbs.calls == 1 && cbs.downs == 0 && cbs.last == 0xA &&
              cbs.listed == 1);
    st_make(&b, 0xB, 1, 0, 0, 1);
    pc__statusdb_put(cbs.db, &b.s, t0);
    CU_ASSERT(cbs.calls == 2 && cbs.last == 0xB && cbs.listed == 2);
    pc__statusdb_down(cbs.db, 0xA, 1, t0 + S, "gone");
    CU_ASSERT(cbs.calls == 3 && cbs.downs == 1 && cbs.last == 0xA);
    pc__statusdb_down(cbs.db, 0xA, 1, t0 + S, "gone"); /* no change: none */
    pc__statusdb_down(cbs.db, 0xC, 1, t0 + S, "unknown");
    CU_ASSERT(cbs.calls == 3);
    pc__statusdb_on_change(cbs.db, NULL, NULL);
    pc__statusdb_put(cbs.db, &b.s, t0);
    CU_ASSERT(cbs.calls == 3);
    pc__statusdb_free(&cbs.db);
}

PT_MAIN("statusdb", PT_ENTRY(put_and_list), PT_ENTRY(down_kept_then_dropped),
        PT_ENTRY(series_ring_and_rates), PT_ENTRY(series_counter_back),
        PT_ENTRY(series_services), PT_ENTRY(change_callback))
