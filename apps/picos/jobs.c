/* apps/picos/jobs.c — `picos jobs [PATTERN...] [--watch [--interval S]]`:
 * the cluster's compute nodes and their jobs, from the node statuses the
 * registry keeps (pc_cluster_nodes_status(); NodeStatus.compute,
 * proto/status.proto).
 *
 * A compute node is a node whose status carries `compute` (picos-node
 * --compute). The counters there are totals since the node started, so
 * JOBS/S needs two samples of the same node: the command reads the list
 * once, then again every 100 ms until each compute node that is up has
 * sent a newer status (or about two of its intervals, at most --timeout,
 * have passed), and divides the growth of jobs_done by the time between
 * the two samples' sampled_us — the node's own clock, the time its
 * counters cover. So a plain `picos jobs` takes about one status interval
 * (1 s by default); a node whose second sample did not come in time, or
 * that restarted in between (another incarnation), shows "-". The
 * registry's history of samples is not used: it keeps only the series
 * its charts draw, not the compute counters.
 *
 * --watch prints the table again every --interval S (default 2) until
 * SIGINT or SIGTERM, with the rates between consecutive samples; on a
 * terminal the screen is cleared first. The two signals are blocked before
 * the CLI's node starts (its threads inherit the mask) and taken by the
 * main thread's sigtimedwait(), which is also the wait between refreshes,
 * so the node always leaves the cluster cleanly. --json prints one array
 * (with --watch one compact array per line per refresh).
 */
#define _GNU_SOURCE
#include <fnmatch.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "picos/compute.h"
#include "picos/msg.h"
#include "picos/node.h"
#include "picos/registry.h"

#include "cli.h"
#include "status.pb-c.h"
#include "topview.h"

#define MAX_PATTERNS 32
#define DEFAULT_WATCH 2.0

/* Two samples of a compute node, for its rate. */
typedef struct sample {
    uint64_t node, incarnation;
    uint64_t us, done; /* the latest: sampled_us, jobs_done */
    uint64_t prev_us, prev_done;
    bool has_prev, seen;
} sample;

typedef struct mem {
    sample *v;
    size_t n, cap;
} mem;

typedef struct jobs_args {
    const char *patterns[MAX_PATTERNS];
    size_t npatterns;
    bool watch;
    double interval;
} jobs_args;

static sample *
mem_find(mem *m, uint64_t node)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->v[i].node == node)
            return &m->v[i];
    return NULL;
}

/* Take the compute nodes' samples of l; nodes not in l are forgotten. */
static bool
mem_update(mem *m, const Picos__V1__NodeStatusList *l)
{
    size_t k = 0;

    for (size_t i = 0; i < m->n; i++)
        m->v[i].seen = false;
    for (size_t i = 0; i < l->n_nodes; i++) {
        const Picos__V1__NodeStatus *s = l->nodes[i]->status;
        sample *p;

        if (!s || !s->compute)
            continue;
        if (!(p = mem_find(m, s->node))) {
            if (m->n == m->cap) {
                size_t cap = m->cap ? 2 * m->cap : 16;
                sample *nv = realloc(m->v, cap * sizeof *nv);
                if (!nv)
                    return false;
                m->v = nv, m->cap = cap;
            }
            p = &m->v[m->n++];
            *p = (sample){.node = s->node,
                          .incarnation = s->incarnation,
                          .us = s->sampled_us,
                          .done = s->compute->jobs_done};
        } else if (p->incarnation != s->incarnation ||
                   s->compute->jobs_done < p->done) {
            *p = (sample){.node = s->node,
                          .incarnation = s->incarnation,
                          .us = s->sampled_us,
                          .done = s->compute->jobs_done};
        } else if (s->sampled_us > p->us) {
            p->prev_us = p->us, p->prev_done = p->done, p->has_prev = true;
            p->us = s->sampled_us, p->done = s->compute->jobs_done;
        }
        p->seen = true;
    }
    for (size_t i = 0; i < m->n; i++)
        if (m->v[i].seen)
            m->v[k++] = m->v[i];
    m->n = k;
    return true;
}

