/* actors/hotswap.c — hot swap of task functions, and modules to swap from.
 *
 * A request sets the task's pending function (on the task's own worker, by
 * envelope if need be) and, if the task is swappable and waiting in
 * pc_recv(), wakes it. pc_recv() checks for a pending swap before it looks
 * at the mailbox and after every wake, and returns an offer message instead
 * of mail; each request gets a sequence number, carried in the offer, so
 * only the latest offer can be accepted. Accepting switches to the
 * scheduler for good (like an exit, but the task lives on): the scheduler
 * drops the abandoned frames, makes a fresh context on the same stack and
 * queues the task, which then starts at the new function. The mailbox, the
 * ref, monitors and links are untouched.
 *
 * Module-wide swaps go to every worker as an envelope; each worker walks the
 * slot table for its own tasks, so no proc is touched from another thread.
 */
#include "picos/hotswap.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct pc_module {
    void *handle;
};

/* An offer's payload: process-local, like the function it names. */
struct offer {
    uint32_t seq;
    pc_task_fn fn;
    void *arg;
};

static bool
offer_read(const pc_msg *m, struct offer *o)
{
    size_t len;
    const void *d;

    if (!m || !pc_msg_is(m, PC_MSG_HOTSWAP))
        return false;
    d = pc_msg_data(m, &len);
    if (len != sizeof *o)
        return false;
    memcpy(o, d, sizeof *o);
    return true;
}

pc_err
pc_hot_swap_offered(const pc_msg *offer, pc_task_fn *fn, void **arg)
{
    struct offer o;

    if (!offer_read(offer, &o))
        return PC_EINVAL;
    if (fn)
        *fn = o.fn;
    if (arg)
        *arg = o.arg;
    return PC_OK;
}

static void
set_swap(pc__task *t, pc_task_fn fn, void *arg, pc_ref from)
{
    pc__task_x *x = pc__task_x_get(t);

    if (!x) {
        PC_LOG_ERROR("hotswap", "no memory for a hot swap request");
        return;
    }
    x->swap_fn = fn;
    x->swap_arg = arg;
    x->swap_from = from;
    x->swap_seq++;
    x->swap_offered = false;
    if (x->swappable && t->p.state == PC__ST_AWAIT_MSG)
        pc__task_wake(t, PC_OK);
}

pc_msg *
pc__swap_offer(pc__task *t)
{
    pc__task_x *x = t->x;
    pc_msg *m = NULL;

    if (!x || !x->swap_fn || !x->swappable || x->swap_offered)
        return NULL;
    struct offer o = {x->swap_seq, x->swap_fn, x->swap_arg};
    if (pc_msg_new(&m, PC_MSG_HOTSWAP, &o, sizeof o) != PC_OK)
        return NULL;
    pc__msg_set_sender(m, x->swap_from);
    x->swap_offered = true;
    return m;
}

pc_err
pc_hot_swappable(bool on)
{
    pc__task *t = pc__cur_task(pc__tls_worker);

    if (!t)
        return PC_EPERM;
    if (!on && !t->x)
        return PC_OK;
    if (!pc__task_x_get(t))
        return PC_ENOMEM;
    t->x->swappable = on;
    return PC_OK;
}

pc_err
pc_hot_swap_accept(pc_msg **offer)
{
    pc__worker *w = pc__tls_worker;
    pc__task *t = pc__cur_task(w);
    pc__task_x *x;
    struct offer o;

    if (!t)
        return PC_EPERM;
    if (!offer || !offer_read(*offer, &o))
        return PC_EINVAL;
    if (!(x = t->x) || !x->swap_fn || !x->swap_offered || o.seq != x->swap_seq)
        return PC_EINVAL;
    pc_msg_free(offer);
    t->fn = x->swap_fn;
    t->arg = x->swap_arg;
    x->swap_fn = NULL;
    x->swap_offered = false;
    pc__task_rebirth(w, t);
}

pc_err
pc_hot_swap(pc_ref ref, pc_task_fn fn, void *arg)
{
    pc__worker *tw;
    pc__proc *p;
    pc_err rc;

    if (!fn)
        return PC_EINVAL;
    if ((rc = pc__route(ref, &tw, &p)) != PC_OK)
        return rc;
    if (p) {
        if (p->kind != PC__TASK)
            return PC_ENOTSUP;
        set_swap((pc__task *)p, fn, arg, pc_self());
        return PC_OK;
    }
    pc__env *e = pc__env_new(PC__ENV_SWAP);
    if (!e)
        return PC_ENOMEM;
    e->to = ref;
    e->swap_fn = fn;
    e->ptr = arg;
    e->rt.task = pc_self();
    pc__env_push(tw, e);
    return PC_OK;
}

