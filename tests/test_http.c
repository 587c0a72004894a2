/* tests/test_http.c — the registry's monitoring HTTP API
 * (services/http.c, services/api.c; docs/monitoring.md) against a real
 * picos-registry started with --http 127.0.0.1:0.
 *
 * This program is a member node (pc_cluster_start) holding a task name;
 * a cluster_peer process is the member that is killed for the stream's
 * down event. The HTTP client is plain blocking POSIX sockets on the main
 * thread (one request per connection, read to EOF), but for HTTPS, which
 * goes through a picos TLS client socket in a task. JSON is parsed with
 * jansson, /metrics with python3-prometheus-client's text parser.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "picos/picos.h"
#include "picos/registry.h"
#include "picos/tls.h"

#include "httpclient.h"
#include "proctest.h"
#include "testutil.h"

#define WAIT 20.0
#define NODE_NAME "http-test-node"
#define TOKEN "0123456789abcdef-the-token"

static char tmpdir[64], secret[96], tokfile[96];
static kid *reg;
static uint16_t port;

static void
guard(void)
{
    if (!*tmpdir) {
        CU_ASSERT_FATAL(pt_mkdtemp(tmpdir, sizeof tmpdir, "http"));
        snprintf(secret, sizeof secret, "%s/secret", tmpdir);
        snprintf(tokfile, sizeof tokfile, "%s/token", tmpdir);
        write_file(secret, "the http test's cluster secret\n");
        write_file(tokfile, TOKEN "\n");
    }
}

/* Start picos-registry with --http 127.0.0.1:0 and `extra` args; the
 * ROUTER endpoint into ep, the http port into *hp. */
