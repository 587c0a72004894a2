/* tests/test_compute_node.c — the node side of computations on the wire:
 * a real picos-registry, a real `picos-node --compute --cpus 2` with its
 * picos-worker, and this program as the client, speaking
 * proto/compute.proto directly with protobuf-c (no pc_compute_* call), so
 * it is also the proof that the wire can be used without the C client.
 *
 * The client is a task of this program's node: it locates the node's
 * compute task ("picos.compute/cn1"), reserves, uploads the library
 * (tests/compute_min.c) and a data file in ComputeChunks, and reads what
 * comes back with a selective receive by type, each wait bounded by
 * PT_LONG. Hashes are computed here with wolfSSL, as any client would.
 * What the node does to its files and processes is checked from outside:
 * the session's directory under --data-dir, and the picos-worker
 * processes found in /proc by their --root argument (polled until a
 * deadline: the node reaches that state on its own).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "picos/monitor.h"
#include "picos/net.h"
#include "picos/registry.h"

#include "compute.pb-c.h"
#include "netutil.h"
#include "testutil.h"

#define T_RESERVE "picos.v1.ComputeReserve"
#define T_REFUSED "picos.v1.ComputeRefused"
#define T_RESERVED "picos.v1.ComputeReserved"
#define T_CHUNK "picos.v1.ComputeChunk"
#define T_ACK "picos.v1.ComputeChunkAck"
#define T_READY "picos.v1.ComputeReady"
#define T_FAILED "picos.v1.ComputeFailed"
#define T_SUBMIT "picos.v1.ComputeSubmit"
#define T_CANCEL "picos.v1.ComputeCancel"
#define T_CONTROL "picos.v1.ComputeControl"
#define T_EVENTS "picos.v1.ComputeEvents"
#define T_NODE_EVENT "picos.v1.ComputeNodeEvent"

#define NODE_NAME "cn1"

/* ---- processes ------------------------------------------------------------------ */

static kid reg, node;
static char reg_ep[256], node_dir[128], data_dir[160];

static void
start_daemons(void)
{
    char line[2048] = "", err[4096];
    kid_opts no = {.errpath = node.errpath, .clean_env = true};

    CU_ASSERT_FATAL(pt_mkdtemp(node_dir, sizeof node_dir, "cnode"));
    if (!nt_registry_start(&reg, REGISTRY, node_dir, reg_ep))
        CU_FAIL_FATAL("picos-registry did not start");
    snprintf(data_dir, sizeof data_dir, "%.140s/data", node_dir);
    snprintf(node.errpath, sizeof node.errpath, "%.140s/node.err", node_dir);
    CU_ASSERT_FATAL(kid_run(
        &node, NODE_BIN,
        (const char *[]){"--registry", reg_ep, "--secret-file", secret_path,
                         "--name", NODE_NAME, "--heartbeat", NET_HB,
                         "--timeout", NET_TIMEOUT, "--grace", "1", "--compute",
                         "--cpus", "2", "--data-dir", data_dir, NULL},
        &no));
    line[0] = '\0';
    if (!read_line(node.out, line, sizeof line, PT_LONG) ||
        !strstr(line, " listening on ")) {
        kid_wait(&node, 1.0);
        fprintf(stderr, "picos-node did not start: '%s' %s\n", line,
                kid_errtext(&node, err, sizeof err));
        CU_FAIL_FATAL("picos-node did not start");
    }
    /* the startup line's compute summary */
    CU_ASSERT(strstr(line, "; compute: 2 CPUs, data dir ") != NULL);
    CU_ASSERT(strstr(line, geteuid() == 0 ? "sandbox: chroot, uid 200000+"
                                          : "sandbox: not root") != NULL);
}

static void
stop_daemons(void)
{
    char err[8192];

    if (node.pid > 0) {
        kill(node.pid, SIGTERM);
        CU_ASSERT(kid_wait(&node, PT_LONG));
        CU_ASSERT_EQUAL(exit_code(&node), 0);
        if (exit_code(&node) != 0)
            fprintf(stderr, "picos-node: %s\n",
                    kid_errtext(&node, err, sizeof err));
    }
    kid_free(&node);
    kid_free(&reg);
}

