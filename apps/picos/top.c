/* apps/picos/top.c — `picos top [--interval S] [--once]`: the cluster's
 * nodes live in the terminal, from pc_cluster_nodes_status().
 *
 * Two threads. A fetcher asks the registry for the node statuses (and its
 * own status, for the header) every interval and leaves the newest answer
 * in a slot under a mutex; the main thread owns the screen (ncurses), the
 * rate memory (topview.c) and the keys, waking every 100 ms to take the
 * slot, read a key, notice a signal or a resize. A registry that stops
 * answering therefore never freezes the keys: the screen keeps the last
 * answer and says what went wrong.
 *
 * The terminal is restored (endwin) on every way out: q, Ctrl-C, SIGTERM
 * and SIGHUP (handlers that only set a flag the main thread polls; the
 * signals are blocked before the node starts, so its threads inherit the
 * mask and only the main thread takes them), errors (one path out), and
 * exit() (an atexit hook). SIGWINCH is left to ncurses, which reports
 * KEY_RESIZE.
 *
 * Not a terminal on stdout (or --once): one fetch, the plain table (the
 * rates need two samples: "-") after the header and totals lines, exit —
 * for scripts.
 */
#define _GNU_SOURCE
#include <curses.h>
#include <errno.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "picos/msg.h"
#include "picos/node.h"
#include "picos/registry.h"

#include "cli.h"
#include "topview.h"

/* ---- one fetch -------------------------------------------------------------------- */

typedef struct snap {
    pc_err rc; /* of pc_cluster_nodes_status */
    Picos__V1__NodeStatusList *list;
    pc_err reg_rc; /* of pc_registry_status */
    pc_registry_info reg;
} snap;

static void
snap_fini(snap *s)
{
    if (s->list)
        picos__v1__node_status_list__free_unpacked(s->list, NULL);
    memset(s, 0, sizeof *s);
}

/* Ask the registry the CLI joined (the first one answering, as
 * pc_cluster_nodes_status does). */
static snap
fetch(void)
{
    snap s = {0};
    pc_msg *m = NULL;

    s.reg_rc = pc_registry_status(NULL, &s.reg, cli.timeout);
    s.rc = pc_cluster_nodes_status(cli.timeout, &m);
    if (s.rc == PC_OK) {
        size_t len = 0;
        const void *data = pc_msg_data(m, &len);
        s.list = picos__v1__node_status_list__unpack(NULL, len, data);
        if (!s.list)
            s.rc = PC_EPROTO;
    }
    pc_msg_free(&m);
    return s;
}

/* "registry NAME (EP) | N nodes up, M names" or why it did not answer. */
static void
reg_line(const snap *s, char *buf, size_t size)
{
    if (s->reg_rc != PC_OK)
        snprintf(buf, size, "registry %s: %s", cli.registries,
                 s->reg_rc == PC_ETIMEDOUT ? "no answer"
                                           : pc_strerror(s->reg_rc));
    else
        snprintf(buf, size,
                 "registry %s (%s)%s | %" PRIu64 " nodes up, %" PRIu64 " names",
                 s->reg.name, cli.registries,
                 s->reg.recovering ? " recovering" : "",
                 (uint64_t)s->reg.nodes_up, (uint64_t)s->reg.names);
}

/* The one line for a failed status fetch. */
static const char *
fetch_error(pc_err rc)
{
    static char buf[160];

    if (rc == PC_ETIMEDOUT)
        snprintf(buf, sizeof buf, "node statuses: no answer within %g s",
                 cli.timeout);
    else
        snprintf(buf, sizeof buf, "node statuses: %s", pc_strerror(rc));
    return buf;
}

/* ---- --once ---------------------------------------------------------------------- */

static int
once(void)
{
    snap s = fetch();
    char line[512];
    size_t *idx, n;
    cli_table *t;
    int st;

    cli_leave();
    if (s.rc != PC_OK) {
        int r = s.rc == PC_EPROTO ? cli_fail("%s", fetch_error(s.rc))
                                  : cli_fail_rc("asking node statuses", s.rc);
        snap_fini(&s);
        return r;
    }
    if (!(idx = calloc(s.list->n_nodes + 1, sizeof *idx))) {
        snap_fini(&s);
        return cli_fail("out of memory");
    }
    n = top_order(s.list, 0, idx);
    reg_line(&s, line, sizeof line);
    printf("%s\n", line);
    top_totals(s.list, idx, n, NULL, line, sizeof line);
    printf("%s\n\n", line);
    t = top_nodes_table(s.list, idx, n, NULL, pc_wall_us(), false);
    st = t ? cli_table_finish(t) : cli_fail("out of memory");
    free(idx);
    snap_fini(&s);
    return st;
}

