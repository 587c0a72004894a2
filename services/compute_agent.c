/* services/compute_agent.c — the compute client's agent task: the one
 * task of a computation on the wire (proto/compute.proto, conversation 1;
 * docs/computations.md). Every message of the computation's sessions
 * comes to it, and it sends every reserve, chunk, batch, cancel and
 * control.
 *
 * The agent handles one message at a time under mu, collects what it must
 * send, and sends after letting go of mu; after each message it carries
 * out the callers' operations, dispatches what the scheduler lets go (one
 * ComputeSubmit per node, split below the link's frame size) and sends the
 * status events collected meanwhile (callers' ends of queued jobs
 * included), so every event goes out from the agent, in the order things
 * happened.
 *
 * Nodes come from the lister (compute_lister.c, CL_NODES): the agent
 * reserves on those it does not have, asks again those that refused for
 * lack of CPUs (or being suspended), and those lost or failed whose
 * compute task is a new one (the node restarted). The library and files
 * are uploaded to each node in chunks of at most min(max_chunk,
 * CP_CHUNK_MAX) bytes, at most CP_CHUNK_WINDOW unacknowledged; empty files
 * need no chunk. The agent monitors each node's compute task (a node that
 * dies before it answers) and session task (a node lost: its jobs retried
 * elsewhere). Messages of a session are told apart by their sender's node
 * id: one node runs one session of a computation, and a restarted node
 * has a new id, so late messages of an old session find no node.
 *
 * A batch is each job's packed spec (pc_compute_submit()'s) with the id
 * and the attempt put in front (protobuf takes fields in any order).
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/monitor.h"
#include "picos/node.h"
#include "picos/sync.h"

#include "compute_client_int.h"
#include "compute_int.h"

/* A ComputeSubmit is cut before it passes this (the link's frame is 1 MiB
 * with the envelope). */
#define SUBMIT_MAX (900u * 1024u)
#define REFUSED_RETRY 1.0

/* Under mu: the scheduler's event into the queue the agent sends. */
void
pc__cc_emit(void *ctx, const pc_compute_event *e)
{
    pc_compute *c = ctx;
    pc_msg *m = NULL;

    if (c->nevq == c->evq_cap) {
        size_t cap = c->evq_cap ? c->evq_cap * 2 : 64;
        pc_msg **q = realloc(c->evq, cap * sizeof *q);
        if (!q)
            return;
        c->evq = q;
        c->evq_cap = cap;
    }
    if (pc__ce_msg(e, &m) == PC_OK)
        c->evq[c->nevq++] = m;
}

static void
node_event(pc_compute *c, pc_compute_event_kind kind, const cs_node *n,
           int worker, int count, const char *text)
{
    pc_compute_event e;

    if (!c->s.emit)
        return;
    memset(&e, 0, sizeof e);
    e.kind = kind;
    if (n)
        snprintf(e.node, sizeof e.node, "%.63s", n->name);
    e.worker = worker;
    e.n = count;
    snprintf(e.text, sizeof e.text, "%s", text ? text : "");
    pc__cc_emit(c, &e);
}

/* ---- the agent's sending -------------------------------------------------------- */

typedef struct ag {
    pc_compute *c;
    struct {
        pc_ref to;
        pc_msg *m;
    } * v;
    size_t n, cap;
    cs_job **batch;
    size_t batch_cap;
} ag;

static void
out_msg(ag *a, pc_ref to, pc_msg *m)
{
    if (!m)
        return;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 32;
        void *v = realloc(a->v, cap * sizeof *a->v);
        if (!v) {
            pc_msg_free(&m);
            return;
        }
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n].to = to;
    a->v[a->n++].m = m;
}

static void
out_pb(ag *a, pc_ref to, const char *type, const void *pb)
{
    pc_msg *m = NULL;

    if (pc__cp_msg(type, pb, &m) == PC_OK)
        out_msg(a, to, m);
}

