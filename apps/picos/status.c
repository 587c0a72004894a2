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
 */
#include <string.h>
#include <unistd.h>

#include "picos/node.h"
#include "picos/registry.h"

#include "cli.h"

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

static int
print_json(const row *v, size_t n)
{
    json_t *arr = json_array();
    char id[24], inc[24];

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
    st = cli.json ? print_json(v, n) : print_table(v, n);
    return st != CLI_OK ? st : failed ? CLI_FAILED : CLI_OK;
}

const cli_cmd cli_cmd_status = {
    .name = "status",
    .run = status,
    .args = "",
    .summary = "the state of each registry (exit 1 when one does not answer)",
    .help = "\nOne row per --registry endpoint: ENDPOINT, NAME, NODE ID, STATE "
            "(ok,\nrecovering, unreachable, timed out), UP SINCE, NODES (up), "
            "NAMES, LOG\n(bytes of its on-disk log), DATA DIR. --json: an "
            "array of objects\n(keys: docs/cli.md).\n",
};
