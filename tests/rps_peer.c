/* tests/rps_peer.c — a service node for test_rps.
 *
 *     rps_peer --registries EPS --secret-file F [--heartbeat S] [--timeout S]
 *              [--client NAME [--connect EP]]
 *
 * Joins the registries, registers the services below, prints "READY
 * <endpoint> <node id in hex>" and runs until killed. With --client it is
 * a client node instead: it prints "JOIN <pc_err name>" for its
 * pc_cluster_join(), with --connect "CONNECT <name>" for a
 * pc_node_connect() straight to EP, then, once joined, "CALL <name>" for a
 * request/reply of service NAME, and exits. Its "ctl" task (a
 * node-local name) answers commands with an "rc" string message:
 *   "close"     pc_rps_close() of service "closable"; answers "closed"
 *   "outcomes"  what the monitor of "slow" saw: "ok=N timedout=N"
 *   "update"    pc_rps_update() of "reload" to its next generation k (1, 2,
 *               ...; release callback k); answers "updated k" or the error
 *   "updhold NAME" pc_rps_update() of NAME (grace1 or grace2) to the same
 *               code, with a release that checks no hold call is left;
 *               answers "updated" or the error
 *   "closeg NAME GRACE" pc_rps_close(NAME, GRACE) (grace1 or grace2);
 *               answers "closed <its pc_err name> released=N bad=N" (the
 *               updhold releases so far, and those that found a call left)
 *   "reloadstat" "releases=N bad=N dup=N": how many of the updates' release
 *               callbacks ran, how often a release ran while a call of the
 *               code it released was still running (or such a call started
 *               after it), how many ran more than once
 * Services (payloads are bytes unless said):
 *   echo      returns the request; version 7
 *   fail      pc_exit_error("boom: <request>")
 *   killme    terminates itself
 *   slow      sleeps <request> seconds (text), then returns "slept"
 *   closable  as slow
 *   busy      as grace1, max_inflight 1, max_queued 1
 *   typed     request typed as picos.v1.RpsRefused: returns its text (as
 *             bytes; its response type, picos.v1.RpsInfo, is only published)
 *   many      sleeps 0.2 s, returns the request; max_inflight 2000
 *   grace1, grace2  "quick": returns "quick" at once; anything else: waits
 *             for a message to the call's task, then returns "held"
 *   reload    generation k (0 at first): sleeps 0.05 s, returns
 *             "g<k>:<request>"; max_inflight 16
 *   cli.all   typed both ways as picos.test.All (tests/test.proto, for
 *             test_cli's picos call --json): returns the request with i32
 *             + 1 and str "got <str>"; str "fail" fails: "no thanks"
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "picos/picos.h"
#include "picos/registry.h"
#include "picos/rps.h"

#include "rps.pb-c.h"
#include "test.pb-c.h"
#include "tsan_supp.h"

static pc_rps *closable, *reload, *grace1, *grace2;
static atomic_int hold_active, hold_rel, hold_bad;
static int n_ok, n_timedout;

/* "reload": one function per generation. A call counts itself active in
 * its generation for as long as it runs; release k (of update k) marks
 * the generations before k released, then checks none of them is active —
 * and a call checks, once active, that its generation is not released
 * (seq_cst on both sides: an overlap is seen by at least one). */
#define NGEN 4
static atomic_int gen_active[NGEN], gen_released[NGEN], rel_count[NGEN];
static atomic_int rel_bad;
static int gen_next = 1; /* the ctl task's */

static pc_msg *
gen_run(int g, pc_msg *req)
{
    char text[128];
    pc_msg *m = NULL;
    atomic_fetch_add(&gen_active[g], 1);
    if (atomic_load(&gen_released[g]))
        atomic_fetch_add(&rel_bad, 1);
    pc_sleep(0.05);
    snprintf(text, sizeof text, "g%d:%s", g, pc_msg_str(req));
    pc_msg_free(&req);
    pc_msg_new_str(&m, "text", text);
    atomic_fetch_sub(&gen_active[g], 1);
    return m;
}

static pc_msg *
gen0(pc_msg *r)
{
    return gen_run(0, r);
}
static pc_msg *
gen1(pc_msg *r)
{
    return gen_run(1, r);
}
static pc_msg *
gen2(pc_msg *r)
{
    return gen_run(2, r);
}
static pc_msg *
gen3(pc_msg *r)
{
    return gen_run(3, r);
}
static const pc_rps_fn gens[NGEN] = {gen0, gen1, gen2, gen3};

