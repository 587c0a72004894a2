/* actors/internal.h — the runtime's private types, shared by the actors
 * sources.
 *
 * Ownership map (who may touch what):
 *   - pc__node: created and freed by the thread that calls pc_node_start() /
 *     pc_node_run(); read by all. Its counters are atomics.
 *   - the slot table: slots are never freed while the node lives. `gen`,
 *     `worker`, `zombie` and `proc` are atomics so any thread can check a
 *     ref; only the worker owning a proc changes them after publication.
 *   - pc__worker: everything but `inbox` and `sleeping` belongs to its
 *     thread. Other threads reach it only by pushing an envelope on `inbox`
 *     and ringing `doorbell` (an ev_async: it queues nothing).
 *   - pc__proc (task or light actor): owned by its worker thread after its
 *     spawn is published. Its mailbox is a ring only that thread touches.
 */
#ifndef PICOS_ACTORS_INTERNAL_H
#define PICOS_ACTORS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "picos/actor.h"
#include "picos/chan.h"
#include "picos/err.h"
#include "picos/hotswap.h"
#include "picos/log.h"
#include "picos/monitor.h"
#include "picos/msg.h"
#include "picos/node.h"
#include "picos/pool.h"
#include "picos/ref.h"
#include "picos/supervisor.h"
#include "picos/sync.h"
#include "picos/task.h"
#include "picos/transport.h"

#if defined(PICOS_SANITIZE_ADDRESS) || defined(__SANITIZE_ADDRESS__)
#define PC__ASAN 1
#endif
#if defined(PICOS_SANITIZE_THREAD) || defined(__SANITIZE_THREAD__)
#define PC__TSAN 1
#endif

#ifdef PC__ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef PC__TSAN
#include <sanitizer/tsan_interface.h>
#endif

#if defined(PICOS_CTX_UCONTEXT) ||                                             \
    !(defined(__x86_64__) || defined(__aarch64__))
#define PC__CTX_UCONTEXT 1
#include <ucontext.h>
#endif

/* The struct of `type` whose member `field` is at ptr (libev watchers). */
#define PC__CONTAINER(ptr, type, field)                                        \
    ((type *)(void *)((char *)(ptr)-offsetof(type, field)))

/* Spin-wait hint for busy loops. */
static inline void
pc__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* ---- context switch (ctx.c) ---------------------------------------------- */

typedef struct pc__ctx {
    void *sp; /* saved stack pointer (asm switch) */
#ifdef PC__CTX_UCONTEXT
    ucontext_t uc;
#endif
} pc__ctx;

/* Prepare `c` so that switching to it runs entry() on [stack, stack+size).
 * entry must never return. */
void pc__ctx_make(pc__ctx *c, void *stack, size_t size, void (*entry)(void));

/* Save the running context in `from` and continue `to`. */
#if !defined(PC__CTX_UCONTEXT) && defined(__x86_64__)
/* x86-64: inline (ctx.c's opening comment). All that is saved on the
 * stack is rbp and where to resume; every other register is declared
 * clobbered, so the compiler keeps nothing in one across the switch and
 * saves only the callee-saved registers the caller really uses, in the
 * caller's own prologue, once. The pushes go below the stack pointer: the
 * functions holding a switch (task.c's go()) make calls, so the compiler
 * keeps no red zone there. */
static inline __attribute__((always_inline)) void
pc__ctx_switch(pc__ctx *from, pc__ctx *to)
{
    __asm__ volatile("pushq %%rbp\n\t"
                     "leaq 1f(%%rip), %%rax\n\t"
                     "pushq %%rax\n\t"
                     "movq %%rsp, (%0)\n\t"
                     "movq (%1), %%rsp\n\t"
                     "popq %%rax\n\t"
                     "jmpq *%%rax\n"
                     "1:\n\t"
                     "popq %%rbp"
                     : "+D"(from), "+S"(to)
                     :
                     : "rax", "rbx", "rcx", "rdx", "r8", "r9", "r10", "r11",
                       "r12", "r13", "r14", "r15", "xmm0", "xmm1", "xmm2",
                       "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
                       "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15",
#ifdef __AVX512F__
                       "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21",
                       "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27",
                       "xmm28", "xmm29", "xmm30", "xmm31", "k1", "k2", "k3",
                       "k4", "k5", "k6", "k7",
#endif
                       "st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)",
                       "st(6)", "st(7)", "cc", "memory");
}
#else
void pc__ctx_switch(pc__ctx *from, pc__ctx *to);
#endif

/* ---- stacks (stack.c) ------------------------------------------------------ */

typedef struct pc__stack {
    struct pc__stack *next; /* pool free list */
    char *lo;               /* lowest usable byte (above the guard page) */
    size_t size;            /* usable bytes */
    char *map;              /* mmap base */
    size_t map_size;
    unsigned color; /* bytes left unused at the top (stack.c) */
    bool guarded;
} pc__stack;

