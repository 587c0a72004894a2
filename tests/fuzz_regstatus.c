/* tests/fuzz_regstatus.c — fuzz target for the registry's NodeStatus
 * acceptance path: pc__reg_status_decode() (registry/regreq.c), which turns
 * the bytes of a picos.v1.NodeStatus another node sent into a status the
 * store may copy and the HTTP API may turn into JSON, and the store it goes
 * into (registry/statusdb.c).
 *
 * Each input is decoded. An accepted status must keep the contract of
 * server_int.h (node id and incarnation set; every string within its
 * bound; lists within PC__STATUS_MAX_* with no missing element; floats
 * finite); a refused one must say why. An accepted one is put into a
 * store of 8 samples that lives for 256 inputs, and the store's list must
 * unpack and hold that node with what was put; the series of the node
 * must come out with as many times as values. Any difference aborts.
 *
 * Seeds are built in code: a status with every list filled, and broken
 * ones (no node, no incarnation, a name of 256 bytes, NaN and infinite
 * numbers, a list one past its bound). Built with clang and -DPICOS_FUZZ=ON
 * it is a libFuzzer target; otherwise fz_driver() (fuzzutil.h) runs seeds
 * and mutations. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzutil.h"
#include "server_int.h"

static bool
bounded(const char *s, size_t max)
{
    return s && strlen(s) <= max;
}

static void
check_accepted(const Picos__V1__NodeStatus *s)
{
    if (!s->node || !s->incarnation || !bounded(s->name, PC_NAME_MAX) ||
        !bounded(s->host, 255) || !bounded(s->data_dir, PC__STATUS_MAX_PATH) ||
        !isfinite(s->cpu_available_pct) || !isfinite(s->proc_cpu_pct) ||
        !isfinite(s->swap_available_pct) || !isfinite(s->load1) ||
        s->n_deepest > PC__STATUS_MAX_DEEPEST ||
        s->n_services > PC__STATUS_MAX_LIST ||
        s->n_channels > PC__STATUS_MAX_LIST || s->n_peers > PC__STATUS_MAX_LIST)
        abort();
    for (size_t i = 0; i < s->n_deepest; i++)
        if (!s->deepest[i] || !bounded(s->deepest[i]->name, PC_NAME_MAX))
            abort();
    for (size_t i = 0; i < s->n_services; i++)
        if (!s->services[i] || !bounded(s->services[i]->name, PC_NAME_MAX))
            abort();
    for (size_t i = 0; i < s->n_channels; i++)
        if (!s->channels[i] || !bounded(s->channels[i]->name, PC_NAME_MAX))
            abort();
    for (size_t i = 0; i < s->n_peers; i++)
        if (!s->peers[i] || !bounded(s->peers[i]->name, PC_NAME_MAX) ||
            !bounded(s->peers[i]->endpoint, PC_ENDPOINT_MAX))
            abort();
}

static pc__statusdb *db;
static uint64_t inputs, now_us = 1700000000000000ull;

static void
check_store(const Picos__V1__NodeStatus *s)
{
    uint8_t *buf = NULL;
    size_t len = 0, n = 0;
    Picos__V1__NodeStatusList *l;
    uint64_t *t = NULL;
    double *v = NULL;
    bool found = false;
    char what[300];

    if (pc__statusdb_put(db, s, now_us) != PC_OK ||
        pc__statusdb_list(db, &buf, &len) != PC_OK ||
        !(l = picos__v1__node_status_list__unpack(NULL, len, buf)))
        abort();
    for (size_t i = 0; i < l->n_nodes; i++)
        if (l->nodes[i]->status && l->nodes[i]->status->node == s->node) {
            const Picos__V1__NodeStatus *c = l->nodes[i]->status;
            if (!l->nodes[i]->up || c->incarnation != s->incarnation ||
                c->msgs_sent != s->msgs_sent ||
                c->n_services != s->n_services || strcmp(c->name, s->name))
                abort();
            found = true;
        }
    if (!found)
        abort();
    picos__v1__node_status_list__free_unpacked(l, NULL);
    free(buf);
    if (pc__statusdb_series(db, s->node, "msgs_sent_rate", 0, &t, &v, &n) !=
            PC_OK ||
        n > 8 || (n && (!t || !v)))
        abort();
    free(t), free(v);
    if (s->n_services && s->services[0]->name[0]) {
        snprintf(what, sizeof what, "service_p99_us:%s", s->services[0]->name);
        if (pc__statusdb_series(db, s->node, what, 0, &t, &v, &n) != PC_OK ||
            n > 8)
            abort();
        free(t), free(v);
    }
    if (inputs % 7 == 0)
        pc__statusdb_down(db, s->node, s->incarnation, now_us, "fuzz");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Picos__V1__NodeStatus *s;
    const char *why = NULL;

    if (inputs++ % 256 == 0) {
        pc__statusdb_free(&db);
        if (pc__statusdb_new(8, &db) != PC_OK)
            abort();
    }
    now_us += 1000000;
    if ((s = pc__reg_status_decode(data, size, &why))) {
        if (why)
            abort();
        check_accepted(s);
        check_store(s);
        picos__v1__node_status__free_unpacked(s, NULL);
    } else if (!why || !*why)
        abort();
    return 0;
}

/* ---- seeds --------------------------------------------------------------------- */

