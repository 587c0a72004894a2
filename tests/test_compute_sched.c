/* tests/test_compute_sched.c — the compute client's scheduling rules
 * (services/compute_sched.c) and its event encoding
 * (services/compute_events.c), without processes or tasks.
 *
 * A cs_sched is driven the way the agent drives it: nodes added and made
 * ready by hand, jobs added, dispatched, then reports (started, done) and
 * node losses fed in as a node would send them, late and duplicated ones
 * included. The status events the scheduler emits are recorded and
 * checked in order. What is checked: least-loaded placement and the
 * prefetch bound, cpus / memory / function constraints and refusals,
 * exactly-once (only the current attempt counts), the retry bound on
 * crashes and losses, cancels and closes, results in end order.
 */
#include "compute_client_int.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------------ */

#define EV_MAX 256
static pc_compute_event evs[EV_MAX];
static int nev;

static void
record(void *ctx, const pc_compute_event *e)
{
    (void)ctx;
    if (nev < EV_MAX)
        evs[nev++] = *e;
}

static int
count_ev(pc_compute_event_kind k, uint64_t job)
{
    int n = 0;
    for (int i = 0; i < nev; i++)
        n += evs[i].kind == k && (!job || evs[i].job == job);
    return n;
}

static void
sched(cs_sched *s, int prefetch, int max_retries)
{
    pc__cs_init(s, prefetch, max_retries);
    s->emit = record;
    nev = 0;
    s->listed = true;
}

/* A ready node with `workers` CPUs of `mem` bytes, knowing fns (NULL: any). */
static int
ready_node(cs_sched *s, const char *name, int workers, size_t mem,
           char *const *fns, size_t nfns)
{
    int i = pc__cs_node_add(s, name);
    CU_ASSERT_FATAL(i >= 0);
    CU_ASSERT_EQUAL_FATAL(pc__cs_node_ready(s, i, workers, mem, fns, nfns),
                          PC_OK);
    return i;
}

static cs_job *
job(cs_sched *s, const char *fn, int cpus, size_t mem)
{
    cs_job *j = pc__cs_job_add(s, fn, cpus, mem);
    CU_ASSERT_FATAL(j != NULL);
    return j;
}

/* Dispatch; how many went to node i in *on_i (may be NULL). */
static size_t
dispatch(cs_sched *s, int i, size_t *on_i)
{
    cs_job *out[512];
    size_t n = pc__cs_dispatch(s, out, 512), k = 0;

    for (size_t q = 0; q < n; q++) {
        CU_ASSERT_EQUAL(out[q]->state, CJ_SENT);
        k += out[q]->node == i;
    }
    if (on_i)
        *on_i = k;
    return n;
}

/* ---- placement ------------------------------------------------------------------ */

PT_TEST(place_least_loaded_prefetch)
static void
place_least_loaded_prefetch(void)
{
    cs_sched s;
    size_t on_a;
    cs_job *j1, *j2, *j3;

    sched(&s, 2, 3);
    int a = ready_node(&s, "a", 2, 1 << 30, NULL, 0);
    int b = ready_node(&s, "b", 4, 1 << 30, NULL, 0);
    j1 = job(&s, "f", 0, 0);
    j2 = job(&s, "f", 0, 0);
    j3 = job(&s, "f", 0, 0);
    CU_ASSERT_EQUAL(j1->cpus, 1);
    CU_ASSERT_EQUAL(dispatch(&s, a, &on_a), 3);
    /* a tie goes to the first; then the lower load / workers */
    CU_ASSERT_EQUAL(j1->node, a);
    CU_ASSERT_EQUAL(j2->node, b);
    CU_ASSERT_EQUAL(j3->node, b); /* a 1/2 > b 1/4 */
    CU_ASSERT_EQUAL(j1->attempt, 1);
    for (int i = 0; i < 40; i++)
        job(&s, "f", 1, 0);
    dispatch(&s, a, NULL);
    /* each node holds workers × (1 + prefetch): 6 and 12 */
    CU_ASSERT_EQUAL(s.nodes[a].load, 6);
    CU_ASSERT_EQUAL(s.nodes[b].load, 12);
    CU_ASSERT_EQUAL(s.queue.n, 43 - 18);
    CU_ASSERT_EQUAL(s.running, 18);
    CU_ASSERT_EQUAL(dispatch(&s, a, NULL), 0); /* full: nothing moves */
    /* one ends on b: one more goes there, none to a */
    cs_job *done = s.nodes[b].jobs.head;
    CU_ASSERT_EQUAL(pc__cs_done(&s, done, b, 1, PC_JOB_OK, NULL), CS_END);
    CU_ASSERT_EQUAL(dispatch(&s, a, &on_a), 1);
    CU_ASSERT_EQUAL(on_a, 0);
    pc__cs_fini(&s);

    /* prefetch 0: only what the workers run */
    sched(&s, 0, 3);
    a = ready_node(&s, "a", 3, 1 << 30, NULL, 0);
    for (int i = 0; i < 10; i++)
        job(&s, "f", 1, 0);
    CU_ASSERT_EQUAL(dispatch(&s, a, NULL), 3);
    pc__cs_fini(&s);
}

