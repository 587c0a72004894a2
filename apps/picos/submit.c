/* apps/picos/submit.c — `picos submit LIB FN [options]`: run jobs of a
 * computation (docs/computations.md) on the cluster's compute nodes and
 * print each result as it ends.
 *
 * Everything that can be wrong with the command is found before the
 * cluster is joined: the library, the data files and the job input files
 * are read (or checked readable) first, and output files that would be
 * overwritten are refused then (nothing runs); so the exit status 2 means
 * "nothing was sent". Then pc_compute_open() sends the library to the
 * nodes (waiting up to the global --timeout for a node to be ready), every
 * job is submitted at once (the client library batches and schedules
 * them), and the results are taken with pc_compute_wait_any() in the order
 * the jobs end, each printed and flushed at once: one line per job on
 * stdout when it is ok, one line on stderr when it is not (so `2>&1`
 * shows them in order, and stdout holds only results), or with --json one
 * JSON object per line on stdout for every job and the same line on
 * stderr for a failure. Jobs are numbered from 1 in the order given (a
 * --lines job's number is its line number).
 *
 * A job's files_out are written into the working directory as they come,
 * under their names when one job runs, as NAME.K (K the job's number) when
 * several do; an existing file is not replaced unless --force (checked
 * before joining, and again with O_EXCL at write time).
 *
 * --timeout after the command is the jobs' run-time limit
 * (pc_job_spec.timeout), not the global option; the global --timeout
 * (before the command) bounds the registry and pc_compute_open().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "picos/computation.h"
#include "picos/compute.h"

#include "cli.h"

#define MAX_LIST 64              /* --file, --in, --out, --nodes */
#define INPUT_MAX (768u * 1024u) /* a job's input (docs/computations.md) */
#define LINES_MAX (256ull * 1024 * 1024) /* a --lines file */

typedef struct in_file {
    const char *name; /* as given before '=' (points into argv) */
    const char *path;
    char *data;
    size_t len;
} in_file;

typedef struct submit_args {
    const char *lib, *fn;
    const char *data;  /* --data */
    const char *lines; /* --lines */
    long count;        /* --count; 0: not given */
    const char *files[MAX_LIST + 1];
    size_t nfiles;
    in_file in[MAX_LIST];
    size_t nin;
    const char *out[MAX_LIST + 1];
    size_t nout;
    const char *nodes[MAX_LIST + 1];
    size_t nnodes;
    const char *nodes_text; /* --nodes as given */
    char *nodes_buf;        /* --nodes, split into nodes[] */
    int cpus;
    size_t memory;
    double job_timeout;
    int retries; /* -1: not given */
    bool force;
} submit_args;

/* One job's input: a slice of a buffer. */
typedef struct input {
    const char *p;
    size_t len;
    long line; /* its number: line number, or 1.. for --count */
} input;

/* ---- reading what was given ---------------------------------------------------- */

/* All of f, at most max bytes, into *buf (malloc'd, NUL after it). */
static int
slurp(FILE *f, const char *what, size_t max, char **buf, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *b = malloc(cap + 1);

    if (!b)
        return cli_fail("out of memory");
    for (;;) {
        size_t r;
        if (n == cap) {
            char *nb;
            if (cap >= max) {
                free(b);
                fprintf(stderr, "picos: %s: larger than %zu bytes\n", what,
                        max);
                return CLI_USAGE;
            }
            cap = 2 * cap > max ? max : 2 * cap;
            if (!(nb = realloc(b, cap + 1))) {
                free(b);
                return cli_fail("out of memory");
            }
            b = nb;
        }
        r = fread(b + n, 1, cap - n, f);
        n += r;
        if (r == 0) {
            if (ferror(f)) {
                int e = errno;
                free(b);
                fprintf(stderr, "picos: %s: %s\n", what, strerror(e));
                return CLI_USAGE;
            }
            break;
        }
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return CLI_OK;
}

/* A file (or stdin for "-") read whole; a missing or unreadable one is a
 * usage error: nothing has been sent. */
static int
read_path(const char *path, size_t max, char **buf, size_t *len)
{
    FILE *f;
    int st;

    if (!strcmp(path, "-"))
        return slurp(stdin, "standard input", max, buf, len);
    if (!(f = fopen(path, "rb"))) {
        fprintf(stderr, "picos: %s: %s\n", path, strerror(errno));
        return CLI_USAGE;
    }
    st = slurp(f, path, max, buf, len);
    fclose(f);
    return st;
}

/* A readable regular file, or one line and CLI_USAGE. */
static int
check_readable(const char *what, const char *path)
{
    struct stat st;

    if (stat(path, &st) != 0 || access(path, R_OK) != 0) {
        fprintf(stderr, "picos: %s %s: %s\n", what, path, strerror(errno));
        return CLI_USAGE;
    }
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, "picos: %s %s: not a regular file\n", what, path);
        return CLI_USAGE;
    }
    return CLI_OK;
}

