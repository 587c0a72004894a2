/* picos-bench-compute — the benchmark table of distributed computations
 * (docs/computations.md, "Figures").
 *
 *     picos-bench-compute [--quick] [--pipelined N] [--awaited N]
 *                         [--spin N] [--spin-ms MS] [--registry-bin PATH]
 *                         [--node-bin PATH] [--library PATH]
 *
 * Four processes on 127.0.0.1, CURVE on every link: a real picos-registry
 * and two real `picos-node --compute --cpus 1 --data-dir D` (fork + exec,
 * each in a process group of its own, killed with this process on every
 * exit path: atexit and PR_SET_PDEATHSIG; their endpoints read back from
 * their startup lines), and this process, the client node. The secret is a
 * random one in a 0600 file of a temporary directory removed at exit. The
 * computation is bench_compute_lib.so (this folder): "echo" returns its
 * input, "spin" burns the CPU time its input names (bench_spin.h).
 *
 * The client (the main thread, calling the compute API as a foreign
 * thread) measures, with one computation on
 * both nodes (one worker each):
 *
 *   pipelined   `pipelined` empty "echo" jobs, submitted in batches of
 *               BATCH while fewer than WINDOW are outstanding, each result
 *               taken with pc_compute_wait_any(): jobs per second from the
 *               first submission to the last result;
 *   awaited     `awaited` empty "echo" jobs one at a time: submit one,
 *               wait for it, repeat; jobs per second, and each job's
 *               latency (submit to result) for p50 / p99;
 *   spin, 2     `spin` "spin" jobs of `spin_ms` ms of CPU each, all
 *               submitted at once, timed from the submission to the last
 *               result;
 *
 * then closes it and opens one on the first node only (opts.nodes) for
 *
 *   spin, 1     the same jobs on one worker.
 *
 * The speed-up is spin-1's time over spin-2's. Beside it, the baseline of
 * the same machine in the same run: one plain forked process spinning
 * spin × spin_ms ms, and two plain processes each spinning half of it
 * (timed from the first fork to the last exit). Each baseline is measured
 * right before its picos counterpart, so that both see the same
 * neighbours (the machine is shared and noisy). The target is on the
 * ratio: picos's speed-up at least 0.9 × the baseline's.
 *
 * Every result is checked (rc PC_OK; echo's result empty); a failure ends
 * the program with exit status 2 and one line on stderr. The exit status
 * is 0 when everything ran, whether or not the targets were met: no test
 * asserts a time (bench_compute_smoke runs --quick and checks only that).
 */
#define _GNU_SOURCE

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "picos/compute.h"
#include "picos/picos.h"
#include "picos/registry.h"

#include "bench_common.h"
#include "bench_spin.h"

#define PROG "picos-bench-compute"
#define WAIT_S 60.0 /* any one wait: the open, a result, the close */
#define BATCH 256   /* jobs per pc_compute_submit() in the pipelined row */
#define WINDOW 4096 /* jobs outstanding at most in the pipelined row */
#define NODES 2
#define MAX_ROWS 8

static struct {
    bool quick;
    long pipelined, awaited, spin;
    double spin_ms;
    char reg_bin[PATH_MAX], node_bin[PATH_MAX], lib[PATH_MAX];
    char self[PATH_MAX - 64];
    char dir[64];
    char data[128], secret[128];
    char reg_ep[256], node_ep[NODES][256];
    pid_t reg, node[NODES];
} g = {.pipelined = 20000,
       .awaited = 2000,
       .spin = 200,
       .spin_ms = 50,
       .dir = "/tmp/picos-bench-compute.XXXXXX",
       .reg = -1,
       .node = {-1, -1}};

static const char *const node_names[NODES] = {"bench-c1", "bench-c2"};

/* What the driver measured. */
static struct {
    double pipe_s;           /* the pipelined row's time */
    double await_s;          /* the awaited row's time */
    double *lat;             /* each awaited job's latency, s (sorted) */
    double spin1_s, spin2_s; /* picos: one worker, two */
    double base1_s, base2_s; /* plain processes: one, two */
    long on_node[NODES];     /* spin-2's jobs per node */
} R;

