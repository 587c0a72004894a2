/* tests/test_tls.c — pc_tls: mutual TLS 1.3 round trips across workers and
 * the refusal matrix: no CA file, wrong CA, rogue self-signed server, wrong
 * host name, missing client certificate, plaintext client, TLS 1.2 peer.
 *
 * Certificates (EC P-256) are made at start by the openssl CLI in a mkdtemp
 * directory: a CA, a server cert (SAN DNS:localhost, IP:127.0.0.1) and a
 * client cert signed by it, a second unrelated CA, and a rogue self-signed
 * "localhost" server cert. Loopback, ephemeral ports; server and client
 * tasks run on different workers when W=2 and never sleep to synchronise:
 * each records its results and the node runs until both end.
 *
 * Where the client rejects the server (wrong CA, rogue, host name), the
 * client fails with PC_EAUTH and the server with PC_EAUTH too, from the
 * client's alert. Missing client certificate: in TLS 1.3 the server checks
 * it after the client's handshake has finished, so the server's handshake
 * fails with PC_EAUTH (NO_PEER_CERT) while the client learns of it from its
 * next read (the alert: PC_EAUTH, or PC_ECLOSED if a reset wins).
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "picos/tls.h"

#include "testutil.h"

#ifndef PICOS_OPENSSL
#define PICOS_OPENSSL "openssl"
#endif

extern char **environ;

static char dir[64];

static const char *
path(const char *name)
{
    static char bufs[16][128];
    static int next;
    char *b = bufs[next++ % 16];

    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

/* Make the certificates once; false when openssl failed. */
static bool
make_certs(void)
{
    static int made; /* 0 not yet, 1 ok, -1 failed */
    char cmd[4096];
    const char *o = PICOS_OPENSSL;
    FILE *f;

    if (made)
        return made > 0;
    made = -1;
    if (!pt_mkdtemp(dir, sizeof dir, "tls"))
        return false;
    f = fopen(path("srv.ext"), "w");
    if (!f)
        return false;
    fputs("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
          "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
          f);
    fclose(f);
    f = fopen(path("cli.ext"), "w");
    if (!f)
        return false;
    fputs("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n", f);
    fclose(f);
#define EC "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    snprintf(cmd, sizeof cmd,
             "set -e; cd %s; O=%s\n"
             "$O req -x509 " EC " -keyout ca.key -out ca.pem -days 2 "
             "-subj /CN=picos-test-ca\n"
             "$O req -x509 " EC " -keyout ca2.key -out ca2.pem -days 2 "
             "-subj /CN=other-ca\n"
             "$O req " EC " -keyout srv.key -out srv.csr -subj /CN=localhost\n"
             "$O x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -set_serial 2 "
             "-days 2 -extfile srv.ext -out srv.pem\n"
             "$O req " EC
             " -keyout cli.key -out cli.csr -subj /CN=picos-client\n"
             "$O x509 -req -in cli.csr -CA ca.pem -CAkey ca.key -set_serial 3 "
             "-days 2 -extfile cli.ext -out cli.pem\n"
             "$O req -x509 " EC " -keyout rogue.key -out rogue.pem -days 2 "
             "-subj /CN=localhost -addext subjectAltName=DNS:localhost\n",
             dir, o);
#undef EC
    f = fopen(path("make.sh"), "w");
    if (!f)
        return false;
    fputs(cmd, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "sh %s/make.sh >%s/make.log 2>&1", dir, dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "openssl failed, see %s/make.log\n", dir);
        return false;
    }
    made = 1;
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

/* ---- contexts ---------------------------------------------------------------------- */

static pc_tls_ctx *
server_ctx(const char *cert, const char *key, bool mutual)
{
    pc_tls_ctx_opts o = {0};
    pc_tls_ctx *c = NULL;

    o.server = true;
    o.cert_file = path(cert);
    o.key_file = path(key);
    o.ca_file = path("ca.pem");
    o.verify_peer = mutual;
    CU_ASSERT_EQUAL(pc_tls_ctx_new(&c, &o), PC_OK);
    return c;
}

