/* tests/compute_min.c — a minimal computation library for
 * tests/test_compute_node.c (the wire-level test of the node side): "echo"
 * returns its input, "sleep" sleeps its input's milliseconds (decimal
 * text), "crash" dies of SIGSEGV, "fail" fails with its input as the
 * text. It links nothing: the pc_job_*() functions come from picos-worker.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "picos/computation.h"

static int
echo(pc_job *j, const void *in, size_t len)
{
    return pc_job_return(j, in, len);
}

static int
sleep_ms(pc_job *j, const void *in, size_t len)
{
    char buf[32];
    long ms;
    struct timespec ts;

    if (len >= sizeof buf)
        return pc_job_fail(j, "want a number of milliseconds");
    memcpy(buf, in, len);
    buf[len] = '\0';
    ms = strtol(buf, NULL, 10);
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0)
        ;
    return pc_job_return(j, "slept", 5);
}

static int
crash(pc_job *j, const void *in, size_t len)
{
    (void)j, (void)in, (void)len;
    raise(SIGSEGV);
    return 0;
}

static int
fail(pc_job *j, const void *in, size_t len)
{
    return pc_job_fail(j, "%.*s", (int)len, (const char *)in);
}

PC_COMPUTATION(.name = "compute_min", .version = 3,
               .jobs = (const pc_job_def[]){{"echo", echo, NULL},
                                            {"sleep", sleep_ms, NULL},
                                            {"crash", crash, NULL},
                                            {"fail", fail, NULL},
                                            {NULL, NULL, NULL}});
