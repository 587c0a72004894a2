/* tests/fuzz_readline.c — fuzz target for pc_fd_readline(), the bounded line
 * reader (bytes from pipes, subprocesses, sockets).
 *
 * The input is written into a pipe; a task reads lines of at most MAX bytes
 * from the other end until end of file. A model computed from the input
 * alone says what every call must return: a line through the first '\n'
 * within MAX bytes; PC_ETOOBIG with exactly MAX bytes when none comes in
 * time (the rest follows with the next call); the last, unterminated line
 * at end of file; then PC_ECLOSED with no line. Lines are NUL-terminated
 * copies (NUL bytes inside are kept). Any difference aborts.
 *
 * Built with clang and -DPICOS_FUZZ=ON it is a libFuzzer target; otherwise
 * fz_driver() (fuzzutil.h) runs the seeds and their mutations for ctest. */
#define _GNU_SOURCE /* pipe2 */
#include <fcntl.h>

#include "picos/file.h"

#include "fuzzutil.h"

#define MAX 64 /* the longest line returned */

struct ctx {
    pc_fd *f;
    const uint8_t *data;
    size_t size;
};

/* What the next pc_fd_readline() must give for the input from pos. */
static pc_err
model(const uint8_t *d, size_t size, size_t pos, size_t *len)
{
    size_t rem = size - pos, lim = rem < MAX ? rem : MAX;
    const uint8_t *nl = memchr(d + pos, '\n', lim);

    if (rem == 0) {
        *len = 0;
        return PC_ECLOSED;
    }
    if (nl) {
        *len = (size_t)(nl - (d + pos)) + 1;
        return PC_OK;
    }
    *len = lim;
    return rem >= MAX ? PC_ETOOBIG : PC_OK;
}

static pc_msg *
reader(void *arg)
{
    struct ctx *c = arg;
    size_t pos = 0;

    for (;;) {
        char *line = (char *)1;
        size_t len = 1, want_len;
        pc_err want = model(c->data, c->size, pos, &want_len);
        pc_err rc = pc_fd_readline(c->f, &line, &len, MAX, FZ_TIMEOUT);

        if (rc != want)
            abort();
        if (rc == PC_ECLOSED) {
            if (line || len)
                abort();
            break;
        }
        if (!line || len != want_len || line[len] != '\0' ||
            memcmp(line, c->data + pos, len) != 0)
            abort();
        free(line);
        pos += len;
    }
    pc_fd_close(&c->f);
    return NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ctx c = {NULL, data, size};
    int p[2];

    if (pipe2(p, O_CLOEXEC) < 0)
        abort();
    if (pc_fd_open(&c.f, p[0]) != PC_OK)
        abort();
    fz_run(reader, &c, p[1], data, size);
    return 0;
}

#define A16 "aaaaaaaaaaaaaaaa"
#define A64 A16 A16 A16 A16

static const struct fz_seed seeds[] = {
    FZ_SEED("hello\nworld\n"),
    FZ_SEED("no newline at all"),             /* the last line, cut by EOF */
    FZ_SEED(A64 A64 A64 "\n"),                /* an overlong line */
    FZ_SEED(A64 "\n"),                        /* MAX bytes, then '\n' */
    FZ_SEED(A16 A16 A16 "aaaaaaaaaaaaaaa\n"), /* MAX bytes with the '\n' */
    FZ_SEED(A64),                             /* exactly MAX, then EOF */
    FZ_SEED("\n\n\n"),
    FZ_SEED("a\0b\nc\0\n"), /* NUL bytes inside lines */
    FZ_SEED("\r\n\r\nx"),
};

FZ_MAIN("fuzz_readline", seeds)
