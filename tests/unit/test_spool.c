/* test_spool.c — the spool (memory, temp file, budgets) and the message object (header index,
 * added/removed fields, replacement, reads at every offset consistent with the size), and the
 * sealed message shared with threads: references, budgets until the last one, sealed readers. */
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/spool.h"

static size_t count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    size_t n = 0;
    if (!d)
        return 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static int setup_big(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(pc_spool_setup("/tmp", 64u << 20, 256u << 20, err, sizeof(err)), 0);
    return 0;
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (unsigned char)(seed >> 16);
    }
}

static void check_spool(pc_spool *s, const unsigned char *want, size_t n)
{
    assert_int_equal(pc_spool_size(s), n);
    unsigned char buf[5000];
    unsigned seed = 7;
    for (int k = 0; k < 500; k++) {
        seed = seed * 1103515245u + 12345u;
        size_t off = (seed >> 8) % (n + 10);
        size_t len = (seed >> 4) % sizeof(buf);
        ssize_t r = pc_spool_read(s, off, buf, len);
        size_t exp = off >= n ? 0 : (len < n - off ? len : n - off);
        assert_int_equal(r, (ssize_t)exp);
        if (exp)
            assert_memory_equal(buf, want + off, exp);
    }
}

static void test_memory_then_file(void **state)
{
    (void)state;
    enum { N = 100000 };
    unsigned char *data = malloc(N);
    fill(data, N, 1);
    size_t fds0 = count_fds();
    pc_spool *s = pc_spool_new(4096);
    assert_non_null(s);
    assert_int_equal(pc_spool_write(s, data, 1000), PC_SPOOL_OK);
    assert_int_equal(pc_spool_write(s, data + 1000, 3000), PC_SPOOL_OK);
    assert_int_equal(count_fds(), fds0); /* still in memory */
    check_spool(s, data, 4000);
    for (size_t off = 4000; off < N; off += 777) {
        size_t n = N - off < 777 ? N - off : 777;
        assert_int_equal(pc_spool_write(s, data + off, n), PC_SPOOL_OK);
    }
    assert_int_equal(count_fds(), fds0 + 1); /* moved to a temp file */
    check_spool(s, data, N);
    pc_spool_free(s);
    assert_int_equal(count_fds(), fds0);
    pc_spool_free(NULL);
    free(data);
}

