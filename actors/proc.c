/* actors/proc.c — a proc's life: spawn, publish, end, zombie, terminate,
 * join.
 *
 * Tasks and light actors share this life cycle. A spawned proc gets a slot
 * and is published to its worker (linked at once when that is the caller's
 * own, else posted as a SPAWN envelope). It ends in pc__proc_finish() on its
 * worker: mailbox cleared, exit handler run, slot made stale (or kept as a
 * zombie for a joinable task), joiners answered, watchers and links told.
 *
 * Joining a zombie is two steps: the joiner first learns the proc ended
 * (PC__ENDED), then collects the value with a request that has no timeout
 * (the owner answers at once: nothing waits on the joined task any more).
 * So a value is handed only to a joiner that is still there to take it,
 * and "timeout 0" can look at the zombie flag in the slot without waiting.
 *
 * The node's count of live non-daemon procs (what pc_node_run waits on) is
 * kept without a locked atomic per spawn and end: a worker takes credit
 * from the count ND_BATCH at a time and spends one per non-daemon proc it
 * spawns; a non-daemon proc that ends on a worker gives one back to that
 * worker's credit; after every run batch (and so before it sleeps) a
 * worker hands its credit back to the count. The count is never below the
 * live non-daemon procs (each one is in it), so it can't reach 0 early, and
 * it is exact once every worker is between batches: at most one batch late.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void at_exit_run(pc__worker *w, pc__proc *p);

static void
nondaemon_add(long n)
{
    pc__node *nd = pc__the_node;

    if (atomic_fetch_add(&nd->nondaemon, n) + n == 0) {
        pthread_mutex_lock(&nd->mu);
        pthread_cond_broadcast(&nd->cv);
        pthread_mutex_unlock(&nd->mu);
    }
}

#define ND_BATCH 64

/* A non-daemon proc more (spawned, or pc_set_daemon(false)) ... */
static void
nondaemon_take(void)
{
    pc__worker *w = pc__tls_worker;

    if (!w) {
        nondaemon_add(1);
        return;
    }
    if (!w->nd_credit) {
        nondaemon_add(ND_BATCH);
        w->nd_credit = ND_BATCH;
    }
    w->nd_credit--;
}

/* ... and one less (it ended, or pc_set_daemon(true)). */
static void
nondaemon_give(void)
{
    pc__worker *w = pc__tls_worker;

    if (w)
        w->nd_credit++;
    else
        nondaemon_add(-1);
}

void
pc__nondaemon_flush(pc__worker *w)
{
    long c = w->nd_credit;

    if (c) {
        w->nd_credit = 0;
        nondaemon_add(-c);
    }
}

static int
pick_worker(int want)
{
    pc__node *n = pc__the_node;
    pc__worker *w = pc__tls_worker;

    if (want > 0)
        return want - 1 < n->nworkers ? want - 1 : -1;
    if (want == PC_WORKER_SELF && w)
        return w->index;
    if (want != PC_WORKER_SELF && want != PC_WORKER_ANY)
        return -1;
    if (w)
        return (int)(w->rr++ % (uint64_t)n->nworkers);
    return (int)(atomic_fetch_add(&n->rr, 1) % (uint64_t)n->nworkers);
}

static pc__proc *
proc_alloc(int c, size_t size)
{
    uint16_t home;
    pc__proc *p = pc__cache_get(pc__tls_worker, c, &home);

    if (p) {
        if (size == sizeof(pc__actor)) /* the common size: stores, no call */
            memset(p, 0, sizeof(pc__actor));
        else
            memset(p, 0, size);
        p->home = home;
    }
    return p;
}

pc__proc_x *
pc__proc_x_get(pc__proc *p)
{
    if (!p->x)
        p->x = calloc(1, sizeof *p->x);
    return p->x;
}