void
pc__swap_handle_env(pc__worker *w, pc__env *e)
{
    if (e->kind == PC__ENV_SWAP) {
        pc__proc *p = pc__proc_lookup(w, e->to);
        if (p && p->kind == PC__TASK && p->state < PC__ST_ZOMBIE)
            set_swap((pc__task *)p, e->swap_fn, e->ptr, e->rt.task);
        return;
    }
    /* PC__ENV_SWAP_ALL: this worker's tasks running swap_old */
    uint32_t top = (uint32_t)atomic_load(&pc__the_node->slot_next);
    for (uint32_t idx = 1; idx < top; idx++) {
        pc__slot *s = pc__slot_get(idx);
        pc__proc *p;
        if (!s ||
            atomic_load_explicit(&s->worker, memory_order_relaxed) != w->index)
            continue;
        p = atomic_load_explicit(&s->proc, memory_order_acquire);
        if (!p || ((uintptr_t)p & 1) || p->idx != idx || p->w != w ||
            p->kind != PC__TASK || p->state >= PC__ST_ZOMBIE)
            continue;
        pc__task *t = (pc__task *)p;
        if (t->fn == e->swap_old)
            set_swap(t, e->swap_fn, t->arg, e->rt.task);
    }
}

pc_err
pc_hot_swap_all(pc_task_fn old_fn, pc_task_fn new_fn)
{
    pc__node *n = pc__the_node;

    if (!old_fn || !new_fn)
        return PC_EINVAL;
    if (!n)
        return PC_ESTATE;
    /* The caller's own worker is done at once, the others by envelope, so
     * a message the caller sends afterwards arrives after the request. */
    for (int i = 0; i < n->nworkers; i++) {
        pc__env *e = pc__env_new(PC__ENV_SWAP_ALL);
        if (!e)
            return PC_ENOMEM;
        e->swap_old = old_fn;
        e->swap_fn = new_fn;
        e->rt.task = pc_self();
        if (&n->workers[i] == pc__tls_worker) {
            pc__swap_handle_env(pc__tls_worker, e);
            pc__env_free(e);
        } else {
            pc__env_push(&n->workers[i], e);
        }
    }
    return PC_OK;
}

pc_err
pc_module_load(const char *path, pc_module **out)
{
    pc_module *m;

    if (!path || !out)
        return PC_EINVAL;
    *out = NULL;
    if (!(m = calloc(1, sizeof *m)))
        return PC_ENOMEM;
    if (!(m->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL))) {
        PC_LOG_ERROR("hotswap", "cannot load module %s: %s", path, dlerror());
        free(m);
        return PC_ENOENT;
    }
    *out = m;
    return PC_OK;
}

pc_task_fn
pc_module_fn(pc_module *m, const char *name)
{
    pc_task_fn fn = NULL;
    void *sym;

    if (!m || !name || !(sym = dlsym(m->handle, name)))
        return NULL;
    memcpy(&fn, &sym, sizeof fn); /* POSIX: data and code pointers agree */
    return fn;
}

pc_err
pc_hot_swap_module(pc_module *old, pc_module *new_mod, const char *const *names,
                   size_t n)
{
    pc_err rc;

    for (size_t i = 0; i < n; i++)
        if (!pc_module_fn(old, names[i]) || !pc_module_fn(new_mod, names[i]))
            return PC_ENOENT;
    for (size_t i = 0; i < n; i++)
        if ((rc = pc_hot_swap_all(pc_module_fn(old, names[i]),
                                  pc_module_fn(new_mod, names[i]))) != PC_OK)
            return rc;
    return PC_OK;
}

void
pc_module_free(pc_module **mp)
{
    if (!mp || !*mp)
        return;
    /* No dlclose(): a task may still run the module's code, or a swap
     * offer point into it, and nothing tells when the last one stops.
     * The library stays mapped until the process ends (Erlang, too, keeps
     * old code until it is purged). */
    free(*mp);
    *mp = NULL;
}
