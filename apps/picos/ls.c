/* apps/picos/ls.c — `picos ls [nodes|names|tasks|services|channels]
 * [--all] [PATTERN...]`: what the registry knows.
 *
 * One list call to the first registry that answers (pc_cluster_nodes or
 * pc_cluster_names), then the node is stopped and the result printed:
 * sorted (nodes by name, names by kind and name) so that two runs against
 * the same state print the same lines. PATTERNs (fnmatch globs) keep the
 * rows whose name — or, for nodes, node id — matches one; a pattern that
 * matches nothing makes the exit status CLI_NOTFOUND, so scripts can ask
 * "is service X registered?" with `picos ls services X`.
 *
 * The CLI joins as a member to ask, so it is in the list itself, as are
 * other `picos` runs that have not yet left: nodes named CLI_NODE_PREFIX
 * are hidden unless --all (and this run's own node always is).
 */
#include <fnmatch.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "picos/node.h"
#include "picos/registry.h"

#include "cli.h"

#define MAX_PATTERNS 64

typedef struct ls_args {
    const char *what; /* "nodes", "names", "tasks", ... */
    int kind;         /* names: the kind, or -1 for every kind */
    bool all;
    const char *pat[MAX_PATTERNS];
    bool hit[MAX_PATTERNS];
    size_t npat;
} ls_args;

/* Whether `a` or `b` (may be NULL) matches a pattern; marks the patterns
 * that matched. Everything matches when there are none. */
static bool
wanted(ls_args *a, const char *s1, const char *s2)
{
    bool any = false;

    if (!a->npat)
        return true;
    for (size_t k = 0; k < a->npat; k++)
        if (!fnmatch(a->pat[k], s1, 0) || (s2 && !fnmatch(a->pat[k], s2, 0))) {
            a->hit[k] = true;
            any = true;
        }
    return any;
}

/* CLI_NOTFOUND with one line when a pattern matched nothing. */
static int
misses(const ls_args *a, int st)
{
    size_t miss = 0, first = 0;

    if (st != CLI_OK)
        return st;
    for (size_t k = a->npat; k-- > 0;)
        if (!a->hit[k]) {
            miss++;
            first = k;
        }
    if (!miss)
        return CLI_OK;
    fprintf(stderr, "picos: no %s matching '%s'%s\n", a->what, a->pat[first],
            miss > 1 ? " (nor some other patterns)" : "");
    return CLI_NOTFOUND;
}

/* ---- nodes ------------------------------------------------------------------------ */

static int
node_cmp(const void *x, const void *y)
{
    const pc_node_info *a = x, *b = y;
    int c = strcmp(a->name, b->name);

    if (c)
        return c;
    return a->node < b->node ? -1 : a->node > b->node;
}

static int
print_nodes(const pc_node_info *v, size_t n)
{
    static const char *const head[] = {"NAME", "NODE ID",  "HOST",
                                       "PID",  "ENDPOINT", "UP SINCE"};
    char id[24], inc[24], pid[16], since[32];
    cli_table *t;

    if (cli.json) {
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < n; i++) {
            json_t *o = json_pack(
                "{s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:f, s:b}", "name",
                v[i].name, "node", cli_hex(v[i].node, id, sizeof id),
                "incarnation", cli_hex(v[i].incarnation, inc, sizeof inc),
                "host", v[i].host, "pid", (json_int_t)v[i].pid, "endpoint",
                v[i].endpoint, "pub_endpoint", v[i].pub_endpoint, "joined",
                v[i].joined, "up", (int)v[i].up);
            if (!o || json_array_append_new(arr, o)) {
                json_decref(arr);
                arr = NULL;
            }
        }
        return cli_json_print(arr);
    }
    if (!(t = cli_table_new(6, head)))
        return cli_fail("out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *row[6] = {
            v[i].name,
            cli_hex(v[i].node, id, sizeof id),
            v[i].host,
            pid,
            *v[i].endpoint ? v[i].endpoint : "-",
            v[i].up ? cli_time(v[i].joined, since, sizeof since) : "(not up)"};
        snprintf(pid, sizeof pid, "%" PRIu32, v[i].pid);
        if (!cli_table_row(t, row))
            break;
    }
    return cli_table_finish(t);
}

static int
ls_nodes(ls_args *a)
{
    pc_node_info *v = NULL;
    size_t n = 0, keep = 0;
    uint64_t self = pc_node_id();
    char id[24];
    pc_err rc = pc_cluster_nodes(&v, &n, cli.timeout);
    int st;

    cli_leave();
    if (rc != PC_OK)
        return cli_fail_rc("listing nodes", rc);
    for (size_t i = 0; i < n; i++) {
        if (v[i].node == self ||
            (!a->all &&
             !strncmp(v[i].name, CLI_NODE_PREFIX, strlen(CLI_NODE_PREFIX))))
            continue;
        if (wanted(a, v[i].name, cli_hex(v[i].node, id, sizeof id)))
            v[keep++] = v[i];
    }
    qsort(v, keep, sizeof *v, node_cmp);
    st = print_nodes(v, keep);
    free(v);
    return misses(a, st);
}

