/* picos/proc.h — subprocesses and pipelines with async pipes (pycos's
 * AsyncPipe over Popen).
 *
 *     char *const argv[] = {"sha1sum", NULL};
 *     pc_proc_opts o = {.flags = PC_PROC_STDIN | PC_PROC_STDOUT};
 *     pc_proc *p;
 *     pc_proc_spawn(&p, argv, &o);
 *     char *out, *err; size_t outlen, errlen;
 *     pc_proc_communicate(p, data, len, &out, &outlen, &err, &errlen,
 *                         1 << 20, 10.0);
 *     int st; pc_proc_wait(p, 0, &st);  // WIFEXITED(st), WEXITSTATUS(st)
 *     pc_proc_free(&p);
 *
 * No shell is involved: argv[0] is looked up in PATH (posix_spawnp). The
 * requested standard streams are pipes read and written through pc_fd
 * (picos/file.h), so only the calling task waits. A pipeline runs n
 * processes with the stdout of each piped into the stdin of the next;
 * writes go to the first process, reads come from the last.
 *
 * Exit statuses are collected with a pidfd (Linux >= 5.3) waited on with
 * pc_wait_fd(), or, without pidfd_open, by polling waitpid(WNOHANG) with
 * short sleeps (also when the environment variable PICOS_PROC_NO_PIDFD is
 * set, for testing). Nothing installs a SIGCHLD handler; a program that sets
 * SIGCHLD to SIG_IGN (auto-reaping) gets PC_ESYS (ECHILD) from the wait.
 *
 * A pc_proc belongs to the task that made it and is used by one task at a
 * time per stream (a writer and a reader may be different tasks of one
 * worker, as communicate does). Calls are for tasks unless marked.
 */
#ifndef PICOS_PROC_H
#define PICOS_PROC_H

#include <stddef.h>
#include <sys/types.h>

#include "picos/err.h"
#include "picos/file.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pc_proc pc_proc;

/* Which standard streams become pipes (pc_proc_opts.flags). A stream not
 * asked for is inherited from this process, or /dev/null with
 * PC_PROC_DEVNULL. */
#define PC_PROC_STDIN 0x1u
#define PC_PROC_STDOUT 0x2u
#define PC_PROC_STDERR 0x4u
#define PC_PROC_DEVNULL 0x8u /* streams not piped read/write /dev/null */
#define PC_PROC_STDERR_TO_STDOUT 0x10u /* 2>&1 (each process of a pipeline) */

typedef struct pc_proc_opts {
    unsigned flags;    /* PC_PROC_* */
    char *const *envp; /* NULL: this process's environment */
} pc_proc_opts;

/* Start argv[0] (looked up in PATH) with arguments argv (NULL-terminated)
 * and the streams asked for in opts (NULL: none piped, all inherited).
 * Returns PC_OK with *out; PC_ENOENT (no such program; errno ENOENT),
 * PC_ESYS (errno set), PC_EINVAL, PC_ENOMEM. The child starts with the
 * default signal dispositions for SIGPIPE and an empty signal mask; it gets
 * no fd of this process other than 0, 1, 2 (picos's fds are O_CLOEXEC; the
 * caller's own fds should be too). Any thread. */
pc_err pc_proc_spawn(pc_proc **out, char *const argv[],
                     const pc_proc_opts *opts);

/* Start a pipeline of n >= 1 commands: argvs[0] | argvs[1] | ... The
 * PC_PROC_STDIN pipe feeds the first, PC_PROC_STDOUT / _STDERR read the
 * last; the stderr of the others is inherited (or /dev/null, or their
 * stdout with PC_PROC_STDERR_TO_STDOUT). When a later command fails to
 * start, the earlier ones are killed (SIGKILL) and reaped. Returns as
 * pc_proc_spawn(). Any thread. */
pc_err pc_proc_pipeline(pc_proc **out, char *const *const argvs[], size_t n,
                        const pc_proc_opts *opts);

/* The pid of process i of the pipeline (0 for a single process), or -1.
 * Any thread. */
pid_t pc_proc_pid(const pc_proc *p, size_t i);

