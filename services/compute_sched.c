/* services/compute_sched.c — the compute client's scheduling, as functions
 * of plain data (compute_client_int.h): which node a job goes to, how many
 * each node is given, what a node's report of a job means, what a lost
 * node means for its jobs. No tasks, no messages, no locks: the agent
 * (compute_client.c) calls these under its mutex and turns what they
 * decide into wire messages; tests/test_compute_sched.c calls them alone.
 *
 * Placement (docs/computations.md, "Scheduling"): among the ready nodes
 * that are not suspended and whose workers satisfy the job (cpus <=
 * workers, memory <= their limit, the library has its function), the one
 * with the lowest load / workers — load being the CPUs of the jobs sent
 * there and not ended — provided it has room: a node holds its workers'
 * jobs and `prefetch` more per worker, so load + cpus <= workers × (1 +
 * prefetch). Ties go to the node listed first. The queue is served in
 * order, but a job that fits no node with room now does not hold back
 * those behind it (another node may suit them); the walk stops once no
 * node has room at all. A job no ready node satisfies, once every node
 * listed has answered, is refused (PC_JOB_REFUSED): nothing would ever
 * run it. While no node is ready jobs wait — one may come.
 *
 * Exactly once: each run of a job has an attempt number (1, 2, ...),
 * given when it is sent; a node's report counts only when it names the
 * job's current attempt on the node it was sent to and the job has not
 * ended — a late report from a node already declared lost, or a duplicate,
 * changes nothing. A run is retried only here: after a worker crash
 * (WHY_CRASHED), a loss of its node, or a kill the client did not ask for
 * (its node closing: WHY_CANCELLED without a cancel), as long as the job
 * has had at most max_retries + 1 - 1 runs, i.e. attempt <= max_retries;
 * a retry goes to the head of the queue, so a lost node's jobs run again
 * at once elsewhere. The attempt counts runs sent, started or not (a job
 * sent to a node that died may have started there unseen). Once the
 * client cancelled a job, or the computation closes, every end of it is
 * CANCELLED unless it ended otherwise first.
 *
 * Every change is reported through s->emit as a pc_compute_event (job
 * started / finished / retried / abandoned), in the order it happened.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/node.h"

#include "compute_client_int.h"

/* ---- lists ------------------------------------------------------------------ */

void
pc__cs_list_push(cs_list *l, cs_job *j)
{
    j->next = NULL;
    j->prev = l->tail;
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
    l->n++;
}

void
pc__cs_list_front(cs_list *l, cs_job *j)
{
    j->prev = NULL;
    j->next = l->head;
    if (l->head)
        l->head->prev = j;
    else
        l->tail = j;
    l->head = j;
    l->n++;
}

void
pc__cs_list_del(cs_list *l, cs_job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        l->head = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        l->tail = j->prev;
    j->prev = j->next = NULL;
    l->n--;
}

/* ---- events ----------------------------------------------------------------- */

static void
emit(cs_sched *s, pc_compute_event_kind kind, const cs_job *j, pc_job_why why,
     const char *text)
{
    pc_compute_event e;

    if (!s->emit)
        return;
    memset(&e, 0, sizeof e);
    e.kind = kind;
    e.worker = j->worker;
    e.job = j->id;
    e.attempt = (int)j->attempt;
    e.why = why;
    if (j->node >= 0 && (size_t)j->node < s->nnodes)
        snprintf(e.node, sizeof e.node, "%.63s", s->nodes[j->node].name);
    snprintf(e.text, sizeof e.text, "%.*s", (int)sizeof e.text - 1,
             text ? text : ""); /* cut to the event's room */
    s->emit(s->emit_ctx, &e);
}

/* ---- the scheduler ---------------------------------------------------------- */

void
pc__cs_init(cs_sched *s, int prefetch, int max_retries)
{
    memset(s, 0, sizeof *s);
    s->prefetch = prefetch < 0 ? 0 : prefetch;
    s->max_retries = max_retries < 0 ? 0 : max_retries;
    s->next_id = 1;
}

static void
node_fini(cs_node *n)
{
    for (size_t i = 0; i < n->nfns; i++)
        free(n->fns[i]);
    free(n->fns);
    n->fns = NULL;
    n->nfns = 0;
}

void
pc__cs_fini(cs_sched *s)
{
    for (size_t b = 0; b < s->table_cap; b++) {
        while (s->table[b]) {
            cs_job *j = s->table[b];
            s->table[b] = j->hnext;
            pc__cs_job_free(s, j);
        }
    }
    free(s->table);
    for (size_t i = 0; i < s->nnodes; i++)
        node_fini(&s->nodes[i]);
    free(s->nodes);
    memset(s, 0, sizeof *s);
}