/* Jobs per second of the node of status s; negative: not known. */
static double
mem_rate(mem *m, const Picos__V1__NodeStatus *s)
{
    sample *p = mem_find(m, s->node);

    if (!p || !p->has_prev || p->us != s->sampled_us || p->us <= p->prev_us)
        return -1;
    return (double)(p->done - p->prev_done) /
           ((double)(p->us - p->prev_us) / 1e6);
}

/* ---- the list ----------------------------------------------------------------- */

static bool
wanted(const jobs_args *a, const Picos__V1__NodeStatus *s)
{
    if (!s || !s->compute || !s->name ||
        !strncmp(s->name, CLI_NODE_PREFIX, strlen(CLI_NODE_PREFIX)))
        return false;
    if (a->npatterns == 0)
        return true;
    for (size_t i = 0; i < a->npatterns; i++)
        if (!fnmatch(a->patterns[i], s->name, 0))
            return true;
    return false;
}

static int
fetch(Picos__V1__NodeStatusList **out)
{
    pc_msg *m = NULL;
    pc_err rc = pc_cluster_nodes_status(cli.timeout, &m);
    size_t len = 0;
    const void *data;

    *out = NULL;
    if (rc != PC_OK)
        return cli_fail_rc("asking node statuses", rc);
    data = pc_msg_data(m, &len);
    *out = picos__v1__node_status_list__unpack(NULL, len, data);
    pc_msg_free(&m);
    if (!*out)
        return cli_fail("node statuses: the registry's answer does not parse");
    return CLI_OK;
}

static void
list_free(Picos__V1__NodeStatusList **l)
{
    if (*l)
        picos__v1__node_status_list__free_unpacked(*l, NULL);
    *l = NULL;
}

static int
by_name(const void *x, const void *y)
{
    const Picos__V1__NodeStatusEntry *a =
        *(const Picos__V1__NodeStatusEntry *const *)x;
    const Picos__V1__NodeStatusEntry *b =
        *(const Picos__V1__NodeStatusEntry *const *)y;
    int c = strcmp(a->status->name, b->status->name);

    return c ? c
           : a->status->node < b->status->node
               ? -1
               : a->status->node > b->status->node;
}

/* The wanted entries of l, sorted by name; how many into *n. */
static const Picos__V1__NodeStatusEntry **
entries(const jobs_args *a, const Picos__V1__NodeStatusList *l, size_t *n)
{
    const Picos__V1__NodeStatusEntry **v = calloc(l->n_nodes + 1, sizeof *v);

    *n = 0;
    if (!v)
        return NULL;
    for (size_t i = 0; i < l->n_nodes; i++)
        if (wanted(a, l->nodes[i]->status))
            v[(*n)++] = l->nodes[i];
    qsort(v, *n, sizeof *v, by_name);
    return v;
}

/* How many compute nodes (their registered compute task names) match the
 * patterns: the ones a status should come from. 0 when the names can't be
 * listed (the statuses alone decide then). */
static size_t
compute_names(const jobs_args *a)
{
    pc_name_info *v = NULL;
    size_t n = 0, k = 0, plen = strlen(PC_COMPUTE_NAME_PREFIX);

    if (pc_cluster_names(PC_NAME_TASK, &v, &n, cli.timeout) != PC_OK)
        return 0;
    for (size_t i = 0; i < n; i++) {
        const char *node = v[i].name + plen;
        bool match = a->npatterns == 0;
        if (strncmp(v[i].name, PC_COMPUTE_NAME_PREFIX, plen))
            continue;
        for (size_t j = 0; j < a->npatterns && !match; j++)
            match = !fnmatch(a->patterns[j], node, 0);
        k += match;
    }
    free(v);
    return k;
}

/* Wanted compute nodes that are up in l. */
static size_t
up_wanted(const jobs_args *a, const Picos__V1__NodeStatusList *l)
{
    size_t k = 0;

    for (size_t i = 0; i < l->n_nodes; i++)
        k += l->nodes[i]->up && wanted(a, l->nodes[i]->status);
    return k;
}

