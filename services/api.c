/* services/api.c — the registry's monitoring API over HTTP (api.h, the
 * contract in docs/monitoring.md).
 *
 * Where the data comes from. Statuses: the registry's status store
 * (registry/statusdb.h), which copies out under its own mutex. Members and
 * names: the registry server task owns them without a lock, so the API
 * asks it the way any client does — a picos.v1.RegRequest (LIST_NODES,
 * LIST_NAMES, STATUS) to the local PC_REGISTRY_TASK, the RegReply awaited
 * by the connection's task (pc_mailbox_mark, then a match on the id). No
 * state is shared with the server, and a request costs the server what a
 * `picos ls` costs it.
 *
 * JSON: messages are turned into the proto3 JSON mapping by pbjson
 * (apps/picos/pbjson.c) over one RpsSchema built at start from the
 * compiled descriptors (services/rps_schema.c) — one mapping for the CLI
 * and the API. Then every "node" key holding a 64-bit id gets the 16 hex
 * digits the rest of picos prints, and NodeStatusEntry always carries
 * "up" (proto3 would leave a false out).
 *
 * Live updates: the store calls on_change() (in the registry server's
 * task) for each status taken and each node down; it only sends a small
 * message to the hub task, which drains what has queued, builds each
 * changed node's entry once and broadcasts "event: status" or "event:
 * down" to every stream (http.c gives each client its own queue).
 *
 * Actions need the bearer token (read once at start; compared in constant
 * time); each is logged with the client's address and the outcome.
 * Terminate takes a ref of a member's task; suspend/resume send
 * picos.v1.ServiceControl to the member's agent (its ref from LIST_NODES:
 * the registry keeps it from the JOIN).
 */
#define _GNU_SOURCE
#include "api.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "picos/log.h"
#include "picos/msg.h"
#include "picos/node.h"
#include "picos/registry.h"
#include "picos/task.h"
#include "picos/tls.h"

#include "assets.h"
#include "http.h"
#include "pbjson.h"
#include "registry.pb-c.h"
#include "rps.pb-c.h"
#include "rps_int.h"
#include "status.pb-c.h"

#define MSG_REQUEST "picos.v1.RegRequest"
#define MSG_REPLY "picos.v1.RegReply"
#define MSG_CONTROL "picos.v1.ServiceControl"
#define MSG_CHANGE "picos.api.change"
#define ASK_TIMEOUT 5.0
#define TOKEN_MAX 512

static struct {
    pc__http *http;
    pc__statusdb *db;
    pbjson_schema *schema;
    char token[TOKEN_MAX + 1];
    size_t token_len;
    pc_ref hub;
    atomic_bool running;
    atomic_uint_fast64_t ids;
} A;

/* ---- options and files ------------------------------------------------------ */

/* "host:port" or "[v6]:port" into host and port. */
static bool
split_addr(const char *s, char *host, size_t size, uint16_t *port)
{
    const char *colon = strrchr(s ? s : "", ':');
    const char *h = s;
    size_t hn;
    char *end;
    unsigned long p;

    if (!colon || colon == s)
        return false;
    hn = (size_t)(colon - s);
    if (h[0] == '[' && colon[-1] == ']')
        h++, hn -= 2;
    if (hn == 0 || hn >= size)
        return false;
    memcpy(host, h, hn);
    host[hn] = '\0';
    errno = 0;
    p = strtoul(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || p > 65535)
        return false;
    *port = (uint16_t)p;
    return true;
}

static bool
token_load(const char *path, char *tok, size_t *len, char *err, size_t size)
{
    struct stat st;
    char buf[TOKEN_MAX + 2];
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

    if (fd < 0) {
        snprintf(err, size, "token file %s: can't open it: %s", path,
                 strerror(errno));
        return false;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, size, "token file %s is not a regular file", path);
        close(fd);
        return false;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        snprintf(err, size,
                 "token file %s is accessible by others (mode %04o): chmod "
                 "600 it",
                 path, (unsigned)(st.st_mode & 07777));
        close(fd);
        return false;
    }
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0) {
        snprintf(err, size, "token file %s: can't read it: %s", path,
                 strerror(errno));
        return false;
    }
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    if (strlen(buf) < 16 || strlen(buf) > TOKEN_MAX) {
        snprintf(err, size,
                 "token file %s: the first line must hold 16 to %d "
                 "characters",
                 path, TOKEN_MAX);
        return false;
    }
    *len = strlen(buf);
    memcpy(tok, buf, *len + 1);
    return true;
}

pc_err
pc__api_check(const pc__api_opts *o, char *err, size_t size)
{
    char host[256], tok[TOKEN_MAX + 1];
    uint16_t port;
    size_t tl;

    if (!o || !split_addr(o->listen, host, sizeof host, &port)) {
        snprintf(err, size, "http address '%s': not ADDR:PORT",
                 o && o->listen ? o->listen : "");
        return PC_EINVAL;
    }
    if (!o->cert_file != !o->key_file) {
        snprintf(err, size, "https needs both a certificate and a key");
        return PC_EINVAL;
    }
    if (o->token_file && !token_load(o->token_file, tok, &tl, err, size))
        return PC_EINVAL;
    if (o->cert_file) {
        pc_tls_ctx *ctx = NULL;
        pc_tls_ctx_opts to = {
            .server = true, .cert_file = o->cert_file, .key_file = o->key_file};
        if (pc_tls_ctx_new(&ctx, &to) != PC_OK) {
            snprintf(err, size, "https: certificate %s or key %s does not load",
                     o->cert_file, o->key_file);
            return PC_EINVAL;
        }
        pc_tls_ctx_free(&ctx);
    }
    return PC_OK;
}

/* ---- JSON --------------------------------------------------------------------- */

