/* apps/node/picos-node.c — the node daemon: joins registries and hosts
 * services from shared libraries (host.c does the hosting; docs/node.md
 * is the manual).
 *
 *     picos-node [--config FILE] [--registry EP[,EP]] [--listen EP]
 *                [--secret-file F] [--name N] [--grace S] [--workers N]
 *                [--heartbeat S] [--timeout S] [--join-timeout S]
 *                --service PATH.so [--service PATH.so ...] [--help]
 *
 * The shape of picos-registry: options from the INI file's [node]
 * section first, then the command line, which overrides them (a --service
 * on the command line replaces the file's list); [service "NAME"]
 * sections are the libraries' own keys (pc_service_config()), read again
 * at every reload. It checks every library before it starts the node (a
 * bad one is exit 2 without touching the cluster), joins, runs the
 * libraries' inits, prints one line on stdout, then waits in sigwait()
 * (SIGTERM, SIGINT and SIGHUP blocked in every thread, so no handler runs
 * inside the runtime): SIGHUP reloads every library, SIGTERM/SIGINT close
 * the services with the grace and leave the cluster (a second one stops
 * without waiting). While it starts, the library's ERROR lines are held
 * back and the first is the one failure line, so nothing is said twice.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ini.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "picos/picos.h"
#include "picos/registry.h"

#include "node.h"

typedef struct cfg {
    char registry[1024], listen[256], secret_file[256], name[256];
    double grace, heartbeat, timeout, join_timeout;
    double workers;
    char **services; /* library paths */
    size_t nservices;
    nd_kv *sections;   /* [service "NAME"] keys */
    bool cli_services; /* a --service seen: the file's list is replaced */
} cfg;

static const char usage[] =
    "usage: " ND_PROG " [--config FILE] [--registry EP[,EP...]] [--listen EP]\n"
    "                  [--secret-file F] [--name N] [--grace S] [--workers N]\n"
    "                  [--heartbeat S] [--timeout S] [--join-timeout S]\n"
    "                  --service PATH.so [--service PATH.so ...] [--help]\n"
    "\n"
    "A picos node that joins the registries and hosts the services of shared\n"
    "libraries (picos/service.h; docs/node.md).\n"
    "  --config FILE       INI file: section [node] with the keys registry,\n"
    "                      listen, secret_file, name, grace, workers, "
    "heartbeat,\n"
    "                      timeout, join_timeout, service (repeated, or one "
    "path\n"
    "                      per line); sections [service \"NAME\"] hold the "
    "keys\n"
    "                      of library NAME (file name without lib and .so),\n"
    "                      read again at each reload. The command line\n"
    "                      overrides the file.\n"
    "  --registry EP,...   registry endpoints (default $PICOS_REGISTRY, else\n"
    "                      " PC_REGISTRY_DEFAULT ")\n"
    "  --listen EP         this node's endpoint (default tcp://127.0.0.1:0:\n"
    "                      any free port, printed at startup)\n"
    "  --secret-file F     cluster secret (default $PICOS_SECRET_FILE, then\n"
    "                      $PICOS_SECRET)\n"
    "  --name N            node name (default host:pid); its control task is\n"
    "                      \"picos-node/N\" (picos reload N)\n"
    "  --grace S           at a stop, the time calls in flight get to finish\n"
    "                      before they end CLOSED (default 10)\n"
    "  --workers N         worker threads (default: one per core)\n"
    "  --heartbeat S       link heartbeat, seconds (default 0.2)\n"
    "  --timeout S         silence before a peer is down (default 1.0)\n"
    "  --join-timeout S    wait for a registry at startup (default 10)\n"
    "  --service PATH.so   a service library (repeatable)\n"
    "SIGHUP (or picos reload NODE) reloads the libraries: new calls run the\n"
    "new code, calls in flight finish on the old. SIGTERM/SIGINT stop.\n"
    "Exit status: 0 stopped by SIGTERM/SIGINT, 1 runtime failure (no\n"
    "registry, wrong secret, a name taken, a close that failed), 2 bad\n"
    "command line, config or library.\n";

static void __attribute__((noreturn, format(printf, 2, 3)))
die(int code, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    for (char *p = buf; *p; p++) /* one line, whatever a library said */
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    fprintf(stderr, ND_PROG ": %s\n", buf);
    exit(code);
}

/* ---- options ------------------------------------------------------------------ */

static bool
num(const char *s, double *out)
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

static bool
str(char *dst, size_t size, const char *v)
{
    if (!*v || strlen(v) >= size)
        return false;
    snprintf(dst, size, "%s", v);
    return true;
}

