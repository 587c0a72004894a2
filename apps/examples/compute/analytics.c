/* compute/analytics.c — the computation of dispycos_live_analytics.c:
 * jobs that run while the client streams data to them.
 *
 * Both jobs read the client's messages (pc_job_recv()) — numbers as text,
 * then "end" — for as long as the stream lasts:
 *
 * - "trend" keeps a moving average of the last 5 values and, when its
 *   direction turns, sends the client a signal (pc_job_send()): "up at
 *   value 12: average 57.0". Its last message is "end"; its result "N
 *   values, K signals".
 * - "save" appends every value to the file series.txt in its directory,
 *   which the client fetches with the result (files_out); its result is
 *   "N values saved".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/computation.h"

#define WINDOW 5
#define WAIT 60.0 /* seconds without a message: the client is gone */

/* The next value into *v; 0 at "end", -1 when the stream broke. */
static int
next(pc_job *j, double *v)
{
    void *m = NULL;
    size_t len = 0;
    int r = pc_job_recv(j, WAIT, &m, &len);

    if (r != 0)
        return -1;
    r = strcmp(m, "end") ? 1 : 0;
    if (r)
        *v = strtod(m, NULL);
    free(m);
    return r;
}

static int
trend(pc_job *j, const void *in, size_t len)
{
    double w[WINDOW] = {0}, avg = 0, last = 0, v;
    int n = 0, signals = 0, dir = 0, r;
    char text[96];

    (void)in, (void)len;
    while ((r = next(j, &v)) > 0) {
        double s = 0;
        w[n++ % WINDOW] = v;
        if (n < WINDOW)
            continue;
        for (int i = 0; i < WINDOW; i++)
            s += w[i];
        avg = s / WINDOW;
        if (n > WINDOW && avg != last) {
            int d = avg > last ? 1 : -1;
            if (dir && d != dir) {
                snprintf(text, sizeof text, "%s at value %d: average %.1f",
                         d > 0 ? "up" : "down", n, avg);
                pc_job_send(j, text, strlen(text));
                signals++;
            }
            dir = d;
        }
        last = avg;
    }
    if (r < 0)
        return pc_job_fail(j, "the stream stopped after %d values", n);
    pc_job_send(j, "end", 3);
    snprintf(text, sizeof text, "%d values, %d signals", n, signals);
    return pc_job_return(j, text, strlen(text));
}

static int
save(pc_job *j, const void *in, size_t len)
{
    FILE *f = fopen("series.txt", "w");
    char text[64];
    double v;
    int n = 0, r;

    (void)in, (void)len;
    if (!f)
        return pc_job_fail(j, "can't write series.txt");
    while ((r = next(j, &v)) > 0) {
        fprintf(f, "%g\n", v);
        n++;
    }
    if (fclose(f) != 0 || r < 0)
        return pc_job_fail(j, "saving the stream failed after %d values", n);
    snprintf(text, sizeof text, "%d values saved", n);
    return pc_job_return(j, text, strlen(text));
}

PC_COMPUTATION(.name = "analytics", .version = 1,
               .jobs = (const pc_job_def[]){{.name = "trend", .fn = trend},
                                            {.name = "save", .fn = save},
                                            {0}});
