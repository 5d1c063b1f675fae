/* main.c — the portcullis daemon's entry: arguments, configuration, the shared runtime (TLS
 * contexts, filter chains), listening sockets, privilege drop, worker threads and signals. It only
 * wires things together. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "admin/admin.h"
#include "base/log.h"
#include "builtin.h"
#include "config/config.h"
#include "core/chain.h"
#include "core/dns.h"
#include "core/jobs.h"
#include "core/listener.h"
#include "core/plugin.h"
#include "core/spool.h"
#include "net/addrtable.h"
#include "net/conn.h"
#include "net/tls.h"
#include "policies/policy.h"
#include "policy_cmd.h"
#include "quarantine/qstore.h"
#include "quarantine/quarantine.h"
#include "store/store.h"
#include "worker.h"

#define PC_VERSION "0.1.0"

static void usage(FILE *f)
{
    fprintf(
        f, "usage: portcullis -c FILE          run with a configuration file\n"
           "       portcullis -t -c FILE       check the configuration and exit\n"
           "       portcullis policy explain --listener L --from F --rcpt R --ip I [--user U]\n"
           "                  [-c FILE]      the policy that applies to one case, and why\n"
           "       portcullis --listen URL --upstream URL [--cert F --key F] [options]\n"
           "                                   one-line mode (see portcullis(8), "
           "docs/configuration.md)\n"
           "  one-line options: --require-tls --domain D --trust NET --ca-file F --no-verify\n"
           "                    --upstream-identity none|xclient|proxy --hostname H --workers N\n"
           "                    --user U --log-level L --filter NAME --max-message-size SIZE\n"
           "                    --plaintext-auth (passwords accepted before TLS: trusted networks\n"
           "                    only; logged)\n"
           "  --filter NAME: a built-in filter without options (access, pregreet, spf, dkim,\n"
           "               dmarc); dnsbl, clamav and rules need options: use a file\n"
           "  --trust NET replaces the default trusted network (loopback); repeatable\n"
           "  URL schemes: smtp, smtps, pop3, pop3s, imap, imaps (listen; STARTTLS/STLS offered\n"
           "               when a certificate is given); the same and smtp+starttls, pop3+stls,\n"
           "               imap+starttls (upstream)\n"
           "  -V  print the version;  -h  this help\n");
}

/* What an admin must hear about a valid configuration: -t prints it on stderr, a start logs it. */
__attribute__((format(printf, 3, 4))) static void say(int test_only, pc_log_level level,
                                                      const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (test_only)
        fprintf(stderr, "portcullis: %s: %s\n", level == PC_LOG_WARN ? "warning" : "notice", msg);
    else if (level == PC_LOG_WARN)
        pc_log_warn(0, "%s", msg);
    else
        pc_log_notice(0, "%s", msg);
}

static void report_config(const pc_config *cfg, int test_only)
{
    static const char *const proto[] = {"smtp", "pop3", "imap"};
    for (size_t l = 0; l < cfg->nlisteners; l++) {
        const pc_listener_cfg *lc = &cfg->listeners[l];
        int mailbox = lc->proto != PC_PROTO_SMTP;
        int ptauth = mailbox ? lc->mailbox.plaintext_auth : lc->plaintext_auth;
        if (!mailbox && lc->accepted_domains.n == 0)
            say(test_only, PC_LOG_WARN,
                "listener=%s accepted_domains=none: only clients from trusted networks "
                "and authenticated clients may send mail through it",
                lc->name);
        /* No TLS and no plaintext logins: the listener advertises LOGINDISABLED and refuses
         * every login; valid, but never what the admin wanted. */
        if (mailbox && lc->tls.mode == PC_TLS_NONE && !ptauth)
            say(test_only, PC_LOG_WARN,
                "listener=%s protocol=%s tls=none plaintext_auth=never: no client can log in "
                "(LOGINDISABLED, every login refused); give it a certificate (tls.mode starttls "
                "or implicit; --cert FILE --key FILE), or, for clients on a trusted network "
                "only, set mailbox.plaintext_auth: allow (--plaintext-auth)",
                lc->name, proto[lc->proto]);
        if (ptauth && lc->tls.mode != PC_TLS_IMPLICIT)
            say(test_only, PC_LOG_WARN,
                "listener=%s %s.plaintext_auth=allow: passwords are accepted before TLS", lc->name,
                mailbox ? "mailbox" : "smtp");
    }
}

