/* dispycos_client4.c — files in and out of jobs (pycos's
 * dispycos_client4.py).
 *
 *     picos-dispycos-client4 [--registry EP] [--secret-file F] [--timeout S]
 *                            [-n N] [--library transform.so]
 *
 * Each of N jobs (default 4) gets a text file of its own, in.txt, written
 * into its working directory on the node before it starts
 * (pc_job_spec.files_in); the job (compute/transform.c) writes out.txt —
 * the lines upper-cased and numbered — and the client asks for that file
 * back with the result (files_out). The client checks every out.txt
 * against what it expects:
 *
 *     job 2 on node1/w0: 3 lines; out.txt (96 bytes) checked ok
 *     4 jobs: 4 files checked ok
 *
 * Exit status 0 when every file came back right, 1 otherwise, 2 bad
 * options.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/compute.h"

#include "cluster_ex.h"

static ex_cluster x = {
    .prog = "picos-dispycos-client4",
    .usage = "[options]: jobs that transform a file each",
    .options = "  -n N                jobs to run (default 4)\n"
               "  --library FILE      the computation (default transform.so)\n",
};
static int n = 4;
static const char *library = EX_TRANSFORM_SO;
static int status = 1;

/* Job i's in.txt, and the out.txt the job must make of it. */
static void
texts(int i, char *in, char *want, size_t size)
{
    size_t a = 0, b = 0;

    for (int l = 1; l <= 3; l++) {
        size_t s = a;
        a += (size_t)snprintf(in + a, size - a,
                              "job %d, line %d: the quick "
                              "brown fox\n",
                              i, l);
        b += (size_t)snprintf(want + b, size - b, "%d: ", l);
        for (; s < a; s++)
            want[b++] = (char)toupper((unsigned char)in[s]);
    }
    want[b] = '\0';
}

static pc_msg *
client(void *arg)
{
    pc_compute_opts o = {.library = library};
    pc_compute *c = NULL;
    uint64_t *ids = calloc((size_t)n, sizeof *ids);
    char in[512], want[512];
    int good = 0;

    (void)arg;
    if (!ids || pc_compute_open(&o, x.timeout, &c) != PC_OK) {
        ex_say(&x, "opening the computation: %s", pc_compute_error(NULL));
        free(ids);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        pc_job_file f = {.name = "in.txt", .data = in};
        pc_job_spec j = {.fn = "upper",
                         .files_in = &f,
                         .nfiles_in = 1,
                         .files_out = (const char *const[]){"out.txt", NULL}};
        texts(i + 1, in, want, sizeof in);
        f.len = strlen(in);
        pc_compute_submit(c, &j, 1, &ids[i]); /* copies the file */
    }
    for (int i = 0; i < n; i++) { /* in order this time: by id */
        pc_job_result *r = NULL;
        if (pc_compute_wait(c, ids[i], -1, &r) != PC_OK)
            break;
        texts(i + 1, in, want, sizeof in);
        if (r->rc != PC_OK)
            printf("job %d %s: %s\n", i + 1, pc_job_why_str(r->why), r->error);
        else if (r->nfiles != 1 || r->files[0].len != strlen(want) ||
                 memcmp(r->files[0].data, want, r->files[0].len))
            printf("job %d on %s/w%d: out.txt is not what it should be\n",
                   i + 1, r->node, r->worker);
        else {
            printf("job %d on %s/w%d: %s; out.txt (%zu bytes) checked ok\n",
                   i + 1, r->node, r->worker, (const char *)r->data,
                   r->files[0].len);
            good++;
        }
        pc_job_result_free(&r);
    }
    printf("%d jobs: %d files checked ok\n", n, good);
    fflush(stdout);
    if (good < n)
        ex_say(&x, "%d of %d files did not come back right", n - good, n);
    else
        status = 0;
    pc_compute_close(&c, 5.0);
    free(ids);
    return NULL;
}

int
main(int argc, char **argv)
{
    ex_compute_args a = {.count = "-n",
                         .max = 10000,
                         .n = &n,
                         .library = &library,
                         .verdict = &status};
    return ex_compute_main(&x, argc, argv, &a, client);
}