PT_TEST(place_constraints_and_refusals)
static void
place_constraints_and_refusals(void)
{
    char *fa[] = {"f", "g"}, *fb[] = {"f"};
    cs_sched s;
    bool never;

    sched(&s, 1, 3);
    int a = ready_node(&s, "a", 2, 100, fa, 2);
    int b = ready_node(&s, "b", 4, 1000, fb, 1);
    /* cpus 3: only b; memory 500: only b; g: only a */
    cs_job *big = job(&s, "f", 3, 0), *mem = job(&s, "f", 1, 500),
           *g = job(&s, "g", 1, 0);
    CU_ASSERT_EQUAL(pc__cs_place(&s, big, &never), b);
    CU_ASSERT_EQUAL(pc__cs_place(&s, mem, &never), b);
    CU_ASSERT_EQUAL(pc__cs_place(&s, g, &never), a);
    dispatch(&s, a, NULL);
    CU_ASSERT_EQUAL(big->node, b);
    CU_ASSERT_EQUAL(mem->node, b);
    CU_ASSERT_EQUAL(g->node, a);
    CU_ASSERT_EQUAL(s.nodes[b].load, 4);

    /* nobody can: refused, but only once every node has answered */
    int c = pc__cs_node_add(&s, "c"); /* still reserving */
    cs_job *huge = job(&s, "f", 5, 0), *nofn = job(&s, "h", 1, 0);
    CU_ASSERT_EQUAL(pc__cs_place(&s, huge, &never), -1);
    CU_ASSERT_FALSE(never);
    dispatch(&s, a, NULL);
    CU_ASSERT_EQUAL(huge->state, CJ_QUEUED);
    s.nodes[c].state = CN_REFUSED;
    dispatch(&s, a, NULL);
    CU_ASSERT_EQUAL(huge->state, CJ_DONE);
    CU_ASSERT_EQUAL(huge->res->why, PC_JOB_REFUSED);
    CU_ASSERT_EQUAL(huge->res->rc, PC_EFAILED);
    CU_ASSERT_PTR_NOT_NULL(strstr(huge->res->error, "needs 5 CPUs"));
    CU_ASSERT_EQUAL(nofn->res->why, PC_JOB_REFUSED);
    CU_ASSERT_PTR_NOT_NULL(strstr(nofn->res->error, "no job function \"h\""));
    CU_ASSERT_EQUAL(count_ev(PC_CE_JOB_ABANDONED, huge->id), 1);
    CU_ASSERT_EQUAL(count_ev(PC_CE_JOB_FINISHED, huge->id), 1);

    /* a suspended node takes nothing, but its jobs are not refused */
    s.nodes[a].suspended = true;
    cs_job *g2 = job(&s, "g", 1, 0);
    CU_ASSERT_EQUAL(pc__cs_place(&s, g2, &never), -1);
    CU_ASSERT_FALSE(never);
    dispatch(&s, a, NULL);
    CU_ASSERT_EQUAL(g2->state, CJ_QUEUED);
    s.nodes[a].suspended = false;
    dispatch(&s, a, NULL);
    CU_ASSERT_EQUAL(g2->node, a);

    /* no ready node at all: jobs wait (one may come) */
    pc__cs_fini(&s);
    sched(&s, 2, 3);
    cs_job *w = job(&s, "f", 1, 0);
    CU_ASSERT_EQUAL(dispatch(&s, 0, NULL), 0);
    CU_ASSERT_EQUAL(w->state, CJ_QUEUED);
    pc__cs_fini(&s);
}

