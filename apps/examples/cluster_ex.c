/* cluster_ex.c — the part the cluster examples share (cluster_ex.h).
 *
 * One program, one node: the state here is a few statics (the signalfd
 * and the service to close at a signal). Signals are blocked before any thread
 * starts, so every thread inherits the mask and SIGTERM/SIGINT reach only the
 * signalfd, which a task reads with pc_wait_fd(). The secret is loaded
 * here rather than by pc_cluster_join() so that a missing or bad one is
 * reported (by picos, one line) before anything starts.
 */
#define _GNU_SOURCE
#include "cluster_ex.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "picos/net.h"
#include "picos/registry.h"

static const ex_cluster *self; /* for the log sink */
static int sfd = -1;
static pc_rps **serving;               /* closed at SIGTERM / SIGINT */
static const ex_compute_args *compute; /* ex_compute_main()'s options */

void
ex_say(const ex_cluster *x, const char *fmt, ...)
{
    char line[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s\n", x->prog, line);
}

bool
ex_number(const char *s, double min, double *out)
{
    char *end;
    double v = strtod(s, &end);

    if (end == s || *end || !(v >= min) || v > 1e9)
        return false;
    *out = v;
    return true;
}

bool
ex_int(const char *s, int min, int max, int *out)
{
    double v;

    if (!ex_number(s, min, &v) || v != (int)v || v > max)
        return false;
    *out = (int)v;
    return true;
}

/* If argv[*i] is one of the common options, take it and its value (*i
 * moves past the value) and return 1; 0 when it is not one of them; -1
 * when its value is missing or bad. */
static int
option(ex_cluster *x, int argc, char **argv, int *i)
{
    const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;

    if (strcmp(a, "--registry") && strcmp(a, "--secret-file") &&
        strcmp(a, "--timeout") && (!x->server || strcmp(a, "--listen")))
        return 0;
    if (!v)
        return -1;
    if (!strcmp(a, "--registry"))
        x->registry = v;
    else if (!strcmp(a, "--secret-file"))
        x->secret_file = v;
    else if (!strcmp(a, "--listen"))
        x->listen = v;
    else if (!ex_number(v, 0.001, &x->timeout))
        return -1;
    ++*i;
    return 1;
}

static void
usage(const ex_cluster *x)
{
    FILE *f = stdout;

    fprintf(f, "usage: %s %s\n", x->prog, x->usage);
    fprintf(f, "  --registry EP,...   the registries (default "
               "$PICOS_REGISTRY, else " PC_REGISTRY_DEFAULT ")\n"
               "  --secret-file FILE  the cluster secret (else "
               "$PICOS_SECRET_FILE, $PICOS_SECRET)\n"
               "  --timeout S         seconds to wait for the registry and "
               "lookups (default 5)\n");
    if (x->server)
        fprintf(f, "  --listen ENDPOINT   where the node listens (default "
                   "tcp://127.0.0.1:0)\n");
    if (x->options)
        fputs(x->options, f);
}

void
ex_args(ex_cluster *x, int argc, char **argv,
        int (*own)(const char *a, const char *v))
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int r = option(x, argc, argv, &i);

        if (r == 0 && !strcmp(a, "--help")) {
            usage(x);
            exit(0);
        }
        if (r == 0 && own && (r = own(a, v)) > 0)
            i += r - 1, r = 1;
        if (r != 1) {
            ex_say(x, "bad option '%s' or its value (--help lists them)", a);
            exit(2);
        }
    }
}

const char *
ex_registry(const ex_cluster *x)
{
    const char *env = getenv("PICOS_REGISTRY");

    if (x->registry)
        return x->registry;
    return env && *env ? env : PC_REGISTRY_DEFAULT;
}

/* picos's log records, under the program's name (stdio locks stderr per
 * call, so records from several threads do not mix). */
static void
log_line(pc_log_level level, const char *module, const char *text, void *u)
{
    (void)level, (void)module, (void)u;
    fprintf(stderr, "%s: %s\n", self->prog, text);
}

/* Where the secret came from, for the wrong-secret line. */
static const char *
secret_name(const ex_cluster *x)
{
    const char *f = getenv("PICOS_SECRET_FILE");

    if (x->secret_file)
        return x->secret_file;
    return f && *f ? f : "$PICOS_SECRET";
}

static int
fail(const ex_cluster *x, const char *what, pc_err rc)
{
    if (what)
        ex_say(x, "%s: %s", what, pc_strerror(rc));
    pc_node_stop();
    pc_node_run();
    return 1;
}

