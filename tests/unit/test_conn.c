/* test_conn.c — pc_conn over real sockets on 127.0.0.1: plaintext, TLS, STARTTLS, backpressure,
 * timeouts and close; the TLS contexts of tls.c with generated certificates; the address table. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "net/addrtable.h"
#include "net/conn.h"
#include "net/tls.h"

/* ---- certificates ---- */

static char tmpdir[64];
static char cert1[128], key1[128], cert2[128], key2[128];

static void write_cert(const char *cpath, const char *kpath, const char *cn, const char *san,
                       long serial)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    assert_non_null(k);
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, k);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, n);
    X509V3_CTX v;
    X509V3_set_ctx_nodb(&v);
    X509V3_set_ctx(&v, x, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v, NID_subject_alt_name, san);
    assert_non_null(e);
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    assert_true(X509_sign(x, k, EVP_sha256()) > 0);
    FILE *f = fopen(cpath, "w");
    assert_non_null(f);
    PEM_write_X509(f, x);
    fclose(f);
    f = fopen(kpath, "w");
    assert_non_null(f);
    PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(k);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/pc_test_conn.XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(cert1, sizeof(cert1), "%s/localhost.pem", tmpdir);
    snprintf(key1, sizeof(key1), "%s/localhost.key", tmpdir);
    snprintf(cert2, sizeof(cert2), "%s/example.pem", tmpdir);
    snprintf(key2, sizeof(key2), "%s/example.key", tmpdir);
    write_cert(cert1, key1, "localhost", "DNS:localhost", 1);
    write_cert(cert2, key2, "example.org", "DNS:*.example.org", 2);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    unlink(cert1);
    unlink(key1);
    unlink(cert2);
    unlink(key2);
    rmdir(tmpdir);
    return 0;
}

static SSL_CTX *server_ctx(void)
{
    pc_cert_cfg certs[2] = {{cert1, key1}, {cert2, key2}};
    pc_tls_cfg cfg = {.certs = certs, .ncerts = 2};
    char err[256];
    SSL_CTX *ctx = pc_tls_server_ctx(&cfg, err, sizeof(err));
    if (!ctx)
        fail_msg("server ctx: %s", err);
    return ctx;
}

static SSL_CTX *client_ctx(const char *ca)
{
    pc_upstream_cfg u = {.verify = 1, .ca_file = (char *)ca};
    char err[256];
    SSL_CTX *ctx = pc_tls_client_ctx(&u, err, sizeof(err));
    if (!ctx)
        fail_msg("client ctx: %s", err);
    return ctx;
}

/* ---- loop and connections ---- */

typedef struct side {
    pc_conn *c;
    size_t in_max;
    unsigned timeout_ms;
    SSL_CTX *tls_server; /* implicit TLS on accept, or for STARTTLS */
    int starttls;        /* server: switch on "STARTTLS\r\n"; client: send it, switch on "220" */
    SSL_CTX *tls_client; /* client: handshake once connected (or after the 220) */
    const char *sni, *vname;
    const char *send_on_connect;
    int echo, hold, close_in_read;
    int ev[PC_CONN_EV_CLOSED + 1];
    int after_close; /* events other than CLOSED after pc_conn_close */
    int close_called;
    pc_buf got;
    size_t pending_at_tls_done;
    char errtext[128];
    int err;
} side;

static uv_loop_t loop;
static uv_tcp_t listener;
static uv_timer_t guard;
static struct sockaddr_storage laddr;
static side srv, cli;

static void side_close(side *s)
{
    if (s->c) {
        s->close_called = 1;
        pc_conn_close(s->c);
    }
}

static void take(side *s)
{
    size_t n = pc_conn_pending(s->c);
    if (!n)
        return;
    assert_int_equal(pc_buf_append(&s->got, pc_buf_ptr(&s->c->in), n), 0);
    if (s->echo)
        assert_int_equal(pc_conn_write(s->c, pc_buf_ptr(&s->c->in), n), 0);
    pc_conn_consume(s->c, n);
}

