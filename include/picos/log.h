/* picos/log.h — leveled logging with a settable sink.
 *
 * The macros test the level before formatting, so a disabled PC_LOG_DEBUG
 * costs one load and one compare. Library code logs only through these
 * macros; it never prints. The default sink writes one line per record to
 * stderr ("picos WARN  [actors] ...").
 */
#ifndef PICOS_LOG_H
#define PICOS_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum pc_log_level {
    PC_LOG_LEVEL_DEBUG = 10,
    PC_LOG_LEVEL_INFO = 20,
    PC_LOG_LEVEL_WARN = 30,
    PC_LOG_LEVEL_ERROR = 40,
    PC_LOG_LEVEL_OFF = 100
} pc_log_level;

/* A sink gets one formatted record (no trailing newline). It may be called
 * from any worker thread at once, so it must be thread-safe. */
typedef void (*pc_log_sink)(pc_log_level level, const char *module,
                            const char *text, void *user);

/* Set the sink; NULL restores the stderr sink. Call before pc_node_start(). */
void pc_log_set_sink(pc_log_sink sink, void *user);

/* Records below level are dropped before formatting. Default: WARN, or the
 * value of the environment variable PICOS_LOG (debug|info|warn|error|off)
 * read on the first log call. Any thread. */
void pc_log_set_level(pc_log_level level);
pc_log_level pc_log_get_level(void);

/* The level-to-name mapping used by the default sink ("WARN"). */
const char *pc_log_level_name(pc_log_level level);

/* Format and hand one record to the sink. Use the macros instead. */
void pc_log_write(pc_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

extern int pc__log_level; /* internal: read by the macros */

#define PC__LOG(lvl, module, ...)                                              \
    do {                                                                       \
        if ((int)(lvl) >= __atomic_load_n(&pc__log_level, __ATOMIC_RELAXED))   \
            pc_log_write((lvl), (module), __VA_ARGS__);                        \
    } while (0)
#define PC_LOG_DEBUG(module, ...)                                              \
    PC__LOG(PC_LOG_LEVEL_DEBUG, module, __VA_ARGS__)
#define PC_LOG_INFO(module, ...) PC__LOG(PC_LOG_LEVEL_INFO, module, __VA_ARGS__)
#define PC_LOG_WARN(module, ...) PC__LOG(PC_LOG_LEVEL_WARN, module, __VA_ARGS__)
#define PC_LOG_ERROR(module, ...)                                              \
    PC__LOG(PC_LOG_LEVEL_ERROR, module, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
