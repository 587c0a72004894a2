/* actors/monitor.c — monitors, links and the DOWN / EXIT messages.
 *
 * Each proc keeps two small lists of refs: the procs watching it and the
 * procs linked with it. Both lists belong to the proc's worker; a request
 * from elsewhere (monitor, link, their undoing) travels as an envelope to
 * that worker, and a link's other half is an envelope to the other end's.
 *
 * When a proc ends, pc__proc_finish() detaches the lists, makes the ref
 * stale, and only then calls pc__mon_notify(): one DOWN message is built and
 * every watcher gets a reference to it (fan-out, no copies); every linked
 * proc gets an exit signal, which on its worker either kills it (abnormal
 * end, not trapping), becomes an EXIT message (trapping), or is dropped
 * (normal end, not trapping) — Erlang's rules.
 *
 * The payload is a few little-endian fields, so the message can leave the
 * process as it is:
 *   u8 version (1), u8 reason, u16 0, u64 node, u64 id,
 *   u16 type length n, n type bytes, NUL, u32 value length, value bytes
 * For PC_DOWN_ERROR the type is empty and the value is the reason text
 * (every payload is followed by a NUL, so both read as C strings).
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define HDR 20 /* version, reason, pad, node, id */

static void
put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void
put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void
put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t
get(const unsigned char *p, int n)
{
    uint64_t v = 0;

    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static pc_down_reason
reason_of(int rc)
{
    switch (rc) {
    case PC_OK:
        return PC_DOWN_NORMAL;
    case PC_EKILLED:
        return PC_DOWN_KILLED;
    case PC_EUNREACH:
        return PC_DOWN_NODE;
    case PC_ENOENT:
        return PC_DOWN_NOPROC;
    default:
        return PC_DOWN_ERROR;
    }
}

/* The DOWN or EXIT message of `type` about `who`: reason, the exit value's
 * type and bytes (or the error text), in the layout pc_down_parse() reads. */
static pc_msg *
down_build(const char *type, pc_ref who, pc_down_reason reason,
           const char *vtype, const void *data, size_t vlen)
{
    size_t tlen = strlen(vtype);
    unsigned char *buf;
    pc_msg *m = NULL;

    if (vlen > UINT32_MAX)
        vlen = 0;
    if (tlen > PC_MSG_TYPE_MAX || !(buf = malloc(HDR + 7 + tlen + vlen)))
        return NULL;
    buf[0] = 1;
    buf[1] = (unsigned char)reason;
    put16(buf + 2, 0);
    put64(buf + 4, who.node);
    put64(buf + 12, who.id);
    put16(buf + HDR, (uint16_t)tlen);
    memcpy(buf + HDR + 2, vtype, tlen);
    buf[HDR + 2 + tlen] = '\0';
    put32(buf + HDR + 3 + tlen, (uint32_t)vlen);
    if (vlen)
        memcpy(buf + HDR + 7 + tlen, data, vlen);
    if (pc_msg_new(&m, type, buf, HDR + 7 + tlen + vlen) == PC_OK)
        pc__msg_set_sender(m, who); /* from the proc that ended */
    free(buf);
    return m;
}

/* A DOWN or EXIT message from `who`, ended with rc and value. */
static pc_msg *
make_down(const char *type, pc_ref who, int rc, const pc_msg *value)
{
    pc_down_reason reason = reason_of(rc);
    const char *vtype = "";
    const void *data = NULL;
    size_t vlen = 0;

    if (reason == PC_DOWN_ERROR) {
        if (value && pc_msg_is(value, PC_MSG_ERROR))
            data = pc_msg_data(value, &vlen);
        else
            data = pc_strerror(rc), vlen = strlen(data);
    } else if (reason == PC_DOWN_NORMAL && value) {
        vtype = pc_msg_type(value);
        data = pc_msg_data(value, &vlen);
    }
    return down_build(type, who, reason, vtype, data, vlen);
}

pc_err
pc_down_msg_new(pc_msg **out, const char *type, const pc_down *d)
{
    const char *vtype = "";
    const void *data = NULL;
    size_t vlen = 0;

    if (!out || !d || !type ||
        (strcmp(type, PC_MSG_DOWN) && strcmp(type, PC_MSG_EXIT)) ||
        (unsigned)d->reason > PC_DOWN_NOPROC)
        return PC_EINVAL;
    if (d->reason == PC_DOWN_ERROR) {
        data = d->error ? d->error : "";
        vlen = strlen(data);
    } else if (d->reason == PC_DOWN_NORMAL && d->value_type) {
        vtype = d->value_type;
        data = d->value, vlen = d->value_len;
    }
    if (!(*out = down_build(type, d->who, d->reason, vtype, data, vlen)))
        return PC_ENOMEM;
    return PC_OK;
}

pc_err
pc_down_parse(const pc_msg *m, pc_down *out)
{
    const unsigned char *p;
    size_t len, tlen, vlen;

    if (!m || !out ||
        (!pc_msg_is(m, PC_MSG_DOWN) && !pc_msg_is(m, PC_MSG_EXIT)))
        return PC_EINVAL;
    p = pc_msg_data(m, &len);
    if (len < HDR + 7 || p[0] != 1 || p[1] > PC_DOWN_NOPROC)
        return PC_EINVAL;
    tlen = (size_t)get(p + HDR, 2);
    if (len < HDR + 7 + tlen || p[HDR + 2 + tlen] != '\0' ||
        memchr(p + HDR + 2, '\0', tlen))
        return PC_EINVAL;
    vlen = (size_t)get(p + HDR + 3 + tlen, 4);
    if (len != HDR + 7 + tlen + vlen)
        return PC_EINVAL;
    memset(out, 0, sizeof *out);
    out->reason = (pc_down_reason)p[1];
    out->who.node = get(p + 4, 8);
    out->who.id = get(p + 12, 8);
    out->error = "";
    out->value = p + HDR + 7 + tlen;
    out->value_len = vlen;
    if (out->reason == PC_DOWN_ERROR) {
        if (tlen || memchr(out->value, '\0', vlen))
            return PC_EINVAL;
        out->error = (const char *)out->value; /* NUL after the payload */
    } else if (out->reason == PC_DOWN_NORMAL && (tlen || vlen)) {
        out->value_type = (const char *)p + HDR + 2;
    }
    return PC_OK;
}

/* ---- lists ------------------------------------------------------------------ */

static bool
list_has(pc__mon *l, pc_ref r)
{
    for (; l; l = l->next)
        if (pc_ref_eq(l->ref, r))
            return true;
    return false;
}

/* Add r, once, to p's links (else its watchers), with list node n. */
static void
list_add(pc__proc *p, bool link, pc_ref r, pc__mon *n)
{
    pc__proc_x *x = pc__proc_x_get(p);
    pc__mon **l;

    if (!x) {
        PC_LOG_ERROR("actors", "no memory for a %s", link ? "link" : "monitor");
        free(n);
        return;
    }
    l = link ? &x->links : &x->watchers;
    if (list_has(*l, r)) {
        free(n);
        return;
    }
    n->ref = r;
    n->next = *l;
    *l = n;
}

static bool
list_del(pc__mon **l, pc_ref r)
{
    for (; *l; l = &(*l)->next) {
        if (pc_ref_eq((*l)->ref, r)) {
            pc__mon *d = *l;
            *l = d->next;
            free(d);
            return true;
        }
    }
    return false;
}

void
pc__mon_detach(pc__proc *p, pc__mon **watchers, pc__mon **links)
{
    *watchers = p->x ? p->x->watchers : NULL;
    *links = p->x ? p->x->links : NULL;
    if (p->x)
        p->x->watchers = p->x->links = NULL;
}

/* ---- signals ---------------------------------------------------------------- */

static void
send_down(pc_ref to, pc_ref who, int rc, const pc_msg *value)
{
    pc_msg *m = make_down(PC_MSG_DOWN, who, rc, value);

    if (m)
        pc__send_sys(to, &m);
}

/* Exit signal from `from` (ended with reason) arriving at p, on p's worker. */
static void
exit_signal(pc__worker *w, pc__proc *p, pc_ref from, int reason, pc_msg *exit)
{
    if (!p || p->state >= PC__ST_ZOMBIE) {
        pc_msg_free(&exit);
        return;
    }
    if (p == w->cur) {
        /* it is running (it ended a linked proc itself): act once it has
         * switched away, not in the middle of that proc's ending */
        pc__env *e = pc__env_new(PC__ENV_EXIT_SIG);
        if (!e) {
            pc_msg_free(&exit);
            return;
        }
        e->to = pc__proc_ref(p);
        e->rt.task = from;
        e->rc = reason;
        e->msg = exit;
        pc__env_push(w, e);
        return;
    }
    if (p->x)
        list_del(&p->x->links, from);
    if (p->trap_exits && exit) {
        if (pc__deliver_local(w, p, exit, PC__MB_SYS) != PC_OK)
            pc_msg_free(&exit); /* out of memory */
        return;
    }
    pc_msg_free(&exit);
    if (reason != PC_DOWN_NORMAL)
        pc__terminate_local(w, p);
}

/* Send an exit signal to `to`, wherever it is. */
static void
post_exit(pc_ref to, pc_ref from, int reason, pc_msg *exit)
{
    pc__env sig = {.kind = PC__ENV_EXIT_SIG,
                   .to = to,
                   .rt = {.task = from},
                   .rc = reason,
                   .msg = exit};
    pc_err rc = pc__at_owner(&sig);

    if (rc == PC_EUNREACH && exit)
        rc = pc__remote_exit(from, to, &exit);
    if (rc != PC_OK)
        pc_msg_free(&exit);
}

void
pc__mon_exit(pc_ref to, pc_ref from, int reason, pc_msg *exit)
{
    post_exit(to, from, reason, exit);
}

void
pc__mon_node_down(pc_ref local, pc_ref remote, bool link)
{
    if (link)
        post_exit(local, remote, PC_DOWN_NODE,
                  make_down(PC_MSG_EXIT, remote, PC_EUNREACH, NULL));
    else
        send_down(local, remote, PC_EUNREACH, NULL);
}

void
pc__mon_notify(pc__worker *w, pc_ref who, pc__mon *watchers, pc__mon *links,
               int rc, pc_msg *value)
{
    pc_msg *down = watchers ? make_down(PC_MSG_DOWN, who, rc, value) : NULL;
    pc_msg *exit = links ? make_down(PC_MSG_EXIT, who, rc, value) : NULL;
    pc__mon *n;

    (void)w;
    while ((n = watchers)) {
        watchers = n->next;
        pc_msg *m = down ? pc_msg_ref(down) : NULL;
        if (m)
            pc__send_sys(n->ref, &m);
        free(n);
    }
    while ((n = links)) {
        links = n->next;
        post_exit(n->ref, who, reason_of(rc), exit ? pc_msg_ref(exit) : NULL);
        free(n);
    }
    pc_msg_free(&down);
    pc_msg_free(&exit);
    pc_msg_free(&value);
}

/* ---- requests -------------------------------------------------------------------- */

/* Apply a monitor/link request on target p (on this worker; NULL: gone).
 * MONITOR and LINK bring the list node, allocated by the caller so that a
 * failed allocation is the caller's PC_ENOMEM, not a silent no-op here. */
static void
apply(int kind, pc__proc *p, pc_ref target, pc_ref other, pc__mon *n)
{
    switch (kind) {
    case PC__ENV_MONITOR:
        if (p && p->state < PC__ST_ZOMBIE) {
            list_add(p, false, other, n);
            return;
        }
        send_down(other, target, PC_ENOENT, NULL);
        break;
    case PC__ENV_DEMONITOR:
        if (p && p->x)
            list_del(&p->x->watchers, other);
        break;
    case PC__ENV_LINK:
        if (p && p->state < PC__ST_ZOMBIE) {
            list_add(p, true, other, n);
            return;
        }
        post_exit(other, target, PC_DOWN_NOPROC,
                  make_down(PC_MSG_EXIT, target, PC_ENOENT, NULL));
        break;
    case PC__ENV_UNLINK:
        if (p && p->x)
            list_del(&p->x->links, other);
        break;
    }
    free(n);
}

void
pc__mon_handle_env(pc__worker *w, pc__env *e)
{
    pc__proc *p = pc__proc_lookup(w, e->to);

    if (e->kind == PC__ENV_EXIT_SIG) {
        exit_signal(w, p, e->rt.task, e->rc, e->msg);
        e->msg = NULL;
        return;
    }
    apply(e->kind, p, e->to, e->rt.task, e->ptr);
    e->ptr = NULL;
}

/* Have a request about `target` from `other` applied on target's worker,
 * or by the transport when target is another node's. */
pc_err
pc__mon_request(int kind, pc_ref target, pc_ref other)
{
    pc__mon *n = NULL;
    pc_err rc;

    if ((kind == PC__ENV_MONITOR || kind == PC__ENV_LINK) &&
        !(n = malloc(sizeof *n)))
        return PC_ENOMEM;
    rc = pc__at_owner(&(pc__env){
        .kind = (uint8_t)kind, .to = target, .rt = {.task = other}, .ptr = n});
    if (rc == PC_EUNREACH) {
        free(n);
        bool on = kind == PC__ENV_MONITOR || kind == PC__ENV_LINK;
        if (kind == PC__ENV_MONITOR || kind == PC__ENV_DEMONITOR)
            return pc__remote_monitor(other, target, on);
        return pc__remote_link(other, target, on);
    }
    if (rc == PC_ENOENT) { /* gone: answer as its worker would */
        apply(kind, NULL, target, other, n);
        return kind == PC__ENV_DEMONITOR || kind == PC__ENV_UNLINK ? PC_ENOENT
                                                                   : PC_OK;
    }
    if (rc != PC_OK)
        free(n);
    return rc;
}

pc_err
pc_monitor(pc_ref watcher, pc_ref target)
{
    pc__worker *tw;
    pc__proc *p;
    pc_err rc = pc__route(watcher, &tw, &p);

    if (rc != PC_OK)
        return rc;
    return pc__mon_request(PC__ENV_MONITOR, target, watcher);
}

pc_err
pc_demonitor(pc_ref watcher, pc_ref target)
{
    return pc__mon_request(PC__ENV_DEMONITOR, target, watcher);
}

static pc__proc *
self_proc(void)
{
    pc__worker *w = pc__tls_worker;

    return w ? w->cur : NULL;
}

pc_err
pc_link(pc_ref other)
{
    pc__proc *me = self_proc();
    pc_ref self;
    pc_err rc;

    if (!me)
        return PC_EPERM;
    self = pc__proc_ref(me);
    if (pc_ref_eq(self, other))
        return PC_EINVAL;
    pc__mon *n = malloc(sizeof *n);
    if (!n || !pc__proc_x_get(me)) {
        free(n);
        return PC_ENOMEM;
    }
    if ((rc = pc__mon_request(PC__ENV_LINK, other, self)) != PC_OK) {
        free(n);
        return rc;
    }
    if (pc_alive(other) || other.node != self.node)
        list_add(me, true, other, n);
    else
        free(n);
    return PC_OK;
}

pc_err
pc_unlink(pc_ref other)
{
    pc__proc *me = self_proc();

    if (!me)
        return PC_EPERM;
    if (me->x)
        list_del(&me->x->links, other);
    pc__mon_request(PC__ENV_UNLINK, other, pc__proc_ref(me));
    return PC_OK;
}

pc_err
pc_trap_exits(bool on)
{
    pc__proc *me = self_proc();

    if (!me)
        return PC_EPERM;
    me->trap_exits = on;
    return PC_OK;
}