static char *
hex16(uint64_t v, char *buf)
{
    sprintf(buf, "%016" PRIx64, v);
    return buf;
}

/* Node ids as 16 hex digits: every "node" key whose value is a decimal
 * string (pbjson's fixed64), at any depth. */
static void
hex_nodes(json_t *j)
{
    const char *k;
    json_t *v;
    size_t i;

    if (json_is_array(j)) {
        json_array_foreach(j, i, v) hex_nodes(v);
        return;
    }
    if (!json_is_object(j))
        return;
    json_object_foreach(j, k, v)
    {
        if (!strcmp(k, "node") && json_is_string(v)) {
            char *end, buf[17];
            unsigned long long n = strtoull(json_string_value(v), &end, 10);
            if (!*end)
                json_string_set(v, hex16(n, buf));
        } else {
            hex_nodes(v);
        }
    }
}

/* A protobuf-c message as proto3 JSON (NULL: no memory or no schema). */
static json_t *
pb_json(const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t stack[4096], *buf = len <= sizeof stack ? stack : malloc(len);
    char err[PBJSON_ERR_MAX];
    json_t *j = NULL;

    if (!buf)
        return NULL;
    protobuf_c_message_pack(msg, buf);
    if (pbjson_decode(A.schema, msg->descriptor->name, buf, len, &j, err,
                      sizeof err) != PC_OK) {
        PC_LOG_WARN("http", "JSON of %s: %s", msg->descriptor->name, err);
        j = NULL;
    }
    if (buf != stack)
        free(buf);
    if (j)
        hex_nodes(j);
    return j;
}

static json_t *
entry_json(const Picos__V1__NodeStatusEntry *e)
{
    json_t *j = pb_json(&e->base);
    if (j)
        json_object_set_new(j, "up", json_boolean(e->up));
    return j;
}

/* rs = 200 with j as JSON (j taken). */
static void
reply_json(pc__http_resp *rs, json_t *j)
{
    char *s = j ? pbjson_dumps(j, false) : NULL;

    json_decref(j);
    if (!s) {
        pc__http_error(rs, 500, "out of memory");
        return;
    }
    rs->status = 200;
    rs->body = s;
    rs->len = strlen(s);
}

/* ---- what the registry knows --------------------------------------------------- */

typedef struct ask_ctx {
    uint64_t id;
} ask_ctx;

static bool
is_reply(const pc_msg *m, void *ctx)
{
    const ask_ctx *a = ctx;
    size_t len = 0;
    const void *d;
    Picos__V1__RegReply *r;
    bool ok;

    if (!pc_msg_is(m, MSG_REPLY))
        return false;
    d = pc_msg_data(m, &len);
    if (!(r = picos__v1__reg_reply__unpack(NULL, len, d)))
        return false;
    ok = r->id == a->id;
    picos__v1__reg_reply__free_unpacked(r, NULL);
    return ok;
}

/* Ask the registry server task (op); *out the reply (free it with
 * picos__v1__reg_reply__free_unpacked). */
static pc_err
ask(Picos__V1__RegOp op, Picos__V1__RegReply **out)
{
    Picos__V1__RegRequest r = PICOS__V1__REG_REQUEST__INIT;
    ask_ctx a = {.id = atomic_fetch_add(&A.ids, 1) + 1};
    uint8_t buf[64];
    pc_ref reg;
    pc_mark mark;
    pc_msg *m = NULL;
    size_t len = 0;
    const void *d;
    pc_err rc;

    *out = NULL;
    if ((rc = pc_whereis(PC_REGISTRY_TASK, &reg)) != PC_OK)
        return rc;
    r.id = a.id;
    r.op = op;
    r.timeout_ms = (uint32_t)(ASK_TIMEOUT * 1000);
    len = picos__v1__reg_request__pack(&r, buf);
    mark = pc_mailbox_mark();
    if ((rc = pc_send_data(reg, MSG_REQUEST, buf, len)) != PC_OK)
        return rc;
    if ((rc = pc_recv_match(is_reply, &a, &mark, &m, ASK_TIMEOUT)) != PC_OK)
        return rc;
    d = pc_msg_data(m, &len);
    *out = picos__v1__reg_reply__unpack(NULL, len, d);
    pc_msg_free(&m);
    return *out ? PC_OK : PC_EPROTO;
}

/* The latest status of every node (free with
 * picos__v1__node_status_list__free_unpacked; never NULL on PC_OK). */
static pc_err
statuses(Picos__V1__NodeStatusList **out)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    pc_err rc = PC_OK;

    if (A.db && (rc = pc__statusdb_list(A.db, &buf, &len)) != PC_OK)
        return rc;
    *out = picos__v1__node_status_list__unpack(NULL, len, buf);
    free(buf);
    return *out ? PC_OK : PC_ENOMEM;
}

/* {"nodes": [...]}: every status of the store, and the members that have
 * not sent one yet (their NodeInfo as a status, up). */
static json_t *
nodes_json(const Picos__V1__NodeStatusList *l, const Picos__V1__RegReply *mem)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < l->n_nodes; i++)
        json_array_append_new(arr, entry_json(l->nodes[i]));
    for (size_t k = 0; mem && k < mem->n_nodes; k++) {
        const Picos__V1__NodeInfo *ni = mem->nodes[k];
        bool have = false;
        for (size_t i = 0; i < l->n_nodes && !have; i++)
            have = l->nodes[i]->status && l->nodes[i]->status->node == ni->node;
        if (!have) {
            Picos__V1__NodeStatus s = PICOS__V1__NODE_STATUS__INIT;
            Picos__V1__NodeStatusEntry e = PICOS__V1__NODE_STATUS_ENTRY__INIT;
            s.node = ni->node;
            s.incarnation = ni->incarnation;
            s.name = ni->name;
            s.host = ni->host;
            s.pid = ni->pid;
            e.status = &s;
            e.up = ni->up;
            json_array_append_new(arr, entry_json(&e));
        }
    }
    return json_pack("{s:o}", "nodes", arr);
}

