/* services/compute_client.c — distributed computations, the client side:
 * the API calls (include/picos/compute.h, docs/computations.md; the wire
 * is proto/compute.proto, conversation 1, and only the agent speaks it:
 * compute_agent.c).
 *
 * One agent task per computation (pc_compute_open() spawns it; it ends in
 * pc_compute_close()) is the only one that talks to the nodes. Callers
 * never touch the wire: they change the state they share with the agent
 * under the mutex `mu` (the scheduler's data, compute_sched.c; a queue of
 * operations the agent must carry out: cancels of sent jobs, messages to
 * jobs, suspend, close), wake the agent with one message (at most one in
 * flight: go_pending) and wait on a pc_event of their own, registered as
 * a waiter and set by whoever changes what waiters look at — so waits work
 * for tasks and for foreign threads alike and no wake-up is lost (each
 * waiter clears its own event under mu before it checks its condition).
 * A caller's end of a queued job (a cancel) is the scheduler's at once;
 * its events go out from the agent with the others, in order.
 *
 * pc_compute_open() reads the files (compute_client_files.c), starts the
 * agent and the lister (compute_lister.c) and waits until a node is ready
 * (every node named, when names were given) or none can be. A job's spec
 * is checked and packed once at submit (a ComputeJob without id and
 * attempt: the agent puts those in front, so a retry costs no repack).
 *
 * Figures (pc_compute_stats): running = sent to a node and not ended (its
 * queue there included); done = ended (any why); failed = ended not OK.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "picos/computation.h"
#include "picos/node.h"
#include "picos/registry.h"
#include "picos/sync.h"

#include "compute_client_int.h"
#include "compute_int.h"

/* One job may be at most JOB_WIRE_MAX packed (a ComputeSubmit of it fits
 * in one link frame). */
#define JOB_WIRE_MAX ((1u << 20) - (16u << 10))
/* A job's input and files in together (docs/computations.md, "Limits"):
 * a W_RUN frame at the node holds them. */
#define JOB_IN_MAX (960u * 1024u)
#define FILES_OUT_MAX 64

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
void
pc__cc_notify(pc_compute *c)
{
    for (waiter *w = c->waiters; w; w = w->next)
        pc_event_set(w->ev);
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

/* Under mu: *o for the agent (taken: NULL then). Returns whether a go
 * must be sent. */
static bool
hand_op(pc_compute *c, op **o)
{
    push_op(c, *o);
    *o = NULL;
    return want_go(c);
}

/* The end of a call that may have given the agent work: mu let go, o (not
 * handed over) freed, the agent woken when go; returns rc. */
static pc_err
unlock_go(pc_compute *c, bool go, op *o, pc_err rc)
{
    pthread_mutex_unlock(&c->mu);
    free(o);
    if (go)
        send_go(c);
    return rc;
}

bool
pc__cc_plain_name(const char *s)
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

/* ---- opening ---------------------------------------------------------------------- */

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

/* What pc_compute_open() waits for: PC_OK, an error, or 1 (not yet). */
static int
open_cond(pc_compute *c, void *arg)
{
    char *text = arg;
    size_t ready = 0, fails = 0, full = 0, suspended = 0;
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
                 (n->refusal == PICOS__V1__COMPUTE_REFUSAL__COMPUTE_NO_CPUS ||
                  n->refusal ==
                      PICOS__V1__COMPUTE_REFUSAL__COMPUTE_SUSPENDED)) {
            /* both are "not now": the agent asks such nodes again */
            full++;
            suspended +=
                n->refusal == PICOS__V1__COMPUTE_REFUSAL__COMPUTE_SUSPENDED;
        } else if (n->state != CN_RESERVING && n->state != CN_UPLOADING) {
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
    if (suspended)
        snprintf(text, 256,
                 "no free CPU on the %zu compute node%s found (%zu suspended "
                 "by the operator)",
                 full, full == 1 ? "" : "s", suspended);
    else
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
        c->s.emit = pc__cc_emit;
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
    if ((rc = pc__cc_load_files(c, o, err, sizeof err)) != PC_OK)
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
    if ((rc = pc_spawn(pc__cc_agent, c, &so, &c->agent)) != PC_OK)
        goto fail;
    c->ls->agent = c->agent;
    so.flags = PC_TASK_DAEMON;
    so.name = "compute.lister";
    atomic_fetch_add(&c->ls->refs, 1);
    if (pc_spawn(pc__cc_lister, c->ls, &so, &c->lister) != PC_OK)
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
        pc__cc_ls_unref(c->ls);
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
    pc__cc_notify(c);
    (void)unlock_go(c, go, NULL, PC_OK);
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
    pc__cc_ls_unref(c->ls);
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
        if (!pc__cc_plain_name(j->files_out[nout])) {
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
        if (!pc__cc_plain_name(f->name) || (!f->data && f->len)) {
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
    (void)unlock_go(c, go, NULL, PC_OK);
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

/* A wait for a result: cond's (t->r) into *out. */
static pc_err
wait_result(pc_compute *c, double timeout, int (*cond)(pc_compute *, void *),
            take_arg *t, pc_job_result **out)
{
    pc_err rc;

    if (out)
        *out = NULL;
    if (!c || !out)
        return PC_EINVAL;
    if ((rc = wait_for(c, timeout, cond, t)) == PC_OK)
        *out = t->r;
    return rc;
}

pc_err
pc_compute_wait_any(pc_compute *c, double timeout, pc_job_result **out)
{
    take_arg t = {0};
    pc_err rc = wait_result(c, timeout, any_cond, &t, out);

    if (rc == PC_ETIMEDOUT)
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
    pc_err rc = wait_result(c, timeout, one_cond, &t, out);

    if (rc == PC_ETIMEDOUT)
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
        pc__cc_notify(c);
        go = want_go(c); /* its events */
    } else if (!j->cancel) {
        j->cancel = true;
        go = hand_op(c, &o);
    }
    return unlock_go(c, go, o, rc);
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
        go = hand_op(c, &o);
    }
    free(t);
    return unlock_go(c, go, o, rc);
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
        go = hand_op(c, &o);
    }
    return unlock_go(c, go, o, rc);
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
