/* tree.c — YAML (libyaml) → the generic pc_opt tree, every node with its file and line, and the
 * arena every node and string of a configuration lives in. Defends against deep nesting (a fixed
 * depth, never recursion), aliases and anchors (refused), duplicate keys and oversize input. */
#include "config/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "config/loader.h"

#define MAX_DEPTH 64 /* YAML nesting; deeper is an error, never a deep recursion */

/* ---- arena ---------------------------------------------------------------------------------- */

struct pc_arena {
    struct chunk *head;
};

struct chunk {
    struct chunk *next;
    size_t cap, used;
    alignas(max_align_t) unsigned char data[];
};

#define CHUNK_SIZE 16384

pc_arena *pc_arena_new(void)
{
    return calloc(1, sizeof(pc_arena));
}

void *pc_arena_alloc(pc_arena *a, size_t n)
{
    const size_t al = alignof(max_align_t);
    if (n > SIZE_MAX - al)
        return NULL;
    n = (n + al - 1) / al * al;
    struct chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > CHUNK_SIZE ? n : CHUNK_SIZE;
        c = malloc(sizeof(*c) + cap);
        if (!c)
            return NULL;
        c->cap = cap;
        c->used = 0;
        if (a->head && n > CHUNK_SIZE) { /* keep filling the current chunk */
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    void *p = c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

char *pc_arena_strdup(pc_arena *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = pc_arena_alloc(a, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

void pc_arena_free(pc_arena *a)
{
    if (!a)
        return;
    for (struct chunk *c = a->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(a);
}

/* ---- YAML → pc_opt ---- */

struct frame {
    pc_opt *node, *last;
    const char *key; /* maps: the key waiting for its value */
    int key_line;
};

static void tree_err(char *err, size_t errlen, const char *file, size_t line, const char *what,
                     const char *detail)
{
    snprintf(err, errlen, "%s:%zu: %s%s%s", file, line, what, detail ? ": " : "",
             detail ? detail : "");
}

/* Adds n under the top frame; in a map, a scalar without a pending key becomes the key. Returns 1
 * when n was taken as a key, 0 when attached, -1 on error. */
static int attach(struct frame *top, pc_opt *n, char *err, size_t errlen)
{
    if (top->node->kind == PC_OPT_MAP) {
        if (!top->key) {
            if (n->kind != PC_OPT_SCALAR) {
                tree_err(err, errlen, n->file, (size_t)n->line, "map keys must be plain strings",
                         NULL);
                return -1;
            }
            if (pc_opt_get(top->node, n->value)) {
                tree_err(err, errlen, n->file, (size_t)n->line, n->value, "duplicate key");
                return -1;
            }
            top->key = n->value;
            top->key_line = n->line;
            return 1;
        }
        n->key = top->key;
        n->line = top->key_line; /* errors point at the key, where the reader looks */
        top->key = NULL;
    }
    if (top->last)
        top->last->next = n;
    else
        top->node->child = n;
    top->last = n;
    return 0;
}

pc_opt *pc_cfg_build_tree(pc_arena *a, FILE *f, const char *file, char *err, size_t errlen)
{
    yaml_parser_t p;
    yaml_event_t ev;
    struct frame st[MAX_DEPTH];
    int depth = 0, docs = 0, done = 0;
    pc_opt *root = NULL;

    if (!yaml_parser_initialize(&p)) {
        snprintf(err, errlen, "%s: out of memory", file);
        return NULL;
    }
    yaml_parser_set_input_file(&p, f);
    while (!done) {
        if (!yaml_parser_parse(&p, &ev)) {
            char detail[256];
            snprintf(detail, sizeof(detail), "%s%s%s", p.problem ? p.problem : "syntax error",
                     p.context ? " " : "", p.context ? p.context : "");
            tree_err(err, errlen, file, p.problem_mark.line + 1, "invalid YAML", detail);
            root = NULL;
            break;
        }
        size_t line = ev.start_mark.line + 1;
        pc_opt *n = NULL;
        int fail = 0;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT: done = 1; break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                tree_err(err, errlen, file, line, "only one YAML document is allowed", NULL);
                fail = 1;
            }
            break;
        case YAML_ALIAS_EVENT:
            tree_err(err, errlen, file, line, "YAML aliases are not supported", NULL);
            fail = 1;
            break;
        case YAML_SCALAR_EVENT:
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            n = pc_arena_alloc(a, sizeof(*n));
            if (!n) {
                snprintf(err, errlen, "%s: out of memory", file);
                fail = 1;
                break;
            }
            n->line = line > INT_MAX ? INT_MAX : (int)line;
            n->file = file;
            if (ev.type == YAML_SCALAR_EVENT) {
                const char *v = (const char *)ev.data.scalar.value;
                size_t len = ev.data.scalar.length;
                n->kind = PC_OPT_SCALAR;
                if (strlen(v) != len) {
                    tree_err(err, errlen, file, line, "a value contains a NUL byte", NULL);
                    fail = 1;
                    break;
                }
                /* A plain null (~, null, nothing) is the empty string: "use the default". */
                if (ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                    (!strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
                     !strcmp(v, "NULL")))
                    v = "";
                if (!(n->value = pc_arena_strdup(a, v))) {
                    snprintf(err, errlen, "%s: out of memory", file);
                    fail = 1;
                    break;
                }
            } else {
                n->kind = ev.type == YAML_SEQUENCE_START_EVENT ? PC_OPT_SEQ : PC_OPT_MAP;
            }
            if (depth == 0) {
                root = n;
            } else if (attach(&st[depth - 1], n, err, errlen) < 0) {
                fail = 1;
                break;
            }
            if (n->kind != PC_OPT_SCALAR) {
                if (depth == MAX_DEPTH) {
                    tree_err(err, errlen, file, line, "nesting too deep", NULL);
                    fail = 1;
                    break;
                }
                st[depth++] = (struct frame){.node = n};
            }
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT: depth--; break;
        default: break;
        }
        yaml_event_delete(&ev);
        if (fail) {
            root = NULL;
            break;
        }
    }
    yaml_parser_delete(&p);
    if (done && !root) { /* an empty file is an empty map: the checks then name what is missing */
        root = pc_arena_alloc(a, sizeof(*root));
        if (root) {
            root->kind = PC_OPT_MAP;
            root->line = 1;
            root->file = file;
        } else {
            snprintf(err, errlen, "%s: out of memory", file);
        }
    }
    return root;
}
