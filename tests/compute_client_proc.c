/* tests/compute_client_proc.c — a second compute client for
 * tests/test_compute.c, as its own process:
 *
 *     compute_client_proc REGISTRY SECRET_FILE LIBRARY CPUS JOBS MS NODES
 *                         [hold]
 *
 * (NODES: comma-separated node names, every one of which the open waits
 * for) joins the cluster (stderr "join: PC_EAUTH ..." and exit 3 when that
 * fails), opens the computation reserving CPUS per node (exit 4 on a
 * failure, with pc_compute_error()'s line), says "OPENED" on stdout, runs
 * JOBS "sleep MS" jobs, checks each result ended once and OK, says
 * "DONE N" (N: results that were right) and exits 0 when all were.
 * With "hold" it keeps its CPUs after DONE until it gets SIGUSR1 (blocked
 * from the start, so one sent early waits), then closes: the test decides
 * when the CPUs come free, not the speed of the jobs.
 */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/compute.h"
#include "picos/picos.h"
#include "picos/registry.h"

int
main(int argc, char **argv)
{
    pc_cluster_opts o = {0};
    pc_compute_opts co = {0};
    pc_compute *c = NULL;
    pc_job_spec *jobs;
    unsigned char *seen;
    int njobs, good = 0;
    pc_err rc;

    const char *nodes[9] = {NULL};
    char *save = NULL;
    int nn = 0, sig;
    bool hold = argc == 9 && !strcmp(argv[8], "hold");
    sigset_t usr1;

    if (argc != 8 && !hold) {
        fprintf(stderr, "usage: compute_client_proc REGISTRY SECRET_FILE "
                        "LIBRARY CPUS JOBS MS NODES [hold]\n");
        return 2;
    }
    /* before any thread starts, so that every thread has it blocked */
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, NULL);
    for (char *t = strtok_r(argv[7], ",", &save); t && nn < 8;
         t = strtok_r(NULL, ",", &save))
        nodes[nn++] = t;
    njobs = atoi(argv[5]);
    o.node.workers = 2;
    o.registries = argv[1];
    o.net.secret_file = argv[2];
    o.net.heartbeat = 0.2;
    o.net.timeout = 2.0;
    o.join_timeout = 10.0;
    if ((rc = pc_cluster_start(&o)) != PC_OK) {
        fprintf(stderr, "join: %s %s\n", pc_err_name(rc), pc_strerror(rc));
        return 3;
    }
    co.library = argv[3];
    co.cpus = atoi(argv[4]);
    co.nodes = nn ? nodes : NULL;
    if ((rc = pc_compute_open(&co, 20.0, &c)) != PC_OK) {
        fprintf(stderr, "open: %s %s\n", pc_err_name(rc),
                pc_compute_error(NULL));
        pc_node_stop();
        pc_node_run();
        return 4;
    }
    printf("OPENED\n");
    fflush(stdout);
    jobs = calloc((size_t)njobs, sizeof *jobs);
    seen = calloc((size_t)njobs + 1, 1);
    if (!jobs || !seen)
        return 5;
    for (int i = 0; i < njobs; i++)
        jobs[i] = (pc_job_spec){
            .fn = "sleep", .input = argv[6], .len = strlen(argv[6])};
    rc = pc_compute_submit(c, jobs, (size_t)njobs, NULL);
    for (int i = 0; rc == PC_OK && i < njobs; i++) {
        pc_job_result *r = NULL;
        if ((rc = pc_compute_wait_any(c, 60.0, &r)) != PC_OK)
            break;
        if (r->rc == PC_OK && r->len == 5 && !memcmp(r->data, "slept", 5) &&
            r->id >= 1 && r->id <= (uint64_t)njobs && !seen[r->id]++)
            good++;
        else
            fprintf(stderr, "job %llu: %s %s\n", (unsigned long long)r->id,
                    pc_err_name(r->rc), r->error);
        pc_job_result_free(&r);
    }
    if (rc != PC_OK)
        fprintf(stderr, "jobs: %s %s\n", pc_err_name(rc), pc_compute_error(c));
    printf("DONE %d\n", good);
    fflush(stdout);
    if (hold)
        (void)sigwait(&usr1, &sig);
    pc_compute_close(&c, 5.0);
    free(jobs);
    free(seen);
    pc_node_stop();
    pc_node_run();
    return good == njobs ? 0 : 1;
}
