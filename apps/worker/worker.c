/* apps/worker/worker.c — one worker process of a computation.
 *
 * Forked from the setup process (picos-worker.c), so it starts with the
 * library loaded, node_setup()'s memory shared copy-on-write, and the
 * setup process's sandbox; it adds its own part (pc__sandbox_worker: the
 * CPU limit, no fork) before it runs a line of the computation's code.
 * It keeps no descriptor of its parent's but stderr: stdin becomes an
 * empty pipe, stdout a copy of stderr (a job's printf lands in the node's
 * log, never in the setup process's protocol), and the one connection of
 * its own is to the node's ctl.sock.
 *
 * It then speaks the worker frames of docs/computations.md: W_HELLO,
 * worker_setup, W_READY (or W_SETUP_FAILED and exit 1), then one W_RUN at
 * a time, each answered by one W_DONE, until W_QUIT (worker_cleanup, exit
 * 0) or the socket's end (exit 1). A job runs in the worker's scratch
 * directory, emptied first; its input files are created there without
 * following links (O_NOFOLLOW | O_EXCL, plain names only) and the files
 * it leaves that the client asked for are read back the same way, regular
 * files only, within CP_JOB_FILES_MAX. Everything the job can get wrong
 * (an unknown function, input that does not parse, a result too big)
 * ends as that job's W_DONE with WHY_FAILED; only a broken socket ends
 * the worker. Exits are _exit(): after the sandbox, nothing the C
 * library or a sanitizer would run at exit (LeakSanitizer's tracer needs
 * ptrace and clone) can work, and the node has everything it needs.
 */
#define _GNU_SOURCE
#include "worker.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <protobuf-c/protobuf-c.h>

#include "compute_int.h"
#include "wframe.h"

typedef Picos__V1__WorkerFrame wframe;

/* Frames pc_job_recv() read for after the job, in order. */
static wframe *deferred[16];
static size_t n_deferred;
static int my_index = -1;

void
pc__worker_defer(wframe *f)
{
    if (n_deferred < sizeof deferred / sizeof *deferred) {
        deferred[n_deferred++] = f;
        return;
    }
    /* a node that sends more than one job's worth of commands at once
     * breaks the protocol; keep the W_QUITs, drop the rest */
    if (f->op == PICOS__V1__WORKER_OP__W_QUIT) {
        picos__v1__worker_frame__free_unpacked(deferred[n_deferred - 1], NULL);
        deferred[n_deferred - 1] = f;
        return;
    }
    picos__v1__worker_frame__free_unpacked(f, NULL);
}

static __attribute__((noreturn)) void
die(int code)
{
    fflush(NULL);
    _exit(code);
}

static __attribute__((noreturn, format(printf, 1, 2))) void
die_msg(const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "picos-worker: worker %d: %s\n", my_index, buf);
    die(1);
}

static uint64_t
wall_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void
send_frame(int sock, const wframe *f)
{
    if (pc__wframe_write(sock, CP_WFRAME_MAX, f))
        die_msg("writing to the node: %s", strerror(errno));
}

/* Descriptors: stderr kept, stdin an empty pipe, stdout = stderr, nothing
 * else of the setup process's. */
static void
fds(void)
{
    int p[2];

    close_range(3, ~0u, 0);
    close(0);
    close(1);
    if (pipe(p) == 0) { /* lowest free: 0 and 1 */
        if (p[0] != 0) {
            dup2(p[0], 0);
            close(p[0]);
        }
        close(p[1]);
    }
    dup2(2, 1);
}

/* Signals as a new program would have them (the setup process blocks
 * SIGCHLD and ignores SIGPIPE). */
static void
signals(void)
{
    sigset_t all;

    for (int s = 1; s < NSIG; s++)
        signal(s, SIG_DFL);
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
}