PT_TEST(place_no_head_of_line_blocking)
static void
place_no_head_of_line_blocking(void)
{
    cs_sched s;

    sched(&s, 0, 3);
    int a = ready_node(&s, "a", 1, 0, NULL, 0);
    int b = ready_node(&s, "b", 2, 0, NULL, 0);
    cs_job *x = job(&s, "f", 1, 0);
    dispatch(&s, a, NULL);
    CU_ASSERT_EQUAL(x->node, a);
    cs_job *y = job(&s, "f", 1, 0);
    dispatch(&s, a, NULL);
    CU_ASSERT_EQUAL(y->node, b); /* b: 1 of 2 used */
    /* a 2-CPU job fits nowhere now; the 1-CPU job behind it goes to b */
    cs_job *two = job(&s, "f", 2, 0), *one = job(&s, "f", 1, 0);
    dispatch(&s, a, NULL);
    CU_ASSERT_EQUAL(two->state, CJ_QUEUED);
    CU_ASSERT_EQUAL(one->node, b);
    CU_ASSERT_EQUAL(s.queue.head, two);
    pc__cs_fini(&s);
}

/* ---- exactly once ---------------------------------------------------------------- */

PT_TEST(done_exactly_once)
static void
done_exactly_once(void)
{
    cs_sched s;

    sched(&s, 2, 3);
    int a = ready_node(&s, "a", 2, 0, NULL, 0);
    int b = ready_node(&s, "b", 2, 0, NULL, 0);
    cs_job *j = job(&s, "f", 1, 0);
    dispatch(&s, a, NULL);
    CU_ASSERT_EQUAL(j->node, a);
    /* wrong attempt, wrong node: nothing */
    CU_ASSERT_EQUAL(pc__cs_started(&s, j, a, 2, 0, 1.0), CS_DROP);
    CU_ASSERT_EQUAL(pc__cs_done(&s, j, a, 2, PC_JOB_OK, NULL), CS_DROP);
    CU_ASSERT_EQUAL(pc__cs_done(&s, j, b, 1, PC_JOB_OK, NULL), CS_DROP);
    CU_ASSERT_EQUAL(j->state, CJ_SENT);
    CU_ASSERT_EQUAL(pc__cs_started(&s, j, a, 1, 1, 5.0), CS_END);
    CU_ASSERT_EQUAL(j->state, CJ_RUNNING);
    CU_ASSERT_EQUAL(j->worker, 1);
    CU_ASSERT_EQUAL(pc__cs_done(&s, j, a, 1, PC_JOB_OK, "ignored"), CS_END);
    CU_ASSERT_EQUAL(j->state, CJ_DONE);
    CU_ASSERT_EQUAL(j->res->rc, PC_OK);
    CU_ASSERT_STRING_EQUAL(j->res->error, "");
    CU_ASSERT_STRING_EQUAL(j->res->node, "a");
    CU_ASSERT_EQUAL(j->res->worker, 1);
    CU_ASSERT_EQUAL(j->res->attempts, 1);
    CU_ASSERT_EQUAL(s.nodes[a].load, 0);
    /* a duplicate, and a late one: nothing */
    CU_ASSERT_EQUAL(pc__cs_done(&s, j, a, 1, PC_JOB_OK, NULL), CS_DROP);
    CU_ASSERT_EQUAL(pc__cs_done(&s, j, a, 1, PC_JOB_FAILED, "x"), CS_DROP);
    CU_ASSERT_EQUAL(s.results.n, 1);
    CU_ASSERT_EQUAL(count_ev(PC_CE_JOB_STARTED, j->id), 1);
    CU_ASSERT_EQUAL(count_ev(PC_CE_JOB_FINISHED, j->id), 1);
    /* taken once */
    CU_ASSERT_EQUAL(pc__cs_pending(&s), 0);
    cs_job *t = pc__cs_take(&s, j->id);
    CU_ASSERT_PTR_EQUAL(t, j);
    CU_ASSERT_PTR_NULL(pc__cs_take(&s, j->id));
    CU_ASSERT_PTR_NULL(pc__cs_job_find(&s, j->id));
    pc__cs_job_free(&s, t);
    pc__cs_fini(&s);
}