/* Policies that are valid but cannot do what they say: one for a mailbox listener (policies are
 * SMTP's), a message_size above the listener's own limit (which stays the most anyone may send). */
static void report_policies(const pc_config *cfg, const pc_policy_set *set, int test_only)
{
    for (size_t i = 0; i < pc_policy_count(set); i++) {
        const pc_policy *p = pc_policy_at(set, i);
        for (size_t l = 0; l < cfg->nlisteners; l++) {
            const pc_listener_cfg *lc = &cfg->listeners[l];
            if (p->listener && strcmp(p->listener, lc->name))
                continue;
            if (lc->proto != PC_PROTO_SMTP && p->listener)
                say(test_only, PC_LOG_WARN,
                    "policy=%s (%s:%d) listener=%s: policies apply to SMTP listeners only", p->name,
                    p->at->file, p->at->line, lc->name);
            else if (lc->proto == PC_PROTO_SMTP && p->message_size > lc->limits.message_size)
                say(test_only, PC_LOG_WARN,
                    "policy=%s (%s:%d) message_size=%zu is above listener=%s "
                    "limits.message_size=%zu, which applies",
                    p->name, p->at->file, p->at->line, p->message_size, lc->name,
                    lc->limits.message_size);
        }
    }
}

static pc_runtime rt;
static pc_worker *workers;
static unsigned nworkers;

static int build_runtime(pc_config *cfg, char *err, size_t errlen)
{
    size_t n = cfg->nlisteners;
    rt.cfg = cfg;
    rt.server_tls = calloc(n, sizeof(SSL_CTX *));
    rt.upstream_tls = calloc(n, sizeof(SSL_CTX *));
    rt.chains = calloc(n, sizeof(pc_chain *));
    if (!rt.server_tls || !rt.upstream_tls || !rt.chains) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        pc_listener_cfg *l = &cfg->listeners[i];
        char e[512];
        if (l->tls.mode != PC_TLS_NONE &&
            !(rt.server_tls[i] = pc_tls_server_ctx(&l->tls, e, sizeof(e)))) {
            snprintf(err, errlen, "listener %s: %s", l->name, e);
            return -1;
        }
        if (l->upstream.tls != PC_TLS_NONE &&
            !(rt.upstream_tls[i] = pc_tls_client_ctx(&l->upstream, e, sizeof(e)))) {
            snprintf(err, errlen, "listener %s: upstream: %s", l->name, e);
            return -1;
        }
        if (!(rt.chains[i] = pc_chain_build(l->filters, l->nfilters, e, sizeof(e)))) {
            snprintf(err, errlen, "listener %s: %s", l->name, e);
            return -1;
        }
        pc_chain_set_scores(rt.chains[i], &l->scores);
    }
    return 0;
}

static int drop_privileges(const pc_config *cfg)
{
    if (!cfg->user)
        return 0;
    struct passwd *pw = getpwnam(cfg->user);
    if (!pw) {
        fprintf(stderr, "portcullis: user %s: not found\n", cfg->user);
        return -1;
    }
    gid_t gid = pw->pw_gid;
    if (cfg->group) {
        struct group *gr = getgrnam(cfg->group);
        if (!gr) {
            fprintf(stderr, "portcullis: group %s: not found\n", cfg->group);
            return -1;
        }
        gid = gr->gr_gid;
    }
    if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(pw->pw_uid) < 0) {
        fprintf(stderr, "portcullis: dropping privileges to %s: %s\n", cfg->user, strerror(errno));
        return -1;
    }
    return 0;
}

static void on_signal(uv_signal_t *h, int signum)
{
    if (signum == SIGHUP) {
        pc_config *cfg = rt.cfg;
        SSL_CTX **fresh = calloc(cfg->nlisteners, sizeof(SSL_CTX *));
        if (!fresh)
            return;
        for (size_t i = 0; i < cfg->nlisteners; i++) {
            char e[512];
            if (cfg->listeners[i].tls.mode == PC_TLS_NONE)
                continue;
            fresh[i] = pc_tls_server_ctx(&cfg->listeners[i].tls, e, sizeof(e));
            if (!fresh[i])
                pc_log_err(0,
                           "event=reload listener=%s result=failed reason=\"%s\" (keeping the "
                           "certificates in use)",
                           cfg->listeners[i].name, e);
        }
        for (unsigned w = 0; w < nworkers; w++) {
            workers[w].reload_tls = fresh;
            pc_worker_reload_tls(&workers[w]);
        }
        pc_log_notice(0, "event=reload what=certificates");
        /* fresh[] entries hold one reference each, released at exit; workers took their own. */
        return;
    }
    pc_log_notice(0, "event=shutdown signal=%d sessions=%u", signum, pc_sessions_alive());
    for (unsigned w = 0; w < nworkers; w++)
        pc_worker_stop(&workers[w]);
    uv_close((uv_handle_t *)h, NULL);
    uv_stop(h->loop);
}