static void
die(const char *what, int rc)
{
    fprintf(stderr, PROG ": %s: %s\n", what,
            rc ? pc_strerror(rc) : strerror(errno));
    exit(2);
}

static void
die_c(const pc_compute *c, const char *what, pc_err rc)
{
    fprintf(stderr, PROG ": %s: %s (%s)\n", what, pc_strerror(rc),
            pc_compute_error(c));
    exit(2);
}

/* ---- the baseline: plain processes ------------------------------------------ */

/* Fork `procs` processes each spinning `each` × spin_ms ms of CPU; the
 * wall time from the first fork to the last exit. */
static double
baseline(int procs, long each)
{
    pid_t pid[NODES];
    double t0 = bench_now();

    fflush(NULL);
    for (int i = 0; i < procs; i++) {
        if ((pid[i] = fork()) < 0)
            die("fork", 0);
        if (pid[i] == 0) {
            for (long k = 0; k < each; k++)
                bench_spin_ms(g.spin_ms);
            _exit(0);
        }
    }
    for (int i = 0; i < procs; i++) {
        int st;
        while (waitpid(pid[i], &st, 0) < 0)
            if (errno != EINTR)
                die("waitpid", 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st))
            die("a baseline process failed", PC_EFAILED);
    }
    return bench_now() - t0;
}

/* ---- the client ------------------------------------------------------------------ */

static pc_compute *
open_on(const char *const *nodes)
{
    pc_compute_opts o = {.library = g.lib, .nodes = nodes, .cpus = 1};
    pc_compute *c = NULL;
    pc_err rc = pc_compute_open(&o, WAIT_S, &c);

    if (rc != PC_OK)
        die_c(NULL, "pc_compute_open", rc);
    return c;
}

static pc_job_result *
take(pc_compute *c)
{
    pc_job_result *r = NULL;
    pc_err rc = pc_compute_wait_any(c, WAIT_S, &r);

    if (rc != PC_OK)
        die_c(c, "pc_compute_wait_any", rc);
    if (r->rc != PC_OK) {
        fprintf(stderr, PROG ": job %llu ended %s: %s\n",
                (unsigned long long)r->id, pc_job_why_str(r->why), r->error);
        exit(2);
    }
    return r;
}

static void
submit(pc_compute *c, const pc_job_spec *j, size_t n)
{
    pc_err rc = pc_compute_submit(c, j, n, NULL);

    if (rc != PC_OK)
        die_c(c, "pc_compute_submit", rc);
}

static void
pipelined(pc_compute *c)
{
    static pc_job_spec batch[BATCH];
    long sent = 0, done = 0;
    double t0;

    for (int i = 0; i < BATCH; i++)
        batch[i] = (pc_job_spec){.fn = "echo"};
    t0 = bench_now();
    while (done < g.pipelined) {
        pc_job_result *r;
        while (sent < g.pipelined && sent - done < WINDOW) {
            long k = g.pipelined - sent < BATCH ? g.pipelined - sent : BATCH;
            submit(c, batch, (size_t)k);
            sent += k;
        }
        r = take(c);
        if (r->len)
            die("an echo of nothing came back with bytes", PC_EPROTO);
        pc_job_result_free(&r);
        done++;
    }
    R.pipe_s = bench_now() - t0;
}

static int
dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void
awaited(pc_compute *c)
{
    pc_job_spec j = {.fn = "echo"};
    double t0;

    if (!(R.lat = calloc((size_t)g.awaited, sizeof *R.lat)))
        die("calloc", PC_ENOMEM);
    t0 = bench_now();
    for (long i = 0; i < g.awaited; i++) {
        double s = bench_now();
        pc_job_result *r;
        submit(c, &j, 1);
        r = take(c);
        R.lat[i] = bench_now() - s;
        pc_job_result_free(&r);
    }
    R.await_s = bench_now() - t0;
    qsort(R.lat, (size_t)g.awaited, sizeof *R.lat, dbl_cmp);
}

/* `spin` spin jobs at once on c; the time to the last result. With
 * per_node, how many ran where. */
