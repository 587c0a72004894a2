/* services/status.c — a node's NodeStatus (proto/status.proto,
 * docs/monitoring.md): what the node is, what the machine has left, and
 * what the runtime counted.
 *
 * The machine part is read from /proc and statvfs at each sample: the CPU
 * lines of /proc/stat (the idle share of all CPUs, from the difference
 * with the previous sample's counters, so it is the share over the
 * interval, not since boot), /proc/self/stat (this process's user+system
 * ticks, the same way), /proc/meminfo, /proc/self/statm (resident pages),
 * /proc/loadavg and statvfs of the data dir. A file that can't be read
 * leaves its fields 0: a status with a hole beats no status. Each file is
 * read whole into a stack buffer with one read(): they are small, and a
 * FILE * would cost an allocation per file per second.
 *
 * The process's start (started_us) is its start time in /proc/self/stat
 * (ticks since boot) plus the boot time (btime of /proc/stat): the node's
 * start within a few ms, with no clock of our own to keep.
 *
 * The runtime part comes from picos/stats.h (pc_node_stats_get, the
 * deepest mailboxes, the peers, the services, the channels homed here) and the
 * link counters (pc_net_stats_get); the lists are cut to PC__STATUS_MAX_* (the
 * registry drops a status past them). The views of the lists live in one
 * buffer of the sampler, reused by every sample: only the bytes leave.
 *
 * The compute part (NodeStatus.compute) is the compute server's counters
 * (pc_compute_node_stats_get); a node that takes no computations leaves
 * the field out, so readers can tell "not a compute node" from "idle".
 */
#define _GNU_SOURCE
#include "status.h"

#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <unistd.h>

#include "picos/net.h"
#include "picos/node.h"
#include "picos/stats.h"
#include "picos/transport.h"

#include "status.pb-c.h"

struct pc__status_sampler {
    char name[256], host[256];
    char data_dir[PC__STATUS_MAX_PATH];
    uint32_t interval_ms;
    uint64_t started_us;
    long tick; /* clock ticks per second */
    long page; /* bytes */
    /* the previous sample's counters */
    uint64_t cpu_total, cpu_idle; /* /proc/stat, ticks */
    uint64_t proc_ticks;          /* /proc/self/stat utime + stime */
    double proc_at;               /* pc_now() when read */
    struct views *w;              /* the lists' views, made once */
};

/* The file at `path` into buf (NUL-ended); its length, or 0 when it can't
 * be read. */
static size_t
slurp(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = -1, got = 0;

    if (fd < 0) {
        buf[0] = '\0';
        return 0;
    }
    while ((size_t)got < size - 1 &&
           (n = read(fd, buf + got, size - 1 - (size_t)got)) > 0)
        got += n;
    close(fd);
    buf[got > 0 ? got : 0] = '\0';
    return got > 0 ? (size_t)got : 0;
}

/* The first "cpu " line of /proc/stat: total and idle (idle + iowait)
 * ticks; *cpus: the cpuN lines; *btime: the boot time, s. */
static bool
read_stat(uint64_t *total, uint64_t *idle, uint32_t *cpus, uint64_t *btime)
{
    char buf[16384], *p;
    unsigned long long v[10] = {0};
    int n;

    if (!slurp("/proc/stat", buf, sizeof buf) || strncmp(buf, "cpu ", 4))
        return false;
    n = sscanf(buf + 4, "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
               &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8],
               &v[9]);
    if (n < 4)
        return false;
    /* guest and guest_nice (8, 9) are counted in user and nice already */
    *total = 0;
    for (int i = 0; i < n && i < 8; i++)
        *total += v[i];
    *idle = v[3] + (n > 4 ? v[4] : 0);
    *cpus = 0;
    for (p = strstr(buf, "\ncpu"); p; p = strstr(p + 1, "\ncpu"))
        if (p[4] >= '0' && p[4] <= '9')
            (*cpus)++;
    if (btime && (p = strstr(buf, "\nbtime ")))
        *btime = strtoull(p + 7, NULL, 10);
    return true;
}

/* /proc/self/stat: utime + stime (fields 14, 15) and starttime (22), in
 * ticks. The command (field 2) may hold spaces and parentheses: fields are
 * counted from after its last ')'. */