/* After mu: send what was collected. */
static void
flush(ag *a)
{
    for (size_t i = 0; i < a->n; i++)
        if (pc_send(a->v[i].to, &a->v[i].m) != PC_OK)
            pc_msg_free(&a->v[i].m);
    a->n = 0;
}

static void
control(ag *a, cs_node *n, Picos__V1__ComputeOp o, double grace)
{
    Picos__V1__ComputeControl m = PICOS__V1__COMPUTE_CONTROL__INIT;

    m.op = o;
    m.grace = grace;
    out_pb(a, n->session, CP_T_CONTROL, &m);
}

static void
reserve(ag *a, int i)
{
    pc_compute *c = a->c;
    cs_node *n = &c->s.nodes[i];
    Picos__V1__ComputeReserve r = PICOS__V1__COMPUTE_RESERVE__INIT;
    Picos__V1__ComputeFileInfo lib = PICOS__V1__COMPUTE_FILE_INFO__INIT;
    Picos__V1__ComputeFileInfo fi[CP_FILES_MAX], *fp[CP_FILES_MAX];

    n->state = CN_RESERVING;
    n->session = PC_REF_NIL;
    (void)pc_monitor(pc_self(), n->task);
    r.client = c->client;
    r.cpus = (uint32_t)c->cpus;
    r.memory = c->memory;
    r.name = c->label;
    lib.name = "";
    lib.size = c->files[0].len;
    lib.sha256.data = c->files[0].sha;
    lib.sha256.len = 32;
    r.library = &lib;
    for (size_t k = 1; k < c->nfiles; k++) {
        picos__v1__compute_file_info__init(&fi[k - 1]);
        fi[k - 1].name = c->files[k].name;
        fi[k - 1].size = c->files[k].len;
        fi[k - 1].sha256.data = c->files[k].sha;
        fi[k - 1].sha256.len = 32;
        fp[k - 1] = &fi[k - 1];
    }
    r.n_files = c->nfiles - 1;
    r.files = fp;
    out_pb(a, n->task, CP_T_RESERVE, &r);
}

/* Send node n's next chunks, up to the window. */
static void
pump(ag *a, cs_node *n)
{
    pc_compute *c = a->c;

    while (n->unacked < CP_CHUNK_WINDOW && n->file < c->nfiles) {
        const cfile *f = &c->files[n->file];
        Picos__V1__ComputeChunk k = PICOS__V1__COMPUTE_CHUNK__INIT;
        size_t len;
        if (n->off >= f->len) {
            n->file++;
            n->off = 0;
            continue;
        }
        len = f->len - n->off;
        if (len > n->max_chunk)
            len = n->max_chunk;
        k.file = n->file;
        k.offset = n->off;
        k.data.data = f->data + n->off;
        k.data.len = len;
        out_pb(a, n->session, CP_T_CHUNK, &k);
        n->off += len;
        n->unacked++;
    }
}

