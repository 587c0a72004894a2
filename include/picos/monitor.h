/* picos/monitor.h — monitors, links and error exits (Erlang's, for tasks and
 * light actors).
 *
 * A monitor is one-way: when the target ends, the watcher gets one DOWN
 * message (type PC_MSG_DOWN) saying how: normal exit (with the exit value),
 * error exit (with the reason), killed (terminated), node down (later, for
 * remote targets), or no such proc (the target was already gone when the
 * monitor was set). Many-to-many: any proc may watch any number of others.
 *
 * A link is two-way: when either end ends abnormally (error, killed), the
 * other is killed too — unless it traps exits (pc_trap_exits(true)), in
 * which case it gets an EXIT message (type PC_MSG_EXIT, same contents as a
 * DOWN) instead. A normal end reaches only trapping ends, as an EXIT message.
 * Linking to a proc that is already gone sends the linker an exit signal
 * with reason PC_DOWN_NOPROC (so a non-trapping linker is killed), as in
 * Erlang.
 *
 * DOWN and EXIT messages are plain messages with a small byte payload (so
 * they can cross nodes): read them with pc_down_parse(). Their sender is the
 * proc that ended, and they arrive only after its ref has gone stale.
 */
#ifndef PICOS_MONITOR_H
#define PICOS_MONITOR_H

#include <stdbool.h>
#include <stddef.h>

#include "picos/err.h"
#include "picos/msg.h"
#include "picos/ref.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PC_MSG_DOWN "picos.down"
#define PC_MSG_EXIT "picos.exit"
/* The exit value of a task that ended with pc_exit_error(): its payload is
 * the reason text. */
#define PC_MSG_ERROR "picos.error"

typedef enum pc_down_reason {
    PC_DOWN_NORMAL = 0, /* returned, pc_exit(), or an actor's PC_ACTOR_STOP */
    PC_DOWN_ERROR = 1,  /* pc_exit_error(), or a runtime failure */
    PC_DOWN_KILLED = 2, /* pc_task_terminate(), a link, or the node's end */
    PC_DOWN_NODE = 3,   /* its node went away (remote targets, later) */
    PC_DOWN_NOPROC = 4  /* it was gone already when the monitor/link was set */
} pc_down_reason;

/* A parsed DOWN or EXIT message; pointers point into the message. */
typedef struct pc_down {
    pc_ref who;             /* the proc that ended */
    pc_down_reason reason;  /* how */
    const char *error;      /* PC_DOWN_ERROR: the reason text; else "" */
    const char *value_type; /* PC_DOWN_NORMAL with an exit value: its type;
                               else NULL */
    const void *value;      /* the exit value's payload (value_len bytes) */
    size_t value_len;
} pc_down;

/* Parse a DOWN or EXIT message (checks every length against the payload).
 * Returns PC_OK, or PC_EINVAL when m is not one or is malformed. */
pc_err pc_down_parse(const pc_msg *m, pc_down *out);

/* `watcher` (a task or actor) will get a DOWN message when `target` ends.
 * Setting the same pair twice keeps one monitor. Returns PC_OK (also when
 * the target is gone: the DOWN then says PC_DOWN_NOPROC), PC_ENOENT (no such
 * watcher), PC_EUNREACH (another node's ref, until transports exist). Any
 * thread. */
pc_err pc_monitor(pc_ref watcher, pc_ref target);

/* Remove the monitor of `watcher` on `target`; a DOWN already sent may still
 * arrive. Returns PC_OK or PC_ENOENT (target gone). Any thread. */
pc_err pc_demonitor(pc_ref watcher, pc_ref target);

/* Link the caller (task or actor) with `other`. Returns PC_OK, PC_EPERM
 * outside tasks and actors, PC_EINVAL (itself), PC_EUNREACH. */
pc_err pc_link(pc_ref other);

/* Remove the caller's link with `other` (both directions). */
pc_err pc_unlink(pc_ref other);

/* Trap exits: abnormal ends of linked procs arrive as EXIT messages instead
 * of killing the caller. Tasks and actors. */
pc_err pc_trap_exits(bool on);

/* End the calling task with an error: joiners get PC_EFAILED and a message
 * of type PC_MSG_ERROR holding `reason`; monitors get a DOWN with
 * PC_DOWN_ERROR; links propagate it. Tasks only; does not return. */
void pc_exit_error(const char *reason) __attribute__((noreturn));

#ifdef __cplusplus
}
#endif
#endif
