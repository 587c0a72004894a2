/* apps/worker/sandbox.c — what confines a computation's code.
 *
 * The setup process sandboxes itself once, before it loads the library
 * (so not even the library's constructors run outside it), and every
 * worker it forks inherits all of it: the resource limits, the chroot, the
 * uid, no-new-privs and the first seccomp filter. A worker then adds its
 * own CPU-time limit (counted from its fork, so node_setup's time is not
 * charged to it) and a second filter that takes fork away; filters stack,
 * and a syscall is allowed only when every filter allows it.
 *
 * Order matters: capabilities are dropped from the bounding set while the
 * process still holds CAP_SETPCAP; chroot and the uid change need their
 * capabilities too, and the uid change (to a uid that is not 0, without
 * SECBIT_KEEP_CAPS) then clears the permitted, effective and ambient sets.
 * Each step is checked rather than trusted: a setresuid that "succeeded"
 * but left a saved uid of 0 would let the job regain root. The filters
 * allow by default and deny a list (the doc's): the aim is to take away
 * new processes, new privileges and the network, not to enumerate what a
 * numerical job may call. Syscalls of another ABI (i386's int 0x80, x32)
 * kill the process: libseccomp's default for a foreign architecture.
 * io_uring is denied as well, since its operations (sockets, opens) are
 * not seen by seccomp.
 */
#define _GNU_SOURCE
#include "sandbox.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <seccomp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static int fail(char *err, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(char *err, size_t size, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
    return -1;
}

bool
pc__sandbox_no_as_limit(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) ||           \
    defined(PICOS_SANITIZE_ADDRESS) || defined(PICOS_SANITIZE_THREAD)
    return true;
#else
    return false;
#endif
}

static int
limit(int res, const char *name, rlim_t v, char *err, size_t size)
{
    struct rlimit rl = {v, v};

    if (setrlimit(res, &rl))
        return fail(err, size, "setrlimit(%s, %llu): %s", name,
                    (unsigned long long)v, strerror(errno));
    return 0;
}

static int
limits(const pc__sandbox_opts *o, char *err, size_t size)
{
    if (o->memory > 0) {
        if (pc__sandbox_no_as_limit())
            fprintf(stderr, "picos-worker: sanitizer build: no address-space "
                            "limit (RLIMIT_AS) set\n");
        else if (limit(RLIMIT_AS, "RLIMIT_AS", (rlim_t)o->memory, err, size))
            return -1;
    }
    if (limit(RLIMIT_NOFILE, "RLIMIT_NOFILE", (rlim_t)o->nofile, err, size))
        return -1;
    if (o->nproc > 0 &&
        limit(RLIMIT_NPROC, "RLIMIT_NPROC", (rlim_t)o->nproc, err, size))
        return -1;
    if (o->fsize > 0 &&
        limit(RLIMIT_FSIZE, "RLIMIT_FSIZE", (rlim_t)o->fsize, err, size))
        return -1;
    return limit(RLIMIT_CORE, "RLIMIT_CORE", 0, err, size);
}

/* The calling thread's effective and permitted capability sets, ORed
 * together per word (raw capget: no libcap). */
static int
caps_left(uint64_t *eff, uint64_t *perm)
{
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];

    memset(d, 0, sizeof d);
    if (syscall(SYS_capget, &h, d))
        return -1;
    *eff = (uint64_t)d[1].effective << 32 | d[0].effective;
    *perm = (uint64_t)d[1].permitted << 32 | d[0].permitted;
    return 0;
}

static int
confine(const pc__sandbox_opts *o, char *err, size_t size)
{
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    uint64_t eff, perm;

    if (o->uid == 0 || o->gid == 0)
        return fail(err, size, "confine: uid and gid must not be 0");
    for (int cap = 0;; cap++) {
        if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) < 0)
            break; /* EINVAL: past the kernel's last capability */
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0))
            return fail(err, size, "PR_CAPBSET_DROP(%d): %s", cap,
                        strerror(errno));
    }
    if (chroot(o->root))
        return fail(err, size, "chroot %s: %s", o->root, strerror(errno));
    if (chdir("/"))
        return fail(err, size, "chdir /: %s", strerror(errno));
    if (setgroups(0, NULL))
        return fail(err, size, "setgroups: %s", strerror(errno));
    if (setresgid(o->gid, o->gid, o->gid))
        return fail(err, size, "setresgid %u: %s", (unsigned)o->gid,
                    strerror(errno));
    if (setresuid(o->uid, o->uid, o->uid))
        return fail(err, size, "setresuid %u: %s", (unsigned)o->uid,
                    strerror(errno));
    (void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    if (getresuid(&ru, &eu, &su) || ru != o->uid || eu != o->uid ||
        su != o->uid)
        return fail(err, size, "confine: uid did not change to %u",
                    (unsigned)o->uid);
    if (getresgid(&rg, &eg, &sg) || rg != o->gid || eg != o->gid ||
        sg != o->gid)
        return fail(err, size, "confine: gid did not change to %u",
                    (unsigned)o->gid);
    if (getgroups(0, NULL) != 0)
        return fail(err, size, "confine: supplementary groups left");
    if (caps_left(&eff, &perm) || eff || perm)
        return fail(err, size,
                    "confine: capabilities left after the uid "
                    "change");
    if (setuid(0) == 0)
        return fail(err, size, "confine: setuid(0) still works");
    return 0;
}