static void on_ev(pc_conn *c, pc_conn_event ev, void *ud)
{
    side *s = ud;
    s->ev[ev]++;
    if (s->close_called && ev != PC_CONN_EV_CLOSED)
        s->after_close++;
    switch (ev) {
    case PC_CONN_EV_CONNECTED:
        pc_conn_read_start(c);
        if (s->tls_client && !s->starttls)
            assert_int_equal(pc_conn_tls_client(c, s->tls_client, s->sni, s->vname), 0);
        /* with TLS on, this is queued until the handshake is done */
        if (s->send_on_connect)
            assert_int_equal(pc_conn_write(c, s->send_on_connect, strlen(s->send_on_connect)), 0);
        break;
    case PC_CONN_EV_READ:
        if (s->starttls && !c->ssl) {
            const char *p = pc_buf_ptr(&c->in);
            size_t n = pc_conn_pending(c);
            if (s->tls_server && n >= 10 && memcmp(p, "STARTTLS\r\n", 10) == 0) {
                assert_int_equal(pc_conn_write(c, "220 go\r\n", 8), 0);
                assert_int_equal(pc_conn_tls_server(c, s->tls_server), 0);
            } else if (s->tls_client && n >= 8 && memcmp(p, "220 go\r\n", 8) == 0) {
                assert_int_equal(pc_conn_tls_client(c, s->tls_client, s->sni, s->vname), 0);
            }
            break;
        }
        if (!s->hold)
            take(s);
        if (s->close_in_read)
            side_close(s);
        break;
    case PC_CONN_EV_TLS_DONE: s->pending_at_tls_done = pc_conn_pending(c); break;
    case PC_CONN_EV_TLS_FAILED:
        snprintf(s->errtext, sizeof(s->errtext), "%s", c->errtext);
        side_close(s);
        break;
    case PC_CONN_EV_ERROR:
        s->err = c->err;
        side_close(s);
        break;
    case PC_CONN_EV_EOF:
    case PC_CONN_EV_TIMEOUT: side_close(s); break;
    case PC_CONN_EV_CLOSED: s->c = NULL; break;
    default: break;
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    assert_int_equal(status, 0);
    pc_conn *c = pc_conn_new(&loop, srv.in_max, on_ev, &srv);
    assert_non_null(c);
    assert_int_equal(pc_conn_accept(c, server), 0);
    if (srv.c) { /* one server conn per test */
        pc_conn_close(c);
        return;
    }
    srv.c = c;
    pc_conn_set_timeout(c, srv.timeout_ms);
    if (srv.tls_server && !srv.starttls)
        assert_int_equal(pc_conn_tls_server(c, srv.tls_server), 0);
    pc_conn_read_start(c);
}

static void noop_timer(uv_timer_t *t)
{
    (void)t;
}

#define RUN_UNTIL(cond, ms)                                                                        \
    do {                                                                                           \
        uv_update_time(&loop);                                                                     \
        uint64_t end_ = uv_now(&loop) + (ms);                                                      \
        uv_timer_start(&guard, noop_timer, 5, 5);                                                  \
        while (!(cond) && uv_now(&loop) < end_)                                                    \
            uv_run(&loop, UV_RUN_ONCE);                                                            \
        uv_timer_stop(&guard);                                                                     \
    } while (0)

static int setup(void **state)
{
    (void)state;
    memset(&srv, 0, sizeof(srv));
    memset(&cli, 0, sizeof(cli));
    srv.in_max = cli.in_max = 65536;
    pc_buf_init(&srv.got, 0);
    pc_buf_init(&cli.got, 0);
    assert_int_equal(uv_loop_init(&loop), 0);
    uv_timer_init(&loop, &guard);
    uv_tcp_init(&loop, &listener);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&listener, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&listener, 16, on_connection), 0);
    int len = sizeof(laddr);
    uv_tcp_getsockname(&listener, (struct sockaddr *)&laddr, &len);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    side_close(&srv);
    side_close(&cli);
    RUN_UNTIL(!srv.c && !cli.c, 5000);
    assert_null(srv.c);
    assert_null(cli.c);
    uv_close((uv_handle_t *)&listener, NULL);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    pc_buf_release(&srv.got);
    pc_buf_release(&cli.got);
    SSL_CTX_free(srv.tls_server);
    SSL_CTX_free(cli.tls_client);
    return 0;
}