typedef struct pc__stack_pool {
    pc__stack *free; /* stacks of `size` bytes, ready for reuse */
    unsigned nfree;
    unsigned max_free; /* more are unmapped on release */
    unsigned colors;   /* stacks mapped so far, for their colour */
    size_t size;       /* default usable size */
    int guards_left;   /* guard pages still allowed */
} pc__stack_pool;

void pc__stack_pool_init(pc__stack_pool *p, size_t size, int guards);
void pc__stack_pool_fini(pc__stack_pool *p);
pc__stack *pc__stack_get(pc__stack_pool *p, size_t size);
void pc__stack_put(pc__stack_pool *p, pc__stack **s);
/* Aborts with a clear message when the task's stack overflowed. */
void pc__stack_overflow(const pc__stack *s, const char *name)
    __attribute__((noreturn));
/* pc__stack_check (inline.h): the switch-time check, sp inside s. */
/* At a task's end: also the lowest word, which only an overflow writes. */
void pc__stack_check_end(const pc__stack *s, const char *name);

/* Internal reply code: the joined task ended as a zombie; collect its value
 * with a second request (so a value is never handed to a joiner that gave
 * up). */
#define PC__ENDED 1

/* ---- processes: tasks and light actors ----------------------------------- */

enum pc__kind { PC__TASK = 1, PC__ACTOR = 2 };

enum pc__state {
    PC__ST_NEW = 0,     /* spawned, not yet linked on its worker */
    PC__ST_READY,       /* on the run queue */
    PC__ST_RUNNING,     /* the one running on its worker */
    PC__ST_SUSPENDED,   /* pc_suspend / pc_sleep: pc_resume wakes it */
    PC__ST_AWAIT_MSG,   /* pc_recv: a message wakes it */
    PC__ST_AWAIT_FD,    /* pc_wait_fd */
    PC__ST_AWAIT_REPLY, /* pc_task_join / pc_deliver: a reply wakes it */
    PC__ST_IDLE,        /* light actor with an empty mailbox */
    PC__ST_ZOMBIE,      /* ended joinable proc: exit code and value kept */
    PC__ST_DEAD         /* ending (pc__proc_finish: nothing wakes, runs or
                           ends it again; its exit handler may run as it),
                           or freed */
};

typedef struct pc__worker pc__worker;
typedef struct pc__sync pc__sync;

/* Where a reply goes: a task waiting with `token`, or a foreign thread's
 * sync object. */
typedef struct pc__reply_to {
    pc_ref task;
    uint32_t token;
    pc__sync *sync;
} pc__reply_to;

typedef struct pc__joiner {
    struct pc__joiner *next;
    pc__reply_to rt;
} pc__joiner;

/* A slot of a mailbox ring: a message (NULL: a hole) and its sequence
 * number (mailbox.c). */
typedef struct pc__mail {
    pc_msg *m;
    uint64_t seq;
} pc__mail;

/* A FIFO of messages with sequence numbers (mailbox.c). */
typedef struct pc__ring {
    union {
        pc__mail *buf; /* cap > 0: cap slots, a power of two */
        pc_msg *one;   /* cap == 0: the single message (seq next - 1) */
    };
    uint32_t head, len, cap; /* len counts slots, holes included */
    uint32_t live;           /* messages */
    uint64_t next;           /* sequence number of the next message pushed */
} pc__ring;

struct pc__task;

typedef struct pc__proc {
    struct pc__proc *next; /* run queue link */
    uint32_t idx, gen;     /* slot identity: ref.id = gen << 32 | idx */
    uint8_t kind;          /* enum pc__kind */
    uint8_t state;         /* enum pc__state */
    bool daemon;
    bool joinable;
    bool killed; /* terminate pending: finish when next popped */
    bool small;  /* runs on the worker's shared stack */
    bool trap_exits;
    uint8_t mb_policy; /* pc_mbox_policy */
    uint32_t mb_cap;   /* bounded mailbox: capacity (0: unbounded) */
    bool cturn;        /* next pop prefers the channel ring (x->cmb) */
    uint16_t home;     /* block cache home (cache.c) */
    pc__worker *w;
    struct pc__proc_x *x; /* the rarely used rest, or NULL (see below) */
    pc__ring mb;          /* ordinary mail */
} pc__proc;

/* What most procs never use, allocated the first time one does (a name, a
 * bounded mailbox, a joiner, a monitor, a link, an exit handler, channel
 * mail): a million idle light actors then cost what they use. Freed with
 * the proc. */
typedef struct pc__proc_x {
    pc__ring cmb; /* channel mail, taken in turn with mb (mailbox.c) */
    char *name;   /* NULL or malloc'd */
    pc__joiner *joiners;
    struct pc__mon *watchers;   /* monitors on this proc (monitor.c) */
    struct pc__mon *links;      /* procs linked with this one */
    void (*at_exit)(void *arg); /* pc_at_exit() */
    void *at_exit_arg;
    struct pc__psync *psync; /* locks held, current wait (sync.c), or NULL */
    pc_msg *exit_val;        /* a zombie's (joinable procs: made at spawn) */
    int exit_rc;             /* how it ended (PC_OK, PC_EKILLED, ...) */
    /* bounded mailboxes (made at spawn for them) */
    uint64_t mb_dropped, mb_refused, mb_over;
    struct pc__task *space_waiters; /* PC_MB_BLOCK: the oldest task blocked
                                       in pc_send, of a ring (mailbox.c) */
} pc__proc_x;

