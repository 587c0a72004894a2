/* apps/picos/call.c — `picos call SERVICE [--data @FILE|-|TEXT] [--type T]
 * [--json [--compact]]`: one request to a Remote Pico Service, its reply
 * on stdout.
 *
 * Everything that can be wrong with the request is found before the
 * cluster is joined (a file that can't be read, JSON that does not parse)
 * or before anything is sent (JSON that does not fit the service's request
 * type), so a refused request never reaches the service. The call itself
 * is pc_rps_request() with --timeout as its deadline: the service
 * abandons it at the deadline and the CLI gets PC_ETIMEDOUT.
 *
 * The service is looked up once without waiting (pc_locate with timeout
 * 0: one round trip to the registry) so that a name nobody registered is
 * "not found" at once, exit 3, instead of a wait for it to appear.
 *
 * Bytes by default: the data is sent as it is, as a message of type --type
 * (default "bytes"), and the reply's payload is written to stdout as it is
 * (a newline is added only when stdout is a terminal and the reply does
 * not end with one, so pipes and files get the exact bytes). With --json
 * the CLI asks the service for its description and schema
 * (pc_rps_describe), encodes the JSON request as the service's request
 * type and prints the reply decoded from its type (pbjson.c). Every
 * failure is one line on stderr (docs/cli.md lists them).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "picos/monitor.h"
#include "picos/registry.h"
#include "picos/rps.h"
#include "picos/task.h"

#include "cli.h"
#include "pbjson.h"

#define DEFAULT_TYPE "bytes"

typedef struct call_args {
    const char *service;
    const char *data; /* --data as given, NULL: none */
    const char *type; /* --type */
    bool compact;     /* --compact */
} call_args;

/* What the command prints once the node has stopped. */
typedef struct output {
    char *bytes; /* malloc'd */
    size_t len;
    bool json; /* bytes is JSON text: a newline follows */
} output;

/* ---- the request ------------------------------------------------------------- */

