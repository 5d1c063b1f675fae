/* line.c — CRLF line framing (see line.h). */
#include "parse/line.h"

#include <string.h>

pc_line_result pc_line_find(const char *buf, size_t len, size_t max, size_t *linelen,
                            size_t *consumed)
{
    size_t lim = (max && len > max) ? max : len;
    const char *lf = lim ? memchr(buf, '\n', lim) : NULL;
    if (!lf)
        return (max && len >= max) ? PC_LINE_TOO_LONG : PC_LINE_NEED_MORE;
    size_t i = (size_t)(lf - buf);
    *consumed = i + 1;
    if (i == 0 || buf[i - 1] != '\r') {
        *linelen = i;
        return PC_LINE_BARE_LF;
    }
    *linelen = i - 1;
    return PC_LINE_OK;
}
