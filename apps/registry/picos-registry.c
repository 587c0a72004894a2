/* apps/registry/picos-registry.c — the registry daemon: a thin main around
 * pc_registry_start() (registry/server.c).
 *
 *     picos-registry [--config FILE] [--listen EP] [--data-dir DIR]
 *                    [--secret-file F] [--name N] [--heartbeat S]
 *                    [--timeout S] [--grace S] [--max-node-names N]
 *                    [--compact-bytes B] [--http ADDR:PORT]
 *                    [--http-token-file F] [--http-cert PEM --http-key PEM]
 *                    [--help]
 *
 * Options come from the INI file's [registry] section first, then the
 * command line, which overrides it. It parses, starts the node and the
 * registry, prints one line on stdout ("picos-registry NAME listening on
 * EP (data DIR, N nodes and M names from the log)", and with --http
 * "..., http http://ADDR:PORT/" after it), waits for SIGTERM or
 * SIGINT with sigwait() (both blocked in every thread, so no handler runs
 * inside the runtime), stops the registry (the log synced) and exits 0.
 *
 * Every failure is one line on stderr: a bad command line or config exits
 * 2 (so does an --http token file, certificate or key that does not
 * load: they are checked before anything starts), a failure to start (data dir,
 * log, secret, port) exits 1. While it starts, the library's ERROR lines are
 * held back and the first one is printed as that line, so nothing says the same
 * thing twice. The shell it shares with picos-node (options, config, log,
 * signals) is apps/common/daemon.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/picos.h"
#include "picos/registry_server.h"

#include "api.h"
#include "daemon.h"
#include "statusdb.h"

#define PROG "picos-registry"

typedef struct cfg {
    char listen[256], data_dir[256], secret_file[256], name[256];
    char http[256], http_token_file[256], http_cert[256], http_key[256];
    double heartbeat, timeout, grace;
    uint64_t compact_bytes, max_node_names;
} cfg;

static const char usage[] =
    "usage: " PROG " [--config FILE] [--listen EP] [--data-dir DIR]\n"
    "                      [--secret-file F] [--name N] [--heartbeat S]\n"
    "                      [--timeout S] [--grace S] [--max-node-names N]\n"
    "                      [--compact-bytes B] [--http ADDR:PORT]\n"
    "                      [--http-token-file F] [--http-cert PEM]\n"
    "                      [--http-key PEM] [--help]\n"
    "\n"
    "The picos cluster registry: members, names, and their log.\n"
    "  --config FILE       INI file, section [registry]: listen, data_dir,\n"
    "                      secret_file, name, heartbeat, timeout, grace,\n"
    "                      compact_bytes, max_node_names, http,\n"
    "                      http_token_file, http_cert, http_key (the\n"
    "                      command line overrides it)\n"
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
    "  --http ADDR:PORT    serve the monitoring API, /metrics and the\n"
    "                      dashboard there (off unless given; port 0: any)\n"
    "  --http-token-file F the bearer token of the actions (first line,\n"
    "                      >= 16 characters, mode 0600; without: no actions)\n"
    "  --http-cert PEM, --http-key PEM\n"
    "                      HTTPS only, with this certificate and key\n"
    "Exit status: 0 stopped by SIGTERM/SIGINT, 1 could not start, 2 bad\n"
    "command line or config.\n";

/* ---- options ------------------------------------------------------------------ */

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

