/* imap_server_session.c — the low-level helpers every file of the IMAP session uses: the one
 * "* BYE" per session, the error count, the client tokenizer's limits for each state, the output
 * batches towards the upstream and the client, and the way
 * to close the session or run its input loop, which go through the ops the session set
 * (imap_server.c). It calls no function of the other IMAP session files by name, so that the
 * session, the relay and the objects the relay drives call each other in one direction only. */
#include "imap/imap_server_session.h"

#include <string.h>

#include "base/log.h"

void is_bye(isess *s, const char *text)
{
    if (s->bye_sent)
        return;
    s->bye_sent = 1;
    is_reply(s, "* BYE %s", text);
}

void is_close(isess *s)
{
    s->sops->close(s);
}

void is_process(isess *s)
{
    s->sops->process(s);
}

void is_up_send(isess *s, const void *p, size_t n)
{
    pc_buf_append(&s->uout, p, n);
}

void is_up_flush(isess *s)
{
    if (!s->up || pc_buf_used(&s->uout) == 0)
        return;
    pc_conn_write(s->up, pc_buf_ptr(&s->uout), pc_buf_used(&s->uout));
    if (s->phase != IP_RELAY) /* the login command carries credentials */
        explicit_bzero(s->uout.data + s->uout.off, pc_buf_used(&s->uout));
    pc_buf_release(&s->uout);
}

void is_out_add(isess *s, const void *p, size_t n)
{
    pc_buf_append(&s->base.out, p, n);
    if (pc_buf_used(&s->base.out) >= IMAP_CHUNK)
        is_flush(s);
}

void is_error_count(isess *s)
{
    if (++s->errors >= s->base.cfg->mailbox.errors) {
        is_bye(s, "Too many errors");
        pc_log_notice(s->base.sid, "event=limit limit=errors client=%s", s->base.client_ip);
        is_close(s);
    }
}

void is_tok_client_init(isess *s, int relay)
{
    pc_imap_tok_cfg tc;
    pc_imap_tok_cfg_default(&tc, 0);
    tc.max_line = s->base.cfg->mailbox.line_length ? s->base.cfg->mailbox.line_length : 8192;
    if (!relay) {
        tc.max_literal = IMAP_PRELOGIN_LITERAL_MAX;
        tc.max_nonsync = 0; /* nothing but synchronising literals before login */
    } else {
        unsigned f = s->base.l->caps_flags;
        size_t cfgmax = s->base.cfg->mailbox.nonsync_literal_max;
        tc.max_literal =
            s->base.cfg->mailbox.literal_max ? s->base.cfg->mailbox.literal_max : 50u << 20;
        if ((f & PC_IMAPCAP_LITPLUS) && cfgmax >= tc.max_literal)
            tc.max_nonsync = cfgmax;
        else if ((f & (PC_IMAPCAP_LITPLUS | PC_IMAPCAP_LITMINUS)) &&
                 cfgmax >= PC_IMAP_LITERAL_MINUS_MAX)
            tc.max_nonsync = PC_IMAP_LITERAL_MINUS_MAX;
        else
            tc.max_nonsync = 0;
    }
    pc_imap_tok_init(&s->ctok, &tc);
    s->c_first = 1;
}