int
pc__cs_node_add(cs_sched *s, const char *name)
{
    cs_node *n;

    if (s->nnodes == s->nodes_cap) {
        size_t cap = s->nodes_cap ? s->nodes_cap * 2 : 8;
        cs_node *nn = realloc(s->nodes, cap * sizeof *nn);
        if (!nn)
            return -1;
        s->nodes = nn;
        s->nodes_cap = cap;
    }
    n = &s->nodes[s->nnodes];
    memset(n, 0, sizeof *n);
    snprintf(n->name, sizeof n->name, "%s", name);
    n->state = CN_RESERVING;
    return (int)s->nnodes++;
}

int
pc__cs_node_find(const cs_sched *s, const char *name)
{
    for (size_t i = 0; i < s->nnodes; i++)
        if (!strcmp(s->nodes[i].name, name))
            return (int)i;
    return -1;
}

pc_err
pc__cs_node_ready(cs_sched *s, int i, int workers, size_t memory,
                  char *const *fns, size_t nfns)
{
    cs_node *n = &s->nodes[i];
    char **f = nfns ? calloc(nfns, sizeof *f) : NULL;

    if (nfns && !f)
        return PC_ENOMEM;
    for (size_t k = 0; k < nfns; k++) {
        if (!(f[k] = strdup(fns[k]))) {
            while (k--)
                free(f[k]);
            free(f);
            return PC_ENOMEM;
        }
    }
    node_fini(n);
    n->fns = f;
    n->nfns = nfns;
    n->workers = workers;
    n->memory = memory;
    n->state = CN_READY;
    return PC_OK;
}

bool
pc__cs_node_has(const cs_node *n, const char *fn)
{
    if (!n->nfns)
        return true; /* no list: the node decides */
    for (size_t k = 0; k < n->nfns; k++)
        if (!strcmp(n->fns[k], fn))
            return true;
    return false;
}

bool
pc__cs_all_answered(const cs_sched *s)
{
    if (!s->listed)
        return false;
    for (size_t i = 0; i < s->nnodes; i++)
        if (s->nodes[i].state == CN_RESERVING ||
            s->nodes[i].state == CN_UPLOADING)
            return false;
    return true;
}

/* ---- jobs ------------------------------------------------------------------- */

static bool
table_grow(cs_sched *s)
{
    size_t cap = s->table_cap ? s->table_cap * 2 : 256;
    cs_job **t = calloc(cap, sizeof *t);

    if (!t)
        return false;
    for (size_t b = 0; b < s->table_cap; b++) {
        for (cs_job *j = s->table[b], *nx; j; j = nx) {
            nx = j->hnext;
            j->hnext = t[j->id & (cap - 1)];
            t[j->id & (cap - 1)] = j;
        }
    }
    free(s->table);
    s->table = t;
    s->table_cap = cap;
    return true;
}

cs_job *
pc__cs_job_add(cs_sched *s, const char *fn, int cpus, size_t memory)
{
    cs_job *j;

    if (s->njobs >= s->table_cap && !table_grow(s))
        return NULL;
    if (!(j = calloc(1, sizeof *j)) || !(j->fn = strdup(fn))) {
        free(j);
        return NULL;
    }
    j->id = s->next_id++;
    j->state = CJ_QUEUED;
    j->node = -1;
    j->worker = -1;
    j->cpus = cpus > 0 ? cpus : 1;
    j->memory = memory;
    j->tomsgs_tail = &j->tomsgs;
    j->hnext = s->table[j->id & (s->table_cap - 1)];
    s->table[j->id & (s->table_cap - 1)] = j;
    s->njobs++;
    s->submitted++;
    pc__cs_list_push(&s->queue, j);
    return j;
}

cs_job *
pc__cs_job_find(const cs_sched *s, uint64_t id)
{
    if (!s->table_cap)
        return NULL;
    for (cs_job *j = s->table[id & (s->table_cap - 1)]; j; j = j->hnext)
        if (j->id == id)
            return j;
    return NULL;
}

static void
table_del(cs_sched *s, cs_job *j)
{
    cs_job **pp = &s->table[j->id & (s->table_cap - 1)];

    while (*pp && *pp != j)
        pp = &(*pp)->hnext;
    if (*pp) {
        *pp = j->hnext;
        s->njobs--;
    }
}

void
pc__cs_job_drop(cs_sched *s, cs_job *j)
{
    pc__cs_list_del(&s->queue, j);
    table_del(s, j);
    s->submitted--;
    if (j->id + 1 == s->next_id)
        s->next_id--;
    pc__cs_job_free(s, j);
}

