/* apps/picos/cli.h — what the `picos` subcommands share (common.c).
 *
 * main.c parses the global options into `cli`, picks the subcommand and
 * calls its function with the arguments after the command's name. A
 * subcommand parses its own arguments with cli_opt() (which also takes the
 * global options, so `picos ls --json` works), joins the cluster with
 * cli_join() when it needs the registry, prints with the table and JSON
 * helpers, and returns an exit status (CLI_OK ... CLI_NOTFOUND,
 * docs/cli.md). Every error is one line on stderr, printed by cli_fail()
 * or cli_usage(), which return the status to pass on.
 */
#ifndef PICOS_APPS_CLI_H
#define PICOS_APPS_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "picos/err.h"

/* Exit statuses (docs/cli.md). */
enum {
    CLI_OK = 0,       /* done */
    CLI_FAILED = 1,   /* runtime failure: unreachable, timed out, refused */
    CLI_USAGE = 2,    /* unknown command or option, bad value */
    CLI_NOTFOUND = 3, /* a name or node asked for is not there */
};

/* The global options. */
typedef struct cli_globals {
    const char *registries;  /* --registry, else $PICOS_REGISTRY, else
                                the default endpoint */
    const char *secret_file; /* --secret-file (NULL: the environment) */
    const char *key_file;    /* --key-file: a key file instead of a secret */
    double timeout;          /* --timeout, seconds (> 0) */
    bool json;               /* --json */
} cli_globals;

extern cli_globals cli;

typedef struct cli_cmd {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] is the command's name */
    const char *args;                  /* "[nodes|names|...]" */
    const char *summary;               /* one line */
    const char *help;                  /* the command's --help, after usage */
} cli_cmd;

extern const cli_cmd cli_cmd_ls, cli_cmd_status, cli_cmd_keygen;
extern const cli_cmd cli_cmd_reload; /* reload.c */
extern const cli_cmd cli_cmd_call;   /* call.c */
extern const cli_cmd cli_cmd_top;    /* top.c */
extern const cli_cmd cli_cmd_submit; /* submit.c */
extern const cli_cmd cli_cmd_jobs;   /* jobs.c */
/* Every command, in help order, NULL-terminated (main.c). */
extern const cli_cmd *const cli_cmds[];

/* Nodes of the CLI itself are named CLI_NODE_PREFIX "PID" (`ls nodes`
 * hides them unless --all). */
#define CLI_NODE_PREFIX "picos-cli:"

/* ---- options ---------------------------------------------------------------- */

/* Take argv[*i] when it is a global option (with its value: *i is
 * advanced past it) or --help / -h (cmd's help is printed; NULL: the
 * global help). Returns false when it is neither. When it returns true
 * and *exit_now >= 0, the caller returns *exit_now at once: CLI_OK after
 * the help, CLI_USAGE after a bad or missing value (the line is printed).
 * *exit_now is left alone otherwise. */
bool cli_opt(const cli_cmd *cmd, int argc, char **argv, int *i, int *exit_now);

/* A command's option `--name VALUE` or `--name=VALUE` at argv[*i]: 1
 * (the value in *v, *i past it), 0 when argv[*i] is not it, -1 when its
 * value is missing. */
int cli_value_opt(const char *name, int argc, char **argv, int *i,
                  const char **v);

/* Print cmd's help (NULL: the global help) to f. */
void cli_help(const cli_cmd *cmd, FILE *f);

/* ---- errors --------------------------------------------------------------- */

/* One line "picos: ..." on stderr; returns CLI_FAILED. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line "picos: ... (see picos --help)" on stderr; returns CLI_USAGE. */
int cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The last warning or error picos logged ("" when none), for the one line
 * a failure prints: the library's words for what went wrong. */
const char *cli_last_log(void);

/* Install the log sink: picos's own lines are kept (cli_last_log()), not
 * printed, unless $PICOS_LOG is set (then printed as "picos: [module]
 * ..."). Called by main() first. */
void cli_log_init(void);

/* The one line for a failed registry call `what` ("listing nodes") that
 * returned rc: unreachable, timed out, refused, or the library's words. */
int cli_fail_rc(const char *what, pc_err rc);

/* ---- the cluster ---------------------------------------------------------- */

/* Start a short-lived client node (one worker, no listening socket) and
 * join cli.registries with the secret or key file. Returns CLI_OK, or
 * CLI_FAILED with the one line printed (no secret, unreachable, wrong
 * secret). After CLI_OK call cli_leave() before returning. */
int cli_join(void);

/* Leave and stop the node (pc_node_stop + pc_node_run). */
void cli_leave(void);

/* Split cli.registries on commas into eps (at most max), the strings in
 * buf; returns how many. */
size_t cli_endpoints(char *buf, size_t size, const char **eps, size_t max);

/* ---- output ----------------------------------------------------------------- */

/* A table of strings printed with aligned columns (two spaces apart, the
 * last column not padded), at most 16 columns. Cells are copied. */
typedef struct cli_table cli_table;

cli_table *cli_table_new(size_t cols, const char *const *header);
/* Add a row of `cols` cells (NULL cells print as "-"). false: no memory
 * (remembered: cli_table_finish() then fails). */
bool cli_table_row(cli_table *t, const char *const *cells);
void cli_table_print(const cli_table *t, FILE *f);
/* Its size (the header is row 0) and cell (r, k): for callers that lay
 * the table out themselves (picos top on a terminal). */
size_t cli_table_rows(const cli_table *t);
size_t cli_table_cols(const cli_table *t);
const char *cli_table_cell(const cli_table *t, size_t r, size_t k);
void cli_table_free(cli_table *t);
/* A command's last step: print t on stdout and free it. Returns CLI_OK,
 * or cli_fail("out of memory") when a row could not be added. */
int cli_table_finish(cli_table *t);

/* Print j (an array or object) as indented JSON with a final newline, and
 * drop the reference. Returns CLI_OK or CLI_FAILED (no memory, write). */
int cli_json_print(json_t *j);

/* "0x%016llx" into buf (19 bytes). */
char *cli_hex(uint64_t v, char *buf, size_t size);

/* Local time "YYYY-MM-DD HH:MM:SS" of wall-clock seconds `t` into buf;
 * "-" when t <= 0. */
char *cli_time(double t, char *buf, size_t size);

/* "12.3 KiB" etc. */
char *cli_bytes(uint64_t v, char *buf, size_t size);

#endif
