/* actors/supervisor.c — OTP-style supervisors built from tasks, links and
 * exit trapping.
 *
 * The supervisor is an ordinary task. It traps exits and links with every
 * child it starts, so each child's end reaches it as an EXIT message in its
 * mailbox, and its own death kills its children through the links. All its
 * state (specs, current refs, restart times) lives in one heap block freed
 * by its pc_at_exit() handler, so a supervisor that is itself terminated
 * leaks nothing. Queries (a child's current ref, the restart count) are
 * request/reply messages, answered between EXITs; the asking task waits
 * with a receive mark, so it never rescans its mailbox.
 *
 * Restart intensity is a sliding window: the times of the last
 * `intensity + 1` restarts are kept in a ring, and one restart too many
 * within `period` seconds ends the supervisor with an error.
 */
#include "picos/supervisor.h"

#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define T_CHILD "picos.sup.child"
#define T_CHILD_REPLY "picos.sup.child.reply"
#define T_RESTARTS "picos.sup.restarts"
#define T_RESTARTS_REPLY "picos.sup.restarts.reply"
#define T_STOP "picos.sup.stop"

typedef struct kid {
    pc_child_spec spec; /* spec.name is our own copy */
    pc_ref ref;
    bool running;
} kid;

typedef struct sv {
    pc_sup_opts o;
    size_t n;
    kid *c;
    double *stamps; /* ring of the last intensity+1 restart times */
    long restarts;
} sv;

static void
sup_free(void *arg)
{
    sv *s = arg;

    for (size_t i = 0; i < s->n; i++)
        free((char *)s->c[i].spec.name);
    free(s->c);
    free(s->stamps);
    free(s);
}

static pc_err
start_child(kid *c)
{
    pc_err rc = pc_spawn(c->spec.fn, c->spec.arg, &c->spec.opts, &c->ref);

    if (rc != PC_OK)
        return rc;
    c->running = true;
    return pc_link(c->ref); /* already gone: an EXIT (noproc) comes */
}

static void
stop_child(kid *c)
{
    if (!c->running)
        return;
    pc_unlink(c->ref);
    pc_task_terminate(c->ref);
    c->running = false;
}

static void
stop_range(sv *s, size_t from)
{
    for (size_t i = s->n; i-- > from;)
        stop_child(&s->c[i]);
}

/* One more restart now: false when that exceeds the intensity. */
static bool
may_restart(sv *s)
{
    int cap = s->o.intensity + 1;
    double now = pc_now();

    if (s->o.intensity <= 0)
        return false;
    s->stamps[s->restarts % cap] = now;
    s->restarts++;
    if (s->restarts < cap)
        return true;
    /* the oldest of the last `cap` restarts, inside the period: too many */
    return now - s->stamps[s->restarts % cap] > s->o.period;
}

static void
give_up(sv *s, const char *why)
{
    stop_range(s, 0);
    pc_exit_error(why);
}

/* Start children [from, n) that should run again after a restart. */
static void
restart_range(sv *s, size_t from, size_t failed)
{
    for (size_t i = from; i < s->n; i++) {
        kid *c = &s->c[i];
        if (c->running ||
            (i != failed && c->spec.restart == PC_RESTART_TEMPORARY))
            continue;
        if (start_child(c) != PC_OK)
            give_up(s, "cannot restart a child");
    }
}

/* Consumes *m first: this may end the supervisor (give_up). */
static void
on_exit_msg(sv *s, pc_msg **m)
{
    pc_down d;
    size_t i;
    int ok = pc_down_parse(*m, &d) == PC_OK;

    pc_msg_free(m); /* d.who and d.reason are copies; nothing else is used */
    if (!ok)
        return;
    for (i = 0; i < s->n; i++)
        if (s->c[i].running && pc_ref_eq(s->c[i].ref, d.who))
            break;
    if (i == s->n)
        return; /* a child we stopped ourselves, or one restarted since */
    kid *c = &s->c[i];
    c->running = false;
    if (c->spec.restart == PC_RESTART_TEMPORARY ||
        (c->spec.restart == PC_RESTART_TRANSIENT && d.reason == PC_DOWN_NORMAL))
        return;
    if (!may_restart(s))
        give_up(s, "restart intensity reached");
    switch (s->o.strategy) {
    case PC_SUP_ONE_FOR_ONE:
        if (start_child(c) != PC_OK)
            give_up(s, "cannot restart a child");
        break;
    case PC_SUP_ONE_FOR_ALL:
        stop_range(s, 0);
        restart_range(s, 0, i);
        break;
    case PC_SUP_REST_FOR_ONE:
        stop_range(s, i + 1);
        restart_range(s, i, i);
        break;
    }
}

/* A system message: the asker's full bounded mailbox takes it anyway, and
 * the supervisor never waits for room in it. */
static void
reply(const pc_msg *req, const char *type, const void *data, size_t len)
{
    pc_msg *m = NULL;

    if (pc_msg_new(&m, type, data, len) == PC_OK)
        pc__send_sys(pc_msg_sender(req), &m);
}

