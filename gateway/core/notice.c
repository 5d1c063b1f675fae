/* notice.c — the replacement notice of POP3 and IMAP retrieval (see notice.h). */
#include "core/notice.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "parse/sanitize.h"

enum { F_FROM, F_SUBJECT, F_DATE, F_FINDING, F_ACTION, F_REF, F__COUNT };

void pc_notice_ref(char *out, size_t outlen, uint64_t sid, const char *prefix, unsigned n)
{
    snprintf(out, outlen, "%016llx-%s%u", (unsigned long long)sid, prefix ? prefix : "", n);
}

/* A header of m, leading blanks dropped, unfolded and sanitised; def when m has none. */
static void header_value(const pc_message *m, const char *name, char *out, size_t outlen,
                         const char *def)
{
    char raw[512];
    if (!m || pc_message_header(m, name, 0, raw, sizeof(raw)) < 0) {
        snprintf(out, outlen, "%s", def);
        return;
    }
    const char *p = raw;
    while (*p == ' ' || *p == '\t')
        p++;
    pc_sanitize(out, outlen, p, strlen(p), 0);
}

size_t pc_notice_info(const pc_message *m, const char *hostname, const char *finding,
                      const char *action, const char *ref, char *info, size_t infolen)
{
    char f[F__COUNT][300], def[300], now[64];
    snprintf(def, sizeof(def), "Mail gateway <postmaster@%s>", hostname);
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(now, sizeof(now), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    header_value(m, "From", f[F_FROM], sizeof(f[F_FROM]), def);
    header_value(m, "Subject", f[F_SUBJECT], sizeof(f[F_SUBJECT]), "(no subject)");
    header_value(m, "Date", f[F_DATE], sizeof(f[F_DATE]), now);
    pc_sanitize(f[F_FINDING], sizeof(f[F_FINDING]), finding, strlen(finding), 0);
    pc_sanitize(f[F_ACTION], sizeof(f[F_ACTION]), action, strlen(action), 0);
    pc_sanitize(f[F_REF], sizeof(f[F_REF]), ref, strlen(ref), 0);
    size_t o = 0;
    for (int i = 0; i < F__COUNT; i++) {
        size_t k = strlen(f[i]);
        if (o + k + 1 > infolen)
            break;
        memcpy(info + o, f[i], k + 1);
        o += k + 1;
    }
    return o;
}

int pc_notice_build(pc_buf *b, const char *info, size_t info_len, const char *hostname,
                    pc_notice_form form)
{
    const char *f[F__COUNT];
    size_t k = 0;
    for (size_t i = 0; k < F__COUNT; k++) {
        f[k] = i < info_len ? info + i : "";
        if (i < info_len)
            i += strnlen(info + i, info_len - i) + 1;
    }
    pc_buf_reset(b);
    int rc = 0;
    if (form != PC_NOTICE_BODY)
        rc |= pc_buf_printf(b,
                            "From: %s\r\n"
                            "Subject: [Withheld] %s\r\n"
                            "Date: %s\r\n"
                            "Message-ID: <%s@%s>\r\n"
                            "MIME-Version: 1.0\r\n"
                            "Content-Type: text/plain; charset=us-ascii\r\n"
                            "Content-Transfer-Encoding: 7bit\r\n"
                            "X-Portcullis-Verdict: %s\r\n"
                            "X-Portcullis-Reference: %s\r\n"
                            "\r\n",
                            f[F_FROM], f[F_SUBJECT], f[F_DATE], f[F_REF], hostname, f[F_ACTION],
                            f[F_REF]);
    if (form != PC_NOTICE_HEADER)
        rc |= pc_buf_printf(
            b,
            "This message was withheld by the mail gateway.\r\n"
            "\r\n"
            "Finding: %s\r\n"
            "Original sender: %s\r\n"
            "Original subject: %s\r\n"
            "Original date: %s\r\n"
            "Reference: %s\r\n"
            "\r\n"
            "Quote the reference to your administrator to ask about this message.\r\n",
            f[F_FINDING], f[F_FROM], f[F_SUBJECT], f[F_DATE], f[F_REF]);
    return rc < 0 ? -1 : 0;
}
