/* picos/task.h — tasks (stackful coroutines) and messaging.
 *
 * A task is a function that runs on its own stack and reads like thread
 * code: `pc_recv(&m, 1.0)`, `pc_sleep(0.5)`, `pc_wait_fd(fd, PC_READ, 5)`.
 * A blocking call suspends only the calling task; its worker runs others.
 *
 * Wake rules (pycos's, PYCOS_SPEC §0): a task waits for exactly one kind of
 * thing at a time, and only that kind wakes it.
 *   - pc_resume() wakes only a task in pc_suspend() / pc_sleep();
 *   - a message wakes only a task in pc_recv() (else it is queued);
 *   - fd readiness wakes only a task in pc_wait_fd() on that fd;
 *   - a task's end wakes only tasks in pc_task_join() on it;
 *   - every wait has a timeout (negative: forever; 0: don't wait).
 *
 * Ordering: messages from one sender to one receiver arrive in the order
 * sent (FIFO per pair), across workers too. pc_send() is at-most-once: a
 * message to a task that ends before reading it is dropped.
 *
 * Unless said otherwise, functions below are for tasks only (the calling
 * thread must be running a task) and return PC_EPERM elsewhere, including
 * in a task's own exit handler (pc_at_exit()). Those marked
 * "any thread" also work from light actors, foreign threads and main().
 */
#ifndef PICOS_TASK_H
#define PICOS_TASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "picos/err.h"
#include "picos/msg.h"
#include "picos/ref.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A task function. Its return value is the task's exit value: a message (or
 * NULL) whose reference passes to the runtime, then to a joiner. */
typedef pc_msg *(*pc_task_fn)(void *arg);

/* Which worker a new task goes to. */
#define PC_WORKER_SELF 0       /* the spawner's worker; round-robin outside */
#define PC_WORKER_ANY (-1)     /* round-robin over the workers */
#define PC_WORKER(i) ((i) + 1) /* worker i, 0 <= i < pc_node_workers() */

/* Task flags. */
#define PC_TASK_DAEMON 0x1u   /* pc_node_run() doesn't wait for it */
#define PC_TASK_JOINABLE 0x2u /* keep the exit value until pc_task_join() */
/* Small-memory mode: the task runs on its worker's shared stack and the used
 * part is copied out when another small task needs the stack. Pointers to its
 * stack locals are valid only while it runs: never hand them to another task.
 * (Builds with ASan or the ucontext fallback give it a private stack.) */
#define PC_TASK_SMALL 0x4u

/* What a bounded mailbox does with a message that finds it full. System
 * messages — DOWN and EXIT (monitors, links), supervisor replies — ignore the
 * bound: they are never refused, dropped or waited for, but taken beyond the
 * capacity and counted as `over`. Channel mail never waits either. */
typedef enum pc_mbox_policy {
    PC_MB_FAIL = 0, /* refuse it: a sender on the target's worker gets
                       PC_EFULL and keeps the message; from elsewhere it is
                       refused on arrival: dropped and counted (pc_deliver
                       reports PC_EFULL) */
    PC_MB_DROP = 1, /* drop the newest (the arriving one), count it */
    PC_MB_BLOCK = 2 /* a task on the target's worker waits in pc_send (or
                       pc_send_timeout) until there is room, FIFO with the
                       other blocked senders; senders that can't wait (actor
                       handlers, the target itself) get PC_EFULL; messages
                       from other workers or threads are taken beyond the
                       capacity (counted as `over`) so nothing is lost */
} pc_mbox_policy;

typedef struct pc_spawn_opts {
    int worker;           /* PC_WORKER_SELF (the default, 0), _ANY, or (i) */
    unsigned flags;       /* PC_TASK_* */
    size_t stack_size;    /* 0: the node's default */
    const char *name;     /* for logs and status; copied; may be NULL */
    uint32_t mailbox_cap; /* 0: unbounded; else at most this many queued */
    pc_mbox_policy mailbox_policy;
} pc_spawn_opts;

/* A zeroed pc_spawn_opts is the default: own worker, no flags. */

/* Create a task running fn(arg) and return its ref in *ref (may be NULL).
 * It is scheduled at once, in FIFO order after the tasks already runnable on
 * its worker; spawn is O(1) and takes no stack until the task first runs.
 * opts may be NULL. Returns PC_OK, PC_ESTATE (no node), PC_EINVAL (bad
 * worker index), PC_ENOMEM. Any thread. */