static void
released(void *arg)
{
    int k = (int)(intptr_t)arg;
    atomic_fetch_add(&rel_count[k], 1);
    for (int j = 0; j < k; j++)
        atomic_store(&gen_released[j], 1);
    for (int j = 0; j < k; j++)
        if (atomic_load(&gen_active[j]))
            atomic_fetch_add(&rel_bad, 1);
}

static void
hold_end(void *arg)
{
    (void)arg;
    atomic_fetch_sub(&hold_active, 1);
}

static pc_msg *
hold(pc_msg *req)
{
    pc_msg *m = NULL;
    bool quick = !strcmp(pc_msg_str(req), "quick");
    pc_msg_free(&req);
    if (!quick) {
        atomic_fetch_add(&hold_active, 1);
        pc_at_exit(hold_end, NULL);
        if (pc_recv(&m, -1) == PC_OK)
            pc_msg_free(&m);
    }
    pc_msg_new_str(&m, "text", quick ? "quick" : "held");
    return m;
}

static void
hold_released(void *arg)
{
    (void)arg;
    atomic_fetch_add(&hold_rel, 1);
    if (atomic_load(&hold_active))
        atomic_fetch_add(&hold_bad, 1);
}

static pc_rps **
grace_svc(const char *name)
{
    return !strcmp(name, "grace1")   ? &grace1
           : !strcmp(name, "grace2") ? &grace2
                                     : NULL;
}

static void
updhold_cmd(const char *arg, char *out, size_t size)
{
    pc_rps_opts o = {.fn = hold};
    pc_rps **s = grace_svc(arg);
    pc_err rc = s ? pc_rps_update(*s, &o, hold_released, NULL, 5.0) : PC_EINVAL;
    snprintf(out, size, "%s", rc == PC_OK ? "updated" : pc_err_name(rc));
}

static void
closeg_cmd(const char *arg, char *out, size_t size)
{
    char name[32] = "";
    double grace = 0;
    pc_rps **s = NULL;
    pc_err rc = PC_EINVAL;

    if (sscanf(arg, "%31s %lf", name, &grace) == 2 && (s = grace_svc(name)))
        rc = pc_rps_close(s, grace);
    snprintf(out, size, "closed %s released=%d bad=%d", pc_err_name(rc),
             atomic_load(&hold_rel), atomic_load(&hold_bad));
}

static void
update_cmd(char *out, size_t size)
{
    pc_rps_opts o = {.name = "reload", .max_inflight = 16};
    int k = gen_next;
    pc_err rc;

    if (k >= NGEN) {
        snprintf(out, size, "no more generations");
        return;
    }
    o.fn = gens[k];
    o.version = (uint32_t)k;
    rc = pc_rps_update(reload, &o, released, (void *)(intptr_t)k, 5.0);
    if (rc == PC_OK) {
        gen_next++;
        snprintf(out, size, "updated %d", k);
    } else
        snprintf(out, size, "%s", pc_err_name(rc));
}

static void
reloadstat(char *out, size_t size)
{
    int n = 0, dup = 0;
    for (int k = 1; k < NGEN; k++) {
        int c = atomic_load(&rel_count[k]);
        n += c > 0;
        dup += c > 1;
    }
    snprintf(out, size, "releases=%d bad=%d dup=%d", n, atomic_load(&rel_bad),
             dup);
}

static void
die(const char *what, pc_err rc)
{
    fprintf(stderr, "rps_peer: %s: %s\n", what, pc_strerror(rc));
    exit(2);
}

static pc_msg *
echo(pc_msg *req)
{
    return req;
}

static pc_msg *
fail(pc_msg *req)
{
    char text[128];
    snprintf(text, sizeof text, "boom: %s", pc_msg_str(req));
    pc_msg_free(&req);
    pc_exit_error(text);
}

static pc_msg *
killme(pc_msg *req)
{
    pc_msg_free(&req);
    pc_task_terminate(pc_self());
    return NULL;
}

static pc_msg *
slow(pc_msg *req)
{
    pc_msg *m = NULL;
    pc_sleep(atof(pc_msg_str(req)));
    pc_msg_free(&req);
    pc_msg_new_str(&m, "text", "slept");
    return m;
}