/* The syscalls both filters deny with EPERM (names: resolved for this
 * architecture; a name it does not have is skipped). */
static const char *const denied[] = {
    "execve",
    "execveat",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "mount",
    "umount2",
    "chroot",
    "pivot_root",
    "unshare",
    "setns",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "init_module",
    "finit_module",
    "delete_module",
    "bpf",
    "perf_event_open",
    "keyctl",
    "add_key",
    "request_key",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "fsopen",
    "fsmount",
    "move_mount",
    "open_tree",
};

static int
rule(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned nargs,
     const struct scmp_arg_cmp *args, char *err, size_t size)
{
    int nr = seccomp_syscall_resolve_name(name);
    int rc;

    if (nr == __NR_SCMP_ERROR)
        return 0;
    rc = seccomp_rule_add_array(ctx, action, nr, nargs, args);
    if (rc < 0)
        return fail(err, size, "seccomp rule %s: %s", name, strerror(-rc));
    return 0;
}

static int
load(scmp_filter_ctx ctx, char *err, size_t size)
{
    int rc = seccomp_load(ctx);

    seccomp_release(ctx);
    if (rc < 0)
        return fail(err, size, "seccomp_load: %s", strerror(-rc));
    return 0;
}

static int
setup_filter(char *err, size_t size)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    struct scmp_arg_cmp not_unix = SCMP_A0(SCMP_CMP_NE, AF_UNIX);

    if (!ctx)
        return fail(err, size, "seccomp_init failed");
    for (size_t i = 0; i < sizeof denied / sizeof *denied; i++)
        if (rule(ctx, SCMP_ACT_ERRNO(EPERM), denied[i], 0, NULL, err, size))
            goto bad;
    if (rule(ctx, SCMP_ACT_ERRNO(EPERM), "socket", 1, &not_unix, err, size) ||
        rule(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL, err, size))
        goto bad;
    return load(ctx, err, size);
bad:
    seccomp_release(ctx);
    return -1;
}

static int
worker_filter(char *err, size_t size)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    /* clone(flags, ...): flags are the first argument on x86-64 and arm64 */
    struct scmp_arg_cmp no_thread =
        SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0);

    if (!ctx)
        return fail(err, size, "seccomp_init failed");
    if (rule(ctx, SCMP_ACT_ERRNO(EPERM), "fork", 0, NULL, err, size) ||
        rule(ctx, SCMP_ACT_ERRNO(EPERM), "vfork", 0, NULL, err, size) ||
        rule(ctx, SCMP_ACT_ERRNO(EPERM), "clone", 1, &no_thread, err, size)) {
        seccomp_release(ctx);
        return -1;
    }
    return load(ctx, err, size);
}

int
pc__sandbox_enter(const pc__sandbox_opts *o, char *err, size_t size)
{
    if (limits(o, err, size))
        return -1;
    if (o->confine && confine(o, err, size))
        return -1;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
        return fail(err, size, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
    if (o->seccomp && setup_filter(err, size))
        return -1;
    return 0;
}

int
pc__sandbox_worker(const pc__sandbox_opts *o, char *err, size_t size)
{
    if (o->cpu_seconds > 0) {
        /* SIGXCPU at the soft limit (what the node reports), SIGKILL a
         * second later should the job ignore it */
        struct rlimit rl = {(rlim_t)o->cpu_seconds, (rlim_t)o->cpu_seconds + 1};
        if (setrlimit(RLIMIT_CPU, &rl))
            return fail(err, size, "setrlimit(RLIMIT_CPU, %ld): %s",
                        o->cpu_seconds, strerror(errno));
    }
    if (o->seccomp && worker_filter(err, size))
        return -1;
    return 0;
}
