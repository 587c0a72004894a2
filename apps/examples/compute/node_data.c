/* compute/node_data.c — the computation of dispycos_client9_node.c: data
 * loaded into memory once per node, shared by every worker.
 *
 * node_setup() runs once per node, in the setup process, before any
 * worker is forked: it reads the data file "words.txt" (sent by the client
 * with the computation) into memory and notes its own pid. The workers are
 * forked from that process afterwards, so they have the data already
 * (copy on write) and never read the file. Job "lookup" (input: a number
 * as text) reports where it ran and what it sees:
 *
 *     setup_pid=P worker_pid=Q bytes=N sum=S word=W
 *
 * P is the same for every job of a node and differs from every Q: the
 * data was loaded once, by P. S (a checksum of the data) is the same on
 * every worker of every node. The job sleeps 50 ms so that every worker
 * of a node takes some of the jobs.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "picos/computation.h"

static char *data; /* the file, loaded by node_setup */
static size_t size;
static uint32_t sum;   /* its FNV-1a */
static long setup_pid; /* who loaded it */

static int
node_setup(const char *data_dir, char *err, size_t err_size)
{
    char path[4096];
    FILE *f;
    long n;

    snprintf(path, sizeof path, "%s/words.txt", data_dir);
    if (!(f = fopen(path, "r")) || fseek(f, 0, SEEK_END) ||
        (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) ||
        !(data = malloc((size_t)n + 1)) ||
        fread(data, 1, (size_t)n, f) != (size_t)n) {
        snprintf(err, err_size, "can't load %s", path);
        if (f)
            fclose(f);
        return 1;
    }
    fclose(f);
    data[n] = '\0';
    size = (size_t)n;
    sum = 2166136261u;
    for (size_t i = 0; i < size; i++)
        sum = (sum ^ (unsigned char)data[i]) * 16777619u;
    setup_pid = (long)getpid();
    return 0;
}

static int
lookup(pc_job *j, const void *in, size_t len)
{
    char out[512], word[64] = "", num[16] = "";
    const char *p = data;
    struct timespec pause = {0, 50 * 1000 * 1000};
    long i;

    if (len < sizeof num) /* the input is not NUL-terminated */
        memcpy(num, in, len);
    i = strtol(num, NULL, 10);
    /* word i (of the lines), counting from 0 */
    for (long k = 0; p && k < i; k++)
        if ((p = strchr(p, '\n')))
            p++;
    if (p && *p)
        snprintf(word, sizeof word, "%.*s", (int)strcspn(p, "\n"), p);
    nanosleep(&pause, NULL);
    snprintf(out, sizeof out,
             "setup_pid=%ld worker_pid=%ld bytes=%zu "
             "sum=%08x word=%s",
             setup_pid, (long)getpid(), size, (unsigned)sum, word);
    return pc_job_return(j, out, strlen(out));
}

PC_COMPUTATION(.name = "node_data", .version = 1, .node_setup = node_setup,
               .jobs = (const pc_job_def[]){{.name = "lookup", .fn = lookup},
                                            {0}});
