/* tests/test_rps.c — Remote Pico Services across real processes: a
 * picos-registry, one or two rps_peer service nodes (tests/rps_peer.c) and
 * this program as the client node (joined from a test task). Calls and
 * results; describe (bytes, typed with its schema, while every slot is
 * busy); each failure reason with its pc_rps_client_error() text (error
 * with its text, killed, node down by kill -9 during a call, deadline
 * passed — the client monitor gets the outcome and the server's monitor
 * sees the cancellation —, closed, busy, requests a typed service can't
 * parse); 1,000 calls in flight from one client, each finished exactly
 * once; two locates of one service in one process; request/reply; reload
 * under load (hot swap: no call lost, each on its own code, each release
 * once and after that code's last call); close with a grace (a call that
 * ends in it, one that does not); register (timeout 0, names taken,
 * timed out with nothing left behind); a client node with the wrong
 * secret. Waits are bounded by PT_LONG, never stand-ins for
 * synchronisation.
 */
#define _GNU_SOURCE
#include "picos/net.h"
#include "picos/registry.h"
#include "picos/rps.h"
#include "picos/stats.h"

#include "netutil.h"
#include "rps.pb-c.h"
#include "testutil.h"

typedef struct rg {
    nt_child c;
    char dir[128];
    char ep[256];
} rg;

static rg R;
static nt_child P, Q; /* service nodes */

static bool
rg_start(rg *r)
{
    char line[512] = "";
    kid_opts o = {.errpath = r->c.errpath};

    secrets();
    if (!pt_mkdtemp(r->dir, sizeof r->dir, "reg"))
        return false;
    snprintf(r->c.errpath, sizeof r->c.errpath, "%s/stderr", r->dir);
    if (!kid_run(&r->c, REGISTRY,
                 (const char *[]){"--listen", "tcp://127.0.0.1:0", "--data-dir",
                                  r->dir, "--secret-file", secret_path,
                                  "--heartbeat", NET_HB, "--timeout",
                                  NET_TIMEOUT, NULL},
                 &o))
        return false;
    if (!read_line(r->c.out, line, sizeof line, 20.0) ||
        sscanf(line, "%*s %*s listening on %255s", r->ep) != 1) {
        fprintf(stderr, "picos-registry did not start: '%s'\n", line);
        nt_stop(&r->c);
        return false;
    }
    return true;
}

static bool
peer_start(nt_child *c)
{
    const char *args[] = {"--registries", R.ep,          "--secret-file",
                          secret_path,    "--heartbeat", NET_HB,
                          "--timeout",    NET_TIMEOUT,   NULL};
    return nt_start(c, args);
}

static void
driver_run(pc_task_fn fn)
{
    PT_START(2);
    CU_ASSERT_EQUAL(pc_spawn(fn, NULL, NULL, NULL), PC_OK);
    PT_RUN();
}

static pc_err
join(void)
{
    pc_cluster_opts o = {0};
    o.registries = R.ep;
    o.net.secret_file = secret_path;
    o.net.heartbeat = atof(NET_HB);
    o.net.timeout = atof(NET_TIMEOUT);
    o.join_timeout = PT_LONG;
    return pc_cluster_join(&o);
}

/* Send peer c's ctl task `cmd` (its answer comes as an "rc" message). */
static void
ctl_send(const nt_child *c, const char *cmd)
{
    pc_ref ctl = PC_REF_NIL;
    TCHECK_RC(pc_node_connect(c->ep, PT_LONG, NULL), PC_OK);
    TCHECK_RC(pc_locate_at(c->ep, "ctl", PT_LONG, &ctl), PC_OK);
    TCHECK_RC(pc_send_data(ctl, "cmd", cmd, strlen(cmd)), PC_OK);
}

/* The ctl task's next answer into out. */
static void
ctl_wait(char *out, size_t size)
{
    pc_msg *m = NULL;
    out[0] = '\0';
    TCHECK_RC(pc_recv_type("rc", &m, PT_LONG), PC_OK);
    if (m)
        snprintf(out, size, "%s", pc_msg_str(m));
    pc_msg_free(&m);
}

/* Ask peer c's ctl task `cmd`; its answer into out. */
static void
ctl_ask(const nt_child *c, const char *cmd, char *out, size_t size)
{
    ctl_send(c, cmd);
    ctl_wait(out, size);
}

/* A call of c with text `req`: its pc_rps_call() result, the call in *k. */
static pc_err
call_text(pc_rps_client *c, const char *req, double timeout,
          struct pc_rps_call **k)
{
    pc_msg *m = NULL;
    pc_err rc;
    TCHECK_RC(pc_msg_new_str(&m, "text", req), PC_OK);
    rc = pc_rps_call(c, &m, timeout, k);
    TCHECK((rc == PC_OK) == (m == NULL)); /* consumed only on success */
    pc_msg_free(&m);
    return rc;
}

/* ---- calls and results --------------------------------------------------------- */