static bool
add_path(cfg *c, const char *v)
{
    char **p, *s;

    if (!*v || !(s = strdup(v)))
        return false;
    if (!(p = realloc(c->services, (c->nservices + 1) * sizeof *p))) {
        free(s);
        return false;
    }
    c->services = p;
    c->services[c->nservices++] = s;
    return true;
}

static void
clear_paths(cfg *c)
{
    for (size_t i = 0; i < c->nservices; i++)
        free(c->services[i]);
    free(c->services);
    c->services = NULL;
    c->nservices = 0;
}

/* Set option `key` (config spelling: secret_file) to v. 1 set, 0 bad
 * value, -1 unknown key. */
static int
set(cfg *c, const char *key, const char *v)
{
    if (!strcmp(key, "registry"))
        return str(c->registry, sizeof c->registry, v);
    if (!strcmp(key, "listen"))
        return str(c->listen, sizeof c->listen, v);
    if (!strcmp(key, "secret_file"))
        return str(c->secret_file, sizeof c->secret_file, v);
    if (!strcmp(key, "name"))
        return str(c->name, sizeof c->name, v) &&
               strlen(v) + sizeof "picos-node/" <= PC_NAME_MAX;
    if (!strcmp(key, "grace"))
        return num(v, &c->grace);
    if (!strcmp(key, "workers"))
        return num(v, &c->workers) && c->workers >= 1 && c->workers <= 1024 &&
               c->workers == (int)c->workers;
    if (!strcmp(key, "heartbeat"))
        return num(v, &c->heartbeat) && c->heartbeat > 0;
    if (!strcmp(key, "timeout"))
        return num(v, &c->timeout) && c->timeout > 0;
    if (!strcmp(key, "join_timeout"))
        return num(v, &c->join_timeout) && c->join_timeout > 0;
    if (!strcmp(key, "service"))
        return add_path(c, v);
    return -1;
}

/* `service "NAME"` -> NAME into out. */
static bool
service_section(const char *sec, char *out, size_t size)
{
    const char *p = sec + 7, *end;

    if (strncmp(sec, "service", 7) || (*p != ' ' && *p != '\t'))
        return false;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p++ != '"' || !(end = strchr(p, '"')) || end == p || end[1] ||
        (size_t)(end - p) >= size)
        return false;
    snprintf(out, size, "%.*s", (int)(end - p), p);
    return true;
}

typedef struct ini_ctx {
    cfg *c;
    char err[512]; /* the first error, without its line */
} ini_ctx;

static int
on_ini(void *user, const char *section, const char *key, const char *value)
{
    ini_ctx *x = user;
    char name[256];
    nd_kv *kv, **pp;
    int r;

    if (service_section(section, name, sizeof name)) {
        if (!(kv = calloc(1, sizeof *kv)) || !(kv->section = strdup(name)) ||
            !(kv->key = strdup(key)) || !(kv->value = strdup(value))) {
            if (kv) {
                free(kv->section);
                free(kv->key);
            }
            free(kv);
            snprintf(x->err, sizeof x->err, "out of memory");
            return 0;
        }
        for (pp = &x->c->sections; *pp; pp = &(*pp)->next)
            ; /* in file order: pc_service_config() takes the last */
        *pp = kv;
        return 1;
    }
    if (strcmp(section, "node")) {
        if (!x->err[0])
            snprintf(x->err, sizeof x->err,
                     "unknown section '%s' (there are [node] and "
                     "[service \"NAME\"])",
                     section);
        return 0;
    }
    if ((r = set(x->c, key, value)) == 1)
        return 1;
    if (!x->err[0]) {
        if (r < 0)
            snprintf(x->err, sizeof x->err, "unknown key '%s'", key);
        else
            snprintf(x->err, sizeof x->err, "bad value '%s' for '%s'", value,
                     key);
    }
    return 0;
}

