/* services/compute_int.h — what the compute node (compute_node*.c), the
 * compute client (compute_client*.c) and the status sampler share: the
 * wire's message type names (proto/compute.proto) and the node's counters
 * behind pc_compute_node_stats_get(). */
#ifndef PICOS_SERVICES_COMPUTE_INT_H
#define PICOS_SERVICES_COMPUTE_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "picos/compute.h"
#include "picos/stats.h"
#include "picos/task.h"

#include "compute.pb-c.h"

#define CP_T_RESERVE "picos.v1.ComputeReserve"
#define CP_T_REFUSED "picos.v1.ComputeRefused"
#define CP_T_RESERVED "picos.v1.ComputeReserved"
#define CP_T_CHUNK "picos.v1.ComputeChunk"
#define CP_T_CHUNK_ACK "picos.v1.ComputeChunkAck"
#define CP_T_READY "picos.v1.ComputeReady"
#define CP_T_FAILED "picos.v1.ComputeFailed"
#define CP_T_SUBMIT "picos.v1.ComputeSubmit"
#define CP_T_CANCEL "picos.v1.ComputeCancel"
#define CP_T_TO_JOB "picos.v1.ComputeToJob"
#define CP_T_CONTROL "picos.v1.ComputeControl"
#define CP_T_EVENTS "picos.v1.ComputeEvents"
#define CP_T_FROM_JOB "picos.v1.ComputeFromJob"
#define CP_T_NODE_EVENT "picos.v1.ComputeNodeEvent"

/* Upload: the largest ComputeChunk.data, and chunks unacknowledged. */
#define CP_CHUNK_MAX (256u * 1024u)
#define CP_CHUNK_WINDOW 4
/* A whole upload (library and data files), and its number of files. */
#define CP_UPLOAD_MAX (256ull << 20)
#define CP_FILES_MAX 64
/* A job's files in (or out), all together. */
#define CP_JOB_FILES_MAX (768u * 1024u)
/* A worker frame (node <-> worker, proto WorkerFrame), length prefix not
 * counted: a job's input/result/files fit with room to spare. */
#define CP_WFRAME_MAX ((1u << 20) + (64u << 10))

/* The node's counters (services/compute_stats.c). The compute server keeps
 * them; pc_compute_node_stats_get() reads them. */
typedef struct pc__compute_counters {
    atomic_bool enabled, suspended;
    atomic_uint cpus, cpus_reserved, sessions, workers, workers_busy,
        jobs_queued;
    atomic_ullong jobs_done, jobs_failed, workers_lost;
    /* pc_compute_node_suspend(): set by the compute server at its start
     * (called on any thread; returns PC_OK or an error). NULL: none. */
    pc_err (*suspend)(bool on);
} pc__compute_counters;

extern pc__compute_counters pc__compute_stats;

/* ---- the wire's helpers (compute_wire.c) ---------------------------------- */

/* pb (a ProtobufCMessage *) packed into a new message of type `type`. */
pc_err pc__cp_msg(const char *type, const void *pb, pc_msg **out);
/* pb packed and sent as a message of type `type` to `to`. */
pc_err pc__cp_send(pc_ref to, const char *type, const void *pb);
/* m's payload unpacked as a message of desc (NULL: it does not parse);
 * freed with pc__cp_free() (NULL is fine). */
void *pc__cp_unpack(const ProtobufCMessageDescriptor *desc, const pc_msg *m);
void pc__cp_free(void *pb);

#endif