static pc_msg *
results_task(void *arg)
{
    pc_rps_client *a, *b;
    struct pc_rps_call *k = NULL;
    pc_msg *v = NULL, *req = NULL, *rep = NULL;
    (void)arg;

    TCHECK_RC(join(), PC_OK);
    a = nt_locate("echo");
    b = nt_locate(
        "echo"); /* a second locate in one process (pycos deadlocks) */
    TCHECK(a && b);
    if (!a || !b)
        goto out;
    TCHECK_RC(call_text(a, "hello", PT_LONG, &k), PC_OK);
    TCHECK(k && !pc_ref_is_nil(pc_rps_call_task(k)));
    TCHECK(pc_rps_call_id(k) != 0);
    TCHECK_RC(pc_rps_finish(k, PT_LONG, &v), PC_OK);
    TCHECK(v && pc_msg_is(v, "text") && !strcmp(pc_msg_str(v), "hello"));
    pc_msg_free(&v);
    /* a second finish gets the same outcome */
    TCHECK_RC(pc_rps_finish(k, 0, &v), PC_OK);
    TCHECK(v && !strcmp(pc_msg_str(v), "hello"));
    pc_msg_free(&v);
    pc_rps_call_free(&k);
    /* the other handle, request/reply */
    TCHECK_RC(pc_msg_new_str(&req, "text", "ping"), PC_OK);
    TCHECK_RC(pc_rps_request(b, &req, PT_LONG, &rep), PC_OK);
    TCHECK(req == NULL);
    TCHECK(rep && !strcmp(pc_msg_str(rep), "ping"));
    pc_msg_free(&rep);
    /* describe a bytes service: no schema even when asked */
    {
        pc_rps_info in;
        pc_msg *sc = NULL;
        TCHECK_RC(pc_rps_describe(a, PT_LONG, &in, &sc), PC_OK);
        TCHECK_STR(in.name, "echo");
        TCHECK_EQ(in.version, 7);
        TCHECK_STR(in.request_type, "");
        TCHECK_STR(in.response_type, "");
        TCHECK_EQ(in.max_inflight, 64);
        TCHECK_EQ(in.max_queued, 256);
        TCHECK_EQ(in.calls, 2); /* hello and ping */
        TCHECK_EQ(in.running + in.queued, 0);
        TCHECK(sc == NULL);
        TCHECK_RC(pc_rps_describe(a, 0, &in, NULL), PC_ETIMEDOUT);
    }
    /* timeout 0: nothing sent, the request stays ours */
    TCHECK_RC(pc_msg_new_str(&req, "text", "x"), PC_OK);
    TCHECK_RC(pc_rps_request(b, &req, 0, &rep), PC_ETIMEDOUT);
    TCHECK(req != NULL && rep == NULL);
    pc_msg_free(&req);
out:
    pc_rps_client_free(&a);
    pc_rps_client_free(&b);
    pc_node_stop();
    return NULL;
}

PT_TEST(calls_and_results)
static void
calls_and_results(void)
{
    CU_ASSERT_FATAL(rg_start(&R));
    CU_ASSERT_FATAL(peer_start(&P));
    driver_run(results_task);
    nt_stop(&P);
    nt_stop(&R.c);
}

/* ---- each failure reason ------------------------------------------------------- */

/* Make one call of "busy" that waits in its queue, finish it, tell the
 * driver ("helper" message, its pc_err name). */
static pc_msg *
queued_helper(void *arg)
{
    void **a = arg;
    pc_rps_client *c = a[0];
    pc_ref to = *(pc_ref *)a[1];
    struct pc_rps_call *k = NULL;
    double t0 = pc_now();
    pc_err rc;
    while ((rc = call_text(c, "quick", 3 * PT_LONG, &k)) == PC_EFULL &&
           pt_since(t0) < PT_LONG)
        pc_sleep(0.01); /* not expected: the driver waits for this one */
    if (rc == PC_OK)
        rc = pc_rps_finish(k, PT_LONG, NULL);
    pc_rps_call_free(&k);
    pc_send_data(to, "helper", pc_err_name(rc) + 3,
                 strlen(pc_err_name(rc)) - 3);
    return NULL;
}

