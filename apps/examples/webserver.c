/* webserver.c — an HTTP/1.1 "ping pong" server (pycos's webserver.py), for
 * throughput runs with wrk:  wrk -t2 -c100 -d5s http://127.0.0.1:8010/
 *
 *   picos-webserver [-p PORT] [-w WORKERS]   serve (port 0: pick a free one)
 *   picos-webserver --self-test N            also run client tasks that make
 *                                            N keep-alive requests each, check
 *                                            the answers, and exit
 *
 * One listener with an accept task on every worker, and each connection's
 * task spawned with PC_WORKER_ANY (round-robin over the workers). Accepting
 * on every worker keeps accept from being one worker's job when clients
 * connect per request (as pycos's benchmark does); spreading the connection
 * tasks matters because accept is bursty: when wrk opens 100 connections at
 * once, the first acceptor to wake takes nearly all of them (100 of 101 in
 * a trial), and tasks kept on the accepting worker would leave the other
 * idle. SO_REUSEPORT listeners would need a socket made outside
 * pc_sock_listen() and split by address hash, however busy a worker is.
 *
 * A connection task reads until "\r\n\r\n" (headers are bounded to 8 KB:
 * larger gets 431 and a close), answers every complete request in what it
 * has read with one write, and keeps the connection open unless asked to
 * close. Request bodies are not supported (GET only).
 */
#define _GNU_SOURCE /* memmem, strcasestr */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/picos.h"

#define HEADER_MAX 8192
#define CLIENTS 4

static const char pong[] = "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n"
                           "Connection: keep-alive\r\n\r\nping pong";
static const char pong_close[] = "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n"
                                 "Connection: close\r\n\r\nping pong";
static const char too_large[] =
    "HTTP/1.1 431 Request Header Fields Too Large\r\n"
    "Content-Length: 0\r\nConnection: close\r\n\r\n";

static uint16_t port;
static pc_sock *listener; /* main's reference; the self-test closes it */
static long requests;     /* per client, in the self-test */
static atomic_int clients_left, failures;

/* Answer the requests in buf[0..*used); keep what follows the last one. */
static int
serve(pc_sock *s, char *buf, size_t *used, size_t *scanned, int *done)
{
    char out[8 * sizeof pong];
    size_t start = 0, outlen = 0;

    for (;;) {
        size_t from = *scanned > start + 3 ? *scanned - 3 : start;
        char *end = memmem(buf + from, *used - from, "\r\n\r\n", 4);
        if (!end)
            break;
        end[2] = '\0'; /* the headers as a string, for strcasestr */
        char *eol = strstr(buf + start, "\r\n"); /* the request line */
        if (strcasestr(buf + start, "\r\nConnection: close") ||
            (eol - (buf + start) >= 8 && memcmp(eol - 8, "HTTP/1.0", 8) == 0))
            *done = 1; /* HTTP/1.0 means close (keep-alive not offered) */
        if (outlen + sizeof pong - 1 > sizeof out) {
            if (pc_sock_write_all(s, out, outlen, 30.0, NULL) != PC_OK)
                return -1;
            outlen = 0;
        }
        const char *r = *done ? pong_close : pong;
        memcpy(out + outlen, r, strlen(r));
        outlen += strlen(r);
        start = (size_t)(end - buf) + 4;
        *scanned = start;
        if (*done)
            break;
    }
    if (outlen && pc_sock_write_all(s, out, outlen, 30.0, NULL) != PC_OK)
        return -1;
    memmove(buf, buf + start, *used - start);
    *used -= start;
    *scanned = *used;
    return 0;
}

static pc_msg *
connection(void *arg)
{
    pc_sock *s = arg;
    char buf[HEADER_MAX];
    size_t used = 0, scanned = 0, n;
    int done = 0;

    while (!done) {
        if (used == sizeof buf) {
            pc_sock_write_all(s, too_large, sizeof too_large - 1, 5.0, NULL);
            break;
        }
        if (pc_sock_read(s, buf + used, sizeof buf - used, 300.0, &n) !=
                PC_OK ||
            n == 0)
            break;
        used += n;
        if (serve(s, buf, &used, &scanned, &done) != 0)
            break;
    }
    pc_sock_close(&s);
    return NULL;
}

