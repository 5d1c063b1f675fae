/* access.c — the access filter: allow and deny lists for client networks, HELO names, senders and
 * recipients, answered at once at CONNECT, HELO, MAIL and RCPT. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "portcullis/filter.h"

typedef struct cidr {
    int family;
    unsigned char addr[16];
    unsigned prefix;
} cidr;

typedef struct strs {
    char **v;
    size_t n;
} strs;

typedef struct access {
    cidr *allow_c, *deny_c;
    size_t nallow_c, ndeny_c;
    strs deny_helo, allow_s, deny_s, allow_r, deny_r;
} access;

enum {
    K_ALLOW_CLIENTS,
    K_DENY_CLIENTS,
    K_DENY_HELO,
    K_ALLOW_SENDERS,
    K_DENY_SENDERS,
    K_ALLOW_RCPTS,
    K_DENY_RCPTS,
    K__COUNT
};

static const char *const keys[K__COUNT] = {
    "allow_clients", "deny_clients",     "deny_helo",       "allow_senders",
    "deny_senders",  "allow_recipients", "deny_recipients",
};

static void where(char *err, size_t errlen, const pc_opt *o, const char *fmt, const char *what)
{
    char msg[256];
    snprintf(msg, sizeof(msg), fmt, what);
    if (o->line)
        snprintf(err, errlen, "%s:%d: %s", o->file ? o->file : "config", o->line, msg);
    else
        snprintf(err, errlen, "%s", msg);
}

static int parse_cidr(const char *s, cidr *out)
{
    char buf[INET6_ADDRSTRLEN + 8];
    if (strlen(s) >= sizeof(buf))
        return -1;
    strcpy(buf, s);
    char *slash = strchr(buf, '/');
    long prefix = -1;
    if (slash) {
        char *end;
        *slash = '\0';
        prefix = strtol(slash + 1, &end, 10);
        if (slash[1] == '\0' || *end || prefix < 0)
            return -1;
    }
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        if (prefix > 32)
            return -1;
        out->prefix = prefix < 0 ? 32 : (unsigned)prefix;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        if (prefix > 128)
            return -1;
        out->prefix = prefix < 0 ? 128 : (unsigned)prefix;
    } else {
        return -1;
    }
    return 0;
}

static int cidr_match(const cidr *c, size_t n, const struct sockaddr *sa)
{
    if (!sa)
        return 0;
    unsigned char a[16];
    int fam;
    if (sa->sa_family == AF_INET) {
        memcpy(a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        fam = AF_INET;
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *in6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(in6)) {
            memcpy(a, in6->s6_addr + 12, 4);
            fam = AF_INET;
        } else {
            memcpy(a, in6->s6_addr, 16);
            fam = AF_INET6;
        }
    } else {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (c[i].family != fam)
            continue;
        unsigned full = c[i].prefix / 8, rest = c[i].prefix % 8;
        if (memcmp(a, c[i].addr, full) != 0)
            continue;
        if (rest) {
            unsigned char mask = (unsigned char)(0xff << (8 - rest));
            if ((a[full] & mask) != (c[i].addr[full] & mask))
                continue;
        }
        return 1;
    }
    return 0;
}

static void strs_free(strs *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
}

static void access_fini(void *self)
{
    access *a = self;
    if (!a)
        return;
    free(a->allow_c);
    free(a->deny_c);
    strs_free(&a->deny_helo);
    strs_free(&a->allow_s);
    strs_free(&a->deny_s);
    strs_free(&a->allow_r);
    strs_free(&a->deny_r);
    free(a);
}

/* Calls add() for each scalar of a list option (a single scalar is a list of one). */
static int each_item(const pc_opt *o,
                     int (*add)(void *dst, const pc_opt *item, char *err, size_t errlen), void *dst,
                     char *err, size_t errlen)
{
    if (o->kind == PC_OPT_SCALAR)
        return add(dst, o, err, errlen);
    if (o->kind != PC_OPT_SEQ) {
        where(err, errlen, o, "%s: expected a list", o->key);
        return -1;
    }
    for (const pc_opt *it = o->child; it; it = it->next) {
        if (it->kind != PC_OPT_SCALAR || !it->value) {
            where(err, errlen, it, "%s: list items must be strings", o->key);
            return -1;
        }
        if (add(dst, it, err, errlen) < 0)
            return -1;
    }
    return 0;
}

