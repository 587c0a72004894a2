/* apps/node/host.c — picos-node's service libraries: loading, the control
 * task, reload through the hot-swap path, shutdown.
 *
 * Copies. A library is never dlopen()ed from the path it was given but
 * from a private copy of the file (a directory of our own under $TMPDIR,
 * one file per load). Two reasons: dlopen() of a path already loaded
 * returns the same handle (glibc also matches the file's device and
 * inode), so a reload needs a new file to get new code; and a file
 * overwritten in place while it is mapped changes the code of the running
 * copy under its feet (a crash) — with copies the user may replace the
 * library by cp or by rename, whenever. dlmopen() would give a new copy
 * without a file, but in a new link namespace, where the library could not
 * resolve picos's symbols from this executable. A copy's file stays while
 * the copy is loaded (debuggers and sanitizers symbolise from it) and is
 * removed with it; the directory goes at exit.
 *
 * Services. Each library's picos_service_init() runs in the control task
 * (a task of its own, registered cluster-wide as "picos-node/NAME") and
 * adds pc_rps_opts through pc_service_add(); the control task registers
 * them. The control task owns every library and service — no locks —
 * and takes, in its mailbox: SIGHUP's reload (from main), `picos reload`'s
 * NodeReload (proto/node.proto, answered with NodeReloaded), the release
 * of a copy nothing runs any more, and the stop.
 *
 * Reload. The library's file is copied and loaded again as a NEW copy and
 * its init run; each service it adds that runs now is swapped with
 * pc_rps_update() — new calls run the new copy, calls in flight finish on
 * the old — a new one is registered, and one it no longer adds is closed
 * (with the grace). A copy counts its users: one for being its library's
 * current copy, one per service whose new calls run it. pc_rps_update()'s
 * release callback (once the last call accepted before the update ended)
 * and a closed service drop theirs; the last one sends the copy to the
 * control task, which dlclose()s it. A library that fails to load or init
 * on reload changes nothing: the old copy keeps serving. Nothing is
 * dlclose()d at shutdown: the process ends anyway, and a library's own
 * tasks may still be running its code until then.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "picos/picos.h"
#include "picos/registry.h"
#include "picos/rps.h"
#include "picos/service.h"

#include "node.h"
#include "node.pb-c.h"

#define T_RELOAD "picos.v1.NodeReload"
#define T_RELOADED "picos.v1.NodeReloaded"
#define T_HUP "picos-node.hup"
#define T_STOP "picos-node.stop"
#define T_RELEASE "picos-node.release"
#define CONTROL_PREFIX "picos-node/"
/* init runs on the control task's stack */
#define CONTROL_STACK (512u * 1024u)

typedef struct lib lib;

/* One dlopen()ed copy of a library's file. */
typedef struct copy {
    void *dl;
    pc_service_init_fn init;
    char file[PATH_MAX]; /* the private copy */
    atomic_int refs;     /* users: see the top of the file */
    lib *lib;
    struct copy *next; /* every copy loaded (copies_mu) */
} copy;

/* A service registered by this node. */
typedef struct svc {
    char name[PC_NAME_MAX + 1];
    uint32_t version;
    pc_rps *s;
    copy *code; /* the copy its new calls run */
    bool keep;  /* reload: the new copy added it too */
    struct svc *next;
} svc;

struct lib {
    char *path;     /* as given */
    char base[256]; /* the file name without lib and .so: its config section */
    copy *cur;
    svc *svcs;
    lib *next;
};

struct pc_service_ctx {
    lib *l;
    const nd_kv *conf;
    pc_rps_opts *v; /* what init added, names strdup()ed */
    size_t n, cap;
    bool open; /* only while init runs */
};

/* What a reload did (the reply and the lines). */
typedef struct change {
    const lib *l;
    char service[PC_NAME_MAX + 1];
    Picos__V1__NodeChangeKind kind;
    uint32_t old_version, version;
} change;

typedef struct report {
    change *v;
    size_t n, cap;
    Picos__V1__NodeReloadStatus status;
    char error[2048]; /* lines joined with "; " */
} report;

