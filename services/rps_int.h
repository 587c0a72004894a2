/* services/rps_int.h — what rps_server.c and rps_client.c share: the wire's
 * message type names and the helpers that pack and send them. */
#ifndef PICOS_SERVICES_RPS_INT_H
#define PICOS_SERVICES_RPS_INT_H

#include <stdbool.h>

#include <protobuf-c/protobuf-c.h>

#include "picos/rps.h"

#include "rps.pb-c.h"

#define RPS_T_CALL "picos.v1.RpsCall"
#define RPS_T_ACCEPTED "picos.v1.RpsAccepted"
#define RPS_T_REFUSED "picos.v1.RpsRefused"
#define RPS_T_DONE "picos.v1.RpsDone"
#define RPS_T_DESCRIBE "picos.v1.RpsDescribe"
#define RPS_T_INFO "picos.v1.RpsInfo"
#define RPS_T_SCHEMA "picos.v1.RpsSchema"

/* Pack protobuf-c message pb and send it to `to` as type `type`. */
pc_err pc__rps_send_pb(pc_ref to, const char *type, const ProtobufCMessage *pb);

/* Send `to` a PC_MSG_RPS_OUTCOME (id, rc, error text or NULL). */
pc_err pc__rps_send_outcome(pc_ref to, uint64_t id, pc_err rc,
                            const char *error);

/* Build the RpsSchema of a typed service (services/rps_schema.c): the
 * request and response types (either may be NULL) and every message and
 * enum type reachable from them, each once. Returns PC_OK and *out (a
 * heap-allocated Picos__V1__RpsSchema, free with pc__rps_schema_free()),
 * PC_EINVAL (both NULL), PC_ENOMEM. */
pc_err pc__rps_schema_build(const ProtobufCMessageDescriptor *req,
                            const ProtobufCMessageDescriptor *resp,
                            Picos__V1__RpsSchema **out);
void pc__rps_schema_free(Picos__V1__RpsSchema **s);

/* Why data (len bytes) does not unpack as d (services/rps_why.c): true and
 * one line naming the first defect into out, or false (out "") when the
 * walk finds none (protobuf-c failed for another reason: out of memory). */
bool pc__rps_why(const ProtobufCMessageDescriptor *d, const uint8_t *data,
                 size_t len, char *out, size_t size);

#endif
