/* apps/picos/reload.c — `picos reload NODE [SERVICE]`: a picos-node loads
 * its service libraries again without a restart (docs/node.md).
 *
 * Every picos-node registers its control task cluster-wide as the task
 * "picos-node/NAME". The command joins, locates it (timeout 0: a node
 * that is not there is "not found" at once, exit 3), sends it a
 * NodeReload (proto/node.proto) and waits up to --timeout for the
 * NodeReloaded, watching the control task so that a node that goes away
 * meanwhile ends the wait. The exchange runs in a task of the CLI's node
 * (a reply needs a mailbox); main joins it, leaves, then prints one row
 * per service that changed (updated, added, closed) and, when a library
 * failed, the node's one line: exit 1, and 3 for a SERVICE the node does
 * not have.
 */
#include <stdlib.h>
#include <string.h>

#include "picos/monitor.h"
#include "picos/node.h"
#include "picos/registry.h"
#include "picos/task.h"

#include "cli.h"
#include "node.pb-c.h"

#define T_RELOAD "picos.v1.NodeReload"
#define T_RELOADED "picos.v1.NodeReloaded"

typedef struct exchange {
    const char *node, *target;
    int st;         /* CLI_OK ..., or -1: got the reply */
    char err[1024]; /* the one line when st is not -1 */
    Picos__V1__NodeReloaded *reply;
} exchange;

static int
fail_into(exchange *x, int st, const char *what, pc_err rc)
{
    x->st = st;
    snprintf(x->err, sizeof x->err, "%s: %s", what, pc_strerror(rc));
    return st;
}

static pc_msg *
ask(void *arg)
{
    exchange *x = arg;
    Picos__V1__NodeReload rq = PICOS__V1__NODE_RELOAD__INIT;
    char name[PC_NAME_MAX + 1];
    uint8_t buf[PC_NAME_MAX + 16];
    double deadline = pc_deadline(cli.timeout);
    pc_msg *m = NULL;
    pc_ref ref;
    pc_err rc;

    snprintf(name, sizeof name, "picos-node/%s", x->node);
    rc = pc_locate(PC_NAME_TASK, name, 0, &ref);
    if (rc == PC_ENOENT) {
        x->st = CLI_NOTFOUND;
        snprintf(x->err, sizeof x->err,
                 "no picos-node named '%s' in the cluster (picos ls nodes)",
                 x->node);
        return NULL;
    }
    if (rc != PC_OK) {
        fail_into(x, CLI_FAILED, "locating the node", rc);
        return NULL;
    }
    rq.target = (char *)(x->target ? x->target : "");
    picos__v1__node_reload__pack(&rq, buf);
    pc_monitor(pc_self(), ref);
    if ((rc = pc_msg_new(&m, T_RELOAD, buf,
                         picos__v1__node_reload__get_packed_size(&rq))) !=
            PC_OK ||
        (rc = pc_send(ref, &m)) != PC_OK) {
        pc_msg_free(&m);
        fail_into(x, CLI_FAILED, "asking the node", rc);
        return NULL;
    }
    for (;;) {
        pc_down d;
        if (pc_recv(&m, pc_deadline_left(deadline)) != PC_OK) {
            x->st = CLI_FAILED;
            snprintf(x->err, sizeof x->err,
                     "node %s: no answer within %g s (a library's init may "
                     "still be running there)",
                     x->node, cli.timeout);
            return NULL;
        }
        if (pc_msg_is(m, T_RELOADED)) {
            size_t len = 0;
            const uint8_t *d8 = pc_msg_data(m, &len);
            if (!(x->reply = picos__v1__node_reloaded__unpack(NULL, len, d8))) {
                x->st = CLI_FAILED;
                snprintf(x->err, sizeof x->err,
                         "node %s: an answer that does not decode", x->node);
            } else
                x->st = -1;
            pc_msg_free(&m);
            return NULL;
        }
        if (pc_down_parse(m, &d) == PC_OK && pc_ref_eq(d.who, ref)) {
            pc_msg_free(&m);
            x->st = CLI_FAILED;
            snprintf(x->err, sizeof x->err,
                     "node %s went away before it answered", x->node);
            return NULL;
        }
        pc_msg_free(&m); /* a late registry reply, ... */
    }
}

static const char *
kind_str(Picos__V1__NodeChangeKind k)
{
    switch (k) {
    case PICOS__V1__NODE_CHANGE_KIND__NODE_SERVICE_UPDATED:
        return "updated";
    case PICOS__V1__NODE_CHANGE_KIND__NODE_SERVICE_ADDED:
        return "added";
    case PICOS__V1__NODE_CHANGE_KIND__NODE_SERVICE_CLOSED:
        return "closed";
    default:
        return "?";
    }
}

static char *
version(uint32_t v, char *buf, size_t size)
{
    if (v)
        snprintf(buf, size, "v%u", (unsigned)v);
    else
        snprintf(buf, size, "-");
    return buf;
}