static nd_host_opts H;
static char dir[PATH_MAX];
static lib *libs;
static unsigned seq;
static const nd_kv *conf_now; /* what inits see (reloads read it again) */

static pthread_mutex_t copies_mu = PTHREAD_MUTEX_INITIALIZER;
static copy *copies;

static pc_ref control; /* nil until nd_start() */

/* Tasks closing services (a close waits up to the grace): joined when
 * they have ended, before a service of the same name is registered again,
 * and at the stop. */
typedef struct closing {
    pc_ref task;
    char name[PC_NAME_MAX + 1];
} closing;
static closing *closers;
static size_t nclosers;

/* main waits for the control task's startup */
static pthread_mutex_t st_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t st_cv = PTHREAD_COND_INITIALIZER;
static int st_code = -1;
static char st_err[2048];

/* ---- small helpers ---------------------------------------------------------- */

static const char *
version_str(uint32_t v, char *buf, size_t size)
{
    if (v)
        snprintf(buf, size, "v%" PRIu32, v);
    else
        snprintf(buf, size, "unversioned");
    return buf;
}

static const char *
file_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* "libfoo.so.1" -> "foo" */
static void
base_name(const char *path, char *out, size_t size)
{
    const char *f = file_name(path), *so;
    size_t n;

    if (!strncmp(f, "lib", 3) && f[3])
        f += 3;
    so = strstr(f, ".so");
    n = so && so != f ? (size_t)(so - f) : strlen(f);
    snprintf(out, size, "%.*s", (int)n, f);
}

/* Append one line to rep->error (joined with "; ") and print it. */
static void __attribute__((format(printf, 3, 4)))
rep_fail(report *rep, Picos__V1__NodeReloadStatus status, const char *fmt, ...)
{
    char line[1024];
    size_t n = strlen(rep->error);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (rep->status == PICOS__V1__NODE_RELOAD_STATUS__NODE_RELOAD_OK)
        rep->status = status;
    snprintf(rep->error + n, sizeof rep->error - n, "%s%s", n ? "; " : "",
             line);
    fprintf(stderr, ND_PROG ": reload: %s\n", line);
}

static void
rep_change(report *rep, const lib *l, const char *service,
           Picos__V1__NodeChangeKind kind, uint32_t old_version,
           uint32_t version)
{
    change *c;

    if (rep->n == rep->cap) {
        size_t cap = rep->cap ? 2 * rep->cap : 8;
        change *v = realloc(rep->v, cap * sizeof *v);
        if (!v)
            return; /* the reply lists fewer; the reload happened */
        rep->v = v;
        rep->cap = cap;
    }
    c = &rep->v[rep->n++];
    c->l = l;
    snprintf(c->service, sizeof c->service, "%s", service);
    c->kind = kind;
    c->old_version = old_version;
    c->version = version;
}

/* ---- copies ------------------------------------------------------------------- */

/* Copy src to dst (created, mode 0700). false with the reason in err. */
static bool
copy_file(const char *src, const char *dst, char *err, size_t size)
{
    char buf[65536];
    struct stat st;
    int in = open(src, O_RDONLY | O_CLOEXEC), out = -1;
    ssize_t r = 0;

    if (in < 0) {
        snprintf(err, size, "can't read it: %s", strerror(errno));
        return false;
    }
    if (fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, size, "not a regular file");
        close(in);
        return false;
    }
    if ((out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700)) < 0) {
        snprintf(err, size, "can't copy it to %s: %s", dst, strerror(errno));
        close(in);
        return false;
    }
    while ((r = read(in, buf, sizeof buf)) > 0)
        for (ssize_t off = 0; off < r;) {
            ssize_t w = write(out, buf + off, (size_t)(r - off));
            if (w < 0) {
                r = -1;
                goto done;
            }
            off += w;
        }
done:
    if (r < 0 || close(out) != 0) {
        snprintf(err, size, "can't copy it to %s: %s", dst, strerror(errno));
        close(in);
        unlink(dst);
        return false;
    }
    close(in);
    return true;
}

static void
copy_free(copy *c)
{
    copy **pp;

    pthread_mutex_lock(&copies_mu);
    for (pp = &copies; *pp && *pp != c; pp = &(*pp)->next)
        ;
    if (*pp)
        *pp = c->next;
    pthread_mutex_unlock(&copies_mu);
    if (c->dl)
        dlclose(c->dl);
    unlink(c->file);
    free(c);
}