static pc_msg *
acceptor(void *arg)
{
    pc_sock *l = arg; /* this task's own reference */
    pc_sock *c;
    pc_spawn_opts any = {.worker = PC_WORKER_ANY};

    while (pc_sock_accept(l, &c, -1) == PC_OK)
        if (pc_spawn(connection, c, &any, NULL) != PC_OK)
            pc_sock_close(&c);
    pc_sock_release(&l);
    return NULL;
}

/* Self-test client: `requests` requests over one connection, then one with
 * oversized headers, which must get 431. */
static pc_msg *
client(void *arg)
{
    static const char req[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    char got[sizeof pong], big[HEADER_MAX];
    size_t n;
    pc_sock *s;
    int ok = 0;

    (void)arg;
    if (pc_sock_connect(&s, "127.0.0.1", port, 10.0) != PC_OK)
        goto out;
    for (long i = 0; i < requests; i++)
        if (pc_sock_write_all(s, req, sizeof req - 1, 10.0, NULL) != PC_OK ||
            pc_sock_read_exact(s, got, sizeof pong - 1, 10.0, NULL) != PC_OK ||
            memcmp(got, pong, sizeof pong - 1) != 0)
            goto out_close;
    pc_sock_close(&s);
    if (pc_sock_connect(&s, "127.0.0.1", port, 10.0) != PC_OK)
        goto out;
    memset(big, 'a', sizeof big);
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    pc_sock_write_all(s, big, sizeof big, 10.0, NULL); /* no terminator */
    char reply[sizeof too_large];
    if (pc_sock_read_exact(s, reply, sizeof too_large - 1, 10.0, NULL) ==
            PC_OK &&
        memcmp(reply, too_large, sizeof too_large - 1) == 0 &&
        pc_sock_read(s, reply, sizeof reply, 10.0, &n) != PC_ETIMEDOUT)
        ok = 1; /* 431, then the server closed (EOF or reset) */
out_close:
    pc_sock_close(&s);
out:
    if (!ok)
        atomic_fetch_add(&failures, 1);
    if (atomic_fetch_sub(&clients_left, 1) == 1)
        pc_sock_close(&listener); /* ends the accept tasks */
    return NULL;
}

int
main(int argc, char **argv)
{
    pc_node_opts o = {0};

    port = 8010;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-p") == 0 && i + 1 < argc) {
            port = (uint16_t)atoi(argv[++i]);
        } else if (strcmp(argv[i], "-w") == 0 && i + 1 < argc) {
            o.workers = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--self-test") == 0 && i + 1 < argc) {
            requests = atol(argv[++i]);
            port = 0;
        } else {
            fprintf(stderr, "usage: picos-webserver [-p PORT] [-w WORKERS] "
                            "[--self-test N]\n");
            return 2;
        }
    }
    if (pc_node_start(&o) != PC_OK ||
        pc_sock_listen(&listener, "127.0.0.1", port, 5000) != PC_OK) {
        fprintf(stderr, "picos-webserver: can't listen on port %u\n",
                (unsigned)port);
        return 1;
    }
    port = pc_sock_port(listener);
    printf("serving on http://127.0.0.1:%u/ with %d workers\n", (unsigned)port,
           pc_node_workers());
    fflush(stdout);
    for (int w = 0; w < pc_node_workers(); w++)
        if (pc_spawn(acceptor, pc_sock_retain(listener),
                     &(pc_spawn_opts){.worker = PC_WORKER(w)}, NULL) != PC_OK)
            return 1;
    if (requests > 0) {
        atomic_store(&clients_left, CLIENTS);
        for (int i = 0; i < CLIENTS; i++)
            if (pc_spawn(client, NULL,
                         &(pc_spawn_opts){.worker = PC_WORKER_ANY},
                         NULL) != PC_OK)
                return 1;
    }
    if (pc_node_run() != PC_OK)
        return 1;
    pc_sock_close(&listener);
    if (requests <= 0)
        return 0;
    printf("%d clients made %ld requests each: %s\n", CLIENTS, requests,
           atomic_load(&failures) ? "FAILED" : "all answered ping pong");
    return atomic_load(&failures) ? 1 : 0;
}