static const Picos__V1__NodeStatusEntry *
entry_of(const Picos__V1__NodeStatusList *l, uint64_t node)
{
    for (size_t i = 0; i < l->n_nodes; i++)
        if (l->nodes[i]->status && l->nodes[i]->status->node == node)
            return l->nodes[i];
    return NULL;
}

/* A node id: 1 to 16 hex digits, with or without 0x. */
static bool
node_id(const char *s, uint64_t *out)
{
    char *end;

    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        s += 2;
    if (!*s || strlen(s) > 16 ||
        strspn(s, "0123456789abcdefABCDEF") != strlen(s))
        return false;
    *out = strtoull(s, &end, 16);
    return !*end;
}

/* ---- the GET routes ------------------------------------------------------------- */

/* The last value of a series newer than 5 s (0 when none). */
static double
last_value(uint64_t node, const char *what, uint64_t now)
{
    uint64_t *t = NULL;
    double *v = NULL, x = 0;
    size_t n = 0;

    if (A.db &&
        pc__statusdb_series(A.db, node, what, now - 5000000u, &t, &v, &n) ==
            PC_OK &&
        n)
        x = v[n - 1];
    free(t);
    free(v);
    return x;
}

static void
get_cluster(void *arg, const pc__http_req *rq, pc__http_resp *rs)
{
    Picos__V1__RegReply *st = NULL;
    Picos__V1__NodeStatusList *l = NULL;
    uint64_t now = pc_wall_us();
    double msgs = 0, calls = 0, jobs = 0;
    int up = 0, down = 0;
    json_int_t cnodes = 0, cpus = 0, reserved = 0, busy = 0, workers = 0,
               queued = 0, done = 0, failed = 0;
    json_t *j;

    (void)arg, (void)rq;
    if (ask(PICOS__V1__REG_OP__STATUS, &st) != PC_OK || !st->registry ||
        statuses(&l) != PC_OK) {
        pc__http_error(rs, 503, "the registry did not answer");
        goto out;
    }
    up = (int)st->registry->nodes_up; /* the members, status or not */
    for (size_t i = 0; i < l->n_nodes; i++) {
        const Picos__V1__NodeStatus *s = l->nodes[i]->status;
        if (!l->nodes[i]->up) {
            down++;
            continue;
        }
        if (!s)
            continue;
        msgs += last_value(s->node, "msgs_sent_rate", now);
        if (s->compute) {
            const Picos__V1__ComputeStatus *c = s->compute;
            cnodes++;
            cpus += c->cpus;
            reserved += c->cpus_reserved;
            workers += c->workers;
            busy += c->workers_busy;
            queued += c->jobs_queued;
            done += (json_int_t)c->jobs_done;
            failed += (json_int_t)c->jobs_failed;
            jobs += last_value(s->node, "jobs_done_rate", now);
        }
        for (size_t k = 0; k < s->n_services; k++) {
            char what[300];
            snprintf(what, sizeof what, "service_calls_rate:%s",
                     s->services[k]->name);
            calls += last_value(s->node, what, now);
        }
    }
    j = json_pack("{s:o,s:i,s:i,s:i,s:f,s:f}", "registry",
                  pb_json(&st->registry->base), "nodesUp", up, "nodesDown",
                  down, "names", (json_int_t)st->registry->names, "msgsPerS",
                  msgs, "callsPerS", calls);
    /* the compute nodes that are up, summed (docs/monitoring.md) */
    if (j)
        json_object_set_new(j, "compute",
                            json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f}",
                                      "nodes", cnodes, "cpus", cpus,
                                      "cpusReserved", reserved, "workers",
                                      workers, "workersBusy", busy,
                                      "jobsQueued", queued, "jobsDone", done,
                                      "jobsFailed", failed, "jobsPerS", jobs));
    reply_json(rs, j);
out:
    if (st)
        picos__v1__reg_reply__free_unpacked(st, NULL);
    if (l)
        picos__v1__node_status_list__free_unpacked(l, NULL);
}

static json_t *
nodes_now(void)
{
    Picos__V1__NodeStatusList *l = NULL;
    Picos__V1__RegReply *mem = NULL;
    json_t *j = NULL;

    if (statuses(&l) != PC_OK)
        return NULL;
    ask(PICOS__V1__REG_OP__LIST_NODES, &mem); /* NULL: statuses only */
    j = nodes_json(l, mem);
    picos__v1__node_status_list__free_unpacked(l, NULL);
    if (mem)
        picos__v1__reg_reply__free_unpacked(mem, NULL);
    return j;
}

static void
get_nodes(void *arg, const pc__http_req *rq, pc__http_resp *rs)
{
    json_t *j = nodes_now();

    (void)arg, (void)rq;
    if (j)
        reply_json(rs, j);
    else
        pc__http_error(rs, 500, "out of memory");
}

/* The names of `node` (0: all) of a LIST_NAMES reply. */
static json_t *
names_json(const Picos__V1__RegReply *r, uint64_t node)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < r->n_names; i++)
        if (!node || (r->names[i]->ref && r->names[i]->ref->node == node))
            json_array_append_new(arr, pb_json(&r->names[i]->base));
    return arr;
}

static void
get_names(void *arg, const pc__http_req *rq, pc__http_resp *rs)
{
    Picos__V1__RegReply *r = NULL;

    (void)arg, (void)rq;
    if (ask(PICOS__V1__REG_OP__LIST_NAMES, &r) != PC_OK) {
        pc__http_error(rs, 503, "the registry did not answer");
        return;
    }
    reply_json(rs, json_pack("{s:o}", "names", names_json(r, 0)));
    picos__v1__reg_reply__free_unpacked(r, NULL);
}

