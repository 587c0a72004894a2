/* dispycos_client2.c — many jobs of one computation, results as they end
 * (pycos's dispycos_client2.py).
 *
 *     picos-dispycos-client2 [--registry EP] [--secret-file F] [--timeout S]
 *                            [-n N] [--library primes.so]
 *
 * The client sends the computation compute/primes.c (a shared library)
 * to every compute node of the cluster (picos-node --compute), which
 * starts one worker process per free CPU; then it submits N jobs
 * (default 10) at once — job i counts the primes below 100000 + 20000 i,
 * more work for each — and takes the results with pc_compute_wait_any()
 * in the order they end, wherever they ran:
 *
 *     job 3 on node1/w1: 140000: 13010 primes (0.041 s)
 *     ...
 *     10 jobs: 10 ok, 0 failed, on 2 nodes
 *
 * dispycos's client needs a scheduler process per cluster; here the
 * client schedules its own jobs over the nodes. Exit status 0 when every
 * job gave its result, 1 otherwise (one line on stderr), 2 bad options.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/compute.h"

#include "cluster_ex.h"

static ex_cluster x = {
    .prog = "picos-dispycos-client2",
    .usage = "[options]: N jobs of a CPU-bound computation",
    .options = "  -n N                jobs to run (default 10)\n"
               "  --library FILE      the computation (default primes.so)\n",
};
static int n = 10;
static const char *library = EX_PRIMES_SO;
static int status = 1;

static pc_msg *
client(void *arg)
{
    pc_compute_opts o = {.library = library};
    pc_compute *c = NULL;
    char nodes[16][64];
    int ok = 0, nnodes = 0;
    pc_err rc;

    (void)arg;
    if ((rc = pc_compute_open(&o, x.timeout, &c)) != PC_OK) {
        ex_say(&x, "opening the computation: %s", pc_compute_error(NULL));
        return NULL;
    }
    for (int i = 0; i < n; i++) { /* queued at once: never waits */
        char in[32];
        pc_job_spec j = {.fn = "count", .input = in};
        j.len = (size_t)snprintf(in, sizeof in, "%d", 100000 + 20000 * i);
        if (pc_compute_submit(c, &j, 1, NULL) != PC_OK) {
            ex_say(&x, "submitting: %s", pc_compute_error(c));
            pc_compute_close(&c, 1.0);
            return NULL;
        }
    }
    for (int i = 0; i < n; i++) {
        pc_job_result *r = NULL;
        int k = 0;
        if (pc_compute_wait_any(c, -1, &r) != PC_OK)
            break;
        if (r->rc == PC_OK) {
            printf("job %llu on %s/w%d: %s (%.3f s)\n",
                   (unsigned long long)r->id, r->node, r->worker,
                   (const char *)r->data, r->ended - r->started);
            ok++;
        } else
            printf("job %llu %s: %s\n", (unsigned long long)r->id,
                   pc_job_why_str(r->why), r->error);
        while (k < nnodes && strcmp(nodes[k], r->node))
            k++;
        if (k == nnodes && nnodes < 16 && r->node[0])
            snprintf(nodes[nnodes++], sizeof nodes[0], "%s", r->node);
        pc_job_result_free(&r);
    }
    printf("%d jobs: %d ok, %d failed, on %d node%s\n", n, ok, n - ok, nnodes,
           nnodes == 1 ? "" : "s");
    fflush(stdout);
    if (ok < n)
        ex_say(&x, "%d of %d jobs failed", n - ok, n);
    else
        status = 0;
    pc_compute_close(&c, 5.0);
    return NULL;
}

int
main(int argc, char **argv)
{
    ex_compute_args a = {.count = "-n",
                         .max = 100000,
                         .n = &n,
                         .library = &library,
                         .verdict = &status};
    return ex_compute_main(&x, argc, argv, &a, client);
}
