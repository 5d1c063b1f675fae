/* portcullisctl.c — the admin's command line for a running gateway: it turns its arguments into one
 * request line of the admin socket (gateway/admin/admin_cmd.h), sends it, and prints the reply for
 * people or, with --json, as JSON. It parses nothing it does not bound: replies are read with a
 * total limit and a deadline, each line through ctl_reply.c. Exit codes: see usage() and
 * portcullisctl(8). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctl_reply.h"

#define DEFAULT_SOCKET "/run/portcullis/admin.sock"
#define REPLY_MAX (64u * 1024 * 1024)
#define REQUEST_MAX 4096

enum {
    EXIT_OK = 0,
    EXIT_FAILED = 1,      /* the gateway refused or failed the command */
    EXIT_USAGE = 2,       /* bad arguments */
    EXIT_UNREACHABLE = 3, /* no connection, a timeout, a reply that is not the protocol */
    EXIT_NOT_FOUND = 4,   /* no such message (or recipient) */
    EXIT_RELEASED = 5,    /* already released */
};

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: portcullisctl [-s SOCKET] [--json] [-t SECONDS] quarantine COMMAND\n"
        "  quarantine list [--rcpt ADDR] [--since WHEN]   held messages (WHEN: a Unix time,\n"
        "                                                 YYYY-MM-DD (UTC), or an age: 90s, 30m,\n"
        "                                                 12h, 7d)\n"
        "  quarantine show ID                             its envelope, verdict and headers\n"
        "  quarantine release ID [--rcpt ADDR]            send it on, once (to ADDR only)\n"
        "  quarantine delete ID\n"
        "  -s SOCKET  the gateway's admin socket (default " DEFAULT_SOCKET ")\n"
        "  -t SECONDS how long to wait for the answer (default 600)\n"
        "exit: 0 done, 1 refused or failed, 2 usage, 3 no answer, 4 not found, 5 already "
        "released\n");
}

/* ---- output -----------------------------------------------------------------------------------
 */

static void json_str(const char *p, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void json_record(const ctl_line *l)
{
    putchar('{');
    for (size_t i = 0; i < l->n; i++) {
        if (i)
            putchar(',');
        json_str(l->key[i].p, l->key[i].n);
        putchar(':');
        json_str(l->value[i].p, l->value[i].n);
    }
    putchar('}');
}

static int is_type(const ctl_line *l, const char *t)
{
    return l->type.n == strlen(t) && !memcmp(l->type.p, t, l->type.n);
}

static void field(const ctl_line *l, const char *key, const char *label)
{
    size_t n;
    const char *v = ctl_get(l, key, &n);
    printf("%-10s %.*s\n", label, (int)n, v ? v : "");
}

static void human_time(char *out, size_t n, const char *v, size_t vn)
{
    char b[24];
    snprintf(b, sizeof(b), "%.*s", (int)(vn < 20 ? vn : 20), v ? v : "0");
    time_t t = (time_t)strtoll(b, NULL, 10);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%d %H:%M:%SZ", &tm);
}

static void human_record(const char *verb, const ctl_line *l)
{
    size_t n, fn, rn, sn, reln;
    if (is_type(l, "message") && !strcmp(verb, "list")) {
        const char *id = ctl_get(l, "id", &n);
        const char *t = ctl_get(l, "time", &fn);
        const char *from = ctl_get(l, "from", &sn);
        const char *rc = ctl_get(l, "rcpts", &rn);
        const char *rel = ctl_get(l, "released", &reln);
        size_t scn;
        const char *score = ctl_get(l, "score", &scn);
        char when[40];
        human_time(when, sizeof(when), t, fn);
        printf("%.*s  %s  <%.*s> -> %.*s  score=%.*s%s%.*s\n", (int)n, id ? id : "", when, (int)sn,
               from ? from : "", (int)rn, rc ? rc : "", (int)scn, score ? score : "",
               reln ? "  released=" : "", (int)reln, rel ? rel : "");
        return;
    }
    if (is_type(l, "message")) {
        const char *t = ctl_get(l, "time", &fn);
        char when[40];
        human_time(when, sizeof(when), t, fn);
        field(l, "id", "id:");
        printf("%-10s %s\n", "time:", when);
        field(l, "from", "from:");
        field(l, "rcpts", "to:");
        field(l, "released", "released:");
        field(l, "action", "verdict:");
        field(l, "score", "score:");
        field(l, "symbols", "symbols:");
        field(l, "reason", "reason:");
        field(l, "client", "client:");
        field(l, "helo", "helo:");
        field(l, "listener", "listener:");
        field(l, "size", "size:");
        return;
    }
    if (is_type(l, "history")) {
        const char *v = ctl_get(l, "line", &n);
        printf("%-10s %.*s\n", "history:", (int)n, v ? v : "");
        return;
    }
    if (is_type(l, "header")) {
        const char *v = ctl_get(l, "line", &n);
        printf("  %.*s\n", (int)n, v ? v : "");
        return;
    }
    if (is_type(l, "rcpt")) {
        const char *a = ctl_get(l, "addr", &n);
        const char *r = ctl_get(l, "result", &rn);
        printf("%.*s: %.*s\n", (int)rn, r ? r : "", (int)n, a ? a : "");
    }
}

/* ---- arguments --------------------------------------------------------------------------------
 */

/* A Unix time, YYYY-MM-DD (UTC) or an age (90s, 30m, 12h, 7d: that long ago). -1 if none. */
static long long parse_when(const char *s)
{
    char *e;
    int y, mo, d;
    char tail;
    if (sscanf(s, "%4d-%2d-%2d%c", &y, &mo, &d, &tail) == 3) {
        struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d};
        time_t t = timegm(&tm);
        return t < 0 ? -1 : (long long)t;
    }
    errno = 0;
    long long v = strtoll(s, &e, 10);
    if (errno || e == s || v < 0)
        return -1;
    if (!*e)
        return v;
    long long mul = !strcmp(e, "s")   ? 1
                    : !strcmp(e, "m") ? 60
                    : !strcmp(e, "h") ? 3600
                    : !strcmp(e, "d") ? 86400
                                      : 0;
    if (!mul || v > 100LL * 365 * 86400 / mul)
        return -1;
    long long t = (long long)time(NULL) - v * mul;
    return t < 0 ? 0 : t;
}

