/* cluster_ex.h — what the cluster examples (rps_*, pico_*, chat_chan_*)
 * share, so that each of them shows only its own point: the common
 * options, the cluster secret, starting a node that joins the registries,
 * and a clean stop on SIGTERM / SIGINT.
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

typedef struct ex_cluster {
    const char *prog;        /* the program's name: the prefix of its lines */
    bool server;             /* listens, keeps picos's log on, has signals */
    const char *registry;    /* --registry; NULL: $PICOS_REGISTRY / default */
    const char *secret_file; /* --secret-file; NULL: the environment */
    const char *listen;      /* --listen (servers); NULL: tcp://127.0.0.1:0 */
    double timeout;          /* --timeout; 0 when not given: 5 */
    char endpoint[256];      /* where the node listens, once started */
} ex_cluster;

/* If argv[*i] is one of the common options, take it and its value (*i
 * moves past the value) and return 1; 0 when it is not one of them; -1
 * when its value is missing or bad. */
int ex_option(ex_cluster *x, int argc, char **argv, int *i);

/* The common options' lines for a --help. */
void ex_usage(const ex_cluster *x, FILE *f);

/* A number >= min (and <= 1e9) in *out, or false. */
bool ex_number(const char *s, double min, double *out);

/* The registries as given, for messages. */
const char *ex_registry(const ex_cluster *x);

/* Load the secret, start the node and its transport and join the
 * registries (a server also listens, and blocks SIGTERM/SIGINT for
 * ex_on_signal(): call this before anything starts a thread). Returns 0,
 * or the exit status after one line saying what went wrong (the node is
 * then stopped). */
int ex_start(ex_cluster *x);

/* Servers: a task that, at SIGTERM or SIGINT, prints "<prog>: <signal>,
 * stopping", calls stop(arg) (may be NULL) — in a task, so it may close
 * services — and stops the node. It is not a daemon: it keeps the node
 * running until then. */
pc_err ex_on_signal(void (*stop)(void *arg), void *arg);

/* One line "<prog>: <text>" on stderr. */
void ex_say(const ex_cluster *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
