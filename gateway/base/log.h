/* log.h — structured log lines for admins: one line per event, key=value, session id first.
 * Everything that came from the network goes through pc_sanitize() before it reaches a line. */
#ifndef PC_LOG_H
#define PC_LOG_H

#include <stdint.h>

typedef enum {
    PC_LOG_ERR = 3,
    PC_LOG_WARN = 4,
    PC_LOG_NOTICE = 5,
    PC_LOG_INFO = 6,
    PC_LOG_DEBUG = 7
} pc_log_level;

/* Milliseconds of the monotonic clock, for durations in log lines and timeouts. */
uint64_t pc_now_ms(void);

/* target: "stderr" or "syslog"; level: the most verbose level written. */
void pc_log_open(const char *target, pc_log_level level);
void pc_log_set_level(pc_log_level level);
/* sid 0 = not about a session. fmt is key=value pairs. Thread-safe. */
void pc_log(pc_log_level level, uint64_t sid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define pc_log_err(sid, ...) pc_log(PC_LOG_ERR, sid, __VA_ARGS__)
#define pc_log_warn(sid, ...) pc_log(PC_LOG_WARN, sid, __VA_ARGS__)
#define pc_log_notice(sid, ...) pc_log(PC_LOG_NOTICE, sid, __VA_ARGS__)
#define pc_log_info(sid, ...) pc_log(PC_LOG_INFO, sid, __VA_ARGS__)
#define pc_log_debug(sid, ...) pc_log(PC_LOG_DEBUG, sid, __VA_ARGS__)

#endif
