/* imap_token.c — IMAP stream tokenizer: lines, quoted strings and literals in either direction.
 * Defends against literal length abuse, non-sync literal floods and framing desync with the peer.
 */
#include "imap/imap_token.h"

#include <string.h>

enum {
    S_LINE = 0, /* at a line start, nothing seen */
    S_BODY,     /* tokens: atoms, parentheses, SP */
    S_AFTER,    /* right after literal content: SP, ')' or CRLF */
    S_TILDE,    /* '~' at a token start: literal8 if '{' follows, else an atom */
    S_QUOTE,    /* inside a quoted string */
    S_QESC,     /* after '\' inside a quoted string */
    S_OPAQUE,   /* free text to the end of the line (server status / continuation) */
    S_CR,       /* CR outside strings: only LF may follow */
    S_LNUM,     /* after '{': digits */
    S_LPLUS,    /* after "{n+": '}' */
    S_LCR,      /* after '}': CR */
    S_LLF,      /* after '}' CR: LF */
    S_DATA,     /* literal content */
    S_ERR,
};

/* Server line head: tag, then the word that may make the rest free text. */
enum { P_NONE = 0, P_TAG, P_WORD };

enum { PEND_NONE = 0, PEND_LITERAL, PEND_EOL };

/* step() results besides errors (which are negative PC_IMAP_E_* codes). */
enum { A_NEXT = 1, A_AGAIN, A_EOL, A_LIT };

#define LIT_OVERFLOW (1u << 8) /* private: the announced size does not fit 64 bits */

void pc_imap_tok_cfg_default(pc_imap_tok_cfg *cfg, int server)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->server = server != 0;
    cfg->max_line = server ? 64 * 1024 : 8 * 1024;
    cfg->max_literal = 50u * 1024 * 1024;
    cfg->max_nonsync = server ? 0 : PC_IMAP_LITERAL_MINUS_MAX;
    cfg->max_nonsync_total = server ? 0 : 64 * 1024;
    cfg->max_depth = 64;
    cfg->literal8 = 0;
}

int pc_imap_tok_between_lines(const pc_imap_tok *t)
{
    return t->first && t->lit_left == 0;
}

static void line_reset(pc_imap_tok *t)
{
    t->state = S_LINE;
    t->pending = PEND_NONE;
    t->phase = P_NONE;
    t->first = 1;
    t->prev = 0;
    t->wlen = 0;
    t->depth = 0;
    t->nonsync_line = 0;
    t->line_len = 0;
    t->scan = 0;
}

void pc_imap_tok_init(pc_imap_tok *t, const pc_imap_tok_cfg *cfg)
{
    memset(t, 0, sizeof(*t));
    t->cfg = *cfg;
    line_reset(t);
}

int pc_imap_tok_resume(pc_imap_tok *t)
{
    if (!t->err || !t->resumable)
        return -1;
    t->err = 0;
    t->resumable = 0;
    line_reset(t);
    return 0;
}