/* ---- the fetcher thread ----------------------------------------------------------- */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    bool fresh; /* next holds an answer not yet taken */
    snap next;
    double interval;
} F = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void *
fetcher(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&F.mu);
    while (!F.stop) {
        struct timespec ts;
        snap s;

        pthread_mutex_unlock(&F.mu);
        s = fetch();
        pthread_mutex_lock(&F.mu);
        snap_fini(&F.next);
        F.next = s;
        F.fresh = true;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += (time_t)F.interval;
        ts.tv_nsec += (long)((F.interval - (double)(time_t)F.interval) * 1e9);
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (!F.stop && pthread_cond_timedwait(&F.cv, &F.mu, &ts) == 0)
            ;
    }
    pthread_mutex_unlock(&F.mu);
    return NULL;
}

/* ---- the screen ------------------------------------------------------------------- */

static volatile sig_atomic_t quit_sig;
static bool curses_on;

static void
on_signal(int sig)
{
    quit_sig = sig;
}

/* endwin once, whichever way we leave. */
static void
restore(void)
{
    if (curses_on) {
        curses_on = false;
        endwin();
    }
}

typedef struct ui {
    snap cur;       /* the last answer with a list (or the first) */
    pc_err last_rc; /* of the last fetch */
    top_mem *mem;
    size_t *idx, n;  /* the rows shown, into cur.list->nodes */
    uint64_t sel_id; /* the node selected (follows it across fetches) */
    size_t sel, first;
    bool detail;
    int scroll; /* detail: first line shown */
    bool color;
} ui;

/* Take a fetch: a failed one keeps the last list on the screen. */
static bool
take(ui *u, snap *s)
{
    size_t *idx;

    u->last_rc = s->rc;
    if (s->rc != PC_OK || !s->list) {
        if (s->reg_rc == PC_OK || u->cur.reg_rc != PC_OK) {
            u->cur.reg_rc = s->reg_rc;
            u->cur.reg = s->reg;
        }
        snap_fini(s);
        return true;
    }
    if (!(idx = calloc(s->list->n_nodes + 1, sizeof *idx))) {
        snap_fini(s);
        return false;
    }
    snap_fini(&u->cur);
    free(u->idx);
    u->cur = *s;
    memset(s, 0, sizeof *s);
    u->idx = idx;
    top_mem_update(u->mem, u->cur.list);
    u->n = top_order(u->cur.list, pc_node_id(), u->idx);
    u->sel = 0;
    for (size_t i = 0; i < u->n; i++)
        if (u->cur.list->nodes[u->idx[i]]->status->node == u->sel_id)
            u->sel = i;
    if (u->n)
        u->sel_id = u->cur.list->nodes[u->idx[u->sel]]->status->node;
    return true;
}

/* Row r of t laid out with widths w (one space apart), cut at the screen's
 * width. */
static void
draw_row(int y, const cli_table *t, size_t r, const size_t *w)
{
    char line[1024];
    size_t n = 0, cols = cli_table_cols(t);

    for (size_t k = 0; k < cols && n + 1 < sizeof line; k++) {
        const char *c = cli_table_cell(t, r, k);
        int wrote =
            snprintf(line + n, sizeof line - n, "%-*s%s",
                     k + 1 < cols ? (int)w[k] : 0, c, k + 1 < cols ? " " : "");
        if (wrote < 0)
            break;
        n += (size_t)wrote;
        if (n >= sizeof line)
            n = sizeof line - 1;
    }
    mvaddnstr(y, 0, line, COLS);
}

static void
draw_nodes(ui *u, int top, int bottom)
{
    cli_table *t;
    size_t w[16] = {0}, rows, cols;
    int h = bottom - top - 1; /* below the header */

    if (!u->cur.list || h <= 0)
        return;
    t = top_nodes_table(u->cur.list, u->idx, u->n, u->mem, pc_wall_us(), false);
    if (!t)
        return;
    rows = cli_table_rows(t);
    cols = cli_table_cols(t);
    for (size_t r = 0; r < rows; r++)
        for (size_t k = 0; k < cols && k < 16; k++) {
            size_t l = strlen(cli_table_cell(t, r, k));
            if (l > w[k])
                w[k] = l;
        }
    attron(A_REVERSE);
    mvhline(top, 0, ' ', COLS);
    draw_row(top, t, 0, w);
    attroff(A_REVERSE);
    if (u->sel < u->first)
        u->first = u->sel;
    if (u->sel >= u->first + (size_t)h)
        u->first = u->sel + 1 - (size_t)h;
    for (size_t i = u->first; i < u->n && i < u->first + (size_t)h; i++) {
        bool down = !u->cur.list->nodes[u->idx[i]]->up;
        int a = (i == u->sel ? A_REVERSE | A_BOLD : 0) |
                (down ? (u->color ? COLOR_PAIR(1) : A_BOLD) : 0);
        attron(a);
        if (i == u->sel)
            mvhline(top + 1 + (int)(i - u->first), 0, ' ', COLS);
        draw_row(top + 1 + (int)(i - u->first), t, i + 1, w);
        attroff(a);
    }
    if (!u->n)
        mvaddnstr(top + 1, 0, "(no node has reported a status yet)", COLS);
    cli_table_free(t);
}

