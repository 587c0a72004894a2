/* tests/test_top.c — what `picos top` and `picos status` show of a
 * NodeStatusList (apps/picos/topview.c), from hand-built lists: no
 * registry, no terminal (test_cli.c runs the real thing under a
 * pseudo-terminal).
 *
 * The rates are the point: they come from two distinct samples of a node,
 * a status fetched twice is one sample, a restarted node starts again.
 */
#define _GNU_SOURCE
#include <string.h>

#include "testutil.h"
#include "topview.h"

/* common.c's help lists the commands of main.c, not linked here */
const cli_cmd *const cli_cmds[] = {NULL};

#define MAXN 4

/* A list of up to MAXN nodes the tests change between "fetches". */
typedef struct fake {
    Picos__V1__NodeStatusList l;
    Picos__V1__NodeStatusEntry e[MAXN], *pe[MAXN];
    Picos__V1__NodeStatus s[MAXN];
    Picos__V1__ServiceStatus sv[MAXN], *psv[MAXN];
} fake;

static fake F;

static void
fake_init(size_t n)
{
    memset(&F, 0, sizeof F);
    picos__v1__node_status_list__init(&F.l);
    for (size_t i = 0; i < n; i++) {
        picos__v1__node_status_entry__init(&F.e[i]);
        picos__v1__node_status__init(&F.s[i]);
        picos__v1__service_status__init(&F.sv[i]);
        F.pe[i] = &F.e[i];
        F.psv[i] = &F.sv[i];
        F.e[i].status = &F.s[i];
        F.e[i].up = true;
        F.e[i].received_us = 1000000000;
        F.s[i].node = 0x100 + i;
        F.s[i].incarnation = 1;
        F.s[i].name = "n";
        F.s[i].host = "h";
        F.s[i].sampled_us = 1000000;
        F.s[i].mem_available = 3u << 30;
        F.s[i].rss = 12u << 20;
        F.s[i].cpu_available_pct = 87.4f;
        F.s[i].tasks = 5;
        F.sv[i].name = "calc";
        F.s[i].n_services = 1;
        F.s[i].services = &F.psv[i];
    }
    F.l.n_nodes = n;
    F.l.nodes = F.pe;
}

/* The cell of column `col` (by header) of the row whose NAME is `name`. */
static const char *
cell(const cli_table *t, const char *name, const char *col)
{
    static char buf[256];
    size_t k, r;

    for (k = 0; k < cli_table_cols(t); k++)
        if (!strcmp(cli_table_cell(t, 0, k), col))
            break;
    CU_ASSERT_FATAL(k < cli_table_cols(t));
    for (r = 1; r < cli_table_rows(t); r++)
        if (!strcmp(cli_table_cell(t, r, 0), name)) {
            snprintf(buf, sizeof buf, "%s", cli_table_cell(t, r, k));
            return buf;
        }
    return "(no row)";
}

/* The node table of F at now_us. */
static cli_table *
table(const top_mem *m, bool brief)
{
    size_t idx[MAXN];
    size_t n = top_order(&F.l, 0, idx);
    cli_table *t = top_nodes_table(&F.l, idx, n, m, 1000000000, brief);

    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    return t;
}

/* Rates over one interval: 100 messages sent, 50 received, 10 calls in
 * 0.5 s; the same sample fetched again keeps them; the next interval's. */
