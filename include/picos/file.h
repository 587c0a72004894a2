/* picos/file.h — asynchronous fds and files (pycos's AsyncFile).
 *
 * Two kinds of handle, because the kernel offers two kinds of readiness:
 *
 *  - pc_fd: pipes, sockets, terminals and other character devices. The fd is
 *    made non-blocking and a task that finds it not ready waits in
 *    pc_wait_fd(), so only that task waits; its worker runs the others.
 *  - pc_file: regular files. They are always "ready" to poll(), and a read
 *    can still block on the disk, so each operation runs on a thread of a
 *    pc_pool and only the calling task waits for it.
 *
 * Timeouts are in seconds over the whole call (negative: forever; 0: don't
 * wait). A handle is used by one task at a time for reading and one at a
 * time for writing (a reader and a writer may be different tasks of the
 * same worker); nothing in a handle is locked. Close a handle only when no
 * other task is inside a call on it.
 *
 * SIGPIPE: the first pc_fd_open() sets SIGPIPE to SIG_IGN when it is at
 * SIG_DFL, so that a write to a pipe whose reader is gone returns
 * PC_ECLOSED instead of killing the process. (Subprocesses started by
 * picos/proc.h get the default disposition back.)
 *
 * Errors: PC_ESYS leaves the system's errno in errno (set in the calling
 * thread, also for pc_file calls that ran on a pool thread).
 */
#ifndef PICOS_FILE_H
#define PICOS_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "picos/err.h"
#include "picos/pool.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- pc_fd: pipes, sockets, character devices --------------------------- */

typedef struct pc_fd pc_fd;

/* Wrap `fd` (which must stay open) in a new pc_fd and set O_NONBLOCK on it.
 * The pc_fd takes ownership: pc_fd_close() closes fd. On error fd is left
 * alone (still the caller's). Returns PC_OK with *out, PC_EINVAL (fd < 0 or
 * out NULL), PC_ESYS (fcntl failed), PC_ENOMEM. Any thread. */
pc_err pc_fd_open(pc_fd **out, int fd);

/* The wrapped fd (still owned by f), or -1 for NULL. Any thread. (The OS
 * descriptor accessors are all named pc_<type>_fd: pc_sock_fd(),
 * pc_file_fd().) */
int pc_fd_fd(const pc_fd *f);

/* Read at least one byte, at most len, into buf. Returns PC_OK with *n >= 1,
 * or PC_OK with *n == 0 at end of file; PC_ETIMEDOUT (*n == 0),
 * PC_ECLOSED (the wait was cancelled), PC_ESYS, PC_EINVAL. Tasks only (when
 * data is already buffered or available, any thread gets it; a wait from a
 * non-task returns PC_EPERM). */
pc_err pc_fd_read(pc_fd *f, void *buf, size_t len, double timeout, size_t *n);

/* Read exactly len bytes within `timeout` in all (as pc_sock_read_exact()).
 * Returns PC_OK; PC_ECLOSED when end of file comes first; PC_ETIMEDOUT;
 * other errors as pc_fd_read(). *n (may be NULL) is how many bytes arrived
 * (they are in buf) in every case. Tasks only. */
pc_err pc_fd_read_exact(pc_fd *f, void *buf, size_t len, double timeout,
                        size_t *n);

/* Read one line, '\n' included, into a new NUL-terminated buffer *line
 * (the caller frees it with free()), its length in *len (may be NULL).
 * At end of file the last, unterminated line is returned as is.
 * Returns PC_OK; PC_ECLOSED at end of file with nothing left (*line NULL);
 * PC_ETOOBIG when `max` bytes came without a '\n': *line holds those max
 * bytes (consumed) and the rest of the line comes with the next call;
 * PC_ETIMEDOUT (*line NULL, nothing consumed: what arrived stays buffered
 * for the next call); PC_ESYS, PC_ENOMEM, PC_EINVAL (max 0). Tasks only. */
pc_err pc_fd_readline(pc_fd *f, char **line, size_t *len, size_t max,
                      double timeout);

/* Write at least one byte of buf (as much as the fd takes now). Returns
 * PC_OK with *n >= 1 (n may be NULL), PC_ETIMEDOUT, PC_ECLOSED (the reader
 * end is closed: EPIPE; or the wait was cancelled), PC_ESYS, PC_EINVAL.
 * Tasks only. */
pc_err pc_fd_write(pc_fd *f, const void *buf, size_t len, double timeout,
                   size_t *n);