/* A plain file name, as the node requires: no '/', not "." or "..". */
static bool
plain_name(const char *s)
{
    return *s && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..") &&
           strlen(s) < 256;
}

/* "123", "64K", "512M", "2G" (powers of 1024), > 0. */
static bool
parse_bytes(const char *s, size_t *out)
{
    char *end;
    double v = strtod(s, &end);
    double mult = 1;

    if (end == s || !isfinite(v) || v <= 0)
        return false;
    if (*end == 'k' || *end == 'K')
        mult = 1024.0, end++;
    else if (*end == 'm' || *end == 'M')
        mult = 1024.0 * 1024, end++;
    else if (*end == 'g' || *end == 'G')
        mult = 1024.0 * 1024 * 1024, end++;
    if (*end == 'i' && mult > 1)
        end++;
    if (*end == 'B' && mult > 1)
        end++;
    if (*end || v * mult > 1e15)
        return false;
    *out = (size_t)(v * mult);
    return *out > 0;
}

static bool
parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* The inputs: --lines (one per line), else --data (or empty), each
 * --count times. *buf holds the bytes. */
static int
make_inputs(const submit_args *a, char **buf, input **out, size_t *n)
{
    size_t len = 0, k = 0, lines = 0;
    long count = a->count > 0 ? a->count : 1;
    input *v;
    int st;

    *buf = NULL;
    if (a->lines)
        st = read_path(a->lines, LINES_MAX, buf, &len);
    else if (a->data && (a->data[0] == '@' || !strcmp(a->data, "-")))
        st = read_path(a->data[0] == '@' ? a->data + 1 : "-", INPUT_MAX, buf,
                       &len);
    else {
        const char *t = a->data ? a->data : "";
        len = strlen(t);
        st = (*buf = strdup(t)) ? CLI_OK : cli_fail("out of memory");
    }
    if (st != CLI_OK)
        return st;
    if (a->lines) {
        for (size_t i = 0; i < len; i++)
            lines += (*buf)[i] == '\n';
        lines += len > 0 && (*buf)[len - 1] != '\n';
        if (lines == 0) {
            fprintf(stderr, "picos: submit: --lines %s: no lines\n", a->lines);
            return CLI_USAGE;
        }
    } else
        lines = 1;
    if (!(v = calloc(lines * (size_t)count, sizeof *v)))
        return cli_fail("out of memory");
    for (long c = 0; c < count; c++) {
        const char *p = *buf, *end = *buf + len;
        long ln = 0;
        if (!a->lines) {
            v[k++] = (input){*buf, len, c + 1};
            continue;
        }
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
            input in = {p, l, ++ln};
            if (l > 0 && p[l - 1] == '\r')
                in.len--;
            if (in.len > INPUT_MAX) {
                free(v);
                fprintf(stderr,
                        "picos: submit: --lines %s: line %ld is larger than "
                        "%u bytes\n",
                        a->lines, ln, INPUT_MAX);
                return CLI_USAGE;
            }
            if (count > 1)
                in.line = c * (long)lines + ln;
            v[k++] = in;
            p += l + 1;
        }
    }
    *out = v;
    *n = k;
    return CLI_OK;
}

/* Where job `num`'s output file `name` goes. */
static void
out_path(const char *name, long num, size_t njobs, char *buf, size_t size)
{
    if (njobs == 1)
        snprintf(buf, size, "%s", name);
    else
        snprintf(buf, size, "%s.%ld", name, num);
}

