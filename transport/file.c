/* transport/file.c — pc_fd (non-blocking fds over pc_wait_fd) and pc_file
 * (regular files over a pc_pool).
 *
 * Design. A pc_fd is the fd plus a read buffer. The buffer exists for
 * readline: bytes read past a newline must be kept for the next call, and
 * every read call drains it first, so mixing read and readline is safe.
 * Every operation is "try the system call; on EAGAIN wait in pc_wait_fd()
 * for what is left of the deadline; try again", so only the calling task
 * ever waits. Nothing is locked: a handle has one reader and one writer at a
 * time, as a socket would.
 *
 * A pc_file can't use readiness (regular files are always readable to
 * poll), so each call packs its arguments in a job on the caller's stack
 * and runs it with pc_pool_run() with no timeout: the job writes into the
 * caller's buffer, so the caller must not leave before it ends. errno is
 * carried back in the job and set in the calling thread. The default pool
 * is reference-counted by the files opened on it: made on the first open,
 * freed (outside the lock, since pc_pool_free() may suspend a task) by the
 * last close, so nothing outlives the files that need it.
 */
#define _GNU_SOURCE /* pipe2, O_CLOEXEC, pread, mkdtemp, setenv */
#include "picos/file.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "picos/node.h"
#include "picos/task.h"

/* ---- pc_fd ---------------------------------------------------------------- */

#define RBUF_MIN 4096

struct pc_fd {
    int fd;
    char *rbuf; /* buffered input: rbuf[rpos .. rlen) */
    size_t rpos, rlen, rcap;
};

static pthread_once_t sigpipe_once = PTHREAD_ONCE_INIT;

static void
ignore_sigpipe(void)
{
    struct sigaction sa;

    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_IGN;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGPIPE, &sa, NULL);
    }
}

/* Internal: also used by proc.c before it spawns. */
void pc__file_ignore_sigpipe(void);

void
pc__file_ignore_sigpipe(void)
{
    pthread_once(&sigpipe_once, ignore_sigpipe);
}

pc_err
pc_fd_open(pc_fd **out, int fd)
{
    pc_fd *f;
    int fl;

    if (!out || fd < 0)
        return PC_EINVAL;
    *out = NULL;
    pc__file_ignore_sigpipe();
    fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return PC_ESYS;
    if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return PC_ESYS;
    f = calloc(1, sizeof *f);
    if (!f)
        return PC_ENOMEM;
    f->fd = fd;
    *out = f;
    return PC_OK;
}

int
pc_fd_fileno(const pc_fd *f)
{
    return f ? f->fd : -1;
}

/* Seconds left before `deadline` (negative deadline: forever -> -1). */
static double
left(double deadline)
{
    double l;

    if (deadline < 0)
        return -1;
    l = deadline - pc_now();
    return l > 0 ? l : 0;
}

static double
deadline_of(double timeout)
{
    return timeout < 0 ? -1 : pc_now() + timeout;
}

/* Wait for `ev` until the deadline. PC_ETIMEDOUT when it has passed. */
static pc_err
wait_ready(int fd, int ev, double deadline)
{
    double l = left(deadline);

    if (l == 0)
        return PC_ETIMEDOUT;
    return pc_wait_fd(fd, ev, l, NULL);
}

