/* apps/node/node.h — what picos-node's two halves share.
 *
 * picos-node.c is the daemon's shell: options and the INI file, the log,
 * signals, the cluster join, the startup line, exit codes (the part it
 * shares with picos-registry in apps/common/daemon.c). host.c hosts
 * the service libraries: private copies loaded with dlopen(), their init
 * run in the node's control task, the services registered, swapped on
 * reload (pc_rps_update()) and closed on shutdown, and pc_service_add() /
 * pc_service_config() (service.h), which the libraries call.
 *
 * Threads: nd_host_init() and nd_lib_add() run on the main thread before
 * the node starts; nd_start() after the join; then the control task owns
 * every library and service (no locks), and main only sends it messages
 * (nd_reload_signal(), nd_stop_begin()).
 */
#ifndef PICOS_APPS_NODE_H
#define PICOS_APPS_NODE_H

#include <stdbool.h>
#include <stddef.h>

#include "daemon.h"

#define ND_PROG "picos-node"

/* Exit codes: DM_EXIT_RUNTIME, DM_EXIT_USAGE (daemon.h; docs/node.md). */

/* One key of a [service "NAME"] section of the config file. */
typedef struct nd_kv {
    char *section; /* NAME */
    char *key, *value;
    struct nd_kv *next;
} nd_kv;

/* What the host needs of the options. */
typedef struct nd_host_opts {
    const char *name;        /* the node's name */
    double grace;            /* seconds calls get to finish at a close */
    double register_timeout; /* pc_rps_register(), pc_rps_update() */
    const nd_kv *services;   /* the config's [service "..."] sections */
} nd_host_opts;

/* The [service "..."] sections of the config file read again for a reload
 * (NULL and true when the node was started without --config). false with
 * the one-line reason in err when the file can't be read or does not
 * parse; the node then keeps its configuration. picos-node.c. */
bool nd_config_reread(const nd_kv **out, char *err, size_t size);

/* Make the private directory for the libraries' copies (removed again at
 * exit, with every copy in it). false with the reason in err. */
bool nd_host_init(const nd_host_opts *o, char *err, size_t size);

/* Copy the library at `path` to the private directory, dlopen() the copy
 * and check its picos_service_abi and picos_service_init. false with one
 * line in err ("PATH: what is wrong"). Main thread, before nd_start(). */
bool nd_lib_add(const char *path, char *err, size_t size);

/* Start the control task: register it cluster-wide as "picos-node/NAME",
 * run every library's init and register the services they add. Waits for
 * all of it. Returns 0 with the services for the startup line in text
 * ("2 services: echo v1 [libecho.so], ..."), or an exit code with one
 * line in text. Main thread, after the cluster join. */
int nd_start(char *text, size_t size);

/* SIGHUP: reload every library (the lines are the control task's). */
void nd_reload_signal(void);

/* SIGTERM: close every service (calls in flight get the grace) and end
 * the control task. nd_stop_wait() waits up to `timeout` for it; true
 * once it ended, *failed telling whether a close failed. Main thread. */
void nd_stop_begin(void);
bool nd_stop_wait(double timeout, bool *failed);

/* Remove the private copies and their directory (atexit). */
void nd_host_cleanup(void);

#endif