/* dm_set_fn: option `key` (config spelling: data_dir) to v. */
static int
set(void *cfgp, const char *key, const char *v)
{
    cfg *c = cfgp;

    if (!strcmp(key, "listen"))
        return dm_str(c->listen, sizeof c->listen, v);
    if (!strcmp(key, "data_dir"))
        return dm_str(c->data_dir, sizeof c->data_dir, v);
    if (!strcmp(key, "secret_file"))
        return dm_str(c->secret_file, sizeof c->secret_file, v);
    if (!strcmp(key, "name"))
        return dm_str(c->name, sizeof c->name, v);
    if (!strcmp(key, "heartbeat"))
        return dm_num(v, &c->heartbeat) && c->heartbeat > 0;
    if (!strcmp(key, "timeout"))
        return dm_num(v, &c->timeout) && c->timeout > 0;
    if (!strcmp(key, "grace"))
        return dm_num(v, &c->grace);
    if (!strcmp(key, "http"))
        return dm_str(c->http, sizeof c->http, v);
    if (!strcmp(key, "http_token_file"))
        return dm_str(c->http_token_file, sizeof c->http_token_file, v);
    if (!strcmp(key, "http_cert"))
        return dm_str(c->http_cert, sizeof c->http_cert, v);
    if (!strcmp(key, "http_key"))
        return dm_str(c->http_key, sizeof c->http_key, v);
    if (!strcmp(key, "compact_bytes"))
        return bytes(v, &c->compact_bytes);
    if (!strcmp(key, "max_node_names"))
        return bytes(v, &c->max_node_names) && c->max_node_names > 0;
    return -1;
}

static void
load_config(void *c, const char *path)
{
    static const dm_config d = {.section = "registry", .set = set};
    char err[1200];

    if (!dm_config_read(&d, c, path, err, sizeof err))
        dm_die(DM_EXIT_USAGE, "%s", err);
}

static void
parse(cfg *c, int argc, char **argv)
{
    static const dm_opt map[] = {{"--listen", "listen"},
                                 {"--data-dir", "data_dir"},
                                 {"--secret-file", "secret_file"},
                                 {"--name", "name"},
                                 {"--heartbeat", "heartbeat"},
                                 {"--timeout", "timeout"},
                                 {"--grace", "grace"},
                                 {"--max-node-names", "max_node_names"},
                                 {"--compact-bytes", "compact_bytes"},
                                 {"--http", "http"},
                                 {"--http-token-file", "http_token_file"},
                                 {"--http-cert", "http_cert"},
                                 {"--http-key", "http_key"},
                                 {"--config", NULL}};

    dm_parse(argc, argv, map, sizeof map / sizeof map[0], usage, load_config,
             set, c);
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
    char me[300], url[320] = "", herr[600];
    pc__api_opts ho = {0};
    sigset_t sigs;
    int sig = 0;
    pc_err rc;

    dm_init(PROG);
    parse(&c, argc, argv);
    if (!c.http[0] && (c.http_token_file[0] || c.http_cert[0] || c.http_key[0]))
        dm_die(DM_EXIT_USAGE, "--http-token-file, --http-cert and --http-key "
                              "need --http");
    ho.listen = c.http;
    ho.token_file = c.http_token_file[0] ? c.http_token_file : NULL;
    ho.cert_file = c.http_cert[0] ? c.http_cert : NULL;
    ho.key_file = c.http_key[0] ? c.http_key : NULL;
    dm_start(&sigs, 0, false);
    if (c.http[0] && pc__api_check(&ho, herr, sizeof herr) != PC_OK)
        dm_die(DM_EXIT_USAGE, "%s", herr);

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
        dm_start_failed("can't start the node", rc);
    if ((rc = pc_registry_start(&o, bound, sizeof bound)) != PC_OK)
        dm_start_failed("can't start the registry", rc);
    if (c.http[0]) {
        ho.db = pc__registry_statusdb();
        if ((rc = pc__api_start(&ho, url, sizeof url)) != PC_OK)
            dm_start_failed("can't serve http", rc);
    }
    dm_started();
    pc_registry_replayed(&nodes, &names);
    dm_name(c.name, me, sizeof me);
    printf(PROG " %s listening on %s (data %s, %zu nodes and %zu names from "
                "the log)%s%s\n",
           me, bound, c.data_dir, nodes, names, url[0] ? ", http " : "", url);
    fflush(stdout);

    while (sigwait(&sigs, &sig) != 0)
        ;
    pc__api_stop(5.0);
    if ((rc = pc_registry_stop(10.0)) != PC_OK)
        fprintf(stderr, PROG ": stop: %s\n", pc_strerror(rc));
    pc_node_stop();
    pc_node_run();
    return rc == PC_OK ? 0 : DM_EXIT_RUNTIME;
}
