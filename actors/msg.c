/* actors/msg.c — refcounted immutable messages.
 *
 * A message is one allocation: a 64-byte header, then the type name and
 * the payload, each followed by a NUL. A payload that isn't the message's
 * own (a transport's receive buffer, the original a stamped copy borrows
 * from) is named by `data` instead, and who frees it (pc__msg_foreign) sits
 * in the inline room before the type, so only those messages pay for it.
 * The reference count is the only field that changes after creation.
 * pc_msg_free() skips the atomic decrement when the count is 1 (the caller is
 * the only owner, nobody can race it), which makes the common send-receive-free
 * path free of atomic RMW operations.
 *
 * Small messages (type and payload within PC__MSG_SMALL_ROOM bytes) come in
 * two sizes, tiny ones (PC__MSG_TINY_ROOM: a short type and a word or two, an
 * empty "go") 48 bytes smaller, from the worker's block cache (cache.c),
 * which takes them back from whichever thread frees them, so a busy
 * mailbox, even across workers, doesn't turn into malloc work.
 *
 * Making one is inline (inline.h), so pc_send_data() makes and sends its
 * message without a call between.
 *
 * A protobuf-c message rides along unpacked; its packed bytes are made on
 * the first pc_msg_data() call and published with a compare-exchange, so two
 * workers asking at once both get the same buffer and one copy is dropped.
 */
#include <stdlib.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "internal.h"

pc_err
pc_msg_new(pc_msg **out, const char *type, const void *data, size_t len)
{
    return pc__msg_new(out, type, data, len);
}

pc_err
pc_msg_new_str(pc_msg **out, const char *type, const char *text)
{
    if (!text)
        return PC_EINVAL;
    return pc_msg_new(out, type, text, strlen(text));
}

pc_err
pc_msg_new_pb(pc_msg **out, void *pbv)
{
    ProtobufCMessage *pb = pbv;
    const char *type;
    pc_msg *m;

    if (!out || !pb || !pb->descriptor)
        return PC_EINVAL;
    *out = NULL;
    type = pb->descriptor->name;
    if (strlen(type) > PC_MSG_TYPE_MAX)
        return PC_EINVAL;
    if (!(m = pc__msg_alloc("", 0, 0, 0)))
        return PC_ENOMEM;
    m->pb = pb; /* its type is the descriptor's name (static data) */
    atomic_init(&m->packed, NULL);
    *out = m;
    return PC_OK;
}

pc_err
pc_msg_new_remote(pc_msg **out, pc_ref sender, const char *type, void *data,
                  size_t len, void (*free_fn)(void *data, void *hint),
                  void *hint)
{
    size_t tlen;
    pc_msg *m;

    if (!out || (!data && len))
        return PC_EINVAL;
    *out = NULL;
    if (data && ((const char *)data)[len] != '\0')
        return PC_EINVAL; /* pc_msg_str() and pc_down_parse() rely on it */
    if (!type)
        type = "";
    tlen = strnlen(type, PC_MSG_TYPE_MAX + 1);
    if (tlen > PC_MSG_TYPE_MAX)
        return PC_EINVAL;
    if (!(m = pc__msg_alloc(type, tlen, 0,
                            free_fn && data ? sizeof(pc__msg_foreign) : 0)))
        return PC_ENOMEM;
    m->sender = sender;
    if (data) {
        m->data = data;
        m->len = len;
    }
    if (data && free_fn) {
        m->foreign = true;
        *pc__msg_foreign_of(m) = (pc__msg_foreign){free_fn, hint};
    }
    *out = m;
    return PC_OK;
}

