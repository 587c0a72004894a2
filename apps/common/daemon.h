/* apps/common/daemon.h — what the two daemons, picos-registry and
 * picos-node, share: one-line failures with their exit codes, the option
 * values, the command line ("--opt V" or "--opt=V", the config file read
 * first, whatever its place), the INI file (the daemon's own section, and
 * maybe others), the log while starting (the first ERROR kept for the one
 * failure line), the signals (blocked in every thread: sigwait() takes
 * them) and the default node name.
 *
 * Compiled into each daemon (apps/registry, apps/node). Everything runs
 * on the main thread, but the log sink (dm_start()), which any thread
 * calls. dm_init() comes first.
 */
#ifndef PICOS_APPS_DAEMON_H
#define PICOS_APPS_DAEMON_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "picos/picos.h"

/* Exit codes of both daemons (docs/node.md, picos-registry --help). */
enum { DM_EXIT_RUNTIME = 1, DM_EXIT_USAGE = 2 };

/* `prog` starts every line the daemon prints ("picos-node: ..."); a
 * string that lives as long as the program. */
void dm_init(const char *prog);

/* "PROG: what" on stderr as one line (line breaks, a library's too, become
 * spaces), then exit(code). */
void dm_die(int code, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 2, 3)));

/* An option's value: a number of seconds (0 to 1e6), or a non-empty
 * string that fits dst (copied). false when it is not. */
bool dm_num(const char *s, double *out);
bool dm_str(char *dst, size_t size, const char *v);

/* Set option `key` (config spelling: secret_file) of cfg to v: 1 set, 0
 * bad value, -1 unknown key. */
typedef int (*dm_set_fn)(void *cfg, const char *key, const char *v);

/* How a daemon's INI file reads. */
typedef struct dm_config {
    const char *section; /* the daemon's own: "registry" ([registry]) */
    dm_set_fn set;       /* its keys */
    /* A key of any other section (may be NULL): 1 taken, 0 not (the
     * reason into err), -1 not a section this daemon knows. */
    int (*other)(void *cfg, const char *section, const char *key, const char *v,
                 char *err, size_t size);
    const char *sections; /* after "unknown section 'X'" (may be NULL) */
} dm_config;

/* Read the file at `path` into cfg. false with "PATH:LINE: what" (or
 * "PATH: can't open it: ...") in err. */
bool dm_config_read(const dm_config *d, void *cfg, const char *path, char *err,
                    size_t size);

/* An option of the command line and its config key; key NULL: --config.
 * A key written with a leading '+' ("+compute") is a flag: on the command
 * line it takes no value (set() gets the key without the '+' and "on";
 * "--opt=V" still gives V). */
typedef struct dm_opt {
    const char *opt, *key;
} dm_opt;

/* Parse argv: --help or -h prints usage and exits 0; an unknown option or
 * one without a value is dm_die(DM_EXIT_USAGE). First every --config's
 * value goes to config(), whatever its place; then each other value to
 * set() in order (not 1: "--opt: bad value 'V'", exit DM_EXIT_USAGE). */
void dm_parse(int argc, char **argv, const dm_opt *map, size_t n,
              const char *usage, void (*config)(void *cfg, const char *path),
              dm_set_fn set, void *cfg);

/* Before any thread starts (every thread inherits the mask): block
 * SIGTERM, SIGINT and `extra` (0: none) into *sigs for sigwait(), ignore
 * SIGPIPE, and take the library's log: while starting, the first ERROR
 * is kept for dm_start_failed() and, with hold_warnings, the rest held
 * back until dm_started(); otherwise each record is one line on stderr. */
void dm_start(sigset_t *sigs, int extra, bool hold_warnings);

/* The start succeeded: the records held back go out. */
void dm_started(void);

/* The stop began: from now on only errors are printed. */
void dm_stopping(void);

/* The start failed: the first ERROR the library logged, else "what:
 * pc_strerror(rc)", then exit(DM_EXIT_RUNTIME). */
void dm_start_failed(const char *what, pc_err rc) __attribute__((noreturn));

/* The node's name into me: `name`, or when it is empty the transport's
 * default, host:pid. */
void dm_name(const char *name, char *me, size_t size);

#endif
