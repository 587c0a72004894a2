/* actors/log.c — leveled logging with a settable sink.
 *
 * The level lives in one int the macros read before formatting anything.
 * The sink and its argument are set before the node starts and only read
 * afterwards, so no lock guards them; the default sink writes one line with
 * a single fputs, which stdio locks, so lines from workers never interleave.
 */
#include "picos/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LEVEL_UNSET -1

int pc__log_level = LEVEL_UNSET; /* first record reads PICOS_LOG */

static pc_log_sink sink;
static void *sink_user;

const char *
pc_log_level_name(pc_log_level level)
{
    switch (level) {
    case PC_LOG_LEVEL_DEBUG:
        return "DEBUG";
    case PC_LOG_LEVEL_INFO:
        return "INFO";
    case PC_LOG_LEVEL_WARN:
        return "WARN";
    case PC_LOG_LEVEL_ERROR:
        return "ERROR";
    case PC_LOG_LEVEL_OFF:
        return "OFF";
    }
    return "?";
}

static int
level_from_env(void)
{
    static const struct {
        const char *name;
        pc_log_level level;
    } names[] = {{"debug", PC_LOG_LEVEL_DEBUG},
                 {"info", PC_LOG_LEVEL_INFO},
                 {"warn", PC_LOG_LEVEL_WARN},
                 {"error", PC_LOG_LEVEL_ERROR},
                 {"off", PC_LOG_LEVEL_OFF}};
    const char *v = getenv("PICOS_LOG");

    for (size_t i = 0; v && i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(v, names[i].name) == 0)
            return names[i].level;
    return PC_LOG_LEVEL_WARN;
}

void
pc_log_set_level(pc_log_level level)
{
    __atomic_store_n(&pc__log_level, (int)level, __ATOMIC_RELAXED);
}

pc_log_level
pc_log_get_level(void)
{
    int l = __atomic_load_n(&pc__log_level, __ATOMIC_RELAXED);

    if (l == LEVEL_UNSET) {
        l = level_from_env();
        __atomic_store_n(&pc__log_level, l, __ATOMIC_RELAXED);
    }
    return (pc_log_level)l;
}

void
pc_log_set_sink(pc_log_sink s, void *user)
{
    sink = s;
    sink_user = user;
}

void
pc_log_write(pc_log_level level, const char *module, const char *fmt, ...)
{
    char text[1024];
    va_list ap;

    /* The macros let LEVEL_UNSET through; decide now that PICOS_LOG is read. */
    if ((int)level < (int)pc_log_get_level())
        return;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (sink) {
        sink(level, module ? module : "", text, sink_user);
    } else {
        char line[1100];
        snprintf(line, sizeof line, "picos %-5s [%s] %s\n",
                 pc_log_level_name(level), module ? module : "", text);
        fputs(line, stderr);
    }
}