static void
draw_detail(ui *u, int top, int bottom)
{
    char *text, *p;
    int y = top, line = 0;

    if (!u->n)
        return;
    text = top_detail(u->cur.list->nodes[u->idx[u->sel]], u->mem, pc_wall_us());
    if (!text)
        return;
    for (p = text; *p && y < bottom; line++) {
        char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (line >= u->scroll)
            mvaddnstr(y++, 0, p, (int)len < COLS ? (int)len : COLS);
        p += len + (nl != NULL);
    }
    if (line <= u->scroll && u->scroll > 0)
        u->scroll = line - 1; /* scrolled past the end: back */
    free(text);
}

static void
draw(ui *u)
{
    char line[512];
    time_t now = time(NULL);
    struct tm tm;
    char clock[16] = "";

    erase();
    if (localtime_r(&now, &tm))
        strftime(clock, sizeof clock, "%H:%M:%S", &tm);
    reg_line(&u->cur, line, sizeof line);
    attron(A_BOLD);
    mvaddnstr(0, 0, "picos top", COLS);
    attroff(A_BOLD);
    mvaddnstr(0, 10, line, COLS > 10 ? COLS - 10 : 0);
    if (COLS > 10)
        mvaddnstr(0, COLS - (int)strlen(clock), clock, -1);
    if (u->cur.list) {
        top_totals(u->cur.list, u->idx, u->n, u->mem, line, sizeof line);
        mvaddnstr(1, 0, line, COLS);
    }
    if (u->last_rc != PC_OK) {
        attron(A_BOLD);
        mvaddnstr(2, 0, fetch_error(u->last_rc), COLS);
        attroff(A_BOLD);
    }
    if (u->detail)
        draw_detail(u, 3, LINES - 1);
    else
        draw_nodes(u, 3, LINES - 1);
    attron(A_REVERSE);
    mvhline(LINES - 1, 0, ' ', COLS);
    mvaddnstr(LINES - 1, 0,
              u->detail ? " q quit  j/k scroll  Enter/Esc back"
                        : " q quit  j/k or arrows select  Enter details",
              COLS);
    attroff(A_REVERSE);
    refresh();
}

/* React to key ch; false: quit. */
static bool
key(ui *u, int ch)
{
    switch (ch) {
    case 'q':
    case 'Q':
    case 3: /* Ctrl-C, should the terminal deliver it as a key */
        return false;
    case KEY_UP:
    case 'k':
        if (u->detail && u->scroll > 0)
            u->scroll--;
        else if (!u->detail && u->sel > 0)
            u->sel--;
        break;
    case KEY_DOWN:
    case 'j':
        if (u->detail)
            u->scroll++;
        else if (u->sel + 1 < u->n)
            u->sel++;
        break;
    case KEY_HOME:
    case 'g':
        u->sel = 0;
        u->scroll = 0;
        break;
    case KEY_END:
    case 'G':
        if (u->n)
            u->sel = u->n - 1;
        break;
    case '\n':
    case '\r':
    case KEY_ENTER:
        u->detail = !u->detail && u->n;
        u->scroll = 0;
        break;
    case 27: /* Esc */
    case KEY_LEFT:
    case KEY_BACKSPACE:
    case 'h':
        u->detail = false;
        break;
    default:
        break;
    }
    if (u->n && u->sel < u->n)
        u->sel_id = u->cur.list->nodes[u->idx[u->sel]]->status->node;
    return true;
}