static kid *
registry_run(const char *const *extra, char *ep, size_t size, uint16_t *hp)
{
    static int seq;
    char dir[160], errpath[176], line[1024];
    const char *args[24] = {"--listen", "tcp://127.0.0.1:0", "--data-dir",
                            dir,        "--secret-file",     secret,
                            "--http",   "127.0.0.1:0"};
    int n = 8;
    double end = pc_now() + WAIT;
    kid *k;

    guard();
    snprintf(dir, sizeof dir, "%s/reg-%d", tmpdir, seq++);
    CU_ASSERT_FATAL(mkdir(dir, 0700) == 0);
    snprintf(errpath, sizeof errpath, "%s.err", dir);
    for (int i = 0; extra && extra[i]; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    k = kid_start(REGISTRY, args, NULL, errpath);
    CU_ASSERT_FATAL(k != NULL);
    *hp = 0;
    if (read_line(k->out, line, sizeof line, end - pc_now())) {
        const char *t = strstr(line, "tcp://"),
                   *h = strstr(line, "://127.0.0.1:");
        const char *hh = strstr(line, ", http");
        if (t && ep) {
            size_t m = strcspn(t, " ");
            snprintf(ep, size, "%.*s", (int)m, t);
        }
        if (hh && (h = strstr(hh, "127.0.0.1:")))
            *hp = (uint16_t)atoi(h + strlen("127.0.0.1:"));
    }
    if (!*hp) {
        char err[2048];
        fprintf(stderr, "picos-registry did not say its http port: %s\n",
                kid_errtext(k, err, sizeof err));
    }
    CU_ASSERT_FATAL(*hp != 0);
    return k;
}

static pc_ref holder, victim;

static pc_msg *
hold(void *arg)
{
    pc_msg *m = NULL;

    (void)arg;
    while (pc_recv(&m, -1) == PC_OK)
        pc_msg_free(&m);
    return NULL;
}

static char reg_ep[256];

/* The registry (with the token) and this program as a member holding the
 * task name http.alpha. */
static void
cluster_up(void)
{
    pc_cluster_opts o;
    pc_err rc;

    if (reg)
        return;
    reg = registry_run((const char *[]){"--http-token-file", tokfile, NULL},
                       reg_ep, sizeof reg_ep, &port);
    memset(&o, 0, sizeof o);
    o.node.workers = 2;
    o.net.name = NODE_NAME;
    o.net.secret_file = secret;
    o.registries = reg_ep;
    o.join_timeout = WAIT;
    rc = pc_cluster_start(&o);
    if (rc != PC_OK)
        fprintf(stderr, "pc_cluster_start: %s\n", pc_err_name(rc));
    CU_ASSERT_FATAL(rc == PC_OK);
    CU_ASSERT_EQUAL_FATAL(pc_spawn(hold, NULL, NULL, &holder), PC_OK);
    CU_ASSERT_EQUAL(pc_name_register(PC_NAME_TASK, "http.alpha", holder, WAIT),
                    PC_OK);
}

/* ---- a plain HTTP client ---------------------------------------------------- */

/* One request on its own connection (httpclient.h). */
static int
http_on(uint16_t p, const char *method, const char *path, const char *hdrs,
        const char *data, char **body)
{
    return hc_request(p, method, path, hdrs, data, body, WAIT);
}

static int
http_get(const char *path, char **body)
{
    return http_on(port, "GET", path, NULL, NULL, body);
}

/* GET path, 200, its body as JSON. */
static json_t *
get_json(const char *path)
{
    json_t *j = hc_get_json(port, path, WAIT);

    CU_ASSERT_FATAL(j != NULL);
    return j;
}

static char *
hex(uint64_t v, char *buf)
{
    sprintf(buf, "%016" PRIx64, v);
    return buf;
}

/* The entry of `nodes` (an array of NodeStatusEntry) for node id `id`. */
static json_t *
entry_for(json_t *nodes, const char *id)
{
    size_t i;
    json_t *e;

    json_array_foreach(nodes, i, e)
    {
        const char *n = json_string_value(
            json_object_get(json_object_get(e, "status"), "node"));
        if (n && !strcmp(n, id))
            return e;
    }
    return NULL;
}

/* ---- the routes -------------------------------------------------------------- */

PT_TEST(routes_json)
static void
routes_json(void)
{
    char me[17], path[128];
    json_t *j, *e, *names, *x;
    size_t i;
    bool found = false;

    cluster_up();
    hex(pc_node_id(), me);

    j = get_json("/api/v1/cluster");
    CU_ASSERT(json_integer_value(json_object_get(j, "nodesUp")) >= 1);
    CU_ASSERT(json_integer_value(json_object_get(j, "names")) >= 1);
    CU_ASSERT(json_is_number(json_object_get(j, "msgsPerS")));
    CU_ASSERT(json_is_string(
        json_object_get(json_object_get(j, "registry"), "node")));
    CU_ASSERT_EQUAL(strlen(json_string_value(json_object_get(
                        json_object_get(j, "registry"), "node"))),
                    16);
    json_decref(j);

    j = get_json("/api/v1/nodes");
    e = entry_for(json_object_get(j, "nodes"), me);
    CU_ASSERT_FATAL(e != NULL);
    CU_ASSERT(json_is_true(json_object_get(e, "up")));
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(
                               json_object_get(e, "status"), "name")),
                           NODE_NAME);
    CU_ASSERT_EQUAL(json_integer_value(
                        json_object_get(json_object_get(e, "status"), "pid")),
                    getpid());
    json_decref(j);

    for (int with0x = 0; with0x < 2; with0x++) {
        snprintf(path, sizeof path, "/api/v1/nodes/%s%s", with0x ? "0x" : "",
                 me);
        j = get_json(path);
        CU_ASSERT_STRING_EQUAL(
            json_string_value(json_object_get(
                json_object_get(json_object_get(j, "node"), "status"), "node")),
            me);
        names = json_object_get(j, "names");
        found = false;
        json_array_foreach(names, i, x) found |= !strcmp(
            json_string_value(json_object_get(x, "name")), "http.alpha");
        CU_ASSERT(found);
        json_decref(j);
    }
    CU_ASSERT_EQUAL(http_get("/api/v1/nodes/00000000000000ff", NULL), 404);
    CU_ASSERT_EQUAL(http_get("/api/v1/nodes/nothex", NULL), 404);

    j = get_json("/api/v1/names");
    found = false;
    json_array_foreach(json_object_get(j, "names"), i, x)
    {
        if (!strcmp(json_string_value(json_object_get(x, "name")),
                    "http.alpha")) {
            found = true;
            CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(
                                       json_object_get(x, "ref"), "node")),
                                   me);
        }
    }
    CU_ASSERT(found);
    json_decref(j);

    CU_ASSERT_EQUAL(http_get("/api/v1/series?what=tasks", NULL), 400);
    CU_ASSERT_EQUAL(http_get("/", NULL), 200);
    CU_ASSERT_EQUAL(http_get("/assets/app.js", NULL), 200);
    CU_ASSERT_EQUAL(http_get("/assets/nothing.js", NULL), 404);
}