typedef struct cidrs {
    cidr **v;
    size_t *n;
} cidrs;

static int add_cidr(void *dst, const pc_opt *item, char *err, size_t errlen)
{
    cidrs *d = dst;
    cidr c;
    if (!item->value || parse_cidr(item->value, &c) < 0) {
        where(err, errlen, item, "not an address or network: %s", item->value ? item->value : "");
        return -1;
    }
    cidr *nv = realloc(*d->v, (*d->n + 1) * sizeof(*nv));
    if (!nv) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    nv[(*d->n)++] = c;
    *d->v = nv;
    return 0;
}

static int add_str(void *dst, const pc_opt *item, char *err, size_t errlen)
{
    strs *s = dst;
    const char *v = item->value ? item->value : "";
    if (!*v || strlen(v) > 320) {
        where(err, errlen, item, "bad entry: \"%.64s\"", v);
        return -1;
    }
    char **nv = realloc(s->v, (s->n + 1) * sizeof(*nv));
    if (!nv) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->v = nv;
    if (!(s->v[s->n] = strdup(v))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->n++;
    return 0;
}

static void *access_init(const pc_opt *options, char *err, size_t errlen)
{
    access *a = calloc(1, sizeof(*a));
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (!options)
        return a;
    if (options->kind != PC_OPT_MAP) {
        where(err, errlen, options, "%s", "options must be a map");
        goto fail;
    }
    for (const pc_opt *o = options->child; o; o = o->next) {
        int k = 0;
        while (k < K__COUNT && (!o->key || strcmp(o->key, keys[k]) != 0))
            k++;
        cidrs cl = {&a->allow_c, &a->nallow_c}, cd = {&a->deny_c, &a->ndeny_c};
        int rc;
        switch (k) {
        case K_ALLOW_CLIENTS: rc = each_item(o, add_cidr, &cl, err, errlen); break;
        case K_DENY_CLIENTS: rc = each_item(o, add_cidr, &cd, err, errlen); break;
        case K_DENY_HELO: rc = each_item(o, add_str, &a->deny_helo, err, errlen); break;
        case K_ALLOW_SENDERS: rc = each_item(o, add_str, &a->allow_s, err, errlen); break;
        case K_DENY_SENDERS: rc = each_item(o, add_str, &a->deny_s, err, errlen); break;
        case K_ALLOW_RCPTS: rc = each_item(o, add_str, &a->allow_r, err, errlen); break;
        case K_DENY_RCPTS: rc = each_item(o, add_str, &a->deny_r, err, errlen); break;
        default: where(err, errlen, o, "unknown option %s", o->key ? o->key : "(none)"); rc = -1;
        }
        if (rc < 0)
            goto fail;
    }
    return a;
fail:
    access_fini(a);
    return NULL;
}

/* Exact name, or ".domain" for any name below domain; case-insensitive. */
static int helo_match(const strs *l, const char *helo)
{
    size_t hl = strlen(helo);
    for (size_t i = 0; i < l->n; i++) {
        const char *e = l->v[i];
        size_t el = strlen(e);
        if (e[0] == '.') {
            if (hl > el && strcasecmp(helo + hl - el, e) == 0)
                return 1;
        } else if (strcasecmp(helo, e) == 0) {
            return 1;
        }
    }
    return 0;
}

/* "user@domain" exact; "@domain" or "domain" for the whole domain; case-insensitive. */
static int addr_match(const strs *l, const char *addr)
{
    size_t al = strlen(addr);
    if (al >= 2 && addr[0] == '<' && addr[al - 1] == '>') {
        addr++;
        al -= 2;
    }
    if (al == 0)
        return 0; /* the null sender matches no entry */
    const char *at = memrchr(addr, '@', al);
    const char *dom = at ? at + 1 : NULL;
    size_t dl = at ? al - (size_t)(dom - addr) : 0;
    for (size_t i = 0; i < l->n; i++) {
        const char *e = l->v[i];
        const char *eat = strchr(e, '@');
        if (eat && eat != e) {
            if (strlen(e) == al && strncasecmp(e, addr, al) == 0)
                return 1;
        } else {
            const char *ed = eat ? eat + 1 : e;
            if (dom && strlen(ed) == dl && strncasecmp(ed, dom, dl) == 0)
                return 1;
        }
    }
    return 0;
}

/* Client text echoed in a reply: printable ASCII only, bounded. */
static void clean(char *out, size_t outlen, const char *s)
{
    size_t n = 0;
    for (; s && *s && n + 1 < outlen; s++)
        out[n++] = (*s >= 0x21 && *s < 0x7f) ? *s : '?';
    out[n] = '\0';
}

static void deny(pc_filter_ctx *ctx, pc_done_fn done, const char *what, const char *value,
                 const char *symbol)
{
    char v[200], text[300];
    clean(v, sizeof(v), value);
    if (*v)
        snprintf(text, sizeof(text), "%s: %s", what, v);
    else
        snprintf(text, sizeof(text), "%s", what);
    pc_verdict verdict = {
        .action = PC_REJECT, .code = 554, .enhanced = "5.7.1", .text = text, .symbol = symbol};
    done(ctx, &verdict);
}

static void access_run(void *self, pc_hook hook, pc_filter_ctx *ctx, pc_done_fn done)
{
    const access *a = self;
    pc_verdict cont = {.action = PC_CONTINUE};
    pc_verdict accept = {.action = PC_ACCEPT};
    const struct sockaddr *client = pc_ctx_client_addr(ctx);
    /* An allowed client passes every check of this filter, in every transaction. */
    const char *ca = pc_ctx_result_get(ctx, "access.client");
    int client_allowed =
        (ca && strcmp(ca, "allow") == 0) || cidr_match(a->allow_c, a->nallow_c, client);
    switch (hook) {
    case PC_HOOK_CONNECT:
        if (client_allowed) {
            pc_ctx_result_set(ctx, "access.client", "allow");
            done(ctx, &accept);
        } else if (cidr_match(a->deny_c, a->ndeny_c, client)) {
            deny(ctx, done, "Client address rejected", pc_ctx_client_ip(ctx), "ACCESS_DENY_CLIENT");
        } else {
            done(ctx, &cont);
        }
        return;
    case PC_HOOK_HELO: {
        const char *helo = pc_ctx_helo(ctx);
        if (!client_allowed && helo && helo_match(&a->deny_helo, helo))
            deny(ctx, done, "Helo command rejected", helo, "ACCESS_DENY_HELO");
        else
            done(ctx, &cont);
        return;
    }
    case PC_HOOK_MAIL: {
        const char *s = pc_ctx_sender(ctx);
        if (s && addr_match(&a->allow_s, s))
            done(ctx, &accept);
        else if (!client_allowed && s && addr_match(&a->deny_s, s))
            deny(ctx, done, "Sender address rejected", s, "ACCESS_DENY_SENDER");
        else
            done(ctx, &cont);
        return;
    }
    case PC_HOOK_RCPT: {
        const char *r = pc_ctx_rcpt(ctx);
        if (r && addr_match(&a->allow_r, r))
            done(ctx, &accept);
        else if (!client_allowed && r && addr_match(&a->deny_r, r))
            deny(ctx, done, "Recipient address rejected", r, "ACCESS_DENY_RCPT");
        else
            done(ctx, &cont);
        return;
    }
    default: done(ctx, &cont); return;
    }
}

const pc_filter pcf_access_filter = {
    .abi = PC_FILTER_ABI,
    .name = "access",
    .hooks = PC_HOOK_BIT(PC_HOOK_CONNECT) | PC_HOOK_BIT(PC_HOOK_HELO) | PC_HOOK_BIT(PC_HOOK_MAIL) |
             PC_HOOK_BIT(PC_HOOK_RCPT),
    .init = access_init,
    .fini = access_fini,
    .run = access_run,
    .cancel = NULL,
};
