/* tls_chat.c — pycos's chat_server2.py over mutual TLS.
 *
 *   picos-tls-chat --self-test N   make a CA and certificates in a temp dir
 *                                  with the openssl CLI, serve on an
 *                                  ephemeral 127.0.0.1 port, run N client
 *                                  tasks that each send one line and check
 *                                  that they get the other N-1, and exit
 *
 * The server requires client certificates signed by the CA. Each connection
 * has a reader task that reads '\n'-terminated lines (at most LINE_MAX
 * bytes) with pc_tls_read() and sends them as "line" messages to one
 * broadcaster task, which writes each line to every other connected client
 * (pc_tls allows one reader and one writer task at once). The broadcaster
 * owns the connections' closing: a reader that sees the end sends "leave"
 * and no longer touches its connection. A new connection gets "welcome\n"
 * from the broadcaster once it is registered, so that a client knows it
 * will get every later line.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/picos.h"

#define LINE_MAX_ 1024
#define MAX_CONNS 256

typedef struct conn {
    pc_tls *tls;
} conn;

static char dir[64];
static uint16_t port;
static pc_sock *listener;
static pc_tls_ctx *server_ctx, *client_ctx;
static pc_ref broadcaster_ref;
static int nclients;
static atomic_int joined, finished, failures;

static const char *
path(const char *name)
{
    static char bufs[8][128];
    static int next;
    char *b = bufs[next++ % 8];

    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

static bool
make_certs(void)
{
    char cmd[4096];
    FILE *f;

    snprintf(dir, sizeof dir, "/tmp/picos-tls-chat-XXXXXX");
    if (!mkdtemp(dir))
        return false;
    if (!(f = fopen(path("srv.ext"), "w")))
        return false;
    fputs("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
          "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
          f);
    fclose(f);
    if (!(f = fopen(path("cli.ext"), "w")))
        return false;
    fputs("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n", f);
    fclose(f);
#define EC "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    snprintf(cmd, sizeof cmd,
             "set -e; cd %s\n"
             "openssl req -x509 " EC " -keyout ca.key -out ca.pem -days 2 "
             "-subj /CN=picos-chat-ca\n"
             "openssl req " EC " -keyout srv.key -out srv.csr "
             "-subj /CN=localhost\n"
             "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key "
             "-set_serial 2 -days 2 -extfile srv.ext -out srv.pem\n"
             "openssl req " EC " -keyout cli.key -out cli.csr "
             "-subj /CN=picos-chat-client\n"
             "openssl x509 -req -in cli.csr -CA ca.pem -CAkey ca.key "
             "-set_serial 3 -days 2 -extfile cli.ext -out cli.pem\n",
             dir);
#undef EC
    if (!(f = fopen(path("make.sh"), "w")))
        return false;
    fputs(cmd, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "sh %s/make.sh >%s/make.log 2>&1", dir, dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "picos-tls-chat: openssl failed, see %s/make.log\n",
                dir);
        return false;
    }
    return true;
}

static void
remove_certs(void)
{
    char cmd[128];

    if (dir[0]) {
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
}

/* Messages to the broadcaster carry a conn pointer, then (for "line") the
 * line's bytes. */
static void
tell(const char *type, conn *c, const char *text, size_t len)
{
    char buf[sizeof c + LINE_MAX_];

    memcpy(buf, &c, sizeof c);
    if (len)
        memcpy(buf + sizeof c, text, len);
    pc_send_data(broadcaster_ref, type, buf, sizeof c + len);
}

