/* tests/fuzz_regreq.c — fuzz target for the registry server's decoders:
 * pc__reg_decode() (registry/regreq.c), which turns the bytes of a
 * picos.v1.RegRequest another node sent into a request the handlers of
 * server.c may trust, and pc__reg_replay() (registry/regstate.c), which
 * rebuilds the state from the RegRecord payloads of the log.
 *
 * Each input is decoded as a request. A request it accepts must satisfy
 * the contract of server_int.h (a known op; names[0] for REGISTER,
 * UNREGISTER and LOCATE, of a known kind, 1..PC_NAME_MAX bytes; a JOIN's
 * node with ids and an agent of that node, every name's ref on it; a
 * REGISTER's ref with a node) and survive a round trip: packed again, it
 * decodes again to the same packed bytes. A refused one must say why.
 * The same input is then replayed as a log record into a state that lives
 * for 512 inputs, and the state's counts must agree with its tables
 * (names in the table = the sum of the members' lists, every name's owner
 * a member). Any difference aborts.
 *
 * Seeds are built in code (every op valid, and broken ones: unknown op and
 * kind, missing names, a name of 256 bytes, a JOIN whose agent or name is
 * of another node, and records of each kind). With FZ_REGREQ_SEEDS=DIR in
 * the environment they are also written to DIR (tests/fuzz_seeds/regreq/
 * was made so). Built with clang and -DPICOS_FUZZ=ON it is a libFuzzer
 * target; otherwise fz_driver() (fuzzutil.h) runs seeds and mutations. */
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
check_entry(const Picos__V1__NameEntry *e)
{
    if (!e || !pc__reg_kind_ok((int)e->kind) || !e->name || !e->name[0] ||
        !bounded(e->name, PC_NAME_MAX))
        abort();
}

static void
check_accepted(const Picos__V1__RegRequest *r)
{
    switch (r->op) {
    case PICOS__V1__REG_OP__REG_JOIN:
        if (!r->node || !r->node->node || !r->node->incarnation ||
            !r->node->agent || r->node->agent->node != r->node->node ||
            !bounded(r->node->name, PC_NAME_MAX) ||
            !bounded(r->node->endpoint, PC_ENDPOINT_MAX))
            abort();
        for (size_t i = 0; i < r->n_names; i++) {
            check_entry(r->names[i]);
            if (!r->names[i]->ref || r->names[i]->ref->node != r->node->node)
                abort();
        }
        break;
    case PICOS__V1__REG_OP__REGISTER:
        if (r->n_names < 1 || !r->names[0]->ref || !r->names[0]->ref->node)
            abort();
        /* fall through */
    case PICOS__V1__REG_OP__UNREGISTER:
    case PICOS__V1__REG_OP__LOCATE:
        if (r->n_names < 1)
            abort();
        check_entry(r->names[0]);
        break;
    case PICOS__V1__REG_OP__LIST_NAMES:
        if (r->has_kind && !pc__reg_kind_ok((int)r->kind))
            abort();
        break;
    case PICOS__V1__REG_OP__LEAVE:
    case PICOS__V1__REG_OP__LIST_NODES:
    case PICOS__V1__REG_OP__STATUS:
    case PICOS__V1__REG_OP__NODES_STATUS:
        break;
    default:
        abort();
    }
}

/* Does m (not its submessages) hold an unknown field numbered 0? protobuf-c
 * takes one whose tag is an overlong varint but packs it as a tag it then
 * refuses (see fuzz_wire.c): the one case where a repacked request may
 * not decode (the registry never repacks what it received). */
static bool
tag0(const void *pm)
{
    const ProtobufCMessage *m = pm;

    for (unsigned i = 0; m && i < m->n_unknown_fields; i++)
        if (m->unknown_fields[i].tag == 0)
            return true;
    return false;
}