static void
get_node(void *arg, const pc__http_req *rq, pc__http_resp *rs)
{
    const char *id = rq->path + strlen("/api/v1/nodes/");
    Picos__V1__NodeStatusList *l = NULL;
    Picos__V1__RegReply *r = NULL, *mem = NULL;
    const Picos__V1__NodeStatusEntry *e;
    json_t *node = NULL;
    uint64_t n;

    (void)arg;
    if (!node_id(id, &n)) {
        pc__http_error(rs, 404, "not a node id");
        return;
    }
    if (statuses(&l) != PC_OK) {
        pc__http_error(rs, 500, "out of memory");
        return;
    }
    if ((e = entry_of(l, n))) {
        node = entry_json(e);
    } else if (ask(PICOS__V1__REG_OP__LIST_NODES, &mem) == PC_OK) {
        /* a member without a status yet */
        Picos__V1__NodeStatusList none = PICOS__V1__NODE_STATUS_LIST__INIT;
        for (size_t k = 0; k < mem->n_nodes && !node; k++)
            if (mem->nodes[k]->node == n) {
                Picos__V1__RegReply one = *mem;
                json_t *all;
                one.n_nodes = 1;
                one.nodes = &mem->nodes[k];
                all = nodes_json(&none, &one);
                node = json_incref(
                    json_array_get(json_object_get(all, "nodes"), 0));
                json_decref(all);
            }
    }
    picos__v1__node_status_list__free_unpacked(l, NULL);
    if (mem)
        picos__v1__reg_reply__free_unpacked(mem, NULL);
    if (!node) {
        pc__http_error(rs, 404, "no such node");
        return;
    }
    if (ask(PICOS__V1__REG_OP__LIST_NAMES, &r) != PC_OK) {
        json_decref(node);
        pc__http_error(rs, 503, "the registry did not answer");
        return;
    }
    reply_json(rs,
               json_pack("{s:o,s:o}", "node", node, "names", names_json(r, n)));
    picos__v1__reg_reply__free_unpacked(r, NULL);
}

static void
get_series(void *arg, const pc__http_req *rq, pc__http_resp *rs)
{
    char id[40], what[300], since[32] = "0";
    uint64_t node, *t = NULL, s;
    double *v = NULL;
    size_t n = 0;
    char *end;
    pc_err rc;

    (void)arg;
    if (!pc__http_query(rq->query, "node", id, sizeof id) ||
        !node_id(id, &node) ||
        !pc__http_query(rq->query, "what", what, sizeof what)) {
        pc__http_error(rs, 400, "node=ID and what=W are required");
        return;
    }
    pc__http_query(rq->query, "since", since, sizeof since);
    s = strtoull(since, &end, 10);
    if (*end) {
        pc__http_error(rs, 400, "since: not a number of microseconds");
        return;
    }
    rc =
        A.db ? pc__statusdb_series(A.db, node, what, s, &t, &v, &n) : PC_ENOENT;
    if (rc == PC_ENOENT) {
        pc__http_error(rs, 404, "no such node");
    } else if (rc != PC_OK) {
        pc__http_error(rs, 400, "unknown series");
    } else {
        json_t *jt = json_array(), *jv = json_array();
        for (size_t i = 0; i < n; i++) {
            json_array_append_new(jt, json_integer((json_int_t)t[i]));
            json_array_append_new(jv, json_real(v[i]));
        }
        reply_json(rs, json_pack("{s:o,s:o}", "t", jt, "v", jv));
    }
    free(t);
    free(v);
}

/* ---- /metrics ------------------------------------------------------------------- */

