/* apps/picos/topview.c — a NodeStatusList as the rows and lines `picos top`
 * and `picos status` print.
 *
 * Nodes report counters that are totals since they started; the registry
 * keeps only the latest, so the rates a reader wants come from two of its
 * own fetches. top_mem keeps, per node id, the counters of the last two
 * distinct samples (told apart by sampled_us and the incarnation): a fetch
 * that returns the sample already held changes nothing, so asking every
 * 0.2 s a node that reports every second still gives per-second rates
 * over one real interval. A restarted node (new incarnation) starts
 * again from one sample: its rates are unknown ("-") until the next.
 *
 * A compute node (NodeStatus.compute) also gets its jobs ended per second,
 * from the same two samples; the compute columns appear only when some
 * node shown computes, so a cluster without computations reads as before.
 *
 * Cells are built with the compact units of top_fmt_*, so the node table
 * fits an 80-column terminal up to the NODE ID column; the terminal code
 * (top.c) cuts what does not fit, the plain output prints it whole.
 */
#define _GNU_SOURCE
#include "topview.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "picos/err.h"
#include "picos/ref.h"

/* ---- the memory of samples ----------------------------------------------------- */

typedef struct svc_count {
    char *name;
    uint64_t calls;
} svc_count;

typedef struct sample {
    bool set;
    uint64_t incarnation, sampled_us, sent, received;
    bool compute;
    uint64_t jobs_done;
    svc_count *svc;
    size_t nsvc;
} sample;

typedef struct node_mem {
    uint64_t node;
    sample prev, last;
    bool seen;
} node_mem;

struct top_mem {
    node_mem *v;
    size_t n, cap;
};

static void
sample_fini(sample *s)
{
    for (size_t i = 0; i < s->nsvc; i++)
        free(s->svc[i].name);
    free(s->svc);
    memset(s, 0, sizeof *s);
}

/* The counters of status st into *out; false: no memory (*out unset). */
static bool
sample_take(sample *out, const Picos__V1__NodeStatus *st)
{
    sample s = {.set = true,
                .incarnation = st->incarnation,
                .sampled_us = st->sampled_us,
                .sent = st->msgs_sent,
                .received = st->msgs_received,
                .compute = st->compute != NULL,
                .jobs_done = st->compute ? st->compute->jobs_done : 0};

    if (st->n_services && !(s.svc = calloc(st->n_services, sizeof *s.svc)))
        return false;
    for (size_t i = 0; i < st->n_services; i++) {
        if (!(s.svc[i].name = strdup(st->services[i]->name))) {
            sample_fini(&s);
            return false;
        }
        s.svc[i].calls = st->services[i]->calls;
        s.nsvc++;
    }
    *out = s;
    return true;
}

top_mem *
top_mem_new(void)
{
    return calloc(1, sizeof(top_mem));
}

void
top_mem_free(top_mem **m)
{
    if (!*m)
        return;
    for (size_t i = 0; i < (*m)->n; i++) {
        sample_fini(&(*m)->v[i].prev);
        sample_fini(&(*m)->v[i].last);
    }
    free((*m)->v);
    free(*m);
    *m = NULL;
}

static node_mem *
mem_find(const top_mem *m, uint64_t node)
{
    for (size_t i = 0; m && i < m->n; i++)
        if (m->v[i].node == node)
            return &m->v[i];
    return NULL;
}

bool
top_mem_update(top_mem *m, const Picos__V1__NodeStatusList *l)
{
    bool ok = true;
    size_t keep = 0;

    for (size_t i = 0; i < m->n; i++)
        m->v[i].seen = false;
    for (size_t i = 0; i < l->n_nodes; i++) {
        const Picos__V1__NodeStatus *st = l->nodes[i]->status;
        node_mem *nm;
        sample s;

        if (!st)
            continue;
        if (!(nm = mem_find(m, st->node))) {
            if (m->n == m->cap) {
                size_t cap = m->cap ? 2 * m->cap : 8;
                node_mem *v = realloc(m->v, cap * sizeof *v);
                if (!v) {
                    ok = false;
                    continue;
                }
                m->v = v;
                m->cap = cap;
            }
            nm = &m->v[m->n++];
            memset(nm, 0, sizeof *nm);
            nm->node = st->node;
        }
        nm->seen = true;
        if (nm->last.set && nm->last.incarnation == st->incarnation &&
            nm->last.sampled_us == st->sampled_us)
            continue; /* the sample we hold */
        if (!sample_take(&s, st)) {
            ok = false;
            continue;
        }
        sample_fini(&nm->prev);
        nm->prev = nm->last;
        nm->last = s;
    }
    for (size_t i = 0; i < m->n; i++) {
        if (m->v[i].seen) {
            m->v[keep++] = m->v[i];
            continue;
        }
        sample_fini(&m->v[i].prev);
        sample_fini(&m->v[i].last);
    }
    m->n = keep;
    return ok;
}

