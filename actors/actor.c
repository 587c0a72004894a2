/* actors/actor.c — light actors: a handler per message, no stack.
 *
 * A light actor is a pc__proc plus a handler, a state pointer and a fini
 * callback: 104 bytes, taken from slabs (cache.c). It sits on no queue
 * while its mailbox is empty (PC__ST_IDLE); the first message puts it on its
 * worker's run queue, and the scheduler then calls the handler on the worker's
 * own stack for up to a batch of messages before moving on, so one busy actor
 * can't starve the others. Blocking calls refuse to run inside a handler
 * (PC_EPERM): with no stack of its own there is nothing to suspend.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define ACTOR_BATCH 64

pc_err
pc_actor_spawn(pc_actor_fn fn, void *state, pc_actor_fini_fn fini,
               const pc_spawn_opts *opts, pc_ref *ref)
{
    pc__actor *a;
    int worker;
    pc_err rc;

    if (!fn)
        return pc__the_node ? PC_EINVAL : PC_ESTATE;
    if ((rc = pc__proc_new(PC__ACTOR, sizeof *a, opts, (pc__proc **)&a,
                           &worker)) != PC_OK)
        return rc;
    a->fn = fn;
    a->fini = fini;
    a->state = state;
    if (ref)
        *ref = pc__proc_ref(&a->p);
    pc__publish(&a->p, worker);
    return PC_OK;
}

void
pc__actor_run(pc__worker *w, pc__actor *a)
{
    pc_msg *m;
    int rc = PC_ACTOR_CONTINUE, n = 0;

    w->cur = &a->p;
    a->p.state = PC__ST_RUNNING;
    while (n < ACTOR_BATCH && (m = pc__mb_pop_fast(&a->p))) {
        n++;
        rc = a->fn(a->state, m);
        pc_msg_free(&m);
        if (rc != PC_ACTOR_CONTINUE || a->p.killed)
            break;
    }
    pc__count(&w->st.received, (uint64_t)n);
    w->cur = NULL;
    if (a->p.killed) {
        pc__proc_finish(w, &a->p, PC_EKILLED, NULL);
    } else if (rc != PC_ACTOR_CONTINUE) {
        pc__proc_finish(w, &a->p, PC_OK, NULL);
    } else if (pc__mb_len(&a->p)) {
        pc__runq_push(w, &a->p);
    } else {
        a->p.state = PC__ST_IDLE;
    }
}

void
pc__actor_release(pc__actor *a)
{
    if (a->fini) {
        pc_actor_fini_fn fini = a->fini;
        a->fini = NULL;
        fini(a->state);
    }
}