static void
client_join(void)
{
    PT_START(2);
    CU_ASSERT_EQUAL_FATAL(nt_cluster_join(reg_ep), PC_OK);
}

/* ---- files and processes of the node, seen from outside ----------------------- */

static uint8_t *
slurp_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long n;

    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void
sha256(const void *d, size_t n, uint8_t out[32])
{
    wc_Sha256Hash(d, (word32)n, out);
}

static void
hex(const uint8_t *s, char *out)
{
    for (int i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", s[i]);
}

/* The session directories (s-*) under the node's data dir. */
static int
sessions_on_disk(char *first, size_t size)
{
    char path[256];
    DIR *d;
    struct dirent *e;
    int n = 0;

    snprintf(path, sizeof path, "%s/compute", data_dir);
    if (!(d = opendir(path)))
        return 0;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, "s-", 2)) {
            if (first && !n)
                snprintf(first, size, "%.160s/%.80s", path, e->d_name);
            n++;
        }
    closedir(d);
    return n;
}

/* Wait (up to PT_LONG) until there are n session directories: the session
 * task makes its own once it runs, after the Reserved has gone out. */
static int
sessions_wait(int n, char *first, size_t size)
{
    double t0 = pc_now();
    int k;

    while ((k = sessions_on_disk(first, size)) != n && pt_since(t0) < PT_LONG)
        pc_sleep(0.01); /* a task: its worker runs the rest meanwhile */
    return k;
}

/* Processes whose command line holds `arg` (picos-worker --root DIR, and
 * the workers it forked). */
static int
procs_with(const char *arg)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;

    if (!d)
        return 0;
    while ((e = readdir(d))) {
        char path[300], buf[8192];
        int fd;
        ssize_t r;
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
        if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
            continue;
        r = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (r <= 0)
            continue;
        for (ssize_t i = 0; i < r; i += (ssize_t)strlen(buf + i) + 1) {
            buf[r] = '\0';
            if (!strcmp(buf + i, arg)) {
                n++;
                break;
            }
        }
    }
    closedir(d);
    return n;
}

/* Poll until no session directory and no process of `dir` is left. */
static bool
session_gone(const char *dir)
{
    double t0 = pc_now();

    while (pt_since(t0) < PT_LONG) {
        if (sessions_on_disk(NULL, 0) == 0 && procs_with(dir) == 0)
            return true;
        pc_sleep(0.02);
    }
    fprintf(stderr, "session %s: %d dirs, %d processes left\n", dir,
            sessions_on_disk(NULL, 0), procs_with(dir));
    return false;
}

/* ---- the client's side of the wire ---------------------------------------------- */

static uint8_t *lib;
static size_t lib_len;
static uint8_t lib_sha[32];

static const char data_text[] = "a data file of the computation\n";

static pc_err
send_pb(pc_ref to, const char *type, const ProtobufCMessage *pb)
{
    size_t len = protobuf_c_message_get_packed_size(pb);
    uint8_t *buf = malloc(len + 1);
    pc_err rc;

    protobuf_c_message_pack(pb, buf);
    rc = pc_send_data(to, type, buf, len);
    free(buf);
    return rc;
}

typedef struct wanted {
    const char *types[4];
} wanted;

static bool
match_types(const pc_msg *m, void *ctx)
{
    wanted *w = ctx;
    for (int i = 0; i < 4 && w->types[i]; i++)
        if (pc_msg_is(m, w->types[i]))
            return true;
    return false;
}

/* The next message of one of the types (NULL-terminated), within PT_LONG;
 * NULL (and a failure recorded) when none came. */
static pc_msg *
expect(const char *t0, const char *t1, const char *t2)
{
    wanted w = {{t0, t1, t2, NULL}};
    pc_msg *m = NULL;

    if (pc_recv_match(match_types, &w, NULL, &m, PT_LONG) != PC_OK) {
        pt_fail_at(__FILE__, __LINE__, "no %s within %g s", t0, PT_LONG);
        return NULL;
    }
    return m;
}

