/* services/http.c — the HTTP/1.1 server of the monitoring API (http.h).
 *
 * One acceptor task takes connections and spawns a task per connection
 * (PC_WORKER_ANY); each connection task reads, parses with libhttp-parser,
 * answers and loops while the client keeps the connection alive. The
 * parser is fed from an 8 KiB buffer: the bytes it consumes before the end
 * of the headers are counted, and a request whose line and headers pass
 * the limit gets 431 at once, so what a connection holds is its buffer,
 * its URL and Authorization copies (each bounded by the header limit) and
 * a body of at most max_body (413 from Content-Length, or from the body's
 * length when chunked). A request is paused in the parser at its end, so a
 * pipelined one stays in the buffer for the next turn.
 *
 * Time: a connection waits for the first byte of a request up to
 * idle_timeout (then it is closed quietly); from that byte the headers
 * and the body must arrive within header_timeout each (408; the slowloris
 * guard). The TLS handshake has header_timeout as well.
 *
 * Connections are slots in a table under one mutex: at most max_conns
 * live ones. When a new connection finds the table full, the oldest idle
 * keep-alive connection (one waiting for a request with nothing read) is
 * shut down to make room: idle connections cost a slot and a few KiB but
 * can't keep a new client out (10,000 idle sockets leave the server with
 * max_conns of them). Only when every live connection is inside a request
 * (or a stream) is the new one closed at once. Shutting a socket down
 * (pc_sock_shutdown, any thread) wakes the task reading it with EOF, also
 * under TLS: the slot keeps its own reference to the plain socket for it.
 *
 * Event streams: a route flagged sse turns the connection into a stream
 * (at most max_streams: 503 beyond). The stream's task is registered in
 * its slot before the handler builds the first event, so nothing broadcast
 * after that is missed; pc__http_broadcast() copies each text into every
 * stream task's mailbox (bounded, PC_MB_DROP: a client that does not keep
 * up loses events, the server keeps nothing for it). The task writes what
 * it receives, a ":" comment when nothing came for keepalive_comment
 * seconds, and wakes at least every second to see whether the client
 * closed or the server stops.
 */
#define _GNU_SOURCE
#include "http.h"

#include <http_parser.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "picos/log.h"
#include "picos/msg.h"
#include "picos/node.h"
#include "picos/sock.h"
#include "picos/task.h"
#include "picos/tls.h"

#define MSG_EVENT "picos.http.event"
#define WRITE_TIMEOUT 10.0
#define STREAM_QUEUE 256
#define AUTH_MAX 1024

enum { S_FREE, S_IDLE, S_BUSY, S_STREAM, S_EVICTED };

typedef struct slot {
    int state;
    double since;  /* S_IDLE: since when */
    pc_sock *kick; /* the slot's reference, for shutdown */
    pc_ref task;   /* S_STREAM: the stream's task */
} slot;

struct pc__http {
    pc__http_opts o;
    pc_sock *listener;  /* stop's reference */
    pc_sock *accepting; /* the acceptor's reference */
    pc_tls_ctx *tls;
    pc_ref acceptor;
    pthread_mutex_t mu;
    pthread_cond_t gone;
    slot *slots;
    int nslots, live, tasks, streams;
    bool acceptor_done;
    atomic_bool stopping;
};

typedef struct conn {
    pc__http *h;
    int slot;
    pc_sock *sock; /* plain, or NULL once tls owns it */
    pc_tls *tls;
    char peer[64];
    http_parser p;
    http_parser_settings ps;
    /* the request being read */
    size_t hdr_bytes;
    bool headers_done, complete, keep, field_auth, last_was_value;
    int err; /* a status to refuse with, set by a callback */
    char field[32];
    size_t field_len;
    char *url;
    size_t url_len;
    char auth[AUTH_MAX + 1];
    size_t auth_len;
    bool auth_seen, auth_long;
    char *body;
    size_t body_len;
    size_t used;
    char buf[]; /* max_header + 1 bytes */
} conn;

static const char *
reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Status";
    }
}

/* ---- helpers for handlers ---------------------------------------------------- */

