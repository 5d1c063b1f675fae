/* fuzz_imap_token.c — libFuzzer target: client and server streams fed whole, split and in pieces
 * must give the same events with every slice in bounds (literal abuse, nonsync floods, desync). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap/imap_token.h"

typedef struct rec {
    unsigned char *p;
    size_t n, cap;
} rec;

static void put(rec *r, const void *p, size_t n)
{
    if (r->n + n > r->cap) {
        size_t cap = (r->n + n) * 2 + 64;
        unsigned char *q = realloc(r->p, cap);
        if (!q)
            abort();
        r->p = q;
        r->cap = cap;
    }
    if (n)
        memcpy(r->p + r->n, p, n);
    r->n += n;
}

static void put_u64(rec *r, uint64_t v)
{
    put(r, &v, sizeof(v));
}

static void in_bounds(pc_slice s, const char *base, size_t n)
{
    if (s.n == 0)
        return;
    if (!s.p || s.p < base || s.p > base + n || s.n > (size_t)(base + n - s.p))
        abort();
}

static void check_helpers(int server, const pc_imap_ev *ev, int first, pc_slice prev_text)
{
    if (ev->type == PC_IMAP_EV_TEXT && first) {
        const char *b = ev->data.p;
        size_t n = ev->data.n;
        if (server) {
            pc_imap_resp_head h;
            if (pc_imap_resp_split(b, n, &h) == PC_OK) {
                in_bounds(h.tag, b, n);
                in_bounds(h.number, b, n);
                in_bounds(h.name, b, n);
                in_bounds(h.code, b, n);
                in_bounds(h.code_name, b, n);
                in_bounds(h.text, b, n);
                if (h.tag.n == 0 || (h.kind != PC_IMAP_RESP_CONTINUE && h.name.n == 0))
                    abort();
            }
        } else {
            pc_imap_cmd_head h;
            if (pc_imap_cmd_split(b, n, &h) == PC_OK) {
                in_bounds(h.tag, b, n);
                in_bounds(h.name, b, n);
                in_bounds(h.sub, b, n);
                in_bounds(h.args, b, n);
                if (h.tag.n == 0 || h.name.n == 0)
                    abort();
            }
        }
    }
    if (ev->type == PC_IMAP_EV_TEXT) { /* the FETCH item scanner on every text segment */
        int depth = 0, others = 0;
        uint32_t uid = 0;
        uint64_t size = 0;
        size_t at = 0, len = 0;
        pc_imap_fetch_scan(ev->data.p, ev->data.n, &depth, &uid, &size, &others, &at, &len);
        if (len && (at > ev->data.n || len > ev->data.n - at))
            abort();
        for (size_t k = 0; k < len; k++)
            if (ev->data.p[at + k] < '0' || ev->data.p[at + k] > '9')
                abort();
    }
    if (ev->type == PC_IMAP_EV_LITERAL) {
        pc_slice it;
        int k = pc_imap_fetch_item(prev_text.p, prev_text.n, &it);
        in_bounds(it, prev_text.p, prev_text.n);
        if (k < PC_IMAP_ITEM_NONE || k > PC_IMAP_ITEM_PART || (k != PC_IMAP_ITEM_NONE && !it.n))
            abort();
    }
}

/* Drives the tokenizer over in[0..n): a split at cut (if cut <= n), then pieces of 1..8 bytes
 * from a PRNG seeded with seed (0: the rest at once). Records the events, literal content merged.
 */