PT_TEST(results_in_end_order)
static void
results_in_end_order(void)
{
    cs_sched s;
    cs_job *j[5];

    sched(&s, 2, 3);
    int a = ready_node(&s, "a", 8, 0, NULL, 0);
    for (int i = 0; i < 5; i++)
        j[i] = job(&s, "f", 1, 0);
    CU_ASSERT_EQUAL(s.submitted, 5);
    dispatch(&s, a, NULL);
    int order[5] = {3, 1, 4, 0, 2};
    for (int i = 0; i < 5; i++)
        CU_ASSERT_EQUAL(pc__cs_done(&s, j[order[i]], a, 1,
                                    i == 2 ? PC_JOB_FAILED : PC_JOB_OK, "bad"),
                        CS_END);
    CU_ASSERT_EQUAL(s.failed, 1);
    CU_ASSERT_EQUAL(j[4]->res->rc, PC_EFAILED);
    CU_ASSERT_STRING_EQUAL(j[4]->res->error, "bad");
    /* job 0 by id, then the others in end order */
    cs_job *t = pc__cs_take(&s, j[0]->id);
    CU_ASSERT_PTR_EQUAL(t, j[0]);
    pc__cs_job_free(&s, t);
    int want[4] = {3, 1, 4, 2};
    for (int i = 0; i < 4; i++) {
        t = pc__cs_take(&s, 0);
        CU_ASSERT_PTR_EQUAL(t, j[want[i]]);
        pc__cs_job_free(&s, t);
    }
    CU_ASSERT_PTR_NULL(pc__cs_take(&s, 0));
    pc__cs_fini(&s);
}

/* ---- retries ---------------------------------------------------------------------- */

PT_TEST(crash_retried_then_crashed)
static void
crash_retried_then_crashed(void)
{
    cs_sched s;

    sched(&s, 2, 3);
    int a = ready_node(&s, "a", 2, 0, NULL, 0);
    cs_job *j = job(&s, "crash", 1, 0), *k = job(&s, "crash_once", 1, 0);
    for (uint32_t at = 1; at <= 3; at++) {
        dispatch(&s, a, NULL);
        CU_ASSERT_EQUAL(j->attempt, at);
        CU_ASSERT_EQUAL(pc__cs_done(&s, j, a, at, PC_JOB_CRASHED, "SIGSEGV"),
                        CS_RETRY);
        CU_ASSERT_EQUAL(j->state, CJ_QUEUED);
        CU_ASSERT_PTR_EQUAL(s.queue.head, j); /* retries go first */
        /* the old attempt's report again: nothing */
        CU_ASSERT_EQUAL(pc__cs_done(&s, j, a, at, PC_JOB_CRASHED, "x"),
                        CS_DROP);
    }
    dispatch(&s, a, NULL);
    CU_ASSERT_EQUAL(j->attempt, 4);
    CU_ASSERT_EQUAL(pc__cs_done(&s, j, a, 4, PC_JOB_CRASHED, "SIGSEGV"),
                    CS_END);
    CU_ASSERT_EQUAL(j->res->why, PC_JOB_CRASHED);
    CU_ASSERT_EQUAL(j->res->rc, PC_EFAILED);
    CU_ASSERT_EQUAL(j->res->attempts, 4);
    CU_ASSERT_STRING_EQUAL(j->res->error, "SIGSEGV");
    CU_ASSERT_EQUAL(count_ev(PC_CE_JOB_RETRIED, j->id), 3);
    CU_ASSERT_EQUAL(count_ev(PC_CE_JOB_ABANDONED, j->id), 1);
    CU_ASSERT_EQUAL(count_ev(PC_CE_JOB_FINISHED, j->id), 1);
    CU_ASSERT_EQUAL(s.retried, 3);
    /* crash_once: crashed at 1, ok at 2 */
    CU_ASSERT_EQUAL(k->attempt, 1);
    CU_ASSERT_EQUAL(pc__cs_done(&s, k, a, 1, PC_JOB_CRASHED, "SIGSEGV"),
                    CS_RETRY);
    dispatch(&s, a, NULL);
    CU_ASSERT_EQUAL(pc__cs_done(&s, k, a, 2, PC_JOB_OK, NULL), CS_END);
    CU_ASSERT_EQUAL(k->res->attempts, 2);
    CU_ASSERT_EQUAL(k->res->rc, PC_OK);
    /* what the job did itself is never retried */
    cs_job *f = job(&s, "fail", 1, 0), *t = job(&s, "sleep", 1, 0),
           *l = job(&s, "hog", 1, 0);
    dispatch(&s, a, NULL);
    CU_ASSERT_EQUAL(pc__cs_done(&s, f, a, 1, PC_JOB_FAILED, "no"), CS_END);
    CU_ASSERT_EQUAL(pc__cs_done(&s, t, a, 1, PC_JOB_TIMEDOUT, "t"), CS_END);
    CU_ASSERT_EQUAL(pc__cs_done(&s, l, a, 1, PC_JOB_LIMIT, "memory"), CS_END);
    CU_ASSERT_EQUAL(t->res->rc, PC_ETIMEDOUT);
    CU_ASSERT_EQUAL(l->res->why, PC_JOB_LIMIT);
    pc__cs_fini(&s);

    /* max_retries 0: the first crash is the end */
    sched(&s, 2, 0);
    a = ready_node(&s, "a", 2, 0, NULL, 0);
    j = job(&s, "crash", 1, 0);
    dispatch(&s, a, NULL);
    CU_ASSERT_EQUAL(pc__cs_done(&s, j, a, 1, PC_JOB_CRASHED, "x"), CS_END);
    CU_ASSERT_EQUAL(j->res->attempts, 1);
    pc__cs_fini(&s);
}