static void start_client(void)
{
    cli.c = pc_conn_new(&loop, cli.in_max, on_ev, &cli);
    assert_non_null(cli.c);
    assert_int_equal(pc_conn_connect(cli.c, (struct sockaddr *)&laddr, 2000), 0);
}

static int got_is(const side *s, const char *str)
{
    size_t n = strlen(str);
    return pc_buf_used(&s->got) == n && memcmp(pc_buf_ptr(&s->got), str, n) == 0;
}

static void fill_pattern(char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (char)((i * 7 + i / 251) & 0xff);
}

static void check_pattern(const side *s, size_t n)
{
    assert_int_equal(pc_buf_used(&s->got), n);
    char *want = malloc(n);
    assert_non_null(want);
    fill_pattern(want, n);
    assert_memory_equal(pc_buf_ptr(&s->got), want, n);
    free(want);
}

/* ---- tests ---- */

static void test_plain_echo(void **state)
{
    (void)state;
    srv.echo = 1;
    cli.send_on_connect = "hello\r\n";
    start_client();
    RUN_UNTIL(got_is(&cli, "hello\r\n"), 3000);
    assert_true(got_is(&cli, "hello\r\n"));
    assert_true(got_is(&srv, "hello\r\n"));
    assert_int_equal(cli.ev[PC_CONN_EV_CONNECTED], 1);

    char a[INET6_ADDRSTRLEN];
    assert_string_equal(pc_addr_str((struct sockaddr *)&srv.c->peer, a, sizeof(a)), "127.0.0.1");
    assert_string_equal(pc_addr_str((struct sockaddr *)&cli.c->local, a, sizeof(a)), "127.0.0.1");
    assert_int_equal(ntohs(((struct sockaddr_in *)&cli.c->peer)->sin_port),
                     ntohs(((struct sockaddr_in *)&laddr)->sin_port));
    assert_null(pc_conn_tls_version(srv.c));
    /* consumed to empty: the idle conn holds no input buffer */
    assert_null(srv.c->in.data);

    side_close(&cli);
    RUN_UNTIL(!srv.c && !cli.c, 3000);
    assert_int_equal(cli.ev[PC_CONN_EV_CLOSED], 1);
    assert_int_equal(srv.ev[PC_CONN_EV_CLOSED], 1);
    assert_int_equal(srv.ev[PC_CONN_EV_EOF], 1);
    assert_int_equal(cli.after_close, 0);
    assert_int_equal(srv.after_close, 0);
}

static void test_tls_ok(void **state)
{
    (void)state;
    srv.tls_server = server_ctx();
    srv.echo = 1;
    cli.tls_client = client_ctx(cert1);
    cli.sni = "localhost";
    cli.vname = "localhost";
    start_client();
    RUN_UNTIL(cli.ev[PC_CONN_EV_TLS_DONE] && srv.ev[PC_CONN_EV_TLS_DONE], 3000);
    assert_int_equal(cli.ev[PC_CONN_EV_TLS_DONE], 1);
    assert_int_equal(srv.ev[PC_CONN_EV_TLS_DONE], 1);
    assert_string_equal(pc_conn_tls_version(cli.c), "TLSv1.3");
    assert_non_null(pc_conn_tls_cipher(srv.c));
    assert_int_equal(pc_conn_write(cli.c, "ping\r\n", 6), 0);
    RUN_UNTIL(got_is(&cli, "ping\r\n"), 3000);
    assert_true(got_is(&cli, "ping\r\n"));
    assert_true(got_is(&srv, "ping\r\n"));
    /* idle again: no plaintext or ciphertext buffers held */
    BUF_MEM *bm = NULL;
    assert_null(srv.c->in.data);
    BIO_get_mem_ptr(srv.c->rbio, &bm);
    assert_true(bm == NULL || bm->max == 0);
    bm = NULL;
    BIO_get_mem_ptr(srv.c->wbio, &bm);
    assert_true(bm == NULL || bm->max == 0);
    side_close(&cli);
    RUN_UNTIL(!srv.c && !cli.c, 3000);
    assert_int_equal(srv.ev[PC_CONN_EV_EOF], 1); /* close_notify */
    assert_int_equal(srv.ev[PC_CONN_EV_ERROR], 0);
}

