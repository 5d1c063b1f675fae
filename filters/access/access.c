/* access.c — the access filter: allow and deny lists for client networks, HELO names, senders and
 * recipients, answered at once at CONNECT, HELO, MAIL and RCPT. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "portcullis/filter.h"

typedef struct access {
    pc_cidr_list allow_c, deny_c;
    pc_str_list deny_helo, allow_s, deny_s, allow_r, deny_r;
} access;

static const char *const keys[] = {
    "allow_clients", "deny_clients",     "deny_helo",       "allow_senders",
    "deny_senders",  "allow_recipients", "deny_recipients", NULL,
};

static void access_fini(void *self)
{
    access *a = self;
    if (!a)
        return;
    pc_cidr_list_free(&a->allow_c);
    pc_cidr_list_free(&a->deny_c);
    pc_str_list_free(&a->deny_helo);
    pc_str_list_free(&a->allow_s);
    pc_str_list_free(&a->deny_s);
    pc_str_list_free(&a->allow_r);
    pc_str_list_free(&a->deny_r);
    free(a);
}

/* Every option is a list, read with the loader's parsers (options.h): networks, HELO names
 * (".domain" for any name below it), and addresses or domains. */
static void *access_init(const pc_opt *options, char *err, size_t errlen)
{
    access *a = calloc(1, sizeof(*a));
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (pc_opt_check_keys(options, keys, err, errlen) < 0 ||
        pc_opt_cidrs(options, "allow_clients", &a->allow_c, err, errlen) < 0 ||
        pc_opt_cidrs(options, "deny_clients", &a->deny_c, err, errlen) < 0 ||
        pc_opt_domains(options, "deny_helo", PC_OPT_BELOW, &a->deny_helo, err, errlen) < 0 ||
        pc_opt_addresses(options, "allow_senders", &a->allow_s, err, errlen) < 0 ||
        pc_opt_addresses(options, "deny_senders", &a->deny_s, err, errlen) < 0 ||
        pc_opt_addresses(options, "allow_recipients", &a->allow_r, err, errlen) < 0 ||
        pc_opt_addresses(options, "deny_recipients", &a->deny_r, err, errlen) < 0) {
        access_fini(a);
        return NULL;
    }
    return a;
}

/* Exact name, or ".domain" for any name below domain; case-insensitive. */
static int helo_match(const pc_str_list *l, const char *helo)
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
static int addr_match(const pc_str_list *l, const char *addr)
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
    int client_allowed = (ca && strcmp(ca, "allow") == 0) || pc_cidr_match(&a->allow_c, client);
    switch (hook) {
    case PC_HOOK_CONNECT:
        if (client_allowed) {
            pc_ctx_result_set(ctx, "access.client", "allow");
            done(ctx, &accept);
        } else if (pc_cidr_match(&a->deny_c, client)) {
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
