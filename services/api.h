/* services/api.h — the registry's monitoring HTTP API (internal): the
 * routes, JSON, /metrics, Server-Sent Events and actions of
 * docs/monitoring.md, served by services/http.c on the registry's node.
 *
 * One API per process. pc__api_check() loads what can be wrong in the
 * files (token, certificate, key) without starting anything, so a daemon
 * can refuse them before it starts; pc__api_start() serves. Not from a
 * task; the registry (pc_registry_start) must run on this node.
 */
#ifndef PICOS_SERVICES_API_H
#define PICOS_SERVICES_API_H

#include <stddef.h>

#include "picos/err.h"

#include "statusdb.h"

typedef struct pc__api_opts {
    const char *listen;     /* "ADDR:PORT" (port 0: an ephemeral one) */
    const char *token_file; /* NULL: actions answer 403 */
    const char *cert_file, *key_file; /* both: HTTPS only */
    pc__statusdb *db;                 /* the registry's status store */
} pc__api_opts;

/* Check the options and their files: the address, the token file (a
 * regular file not accessible by group or others, its first line >= 16
 * characters), the certificate and key (they load). Returns PC_OK, or
 * PC_EINVAL with one line saying what is wrong into err. Any thread. */
pc_err pc__api_check(const pc__api_opts *o, char *err, size_t size);

/* Start serving. The base URL ("http://127.0.0.1:PORT/", https with a
 * certificate) into url. Returns PC_OK, PC_ESTATE (one runs), PC_EINVAL
 * (as pc__api_check: the line is logged at ERROR), or the listen errors of
 * pc_sock_listen(). */
pc_err pc__api_start(const pc__api_opts *o, char *url, size_t size);

/* Stop serving (the connections closed), up to `timeout` s. */
void pc__api_stop(double timeout);

#endif
