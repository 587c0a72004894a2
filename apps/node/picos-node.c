/* apps/node/picos-node.c — the node daemon: joins registries and hosts
 * services from shared libraries (host.c does the hosting; docs/node.md
 * is the manual).
 *
 *     picos-node [--config FILE] [--registry EP[,EP]] [--listen EP]
 *                [--secret-file F] [--name N] [--grace S] [--workers N]
 *                [--link-worker I|thread]
 *                [--heartbeat S] [--timeout S] [--join-timeout S]
 *                [--service PATH.so ...] [--compute [--cpus N]
 *                [--data-dir DIR] [--compute-memory BYTES] ...] [--help]
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
 *
 * With --compute the node also takes computations (docs/computations.md):
 * pc_compute_serve() after the join, with picos-worker from this
 * program's own directory (or --compute-worker), its summary on the
 * startup line; at the stop pc_compute_serve_stop() gets the same grace
 * as the services, both closing at once (the compute stop in a task of
 * its own, joined beside the control task).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "picos/compute.h"
#include "picos/picos.h"
#include "picos/registry.h"

#include "node.h"

typedef struct cfg {
    char registry[1024], listen[256], secret_file[256], name[256];
    double grace, heartbeat, timeout, join_timeout, status_interval;
    double workers;
    int link_worker; /* pc_net_opts.link_worker: 0 not given */
    char **services; /* library paths */
    size_t nservices;
    nd_kv *sections;   /* [service "NAME"] keys */
    bool cli_services; /* a --service seen: the file's list is replaced */
    /* --compute */
    bool compute, seccomp_off;
    double cpus, uid_base, cpu_seconds;
    double memory, memory_max; /* bytes */
    char data_dir[PATH_MAX], worker[PATH_MAX];
} cfg;

static const char usage[] =
    "usage: " ND_PROG " [--config FILE] [--registry EP[,EP...]] [--listen EP]\n"
    "                  [--secret-file F] [--name N] [--grace S] [--workers N]\n"
    "                  [--link-worker I|thread] [--heartbeat S] [--timeout S] "
    "[--join-timeout S]\n"
    "                  [--status-interval S]\n"
    "                  [--service PATH.so ...] [--compute] [--cpus N]\n"
    "                  [--data-dir DIR] [--compute-memory BYTES]\n"
    "                  [--compute-memory-max BYTES] [--compute-uid-base UID]\n"
    "                  [--compute-seccomp on|off] [--compute-cpu-seconds S]\n"
    "                  [--compute-worker PATH] [--help]\n"
    "\n"
    "A picos node that joins the registries and hosts the services of shared\n"
    "libraries (picos/service.h; docs/node.md), and with --compute runs\n"
    "computations (docs/computations.md).\n"
    "  --config FILE       INI file: section [node] with the keys registry,\n"
    "                      listen, secret_file, name, grace, workers,\n"
    "                      link_worker, heartbeat, timeout, join_timeout,\n"
    "                      status_interval, service (repeated, or one path\n"
    "                      per line); sections\n"
    "                      [service \"NAME\"] hold the keys of library NAME\n"
    "                      (file name without lib and .so),\n"
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
    "  --link-worker I     links on worker I's loop (docs/node.md); thread:\n"
    "                      their own thread (default)\n"
    "  --heartbeat S       link heartbeat, seconds (default 0.2)\n"
    "  --timeout S         silence before a peer is down (default 1.0)\n"
    "  --join-timeout S    wait for a registry at startup (default 10)\n"
    "  --status-interval S how often the node reports its status to the\n"
    "                      registries (default 1; negative: never)\n"
    "  --service PATH.so   a service library (repeatable; one is required\n"
    "                      without --compute)\n"
    "  --compute           take computations (picos/compute.h); the keys\n"
    "                      below are also [node] keys (compute = on, cpus,\n"
    "                      data_dir, compute_memory, ...)\n"
    "  --cpus N            worker processes, all clients (default: the CPUs)\n"
    "  --data-dir DIR      libraries, data files, scratch dirs (DIR/compute/;\n"
    "                      default /var/lib/picos/NAME as root, else\n"
    "                      $HOME/.local/share/picos/NAME)\n"
    "  --compute-memory BYTES      a worker's default address-space limit\n"
    "                      (default 1G; K, M, G suffixes are powers of 1024)\n"
    "  --compute-memory-max BYTES  the most a client may ask (default 4G)\n"
    "  --compute-uid-base UID      as root: computation k runs as uid and gid\n"
    "                      UID + k (default 200000)\n"
    "  --compute-seccomp on|off    the workers' seccomp filter (default on)\n"
    "  --compute-cpu-seconds S     a worker's CPU time limit (default none)\n"
    "  --compute-worker PATH       picos-worker (default: the one beside\n"
    "                      picos-node)\n"
    "SIGHUP (or picos reload NODE) reloads the libraries: new calls run the\n"
    "new code, calls in flight finish on the old. SIGTERM/SIGINT stop.\n"
    "Exit status: 0 stopped by SIGTERM/SIGINT, 1 runtime failure (no\n"
    "registry, wrong secret, a name taken, a close that failed, a data dir\n"
    "that can't be used), 2 bad command line, config or library, or no\n"
    "picos-worker.\n";

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

