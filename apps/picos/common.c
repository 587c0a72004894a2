/* apps/picos/common.c — options, errors, joining the cluster and output
 * for every `picos` subcommand.
 *
 * The CLI is a short-lived picos node: one worker, no listening socket
 * (pc_cluster_opts.listen = ""), joined to the registries only for as long
 * as one command takes. Its own words are the only thing on stderr: picos
 * logs through a sink that keeps the last warning (so a failure's one line
 * can quote the library, e.g. what is wrong with a secret file) and prints
 * nothing unless $PICOS_LOG asks for the log. The secret or key file is
 * read here before the node starts, for the same reason: its error becomes
 * one line of ours instead of a log record and a generic start failure.
 * Tables are built whole, then printed with each column as wide as its
 * widest cell; JSON goes through jansson.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "picos/log.h"
#include "picos/net.h"
#include "picos/node.h"
#include "picos/registry.h"

#include "cli.h"

cli_globals cli = {.timeout = 5.0};

/* ---- errors and the log ------------------------------------------------------- */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_last[512];
static bool log_print;

static void
log_sink(pc_log_level level, const char *module, const char *text, void *u)
{
    (void)u;
    if (log_print)
        fprintf(stderr, "picos: [%s] %s\n", module, text);
    if (level < PC_LOG_LEVEL_WARN)
        return;
    pthread_mutex_lock(&log_mu);
    snprintf(log_last, sizeof log_last, "%s", text);
    pthread_mutex_unlock(&log_mu);
}

void
cli_log_init(void)
{
    const char *e = getenv("PICOS_LOG");

    log_print = e && *e;
    pc_log_set_sink(log_sink, NULL);
}

const char *
cli_last_log(void)
{
    /* Read after the node stopped or from the thread that made the
     * call that logged; the copy is for the odd late writer. */
    static char copy[sizeof log_last];

    pthread_mutex_lock(&log_mu);
    memcpy(copy, log_last, sizeof copy);
    pthread_mutex_unlock(&log_mu);
    return copy;
}

static void
vline(const char *fmt, va_list ap, const char *tail)
{
    char buf[1024];

    vsnprintf(buf, sizeof buf, fmt, ap);
    /* One line, whatever a library string held. */
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    fprintf(stderr, "picos: %s%s\n", buf, tail);
}

int
cli_fail(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vline(fmt, ap, "");
    va_end(ap);
    return CLI_FAILED;
}

int
cli_usage(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vline(fmt, ap, " (see picos --help)");
    va_end(ap);
    return CLI_USAGE;
}

/* "registry tcp://a" or "registries tcp://a, tcp://b". */
static const char *
registries_text(void)
{
    static char buf[1024];
    const char *r = cli.registries;
    size_t n = 0;

    n += (size_t)snprintf(buf, sizeof buf, "%s ",
                          strchr(r, ',') ? "registries" : "registry");
    for (; *r && n + 3 < sizeof buf; r++) {
        buf[n++] = *r;
        if (*r == ',')
            buf[n++] = ' ';
    }
    buf[n] = '\0';
    return buf;
}

int
cli_fail_rc(const char *what, pc_err rc)
{
    const char *log = cli_last_log();

    switch (rc) {
    case PC_EUNREACH:
        return cli_fail("%s: unreachable (is picos-registry running?)",
                        registries_text());
    case PC_ETIMEDOUT:
        return cli_fail("%s: no answer within %g s (%s)", registries_text(),
                        cli.timeout, what);
    case PC_EAUTH:
        return cli_fail("%s refused our key: wrong cluster secret?",
                        registries_text());
    default:
        if (*log)
            return cli_fail("%s: %s (%s)", what, pc_strerror(rc), log);
        return cli_fail("%s: %s", what, pc_strerror(rc));
    }
}

/* ---- options ------------------------------------------------------------------ */

void
cli_help(const cli_cmd *cmd, FILE *f)
{
    if (cmd) {
        fprintf(f, "usage: picos [OPTIONS] %s %s\n\n%s\n%s", cmd->name,
                cmd->args, cmd->summary, cmd->help);
        fprintf(f, "\nOPTIONS are the global ones (picos --help); they may "
                   "also follow the command.\n");
        return;
    }
    fprintf(f, "usage: picos [OPTIONS] COMMAND [ARGS...]\n\n"
               "The picos cluster from the command line: what the registry "
               "knows, its services, and keys.\n\nCommands:\n");
    for (const cli_cmd *const *c = cli_cmds; *c; c++)
        fprintf(f, "  %-8s %s\n", (*c)->name, (*c)->summary);
    fprintf(
        f,
        "\nOptions:\n"
        "  --registry EP[,EP...]  registry endpoints (default: "
        "$PICOS_REGISTRY,\n"
        "                         else " PC_REGISTRY_DEFAULT ")\n"
        "  --secret-file FILE     the cluster secret (default: "
        "$PICOS_SECRET_FILE,\n"
        "                         else $PICOS_SECRET)\n"
        "  --key-file FILE        the cluster's key pair file (picos keygen) "
        "instead\n"
        "                         of a secret\n"
        "  --timeout S            seconds to wait for a registry (default "
        "5)\n"
        "  --json                 JSON instead of tables\n"
        "  -h, --help             this help; picos COMMAND --help for a "
        "command\n"
        "\nExit status: 0 done, 1 failed (registry unreachable, timed out, "
        "key\nrefused), 2 usage error, 3 not found. $PICOS_LOG=info shows "
        "picos's log.\n");
}