static bool
has_tag0(const Picos__V1__RegRequest *r)
{
    if (tag0(r) || (r->node && (tag0(r->node) || tag0(r->node->agent))))
        return true;
    for (size_t i = 0; i < r->n_names; i++)
        if (tag0(r->names[i]) || tag0(r->names[i]->ref))
            return true;
    return false;
}

static void
round_trip(const Picos__V1__RegRequest *r)
{
    size_t n = picos__v1__reg_request__get_packed_size(r), n2;
    uint8_t *a = malloc(n ? n : 1), *b;
    Picos__V1__RegRequest *r2;
    const char *why;
    uint64_t id;

    if (!a)
        return;
    picos__v1__reg_request__pack(r, a);
    if (!(r2 = pc__reg_decode(a, n, &id, &why)) || why || id != r->id)
        abort();
    n2 = picos__v1__reg_request__get_packed_size(r2);
    if (n2 != n || !(b = malloc(n2 ? n2 : 1)))
        abort();
    picos__v1__reg_request__pack(r2, b);
    if (memcmp(a, b, n))
        abort();
    free(a);
    free(b);
    picos__v1__reg_request__free_unpacked(r2, NULL);
}

/* ---- replay into a state ----------------------------------------------------- */

static reg_state st;
static int st_inputs;

static void
check_state(void)
{
    size_t names = 0, members = 0, unconfirmed = 0;

    for (size_t i = 0; i < st.mcap; i++)
        for (reg_member *m = st.mb[i]; m; m = m->hnext) {
            size_t k = 0;
            members++;
            unconfirmed += !m->confirmed;
            for (reg_name *n = m->names; n; n = n->mnext, k++)
                if (n->owner != m || pc__reg_name(&st, n->kind, n->name) != n)
                    abort();
            if (k != m->nnames)
                abort();
            names += k;
        }
    if (members != st.nmb || names != st.nnames ||
        unconfirmed != st.unconfirmed)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Picos__V1__RegRequest *r;
    const char *why;
    uint64_t id;

    if ((r = pc__reg_decode(data, size, &id, &why))) {
        if (why)
            abort();
        check_accepted(r);
        if (!has_tag0(r))
            round_trip(r);
        picos__v1__reg_request__free_unpacked(r, NULL);
    } else if (!why || !*why)
        abort();
    if (st_inputs++ % 512 == 0) {
        pc__reg_state_fini(&st);
        pc__reg_state_init(&st);
        st.replaying = true;
    }
    (void)pc__reg_replay(&st, data, size);
    check_state();
    return 0;
}

/* ---- seeds --------------------------------------------------------------------- */

#define NSEEDS 48
static struct fz_seed seeds[NSEEDS];
static size_t nseeds;

static void
seed_req(const Picos__V1__RegRequest *r)
{
    size_t n = picos__v1__reg_request__get_packed_size(r);
    uint8_t *p = malloc(n ? n : 1);

    if (!p || nseeds == NSEEDS)
        abort();
    picos__v1__reg_request__pack(r, p);
    seeds[nseeds].bytes = (const char *)p;
    seeds[nseeds++].len = n;
}

static void
seed_rec(const Picos__V1__RegRecord *r)
{
    size_t n = picos__v1__reg_record__get_packed_size(r);
    uint8_t *p = malloc(n ? n : 1);

    if (!p || nseeds == NSEEDS)
        abort();
    picos__v1__reg_record__pack(r, p);
    seeds[nseeds].bytes = (const char *)p;
    seeds[nseeds++].len = n;
}