/* A label value, escaped as the text format wants. */
static void
label(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        if (*s == '\\' || *s == '"')
            fprintf(f, "\\%c", *s);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

static void
family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
node_labels(FILE *f, const Picos__V1__NodeStatus *s)
{
    char id[17];
    fprintf(f, "{node=\"%s\",name=", hex16(s->node, id));
    label(f, s->name);
    fputc('}', f);
}

typedef struct nmetric {
    const char *name, *type, *help;
    int which;
} nmetric;

static double
node_value(const Picos__V1__NodeStatusEntry *e, int which, uint64_t now)
{
    const Picos__V1__NodeStatus *s = e->status;
    switch (which) {
    case 0:
        return e->up;
    case 1:
        return (double)s->tasks;
    case 2:
        return (double)s->actors;
    case 3:
        return (double)s->msgs_sent;
    case 4:
        return (double)s->msgs_received;
    case 5:
        return (double)s->msgs_dropped;
    case 6:
        return (double)s->msgs_refused;
    case 7:
        return s->cpu_available_pct;
    case 8:
        return (double)s->mem_available;
    case 9:
        return (double)s->rss;
    case 10:
        return (double)s->disk_free;
    case 11:
        return s->swap_available_pct;
    default:
        return e->received_us && now > e->received_us
                   ? (double)(now - e->received_us) / 1e6
                   : 0;
    }
}

static const nmetric node_metrics[] = {
    {"picos_node_up", "gauge", "1 while the node is a member", 0},
    {"picos_node_tasks", "gauge", "tasks alive", 1},
    {"picos_node_actors", "gauge", "light actors alive", 2},
    {"picos_node_messages_sent_total", "counter", "messages sent", 3},
    {"picos_node_messages_received_total", "counter", "messages received", 4},
    {"picos_node_messages_dropped_total", "counter", "messages dropped", 5},
    {"picos_node_messages_refused_total", "counter", "messages refused", 6},
    {"picos_node_cpu_available_percent", "gauge", "idle CPU share", 7},
    {"picos_node_memory_available_bytes", "gauge", "MemAvailable", 8},
    {"picos_node_rss_bytes", "gauge", "resident set of the node", 9},
    {"picos_node_disk_free_bytes", "gauge", "free under the data dir", 10},
    {"picos_node_swap_available_percent", "gauge", "swap free", 11},
    {"picos_node_last_status_age_seconds", "gauge",
     "since the node's last status", 12},
};

static void
metrics_write(FILE *f, const Picos__V1__NodeStatusList *l,
              const Picos__V1__RegReply *st)
{
    uint64_t now = pc_wall_us();
    char id[17];

    for (size_t m = 0; m < sizeof node_metrics / sizeof node_metrics[0]; m++) {
        family(f, node_metrics[m].name, node_metrics[m].type,
               node_metrics[m].help);
        for (size_t i = 0; i < l->n_nodes; i++) {
            if (!l->nodes[i]->status)
                continue;
            fputs(node_metrics[m].name, f);
            node_labels(f, l->nodes[i]->status);
            fprintf(f, " %.17g\n",
                    node_value(l->nodes[i], node_metrics[m].which, now));
        }
    }
#define EACH(n, ...)                                                           \
    for (size_t i = 0; i < l->n_nodes; i++) {                                  \
        const Picos__V1__NodeStatus *s = l->nodes[i]->status;                  \
        for (size_t k = 0; s && k < s->n; k++) {                               \
            __VA_ARGS__                                                        \
        }                                                                      \
    }
#define SVC(metric, type, help, expr)                                          \
    family(f, metric, type, help);                                             \
    EACH(n_services, {                                                         \
        const Picos__V1__ServiceStatus *x = s->services[k];                    \
        fprintf(f, "%s{node=\"%s\",service=", metric, hex16(s->node, id));     \
        label(f, x->name);                                                     \
        fprintf(f, "} %.17g\n", (double)(expr));                               \
    })
    SVC("picos_service_calls_total", "counter", "calls accepted", x->calls);
    SVC("picos_service_failures_total", "counter", "calls that failed",
        x->failures);
    SVC("picos_service_refused_total", "counter", "calls refused", x->refused);
    SVC("picos_service_running", "gauge", "calls running", x->running);
    SVC("picos_service_queued", "gauge", "calls queued", x->queued);
    family(f, "picos_service_latency_seconds", "summary",
           "latency of the calls that ended in the last interval");
    EACH(n_services, {
        const Picos__V1__ServiceStatus *x = s->services[k];
        static const char *const q[] = {"0.5", "0.9", "0.99"};
        const uint32_t us[] = {x->latency_p50_us, x->latency_p90_us,
                               x->latency_p99_us};
        for (int j = 0; j < 3; j++) {
            fprintf(f, "picos_service_latency_seconds{node=\"%s\",service=",
                    hex16(s->node, id));
            label(f, x->name);
            fprintf(f, ",quantile=\"%s\"} %.17g\n", q[j], us[j] / 1e6);
        }
    })
#define CHAN(metric, help, expr)                                               \
    family(f, metric, "counter", help);                                        \
    EACH(n_channels, {                                                         \
        const Picos__V1__ChannelStatus *x = s->channels[k];                    \
        fprintf(f, "%s{node=\"%s\",channel=", metric, hex16(s->node, id));     \
        label(f, x->name);                                                     \
        fprintf(f, "} %.17g\n", (double)(expr));                               \
    })
    CHAN("picos_channel_published_total", "messages published", x->published);
    CHAN("picos_channel_dropped_total", "messages dropped", x->dropped);
#define PEER(metric, help, expr)                                               \
    family(f, metric, "gauge", help);                                          \
    EACH(n_peers, {                                                            \
        const Picos__V1__PeerStatus *x = s->peers[k];                          \
        char pid[17];                                                          \
        fprintf(f, "%s{node=\"%s\",peer=\"%s\"} %.17g\n", metric,              \
                hex16(s->node, id), hex16(x->node, pid), (double)(expr));      \
    })
    PEER("picos_link_up", "1 while the link to the peer is up", x->up);
    PEER("picos_link_heartbeat_age_seconds", "since the peer's last frame",
         x->heartbeat_age_ms / 1e3);
    PEER("picos_link_queue", "envelopes waiting to go to the peer", x->queue);
#define COMPUTE(metric, type, help, expr)                                      \
    family(f, metric, type, help);                                             \
    for (size_t i = 0; i < l->n_nodes; i++) {                                  \
        const Picos__V1__NodeStatus *s = l->nodes[i]->status;                  \
        const Picos__V1__ComputeStatus *x = s ? s->compute : NULL;             \
        if (!x)                                                                \
            continue;                                                          \
        fputs(metric, f);                                                      \
        node_labels(f, s);                                                     \
        fprintf(f, " %.17g\n", (double)(expr));                                \
    }
    COMPUTE("picos_compute_cpus", "gauge",
            "worker processes the node may run, all computations", x->cpus);
    COMPUTE("picos_compute_cpus_reserved", "gauge",
            "CPUs reserved by computations", x->cpus_reserved);
    COMPUTE("picos_compute_sessions", "gauge", "computations open",
            x->sessions);
    COMPUTE("picos_compute_workers", "gauge", "worker processes up",
            x->workers);
    COMPUTE("picos_compute_workers_busy", "gauge", "workers running a job",
            x->workers_busy);
    COMPUTE("picos_compute_jobs_queued", "gauge",
            "jobs sent to the node, waiting for a worker", x->jobs_queued);
    COMPUTE("picos_compute_suspended", "gauge",
            "1 while the node starts no new jobs", x->suspended);
    COMPUTE("picos_compute_jobs_done_total", "counter",
            "jobs ended, every outcome", x->jobs_done);
    COMPUTE("picos_compute_jobs_failed_total", "counter",
            "jobs ended other than OK", x->jobs_failed);
    COMPUTE("picos_compute_workers_lost_total", "counter",
            "worker processes that died", x->workers_lost);
#undef EACH
#undef SVC
#undef CHAN
#undef PEER
#undef COMPUTE
    family(f, "picos_registry_nodes", "gauge", "members up");
    fprintf(f, "picos_registry_nodes %u\n",
            st && st->registry ? st->registry->nodes_up : 0);
    family(f, "picos_registry_names", "gauge", "names registered");
    fprintf(f, "picos_registry_names %u\n",
            st && st->registry ? st->registry->names : 0);
}

static void
get_metrics(void *arg, const pc__http_req *rq, pc__http_resp *rs)
{
    Picos__V1__NodeStatusList *l = NULL;
    Picos__V1__RegReply *st = NULL;
    char *text = NULL;
    size_t len = 0;
    FILE *f;

    (void)arg, (void)rq;
    if (statuses(&l) != PC_OK) {
        pc__http_error(rs, 500, "out of memory");
        return;
    }
    ask(PICOS__V1__REG_OP__STATUS, &st);
    if ((f = open_memstream(&text, &len))) {
        metrics_write(f, l, st);
        fclose(f);
    }
    picos__v1__node_status_list__free_unpacked(l, NULL);
    if (st)
        picos__v1__reg_reply__free_unpacked(st, NULL);
    if (!text) {
        pc__http_error(rs, 500, "out of memory");
        return;
    }
    rs->status = 200;
    rs->type = "text/plain; version=0.0.4; charset=utf-8";
    rs->body = text;
    rs->len = len;
}

/* ---- events ------------------------------------------------------------------------ */

/* "event: NAME\ndata: JSON\n\n" (malloc'd; j taken). */
static char *
sse_text(const char *name, json_t *j, size_t *len)
{
    char *s = j ? pbjson_dumps(j, false) : NULL, *out = NULL;
    int n;

    json_decref(j);
    if (!s)
        return NULL;
    n = asprintf(&out, "event: %s\ndata: %s\n\n", name, s);
    free(s);
    if (n < 0)
        return NULL;
    *len = (size_t)n;
    return out;
}

static void
get_events(void *arg, const pc__http_req *rq, pc__http_resp *rs)
{
    size_t len = 0;
    char *s = sse_text("snapshot", nodes_now(), &len);

    (void)arg, (void)rq;
    if (!s) {
        pc__http_error(rs, 500, "out of memory");
        return;
    }
    rs->status = 200;
    rs->body = s;
    rs->len = len;
}

typedef struct change {
    uint64_t node;
    bool down;
} change;

/* Called by the store (in the registry server's task): pass it on. */
static void
on_change(void *arg, uint64_t node, bool down)
{
    change c = {node, down};

    (void)arg;
    if (atomic_load(&A.running))
        pc_send_data(A.hub, MSG_CHANGE, &c, sizeof c);
}

/* The hub: each change queued, once per node, as an event to every
 * stream. Ends at MSG_CHANGE with node 0. */
static pc_msg *
hub_task(void *arg)
{
    pc_msg *m = NULL;

    (void)arg;
    for (;;) {
        change ch[64];
        size_t n = 0;
        bool stop = false;
        Picos__V1__NodeStatusList *l = NULL;

        if (pc_recv(&m, -1) != PC_OK)
            continue;
        do {
            size_t len = 0;
            const void *d = pc_msg_data(m, &len);
            change c;
            /* a payload is not aligned for a struct: copy it out */
            if (len == sizeof c)
                memcpy(&c, d, sizeof c);
            if (len == sizeof c && c.node == 0)
                stop = true;
            else if (len == sizeof c) {
                size_t i = 0;
                while (i < n && ch[i].node != c.node)
                    i++;
                if (i == n)
                    ch[n++] = c;
                else
                    ch[i].down |= c.down;
            }
            pc_msg_free(&m);
        } while (n < 64 && !stop && pc_recv(&m, 0) == PC_OK);
        if (stop)
            break;
        if (!pc__http_streams(A.http) || statuses(&l) != PC_OK)
            continue;
        for (size_t i = 0; i < n; i++) {
            const Picos__V1__NodeStatusEntry *e = entry_of(l, ch[i].node);
            size_t len = 0;
            char *s;
            if (!e)
                continue;
            s = sse_text(ch[i].down || !e->up ? "down" : "status",
                         entry_json(e), &len);
            if (s)
                pc__http_broadcast(A.http, s, len);
            free(s);
        }
        picos__v1__node_status_list__free_unpacked(l, NULL);
    }
    return NULL;
}

/* ---- actions ------------------------------------------------------------------------- */

/* Constant-time: the time depends on the lengths only, not on where the
 * first difference is. */
static bool
token_ok(const char *auth)
{
    const char *t;
    size_t n;
    unsigned char d = 0;

    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
        return false;
    t = auth + 7;
    n = strlen(t);
    d = n != A.token_len;
    for (size_t i = 0; i < A.token_len; i++)
        d |= (unsigned char)(A.token[i] ^ (i < n ? t[i] : 0));
    return d == 0;
}

/* The action's common gate: the token and a JSON object body. NULL: rs
 * is the refusal (logged). */
static json_t *
action_begin(const char *what, const pc__http_req *rq, pc__http_resp *rs)
{
    json_error_t je;
    json_t *j;

    if (!A.token_len) {
        PC_LOG_WARN("http",
                    "action %s from %s: 403 (no token file: actions "
                    "are off)",
                    what, rq->peer);
        pc__http_error(rs, 403, "actions are off (no --http-token-file)");
        return NULL;
    }
    if (!token_ok(rq->auth)) {
        PC_LOG_WARN("http", "action %s from %s: 401 (%s token)", what, rq->peer,
                    rq->auth ? "wrong" : "no");
        pc__http_error(rs, 401, "a bearer token is required");
        rs->headers = "WWW-Authenticate: Bearer realm=\"picos\"\r\n";
        return NULL;
    }
    if (!(j = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES,
                         &je)) ||
        !json_is_object(j)) {
        json_decref(j);
        PC_LOG_WARN("http",
                    "action %s from %s: 400 (body is not a JSON "
                    "object)",
                    what, rq->peer);
        pc__http_error(rs, 400, "the body must be a JSON object");
        return NULL;
    }
    return j;
}

