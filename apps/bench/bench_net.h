/* bench_net — picos-bench's remote rows: two picos nodes on loopback.
 *
 * Each call is one run between this process (node A) and a node B in a
 * child it forks for the call (the channel calls: BENCH_NET_SUBS of them). Both
 * nodes have one worker and the ZeroMQ transport with CURVE, keyed by a random
 * secret the call writes to a temp file (mode 0600) that both load and that is
 * removed as soon as both have; B listens on tcp://127.0.0.1:0, registers its
 * one task as "bench" and passes its endpoint back through a pipe; A connects
 * and locates it. Before each measurement BENCH_NET_WARMUP untimed round trips
 * are made (as many as bench_zmq's), so connection, handshake and first
 * messages are done with.
 *
 * The children are forked at the start of the call, before this process
 * has a node or a ZeroMQ context of its own: call it when neither exists
 * (after bench_zmq_*, whose context is gone when they return; never while a
 * node runs). Each closes every descriptor it inherits but stdin, stdout,
 * stderr and its pipe and ends with _exit(). None outlives the call: each is
 * told to stop and reaped before the call returns, killed on every failure,
 * dies with the thread that forked it (PR_SET_PDEATHSIG) and on an alarm of
 * BENCH_NET_PEER_TIMEOUT seconds at the latest.
 *
 * Calls block the calling thread (the main thread: the call starts and runs
 * a node of its own and returns after pc_node_run()) and return a negative
 * value on failure, after printing why on stderr. `size` >= 1, `n` >= 1.
 * `info` (may be NULL) gets the links' counters over the timed part.
 */
#ifndef PICOS_BENCH_NET_H
#define PICOS_BENCH_NET_H

#include <stddef.h>

#include "picos/net.h"

/* Untimed round trips before each measurement. */
#define BENCH_NET_WARMUP 1000

/* Every node's pc_net_opts.timeout, seconds; 0.0: the default (1 s). It
 * was 10 s while the link thread's slice counted frames (256, with ~4,000
 * envelopes in a frame a slice could run a second without a tick, and B was
 * declared down in every full-size net-stream on the shared 2-core VMs).
 * Slices count envelopes now (ENV_BUDGET 8192, transport/link.c) and
 * batches are 64 KiB at most (~370 envelopes): with the default, 8 of 8
 * full-size net-stream runs and every net-chan / net-chan-deliver run
 * passed (2026-12). */
#define BENCH_NET_TIMEOUT 0.0

/* The child's alarm, in seconds. */
#define BENCH_NET_PEER_TIMEOUT 300

/* Where every node of the next calls (A and each B) runs its links:
 * pc_net_opts.link_worker. 0 (the default here as in pc_net_start): on
 * their one worker's loop, unless $PICOS_NET_LINK_WORKER says otherwise;
 * PC_NET_LINK_THREAD: a link thread of their own. */
extern int bench_net_link_worker;

/* Subscriber nodes of the channel calls. */
#define BENCH_NET_SUBS 3

typedef struct bench_net_info {
    long efull;     /* stream: pc_send answers PC_EFULL, each retried */
    pc_net_stats a; /* node A's counters, timed part (after minus before) */
    pc_net_stats b; /* node B's (the first B's for the channel calls), over
                       the same part as B saw it */
    /* Channel calls: messages each B's task took in the timed part, and
     * the publications their SUBs missed by sequence (pc_net_stats
     * chan_missed, summed over the Bs). */
    long got[BENCH_NET_SUBS];
    unsigned long long chan_missed;
} bench_net_info;

/* Round trip task → task: a task on A sends a new `size`-byte message to
 * B's task, which sends that message back (pc_send of what it received);
 * the A task waits for it (pc_recv), frees it and sends the next. `n` timed
 * round trips. Returns the mean µs per round trip. */
double bench_net_rtt(size_t size, long n, bench_net_info *info);

/* One-way stream: `senders` tasks on A (spawned before the clock starts)
 * send n / senders `size`-byte messages each (the rest to the first), a new
 * message per pc_send; a PC_EFULL answer (A's queue for B is full) is
 * counted and retried after pc_sleep(BENCH_NET_EFULL_SLEEP). B's task counts
 * them; when the last has come it sends back the CLOCK_MONOTONIC time at
 * which it took it (the clock is system-wide). Timed from just before the
 * first send to that. Returns messages per second. */
#define BENCH_NET_EFULL_SLEEP 0.0002
double bench_net_stream(size_t size, long n, int senders, bench_net_info *info);

/* Remote deliver: a task on A pc_deliver()s a new `size`-byte message to
 * B's task, which frees it; each waits for B's verdict (the message is in
 * B's mailbox) before the next. `n` timed. Returns the mean µs per
 * pc_deliver(). */
double bench_net_deliver(size_t size, long n, bench_net_info *info);

/* Channel publish, best effort: A makes channel "bench"; each of
 * BENCH_NET_SUBS nodes B (which listen; A connects to each and each connects
 * back, as a subscriber node needs a link to the home) locates it
 * (pc_chan_locate_at) and subscribes one task, and A checks that a
 * pc_chan_deliver() with n = BENCH_NET_SUBS reaches them all. Then A's task
 * pc_chan_send()s `n` new `size`-byte messages (PUB; what its high-water
 * mark drops is lost), each B's task counts them and notes when it took
 * each (CLOCK_MONOTONIC). Timed from just before the first send to the
 * latest last take; a B that never gets all n is taken as done once its
 * count stays the same over two polls BENCH_NET_SETTLE seconds apart.
 * Returns deliveries (sum of info->got) per second. */
#define BENCH_NET_SETTLE 0.25
double bench_net_chan(size_t size, long n, bench_net_info *info);

/* Channel deliver: the same set-up; A's task pc_chan_deliver()s a new
 * `size`-byte message with n = BENCH_NET_SUBS (each B's task frees it) and
 * waits for the verdict, which must count BENCH_NET_SUBS, before the next.
 * `n` timed. Returns the mean µs per pc_chan_deliver(). */
double bench_net_chan_deliver(size_t size, long n, bench_net_info *info);

#endif
