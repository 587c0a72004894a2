/* tests/net_roles.c — the role tasks of net_roles.h. Each one is a plain
 * receive loop; none of them asserts anything itself: they answer with what
 * they saw, and the test that asked checks it. */
#include "net_roles.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "picos/net.h"

static int record_fd = -1;
static pthread_mutex_t last_mu = PTHREAD_MUTEX_INITIALIZER;
static pc_ref last_to; /* who is told "last-words" at the stop */

void
nr_stop(void)
{
    pc_ref to;

    pthread_mutex_lock(&last_mu);
    to = last_to;
    pthread_mutex_unlock(&last_mu);
    if (!pc_ref_is_nil(to))
        (void)pc_send_data(to, "last-words", "bye", 3);
    pc_node_stop();
}

static uint64_t
u64_of(const pc_msg *m, size_t i)
{
    size_t len = 0;
    const uint8_t *d = pc_msg_data(m, &len);
    uint64_t v = 0;

    if (d && len >= (i + 1) * 8)
        memcpy(&v, d + i * 8, 8);
    return v;
}

static pc_msg *
echo(void *arg)
{
    (void)arg;
    for (;;) {
        pc_msg *m = NULL;
        if (pc_recv(&m, -1) != PC_OK)
            return NULL;
        if (pc_msg_is(m, "quit")) {
            pc_msg_free(&m);
            pc_node_stop();
            return NULL;
        }
        if (pc_msg_is(m, "stats")) {
            pc_net_stats s;
            uint64_t v[8] = {0};
            if (pc_net_stats_get(&s) == PC_OK) {
                v[0] = s.peers, v[1] = s.frames_in, v[2] = s.env_in;
                v[3] = s.refused, v[4] = s.dropped, v[5] = s.auth_failed;
                v[6] = s.nodes_down, v[7] = s.env_out;
            }
            pc_send_data(pc_msg_sender(m), "stats", v, sizeof v);
            pc_msg_free(&m);
            continue;
        }
        if (pc_msg_is(m, "last-words")) {
            pthread_mutex_lock(&last_mu);
            last_to = pc_msg_sender(m);
            pthread_mutex_unlock(&last_mu);
        }
        if (pc_msg_is(m, "connect")) {
            int32_t rc = pc_node_connect(pc_msg_str(m), 20.0, NULL);
            pc_send_data(pc_msg_sender(m), "connected", &rc, sizeof rc);
            pc_msg_free(&m);
            continue;
        }
        pc_ref to = pc_msg_sender(m);
        if (pc_send(to, &m) != PC_OK)
            pc_msg_free(&m);
    }
}

typedef struct seen {
    pc_ref who;
    uint64_t last;
} seen;

static pc_msg *
sink(void *arg)
{
    seen s[64];
    size_t ns = 0;
    uint64_t got = 0, bad = 0, gaps = 0;
    (void)arg;

    for (;;) {
        pc_msg *m = NULL;
        if (pc_recv(&m, -1) != PC_OK)
            return NULL;
        if (pc_msg_is(m, "seq")) {
            pc_ref who = pc_msg_sender(m);
            uint64_t q = u64_of(m, 0);
            size_t i;
            if (record_fd >= 0 && write(record_fd, &q, 8) != 8)
                bad++;
            for (i = 0; i < ns && !pc_ref_eq(s[i].who, who); i++)
                ;
            if (i == ns && ns < 64)
                s[ns++] = (seen){who, 0};
            if (i < ns) {
                if (q <= s[i].last)
                    bad++;
                else if (q > s[i].last + 1)
                    gaps++;
                if (q > s[i].last)
                    s[i].last = q;
            }
            got++;
        } else if (pc_msg_is(m, "report")) {
            uint64_t v[4] = {got, bad, gaps, ns};
            pc_send_data(pc_msg_sender(m), "report", v, sizeof v);
        } else if (pc_msg_is(m, "subscribe")) {
            /* payload "WHERE\nNAME": subscribe to that node's channel */
            char where[256], *name;
            pc_chan *ch = NULL;
            int32_t rc = PC_EINVAL;
            snprintf(where, sizeof where, "%s", pc_msg_str(m));
            if ((name = strchr(where, '\n'))) {
                *name++ = '\0';
                rc = pc_chan_locate_at(where, name, 20.0, &ch);
                if (rc == PC_OK)
                    rc = pc_chan_subscribe(ch, pc_self());
            }
            pc_send_data(pc_msg_sender(m), "subscribed", &rc, sizeof rc);
        } else if (pc_msg_is(m, "reset")) {
            ns = 0, got = bad = gaps = 0;
            pc_send_data(pc_msg_sender(m), "reset", NULL, 0);
        }
        pc_msg_free(&m);
    }
}