#define NSEEDS 16
static struct fz_seed seeds[NSEEDS];
static size_t nseeds;

static void
seed(const Picos__V1__NodeStatus *s)
{
    size_t n = picos__v1__node_status__get_packed_size(s);
    uint8_t *p = malloc(n ? n : 1);

    if (!p || nseeds == NSEEDS)
        return;
    picos__v1__node_status__pack(s, p);
    seeds[nseeds].bytes = (const char *)p;
    seeds[nseeds++].len = n;
}

__attribute__((constructor)) static void
make_seeds(void)
{
    static char long_name[PC_NAME_MAX + 2];
    static Picos__V1__ServiceStatus svc[PC__STATUS_MAX_LIST + 1],
        *psvc[PC__STATUS_MAX_LIST + 1];
    Picos__V1__NodeStatus s = PICOS__V1__NODE_STATUS__INIT;
    Picos__V1__MailboxDepth md = PICOS__V1__MAILBOX_DEPTH__INIT, *pmd = &md;
    Picos__V1__ChannelStatus ch = PICOS__V1__CHANNEL_STATUS__INIT, *pch = &ch;
    Picos__V1__PeerStatus pe = PICOS__V1__PEER_STATUS__INIT, *ppe = &pe;
    Picos__V1__Ref ref = PICOS__V1__REF__INIT;

    memset(long_name, 'x', PC_NAME_MAX + 1);
    for (size_t i = 0; i <= PC__STATUS_MAX_LIST; i++) {
        picos__v1__service_status__init(&svc[i]);
        svc[i].name = i % 2 ? "add" : "mul";
        svc[i].calls = i;
        svc[i].latency_p99_us = (uint32_t)i;
        psvc[i] = &svc[i];
    }
    ref.node = 7;
    ref.id = 9;
    md.task = &ref;
    md.name = "box";
    md.depth = 3;
    ch.name = "chan";
    ch.published = 5;
    pe.node = 8;
    pe.name = "peer";
    pe.endpoint = "tcp://127.0.0.1:1";
    pe.up = true;
    s.node = 7;
    s.incarnation = 11;
    s.name = "node";
    s.host = "host";
    s.pid = 42;
    s.sampled_us = 1000;
    s.data_dir = "/tmp";
    s.cpu_available_pct = 50;
    s.swap_available_pct = 100;
    s.load1 = 0.5;
    s.msgs_sent = 100;
    s.n_deepest = 1;
    s.deepest = &pmd;
    s.n_services = 2;
    s.services = psvc;
    s.n_channels = 1;
    s.channels = &pch;
    s.n_peers = 1;
    s.peers = &ppe;
    seed(&s);
    s.node = 0; /* no node */
    seed(&s);
    s.node = 7;
    s.incarnation = 0;
    seed(&s);
    s.incarnation = 12;
    s.name = long_name;
    seed(&s);
    s.name = "node";
    s.cpu_available_pct = NAN;
    seed(&s);
    s.cpu_available_pct = 50;
    s.load1 = INFINITY;
    seed(&s);
    s.load1 = 0;
    s.n_services = PC__STATUS_MAX_LIST + 1;
    seed(&s);
    s.n_services = 2;
    pe.endpoint = long_name;
    seed(&s);
    pe.endpoint = "tcp://127.0.0.1:1";
    s.node = 8; /* another node, fine */
    seed(&s);
    for (size_t i = nseeds; i < NSEEDS; i++)
        seeds[i] = seeds[i % nseeds];
}

FZ_MAIN("fuzz_regstatus", seeds)
