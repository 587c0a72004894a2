/* compute/transform.c — the computation of dispycos_client4.c: files in
 * and out.
 *
 * Job "upper": reads the file "in.txt" the client sent into its working
 * directory (the worker's scratch directory), writes "out.txt" beside it
 * — each line upper-cased, numbered from 1 ("3: TEXT") — which the client
 * fetches with the result (pc_job_spec.files_out). The result is the
 * text "N lines".
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "picos/computation.h"

static int
upper(pc_job *j, const void *in, size_t len)
{
    FILE *f = fopen("in.txt", "r"), *o;
    char line[4096], res[32];
    int n = 0;

    (void)in, (void)len;
    if (!f)
        return pc_job_fail(j, "no in.txt in the job's directory");
    if (!(o = fopen("out.txt", "w"))) {
        fclose(f);
        return pc_job_fail(j, "can't write out.txt");
    }
    while (fgets(line, sizeof line, f)) {
        for (char *p = line; *p; p++)
            *p = (char)toupper((unsigned char)*p);
        fprintf(o, "%d: %s", ++n, line);
    }
    fclose(f);
    if (fclose(o) != 0)
        return pc_job_fail(j, "writing out.txt failed");
    snprintf(res, sizeof res, "%d lines", n);
    return pc_job_return(j, res, strlen(res));
}

PC_COMPUTATION(.name = "transform", .version = 1,
               .jobs = (const pc_job_def[]){{.name = "upper", .fn = upper},
                                            {0}});