/* One read(2) with waiting; the buffer is not looked at. */
static pc_err
raw_read(pc_fd *f, void *buf, size_t len, double deadline, size_t *n)
{
    for (;;) {
        ssize_t r = read(f->fd, buf, len);
        if (r >= 0) {
            *n = (size_t)r;
            return PC_OK;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return PC_ESYS;
        pc_err rc = wait_ready(f->fd, PC_READ, deadline);
        if (rc != PC_OK)
            return rc;
    }
}

static size_t
take_buffered(pc_fd *f, void *buf, size_t len)
{
    size_t k = f->rlen - f->rpos;

    if (k > len)
        k = len;
    memcpy(buf, f->rbuf + f->rpos, k);
    f->rpos += k;
    if (f->rpos == f->rlen)
        f->rpos = f->rlen = 0;
    return k;
}

pc_err
pc_fd_read(pc_fd *f, void *buf, size_t len, double timeout, size_t *n)
{
    if (!f || !n || (!buf && len))
        return PC_EINVAL;
    *n = 0;
    if (len == 0)
        return PC_OK;
    if (f->rlen > f->rpos) {
        *n = take_buffered(f, buf, len);
        return PC_OK;
    }
    return raw_read(f, buf, len, deadline_of(timeout), n);
}

pc_err
pc_fd_read_full(pc_fd *f, void *buf, size_t len, double timeout, size_t *n)
{
    double deadline = deadline_of(timeout);
    size_t got = 0;

    if (!f || !n || (!buf && len))
        return PC_EINVAL;
    if (f->rlen > f->rpos)
        got = take_buffered(f, buf, len);
    while (got < len) {
        size_t k = 0;
        pc_err rc = raw_read(f, (char *)buf + got, len - got, deadline, &k);
        if (rc != PC_OK) {
            *n = got;
            return rc;
        }
        if (k == 0)
            break;
        got += k;
    }
    *n = got;
    return PC_OK;
}

/* Make room for at least `want` more bytes after rlen. */
static pc_err
rbuf_reserve(pc_fd *f, size_t want)
{
    if (f->rpos > 0) {
        memmove(f->rbuf, f->rbuf + f->rpos, f->rlen - f->rpos);
        f->rlen -= f->rpos;
        f->rpos = 0;
    }
    if (f->rcap - f->rlen >= want)
        return PC_OK;
    size_t cap = f->rcap ? f->rcap : RBUF_MIN;
    while (cap - f->rlen < want)
        cap *= 2;
    char *nb = realloc(f->rbuf, cap);
    if (!nb)
        return PC_ENOMEM;
    f->rbuf = nb;
    f->rcap = cap;
    return PC_OK;
}

static pc_err
cut_line(pc_fd *f, size_t k, char **line, size_t *len)
{
    char *s = malloc(k + 1);

    if (!s)
        return PC_ENOMEM;
    memcpy(s, f->rbuf + f->rpos, k);
    s[k] = '\0';
    f->rpos += k;
    if (f->rpos == f->rlen)
        f->rpos = f->rlen = 0;
    *line = s;
    if (len)
        *len = k;
    return PC_OK;
}

pc_err
pc_fd_readline(pc_fd *f, char **line, size_t *len, size_t max, double timeout)
{
    double deadline = deadline_of(timeout);
    size_t scanned = 0;

    if (!f || !line || max == 0)
        return PC_EINVAL;
    *line = NULL;
    if (len)
        *len = 0;
    for (;;) {
        size_t have = f->rlen - f->rpos;
        size_t lim = have < max ? have : max;
        char *nl = lim > scanned ? memchr(f->rbuf + f->rpos + scanned, '\n',
                                          lim - scanned)
                                 : NULL;
        if (nl)
            return cut_line(f, (size_t)(nl - (f->rbuf + f->rpos)) + 1, line,
                            len);
        scanned = lim;
        if (have >= max) {
            pc_err rc = cut_line(f, max, line, len);
            return rc == PC_OK ? PC_ETOOBIG : rc;
        }
        size_t chunk = max - have < RBUF_MIN ? RBUF_MIN : max - have;
        if (chunk > 65536)
            chunk = 65536;
        pc_err rc = rbuf_reserve(f, chunk);
        if (rc != PC_OK)
            return rc;
        size_t k = 0;
        rc = raw_read(f, f->rbuf + f->rlen, f->rcap - f->rlen, deadline, &k);
        if (rc != PC_OK)
            return rc;
        if (k == 0) { /* end of file */
            if (f->rlen == f->rpos)
                return PC_ECLOSED;
            return cut_line(f, f->rlen - f->rpos, line, len);
        }
        f->rlen += k;
    }
}

static pc_err
write_some(pc_fd *f, const void *buf, size_t len, double deadline, size_t *n)
{
    for (;;) {
        ssize_t r = write(f->fd, buf, len);
        if (r >= 0) {
            *n = (size_t)r;
            return PC_OK;
        }
        if (errno == EINTR)
            continue;
        if (errno == EPIPE)
            return PC_ECLOSED;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return PC_ESYS;
        pc_err rc = wait_ready(f->fd, PC_WRITE, deadline);
        if (rc != PC_OK)
            return rc;
    }
}

pc_err
pc_fd_write(pc_fd *f, const void *buf, size_t len, double timeout, size_t *n)
{
    size_t k = 0;
    pc_err rc;

    if (n)
        *n = 0;
    if (!f || (!buf && len))
        return PC_EINVAL;
    if (len == 0)
        return PC_OK;
    rc = write_some(f, buf, len, deadline_of(timeout), &k);
    if (n)
        *n = k;
    return rc;
}

pc_err
pc_fd_write_all(pc_fd *f, const void *buf, size_t len, double timeout,
                size_t *n)
{
    double deadline = deadline_of(timeout);
    size_t done = 0;
    pc_err rc = PC_OK;

    if (n)
        *n = 0;
    if (!f || (!buf && len))
        return PC_EINVAL;
    while (done < len) {
        size_t k = 0;
        rc = write_some(f, (const char *)buf + done, len - done, deadline, &k);
        if (rc != PC_OK)
            break;
        done += k;
    }
    if (n)
        *n = done;
    return rc;
}

pc_err
pc_fd_close(pc_fd **fp)
{
    pc_fd *f;
    int r;

    if (!fp || !*fp)
        return PC_OK;
    f = *fp;
    *fp = NULL;
    r = close(f->fd);
    free(f->rbuf);
    free(f);
    return r == 0 || errno == EINTR ? PC_OK : PC_ESYS;
}

/* ---- pc_file ---------------------------------------------------------------- */

struct pc_file {
    int fd;
    pc_pool *pool;
    bool default_pool;
};

static pthread_mutex_t defpool_lock = PTHREAD_MUTEX_INITIALIZER;
static pc_pool *defpool;
static long defpool_users;

static pc_err
defpool_get(pc_pool **out)
{
    pc_err rc = PC_OK;

    pthread_mutex_lock(&defpool_lock);
    if (!defpool)
        rc = pc_pool_new(&defpool, 2);
    if (rc == PC_OK) {
        defpool_users++;
        *out = defpool;
    }
    pthread_mutex_unlock(&defpool_lock);
    return rc;
}

static pc_err
defpool_put(void)
{
    pc_pool *p = NULL;

    pthread_mutex_lock(&defpool_lock);
    if (--defpool_users == 0) {
        p = defpool;
        defpool = NULL;
    }
    pthread_mutex_unlock(&defpool_lock);
    return p ? pc_pool_free(&p) : PC_OK;
}

enum job_op { OP_OPEN, OP_READ, OP_WRITE, OP_PREAD, OP_PWRITE };

struct job {
    enum job_op op;
    int fd;
    const char *path;
    int flags, mode;
    void *buf;
    size_t len;
    off_t off;
    /* results */
    ssize_t res;
    int err;
};

static void *
job_run(void *arg)
{
    struct job *j = arg;
    size_t done = 0;

    j->err = 0;
    switch (j->op) {
    case OP_OPEN:
        j->res = open(j->path, j->flags | O_CLOEXEC, j->mode);
        break;
    case OP_READ:
        do
            j->res = read(j->fd, j->buf, j->len);
        while (j->res < 0 && errno == EINTR);
        break;
    case OP_PREAD:
        while (done < j->len) {
            ssize_t r = pread(j->fd, (char *)j->buf + done, j->len - done,
                              j->off + (off_t)done);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                if (r < 0)
                    j->err = errno;
                break;
            }
            done += (size_t)r;
        }
        j->res = (ssize_t)done;
        return NULL;
    case OP_WRITE:
    case OP_PWRITE:
        while (done < j->len) {
            const char *b = (const char *)j->buf + done;
            ssize_t r = j->op == OP_WRITE ? write(j->fd, b, j->len - done)
                                          : pwrite(j->fd, b, j->len - done,
                                                   j->off + (off_t)done);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                j->err = r < 0 ? errno : EIO;
                break;
            }
            done += (size_t)r;
        }
        j->res = (ssize_t)done;
        return NULL;
    }
    if (j->res < 0)
        j->err = errno;
    return NULL;
}