/* The stream pipes as pc_fd (owned by p; NULL when not piped or closed),
 * for pc_fd_read_exact() and friends. Any thread. */
pc_fd *pc_proc_stdin(pc_proc *p);
pc_fd *pc_proc_stdout(pc_proc *p);
pc_fd *pc_proc_stderr(pc_proc *p);

/* Write all of buf to the first process's stdin (pc_fd_write_all()).
 * PC_ECLOSED: the process closed its stdin (or exited), or stdin was
 * closed here; PC_EINVAL when stdin isn't piped. *n (may be NULL) says how
 * much went in. */
pc_err pc_proc_write(pc_proc *p, const void *buf, size_t len, double timeout,
                     size_t *n);

/* Close the stdin pipe, so the first process sees end of file. Idempotent.
 * Any thread (not while a task writes). */
pc_err pc_proc_close_stdin(pc_proc *p);

/* Read from the last process's stdout, as pc_fd_read(): *n == 0 at end of
 * file. PC_EINVAL when stdout isn't piped. */
pc_err pc_proc_read(pc_proc *p, void *buf, size_t len, double timeout,
                    size_t *n);

/* Read one line of stdout, as pc_fd_readline() (bounded by max; the caller
 * frees *line; PC_ECLOSED at end of file). */
pc_err pc_proc_readline(pc_proc *p, char **line, size_t *len, size_t max,
                        double timeout);

/* pc_proc_read() / pc_proc_readline() on stderr. */
pc_err pc_proc_read_stderr(pc_proc *p, void *buf, size_t len, double timeout,
                           size_t *n);
pc_err pc_proc_readline_stderr(pc_proc *p, char **line, size_t *len, size_t max,
                               double timeout);

/* Feed `input` (len bytes; may be NULL/0) to stdin and close it, while
 * reading stdout and stderr to their ends, then wait for the processes to
 * exit — all within `timeout` seconds, without deadlock whatever order the
 * child writes in (the caller waits on all the pipes at once; no helper
 * task). The input is read only by the caller, during the call. A task
 * terminated inside the call leaves its state in p, freed by the next call
 * or pc_proc_free(). The outputs come back in new NUL-terminated buffers *out
 * and *err (free() them; NULL out/err pointers are allowed, and a stream
 * not piped gives NULL and 0). Each is bounded by `max` bytes: beyond that
 * the output is read and dropped, and PC_ETOOBIG is returned with the
 * first max bytes. A child that stops reading its input early is fine (the
 * rest is dropped). Returns PC_OK, PC_ETOOBIG, PC_ETIMEDOUT (buffers with
 * what came so far; the processes are left running — kill them),
 * PC_ESYS, PC_ENOMEM, PC_EPERM (not a task). The exit status is then
 * ready for pc_proc_wait(p, 0, &st). Tasks only. */
pc_err pc_proc_communicate(pc_proc *p, const void *input, size_t len,
                           char **out, size_t *outlen, char **err,
                           size_t *errlen, size_t max, double timeout);

/* Wait up to `timeout` seconds until every process has exited; the wait
 * status (waitpid's: WIFEXITED, WEXITSTATUS, WIFSIGNALED, WTERMSIG) of the
 * last process goes to *status (may be NULL). Once collected, later calls
 * return it at once. Returns PC_OK, PC_ETIMEDOUT, PC_ESYS (errno set).
 * Tasks; a foreign thread or main() blocks in waitpid (timeout ignored). */
pc_err pc_proc_wait(pc_proc *p, double timeout, int *status);

/* Send signal `sig` to every process not yet reaped (through its pidfd
 * when there is one, so never to a recycled pid; a process that already
 * exited is skipped). Returns PC_OK, PC_ESYS (errno set), PC_EINVAL. Any
 * thread, also while a task waits in pc_proc_wait(). */
pc_err pc_proc_kill(pc_proc *p, int sig);

/* Close the pipes and free p; *p becomes NULL. Processes still running are
 * NOT killed or waited for here: kill and wait first (an unreaped child
 * stays a zombie until this process exits). NULL / *p NULL: no-op. Any
 * thread. */
void pc_proc_free(pc_proc **p);

#ifdef __cplusplus
}
#endif
#endif
