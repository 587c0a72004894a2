/* picos/sock.h — asynchronous sockets for tasks (pycos's AsyncSocket).
 *
 * A pc_sock wraps a non-blocking fd: TCP (IPv4 and IPv6), UDP and Unix
 * domain stream sockets. Its blocking calls suspend only the calling task
 * (built on pc_wait_fd()); they are for tasks only and return PC_EPERM
 * elsewhere. Every blocking call takes a timeout in seconds: negative waits
 * forever, 0 only tries once.
 *
 * Errors: calls return pc_err and leave the system's errno in `errno` (and in
 * pc_sock_errno()) when a system call failed. Mapping:
 *   ECONNREFUSED -> PC_EREFUSED (nobody listens: not the same as a close);
 *   ECONNRESET, ECONNABORTED, EPIPE, ENOTCONN -> PC_ECLOSED
 *   ETIMEDOUT -> PC_ETIMEDOUT;  EHOSTUNREACH, ENETUNREACH, ENETDOWN,
 *   EHOSTDOWN -> PC_EUNREACH;  ENOMEM, ENOBUFS -> PC_ENOMEM;  EMSGSIZE ->
 *   PC_ETOOBIG;  EAFNOSUPPORT, EPROTONOSUPPORT -> PC_ENOTSUP;  EINVAL ->
 *   PC_EINVAL;  anything else -> PC_ESYS.  A name that does not resolve is
 *   PC_ENOENT. A socket closed with pc_sock_close() gives PC_ECLOSED.
 *
 * Ownership: a pc_sock is a heap object with a reference count. The creator
 * holds one reference; pc_sock_retain() adds one for another holder.
 * pc_sock_close(&s) closes the socket for every holder (tasks waiting on it
 * return PC_ECLOSED, later calls too) and drops the caller's reference;
 * pc_sock_release(&s) drops a reference without closing. The fd is closed
 * and the memory freed when the last reference goes, and a task inside a
 * call holds its own reference, so a call in progress never touches freed
 * memory. The rule for users: a task may start a call on `s` only while
 * some reference it can count on is held (its own, or the owner's, which
 * the owner drops only after telling the task to stop).
 *
 * A task terminated (pc_task_terminate) inside a call leaves nothing
 * behind: the reference its call held is dropped by the next close or
 * release of the socket that finds the task gone (a task terminated from
 * another worker may end a moment after such a close: then a daemon task
 * of picos finds it within about 50 ms), so the fd is closed and the peer
 * sees the end once the last holder has closed. References the terminated
 * task held itself (pc_sock_retain) are its own, as any memory it held. A
 * connect terminated while it waits closes its new fd the same way. A
 * stream whose reader or writer was terminated mid-call may be out of step
 * (part of a frame read or written): close it.
 *
 * Concurrency: any number of tasks, on any workers, may use one socket;
 * reads and writes are each one system call at a time, so two tasks writing
 * the same stream at once may interleave their bytes (give each direction
 * one task, or serialise them). Non-blocking calls (close, release, retain,
 * shutdown, port, addresses) work from any thread.
 *
 * Name resolution uses getaddrinfo(), which blocks the worker for non-numeric
 * names: use numeric addresses on hot paths.
 */
#ifndef PICOS_SOCK_H
#define PICOS_SOCK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "picos/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An asynchronous socket; opaque, heap. */
typedef struct pc_sock pc_sock;

/* A socket address (IPv4, IPv6 or Unix); plain value, copy freely. */
typedef struct pc_sock_addr {
    socklen_t len;
    struct sockaddr_storage ss;
} pc_sock_addr;

/* Fill *a from a numeric or named host ("127.0.0.1", "::1", "localhost";
 * NULL: the IPv4 loopback) and port. Returns PC_OK, PC_ENOENT (doesn't
 * resolve), PC_EINVAL. Any thread (may block to resolve a name). */
pc_err pc_sock_addr_make(pc_sock_addr *a, const char *host, uint16_t port);

/* Write "host:port" ("[::1]:80" for IPv6, the path for Unix) into buf (NUL
 * terminated, truncated to size). Returns buf. Any thread. */
char *pc_sock_addr_format(const pc_sock_addr *a, char *buf, size_t size);