pc_err pc_spawn(pc_task_fn fn, void *arg, const pc_spawn_opts *opts,
                pc_ref *ref);

/* The ref of the running task or light actor; the nil ref elsewhere. */
pc_ref pc_self(void);

/* The name given at spawn ("" when none). Tasks and light actors. */
const char *pc_self_name(void);

/* True when the caller is a task (not an actor handler, an exit handler or
 * a plain thread). */
bool pc_in_task(void);

/* Send *m to `to`. Ownership as in msg.h: on PC_OK the message belongs to
 * the receiver and *m is NULL; on every error *m is still the caller's.
 * pc_send reports what can be known at the call: PC_ENOENT (stale or unknown
 * ref), PC_EUNREACH (a ref of another node while no transport is attached),
 * PC_EINVAL, PC_ENOMEM, and for a full bounded mailbox on the caller's worker
 * PC_EFULL (PC_MB_FAIL; PC_MB_BLOCK when the caller can't wait). What is
 * found later on the target's worker — a PC_MB_FAIL mailbox full on arrival,
 * the target gone — drops the message and counts it (pc_mailbox_stats_get);
 * pc_deliver() reports the target's verdict instead. Never waits, except for
 * room in a full PC_MB_BLOCK mailbox on the caller's worker, and there it is
 * pc_send_timeout(to, m, -1). Any thread. */
pc_err pc_send(pc_ref to, pc_msg **m);

/* pc_send() waiting at most `timeout` seconds for room in a full PC_MB_BLOCK
 * mailbox on the caller's worker (0: don't wait, PC_EFULL at once; negative:
 * forever): PC_ETIMEDOUT when the time passes first, PC_ENOENT when the
 * target ends meanwhile. For every other target it is pc_send(). On every
 * error *m is still the caller's (msg.h). Any thread; only tasks wait (an
 * actor handler gets PC_EFULL). */
pc_err pc_send_timeout(pc_ref to, pc_msg **m, double timeout);

/* Convenience: pc_msg_new() + pc_send(); the message is freed on error.
 * A call with a literal type goes to pc_send_data_n() (below), so the
 * type's length is known at compile time. */
pc_err pc_send_data(pc_ref to, const char *type, const void *data, size_t len);

/* pc_send_data() for a type of type_len bytes, which must be strlen(type)
 * (0 for a NULL type): the type isn't measured again. */
pc_err pc_send_data_n(pc_ref to, const char *type, size_t type_len,
                      const void *data, size_t len);

/* pc_send_data(to, "literal", ...) is pc_send_data_n() with the length the
 * compiler worked out, where it can (GCC, optimizing); any other call is
 * the function, as are (pc_send_data) and &pc_send_data. */
#define PC__TYPE_LEN(type) ((type) ? __builtin_strlen((type) ? (type) : "") : 0)
static inline __attribute__((always_inline)) pc_err
pc__send_data_lit(pc_ref to, const char *type, const void *data, size_t len)
{
    if (__builtin_constant_p(PC__TYPE_LEN(type)))
        return pc_send_data_n(to, type, PC__TYPE_LEN(type), data, len);
    return (pc_send_data)(to, type, data, len);
}
#define pc_send_data(...) pc__send_data_lit(__VA_ARGS__)

/* Send *m and wait up to `timeout` seconds (negative: forever) for the
 * target's verdict: PC_OK, the message is in its mailbox and *m NULL;
 * PC_EFULL, a full bounded mailbox refused or dropped it; PC_ENOENT, the
 * target was gone; PC_ETIMEDOUT, no verdict in time (it may still be
 * enqueued later); PC_EUNREACH, PC_EINVAL, PC_ENOMEM. A full PC_MB_BLOCK
 * mailbox on the caller's worker is first waited on, within the same
 * timeout. On every error *m is still the caller's (msg.h). A timeout of 0
 * waits a nanosecond across workers: it can't confirm anything sooner. Tasks
 * and foreign threads; PC_EPERM from a light-actor handler. */
pc_err pc_deliver(pc_ref to, pc_msg **m, double timeout);

/* Take the oldest message of the caller's mailbox into *out, waiting up to
 * `timeout` seconds (negative: forever; 0: only look). Returns PC_OK or
 * PC_ETIMEDOUT (*out is NULL). Tasks only. */
