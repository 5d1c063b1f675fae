/* fuzz_archive_names.c — the name functions of filters/rules/archive_names.c over any bytes (a
 * name as an archive or a MIME part could carry it): the base is the text after the last
 * separator; the extension is the text after the last dot once trailing dots and spaces are set
 * aside, and adding a trailing dot or space never changes it; the cleaned text fits its buffer,
 * holds no control byte, quote or backslash, and is valid UTF-8 where the name was. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "archive_names.h"

/* Well-formed UTF-8 by its lengths alone (overlong forms pass: the cut is what is tested). */
static int utf8_ok(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t need = 0;
        if (s[i] < 0x80)
            need = 1;
        else if ((s[i] & 0xe0) == 0xc0)
            need = 2;
        else if ((s[i] & 0xf0) == 0xe0)
            need = 3;
        else if ((s[i] & 0xf8) == 0xf0)
            need = 4;
        if (!need || i + need > n)
            return 0;
        for (size_t k = 1; k < need; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
        i += need;
    }
    return 1;
}

static void check_base(const char *path)
{
    const char *base = rules_name_base(path);
    size_t n = strlen(path);
    if (base < path || base > path + n || strpbrk(base, "/\\"))
        abort();
    if (base > path && base[-1] != '/' && base[-1] != '\\')
        abort();
}

static void check_ext(const char *name, char *scratch)
{
    size_t n = strlen(name), len, prev;
    const char *ext = rules_name_ext(name, &len, &prev);
    size_t end = n;
    while (end > 0 && (name[end - 1] == '.' || name[end - 1] == ' '))
        end--;
    if (!ext) {
        if (len || prev || memchr(name, '.', end))
            abort();
    } else {
        if (ext <= name || ext[-1] != '.' || len == 0 || (size_t)(ext - name) + len != end ||
            memchr(ext, '.', len))
            abort();
        if (prev && (ext - name < (ptrdiff_t)prev + 2 || ext[-2 - (ptrdiff_t)prev] != '.' ||
                     memchr(ext - 1 - prev, '.', prev)))
            abort();
        if (!prev && ext - name >= 2 && ext[-2] != '.' &&
            memchr(name, '.', (size_t)(ext - name) - 1))
            abort(); /* a dot before the last, with text between: prev must say its length */
    }
    /* what Windows drops at the end changes nothing */
    static const char tails[] = {'.', ' '};
    for (size_t t = 0; t < sizeof(tails); t++) {
        memcpy(scratch, name, n);
        scratch[n] = tails[t];
        scratch[n + 1] = 0;
        size_t len2, prev2;
        const char *ext2 = rules_name_ext(scratch, &len2, &prev2);
        if (!ext != !ext2 || len2 != len || prev2 != prev ||
            (ext && (ext2 - scratch != ext - name || memcmp(ext, ext2, len) != 0)))
            abort();
    }
}

static void check_clean(const char *s, size_t outlen)
{
    char *out = malloc(outlen ? outlen : 1);
    if (!out)
        return;
    out[0] = 'x';
    rules_name_clean(out, outlen, s);
    if (outlen == 0) {
        if (out[0] != 'x') /* nothing written */
            abort();
        free(out);
        return;
    }
    size_t k = strnlen(out, outlen);
    if (k >= outlen || k > strlen(s))
        abort();
    for (size_t i = 0; i < k; i++) {
        unsigned char c = (unsigned char)out[i], o = (unsigned char)s[i];
        int bad = o < 0x20 || o == 0x7f || o == '"' || o == '\\';
        if (c != (bad ? '?' : o))
            abort();
    }
    if (k < strlen(s) && k + 4 < outlen) /* cut by more than one sequence's length */
        abort();
    if (utf8_ok((const unsigned char *)s, strlen(s)) && !utf8_ok((const unsigned char *)out, k))
        abort();
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 4096)
        return 0;
    size_t outlen = data[0] % 130; /* the filter's buffers are 64 to 120 bytes */
    char *name = malloc(size), *scratch = malloc(size + 2);
    if (!name || !scratch) {
        free(name);
        free(scratch);
        return 0;
    }
    memcpy(name, data + 1, size - 1); /* a NUL inside ends the name, as it does in a C string */
    name[size - 1] = 0;
    check_base(name);
    check_ext(name, scratch);
    check_ext(rules_name_base(name), scratch);
    check_clean(name, outlen);
    free(scratch);
    free(name);
    return 0;
}