PT_TEST(node_lost_retried_elsewhere)
static void
node_lost_retried_elsewhere(void)
{
    cs_sched s;
    cs_job *j[10];
    size_t on_b;

    sched(&s, 2, 3);
    int a = ready_node(&s, "a", 1, 0, NULL, 0);
    int b = ready_node(&s, "b", 1, 0, NULL, 0);
    for (int i = 0; i < 10; i++)
        j[i] = job(&s, "sleep", 1, 0);
    CU_ASSERT_EQUAL(dispatch(&s, a, NULL), 6);
    CU_ASSERT_EQUAL(pc__cs_started(&s, j[0], a, 1, 0, 1.0), CS_END);
    CU_ASSERT_EQUAL(pc__cs_done(&s, j[0], a, 1, PC_JOB_OK, NULL), CS_END);
    /* a is lost with 2 of its jobs: they go first, to b */
    nev = 0;
    pc__cs_node_gone(&s, a, CN_LOST, "lost (its node is down)");
    CU_ASSERT_EQUAL(s.nodes[a].state, CN_LOST);
    CU_ASSERT_EQUAL(s.nodes[a].load, 0);
    CU_ASSERT_EQUAL(count_ev(PC_CE_JOB_RETRIED, 0), 2);
    CU_ASSERT_EQUAL(evs[0].why, PC_JOB_LOST);
    CU_ASSERT_STRING_EQUAL(evs[0].node, "a");
    CU_ASSERT_EQUAL(s.queue.n, 6);
    /* b finishes its three; a's two go out before the rest */
    for (cs_job *q; (q = s.nodes[b].jobs.head);)
        CU_ASSERT_EQUAL(pc__cs_done(&s, q, b, q->attempt, PC_JOB_OK, NULL),
                        CS_END);
    CU_ASSERT_EQUAL(dispatch(&s, a, NULL), 3);
    dispatch(&s, b, &on_b);
    int retried = 0;
    for (cs_job *q = s.nodes[b].jobs.head; q; q = q->next) {
        CU_ASSERT_EQUAL(q->node, b);
        retried += q->attempt == 2;
    }
    CU_ASSERT_EQUAL(retried, 2);
    /* a's late reports of attempt 1 change nothing */
    for (int i = 1; i < 10; i++)
        if (j[i]->attempt == 2)
            CU_ASSERT_EQUAL(pc__cs_done(&s, j[i], a, 1, PC_JOB_OK, NULL),
                            CS_DROP);
    /* every job ends exactly once */
    while (pc__cs_pending(&s)) {
        dispatch(&s, b, NULL);
        cs_job *q = s.nodes[b].jobs.head;
        CU_ASSERT_FATAL(q != NULL);
        CU_ASSERT_EQUAL(pc__cs_done(&s, q, b, q->attempt, PC_JOB_OK, NULL),
                        CS_END);
    }
    CU_ASSERT_EQUAL(s.results.n, 10);
    CU_ASSERT_EQUAL(s.ended, 10);
    for (int i = 1; i < 10; i++) /* j[0]'s came before nev = 0 */
        CU_ASSERT_EQUAL(count_ev(PC_CE_JOB_FINISHED, j[i]->id), 1);
    pc__cs_fini(&s);

    /* no retry left: PC_JOB_LOST */
    sched(&s, 2, 0);
    a = ready_node(&s, "a", 1, 0, NULL, 0);
    cs_job *x = job(&s, "f", 1, 0);
    dispatch(&s, a, NULL);
    pc__cs_node_gone(&s, a, CN_LOST, "lost");
    CU_ASSERT_EQUAL(x->res->why, PC_JOB_LOST);
    CU_ASSERT_EQUAL(x->res->rc, PC_EUNREACH);
    CU_ASSERT_PTR_NOT_NULL(strstr(x->res->error, "node a lost"));
    CU_ASSERT_EQUAL(count_ev(PC_CE_JOB_ABANDONED, x->id), 1);
    pc__cs_fini(&s);
}