static void
proc_free(pc__proc *p)
{
    if (p->x) {
        free(p->x->name);
        free(p->x);
    }
    pc__cache_put(p->kind == PC__ACTOR ? PC__CACHE_ACTOR : PC__CACHE_TASK,
                  p->home, p);
}

pc_err
pc__proc_new(int kind, size_t size, const pc_spawn_opts *opts, pc__proc **out,
             int *worker)
{
    pc_spawn_opts o = {0};
    pc__proc *p;
    pc_err rc;

    if (opts)
        o = *opts;
    if (!pc__the_node)
        return PC_ESTATE;
    if ((*worker = pick_worker(o.worker)) < 0 || o.mailbox_policy > PC_MB_BLOCK)
        return PC_EINVAL;
    if (!(p = proc_alloc(kind == PC__ACTOR ? PC__CACHE_ACTOR : PC__CACHE_TASK,
                         size)))
        return PC_ENOMEM;
    p->kind = (uint8_t)kind;
    /* named, bounded and joinable procs need their extension from the
     * start (a zombie keeps its end there) */
    if ((o.name || o.mailbox_cap || (o.flags & PC_TASK_JOINABLE)) &&
        !pc__proc_x_get(p)) {
        proc_free(p);
        return PC_ENOMEM;
    }
    if (o.name && !(p->x->name = strdup(o.name))) {
        proc_free(p);
        return PC_ENOMEM;
    }
    if ((rc = pc__slot_alloc_fast(pc__tls_worker, &p->idx, &p->gen)) != PC_OK) {
        proc_free(p);
        return rc;
    }
    p->daemon = (o.flags & PC_TASK_DAEMON) != 0;
    p->joinable = (o.flags & PC_TASK_JOINABLE) != 0;
    p->mb_cap = o.mailbox_cap;
    p->mb_policy = (uint8_t)o.mailbox_policy;
    *out = p;
    return PC_OK;
}

/* Called on the proc's own worker: it now exists there. */
void
pc__link(pc__worker *w, pc__proc *p)
{
    p->w = w;
    pc__count(&w->st.spawned, 1);
    pc__count(p->kind == PC__ACTOR ? &w->st.actors : &w->st.tasks, 1);
    if (p->killed) {
        pc__proc_finish(w, p, PC_EKILLED, NULL);
        return;
    }
    if (p->kind == PC__ACTOR) {
        p->state = PC__ST_IDLE;
        if (pc__mb_len(p))
            pc__runq_push(w, p);
    } else {
        pc__runq_push(w, p);
    }
}

/* Make a built proc reachable: publish its slot, then link it (own worker)
 * or post it to its worker. */
void
pc__publish(pc__proc *p, int worker)
{
    pc__node *n = pc__the_node;
    pc__worker *w = pc__tls_worker, *tw = &n->workers[worker];
    pc__slot *s = pc__slot_get(p->idx);

    p->w = tw;
    if (!p->daemon)
        nondaemon_take();
    atomic_store_explicit(&s->worker, (uint16_t)worker, memory_order_relaxed);
    atomic_store_explicit(&s->proc, p, memory_order_release);
    if (tw == w) {
        pc__link(w, p);
        return;
    }
    pc__env *e = pc__env_new(PC__ENV_SPAWN);
    if (!e)
        abort(); /* 80 bytes; the proc itself was just allocated */
    e->ptr = p;
    pc__env_push(tw, e);
}

/* The proc ended with rc (PC_OK: normal exit with value; PC_EKILLED...).
 * Frees the mailbox and the proc and its slot, handing joiners the result —
 * or, for a joinable proc, keeps a zombie with rc and value and tells the
 * joiners PC__ENDED, so that the one that still waits collects it with a
 * second join. Consumes value. */
