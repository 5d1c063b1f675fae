/* fuzz_sink.h — the growable byte sink shared by the content readers' fuzz targets
 * (fuzz_smtp_data.c, fuzz_pop3_parse.c). Any failure aborts: the fuzzer reports it. */
#ifndef PC_FUZZ_SINK_H
#define PC_FUZZ_SINK_H

#include <stddef.h>

typedef struct sink {
    char *p; /* owned; free() it */
    size_t n, cap;
} sink;

/* Appends p[0..n) to s. */
void sink_put(sink *s, const void *p, size_t n);
/* A pc_data_emit_fn appending to the sink ud; aborts if called with nothing (a reader never emits
 * nothing). */
int sink_emit(void *ud, const char *p, size_t n);

#endif