/* The port of an IPv4/IPv6 address (0 for others). Any thread. */
uint16_t pc_sock_addr_port(const pc_sock_addr *a);

/* ---- making sockets ---------------------------------------------------------- */

/* A TCP listener on host:port (host NULL: every address, IPv6 and IPv4 when
 * the kernel has IPv6; port 0: an ephemeral port, see pc_sock_port()).
 * backlog <= 0 means SOMAXCONN. SO_REUSEADDR is set. On PC_OK *s is the new
 * socket, owned by the caller. Any thread (doesn't block, except name
 * resolution). */
pc_err pc_sock_listen(pc_sock **s, const char *host, uint16_t port,
                      int backlog);

/* Take the next connection of listener `s` into *client (a new socket owned
 * by the caller; TCP_NODELAY set for TCP), waiting up to `timeout`. Returns
 * PC_OK, PC_ETIMEDOUT, PC_ECLOSED (s closed), PC_EPERM (not a task), or a
 * mapped errno. Tasks only. */
pc_err pc_sock_accept(pc_sock *s, pc_sock **client, double timeout);

/* Connect over TCP to host:port, trying each resolved address in turn within
 * the one `timeout` (a non-blocking connect, then a wait for writability and
 * SO_ERROR). TCP_NODELAY is set. On PC_OK *s is the new socket, owned by the
 * caller. Returns PC_EREFUSED when refused (errno ECONNREFUSED), PC_ETIMEDOUT,
 * PC_ENOENT (host doesn't resolve), PC_EPERM (not a task), or a mapped errno.
 * Tasks only. */
pc_err pc_sock_connect(pc_sock **s, const char *host, uint16_t port,
                       double timeout);

/* Unix domain stream listener bound at `path` (which must not exist; the
 * caller removes the file after closing). backlog <= 0: SOMAXCONN. Returns
 * PC_OK, PC_EINVAL (path too long for sun_path), or a mapped errno. Any
 * thread. */
pc_err pc_sock_unix_listen(pc_sock **s, const char *path, int backlog);

/* Connect to the Unix stream listener at `path`, waiting up to `timeout`
 * while its backlog is full. Returns PC_OK, PC_EREFUSED (nobody listens:
 * ECONNREFUSED), PC_ENOENT (no such file: ENOENT), PC_ETIMEDOUT, PC_EINVAL,
 * PC_EPERM (not a task). Tasks only. */
pc_err pc_sock_unix_connect(pc_sock **s, const char *path, double timeout);

/* A UDP socket bound to host:port (host NULL: every address, dual-stack when
 * possible; port 0: ephemeral). On PC_OK *s is owned by the caller. Any
 * thread. */
pc_err pc_sock_udp(pc_sock **s, const char *host, uint16_t port);

/* Wrap an existing socket fd (made non-blocking here). On PC_OK the socket
 * owns the fd; on error the caller keeps it. Any thread. */
pc_err pc_sock_wrap(pc_sock **s, int fd);

/* ---- references and closing -------------------------------------------------- */

/* Add a reference for another holder (each holder drops its own with
 * pc_sock_close() or pc_sock_release()). Returns s. Any thread. */
pc_sock *pc_sock_retain(pc_sock *s);

/* Close the socket for all holders: every task waiting in a call on it
 * returns PC_ECLOSED at once (also across workers), and later calls return
 * PC_ECLOSED. Then drop the caller's reference and set *s to NULL. The fd
 * itself is closed when the last reference goes (at once unless a task is
 * still inside a call). NULL or *s NULL: no-op. Any thread. */
void pc_sock_close(pc_sock **s);

/* Drop the caller's reference without closing for the others; the last one
 * closes the fd and frees. Sets *s to NULL. Any thread. */
void pc_sock_release(pc_sock **s);

/* Shut down one direction or both: how = PC_READ, PC_WRITE or both (from
 * picos/task.h: 1, 2). The peer sees EOF after PC_WRITE. Returns PC_OK,
 * PC_EINVAL, PC_ECLOSED, or a mapped errno. Any thread. */
pc_err pc_sock_shutdown(pc_sock *s, int how);

/* ---- information --------------------------------------------------------------- */

/* The local port (0 for Unix sockets or on error). Any thread. */
uint16_t pc_sock_port(const pc_sock *s);

