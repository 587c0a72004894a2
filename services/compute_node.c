/* services/compute_node.c — the compute task of a node (picos-node
 * --compute): reservations and CPU accounting (docs/computations.md,
 * "Running compute nodes"; the wire is proto/compute.proto).
 *
 * One task, registered cluster-wide (PC_NAME_TASK) as "picos.compute/" +
 * the node's name, owns the node's CPUs: no lock. A ComputeReserve is
 * checked (the library and at most CP_FILES_MAX data files by plain,
 * distinct names with 32-byte hashes, CP_UPLOAD_MAX in all; the memory
 * asked no more than the node's maximum) and granted min(asked, free)
 * CPUs — 0 asks for all that are free —, or refused (NO_CPUS when none is
 * free, SUSPENDED, CLOSING, BAD_REQUEST, NO_MEMORY) with one line. A grant
 * spawns the computation's session task (compute_session.c), which takes
 * everything else from the client, and answers ComputeReserved naming it.
 * The compute task monitors its sessions: a session's DOWN, however it
 * ended, gives its CPUs and its uid slot back. Each session runs as a uid
 * of its own when the node is root (uid_base + its slot; slots are below
 * the CPU count, as every session holds at least one CPU).
 *
 * Suspension (pc_compute_node_suspend(), the dashboard's action, or a
 * ComputeControl SUSPEND/RESUME sent to this task) refuses new
 * reservations and is passed to every session, whose running jobs finish
 * and whose queued ones wait. pc_compute_serve_stop() unregisters the
 * name, refuses new reservations, gives every session the grace to close,
 * and ends the task once the last one has gone.
 *
 * The counters of pc_compute_node_stats_get() (pc__compute_stats) are
 * written here (CPUs, reservations, sessions) and by the sessions
 * (workers, jobs); .suspend is set before .enabled.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "picos/log.h"
#include "picos/monitor.h"
#include "picos/node.h"
#include "picos/registry.h"
#include "picos/task.h"

#include "compute_node_int.h"

#define DEFAULT_MEMORY (1ull << 30)
#define DEFAULT_MEMORY_MAX (4ull << 30)
#define DEFAULT_UID_BASE 200000u

struct pc_compute_server {
    pc_ref task;
    char name[PC_NAME_MAX + 1]; /* the registered name */
};

typedef struct cn_sess {
    pc_ref ref, client;
    uint64_t client_id;
    int cpus, slot;
    struct cn_sess *next;
} cn_sess;

typedef struct cn_state {
    char node[PC_NAME_MAX + 1];
    char root[4096], worker[4096];
    int cpus, free;
    uint64_t memory, memory_max;
    double cpu_seconds;
    unsigned uid_base;
    bool confine, seccomp;
    bool suspended, closing;
    double grace;
    uint64_t next_id;
    cn_sess *sessions;
    int nsessions;
    bool *slots; /* cpus of them */
} cn_state;

static pc_ref serve_task; /* for pc_compute_node_suspend() */

bool
pc__cn_local(const pc_msg *m)
{
    pc_ref from = pc_msg_sender(m);
    return from.node == 0 || from.node == pc_node_id();
}

bool
pc__cn_value(const pc_msg *m, void *out, size_t size)
{
    size_t len = 0;
    const void *d = pc_msg_data(m, &len);

    if (len != size)
        return false;
    memcpy(out, d, size);
    return true;
}

static void
set_u(atomic_uint *c, int v)
{
    atomic_store(c, v < 0 ? 0u : (unsigned)v);
}

static void
refuse(pc_ref to, uint64_t client, Picos__V1__ComputeRefusal code,
       const char *text)
{
    Picos__V1__ComputeRefused r = PICOS__V1__COMPUTE_REFUSED__INIT;

    r.client = client;
    r.code = code;
    r.text = (char *)text;
    (void)pc__cp_send(to, CP_T_REFUSED, &r.base);
}

/* A declared file: false with the reason in t. */
static bool
file_ok(const Picos__V1__ComputeFileInfo *f, bool lib, char *t, size_t size)
{
    if (!f) {
        snprintf(t, size, "no library");
        return false;
    }
    if (!lib && !pc__cst_plain_name(f->name)) {
        snprintf(t, size,
                 "file name '%.64s' is not a plain name (no '/', not . "
                 "or ..)",
                 f->name);
        return false;
    }
    if (f->sha256.len != 32) {
        snprintf(t, size, "%s%.64s: SHA-256 of %zu bytes, not 32",
                 lib ? "library" : "file ", lib ? "" : f->name, f->sha256.len);
        return false;
    }
    if (lib && f->size == 0) {
        snprintf(t, size, "library of 0 bytes");
        return false;
    }
    return true;
}

