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
 * registered. A copy that fails to load or init changes nothing. So a
 * library must leave none of its code running once its calls have ended
 * (no tasks, actors, at-exit handlers or messages carrying its protobuf
 * descriptors that outlive the calls), and keeps no state across a reload
 * but what it hands over through the cluster (each copy has its own
 * globals).
 *
 * Building one. The library's functions run in picos-node's process and
 * use picos's API from the libpicos linked into picos-node, which exports
 * it (the pc_ names) to the libraries it loads; a library links against
 * nothing but libc (a typed service also finds libprotobuf-c's functions
 * in picos-node), with symbols hidden but for the two above:
 *
 *     cc -shared -fPIC -fvisibility=hidden -I$PREFIX/include myservice.c \
 *        -o libmyservice.so
 *
 * or, with CMake, picos_add_service(myservice myservice.c)
 * (cmake/picosService.cmake; find_package(picos) provides it). docs/node.md
 * has a whole example.
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
 * set; the descriptors must be the library's own or live as long). The
 * node registers it once init returns (or, on a reload, swaps the
 * running service of that name to it). Returns PC_OK, PC_EINVAL (no name
 * or fn, a name longer than PC_NAME_MAX or added twice, or not called
 * from picos_service_init()), PC_ENOMEM. The node's control task. */
pc_err pc_service_add(pc_service_ctx *ctx, const pc_rps_opts *o);

/* The value of `key` in this library's section of the node's config
 * file ([service "NAME"] for the library's file name without lib and
 * .so, e.g. [service "pico_service"]), or NULL; the last one when the
 * key is given twice. The file is read again at each reload, so a new
 * copy's init sees the file as it is then. Only from
 * picos_service_init() (NULL elsewhere); the string lives as long as the
 * node. */
const char *pc_service_config(pc_service_ctx *ctx, const char *key);

/* The entry point's type. */
typedef pc_err (*pc_service_init_fn)(pc_service_ctx *ctx);

/* Define the two symbols, exported even under -fvisibility=hidden. */
#define PC_SERVICE_EXPORT(init)                                                \
    __attribute__((                                                            \
        visibility("default"))) extern const uint32_t picos_service_abi;       \
    __attribute__((visibility("default"))) pc_err picos_service_init(          \
        pc_service_ctx *ctx);                                                  \
    const uint32_t picos_service_abi = PC_SERVICE_ABI;                         \
    pc_err picos_service_init(pc_service_ctx *ctx)                             \
    {                                                                          \
        return init(ctx);                                                      \
    }

#ifdef __cplusplus
}
#endif

#endif