static pc_msg *
failures_task(void *arg)
{
    pc_rps_client *c;
    struct pc_rps_call *k = NULL, *k2 = NULL;
    pc_msg *v = NULL, *req = NULL, *rep = NULL;
    char out[128];
    int timedout = 0;
    (void)arg;

    TCHECK_RC(join(), PC_OK);
    /* error with its text */
    if ((c = nt_locate("fail"))) {
        TCHECK_RC(call_text(c, "bad input", PT_LONG, &k), PC_OK);
        TCHECK_RC(pc_rps_finish(k, PT_LONG, &v), PC_EFAILED);
        TCHECK(v && pc_msg_is(v, PC_MSG_ERROR));
        TCHECK(v && !strcmp(pc_msg_str(v), "boom: bad input"));
        TCHECK_STR(pc_rps_client_error(c), "boom: bad input");
        pc_msg_free(&v);
        pc_rps_call_free(&k);
        /* request/reply keeps the request on an error */
        TCHECK_RC(pc_msg_new_str(&req, "text", "r"), PC_OK);
        TCHECK_RC(pc_rps_request(c, &req, PT_LONG, &rep), PC_EFAILED);
        TCHECK(req != NULL);
        TCHECK(rep && !strcmp(pc_msg_str(rep), "boom: r"));
        pc_msg_free(&rep);
        pc_msg_free(&req);
        pc_rps_client_free(&c);
    }
    /* killed */
    if ((c = nt_locate("killme"))) {
        TCHECK_RC(call_text(c, "", PT_LONG, &k), PC_OK);
        TCHECK_RC(pc_rps_finish(k, PT_LONG, &v), PC_EKILLED);
        TCHECK(v == NULL);
        TCHECK_STR(pc_rps_client_error(c), "killed: the call's task at service "
                                           "killme was terminated");
        pc_rps_call_free(&k);
        pc_rps_client_free(&c);
    }
    /* deadline: the call runs 30 s, its deadline is 0.3 s */
    if ((c = nt_locate("slow"))) {
        pc_msg *om = NULL;
        pc_rps_outcome o = {0};
        /* finish's own wait also says PC_ETIMEDOUT: the client monitor
         * tells that the outcome itself came */
        TCHECK_RC(pc_rps_client_monitor(c, pc_self()), PC_OK);
        /* it would sleep far past every bound of this test */
        TCHECK_RC(call_text(c, "600", 0.3, &k), PC_OK);
        TCHECK_RC(pc_rps_finish(k, PT_LONG, &v), PC_ETIMEDOUT);
        TCHECK_RC(pc_recv_type(PC_MSG_RPS_OUTCOME, &om, PT_LONG), PC_OK);
        TCHECK_RC(pc_rps_outcome_parse(om, &o), PC_OK);
        TCHECK_RC(o.rc, PC_ETIMEDOUT);
        TCHECK_EQ(o.id, pc_rps_call_id(k));
        /* the outcome came: finish says so, and so does the text */
        TCHECK_RC(pc_rps_finish(k, 0, NULL), PC_ETIMEDOUT);
        TCHECK_STR(pc_rps_client_error(c),
                   "deadline passed: service slow terminated the call");
        pc_msg_free(&om);
        pc_rps_call_free(&k);
        pc_rps_client_free(&c);
        /* the server's monitor saw the cancellation */
        double t0 = pc_now();
        while (!timedout && pt_since(t0) < PT_LONG) {
            ctl_ask(&P, "outcomes", out, sizeof out);
            sscanf(out, "ok=%*d timedout=%d", &timedout);
            if (!timedout)
                pc_sleep(0.05);
        }
        TCHECK_EQ(timedout, 1);
    }
    /* closed: a call running when its service closes */
    if ((c = nt_locate("closable"))) {
        TCHECK_RC(call_text(c, "30", PT_LONG, &k), PC_OK);
        ctl_ask(&P, "close", out, sizeof out);
        TCHECK_STR(out, "closed");
        TCHECK_RC(pc_rps_finish(k, PT_LONG, &v), PC_ECLOSED);
        TCHECK_STR(pc_rps_client_error(c),
                   "service closable closed during the call");
        pc_rps_call_free(&k);
        pc_rps_client_free(&c);
    }
    /* busy: one running (held until we let it go), one queued (from a
     * helper task), the next refused at once with PC_EFULL */
    if ((c = nt_locate("busy"))) {
        double t0 = pc_now();
        pc_msg *done = NULL;
        pc_ref me = pc_self();
        void *hargs[2] = {c, &me};
        pc_rps_info in;
        TCHECK_RC(call_text(c, "hold", PT_LONG, &k), PC_OK);
        TCHECK_RC(pc_spawn(queued_helper, hargs, NULL, NULL), PC_OK);
        /* until the helper's call waits in the queue; describe is answered
         * while every slot and the queue are taken */
        do {
            TCHECK_RC(pc_rps_describe(c, PT_LONG, &in, NULL), PC_OK);
            if (in.queued < 1)
                pc_sleep(0.005);
        } while (in.queued < 1 && pt_since(t0) < PT_LONG);
        TCHECK_STR(in.name, "busy");
        TCHECK_EQ(in.running, 1);
        TCHECK_EQ(in.queued, 1);
        TCHECK_EQ(in.max_inflight, 1);
        TCHECK_EQ(in.max_queued, 1);
        TCHECK_RC(call_text(c, "quick", PT_LONG, &k2), PC_EFULL);
        TCHECK(k2 == NULL);
        TCHECK_STR(pc_rps_client_error(c), "service busy: 1 running, 1 queued");
        TCHECK_RC(pc_send_data(pc_rps_call_task(k), "go", NULL, 0), PC_OK);
        TCHECK_RC(pc_rps_finish(k, PT_LONG, NULL), PC_OK);
        TCHECK_RC(pc_recv_type("helper", &done, 3 * PT_LONG), PC_OK);
        TCHECK(done && !strcmp(pc_msg_str(done), "OK"));
        pc_msg_free(&done);
        pc_rps_call_free(&k);
        pc_rps_client_free(&c);
    }
    /* a typed service: garbage does not parse */
    if ((c = nt_locate("typed"))) {
        static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff};
        TCHECK_RC(pc_msg_new(&req, "picos.v1.RpsRefused", junk, sizeof junk),
                  PC_OK);
        TCHECK_RC(pc_rps_call(c, &req, PT_LONG, &k), PC_EINVAL);
        TCHECK(req != NULL && k == NULL);
        TCHECK_STR(pc_rps_client_error(c),
                   "request does not parse as picos.v1.RpsRefused: "
                   "unterminated field tag at byte 0");
        pc_msg_free(&req);
        /* field 3 (text, a string) sent as a varint */
        static const uint8_t wrong[] = {0x18, 0x01};
        TCHECK_RC(pc_msg_new(&req, "picos.v1.RpsRefused", wrong, sizeof wrong),
                  PC_OK);
        TCHECK_RC(pc_rps_call(c, &req, PT_LONG, &k), PC_EINVAL);
        TCHECK_STR(pc_rps_client_error(c),
                   "request does not parse as picos.v1.RpsRefused: field "
                   "'text' (3) at byte 0 is varint, its type wants "
                   "length-delimited");
        pc_msg_free(&req);
        /* its description, with the schema of both types */
        {
            pc_rps_info in;
            pc_msg *sc = NULL;
            Picos__V1__RpsSchema *ps = NULL;
            bool req_t = false, info_t = false, refusal_e = false;
            TCHECK_RC(pc_rps_describe(c, PT_LONG, &in, &sc), PC_OK);
            TCHECK_STR(in.request_type, "picos.v1.RpsRefused");
            TCHECK_STR(in.response_type, "picos.v1.RpsInfo");
            TCHECK(sc && pc_msg_is(sc, "picos.v1.RpsSchema"));
            if (sc) {
                size_t len = 0;
                const uint8_t *d = pc_msg_data(sc, &len);
                ps = picos__v1__rps_schema__unpack(NULL, len, d);
            }
            TCHECK(ps != NULL);
            for (size_t i = 0; ps && i < ps->n_messages; i++) {
                req_t |= !strcmp(ps->messages[i]->name, "picos.v1.RpsRefused");
                info_t |= !strcmp(ps->messages[i]->name, "picos.v1.RpsInfo");
            }
            for (size_t i = 0; ps && i < ps->n_enums; i++)
                refusal_e |= !strcmp(ps->enums[i]->name, "picos.v1.RpsRefusal");
            TCHECK(req_t && info_t && refusal_e);
            if (ps)
                picos__v1__rps_schema__free_unpacked(ps, NULL);
            pc_msg_free(&sc);
        }
        /* a good one: field 3 (text) = "ok" */
        static const uint8_t good[] = {0x1a, 0x02, 'o', 'k'};
        TCHECK_RC(pc_msg_new(&req, "picos.v1.RpsRefused", good, sizeof good),
                  PC_OK);
        TCHECK_RC(pc_rps_request(c, &req, PT_LONG, &rep), PC_OK);
        TCHECK(rep && !strcmp(pc_msg_str(rep), "ok"));
        pc_msg_free(&rep);
        pc_rps_client_free(&c);
    }
    pc_node_stop();
    return NULL;
}