static pc_tls_ctx *
client_ctx(const char *ca, bool with_cert)
{
    pc_tls_ctx_opts o = {0};
    pc_tls_ctx *c = NULL;

    o.ca_file = path(ca);
    if (with_cert) {
        o.cert_file = path("cli.pem");
        o.key_file = path("cli.key");
    }
    CU_ASSERT_EQUAL(pc_tls_ctx_new(&c, &o), PC_OK);
    return c;
}

/* ---- one server and one client ------------------------------------------------------- */

enum { PLAIN_CLIENT = 1, NO_CLIENT = 2 };

struct pair {
    pc_tls_ctx *sctx, *cctx;
    const char *host;
    int mode;
    size_t bytes; /* client -> server payload for a good round trip */
    pc_sock *listener;
    uint16_t port;
    atomic_int srv_hs, cli_hs; /* handshake results */
    atomic_int srv_io, cli_io; /* first I/O error after the handshake */
    atomic_int srv_eof;        /* server saw a clean close_notify EOF */
    atomic_int cli_ok;         /* client verified the server's answer */
};

static uint64_t
sum_of(const unsigned char *p, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static pc_msg *
server_task(void *arg)
{
    struct pair *p = arg;
    pc_sock *s = NULL;
    pc_tls *t = NULL;
    unsigned char buf[16384];
    uint64_t h = 1469598103934665603ull;
    size_t got = 0, n = 0;
    pc_err rc;

    TCHECK_RC(pc_sock_accept(p->listener, &s, PT_LONG), PC_OK);
    pc_sock_close(&p->listener);
    if (!s)
        return NULL;
    TCHECK_RC(pc_tls_wrap(&t, p->sctx, s, NULL), PC_OK);
    if (!t) {
        pc_sock_close(&s);
        return NULL;
    }
    rc = pc_tls_handshake(t, PT_LONG);
    atomic_store(&p->srv_hs, rc);
    if (rc == PC_OK) {
        while (got < p->bytes) {
            rc = pc_tls_read(t, buf, sizeof buf, PT_LONG, &n);
            if (rc != PC_OK || n == 0)
                break;
            h = sum_of(buf, n, h);
            got += n;
        }
        if (rc == PC_OK && got == p->bytes)
            rc = pc_tls_write_all(t, &h, sizeof h, PT_LONG);
        if (rc == PC_OK) {
            rc = pc_tls_read(t, buf, sizeof buf, PT_LONG, &n);
            if (rc == PC_OK && n == 0)
                atomic_store(&p->srv_eof, 1);
        }
        atomic_store(&p->srv_io, rc);
    }
    pc_tls_close(&t);
    TCHECK(t == NULL);
    return NULL;
}

static pc_msg *
client_task(void *arg)
{
    struct pair *p = arg;
    pc_sock *s = NULL;
    pc_tls *t = NULL;
    unsigned char *out;
    uint64_t h, back = 0;
    size_t n = 0;
    pc_err rc;

    TCHECK_RC(pc_sock_connect(&s, "127.0.0.1", p->port, PT_LONG), PC_OK);
    if (!s)
        return NULL;
    if (p->mode == PLAIN_CLIENT) {
        static const char req[] = "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n";
        char buf[512];
        TCHECK_RC(pc_sock_write_all(s, req, sizeof req - 1, PT_LONG, NULL),
                  PC_OK);
        /* until the server gives up on us (EOF, reset or an alert) */
        while (pc_sock_read(s, buf, sizeof buf, PT_LONG, &n) == PC_OK && n)
            ;
        pc_sock_close(&s);
        return NULL;
    }
    TCHECK_RC(pc_tls_wrap(&t, p->cctx, s, p->host), PC_OK);
    if (!t) {
        pc_sock_close(&s);
        return NULL;
    }
    rc = pc_tls_handshake(t, PT_LONG);
    atomic_store(&p->cli_hs, rc);
    if (rc == PC_OK) {
        out = malloc(p->bytes ? p->bytes : 1);
        for (size_t i = 0; i < p->bytes; i++)
            out[i] = (unsigned char)(i * 7 + (i >> 8));
        h = sum_of(out, p->bytes, 1469598103934665603ull);
        rc = pc_tls_write_all(t, out, p->bytes, PT_LONG);
        if (rc == PC_OK)
            rc = pc_tls_read(t, &back, sizeof back, PT_LONG, &n);
        if (rc == PC_OK && n == sizeof back && back == h)
            atomic_store(&p->cli_ok, 1);
        else if (rc == PC_OK)
            rc = PC_EPROTO; /* short or wrong answer */
        atomic_store(&p->cli_io, rc);
        free(out);
    }
    pc_tls_close(&t);
    return NULL;
}

static void
pair_init(struct pair *p, pc_tls_ctx *sctx, pc_tls_ctx *cctx, const char *host,
          size_t bytes)
{
    memset(p, 0, sizeof *p);
    p->sctx = sctx;
    p->cctx = cctx;
    p->host = host;
    p->bytes = bytes;
    atomic_init(&p->srv_hs, 1);
    atomic_init(&p->cli_hs, 1);
    atomic_init(&p->srv_io, 1);
    atomic_init(&p->cli_io, 1);
}

/* Run server (worker 0) and client (worker 1) to completion. */
static void
pair_run(int W, struct pair *p)
{
    PT_START(W);
    CU_ASSERT_EQUAL_FATAL(pc_sock_listen(&p->listener, "127.0.0.1", 0, 8),
                          PC_OK);
    p->port = pc_sock_port(p->listener);
    pt_spawn(server_task, p, 0, 0);
    if (p->mode != NO_CLIENT)
        pt_spawn(client_task, p, 1, 0);
    PT_RUN();
}

/* ---- tests ------------------------------------------------------------------------------- */

PT_WTEST(mutual_round_trip)
static void
mutual_round_trip(int W)
{
    struct pair p;

    CU_ASSERT_FATAL(make_certs());
    pair_init(&p, server_ctx("srv.pem", "srv.key", true),
              client_ctx("ca.pem", true), "localhost", 300000);
    pair_run(W, &p);
    CU_ASSERT_EQUAL(atomic_load(&p.srv_hs), PC_OK);
    CU_ASSERT_EQUAL(atomic_load(&p.cli_hs), PC_OK);
    CU_ASSERT_EQUAL(atomic_load(&p.cli_ok), 1);
    CU_ASSERT_EQUAL(atomic_load(&p.cli_io), PC_OK);
    CU_ASSERT_EQUAL(atomic_load(&p.srv_io), PC_OK);
    CU_ASSERT_EQUAL(atomic_load(&p.srv_eof), 1);
    pc_tls_ctx_free(&p.sctx);
    pc_tls_ctx_free(&p.cctx);
    CU_ASSERT_PTR_NULL(p.sctx);
}

PT_TEST(ctx_errors)
static void
ctx_errors(void)
{
    pc_tls_ctx_opts o = {0};
    pc_tls_ctx *c = NULL;

    CU_ASSERT_FATAL(make_certs());
    /* client without a CA file */
    CU_ASSERT_EQUAL(pc_tls_ctx_new(&c, &o), PC_EINVAL);
    CU_ASSERT_PTR_NULL(c);
    /* client with a CA file that isn't there */
    o.ca_file = path("no-such-ca.pem");
    CU_ASSERT_EQUAL(pc_tls_ctx_new(&c, &o), PC_EINVAL);
    /* a file that isn't PEM */
    o.ca_file = path("srv.ext");
    CU_ASSERT_EQUAL(pc_tls_ctx_new(&c, &o), PC_EINVAL);
    /* client certificate that isn't there */
    o.ca_file = path("ca.pem");
    o.cert_file = path("missing.pem");
    o.key_file = path("cli.key");
    CU_ASSERT_EQUAL(pc_tls_ctx_new(&c, &o), PC_EINVAL);
    /* a key file that isn't there */
    o.cert_file = path("cli.pem");
    o.key_file = path("missing.key");
    CU_ASSERT_EQUAL(pc_tls_ctx_new(&c, &o), PC_EINVAL);
    /* server without a certificate; mutual server without a CA */
    memset(&o, 0, sizeof o);
    o.server = true;
    CU_ASSERT_EQUAL(pc_tls_ctx_new(&c, &o), PC_EINVAL);
    o.cert_file = path("srv.pem");
    o.key_file = path("srv.key");
    o.verify_peer = true;
    CU_ASSERT_EQUAL(pc_tls_ctx_new(&c, &o), PC_EINVAL);
    CU_ASSERT_PTR_NULL(c);
    /* a client wrap needs a host name */
    o.server = false;
    o.ca_file = path("ca.pem");
    CU_ASSERT_EQUAL(pc_tls_ctx_new(&c, &o), PC_OK);
    {
        pc_tls *t = NULL;
        pc_sock *s = NULL;
        CU_ASSERT_EQUAL(pc_sock_udp(&s, "127.0.0.1", 0), PC_OK);
        CU_ASSERT_EQUAL(pc_tls_wrap(&t, c, s, NULL), PC_EINVAL);
        pc_sock_close(&s);
    }
    pc_tls_ctx_free(&c);
}

/* A refused handshake: the client must see want_cli, the server fail. */
static void
refused(int W, pc_tls_ctx *sctx, pc_tls_ctx *cctx, const char *host,
        pc_err want_cli)
{
    struct pair p;

    pair_init(&p, sctx, cctx, host, 16);
    pair_run(W, &p);
    CU_ASSERT_EQUAL(atomic_load(&p.cli_hs), want_cli);
    if (atomic_load(&p.cli_hs) != want_cli)
        fprintf(stderr, "client handshake: %s\n",
                pc_err_name(atomic_load(&p.cli_hs)));
    /* the server learns why from the client's alert */
    CU_ASSERT_EQUAL(atomic_load(&p.srv_hs), PC_EAUTH);
    CU_ASSERT_EQUAL(atomic_load(&p.cli_ok), 0);
    pc_tls_ctx_free(&p.sctx);
    pc_tls_ctx_free(&p.cctx);
}

/* A read with nothing to read times out; the connection stays usable. */
struct to_ctx {
    pc_tls_ctx *sctx, *cctx;
    pc_sock *listener;
    uint16_t port;
    pc_ref client;
    atomic_int done;
};

static pc_msg *
to_server(void *arg)
{
    struct to_ctx *c = arg;
    pc_sock *s = NULL;
    pc_tls *t = NULL;
    char buf[16];
    size_t n = 99;
    double t0;

    TCHECK_RC(pc_sock_accept(c->listener, &s, PT_LONG), PC_OK);
    pc_sock_close(&c->listener);
    if (!s)
        return NULL;
    TCHECK_RC(pc_tls_wrap(&t, c->sctx, s, NULL), PC_OK);
    if (!t) {
        pc_sock_close(&s);
        return NULL;
    }
    TCHECK_RC(pc_tls_read(t, buf, sizeof buf, 0, &n), PC_ESTATE);
    TCHECK_RC(pc_tls_handshake(t, PT_LONG), PC_OK);
    t0 = pc_now();
    TCHECK_RC(pc_tls_read(t, buf, sizeof buf, 0.05, &n), PC_ETIMEDOUT);
    TCHECK(pt_since(t0) >= 0.04);
    TCHECK_EQ(n, 0);
    TCHECK_RC(pt_send(c->client, "go"), PC_OK);
    TCHECK_RC(pc_tls_read(t, buf, sizeof buf, PT_LONG, &n), PC_OK);
    TCHECK_EQ(n, 1);
    TCHECK(buf[0] == 'x');
    pc_tls_close(&t);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

static pc_msg *
to_client(void *arg)
{
    struct to_ctx *c = arg;
    pc_sock *s = NULL;
    pc_tls *t = NULL;
    char buf[4];
    size_t n = 0;

    TCHECK_RC(pc_sock_connect(&s, "127.0.0.1", c->port, PT_LONG), PC_OK);
    if (!s)
        return NULL;
    TCHECK_RC(pc_tls_wrap(&t, c->cctx, s, "localhost"), PC_OK);
    if (!t) {
        pc_sock_close(&s);
        return NULL;
    }
    TCHECK_RC(pc_tls_handshake(t, PT_LONG), PC_OK);
    PT_EXPECT("go");
    TCHECK_RC(pc_tls_write_all(t, "x", 1, PT_LONG), PC_OK);
    /* the server's close_notify: a clean EOF */
    TCHECK_RC(pc_tls_read(t, buf, sizeof buf, PT_LONG, &n), PC_OK);
    TCHECK_EQ(n, 0);
    pc_tls_close(&t);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(read_timeout)
static void
read_timeout(int W)
{
    struct to_ctx c;

    CU_ASSERT_FATAL(make_certs());
    memset(&c, 0, sizeof c);
    c.sctx = server_ctx("srv.pem", "srv.key", true);
    c.cctx = client_ctx("ca.pem", true);
    atomic_init(&c.done, 0);
    PT_START(W);
    CU_ASSERT_EQUAL_FATAL(pc_sock_listen(&c.listener, "127.0.0.1", 0, 8),
                          PC_OK);
    c.port = pc_sock_port(c.listener);
    c.client = pt_spawn(to_client, &c, 1, 0);
    pt_spawn(to_server, &c, 0, 0);
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&c.done), 2);
    pc_tls_ctx_free(&c.sctx);
    pc_tls_ctx_free(&c.cctx);
}

PT_WTEST(wrong_ca)
static void
wrong_ca(int W)
{
    CU_ASSERT_FATAL(make_certs());
    refused(W, server_ctx("srv.pem", "srv.key", false),
            client_ctx("ca2.pem", true), "localhost", PC_EAUTH);
}

PT_WTEST(rogue_server)
static void
rogue_server(int W)
{
    CU_ASSERT_FATAL(make_certs());
    refused(W, server_ctx("rogue.pem", "rogue.key", false),
            client_ctx("ca.pem", true), "localhost", PC_EAUTH);
}

PT_WTEST(wrong_hostname)
static void
wrong_hostname(int W)
{
    CU_ASSERT_FATAL(make_certs());
    refused(W, server_ctx("srv.pem", "srv.key", false),
            client_ctx("ca.pem", true), "example.com", PC_EAUTH);
}

PT_WTEST(no_client_cert)
static void
no_client_cert(int W)
{
    struct pair p;

    CU_ASSERT_FATAL(make_certs());
    pair_init(&p, server_ctx("srv.pem", "srv.key", true),
              client_ctx("ca.pem", false), "localhost", 16);
    pair_run(W, &p);
    CU_ASSERT_EQUAL(atomic_load(&p.srv_hs), PC_EAUTH);
    /* the client fails in its handshake or at its first read */
    CU_ASSERT(atomic_load(&p.cli_hs) != PC_OK ||
              atomic_load(&p.cli_io) == PC_EAUTH ||
              atomic_load(&p.cli_io) == PC_ECLOSED);
    CU_ASSERT_EQUAL(atomic_load(&p.cli_ok), 0);
    pc_tls_ctx_free(&p.sctx);
    pc_tls_ctx_free(&p.cctx);
}

PT_WTEST(plaintext_client)
static void
plaintext_client(int W)
{
    struct pair p;

    CU_ASSERT_FATAL(make_certs());
    pair_init(&p, server_ctx("srv.pem", "srv.key", false), NULL, NULL, 16);
    p.mode = PLAIN_CLIENT;
    pair_run(W, &p);
    CU_ASSERT_EQUAL(atomic_load(&p.srv_hs), PC_EPROTO);
    pc_tls_ctx_free(&p.sctx);
}

/* The peer is `openssl s_client -tls1_2`: our 1.3-only server refuses it
 * with PC_EPROTO and s_client exits non-zero. */
PT_WTEST(tls12_peer)
static void
tls12_peer(int W)
{
    struct pair p;
    char port[64];
    pid_t pid;
    int st = 0;
    posix_spawn_file_actions_t fa;

    CU_ASSERT_FATAL(make_certs());
    pair_init(&p, server_ctx("srv.pem", "srv.key", false), NULL, NULL, 16);
    p.mode = NO_CLIENT;
    PT_START(W);
    CU_ASSERT_EQUAL_FATAL(pc_sock_listen(&p.listener, "127.0.0.1", 0, 8),
                          PC_OK);
    p.port = pc_sock_port(p.listener);
    snprintf(port, sizeof port, "127.0.0.1:%u", (unsigned)p.port);
    {
        char *argv[] = {(char *)PICOS_OPENSSL,  (char *)"s_client",
                        (char *)"-connect",     port,
                        (char *)"-tls1_2",      (char *)"-CAfile",
                        (char *)path("ca.pem"), NULL};
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
        CU_ASSERT_EQUAL(posix_spawn(&pid, argv[0], &fa, NULL, argv, environ),
                        0);
        posix_spawn_file_actions_destroy(&fa);
    }
    pt_spawn(server_task, &p, 0, 0);
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&p.srv_hs), PC_EPROTO);
    CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
    CU_ASSERT(!WIFEXITED(st) || WEXITSTATUS(st) != 0);
    pc_tls_ctx_free(&p.sctx);
}

