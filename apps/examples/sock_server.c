/* sock_server.c — a TCP server with a task per connection (pycos's
 * sock_server.py; picos-sock-client is its sock_client.py).
 *
 * An accept task takes connections on 127.0.0.1 and gives each one a task
 * that reads in 128-byte pieces until EOF and reports how many bytes came.
 * The reads suspend only their task, so thousands of connections share a few
 * worker threads.
 *
 *   picos-sock-server [-p PORT]        serve until killed (port 0, the
 *                                      default, picks a free one and prints it)
 *   picos-sock-server --self-test N    also run N client tasks against itself,
 *                                      then check that every byte arrived
 *
 * In the self-test the accept task stops after N connections and the node
 * ends when the last connection task has seen EOF, so no sleeps are needed:
 * the totals are final when pc_node_run() returns.
 */
#define _POSIX_C_SOURCE 200809L /* rand_r */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/picos.h"

#define MESSAGES 5 /* per client */

static uint16_t port;
static long expect_conns = -1; /* -1: serve forever */
static atomic_long sent, received, conns;

static pc_msg *
connection(void *arg)
{
    pc_sock *s = arg;
    char buf[128], peer[64];
    pc_sock_addr a;
    long total = 0;
    size_t n;

    pc_sock_peer_addr(s, &a);
    pc_sock_addr_format(&a, peer, sizeof peer);
    while (pc_sock_read(s, buf, sizeof buf, 60.0, &n) == PC_OK && n > 0)
        total += (long)n;
    pc_sock_close(&s);
    atomic_fetch_add(&received, total);
    atomic_fetch_add(&conns, 1);
    if (expect_conns < 0)
        printf("%s: %ld bytes\n", peer, total), fflush(stdout);
    return NULL;
}

static pc_msg *
acceptor(void *arg)
{
    pc_sock *listener = arg;

    for (long i = 0; expect_conns < 0 || i < expect_conns; i++) {
        pc_sock *c;
        if (pc_sock_accept(listener, &c, -1) != PC_OK ||
            pc_spawn(connection, c, NULL, NULL) != PC_OK)
            break;
    }
    pc_sock_close(&listener);
    return NULL;
}

/* A client as in sock_client.c: a few random-length messages, then close. */
static pc_msg *
client(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    char buf[4096];
    pc_sock *s;

    memset(buf, 'x', sizeof buf);
    if (pc_sock_connect(&s, "127.0.0.1", port, 10.0) != PC_OK) {
        fprintf(stderr, "client: can't connect\n");
        return NULL;
    }
    for (int i = 0; i < MESSAGES; i++) {
        size_t len = 1 + (size_t)rand_r(&seed) % sizeof buf, n = 0;
        pc_sock_write_all(s, buf, len, 10.0, &n);
        atomic_fetch_add(&sent, (long)n);
    }
    pc_sock_close(&s);
    return NULL;
}

int
main(int argc, char **argv)
{
    long clients = 0;
    pc_sock *listener;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-p") == 0 && i + 1 < argc) {
            port = (uint16_t)atoi(argv[++i]);
        } else if (strcmp(argv[i], "--self-test") == 0 && i + 1 < argc) {
            clients = atol(argv[++i]);
            if (clients < 1)
                clients = 1;
            expect_conns = clients;
        } else {
            fprintf(stderr,
                    "usage: picos-sock-server [-p PORT] [--self-test N]\n");
            return 2;
        }
    }
    if (pc_node_start(NULL) != PC_OK ||
        pc_sock_listen(&listener, "127.0.0.1", port, 0) != PC_OK) {
        fprintf(stderr, "picos-sock-server: can't listen on port %u\n",
                (unsigned)port);
        return 1;
    }
    port = pc_sock_port(listener);
    printf("listening on 127.0.0.1:%u\n", (unsigned)port);
    fflush(stdout);
    if (pc_spawn(acceptor, listener, NULL, NULL) != PC_OK)
        return 1;
    for (long i = 0; i < clients; i++)
        if (pc_spawn(client, (void *)(uintptr_t)(i + 1),
                     &(pc_spawn_opts){.worker = PC_WORKER_ANY}, NULL) != PC_OK)
            return 1;
    if (pc_node_run() != PC_OK)
        return 1;
    printf("%ld connections, %ld bytes sent, %ld bytes received\n",
           atomic_load(&conns), atomic_load(&sent), atomic_load(&received));
    if (atomic_load(&conns) != clients || atomic_load(&sent) == 0 ||
        atomic_load(&sent) != atomic_load(&received))
        return 1;
    printf("self-test passed\n");
    return 0;
}