/* Write all len bytes. Returns PC_OK, or an error of pc_fd_write() with the
 * bytes written so far in *n (may be NULL). Tasks only. */
pc_err pc_fd_write_all(pc_fd *f, const void *buf, size_t len, double timeout,
                       size_t *n);

/* Close the fd and free the handle; *f becomes NULL. Unread buffered data
 * is dropped. NULL and *f == NULL are no-ops. Returns PC_OK, or PC_ESYS
 * when close() failed (the handle is freed anyway). Any thread. */
pc_err pc_fd_close(pc_fd **f);

/* ---- pc_file: regular files through a thread pool ------------------------ */

/* Every pc_file call runs as jobs on a pool thread and takes a timeout (in
 * seconds over the whole call; negative: forever; 0: don't wait, which for
 * a pool job almost always means PC_ETIMEDOUT). A job has its own buffer:
 * the pool thread never touches the caller's memory, so a caller that times
 * out — or a task terminated inside a call — may free its buffer at once.
 * A job that has not started when its caller gives up never runs; one that
 * has started can't be stopped and runs to its end with its result
 * discarded: a late read still moves the file position (its bytes are
 * lost), a late write still writes its chunk, a late open's fd is closed.
 * Data moves in jobs of at most 1 MiB, so a call on more bytes is several
 * jobs (and a timeout may come between them). The file's fd stays open
 * while a late job may still use it (see pc_file_close()). */

typedef struct pc_file pc_file;

/* Open `path` with open(2) `flags` and `mode` (O_CLOEXEC is always added) on
 * a thread of `pool`, waiting up to `timeout`. pool NULL uses picos's
 * default file pool: 2 threads, made by the first open that asks for it and
 * freed when the last file opened on it is closed. So close every such file
 * before the node ends (the rule for any pool, see picos/pool.h). A given
 * pool must outlive the files opened on it.
 * Returns PC_OK with *out; PC_ENOENT (no such file; errno ENOENT),
 * PC_ESYS (other open errors, errno set), PC_ETIMEDOUT, PC_EINVAL,
 * PC_ENOMEM, or the pool's errors (PC_ECLOSED, PC_EPERM from an actor
 * handler). Tasks (only the task waits) and foreign threads (which
 * block). */
pc_err pc_file_open(pc_file **out, const char *path, int flags, int mode,
                    pc_pool *pool, double timeout);

/* Read up to len bytes (at most 1 MiB in one call) at the file position.
 * PC_OK with *n (0 at end of file), PC_ETIMEDOUT (*n 0; a late read may
 * still consume data), PC_ESYS (errno set), PC_EINVAL. Tasks and foreign
 * threads. */
pc_err pc_file_read(pc_file *f, void *buf, size_t len, double timeout,
                    size_t *n);

/* Write all len bytes at the file position (looping over short writes).
 * PC_OK with *n == len (n may be NULL); PC_ETIMEDOUT or PC_ESYS with the
 * bytes known written so far in *n (after a timeout, the chunk in flight
 * may still be written). Tasks and foreign threads. */
pc_err pc_file_write(pc_file *f, const void *buf, size_t len, double timeout,
                     size_t *n);

/* pc_file_read() at offset `off`, not moving the file position; reads until
 * len bytes or end of file (short only at end of file, or with
 * PC_ETIMEDOUT, when *n says how many bytes are in buf). */
pc_err pc_file_pread(pc_file *f, void *buf, size_t len, int64_t off,
                     double timeout, size_t *n);

/* pc_file_write() at offset `off`, not moving the file position. */
pc_err pc_file_pwrite(pc_file *f, const void *buf, size_t len, int64_t off,
                      double timeout, size_t *n);

/* The file's fd (owned by f), or -1 for NULL. Any thread. */
int pc_file_fd(const pc_file *f);

/* Close the file and free the handle, *f NULL. The fd is closed now, or,
 * when a late job (of a call that timed out) still runs on it, by that job
 * as it ends. The last close of a file on the default pool also frees that
 * pool, once its late jobs have ended: it waits up to `timeout` for them (a
 * task waits without blocking its worker). NULL and *f == NULL are no-ops.
 * Returns PC_OK; PC_ESYS (close failed; freed anyway); PC_ETIMEDOUT (the
 * default pool's late jobs did not end in time) or PC_EPERM (that wait was
 * needed in a light-actor handler): nothing is done, *f is still open —
 * close it again later. Tasks and foreign threads. */
pc_err pc_file_close(pc_file **f, double timeout);

#ifdef __cplusplus
}
#endif
#endif