void
pc__cs_job_free(cs_sched *s, cs_job *j)
{
    (void)s;
    if (!j)
        return;
    while (j->tomsgs) {
        cs_tomsg *t = j->tomsgs;
        j->tomsgs = t->next;
        free(t);
    }
    pc_job_result_free(&j->res);
    free(j->fn);
    free(j->wire);
    free(j);
}

/* ---- placement -------------------------------------------------------------- */

static bool
satisfies(const cs_node *n, const cs_job *j)
{
    return n->state == CN_READY && j->cpus <= n->workers &&
           (!j->memory || n->memory >= j->memory) && pc__cs_node_has(n, j->fn);
}

static long
room(const cs_sched *s, const cs_node *n)
{
    return (long)n->workers * (1 + s->prefetch) - n->load;
}

int
pc__cs_place(const cs_sched *s, const cs_job *j, bool *never)
{
    bool can = false, ready = false;
    int best = -1;

    for (size_t i = 0; i < s->nnodes; i++) {
        const cs_node *n = &s->nodes[i];
        if (n->state != CN_READY || n->workers <= 0)
            continue;
        ready = true;
        if (!satisfies(n, j))
            continue;
        can = true;
        if (n->suspended || room(s, n) < j->cpus)
            continue;
        /* load / workers, compared without division */
        if (best < 0 || (long)n->load * s->nodes[best].workers <
                            (long)s->nodes[best].load * n->workers)
            best = (int)i;
    }
    if (never)
        *never = best < 0 && !can && ready && pc__cs_all_answered(s);
    return best;
}

static bool
any_room(const cs_sched *s)
{
    for (size_t i = 0; i < s->nnodes; i++) {
        const cs_node *n = &s->nodes[i];
        if (n->state == CN_READY && !n->suspended && room(s, n) > 0)
            return true;
    }
    return false;
}

/* Why no ready node will run j. */
static void
refusal_text(const cs_sched *s, const cs_job *j, char *buf, size_t size)
{
    int most = 0;
    size_t mem = 0;
    bool fn = false;

    for (size_t i = 0; i < s->nnodes; i++) {
        const cs_node *n = &s->nodes[i];
        if (n->state != CN_READY)
            continue;
        most = n->workers > most ? n->workers : most;
        mem = n->memory > mem ? n->memory : mem;
        fn |= pc__cs_node_has(n, j->fn);
    }
    if (!fn)
        snprintf(buf, size, "no job function \"%s\" in the computation", j->fn);
    else if (j->cpus > most)
        snprintf(buf, size,
                 "no node can run it: it needs %d CPUs, a node has at most %d",
                 j->cpus, most);
    else if (j->memory > mem)
        snprintf(buf, size,
                 "no node can run it: it needs %zu bytes, workers have at "
                 "most %zu",
                 j->memory, mem);
    else
        snprintf(buf, size, "no node can run it");
}

size_t
pc__cs_dispatch(cs_sched *s, cs_job **out, size_t cap)
{
    size_t n = 0;

    for (cs_job *j = s->queue.head, *nx; j && n < cap; j = nx) {
        bool never = false;
        int i;
        nx = j->next;
        if ((i = pc__cs_place(s, j, &never)) >= 0) {
            cs_node *nd = &s->nodes[i];
            pc__cs_list_del(&s->queue, j);
            pc__cs_list_push(&nd->jobs, j);
            nd->load += j->cpus;
            j->state = CJ_SENT;
            j->node = i;
            j->worker = -1;
            j->attempt++;
            s->running++;
            out[n++] = j;
        } else if (never) {
            char text[160];
            refusal_text(s, j, text, sizeof text);
            pc__cs_end(s, j, PC_JOB_REFUSED, text);
        } else if (!any_room(s)) {
            break;
        }
    }
    return n;
}

/* ---- ends and retries ------------------------------------------------------- */

pc_err
pc__cp_why_rc(pc_job_why why)
{
    switch (why) {
    case PC_JOB_OK:
        return PC_OK;
    case PC_JOB_LOST:
        return PC_EUNREACH;
    case PC_JOB_TIMEDOUT:
        return PC_ETIMEDOUT;
    case PC_JOB_CANCELLED:
        return PC_ECLOSED;
    default:
        return PC_EFAILED;
    }
}

/* Take j out of the list it is in. */
static void
unlist(cs_sched *s, cs_job *j)
{
    if (j->state == CJ_QUEUED) {
        pc__cs_list_del(&s->queue, j);
    } else if (j->state == CJ_SENT || j->state == CJ_RUNNING) {
        cs_node *n = &s->nodes[j->node];
        pc__cs_list_del(&n->jobs, j);
        n->load -= j->cpus;
        s->running--;
    }
}