PT_TEST(failure_reasons)
static void
failure_reasons(void)
{
    CU_ASSERT_FATAL(rg_start(&R));
    CU_ASSERT_FATAL(peer_start(&P));
    driver_run(failures_task);
    nt_stop(&P);
    nt_stop(&R.c);
}

/* ---- node down during a call ------------------------------------------------ */

static pc_msg *
node_down_task(void *arg)
{
    pc_rps_client *c;
    struct pc_rps_call *k = NULL;
    (void)arg;

    TCHECK_RC(join(), PC_OK);
    if ((c = nt_locate("slow"))) {
        TCHECK_RC(call_text(c, "60", -1, &k), PC_OK);
        kill(-Q.pid, SIGKILL);
        TCHECK_RC(pc_rps_finish(k, PT_LONG, NULL), PC_EUNREACH);
        TCHECK_RC(pc_rps_finish(k, 0, NULL), PC_EUNREACH);
        TCHECK_STR(pc_rps_client_error(c), "service node down (service slow)");
        pc_rps_call_free(&k);
        pc_rps_client_free(&c);
    }
    pc_node_stop();
    return NULL;
}

PT_TEST(node_killed_during_call)
static void
node_killed_during_call(void)
{
    CU_ASSERT_FATAL(rg_start(&R));
    CU_ASSERT_FATAL(peer_start(&Q));
    driver_run(node_down_task);
    nt_stop(&Q);
    nt_stop(&R.c);
}

/* ---- 1,000 calls in flight ------------------------------------------------------ */

#define MANY 1000

static pc_msg *
many_task(void *arg)
{
    static struct pc_rps_call *k[MANY];
    pc_rps_client *c;
    int ok = 0, outcomes = 0;
    (void)arg;

    TCHECK_RC(join(), PC_OK);
    if (!(c = nt_locate("many")))
        goto out;
    TCHECK_RC(pc_rps_client_monitor(c, pc_self()), PC_OK);
    for (int i = 0; i < MANY; i++) {
        char req[16];
        snprintf(req, sizeof req, "%d", i);
        TCHECK_RC(call_text(c, req, 4 * PT_LONG, &k[i]), PC_OK);
    }
    /* finish in reverse order: outcomes that came first are kept */
    for (int i = MANY - 1; i >= 0; i--) {
        pc_msg *v = NULL;
        char want[16];
        snprintf(want, sizeof want, "%d", i);
        if (k[i] && pc_rps_finish(k[i], PT_LONG, &v) == PC_OK && v &&
            !strcmp(pc_msg_str(v), want))
            ok++;
        pc_msg_free(&v);
        pc_rps_call_free(&k[i]);
    }
    TCHECK_EQ(ok, MANY);
    /* the client monitor: exactly one outcome per call */
    for (;;) {
        pc_msg *m = NULL;
        pc_rps_outcome o;
        if (pc_recv_type(PC_MSG_RPS_OUTCOME, &m,
                         outcomes < MANY ? PT_LONG : 0.2) != PC_OK)
            break;
        if (pc_rps_outcome_parse(m, &o) == PC_OK && o.rc == PC_OK)
            outcomes++;
        pc_msg_free(&m);
    }
    TCHECK_EQ(outcomes, MANY);
    pc_rps_client_free(&c);
out:
    pc_node_stop();
    return NULL;
}

PT_TEST(thousand_in_flight)
static void
thousand_in_flight(void)
{
    CU_ASSERT_FATAL(rg_start(&R));
    CU_ASSERT_FATAL(peer_start(&P));
    driver_run(many_task);
    nt_stop(&P);
    nt_stop(&R.c);
}

/* ---- wrong secret ---------------------------------------------------------------- */

/* Run rps_peer --client echo with secret file `secret`, straight to P's
 * endpoint too; its lines into lines[3] ("" when it said fewer). */
static void
client_run(const char *secret, char lines[3][64])
{
    nt_child k = {0};
    kid_opts ko = {.errpath = k.errpath};
    const char *args[] = {"--registries",
                          R.ep,
                          "--secret-file",
                          secret,
                          "--heartbeat",
                          NET_HB,
                          "--timeout",
                          NET_TIMEOUT,
                          "--client",
                          "echo",
                          "--connect",
                          P.ep,
                          NULL};

    pt_tmppath(k.errpath, sizeof k.errpath, "client.err");
    for (int i = 0; i < 3; i++)
        lines[i][0] = '\0';
    CU_ASSERT_FATAL(kid_run(&k, NET_PEER, args, &ko));
    for (int i = 0; i < 3; i++)
        if (!read_line(k.out, lines[i], sizeof lines[i], PT_LONG))
            break;
    CU_ASSERT(kid_wait(&k, PT_LONG));
    nt_stop(&k);
}

PT_TEST(wrong_secret)
static void
wrong_secret(void)
{
    char l[3][64];

    CU_ASSERT_FATAL(rg_start(&R));
    CU_ASSERT_FATAL(peer_start(&P));
    /* the right secret: joins, links, calls */
    client_run(secret_path, l);
    CU_ASSERT_STRING_EQUAL(l[0], "JOIN PC_OK");
    CU_ASSERT_STRING_EQUAL(l[1], "CONNECT PC_OK");
    CU_ASSERT_STRING_EQUAL(l[2], "CALL PC_OK");
    /* another secret: the registry and the service node refuse its key
     * (CURVE), so it never gets as far as a call */
    client_run(other_path, l);
    CU_ASSERT_STRING_EQUAL(l[0], "JOIN PC_EAUTH");
    CU_ASSERT_STRING_EQUAL(l[1], "CONNECT PC_EAUTH");
    CU_ASSERT_STRING_EQUAL(l[2], "");
    nt_stop(&P);
    nt_stop(&R.c);
}