static void test_tls_early_write_and_close_in_read(void **state)
{
    (void)state;
    /* written during the handshake: queued, sent once it is done, and may arrive with the
     * client's Finished; the server closes from inside its READ */
    srv.tls_server = server_ctx();
    srv.echo = 1;
    srv.close_in_read = 1;
    cli.tls_client = client_ctx(cert1);
    cli.vname = "localhost";
    cli.send_on_connect = "early\r\n";
    start_client();
    RUN_UNTIL(!srv.c && !cli.c, 3000);
    assert_true(got_is(&srv, "early\r\n"));
    assert_true(got_is(&cli, "early\r\n")); /* the echo left before the close */
    assert_int_equal(srv.ev[PC_CONN_EV_CLOSED], 1);
    assert_int_equal(srv.after_close, 0);
    assert_int_equal(cli.ev[PC_CONN_EV_EOF], 1);
}

static void test_tls_bad_name(void **state)
{
    (void)state;
    srv.tls_server = server_ctx();
    cli.tls_client = client_ctx(cert1);
    cli.sni = "localhost";
    cli.vname = "other.example";
    start_client();
    RUN_UNTIL(!cli.c && !srv.c, 3000);
    assert_int_equal(cli.ev[PC_CONN_EV_TLS_FAILED], 1);
    assert_int_equal(cli.ev[PC_CONN_EV_TLS_DONE], 0);
    assert_non_null(strstr(cli.errtext, "certificate verify failed"));
    assert_int_equal(srv.ev[PC_CONN_EV_TLS_DONE], 0);
    assert_int_equal(srv.ev[PC_CONN_EV_TLS_FAILED], 1);
}

static void test_tls_ip_name(void **state)
{
    (void)state;
    /* an IP literal is checked as an IP: the certificate has none */
    srv.tls_server = server_ctx();
    cli.tls_client = client_ctx(cert1);
    cli.vname = "127.0.0.1";
    start_client();
    RUN_UNTIL(!cli.c && !srv.c, 3000);
    assert_int_equal(cli.ev[PC_CONN_EV_TLS_FAILED], 1);
    assert_non_null(strstr(cli.errtext, "IP address mismatch"));
}

static void test_tls_sni(void **state)
{
    (void)state;
    srv.tls_server = server_ctx();
    srv.echo = 1;
    cli.tls_client = client_ctx(cert2);
    cli.sni = "mail.example.org";
    cli.vname = "mail.example.org";
    start_client();
    RUN_UNTIL(cli.ev[PC_CONN_EV_TLS_DONE] && srv.ev[PC_CONN_EV_TLS_DONE], 3000);
    assert_int_equal(cli.ev[PC_CONN_EV_TLS_DONE], 1);
    assert_int_equal(srv.ev[PC_CONN_EV_TLS_DONE], 1);
}

static void test_tls_sni_default(void **state)
{
    (void)state;
    /* an unknown name gets the default (localhost) certificate, which cert2 does not sign */
    srv.tls_server = server_ctx();
    cli.tls_client = client_ctx(cert2);
    cli.sni = "unknown.test";
    start_client();
    RUN_UNTIL(!cli.c && !srv.c, 3000);
    assert_int_equal(cli.ev[PC_CONN_EV_TLS_FAILED], 1);
}

