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
 * The shell it shares with picos-registry (options, config, log, signals)
 * is apps/common/daemon.c.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* ---- options ------------------------------------------------------------------ */

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

/* dm_set_fn: option `key` (config spelling: secret_file) to v. */
static int
set(void *cfgp, const char *key, const char *v)
{
    cfg *c = cfgp;

    if (!strcmp(key, "registry"))
        return dm_str(c->registry, sizeof c->registry, v);
    if (!strcmp(key, "listen"))
        return dm_str(c->listen, sizeof c->listen, v);
    if (!strcmp(key, "secret_file"))
        return dm_str(c->secret_file, sizeof c->secret_file, v);
    if (!strcmp(key, "name"))
        return dm_str(c->name, sizeof c->name, v) &&
               strlen(v) + sizeof "picos-node/" <= PC_NAME_MAX;
    if (!strcmp(key, "grace"))
        return dm_num(v, &c->grace);
    if (!strcmp(key, "workers"))
        return dm_num(v, &c->workers) && c->workers >= 1 &&
               c->workers <= 1024 && c->workers == (int)c->workers;
    if (!strcmp(key, "heartbeat"))
        return dm_num(v, &c->heartbeat) && c->heartbeat > 0;
    if (!strcmp(key, "timeout"))
        return dm_num(v, &c->timeout) && c->timeout > 0;
    if (!strcmp(key, "join_timeout"))
        return dm_num(v, &c->join_timeout) && c->join_timeout > 0;
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

/* A key of a [service "NAME"] section, kept in file order:
 * pc_service_config() takes the last. */
static int
on_service_key(void *cfgp, const char *section, const char *key,
               const char *value, char *err, size_t size)
{
    cfg *c = cfgp;
    char name[256];
    nd_kv *kv, **pp;

    if (!service_section(section, name, sizeof name))
        return -1;
    if (!(kv = calloc(1, sizeof *kv)) || !(kv->section = strdup(name)) ||
        !(kv->key = strdup(key)) || !(kv->value = strdup(value))) {
        if (kv) {
            free(kv->section);
            free(kv->key);
        }
        free(kv);
        snprintf(err, size, "out of memory");
        return 0;
    }
    for (pp = &c->sections; *pp; pp = &(*pp)->next)
        ;
    *pp = kv;
    return 1;
}

static const dm_config config_file = {
    .section = "node",
    .set = set,
    .other = on_service_key,
    .sections = " (there are [node] and [service \"NAME\"])"};

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
    if (!dm_config_read(&config_file, &c, config_path, err, size) ||
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

/* --config: read at once (the rest of the command line overrides it). */
static void
on_config(void *c, const char *path)
{
    char err[1200];

    if (config_path[0])
        dm_die(DM_EXIT_USAGE, "--config given twice");
    if (!dm_str(config_path, sizeof config_path, path))
        dm_die(DM_EXIT_USAGE, "--config: bad value '%s'", path);
    if (!dm_config_read(&config_file, c, path, err, sizeof err))
        dm_die(DM_EXIT_USAGE, "%s", err);
}

/* An option of the command line: a --service replaces the file's list. */
static int
set_cli(void *cfgp, const char *key, const char *v)
{
    cfg *c = cfgp;

    if (!strcmp(key, "service") && !c->cli_services) {
        clear_paths(c); /* the command line's list wins */
        c->cli_services = true;
    }
    return set(c, key, v);
}

static void
parse(cfg *c, int argc, char **argv)
{
    static const dm_opt map[] = {{"--registry", "registry"},
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

    dm_parse(argc, argv, map, sizeof map / sizeof map[0], usage, on_config,
             set_cli, c);
}

/* Stop the node (leaving the cluster), then die. */
static void __attribute__((noreturn)) stop_and_die(int code, const char *line)
{
    pc_node_stop();
    pc_node_run();
    dm_die(code, "%s", line);
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
        stop_and_die(DM_EXIT_RUNTIME, line);
    case PC_EUNREACH:
    case PC_ETIMEDOUT:
        snprintf(line, sizeof line,
                 "%s: no answer within %g s (is picos-registry running?)", regs,
                 timeout);
        stop_and_die(DM_EXIT_RUNTIME, line);
    case PC_EINVAL:
        snprintf(line, sizeof line, "bad endpoint in %s", regs);
        stop_and_die(DM_EXIT_USAGE, line);
    default:
        dm_start_failed("can't join the cluster", rc);
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

    dm_init(ND_PROG);
    parse(&c, argc, argv);
    if (!c.nservices)
        dm_die(DM_EXIT_USAGE, "no service library: give --service PATH.so (or "
                              "service = PATH in [node] of --config)");
    dm_name(c.name, me, sizeof me); /* spelled out for the control task */
    if (!c.registry[0])
        snprintf(c.registry, sizeof c.registry, "%s",
                 env && *env ? env : PC_REGISTRY_DEFAULT);
    registries_text(c.registry, regs, sizeof regs);

    dm_start(&sigs, SIGHUP, true);

    ho.name = me;
    ho.grace = c.grace;
    ho.register_timeout = c.join_timeout;
    ho.services = c.sections;
    if (!nd_host_init(&ho, text, sizeof text))
        dm_die(DM_EXIT_RUNTIME, "%s", text);
    atexit(nd_host_cleanup);
    for (size_t i = 0; i < c.nservices; i++)
        if (!nd_lib_add(c.services[i], text, sizeof text))
            dm_die(DM_EXIT_USAGE, "%s", text);

    no.workers = (int)c.workers;
    if ((rc = pc_node_start(&no)) != PC_OK)
        dm_start_failed("can't start the node", rc);
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
        dm_start_failed("can't read the bound endpoint", rc);
    if ((code = nd_start(text, sizeof text)) != 0)
        stop_and_die(code, text);
    dm_started();
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
    dm_stopping();
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
    return failed ? DM_EXIT_RUNTIME : 0;
}