void
pc__proc_finish(pc__worker *w, pc__proc *p, int rc, pc_msg *value)
{
    pc__joiner *j, *joiners = p->x ? p->x->joiners : NULL;
    pc__mon *watchers, *links;
    pc_ref who = pc__proc_ref(p);
    bool zombie = p->joinable;

    p->state = PC__ST_DEAD; /* ending: nothing wakes, runs or ends it again */
    pc__count(p->kind == PC__ACTOR ? &w->st.actors : &w->st.tasks,
              (uint64_t)-1);
    if (p->x)
        p->x->joiners = NULL;
    if (p->kind == PC__ACTOR)
        pc__actor_release((pc__actor *)p);
    else
        pc__task_release(w, (pc__task *)p);
    /* as p, before its links, mail and locks go (a proc without an
     * extension has no exit handler, locks, monitors or links) */
    if (p->x) {
        at_exit_run(w, p);
        pc__sync_proc_ended(w, p);
        pc__mon_detach(p, &watchers, &links);
    } else {
        watchers = links = NULL;
    }
    pc__mb_clear(p);
    if (!p->daemon)
        nondaemon_give();
    p->daemon = true; /* counted once */
    /* The ref must be stale (or a zombie's) before any joiner can learn of
     * the end, so that pc_alive() after a join is false on every worker. */
    if (zombie) {
        p->x->exit_val = value;
        p->x->exit_rc = rc;
        p->state = PC__ST_ZOMBIE;
        atomic_store_explicit(&pc__slot_get(p->idx)->zombie, 1,
                              memory_order_release);
        value = NULL;
    } else {
        pc__zombie_free(w, p);
    }
    while ((j = joiners)) {
        joiners = j->next;
        if (zombie)
            pc__reply(j->rt, PC__ENDED, NULL);
        else
            pc__reply(j->rt, rc, value ? pc_msg_ref(value) : NULL);
        free(j);
    }
    if (watchers || links) /* may end linked procs: last, with p settled */
        pc__mon_notify(w, who, watchers, links, rc,
                       zombie ? pc_msg_ref(p->x->exit_val) : pc_msg_ref(value));
    pc_msg_free(&value);
}

/* Free an ended proc (a zombie whose value was taken, or a finished one). */
void
pc__zombie_free(pc__worker *w, pc__proc *p)
{
    p->state = PC__ST_DEAD;
    pc__slot_release_fast(w, p->idx);
    proc_free(p);
}

pc_err
pc_set_daemon(bool daemon)
{
    pc__worker *w = pc__tls_worker;
    pc__proc *p = w ? w->cur : NULL;

    if (!p)
        return PC_EPERM;
    if (p->daemon != daemon) {
        p->daemon = daemon;
        if (daemon)
            nondaemon_give();
        else
            nondaemon_take();
    }
    return PC_OK;
}

pc_err
pc_at_exit(void (*fn)(void *arg), void *arg)
{
    pc__worker *w = pc__tls_worker;
    pc__proc *p = w ? w->cur : NULL;

    if (!p)
        return PC_EPERM;
    if (pc__proc_ending(p))
        return PC_ESTATE; /* in its handler: too late for another */
    if (!fn && !p->x)
        return PC_OK; /* none to remove */
    if (!pc__proc_x_get(p))
        return PC_ENOMEM;
    p->x->at_exit = fn;
    p->x->at_exit_arg = arg;
    return PC_OK;
}

/* In pc__proc_finish: run p's pc_at_exit() handler, as p. */
static void
at_exit_run(pc__worker *w, pc__proc *p)
{
    void (*fn)(void *) = p->x ? p->x->at_exit : NULL;
    pc__proc *cur = w->cur; /* the scheduler's NULL, or a proc ending p */

    if (!fn)
        return;
    p->x->at_exit = NULL;
    w->cur = p; /* pc_self() is p; pc__cur_task() refuses to block it */
    fn(p->x->at_exit_arg);
    w->cur = cur;
}