int main(int argc, char **argv)
{
    const char *file = NULL;
    int test_only = 0;
    int i = 1;
    if (argc > 1 && strcmp(argv[1], "policy") == 0)
        return pc_policy_command(argc - 1, argv + 1);
    for (; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
            file = argv[++i];
        else if (strcmp(argv[i], "-t") == 0)
            test_only = 1;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "-V") == 0 || strcmp(argv[i], "--version") == 0) {
            printf("portcullis %s\n", PC_VERSION);
            return 0;
        } else
            break;
    }
    char err[1024] = "";
    pc_config *cfg;
    if (file) {
        if (i < argc) {
            fprintf(stderr, "portcullis: unexpected argument %s with -c\n", argv[i]);
            return 2;
        }
        cfg = pc_config_load(file, err, sizeof(err));
    } else if (i < argc) {
        cfg = pc_config_from_args(argc - i, argv + i, err, sizeof(err));
    } else {
        usage(stderr);
        return 2;
    }
    if (!cfg) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    pc_log_open(cfg->log_target, (pc_log_level)cfg->log_level);
    pc_filters_register_builtin();
    if (pc_plugins_load(&cfg->plugins, err, sizeof(err)) < 0 ||
        build_runtime(cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "portcullis: %s\n", err);
        return 1;
    }
    err[0] = '\0';
    if (cfg->policies_dir && !(rt.policies = pc_policies_open(cfg, err, sizeof(err)))) {
        fprintf(stderr, "portcullis: %s\n", err);
        return 1;
    }
    if (rt.policies) {
        say(test_only, PC_LOG_NOTICE, "policies=%zu from %s", pc_policy_count(rt.policies),
            cfg->policies_dir);
        report_policies(cfg, rt.policies, test_only);
    }
    report_config(cfg, test_only);
    if (test_only) {
        printf("portcullis: configuration %s is valid\n", file ? file : "(command line)");
        return 0;
    }
    char tp[16];
    snprintf(tp, sizeof(tp), "%u", cfg->threadpool_size ? cfg->threadpool_size : 4);
    setenv("UV_THREADPOOL_SIZE", tp, 1);
    pc_jobs_setup(cfg->threadpool_size ? cfg->threadpool_size : 4);
    signal(SIGPIPE, SIG_IGN);
    /* The handlers are in place before any socket listens: a SIGTERM that comes as soon as the
     * port is open waits for the loop instead of killing the process without a clean stop. */
    uv_loop_t *loop = uv_default_loop();
    uv_signal_t sterm, sint, shup;
    uv_signal_init(loop, &sterm);
    uv_signal_init(loop, &sint);
    uv_signal_init(loop, &shup);
    uv_signal_start(&sterm, on_signal, SIGTERM);
    uv_signal_start(&sint, on_signal, SIGINT);
    uv_signal_start(&shup, on_signal, SIGHUP);
    uv_unref((uv_handle_t *)&shup);
    pc_addrtable_init(65536);
    if (!(rt.dns_cache = pc_dns_cache_from_cfg(&cfg->resolver))) {
        fprintf(stderr, "portcullis: resolver cache: out of memory\n");
        return 1;
    }
    pc_listener_set_max_total(cfg->max_connections);

    nworkers = cfg->workers ? cfg->workers : (unsigned)uv_available_parallelism();
    if (nworkers == 0)
        nworkers = 1;
    workers = calloc(nworkers, sizeof(*workers));
    if (!workers)
        return 1;
    for (unsigned w = 0; w < nworkers; w++) {
        workers[w].id = (int)w;
        workers[w].rt = &rt;
        workers[w].fds = calloc(cfg->nlisteners, sizeof(int *));
        for (size_t l = 0; l < cfg->nlisteners; l++) {
            pc_listener_cfg *lc = &cfg->listeners[l];
            workers[w].fds[l] = calloc(lc->naddrs, sizeof(int));
            for (size_t a = 0; a < lc->naddrs; a++) {
                int fd = pc_listener_bind(&lc->addrs[a], err, sizeof(err));
                if (fd < 0) {
                    fprintf(stderr, "portcullis: listener %s: %s\n", lc->name, err);
                    return 1;
                }
                workers[w].fds[l][a] = fd;
            }
        }
    }
    /* The admin socket, before the drop: its group may be one the gateway's user is not in. */
    pc_admin *admin = NULL;
    if (cfg->quarantine.enabled &&
        !(admin = pc_admin_start(loop, cfg, rt.upstream_tls, err, sizeof(err)))) {
        fprintf(stderr, "portcullis: admin socket: %s\n", err);
        return 1;
    }
    if (drop_privileges(cfg) < 0)
        return 1;
    /* After the drop: the spool directory must be usable by the user the gateway runs as. */
    if (pc_spool_setup(cfg->spool_dir, cfg->spool_memory_total, cfg->spool_disk_total, err,
                       sizeof(err)) < 0) {
        fprintf(stderr, "portcullis: spool: %s\n", err);
        return 1;
    }
    /* The state store, after the drop too: its files belong to the user the gateway runs as. */
    if (cfg->state.backend != PC_STATE_NONE) {
        if (!(rt.store = pc_store_open(&cfg->state, err, sizeof(err)))) {
            fprintf(stderr, "portcullis: state: %s\n", err);
            return 1;
        }
        if (cfg->state.backend == PC_STATE_LMDB)
            pc_log_notice(0, "event=state backend=lmdb path=%s", cfg->state.path);
        else
            pc_log_notice(0, "event=state backend=redis address=%s", cfg->state.redis_address);
    }
    /* The quarantine's directory, after the drop too: its files belong to the gateway's user. */
    if (cfg->quarantine.enabled) {
        if (pc_qstore_setup(cfg->quarantine.directory, err, sizeof(err)) < 0) {
            fprintf(stderr, "portcullis: quarantine: %s\n", err);
            return 1;
        }
        pc_log_notice(0, "event=quarantine directory=%s max_age=%s admin=%s",
                      cfg->quarantine.directory, cfg->quarantine.max_age_text, cfg->admin.socket);
    }
    for (unsigned w = 0; w < nworkers; w++)
        if (pc_worker_start(&workers[w]) < 0) {
            fprintf(stderr, "portcullis: cannot start worker %u\n", w);
            return 1;
        }
    for (size_t l = 0; l < cfg->nlisteners; l++) {
        char a[64];
        pc_listener_cfg *lc = &cfg->listeners[l];
        for (size_t k = 0; k < lc->naddrs; k++) {
            uint16_t port = ntohs(lc->addrs[k].ss_family == AF_INET6
                                      ? ((struct sockaddr_in6 *)&lc->addrs[k])->sin6_port
                                      : ((struct sockaddr_in *)&lc->addrs[k])->sin_port);
            pc_log_notice(0, "event=listening listener=%s address=%s port=%u tls=%s upstream=%s:%u",
                          lc->name, pc_addr_str((struct sockaddr *)&lc->addrs[k], a, sizeof(a)),
                          port,
                          lc->tls.mode == PC_TLS_NONE       ? "none"
                          : lc->tls.mode == PC_TLS_STARTTLS ? "starttls"
                                                            : "implicit",
                          lc->upstream.host, lc->upstream.port);
        }
    }
    pc_log_notice(0, "event=started version=%s workers=%u", PC_VERSION, nworkers);

    pc_quar_sweeper *sweeper =
        cfg->quarantine.enabled ? pc_quar_sweeper_start(loop, &cfg->quarantine) : NULL;
    uv_run(loop, UV_RUN_DEFAULT);
    pc_quar_sweeper_stop(sweeper);
    pc_admin_stop(admin);
    uv_run(loop, UV_RUN_NOWAIT); /* its close callbacks */
    for (unsigned w = 0; w < nworkers; w++)
        pc_worker_join(&workers[w]);
    pc_store_close(rt.store);
    pc_log_notice(0, "event=stopped sessions_left=%u", pc_sessions_alive());
    return 0;
}
