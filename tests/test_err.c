/* tests/test_err.c — error codes, logging and ref formatting.
 *
 * The error tables are checked against PC_ERR_LIST itself, so a code added
 * to the list is covered without touching this file. Logging is checked
 * through a recording sink (levels, module, text), through the default
 * stderr sink (stderr redirected into a pipe), and from tasks on two
 * workers at once.
 */
#include "testutil.h"

/* ---- error codes ------------------------------------------------------------ */

static const struct {
    int code;
    const char *name;
    const char *text;
} codes[] = {
#define X(name, code, text) {code, "PC_" #name, text},
    PC_ERR_LIST(X)
#undef X
};
#define NCODES (sizeof codes / sizeof codes[0])

PT_TEST(err_codes_values)
static void
err_codes_values(void)
{
    CU_ASSERT_EQUAL(PC_OK, 0);
    CU_ASSERT_STRING_EQUAL(codes[0].name, "PC_OK");
    for (size_t i = 0; i < NCODES; i++) {
        if (i > 0)
            CU_ASSERT(codes[i].code < 0);
        for (size_t j = i + 1; j < NCODES; j++)
            CU_ASSERT(codes[i].code != codes[j].code);
    }
}

PT_TEST(err_strings_distinct)
static void
err_strings_distinct(void)
{
    for (size_t i = 0; i < NCODES; i++) {
        const char *s = pc_strerror(codes[i].code);
        const char *n = pc_err_name(codes[i].code);

        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        CU_ASSERT_PTR_NOT_NULL_FATAL(n);
        CU_ASSERT_STRING_EQUAL(s, codes[i].text);
        CU_ASSERT_STRING_EQUAL(n, codes[i].name);
        CU_ASSERT_STRING_NOT_EQUAL(s, "unknown error");
        CU_ASSERT_STRING_NOT_EQUAL(n, "PC_UNKNOWN");
        for (size_t j = 0; j < i; j++) {
            CU_ASSERT_STRING_NOT_EQUAL(s, pc_strerror(codes[j].code));
            CU_ASSERT_STRING_NOT_EQUAL(n, pc_err_name(codes[j].code));
        }
    }
    CU_ASSERT_STRING_EQUAL(pc_err_name(PC_ETIMEDOUT), "PC_ETIMEDOUT");
    CU_ASSERT_STRING_EQUAL(pc_strerror(PC_ETIMEDOUT), "timed out");
}

PT_TEST(err_unknown_codes)
static void
err_unknown_codes(void)
{
    int min = 0, max = 0;
    const int others[] = {-1000, 1000, -2147483647 - 1, 2147483647, 42};

    for (size_t i = 0; i < NCODES; i++) {
        min = codes[i].code < min ? codes[i].code : min;
        max = codes[i].code > max ? codes[i].code : max;
    }
    CU_ASSERT_STRING_EQUAL(pc_strerror(min - 1), "unknown error");
    CU_ASSERT_STRING_EQUAL(pc_err_name(min - 1), "PC_UNKNOWN");
    CU_ASSERT_STRING_EQUAL(pc_strerror(max + 1), "unknown error");
    CU_ASSERT_STRING_EQUAL(pc_err_name(max + 1), "PC_UNKNOWN");
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        CU_ASSERT_STRING_EQUAL(pc_strerror(others[i]), "unknown error");
        CU_ASSERT_STRING_EQUAL(pc_err_name(others[i]), "PC_UNKNOWN");
    }
}

/* ---- logging ---------------------------------------------------------------- */

#define MAXREC 16

struct rec {
    pc_log_level level;
    char module[32];
    char text[128];
};

static struct {
    pthread_mutex_t lock;
    int n;
    struct rec r[MAXREC];
    void *user;
    atomic_int from_tasks;
} sink_data = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void
record_sink(pc_log_level level, const char *module, const char *text,
            void *user)
{
    pthread_mutex_lock(&sink_data.lock);
    sink_data.user = user;
    if (module && strcmp(module, "tasklog") == 0) {
        atomic_fetch_add(&sink_data.from_tasks, 1);
    } else if (sink_data.n < MAXREC) {
        struct rec *r = &sink_data.r[sink_data.n];
        r->level = level;
        snprintf(r->module, sizeof r->module, "%s", module ? module : "(null)");
        snprintf(r->text, sizeof r->text, "%s", text ? text : "(null)");
        sink_data.n++;
    }
    pthread_mutex_unlock(&sink_data.lock);
}

