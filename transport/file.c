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
 * poll), so each call runs as jobs on a pc_pool. A job's state lives on the
 * heap, never on the caller's stack (a small task's stack is another small
 * task's while it waits), and the pool thread never sees the caller's
 * buffers: a write copies its bytes into the job, a read lands in the job
 * and is copied out by the caller once it is awake. So a caller that timed
 * out or was terminated leaves the pool nothing of its own to write into.
 * The pool thread gets the job's handle (a slot and a generation in a
 * registry under one lock), not its address: a caller that gives up on a
 * job that has not started frees it, and the thread then finds nothing;
 * one that gives up on a running job marks it abandoned and the thread
 * frees it when it ends. A job whose caller was terminated is freed by a
 * sweep (the owner's ref is no longer alive), with the fd of an open
 * nobody collected. Jobs move at most FILE_CHUNK bytes, so the copy is
 * bounded. errno is carried back in the job and set in the calling thread.
 * The default pool is reference-counted by the files opened on it: made on
 * the first open, freed (outside the lock, since pc_pool_free() may suspend
 * a task) by the last close, so nothing outlives the files that need it.
 */
#define _GNU_SOURCE /* pipe2, O_CLOEXEC, pread, mkdtemp, setenv */
#include "picos/file.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "picos/node.h"
#include "picos/ref.h"
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
pc_fd_fd(const pc_fd *f)
{
    return f ? f->fd : -1;
}

/* Wait for `ev` until the deadline. PC_ETIMEDOUT when it has passed. */
static pc_err
wait_ready(int fd, int ev, double deadline)
{
    double l = pc_deadline_left(deadline);

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
    return raw_read(f, buf, len, pc_deadline(timeout), n);
}

pc_err
pc_fd_read_exact(pc_fd *f, void *buf, size_t len, double timeout, size_t *n)
{
    double deadline = pc_deadline(timeout);
    size_t got = 0, dummy;
    pc_err rc = PC_OK;

    if (!n)
        n = &dummy;
    *n = 0;
    if (!f || (!buf && len))
        return PC_EINVAL;
    if (f->rlen > f->rpos)
        got = take_buffered(f, buf, len);
    while (got < len) {
        size_t k = 0;
        rc = raw_read(f, (char *)buf + got, len - got, deadline, &k);
        if (rc == PC_OK && k == 0)
            rc = PC_ECLOSED; /* end of file first */
        if (rc != PC_OK)
            break;
        got += k;
    }
    *n = got;
    return rc;
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
    double deadline = pc_deadline(timeout);
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
    rc = write_some(f, buf, len, pc_deadline(timeout), &k);
    if (n)
        *n = k;
    return rc;
}

pc_err
pc_fd_write_all(pc_fd *f, const void *buf, size_t len, double timeout,
                size_t *n)
{
    double deadline = pc_deadline(timeout);
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

/* ---- jobs ------------------------------------------------------------------ */

/* A pc_file's fd, shared with its jobs: a late job (its caller timed out or
 * was terminated) may still use it, so it is closed by whoever lets go of
 * it last, never under a running job — whose fd number could otherwise be
 * reused by another open and written to. */
struct fdref {
    atomic_int refs;
    int fd;
};

/* Drop a reference; the last closes the fd: returns close()'s result
 * (0 when others still hold it), errno kept otherwise. */
static int
fdref_put(struct fdref *r)
{
    int rc = 0;

    if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1) {
        rc = close(r->fd);
        free(r);
    }
    return rc;
}

enum job_op { OP_OPEN, OP_READ, OP_WRITE, OP_PREAD, OP_PWRITE };

enum job_state {
    J_QUEUED,   /* submitted; its pool thread has not picked it up */
    J_RUNNING,  /* a pool thread works on it and will look at it again */
    J_DONE,     /* results in; the caller takes it (or the sweep frees it) */
    J_ABANDONED /* the caller gave up while it ran: the thread frees it */
};

/* One call's state. Only the pool thread and the caller touch it, each
 * under jobs_lock when they hand it over; the caller's buffers are never
 * seen by the pool thread. */
struct job {
    enum job_op op;
    uint8_t state;      /* enum job_state, under jobs_lock */
    pc_ref owner;       /* the calling task; nil for a foreign thread */
    struct fdref *file; /* the file's fd (a reference); NULL for OP_OPEN */
    int flags, mode;
    size_t len; /* bytes to move; data holds them */
    off_t off;
    ssize_t res; /* bytes moved, or the fd opened; -1 until it ran */
    int err;     /* errno of a failure */
    char data[]; /* the path (OP_OPEN), the bytes read or those to write */
};

/* The job registry: the pool thread gets a handle (slot index and
 * generation), not a pointer, so a job whose caller freed it before it
 * started is found missing instead of touched. */
#define IDX_BITS (sizeof(uintptr_t) * 4) /* half the handle; gen the rest */
#define IDX_MAX ((uintptr_t)1 << IDX_BITS)
#define GEN_MASK ((uint32_t)(UINTPTR_MAX >> IDX_BITS))
#define SLOT_NONE UINT32_MAX
#define MAX_SLOTS ((uint32_t)(IDX_MAX > 0x80000000u ? 0x80000000u : IDX_MAX))
#define SWEEP_EVERY 64 /* registrations between sweeps for dead callers */

struct slot {
    struct job *j; /* NULL: free */
    uint32_t gen;
    uint32_t next_free;
};

static pthread_mutex_t jobs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot *slots;
static uint32_t nslots, free_slot = SLOT_NONE;
static unsigned adds;

static struct job *
job_new(enum job_op op, struct fdref *file, size_t len, off_t off)
{
    struct job *j = malloc(sizeof *j + len);

    if (!j)
        return NULL;
    memset(j, 0, sizeof *j);
    j->op = op;
    if (file) {
        atomic_fetch_add_explicit(&file->refs, 1, memory_order_relaxed);
        j->file = file;
    }
    j->len = len;
    j->off = off;
    j->res = -1;
    return j;
}

/* Free a job with what it holds: its reference to the file's fd, or the
 * fd of an open nobody collected. */
static void
job_free(struct job *j)
{
    int e = errno;

    if (j->file)
        (void)fdref_put(j->file);
    else if (j->op == OP_OPEN && j->res >= 0)
        close((int)j->res);
    free(j);
    errno = e;
}

/* Under jobs_lock. */
static struct job *
job_get(uintptr_t h)
{
    uintptr_t idx = h & (IDX_MAX - 1);

    if (idx >= nslots || slots[idx].gen != (uint32_t)(h >> IDX_BITS))
        return NULL;
    return slots[idx].j;
}

/* Under jobs_lock: the slot is free and its handle stale. */
static void
job_del(uintptr_t h)
{
    struct slot *s = &slots[h & (IDX_MAX - 1)];

    s->j = NULL;
    s->gen = (s->gen + 1) & GEN_MASK;
    if (s->gen == 0)
        s->gen = 1; /* 0 stays unused, so no handle is NULL */
    s->next_free = free_slot;
    free_slot = (uint32_t)(s - slots);
}

/* Under jobs_lock: free the jobs whose calling task has ended (terminated
 * while it waited): they are never collected. A running one is left to
 * end first; its thread marks it done and a later sweep takes it. */
static void
sweep_dead(void)
{
    for (uint32_t i = 0; i < nslots; i++) {
        struct job *j = slots[i].j;
        if (j && j->state != J_RUNNING && j->state != J_ABANDONED &&
            !pc_ref_is_nil(j->owner) && !pc_alive(j->owner)) {
            job_del((uintptr_t)slots[i].gen << IDX_BITS | i);
            job_free(j);
        }
    }
}

static pc_err
job_add(struct job *j, uintptr_t *h)
{
    uint32_t i;

    pthread_mutex_lock(&jobs_lock);
    if (++adds % SWEEP_EVERY == 0)
        sweep_dead();
    if (free_slot == SLOT_NONE) {
        uint32_t n = nslots ? 2 * nslots : 16;
        struct slot *ns =
            nslots < MAX_SLOTS / 2 ? realloc(slots, n * sizeof *ns) : NULL;
        if (!ns) {
            pthread_mutex_unlock(&jobs_lock);
            return PC_ENOMEM;
        }
        for (uint32_t k = n; k-- > nslots;) {
            ns[k].j = NULL;
            ns[k].gen = 1;
            ns[k].next_free = free_slot;
            free_slot = k;
        }
        slots = ns;
        nslots = n;
    }
    i = free_slot;
    free_slot = slots[i].next_free;
    slots[i].j = j;
    j->state = J_QUEUED;
    *h = (uintptr_t)slots[i].gen << IDX_BITS | i;
    pthread_mutex_unlock(&jobs_lock);
    return PC_OK;
}

/* The system calls of a job, on a pool thread, into and from j->data. */
static void
job_io(struct job *j)
{
    size_t done = 0;

    j->err = 0;
    switch (j->op) {
    case OP_OPEN:
        j->res = open(j->data, j->flags | O_CLOEXEC, j->mode);
        if (j->res < 0)
            j->err = errno;
        return;
    case OP_READ:
        do
            j->res = read(j->file->fd, j->data, j->len);
        while (j->res < 0 && errno == EINTR);
        if (j->res < 0)
            j->err = errno;
        return;
    case OP_PREAD:
        while (done < j->len) {
            ssize_t r = pread(j->file->fd, j->data + done, j->len - done,
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
        break;
    case OP_WRITE:
    case OP_PWRITE:
        while (done < j->len) {
            const char *b = j->data + done;
            ssize_t r = j->op == OP_WRITE
                            ? write(j->file->fd, b, j->len - done)
                            : pwrite(j->file->fd, b, j->len - done,
                                     j->off + (off_t)done);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                j->err = r < 0 ? errno : EIO;
                break;
            }
            done += (size_t)r;
        }
        break;
    }
    j->res = (ssize_t)done;
}

/* The pool function: arg is the job's handle. */
static void *
job_run(void *arg)
{
    uintptr_t h = (uintptr_t)arg;
    struct job *j;

    pthread_mutex_lock(&jobs_lock);
    j = job_get(h);
    if (j)
        j->state = J_RUNNING;
    pthread_mutex_unlock(&jobs_lock);
    if (!j)
        return NULL; /* its caller gave up before it started */
    job_io(j);
    pthread_mutex_lock(&jobs_lock);
    if (j->state == J_ABANDONED) {
        job_del(h);
    } else {
        j->state = J_DONE;
        j = NULL; /* the caller's again */
    }
    pthread_mutex_unlock(&jobs_lock);
    if (j)
        job_free(j); /* a late result nobody will read */
    return NULL;
}

/* Run j on the pool, waiting up to `timeout`. Returns the finished job
 * (the caller frees it) or NULL with *rc set; j is consumed either way: a
 * job that never started is freed here, one still running is left to its
 * thread. */
static struct job *
run_job(pc_pool *pool, struct job *j, double timeout, pc_err *rc)
{
    uintptr_t h;
    void *unused;

    j->owner = pc_self();
    if ((*rc = job_add(j, &h)) != PC_OK) {
        job_free(j);
        return NULL;
    }
    *rc = pc_pool_run(pool, job_run, (void *)h, timeout, &unused);
    pthread_mutex_lock(&jobs_lock);
    switch (j->state) {
    case J_DONE: /* also when it ended as the wait timed out */
        job_del(h);
        *rc = PC_OK;
        break;
    case J_RUNNING: /* PC_ERUNNING from the pool: a file call timed out */
        j->state = J_ABANDONED;
        j = NULL;
        *rc = PC_ETIMEDOUT;
        break;
    default: /* J_QUEUED: it never started; if it does, it finds nothing */
        job_del(h);
        job_free(j);
        j = NULL;
        if (*rc == PC_OK)
            *rc = PC_ESTATE; /* can't be: the job ran or the pool said no */
        break;
    }
    pthread_mutex_unlock(&jobs_lock);
    return j;
}

/* ---- pc_file ------------------------------------------------------------------ */

struct pc_file {
    struct fdref *fd;
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

/* Drop a file's use of the default pool. The last user frees the pool,
 * once it is idle: it waits up to `timeout` for late jobs (of callers that
 * gave up) to end, still counted meanwhile, so nobody frees the pool under
 * it and an open meanwhile keeps it. If they don't end in time (or the
 * caller can't wait), PC_ETIMEDOUT (PC_EPERM) and nothing changes — unless
 * `drop_anyway`: then the use is dropped all the same and the pool stays,
 * unused, for the next open (whose last close frees it). */
static pc_err
defpool_put(double timeout, bool drop_anyway)
{
    pc_pool *p;
    pc_err rc;

    pthread_mutex_lock(&defpool_lock);
    if (defpool_users > 1) {
        defpool_users--;
        pthread_mutex_unlock(&defpool_lock);
        return PC_OK;
    }
    p = defpool;
    pthread_mutex_unlock(&defpool_lock);
    rc = pc_pool_join(p, timeout);
    pthread_mutex_lock(&defpool_lock);
    if (rc != PC_OK && !drop_anyway) {
        pthread_mutex_unlock(&defpool_lock);
        return rc;
    }
    if (--defpool_users > 0 || rc != PC_OK)
        p = NULL; /* in use again, or kept busy */
    else
        defpool = NULL;
    pthread_mutex_unlock(&defpool_lock);
    return p ? pc_pool_free(&p) : PC_OK;
}

/* Bytes moved by one job: bounds the job's copy of the data. */
#define FILE_CHUNK ((size_t)1 << 20)

pc_err
pc_file_open(pc_file **out, const char *path, int flags, int mode,
             pc_pool *pool, double timeout)
{
    size_t plen;
    struct job *j;
    pc_file *f;
    pc_err rc;
    bool def = false;

    if (!out || !path)
        return PC_EINVAL;
    *out = NULL;
    plen = strlen(path) + 1;
    f = calloc(1, sizeof *f);
    j = job_new(OP_OPEN, NULL, plen, 0);
    if (f)
        f->fd = malloc(sizeof *f->fd);
    if (!f || !f->fd || !j) {
        if (f)
            free(f->fd);
        free(f);
        free(j);
        return PC_ENOMEM;
    }
    memcpy(j->data, path, plen);
    j->flags = flags;
    j->mode = mode;
    if (!pool) {
        rc = defpool_get(&pool);
        if (rc != PC_OK) {
            free(f->fd);
            free(f);
            free(j);
            return rc;
        }
        def = true;
    }
    j = run_job(pool, j, timeout, &rc);
    if (j && j->err) {
        errno = j->err;
        rc = j->err == ENOENT ? PC_ENOENT : PC_ESYS;
    }
    if (rc != PC_OK) {
        int e = errno;
        if (j)
            job_free(j);
        free(f->fd);
        free(f);
        if (def)
            (void)defpool_put(0, true); /* busy after a timeout: kept */
        errno = e;
        return rc;
    }
    atomic_init(&f->fd->refs, 1);
    f->fd->fd = (int)j->res;
    j->res = -1; /* the fd is f's now */
    job_free(j);
    f->pool = pool;
    f->default_pool = def;
    *out = f;
    return PC_OK;
}

static bool
is_read(enum job_op op)
{
    return op == OP_READ || op == OP_PREAD;
}

/* Reads and writes in jobs of at most FILE_CHUNK bytes: a read ends at the
 * first job (it may be short), the others at the end of the data, at end
 * of file (pread) or at an error. */
static pc_err
file_io(pc_file *f, enum job_op op, void *buf, size_t len, int64_t off,
        double timeout, size_t *n)
{
    double deadline = pc_deadline(timeout);
    size_t done = 0;
    pc_err rc = PC_OK;

    if (n)
        *n = 0;
    if (!f || (!buf && len) || off < 0 || (is_read(op) && !n))
        return PC_EINVAL;
    while (done < len) {
        size_t k = len - done < FILE_CHUNK ? len - done : FILE_CHUNK, got;
        struct job *j = job_new(op, f->fd, k, (off_t)off + (off_t)done);
        int err;

        if (!j) {
            rc = PC_ENOMEM;
            break;
        }
        if (!is_read(op))
            memcpy(j->data, (const char *)buf + done, k);
        j = run_job(f->pool, j, pc_deadline_left(deadline), &rc);
        if (!j)
            break;
        got = j->res > 0 ? (size_t)j->res : 0;
        if (is_read(op))
            memcpy((char *)buf + done, j->data, got);
        done += got;
        err = j->err;
        job_free(j);
        if (err) {
            errno = err;
            rc = PC_ESYS;
            break;
        }
        if (op == OP_READ || got < k)
            break;
    }
    if (n)
        *n = done;
    return rc;
}

pc_err
pc_file_read(pc_file *f, void *buf, size_t len, double timeout, size_t *n)
{
    return file_io(f, OP_READ, buf, len, 0, timeout, n);
}

pc_err
pc_file_write(pc_file *f, const void *buf, size_t len, double timeout,
              size_t *n)
{
    return file_io(f, OP_WRITE, (void *)buf, len, 0, timeout, n);
}

pc_err
pc_file_pread(pc_file *f, void *buf, size_t len, int64_t off, double timeout,
              size_t *n)
{
    return file_io(f, OP_PREAD, buf, len, off, timeout, n);
}

pc_err
pc_file_pwrite(pc_file *f, const void *buf, size_t len, int64_t off,
               double timeout, size_t *n)
{
    return file_io(f, OP_PWRITE, (void *)buf, len, off, timeout, n);
}

int
pc_file_fd(const pc_file *f)
{
    return f ? f->fd->fd : -1;
}

pc_err
pc_file_close(pc_file **fp, double timeout)
{
    pc_file *f;
    pc_err rc;
    int r, e = 0;

    if (!fp || !*fp)
        return PC_OK;
    f = *fp;
    if (f->default_pool && (rc = defpool_put(timeout, false)) != PC_OK)
        return rc; /* nothing done: *fp still open */
    *fp = NULL;
    r = fdref_put(f->fd); /* or later, by the last late job */
    if (r < 0)
        e = errno;
    free(f);
    pthread_mutex_lock(&jobs_lock);
    sweep_dead(); /* jobs of terminated callers that ended meanwhile */
    pthread_mutex_unlock(&jobs_lock);
    if (r < 0 && e != EINTR) {
        errno = e;
        return PC_ESYS;
    }
    return PC_OK;
}
