/* services/compute_client.c — distributed computations, the client side
 * (include/picos/compute.h, docs/computations.md; the wire is
 * proto/compute.proto, conversation 1).
 *
 * One agent task per computation (pc_compute_open() spawns it; it ends in
 * pc_compute_close()) is the only one that talks to the nodes: every
 * message of the computation's sessions comes to it, and it sends every
 * reserve, chunk, batch, cancel and control. Callers never touch the wire:
 * they change the state they share with the agent under the mutex `mu`
 * (the scheduler's data, compute_sched.c; a queue of operations the agent
 * must carry out: cancels of sent jobs, messages to jobs, suspend, close),
 * wake the agent with one message (at most one in flight: go_pending) and
 * wait on a pc_event of their own, registered as a waiter and set by
 * whoever changes what waiters look at — so waits work for tasks and for
 * foreign threads alike and no wake-up is lost (each waiter clears its own
 * event under mu before it checks its condition). The agent handles one
 * message at a time under mu, collects what it must send, and sends after
 * letting go of mu; after each message it dispatches what the scheduler
 * lets go (one ComputeSubmit per node, split below the link's frame size)
 * and sends the status events collected meanwhile (callers' ends of
 * queued jobs included), so every event goes out from the agent, in the
 * order things happened.
 *
 * Nodes: a lister task lists the cluster's names every ~1.5 s
 * (pc_cluster_names(), the PC_COMPUTE_NAME_PREFIX ones matching opts.nodes
 * by fnmatch), locates those it has not located yet (pc_locate() connects
 * to their node) and hands the list to the agent, which reserves on the
 * nodes it does not have, asks again those that refused for lack of CPUs
 * (or being suspended), and those lost or failed whose compute task is a
 * new one (the node restarted). The lister shares only a small refcounted
 * struct with the client, so close never waits for it. The library and
 * files are read into memory once (SHA-256 by wolfSSL) and uploaded to
 * each node in chunks of at most min(max_chunk, CP_CHUNK_MAX) bytes, at
 * most CP_CHUNK_WINDOW unacknowledged; empty files need no chunk. The agent
 * monitors each node's compute task (a node that dies before it answers)
 * and session task (a node lost: its jobs retried elsewhere). Messages of a
 * session are told apart by their sender's node id: one node runs one
 * session of a computation, and a restarted node has a new id, so late
 * messages of an old session find no node.
 *
 * A job's spec is packed once at submit (a ComputeJob without id and
 * attempt); a batch is those bytes with the id and the attempt put in
 * front (protobuf takes fields in any order), so a retry costs no repack.
 *
 * Figures (pc_compute_stats): running = sent to a node and not ended (its
 * queue there included); done = ended (any why); failed = ended not OK.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "picos/computation.h"
#include "picos/log.h"
#include "picos/monitor.h"
#include "picos/node.h"
#include "picos/registry.h"
#include "picos/sync.h"

#include "compute_client_int.h"
#include "compute_int.h"

#define CL_GO "picos.compute.go"
#define CL_NODES "picos.compute.nodes"
#define CL_STOP "picos.compute.stop"
/* A ComputeSubmit is cut before it passes this (the link's frame is 1 MiB
 * with the envelope), and one job may be at most JOB_WIRE_MAX packed. */
#define SUBMIT_MAX (900u * 1024u)
#define JOB_WIRE_MAX ((1u << 20) - (16u << 10))
/* A job's input and files in together (docs/computations.md, "Limits"):
 * a W_RUN frame at the node holds them. */
#define JOB_IN_MAX (960u * 1024u)
#define FILES_OUT_MAX 64
#define LIST_PERIOD 1.5
#define REFUSED_RETRY 1.0

/* A file of the computation, in memory once. */
typedef struct cfile {
    char *name; /* base name; "" for the library */
    unsigned char *data;
    size_t len;
    uint8_t sha[32];
} cfile;

enum { OP_CANCEL, OP_TOJOB, OP_SUSPEND, OP_CLOSE_NODE, OP_CLOSE };

typedef struct op {
    struct op *next;
    int kind;
    uint64_t id;
    bool on, all;
    double grace;
    char node[PC_NAME_MAX + 1];
    size_t len;
    unsigned char data[];
} op;

typedef struct waiter {
    struct waiter *next;
    pc_event *ev;
} waiter;

/* A node name the lister has located: the ref the registry listed and
 * the one pc_locate() gave. */
typedef struct lknown {
    char name[PC_NAME_MAX + 1];
    pc_ref listed, located;
} lknown;

/* What the lister shares with the client (and what it keeps, freed with
 * the last reference however the lister ends). */
typedef struct lshare {
    _Atomic int refs;
    pthread_mutex_t mu;
    bool stop;
    char **patterns;
    size_t npatterns;
    pc_ref agent;
    lknown *known; /* the lister's */
    size_t nknown;
} lshare;

/* The lister's list, handed to the agent (a pointer in CL_NODES). */
typedef struct nlist {
    size_t n;
    struct {
        pc_ref ref;
        char name[PC_NAME_MAX + 1];
    } e[];
} nlist;

struct pc_compute {
    pthread_mutex_t mu;
    cs_sched s;
    cfile *files; /* files[0]: the library */
    size_t nfiles;
    char **patterns;
    size_t npatterns;
    bool literal; /* every pattern is a plain name */
    int cpus;
    size_t memory;
    pc_ref status, messages;
    uint64_t client;
    char label[128];
    pc_ref agent, lister;
    lshare *ls;
    /* under mu */
    bool go_pending;
    op *ops, **ops_tail;
    pc_msg **evq;
    size_t nevq, evq_cap;
    waiter *waiters;
    bool closing, agent_done, close_timed_out;
    double close_deadline;
    char err[256];
};