static int
connect_node(int index)
{
    const pc__worker_opts *o = pc__worker_o;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    char dir[4200];
    int fd;

    if (o->sb.confine)
        snprintf(dir, sizeof dir, "/w%d", index);
    else
        snprintf(dir, sizeof dir, "%s/w%d", o->root, index);
    if (chdir(dir))
        die_msg("chdir %s: %s", dir, strerror(errno));
    /* confined: /ctl.sock; else ROOT/ctl.sock, or relative to the scratch
     * directory when ROOT is too long for sun_path */
    if (o->sb.confine)
        snprintf(a.sun_path, sizeof a.sun_path, "/ctl.sock");
    else if ((size_t)snprintf(a.sun_path, sizeof a.sun_path, "%s/ctl.sock",
                              o->root) >= sizeof a.sun_path)
        snprintf(a.sun_path, sizeof a.sun_path, "../ctl.sock");
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die_msg("socket: %s", strerror(errno));
    while (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        if (errno == EINTR)
            continue;
        die_msg("connect %s: %s", a.sun_path, strerror(errno));
    }
    return fd;
}

static bool
plain_name(const char *s)
{
    return s && *s && strcmp(s, ".") && strcmp(s, "..") && !strchr(s, '/') &&
           strlen(s) < 256;
}

/* Remove everything in directory dfd (not following links); depth bounds
 * the descriptors held. Returns 0 or -1 (errno). */
static int
empty_at(int dfd, int depth)
{
    bool again = true;

    if (depth > 64) {
        errno = ELOOP;
        return -1;
    }
    for (int pass = 0; again && pass < 1000; pass++) {
        int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        struct dirent *e;

        if (!d) {
            if (fd >= 0)
                close(fd);
            return -1;
        }
        again = false;
        while ((e = readdir(d))) {
            int sub;
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            again = true;
            if (unlinkat(dfd, e->d_name, 0) == 0)
                continue;
            if (errno != EISDIR && errno != EPERM) {
                closedir(d);
                return -1;
            }
            (void)fchmodat(dfd, e->d_name, 0700, AT_SYMLINK_NOFOLLOW);
            sub = openat(dfd, e->d_name,
                         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0 || empty_at(sub, depth + 1)) {
                int err = errno;
                if (sub >= 0)
                    close(sub);
                closedir(d);
                errno = err;
                return -1;
            }
            close(sub);
            if (unlinkat(dfd, e->d_name, AT_REMOVEDIR)) {
                closedir(d);
                return -1;
            }
        }
        closedir(d);
    }
    return 0;
}

static int
empty_scratch(void)
{
    int fd, rc, err;

    (void)chmod(".", 0700); /* a job may have taken its own rights away */
    fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    rc = empty_at(fd, 0);
    err = errno;
    close(fd);
    errno = err;
    return rc;
}

static int
write_in(const Picos__V1__ComputeJobFile *f, char *err, size_t size)
{
    size_t put = 0;
    int fd;

    if (!plain_name(f->name)) {
        snprintf(err, size, "file in: not a plain name");
        return -1;
    }
    fd = open(f->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
              0600);
    if (fd < 0) {
        snprintf(err, size, "file in %s: %s", f->name, strerror(errno));
        return -1;
    }
    while (put < f->data.len) {
        ssize_t w = write(fd, f->data.data + put, f->data.len - put);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            snprintf(err, size, "file in %s: %s", f->name,
                     w < 0 ? strerror(errno) : "short write");
            close(fd);
            return -1;
        }
        put += (size_t)w;
    }
    close(fd);
    return 0;
}

/* The files out a job left: out[] filled, *n of them; returns 0, or -1
 * with err (over the limit). Files that are missing, not regular or not
 * readable are absent. */
