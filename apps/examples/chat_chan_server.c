/* chat_chan_server.c — a chat room: a channel whose transform filters and
 * rewrites what passes through it (pycos's chat_chan_server.py).
 *
 *     picos-chat-chan-server [--registry EP[,EP]] [--secret-file FILE]
 *                            [--listen ENDPOINT] [--timeout S]
 *
 * The node joins the registries and makes the channel "chat_channel",
 * registered cluster-wide (pc_name_register(PC_NAME_CHANNEL)), and the task
 * "chat_server" (pc_register()). Clients (picos-chat-chan-client) on other
 * nodes find both by name, subscribe to the channel and publish on it
 * through their proxy of it; the channel lives here, so its transform runs
 * here, once per message, for every subscriber on every node:
 *   - what a client says ("say": "ID text") becomes "ID says: text",
 *     except shouting (text without lower-case letters), which is dropped;
 *   - the server's own events ("event": "ID joined", "ID bye") become
 *     "ID joined :-)" and "ID left :-(".
 *
 * The server task hands out ids: a client sends it "join", the server
 * announces "ID joined" on the channel with pc_chan_deliver(n = clients in
 * the chat) — which waits until the new client's node is subscribed, so
 * the client sees its own joining and everything after — and only then
 * answers "welcome" with "ID N" (N: clients in the chat now). "quit" (or
 * the client's end, seen by a monitor) announces "ID bye". At SIGTERM or
 * SIGINT the server prints what the channel did — "chat_channel: N
 * messages, D dropped by the transform" — and exits with status 0. The secret,
 * the registry and the errors are as in every cluster example (cluster_ex.h).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/chan.h"
#include "picos/picos.h"
#include "picos/registry.h"

#include "cluster_ex.h"

#define CHANNEL "chat_channel"
#define SERVER "chat_server"
#define MAX_CLIENTS 64

static ex_cluster x = {
    .prog = "picos-chat-chan-server",
    .usage = "[options]: the chat room '" CHANNEL "'",
    .server = true,
};
static pc_chan *chan;

/* Text without a lower-case letter but with an upper-case one. */
static bool
shouting(const char *s)
{
    bool upper = false;

    for (; *s; s++) {
        if (islower((unsigned char)*s))
            return false;
        upper |= isupper((unsigned char)*s) != 0;
    }
    return upper;
}

/* pycos's txfm_msgs(name, msg): runs on the home node (here) for every
 * message published on the channel, by any node. */
static pc_msg *
transform(void *ctx, const char *name, pc_msg *m)
{
    const char *s = pc_msg_str(m), *text;
    char out[600];
    char *end;
    long id = strtol(s, &end, 10);
    pc_msg *t = NULL;

    (void)ctx, (void)name;
    text = end + 1;
    if (end == s || *end != ' ')
        out[0] = '\0'; /* not "ID text": dropped */
    else if (pc_msg_is(m, "say") && !shouting(text))
        snprintf(out, sizeof out, "%ld says: %.500s", id, text);
    else if (pc_msg_is(m, "event") && !strcmp(text, "joined"))
        snprintf(out, sizeof out, "%ld joined :-)", id);
    else if (pc_msg_is(m, "event") && !strcmp(text, "bye"))
        snprintf(out, sizeof out, "%ld left :-(", id);
    else
        out[0] = '\0'; /* shouting, or not ours */
    pc_msg_free(&m);
    if (out[0] && pc_msg_new_str(&t, "chat", out) != PC_OK)
        t = NULL;
    return t; /* NULL drops the message */
}

typedef struct member {
    pc_ref who;
    int id;
} member;

static member members[MAX_CLIENTS];
static int nmembers;

/* An event on the channel; with n > 0, delivered to at least n. */
static void
announce(int id, const char *what, int n)
{
    char text[32];
    pc_msg *m = NULL;
    pc_err rc;

    snprintf(text, sizeof text, "%d %s", id, what);
    if ((rc = pc_msg_new_str(&m, "event", text)) != PC_OK)
        return;
    rc = n > 0 ? pc_chan_deliver(chan, &m, n, x.timeout, NULL)
               : pc_chan_send(chan, &m);
    if (rc != PC_OK) {
        pc_msg_free(&m); /* a failed send leaves it ours */
        ex_say(&x, "announcing '%s': %s", text, pc_strerror(rc));
    }
}

/* Client i has left (quit or ended). */
static void
leave(int i)
{
    int id = members[i].id;

    members[i] = members[--nmembers];
    printf(SERVER ": client %d left (%d in the chat)\n", id, nmembers);
    fflush(stdout);
    announce(id, "bye", 0);
}

static int
find(pc_ref who)
{
    for (int i = 0; i < nmembers; i++)
        if (pc_ref_eq(members[i].who, who))
            return i;
    return -1;
}

/* pycos's server_proc. */
static pc_msg *
server(void *arg)
{
    int next_id = 1;
    pc_msg *m;

    (void)arg;
    while (pc_recv(&m, -1) == PC_OK) {
        pc_ref from = pc_msg_sender(m);
        pc_down d;
        char text[32];
        int i;

        if (pc_down_parse(m, &d) == PC_OK) { /* a client ended, no quit */
            if ((i = find(d.who)) >= 0)
                leave(i);
        } else if (pc_msg_is(m, "join") && find(from) < 0 &&
                   nmembers < MAX_CLIENTS) {
            members[nmembers++] = (member){from, next_id};
            pc_monitor(pc_self(), from);
            printf(SERVER ": client %d joined (%d in the chat)\n", next_id,
                   nmembers);
            fflush(stdout);
            /* once every client in the chat has it, the new one's
             * subscription works: then welcome it */
            announce(next_id, "joined", nmembers);
            snprintf(text, sizeof text, "%d %d", next_id++, nmembers);
            pc_send_data(from, "welcome", text, strlen(text));
        } else if (pc_msg_is(m, "quit") && (i = find(from)) >= 0) {
            pc_demonitor(pc_self(), from);
            leave(i);
        }
        pc_msg_free(&m);
    }
    return NULL;
}

int
main(int argc, char **argv)
{
    pc_spawn_opts daemon = {.flags = PC_TASK_DAEMON};
    pc_chan_stats cs;
    pc_ref ref;
    int st;
    pc_err rc;

    ex_args(&x, argc, argv, NULL);
    if ((st = ex_start(&x)))
        return st;
    /* pycos: Channel('chat_channel', transform=txfm_msgs).register();
     * the server task registered as 'chat_server' */
    if ((rc = pc_chan_new(&chan, CHANNEL, transform, NULL)) == PC_OK &&
        (rc = pc_name_register(PC_NAME_CHANNEL, CHANNEL, PC_REF_NIL,
                               x.timeout)) == PC_OK &&
        (rc = pc_spawn(server, NULL, &daemon, &ref)) == PC_OK)
        rc = pc_register(SERVER, ref);
    rc = ex_serve(&x, rc, CHANNEL " and " SERVER, NULL);
    if (rc == PC_OK && pc_chan_stats_get(chan, &cs) == PC_OK)
        printf(CHANNEL ": %llu messages, %llu dropped by the transform\n",
               (unsigned long long)cs.messages, (unsigned long long)cs.dropped);
    pc_chan_free(&chan);
    return rc == PC_OK ? 0 : 1;
}
