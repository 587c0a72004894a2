/* tests/testutil.h — shared scaffolding of the picos CUnit tests.
 *
 * CUnit is not thread-safe, and picos tasks run on W worker threads. So code
 * inside tasks never calls CU_ASSERT: it uses TCHECK*, which only records a
 * failure (file, line, text) under a mutex, and the test body calls
 * pt_node_run() after spawning its tasks; that runs the node to completion
 * and then replays every recorded failure into CUnit from the main thread.
 * Passing checks take no lock, so the mutex adds no ordering that could hide
 * a data race from TSan.
 *
 * Tests that should run with one and with two workers are written once as
 * `static void name(int W)` and registered with PT_WTEST(name), which makes
 * name_w1 and name_w2. Every test arms a watchdog (alarm) that prints the
 * test's name and exits when it hangs, so a deadlock names its test instead
 * of only timing out in ctest.
 *
 * main() is PT_MAIN(tests...): a test name (substring) given on the command
 * line runs only the matching tests. It returns non-zero when any assertion
 * failed or CUnit itself reported an error.
 *
 * Files: every file or directory a test program (or a child it starts)
 * creates goes under ONE directory of its own, pt_tmpdir()
 * (/tmp/picos-<program>-XXXXXX, made at start). It is removed with
 * everything in it when the program exits (atexit, registered before any
 * test runs, so it comes after the handlers that kill children) — also
 * after failed assertions, which end in exit too. On failure its path is
 * printed; PICOS_TEST_KEEP=1 keeps it. The one way out that leaves it is
 * the watchdog (a hung test: _exit from a signal handler, which prints the
 * path, the place to look).
 */
#ifndef PICOS_TESTUTIL_H
#define PICOS_TESTUTIL_H

#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "picos/picos.h"

#include "tsan_supp.h"

/* A timeout for waits that must succeed: long enough never to expire on a
 * loaded CI machine under TSan, short enough that a lost wake-up shows up
 * as a failed check instead of a hang. */
#define PT_LONG 20.0

/* Seconds before the watchdog declares a test hung (PICOS_TEST_WATCHDOG
 * overrides). */
#define PT_WATCHDOG_DEFAULT 100

/* ---- thread-safe checks ---------------------------------------------------- */

#define PT_MAX_FAILS 64

struct pt_fail {
    const char *file;
    int line;
    long times; /* the same check failing again is counted, not listed */
    char text[200];
};

static pthread_mutex_t pt_fail_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pt_fail pt_fails[PT_MAX_FAILS];
static int pt_nfails;      /* recorded, capped at PT_MAX_FAILS */
static long pt_nfails_all; /* all failures, including the dropped ones */

static inline void pt_fail_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline void
pt_fail_at(const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&pt_fail_lock);
    pt_nfails_all++;
    for (int i = 0; i < pt_nfails; i++) {
        if (pt_fails[i].line == line && strcmp(pt_fails[i].file, file) == 0) {
            pt_fails[i].times++;
            pthread_mutex_unlock(&pt_fail_lock);
            return;
        }
    }
    if (pt_nfails < PT_MAX_FAILS) {
        struct pt_fail *f = &pt_fails[pt_nfails++];
        f->file = file;
        f->line = line;
        f->times = 1;
        va_start(ap, fmt);
        vsnprintf(f->text, sizeof f->text, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&pt_fail_lock);
}