/* When node s->node's status in l was sampled; 0 if it has none there. */
static uint64_t
sampled(const Picos__V1__NodeStatusList *l, const Picos__V1__NodeStatus *s)
{
    for (size_t i = 0; l && i < l->n_nodes; i++)
        if (l->nodes[i]->status && l->nodes[i]->status->node == s->node)
            return l->nodes[i]->status->sampled_us;
    return 0;
}

/* The second sample: until every wanted compute node that is up sent a
 * newer status than in *l — and every node up without a compute status
 * did too (its first status may predate its compute side) —, or about two
 * intervals passed (at most --timeout). *l is replaced by the newest list. */
static int
second_sample(const jobs_args *a, mem *m, Picos__V1__NodeStatusList **l)
{
    Picos__V1__NodeStatusList *first = NULL;
    uint32_t interval_ms = 0;
    double end;
    int st = CLI_OK;

    /* every node that is up, not only the compute ones: a node's first
     * status may predate its compute side (picos-node joins, then starts
     * taking computations), and the next one has it */
    bool young = false; /* a node up that has sent no status yet */
    /* compute nodes whose status has not reached the registry yet (a node
     * that just started) are known by their compute task's name */
    size_t expected = compute_names(a);

    for (size_t i = 0; i < (*l)->n_nodes; i++) {
        const Picos__V1__NodeStatus *s = (*l)->nodes[i]->status;
        if (!(*l)->nodes[i]->up)
            continue;
        if (!s || !s->sampled_us)
            young = true;
        else if (s->interval_ms > interval_ms)
            interval_ms = s->interval_ms;
    }
    if (up_wanted(a, *l) < expected)
        young = true;
    if (interval_ms == 0 && young)
        interval_ms = 1000; /* the default interval */
    if (interval_ms == 0)
        return CLI_OK; /* none up, or they don't say: one sample */
    end = 2.0 * interval_ms / 1000.0 + 0.5;
    end = pc_now() + (end < cli.timeout ? end : cli.timeout);
    while (pc_now() < end) {
        Picos__V1__NodeStatusList *nl = NULL;
        bool all;

        usleep(100000);
        if ((st = fetch(&nl)) != CLI_OK) {
            list_free(&first);
            return st;
        }
        if (!mem_update(m, nl)) {
            list_free(&nl);
            list_free(&first);
            return cli_fail("out of memory");
        }
        if (first)
            list_free(l);
        else
            first = *l; /* kept: when each node's first status was taken */
        *l = nl;
        all = up_wanted(a, nl) >= expected;
        for (size_t i = 0; i < nl->n_nodes; i++) {
            const Picos__V1__NodeStatus *s = nl->nodes[i]->status;
            if (!nl->nodes[i]->up)
                continue;
            if (!s || !s->sampled_us) {
                all = false; /* no status yet */
                continue;
            }
            if (wanted(a, s)
                    ? mem_rate(m, s) < 0
                    : !s->compute && s->sampled_us <= sampled(first, s))
                all = false;
        }
        if (all)
            break;
    }
    list_free(&first);
    return CLI_OK;
}

/* ---- output ------------------------------------------------------------------- */

static const char *
state(const Picos__V1__NodeStatusEntry *e)
{
    if (!e->up)
        return "DOWN";
    return e->status->compute->suspended ? "suspended" : "up";
}

