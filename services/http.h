/* services/http.h — a small HTTP/1.1 server on picos sockets (internal):
 * what the registry's monitoring API (services/api.c, docs/monitoring.md)
 * is served by.
 *
 * One acceptor task and one task per connection, on the running node.
 * Requests are parsed by libhttp-parser; keep-alive and pipelining work;
 * every response has a Content-Length. HTTPS (TLS 1.3, picos/tls.h) when
 * a certificate and key are given. Limits (pc__http_opts, defaults from
 * docs/monitoring.md): request line + headers (431), body (413), the time
 * for the headers (408), idle keep-alive, connections, event streams
 * (503). Paths are percent-decoded and must be canonical (no "." or ".."
 * segment, no "//", no NUL): others get 404 before any route sees them.
 *
 * A route either answers (pc__http_resp) or, flagged `sse`, turns the
 * connection into a Server-Sent Events stream: the handler's body is the
 * stream's first event, and from then on every pc__http_broadcast() text
 * reaches the stream through its task's mailbox (each client its own
 * stream and queue; a client that can't keep up loses events, never the
 * server's memory).
 *
 * Threads: pc__http_start/stop not from a task; handlers run in the
 * connection's task; pc__http_broadcast from any thread.
 */
#ifndef PICOS_SERVICES_HTTP_H
#define PICOS_SERVICES_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "picos/err.h"

typedef struct pc__http pc__http;

typedef enum { PC__HTTP_GET = 1, PC__HTTP_POST = 2 } pc__http_method;

/* A request as a handler sees it (valid during the call). */
typedef struct pc__http_req {
    pc__http_method method; /* HEAD is served as GET without the body */
    const char *path;       /* decoded and canonical: "/api/v1/nodes" */
    const char *query;      /* raw, after '?' ("" when none) */
    const char *auth;       /* the Authorization header, or NULL */
    const char *body;       /* NUL-terminated; len bytes */
    size_t body_len;
    const char *peer; /* "127.0.0.1:53412" */
} pc__http_req;

/* A handler's answer. body is malloc'd (the server frees it) unless
 * `body_static`; type NULL: "application/json". headers: extra header
 * lines, each ending in "\r\n" (may be NULL). */
typedef struct pc__http_resp {
    int status;
    const char *type;
    char *body;
    size_t len;
    bool body_static;
    const char *headers;
} pc__http_resp;

typedef void (*pc__http_fn)(void *arg, const pc__http_req *rq,
                            pc__http_resp *rs);

/* A route: exact path, or a prefix when `prefix`. `methods` is a mask of
 * pc__http_method; a known path with another method gets 405. */
typedef struct pc__http_route {
    const char *path;
    bool prefix;
    unsigned methods;
    bool sse;
    pc__http_fn fn;
} pc__http_route;

typedef struct pc__http_opts {
    const char *host; /* numeric address to bind; NULL: 127.0.0.1 */
    uint16_t port;    /* 0: an ephemeral port (pc__http_port()) */
    const char *cert_file, *key_file; /* both: HTTPS only */
    const pc__http_route *routes;     /* ends with a {NULL} entry */
    pc__http_fn fallback; /* GET of a path no route has (assets); NULL: 404 */
    void *arg;            /* for every handler */
    /* limits; 0: the defaults of docs/monitoring.md */
    size_t max_header;                                      /* 8192 */
    size_t max_body;                                        /* 65536 */
    double header_timeout, idle_timeout, keepalive_comment; /* 10, 30, 15 s */
    int max_conns, max_streams;                             /* 512, 64 */
} pc__http_opts;

/* Listen and spawn the acceptor. PC_EINVAL: bad options, or a certificate
 * or key that does not load (one ERROR line names it); PC_ESYS and the
 * other pc_sock_listen() errors when the address can't be bound. Not from a
 * task; a node must run. */
pc_err pc__http_start(const pc__http_opts *o, pc__http **out);

/* The bound port. Any thread. */
uint16_t pc__http_port(const pc__http *h);

/* Send `text` (len bytes, one or more whole SSE events) to every open
 * event stream. Any thread. */
void pc__http_broadcast(pc__http *h, const char *text, size_t len);

/* Event streams open now. Any thread. */
int pc__http_streams(pc__http *h);

/* Close the listener and every connection, wait for their tasks (up to
 * `timeout` s), free. NULL / *h NULL: no-op. Not from a task. */
void pc__http_stop(pc__http **h, double timeout);

/* Helpers for handlers. */
/* rs = status with a malloc'd copy of the text (type: JSON, or `type`). */
void pc__http_text(pc__http_resp *rs, int status, const char *type,
                   const char *text);
/* rs = status with {"error": "why"}. */
void pc__http_error(pc__http_resp *rs, int status, const char *why);
/* The query parameter `key` decoded into buf (size bytes). false: absent or
 * too long. */
bool pc__http_query(const char *query, const char *key, char *buf, size_t size);

#endif
