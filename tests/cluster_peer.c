/* tests/cluster_peer.c — a node process for the cluster tests.
 *
 *     cluster_peer --registries EPS --secret-file F [--heartbeat S]
 *                  [--timeout S]
 *
 * Starts a node, registers its "ctl" task on the node only (before it
 * joins, so no two peers claim it cluster-wide), joins the registries with
 * pc_cluster_join(), prints "READY <endpoint> <node id in hex>" and runs
 * until its parent dies or it is killed. The ctl task answers each
 * command (a string message) with an "rc" message: an int32 pc_err then a
 * pc_ref (node, id):
 *   "reg NAME"        pc_name_register(task, NAME, ctl, 5 s)
 *   "pcreg NAME"      pc_register(NAME, ctl) (its cluster part: the hook)
 *   "unreg NAME"      pc_name_unregister(task, NAME, 5 s)
 *   "later S NAME"    answers at once; a task registers NAME for itself
 *                     (pc_name_register) S seconds later and stays
 *   "locate NAME S"   pc_locate(task, NAME, S)
 * Errors go to stderr as one line, exit status 2.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "picos/picos.h"
#include "picos/registry.h"

#include "tsan_supp.h"

static void
die(const char *what, pc_err rc)
{
    fprintf(stderr, "cluster_peer: %s: %s\n", what, pc_strerror(rc));
    exit(2);
}

static void
answer(pc_ref to, pc_err rc, pc_ref ref)
{
    uint8_t buf[4 + 16];
    int32_t v = rc;
    memcpy(buf, &v, 4);
    memcpy(buf + 4, &ref.node, 8);
    memcpy(buf + 12, &ref.id, 8);
    pc_send_data(to, "rc", buf, sizeof buf);
}

static pc_msg *
later(void *arg)
{
    char *cmd = arg; /* "S NAME" */
    char name[PC_NAME_MAX + 1];
    double s = 0;

    if (sscanf(cmd, "%lf %255s", &s, name) == 2) {
        pc_sleep(s);
        pc_err rc = pc_name_register(PC_NAME_TASK, name, pc_self(), 5.0);
        if (rc != PC_OK)
            fprintf(stderr, "cluster_peer: later %s: %s\n", name,
                    pc_strerror(rc));
        for (pc_msg *m = NULL;; pc_msg_free(&m)) /* hold it */
            pc_recv(&m, -1);
    }
    free(cmd);
    return NULL;
}

static pc_msg *
ctl(void *arg)
{
    (void)arg;
    for (;;) {
        pc_msg *m = NULL;
        const char *s;
        char name[PC_NAME_MAX + 1];
        double t;
        pc_ref r = PC_REF_NIL;
        pc_err rc = PC_EINVAL;

        if (pc_recv(&m, -1) != PC_OK)
            continue;
        s = pc_msg_str(m);
        if (sscanf(s, "reg %255s", name) == 1)
            rc = pc_name_register(PC_NAME_TASK, name, pc_self(), 5.0);
        else if (sscanf(s, "pcreg %255s", name) == 1)
            rc = pc_register(name, pc_self());
        else if (sscanf(s, "unreg %255s", name) == 1)
            rc = pc_name_unregister(PC_NAME_TASK, name, 5.0);
        else if (!strncmp(s, "later ", 6)) {
            pc_spawn_opts o = {.flags = PC_TASK_DAEMON};
            char *cmd = strdup(s + 6);
            rc = cmd ? pc_spawn(later, cmd, &o, NULL) : PC_ENOMEM;
        } else if (sscanf(s, "locate %255s %lf", name, &t) == 2)
            rc = pc_locate(PC_NAME_TASK, name, t, &r);
        answer(pc_msg_sender(m), rc, r);
        pc_msg_free(&m);
    }
    return NULL;
}

int
main(int argc, char **argv)
{
    pc_cluster_opts co = {0};
    pc_node_opts o = {.workers = 2};
    char ep[256];
    pc_ref ref;
    pc_err rc;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--registries"))
            co.registries = v;
        else if (!strcmp(a, "--secret-file"))
            co.net.secret_file = v;
        else if (!strcmp(a, "--heartbeat"))
            co.net.heartbeat = atof(v);
        else if (!strcmp(a, "--timeout"))
            co.net.timeout = atof(v);
        else {
            fprintf(stderr, "cluster_peer: unknown option %s\n", a);
            return 2;
        }
    }
    if ((rc = pc_node_start(&o)) != PC_OK)
        die("pc_node_start", rc);
    if ((rc = pc_spawn(ctl, NULL, NULL, &ref)) != PC_OK ||
        (rc = pc_register("ctl", ref)) != PC_OK)
        die("ctl", rc);
    co.join_timeout = 20;
    if ((rc = pc_cluster_join(&co)) != PC_OK)
        die("pc_cluster_join", rc);
    if ((rc = pc_net_endpoints(ep, NULL, sizeof ep)) != PC_OK)
        die("pc_net_endpoints", rc);
    printf("READY %s %" PRIx64 "\n", ep, pc_node_id());
    fflush(stdout);
    pc_node_run();
    return 0;
}