static int
print_table(const Picos__V1__NodeStatusEntry **v, size_t n, mem *m)
{
    static const char *const head[] = {
        "NAME",   "STATE", "CPUS",   "RESERVED", "SESSIONS", "WORKERS",
        "QUEUED", "DONE",  "FAILED", "LOST",     "JOBS/S",   "AGE"};
    cli_table *t = cli_table_new(12, head);
    uint64_t now = pc_wall_us();

    if (!t)
        return cli_fail("out of memory");
    for (size_t i = 0; i < n; i++) {
        const Picos__V1__ComputeStatus *c = v[i]->status->compute;
        char f[10][32];
        double rate = mem_rate(m, v[i]->status);
        const char *cells[12] = {v[i]->status->name, state(v[i])};

        snprintf(f[0], sizeof f[0], "%" PRIu32, c->cpus);
        snprintf(f[1], sizeof f[1], "%" PRIu32, c->cpus_reserved);
        snprintf(f[2], sizeof f[2], "%" PRIu32, c->sessions);
        snprintf(f[3], sizeof f[3], "%" PRIu32 "/%" PRIu32, c->workers_busy,
                 c->workers);
        snprintf(f[4], sizeof f[4], "%" PRIu32, c->jobs_queued);
        snprintf(f[5], sizeof f[5], "%" PRIu64, c->jobs_done);
        snprintf(f[6], sizeof f[6], "%" PRIu64, c->jobs_failed);
        snprintf(f[7], sizeof f[7], "%" PRIu64, c->workers_lost);
        if (rate >= 0)
            snprintf(f[8], sizeof f[8], "%.1f", rate);
        else
            snprintf(f[8], sizeof f[8], "-");
        top_fmt_age(now > v[i]->received_us
                        ? (double)(now - v[i]->received_us) / 1e6
                        : 0,
                    f[9], sizeof f[9]);
        for (int k = 0; k < 10; k++)
            cells[k + 2] = f[k];
        if (!cli_table_row(t, cells))
            break;
    }
    return cli_table_finish(t);
}