static void
sink_reset(void)
{
    pthread_mutex_lock(&sink_data.lock);
    sink_data.n = 0;
    sink_data.user = NULL;
    atomic_store(&sink_data.from_tasks, 0);
    pthread_mutex_unlock(&sink_data.lock);
}

static int evaluated;

static int
side_effect(void)
{
    return ++evaluated;
}

static void
log_all_levels(int k)
{
    PC_LOG_DEBUG("mod", "debug %d", k);
    PC_LOG_INFO("mod", "info %d", k);
    PC_LOG_WARN("mod", "warn %d", k);
    PC_LOG_ERROR("mod", "error %d", k);
}

PT_TEST(log_levels_filter)
static void
log_levels_filter(void)
{
    int tag;

    pc_log_set_sink(record_sink, &tag);

    sink_reset();
    pc_log_set_level(PC_LOG_LEVEL_WARN);
    CU_ASSERT_EQUAL(pc_log_get_level(), PC_LOG_LEVEL_WARN);
    log_all_levels(1);
    CU_ASSERT_EQUAL_FATAL(sink_data.n, 2);
    CU_ASSERT_EQUAL(sink_data.r[0].level, PC_LOG_LEVEL_WARN);
    CU_ASSERT_STRING_EQUAL(sink_data.r[0].module, "mod");
    CU_ASSERT_STRING_EQUAL(sink_data.r[0].text, "warn 1");
    CU_ASSERT_EQUAL(sink_data.r[1].level, PC_LOG_LEVEL_ERROR);
    CU_ASSERT_STRING_EQUAL(sink_data.r[1].text, "error 1");
    CU_ASSERT_PTR_EQUAL(sink_data.user, &tag);

    sink_reset();
    pc_log_set_level(PC_LOG_LEVEL_DEBUG);
    CU_ASSERT_EQUAL(pc_log_get_level(), PC_LOG_LEVEL_DEBUG);
    log_all_levels(2);
    CU_ASSERT_EQUAL_FATAL(sink_data.n, 4);
    CU_ASSERT_EQUAL(sink_data.r[0].level, PC_LOG_LEVEL_DEBUG);
    CU_ASSERT_STRING_EQUAL(sink_data.r[0].text, "debug 2");
    CU_ASSERT_EQUAL(sink_data.r[1].level, PC_LOG_LEVEL_INFO);
    CU_ASSERT_STRING_EQUAL(sink_data.r[1].text, "info 2");
    CU_ASSERT_EQUAL(sink_data.r[2].level, PC_LOG_LEVEL_WARN);
    CU_ASSERT_EQUAL(sink_data.r[3].level, PC_LOG_LEVEL_ERROR);

    sink_reset();
    pc_log_set_level(PC_LOG_LEVEL_ERROR);
    log_all_levels(3);
    CU_ASSERT_EQUAL_FATAL(sink_data.n, 1);
    CU_ASSERT_EQUAL(sink_data.r[0].level, PC_LOG_LEVEL_ERROR);
    CU_ASSERT_STRING_EQUAL(sink_data.r[0].text, "error 3");

    sink_reset();
    pc_log_set_level(PC_LOG_LEVEL_OFF);
    log_all_levels(4);
    CU_ASSERT_EQUAL(sink_data.n, 0);

    /* Disabled records are dropped before their arguments are evaluated. */
    sink_reset();
    evaluated = 0;
    pc_log_set_level(PC_LOG_LEVEL_WARN);
    PC_LOG_DEBUG("mod", "%d", side_effect());
    PC_LOG_INFO("mod", "%d", side_effect());
    CU_ASSERT_EQUAL(evaluated, 0);
    CU_ASSERT_EQUAL(sink_data.n, 0);
    PC_LOG_ERROR("mod", "%d", side_effect());
    CU_ASSERT_EQUAL(evaluated, 1);
    CU_ASSERT_EQUAL_FATAL(sink_data.n, 1);
    CU_ASSERT_STRING_EQUAL(sink_data.r[0].text, "1");

    /* A long record reaches the sink as one piece (maybe truncated). */
    sink_reset();
    PC_LOG_WARN("mod", "%s-%0300d", "long", 7);
    CU_ASSERT_EQUAL(sink_data.n, 1);
    CU_ASSERT_NSTRING_EQUAL(sink_data.r[0].text, "long-000", 8);

    pc_log_set_sink(NULL, NULL);
    pc_log_set_level(PC_LOG_LEVEL_WARN);
}

