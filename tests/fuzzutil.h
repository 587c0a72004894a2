/* tests/fuzzutil.h — shared scaffolding of the fuzz targets that feed bytes
 * to a decoder through a real fd (socketpair or pipe), because the decoders
 * are task calls that read and wait.
 *
 * fz_run() runs the decoding task on a node of one worker, started on the
 * first input and kept for the process (libFuzzer never returns; the
 * deterministic drivers end it with fz_end()), while the calling thread
 * writes the input into the other end and then closes it, so the task sees
 * the bytes arrive in pieces and then end of file. The task closes its end
 * when it stops early, so the writer gets EPIPE instead of blocking.
 *
 * fz_driver() is main() for ctest without libFuzzer: the seeds first, then
 * random mutations of them (bytes changed, cut, grown, spliced) and random
 * bytes, from a fixed seed so every run is the same. */
#ifndef PICOS_FUZZUTIL_H
#define PICOS_FUZZUTIL_H

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "picos/picos.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Seconds a decoder may take for one input before the target aborts. */
#define FZ_TIMEOUT 30.0

static int fz_up; /* the node runs */

static inline void
fz_node(void)
{
    if (!fz_up) {
        pc_node_opts o = {0};
        o.workers = 1;
        signal(SIGPIPE, SIG_IGN); /* the reader may close before we're done */
        if (pc_node_start(&o) != PC_OK)
            abort();
        fz_up = 1;
    }
}

/* Run fn(arg) in a task while writing data into wfd (then closed); wait for
 * the task. */
static inline void
fz_run(pc_task_fn fn, void *arg, int wfd, const uint8_t *data, size_t size)
{
    pc_spawn_opts o;
    pc_ref r;
    size_t off = 0;

    fz_node();
    memset(&o, 0, sizeof o);
    o.flags = PC_TASK_JOINABLE;
    if (pc_spawn(fn, arg, &o, &r) != PC_OK)
        abort();
    while (off < size) {
        ssize_t k = write(wfd, data + off, size - off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            break; /* EPIPE: the reader stopped */
        off += (size_t)k;
    }
    close(wfd);
    if (pc_task_join(r, FZ_TIMEOUT, NULL) != PC_OK)
        abort();
}

struct fz_seed {
    const char *bytes;
    size_t len;
};

/* A copy of p[0..n) as seeds[*nseeds] (at most cap seeds). */
static inline void
fz_seed_add(struct fz_seed *seeds, size_t *nseeds, size_t cap, const void *p,
            size_t n)
{
    char *copy = malloc(n ? n : 1);

    if (!copy || *nseeds == cap)
        abort();
    memcpy(copy, p, n);
    seeds[*nseeds].bytes = copy;
    seeds[(*nseeds)++].len = n;
}

/* Each seed as dir/seed-NN (a corpus for libFuzzer); exit 1 on failure. */
static inline void
fz_write_seeds(const char *dir, const struct fz_seed *seeds, size_t nseeds)
{
    char path[4096];

    for (size_t i = 0; i < nseeds; i++) {
        FILE *f;
        snprintf(path, sizeof path, "%s/seed-%02zu", dir, i);
        if (!(f = fopen(path, "wb")) ||
            fwrite(seeds[i].bytes, 1, seeds[i].len, f) != seeds[i].len ||
            fclose(f) != 0) {
            perror(path);
            exit(1);
        }
    }
}

#define FZ_SEED(s)                                                             \
    {                                                                          \
        (s), sizeof(s) - 1                                                     \
    }

/* Every seed once (libFuzzer: from LLVMFuzzerInitialize, since the seeds
 * live in the source and not in a corpus directory). */
static inline void
fz_run_seeds(const struct fz_seed *seeds, size_t nseeds)
{
    for (size_t i = 0; i < nseeds; i++)
        LLVMFuzzerTestOneInput((const uint8_t *)seeds[i].bytes, seeds[i].len);
}

#ifndef PICOS_LIBFUZZER
static uint64_t fz_state = 0x9e3779b97f4a7c15ull;

static inline uint64_t
fz_rnd(void)
{
    fz_state ^= fz_state << 13;
    fz_state ^= fz_state >> 7;
    fz_state ^= fz_state << 17;
    return fz_state;
}

/* One input into buf (cap bytes): a seed as is, a mutated seed, or random
 * bytes; returns its length. */
static inline size_t
fz_input(uint8_t *buf, size_t cap, const struct fz_seed *seeds, size_t nseeds,
         long i)
{
    const struct fz_seed *s = &seeds[fz_rnd() % nseeds];
    size_t n = s->len < cap ? s->len : cap;

    if (i < (long)nseeds) {
        s = &seeds[i];
        n = s->len < cap ? s->len : cap;
        memcpy(buf, s->bytes, n);
        return n;
    }
    if (i % 4 == 0) { /* random bytes of random length */
        n = fz_rnd() % (cap / 4 + 1);
        for (size_t j = 0; j < n; j++)
            buf[j] = (uint8_t)fz_rnd();
        return n;
    }
    memcpy(buf, s->bytes, n);
    switch (fz_rnd() % 4) {
    case 0: /* a few bytes changed */
        for (int k = (int)(fz_rnd() % 4); k >= 0 && n; k--)
            buf[fz_rnd() % n] = (uint8_t)fz_rnd();
        break;
    case 1: /* cut */
        n = fz_rnd() % (n + 1);
        break;
    case 2: /* another seed appended */
    {
        const struct fz_seed *t = &seeds[fz_rnd() % nseeds];
        size_t k = t->len < cap - n ? t->len : cap - n;
        memcpy(buf + n, t->bytes, k);
        n += k;
        break;
    }
    default: /* a run of one byte inserted */
    {
        size_t at = n ? fz_rnd() % n : 0, k = fz_rnd() % (cap / 8 + 1);
        uint8_t b = (uint8_t)fz_rnd();
        if (k > cap - n)
            k = cap - n;
        memmove(buf + at + k, buf + at, n - at);
        memset(buf + at, b, k);
        n += k;
        break;
    }
    }
    return n;
}

static inline int
fz_driver(const char *name, int argc, char **argv, const struct fz_seed *seeds,
          size_t nseeds)
{
    long runs = argc > 1 ? atol(argv[1]) : 20000;
    static uint8_t buf[8192];

    for (long i = 0; i < runs; i++)
        LLVMFuzzerTestOneInput(buf,
                               fz_input(buf, sizeof buf, seeds, nseeds, i));
    if (fz_up && pc_node_run() != PC_OK) /* the node fz_run started */
        return 1;
    printf("%s: %ld inputs: 1 passed, 0 failed\n", name, runs);
    return 0;
}
#endif

/* The entry points of a target with a `seeds` table: under libFuzzer the
 * initializer runs every seed once; otherwise main() is fz_driver(). */
#ifdef PICOS_LIBFUZZER
#define FZ_MAIN(name, seeds)                                                   \
    int LLVMFuzzerInitialize(int *argc, char ***argv);                         \
    int LLVMFuzzerInitialize(int *argc, char ***argv)                          \
    {                                                                          \
        (void)argc;                                                            \
        (void)argv;                                                            \
        fz_run_seeds(seeds, sizeof seeds / sizeof seeds[0]);                   \
        return 0;                                                              \
    }
#else
#define FZ_MAIN(name, seeds)                                                   \
    int main(int argc, char **argv)                                            \
    {                                                                          \
        return fz_driver(name, argc, argv, seeds,                              \
                         sizeof seeds / sizeof seeds[0]);                      \
    }
#endif

#endif