/* Run j on the pool and map the outcome; errno is set from the job. */
static pc_err
run_job(pc_pool *pool, struct job *j)
{
    pc_err rc = pc_pool_run(pool, job_run, j, -1, NULL);

    if (rc != PC_OK)
        return rc;
    if (j->err) {
        errno = j->err;
        return j->err == ENOENT && j->op == OP_OPEN ? PC_ENOENT : PC_ESYS;
    }
    return PC_OK;
}

pc_err
pc_file_open(pc_file **out, const char *path, int flags, int mode,
             pc_pool *pool)
{
    struct job j;
    pc_file *f;
    pc_err rc;
    bool def = false;

    if (!out || !path)
        return PC_EINVAL;
    *out = NULL;
    f = calloc(1, sizeof *f);
    if (!f)
        return PC_ENOMEM;
    if (!pool) {
        rc = defpool_get(&pool);
        if (rc != PC_OK) {
            free(f);
            return rc;
        }
        def = true;
    }
    memset(&j, 0, sizeof j);
    j.op = OP_OPEN;
    j.path = path;
    j.flags = flags;
    j.mode = mode;
    rc = run_job(pool, &j);
    if (rc != PC_OK) {
        int e = errno;
        free(f);
        if (def)
            defpool_put();
        errno = e;
        return rc;
    }
    f->fd = (int)j.res;
    f->pool = pool;
    f->default_pool = def;
    *out = f;
    return PC_OK;
}