static pc_msg *
broadcaster(void *arg)
{
    conn *conns[MAX_CONNS];
    int n = 0;
    bool quit = false;
    pc_msg *m;

    (void)arg;
    while (!(quit && n == 0) && pc_recv(&m, -1) == PC_OK) {
        size_t len;
        const char *d = pc_msg_data(m, &len);
        conn *c = NULL;

        if (len >= sizeof c)
            memcpy(&c, d, sizeof c);
        if (pc_msg_is(m, "quit")) {
            quit = true;
        } else if (pc_msg_is(m, "join") && c) {
            if (n < MAX_CONNS) {
                conns[n++] = c;
                pc_tls_write_all(c->tls, "welcome\n", 8, 10.0);
            } else {
                pc_tls_close(&c->tls);
                free(c);
            }
        } else if (pc_msg_is(m, "line") && c) {
            for (int i = 0; i < n; i++)
                if (conns[i] != c)
                    pc_tls_write_all(conns[i]->tls, d + sizeof c,
                                     len - sizeof c, 10.0);
        } else if (pc_msg_is(m, "leave") && c) {
            for (int i = 0; i < n; i++)
                if (conns[i] == c) {
                    conns[i] = conns[--n];
                    break;
                }
            pc_tls_close(&c->tls);
            free(c);
        }
        pc_msg_free(&m);
    }
    return NULL;
}

/* A connection's reader: handshake, join, then forward lines. */
static pc_msg *
reader(void *arg)
{
    pc_sock *s = arg;
    conn *c = calloc(1, sizeof *c);
    char buf[LINE_MAX_];
    size_t used = 0, n;

    if (!c || pc_tls_wrap(&c->tls, server_ctx, s, NULL) != PC_OK) {
        pc_sock_close(&s);
        free(c);
        return NULL;
    }
    if (pc_tls_handshake(c->tls, 10.0) != PC_OK) {
        pc_tls_close(&c->tls);
        free(c);
        return NULL;
    }
    tell("join", c, NULL, 0);
    for (;;) {
        if (pc_tls_read(c->tls, buf + used, sizeof buf - used, 300.0, &n) !=
                PC_OK ||
            n == 0)
            break;
        used += n;
        char *start = buf, *nl;
        while ((nl = memchr(start, '\n', used - (size_t)(start - buf)))) {
            tell("line", c, start, (size_t)(nl + 1 - start));
            start = nl + 1;
        }
        used -= (size_t)(start - buf);
        memmove(buf, start, used);
        if (used == sizeof buf) /* line too long */
            break;
    }
    tell("leave", c, NULL, 0);
    return NULL;
}

static pc_msg *
acceptor(void *arg)
{
    pc_sock *l = arg;
    pc_sock *c;
    pc_spawn_opts any = {.worker = PC_WORKER_ANY};

    while (pc_sock_accept(l, &c, -1) == PC_OK)
        if (pc_spawn(reader, c, &any, NULL) != PC_OK)
            pc_sock_close(&c);
    pc_sock_release(&l);
    return NULL;
}

/* Read one '\n'-terminated line into line (NUL-terminated, without '\n'). */
static bool
read_line(pc_tls *t, char *buf, size_t *used, char *line, size_t size)
{
    size_t n;
    char *nl;

    while (!(nl = memchr(buf, '\n', *used))) {
        if (*used == LINE_MAX_ ||
            pc_tls_read(t, buf + *used, LINE_MAX_ - *used, 20.0, &n) != PC_OK ||
            n == 0)
            return false;
        *used += n;
    }
    size_t len = (size_t)(nl - buf);
    if (len >= size)
        return false;
    memcpy(line, buf, len);
    line[len] = '\0';
    *used -= len + 1;
    memmove(buf, nl + 1, *used);
    return true;
}

