/* remote_task_client.c — find a task on another node by name and talk to it
 * (pycos's remote_task_client.py).
 *
 *     picos-remote-task-client (--connect ENDPOINT | --registry EP[,EP])
 *                              [--secret-file FILE] [--count N] [--timeout S]
 *
 * One client task connects to the node at ENDPOINT (pycos's peer()), asks it
 * for the ref registered as "server_task" (Task.locate()), monitors that
 * task, and sends it N messages ("message 1" ...) and then a final "done".
 * The server (picos-remote-task-server) replies to each — "ack" with the
 * same text, "bye" to "done" — and the client checks every reply before it
 * sends the next, so its exit status 0 means all N arrived, in order. The
 * monitor is how the client learns that the server went away instead of
 * waiting for a reply that will never come: its DOWN message ends the wait.
 * With --registry instead of --connect the client joins the cluster and
 * finds "server_task" by name alone (pc_locate(), waiting up to --timeout
 * for it to be registered); the registry tells where, and the messages go
 * straight to the server's node.
 *
 * Both ends must hold the same cluster secret: --secret-file FILE, else
 * $PICOS_SECRET_FILE, else $PICOS_SECRET. --timeout S (default 5) bounds
 * the connection, the lookup and each reply.
 *
 * Exit status 0 when every message was acknowledged; 1 with one line on
 * stderr otherwise (a missing or bad secret — picos's own line, under the
 * program's name —, a wrong one, nobody answering at ENDPOINT, no
 * server_task there, the server gone); 2 for bad options. PICOS_LOG=info
 * shows picos's log as well.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/net.h"
#include "picos/picos.h"
#include "picos/registry.h"

#include "cluster_ex.h" /* ex_number() */

#define NAME "picos-remote-task-client"

static const char *endpoint;
static const char *registry;
static const char *secret_name; /* where the secret came from, for errors */
static int count = 10;
static double timeout = 5.0;
static int status = 1; /* the client task's verdict, read after the node */

static void
log_line(pc_log_level level, const char *module, const char *text, void *u)
{
    (void)level, (void)module, (void)u;
    fprintf(stderr, NAME ": %s\n", text);
}

/* Wait for the server's reply `type` carrying `text`. A DOWN from the
 * monitor means the server task (or its whole node) is gone. */
static bool
reply(pc_ref server, const char *type, const char *text)
{
    pc_msg *m;
    pc_down d;
    pc_err rc;
    bool ok;

    if ((rc = pc_recv(&m, timeout)) != PC_OK) {
        fprintf(stderr, NAME ": no reply to '%s' within %g s: %s\n", text,
                timeout, pc_strerror(rc));
        return false;
    }
    if (pc_down_parse(m, &d) == PC_OK && pc_ref_eq(d.who, server)) {
        fprintf(stderr, NAME ": server_task went away (%s) before '%s'\n",
                d.reason == PC_DOWN_NODE ? "its node is down" : "it ended",
                text);
        pc_msg_free(&m);
        return false;
    }
    ok = pc_msg_is(m, type) && !strcmp(pc_msg_str(m), text);
    if (!ok)
        fprintf(stderr, NAME ": expected %s '%s', got %s '%s'\n", type, text,
                pc_msg_type(m), pc_msg_str(m));
    pc_msg_free(&m);
    return ok;
}

/* Send `text` as a message of `type` and check the reply. */
static bool
call(pc_ref server, const char *type, const char *text, const char *rtype)
{
    pc_msg *m;
    pc_err rc;

    if ((rc = pc_msg_new_str(&m, type, text)) != PC_OK ||
        (rc = pc_send(server, &m)) != PC_OK) {
        pc_msg_free(&m); /* a failed send leaves the message ours */
        fprintf(stderr, NAME ": sending '%s': %s\n", text, pc_strerror(rc));
        return false;
    }
    return reply(server, rtype, text);
}

static pc_msg *talk(pc_ref server);

/* pycos's client_proc. */
static pc_msg *
client(void *arg)
{
    pc_ref server;
    pc_err rc;

    (void)arg;
    if (registry) { /* by name, anywhere in the cluster */
        rc = pc_locate(PC_NAME_TASK, "server_task", timeout, &server);
        if (rc != PC_OK) {
            fprintf(stderr, NAME ": no server_task in the cluster of %s: %s\n",
                    registry, pc_strerror(rc));
            return NULL;
        }
        return talk(server);
    }
    /* pycos: yield scheduler.peer(Location(...)) */
    rc = pc_node_connect(endpoint, timeout, NULL);
    if (rc == PC_ETIMEDOUT) {
        fprintf(stderr, NAME ": no node answered at %s within %g s\n", endpoint,
                timeout);
        return NULL;
    }
    if (rc == PC_EAUTH) {
        fprintf(stderr,
                NAME ": wrong cluster secret: %s refused our key (%s)\n",
                endpoint, secret_name);
        return NULL;
    }
    if (rc != PC_OK) {
        fprintf(stderr, NAME ": connecting to %s: %s\n", endpoint,
                pc_strerror(rc));
        return NULL;
    }
    /* pycos: server = yield Task.locate('server_task') */
    if ((rc = pc_locate_at(endpoint, "server_task", timeout, &server)) !=
        PC_OK) {
        fprintf(stderr, NAME ": no server_task at %s: %s\n", endpoint,
                pc_strerror(rc));
        return NULL;
    }
    return talk(server);
}

