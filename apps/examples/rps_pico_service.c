/* rps_pico_service.c — a tiny (pico) Remote Pico Service: the server's
 * time (pycos's rps_pico_service.py).
 *
 *     picos-rps-pico-service [--registry EP[,EP]] [--secret-file FILE]
 *                            [--listen ENDPOINT] [--timeout S] [--delay S]
 *
 * The node joins the registries and registers the service "pico_service"
 * (pc_rps_register()): every call runs pico_service() below as a task of
 * its own on this node, and the task's exit value is the call's result.
 * The request "time" (a trailing newline is ignored, so `echo time |
 * picos call pico_service --data -` works) gets the server's time as text,
 * after a random pause of up to --delay S seconds (default 0.1; pycos's
 * simulated sensor read); any other request fails the call with
 * pc_exit_error("unknown request '...'"), which the client gets as the
 * call's error text. picos-rps-pico-client calls it.
 *
 * The first line of stdout says where the node listens and that the
 * service is registered. SIGTERM or SIGINT closes the service (calls still
 * running get a second to finish) and ends the program with status 0.
 * The secret, the registry and the errors are as in every cluster
 * example (cluster_ex.h).
 *
 * The same file, compiled with -DPICO_SERVICE_LIBRARY, is pico_service.so:
 * a service library for `picos-node --service pico_service.so`
 * (picos/service.h). It has no main(): its entry point adds the same
 * service, with the delay from the node's config file ([service
 * "pico_service"] delay = S), and it links against nothing but libc —
 * picos's functions come from the picos-node that loads it.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "picos/picos.h"
#include "picos/rps.h"

#define SERVICE "pico_service"

static double delay = 0.1; /* the longest pause of a call, seconds */

/* A call's task: pycos's pico_service(req). */
static pc_msg *
pico_service(pc_msg *req)
{
    char what[64], text[128];
    size_t n = strlen(pc_msg_str(req));
    time_t now = time(NULL);
    struct tm tm;
    pc_msg *reply = NULL;

    while (n && isspace((unsigned char)pc_msg_str(req)[n - 1]))
        n--; /* `echo time` sends "time\n" */
    snprintf(what, sizeof what, "%.*s", (int)n, pc_msg_str(req));
    pc_msg_free(&req);
    for (char *p = what; *p; p++) /* the text goes into a one-line error */
        if (!isprint((unsigned char)*p))
            *p = '?';
    if (strcmp(what, "time")) {
        snprintf(text, sizeof text, "unknown request '%s'", what);
        pc_exit_error(text);
    }
    if (delay > 0) /* reading a sensor takes a while */
        pc_sleep(delay * (double)random() / RAND_MAX);
    strftime(text, sizeof text, "%a %b %e %H:%M:%S %Y", localtime_r(&now, &tm));
    if (pc_msg_new_str(&reply, "text", text) != PC_OK)
        pc_exit_error("out of memory");
    return reply;
}

static const pc_rps_opts service = {
    .name = SERVICE,
    .fn = pico_service,
    .max_queued = 1024, /* beyond 64 running, so -n 1000 is served */
    .version = 1,
};

#ifdef PICO_SERVICE_LIBRARY
/* ---- pico_service.so ------------------------------------------------------ */

#include "picos/service.h"

pc_err picos_service_init(pc_service_ctx *ctx);

static pc_err
init(pc_service_ctx *ctx)
{
    const char *d = pc_service_config(ctx, "delay");

    if (d)
        delay = atof(d);
    return pc_service_add(ctx, &service);
}

PC_SERVICE_EXPORT(init)

#else
/* ---- the program ---------------------------------------------------------- */

#include "cluster_ex.h"

static ex_cluster x = {
    .prog = "picos-rps-pico-service",
    .usage = "[options]: serves the Remote Pico Service '" SERVICE "'",
    .options = "  --delay S           the longest pause before a reply "
               "(default 0.1)\n",
    .server = true,
};
static pc_rps *svc;

/* --delay S */
static int
option(const char *a, const char *v)
{
    return v && !strcmp(a, "--delay") && ex_number(v, 0, &delay) ? 2 : 0;
}

int
main(int argc, char **argv)
{
    int st;
    pc_err rc;

    ex_args(&x, argc, argv, option);
    if ((st = ex_start(&x)))
        return st;
    srandom((unsigned)time(NULL));
    /* pycos: RPS(pico_service).register() */
    rc = pc_rps_register(&service, x.timeout, &svc);
    return ex_serve(&x, rc, SERVICE, &svc) == PC_OK ? 0 : 1;
}
#endif