/* ---- a task terminated inside a call -------------------------------------------- */

/* The task modes: a task of its own stack, and a small task. */
static const unsigned modes[] = {0, PC_TASK_SMALL};

static bool
fd_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0 || errno != EBADF;
}

struct kill_ctx {
    pc_tls_ctx *sctx, *cctx;
    unsigned flags;
    uint16_t port;
    pc_tls *srv;
    pc_ref main;
    atomic_int done;
};

static pc_msg *
kill_client(void *arg)
{
    struct kill_ctx *c = arg;
    pc_sock *s = NULL;
    pc_tls *t = NULL;
    char buf[8];
    size_t n = 9;

    TCHECK_RC(pc_sock_connect(&s, "127.0.0.1", c->port, PT_LONG), PC_OK);
    TCHECK_RC(pc_tls_wrap(&t, c->cctx, s, "localhost"), PC_OK);
    if (!t) {
        pc_sock_close(&s);
        return NULL;
    }
    TCHECK_RC(pc_tls_handshake(t, PT_LONG), PC_OK);
    /* the server's close: close_notify, a clean end */
    TCHECK_RC(pc_tls_read(t, buf, sizeof buf, PT_LONG, &n), PC_OK);
    TCHECK_EQ(n, 0);
    /* our close would make the server's fd ready: not before it is shut */
    PT_EXPECT("bye");
    pc_tls_close(&t);
    return NULL;
}