/* /metrics through prometheus_client's parser: the names of the doc are
 * there and picos_registry_nodes counts this node. */
PT_TEST(metrics_parse)
static void
metrics_parse(void)
{
    static const char py[] =
        "import sys\n"
        "try:\n"
        "    from prometheus_client.parser import "
        "text_string_to_metric_families as parse\n"
        "except ImportError:\n"
        "    sys.exit(77)\n"
        "fams = {f.name: f for f in parse(open(sys.argv[1]).read())}\n"
        "for n in ['picos_node_up', 'picos_node_tasks', "
        "'picos_node_messages_sent', 'picos_registry_nodes', "
        "'picos_registry_names', 'picos_service_latency_seconds', "
        "'picos_link_up', 'picos_channel_published']:\n"
        "    assert n in fams, n\n"
        "v = fams['picos_registry_nodes'].samples[0].value\n"
        "assert v >= 1, v\n"
        "print(len(fams))\n";
    char *body = NULL, path[160], cmd[600];
    int st, rc;

    cluster_up();
    st = http_get("/metrics", &body);
    CU_ASSERT_EQUAL_FATAL(st, 200);
    CU_ASSERT_PTR_NOT_NULL_FATAL(body);
    snprintf(path, sizeof path, "%s/metrics.txt", tmpdir);
    write_file(path, body);
    free(body);
    {
        char pyf[160];
        snprintf(pyf, sizeof pyf, "%s/parse.py", tmpdir);
        write_file(pyf, py);
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s >/dev/null", pyf,
                 path);
    }
    rc = system(cmd);
    if (WIFEXITED(rc) && WEXITSTATUS(rc) == 77) {
        printf("\n    SKIP: python3-prometheus-client is not installed\n");
        return;
    }
    if (!WIFEXITED(rc) || WEXITSTATUS(rc) != 0)
        fprintf(stderr, "the prometheus parser refused %s\n", path);
    CU_ASSERT(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
}

/* ---- events ------------------------------------------------------------------- */

/* The next event of the stream on fd within the deadline: its name into
 * name, its data (malloc'd) returned; NULL at EOF or timeout. Comments are
 * skipped. buf holds what was read past it. */
typedef struct sse {
    int fd;
    char buf[1 << 20];
    size_t used;
} sse;

static char *
sse_next(sse *s, char *name, size_t size, double deadline)
{
    for (;;) {
        char *end;
        s->buf[s->used] = '\0';
        while ((end = strstr(s->buf, "\n\n"))) {
            char *ev = s->buf, *data = NULL, *nm;
            size_t n = (size_t)(end - s->buf) + 2;
            *end = '\0';
            if ((nm = strstr(ev, "event: ")) && (data = strstr(ev, "data: "))) {
                size_t k = strcspn(nm + 7, "\n");
                snprintf(name, size, "%.*s", (int)k, nm + 7);
                data = strdup(data + 6);
            }
            memmove(s->buf, s->buf + n, s->used - n);
            s->used -= n;
            s->buf[s->used] = '\0';
            if (data)
                return data;
        }
        struct pollfd pf = {s->fd, POLLIN, 0};
        int ms = (int)((deadline - pc_now()) * 1000);
        ssize_t r;
        if (ms <= 0 || poll(&pf, 1, ms) <= 0 ||
            (r = recv(s->fd, s->buf + s->used, sizeof s->buf - 1 - s->used,
                      0)) <= 0)
            return NULL;
        s->used += (size_t)r;
    }
}

