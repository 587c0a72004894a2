/* ring.c — N tasks in a ring pass one token M times around.
 *
 *     picos-ring [-n TASKS] [-m ROUNDS]      (defaults: 1,000 and 1,000)
 *
 * Task 0 is the driver: it spawns tasks N-1 down to 1, each told where the
 * ref of the next task is kept, then sends the token round M times and times
 * it. A hop is one send and one receive; the token is a single message that
 * every task passes on as it got it (a received message belongs to the
 * receiver). A ring is sequential by nature, so the node has one worker and a
 * hop is a plain context switch. main() prints the figures once the node has
 * shut down cleanly.
 */
#define _POSIX_C_SOURCE 200809L /* getopt */

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "picos/picos.h"

static int ntasks = 1000;
static long rounds = 1000;
static pc_ref *ring; /* ring[i] is task i; ring[0] is the driver */
static double seconds;

static pc_msg *
member(void *arg)
{
    const pc_ref *next = arg; /* read after the first token: all spawned */
    pc_msg *token;

    for (long r = 0; r < rounds; r++)
        if (pc_recv(&token, -1) != PC_OK || pc_send(*next, &token) != PC_OK)
            abort();
    return NULL;
}

static pc_msg *
driver(void *arg)
{
    pc_msg *token;

    (void)arg;
    ring[0] = pc_self();
    for (int i = ntasks - 1; i >= 1; i--)
        if (pc_spawn(member, &ring[(i + 1) % ntasks], NULL, &ring[i]) != PC_OK)
            abort();
    if (pc_msg_new(&token, "token", NULL, 0) != PC_OK)
        abort();
    double t0 = pc_now();
    for (long r = 0; r < rounds; r++)
        if (pc_send(ring[1 % ntasks], &token) != PC_OK ||
            pc_recv(&token, -1) != PC_OK)
            abort();
    seconds = pc_now() - t0;
    pc_msg_free(&token);
    return NULL;
}

int
main(int argc, char **argv)
{
    pc_node_opts opts = {.workers = 1};
    int c;

    while ((c = getopt(argc, argv, "n:m:")) != -1) {
        if (c == 'n')
            ntasks = atoi(optarg);
        else if (c == 'm')
            rounds = atol(optarg);
        if (c == '?' || ntasks < 1 || rounds < 1) {
            fprintf(stderr, "usage: picos-ring [-n TASKS] [-m ROUNDS]\n");
            return 2;
        }
    }
    ring = calloc((size_t)ntasks, sizeof *ring);
    if (!ring || pc_node_start(&opts) != PC_OK ||
        pc_spawn(driver, NULL, NULL, NULL) != PC_OK || pc_node_run() != PC_OK)
        return 1;
    double hops = (double)ntasks * (double)rounds;
    printf("tasks:    %d\nhops:     %.0f\nseconds:  %.3f\n", ntasks, hops,
           seconds);
    printf("per hop:  %.3f µs\n", seconds / hops * 1e6);
    free(ring);
    return 0;
}
