/* rules.c — content rules: PCRE2 patterns with a score and a symbol on a named header field (its
 * decoded value), on the decoded text of the text/plain and text/html parts (in UTF-8, as GMime
 * gives them), or on the raw message; attachment rules on file-name extensions (also the last of a
 * double extension), on the declared type against the one libmagic detects in the content, and on
 * MIME anomalies GMime's parser reports (nesting too deep, a multipart without its boundary or its
 * parts, a truncated message). The names inside an archive attachment (zip, 7z, RAR, tar, ...) are
 * read from its directory or headers with libarchive (archive_names.c) and meet the same extension
 * rules; an archive inside it is not opened.
 *
 * Patterns are compiled once at start, with JIT where the machine has it, and run with match and
 * depth limits so that no pattern can run away on a hostile message (a limit hit is logged and the
 * rule does not match). The message is parsed and matched on the threadpool as a long job, from the
 * sealed bytes; the findings come back to the loop as symbols (pc_ctx_symbol) and, for a denied
 * extension, a refusal.
 *
 * Options (filters/README.md):
 *   rules: [ { symbol, score, pattern, header: FIELD | body: true | raw: true } ]
 *   attachments: { deny_extensions: [exe, ...], action: reject | score, score: N,
 *                  check_types: true, type_score: N, archives: true, max_archive_entries: N,
 *                  max_archive_size: SIZE, archive_unreadable_score: N }
 *   mime: { max_depth: N, anomaly_score: N }
 *   scan_size: the part of a message the rules look at (default 10M) */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <gmime/gmime.h>
#include <magic.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "archive_names.h"
#include "portcullis/filter.h"

#define MAX_RULES 1000
#define MAX_EXT 64
#define MAX_HITS 64
#define MATCH_LIMIT 200000
#define DEPTH_LIMIT 5000
#define ARCHIVE_MS 2000   /* the time an archive's names may take, a guard against bombs */
#define ARCHIVE_UNPACK 10 /* decompressed bytes read through: this many times max_archive_size */
#define MAX_NOTES 4

enum where { W_HEADER, W_BODY, W_RAW };

typedef struct rule {
    char symbol[80];
    double score;
    enum where where;
    const char *field; /* W_HEADER */
    pcre2_code *re;
} rule;

typedef struct rules {
    rule *v;
    size_t n;
    char ext[MAX_EXT][16];
    size_t next;
    int ext_reject;
    double ext_score;
    int check_types;
    double type_score;
    int archives;
    size_t max_archive_entries;
    size_t max_archive_size;
    double unreadable_score;
    unsigned max_depth;
    double anomaly_score;
    size_t scan_size;
} rules;

/* ---- options ------------------------------------------------------------------------------- */

static int read_rule(rules *r, const pc_opt *it, char *err, size_t errlen)
{
    static const char *const keys[] = {"symbol", "score", "pattern", "header", "body", "raw", NULL};
    if (!it || it->kind != PC_OPT_MAP)
        return pc_opt_error(err, errlen, it, "a rule is a map: { symbol, score, pattern, header }");
    if (pc_opt_check_keys(it, keys, err, errlen) < 0)
        return -1;
    rule *u = &r->v[r->n];
    memset(u, 0, sizeof(*u));
    const char *sym = pc_opt_str(it, "symbol", NULL), *pat = pc_opt_str(it, "pattern", NULL);
    if (!sym || !*sym || strlen(sym) >= sizeof(u->symbol))
        return pc_opt_error(err, errlen, it, "symbol: a name of at most 79 characters is required");
    for (const char *p = sym; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return pc_opt_error(err, errlen, pc_opt_get(it, "symbol"),
                                "symbol: letters, digits and _ only, got %.40s", sym);
    snprintf(u->symbol, sizeof(u->symbol), "%s", sym);
    u->score = 1;
    if (pc_opt_number(it, "score", -1000, 1000, &u->score, err, errlen) < 0)
        return -1;
    if (!pat || !*pat)
        return pc_opt_error(err, errlen, it, "pattern: a regular expression is required");
    int body = 0, raw = 0;
    if (pc_opt_bool(it, "body", &body, err, errlen) < 0 ||
        pc_opt_bool(it, "raw", &raw, err, errlen) < 0)
        return -1;
    u->field = pc_opt_str(it, "header", NULL);
    int kinds = (u->field != NULL) + body + raw;
    if (kinds != 1)
        return pc_opt_error(err, errlen, it, "exactly one of header: FIELD, body: true, raw: true");
    u->where = u->field ? W_HEADER : body ? W_BODY : W_RAW;
    uint32_t flags = u->where == W_RAW ? 0 : PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
    int ec;
    PCRE2_SIZE eoff;
    u->re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, flags, &ec, &eoff, NULL);
    if (!u->re) {
        PCRE2_UCHAR msg[200];
        pcre2_get_error_message(ec, msg, sizeof(msg));
        return pc_opt_error(err, errlen, pc_opt_get(it, "pattern"), "pattern: %s at offset %zu",
                            (const char *)msg, (size_t)eoff);
    }
    pcre2_jit_compile(u->re, PCRE2_JIT_COMPLETE); /* where JIT is not available, it interprets */
    r->n++;
    return 0;
}

