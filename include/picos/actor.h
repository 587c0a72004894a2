/* picos/actor.h — light actors: stackless handlers for millions of actors.
 *
 * A light actor has no stack of its own: its handler is called once per
 * message, on its worker, with the actor's own state. It has a pc_ref like a
 * task, the same mailbox, and the same send / terminate / join API
 * (pc_send(), pc_task_terminate(), pc_task_join(), pc_alive()). Inside the
 * handler pc_self() is the actor's ref and non-blocking calls work (pc_send,
 * pc_spawn, pc_actor_spawn, pc_resume, pc_task_terminate, pc_msg_*);
 * blocking calls (pc_recv, pc_sleep, pc_suspend, pc_yield, pc_deliver,
 * pc_task_join, pc_wait_fd) return PC_EPERM.
 *
 * Like a task, a light actor that is not a daemon (PC_TASK_DAEMON, or
 * pc_set_daemon() in its handler) keeps pc_node_run() waiting until it stops.
 * With PC_TASK_JOINABLE its end code is kept until one pc_task_join() takes
 * it (PC_OK after PC_ACTOR_STOP, PC_EKILLED after terminate; no value).
 *
 * An idle light actor costs its state plus about 160 bytes.
 */
#ifndef PICOS_ACTOR_H
#define PICOS_ACTOR_H

#include "picos/err.h"
#include "picos/msg.h"
#include "picos/ref.h"
#include "picos/task.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Handler results. */
#define PC_ACTOR_CONTINUE 0 /* wait for the next message */
#define PC_ACTOR_STOP 1     /* end the actor (normal exit) */

/* Called with one message, which it borrows (pc_msg_ref() to keep it).
 * Returns PC_ACTOR_CONTINUE or PC_ACTOR_STOP. */
typedef int (*pc_actor_fn)(void *state, pc_msg *msg);

/* Called once when the actor ends for any reason (stop, terminate, node
 * end), to free its state. */
typedef void (*pc_actor_fini_fn)(void *state);

/* Create a light actor with handler fn and state; *ref may be NULL. opts is
 * as for pc_spawn() (stack_size and PC_TASK_SMALL are ignored). Returns
 * PC_OK, PC_ESTATE (no node), PC_EINVAL, PC_ENOMEM. Any thread. */
pc_err pc_actor_spawn(pc_actor_fn fn, void *state, pc_actor_fini_fn fini,
                      const pc_spawn_opts *opts, pc_ref *ref);

#ifdef __cplusplus
}
#endif
#endif
