/* tests/reg_peer.c — a node that joins a registry with the raw protocol,
 * for test_regserver (started with netutil.h's nt_start()).
 *
 *     reg_peer --registry EP --secret-file F [--names N] [--prefix P]
 *              [--heartbeat S] [--timeout S]
 *
 * Starts a node, the transport, listens on 127.0.0.1, joins the registry
 * with an agent task that holds the names P0 .. P(N-1), prints "READY
 * <endpoint> <node id in hex>" once the JOIN was answered OK, and then
 * reads its mailbox forever (events included) until killed. Errors: one
 * line on stderr, exit 2.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "picos/net.h"
#include "picos/picos.h"

#include "regproto.h"
#include "tsan_supp.h" /* libzmq is not instrumented */

static const char *reg_ep, *prefix = "p";
static size_t nnames;
static char my_ep[256];

static pc_msg *
agent(void *arg)
{
    Picos__V1__RegReply *r;
    pc_ref reg;
    pc_err rc;
    (void)arg;

    if ((rc = rp_find(reg_ep, 20.0, &reg)) != PC_OK) {
        fprintf(stderr, "reg_peer: registry %s: %s\n", reg_ep, pc_strerror(rc));
        exit(2);
    }
    r = rp_join(reg, "reg_peer", my_ep, prefix, nnames, 20.0);
    if (!r || r->status != PICOS__V1__REG_STATUS__OK) {
        fprintf(stderr, "reg_peer: JOIN failed: %s\n",
                r ? r->text : "no reply");
        exit(2);
    }
    picos__v1__reg_reply__free_unpacked(r, NULL);
    printf("READY %s %016" PRIx64 "\n", my_ep, pc_node_id());
    fflush(stdout);
    for (;;) {
        pc_msg *m = NULL;
        if (pc_recv(&m, -1) != PC_OK)
            return NULL;
        pc_msg_free(&m);
    }
}

int
main(int argc, char **argv)
{
    pc_net_opts no = {0};
    pc_node_opts o = {.workers = 1};
    pc_err rc;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--registry"))
            reg_ep = v;
        else if (!strcmp(a, "--secret-file"))
            no.secret_file = v;
        else if (!strcmp(a, "--names"))
            nnames = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--prefix"))
            prefix = v;
        else if (!strcmp(a, "--heartbeat"))
            no.heartbeat = atof(v);
        else if (!strcmp(a, "--timeout"))
            no.timeout = atof(v);
        else {
            fprintf(stderr, "reg_peer: unknown option %s\n", a);
            return 2;
        }
    }
    if (!reg_ep) {
        fprintf(stderr, "reg_peer: --registry is required\n");
        return 2;
    }
    if ((rc = pc_node_start(&o)) != PC_OK ||
        (rc = pc_net_start(&no)) != PC_OK ||
        (rc = pc_node_listen("tcp://127.0.0.1:0", my_ep, sizeof my_ep)) !=
            PC_OK ||
        (rc = pc_spawn(agent, NULL, NULL, NULL)) != PC_OK) {
        fprintf(stderr, "reg_peer: start: %s\n", pc_strerror(rc));
        return 2;
    }
    pc_node_run();
    return 0;
}
