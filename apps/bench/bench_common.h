/* bench_common — what the benchmark programs share: the clock, the load
 * average, the Markdown table of picos-bench and picos-bench-rps, and the
 * helper processes of picos-bench-rps and picos-bench-registry (a
 * picos-registry, a service node) with their temporary files.
 *
 * Main thread only (the table, the processes); bench_now() from any.
 * Failures print "PROG: what" on stderr and exit(2), as every bench
 * failure does.
 */
#ifndef PICOS_BENCH_COMMON_H
#define PICOS_BENCH_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* CLOCK_MONOTONIC, in seconds. */
double bench_now(void);

/* The 1-minute load average (-1 when unreadable), read before the first
 * benchmark: on a small machine other work shows in every figure. */
double bench_load_average(void);

/* snprintf() into buf, the text cut at size - 1 bytes when longer: for
 * the table's cells. */
void bench_fmt(char *buf, size_t size, const char *f, ...)
    __attribute__((format(printf, 3, 4)));

/* The columns of the table. */
enum { BENCH_COLS = 5 };

/* Print the table "benchmark | figure | unit | target | met" on stdout,
 * the figure right-aligned: `cells` holds n rows of BENCH_COLS strings. */
void bench_print_table(const char *const *cells, int n);

/* Run argv[0] with argv in a process group of its own (killed with this
 * process: PR_SET_PDEATHSIG) and read its stdout until a line holding
 * "tcp://": that endpoint into ep. No such line within 30 s: exit(2). */
pid_t bench_start_child(const char *prog, char *const argv[], char *ep,
                        size_t size);

/* Send `sig` to *pid's process group and reap *pid (when > 0); *pid = -1. */
void bench_kill_group(pid_t *pid, int sig);

/* A new file `path` (mode 0600) with a random cluster secret: 64 hex
 * digits. false (errno set) when it can't be made. */
bool bench_write_secret(const char *path);

/* rm -rf dir, saying so on stderr when it fails. */
void bench_remove_dir(const char *prog, const char *dir);

#endif
