/* registry/client.c — the cluster API of registry.h, in the callers'
 * threads.
 *
 * A call checks its arguments, answers from the cache when it can (a
 * cached pc_locate() takes one mutex and touches no message), and
 * otherwise hands an rc_call to the agent task (agent.c) and waits on the
 * call's pc_event for the agent's answer, a little past the call's
 * deadline so that a stuck agent can't hang it: the agent answers every
 * call by its deadline itself. Timeouts: negative waits forever; 0 asks the
 * registry once without waiting for anything to happen there (a LOCATE
 * of a name that is not registered answers PC_ENOENT) and waits at most
 * RC_RTT for that answer; t > 0 waits up to t (a LOCATE gets RC_RTT / 2
 * more for the registry's own "timed out" to arrive).
 *
 * A task's pc_locate() that misses the cache skips the agent: it sends
 * the LOCATE to the registry the agent publishes (the first one up) with
 * its own ref and id, and takes the reply with pc_recv_match() after a
 * mailbox mark. While it waits it is on the shared list of waiters; the
 * agent, when that registry goes down, takes it off and sends it one
 * RC_MSG_GONE, and the lookup goes on through the agent (the next
 * registry, or PC_EUNREACH). It fills the cache only when no registry went
 * down and no entry was dropped since it asked (a NAME_GONE to the agent
 * can overtake the reply to the task). pc_locate_send() goes through the
 * agent, whose answer is a PC_MSG_LOCATED message instead of an event.
 *
 * pc_cluster_join() does the node-side setup (transport, listen, who we
 * are) here, spawns the agent, and waits for its CALL_JOIN; on failure it
 * tells the agent to end and joins it, so a failed join leaves nothing
 * behind. While joined, pc_register() and pc_unregister() reach the agent
 * through the runtime's names hook (transport.h).
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "picos/chan.h"
#include "picos/log.h"
#include "picos/node.h"
#include "picos/task.h"
#include "picos/transport.h"

#include "client_int.h"

pthread_mutex_t pc__rc_mu = PTHREAD_MUTEX_INITIALIZER;
rc_shared *pc__rc;
static uint64_t gens;

const char *
pc_name_kind_str(pc_name_kind kind)
{
    switch (kind) {
    case PC_NAME_TASK:
        return "task";
    case PC_NAME_CHANNEL:
        return "channel";
    case PC_NAME_SERVICE:
        return "service";
    }
    return "?";
}

/* ---- wire forms ------------------------------------------------------------- */

pc_ref
pc__rc_ref_from_pb(const Picos__V1__Ref *p)
{
    return p ? (pc_ref){p->node, p->id} : PC_REF_NIL;
}