/* Record a failure when cond is false. Any thread. */
#define TCHECK(cond)                                                           \
    do {                                                                       \
        if (!(cond))                                                           \
            pt_fail_at(__FILE__, __LINE__, "%s", #cond);                       \
    } while (0)

/* Record a failure when the pc_err `expr` is not `want`, naming both. */
#define TCHECK_RC(expr, want)                                                  \
    do {                                                                       \
        int pt_rc_ = (int)(expr), pt_want_ = (int)(want);                      \
        if (pt_rc_ != pt_want_)                                                \
            pt_fail_at(__FILE__, __LINE__, "%s: got %s, want %s", #expr,       \
                       pc_err_name(pt_rc_), pc_err_name(pt_want_));            \
    } while (0)

/* Record a failure when two integers differ, showing both values. */
#define TCHECK_EQ(a, b)                                                        \
    do {                                                                       \
        long long pt_a_ = (long long)(a), pt_b_ = (long long)(b);              \
        if (pt_a_ != pt_b_)                                                    \
            pt_fail_at(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b,   \
                       pt_a_, pt_b_);                                          \
    } while (0)

/* Record a failure when two strings differ (NULL differs from everything). */
#define TCHECK_STR(a, b)                                                       \
    do {                                                                       \
        const char *pt_sa_ = (a), *pt_sb_ = (b);                               \
        if (!pt_sa_ || !pt_sb_ || strcmp(pt_sa_, pt_sb_) != 0)                 \
            pt_fail_at(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a,   \
                       #b, pt_sa_ ? pt_sa_ : "(null)",                         \
                       pt_sb_ ? pt_sb_ : "(null)");                            \
    } while (0)

/* Hand the recorded failures to CUnit. Main thread, no node running (or at
 * least no task still checking). */
static inline void
pt_flush(void)
{
    long shown = 0;

    pthread_mutex_lock(&pt_fail_lock);
    for (int i = 0; i < pt_nfails; i++) {
        struct pt_fail *f = &pt_fails[i];
        if (f->times > 1) {
            size_t n = strlen(f->text);
            snprintf(f->text + n, sizeof f->text - n, " [failed %ld times]",
                     f->times);
        }
        CU_assertImplementation(CU_FALSE, (unsigned)f->line, f->text, f->file,
                                "", CU_FALSE);
        shown += f->times;
    }
    if (pt_nfails_all > shown) {
        static char more[80];
        snprintf(more, sizeof more, "%ld more failed checks not shown",
                 pt_nfails_all - shown);
        CU_assertImplementation(CU_FALSE, 0, more, __FILE__, "", CU_FALSE);
    }
    pt_nfails = 0;
    pt_nfails_all = 0;
    pthread_mutex_unlock(&pt_fail_lock);
}

/* ---- node helpers ---------------------------------------------------------- */

/* Start a node with W workers; a failure ends the test (fatal). */
#define PT_START(W)                                                            \
    do {                                                                       \
        pc_node_opts pt_o_ = {0};                                              \
        pt_o_.workers = (W);                                                   \
        int pt_src_ = pc_node_start(&pt_o_);                                   \
        if (pt_src_ != PC_OK)                                                  \
            fprintf(stderr, "pc_node_start: %s\n", pc_err_name(pt_src_));      \
        CU_ASSERT_FATAL(pt_src_ == PC_OK);                                     \
    } while (0)

/* Run the node to completion, then report what the tasks recorded. */
#define PT_RUN()                                                               \
    do {                                                                       \
        int pt_rrc_ = pc_node_run();                                           \
        CU_ASSERT_EQUAL(pt_rrc_, PC_OK);                                       \
        pt_flush();                                                            \
    } while (0)

/* For pt_on / pt_spawn: the spawner's own worker (PC_WORKER_SELF). */
#define PT_SELF (-1)

/* Spawn options: worker index w (taken modulo the node's workers, so a test
 * written for W=2 still places tasks with W=1), or PT_SELF; flags. */
static inline pc_spawn_opts
pt_on(int w, unsigned flags)
{
    pc_spawn_opts o;
    int n = pc_node_workers();

    memset(&o, 0, sizeof o);
    o.worker = w < 0 ? PC_WORKER_SELF : PC_WORKER(n > 0 ? w % n : 0);
    o.flags = flags;
    return o;
}

/* The usual test body: start a node of W workers, spawn fn(ctx) on worker
 * 0, run the node to completion and check that *done reached `want` (so a
 * task that never ran or stopped early fails the test). */
#define PT_RUN_TASK(W, fn, ctx, done, want)                                    \
    do {                                                                       \
        PT_START(W);                                                           \
        pc_spawn_opts pt_mo_ = pt_on(0, 0);                                    \
        CU_ASSERT_EQUAL(pc_spawn((fn), (ctx), &pt_mo_, NULL), PC_OK);          \
        PT_RUN();                                                              \
        CU_ASSERT_EQUAL(atomic_load(done), (want));                            \
    } while (0)

/* Spawn fn(arg) on worker w with flags; records a failure on error. */
static inline pc_ref
pt_spawn(pc_task_fn fn, void *arg, int w, unsigned flags)
{
    pc_spawn_opts o = pt_on(w, flags);
    pc_ref r = PC_REF_NIL;

    TCHECK_RC(pc_spawn(fn, arg, &o, &r), PC_OK);
    return r;
}

/* A task that waits for one message, for ever, and ends: it keeps a node
 * running until it is sent something, terminated or the node is stopped. */
static inline pc_msg *
pt_idle_task(void *arg)
{
    pc_msg *m = NULL;

    (void)arg;
    pc_recv(&m, -1);
    pc_msg_free(&m);
    return NULL;
}

/* Send an empty message of `type` to `to`. */
static inline pc_err
pt_send(pc_ref to, const char *type)
{
    return pc_send_data(to, type, NULL, 0);
}

/* Send a message carrying one 64-bit value. */
static inline pc_err
pt_send_u64(pc_ref to, const char *type, uint64_t v)
{
    return pc_send_data(to, type, &v, sizeof v);
}

/* The 64-bit value of a message made by pt_send_u64 (or ~0 when the payload
 * has another size). */
static inline uint64_t
pt_u64(const pc_msg *m)
{
    size_t len = 0;
    const void *d = pc_msg_data(m, &len);
    uint64_t v = ~(uint64_t)0;

    if (d && len == sizeof v)
        memcpy(&v, d, sizeof v);
    return v;
}

/* Receive one message within PT_LONG and check its type; frees it. Returns
 * the message's 64-bit value (pt_u64) or ~0. Tasks only. */
#define PT_EXPECT(type) pt_expect_at(__FILE__, __LINE__, (type))

static inline uint64_t
pt_expect_at(const char *file, int line, const char *type)
{
    pc_msg *m = NULL;
    uint64_t v = ~(uint64_t)0;
    int rc = pc_recv(&m, PT_LONG);

    if (rc != PC_OK || !m) {
        pt_fail_at(file, line, "recv of \"%s\": %s", type, pc_err_name(rc));
        return v;
    }
    if (!pc_msg_is(m, type))
        pt_fail_at(file, line, "recv: got \"%s\", want \"%s\"", pc_msg_type(m),
                   type);
    v = pt_u64(m);
    pc_msg_free(&m);
    return v;
}

/* Send a ref in a message / read it back. */
static inline pc_err
pt_send_ref(pc_ref to, const char *type, pc_ref r)
{
    return pc_send_data(to, type, &r, sizeof r);
}

static inline pc_ref
pt_msg_ref(const pc_msg *m)
{
    size_t len = 0;
    const void *d = pc_msg_data(m, &len);
    pc_ref r = PC_REF_NIL;

    if (d && len == sizeof r)
        memcpy(&r, d, sizeof r);
    return r;
}

/* Elapsed seconds since t0 (pc_now()). */
static inline double
pt_since(double t0)
{
    return pc_now() - t0;
}

/* Work sizes are divided by PICOS_TEST_SCALE (default 1), so a slow job may
 * shrink the stress tests without editing them. Under TSan they are also
 * divided by tsan_div: each task is a TSan fiber with about 1 MB of trace,
 * so 100k live tasks can't work there (50), and every message costs ~10x. */
static inline long
pt_scaled(long n, long tsan_div)
{
    const char *s = getenv("PICOS_TEST_SCALE");
    long d = s ? atol(s) : 1;

    if (d < 1)
        d = 1;
#if defined(__SANITIZE_THREAD__)
    if (tsan_div > 1)
        d *= tsan_div;
#else
    (void)tsan_div;
#endif
    return n / d > 0 ? n / d : 1;
}

/* ---- the test program's directory ------------------------------------------ */

static char pt_prog[32] = "test"; /* set by pt_main from argv[0] */
static char pt_tmp_dir[96];       /* "" until pt_tmpdir() made it */
static pid_t pt_tmp_owner;        /* forked children must not remove it */

/* Remove path and, when it is a directory, everything under it (not
 * following symlinks). opendir/readdir rather than nftw: nftw needs
 * _XOPEN_SOURCE before the first #include, which not every test has. */
static inline void
pt_rm_tree(const char *path)
{
    struct stat st;
    DIR *d;
    struct dirent *e;
    char sub[512];

    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode))
        chmod(path, 0700); /* a test may have left it unreadable */
    if (S_ISDIR(st.st_mode) && (d = opendir(path))) {
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            if (snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) <
                (int)sizeof sub)
                pt_rm_tree(sub);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void
