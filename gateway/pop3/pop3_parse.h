/* pop3_parse.h — POP3 client commands and upstream responses (RFC 1939, 2449, 2595, 3206, 5034).
 * Defends against CR/NUL command injection, bad numbers, oversize lines/bodies, body smuggling. */

/* Pure functions over the caller's buffer; slices point into that buffer (borrowed).
 *
 * Client side: a command line is framed with pc_line_find() (parse/line.h: a line ends at CRLF
 * and nowhere else, a bare LF is reported) with max = PC_POP3_CMD_MAX, or a larger limit such as
 * PC_POP3_AUTH_LINE_MAX for SASL continuation lines; then pc_pop3_cmd_parse() checks it against the
 * verb table. Upstream side: pc_pop3_resp_parse() reads one status line ("+OK", "-ERR" or the SASL
 * "+ " continuation); after a "+OK" to a verb for which pc_pop3_multiline() is true, a pc_pop3_body
 * reads the multi-line body (dot-unstuffed, ending only at CRLF "." CRLF).
 *
 * Writing a multi-line body (serving a replaced message) uses pc_stuff_* from parse/stuff.h:
 * POP3 multi-line responses use exactly the byte-stuffing of SMTP DATA (RFC 1939 §3), so there is
 * no POP3 copy of the writer. It turns bare CR/LF into CRLF and ends the body with CRLF "." CRLF.
 */
#ifndef PC_POP3_PARSE_H
#define PC_POP3_PARSE_H

#include <stdint.h>

#include "parse/data_out.h" /* pc_data_emit_fn, PC_DATA_* flags */
#include "parse/line.h"     /* pc_line_find, pc_line_result */
#include "parse/parse.h"
#include "parse/stuff.h" /* the dot-stuffing writer */

/* ---- limits (STYLE.md habit 5: the caller makes them configurable and passes them in) ------- */

#define PC_POP3_CMD_MAX 255         /* RFC 2449 §4: a command line, CRLF included */
#define PC_POP3_AUTH_LINE_MAX 12288 /* suggested limit for SASL client lines, CRLF included */
#define PC_POP3_RESP_MAX 512        /* RFC 2449 §4: a status line, CRLF included */
#define PC_POP3_NUM_MAX 2147483647u /* largest message number / line count accepted */

/* ---- commands ------------------------------------------------------------------------------- */

typedef enum {
    PC_POP3_UNKNOWN = 0,
    PC_POP3_USER,
    PC_POP3_PASS,
    PC_POP3_APOP,
    PC_POP3_AUTH,
    PC_POP3_STLS,
    PC_POP3_CAPA,
    PC_POP3_QUIT,
    PC_POP3_STAT,
    PC_POP3_LIST,
    PC_POP3_UIDL,
    PC_POP3_RETR,
    PC_POP3_TOP,
    PC_POP3_DELE,
    PC_POP3_NOOP,
    PC_POP3_RSET,
    PC_POP3_VERB_COUNT
} pc_pop3_verb;

typedef struct pc_pop3_cmd {
    pc_pop3_verb verb;
    size_t nargs;    /* 0..2 */
    pc_slice arg[2]; /* unused slots are {NULL, 0} */
    uint32_t num[2]; /* the decoded numbers of LIST/UIDL/RETR/DELE/TOP arguments, else 0 */
} pc_pop3_cmd;

typedef enum {
    PC_POP3_E_OK = 0,
    PC_POP3_E_UNKNOWN = -1, /* verb not in the table (also: empty line, leading space) */
    PC_POP3_E_SYNTAX = -2,  /* wrong number or shape of arguments */
    PC_POP3_E_NUL = -3,     /* a NUL byte anywhere in the line */
    PC_POP3_E_CTL = -4,     /* another control byte (CR, TAB, DEL...) anywhere in the line */
    PC_POP3_E_8BIT = -5,    /* a byte >= 0x80 outside a USER/PASS argument */
} pc_pop3_err;

/* Parses one command line (without its CRLF). Slices in *cmd point into line (borrowed).
 * Verbs are case-insensitive; keyword and arguments are separated by exactly one SP, trailing SPs
 * are ignored except for USER and PASS, whose argument is the rest of the line as sent (spaces
 * included, 8-bit allowed). Arguments per verb:
 *   STLS CAPA QUIT STAT NOOP RSET  none
 *   LIST UIDL                      [msg]
 *   RETR DELE                      msg
 *   TOP                            msg lines      (lines may be 0)
 *   USER PASS                      rest of line, not empty
 *   APOP                           name digest    (recognised so the caller can refuse it)
 *   AUTH                           mechanism [initial-response]  (RFC 5034; mechanism: 1-20 of
 *                                  A-Z a-z 0-9 - _; initial response: base64, or "=" for empty)
 * Numbers are decimal without sign or leading zero, msg in 1..PC_POP3_NUM_MAX, lines in
 * 0..PC_POP3_NUM_MAX. NUL and control bytes are refused everywhere, 8-bit bytes outside USER/PASS.
 * On error *cmd still holds the verb when it was recognised. */
