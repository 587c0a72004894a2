/* pico_service_task.c — a request/reply service with deadlines (pycos's
 * pico_service_task.py).
 *
 *     picos-pico-service-task [--registry EP[,EP]] [--secret-file FILE]
 *                             [--listen ENDPOINT] [--timeout S]
 *
 * pycos's example is one registered task that answers messages
 * {'req': 'time', 'reply': task, 'delay': D} by sending the time back to
 * `reply` after D seconds; the client waits for the answer with a timeout
 * of its own, and a late answer is sent all the same, to a client that
 * gave up. Here the service "pico_time" answers the request "time D" (D
 * optional, default 0: the seconds the answer takes) with the server's
 * time, and the client uses pc_rps_request(): one request in, one reply
 * out, within a deadline that travels with the request. When the deadline
 * passes first the service stops the work (the call's task is terminated)
 * and the client gets PC_ETIMEDOUT: nothing is answered late.
 *
 * The service's monitor (pc_rps_monitor()) prints how each call ended:
 * "pico_time: call ID answered", or "pico_time: call ID passed its
 * deadline: the client gave up, the work was stopped"; other requests fail
 * ("unknown request '...'"). SIGTERM or SIGINT closes the service and ends
 * the program with status 0. The client is picos-pico-client-task; the
 * secret, the registry and the errors are as in every cluster example
 * (cluster_ex.h).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "picos/picos.h"
#include "picos/rps.h"

#include "cluster_ex.h"

#define SERVICE "pico_time"

static ex_cluster x = {
    .prog = "picos-pico-service-task",
    .usage = "[options]: serves '" SERVICE "' (\"time D\")",
    .server = true,
};
static pc_rps *svc;

/* A call: "time D". */
static pc_msg *
pico_time(pc_msg *req)
{
    const char *s = pc_msg_str(req);
    char text[96], *end;
    double d = 0;
    time_t now;
    struct tm tm;
    pc_msg *reply = NULL;
    bool ok = !strncmp(s, "time", 4) && (!s[4] || s[4] == ' ');

    if (ok && s[4]) {
        d = strtod(s + 5, &end);
        ok = end != s + 5 && !*end && d >= 0;
    }
    if (!ok) {
        snprintf(text, sizeof text, "unknown request '%.40s'", pc_msg_str(req));
        pc_msg_free(&req);
        pc_exit_error(text);
    }
    pc_msg_free(&req);
    if (d > 0)
        pc_sleep(d); /* pycos: yield task.sleep(delay), getting the result */
    now = time(NULL);
    strftime(text, sizeof text, "%a %b %e %H:%M:%S %Y", localtime_r(&now, &tm));
    if (pc_msg_new_str(&reply, "text", text) != PC_OK)
        pc_exit_error("out of memory");
    return reply;
}

static pc_msg *
monitor(void *arg)
{
    pc_rps_outcome o;
    pc_msg *m;

    (void)arg;
    while (pc_recv(&m, -1) == PC_OK) {
        if (pc_rps_outcome_parse(m, &o) == PC_OK) {
            if (o.rc == PC_OK)
                printf(SERVICE ": call %llu answered\n",
                       (unsigned long long)o.id);
            else if (o.rc == PC_ETIMEDOUT)
                printf(SERVICE ": call %llu passed its deadline: the client "
                               "gave up, the work was stopped\n",
                       (unsigned long long)o.id);
            else
                printf(SERVICE ": call %llu failed: %s\n",
                       (unsigned long long)o.id,
                       o.rc == PC_EFAILED ? o.error : pc_strerror(o.rc));
            fflush(stdout);
        }
        pc_msg_free(&m);
    }
    return NULL;
}

int
main(int argc, char **argv)
{
    pc_rps_opts o = {.name = SERVICE, .fn = pico_time};
    pc_spawn_opts daemon = {.flags = PC_TASK_DAEMON};
    pc_ref mon;
    int st;
    pc_err rc;

    ex_args(&x, argc, argv, NULL);
    if ((st = ex_start(&x)))
        return st;
    if ((rc = pc_spawn(monitor, NULL, &daemon, &mon)) == PC_OK &&
        (rc = pc_rps_register(&o, x.timeout, &svc)) == PC_OK)
        rc = pc_rps_monitor(svc, mon);
    return ex_serve(&x, rc, SERVICE, &svc) == PC_OK ? 0 : 1;
}