static int
read_out(const Picos__V1__ComputeJob *job, Picos__V1__ComputeJobFile *out,
         size_t *n, size_t *total, char *err, size_t size)
{
    *n = 0;
    *total = 0;
    for (size_t i = 0; i < job->n_files_out; i++) {
        const char *name = job->files_out[i];
        struct stat st;
        size_t got = 0;
        uint8_t *buf;
        int fd;

        if (!plain_name(name))
            continue;
        fd = open(name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
            continue;
        if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
            close(fd);
            continue;
        }
        if ((uint64_t)st.st_size > CP_JOB_FILES_MAX - *total) {
            close(fd);
            snprintf(err, size, "files out over %u KiB (%s: %lld bytes)",
                     CP_JOB_FILES_MAX / 1024, name, (long long)st.st_size);
            return -1;
        }
        buf = malloc((size_t)st.st_size + 1);
        if (!buf) {
            close(fd);
            snprintf(err, size, "out of memory: file out %s", name);
            return -1;
        }
        while (got < (size_t)st.st_size) {
            ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break; /* it shrank: what was there */
            got += (size_t)r;
        }
        close(fd);
        picos__v1__compute_job_file__init(&out[*n]);
        out[*n].name = (char *)name;
        out[*n].data.data = buf;
        out[*n].data.len = got;
        (*n)++;
        *total += got;
    }
    return 0;
}

static const pc_job_def *
find_fn(const char *name)
{
    for (const pc_job_def *d = pc__worker_comp->jobs; d && d->name; d++)
        if (!strcmp(d->name, name))
            return d;
    return NULL;
}

static void
run(int sock, int index, const Picos__V1__ComputeJob *job)
{
    Picos__V1__WorkerFrame f = PICOS__V1__WORKER_FRAME__INIT;
    Picos__V1__ComputeJobEvent ev = PICOS__V1__COMPUTE_JOB_EVENT__INIT;
    Picos__V1__ComputeJobFile outs[CP_FILES_MAX], *outp[CP_FILES_MAX];
    struct pc_job j;
    const pc_job_def *def = NULL;
    ProtobufCMessage *pb = NULL;
    size_t n_out = 0, out_bytes = 0, in_bytes = 0;
    bool ok = false, prepared = false;
    char err[PC__WORKER_ERR_MAX] = "";
    int rc = 0;

    memset(&j, 0, sizeof j);
    j.id = job->id;
    j.attempt = (int)job->attempt;
    j.name = job->fn ? job->fn : "";
    j.worker = index;
    j.sock = sock;
    ev.started_us = wall_us();
    if (empty_scratch()) {
        snprintf(err, sizeof err, "scratch directory not emptied: %s",
                 strerror(errno));
        goto done;
    }
    for (size_t i = 0; i < job->n_files_in; i++)
        in_bytes += job->files_in[i]->data.len;
    if (in_bytes > CP_JOB_FILES_MAX) {
        snprintf(err, sizeof err, "files in over %u KiB",
                 CP_JOB_FILES_MAX / 1024);
        goto done;
    }
    for (size_t i = 0; i < job->n_files_in; i++)
        if (write_in(job->files_in[i], err, sizeof err))
            goto done;
    if (!(def = find_fn(j.name))) {
        snprintf(err, sizeof err, "no job function %s", j.name);
        goto done;
    }
    if (def->in_desc) {
        const ProtobufCMessageDescriptor *d = def->in_desc;
        pb =
            protobuf_c_message_unpack(d, NULL, job->input.len, job->input.data);
        if (!pb) {
            snprintf(err, sizeof err, "input does not parse as %s", d->name);
            goto done;
        }
        j.input_pb = pb;
    }
    prepared = true;
    rc = def->fn(&j, job->input.data ? (const void *)job->input.data : "",
                 job->input.len);
done:
    ev.ended_us = wall_us();
    if (prepared) {
        if (j.forced) {
            snprintf(err, sizeof err, "%s", j.error);
        } else if (rc != 0) {
            if (j.error[0])
                snprintf(err, sizeof err, "%s", j.error);
            else
                snprintf(err, sizeof err, "job %s returned %d", j.name, rc);
        } else {
            ok = true;
        }
    }
    if (ok && job->n_files_out > CP_FILES_MAX) {
        snprintf(err, sizeof err, "more than %d files out", CP_FILES_MAX);
        ok = false;
    }
    if (ok && read_out(job, outs, &n_out, &out_bytes, err, sizeof err))
        ok = false;
    if (ok && j.result_len + out_bytes > PC__WORKER_DONE_MAX) {
        snprintf(err, sizeof err,
                 "result and files out too big: %zu bytes together (at most "
                 "%u)",
                 j.result_len + out_bytes, PC__WORKER_DONE_MAX);
        ok = false;
    }
    ev.id = job->id;
    ev.attempt = job->attempt;
    ev.kind = PICOS__V1__COMPUTE_EVENT_KIND__JOB_DONE;
    ev.worker = index;
    if (ok) {
        ev.why = PICOS__V1__COMPUTE_WHY__WHY_OK;
        ev.result.data = j.result;
        ev.result.len = j.result_len;
        for (size_t i = 0; i < n_out; i++)
            outp[i] = &outs[i];
        ev.files_out = outp;
        ev.n_files_out = n_out;
    } else {
        ev.why = j.limit ? PICOS__V1__COMPUTE_WHY__WHY_LIMIT
                         : PICOS__V1__COMPUTE_WHY__WHY_FAILED;
        ev.error = pc__worker_one_line(err);
    }
    f.op = PICOS__V1__WORKER_OP__W_DONE;
    f.worker = index;
    f.done = &ev;
    send_frame(sock, &f);
    for (size_t i = 0; i < n_out; i++)
        free(outs[i].data.data);
    free(j.result);
    if (pb)
        protobuf_c_message_free_unpacked(pb, NULL);
    if (j.broken)
        die_msg("the node's socket failed during job %llu",
                (unsigned long long)j.id);
}