static void test_starttls_discards_injection(void **state)
{
    (void)state;
    srv.tls_server = server_ctx();
    srv.starttls = 1;
    cli.starttls = 1;
    cli.tls_client = client_ctx(cert1);
    cli.vname = "localhost";
    cli.send_on_connect = "STARTTLS\r\nINJECTED\r\n"; /* one write, one segment */
    start_client();
    RUN_UNTIL(cli.ev[PC_CONN_EV_TLS_DONE] && srv.ev[PC_CONN_EV_TLS_DONE], 3000);
    assert_int_equal(srv.ev[PC_CONN_EV_TLS_DONE], 1);
    assert_int_equal(cli.ev[PC_CONN_EV_TLS_DONE], 1);
    assert_int_equal(srv.pending_at_tls_done, 0);
    assert_int_equal(pc_conn_pending(srv.c), 0);
    assert_int_equal(pc_conn_pending(cli.c), 0);
    srv.starttls = cli.starttls = 0;
    assert_int_equal(pc_conn_write(cli.c, "EHLO x\r\n", 8), 0);
    RUN_UNTIL(got_is(&srv, "EHLO x\r\n"), 3000);
    assert_true(got_is(&srv, "EHLO x\r\n"));
}

static void test_tls11_refused(void **state)
{
    (void)state;
    srv.tls_server = server_ctx();
    SSL_CTX *old = SSL_CTX_new(TLS_client_method());
    assert_non_null(old);
    SSL_CTX_set_security_level(old, 0);
    SSL_CTX_set_cipher_list(old, "DEFAULT:@SECLEVEL=0");
    SSL_CTX_set_min_proto_version(old, TLS1_VERSION);
    SSL_CTX_set_max_proto_version(old, TLS1_1_VERSION);
    cli.tls_client = old;
    start_client();
    RUN_UNTIL(!cli.c && !srv.c, 3000);
    assert_int_equal(srv.ev[PC_CONN_EV_TLS_FAILED], 1);
    assert_int_equal(srv.ev[PC_CONN_EV_TLS_DONE], 0);
    assert_non_null(strstr(srv.errtext, "unsupported protocol"));
    assert_int_equal(cli.ev[PC_CONN_EV_TLS_FAILED], 1);
}

static void backpressure(int tls)
{
    const size_t total = 300000;
    srv.in_max = 4096;
    srv.hold = 1;
    if (tls) {
        srv.tls_server = server_ctx();
        cli.tls_client = client_ctx(cert1);
        cli.vname = "localhost";
    }
    start_client();
    if (tls) {
        RUN_UNTIL(cli.ev[PC_CONN_EV_TLS_DONE], 3000);
        assert_int_equal(cli.ev[PC_CONN_EV_TLS_DONE], 1);
    } else {
        RUN_UNTIL(cli.ev[PC_CONN_EV_CONNECTED] && srv.c, 3000);
    }
    char *data = malloc(total);
    assert_non_null(data);
    fill_pattern(data, total);
    assert_int_equal(pc_conn_write(cli.c, data, total), 0);
    free(data);
    RUN_UNTIL(srv.c && srv.c->full, 3000);
    assert_non_null(srv.c);
    assert_true(srv.c->full);
    int reads = srv.ev[PC_CONN_EV_READ];
    RUN_UNTIL(0, 200); /* nothing more is read while full */
    assert_int_equal(srv.ev[PC_CONN_EV_READ], reads);
    assert_int_equal(pc_conn_pending(srv.c), 4096);
    srv.hold = 0;
    take(&srv); /* frees space: reading resumes */
    RUN_UNTIL(pc_buf_used(&srv.got) >= total, 5000);
    check_pattern(&srv, total);
    assert_false(srv.c->full);
    assert_null(srv.c->in.data);
    RUN_UNTIL(cli.c->wpending == 0, 2000);
    assert_int_equal(cli.c->wpending, 0);
}

static void test_backpressure_plain(void **state)
{
    (void)state;
    backpressure(0);
}

static void test_backpressure_tls(void **state)
{
    (void)state;
    backpressure(1);
}