static void rules_fini(void *self)
{
    rules *r = self;
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        pcre2_code_free(r->v[i].re);
    free(r->v);
    free(r);
}

static pthread_once_t gmime_once = PTHREAD_ONCE_INIT;
static void gmime_start(void)
{
    g_mime_init();
}

static void *rules_init(const pc_opt *o, char *err, size_t errlen)
{
    static const char *const keys[] = {"rules", "attachments", "mime", "scan_size", NULL};
    static const char *const akeys[] = {"deny_extensions",
                                        "action",
                                        "score",
                                        "check_types",
                                        "type_score",
                                        "archives",
                                        "max_archive_entries",
                                        "max_archive_size",
                                        "archive_unreadable_score",
                                        NULL};
    static const char *const mkeys[] = {"max_depth", "anomaly_score", NULL};
    static const char *const actions[] = {"score", "reject", NULL};
    if (pc_opt_check_keys(o, keys, err, errlen) < 0)
        return NULL;
    pthread_once(&gmime_once, gmime_start);
    rules *r = calloc(1, sizeof(*r));
    if (!r || !(r->v = calloc(MAX_RULES, sizeof(*r->v)))) {
        free(r);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->ext_reject = 1;
    r->ext_score = 10;
    r->type_score = 3;
    r->archives = 1;
    r->max_archive_entries = 1000;
    r->max_archive_size = 10u << 20;
    r->unreadable_score = 1;
    r->max_depth = 20;
    r->anomaly_score = 2;
    r->scan_size = 10u << 20;
    const pc_opt *seq = pc_opt_get(o, "rules"), *att = pc_opt_get(o, "attachments"),
                 *mime = pc_opt_get(o, "mime");
    if (seq && seq->kind != PC_OPT_SEQ) {
        pc_opt_error(err, errlen, seq, "rules: a list of { symbol, score, pattern, ... }");
        goto fail;
    }
    for (const pc_opt *it = seq ? seq->child : NULL; it; it = it->next) {
        if (r->n >= MAX_RULES) {
            pc_opt_error(err, errlen, it, "at most %d rules", MAX_RULES);
            goto fail;
        }
        if (read_rule(r, it, err, errlen) < 0)
            goto fail;
    }
    int act = 1;
    double depth = r->max_depth, entries = (double)r->max_archive_entries;
    if (pc_opt_size(o, "scan_size", &r->scan_size, err, errlen) < 0 ||
        pc_opt_check_keys(att, akeys, err, errlen) < 0 ||
        pc_opt_check_keys(mime, mkeys, err, errlen) < 0 ||
        pc_opt_enum(att, "action", actions, &act, err, errlen) < 0 ||
        pc_opt_number(att, "score", -1000, 1000, &r->ext_score, err, errlen) < 0 ||
        pc_opt_bool(att, "check_types", &r->check_types, err, errlen) < 0 ||
        pc_opt_number(att, "type_score", -1000, 1000, &r->type_score, err, errlen) < 0 ||
        pc_opt_bool(att, "archives", &r->archives, err, errlen) < 0 ||
        pc_opt_number(att, "max_archive_entries", 1, 100000, &entries, err, errlen) < 0 ||
        pc_opt_size(att, "max_archive_size", &r->max_archive_size, err, errlen) < 0 ||
        pc_opt_number(att, "archive_unreadable_score", -1000, 1000, &r->unreadable_score, err,
                      errlen) < 0 ||
        pc_opt_number(mime, "max_depth", 1, 100, &depth, err, errlen) < 0 ||
        pc_opt_number(mime, "anomaly_score", -1000, 1000, &r->anomaly_score, err, errlen) < 0)
        goto fail;
    r->ext_reject = act == 1;
    r->max_depth = (unsigned)depth;
    r->max_archive_entries = (size_t)entries;
    if (r->max_archive_size == 0 || r->max_archive_size > (1u << 30)) {
        pc_opt_error(err, errlen, pc_opt_get(att, "max_archive_size"),
                     "max_archive_size: from 1 byte to 1G");
        goto fail;
    }
    const pc_opt *ext = pc_opt_get(att, "deny_extensions");
    if (ext && ext->kind != PC_OPT_SEQ) {
        pc_opt_error(err, errlen, ext, "deny_extensions: a list such as [exe, scr, js]");
        goto fail;
    }
    for (const pc_opt *e = ext ? ext->child : NULL; e; e = e->next) {
        const char *v = e->kind == PC_OPT_SCALAR ? e->value : NULL;
        if (v && *v == '.')
            v++;
        if (!v || !*v || strlen(v) >= sizeof(r->ext[0]) || strchr(v, '.') || r->next >= MAX_EXT) {
            pc_opt_error(err, errlen, e, "deny_extensions: an extension such as exe (at most %d)",
                         MAX_EXT);
            goto fail;
        }
        snprintf(r->ext[r->next++], sizeof(r->ext[0]), "%s", v);
    }
    if (r->n == 0 && r->next == 0 && !r->check_types && !mime) {
        pc_opt_error(err, errlen, o, "nothing to check: give rules, attachments or mime");
        goto fail;
    }
    return r;
fail:
    rules_fini(r);
    return NULL;
}

/* ---- matching (threadpool) ----------------------------------------------------------------- */

typedef struct hit {
    const char *symbol;
    double score;
    char what[160];
} hit;

typedef struct job {
    const rules *r;
    pc_message *msg;
    pc_done_fn done;
    pcre2_match_data *md;
    pcre2_match_context *mc;
    magic_t magic;
    hit hits[MAX_HITS];
    size_t nhits;
    char matched[MAX_RULES / 8 + 1]; /* one bit per rule: a symbol once per message */
    int denied;                      /* a denied extension */
    char denied_name[160];
    char notes[MAX_NOTES][360]; /* archives not read, logged on the loop */
    size_t nnotes;
    int limit_hits;
    unsigned depth, maxdepth_seen;
    int anomaly;
    char anomaly_what[64];
} job;

static void add_hit(job *j, const char *symbol, double score, const char *what)
{
    for (size_t i = 0; i < j->nhits; i++)
        if (strcmp(j->hits[i].symbol, symbol) == 0)
            return;
    if (j->nhits >= MAX_HITS)
        return;
    hit *h = &j->hits[j->nhits++];
    h->symbol = symbol;
    h->score = score;
    snprintf(h->what, sizeof(h->what), "%s", what ? what : "");
}

static int run_re(job *j, const rule *u, const char *s, size_t n)
{
    int rc = pcre2_match(u->re, (PCRE2_SPTR)s, n, 0, 0, j->md, j->mc);
    if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT) {
        j->limit_hits++;
        return 0;
    }
    return rc >= 0;
}