/* ---- results --------------------------------------------------------------- */

/* Text that prints on one line as it is (UTF-8, no control bytes but
 * tab): true, and *len without one final newline. */
static bool
is_text(const char *p, size_t *len)
{
    size_t n = *len;

    if (n > 0 && p[n - 1] == '\n')
        n--;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)p[i];
        size_t k = c < 0x80             ? 0
                   : (c & 0xe0) == 0xc0 ? 1
                   : (c & 0xf0) == 0xe0 ? 2
                   : (c & 0xf8) == 0xf0 ? 3
                                        : 9;
        if (k == 9 || i + k >= n + (k == 0))
            return false;
        if (k == 0 && c < 0x20 && c != '\t')
            return false;
        if (c == 0x7f)
            return false;
        for (size_t j = 1; j <= k; j++)
            if (((unsigned char)p[i + j] & 0xc0) != 0x80)
                return false;
        i += k + 1;
    }
    *len = n;
    return true;
}

static char *
hex(const void *data, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *p = data;
    char *s = malloc(2 * len + 1);

    if (!s)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        s[2 * i] = digits[p[i] >> 4];
        s[2 * i + 1] = digits[p[i] & 15];
    }
    s[2 * len] = '\0';
    return s;
}

/* Write one output file; "" or the reason it was not written. */
static void
write_out(const char *path, const pc_job_file *f, bool force, char *why,
          size_t size)
{
    int fd =
        open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (force ? O_TRUNC : O_EXCL),
             0644);
    size_t off = 0;

    *why = '\0';
    if (fd < 0) {
        snprintf(why, size, "%s: %s%s", path, strerror(errno),
                 errno == EEXIST ? " (--force replaces it)" : "");
        return;
    }
    while (off < f->len) {
        ssize_t w = write(fd, (const char *)f->data + off, f->len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            snprintf(why, size, "%s: %s", path, strerror(errno));
            break;
        }
        off += (size_t)w;
    }
    if (close(fd) != 0 && !*why)
        snprintf(why, size, "%s: %s", path, strerror(errno));
}

/* "node1/w0" or "-". */
static const char *
where(const pc_job_result *r, char *buf, size_t size)
{
    if (!r->node[0])
        return "-";
    if (r->worker >= 0)
        snprintf(buf, size, "%s/w%d", r->node, r->worker);
    else
        snprintf(buf, size, "%s", r->node);
    return buf;
}

static double
seconds(const pc_job_result *r)
{
    return r->started > 0 && r->ended >= r->started ? r->ended - r->started : 0;
}

/* Print job `num`'s end; returns whether it counts as ok (its result, and
 * every output file written). */
