/* services/compute_node_int.h — what the node side of computations shares
 * between its files: the compute task (compute_node.c), the session task
 * of each computation (compute_session.c), the files of a node's data
 * directory (compute_store.c) and the check of a worker's frames
 * (compute_wframe.c, a pure function so that tests/fuzz_wframe.c can
 * feed it anything).
 */
#ifndef PICOS_SERVICES_COMPUTE_NODE_INT_H
#define PICOS_SERVICES_COMPUTE_NODE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "picos/ref.h"
#include "picos/task.h"

#include "compute_int.h"

/* Local messages between the compute task, its sessions and their helper
 * tasks (never from another node: checked with pc__cn_local()). */
#define CN_T_ENDED "picos.compute.ended"     /* session -> compute task */
#define CN_T_SUSPEND "picos.compute.suspend" /* bool: node-wide */
#define CN_T_STOP "picos.compute.stop"       /* double grace */
#define CN_T_LINE "picos.compute.line"       /* setup process's line */
#define CN_T_LINE_EOF "picos.compute.eof"    /* its stdout ended */
#define CN_T_CONN "picos.compute.conn"       /* a worker connected */
#define CN_T_FRAME "picos.compute.frame"     /* int32 conn, frame bytes */
#define CN_T_GONE "picos.compute.gone"       /* int32 conn, int32 pc_err */

/* The longest line the setup process may write (its `failed TEXT`). */
#define CN_LINE_MAX 4096
/* A JOB_DONE event and a batch of events must fit in one link message
 * (1 MiB frame, 1 KiB of envelope): results and files out that don't are
 * reported as a failure of the job. */
#define CN_EVENTS_MAX ((1u << 20) - 8192u)
/* Worker deaths in a row (without a job ending normally), per worker,
 * after which a session stops replacing them. */
#define CN_CRASH_FACTOR 8
/* The share of the address-space limit at which a death by a signal is
 * put down to memory: a process that dies in malloc's failure path rarely
 * reaches the limit exactly (its last allocation failed). */
#define CN_MEMORY_SHARE 0.75

/* True when m comes from a task of this node. */
bool pc__cn_local(const pc_msg *m);

/* Send the packed pb as a message of `type` to `to`. */
pc_err pc__cn_send_pb(pc_ref to, const char *type, const ProtobufCMessage *pb);

/* ---- the data directory (compute_store.c) -------------------------------- */

/* A plain file name: 1..255 bytes, no '/', not "." or "..". */
bool pc__cst_plain_name(const char *name);

/* mkdir path with mode (an existing directory is fine: its mode is set).
 * Returns 0 or an errno. */
int pc__cst_mkdir(const char *path, mode_t mode);

/* Remove path and everything under it (without following symlinks; a
 * missing path is fine). Returns 0 or the first errno. */
int pc__cst_rm_tree(const char *path);

/* Remove every "s-*" directory of dir (what a node killed before it could
 * clean up left). */
void pc__cst_rm_sessions(const char *dir);

/* 32 bytes as 64 lowercase hex digits and a NUL into out[65]. */
void pc__cst_hex(const uint8_t *sha, char *out);

/* Incremental SHA-256 (wolfSSL's); opaque storage big enough for it. */
typedef struct pc__cst_sha {
    _Alignas(16) unsigned char st[512];
} pc__cst_sha;
void pc__cst_sha_init(pc__cst_sha *s);
void pc__cst_sha_update(pc__cst_sha *s, const void *data, size_t len);
void pc__cst_sha_final(pc__cst_sha *s, uint8_t out[32]);

/* ---- worker frames (compute_wframe.c) ------------------------------------- */

/* What the session knows of one worker connection, to judge its next
 * frame. */
typedef struct pc__cw_view {
    int workers;            /* of the session: a worker index is below it */
    int worker;             /* its index, -1 before its W_HELLO */
    pid_t peer_pid;         /* SO_PEERCRED's, 0 when unknown */
    bool ready;             /* W_READY seen */
    bool running;           /* a job runs on it: */
    uint64_t job_id;        /* that job */
    char *const *files_out; /* the names it may return */
    size_t nfiles_out;
} pc__cw_view;

/* Unpack and judge a frame from a worker. true with *out (the caller
 * frees it with picos__v1__worker_frame__free_unpacked) when it is sound
 * for v; false with a one-line reason in why ("oversized frame",
 * "W_DONE for job 7, it runs 9", ...) and *out NULL. Pure: any bytes. */
bool pc__cw_check(const pc__cw_view *v, const uint8_t *buf, size_t len,
                  Picos__V1__WorkerFrame **out, char *why, size_t size);

/* ---- sessions (compute_session.c) ----------------------------------------- */

/* A file the client declared. */
typedef struct pc__cs_file {
    char name[256]; /* "" for the library */
    uint64_t size;
    uint8_t sha[32];
} pc__cs_file;

/* What a session starts with (the compute task's, copied by the session). */
typedef struct pc__cs_params {
    pc_ref server; /* the compute task */
    pc_ref client; /* the task the Reserve came from */
    uint64_t client_id;
    char label[128]; /* ComputeReserve.name, for logs */
    char node[PC_NAME_MAX + 1];
    uint64_t id;     /* s-<id> */
    int slot;        /* uid = uid_base + slot when confined */
    int cpus;        /* workers */
    uint64_t memory; /* their address-space limit */
    double cpu_seconds;
    bool confine; /* root: chroot and a uid of its own */
    bool seccomp;
    bool suspended; /* the node's suspension when it starts */
    uid_t uid;
    gid_t gid;
    char root[4096];   /* DATA_DIR/compute */
    char worker[4096]; /* picos-worker */
    pc__cs_file lib;
    pc__cs_file *files;
    size_t nfiles;
} pc__cs_params;

/* Spawn the session task of p (which it takes: files freed with it, also
 * on error). Returns PC_OK and its ref. */
pc_err pc__cs_start(pc__cs_params *p, pc_ref *out);

#endif