static void
action_end(const char *what, const char *target, const pc__http_req *rq,
           pc__http_resp *rs, int status, const char *outcome)
{
    if (status == 200) {
        PC_LOG_INFO("http", "action %s %s from %s: %s", what, target, rq->peer,
                    outcome);
        reply_json(rs, json_pack("{s:b,s:s}", "ok", 1, "outcome", outcome));
    } else {
        PC_LOG_WARN("http", "action %s %s from %s: %d %s", what, target,
                    rq->peer, status, outcome);
        pc__http_error(rs, status, outcome);
    }
}

/* A ref as pc_ref_str() prints it ("NODE:SLOT.GEN", node in hex), or the
 * JSON mapping's object {"node", "id"}. */
static bool
ref_parse(const json_t *v, pc_ref *r)
{
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        unsigned long long node, slot, gen;
        errno = 0;
        node = strtoull(s, &end, 16);
        if (end == s || *end != ':')
            return false;
        s = end + 1;
        slot = strtoull(s, &end, 10);
        if (end == s || *end != '.')
            return false;
        s = end + 1;
        gen = strtoull(s, &end, 10);
        if (end == s || *end || errno || slot > UINT32_MAX || gen > UINT32_MAX)
            return false;
        r->node = node;
        r->id = (uint64_t)gen << 32 | slot;
        return true;
    }
    if (json_is_object(v)) {
        const char *n = json_string_value(json_object_get(v, "node"));
        const char *id = json_string_value(json_object_get(v, "id"));
        char *end;
        if (!n || !id || !node_id(n, &r->node))
            return false;
        r->id = strtoull(id, &end, 10);
        return !*end && *id;
    }
    return false;
}

