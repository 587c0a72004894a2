/* dispycos_live_analytics.c — talking to jobs while they run (pycos's
 * dispycos_live_analytics.py).
 *
 *     picos-dispycos-live-analytics [--registry EP] [--secret-file F]
 *                                   [--timeout S] [-n N]
 *                                   [--library analytics.so]
 *
 * Two jobs of compute/analytics.c run for as long as the client streams
 * them a series of N numbers (default 60, a zig-zag), one message per
 * value (pc_compute_send()), then "end". The "trend" job keeps a moving
 * average and, each time its direction turns, sends the client a signal
 * (pc_job_send()), which the client prints as it comes; the "save" job
 * writes every value into series.txt, which comes back with its result
 * (files_out) and which the client compares with what it sent:
 *
 *     signal: down at value 14: average 91.6
 *     signal: up at value 24: average 48.4
 *     ...
 *     trend: 60 values, 5 signals
 *     save: 60 values saved; series.txt (183 bytes) is the series sent
 *
 * Messages to a job that has not started yet wait for it, so this works
 * on one worker too (save then runs after trend). Exit status 0 when both
 * jobs ended ok and series.txt is right, 1 otherwise, 2 bad options.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/compute.h"

#include "cluster_ex.h"

static ex_cluster x = {
    .prog = "picos-dispycos-live-analytics",
    .usage = "[options]: stream numbers to running jobs, get signals back",
    .options = "  -n N                values to stream (default 60)\n"
               "  --library FILE      the computation (default analytics.so)\n",
};
static int n = 60;
static const char *library = EX_ANALYTICS_SO;
static int status = 1;

/* Value i of the series: a zig-zag between 40 and 100, period 20. */
static int
value(int i)
{
    int p = i % 20;
    return 40 + 6 * (p < 10 ? p : 20 - p);
}

/* Print the signals that arrived; true once trend's "end" came. */
static bool
signals(double timeout)
{
    pc_msg *m = NULL;

    while (pc_recv_type(PC_MSG_COMPUTE_JOB_MSG, &m, timeout) == PC_OK) {
        const void *d;
        size_t len;
        uint64_t id;
        bool end = false;
        if (pc_compute_job_msg_parse(m, &id, &d, &len) == PC_OK) {
            end = len == 3 && !memcmp(d, "end", 3);
            if (!end)
                printf("signal: %.*s\n", (int)len, (const char *)d);
        }
        pc_msg_free(&m);
        if (end)
            return true;
    }
    return false;
}

static pc_msg *
client(void *arg)
{
    pc_compute_opts o = {.library = library, .messages = pc_self()};
    pc_job_spec j[2] = {
        {.fn = "trend"},
        {.fn = "save", .files_out = (const char *const[]){"series.txt", NULL}}};
    pc_job_result *r[2] = {NULL, NULL};
    pc_compute *c = NULL;
    uint64_t ids[2];
    char sent[16 * 1024], text[16];
    size_t len = 0;
    bool ended = false;

    (void)arg;
    if (pc_compute_open(&o, x.timeout, &c) != PC_OK ||
        pc_compute_submit(c, j, 2, ids) != PC_OK) {
        ex_say(&x, "starting the jobs: %s", pc_compute_error(c));
        pc_compute_close(&c, 1.0);
        return NULL;
    }
    for (int i = 0; i <= n; i++) { /* the stream, then "end" */
        int t = i < n ? snprintf(text, sizeof text, "%d", value(i))
                      : snprintf(text, sizeof text, "end");
        for (int k = 0; k < 2; k++)
            pc_compute_send(c, ids[k], text, (size_t)t);
        if (i < n && len + 16 < sizeof sent)
            len +=
                (size_t)snprintf(sent + len, sizeof sent - len, "%s\n", text);
        ended = ended || signals(0.01); /* live: as they come */
    }
    if (!ended && !signals(x.timeout))
        ex_say(&x, "no end of signals within %g s", x.timeout);
    for (int k = 0; k < 2; k++)
        if (pc_compute_wait(c, ids[k], x.timeout, &r[k]) != PC_OK) {
            ex_say(&x, "job %s did not end within %g s", j[k].fn, x.timeout);
            break;
        }
    if (r[0] && r[1] && r[0]->rc == PC_OK && r[1]->rc == PC_OK) {
        bool same = r[1]->nfiles == 1 && r[1]->files[0].len == len &&
                    !memcmp(r[1]->files[0].data, sent, len);
        printf("trend: %s\n", (const char *)r[0]->data);
        printf("save: %s; series.txt (%zu bytes) %s\n",
               (const char *)r[1]->data, r[1]->nfiles ? r[1]->files[0].len : 0,
               same ? "is the series sent" : "is NOT the series sent");
        status = same ? 0 : 1;
    } else
        for (int k = 0; k < 2; k++)
            if (r[k] && r[k]->rc != PC_OK)
                ex_say(&x, "job %s %s: %s", j[k].fn, pc_job_why_str(r[k]->why),
                       r[k]->error);
    fflush(stdout);
    pc_job_result_free(&r[0]);
    pc_job_result_free(&r[1]);
    pc_compute_close(&c, 5.0);
    return NULL;
}

int
main(int argc, char **argv)
{
    ex_compute_args a = {.count = "-n",
                         .max = 1000,
                         .n = &n,
                         .library = &library,
                         .verdict = &status};
    return ex_compute_main(&x, argc, argv, &a, client);
}