static void match_where(job *j, enum where w, const char *field, const char *s, size_t n)
{
    const rules *r = j->r;
    for (size_t i = 0; i < r->n; i++) {
        const rule *u = &r->v[i];
        if (u->where != w || (j->matched[i / 8] & (1 << (i % 8))))
            continue;
        if (w == W_HEADER && strcasecmp(u->field, field) != 0)
            continue;
        if (run_re(j, u, s, n)) {
            j->matched[i / 8] |= (char)(1 << (i % 8));
            add_hit(j, u->symbol, u->score, w == W_HEADER ? field : w == W_BODY ? "body" : "raw");
        }
    }
}

/* A name's last extension, if denied; *dbl when another short one precedes it (a.pdf.exe). The
 * extension is the one Windows opens the file by (rules_name_ext: "a.exe." is a.exe). */
static int denied_ext(const rules *r, const char *name, int *dbl)
{
    size_t len, prev;
    const char *ext = rules_name_ext(name, &len, &prev);
    *dbl = 0;
    for (size_t k = 0; ext && k < r->next; k++) {
        if (strlen(r->ext[k]) == len && strncasecmp(ext, r->ext[k], len) == 0) {
            *dbl = prev > 0 && prev <= 5;
            return 1;
        }
    }
    return 0;
}

