/* picos/rps.h — Remote Pico Services: a named service on one node, called
 * from any node of the cluster (docs/services.md).
 *
 * Server side: pc_rps_register() starts the service's *acceptor* task and
 * registers it cluster-wide under the service's name (PC_NAME_SERVICE,
 * registry.h). Each accepted call runs `fn(request)` as a task of its own;
 * the task's exit value is the call's result, pc_exit_error(text) a
 * failure with its text. At most max_inflight call tasks run at once; up
 * to max_queued more wait in order; beyond that a call is refused at once
 * (the client gets PC_EFULL and the line "service busy: N running, M
 * queued"). Each call carries its deadline: a call task still running at
 * its deadline is terminated (outcome PC_ETIMEDOUT), a queued call whose
 * deadline passes is refused.
 *
 * Client side: pc_rps_locate() finds the service (pc_locate of kind
 * SERVICE) and gives a handle; any number of handles, for the same service
 * or others, may be open in one process. pc_rps_call() sends a request and
 * returns once the service accepted it (the call task runs); the outcome
 * is pushed by the service node when the call task ends and kept by this
 * process until pc_rps_finish() takes it or the call is freed: never lost,
 * whenever finish is called, and as many times as it is called. A service
 * node that goes down ends its calls with PC_EUNREACH (the client monitors
 * the service's acceptor through the link, once).
 *
 * The cluster must be joined (pc_cluster_start / pc_cluster_join) on both
 * sides. Timeouts are seconds: negative waits forever, 0 does not wait.
 *
 *     // service node
 *     static pc_msg *echo(pc_msg *req) { return req; }
 *     pc_rps_opts o = {.name = "echo", .fn = echo};
 *     pc_rps *s; pc_rps_register(&o, 5.0, &s);
 *     // client node, in a task
 *     pc_rps_client *c; pc_rps_locate("echo", 5.0, &c);
 *     pc_msg *req, *rep; pc_msg_new_str(&req, "text", "hi");
 *     pc_rps_request(c, &req, 5.0, &rep);
 */
#ifndef PICOS_RPS_H
#define PICOS_RPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "picos/err.h"
#include "picos/msg.h"
#include "picos/ref.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- server side --------------------------------------------------------- */

typedef struct pc_rps pc_rps;

/* A service function. It runs as the call's task (a task of its own: it
 * may block, receive messages from the caller, spawn, ...) and owns
 * `request` (free it, or return it). Its return value is the call's result
 * (may be NULL); pc_exit_error(text) ends the call as failed. For a typed
 * service, request carries the unpacked protobuf message (pc_msg_pb()).
 * A call task can be ended wherever it blocks (its deadline, the client
 * terminating it, pc_rps_close()), and a terminated task does not unwind:
 * hold no message or memory across a blocking call, or free it in a
 * pc_at_exit() handler. */
typedef pc_msg *(*pc_rps_fn)(pc_msg *request);

typedef struct pc_rps_opts {
    const char *name; /* registered cluster-wide, kind SERVICE; copied */
    pc_rps_fn fn;
    /* ProtobufCMessageDescriptor *, or NULL: bytes. With req_desc the
     * acceptor unpacks each request before spawning its task; a request
     * that does not parse is refused (the client gets PC_EINVAL, and
     * pc_rps_client_error() names the defect: "request does not parse as
     * pkg.Type: field 'text' (3) at byte 0 is varint, its type wants
     * length-delimited"). Both types' names, and their schema, are what
     * pc_rps_describe() tells. */
    const void *req_desc, *resp_desc;
    int max_inflight;  /* calls running at once; 0: 64 */
    int max_queued;    /* accepted calls waiting for a slot; 0: 256;
                          negative: none */
    size_t stack_size; /* of each call's task; 0: the node's default */
    uint32_t version;  /* the service's version, shown by pc_rps_describe()
                          and picos-node; 0: none given */
} pc_rps_opts;

/* Start the service described by *o on this node and register its name
 * cluster-wide, waiting up to `timeout` for the registries. Registering
 * needs a registry's answer, so timeout 0 is one round trip: the request
 * is sent once and its answer waited for at most 1 s (as with
 * pc_name_register()) — PC_OK from a registry that is up, PC_ETIMEDOUT
 * from one that is not answering. *o is copied (the descriptors must
 * outlive the service). Returns PC_OK and *out (owned by the caller until
 * pc_rps_close()), PC_EINVAL (no name or fn, name too long), PC_EEXIST
 * (the name is held by another node, or by a service open on this one),
 * PC_ESTATE (no node, or not joined), PC_EUNREACH / PC_ETIMEDOUT (no
 * registry answered in time), PC_ENOMEM. On every error *out is NULL and
 * nothing is left behind: the acceptor has ended, and an OK a registry
 * sends after the deadline is undone by the registry client. Tasks and
 * foreign threads. */
pc_err pc_rps_register(const pc_rps_opts *o, double timeout, pc_rps **out);

/* Called once when the last call accepted before a pc_rps_update() has
 * ended (so the code it ran may be unloaded). On the acceptor's task,
 * possibly in its exit handler: it must not wait, nor call pc_rps_*() of
 * its service. */
