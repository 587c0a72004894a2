/* remote_channel_server.c — a channel that tasks of other nodes subscribe
 * to (pycos's remote_channel_server.py).
 *
 *     picos-remote-channel-server [--listen ENDPOINT] [--registry EP[,EP]]
 *                                 [--secret-file FILE] [--count N]
 *                                 [--timeout S]
 *
 * The node starts picos's network transport, listens on ENDPOINT (default
 * tcp://127.0.0.1:0: any free port, printed on the first line of stdout so
 * that a script can read it) and makes the channel "2clients" (pycos's
 * name), with one subscriber task of its own. A client on another node
 * (picos-remote-channel-client) finds the channel with pc_chan_locate_at()
 * and subscribes a task of its node to it: the two subscribers pycos's
 * example waits for, one local, one remote. With --registry the node joins
 * the cluster and registers the channel's name cluster-wide
 * (pc_name_register(PC_NAME_CHANNEL)): clients find it by name alone
 * (pc_chan_locate()).
 *
 * The publisher task delivers N messages ("message 1" ...) and then a final
 * "done" carrying N, each with pc_chan_deliver(n = 2): a deliver waits
 * until the channel has two subscribers — across nodes: the client's counts
 * here once its node has subscribed —, hands the message to both and waits
 * for their acknowledgements; it prints how many end-point tasks took it
 * ("reached=2"). The first deliver is the one that waits for a client, and
 * it waits as long as it takes; every later one waits up to --timeout S
 * (default 5) for both acknowledgements, else the server fails. After
 * "done" reached both, the server ends: both subscribers have it in their
 * mailboxes, so nothing is left to send.
 *
 * Links are encrypted and authenticated with CURVE keys derived from a
 * cluster secret that both ends must share: --secret-file FILE, else the
 * file named by $PICOS_SECRET_FILE, else $PICOS_SECRET (pc_secret_load()).
 *
 * SIGTERM or SIGINT ends the server cleanly (exit status 0), as in
 * picos-remote-task-server: a daemon task reads them from a signalfd and
 * stops the node. Any error is one line on stderr, exit status 1; bad
 * options exit 2. picos's log lines go to stderr under the program's name
 * (a client with the wrong secret is one); where picos explains an error
 * itself (a bad or missing secret, a port in use), its line is the one line
 * and the program adds none.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "picos/chan.h"
#include "picos/net.h"
#include "picos/picos.h"
#include "picos/registry.h"

#include "cluster_ex.h" /* ex_number() */

#define NAME "picos-remote-channel-server"
#define CHANNEL "2clients"

static pc_chan *chan;
static int count = 10;
static double timeout = 5.0;
static int status = 1; /* the publisher's verdict, read after the node */
/* The message being delivered: here, not on the publisher's stack, so that
 * main() frees it when a signal stopped the node with the publisher inside
 * pc_chan_deliver() (a terminated task does not run on to free it). */
static pc_msg *inflight;

/* The local subscriber: prints what the channel brings, up to "done". */
static pc_msg *
subscriber(void *arg)
{
    pc_msg *m;

    (void)arg;
    while (pc_recv(&m, -1) == PC_OK) {
        bool done = pc_msg_is(m, "done");
        if (done)
            printf("local subscriber: done after %s messages\n", pc_msg_str(m));
        else
            printf("local subscriber: received '%s'\n", pc_msg_str(m));
        fflush(stdout);
        pc_msg_free(&m);
        if (done)
            break;
    }
    return NULL;
}

/* Deliver one message to both subscribers; wait < 0: as long as it takes. */
static bool
deliver(const char *type, const char *text, double wait)
{
    int reached = 0;
    pc_err rc;

    if ((rc = pc_msg_new_str(&inflight, type, text)) != PC_OK) {
        fprintf(stderr, NAME ": making '%s': %s\n", text, pc_strerror(rc));
        return false;
    }
    rc = pc_chan_deliver(chan, &inflight, 2, wait, &reached);
    if (rc != PC_OK) {
        pc_msg_free(&inflight); /* a failed deliver leaves it ours */
        fprintf(stderr,
                NAME ": delivering '%s': %s (reached %d of 2 subscribers "
                     "within %g s)\n",
                text, pc_strerror(rc), reached, wait);
        return false;
    }
    if (!strcmp(type, "done"))
        printf("publisher: delivered done (%s sent), reached=%d\n", text,
               reached);
    else
        printf("publisher: delivered '%s', reached=%d\n", text, reached);
    fflush(stdout);
    return true;
}

/* pycos's deliver(msg, n=2, timeout=...) loop. A failure stops the node:
 * the local subscriber would wait for "done" forever. */
static pc_msg *
publisher(void *arg)
{
    char text[32];

    (void)arg;
    for (int i = 1; i <= count + 1; i++) {
        bool done = i > count;
        /* The first deliver waits for a client to subscribe. */
        double wait = i == 1 ? -1 : timeout;

        if (done)
            snprintf(text, sizeof text, "%d", count);
        else
            snprintf(text, sizeof text, "message %d", i);
        if (!deliver(done ? "done" : "msg", text, wait)) {
            pc_node_stop();
            return NULL;
        }
    }
    status = 0;
    return NULL;
}

/* Turns SIGTERM/SIGINT into pc_node_stop(). A daemon: it does not keep the
 * node alive once the publisher and the subscriber have ended. */