/* Monitor the server, send the messages, check the replies. */
static pc_msg *
talk(pc_ref server)
{
    char text[32];
    pc_err rc;

    if ((rc = pc_monitor(pc_self(), server)) != PC_OK) {
        fprintf(stderr, NAME ": monitoring server_task: %s\n", pc_strerror(rc));
        return NULL;
    }
    for (int i = 1; i <= count; i++) {
        snprintf(text, sizeof text, "message %d", i);
        if (!call(server, "msg", text, "ack"))
            return NULL;
    }
    /* pycos sends None; "done" also asks the server to end. */
    if (!call(server, "done", "done", "bye"))
        return NULL;
    printf("client: server_task acknowledged %d messages\n", count);
    status = 0;
    return NULL;
}

static void
usage(FILE *f)
{
    fprintf(f, "usage: " NAME " (--connect ENDPOINT | --registry EP[,EP]) "
               "[--secret-file FILE] [--count N] [--timeout S]\n"
               "  --connect ENDPOINT  the server's endpoint (tcp://HOST:PORT)\n"
               "  --registry EP,...   find it by name through these "
               "registries\n"
               "  --secret-file FILE  the cluster secret (else "
               "$PICOS_SECRET_FILE, $PICOS_SECRET)\n"
               "  --count N           messages to send (default 10)\n"
               "  --timeout S         seconds to wait for the server, each "
               "reply (default 5)\n");
}

int
main(int argc, char **argv)
{
    const char *secret_file = NULL;
    char secret[PC_SECRET_MAX];
    size_t len;
    pc_curve_keys keys;
    double n;
    pc_err rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (v && !strcmp(a, "--connect"))
            endpoint = v;
        else if (v && !strcmp(a, "--registry"))
            registry = v;
        else if (v && !strcmp(a, "--secret-file"))
            secret_file = v;
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
    if (!endpoint == !registry) {
        fprintf(stderr, NAME ": one of --connect ENDPOINT and --registry EP "
                             "is required\n");
        return 2;
    }

    /* The cluster keys, from the secret; picos logs what is wrong with a
     * bad or missing one (that is the one line). */
    pc_log_set_sink(log_line, NULL);
    if (pc_secret_load(secret_file, secret, sizeof secret, &len) != PC_OK)
        return 1;
    /* For the wrong-secret line: where pc_secret_load() found it. */
    if (!(secret_name = secret_file) &&
        !((secret_name = getenv("PICOS_SECRET_FILE")) && *secret_name))
        secret_name = "$PICOS_SECRET";
    rc = pc_curve_from_secret(secret, len, &keys);
    memset(secret, 0, sizeof secret);
    if (rc != PC_OK) {
        fprintf(stderr, NAME ": deriving the keys: %s\n", pc_strerror(rc));
        return 1;
    }
    /* From here on the client reports failures itself from the return
     * codes; picos's own log would say them twice, so it is off unless
     * $PICOS_LOG asks for it. */
    if (!getenv("PICOS_LOG"))
        pc_log_set_level(PC_LOG_LEVEL_OFF);

    if ((rc = pc_node_start(NULL)) != PC_OK) {
        fprintf(stderr, NAME ": starting the node: %s\n", pc_strerror(rc));
        return 1;
    }
    if ((rc = pc_net_start(&(pc_net_opts){.keys = &keys})) != PC_OK) {
        fprintf(stderr, NAME ": starting the transport: %s\n", pc_strerror(rc));
        pc_node_stop();
    } else if (registry &&
               /* a client only: it does not listen (the answers come back
                * over the connections this node opened) */
               (rc = pc_cluster_join(
                    &(pc_cluster_opts){.registries = registry,
                                       .listen = "",
                                       .join_timeout = timeout})) != PC_OK) {
        if (rc == PC_EAUTH)
            fprintf(stderr,
                    NAME ": wrong cluster secret: the registry refused our "
                         "key (%s)\n",
                    secret_name);
        else
            fprintf(stderr, NAME ": joining the registry at %s: %s\n", registry,
                    pc_strerror(rc));
        pc_node_stop();
    } else if ((rc = pc_spawn(client, NULL, NULL, NULL)) != PC_OK) {
        fprintf(stderr, NAME ": starting: %s\n", pc_strerror(rc));
        pc_node_stop();
    }
    pc_node_run();
    return status;
}