static pc_msg *
spawned(void *arg)
{
    (void)arg;
    for (;;) {
        pc_msg *m = NULL;
        if (pc_recv(&m, -1) != PC_OK)
            return NULL;
        if (pc_msg_is(m, "exit")) {
            size_t len;
            const void *d = pc_msg_data(m, &len);
            pc_msg *v = NULL;
            pc_msg_new(&v, "value", d, len);
            pc_msg_free(&m);
            return v;
        }
        if (pc_msg_is(m, "fail")) {
            char why[128];
            snprintf(why, sizeof why, "%s", pc_msg_str(m));
            pc_msg_free(&m);
            pc_exit_error(why);
        }
        if (pc_msg_is(m, "link")) {
            pc_ref r;
            size_t len;
            const void *d = pc_msg_data(m, &len);
            if (len == sizeof r) {
                memcpy(&r, d, sizeof r);
                pc_link(r);
            }
            pc_send_data(pc_msg_sender(m), "linked", NULL, 0);
        }
        pc_msg_free(&m);
    }
}

static pc_msg *
spawner(void *arg)
{
    (void)arg;
    for (;;) {
        pc_msg *m = NULL;
        pc_ref r = PC_REF_NIL;
        pc_spawn_opts o = {.worker = PC_WORKER_ANY,
                           .flags = PC_TASK_JOINABLE | PC_TASK_DAEMON};
        if (pc_recv(&m, -1) != PC_OK)
            return NULL;
        if (pc_msg_is(m, "spawn") && pc_spawn(spawned, NULL, &o, &r) == PC_OK)
            pc_send_data(pc_msg_sender(m), "spawned", &r, sizeof r);
        pc_msg_free(&m);
    }
}

typedef struct blast_job {
    nr_blast b;
    pc_ref boss;
} blast_job;

static pc_msg *
blast_one(void *arg)
{
    blast_job *j = arg;
    uint64_t v[3] = {0};

    for (uint64_t q = 1; q <= j->b.count; q++) {
        pc_msg *m = NULL;
        pc_err rc;
        if (pc_msg_new(&m, "seq", &q, sizeof q) != PC_OK) {
            v[1]++;
            continue;
        }
        for (;;) {
            rc = q % 100 ? pc_send(j->b.target, &m)
                         : pc_deliver(j->b.target, &m, 30.0);
            if (rc != PC_EFULL)
                break;
            v[0]++;
            pc_sleep(0.0005); /* the peer's queue is full: let it drain */
        }
        if (rc != PC_OK) {
            v[q % 100 ? 1 : 2]++;
            pc_msg_free(&m);
        }
    }
    pc_send_data(j->boss, "one", v, sizeof v);
    return NULL;
}

static pc_msg *
blaster(void *arg)
{
    (void)arg;
    for (;;) {
        pc_msg *m = NULL;
        size_t len;
        const void *d;
        blast_job *j;
        uint64_t total[3] = {0};
        if (pc_recv(&m, -1) != PC_OK)
            return NULL;
        d = pc_msg_data(m, &len);
        if (!pc_msg_is(m, "blast") || len != sizeof(nr_blast) ||
            !(j = malloc(sizeof *j))) {
            pc_msg_free(&m);
            continue;
        }
        memcpy(&j->b, d, sizeof j->b);
        j->boss = pc_self();
        for (uint64_t i = 0; i < j->b.senders; i++) {
            pc_spawn_opts o = {
                .worker = PC_WORKER((int)(i % (uint64_t)pc_node_workers()))};
            if (pc_spawn(blast_one, j, &o, NULL) != PC_OK)
                total[1] += j->b.count;
        }
        for (uint64_t i = 0; i < j->b.senders; i++) {
            pc_msg *r = NULL;
            if (pc_recv_type("one", &r, -1) != PC_OK)
                break;
            for (int k = 0; k < 3; k++)
                total[k] += u64_of(r, (size_t)k);
            pc_msg_free(&r);
        }
        pc_send_data(pc_msg_sender(m), "blasted", total, sizeof total);
        pc_msg_free(&m);
        free(j);
    }
}

/* "full": a mailbox of one that it never reads (policy PC_MB_FAIL). */
static pc_msg *
full(void *arg)
{
    (void)arg;
    while (pc_sleep(3600) == PC_OK)
        ;
    return NULL;
}

pc_err
nr_start(int fd, bool keep_alive)
{
    static const struct {
        const char *name;
        pc_task_fn fn;
    } roles[] = {{"echo", echo},
                 {"sink", sink},
                 {"spawner", spawner},
                 {"blaster", blaster},
                 {"full", full}};
    static pc_chan *board;
    pc_err rc;

    record_fd = fd;
    if (!board && (rc = pc_chan_new(&board, "board", NULL, NULL)) != PC_OK)
        return rc;
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
        pc_spawn_opts o = {.worker = PC_WORKER((int)i % pc_node_workers()),
                           .flags = keep_alive && i == 0 ? 0 : PC_TASK_DAEMON,
                           .name = roles[i].name,
                           .mailbox_cap = roles[i].fn == full ? 1 : 0,
                           .mailbox_policy = PC_MB_FAIL};
        pc_ref r;
        rc = pc_spawn(roles[i].fn, NULL, &o, &r);
        if (rc == PC_OK)
            rc = pc_register(roles[i].name, r);
        if (rc != PC_OK)
            return rc;
    }
    return PC_OK;
}