pc_err pc_recv(pc_msg **out, double timeout);

/* Messages waiting in the caller's mailbox (tasks and actors). */
size_t pc_mailbox_depth(void);

/* A mailbox's counters, for monitoring. */
typedef struct pc_mailbox_stats {
    size_t depth;     /* messages queued now */
    size_t cap;       /* 0: unbounded */
    uint64_t dropped; /* PC_MB_DROP: arrivals dropped */
    uint64_t refused; /* PC_MB_FAIL: arrivals refused; PC_MB_BLOCK: sends
                         that couldn't wait or timed out */
    uint64_t over;    /* arrivals taken beyond the capacity: system
                         messages, channel mail and other workers' mail to
                         PC_MB_BLOCK */
} pc_mailbox_stats;

/* The counters of task or actor `ref`. On its own worker the answer is
 * immediate; from elsewhere the caller (a task or a foreign thread) waits up
 * to `timeout` for the target's worker to answer. Returns PC_OK, PC_ENOENT,
 * PC_ETIMEDOUT, PC_EPERM (an actor handler asking another worker). */
pc_err pc_mailbox_stats_get(pc_ref ref, pc_mailbox_stats *out, double timeout);

/* ---- selective receive (Erlang's receive, pycos's CategorizeMessages) ---- */

/* Decides whether a message is the one wanted; must not keep it. */
typedef bool (*pc_match_fn)(const pc_msg *m, void *ctx);

/* A position in the caller's mailbox: messages that arrive after
 * pc_mailbox_mark() lie after it. Marking before sending a request lets the
 * wait for its reply skip everything that was already queued (Erlang's
 * receive marker), so request/reply never rescans the whole mailbox. */
typedef struct pc_mark {
    uint64_t seq[2];
} pc_mark;

pc_mark pc_mailbox_mark(void);

/* Take the first message for which match(m, ctx) is true — among those after
 * `after` (NULL: the whole mailbox) — waiting up to `timeout` seconds for it;
 * the others stay queued in order. While it waits, only newly arrived
 * messages are looked at. Returns PC_OK with *out, or PC_ETIMEDOUT (*out
 * NULL). Tasks only. */
pc_err pc_recv_match(pc_match_fn match, void *ctx, const pc_mark *after,
                     pc_msg **out, double timeout);

/* pc_recv_match() for the first message of type `type`. */
pc_err pc_recv_type(const char *type, pc_msg **out, double timeout);

/* Let the other runnable tasks of this worker run, then continue. */
pc_err pc_yield(void);

/* Sleep `secs` seconds (<= 0: just yield). Returns PC_OK after the full
 * time, PC_EINTR when pc_resume() woke it early (the value is dropped). */
pc_err pc_sleep(double secs);

/* Wait until another task calls pc_resume() on this one, or `timeout`
 * seconds pass (negative: forever). Returns PC_OK with the resume value in
 * *value (may be NULL), or PC_ETIMEDOUT. */
pc_err pc_suspend(double timeout, void **value);

/* Wake task `ref` if it is in pc_suspend() / pc_sleep(), handing it `value`.
 * A task that isn't suspended is not woken and the value is dropped (as in
 * pycos); cross-worker, this is decided on the target's worker. Returns
 * PC_OK or PC_ENOENT. Any thread. */
pc_err pc_resume(pc_ref ref, void *value);

/* Make the calling task a daemon (or not). Tasks and actors. */
pc_err pc_set_daemon(bool daemon);

/* Wait for task `ref` to end, up to `timeout` seconds, and take its exit
 * value into *value (may be NULL: the value is freed). A PC_TASK_JOINABLE
 * task keeps its value after it ends until one join takes it; other tasks
 * can be joined only while they run. Returns PC_OK, PC_ETIMEDOUT, PC_ENOENT
 * (no such task, or it ended unjoinable before the join arrived), PC_EKILLED
 * (it was terminated; *value NULL), PC_EINVAL (joining itself), PC_EPERM
 * (from a light-actor or exit handler, or a worker's own callbacks).
 * Tasks and foreign threads. */
pc_err pc_task_join(pc_ref ref, double timeout, pc_msg **value);

