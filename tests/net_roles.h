/* tests/net_roles.h — tasks that the multi-process link tests run on every
 * node (the driver and each net_peer process), so that one test can play
 * any part on any node.
 *
 *   "echo"     sends every message back to its sender; "stats" answers the
 *              node's pc_net_stats as 8 u64s; "connect" ENDPOINT connects
 *              and answers "connected" (an i32 pc_err); "quit" stops the
 *              node; "last-words" (echoed too) makes its sender the one
 *              that nr_stop() tells "last-words" before it stops the node.
 *   "sink"     checks "seq" messages (one u64 each, numbered from 1 per
 *              sender): counts received, out of order or repeated, and
 *              gaps; "report" answers 4 u64s (received, bad order, gaps,
 *              senders); with a record fd it write()s each seq there first;
 *              "subscribe" "WHERE\nNAME" subscribes it to that node's
 *              channel and answers "subscribed" (an i32 pc_err).
 *   "full"     a mailbox of capacity 1 (PC_MB_FAIL) that is never read.
 * Every node also has a named channel "board" (no transform).
 *   "spawner"  "spawn" makes a joinable task and answers "spawned" with its
 *              ref; that task ends on "exit" (value "value" + the payload),
 *              "fail" (pc_exit_error with the payload), or, told "link" with
 *              a ref, links to it and then waits again.
 *   "blaster"  "blast" {count, senders, target ref} starts `senders` tasks
 *              that send `count` "seq" messages each to target, every 100th
 *              with pc_deliver, retrying on PC_EFULL; answers "blasted"
 *              {efull retries, failed sends, failed delivers} when all end.
 */
#ifndef PICOS_TESTS_NET_ROLES_H
#define PICOS_TESTS_NET_ROLES_H

#include <stdbool.h>
#include <stdint.h>

#include "picos/picos.h"

typedef struct nr_blast {
    uint64_t count, senders;
    pc_ref target;
} nr_blast;

/* Spawn and register the four roles; record_fd < 0: the sink records
 * nothing; keep_alive: echo is not a daemon, so pc_node_run() lasts until
 * "quit". Returns PC_OK or the first error. */
pc_err nr_start(int record_fd, bool keep_alive);

/* Send "last-words" to whoever asked for them last, then pc_node_stop()
 * (net_peer calls it from its SIGTERM thread). */
void nr_stop(void);

#endif