static int is_status_word(const char *w, size_t n)
{
    static const char *const words[] = {"OK", "NO", "BAD", "BYE", "PREAUTH"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (pc_imap_word_is((pc_slice){w, n}, words[i]))
            return (int)i + 1; /* PC_IMAP_ST_OK.. in order */
    return 0;
}

static int is_alpha(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* A string ('"', '{', "~{") may open only where a token starts. */
static int token_start(unsigned char prev)
{
    return prev == ' ' || prev == '(';
}

static void lit_begin(pc_imap_tok *t, unsigned flags)
{
    t->lit_flags = flags;
    t->lit_size = 0;
    t->ndigits = 0;
    t->state = S_LNUM;
}

/* Server line head: recognises "+ ..." (at S_LINE) and "tag|* OK|NO|BAD|BYE|PREAUTH ...". Returns
 * A_AGAIN to let the body rules look at c too, or A_NEXT when c was taken here. */
static int head(pc_imap_tok *t, unsigned char c)
{
    if (t->phase == P_TAG) {
        if (c == ' ') {
            t->phase = P_WORD;
            t->wlen = 0;
        } else if (c <= ' ' || c >= 0x7f || strchr("(){\"\\~", c)) {
            t->phase = P_NONE;
        }
        return A_AGAIN;
    }
    if ((c == ' ' || c == '\r') && is_status_word(t->word, t->wlen)) {
        t->phase = P_NONE;
        if (c == '\r')
            return A_AGAIN;
        t->state = S_OPAQUE;
        return A_NEXT;
    }
    if (is_alpha(c) && t->wlen < sizeof(t->word))
        t->word[t->wlen++] = (char)c;
    else
        t->phase = P_NONE;
    return A_AGAIN;
}

static int body(pc_imap_tok *t, unsigned char c)
{
    switch (c) {
    case '\r': t->state = S_CR; return A_NEXT;
    case '\n': return PC_IMAP_E_BARE_LF;
    case '\0': return PC_IMAP_E_NUL;
    case '"':
        if (!token_start(t->prev))
            return PC_IMAP_E_SYNTAX;
        t->state = S_QUOTE;
        return A_NEXT;
    case '{':
        if (!token_start(t->prev))
            return PC_IMAP_E_SYNTAX;
        lit_begin(t, 0);
        return A_NEXT;
    case '~':
        if (token_start(t->prev)) {
            t->state = S_TILDE;
            return A_NEXT;
        }
        break;
    case '(':
        if (t->depth >= t->cfg.max_depth)
            return PC_IMAP_E_TOO_DEEP;
        t->depth++;
        break;
    case ')':
        if (t->depth == 0)
            return PC_IMAP_E_SYNTAX;
        t->depth--;
        break;
    default: break;
    }
    t->prev = c;
    return A_NEXT;
}

/* One byte of line text (never literal content). */
static int step(pc_imap_tok *t, unsigned char c)
{
    switch (t->state) {
    case S_LINE:
        t->prev = 0;
        if (t->cfg.server && c == '+') {
            t->state = S_OPAQUE; /* continuation request: free text */
            return A_NEXT;
        }
        t->phase = t->cfg.server ? P_TAG : P_NONE;
        t->state = S_BODY;
        return A_AGAIN;
    case S_AFTER:
        if (c != ' ' && c != ')' && c != '\r')
            return PC_IMAP_E_SYNTAX;
        t->state = S_BODY;
        return A_AGAIN;
    case S_BODY:
        if (t->phase != P_NONE) {
            int r = head(t, c);
            if (r != A_AGAIN)
                return r;
        }
        return body(t, c);
    case S_TILDE:
        if (c == '{') {
            lit_begin(t, PC_IMAP_LIT_BINARY);
            return A_NEXT;
        }
        t->prev = '~';
        t->state = S_BODY;
        return A_AGAIN;
    case S_QUOTE:
        if (c == '"') {
            t->prev = c;
            t->state = S_BODY;
        } else if (c == '\\') {
            t->state = S_QESC;
        } else if (c == '\r' || c == '\n') {
            return PC_IMAP_E_SYNTAX;
        } else if (c == '\0') {
            return PC_IMAP_E_NUL;
        }
        return A_NEXT;
    case S_QESC:
        if (c == '\0')
            return PC_IMAP_E_NUL;
        if (c != '"' && c != '\\')
            return PC_IMAP_E_SYNTAX;
        t->state = S_QUOTE;
        return A_NEXT;
    case S_OPAQUE:
        if (c == '\r')
            t->state = S_CR;
        else if (c == '\n')
            return PC_IMAP_E_BARE_LF;
        else if (c == '\0')
            return PC_IMAP_E_NUL;
        return A_NEXT;
    case S_CR:
        if (c != '\n')
            return PC_IMAP_E_BARE_CR;
        if (t->depth != 0)
            return PC_IMAP_E_SYNTAX; /* unclosed '(' */
        return A_EOL;
    case S_LNUM:
        if (is_digit(c)) {
            unsigned d = (unsigned)(c - '0');
            if (t->lit_size > (UINT64_MAX - d) / 10)
                t->lit_flags |= LIT_OVERFLOW;
            else
                t->lit_size = t->lit_size * 10 + d;
            t->ndigits = 1;
            return A_NEXT;
        }
        if (!t->ndigits || (c != '+' && c != '}'))
            return PC_IMAP_E_BAD_LITERAL;
        if (c == '+') {
            t->lit_flags |= PC_IMAP_LIT_NONSYNC;
            t->state = S_LPLUS;
        } else {
            t->state = S_LCR;
        }
        return A_NEXT;
    case S_LPLUS:
        if (c != '}')
            return PC_IMAP_E_BAD_LITERAL;
        t->state = S_LCR;
        return A_NEXT;
    case S_LCR:
        if (c == '\n')
            return PC_IMAP_E_BARE_LF;
        if (c != '\r')
            return PC_IMAP_E_BAD_LITERAL;
        t->state = S_LLF;
        return A_NEXT;
    case S_LLF:
        if (c != '\n')
            return PC_IMAP_E_BARE_CR;
        return A_LIT;
    default: return PC_IMAP_E_SYNTAX;
    }
}

/* A complete announcement: is this form enabled, is the size within every limit? */
static int lit_check(pc_imap_tok *t)
{
    const pc_imap_tok_cfg *c = &t->cfg;
    unsigned f = t->lit_flags;
    int nonsync = (f & PC_IMAP_LIT_NONSYNC) != 0;
    if (nonsync && (c->server || c->max_nonsync == 0))
        return PC_IMAP_E_BAD_LITERAL;
    if ((f & PC_IMAP_LIT_BINARY) && !c->literal8)
        return PC_IMAP_E_BAD_LITERAL;
    if ((f & LIT_OVERFLOW) || t->lit_size > c->max_literal) {
        /* A client told NO instead of "+" does not send the content: the stream stays framed. */
        t->resumable = !c->server && !nonsync;
        return PC_IMAP_E_LITERAL_TOO_BIG;
    }
    if (nonsync) {
        if (t->lit_size > c->max_nonsync)
            return PC_IMAP_E_LITERAL_TOO_BIG;
        if (c->max_nonsync_total && t->lit_size > c->max_nonsync_total - t->nonsync_line)
            return PC_IMAP_E_LITERAL_TOO_BIG;
        t->nonsync_line += t->lit_size;
    } else if (!c->server) {
        t->lit_flags |= PC_IMAP_LIT_SYNC;
    }
    return 0;
}

static int fail(pc_imap_tok *t, int err, const char *in, size_t len, pc_imap_ev *ev)
{
    t->err = err;
    t->state = S_ERR;
    t->scan = len;
    ev->type = err;
    ev->data = (pc_slice){in, len};
    if (err == PC_IMAP_E_LITERAL_TOO_BIG || err == PC_IMAP_E_BAD_LITERAL) {
        ev->lit_flags = t->lit_flags & ~LIT_OVERFLOW;
        ev->lit_size = (t->lit_flags & LIT_OVERFLOW) ? UINT64_MAX : t->lit_size;
    }
    return err;
}

int pc_imap_tok_next(pc_imap_tok *t, const char *in, size_t n, pc_imap_ev *ev)
{
    memset(ev, 0, sizeof(*ev));
    ev->data.p = in;
    if (t->err) {
        /* Sticky: the same error, pointing at what is left of the offending segment. */
        ev->type = t->err;
        ev->data.n = t->scan < n ? t->scan : n;
        return t->err;
    }
    if (t->pending == PEND_LITERAL) {
        t->pending = PEND_NONE;
        ev->type = PC_IMAP_EV_LITERAL;
        ev->lit_size = t->lit_size;
        ev->lit_flags = t->lit_flags;
        ev->depth = t->depth;
        t->lit_left = t->lit_size;
        t->state = t->lit_left ? S_DATA : S_AFTER;
        return ev->type;
    }
    if (t->pending == PEND_EOL) {
        if (n < 2)
            return PC_IMAP_EV_NEED_MORE; /* only if the caller broke the contract */
        ev->type = PC_IMAP_EV_LINE_END;
        ev->data.n = 2;
        ev->consumed = 2;
        line_reset(t);
        return ev->type;
    }
    if (t->state == S_DATA) {
        if (n == 0)
            return PC_IMAP_EV_NEED_MORE;
        size_t k = (uint64_t)n < t->lit_left ? n : (size_t)t->lit_left;
        t->lit_left -= k;
        ev->type = PC_IMAP_EV_LITERAL_DATA;
        ev->data.n = k;
        ev->consumed = k;
        ev->lit_left = t->lit_left;
        if (t->lit_left == 0)
            t->state = S_AFTER;
        return ev->type;
    }
    size_t max = t->cfg.max_line;
    for (size_t i = t->scan; i < n; i++) {
        if (max && (t->line_len > max || i + 1 > max - t->line_len))
            return fail(t, PC_IMAP_E_TOO_LONG, in, i + 1, ev);
        int r;
        do
            r = step(t, (unsigned char)in[i]);
        while (r == A_AGAIN);
        if (r < 0)
            return fail(t, r, in, i + 1, ev);
        if (r == A_EOL) {
            size_t text = i - 1; /* the CR is at i - 1, still in the input */
            t->scan = 0;
            if (text == 0) {
                ev->type = PC_IMAP_EV_LINE_END;
                ev->data.n = 2;
                ev->consumed = 2;
                line_reset(t);
                return ev->type;
            }
            ev->type = PC_IMAP_EV_TEXT;
            ev->data.n = text;
            ev->consumed = text;
            ev->first = t->first;
            t->first = 0;
            t->line_len += text;
            t->pending = PEND_EOL;
            return ev->type;
        }
        if (r == A_LIT) {
            int e = lit_check(t);
            if (e < 0)
                return fail(t, e, in, i + 1, ev);
            t->scan = 0;
            ev->type = PC_IMAP_EV_TEXT;
            ev->data.n = i + 1;
            ev->consumed = i + 1;
            ev->first = t->first;
            t->first = 0;
            t->line_len += i + 1;
            t->pending = PEND_LITERAL;
            return ev->type;
        }
    }
    t->scan = n;
    return PC_IMAP_EV_NEED_MORE;
}

/* ---- line heads ---------------------------------------------------------------------------- */

int pc_imap_word_is(pc_slice s, const char *word)
{
    size_t i = 0;
    for (; i < s.n; i++) {
        unsigned char a = (unsigned char)s.p[i], b = (unsigned char)word[i];
        if (b == 0)
            return 0;
        if (a >= 'a' && a <= 'z')
            a = (unsigned char)(a - 32);
        if (b >= 'a' && b <= 'z')
            b = (unsigned char)(b - 32);
        if (a != b)
            return 0;
    }
    return word[i] == 0;
}

/* tag = 1*<ASTRING-CHAR except "+">; ASTRING-CHAR = ATOM-CHAR / "]". */
static int is_tag_char(unsigned char c)
{
    return c > ' ' && c < 0x7f && !strchr("(){%*\"\\+", c);
}

static int is_atom_char(unsigned char c)
{
    return c > ' ' && c < 0x7f && !strchr("(){%*\"\\]", c);
}

static size_t run(const char *p, size_t i, size_t n, int (*ok)(unsigned char))
{
    while (i < n && ok((unsigned char)p[i]))
        i++;
    return i;
}

static size_t strip_crlf(const char *p, size_t n)
{
    return n >= 2 && p[n - 2] == '\r' && p[n - 1] == '\n' ? n - 2 : n;
}

int pc_imap_cmd_split(const char *line, size_t n, pc_imap_cmd_head *h)
{
    memset(h, 0, sizeof(*h));
    n = strip_crlf(line, n);
    size_t i = run(line, 0, n, is_tag_char);
    if (i == 0 || i >= n || line[i] != ' ')
        return PC_INVALID;
    h->tag = (pc_slice){line, i};
    size_t s = ++i;
    i = run(line, i, n, is_atom_char);
    if (i == s || (i < n && line[i] != ' '))
        return PC_INVALID;
    h->name = (pc_slice){line + s, i - s};
    if (pc_imap_word_is(h->name, "UID")) {
        if (i >= n)
            return PC_INVALID;
        s = ++i;
        i = run(line, i, n, is_atom_char);
        if (i == s || (i < n && line[i] != ' '))
            return PC_INVALID;
        h->sub = (pc_slice){line + s, i - s};
    }
    if (i < n)
        i++;
    h->args = (pc_slice){line + i, n - i};
    return PC_OK;
}

/* resp-text from i: ["[" code "]" [SP]] text. */
static int resp_text(const char *line, size_t i, size_t n, pc_imap_resp_head *h)
{
    if (i < n && line[i] == '[') {
        const char *e = memchr(line + i + 1, ']', n - i - 1);
        if (!e)
            return PC_INVALID;
        size_t s = i + 1, end = (size_t)(e - line);
        h->code = (pc_slice){line + s, end - s};
        const char *sp = memchr(line + s, ' ', end - s);
        h->code_name = (pc_slice){line + s, sp ? (size_t)(sp - line) - s : end - s};
        i = end + 1;
        if (i < n && line[i] == ' ')
            i++;
    }
    h->text = (pc_slice){line + i, n - i};
    return PC_OK;
}

static int is_digit_c(unsigned char c)
{
    return is_digit(c);
}

int pc_imap_resp_split(const char *line, size_t n, pc_imap_resp_head *h)
{
    memset(h, 0, sizeof(*h));
    n = strip_crlf(line, n);
    if (n == 0)
        return PC_INVALID;
    size_t i;
    if (line[0] == '+') {
        h->kind = PC_IMAP_RESP_CONTINUE;
        h->tag = (pc_slice){line, 1};
        i = 1;
        if (i < n && line[i++] != ' ')
            return PC_INVALID;
        return resp_text(line, i, n, h);
    }
    if (line[0] == '*') {
        h->kind = PC_IMAP_RESP_UNTAGGED;
        i = 1;
    } else {
        h->kind = PC_IMAP_RESP_TAGGED;
        i = run(line, 0, n, is_tag_char);
        if (i == 0)
            return PC_INVALID;
    }
    h->tag = (pc_slice){line, i};
    if (i >= n || line[i] != ' ')
        return PC_INVALID;
    i++;
    size_t s = i;
    if (h->kind == PC_IMAP_RESP_UNTAGGED) {
        i = run(line, i, n, is_digit_c);
        if (i > s) {
            h->number = (pc_slice){line + s, i - s};
            if (i >= n || line[i] != ' ')
                return PC_INVALID;
            s = ++i;
        }
    }
    i = run(line, i, n, is_atom_char);
    if (i == s || (i < n && line[i] != ' '))
        return PC_INVALID;
    h->name = (pc_slice){line + s, i - s};
    if (i < n)
        i++;
    h->status = h->number.n ? PC_IMAP_ST_NONE : is_status_word(h->name.p, h->name.n);
    if (h->kind == PC_IMAP_RESP_TAGGED && (h->status < PC_IMAP_ST_OK || h->status > PC_IMAP_ST_BAD))
        return PC_INVALID;
    if (h->status != PC_IMAP_ST_NONE)
        return resp_text(line, i, n, h);
    h->text = (pc_slice){line + i, n - i};
    return PC_OK;
}

/* ---- FETCH items ----------------------------------------------------------------------------- */

/* End of the quoted string starting at p[i] == '"' (index after the closing quote, or n). */
static size_t skip_quoted(const char *p, size_t i, size_t n)
{
    for (i++; i < n; i++) {
        if (p[i] == '\\')
            i++;
        else if (p[i] == '"')
            return i + 1;
    }
    return n;
}

static int classify_item(pc_slice it)
{
    const char *b = memchr(it.p, '[', it.n);
    if (!b) {
        if (pc_imap_word_is(it, "RFC822"))
            return PC_IMAP_ITEM_MESSAGE;
        if (pc_imap_word_is(it, "RFC822.HEADER") || pc_imap_word_is(it, "RFC822.TEXT"))
            return PC_IMAP_ITEM_PART;
        return PC_IMAP_ITEM_OTHER;
    }
    pc_slice name = {it.p, (size_t)(b - it.p)};
    if (!pc_imap_word_is(name, "BODY") && !pc_imap_word_is(name, "BODY.PEEK") &&
        !pc_imap_word_is(name, "BINARY") && !pc_imap_word_is(name, "BINARY.PEEK"))
        return PC_IMAP_ITEM_OTHER;
    size_t bi = (size_t)(b - it.p);
    size_t e = bi + 1;
    while (e < it.n && it.p[e] != ']') {
        if (it.p[e] == '"')
            e = skip_quoted(it.p, e, it.n);
        else
            e++;
    }
    if (e >= it.n)
        return PC_IMAP_ITEM_OTHER;
    int section = e > bi + 1;
    size_t r = e + 1;
    if (r < it.n) {
        /* partial: "<" number ["." number] ">" */
        size_t k = r + 1, d;
        if (it.p[r] != '<')
            return PC_IMAP_ITEM_OTHER;
        d = run(it.p, k, it.n, is_digit_c);
        if (d == k)
            return PC_IMAP_ITEM_OTHER;
        if (d < it.n && it.p[d] == '.') {
            k = d + 1;
            d = run(it.p, k, it.n, is_digit_c);
            if (d == k)
                return PC_IMAP_ITEM_OTHER;
        }
        if (d + 1 != it.n || it.p[d] != '>')
            return PC_IMAP_ITEM_OTHER;
        return PC_IMAP_ITEM_PART;
    }
    return section ? PC_IMAP_ITEM_PART : PC_IMAP_ITEM_MESSAGE;
}

int pc_imap_fetch_item(const char *text, size_t n, pc_slice *item)
{
    *item = (pc_slice){text, 0};
    n = strip_crlf(text, n);
    if (n > 0 && text[n - 1] == '}') {
        size_t k = n - 1;
        while (k > 0 && (is_digit((unsigned char)text[k - 1]) || text[k - 1] == '+'))
            k--;
        if (k == 0 || text[k - 1] != '{')
            return PC_IMAP_ITEM_NONE;
        n = k - 1;
        if (n > 0 && text[n - 1] == '~')
            n--;
    }
    if (n == 0 || text[n - 1] != ' ')
        return PC_IMAP_ITEM_NONE;
    n--;
    /* Forward over the segment: the last top-level token before the announcement. */
    size_t ls = 0, ll = 0;
    int atom = 0;
    for (size_t i = 0; i < n;) {
        char c = text[i];
        if (c == ' ') {
            i++;
        } else if (c == '(' || c == ')') {
            atom = 0;
            i++;
        } else if (c == '"') {
            atom = 0;
            i = skip_quoted(text, i, n);
        } else {
            size_t s = i;
            int br = 0;
            while (i < n) {
                c = text[i];
                if (br) {
                    if (c == '"') {
                        i = skip_quoted(text, i, n);
                        continue;
                    }
                    if (c == ']')
                        br = 0;
                } else if (c == '[') {
                    br = 1;
                } else if (c == ' ' || c == '(' || c == ')' || c == '"') {
                    break;
                }
                i++;
            }
            ls = s;
            ll = i - s;
            atom = 1;
        }
    }
    if (!atom)
        return PC_IMAP_ITEM_NONE;
    *item = (pc_slice){text + ls, ll};
    return classify_item(*item);
}

/* See imap_token.h. Bounds: every read is checked against n; a quote or a '[' left open runs to
 * the end of the segment. */
void pc_imap_fetch_scan(const char *p, size_t n, int *depth, uint32_t *uid, uint64_t *size,
                        int *others, size_t *size_at, size_t *size_len)
{
    size_t i = 0;
    while (i < n) {
        char c = p[i];
        if (c == '"') {
            for (i++; i < n && p[i] != '"'; i++)
                if (p[i] == '\\')
                    i++;
            i++;
            continue;
        }
        if (c == '(') {
            (*depth)++;
            i++;
            continue;
        }
        if (c == ')') {
            (*depth)--;
            i++;
            continue;
        }
        if (c == ' ' || c == '\r' || c == '\n') {
            i++;
            continue;
        }
        size_t st = i;
        while (i < n && p[i] != ' ' && p[i] != '(' && p[i] != ')' && p[i] != '"' && p[i] != '\r') {
            if (p[i] == '[') {
                while (i < n && p[i] != ']')
                    i++;
            }
            if (i < n)
                i++;
        }
        if (*depth != 1)
            continue;
        pc_slice w = {p + st, i - st};
        int is_uid = pc_imap_word_is(w, "UID"), is_size = pc_imap_word_is(w, "RFC822.SIZE");
        if (!is_uid && !is_size) {
            if (others && !(w.n && w.p[0] == '{'))
                (*others)++;
            continue;
        }
        size_t j = i;
        if (j >= n || p[j] != ' ')
            continue;
        j++;
        uint64_t v = 0;
        size_t d = 0;
        while (j < n && p[j] >= '0' && p[j] <= '9' && d < 19) {
            v = v * 10 + (uint64_t)(p[j] - '0');
            j++;
            d++;
        }
        if (!d)
            continue;
        if (is_uid && uid && v <= UINT32_MAX)
            *uid = (uint32_t)v;
        if (is_size && size)
            *size = v;
        while (j < n && p[j] >= '0' && p[j] <= '9')
            j++;
        if (is_size && size_at && size_len) {
            *size_at = i + 1;
            *size_len = j - (i + 1);
        }
        i = j;
    }
}
