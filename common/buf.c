/* buf.c: the capped growable buffer behind every JSON body and log line sluice
 * builds. Any failure frees the buffer, so callers check one return value and
 * never see a truncated document. */
#include "buf.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_MIN_CAP 64

void buf_init(struct buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

/* buf_fail frees b and passes err through, so every error path is one line. */
static int buf_fail(struct buf *b, int err)
{
    buf_free(b);
    return err;
}

/* buf_grow makes room for n more bytes plus the terminating NUL, doubling so
 * that a long series of small appends costs amortised O(1). */
static int buf_grow(struct buf *b, size_t n)
{
    /* The second test keeps room for the NUL when max is SIZE_MAX. */
    if (n > b->max - b->len || b->len + n == SIZE_MAX) return buf_fail(b, -E2BIG);
    size_t need = b->len + n + 1;
    if (need <= b->cap) return 0;

    size_t limit = b->max < SIZE_MAX ? b->max + 1 : SIZE_MAX;
    size_t cap = b->cap ? b->cap : BUF_MIN_CAP;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
    if (cap > limit) cap = limit;

    char *p = realloc(b->data, cap);
    if (!p) return buf_fail(b, -ENOMEM);
    b->data = p;
    b->cap = cap;
    return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
    if (n == 0) return 0;
    int rc = buf_grow(b, n);
    if (rc) return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int buf_appends(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_appendf(struct buf *b, const char *fmt, ...)
{
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    /* Try the space already allocated first; most appends fit and format once. */
    size_t room = b->cap - b->len;
    int n = vsnprintf(b->data ? b->data + b->len : NULL, room, fmt, ap);
    int rc = 0;
    if (n < 0) {
        rc = buf_fail(b, -EINVAL);
        goto out;
    }
    if ((size_t)n >= room) {
        rc = buf_grow(b, (size_t)n);
        if (rc) goto out;
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, again);
    }
    b->len += (size_t)n;
out:
    va_end(again);
    va_end(ap);
    return rc;
}

/* json_escape returns the escape sequence for byte c, or NULL when c may
 * appear as itself inside a JSON string. */
static const char *json_escape(unsigned char c, char tmp[7])
{
    switch (c) {
    case '"':
        return "\\\"";
    case '\\':
        return "\\\\";
    case '\b':
        return "\\b";
    case '\f':
        return "\\f";
    case '\n':
        return "\\n";
    case '\r':
        return "\\r";
    case '\t':
        return "\\t";
    default:
        break;
    }
    if (c >= 0x20) return NULL;
    snprintf(tmp, 7, "\\u%04x", c);
    return tmp;
}

int buf_append_json_string(struct buf *b, const char *s, size_t n)
{
    int rc = buf_append(b, "\"", 1);
    size_t run = 0; /* start of the pending run of bytes that need no escape */
    for (size_t i = 0; i < n && rc == 0; i++) {
        char tmp[7];
        const char *esc = json_escape((unsigned char)s[i], tmp);
        if (!esc) continue;
        rc = buf_append(b, s + run, i - run);
        if (rc == 0) rc = buf_appends(b, esc);
        run = i + 1;
    }
    if (rc == 0) rc = buf_append(b, s + run, n - run);
    if (rc == 0) rc = buf_append(b, "\"", 1);
    return rc;
}

char *buf_take(struct buf *b, size_t *len)
{
    char *p = b->data;
    size_t n = b->len;
    if (!p) {
        p = calloc(1, 1);
        n = 0;
    }
    buf_init(b, b->max);
    if (len) *len = n;
    return p;
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

void buf_free(struct buf *b)
{
    if (!b) return;
    free(b->data);
    buf_init(b, b->max);
}