static void *
unpack(const ProtobufCMessageDescriptor *d, const pc_msg *m)
{
    size_t len = 0;
    const uint8_t *p = pc_msg_data(m, &len);
    return protobuf_c_message_unpack(d, NULL, len, p);
}

#define UNPACK(m, kind) unpack(&picos__v1__##kind##__descriptor, (m))

static pc_ref
compute_task(void)
{
    pc_ref r = PC_REF_NIL;
    TCHECK_RC(pc_locate(PC_NAME_TASK, "picos.compute/" NODE_NAME, PT_LONG, &r),
              PC_OK);
    return r;
}

/* Reserve `cpus` with the library (its hash `sha`, NULL: the true one)
 * and the data files `names` (data_text each; NULL-terminated, may be
 * NULL). The answer: ComputeReserved (*ok) or ComputeRefused (*no), the
 * other NULL. */
static void
reserve(pc_ref ct, uint64_t client, uint32_t cpus, const uint8_t *sha,
        const char *const *names, Picos__V1__ComputeReserved **ok,
        Picos__V1__ComputeRefused **no)
{
    Picos__V1__ComputeReserve r = PICOS__V1__COMPUTE_RESERVE__INIT;
    Picos__V1__ComputeFileInfo li = PICOS__V1__COMPUTE_FILE_INFO__INIT;
    static Picos__V1__ComputeFileInfo fi[80];
    static Picos__V1__ComputeFileInfo *fp[80];
    static uint8_t dsha[32];
    size_t n = 0;
    pc_msg *m;

    *ok = NULL;
    *no = NULL;
    sha256(data_text, strlen(data_text), dsha);
    r.client = client;
    r.cpus = cpus;
    r.name = "test_compute_node";
    li.name = "";
    li.size = lib_len;
    li.sha256.data = (uint8_t *)(sha ? sha : lib_sha);
    li.sha256.len = 32;
    r.library = &li;
    for (; names && names[n] && n < 80; n++) {
        picos__v1__compute_file_info__init(&fi[n]);
        fi[n].name = (char *)names[n];
        fi[n].size = strlen(data_text);
        fi[n].sha256.data = dsha;
        fi[n].sha256.len = 32;
        fp[n] = &fi[n];
    }
    r.n_files = n;
    r.files = fp;
    TCHECK_RC(send_pb(ct, T_RESERVE, &r.base), PC_OK);
    if (!(m = expect(T_RESERVED, T_REFUSED, NULL)))
        return;
    if (pc_msg_is(m, T_RESERVED)) {
        *ok = UNPACK(m, compute_reserved);
        TCHECK(*ok && (*ok)->client == client);
    } else {
        *no = UNPACK(m, compute_refused);
        TCHECK(*no && (*no)->client == client);
    }
    pc_msg_free(&m);
}

static pc_ref
session_of(const Picos__V1__ComputeReserved *ok)
{
    pc_ref s = PC_REF_NIL;
    if (ok && ok->session) {
        s.node = ok->session->node;
        s.id = ok->session->id;
    }
    return s;
}

/* File `file` of `len` bytes to the session in chunks of max_chunk, each
 * acknowledged. */
static void
upload(pc_ref s, uint32_t file, const uint8_t *d, size_t len, uint32_t max)
{
    for (size_t off = 0; off < len;) {
        Picos__V1__ComputeChunk c = PICOS__V1__COMPUTE_CHUNK__INIT;
        Picos__V1__ComputeChunkAck *a;
        size_t n = len - off < max ? len - off : max;
        pc_msg *m;

        c.file = file;
        c.offset = off;
        c.data.data = (uint8_t *)d + off;
        c.data.len = n;
        TCHECK_RC(send_pb(s, T_CHUNK, &c.base), PC_OK);
        off += n;
        if (!(m = expect(T_ACK, T_FAILED, NULL)))
            return;
        if (!pc_msg_is(m, T_ACK)) {
            pc_msg_free(&m);
            TCHECK(!"ComputeFailed during the upload");
            return;
        }
        a = UNPACK(m, compute_chunk_ack);
        TCHECK(a && a->file == file && a->received == off);
        picos__v1__compute_chunk_ack__free_unpacked(a, NULL);
        pc_msg_free(&m);
    }
}