PT_TEST(rates_from_two_samples)
static void
rates_from_two_samples(void)
{
    top_mem *m = top_mem_new();
    cli_table *t;

    fake_init(1);
    F.s[0].name = "a";
    F.s[0].msgs_sent = 1000;
    F.s[0].msgs_received = 500;
    F.sv[0].calls = 40;
    CU_ASSERT_TRUE(top_mem_update(m, &F.l));
    t = table(m, false);
    CU_ASSERT_STRING_EQUAL(cell(t, "a", "SENT/S"), "-"); /* one sample */
    CU_ASSERT_STRING_EQUAL(cell(t, "a", "CALLS/S"), "-");
    cli_table_free(t);

    F.s[0].sampled_us += 500000;
    F.s[0].msgs_sent += 100;
    F.s[0].msgs_received += 50;
    F.sv[0].calls += 10;
    CU_ASSERT_TRUE(top_mem_update(m, &F.l));
    t = table(m, false);
    CU_ASSERT_STRING_EQUAL(cell(t, "a", "SENT/S"), "200.0");
    CU_ASSERT_STRING_EQUAL(cell(t, "a", "RECV/S"), "100.0");
    CU_ASSERT_STRING_EQUAL(cell(t, "a", "CALLS/S"), "20.0");
    cli_table_free(t);

    /* fetched again before the node reported: the same sample, same rates */
    CU_ASSERT_TRUE(top_mem_update(m, &F.l));
    t = table(m, false);
    CU_ASSERT_STRING_EQUAL(cell(t, "a", "SENT/S"), "200.0");
    CU_ASSERT_STRING_EQUAL(cell(t, "a", "CALLS/S"), "20.0");
    cli_table_free(t);

    /* the next interval: 1 s, 3000 more */
    F.s[0].sampled_us += 1000000;
    F.s[0].msgs_sent += 3000;
    CU_ASSERT_TRUE(top_mem_update(m, &F.l));
    t = table(m, false);
    CU_ASSERT_STRING_EQUAL(cell(t, "a", "SENT/S"), "3.0k");
    CU_ASSERT_STRING_EQUAL(cell(t, "a", "RECV/S"), "0.0");
    CU_ASSERT_STRING_EQUAL(cell(t, "a", "CALLS/S"), "0.0");
    cli_table_free(t);

    /* restarted (new incarnation, counters from 0): unknown again, then
     * from the new start's two samples */
    F.s[0].incarnation = 2;
    F.s[0].sampled_us += 1000000;
    F.s[0].msgs_sent = 10;
    CU_ASSERT_TRUE(top_mem_update(m, &F.l));
    t = table(m, false);
    CU_ASSERT_STRING_EQUAL(cell(t, "a", "SENT/S"), "-");
    cli_table_free(t);
    F.s[0].sampled_us += 1000000;
    F.s[0].msgs_sent = 20;
    CU_ASSERT_TRUE(top_mem_update(m, &F.l));
    t = table(m, false);
    CU_ASSERT_STRING_EQUAL(cell(t, "a", "SENT/S"), "10.0");
    cli_table_free(t);
    top_mem_free(&m);
    CU_ASSERT_PTR_NULL(m);
}

/* The rows: sorted by name, the CLI's nodes and `self` left out; up and
 * DOWN with the reason; the units; the brief table has no rates. */
PT_TEST(rows_order_state_units)
static void
rows_order_state_units(void)
{
    size_t idx[MAXN], n;
    cli_table *t;
    char line[512];

    fake_init(4);
    F.s[0].name = "zeta";
    F.s[1].name = "alpha";
    F.s[2].name = CLI_NODE_PREFIX "42";
    F.s[3].name = "self";
    F.e[0].up = false;
    F.e[0].down_us = 1000000000 - 12000000;
    F.e[0].down_reason = "link lost";
    F.sv[1].latency_p99_us = 1234;
    n = top_order(&F.l, F.s[3].node, idx);
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_EQUAL(idx[0], 1);
    CU_ASSERT_EQUAL(idx[1], 0);
    t = top_nodes_table(&F.l, idx, n, NULL, 1000000000 + 400000, false);
    CU_ASSERT_EQUAL_FATAL(cli_table_rows(t), 3);
    CU_ASSERT_STRING_EQUAL(cli_table_cell(t, 1, 0), "alpha");
    CU_ASSERT_STRING_EQUAL(cell(t, "alpha", "STATE"), "up");
    CU_ASSERT_STRING_EQUAL(cell(t, "zeta", "STATE"), "DOWN");
    CU_ASSERT_STRING_EQUAL(cell(t, "zeta", "NOTE"), "down 12s ago: link lost");
    CU_ASSERT_STRING_EQUAL(cell(t, "alpha", "NOTE"), "");
    CU_ASSERT_STRING_EQUAL(cell(t, "alpha", "CPU"), "87%");
    CU_ASSERT_STRING_EQUAL(cell(t, "alpha", "MEM"), "3.0G");
    CU_ASSERT_STRING_EQUAL(cell(t, "alpha", "RSS"), "12M");
    CU_ASSERT_STRING_EQUAL(cell(t, "alpha", "TASKS"), "5");
    CU_ASSERT_STRING_EQUAL(cell(t, "alpha", "P99"), "1.2ms");
    CU_ASSERT_STRING_EQUAL(cell(t, "zeta", "P99"), "-");
    CU_ASSERT_STRING_EQUAL(cell(t, "alpha", "AGE"), "0.4s");
    CU_ASSERT_STRING_EQUAL(cell(t, "alpha", "NODE ID"), "0x0000000000000101");
    cli_table_free(t);
    t = table(NULL, true);
    CU_ASSERT_EQUAL(cli_table_cols(t), 9);
    for (size_t k = 0; k < cli_table_cols(t); k++)
        CU_ASSERT_PTR_NULL(strstr(cli_table_cell(t, 0, k), "/S"));
    cli_table_free(t);

    top_totals(&F.l, idx, n, NULL, line, sizeof line);
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "2 nodes: 1 up, 1 down"));
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "tasks 5")); /* the up ones */
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "sent -"));
}