static bool
report(const submit_args *a, const pc_job_result *r, long num, size_t njobs)
{
    char at[96], path[512], why[600], *h = NULL;
    size_t len = r->len;
    bool text = !r->data || is_text(r->data, &len);
    bool ok = r->why == PC_JOB_OK;
    json_t *files = cli.json ? json_array() : NULL;

    /* the files first: a file that can't be written fails the job */
    for (size_t i = 0; ok && i < r->nfiles; i++) {
        out_path(r->files[i].name, num, njobs, path, sizeof path);
        write_out(path, &r->files[i], a->force, why, sizeof why);
        if (*why) {
            fprintf(stderr, "picos: job %ld ok %s %.3f s, but its file %s\n",
                    num, where(r, at, sizeof at), seconds(r), why);
            ok = false;
        } else if (!cli.json)
            printf("job %ld wrote %s (%zu bytes)\n", num, path,
                   r->files[i].len);
        if (files && !*why)
            json_array_append_new(
                files,
                json_pack("{s:s, s:s, s:I}", "name", r->files[i].name, "path",
                          path, "bytes", (json_int_t)r->files[i].len));
    }
    if (!text && !(h = hex(r->data, r->len))) {
        json_decref(files);
        cli_fail("out of memory");
        return false;
    }
    if (cli.json) {
        json_t *o = json_pack(
            "{s:I, s:s, s:b, s:s, s:s, s:i, s:i, s:f, s:f, s:f}", "job",
            (json_int_t)num, "id", cli_hex(r->id, at, sizeof at), "ok",
            r->why == PC_JOB_OK, "why", pc_job_why_str(r->why), "node", r->node,
            "worker", r->worker, "attempts", r->attempts, "started", r->started,
            "ended", r->ended, "seconds", seconds(r));
        if (o && r->why != PC_JOB_OK)
            json_object_set_new(o, "error", json_string(r->error));
        json_t *res = r->data && !memchr(r->data, 0, r->len)
                          ? json_stringn(r->data, r->len)
                          : NULL; /* NULL too when not UTF-8 */
        if (!res && r->data && !h && !(h = hex(r->data, r->len))) {
            json_decref(o);
            o = NULL;
        }
        if (o && res)
            json_object_set_new(o, "result", res);
        else if (o && r->data)
            json_object_set_new(o, "result_hex", json_string(h));
        else
            json_decref(res);
        if (o && files)
            json_object_set_new(o, "files", files);
        else
            json_decref(files);
        if (o)
            json_dumpf(o, stdout, JSON_COMPACT);
        putchar('\n');
        json_decref(o);
    } else if (r->why == PC_JOB_OK) {
        printf("job %ld ok %s %.3f s%s%.*s\n", num, where(r, at, sizeof at),
               seconds(r), r->len ? ": " : "", text ? (int)len : (int)strlen(h),
               text ? (r->data ? (const char *)r->data : "") : h);
    }
    if (r->why != PC_JOB_OK)
        fprintf(stderr, "picos: job %ld %s %s %.3f s: %s\n", num,
                pc_job_why_str(r->why), where(r, at, sizeof at), seconds(r),
                *r->error ? r->error : pc_strerror(r->rc));
    fflush(stdout);
    free(h);
    return ok;
}

/* ---- the run ------------------------------------------------------------------- */

/* A job's id and its number, sorted by id to find a result's number. */
typedef struct id_num {
    uint64_t id;
    long num;
} id_num;

static int
by_id(const void *x, const void *y)
{
    uint64_t a = ((const id_num *)x)->id, b = ((const id_num *)y)->id;

    return a < b ? -1 : a > b;
}

/* The one line for a pc_compute_open() that failed. */
static int
open_failed(const submit_args *a, pc_err rc)
{
    const char *e = pc_compute_error(NULL);

    switch (rc) {
    case PC_EINVAL: /* its text names the file */
        if (*e)
            fprintf(stderr, "picos: %s\n", e);
        else
            fprintf(stderr, "picos: %s: not a computation\n", a->lib);
        return CLI_USAGE;
    case PC_ENOENT:
        fprintf(stderr,
                "picos: no compute node in the cluster%s%s "
                "(picos-node --compute; picos jobs)\n",
                a->nnodes ? " matches --nodes " : "",
                a->nnodes ? a->nodes_text : "");
        return CLI_NOTFOUND;
    case PC_EFULL:
        /* the library's text says it all ("no free CPU on the 2 compute
         * nodes found (1 suspended ...)") */
        return cli_fail("%s", *e ? e
                                 : "compute nodes found, none with a "
                                   "free CPU");
    case PC_EFAILED:
        return cli_fail("every compute node refused %s: %s", a->lib, e);
    case PC_ETIMEDOUT:
        return cli_fail("no compute node ready within %g s%s%s", cli.timeout,
                        *e ? ": " : "", e);
    case PC_ESTATE:
    case PC_EUNREACH:
        return cli_fail_rc("opening the computation", rc);
    default:
        return cli_fail("opening the computation: %s%s%s", pc_strerror(rc),
                        *e ? ": " : "", e);
    }
}

