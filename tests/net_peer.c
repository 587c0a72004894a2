/* tests/net_peer.c — a node process for the multi-process link tests.
 *
 *     net_peer --listen EP [--secret-file F | --plain] [--max-frame N]
 *              [--heartbeat S] [--timeout S] [--record FILE] [--workers W]
 *              [--link-worker I|thread]
 *
 * Starts a node, the ZeroMQ transport and the roles of net_roles.h, binds
 * EP, prints "READY <bound endpoint> <node id in hex>" on stdout and runs
 * until "quit" reaches its echo task or SIGTERM comes (nr_stop(): its
 * last words, then pc_node_stop(), which sends a GOODBYE), or until its
 * parent dies. Errors go to stderr as one line, exit status 2.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "picos/net.h"
#include "picos/picos.h"

#include "net_roles.h"
#include "tsan_supp.h"

/* SIGTERM (blocked in every thread) stops the node, after the last words
 * of net_roles.h. */
static void *
on_sigterm(void *arg)
{
    sigset_t *set = arg;
    int sig;

    if (sigwait(set, &sig) == 0)
        nr_stop();
    return NULL;
}

static void
die(const char *what, pc_err rc)
{
    fprintf(stderr, "net_peer: %s: %s\n", what, pc_strerror(rc));
    exit(2);
}

int
main(int argc, char **argv)
{
    pc_net_opts no = {0};
    pc_node_opts o = {.workers = 2};
    const char *listen = NULL, *record = NULL;
    char bound[256];
    int fd = -1;
    sigset_t term;
    pthread_t sigt;
    pc_err rc;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--plain")) {
            no.plain = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "net_peer: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--listen"))
            listen = v;
        else if (!strcmp(a, "--secret-file"))
            no.secret_file = v;
        else if (!strcmp(a, "--max-frame"))
            no.max_frame = strtoul(v, NULL, 0);
        else if (!strcmp(a, "--heartbeat"))
            no.heartbeat = atof(v);
        else if (!strcmp(a, "--timeout"))
            no.timeout = atof(v);
        else if (!strcmp(a, "--record"))
            record = v;
        else if (!strcmp(a, "--workers"))
            o.workers = atoi(v);
        else if (!strcmp(a, "--link-worker")) /* else the environment's */
            no.link_worker =
                strcmp(v, "thread") ? PC_WORKER(atoi(v)) : PC_NET_LINK_THREAD;
        else {
            fprintf(stderr, "net_peer: unknown option %s\n", a);
            return 2;
        }
    }
    if (!listen) {
        fprintf(stderr, "net_peer: --listen is required\n");
        return 2;
    }
    if (record &&
        (fd = open(record, O_WRONLY | O_CREAT | O_APPEND, 0600)) < 0) {
        perror(record);
        return 2;
    }
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &term, NULL); /* before any thread starts */
    if ((rc = pc_node_start(&o)) != PC_OK)
        die("pc_node_start", rc);
    if ((rc = pc_net_start(&no)) != PC_OK)
        die("pc_net_start", rc);
    if ((rc = pc_node_listen(listen, bound, sizeof bound)) != PC_OK)
        die("pc_node_listen", rc);
    if ((rc = nr_start(fd, true)) != PC_OK)
        die("roles", rc);
    if (pthread_create(&sigt, NULL, on_sigterm, &term) == 0)
        pthread_detach(sigt);
    printf("READY %s %016" PRIx64 "\n", bound, pc_node_id());
    fflush(stdout);
    pc_node_run();
    return 0;
}