PT_TEST(cancel_and_close)
static void
cancel_and_close(void)
{
    cs_sched s;

    sched(&s, 2, 3);
    int a = ready_node(&s, "a", 4, 0, NULL, 0);
    cs_job *q = job(&s, "f", 1, 0), *r1 = job(&s, "f", 1, 0),
           *r2 = job(&s, "f", 1, 0), *r3 = job(&s, "f", 1, 0),
           *r4 = job(&s, "f", 1, 0);
    pc__cs_end(&s, q, PC_JOB_CANCELLED, "cancelled");
    CU_ASSERT_EQUAL(q->res->rc, PC_ECLOSED);
    CU_ASSERT_EQUAL(q->res->attempts, 0);
    CU_ASSERT_STRING_EQUAL(q->res->node, "");
    dispatch(&s, a, NULL);
    CU_ASSERT_EQUAL(q->state, CJ_DONE);
    /* a cancelled job that crashes is cancelled, not retried */
    r1->cancel = true;
    CU_ASSERT_EQUAL(pc__cs_done(&s, r1, a, 1, PC_JOB_CRASHED, "x"), CS_END);
    CU_ASSERT_EQUAL(r1->res->why, PC_JOB_CANCELLED);
    /* one that ended first keeps its end */
    r2->cancel = true;
    CU_ASSERT_EQUAL(pc__cs_done(&s, r2, a, 1, PC_JOB_OK, NULL), CS_END);
    CU_ASSERT_EQUAL(r2->res->why, PC_JOB_OK);
    /* a kill the client did not ask for (node closing): again */
    CU_ASSERT_EQUAL(pc__cs_done(&s, r3, a, 1, PC_JOB_CANCELLED, "closing"),
                    CS_RETRY);
    /* closing: every end is CANCELLED */
    s.closing = true;
    CU_ASSERT_EQUAL(pc__cs_done(&s, r4, a, 1, PC_JOB_CRASHED, "x"), CS_END);
    CU_ASSERT_EQUAL(r4->res->why, PC_JOB_CANCELLED);
    pc__cs_end(&s, r3, PC_JOB_CANCELLED, "closed");
    CU_ASSERT_EQUAL(pc__cs_pending(&s), 0);
    CU_ASSERT_EQUAL(s.running, 0);
    CU_ASSERT_EQUAL(s.nodes[a].load, 0);
    pc__cs_fini(&s);
}

PT_TEST(job_drop_and_table)
static void
job_drop_and_table(void)
{
    cs_sched s;
    uint64_t ids[1000];

    sched(&s, 2, 3);
    for (int i = 0; i < 1000; i++)
        ids[i] = job(&s, "f", 1, 0)->id;
    for (int i = 0; i < 1000; i++) {
        CU_ASSERT_EQUAL(ids[i], (uint64_t)i + 1);
        CU_ASSERT_PTR_NOT_NULL(pc__cs_job_find(&s, ids[i]));
    }
    pc__cs_job_drop(&s, s.queue.tail);
    CU_ASSERT_PTR_NULL(pc__cs_job_find(&s, 1000));
    CU_ASSERT_EQUAL(s.submitted, 999);
    CU_ASSERT_EQUAL(job(&s, "f", 1, 0)->id, 1000);
    pc__cs_fini(&s);
}

