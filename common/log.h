/* log.h: JSON-lines logging on stderr. The level is set once at start; the
 * macros test it before formatting, so a disabled debug line costs a compare.
 * Never pass a secret to these functions. */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* log_init sets the component name ("ingress", "worker") and the minimum level.
 * Call once, before any thread starts. */
void log_init(const char *component, enum log_level min);
/* log_level_parse maps "debug"/"info"/"warn"/"error"; returns -1 if unknown. */
int log_level_parse(const char *name);
extern enum log_level log_min_level;

__attribute__((format(printf, 4, 5))) void log_write(enum log_level level, const char *file,
                                                     int line, const char *fmt, ...);

#define log_at(lvl, ...)                                                                           \
    do {                                                                                           \
        if ((lvl) >= log_min_level) log_write((lvl), __FILE__, __LINE__, __VA_ARGS__);             \
    } while (0)
#define log_debug(...) log_at(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_at(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_at(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_at(LOG_ERROR, __VA_ARGS__)

#endif
