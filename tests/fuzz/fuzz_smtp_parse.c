/* fuzz_smtp_parse.c — libFuzzer target for SMTP line framing and command parsing: frames the input
 * into lines, parses each with and without SMTPUTF8, and aborts if a slice leaves its line. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "smtp/smtp_parse.h"

static void inside(pc_slice s, const char *line, size_t len)
{
    if (s.n == 0)
        return;
    if (!s.p || s.p < line || s.p + s.n > line + len)
        abort();
}

static void one(const char *line, size_t len, int utf8)
{
    pc_smtp_cmd cmd;
    pc_smtp_err e = pc_smtp_cmd_parse(line, len, utf8, &cmd);
    if (e != PC_SMTP_E_OK)
        return;
    if (cmd.verb <= PC_SMTP_UNKNOWN || cmd.verb >= PC_SMTP_VERB_COUNT ||
        cmd.nparams > PC_SMTP_MAX_PARAMS)
        abort();
    inside(cmd.arg, line, len);
    if (cmd.verb == PC_SMTP_MAIL || cmd.verb == PC_SMTP_RCPT) {
        inside(cmd.path, line, len);
        inside(cmd.domain, line, len);
        if (cmd.path.n > 256 || cmd.domain.n > 255)
            abort();
        for (size_t i = 0; i < cmd.path.n; i++)
            if ((unsigned char)cmd.path.p[i] < 0x20 ||
                (!utf8 && (unsigned char)cmd.path.p[i] >= 0x80))
                abort();
        for (size_t i = 0; i < cmd.nparams; i++) {
            inside(cmd.params[i].key, line, len);
            inside(cmd.params[i].value, line, len);
            if (cmd.params[i].key.n == 0)
                abort();
        }
        if (cmd.nparams && pc_smtp_param_find(&cmd, "SIZE") >= (int)cmd.nparams)
            abort();
    }
    if (cmd.verb == PC_SMTP_HELO || cmd.verb == PC_SMTP_EHLO)
        (void)pc_smtp_helo_valid(cmd.arg.p, cmd.arg.n);
    (void)pc_smtp_verb_name(cmd.verb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    size_t pos = 0;
    /* the whole input as one line, too */
    one(buf, size, 0);
    one(buf, size, 1);
    while (pos < size) {
        size_t ll = 0, used = 0;
        pc_line_result r = pc_line_find(buf + pos, size - pos, 512, &ll, &used);
        if (r == PC_LINE_NEED_MORE)
            break;
        if (r == PC_LINE_TOO_LONG) {
            pos += 512;
            continue;
        }
        if (used == 0 || used > size - pos || ll >= used)
            abort();
        if (r == PC_LINE_OK) {
            if (ll + 2 != used || buf[pos + ll] != '\r' || buf[pos + ll + 1] != '\n')
                abort();
            one(buf + pos, ll, 0);
            one(buf + pos, ll, 1);
        }
        pos += used;
    }
    return 0;
}