/* ---- names ------------------------------------------------------------------------ */

static int
name_cmp(const void *x, const void *y)
{
    const pc_name_info *a = x, *b = y;

    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    return strcmp(a->name, b->name);
}

static int
print_names(const pc_name_info *v, size_t n)
{
    static const char *const head[] = {"KIND", "NAME", "REF", "NODE",
                                       "ENDPOINT"};
    char ref[48], id[24];
    cli_table *t;

    if (cli.json) {
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < n; i++) {
            json_t *o =
                json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:f}", "kind",
                          pc_name_kind_str(v[i].kind), "name", v[i].name, "ref",
                          pc_ref_str(v[i].ref, ref, sizeof ref), "node",
                          cli_hex(v[i].ref.node, id, sizeof id), "node_name",
                          v[i].node_name, "endpoint", v[i].endpoint, "claimed",
                          v[i].claimed);
            if (!o || json_array_append_new(arr, o)) {
                json_decref(arr);
                arr = NULL;
            }
        }
        return cli_json_print(arr);
    }
    if (!(t = cli_table_new(5, head)))
        return cli_fail("out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *row[5] = {pc_name_kind_str(v[i].kind), v[i].name,
                              pc_ref_str(v[i].ref, ref, sizeof ref),
                              *v[i].node_name
                                  ? v[i].node_name
                                  : cli_hex(v[i].ref.node, id, sizeof id),
                              *v[i].endpoint ? v[i].endpoint : "-"};
        if (!cli_table_row(t, row))
            break;
    }
    return cli_table_finish(t);
}

static int
ls_names(ls_args *a)
{
    pc_name_info *v = NULL;
    size_t n = 0, keep = 0;
    pc_err rc = pc_cluster_names(a->kind, &v, &n, cli.timeout);
    int st;

    cli_leave();
    if (rc != PC_OK)
        return cli_fail_rc("listing names", rc);
    for (size_t i = 0; i < n; i++)
        if (wanted(a, v[i].name, NULL))
            v[keep++] = v[i];
    qsort(v, keep, sizeof *v, name_cmp);
    st = print_names(v, keep);
    free(v);
    return misses(a, st);
}

/* ---- the command ------------------------------------------------------------------ */

static const struct {
    const char *word;
    int kind; /* -2: nodes */
} lists[] = {
    {"nodes", -2},
    {"names", -1},
    {"tasks", PC_NAME_TASK},
    {"services", PC_NAME_SERVICE},
    {"channels", PC_NAME_CHANNEL},
};

static int
ls(int argc, char **argv)
{
    ls_args a = {.what = "nodes", .kind = -2};
    bool have_what = false;
    int exit_now = -1, st;

    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        size_t k;

        if (!strcmp(s, "--all") || !strcmp(s, "-a")) {
            a.all = true;
            continue;
        }
        if (cli_opt(&cli_cmd_ls, argc, argv, &i, &exit_now)) {
            if (exit_now >= 0)
                return exit_now;
            continue;
        }
        if (s[0] == '-' && s[1])
            return cli_usage("ls: unknown option '%s'", s);
        if (!have_what) {
            have_what = true;
            for (k = 0; k < sizeof lists / sizeof *lists; k++)
                if (!strcmp(s, lists[k].word))
                    break;
            if (k == sizeof lists / sizeof *lists)
                return cli_usage("ls: unknown list '%s' (nodes, names, "
                                 "tasks, services, channels)",
                                 s);
            a.what = lists[k].word;
            a.kind = lists[k].kind;
            continue;
        }
        if (a.npat == MAX_PATTERNS)
            return cli_usage("ls: more than %d patterns", MAX_PATTERNS);
        a.pat[a.npat++] = s;
    }
    if ((st = cli_join()) != CLI_OK)
        return st;
    return a.kind == -2 ? ls_nodes(&a) : ls_names(&a);
}

const cli_cmd cli_cmd_ls = {
    .name = "ls",
    .run = ls,
    .args = "[nodes|names|tasks|services|channels] [--all] [PATTERN...]",
    .summary = "list the cluster's nodes or names (default: nodes)",
    .help =
        "\n  nodes     members: NAME, NODE ID, HOST, PID, ENDPOINT, UP SINCE\n"
        "  names     names of every kind: KIND, NAME, REF, NODE, ENDPOINT\n"
        "  tasks, services, channels   names of that kind only\n"
        "  PATTERN   glob(s) on the name (nodes: or the node id); exit 3\n"
        "            when one matches nothing\n"
        "  -a, --all nodes: also other picos CLI runs (hidden by default)\n"
        "  --json    an array of objects (keys: docs/cli.md)\n",
};