void
pc__worker_main(int index)
{
    const pc_computation *c = pc__worker_comp;
    Picos__V1__WorkerFrame f = PICOS__V1__WORKER_FRAME__INIT;
    char sberr[200] = "", err[PC__WORKER_ERR_MAX] = "";
    pid_t parent = getppid();
    char *names[4097];
    size_t n = 0;
    int sock, sb;

    my_index = index;
    signals();
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        die(1);
    fds();
    sb = pc__sandbox_worker(&pc__worker_o->sb, sberr, sizeof sberr);
    sock = connect_node(index);
    f.op = PICOS__V1__WORKER_OP__W_HELLO;
    f.worker = index;
    f.pid = (uint32_t)getpid();
    send_frame(sock, &f);
    if (sb == 0 && c->worker_setup && c->worker_setup(index, err, sizeof err)) {
        err[sizeof err - 1] = '\0';
        if (!err[0])
            snprintf(err, sizeof err, "worker_setup failed");
        sb = -1;
    } else if (sb) {
        snprintf(err, sizeof err, "sandbox: %s", sberr);
    }
    f = (Picos__V1__WorkerFrame)PICOS__V1__WORKER_FRAME__INIT;
    f.worker = index;
    if (sb) {
        f.op = PICOS__V1__WORKER_OP__W_SETUP_FAILED;
        f.text = pc__worker_one_line(err);
        send_frame(sock, &f);
        die(1);
    }
    for (const pc_job_def *d = c->jobs; d && d->name && n < 4096; d++)
        names[n++] = (char *)d->name;
    f.op = PICOS__V1__WORKER_OP__W_READY;
    f.jobs = names;
    f.n_jobs = n;
    f.name = (char *)(c->name ? c->name : "");
    f.version = c->version;
    send_frame(sock, &f);
    for (;;) {
        wframe *in = NULL;
        if (n_deferred) {
            in = deferred[0];
            memmove(deferred, deferred + 1, --n_deferred * sizeof *deferred);
        } else {
            int r = pc__wframe_read(sock, CP_WFRAME_MAX, &in);
            if (r == 1)
                die(1); /* the node is gone */
            if (r)
                die_msg("reading from the node: %s", strerror(errno));
        }
        if (in->op == PICOS__V1__WORKER_OP__W_RUN && in->job) {
            run(sock, index, in->job);
        } else if (in->op == PICOS__V1__WORKER_OP__W_QUIT) {
            picos__v1__worker_frame__free_unpacked(in, NULL);
            if (c->worker_cleanup)
                c->worker_cleanup(index);
            die(0);
        }
        /* W_TO_JOB with no job running (it ended): dropped */
        picos__v1__worker_frame__free_unpacked(in, NULL);
    }
}