PT_TEST(log_level_names)
static void
log_level_names(void)
{
    CU_ASSERT_STRING_EQUAL(pc_log_level_name(PC_LOG_LEVEL_DEBUG), "DEBUG");
    CU_ASSERT_STRING_EQUAL(pc_log_level_name(PC_LOG_LEVEL_INFO), "INFO");
    CU_ASSERT_STRING_EQUAL(pc_log_level_name(PC_LOG_LEVEL_WARN), "WARN");
    CU_ASSERT_STRING_EQUAL(pc_log_level_name(PC_LOG_LEVEL_ERROR), "ERROR");
}

/* The default sink: one line per record on stderr, with level, module and
 * text. stderr is pointed at a pipe for the duration. */
PT_TEST(log_default_sink_stderr)
static void
log_default_sink_stderr(void)
{
    int p[2], saved;
    char buf[512];
    ssize_t n;

    CU_ASSERT_FATAL(pipe(p) == 0);
    fflush(stderr);
    saved = dup(2);
    CU_ASSERT_FATAL(saved >= 0);
    CU_ASSERT_FATAL(dup2(p[1], 2) == 2);

    pc_log_set_sink(NULL, NULL);
    pc_log_set_level(PC_LOG_LEVEL_INFO);
    PC_LOG_DEBUG("quiet", "not shown");
    PC_LOG_WARN("stderrmod", "hello %d", 42);
    fflush(stderr);

    dup2(saved, 2);
    close(saved);
    close(p[1]);
    n = read(p[0], buf, sizeof buf - 1);
    close(p[0]);
    pc_log_set_level(PC_LOG_LEVEL_WARN);

    CU_ASSERT_FATAL(n > 0);
    buf[n] = '\0';
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "WARN"));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "stderrmod"));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "hello 42"));
    CU_ASSERT_PTR_NULL(strstr(buf, "not shown"));
    CU_ASSERT_EQUAL(buf[n - 1], '\n');
    CU_ASSERT_PTR_EQUAL(strchr(buf, '\n'), buf + n - 1); /* one line */
}

/* Tasks on every worker log at once through a user sink. */
#define TASK_LOGS 200

static pc_msg *
log_task(void *arg)
{
    for (int i = 0; i < TASK_LOGS; i++) {
        PC_LOG_WARN("tasklog", "task %p line %d", arg, i);
        if (i % 16 == 0)
            pc_yield();
    }
    return NULL;
}

PT_TEST(log_from_tasks)
static void
log_from_tasks(void)
{
    enum { NT = 8 };

    sink_reset();
    pc_log_set_sink(record_sink, NULL);
    pc_log_set_level(PC_LOG_LEVEL_WARN);
    PT_START(2);
    for (int i = 0; i < NT; i++) {
        pc_spawn_opts o = pt_on(i, 0);
        CU_ASSERT_EQUAL(pc_spawn(log_task, &sink_data, &o, NULL), PC_OK);
    }
    PT_RUN();
    CU_ASSERT_EQUAL(atomic_load(&sink_data.from_tasks), NT * TASK_LOGS);
    pc_log_set_sink(NULL, NULL);
}

/* ---- refs ------------------------------------------------------------------- */

/* "node:slot.gen" with the node in hex; slot and gen read back exactly. */
static void
check_ref_str(pc_ref r)
{
    char buf[48];
    uint64_t node = 0;
    unsigned slot = 0, gen = 0;
    int used = -1;

    memset(buf, 'x', sizeof buf);
    CU_ASSERT_PTR_EQUAL(pc_ref_str(r, buf, sizeof buf), buf);
    CU_ASSERT_PTR_NOT_NULL_FATAL(memchr(buf, '\0', sizeof buf));
    CU_ASSERT_EQUAL_FATAL(
        sscanf(buf, "%" SCNx64 ":%u.%u%n", &node, &slot, &gen, &used), 3);
    CU_ASSERT_EQUAL(used, (int)strlen(buf));
    CU_ASSERT_EQUAL(node, r.node);
    CU_ASSERT_EQUAL(slot, (unsigned)(r.id & 0xffffffffu));
    CU_ASSERT_EQUAL(gen, (unsigned)(r.id >> 32));
}

