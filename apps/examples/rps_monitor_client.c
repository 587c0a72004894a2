/* rps_monitor_client.c — calls that end in every way, and a monitor that
 * counts them (pycos's rps_monitor_client.py).
 *
 *     picos-rps-monitor-client [--registry EP[,EP]] [--secret-file FILE]
 *                              [--timeout S] [-n N]
 *
 * The client node finds the service "rps_server" (picos-rps-monitor-server)
 * and makes N calls (default 6) and two more. Call I asks for B = 0.1 s of
 * work, except every 3rd, which asks for B = 0, an invalid invocation that
 * the service fails on purpose. After each call the client sends the call's
 * task a message, "msg:I" — pc_rps_call_task() is the task's ref, on the
 * other node — which the task returns as its result. Call N+1 asks for 30 s
 * and the client terminates its task (pc_task_terminate() on the remote
 * ref): killed. Call N+2 asks for 30 s with a deadline of 1 s: the service
 * stops it at the deadline, timed out.
 *
 * pc_rps_client_monitor() sends the monitor task (pycos's monitor_proc) the
 * outcome of every call made through the handle; once all N+2 are in, it
 * prints "client monitor: N+2 calls: K normal, F failed (E errors, 1
 * killed, 1 timed out)". The client task meanwhile collects each call with
 * pc_rps_finish() and prints it, "call I (...): normal, 'msg:I'" or
 * "call I (...): failed: <why>". The service's own monitor (in the server)
 * counts the same calls.
 *
 * Exit status 0 when every call ended as intended — the valid ones
 * normally with their message, the others with their error, killed, timed
 * out — and the monitor counted exactly that; 1 with one line on stderr
 * otherwise; 2 for bad options. --timeout S (default 5) bounds the lookup,
 * the calls' deadlines and the waits. The secret, the registry and the
 * errors are as in every cluster example (cluster_ex.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/picos.h"
#include "picos/rps.h"

#include "cluster_ex.h"

#define SERVICE "rps_server"

static ex_cluster x = {
    .prog = "picos-rps-monitor-client",
    .usage = "[options]: calls '" SERVICE "' n + 2 times",
    .options = "  -n N                calls that run to their end, every 3rd "
               "failing (default 6)\n",
};
static int n = 6;
static bool calls_ok, counts_ok; /* the tasks' verdicts, read after the node */

/* How call I is meant to end. */
enum { NORMAL, ERROR, KILLED, TIMED_OUT };

static int
intent(int i)
{
    return i == n + 1   ? KILLED
           : i == n + 2 ? TIMED_OUT
           : i % 3      ? NORMAL
                        : ERROR;
}

/* pycos's monitor_proc(n): counts the outcomes of all n + 2 calls. */
static pc_msg *
monitor(void *arg)
{
    int seen[4] = {0}, want[4] = {0}, other = 0;
    pc_rps_outcome o;
    pc_msg *m;

    (void)arg;
    for (int i = 1; i <= n + 2; i++)
        want[intent(i)]++;
    for (int done = 0; done < n + 2;) {
        /* the calls' deadlines bound every wait */
        if (pc_recv(&m, x.timeout + 2) != PC_OK) {
            ex_say(&x, "monitor: %d of %d outcomes came", done, n + 2);
            return NULL;
        }
        if (pc_rps_outcome_parse(m, &o) == PC_OK) {
            done++;
            if (o.rc == PC_OK)
                seen[NORMAL]++;
            else if (o.rc == PC_EFAILED)
                seen[ERROR]++;
            else if (o.rc == PC_EKILLED)
                seen[KILLED]++;
            else if (o.rc == PC_ETIMEDOUT)
                seen[TIMED_OUT]++;
            else
                other++;
        }
        pc_msg_free(&m);
    }
    printf("client monitor: %d calls: %d normal, %d failed (%d errors, %d "
           "killed, %d timed out, %d other)\n",
           n + 2, seen[NORMAL], n + 2 - seen[NORMAL], seen[ERROR], seen[KILLED],
           seen[TIMED_OUT], other);
    fflush(stdout);
    counts_ok = !memcmp(seen, want, sizeof seen) && !other;
    if (!counts_ok)
        ex_say(&x,
               "monitor: expected %d normal, %d errors, 1 killed, 1 "
               "timed out",
               want[NORMAL], want[ERROR]);
    return NULL;
}