static double
spin(pc_compute *c, long *per_node)
{
    char ms[16];
    pc_job_spec *j = calloc((size_t)g.spin, sizeof *j);
    double t0;

    if (!j)
        die("calloc", PC_ENOMEM);
    bench_fmt(ms, sizeof ms, "%.0f", g.spin_ms);
    for (long i = 0; i < g.spin; i++)
        j[i] = (pc_job_spec){.fn = "spin", .input = ms, .len = strlen(ms)};
    t0 = bench_now();
    submit(c, j, (size_t)g.spin);
    for (long i = 0; i < g.spin; i++) {
        pc_job_result *r = take(c);
        for (int n = 0; per_node && n < NODES; n++)
            per_node[n] += !strcmp(r->node, node_names[n]);
        pc_job_result_free(&r);
    }
    free(j);
    return bench_now() - t0;
}

static void
close_c(pc_compute **c)
{
    pc_err rc = pc_compute_close(c, WAIT_S);

    if (rc != PC_OK)
        die_c(NULL, "pc_compute_close", rc);
}

/* On the main thread, a foreign thread to the runtime (not a task): the
 * baselines block in waitpid() for seconds, which must not stall a worker
 * of this node (its links' heartbeats). */
static void
driver(void)
{
    const char *const both[] = {node_names[0], node_names[1], NULL};
    const char *const one[] = {node_names[0], NULL};
    pc_compute *c;

    c = open_on(both);
    pipelined(c);
    awaited(c);
    R.base2_s = baseline(2, g.spin / 2);
    R.spin2_s = spin(c, R.on_node);
    close_c(&c);

    c = open_on(one);
    R.base1_s = baseline(1, g.spin / 2 * 2);
    R.spin1_s = spin(c, NULL);
    close_c(&c);
    pc_node_stop();
}

/* ---- the table ------------------------------------------------------------------ */

static double
pct(double p)
{
    size_t i = (size_t)(p / 100 * (double)(g.awaited - 1) + 0.5);
    return R.lat[i];
}

static void
print_rows(double load)
{
    static char cells[MAX_ROWS][BENCH_COLS][160];
    const char *v[MAX_ROWS * BENCH_COLS];
    double pipe = (double)g.pipelined / R.pipe_s;
    double await = (double)g.awaited / R.await_s;
    double sp = R.spin1_s / R.spin2_s, base = R.base1_s / R.base2_s;
    int n = 0;

#define ROW(label, unit, target, met, ...)                                     \
    do {                                                                       \
        bench_fmt(cells[n][0], sizeof cells[n][0], "%s", label);               \
        bench_fmt(cells[n][1], sizeof cells[n][1], __VA_ARGS__);               \
        bench_fmt(cells[n][2], sizeof cells[n][2], "%s", unit);                \
        bench_fmt(cells[n][3], sizeof cells[n][3], "%s", target);              \
        bench_fmt(cells[n][4], sizeof cells[n][4], "%s", met);                 \
        n++;                                                                   \
    } while (0)
    ROW("empty jobs pipelined, 2 nodes × 1 worker", "jobs/s", "≥ 2000",
        pipe >= 2000 ? "yes" : "no", "%.0f", pipe);
    ROW("empty jobs awaited one at a time", "jobs/s", "≥ 500",
        await >= 500 ? "yes" : "no", "%.0f", await);
    ROW("awaited job latency, p50 / p99", "ms", "report", "—", "%.2f / %.2f",
        pct(50) * 1e3, pct(99) * 1e3);
    ROW("baseline: 2 plain processes vs 1, same CPU work", "× speed-up",
        "report", "—", "%.2f (%.2f vs %.2f s)", base, R.base1_s, R.base2_s);
    {
        char label[128], target[64];
        bench_fmt(label, sizeof label,
                  "%ld CPU-bound %.0f ms jobs: 2 workers (2 nodes) vs 1",
                  g.spin, g.spin_ms);
        bench_fmt(target, sizeof target, "≥ 0.9 × baseline (%.2f)", 0.9 * base);
        ROW(label, "× speed-up", target, sp >= 0.9 * base ? "yes" : "no",
            "%.2f (%.2f vs %.2f s)", sp, R.spin1_s, R.spin2_s);
    }
#undef ROW
    for (int i = 0; i < n; i++)
        for (int c = 0; c < BENCH_COLS; c++)
            v[i * BENCH_COLS + c] = cells[i][c];

    printf("picos %s computation benchmarks: registry, 2 compute nodes "
           "(--cpus 1: one worker process each) and a client node on "
           "tcp://127.0.0.1, CURVE; %ld cores, load average %.2f before the "
           "run%s\n\n",
           PICOS_VERSION, sysconf(_SC_NPROCESSORS_ONLN), load,
           g.quick ? " (--quick: few jobs, figures only indicative)" : "");
    bench_print_table(v, n);
    printf("\n- pipelined: %ld \"echo\" jobs with empty input, submitted in "
           "batches of %d while fewer than %d are outstanding, each result "
           "taken with pc_compute_wait_any(); %.3f s\n",
           g.pipelined, BATCH, WINDOW, R.pipe_s);
    printf("- awaited: %ld \"echo\" jobs, each submitted once the one before "
           "came back; %.3f s; latency (submit to result) min %.2f, p90 "
           "%.2f, max %.2f ms\n",
           g.awaited, R.await_s, R.lat[0] * 1e3, pct(90) * 1e3,
           R.lat[g.awaited - 1] * 1e3);
    printf("- speed-up: %ld \"spin\" jobs of %.0f ms of CPU each, all "
           "submitted at once; on 2 nodes (%ld ran on %s, %ld on %s), then "
           "on %s alone (opts.nodes); the baseline, measured right before "
           "each: one forked process spinning %ld × %.0f ms, two spinning "
           "%ld × %.0f ms each\n",
           g.spin, g.spin_ms, R.on_node[0], node_names[0], R.on_node[1],
           node_names[1], node_names[0], g.spin / 2 * 2, g.spin_ms, g.spin / 2,
           g.spin_ms);
}