/* A node's detail: its lines and the tables of its services, channels,
 * peers and deepest mailboxes. */
PT_TEST(detail_sections)
static void
detail_sections(void)
{
    Picos__V1__ChannelStatus ch = PICOS__V1__CHANNEL_STATUS__INIT, *pch = &ch;
    Picos__V1__PeerStatus pr = PICOS__V1__PEER_STATUS__INIT, *ppr = &pr;
    Picos__V1__MailboxDepth md = PICOS__V1__MAILBOX_DEPTH__INIT, *pmd = &md;
    Picos__V1__Ref ref = PICOS__V1__REF__INIT;
    char *text;

    fake_init(1);
    F.s[0].name = "worker";
    F.sv[0].calls = 7;
    F.sv[0].latency_p50_us = 800;
    F.sv[0].suspended = true;
    ch.name = "news";
    ch.published = 9;
    F.s[0].n_channels = 1;
    F.s[0].channels = &pch;
    pr.name = "server";
    pr.node = 0xabc;
    pr.up = true;
    pr.heartbeat_age_ms = 250;
    F.s[0].n_peers = 1;
    F.s[0].peers = &ppr;
    ref.node = 0x101;
    ref.id = (3ull << 32) | 2;
    md.task = &ref;
    md.name = "busy.task";
    md.depth = 4711;
    F.s[0].n_deepest = 1;
    F.s[0].deepest = &pmd;
    text = top_detail(&F.e[0], NULL, 1000000000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "worker  0x0000000000000100  up"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "SERVICES (1)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "suspended"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "800us"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "CHANNELS (1)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "news"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "PEERS (1)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "0x0000000000000abc"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "0.2s")); /* heartbeat age */
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "DEEPEST MAILBOXES (1)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "101:2.3"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "4711"));
    free(text);

    F.e[0].up = false;
    F.e[0].down_us = 1000000000 - 3000000;
    F.e[0].down_reason = "";
    F.s[0].n_channels = F.s[0].n_peers = F.s[0].n_deepest = 0;
    text = top_detail(&F.e[0], NULL, 1000000000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "DOWN"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "down 3.0s ago"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "CHANNELS (0)"));
    free(text);
}

/* Computations: no compute column while no node computes; then JOBS/S
 * from two samples of compute.jobs_done, BUSY, "-" for the node that
 * takes none, the totals' compute part and the detail's compute line. */