static __thread char open_err[256];

/* ---- small things ------------------------------------------------------------- */

static void set_err(pc_compute *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
set_err(pc_compute *c, const char *fmt, ...)
{
    va_list ap;
    char buf[256];

    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (c) {
        pthread_mutex_lock(&c->mu);
        snprintf(c->err, sizeof c->err, "%s", buf);
        pthread_mutex_unlock(&c->mu);
    } else {
        snprintf(open_err, sizeof open_err, "%s", buf);
    }
}

const char *
pc_compute_error(const pc_compute *c)
{
    return c ? c->err : open_err;
}

/* Under mu: every waiter looks again. */
static void
notify(pc_compute *c)
{
    for (waiter *w = c->waiters; w; w = w->next)
        pc_event_set(w->ev);
}

/* Under mu: the scheduler's event into the queue the agent sends. */
static void
emit_cb(void *ctx, const pc_compute_event *e)
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
    emit_cb(c, &e);
}

/* Under mu: make the agent look (returns whether a go must be sent). */
static bool
want_go(pc_compute *c)
{
    if (c->go_pending)
        return false;
    c->go_pending = true;
    return true;
}

static void
send_go(pc_compute *c)
{
    pc_msg *m = NULL;

    if (pc_msg_new(&m, CL_GO, NULL, 0) == PC_OK && pc_send(c->agent, &m))
        pc_msg_free(&m);
}

static void
push_op(pc_compute *c, op *o)
{
    o->next = NULL;
    *c->ops_tail = o;
    c->ops_tail = &o->next;
}

static bool
plain_name(const char *s)
{
    return s && *s && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..") &&
           strlen(s) <= PC_NAME_MAX;
}

/* ---- waiting ------------------------------------------------------------------ */

/* Wait until cond(c, arg) (checked under mu) returns something other than
 * 1: that is the result; PC_ETIMEDOUT when `timeout` passes first. */