/* The local / peer address. Returns PC_OK or a mapped errno. Any thread. */
pc_err pc_sock_local_addr(const pc_sock *s, pc_sock_addr *a);
pc_err pc_sock_peer_addr(const pc_sock *s, pc_sock_addr *a);

/* The fd (for setsockopt; don't close it, don't read it while tasks use the
 * socket). Any thread. */
int pc_sock_fd(const pc_sock *s);

/* The errno of the last failed system call on this socket (0: none). Any
 * thread. */
int pc_sock_errno(const pc_sock *s);

/* ---- stream I/O (tasks only) ----------------------------------------------------- */

/* Read what is available, at least 1 byte and at most len, waiting up to
 * `timeout` for some. Returns PC_OK with *n >= 1, or PC_OK with *n == 0 at
 * EOF; PC_ETIMEDOUT (*n 0); PC_ECLOSED (closed locally, or reset by the
 * peer); PC_EINVAL (len 0). */
pc_err pc_sock_read(pc_sock *s, void *buf, size_t len, double timeout,
                    size_t *n);

/* Read exactly n bytes, within `timeout` in all. Returns PC_OK; PC_ECLOSED
 * when EOF (or a close) comes first; PC_ETIMEDOUT. *got (may be NULL) is
 * how many bytes arrived in every case. */
pc_err pc_sock_read_exact(pc_sock *s, void *buf, size_t n, double timeout,
                          size_t *got);

/* Write all len bytes, across partial writes, within `timeout` in all.
 * Returns PC_OK, PC_ETIMEDOUT, PC_ECLOSED (closed locally, or the peer has
 * gone: EPIPE/ECONNRESET). *sent (may be NULL) is how many bytes went in
 * every case. Never raises SIGPIPE. */
pc_err pc_sock_write_all(pc_sock *s, const void *buf, size_t len,
                         double timeout, size_t *sent);

/* ---- framed messages (tasks only) ------------------------------------------------ */

/* Frames are a 4-byte big-endian length followed by that many bytes
 * (pycos's send_msg/recv_msg, struct '>L'); length 0 is a valid, empty
 * frame. */

/* Send one frame of len bytes (header and payload in one write when they
 * fit). Returns PC_OK, PC_ETOOBIG (len > 0xFFFFFFFF), or as
 * pc_sock_write_all(). After a PC_ETIMEDOUT part of the frame may have gone:
 * the stream is out of step, close it. */
pc_err pc_sock_send_msg(pc_sock *s, const void *data, size_t len,
                        double timeout);

/* Receive one frame, within `timeout` in all. A length above `max` is
 * refused with PC_ETOOBIG before anything is allocated (the payload is left
 * unread: close the socket). On PC_OK *buf is a malloc'd copy of the
 * payload with a NUL byte after it (so text frames are C strings; never NULL,
 * also for an empty frame), *len its length; the caller frees it with
 * free(). Returns PC_ECLOSED at EOF before a frame starts (or on a close),
 * PC_EPROTO at EOF inside a frame, PC_ETIMEDOUT (a frame cut by a timeout is
 * lost: close the socket), PC_ENOMEM. */
pc_err pc_sock_recv_msg(pc_sock *s, size_t max, void **buf, size_t *len,
                        double timeout);

/* ---- datagrams (tasks only) ---------------------------------------------------- */

/* Send one datagram to `to` (an IPv4 address works on a dual-stack IPv6
 * socket). Returns PC_OK, PC_ETIMEDOUT, PC_ETOOBIG (EMSGSIZE), PC_ECLOSED,
 * or a mapped errno. */
pc_err pc_sock_sendto(pc_sock *s, const void *buf, size_t len,
                      const pc_sock_addr *to, double timeout);

/* Receive one datagram into buf (cap bytes), waiting up to `timeout`. *n is
 * its length, *from (may be NULL) the sender. A datagram longer than cap is
 * cut: PC_ETOOBIG with *n == cap. Returns PC_OK, PC_ETIMEDOUT, PC_ECLOSED,
 * PC_ETOOBIG. */
pc_err pc_sock_recvfrom(pc_sock *s, void *buf, size_t cap, size_t *n,
                        pc_sock_addr *from, double timeout);

#ifdef __cplusplus
}
#endif
#endif