/* p's extension, made on first use; NULL when out of memory. */
pc__proc_x *pc__proc_x_get(pc__proc *p);

/* p's name, or NULL. */
static inline const char *
pc__proc_name(const pc__proc *p)
{
    return p->x ? p->x->name : NULL;
}

/* True while p ends (pc__proc_finish): its exit handler may be running as
 * it, and can't block there (a light-actor handler's rules). */
static inline bool
pc__proc_ending(const pc__proc *p)
{
    return p->state == PC__ST_DEAD;
}

/* A small task's frames while another one has the shared stack. */
typedef struct pc__save {
    size_t len, cap;
    char data[];
} pc__save;

/* What a task needs only once it waits with a timeout, waits for an fd,
 * is hot-swapped or blocks on a full mailbox: made on first use, freed when
 * it ends, so an idle task waiting for mail costs none of it. */
typedef struct pc__task_x {
    struct pc__task *t;
    ev_timer timer;  /* lazy: left armed after an early wake, see task.c */
    double deadline; /* of the current wait (pc_now()), 0: none */
    double armed;    /* deadline the armed timer was set for */
    ev_io io;
    uint32_t fd_wait;   /* id of the current (or last) pc_wait_fd */
    uint32_t swap_seq;  /* of the latest hot swap request; offers carry it */
    pc_task_fn swap_fn; /* pending hot swap (hotswap.c), NULL: none */
    void *swap_arg;
    pc_ref swap_from; /* who asked: the offer's sender */
    bool swappable;
    bool swap_offered; /* the swap message is out; accept or drop it */
    /* blocked in pc_send on room_for's full PC_MB_BLOCK mailbox: linked in
     * its space_waiters ring (mailbox.c) */
    struct pc__task *room_next, *room_prev;
    pc__proc *room_for;
} pc__task_x;

typedef struct pc__task {
    pc__proc p;
    pc__ctx ctx;
    pc__stack *stack; /* NULL until first run, and for small tasks */
    size_t stack_size;
    pc_task_fn fn;
    void *arg;
    pc__task_x *x; /* NULL until first needed */
    int wake_rc;
    uint32_t token; /* bumps at every reply wait; stale replies mismatch */
    void *wake_val;
    pc_msg *reply_msg; /* join result */
    /* small mode: the frames copied out of the shared stack, or NULL */
    struct pc__save *save;
#ifdef PC__TSAN
    void *fiber;
#endif
} pc__task;

typedef struct pc__actor {
    pc__proc p;
    pc_actor_fn fn;
    pc_actor_fini_fn fini;
    void *state;
} pc__actor;

/* A ref in a monitor or link list (monitor.c). */
typedef struct pc__mon {
    struct pc__mon *next;
    pc_ref ref;
} pc__mon;

/* ---- cross-thread envelopes --------------------------------------------- */

enum pc__env_kind {
    PC__ENV_SPAWN = 1, /* proc: link and run it */
    PC__ENV_MSG,       /* msg to `to`; rt.sync/rt.task set: ack */
    PC__ENV_RESUME,    /* value (ptr) to `to` */
    PC__ENV_TERMINATE, /* `to` */
    PC__ENV_JOIN,      /* join `to`, reply to rt */
    PC__ENV_REPLY,     /* rc + msg to the task in rt */
    /* monitor.c: rt.task is the other end */
    PC__ENV_MONITOR,   /* rt.task watches `to` */
    PC__ENV_DEMONITOR, /* rt.task stops watching `to` */
    PC__ENV_LINK,      /* link `to` with rt.task */
    PC__ENV_UNLINK,    /* unlink `to` from rt.task */
    PC__ENV_EXIT_SIG,  /* rt.task ended (rc: pc_down_reason, msg: EXIT) */
    PC__ENV_SWAP,      /* hot swap `to` to swap_fn(ptr) */
    PC__ENV_SWAP_ALL,  /* hot swap every task running swap_old here */
    PC__ENV_STATS,     /* fill the pc_mailbox_stats at ptr, wake rt */
    PC__ENV_FD_CANCEL, /* `to` in pc_wait_fd (ptr: its wait id): PC_ECLOSED */
    PC__ENV_UNJOIN,    /* the joiner rt of `to` gave up: drop its record */
    PC__ENV_DEEPEST    /* reply with this worker's deepest mailboxes (stats.c;
                          ptr: how many) */
};

/* A link of an inbox (inbox.c): the first member of an envelope and of a
 * message, which a plain send to another worker posts as it is. The low bit
 * of a link says what the next node is (PC__Q_MSG: a message). */
typedef struct pc__qnode {
    _Atomic(uintptr_t) next;
} pc__qnode;
#define PC__Q_MSG ((uintptr_t)1)