/* The whole upload: the library, then the data files (one each). The
 * upload of a mismatched library ends in ComputeFailed, read by the
 * caller (the last chunk's ack comes first). */
static void
upload_all(pc_ref s, uint32_t max, size_t nfiles)
{
    upload(s, 0, lib, lib_len, max);
    for (size_t i = 0; i < nfiles; i++)
        upload(s, (uint32_t)(i + 1), (const uint8_t *)data_text,
               strlen(data_text), max);
}

static void
submit(pc_ref s, uint64_t id, const char *fn, const char *input,
       int64_t timeout_ms)
{
    Picos__V1__ComputeSubmit sb = PICOS__V1__COMPUTE_SUBMIT__INIT;
    Picos__V1__ComputeJob j = PICOS__V1__COMPUTE_JOB__INIT, *jp = &j;

    j.id = id;
    j.attempt = 1;
    j.fn = (char *)fn;
    j.input.data = (uint8_t *)input;
    j.input.len = strlen(input);
    j.timeout_ms = timeout_ms;
    j.cpus = 1;
    sb.n_jobs = 1;
    sb.jobs = &jp;
    TCHECK_RC(send_pb(s, T_SUBMIT, &sb.base), PC_OK);
}

/* Read ComputeEvents until job `id` has an event of `kind`; its why, and
 * its result / error into out. -1 when it did not come. */
static int
wait_event(uint64_t id, Picos__V1__ComputeEventKind kind, char *out,
           size_t size)
{
    double t0 = pc_now();

    out[0] = '\0';
    while (pt_since(t0) < PT_LONG) {
        pc_msg *m = expect(T_EVENTS, NULL, NULL);
        Picos__V1__ComputeEvents *ev;
        int why = -1;

        if (!m)
            return -1;
        ev = UNPACK(m, compute_events);
        pc_msg_free(&m);
        TCHECK(ev != NULL);
        if (!ev)
            return -1;
        for (size_t i = 0; i < ev->n_events; i++) {
            Picos__V1__ComputeJobEvent *e = ev->events[i];
            if (e->id != id || e->kind != kind)
                continue;
            why = e->why;
            if (e->why == PICOS__V1__COMPUTE_WHY__WHY_OK)
                snprintf(out, size, "%.*s", (int)e->result.len,
                         (const char *)e->result.data);
            else
                snprintf(out, size, "%s", e->error);
            TCHECK_EQ(e->attempt, 1);
        }
        picos__v1__compute_events__free_unpacked(ev, NULL);
        if (why >= 0)
            return why;
    }
    return -1;
}

/* Wait for the ComputeNodeEvent of `kind` (skipping others). */
static bool
wait_node_event(Picos__V1__ComputeNodeEventKind kind, char *text, size_t size)
{
    double t0 = pc_now();

    while (pt_since(t0) < PT_LONG) {
        pc_msg *m = expect(T_NODE_EVENT, NULL, NULL);
        Picos__V1__ComputeNodeEvent *e;
        bool hit;
        if (!m)
            return false;
        e = UNPACK(m, compute_node_event);
        pc_msg_free(&m);
        if (!e)
            return false;
        hit = e->kind == kind;
        if (hit && text)
            snprintf(text, size, "%s", e->text);
        picos__v1__compute_node_event__free_unpacked(e, NULL);
        if (hit)
            return true;
    }
    return false;
}

static void
control_close(pc_ref s, double grace)
{
    Picos__V1__ComputeControl c = PICOS__V1__COMPUTE_CONTROL__INIT;
    c.op = PICOS__V1__COMPUTE_OP__COMPUTE_CLOSE;
    c.grace = grace;
    TCHECK_RC(send_pb(s, T_CONTROL, &c.base), PC_OK);
}

/* From a task: a session opened (TCHECKed), closed with no grace, and
 * its NODE_CLOSED waited for. */
