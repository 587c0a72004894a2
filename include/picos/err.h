/* picos/err.h — the error codes every fallible picos call returns.
 *
 * One X-macro list makes the enum, pc_strerror() and pc_err_name(), so the
 * three can never disagree. PC_OK is 0; every error is negative, so
 * `if (rc < 0)` and `if (rc != PC_OK)` both work.
 */
#ifndef PICOS_ERR_H
#define PICOS_ERR_H

#ifdef __cplusplus
extern "C" {
#endif

#define PC_ERR_LIST(X)                                                         \
    X(OK, 0, "success")                                                        \
    X(EINVAL, -1, "invalid argument")                                          \
    X(ENOMEM, -2, "out of memory")                                             \
    X(ETIMEDOUT, -3, "timed out")                                              \
    X(ENOENT, -4, "no such task, actor or object (stale or unknown ref)")      \
    X(ECLOSED, -5, "closed")                                                   \
    X(EAUTH, -6, "authentication failed")                                      \
    X(EPROTO, -7, "protocol error")                                            \
    X(ETOOBIG, -8, "too big")                                                  \
    X(ESTATE, -9, "not allowed in the current state")                          \
    X(EPERM, -10, "not allowed from this context")                             \
    X(EFULL, -11, "mailbox or queue full")                                     \
    X(EINTR, -12, "interrupted (woken early)")                                 \
    X(EUNREACH, -13, "node unreachable")                                       \
    X(EKILLED, -14, "terminated")                                              \
    X(EAGAIN, -15, "would block, try again")                                   \
    X(ESYS, -16, "system call failed (see errno)")                             \
    X(ENOTSUP, -17, "not supported")                                           \
    X(EFAILED, -18, "the task failed (ended with an error)")                   \
    X(EOWNERDEAD, -19,                                                         \
      "acquired, but its previous owner ended holding it: repair its state")   \
    X(EREFUSED, -20, "connection refused")                                     \
    X(ERUNNING, -21, "timed out while running: it goes on, result discarded")  \
    X(EEXIST, -22, "already exists (a name taken by another)")

typedef enum pc_err {
#define PC__ERR_ENUM(name, code, text) PC_##name = (code),
    PC_ERR_LIST(PC__ERR_ENUM)
#undef PC__ERR_ENUM
} pc_err;

/* A human sentence for rc ("timed out"); "unknown error" for codes not in the
 * list. Never NULL; static storage. Any thread. */
const char *pc_strerror(int rc);

/* The enum name without the prefix-free part ("PC_ETIMEDOUT"); "PC_UNKNOWN"
 * for codes not in the list. Never NULL; static storage. Any thread. */
const char *pc_err_name(int rc);

#ifdef __cplusplus
}
#endif
#endif
