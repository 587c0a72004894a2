/* tests/fuzz_wframe.c — fuzz target for pc__cw_check()
 * (services/compute_wframe.c), the compute node's judge of a frame from a
 * worker process (untrusted: the worker runs a client's code).
 *
 * The first byte of an input picks what the session knows of the
 * connection (before or after W_HELLO, ready or not, a job running or
 * not, with files it may return), the rest is the frame. The check must
 * never accept what protobuf-c does not unpack, must accept only ops a
 * worker may send in that state, and when it accepts a W_DONE or a
 * W_FROM_JOB it is for the job that runs, within the limits; a refusal has
 * a one-line reason. Any difference aborts. Seeds are sound frames of each
 * op and a few broken ones. Built with clang and -DPICOS_FUZZ=ON it is a
 * libFuzzer target; otherwise fz_driver() (fuzzutil.h) runs seeds and
 * mutations. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/computation.h"

#include "compute_node_int.h"
#include "fuzzutil.h"

static char *const outs[] = {"out.txt", "b"};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pc__cw_view v = {.workers = 3};
    Picos__V1__WorkerFrame *f, *ref;
    char why[200] = "";
    bool ok;

    if (size < 1)
        return 0;
    v.worker = (data[0] & 3) == 3 ? -1 : (int)(data[0] & 3);
    v.ready = data[0] & 4;
    v.running = data[0] & 8;
    v.job_id = (data[0] >> 4) & 3;
    v.peer_pid = data[0] & 64 ? 1234 : 0;
    if (data[0] & 128) {
        v.files_out = outs;
        v.nfiles_out = 2;
    }
    ok = pc__cw_check(&v, data + 1, size - 1, &f, why, sizeof why);
    ref = picos__v1__worker_frame__unpack(NULL, size - 1, data + 1);
    if (ok != (f != NULL) || (ok && !ref)) {
        fprintf(stderr, "fuzz_wframe: accepted what does not unpack\n");
        abort();
    }
    if (!ok && (!why[0] || strchr(why, '\n') || strlen(why) >= sizeof why))
        abort();
    if (ok) {
        switch (f->op) {
        case PICOS__V1__WORKER_OP__W_HELLO:
            if (v.worker >= 0 || f->worker < 0 || f->worker >= v.workers ||
                (v.peer_pid && f->pid != 1234))
                abort();
            break;
        case PICOS__V1__WORKER_OP__W_READY:
        case PICOS__V1__WORKER_OP__W_SETUP_FAILED:
            if (v.worker < 0 || v.ready)
                abort();
            break;
        case PICOS__V1__WORKER_OP__W_FROM_JOB:
            if (v.worker < 0 || !v.running || f->job_id != v.job_id ||
                f->data.len > PC_JOB_MSG_MAX)
                abort();
            break;
        case PICOS__V1__WORKER_OP__W_DONE:
            if (v.worker < 0 || !v.running || !f->done ||
                f->done->id != v.job_id ||
                f->done->result.len > PC_JOB_RESULT_MAX)
                abort();
            for (size_t i = 0; i < f->done->n_files_out; i++) {
                const char *n = f->done->files_out[i]->name;
                if (!v.nfiles_out || (strcmp(n, outs[0]) && strcmp(n, outs[1])))
                    abort();
            }
            break;
        default:
            fprintf(stderr, "fuzz_wframe: accepted op %d\n", (int)f->op);
            abort();
        }
        picos__v1__worker_frame__free_unpacked(f, NULL);
    }
    if (ref)
        picos__v1__worker_frame__free_unpacked(ref, NULL);
    return 0;
}

/* ---- seeds ------------------------------------------------------------------ */

#define NSEEDS 16
static struct fz_seed seeds[NSEEDS];
static size_t nseeds;

static void
seed_pb(uint8_t state, const ProtobufCMessage *pb)
{
    size_t n = protobuf_c_message_get_packed_size(pb);
    uint8_t *b = malloc(n + 1);
    if (!b)
        abort();
    b[0] = state;
    protobuf_c_message_pack(pb, b + 1);
    fz_seed_add(seeds, &nseeds, NSEEDS, b, n + 1);
    free(b);
}

__attribute__((constructor)) static void
make_seeds(void)
{
    Picos__V1__WorkerFrame f = PICOS__V1__WORKER_FRAME__INIT;
    Picos__V1__ComputeJobEvent d = PICOS__V1__COMPUTE_JOB_EVENT__INIT;
    Picos__V1__ComputeJobFile jf = PICOS__V1__COMPUTE_JOB_FILE__INIT,
                              *jfs[] = {&jf};
    char *jobs[] = {"echo", "square"};
    static const uint8_t junk[] = {3, 0x08, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t cut[] = {0x99, 0x3a, 0x20, 0x09};

    f.op = PICOS__V1__WORKER_OP__W_HELLO;
    f.worker = 1;
    f.pid = 1234;
    seed_pb(3 | 64, &f.base);
    f = (Picos__V1__WorkerFrame)PICOS__V1__WORKER_FRAME__INIT;
    f.op = PICOS__V1__WORKER_OP__W_READY;
    f.jobs = jobs;
    f.n_jobs = 2;
    f.name = "squares";
    f.version = 2;
    seed_pb(1, &f.base);
    f = (Picos__V1__WorkerFrame)PICOS__V1__WORKER_FRAME__INIT;
    f.op = PICOS__V1__WORKER_OP__W_SETUP_FAILED;
    f.text = "worker_setup: no";
    seed_pb(2, &f.base);
    f = (Picos__V1__WorkerFrame)PICOS__V1__WORKER_FRAME__INIT;
    f.op = PICOS__V1__WORKER_OP__W_FROM_JOB;
    f.job_id = 2;
    f.data.data = (uint8_t *)"hi";
    f.data.len = 2;
    seed_pb(1 | 4 | 8 | (2 << 4), &f.base);
    f = (Picos__V1__WorkerFrame)PICOS__V1__WORKER_FRAME__INIT;
    f.op = PICOS__V1__WORKER_OP__W_DONE;
    d.id = 1;
    d.why = PICOS__V1__COMPUTE_WHY__WHY_OK;
    d.result.data = (uint8_t *)"49";
    d.result.len = 2;
    jf.name = "out.txt";
    jf.data.data = (uint8_t *)"x";
    jf.data.len = 1;
    d.files_out = jfs;
    d.n_files_out = 1;
    f.done = &d;
    seed_pb(0 | 4 | 8 | (1 << 4) | 128, &f.base);
    d.why = PICOS__V1__COMPUTE_WHY__WHY_FAILED;
    d.error = "no";
    seed_pb(0 | 4 | 8 | (1 << 4), &f.base);
    f.op = PICOS__V1__WORKER_OP__W_RUN;
    seed_pb(0 | 4, &f.base);
    fz_seed_add(seeds, &nseeds, NSEEDS, junk, sizeof junk);
    fz_seed_add(seeds, &nseeds, NSEEDS, cut, sizeof cut);
    for (size_t i = nseeds; i < NSEEDS; i++)
        seeds[i] = seeds[i % nseeds];
}

FZ_MAIN("fuzz_wframe", seeds)