/* A protobuf string (NULL when unset) into a fixed buffer, cut to fit. */
static void
copy_str(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

void
pc__rc_node_from_pb(const Picos__V1__NodeInfo *p, pc_node_info *out)
{
    memset(out, 0, sizeof *out);
    if (!p)
        return;
    out->node = p->node;
    out->incarnation = p->incarnation;
    copy_str(out->name, sizeof out->name, p->name);
    copy_str(out->host, sizeof out->host, p->host);
    out->pid = p->pid;
    copy_str(out->endpoint, sizeof out->endpoint, p->endpoint);
    copy_str(out->pub_endpoint, sizeof out->pub_endpoint, p->pub_endpoint);
    out->joined = (double)p->joined_us / 1e6;
    out->up = p->up;
}

void
pc__rc_name_from_pb(const Picos__V1__NameEntry *p, pc_name_info *out)
{
    memset(out, 0, sizeof *out);
    if (!p)
        return;
    out->kind = (pc_name_kind)p->kind;
    copy_str(out->name, sizeof out->name, p->name);
    out->ref = pc__rc_ref_from_pb(p->ref);
    copy_str(out->node_name, sizeof out->node_name, p->node_name);
    copy_str(out->endpoint, sizeof out->endpoint, p->endpoint);
    out->claimed = (double)p->claimed_us / 1e6;
}

void
pc__rc_status_from_pb(const Picos__V1__RegistryStatus *p, pc_registry_info *out)
{
    memset(out, 0, sizeof *out);
    if (!p)
        return;
    out->node = p->node;
    out->incarnation = p->incarnation;
    copy_str(out->name, sizeof out->name, p->name);
    copy_str(out->endpoint, sizeof out->endpoint, p->endpoint);
    copy_str(out->data_dir, sizeof out->data_dir, p->data_dir);
    out->started = (double)p->started_us / 1e6;
    out->nodes_up = p->nodes_up;
    out->names = p->names;
    out->log_bytes = p->log_bytes;
    out->recovering = p->recovering;
}

/* ---- calls ---------------------------------------------------------------------- */

rc_call *
pc__rc_call_new(int op, double timeout, bool wait)
{
    rc_call *c = calloc(1, sizeof *c);

    if (!c)
        return NULL;
    if (wait && pc_event_new(&c->ev) != PC_OK) {
        free(c);
        return NULL;
    }
    atomic_init(&c->refs, 2);
    c->op = op;
    c->timeout = timeout;
    c->deadline = pc_deadline(timeout > 0   ? timeout
                              : timeout < 0 ? -1
                                            : RC_RTT);
    c->rc = PC_ETIMEDOUT;
    return c;
}

void
pc__rc_call_put(rc_call *c)
{
    if (c && atomic_fetch_sub(&c->refs, 1) == 1) {
        pc_event_free(&c->ev);
        free(c->nodes);
        free(c->names);
        pc_msg_free(&c->statuses);
        free(c);
    }
}

void
pc__rc_call_done(rc_call *c, pc_err rc)
{
    c->rc = rc;
    if (c->ev)
        pc_event_set(c->ev);
    pc__rc_call_put(c);
}

pc_err
pc__rc_submit(rc_call *c)
{
    rc_shared *s;
    pc_ref agent = PC_REF_NIL;
    bool ring = false;

    pthread_mutex_lock(&pc__rc_mu);
    if (!(s = pc__rc) || s->stopping) {
        pthread_mutex_unlock(&pc__rc_mu);
        pc__rc_call_put(c); /* the agent's reference */
        return PC_ESTATE;
    }
    c->next = NULL;
    *s->qtail = c;
    s->qtail = &c->next;
    if (!s->rung) {
        s->rung = ring = true;
        agent = s->agent;
    }
    pthread_mutex_unlock(&pc__rc_mu);
    if (ring)
        pc_send_data(agent, RC_MSG_WAKE, NULL, 0);
    return PC_OK;
}

/* Wait for the agent's answer to c: until its deadline and `slack` more
 * (the agent answers by the deadline itself), forever when it has none. */
static pc_err
wait_answer(rc_call *c, double slack)
{
    double left = pc_deadline_left(c->deadline);
    return pc_event_wait(c->ev, left < 0 ? -1 : left + slack);
}

/* Hand c to the agent and wait for its answer; the caller's reference
 * stays the caller's. */
static pc_err
call(rc_call *c)
{
    pc_err rc;

    if ((rc = pc__rc_submit(c)) != PC_OK)
        return rc;
    rc = wait_answer(c, 0.5);
    return rc == PC_OK ? c->rc : rc;
}

static bool
name_ok(const char *name)
{
    return name && name[0] && strnlen(name, PC_NAME_MAX + 1) <= PC_NAME_MAX;
}

static bool
kind_ok(int kind)
{
    return kind == PC_NAME_TASK || kind == PC_NAME_CHANNEL ||
           kind == PC_NAME_SERVICE;
}

/* PC_OK when joined, else PC_ESTATE. */
static pc_err
joined(void)
{
    pc_err rc;
    pthread_mutex_lock(&pc__rc_mu);
    rc = pc__rc && pc__rc->joined ? PC_OK : PC_ESTATE;
    pthread_mutex_unlock(&pc__rc_mu);
    return rc;
}

/* ---- joining ------------------------------------------------------------------- */

/* Split the comma-separated list into s->eps. */
static pc_err
parse_eps(rc_shared *s, const char *list)
{
    const char *p = list;

    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && (*p == ' ' || *p == '\t'))
            p++, len--;
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (!len || len > PC_ENDPOINT_MAX || s->neps == RC_MAX_REGS)
            return PC_EINVAL;
        if (!(s->eps[s->neps] = strndup(p, len)))
            return PC_ENOMEM;
        s->neps++;
        if (!end)
            break;
        p = end + 1;
        if (!*p)
            return PC_EINVAL; /* a trailing comma */
    }
    return s->neps ? PC_OK : PC_EINVAL;
}

static void
shared_free(rc_shared *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->neps; i++)
        free(s->eps[i]);
    pc__rc_names_clear(&s->cache);
    free(s->status_dir);
    free(s);
}

static pc_err hook_reg(void *ctx, const char *name, pc_ref ref);
static void hook_unreg(void *ctx, const char *name);