/* The node's two samples when they make a rate for status s: the same
 * incarnation, s the latest, time gone by. */
static const node_mem *
rate_base(const top_mem *m, const Picos__V1__NodeStatus *s, double *dt)
{
    const node_mem *nm = mem_find(m, s->node);

    if (!nm || !nm->prev.set || !nm->last.set ||
        nm->last.sampled_us != s->sampled_us ||
        nm->last.incarnation != s->incarnation ||
        nm->prev.incarnation != nm->last.incarnation ||
        nm->last.sampled_us <= nm->prev.sampled_us)
        return NULL;
    *dt = (double)(nm->last.sampled_us - nm->prev.sampled_us) / 1e6;
    return nm;
}

/* (b - a) / dt; a counter never goes back, but a bad one must not show
 * 1.8e19/s. */
static double
per_s(uint64_t a, uint64_t b, double dt)
{
    return b >= a ? (double)(b - a) / dt : 0;
}

static uint64_t
svc_calls(const sample *s, const char *name)
{
    for (size_t i = 0; i < s->nsvc; i++)
        if (!strcmp(s->svc[i].name, name))
            return s->svc[i].calls;
    return 0; /* new since: all its calls are in the interval */
}

bool
top_node_rates(const top_mem *m, const Picos__V1__NodeStatus *s, top_rates *out)
{
    double dt;
    const node_mem *nm = rate_base(m, s, &dt);

    if (!nm)
        return false;
    out->sent = per_s(nm->prev.sent, nm->last.sent, dt);
    out->received = per_s(nm->prev.received, nm->last.received, dt);
    out->jobs = nm->last.compute
                    ? per_s(nm->prev.jobs_done, nm->last.jobs_done, dt)
                    : -1;
    out->calls = 0;
    for (size_t i = 0; i < nm->last.nsvc; i++)
        out->calls += per_s(svc_calls(&nm->prev, nm->last.svc[i].name),
                            nm->last.svc[i].calls, dt);
    return true;
}

bool
top_service_rate(const top_mem *m, const Picos__V1__NodeStatus *s,
                 const char *name, double *out)
{
    double dt;
    const node_mem *nm = rate_base(m, s, &dt);

    if (!nm)
        return false;
    *out = per_s(svc_calls(&nm->prev, name), svc_calls(&nm->last, name), dt);
    return true;
}

/* ---- order ------------------------------------------------------------------------ */

static const Picos__V1__NodeStatusList *sort_list;

static int
entry_cmp(const void *x, const void *y)
{
    const Picos__V1__NodeStatus *a =
        sort_list->nodes[*(const size_t *)x]->status;
    const Picos__V1__NodeStatus *b =
        sort_list->nodes[*(const size_t *)y]->status;
    int c = strcmp(a->name, b->name);

    if (c)
        return c;
    return a->node < b->node ? -1 : a->node > b->node;
}

size_t
top_order(const Picos__V1__NodeStatusList *l, uint64_t self, size_t *idx)
{
    size_t n = 0;

    for (size_t i = 0; i < l->n_nodes; i++) {
        const Picos__V1__NodeStatus *s = l->nodes[i]->status;
        if (!s || (self && s->node == self) ||
            !strncmp(s->name, CLI_NODE_PREFIX, strlen(CLI_NODE_PREFIX)))
            continue;
        idx[n++] = i;
    }
    /* qsort has no context argument in C11; the CLI is single-threaded
     * where it sorts */
    sort_list = l;
    qsort(idx, n, sizeof *idx, entry_cmp);
    sort_list = NULL;
    return n;
}

/* ---- units ------------------------------------------------------------------------ */

