/* tests/node_svc.c — a service library for test_node, built as
 * libnode_svc_v1.so and libnode_svc_v2.so (SVC_VERSION 1 and 2), and as
 * libnode_svc_badabi.so (SVC_ABI 99: picos-node must refuse it).
 *
 * Its init reads its [service "NAME"] section (pc_service_config()):
 *   name       the main service's name (default "node_svc")
 *   prefix     put before each reply's word (default "")
 *   fail_init  "yes": init returns PC_EINVAL
 * and adds the main service (version SVC_VERSION) and one more: v1 adds
 * "<name>.old", v2 "<name>.new" — so a reload from v1 to v2 updates the
 * main service, closes .old and adds .new.
 *
 * Requests are text: "WORD" answers "v<N> <prefix>WORD" at once; "wait
 * WORD" first waits for a message from the caller (any type: the test
 * holds calls in flight that way, for as long as it likes), then answers
 * the same. Each copy of the library has its own `prefix`: a reload's
 * init sets the new copy's, the old copy's calls keep theirs.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "picos/picos.h"
#include "picos/service.h"

#ifndef SVC_VERSION
#error "build with -DSVC_VERSION=N"
#endif

static char prefix[64];

static pc_msg *
serve(pc_msg *req)
{
    char text[256], word[128] = "";
    const char *r = pc_msg_str(req);
    pc_msg *m = NULL;

    bool wait = !strncmp(r, "wait ", 5);

    snprintf(word, sizeof word, "%s", wait ? r + 5 : r);
    /* before the wait: a call terminated there (a close after its grace)
     * runs no more of this code */
    pc_msg_free(&req);
    if (wait && pc_recv(&m, -1) == PC_OK)
        pc_msg_free(&m);
    snprintf(text, sizeof text, "v%d %s%s", SVC_VERSION, prefix, word);
    pc_msg_new_str(&m, "text", text);
    return m;
}

static pc_err
init(pc_service_ctx *ctx)
{
    const char *name = pc_service_config(ctx, "name"),
               *p = pc_service_config(ctx, "prefix"),
               *fail = pc_service_config(ctx, "fail_init");
    char extra[200];
    pc_rps_opts o = {.fn = serve,
                     .version = SVC_VERSION,
                     .max_inflight = 4000,
                     .max_queued = -1};
    pc_err rc;

    if (fail && !strcmp(fail, "yes"))
        return PC_EINVAL;
    snprintf(prefix, sizeof prefix, "%s", p ? p : "");
    o.name = name ? name : "node_svc";
    snprintf(extra, sizeof extra, "%s.%s", o.name,
             SVC_VERSION == 1 ? "old" : "new");
    if ((rc = pc_service_add(ctx, &o)) != PC_OK)
        return rc;
    /* the same name twice is refused */
    if (pc_service_add(ctx, &o) != PC_EINVAL)
        return PC_ESTATE;
    o.name = extra;
    return pc_service_add(ctx, &o);
}

#ifdef SVC_ABI
__attribute__((visibility("default"))) extern const uint32_t picos_service_abi;
__attribute__((visibility("default"))) pc_err
picos_service_init(pc_service_ctx *ctx);
const uint32_t picos_service_abi = SVC_ABI;
pc_err
picos_service_init(pc_service_ctx *ctx)
{
    return init(ctx);
}
#else
PC_SERVICE_EXPORT(init)
#endif