void
pc__http_text(pc__http_resp *rs, int status, const char *type, const char *text)
{
    rs->status = status;
    rs->type = type;
    rs->body = strdup(text);
    rs->len = rs->body ? strlen(text) : 0;
    rs->body_static = false;
    if (!rs->body)
        rs->status = 500;
}

void
pc__http_error(pc__http_resp *rs, int status, const char *why)
{
    char buf[512], *o = buf;

    /* why is ours (a fixed text or a name we checked), but escape anyway */
    o += sprintf(o, "{\"error\": \"");
    for (const char *s = why; *s && o < buf + sizeof buf - 8; s++) {
        if (*s == '"' || *s == '\\')
            *o++ = '\\';
        *o++ = (unsigned char)*s < 0x20 ? ' ' : *s;
    }
    strcpy(o, "\"}");
    pc__http_text(rs, status, NULL, buf);
}

static int
hexval(int c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Percent-decode n bytes of s into out (size bytes); '+' is a space when
 * `form`. false: a bad escape, %00, or too long. */
static bool
decode(const char *s, size_t n, char *out, size_t size, bool form)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int a, b;
            if (i + 2 >= n || (a = hexval(s[i + 1])) < 0 ||
                (b = hexval(s[i + 2])) < 0)
                return false;
            c = a * 16 + b;
            i += 2;
        } else if (c == '+' && form) {
            c = ' ';
        }
        if (c == 0 || k + 1 >= size)
            return false;
        out[k++] = (char)c;
    }
    out[k] = '\0';
    return true;
}

bool
pc__http_query(const char *query, const char *key, char *buf, size_t size)
{
    size_t kl = strlen(key);

    for (const char *q = query; q && *q;) {
        const char *amp = strchr(q, '&');
        size_t n = amp ? (size_t)(amp - q) : strlen(q);
        if (n > kl && q[kl] == '=' && !strncmp(q, key, kl))
            return decode(q + kl + 1, n - kl - 1, buf, size, true);
        q += n + (amp != NULL);
    }
    return false;
}

/* A decoded path is served only when canonical: it starts with '/', has
 * no empty, "." or ".." segment (the root "/" aside), no backslash and no
 * control character. Anything else is 404 (docs/monitoring.md). */