typedef void (*pc_rps_release_fn)(void *arg);

/* Hot swap: from now on new calls of service s run o->fn with o's
 * descriptors, version and limits (o->name must be s's name or NULL; the
 * descriptors must outlive the calls that use them); calls already running
 * or queued finish on the code they were accepted with. release(arg), when
 * given, is called exactly once when the last call accepted before this
 * update has ended — at once when there was none, and at the latest when
 * the service closes; the releases of successive updates run in their
 * order. (A service whose acceptor is killed while calls run, as by
 * pc_node_stop(), releases nothing more: the code may still be running.)
 * Waits up to `timeout` for the acceptor to take the update (0: does not
 * wait). Returns PC_OK (taken), PC_EINVAL (NULL s, o or fn, another name),
 * PC_ESTATE (the service has ended: nothing taken, release never called),
 * PC_ETIMEDOUT (not taken yet: the update still happens, and release is
 * still called once), PC_ENOMEM. Tasks and foreign threads. */
pc_err pc_rps_update(pc_rps *s, const pc_rps_opts *o, pc_rps_release_fn release,
                     void *arg, double timeout);

/* Send `watcher` one PC_MSG_RPS_OUTCOME message per call of service s
 * that ends (read it with pc_rps_outcome_parse()), until the watcher
 * ends or the service closes. A refused call is no outcome. Returns PC_OK,
 * PC_EINVAL, PC_ESTATE (closed). Any thread. */
pc_err pc_rps_monitor(pc_rps *s, pc_ref watcher);

/* Unregister the service and end it. New calls are refused CLOSED at once
 * (their callers get PC_ECLOSED, "service NAME is closing"). Calls running
 * or queued get up to `grace` seconds to finish — queued ones still start
 * as slots free up —; 0: no grace, negative: as long as they take. Then
 * running ones are terminated and queued ones refused (their callers get
 * PC_ECLOSED). Waits for the acceptor to end — and with it the releases of
 * pc_rps_update() — frees *s and sets it to NULL. Returns PC_OK, or
 * PC_ETIMEDOUT when the acceptor had not ended within grace + 5 s (a call
 * task that never reaches a wait point can't be terminated): *s is freed
 * and NULL all the same; the acceptor keeps what it uses and ends by
 * itself. NULL or *s NULL: PC_OK. Tasks and foreign threads. */
pc_err pc_rps_close(pc_rps **s, double grace);

/* Suspend (on) or resume (off) service s: while suspended, new calls are
 * refused at once (the client gets PC_EFULL and "service suspended");
 * calls running or queued go on. Returns PC_OK, PC_EINVAL, PC_ESTATE
 * (closed). Any thread. */
pc_err pc_rps_suspend(pc_rps *s, bool on);

/* The same for the service called `name` open on this node, or every
 * service of this node when name is NULL or "". Returns PC_OK, PC_ENOENT
 * (no such service here). Any thread. */
pc_err pc_rps_suspend_name(const char *name, bool on);

/* ---- outcomes (monitors) -------------------------------------------------- */

/* Message type of pc_rps_monitor() and pc_rps_client_monitor() messages. */
#define PC_MSG_RPS_OUTCOME "picos.rps.outcome"

typedef struct pc_rps_outcome {
    uint64_t id;     /* the call's id (per client; for pc_rps_client_monitor()
                        it is pc_rps_call_id()) */
    pc_err rc;       /* as pc_rps_finish() returns it */
    char error[256]; /* PC_EFAILED: the error text (cut); else "" */
} pc_rps_outcome;

/* Parse a PC_MSG_RPS_OUTCOME message. Returns PC_OK or PC_EINVAL. */
pc_err pc_rps_outcome_parse(const pc_msg *m, pc_rps_outcome *out);

/* ---- client side --------------------------------------------------------- */

typedef struct pc_rps_client pc_rps_client;
/* A call in flight. Written `struct pc_rps_call` (no typedef): the name
 * pc_rps_call is the function that makes one. */
struct pc_rps_call;

/* Find service `name` in the cluster (pc_locate(PC_NAME_SERVICE, ...),
 * waiting up to `timeout` for it to be registered) and make a handle for
 * it. Returns PC_OK and *out (the caller's; pc_rps_client_free()), or the
 * errors of pc_locate() (PC_ENOENT, PC_ETIMEDOUT, PC_EUNREACH, PC_ESTATE,
 * PC_EINVAL), PC_ENOMEM. Tasks and foreign threads. */
pc_err pc_rps_locate(const char *name, double timeout, pc_rps_client **out);

/* Call the service with *req. `timeout` is the call's deadline: the wait
 * for the service to accept it, and the time the call task may run (the
 * service terminates it then: outcome PC_ETIMEDOUT); negative: none; 0:
 * PC_ETIMEDOUT at once (nothing is sent). Returns PC_OK once the call task
 * runs: *req consumed (NULL) and *out the caller's (pc_rps_call_free()).
 * On any error *req is unchanged and still the caller's, *out NULL:
 * PC_EFULL (service busy: one line logged), PC_EINVAL (bad argument, or a
 * request a typed service could not parse), PC_ECLOSED (the service is
 * closing or gone), PC_ENOENT (no such service at its node any more),
 * PC_ETIMEDOUT (not accepted in time, or its deadline passed while it
 * waited in the queue), PC_EUNREACH (the service node is down),
 * PC_ESTATE (no node), PC_ENOMEM. Tasks and foreign threads. */