static void
close_session(pc_ref s)
{
    TCHECK(!pc_ref_is_nil(s));
    if (!pc_ref_is_nil(s)) {
        control_close(s, 0);
        TCHECK(wait_node_event(PICOS__V1__COMPUTE_NODE_EVENT_KIND__NODE_CLOSED,
                               NULL, 0));
    }
}

/* Reserve, upload, wait for ComputeReady: the session, or nil. */
static pc_ref
open_session(pc_ref ct, uint64_t client, uint32_t cpus, uint32_t *granted)
{
    static const char *const names[] = {"d.txt", NULL};
    Picos__V1__ComputeReserved *ok;
    Picos__V1__ComputeRefused *no;
    Picos__V1__ComputeReady *rd;
    pc_ref s;
    pc_msg *m;
    bool echo = false;

    reserve(ct, client, cpus, NULL, names, &ok, &no);
    TCHECK(ok != NULL);
    if (no) {
        pt_fail_at(__FILE__, __LINE__, "refused: %s", no->text);
        picos__v1__compute_refused__free_unpacked(no, NULL);
    }
    if (!ok)
        return PC_REF_NIL;
    s = session_of(ok);
    TCHECK_STR(ok->node, NODE_NAME);
    TCHECK(ok->max_chunk >= 4096);
    if (granted)
        *granted = ok->cpus;
    /* chunks a fifth of the library: several per file */
    upload_all(s,
               lib_len / 5 + 1 < ok->max_chunk ? (uint32_t)(lib_len / 5 + 1)
                                               : ok->max_chunk,
               1);
    picos__v1__compute_reserved__free_unpacked(ok, NULL);
    if (!(m = expect(T_READY, T_FAILED, NULL)))
        return PC_REF_NIL;
    if (pc_msg_is(m, T_FAILED)) {
        Picos__V1__ComputeFailed *f = UNPACK(m, compute_failed);
        pt_fail_at(__FILE__, __LINE__, "ComputeFailed: %s", f ? f->text : "?");
        if (f)
            picos__v1__compute_failed__free_unpacked(f, NULL);
        pc_msg_free(&m);
        return PC_REF_NIL;
    }
    rd = UNPACK(m, compute_ready);
    pc_msg_free(&m);
    TCHECK(rd != NULL);
    if (rd) {
        TCHECK_STR(rd->name, "compute_min");
        TCHECK_EQ(rd->version, 3);
        TCHECK(rd->workers >= 1);
        for (size_t i = 0; i < rd->n_jobs; i++)
            echo |= !strcmp(rd->jobs[i], "echo");
        TCHECK(echo);
        picos__v1__compute_ready__free_unpacked(rd, NULL);
    }
    return s;
}

static void
load_lib(void)
{
    if (!lib) {
        lib = slurp_file(COMPUTE_LIB, &lib_len);
        CU_ASSERT_FATAL(lib != NULL && lib_len > 0);
        sha256(lib, lib_len, lib_sha);
    }
}

/* ---- reserve, upload, jobs ----------------------------------------------------- */

/* Each test's task adds 1 to `done` at its end (its TCHECKs passed or
 * not: they are replayed into CUnit). */
static atomic_int done;

/* A test: the daemons, this program in the cluster, `task` run to its
 * end, the daemons stopped. */
static void
run_task(pc_task_fn task)
{
    load_lib();
    start_daemons();
    client_join();
    atomic_store(&done, 0);
    pt_spawn(task, NULL, 0, 0);
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&done), 1);
    stop_daemons();
}

