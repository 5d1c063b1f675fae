/* imap_token.h — streaming literal-aware IMAP tokenizer (commands and responses) + line helpers.
 * Defends against literal length abuse, non-synchronising literal floods and proxy desync. */

/* Scope: RFC 9051/3501 framing, LITERAL+ / LITERAL- (RFC 7888), literal8 (RFC 3516). Pure: no I/O,
 * no allocation, no logging (STYLE.md habit 1).
 *
 * Model. The stream is a sequence of logical lines. A line is text segments separated by literals:
 *
 *     TEXT "A1 LOGIN {4}\r\n"  LITERAL(4)  LITERAL_DATA "user"  TEXT " {4}\r\n"  LITERAL(4)
 *     LITERAL_DATA "pass"  LINE_END "\r\n"
 *
 * A TEXT event is always a whole segment: from the line start or the end of a literal up to and
 * including a literal announcement ("{n}\r\n", "{n+}\r\n", "~{n}\r\n"), or up to (excluding) the
 * CRLF that ends the line, which then comes as LINE_END. The tokenizer does not consume an
 * incomplete segment: it answers NEED_MORE and the caller calls again with the same unconsumed
 * bytes at the start of its buffer followed by new ones (bytes already looked at are not scanned
 * twice). The caller therefore buffers at most max_line bytes of line text; literal content is
 * handed out as it arrives (LITERAL_DATA, any chunking) and never needs to be buffered.
 *
 * Lexical rules (outside literal content):
 *  - a line ends at CRLF only; a bare LF, a bare CR and a NUL are errors;
 *  - quoted strings: '"' ... '"' with the escapes \" and \\ only; CR or LF inside is an error; a
 *    '{' inside is text;
 *  - '"', '{' and "~{" open a string only at a token start (after SP or '('); elsewhere they are an
 *    error, so that a byte run never frames differently here and at the peer;
 *  - after literal content only SP, ')' or CRLF may follow;
 *  - parentheses must balance within a line and nest at most max_depth deep;
 *  - server stream: a continuation request ("+ ...") and a status response ("* OK ...",
 *    "tag NO ...", BAD/BYE/PREAUTH) carry free text after the status word: no literals, quotes or
 *    parentheses are recognised there ("* OK use {5}" is not a literal).
 * Every error is sticky: the stream cannot be resynchronised, the caller answers and closes. The
 * one exception is pc_imap_tok_resume() after refusing a synchronising client literal.
 *
 * Ownership: nothing is allocated; every slice handed back is borrowed from the caller's input
 * and valid until the caller changes those bytes. */
#ifndef PC_IMAP_TOKEN_H
#define PC_IMAP_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "parse/parse.h"

/* Event types (>= 0) and errors (< 0); pc_imap_tok_next() returns one of them. */
enum {
    PC_IMAP_EV_NEED_MORE = 0,    /* consume nothing; call again with more bytes appended */
    PC_IMAP_EV_TEXT = 1,         /* data = a whole text segment (see above) */
    PC_IMAP_EV_LITERAL = 2,      /* the announcement just delivered in TEXT is a literal of
                                    lit_size bytes; consumes nothing */
    PC_IMAP_EV_LITERAL_DATA = 3, /* data = 1..lit_size bytes of literal content */
    PC_IMAP_EV_LINE_END = 4,     /* data = the CRLF ending the logical line */

    PC_IMAP_E_TOO_LONG = -1,        /* line text beyond max_line */
    PC_IMAP_E_LITERAL_TOO_BIG = -2, /* over max_literal, max_nonsync or max_nonsync_total */
    PC_IMAP_E_BAD_LITERAL = -3,     /* malformed announcement, or a form not enabled */
    PC_IMAP_E_BARE_LF = -4,
    PC_IMAP_E_BARE_CR = -5,
    PC_IMAP_E_NUL = -6,
    PC_IMAP_E_SYNTAX = -7,   /* quoting, string position, junk after a literal, parentheses */
    PC_IMAP_E_TOO_DEEP = -8, /* parentheses nested beyond max_depth */
};

/* LITERAL flags. */
enum {
    PC_IMAP_LIT_NONSYNC = 1u << 0, /* "{n+}": the client sends the bytes without waiting */
    PC_IMAP_LIT_BINARY = 1u << 1,  /* "~{n}": literal8, may hold NUL */
    PC_IMAP_LIT_SYNC = 1u << 2,    /* client "{n}": the client waits for a "+" continuation
                                      request before it sends the bytes */
};

