/* services/compute_node_int.h — what the node side of computations shares
 * between its files: the compute task (compute_node.c), the session task
 * of each computation (compute_session.c: its loop, control and close;
 * compute_upload.c: the files; compute_workers.c: the setup process and
 * the workers; compute_jobs.c: the queue, dispatch and events), the files
 * of a node's data directory (compute_store.c) and the check of a
 * worker's frames (compute_wframe.c, a pure function so that
 * tests/fuzz_wframe.c can feed it anything).
 */
#ifndef PICOS_SERVICES_COMPUTE_NODE_INT_H
#define PICOS_SERVICES_COMPUTE_NODE_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "picos/proc.h"
#include "picos/ref.h"
#include "picos/sock.h"
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

/* When m's payload is `size` bytes: copied to out, true. Else out is left
 * as it is, false. (A local message's value: a bool, a double, a
 * struct.) */
bool pc__cn_value(const pc_msg *m, void *out, size_t size);

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

/* ---- inside a session (compute_session/upload/workers/jobs.c) ------------- */

/* Writes to the setup process and to a worker wait at most this. */
#define SS_WRITE_TIMEOUT 5.0

/* A session's phase. */
enum { PH_UPLOAD, PH_START, PH_RUN, PH_CLOSING, PH_QUITTING, PH_END };

/* A worker's state. */
enum {
    WS_NONE,     /* not spawned (yet, or again) */
    WS_SPAWNING, /* `spawn I` sent */
    WS_UP,       /* connected, W_HELLO seen */
    WS_IDLE,     /* W_READY seen, no job */
    WS_BUSY,     /* runs a job */
    WS_HELD,     /* held for a job of several CPUs */
    WS_DYING,    /* killed, or its connection ended: its `exit` to come */
};

typedef struct ss_msg {
    uint8_t *data;
    size_t len;
    struct ss_msg *next;
} ss_msg;

typedef struct ss_job {
    uint64_t id;
    uint32_t attempt;
    char *fn;
    int cpus;
    int64_t timeout_ms;
    char **files_out;
    size_t nfiles_out;
    uint8_t *packed; /* the ComputeJob as the client sent it */
    size_t plen;
    ss_msg *to_job, *to_job_tail; /* sent before it ran */
    int worker;                   /* -1 while queued */
    double deadline;              /* pc_now(); < 0: none */
    uint64_t started_us;
    int kill_why; /* WHY_OK: not killed by the session */
    char kill_text[200];
    struct ss_job *next;
} ss_job;

typedef struct ss_conn {
    int id;
    pc_sock *sock;
    pid_t pid;
    int worker; /* -1 before W_HELLO */
    struct ss_conn *next;
} ss_conn;

typedef struct ss_worker {
    int state;
    pid_t pid;
    ss_conn *conn;
    ss_job *job;  /* running it (BUSY) or held by it (HELD) */
    bool counted; /* in pc__compute_stats.workers */
    /* killed by the session for a protocol violation without a job */
    char violation[200];
} ss_worker;

typedef struct ss_file {
    int fd;
    uint64_t got;
    pc__cst_sha sha;
    bool done;
    char path[4600], tmp[4600];
} ss_file;

typedef struct ss_ev {
    Picos__V1__ComputeJobEvent *ev;
    bool unpacked; /* protobuf-c's (a W_DONE's), else made by ev_new() */
} ss_ev;

/* A session: everything of it is its task's. */
typedef struct ss_state {
    pc__cs_params p;
    char dir[4200];
    int phase;
    bool client_susp, node_susp, client_gone, failed;
    double close_at; /* end of the grace; < 0: none */
    double quit_at;
    /* upload */
    ss_file *files; /* 1 + p.nfiles: the library first */
    /* processes */
    pc_proc *proc;
    pc_ref line_reader, acceptor;
    pc_sock *listener;
    bool setup_ready, proc_eof;
    ss_worker *w;
    ss_conn *conns;
    int next_conn;
    int ready_sent;
    int crashes; /* in a row */
    int up;      /* workers ready */
    char **jobs; /* the library's job names (W_READY) */
    size_t njobs;
    /* jobs */
    ss_job *qhead, *qtail, *running;
    int nqueued;
    /* events to send */
    ss_ev *evs;
    size_t nevs, evcap, evbytes;
    /* counters this session added to pc__compute_stats */
    int c_busy;
} ss_state;

