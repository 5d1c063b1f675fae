/* release.c — one SMTP transaction for a released message (see release.h): open, MAIL, each RCPT,
 * DATA, QUIT; every upstream reply checked as the SMTP session checks it (a 2xx other than 250 to
 * the final dot counts as a failure). MAIL and RCPT lines are rebuilt from the stored addresses,
 * which the metadata reader has already bounded and stripped of controls. */
#include "admin/release.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "core/listener.h"
#include "parse/sanitize.h"
#include "smtp/smtp_client.h"
#include <arpa/inet.h>

typedef struct rel {
    pc_smtpc *c;
    const pc_qmeta *m;
    pc_upstream *up;
    const unsigned char *send;
    unsigned char *ok;
    pc_message *msg;
    size_t next; /* the next recipient to send RCPT for */
    size_t accepted;
    uint64_t sid;
    pc_release_fn done;
    void *ud;
} rel;

static void end(rel *r, int rc, const char *text)
{
    pc_smtpc_free(r->c);
    if (rc < 0)
        for (size_t i = 0; i < r->m->nrcpts; i++)
            r->ok[i] = 0;
    r->done(r->ud, rc, text);
    free(r);
}

static void reply_text(char *out, size_t n, pc_smtpc_status st, const pc_smtp_reply *rp)
{
    if (st != PC_SMTPC_OK || !rp) {
        snprintf(out, n, "upstream %s", st == PC_SMTPC_PROTOCOL ? "protocol error" : "unavailable");
        return;
    }
    char t[300];
    pc_sanitize(t, sizeof(t), rp->nlines ? rp->lines[0].p : "", rp->nlines ? rp->lines[0].n : 0, 0);
    snprintf(out, n, "upstream said %d %s", rp->code, t);
}

static void next_rcpt(rel *r);

static void on_final(void *ud, pc_smtpc_status st, const pc_smtp_reply *rp)
{
    rel *r = ud;
    char t[400];
    reply_text(t, sizeof(t), st, rp);
    if (st != PC_SMTPC_OK || !rp || rp->code != 250) {
        end(r, -1, t);
        return;
    }
    pc_log_info(r->sid, "event=release id=%s rcpts=%zu upstream=\"%s\"", r->m->id, r->accepted, t);
    end(r, 0, t);
}

static void on_rcpt(void *ud, pc_smtpc_status st, const pc_smtp_reply *rp)
{
    rel *r = ud;
    char t[400];
    if (st != PC_SMTPC_OK || !rp || rp->code == 421) {
        reply_text(t, sizeof(t), st, rp);
        end(r, -1, t);
        return;
    }
    if (rp->code / 100 == 2) {
        r->ok[r->next] = 1;
        r->accepted++;
    }
    r->next++;
    next_rcpt(r);
}

static void next_rcpt(rel *r)
{
    while (r->next < r->m->nrcpts && !r->send[r->next])
        r->next++;
    if (r->next < r->m->nrcpts) {
        char line[PC_QMETA_LINE_MAX + 16];
        int n = snprintf(line, sizeof(line), "RCPT TO:<%s>", r->m->rcpts[r->next].addr);
        if (n < 0 || (size_t)n >= sizeof(line) ||
            pc_smtpc_command(r->c, line, (size_t)n, 0, on_rcpt, r) < 0)
            end(r, -1, "upstream unavailable");
        return;
    }
    if (!r->accepted) {
        end(r, -1, "the upstream refused every recipient");
        return;
    }
    if (pc_smtpc_data(r->c, r->msg, on_final, r) < 0)
        end(r, -1, "upstream unavailable");
}

static void on_mail(void *ud, pc_smtpc_status st, const pc_smtp_reply *rp)
{
    rel *r = ud;
    if (st != PC_SMTPC_OK || !rp || rp->code / 100 != 2) {
        char t[400];
        reply_text(t, sizeof(t), st, rp);
        end(r, -1, t);
        return;
    }
    next_rcpt(r);
}

static void on_open(void *ud, pc_smtpc_status st, const pc_smtp_reply *rp)
{
    rel *r = ud;
    if (st != PC_SMTPC_OK) {
        char t[400];
        reply_text(t, sizeof(t), st, rp);
        end(r, -1, t);
        return;
    }
    /* The original MAIL's BODY=8BITMIME and SMTPUTF8 again: an upstream that no longer offers
     * them gets no downgraded copy, the release fails and can be tried again. */
    unsigned caps = r->up->caps.flags;
    if (r->m->body8bit && !(caps & PC_CAP_8BITMIME)) {
        end(r, -1, "the upstream does not offer 8BITMIME, which this message needs");
        return;
    }
    if (r->m->smtputf8 && !(caps & PC_CAP_SMTPUTF8)) {
        end(r, -1, "the upstream does not offer SMTPUTF8, which this message needs");
        return;
    }
    char line[PC_QMETA_LINE_MAX + 48];
    int n = snprintf(line, sizeof(line), "MAIL FROM:<%s>%s%s", r->m->from,
                     r->m->body8bit ? " BODY=8BITMIME" : "", r->m->smtputf8 ? " SMTPUTF8" : "");
    if (n < 0 || (size_t)n >= sizeof(line) ||
        pc_smtpc_command(r->c, line, (size_t)n, 0, on_mail, r) < 0)
        end(r, -1, "upstream unavailable");
}

int pc_release_send(uv_loop_t *loop, const pc_listener_cfg *lc, SSL_CTX *tls, pc_upstream *up,
                    const pc_qmeta *m, const unsigned char *send, unsigned char *ok,
                    pc_message *msg, pc_release_fn done, void *ud)
{
    if (!up->resolved)
        return -1;
    rel *r = calloc(1, sizeof(*r));
    if (!r)
        return -1;
    *r = (rel){.m = m, .up = up, .send = send, .ok = ok, .msg = msg, .done = done, .ud = ud};
    r->sid = pc_session_id();
    pc_smtpc_params p;
    memset(&p, 0, sizeof(p));
    p.loop = loop;
    p.sid = r->sid;
    p.up = up;
    p.tls_ctx = tls;
    p.helo_name = lc->upstream.helo_name ? lc->upstream.helo_name : lc->hostname;
    /* The original client, for XCLIENT or PROXY towards the upstream when the listener sends one.
     */
    struct sockaddr_in *sin = (struct sockaddr_in *)&p.client;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&p.client;
    if (inet_pton(AF_INET, m->client, &sin->sin_addr) == 1)
        sin->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, m->client, &sin6->sin6_addr) == 1)
        sin6->sin6_family = AF_INET6;
    else {
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    }
    p.local = p.client;
    p.client_helo = m->helo[0] ? m->helo : NULL;
    r->c = pc_smtpc_open(&p, on_open, r);
    if (!r->c) {
        free(r);
        return -1;
    }
    return 0;
}
