/* apps/picos/status.c — `picos status`: the state of each registry.
 *
 * One row per endpoint of --registry (in the order given), each asked
 * with pc_registry_status(endpoint): its name and node, ok or recovering
 * (members of its log not yet confirmed after a restart), since when, how
 * many nodes and names, how big its log is, where it keeps it. With
 * several registries the command joins the first that answers and asks
 * each, the others again and again until --timeout (they are joined in
 * the background); one that still does not answer gets a row with its
 * state and one line on stderr, and the exit status is CLI_FAILED, so
 * `picos status` in a script means "every registry is up".
 *
 * Then the latest status of each node (pc_cluster_nodes_status(), from
 * the registry the CLI joined: the first of the list that answers): a
 * short table after the registries' (topview.c), and for --json the
 * NodeStatusList in the proto3 JSON mapping under the key "nodes" of that
 * registry's object — through pbjson.c and the RpsSchema that
 * services/rps_schema.c builds from the compiled descriptor, so the JSON
 * follows proto/status.proto without a second mapping written by hand.
 * Node ids in it are "0x" + 16 hex digits, as everywhere in the CLI's
 * JSON, not proto3's decimal strings. The CLI's own nodes are left out,
 * as `ls nodes` does.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "picos/msg.h"
#include "picos/node.h"
#include "picos/registry.h"

#include "cli.h"
#include "pbjson.h"
#include "rps_int.h"
#include "topview.h"

#define MAX_REGISTRIES 32

typedef struct row {
    const char *ep;
    pc_err rc;
    pc_registry_info info;
} row;

static const char *
state(const row *r)
{
    if (r->rc == PC_OK)
        return r->info.recovering ? "recovering" : "ok";
    if (r->rc == PC_ETIMEDOUT)
        return "timed out";
    if (r->rc == PC_EUNREACH)
        return "unreachable";
    return pc_err_name(r->rc);
}

/* ---- the nodes' statuses ------------------------------------------------------------ */

#define LIST_TYPE "picos.v1.NodeStatusList"

/* o[key], a fixed64 as proto3 JSON gives it (a decimal string), as
 * cli_hex() prints ids. */
static void
hexify(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    char id[24];

    if (s) {
        uint64_t v = strtoull(s, NULL, 10);
        json_object_set_new(o, key, json_string(cli_hex(v, id, sizeof id)));
    }
}

/* The entries of NodeStatusList m as a JSON array, CLI nodes left out;
 * NULL with the line in err. */
static json_t *
nodes_json(const pc_msg *m, char *err, size_t errsize)
{
    Picos__V1__RpsSchema *rs = NULL;
    pbjson_schema *schema = NULL;
    uint8_t *bytes = NULL;
    json_t *j = NULL, *nodes = NULL, *keep = NULL, *e;
    size_t len = 0, i;
    const void *data = pc_msg_data(m, &len);
    pc_err rc;

    rc = pc__rps_schema_build(&picos__v1__node_status_list__descriptor, NULL,
                              &rs);
    if (rc == PC_OK) {
        size_t n = picos__v1__rps_schema__get_packed_size(rs);
        if ((bytes = malloc(n ? n : 1))) {
            picos__v1__rps_schema__pack(rs, bytes);
            rc = pbjson_schema_load(bytes, n, &schema, err, errsize);
        } else
            rc = PC_ENOMEM;
    }
    if (rc == PC_OK)
        rc = pbjson_decode(schema, LIST_TYPE, data, len, &j, err, errsize);
    if (rc == PC_ENOMEM)
        snprintf(err, errsize, "out of memory");
    pc__rps_schema_free(&rs);
    free(bytes);
    pbjson_schema_free(&schema);
    if (rc != PC_OK)
        return NULL;
    nodes = json_object_get(j, "nodes");
    keep = json_array();
    json_array_foreach(nodes, i, e)
    {
        json_t *st = json_object_get(e, "status"), *v;
        const char *name = json_string_value(json_object_get(st, "name"));
        size_t k;

        if (!st ||
            (name && !strncmp(name, CLI_NODE_PREFIX, strlen(CLI_NODE_PREFIX))))
            continue;
        hexify(st, "node");
        hexify(st, "incarnation");
        json_array_foreach(json_object_get(st, "peers"), k, v)
            hexify(v, "node");
        json_array_foreach(json_object_get(st, "deepest"), k, v)
        {
            hexify(json_object_get(v, "task"), "node");
            hexify(json_object_get(v, "task"), "incarnation");
        }
        if (keep && json_array_append(keep, e)) {
            json_decref(keep);
            keep = NULL;
        }
    }
    json_decref(j);
    if (!keep)
        snprintf(err, errsize, "out of memory");
    return keep;
}