static int
run(const submit_args *a, const input *in, size_t n)
{
    pc_compute_opts o = {
        .library = a->lib,
        .files = a->nfiles ? a->files : NULL,
        .nodes = a->nnodes ? a->nodes : NULL,
        .cpus = a->cpus,
        .memory = a->memory,
        .max_retries = a->retries < 0    ? 0
                       : a->retries == 0 ? -1
                                         : a->retries,
    };
    pc_job_file jf[MAX_LIST];
    pc_job_spec *specs = calloc(n, sizeof *specs);
    uint64_t *ids = calloc(n, sizeof *ids);
    id_num *map = calloc(n, sizeof *map);
    pc_compute *c = NULL;
    size_t failed = 0, left = n;
    int st = CLI_OK;
    pc_err rc;

    if (!specs || !ids || !map) {
        free(specs), free(ids), free(map);
        return cli_fail("out of memory");
    }
    for (size_t i = 0; i < a->nin; i++)
        jf[i] = (pc_job_file){a->in[i].name, a->in[i].data, a->in[i].len};
    for (size_t i = 0; i < n; i++)
        specs[i] = (pc_job_spec){.fn = a->fn,
                                 .input = in[i].p,
                                 .len = in[i].len,
                                 .timeout = a->job_timeout,
                                 .files_in = a->nin ? jf : NULL,
                                 .nfiles_in = a->nin,
                                 .files_out = a->nout ? a->out : NULL};
    if ((rc = pc_compute_open(&o, cli.timeout, &c)) != PC_OK) {
        free(specs), free(ids), free(map);
        return open_failed(a, rc);
    }
    if ((rc = pc_compute_submit(c, specs, n, ids)) != PC_OK) {
        if (rc == PC_EINVAL) {
            /* every job has the same FN and files: not "job 0: ..." */
            const char *e = pc_compute_error(c);
            size_t k =
                strncmp(e, "job ", 4) ? 0 : 4 + strspn(e + 4, "0123456789");
            fprintf(stderr, "picos: %s\n",
                    k > 4 && !strncmp(e + k, ": ", 2) ? e + k + 2 : e);
            st = CLI_USAGE;
        } else
            st = cli_fail("submitting: %s", pc_compute_error(c));
        left = 0;
    }
    for (size_t i = 0; left > 0 && i < n; i++)
        map[i] = (id_num){ids[i], in[i].line};
    if (left > 0)
        qsort(map, n, sizeof *map, by_id);
    while (left > 0) {
        pc_job_result *r = NULL;
        long num = 0;

        rc = pc_compute_wait_any(c, -1, &r);
        if (rc != PC_OK) {
            st = cli_fail("waiting for results: %s (%zu jobs not reported)",
                          pc_strerror(rc), left);
            break;
        }
        {
            id_num key = {r->id, 0},
                   *hit = bsearch(&key, map, n, sizeof *map, by_id);
            num = hit ? hit->num : 0;
        }
        if (!report(a, r, num, n))
            failed++;
        left--;
        pc_job_result_free(&r);
    }
    pc_compute_close(&c, 5.0);
    free(specs);
    free(ids);
    free(map);
    if (st == CLI_OK && failed)
        st = CLI_FAILED;
    return st;
}

/* ---- the command ------------------------------------------------------------- */

static int
add(const char **list, size_t *n, const char *v, const char *opt)
{
    if (*n >= MAX_LIST)
        return cli_usage("submit: at most %d %s", MAX_LIST, opt);
    list[(*n)++] = v;
    list[*n] = NULL;
    return CLI_OK;
}

/* One option of submit's own at argv[*i]: CLI_OK taken, -1 not one of
 * them, else the exit status (the line printed). */