static bool
canonical(const char *p)
{
    if (p[0] != '/')
        return false;
    if (!p[1])
        return true;
    for (const char *s = p; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f || *s == '\\')
            return false;
    for (const char *seg = p + 1;;) {
        const char *e = strchr(seg, '/');
        size_t n = e ? (size_t)(e - seg) : strlen(seg);
        if (n == 0 || (n == 1 && seg[0] == '.') ||
            (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return false;
        if (!e)
            return true;
        seg = e + 1;
    }
}

/* ---- connection I/O ------------------------------------------------------------ */

static pc_err
c_read(conn *c, void *b, size_t n, double t, size_t *got)
{
    return c->tls ? pc_tls_read(c->tls, b, n, t, got)
                  : pc_sock_read(c->sock, b, n, t, got);
}

static pc_err
c_write(conn *c, const void *b, size_t n)
{
    return c->tls ? pc_tls_write_all(c->tls, b, n, WRITE_TIMEOUT)
                  : pc_sock_write_all(c->sock, b, n, WRITE_TIMEOUT, NULL);
}

static void
set_state(conn *c, int state)
{
    pthread_mutex_lock(&c->h->mu);
    slot *s = &c->h->slots[c->slot];
    if (s->state != S_EVICTED)
        s->state = state;
    s->since = pc_now();
    pthread_mutex_unlock(&c->h->mu);
}

/* Write status line, headers and body (the body left out for HEAD). */
static pc_err
respond(conn *c, const pc__http_resp *rs, bool head, bool keep)
{
    char hdr[1024];
    int n =
        snprintf(hdr, sizeof hdr,
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                 "Content-Length: %zu\r\nCache-Control: no-store\r\n"
                 "X-Content-Type-Options: nosniff\r\n%sConnection: %s\r\n"
                 "\r\n",
                 rs->status, reason(rs->status),
                 rs->type ? rs->type : "application/json", rs->len,
                 rs->headers ? rs->headers : "", keep ? "keep-alive" : "close");
    size_t blen = head ? 0 : rs->len;
    char *all;
    pc_err rc;

    if (n < 0 || (size_t)n >= sizeof hdr)
        return PC_EINVAL;
    if (!(all = malloc((size_t)n + blen)))
        return PC_ENOMEM;
    memcpy(all, hdr, (size_t)n);
    if (blen)
        memcpy(all + n, rs->body, blen);
    rc = c_write(c, all, (size_t)n + blen);
    free(all);
    return rc;
}

static void
refuse(conn *c, int status, const char *why)
{
    pc__http_resp rs = {0};

    PC_LOG_WARN("http", "%s: %d %s", c->peer, status, why);
    pc__http_error(&rs, status, why);
    respond(c, &rs, false, false);
    free(rs.body);
}

/* ---- the parser's callbacks ------------------------------------------------------ */

static int
on_url(http_parser *p, const char *at, size_t n)
{
    conn *c = p->data;
    memcpy(c->url + c->url_len, at, n); /* bounded: headers <= max_header */
    c->url_len += n;
    c->url[c->url_len] = '\0';
    return 0;
}

static int
on_field(http_parser *p, const char *at, size_t n)
{
    conn *c = p->data;
    if (c->last_was_value) {
        c->field_len = 0;
        c->last_was_value = false;
    }
    for (size_t i = 0; i < n; i++)
        if (c->field_len < sizeof c->field - 1)
            c->field[c->field_len++] = at[i];
    c->field[c->field_len] = '\0';
    return 0;
}

static int
on_value(http_parser *p, const char *at, size_t n)
{
    conn *c = p->data;
    if (!c->last_was_value) {
        c->last_was_value = true;
        c->field_auth = !strcasecmp(c->field, "authorization");
        if (c->field_auth) {
            c->auth_len = 0;
            c->auth_seen = true;
        }
    }
    if (c->field_auth) {
        if (c->auth_len + n > AUTH_MAX) {
            c->auth_long = true;
            return 0;
        }
        memcpy(c->auth + c->auth_len, at, n);
        c->auth_len += n;
        c->auth[c->auth_len] = '\0';
    }
    return 0;
}

static int
on_headers(http_parser *p)
{
    conn *c = p->data;
    c->headers_done = true;
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > c->h->o.max_body) {
        c->err = 413;
        return -1;
    }
    return 0;
}

static int
on_body(http_parser *p, const char *at, size_t n)
{
    conn *c = p->data;
    char *b;

    if (c->body_len + n > c->h->o.max_body) {
        c->err = 413;
        return -1;
    }
    if (!(b = realloc(c->body, c->body_len + n + 1))) {
        c->err = 500;
        return -1;
    }
    c->body = b;
    memcpy(b + c->body_len, at, n);
    c->body_len += n;
    b[c->body_len] = '\0';
    return 0;
}

static int
on_complete(http_parser *p)
{
    conn *c = p->data;
    c->complete = true;
    c->keep = http_should_keep_alive(p);
    http_parser_pause(p, 1); /* a pipelined request waits its turn */
    return 0;
}

/* ---- reading one request ------------------------------------------------------------ */

static void
request_reset(conn *c)
{
    http_parser_init(&c->p, HTTP_REQUEST);
    c->p.data = c;
    c->hdr_bytes = 0;
    c->headers_done = c->complete = c->keep = false;
    c->field_auth = c->last_was_value = false;
    c->auth_seen = c->auth_long = false;
    c->err = 0;
    c->field_len = c->url_len = c->auth_len = c->body_len = 0;
    c->url[0] = c->auth[0] = '\0';
    free(c->body);
    c->body = NULL;
}

/* Feed the buffer to the parser. 0: fed (maybe complete), else a status
 * to refuse with. */
static int
feed(conn *c)
{
    size_t chunk = c->used, n;
    enum http_errno e;

    if (!c->headers_done && chunk > c->h->o.max_header + 1 - c->hdr_bytes)
        chunk = c->h->o.max_header + 1 - c->hdr_bytes;
    n = http_parser_execute(&c->p, &c->ps, c->buf, chunk);
    e = HTTP_PARSER_ERRNO(&c->p);
    if (e != HPE_OK && e != HPE_PAUSED)
        return c->err ? c->err : 400;
    if (!c->headers_done && (c->hdr_bytes += n) > c->h->o.max_header)
        return 431;
    if (c->p.upgrade)
        return 400;
    memmove(c->buf, c->buf + n, c->used - n);
    c->used -= n;
    return 0;
}

/* Read the next request. 0: one is complete; -1: close quietly (EOF,
 * idle, reset); else a status to refuse with (then close). */
static int
request_read(conn *c)
{
    double deadline = 0;
    bool started = c->used > 0;
    const pc__http_opts *o = &c->h->o;

    request_reset(c);
    if (started) {
        set_state(c, S_BUSY);
        deadline = pc_now() + o->header_timeout;
    }
    for (;;) {
        size_t got = 0;
        double t;
        pc_err rc;
        int st;

        if (c->used && (st = feed(c)) != 0)
            return st;
        if (c->complete)
            return 0;
        if (!started)
            t = o->idle_timeout;
        else if ((t = deadline - pc_now()) <= 0)
            return 408;
        rc = c_read(c, c->buf + c->used, o->max_header + 1 - c->used, t, &got);
        if (rc == PC_ETIMEDOUT)
            return started ? 408 : -1;
        if (rc != PC_OK || got == 0)
            return -1;
        c->used += got;
        if (!started) {
            started = true;
            set_state(c, S_BUSY);
            deadline = pc_now() + o->header_timeout;
        }
        if (c->headers_done && deadline - pc_now() < o->header_timeout / 2)
            deadline = pc_now() + o->header_timeout; /* the body's own time */
    }
}

/* ---- routing --------------------------------------------------------------------------- */

static const pc__http_route *
route_find(const pc__http *h, const char *path)
{
    for (const pc__http_route *r = h->o.routes; r && r->path; r++) {
        size_t n = strlen(r->path);
        if (r->prefix ? !strncmp(path, r->path, n) : !strcmp(path, r->path))
            return r;
    }
    return NULL;
}

static void stream_run(conn *c, const pc__http_route *r, pc__http_req *rq);

/* Answer the complete request. false: close the connection. */
static bool
dispatch(conn *c)
{
    struct http_parser_url u;
    pc__http_req rq = {.peer = c->peer, .body = c->body ? c->body : ""};
    pc__http_resp rs = {0};
    const pc__http_route *r;
    char path[1024], query[2048] = "";
    bool head = c->p.method == HTTP_HEAD, ok;
    unsigned m = c->p.method == HTTP_POST          ? PC__HTTP_POST
                 : c->p.method == HTTP_GET || head ? PC__HTTP_GET
                                                   : 0;

    http_parser_url_init(&u);
    if (http_parser_parse_url(c->url, c->url_len, 0, &u) != 0 ||
        !(u.field_set & (1 << UF_PATH))) {
        refuse(c, 400, "bad request target");
        return false;
    }
    if (!decode(c->url + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len,
                path, sizeof path, false) ||
        !canonical(path)) {
        PC_LOG_INFO("http", "%s: 404 not a canonical path", c->peer);
        pc__http_error(&rs, 404, "not found");
        goto answer;
    }
    if (u.field_set & (1 << UF_QUERY)) {
        size_t qn = u.field_data[UF_QUERY].len;
        if (qn >= sizeof query)
            qn = sizeof query - 1;
        memcpy(query, c->url + u.field_data[UF_QUERY].off, qn);
        query[qn] = '\0';
    }
    rq.method = (pc__http_method)m;
    rq.path = path;
    rq.query = query;
    rq.auth = c->auth_seen && !c->auth_long ? c->auth : NULL;
    rq.body_len = c->body_len;
    r = route_find(c->h, path);
    if (!r) {
        if (m == PC__HTTP_GET && c->h->o.fallback)
            c->h->o.fallback(c->h->o.arg, &rq, &rs);
        else
            pc__http_error(&rs, 404, "not found");
    } else if (!(r->methods & m)) {
        pc__http_error(&rs, 405, "method not allowed");
        rs.headers = r->methods & PC__HTTP_POST ? "Allow: POST\r\n"
                                                : "Allow: GET, HEAD\r\n";
    } else if (r->sse) {
        stream_run(c, r, &rq);
        return false;
    } else {
        r->fn(c->h->o.arg, &rq, &rs);
    }
answer:
    ok = respond(c, &rs, head, c->keep) == PC_OK && c->keep;
    if (!rs.body_static)
        free(rs.body);
    return ok;
}

/* ---- event streams ------------------------------------------------------------------------ */

static void
stream_run(conn *c, const pc__http_route *r, pc__http_req *rq)
{
    static const char hdr[] = "HTTP/1.1 200 OK\r\n"
                              "Content-Type: text/event-stream\r\n"
                              "Cache-Control: no-store\r\n"
                              "X-Accel-Buffering: no\r\n"
                              "Connection: keep-alive\r\n\r\n";
    pc__http *h = c->h;
    pc__http_resp rs = {0};
    double quiet_until;
    bool taken = false;

    pthread_mutex_lock(&h->mu);
    if (h->streams < h->o.max_streams) {
        h->streams++;
        h->slots[c->slot].state = S_STREAM;
        h->slots[c->slot].task = pc_self();
        taken = true;
    }
    pthread_mutex_unlock(&h->mu);
    if (!taken) {
        refuse(c, 503, "too many event streams");
        return;
    }
    r->fn(h->o.arg, rq, &rs);
    if (rs.status != 200) {
        respond(c, &rs, false, false);
        goto out;
    }
    PC_LOG_INFO("http", "%s: event stream opened", c->peer);
    if (c_write(c, hdr, sizeof hdr - 1) != PC_OK ||
        (rs.len && c_write(c, rs.body, rs.len) != PC_OK))
        goto out;
    quiet_until = pc_now() + h->o.keepalive_comment;
    while (!atomic_load(&h->stopping)) {
        pc_msg *m = NULL;
        double t = quiet_until - pc_now();
        size_t n = 0;
        char junk[512];
        pc_err rc;

        if (pc_recv(&m, t < 1.0 ? (t > 0 ? t : 0) : 1.0) == PC_OK) {
            size_t len = 0;
            const void *d = pc_msg_data(m, &len);
            rc = pc_msg_is(m, MSG_EVENT) && len ? c_write(c, d, len) : PC_OK;
            pc_msg_free(&m);
            if (rc != PC_OK)
                break;
            quiet_until = pc_now() + h->o.keepalive_comment;
        } else if (pc_now() >= quiet_until) {
            if (c_write(c, ":\n\n", 3) != PC_OK)
                break;
            quiet_until = pc_now() + h->o.keepalive_comment;
        }
        /* the client closed? (what it sends on a stream is dropped) */
        rc = c_read(c, junk, sizeof junk, 0, &n);
        if ((rc == PC_OK && n == 0) || (rc != PC_OK && rc != PC_ETIMEDOUT))
            break;
    }
    PC_LOG_INFO("http", "%s: event stream closed", c->peer);
out:
    if (!rs.body_static)
        free(rs.body);
    pthread_mutex_lock(&h->mu);
    h->streams--;
    h->slots[c->slot].task = PC_REF_NIL;
    pthread_mutex_unlock(&h->mu);
}

void
pc__http_broadcast(pc__http *h, const char *text, size_t len)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    for (int i = 0; i < h->nslots; i++)
        if (h->slots[i].state == S_STREAM && !pc_ref_is_nil(h->slots[i].task))
            pc_send_data(h->slots[i].task, MSG_EVENT, text, len);
    pthread_mutex_unlock(&h->mu);
}