void
pc__cs_end(cs_sched *s, cs_job *j, pc_job_why why, const char *error)
{
    pc_job_result *r;

    if (j->state == CJ_DONE)
        return;
    unlist(s, j);
    j->state = CJ_DONE;
    /* a result that can't be allocated is still an end: the job's record
     * carries it (pc__cs_take() gives an empty one then) */
    if ((r = calloc(1, sizeof *r))) {
        r->id = j->id;
        r->why = why;
        r->rc = pc__cp_why_rc(why);
        snprintf(r->error, sizeof r->error, "%s",
                 why == PC_JOB_OK || !error ? "" : error);
        if (j->node >= 0 && (size_t)j->node < s->nnodes)
            snprintf(r->node, sizeof r->node, "%.63s", s->nodes[j->node].name);
        r->worker = j->worker;
        r->attempts = (int)j->attempt;
        r->started = j->started;
        r->ended = j->attempt ? (double)pc_wall_us() / 1e6 : 0;
    }
    pc_job_result_free(&j->res);
    j->res = r;
    pc__cs_list_push(&s->results, j);
    s->ended++;
    if (why != PC_JOB_OK)
        s->failed++;
    if (why == PC_JOB_CRASHED || why == PC_JOB_LOST || why == PC_JOB_REFUSED)
        emit(s, PC_CE_JOB_ABANDONED, j, why, error);
    emit(s, PC_CE_JOB_FINISHED, j, why, error);
}

/* j's run ended by `why` outside the job's own doing: again, or the end. */
static cs_verdict
retry_or_end(cs_sched *s, cs_job *j, pc_job_why why, pc_job_why end_why,
             const char *text)
{
    if (s->closing || j->cancel) {
        pc__cs_end(s, j, PC_JOB_CANCELLED, j->cancel ? "cancelled" : text);
        return CS_END;
    }
    if (j->attempt <= (uint32_t)s->max_retries) {
        unlist(s, j);
        j->state = CJ_QUEUED;
        pc__cs_list_front(&s->queue, j);
        s->retried++;
        emit(s, PC_CE_JOB_RETRIED, j, why, text);
        return CS_RETRY;
    }
    pc__cs_end(s, j, end_why, text);
    return CS_END;
}

cs_verdict
pc__cs_started(cs_sched *s, cs_job *j, int node, uint32_t attempt, int worker,
               double started)
{
    if (!j || (j->state != CJ_SENT && j->state != CJ_RUNNING) ||
        j->node != node || j->attempt != attempt)
        return CS_DROP;
    j->state = CJ_RUNNING;
    j->worker = worker;
    j->started = started;
    emit(s, PC_CE_JOB_STARTED, j, PC_JOB_OK, NULL);
    return CS_END;
}

cs_verdict
pc__cs_done(cs_sched *s, cs_job *j, int node, uint32_t attempt, pc_job_why why,
            const char *error)
{
    if (!j || (j->state != CJ_SENT && j->state != CJ_RUNNING) ||
        j->node != node || j->attempt != attempt)
        return CS_DROP;
    if (why == PC_JOB_CRASHED)
        return retry_or_end(s, j, why, PC_JOB_CRASHED, error);
    if (why == PC_JOB_LOST)
        return retry_or_end(s, j, why, PC_JOB_LOST, error);
    if (why == PC_JOB_CANCELLED && !j->cancel)
        return retry_or_end(s, j, why, PC_JOB_CANCELLED, error);
    pc__cs_end(s, j, why, error);
    return CS_END;
}

void
pc__cs_node_gone(cs_sched *s, int i, int state, const char *text)
{
    cs_node *n = &s->nodes[i];
    char why[256];

    n->state = state;
    n->up = 0;
    snprintf(why, sizeof why, "node %.63s %.180s", n->name,
             text ? text : "lost");
    while (n->jobs.head)
        (void)retry_or_end(s, n->jobs.head, PC_JOB_LOST, PC_JOB_LOST, why);
}

cs_job *
pc__cs_take(cs_sched *s, uint64_t id)
{
    cs_job *j = id ? pc__cs_job_find(s, id) : s->results.head;

    if (!j || j->state != CJ_DONE || j->reported)
        return NULL;
    pc__cs_list_del(&s->results, j);
    table_del(s, j);
    j->reported = true;
    return j;
}

uint64_t
pc__cs_pending(const cs_sched *s)
{
    return s->submitted - s->ended;
}
