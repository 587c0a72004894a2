/* tests/fuzz_down.c — fuzz target for pc_down_parse(), the decoder of
 * DOWN/EXIT payloads (bytes that will cross nodes).
 *
 * Built with clang and -DPICOS_FUZZ=ON it is a libFuzzer target. Otherwise
 * main() below is a deterministic driver for ctest: random inputs and
 * random mutations of a valid payload from a fixed seed, each parsed under
 * ASan in the sanitizer builds; an accepted input must describe a range
 * inside the payload. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/picos.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pc_msg *m = NULL;
    pc_down d;
    size_t len;

    if (pc_msg_new(&m, PC_MSG_DOWN, data, size) != PC_OK)
        return 0;
    if (pc_down_parse(m, &d) == PC_OK) {
        const char *p = pc_msg_data(m, &len);
        const char *v = d.value;
        if (v < p || v + d.value_len > p + len || strlen(d.error) > len ||
            (d.value_type && strlen(d.value_type) > len))
            abort(); /* accepted, but points outside the payload */
    }
    pc_msg_free(&m);
    return 0;
}

#ifndef PICOS_LIBFUZZER
static uint64_t seed = 0x9e3779b97f4a7c15ull;

static uint64_t
rnd(void)
{
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
}

/* A valid payload: version 1, reason NORMAL, a ref, type "t", value "vv". */
static size_t
valid(uint8_t *b)
{
    static const uint8_t v[] = {1, 0, 0,   0, 1, 2, 3, 4, 5,   6,
                                7, 8, 9,   8, 7, 6, 5, 4, 3,   2,
                                1, 0, 't', 0, 2, 0, 0, 0, 'v', 'v'};
    memcpy(b, v, sizeof v);
    return sizeof v;
}

int
main(int argc, char **argv)
{
    long runs = argc > 1 ? atol(argv[1]) : 200000;
    uint8_t buf[96];
    long accepted = 0;

    for (long i = 0; i < runs; i++) {
        size_t n;
        if (i % 2) { /* random bytes of random length */
            n = rnd() % sizeof buf;
            for (size_t j = 0; j < n; j++)
                buf[j] = (uint8_t)rnd();
        } else { /* a valid payload with a few bytes changed, maybe cut */
            n = valid(buf);
            for (int k = (int)(rnd() % 4); k >= 0; k--)
                buf[rnd() % n] = (uint8_t)rnd();
            if (rnd() % 4 == 0)
                n = rnd() % (n + 1);
        }
        LLVMFuzzerTestOneInput(buf, n);
        pc_msg *m = NULL;
        pc_down d;
        if (pc_msg_new(&m, PC_MSG_DOWN, buf, n) == PC_OK &&
            pc_down_parse(m, &d) == PC_OK)
            accepted++;
        pc_msg_free(&m);
    }
    /* the unchanged valid payload must parse */
    size_t n = valid(buf);
    pc_msg *m = NULL;
    pc_down d;
    if (pc_msg_new(&m, PC_MSG_DOWN, buf, n) != PC_OK ||
        pc_down_parse(m, &d) != PC_OK || strcmp(d.value_type, "t") != 0 ||
        d.value_len != 2) {
        fprintf(stderr, "fuzz_down: the valid payload did not parse\n");
        return 1;
    }
    pc_msg_free(&m);
    printf("fuzz_down: %ld inputs, %ld accepted: 1 passed, 0 failed\n", runs,
           accepted);
    return 0;
}
#endif
