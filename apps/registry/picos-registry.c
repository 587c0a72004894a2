/* apps/registry/picos-registry.c — the registry daemon: a thin main around
 * pc_registry_start() (registry/server.c).
 *
 *     picos-registry [--config FILE] [--listen EP] [--data-dir DIR]
 *                    [--secret-file F] [--name N] [--heartbeat S]
 *                    [--timeout S] [--grace S] [--max-node-names N]
 *                    [--compact-bytes B]
 *                    [--help]
 *
 * Options come from the INI file's [registry] section first, then the
 * command line, which overrides it. It parses, starts the node and the
 * registry, prints one line on stdout ("picos-registry NAME listening on
 * EP (data DIR, N nodes and M names from the log)"), waits for SIGTERM or
 * SIGINT with sigwait() (both blocked in every thread, so no handler runs
 * inside the runtime), stops the registry (the log synced) and exits 0.
 *
 * Every failure is one line on stderr: a bad command line or config exits
 * 2, a failure to start (data dir, log, secret, port) exits 1. While it
 * starts, the library's ERROR lines are held back and the first one is
 * printed as that line, so nothing says the same thing twice.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "picos/picos.h"
#include "picos/registry_server.h"

#define PROG "picos-registry"
#define EXIT_USAGE 2
#define EXIT_START 1

typedef struct cfg {
    char listen[256], data_dir[256], secret_file[256], name[256];
    double heartbeat, timeout, grace;
    uint64_t compact_bytes, max_node_names;
} cfg;

static const char usage[] =
    "usage: " PROG " [--config FILE] [--listen EP] [--data-dir DIR]\n"
    "                      [--secret-file F] [--name N] [--heartbeat S]\n"
    "                      [--timeout S] [--grace S] [--max-node-names N]\n"
    "                      [--compact-bytes B] [--help]\n"
    "\n"
    "The picos cluster registry: members, names, and their log.\n"
    "  --config FILE       INI file, section [registry]: listen, data_dir,\n"
    "                      secret_file, name, heartbeat, timeout, grace,\n"
    "                      compact_bytes, max_node_names (the command line\n"
    "                      overrides it)\n"
    "  --listen EP         ROUTER endpoint (default " PC_REGISTRY_DEFAULT ")\n"
    "  --data-dir DIR      where registry.log lives (default /var/lib/picos)\n"
    "  --secret-file F     cluster secret (default $PICOS_SECRET_FILE,\n"
    "                      then $PICOS_SECRET)\n"
    "  --name N            node name (default host:pid)\n"
    "  --heartbeat S       link heartbeat, seconds (default 0.2)\n"
    "  --timeout S         silence before a node is down (default 1.0)\n"
    "  --grace S           after a restart, time for the log's members to\n"
    "                      join again (default 3 x timeout + 2)\n"
    "  --max-node-names N  the most names one node may hold (its JOIN is\n"
    "                      refused beyond; default 1000000)\n"
    "  --compact-bytes B   compact the log past B bytes and twice the live\n"
    "                      state (default 64 MiB)\n"
    "Exit status: 0 stopped by SIGTERM/SIGINT, 1 could not start, 2 bad\n"
    "command line or config.\n";

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
bytes(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    if (*s == '-')
        return false;
    v = strtoull(s, &end, 10);
    if (errno || end == s)
        return false;
    if (*end && !end[1] && strchr("kKmMgG", *end))
        v <<= *end == 'k' || *end == 'K'   ? 10
              : *end == 'm' || *end == 'M' ? 20
                                           : 30;
    else if (*end)
        return false;
    *out = v;
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

/* Set option `key` (config spelling: data_dir) to v. 1 set, 0 bad value,
 * -1 unknown key. */
static int
set(cfg *c, const char *key, const char *v)
{
    if (!strcmp(key, "listen"))
        return str(c->listen, sizeof c->listen, v);
    if (!strcmp(key, "data_dir"))
        return str(c->data_dir, sizeof c->data_dir, v);
    if (!strcmp(key, "secret_file"))
        return str(c->secret_file, sizeof c->secret_file, v);
    if (!strcmp(key, "name"))
        return str(c->name, sizeof c->name, v);
    if (!strcmp(key, "heartbeat"))
        return num(v, &c->heartbeat) && c->heartbeat > 0;
    if (!strcmp(key, "timeout"))
        return num(v, &c->timeout) && c->timeout > 0;
    if (!strcmp(key, "grace"))
        return num(v, &c->grace);
    if (!strcmp(key, "compact_bytes"))
        return bytes(v, &c->compact_bytes);
    if (!strcmp(key, "max_node_names"))
        return bytes(v, &c->max_node_names) && c->max_node_names > 0;
    return -1;
}

typedef struct ini_ctx {
    cfg *c;
    char err[512]; /* the first error, without its line */
} ini_ctx;

