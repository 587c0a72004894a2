/* apps/worker/wframe.c — blocking frame I/O for picos-worker and its test.
 *
 * A worker is a plain single-threaded process that waits for one thing at
 * a time (the next W_RUN, a job's pc_job_recv()), so its frames are read
 * and written with blocking calls: the length prefix first, bounded before
 * the body is allocated, then the body in full, then protobuf-c's unpack
 * (which allocates in proportion to the bytes only). Writes go through
 * send(MSG_NOSIGNAL) so that a node gone mid-write is an EPIPE, not a
 * signal; on a descriptor that is not a socket (a pipe in a test) they
 * fall back to write().
 */
#include "wframe.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* Read exactly n bytes. Returns n, 0 on EOF before the first byte, or -1
 * (EPROTO on EOF inside, else the read's errno). */
static ssize_t
read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;

    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0) {
            if (got == 0)
                return 0;
            errno = EPROTO;
            return -1;
        }
        got += (size_t)r;
    }
    return (ssize_t)got;
}

static int
write_full(int fd, const void *buf, size_t n)
{
    size_t put = 0;
    int use_send = 1;

    while (put < n) {
        ssize_t r;
        if (use_send)
            r = send(fd, (const char *)buf + put, n - put, MSG_NOSIGNAL);
        else
            r = write(fd, (const char *)buf + put, n - put);
        if (r < 0 && errno == ENOTSOCK && use_send) {
            use_send = 0;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        put += (size_t)r;
    }
    return 0;
}

int
pc__wframe_read(int fd, size_t max, Picos__V1__WorkerFrame **out)
{
    unsigned char hdr[4];
    uint32_t len;
    unsigned char *body;
    ssize_t r;

    *out = NULL;
    r = read_full(fd, hdr, sizeof hdr);
    if (r <= 0)
        return r == 0 ? 1 : -1;
    len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
          (uint32_t)hdr[2] << 8 | (uint32_t)hdr[3];
    if (len > max) {
        errno = EMSGSIZE;
        return -1;
    }
    body = malloc(len ? len : 1);
    if (!body) {
        errno = ENOMEM;
        return -1;
    }
    r = read_full(fd, body, len);
    if (len && r <= 0) {
        if (r == 0)
            errno = EPROTO;
        free(body);
        return -1;
    }
    *out = picos__v1__worker_frame__unpack(NULL, len, body);
    free(body);
    if (!*out) {
        errno = EPROTO;
        return -1;
    }
    return 0;
}

int
pc__wframe_write(int fd, size_t max, const Picos__V1__WorkerFrame *f)
{
    size_t n = picos__v1__worker_frame__get_packed_size(f);
    unsigned char *buf;
    int rc, e;

    if (n > max || n > UINT32_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    buf = malloc(4 + n);
    if (!buf) {
        errno = ENOMEM;
        return -1;
    }
    buf[0] = (unsigned char)(n >> 24);
    buf[1] = (unsigned char)(n >> 16);
    buf[2] = (unsigned char)(n >> 8);
    buf[3] = (unsigned char)n;
    picos__v1__worker_frame__pack(f, buf + 4);
    rc = write_full(fd, buf, 4 + n);
    e = errno;
    free(buf);
    errno = e;
    return rc;
}