int
ex_start(ex_cluster *x)
{
    char secret[PC_SECRET_MAX];
    size_t len;
    pc_curve_keys keys;
    sigset_t sigs;
    pc_err rc;

    self = x;
    if (x->timeout <= 0)
        x->timeout = 5.0;
    if (x->server) {
        sigemptyset(&sigs);
        sigaddset(&sigs, SIGTERM);
        sigaddset(&sigs, SIGINT);
        if (pthread_sigmask(SIG_BLOCK, &sigs, NULL) ||
            (sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
            ex_say(x, "signalfd: %s", strerror(errno));
            return 1;
        }
    }
    /* picos logs what is wrong with a bad or missing secret: the line */
    pc_log_set_sink(log_line, NULL);
    if (pc_secret_load(x->secret_file, secret, sizeof secret, &len) != PC_OK)
        return 1;
    rc = pc_curve_from_secret(secret, len, &keys);
    memset(secret, 0, sizeof secret);
    if (rc != PC_OK) {
        ex_say(x, "deriving the keys: %s", pc_strerror(rc));
        return 1;
    }
    /* A client reports every failure itself, from the return codes. */
    if (!x->server && !getenv("PICOS_LOG"))
        pc_log_set_level(PC_LOG_LEVEL_OFF);

    if ((rc = pc_node_start(NULL)) != PC_OK) {
        ex_say(x, "starting the node: %s", pc_strerror(rc));
        return 1;
    }
    if ((rc = pc_net_start(&(pc_net_opts){.keys = &keys})) != PC_OK)
        return fail(x, "starting the transport", rc);
    /* A client does not listen: the answers come back over the
     * connections it opened. */
    rc = pc_cluster_join(&(pc_cluster_opts){
        .registries = x->registry,
        .listen =
            x->server ? (x->listen ? x->listen : "tcp://127.0.0.1:0") : "",
        .join_timeout = x->timeout});
    if (rc != PC_OK) {
        if (x->server && (rc == PC_EAUTH || rc == PC_EUNREACH))
            return fail(x, NULL, rc); /* picos logged it: that is the line */
        if (rc == PC_EAUTH)
            ex_say(x, "wrong cluster secret: the registry refused our key (%s)",
                   secret_name(x));
        else if (rc == PC_EUNREACH)
            ex_say(x, "no registry answered at %s within %g s", ex_registry(x),
                   x->timeout);
        else
            ex_say(x, "joining the registry at %s: %s", ex_registry(x),
                   pc_strerror(rc));
        return fail(x, NULL, rc);
    }
    if (x->server &&
        pc_net_endpoints(x->endpoint, NULL, sizeof x->endpoint) != PC_OK)
        x->endpoint[0] = '\0';
    return 0;
}

static pc_msg *
on_signal(void *arg)
{
    const ex_cluster *x = arg;
    struct signalfd_siginfo si;

    while (pc_wait_fd(sfd, PC_READ, -1, NULL) == PC_OK)
        if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
            printf("%s: %s, stopping\n", x->prog, strsignal(si.ssi_signo));
            fflush(stdout);
            if (serving) /* unregister; running calls get 1 s */
                pc_rps_close(serving, 1.0);
            break;
        }
    pc_node_stop();
    return NULL;
}

pc_err
ex_serve(ex_cluster *x, pc_err rc, const char *what, pc_rps **svc)
{
    serving = svc;
    if (rc == PC_OK)
        rc = pc_spawn(on_signal, x, NULL, NULL);
    if (rc != PC_OK) {
        ex_say(x, "starting %s: %s", what, pc_strerror(rc));
        pc_node_stop();
    } else {
        printf("%s: listening on %s, %s registered at %s\n", x->prog,
               x->endpoint, what, ex_registry(x));
        fflush(stdout);
    }
    pc_node_run();
    if (svc)
        pc_rps_close(svc, 0); /* when the node ended otherwise */
    return rc;
}

int
ex_client(ex_cluster *x, pc_msg *(*task)(void *arg))
{
    int st = ex_start(x);

    if (st)
        return st;
    if (pc_spawn(task, NULL, NULL, NULL) != PC_OK) {
        ex_say(x, "starting the client task failed");
        pc_node_stop();
        st = 1;
    }
    pc_node_run();
    return st;
}

static int
compute_option(const char *a, const char *v)
{
    if (v && !strcmp(a, compute->count))
        return ex_int(v, 1, compute->max, compute->n) ? 2 : 0;
    if (v && !strcmp(a, "--library"))
        return *compute->library = v, 2;
    return 0;
}

int
ex_compute_main(ex_cluster *x, int argc, char **argv, const ex_compute_args *a,
                pc_msg *(*task)(void *arg))
{
    int st;

    compute = a;
    ex_args(x, argc, argv, compute_option);
    return (st = ex_client(x, task)) ? st : *a->verdict;
}