static int
on_ini(void *user, const char *section, const char *key, const char *value)
{
    ini_ctx *x = user;
    int r;

    if (strcmp(section, "registry")) {
        if (!x->err[0])
            snprintf(x->err, sizeof x->err, "unknown section '%s'", section);
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

static void __attribute__((noreturn, format(printf, 2, 3)))
die(int code, const char *fmt, ...)
{
    va_list ap;

    fputs(PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(code);
}

static void
load_config(cfg *c, const char *path)
{
    ini_ctx x = {.c = c};
    int line = ini_parse(path, on_ini, &x);

    if (line == -1)
        die(EXIT_USAGE, "%s: can't open it: %s", path, strerror(errno));
    if (line == -2)
        die(EXIT_USAGE, "%s: out of memory", path);
    if (line > 0)
        die(EXIT_USAGE, "%s:%d: %s", path, line,
            x.err[0] ? x.err : "syntax error");
}

static void
parse(cfg *c, int argc, char **argv)
{
    static const struct {
        const char *opt, *key;
    } map[] = {{"--listen", "listen"},
               {"--data-dir", "data_dir"},
               {"--secret-file", "secret_file"},
               {"--name", "name"},
               {"--heartbeat", "heartbeat"},
               {"--timeout", "timeout"},
               {"--grace", "grace"},
               {"--max-node-names", "max_node_names"},
               {"--compact-bytes", "compact_bytes"},
               {"--config", NULL}};

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
                die(EXIT_USAGE, "unknown option '%s' (see --help)", a);
            if (eq)
                v = eq + 1;
            else if (i + 1 < argc)
                v = argv[++i];
            else
                die(EXIT_USAGE, "%s needs a value", map[k].opt);
            if (!map[k].key) {
                if (pass == 0)
                    load_config(c, v);
            } else if (pass == 1 && set(c, map[k].key, v) != 1)
                die(EXIT_USAGE, "%s: bad value '%s'", map[k].opt, v);
        }
}

/* ---- logging ------------------------------------------------------------------- */

static atomic_bool starting = true;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char first_error[1024];

/* While starting, the first ERROR is kept for the one failure line; the
 * rest goes to stderr as one line each. */
static void
sink(pc_log_level level, const char *module, const char *text, void *user)
{
    (void)user;
    pthread_mutex_lock(&log_mu);
    if (atomic_load(&starting) && level >= PC_LOG_LEVEL_ERROR) {
        if (!first_error[0])
            snprintf(first_error, sizeof first_error, "%s", text);
    } else
        fprintf(stderr, PROG " %s [%s] %s\n", pc_log_level_name(level), module,
                text);
    pthread_mutex_unlock(&log_mu);
}

static void __attribute__((noreturn)) start_failed(const char *what, pc_err rc)
{
    pthread_mutex_lock(&log_mu);
    if (first_error[0])
        die(EXIT_START, "%s", first_error);
    die(EXIT_START, "%s: %s", what, pc_strerror(rc));
}

/* ---- main ----------------------------------------------------------------------- */

int
main(int argc, char **argv)
{
    cfg c = {.listen = PC_REGISTRY_DEFAULT, .data_dir = "/var/lib/picos"};
    pc_registry_opts o = {0};
    pc_node_opts no = {.workers = 2};
    char bound[PC_ENDPOINT_MAX + 1];
    size_t nodes = 0, names = 0;
    char me[300];
    sigset_t sigs;
    int sig = 0;
    pc_err rc;

    parse(&c, argc, argv);
    /* blocked before any thread starts, so every thread inherits it */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    pc_log_set_sink(sink, NULL);

    o.listen = c.listen;
    o.data_dir = c.data_dir;
    o.net.name = c.name[0] ? c.name : NULL;
    o.net.secret_file = c.secret_file[0] ? c.secret_file : NULL;
    o.net.heartbeat = c.heartbeat;
    o.net.timeout = c.timeout;
    o.grace = c.grace;
    o.compact_bytes = c.compact_bytes;
    o.max_node_names = (size_t)c.max_node_names;
    if ((rc = pc_node_start(&no)) != PC_OK)
        start_failed("can't start the node", rc);
    if ((rc = pc_registry_start(&o, bound, sizeof bound)) != PC_OK)
        start_failed("can't start the registry", rc);
    atomic_store(&starting, false);
    pc_registry_replayed(&nodes, &names);
    if (c.name[0])
        snprintf(me, sizeof me, "%s", c.name);
    else { /* the transport's default name */
        char host[256] = "";
        gethostname(host, sizeof host - 1);
        snprintf(me, sizeof me, "%s:%d", host, (int)getpid());
    }
    printf(PROG " %s listening on %s (data %s, %zu nodes and %zu names from "
                "the log)\n",
           me, bound, c.data_dir, nodes, names);
    fflush(stdout);

    while (sigwait(&sigs, &sig) != 0)
        ;
    if ((rc = pc_registry_stop(10.0)) != PC_OK)
        fprintf(stderr, PROG ": stop: %s\n", pc_strerror(rc));
    pc_node_stop();
    pc_node_run();
    return rc == PC_OK ? 0 : EXIT_START;
}