/* `--name VALUE` or `--name=VALUE`: 1 matched (value in *v), 0 not this
 * option, -1 matched but the value is missing. */
static int
optval(const char *name, int argc, char **argv, int *i, const char **v)
{
    const char *a = argv[*i];
    size_t n = strlen(name);

    if (strncmp(a, name, n))
        return 0;
    if (a[n] == '=') {
        *v = a + n + 1;
        return 1;
    }
    if (a[n])
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *v = argv[++*i];
    return 1;
}

int
cli_value_opt(const char *name, int argc, char **argv, int *i, const char **v)
{
    size_t n = strlen(name);

    if (strncmp(argv[*i], name, n) || (argv[*i][n] && argv[*i][n] != '='))
        return 0;
    if (argv[*i][n] == '=') {
        *v = argv[*i] + n + 1;
        return 1;
    }
    if (*i + 1 >= argc)
        return -1;
    *v = argv[++*i];
    return 1;
}

bool
cli_opt(const cli_cmd *cmd, int argc, char **argv, int *i, int *exit_now)
{
    static const char *const names[] = {"--registry", "--secret-file",
                                        "--key-file", "--timeout"};
    const char *a = argv[*i], *v = NULL;

    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
        cli_help(cmd, stdout);
        *exit_now = CLI_OK;
        return true;
    }
    if (!strcmp(a, "--json")) {
        cli.json = true;
        return true;
    }
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        int r = optval(names[k], argc, argv, i, &v);
        char *end;
        double t;

        if (r == 0)
            continue;
        if (r < 0 || !*v) {
            *exit_now = cli_usage("option %s needs a value", names[k]);
            return true;
        }
        switch (k) {
        case 0:
            cli.registries = v;
            break;
        case 1:
            cli.secret_file = v;
            break;
        case 2:
            cli.key_file = v;
            break;
        default:
            t = strtod(v, &end);
            if (end == v || *end || !isfinite(t) || t <= 0 || t > 1e6) {
                *exit_now = cli_usage("--timeout '%s': not a number of "
                                      "seconds > 0",
                                      v);
                return true;
            }
            cli.timeout = t;
        }
        return true;
    }
    return false;
}

size_t
cli_endpoints(char *buf, size_t size, const char **eps, size_t max)
{
    size_t n = 0;
    char *save = NULL;

    snprintf(buf, size, "%s", cli.registries);
    for (char *t = strtok_r(buf, ", ", &save); t && n < max;
         t = strtok_r(NULL, ", ", &save))
        eps[n++] = t;
    return n;
}

/* ---- the cluster -------------------------------------------------------------- */

static pc_curve_keys keys;

/* The cluster's key pair from --key-file, else the secret. */
static int
load_keys(void)
{
    char secret[PC_SECRET_MAX];
    size_t len = 0;
    pc_err rc;

    if (cli.key_file) {
        if ((rc = pc_curve_read(cli.key_file, &keys)) == PC_OK)
            return CLI_OK;
        if (*cli_last_log())
            return cli_fail("%s", cli_last_log());
        return cli_fail("key file %s: %s", cli.key_file, pc_strerror(rc));
    }
    rc = pc_secret_load(cli.secret_file, secret, sizeof secret, &len);
    if (rc == PC_OK)
        rc = pc_curve_from_secret(secret, len, &keys);
    explicit_bzero(secret, sizeof secret);
    if (rc == PC_OK)
        return CLI_OK;
    if (rc == PC_ENOENT && !cli.secret_file)
        return cli_fail("no cluster secret: give --secret-file FILE or "
                        "--key-file FILE, or set PICOS_SECRET_FILE or "
                        "PICOS_SECRET");
    if (*cli_last_log())
        return cli_fail("%s", cli_last_log());
    return cli_fail("cluster secret: %s", pc_strerror(rc));
}