static int
own_option(submit_args *a, int argc, char **argv, int *i)
{
    static const char *const names[] = {
        "--data", "--lines",  "--count",   "--file",    "--in",   "--out",
        "--cpus", "--memory", "--timeout", "--retries", "--nodes"};
    const char *s = argv[*i], *v = NULL;
    long l;
    double d;
    char *end;

    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        int r = cli_value_opt(names[k], argc, argv, i, &v);
        if (r == 0)
            continue;
        if (r < 0)
            return cli_usage("submit: option %s needs a value", s);
        switch (k) {
        case 0:
            a->data = v;
            return CLI_OK;
        case 1:
            a->lines = v;
            return CLI_OK;
        case 2:
            if (!parse_long(v, 1, 10000000, &a->count))
                return cli_usage("submit: --count '%s': not a number from 1 "
                                 "to 10000000",
                                 v);
            return CLI_OK;
        case 3:
            return add(a->files, &a->nfiles, v, "--file");
        case 4: {
            const char *eq = strchr(v, '=');
            in_file *f = &a->in[a->nin];
            if (a->nin >= MAX_LIST)
                return cli_usage("submit: at most %d --in", MAX_LIST);
            if (!eq || eq[1] != '@' || !eq[2])
                return cli_usage("submit: --in '%s': not NAME=@PATH", v);
            f->name = strndup(v, (size_t)(eq - v));
            f->path = eq + 2;
            if (!f->name)
                return cli_fail("out of memory");
            a->nin++;
            if (!plain_name(f->name))
                return cli_usage("submit: --in '%s': the name must be a plain "
                                 "file name (no '/', not . or ..)",
                                 v);
            return CLI_OK;
        }
        case 5:
            if (!plain_name(v))
                return cli_usage("submit: --out '%s': not a plain file name "
                                 "(no '/', not . or ..)",
                                 v);
            return add(a->out, &a->nout, v, "--out");
        case 6:
            if (!parse_long(v, 1, 65536, &l))
                return cli_usage("submit: --cpus '%s': not a number from 1 to "
                                 "65536",
                                 v);
            a->cpus = (int)l;
            return CLI_OK;
        case 7:
            if (!parse_bytes(v, &a->memory))
                return cli_usage("submit: --memory '%s': not a size in bytes "
                                 "(e.g. 512M, 2G)",
                                 v);
            return CLI_OK;
        case 8:
            d = strtod(v, &end);
            if (end == v || *end || !isfinite(d) || d <= 0 || d > 1e9)
                return cli_usage("submit: --timeout '%s': not a number of "
                                 "seconds > 0",
                                 v);
            a->job_timeout = d;
            return CLI_OK;
        case 9:
            if (!parse_long(v, 0, 1000, &l))
                return cli_usage("submit: --retries '%s': not a number from 0 "
                                 "to 1000",
                                 v);
            a->retries = (int)l;
            return CLI_OK;
        default: {
            char *save = NULL;
            free(a->nodes_buf);
            a->nnodes = 0;
            a->nodes_text = v;
            if (!(a->nodes_buf = strdup(v)))
                return cli_fail("out of memory");
            for (char *t = strtok_r(a->nodes_buf, ",", &save); t;
                 t = strtok_r(NULL, ",", &save))
                if (add(a->nodes, &a->nnodes, t, "--nodes patterns") != CLI_OK)
                    return CLI_USAGE;
            if (a->nnodes == 0)
                return cli_usage("submit: --nodes '%s': no pattern", v);
            return CLI_OK;
        }
        }
    }
    if (!strcmp(s, "--force") || !strcmp(s, "-f")) {
        a->force = true;
        return CLI_OK;
    }
    return -1;
}

static void
args_free(submit_args *a)
{
    for (size_t i = 0; i < a->nin; i++) {
        free((char *)a->in[i].name);
        free(a->in[i].data);
    }
    free(a->nodes_buf);
}

/* Everything checked and read before the cluster is joined. */
static int
prepare(submit_args *a, char **buf, input **in, size_t *n)
{
    char path[512];
    int st;

    if (!a->lib)
        return cli_usage("submit: no LIB given");
    if (!a->fn || !*a->fn)
        return cli_usage("submit: no FN given (the job function's name)");
    if (a->data && a->lines)
        return cli_usage("submit: --data and --lines: one or the other");
    if ((st = check_readable("library", a->lib)) != CLI_OK)
        return st;
    for (size_t i = 0; i < a->nfiles; i++)
        if ((st = check_readable("--file", a->files[i])) != CLI_OK)
            return st;
    for (size_t i = 0; i < a->nin; i++) {
        for (size_t j = 0; j < i; j++)
            if (!strcmp(a->in[i].name, a->in[j].name))
                return cli_usage("submit: --in %s given twice", a->in[i].name);
        if ((st = read_path(a->in[i].path, INPUT_MAX, &a->in[i].data,
                            &a->in[i].len)) != CLI_OK)
            return st;
    }
    if ((st = make_inputs(a, buf, in, n)) != CLI_OK)
        return st;
    for (size_t k = 0; !a->force && k < a->nout; k++)
        for (size_t i = 0; i < *n; i++) {
            out_path(a->out[k], (*in)[i].line, *n, path, sizeof path);
            if (access(path, F_OK) == 0) {
                fprintf(stderr,
                        "picos: %s exists: not overwritten (--force replaces "
                        "it)\n",
                        path);
                return CLI_FAILED;
            }
        }
    return CLI_OK;
}