/* pycos: rtask = yield rps('test%s' % i, b=i); rtask.send('msg:%s' % i) */
static struct pc_rps_call *
call(pc_rps_client *c, int i)
{
    const char *b = intent(i) == NORMAL  ? "0.1"
                    : intent(i) == ERROR ? "0"
                                         : "30";
    double deadline = intent(i) == TIMED_OUT ? 1.0 : x.timeout;
    struct pc_rps_call *k = NULL;
    pc_msg *req = NULL, *m = NULL;
    char text[32];
    pc_err rc;

    if ((rc = pc_msg_new_str(&req, "text", b)) == PC_OK &&
        (rc = pc_rps_call(c, &req, deadline, &k)) != PC_OK)
        pc_msg_free(&req); /* a failed call leaves the request ours */
    if (rc != PC_OK) {
        ex_say(&x, "call %d not accepted: %s", i, pc_strerror(rc));
        return NULL;
    }
    /* The call's task runs on the service node: message it directly. */
    snprintf(text, sizeof text, "msg:%d", i);
    if ((rc = pc_msg_new_str(&m, "text", text)) == PC_OK &&
        (rc = pc_send(pc_rps_call_task(k), &m)) != PC_OK)
        pc_msg_free(&m);
    if (rc == PC_OK && intent(i) == KILLED)
        rc = pc_task_terminate(pc_rps_call_task(k));
    if (rc != PC_OK)
        ex_say(&x, "call %d: talking to its task: %s", i, pc_strerror(rc));
    return k;
}

/* Collect call i and check it ended as intended. */
static bool
finish(struct pc_rps_call *k, int i)
{
    static const char *const how[] = {"b=0.1", "b=0", "killed by the client",
                                      "deadline 1 s"};
    static const pc_err want[] = {PC_OK, PC_EFAILED, PC_EKILLED, PC_ETIMEDOUT};
    char text[32];
    pc_msg *v = NULL;
    pc_err rc = pc_rps_finish(k, x.timeout + 2, &v);
    bool ok = rc == want[intent(i)];

    snprintf(text, sizeof text, "msg:%d", i);
    if (rc == PC_OK) {
        ok = ok && v && !strcmp(pc_msg_str(v), text);
        printf("call %d (%s): normal, '%s'\n", i, how[intent(i)],
               v ? pc_msg_str(v) : "");
    } else {
        printf("call %d (%s): failed: %s\n", i, how[intent(i)],
               rc == PC_EFAILED     ? pc_msg_str(v)
               : rc == PC_EKILLED   ? "killed"
               : rc == PC_ETIMEDOUT ? "past its deadline, stopped"
                                    : pc_strerror(rc));
    }
    if (!ok)
        ex_say(&x, "call %d did not end as intended (%s)", i, pc_err_name(rc));
    pc_msg_free(&v);
    return ok;
}

static pc_msg *
client(void *arg)
{
    struct pc_rps_call **calls = calloc((size_t)n + 2, sizeof *calls);
    pc_rps_client *c = NULL;
    pc_ref mon;
    pc_err rc;
    bool ok = true;

    (void)arg;
    if (!calls)
        return NULL;
    if ((rc = pc_rps_locate(SERVICE, x.timeout, &c)) != PC_OK) {
        ex_say(&x, "no service " SERVICE " in the cluster of %s: %s",
               ex_registry(&x), pc_strerror(rc));
        free(calls);
        return NULL;
    }
    /* pycos: rps.monitor(Task(monitor_proc, n)) */
    if ((rc = pc_spawn(monitor, NULL, NULL, &mon)) != PC_OK ||
        (rc = pc_rps_client_monitor(c, mon)) != PC_OK) {
        ex_say(&x, "starting the monitor: %s", pc_strerror(rc));
        pc_node_stop();
        free(calls);
        return NULL;
    }
    for (int i = 1; i <= n + 2; i++)
        ok = (calls[i - 1] = call(c, i)) && ok;
    for (int i = 1; i <= n + 2; i++) {
        if (calls[i - 1])
            ok = finish(calls[i - 1], i) && ok;
        pc_rps_call_free(&calls[i - 1]);
    }
    fflush(stdout);
    calls_ok = ok;
    pc_rps_client_free(&c);
    free(calls);
    return NULL;
}

static int
option(const char *a, const char *v)
{
    return v && !strcmp(a, "-n") && ex_int(v, 0, 1000, &n) ? 2 : 0;
}

int
main(int argc, char **argv)
{
    int st;

    ex_args(&x, argc, argv, option);
    if ((st = ex_client(&x, client)))
        return st;
    return calls_ok && counts_ok ? 0 : 1;
}
