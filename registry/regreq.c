/* registry/regreq.c — the decoder of the registry's requests and of the
 * members' statuses: the only code of the server that reads bytes another
 * node sent.
 *
 * protobuf-c checks the wire format (lengths, wire types, nesting) but not
 * what the registry needs: enum values are taken as they come, strings may
 * be of any length, and messages may be missing. So after unpacking, every
 * field the op uses is checked here, once, and the handlers of server.c
 * rely on it (names[0] is there for REGISTER, UNREGISTER and LOCATE; a
 * JOIN's node has an agent; every name fits PC_NAME_MAX). tests/
 * fuzz_regreq.c holds it to that contract. A NodeStatus is checked the
 * same way (pc__reg_status_decode: bounded strings and lists, finite
 * floats), so what the status store copies and the HTTP API turns into
 * JSON is bounded; tests/fuzz_regstatus.c holds it to that.
 */
#include <math.h>
#include <string.h>

#include "server_int.h"

static bool
bounded(const char *s, size_t max)
{
    return s && strnlen(s, max + 1) <= max;
}

/* An entry as the op needs it; NULL when fine, else why not. */
static const char *
entry_bad(const Picos__V1__NameEntry *e, bool need_ref, uint64_t node)
{
    if (!e)
        return "a name entry is missing";
    if (!pc__reg_kind_ok((int)e->kind))
        return "unknown name kind";
    if (!e->name || !e->name[0])
        return "empty name";
    if (!bounded(e->name, PC_NAME_MAX))
        return "name longer than 255 bytes";
    if (!bounded(e->node_name, PC_NAME_MAX) ||
        !bounded(e->endpoint, PC_ENDPOINT_MAX))
        return "entry string too long";
    if (need_ref) {
        if (!e->ref)
            return "a name without a ref";
        if (!e->ref->node)
            return "a ref without a node";
        if (e->kind != PICOS__V1__NAME_KIND__CHANNEL && !e->ref->id)
            return "a nil ref";
        if (node && e->ref->node != node)
            return "a name's ref is not of the joining node";
    }
    return NULL;
}

static const char *
node_bad(const Picos__V1__NodeInfo *ni)
{
    if (!ni)
        return "JOIN without node";
    if (!ni->node || !ni->incarnation)
        return "JOIN without node id or incarnation";
    if (!ni->agent || !ni->agent->id || ni->agent->node != ni->node)
        return "JOIN without an agent of that node";
    if (!bounded(ni->name, PC_NAME_MAX) || !bounded(ni->host, 255) ||
        !bounded(ni->endpoint, PC_ENDPOINT_MAX) ||
        !bounded(ni->pub_endpoint, PC_ENDPOINT_MAX))
        return "JOIN with a string too long";
    return NULL;
}

static const char *
check(const Picos__V1__RegRequest *r)
{
    const char *why;

    switch (r->op) {
    case PICOS__V1__REG_OP__REG_JOIN:
        if ((why = node_bad(r->node)))
            return why;
        for (size_t i = 0; i < r->n_names; i++)
            if ((why = entry_bad(r->names[i], true, r->node->node)))
                return why;
        return NULL;
    case PICOS__V1__REG_OP__REGISTER:
    case PICOS__V1__REG_OP__UNREGISTER:
    case PICOS__V1__REG_OP__LOCATE:
        if (r->n_names < 1)
            return "no name given";
        return entry_bad(r->names[0], r->op == PICOS__V1__REG_OP__REGISTER, 0);
    case PICOS__V1__REG_OP__LIST_NAMES:
        if (r->has_kind && !pc__reg_kind_ok((int)r->kind))
            return "unknown name kind";
        return NULL;
    case PICOS__V1__REG_OP__LEAVE:
    case PICOS__V1__REG_OP__LIST_NODES:
    case PICOS__V1__REG_OP__STATUS:
    case PICOS__V1__REG_OP__NODES_STATUS:
        return NULL;
    default:
        return "unknown op";
    }
}

Picos__V1__RegRequest *
pc__reg_decode(const void *data, size_t len, uint64_t *id, const char **why)
{
    Picos__V1__RegRequest *r;

    *id = 0;
    *why = NULL;
    r = picos__v1__reg_request__unpack(NULL, len, data);
    if (!r) {
        *why = "not a RegRequest";
        return NULL;
    }
    *id = r->id;
    if ((*why = check(r))) {
        picos__v1__reg_request__free_unpacked(r, NULL);
        return NULL;
    }
    return r;
}

/* ---- NodeStatus ---------------------------------------------------------- */

/* A list of n elements (none NULL), at most max. */
static bool
list_ok(void *const *v, size_t n, size_t max)
{
    if (n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!v[i])
            return false;
    return true;
}

static const char *
status_bad(const Picos__V1__NodeStatus *s)
{
    if (!s->node || !s->incarnation)
        return "a status without node id or incarnation";
    if (!bounded(s->name, PC_NAME_MAX) || !bounded(s->host, 255) ||
        !bounded(s->data_dir, PC__STATUS_MAX_PATH))
        return "a status string too long";
    if (!isfinite(s->cpu_available_pct) || !isfinite(s->proc_cpu_pct) ||
        !isfinite(s->swap_available_pct) || !isfinite(s->load1))
        return "a status number that is not finite";
    if (!list_ok((void *const *)s->deepest, s->n_deepest,
                 PC__STATUS_MAX_DEEPEST) ||
        !list_ok((void *const *)s->services, s->n_services,
                 PC__STATUS_MAX_LIST) ||
        !list_ok((void *const *)s->channels, s->n_channels,
                 PC__STATUS_MAX_LIST) ||
        !list_ok((void *const *)s->peers, s->n_peers, PC__STATUS_MAX_LIST))
        return "a status list too long";
    for (size_t i = 0; i < s->n_deepest; i++)
        if (!bounded(s->deepest[i]->name, PC_NAME_MAX))
            return "a mailbox name too long";
    for (size_t i = 0; i < s->n_services; i++)
        if (!bounded(s->services[i]->name, PC_NAME_MAX))
            return "a service name too long";
    for (size_t i = 0; i < s->n_channels; i++)
        if (!bounded(s->channels[i]->name, PC_NAME_MAX))
            return "a channel name too long";
    for (size_t i = 0; i < s->n_peers; i++)
        if (!bounded(s->peers[i]->name, PC_NAME_MAX) ||
            !bounded(s->peers[i]->endpoint, PC_ENDPOINT_MAX))
            return "a peer string too long";
    return NULL;
}

Picos__V1__NodeStatus *
pc__reg_status_decode(const void *data, size_t len, const char **why)
{
    Picos__V1__NodeStatus *s = picos__v1__node_status__unpack(NULL, len, data);

    if (!s) {
        *why = "not a NodeStatus";
        return NULL;
    }
    if ((*why = status_bad(s))) {
        picos__v1__node_status__free_unpacked(s, NULL);
        return NULL;
    }
    return s;
}
