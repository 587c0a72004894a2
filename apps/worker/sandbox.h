/* apps/worker/sandbox.h — the sandbox of picos-worker's processes
 * (docs/computations.md "The sandbox and its threat model"). */
#ifndef PICOS_APPS_WORKER_SANDBOX_H
#define PICOS_APPS_WORKER_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct pc__sandbox_opts {
    const char *root; /* the session directory (chroot target) */
    uid_t uid;        /* --confine: the session's uid and gid */
    gid_t gid;
    uint64_t memory;       /* RLIMIT_AS, bytes; 0: none */
    long cpu_seconds;      /* RLIMIT_CPU of each worker; <= 0: none */
    long nofile;           /* RLIMIT_NOFILE */
    long nproc;            /* RLIMIT_NPROC; <= 0: none */
    uint64_t fsize;        /* RLIMIT_FSIZE, bytes; 0: none */
    bool seccomp, confine; /* --seccomp on, --confine on */
} pc__sandbox_opts;

/* Sandbox the calling (setup) process, in the doc's order: resource limits
 * (all but CPU time, which each worker sets for itself), then with
 * o->confine every capability out of the bounding set, chroot(o->root),
 * chdir("/"), no supplementary groups, gid and uid set (and checked),
 * then PR_SET_NO_NEW_PRIVS, then with o->seccomp the setup process's
 * filter (everything the doc lists but fork and clone). Returns 0, or -1
 * with a one-line reason in err. */
int pc__sandbox_enter(const pc__sandbox_opts *o, char *err, size_t size);

/* In a worker just forked from a sandboxed setup process: its CPU-time
 * limit, then with o->seccomp a second filter that denies fork, vfork and
 * clone without CLONE_THREAD. Returns 0, or -1 with a reason in err. */
int pc__sandbox_worker(const pc__sandbox_opts *o, char *err, size_t size);

/* True when this build can't take an address-space limit (ASan and TSan
 * reserve terabytes of shadow memory at start): RLIMIT_AS is then not set
 * and a note goes to stderr. */
bool pc__sandbox_no_as_limit(void);

#endif