PT_TEST(ref_str_format)
static void
ref_str_format(void)
{
    char buf[48];
    char small[8];

    check_ref_str((pc_ref){0xabcdefull, (7ull << 32) | 12});
    check_ref_str((pc_ref){UINT64_MAX, UINT64_MAX}); /* longest: fits 48 */
    check_ref_str((pc_ref){1, 1});
    check_ref_str(PC_REF_NIL);

    CU_ASSERT_STRING_EQUAL(
        pc_ref_str((pc_ref){0xabcull, (7ull << 32) | 5}, buf, sizeof buf),
        "abc:5.7");

    /* A short buffer is truncated, never overrun, and stays terminated. */
    memset(small, 'x', sizeof small);
    pc_ref_str((pc_ref){UINT64_MAX, UINT64_MAX}, small, sizeof small);
    CU_ASSERT_PTR_NOT_NULL(memchr(small, '\0', sizeof small));
    CU_ASSERT_NSTRING_EQUAL(small, "fffffff", 7);
}

PT_TEST(ref_eq_nil)
static void
ref_eq_nil(void)
{
    pc_ref a = {5, (1ull << 32) | 3}, b = a, c = {6, a.id}, d = {5, a.id + 1};

    CU_ASSERT(pc_ref_eq(a, b));
    CU_ASSERT(!pc_ref_eq(a, c));
    CU_ASSERT(!pc_ref_eq(a, d));
    CU_ASSERT(pc_ref_is_nil(PC_REF_NIL));
    CU_ASSERT(pc_ref_is_nil((pc_ref){9, 0}));
    CU_ASSERT(!pc_ref_is_nil(a));
}

/* Refs made by a node carry its id: the chosen one, or a random non-zero
 * one. */
static pc_msg *
ref_task(void *arg)
{
    pc_ref *out = arg;

    *out = pc_self();
    return NULL;
}

PT_TEST(ref_node_id)
static void
ref_node_id(void)
{
    pc_node_opts o = {0};
    pc_ref r = PC_REF_NIL, spawned = PC_REF_NIL;

    CU_ASSERT_EQUAL(pc_node_id(), 0);
    o.workers = 1;
    o.node_id = 0x5eed1234ull;
    CU_ASSERT_EQUAL_FATAL(pc_node_start(&o), PC_OK);
    CU_ASSERT_EQUAL(pc_node_id(), 0x5eed1234ull);
    CU_ASSERT_EQUAL(pc_spawn(ref_task, &r, NULL, &spawned), PC_OK);
    PT_RUN();
    CU_ASSERT(pc_ref_eq(r, spawned));
    CU_ASSERT_EQUAL(r.node, 0x5eed1234ull);
    CU_ASSERT(!pc_ref_is_nil(r));
    CU_ASSERT_EQUAL(pc_node_id(), 0);

    o.node_id = 0;
    CU_ASSERT_EQUAL_FATAL(pc_node_start(&o), PC_OK);
    CU_ASSERT(pc_node_id() != 0);
    CU_ASSERT_EQUAL(pc_spawn(ref_task, &r, NULL, NULL), PC_OK);
    uint64_t id = pc_node_id();
    PT_RUN();
    CU_ASSERT_EQUAL(r.node, id);
}

PT_MAIN("err", PT_ENTRY(err_codes_values), PT_ENTRY(err_strings_distinct),
        PT_ENTRY(err_unknown_codes), PT_ENTRY(log_levels_filter),
        PT_ENTRY(log_level_names), PT_ENTRY(log_default_sink_stderr),
        PT_ENTRY(log_from_tasks), PT_ENTRY(ref_str_format),
        PT_ENTRY(ref_eq_nil), PT_ENTRY(ref_node_id))
