/* tests/fuzz_sock_msg.c — fuzz target for pc_sock_recv_msg(), the decoder of
 * length-prefixed frames (bytes from the network).
 *
 * The input is written into one end of a Unix socketpair; a task reads
 * frames from the other end, wrapped in a pc_sock, until an error. A model
 * of the format, computed from the input alone, says what every call must
 * return: each frame's length and bytes (NUL after them), PC_ETOOBIG for a
 * length above MAX (0xFFFFFFFF among them) before anything is allocated,
 * PC_EPROTO for a header or payload cut by the end, PC_ECLOSED at the end
 * between frames. Any difference aborts.
 *
 * Built with clang and -DPICOS_FUZZ=ON it is a libFuzzer target; otherwise
 * fz_driver() (fuzzutil.h) runs the seeds and their mutations for ctest. */
#include <sys/socket.h>

#include "picos/sock.h"

#include "fuzzutil.h"

#define MAX 1024 /* the largest frame accepted */

struct ctx {
    pc_sock *s;
    const uint8_t *data;
    size_t size;
};

/* What the next pc_sock_recv_msg() must give for the input from pos. */
static pc_err
model(const uint8_t *d, size_t size, size_t pos, size_t *len)
{
    size_t rem = size - pos, n;

    *len = 0;
    if (rem == 0)
        return PC_ECLOSED;
    if (rem < 4)
        return PC_EPROTO;
    n = (size_t)d[pos] << 24 | (size_t)d[pos + 1] << 16 |
        (size_t)d[pos + 2] << 8 | (size_t)d[pos + 3];
    if (n > MAX)
        return PC_ETOOBIG;
    if (rem - 4 < n)
        return PC_EPROTO;
    *len = n;
    return PC_OK;
}

static pc_msg *
reader(void *arg)
{
    struct ctx *c = arg;
    size_t pos = 0;

    for (;;) {
        void *buf = (void *)1;
        size_t len = 1, want_len;
        pc_err want = model(c->data, c->size, pos, &want_len);
        pc_err rc = pc_sock_recv_msg(c->s, MAX, &buf, &len, FZ_TIMEOUT);

        if (rc != want)
            abort();
        if (rc != PC_OK) {
            if (buf || len)
                abort(); /* an error hands nothing back */
            break;
        }
        if (!buf || len != want_len || ((char *)buf)[len] != '\0' ||
            memcmp(buf, c->data + pos + 4, len) != 0)
            abort();
        free(buf);
        pos += 4 + len;
    }
    pc_sock_close(&c->s);
    return NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ctx c = {NULL, data, size};
    int sv[2];

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    if (pc_sock_wrap(&c.s, sv[0]) != PC_OK)
        abort();
    fz_run(reader, &c, sv[1], data, size);
    return 0;
}

static const struct fz_seed seeds[] = {
    FZ_SEED("\xff\xff\xff\xff"),                  /* the largest length */
    FZ_SEED("\xff\xff\xff\xffpayload"),           /* ... with bytes after */
    FZ_SEED("\x00\x00\x00\x05hello"),             /* one frame */
    FZ_SEED("\x00\x00\x00\x00\x00\x00\x00\x01x"), /* empty frame, then one */
    FZ_SEED("\x00\x00\x00\x10"
            "abc"),              /* payload cut short */
    FZ_SEED("\x00\x00"),         /* header cut short */
    FZ_SEED("\x00\x00\x04\x00"), /* MAX, nothing after */
    FZ_SEED("\x00\x00\x04\x01"), /* MAX + 1 */
    FZ_SEED("\x00\x00\x00\x03one\x00\x00\x00\x03two\x00\x00\x00"),
};

FZ_MAIN("fuzz_sock_msg", seeds)
