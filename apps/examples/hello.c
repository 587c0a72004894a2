/* hello.c — the smallest picos program: an echo task and a client task.
 *
 * The echo is a daemon, so pc_node_run() returns once the client is done. It
 * sends each message it receives back to its sender: a received message
 * belongs to the receiver, so it may pass it on as it is (and the reply then
 * names the echo as its sender).
 */
#include <stdio.h>
#include <string.h>

#include "picos/picos.h"

static pc_msg *
echo(void *arg)
{
    pc_msg *m;

    (void)arg;
    while (pc_recv(&m, -1) == PC_OK) {
        pc_send(pc_msg_sender(m), &m);
        pc_msg_free(&m); /* only if the send failed: it NULLs m otherwise */
    }
    return NULL;
}

static pc_msg *
client(void *arg)
{
    pc_ref to = *(pc_ref *)arg;
    const char *words[] = {"hello", "picos", "world"};

    for (int i = 0; i < 3; i++) {
        pc_msg *m;
        pc_send_data(to, "text", words[i], strlen(words[i]));
        if (pc_recv(&m, 1.0) != PC_OK)
            return NULL;
        printf("reply %d: %s\n", i + 1, pc_msg_str(m));
        pc_msg_free(&m);
    }
    return NULL;
}

int
main(void)
{
    pc_spawn_opts daemon = {.flags = PC_TASK_DAEMON};
    pc_ref echo_ref;

    pc_node_start(NULL);
    pc_spawn(echo, NULL, &daemon, &echo_ref);
    pc_spawn(client, &echo_ref, NULL, NULL);
    return pc_node_run() == PC_OK ? 0 : 1;
}