typedef struct pc__env {
    pc__qnode q;
    uint8_t kind;
    uint16_t home; /* cache.c */
    uint8_t how;   /* PC__ENV_MSG: PC__MB_CHAN, PC__MB_SYS */
    pc_ref to;
    int rc;
    pc_msg *msg;
    void *ptr;
    pc__reply_to rt;
    void (*ack)(void *ctx, int rc); /* PC__ENV_MSG: pc__send_ex's, ctx = ptr */
    pc_task_fn swap_fn, swap_old;   /* PC__ENV_SWAP, PC__ENV_SWAP_ALL */
} pc__env;

/* Vyukov's intrusive MPSC queue of envelopes and messages: wait-free push,
 * single consumer; head and tail are tagged links (pc__qnode). The
 * producers' end and the consumer's are on cache lines of their own: with
 * them on one line every pop's write of `tail` took the line from the
 * producers' next exchange on `head`. */
#define PC__CACHE_LINE 64
typedef struct pc__mpsc {
    _Alignas(PC__CACHE_LINE) _Atomic(uintptr_t) head; /* producers push here */
    _Alignas(PC__CACHE_LINE) uintptr_t tail;          /* consumer pops here */
    pc__env stub;
} pc__mpsc;

/* A foreign (non-worker) thread's wait: refcounted, mutex + condvar. */
struct pc__sync {
    atomic_int refs;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int rc;
    pc_msg *msg;
    void *ptr;
};

void pc__sync_unref(pc__sync *s);
void pc__sync_post(pc__sync *s, int rc, pc_msg *msg);

/* ---- block caches (cache.c) ---------------------------------------------- */

enum {
    PC__CACHE_MSG,      /* small messages (msg.c) */
    PC__CACHE_MSG_TINY, /* tiny ones: type and payload in 16 bytes */
    PC__CACHE_ENV,      /* envelopes; the others are slab-backed (cache.c) */
    PC__CACHE_TASK,
    PC__CACHE_ACTOR,
    PC__CACHES
};
#define PC__CACHE_MAX 16384 /* blocks kept per list */
extern const size_t pc__cache_size[PC__CACHES];

typedef struct pc__cache {
    void *local; /* home thread only */
    unsigned nlocal;
    /* pushed by other threads: on a line apart from what the home's every
     * allocation writes */
    _Alignas(PC__CACHE_LINE) _Atomic(void *) remote;
} pc__cache;

typedef struct pc__node pc__node;

/* Blocks freed on a worker for another home, sent back in batches. */
typedef struct pc__rfree {
    void *head, *tail;
    unsigned n;
} pc__rfree;

/* A block of class c; *home records where it came from (0: plain malloc,
 * when called outside workers). */
void *pc__cache_alloc(pc__worker *w, int c, uint16_t *home);
void pc__cache_free(int c, uint16_t home, void *p);
/* Send w's pending batches home (w's own thread, or at node teardown). */
void pc__cache_flush(pc__node *n, pc__worker *w);
void pc__cache_fini(pc__worker *w);
/* pc__cache_get / pc__cache_put (inline.h): the same with their common case
 * inline (a block from / back to the calling worker's own list). */

/* ---- worker and node ----------------------------------------------------- */

/* A worker's counters for pc_node_stats_get() (stats.c). Only their worker
 * writes them, with pc__count() (a relaxed load and store: a plain add, no
 * locked instruction on the hot paths); any thread reads them relaxed.
 * Counts from foreign threads go to the node's own atomics. */
typedef struct pc__wstats {
    _Atomic uint64_t sent, received, dropped, refused, spawned;
    _Atomic uint64_t tasks, actors; /* alive: +1 at link, -1 at finish */
} pc__wstats;