static void add_note(job *j, const char *fmt, const char *a, const char *b, const char *c)
{
    if (j->nnotes < MAX_NOTES)
        snprintf(j->notes[j->nnotes++], sizeof(j->notes[0]), fmt, a, b, c);
}

typedef struct arc_walk {
    job *j;
    const char *archive; /* its name, cleaned */
} arc_walk;

static int on_inner_name(void *ud, const char *path)
{
    arc_walk *w = ud;
    job *j = w->j;
    const char *base = rules_name_base(path);
    int dbl;
    if (!*base || !denied_ext(j->r, base, &dbl))
        return 0;
    char inner[100], what[160];
    rules_name_clean(inner, sizeof(inner), path);
    snprintf(what, sizeof(what), "%.60s: %.95s", w->archive, inner);
    add_hit(j, dbl ? "ARCHIVE_DOUBLE_EXT" : "ARCHIVE_DENIED_EXT", j->r->ext_score, what);
    if (j->r->ext_reject && !j->denied) {
        j->denied = 1;
        snprintf(j->denied_name, sizeof(j->denied_name), "%.70s in %.60s", inner, w->archive);
    }
    return 1; /* the message has its verdict: the other names are not needed */
}

/* Names that say "archive" when libarchive does not recognise the content. */
static int archive_named(const char *name)
{
    static const char *const exts[] = {"zip", "7z",  "rar", "tar", "tgz",  "txz",
                                       "cab", "lzh", "lha", "iso", "cpio", NULL};
    size_t len, prev;
    const char *ext = name ? rules_name_ext(name, &len, &prev) : NULL;
    for (size_t i = 0; ext && exts[i]; i++)
        if (strlen(exts[i]) == len && strncasecmp(ext, exts[i], len) == 0)
            return 1;
    return 0;
}