static pc_err
wait_for(pc_compute *c, double timeout, int (*cond)(pc_compute *, void *),
         void *arg)
{
    double until = timeout < 0 ? -1 : pc_now() + timeout;
    /* on the heap: the agent reads it, and a small task's stack is not
     * where it seems while the task is not running */
    waiter *w = NULL;
    int r;

    pthread_mutex_lock(&c->mu);
    for (;;) {
        double left = until < 0 ? -1 : until - pc_now();
        if ((r = cond(c, arg)) != 1)
            break;
        if (c->agent_done) {
            r = PC_ECLOSED;
            break;
        }
        if (until >= 0 && left <= 0) {
            r = PC_ETIMEDOUT;
            break;
        }
        if (!w &&
            (!(w = calloc(1, sizeof *w)) || pc_event_new(&w->ev) != PC_OK)) {
            r = PC_ENOMEM;
            break;
        }
        pc_event_clear(w->ev);
        w->next = c->waiters;
        c->waiters = w;
        pthread_mutex_unlock(&c->mu);
        (void)pc_event_wait(w->ev, left);
        pthread_mutex_lock(&c->mu);
        for (waiter **pp = &c->waiters; *pp; pp = &(*pp)->next) {
            if (*pp == w) {
                *pp = w->next;
                break;
            }
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (w)
        pc_event_free(&w->ev);
    free(w);
    return (pc_err)r;
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

static bool
matches(char *const *patterns, size_t np, const char *name)
{
    if (!np)
        return true;
    for (size_t k = 0; k < np; k++)
        if (!fnmatch(patterns[k], name, 0))
            return true;
    return false;
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
    notify(c);
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

static pc_msg *
agent(void *arg)
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
        notify(c);
        pthread_mutex_unlock(&c->mu);
        pc_msg_free(&m);
        flush(&a);
        send_events(c, evs, nev);
    }
    free(a.v);
    free(a.batch);
    return NULL;
}

/* ---- the lister ----------------------------------------------------------------- */

static void
ls_unref(lshare *ls)
{
    if (ls && atomic_fetch_sub(&ls->refs, 1) == 1) {
        for (size_t k = 0; k < ls->npatterns; k++)
            free(ls->patterns[k]);
        free(ls->patterns);
        free(ls->known);
        pthread_mutex_destroy(&ls->mu);
        free(ls);
    }
}

static void
lister_end(void *arg)
{
    ls_unref(arg);
}

static pc_msg *
lister(void *arg)
{
    lshare *ls = arg;
    const size_t plen = strlen(PC_COMPUTE_NAME_PREFIX);

    pc_at_exit(lister_end, ls);
    for (;;) {
        pc_name_info *ni = NULL;
        size_t n = 0;
        pc_msg *m = NULL;
        bool stop;

        pthread_mutex_lock(&ls->mu);
        stop = ls->stop;
        pthread_mutex_unlock(&ls->mu);
        if (stop)
            break;
        if (pc_cluster_names(PC_NAME_TASK, &ni, &n, 2.0) == PC_OK) {
            nlist *l = malloc(sizeof *l + n * sizeof l->e[0]);
            if (l) {
                l->n = 0;
                for (size_t i = 0; i < n; i++) {
                    const char *node = ni[i].name + plen;
                    size_t k;
                    if (strncmp(ni[i].name, PC_COMPUTE_NAME_PREFIX, plen) ||
                        !*node || !matches(ls->patterns, ls->npatterns, node))
                        continue;
                    for (k = 0; k < ls->nknown; k++)
                        if (!strcmp(ls->known[k].name, node))
                            break;
                    if (k == ls->nknown) {
                        lknown *kk = realloc(ls->known, (k + 1) * sizeof *kk);
                        if (!kk)
                            continue;
                        ls->known = kk;
                        memset(&kk[k], 0, sizeof kk[k]);
                        snprintf(kk[k].name, sizeof kk[k].name, "%s", node);
                        ls->nknown++;
                    }
                    lknown *kn = &ls->known[k];
                    if (!pc_ref_eq(kn->listed, ni[i].ref) ||
                        pc_ref_is_nil(kn->located)) {
                        pc_ref r;
                        if (pc_locate(PC_NAME_TASK, ni[i].name, 2.0, &r) !=
                            PC_OK)
                            continue;
                        kn->listed = ni[i].ref;
                        kn->located = r;
                    }
                    l->e[l->n].ref = kn->located;
                    snprintf(l->e[l->n].name, sizeof l->e[l->n].name, "%s",
                             node);
                    l->n++;
                }
                pthread_mutex_lock(&ls->mu);
                stop = ls->stop;
                pthread_mutex_unlock(&ls->mu);
                if (stop || pc_msg_new(&m, CL_NODES, &l, sizeof l) != PC_OK ||
                    pc_send(ls->agent, &m) != PC_OK) {
                    pc_msg_free(&m);
                    free(l);
                }
            }
            free(ni);
        }
        if (pc_recv(&m, LIST_PERIOD) == PC_OK && pc_msg_is(m, CL_STOP)) {
            pc_msg_free(&m);
            break;
        }
        pc_msg_free(&m);
    }
    return NULL;
}

/* ---- opening ---------------------------------------------------------------------- */

/* Whether an ELF file defines `sym` (dynamic or static symbol table). Not
 * an ELF64 file: whether its bytes hold the name at all. */
static bool
elf_defines(const unsigned char *p, size_t len, const char *sym)
{
    Elf64_Ehdr eh;
    size_t sl = strlen(sym);

    if (len < sizeof eh || memcmp(p, ELFMAG, SELFMAG))
        return false;
    memcpy(&eh, p, sizeof eh);
    if (eh.e_ident[EI_CLASS] != ELFCLASS64)
        return memmem(p, len, sym, sl + 1) != NULL;
    if (eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shoff > len ||
        (size_t)eh.e_shnum > (len - eh.e_shoff) / sizeof(Elf64_Shdr))
        return false;
    for (size_t i = 0; i < eh.e_shnum; i++) {
        Elf64_Shdr sh, st;
        memcpy(&sh, p + eh.e_shoff + i * sizeof sh, sizeof sh);
        if ((sh.sh_type != SHT_DYNSYM && sh.sh_type != SHT_SYMTAB) ||
            sh.sh_link >= eh.e_shnum || sh.sh_offset > len ||
            sh.sh_size > len - sh.sh_offset)
            continue;
        memcpy(&st, p + eh.e_shoff + sh.sh_link * sizeof st, sizeof st);
        if (st.sh_offset > len || st.sh_size > len - st.sh_offset)
            continue;
        for (size_t k = 0; k < sh.sh_size / sizeof(Elf64_Sym); k++) {
            Elf64_Sym s;
            memcpy(&s, p + sh.sh_offset + k * sizeof s, sizeof s);
            if (s.st_shndx == SHN_UNDEF || s.st_name >= st.sh_size ||
                st.sh_size - s.st_name < sl + 1)
                continue;
            if (!memcmp(p + st.sh_offset + s.st_name, sym, sl + 1))
                return true;
        }
    }
    return false;
}

static pc_err
read_file(const char *path, size_t max, unsigned char **out, size_t *len,
          char *err, size_t esize)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    unsigned char *buf;
    size_t n = 0;

    *out = NULL;
    if (fd < 0) {
        snprintf(err, esize, "%s: %s", path, strerror(errno));
        return PC_EINVAL;
    }
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        snprintf(err, esize, "%s: not a regular file", path);
        close(fd);
        return PC_EINVAL;
    }
    if ((uint64_t)st.st_size > max) {
        snprintf(err, esize, "%s: %lld bytes, more than %zu in all", path,
                 (long long)st.st_size, max);
        close(fd);
        return PC_EINVAL;
    }
    if (!(buf = malloc((size_t)st.st_size + 1))) {
        close(fd);
        snprintf(err, esize, "%s", pc_strerror(PC_ENOMEM));
        return PC_ENOMEM;
    }
    while (n < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            snprintf(err, esize, "%s: %s", path,
                     r < 0 ? strerror(errno) : "shorter than its size");
            free(buf);
            close(fd);
            return PC_EINVAL;
        }
        n += (size_t)r;
    }
    close(fd);
    *out = buf;
    *len = n;
    return PC_OK;
}

static void
sha256(const unsigned char *p, size_t len, uint8_t out[32])
{
    wc_Sha256 s;

    wc_InitSha256(&s);
    while (len) {
        word32 k = len > (1u << 30) ? (1u << 30) : (word32)len;
        wc_Sha256Update(&s, p, k);
        p += k;
        len -= k;
    }
    wc_Sha256Final(&s, out);
    wc_Sha256Free(&s);
}

