/* registry/agent_status.c — the agent's monitoring side: the NodeStatus it
 * sends every status interval, and the ServiceControl it obeys
 * (docs/monitoring.md).
 *
 * The status goes to every registry joined (state UP: the registry takes a
 * status only from a member it confirmed), as one plain message with no
 * reply. pc_send() to a remote ref never blocks: a link whose queue is
 * full refuses it (PC_EFULL) and that sample is simply lost — the next one
 * comes an interval later, and a status is worth less than the agent's
 * other work. Ticks are kept on a fixed grid (due += interval), so a slow
 * wake-up does not drift the samples; after a long stall the grid restarts
 * from now instead of sending a burst.
 *
 * A ServiceControl (the dashboard's suspend/resume) is obeyed only when it
 * comes from a task on the node of a registry this node joined: anyone
 * else who can send to the agent is ignored (one DEBUG line). The node-wide
 * one (service "") also suspends or resumes the node's computations
 * (pc_compute_node_suspend: running jobs finish, no new ones start); a
 * node that takes no computations answers PC_ENOENT, which is no error.
 */
#include <math.h>
#include <stdlib.h>

#include "picos/log.h"
#include "picos/node.h"
#include "picos/rps.h"
#include "picos/stats.h"
#include "picos/task.h"

#include "agent_int.h"
#include "status.h" /* services/ */
#include "status.pb-c.h"

#define MSG_STATUS "picos.v1.NodeStatus"

void
pc__rc_status_init(rc_agent *a)
{
    double iv = a->s->status_interval;

    a->status_at = INFINITY;
    if (!(iv > 0))
        return;
    if (pc__status_sampler_new(a->s->name, a->s->host, a->s->status_dir, iv,
                               &a->sampler) != PC_OK) {
        PC_LOG_WARN("registry", "no memory for the status sampler: this node "
                                "reports no status");
        return;
    }
    a->status_at = pc_now() + iv;
}

void
pc__rc_status_fini(rc_agent *a)
{
    pc__status_sampler_free(&a->sampler);
}

void
pc__rc_status_tick(rc_agent *a, double now)
{
    double iv = a->s->status_interval;
    uint8_t *buf = NULL;
    size_t len = 0;

    if (!a->sampler || now < a->status_at)
        return;
    a->status_at += iv;
    if (a->status_at <= now)
        a->status_at = now + iv;
    if (pc__status_sample(a->sampler, &buf, &len) != PC_OK)
        return;
    for (int i = 0; i < a->nregs; i++) {
        pc_msg *m = NULL;
        if (a->regs[i].state != R_UP)
            continue;
        if (pc_msg_new(&m, MSG_STATUS, buf, len) != PC_OK)
            break;
        if (pc_send(a->regs[i].server, &m) != PC_OK)
            pc_msg_free(&m);
    }
    free(buf);
}

void
pc__rc_on_service_control(rc_agent *a, const pc_msg *m)
{
    pc_ref from = pc_msg_sender(m);
    const void *data;
    size_t len = 0;
    Picos__V1__ServiceControl *sc;
    int i = pc__rc_reg_of(a, from.node);
    pc_err rc;

    if (i < 0 || a->regs[i].state != R_UP) {
        PC_LOG_DEBUG("registry",
                     "a ServiceControl from %016llx (not a "
                     "registry joined) ignored",
                     (unsigned long long)from.node);
        return;
    }
    data = pc_msg_data(m, &len);
    if (!(sc = picos__v1__service_control__unpack(NULL, len, data))) {
        PC_LOG_WARN("registry", "an undecodable ServiceControl from %s dropped",
                    a->regs[i].ep);
        return;
    }
    rc = pc_rps_suspend_name(sc->service, sc->suspend);
    PC_LOG_INFO("registry", "%s: %s %s%s%s", a->regs[i].ep,
                sc->suspend ? "suspend" : "resume",
                sc->service[0] ? "service " : "every service", sc->service,
                rc == PC_OK ? "" : ": no such service here");
    if (!sc->service[0]) {
        pc_err crc = pc_compute_node_suspend(sc->suspend);
        if (crc == PC_OK)
            PC_LOG_INFO("registry", "%s: %s computations", a->regs[i].ep,
                        sc->suspend ? "suspend" : "resume");
        else if (crc != PC_ENOENT)
            PC_LOG_WARN("registry", "%s: %s computations: %s", a->regs[i].ep,
                        sc->suspend ? "suspend" : "resume", pc_strerror(crc));
    }
    picos__v1__service_control__free_unpacked(sc, NULL);
}