static void check_archive(job *j, const char *name, const void *data, size_t len)
{
    const rules *r = j->r;
    char an[64], format[64], why[120], what[160];
    rules_name_clean(an, sizeof(an), name ? name : "(unnamed)");
    rules_arc_limits lim = {.max_entries = r->max_archive_entries,
                            .max_unpacked = r->max_archive_size * ARCHIVE_UNPACK,
                            .max_ms = ARCHIVE_MS};
    arc_walk w = {.j = j, .archive = an};
    size_t entries;
    int encrypted;
    if (len > r->max_archive_size)
        lim.max_entries = 0; /* only to learn whether it is an archive at all */
    int rc = rules_archive_names(data, len, &lim, on_inner_name, &w, format, sizeof(format),
                                 &entries, &encrypted, why, sizeof(why));
    if (rc == RULES_ARC_FAILED && len > r->max_archive_size)
        snprintf(why, sizeof(why), "larger than max_archive_size (%zu bytes)", r->max_archive_size);
    if (rc == RULES_ARC_NOT && archive_named(name)) {
        rc = RULES_ARC_FAILED;
        snprintf(format, sizeof(format), "unknown");
        snprintf(why, sizeof(why), "not an archive libarchive reads");
    }
    if (rc == RULES_ARC_READ && encrypted && !j->denied) {
        rc = RULES_ARC_FAILED;
        snprintf(why, sizeof(why), "encrypted (the names were read, the contents cannot be)");
    }
    if (rc != RULES_ARC_FAILED)
        return;
    char clean_why[120];
    rules_name_clean(clean_why, sizeof(clean_why), why);
    add_note(j, "rules=archive-unreadable attachment=\"%s\" format=\"%s\" reason=\"%s\"", an,
             format, clean_why);
    snprintf(what, sizeof(what), "%.60s: %.90s", an, clean_why);
    add_hit(j, "ARCHIVE_UNREADABLE", r->unreadable_score, what);
}

static void check_attachment(job *j, GMimePart *part)
{
    const rules *r = j->r;
    const char *name = g_mime_part_get_filename(part);
    int dbl;
    if (name && r->next && denied_ext(r, name, &dbl)) {
        char what[160];
        snprintf(what, sizeof(what), "%.120s", name);
        add_hit(j, dbl ? "ATTACH_DOUBLE_EXT" : "ATTACH_DENIED_EXT", r->ext_score, what);
        if (r->ext_reject && !j->denied) {
            j->denied = 1;
            snprintf(j->denied_name, sizeof(j->denied_name), "%.100s", name);
        }
    }
    int archives = r->archives && r->next && !j->denied;
    if (!(r->check_types && j->magic) && !archives)
        return;
    GMimeDataWrapper *dw = g_mime_part_get_content(part);
    if (!dw)
        return;
    GMimeStream *out = g_mime_stream_mem_new();
    g_mime_data_wrapper_write_to_stream(dw, out); /* decoded */
    GByteArray *ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(out));
    if (archives && ba && ba->len)
        check_archive(j, name, ba->data, ba->len);
    if (r->check_types && j->magic && ba && ba->len) {
        const char *found = magic_buffer(j->magic, ba->data, ba->len < 65536 ? ba->len : 65536);
        GMimeContentType *ct = g_mime_object_get_content_type(GMIME_OBJECT(part));
        char *declared = ct ? g_mime_content_type_get_mime_type(ct) : NULL;
        /* an executable declared as a harmless type (a document, an image, text) is the
         * classic disguise; the generic application/octet-stream is no claim at all */
        int exec = found && (strcmp(found, "application/x-dosexec") == 0 ||
                             strcmp(found, "application/vnd.microsoft.portable-executable") == 0 ||
                             strcmp(found, "application/x-executable") == 0 ||
                             strcmp(found, "application/x-pie-executable") == 0 ||
                             strcmp(found, "application/x-sharedlib") == 0);
        if (exec && declared && strcasecmp(declared, "application/octet-stream") != 0 &&
            !strstr(declared, "dosexec") && !strstr(declared, "executable") &&
            !strstr(declared, "msdownload")) {
            char what[160];
            snprintf(what, sizeof(what), "%.60s declared %.60s", found, declared);
            add_hit(j, "ATTACH_TYPE_MISMATCH", r->type_score, what);
        }
        g_free(declared);
    }
    g_object_unref(out);
}

static void walk(job *j, GMimeObject *o, unsigned depth);

