/* tasks.c — many tasks sleeping at once (pycos's tasks.py, scaled up).
 *
 *     picos-tasks [-n TASKS] [-s MAX_SECONDS] [-p]   (defaults: 100,000, 3)
 *
 * Each task sleeps a random time between MAX/6 and MAX seconds (0.5 to 3 s by
 * default, as in tasks.py), then reports to the collector, which spawned them
 * all and waits for every report. Since the sleeps overlap, the whole run
 * takes about as long as the longest sleep, however many tasks there are:
 * each worker keeps its timers in one libev heap, and a sleeping task costs
 * no thread. Task i draws its time from a PRNG seeded with i (splitmix64), so
 * runs repeat.
 *
 * The tasks use small-memory mode (PC_TASK_SMALL): they run on their worker's
 * shared stack, and while one sleeps only the few hundred bytes of stack it
 * used are kept aside, rather than a page or two of its own stack. For
 * 100,000 tasks, peak RSS is about 75 MiB instead of about 410 MiB (-p gives
 * every task its own stack, to compare).
 */
#define _POSIX_C_SOURCE 200809L /* getopt */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "picos/picos.h"

static long ntasks = 100000;
static double max_secs = 3.0;
static unsigned flags = PC_TASK_SMALL;
static pc_ref collector_ref;

/* pc_sleep() promises the full time, by pc_now(): only floating-point
 * rounding may make a wake-up look early. */
#define EARLY_SLACK 1e-6

/* What the collector found, read by main() once the node is down. */
static long done;
static double spawned, elapsed, longest, late, early; /* worst of each */

/* A uniform random number in [0, 1) drawn from seed i (splitmix64). */
static double
uniform(uint64_t i)
{
    uint64_t z = (i + 1) * 0x9e3779b97f4a7c15u;

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return (double)((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
}

static pc_msg *
sleeper(void *arg)
{
    double report[2]; /* asked, slept */

    report[0] = max_secs / 6 + uniform((uintptr_t)arg) * max_secs * 5 / 6;
    double t0 = pc_now();
    if (pc_sleep(report[0]) != PC_OK)
        return NULL;
    report[1] = pc_now() - t0;
    pc_send_data(collector_ref, "slept", report, sizeof report);
    return NULL;
}

static pc_msg *
collector(void *arg)
{
    pc_spawn_opts opts = {.worker = PC_WORKER_ANY, .flags = flags};
    pc_msg *m;

    (void)arg;
    collector_ref = pc_self();
    double t0 = pc_now();
    for (long i = 0; i < ntasks; i++)
        if (pc_spawn(sleeper, (void *)(uintptr_t)i, &opts, NULL) != PC_OK)
            return NULL;
    spawned = pc_now() - t0;
    /* Each report is due within max_secs: the generous timeout only keeps
     * a lost one from hanging the program. */
    while (done < ntasks && pc_recv(&m, max_secs + 10) == PC_OK) {
        double report[2];
        memcpy(report, pc_msg_data(m, NULL), sizeof report);
        pc_msg_free(&m);
        if (report[1] - report[0] > late)
            late = report[1] - report[0];
        if (report[0] - report[1] > early)
            early = report[0] - report[1];
        if (report[0] > longest)
            longest = report[0];
        done++;
    }
    elapsed = pc_now() - t0;
    return NULL;
}

int
main(int argc, char **argv)
{
    struct rusage ru;
    int c;

    while ((c = getopt(argc, argv, "n:s:p")) != -1) {
        if (c == 'n')
            ntasks = atol(optarg);
        else if (c == 's')
            max_secs = atof(optarg);
        else if (c == 'p')
            flags = 0;
        if (c == '?' || ntasks < 1 || !(max_secs > 0)) {
            fprintf(stderr, "usage: picos-tasks [-n TASKS] [-s MAX_SECONDS] "
                            "[-p (own stacks)]\n");
            return 2;
        }
    }
    if (pc_node_start(NULL) != PC_OK ||
        pc_spawn(collector, NULL, NULL, NULL) != PC_OK ||
        pc_node_run() != PC_OK)
        return 1;
    getrusage(RUSAGE_SELF, &ru);
    printf("spawned %ld tasks in %.3f s\n", ntasks, spawned);
    printf("%ld tasks done in %.3f s (longest sleep %.3f s; wake-ups up to "
           "%.1f ms late, %.1f ms early)\n",
           done, elapsed, longest, late * 1e3, early * 1e3);
    printf("peak RSS: %.1f MiB (%s stacks)\n", ru.ru_maxrss / 1024.0,
           flags ? "shared" : "own");
    if (early > EARLY_SLACK) {
        fprintf(stderr, "picos-tasks: FAILED: a sleep ended %.1f ms early\n",
                early * 1e3);
        return 1;
    }
    return done == ntasks ? 0 : 1;
}