static bool
read_self(uint64_t *ticks, uint64_t *start)
{
    char buf[4096], *p;
    unsigned long long ut, st, t0;

    if (!slurp("/proc/self/stat", buf, sizeof buf) || !(p = strrchr(buf, ')')))
        return false;
    /* after ')': state(3) ... utime(14) stime(15) ... starttime(22) */
    if (sscanf(p + 1,
               " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d "
               "%*d %*d %*d %*d %llu",
               &ut, &st, &t0) != 3)
        return false;
    *ticks = ut + st;
    if (start)
        *start = t0;
    return true;
}

/* A "Key:   N kB" line of /proc/meminfo, bytes (0: absent). */
static uint64_t
meminfo(const char *buf, const char *key)
{
    size_t kl = strlen(key);

    for (const char *p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
        if (!strncmp(p, key, kl) && p[kl] == ':')
            return strtoull(p + kl + 1, NULL, 10) * 1024u;
    return 0;
}

pc_err
pc__status_sampler_new(const char *name, const char *host, const char *data_dir,
                       double interval, pc__status_sampler **out)
{
    pc__status_sampler *s;
    uint64_t btime = 0, start = 0, t = 0, i = 0;
    uint32_t cpus;

    if (!out)
        return PC_EINVAL;
    *out = NULL;
    if (!(s = calloc(1, sizeof *s)))
        return PC_ENOMEM;
    snprintf(s->name, sizeof s->name, "%s", name ? name : "");
    snprintf(s->host, sizeof s->host, "%s", host ? host : "");
    if (data_dir && *data_dir)
        snprintf(s->data_dir, sizeof s->data_dir, "%s", data_dir);
    else if (!getcwd(s->data_dir, sizeof s->data_dir))
        snprintf(s->data_dir, sizeof s->data_dir, ".");
    s->interval_ms = interval > 0 && interval * 1000 < UINT32_MAX
                         ? (uint32_t)(interval * 1000 + 0.5)
                         : 0;
    s->tick = sysconf(_SC_CLK_TCK);
    s->page = sysconf(_SC_PAGESIZE);
    if (s->tick <= 0)
        s->tick = 100;
    if (s->page <= 0)
        s->page = 4096;
    /* the baselines of the first sample's shares */
    if (read_stat(&t, &i, &cpus, &btime)) {
        s->cpu_total = t;
        s->cpu_idle = i;
    }
    s->proc_at = pc_now();
    if (read_self(&s->proc_ticks, &start) && btime)
        s->started_us = btime * 1000000u + start * 1000000u / (uint64_t)s->tick;
    else
        s->started_us = pc_wall_us();
    *out = s;
    return PC_OK;
}

void
pc__status_sampler_free(pc__status_sampler **s)
{
    if (s && *s) {
        free((*s)->w);
        free(*s);
        *s = NULL;
    }
}

/* The machine: /proc and statvfs. */
static void
machine(pc__status_sampler *s, Picos__V1__NodeStatus *st)
{
    char buf[8192];
    uint64_t total, idle, ticks;
    uint32_t cpus;
    double now;
    struct statvfs vfs;

    if (read_stat(&total, &idle, &cpus, NULL)) {
        uint64_t dt = total - s->cpu_total, di = idle - s->cpu_idle;
        if (total > s->cpu_total && idle >= s->cpu_idle && di <= dt)
            st->cpu_available_pct = (float)(100.0 * (double)di / (double)dt);
        else if (total) /* no tick passed: since boot */
            st->cpu_available_pct =
                (float)(100.0 * (double)idle / (double)total);
        s->cpu_total = total;
        s->cpu_idle = idle;
        st->cpus = cpus;
    }
    now = pc_now();
    if (read_self(&ticks, NULL)) {
        if (now > s->proc_at && ticks >= s->proc_ticks)
            st->proc_cpu_pct = (float)(100.0 * (double)(ticks - s->proc_ticks) /
                                       (double)s->tick / (now - s->proc_at));
        s->proc_ticks = ticks;
        s->proc_at = now;
    }
    if (slurp("/proc/meminfo", buf, sizeof buf)) {
        uint64_t swap = meminfo(buf, "SwapTotal");
        st->mem_total = meminfo(buf, "MemTotal");
        st->mem_available = meminfo(buf, "MemAvailable");
        st->swap_available_pct =
            swap ? (float)(100.0 * (double)meminfo(buf, "SwapFree") /
                           (double)swap)
                 : 100.0f;
    }
    if (slurp("/proc/self/statm", buf, sizeof buf)) {
        unsigned long long size, res;
        if (sscanf(buf, "%llu %llu", &size, &res) == 2)
            st->rss = res * (uint64_t)s->page;
    }
    if (slurp("/proc/loadavg", buf, sizeof buf))
        st->load1 = strtod(buf, NULL);
    if (statvfs(s->data_dir, &vfs) == 0)
        st->disk_free = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
}

/* The views of a sample's lists and what they point to. */
struct views {
    pc_mbox_depth deep[PC__STATUS_MAX_DEEPEST];
    Picos__V1__MailboxDepth md[PC__STATUS_MAX_DEEPEST];
    Picos__V1__MailboxDepth *pmd[PC__STATUS_MAX_DEEPEST];
    Picos__V1__Ref mref[PC__STATUS_MAX_DEEPEST];
    pc_peer_stats peer[PC__STATUS_MAX_LIST];
    Picos__V1__PeerStatus ps[PC__STATUS_MAX_LIST];
    Picos__V1__PeerStatus *pps[PC__STATUS_MAX_LIST];
    pc_chan_node_stats chan[PC__STATUS_MAX_LIST];
    Picos__V1__ChannelStatus cs[PC__STATUS_MAX_LIST];
    Picos__V1__ChannelStatus *pcs[PC__STATUS_MAX_LIST];
    pc_rps_stats svc[PC__STATUS_MAX_LIST];
    Picos__V1__ServiceStatus ss[PC__STATUS_MAX_LIST];
    Picos__V1__ServiceStatus *pss[PC__STATUS_MAX_LIST];
    Picos__V1__ComputeStatus compute;
};
typedef struct views views;

static uint32_t
u32(double x)
{
    return x <= 0 ? 0 : x >= 4294967295.0 ? UINT32_MAX : (uint32_t)x;
}

/* The runtime: the node's counters, its deepest mailboxes, its peers, its
 * channels, the link counters. */
static void
runtime(Picos__V1__NodeStatus *st, views *w)
{
    pc_node_stats ns;
    pc_net_stats net;
    size_t n;

    if (pc_node_stats_get(&ns) == PC_OK) {
        st->tasks = ns.tasks;
        st->actors = ns.actors;
        st->spawned = ns.spawned;
        st->msgs_sent = ns.msgs_sent;
        st->msgs_received = ns.msgs_received;
        st->msgs_dropped = ns.msgs_dropped;
        st->msgs_refused = ns.msgs_refused;
    }
    n = pc_node_deepest(w->deep, PC__STATUS_MAX_DEEPEST);
    for (size_t i = 0; i < n && i < PC__STATUS_MAX_DEEPEST; i++) {
        picos__v1__mailbox_depth__init(&w->md[i]);
        picos__v1__ref__init(&w->mref[i]);
        w->mref[i].node = w->deep[i].task.node;
        w->mref[i].id = w->deep[i].task.id;
        w->mref[i].incarnation = pc_node_incarnation();
        w->md[i].task = &w->mref[i];
        w->md[i].depth = w->deep[i].depth;
        w->pmd[i] = &w->md[i];
        st->n_deepest = i + 1;
    }
    st->deepest = w->pmd;
    n = pc_net_peers_get(w->peer, PC__STATUS_MAX_LIST);
    if (n > PC__STATUS_MAX_LIST)
        n = PC__STATUS_MAX_LIST;
    for (size_t i = 0; i < n; i++) {
        picos__v1__peer_status__init(&w->ps[i]);
        w->ps[i].node = w->peer[i].node;
        w->ps[i].name = w->peer[i].name;
        w->ps[i].endpoint = w->peer[i].endpoint;
        w->ps[i].up = w->peer[i].up;
        w->ps[i].heartbeat_age_ms = u32(w->peer[i].heartbeat_age * 1000);
        w->ps[i].queue = w->peer[i].queue;
        w->pps[i] = &w->ps[i];
    }
    st->n_peers = n;
    st->peers = w->pps;
    n = pc_chan_stats_all(w->chan, PC__STATUS_MAX_LIST);
    if (n > PC__STATUS_MAX_LIST)
        n = PC__STATUS_MAX_LIST;
    for (size_t i = 0; i < n; i++) {
        picos__v1__channel_status__init(&w->cs[i]);
        w->cs[i].name = w->chan[i].name;
        w->cs[i].published = w->chan[i].published;
        w->cs[i].delivered = w->chan[i].delivered;
        w->cs[i].dropped = w->chan[i].dropped;
        w->cs[i].subscribers = w->chan[i].subscribers;
        w->pcs[i] = &w->cs[i];
    }
    st->n_channels = n;
    st->channels = w->pcs;
    /* the latency window restarts: each sample has the calls that ended
     * since the one before */
    n = pc_rps_stats_all(w->svc, PC__STATUS_MAX_LIST, true);
    if (n > PC__STATUS_MAX_LIST)
        n = PC__STATUS_MAX_LIST;
    for (size_t i = 0; i < n; i++) {
        picos__v1__service_status__init(&w->ss[i]);
        w->ss[i].name = w->svc[i].name;
        w->ss[i].version = w->svc[i].version;
        w->ss[i].calls = w->svc[i].calls;
        w->ss[i].failures = w->svc[i].failures;
        w->ss[i].refused = w->svc[i].refused;
        w->ss[i].running = w->svc[i].running;
        w->ss[i].queued = w->svc[i].queued;
        w->ss[i].latency_p50_us = w->svc[i].p50_us;
        w->ss[i].latency_p90_us = w->svc[i].p90_us;
        w->ss[i].latency_p99_us = w->svc[i].p99_us;
        w->ss[i].latency_max_us = w->svc[i].max_us;
        w->ss[i].suspended = w->svc[i].suspended;
        w->pss[i] = &w->ss[i];
    }
    st->n_services = n;
    st->services = w->pss;
    if (pc_net_stats_get(&net) == PC_OK) {
        st->env_out = net.env_out;
        st->env_in = net.env_in;
        st->net_dropped = net.dropped;
        st->net_refused = net.refused;
        st->nodes_down = net.nodes_down;
        st->chan_missed = net.chan_missed;
    }
}

/* The compute server's counters, when this node takes computations. */
static void
compute(Picos__V1__NodeStatus *st, views *w)
{
    pc_compute_node_stats cs;
    Picos__V1__ComputeStatus *c = &w->compute;

    if (pc_compute_node_stats_get(&cs) != PC_OK || !cs.enabled)
        return;
    picos__v1__compute_status__init(c);
    c->cpus = cs.cpus;
    c->cpus_reserved = cs.cpus_reserved;
    c->sessions = cs.sessions;
    c->workers = cs.workers;
    c->workers_busy = cs.workers_busy;
    c->jobs_queued = cs.jobs_queued;
    c->jobs_done = cs.jobs_done;
    c->jobs_failed = cs.jobs_failed;
    c->workers_lost = cs.workers_lost;
    c->suspended = cs.suspended;
    st->compute = c;
}

pc_err
pc__status_sample(pc__status_sampler *s, uint8_t **out, size_t *len)
{
    Picos__V1__NodeStatus st = PICOS__V1__NODE_STATUS__INIT;
    views *w;
    size_t n;

    if (!s || !out || !len)
        return PC_EINVAL;
    st.node = pc_node_id();
    st.incarnation = pc_node_incarnation();
    st.name = s->name;
    st.host = s->host;
    st.pid = (uint32_t)getpid();
    st.sampled_us = pc_wall_us();
    st.started_us = s->started_us;
    st.interval_ms = s->interval_ms;
    st.data_dir = s->data_dir;
    machine(s, &st);
    st.workers = (uint32_t)pc_node_workers();
    /* (some 800 KiB: made once, not every second) */
    if (!(w = s->w) && !(w = s->w = malloc(sizeof *w)))
        return PC_ENOMEM;
    runtime(&st, w);
    compute(&st, w);
    n = picos__v1__node_status__get_packed_size(&st);
    if (!(*out = malloc(n ? n : 1)))
        return PC_ENOMEM;
    picos__v1__node_status__pack(&st, *out);
    *len = n;
    return PC_OK;
}