static void walk_part(job *j, GMimeObject *o, unsigned depth)
{
    if (GMIME_IS_MULTIPART(o)) {
        GMimeMultipart *mp = GMIME_MULTIPART(o);
        int n = g_mime_multipart_get_count(mp);
        for (int i = 0; i < n && i < 1000; i++)
            walk(j, g_mime_multipart_get_part(mp, i), depth + 1);
        return;
    }
    if (GMIME_IS_MESSAGE_PART(o)) {
        GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
        if (inner && inner->mime_part)
            walk(j, inner->mime_part, depth + 1);
        return;
    }
    if (!GMIME_IS_PART(o))
        return;
    GMimePart *part = GMIME_PART(o);
    GMimeContentType *ct = g_mime_object_get_content_type(o);
    int attachment = g_mime_part_is_attachment(part) || g_mime_part_get_filename(part);
    if (GMIME_IS_TEXT_PART(o) && !attachment && ct &&
        (g_mime_content_type_is_type(ct, "text", "plain") ||
         g_mime_content_type_is_type(ct, "text", "html"))) {
        char *text = g_mime_text_part_get_text(GMIME_TEXT_PART(o)); /* decoded, in UTF-8 */
        if (text) {
            size_t n = strlen(text);
            match_where(j, W_BODY, NULL, text, n > j->r->scan_size ? j->r->scan_size : n);
            g_free(text);
        }
        return;
    }
    check_attachment(j, part);
}

static void walk(job *j, GMimeObject *o, unsigned depth)
{
    if (!o)
        return;
    if (depth > j->maxdepth_seen)
        j->maxdepth_seen = depth;
    if (depth > j->r->max_depth) {
        if (!j->anomaly) {
            j->anomaly = 1;
            snprintf(j->anomaly_what, sizeof(j->anomaly_what), "nesting deeper than %u",
                     j->r->max_depth);
        }
        return;
    }
    walk_part(j, o, depth);
}

static void on_warning(gint64 offset, GMimeParserWarning code, const gchar *item, gpointer ud)
{
    (void)offset;
    (void)item;
    job *j = ud;
    const char *what = NULL;
    switch (code) {
    case GMIME_WARN_MALFORMED_MULTIPART: what = "multipart without parts"; break;
    case GMIME_CRIT_MULTIPART_WITHOUT_BOUNDARY: what = "multipart without boundary"; break;
    case GMIME_CRIT_NESTING_OVERFLOW: what = "nesting overflow"; break;
    case GMIME_WARN_TRUNCATED_MESSAGE: what = "truncated message"; break;
    case GMIME_CRIT_PART_WITHOUT_HEADERS_OR_CONTENT:
        what = "part without headers or content";
        break;
    default: break;
    }
    if (what && !j->anomaly) {
        j->anomaly = 1;
        snprintf(j->anomaly_what, sizeof(j->anomaly_what), "%s", what);
    }
}

/* libmagic's database, loaded once per threadpool thread (a magic_t is not shared by threads). */
static magic_t thread_magic(void)
{
    static _Thread_local magic_t m;
    static _Thread_local int tried;
    if (!tried) {
        tried = 1;
        m = magic_open(MAGIC_MIME_TYPE | MAGIC_NO_CHECK_COMPRESS);
        if (m && magic_load(m, NULL) != 0) {
            magic_close(m);
            m = NULL;
        }
    }
    return m;
}