/* Wait for an event `want` about node id (NULL: any node). */
static json_t *
sse_wait(sse *s, const char *want, const char *id, double timeout)
{
    double end = pc_now() + timeout;
    char name[64];
    char *data;

    while ((data = sse_next(s, name, sizeof name, end))) {
        json_t *j = json_loads(data, 0, NULL);
        free(data);
        if (j && !strcmp(name, want)) {
            const char *n = json_string_value(
                json_object_get(json_object_get(j, "status"), "node"));
            if (!id || (n && !strcmp(n, id)))
                return j;
        }
        json_decref(j);
    }
    return NULL;
}

PT_TEST(events_stream)
static void
events_stream(void)
{
    static sse s;
    static const char req[] = "GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n";
    char me[17], line[512], peer_id[17] = "";
    json_t *j;
    kid *peer;

    cluster_up();
    hex(pc_node_id(), me);
    s.used = 0;
    s.fd = hc_dial(port);
    CU_ASSERT_FATAL(s.fd >= 0);
    CU_ASSERT_FATAL(hc_send_all(s.fd, req, sizeof req - 1));
    j = sse_wait(&s, "snapshot", NULL, WAIT);
    CU_ASSERT_FATAL(j != NULL);
    CU_ASSERT(entry_for(json_object_get(j, "nodes"), me) != NULL);
    json_decref(j);
    CU_ASSERT(strstr(s.buf, "HTTP/1.1") == NULL); /* headers consumed */

    peer = kid_start(
        NET_PEER,
        (const char *[]){"--registries", reg_ep, "--secret-file", secret, NULL},
        NULL, NULL);
    CU_ASSERT_FATAL(peer != NULL);
    CU_ASSERT_FATAL(read_line(peer->out, line, sizeof line, WAIT));
    CU_ASSERT_FATAL(sscanf(line, "READY %*s %16s", peer_id) == 1);
    /* ids print as %PRIx64: pad to 16 digits */
    {
        uint64_t v = strtoull(peer_id, NULL, 16);
        hex(v, peer_id);
    }
    j = sse_wait(&s, "status", peer_id, WAIT);
    if (!j) /* the peer reports every second: 20 s without is a failure */
        kid_free(peer);
    CU_ASSERT_FATAL(j != NULL);
    CU_ASSERT(json_is_true(json_object_get(j, "up")));
    json_decref(j);
    kid_free(peer); /* kill -9 */
    j = sse_wait(&s, "down", peer_id, WAIT);
    CU_ASSERT_FATAL(j != NULL);
    CU_ASSERT(json_is_false(json_object_get(j, "up")));
    json_decref(j);
    close(s.fd);
}

/* ---- actions ---------------------------------------------------------------------- */

