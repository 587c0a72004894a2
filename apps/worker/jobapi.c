/* apps/worker/jobapi.c — the pc_job_*() functions a computation calls
 * (include/picos/computation.h), provided by the worker process.
 *
 * picos-worker exports exactly these names (picos-worker.dynlist) so that
 * a library dlopen()ed into it, linked against nothing, resolves them from
 * the executable. They act on the one job the worker is running (a worker
 * runs one job at a time), whose state is the struct pc_job of worker.h.
 * pc_job_recv() is the only place a job reads the node's socket: it takes
 * the W_TO_JOB frames of its own job, drops those of an earlier job, and
 * hands anything else (a W_QUIT, a W_RUN the node sent early) to the
 * worker's loop for after the job; a W_QUIT or a lost socket makes it, and
 * every later call, return -1 ("node gone").
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compute_int.h"
#include "wframe.h"
#include "worker.h"

const pc__worker_opts *pc__worker_o;
const pc_computation *pc__worker_comp;
char pc__worker_data_dir[4096] = "/data";

char *
pc__worker_one_line(char *s)
{
    for (char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    return s;
}

int
pc_job_return(pc_job *j, const void *data, size_t len)
{
    void *copy;

    if (!j || (len && !data))
        return -1;
    if (len > PC_JOB_RESULT_MAX) {
        snprintf(j->error, sizeof j->error,
                 "result too big: %zu bytes (at most %u)", len,
                 PC_JOB_RESULT_MAX);
        j->forced = true;
        return -1;
    }
    copy = malloc(len ? len : 1);
    if (!copy) {
        snprintf(j->error, sizeof j->error,
                 "out of memory: no room for a result of %zu bytes", len);
        j->forced = j->limit = true;
        return -1;
    }
    if (len)
        memcpy(copy, data, len);
    free(j->result);
    j->result = copy;
    j->result_len = len;
    return 0;
}

int
pc_job_fail(pc_job *j, const char *fmt, ...)
{
    va_list ap;

    if (!j)
        return -1;
    if (!fmt)
        fmt = "failed";
    va_start(ap, fmt);
    vsnprintf(j->error, sizeof j->error, fmt, ap);
    va_end(ap);
    if (!j->error[0])
        snprintf(j->error, sizeof j->error, "failed");
    pc__worker_one_line(j->error);
    return -1;
}

int
pc_job_send(pc_job *j, const void *data, size_t len)
{
    Picos__V1__WorkerFrame f = PICOS__V1__WORKER_FRAME__INIT;

    if (!j || j->gone || (len && !data) || len > PC_JOB_MSG_MAX)
        return -1;
    f.op = PICOS__V1__WORKER_OP__W_FROM_JOB;
    f.worker = j->worker;
    f.job_id = j->id;
    f.data.data = (uint8_t *)data;
    f.data.len = len;
    if (pc__wframe_write(j->sock, CP_WFRAME_MAX, &f)) {
        j->gone = j->broken = true;
        return -1;
    }
    return 0;
}

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
pc_job_recv(pc_job *j, double timeout, void **data, size_t *len)
{
    double end = now() + (timeout > 0 ? timeout : 0);

    if (!j || !data || !len)
        return -1;
    *data = NULL;
    *len = 0;
    for (;;) {
        struct pollfd p = {j->sock, POLLIN, 0};
        Picos__V1__WorkerFrame *f;
        int ms = -1, r;

        if (j->gone)
            return -1;
        if (timeout >= 0) {
            double left = end - now();
            ms = left <= 0 ? 0 : (int)(left * 1000) + 1;
        }
        r = poll(&p, 1, ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            return 1;
        if (r < 0 || pc__wframe_read(j->sock, CP_WFRAME_MAX, &f) != 0) {
            /* EOF, or a stream we can no longer follow */
            j->gone = j->broken = true;
            return -1;
        }
        if (f->op == PICOS__V1__WORKER_OP__W_TO_JOB) {
            if (f->job_id == j->id) {
                char *d = malloc(f->data.len + 1);
                if (d) {
                    if (f->data.len)
                        memcpy(d, f->data.data, f->data.len);
                    d[f->data.len] = '\0';
                    *data = d;
                    *len = f->data.len;
                }
                picos__v1__worker_frame__free_unpacked(f, NULL);
                return d ? 0 : -1;
            }
            picos__v1__worker_frame__free_unpacked(f, NULL); /* stale */
            continue;
        }
        if (f->op == PICOS__V1__WORKER_OP__W_QUIT)
            j->gone = true;
        pc__worker_defer(f);
    }
}

uint64_t
pc_job_id(const pc_job *j)
{
    return j ? j->id : 0;
}

int
pc_job_attempt(const pc_job *j)
{
    return j ? j->attempt : 0;
}

const char *
pc_job_name(const pc_job *j)
{
    return j ? j->name : "";
}

int
pc_job_worker(const pc_job *j)
{
    return j ? j->worker : -1;
}

const void *
pc_job_input_pb(const pc_job *j)
{
    return j ? j->input_pb : NULL;
}

const char *
pc_job_data_dir(void)
{
    return pc__worker_data_dir;
}
