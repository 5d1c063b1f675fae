/* qmeta.h — the metadata file of a quarantined message: its envelope (sender, recipients, client,
 * HELO, listener), when it was taken, the verdict, score, symbols and reason, and the releases
 * recorded since. A line-based format, one "key value" per line, values without CR, LF or NUL:
 *
 *     portcullis-quarantine 1
 *     id 0123456789abcdef0123456789abcdef
 *     time 1767225600
 *     listener in
 *     client 192.0.2.1
 *     helo mx.example.net
 *     from sender@example.net          (the value is empty for the null sender)
 *     rcpt alice@example.com           (one line per recipient, in order)
 *     action quarantine
 *     score 7.50
 *     symbols SPF_FAIL,RULE_X
 *     reason the filter's text
 *     size 12345
 *     body 8bitmime                    (only when MAIL had BODY=8BITMIME; absent: 7bit)
 *     smtputf8 yes                     (only when MAIL had SMTPUTF8)
 *     released 1767229200 uid=0 user=root rcpt=alice@example.com
 *     unreleased 1767229201 rcpt=alice@example.com   (the release failed: it may be tried again)
 *
 * A release line is added for every release, before the message is sent (rcpt=* for all), an
 * unreleased line when the upstream then refused it; a recipient's last such line says whether it
 * is released. The parser is pure (no I/O) and bounded: PC_QMETA_FILE_MAX bytes, lines of at most
 * PC_QMETA_LINE_MAX, PC_QMETA_RCPTS recipients; it is a fuzz target (tests/fuzz/fuzz_qmeta.c). */
#ifndef PC_QMETA_H
#define PC_QMETA_H

#include <stddef.h>
#include <stdint.h>

#define PC_QMETA_FILE_MAX (1024 * 1024)
#define PC_QMETA_LINE_MAX 2048
#define PC_QMETA_RCPTS 1000
#define PC_QMETA_ID_LEN 32 /* hex digits */

typedef struct pc_qrcpt {
    char *addr;   /* owned */
    int released; /* a release line names it */
} pc_qrcpt;

typedef struct pc_qmeta {
    char id[PC_QMETA_ID_LEN + 1];
    long long time; /* when it was quarantined, Unix seconds */
    char listener[128];
    char client[64];
    char helo[256];
    char from[512];
    char action[32];
    double score;
    char symbols[1024];
    char reason[512];
    unsigned long long size;
    int body8bit;    /* MAIL had BODY=8BITMIME: the release sends it again */
    int smtputf8;    /* MAIL had SMTPUTF8: likewise */
    pc_qrcpt *rcpts; /* owned, nrcpts of them */
    size_t nrcpts;
    size_t nreleases; /* release lines seen */
    char *history;    /* owned: the released/unreleased lines as read, written back as they are */
    size_t historylen;
} pc_qmeta;

/* 1 if s is an ID: exactly 32 lower-case hex digits. */
int pc_qmeta_id_ok(const char *s);
/* Parses a metadata file's bytes (borrowed) into m (zeroed first; free with pc_qmeta_free even on
 * error). 0, or -1 with a reason in err. */
int pc_qmeta_parse(pc_qmeta *m, const char *p, size_t n, char *err, size_t errlen);
/* Writes m as a metadata file into a new buffer (*out, owned by the caller, free()), values
 * sanitised (CR, LF, NUL and controls mapped). 0 or -1 (no memory). */
int pc_qmeta_format(const pc_qmeta *m, char **out, size_t *outlen);
/* Adds a recipient (copied). 0 or -1. */
int pc_qmeta_add_rcpt(pc_qmeta *m, const char *addr);
/* The release line (with its LF) for now, uid, user and the recipient (NULL: all), sanitised,
 * into out. With user NULL, the line that takes a release back ("unreleased"). */
void pc_qmeta_release_line(char *out, size_t outlen, long long now, unsigned uid, const char *user,
                           const char *rcpt);
/* Adds a release line (pc_qmeta_release_line's) to m's history and applies it. 0 or -1. */
int pc_qmeta_add_history(pc_qmeta *m, const char *line);
/* 1 when every recipient is released. */
int pc_qmeta_all_released(const pc_qmeta *m);
void pc_qmeta_free(pc_qmeta *m);

#endif
