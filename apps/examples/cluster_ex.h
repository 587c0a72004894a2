/* cluster_ex.h — what the cluster examples (rps_*, pico_*, chat_chan_*)
 * share, so that each of them shows only its own point: the common
 * options, the cluster secret, starting a node that joins the registries,
 * and a clean stop on SIGTERM / SIGINT. (The older remote_* examples,
 * which also work without a registry, use only ex_number().)
 *
 * The computation clients (dispycos_*) share their main() too:
 * ex_compute_main().
 *
 * The conventions are those of picos-remote-task-server and -client:
 *   --registry EP[,EP]  the registries (else $PICOS_REGISTRY, else
 *                       tcp://127.0.0.1:9705);
 *   --secret-file FILE  the cluster secret (else $PICOS_SECRET_FILE, else
 *                       $PICOS_SECRET), the same on every node;
 *   --timeout S         how long to wait for the registry and for lookups
 *                       (default 5);
 *   --listen EP         servers only: where the node listens (default
 *                       tcp://127.0.0.1:0, any free port).
 * Every error is one line on stderr, prefixed with the program's name,
 * exit status 1; bad options exit 2. picos's own log goes to stderr under
 * the program's name too — for servers always, for clients only when
 * $PICOS_LOG asks for it (they report failures themselves).
 */
#ifndef PICOS_EXAMPLES_CLUSTER_EX_H
#define PICOS_EXAMPLES_CLUSTER_EX_H

#include <stdbool.h>
#include <stdio.h>

#include "picos/picos.h"
#include "picos/rps.h"

typedef struct ex_cluster {
    const char *prog;        /* the program's name: the prefix of its lines */
    const char *usage;       /* --help: what follows the name on its line */
    const char *options;     /* --help: the program's own options' lines */
    bool server;             /* listens, keeps picos's log on, has signals */
    const char *registry;    /* --registry; NULL: $PICOS_REGISTRY / default */
    const char *secret_file; /* --secret-file; NULL: the environment */
    const char *listen;      /* --listen (servers); NULL: tcp://127.0.0.1:0 */
    double timeout;          /* --timeout; 0 when not given: 5 */
    char endpoint[256];      /* where the node listens, once started */
} ex_cluster;

/* Parse the arguments: the common options; --help prints the usage
 * (x->usage, the common options, x->options) and exits 0; anything else goes
 * to own(a, v) (v: the next argument, NULL at the end; own may be NULL),
 * which returns how many it took — 1 (a), 2 (a and v) — or 0 when a is not
 * one of its options or its value is bad. A bad option exits 2 after one
 * line. */
void ex_args(ex_cluster *x, int argc, char **argv,
             int (*own)(const char *a, const char *v));

/* A number >= min (and <= 1e9) in *out, or false. */
bool ex_number(const char *s, double min, double *out);

/* A whole number in [min, max] in *out, or false. */
bool ex_int(const char *s, int min, int max, int *out);

/* The registries as given, for messages. */
const char *ex_registry(const ex_cluster *x);

/* Load the secret, start the node and its transport and join the
 * registries (a server also listens, and blocks SIGTERM/SIGINT for
 * ex_serve(): call this before anything starts a thread). Returns 0,
 * or the exit status after one line saying what went wrong (the node is
 * then stopped). */
int ex_start(ex_cluster *x);

/* Servers, after ex_start() and their own setup, whose result is rc (the
 * first call that failed, or PC_OK): prints "<prog>: listening on EP, <what>
 * registered at REGISTRIES" and runs the node until SIGTERM or SIGINT,
 * which prints "<prog>: <signal>, stopping", closes *svc (when svc is not
 * NULL; running calls get 1 s) and stops the node; or, when rc is not
 * PC_OK or the signals cannot be watched, one line "starting <what>: ..."
 * and the node is stopped. Returns rc, or the signal task's error. */
pc_err ex_serve(ex_cluster *x, pc_err rc, const char *what, pc_rps **svc);

/* Clients, after ex_args(): ex_start(), then runs task (a task of its own,
 * arg NULL) until the node ends with it. Returns 0 then, else the exit
 * status after one line. The program's verdict is the task's to keep. */
int ex_client(ex_cluster *x, pc_msg *(*task)(void *arg));

/* The computation clients' own options: a count (in [1, max]) and the
 * computation's shared library. */
typedef struct ex_compute_args {
    const char *count;    /* the count's option: "-n", "--nodes" */
    int max;              /* the largest count */
    int *n;               /* the count goes here */
    const char **library; /* "--library FILE" goes here */
    const int *verdict;   /* the task's exit status, once it ended */
} ex_compute_args;

/* A computation client's main(): ex_args() with the options of *a, then
 * ex_client(x, task). Returns ex_client()'s status when it failed, else
 * *a->verdict. */
int ex_compute_main(ex_cluster *x, int argc, char **argv,
                    const ex_compute_args *a, pc_msg *(*task)(void *arg));

/* One line "<prog>: <text>" on stderr. */
void ex_say(const ex_cluster *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