/* ---- register ------------------------------------------------------------------ */

static pc_msg *
local_echo(pc_msg *req)
{
    return req;
}

/* A request/reply of text `req` through a new handle of service name. */
static pc_err
request_once(const char *name, const char *req, char *out, size_t size)
{
    pc_rps_client *c = nt_locate(name);
    pc_msg *m = NULL, *rep = NULL;
    pc_err rc = PC_ENOENT;

    out[0] = '\0';
    if (c) {
        TCHECK_RC(pc_msg_new_str(&m, "text", req), PC_OK);
        if ((rc = pc_rps_request(c, &m, PT_LONG, &rep)) == PC_OK && rep)
            snprintf(out, size, "%s", pc_msg_str(rep));
        pc_msg_free(&m);
        pc_msg_free(&rep);
        pc_rps_client_free(&c);
    }
    return rc;
}

static pc_msg *
register_task(void *arg)
{
    pc_rps_opts o = {.name = "local", .fn = local_echo};
    pc_rps *s = NULL, *s2 = NULL;
    pc_rps_client *c;
    pc_rps_info in;
    pc_ref r;
    char out[64];
    pc_err rc;
    (void)arg;

    TCHECK_RC(join(), PC_OK);
    /* timeout 0: one round trip to the registry, which is up */
    TCHECK_RC(pc_rps_register(&o, 0, &s), PC_OK);
    TCHECK(s != NULL);
    TCHECK_RC(request_once("local", "here", out, sizeof out), PC_OK);
    TCHECK_STR(out, "here");
    /* a name open on this node already, or held by another node */
    TCHECK_RC(pc_rps_register(&o, PT_LONG, &s2), PC_EEXIST);
    TCHECK(s2 == NULL);
    o.name = "echo";
    TCHECK_RC(pc_rps_register(&o, PT_LONG, &s2), PC_EEXIST);
    TCHECK(s2 == NULL);
    /* ... which leave the services as they were */
    TCHECK_RC(request_once("local", "still", out, sizeof out), PC_OK);
    TCHECK_STR(out, "still");
    if ((c = nt_locate("echo"))) {
        TCHECK_RC(pc_rps_describe(c, PT_LONG, &in, NULL), PC_OK);
        TCHECK_EQ(in.version, 7); /* the peer's */
        pc_rps_client_free(&c);
    }
    /* a registry that does not answer in time: PC_ETIMEDOUT, and its late
     * OK is undone (the name never points at the acceptor that ended) */
    o.name = "late";
    kill(R.c.pid, SIGSTOP);
    rc = pc_rps_register(&o, 0.3, &s2);
    kill(R.c.pid, SIGCONT);
    TCHECK_RC(rc, PC_ETIMEDOUT);
    TCHECK(s2 == NULL);
    /* the registry answers in order: once this is in, the late one was
     * answered and undone before */
    TCHECK_RC(pc_name_register(PC_NAME_TASK, "sync", pc_self(), PT_LONG),
              PC_OK);
    TCHECK_RC(pc_locate(PC_NAME_SERVICE, "late", 0, &r), PC_ENOENT);
    /* and the name can be had again */
    TCHECK_RC(pc_rps_register(&o, PT_LONG, &s2), PC_OK);
    TCHECK_RC(request_once("late", "again", out, sizeof out), PC_OK);
    TCHECK_STR(out, "again");
    TCHECK_RC(pc_rps_close(&s2, 0), PC_OK);
    TCHECK_RC(pc_rps_close(&s, 0), PC_OK);
    TCHECK(s == NULL && s2 == NULL);
    TCHECK_RC(pc_rps_close(&s, 0), PC_OK); /* NULL: nothing */
    pc_node_stop();
    return NULL;
}

PT_TEST(register_leaves_nothing)
static void
register_leaves_nothing(void)
{
    CU_ASSERT_FATAL(rg_start(&R));
    CU_ASSERT_FATAL(peer_start(&P));
    driver_run(register_task);
    nt_stop(&P);
    nt_stop(&R.c);
}

/* ---- monitoring: counters, latency, suspend ------------------------------------- */

/* "fail" fails, "hold" waits for a "go" message; the request comes back. */
static pc_msg *
stats_fn(pc_msg *req)
{
    const char *t = pc_msg_str(req);
    pc_msg *go = NULL;

    if (t && !strcmp(t, "fail")) {
        pc_msg_free(&req);
        pc_exit_error("no");
    }
    if (t && !strcmp(t, "hold")) {
        TCHECK_RC(pc_recv_type("go", &go, PT_LONG), PC_OK);
        pc_msg_free(&go);
    }
    return req;
}

/* Service `name`'s entry of pc_rps_stats_all (zeroes when it is absent). */
static pc_rps_stats
svc_stats(const char *name, bool take)
{
    pc_rps_stats all[8], none;
    size_t n = pc_rps_stats_all(all, 8, take);

    for (size_t i = 0; i < n && i < 8; i++)
        if (!strcmp(all[i].name, name))
            return all[i];
    memset(&none, 0, sizeof none);
    return none;
}

/* A request/reply of text `req` on c: pc_rps_request()'s result. */
static pc_err
ask_text(pc_rps_client *c, const char *req)
{
    pc_msg *m = NULL, *rep = NULL;
    pc_err rc;

    TCHECK_RC(pc_msg_new_str(&m, "text", req), PC_OK);
    rc = pc_rps_request(c, &m, PT_LONG, &rep);
    pc_msg_free(&m);
    pc_msg_free(&rep);
    return rc;
}

typedef struct hold_arg {
    pc_rps_client *c;
    pc_ref driver;
} hold_arg;

/* A "hold" call: "started" (its call task's ref) once it runs, "finished"
 * once it ended well. */
static pc_msg *
hold_caller(void *arg)
{
    const hold_arg *h = arg;
    struct pc_rps_call *k = NULL;

    TCHECK_RC(call_text(h->c, "hold", PT_LONG, &k), PC_OK);
    if (k) {
        TCHECK_RC(pt_send_ref(h->driver, "started", pc_rps_call_task(k)),
                  PC_OK);
        TCHECK_RC(pc_rps_finish(k, PT_LONG, NULL), PC_OK);
        pc_rps_call_free(&k);
    }
    pt_send(h->driver, "finished");
    return NULL;
}