static json_t *
to_json(const Picos__V1__NodeStatusEntry **v, size_t n, mem *m)
{
    json_t *arr = json_array();
    char id[24];

    for (size_t i = 0; arr && i < n; i++) {
        const Picos__V1__ComputeStatus *c = v[i]->status->compute;
        double rate = mem_rate(m, v[i]->status);
        json_t *o = json_pack(
            "{s:s, s:s, s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
            "s:I, s:f}",
            "name", v[i]->status->name, "node",
            cli_hex(v[i]->status->node, id, sizeof id), "up", (int)v[i]->up,
            "suspended", (int)c->suspended, "cpus", (json_int_t)c->cpus,
            "cpus_reserved", (json_int_t)c->cpus_reserved, "sessions",
            (json_int_t)c->sessions, "workers", (json_int_t)c->workers,
            "workers_busy", (json_int_t)c->workers_busy, "jobs_queued",
            (json_int_t)c->jobs_queued, "jobs_done", (json_int_t)c->jobs_done,
            "jobs_failed", (json_int_t)c->jobs_failed, "workers_lost",
            (json_int_t)c->workers_lost, "sampled",
            (double)v[i]->status->sampled_us / 1e6);
        if (o)
            json_object_set_new(o, "jobs_per_s",
                                rate >= 0 ? json_real(rate) : json_null());
        if (!o || json_array_append_new(arr, o)) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return arr;
}

/* Print the wanted nodes of l; CLI_NOTFOUND (and its line) when none. */
static int
show(const jobs_args *a, const Picos__V1__NodeStatusList *l, mem *m)
{
    size_t n = 0;
    const Picos__V1__NodeStatusEntry **v = entries(a, l, &n);
    int st;

    if (!v)
        return cli_fail("out of memory");
    if (cli.json && a->watch) {
        json_t *j = to_json(v, n, m);
        st = j && json_dumpf(j, stdout, JSON_COMPACT) == 0 &&
                     putchar('\n') != EOF
                 ? CLI_OK
                 : cli_fail("writing JSON");
        json_decref(j);
    } else if (cli.json)
        st = cli_json_print(to_json(v, n, m));
    else if (n > 0)
        st = print_table(v, n, m);
    else if (a->watch)
        st = puts("(no compute node)") == EOF ? cli_fail("writing") : CLI_OK;
    else
        st = CLI_OK;
    fflush(stdout);
    free(v);
    if (st == CLI_OK && n == 0 && !a->watch) {
        if (a->npatterns)
            fprintf(stderr, "picos: no compute node matching '%s'%s\n",
                    a->patterns[0], a->npatterns > 1 ? " or the others" : "");
        else
            fprintf(stderr, "picos: no compute node in the cluster "
                            "(picos-node --compute)\n");
        st = CLI_NOTFOUND;
    }
    return st;
}

static int
watch(const jobs_args *a, mem *m, const sigset_t *sigs)
{
    bool tty = isatty(STDOUT_FILENO) && !cli.json;
    int st = CLI_OK;

    for (;;) {
        Picos__V1__NodeStatusList *l = NULL;
        struct timespec ts = {
            .tv_sec = (time_t)a->interval,
            .tv_nsec =
                (long)((a->interval - (double)(time_t)a->interval) * 1e9)};
        char when[32];

        if ((st = fetch(&l)) != CLI_OK)
            return st;
        if (!mem_update(m, l)) {
            list_free(&l);
            return cli_fail("out of memory");
        }
        if (tty)
            fputs("\033[H\033[2J", stdout);
        if (!cli.json)
            printf("%s  compute nodes, every %g s (Ctrl-C ends)\n",
                   cli_time((double)pc_wall_us() / 1e6, when, sizeof when),
                   a->interval);
        st = show(a, l, m);
        if (!cli.json && !tty)
            putchar('\n');
        fflush(stdout);
        list_free(&l);
        if (st != CLI_OK)
            return st;
        if (sigtimedwait(sigs, NULL, &ts) > 0)
            return CLI_OK;
    }
}

static int
jobs(int argc, char **argv)
{
    jobs_args a = {.interval = DEFAULT_WATCH};
    Picos__V1__NodeStatusList *l = NULL;
    mem m = {0};
    sigset_t sigs;
    int exit_now = -1, st;

    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--watch") || !strcmp(s, "-w")) {
            a.watch = true;
            continue;
        }
        if (!strcmp(s, "--interval") || !strncmp(s, "--interval=", 11)) {
            const char *v = s[10] == '='   ? s + 11
                            : i + 1 < argc ? argv[++i]
                                           : NULL;
            char *end;
            if (!v)
                return cli_usage("jobs: option --interval needs a value");
            a.interval = strtod(v, &end);
            if (end == v || *end || !isfinite(a.interval) || a.interval < 0.1 ||
                a.interval > 86400)
                return cli_usage("jobs: --interval '%s': not a number of "
                                 "seconds from 0.1 to 86400",
                                 v);
            continue;
        }
        if (cli_opt(&cli_cmd_jobs, argc, argv, &i, &exit_now)) {
            if (exit_now >= 0)
                return exit_now;
            continue;
        }
        if (s[0] == '-' && s[1])
            return cli_usage("jobs: unknown option '%s'", s);
        if (a.npatterns == MAX_PATTERNS)
            return cli_usage("jobs: at most %d patterns", MAX_PATTERNS);
        a.patterns[a.npatterns++] = s;
    }
    /* blocked before the node's threads exist: they inherit the mask */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    if (a.watch)
        pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    if ((st = cli_join()) != CLI_OK)
        return st;
    if (a.watch)
        st = watch(&a, &m, &sigs);
    else if ((st = fetch(&l)) == CLI_OK) {
        if (!mem_update(&m, l))
            st = cli_fail("out of memory");
        else
            st = second_sample(&a, &m, &l);
    }
    cli_leave();
    if (!a.watch && st == CLI_OK)
        st = show(&a, l, &m);
    list_free(&l);
    free(m.v);
    return st;
}

const cli_cmd cli_cmd_jobs = {
    .name = "jobs",
    .run = jobs,
    .args = "[PATTERN...] [--watch [--interval S]]",
    .summary = "the compute nodes and their jobs (exit 3: none)",
    .help =
        "\nOne row per compute node (picos-node --compute) whose name "
        "matches a PATTERN\n(a shell glob; default: all), from the statuses "
        "the registry keeps: NAME,\nSTATE (up, suspended, DOWN), CPUS (it "
        "may run), RESERVED (by computations),\nSESSIONS (computations "
        "open), WORKERS (busy/up), QUEUED (jobs waiting for a\nworker), "
        "DONE and FAILED (jobs ended, total), LOST (workers that died), "
        "JOBS/S\n(from two samples of the node: the command waits for its "
        "next status, about\none status interval; \"-\" when none came), "
        "AGE (of the status).\n\n"
        "  --watch        print the table again every interval, until "
        "Ctrl-C\n"
        "  --interval S   seconds between refreshes (default 2)\n"
        "  --json         an array of objects (docs/cli.md); with --watch "
        "one array per\n                 line\n",
};