static pc_msg *
typed(pc_msg *req)
{
    const Picos__V1__RpsRefused *r = pc_msg_pb(req);
    pc_msg *m = NULL;
    pc_msg_new_str(&m, "text", r ? r->text : "NOT TYPED");
    pc_msg_free(&req);
    return m;
}

static pc_msg *
many(pc_msg *req)
{
    pc_sleep(0.2);
    return req;
}

static pc_msg *
watcher(void *arg)
{
    (void)arg;
    for (;;) {
        pc_msg *m = NULL;
        pc_rps_outcome o;
        if (pc_recv(&m, -1) == PC_OK && pc_rps_outcome_parse(m, &o) == PC_OK) {
            if (o.rc == PC_OK)
                __atomic_add_fetch(&n_ok, 1, __ATOMIC_SEQ_CST);
            else if (o.rc == PC_ETIMEDOUT)
                __atomic_add_fetch(&n_timedout, 1, __ATOMIC_SEQ_CST);
        }
        pc_msg_free(&m);
    }
    return NULL;
}

static pc_msg *
ctl(void *arg)
{
    (void)arg;
    for (;;) {
        pc_msg *m = NULL;
        char out[128] = "?";
        if (pc_recv(&m, -1) != PC_OK)
            continue;
        if (!strcmp(pc_msg_str(m), "close")) {
            pc_rps_close(&closable, 0);
            snprintf(out, sizeof out, "closed");
        } else if (!strcmp(pc_msg_str(m), "outcomes"))
            snprintf(out, sizeof out, "ok=%d timedout=%d",
                     __atomic_load_n(&n_ok, __ATOMIC_SEQ_CST),
                     __atomic_load_n(&n_timedout, __ATOMIC_SEQ_CST));
        else if (!strcmp(pc_msg_str(m), "update"))
            update_cmd(out, sizeof out);
        else if (!strcmp(pc_msg_str(m), "reloadstat"))
            reloadstat(out, sizeof out);
        else if (!strncmp(pc_msg_str(m), "updhold ", 8))
            updhold_cmd(pc_msg_str(m) + 8, out, sizeof out);
        else if (!strncmp(pc_msg_str(m), "closeg ", 7))
            closeg_cmd(pc_msg_str(m) + 7, out, sizeof out);
        pc_send_data(pc_msg_sender(m), "rc", out, strlen(out));
        pc_msg_free(&m);
    }
    return NULL;
}

/* ---- picos call's typed service (test_cli) ---------------------------------- */

static pc_msg *
all_echo(pc_msg *req)
{
    const Picos__Test__All *a = pc_msg_pb(req);
    size_t n = a ? picos__test__all__get_packed_size(a) : 0;
    uint8_t *buf = malloc(n ? n : 1);
    Picos__Test__All *r = NULL;
    char *str;
    pc_msg *m = NULL;

    if (buf && a) { /* a copy to change: the request is read-only */
        picos__test__all__pack(a, buf);
        r = picos__test__all__unpack(NULL, n, buf);
    }
    free(buf);
    pc_msg_free(&req);
    if (!r)
        pc_exit_error("no request");
    if (!strcmp(r->str, "fail")) {
        picos__test__all__free_unpacked(r, NULL);
        pc_exit_error("no thanks");
    }
    r->i32 += 1;
    if (asprintf(&str, "got %s", r->str) < 0)
        str = NULL;
    if (r->str != protobuf_c_empty_string)
        free(r->str);
    r->str = str ? str : (char *)protobuf_c_empty_string;
    if (pc_msg_new_pb(&m, r) != PC_OK) {
        picos__test__all__free_unpacked(r, NULL);
        pc_exit_error("out of memory");
    }
    return m;
}

static void
cli_services(void)
{
    pc_rps_opts o = {.name = "cli.all",
                     .fn = all_echo,
                     .req_desc = &picos__test__all__descriptor,
                     .resp_desc = &picos__test__all__descriptor};
    pc_rps *s = NULL;
    pc_err rc = pc_rps_register(&o, 5.0, &s);

    if (rc != PC_OK)
        die(o.name, rc);
}