int
pc__http_streams(pc__http *h)
{
    int n;

    pthread_mutex_lock(&h->mu);
    n = h->streams;
    pthread_mutex_unlock(&h->mu);
    return n;
}

/* ---- connection and acceptor tasks ------------------------------------------------------- */

static void
task_gone(pc__http *h)
{
    pthread_mutex_lock(&h->mu);
    h->tasks--;
    pthread_cond_broadcast(&h->gone);
    pthread_mutex_unlock(&h->mu);
}

static pc_msg *
conn_task(void *arg)
{
    conn *c = arg;
    pc__http *h = c->h;

    if (h->tls) {
        pc_tls *t = NULL;
        if (pc_tls_wrap(&t, h->tls, c->sock, NULL) != PC_OK) {
            pc_sock_close(&c->sock);
            goto out;
        }
        c->sock = NULL;
        c->tls = t;
        if (pc_tls_handshake(c->tls, h->o.header_timeout) != PC_OK)
            goto out;
    }
    for (;;) {
        int st = request_read(c);
        if (st < 0)
            break;
        if (st > 0) {
            refuse(c, st,
                   st == 431   ? "request line and headers too large"
                   : st == 413 ? "body too large"
                   : st == 408 ? "request not complete in time"
                               : "malformed request");
            break;
        }
        if (!dispatch(c))
            break;
        set_state(c, S_IDLE);
    }
out:
    if (c->tls)
        pc_tls_close(&c->tls);
    pc_sock_close(&c->sock);
    pthread_mutex_lock(&h->mu);
    slot *s = &h->slots[c->slot];
    if (s->state != S_EVICTED)
        h->live--;
    s->state = S_FREE;
    pc_sock_release(&s->kick);
    pthread_mutex_unlock(&h->mu);
    free(c->body);
    free(c->url);
    free(c);
    task_gone(h);
    return NULL;
}