pc_pop3_err pc_pop3_cmd_parse(const char *line, size_t len, pc_pop3_cmd *cmd);

/* 1 if a "+OK" answer to verb with nargs arguments is multi-line (CAPA; LIST and UIDL without an
 * argument; RETR; TOP), 0 if it is a single line. "-ERR" is always a single line. AUTH is single
 * line too but may be preceded by "+ " continuations (pc_pop3_resp_parse reports them). */
int pc_pop3_multiline(pc_pop3_verb verb, size_t nargs);

/* The verb's canonical name ("RETR"), "UNKNOWN" for anything else. */
const char *pc_pop3_verb_name(pc_pop3_verb verb);

/* Checks strict base64 (RFC 4648 alphabet, length a multiple of 4, '=' only as final padding).
 * The empty string is valid. Returns 0 or -1. */
int pc_pop3_base64_valid(const char *p, size_t n);

typedef enum {
    PC_POP3_SASL_DATA = 0,    /* base64 (possibly empty) */
    PC_POP3_SASL_CANCEL = 1,  /* "*": the client aborts the exchange (RFC 5034 §4) */
    PC_POP3_SASL_INVALID = -1 /* anything else */
} pc_pop3_sasl_line;

/* Classifies a client line (without CRLF) sent during an AUTH exchange. */
pc_pop3_sasl_line pc_pop3_sasl_line_parse(const char *line, size_t len);

/* ---- SASL mechanisms and CAPA --------------------------------------------------------------- */

enum {
    PC_POP3_MECH_PLAIN = 1u << 0,
    PC_POP3_MECH_LOGIN = 1u << 1,
    PC_POP3_MECH_CRAM_MD5 = 1u << 2,
    PC_POP3_MECH_DIGEST_MD5 = 1u << 3,
    PC_POP3_MECH_SCRAM_SHA_1 = 1u << 4,
    PC_POP3_MECH_SCRAM_SHA_1_PLUS = 1u << 5,
    PC_POP3_MECH_SCRAM_SHA_256 = 1u << 6,
    PC_POP3_MECH_SCRAM_SHA_256_PLUS = 1u << 7,
    PC_POP3_MECH_XOAUTH2 = 1u << 8,
    PC_POP3_MECH_OAUTHBEARER = 1u << 9,
    PC_POP3_MECH_EXTERNAL = 1u << 10,
    PC_POP3_MECH_GSSAPI = 1u << 11,
    PC_POP3_MECH_NTLM = 1u << 12,
    PC_POP3_MECH_ANONYMOUS = 1u << 13,
};

/* The PC_POP3_MECH_ bit of a mechanism name (case-insensitive), 0 if it is not one of those. */
unsigned pc_pop3_mech_lookup(const char *p, size_t n);

enum {
    PC_POP3_CAP_TOP = 1u << 0,
    PC_POP3_CAP_UIDL = 1u << 1,
    PC_POP3_CAP_USER = 1u << 2,
    PC_POP3_CAP_SASL = 1u << 3,
    PC_POP3_CAP_STLS = 1u << 4,
    PC_POP3_CAP_PIPELINING = 1u << 5,
    PC_POP3_CAP_RESP_CODES = 1u << 6,
    PC_POP3_CAP_AUTH_RESP_CODE = 1u << 7,
    PC_POP3_CAP_EXPIRE = 1u << 8,
    PC_POP3_CAP_LOGIN_DELAY = 1u << 9,
    PC_POP3_CAP_IMPLEMENTATION = 1u << 10,
};

#define PC_POP3_EXPIRE_NEVER (-1L)

typedef struct pc_pop3_capa {
    unsigned caps;        /* PC_POP3_CAP_ bits */
    unsigned mechs;       /* PC_POP3_MECH_ bits from SASL lines */
    unsigned other_mechs; /* SASL mechanisms not in the PC_POP3_MECH_ list */
    unsigned other_caps;  /* capability lines with an unknown tag (ignored) */
    unsigned bad_lines;   /* malformed lines (ignored) */
    long expire;          /* EXPIRE days, PC_POP3_EXPIRE_NEVER; 0 when absent */
    int expire_user;      /* EXPIRE ... USER: the value may differ after login */
    long login_delay;     /* LOGIN-DELAY seconds; 0 when absent */
    int login_delay_user;
} pc_pop3_capa;

