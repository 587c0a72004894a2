/* bench_zmq — raw ZeroMQ baselines for picos-bench's remote rows.
 *
 * Each call measures plain libzmq (no picos) between this process and a
 * peer process it forks for the call, over tcp://127.0.0.1, so that a picos
 * row can print, beside its own figure, what ZeroMQ alone does on the same
 * machine in the same run. This process holds a DEALER that connects; the
 * peer holds a ROUTER that binds port 0 and passes the port back through a
 * pipe. With `curve`, both ends use CURVE (fresh zmq_curve_keypair()s; the
 * ROUTER is ZMQ_CURVE_SERVER, no ZAP handler); without, the NULL mechanism.
 * Both sockets keep libzmq's default high-water marks (1,000 messages).
 *
 * The peer is forked at the start of each call, before the call makes its
 * own ZeroMQ context; it closes every descriptor it inherits but stdin,
 * stdout, stderr and its pipe, never touches anything else it inherited,
 * and ends with _exit(). Calling while the caller has contexts of its own
 * is therefore allowed, but call before the caller starts its node when you
 * can: the node's threads would share the cores with the measurement. The
 * peer never outlives the call: it is reaped before the call returns and
 * killed on every failure; it dies with this thread (PR_SET_PDEATHSIG) and
 * on an alarm of BENCH_ZMQ_PEER_TIMEOUT seconds at the latest.
 *
 * Both calls block the calling thread (any thread; one call at a time per
 * process, since each reaps its own child by pid) and return a negative
 * value on failure, after printing why on stderr. `size` must be at least 1
 * (an empty message tells the peer to stop) and `n` at least 1.
 */
#ifndef PICOS_BENCH_ZMQ_H
#define PICOS_BENCH_ZMQ_H

#include <stdbool.h>
#include <stddef.h>

/* Untimed round trips made before each measurement: the connection, the
 * CURVE handshake and both ends' first messages are done with by then. */
#define BENCH_ZMQ_WARMUP 1000

/* The peer's alarm, in seconds. */
#define BENCH_ZMQ_PEER_TIMEOUT 300

/* Round trip of a `size`-byte message: the DEALER sends it, the ROUTER
 * echoes it back, the DEALER waits for it before sending the next. `n`
 * timed round trips after BENCH_ZMQ_WARMUP untimed ones. Returns the mean
 * µs per round trip, or a negative value on failure. */
double bench_zmq_rtt(bool curve, size_t size, long n);

/* One-way stream: after BENCH_ZMQ_WARMUP untimed round trips, the DEALER
 * sends `n` `size`-byte messages, one ZeroMQ message each (zmq_send, as
 * fast as the high-water mark lets it), and the ROUTER counts them; when
 * the last has come, the ROUTER sends back the CLOCK_MONOTONIC time at which
 * it took it (the clock is system-wide). The time is from just before the
 * first send to that. Returns messages per second, or a negative value on
 * failure. */
double bench_zmq_stream(bool curve, size_t size, long n);

#endif