/* A free slot for a new connection, evicting the oldest idle one when
 * max_conns are live. -1: none (every live connection is busy, or the
 * evicted ones have not ended yet). Under h->mu. */
static int
slot_take(pc__http *h)
{
    int fr = -1, old = -1;

    for (int i = 0; i < h->nslots; i++) {
        if (h->slots[i].state == S_FREE && fr < 0)
            fr = i;
        if (h->slots[i].state == S_IDLE &&
            (old < 0 || h->slots[i].since < h->slots[old].since))
            old = i;
    }
    if (h->live >= h->o.max_conns) {
        if (old < 0)
            return -1;
        h->slots[old].state = S_EVICTED;
        h->live--;
        pc_sock_shutdown(h->slots[old].kick, PC_READ | PC_WRITE);
    }
    return fr;
}

static void
conn_start(pc__http *h, pc_sock **s)
{
    pc_spawn_opts so = {.worker = PC_WORKER_ANY,
                        .flags = PC_TASK_DAEMON,
                        .stack_size = 256 * 1024,
                        .name = "http.conn",
                        .mailbox_cap = STREAM_QUEUE,
                        .mailbox_policy = PC_MB_DROP};
    size_t size = sizeof(conn) + h->o.max_header + 1;
    pc_sock_addr a;
    conn *c;
    int i = -1;
    bool full = false;

    for (int tries = 0; tries < 100 && !full; tries++) {
        pthread_mutex_lock(&h->mu);
        i = slot_take(h);
        full = i < 0 && h->live >= h->o.max_conns;
        if (i >= 0) {
            h->slots[i].state = S_BUSY;
            h->slots[i].since = pc_now();
            h->slots[i].kick = pc_sock_retain(*s);
            h->slots[i].task = PC_REF_NIL;
            h->live++;
            h->tasks++;
        }
        pthread_mutex_unlock(&h->mu);
        if (i >= 0)
            break;
        if (!full)
            pc_sleep(0.001); /* evicted connections are ending: let them */
    }
    if (i < 0) {
        PC_LOG_WARN("http", "%d connections, all busy: one refused",
                    h->o.max_conns);
        pc_sock_close(s);
        return;
    }
    if (!(c = calloc(1, size)) || !(c->url = malloc(h->o.max_header + 2)))
        goto fail;
    c->h = h;
    c->slot = i;
    c->sock = *s;
    *s = NULL;
    http_parser_settings_init(&c->ps);
    c->ps.on_url = on_url;
    c->ps.on_header_field = on_field;
    c->ps.on_header_value = on_value;
    c->ps.on_headers_complete = on_headers;
    c->ps.on_body = on_body;
    c->ps.on_message_complete = on_complete;
    if (pc_sock_peer_addr(c->sock, &a) == PC_OK)
        pc_sock_addr_format(&a, c->peer, sizeof c->peer);
    else
        strcpy(c->peer, "?");
    if (pc_spawn(conn_task, c, &so, NULL) == PC_OK)
        return;
    *s = c->sock;
fail:
    if (c)
        free(c->url);
    free(c);
    pthread_mutex_lock(&h->mu);
    h->slots[i].state = S_FREE;
    pc_sock_release(&h->slots[i].kick);
    h->live--;
    h->tasks--;
    pthread_mutex_unlock(&h->mu);
    pc_sock_close(s);
}