static void
compute_free(pc_compute *c)
{
    pc__cs_fini(&c->s);
    for (size_t k = 0; k < c->nfiles; k++) {
        free(c->files[k].name);
        free(c->files[k].data);
    }
    free(c->files);
    for (size_t k = 0; k < c->npatterns; k++)
        free(c->patterns[k]);
    free(c->patterns);
    while (c->ops) {
        op *o = c->ops;
        c->ops = o->next;
        free(o);
    }
    for (size_t k = 0; k < c->nevq; k++)
        pc_msg_free(&c->evq[k]);
    free(c->evq);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Read the library and the files into c (err: why not). */
static pc_err
load_files(pc_compute *c, const pc_compute_opts *o, char *err, size_t esize)
{
    size_t nf = 0, total = 0;
    pc_err rc;

    while (o->files && o->files[nf])
        nf++;
    if (nf > CP_FILES_MAX) {
        snprintf(err, esize, "%zu data files: at most %d", nf, CP_FILES_MAX);
        return PC_EINVAL;
    }
    if (!(c->files = calloc(nf + 1, sizeof *c->files)))
        return PC_ENOMEM;
    for (size_t k = 0; k <= nf; k++) {
        const char *path = k ? o->files[k - 1] : o->library;
        const char *base = strrchr(path, '/');
        cfile *f = &c->files[k];
        base = base ? base + 1 : path;
        c->nfiles = k + 1;
        if (k && !plain_name(base)) {
            snprintf(err, esize, "data file %s: no file name", path);
            return PC_EINVAL;
        }
        for (size_t q = 1; k && q < k; q++) {
            if (!strcmp(c->files[q].name, base)) {
                snprintf(err, esize, "data files %s and %s have one name",
                         o->files[q - 1], path);
                return PC_EINVAL;
            }
        }
        if (!(f->name = strdup(k ? base : "")))
            return PC_ENOMEM;
        if ((rc = read_file(path, CP_UPLOAD_MAX - total, &f->data, &f->len, err,
                            esize)) != PC_OK)
            return rc;
        total += f->len;
        if (!k && !elf_defines(f->data, f->len, PC_COMPUTATION_SYMBOL)) {
            snprintf(err, esize,
                     "%s is not a computation: it defines no %s (see "
                     "picos/computation.h)",
                     path, PC_COMPUTATION_SYMBOL);
            return PC_EINVAL;
        }
        sha256(f->data, f->len, f->sha);
    }
    return PC_OK;
}

/* What pc_compute_open() waits for: PC_OK, an error, or 1 (not yet). */
static int
open_cond(pc_compute *c, void *arg)
{
    char *text = arg;
    size_t ready = 0, fails = 0, full = 0;
    const cs_node *first_fail = NULL;

    if (!c->s.listed)
        return 1;
    if (!c->s.nnodes) {
        snprintf(text, 256, "no compute node in the cluster%s",
                 c->npatterns ? " matches the names given" : "");
        return PC_ENOENT;
    }
    for (size_t i = 0; i < c->s.nnodes; i++) {
        const cs_node *n = &c->s.nodes[i];
        if (n->state == CN_READY)
            ready++;
        else if (n->state == CN_REFUSED &&
                 n->refusal == PICOS__V1__COMPUTE_REFUSAL__COMPUTE_NO_CPUS)
            full++;
        else if (n->state != CN_RESERVING && n->state != CN_UPLOADING) {
            fails++;
            if (!first_fail)
                first_fail = n;
        }
    }
    if (c->literal) {
        for (size_t k = 0; k < c->npatterns; k++) {
            int i = pc__cs_node_find(&c->s, c->patterns[k]);
            if (i < 0 || c->s.nodes[i].state == CN_RESERVING ||
                c->s.nodes[i].state == CN_UPLOADING)
                return 1;
        }
        if (ready)
            return PC_OK;
    } else if (ready) {
        return PC_OK;
    }
    if (!pc__cs_all_answered(&c->s))
        return 1;
    if (first_fail) {
        snprintf(text, 256, "%.63s: %.180s", first_fail->name,
                 first_fail->text[0] ? first_fail->text : "refused");
        return PC_EFAILED;
    }
    snprintf(text, 256, "no free CPU on the %zu compute node%s found", full,
             full == 1 ? "" : "s");
    return PC_EFULL;
}

static pc_err close_impl(pc_compute **cp, double grace);

pc_err
pc_compute_open(const pc_compute_opts *o, double timeout, pc_compute **out)
{
    pc_spawn_opts so = {.worker = PC_WORKER_ANY,
                        .flags = PC_TASK_DAEMON | PC_TASK_JOINABLE,
                        .name = "compute.agent"};
    pc_compute *c;
    char err[256] = "";
    size_t np = 0;
    pc_err rc;

    if (out)
        *out = NULL;
    if (!o || !o->library || !out) {
        set_err(NULL, "no library given");
        return PC_EINVAL;
    }
    if (!pc_cluster_joined()) {
        set_err(NULL, "not a member of a cluster (pc_cluster_join first)");
        return PC_ESTATE;
    }
    if (!(c = calloc(1, sizeof *c))) {
        set_err(NULL, "%s", pc_strerror(PC_ENOMEM));
        return PC_ENOMEM;
    }
    pthread_mutex_init(&c->mu, NULL);
    pc__cs_init(&c->s, o->prefetch > 0 ? o->prefetch : 2,
                o->max_retries > 0   ? o->max_retries
                : o->max_retries < 0 ? 0
                                     : 3);
    c->ops_tail = &c->ops;
    c->cpus = o->cpus > 0 ? o->cpus : 0;
    c->memory = o->memory;
    c->status = o->status;
    c->messages = o->messages;
    if (!pc_ref_is_nil(c->status)) {
        c->s.emit = emit_cb;
        c->s.emit_ctx = c;
    }
    if (getrandom(&c->client, sizeof c->client, 0) != sizeof c->client)
        c->client = pc_wall_us() ^ ((uint64_t)getpid() << 40);
    snprintf(c->label, sizeof c->label, "%s pid %d",
             program_invocation_short_name, (int)getpid());
    while (o->nodes && o->nodes[np])
        np++;
    c->literal = np > 0;
    if (np && !(c->patterns = calloc(np, sizeof *c->patterns))) {
        rc = PC_ENOMEM;
        goto fail;
    }
    for (size_t k = 0; k < np; k++) {
        if (!(c->patterns[k] = strdup(o->nodes[k]))) {
            rc = PC_ENOMEM;
            goto fail;
        }
        c->npatterns = k + 1;
        c->literal &= strpbrk(o->nodes[k], "*?[") == NULL;
    }
    if ((rc = load_files(c, o, err, sizeof err)) != PC_OK)
        goto fail;
    if (!(c->ls = calloc(1, sizeof *c->ls))) {
        rc = PC_ENOMEM;
        goto fail;
    }
    atomic_init(&c->ls->refs, 1);
    pthread_mutex_init(&c->ls->mu, NULL);
    if (np && !(c->ls->patterns = calloc(np, sizeof(char *)))) {
        rc = PC_ENOMEM;
        goto fail;
    }
    for (size_t k = 0; k < np; k++) {
        if (!(c->ls->patterns[k] = strdup(o->nodes[k]))) {
            rc = PC_ENOMEM;
            goto fail;
        }
        c->ls->npatterns = k + 1;
    }
    if ((rc = pc_spawn(agent, c, &so, &c->agent)) != PC_OK)
        goto fail;
    c->ls->agent = c->agent;
    so.flags = PC_TASK_DAEMON;
    so.name = "compute.lister";
    atomic_fetch_add(&c->ls->refs, 1);
    if (pc_spawn(lister, c->ls, &so, &c->lister) != PC_OK)
        atomic_fetch_sub(&c->ls->refs, 1);
    rc = wait_for(c, timeout, open_cond, err);
    if (rc == PC_OK) {
        *out = c;
        return PC_OK;
    }
    if (rc == PC_ETIMEDOUT)
        snprintf(err, sizeof err, "no compute node ready within %.3g s%s",
                 timeout, c->literal ? " (every node named)" : "");
    else if (rc == PC_ECLOSED)
        snprintf(err, sizeof err, "the node stopped");
    (void)close_impl(&c, 0);
    set_err(NULL, "%s", err[0] ? err : pc_strerror(rc));
    return rc;
fail:
    if (!err[0])
        snprintf(err, sizeof err, "%s", pc_strerror(rc));
    set_err(NULL, "%s", err);
    if (c->ls)
        ls_unref(c->ls);
    compute_free(c);
    return rc;
}

/* ---- closing ---------------------------------------------------------------------- */

static int
closed_cond(pc_compute *c, void *arg)
{
    (void)arg;
    return c->agent_done ? PC_OK : 1;
}

static pc_err
close_impl(pc_compute **cp, double grace)
{
    pc_compute *c = *cp;
    op *o = calloc(1, sizeof *o);
    pc_msg *m = NULL;
    bool go;
    pc_err rc;

    *cp = NULL;
    if (grace < 0)
        grace = 0;
    pthread_mutex_lock(&c->mu);
    c->closing = true;
    c->s.closing = true;
    while (c->s.queue.head)
        pc__cs_end(&c->s, c->s.queue.head, PC_JOB_CANCELLED,
                   "cancelled: the computation closed");
    if (o) {
        o->kind = OP_CLOSE;
        o->grace = grace;
        push_op(c, o);
    } else {
        c->close_deadline = pc_now() + grace + 5.0;
    }
    go = want_go(c);
    notify(c);
    pthread_mutex_unlock(&c->mu);
    if (go)
        send_go(c);
    pthread_mutex_lock(&c->ls->mu);
    c->ls->stop = true;
    pthread_mutex_unlock(&c->ls->mu);
    /* the lister may be gone already: then the flag was enough */
    if (pc_msg_new(&m, CL_STOP, NULL, 0) == PC_OK &&
        pc_send(c->lister, &m) != PC_OK)
        pc_msg_free(&m);
    /* the agent ends by its own deadline (grace + 5 s) or with its node */
    rc = wait_for(c, -1, closed_cond, NULL);
    (void)pc_task_join(c->agent, -1, NULL);
    if (rc == PC_OK && c->close_timed_out)
        rc = PC_ETIMEDOUT;
    else if (rc == PC_ECLOSED)
        rc = PC_OK; /* the agent ended with its node */
    ls_unref(c->ls);
    compute_free(c);
    return rc;
}

pc_err
pc_compute_close(pc_compute **c, double grace)
{
    if (!c || !*c)
        return PC_EINVAL;
    return close_impl(c, grace);
}

/* ---- jobs ------------------------------------------------------------------------- */

/* Check and pack spec j into *wire (its ComputeJob without id and
 * attempt). */
static pc_err
pack_job(pc_compute *c, size_t idx, const pc_job_spec *j, void **wire,
         size_t *wlen)
{
    Picos__V1__ComputeJob w = PICOS__V1__COMPUTE_JOB__INIT;
    Picos__V1__ComputeJobFile *fi = NULL, **fp = NULL;
    size_t nout = 0, fbytes = 0;
    pc_err rc = PC_EINVAL;

    *wire = NULL;
    if (!j->fn || !*j->fn || strlen(j->fn) > PC_NAME_MAX) {
        set_err(c, "job %zu: no function name", idx);
        return PC_EINVAL;
    }
    if ((!j->input && j->len) || j->len > PC_JOB_MSG_MAX) {
        set_err(c, "job %zu: input of %zu bytes (at most %u)", idx, j->len,
                PC_JOB_MSG_MAX);
        return PC_EINVAL;
    }
    if (j->cpus < 0 || (j->nfiles_in && !j->files_in)) {
        set_err(c, "job %zu: bad cpus or files_in", idx);
        return PC_EINVAL;
    }
    while (j->files_out && j->files_out[nout]) {
        if (!plain_name(j->files_out[nout])) {
            set_err(c, "job %zu: files_out \"%s\" is not a plain file name",
                    idx, j->files_out[nout]);
            return PC_EINVAL;
        }
        nout++;
    }
    if (nout > FILES_OUT_MAX || j->nfiles_in > CP_FILES_MAX) {
        set_err(c, "job %zu: more than %d files in or out", idx, CP_FILES_MAX);
        return PC_EINVAL;
    }
    if (j->nfiles_in && (!(fi = calloc(j->nfiles_in, sizeof *fi)) ||
                         !(fp = calloc(j->nfiles_in, sizeof *fp)))) {
        rc = PC_ENOMEM;
        goto out;
    }
    for (size_t k = 0; k < j->nfiles_in; k++) {
        const pc_job_file *f = &j->files_in[k];
        if (!plain_name(f->name) || (!f->data && f->len)) {
            set_err(c, "job %zu: files_in \"%s\" is not a plain file name", idx,
                    f->name ? f->name : "(null)");
            goto out;
        }
        for (size_t q = 0; q < k; q++) {
            if (!strcmp(j->files_in[q].name, f->name)) {
                set_err(c, "job %zu: files_in \"%s\" given twice", idx,
                        f->name);
                goto out;
            }
        }
        fbytes += f->len;
        if (fbytes > CP_JOB_FILES_MAX) {
            set_err(c, "job %zu: files_in of more than %u bytes", idx,
                    CP_JOB_FILES_MAX);
            goto out;
        }
        picos__v1__compute_job_file__init(&fi[k]);
        fi[k].name = (char *)f->name;
        fi[k].data.data = (uint8_t *)f->data;
        fi[k].data.len = f->len;
        fp[k] = &fi[k];
    }
    if (j->len + fbytes > JOB_IN_MAX) {
        set_err(c,
                "job %zu: input and files_in of %zu bytes together (at most "
                "%u)",
                idx, j->len + fbytes, JOB_IN_MAX);
        goto out;
    }
    w.fn = (char *)j->fn;
    w.input.data = (uint8_t *)j->input;
    w.input.len = j->len;
    w.timeout_ms = j->timeout > 0 ? (int64_t)(j->timeout * 1e3 + 0.5) : 0;
    if (j->timeout > 0 && w.timeout_ms == 0)
        w.timeout_ms = 1;
    w.cpus = (uint32_t)(j->cpus > 0 ? j->cpus : 1);
    w.n_files_in = j->nfiles_in;
    w.files_in = fp;
    w.n_files_out = nout;
    w.files_out = (char **)j->files_out;
    *wlen = protobuf_c_message_get_packed_size(&w.base);
    if (*wlen > JOB_WIRE_MAX) {
        set_err(c,
                "job %zu: input and files_in of %zu bytes packed: more than "
                "one message holds",
                idx, *wlen);
        goto out;
    }
    if (!(*wire = malloc(*wlen ? *wlen : 1))) {
        rc = PC_ENOMEM;
        goto out;
    }
    protobuf_c_message_pack(&w.base, *wire);
    rc = PC_OK;
out:
    if (rc == PC_ENOMEM)
        set_err(c, "%s", pc_strerror(rc));
    free(fi);
    free(fp);
    return rc;
}

pc_err
pc_compute_submit(pc_compute *c, const pc_job_spec *jobs, size_t n,
                  uint64_t *ids)
{
    void **wires;
    size_t *lens;
    pc_err rc = PC_OK;
    bool go = false;

    if (!c || (!jobs && n))
        return PC_EINVAL;
    if (!n)
        return PC_OK;
    if (!(wires = calloc(n, sizeof *wires)) ||
        !(lens = calloc(n, sizeof *lens))) {
        free(wires);
        set_err(c, "%s", pc_strerror(PC_ENOMEM));
        return PC_ENOMEM;
    }
    for (size_t i = 0; i < n && rc == PC_OK; i++)
        rc = pack_job(c, i, &jobs[i], &wires[i], &lens[i]);
    pthread_mutex_lock(&c->mu);
    if (rc == PC_OK && c->closing) {
        rc = PC_ECLOSED;
        snprintf(c->err, sizeof c->err, "the computation is closing");
    }
    /* names and sizes against the ready nodes, when there are any */
    for (size_t i = 0; i < n && rc == PC_OK; i++) {
        bool ready = false, known = false;
        int most = 0;
        for (size_t k = 0; k < c->s.nnodes; k++) {
            const cs_node *nd = &c->s.nodes[k];
            if (nd->state != CN_READY)
                continue;
            ready = true;
            known |= pc__cs_node_has(nd, jobs[i].fn);
            most = nd->workers > most ? nd->workers : most;
        }
        if (ready && !known) {
            rc = PC_EINVAL;
            snprintf(c->err, sizeof c->err,
                     "job %zu: no job function \"%s\" in the computation", i,
                     jobs[i].fn);
        } else if (ready && pc__cs_all_answered(&c->s) && jobs[i].cpus > most) {
            rc = PC_EINVAL;
            snprintf(c->err, sizeof c->err,
                     "job %zu: %d CPUs, a node has at most %d", i, jobs[i].cpus,
                     most);
        }
    }
    for (size_t i = 0; i < n && rc == PC_OK; i++) {
        cs_job *j =
            pc__cs_job_add(&c->s, jobs[i].fn, jobs[i].cpus, jobs[i].memory);
        if (!j) {
            /* what this call queued goes again: the newest at the tail */
            while (i--) {
                cs_job *q = c->s.queue.tail;
                q->wire = NULL; /* still in wires[] */
                pc__cs_job_drop(&c->s, q);
            }
            rc = PC_ENOMEM;
            snprintf(c->err, sizeof c->err, "%s", pc_strerror(rc));
            break;
        }
        j->wire = wires[i];
        j->wire_len = lens[i];
        if (ids)
            ids[i] = j->id;
    }
    if (rc == PC_OK) {
        memset(wires, 0, n * sizeof *wires);
        go = want_go(c);
    }
    pthread_mutex_unlock(&c->mu);
    if (go)
        send_go(c);
    for (size_t i = 0; i < n; i++)
        free(wires[i]);
    free(wires);
    free(lens);
    return rc;
}

void
pc_job_result_free(pc_job_result **r)
{
    if (!r || !*r)
        return;
    for (size_t k = 0; k < (*r)->nfiles; k++) {
        free((void *)(*r)->files[k].name);
        free((void *)(*r)->files[k].data);
    }
    free((*r)->files);
    free((*r)->data);
    free(*r);
    *r = NULL;
}

typedef struct take_arg {
    uint64_t id;
    pc_job_result *r;
} take_arg;

/* Under mu: j's result out of j, j freed. */
static pc_job_result *
result_of(pc_compute *c, cs_job *j)
{
    pc_job_result *r = j->res;

    j->res = NULL;
    if (!r && (r = calloc(1, sizeof *r))) {
        r->id = j->id;
        r->rc = PC_ENOMEM;
        r->why = PC_JOB_FAILED;
        r->worker = -1;
        snprintf(r->error, sizeof r->error, "no memory for its result");
    }
    pc__cs_job_free(&c->s, j);
    return r;
}

static int
any_cond(pc_compute *c, void *arg)
{
    take_arg *t = arg;
    cs_job *j = pc__cs_take(&c->s, 0);

    if (j) {
        t->r = result_of(c, j);
        return t->r ? PC_OK : PC_ENOMEM;
    }
    if (!pc__cs_pending(&c->s)) {
        snprintf(c->err, sizeof c->err, "no job to wait for");
        return PC_ENOENT;
    }
    return 1;
}

pc_err
pc_compute_wait_any(pc_compute *c, double timeout, pc_job_result **out)
{
    take_arg t = {0};
    pc_err rc;

    if (out)
        *out = NULL;
    if (!c || !out)
        return PC_EINVAL;
    if ((rc = wait_for(c, timeout, any_cond, &t)) == PC_OK)
        *out = t.r;
    else if (rc == PC_ETIMEDOUT)
        set_err(c, "no job ended within %.3g s", timeout);
    return rc;
}

static int
one_cond(pc_compute *c, void *arg)
{
    take_arg *t = arg;
    cs_job *j = pc__cs_job_find(&c->s, t->id);

    if (!j || j->reported) {
        snprintf(c->err, sizeof c->err, "no job %" PRIu64 " to wait for",
                 t->id);
        return PC_ENOENT;
    }
    if (j->state != CJ_DONE)
        return 1;
    pc__cs_take(&c->s, t->id);
    t->r = result_of(c, j);
    return t->r ? PC_OK : PC_ENOMEM;
}

pc_err
pc_compute_wait(pc_compute *c, uint64_t id, double timeout, pc_job_result **out)
{
    take_arg t = {.id = id};
    pc_err rc;

    if (out)
        *out = NULL;
    if (!c || !out)
        return PC_EINVAL;
    if ((rc = wait_for(c, timeout, one_cond, &t)) == PC_OK)
        *out = t.r;
    else if (rc == PC_ETIMEDOUT)
        set_err(c, "job %" PRIu64 " did not end within %.3g s", id, timeout);
    return rc;
}

static int
all_cond(pc_compute *c, void *arg)
{
    (void)arg;
    return pc__cs_pending(&c->s) ? 1 : PC_OK;
}

pc_err
pc_compute_wait_all(pc_compute *c, double timeout)
{
    pc_err rc;

    if (!c)
        return PC_EINVAL;
    if ((rc = wait_for(c, timeout, all_cond, NULL)) == PC_ETIMEDOUT)
        set_err(c, "jobs still running after %.3g s", timeout);
    return rc;
}

/* An operation for the agent (data: len bytes, may be NULL). */
static op *
op_new(int kind, const void *data, size_t len)
{
    op *o = calloc(1, sizeof *o + len);

    if (o) {
        o->kind = kind;
        o->len = len;
        if (len)
            memcpy(o->data, data, len);
    }
    return o;
}

pc_err
pc_compute_cancel(pc_compute *c, uint64_t id)
{
    op *o = op_new(OP_CANCEL, NULL, 0);
    cs_job *j;
    pc_err rc = PC_OK;
    bool go = false;

    if (!c) {
        free(o);
        return PC_EINVAL;
    }
    if (!o)
        return PC_ENOMEM;
    o->id = id;
    pthread_mutex_lock(&c->mu);
    j = pc__cs_job_find(&c->s, id);
    if (!j || j->state == CJ_DONE) {
        rc = PC_ENOENT;
        snprintf(c->err, sizeof c->err, "no job %" PRIu64 " running", id);
    } else if (j->state == CJ_QUEUED) {
        pc__cs_end(&c->s, j, PC_JOB_CANCELLED, "cancelled");
        notify(c);
        go = want_go(c); /* its events */
    } else if (!j->cancel) {
        j->cancel = true;
        push_op(c, o);
        o = NULL;
        go = want_go(c);
    }
    pthread_mutex_unlock(&c->mu);
    free(o);
    if (go)
        send_go(c);
    return rc;
}

pc_err
pc_compute_send(pc_compute *c, uint64_t id, const void *data, size_t len)
{
    cs_job *j;
    pc_err rc = PC_OK;
    bool go = false;
    op *o = NULL;
    cs_tomsg *t = NULL;

    if (!c || (!data && len))
        return PC_EINVAL;
    if (len > PC_JOB_MSG_MAX) {
        set_err(c, "a message of %zu bytes: at most %u", len, PC_JOB_MSG_MAX);
        return PC_ETOOBIG;
    }
    if (!(o = op_new(OP_TOJOB, data, len)) || !(t = malloc(sizeof *t + len))) {
        free(o);
        set_err(c, "%s", pc_strerror(PC_ENOMEM));
        return PC_ENOMEM;
    }
    o->id = id;
    t->next = NULL;
    t->len = len;
    if (len)
        memcpy(t->data, data, len);
    pthread_mutex_lock(&c->mu);
    j = pc__cs_job_find(&c->s, id);
    if (!j || j->state == CJ_DONE) {
        rc = PC_ENOENT;
        snprintf(c->err, sizeof c->err, "no job %" PRIu64 " running", id);
    } else if (j->state == CJ_QUEUED) {
        *j->tomsgs_tail = t;
        j->tomsgs_tail = &t->next;
        t = NULL;
    } else {
        push_op(c, o);
        o = NULL;
        go = want_go(c);
    }
    pthread_mutex_unlock(&c->mu);
    free(o);
    free(t);
    if (go)
        send_go(c);
    return rc;
}

/* The node named `node` (NULL: every one) gets op o; PC_ENOENT when c has
 * none of that name. */
static pc_err
node_op(pc_compute *c, const char *node, op *o, bool suspend, bool on)
{
    pc_err rc = PC_OK;
    bool go = false;
    int i = -1;

    if (!o)
        return PC_ENOMEM;
    o->all = !node;
    snprintf(o->node, sizeof o->node, "%s", node ? node : "");
    pthread_mutex_lock(&c->mu);
    if (node && (i = pc__cs_node_find(&c->s, node)) < 0) {
        rc = PC_ENOENT;
        snprintf(c->err, sizeof c->err, "no node %s in the computation", node);
    } else if (c->closing) {
        rc = PC_ECLOSED;
        snprintf(c->err, sizeof c->err, "the computation is closing");
    } else {
        for (size_t k = 0; k < c->s.nnodes; k++) {
            if (node && (int)k != i)
                continue;
            if (suspend)
                c->s.nodes[k].suspended = on;
            else
                c->s.nodes[k].close_asked = true;
        }
        push_op(c, o);
        o = NULL;
        go = want_go(c);
    }
    pthread_mutex_unlock(&c->mu);
    free(o);
    if (go)
        send_go(c);
    return rc;
}

pc_err
pc_compute_suspend(pc_compute *c, const char *node, bool on)
{
    op *o;

    if (!c)
        return PC_EINVAL;
    if ((o = op_new(OP_SUSPEND, NULL, 0)))
        o->on = on;
    return node_op(c, node, o, true, on);
}

pc_err
pc_compute_close_node(pc_compute *c, const char *node, double grace)
{
    op *o;

    if (!c || !node)
        return PC_EINVAL;
    if ((o = op_new(OP_CLOSE_NODE, NULL, 0)))
        o->grace = grace < 0 ? 0 : grace;
    return node_op(c, node, o, false, false);
}

pc_err
pc_compute_stats_get(const pc_compute *cc, pc_compute_stats *out)
{
    pc_compute *c = (pc_compute *)cc;

    if (!c || !out)
        return PC_EINVAL;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->s.nnodes; i++) {
        const cs_node *n = &c->s.nodes[i];
        if (n->state == CN_READY) {
            out->nodes++;
            out->workers += n->up;
        }
    }
    out->submitted = c->s.submitted;
    out->queued = c->s.queue.n;
    out->running = c->s.running;
    out->done = c->s.ended;
    out->failed = c->s.failed;
    out->retried = c->s.retried;
    out->msgs_dropped = c->s.msgs_dropped;
    pthread_mutex_unlock(&c->mu);
    return PC_OK;
}