#define PC_IMAP_LITERAL_MINUS_MAX 4096u /* RFC 7888 LITERAL-: largest non-sync literal */

typedef struct pc_imap_tok_cfg {
    int server;                 /* 0: client commands; 1: server responses */
    size_t max_line;            /* bytes of one logical line outside literal content,
                                   announcements and CRLFs included; 0 = no limit */
    uint64_t max_literal;       /* largest literal accepted */
    uint64_t max_nonsync;       /* largest "{n+}" literal; 0 = refused (neither LITERAL+ nor
                                   LITERAL-); PC_IMAP_LITERAL_MINUS_MAX for LITERAL-. Always
                                   refused on a server stream. */
    uint64_t max_nonsync_total; /* sum of "{n+}" sizes in one logical line; 0 = no own limit */
    unsigned max_depth;         /* parenthesis nesting */
    int literal8;               /* 1: "~{n}" accepted (BINARY negotiated) */
} pc_imap_tok_cfg;

/* Safe defaults. Client: max_line 8 KiB, max_literal 50 MiB, LITERAL- (4096) with at most
 * 64 KiB of non-sync literal bytes per command, depth 64, no literal8. Server: max_line 64 KiB,
 * max_literal 50 MiB, no non-sync literals, depth 64, no literal8. */
void pc_imap_tok_cfg_default(pc_imap_tok_cfg *cfg, int server);

/* The tokenizer. Fixed size; the fields are private. */
typedef struct pc_imap_tok {
    pc_imap_tok_cfg cfg;
    int state;
    int pending;           /* event owed before scanning goes on (LITERAL, LINE_END) */
    int err;               /* sticky error, 0 if none */
    int resumable;         /* err is a refused synchronising literal */
    int phase;             /* server line head classification */
    int first;             /* the next TEXT starts its logical line */
    unsigned char prev;    /* previous byte outside quotes (0 at a line start) */
    unsigned char wlen;    /* bytes of word[] */
    char word[8];          /* second token of a server line, to spot a status word */
    unsigned depth;        /* open parentheses */
    unsigned ndigits;      /* digits in the announcement being read */
    unsigned lit_flags;    /* of the announcement being read / the current literal */
    uint64_t lit_size;     /* announced size (valid unless it overflowed: lit_flags) */
    uint64_t lit_left;     /* literal content still to come */
    uint64_t nonsync_line; /* sum of non-sync literal sizes in this line */
    size_t line_len;       /* line text already handed out in TEXT / LINE_END events */
    size_t scan;           /* bytes at the start of the input already examined */
} pc_imap_tok;

typedef struct pc_imap_ev {
    int type;           /* same as the return value of pc_imap_tok_next() */
    size_t consumed;    /* bytes to drop from the front of the input before the next call */
    pc_slice data;      /* TEXT, LITERAL_DATA, LINE_END: the event's bytes (data.p is the input
                           pointer itself). Errors: the segment examined so far, the offending
                           byte included (for a log line, through the sanitiser). */
    int first;          /* TEXT: the first segment of its logical line */
    unsigned lit_flags; /* LITERAL, LITERAL_TOO_BIG, BAD_LITERAL: PC_IMAP_LIT_* */
    uint64_t lit_size;  /* LITERAL, LITERAL_TOO_BIG: the announced size (UINT64_MAX when it does
                           not fit 64 bits) */
    uint64_t lit_left;  /* LITERAL_DATA: content bytes still to come after this event */
    unsigned depth;     /* LITERAL: open parentheses around it ("* 1 FETCH (BODY[] {5}": 1) */
} pc_imap_ev;

/* Starts a stream; cfg is copied. */
void pc_imap_tok_init(pc_imap_tok *t, const pc_imap_tok_cfg *cfg);

/* 1 when nothing of the current logical line has been handed out yet: the stream stands between
 * two lines, where a proxy may insert a line of its own. */
int pc_imap_tok_between_lines(const pc_imap_tok *t);

/* Returns the next event for the input in[0..n) (borrowed for the call; the returned slices point
 * into it). Contract: after an event, the next call's input starts at in + ev->consumed; after
 * NEED_MORE, it starts with the same bytes again, possibly followed by more. An error is returned
 * again by every later call. */
int pc_imap_tok_next(pc_imap_tok *t, const char *in, size_t n, pc_imap_ev *ev);