static void test_idle_timeout(void **state)
{
    (void)state;
    srv.timeout_ms = 100;
    start_client();
    uv_update_time(&loop);
    uint64_t t0 = uv_now(&loop);
    RUN_UNTIL(srv.ev[PC_CONN_EV_TIMEOUT], 3000);
    assert_int_equal(srv.ev[PC_CONN_EV_TIMEOUT], 1);
    assert_true(uv_now(&loop) - t0 >= 90);
    RUN_UNTIL(!cli.c && !srv.c, 3000);
    assert_int_equal(cli.ev[PC_CONN_EV_EOF], 1);
    assert_int_equal(srv.ev[PC_CONN_EV_TIMEOUT], 1);
}

static void test_close_once(void **state)
{
    (void)state;
    start_client();
    RUN_UNTIL(cli.ev[PC_CONN_EV_CONNECTED] && srv.c, 3000);
    assert_int_equal(pc_conn_write(cli.c, "bye\r\n", 5), 0);
    side_close(&cli);
    pc_conn_close(cli.c); /* idempotent */
    assert_int_equal(pc_conn_write(cli.c, "x", 1), -1);
    pc_conn_read_start(cli.c);
    pc_conn_consume(cli.c, 0);
    RUN_UNTIL(!cli.c && !srv.c, 3000);
    assert_int_equal(cli.ev[PC_CONN_EV_CLOSED], 1);
    assert_int_equal(cli.after_close, 0);
    assert_true(got_is(&srv, "bye\r\n")); /* queued writes go out before the close */
    assert_int_equal(srv.ev[PC_CONN_EV_EOF], 1);
    assert_int_equal(srv.ev[PC_CONN_EV_CLOSED], 1);
}

static void test_close_unopened(void **state)
{
    (void)state;
    cli.c = pc_conn_new(&loop, 100, on_ev, &cli);
    assert_non_null(cli.c);
    assert_int_equal(pc_conn_tls_server(cli.c, NULL), -1);
    side_close(&cli);
    RUN_UNTIL(!cli.c, 1000);
    assert_int_equal(cli.ev[PC_CONN_EV_CLOSED], 1);
}

static void test_connect_refused(void **state)
{
    (void)state;
    struct sockaddr_storage dead;
    uv_tcp_t t;
    uv_tcp_init(&loop, &t);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_bind(&t, (struct sockaddr *)&a, 0);
    int len = sizeof(dead);
    uv_tcp_getsockname(&t, (struct sockaddr *)&dead, &len);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    cli.c = pc_conn_new(&loop, 100, on_ev, &cli);
    assert_int_equal(pc_conn_connect(cli.c, (struct sockaddr *)&dead, 1000), 0);
    RUN_UNTIL(!cli.c, 3000);
    assert_int_equal(cli.ev[PC_CONN_EV_ERROR], 1);
    assert_int_equal(cli.err, UV_ECONNREFUSED);
    assert_int_equal(cli.ev[PC_CONN_EV_CLOSED], 1);
}

