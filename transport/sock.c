/* transport/sock.c — asynchronous sockets (pycos's AsyncSocket) on
 * pc_wait_fd().
 *
 * Every fd is non-blocking. A call first tries the system call; on EAGAIN it
 * waits in pc_wait_fd() for the direction it needs and tries again, with the
 * one deadline of the call, so a blocking call suspends only its task.
 *
 * Closing while others wait, references and terminated callers live in
 * fdwait.c (a tp_obj first in every pc_sock): each pc_sock keeps, under its
 * own mutex (never held across a wait), the refs of the tasks now waiting
 * on it and a `closed` flag; pc_sock_close() sets the flag and cancels
 * their pc_wait_fd(), so they return PC_ECLOSED from any worker or thread.
 *
 * Memory: the object is reference counted. Holders own references
 * (pc_sock_retain/close/release) and every call holds one more for its own
 * duration, so the fd is closed and the object freed only when nobody is
 * inside a call: a woken waiter never touches freed memory and its fd
 * number can't be reused under its libev watcher. A task terminated inside
 * a call is terminated where it waits, where it is registered: the close
 * or release that finds it gone drops the reference its call left behind
 * (fdwait.h), so the fd is still closed. A connect makes its socket before
 * it waits, so a connecting fd is also found and closed, and copies the
 * resolved addresses to its stack so that nothing of getaddrinfo() is held
 * across a wait.
 */
#define _GNU_SOURCE
#include "picos/sock.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "picos/node.h"
#include "picos/ref.h"
#include "picos/task.h"

#include "fdwait.h"

struct pc_sock {
    tp_obj o; /* references, closed flag, waiters (fdwait.h); first */
    int fd;
    int family;
    int type;       /* SOCK_STREAM or SOCK_DGRAM */
    atomic_int err; /* last errno */
};

/* ---- errors -------------------------------------------------------------------- */

static pc_err
map_errno(int e)
{
    switch (e) {
    case ECONNREFUSED:
        return PC_EREFUSED;
    case ECONNRESET:
    case ECONNABORTED:
    case EPIPE:
    case ENOTCONN:
        return PC_ECLOSED;
    case ETIMEDOUT:
        return PC_ETIMEDOUT;
    case EHOSTUNREACH:
    case ENETUNREACH:
    case ENETDOWN:
    case EHOSTDOWN:
        return PC_EUNREACH;
    case ENOMEM:
    case ENOBUFS:
        return PC_ENOMEM;
    case EMSGSIZE:
        return PC_ETOOBIG;
    case EAFNOSUPPORT:
    case EPROTONOSUPPORT:
        return PC_ENOTSUP;
    case EINVAL:
        return PC_EINVAL;
    default:
        return PC_ESYS;
    }
}

/* Record errno on s (may be NULL) and map it; errno is left as it was. */
static pc_err
sys_fail(pc_sock *s)
{
    int e = errno;

    if (s)
        atomic_store_explicit(&s->err, e, memory_order_relaxed);
    errno = e;
    return map_errno(e);
}

/* ---- objects and references ------------------------------------------------------- */

static void
sock_destroy(tp_obj *o)
{
    pc_sock *s = (pc_sock *)o;
    int e = errno;

    close(s->fd);
    tp_obj_fini(&s->o);
    free(s);
    errno = e;
}

static pc_err
sock_new(pc_sock **out, int fd, int family, int type)
{
    pc_sock *s = calloc(1, sizeof *s);

    if (!s)
        return PC_ENOMEM;
    tp_obj_init(&s->o, sock_destroy);
    s->fd = fd;
    s->family = family;
    s->type = type;
    atomic_init(&s->err, 0);
    *out = s;
    return PC_OK;
}

pc_sock *
pc_sock_retain(pc_sock *s)
{
    if (s)
        tp_obj_retain(&s->o);
    return s;
}

void
pc_sock_release(pc_sock **sp)
{
    if (!sp || !*sp)
        return;
    tp_obj_release(&(*sp)->o);
    *sp = NULL;
}