static int
submit(int argc, char **argv)
{
    submit_args a = {.retries = -1};
    char *buf = NULL;
    input *in = NULL;
    size_t n = 0;
    int exit_now = -1, st = CLI_OK;

    for (int i = 1; i < argc && st == CLI_OK; i++) {
        const char *s = argv[i];
        int r = own_option(&a, argc, argv, &i);
        if (r >= 0) {
            st = r;
            continue;
        }
        if (cli_opt(&cli_cmd_submit, argc, argv, &i, &exit_now)) {
            if (exit_now >= 0)
                st = exit_now, i = argc;
            continue;
        }
        if (s[0] == '-' && s[1])
            st = cli_usage("submit: unknown option '%s'", s);
        else if (!a.lib)
            a.lib = s;
        else if (!a.fn)
            a.fn = s;
        else
            st = cli_usage("submit: unexpected argument '%s'", s);
    }
    if (exit_now >= 0) {
        args_free(&a);
        return exit_now;
    }
    if (st == CLI_OK)
        st = prepare(&a, &buf, &in, &n);
    if (st == CLI_OK && (st = cli_join()) == CLI_OK) {
        st = run(&a, in, n);
        cli_leave();
    }
    free(in);
    free(buf);
    args_free(&a);
    return st;
}

const cli_cmd cli_cmd_submit = {
    .name = "submit",
    .run = submit,
    .args = "LIB FN [--data @FILE|-|TEXT | --lines FILE|-] [--count N]\n"
            "             [--file F]... [--in NAME=@PATH]... [--out NAME]... "
            "[--force]\n"
            "             [--cpus N] [--memory BYTES] [--timeout S] "
            "[--retries N]\n"
            "             [--nodes GLOB,...]",
    .summary = "run jobs of a computation on the compute nodes",
    .help =
        "\nLIB is the computation's shared library (docs/computations.md), "
        "FN the job\nfunction to run. Each job's result is printed as it "
        "ends:\n"
        "  job 3 ok node1/w0 0.012 s: RESULT   (text, or hex when binary)\n"
        "and each job that did not end ok is one line on stderr with why "
        "and its error.\n\n"
        "  --data @FILE|-|TEXT  the job's input: FILE's bytes, standard "
        "input, or TEXT\n"
        "                       (default: empty)\n"
        "  --lines FILE|-       one job per line of FILE (the line, without "
        "its newline,\n"
        "                       is the input); jobs are numbered by line\n"
        "  --count N            run each input N times\n"
        "  --file F             a data file sent with the computation (the "
        "jobs find it\n"
        "                       in their data directory); repeatable\n"
        "  --in NAME=@PATH      PATH's bytes as file NAME in every job's "
        "directory\n"
        "  --out NAME           fetch file NAME from each job: written here "
        "as NAME (one\n"
        "                       job) or NAME.K (job K); never over an "
        "existing file\n"
        "                       unless --force\n"
        "  --cpus N             CPUs (workers) to reserve per node "
        "(default: all free)\n"
        "  --memory BYTES       each worker's memory limit (512M, 2G; "
        "default: the node's)\n"
        "  --timeout S          each job's run-time limit (here: not the "
        "global option;\n"
        "                       put that before the command)\n"
        "  --retries N          runs again of a job whose worker crashed or "
        "node was\n"
        "                       lost (default 3)\n"
        "  --nodes GLOB,...     only the compute nodes whose names match\n"
        "  --json               one JSON object per job on stdout "
        "(docs/cli.md)\n"
        "\nExit status: 0 every job ok; 1 some failed (or an output file "
        "exists); 2 a\nbad option, a file that can't be read, not a "
        "computation, an unknown FN; 3 no\ncompute node in the cluster.\n",
};