static pc_msg *
acceptor_task(void *arg)
{
    pc__http *h = arg;
    pc_sock *l = h->accepting, *c = NULL;

    while (!atomic_load(&h->stopping) && pc_sock_accept(l, &c, -1) == PC_OK)
        if (atomic_load(&h->stopping))
            pc_sock_close(&c);
        else
            conn_start(h, &c);
    pc_sock_release(&l);
    pthread_mutex_lock(&h->mu);
    h->acceptor_done = true;
    pthread_cond_broadcast(&h->gone);
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

/* ---- start and stop -------------------------------------------------------------------------- */

pc_err
pc__http_start(const pc__http_opts *o, pc__http **out)
{
    pc__http *h;
    pc_err rc;

    if (!o || !out || !o->routes || !o->cert_file != !o->key_file)
        return PC_EINVAL;
    *out = NULL;
    if (!(h = calloc(1, sizeof *h)))
        return PC_ENOMEM;
    h->o = *o;
#define DEF(f, v)                                                              \
    if (h->o.f <= 0)                                                           \
    h->o.f = (v)
    DEF(max_header, 8192);
    DEF(max_body, 65536);
    DEF(header_timeout, 10.0);
    DEF(idle_timeout, 30.0);
    DEF(keepalive_comment, 15.0);
    DEF(max_conns, 512);
    DEF(max_streams, 64);
#undef DEF
    if (h->o.max_streams > h->o.max_conns)
        h->o.max_streams = h->o.max_conns;
    h->nslots = 2 * h->o.max_conns;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->gone, NULL);
    if (!(h->slots = calloc((size_t)h->nslots, sizeof *h->slots))) {
        rc = PC_ENOMEM;
        goto fail;
    }
    if (o->cert_file) {
        pc_tls_ctx_opts to = {
            .server = true, .cert_file = o->cert_file, .key_file = o->key_file};
        if ((rc = pc_tls_ctx_new(&h->tls, &to)) != PC_OK)
            goto fail;
    }
    if ((rc = pc_sock_listen(&h->listener, o->host ? o->host : "127.0.0.1",
                             o->port, 0)) != PC_OK) {
        PC_LOG_ERROR("http", "can't listen on %s:%u: %s",
                     o->host ? o->host : "127.0.0.1", (unsigned)o->port,
                     pc_strerror(rc));
        goto fail;
    }
    h->accepting = pc_sock_retain(h->listener);
    if ((rc = pc_spawn(acceptor_task, h,
                       &(pc_spawn_opts){.worker = PC_WORKER_ANY,
                                        .flags = PC_TASK_DAEMON,
                                        .name = "http.accept"},
                       &h->acceptor)) != PC_OK) {
        pc_sock_release(&h->accepting);
        goto fail;
    }
    *out = h;
    return PC_OK;
fail:
    pc_sock_close(&h->listener);
    pc_tls_ctx_free(&h->tls);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->gone);
    free(h->slots);
    free(h);
    return rc;
}

uint16_t
pc__http_port(const pc__http *h)
{
    return h ? pc_sock_port(h->listener) : 0;
}

void
pc__http_stop(pc__http **hp, double timeout)
{
    pc__http *h = hp ? *hp : NULL;
    struct timespec until;
    bool all_gone;

    if (!h)
        return;
    *hp = NULL;
    atomic_store(&h->stopping, true);
    pc_sock_close(&h->listener);
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(timeout > 0 ? timeout : 0) + 1;
    pthread_mutex_lock(&h->mu);
    for (int i = 0; i < h->nslots; i++)
        if (h->slots[i].kick)
            pc_sock_shutdown(h->slots[i].kick, PC_READ | PC_WRITE);
    while (!(h->acceptor_done && h->tasks == 0))
        if (pthread_cond_timedwait(&h->gone, &h->mu, &until) != 0)
            break;
    all_gone = h->acceptor_done && h->tasks == 0;
    pthread_mutex_unlock(&h->mu);
    if (!all_gone) { /* tasks still inside a call: leave h to them */
        PC_LOG_WARN("http", "stop: %d connection tasks still running",
                    h->tasks);
        return;
    }
    pc_tls_ctx_free(&h->tls);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->gone);
    free(h->slots);
    free(h);
}