static size_t
varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    do {
        p[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return n;
}

typedef struct sbuf {
    uint8_t *p;
    size_t len, cap;
} sbuf;

static bool
sbuf_room(sbuf *b, size_t more)
{
    if (b->len + more <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p)
        return false;
    b->p = p;
    b->cap = cap;
    return true;
}

static void
submit_flush(ag *a, cs_node *n, sbuf *b)
{
    pc_msg *m = NULL;

    if (b->len && pc_msg_new(&m, CP_T_SUBMIT, b->p, b->len) == PC_OK)
        out_msg(a, n->session, m);
    b->len = 0;
}

static void
to_job(ag *a, cs_node *n, cs_job *j, const void *data, size_t len)
{
    Picos__V1__ComputeToJob t = PICOS__V1__COMPUTE_TO_JOB__INIT;

    t.id = j->id;
    t.attempt = j->attempt;
    t.data.data = (uint8_t *)data;
    t.data.len = len;
    out_pb(a, n->session, CP_T_TO_JOB, &t);
}

/* Under mu: what the scheduler lets go, as one ComputeSubmit per node (or
 * more, each below SUBMIT_MAX), each job's waiting messages after it. */
static void
dispatch(ag *a)
{
    pc_compute *c = a->c;
    sbuf b = {0};
    size_t n;

    if (!a->batch &&
        !(a->batch = malloc((a->batch_cap = 1024) * sizeof *a->batch)))
        return;
    while ((n = pc__cs_dispatch(&c->s, a->batch, a->batch_cap)) > 0) {
        for (size_t i = 0; i < c->s.nnodes; i++) {
            cs_node *nd = &c->s.nodes[i];
            for (size_t k = 0; k < n; k++) {
                cs_job *j = a->batch[k];
                uint8_t head[32];
                size_t h = 0, inner;
                if (j->node != (int)i)
                    continue;
                head[h++] = 0x09; /* id: field 1, fixed64 */
                for (int q = 0; q < 8; q++)
                    head[h++] = (uint8_t)(j->id >> (8 * q));
                head[h++] = 0x10; /* attempt: field 2, varint */
                h += varint(head + h, j->attempt);
                inner = h + j->wire_len;
                if (b.len && b.len + inner + 16 > SUBMIT_MAX)
                    submit_flush(a, nd, &b);
                if (!sbuf_room(&b, inner + 16))
                    continue;        /* no memory: its end comes as a loss */
                b.p[b.len++] = 0x0a; /* jobs: field 1, length-delimited */
                b.len += varint(b.p + b.len, inner);
                memcpy(b.p + b.len, head, h);
                b.len += h;
                if (j->wire_len)
                    memcpy(b.p + b.len, j->wire, j->wire_len);
                b.len += j->wire_len;
                if (j->tomsgs) {
                    submit_flush(a, nd, &b);
                    while (j->tomsgs) {
                        cs_tomsg *t = j->tomsgs;
                        j->tomsgs = t->next;
                        to_job(a, nd, j, t->data, t->len);
                        free(t);
                    }
                    j->tomsgs_tail = &j->tomsgs;
                }
            }
            submit_flush(a, nd, &b);
        }
        if (n < a->batch_cap)
            break;
    }
    free(b.p);
}

/* ---- the agent's handlers (under mu) ------------------------------------------ */

static int
node_by_sender(pc_compute *c, const pc_msg *m, bool session)
{
    pc_ref s = pc_msg_sender(m);

    for (size_t i = 0; i < c->s.nnodes; i++) {
        const cs_node *n = &c->s.nodes[i];
        pc_ref r = session ? n->session : n->task;
        if (!pc_ref_is_nil(r) && r.node == s.node)
            return (int)i;
    }
    return -1;
}

static void
on_nodes(ag *a, nlist *l)
{
    pc_compute *c = a->c;
    double now = pc_now();

    if (c->closing)
        return;
    for (size_t k = 0; k < l->n; k++) {
        int i = pc__cs_node_find(&c->s, l->e[k].name);
        cs_node *n;
        if (i < 0) {
            if ((i = pc__cs_node_add(&c->s, l->e[k].name)) < 0)
                continue;
            c->s.nodes[i].task = l->e[k].ref;
            reserve(a, i);
            continue;
        }
        n = &c->s.nodes[i];
        if (n->close_asked)
            continue;
        bool fresh = !pc_ref_eq(n->task, l->e[k].ref);
        if ((n->state == CN_REFUSED &&
             (fresh ||
              ((n->refusal == PICOS__V1__COMPUTE_REFUSAL__COMPUTE_NO_CPUS ||
                n->refusal == PICOS__V1__COMPUTE_REFUSAL__COMPUTE_SUSPENDED) &&
               now >= n->retry_at))) ||
            ((n->state == CN_LOST || n->state == CN_FAILED) && fresh)) {
            n->task = l->e[k].ref;
            reserve(a, i);
        }
    }
    c->s.listed = true;
}

static void
on_refused(ag *a, const pc_msg *m, const uint8_t *d, size_t len)
{
    pc_compute *c = a->c;
    Picos__V1__ComputeRefused *r =
        picos__v1__compute_refused__unpack(NULL, len, d);
    int i;

    if (!r)
        return;
    if (r->client == c->client && (i = node_by_sender(c, m, false)) >= 0 &&
        c->s.nodes[i].state == CN_RESERVING) {
        cs_node *n = &c->s.nodes[i];
        bool said = n->text[0] && n->refusal == (int)r->code;
        n->state = CN_REFUSED;
        n->refusal = (int)r->code;
        n->retry_at = pc_now() + REFUSED_RETRY;
        snprintf(n->text, sizeof n->text, "%s", r->text);
        if (!said)
            node_event(c, PC_CE_NODE_REFUSED, n, -1, 0, r->text);
    }
    picos__v1__compute_refused__free_unpacked(r, NULL);
}

static void
on_reserved(ag *a, const pc_msg *m, const uint8_t *d, size_t len)
{
    pc_compute *c = a->c;
    Picos__V1__ComputeReserved *r =
        picos__v1__compute_reserved__unpack(NULL, len, d);
    int i;

    if (!r)
        return;
    if (r->client == c->client && r->session &&
        (i = node_by_sender(c, m, false)) >= 0 &&
        c->s.nodes[i].state == CN_RESERVING) {
        cs_node *n = &c->s.nodes[i];
        n->session = (pc_ref){r->session->node, r->session->id};
        (void)pc_monitor(pc_self(), n->session);
        n->text[0] = '\0';
        if (c->closing || n->close_asked || r->cpus == 0) {
            control(a, n, PICOS__V1__COMPUTE_OP__COMPUTE_CLOSE, 0);
            n->state = CN_CLOSING;
        } else {
            n->state = CN_UPLOADING;
            n->workers = (int)r->cpus;
            n->memory = r->memory;
            n->max_chunk = r->max_chunk && r->max_chunk < CP_CHUNK_MAX
                               ? r->max_chunk
                               : CP_CHUNK_MAX;
            n->file = 0;
            n->off = 0;
            n->unacked = 0;
            pump(a, n);
        }
    }
    picos__v1__compute_reserved__free_unpacked(r, NULL);
}

/* Node i's session is gone (state), for `text`. */
static void
node_gone(pc_compute *c, int i, int state, const char *text)
{
    cs_node *n = &c->s.nodes[i];

    if (n->state == CN_CLOSING || c->closing || n->close_asked)
        state = CN_CLOSED;
    node_event(c, state == CN_CLOSED ? PC_CE_NODE_CLOSED : PC_CE_NODE_LOST, n,
               -1, 0, text);
    if (state != CN_CLOSED)
        snprintf(n->text, sizeof n->text, "%s", text);
    pc__cs_node_gone(&c->s, i, state, text);
    n->session = PC_REF_NIL;
}

static void
on_session(ag *a, const pc_msg *m, const uint8_t *d, size_t len)
{
    pc_compute *c = a->c;
    int i = node_by_sender(c, m, true);
    cs_node *n;

    if (i < 0)
        return;
    n = &c->s.nodes[i];
    if (n->state != CN_UPLOADING && n->state != CN_READY &&
        n->state != CN_CLOSING)
        return;
    if (pc_msg_is(m, CP_T_CHUNK_ACK)) {
        if (n->unacked > 0)
            n->unacked--;
        if (n->state == CN_UPLOADING)
            pump(a, n);
    } else if (pc_msg_is(m, CP_T_READY)) {
        Picos__V1__ComputeReady *r =
            picos__v1__compute_ready__unpack(NULL, len, d);
        if (!r)
            return;
        if (n->state == CN_UPLOADING &&
            pc__cs_node_ready(&c->s, i, n->workers, n->memory, r->jobs,
                              r->n_jobs) == PC_OK) {
            n->up = r->workers < (uint32_t)n->workers ? (int)r->workers
                                                      : n->workers;
            node_event(c, PC_CE_NODE_INITIALIZED, n, -1, n->workers, r->name);
            if (n->suspended)
                control(a, n, PICOS__V1__COMPUTE_OP__COMPUTE_SUSPEND, 0);
        }
        picos__v1__compute_ready__free_unpacked(r, NULL);
    } else if (pc_msg_is(m, CP_T_FAILED)) {
        Picos__V1__ComputeFailed *f =
            picos__v1__compute_failed__unpack(NULL, len, d);
        node_gone(c, i, CN_FAILED, f ? f->text : "failed");
        if (f)
            picos__v1__compute_failed__free_unpacked(f, NULL);
    } else if (pc_msg_is(m, CP_T_NODE_EVENT)) {
        Picos__V1__ComputeNodeEvent *e =
            picos__v1__compute_node_event__unpack(NULL, len, d);
        if (!e)
            return;
        switch (e->kind) {
        case PICOS__V1__COMPUTE_NODE_EVENT_KIND__NODE_WORKER_UP:
            if (n->up < n->workers)
                n->up++;
            node_event(c, PC_CE_WORKER_INITIALIZED, n, e->worker, 0, e->text);
            break;
        case PICOS__V1__COMPUTE_NODE_EVENT_KIND__NODE_WORKER_LOST:
            if (n->up > 0)
                n->up--;
            node_event(c, PC_CE_WORKER_LOST, n, e->worker, 0, e->text);
            break;
        case PICOS__V1__COMPUTE_NODE_EVENT_KIND__NODE_WORKER_CLOSED:
            if (n->up > 0)
                n->up--;
            node_event(c, PC_CE_WORKER_CLOSED, n, e->worker, 0, e->text);
            break;
        case PICOS__V1__COMPUTE_NODE_EVENT_KIND__NODE_SUSPENDED:
            n->suspended = true;
            node_event(c, PC_CE_NODE_SUSPENDED, n, -1, 0, e->text);
            break;
        case PICOS__V1__COMPUTE_NODE_EVENT_KIND__NODE_RESUMED:
            n->suspended = false;
            node_event(c, PC_CE_NODE_RESUMED, n, -1, 0, e->text);
            break;
        case PICOS__V1__COMPUTE_NODE_EVENT_KIND__NODE_CLOSED:
            node_gone(c, i, CN_CLOSED, e->text[0] ? e->text : "closed");
            break;
        default:
            break;
        }
        picos__v1__compute_node_event__free_unpacked(e, NULL);
    } else if (pc_msg_is(m, CP_T_EVENTS)) {
        Picos__V1__ComputeEvents *es =
            picos__v1__compute_events__unpack(NULL, len, d);
        if (!es)
            return;
        for (size_t k = 0; k < es->n_events; k++) {
            const Picos__V1__ComputeJobEvent *e = es->events[k];
            cs_job *j = pc__cs_job_find(&c->s, e->id);
            if (!j)
                continue;
            if (e->kind == PICOS__V1__COMPUTE_EVENT_KIND__JOB_STARTED) {
                (void)pc__cs_started(&c->s, j, i, e->attempt, e->worker,
                                     e->started_us / 1e6);
                continue;
            }
            if (j->state == CJ_SENT && j->node == i && j->attempt == e->attempt)
                j->worker = e->worker; /* its start event was not seen */
            if (pc__cs_done(&c->s, j, i, e->attempt, pc__cp_why((int)e->why),
                            e->error) != CS_END ||
                !j->res)
                continue;
            pc_job_result *r = j->res;
            if (e->started_us)
                r->started = e->started_us / 1e6;
            if (e->ended_us)
                r->ended = e->ended_us / 1e6;
            if (e->result.len && (r->data = malloc(e->result.len + 1))) {
                memcpy(r->data, e->result.data, e->result.len);
                ((char *)r->data)[e->result.len] = '\0';
                r->len = e->result.len;
            }
            if (e->n_files_out &&
                (r->files = calloc(e->n_files_out, sizeof *r->files))) {
                for (size_t q = 0; q < e->n_files_out; q++) {
                    const Picos__V1__ComputeJobFile *f = e->files_out[q];
                    pc_job_file *o = &r->files[r->nfiles];
                    char *nm = strdup(f->name);
                    void *data = malloc(f->data.len + 1);
                    if (!nm || !data) {
                        free(nm);
                        free(data);
                        continue;
                    }
                    memcpy(data, f->data.data, f->data.len);
                    ((char *)data)[f->data.len] = '\0';
                    o->name = nm;
                    o->data = data;
                    o->len = f->data.len;
                    r->nfiles++;
                }
            }
        }
        picos__v1__compute_events__free_unpacked(es, NULL);
    } else if (pc_msg_is(m, CP_T_FROM_JOB)) {
        Picos__V1__ComputeFromJob *f =
            picos__v1__compute_from_job__unpack(NULL, len, d);
        cs_job *j;
        pc_msg *o = NULL;
        if (!f)
            return;
        if ((j = pc__cs_job_find(&c->s, f->id)) && j->node == i &&
            j->attempt == f->attempt &&
            (j->state == CJ_SENT || j->state == CJ_RUNNING)) {
            if (pc_ref_is_nil(c->messages))
                c->s.msgs_dropped++;
            else if (pc__compute_job_msg_new(f->id, f->data.data, f->data.len,
                                             &o) == PC_OK)
                out_msg(a, c->messages, o);
        }
        picos__v1__compute_from_job__free_unpacked(f, NULL);
    }
}

static void
on_down(pc_compute *c, const pc_msg *m)
{
    pc_down d;
    char text[160];

    if (pc_down_parse(m, &d) != PC_OK)
        return;
    for (size_t i = 0; i < c->s.nnodes; i++) {
        cs_node *n = &c->s.nodes[i];
        snprintf(text, sizeof text, "%s",
                 d.reason == PC_DOWN_NODE     ? "lost (its node is down)"
                 : d.reason == PC_DOWN_NOPROC ? "lost (no such task)"
                                              : "lost (its session ended)");
        if (!pc_ref_is_nil(n->session) && pc_ref_eq(n->session, d.who) &&
            (n->state == CN_UPLOADING || n->state == CN_READY ||
             n->state == CN_CLOSING)) {
            node_gone(c, (int)i, CN_LOST, text);
        } else if (pc_ref_eq(n->task, d.who) && n->state == CN_RESERVING) {
            n->state = c->closing || n->close_asked ? CN_CLOSED : CN_LOST;
            snprintf(n->text, sizeof n->text, "%s", text);
            node_event(c, PC_CE_NODE_LOST, n, -1, 0, text);
        }
    }
}

static void
do_ops(ag *a)
{
    pc_compute *c = a->c;
    op *o;

    while ((o = c->ops)) {
        cs_job *j = NULL;
        c->ops = o->next;
        if (!c->ops)
            c->ops_tail = &c->ops;
        if (o->kind == OP_CANCEL || o->kind == OP_TOJOB)
            j = pc__cs_job_find(&c->s, o->id);
        switch (o->kind) {
        case OP_CANCEL:
            if (j && (j->state == CJ_SENT || j->state == CJ_RUNNING)) {
                Picos__V1__ComputeCancel k = PICOS__V1__COMPUTE_CANCEL__INIT;
                k.id = j->id;
                k.attempt = j->attempt;
                out_pb(a, c->s.nodes[j->node].session, CP_T_CANCEL, &k);
            } else if (j && j->state == CJ_QUEUED) {
                pc__cs_end(&c->s, j, PC_JOB_CANCELLED, "cancelled");
            }
            break;
        case OP_TOJOB:
            if (j && (j->state == CJ_SENT || j->state == CJ_RUNNING))
                to_job(a, &c->s.nodes[j->node], j, o->data, o->len);
            break;
        case OP_SUSPEND:
            for (size_t i = 0; i < c->s.nnodes; i++) {
                cs_node *n = &c->s.nodes[i];
                if ((o->all || !strcmp(n->name, o->node)) &&
                    (n->state == CN_READY || n->state == CN_UPLOADING))
                    control(a, n,
                            o->on ? PICOS__V1__COMPUTE_OP__COMPUTE_SUSPEND
                                  : PICOS__V1__COMPUTE_OP__COMPUTE_RESUME,
                            0);
            }
            break;
        case OP_CLOSE_NODE:
        case OP_CLOSE:
            if (o->kind == OP_CLOSE) {
                c->close_deadline = pc_now() + o->grace + 5.0;
            }
            for (size_t i = 0; i < c->s.nnodes; i++) {
                cs_node *n = &c->s.nodes[i];
                if (o->kind == OP_CLOSE_NODE && strcmp(n->name, o->node))
                    continue;
                if (n->state == CN_READY || n->state == CN_UPLOADING) {
                    control(a, n, PICOS__V1__COMPUTE_OP__COMPUTE_CLOSE,
                            o->grace);
                    n->state = CN_CLOSING;
                } else if (n->state == CN_REFUSED || n->state == CN_LOST ||
                           n->state == CN_FAILED) {
                    if (o->kind == OP_CLOSE_NODE)
                        n->state = CN_CLOSED;
                }
            }
            break;
        }
        free(o);
    }
}

/* Under mu: whether every node has ended its part. */
static bool
all_closed(const pc_compute *c)
{
    for (size_t i = 0; i < c->s.nnodes; i++) {
        int st = c->s.nodes[i].state;
        if (st == CN_RESERVING || st == CN_UPLOADING || st == CN_READY ||
            st == CN_CLOSING)
            return false;
    }
    return true;
}

static void
agent_end(void *arg)
{
    pc_compute *c = arg;

    pthread_mutex_lock(&c->mu);
    c->agent_done = true;
    pc__cc_notify(c);
    pthread_mutex_unlock(&c->mu);
}

static void
send_events(pc_compute *c, pc_msg **evs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (pc_send(c->status, &evs[i]) != PC_OK)
            pc_msg_free(&evs[i]);
    free(evs);
}

pc_msg *
pc__cc_agent(void *arg)
{
    pc_compute *c = arg;
    ag a = {.c = c};
    bool end = false;

    pc_at_exit(agent_end, c);
    while (!end) {
        pc_msg *m = NULL, **evs;
        size_t nev, len = 0;
        const uint8_t *d;
        double tmo = -1;

        pthread_mutex_lock(&c->mu);
        if (c->closing && c->close_deadline > 0) {
            tmo = c->close_deadline - pc_now();
            tmo = tmo > 0 ? tmo : 0;
        }
        pthread_mutex_unlock(&c->mu);
        (void)pc_recv(&m, tmo);
        d = m ? pc_msg_data(m, &len) : NULL;
        pthread_mutex_lock(&c->mu);
        if (!m) {
            /* the close's deadline passed */
        } else if (pc_msg_is(m, CL_GO)) {
            c->go_pending = false;
        } else if (pc_msg_is(m, CL_NODES)) {
            nlist *l = NULL;
            if (len == sizeof l) {
                memcpy(&l, d, sizeof l);
                on_nodes(&a, l);
                free(l);
            }
        } else if (pc_msg_is(m, PC_MSG_DOWN)) {
            on_down(c, m);
        } else if (pc_msg_is(m, CP_T_RESERVED)) {
            on_reserved(&a, m, d, len);
        } else if (pc_msg_is(m, CP_T_REFUSED)) {
            on_refused(&a, m, d, len);
        } else {
            on_session(&a, m, d, len);
        }
        do_ops(&a);
        if (!c->closing)
            dispatch(&a);
        if (c->closing && c->close_deadline > 0 &&
            (all_closed(c) || pc_now() >= c->close_deadline)) {
            c->close_timed_out = !all_closed(c);
            node_event(c, PC_CE_CLOSED, NULL, -1, 0,
                       c->close_timed_out ? "not every node confirmed" : "");
            end = true;
        }
        evs = c->evq;
        nev = c->nevq;
        c->evq = NULL;
        c->nevq = c->evq_cap = 0;
        pc__cc_notify(c);
        pthread_mutex_unlock(&c->mu);
        pc_msg_free(&m);
        flush(&a);
        send_events(c, evs, nev);
    }
    free(a.v);
    free(a.batch);
    return NULL;
}