void
pc_exit_error(const char *reason)
{
    pc__worker *w = pc__tls_worker;
    pc__task *t = pc__cur_task(w);
    pc_msg *m = NULL;

    if (!t) {
        PC_LOG_ERROR("actors", "pc_exit_error() called outside a task");
        abort();
    }
    pc_msg_new_str(&m, PC_MSG_ERROR, reason ? reason : "");
    pc__task_exit(w, t, PC_EFAILED, m);
}

void
pc_exit(pc_msg *value)
{
    pc__worker *w = pc__tls_worker;
    pc__task *t = pc__cur_task(w);

    if (!t) {
        PC_LOG_ERROR("actors", "pc_exit() called outside a task");
        abort();
    }
    pc__task_exit(w, t, PC_OK, value);
}

void
pc__terminate_local(pc__worker *w, pc__proc *p)
{
    if (!p)
        return;
    switch (p->state) {
    case PC__ST_NEW:
    case PC__ST_READY:
        p->killed = true; /* finished when linked or popped */
        break;
    case PC__ST_RUNNING: /* the caller itself */
        if (p->kind == PC__TASK)
            pc__task_exit(w, (pc__task *)p, PC_EKILLED, NULL);
        p->killed = true; /* an actor: ends when its handler returns */
        break;
    case PC__ST_ZOMBIE:
    case PC__ST_DEAD:
        break;
    default:
        pc__proc_finish(w, p, PC_EKILLED, NULL);
    }
}

pc_err
pc_task_terminate(pc_ref ref)
{
    pc_err rc = pc__at_owner(&(pc__env){.kind = PC__ENV_TERMINATE, .to = ref});

    return rc == PC_EUNREACH ? pc__remote_terminate(ref) : rc;
}

/* Does joiner record rt stand for the same wait as `of`? */
static bool
same_wait(pc__reply_to rt, pc__reply_to of)
{
    return of.sync ? rt.sync == of.sync
                   : rt.token == of.token && pc_ref_eq(rt.task, of.task);
}

static void
joiner_add(pc__proc *p, pc__reply_to rt)
{
    pc__joiner *j = malloc(sizeof *j);

    if (!j || !pc__proc_x_get(p)) {
        free(j);
        pc__reply(rt, PC_ENOMEM, NULL);
        return;
    }
    j->rt = rt;
    j->next = p->x->joiners;
    p->x->joiners = j;
}

/* Take joiner record `of` off p's list; true when it was there. */
static bool
joiner_del(pc__proc *p, pc__reply_to of)
{
    for (pc__joiner **jp = p->x ? &p->x->joiners : NULL; jp && *jp;
         jp = &(*jp)->next) {
        pc__joiner *j = *jp;
        if (same_wait(j->rt, of)) {
            *jp = j->next;
            free(j);
            return true;
        }
    }
    return false;
}

/* A zombie's end: its exit code, *v its value; the proc is freed. */
static int
zombie_take(pc__worker *w, pc__proc *p, pc_msg **v)
{
    int rc = p->x->exit_rc;

    *v = p->x->exit_val;
    p->x->exit_val = NULL;
    pc__zombie_free(w, p);
    return rc;
}

void
pc__join_local(pc__worker *w, pc__env *e)
{
    pc__proc *p = pc__proc_lookup(w, e->to);
    pc_msg *v;

    if (!p || p->state == PC__ST_DEAD) {
        pc__reply(e->rt, PC_ENOENT, NULL);
    } else if (p->state != PC__ST_ZOMBIE) {
        joiner_add(p, e->rt);
    } else if (e->ptr) { /* collect */
        int rc = zombie_take(w, p, &v);
        pc__reply(e->rt, rc, v);
    } else {
        pc__reply(e->rt, PC__ENDED, NULL);
    }
}

void
pc__unjoin_local(pc__worker *w, pc__env *e)
{
    pc__proc *p = pc__proc_lookup(w, e->to);

    if (p && joiner_del(p, e->rt) && e->rt.sync)
        pc__sync_unref(e->rt.sync); /* the record's: no reply will come */
    if (e->rt.sync)
        pc__sync_unref(e->rt.sync); /* the UNJOIN envelope's own */
}