pc_err
pc_cluster_join(const pc_cluster_opts *o)
{
    static const pc_cluster_opts none;
    const char *list, *listen;
    pc_spawn_opts so = {.worker = PC_WORKER_ANY,
                        .flags = PC_TASK_DAEMON,
                        .name = "picos.registry-agent"};
    pc_names_hook h = {hook_reg, hook_unreg, NULL};
    rc_shared *s;
    rc_call *c;
    pc_ref agent;
    pc_err rc;

    if (!o)
        o = &none;
    if (!pc_node_id())
        return PC_ESTATE;
    if (joined() == PC_OK)
        return PC_ESTATE;
    if (!(s = calloc(1, sizeof *s)))
        return PC_ENOMEM;
    list = o->registries ? o->registries : getenv("PICOS_REGISTRY");
    if (!list || !*list)
        list = PC_REGISTRY_DEFAULT;
    if ((rc = parse_eps(s, list)) != PC_OK) {
        shared_free(s);
        return rc;
    }
    rc = pc_net_start(&o->net);
    if (rc != PC_OK && rc != PC_ESTATE) {
        shared_free(s);
        return rc;
    }
    listen = o->listen ? o->listen : "tcp://127.0.0.1:0";
    if (*listen && (rc = pc_node_listen(listen, NULL, 0)) != PC_OK &&
        rc != PC_ESTATE) { /* PC_ESTATE: listening already */
        shared_free(s);
        return rc;
    }
    /* who we are, for JOIN */
    pc_net_endpoints(s->endpoint, s->pub_endpoint, sizeof s->endpoint);
    if (gethostname(s->host, sizeof s->host - 1))
        strcpy(s->host, "?");
    if (o->net.name)
        snprintf(s->name, sizeof s->name, "%s", o->net.name);
    else
        snprintf(s->name, sizeof s->name, "%.200s:%d", s->host, (int)getpid());
    picos__v1__node_info__init(&s->self);
    s->self.node = pc_node_id();
    s->self.incarnation = pc_node_incarnation();
    s->self.name = s->name;
    s->self.host = s->host;
    s->self.pid = (uint32_t)getpid();
    s->self.endpoint = s->endpoint;
    s->self.pub_endpoint = s->pub_endpoint;
    /* 0 means the default; negative is forever, as for every timeout */
    s->register_timeout = o->register_timeout != 0 ? o->register_timeout : 5.0;
    s->status_interval = o->status_interval != 0 ? o->status_interval : 1.0;
    if (o->status_dir && !(s->status_dir = strdup(o->status_dir))) {
        shared_free(s);
        return PC_ENOMEM;
    }
    s->qtail = &s->q;
    s->lk_reg = -1;
    s->next_id = 1ull << 62; /* apart from the agent's ids */
    s->rung = true; /* until the agent runs: it looks at the queue first */

    pthread_mutex_lock(&pc__rc_mu);
    if (pc__rc) {
        pthread_mutex_unlock(&pc__rc_mu);
        shared_free(s);
        return PC_ESTATE;
    }
    s->gen = ++gens;
    pc__rc = s;
    pthread_mutex_unlock(&pc__rc_mu);
    if (!(c = pc__rc_call_new(
              CALL_JOIN, o->join_timeout != 0 ? o->join_timeout : 5.0, true))) {
        rc = PC_ENOMEM;
        goto undo;
    }
    /* queued before the agent exists: it takes it first thing */
    pthread_mutex_lock(&pc__rc_mu);
    *s->qtail = c;
    s->qtail = &c->next;
    pthread_mutex_unlock(&pc__rc_mu);
    if ((rc = pc_spawn(pc__rc_agent_main, s, &so, &agent)) != PC_OK) {
        pc__rc_call_put(c); /* the agent's reference */
        pc__rc_call_put(c);
        goto undo;
    }
    pthread_mutex_lock(&pc__rc_mu);
    s->agent = agent;
    pthread_mutex_unlock(&pc__rc_mu);
    rc = wait_answer(c, 1.0);
    if (rc == PC_OK)
        rc = c->rc;
    pc__rc_call_put(c);
    if (rc == PC_OK) {
        pthread_mutex_lock(&pc__rc_mu);
        s->joined = true;
        pthread_mutex_unlock(&pc__rc_mu);
        pc_names_set_hook(&h);
        return PC_OK;
    }
    /* the agent ends; its exit handler takes s down */
    pthread_mutex_lock(&pc__rc_mu);
    s->stopping = true;
    pthread_mutex_unlock(&pc__rc_mu);
    pc_send_data(agent, RC_MSG_WAKE, NULL, 0);
    pc_task_join(agent, 5.0, NULL);
    return rc;
undo:
    pthread_mutex_lock(&pc__rc_mu);
    pc__rc = NULL;
    pthread_mutex_unlock(&pc__rc_mu);
    shared_free(s);
    return rc;
}