static void
on_reserve(cn_state *st, const pc_msg *m)
{
    Picos__V1__ComputeReserve *rq =
        pc__cp_unpack(&picos__v1__compute_reserve__descriptor, m);
    Picos__V1__ComputeReserved ok = PICOS__V1__COMPUTE_RESERVED__INIT;
    Picos__V1__Ref sref = PICOS__V1__REF__INIT;
    pc_ref from = pc_msg_sender(m), sess;
    pc__cs_params *p = NULL;
    uint64_t total, memory;
    char t[320];
    int grant, slot = -1;
    cn_sess *s;
    pc_err rc;

    if (!rq) {
        refuse(from, 0, PICOS__V1__COMPUTE_REFUSAL__COMPUTE_BAD_REQUEST,
               "ComputeReserve does not parse");
        return;
    }
    if (pc_ref_is_nil(from) || from.id == 0) {
        PC_LOG_WARN("compute", "a reservation from no task, dropped");
        goto out;
    }
    if (st->closing) {
        refuse(from, rq->client, PICOS__V1__COMPUTE_REFUSAL__COMPUTE_CLOSING,
               "the node is stopping");
        goto out;
    }
    if (st->suspended) {
        refuse(from, rq->client, PICOS__V1__COMPUTE_REFUSAL__COMPUTE_SUSPENDED,
               "the node is suspended");
        goto out;
    }
    if (!file_ok(rq->library, true, t, sizeof t))
        goto bad;
    if (rq->n_files > CP_FILES_MAX) {
        snprintf(t, sizeof t, "%zu data files, the most is %d", rq->n_files,
                 CP_FILES_MAX);
        goto bad;
    }
    total = rq->library->size > CP_UPLOAD_MAX ? CP_UPLOAD_MAX + 1
                                              : rq->library->size;
    for (size_t i = 0; i < rq->n_files; i++) {
        if (!file_ok(rq->files[i], false, t, sizeof t))
            goto bad;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(rq->files[i]->name, rq->files[j]->name)) {
                snprintf(t, sizeof t, "data file '%.64s' given twice",
                         rq->files[i]->name);
                goto bad;
            }
        if (total > CP_UPLOAD_MAX ||
            rq->files[i]->size > CP_UPLOAD_MAX - total) {
            total = CP_UPLOAD_MAX + 1; /* no sum that wraps */
            break;
        }
        total += rq->files[i]->size;
    }
    if (total > CP_UPLOAD_MAX) {
        snprintf(t, sizeof t, "library and files over %llu MiB",
                 CP_UPLOAD_MAX >> 20);
        goto bad;
    }
    memory = rq->memory ? rq->memory : st->memory;
    if (memory > st->memory_max) {
        snprintf(t, sizeof t,
                 "memory %" PRIu64 " MiB asked, this node gives at most "
                 "%" PRIu64 " MiB",
                 memory >> 20, st->memory_max >> 20);
        refuse(from, rq->client, PICOS__V1__COMPUTE_REFUSAL__COMPUTE_NO_MEMORY,
               t);
        goto out;
    }
    for (s = st->sessions; s; s = s->next)
        if (s->client_id == rq->client && pc_ref_eq(s->client, from)) {
            snprintf(t, sizeof t, "this client has a session here already");
            goto bad;
        }
    if (st->free == 0) {
        snprintf(t, sizeof t, "all %d CPUs are reserved (%d computation%s)",
                 st->cpus, st->nsessions, st->nsessions == 1 ? "" : "s");
        refuse(from, rq->client, PICOS__V1__COMPUTE_REFUSAL__COMPUTE_NO_CPUS,
               t);
        goto out;
    }
    grant = rq->cpus == 0 || rq->cpus > (uint32_t)st->free ? st->free
                                                           : (int)rq->cpus;
    for (int i = 0; i < st->cpus && slot < 0; i++)
        if (!st->slots[i])
            slot = i;
    if (slot < 0 || !(p = calloc(1, sizeof *p)) ||
        !(s = calloc(1, sizeof *s)) ||
        (rq->n_files && !(p->files = calloc(rq->n_files, sizeof *p->files)))) {
        if (p)
            free(p->files);
        free(p);
        snprintf(t, sizeof t, "the node is out of memory");
        goto bad;
    }
    p->server = pc_self();
    p->client = from;
    p->client_id = rq->client;
    snprintf(p->label, sizeof p->label, "%s", rq->name);
    snprintf(p->node, sizeof p->node, "%s", st->node);
    p->id = ++st->next_id;
    p->slot = slot;
    p->cpus = grant;
    p->memory = memory;
    p->cpu_seconds = st->cpu_seconds;
    p->confine = st->confine;
    p->seccomp = st->seccomp;
    p->suspended = st->suspended;
    p->uid = st->confine ? (uid_t)(st->uid_base + (unsigned)slot) : getuid();
    p->gid = st->confine ? (gid_t)(st->uid_base + (unsigned)slot) : getgid();
    snprintf(p->root, sizeof p->root, "%s", st->root);
    snprintf(p->worker, sizeof p->worker, "%s", st->worker);
    p->lib.size = rq->library->size;
    memcpy(p->lib.sha, rq->library->sha256.data, 32);
    p->nfiles = rq->n_files;
    for (size_t i = 0; i < rq->n_files; i++) {
        snprintf(p->files[i].name, sizeof p->files[i].name, "%s",
                 rq->files[i]->name);
        p->files[i].size = rq->files[i]->size;
        memcpy(p->files[i].sha, rq->files[i]->sha256.data, 32);
    }
    if ((rc = pc__cs_start(p, &sess)) != PC_OK) {
        free(s);
        snprintf(t, sizeof t, "can't start a session: %s", pc_strerror(rc));
        goto bad;
    }
    pc_monitor(pc_self(), sess);
    s->ref = sess;
    s->client = from;
    s->client_id = rq->client;
    s->cpus = grant;
    s->slot = slot;
    s->next = st->sessions;
    st->sessions = s;
    st->nsessions++;
    st->slots[slot] = true;
    st->free -= grant;
    set_u(&pc__compute_stats.cpus_reserved, st->cpus - st->free);
    set_u(&pc__compute_stats.sessions, st->nsessions);
    PC_LOG_INFO("compute",
                "session s-%" PRIu64 " for %s: %d CPU%s, %" PRIu64 " MiB each",
                st->next_id, rq->name[0] ? rq->name : "a client", grant,
                grant == 1 ? "" : "s", memory >> 20);
    ok.client = rq->client;
    sref.node = sess.node;
    sref.id = sess.id;
    ok.session = &sref;
    ok.cpus = (uint32_t)grant;
    ok.memory = memory;
    ok.node = st->node;
    ok.max_chunk = CP_CHUNK_MAX;
    (void)pc__cp_send(from, CP_T_RESERVED, &ok.base);
    goto out;
