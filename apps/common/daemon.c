/* apps/common/daemon.c — the shell picos-registry and picos-node share
 * (daemon.h).
 *
 * Both daemons say every failure in one line on stderr and exit 2 for a
 * bad command line or config, 1 for a failure to start or run. The
 * command line overrides the INI file, so the file is read in a first
 * pass over argv and the other options are set in a second. While a
 * daemon starts, the library's ERROR lines would repeat what the failure
 * line says: the sink keeps the first for that line (dm_start_failed())
 * and, for picos-node, holds warnings back until the start succeeded.
 * The signals the daemons wait for are blocked before any thread starts,
 * so every thread inherits the mask and no handler runs inside the
 * runtime: the main thread takes them with sigwait().
 */
#define _GNU_SOURCE
#include "daemon.h"

#include <errno.h>
#include <ini.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *prog = "picos";

void
dm_init(const char *p)
{
    prog = p;
}

void
dm_die(int code, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    for (char *p = buf; *p; p++) /* one line, whatever a library said */
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    fprintf(stderr, "%s: %s\n", prog, buf);
    exit(code);
}

/* ---- options ------------------------------------------------------------------ */

bool
dm_num(const char *s, double *out)
{
    char *end;
    double d;

    errno = 0;
    d = strtod(s, &end);
    if (errno || end == s || *end || !(d >= 0) || d > 1e6)
        return false;
    *out = d;
    return true;
}

bool
dm_str(char *dst, size_t size, const char *v)
{
    if (!*v || strlen(v) >= size)
        return false;
    snprintf(dst, size, "%s", v);
    return true;
}

typedef struct ini_ctx {
    const dm_config *d;
    void *cfg;
    char err[512]; /* the first error, without its line */
} ini_ctx;

static int
on_ini(void *user, const char *section, const char *key, const char *value)
{
    ini_ctx *x = user;
    char err[sizeof x->err] = "";
    int r;

    if (strcmp(section, x->d->section)) {
        r = x->d->other
                ? x->d->other(x->cfg, section, key, value, err, sizeof err)
                : -1;
        if (r < 0)
            snprintf(err, sizeof err, "unknown section '%s'%s", section,
                     x->d->sections ? x->d->sections : "");
    } else if ((r = x->d->set(x->cfg, key, value)) < 0)
        snprintf(err, sizeof err, "unknown key '%s'", key);
    else if (r == 0)
        snprintf(err, sizeof err, "bad value '%s' for '%s'", value, key);
    if (r == 1)
        return 1;
    if (!x->err[0])
        snprintf(x->err, sizeof x->err, "%s", err);
    return 0;
}

bool
dm_config_read(const dm_config *d, void *cfg, const char *path, char *err,
               size_t size)
{
    ini_ctx x = {.d = d, .cfg = cfg};
    int line = ini_parse(path, on_ini, &x);

    err[0] = '\0';
    if (line == -1)
        snprintf(err, size, "%s: can't open it: %s", path, strerror(errno));
    else if (line == -2)
        snprintf(err, size, "%s: out of memory", path);
    else if (line > 0)
        snprintf(err, size, "%s:%d: %s", path, line,
                 x.err[0] ? x.err : "syntax error");
    return line == 0;
}

void
dm_parse(int argc, char **argv, const dm_opt *map, size_t n, const char *usage,
         void (*config)(void *cfg, const char *path), dm_set_fn set, void *cfg)
{
    /* the config file first, whatever its place: the rest overrides it */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 1; i < argc; i++) {
            const char *a = argv[i], *v = NULL, *eq = strchr(a, '=');
            size_t len = eq ? (size_t)(eq - a) : strlen(a), k;
            if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
                fputs(usage, stdout);
                exit(0);
            }
            for (k = 0; k < n; k++)
                if (strlen(map[k].opt) == len && !strncmp(a, map[k].opt, len))
                    break;
            if (k == n)
                dm_die(DM_EXIT_USAGE, "unknown option '%s' (see --help)", a);
            bool flag = map[k].key && map[k].key[0] == '+';
            if (eq)
                v = eq + 1;
            else if (flag)
                v = "on";
            else if (i + 1 < argc)
                v = argv[++i];
            else
                dm_die(DM_EXIT_USAGE, "%s needs a value", map[k].opt);
            if (!map[k].key) {
                if (pass == 0)
                    config(cfg, v);
            } else if (pass == 1 && set(cfg, map[k].key + flag, v) != 1)
                dm_die(DM_EXIT_USAGE, "%s: bad value '%s'", map[k].opt, v);
        }
}

/* ---- the log and the signals ----------------------------------------------------- */

static atomic_bool starting = true, stopping;
static bool hold; /* warnings while starting: held back */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char first_error[1024];
static char held[4096]; /* the warnings held back */

/* Once the stop began only errors are printed: leaving tears down the
 * links, and the transport's words for the registry's link going down are
 * no news then. */
static void
sink(pc_log_level level, const char *module, const char *text, void *user)
{
    (void)user;
    if (atomic_load(&stopping) && level < PC_LOG_LEVEL_ERROR)
        return;
    pthread_mutex_lock(&log_mu);
    if (atomic_load(&starting) && level >= PC_LOG_LEVEL_ERROR) {
        if (!first_error[0])
            snprintf(first_error, sizeof first_error, "%s", text);
    } else if (atomic_load(&starting) && hold) {
        size_t n = strlen(held);
        snprintf(held + n, sizeof held - n, "%s %s [%s] %s\n", prog,
                 pc_log_level_name(level), module, text);
    } else
        fprintf(stderr, "%s %s [%s] %s\n", prog, pc_log_level_name(level),
                module, text);
    pthread_mutex_unlock(&log_mu);
}

void
dm_start(sigset_t *sigs, int extra, bool hold_warnings)
{
    sigemptyset(sigs);
    sigaddset(sigs, SIGTERM);
    sigaddset(sigs, SIGINT);
    if (extra)
        sigaddset(sigs, extra);
    pthread_sigmask(SIG_BLOCK, sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    hold = hold_warnings;
    pc_log_set_sink(sink, NULL);
}

void
dm_started(void)
{
    pthread_mutex_lock(&log_mu);
    atomic_store(&starting, false);
    fputs(held, stderr);
    pthread_mutex_unlock(&log_mu);
}

void
dm_stopping(void)
{
    atomic_store(&stopping, true);
}

void
dm_start_failed(const char *what, pc_err rc)
{
    pthread_mutex_lock(&log_mu);
    if (first_error[0])
        dm_die(DM_EXIT_RUNTIME, "%s", first_error);
    dm_die(DM_EXIT_RUNTIME, "%s: %s", what, pc_strerror(rc));
}

void
dm_name(const char *name, char *me, size_t size)
{
    char host[256] = "";

    if (name[0]) {
        snprintf(me, size, "%s", name);
        return;
    }
    gethostname(host, sizeof host - 1);
    snprintf(me, size, "%s:%d", host, (int)getpid());
}
