/* registry/server_restart.c — the registry server after a restart: the
 * members of its log are unconfirmed until they show they are alive.
 *
 * After a restart the members of the log are unconfirmed. A probe task per
 * member connects to its endpoint and monitors its agent with the server
 * as the watcher: a connection that fails, another node at the endpoint, or
 * a DOWN (no such agent: an old start; the node declared down) drops it at
 * once. A JOIN of the same start confirms it and replaces its names with
 * the JOIN's list (server.c). Whatever is still unconfirmed `grace` seconds
 * after the start is dropped, unless its chunked JOIN is still coming in.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/monitor.h"
#include "picos/node.h"
#include "picos/task.h"
#include "picos/transport.h"

#include "server_int.h"

typedef struct probe_arg {
    pc_ref server, agent;
    uint64_t node, incarnation;
    uint32_t gen;
    double timeout;
    char endpoint[PC_ENDPOINT_MAX + 1];
} probe_arg;

typedef struct probe_res {
    uint64_t node, incarnation, found;
    uint32_t gen;
    int32_t rc;
} probe_res;

/* Connect to a member of the log and monitor its agent, with the server
 * as the watcher; tell the server how it went. */
static pc_msg *
probe(void *arg)
{
    probe_arg *a = arg;
    probe_res r = {a->node, a->incarnation, 0, a->gen, 0};

    r.rc = pc_node_connect(a->endpoint, a->timeout, &r.found);
    if (r.rc == PC_OK && r.found == a->node)
        r.rc = pc_monitor(a->server, a->agent);
    pc_send_data(a->server, MSG_PROBE, &r, sizeof r);
    free(a);
    return NULL;
}

void
pc__reg_probes_start(reg_server *v)
{
    for (size_t i = 0; i < v->st.mcap; i++)
        for (reg_member *m = v->st.mb[i]; m; m = m->hnext) {
            pc_spawn_opts o = {.worker = PC_WORKER_ANY,
                               .flags = PC_TASK_DAEMON,
                               .name = "picos.registry.probe"};
            probe_arg *a;
            if (m->confirmed || !m->endpoint[0] || !(a = calloc(1, sizeof *a)))
                continue;
            a->server = v->task;
            a->agent = m->agent;
            a->node = m->node;
            a->incarnation = m->incarnation;
            a->gen = m->probe;
            a->timeout = v->probe_timeout;
            snprintf(a->endpoint, sizeof a->endpoint, "%s", m->endpoint);
            if (pc_spawn(probe, a, &o, NULL) != PC_OK)
                free(a);
        }
}

void
pc__reg_on_probe(reg_server *v, const pc_msg *m)
{
    size_t len = 0;
    const void *d = pc_msg_data(m, &len);
    probe_res r;
    reg_member *mb;
    char why[160];

    if (len != sizeof r)
        return;
    memcpy(&r, d, sizeof r);
    if (!(mb = pc__reg_member(&v->st, r.node)) ||
        mb->incarnation != r.incarnation || mb->probe != r.gen || mb->confirmed)
        return;
    if (r.rc == PC_OK && r.found == r.node) {
        mb->monitored = true; /* a DOWN tells the rest */
        return;
    }
    if (r.rc == PC_OK)
        snprintf(why, sizeof why,
                 "another node listens at %s (it started again)", mb->endpoint);
    else
        snprintf(why, sizeof why, "unreachable at %s after the restart: %s",
                 mb->endpoint, pc_strerror(r.rc));
    pc__reg_down(&v->st, mb, why);
}

/* Drop the members of the log that did not come back within grace. */
void
pc__reg_grace_pass(reg_server *v)
{
    reg_member **late;
    size_t n = 0;

    if (!v->st.unconfirmed || pc_now() < v->grace_deadline)
        return;
    if (!(late = calloc(v->st.unconfirmed, sizeof *late)))
        return;
    for (size_t i = 0; i < v->st.mcap; i++)
        for (reg_member *m = v->st.mb[i]; m; m = m->hnext)
            if (!m->confirmed && n < v->st.unconfirmed &&
                !pc__reg_pjoin_live(v, m))
                late[n++] = m;
    for (size_t i = 0; i < n; i++)
        pc__reg_down(&v->st, late[i],
                     "did not join again within the grace after the "
                     "registry restarted");
    free(late);
}