pc_err
pc_cluster_start(const pc_cluster_opts *o)
{
    pc_err rc = pc_node_start(o ? &o->node : NULL);

    if (rc != PC_OK)
        return rc;
    if ((rc = pc_cluster_join(o)) != PC_OK) {
        pc_node_stop();
        pc_node_run();
    }
    return rc;
}

bool
pc_cluster_joined(void)
{
    return joined() == PC_OK;
}

void
pc__rc_shared_free(rc_shared *s)
{
    pc_names_set_hook(NULL);
    shared_free(s);
}

/* ---- names ------------------------------------------------------------------- */

/* A REGISTER or UNREGISTER call; wait: the caller waits for the answer. */
static pc_err
name_call(int op, pc_name_kind kind, const char *name, pc_ref ref,
          double timeout, bool wait)
{
    rc_call *c;
    pc_err rc;

    if (!kind_ok(kind) || !name_ok(name))
        return PC_EINVAL;
    if ((rc = joined()) != PC_OK)
        return rc;
    if (!(c = pc__rc_call_new(op, timeout, wait)))
        return PC_ENOMEM;
    c->kind = kind;
    snprintf(c->name, sizeof c->name, "%s", name);
    c->ref = ref;
    if (!wait) {
        rc = pc__rc_submit(c);
        pc__rc_call_put(c);
        return rc;
    }
    rc = call(c);
    if (rc == PC_EEXIST)
        PC_LOG_WARN("registry", "%s", c->text);
    pc__rc_call_put(c);
    return rc;
}

pc_err
pc_name_register(pc_name_kind kind, const char *name, pc_ref ref,
                 double timeout)
{
    if (kind == PC_NAME_CHANNEL)
        ref = (pc_ref){pc_node_id(), 0};
    else if (pc_ref_is_nil(ref) || ref.node != pc_node_id())
        return PC_EINVAL;
    return name_call(PICOS__V1__REG_OP__REGISTER, kind, name, ref, timeout,
                     true);
}

pc_err
pc_name_unregister(pc_name_kind kind, const char *name, double timeout)
{
    return name_call(PICOS__V1__REG_OP__UNREGISTER, kind, name, PC_REF_NIL,
                     timeout, true);
}

/* The caller can wait on a pc_event (a task, or a thread not a worker). */
static bool
can_wait(void)
{
    return pc_in_task() || pc_worker_index() < 0;
}

static pc_err
hook_reg(void *ctx, const char *name, pc_ref ref)
{
    double t;

    (void)ctx;
    pthread_mutex_lock(&pc__rc_mu);
    if (!pc__rc || !pc__rc->joined) {
        pthread_mutex_unlock(&pc__rc_mu);
        return PC_OK;
    }
    t = pc__rc->register_timeout;
    pthread_mutex_unlock(&pc__rc_mu);
    /* a light actor can't wait: its claim goes out, a refusal is logged */
    return name_call(PICOS__V1__REG_OP__REGISTER, PC_NAME_TASK, name, ref, t,
                     can_wait());
}

static void
hook_unreg(void *ctx, const char *name)
{
    (void)ctx;
    if (joined() == PC_OK)
        name_call(PICOS__V1__REG_OP__UNREGISTER, PC_NAME_TASK, name, PC_REF_NIL,
                  -1, false);
}

/* ---- locate -------------------------------------------------------------------- */

/* Connect to the node of `info` unless it is this one or does not listen
 * (then the ref is all there is), and mark the cache entry connected. */
static pc_err
connect_owner(const pc_name_info *info, double timeout)
{
    rc_name *e;
    pc_err rc;

    if (info->ref.node == pc_node_id() || !info->endpoint[0])
        return PC_OK;
    rc = pc_node_connect(info->endpoint, timeout, NULL);
    if (rc != PC_OK)
        return PC_EUNREACH;
    pthread_mutex_lock(&pc__rc_mu);
    if (pc__rc &&
        (e = pc__rc_names_get(&pc__rc->cache, (int)info->kind, info->name)) &&
        pc_ref_eq(e->info.ref, info->ref))
        e->connected = true;
    pthread_mutex_unlock(&pc__rc_mu);
    return PC_OK;
}

/* The id of a packed RegReply (field 1, first as protobuf-c packs it);
 * 0 when it does not start with one. */
static uint64_t
reply_id(const pc_msg *m)
{
    size_t len;
    const uint8_t *p = pc_msg_data(m, &len);
    uint64_t id = 0;

    if (!p || len < 2 || p[0] != 0x08)
        return 0;
    for (size_t i = 1, shift = 0; i < len && shift < 64; i++, shift += 7) {
        id |= (uint64_t)(p[i] & 0x7f) << shift;
        if (!(p[i] & 0x80))
            return id;
    }
    return 0;
}