/* After PC_IMAP_E_LITERAL_TOO_BIG on a synchronising client literal the client will not send the
 * content if it is told NO/BAD instead of "+": the caller drops ev->data.n bytes (the line text
 * through the announcement), answers, and calls this to start the next line. Returns 0, or -1 (and
 * changes nothing) after any other error, where the peer's next bytes cannot be framed. */
int pc_imap_tok_resume(pc_imap_tok *t);

/* ---- line heads: pure functions over one line's text (or the first TEXT of a line) ---------- */

/* Case-insensitive comparison of a slice with a NUL-terminated ASCII word. */
int pc_imap_word_is(pc_slice s, const char *word);

typedef struct pc_imap_cmd_head {
    pc_slice tag;
    pc_slice name; /* command name as sent ("uid", "FETCH") */
    pc_slice sub;  /* after UID: the sub-command; empty otherwise */
    pc_slice args; /* the rest after name (and sub) and one SP; may be empty */
} pc_imap_cmd_head;

/* Splits "tag SP name [SP sub] [SP args]". A trailing CRLF is ignored. Returns PC_OK, or
 * PC_INVALID for a missing or malformed tag / name, or UID without a sub-command. */
int pc_imap_cmd_split(const char *line, size_t n, pc_imap_cmd_head *h);

enum { PC_IMAP_RESP_UNTAGGED = 1, PC_IMAP_RESP_TAGGED, PC_IMAP_RESP_CONTINUE };
enum {
    PC_IMAP_ST_NONE = 0, /* not a status response ("* 3 EXISTS", "* CAPABILITY ...", "+ ...") */
    PC_IMAP_ST_OK,
    PC_IMAP_ST_NO,
    PC_IMAP_ST_BAD,
    PC_IMAP_ST_BYE,
    PC_IMAP_ST_PREAUTH,
};

typedef struct pc_imap_resp_head {
    int kind;           /* PC_IMAP_RESP_* */
    int status;         /* PC_IMAP_ST_* */
    pc_slice tag;       /* "*", "+" or the tag */
    pc_slice number;    /* "* 12 EXISTS": "12"; empty otherwise */
    pc_slice name;      /* the status word, or the data response name ("FETCH", "LIST") */
    pc_slice code;      /* status / continuation: the whole "[...]" content; empty if none */
    pc_slice code_name; /* its first atom ("CAPABILITY", "TOOBIG") */
    pc_slice text;      /* status / continuation: text after the code; data: the rest after name */
} pc_imap_resp_head;

/* Splits a response line. A trailing CRLF is ignored. Returns PC_OK or PC_INVALID (no tag, tagged
 * line without OK/NO/BAD, an unclosed '[', a number without a name). */
int pc_imap_resp_split(const char *line, size_t n, pc_imap_resp_head *h);

/* ---- FETCH items carrying message content --------------------------------------------------- */

enum {
    PC_IMAP_ITEM_NONE = 0, /* the literal is not the value of an item ("ENVELOPE ({5}", quoted) */
    PC_IMAP_ITEM_OTHER,    /* an item that does not carry message content */
    PC_IMAP_ITEM_MESSAGE,  /* the whole message: BODY[], BODY.PEEK[], BINARY[], RFC822 */
    PC_IMAP_ITEM_PART,     /* a section or a partial: BODY[2], BODY[]<0>, BODY[HEADER],
                              RFC822.HEADER, RFC822.TEXT, BINARY[1] */
};

/* Given the TEXT segment of a FETCH response that ends in a literal announcement (or any text
 * ending in SP just before one), finds the item the literal is the value of, *item being its
 * name as sent ("BODY[HEADER.FIELDS (FROM)]"), and classifies it. Only the segment is looked at:
 * the caller checks that the line is "* n FETCH" and that ev->depth of the LITERAL is 1. */
int pc_imap_fetch_item(const char *text, size_t n, pc_slice *item);

/* Scans a TEXT segment of a FETCH response (upstream input: hostile) for "UID n" and
 * "RFC822.SIZE n" at parenthesis depth 1, outside quoted strings and section brackets; *depth
 * carries the depth from one segment to the next (start at 0 before "(" of the item list). Every
 * output may be NULL: uid, size (values, up to 19 digits read), others (count of other items at
 * depth 1, literal announcements not counted), size_at / size_len (where the digits of
 * RFC822.SIZE are in p, for rewriting; size_len 0 when there is none). */
void pc_imap_fetch_scan(const char *p, size_t n, int *depth, uint32_t *uid, uint64_t *size,
                        int *others, size_t *size_at, size_t *size_len);

#endif