/* ---- processes ------------------------------------------------------------------ */

static void
cleanup(void)
{
    for (int i = 0; i < NODES; i++)
        bench_kill_group(&g.node[i], SIGKILL);
    bench_kill_group(&g.reg, SIGKILL);
    if (strcmp(g.dir, "/tmp/picos-bench-compute.XXXXXX"))
        bench_remove_dir(PROG, g.dir);
}

static void
usage(FILE *to)
{
    fprintf(to,
            "usage: " PROG " [--quick] [--pipelined N] [--awaited N] "
            "[--spin N] [--spin-ms MS] [--registry-bin PATH] [--node-bin "
            "PATH] [--library PATH]\n"
            "  --quick         few jobs (a smoke run)\n"
            "  --pipelined N   empty jobs of the pipelined row (default %ld)\n"
            "  --awaited N     empty jobs awaited one at a time (default "
            "%ld)\n"
            "  --spin N        CPU-bound jobs of the speed-up row (default "
            "%ld, even)\n"
            "  --spin-ms MS    CPU each of them burns (default %.0f)\n"
            "  --registry-bin  picos-registry (default: "
            "../registry/picos-registry beside this program)\n"
            "  --node-bin      picos-node (default: ../node/picos-node)\n"
            "  --library       the computation (default: "
            "bench_compute_lib.so beside this program)\n",
            g.pipelined, g.awaited, g.spin, g.spin_ms);
}