typedef struct direct {
    rc_waiter *w;
    pc_ref server, agent;
    uint64_t id, epoch, inval;
} direct;

/* The reply to our LOCATE, or the agent's word that its registry is down. */
static bool
direct_match(const pc_msg *m, void *ctx)
{
    const direct *d = ctx;

    if (pc_msg_is(m, RC_MSG_REPLY))
        return pc_ref_eq(pc_msg_sender(m), d->server) && reply_id(m) == d->id;
    return pc_msg_is(m, RC_MSG_GONE) && pc_ref_eq(pc_msg_sender(m), d->agent);
}

static bool
gone_match(const pc_msg *m, void *ctx)
{
    return pc_msg_is(m, RC_MSG_GONE) &&
           pc_ref_eq(pc_msg_sender(m), ((const direct *)ctx)->agent);
}

/* Stop waiting: off the waiters' list, or, when the agent took us off
 * already, take its RC_MSG_GONE (sent, or about to be) out of the
 * mailbox so that it does not reach the task's own pc_recv(). */
static void
direct_end(direct *d, bool have_gone, const pc_mark *mark)
{
    bool gone;
    pc_msg *m = NULL;

    pthread_mutex_lock(&pc__rc_mu);
    if (!(gone = d->w->gone) && pc__rc)
        for (rc_waiter **wp = &pc__rc->waiters; *wp; wp = &(*wp)->next)
            if (*wp == d->w) {
                *wp = d->w->next;
                break;
            }
    pthread_mutex_unlock(&pc__rc_mu);
    free(d->w); /* off the list: the agent no longer sees it */
    if (gone && !have_gone &&
        pc_recv_match(gone_match, d, mark, &m, RC_RTT) == PC_OK)
        pc_msg_free(&m);
}

/* A LOCATE sent by the calling task itself to the registry the agent looks
 * names up at, its reply taken with a selective receive: no hop through
 * the agent, no event. PC_EAGAIN: no registry up, or it went down while we
 * waited (the agent's path takes over: the next registry, or
 * PC_EUNREACH). */