/* Holds no reference of its own: its call's is the one it leaves behind. */
static pc_msg *
kill_reader(void *arg)
{
    struct kill_ctx *c = arg;
    pc_tls *t = c->srv; /* before "ready": c->srv is NULLed by the close */
    char buf[8];
    size_t n;

    TCHECK_RC(pt_send(c->main, "ready"), PC_OK);
    (void)pc_tls_read(t, buf, sizeof buf, -1, &n);
    TCHECK(!"the terminated reader went on");
    return NULL;
}

static pc_msg *
kill_main(void *arg)
{
    struct kill_ctx *c = arg;
    pc_sock *l = NULL, *s = NULL, *x = NULL;
    pc_ref cli, r;
    int sfd;

    c->main = pc_self();
    TCHECK_RC(pc_sock_listen(&l, "127.0.0.1", 0, 4), PC_OK);
    if (!l)
        return NULL;
    c->port = pc_sock_port(l);
    cli = pt_spawn(kill_client, c, 0, PC_TASK_JOINABLE);
    TCHECK_RC(pc_sock_accept(l, &s, PT_LONG), PC_OK);
    pc_sock_close(&l);
    if (!s)
        return NULL;
    sfd = pc_sock_fd(s);
    TCHECK_RC(pc_tls_wrap(&c->srv, c->sctx, s, NULL), PC_OK);
    TCHECK_RC(pc_tls_handshake(c->srv, PT_LONG), PC_OK);
    r = pt_spawn(kill_reader, c, 1, c->flags | PC_TASK_JOINABLE);
    PT_EXPECT("ready");
    TCHECK_RC(pc_sleep(0.02), PC_OK); /* most likely in its wait now */
    TCHECK_RC(pc_task_terminate(r), PC_OK);
    pc_tls_close(&c->srv); /* at once: the reader may not be gone yet */
    TCHECK_RC(pc_task_join(r, PT_LONG, NULL), PC_EKILLED);
    /* the connection and its fd go once the reader is gone (by the next
     * close at the latest) */
    TCHECK_RC(pc_sock_listen(&x, "127.0.0.1", 0, 1), PC_OK);
    pc_sock_close(&x);
    TCHECK(!fd_open(sfd));
    TCHECK_RC(pt_send(cli, "bye"), PC_OK);
    TCHECK_RC(pc_task_join(cli, PT_LONG, NULL), PC_OK);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(terminate_in_read)
static void
terminate_in_read(int W)
{
    CU_ASSERT_FATAL(make_certs());
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        struct kill_ctx c;

        memset(&c, 0, sizeof c);
        c.flags = modes[m];
        c.sctx = server_ctx("srv.pem", "srv.key", false);
        c.cctx = client_ctx("ca.pem", false);
        PT_RUN_TASK(W, kill_main, &c, &c.done, 1);
        pc_tls_ctx_free(&c.sctx);
        pc_tls_ctx_free(&c.cctx);
    }
}