static const Picos__V1__NodeInfo *
member(const Picos__V1__RegReply *mem, uint64_t node)
{
    for (size_t k = 0; mem && k < mem->n_nodes; k++)
        if (mem->nodes[k]->node == node)
            return mem->nodes[k];
    return NULL;
}

static void
post_terminate(void *arg, const pc__http_req *rq, pc__http_resp *rs)
{
    json_t *j = action_begin("terminate", rq, rs);
    Picos__V1__RegReply *mem = NULL;
    char target[64] = "?";
    pc_ref r;

    (void)arg;
    if (!j)
        return;
    if (!ref_parse(json_object_get(j, "task"), &r)) {
        action_end("terminate", target, rq, rs, 400,
                   "task: not a ref (NODE:SLOT.GEN)");
    } else if (pc_ref_str(r, target, sizeof target),
               ask(PICOS__V1__REG_OP__LIST_NODES, &mem) != PC_OK) {
        action_end("terminate", target, rq, rs, 503,
                   "the registry did not answer");
    } else if (r.node == pc_node_id() || !member(mem, r.node)) {
        action_end("terminate", target, rq, rs, 404,
                   "not a task of a member node");
    } else if (pc_task_terminate(r) != PC_OK) {
        action_end("terminate", target, rq, rs, 404, "no such task");
    } else {
        action_end("terminate", target, rq, rs, 200, "terminated");
    }
    if (mem)
        picos__v1__reg_reply__free_unpacked(mem, NULL);
    json_decref(j);
}

static void
control(const pc__http_req *rq, pc__http_resp *rs, bool suspend)
{
    const char *what = suspend ? "suspend" : "resume";
    json_t *j = action_begin(what, rq, rs);
    Picos__V1__RegReply *mem = NULL;
    Picos__V1__ServiceControl sc = PICOS__V1__SERVICE_CONTROL__INIT;
    const Picos__V1__NodeInfo *ni;
    const json_t *jn, *js;
    char target[400] = "?";
    uint64_t node = 0;
    uint8_t buf[512];
    size_t len;

    if (!j)
        return;
    jn = json_object_get(j, "node");
    js = json_object_get(j, "service");
    if (!(json_is_string(jn) && node_id(json_string_value(jn), &node)) &&
        !(json_is_integer(jn) && (node = (uint64_t)json_integer_value(jn)))) {
        action_end(what, target, rq, rs, 400, "node: not a node id");
        goto out;
    }
    if (js && !json_is_null(js) &&
        (!json_is_string(js) || json_string_length(js) > 255)) {
        action_end(what, target, rq, rs, 400, "service: not a name");
        goto out;
    }
    sc.service = (char *)(json_is_string(js) ? json_string_value(js) : "");
    sc.suspend = suspend;
    snprintf(target, sizeof target, "%016" PRIx64 " service '%s'", node,
             sc.service[0] ? sc.service : "(all)");
    if (ask(PICOS__V1__REG_OP__LIST_NODES, &mem) != PC_OK) {
        action_end(what, target, rq, rs, 503, "the registry did not answer");
        goto out;
    }
    if (!(ni = member(mem, node)) || !ni->agent || !ni->up) {
        action_end(what, target, rq, rs, 404, "not a member node that is up");
        goto out;
    }
    len = picos__v1__service_control__pack(&sc, buf);
    if (pc_send_data((pc_ref){ni->agent->node, ni->agent->id}, MSG_CONTROL, buf,
                     len) != PC_OK)
        action_end(what, target, rq, rs, 503, "the node's agent is gone");
    else
        action_end(what, target, rq, rs, 200, "sent to the node's agent");
out:
    if (mem)
        picos__v1__reg_reply__free_unpacked(mem, NULL);
    json_decref(j);
}

