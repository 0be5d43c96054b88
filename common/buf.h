/* buf.h: a growable byte buffer with a hard size cap, modelled on curl's dynbuf.
 * The cap is fixed at init; an append that would pass it fails with -E2BIG and
 * frees the buffer, so a caller never holds a half-built value. */
#ifndef SLUICE_BUF_H
#define SLUICE_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *data; /* owned; always NUL-terminated when non-NULL */
    size_t len;
    size_t cap; /* allocated bytes */
    size_t max; /* hard cap on len */
};

void buf_init(struct buf *b, size_t max);
/* buf_append adds n bytes. Returns 0, -E2BIG past the cap, -ENOMEM; on error
 * the buffer is freed and reset (still usable, empty). */
__attribute__((warn_unused_result)) int buf_append(struct buf *b, const void *p, size_t n);
__attribute__((warn_unused_result)) int buf_appends(struct buf *b, const char *s);
__attribute__((warn_unused_result, format(printf, 2, 3))) int buf_appendf(struct buf *b,
                                                                          const char *fmt, ...);
/* buf_append_json_string appends s (n bytes) as a JSON string literal with quotes,
 * escaping as RFC 8259 requires. The input must be valid UTF-8. */
__attribute__((warn_unused_result)) int buf_append_json_string(struct buf *b, const char *s,
                                                               size_t n);
/* buf_take hands the data to the caller (who frees it) and resets the buffer.
 * Returns an empty string (malloc'd) when nothing was appended; NULL on ENOMEM. */
char *buf_take(struct buf *b, size_t *len);
void buf_reset(struct buf *b);
void buf_free(struct buf *b);

#endif