char *
top_fmt_bytes(uint64_t v, char *buf, size_t size)
{
    static const char unit[] = "BKMGTP";
    double d = (double)v;
    size_t u = 0;

    while (d >= 1024 && u + 1 < sizeof unit - 1) {
        d /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, size, "%" PRIu64 "B", v);
    else if (d < 10)
        snprintf(buf, size, "%.1f%c", d, unit[u]);
    else
        snprintf(buf, size, "%.0f%c", d, unit[u]);
    return buf;
}

char *
top_fmt_rate(double v, char *buf, size_t size)
{
    if (v < 0)
        snprintf(buf, size, "-");
    else if (v < 1000)
        snprintf(buf, size, "%.1f", v);
    else if (v < 1e6)
        snprintf(buf, size, "%.1fk", v / 1e3);
    else
        snprintf(buf, size, "%.1fM", v / 1e6);
    return buf;
}

char *
top_fmt_us(uint64_t us, char *buf, size_t size)
{
    if (us == 0)
        snprintf(buf, size, "-");
    else if (us < 1000)
        snprintf(buf, size, "%" PRIu64 "us", us);
    else if (us < 1000000)
        snprintf(buf, size, "%.1fms", (double)us / 1e3);
    else
        snprintf(buf, size, "%.2fs", (double)us / 1e6);
    return buf;
}

char *
top_fmt_age(double s, char *buf, size_t size)
{
    if (s < 0)
        s = 0; /* the registry's clock a little ahead of ours */
    if (s < 10)
        snprintf(buf, size, "%.1fs", s);
    else if (s < 120)
        snprintf(buf, size, "%.0fs", s);
    else if (s < 7200)
        snprintf(buf, size, "%.0fm", s / 60);
    else
        snprintf(buf, size, "%.0fh", s / 3600);
    return buf;
}

/* Seconds from registry time t_us to now_us. */
static double
age_s(uint64_t t_us, uint64_t now_us)
{
    return ((double)now_us - (double)t_us) / 1e6;
}

/* ---- the node table ------------------------------------------------------------- */

static uint32_t
max_p99(const Picos__V1__NodeStatus *s)
{
    uint32_t p = 0;

    for (size_t i = 0; i < s->n_services; i++)
        if (s->services[i]->latency_p99_us > p)
            p = s->services[i]->latency_p99_us;
    return p;
}

#define NODE_COLS 13
#define COMPUTE_COLS 2
#define BRIEF_COLS 9

/* Whether any of the entries idx[0..n) of l takes computations. */
static bool
any_compute(const Picos__V1__NodeStatusList *l, const size_t *idx, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (l->nodes[idx[i]]->status && l->nodes[idx[i]]->status->compute)
            return true;
    return false;
}