/* ---- events ---------------------------------------------------------------------- */

PT_TEST(events_round_trip)
static void
events_round_trip(void)
{
    pc_compute_event e = {.kind = PC_CE_JOB_RETRIED,
                          .worker = 3,
                          .job = 0x1122334455667788ull,
                          .attempt = 2,
                          .why = PC_JOB_LOST,
                          .n = -1},
                     o;
    pc_msg *m = NULL, *bad = NULL;
    const void *d;
    size_t len;
    uint64_t id;

    snprintf(e.node, sizeof e.node, "nodeA");
    memset(e.text, 'x', sizeof e.text - 1);
    e.text[sizeof e.text - 1] = '\0';
    CU_ASSERT_EQUAL_FATAL(pc__ce_msg(&e, &m), PC_OK);
    CU_ASSERT_EQUAL(pc_compute_event_parse(m, &o), PC_OK);
    CU_ASSERT_EQUAL(o.kind, e.kind);
    CU_ASSERT_EQUAL(o.worker, 3);
    CU_ASSERT_EQUAL(o.job, e.job);
    CU_ASSERT_EQUAL(o.attempt, 2);
    CU_ASSERT_EQUAL(o.why, PC_JOB_LOST);
    CU_ASSERT_EQUAL(o.n, -1);
    CU_ASSERT_STRING_EQUAL(o.node, "nodeA");
    CU_ASSERT_STRING_EQUAL(o.text, e.text);
    CU_ASSERT_STRING_EQUAL(pc_compute_event_str(o.kind), "job retried");
    CU_ASSERT_STRING_EQUAL(pc_job_why_str(PC_JOB_TIMEDOUT), "timed out");
    /* every cut, a bad version, a bad kind: refused */
    d = pc_msg_data(m, &len);
    for (size_t k = 0; k < len; k++) {
        CU_ASSERT_EQUAL(pc_msg_new(&bad, PC_MSG_COMPUTE_STATUS, d, k), PC_OK);
        CU_ASSERT_EQUAL(pc_compute_event_parse(bad, &o), PC_EINVAL);
        pc_msg_free(&bad);
    }
    unsigned char b[512];
    memcpy(b, d, len);
    b[0] = 2;
    CU_ASSERT_EQUAL(pc_msg_new(&bad, PC_MSG_COMPUTE_STATUS, b, len), PC_OK);
    CU_ASSERT_EQUAL(pc_compute_event_parse(bad, &o), PC_EINVAL);
    pc_msg_free(&bad);
    b[0] = 1;
    b[1] = 99;
    CU_ASSERT_EQUAL(pc_msg_new(&bad, PC_MSG_COMPUTE_STATUS, b, len), PC_OK);
    CU_ASSERT_EQUAL(pc_compute_event_parse(bad, &o), PC_EINVAL);
    pc_msg_free(&bad);
    CU_ASSERT_EQUAL(pc_compute_event_parse(NULL, &o), PC_EINVAL);
    pc_msg_free(&m);

    CU_ASSERT_EQUAL_FATAL(pc__compute_job_msg_new(42, "hello", 5, &m), PC_OK);
    CU_ASSERT_EQUAL(pc_compute_job_msg_parse(m, &id, &d, &len), PC_OK);
    CU_ASSERT_EQUAL(id, 42);
    CU_ASSERT_EQUAL(len, 5);
    CU_ASSERT_EQUAL(memcmp(d, "hello", 5), 0);
    pc_msg_free(&m);
    CU_ASSERT_EQUAL(pc_msg_new(&m, PC_MSG_COMPUTE_JOB_MSG, "1234567", 7),
                    PC_OK);
    CU_ASSERT_EQUAL(pc_compute_job_msg_parse(m, &id, &d, &len), PC_EINVAL);
    pc_msg_free(&m);
}

PT_MAIN("compute_sched", PT_ENTRY(place_least_loaded_prefetch),
        PT_ENTRY(place_constraints_and_refusals),
        PT_ENTRY(place_no_head_of_line_blocking), PT_ENTRY(done_exactly_once),
        PT_ENTRY(results_in_end_order), PT_ENTRY(crash_retried_then_crashed),
        PT_ENTRY(node_lost_retried_elsewhere), PT_ENTRY(cancel_and_close),
        PT_ENTRY(job_drop_and_table), PT_ENTRY(events_round_trip))