void
pc_sock_close(pc_sock **sp)
{
    pc_sock *s;

    if (!sp || !*sp)
        return;
    s = *sp;
    *sp = NULL;
    tp_obj_close(&s->o, NULL);
}

/* Enter a call: PC_ECLOSED when closed, else hold a reference until leave(). */
static pc_err
enter(pc_sock *s)
{
    return s ? tp_obj_enter(&s->o) : PC_EINVAL;
}

static pc_err
leave(pc_sock *s, pc_err rc)
{
    return tp_obj_leave(&s->o, rc);
}

static bool
closed(const pc_sock *s)
{
    return tp_obj_closed(&s->o);
}

/* Wait until s->fd is ready for `ev` or the deadline passes, registered as a
 * waiter so that a close wakes us. */
static pc_err
wait_io(pc_sock *s, int ev, double deadline)
{
    return tp_obj_wait(&s->o, s->fd, ev, deadline);
}

static bool
would_block(int e)
{
    return e == EAGAIN || e == EWOULDBLOCK || e == EINTR;
}

/* ---- addresses ----------------------------------------------------------------------- */

static pc_err
resolve(const char *host, uint16_t port, int socktype, bool passive,
        struct addrinfo **res)
{
    struct addrinfo hints;
    char ps[8];
    int r;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = socktype;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    snprintf(ps, sizeof ps, "%u", (unsigned)port);
    r = getaddrinfo(host, ps, &hints, res);
    switch (r) {
    case 0:
        return PC_OK;
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
    case EAI_FAIL:
        return PC_ENOENT;
    case EAI_MEMORY:
        return PC_ENOMEM;
    case EAI_SYSTEM:
        return map_errno(errno);
    default:
        return PC_EINVAL;
    }
}

pc_err
pc_sock_addr_make(pc_sock_addr *a, const char *host, uint16_t port)
{
    struct addrinfo *res = NULL;
    pc_err rc;

    if (!a)
        return PC_EINVAL;
    memset(a, 0, sizeof *a);
    rc = resolve(host ? host : "127.0.0.1", port, SOCK_DGRAM, false, &res);
    if (rc != PC_OK)
        return rc;
    memcpy(&a->ss, res->ai_addr, res->ai_addrlen);
    a->len = res->ai_addrlen;
    freeaddrinfo(res);
    return PC_OK;
}

char *
pc_sock_addr_format(const pc_sock_addr *a, char *buf, size_t size)
{
    char h[INET6_ADDRSTRLEN];
    const struct sockaddr *sa = (const struct sockaddr *)&a->ss;

    if (!buf || size == 0)
        return buf;
    buf[0] = 0;
    if (sa->sa_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)&a->ss;
        snprintf(buf, size, "%s", un->sun_path);
    } else if (getnameinfo(sa, a->len, h, sizeof h, NULL, 0, NI_NUMERICHOST) ==
               0) {
        snprintf(buf, size, sa->sa_family == AF_INET6 ? "[%s]:%u" : "%s:%u", h,
                 (unsigned)pc_sock_addr_port(a));
    }
    return buf;
}

