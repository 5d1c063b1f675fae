/* smtp_parse.h — SMTP command-line framing and command parsing (RFC 5321, 1870, 6152, 6531, 4954).
 * Pure functions over the caller's buffer. A line ends at CRLF and nowhere else: a bare LF or CR in
 * a command line is reported, never silently accepted (the precondition of SMTP smuggling). */
#ifndef PC_SMTP_PARSE_H
#define PC_SMTP_PARSE_H

#include "parse/line.h"
#include "parse/parse.h"

typedef enum {
    PC_SMTP_UNKNOWN = 0,
    PC_SMTP_HELO,
    PC_SMTP_EHLO,
    PC_SMTP_MAIL,
    PC_SMTP_RCPT,
    PC_SMTP_DATA,
    PC_SMTP_RSET,
    PC_SMTP_NOOP,
    PC_SMTP_QUIT,
    PC_SMTP_VRFY,
    PC_SMTP_EXPN,
    PC_SMTP_HELP,
    PC_SMTP_STARTTLS,
    PC_SMTP_AUTH,
    PC_SMTP_BDAT,
    PC_SMTP_XCLIENT,
    PC_SMTP_VERB_COUNT
} pc_smtp_verb;

#define PC_SMTP_MAX_PARAMS 16

typedef struct pc_smtp_param {
    pc_slice key;   /* "SIZE" (case as sent) */
    pc_slice value; /* empty (p may be NULL) when the parameter has no '=' */
} pc_smtp_param;

typedef struct pc_smtp_cmd {
    pc_smtp_verb verb;
    pc_slice arg; /* everything after the verb and one space, trailing spaces trimmed */
    /* MAIL/RCPT only: */
    pc_slice path;   /* the mailbox without '<' '>' and without a source route; empty = "<>" */
    pc_slice domain; /* the part of path after the last '@'; empty when none */
    size_t nparams;
    pc_smtp_param params[PC_SMTP_MAX_PARAMS];
} pc_smtp_cmd;

typedef enum {
    PC_SMTP_E_OK = 0,
    PC_SMTP_E_UNKNOWN = -1, /* 500 5.5.1 command unrecognized */
    PC_SMTP_E_SYNTAX = -2,  /* 501 5.5.4 syntax error in parameters or arguments */
    PC_SMTP_E_NUL = -3,     /* 500 5.5.2 NUL byte in command */
    PC_SMTP_E_8BIT = -4,    /* 500 5.5.2 8-bit byte in command without SMTPUTF8 */
    PC_SMTP_E_ADDRESS = -5, /* 501 5.1.7 (MAIL) / 501 5.1.3 (RCPT) bad address syntax */
    PC_SMTP_E_PARAMS = -6,  /* 555 5.5.4 malformed or too many ESMTP parameters */
} pc_smtp_err;

/* Parses one command line (without CRLF). utf8 != 0 allows UTF-8 in MAIL/RCPT addresses (the
 * client gave SMTPUTF8 or the caller re-parses after seeing it); 8-bit bytes elsewhere are refused.
 * Slices in *cmd point into line. Verbs are case-insensitive. MAIL requires "FROM:" and RCPT "TO:"
 * (no space before the '<' is required, one is tolerated as many clients send it). Addresses follow
 * RFC 5321 §4.1.2 strictly: dot-string or quoted-string local part, domain of LDH labels or an
 * address literal; "<>" only for MAIL; "<postmaster>" accepted for RCPT. */
pc_smtp_err pc_smtp_cmd_parse(const char *line, size_t len, int utf8, pc_smtp_cmd *cmd);

/* Looks up a parameter by name (case-insensitive). Returns its index or -1. */
int pc_smtp_param_find(const pc_smtp_cmd *cmd, const char *name);

/* Validates a HELO/EHLO argument: a domain or an address literal. Returns 0 or -1. */
int pc_smtp_helo_valid(const char *p, size_t n);

/* The verb's canonical name ("MAIL"). */
const char *pc_smtp_verb_name(pc_smtp_verb v);

#endif