bad:
    refuse(from, rq->client, PICOS__V1__COMPUTE_REFUSAL__COMPUTE_BAD_REQUEST,
           t);
out:
    pc__cp_free(rq);
}

static void
on_down(cn_state *st, const pc_msg *m)
{
    pc_down d;
    cn_sess **pp, *s;

    if (pc_down_parse(m, &d) != PC_OK)
        return;
    for (pp = &st->sessions; (s = *pp); pp = &s->next)
        if (pc_ref_eq(s->ref, d.who))
            break;
    if (!s)
        return;
    *pp = s->next;
    st->nsessions--;
    st->free += s->cpus;
    st->slots[s->slot] = false;
    set_u(&pc__compute_stats.cpus_reserved, st->cpus - st->free);
    set_u(&pc__compute_stats.sessions, st->nsessions);
    if (d.reason != PC_DOWN_NORMAL)
        PC_LOG_WARN("compute", "a session ended abnormally (%s)",
                    d.reason == PC_DOWN_ERROR ? d.error : "killed");
    free(s);
}

static void
set_suspended(cn_state *st, bool on)
{
    if (st->suspended == on)
        return;
    st->suspended = on;
    atomic_store(&pc__compute_stats.suspended, on);
    for (cn_sess *s = st->sessions; s; s = s->next)
        (void)pc_send_data(s->ref, CN_T_SUSPEND, &on, sizeof on);
    PC_LOG_INFO("compute", "%s", on ? "suspended" : "resumed");
}