static pc_err
locate_direct(int kind, const char *name, double timeout, pc_name_info *out)
{
    Picos__V1__RegRequest rq = PICOS__V1__REG_REQUEST__INIT;
    Picos__V1__NameEntry e = PICOS__V1__NAME_ENTRY__INIT, *ep = &e;
    Picos__V1__RegReply *rp;
    uint8_t buf[PC_NAME_MAX + 64];
    direct d = {0};
    pc_mark mark;
    pc_msg *m = NULL;
    double wait = timeout > 0   ? timeout + RC_RTT / 2
                  : timeout < 0 ? -1
                                : RC_RTT;
    size_t len;
    int reg;
    pc_err rc;

    /* on the heap: a task terminated while it waits leaves no dangling
     * pointer in the list (the entry leaks, as what a terminated task
     * holds does; the agent never frees one) */
    if (!(d.w = calloc(1, sizeof *d.w)))
        return PC_ENOMEM;
    d.w->task = pc_self();
    /* marked first: the agent's RC_MSG_GONE may come before the send */
    mark = pc_mailbox_mark();
    pthread_mutex_lock(&pc__rc_mu);
    if (!pc__rc || pc__rc->lk_reg < 0) {
        pthread_mutex_unlock(&pc__rc_mu);
        free(d.w);
        return PC_EAGAIN;
    }
    d.w->reg = pc__rc->lk_reg;
    d.server = pc__rc->lk_server;
    d.agent = pc__rc->agent;
    d.id = pc__rc->next_id++;
    d.epoch = pc__rc->lk_epoch;
    d.inval = pc__rc->inval;
    d.w->next = pc__rc->waiters;
    pc__rc->waiters = d.w;
    pc__rc->stats.requests++;
    pthread_mutex_unlock(&pc__rc_mu);

    rq.id = d.id;
    rq.op = PICOS__V1__REG_OP__LOCATE;
    rq.timeout_ms = timeout == 0 ? 0
                    : timeout < 0 || timeout * 1000 >= (double)UINT32_MAX
                        ? UINT32_MAX
                        : (uint32_t)(timeout * 1000);
    e.kind = (Picos__V1__NameKind)kind;
    e.name = (char *)name;
    rq.n_names = 1;
    rq.names = &ep;
    len = picos__v1__reg_request__pack(&rq, buf);
    if ((rc = pc_msg_new(&m, RC_MSG_REQUEST, buf, len)) != PC_OK ||
        (rc = pc_send(d.server, &m)) != PC_OK) {
        pc_msg_free(&m);
        direct_end(&d, false, &mark);
        return PC_EAGAIN;
    }
    reg = d.w->reg;
    rc = pc_recv_match(direct_match, &d, &mark, &m, wait);
    direct_end(&d, rc == PC_OK && pc_msg_is(m, RC_MSG_GONE), &mark);
    if (rc != PC_OK)
        return PC_ETIMEDOUT;
    if (pc_msg_is(m, RC_MSG_GONE)) {
        pc_msg_free(&m);
        return PC_EAGAIN;
    }
    {
        const void *data = pc_msg_data(m, &len);
        rp = picos__v1__reg_reply__unpack(NULL, len, data);
    }
    pc_msg_free(&m);
    if (!rp)
        return PC_EPROTO;
    switch (rp->status) {
    case PICOS__V1__REG_STATUS__OK:
        rc = rp->n_names >= 1 && rp->names[0] ? PC_OK : PC_EPROTO;
        break;
    case PICOS__V1__REG_STATUS__NOT_FOUND:
        rc = PC_ENOENT;
        break;
    case PICOS__V1__REG_STATUS__TIMED_OUT:
        rc = PC_ETIMEDOUT;
        break;
    case PICOS__V1__REG_STATUS__BAD_REQUEST:
        rc = PC_EINVAL;
        break;
    default:
        rc = PC_EUNREACH;
    }
    if (rc == PC_OK) {
        rc_name *c;
        pc__rc_name_from_pb(rp->names[0], out);
        /* cached unless that registry went down or an entry was dropped
         * since we asked (its NAME_GONE may have overtaken our reply) */
        pthread_mutex_lock(&pc__rc_mu);
        if (pc__rc && pc__rc->lk_epoch == d.epoch && pc__rc->inval == d.inval &&
            (c = pc__rc_names_put(&pc__rc->cache, kind, name))) {
            c->info = *out;
            /* cached under the name asked, whatever the reply spelled */
            c->info.kind = (pc_name_kind)kind;
            snprintf(c->info.name, sizeof c->info.name, "%s", name);
            c->reg = reg;
        }
        pthread_mutex_unlock(&pc__rc_mu);
    }
    picos__v1__reg_reply__free_unpacked(rp, NULL);
    return rc;
}

static pc_err
locate(pc_name_kind kind, const char *name, double timeout, pc_name_info *out)
{
    rc_name *e;
    rc_call *c;
    bool hit = false, connected = false;
    double deadline = pc_deadline(timeout), left;
    pc_err rc = PC_EAGAIN;

    if (!kind_ok(kind) || !name_ok(name))
        return PC_EINVAL;
    pthread_mutex_lock(&pc__rc_mu);
    if (!pc__rc || !pc__rc->joined) {
        pthread_mutex_unlock(&pc__rc_mu);
        return PC_ESTATE;
    }
    pc__rc->stats.locates++;
    if ((e = pc__rc_names_get(&pc__rc->cache, kind, name))) {
        pc__rc->stats.cache_hits++;
        *out = e->info;
        hit = true;
        connected = e->connected;
    }
    pthread_mutex_unlock(&pc__rc_mu);
    if (hit)
        rc = PC_OK;
    else if (pc_in_task())
        rc = locate_direct(kind, name, timeout, out);
    if (!hit && rc == PC_EAGAIN) { /* a foreign thread, or failing over */
        left = pc_deadline_left(deadline);
        if (timeout > 0 && left <= 0)
            return PC_ETIMEDOUT;
        if (!(c = pc__rc_call_new(PICOS__V1__REG_OP__LOCATE,
                                  timeout > 0 ? left : timeout, true)))
            return PC_ENOMEM;
        c->kind = kind;
        snprintf(c->name, sizeof c->name, "%s", name);
        if (timeout > 0) /* room for the registry's own TIMED_OUT */
            c->deadline += RC_RTT / 2;
        rc = call(c);
        if (rc == PC_OK)
            *out = c->entry;
        pc__rc_call_put(c);
    }
    if (rc != PC_OK)
        return rc;
    if (connected)
        return PC_OK;
    left = pc_deadline_left(deadline);
    return connect_owner(out, left < 0 ? 5.0 : left < RC_RTT ? RC_RTT : left);
}

pc_err
pc_locate(pc_name_kind kind, const char *name, double timeout, pc_ref *out)
{
    pc_name_info info;
    pc_err rc = locate(kind, name, timeout, &info);

    if (rc == PC_OK && out)
        *out = info.ref;
    return rc;
}