/* Load a new copy of l's file and check its symbols. false with the
 * reason (without the path) in err. */
static bool
load(lib *l, copy **out, char *err, size_t size)
{
    copy *c = calloc(1, sizeof *c);
    const uint32_t *abi;
    void *init;
    const char *e;

    *out = NULL;
    if (!c) {
        snprintf(err, size, "out of memory");
        return false;
    }
    c->lib = l;
    if (snprintf(c->file, sizeof c->file, "%s/%u-%s", dir, ++seq,
                 file_name(l->path)) >= (int)sizeof c->file) {
        snprintf(err, size, "file name too long");
        free(c);
        return false;
    }
    if (!copy_file(l->path, c->file, err, size)) {
        free(c);
        return false;
    }
    pthread_mutex_lock(&copies_mu);
    c->next = copies;
    copies = c;
    pthread_mutex_unlock(&copies_mu);
    dlerror();
    if (!(c->dl = dlopen(c->file, RTLD_NOW | RTLD_LOCAL))) {
        /* dlerror() names the copy: drop it, the user knows the path */
        size_t n = strlen(c->file);
        e = dlerror();
        e = e ? e : "dlopen failed";
        if (!strncmp(e, c->file, n) && !strncmp(e + n, ": ", 2))
            e += n + 2;
        snprintf(err, size, "can't load it: %s%s", e,
                 strstr(e, "undefined symbol")
                     ? " (built against another picos?)"
                 : strstr(e, "ELF") || strstr(e, "file too short")
                     ? " (not a shared library)"
                     : "");
        goto fail;
    }
    if (!(abi = dlsym(c->dl, "picos_service_abi"))) {
        snprintf(err, size,
                 "no picos_service_abi symbol: not a picos service library "
                 "(PC_SERVICE_EXPORT(init) in picos/service.h defines it)");
        goto fail;
    }
    if (*abi != PC_SERVICE_ABI) {
        snprintf(err, size,
                 "service ABI %" PRIu32 ", this picos-node takes %u: rebuild "
                 "it against this picos",
                 *abi, PC_SERVICE_ABI);
        goto fail;
    }
    if (!(init = dlsym(c->dl, "picos_service_init"))) {
        snprintf(err, size,
                 "no picos_service_init symbol (PC_SERVICE_EXPORT(init) in "
                 "picos/service.h defines it)");
        goto fail;
    }
    memcpy(&c->init, &init, sizeof init); /* ISO C: no object-to-fn cast */
    *out = c;
    return true;
fail:
    copy_free(c);
    return false;
}

/* Drop one user of c; the last sends it to the control task to unload.
 * Any task (pc_rps_update()'s release runs on the acceptor's). */
