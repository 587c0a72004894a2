/* chat_chan_client.c — a chat client: subscribe to a channel of another
 * node and publish on it (pycos's chat_chan_client.py).
 *
 *     picos-chat-chan-client [--registry EP[,EP]] [--secret-file FILE]
 *                            [--timeout S] [--peers N] [LINE ...]
 *
 * The client node finds the task "chat_server" (pc_locate()) and the
 * channel "chat_channel" (pc_chan_locate(): a proxy of the channel, which
 * lives on the server's node) of picos-chat-chan-server, subscribes its
 * task to the channel and sends the server "join"; the server's "welcome"
 * gives it its id. Then it says each LINE on the channel (pc_chan_send()
 * on the proxy publishes at the channel's home, where the transform
 * rewrites it, or drops it when it is shouting), sends "quit", and ends
 * once the channel brings the server's news of its leaving: by then all
 * it said has passed the home node too.
 * Everything the channel brings from the other clients is printed, as
 * "client ID: OTHER says: text", "client ID: OTHER joined :-)", "client
 * ID: OTHER left :-(" (pycos prints "OTHER message" and skips its own).
 *
 * pycos reads the lines from the terminal; this client takes them as
 * arguments, so that a script can hold a conversation: with --peers N it
 * waits until N other clients are in the chat before it speaks, and stays
 * until N others have left, so that it hears all they say. --timeout S
 * (default 5) bounds the lookups and each wait.
 *
 * Exit status 0 when it got through; 1 with one line on stderr otherwise
 * (the server or the channel not found, silence for longer than S, the
 * server gone); 2 for bad options. The secret, the registry and the errors
 * are as in every cluster example (cluster_ex.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/chan.h"
#include "picos/picos.h"
#include "picos/registry.h"

#include "cluster_ex.h"

#define CHANNEL "chat_channel"
#define SERVER "chat_server"

static ex_cluster x = {
    .prog = "picos-chat-chan-client",
    .usage = "[options] [LINE ...]: says the lines in the chat",
    .options = "  --peers N           wait for N others before speaking, and "
               "for them to leave\n",
};
static int peers;
static const char **lines;
static int nlines;
static int status = 1; /* the client task's verdict, read after the node */

typedef struct chat {
    int me;           /* my id */
    int others, left; /* clients in the chat besides me; of them, gone */
    bool gone;        /* the server announced my leaving */
    pc_ref server;
} chat;

/* Take one message; false (and a line) on silence or the server's end. */
static bool
hear(chat *c)
{
    pc_msg *m = NULL;
    pc_down d;
    char *end;
    long id;

    if (pc_recv(&m, x.timeout) != PC_OK) {
        ex_say(&x, "nothing for %g s (%d others in the chat, %d left)",
               x.timeout, c->others, c->left);
        return false;
    }
    if (pc_down_parse(m, &d) == PC_OK && pc_ref_eq(d.who, c->server)) {
        ex_say(&x, SERVER " went away");
        pc_msg_free(&m);
        return false;
    }
    id = strtol(pc_msg_str(m), &end, 10);
    if (pc_msg_is(m, "chat") && *end == ' ' && id == c->me) {
        /* my own (pycos skips them): all I said was before my leaving */
        c->gone |= !strcmp(end + 1, "left :-(");
    } else if (pc_msg_is(m, "chat") && *end == ' ') {
        printf("client %d: %s\n", c->me, pc_msg_str(m));
        fflush(stdout);
        if (!strcmp(end + 1, "joined :-)") && id > c->me)
            c->others++; /* who came before me is in the welcome's count */
        else if (!strcmp(end + 1, "left :-("))
            c->left++;
    }
    pc_msg_free(&m);
    return true;
}

/* Publish "ID text" of `type` on the channel (through the proxy). */
static bool
say(pc_chan *ch, int me, const char *type, const char *text)
{
    char buf[600];
    pc_msg *m = NULL;
    pc_err rc;

    snprintf(buf, sizeof buf, "%d %.500s", me, text);
    if ((rc = pc_msg_new_str(&m, type, buf)) == PC_OK &&
        (rc = pc_chan_send(ch, &m)) != PC_OK)
        pc_msg_free(&m);
    if (rc != PC_OK)
        ex_say(&x, "saying '%s': %s", text, pc_strerror(rc));
    return rc == PC_OK;
}

/* pycos's send_proc (with recv_proc in hear()). */
static pc_msg *
client(void *arg)
{
    chat c = {0};
    pc_chan *ch;
    pc_msg *w = NULL;
    int members = 0;
    pc_err rc;

    (void)arg;
    /* pycos: Task.locate('chat_server'); Channel.locate('chat_channel') */
    if ((rc = pc_locate(PC_NAME_TASK, SERVER, x.timeout, &c.server)) != PC_OK ||
        (rc = pc_chan_locate(CHANNEL, x.timeout, &ch)) != PC_OK) {
        ex_say(&x, "no " SERVER " and " CHANNEL " in the cluster of %s: %s",
               ex_registry(&x), pc_strerror(rc));
        return NULL;
    }
    /* subscribe first: the server's "joined" waits for it to work */
    if ((rc = pc_chan_subscribe(ch, pc_self())) != PC_OK ||
        (rc = pc_monitor(pc_self(), c.server)) != PC_OK ||
        (rc = pc_send_data(c.server, "join", NULL, 0)) != PC_OK) {
        ex_say(&x, "joining: %s", pc_strerror(rc));
        return NULL;
    }
    /* the welcome, leaving the channel's messages queued */
    if ((rc = pc_recv_type("welcome", &w, x.timeout)) != PC_OK ||
        sscanf(pc_msg_str(w), "%d %d", &c.me, &members) != 2) {
        ex_say(&x, "no welcome from " SERVER ": %s", pc_strerror(rc));
        pc_msg_free(&w);
        return NULL;
    }
    pc_msg_free(&w);
    c.others = members - 1;
    printf("client %d: in the chat, with %d others\n", c.me, c.others);
    fflush(stdout);

    while (c.others < peers)
        if (!hear(&c))
            return NULL;
    for (int i = 0; i < nlines; i++)
        if (!say(ch, c.me, "say", lines[i]))
            return NULL;
    /* pycos: server.send(('quit', client_id)) */
    pc_send_data(c.server, "quit", NULL, 0);
    while (!c.gone || c.left < peers)
        if (!hear(&c))
            return NULL;
    pc_chan_unsubscribe(ch, pc_self());
    printf("client %d: said %d lines, bye\n", c.me, nlines);
    fflush(stdout);
    status = 0;
    return NULL;
}

/* --peers N, and the lines to say (anything not an option). */
static int
option(const char *a, const char *v)
{
    if (v && !strcmp(a, "--peers"))
        return ex_int(v, 0, 1000, &peers) ? 2 : 0;
    if (strncmp(a, "--", 2)) {
        lines[nlines++] = a;
        return 1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    int st;

    lines = calloc((size_t)argc, sizeof *lines);
    if (!lines)
        return 1;
    ex_args(&x, argc, argv, option);
    st = ex_client(&x, client);
    free(lines);
    return st ? st : status;
}
