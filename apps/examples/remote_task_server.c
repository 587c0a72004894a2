/* remote_task_server.c — a task other nodes find by name (pycos's
 * remote_task_server.py).
 *
 *     picos-remote-task-server [--listen ENDPOINT] [--registry EP[,EP]]
 *                              [--secret-file FILE] [--forever]
 *
 * The node starts picos's network transport, listens on ENDPOINT (default
 * tcp://127.0.0.1:0: any free port, printed on the first line of stdout so
 * that a script can read it), and registers its server task as
 * "server_task". Clients on other nodes (picos-remote-task-client) find it
 * with pc_locate_at() and send it messages; to them its ref works like a
 * local one. With --registry the node joins the cluster of those
 * registries (pc_cluster_join()) and the same pc_register() makes the name
 * known cluster-wide: clients then find it by name alone (pc_locate()). The
 * server prints each message and replies "ack" with the same text, so the
 * client can check that every one arrived; the client's final message ("done")
 * gets the reply "bye", and once that client has gone (a monitor on it says so)
 * the server task ends, which ends the program — unless --forever keeps it
 * serving one client after another.
 *
 * Links are encrypted and authenticated with CURVE keys derived from a
 * cluster secret that both ends must share: --secret-file FILE, else the
 * file named by $PICOS_SECRET_FILE, else $PICOS_SECRET (pc_secret_load()).
 *
 * SIGTERM or SIGINT ends the server cleanly (exit status 0): the signals
 * are blocked in every thread and read from a signalfd by a daemon task,
 * which stops the node. Any error is one line on stderr, exit status 1;
 * bad options exit 2. picos's log lines go to stderr under the program's
 * name too (a client with the wrong secret is one); where picos explains an
 * error itself (a bad or missing secret, a port in use), its line is the
 * one line and the program adds none.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "picos/net.h"
#include "picos/picos.h"
#include "picos/registry.h"

#define NAME "picos-remote-task-server"

static bool forever;

/* The registered task: pycos's server_proc. */
static pc_msg *
server(void *arg)
{
    pc_msg *m, *reply;
    char who[64];

    (void)arg;
    while (pc_recv(&m, -1) == PC_OK) {
        bool done = pc_msg_is(m, "done");
        pc_down d;

        if (pc_down_parse(m, &d) == PC_OK) { /* the last client has gone */
            pc_msg_free(&m);
            break;
        }

        pc_ref_str(pc_msg_sender(m), who, sizeof who);
        if (done)
            printf("server_task: %s is done\n", who);
        else
            printf("server_task: received '%s' from %s\n", pc_msg_str(m), who);
        fflush(stdout);
        /* The sender's ref is a remote one, yet pc_send() reaches it as
         * it would a local task. */
        if (pc_msg_new_str(&reply, done ? "bye" : "ack", pc_msg_str(m)) ==
                PC_OK &&
            pc_send(pc_msg_sender(m), &reply) != PC_OK)
            pc_msg_free(&reply);
        /* Ending right now could cut the "bye" off (a node that ends does
         * not wait for what is still queued for its peers), so the server
         * ends once this client has gone: its monitor says when. */
        if (done && !forever)
            pc_monitor(pc_self(), pc_msg_sender(m));
        pc_msg_free(&m);
    }
    return NULL;
}

/* Turns SIGTERM/SIGINT into pc_node_stop(). A daemon: it does not keep the
 * node alive once the server has ended. */
static pc_msg *
on_signal(void *arg)
{
    int fd = (int)(intptr_t)arg;
    struct signalfd_siginfo si;

    while (pc_wait_fd(fd, PC_READ, -1, NULL) == PC_OK)
        if (read(fd, &si, sizeof si) == (ssize_t)sizeof si) {
            printf(NAME ": %s, stopping\n", strsignal(si.ssi_signo));
            fflush(stdout);
            pc_node_stop();
            break;
        }
    return NULL;
}

static void
usage(FILE *f)
{
    fprintf(f, "usage: " NAME " [--listen ENDPOINT] [--secret-file FILE] "
               "[--registry EP[,EP]] [--forever]\n"
               "  --listen ENDPOINT   where to listen (default "
               "tcp://127.0.0.1:0)\n"
               "  --registry EP,...   join these registries: the name is "
               "cluster-wide\n"
               "  --secret-file FILE  the cluster secret (else "
               "$PICOS_SECRET_FILE, $PICOS_SECRET)\n"
               "  --forever           keep serving after a client's 'done'\n");
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
    pc_ref ref;
    sigset_t sigs;
    int sfd;
    pc_err rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--forever")) {
            forever = true;
            continue;
        }
        if (v && !strcmp(a, "--listen"))
            listen = v;
        else if (v && !strcmp(a, "--secret-file"))
            secret_file = v;
        else if (v && !strcmp(a, "--registry"))
            registry = v;
        else {
            fprintf(stderr, NAME ": bad option '%s' (--help lists them)\n", a);
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
    /* the transport and the ROUTER are up: joining only adds the agent */
    if (registry && (rc = pc_cluster_join(
                         &(pc_cluster_opts){.registries = registry})) != PC_OK)
        return fail(rc == PC_EUNREACH || rc == PC_EAUTH ? NULL : registry,
                    rc); /* those two are logged */

    /* pycos: Task(server_proc) and task.register('server_task'). */
    if ((rc = pc_spawn(server, NULL, NULL, &ref)) != PC_OK ||
        (rc = pc_register("server_task", ref)) != PC_OK ||
        (rc = pc_spawn(on_signal, (void *)(intptr_t)sfd, &daemon, NULL)) !=
            PC_OK)
        return fail("starting the tasks", rc);

    if (registry)
        printf(NAME ": listening on %s, server_task registered at %s\n", bound,
               registry);
    else
        printf(NAME ": listening on %s\n", bound);
    fflush(stdout);
    /* Until the server task ends, or a signal stops the node. */
    rc = pc_node_run();
    close(sfd);
    if (rc != PC_OK)
        fprintf(stderr, NAME ": running the node: %s\n", pc_strerror(rc));
    return rc == PC_OK ? 0 : 1;
}
