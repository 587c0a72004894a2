/* pico_client_task.c — request/reply with a deadline (pycos's
 * pico_client_task.py).
 *
 *     picos-pico-client-task [--registry EP[,EP]] [--secret-file FILE]
 *                            [--timeout S] [-n N] [--delay D]
 *                            [--deadline S]
 *
 * The client node finds the service "pico_time" (picos-pico-service-task)
 * and sends it N requests (default 1), one after the other, each "time D":
 * the server takes D seconds (--delay, default 0) to answer with its time.
 * Each is a pc_rps_request(): the request goes out with its deadline
 * (--deadline S, default 5) and the reply comes back, or, when the
 * deadline passes first, PC_ETIMEDOUT — and the service, which got the
 * deadline with the request, has stopped the work by then (its monitor
 * says so). Try --delay 2 --deadline 0.5.
 *
 * Each answer is a line on stdout: "reply I: <the server's time>",
 * "request I: timed out after S s (the service stopped the work)" or
 * "request I failed: <why>"; then "N requests: K replies, T timed out, F
 * failed". Exit status 0 when every request got its reply; 1 with one line
 * on stderr otherwise; 2 for bad options. --timeout S (default 5) bounds
 * joining and the lookup. The secret, the registry and the errors are as
 * in every cluster example (cluster_ex.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/picos.h"
#include "picos/rps.h"

#include "cluster_ex.h"

#define SERVICE "pico_time"

static ex_cluster x = {
    .prog = "picos-pico-client-task",
    .usage = "[options]: asks '" SERVICE "' for its time",
    .options = "  -n N                requests to send (default 1)\n"
               "  --delay D           seconds the server takes (default 0)\n"
               "  --deadline S        each request's deadline (default 5)\n",
};
static int n = 1;
static double delay = 0, deadline = 5;
static int status = 1; /* the client task's verdict, read after the node */

/* pycos's client_proc. */
static pc_msg *
client(void *arg)
{
    pc_rps_client *c = NULL;
    int replies = 0, late = 0;
    char text[64];
    pc_err rc;

    (void)arg;
    /* pycos: service_task = yield Task.locate('pico_service', timeout=10) */
    if ((rc = pc_rps_locate(SERVICE, x.timeout, &c)) != PC_OK) {
        ex_say(&x, "no service " SERVICE " in the cluster of %s: %s",
               ex_registry(&x), pc_strerror(rc));
        return NULL;
    }
    snprintf(text, sizeof text, "time %g", delay);
    for (int i = 1; i <= n; i++) {
        pc_msg *req = NULL, *reply = NULL;

        if ((rc = pc_msg_new_str(&req, "text", text)) == PC_OK)
            rc = pc_rps_request(c, &req, deadline, &reply);
        if (rc == PC_OK) {
            printf("reply %d: %s\n", i, reply ? pc_msg_str(reply) : "");
            replies++;
        } else if (rc == PC_ETIMEDOUT) {
            printf("request %d: timed out after %g s (the service stopped "
                   "the work)\n",
                   i, deadline);
            late++;
        } else {
            printf("request %d failed: %s\n", i,
                   rc == PC_EFAILED ? pc_msg_str(reply) : pc_strerror(rc));
        }
        fflush(stdout);
        pc_msg_free(&reply);
        pc_msg_free(&req); /* still ours after a failed request */
    }
    printf("%d requests: %d replies, %d timed out, %d failed\n", n, replies,
           late, n - replies - late);
    fflush(stdout);
    if (replies < n)
        ex_say(&x, "%d of %d requests got no reply", n - replies, n);
    else
        status = 0;
    pc_rps_client_free(&c);
    return NULL;
}

static int
option(const char *a, const char *v)
{
    if (!v)
        return 0;
    if (!strcmp(a, "-n"))
        return ex_int(v, 1, 100000, &n) ? 2 : 0;
    if (!strcmp(a, "--delay"))
        return ex_number(v, 0, &delay) ? 2 : 0;
    if (!strcmp(a, "--deadline"))
        return ex_number(v, 0.001, &deadline) ? 2 : 0;
    return 0;
}

int
main(int argc, char **argv)
{
    int st;

    ex_args(&x, argc, argv, option);
    return (st = ex_client(&x, client)) ? st : status;
}