__attribute__((constructor)) static void
make_seeds(void)
{
    static Picos__V1__Ref agent = PICOS__V1__REF__INIT,
                          ref = PICOS__V1__REF__INIT,
                          other = PICOS__V1__REF__INIT;
    static Picos__V1__NodeInfo ni = PICOS__V1__NODE_INFO__INIT;
    static Picos__V1__NameEntry e = PICOS__V1__NAME_ENTRY__INIT,
                                e2 = PICOS__V1__NAME_ENTRY__INIT;
    static char big[257];
    Picos__V1__NameEntry *names[2] = {&e, &e2};
    Picos__V1__RegRequest r = PICOS__V1__REG_REQUEST__INIT;
    Picos__V1__RegRecord rec = PICOS__V1__REG_RECORD__INIT;
    const char *dir;

    agent.node = ref.node = 0x1234;
    agent.incarnation = ref.incarnation = 0x77;
    agent.id = 0x100000001ull;
    ref.id = 0x200000002ull;
    other.node = 0x9999;
    other.id = 5;
    ni.node = 0x1234;
    ni.incarnation = 0x77;
    ni.name = "n1";
    ni.host = "h";
    ni.pid = 42;
    ni.endpoint = "tcp://127.0.0.1:9706";
    ni.agent = &agent;
    e.name = "server";
    e.ref = &ref;
    e.claimed_us = 1000;
    e2.kind = PICOS__V1__NAME_KIND__CHANNEL;
    e2.name = "board";
    e2.ref = &ref;
    /* every op, valid */
    r.id = 7;
    r.op = PICOS__V1__REG_OP__REG_JOIN;
    r.node = &ni;
    r.n_names = 2;
    r.names = names;
    seed_req(&r);
    r.more = 1; /* a chunk of a JOIN */
    seed_req(&r);
    r.more = 0;
    r.node = NULL;
    r.n_names = 1;
    for (int op = PICOS__V1__REG_OP__LEAVE; op <= PICOS__V1__REG_OP__STATUS;
         op++) {
        r.op = (Picos__V1__RegOp)op;
        r.timeout_ms = op == PICOS__V1__REG_OP__LOCATE ? 500 : 0;
        seed_req(&r);
    }
    r.op = PICOS__V1__REG_OP__LIST_NAMES;
    r.has_kind = 1;
    r.kind = PICOS__V1__NAME_KIND__SERVICE;
    seed_req(&r);
    /* broken ones */
    r.kind = (Picos__V1__NameKind)9;
    seed_req(&r);
    r.has_kind = 0;
    r.op = (Picos__V1__RegOp)99;
    seed_req(&r);
    r.op = PICOS__V1__REG_OP__REGISTER;
    r.n_names = 0;
    seed_req(&r);
    r.n_names = 1;
    e.kind = (Picos__V1__NameKind)7;
    seed_req(&r);
    e.kind = PICOS__V1__NAME_KIND__TASK;
    memset(big, 'x', 256);
    e.name = big;
    seed_req(&r);
    e.name = "";
    seed_req(&r);
    e.name = "server";
    e.ref = NULL;
    seed_req(&r);
    e.ref = &ref;
    r.op = PICOS__V1__REG_OP__REG_JOIN;
    r.node = &ni;
    ni.agent = &other;
    seed_req(&r);
    ni.agent = &agent;
    e.ref = &other;
    seed_req(&r);
    e.ref = &ref;
    r.node = NULL;
    seed_req(&r);
    /* log records of each kind (the replay side) */
    ni.up = 0;
    rec.kind = PICOS__V1__RECORD_KIND__REC_JOIN;
    rec.node = &ni;
    seed_rec(&rec);
    rec.node = NULL;
    rec.kind = PICOS__V1__RECORD_KIND__REC_NAME;
    rec.name = &e;
    seed_rec(&rec);
    rec.kind = PICOS__V1__RECORD_KIND__REC_UNNAME;
    seed_rec(&rec);
    rec.kind = PICOS__V1__RECORD_KIND__REC_DOWN;
    rec.name = NULL;
    rec.node = &ni;
    seed_rec(&rec);
    rec.kind = (Picos__V1__RecordKind)12;
    seed_rec(&rec);
    if ((dir = getenv("FZ_REGREQ_SEEDS")) && *dir)
        fz_write_seeds(dir, seeds, nseeds);
    for (size_t i = nseeds; i < NSEEDS; i++)
        seeds[i] = seeds[i % nseeds];
}

FZ_MAIN("fuzz_regreq", seeds)