static pc_msg *
jobs_task(void *arg)
{
    pc_ref ct = compute_task(), s;
    char out[512], sdir[256] = "", path[320], text[256];
    struct stat sb;

    (void)arg;
    s = open_session(ct, 0x1111, 1, NULL);
    if (pc_ref_is_nil(s))
        return NULL;
    /* the data file, read-only, in the session's data/ */
    TCHECK_EQ(sessions_on_disk(sdir, sizeof sdir), 1);
    snprintf(path, sizeof path, "%s/data/d.txt", sdir);
    TCHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0444 &&
           sb.st_size == (off_t)strlen(data_text));
    submit(s, 1, "echo", "hello", 0);
    TCHECK_EQ(
        wait_event(1, PICOS__V1__COMPUTE_EVENT_KIND__JOB_DONE, out, sizeof out),
        PICOS__V1__COMPUTE_WHY__WHY_OK);
    TCHECK_STR(out, "hello");
    /* a job that fails on its own; one whose worker dies; one past its
     * timeout; an unknown function */
    submit(s, 2, "fail", "it did not work", 0);
    TCHECK_EQ(
        wait_event(2, PICOS__V1__COMPUTE_EVENT_KIND__JOB_DONE, out, sizeof out),
        PICOS__V1__COMPUTE_WHY__WHY_FAILED);
    TCHECK_STR(out, "it did not work");
    submit(s, 3, "crash", "", 0);
    TCHECK_EQ(
        wait_event(3, PICOS__V1__COMPUTE_EVENT_KIND__JOB_DONE, out, sizeof out),
        PICOS__V1__COMPUTE_WHY__WHY_CRASHED);
    TCHECK_STR(out, "worker crashed: SIGSEGV");
    TCHECK(wait_node_event(PICOS__V1__COMPUTE_NODE_EVENT_KIND__NODE_WORKER_UP,
                           NULL, 0));
    submit(s, 4, "sleep", "30000", 300);
    TCHECK_EQ(
        wait_event(4, PICOS__V1__COMPUTE_EVENT_KIND__JOB_DONE, out, sizeof out),
        PICOS__V1__COMPUTE_WHY__WHY_TIMEDOUT);
    TCHECK(strstr(out, "timeout") != NULL);
    submit(s, 5, "nosuch", "", 0);
    TCHECK_EQ(
        wait_event(5, PICOS__V1__COMPUTE_EVENT_KIND__JOB_DONE, out, sizeof out),
        PICOS__V1__COMPUTE_WHY__WHY_REFUSED);
    TCHECK(strstr(out, "unknown function 'nosuch'") != NULL);
    /* the replaced worker runs jobs */
    submit(s, 6, "echo", "again", 0);
    TCHECK_EQ(
        wait_event(6, PICOS__V1__COMPUTE_EVENT_KIND__JOB_DONE, out, sizeof out),
        PICOS__V1__COMPUTE_WHY__WHY_OK);
    TCHECK_STR(out, "again");
    control_close(s, 1.0);
    TCHECK(wait_node_event(PICOS__V1__COMPUTE_NODE_EVENT_KIND__NODE_CLOSED,
                           text, sizeof text));
    TCHECK(session_gone(sdir));
    atomic_fetch_add(&done, 1);
    return NULL;
}

PT_TEST(reserve_upload_jobs)
static void
reserve_upload_jobs(void)
{
    run_task(jobs_task);
}

/* ---- a library whose declared hash is wrong ------------------------------------ */

static pc_msg *
mismatch_task(void *arg)
{
    pc_ref ct = compute_task(), s;
    Picos__V1__ComputeReserved *ok;
    Picos__V1__ComputeRefused *no;
    Picos__V1__ComputeFailed *f;
    uint8_t bad[32];
    char want[300], a[65], b[65], sdir[256];
    pc_msg *m;

    (void)arg;
    memcpy(bad, lib_sha, 32);
    bad[7] ^= 0x5a;
    reserve(ct, 0x2222, 1, bad, NULL, &ok, &no);
    TCHECK(ok && !no);
    if (!ok)
        return NULL;
    s = session_of(ok);
    TCHECK_EQ(sessions_wait(1, sdir, sizeof sdir), 1);
    upload(s, 0, lib, lib_len, ok->max_chunk);
    picos__v1__compute_reserved__free_unpacked(ok, NULL);
    if (!(m = expect(T_FAILED, T_READY, NULL)))
        return NULL;
    TCHECK(pc_msg_is(m, T_FAILED));
    f = UNPACK(m, compute_failed);
    pc_msg_free(&m);
    hex(bad, a);
    hex(lib_sha, b);
    snprintf(want, sizeof want, "library SHA-256 mismatch: declared %s, got %s",
             a, b);
    TCHECK(f != NULL);
    if (f) {
        TCHECK_STR(f->text, want);
        picos__v1__compute_failed__free_unpacked(f, NULL);
    }
    TCHECK(wait_node_event(PICOS__V1__COMPUTE_NODE_EVENT_KIND__NODE_CLOSED,
                           NULL, 0));
    TCHECK(session_gone(sdir));
    /* the node lives on: the right library works */
    s = open_session(ct, 0x2223, 1, NULL);
    close_session(s);
    atomic_fetch_add(&done, 1);
    return NULL;
}