cli_table *
top_nodes_table(const Picos__V1__NodeStatusList *l, const size_t *idx, size_t n,
                const top_mem *m, uint64_t now_us, bool brief)
{
    static const char *const head[NODE_COLS] = {
        "NAME",   "STATE",   "CPU", "MEM", "RSS",     "TASKS", "SENT/S",
        "RECV/S", "CALLS/S", "P99", "AGE", "NODE ID", "NOTE"};
    static const char *const chead[NODE_COLS + COMPUTE_COLS] = {
        "NAME",   "STATE",  "CPU",    "MEM",     "RSS",
        "TASKS",  "SENT/S", "RECV/S", "CALLS/S", "P99",
        "JOBS/S", "BUSY",   "AGE",    "NODE ID", "NOTE"};
    static const char *const bhead[BRIEF_COLS] = {"NAME", "STATE",   "CPU",
                                                  "MEM",  "RSS",     "TASKS",
                                                  "AGE",  "NODE ID", "NOTE"};
    bool comp = !brief && any_compute(l, idx, n);
    cli_table *t = cli_table_new(brief  ? BRIEF_COLS
                                 : comp ? NODE_COLS + COMPUTE_COLS
                                        : NODE_COLS,
                                 brief  ? bhead
                                 : comp ? chead
                                        : head);

    for (size_t i = 0; t && i < n; i++) {
        const Picos__V1__NodeStatusEntry *e = l->nodes[idx[i]];
        const Picos__V1__NodeStatus *s = e->status;
        char cpu[16], mem[16], rss[16], tasks[24], sent[16], recv[16],
            calls[16], p99[16], age[16], id[24], note[256], down[16], jobs[16],
            busy[32];
        top_rates r = {-1, -1, -1, -1};
        const char *row[NODE_COLS + COMPUTE_COLS];
        size_t k = 10;

        if (e->up)
            top_node_rates(m, s, &r);
        snprintf(cpu, sizeof cpu, "%.0f%%", (double)s->cpu_available_pct);
        snprintf(tasks, sizeof tasks, "%" PRIu64, s->tasks);
        note[0] = '\0';
        if (!e->up)
            snprintf(note, sizeof note, "down %s ago%s%s",
                     top_fmt_age(age_s(e->down_us, now_us), down, sizeof down),
                     *e->down_reason ? ": " : "", e->down_reason);
        row[0] = s->name;
        row[1] = e->up ? "up" : "DOWN";
        row[2] = cpu;
        row[3] = top_fmt_bytes(s->mem_available, mem, sizeof mem);
        row[4] = top_fmt_bytes(s->rss, rss, sizeof rss);
        row[5] = tasks;
        if (brief) {
            row[6] =
                top_fmt_age(age_s(e->received_us, now_us), age, sizeof age);
            row[7] = cli_hex(s->node, id, sizeof id);
            row[8] = note;
        } else {
            row[6] = top_fmt_rate(r.sent, sent, sizeof sent);
            row[7] = top_fmt_rate(r.received, recv, sizeof recv);
            row[8] = top_fmt_rate(r.calls, calls, sizeof calls);
            row[9] = top_fmt_us(max_p99(s), p99, sizeof p99);
            if (comp) {
                snprintf(busy, sizeof busy, "-");
                if (s->compute)
                    snprintf(busy, sizeof busy, "%" PRIu32 "/%" PRIu32 "%s",
                             s->compute->workers_busy, s->compute->cpus,
                             s->compute->suspended ? " susp" : "");
                row[k++] = top_fmt_rate(r.jobs, jobs, sizeof jobs);
                row[k++] = busy;
            }
            row[k++] =
                top_fmt_age(age_s(e->received_us, now_us), age, sizeof age);
            row[k++] = cli_hex(s->node, id, sizeof id);
            row[k++] = note;
        }
        cli_table_row(t, row); /* a failure is remembered by t */
    }
    return t;
}

void
top_totals(const Picos__V1__NodeStatusList *l, const size_t *idx, size_t n,
           const top_mem *m, char *buf, size_t size)
{
    size_t up = 0;
    uint64_t tasks = 0;
    double sent = 0, recv = 0, calls = 0;
    bool rates = false, comp = false, jrates = false;
    size_t cnodes = 0;
    uint64_t busy = 0, cpus = 0, done = 0, failed = 0;
    double jobs = 0;
    char a[16], b[16], c[16], j[16];
    int len;

    for (size_t i = 0; i < n; i++) {
        const Picos__V1__NodeStatusEntry *e = l->nodes[idx[i]];
        top_rates r;

        if (!e->up)
            continue;
        up++;
        tasks += e->status->tasks;
        if (top_node_rates(m, e->status, &r)) {
            rates = true;
            sent += r.sent;
            recv += r.received;
            calls += r.calls;
            if (r.jobs >= 0) {
                jrates = true;
                jobs += r.jobs;
            }
        }
        if (e->status->compute) {
            const Picos__V1__ComputeStatus *cs = e->status->compute;
            cnodes++;
            busy += cs->workers_busy;
            cpus += cs->cpus;
            done += cs->jobs_done;
            failed += cs->jobs_failed;
        }
    }
    comp = any_compute(l, idx, n);
    len = snprintf(buf, size,
                   "%zu node%s: %zu up, %zu down | tasks %" PRIu64
                   " | msg/s sent %s, received %s | calls/s %s",
                   n, n == 1 ? "" : "s", up, n - up, tasks,
                   top_fmt_rate(rates ? sent : -1, a, sizeof a),
                   top_fmt_rate(rates ? recv : -1, b, sizeof b),
                   top_fmt_rate(rates ? calls : -1, c, sizeof c));
    if (comp && len >= 0 && (size_t)len < size)
        snprintf(buf + len, size - (size_t)len,
                 " | compute: %zu node%s, busy %" PRIu64 "/%" PRIu64
                 ", jobs/s %s, done %" PRIu64 ", failed %" PRIu64,
                 cnodes, cnodes == 1 ? "" : "s", busy, cpus,
                 top_fmt_rate(jrates ? jobs : -1, j, sizeof j), done, failed);
}