/* "on"/"off" (and yes/no, true/false, 1/0) into *out. */
static bool
on_off(const char *v, bool *out)
{
    if (!strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true") ||
        !strcmp(v, "1"))
        return (*out = true);
    if (!strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "false") ||
        !strcmp(v, "0"))
        return !(*out = false);
    return false;
}

/* A whole number in [lo, hi] into *out. */
static bool
whole(const char *v, double lo, double hi, double *out)
{
    char *end;
    unsigned long long n;

    errno = 0;
    n = strtoull(v, &end, 10);
    if (errno || end == v || *end || *v == '-' || (double)n < lo ||
        (double)n > hi)
        return false;
    *out = (double)n;
    return true;
}

/* Bytes, with an optional K, M, G or T suffix (powers of 1024), at least
 * 1 MiB. */
static bool
bytes(const char *v, double *out)
{
    char *end;
    unsigned long long n;
    double mul = 1;

    errno = 0;
    n = strtoull(v, &end, 10);
    if (errno || end == v || *v == '-')
        return false;
    if (*end) {
        const char *u = strchr("KMGT", *end == 'k' ? 'K' : *end);
        if (!u || !*u ||
            (end[1] && strcmp(end + 1, "iB") && strcmp(end + 1, "B")))
            return false;
        for (const char *p = "KMGT"; p <= u; p++)
            mul *= 1024;
    }
    *out = (double)n * mul;
    return *out >= (1 << 20) && *out <= 1e15;
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
    if (!strcmp(key, "link_worker")) {
        double i;
        if (!strcmp(v, "thread")) {
            c->link_worker = PC_NET_LINK_THREAD;
            return true;
        }
        if (!dm_num(v, &i) || i < 0 || i >= 1024 || i != (int)i)
            return false;
        c->link_worker = PC_WORKER((int)i);
        return true;
    }
    if (!strcmp(key, "heartbeat"))
        return dm_num(v, &c->heartbeat) && c->heartbeat > 0;
    if (!strcmp(key, "timeout"))
        return dm_num(v, &c->timeout) && c->timeout > 0;
    if (!strcmp(key, "join_timeout"))
        return dm_num(v, &c->join_timeout) && c->join_timeout > 0;
    if (!strcmp(key, "status_interval")) { /* negative: never */
        bool neg = *v == '-';
        if (!dm_num(v + neg, &c->status_interval))
            return false;
        if (neg)
            c->status_interval = -c->status_interval;
        return true;
    }
    if (!strcmp(key, "service"))
        return add_path(c, v);
    if (!strcmp(key, "compute"))
        return on_off(v, &c->compute);
    if (!strcmp(key, "cpus"))
        return whole(v, 1, 4096, &c->cpus);
    if (!strcmp(key, "data_dir"))
        return dm_str(c->data_dir, sizeof c->data_dir, v);
    if (!strcmp(key, "compute_memory"))
        return bytes(v, &c->memory);
    if (!strcmp(key, "compute_memory_max"))
        return bytes(v, &c->memory_max);
    if (!strcmp(key, "compute_uid_base"))
        return whole(v, 1, 4000000000.0, &c->uid_base);
    if (!strcmp(key, "compute_seccomp")) {
        bool on;
        if (!on_off(v, &on))
            return false;
        c->seccomp_off = !on;
        return true;
    }
    if (!strcmp(key, "compute_cpu_seconds"))
        return dm_num(v, &c->cpu_seconds);
    if (!strcmp(key, "compute_worker"))
        return dm_str(c->worker, sizeof c->worker, v);
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
    static const dm_opt map[] = {
        {"--registry", "registry"},
        {"--listen", "listen"},
        {"--secret-file", "secret_file"},
        {"--name", "name"},
        {"--grace", "grace"},
        {"--workers", "workers"},
        {"--link-worker", "link_worker"},
        {"--heartbeat", "heartbeat"},
        {"--timeout", "timeout"},
        {"--join-timeout", "join_timeout"},
        {"--status-interval", "status_interval"},
        {"--service", "service"},
        {"--compute", "+compute"},
        {"--cpus", "cpus"},
        {"--data-dir", "data_dir"},
        {"--compute-memory", "compute_memory"},
        {"--compute-memory-max", "compute_memory_max"},
        {"--compute-uid-base", "compute_uid_base"},
        {"--compute-seccomp", "compute_seccomp"},
        {"--compute-cpu-seconds", "compute_cpu_seconds"},
        {"--compute-worker", "compute_worker"},
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

/* ---- computations ---------------------------------------------------------------- */

/* --compute's checks before the node starts (exit 2): picos-worker and
 * the limits; the data dir's default. */
static void
compute_check(cfg *c, const char *me)
{
    char exe[PATH_MAX];
    ssize_t n;

    if (!c->worker[0]) {
        char *slash;
        n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n <= 0)
            dm_die(DM_EXIT_USAGE, "--compute: can't read /proc/self/exe: %s",
                   strerror(errno));
        exe[n] = '\0';
        if ((slash = strrchr(exe, '/')))
            *slash = '\0';
        snprintf(c->worker, sizeof c->worker, "%.4000s/picos-worker", exe);
    }
    if (access(c->worker, X_OK) != 0)
        dm_die(DM_EXIT_USAGE,
               "--compute: no picos-worker at %s (%s): install it beside "
               "picos-node, or give --compute-worker",
               c->worker, strerror(errno));
    if (c->memory && c->memory_max && c->memory > c->memory_max)
        dm_die(DM_EXIT_USAGE,
               "--compute-memory (%.0f MiB) is above --compute-memory-max "
               "(%.0f MiB)",
               c->memory / 1048576, c->memory_max / 1048576);
    if (!c->data_dir[0]) {
        const char *home = getenv("HOME");
        if (geteuid() == 0)
            snprintf(c->data_dir, sizeof c->data_dir, "/var/lib/picos/%s", me);
        else if (home && *home)
            snprintf(c->data_dir, sizeof c->data_dir,
                     "%.3000s/.local/share/picos/%s", home, me);
        else
            dm_die(DM_EXIT_USAGE, "--compute: no --data-dir and no $HOME");
    }
}

static pc_compute_server *compute_srv;
static double compute_grace;

static pc_ref compute_stopper;

/* The compute stop has ended (failed set when it did not in time). */
static bool
compute_stopped(bool *failed)
{
    pc_err rc;

    if (pc_ref_is_nil(compute_stopper))
        return true;
    if ((rc = pc_task_join(compute_stopper, 0.2, NULL)) == PC_ETIMEDOUT)
        return false;
    if (rc != PC_OK)
        *failed = true;
    compute_stopper = (pc_ref){0};
    return true;
}

static pc_msg *
compute_stop_task(void *arg)
{
    (void)arg;
    if (pc_compute_serve_stop(&compute_srv, compute_grace) != PC_OK)
        pc_exit_error("computations did not end in time");
    return NULL;
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
    if (!c.nservices && !c.compute)
        dm_die(DM_EXIT_USAGE, "no service library: give --service PATH.so (or "
                              "service = PATH in [node] of --config), or "
                              "--compute");
    dm_name(c.name, me, sizeof me); /* spelled out for the control task */
    if (c.compute)
        compute_check(&c, me);
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
    co.net.link_worker = c.link_worker;
    co.registries = c.registry;
    co.listen = c.listen;
    co.join_timeout = c.join_timeout;
    co.register_timeout = c.join_timeout;
    co.status_interval = c.status_interval;        /* 0: 1 s */
    co.status_dir = c.compute ? c.data_dir : NULL; /* its disk: the jobs' */
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
    if (!c.nservices)
        text[0] = '\0';
    if (c.compute) {
        pc_compute_serve_opts so = {.name = me,
                                    .cpus = (int)c.cpus,
                                    .data_dir = c.data_dir,
                                    .worker = c.worker,
                                    .memory = (size_t)c.memory,
                                    .memory_max = (size_t)c.memory_max,
                                    .cpu_seconds = c.cpu_seconds,
                                    .uid_base = (unsigned)c.uid_base,
                                    .no_seccomp = c.seccomp_off};
        char what[1024], line[1200];
        size_t n = strlen(text);
        rc = pc_compute_serve(&so, what, sizeof what, &compute_srv);
        if (rc != PC_OK) {
            snprintf(line, sizeof line, "--compute: %s",
                     what[0] ? what : pc_strerror(rc));
            stop_and_die(rc == PC_EINVAL ? DM_EXIT_USAGE : DM_EXIT_RUNTIME,
                         line);
        }
        snprintf(text + n, sizeof text - n, "%scompute: %s", n ? "; " : "",
                 what);
    }
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
    if (compute_srv) {
        pc_spawn_opts so = {.flags = PC_TASK_JOINABLE, .name = "compute.stop"};
        compute_grace = c.grace;
        if (pc_spawn(compute_stop_task, NULL, &so, &compute_stopper) != PC_OK)
            (void)pc_compute_serve_stop(&compute_srv, c.grace);
    }
    while (!nd_stop_wait(0.2, &failed) || !compute_stopped(&failed)) {
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