int
main(int argc, char **argv)
{
    double load = bench_load_average();
    pc_cluster_opts o = {0};
    char dir[sizeof g.self], ndata[NODES][160];
    ssize_t len;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool used = true;
        if (!strcmp(a, "--quick")) {
            g.quick = true, g.pipelined = 500, g.awaited = 50, g.spin = 8;
            g.spin_ms = 10;
            used = false;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!v) {
            usage(stderr);
            return 2;
        } else if (!strcmp(a, "--pipelined"))
            g.pipelined = atol(v);
        else if (!strcmp(a, "--awaited"))
            g.awaited = atol(v);
        else if (!strcmp(a, "--spin"))
            g.spin = atol(v);
        else if (!strcmp(a, "--spin-ms"))
            g.spin_ms = atof(v);
        else if (!strcmp(a, "--registry-bin"))
            snprintf(g.reg_bin, sizeof g.reg_bin, "%s", v);
        else if (!strcmp(a, "--node-bin"))
            snprintf(g.node_bin, sizeof g.node_bin, "%s", v);
        else if (!strcmp(a, "--library"))
            snprintf(g.lib, sizeof g.lib, "%s", v);
        else {
            usage(stderr);
            return 2;
        }
        i += used;
    }
    if (g.pipelined < 1 || g.awaited < 1 || g.spin < 2 || g.spin % 2 ||
        !(g.spin_ms > 0) || g.spin_ms > 60e3) {
        usage(stderr);
        return 2;
    }

    if ((len = readlink("/proc/self/exe", g.self, sizeof g.self - 1)) < 0)
        die("readlink /proc/self/exe", 0);
    g.self[len] = '\0';
    memcpy(dir, g.self, sizeof dir);
    *strrchr(dir, '/') = '\0';
    if (!g.reg_bin[0])
        snprintf(g.reg_bin, sizeof g.reg_bin, "%s/../registry/picos-registry",
                 dir);
    if (!g.node_bin[0])
        snprintf(g.node_bin, sizeof g.node_bin, "%s/../node/picos-node", dir);
    if (!g.lib[0])
        snprintf(g.lib, sizeof g.lib, "%s/bench_compute_lib.so", dir);
    if (access(g.lib, R_OK))
        die(g.lib, 0);
    if (!mkdtemp(g.dir))
        die("mkdtemp", 0);
    atexit(cleanup);
    snprintf(g.data, sizeof g.data, "%s/reg", g.dir);
    snprintf(g.secret, sizeof g.secret, "%s/secret", g.dir);
    if (mkdir(g.data, 0700))
        die("the registry's data dir", 0);
    if (!bench_write_secret(g.secret))
        die("the secret", 0);
    {
        char *reg[] = {g.reg_bin,    "--listen", "tcp://127.0.0.1:0",
                       "--data-dir", g.data,     "--secret-file",
                       g.secret,     NULL};
        g.reg = bench_start_child(PROG, reg, g.reg_ep, sizeof g.reg_ep);
    }
    for (int i = 0; i < NODES; i++) {
        /* as root, each node runs computation k as uid base + k, with
         * RLIMIT_NPROC counted per uid: two nodes of one machine (and other
         * runs beside this one) must not share a base */
        char uid[16];
        char *node[] = {g.node_bin,
                        "--registry",
                        g.reg_ep,
                        "--secret-file",
                        g.secret,
                        "--name",
                        (char *)node_names[i],
                        "--compute",
                        "--cpus",
                        "1",
                        "--data-dir",
                        ndata[i],
                        "--compute-uid-base",
                        uid,
                        NULL};
        snprintf(ndata[i], sizeof ndata[i], "%s/%s", g.dir, node_names[i]);
        snprintf(uid, sizeof uid, "%u",
                 1000000u + (unsigned)(getpid() % 100000) * 64u +
                     (unsigned)i * 32u);
        if (mkdir(ndata[i], 0700))
            die("a node's data dir", 0);
        g.node[i] =
            bench_start_child(PROG, node, g.node_ep[i], sizeof g.node_ep[i]);
    }

    o.registries = g.reg_ep;
    o.net.secret_file = g.secret;
    o.node.workers = 1;
    o.join_timeout = WAIT_S;
    {
        pc_err rc = pc_cluster_start(&o);
        if (rc != PC_OK)
            die("pc_cluster_start", rc);
    }
    fprintf(stderr, PROG ": registry %s, nodes %s %s\n", g.reg_ep, g.node_ep[0],
            g.node_ep[1]);
    driver();
    {
        pc_err rc = pc_node_run(); /* the node stops (driver()'s end) */
        if (rc != PC_OK)
            die("pc_node_run", rc);
    }
    print_rows(load);
    free(R.lat);
    return 0;
}
