/* authres.c — the authserv-id of an Authentication-Results value (RFC 8601 §2.2). */
#include "parse/authres.h"

int pc_authres_id(const char *v, char *out, size_t outlen)
{
    size_t i = 0, n = 0;
    int depth = 0;
    for (;; i++) { /* leading white space and comments */
        char c = v[i];
        if (c == '(')
            depth++;
        else if (c == ')' && depth)
            depth--;
        else if (!depth && c != ' ' && c != '\t' && c != '\r' && c != '\n')
            break;
        if (!c)
            return -1;
    }
    while (v[i] && v[i] != ';' && v[i] != ' ' && v[i] != '\t' && v[i] != '(' && v[i] != '\r' &&
           v[i] != '\n') {
        if (n + 1 < outlen)
            out[n++] = v[i];
        else
            return -1;
        i++;
    }
    if (outlen)
        out[n] = '\0';
    return n ? 0 : -1;
}