pt_tmp_cleanup(void)
{
    if (!pt_tmp_dir[0] || getpid() != pt_tmp_owner)
        return;
    if (getenv("PICOS_TEST_KEEP")) {
        fprintf(stderr, "%s: test files kept in %s\n", pt_prog, pt_tmp_dir);
        return;
    }
    pt_rm_tree(pt_tmp_dir);
}

/* The program's directory for test files (a failure to make it aborts: no
 * test can run without it). pt_main makes it before any test, so any
 * thread may call this then; a program without pt_main gets it made on
 * its first call. */
static inline const char *
pt_tmpdir(void)
{
    if (!pt_tmp_dir[0]) {
        char d[sizeof pt_tmp_dir];
        snprintf(d, sizeof d, "/tmp/picos-%s-XXXXXX", pt_prog);
        if (!mkdtemp(d)) {
            perror("pt_tmpdir: mkdtemp");
            abort();
        }
        pt_tmp_owner = getpid();
        memcpy(pt_tmp_dir, d, sizeof d);
        atexit(pt_tmp_cleanup);
    }
    return pt_tmp_dir;
}

/* buf = pt_tmpdir()/name; returns buf. */
static inline char *
pt_tmppath(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", pt_tmpdir(), name);
    return buf;
}

/* A fresh directory pt_tmpdir()/tag-XXXXXX in buf; false when mkdtemp
 * failed. Its files need no removal: the whole tree goes at exit. */