static pc_err
file_io(pc_file *f, enum job_op op, void *buf, size_t len, int64_t off,
        size_t *n)
{
    struct job j;
    pc_err rc;

    if (n)
        *n = 0;
    if (!f || (!buf && len) || off < 0 ||
        ((op == OP_READ || op == OP_PREAD) && !n))
        return PC_EINVAL;
    memset(&j, 0, sizeof j);
    j.op = op;
    j.fd = f->fd;
    j.buf = buf;
    j.len = len;
    j.off = (off_t)off;
    rc = run_job(f->pool, &j);
    if (n && j.res > 0)
        *n = (size_t)j.res;
    return rc;
}

pc_err
pc_file_read(pc_file *f, void *buf, size_t len, size_t *n)
{
    return file_io(f, OP_READ, buf, len, 0, n);
}

pc_err
pc_file_write(pc_file *f, const void *buf, size_t len, size_t *n)
{
    return file_io(f, OP_WRITE, (void *)buf, len, 0, n);
}

pc_err
pc_file_pread(pc_file *f, void *buf, size_t len, int64_t off, size_t *n)
{
    return file_io(f, OP_PREAD, buf, len, off, n);
}

pc_err
pc_file_pwrite(pc_file *f, const void *buf, size_t len, int64_t off, size_t *n)
{
    return file_io(f, OP_PWRITE, (void *)buf, len, off, n);
}

int
pc_file_fileno(const pc_file *f)
{
    return f ? f->fd : -1;
}

pc_err
pc_file_close(pc_file **fp)
{
    pc_file *f;
    int r, e = 0;

    if (!fp || !*fp)
        return PC_OK;
    f = *fp;
    *fp = NULL;
    r = close(f->fd);
    if (r < 0)
        e = errno;
    if (f->default_pool)
        defpool_put();
    free(f);
    if (r < 0 && e != EINTR) {
        errno = e;
        return PC_ESYS;
    }
    return PC_OK;
}