PT_TEST(actions)
static void
actions(void)
{
    pc_spawn_opts jo = {.flags = PC_TASK_JOINABLE};
    char ref[48], body[160], *out = NULL;
    kid *other;
    uint16_t other_port;
    int st;

    cluster_up();
    CU_ASSERT_EQUAL_FATAL(pc_spawn(hold, NULL, &jo, &victim), PC_OK);
    snprintf(body, sizeof body, "{\"task\": \"%s\"}",
             pc_ref_str(victim, ref, sizeof ref));
    CU_ASSERT_EQUAL(
        http_on(port, "POST", "/api/v1/actions/terminate", NULL, body, NULL),
        401);
    CU_ASSERT_EQUAL(http_on(port, "POST", "/api/v1/actions/terminate",
                            "Authorization: Bearer 0123456789abcdef-wrong\r\n",
                            body, NULL),
                    401);
    CU_ASSERT_EQUAL(http_on(port, "POST", "/api/v1/actions/terminate",
                            "Authorization: Bearer " TOKEN "x\r\n", body, NULL),
                    401);
    CU_ASSERT_EQUAL(http_get("/api/v1/actions/terminate", NULL), 405);
    CU_ASSERT_EQUAL(pc_task_join(victim, 0.2, NULL), PC_ETIMEDOUT); /* alive */

    st = http_on(port, "POST", "/api/v1/actions/terminate",
                 "Authorization: Bearer " TOKEN "\r\n", body, &out);
    if (st != 200)
        fprintf(stderr, "terminate: %d %s\n", st, out ? out : "");
    free(out);
    CU_ASSERT_EQUAL(st, 200);
    CU_ASSERT_EQUAL(pc_task_join(victim, WAIT, NULL), PC_EKILLED);
    /* suspend/resume: sent to this node's agent */
    snprintf(body, sizeof body, "{\"node\": \"%016" PRIx64 "\"}", pc_node_id());
    CU_ASSERT_EQUAL(http_on(port, "POST", "/api/v1/actions/suspend",
                            "Authorization: Bearer " TOKEN "\r\n", body, NULL),
                    200);
    CU_ASSERT_EQUAL(http_on(port, "POST", "/api/v1/actions/resume",
                            "Authorization: Bearer " TOKEN "\r\n", body, NULL),
                    200);
    CU_ASSERT_EQUAL(http_on(port, "POST", "/api/v1/actions/suspend",
                            "Authorization: Bearer " TOKEN "\r\n",
                            "{\"node\": \"00000000000000ff\"}", NULL),
                    404);
    CU_ASSERT_EQUAL(http_on(port, "POST", "/api/v1/actions/suspend",
                            "Authorization: Bearer " TOKEN "\r\n", "not json",
                            NULL),
                    400);

    /* a registry without a token file: actions are off */
    other = registry_run(NULL, NULL, 0, &other_port);
    CU_ASSERT_EQUAL(http_on(other_port, "POST", "/api/v1/actions/terminate",
                            "Authorization: Bearer " TOKEN "\r\n", body, NULL),
                    403);
    kid_free(other);
}

/* ---- refusals ---------------------------------------------------------------------- */

PT_TEST(paths_and_sizes)
static void
paths_and_sizes(void)
{
    static const char *const bad[] = {
        "/../metrics",        "/%2e%2e/metrics",
        "/assets/../metrics", "/assets/%2E%2E/%2E%2E/etc/passwd",
        "//metrics",          "/api/v1//nodes",
        "/./metrics",         "/assets/%2F..%2Fmetrics",
        "/metrics%00",        "/assets\\..\\x",
        "/assets/app.js/",    "/api/v1/nodes/",
    };
    static char big[12000];
    char *all;
    int fd, st = -1;

    cluster_up();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int got = http_get(bad[i], NULL);
        if (got != 404)
            fprintf(stderr, "GET %s: %d\n", bad[i], got);
        CU_ASSERT_EQUAL(got, 404);
    }
    CU_ASSERT_EQUAL(http_get("/metrics", NULL), 200);
    /* headers over 8 KiB: 431 */
    fd = hc_dial(port);
    CU_ASSERT_FATAL(fd >= 0);
    memset(big, 'a', sizeof big - 1);
    memcpy(big, "GET / HTTP/1.1\r\nX-Big: ", 23);
    CU_ASSERT(hc_send_all(fd, big, sizeof big - 1));
    all = hc_read_all(fd, WAIT);
    close(fd);
    CU_ASSERT(sscanf(all, "HTTP/1.1 %d", &st) == 1 && st == 431);
    free(all);
    /* a body over 64 KiB: 413 */
    fd = hc_dial(port);
    CU_ASSERT_FATAL(fd >= 0);
    {
        const char h[] = "POST /api/v1/actions/terminate HTTP/1.1\r\nHost: "
                         "x\r\nContent-Length: 100000\r\n\r\n";
        CU_ASSERT(hc_send_all(fd, h, sizeof h - 1));
    }
    all = hc_read_all(fd, WAIT);
    close(fd);
    CU_ASSERT(sscanf(all, "HTTP/1.1 %d", &st) == 1 && st == 413);
    free(all);
}