static void
post_suspend(void *arg, const pc__http_req *rq, pc__http_resp *rs)
{
    (void)arg;
    control(rq, rs, true);
}

static void
post_resume(void *arg, const pc__http_req *rq, pc__http_resp *rs)
{
    (void)arg;
    control(rq, rs, false);
}

/* ---- assets ----------------------------------------------------------------------------- */

static void
get_asset(void *arg, const pc__http_req *rq, pc__http_resp *rs)
{
    (void)arg;
    for (const pc__asset *a = pc__dashboard_assets; a->path; a++)
        if (!strcmp(a->path, rq->path) ||
            (!strcmp(rq->path, "/index.html") && !strcmp(a->path, "/"))) {
            rs->status = 200;
            rs->type = a->type;
            rs->body = (char *)a->data;
            rs->len = a->len;
            rs->body_static = true;
            return;
        }
    pc__http_error(rs, 404, "not found");
}

/* ---- start and stop ---------------------------------------------------------------------- */

#define G PC__HTTP_GET
#define P PC__HTTP_POST
static const pc__http_route routes[] = {
    {"/api/v1/cluster", false, G, false, get_cluster},
    {"/api/v1/nodes", false, G, false, get_nodes},
    {"/api/v1/nodes/", true, G, false, get_node},
    {"/api/v1/names", false, G, false, get_names},
    {"/api/v1/series", false, G, false, get_series},
    {"/api/v1/events", false, G, true, get_events},
    {"/metrics", false, G, false, get_metrics},
    {"/api/v1/actions/terminate", false, P, false, post_terminate},
    {"/api/v1/actions/suspend", false, P, false, post_suspend},
    {"/api/v1/actions/resume", false, P, false, post_resume},
    {NULL, false, 0, false, NULL},
};
#undef G
#undef P

static pc_err
schema_load(void)
{
    Picos__V1__RpsSchema *s = NULL;
    uint8_t *buf;
    size_t len;
    char err[PBJSON_ERR_MAX];
    pc_err rc;

    if ((rc = pc__rps_schema_build(&picos__v1__node_status_list__descriptor,
                                   &picos__v1__reg_reply__descriptor, &s)) !=
        PC_OK)
        return rc;
    len = picos__v1__rps_schema__get_packed_size(s);
    if (!(buf = malloc(len ? len : 1))) {
        pc__rps_schema_free(&s);
        return PC_ENOMEM;
    }
    picos__v1__rps_schema__pack(s, buf);
    pc__rps_schema_free(&s);
    rc = pbjson_schema_load(buf, len, &A.schema, err, sizeof err);
    free(buf);
    if (rc != PC_OK)
        PC_LOG_ERROR("http", "the status schema: %s", err);
    return rc;
}

pc_err
pc__api_start(const pc__api_opts *o, char *url, size_t size)
{
    char host[256], err[512];
    pc__http_opts ho = {.routes = routes, .fallback = get_asset};
    uint16_t port = 0;
    pc_err rc;

    if (A.http)
        return PC_ESTATE;
    if (pc__api_check(o, err, sizeof err) != PC_OK) {
        PC_LOG_ERROR("http", "%s", err);
        return PC_EINVAL;
    }
    split_addr(o->listen, host, sizeof host, &port);
    A.token_len = 0;
    if (o->token_file &&
        !token_load(o->token_file, A.token, &A.token_len, err, sizeof err)) {
        PC_LOG_ERROR("http", "%s", err);
        return PC_EINVAL;
    }
    if ((rc = schema_load()) != PC_OK)
        return rc;
    A.db = o->db;
    ho.host = host;
    ho.port = port;
    ho.cert_file = o->cert_file;
    ho.key_file = o->key_file;
    if ((rc = pc_spawn(
             hub_task, NULL,
             &(pc_spawn_opts){.worker = PC_WORKER_ANY,
                              .flags = PC_TASK_DAEMON | PC_TASK_JOINABLE,
                              .name = "http.hub"},
             &A.hub)) != PC_OK)
        goto fail;
    if ((rc = pc__http_start(&ho, &A.http)) != PC_OK) {
        pc_send_data(A.hub, MSG_CHANGE, &(change){0, false}, sizeof(change));
        pc_task_join(A.hub, -1, NULL);
        goto fail;
    }
    atomic_store(&A.running, true);
    if (A.db)
        pc__statusdb_on_change(A.db, on_change, NULL);
    if (url) {
        char shown[300];
        bool v6 = strchr(host, ':') != NULL;
        snprintf(shown, sizeof shown, "%s%s%s", v6 ? "[" : "", host,
                 v6 ? "]" : "");
        snprintf(url, size, "%s://%s:%u/", o->cert_file ? "https" : "http",
                 shown, (unsigned)pc__http_port(A.http));
    }
    PC_LOG_INFO("http", "serving on port %u%s (actions %s)",
                (unsigned)pc__http_port(A.http), o->cert_file ? ", TLS" : "",
                A.token_len ? "with a token" : "off");
    return PC_OK;
fail:
    pbjson_schema_free(&A.schema);
    return rc;
}

void
pc__api_stop(double timeout)
{
    if (!A.http)
        return;
    if (A.db)
        pc__statusdb_on_change(A.db, NULL, NULL);
    atomic_store(&A.running, false);
    /* the hub first: it uses A.http */
    pc_send_data(A.hub, MSG_CHANGE, &(change){0, false}, sizeof(change));
    pc_task_join(A.hub, timeout, NULL);
    pc__http_stop(&A.http, timeout);
    pbjson_schema_free(&A.schema);
    memset(A.token, 0, sizeof A.token);
    A.token_len = 0;
}