static void
copy_unref(copy *c)
{
    if (atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    /* fails once the control task ended: the node is stopping, and the
     * copy stays mapped until the process ends */
    (void)pc_send_data(control, T_RELEASE, &c, sizeof c);
}

static void
released(void *arg)
{
    copy_unref(arg);
}

/* ---- the library's side: pc_service_add / pc_service_config ---------------- */

static bool
name_taken(const char *name, const lib *except)
{
    for (const lib *l = libs; l; l = l->next)
        if (l != except)
            for (const svc *s = l->svcs; s; s = s->next)
                if (!strcmp(s->name, name))
                    return true;
    return false;
}

pc_err
pc_service_add(pc_service_ctx *ctx, const pc_rps_opts *o)
{
    pc_rps_opts *v;

    if (!ctx || !ctx->open || !o || !o->fn || !o->name || !o->name[0] ||
        strlen(o->name) > PC_NAME_MAX)
        return PC_EINVAL;
    for (size_t i = 0; i < ctx->n; i++)
        if (!strcmp(ctx->v[i].name, o->name))
            return PC_EINVAL;
    if (ctx->n == ctx->cap) {
        size_t cap = ctx->cap ? 2 * ctx->cap : 4;
        if (!(v = realloc(ctx->v, cap * sizeof *v)))
            return PC_ENOMEM;
        ctx->v = v;
        ctx->cap = cap;
    }
    v = &ctx->v[ctx->n];
    *v = *o;
    if (!(v->name = strdup(o->name)))
        return PC_ENOMEM;
    ctx->n++;
    return PC_OK;
}

const char *
pc_service_config(pc_service_ctx *ctx, const char *key)
{
    const char *v = NULL;

    if (!ctx || !ctx->open || !key)
        return NULL;
    for (const nd_kv *kv = ctx->conf; kv; kv = kv->next) /* the last wins */
        if (!strcmp(kv->section, ctx->l->base) && !strcmp(kv->key, key))
            v = kv->value;
    return v;
}

static void
ctx_fini(pc_service_ctx *ctx)
{
    for (size_t i = 0; i < ctx->n; i++)
        free((char *)ctx->v[i].name);
    free(ctx->v);
    memset(ctx, 0, sizeof *ctx);
}

/* Run c's init for l into ctx. false with the reason in err (ctx then
 * finished). Control task. */
static bool
run_init(lib *l, copy *c, pc_service_ctx *ctx, char *err, size_t size)
{
    pc_err rc;

    memset(ctx, 0, sizeof *ctx);
    ctx->l = l;
    ctx->conf = conf_now;
    ctx->open = true;
    rc = c->init(ctx);
    ctx->open = false;
    if (rc != PC_OK)
        snprintf(err, size, "picos_service_init failed: %s (%s)",
                 pc_strerror(rc), pc_err_name(rc));
    else if (ctx->n == 0)
        snprintf(err, size, "picos_service_init added no service");
    else
        for (size_t i = 0; i < ctx->n; i++)
            if (name_taken(ctx->v[i].name, l)) {
                snprintf(err, size,
                         "service %s is already hosted here by another "
                         "library",
                         ctx->v[i].name);
                rc = PC_EEXIST;
            }
    if (rc != PC_OK || ctx->n == 0) {
        ctx_fini(ctx);
        return false;
    }
    return true;
}

/* Register o as a service of l running copy c. */
static pc_err
add_service(lib *l, copy *c, const pc_rps_opts *o, char *err, size_t size)
{
    svc *s = calloc(1, sizeof *s), **pp;
    pc_err rc;

    if (!s) {
        snprintf(err, size, "service %s: out of memory", o->name);
        return PC_ENOMEM;
    }
    if ((rc = pc_rps_register(o, H.register_timeout, &s->s)) != PC_OK) {
        if (rc == PC_EEXIST)
            snprintf(err, size,
                     "service %s: the name is taken (another node of the "
                     "cluster holds it)",
                     o->name);
        else
            snprintf(err, size, "service %s: can't register it: %s", o->name,
                     pc_strerror(rc));
        free(s);
        return rc;
    }
    snprintf(s->name, sizeof s->name, "%s", o->name);
    s->version = o->version;
    s->code = c;
    s->keep = true;
    atomic_fetch_add(&c->refs, 1);
    for (pp = &l->svcs; *pp; pp = &(*pp)->next)
        ; /* in the order init added them */
    *pp = s;
    return PC_OK;
}

/* ---- closing ----------------------------------------------------------------- */

static pc_msg *
closer(void *arg)
{
    svc *s = arg;
    pc_err rc = pc_rps_close(&s->s, H.grace);

    copy_unref(s->code);
    if (rc != PC_OK) {
        char text[PC_NAME_MAX + 64];
        snprintf(text, sizeof text, "closing %s: %s", s->name, pc_strerror(rc));
        free(s);
        pc_exit_error(text);
    }
    free(s);
    return NULL;
}

/* Close s in a task of its own. */
static void
close_service(svc *s)
{
    pc_spawn_opts o = {.flags = PC_TASK_JOINABLE, .name = "picos-node.close"};
    closing *v = realloc(closers, (nclosers + 1) * sizeof *v);

    if (v) {
        closers = v;
        /* before the spawn: the closer frees s */
        snprintf(v[nclosers].name, sizeof v[0].name, "%s", s->name);
    }
    if (!v || pc_spawn(closer, s, &o, &closers[nclosers].task) != PC_OK) {
        /* no task for it: close here, waiting */
        pc_rps_close(&s->s, H.grace);
        copy_unref(s->code);
        free(s);
        return;
    }
    nclosers++;
}

/* Join closer i within `timeout`: true when it had ended (then it is
 * forgotten; *failed set when its close failed, with one line). */
static bool
closer_join(size_t i, double timeout, bool *failed)
{
    pc_msg *v = NULL;
    pc_err rc = pc_task_join(closers[i].task, timeout, &v);

    if (rc == PC_ETIMEDOUT)
        return false;
    if (rc != PC_OK) {
        fprintf(stderr, ND_PROG ": %s\n", v ? pc_msg_str(v) : pc_strerror(rc));
        *failed = true;
    }
    pc_msg_free(&v);
    closers[i] = closers[--nclosers];
    return true;
}

/* Forget the closes that have ended; with `name`, first wait for the
 * close of that service. Control task. */
static void
closers_reap(const char *name)
{
    bool failed = false;

    for (size_t i = 0; i < nclosers;)
        if (!closer_join(i, name && !strcmp(closers[i].name, name) ? -1 : 0,
                         &failed))
            i++;
}

/* ---- reload ------------------------------------------------------------------ */

/* Reload l; false when its new copy did not load or init, or no service
 * took it (nothing changed then). */
static bool
reload_lib(lib *l, report *rep)
{
    pc_service_ctx ctx;
    char err[1024];
    copy *c, *old;
    svc **pp, *s;
    size_t taken = 0; /* services whose new calls run c */

    if (!load(l, &c, err, sizeof err)) {
        rep_fail(rep, PICOS__V1__NODE_RELOAD_STATUS__NODE_RELOAD_FAILED,
                 "%s: %s (the old code keeps running)", l->path, err);
        return false;
    }
    if (!run_init(l, c, &ctx, err, sizeof err)) {
        copy_free(c);
        rep_fail(rep, PICOS__V1__NODE_RELOAD_STATUS__NODE_RELOAD_FAILED,
                 "%s: %s (the old code keeps running)", l->path, err);
        return false;
    }
    atomic_store(&c->refs, 1); /* the library's current copy */
    for (s = l->svcs; s; s = s->next)
        s->keep = false;
    for (size_t i = 0; i < ctx.n; i++) {
        const pc_rps_opts *o = &ctx.v[i];
        pc_err rc;

        taken++;
        for (s = l->svcs; s && strcmp(s->name, o->name); s = s->next)
            ;
        if (!s) {
            /* a service closed by an earlier reload unregisters its name
             * as it closes: not over the new one */
            closers_reap(o->name);
            if (add_service(l, c, o, err, sizeof err) == PC_OK)
                rep_change(rep, l, o->name,
                           PICOS__V1__NODE_CHANGE_KIND__NODE_SERVICE_ADDED, 0,
                           o->version);
            else {
                taken--;
                rep_fail(rep, PICOS__V1__NODE_RELOAD_STATUS__NODE_RELOAD_FAILED,
                         "%s: %s", l->path, err);
            }
            continue;
        }
        s->keep = true;
        atomic_fetch_add(&c->refs, 1);
        rc = pc_rps_update(s->s, o, released, s->code, H.register_timeout);
        /* ETIMEDOUT: the acceptor takes it later, and calls release then */
        if (rc == PC_OK || rc == PC_ETIMEDOUT) {
            rep_change(rep, l, s->name,
                       PICOS__V1__NODE_CHANGE_KIND__NODE_SERVICE_UPDATED,
                       s->version, o->version);
            s->code = c;
            s->version = o->version;
        } else {
            taken--;
            copy_unref(c); /* the current copy's user keeps it loaded */
            rep_fail(rep, PICOS__V1__NODE_RELOAD_STATUS__NODE_RELOAD_FAILED,
                     "%s: service %s: can't update it: %s (it runs the old "
                     "code)",
                     l->path, s->name, pc_strerror(rc));
        }
    }
    ctx_fini(&ctx);
    if (!taken) { /* nothing runs the new copy: all stays as it was */
        copy_free(c);
        return false;
    }
    for (pp = &l->svcs; (s = *pp);) {
        if (s->keep) {
            pp = &s->next;
            continue;
        }
        *pp = s->next;
        rep_change(rep, l, s->name,
                   PICOS__V1__NODE_CHANGE_KIND__NODE_SERVICE_CLOSED, s->version,
                   0);
        close_service(s);
    }
    old = l->cur;
    l->cur = c;
    copy_unref(old);
    return true;
}

/* "svc v1 -> v2, other v2 added, gone v1 closed" for l's changes. */
static void
changes_text(const report *rep, const lib *l, char *buf, size_t size)
{
    size_t n = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < rep->n && n < size; i++) {
        const change *c = &rep->v[i];
        char a[24], b[24];
        if (c->l != l)
            continue;
        version_str(c->old_version, a, sizeof a);
        version_str(c->version, b, sizeof b);
        if (c->kind == PICOS__V1__NODE_CHANGE_KIND__NODE_SERVICE_UPDATED)
            n += (size_t)snprintf(buf + n, size - n, "%s%s %s -> %s",
                                  n ? ", " : "", c->service, a, b);
        else if (c->kind == PICOS__V1__NODE_CHANGE_KIND__NODE_SERVICE_ADDED)
            n += (size_t)snprintf(buf + n, size - n, "%s%s %s added",
                                  n ? ", " : "", c->service, b);
        else
            n += (size_t)snprintf(buf + n, size - n, "%s%s %s closed",
                                  n ? ", " : "", c->service, a);
    }
}

