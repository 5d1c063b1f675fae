/* imap_select.c — the selected mailbox as the verdict cache needs it: the name the client gave
 * SELECT / EXAMINE (forgotten at CLOSE / UNSELECT, unknown for a literal), the UIDVALIDITY the
 * upstream announced, and the per-worker cache (core/vcache.c) keyed by (listener, user, mailbox,
 * UIDVALIDITY, UID). Without a known mailbox and UIDVALIDITY nothing is cached. Calls none of the
 * other session files. */
#include "imap/imap_select.h"

#include <stdio.h>

uint32_t is_parse_u32(pc_slice t)
{
    uint64_t v = 0;
    if (!t.n || t.n > 10)
        return 0;
    for (size_t i = 0; i < t.n; i++) {
        if (t.p[i] < '0' || t.p[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(t.p[i] - '0');
    }
    return v <= UINT32_MAX ? (uint32_t)v : 0;
}

/* Parses the mailbox argument of SELECT / EXAMINE (atom or quoted; a literal: unknown). */
void is_sel_command(is_selected *m, const pc_imap_cmd_head *h)
{
    if (h->sub.n)
        return;
    if (pc_imap_word_is(h->name, "CLOSE") || pc_imap_word_is(h->name, "UNSELECT")) {
        m->mbox[0] = '\0';
        m->uidv = 0;
        return;
    }
    if (!pc_imap_word_is(h->name, "SELECT") && !pc_imap_word_is(h->name, "EXAMINE"))
        return;
    m->mbox[0] = '\0';
    m->uidv = 0;
    const char *p = h->args.p;
    size_t n = h->args.n, o = 0, i = 0;
    char name[sizeof(m->mbox)];
    if (n && p[0] == '"') {
        for (i = 1; i < n && p[i] != '"' && o + 1 < sizeof(name); i++) {
            if (p[i] == '\\' && i + 1 < n)
                i++;
            name[o++] = p[i];
        }
        if (i >= n || p[i] != '"')
            return;
    } else {
        for (i = 0; i < n && p[i] != ' ' && p[i] != '{' && p[i] != '(' && o + 1 < sizeof(name); i++)
            name[o++] = p[i];
        if (i < n && p[i] == '{')
            return;
    }
    name[o] = '\0';
    pc_slice w = {name, o};
    if (pc_imap_word_is(w, "INBOX"))
        snprintf(m->mbox, sizeof(m->mbox), "INBOX");
    else
        snprintf(m->mbox, sizeof(m->mbox), "%s", name);
}

int is_sel_uidvalidity(is_selected *m, const pc_imap_resp_head *h)
{
    if (h->kind != PC_IMAP_RESP_UNTAGGED || h->status != PC_IMAP_ST_OK || !h->code.n ||
        !pc_imap_word_is(h->code_name, "UIDVALIDITY"))
        return 0;
    const char *v = h->code_name.p + h->code_name.n;
    while (v < h->code.p + h->code.n && *v == ' ')
        v++;
    m->uidv = is_parse_u32((pc_slice){v, (size_t)(h->code.p + h->code.n - v)});
    return 1;
}

/* ---- the verdict cache -------------------------------------------------------------------- */

/* The key, or -1 when the mailbox or its UIDVALIDITY is not known (no caching then). */
static int vc_keyof(const is_selected *m, const pc_listener_cfg *cfg, const char *user,
                    uint32_t uid, unsigned long long version, char *out, size_t outlen)
{
    if (!uid || !m->mbox[0] || !m->uidv || !user[0])
        return -1;
    int n = snprintf(out, outlen, "%s\n%s\n%s\n%u\n%u\n%llx", cfg->name, user, m->mbox,
                     (unsigned)m->uidv, (unsigned)uid, version);
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

static size_t vc_slots(const pc_listener_cfg *cfg)
{
    return cfg->mailbox.verdict_cache ? cfg->mailbox.verdict_cache : 10000;
}

const pc_vcache_ent *is_vc_lookup(const is_selected *m, const pc_listener_cfg *cfg,
                                  const char *user, uint32_t uid, unsigned long long version)
{
    char key[700];
    if (vc_keyof(m, cfg, user, uid, version, key, sizeof(key)) < 0)
        return NULL;
    return pc_vcache_lookup(vc_slots(cfg), key);
}

void is_vc_store(const is_selected *m, const pc_listener_cfg *cfg, const char *user, uint32_t uid,
                 unsigned long long version, int state, const char *info, size_t info_len)
{
    char key[700];
    if (vc_keyof(m, cfg, user, uid, version, key, sizeof(key)) < 0)
        return;
    int withheld = state == VS_WITHHELD;
    pc_vcache_store(vc_slots(cfg), key, state, withheld ? info : NULL, withheld ? info_len : 0);
}
