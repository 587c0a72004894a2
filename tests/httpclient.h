/* tests/httpclient.h — a plain blocking HTTP/1.1 client for the tests of
 * the registry's monitoring API: one request per connection
 * ("Connection: close"), read to EOF, on the calling thread, and the JSON
 * of the answer with jansson.
 *
 * Nothing here knows picos but pc_now() for the deadlines; the answer's
 * status is the first line's code, -1 when there was no answer.
 */
#ifndef PICOS_TESTS_HTTPCLIENT_H
#define PICOS_TESTS_HTTPCLIENT_H

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "picos/node.h"

/* A connection to 127.0.0.1:p, or -1. */
static inline int
hc_dial(uint16_t p)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(p)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static inline bool
hc_send_all(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        s += w, n -= (size_t)w;
    }
    return true;
}

/* Read until EOF or `timeout` s into a malloc'd string. */
static inline char *
hc_read_all(int fd, double timeout)
{
    size_t cap = 65536, n = 0;
    char *b = malloc(cap + 1);
    double end = pc_now() + timeout;

    if (!b)
        return NULL;
    for (;;) {
        struct pollfd pf = {fd, POLLIN, 0};
        int ms = (int)((end - pc_now()) * 1000);
        ssize_t r;
        if (ms <= 0 || poll(&pf, 1, ms) <= 0)
            break;
        if (n == cap) {
            char *nb = realloc(b, (cap *= 2) + 1);
            if (!nb)
                break;
            b = nb;
        }
        if ((r = recv(fd, b + n, cap - n, 0)) <= 0)
            break;
        n += (size_t)r;
    }
    b[n] = '\0';
    return b;
}

/* One request to 127.0.0.1:p: the status (-1: no answer), the body into
 * *body (malloc'd; body may be NULL). hdrs: extra header lines, each
 * ending in "\r\n", or NULL. */
static inline int
hc_request(uint16_t p, const char *method, const char *path, const char *hdrs,
           const char *data, char **body, double timeout)
{
    char req[4096];
    int fd = hc_dial(p), st = -1;
    char *all, *sep;

    if (body)
        *body = NULL;
    if (fd < 0)
        return -1;
    snprintf(req, sizeof req,
             "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
             "%sContent-Length: %zu\r\n\r\n%s",
             method, path, hdrs ? hdrs : "", data ? strlen(data) : 0,
             data ? data : "");
    if (!hc_send_all(fd, req, strlen(req))) {
        close(fd);
        return -1;
    }
    all = hc_read_all(fd, timeout);
    close(fd);
    if (!all)
        return -1;
    if (sscanf(all, "HTTP/1.1 %d", &st) != 1)
        st = -1;
    if (body && (sep = strstr(all, "\r\n\r\n")))
        *body = strdup(sep + 4);
    free(all);
    return st;
}

/* GET path: its body as JSON when the answer is 200, else NULL (and the
 * answer on stderr). */
static inline json_t *
hc_get_json(uint16_t p, const char *path, double timeout)
{
    char *body = NULL;
    json_error_t e;
    json_t *j = NULL;
    int st = hc_request(p, "GET", path, NULL, NULL, &body, timeout);

    if (st != 200)
        fprintf(stderr, "GET %s: %d %s\n", path, st, body ? body : "");
    else if (!(j = json_loads(body, 0, &e)))
        fprintf(stderr, "GET %s: not JSON (%s): %s\n", path, e.text, body);
    free(body);
    return j;
}

#endif