/* Read `path` into c. false with "PATH:LINE: what" in err. */
static bool
read_config(cfg *c, const char *path, char *err, size_t size)
{
    ini_ctx x = {.c = c};
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

static void
free_sections(nd_kv *kv)
{
    while (kv) {
        nd_kv *next = kv->next;
        free(kv->section);
        free(kv->key);
        free(kv->value);
        free(kv);
        kv = next;
    }
}

static char config_path[1024];

/* Every generation of [service] sections read at a reload: the strings
 * live as long as the node (pc_service_config()). */
typedef struct generation {
    nd_kv *sections;
    struct generation *next;
} generation;
static generation *generations;

bool
nd_config_reread(const nd_kv **out, char *err, size_t size)
{
    generation *g;
    cfg c;

    *out = NULL;
    if (!config_path[0])
        return true;
    memset(&c, 0, sizeof c);
    if (!read_config(&c, config_path, err, size) ||
        !(g = calloc(1, sizeof *g))) {
        if (!err[0])
            snprintf(err, size, "%s: out of memory", config_path);
        clear_paths(&c);
        free_sections(c.sections);
        return false;
    }
    clear_paths(&c);
    g->sections = c.sections;
    g->next = generations;
    generations = g;
    *out = c.sections;
    return true;
}

static void
parse(cfg *c, int argc, char **argv)
{
    static const struct {
        const char *opt, *key;
    } map[] = {{"--registry", "registry"},
               {"--listen", "listen"},
               {"--secret-file", "secret_file"},
               {"--name", "name"},
               {"--grace", "grace"},
               {"--workers", "workers"},
               {"--heartbeat", "heartbeat"},
               {"--timeout", "timeout"},
               {"--join-timeout", "join_timeout"},
               {"--service", "service"},
               {"--config", NULL}};
    char err[1200];

    /* the config file first, whatever its place: the rest overrides it */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 1; i < argc; i++) {
            const char *a = argv[i], *v = NULL, *eq = strchr(a, '=');
            size_t n = eq ? (size_t)(eq - a) : strlen(a), k;
            if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
                fputs(usage, stdout);
                exit(0);
            }
            for (k = 0; k < sizeof map / sizeof map[0]; k++)
                if (strlen(map[k].opt) == n && !strncmp(a, map[k].opt, n))
                    break;
            if (k == sizeof map / sizeof map[0])
                die(ND_EXIT_USAGE, "unknown option '%s' (see --help)", a);
            if (eq)
                v = eq + 1;
            else if (i + 1 < argc)
                v = argv[++i];
            else
                die(ND_EXIT_USAGE, "%s needs a value", map[k].opt);
            if (!map[k].key) {
                if (pass == 1)
                    continue;
                if (config_path[0])
                    die(ND_EXIT_USAGE, "--config given twice");
                if (!str(config_path, sizeof config_path, v))
                    die(ND_EXIT_USAGE, "--config: bad value '%s'", v);
                if (!read_config(c, v, err, sizeof err))
                    die(ND_EXIT_USAGE, "%s", err);
                continue;
            }
            if (pass == 0)
                continue;
            if (!strcmp(map[k].key, "service") && !c->cli_services) {
                clear_paths(c); /* the command line's list wins */
                c->cli_services = true;
            }
            if (set(c, map[k].key, v) != 1)
                die(ND_EXIT_USAGE, "%s: bad value '%s'", map[k].opt, v);
        }
}

/* ---- logging ------------------------------------------------------------------- */

static atomic_bool starting = true, stopping;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char first_error[1024];
static char held[4096]; /* warnings while starting: printed once started */

/* While starting, the first ERROR is kept for the one failure line and
 * warnings are held back (a failure's one line says what matters; a
 * start that succeeds prints them after all); otherwise each record is
 * one line on stderr. Once the stop began only errors are: leaving tears
 * down the links, and the transport's words for the registry's link
 * going down are no news then. */
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
    } else if (atomic_load(&starting)) {
        size_t n = strlen(held);
        snprintf(held + n, sizeof held - n, ND_PROG " %s [%s] %s\n",
                 pc_log_level_name(level), module, text);
    } else
        fprintf(stderr, ND_PROG " %s [%s] %s\n", pc_log_level_name(level),
                module, text);
    pthread_mutex_unlock(&log_mu);
}

/* The start succeeded: the warnings held back go out. */
static void
started(void)
{
    pthread_mutex_lock(&log_mu);
    atomic_store(&starting, false);
    fputs(held, stderr);
    pthread_mutex_unlock(&log_mu);
}

static void __attribute__((noreturn)) start_failed(const char *what, pc_err rc)
{
    pthread_mutex_lock(&log_mu);
    if (first_error[0])
        die(ND_EXIT_RUNTIME, "%s", first_error);
    die(ND_EXIT_RUNTIME, "%s: %s", what, pc_strerror(rc));
}

/* Stop the node (leaving the cluster), then die. */
static void __attribute__((noreturn)) stop_and_die(int code, const char *line)
{
    pc_node_stop();
    pc_node_run();
    die(code, "%s", line);
}

/* ---- main ----------------------------------------------------------------------- */

/* "registry EP" or "registries EP1, EP2" */
static void
registries_text(const char *r, char *buf, size_t size)
{
    size_t n = (size_t)snprintf(buf, size, "%s ",
                                strchr(r, ',') ? "registries" : "registry");

    for (; *r && n + 3 < size; r++) {
        if (*r == ' ')
            continue;
        buf[n++] = *r;
        if (*r == ',')
            buf[n++] = ' ';
    }
    buf[n < size ? n : size - 1] = '\0';
}