/* ComputeControl to the compute task: the operator's suspend / resume. */
static void
on_control(cn_state *st, const pc_msg *m)
{
    Picos__V1__ComputeControl *c =
        pc__cp_unpack(&picos__v1__compute_control__descriptor, m);

    if (!c)
        return;
    if (c->op == PICOS__V1__COMPUTE_OP__COMPUTE_SUSPEND)
        set_suspended(st, true);
    else if (c->op == PICOS__V1__COMPUTE_OP__COMPUTE_RESUME)
        set_suspended(st, false);
    pc__cp_free(c);
}

static void
on_stop(cn_state *st, const pc_msg *m)
{
    (void)pc__cn_value(m, &st->grace, sizeof st->grace);
    st->closing = true;
    for (cn_sess *s = st->sessions; s; s = s->next)
        (void)pc_send_data(s->ref, CN_T_STOP, &st->grace, sizeof st->grace);
}

static void
state_free(void *arg)
{
    cn_state *st = arg;

    while (st->sessions) {
        cn_sess *s = st->sessions;
        st->sessions = s->next;
        free(s);
    }
    free(st->slots);
    free(st);
}

static pc_msg *
compute_task(void *arg)
{
    cn_state *st = arg;

    pc_at_exit(state_free, st);
    for (;;) {
        pc_msg *m = NULL;

        if (st->closing && !st->sessions)
            break;
        if (pc_recv(&m, -1) != PC_OK)
            continue;
        if (pc_msg_is(m, CP_T_RESERVE))
            on_reserve(st, m);
        else if (pc_msg_is(m, CP_T_CONTROL))
            on_control(st, m);
        else if (!pc__cn_local(m))
            ; /* the rest is this node's own */
        else if (pc_msg_is(m, PC_MSG_DOWN))
            on_down(st, m);
        else if (pc_msg_is(m, CN_T_SUSPEND)) {
            bool on = false;
            if (pc__cn_value(m, &on, sizeof on))
                set_suspended(st, on);
        } else if (pc_msg_is(m, CN_T_STOP))
            on_stop(st, m);
        pc_msg_free(&m);
    }
    return NULL;
}

static pc_err
suspend_fn(bool on)
{
    return pc_send_data(serve_task, CN_T_SUSPEND, &on, sizeof on) == PC_OK
               ? PC_OK
               : PC_ENOENT;
}

/* mkdir -p of dir's parents (0755) and dir itself with `mode`. */
static int
mkdirs(const char *dir, mode_t mode)
{
    char p[4096];
    size_t n = strlen(dir);

    if (n == 0 || n >= sizeof p)
        return ENAMETOOLONG;
    memcpy(p, dir, n + 1);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            return errno;
        *s = '/';
    }
    if (mkdir(p, mode) != 0 && errno != EEXIST)
        return errno;
    return 0;
}