static void rules_work(void *arg)
{
    job *j = arg;
    size_t len;
    const char *p = pc_message_map(j->msg, &len);
    if (!p)
        return;
    if (len > j->r->scan_size)
        len = j->r->scan_size;
    j->md = pcre2_match_data_create(8, NULL);
    j->mc = pcre2_match_context_create(NULL);
    if (!j->md || !j->mc)
        goto out;
    pcre2_set_match_limit(j->mc, MATCH_LIMIT);
    pcre2_set_depth_limit(j->mc, DEPTH_LIMIT);
    match_where(j, W_RAW, NULL, p, len);
    if (j->r->check_types)
        j->magic = thread_magic();
    /* GMime reads the sealed bytes in place: the array is only lent to the stream. */
    GByteArray *ba = g_byte_array_new_take((guint8 *)p, len);
    GMimeStream *st = g_mime_stream_mem_new_with_byte_array(ba);
    g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(st), FALSE);
    GMimeParser *parser = g_mime_parser_new_with_stream(st);
    GMimeParserOptions *po = g_mime_parser_options_new();
    g_mime_parser_options_set_warning_callback(po, on_warning, j);
    GMimeMessage *m = g_mime_parser_construct_message(parser, po);
    if (m) {
        GMimeHeaderList *hl = g_mime_object_get_header_list(GMIME_OBJECT(m));
        int n = hl ? g_mime_header_list_get_count(hl) : 0;
        for (int i = 0; i < n && i < 10000; i++) {
            GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
            const char *name = g_mime_header_get_name(h), *value = g_mime_header_get_value(h);
            if (name && value)
                match_where(j, W_HEADER, name, value, strlen(value));
        }
        walk(j, m->mime_part, 1);
        g_object_unref(m);
    }
    g_mime_parser_options_free(po);
    g_object_unref(parser);
    g_object_unref(st);
    gsize lost;
    g_byte_array_steal(ba, &lost); /* the bytes are the message's: only the wrapper goes */
    g_byte_array_unref(ba);
out:
    pcre2_match_context_free(j->mc);
    pcre2_match_data_free(j->md);
}

static void rules_after(pc_filter_ctx *ctx, void *arg)
{
    job *j = arg;
    if (pc_ctx_cancelled(ctx)) {
        free(j);
        return;
    }
    for (size_t i = 0; i < j->nhits; i++) {
        pc_filter_log(ctx, 6, "rules=hit symbol=%s score=%.2f on=\"%s\"", j->hits[i].symbol,
                      j->hits[i].score, j->hits[i].what);
        pc_ctx_symbol(ctx, j->hits[i].symbol, j->hits[i].score);
    }
    if (j->anomaly) {
        pc_filter_log(ctx, 6, "rules=hit symbol=MIME_ANOMALY what=\"%s\"", j->anomaly_what);
        pc_ctx_symbol(ctx, "MIME_ANOMALY", j->r->anomaly_score);
    }
    for (size_t i = 0; i < j->nnotes; i++)
        pc_filter_log(ctx, 5, "%s", j->notes[i]);
    if (j->limit_hits)
        pc_filter_log(ctx, 4, "rules=match-limit count=%d (those rules did not match)",
                      j->limit_hits);
    pc_verdict v = {.action = j->nhits || j->anomaly ? PC_TAG : PC_CONTINUE};
    char text[200];
    if (j->denied) {
        snprintf(text, sizeof(text), "Attachment type not allowed: %s", j->denied_name);
        v = (pc_verdict){.action = PC_REJECT,
                         .code = 554,
                         .enhanced = "5.7.1",
                         .text = text,
                         .symbol = "ATTACH_DENIED"};
    }
    pc_done_fn done = j->done;
    free(j);
    done(ctx, &v);
}

static void rules_run(void *self, pc_hook hook, pc_filter_ctx *ctx, pc_done_fn done)
{
    pc_verdict cont = {.action = PC_CONTINUE};
    pc_message *m = pc_ctx_message(ctx);
    if ((hook != PC_HOOK_MESSAGE && hook != PC_HOOK_RETRIEVE) || !m) {
        done(ctx, &cont);
        return;
    }
    job *j = calloc(1, sizeof(*j));
    if (!j) {
        done(ctx, &(pc_verdict){.action = PC_TEMPFAIL});
        return;
    }
    j->r = self;
    j->msg = m;
    j->done = done;
    if (pc_filter_offload_long(ctx, rules_work, rules_after, j) < 0) {
        free(j);
        done(ctx, &(pc_verdict){.action = PC_TEMPFAIL});
    }
}

const pc_filter pcf_rules_filter = {
    .abi = PC_FILTER_ABI,
    .name = "rules",
    .hooks = PC_HOOK_BIT(PC_HOOK_MESSAGE) | PC_HOOK_BIT(PC_HOOK_RETRIEVE),
    .init = rules_init,
    .fini = rules_fini,
    .run = rules_run,
};