pc_msg *
pc_msg_ref(pc_msg *m)
{
    if (m)
        atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

void
pc_msg_free(pc_msg **mp)
{
    pc_msg *m;

    if (!mp || !(m = *mp))
        return;
    *mp = NULL;
    if (atomic_load_explicit(&m->refs, memory_order_acquire) != 1 &&
        atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (m->foreign) { /* and a pb, if any, is borrowed too */
        pc__msg_foreign *f = pc__msg_foreign_of(m);
        f->free_fn(m->data, f->hint);
    } else if (m->pb) {
        protobuf_c_message_free_unpacked(m->pb, NULL);
        free(atomic_load_explicit(&m->packed, memory_order_relaxed));
    }
    if (m->home)
        pc__cache_put(m->cls, m->home, m);
    else
        free(m);
}

const size_t pc__cache_size[PC__CACHES] = {
    sizeof(pc_msg) + PC__MSG_SMALL_ROOM, sizeof(pc_msg) + PC__MSG_TINY_ROOM,
    sizeof(pc__env), sizeof(pc__task), sizeof(pc__actor)};

static const char *
type_of(const pc_msg *m)
{
    if (m->pb)
        return ((const ProtobufCMessage *)m->pb)->descriptor->name;
    return m->foreign ? m->inl + sizeof(pc__msg_foreign) : m->inl;
}

const char *
pc_msg_type(const pc_msg *m)
{
    return m ? type_of(m) : "";
}

bool
pc_msg_is(const pc_msg *m, const char *type)
{
    return m && type && strcmp(type_of(m), type) == 0;
}

/* Pack the protobuf once; racing callers agree on the first published copy.
 * Out of line: inlined, its register saves landed on pc_msg_data()'s fast
 * path (28 instructions a call instead of 10). */
static __attribute__((noinline)) const char *
packed(pc_msg *m, size_t *len)
{
    char *buf = atomic_load_explicit(&m->packed, memory_order_acquire);
    size_t n = protobuf_c_message_get_packed_size(m->pb);

    if (!buf) {
        char *mine = malloc(n + 1), *expect = NULL;
        if (!mine) {
            *len = 0;
            return "";
        }
        protobuf_c_message_pack(m->pb, (uint8_t *)mine);
        mine[n] = '\0';
        if (atomic_compare_exchange_strong_explicit(&m->packed, &expect, mine,
                                                    memory_order_acq_rel,
                                                    memory_order_acquire)) {
            buf = mine;
        } else {
            free(mine);
            buf = expect;
        }
    }
    *len = n;
    return buf;
}

const void *
pc_msg_data(const pc_msg *m, size_t *len)
{
    size_t dummy;

    if (!m) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (m->pb)
        return packed((pc_msg *)m, len ? len : &dummy);
    if (len)
        *len = m->len;
    return m->data;
}

const char *
pc_msg_str(const pc_msg *m)
{
    return m ? pc_msg_data(m, NULL) : NULL;
}

const void *
pc_msg_pb(const pc_msg *m)
{
    return m ? m->pb : NULL;
}

static void
drop_original(void *data, void *hint)
{
    pc_msg *orig = hint;

    (void)data;
    pc_msg_free(&orig);
}

pc_err
pc__msg_stamp(pc_msg **mp, pc_ref sender)
{
    pc_msg *m = *mp, *c;
    size_t len;
    const void *data;

    if (pc_ref_is_nil(sender) || pc_ref_eq(m->sender, sender))
        return PC_OK;
    if (atomic_load_explicit(&m->refs, memory_order_acquire) == 1) {
        m->sender = sender; /* ours alone: nobody else can see it change */
        return PC_OK;
    }
    /* shared: a new header naming the new sender, the payload borrowed
     * from the original, which it keeps alive */
    data = pc_msg_data(m, &len);
    if (m->pb && !atomic_load_explicit(&m->packed, memory_order_acquire))
        return PC_ENOMEM; /* not packed: c would take "" for its bytes */
    if (pc_msg_new_remote(&c, sender, type_of(m), (void *)data, len,
                          drop_original, m) != PC_OK)
        return PC_ENOMEM;
    if (!data) { /* no payload: nothing borrowed (c isn't foreign) */
        pc_msg_free(&m);
    } else {
        /* borrowed too: the original outlives c (whose `packed` is now the
         * original's buffer, which c doesn't free: it is foreign) */
        c->pb = m->pb;
    }
    *mp = c; /* our reference to m now belongs to c */
    return PC_OK;
}

void
pc__msg_set_sender(pc_msg *m, pc_ref sender)
{
    m->sender = sender; /* only before the message is shared */
}

pc_ref
pc_msg_sender(const pc_msg *m)
{
    return m ? m->sender : PC_REF_NIL;
}
