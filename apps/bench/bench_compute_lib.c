/* bench_compute_lib.c — the computation picos-bench-compute sends to its
 * nodes (docs/computations.md): "echo" returns its input (the empty jobs
 * of the throughput rows), "spin" burns the CPU time its input names, in
 * milliseconds as decimal text ("50": the speed-up row). Built as a
 * module that links nothing (the pc_job_* functions come from the worker
 * that loads it), on its own so the benchmark does not depend on tests/.
 */
#include <stdlib.h>
#include <string.h>

#include "picos/computation.h"

#include "bench_spin.h"

static int
echo(pc_job *j, const void *in, size_t len)
{
    return pc_job_return(j, in, len);
}

static int
spin(pc_job *j, const void *in, size_t len)
{
    char buf[16];
    char *end;
    double ms;
    unsigned long x;

    if (len == 0 || len >= sizeof buf)
        return pc_job_fail(j, "spin: want milliseconds as text, got %zu bytes",
                           len);
    memcpy(buf, in, len);
    buf[len] = '\0';
    ms = strtod(buf, &end);
    if (*end || !(ms >= 0) || ms > 3600e3)
        return pc_job_fail(j, "spin: '%s' is not a number of milliseconds",
                           buf);
    x = bench_spin_ms(ms);
    (void)x;
    return pc_job_return(j, NULL, 0);
}

PC_COMPUTATION(.name = "bench", .version = 1,
               .jobs = (const pc_job_def[]){
                   {"echo", echo, NULL}, {"spin", spin, NULL}, {0}});