/* Reload the libraries `target` names ("" or NULL: every one). */
static void
reload(const char *target, report *rep)
{
    const nd_kv *conf = NULL;
    char err[1024];
    bool any = false;

    memset(rep, 0, sizeof *rep);
    closers_reap(NULL);
    if (!nd_config_reread(&conf, err, sizeof err)) {
        rep_fail(rep, PICOS__V1__NODE_RELOAD_STATUS__NODE_RELOAD_FAILED,
                 "%s (nothing reloaded)", err);
        return;
    }
    if (conf)
        conf_now = conf;
    for (lib *l = libs; l; l = l->next) {
        bool match = !target || !*target || !strcmp(l->base, target);
        char text[1024];

        for (const svc *s = l->svcs; !match && s; s = s->next)
            match = !strcmp(s->name, target);
        if (!match)
            continue;
        any = true;
        if (reload_lib(l, rep)) {
            changes_text(rep, l, text, sizeof text);
            printf(ND_PROG " %s reloaded %s: %s\n", H.name, l->path, text);
            fflush(stdout);
        }
    }
    if (!any)
        rep_fail(rep, PICOS__V1__NODE_RELOAD_STATUS__NODE_RELOAD_NOT_FOUND,
                 "no service or library named '%s' on node %s",
                 target && *target ? target : "(any)", H.name);
}