/* ---- a peer's normal close is not a warning -------------------------------------- */

static atomic_int tls_warns, tls_debugs;

static void
count_sink(pc_log_level level, const char *module, const char *text, void *user)
{
    (void)text;
    (void)user;
    if (strcmp(module, "tls") != 0)
        return;
    if (level >= PC_LOG_LEVEL_WARN)
        atomic_fetch_add(&tls_warns, 1);
    else if (level == PC_LOG_LEVEL_DEBUG)
        atomic_fetch_add(&tls_debugs, 1);
}

enum { BY_CLOSE_NOTIFY, BY_EOF, BY_GARBAGE };

struct close_ctx {
    pc_tls_ctx *sctx, *cctx;
    int how;
    uint16_t port;
    pc_ref server;
    atomic_int done;
};

static pc_msg *
closing_client(void *arg)
{
    struct close_ctx *c = arg;
    pc_sock *s = NULL;
    pc_tls *t = NULL;
    int fd;

    TCHECK_RC(pc_sock_connect(&s, "127.0.0.1", c->port, PT_LONG), PC_OK);
    if (!s)
        return NULL;
    fd = pc_sock_fd(s);
    TCHECK_RC(pc_tls_wrap(&t, c->cctx, s, "localhost"), PC_OK);
    if (!t) {
        pc_sock_close(&s);
        return NULL;
    }
    TCHECK_RC(pc_tls_handshake(t, PT_LONG), PC_OK);
    if (c->how == BY_EOF) {
        /* the end of the stream without close_notify */
        TCHECK(shutdown(fd, SHUT_WR) == 0);
        PT_EXPECT("bye");
    } else if (c->how == BY_GARBAGE) {
        /* a real error: bytes that are no TLS record */
        static const char junk[] = "\x17\x03\x03\x00\x05hello, no record";
        TCHECK_EQ(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
        PT_EXPECT("bye");
    }
    pc_tls_close(&t);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

static pc_msg *
closing_server(void *arg)
{
    struct close_ctx *c = arg;
    pc_sock *l = NULL, *s = NULL;
    pc_tls *t = NULL;
    pc_ref cli;
    char buf[16];
    size_t n = 9;

    TCHECK_RC(pc_sock_listen(&l, "127.0.0.1", 0, 4), PC_OK);
    if (!l)
        return NULL;
    c->port = pc_sock_port(l);
    cli = pt_spawn(closing_client, c, 1, PC_TASK_JOINABLE);
    TCHECK_RC(pc_sock_accept(l, &s, PT_LONG), PC_OK);
    pc_sock_close(&l);
    TCHECK_RC(pc_tls_wrap(&t, c->sctx, s, NULL), PC_OK);
    if (!t) {
        pc_sock_close(&s);
        return NULL;
    }
    TCHECK_RC(pc_tls_handshake(t, PT_LONG), PC_OK);
    TCHECK_RC(pc_tls_read(t, buf, sizeof buf, PT_LONG, &n),
              c->how == BY_EOF       ? PC_ECLOSED
              : c->how == BY_GARBAGE ? PC_EPROTO
                                     : PC_OK);
    TCHECK_EQ(n, 0);
    if (c->how != BY_CLOSE_NOTIFY)
        TCHECK_RC(pt_send(cli, "bye"), PC_OK);
    TCHECK_RC(pc_task_join(cli, PT_LONG, NULL), PC_OK);
    pc_tls_close(&t);
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

PT_WTEST(peer_close_logs)
static void
peer_close_logs(int W)
{
    pc_log_level lvl = pc_log_get_level();

    CU_ASSERT_FATAL(make_certs());
    atomic_store(&tls_warns, 0);
    atomic_store(&tls_debugs, 0);
    pc_log_set_sink(count_sink, NULL);
    pc_log_set_level(PC_LOG_LEVEL_DEBUG);
    for (int how = BY_CLOSE_NOTIFY; how <= BY_GARBAGE; how++) {
        struct close_ctx c;

        memset(&c, 0, sizeof c);
        c.how = how;
        c.sctx = server_ctx("srv.pem", "srv.key", false);
        c.cctx = client_ctx("ca.pem", false);
        PT_RUN_TASK(W, closing_server, &c, &c.done, 2);
        pc_tls_ctx_free(&c.sctx);
        pc_tls_ctx_free(&c.cctx);
        if (how == BY_EOF) {
            /* two normal ends, told at debug level; nothing at WARN */
            CU_ASSERT_EQUAL(atomic_load(&tls_warns), 0);
            CU_ASSERT(atomic_load(&tls_debugs) >= 2);
        }
    }
    pc_log_set_level(lvl);
    pc_log_set_sink(NULL, NULL);
    /* the bad record still warns */
    CU_ASSERT(atomic_load(&tls_warns) >= 1);
}

int
main(int argc, char **argv)
{
    static const pt_test tests[] = {
        PT_ENTRY(ctx_errors),       PT_WENTRY(mutual_round_trip),
        PT_WENTRY(read_timeout),    PT_WENTRY(wrong_ca),
        PT_WENTRY(rogue_server),    PT_WENTRY(wrong_hostname),
        PT_WENTRY(no_client_cert),  PT_WENTRY(plaintext_client),
        PT_WENTRY(tls12_peer),      PT_WENTRY(terminate_in_read),
        PT_WENTRY(peer_close_logs),
    };
    int rc = pt_main(argc, argv, "tls", tests, sizeof tests / sizeof tests[0]);

    remove_certs();
    return rc;
}