/* The short table of the nodes after the registries'; nothing when no
 * node reported. */
static int
print_nodes(const pc_msg *m)
{
    Picos__V1__NodeStatusList *l;
    size_t len = 0, *idx, n;
    const void *data = pc_msg_data(m, &len);
    cli_table *t = NULL;
    int st = CLI_OK;

    if (!(l = picos__v1__node_status_list__unpack(NULL, len, data)))
        return cli_fail("node statuses: the registry's answer does not "
                        "parse");
    if ((idx = calloc(l->n_nodes + 1, sizeof *idx)) &&
        (n = top_order(l, 0, idx)) > 0 &&
        (t = top_nodes_table(l, idx, n, NULL, pc_wall_us(), true))) {
        putchar('\n');
        st = cli_table_finish(t);
    } else if (!idx || (n > 0 && !t))
        st = cli_fail("out of memory");
    free(idx);
    picos__v1__node_status_list__free_unpacked(l, NULL);
    return st;
}

/* ---- output ----------------------------------------------------------------------- */

static int
print_json(const row *v, size_t n, const pc_msg *statuses)
{
    json_t *arr = json_array();
    char id[24], inc[24];
    bool nodes_done = !statuses;

    for (size_t i = 0; arr && i < n; i++) {
        const pc_registry_info *s = &v[i].info;
        json_t *o;

        if (v[i].rc == PC_OK)
            o = json_pack(
                "{s:s, s:s, s:s, s:s, s:s, s:f, s:I, s:I, s:I, "
                "s:s, s:b}",
                "endpoint", v[i].ep, "state", state(&v[i]), "name", s->name,
                "node", cli_hex(s->node, id, sizeof id), "incarnation",
                cli_hex(s->incarnation, inc, sizeof inc), "started", s->started,
                "nodes_up", (json_int_t)s->nodes_up, "names",
                (json_int_t)s->names, "log_bytes", (json_int_t)s->log_bytes,
                "data_dir", s->data_dir, "recovering", (int)s->recovering);
        else
            o = json_pack("{s:s, s:s, s:s}", "endpoint", v[i].ep, "state",
                          state(&v[i]), "error", pc_strerror(v[i].rc));
        if (o && v[i].rc == PC_OK && !nodes_done) {
            char err[PBJSON_ERR_MAX] = "";
            json_t *nodes = nodes_json(statuses, err, sizeof err);
            nodes_done = true;
            if (!nodes) {
                json_decref(o);
                json_decref(arr);
                return cli_fail("node statuses: %s", err);
            }
            json_object_set_new(o, "nodes", nodes);
        }
        if (!o || json_array_append_new(arr, o)) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return cli_json_print(arr);
}

static int
print_table(const row *v, size_t n)
{
    static const char *const head[] = {"ENDPOINT", "NAME",     "NODE ID",
                                       "STATE",    "UP SINCE", "NODES",
                                       "NAMES",    "LOG",      "DATA DIR"};
    char id[24], since[32], nodes[16], names[16], log[32];
    cli_table *t = cli_table_new(9, head);

    if (!t)
        return cli_fail("out of memory");
    for (size_t i = 0; i < n; i++) {
        const pc_registry_info *s = &v[i].info;
        bool ok = v[i].rc == PC_OK;
        const char *cells[9] = {v[i].ep, NULL, NULL, state(&v[i]), NULL,
                                NULL,    NULL, NULL, NULL};
        if (ok) {
            snprintf(nodes, sizeof nodes, "%u", (unsigned)s->nodes_up);
            snprintf(names, sizeof names, "%u", (unsigned)s->names);
            cells[1] = s->name;
            cells[2] = cli_hex(s->node, id, sizeof id);
            cells[4] = cli_time(s->started, since, sizeof since);
            cells[5] = nodes;
            cells[6] = names;
            cells[7] = cli_bytes(s->log_bytes, log, sizeof log);
            cells[8] = *s->data_dir ? s->data_dir : NULL;
        }
        if (!cli_table_row(t, cells))
            break;
    }
    return cli_table_finish(t);
}

static int
status(int argc, char **argv)
{
    char buf[4096];
    const char *eps[MAX_REGISTRIES];
    row v[MAX_REGISTRIES];
    size_t n;
    int exit_now = -1, st, failed = 0;
    double deadline;
    pc_msg *statuses = NULL;
    pc_err srv = PC_OK;

    for (int i = 1; i < argc; i++) {
        if (cli_opt(&cli_cmd_status, argc, argv, &i, &exit_now)) {
            if (exit_now >= 0)
                return exit_now;
            continue;
        }
        return cli_usage("status: unexpected argument '%s'", argv[i]);
    }
    n = cli_endpoints(buf, sizeof buf, eps, MAX_REGISTRIES);
    if (n == 0)
        return cli_usage("no registry endpoint in '%s'", cli.registries);
    if ((st = cli_join()) != CLI_OK)
        return st;
    memset(v, 0, sizeof v);
    deadline = pc_deadline(cli.timeout);
    for (size_t i = 0; i < n; i++) {
        v[i].ep = eps[i];
        /* The join returned when the first registry accepted; the others
         * are still being joined (a first connection takes about a
         * second): PC_EUNREACH until then, so ask again until the
         * deadline. */
        while ((v[i].rc = pc_registry_status(eps[i], &v[i].info,
                                             pc_deadline_left(deadline))) ==
                   PC_EUNREACH &&
               pc_deadline_left(deadline) > 0)
            usleep(20000);
    }
    for (size_t i = 0; i < n; i++)
        if (v[i].rc == PC_OK) { /* one answered: ask it for the nodes */
            srv = pc_cluster_nodes_status(cli.timeout, &statuses);
            break;
        }
    cli_leave();
    for (size_t i = 0; i < n; i++)
        if (v[i].rc != PC_OK) {
            failed++;
            if (v[i].rc == PC_EUNREACH)
                cli_fail("registry %s: unreachable (is picos-registry "
                         "running?)",
                         v[i].ep);
            else if (v[i].rc == PC_ETIMEDOUT)
                cli_fail("registry %s: no answer within %g s", v[i].ep,
                         cli.timeout);
            else
                cli_fail("registry %s: %s", v[i].ep, pc_strerror(v[i].rc));
        }
    if (srv != PC_OK) {
        failed++;
        cli_fail_rc("asking node statuses", srv);
    }
    st = cli.json ? print_json(v, n, statuses) : print_table(v, n);
    if (st == CLI_OK && statuses && !cli.json)
        st = print_nodes(statuses);
    pc_msg_free(&statuses);
    return st != CLI_OK ? st : failed ? CLI_FAILED : CLI_OK;
}

const cli_cmd cli_cmd_status = {
    .name = "status",
    .run = status,
    .args = "",
    .summary = "the state of each registry (exit 1 when one does not answer)",
    .help =
        "\nOne row per --registry endpoint: ENDPOINT, NAME, NODE ID, STATE "
        "(ok,\nrecovering, unreachable, timed out), UP SINCE, NODES (up), "
        "NAMES, LOG\n(bytes of its on-disk log), DATA DIR. Then one row per "
        "node that reports\nits status: NAME, STATE, CPU, MEM, RSS, TASKS, "
        "AGE, NODE ID, NOTE.\n--json: an array of objects, the first "
        "registry that answered with\n\"nodes\": its NodeStatusEntry "
        "list (keys: docs/cli.md).\n",
};
