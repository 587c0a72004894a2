/* sock_client.c — many client tasks writing to picos-sock-server (pycos's
 * sock_client.py).
 *
 *   picos-sock-client -p PORT [-H HOST] [-n CLIENTS] [-m MESSAGES]
 *
 * Each client task connects, sends MESSAGES messages of random length (1 to
 * 4096 bytes) and closes; the server reports each connection's byte count,
 * which should match what the client printed. Exit 0 when every client sent
 * everything.
 */
#define _POSIX_C_SOURCE 200809L /* rand_r */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/picos.h"

static const char *host = "127.0.0.1";
static uint16_t port;
static int messages = 5;
static atomic_int failed;

static pc_msg *
client(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    char buf[4096], local[64];
    pc_sock_addr a;
    long total = 0;
    pc_sock *s;
    pc_err rc;

    memset(buf, 'x', sizeof buf);
    if ((rc = pc_sock_connect(&s, host, port, 10.0)) != PC_OK) {
        fprintf(stderr, "client %u: connect: %s\n", seed, pc_err_name(rc));
        atomic_fetch_add(&failed, 1);
        return NULL;
    }
    pc_sock_local_addr(s, &a);
    pc_sock_addr_format(&a, local, sizeof local);
    for (int i = 0; i < messages; i++) {
        size_t len = 1 + (size_t)rand_r(&seed) % sizeof buf;
        if ((rc = pc_sock_write_all(s, buf, len, 10.0, NULL)) != PC_OK) {
            fprintf(stderr, "client %s: write: %s\n", local, pc_err_name(rc));
            atomic_fetch_add(&failed, 1);
            break;
        }
        total += (long)len;
    }
    pc_sock_close(&s);
    printf("%s: sent %ld bytes\n", local, total);
    return NULL;
}

int
main(int argc, char **argv)
{
    int n = 10;

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "-p") == 0)
            port = (uint16_t)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "-H") == 0)
            host = argv[i + 1];
        else if (strcmp(argv[i], "-n") == 0)
            n = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "-m") == 0)
            messages = atoi(argv[i + 1]);
    }
    if (port == 0 || argc % 2 == 0) {
        fprintf(stderr, "usage: picos-sock-client -p PORT [-H HOST] "
                        "[-n CLIENTS] [-m MESSAGES]\n");
        return 2;
    }
    if (pc_node_start(NULL) != PC_OK)
        return 1;
    for (int i = 0; i < n; i++)
        if (pc_spawn(client, (void *)(uintptr_t)(i + 1),
                     &(pc_spawn_opts){.worker = PC_WORKER_ANY}, NULL) != PC_OK)
            return 1;
    if (pc_node_run() != PC_OK)
        return 1;
    return atomic_load(&failed) == 0 ? 0 : 1;
}