/* Terminate task or actor `ref`: it is removed at the point where it waits,
 * without running more of its code (like Erlang's kill; C has no unwinding,
 * so what it holds is not freed — use messages to ask a task to end cleanly).
 * Joiners get PC_EKILLED, also when a task terminates itself.
 * Returns PC_OK or PC_ENOENT. Any thread. */
pc_err pc_task_terminate(pc_ref ref);

/* End the calling task now with exit value `value`. Tasks only; does not
 * return. */
void pc_exit(pc_msg *value) __attribute__((noreturn));

/* Run fn(arg) when the calling task or light actor ends, however it ends
 * (return, pc_exit, error, terminate, the node's end) — the way to free what
 * a task holds, since terminate runs none of its code. One handler per task:
 * a second call replaces the first; fn NULL removes it. Returns PC_OK,
 * PC_EPERM (not a task or actor), PC_ESTATE (called in the handler). Tasks
 * and actors.
 *
 * fn runs on the task's worker thread (or in pc_node_run() at the node's
 * end), after the task's stack is gone (arg must not point into it), and
 * before its monitors, links and joiners learn of the end. It runs as the
 * task: pc_self() and pc_self_name() are the task's, messages it sends are
 * from the task, and it can release the locks the task holds (sync.h). But
 * it can't wait, as in a light-actor handler: pc_recv(), pc_recv_match(),
 * pc_sleep(), pc_yield(), pc_suspend(), pc_wait_fd(), pc_deliver() and
 * pc_task_join() (whatever the timeout), and sync calls with a timeout other
 * than 0 return PC_EPERM; their try forms (timeout 0) work. pc_in_task() is
 * false there; mail to the task itself is dropped; pc_task_terminate() of
 * itself does nothing; pc_exit() and pc_exit_error() must not be called
 * (they abort). Locks still held when fn returns are handed on as a dead
 * owner's (PC_EOWNERDEAD, sync.h). */
pc_err pc_at_exit(void (*fn)(void *arg), void *arg);

/* True while `ref` names a live task or actor of this node. Any thread. */
bool pc_alive(pc_ref ref);

/* fd events for pc_wait_fd(). */
#define PC_READ 0x1
#define PC_WRITE 0x2

/* Suspend the task until `fd` is ready for `events` (PC_READ|PC_WRITE) or
 * `timeout` seconds pass. Returns PC_OK with the ready events in *revents
 * (may be NULL), or PC_ETIMEDOUT, or PC_EINVAL. The one I/O primitive:
 * transport/ builds sockets on it. Tasks only. */
pc_err pc_wait_fd(int fd, int events, double timeout, int *revents);

/* The id that the calling task's next pc_wait_fd() will have (never 0; 0
 * outside tasks). To let another task cancel a wait, publish pc_self() and
 * this id where the canceller finds them, then call pc_wait_fd(). */
uint32_t pc_wait_fd_next(void);

/* Wake task `ref` if it is still blocked in the pc_wait_fd() with id `wait`:
 * that pc_wait_fd() returns PC_ECLOSED. For closing an fd other tasks wait
 * on (transport/ sockets wake their waiters this way). A task not in that
 * wait — it already left it, or is in a later one — is not affected.
 * Returns PC_OK, PC_ENOENT (no such task) or PC_EINVAL (wait 0). Any
 * thread. */
pc_err pc_wait_fd_cancel(pc_ref ref, uint32_t wait);

/* ---- names on this node (Erlang's register) ---------------------------- */

/* Longest name, bytes. */
#define PC_NAME_MAX 255

/* Register `name` for the local task or light actor `ref`, so that
 * pc_whereis() here and pc_locate_at() on other nodes find it. A name is
 * held until pc_unregister() or until its holder ends: the name of a proc
 * that has ended is free again. A proc may hold several names. Returns
 * PC_OK, PC_EINVAL (empty, longer than PC_NAME_MAX), PC_ENOENT (ref is not
 * a live proc of this node), PC_EEXIST (held by another live proc; the
 * same ref again is PC_OK), PC_ENOMEM. Any thread. */
pc_err pc_register(const char *name, pc_ref ref);

/* Free `name`. Returns PC_OK or PC_ENOENT (not registered). Any thread. */
pc_err pc_unregister(const char *name);

/* The live proc registered as `name` into *ref. Returns PC_OK or
 * PC_ENOENT (none, or its holder ended). Any thread. */
pc_err pc_whereis(const char *name, pc_ref *ref);

#ifdef __cplusplus
}
#endif
#endif