/* Half a request, then nothing: closed with 408 at the header timeout
 * (10 s), while other requests are served meanwhile. */
PT_TEST(slowloris)
static void
slowloris(void)
{
    static const char half[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    double t0;
    char *all;
    int fd, st = -1;

    cluster_up();
    fd = hc_dial(port);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT(hc_send_all(fd, half, sizeof half - 1));
    t0 = pc_now();
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(http_get("/api/v1/cluster", NULL), 200);
    all = hc_read_all(fd, 30.0); /* until the server closes */
    close(fd);
    CU_ASSERT(sscanf(all, "HTTP/1.1 %d", &st) == 1 && st == 408);
    printf("\n    slowloris: 408 and closed after %.1f s\n", pt_since(t0));
    free(all);
    CU_ASSERT_EQUAL(http_get("/api/v1/cluster", NULL), 200);
}

static long
rss_kb(pid_t pid)
{
    char path[64], line[256];
    long kb = -1;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    if (!(f = fopen(path, "r")))
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* Many idle connections: a new request is still served, and the registry's
 * RSS stays bounded (it keeps at most 512 connections: the oldest idle
 * ones are closed to make room). 200 MB: the registry itself is ~20 MB,
 * 512 connections of ~300 KB each at most (buffers and touched stack)
 * another ~150 MB in the worst case; far below what 10,000 would cost. */
#if defined(PICOS_SANITIZE_THREAD)
/* TSan's shadow and its per-thread and per-sync-object state are many
 * times the memory touched (~700 MB for the same 512 connections): the
 * bound is checked by the other builds, here only printed */
#define RSS_BOUND_MB 0
#elif defined(PICOS_SANITIZE_ADDRESS)
/* ASan keeps up to 256 MB of freed memory in quarantine and adds shadow
 * memory and fake stacks: the same 512 connections weigh ~3x */
#define RSS_BOUND_MB 600
#else
#define RSS_BOUND_MB 200
#endif

PT_TEST(idle_connections)
static void
idle_connections(void)
{
    struct rlimit rl;
    int want, n = 0, *fds;
    long before, after;

    cluster_up();
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 10200 && rl.rlim_max > rl.rlim_cur) {
        rl.rlim_cur = rl.rlim_max < 10200 ? rl.rlim_max : 10200;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    want = (int)pt_scaled(rl.rlim_cur > 10200 ? 10000 : (long)rl.rlim_cur - 200,
                          5);
    if (want > 10000)
        want = 10000;
    before = rss_kb(reg->pid);
    fds = calloc((size_t)want, sizeof *fds);
    for (; n < want; n++)
        if ((fds[n] = hc_dial(port)) < 0)
            break;
    CU_ASSERT(n >= want / 2);
    {
        double t0 = pc_now();
        int st = http_get("/api/v1/cluster", NULL);
        if (st != 200)
            fprintf(stderr, "GET with %d idle: %d after %.1f s\n", n, st,
                    pt_since(t0));
        CU_ASSERT_EQUAL(st, 200);
    }
    CU_ASSERT_EQUAL(http_get("/metrics", NULL), 200);
    after = rss_kb(reg->pid);
    printf("\n    %d idle connections: registry RSS %ld -> %ld kB\n", n, before,
           after);
    CU_ASSERT(after > 0);
    if (RSS_BOUND_MB)
        CU_ASSERT(after < RSS_BOUND_MB * 1024);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    free(fds);
    CU_ASSERT_EQUAL(http_get("/api/v1/cluster", NULL), 200);
}

/* ---- HTTPS ----------------------------------------------------------------------------- */

static char cert[128], key[128];
static uint16_t tls_port;
static atomic_int tls_status;

static pc_msg *
tls_get(void *arg)
{
    static const char req[] =
        "GET /api/v1/cluster HTTP/1.1\r\nHost: localhost\r\n"
        "Connection: close\r\n\r\n";
    pc_tls_ctx_opts co = {.server = false, .ca_file = cert};
    pc_tls_ctx *ctx = NULL;
    pc_sock *s = NULL;
    pc_tls *t = NULL;
    char buf[8192];
    size_t got = 0, n;
    int st = -1;

    (void)arg;
    if (pc_tls_ctx_new(&ctx, &co) != PC_OK ||
        pc_sock_connect(&s, "127.0.0.1", tls_port, WAIT) != PC_OK)
        goto out;
    if (pc_tls_wrap(&t, ctx, s, "localhost") != PC_OK) {
        pc_sock_close(&s);
        goto out;
    }
    if (pc_tls_handshake(t, WAIT) != PC_OK ||
        pc_tls_write_all(t, req, sizeof req - 1, WAIT) != PC_OK)
        goto out;
    while (got < sizeof buf - 1 &&
           pc_tls_read(t, buf + got, sizeof buf - 1 - got, WAIT, &n) == PC_OK &&
           n > 0)
        got += n;
    buf[got] = '\0';
    if (sscanf(buf, "HTTP/1.1 %d", &st) != 1 || !strstr(buf, "\"registry\""))
        st = -1;
out:
    pc_tls_close(&t);
    pc_tls_ctx_free(&ctx);
    atomic_store(&tls_status, st);
    return NULL;
}

PT_TEST(https)
static void
https(void)
{
    char cmd[600];
    pc_spawn_opts jo = {.flags = PC_TASK_JOINABLE};
    pc_ref t;
    kid *k, *bad;
    int rc;

    cluster_up();
    snprintf(cert, sizeof cert, "%s/cert.pem", tmpdir);
    snprintf(key, sizeof key, "%s/key.pem", tmpdir);
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
             "-nodes -keyout %s -out %s -days 2 -subj /CN=localhost "
             "-addext subjectAltName=DNS:localhost >/dev/null 2>&1",
             key, cert);
    rc = system(cmd);
    CU_ASSERT_FATAL(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
    k = registry_run(
        (const char *[]){"--http-cert", cert, "--http-key", key, NULL}, NULL, 0,
        &tls_port);
    atomic_store(&tls_status, 0);
    CU_ASSERT_EQUAL_FATAL(pc_spawn(tls_get, NULL, &jo, &t), PC_OK);
    CU_ASSERT_EQUAL(pc_task_join(t, WAIT * 2, NULL), PC_OK);
    CU_ASSERT_EQUAL(atomic_load(&tls_status), 200);
    /* plaintext to the HTTPS port: no answer in HTTP */
    CU_ASSERT_EQUAL(
        http_on(tls_port, "GET", "/api/v1/cluster", NULL, NULL, NULL), -1);
    /* SIGTERM: the API stops with the registry, exit 0 (and, under the
     * sanitizers, nothing leaked or raced on the way out) */
    kill(k->pid, SIGTERM);
    CU_ASSERT(kid_wait(k, WAIT));
    CU_ASSERT_EQUAL(exit_code(k), 0);
    kid_free(k);

    /* a key that is not one: one line, exit 2 */
    bad = kid_start(
        REGISTRY,
        (const char *[]){"--listen", "tcp://127.0.0.1:0", "--data-dir", tmpdir,
                         "--secret-file", secret, "--http", "127.0.0.1:0",
                         "--http-cert", cert, "--http-key", cert, NULL},
        NULL, NULL);
    CU_ASSERT_FATAL(bad != NULL);
    CU_ASSERT(kid_wait(bad, WAIT));
    CU_ASSERT_EQUAL(exit_code(bad), 2);
    kid_free(bad);
}

/* The node's end, last. */
PT_TEST(cluster_down)
static void
cluster_down(void)
{
    if (!reg)
        return;
    pc_node_stop();
    CU_ASSERT_EQUAL(pc_node_run(), PC_OK);
    kids_kill();
    reg = NULL;
}

PT_MAIN("http", PT_ENTRY(routes_json), PT_ENTRY(metrics_parse),
        PT_ENTRY(events_stream), PT_ENTRY(actions), PT_ENTRY(paths_and_sizes),
        PT_ENTRY(slowloris), PT_ENTRY(idle_connections), PT_ENTRY(https),
        PT_ENTRY(cluster_down))
