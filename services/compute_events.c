/* services/compute_events.c — what the compute client's agent sends to
 * the caller's tasks, encoded and parsed: status events
 * (PC_MSG_COMPUTE_STATUS) and job messages (PC_MSG_COMPUTE_JOB_MSG); and
 * ComputeWhy as pc_job_why.
 *
 * A status event is a fixed little-endian layout, 25 bytes then the node
 * name and the text (both without NUL), so it may go to a task on another
 * node as well:
 *
 *     0  u8   version (1)        5  i32  worker      17 u64 job
 *     1  u8   kind               9  i32  attempt     25 node_len bytes
 *     2  u8   why               13  i32  n              text_len bytes
 *     3  u8   node_len (< 64)
 *     4  u8   text_len (< 192)
 *
 * The parser checks the version, each length against its field and the
 * total against the payload, and the kind against the enum: anything else
 * is PC_EINVAL. A job message is the job's id (8 bytes, little-endian) and
 * the job's bytes.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "compute_client_int.h"
#include "compute_int.h"

#define CE_VERSION 1
#define CE_HEAD 25

/* v's n low bytes at p, little-endian. */
static void
put_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* The n bytes at p as a little-endian number. */
static uint64_t
get_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static bool
kind_known(unsigned k)
{
    return (k >= PC_CE_NODE_INITIALIZED && k <= PC_CE_NODE_REFUSED) ||
           (k >= PC_CE_WORKER_INITIALIZED && k <= PC_CE_WORKER_LOST) ||
           (k >= PC_CE_JOB_STARTED && k <= PC_CE_JOB_ABANDONED) ||
           k == PC_CE_CLOSED;
}

pc_err
pc__ce_msg(const pc_compute_event *e, pc_msg **out)
{
    unsigned char buf[CE_HEAD + sizeof e->node + sizeof e->text];
    size_t nl = strnlen(e->node, sizeof e->node - 1),
           tl = strnlen(e->text, sizeof e->text - 1);

    buf[0] = CE_VERSION;
    buf[1] = (unsigned char)e->kind;
    buf[2] = (unsigned char)e->why;
    buf[3] = (unsigned char)nl;
    buf[4] = (unsigned char)tl;
    put_le(buf + 5, (uint32_t)e->worker, 4);
    put_le(buf + 9, (uint32_t)e->attempt, 4);
    put_le(buf + 13, (uint32_t)e->n, 4);
    put_le(buf + 17, e->job, 8);
    memcpy(buf + CE_HEAD, e->node, nl);
    memcpy(buf + CE_HEAD + nl, e->text, tl);
    return pc_msg_new(out, PC_MSG_COMPUTE_STATUS, buf, CE_HEAD + nl + tl);
}

pc_err
pc_compute_event_parse(const pc_msg *m, pc_compute_event *out)
{
    const unsigned char *p;
    size_t len = 0, nl, tl;

    if (!m || !out || !pc_msg_is(m, PC_MSG_COMPUTE_STATUS))
        return PC_EINVAL;
    p = pc_msg_data(m, &len);
    if (len < CE_HEAD || p[0] != CE_VERSION || !kind_known(p[1]) ||
        p[2] > PC_JOB_REFUSED)
        return PC_EINVAL;
    nl = p[3];
    tl = p[4];
    if (nl >= sizeof out->node || tl >= sizeof out->text ||
        len != CE_HEAD + nl + tl)
        return PC_EINVAL;
    memset(out, 0, sizeof *out);
    out->kind = (pc_compute_event_kind)p[1];
    out->why = (pc_job_why)p[2];
    out->worker = (int)(uint32_t)get_le(p + 5, 4);
    out->attempt = (int)(uint32_t)get_le(p + 9, 4);
    out->n = (int)(uint32_t)get_le(p + 13, 4);
    out->job = get_le(p + 17, 8);
    memcpy(out->node, p + CE_HEAD, nl);
    memcpy(out->text, p + CE_HEAD + nl, tl);
    return PC_OK;
}

const char *
pc_compute_event_str(pc_compute_event_kind kind)
{
    switch (kind) {
    case PC_CE_NODE_INITIALIZED:
        return "node initialized";
    case PC_CE_NODE_SUSPENDED:
        return "node suspended";
    case PC_CE_NODE_RESUMED:
        return "node resumed";
    case PC_CE_NODE_CLOSED:
        return "node closed";
    case PC_CE_NODE_LOST:
        return "node lost";
    case PC_CE_NODE_REFUSED:
        return "node refused";
    case PC_CE_WORKER_INITIALIZED:
        return "worker initialized";
    case PC_CE_WORKER_CLOSED:
        return "worker closed";
    case PC_CE_WORKER_LOST:
        return "worker lost";
    case PC_CE_JOB_STARTED:
        return "job started";
    case PC_CE_JOB_FINISHED:
        return "job finished";
    case PC_CE_JOB_RETRIED:
        return "job retried";
    case PC_CE_JOB_ABANDONED:
        return "job abandoned";
    case PC_CE_CLOSED:
        return "closed";
    }
    return "unknown";
}

const char *
pc_job_why_str(pc_job_why why)
{
    switch (why) {
    case PC_JOB_OK:
        return "ok";
    case PC_JOB_FAILED:
        return "failed";
    case PC_JOB_CRASHED:
        return "crashed";
    case PC_JOB_LOST:
        return "lost";
    case PC_JOB_TIMEDOUT:
        return "timed out";
    case PC_JOB_CANCELLED:
        return "cancelled";
    case PC_JOB_LIMIT:
        return "limit";
    case PC_JOB_REFUSED:
        return "refused";
    }
    return "unknown";
}

pc_err
pc__compute_job_msg_new(uint64_t id, const void *data, size_t len, pc_msg **out)
{
    unsigned char *buf = malloc(8 + len);
    pc_err rc;

    if (!buf)
        return PC_ENOMEM;
    put_le(buf, id, 8);
    if (len)
        memcpy(buf + 8, data, len);
    rc = pc_msg_new(out, PC_MSG_COMPUTE_JOB_MSG, buf, 8 + len);
    free(buf);
    return rc;
}

pc_err
pc_compute_job_msg_parse(const pc_msg *m, uint64_t *id, const void **data,
                         size_t *len)
{
    const unsigned char *p;
    size_t n = 0;

    if (!m || !pc_msg_is(m, PC_MSG_COMPUTE_JOB_MSG))
        return PC_EINVAL;
    p = pc_msg_data(m, &n);
    if (n < 8)
        return PC_EINVAL;
    if (id)
        *id = get_le(p, 8);
    if (data)
        *data = p + 8;
    if (len)
        *len = n - 8;
    return PC_OK;
}

pc_job_why
pc__cp_why(int wire_why)
{
    switch (wire_why) {
    case PICOS__V1__COMPUTE_WHY__WHY_OK:
        return PC_JOB_OK;
    case PICOS__V1__COMPUTE_WHY__WHY_FAILED:
        return PC_JOB_FAILED;
    case PICOS__V1__COMPUTE_WHY__WHY_CRASHED:
        return PC_JOB_CRASHED;
    case PICOS__V1__COMPUTE_WHY__WHY_LOST:
        return PC_JOB_LOST;
    case PICOS__V1__COMPUTE_WHY__WHY_TIMEDOUT:
        return PC_JOB_TIMEDOUT;
    case PICOS__V1__COMPUTE_WHY__WHY_CANCELLED:
        return PC_JOB_CANCELLED;
    case PICOS__V1__COMPUTE_WHY__WHY_LIMIT:
        return PC_JOB_LIMIT;
    default:
        return PC_JOB_REFUSED;
    }
}