static void test_connect_timeout(void **state)
{
    (void)state;
    /* A loopback listener that never accepts, its queue filled by earlier connects: the kernel
     * drops further SYNs, so the connect hangs until the conn's own timeout. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(lfd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t alen = sizeof(a);
    getsockname(lfd, (struct sockaddr *)&a, &alen);
    assert_int_equal(listen(lfd, 0), 0);
    int fill[4];
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fill[i], (struct sockaddr *)&a, sizeof(a));
    }
    usleep(50000);
    cli.c = pc_conn_new(&loop, 100, on_ev, &cli);
    uv_update_time(&loop);
    uint64_t t0 = uv_now(&loop);
    assert_int_equal(pc_conn_connect(cli.c, (struct sockaddr *)&a, 150), 0);
    RUN_UNTIL(!cli.c, 3000);
    assert_int_equal(cli.ev[PC_CONN_EV_TIMEOUT], 1);
    assert_int_equal(cli.ev[PC_CONN_EV_CONNECTED], 0);
    assert_true(uv_now(&loop) - t0 >= 140);
    assert_int_equal(cli.ev[PC_CONN_EV_CLOSED], 1);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(lfd);
}

static void test_large_tls(void **state)
{
    (void)state;
    const size_t total = 4u << 20;
    srv.tls_server = server_ctx();
    cli.tls_client = client_ctx(cert1);
    cli.vname = "localhost";
    cli.c = NULL;
    start_client();
    RUN_UNTIL(cli.ev[PC_CONN_EV_TLS_DONE], 3000);
    assert_int_equal(cli.ev[PC_CONN_EV_TLS_DONE], 1);
    cli.c->want_drain = 1;
    char *data = malloc(total);
    assert_non_null(data);
    fill_pattern(data, total);
    assert_int_equal(pc_conn_write(cli.c, data, total), 0);
    free(data);
    RUN_UNTIL(pc_buf_used(&srv.got) >= total && cli.ev[PC_CONN_EV_DRAIN], 10000);
    check_pattern(&srv, total);
    assert_int_equal(cli.ev[PC_CONN_EV_DRAIN], 1);
}

static void test_tls_ctx_errors(void **state)
{
    (void)state;
    char err[256];
    pc_cert_cfg bad = {"/nonexistent/cert.pem", NULL};
    pc_tls_cfg cfg = {.certs = &bad, .ncerts = 1};
    assert_null(pc_tls_server_ctx(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/cert.pem"));
    pc_cert_cfg mism = {cert1, key2};
    cfg.certs = &mism;
    assert_null(pc_tls_server_ctx(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, key2)); /* the key that does not fit is named */
    pc_cert_cfg good = {cert1, key1};
    cfg.certs = &good;
    cfg.min_version = "TLSv1.0";
    assert_null(pc_tls_server_ctx(&cfg, err, sizeof(err)));
    cfg.min_version = "TLSv1.3";
    SSL_CTX *ctx = pc_tls_server_ctx(&cfg, err, sizeof(err));
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_3_VERSION);
    assert_true(SSL_CTX_get_options(ctx) & SSL_OP_NO_RENEGOTIATION);
    assert_true(SSL_CTX_get_mode(ctx) & SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_free(ctx);
    pc_upstream_cfg u = {.verify = 1, .ca_file = "/nonexistent/ca.pem"};
    assert_null(pc_tls_client_ctx(&u, err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/ca.pem"));
    ERR_clear_error();
}

/* ---- address table ---- */

static uint32_t fake_now;
static uint32_t fake_clock(void)
{
    return fake_now;
}

static struct sockaddr_storage v4(const char *s)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    inet_pton(AF_INET, s, &a->sin_addr);
    return ss;
}

static struct sockaddr_storage v6(const char *s)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    inet_pton(AF_INET6, s, &a->sin6_addr);
    return ss;
}

#define SA(x) ((struct sockaddr *)&(x))

static void test_addrtable_conns(void **state)
{
    (void)state;
    assert_int_equal(pc_addrtable_init(64), 0);
    struct sockaddr_storage a = v4("127.0.0.9"), am = v6("::ffff:127.0.0.9"), b = v6("::1");
    assert_int_equal(pc_addr_conn_inc(SA(a)), 1);
    assert_int_equal(pc_addr_conn_inc(SA(am)), 2); /* v4-mapped is the same address */
    assert_int_equal(pc_addr_conn_inc(SA(b)), 1);
    pc_addr_conn_dec(SA(a));
    assert_int_equal(pc_addr_conn_inc(SA(a)), 2);
    pc_addr_conn_dec(SA(a));
    pc_addr_conn_dec(SA(a));
    pc_addr_conn_dec(SA(a)); /* no underflow */
    assert_int_equal(pc_addr_conn_inc(SA(a)), 1);
    pc_addrtable_free();
    assert_int_equal(pc_addr_conn_inc(SA(a)), 1); /* no table: counts nothing, refuses nothing */
}