PT_TEST(sha_mismatch)
static void
sha_mismatch(void)
{
    run_task(mismatch_task);
}

/* ---- CPUs between clients -------------------------------------------------------- */

/* A second client: reserves `cpus`, reports what it got, then waits for
 * "close" and closes its session. */
typedef struct other {
    uint32_t ask, got;
    int code; /* refusal code, -1: none */
    pc_ref session;
    atomic_int state; /* 1 answered, 2 closed */
} other;

static pc_msg *
other_task(void *arg)
{
    other *o = arg;
    Picos__V1__ComputeReserved *ok;
    Picos__V1__ComputeRefused *no;
    pc_msg *m = NULL;

    reserve(compute_task(), (uint64_t)(uintptr_t)o, o->ask, NULL, NULL, &ok,
            &no);
    o->code = no ? (int)no->code : -1;
    o->got = ok ? ok->cpus : 0;
    o->session = session_of(ok);
    if (ok)
        picos__v1__compute_reserved__free_unpacked(ok, NULL);
    if (no)
        picos__v1__compute_refused__free_unpacked(no, NULL);
    atomic_store(&o->state, 1);
    TCHECK_RC(pc_recv_type("close", &m, PT_LONG), PC_OK);
    pc_msg_free(&m);
    if (!pc_ref_is_nil(o->session)) {
        control_close(o->session, 0);
        TCHECK(wait_node_event(PICOS__V1__COMPUTE_NODE_EVENT_KIND__NODE_CLOSED,
                               NULL, 0));
    }
    atomic_store(&o->state, 2);
    return NULL;
}

static bool
wait_state(other *o, int st)
{
    double t0 = pc_now();
    while (atomic_load(&o->state) < st && pt_since(t0) < PT_LONG)
        pc_sleep(0.01);
    return atomic_load(&o->state) >= st;
}

static pc_msg *
cpus_task(void *arg)
{
    static other a = {.ask = 1}, b = {.ask = 2}, c = {.ask = 0}, d = {.ask = 0};
    pc_ref ra, rb, rc, rd;

    (void)arg;
    ra = pt_spawn(other_task, &a, 0, 0);
    TCHECK(wait_state(&a, 1));
    TCHECK_EQ(a.got, 1);
    rb = pt_spawn(other_task, &b, 0, 0);
    TCHECK(wait_state(&b, 1));
    TCHECK_EQ(b.got, 1); /* what was left */
    rc = pt_spawn(other_task, &c, 0, 0);
    TCHECK(wait_state(&c, 1));
    TCHECK_EQ(c.code, PICOS__V1__COMPUTE_REFUSAL__COMPUTE_NO_CPUS);
    TCHECK_EQ(c.got, 0);
    /* a's session closes: its CPU is free again */
    pt_send(ra, "close");
    TCHECK(wait_state(&a, 2));
    rd = pt_spawn(other_task, &d, 0, 0);
    TCHECK(wait_state(&d, 1));
    TCHECK_EQ(d.got, 1);
    pt_send(rb, "close");
    pt_send(rc, "close");
    pt_send(rd, "close");
    TCHECK(wait_state(&b, 2) && wait_state(&c, 2) && wait_state(&d, 2));
    atomic_fetch_add(&done, 1);
    return NULL;
}

PT_TEST(cpus_between_clients)
static void
cpus_between_clients(void)
{
    run_task(cpus_task);
}