static void
reply(pc_ref to, const report *rep)
{
    Picos__V1__NodeReloaded r = PICOS__V1__NODE_RELOADED__INIT;
    Picos__V1__NodeChange *cv = calloc(rep->n ? rep->n : 1, sizeof *cv);
    Picos__V1__NodeChange **cp = calloc(rep->n ? rep->n : 1, sizeof *cp);
    uint8_t *buf = NULL;
    size_t len;
    pc_msg *m = NULL;

    r.status = rep->status;
    r.node = (char *)H.name;
    r.error = (char *)rep->error;
    if (cv && cp) {
        for (size_t i = 0; i < rep->n; i++) {
            picos__v1__node_change__init(&cv[i]);
            cv[i].library = rep->v[i].l->path;
            cv[i].service = (char *)rep->v[i].service;
            cv[i].kind = rep->v[i].kind;
            cv[i].old_version = rep->v[i].old_version;
            cv[i].version = rep->v[i].version;
            cp[i] = &cv[i];
        }
        r.n_changes = rep->n;
        r.changes = cp;
    }
    len = picos__v1__node_reloaded__get_packed_size(&r);
    if ((buf = malloc(len ? len : 1))) {
        picos__v1__node_reloaded__pack(&r, buf);
        if (pc_msg_new(&m, T_RELOADED, buf, len) == PC_OK &&
            pc_send(to, &m) != PC_OK)
            pc_msg_free(&m);
    }
    free(buf);
    free(cv);
    free(cp);
}

