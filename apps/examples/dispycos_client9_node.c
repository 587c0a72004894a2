/* dispycos_client9_node.c — data loaded once per node, in memory, shared
 * by every worker (pycos's dispycos_client9_node.py).
 *
 *     picos-dispycos-client9-node [--registry EP] [--secret-file F]
 *                                 [--timeout S] [--nodes N]
 *                                 [--library node_data.so]
 *
 * The client sends the computation compute/node_data.c with a data file,
 * words.txt. On each node, the computation's node_setup() loads the file
 * into memory once, in the setup process, before the workers are forked
 * from it; every job then reads the data from memory. The client waits
 * until N nodes (default 1) have their workers up (the "node initialized"
 * status events), runs 3 jobs per worker and checks what they report
 * (compute/node_data.c): on each node one setup process loaded the data —
 * every job there names the same setup pid, and none ran in it — and
 * every worker of every node sees the same bytes:
 *
 *     job 5 on node2/w1 (pid 4242): word 'echo', data loaded by pid 4230
 *     node node2: 2 workers, data loaded once, by setup process 4230
 *     same data on all 4 workers of 2 nodes: 165 bytes, sum 70431284
 *
 * Exit status 0 when all of that holds, 1 otherwise, 2 bad options.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/compute.h"

#include "cluster_ex.h"

static ex_cluster x = {
    .prog = "picos-dispycos-client9-node",
    .usage = "[options]: node_setup's data shared by every worker",
    .options = "  --nodes N           nodes to wait for (default 1)\n"
               "  --library FILE      the computation (default node_data.so)\n",
};
static int want_nodes = 1;
static const char *library = EX_NODE_DATA_SO;
static int status = 1;

#define MAX_NODES 16

typedef struct node {
    char name[64];
    long setup_pid; /* -1: more than one */
    int workers;    /* seen */
    unsigned seen;  /* bit per worker index */
} node;

/* Wait for `want` "node initialized" events; the workers they bring. */
static int
nodes_ready(int want)
{
    pc_compute_event e;
    pc_msg *m = NULL;
    int up = 0, workers = 0;

    while (up < want &&
           pc_recv_type(PC_MSG_COMPUTE_STATUS, &m, x.timeout) == PC_OK) {
        if (pc_compute_event_parse(m, &e) == PC_OK &&
            e.kind == PC_CE_NODE_INITIALIZED)
            up++, workers += e.n;
        pc_msg_free(&m);
    }
    return up >= want ? workers : 0;
}

static pc_msg *
client(void *arg)
{
    const char *files[] = {EX_WORDS_TXT, NULL};
    pc_compute_opts o = {
        .library = library, .files = files, .status = pc_self()};
    pc_compute *c = NULL;
    node nodes[MAX_NODES];
    int nn = 0, jobs, bad = 0, workers = 0;
    char sum[16] = "", first[16] = "";
    size_t bytes = 0;

    (void)arg;
    if (pc_compute_open(&o, x.timeout, &c) != PC_OK) {
        ex_say(&x, "opening the computation: %s", pc_compute_error(NULL));
        return NULL;
    }
    if ((workers = nodes_ready(want_nodes)) == 0) {
        ex_say(&x, "%d nodes were not ready within %g s", want_nodes,
               x.timeout);
        pc_compute_close(&c, 1.0);
        return NULL;
    }
    jobs = 3 * workers;
    workers = 0;
    for (int i = 0; i < jobs; i++) {
        char in[16];
        pc_job_spec j = {.fn = "lookup", .input = in};
        j.len = (size_t)snprintf(in, sizeof in, "%d", i);
        pc_compute_submit(c, &j, 1, NULL);
    }
    for (int i = 0; i < jobs; i++) {
        pc_job_result *r = NULL;
        long setup = 0, pid = 0;
        char word[64] = "";
        int k = 0;

        if (pc_compute_wait_any(c, -1, &r) != PC_OK)
            break;
        if (r->rc != PC_OK ||
            sscanf(r->data,
                   "setup_pid=%ld worker_pid=%ld bytes=%zu sum=%15s "
                   "word=%63s",
                   &setup, &pid, &bytes, sum, word) != 5) {
            printf("job %llu on %s: %s %s\n", (unsigned long long)r->id,
                   r->node, pc_job_why_str(r->why), r->error);
            bad++;
            pc_job_result_free(&r);
            continue;
        }
        printf("job %llu on %s/w%d (pid %ld): word '%s', data loaded by pid "
               "%ld\n",
               (unsigned long long)r->id, r->node, r->worker, pid, word, setup);
        if (!*first)
            snprintf(first, sizeof first, "%s", sum);
        bad += strcmp(first, sum) != 0 || pid == setup;  /* same data, not */
        while (k < nn && strcmp(nodes[k].name, r->node)) /* in the setup */
            k++;
        if (k == nn && nn < MAX_NODES) {
            nodes[nn] = (node){.setup_pid = setup};
            snprintf(nodes[nn++].name, sizeof nodes[0].name, "%s", r->node);
        }
        if (k < nn && nodes[k].setup_pid != setup)
            nodes[k].setup_pid = -1;
        if (k < nn && r->worker >= 0 && r->worker < 32 &&
            !(nodes[k].seen & 1u << r->worker)) {
            nodes[k].seen |= 1u << r->worker;
            nodes[k].workers++;
        }
        pc_job_result_free(&r);
    }
    for (int k = 0; k < nn; k++) {
        if (nodes[k].setup_pid > 0)
            printf("node %s: %d workers, data loaded once, by setup process "
                   "%ld\n",
                   nodes[k].name, nodes[k].workers, nodes[k].setup_pid);
        else
            printf("node %s: jobs name different setup processes\n",
                   nodes[k].name);
        bad += nodes[k].setup_pid <= 0;
        workers += nodes[k].workers;
    }
    if (!bad && nn >= want_nodes) {
        printf("same data on all %d workers of %d nodes: %zu bytes, sum %s\n",
               workers, nn, bytes, first);
        status = 0;
    } else
        ex_say(&x, "the workers did not all see the data of one load per "
                   "node");
    fflush(stdout);
    pc_compute_close(&c, 5.0);
    return NULL;
}

int
main(int argc, char **argv)
{
    ex_compute_args a = {.count = "--nodes",
                         .max = MAX_NODES,
                         .n = &want_nodes,
                         .library = &library,
                         .verdict = &status};
    return ex_compute_main(&x, argc, argv, &a, client);
}
