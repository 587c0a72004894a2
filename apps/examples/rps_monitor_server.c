/* rps_monitor_server.c — a Remote Pico Service whose calls may fail, and a
 * monitor that sees how every call ends (pycos's rps_monitor_server.py).
 *
 *     picos-rps-monitor-server [--registry EP[,EP]] [--secret-file FILE]
 *                              [--listen ENDPOINT] [--timeout S]
 *
 * The node joins the registries and registers the service "rps_server".
 * A call's request is a number B (text) and its task first waits up to 2 s
 * for a message from the client — the caller gets the task's ref from
 * pc_rps_call() and may talk to it like any task —; then, when B > 0, it
 * sleeps B seconds and returns the client's message: a normal end. When B
 * is not a positive number, or no message came, the call fails
 * (pc_exit_error("invalid invocation: B")). A call may also be terminated
 * by its client, or by the service at its deadline.
 *
 * pc_rps_monitor() makes the monitor task get one outcome message for
 * every call that ends; it prints "monitor: call ID ended: normal" or
 * "monitor: call ID failed: <why> (N normal, M failed so far)". At SIGTERM
 * or SIGINT the service is closed and the monitor's totals are printed:
 * "monitor: N calls: K normal, F failed (E errors, X killed, T timed
 * out)"; exit status 0. picos-rps-monitor-client makes calls that end in
 * each of those ways. The secret, the registry and the errors are as in
 * every cluster example (cluster_ex.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/picos.h"
#include "picos/rps.h"

#include "cluster_ex.h"

#define SERVICE "rps_server"

static ex_cluster x = {
    .prog = "picos-rps-monitor-server",
    .usage = "[options]: serves '" SERVICE "' and monitors its calls",
    .server = true,
};
static pc_rps *svc;

/* pycos's rps_server(a, b): request B, then a message from the client. */
static pc_msg *
rps_server(pc_msg *req)
{
    char text[96], msg[64];
    char *end;
    double b = strtod(pc_msg_str(req), &end);
    bool valid = end != pc_msg_str(req) && !*end && b > 0;
    pc_msg *m = NULL;

    snprintf(text, sizeof text, "invalid invocation: %.40s", pc_msg_str(req));
    pc_msg_free(&req);
    /* pycos: msg = yield task.receive(timeout=2) */
    if (pc_recv(&m, 2.0) != PC_OK)
        pc_exit_error("no message from the client within 2 s");
    /* A terminated task does not unwind: hold nothing while blocked. */
    snprintf(msg, sizeof msg, "%s", pc_msg_str(m));
    pc_msg_free(&m);
    if (!valid)
        pc_exit_error(text);
    pc_sleep(b);
    /* the client's own message is the call's result */
    if (pc_msg_new_str(&m, "text", msg) != PC_OK)
        pc_exit_error("out of memory");
    return m;
}

/* Counts what the service's calls came to; the counts are read by main()
 * after the node ended (the task is gone then). */
static int normal, errors, killed, timedout, other;

static const char *
why(const pc_rps_outcome *o)
{
    switch (o->rc) {
    case PC_EFAILED:
        return o->error;
    case PC_EKILLED:
        return "killed";
    case PC_ETIMEDOUT:
        return "past its deadline, stopped";
    default:
        return pc_strerror(o->rc);
    }
}

/* pycos: the RPS's monitor, counting StopIteration versus exceptions. */
static pc_msg *
monitor(void *arg)
{
    pc_msg *m;
    pc_rps_outcome o;

    (void)arg;
    while (pc_recv(&m, -1) == PC_OK) {
        if (pc_rps_outcome_parse(m, &o) == PC_OK) {
            int *n = o.rc == PC_OK          ? &normal
                     : o.rc == PC_EFAILED   ? &errors
                     : o.rc == PC_EKILLED   ? &killed
                     : o.rc == PC_ETIMEDOUT ? &timedout
                                            : &other;
            ++*n;
            if (o.rc == PC_OK)
                printf("monitor: call %llu ended: normal (%d normal, %d "
                       "failed so far)\n",
                       (unsigned long long)o.id, normal,
                       errors + killed + timedout + other);
            else
                printf("monitor: call %llu failed: %s (%d normal, %d failed "
                       "so far)\n",
                       (unsigned long long)o.id, why(&o), normal,
                       errors + killed + timedout + other);
            fflush(stdout);
        }
        pc_msg_free(&m);
    }
    return NULL;
}

int
main(int argc, char **argv)
{
    pc_rps_opts o = {.name = SERVICE, .fn = rps_server};
    pc_spawn_opts daemon = {.flags = PC_TASK_DAEMON};
    pc_ref mon;
    int st;
    pc_err rc;

    ex_args(&x, argc, argv, NULL);
    if ((st = ex_start(&x)))
        return st;
    /* pycos: rps = RPS(rps_server); rps.register(); rps.monitor(task) */
    if ((rc = pc_spawn(monitor, NULL, &daemon, &mon)) == PC_OK &&
        (rc = pc_rps_register(&o, x.timeout, &svc)) == PC_OK)
        rc = pc_rps_monitor(svc, mon);
    if ((rc = ex_serve(&x, rc, SERVICE, &svc)) == PC_OK)
        printf("monitor: %d calls: %d normal, %d failed (%d errors, %d "
               "killed, %d timed out, %d other)\n",
               normal + errors + killed + timedout + other, normal,
               errors + killed + timedout + other, errors, killed, timedout,
               other);
    return rc == PC_OK ? 0 : 1;
}
