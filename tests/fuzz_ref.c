/* tests/fuzz_ref.c — fuzz target for pc_ref_decode(), the decoder of the
 * wire form of refs (bytes that come from other nodes).
 *
 * Built with clang and -DPICOS_FUZZ=ON it is a libFuzzer target. Otherwise
 * main() below is a deterministic driver for ctest: the seeds (truncated,
 * overlong, versions 0, 2 and 255) with their expected answers, then random
 * inputs and random mutations of a valid encoding from a fixed seed, each
 * decoded under ASan in the sanitizer builds; an accepted input must be
 * exactly PC_REF_WIRE_SIZE bytes of version 1 and encode back to itself. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/picos.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t again[PC_REF_WIRE_SIZE];
    uint64_t inc = 0;
    pc_ref r;
    pc_err rc = pc_ref_decode(data, size, &r, &inc);

    if (rc == PC_OK) {
        if (size != PC_REF_WIRE_SIZE || data[0] != 1 ||
            pc_ref_encode(r, inc, again, sizeof again) != PC_REF_WIRE_SIZE ||
            memcmp(again, data, size) != 0)
            abort(); /* accepted, but not a valid encoding of what it gave */
    } else if (rc != PC_EINVAL && rc != PC_EPROTO) {
        abort();
    } else if (rc == PC_EPROTO && (size != PC_REF_WIRE_SIZE || data[0] == 1)) {
        abort(); /* only a whole encoding of another version is EPROTO */
    }
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

/* A valid encoding of a fixed ref and incarnation. */
static size_t
valid(uint8_t *b)
{
    pc_ref r = {0x0102030405060708ull, 0x1112131415161718ull};

    return pc_ref_encode(r, 0xa1a2a3a4a5a6a7a8ull, b, PC_REF_WIRE_SIZE);
}

/* The seeds and what each must give. */
static int
seeds(void)
{
    static const struct {
        const char *what;
        long len; /* -1: whole, else cut or grown to len */
        int version;
        pc_err want;
    } s[] = {
        {"valid", -1, 1, PC_OK},
        {"empty", 0, 1, PC_EINVAL},
        {"truncated", PC_REF_WIRE_SIZE - 1, 1, PC_EINVAL},
        {"version only", 1, 1, PC_EINVAL},
        {"overlong", PC_REF_WIRE_SIZE + 1, 1, PC_EINVAL},
        {"version 0", -1, 0, PC_EPROTO},
        {"version 2", -1, 2, PC_EPROTO},
        {"version 255", -1, 255, PC_EPROTO},
        {"version 2, truncated", PC_REF_WIRE_SIZE - 1, 2, PC_EINVAL},
    };
    uint8_t buf[PC_REF_WIRE_SIZE + 8] = {0};
    int bad = 0;

    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        size_t n = valid(buf);
        pc_ref r;
        buf[0] = (uint8_t)s[i].version;
        if (s[i].len >= 0)
            n = (size_t)s[i].len;
        LLVMFuzzerTestOneInput(buf, n);
        pc_err rc = pc_ref_decode(buf, n, &r, NULL);
        if (rc != s[i].want) {
            fprintf(stderr, "fuzz_ref: seed %s: %s, want %s\n", s[i].what,
                    pc_err_name(rc), pc_err_name(s[i].want));
            bad++;
        }
    }
    return bad;
}

int
main(int argc, char **argv)
{
    long runs = argc > 1 ? atol(argv[1]) : 200000;
    uint8_t buf[64];
    long accepted = 0;
    int bad = seeds();

    for (long i = 0; i < runs; i++) {
        size_t n;
        if (i % 2) { /* random bytes of random length */
            n = rnd() % sizeof buf;
            for (size_t j = 0; j < n; j++)
                buf[j] = (uint8_t)rnd();
        } else { /* a valid encoding with a few bytes changed, maybe cut */
            n = valid(buf);
            for (int k = (int)(rnd() % 4); k >= 0; k--)
                buf[rnd() % n] = (uint8_t)rnd();
            if (rnd() % 4 == 0)
                n = rnd() % (n + 2);
        }
        LLVMFuzzerTestOneInput(buf, n);
        pc_ref r;
        if (pc_ref_decode(buf, n, &r, NULL) == PC_OK)
            accepted++;
    }
    if (bad) {
        fprintf(stderr, "fuzz_ref: %d seeds failed\n", bad);
        return 1;
    }
    printf("fuzz_ref: %ld inputs, %ld accepted: 1 passed, 0 failed\n", runs,
           accepted);
    return 0;
}
#endif