pc_err
pc_compute_serve(const pc_compute_serve_opts *o, char *what, size_t what_size,
                 pc_compute_server **out)
{
    pc_spawn_opts so = {.worker = PC_WORKER_ANY,
                        .flags = PC_TASK_DAEMON | PC_TASK_JOINABLE,
                        .name = "picos.compute"};
    char path[4200], dummy[8];
    pc_compute_server *s;
    cn_state *st;
    long ncpu;
    int err;
    pc_err rc;

    if (out)
        *out = NULL;
    if (!what) {
        what = dummy;
        what_size = sizeof dummy;
    }
    what[0] = '\0';
    if (!o || !out || !o->data_dir || !o->data_dir[0] || !o->worker ||
        !o->name || !o->name[0] ||
        strlen(o->name) + sizeof PC_COMPUTE_NAME_PREFIX > PC_NAME_MAX + 1 ||
        strlen(o->data_dir) > 3000 || strlen(o->worker) >= 4096 || o->cpus < 0)
        return PC_EINVAL;
    if (access(o->worker, X_OK) != 0) {
        snprintf(what, what_size, "%s: not an executable: %s", o->worker,
                 strerror(errno));
        return PC_EINVAL;
    }
    if (!pc_cluster_joined())
        return PC_ESTATE;
    if (atomic_load(&pc__compute_stats.enabled))
        return PC_EEXIST;
    if (!(s = calloc(1, sizeof *s)) || !(st = calloc(1, sizeof *st))) {
        free(s);
        return PC_ENOMEM;
    }
    ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    st->cpus = o->cpus > 0 ? o->cpus : ncpu > 0 ? (int)ncpu : 1;
    st->free = st->cpus;
    st->memory = o->memory ? o->memory : DEFAULT_MEMORY;
    st->memory_max = o->memory_max ? o->memory_max : DEFAULT_MEMORY_MAX;
    if (st->memory > st->memory_max)
        st->memory_max = st->memory;
    st->cpu_seconds = o->cpu_seconds > 0 ? o->cpu_seconds : 0;
    st->uid_base = o->uid_base ? o->uid_base : DEFAULT_UID_BASE;
    st->confine = geteuid() == 0;
    st->seccomp = !o->no_seccomp;
    snprintf(st->node, sizeof st->node, "%s", o->name);
    snprintf(st->worker, sizeof st->worker, "%s", o->worker);
    snprintf(st->root, sizeof st->root, "%s/compute", o->data_dir);
    if (!(st->slots = calloc((size_t)st->cpus, sizeof *st->slots))) {
        free(st);
        free(s);
        return PC_ENOMEM;
    }
    snprintf(path, sizeof path, "%s/lib", st->root);
    if ((err = mkdirs(o->data_dir, 0755)) ||
        (err = pc__cst_mkdir(st->root, 0700)) ||
        (err = pc__cst_mkdir(path, 0700))) {
        snprintf(what, what_size, "data dir %s: %s", o->data_dir,
                 strerror(err));
        free(st->slots);
        free(st);
        free(s);
        return PC_ESYS;
    }
    pc__cst_rm_sessions(st->root);
    snprintf(s->name, sizeof s->name, PC_COMPUTE_NAME_PREFIX "%s", o->name);
    atomic_store(&pc__compute_stats.cpus, (unsigned)st->cpus);
    atomic_store(&pc__compute_stats.cpus_reserved, 0u);
    atomic_store(&pc__compute_stats.sessions, 0u);
    atomic_store(&pc__compute_stats.suspended, false);
    if (st->confine)
        snprintf(path, sizeof path, "chroot, uid %u+", st->uid_base);
    else
        snprintf(path, sizeof path, "not root: no chroot, no uid of its own");
    snprintf(what, what_size, "%d CPU%s, data dir %s, sandbox: %s, %s",
             st->cpus, st->cpus == 1 ? "" : "s", o->data_dir, path,
             st->seccomp ? "seccomp" : "no seccomp");
    if ((rc = pc_spawn(compute_task, st, &so, &s->task)) != PC_OK) {
        free(st->slots);
        free(st);
        free(s);
        return rc;
    }
    serve_task = s->task;
    if ((rc = pc_name_register(PC_NAME_TASK, s->name, s->task, 10.0)) !=
        PC_OK) {
        double g = 0;
        (void)pc_send_data(s->task, CN_T_STOP, &g, sizeof g);
        (void)pc_task_join(s->task, 5.0, NULL);
        serve_task = (pc_ref){0};
        if (rc == PC_EEXIST)
            snprintf(what, what_size,
                     "%s is taken: another compute node of "
                     "that name is in the cluster",
                     s->name);
        free(s);
        return rc;
    }
    pc__compute_stats.suspend = suspend_fn;
    atomic_store(&pc__compute_stats.enabled, true);
    *out = s;
    return PC_OK;
}

pc_err
pc_compute_serve_stop(pc_compute_server **sp, double grace)
{
    pc_compute_server *s = sp ? *sp : NULL;
    pc_err rc = PC_OK;

    if (!s)
        return PC_OK;
    *sp = NULL;
    (void)pc_name_unregister(PC_NAME_TASK, s->name, 2.0);
    if (pc_send_data(s->task, CN_T_STOP, &grace, sizeof grace) == PC_OK &&
        pc_task_join(s->task, grace < 0 ? -1 : grace + 5.0, NULL) ==
            PC_ETIMEDOUT) {
        PC_LOG_WARN("compute", "computations did not end within %.3g s",
                    grace + 5.0);
        rc = PC_ETIMEDOUT;
    }
    atomic_store(&pc__compute_stats.enabled, false);
    serve_task = (pc_ref){0};
    free(s);
    return rc;
}