/* ---- asynchronous locate ---------------------------------------------------- */

/* A PC_MSG_LOCATED's payload (node-local: never crosses a link). */
typedef struct located {
    uint64_t tag;
    int32_t rc;
    uint32_t zero;
    uint64_t node, id;
} located;

void
pc__rc_located_send(pc_ref to, uint64_t tag, pc_err rc, pc_ref ref)
{
    located l = {tag, (int32_t)rc, 0, ref.node, ref.id};
    pc_send_data(to, PC_MSG_LOCATED, &l, sizeof l);
}

pc_err
pc_locate_send(pc_name_kind kind, const char *name, double timeout,
               uint64_t tag)
{
    rc_name *e;
    rc_call *c;
    pc_ref self = pc_self(), hit = PC_REF_NIL;
    char ep[PC_ENDPOINT_MAX + 1] = "";
    pc_err rc;

    if (!kind_ok(kind) || !name_ok(name) || pc_ref_is_nil(self))
        return PC_EINVAL;
    pthread_mutex_lock(&pc__rc_mu);
    if (!pc__rc || !pc__rc->joined) {
        pthread_mutex_unlock(&pc__rc_mu);
        return PC_ESTATE;
    }
    pc__rc->stats.locates++;
    if ((e = pc__rc_names_get(&pc__rc->cache, kind, name))) {
        pc__rc->stats.cache_hits++;
        hit = e->info.ref;
        if (!e->connected && hit.node != pc_node_id())
            snprintf(ep, sizeof ep, "%s", e->info.endpoint);
    }
    pthread_mutex_unlock(&pc__rc_mu);
    if (!pc_ref_is_nil(hit)) {
        if (ep[0]) /* as for an answer: the owner's link starts now */
            pc_node_connect(ep, 0, NULL);
        pc__rc_located_send(self, tag, PC_OK, hit);
        return PC_OK;
    }
    if (!(c = pc__rc_call_new(PICOS__V1__REG_OP__LOCATE, timeout, false)))
        return PC_ENOMEM;
    c->kind = kind;
    snprintf(c->name, sizeof c->name, "%s", name);
    if (timeout > 0) /* room for the registry's own TIMED_OUT */
        c->deadline += RC_RTT / 2;
    c->async = true;
    c->reply_to = self;
    c->tag = tag;
    rc = pc__rc_submit(c);
    pc__rc_call_put(c);
    return rc;
}

pc_err
pc_located_parse(const pc_msg *m, uint64_t *tag, pc_err *rc, pc_ref *ref)
{
    located l;
    const void *data;
    size_t len;

    if (!m || !pc_msg_is(m, PC_MSG_LOCATED))
        return PC_EINVAL;
    data = pc_msg_data(m, &len);
    if (len != sizeof l || pc_msg_sender(m).node != pc_node_id())
        return PC_EINVAL; /* this node's agent or cache: never a peer */
    memcpy(&l, data, sizeof l);
    if (tag)
        *tag = l.tag;
    if (rc)
        *rc = (pc_err)l.rc;
    if (ref)
        *ref = l.rc == PC_OK ? (pc_ref){l.node, l.id} : PC_REF_NIL;
    return PC_OK;
}

pc_err
pc_chan_locate(const char *name, double timeout, struct pc_chan **out)
{
    pc_name_info info;
    char where[32];
    double deadline = pc_deadline(timeout), left;
    pc_err rc;

    if (!out)
        return PC_EINVAL;
    if ((rc = locate(PC_NAME_CHANNEL, name, timeout, &info)) != PC_OK)
        return rc;
    if (info.ref.node == pc_node_id())
        return (*out = pc_chan_find(name)) ? PC_OK : PC_ENOENT;
    snprintf(where, sizeof where, "0x%016llx",
             (unsigned long long)info.ref.node);
    left = pc_deadline_left(deadline);
    return pc_chan_locate_at(where, name,
                             left < 0        ? 5.0
                             : left < RC_RTT ? RC_RTT
                                             : left,
                             out);
}

/* ---- membership ------------------------------------------------------------------ */

static pc_err
watch_call(int op, pc_ref watcher)
{
    rc_call *c;
    pc_err rc;

    if (pc_ref_is_nil(watcher))
        return PC_EINVAL;
    if ((rc = joined()) != PC_OK)
        return rc;
    if (!(c = pc__rc_call_new(op, -1, false)))
        return PC_ENOMEM;
    c->ref = watcher;
    rc = pc__rc_submit(c);
    pc__rc_call_put(c);
    return rc;
}