static void test_budgets(void **state)
{
    (void)state;
    char err[256];
    unsigned char data[8192];
    fill(data, sizeof(data), 3);
    /* disk budget */
    assert_int_equal(pc_spool_setup("/tmp", 1u << 20, 20000, err, sizeof(err)), 0);
    pc_spool *s = pc_spool_new(1000);
    int rc = PC_SPOOL_OK;
    size_t written = 0;
    while (written < 100000 && (rc = pc_spool_write(s, data, sizeof(data))) == PC_SPOOL_OK)
        written += sizeof(data);
    assert_int_equal(rc, PC_SPOOL_ENOSPC);
    assert_true(written <= 20000);
    assert_int_equal(pc_spool_size(s), written);
    assert_int_equal(pc_spool_write(s, "x", 1), PC_SPOOL_EIO); /* stays failed */
    unsigned char buf[100];
    assert_int_equal(pc_spool_read(s, 0, buf, 100), 100); /* still readable */
    assert_memory_equal(buf, data, 100);
    /* freeing gives the bytes back */
    pc_spool_free(s);
    s = pc_spool_new(1000);
    assert_int_equal(pc_spool_write(s, data, 8000), PC_SPOOL_OK);
    pc_spool_free(s);

    /* memory budget shared by all spools: past it, a spool moves to disk; past both, ENOSPC */
    assert_int_equal(pc_spool_setup("/tmp", 10000, 7000, err, sizeof(err)), 0);
    pc_spool *a = pc_spool_new(1u << 20), *b = pc_spool_new(1u << 20);
    assert_int_equal(pc_spool_write(a, data, 6000), PC_SPOOL_OK);
    assert_int_equal(pc_spool_write(b, data, 6000), PC_SPOOL_OK); /* on disk */
    assert_int_equal(pc_spool_read(b, 0, buf, 100), 100);
    assert_memory_equal(buf, data, 100);
    pc_spool *c = pc_spool_new(1u << 20);
    assert_int_equal(pc_spool_write(c, data, 6000), PC_SPOOL_ENOSPC); /* neither budget has room */
    pc_spool_free(a);
    pc_spool_free(b);
    pc_spool_free(c);

    assert_int_equal(pc_spool_setup("/nonexistent/dir", 0, 0, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/nonexistent/dir"));
    setup_big(NULL);
}

/* ---- message ---- */

static const char MSG[] = "Received: from a\r\n"
                          "\tby b; Mon, 1 Jan 2024\r\n"
                          "From: Alice <a@example.org>\r\n"
                          "Subject: hello\r\n"
                          "  world\r\n"
                          "X-Spam: yes\r\n"
                          "subject: second\r\n"
                          "\r\n"
                          "Subject: not a header\r\n"
                          "body\r\n";

static pc_message *new_msg(const void *p, size_t n, size_t threshold)
{
    pc_spool *s = pc_spool_new(threshold);
    assert_non_null(s);
    assert_int_equal(pc_spool_write(s, p, n), PC_SPOOL_OK);
    pc_message *m = pc_message_new(s);
    assert_non_null(m);
    return m;
}

/* Reads the whole message at every start offset and with several chunk sizes; all must agree. */
static char *read_all(const pc_message *m, size_t *len)
{
    size_t n = pc_message_size(m);
    char *whole = malloc(n + 1);
    size_t got = 0;
    ssize_t r;
    while ((r = pc_message_read(m, got, whole + got, 7)) > 0)
        got += (size_t)r;
    assert_int_equal(r, 0);
    assert_int_equal(got, n);
    whole[n] = '\0';
    char buf[64];
    size_t step = n > 4000 ? n / 997 : 1;
    for (size_t off = 0; off <= n; off += step) {
        r = pc_message_read(m, off, buf, sizeof(buf));
        size_t exp = n - off < sizeof(buf) ? n - off : sizeof(buf);
        assert_int_equal(r, (ssize_t)exp);
        assert_memory_equal(buf, whole + off, exp);
    }
    *len = n;
    return whole;
}

static void test_message_headers(void **state)
{
    (void)state;
    pc_message *m = new_msg(MSG, sizeof(MSG) - 1, 64);
    char out[128];
    assert_int_equal(pc_message_size(m), sizeof(MSG) - 1);
    assert_int_equal(pc_message_header(m, "subject", 0, out, sizeof(out)), 12);
    assert_string_equal(out, "hello  world");
    assert_int_equal(pc_message_header(m, "SUBJECT", 1, out, sizeof(out)), 6);
    assert_string_equal(out, "second");
    assert_int_equal(pc_message_header(m, "Subject", 2, out, sizeof(out)), -1);
    assert_int_equal(pc_message_header(m, "Received", 0, out, sizeof(out)),
                     (ssize_t)strlen("from a\tby b; Mon, 1 Jan 2024"));
    assert_string_equal(out, "from a\tby b; Mon, 1 Jan 2024");
    /* truncation keeps the full length as the result */
    assert_int_equal(pc_message_header(m, "From", 0, out, 6),
                     (ssize_t)strlen("Alice <a@example.org>"));
    assert_string_equal(out, "Alice");
    assert_int_equal(pc_message_header(m, "body", 0, out, sizeof(out)), -1);

    assert_int_equal(pc_message_add_header(m, "X-First", "1"), 0);
    assert_int_equal(pc_message_prepend_raw(m, "X-Raw: r\r\n\tcont\r\n", 17), 0);
    assert_int_equal(pc_message_add_header(m, "X-Top", "folded\r\n value"), 0);
    assert_int_equal(pc_message_add_header(m, "Bad Name", "v"), -1);
    assert_int_equal(pc_message_add_header(m, "X-Bad", "a\r\nb"), -1);
    assert_int_equal(pc_message_add_header(m, "X-Bad", "a\nb"), -1);
    assert_int_equal(pc_message_prepend_raw(m, "X-Bad: no crlf", 14), -1);
    assert_int_equal(pc_message_header(m, "x-top", 0, out, sizeof(out)), 12);
    assert_string_equal(out, "folded value");

    assert_int_equal(pc_message_remove_header(m, "X-Spam", 0), 0);
    assert_int_equal(pc_message_remove_header(m, "X-Spam", 0), -1);
    assert_int_equal(pc_message_remove_header(m, "subject", 0), 0); /* the folded one */
    assert_int_equal(pc_message_remove_header(m, "X-First", 0), 0); /* an added one */
    assert_int_equal(pc_message_header(m, "subject", 0, out, sizeof(out)), 6);

    size_t n;
    char *all = read_all(m, &n);
    const char *want = "X-Top: folded\r\n value\r\n"
                       "X-Raw: r\r\n\tcont\r\n"
                       "Received: from a\r\n"
                       "\tby b; Mon, 1 Jan 2024\r\n"
                       "From: Alice <a@example.org>\r\n"
                       "subject: second\r\n"
                       "\r\n"
                       "Subject: not a header\r\n"
                       "body\r\n";
    assert_string_equal(all, want);
    free(all);

    /* replacement: the prepended fields stay on top of the new content */
    const char repl[] = "Subject: new\r\n\r\nnew body\r\n";
    assert_int_equal(pc_message_replace(m, repl, sizeof(repl) - 1), 0);
    assert_int_equal(pc_message_header(m, "Subject", 0, out, sizeof(out)), 3);
    assert_int_equal(pc_message_remove_header(m, "Subject", 0), 0);
    all = read_all(m, &n);
    assert_string_equal(all, "X-Top: folded\r\n value\r\nX-Raw: r\r\n\tcont\r\n\r\nnew body\r\n");
    free(all);
    pc_message_unref(m);
    pc_message_unref(NULL);
}

static void test_message_file_backed(void **state)
{
    (void)state;
    /* the same operations with the bytes in a temp file and an index across read chunks */
    size_t n = 0, cap = 300000;
    char *p = malloc(cap);
    for (int i = 0; i < 3000; i++)
        n += (size_t)snprintf(p + n, cap - n, "X-H%d: value %d\r\n continued %d\r\n", i, i, i);
    n += (size_t)snprintf(p + n, cap - n, "\r\nbody\r\n");
    pc_message *m = new_msg(p, n, 1024);
    char out[64];
    assert_int_equal(pc_message_header(m, "X-H2999", 0, out, sizeof(out)), 25);
    assert_string_equal(out, "value 2999 continued 2999");
    for (int i = 0; i < 3000; i += 2) {
        char name[16];
        snprintf(name, sizeof(name), "x-h%d", i);
        assert_int_equal(pc_message_remove_header(m, name, 0), 0);
    }
    assert_int_equal(pc_message_add_header(m, "X-New", "n"), 0);
    size_t len;
    char *all = read_all(m, &len);
    /* build the expectation by hand */
    size_t en = 0;
    char *exp = malloc(cap);
    en += (size_t)snprintf(exp, cap, "X-New: n\r\n");
    for (int i = 1; i < 3000; i += 2)
        en += (size_t)snprintf(exp + en, cap - en, "X-H%d: value %d\r\n continued %d\r\n", i, i, i);
    en += (size_t)snprintf(exp + en, cap - en, "\r\nbody\r\n");
    assert_int_equal(len, en);
    assert_memory_equal(all, exp, en);
    free(all);
    free(exp);
    free(p);
    pc_message_unref(m);
}

static void test_header_limits(void **state)
{
    (void)state;
    /* 12,000 fields (over the 10,000 cap) after a field with a 100 KB name */
    size_t cap = 400000, n = 0;
    char *p = malloc(cap);
    memset(p, 'N', 100000);
    n = 100000;
    n += (size_t)snprintf(p + n, cap - n, ": big\r\n");
    for (int i = 0; i < 12000; i++)
        n += (size_t)snprintf(p + n, cap - n, "H: %d\r\n", i);
    n += (size_t)snprintf(p + n, cap - n, "\r\nbody\r\n");
    pc_message *m = new_msg(p, n, 1u << 20);
    char out[32];
    assert_int_equal(pc_message_header(m, "H", 0, out, sizeof(out)), 1);
    assert_string_equal(out, "0");
    assert_int_equal(pc_message_header(m, "H", 9998, out, sizeof(out)), 4);
    assert_string_equal(out, "9998");
    /* beyond the index: not found, but still in the message */
    assert_int_equal(pc_message_header(m, "H", 10500, out, sizeof(out)), -1);
    assert_int_equal(pc_message_remove_header(m, "H", 0), 0);
    size_t len;
    char *all = read_all(m, &len);
    assert_int_equal(len, n - 6);
    assert_memory_equal(all, p, 100007);
    assert_memory_equal(all + 100007, p + 100013, n - 100013);
    free(all);
    pc_message_unref(m);

    /* a header section over 1 MiB: indexing stops, bytes stay */
    size_t big = (1u << 20) + 200000;
    char *q = malloc(big + 100);
    size_t qn = 0;
    while (qn < big)
        qn += (size_t)snprintf(q + qn, big + 100 - qn, "X-Long: %0200d\r\n", 1);
    qn += (size_t)snprintf(q + qn, big + 100 - qn, "Late: yes\r\n\r\n");
    m = new_msg(q, qn, 4096);
    assert_int_equal(pc_message_header(m, "Late", 0, out, sizeof(out)), -1);
    assert_int_equal(pc_message_header(m, "X-Long", 0, out, sizeof(out)), 200);
    assert_int_equal(pc_message_size(m), qn);
    char *whole = read_all(m, &len);
    assert_memory_equal(whole, q, qn);
    free(whole);
    pc_message_unref(m);
    free(q);
    free(p);
}

static void test_odd_messages(void **state)
{
    (void)state;
    char out[32];
    /* no empty line, no final CRLF, bare LF lines, a line without colon */
    const char a[] = "A: 1\nnocolon\nB: 2";
    pc_message *m = new_msg(a, sizeof(a) - 1, 64);
    assert_int_equal(pc_message_header(m, "B", 0, out, sizeof(out)), 1);
    assert_int_equal(pc_message_remove_header(m, "A", 0), 0);
    size_t len;
    char *all = read_all(m, &len);
    assert_string_equal(all, "nocolon\nB: 2");
    free(all);
    pc_message_unref(m);
    /* empty message */
    m = new_msg("", 0, 64);
    assert_int_equal(pc_message_size(m), 0);
    assert_int_equal(pc_message_header(m, "A", 0, out, sizeof(out)), -1);
    assert_int_equal(pc_message_read(m, 0, out, sizeof(out)), 0);
    pc_message_unref(m);
    /* starts with the empty line: no headers */
    m = new_msg("\r\nA: 1\r\n", 8, 64);
    assert_int_equal(pc_message_header(m, "A", 0, out, sizeof(out)), -1);
    pc_message_unref(m);
}

/* ---- references and the sealed readers ---- */

static void test_refs_keep_bytes_and_budgets(void **state)
{
    (void)state;
    size_t mem0, disk0, mem, disk;
    pc_spool_usage(&mem0, &disk0);
    unsigned char data[20000];
    fill(data, sizeof(data), 11);
    pc_message *m = new_msg((const char *)data, sizeof(data), 1u << 20); /* in memory */
    pc_spool_usage(&mem, &disk);
    assert_true(mem >= mem0 + sizeof(data));
    size_t len = 1;
    assert_null(pc_message_map(m, &len)); /* not sealed yet: the bytes may still change */
    assert_int_equal(len, 0);
    pc_message_seal(m);
    assert_int_equal(pc_message_fd(m), -1); /* in memory: no descriptor */
    const void *p = pc_message_map(m, &len);
    assert_non_null(p);
    assert_int_equal(len, sizeof(data));
    assert_memory_equal(p, data, sizeof(data));
    pc_message *held = pc_message_ref(m);
    assert_ptr_equal(held, m);
    pc_message_unref(m); /* the session is done with it */
    pc_spool_usage(&mem, &disk);
    assert_true(mem >= mem0 + sizeof(data)); /* still charged: a reference is out */
    assert_memory_equal(p, data, sizeof(data));
    /* a replacement while the mapping is lent: the old bytes stay valid until the last unref */
    assert_int_equal(pc_message_replace(held, "A: 1\r\n\r\nnew\r\n", 14), 0);
    assert_memory_equal(p, data, sizeof(data));
    const void *q = pc_message_map(held, &len);
    assert_int_equal(len, 14);
    assert_memory_equal(q, "A: 1\r\n\r\nnew\r\n", 14);
    pc_message_unref(held);
    pc_spool_usage(&mem, &disk);
    assert_int_equal(mem, mem0);
    assert_int_equal(disk, disk0);
}

static void test_sealed_file_message(void **state)
{
    (void)state;
    size_t mem0, disk0, mem, disk;
    pc_spool_usage(&mem0, &disk0);
    unsigned char data[50000];
    fill(data, sizeof(data), 12);
    pc_message *m = new_msg((const char *)data, sizeof(data), 4096); /* on disk */
    pc_spool_usage(&mem, &disk);
    assert_int_equal(disk, disk0 + sizeof(data));
    pc_message_seal(m);
    int fd = pc_message_fd(m);
    assert_true(fd >= 0);
    unsigned char buf[100];
    assert_int_equal(pread(fd, buf, sizeof(buf), 30000), (ssize_t)sizeof(buf));
    assert_memory_equal(buf, data + 30000, sizeof(buf));
    size_t len;
    const unsigned char *p = pc_message_map(m, &len);
    assert_non_null(p);
    assert_int_equal(len, sizeof(data));
    assert_memory_equal(p, data, sizeof(data));
    /* header changes are layered on top: the sealed bytes do not move */
    assert_int_equal(pc_message_add_header(m, "X-Top", "1"), 0);
    assert_memory_equal(pc_message_map(m, &len), data, sizeof(data));
    pc_message_unref(m);
    /* sealed: its spool takes no more bytes */
    pc_spool *sp = pc_spool_new(64);
    assert_int_equal(pc_spool_write(sp, "A: 1\r\n", 6), PC_SPOOL_OK);
    m = pc_message_new(sp);
    pc_message_seal(m);
    assert_int_equal(pc_spool_write(sp, "more", 4), PC_SPOOL_EIO);
    assert_int_equal(pc_message_size(m), 6);
    pc_message_unref(m);
    pc_spool_usage(&mem, &disk);
    assert_int_equal(disk, disk0);
    assert_int_equal(mem, mem0);
}

typedef struct reader_job {
    pc_message *m;
    const unsigned char *want;
    size_t n;
    int ok;
} reader_job;

static void *reader_thread(void *arg)
{
    reader_job *j = arg;
    for (int round = 0; round < 50; round++) {
        size_t len;
        const unsigned char *p = pc_message_map(j->m, &len);
        if (!p || len != j->n || memcmp(p, j->want, len) != 0)
            return NULL;
        int fd = pc_message_fd(j->m);
        unsigned char b[64];
        if (fd >= 0 && (pread(fd, b, sizeof(b), 100) != (ssize_t)sizeof(b) ||
                        memcmp(b, j->want + 100, sizeof(b)) != 0))
            return NULL;
    }
    j->ok = 1;
    pc_message_unref(j->m); /* the last one out frees it, on this thread */
    return NULL;
}

/* Several threadpool-like readers hold references while the owner drops its own at once: every
 * reader sees the sealed bytes, and the last unref (on whichever thread) frees them and returns
 * the budgets. Run under ThreadSanitizer or ASan, a race or use after free shows here. */
static void test_readers_on_threads(void **state)
{
    (void)state;
    size_t mem0, disk0, mem, disk;
    pc_spool_usage(&mem0, &disk0);
    static unsigned char data[200000];
    fill(data, sizeof(data), 13);
    for (int disk_backed = 0; disk_backed < 2; disk_backed++) {
        pc_message *m = new_msg((const char *)data, sizeof(data), disk_backed ? 1024 : 1u << 20);
        pc_message_seal(m);
        enum { N = 4 };
        pthread_t th[N];
        reader_job jobs[N];
        for (int i = 0; i < N; i++) {
            jobs[i] = (reader_job){.m = pc_message_ref(m), .want = data, .n = sizeof(data)};
            assert_int_equal(pthread_create(&th[i], NULL, reader_thread, &jobs[i]), 0);
        }
        pc_message_unref(m);
        for (int i = 0; i < N; i++) {
            pthread_join(th[i], NULL);
            assert_true(jobs[i].ok);
        }
        pc_spool_usage(&mem, &disk);
        assert_int_equal(mem, mem0);
        assert_int_equal(disk, disk0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_then_file),
        cmocka_unit_test(test_budgets),
        cmocka_unit_test(test_message_headers),
        cmocka_unit_test(test_message_file_backed),
        cmocka_unit_test(test_header_limits),
        cmocka_unit_test(test_odd_messages),
        cmocka_unit_test(test_refs_keep_bytes_and_budgets),
        cmocka_unit_test(test_sealed_file_message),
        cmocka_unit_test(test_readers_on_threads),
    };
    return cmocka_run_group_tests(tests, setup_big, NULL);
}
