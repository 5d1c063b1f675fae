/* data_read.h — test helpers shared by the tests of the streaming content readers (the SMTP DATA
 * reader in test_smtp_data.c, the POP3 body reader in test_pop3_parse.c): a sink that collects what
 * a reader emits (and can fail on cue), and a driver that feeds one input whole, byte by byte and
 * split at every point, and asserts that every way gives the same result. Uses cmocka asserts. */
#ifndef PC_TEST_DATA_READ_H
#define PC_TEST_DATA_READ_H

#include <stddef.h>

#include "smtp/smtp_data.h" /* pc_data_emit_fn */

typedef struct sink {
    char *p; /* owned; free() it */
    size_t n, cap;
    int calls;
    int fail_after; /* fail the call after this many, -1 never */
} sink;

void sink_init(sink *s);
/* A pc_data_emit_fn appending to the sink ud; asserts it is never called with nothing. */
int sink_emit(void *ud, const char *p, size_t n);

/* What one read gave. */
typedef struct result {
    sink out;
    unsigned flags;
    unsigned received; /* Received fields counted (SMTP DATA); 0 for readers that count none */
    size_t consumed, size;
    int done;
} result;

/* A reader under test: start() initialises a fresh reader in self, feed() is its feed function,
 * finish() copies its counters (flags, size, received) into the result. */
typedef struct reader {
    void (*start)(void *self);
    size_t (*feed)(void *self, const char *in, size_t n, pc_data_emit_fn emit, void *ud, int *done);
    void (*finish)(void *self, result *r);
    void *self;
} reader;

/* One read of in[0..n) by a fresh reader, cut into pieces at cut[0..ncut) (ascending offsets). */
void reader_split(const reader *rd, const char *in, size_t n, const size_t *cut, size_t ncut,
                  result *r);
/* Reads in whole into r, then checks byte by byte and every two-piece split give the same. */
void reader_all(const reader *rd, const char *in, size_t n, result *r);

void result_free(result *r);
void assert_same(const result *a, const result *b);

#endif
