/* apps/worker/wframe.h — node <-> worker frames on a blocking fd
 * (docs/computations.md "Inside a node"): a 4-byte big-endian length, then
 * a packed picos.v1.WorkerFrame (proto/compute.proto). picos-worker reads
 * and writes them on its ctl.sock connection; tests/test_worker.c, acting
 * as the node, uses the same two calls. */
#ifndef PICOS_APPS_WORKER_WFRAME_H
#define PICOS_APPS_WORKER_WFRAME_H

#include <stddef.h>

#include "compute.pb-c.h"

/* Read one frame from fd (blocking; EINTR retried). The length is checked
 * against `max` before anything is allocated. Returns 0 with *out (free
 * it with picos__v1__worker_frame__free_unpacked(*out, NULL)), 1 on EOF
 * at a frame boundary, -1 with errno set otherwise: EMSGSIZE (over max),
 * EPROTO (cut short, or bytes that do not unpack), ENOMEM, or the read's
 * own error. */
int pc__wframe_read(int fd, size_t max, Picos__V1__WorkerFrame **out);

/* Write one frame to fd (blocking; EINTR retried; no SIGPIPE on a socket).
 * Returns 0, or -1 with errno set (EMSGSIZE when it packs to more than
 * `max` bytes). */
int pc__wframe_write(int fd, size_t max, const Picos__V1__WorkerFrame *f);

#endif
