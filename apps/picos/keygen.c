/* apps/picos/keygen.c — `picos keygen [--force] FILE`: a fresh key pair.
 *
 * pc_curve_keygen() makes the pair, pc_curve_write() writes the file (mode
 * 0600, written beside it and renamed over it, so a reader never sees half
 * a file). An existing FILE is kept unless --force: overwriting the key
 * pair of a running cluster locks every node out of it, so it has to be
 * asked for. No node is started and no registry asked. The public key is
 * printed (the file's first line), which is what an operator compares
 * across machines.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "picos/net.h"

#include "cli.h"

/* The file's "public Z85" line, without the word and the newline. */
static void
public_key(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    char line[128];

    snprintf(buf, size, "?");
    if (!f)
        return;
    if (fgets(line, sizeof line, f) && !strncmp(line, "public ", 7)) {
        line[strcspn(line, "\r\n")] = '\0';
        snprintf(buf, size, "%s", line + 7);
    }
    fclose(f);
}

static int
keygen(int argc, char **argv)
{
    const char *path = NULL;
    bool force = false;
    pc_curve_keys k;
    struct stat st;
    char pub[128];
    pc_err rc;
    int exit_now = -1;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--force") || !strcmp(argv[i], "-f"))
            force = true;
        else if (cli_opt(&cli_cmd_keygen, argc, argv, &i, &exit_now)) {
            if (exit_now >= 0)
                return exit_now;
        } else if (argv[i][0] == '-' && argv[i][1])
            return cli_usage("keygen: unknown option '%s'", argv[i]);
        else if (path)
            return cli_usage("keygen: one FILE only ('%s' and '%s')", path,
                             argv[i]);
        else
            path = argv[i];
    }
    if (!path)
        return cli_usage("keygen: FILE missing");
    if (lstat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return cli_fail("%s is a directory", path);
        if (!force)
            return cli_fail("%s exists: not overwritten (--force replaces "
                            "it)",
                            path);
    } else if (errno != ENOENT)
        return cli_fail("%s: %s", path, strerror(errno));
    if ((rc = pc_curve_keygen(&k)) != PC_OK)
        return cli_fail("making a key pair: %s", pc_strerror(rc));
    rc = pc_curve_write(path, &k);
    explicit_bzero(&k, sizeof k);
    if (rc != PC_OK) {
        if (*cli_last_log())
            return cli_fail("%s", cli_last_log());
        return cli_fail("writing %s: %s", path, pc_strerror(rc));
    }
    public_key(path, pub, sizeof pub);
    if (cli.json) {
        return cli_json_print(
            json_pack("{s:s, s:s}", "file", path, "public", pub));
    }
    printf("wrote %s (mode 0600), public key %s\n", path, pub);
    return CLI_OK;
}

const cli_cmd cli_cmd_keygen = {
    .name = "keygen",
    .run = keygen,
    .args = "[--force] FILE",
    .summary = "write a fresh CURVE key pair file (mode 0600)",
    .help = "\nWrites FILE with a new random key pair (two lines, \"public "
            "Z85\" and\n\"secret Z85\"), for nodes started with a key file "
            "instead of a secret\n(pc_net_opts.key_file, picos --key-file). "
            "Prints the public key.\n\n"
            "  -f, --force  replace FILE when it exists (refused otherwise: "
            "exit 1)\n",
};