/* Let the held call whose "started" is next go. */
static void
let_go(void)
{
    pc_msg *m = NULL;

    TCHECK_RC(pc_recv_type("started", &m, PT_LONG), PC_OK);
    if (m)
        TCHECK_RC(pt_send(pt_msg_ref(m), "go"), PC_OK);
    pc_msg_free(&m);
}

static pc_msg *
stats_task(void *arg)
{
    pc_rps_opts o = {.name = "st1",
                     .fn = stats_fn,
                     .version = 3,
                     .max_inflight = 1,
                     .max_queued = 1};
    pc_rps *s = NULL;
    pc_rps_client *c = NULL;
    struct pc_rps_call *k = NULL;
    pc_rps_stats st;
    hold_arg h;
    (void)arg;

    TCHECK_RC(join(), PC_OK);
    TCHECK_RC(pc_rps_register(&o, PT_LONG, &s), PC_OK);
    if (!s || !(c = nt_locate("st1")))
        goto out;
    st = svc_stats("st1", false);
    TCHECK_STR(st.name, "st1");
    TCHECK_EQ(st.version, 3);
    TCHECK(st.calls == 0 && st.failures == 0 && st.refused == 0);
    TCHECK(st.running == 0 && st.queued == 0 && !st.suspended);
    TCHECK(st.p50_us == 0 && st.max_us == 0);

    /* 5 calls that end well, 2 that fail */
    for (int i = 0; i < 5; i++)
        TCHECK_RC(ask_text(c, "ok"), PC_OK);
    for (int i = 0; i < 2; i++) {
        TCHECK_RC(call_text(c, "fail", PT_LONG, &k), PC_OK);
        TCHECK_RC(pc_rps_finish(k, PT_LONG, NULL), PC_EFAILED);
        pc_rps_call_free(&k);
    }
    st = svc_stats("st1", true); /* takes the latency window */
    TCHECK_EQ(st.calls, 7);
    TCHECK_EQ(st.failures, 2);
    TCHECK_EQ(st.refused, 0);
    TCHECK(st.running == 0 && st.queued == 0);
    TCHECK(st.p50_us > 0); /* a call spawns a task: more than 1 µs */
    TCHECK(st.p50_us <= st.p90_us && st.p90_us <= st.p99_us &&
           st.p99_us <= st.max_us);
    st = svc_stats("st1", false); /* a new window: nothing ended in it */
    TCHECK(st.p50_us == 0 && st.p99_us == 0 && st.max_us == 0);

    /* one running, one queued, the next refused BUSY */
    h = (hold_arg){c, pc_self()};
    TCHECK_RC(pc_spawn(hold_caller, &h, NULL, NULL), PC_OK);
    pc_msg *started = NULL;
    TCHECK_RC(pc_recv_type("started", &started, PT_LONG), PC_OK);
    TCHECK_RC(pc_spawn(hold_caller, &h, NULL, NULL), PC_OK);
    double t0 = pc_now();
    while (svc_stats("st1", false).queued < 1 && pt_since(t0) < PT_LONG)
        pc_sleep(0.005); /* until the acceptor has queued it */
    TCHECK_RC(ask_text(c, "ok"), PC_EFULL);
    TCHECK_STR(pc_rps_client_error(c), "service busy: 1 running, 1 queued");
    st = svc_stats("st1", false);
    TCHECK_EQ(st.calls, 9);
    TCHECK_EQ(st.refused, 1);
    TCHECK(st.running == 1 && st.queued == 1);

    /* suspended: new calls refused, the running and queued ones go on */
    TCHECK_RC(pc_rps_suspend(s, true), PC_OK);
    TCHECK(svc_stats("st1", false).suspended);
    TCHECK_RC(ask_text(c, "ok"), PC_EFULL);
    TCHECK_STR(pc_rps_client_error(c), "service suspended");
    if (started)
        TCHECK_RC(pt_send(pt_msg_ref(started), "go"), PC_OK);
    pc_msg_free(&started);
    let_go(); /* the queued one started meanwhile */
    PT_EXPECT("finished");
    PT_EXPECT("finished");

    /* by name: resume, suspend all, resume all */
    TCHECK_RC(pc_rps_suspend_name("no-such-service", false), PC_ENOENT);
    TCHECK_RC(pc_rps_suspend_name("st1", false), PC_OK);
    TCHECK(!svc_stats("st1", false).suspended);
    TCHECK_RC(ask_text(c, "ok"), PC_OK);
    TCHECK_RC(pc_rps_suspend_name(NULL, true), PC_OK);
    TCHECK_RC(ask_text(c, "ok"), PC_EFULL);
    TCHECK_STR(pc_rps_client_error(c), "service suspended");
    TCHECK_RC(pc_rps_suspend_name("", false), PC_OK);
    TCHECK_RC(ask_text(c, "ok"), PC_OK);

    st = svc_stats("st1", true);
    TCHECK_EQ(st.calls, 11);
    TCHECK_EQ(st.failures, 2);
    TCHECK_EQ(st.refused, 3);
    TCHECK(st.running == 0 && st.queued == 0 && !st.suspended);
    TCHECK(st.p50_us > 0 && st.p99_us <= st.max_us);
    TCHECK_RC(pc_rps_suspend(NULL, true), PC_EINVAL);
out:
    pc_rps_client_free(&c);
    TCHECK_RC(pc_rps_close(&s, 0), PC_OK);
    TCHECK_STR(svc_stats("st1", false).name, ""); /* closed: not listed */
    pc_node_stop();
    return NULL;
}

PT_TEST(stats_and_suspend)
static void
stats_and_suspend(void)
{
    CU_ASSERT_FATAL(rg_start(&R));
    driver_run(stats_task);
    nt_stop(&R.c);
}

