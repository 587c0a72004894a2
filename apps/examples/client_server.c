/* client_server.c — clients and a server talking by messages (pycos's
 * client_server.py).
 *
 * A daemon server task answers every request with its number in the order
 * served; ten client tasks send it three requests each and wait for each
 * reply. A message carries its sender's ref, so the server knows where to
 * reply without being told. The tasks spread over the node's workers and run
 * in parallel, yet nothing needs a lock: the request counter belongs to the
 * server alone, and the clients learn it only from replies. (In pycos the
 * clients bump a global counter, which is safe there only because all tasks
 * share one thread.)
 *
 * The server is a daemon, so pc_node_run() returns once the clients are done;
 * main() then prints the server's count, which is safe to read once the node
 * is down.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "picos/picos.h"

#define NCLIENTS 10
#define NREQUESTS 3

static pc_ref server_ref;
static int served; /* the server's count */

static pc_msg *
server(void *arg)
{
    pc_msg *m;

    (void)arg;
    while (pc_recv(&m, -1) == PC_OK) {
        served++;
        printf("server: request %d: %s\n", served, pc_msg_str(m));
        pc_send_data(pc_msg_sender(m), "served", &served, sizeof served);
        pc_msg_free(&m);
    }
    return NULL;
}

static pc_msg *
client(void *arg)
{
    int id = (int)(intptr_t)arg, numbers[NREQUESTS];
    char text[64];
    pc_msg *m;

    for (int i = 0; i < NREQUESTS; i++) {
        snprintf(text, sizeof text, "client %d, message %d", id, i + 1);
        if (pc_msg_new_str(&m, "request", text) != PC_OK ||
            pc_send(server_ref, &m) != PC_OK) {
            pc_msg_free(&m);
            return NULL;
        }
        if (pc_recv(&m, 10.0) != PC_OK)
            return NULL;
        memcpy(&numbers[i], pc_msg_data(m, NULL), sizeof numbers[i]);
        pc_msg_free(&m);
    }
    printf("client %d: served as requests %d, %d and %d\n", id, numbers[0],
           numbers[1], numbers[2]);
    return NULL;
}

int
main(void)
{
    pc_spawn_opts daemon = {.flags = PC_TASK_DAEMON};

    if (pc_node_start(NULL) != PC_OK ||
        pc_spawn(server, NULL, &daemon, &server_ref) != PC_OK)
        return 1;
    for (int i = 0; i < NCLIENTS; i++)
        if (pc_spawn(client, (void *)(intptr_t)i, NULL, NULL) != PC_OK)
            return 1;
    if (pc_node_run() != PC_OK)
        return 1;
    printf("%d requests served\n", served);
    return served == NCLIENTS * NREQUESTS ? 0 : 1;
}