static void test_addrtable_window(void **state)
{
    (void)state;
    assert_int_equal(pc_addrtable_init(64), 0);
    pc_addrtable_set_clock(fake_clock);
    struct sockaddr_storage a = v4("198.51.100.7");
    fake_now = 1000;
    assert_int_equal(pc_addr_count(SA(a), PC_CNT_HANDSHAKES, 60), 0);
    assert_int_equal(pc_addr_event(SA(a), PC_CNT_HANDSHAKES, 60), 1);
    assert_int_equal(pc_addr_event(SA(a), PC_CNT_HANDSHAKES, 60), 2);
    assert_int_equal(pc_addr_event(SA(a), PC_CNT_HANDSHAKES, 60), 3);
    assert_int_equal(pc_addr_count(SA(a), PC_CNT_AUTHFAIL, 60), 0);
    fake_now = 1030;
    assert_int_equal(pc_addr_event(SA(a), PC_CNT_HANDSHAKES, 60), 4);
    assert_int_equal(pc_addr_count(SA(a), PC_CNT_HANDSHAKES, 10), 1);
    assert_int_equal(pc_addr_count(SA(a), PC_CNT_HANDSHAKES, 3600), 4); /* clamped to 60 s */
    fake_now = 1060;
    assert_int_equal(pc_addr_count(SA(a), PC_CNT_HANDSHAKES, 60), 1);
    fake_now = 1089;
    assert_int_equal(pc_addr_count(SA(a), PC_CNT_HANDSHAKES, 60), 1);
    fake_now = 1090;
    assert_int_equal(pc_addr_count(SA(a), PC_CNT_HANDSHAKES, 60), 0);
    fake_now = 5000;
    assert_int_equal(pc_addr_event(SA(a), PC_CNT_AUTHFAIL, 60), 1);
    assert_int_equal(pc_addr_count(SA(a), PC_CNT_HANDSHAKES, 60), 0);
    fake_now = 3; /* a young clock: windows reaching before second 1 */
    assert_int_equal(pc_addrtable_init(64), 0);
    assert_int_equal(pc_addr_event(SA(a), PC_CNT_PREGREET, 60), 1);
    assert_int_equal(pc_addr_count(SA(a), PC_CNT_PREGREET, 60), 1);
    pc_addrtable_set_clock(NULL);
    pc_addrtable_free();
}

static void test_addrtable_bounded(void **state)
{
    (void)state;
    assert_int_equal(pc_addrtable_init(16), 0);
    pc_addrtable_set_clock(fake_clock);
    fake_now = 100;
    struct sockaddr_storage busy = v4("203.0.113.1");
    assert_int_equal(pc_addr_conn_inc(SA(busy)), 1);
    char s[64];
    /* many idle addresses recycle slots; the one with a connection in flight is kept */
    for (unsigned i = 0; i < 5000; i++) {
        snprintf(s, sizeof(s), "10.%u.%u.%u", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        struct sockaddr_storage x = v4(s);
        fake_now = 100 + i / 100;
        assert_true(pc_addr_event(SA(x), PC_CNT_AUTHFAIL, 60) >= 1);
    }
    assert_int_equal(pc_addr_conn_inc(SA(busy)), 2);
    /* a table full of connections in flight degrades to not counting */
    for (unsigned i = 0; i < 64; i++) {
        snprintf(s, sizeof(s), "2001:db8::%x", i + 1);
        struct sockaddr_storage x = v6(s);
        assert_true(pc_addr_conn_inc(SA(x)) >= 1);
    }
    assert_int_equal(pc_addr_conn_inc(SA(busy)), 3);
    pc_addrtable_set_clock(NULL);
    pc_addrtable_free();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plain_echo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_early_write_and_close_in_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_bad_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_ip_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_sni, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_sni_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_starttls_discards_injection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls11_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backpressure_plain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backpressure_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_unopened, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_tls, setup, teardown),
        cmocka_unit_test(test_tls_ctx_errors),
        cmocka_unit_test(test_addrtable_conns),
        cmocka_unit_test(test_addrtable_window),
        cmocka_unit_test(test_addrtable_bounded),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