static pc_rps *
add_v(const char *name, pc_rps_fn fn, int inflight, int queued,
      const void *desc, const void *resp, uint32_t version)
{
    pc_rps_opts o = {.name = name,
                     .fn = fn,
                     .max_inflight = inflight,
                     .max_queued = queued,
                     .req_desc = desc,
                     .resp_desc = resp,
                     .version = version};
    pc_rps *s = NULL;
    pc_err rc = pc_rps_register(&o, 5.0, &s);
    if (rc != PC_OK)
        die(name, rc);
    return s;
}

static pc_rps *
add(const char *name, pc_rps_fn fn, int inflight, int queued, const void *desc)
{
    return add_v(name, fn, inflight, queued, desc, NULL, 0);
}

/* --client: what a client node gets, one line per step. */
static int
client(pc_cluster_opts *co, const char *name, const char *connect)
{
    pc_rps_client *c = NULL;
    pc_msg *req = NULL, *rep = NULL;
    pc_err rc;

    co->join_timeout = 5;
    rc = pc_cluster_join(co);
    printf("JOIN %s\n", pc_err_name(rc));
    if (connect)
        printf("CONNECT %s\n", pc_err_name(pc_node_connect(connect, 5, NULL)));
    if (rc == PC_OK) {
        if ((rc = pc_rps_locate(name, 5, &c)) == PC_OK &&
            (rc = pc_msg_new_str(&req, "text", "hi")) == PC_OK)
            rc = pc_rps_request(c, &req, 5, &rep);
        printf("CALL %s\n", pc_err_name(rc));
        pc_msg_free(&req);
        pc_msg_free(&rep);
        pc_rps_client_free(&c);
    }
    fflush(stdout);
    pc_node_stop();
    pc_node_run();
    return 0;
}

int
main(int argc, char **argv)
{
    pc_cluster_opts co = {0};
    pc_node_opts o = {.workers = 2};
    pc_spawn_opts d = {.flags = PC_TASK_DAEMON};
    char ep[256];
    pc_ref ref, w;
    pc_rps *sl;
    const char *as_client = NULL, *connect = NULL;
    pc_err rc;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--registries"))
            co.registries = v;
        else if (!strcmp(a, "--secret-file"))
            co.net.secret_file = v;
        else if (!strcmp(a, "--heartbeat"))
            co.net.heartbeat = atof(v);
        else if (!strcmp(a, "--timeout"))
            co.net.timeout = atof(v);
        else if (!strcmp(a, "--client"))
            as_client = v;
        else if (!strcmp(a, "--connect"))
            connect = v;
        else {
            fprintf(stderr, "rps_peer: unknown option %s\n", a);
            return 2;
        }
    }
    if ((rc = pc_node_start(&o)) != PC_OK)
        die("pc_node_start", rc);
    if (as_client)
        return client(&co, as_client, connect);
    /* ctl is the one task that is not a daemon: it keeps pc_node_run() going */
    if ((rc = pc_spawn(ctl, NULL, NULL, &ref)) != PC_OK ||
        (rc = pc_register("ctl", ref)) != PC_OK)
        die("ctl", rc);
    co.join_timeout = 20;
    if ((rc = pc_cluster_join(&co)) != PC_OK)
        die("pc_cluster_join", rc);
    add_v("echo", echo, 0, 0, NULL, NULL, 7);
    add("fail", fail, 0, 0, NULL);
    add("killme", killme, 0, 0, NULL);
    sl = add("slow", slow, 0, 0, NULL);
    closable = add("closable", slow, 0, 0, NULL);
    add("busy", hold, 1, 1, NULL);
    add_v("typed", typed, 0, 0, &picos__v1__rps_refused__descriptor,
          &picos__v1__rps_info__descriptor, 0);
    add("many", many, 2000, 0, NULL);
    reload = add("reload", gen0, 16, 0, NULL);
    grace1 = add("grace1", hold, 0, 0, NULL);
    grace2 = add("grace2", hold, 0, 0, NULL);
    cli_services();
    if ((rc = pc_spawn(watcher, NULL, &d, &w)) != PC_OK ||
        (rc = pc_rps_monitor(sl, w)) != PC_OK)
        die("watcher", rc);
    if ((rc = pc_net_endpoints(ep, NULL, sizeof ep)) != PC_OK)
        die("pc_net_endpoints", rc);
    printf("READY %s %" PRIx64 "\n", ep, pc_node_id());
    fflush(stdout);
    pc_node_run();
    return 0;
}