pc_err pc_rps_call(pc_rps_client *c, pc_msg **req, double timeout,
                   struct pc_rps_call **out);

/* The call's task on the service node: send it messages, monitor it. */
pc_ref pc_rps_call_task(const struct pc_rps_call *call);

/* The call's id (64 bits, never reused in this process's start). */
uint64_t pc_rps_call_id(const struct pc_rps_call *call);

/* Wait up to `timeout` for the call's outcome. Returns PC_OK (*value its
 * exit value, may be NULL), PC_EFAILED (*value a PC_MSG_ERROR message with
 * the text), PC_EKILLED (terminated), PC_ETIMEDOUT (either this wait ended
 * first — the call goes on and finish may be called again — or the call
 * passed its deadline at the service: then it is final, and a later finish
 * says the same), PC_ECLOSED (the service closed), PC_EUNREACH (the
 * service node went down). The outcome stays with the call: every finish
 * after it came returns it again, *value a new reference each time (the
 * caller's to free; value may be NULL). Tasks and foreign threads. */
pc_err pc_rps_finish(struct pc_rps_call *call, double timeout, pc_msg **value);

/* Forget the call (its outcome, whether it came or not; a call still
 * running goes on at the service) and set *call NULL. NULL or *call NULL:
 * nothing. Any thread. */
void pc_rps_call_free(struct pc_rps_call **call);

/* One request in, one reply out: pc_rps_call() then pc_rps_finish() within
 * the same `timeout` (the call's deadline). Returns PC_OK with *reply (the
 * caller's; may be NULL when the function returned NULL) and *req
 * consumed; on any error *req is unchanged and still the caller's, *reply
 * NULL (PC_EFAILED: *reply the PC_MSG_ERROR message, the caller's). Errors
 * of both calls. Tasks and foreign threads. */
pc_err pc_rps_request(pc_rps_client *c, pc_msg **req, double timeout,
                      pc_msg **reply);

/* Send `watcher` one PC_MSG_RPS_OUTCOME per call made through c that ends
 * (also PC_EUNREACH ends), until the handle is freed. Returns PC_OK,
 * PC_EINVAL, PC_ENOMEM. Any thread. */
pc_err pc_rps_client_monitor(pc_rps_client *c, pc_ref watcher);

/* The one-line text of the last refusal or failure that pc_rps_call(),
 * pc_rps_finish(), pc_rps_request() or pc_rps_describe() through c
 * returned ("" when none; a success leaves it as it was): the service's
 * refusal ("service busy: 64 running, 256 queued", "service NAME is
 * closing", "deadline passed after 310 ms in the queue of service NAME (1
 * running, 1 queued)", "request does not parse as pkg.Type: <the first
 * defect and its byte>"), the error text of a failed call (PC_EFAILED),
 * or what happened ("service node down (service NAME)", "deadline passed:
 * service NAME terminated the call", "service NAME closed during the
 * call", "no outcome within 2 s (the call goes on)", ...). The handle
 * keeps one text (last writer wins): use a handle per task where the text
 * matters. Valid until the next call through c. Any thread. */
const char *pc_rps_client_error(const pc_rps_client *c);

/* What a service says of itself (pc_rps_describe()). */
typedef struct pc_rps_info {
    char name[256];
    uint32_t version;
    char request_type[256];  /* full protobuf name; "" for bytes */
    char response_type[256]; /* "" for bytes */
    uint32_t running, queued, max_inflight, max_queued;
    uint64_t calls; /* calls taken (run or queued) since it started */
} pc_rps_info;

/* Ask the service for its description, waiting up to `timeout` (its
 * acceptor answers at once, however busy: the current code's version,
 * types and limits, and the counts at that moment). With `schema`
 * non-NULL and a typed service, *schema is a "picos.v1.RpsSchema" message
 * (proto/rps.proto: the request and response types and every message and
 * enum type they use; the caller's), enough to write and read its
 * messages without their .proto (picos call --json); NULL for a bytes
 * service. Returns PC_OK, PC_ETIMEDOUT (no answer in time; timeout 0:
 * nothing is sent), PC_EUNREACH (the service node is down), PC_ENOENT (the
 * service is gone from its node), PC_EINVAL, PC_ESTATE (no node),
 * PC_ENOMEM. Tasks and foreign threads. */
pc_err pc_rps_describe(pc_rps_client *c, double timeout, pc_rps_info *info,
                       pc_msg **schema);

/* Free the handle and set *c NULL; calls made through it stay valid.
 * NULL or *c NULL: nothing. Any thread. */
void pc_rps_client_free(pc_rps_client **c);

#ifdef __cplusplus
}
#endif

#endif
