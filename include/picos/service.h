/* picos/service.h — services as shared libraries, hosted by picos-node
 * (docs/node.md, docs/services.md).
 *
 * A service library exports two symbols, most simply with
 * PC_SERVICE_EXPORT(init):
 *
 *     const uint32_t picos_service_abi = PC_SERVICE_ABI;
 *     pc_err picos_service_init(pc_service_ctx *ctx);
 *
 * picos-node dlopen()s the library, checks picos_service_abi, and calls
 * picos_service_init() in a task of its node, once the node has joined its
 * registries. The init function adds its services with pc_service_add()
 * (one library may add several) and returns PC_OK; any other return, or no
 * service added, makes the node refuse the library with one line.
 *
 * Reload (SIGHUP, or `picos reload NODE`): the node opens the library's
 * file again beside the old copy, calls its init, and swaps each service it
 * adds with pc_rps_update(): new calls run the new code, calls in flight
 * finish on the old, and the old copy is dlclose()d after its last call.
 * A service the new copy no longer adds is closed; a new one is
 * registered. The library's functions run in picos-node's process and use
 * picos's API from the libpicos the node exports (link the library against
 * nothing but libc; see apps/examples/CMakeLists.txt).
 */
#ifndef PICOS_SERVICE_H
#define PICOS_SERVICE_H

#include <stdint.h>

#include "picos/err.h"
#include "picos/rps.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped when this interface changes incompatibly. */
#define PC_SERVICE_ABI 1u

typedef struct pc_service_ctx pc_service_ctx;

/* Add the service *o (copied, as pc_rps_register() does; o->name must be
 * set). Only from picos_service_init(). Returns PC_OK, PC_EINVAL (no name
 * or fn, or the name added twice), PC_ENOMEM. */
pc_err pc_service_add(pc_service_ctx *ctx, const pc_rps_opts *o);

/* The value of `key` in this library's section of the node's config
 * file ([service "NAME"] for the library's file name without lib and
 * .so, e.g. [service "pico_service"]), or NULL. Only from
 * picos_service_init(); the string lives as long as the node. */
const char *pc_service_config(pc_service_ctx *ctx, const char *key);

/* The entry point's type. */
typedef pc_err (*pc_service_init_fn)(pc_service_ctx *ctx);

#define PC_SERVICE_EXPORT(init)                                             \
    const uint32_t picos_service_abi = PC_SERVICE_ABI;                      \
    pc_err picos_service_init(pc_service_ctx *ctx) { return init(ctx); }

#ifdef __cplusplus
}
#endif

#endif