static pc_msg *
sup_main(void *arg)
{
    sv *s = arg;
    pc_msg *m;

    pc_at_exit(sup_free, s);
    pc_trap_exits(true);
    for (size_t i = 0; i < s->n; i++)
        if (start_child(&s->c[i]) != PC_OK)
            give_up(s, "cannot start a child");
    while (pc_recv(&m, -1) == PC_OK) {
        if (pc_msg_is(m, PC_MSG_EXIT)) {
            on_exit_msg(s, &m);
        } else if (pc_msg_is(m, T_CHILD)) {
            size_t i;
            for (i = 0; i < s->n; i++)
                if (s->c[i].running &&
                    strcmp(s->c[i].spec.name, pc_msg_str(m)) == 0)
                    break;
            reply(m, T_CHILD_REPLY, i < s->n ? &s->c[i].ref : NULL,
                  i < s->n ? sizeof(pc_ref) : 0);
        } else if (pc_msg_is(m, T_RESTARTS)) {
            reply(m, T_RESTARTS_REPLY, &s->restarts, sizeof s->restarts);
        } else if (pc_msg_is(m, T_STOP)) {
            pc_msg_free(&m);
            stop_range(s, 0);
            return NULL;
        }
        pc_msg_free(&m);
    }
    return NULL;
}

pc_err
pc_supervisor_start(const pc_sup_opts *opts, const pc_child_spec *children,
                    size_t n, const pc_spawn_opts *sup_spawn, pc_ref *ref)
{
    sv *s;
    pc_err rc;

    if (!opts || (n && !children) || opts->intensity < 0 ||
        opts->strategy > PC_SUP_REST_FOR_ONE)
        return PC_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!children[i].fn || !children[i].name ||
            (children[i].opts.flags & PC_TASK_JOINABLE) ||
            children[i].restart > PC_RESTART_TEMPORARY)
            return PC_EINVAL;
        for (size_t j = 0; j < i; j++)
            if (strcmp(children[i].name, children[j].name) == 0)
                return PC_EINVAL;
    }
    if (!(s = calloc(1, sizeof *s)) ||
        !(s->c = calloc(n ? n : 1, sizeof *s->c)) ||
        !(s->stamps = calloc((size_t)opts->intensity + 1, sizeof(double)))) {
        if (s)
            free(s->c);
        free(s);
        return PC_ENOMEM;
    }
    s->o = *opts;
    if (s->o.period <= 0)
        s->o.period = 5;
    for (; s->n < n; s->n++) {
        s->c[s->n].spec = children[s->n];
        if (!(s->c[s->n].spec.name = strdup(children[s->n].name))) {
            sup_free(s);
            return PC_ENOMEM;
        }
    }
    if ((rc = pc_spawn(sup_main, s, sup_spawn, ref)) != PC_OK)
        sup_free(s);
    return rc;
}

struct want {
    const char *type;
    pc_ref from;
};

static bool
is_reply(const pc_msg *m, void *ctx)
{
    struct want *w = ctx;

    return pc_msg_is(m, w->type) && pc_ref_eq(pc_msg_sender(m), w->from);
}

/* Ask the supervisor; wait for the reply that came after our request (a
 * dead supervisor is PC_ENOENT at the send; one dying meanwhile, a
 * timeout). The reply is copied into out, which must be `size` bytes; an
 * empty reply is PC_ENOENT. */
static pc_err
ask(pc_ref sup, const char *type, const char *text, const char *reply_type,
    void *out, size_t size, double timeout)
{
    struct want w = {reply_type, sup};
    pc_mark mark = pc_mailbox_mark();
    pc_msg *m = NULL;
    const void *data;
    size_t len;
    pc_err rc;

    if (!pc_in_task())
        return PC_EPERM;
    if ((rc = pc_send_data(sup, type, text, text ? strlen(text) : 0)) != PC_OK)
        return rc;
    if ((rc = pc_recv_match(is_reply, &w, &mark, &m, timeout)) != PC_OK)
        return rc;
    data = pc_msg_data(m, &len);
    rc = len == size ? PC_OK : PC_ENOENT;
    if (rc == PC_OK)
        memcpy(out, data, size);
    pc_msg_free(&m);
    return rc;
}

pc_err
pc_supervisor_child(pc_ref sup, const char *name, pc_ref *child, double timeout)
{
    if (!name || !child)
        return PC_EINVAL;
    return ask(sup, T_CHILD, name, T_CHILD_REPLY, child, sizeof *child,
               timeout);
}

pc_err
pc_supervisor_restarts(pc_ref sup, long *count, double timeout)
{
    if (!count)
        return PC_EINVAL;
    return ask(sup, T_RESTARTS, NULL, T_RESTARTS_REPLY, count, sizeof *count,
               timeout);
}

pc_err
pc_supervisor_stop(pc_ref sup)
{
    return pc_send_data(sup, T_STOP, NULL, 0);
}