static inline bool
pt_mkdtemp(char *buf, size_t size, const char *tag)
{
    snprintf(buf, size, "%s/%s-XXXXXX", pt_tmpdir(), tag);
    return mkdtemp(buf) != NULL;
}

/* ---- registration, watchdog and main --------------------------------------- */

static const char *volatile pt_current = "";

static void
pt_watchdog(int sig)
{
    const char *a = "\n*** watchdog: test hung: ";
    ssize_t r;

    (void)sig;
    r = write(2, a, strlen(a));
    r = write(2, pt_current, strlen(pt_current));
    r = write(2, "\n", 1);
    if (pt_tmp_dir[0]) { /* left for a look: no recursive removal here */
        const char *k = "*** test files left in ";
        r = write(2, k, strlen(k));
        r = write(2, pt_tmp_dir, strlen(pt_tmp_dir));
        r = write(2, "\n", 1);
    }
    (void)r;
    _exit(3);
}

static inline void
pt_arm(const char *name)
{
    const char *s = getenv("PICOS_TEST_WATCHDOG");
    int secs = s ? atoi(s) : PT_WATCHDOG_DEFAULT;

    pt_current = name;
    signal(SIGALRM, pt_watchdog);
    alarm(secs > 0 ? (unsigned)secs : 0);
}

/* Under TSan, the programs a test starts that are not ours (picos-registry,
 * the examples) carry no suppressions; tsan_supp.h's reach them through
 * $TSAN_OPTIONS, set here for every child (a file in pt_tmpdir()). */