/* ---- close with a grace ------------------------------------------------------ */

static pc_msg *
grace_task(void *arg)
{
    pc_rps_client *c;
    struct pc_rps_call *k = NULL, *k2 = NULL;
    pc_msg *v = NULL;
    char out[128];
    (void)arg;

    TCHECK_RC(join(), PC_OK);
    /* a call that ends within the grace gets its result; new calls are
     * refused at once meanwhile */
    if ((c = nt_locate("grace1"))) {
        double t0 = pc_now();
        pc_err rc;
        TCHECK_RC(call_text(c, "hold", PT_LONG, &k), PC_OK);
        ctl_send(&P, "closeg grace1 20");
        /* until the acceptor has the close (a call before it is quick) */
        while ((rc = call_text(c, "quick", PT_LONG, &k2)) == PC_OK &&
               pt_since(t0) < PT_LONG) {
            TCHECK_RC(pc_rps_finish(k2, PT_LONG, NULL), PC_OK);
            pc_rps_call_free(&k2);
        }
        TCHECK_RC(rc, PC_ECLOSED);
        TCHECK_STR(pc_rps_client_error(c), "service grace1 is closing");
        /* the held call is still running: let it end */
        TCHECK_RC(pc_send_data(pc_rps_call_task(k), "go", NULL, 0), PC_OK);
        TCHECK_RC(pc_rps_finish(k, PT_LONG, &v), PC_OK);
        TCHECK(v && !strcmp(pc_msg_str(v), "held"));
        pc_msg_free(&v);
        pc_rps_call_free(&k);
        ctl_wait(out, sizeof out);
        TCHECK_STR(out, "closed PC_OK released=0 bad=0");
        pc_rps_client_free(&c);
    }
    /* a call that does not end within the grace is terminated (CLOSED); an
     * update's release waits for it */
    if ((c = nt_locate("grace2"))) {
        TCHECK_RC(call_text(c, "hold", PT_LONG, &k), PC_OK);
        ctl_ask(&P, "updhold grace2", out, sizeof out);
        TCHECK_STR(out, "updated");
        ctl_send(&P, "closeg grace2 0.3");
        TCHECK_RC(pc_rps_finish(k, PT_LONG, &v), PC_ECLOSED);
        TCHECK(v == NULL);
        TCHECK_STR(pc_rps_client_error(c),
                   "service grace2 closed during the call");
        pc_rps_call_free(&k);
        ctl_wait(out, sizeof out);
        TCHECK_STR(out, "closed PC_OK released=1 bad=0");
        pc_rps_client_free(&c);
    }
    pc_node_stop();
    return NULL;
}

PT_TEST(close_with_grace)
static void
close_with_grace(void)
{
    CU_ASSERT_FATAL(rg_start(&R));
    CU_ASSERT_FATAL(peer_start(&P));
    driver_run(grace_task);
    nt_stop(&P);
    nt_stop(&R.c);
}

/* ---- a close that can't end a call ------------------------------------------------ */

static atomic_bool spin_started, spin_release;

/* Computes without a wait point (nothing can terminate it) until released,
 * or for PT_LONG. */
static pc_msg *
spin_fn(pc_msg *req)
{
    double t0 = pc_now();

    atomic_store(&spin_started, true);
    while (!atomic_load(&spin_release) && pt_since(t0) < PT_LONG)
        ;
    return req;
}

typedef struct closer {
    pc_rps *s;
    pc_err rc;
    double took;
    atomic_bool done;
} closer;

/* A foreign thread, so that it runs whichever worker the call holds: once
 * the call computes, pc_rps_close(grace 0), then the call's release. */
static void *
closer_main(void *arg)
{
    closer *c = arg;
    double t0 = pc_now();

    while (!atomic_load(&spin_started) && pt_since(t0) < PT_LONG)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    t0 = pc_now();
    c->rc = pc_rps_close(&c->s, 0);
    c->took = pt_since(t0);
    atomic_store(&spin_release, true);
    atomic_store(&c->done, true);
    return NULL;
}

/* Its caller's verdict, from another worker; -1 until it comes. */
static atomic_int spin_call_rc = -1;

static pc_msg *
spin_call_task(void *arg)
{
    char out[16];
    (void)arg;

    atomic_store(&spin_call_rc, request_once("spinner", "x", out, sizeof out));
    return NULL;
}

static pc_msg *
close_timeout_task(void *arg)
{
    pc_rps_opts o = {.name = "spinner", .fn = spin_fn};
    closer c = {0};
    pthread_t th;
    double t0;
    (void)arg;

    TCHECK_RC(join(), PC_OK);
    TCHECK_RC(pc_rps_register(&o, PT_LONG, &c.s), PC_OK);
    if (pthread_create(&th, NULL, closer_main, &c) != 0) {
        TCHECK(!"pthread_create");
        atomic_store(&spin_release, true);
        pc_rps_close(&c.s, 0);
        pc_node_stop();
        return NULL;
    }
    TCHECK_RC(pc_spawn(spin_call_task, NULL, NULL, NULL), PC_OK);
    /* (this task may share the call's worker: it then runs again once the
     * closer has released the call) */
    t0 = pc_now();
    while (!atomic_load(&c.done) && pt_since(t0) < 2 * PT_LONG)
        pc_sleep(0.01);
    TCHECK(atomic_load(&c.done));
    pthread_join(th, NULL);
    /* the call never reached a wait point: the acceptor could not end
     * within grace + 5 s; the handle is gone all the same */
    TCHECK_RC(c.rc, PC_ETIMEDOUT);
    TCHECK(c.took >= 4.9);
    TCHECK(c.s == NULL);
    /* released, the call ends and its caller hears of it; the acceptor
     * then ends by itself (LeakSanitizer checks it left nothing) */
    t0 = pc_now();
    while (atomic_load(&spin_call_rc) == -1 && pt_since(t0) < PT_LONG)
        pc_sleep(0.01);
    TCHECK(atomic_load(&spin_call_rc) != -1);
    pc_node_stop();
    return NULL;
}