/* All of f into *buf (malloc'd, NUL-terminated), at most PBJSON_MAX_BYTES. */
static int
slurp(FILE *f, const char *what, char **buf, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *b = malloc(cap + 1);

    if (!b)
        return cli_fail("out of memory");
    for (;;) {
        size_t r;
        if (n == cap) {
            char *nb;
            if (cap >= PBJSON_MAX_BYTES) {
                free(b);
                return cli_fail("%s: larger than %u bytes", what,
                                PBJSON_MAX_BYTES);
            }
            if (!(nb = realloc(b, 2 * cap + 1))) {
                free(b);
                return cli_fail("out of memory");
            }
            b = nb;
            cap *= 2;
        }
        r = fread(b + n, 1, cap - n, f);
        n += r;
        if (r == 0) {
            if (ferror(f)) {
                int e = errno;
                free(b);
                return cli_fail("%s: %s", what, strerror(e));
            }
            break;
        }
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return CLI_OK;
}

/* The request's bytes: --data @FILE, - (stdin), TEXT, or none (empty). */
static int
read_data(const call_args *a, char **buf, size_t *len)
{
    FILE *f;
    int st;

    if (!a->data || (a->data[0] != '@' && strcmp(a->data, "-"))) {
        const char *t = a->data ? a->data : "";
        *len = strlen(t);
        if (!(*buf = strdup(t)))
            return cli_fail("out of memory");
        return CLI_OK;
    }
    if (!strcmp(a->data, "-"))
        return slurp(stdin, "standard input", buf, len);
    if (!(f = fopen(a->data + 1, "rb")))
        return cli_fail("%s: %s", a->data + 1, strerror(errno));
    st = slurp(f, a->data + 1, buf, len);
    fclose(f);
    return st;
}

/* A usage-class error that --help would not help with: the request given
 * is not what it must be. One line, exit 2. */
static int __attribute__((format(printf, 1, 2)))
bad_request(const char *fmt, ...)
{
    char line[PBJSON_ERR_MAX + 64];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    fprintf(stderr, "picos: %s\n", line);
    return CLI_USAGE;
}

/* ---- the call -------------------------------------------------------------------- */

/* The one line for a call that did not give a reply. */
static int
call_failed(const char *svc, pc_err rc, const char *text)
{
    switch (rc) {
    case PC_ENOENT:
        fprintf(stderr, "picos: no service '%s'\n", svc);
        return CLI_NOTFOUND;
    case PC_ETIMEDOUT:
        return cli_fail("service '%s': no reply within %g s", svc, cli.timeout);
    case PC_EFAILED:
        return cli_fail("service '%s' failed: %s", svc, text);
    case PC_EFULL:
        return cli_fail("service '%s' refused the call: %s", svc,
                        *text ? text : "busy");
    case PC_EINVAL:
        return cli_fail("service '%s' refused the request: %s", svc,
                        *text ? text : "bad request");
    case PC_ECLOSED:
        return cli_fail("service '%s' is closing or closed", svc);
    case PC_EKILLED:
        return cli_fail("service '%s': the call was terminated", svc);
    case PC_EUNREACH:
        return cli_fail("service '%s': its node is unreachable", svc);
    default:
        return cli_fail("service '%s': %s", svc, pc_strerror(rc));
    }
}

/* The JSON request as a message of the service's request type, and the
 * schema to read the reply with. */
static int
json_request(const call_args *a, pc_rps_client *c, const json_t *j,
             pbjson_schema **schema, pc_msg **req)
{
    pc_rps_info info;
    pc_msg *sm = NULL;
    const void *d;
    size_t n = 0;
    uint8_t *bytes = NULL;
    char err[PBJSON_ERR_MAX];
    pc_err rc;

    if ((rc = pc_rps_describe(c, cli.timeout, &info, &sm)) != PC_OK) {
        if (rc == PC_ETIMEDOUT)
            return cli_fail("service '%s': no description within %g s",
                            a->service, cli.timeout);
        return call_failed(a->service, rc, pc_rps_client_error(c));
    }
    if (!sm || !info.request_type[0]) {
        pc_msg_free(&sm);
        return cli_fail("service '%s' takes bytes, not JSON: call it "
                        "without --json",
                        a->service);
    }
    d = pc_msg_data(sm, &n);
    rc = pbjson_schema_load(d, n, schema, err, sizeof err);
    pc_msg_free(&sm);
    if (rc != PC_OK)
        return cli_fail("service '%s': %s", a->service, err);
    if (pbjson_encode(*schema, info.request_type, j, &bytes, &n, err,
                      sizeof err) != PC_OK)
        return bad_request("request: %s", err);
    rc = pc_msg_new(req, info.request_type, bytes, n);
    free(bytes);
    return rc == PC_OK ? CLI_OK : cli_fail("out of memory");
}

/* The reply as the command prints it. */
static int
reply_out(const call_args *a, const pbjson_schema *schema, const pc_msg *rep,
          output *o)
{
    const void *d = NULL;
    size_t n = 0;
    json_t *j = NULL;
    char err[PBJSON_ERR_MAX];

    if (rep)
        d = pc_msg_data(rep, &n);
    if (!cli.json) {
        if (!(o->bytes = malloc(n ? n : 1)))
            return cli_fail("out of memory");
        if (n)
            memcpy(o->bytes, d, n);
        o->len = n;
        return CLI_OK;
    }
    o->json = true;
    if (!rep) {
        j = json_null();
    } else if (pbjson_schema_has(schema, pc_msg_type(rep))) {
        if (pbjson_decode(schema, pc_msg_type(rep), d, n, &j, err,
                          sizeof err) != PC_OK)
            return cli_fail("service '%s': its reply: %s", a->service, err);
    } else {
        /* a type the schema does not describe: its type and bytes, as
         * a google.protobuf.Any that could not be unpacked would show */
        char *b64 = pbjson_base64(d, n);
        j = b64 ? json_pack("{s:s, s:s}", "@type", pc_msg_type(rep), "value",
                            b64)
                : NULL;
        free(b64);
        if (!j)
            return cli_fail("out of memory");
    }
    o->bytes = pbjson_dumps(j, !a->compact);
    json_decref(j);
    if (!o->bytes)
        return cli_fail("out of memory");
    o->len = strlen(o->bytes);
    return CLI_OK;
}

/* Joined: locate, (describe,) call, keep the output. */
static int
run(const call_args *a, const char *data, size_t len, const json_t *j,
    output *o)
{
    pc_rps_client *c = NULL;
    pbjson_schema *schema = NULL;
    pc_msg *req = NULL, *rep = NULL;
    pc_ref ref;
    pc_err rc;
    int st;

    /* not there now: not found now (pc_rps_locate would wait for it) */
    rc = pc_locate(PC_NAME_SERVICE, a->service, 0, &ref);
    if (rc == PC_OK)
        rc = pc_rps_locate(a->service, cli.timeout, &c);
    if (rc == PC_ENOENT)
        return call_failed(a->service, rc, "");
    if (rc != PC_OK)
        return cli_fail_rc("locating the service", rc);
    if (cli.json)
        st = json_request(a, c, j, &schema, &req);
    else
        st = pc_msg_new(&req, a->type, data, len) == PC_OK
                 ? CLI_OK
                 : cli_fail("out of memory");
    if (st == CLI_OK) {
        rc = pc_rps_request(c, &req, cli.timeout, &rep);
        if (rc == PC_OK)
            st = reply_out(a, schema, rep, o);
        else
            st = call_failed(a->service, rc,
                             rc == PC_EFAILED && rep ? pc_msg_str(rep)
                                                     : pc_rps_client_error(c));
    }
    pc_msg_free(&req);
    pc_msg_free(&rep);
    pbjson_schema_free(&schema);
    pc_rps_client_free(&c);
    return st;
}

static int
call(int argc, char **argv)
{
    call_args a = {.type = DEFAULT_TYPE};
    output o = {0};
    char *data = NULL;
    size_t len = 0;
    json_t *j = NULL;
    int exit_now = -1, st, r;

    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if ((r = cli_value_opt("--data", argc, argv, &i, &a.data)) ||
            (r = cli_value_opt("--type", argc, argv, &i, &a.type))) {
            if (r < 0)
                return cli_usage("call: option %s needs a value", s);
            continue;
        }
        if (!strcmp(s, "--compact")) {
            a.compact = true;
            continue;
        }
        if (cli_opt(&cli_cmd_call, argc, argv, &i, &exit_now)) {
            if (exit_now >= 0)
                return exit_now;
            continue;
        }
        if (s[0] == '-' && s[1])
            return cli_usage("call: unknown option '%s'", s);
        if (a.service)
            return cli_usage("call: unexpected argument '%s'", s);
        a.service = s;
    }
    if (!a.service || !*a.service)
        return cli_usage("call: no SERVICE given");
    if (strlen(a.service) > PC_NAME_MAX)
        return cli_usage("call: a service name is at most %d bytes",
                         PC_NAME_MAX);
    if (strlen(a.type) > PC_MSG_TYPE_MAX)
        return cli_usage("call: --type longer than %d bytes", PC_MSG_TYPE_MAX);
    if ((st = read_data(&a, &data, &len)) != CLI_OK)
        return st;
    if (cli.json) {
        json_error_t je;
        j = json_loadb(len ? data : "{}", len ? len : 2, 0, &je);
        if (!j) {
            free(data);
            return bad_request("request: not JSON: %s", je.text);
        }
    }
    if ((st = cli_join()) == CLI_OK) {
        st = run(&a, data, len, j, &o);
        cli_leave();
    }
    free(data);
    json_decref(j);
    /* JSON text ends with a newline; bytes only on a terminal */
    if (st == CLI_OK && o.len &&
        (fwrite(o.bytes, 1, o.len, stdout) != o.len ||
         ((o.json || (isatty(STDOUT_FILENO) && o.bytes[o.len - 1] != '\n')) &&
          putchar('\n') == EOF)))
        st = cli_fail("writing the reply: %s", strerror(errno));
    free(o.bytes);
    if (st == CLI_OK && fflush(stdout) == EOF)
        st = cli_fail("writing the reply: %s", strerror(errno));
    return st;
}

const cli_cmd cli_cmd_call = {
    .name = "call",
    .run = call,
    .args = "SERVICE [--data @FILE|-|TEXT] [--type T] [--json [--compact]]",
    .summary = "call a service and print its reply (exit 3: no such service)",
    .help =
        "\n  --data @FILE  the request is FILE's bytes; - : standard input;\n"
        "                anything else: the text itself (default: empty)\n"
        "  --type T      the request's message type (bytes only; default "
        "\"" DEFAULT_TYPE "\")\n"
        "  --json        the request is JSON (default {}), encoded as the "
        "service's\n"
        "                request type; the reply is printed as JSON\n"
        "  --compact     JSON on one line instead of indented\n"
        "  --timeout S   also the call's deadline: the service abandons it "
        "then\n"
        "\nWithout --json the reply's bytes go to stdout as they are (a "
        "newline is\nadded only on a terminal). Exit 1 with one line when "
        "the call timed out,\nfailed (the service's error), was refused "
        "(busy, bad request) or its node\nwent down; 2 for a request that "
        "is not valid JSON or does not fit the\nservice's type (nothing is "
        "sent then).\n",
};