static void __attribute__((noreturn))
join_failed(pc_err rc, const char *regs, double timeout)
{
    char line[1400];

    switch (rc) {
    case PC_EAUTH:
        snprintf(line, sizeof line, "%s refused our key: wrong cluster secret?",
                 regs);
        stop_and_die(ND_EXIT_RUNTIME, line);
    case PC_EUNREACH:
    case PC_ETIMEDOUT:
        snprintf(line, sizeof line,
                 "%s: no answer within %g s (is picos-registry running?)", regs,
                 timeout);
        stop_and_die(ND_EXIT_RUNTIME, line);
    case PC_EINVAL:
        snprintf(line, sizeof line, "bad endpoint in %s", regs);
        stop_and_die(ND_EXIT_USAGE, line);
    default:
        start_failed("can't join the cluster", rc);
    }
}

int
main(int argc, char **argv)
{
    cfg c = {.listen = "tcp://127.0.0.1:0", .grace = 10, .join_timeout = 10};
    pc_node_opts no = {0};
    pc_cluster_opts co;
    nd_host_opts ho = {0};
    char me[300], bound[PC_ENDPOINT_MAX + 1], regs[1100], text[4096];
    const char *env = getenv("PICOS_REGISTRY");
    struct timespec zero = {0, 0};
    bool failed = false;
    sigset_t sigs;
    int sig = 0, code;
    pc_err rc;

    parse(&c, argc, argv);
    if (!c.nservices)
        die(ND_EXIT_USAGE, "no service library: give --service PATH.so (or "
                           "service = PATH in [node] of --config)");
    if (c.name[0])
        snprintf(me, sizeof me, "%s", c.name);
    else { /* the transport's default name, spelled out for the control task */
        char host[256] = "";
        gethostname(host, sizeof host - 1);
        snprintf(me, sizeof me, "%s:%d", host, (int)getpid());
    }
    if (!c.registry[0])
        snprintf(c.registry, sizeof c.registry, "%s",
                 env && *env ? env : PC_REGISTRY_DEFAULT);
    registries_text(c.registry, regs, sizeof regs);

    /* blocked before any thread starts, so every thread inherits it */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    pc_log_set_sink(sink, NULL);

    ho.name = me;
    ho.grace = c.grace;
    ho.register_timeout = c.join_timeout;
    ho.services = c.sections;
    if (!nd_host_init(&ho, text, sizeof text))
        die(ND_EXIT_RUNTIME, "%s", text);
    atexit(nd_host_cleanup);
    for (size_t i = 0; i < c.nservices; i++)
        if (!nd_lib_add(c.services[i], text, sizeof text))
            die(ND_EXIT_USAGE, "%s", text);

    no.workers = (int)c.workers;
    if ((rc = pc_node_start(&no)) != PC_OK)
        start_failed("can't start the node", rc);
    memset(&co, 0, sizeof co);
    co.net.name = me;
    co.net.secret_file = c.secret_file[0] ? c.secret_file : NULL;
    co.net.heartbeat = c.heartbeat;
    co.net.timeout = c.timeout;
    co.registries = c.registry;
    co.listen = c.listen;
    co.join_timeout = c.join_timeout;
    co.register_timeout = c.join_timeout;
    if ((rc = pc_cluster_join(&co)) != PC_OK) {
        pc_net_stats ns;
        /* a refused handshake may not have ended the join yet (cli/common.c) */
        if ((rc == PC_EUNREACH || rc == PC_ETIMEDOUT) &&
            pc_net_stats_get(&ns) == PC_OK && ns.auth_failed > 0)
            rc = PC_EAUTH;
        join_failed(rc, regs, c.join_timeout);
    }
    if ((rc = pc_net_endpoints(bound, NULL, sizeof bound)) != PC_OK)
        start_failed("can't read the bound endpoint", rc);
    if ((code = nd_start(text, sizeof text)) != 0)
        stop_and_die(code, text);
    started();
    printf(ND_PROG " %s listening on %s (%s; %s)\n", me, bound, regs, text);
    fflush(stdout);

    for (;;) {
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP)
            nd_reload_signal();
        else
            break;
    }
    nd_stop_begin();
    atomic_store(&stopping, true);
    while (!nd_stop_wait(0.2, &failed)) {
        sig = sigtimedwait(&sigs, NULL, &zero);
        if (sig == SIGTERM || sig == SIGINT) {
            fprintf(stderr, ND_PROG ": second signal: stopping without waiting "
                                    "for the calls in flight\n");
            failed = true;
            break;
        }
    }
    pc_node_stop();
    pc_node_run();
    clear_paths(&c);
    return failed ? ND_EXIT_RUNTIME : 0;
}