/* ---- one node's detail ------------------------------------------------------------ */

/* Print table t to f under a title, then free it; a table that could not
 * be built prints its title only. */
static void
section(FILE *f, const char *title, cli_table *t, size_t rows)
{
    fprintf(f, "\n%s (%zu)\n", title, rows);
    if (t && rows)
        cli_table_print(t, f);
    cli_table_free(t);
}

static void
services(FILE *f, const Picos__V1__NodeStatus *s, const top_mem *m)
{
    static const char *const head[] = {
        "SERVICE", "VER", "CALLS/S", "CALLS", "FAILED", "REFUSED", "RUN",
        "QUEUED",  "P50", "P90",     "P99",   "MAX",    "STATE"};
    cli_table *t = cli_table_new(13, head);

    for (size_t i = 0; t && i < s->n_services; i++) {
        const Picos__V1__ServiceStatus *v = s->services[i];
        char ver[16], rate[16], calls[24], fail[24], ref[24], run[16], q[16],
            p50[16], p90[16], p99[16], max[16];
        double r = -1;

        top_service_rate(m, s, v->name, &r);
        snprintf(ver, sizeof ver, "v%" PRIu32, v->version);
        snprintf(calls, sizeof calls, "%" PRIu64, v->calls);
        snprintf(fail, sizeof fail, "%" PRIu64, v->failures);
        snprintf(ref, sizeof ref, "%" PRIu64, v->refused);
        snprintf(run, sizeof run, "%" PRIu32, v->running);
        snprintf(q, sizeof q, "%" PRIu32, v->queued);
        cli_table_row(t, (const char *const[]){
                             v->name, ver, top_fmt_rate(r, rate, sizeof rate),
                             calls, fail, ref, run, q,
                             top_fmt_us(v->latency_p50_us, p50, sizeof p50),
                             top_fmt_us(v->latency_p90_us, p90, sizeof p90),
                             top_fmt_us(v->latency_p99_us, p99, sizeof p99),
                             top_fmt_us(v->latency_max_us, max, sizeof max),
                             v->suspended ? "suspended" : "serving"});
    }
    section(f, "SERVICES", t, s->n_services);
}

static void
channels(FILE *f, const Picos__V1__NodeStatus *s)
{
    static const char *const head[] = {"CHANNEL", "PUBLISHED", "DELIVERED",
                                       "DROPPED", "SUBSCRIBERS"};
    cli_table *t = cli_table_new(5, head);

    for (size_t i = 0; t && i < s->n_channels; i++) {
        const Picos__V1__ChannelStatus *c = s->channels[i];
        char pub[24], del[24], drop[24], subs[16];

        snprintf(pub, sizeof pub, "%" PRIu64, c->published);
        snprintf(del, sizeof del, "%" PRIu64, c->delivered);
        snprintf(drop, sizeof drop, "%" PRIu64, c->dropped);
        snprintf(subs, sizeof subs, "%" PRIu32, c->subscribers);
        cli_table_row(t, (const char *const[]){c->name, pub, del, drop, subs});
    }
    section(f, "CHANNELS", t, s->n_channels);
}

static void
peers(FILE *f, const Picos__V1__NodeStatus *s)
{
    static const char *const head[] = {"PEER", "NODE ID",   "ENDPOINT",
                                       "LINK", "HEARTBEAT", "QUEUE"};
    cli_table *t = cli_table_new(6, head);

    for (size_t i = 0; t && i < s->n_peers; i++) {
        const Picos__V1__PeerStatus *p = s->peers[i];
        char id[24], hb[16], q[16];

        snprintf(q, sizeof q, "%" PRIu32, p->queue);
        cli_table_row(
            t, (const char *const[]){
                   p->name, cli_hex(p->node, id, sizeof id),
                   *p->endpoint ? p->endpoint : NULL, p->up ? "up" : "DOWN",
                   top_fmt_age(p->heartbeat_age_ms / 1e3, hb, sizeof hb), q});
    }
    section(f, "PEERS", t, s->n_peers);
}