static int
print_json(const Picos__V1__NodeReloaded *r)
{
    json_t *arr = json_array(), *o;

    for (size_t i = 0; arr && i < r->n_changes; i++) {
        const Picos__V1__NodeChange *c = r->changes[i];
        o = json_pack("{s:s, s:s, s:s, s:I, s:I}", "service", c->service,
                      "library", c->library, "change", kind_str(c->kind),
                      "old_version", (json_int_t)c->old_version, "version",
                      (json_int_t)c->version);
        if (!o || json_array_append_new(arr, o)) {
            json_decref(arr);
            arr = NULL;
        }
    }
    o = arr ? json_pack("{s:s, s:o, s:s}", "node", r->node, "changes", arr,
                        "error", r->error)
            : NULL;
    return cli_json_print(o);
}

static int
print_table(const Picos__V1__NodeReloaded *r)
{
    static const char *const head[] = {"SERVICE", "CHANGE", "VERSION",
                                       "LIBRARY"};
    cli_table *t;

    if (!r->n_changes)
        return CLI_OK;
    if (!(t = cli_table_new(4, head)))
        return cli_fail("out of memory");
    for (size_t i = 0; i < r->n_changes; i++) {
        const Picos__V1__NodeChange *c = r->changes[i];
        char a[16], b[16], v[40];
        const char *cells[4] = {c->service, kind_str(c->kind), v, c->library};
        if (c->kind == PICOS__V1__NODE_CHANGE_KIND__NODE_SERVICE_UPDATED)
            snprintf(v, sizeof v, "%s -> %s",
                     version(c->old_version, a, sizeof a),
                     version(c->version, b, sizeof b));
        else if (c->kind == PICOS__V1__NODE_CHANGE_KIND__NODE_SERVICE_ADDED)
            version(c->version, v, sizeof v);
        else
            version(c->old_version, v, sizeof v);
        if (!cli_table_row(t, cells))
            break;
    }
    return cli_table_finish(t);
}

static int
reload(int argc, char **argv)
{
    exchange x = {.st = CLI_FAILED};
    pc_spawn_opts so = {.flags = PC_TASK_JOINABLE};
    int exit_now = -1, st;
    pc_ref task;
    pc_err rc;

    for (int i = 1; i < argc; i++) {
        if (cli_opt(&cli_cmd_reload, argc, argv, &i, &exit_now)) {
            if (exit_now >= 0)
                return exit_now;
            continue;
        }
        if (argv[i][0] == '-')
            return cli_usage("reload: unknown option '%s'", argv[i]);
        if (!x.node)
            x.node = argv[i];
        else if (!x.target)
            x.target = argv[i];
        else
            return cli_usage("reload: unexpected argument '%s'", argv[i]);
    }
    if (!x.node || !*x.node)
        return cli_usage("reload: NODE missing");
    if (strlen(x.node) + sizeof "picos-node/" > PC_NAME_MAX + 1)
        return cli_usage("reload: node name too long");
    if ((st = cli_join()) != CLI_OK)
        return st;
    if ((rc = pc_spawn(ask, &x, &so, &task)) == PC_OK)
        (void)pc_task_join(task, -1, NULL);
    else
        fail_into(&x, CLI_FAILED, "starting a task", rc);
    cli_leave();
    if (x.st == CLI_NOTFOUND) {
        fprintf(stderr, "picos: %s\n", x.err);
        return CLI_NOTFOUND;
    }
    if (x.st != -1)
        return cli_fail("%s", x.err);
    st = cli.json ? print_json(x.reply) : print_table(x.reply);
    if (st == CLI_OK) {
        switch (x.reply->status) {
        case PICOS__V1__NODE_RELOAD_STATUS__NODE_RELOAD_OK:
            break;
        case PICOS__V1__NODE_RELOAD_STATUS__NODE_RELOAD_NOT_FOUND:
            fprintf(stderr, "picos: %s\n", x.reply->error);
            st = CLI_NOTFOUND;
            break;
        default:
            st = cli_fail("reload on node %s: %s", x.reply->node,
                          x.reply->error);
        }
    }
    picos__v1__node_reloaded__free_unpacked(x.reply, NULL);
    return st;
}

const cli_cmd cli_cmd_reload = {
    .name = "reload",
    .run = reload,
    .args = "NODE [SERVICE]",
    .summary = "reload a picos-node's service libraries without a restart",
    .help = "\nAsks picos-node NODE (its --name) to load its libraries again "
            "(only the\none holding SERVICE, a service's or a library's name, "
            "when given): new\ncalls run the new code, calls in flight finish "
            "on the old. Prints one row\nper service that changed: SERVICE, "
            "CHANGE (updated, added, closed),\nVERSION, LIBRARY. A library "
            "that fails to load keeps its old code: exit 1\nwith the node's "
            "line. Exit 3: no such node, or no such SERVICE on it.\n--timeout "
            "also bounds the wait for the node's answer.\n",
};