PT_TEST(compute_columns)
static void
compute_columns(void)
{
    Picos__V1__ComputeStatus cs = PICOS__V1__COMPUTE_STATUS__INIT;
    top_mem *m = top_mem_new();
    size_t idx[MAXN], n;
    cli_table *t;
    char line[512], *text;

    fake_init(2);
    F.s[0].name = "a";
    F.s[1].name = "b";
    t = table(m, false);
    CU_ASSERT_EQUAL(cli_table_cols(t), 13);
    for (size_t k = 0; k < cli_table_cols(t); k++)
        CU_ASSERT_STRING_NOT_EQUAL(cli_table_cell(t, 0, k), "JOBS/S");
    cli_table_free(t);
    n = top_order(&F.l, 0, idx);
    top_totals(&F.l, idx, n, m, line, sizeof line);
    CU_ASSERT_PTR_NULL(strstr(line, "compute"));

    cs.cpus = 4;
    cs.workers = 4;
    cs.workers_busy = 3;
    cs.jobs_done = 100;
    cs.jobs_failed = 2;
    F.s[0].compute = &cs;
    CU_ASSERT_TRUE(top_mem_update(m, &F.l));
    t = table(m, false);
    CU_ASSERT_EQUAL(cli_table_cols(t), 15);
    CU_ASSERT_STRING_EQUAL(cell(t, "a", "JOBS/S"), "-"); /* one sample */
    CU_ASSERT_STRING_EQUAL(cell(t, "a", "BUSY"), "3/4");
    CU_ASSERT_STRING_EQUAL(cell(t, "b", "JOBS/S"), "-");
    CU_ASSERT_STRING_EQUAL(cell(t, "b", "BUSY"), "-");
    CU_ASSERT_STRING_EQUAL(cell(t, "a", "NOTE"), "");
    cli_table_free(t);

    F.s[0].sampled_us += 500000;
    F.s[1].sampled_us += 500000;
    cs.jobs_done += 250;
    cs.suspended = true;
    CU_ASSERT_TRUE(top_mem_update(m, &F.l));
    t = table(m, false);
    CU_ASSERT_STRING_EQUAL(cell(t, "a", "JOBS/S"), "500.0");
    CU_ASSERT_STRING_EQUAL(cell(t, "a", "BUSY"), "3/4 susp");
    CU_ASSERT_STRING_EQUAL(cell(t, "b", "JOBS/S"), "-");
    CU_ASSERT_STRING_EQUAL(cell(t, "a", "SENT/S"), "0.0");
    cli_table_free(t);
    t = table(m, true); /* picos status: no compute columns */
    CU_ASSERT_EQUAL(cli_table_cols(t), 9);
    cli_table_free(t);

    top_totals(&F.l, idx, n, m, line, sizeof line);
    CU_ASSERT_PTR_NOT_NULL(strstr(
        line, "compute: 1 node, busy 3/4, jobs/s 500.0, done 350, failed 2"));
    text = top_detail(&F.e[0], m, 1000000000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "compute: cpus 4"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "jobs done 350 (500.0/s)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "SUSPENDED"));
    free(text);
    text = top_detail(&F.e[1], m, 1000000000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_PTR_NULL(strstr(text, "compute:"));
    free(text);
    top_mem_free(&m);
}

PT_TEST(units)
static void
units(void)
{
    char b[32];

    CU_ASSERT_STRING_EQUAL(top_fmt_bytes(870, b, sizeof b), "870B");
    CU_ASSERT_STRING_EQUAL(top_fmt_bytes(1536, b, sizeof b), "1.5K");
    CU_ASSERT_STRING_EQUAL(top_fmt_bytes(512u << 20, b, sizeof b), "512M");
    CU_ASSERT_STRING_EQUAL(top_fmt_rate(-1, b, sizeof b), "-");
    CU_ASSERT_STRING_EQUAL(top_fmt_rate(12.54, b, sizeof b), "12.5");
    CU_ASSERT_STRING_EQUAL(top_fmt_rate(3400, b, sizeof b), "3.4k");
    CU_ASSERT_STRING_EQUAL(top_fmt_rate(1.25e6, b, sizeof b), "1.2M");
    CU_ASSERT_STRING_EQUAL(top_fmt_us(0, b, sizeof b), "-");
    CU_ASSERT_STRING_EQUAL(top_fmt_us(850, b, sizeof b), "850us");
    CU_ASSERT_STRING_EQUAL(top_fmt_us(12300, b, sizeof b), "12.3ms");
    CU_ASSERT_STRING_EQUAL(top_fmt_us(1250000, b, sizeof b), "1.25s");
    CU_ASSERT_STRING_EQUAL(top_fmt_age(-2, b, sizeof b), "0.0s");
    CU_ASSERT_STRING_EQUAL(top_fmt_age(12.4, b, sizeof b), "12s");
    CU_ASSERT_STRING_EQUAL(top_fmt_age(300, b, sizeof b), "5m");
    CU_ASSERT_STRING_EQUAL(top_fmt_age(3 * 3600, b, sizeof b), "3h");
}

PT_MAIN("top", PT_ENTRY(rates_from_two_samples),
        PT_ENTRY(rows_order_state_units), PT_ENTRY(detail_sections),
        PT_ENTRY(compute_columns), PT_ENTRY(units))