static int
live(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    ui u = {.last_rc = PC_OK};
    pthread_t th;
    pthread_condattr_t ca;
    struct sigaction sa;
    sigset_t set;
    SCREEN *scr = NULL;
    int st = CLI_OK;
    double last_draw = 0;
    bool thread = false;

    if (!(u.mem = top_mem_new())) {
        cli_leave();
        return cli_fail("out of memory");
    }
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&F.cv, &ca);
    pthread_condattr_destroy(&ca);
    /* the first answer before the screen: an unreachable registry is one
     * line on a normal terminal, not a screen that flashes */
    u.cur = fetch();
    if (u.cur.rc != PC_OK && u.cur.rc != PC_EPROTO) {
        st = cli_fail_rc("asking node statuses", u.cur.rc);
        goto out;
    }
    u.last_rc = u.cur.rc;
    if (u.cur.list) {
        snap s = u.cur;
        memset(&u.cur, 0, sizeof u.cur);
        take(&u, &s);
    }
    if (pthread_create(&th, NULL, fetcher, NULL) != 0) {
        st = cli_fail("can't start a thread: %s", strerror(errno));
        goto out;
    }
    thread = true;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: let waits end */
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
        sigaction(sigs[i], &sa, NULL);
        sigaddset(&set, sigs[i]);
    }
    sigaddset(&set, SIGWINCH);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    atexit(restore);
    setlocale(LC_CTYPE, ""); /* node names in UTF-8 on a UTF-8 terminal */
    if (!(scr = newterm(NULL, stdout, stdin))) {
        st = cli_fail("can't use the terminal (TERM=%s)",
                      getenv("TERM") ? getenv("TERM") : "");
        goto out;
    }
    curses_on = true;
    cbreak();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    set_escdelay(25);
    curs_set(0);
    timeout(100);
    if (has_colors() && start_color() == OK) {
        use_default_colors();
        init_pair(1, COLOR_RED, -1);
        u.color = true;
    }
    while (!quit_sig) {
        int ch;
        bool redraw = false;

        pthread_mutex_lock(&F.mu);
        if (F.fresh) {
            snap s = F.next;
            memset(&F.next, 0, sizeof F.next);
            F.fresh = false;
            pthread_mutex_unlock(&F.mu);
            if (!take(&u, &s)) {
                st = cli_fail("out of memory");
                break;
            }
            redraw = true;
        } else
            pthread_mutex_unlock(&F.mu);
        if (redraw || pc_now() - last_draw >= 1.0) {
            draw(&u);
            last_draw = pc_now();
        }
        if ((ch = getch()) == ERR)
            continue;
        if (!key(&u, ch))
            break;
        draw(&u);
        last_draw = pc_now();
    }
out:
    restore();
    if (scr)
        delscreen(scr);
    if (thread) {
        pthread_mutex_lock(&F.mu);
        F.stop = true;
        pthread_cond_signal(&F.cv);
        pthread_mutex_unlock(&F.mu);
        pthread_join(th, NULL);
    }
    cli_leave();
    snap_fini(&F.next);
    snap_fini(&u.cur);
    free(u.idx);
    top_mem_free(&u.mem);
    pthread_cond_destroy(&F.cv);
    return st;
}

/* ---- the command ------------------------------------------------------------------ */

static int
top(int argc, char **argv)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGWINCH};
    bool once_only = false;
    int exit_now = -1, st;
    double interval = 1.0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;

        if (!strcmp(a, "--once")) {
            once_only = true;
            continue;
        }
        if (!strncmp(a, "--interval", 10) && (!a[10] || a[10] == '=')) {
            char *end;
            v = a[10] ? a + 11 : i + 1 < argc ? argv[++i] : NULL;
            if (!v || !*v)
                return cli_usage("option --interval needs a value");
            interval = strtod(v, &end);
            if (end == v || *end || !isfinite(interval) || interval < 0.1 ||
                interval > 3600)
                return cli_usage("--interval '%s': not a number of seconds "
                                 "from 0.1 to 3600",
                                 v);
            continue;
        }
        if (cli_opt(&cli_cmd_top, argc, argv, &i, &exit_now)) {
            if (exit_now >= 0)
                return exit_now;
            continue;
        }
        if (a[0] == '-')
            return cli_usage("top: unknown option '%s'", a);
        return cli_usage("top: unexpected argument '%s'", a);
    }
    if (once_only || !isatty(STDOUT_FILENO) || !isatty(STDIN_FILENO)) {
        if ((st = cli_join()) != CLI_OK)
            return st;
        return once();
    }
    /* the node's threads start in cli_join: they inherit these blocked,
     * so the signals come to the main thread, which unblocks them */
    {
        sigset_t set;
        sigemptyset(&set);
        for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
            sigaddset(&set, sigs[i]);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
    }
    F.interval = interval;
    if ((st = cli_join()) != CLI_OK)
        return st;
    return live();
}

const cli_cmd cli_cmd_top = {
    .name = "top",
    .run = top,
    .args = "[--interval S] [--once]",
    .summary = "the cluster's nodes live in the terminal",
    .help =
        "\nOne row per node, from the statuses the nodes send the registry:\n"
        "NAME, STATE (up, DOWN), CPU (available), MEM (available), RSS, "
        "TASKS,\nSENT/S and RECV/S (messages), CALLS/S and P99 (its "
        "services), AGE (of\nits last status), NODE ID, NOTE (why it is "
        "down). Keys: q or Ctrl-C\nquit, arrows or j/k select, Enter shows "
        "the node's services, channels,\npeers and deepest mailboxes (Esc "
        "back).\n"
        "  --interval S  how often to ask the registry (default 1)\n"
        "  --once        print the table once and exit (also when stdout "
        "is not a\n                terminal); rates need two samples: "
        "\"-\"\n",
};
