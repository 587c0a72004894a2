/* picos/msg.h — messages: refcounted, immutable once sent.
 *
 * A message is a type name, a byte payload and the ref of its sender (see
 * pc_msg_sender()). It may instead (or also) carry a protobuf-c message, kept
 * unpacked while it stays in the process and packed only when its bytes are
 * asked for (pc_msg_data(), or when it leaves the process).
 *
 * Ownership: pc_msg_new*() hands the caller one reference. Every call that
 * takes a message as `pc_msg **m` to send it (pc_send, pc_send_timeout,
 * pc_deliver, pc_chan_send, pc_chan_deliver, a transport's ops) follows one
 * rule, "consumed only on success": on PC_OK it takes the caller's reference
 * and sets *m to NULL; on ANY other return *m is unchanged and still the
 * caller's, to free or to send again — whether the failure was found before the
 * message left or reported back by its target. (An acknowledged send keeps a
 * reference of its own in flight for this, so after PC_ETIMEDOUT the message
 * may still arrive: sending *m again may deliver it twice.) A failure found
 * only after a fire-and-forget send returned PC_OK (pc_send across workers)
 * can't be reported: the message is dropped there and counted. (When a send
 * must give a shared message a new sender, *m may come back as a new header
 * over the same payload.) Fan-out (channels)
 * takes more references with pc_msg_ref(); nothing is ever copied. Once a
 * message has been sent nobody may change it, which is why the accessors
 * return const data.
 */
#ifndef PICOS_MSG_H
#define PICOS_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "picos/err.h"
#include "picos/ref.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pc_msg pc_msg;

/* Longest type name, not counting the NUL. */
#define PC_MSG_TYPE_MAX 255

/* New message of `type` (NULL means "") with a copy of `len` bytes at `data`
 * (data may be NULL when len is 0). Its sender is the calling task or light
 * actor, or the nil ref outside them, until it is sent. Returns PC_OK and *out,
 * PC_EINVAL (type longer than PC_MSG_TYPE_MAX), or PC_ENOMEM. Any thread. */
pc_err pc_msg_new(pc_msg **out, const char *type, const void *data, size_t len);

/* As pc_msg_new() for a NUL-terminated string payload (the NUL is not
 * stored; pc_msg_str() gives it back terminated). */
pc_err pc_msg_new_str(pc_msg **out, const char *type, const char *text);

/* New message that carries a protobuf-c message (`pb` is a
 * `ProtobufCMessage *`, passed as void * so this header needs no protobuf-c).
 * The message takes ownership of `pb` on success and frees it with
 * protobuf_c_message_free_unpacked(pb, NULL) with the last reference, so it
 * must have been built by protobuf-c's unpack or with malloc'd fields as the
 * unpack allocator would. The type name is the protobuf full name
 * ("picos.Ping"). Any thread. */
pc_err pc_msg_new_pb(pc_msg **out, void *pb);

/* One more reference; returns m. Any thread. */
pc_msg *pc_msg_ref(pc_msg *m);

/* Drop the caller's reference and set *m to NULL; frees the message with the
 * last reference. NULL and *m == NULL are no-ops. Any thread. */
void pc_msg_free(pc_msg **m);

/* The type name; never NULL. */
const char *pc_msg_type(const pc_msg *m);

/* True when the type name equals `type`. */
bool pc_msg_is(const pc_msg *m, const char *type);

/* The payload and its length. For a protobuf message the payload is its
 * packed form, made on the first call (thread-safe) and kept. */
const void *pc_msg_data(const pc_msg *m, size_t *len);

/* The payload as a NUL-terminated string (every payload is stored with a
 * NUL after it, not counted in the length). */
const char *pc_msg_str(const pc_msg *m);

/* The attached protobuf-c message (`ProtobufCMessage *`) or NULL. Read only. */
const void *pc_msg_pb(const pc_msg *m);

/* Who sent the message to you, as Akka's sender(): the task or light actor
 * whose pc_send / pc_deliver put it in your mailbox — the same for a
 * message that came from another node (the remote task that sent it). Each
 * send from a task names that task, so a forwarded message names the
 * forwarder, and an echo that hands a message back names the echo. A send
 * from outside tasks (main(), a pool thread) keeps the message's previous
 * sender (its creator's ref, nil for one made outside tasks). Messages the
 * runtime sends name the proc they are about: DOWN/EXIT the proc that ended,
 * a hot-swap offer the task that asked; channel fan-out keeps the
 * publisher. A message shared by several holders is copied (its payload is
 * not) when a send must change its sender. */
pc_ref pc_msg_sender(const pc_msg *m);

#ifdef __cplusplus
}
#endif
#endif