/* pc_rps_close() of a service whose call never yields: PC_ETIMEDOUT after
 * grace + 5 s, the handle freed, the rest ending by itself. */
PT_TEST(close_times_out)
static void
close_times_out(void)
{
    CU_ASSERT_FATAL(rg_start(&R));
    driver_run(close_timeout_task);
    nt_stop(&R.c);
}

/* ---- reload under load ------------------------------------------------------- */

#define RL_BATCH 40
#define RL_GENS 4 /* the generations of rps_peer's "reload" */

/* Poll peer c's "reloadstat" until all RL_GENS - 1 releases ran (bounded):
 * a release runs on the service node after the last old call's outcome
 * was sent, so it may come a moment after the client saw that outcome. */
static void
reload_stat(const nt_child *c, int *releases, int *bad, int *dup)
{
    double t0 = pc_now();
    char out[128];

    *releases = *bad = *dup = -1;
    for (;;) {
        ctl_ask(c, "reloadstat", out, sizeof out);
        TCHECK(sscanf(out, "releases=%d bad=%d dup=%d", releases, bad, dup) ==
               3);
        if (*releases >= RL_GENS - 1 || pt_since(t0) > PT_LONG)
            break;
        pc_sleep(0.02);
    }
}

/* One call of "reload" from a task of its own, so that calls wait in the
 * service's queue: "rl" to the driver with "<rc name> <result>". */
typedef struct rl_arg {
    pc_rps_client *c;
    pc_ref to;
    int b, i;
} rl_arg;

static pc_msg *
rl_caller(void *arg)
{
    const rl_arg *a = arg;
    struct pc_rps_call *k = NULL;
    pc_msg *v = NULL;
    char req[32], out[96];
    pc_err rc;

    snprintf(req, sizeof req, "%d.%d", a->b, a->i);
    if ((rc = call_text(a->c, req, 4 * PT_LONG, &k)) == PC_OK)
        rc = pc_rps_finish(k, PT_LONG, &v);
    snprintf(out, sizeof out, "%s %s", pc_err_name(rc),
             v && pc_msg_str(v) ? pc_msg_str(v) : "-");
    pc_msg_free(&v);
    pc_rps_call_free(&k);
    pc_send_data(a->to, "rl", out, strlen(out));
    return NULL;
}

static pc_msg *
reload_task(void *arg)
{
    static rl_arg args[RL_GENS * RL_BATCH];
    pc_rps_client *c;
    pc_rps_info in;
    int ok = 0, right = 0, seen[RL_GENS] = {0}, releases, bad, dup;
    char out[128];
    (void)arg;

    TCHECK_RC(join(), PC_OK);
    if (!(c = nt_locate("reload")))
        goto out;
    /* Batch b is made under generation b: the driver updates only once the
     * service took (ran or queued) all of it — describe counts the calls
     * taken. With 16 slots most of a batch still waits in the queue then,
     * and must run the code it was accepted under. */
    for (int b = 0; b < RL_GENS; b++) {
        double t0 = pc_now();
        for (int i = 0; i < RL_BATCH; i++) {
            rl_arg *a = &args[b * RL_BATCH + i];
            *a = (rl_arg){c, pc_self(), b, i};
            TCHECK_RC(pc_spawn(rl_caller, a, NULL, NULL), PC_OK);
        }
        do {
            TCHECK_RC(pc_rps_describe(c, PT_LONG, &in, NULL), PC_OK);
            if (in.calls < (uint64_t)(b + 1) * RL_BATCH)
                pc_sleep(0.002);
        } while (in.calls < (uint64_t)(b + 1) * RL_BATCH &&
                 pt_since(t0) < PT_LONG);
        TCHECK_EQ(in.calls, (uint64_t)(b + 1) * RL_BATCH);
        TCHECK_EQ(in.version, (uint32_t)b);
        if (b + 1 < RL_GENS) {
            char want[32];
            snprintf(want, sizeof want, "updated %d", b + 1);
            ctl_ask(&P, "update", out, sizeof out);
            TCHECK_STR(out, want);
        }
    }
    /* every call ends OK, each on the code it was accepted under */
    for (int n = 0; n < RL_GENS * RL_BATCH; n++) {
        pc_msg *m = NULL;
        int b, i, g;
        if (pc_recv_type("rl", &m, 4 * PT_LONG) != PC_OK)
            break;
        if (sscanf(pc_msg_str(m), "PC_OK g%d:%d.%d", &g, &b, &i) == 3) {
            ok++;
            right += g == b;
            if (g >= 0 && g < RL_GENS)
                seen[g]++;
        }
        pc_msg_free(&m);
    }
    TCHECK_EQ(ok, RL_GENS * RL_BATCH); /* 0 calls lost */
    TCHECK_EQ(right, RL_GENS * RL_BATCH);
    for (int g = 0; g < RL_GENS; g++)
        TCHECK_EQ(seen[g], RL_BATCH); /* old and new code ran */
    /* each release once, and only once no call of its code was left */
    reload_stat(&P, &releases, &bad, &dup);
    TCHECK_EQ(releases, RL_GENS - 1);
    TCHECK_EQ(bad, 0);
    TCHECK_EQ(dup, 0);
    pc_rps_client_free(&c);
out:
    pc_node_stop();
    return NULL;
}

PT_TEST(reload_under_load)
static void
reload_under_load(void)
{
    CU_ASSERT_FATAL(rg_start(&R));
    CU_ASSERT_FATAL(peer_start(&P));
    driver_run(reload_task);
    nt_stop(&P);
    nt_stop(&R.c);
}

PT_MAIN("rps", PT_ENTRY(stats_and_suspend), PT_ENTRY(calls_and_results),
        PT_ENTRY(failure_reasons), PT_ENTRY(node_killed_during_call),
        PT_ENTRY(thousand_in_flight), PT_ENTRY(reload_under_load),
        PT_ENTRY(close_with_grace), PT_ENTRY(close_times_out),
        PT_ENTRY(register_leaves_nothing), PT_ENTRY(wrong_secret))
