/* services/compute_wire.c — the small wire helpers both sides of
 * computations use (the compute node's tasks and the client's agent):
 * a protobuf message of proto/compute.proto packed into a picos message,
 * sent, or unpacked from one.
 *
 * protobuf-c's generic calls (protobuf_c_message_pack, _unpack with a
 * descriptor) serve every message type, so each handler is one call and
 * one free: an unpack bounds nothing itself, but a payload is at most one
 * link message, and protobuf-c checks every length against the bytes it
 * has before it allocates.
 */
#include <stdlib.h>

#include <protobuf-c/protobuf-c.h>

#include "compute_int.h"

pc_err
pc__cp_msg(const char *type, const void *pb, pc_msg **out)
{
    const ProtobufCMessage *m = pb;
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len ? len : 1);
    pc_err rc;

    *out = NULL;
    if (!buf)
        return PC_ENOMEM;
    protobuf_c_message_pack(m, buf);
    rc = pc_msg_new(out, type, buf, len);
    free(buf);
    return rc;
}

pc_err
pc__cp_send(pc_ref to, const char *type, const void *pb)
{
    pc_msg *m = NULL;
    pc_err rc = pc__cp_msg(type, pb, &m);

    if (rc == PC_OK && (rc = pc_send(to, &m)) != PC_OK)
        pc_msg_free(&m);
    return rc;
}

void *
pc__cp_unpack(const ProtobufCMessageDescriptor *desc, const pc_msg *m)
{
    size_t len = 0;
    const uint8_t *d = pc_msg_data(m, &len);

    return protobuf_c_message_unpack(desc, NULL, len, d);
}

void
pc__cp_free(void *pb)
{
    if (pb)
        protobuf_c_message_free_unpacked(pb, NULL);
}