uint16_t
pc_sock_addr_port(const pc_sock_addr *a)
{
    if (!a)
        return 0;
    if (a->ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    if (a->ss.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
    return 0;
}

/* ---- making sockets ----------------------------------------------------------------- */

static int
new_fd(int family, int type)
{
    return socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

static void
set_nodelay(int fd, int family)
{
    int one = 1;

    if (family == AF_INET || family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Bind (and listen, for streams) a new socket on one address. */
static pc_err
bind_one(pc_sock **out, const struct sockaddr *sa, socklen_t len, int type,
         int backlog, bool dual)
{
    int fd, one = 1, zero = 0, e;
    pc_err rc;

    fd = new_fd(sa->sa_family, type);
    if (fd < 0)
        return sys_fail(NULL);
    if (sa->sa_family != AF_UNIX)
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (dual)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (bind(fd, sa, len) < 0 ||
        (type == SOCK_STREAM &&
         listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0)) {
        rc = sys_fail(NULL);
        e = errno;
        close(fd);
        errno = e;
        return rc;
    }
    rc = sock_new(out, fd, sa->sa_family, type);
    if (rc != PC_OK)
        close(fd);
    return rc;
}

/* host NULL: "::" dual-stack, falling back to 0.0.0.0 without IPv6. */
static pc_err
bind_inet(pc_sock **s, const char *host, uint16_t port, int type, int backlog)
{
    struct addrinfo *res = NULL, *ai;
    pc_err rc;

    if (!s)
        return PC_EINVAL;
    *s = NULL;
    if (!host) {
        struct sockaddr_in6 a6;
        struct sockaddr_in a4;

        memset(&a6, 0, sizeof a6);
        a6.sin6_family = AF_INET6;
        a6.sin6_addr = in6addr_any;
        a6.sin6_port = htons(port);
        rc =
            bind_one(s, (struct sockaddr *)&a6, sizeof a6, type, backlog, true);
        if (rc != PC_ENOTSUP)
            return rc;
        memset(&a4, 0, sizeof a4);
        a4.sin_family = AF_INET;
        a4.sin_addr.s_addr = htonl(INADDR_ANY);
        a4.sin_port = htons(port);
        return bind_one(s, (struct sockaddr *)&a4, sizeof a4, type, backlog,
                        false);
    }
    rc = resolve(host, port, type, true, &res);
    if (rc != PC_OK)
        return rc;
    rc = PC_ENOENT;
    for (ai = res; ai; ai = ai->ai_next) {
        rc = bind_one(s, ai->ai_addr, ai->ai_addrlen, type, backlog, false);
        if (rc == PC_OK)
            break;
    }
    freeaddrinfo(res);
    return rc;
}

pc_err
pc_sock_listen(pc_sock **s, const char *host, uint16_t port, int backlog)
{
    return bind_inet(s, host, port, SOCK_STREAM, backlog);
}

pc_err
pc_sock_udp(pc_sock **s, const char *host, uint16_t port)
{
    return bind_inet(s, host, port, SOCK_DGRAM, 0);
}

pc_err
pc_sock_wrap(pc_sock **s, int fd)
{
    int type = 0, fl;
    socklen_t tl = sizeof type;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;

    if (!s || fd < 0)
        return PC_EINVAL;
    *s = NULL;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        return sys_fail(NULL);
    fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return sys_fail(NULL);
    return sock_new(s, fd, ss.ss_family, type);
}

/* Connect s (a new socket nobody else knows of) to sa within deadline (a
 * task). While it waits, s is on the watch list: should the caller be
 * terminated there, its call reference is found and the fd closed. */
static pc_err
connect_sock(pc_sock *s, const struct sockaddr *sa, socklen_t len,
             double deadline)
{
    int soerr = 0, e;
    socklen_t sl = sizeof soerr;
    bool watched = false;
    pc_err rc;

    for (;;) {
        if (connect(s->fd, sa, len) == 0)
            return PC_OK;
        if (errno == EINPROGRESS || errno == EINTR)
            break;
        if (errno == EAGAIN && sa->sa_family == AF_UNIX) {
            /* a full Unix backlog doesn't signal writability: poll it */
            double l = pc_deadline_left(deadline);
            if (l == 0) {
                rc = PC_ETIMEDOUT;
                goto out;
            }
            if (!watched)
                tp_obj_watch(&s->o);
            watched = true;
            (void)tp_obj_sleep(&s->o, l < 0 || l > 0.005 ? 0.005 : l);
            continue;
        }
        rc = sys_fail(NULL);
        goto out;
    }
    if (!watched)
        tp_obj_watch(&s->o);
    watched = true;
    rc = wait_io(s, PC_WRITE, deadline);
    if (rc == PC_OK &&
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) {
        rc = sys_fail(NULL);
    } else if (rc == PC_OK && soerr) {
        errno = soerr;
        rc = map_errno(soerr);
    }
out:
    e = errno;
    if (watched)
        tp_obj_unwatch(&s->o);
    errno = e;
    return rc;
}

/* A new stream socket of `family` connected to sa within deadline: *out on
 * PC_OK; errno kept on failure. */
static pc_err
connect_new(pc_sock **out, int family, const struct sockaddr *sa, socklen_t len,
            double deadline)
{
    int fd = new_fd(family, SOCK_STREAM), e;
    pc_sock *s;
    pc_err rc;

    if (fd < 0)
        return sys_fail(NULL);
    if ((rc = sock_new(&s, fd, family, SOCK_STREAM)) != PC_OK) {
        close(fd);
        return rc;
    }
    rc = connect_sock(s, sa, len, deadline);
    if (rc != PC_OK) {
        e = errno;
        tp_obj_unref(&s->o);
        errno = e;
        return rc;
    }
    set_nodelay(fd, family);
    *out = s;
    return PC_OK;
}

/* Addresses tried by one connect, copied out of getaddrinfo()'s list so
 * that nothing of it is held across a wait. */
#define MAX_ADDRS 8

struct addr {
    struct sockaddr_storage ss;
    socklen_t len;
    int family;
};

pc_err
pc_sock_connect(pc_sock **s, const char *host, uint16_t port, double timeout)
{
    struct addrinfo *res = NULL, *ai;
    struct addr addrs[MAX_ADDRS];
    double deadline = pc_deadline(timeout);
    size_t n = 0;
    int e = 0;
    pc_err rc;

    if (!s)
        return PC_EINVAL;
    *s = NULL;
    if (!pc_in_task())
        return PC_EPERM;
    rc = resolve(host ? host : "127.0.0.1", port, SOCK_STREAM, false, &res);
    if (rc != PC_OK)
        return rc;
    for (ai = res; ai && n < MAX_ADDRS; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof addrs[n].ss)
            continue;
        memcpy(&addrs[n].ss, ai->ai_addr, ai->ai_addrlen);
        addrs[n].len = ai->ai_addrlen;
        addrs[n].family = ai->ai_family;
        n++;
    }
    freeaddrinfo(res);
    rc = PC_ENOENT;
    for (size_t i = 0; i < n; i++) {
        rc = connect_new(s, addrs[i].family,
                         (const struct sockaddr *)&addrs[i].ss, addrs[i].len,
                         deadline);
        e = errno;
        if (rc == PC_OK || rc == PC_ETIMEDOUT)
            break;
    }
    if (rc != PC_OK)
        errno = e;
    return rc;
}

static pc_err
unix_addr(struct sockaddr_un *un, const char *path)
{
    if (!path || !path[0] || strlen(path) >= sizeof un->sun_path)
        return PC_EINVAL;
    memset(un, 0, sizeof *un);
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, strlen(path) + 1);
    return PC_OK;
}

pc_err
pc_sock_unix_listen(pc_sock **s, const char *path, int backlog)
{
    struct sockaddr_un un;
    pc_err rc;

    if (!s)
        return PC_EINVAL;
    *s = NULL;
    if ((rc = unix_addr(&un, path)) != PC_OK)
        return rc;
    return bind_one(s, (struct sockaddr *)&un, sizeof un, SOCK_STREAM, backlog,
                    false);
}

pc_err
pc_sock_unix_connect(pc_sock **s, const char *path, double timeout)
{
    struct sockaddr_un un;
    pc_err rc;

    if (!s)
        return PC_EINVAL;
    *s = NULL;
    if ((rc = unix_addr(&un, path)) != PC_OK)
        return rc;
    if (!pc_in_task())
        return PC_EPERM;
    rc = connect_new(s, AF_UNIX, (struct sockaddr *)&un, sizeof un,
                     pc_deadline(timeout));
    if (rc == PC_ESYS && errno == ENOENT)
        rc = PC_ENOENT;
    return rc;
}

pc_err
pc_sock_accept(pc_sock *s, pc_sock **client, double timeout)
{
    double deadline = pc_deadline(timeout);
    struct sockaddr_storage ss;
    socklen_t sl;
    pc_err rc;
    int fd;

    if (!client)
        return PC_EINVAL;
    *client = NULL;
    if ((rc = enter(s)) != PC_OK)
        return rc;
    for (;;) {
        if (closed(s))
            return leave(s, PC_ECLOSED);
        sl = sizeof ss;
        fd = accept4(s->fd, (struct sockaddr *)&ss, &sl,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0)
            break;
        if (!would_block(errno) && errno != ECONNABORTED)
            return leave(s, sys_fail(s));
        if ((rc = wait_io(s, PC_READ, deadline)) != PC_OK)
            return leave(s, rc);
    }
    set_nodelay(fd, s->family);
    rc = sock_new(client, fd, s->family, SOCK_STREAM);
    if (rc != PC_OK)
        close(fd);
    return leave(s, rc);
}

/* ---- information and shutdown ------------------------------------------------------- */

pc_err
pc_sock_shutdown(pc_sock *s, int how)
{
    int h;

    if (!s)
        return PC_EINVAL;
    switch (how) {
    case PC_READ:
        h = SHUT_RD;
        break;
    case PC_WRITE:
        h = SHUT_WR;
        break;
    case PC_READ | PC_WRITE:
        h = SHUT_RDWR;
        break;
    default:
        return PC_EINVAL;
    }
    if (closed(s))
        return PC_ECLOSED;
    return shutdown(s->fd, h) < 0 ? sys_fail(s) : PC_OK;
}

pc_err
pc_sock_local_addr(const pc_sock *s, pc_sock_addr *a)
{
    if (!s || !a)
        return PC_EINVAL;
    memset(a, 0, sizeof *a);
    a->len = sizeof a->ss;
    if (getsockname(s->fd, (struct sockaddr *)&a->ss, &a->len) < 0)
        return map_errno(errno);
    return PC_OK;
}

pc_err
pc_sock_peer_addr(const pc_sock *s, pc_sock_addr *a)
{
    if (!s || !a)
        return PC_EINVAL;
    memset(a, 0, sizeof *a);
    a->len = sizeof a->ss;
    if (getpeername(s->fd, (struct sockaddr *)&a->ss, &a->len) < 0)
        return map_errno(errno);
    return PC_OK;
}

uint16_t
pc_sock_port(const pc_sock *s)
{
    pc_sock_addr a;

    if (pc_sock_local_addr(s, &a) != PC_OK)
        return 0;
    return pc_sock_addr_port(&a);
}

int
pc_sock_fd(const pc_sock *s)
{
    return s ? s->fd : -1;
}

int
pc_sock_errno(const pc_sock *s)
{
    return s ? atomic_load_explicit(&s->err, memory_order_relaxed) : 0;
}

/* ---- stream I/O ------------------------------------------------------------------------ */

/* One read of up to len bytes within deadline; s entered. */
static pc_err
read_some(pc_sock *s, void *buf, size_t len, double deadline, size_t *n)
{
    ssize_t r;
    pc_err rc;

    *n = 0;
    for (;;) {
        if (closed(s))
            return PC_ECLOSED;
        r = recv(s->fd, buf, len, 0);
        if (r >= 0) {
            *n = (size_t)r;
            return PC_OK;
        }
        if (!would_block(errno))
            return sys_fail(s);
        if ((rc = wait_io(s, PC_READ, deadline)) != PC_OK)
            return rc;
    }
}

pc_err
pc_sock_read(pc_sock *s, void *buf, size_t len, double timeout, size_t *n)
{
    size_t dummy;
    pc_err rc;

    if (!n)
        n = &dummy;
    *n = 0;
    if (!buf || len == 0)
        return PC_EINVAL;
    if ((rc = enter(s)) != PC_OK)
        return rc;
    return leave(s, read_some(s, buf, len, pc_deadline(timeout), n));
}

static pc_err
read_exact(pc_sock *s, void *buf, size_t n, double deadline, size_t *got)
{
    size_t k;
    pc_err rc;

    *got = 0;
    while (*got < n) {
        rc = read_some(s, (char *)buf + *got, n - *got, deadline, &k);
        if (rc != PC_OK)
            return rc;
        if (k == 0)
            return PC_ECLOSED;
        *got += k;
    }
    return PC_OK;
}

pc_err
pc_sock_read_exact(pc_sock *s, void *buf, size_t n, double timeout, size_t *got)
{
    size_t dummy;
    pc_err rc;

    if (!got)
        got = &dummy;
    *got = 0;
    if (!buf && n > 0)
        return PC_EINVAL;
    if ((rc = enter(s)) != PC_OK)
        return rc;
    return leave(s, read_exact(s, buf, n, pc_deadline(timeout), got));
}

/* Write every byte of iov[0..cnt) within deadline; s entered. iov is
 * consumed (modified). */
static pc_err
writev_all(pc_sock *s, struct iovec *iov, int cnt, double deadline,
           size_t *sent)
{
    struct msghdr mh;
    ssize_t r;
    pc_err rc;

    *sent = 0;
    while (cnt > 0 && iov->iov_len == 0) {
        iov++;
        cnt--;
    }
    while (cnt > 0) {
        if (closed(s))
            return PC_ECLOSED;
        memset(&mh, 0, sizeof mh);
        mh.msg_iov = iov;
        mh.msg_iovlen = (size_t)cnt;
        r = sendmsg(s->fd, &mh, MSG_NOSIGNAL);
        if (r < 0) {
            if (!would_block(errno))
                return sys_fail(s);
            if ((rc = wait_io(s, PC_WRITE, deadline)) != PC_OK)
                return rc;
            continue;
        }
        *sent += (size_t)r;
        while (cnt > 0 && (size_t)r >= iov->iov_len) {
            r -= (ssize_t)iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + r;
            iov->iov_len -= (size_t)r;
        }
    }
    return PC_OK;
}

pc_err
pc_sock_write_all(pc_sock *s, const void *buf, size_t len, double timeout,
                  size_t *sent)
{
    struct iovec iov;
    size_t dummy;
    pc_err rc;

    if (!sent)
        sent = &dummy;
    *sent = 0;
    if (!buf && len > 0)
        return PC_EINVAL;
    if ((rc = enter(s)) != PC_OK)
        return rc;
    iov.iov_base = (void *)(uintptr_t)buf;
    iov.iov_len = len;
    return leave(s, writev_all(s, &iov, 1, pc_deadline(timeout), sent));
}

/* ---- framing ------------------------------------------------------------------------- */

pc_err
pc_sock_send_msg(pc_sock *s, const void *data, size_t len, double timeout)
{
    unsigned char h[4];
    struct iovec iov[2];
    size_t sent;
    pc_err rc;

    if (!data && len > 0)
        return PC_EINVAL;
    if ((uint64_t)len > 0xFFFFFFFFu)
        return PC_ETOOBIG;
    if ((rc = enter(s)) != PC_OK)
        return rc;
    h[0] = (unsigned char)(len >> 24);
    h[1] = (unsigned char)(len >> 16);
    h[2] = (unsigned char)(len >> 8);
    h[3] = (unsigned char)len;
    iov[0].iov_base = h;
    iov[0].iov_len = 4;
    iov[1].iov_base = (void *)(uintptr_t)data;
    iov[1].iov_len = len;
    return leave(s, writev_all(s, iov, 2, pc_deadline(timeout), &sent));
}

pc_err
pc_sock_recv_msg(pc_sock *s, size_t max, void **buf, size_t *len,
                 double timeout)
{
    double deadline = pc_deadline(timeout);
    unsigned char h[4];
    size_t got, n;
    char *p;
    pc_err rc;

    if (!buf || !len)
        return PC_EINVAL;
    *buf = NULL;
    *len = 0;
    if ((rc = enter(s)) != PC_OK)
        return rc;
    rc = read_exact(s, h, 4, deadline, &got);
    if (rc != PC_OK)
        return leave(s, rc == PC_ECLOSED && got > 0 ? PC_EPROTO : rc);
    n = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 |
        (size_t)h[3];
    if (n > max)
        return leave(s, PC_ETOOBIG);
    p = malloc(n + 1);
    if (!p)
        return leave(s, PC_ENOMEM);
    rc = read_exact(s, p, n, deadline, &got);
    if (rc != PC_OK) {
        free(p);
        /* EOF inside the frame; a local close stays PC_ECLOSED */
        if (rc == PC_ECLOSED && !closed(s))
            rc = PC_EPROTO;
        return leave(s, rc);
    }
    p[n] = 0;
    *buf = p;
    *len = n;
    return leave(s, PC_OK);
}

/* ---- datagrams --------------------------------------------------------------------------- */

pc_err
pc_sock_sendto(pc_sock *s, const void *buf, size_t len, const pc_sock_addr *to,
               double timeout)
{
    double deadline = pc_deadline(timeout);
    const struct sockaddr *sa;
    struct sockaddr_in6 mapped;
    socklen_t sl;
    pc_err rc;

    if (!to || (!buf && len > 0))
        return PC_EINVAL;
    if ((rc = enter(s)) != PC_OK)
        return rc;
    sa = (const struct sockaddr *)&to->ss;
    sl = to->len;
    if (s->family == AF_INET6 && sa->sa_family == AF_INET) {
        /* an IPv4 peer from a dual-stack socket: ::ffff:a.b.c.d */
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)&to->ss;
        memset(&mapped, 0, sizeof mapped);
        mapped.sin6_family = AF_INET6;
        mapped.sin6_port = a4->sin_port;
        mapped.sin6_addr.s6_addr[10] = 0xff;
        mapped.sin6_addr.s6_addr[11] = 0xff;
        memcpy(&mapped.sin6_addr.s6_addr[12], &a4->sin_addr, 4);
        sa = (const struct sockaddr *)&mapped;
        sl = sizeof mapped;
    }
    for (;;) {
        if (closed(s))
            return leave(s, PC_ECLOSED);
        if (sendto(s->fd, buf, len, MSG_NOSIGNAL, sa, sl) >= 0)
            return leave(s, PC_OK);
        if (!would_block(errno))
            return leave(s, sys_fail(s));
        if ((rc = wait_io(s, PC_WRITE, deadline)) != PC_OK)
            return leave(s, rc);
    }
}

pc_err
pc_sock_recvfrom(pc_sock *s, void *buf, size_t cap, size_t *n,
                 pc_sock_addr *from, double timeout)
{
    double deadline = pc_deadline(timeout);
    pc_sock_addr dummy;
    ssize_t r;
    pc_err rc;

    if (!n || (!buf && cap > 0))
        return PC_EINVAL;
    *n = 0;
    if (!from)
        from = &dummy;
    if ((rc = enter(s)) != PC_OK)
        return rc;
    for (;;) {
        if (closed(s))
            return leave(s, PC_ECLOSED);
        memset(from, 0, sizeof *from);
        from->len = sizeof from->ss;
        r = recvfrom(s->fd, buf, cap, MSG_TRUNC, (struct sockaddr *)&from->ss,
                     &from->len);
        if (r >= 0) {
            if ((size_t)r > cap) {
                *n = cap;
                return leave(s, PC_ETOOBIG);
            }
            *n = (size_t)r;
            return leave(s, PC_OK);
        }
        if (!would_block(errno))
            return leave(s, sys_fail(s));
        if ((rc = wait_io(s, PC_READ, deadline)) != PC_OK)
            return leave(s, rc);
    }
}
