/* remote_channel_client.c — subscribe to a channel of another node (pycos's
 * remote_channel_client.py).
 *
 *     picos-remote-channel-client (--connect ENDPOINT | --registry EP[,EP])
 *                                 [--secret-file FILE]
 *                                 [--count N] [--timeout S]
 *
 * One client task connects to the node at ENDPOINT (pycos's peer()), gets a
 * proxy of its channel "2clients" (pc_chan_locate_at(), pycos's
 * Channel.locate()) and subscribes itself to it. The server
 * (picos-remote-channel-server) waits with pc_chan_deliver(n = 2) until
 * this subscriber and its own one are there, then delivers "message 1",
 * "message 2", ... and a final "done" carrying how many it sent. The client
 * prints each message and checks that they come in order and that their
 * number is the one "done" says (and N, with --count N); then it ends.
 *
 * Both ends must hold the same cluster secret: --secret-file FILE, else
 * $PICOS_SECRET_FILE, else $PICOS_SECRET. --timeout S (default 5) bounds
 * the connection, the lookup and the wait for each message.
 *
 * Exit status 0 when every message came, in order, then "done"; 1 with one
 * line on stderr otherwise (a missing or bad secret — picos's own line,
 * under the program's name —, a wrong one, nobody answering at ENDPOINT, no
 * such channel there, a message missing or out of order, silence for
 * longer than S); 2 for bad options. PICOS_LOG=info shows picos's log as
 * well.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/chan.h"
#include "picos/net.h"
#include "picos/picos.h"
#include "picos/registry.h"

#include "cluster_ex.h" /* ex_number() */

#define NAME "picos-remote-channel-client"
#define CHANNEL "2clients"

static const char *endpoint;
static const char *registry;
static const char *secret_name; /* where the secret came from, for errors */
static int count = -1;          /* --count: how many to expect; -1 any */
static double timeout = 5.0;
static int status = 1; /* the client task's verdict, read after the node */

static void
log_line(pc_log_level level, const char *module, const char *text, void *u)
{
    (void)level, (void)module, (void)u;
    fprintf(stderr, NAME ": %s\n", text);
}

/* Connect to the server's node and subscribe this task to its channel. */
static bool
subscribe(void)
{
    pc_chan *chan;
    pc_err rc;

    if (registry) { /* by name, anywhere in the cluster */
        if ((rc = pc_chan_locate(CHANNEL, timeout, &chan)) != PC_OK) {
            fprintf(stderr,
                    NAME ": no channel " CHANNEL " in the cluster of %s: %s\n",
                    registry, pc_strerror(rc));
            return false;
        }
        goto subscribe;
    }
    /* pycos: yield scheduler.peer(Location(...)) */
    rc = pc_node_connect(endpoint, timeout, NULL);
    if (rc == PC_ETIMEDOUT) {
        fprintf(stderr, NAME ": no node answered at %s within %g s\n", endpoint,
                timeout);
        return false;
    }
    if (rc == PC_EAUTH) {
        fprintf(stderr,
                NAME ": wrong cluster secret: %s refused our key (%s)\n",
                endpoint, secret_name);
        return false;
    }
    if (rc != PC_OK) {
        fprintf(stderr, NAME ": connecting to %s: %s\n", endpoint,
                pc_strerror(rc));
        return false;
    }
    /* pycos: channel = yield Channel.locate('2clients') */
    if ((rc = pc_chan_locate_at(endpoint, CHANNEL, timeout, &chan)) != PC_OK) {
        fprintf(stderr, NAME ": no channel " CHANNEL " at %s: %s\n", endpoint,
                pc_strerror(rc));
        return false;
    }
subscribe:
    /* The proxy is the node's: it lives until pc_node_run() ends. */
    if ((rc = pc_chan_subscribe(chan, pc_self())) != PC_OK) {
        fprintf(stderr, NAME ": subscribing to " CHANNEL ": %s\n",
                pc_strerror(rc));
        return false;
    }
    return true;
}

/* pycos's client_proc: receive up to "done". */
static pc_msg *
client(void *arg)
{
    char want[32];
    int got = 0;

    (void)arg;
    if (!subscribe())
        return NULL;
    for (;;) {
        pc_msg *m;
        pc_err rc = pc_recv(&m, timeout);
        bool ok;

        if (rc != PC_OK) {
            fprintf(stderr, NAME ": no message within %g s after %d: %s\n",
                    timeout, got, pc_strerror(rc));
            return NULL;
        }
        if (pc_msg_is(m, "done")) {
            /* "done" says how many the server sent. */
            char sent[16];
            snprintf(sent, sizeof sent, "%d", got);
            ok = !strcmp(pc_msg_str(m), sent) && (count < 0 || got == count);
            if (!ok && count >= 0)
                fprintf(stderr,
                        NAME ": got %d messages, the server sent %s, "
                             "expected %d\n",
                        got, pc_msg_str(m), count);
            else if (!ok)
                fprintf(stderr, NAME ": got %d messages, the server sent %s\n",
                        got, pc_msg_str(m));
            pc_msg_free(&m);
            if (!ok)
                return NULL;
            break;
        }
        snprintf(want, sizeof want, "message %d", got + 1);
        ok = pc_msg_is(m, "msg") && !strcmp(pc_msg_str(m), want);
        if (ok)
            printf("client: received '%s'\n", pc_msg_str(m));
        else
            fprintf(stderr, NAME ": expected msg '%s', got %s '%s'\n", want,
                    pc_msg_type(m), pc_msg_str(m));
        fflush(stdout);
        pc_msg_free(&m);
        if (!ok)
            return NULL;
        got++;
    }
    printf("client: %d messages, in order, then done\n", got);
    status = 0;
    return NULL;
}

static void
usage(FILE *f)
{
    fprintf(f, "usage: " NAME " (--connect ENDPOINT | --registry EP[,EP]) "
               "[--secret-file FILE] [--count N] [--timeout S]\n"
               "  --connect ENDPOINT  the server's endpoint (tcp://HOST:PORT)\n"
               "  --registry EP,...   find the channel by name through these "
               "registries\n"
               "  --secret-file FILE  the cluster secret (else "
               "$PICOS_SECRET_FILE, $PICOS_SECRET)\n"
               "  --count N           messages to expect (default: as many "
               "as the server sends)\n"
               "  --timeout S         seconds to wait for the server, each "
               "message (default 5)\n");
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
               /* a client only: it does not listen (the channel's traffic
                * comes over the connections this node opened) */
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