/* Wait until `ref` ends: PC__ENDED when it is (or became) a zombie, else
 * how it ended with *v its value (a non-joinable task), or PC_ETIMEDOUT. */
static int
join_wait(pc__worker *w, pc__worker *tw, pc__slot *s, pc_ref ref,
          double timeout, pc_msg **v)
{
    pc__reply_to rt;
    int rc;

    if (atomic_load_explicit(&s->zombie, memory_order_acquire))
        return PC__ENDED;
    if (timeout == 0)
        return PC_ETIMEDOUT;
    if (tw != w) {
        pc__env *e = pc__env_new(PC__ENV_JOIN);
        if (!e)
            return PC_ENOMEM;
        e->to = ref;
        rc = pc__request_keep(tw, e, timeout, v, &rt);
        if (rc == PC_ETIMEDOUT) { /* drop the record the owner keeps */
            pc__env unjoin = {.kind = PC__ENV_UNJOIN, .to = ref, .rt = rt};
            if (pc__at_owner(&unjoin) != PC_OK && rt.sync)
                pc__sync_unref(rt.sync);
        }
        return rc;
    }
    pc__proc *p = pc__proc_lookup(w, ref);
    pc__task *t = pc__cur_task(w);

    if (!t)
        return PC_EPERM; /* a worker thread outside any task */
    if (!p)
        return PC_ENOENT;
    rt = (pc__reply_to){pc__proc_ref(&t->p), pc__task_token(t), NULL};
    joiner_add(p, rt);
    rc = pc__task_wait(w, t, PC__ST_AWAIT_REPLY, timeout);
    *v = t->reply_msg;
    t->reply_msg = NULL;
    if (rc == PC_ETIMEDOUT && (p = pc__proc_lookup(w, ref)))
        joiner_del(p, rt);
    return rc;
}

/* Collect an ended zombie's value: the owner answers at once, so there is
 * no timeout (one would lose the value if it expired on the way back). */
static int
join_collect(pc__worker *w, pc__worker *tw, pc_ref ref, pc_msg **v)
{
    if (tw != w) {
        pc__env *e = pc__env_new(PC__ENV_JOIN);
        if (!e)
            return PC_ENOMEM;
        e->to = ref;
        e->ptr = (void *)1;
        return pc__request(tw, e, -1, v);
    }
    pc__proc *p = pc__proc_lookup(w, ref);
    if (!p || p->state != PC__ST_ZOMBIE)
        return PC_ENOENT; /* another joiner collected it first */
    return zombie_take(w, p, v);
}

pc_err
pc_task_join(pc_ref ref, double timeout, pc_msg **value)
{
    pc__worker *w = pc__tls_worker;
    pc__node *n = pc__the_node;
    pc__slot *s;
    pc_msg *v = NULL;
    int rc;

    if (value)
        *value = NULL;
    if (w && !pc__cur_task(w))
        return PC_EPERM; /* a handler or a worker callback can't wait */
    if (pc_ref_eq(ref, pc_self()))
        return PC_EINVAL;
    if (!n)
        return PC_ESTATE;
    if (pc_ref_is_nil(ref))
        return PC_ENOENT;
    if (ref.node != n->id) {
        rc = pc__remote_join(ref, timeout, &v);
        goto out;
    }
    /* not pc__route(): it refuses zombies, and joins are what they wait for */
    if (!(s = pc__slot_of(ref)))
        return PC_ENOENT;
    pc__worker *tw = pc__slot_worker(s);
    if ((rc = join_wait(w, tw, s, ref, timeout, &v)) == PC__ENDED)
        rc = join_collect(w, tw, ref, &v);
out:
    if (value)
        *value = v;
    else
        pc_msg_free(&v);
    return rc;
}