static pc_msg *
on_signal(void *arg)
{
    int fd = (int)(intptr_t)arg;
    struct signalfd_siginfo si;

    while (pc_wait_fd(fd, PC_READ, -1, NULL) == PC_OK)
        if (read(fd, &si, sizeof si) == (ssize_t)sizeof si) {
            printf(NAME ": %s, stopping\n", strsignal(si.ssi_signo));
            fflush(stdout);
            status = 0;
            pc_node_stop();
            break;
        }
    return NULL;
}

static void
usage(FILE *f)
{
    fprintf(f, "usage: " NAME " [--listen ENDPOINT] [--registry EP[,EP]] "
               "[--secret-file FILE] [--count N] [--timeout S]\n"
               "  --listen ENDPOINT   where to listen (default "
               "tcp://127.0.0.1:0)\n"
               "  --registry EP,...   join these registries and register the "
               "channel there\n"
               "  --secret-file FILE  the cluster secret (else "
               "$PICOS_SECRET_FILE, $PICOS_SECRET)\n"
               "  --count N           messages to deliver (default 10)\n"
               "  --timeout S         seconds each deliver after the first "
               "waits for both\n"
               "                      subscribers (default 5; the first "
               "waits for a client)\n");
}

/* picos's log records, under our name (stdio locks stderr per call, so
 * records from several threads do not mix). */
static void
log_line(pc_log_level level, const char *module, const char *text, void *u)
{
    (void)level, (void)module, (void)u;
    fprintf(stderr, NAME ": %s\n", text);
}

/* One line (unless picos has said it: what == NULL), then end the node. */
static int
fail(const char *what, pc_err rc)
{
    if (what)
        fprintf(stderr, NAME ": %s: %s\n", what, pc_strerror(rc));
    pc_node_stop();
    pc_node_run();
    pc_chan_free(&chan);
    return 1;
}

int
main(int argc, char **argv)
{
    const char *listen = "tcp://127.0.0.1:0";
    const char *secret_file = NULL, *registry = NULL;
    char secret[PC_SECRET_MAX];
    size_t len;
    pc_curve_keys keys;
    pc_spawn_opts daemon = {.flags = PC_TASK_DAEMON};
    char bound[256];
    pc_ref sub;
    sigset_t sigs;
    double n;
    int sfd;
    pc_err rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (v && !strcmp(a, "--listen"))
            listen = v;
        else if (v && !strcmp(a, "--secret-file"))
            secret_file = v;
        else if (v && !strcmp(a, "--registry"))
            registry = v;
        else if (v && !strcmp(a, "--count") && ex_number(v, 0, &n) &&
                 n == (int)n)
            count = (int)n;
        else if (v && !strcmp(a, "--timeout") && ex_number(v, 0.001, &n))
            timeout = n;
        else {
            fprintf(stderr, NAME ": bad option '%s'%s (--help lists them)\n", a,
                    v ? " or value" : "");
            return 2;
        }
        i++;
    }

    /* Blocked before any thread starts, so every thread inherits it and the
     * signals reach only the signalfd. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    if (pthread_sigmask(SIG_BLOCK, &sigs, NULL) ||
        (sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
        perror(NAME ": signalfd");
        return 1;
    }

    /* The cluster keys, from the secret; picos logs what is wrong with a
     * bad or missing one (that is the one line). */
    pc_log_set_sink(log_line, NULL);
    if (pc_secret_load(secret_file, secret, sizeof secret, &len) != PC_OK)
        return 1;
    rc = pc_curve_from_secret(secret, len, &keys);
    memset(secret, 0, sizeof secret);
    if (rc != PC_OK)
        return fail("deriving the keys", rc);

    if ((rc = pc_node_start(NULL)) != PC_OK)
        return fail("starting the node", rc);
    if ((rc = pc_net_start(&(pc_net_opts){.keys = &keys})) != PC_OK)
        return fail("starting the transport", rc);
    if ((rc = pc_node_listen(listen, bound, sizeof bound)) != PC_OK)
        return fail(rc == PC_ESYS ? NULL : listen, rc); /* ESYS: logged */
    if (registry && (rc = pc_cluster_join(
                         &(pc_cluster_opts){.registries = registry})) != PC_OK)
        return fail(rc == PC_EUNREACH || rc == PC_EAUTH ? NULL : registry,
                    rc); /* those two are logged */

    /* pycos: Channel('2clients'), registered (a named channel is found by
     * its name), with a local subscriber; then the publisher. */
    if ((rc = pc_chan_new(&chan, CHANNEL, NULL, NULL)) != PC_OK ||
        (rc = pc_spawn(subscriber, NULL, NULL, &sub)) != PC_OK ||
        (rc = pc_chan_subscribe(chan, sub)) != PC_OK ||
        (rc = pc_spawn(publisher, NULL, NULL, NULL)) != PC_OK ||
        (rc = pc_spawn(on_signal, (void *)(intptr_t)sfd, &daemon, NULL)) !=
            PC_OK)
        return fail("starting the channel and its tasks", rc);
    if (registry && (rc = pc_name_register(PC_NAME_CHANNEL, CHANNEL, PC_REF_NIL,
                                           timeout)) != PC_OK)
        return fail("registering " CHANNEL " cluster-wide", rc);

    printf(NAME ": listening on %s\n", bound);
    fflush(stdout);
    /* Until "done" has reached both subscribers, or a signal stops the
     * node. */
    rc = pc_node_run();
    pc_msg_free(&inflight);
    pc_chan_free(&chan);
    close(sfd);
    if (rc != PC_OK) {
        fprintf(stderr, NAME ": running the node: %s\n", pc_strerror(rc));
        return 1;
    }
    return status;
}
