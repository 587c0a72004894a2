/* services/compute_wframe.c — judging a frame from a worker process.
 *
 * A worker runs the client's code: its frames are untrusted input, however
 * authenticated the client was. A session hands each frame, with what it
 * knows of the connection (pc__cw_view), to pc__cw_check(), which unpacks
 * it (the length is bounded first) and says whether it may come now: the
 * first frame is W_HELLO naming a worker of the session (and the pid the
 * kernel saw connect); W_READY or W_SETUP_FAILED once, before any job;
 * W_FROM_JOB and W_DONE only for the job that runs on that worker, within
 * the limits of a message and a result, returning only files the job asked
 * for, by plain names. Nodes' ops (W_RUN, W_TO_JOB, W_QUIT) and unknown
 * ones are violations. The session kills a worker whose frame fails, and
 * reports its job crashed with the reason ("protocol violation: ...").
 *
 * Pure (no state, no I/O), so tests/fuzz_wframe.c runs it on anything.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "picos/computation.h"

#include "compute_node_int.h"

#define NAMES_MAX 4096

static bool
fail(char *why, size_t size, Picos__V1__WorkerFrame **out,
     Picos__V1__WorkerFrame *f, const char *text)
{
    snprintf(why, size, "%s", text);
    for (char *p = why; *p; p++) /* names in it are the worker's */
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    if (f)
        picos__v1__worker_frame__free_unpacked(f, NULL);
    *out = NULL;
    return false;
}

static bool
asked(const pc__cw_view *v, const char *name)
{
    for (size_t i = 0; i < v->nfiles_out; i++)
        if (v->files_out[i] && !strcmp(v->files_out[i], name))
            return true;
    return false;
}

static bool
check_done(const pc__cw_view *v, const Picos__V1__ComputeJobEvent *d, char *t,
           size_t size)
{
    size_t total = 0;

    if (!d) {
        snprintf(t, size, "W_DONE without its event");
        return false;
    }
    if (d->id != v->job_id) {
        snprintf(t, size, "W_DONE for job %" PRIu64 ", it runs %" PRIu64, d->id,
                 v->job_id);
        return false;
    }
    if (d->why != PICOS__V1__COMPUTE_WHY__WHY_OK &&
        d->why != PICOS__V1__COMPUTE_WHY__WHY_FAILED &&
        d->why != PICOS__V1__COMPUTE_WHY__WHY_LIMIT) {
        snprintf(t, size, "W_DONE with why %d", (int)d->why);
        return false;
    }
    if (d->result.len > PC_JOB_RESULT_MAX) {
        snprintf(t, size, "result of %zu bytes, the most is %u", d->result.len,
                 PC_JOB_RESULT_MAX);
        return false;
    }
    for (size_t i = 0; i < d->n_files_out; i++) {
        const Picos__V1__ComputeJobFile *f = d->files_out[i];
        if (!f || !pc__cst_plain_name(f->name)) {
            snprintf(t, size, "a file out whose name is not plain");
            return false;
        }
        if (!asked(v, f->name)) {
            snprintf(t, size, "file out '%.64s' was not asked for", f->name);
            return false;
        }
        for (size_t j = 0; j < i; j++)
            if (!strcmp(d->files_out[j]->name, f->name)) {
                snprintf(t, size, "file out '%.64s' twice", f->name);
                return false;
            }
        total += f->data.len;
        if (total > CP_JOB_FILES_MAX) {
            snprintf(t, size, "files out over %u bytes", CP_JOB_FILES_MAX);
            return false;
        }
    }
    return true;
}

bool
pc__cw_check(const pc__cw_view *v, const uint8_t *buf, size_t len,
             Picos__V1__WorkerFrame **out, char *why, size_t size)
{
    Picos__V1__WorkerFrame *f;
    char t[160];

    *out = NULL;
    if (len > CP_WFRAME_MAX)
        return fail(why, size, out, NULL, "oversized frame");
    f = picos__v1__worker_frame__unpack(NULL, len, buf);
    if (!f)
        return fail(why, size, out, NULL, "frame does not parse");
    if (v->worker < 0) {
        if (f->op != PICOS__V1__WORKER_OP__W_HELLO) {
            snprintf(t, sizeof t, "op %d before W_HELLO", (int)f->op);
            return fail(why, size, out, f, t);
        }
        if (f->worker < 0 || f->worker >= v->workers) {
            snprintf(t, sizeof t, "W_HELLO from worker %d of %d",
                     (int)f->worker, v->workers);
            return fail(why, size, out, f, t);
        }
        if (v->peer_pid > 0 && f->pid != (uint32_t)v->peer_pid) {
            snprintf(t, sizeof t, "W_HELLO says pid %u, the socket's is %d",
                     (unsigned)f->pid, (int)v->peer_pid);
            return fail(why, size, out, f, t);
        }
        *out = f;
        return true;
    }
    switch (f->op) {
    case PICOS__V1__WORKER_OP__W_HELLO:
        return fail(why, size, out, f, "W_HELLO twice");
    case PICOS__V1__WORKER_OP__W_READY:
        if (v->ready)
            return fail(why, size, out, f, "W_READY twice");
        if (f->n_jobs > NAMES_MAX)
            return fail(why, size, out, f, "W_READY with too many jobs");
        for (size_t i = 0; i < f->n_jobs; i++)
            if (!f->jobs[i] || !f->jobs[i][0] || strlen(f->jobs[i]) > 255)
                return fail(why, size, out, f, "W_READY with a bad job name");
        if (strlen(f->name) > 255)
            return fail(why, size, out, f, "W_READY with a bad name");
        break;
    case PICOS__V1__WORKER_OP__W_SETUP_FAILED:
        if (v->ready)
            return fail(why, size, out, f, "W_SETUP_FAILED after W_READY");
        break;
    case PICOS__V1__WORKER_OP__W_FROM_JOB:
        if (!v->running)
            return fail(why, size, out, f, "W_FROM_JOB with no job running");
        if (f->job_id != v->job_id) {
            snprintf(t, sizeof t,
                     "W_FROM_JOB for job %" PRIu64 ", it runs %" PRIu64,
                     f->job_id, v->job_id);
            return fail(why, size, out, f, t);
        }
        if (f->data.len > PC_JOB_MSG_MAX)
            return fail(why, size, out, f, "W_FROM_JOB over the message limit");
        break;
    case PICOS__V1__WORKER_OP__W_DONE:
        if (!v->running)
            return fail(why, size, out, f, "W_DONE with no job running");
        if (!check_done(v, f->done, t, sizeof t))
            return fail(why, size, out, f, t);
        break;
    default:
        snprintf(t, sizeof t, "op %d is not a worker's", (int)f->op);
        return fail(why, size, out, f, t);
    }
    *out = f;
    return true;
}
