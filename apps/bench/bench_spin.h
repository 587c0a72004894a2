/* bench_spin.h — burning a given amount of CPU, the same way in the
 * benchmark's computation (bench_compute_lib.c, "spin") and in its
 * baseline processes (picos-bench-compute.c): a busy loop until the
 * calling thread's CPU clock has advanced by `ms` milliseconds. CPU time,
 * not wall time, so a job preempted by a neighbour still does all of its
 * work, and the speed-up rows compare equal work. Header-only: the
 * computation library links nothing. */
#ifndef PICOS_BENCH_SPIN_H
#define PICOS_BENCH_SPIN_H

#include <time.h>

static inline double
bench_thread_cpu(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Spin until this thread used `ms` ms of CPU more; returns a value that
 * depends on the loop, so it is not optimized away. */
static inline unsigned long
bench_spin_ms(double ms)
{
    double end = bench_thread_cpu() + ms / 1e3;
    volatile unsigned long x = 0;

    while (bench_thread_cpu() < end)
        for (int i = 0; i < 1000; i++)
            x = x * 2862933555777941757ul + 3037000493ul;
    return x;
}

#endif