int
cli_join(void)
{
    pc_cluster_opts o;
    char name[64];
    pc_err rc;
    int st;

    if ((st = load_keys()) != CLI_OK)
        return st;
    memset(&o, 0, sizeof o);
    snprintf(name, sizeof name, CLI_NODE_PREFIX "%ld", (long)getpid());
    o.node.workers = 1;
    o.net.name = name;
    o.net.keys = &keys;
    o.registries = cli.registries;
    o.listen = ""; /* a client only: nobody needs to reach us */
    o.join_timeout = cli.timeout;
    o.register_timeout = cli.timeout;
    o.status_interval = -1; /* a passing client: nothing to monitor */
    /* pc_node_start + pc_cluster_join rather than pc_cluster_start: after
     * a failed join the node is still there to ask whether a handshake
     * failed. The transport reports PC_EAUTH only when its connect gives
     * up, which can be later than our join's deadline; its counter knows
     * at once. */
    rc = pc_node_start(&o.node);
    if (rc == PC_OK && (rc = pc_cluster_join(&o)) != PC_OK) {
        pc_net_stats ns;
        if ((rc == PC_EUNREACH || rc == PC_ETIMEDOUT) &&
            pc_net_stats_get(&ns) == PC_OK && ns.auth_failed > 0)
            rc = PC_EAUTH;
        cli_leave();
    }
    explicit_bzero(&keys, sizeof keys);
    if (rc == PC_OK)
        return CLI_OK;
    if (rc == PC_EINVAL)
        return cli_usage("bad registry endpoint in '%s'", cli.registries);
    return cli_fail_rc("joining", rc);
}

void
cli_leave(void)
{
    pc_node_stop();
    pc_node_run();
}

/* ---- output -------------------------------------------------------------------- */

#define TABLE_COLS 16

struct cli_table {
    size_t cols, rows, cap;
    char **cells; /* rows * cols, row 0 the header */
    bool failed;  /* a row could not be added */
};

cli_table *
cli_table_new(size_t cols, const char *const *header)
{
    cli_table *t = cols <= TABLE_COLS ? calloc(1, sizeof *t) : NULL;

    if (!t)
        return NULL;
    t->cols = cols;
    if (!cli_table_row(t, header)) {
        cli_table_free(t);
        return NULL;
    }
    return t;
}

bool
cli_table_row(cli_table *t, const char *const *cells)
{
    if (t->rows == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 16;
        char **c = realloc(t->cells, cap * t->cols * sizeof *c);
        if (!c) {
            t->failed = true;
            return false;
        }
        t->cells = c;
        t->cap = cap;
    }
    for (size_t k = 0; k < t->cols; k++) {
        char *s = strdup(cells[k] ? cells[k] : "-");
        if (!s) {
            while (k--)
                free(t->cells[t->rows * t->cols + k]);
            t->failed = true;
            return false;
        }
        t->cells[t->rows * t->cols + k] = s;
    }
    t->rows++;
    return true;
}

void
cli_table_print(const cli_table *t, FILE *f)
{
    size_t w[TABLE_COLS] = {0};

    for (size_t r = 0; r < t->rows; r++)
        for (size_t k = 0; k < t->cols; k++) {
            size_t n = strlen(t->cells[r * t->cols + k]);
            if (n > w[k])
                w[k] = n;
        }
    for (size_t r = 0; r < t->rows; r++) {
        for (size_t k = 0; k < t->cols; k++) {
            const char *s = t->cells[r * t->cols + k];
            if (k + 1 < t->cols)
                fprintf(f, "%-*s  ", (int)w[k], s);
            else
                fprintf(f, "%s\n", s);
        }
    }
}

size_t
cli_table_rows(const cli_table *t)
{
    return t->rows;
}

size_t
cli_table_cols(const cli_table *t)
{
    return t->cols;
}

const char *
cli_table_cell(const cli_table *t, size_t r, size_t k)
{
    return t->cells[r * t->cols + k];
}

void
cli_table_free(cli_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->rows * t->cols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}

int
cli_table_finish(cli_table *t)
{
    bool failed = t->failed;

    if (!failed)
        cli_table_print(t, stdout);
    cli_table_free(t);
    return failed ? cli_fail("out of memory") : CLI_OK;
}

int
cli_json_print(json_t *j)
{
    int rc;

    if (!j)
        return cli_fail("out of memory building JSON");
    rc = json_dumpf(j, stdout, JSON_INDENT(2));
    json_decref(j);
    if (rc != 0 || putchar('\n') == EOF)
        return cli_fail("writing JSON: %s", strerror(errno));
    return CLI_OK;
}

char *
cli_hex(uint64_t v, char *buf, size_t size)
{
    snprintf(buf, size, "0x%016" PRIx64, v);
    return buf;
}

char *
cli_time(double t, char *buf, size_t size)
{
    time_t s = (time_t)t;
    struct tm tm;

    if (t <= 0 || !localtime_r(&s, &tm) ||
        !strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm))
        snprintf(buf, size, "-");
    return buf;
}

char *
cli_bytes(uint64_t v, char *buf, size_t size)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double d = (double)v;
    size_t u = 0;

    while (d >= 1024 && u + 1 < sizeof unit / sizeof *unit) {
        d /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, size, "%" PRIu64 " B", v);
    else
        snprintf(buf, size, "%.1f %s", d, unit[u]);
    return buf;
}
