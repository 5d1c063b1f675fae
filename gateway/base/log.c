/* log.c — structured log lines to stderr or syslog (see log.h). One write per line so that lines
 * from several worker threads never interleave. */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static int use_syslog;
static pc_log_level max_level = PC_LOG_INFO;

static const char *level_name(pc_log_level l)
{
    switch (l) {
    case PC_LOG_ERR: return "error";
    case PC_LOG_WARN: return "warning";
    case PC_LOG_NOTICE: return "notice";
    case PC_LOG_INFO: return "info";
    default: return "debug";
    }
}

void pc_log_open(const char *target, pc_log_level level)
{
    max_level = level;
    if (target && strcmp(target, "syslog") == 0) {
        openlog("portcullis", LOG_PID | LOG_NDELAY, LOG_MAIL);
        use_syslog = 1;
    }
}

uint64_t pc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void pc_log_set_level(pc_log_level level)
{
    max_level = level;
}

void pc_log(pc_log_level level, uint64_t sid, const char *fmt, ...)
{
    if (level > max_level)
        return;
    char line[2048];
    size_t n = 0;
    if (!use_syslog) {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
        n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ %s ", ts.tv_nsec / 1000000,
                              level_name(level));
    }
    if (sid)
        n += (size_t)snprintf(line + n, sizeof(line) - n, "sid=%016llx ", (unsigned long long)sid);
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    if (k < 0)
        return;
    n += (size_t)k;
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    if (use_syslog) {
        line[n] = '\0';
        syslog((int)level, "%s", line);
        return;
    }
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}
