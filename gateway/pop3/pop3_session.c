/* pop3_session.c — what the POP3 session's files share (pop3_session.h): the batched output, the
 * upstream leg's commands and its loss, and the relaying of a transaction command as it is (status
 * line sanitised, body byte-exact, CAPA filtered, the upstream paused while the client is slow).
 * It reports back to the session through its ops (resume, close), never by calling up. */
#include "pop3/pop3_session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "parse/sanitize.h"

/* ---- output -----------------------------------------------------------------------------------
 */

int p3_queue(p3sess *s, const void *p, size_t n)
{
    if (pc_buf_used(&s->base.out) + n > P3_OUT_BATCH) {
        p3_flush(s);
        if (n > P3_OUT_BATCH)
            return p3_write(s, p, n);
    }
    if (pc_buf_append(&s->base.out, p, n) < 0)
        return p3_write(s, p, n);
    return 0;
}

/* ---- upstream ------------------------------------------------------------------------------- */

void p3_upstream_lost(p3sess *s)
{
    pc_pop3c_free(s->up, 0);
    s->up = NULL;
    s->up_paused = 0;
    s->inflight = 0;
    if (!s->status_sent)
        p3_reply(s, "-ERR [SYS/TEMP] Upstream server not available, try again later.");
    pc_log_notice(s->base.sid, "event=upstream status=lost client=%s", s->base.client_ip);
    p3_close(s);
}

void p3_up_send(p3sess *s, const char *line, int multiline, size_t max_body,
                const pc_pop3c_handler *h)
{
    if (!s->busy)
        s->status_sent = 0; /* else an answer before this one is being relayed */
    s->busy = 1;
    pc_conn_set_timeout(s->base.c, 0); /* the upstream's own timeouts apply while it works */
    if (pc_pop3c_command(s->up, line, strlen(line), 0, multiline, max_body, h) < 0)
        p3_upstream_lost(s);
}

/* ---- relaying a transaction command --------------------------------------------------------- */

static void relay_status(void *ud, const pc_pop3_resp *r)
{
    p3sess *s = ud;
    char text[PC_POP3_RESP_MAX];
    pc_sanitize(text, sizeof(text), r->line.p, r->line.n, 0);
    p3_reply(s, "%s", text); /* goes out with the body (or at the end of the batch) */
    s->status_sent = 1;
}

static int relay_raw(void *ud, const char *p, size_t n)
{
    p3sess *s = ud;
    return s->cmd.verb == PC_POP3_CAPA ? 0 : p3_relay_bytes(s, p, n);
}

int p3_relay_bytes(p3sess *s, const char *p, size_t n)
{
    if (p3_queue(s, p, n) < 0)
        return -1;
    if (s->base.c->wpending > P3_OUT_HIGH && !s->up_paused) {
        s->up_paused = 1;
        s->base.c->want_drain = 1;
        pc_pop3c_pause(s->up, 1);
    }
    return 0;
}

static int relay_content(void *ud, const char *p, size_t n)
{
    p3sess *s = ud;
    if (s->cmd.verb == PC_POP3_CAPA)
        pc_buf_append(&s->capa, p, n); /* bounded; the rest is dropped */
    return 0;
}

/* CAPA after login: only what the gateway relays faithfully is passed on. */
static void capa_filtered(p3sess *s)
{
    static const char *const keep[] = {"TOP",    "UIDL",        "RESP-CODES", "AUTH-RESP-CODE",
                                       "EXPIRE", "LOGIN-DELAY", NULL};
    const char *b = pc_buf_used(&s->capa) ? pc_buf_ptr(&s->capa) : "";
    size_t n = pc_buf_used(&s->capa), i = 0;
    while (i < n) {
        const char *lf = memchr(b + i, '\n', n - i);
        size_t end = lf ? (size_t)(lf - b) : n;
        size_t len = end - i;
        if (len && b[i + len - 1] == '\r')
            len--;
        size_t tag = 0;
        while (tag < len && b[i + tag] != ' ')
            tag++;
        for (int k = 0; keep[k]; k++) {
            if (strlen(keep[k]) == tag && strncasecmp(b + i, keep[k], tag) == 0) {
                char line[256];
                pc_sanitize(line, sizeof(line), b + i, len, 0);
                p3_reply(s, "%s", line);
                break;
            }
        }
        i = end + 1;
    }
    p3_reply(s, "PIPELINING"); /* the gateway's own: it reads pipelined commands in order */
    p3_reply(s, ".");
    pc_buf_release(&s->capa);
}

static void relay_done(void *ud, pc_pop3c_status st, unsigned flags)
{
    p3sess *s = ud;
    (void)flags;
    if (s->inflight)
        s->inflight--;
    if (st != PC_POP3C_OK) {
        pc_buf_release(&s->capa);
        p3_upstream_lost(s);
        return;
    }
    /* A paused upstream stays paused until the client drains (on_conn), even between answers. */
    s->status_sent = 0;
    if (s->inflight == 0)
        s->busy = 0;
    if (s->cmd.verb == PC_POP3_CAPA && s->capa.max) {
        capa_filtered(s);
        s->capa.max = 0;
    }
    if (s->cmd.verb == PC_POP3_QUIT) {
        pc_pop3c_free(s->up, 0);
        s->up = NULL;
        p3_close(s);
        return;
    }
    p3_resume(s);
}

static void capa_status(void *ud, const pc_pop3_resp *r)
{
    p3sess *s = ud;
    relay_status(ud, r);
    if (r->status == PC_POP3_RESP_OK)
        pc_buf_init(&s->capa, 8192); /* capa.max != 0 marks the list as expected */
}

/* Commands relayed as they are, whose answers the gateway only passes on: these may be pipelined
 * upstream behind one another. */
int p3_plain_relay(const p3sess *s, pc_pop3_verb v)
{
    switch (v) {
    case PC_POP3_STAT:
    case PC_POP3_LIST:
    case PC_POP3_UIDL:
    case PC_POP3_DELE:
    case PC_POP3_NOOP:
    case PC_POP3_RSET: return 1;
    case PC_POP3_RETR:
    case PC_POP3_TOP:
        return !(s->base.l->chain_hooks & PC_HOOK_BIT(PC_HOOK_RETRIEVE)) || !s->base.l->chain;
    default: return 0;
    }
}

void p3_relay(p3sess *s)
{
    pc_pop3c_handler h = {.status = s->cmd.verb == PC_POP3_CAPA ? capa_status : relay_status,
                          .content = relay_content,
                          .raw = relay_raw,
                          .done = relay_done,
                          .ud = s};
    s->capa.max = 0;
    s->pipe_ok = (s->inflight ? s->pipe_ok : 1) && p3_plain_relay(s, s->cmd.verb);
    s->inflight++;
    p3_up_send(s, s->upline, pc_pop3_multiline(s->cmd.verb, s->cmd.nargs), 0, &h);
}

void p3_resume(p3sess *s)
{
    if (s->phase == P3_CLOSING)
        return;
    s->ops->resume(s);
}

void p3_close(p3sess *s)
{
    s->ops->close(s);
}