static void
on_reload_request(pc_msg *m)
{
    size_t len = 0;
    const uint8_t *d = pc_msg_data(m, &len);
    Picos__V1__NodeReload *rq = picos__v1__node_reload__unpack(NULL, len, d);
    report rep;

    if (!rq) {
        memset(&rep, 0, sizeof rep);
        rep_fail(&rep, PICOS__V1__NODE_RELOAD_STATUS__NODE_RELOAD_FAILED,
                 "a NodeReload that does not decode");
    } else
        reload(rq->target, &rep);
    reply(pc_msg_sender(m), &rep);
    free(rep.v);
    if (rq)
        picos__v1__node_reload__free_unpacked(rq, NULL);
}

/* ---- the control task ---------------------------------------------------------- */

/* "2 services: echo v1 [libecho.so], calc unversioned [libcalc.so]" */
static void
summary(char *buf, size_t size)
{
    size_t n, count = 0;
    bool first = true;

    for (const lib *l = libs; l; l = l->next)
        for (const svc *s = l->svcs; s; s = s->next)
            count++;
    n = (size_t)snprintf(buf, size, "%zu service%s:", count,
                         count == 1 ? "" : "s");
    for (const lib *l = libs; l && n < size; l = l->next)
        for (const svc *s = l->svcs; s && n < size; s = s->next) {
            char v[24];
            n += (size_t)snprintf(
                buf + n, size - n, "%s %s %s [%s]", first ? "" : ",", s->name,
                version_str(s->version, v, sizeof v), file_name(l->path));
            first = false;
        }
}

static void
started(int code, const char *err)
{
    pthread_mutex_lock(&st_mu);
    st_code = code;
    snprintf(st_err, sizeof st_err, "%s", err ? err : "");
    pthread_cond_signal(&st_cv);
    pthread_mutex_unlock(&st_mu);
}

/* Register the control task, run every init, register the services. */
static bool
startup(void)
{
    char name[PC_NAME_MAX + 1], err[1024];
    pc_err rc;

    snprintf(name, sizeof name, CONTROL_PREFIX "%s", H.name);
    rc = pc_name_register(PC_NAME_TASK, name, pc_self(), H.register_timeout);
    if (rc == PC_EEXIST) {
        snprintf(err, sizeof err,
                 "node name %s is taken: another picos-node of that name is "
                 "in the cluster",
                 H.name);
        started(DM_EXIT_RUNTIME, err);
        return false;
    }
    if (rc != PC_OK) {
        snprintf(err, sizeof err, "can't register %s: %s", name,
                 pc_strerror(rc));
        started(DM_EXIT_RUNTIME, err);
        return false;
    }
    for (lib *l = libs; l; l = l->next) {
        pc_service_ctx ctx;
        char line[1200];
        if (!run_init(l, l->cur, &ctx, err, sizeof err)) {
            snprintf(line, sizeof line, "%s: %s", l->path, err);
            started(DM_EXIT_USAGE, line);
            return false;
        }
        for (size_t i = 0; i < ctx.n; i++)
            if (add_service(l, l->cur, &ctx.v[i], err, sizeof err) != PC_OK) {
                ctx_fini(&ctx);
                snprintf(line, sizeof line, "%s: %s", l->path, err);
                started(DM_EXIT_RUNTIME, line);
                return false;
            }
        ctx_fini(&ctx);
    }
    summary(err, sizeof err);
    started(0, err);
    return true;
}

/* The stop: unregister, close every service (in parallel, each with the
 * grace), wait for the closes. */
static pc_msg *
stop(void)
{
    char name[PC_NAME_MAX + 1];
    bool failed = false;

    snprintf(name, sizeof name, CONTROL_PREFIX "%s", H.name);
    (void)pc_name_unregister(PC_NAME_TASK, name, 1.0);
    for (lib *l = libs; l; l = l->next)
        while (l->svcs) {
            svc *s = l->svcs;
            l->svcs = s->next;
            close_service(s);
        }
    while (nclosers)
        closer_join(0, -1, &failed);
    free(closers);
    closers = NULL;
    nclosers = 0;
    if (failed)
        pc_exit_error("a service did not close in time");
    return NULL;
}