pc_err
pc_cluster_watch(pc_ref watcher)
{
    return watch_call(CALL_WATCH, watcher);
}

pc_err
pc_cluster_unwatch(pc_ref watcher)
{
    return watch_call(CALL_UNWATCH, watcher);
}

pc_err
pc_node_event_parse(const pc_msg *m, pc_node_event *out)
{
    Picos__V1__RegEvent *ev;
    const void *data;
    size_t len;

    if (!m || !out || !pc_msg_is(m, PC_MSG_NODE_EVENT))
        return PC_EINVAL;
    data = pc_msg_data(m, &len);
    if (!(ev = picos__v1__reg_event__unpack(NULL, len, data)))
        return PC_EINVAL;
    if ((ev->kind != PICOS__V1__REG_EVENT_KIND__NODE_UP &&
         ev->kind != PICOS__V1__REG_EVENT_KIND__NODE_DOWN) ||
        !ev->node) {
        picos__v1__reg_event__free_unpacked(ev, NULL);
        return PC_EINVAL;
    }
    memset(out, 0, sizeof *out);
    out->up = ev->kind == PICOS__V1__REG_EVENT_KIND__NODE_UP;
    pc__rc_node_from_pb(ev->node, &out->node);
    out->node.up = out->up;
    snprintf(out->reason, sizeof out->reason, "%s",
             ev->reason ? ev->reason : "");
    picos__v1__reg_event__free_unpacked(ev, NULL);
    return PC_OK;
}

/* ---- lists and status ----------------------------------------------------------- */

static pc_err
list_call(int op, int kind, const char *endpoint, double timeout, rc_call **out)
{
    rc_call *c;
    pc_err rc;

    *out = NULL;
    if ((rc = joined()) != PC_OK)
        return rc;
    if (!(c = pc__rc_call_new(op, timeout, true)))
        return PC_ENOMEM;
    if (kind >= 0) {
        c->has_kind = true;
        c->kind = kind;
    }
    if (endpoint)
        snprintf(c->endpoint, sizeof c->endpoint, "%s", endpoint);
    rc = call(c);
    *out = c;
    return rc;
}

pc_err
pc_cluster_nodes(pc_node_info **out, size_t *n, double timeout)
{
    rc_call *c;
    pc_err rc;

    if (!out || !n)
        return PC_EINVAL;
    rc = list_call(PICOS__V1__REG_OP__LIST_NODES, -1, NULL, timeout, &c);
    if (rc == PC_OK) {
        *out = c->nodes;
        *n = c->n;
        c->nodes = NULL;
    }
    pc__rc_call_put(c);
    return rc;
}

pc_err
pc_cluster_names(int kind, pc_name_info **out, size_t *n, double timeout)
{
    rc_call *c;
    pc_err rc;

    if (!out || !n || (kind >= 0 && !kind_ok(kind)))
        return PC_EINVAL;
    rc = list_call(PICOS__V1__REG_OP__LIST_NAMES, kind < 0 ? -1 : kind, NULL,
                   timeout, &c);
    if (rc == PC_OK) {
        *out = c->names;
        *n = c->n;
        c->names = NULL;
    }
    pc__rc_call_put(c);
    return rc;
}

pc_err
pc_registry_status(const char *endpoint, pc_registry_info *out, double timeout)
{
    rc_call *c;
    pc_err rc;

    if (!out || (endpoint && strlen(endpoint) > PC_ENDPOINT_MAX))
        return PC_EINVAL;
    rc = list_call(PICOS__V1__REG_OP__STATUS, -1, endpoint, timeout, &c);
    if (rc == PC_OK)
        *out = c->status;
    pc__rc_call_put(c);
    return rc;
}

pc_err
pc_cluster_stats_get(pc_cluster_stats *out)
{
    if (!out)
        return PC_EINVAL;
    pthread_mutex_lock(&pc__rc_mu);
    if (!pc__rc || !pc__rc->joined) {
        pthread_mutex_unlock(&pc__rc_mu);
        return PC_ESTATE;
    }
    *out = pc__rc->stats;
    pthread_mutex_unlock(&pc__rc_mu);
    return PC_OK;
}

pc_err
pc_cluster_nodes_status(double timeout, pc_msg **out)
{
    rc_call *c;
    pc_err rc;

    if (!out)
        return PC_EINVAL;
    rc = list_call(PICOS__V1__REG_OP__NODES_STATUS, -1, NULL, timeout, &c);
    if (rc == PC_OK) {
        *out = c->statuses;
        c->statuses = NULL;
    }
    pc__rc_call_put(c);
    return rc;
}