static int word_ok(const char *s)
{
    if (!*s || strlen(s) > 512)
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f)
            return 0;
    return 1;
}

/* ---- the exchange -----------------------------------------------------------------------------
 */

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *sock = DEFAULT_SOCKET;
    int json = 0, timeout_s = 600, i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "-s") && i + 1 < argc)
            sock = argv[++i];
        else if (!strcmp(argv[i], "-t") && i + 1 < argc)
            timeout_s = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return EXIT_OK;
        } else {
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (timeout_s <= 0 || argc - i < 2 || strcmp(argv[i], "quarantine") != 0) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *verb = argv[i + 1];
    char req[REQUEST_MAX + 2];
    int k = 0;
    i += 2;
    if (!strcmp(verb, "list")) {
        k = snprintf(req, sizeof(req), "quarantine list");
        for (; i < argc; i++) {
            if (!strcmp(argv[i], "--rcpt") && i + 1 < argc && word_ok(argv[i + 1]))
                k += snprintf(req + k, sizeof(req) - (size_t)k, " rcpt=%s", argv[++i]);
            else if (!strcmp(argv[i], "--since") && i + 1 < argc && parse_when(argv[i + 1]) >= 0)
                k += snprintf(req + k, sizeof(req) - (size_t)k, " since=%lld",
                              parse_when(argv[++i]));
            else if (!strcmp(argv[i], "--json"))
                json = 1;
            else {
                usage(stderr);
                return EXIT_USAGE;
            }
        }
    } else if (!strcmp(verb, "show") || !strcmp(verb, "release") || !strcmp(verb, "delete")) {
        if (i >= argc || !word_ok(argv[i])) {
            usage(stderr);
            return EXIT_USAGE;
        }
        k = snprintf(req, sizeof(req), "quarantine %s %s", verb, argv[i++]);
        for (; i < argc; i++) {
            if (!strcmp(verb, "release") && !strcmp(argv[i], "--rcpt") && i + 1 < argc &&
                word_ok(argv[i + 1]))
                k += snprintf(req + k, sizeof(req) - (size_t)k, " rcpt=%s", argv[++i]);
            else if (!strcmp(argv[i], "--json"))
                json = 1;
            else {
                usage(stderr);
                return EXIT_USAGE;
            }
        }
    } else {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (k <= 0 || (size_t)k >= REQUEST_MAX) {
        fprintf(stderr, "portcullisctl: request too long\n");
        return EXIT_USAGE;
    }
    req[k++] = '\n';

    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(sock) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "portcullisctl: %s: path too long\n", sock);
        return EXIT_USAGE;
    }
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        fprintf(stderr, "portcullisctl: %s: %s\n", sock, strerror(errno));
        return EXIT_UNREACHABLE;
    }
    if (send_all(fd, req, (size_t)k) < 0) {
        fprintf(stderr, "portcullisctl: %s: %s\n", sock, strerror(errno));
        close(fd);
        return EXIT_UNREACHABLE;
    }
    /* The whole reply, up to its final line, within the deadline and the size limit. */
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    time_t deadline = time(NULL) + timeout_s;
    int done = 0;
    while (buf && !done) {
        int left = (int)(deadline - time(NULL));
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, left * 1000) <= 0)
            break;
        if (len + 4096 > cap) {
            if (cap >= REPLY_MAX)
                break;
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                break;
            buf = nb;
            cap *= 2;
        }
        ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
        /* done when the last complete line is the final one */
        if (buf[len - 1] == '\n') {
            size_t s = len - 1;
            while (s > 0 && buf[s - 1] != '\n')
                s--;
            done = !strncmp(buf + s, "ok ", 3) || !strncmp(buf + s, "error ", 6);
        }
    }
    close(fd);
    if (!done) {
        fprintf(stderr, "portcullisctl: %s: no complete answer\n", sock);
        free(buf);
        return EXIT_UNREACHABLE;
    }
    int rc = EXIT_OK, first = 1;
    int list = !strcmp(verb, "list");
    int release = !strcmp(verb, "release");
    int show = !strcmp(verb, "show");
    if (json)
        printf(list ? "[" : "{");
    int in_arr = 0;
    const char *arr = NULL;
    for (size_t off = 0; off < len;) {
        char *e = memchr(buf + off, '\n', len - off);
        size_t n = (size_t)(e - (buf + off));
        ctl_line l;
        ctl_kind kind = ctl_parse_line(&l, buf + off, n);
        off += n + 1;
        if (kind == CTL_BAD) {
            fprintf(stderr, "portcullisctl: a reply line that is not the protocol\n");
            free(buf);
            return EXIT_UNREACHABLE;
        }
        if (kind == CTL_ERROR) {
            rc = (l.type.n == 9 && !memcmp(l.type.p, "not-found", 9))            ? EXIT_NOT_FOUND
                 : (l.type.n == 16 && !memcmp(l.type.p, "already-released", 16)) ? EXIT_RELEASED
                 : (l.type.n == 11 && !memcmp(l.type.p, "bad-request", 11))      ? EXIT_USAGE
                                                                                 : EXIT_FAILED;
            if (json) {
                if (list)
                    printf("]\n{");
                else if (!first)
                    printf(",");
                printf("\"error\":");
                json_str(l.type.p, l.type.n);
                printf(",\"message\":");
                json_str(l.text.p, l.text.n);
                printf("}\n");
            }
            fprintf(stderr, "portcullisctl: %.*s: %.*s\n", (int)l.type.n, l.type.p, (int)l.text.n,
                    l.text.p);
            free(buf);
            return rc;
        }
        if (kind == CTL_OK)
            break;
        if (!json) {
            human_record(verb, &l);
            continue;
        }
        if (list) {
            if (!first)
                putchar(',');
            json_record(&l);
            first = 0;
            continue;
        }
        /* show: the message's fields, then arrays; release: rcpts */
        const char *want = is_type(&l, "history")  ? "history"
                           : is_type(&l, "header") ? "headers"
                           : is_type(&l, "rcpt")   ? "rcpts"
                                                   : NULL;
        if (!want && is_type(&l, "message")) {
            for (size_t f = 0; f < l.n; f++) {
                if (!first)
                    putchar(',');
                json_str(l.key[f].p, l.key[f].n);
                putchar(':');
                json_str(l.value[f].p, l.value[f].n);
                first = 0;
            }
            continue;
        }
        if (!want)
            continue;
        if (!in_arr || strcmp(arr, want) != 0) {
            if (in_arr)
                putchar(']');
            if (!first)
                putchar(',');
            printf("\"%s\":[", want);
            in_arr = 1;
            arr = want;
            first = 1;
        } else
            putchar(',');
        if (!strcmp(want, "rcpts"))
            json_record(&l);
        else {
            size_t vn;
            const char *v = ctl_get(&l, "line", &vn);
            json_str(v ? v : "", vn);
        }
        first = 0;
    }
    if (json) {
        if (in_arr)
            putchar(']');
        puts(list ? "]" : "}");
    } else if (!strcmp(verb, "delete"))
        printf("deleted\n");
    (void)release;
    (void)show;
    free(buf);
    return rc;
}