static pc_msg *
control_task(void *arg)
{
    (void)arg;
    if (!startup())
        return NULL;
    for (;;) {
        pc_msg *m = NULL;
        if (pc_recv(&m, -1) != PC_OK)
            continue;
        if (pc_msg_is(m, T_STOP)) {
            pc_msg_free(&m);
            return stop();
        }
        if (pc_msg_is(m, T_HUP)) {
            report rep;
            reload(NULL, &rep);
            free(rep.v);
        } else if (pc_msg_is(m, T_RELOAD)) {
            on_reload_request(m);
        } else if (pc_msg_is(m, T_RELEASE)) {
            size_t len = 0;
            const void *d = pc_msg_data(m, &len);
            copy *c;
            if (len == sizeof c) {
                memcpy(&c, d, sizeof c);
                PC_LOG_INFO("node", "%s: old copy unloaded", c->lib->path);
                copy_free(c);
            }
        }
        pc_msg_free(&m);
    }
}

/* ---- main's side ---------------------------------------------------------------- */

bool
nd_host_init(const nd_host_opts *o, char *err, size_t size)
{
    const char *t = getenv("TMPDIR");

    H = *o;
    conf_now = o->services;
    snprintf(dir, sizeof dir, "%s/picos-node.XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(dir)) {
        snprintf(err, size,
                 "can't make a directory for the libraries' copies "
                 "in %s: %s",
                 t && *t ? t : "/tmp", strerror(errno));
        dir[0] = '\0';
        return false;
    }
    return true;
}

bool
nd_lib_add(const char *path, char *err, size_t size)
{
    lib *l = calloc(1, sizeof *l), **pp;
    char e[1024];

    if (!l || !(l->path = strdup(path))) {
        free(l);
        snprintf(err, size, "%s: out of memory", path);
        return false;
    }
    base_name(path, l->base, sizeof l->base);
    for (pp = &libs; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->base, l->base)) {
            snprintf(err, size,
                     "%s: a library named %s is given already (%s): each "
                     "needs a file name of its own",
                     path, l->base, (*pp)->path);
            free(l->path);
            free(l);
            return false;
        }
    if (!load(l, &l->cur, e, sizeof e)) {
        snprintf(err, size, "%s: %s", path, e);
        free(l->path);
        free(l);
        return false;
    }
    atomic_store(&l->cur->refs, 1);
    *pp = l;
    return true;
}

int
nd_start(char *err, size_t size)
{
    pc_spawn_opts o = {.flags = PC_TASK_JOINABLE,
                       .stack_size = CONTROL_STACK,
                       .name = "picos-node"};
    pc_err rc;
    int code;

    if ((rc = pc_spawn(control_task, NULL, &o, &control)) != PC_OK) {
        snprintf(err, size, "can't start the control task: %s",
                 pc_strerror(rc));
        return DM_EXIT_RUNTIME;
    }
    pthread_mutex_lock(&st_mu);
    while (st_code < 0)
        pthread_cond_wait(&st_cv, &st_mu);
    code = st_code;
    snprintf(err, size, "%s", st_err);
    pthread_mutex_unlock(&st_mu);
    return code;
}

void
nd_reload_signal(void)
{
    (void)pc_send_data(control, T_HUP, NULL, 0);
}

void
nd_stop_begin(void)
{
    (void)pc_send_data(control, T_STOP, NULL, 0);
}

bool
nd_stop_wait(double timeout, bool *failed)
{
    pc_msg *v = NULL;
    pc_err rc = pc_task_join(control, timeout, &v);

    pc_msg_free(&v);
    if (rc == PC_ETIMEDOUT)
        return false;
    *failed = rc != PC_OK;
    return true;
}

void
nd_host_cleanup(void)
{
    if (!dir[0])
        return;
    pthread_mutex_lock(&copies_mu);
    for (copy *c = copies; c; c = c->next)
        unlink(c->file);
    pthread_mutex_unlock(&copies_mu);
    rmdir(dir);
}
