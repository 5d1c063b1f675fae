/* report.c — Authentication-Results and the spam headers of a message (see report.h). */
#include "core/report.h"
#include "parse/authres.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HDR_MAX 8192 /* the longest header the gateway writes; symbols past it are left out */

static int claims_ours(const char *value, const pc_report_cfg *cfg)
{
    char id[256];
    if (pc_authres_id(value, id, sizeof(id)) < 0)
        return 0;
    if (cfg->authserv_id && strcasecmp(id, cfg->authserv_id) == 0)
        return 1;
    for (size_t i = 0; cfg->drop && i < cfg->drop->n; i++)
        if (strcasecmp(id, cfg->drop->v[i]) == 0)
            return 1;
    return 0;
}

/* Removes every field named name for which drop() says yes (NULL: all of them). */
static int remove_fields(pc_message *m, const char *name, const pc_report_cfg *cfg,
                         int (*drop)(const char *, const pc_report_cfg *))
{
    int removed = 0;
    char value[1024];
    size_t i = 0;
    for (int guard = 0; guard < 10000; guard++) {
        if (pc_message_header(m, name, i, value, sizeof(value)) < 0)
            break;
        if (!drop || drop(value, cfg)) {
            if (pc_message_remove_header(m, name, i) < 0)
                break;
            removed++;
        } else {
            i++;
        }
    }
    return removed;
}

/* Appends text to b, folding before it when the line would pass 78 columns. */
static void append(char *b, size_t cap, size_t *len, size_t *col, const char *text, int sep)
{
    size_t t = strlen(text);
    if (*len + t + 4 >= cap)
        return;
    if (sep) {
        if (*col + 1 + t > 78) {
            memcpy(b + *len, "\r\n\t", 3);
            *len += 3;
            *col = 8;
        } else {
            b[(*len)++] = ' ';
            (*col)++;
        }
    }
    memcpy(b + *len, text, t);
    *len += t;
    *col += t;
    b[*len] = '\0';
}

int pc_report_write(pc_message *m, const pc_results *r, const pc_report_cfg *cfg)
{
    int removed = remove_fields(m, "Authentication-Results", cfg, claims_ours);
    int rc = 0;
    char *b = malloc(HDR_MAX);
    if (!b)
        return -1;
    if (r->nauthres && cfg->authserv_id) {
        size_t len = 0, col = strlen("Authentication-Results: ");
        b[0] = '\0';
        char id[300];
        snprintf(id, sizeof(id), "%s;", cfg->authserv_id);
        append(b, HDR_MAX, &len, &col, id, 0);
        for (size_t i = 0; i < r->nauthres; i++) {
            char res[1000];
            snprintf(res, sizeof(res), "%s%s", r->authres[i], i + 1 < r->nauthres ? ";" : "");
            /* each method result on its own line, as most receivers write it */
            col = 79;
            append(b, HDR_MAX, &len, &col, res, 1);
        }
        if (pc_message_add_header(m, "Authentication-Results", b) < 0)
            rc = -1;
    }
    const pc_scores_cfg *sc = cfg->scores;
    int scored = sc && (sc->tag || sc->quarantine || sc->reject);
    if (scored || r->nsymbols) {
        removed += remove_fields(m, "X-Spam-Score", cfg, NULL);
        removed += remove_fields(m, "X-Spam-Status", cfg, NULL);
        removed += remove_fields(m, "X-Spam-Flag", cfg, NULL);
        int spam = sc && sc->tag && r->score >= sc->tag;
        char num[64];
        snprintf(num, sizeof(num), "%.2f", r->score);
        size_t len = 0, col = strlen("X-Spam-Status: ");
        b[0] = '\0';
        char head[128];
        if (sc && sc->tag)
            snprintf(head, sizeof(head), "%s, score=%.2f required=%.2f", spam ? "Yes" : "No",
                     r->score, sc->tag);
        else
            snprintf(head, sizeof(head), "%s, score=%.2f", spam ? "Yes" : "No", r->score);
        append(b, HDR_MAX, &len, &col, head, 0);
        if (r->nsymbols) {
            append(b, HDR_MAX, &len, &col, "tests=", 1);
            for (size_t i = 0; i < r->nsymbols; i++) {
                char t[128];
                snprintf(t, sizeof(t), "%.80s(%.2f)%s", r->symbols[i],
                         r->symscores ? r->symscores[i] : 0.0, i + 1 < r->nsymbols ? "," : "");
                append(b, HDR_MAX, &len, &col, t, i > 0);
            }
        }
        if (pc_message_add_header(m, "X-Spam-Status", b) < 0 ||
            pc_message_add_header(m, "X-Spam-Score", num) < 0 ||
            (spam && pc_message_add_header(m, "X-Spam-Flag", "YES") < 0))
            rc = -1;
    }
    free(b);
    return rc < 0 ? -1 : removed;
}