/* compute_session.c */

/* Add d (may be negative) to counter c. */
void pc__ss_add_u(atomic_uint *c, int d);
/* A worker more (1) or less (-1) busy, in the session's and the node's
 * counts. */
void pc__ss_busy_add(ss_state *st, int d);
/* s cut to one line of at most 255 bytes, in place (s may be NULL or
 * protobuf-c's read-only ""). */
void pc__ss_one_line(char *s);
/* A ComputeNodeEvent to the client (none once it is gone). */
void pc__ss_node_event(ss_state *st, Picos__V1__ComputeNodeEventKind kind,
                       int worker, const char *text);
/* The computation can't go on here: ComputeFailed with text (one line) to
 * the client, and the session ends at once. */
void pc__ss_fail(ss_state *st, const char *text);

/* compute_upload.c */

/* Name the files, hash-check the empty ones; start the workers when
 * nothing is to come. */
void pc__ss_upload_begin(ss_state *st);
/* A ComputeChunk from the client. */
void pc__ss_on_chunk(ss_state *st, const pc_msg *m);
/* Close the files; a library not complete goes. */
void pc__ss_upload_fini(ss_state *st);

/* compute_workers.c */

/* The w<i> directories, ctl.sock and its acceptor, then picos-worker and
 * its line reader. false (the session failed) when one can't be had. */
bool pc__ss_start_workers(ss_state *st);
/* A line of the setup process's stdout (CN_T_LINE). */
void pc__ss_on_line(ss_state *st, const pc_msg *m);
/* A worker's connection (CN_T_CONN), frame (CN_T_FRAME), end (CN_T_GONE). */
void pc__ss_on_conn(ss_state *st, const pc_msg *m);
void pc__ss_on_frame(ss_state *st, const pc_msg *m);
void pc__ss_on_gone(ss_state *st, const pc_msg *m);
/* Kill worker i (its `exit` line reports it); its job, when it has one,
 * ends with `why` and `text`. */
void pc__ss_kill_worker(ss_state *st, int i, int why, const char *text);
/* Send worker i a frame (packed, or to pack); a worker that can't take it
 * is killed. false when it did not go. */
bool pc__ss_send_frame(ss_state *st, int i, const uint8_t *buf, size_t len);
bool pc__ss_send_wframe(ss_state *st, int i, const Picos__V1__WorkerFrame *f);
/* W_QUIT to worker i. */
void pc__ss_quit_worker(ss_state *st, int i);
/* Close the connections, stop picos-worker (`quit`, then SIGKILL; at once
 * when !can_wait) and the helper tasks. */
void pc__ss_workers_fini(ss_state *st, bool can_wait);

/* compute_jobs.c */

/* Start queued jobs while idle workers can take them (FIFO). */
void pc__ss_dispatch(ss_state *st);
/* ComputeSubmit, ComputeCancel, ComputeToJob from the client. */
void pc__ss_on_submit(ss_state *st, const pc_msg *m);
void pc__ss_on_cancel(ss_state *st, const pc_msg *m);
void pc__ss_on_to_job(ss_state *st, const pc_msg *m);
/* Take j out of the running list and give its workers back. */
void pc__ss_unrun(ss_state *st, ss_job *j);
/* The end of job j (taken out of every list already; freed here): a
 * JOB_DONE event of ours with why and error. */
void pc__ss_job_done(ss_state *st, ss_job *j, Picos__V1__ComputeWhy why,
                     const char *error);
/* The end of running job j by its worker's W_DONE frame f (whose event
 * it takes: f->done NULL then; j unrun and freed here). */
void pc__ss_job_result(ss_state *st, ss_job *j, Picos__V1__WorkerFrame *f);
/* End every queued job CANCELLED with text. */
void pc__ss_cancel_queued(ss_state *st, const char *text);
/* Send the events collected as one ComputeEvents. */
void pc__ss_flush_events(ss_state *st);
/* Free the jobs (no event) and what they still count; the events. */
void pc__ss_jobs_fini(ss_state *st);
void pc__ss_events_free(ss_state *st);

#endif