/* ---- the client's task killed ---------------------------------------------------- */

static char killed_dir[256];
static atomic_int killed_state;

static pc_msg *
doomed_task(void *arg)
{
    pc_ref ct = compute_task(), s;
    uint32_t got = 0;
    char out[64];

    (void)arg;
    s = open_session(ct, 0x3333, 2, &got);
    TCHECK_EQ(got, 2);
    if (pc_ref_is_nil(s))
        return NULL;
    submit(s, 1, "sleep", "60000", 0);
    submit(s, 2, "sleep", "60000", 0);
    TCHECK(wait_event(1, PICOS__V1__COMPUTE_EVENT_KIND__JOB_STARTED, out,
                      sizeof out) >= 0);
    TCHECK_EQ(sessions_on_disk(killed_dir, sizeof killed_dir), 1);
    atomic_store(&killed_state, 1);
    pc_sleep(3600); /* until terminated */
    return NULL;
}

static pc_msg *
killer_task(void *arg)
{
    pc_ref doomed;
    double t0 = pc_now();

    (void)arg;
    atomic_store(&killed_state, 0);
    doomed = pt_spawn(doomed_task, NULL, 0, 0);
    while (atomic_load(&killed_state) == 0 && pt_since(t0) < 3 * PT_LONG)
        pc_sleep(0.01);
    TCHECK_EQ(atomic_load(&killed_state), 1);
    /* the setup process and both workers run */
    TCHECK(procs_with(killed_dir) >= 3);
    TCHECK_RC(pc_task_terminate(doomed), PC_OK);
    TCHECK(session_gone(killed_dir));
    atomic_fetch_add(&done, 1);
    return NULL;
}

PT_TEST(client_killed)
static void
client_killed(void)
{
    run_task(killer_task);
}

/* ---- bad requests ---------------------------------------------------------------- */

static void
expect_refused(pc_ref ct, const char *const *names, const char *text)
{
    Picos__V1__ComputeReserved *ok;
    Picos__V1__ComputeRefused *no;

    reserve(ct, 0x4444, 1, NULL, names, &ok, &no);
    TCHECK(!ok && no);
    if (ok)
        picos__v1__compute_reserved__free_unpacked(ok, NULL);
    if (no) {
        TCHECK_EQ(no->code, PICOS__V1__COMPUTE_REFUSAL__COMPUTE_BAD_REQUEST);
        if (!strstr(no->text, text))
            pt_fail_at(__FILE__, __LINE__, "refusal '%s' lacks '%s'", no->text,
                       text);
        TCHECK(!strchr(no->text, '\n'));
        picos__v1__compute_refused__free_unpacked(no, NULL);
    }
}

static pc_msg *
bad_task(void *arg)
{
    static char many[65][16];
    static const char *names[66];
    pc_ref ct = compute_task(), s;

    (void)arg;
    expect_refused(ct, (const char *[]){"sub/x.txt", NULL},
                   "'sub/x.txt' is not a plain name");
    expect_refused(ct, (const char *[]){"..", NULL},
                   "'..' is not a plain name");
    expect_refused(ct, (const char *[]){"a", "a", NULL}, "given twice");
    for (int i = 0; i < 65; i++) {
        snprintf(many[i], sizeof many[i], "f%d", i);
        names[i] = many[i];
    }
    names[65] = NULL;
    expect_refused(ct, names, "65 data files, the most is 64");
    TCHECK_EQ(sessions_on_disk(NULL, 0), 0);
    /* and the node takes a sound one */
    s = open_session(ct, 0x4445, 0, NULL);
    close_session(s);
    atomic_fetch_add(&done, 1);
    return NULL;
}

PT_TEST(bad_requests)
static void
bad_requests(void)
{
    run_task(bad_task);
}

PT_MAIN("compute_node", PT_ENTRY(reserve_upload_jobs), PT_ENTRY(sha_mismatch),
        PT_ENTRY(cpus_between_clients), PT_ENTRY(client_killed),
        PT_ENTRY(bad_requests))