void pc_pop3_capa_init(pc_pop3_capa *c);

/* Adds one capability line (without CRLF) to *c. Tags are case-insensitive; unknown tags are
 * counted in other_caps. Returns 0, or -1 for a malformed line (counted in bad_lines): empty,
 * leading or double space (trailing spaces are ignored), a control or 8-bit byte, a bad
 * EXPIRE/LOGIN-DELAY value, a bad mechanism name. */
int pc_pop3_capa_line(pc_pop3_capa *c, const char *line, size_t len);

/* Parses a whole CAPA body as delivered by pc_pop3_body (dot-unstuffed, lines ending in CRLF; a
 * final line without CRLF is parsed too; a bare LF makes its line malformed). Returns 0, or -1 if
 * any line was malformed (the others are still taken). */
int pc_pop3_capa_parse(pc_pop3_capa *c, const char *body, size_t len);

/* ---- responses ------------------------------------------------------------------------------ */

typedef enum {
    PC_POP3_RESP_OK = 1,   /* "+OK" */
    PC_POP3_RESP_ERR = 2,  /* "-ERR" */
    PC_POP3_RESP_CONT = 3, /* "+ " base64: a SASL challenge (RFC 5034) */
} pc_pop3_status;

typedef struct pc_pop3_resp {
    pc_pop3_status status;
    pc_slice code; /* RFC 2449 §8 response code without its brackets ("SYS/TEMP"), else empty */
    pc_slice text; /* after the indicator, one SP and the code with its SP; CONT: the base64 */
    pc_slice line; /* the whole line without CRLF */
} pc_pop3_resp;

/* Parses the status line at the start of buf[0..len). max is the longest line accepted, CRLF
 * included (PC_POP3_RESP_MAX; more during AUTH, where challenges can be long). Returns:
 *   PC_OK        *r filled, *consumed = bytes up to and including the LF
 *   PC_NEED_MORE no CRLF yet and fewer than max bytes
 *   PC_TOO_LONG  max bytes without a line end
 *   PC_INVALID   a bare LF (*consumed set), a NUL or CR inside the line, an indicator other than
 *                "+OK", "-ERR" (upper case, RFC 1939 §3) or "+", not followed by SP or the end,
 *                or a continuation that is not base64 (*consumed set when a line was found)
 * A '[' that does not open a well-formed code followed by SP or the line end is ordinary text: a
 * server without RESP-CODES may say anything. Whether to trust a code is the caller's choice. */
int pc_pop3_resp_parse(const char *buf, size_t len, size_t max, pc_pop3_resp *r, size_t *consumed);

/* ---- multi-line body reader ----------------------------------------------------------------- */

/* Streaming reader of a multi-line body (after its "+OK" line). Input may be split anywhere.
 * Content is delivered dot-unstuffed and otherwise byte for byte: the CRLF before the final "."
 * belongs to the content, the ".\r\n" does not. Only CRLF "." CRLF ends the body, and only a real
 * CRLF starts a line (for unstuffing and for the end): after a bare LF or bare CR the next bytes
 * are plain content. Flags (PC_DATA_* from parse/data_out.h):
 *   PC_DATA_BARE_LF, PC_DATA_BARE_CR  seen (passed as-is), also the line "." ended by them
 *   PC_DATA_NUL, PC_DATA_8BIT         seen
 *   PC_DATA_LONG_LINE                 a line (bytes other than CR since the last LF, plus 2) >
 * max_line PC_DATA_TOO_BIG                   more than max_size content bytes: the first max_size
 * were emitted, the rest is consumed up to the end and dropped */
typedef struct pc_pop3_body {
    int state;
    unsigned flags;
    size_t max_line; /* 0 = no limit */
    size_t max_size; /* 0 = no limit */
    size_t line_len; /* content bytes other than CR since the last LF */
    size_t size;     /* content bytes counted (also past max_size) */
} pc_pop3_body;

void pc_pop3_body_init(pc_pop3_body *b, size_t max_line, size_t max_size);

/* Feeds n bytes; content goes to emit (borrowed bytes, valid during the call; never empty). Returns
 * the number of bytes consumed; *done becomes 1 once CRLF "." CRLF was consumed, and the bytes
 * after it (the next response) are not consumed. Returns (size_t)-1 if emit returned < 0. */
size_t pc_pop3_body_feed(pc_pop3_body *b, const char *in, size_t n, pc_data_emit_fn emit, void *ud,
                         int *done);

#endif
