/* imap_caps.c — CAPABILITY as the client sees it after login: the upstream's list with what the
 * gateway cannot proxy removed and LITERAL+/- as the gateway accepts them, in "* CAPABILITY"
 * responses and [CAPABILITY ...] codes. Defends against features the gateway cannot inspect being
 * advertised (COMPRESS, STARTTLS, literal8, MULTIAPPEND, CATENATE, UNAUTHENTICATE). Calls none of
 * the other session files. */
#include "imap/imap_caps.h"

#include <string.h>

/* What the gateway cannot proxy: compression and TLS (it must see the bytes), literal8 (BINARY,
 * IMAP4rev2, which includes it), MULTIAPPEND/CATENATE/URLAUTH (APPEND forms not inspected), and
 * UNAUTHENTICATE (a second login behind the gateway's back). LITERAL+/- follow the gateway's own
 * limit. */
static int cap_removed(pc_slice w)
{
    static const char *const drop[] = {
        "STARTTLS",       "LOGINDISABLED", "MULTIAPPEND", "BINARY",  "CATENATE", "IMAP4rev2",
        "UNAUTHENTICATE", "LITERAL+",      "LITERAL-",    "SASL-IR", NULL};
    for (size_t i = 0; drop[i]; i++)
        if (pc_imap_word_is(w, drop[i]))
            return 1;
    static const char *const prefixes[] = {"COMPRESS=", "AUTH=", "URLAUTH", "UTF8=", NULL};
    for (size_t i = 0; prefixes[i]; i++) {
        size_t k = strlen(prefixes[i]);
        pc_slice head = {w.p, k};
        if (w.n >= k && pc_imap_word_is(head, prefixes[i]))
            return 1;
    }
    return 0;
}

void is_caps_rewrite(isess *s, const char *caps, size_t n, pc_buf *out)
{
    size_t i = 0;
    int first = 1;
    while (i < n) {
        while (i < n && caps[i] == ' ')
            i++;
        size_t st = i;
        while (i < n && caps[i] != ' ')
            i++;
        pc_slice w = {caps + st, i - st};
        if (!w.n || cap_removed(w))
            continue;
        if (!first)
            pc_buf_append(out, " ", 1);
        pc_buf_append(out, w.p, w.n);
        first = 0;
    }
    uint64_t mx = s->ctok.cfg.max_nonsync;
    if (s->phase == IP_RELAY || s->phase == IP_LOGIN) {
        unsigned f = s->base.l->caps_flags;
        size_t cfgmax = s->base.cfg->mailbox.nonsync_literal_max;
        size_t lmax =
            s->base.cfg->mailbox.literal_max ? s->base.cfg->mailbox.literal_max : 50u << 20;
        if ((f & PC_IMAPCAP_LITPLUS) && cfgmax >= lmax)
            mx = cfgmax;
        else if ((f & (PC_IMAPCAP_LITPLUS | PC_IMAPCAP_LITMINUS)) &&
                 cfgmax >= PC_IMAP_LITERAL_MINUS_MAX)
            mx = PC_IMAP_LITERAL_MINUS_MAX;
        else
            mx = 0;
    }
    if (mx > PC_IMAP_LITERAL_MINUS_MAX)
        pc_buf_append(out, " LITERAL+", 9);
    else if (mx == PC_IMAP_LITERAL_MINUS_MAX)
        pc_buf_append(out, " LITERAL-", 9);
}

/* Rewrites a whole status or CAPABILITY response line (no CRLF) into s->base.out, with CRLF.
 * Returns 1 if it did (the caller drops the original), 0 if the line needs no change. */
int is_caps_line(isess *s, const char *p, size_t n, const pc_imap_resp_head *h)
{
    if (h->kind == PC_IMAP_RESP_UNTAGGED && h->status == PC_IMAP_ST_NONE &&
        pc_imap_word_is(h->name, "CAPABILITY")) {
        pc_buf_append(&s->base.out, "* CAPABILITY ", 13);
        is_caps_rewrite(s, h->text.p, h->text.n, &s->base.out);
        pc_buf_append(&s->base.out, "\r\n", 2);
        return 1;
    }
    if (h->code.n && pc_imap_word_is(h->code_name, "CAPABILITY")) {
        const char *cs = h->code_name.p + h->code_name.n;
        const char *ce = h->code.p + h->code.n;
        pc_buf_append(&s->base.out, p, (size_t)(h->code.p - p));
        pc_buf_append(&s->base.out, "CAPABILITY ", 11);
        is_caps_rewrite(s, cs, (size_t)(ce - cs), &s->base.out);
        pc_buf_append(&s->base.out, ce, n - (size_t)(ce - p));
        pc_buf_append(&s->base.out, "\r\n", 2);
        return 1;
    }
    return 0;
}