static void
deepest(FILE *f, const Picos__V1__NodeStatus *s)
{
    static const char *const head[] = {"TASK", "NAME", "DEPTH"};
    cli_table *t = cli_table_new(3, head);

    for (size_t i = 0; t && i < s->n_deepest; i++) {
        const Picos__V1__MailboxDepth *d = s->deepest[i];
        char ref[48] = "-", depth[24];

        if (d->task)
            pc_ref_str((pc_ref){d->task->node, d->task->id}, ref, sizeof ref);
        snprintf(depth, sizeof depth, "%" PRIu64, d->depth);
        cli_table_row(
            t, (const char *const[]){ref, *d->name ? d->name : NULL, depth});
    }
    section(f, "DEEPEST MAILBOXES", t, s->n_deepest);
}

char *
top_detail(const Picos__V1__NodeStatusEntry *e, const top_mem *m,
           uint64_t now_us)
{
    const Picos__V1__NodeStatus *s = e->status;
    char *text = NULL, id[24], inc[24], a[16], b[16], c[16], d[16], since[32];
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    top_rates r = {-1, -1, -1, -1};

    if (!f)
        return NULL;
    if (e->up)
        top_node_rates(m, s, &r);
    fprintf(f, "%s  %s  %s  host %s  pid %" PRIu32 "  started %s\n", s->name,
            cli_hex(s->node, id, sizeof id), e->up ? "up" : "DOWN", s->host,
            s->pid, cli_time((double)s->started_us / 1e6, since, sizeof since));
    if (!e->up)
        fprintf(f, "down %s ago: %s\n",
                top_fmt_age(age_s(e->down_us, now_us), a, sizeof a),
                *e->down_reason ? e->down_reason : "(no reason given)");
    fprintf(
        f, "incarnation %s  reports every %" PRIu32 " ms  last status %s ago\n",
        cli_hex(s->incarnation, inc, sizeof inc), s->interval_ms,
        top_fmt_age(age_s(e->received_us, now_us), a, sizeof a));
    fprintf(f,
            "cpu available %.0f%% of %" PRIu32
            " cpus  process cpu %.0f%%  load %.2f\n",
            (double)s->cpu_available_pct, s->cpus, (double)s->proc_cpu_pct,
            s->load1);
    fprintf(f, "memory available %s of %s  rss %s  swap available %.0f%%\n",
            top_fmt_bytes(s->mem_available, a, sizeof a),
            top_fmt_bytes(s->mem_total, b, sizeof b),
            top_fmt_bytes(s->rss, c, sizeof c), (double)s->swap_available_pct);
    fprintf(f, "disk free %s under %s\n",
            top_fmt_bytes(s->disk_free, a, sizeof a),
            *s->data_dir ? s->data_dir : "(the working directory)");
    fprintf(f,
            "tasks %" PRIu64 "  actors %" PRIu64 "  workers %" PRIu32
            "  spawned %" PRIu64 "\n",
            s->tasks, s->actors, s->workers, s->spawned);
    fprintf(f,
            "messages sent %" PRIu64 " (%s/s)  received %" PRIu64
            " (%s/s)  dropped %" PRIu64 "  refused %" PRIu64 "\n",
            s->msgs_sent, top_fmt_rate(r.sent, a, sizeof a), s->msgs_received,
            top_fmt_rate(r.received, b, sizeof b), s->msgs_dropped,
            s->msgs_refused);
    fprintf(f,
            "links: envelopes out %" PRIu64 "  in %" PRIu64 "  dropped %" PRIu64
            "  refused %" PRIu64 "  nodes down %" PRIu64
            "  channel gaps %" PRIu64 "  calls/s %s\n",
            s->env_out, s->env_in, s->net_dropped, s->net_refused,
            s->nodes_down, s->chan_missed, top_fmt_rate(r.calls, d, sizeof d));
    if (s->compute) {
        const Picos__V1__ComputeStatus *cs = s->compute;
        fprintf(f,
                "compute: cpus %" PRIu32 " (%" PRIu32
                " reserved)  sessions %" PRIu32 "  workers %" PRIu32
                " busy of %" PRIu32 " up  queued %" PRIu32
                "  jobs done %" PRIu64 " (%s/s)  failed %" PRIu64
                "  workers lost %" PRIu64 "%s\n",
                cs->cpus, cs->cpus_reserved, cs->sessions, cs->workers_busy,
                cs->workers, cs->jobs_queued, cs->jobs_done,
                top_fmt_rate(r.jobs, a, sizeof a), cs->jobs_failed,
                cs->workers_lost, cs->suspended ? "  SUSPENDED" : "");
    }
    services(f, s, m);
    channels(f, s);
    peers(f, s);
    deepest(f, s);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}
