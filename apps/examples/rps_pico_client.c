/* rps_pico_client.c — call a Remote Pico Service N times and collect every
 * result (pycos's rps_pico_client.py).
 *
 *     picos-rps-pico-client [--registry EP[,EP]] [--secret-file FILE]
 *                           [--timeout S] [-n N] [--request TEXT]
 *
 * The client node joins the registries, finds the service "pico_service"
 * (pc_rps_locate(), waiting up to --timeout S for it to be registered) and
 * makes N calls (default 5) with the request TEXT (default "time"). Each
 * pc_rps_call() returns as soon as the service has started the call's
 * task, so all N run at once on the service node; then the client collects
 * them in order with pc_rps_finish(), each within the call's deadline
 * (--timeout S, default 5). A call that finished early keeps its result
 * until it is asked for: nothing is lost, however late finish comes.
 *
 * Each result is a line on stdout — "result I: <the server's time> (call
 * task REF)", or "call I failed: <why>" (a failed call says the service's
 * error text: try --request date) — then "N calls: K ok, F failed".
 * Exit status 0 when every call returned a result; 1 when any failed (one
 * line on stderr says how many) or the service could not be found; 2 for
 * bad options. The service is picos-rps-pico-service, or pico_service.so in
 * picos-node; the secret, the registry and the errors are as in every
 * cluster example (cluster_ex.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/picos.h"
#include "picos/rps.h"

#include "cluster_ex.h"

#define SERVICE "pico_service"

static ex_cluster x = {
    .prog = "picos-rps-pico-client",
    .usage = "[options]: calls the service '" SERVICE "'",
    .options = "  -n N                calls to make (default 5)\n"
               "  --request TEXT      what to ask (default 'time')\n",
};
static int n = 5;
static const char *request = "time";
static int status = 1; /* the client task's verdict, read after the node */

/* Start call i; NULL (and a line) when the service did not take it. */
static struct pc_rps_call *
call(pc_rps_client *c, int i)
{
    struct pc_rps_call *k = NULL;
    pc_msg *req = NULL;
    pc_err rc = pc_msg_new_str(&req, "text", request);

    if (rc == PC_OK)
        rc = pc_rps_call(c, &req, x.timeout, &k);
    if (rc != PC_OK) {
        pc_msg_free(&req); /* a failed call leaves the request ours */
        printf("call %d failed: not accepted: %s\n", i, pc_strerror(rc));
    }
    return k;
}

/* Wait for call i's outcome and say it; true for a result. */
static bool
finish(struct pc_rps_call *k, int i)
{
    char ref[64];
    pc_msg *v = NULL;
    pc_err rc = pc_rps_finish(k, x.timeout, &v);

    if (rc == PC_OK)
        printf("result %d: %s (call task %s)\n", i, v ? pc_msg_str(v) : "",
               pc_ref_str(pc_rps_call_task(k), ref, sizeof ref));
    else if (rc == PC_EFAILED) /* v is the error message */
        printf("call %d failed: %s\n", i, pc_msg_str(v));
    else
        printf("call %d failed: %s\n", i, pc_strerror(rc));
    pc_msg_free(&v);
    return rc == PC_OK;
}

/* pycos's client_proc(n). */
static pc_msg *
client(void *arg)
{
    struct pc_rps_call **calls = calloc((size_t)n, sizeof *calls);
    pc_rps_client *c = NULL;
    int ok = 0;
    pc_err rc;

    (void)arg;
    if (!calls) {
        ex_say(&x, "out of memory");
        return NULL;
    }
    /* pycos: rps = yield RPS.locate('pico_service') */
    if ((rc = pc_rps_locate(SERVICE, x.timeout, &c)) != PC_OK) {
        ex_say(&x, "no service " SERVICE " in the cluster of %s: %s",
               ex_registry(&x), pc_strerror(rc));
        free(calls);
        return NULL;
    }
    /* pycos: rtask = yield rps(req), n times */
    for (int i = 0; i < n; i++)
        calls[i] = call(c, i + 1);
    /* pycos: reply = yield rtask.finish(timeout=5), for each */
    for (int i = 0; i < n; i++) {
        if (calls[i] && finish(calls[i], i + 1))
            ok++;
        pc_rps_call_free(&calls[i]);
    }
    printf("%d calls: %d ok, %d failed\n", n, ok, n - ok);
    fflush(stdout);
    if (ok < n)
        ex_say(&x, "%d of %d calls failed", n - ok, n);
    else
        status = 0;
    pc_rps_client_free(&c);
    free(calls);
    return NULL;
}

static int
option(const char *a, const char *v)
{
    if (v && !strcmp(a, "-n"))
        return ex_int(v, 1, 100000, &n) ? 2 : 0;
    if (v && !strcmp(a, "--request")) {
        request = v;
        return 2;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    int st;

    ex_args(&x, argc, argv, option);
    return (st = ex_client(&x, client)) ? st : status;
}