static void drive(const pc_imap_tok_cfg *cfg, const char *in, size_t n, size_t cut, uint32_t seed,
                  rec *r)
{
    pc_imap_tok t;
    pc_imap_tok_init(&t, cfg);
    char *buf = malloc(n + 1);
    if (!buf)
        abort();
    size_t have = 0, pos = 0, line = 0;
    uint64_t lit_left = 0;
    int last = -100, lits_pending = 0;
    pc_slice prev_text = {NULL, 0};
    char *prev_copy = malloc(n + 1); /* the last TEXT, kept for the FETCH helper */
    if (!prev_copy)
        abort();
    while (pos < n || pos == 0) {
        size_t end = n;
        if (cut <= n && pos < cut)
            end = cut;
        else if (seed) {
            seed = seed * 1664525u + 1013904223u;
            end = pos + 1 + (seed >> 24) % 8;
            if (end > n)
                end = n;
        }
        memcpy(buf + have, in + pos, end - pos);
        have += end - pos;
        pos = end;
        int idle = 0;
        for (;;) {
            pc_imap_ev ev;
            int ty = pc_imap_tok_next(&t, buf, have, &ev);
            if (ty != ev.type || ev.consumed > have || ev.data.n > have ||
                (ev.data.n && ev.data.p != buf))
                abort();
            if (ty == PC_IMAP_EV_NEED_MORE) {
                if (ev.consumed)
                    abort();
                break;
            }
            if (ty < 0) {
                if (ev.consumed || ty < PC_IMAP_E_TOO_DEEP)
                    abort();
                put(r, &ty, sizeof(ty));
                put_u64(r, ev.data.n);
                put_u64(r, ev.lit_size);
                pc_imap_ev again;
                if (pc_imap_tok_next(&t, buf, have, &again) != ty)
                    abort();
                free(buf);
                free(prev_copy);
                return;
            }
            if (ev.consumed == 0 && ++idle > 1)
                abort(); /* two events in a row without progress */
            if (ev.consumed)
                idle = 0;
            check_helpers(cfg->server, &ev, ev.first, prev_text);
            switch (ty) {
            case PC_IMAP_EV_TEXT:
                if (!ev.data.n || ev.consumed != ev.data.n || lits_pending)
                    abort();
                /* line text: CR/LF only as the CRLF closing an announcement */
                for (size_t i = 0; i < ev.data.n; i++) {
                    char c = ev.data.p[i];
                    if ((c == '\r' && i + 2 != ev.data.n) || (c == '\n' && i + 1 != ev.data.n))
                        abort();
                }
                lits_pending = ev.data.p[ev.data.n - 1] == '\n';
                line += ev.data.n;
                memcpy(prev_copy, ev.data.p, ev.data.n);
                prev_text = (pc_slice){prev_copy, ev.data.n};
                put(r, &ty, sizeof(ty));
                put_u64(r, ev.data.n);
                put(r, ev.data.p, ev.data.n);
                put(r, &ev.first, sizeof(ev.first));
                break;
            case PC_IMAP_EV_LITERAL:
                if (!lits_pending || ev.consumed || lit_left)
                    abort();
                if (ev.lit_size > cfg->max_literal ||
                    ((ev.lit_flags & PC_IMAP_LIT_NONSYNC) && ev.lit_size > cfg->max_nonsync) ||
                    ((ev.lit_flags & PC_IMAP_LIT_BINARY) && !cfg->literal8) ||
                    ((ev.lit_flags & PC_IMAP_LIT_SYNC) && cfg->server) || ev.depth > cfg->max_depth)
                    abort();
                lits_pending = 0;
                lit_left = ev.lit_size;
                put(r, &ty, sizeof(ty));
                put_u64(r, ev.lit_size);
                put(r, &ev.lit_flags, sizeof(ev.lit_flags));
                put(r, &ev.depth, sizeof(ev.depth));
                break;
            case PC_IMAP_EV_LITERAL_DATA:
                if (!ev.data.n || ev.consumed != ev.data.n || ev.data.n > lit_left ||
                    ev.lit_left != lit_left - ev.data.n)
                    abort();
                lit_left -= ev.data.n;
                if (last != PC_IMAP_EV_LITERAL_DATA)
                    put(r, &ty, sizeof(ty));
                put(r, ev.data.p, ev.data.n);
                break;
            case PC_IMAP_EV_LINE_END:
                if (ev.consumed != 2 || ev.data.n != 2 || memcmp(ev.data.p, "\r\n", 2) != 0 ||
                    lit_left || lits_pending)
                    abort();
                line += 2;
                if (cfg->max_line && line > cfg->max_line)
                    abort();
                line = 0;
                put(r, &ty, sizeof(ty));
                break;
            default: abort();
            }
            last = ty;
            memmove(buf, buf + ev.consumed, have - ev.consumed);
            have -= ev.consumed;
        }
        if (n == 0)
            break;
    }
    int end = 99;
    put(r, &end, sizeof(end));
    put_u64(r, have);
    free(buf);
    free(prev_copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned b = data[0];
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    for (int server = 0; server <= 1; server++) {
        pc_imap_tok_cfg cfg;
        pc_imap_tok_cfg_default(&cfg, server);
        cfg.literal8 = b & 1;
        cfg.max_nonsync = (b & 2) ? 5 : 0;
        cfg.max_nonsync_total = 12;
        cfg.max_line = (b & 4) ? 48 : 4096;
        cfg.max_literal = (b & 8) ? 16 : 100000;
        cfg.max_depth = (b & 16) ? 3 : 64;
        rec whole = {0}, split = {0}, pieces = {0};
        drive(&cfg, in, n, (size_t)-1, 0, &whole);
        drive(&cfg, in, n, n * b / 255, 0, &split);
        drive(&cfg, in, n, (size_t)-1, b | 0x100u, &pieces);
        if (whole.n != split.n || memcmp(whole.p, split.p, whole.n) != 0 || whole.n != pieces.n ||
            memcmp(whole.p, pieces.p, whole.n) != 0)
            abort();
        free(whole.p);
        free(split.p);
        free(pieces.p);
    }
    return 0;
}