static inline void
pc__count(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* Workers sit side by side in an array, each on cache lines of its own
 * (node.c allocates them aligned); the fields other threads touch on every
 * send (the inbox head, `sleeping`, caches' remote stacks) are apart from
 * the ones the worker writes all the time. */
struct pc__worker {
    int index;
    struct ev_loop *loop;
    ev_async doorbell;
    pthread_t thread;
    pc__mpsc inbox;
    /* read by every producer's push, written only around a sleep */
    _Alignas(PC__CACHE_LINE) atomic_bool sleeping; /* in ev_run(ONCE):
                                                      producers must ring */
    atomic_bool stop;
    _Alignas(PC__CACHE_LINE) pc__proc *cur; /* running task or actor; NULL
                                               in the scheduler */
    pc__ctx sched_ctx;
    pc__proc *rq_head, *rq_tail; /* run queue, FIFO */
    int budget;                  /* direct switches left before I/O poll */
    unsigned inbox_wakes;        /* idle spins ended by the inbox (sched.c) */
    int spin_max;                /* pauses the next idle spin may take */
    pc__task *dead;              /* ended task whose stack is to release */
    int dead_rc;                 /* ... how it ended, and its value */
    pc_msg *dead_val;
    pc__task *reborn; /* hot-swapped task to restart afresh */
    pc__wstats st;    /* stats.c */
    pc__stack_pool pool;
    /* shared stack for small tasks, mapped on first use */
    pc__stack *shared;
    size_t shared_size;
    pc__task *shared_owner; /* whose frames are on it now */
    /* slot free list (indexes), this worker's only */
    uint32_t free_slot, nfree;
    uint32_t batch_next, batch_end; /* reserved fresh indexes */
    uint64_t rr;                    /* round-robin cursor for spawns */
    long nd_credit; /* counted in the node's nondaemon, held by no proc
                       (proc.c): handed back after every run batch */
    pc__cache caches[PC__CACHES]; /* cache.c */
    pc__rfree *rfree; /* [home worker][class]: frees to send home, or NULL */
    unsigned rfree_n; /* blocks in them */
#ifdef PC__ASAN
    void *sched_stack_lo;
    size_t sched_stack_size;
#endif
#ifdef PC__TSAN
    void *sched_fiber;
#endif
};

typedef struct pc__slot {
    _Atomic uint32_t gen;
    _Atomic uint16_t worker;
    _Atomic uint16_t zombie;
    _Atomic(pc__proc *) proc; /* or, while free, (next free index << 1) | 1 */
} pc__slot;

#define PC__CHUNK_BITS 16
#define PC__CHUNK_SLOTS (1u << PC__CHUNK_BITS)
#define PC__MAX_CHUNKS (1u << 16)

typedef struct pc__node {
    uint64_t id;
    uint64_t incarnation; /* fresh and random at every start, never 0 */
    uint32_t gen_base;    /* first generation of every slot (random) */
    int nworkers;
    pc__worker *workers;
    size_t stack_size;
    _Atomic(pc__slot *) *chunks; /* PC__MAX_CHUNKS entries */
    pthread_mutex_t chunk_mu;
    atomic_uint_fast32_t slot_next; /* next never-used index */
    pthread_mutex_t spare_mu;       /* guards spare, nspare */
    uint32_t spare;                 /* free slots workers gave up (slot.c) */
    atomic_uint nspare;
    atomic_long nondaemon; /* live non-daemon procs, plus the workers'
                              nd_credit (proc.c) */
    atomic_bool stop_requested;
    atomic_int foreign_pushes; /* pc__env_push()es by non-worker threads */
    atomic_uint_fast64_t rr;
    /* counted by foreign threads (fetch_add; workers use their pc__wstats) */
    _Atomic uint64_t foreign_sent, foreign_refused;
    pthread_mutex_t mu; /* with cv: pc_node_run / pc_node_join waits */
    pthread_cond_t cv;
} pc__node;

extern pc__node *pc__the_node;
extern _Thread_local pc__worker *pc__tls_worker
    __attribute__((tls_model("initial-exec")));

/* ---- slot.c: refs to procs -------------------------------------------- */
/* (the lookups and pc__route() are inline: inline.h) */

pc__proc *pc__proc_lookup(pc__worker *w, pc_ref r); /* owner-side, live */
pc_err pc__slot_alloc(pc__worker *w, uint32_t *idx, uint32_t *gen);
void pc__slot_release(pc__worker *w, uint32_t idx);
/* (their common cases inline: pc__slot_alloc_fast, pc__slot_release_fast) */
/* Slots whose pages are made present at once, ahead of use: one system
 * call instead of 16 page faults (a million spawns: 4k of them). */
#define PC__SLOT_POPULATE 4096
#define PC__SLOT_KEEP 4096 /* free slots a worker keeps */

/* ---- inbox.c: envelopes between threads --------------------------------- */

void pc__inbox_init(pc__worker *w);
void pc__inbox_drain(pc__worker *w); /* apply every envelope waiting */
/* node teardown only: the next envelope (messages on the way are freed) */
pc__env *pc__inbox_pop(pc__worker *w);
bool pc__inbox_empty(pc__worker *w);
pc__env *pc__env_new(int kind);
void pc__env_free(pc__env *e);
void pc__env_push(pc__worker *target, pc__env *e);
/* A plain send (no ack, ordinary mail) of m, which the caller owns alone, to
 * proc `to` on worker target: posted as it is, no envelope (inbox.c). */
void pc__msg_post(pc__worker *target, pc_ref to, pc_msg *m);
/* Have `req` (a template: kind, to and its other fields) applied to proc
 * req->to by its owner: at once when that is the caller's worker, else as a
 * copy posted to the owner. Returns PC_OK, pc__route()'s error, or
 * PC_ENOMEM. The message in req, if any, is consumed on PC_OK. */
pc_err pc__at_owner(const pc__env *req);

/* ---- wait.c: answers from other threads --------------------------------- */

/* Absolute CLOCK_MONOTONIC time `timeout` seconds from now. */
void pc__deadline_ts(double timeout, struct timespec *ts);
void pc__reply(pc__reply_to rt, int rc, pc_msg *msg);
/* Post e (answered through e->rt) to worker tw, then wait for the answer up
 * to timeout: as the running task (fresh token) or as a foreign thread. */
int pc__request(pc__worker *tw, pc__env *e, double timeout, pc_msg **reply);
/* The same; when it times out, *gave_up is the rt the answer would have
 * gone to (holding a reference on rt.sync, for the caller to drop). */
int pc__request_keep(pc__worker *tw, pc__env *e, double timeout, pc_msg **reply,
                     pc__reply_to *gave_up);

/* The one blocking primitive that sync objects, the thread pool and other
 * modules build on; any thread may do the waking.
 *   pc__wait_prepare(&rt): in the waiter (a task or a foreign thread; an
 *       actor handler gets PC_EPERM), before publishing rt where a waker
 *       will find it (under the module's own lock).
 *   pc__wait_block(&rt, timeout, &ptr): block until pc__wake(rt, ...) or
 *       the timeout; returns the waker's rc (ptr: its value) or PC_ETIMEDOUT.
 *       A timed-out waiter must then check, under the module's lock, whether
 *       a waker took rt meanwhile (and so acted on its behalf).
 *   pc__wake(rt, rc, msg, ptr): exactly once per rt that was published;
 *       a late wake is dropped. Consumes msg.
 *   pc__wait_drop(&rt): instead of pc__wake, when the waiter itself takes
 *       rt back (after a timeout) and no waker will ever see it.
 *   pc__wait_cancel(&rt): a prepared rt that was never published and will
 *       not be waited on (instead of pc__wait_block).
 * A task's rt lives in the module's structures, never on the task's stack
 * (small tasks' stacks move). */
int pc__wait_prepare(pc__reply_to *rt);
int pc__wait_block(pc__reply_to *rt, double timeout, void **ptr);
/* The same, also taking the message the waker sent (else freed). */
int pc__wait_block_msg(pc__reply_to *rt, double timeout, void **ptr,
                       pc_msg **msg);
void pc__wake(pc__reply_to rt, int rc, pc_msg *msg, void *ptr);
void pc__wait_drop(pc__reply_to *rt);
void pc__wait_cancel(pc__reply_to *rt);
/* The task that published rt has ended (terminated while it waited): it
 * will never come back for what it waited on, so whoever finds its record
 * cleans up for it. */
bool pc__wait_gone(const pc__reply_to *rt);

/* ---- sched.c: run queue and worker loop --------------------------------- */

pc_err pc__worker_init(pc__worker *w, int index, const pc_node_opts *o);
void *pc__worker_main(void *arg);

/* ---- stats.c: counters ---------------------------------------------------- */

/* Count one in the calling worker's counter `field` (a pc__wstats member),
 * or, from a foreign thread, in the node's atomic `foreign`. */
#define PC__COUNT_HERE(field, foreign)                                         \
    do {                                                                       \
        pc__worker *cw_ = pc__tls_worker;                                      \
        if (cw_)                                                               \
            pc__count(&cw_->st.field, 1);                                      \
        else if (pc__the_node)                                                 \
            atomic_fetch_add_explicit(&pc__the_node->foreign, 1,               \
                                      memory_order_relaxed);                   \
    } while (0)

/* A message the calling thread sent (pc_send, pc_deliver)... */
static inline void
pc__count_sent(void)
{
    PC__COUNT_HERE(sent, foreign_sent);
}

/* ... and one that a peer's full queue refused (PC_EFULL from the
 * transport). */
static inline void
pc__count_refused(void)
{
    PC__COUNT_HERE(refused, foreign_refused);
}

void pc__deepest_local(pc__worker *w, pc__env *e); /* DEEPEST envelope */

/* ---- proc.c: life cycle --------------------------------------------------- */

/* Spawn's common part: validate opts, allocate a zeroed proc of `size`
 * bytes of `kind`, give it a name and a slot, apply the flags and mailbox
 * bounds; *worker is where it goes. The caller fills the rest, takes the ref
 * and calls pc__publish(). */
pc_err pc__proc_new(int kind, size_t size, const pc_spawn_opts *opts,
                    pc__proc **out, int *worker);
void pc__publish(pc__proc *p, int worker); /* set slot, link or post */
/* Give the node back the non-daemon credit w holds (sched.c, after each run
 * batch), so that the count is exact whenever w is between batches. */
void pc__nondaemon_flush(pc__worker *w);
void pc__link(pc__worker *w, pc__proc *p);
void pc__proc_finish(pc__worker *w, pc__proc *p, int rc, pc_msg *value);
void pc__zombie_free(pc__worker *w, pc__proc *p);
void pc__terminate_local(pc__worker *w, pc__proc *p);
/* JOIN envelope on the target's worker (e->ptr non-NULL: collect). */
void pc__join_local(pc__worker *w, pc__env *e);
/* UNJOIN: a timed-out joiner's record goes. */
void pc__unjoin_local(pc__worker *w, pc__env *e);

/* ---- task.c: tasks ---------------------------------------------------------- */

/* The running task; NULL in its exit handler (it can't block there). */
static inline pc__task *
pc__cur_task(pc__worker *w)
{
    return (w && w->cur && w->cur->kind == PC__TASK && !pc__proc_ending(w->cur))
               ? (pc__task *)w->cur
               : NULL;
}
void pc__task_run(pc__worker *w, pc__task *t); /* from the scheduler */
/* pc__task_wake (inline.h), the part for its timer and fd watcher */
void pc__task_wake_x(pc__task *t);
/* Block the running task in `state` up to timeout seconds (negative:
 * forever); returns the code it was woken with. */
int pc__task_wait(pc__worker *w, pc__task *t, int state, double timeout);
/* A fresh wait token for t: never 0, which means "no reply wanted". */
static inline uint32_t
pc__task_token(pc__task *t)
{
    if (++t->token == 0)
        t->token = 1;
    return t->token;
}
/* End the running task t now (rc, value); never returns. */
void pc__task_exit(pc__worker *w, pc__task *t, int rc, pc_msg *value)
    __attribute__((noreturn));
/* Leave the running task's code for good and start it again at fn(arg) on
 * a fresh stack frame, same ref, same mailbox (hot swap). */
void pc__task_rebirth(pc__worker *w, pc__task *t) __attribute__((noreturn));
void pc__task_release(pc__worker *w, pc__task *t); /* stack, watchers */
/* t's extension, made on first use; NULL when out of memory. */
pc__task_x *pc__task_x_get(pc__task *t);
void pc__resume_local(pc__worker *w, pc__env *e); /* RESUME envelope */

/* ---- fd.c ------------------------------------------------------------------- */

void pc__fd_io_init(pc__task_x *x);
void pc__fd_cancel_local(pc__worker *w, pc__env *e); /* FD_CANCEL envelope */

/* ---- send.c: messaging -------------------------------------------------------- */

/* How a message enters a mailbox (pc__send_ex, pc__deliver_local). */
#define PC__MB_CHAN 0x1u /* into the channel ring */
/* A system message (DOWN, EXIT, replies to requests): never waits for room
 * and is never refused or dropped for capacity; a full mailbox takes it
 * beyond its capacity and counts it in mb_over. */
#define PC__MB_SYS 0x2u

/* Put m into p's mailbox (p is on this worker; `how`: PC__MB_*), applying a
 * bounded mailbox's policy, and wake p if it waits for mail. Returns PC_OK
 * (m is the mailbox's now), or PC_ENOENT (p ended), PC_EFULL (refused or
 * dropped by the policy, counted), PC_ENOMEM — then m is still the
 * caller's. */
int pc__deliver_local(pc__worker *w, pc__proc *p, pc_msg *m, unsigned how);
void pc__stats_local(pc__worker *w, pc__env *e); /* STATS envelope */
void pc__msg_local(pc__worker *w, pc__env *e);   /* MSG envelope */

/* Called on the target's worker once a message is in its mailbox (PC_OK),
 * or with why not (PC_ENOENT: it ended; PC_EFULL: a full bounded mailbox
 * refused it; PC_ENOMEM; PC_ECLOSED: the node ended first). */
typedef void (*pc__ack_fn)(void *ctx, int rc);

/* pc_send with options: `how` (PC__MB_CHAN: the channel ring of the
 * mailbox; PC__MB_SYS: a system message; either one never waits for room);
 * `ack` (may be NULL) is called exactly once when this returns PC_OK — at
 * once for a target on the caller's worker, else on the target's worker —
 * with the target's verdict. Errors are as pc_send's (*m kept) and then ack
 * is never called. */
pc_err pc__send_ex(pc_ref to, pc_msg **m, unsigned how, pc__ack_fn ack,
                   void *ctx);
/* A system message (PC__MB_SYS) to `to`; consumes *m whatever happens. */
void pc__send_sys(pc_ref to, pc_msg **m);

/* monitor.c */
void pc__mon_handle_env(pc__worker *w, pc__env *e);
/* Detach p's monitor and link lists before it is freed... */
void pc__mon_detach(pc__proc *p, pc__mon **watchers, pc__mon **links);
/* ...and, once its ref is stale, tell them how it ended (consumes the lists
 * and a reference to value). */
void pc__mon_notify(pc__worker *w, pc_ref who, pc__mon *watchers,
                    pc__mon *links, int rc, pc_msg *value);

/* remote.c: refs of other nodes, through the registered transport; each
 * returns PC_EUNREACH when none is registered. */
pc_err pc__remote_send(pc_ref to, pc_msg **m, bool chan);
pc_err pc__remote_deliver(pc_ref to, pc_msg **m, double timeout);
pc_err pc__remote_join(pc_ref to, double timeout, pc_msg **value);
/* channels across nodes (chan_remote.c calls these) */
pc_err pc__remote_chan_send(uint64_t home, const char *name, pc_msg **m);
pc_err pc__remote_chan_deliver(uint64_t home, const char *name, pc_msg **m,
                               int n, double timeout, int *reached);
void pc__remote_chan_subscribers(uint64_t home, const char *name, size_t n);
pc_err pc__remote_chan_publish(const char *name, pc_msg **m,
                               void (*ack)(void *actx, int reached),
                               void *actx);
pc_err pc__remote_terminate(pc_ref to);
pc_err pc__remote_monitor(pc_ref watcher, pc_ref target, bool on);
pc_err pc__remote_link(pc_ref local, pc_ref remote, bool on);
pc_err pc__remote_exit(pc_ref from, pc_ref to, pc_msg **exit);
void pc__transport_fini(void);     /* pc_node_run: before the workers stop */
void pc__names_clear(void);        /* names.c: node_free */
void pc__chan_proxies_clear(void); /* chan_remote.c: node_free */

/* monitor.c, for remote.c */
pc_err pc__mon_request(int kind, pc_ref target, pc_ref other);
void pc__mon_exit(pc_ref to, pc_ref from, int reason, pc_msg *exit);
void pc__mon_node_down(pc_ref local, pc_ref remote, bool link);

/* msg.c: a message (see msg.c's opening comment); here so that the send
 * path can read the sender inline. */
struct pc_msg {
    pc__qnode q;   /* its inbox link, sent to another worker (inbox.c) */
    uint16_t home; /* small message: its cache home (cache.c); 0: none */
    uint8_t cls;   /* ... and its cache class */
    bool foreign;  /* the payload isn't ours: see pc__msg_foreign */
    atomic_uint refs;
    size_t len;
    pc_ref sender;
    uint64_t to; /* sent to another worker: the target's ref.id */
    void *pb;    /* ProtobufCMessage *, or NULL */
    union {
        char *data;             /* the payload (no pb) */
        _Atomic(char *) packed; /* pb's packed form, made on demand */
    };
    /* type NUL data NUL (a pb message's type: its descriptor's); a foreign
     * message: its pc__msg_foreign, then type NUL */
    char inl[];
};

/* Who frees a payload that isn't the message's own (a transport's buffer,
 * or the original a stamped copy borrows from): kept in the inline room of
 * the messages that have one, so the others' headers stay 64 bytes. */
typedef struct pc__msg_foreign {
    void (*free_fn)(void *data, void *hint);
    void *hint;
} pc__msg_foreign;

static inline pc__msg_foreign *
pc__msg_foreign_of(pc_msg *m)
{
    return (pc__msg_foreign *)(void *)m->inl;
}

/* Type + NUL + payload + NUL that fit a cached message, and a tiny one. */
#define PC__MSG_SMALL_ROOM 64
#define PC__MSG_TINY_ROOM 16

void pc__msg_set_sender(pc_msg *m, pc_ref sender);
/* Make *mp name `sender` (nil: leave it) before it is sent: in place when
 * the caller holds the only reference, else by a copy of the header that
 * borrows the payload; PC_ENOMEM leaves *mp as it was. */
pc_err pc__msg_stamp(pc_msg **mp, pc_ref sender);

/* sync.c: in pc__proc_finish, after the exit handler: give back what p
 * was handed in the wait it ended in, and hand on the locks it holds. */
void pc__sync_proc_ended(pc__worker *w, pc__proc *p);

/* hotswap.c */
void pc__swap_handle_env(pc__worker *w, pc__env *e);
/* In pc_recv(): the hot-swap offer to return instead of waiting, or NULL. */
pc_msg *pc__swap_offer(pc__task *t);

/* actor.c */
void pc__actor_run(pc__worker *w, pc__actor *a);
void pc__actor_release(pc__actor *a);

/* mailbox.c */
typedef bool (*pc__match_fn)(const pc_msg *m, void *ctx);
/* Enqueue m (how: PC__MB_*) under p's bound and policy: PC_OK (taken),
 * PC_EFULL (refused or dropped, counted), PC_ENOMEM; m is not consumed on
 * error. */
int pc__mb_put(pc__proc *p, pc_msg *m, unsigned how);
pc_msg *pc__mb_pop(pc__proc *p); /* fast paths and pc__mb_len: inline.h */
/* Selective receive: from[] are sequence numbers (ordinary, channel ring)
 * to start at, advanced past what was scanned. */
pc_msg *pc__mb_take(pc__proc *p, uint64_t from[2], pc__match_fn match,
                    void *ctx);
void pc__mb_mark(const pc__proc *p, uint64_t mark[2]);
void pc__mb_clear(pc__proc *p);
/* An ordinary message from p's own worker is about to go into p's bounded
 * mailbox (*pp, the proc `to` names): PC_OK to deliver it (room, or
 * PC_MB_DROP, which drops it on delivery), or, with the mailbox full,
 * PC_EFULL (PC_MB_FAIL; PC_MB_BLOCK when the sender can't wait or timeout
 * is 0) or, for PC_MB_BLOCK, after waiting up to `timeout` (negative:
 * forever) in FIFO order with the other blocked senders, PC_ETIMEDOUT or
 * PC_ENOENT (the target ended meanwhile). *pp is refreshed after a wait. */
int pc__mb_admit(pc__worker *w, pc_ref to, pc__proc **pp, double timeout);
/* Task t ends: if it was blocked sending, give its turn to the next. */
void pc__mb_sender_gone(pc__task *t);
/* Slots looked at by this thread's selective receives (tests check that a
 * scan stays proportional to the messages queued). */
extern _Thread_local uint64_t pc__mb_visits;

#include "inline.h"

#endif
