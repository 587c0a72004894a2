/* tests/netutil.h — child node processes for the multi-process tests.
 *
 * nt_start() starts NET_PEER (tests/net_peer.c, or the peer the test's
 * CMake entry names) with proctest.h's kid_run — a process group of its
 * own, PR_SET_PDEATHSIG, remembered until nt_stop() kills its group and
 * reaps it, killed on every way out of the test program — its stderr in a
 * file of pt_tmpdir() the test can read, and waits (bounded) for its
 * "READY <endpoint> <node>" line. Ports: children bind tcp://127.0.0.1:0
 * and report the port the kernel gave. Also here: the cluster secrets
 * these tests share, and the failure detection's timing.
 */
#ifndef PICOS_TESTS_NETUTIL_H
#define PICOS_TESTS_NETUTIL_H

#include <inttypes.h>

#include "picos/registry.h"
#include "picos/rps.h"

#include "proctest.h"

/* Failure detection's timing: heartbeats at the default 0.2 s, the timeout
 * 2 s rather than the default 1 s — ctest runs two multi-process programs
 * at once on two cores, and CI once saw a node in its grace declared down
 * after 1.01 s of silence (test_node sigterm_grace; 0 in 12 runs beside
 * test_http here). Under TSan,
 * where every process runs ten times slower on two shared cores, a busy
 * peer would be declared down for its slowness alone (5 s was not enough
 * once every node also reports its status: a restarted registry replaying
 * and taking re-joins, or a node closing its services, went silent 5 s). */
#if defined(__SANITIZE_THREAD__)
#define NET_HB "0.5"
#define NET_TIMEOUT "10"
#else
#define NET_HB "0.2"
#define NET_TIMEOUT "2"
#endif

typedef kid nt_child;

static inline void
nt_stop(nt_child *c)
{
    kid_free(c);
}

/* Start net_peer with args (NULL-terminated, after argv[0]); false when it
 * did not say READY within 20 s (its stderr is printed then). */
static inline bool
nt_start(nt_child *c, const char *const *args)
{
    static int seq;
    char name[32], line[512], err[1024];
    kid_opts o = {.errpath = c->errpath};

    snprintf(name, sizeof name, "nt-%d.err", seq++);
    pt_tmppath(c->errpath, sizeof c->errpath, name);
    if (!kid_run(c, NET_PEER, args, &o))
        return false;
    if (!read_line(c->out, line, sizeof line, 20.0) ||
        sscanf(line, "READY %255s %" SCNx64, c->ep, &c->node) != 2) {
        fprintf(stderr, "net_peer did not start: %s\n",
                kid_errtext(c, err, sizeof err));
        nt_stop(c);
        return false;
    }
    return true;
}

/* Whether the child's stderr holds `text`. */
static inline bool
nt_stderr_has(const nt_child *c, const char *text)
{
    char buf[16384];
    return strstr(kid_errtext(c, buf, sizeof buf), text) != NULL;
}

/* The cluster secret (secret_path) and another one (other_path), written
 * once into pt_tmpdir(). */
static char secret_path[160], other_path[160];

static inline void
secrets(void)
{
    if (!secret_path[0]) {
        write_tmp_file(secret_path, sizeof secret_path, "secret-a",
                       "the picos test cluster secret, 1\n");
        write_tmp_file(other_path, sizeof other_path, "secret-b",
                       "not the cluster's secret at all\n");
    }
}

/* Start picos-registry `bin` on tcp://127.0.0.1:0 with data dir `dir`
 * (its stderr in dir/reg.err), the cluster secret and these tests'
 * timing, and read its endpoint back into ep (256 bytes). false when it
 * did not say where it listens within PT_LONG (its stderr is printed
 * then, and reg freed). */
static inline bool
nt_registry_start(kid *reg, const char *bin, const char *dir, char *ep)
{
    char line[512] = "", err[2048];
    kid_opts o = {.errpath = reg->errpath, .clean_env = true};

    secrets();
    snprintf(reg->errpath, sizeof reg->errpath, "%.140s/reg.err", dir);
    if (!kid_run(reg, bin,
                 (const char *[]){"--listen", "tcp://127.0.0.1:0", "--data-dir",
                                  dir, "--secret-file", secret_path,
                                  "--heartbeat", NET_HB, "--timeout",
                                  NET_TIMEOUT, NULL},
                 &o))
        return false;
    if (!read_line(reg->out, line, sizeof line, PT_LONG) ||
        sscanf(line, "%*s %*s listening on %255s", ep) != 1) {
        fprintf(stderr, "picos-registry did not start: '%s' %s\n", line,
                kid_errtext(reg, err, sizeof err));
        kid_free(reg);
        return false;
    }
    return true;
}

/* This program joins the cluster of the registry at ep, with the cluster
 * secret and these tests' timing (PT_LONG to join). */
static inline pc_err
nt_cluster_join(const char *ep)
{
    pc_cluster_opts o = {0};

    secrets();
    o.registries = ep;
    o.net.secret_file = secret_path;
    o.net.heartbeat = atof(NET_HB);
    o.net.timeout = atof(NET_TIMEOUT);
    o.join_timeout = PT_LONG;
    return pc_cluster_join(&o);
}

/* A client of service `name` (pc_rps_locate() with PT_LONG), from a task:
 * a failure is recorded with TCHECK and NULL returned. */
static inline pc_rps_client *
nt_locate(const char *name)
{
    pc_rps_client *c = NULL;
    TCHECK_RC(pc_rps_locate(name, PT_LONG, &c), PC_OK);
    return c;
}

#endif