static pc_msg *
client(void *arg)
{
    int id = (int)(intptr_t)arg;
    char buf[LINE_MAX_], line[LINE_MAX_], mine[64];
    bool *seen = calloc((size_t)nclients, sizeof *seen);
    size_t used = 0;
    pc_sock *s;
    pc_tls *t = NULL;
    bool ok = false;

    if (!seen)
        goto out;
    if (pc_sock_connect(&s, "127.0.0.1", port, 10.0) != PC_OK)
        goto out;
    if (pc_tls_wrap(&t, client_ctx, s, "localhost") != PC_OK) {
        pc_sock_close(&s);
        goto out;
    }
    if (pc_tls_handshake(t, 10.0) != PC_OK ||
        !read_line(t, buf, &used, line, sizeof line) ||
        strcmp(line, "welcome") != 0)
        goto out;
    atomic_fetch_add(&joined, 1);
    for (int i = 0; i < 2000 && atomic_load(&joined) < nclients; i++)
        pc_sleep(0.01);
    int len = snprintf(mine, sizeof mine, "hello from client %d\n", id);
    if (pc_tls_write_all(t, mine, (size_t)len, 10.0) != PC_OK)
        goto out;
    for (int got = 0; got < nclients - 1; got++) {
        int from;
        if (!read_line(t, buf, &used, line, sizeof line) ||
            sscanf(line, "hello from client %d", &from) != 1 || from < 0 ||
            from >= nclients || from == id || seen[from])
            goto out;
        seen[from] = true;
    }
    ok = true;
out:
    if (t)
        pc_tls_close(&t);
    free(seen);
    if (!ok)
        atomic_fetch_add(&failures, 1);
    if (atomic_fetch_add(&finished, 1) + 1 == nclients) {
        pc_sock_close(&listener); /* ends the accept tasks */
        pc_send_data(broadcaster_ref, "quit", NULL, 0);
    }
    return NULL;
}

int
main(int argc, char **argv)
{
    pc_node_opts o = {0};

    if (argc != 3 || strcmp(argv[1], "--self-test") != 0 ||
        (nclients = atoi(argv[2])) < 2 || nclients > MAX_CONNS) {
        fprintf(stderr, "usage: picos-tls-chat --self-test N (2..%d)\n",
                MAX_CONNS);
        return 2;
    }
    if (!make_certs()) {
        remove_certs();
        return 1;
    }
    int rc = 1;
    if (pc_tls_ctx_new(&server_ctx,
                       &(pc_tls_ctx_opts){.server = true,
                                          .cert_file = path("srv.pem"),
                                          .key_file = path("srv.key"),
                                          .ca_file = path("ca.pem"),
                                          .verify_peer = true}) != PC_OK ||
        pc_tls_ctx_new(&client_ctx,
                       &(pc_tls_ctx_opts){.cert_file = path("cli.pem"),
                                          .key_file = path("cli.key"),
                                          .ca_file = path("ca.pem")}) != PC_OK)
        goto out;
    if (pc_node_start(&o) != PC_OK ||
        pc_sock_listen(&listener, "127.0.0.1", 0, 128) != PC_OK)
        goto out;
    port = pc_sock_port(listener);
    printf("chat serving on 127.0.0.1:%u with mutual TLS\n", (unsigned)port);
    fflush(stdout);
    if (pc_spawn(broadcaster, NULL, NULL, &broadcaster_ref) != PC_OK)
        goto out;
    for (int w = 0; w < pc_node_workers(); w++)
        if (pc_spawn(acceptor, pc_sock_retain(listener),
                     &(pc_spawn_opts){.worker = PC_WORKER(w)}, NULL) != PC_OK)
            goto out;
    for (int i = 0; i < nclients; i++)
        if (pc_spawn(client, (void *)(intptr_t)i,
                     &(pc_spawn_opts){.worker = PC_WORKER_ANY}, NULL) != PC_OK)
            goto out;
    if (pc_node_run() != PC_OK)
        goto out;
    pc_sock_close(&listener);
    printf("%d TLS clients each got the other %d lines: %s\n", nclients,
           nclients - 1, atomic_load(&failures) ? "FAILED" : "chat ok");
    rc = atomic_load(&failures) ? 1 : 0;
out:
    pc_tls_ctx_free(&server_ctx);
    pc_tls_ctx_free(&client_ctx);
    remove_certs();
    return rc;
}