static inline void
pt_tsan_children(void)
{
#if defined(__SANITIZE_THREAD__)
    static char env[1024];
    char path[160];
    const char *o = getenv("TSAN_OPTIONS");
    FILE *f;

    if (o && strstr(o, "suppressions="))
        return;
    pt_tmppath(path, sizeof path, "tsan.supp");
    if (!(f = fopen(path, "w")))
        return;
    fputs(__tsan_default_suppressions(), f);
    fclose(f);
    snprintf(env, sizeof env, "%s%ssuppressions=%s", o ? o : "",
             o && *o ? ":" : "", path);
    setenv("TSAN_OPTIONS", env, 1);
#endif
}

typedef struct pt_test {
    const char *name;
    CU_TestFunc fn;
} pt_test;

/* A plain test: static void name(void). */
#define PT_TEST(name)                                                          \
    static void name(void);                                                    \
    static void name##_pt(void)                                                \
    {                                                                          \
        pt_arm(#name);                                                         \
        name();                                                                \
        alarm(0);                                                              \
    }

/* A test run with 1 and with 2 workers: static void name(int W). */
#define PT_WTEST(name)                                                         \
    static void name(int W);                                                   \
    static void name##_w1_pt(void)                                             \
    {                                                                          \
        pt_arm(#name "_w1");                                                   \
        name(1);                                                               \
        alarm(0);                                                              \
    }                                                                          \
    static void name##_w2_pt(void)                                             \
    {                                                                          \
        pt_arm(#name "_w2");                                                   \
        name(2);                                                               \
        alarm(0);                                                              \
    }

/* Table entries for PT_MAIN. */
#define PT_ENTRY(name)                                                         \
    {                                                                          \
#name, name##_pt                                                       \
    }
#define PT_WENTRY(name)                                                        \
    {#name "_w1", name##_w1_pt},                                               \
    {                                                                          \
#name "_w2", name##_w2_pt                                              \
    }

static inline int
pt_main(int argc, char **argv, const char *suite, const pt_test *tests,
        size_t n)
{
    const char *filter = argc > 1 ? argv[1] : NULL;
    unsigned failures;
    CU_ErrorCode err;
    CU_pSuite s;

    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > 0 && argv[0]) {
        const char *b = strrchr(argv[0], '/');
        snprintf(pt_prog, sizeof pt_prog, "%s", b ? b + 1 : argv[0]);
    }
    /* made now, by the main thread, before any task could race for it; its
     * atexit is the first, so it runs after those that kill children */
    pt_tmpdir();
    pt_tsan_children();
    if (CU_initialize_registry() != CUE_SUCCESS) {
        fprintf(stderr, "CU_initialize_registry: %s\n", CU_get_error_msg());
        return 2;
    }
    s = CU_add_suite(suite, NULL, NULL);
    if (!s) {
        fprintf(stderr, "CU_add_suite: %s\n", CU_get_error_msg());
        CU_cleanup_registry();
        return 2;
    }
    for (size_t i = 0; i < n; i++) {
        if (filter && !strstr(tests[i].name, filter))
            continue;
        if (!CU_add_test(s, tests[i].name, tests[i].fn)) {
            fprintf(stderr, "CU_add_test(%s): %s\n", tests[i].name,
                    CU_get_error_msg());
            CU_cleanup_registry();
            return 2;
        }
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    err = CU_basic_run_tests();
    failures = CU_get_number_of_failures();
    if (err != CUE_SUCCESS)
        fprintf(stderr, "CUnit: %s\n", CU_get_error_msg());
    if (CU_get_number_of_tests_run() == 0) {
        fprintf(stderr, "no test matched\n");
        failures++;
    }
    CU_cleanup_registry();
    if ((failures > 0 || err != CUE_SUCCESS) && pt_tmp_dir[0])
        fprintf(stderr,
                "%s: test files were in %s (PICOS_TEST_KEEP=1 keeps "
                "them)\n",
                pt_prog, pt_tmp_dir);
    return failures > 0 || err != CUE_SUCCESS ? 1 : 0;
}

#define PT_MAIN(suite, ...)                                                    \
    int main(int argc, char **argv)                                            \
    {                                                                          \
        static const pt_test tests[] = {__VA_ARGS__};                          \
        return pt_main(argc, argv, suite, tests,                               \
                       sizeof tests / sizeof tests[0]);                        \
    }

#endif
