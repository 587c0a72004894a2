/* compute/primes.c — the computation of dispycos_client2.c: a CPU-bound
 * job, counting the primes below a number by trial division.
 *
 * Job "count": the input is a number as text ("200000"), the result the
 * text "N: K primes". Anything else fails the job with a one-line reason.
 * Built as primes.so: it links nothing (the pc_job_* functions come from
 * the picos-worker process that loads it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/computation.h"

static int
count(pc_job *j, const void *in, size_t len)
{
    char text[32], out[64], *end;
    long n, k = 0;

    if (len == 0 || len >= sizeof text)
        return pc_job_fail(j, "want a number as text, got %zu bytes", len);
    memcpy(text, in, len);
    text[len] = '\0';
    n = strtol(text, &end, 10);
    if (end == text || *end || n < 0 || n > 100000000)
        return pc_job_fail(j, "'%s' is not a number from 0 to 100000000", text);
    for (long p = 2; p < n; p++) {
        long d = 2;
        while (d * d <= p && p % d)
            d++;
        k += d * d > p;
    }
    snprintf(out, sizeof out, "%ld: %ld primes", n, k);
    return pc_job_return(j, out, strlen(out));
}

PC_COMPUTATION(.name = "primes", .version = 1,
               .jobs = (const pc_job_def[]){{.name = "count", .fn = count},
                                            {0}});
