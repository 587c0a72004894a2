/* apps/picos/main.c — `picos`: the cluster from the command line.
 *
 *     picos [--registry EP[,EP...]] [--secret-file F] [--key-file F]
 *           [--timeout S] [--json] COMMAND [ARGS...]
 *
 * Thin on purpose: the global options, the default registry
 * ($PICOS_REGISTRY, else PC_REGISTRY_DEFAULT), then the command's own
 * function (one file each: ls.c, status.c, top.c, keygen.c, call.c,
 * submit.c, jobs.c) with the
 * arguments that follow its name. docs/cli.md is the manual, with the exit
 * statuses and the JSON keys.
 */
#include <stdlib.h>
#include <string.h>

#include "picos/registry.h"

#include "cli.h"

const cli_cmd *const cli_cmds[] = {
    &cli_cmd_ls,     &cli_cmd_status, &cli_cmd_top,
    &cli_cmd_keygen, &cli_cmd_call,   &cli_cmd_reload,
    &cli_cmd_submit, &cli_cmd_jobs,   NULL};

int
main(int argc, char **argv)
{
    const char *env = getenv("PICOS_REGISTRY");
    int i = 1, exit_now = -1;

    cli_log_init();
    cli.registries = env && *env ? env : PC_REGISTRY_DEFAULT;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--"))
            break;
        if (!cli_opt(NULL, argc, argv, &i, &exit_now))
            return cli_usage("unknown option '%s'", argv[i]);
        if (exit_now >= 0)
            return exit_now;
    }
    if (i < argc && !strcmp(argv[i], "--"))
        i++;
    if (i >= argc)
        return cli_usage("no command given");
    if (!strcmp(argv[i], "help") && i + 1 >= argc) {
        cli_help(NULL, stdout);
        return CLI_OK;
    }
    if (!strcmp(argv[i], "help")) /* picos help COMMAND */
        for (const cli_cmd *const *c = cli_cmds; *c; c++)
            if (!strcmp((*c)->name, argv[i + 1])) {
                cli_help(*c, stdout);
                return CLI_OK;
            }
    if (!strcmp(argv[i], "help"))
        return cli_usage("unknown command '%s'", argv[i + 1]);
    for (const cli_cmd *const *c = cli_cmds; *c; c++)
        if (!strcmp((*c)->name, argv[i]))
            return (*c)->run(argc - i, argv + i);
    return cli_usage("unknown command '%s'", argv[i]);
}
