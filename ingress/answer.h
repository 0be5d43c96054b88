/* answer.h: an HTTP answer of the ingress as the layers above libmicrohttpd
 * build it: a status, a body, its type and a few headers. handlers.c, auth,
 * CORS and the request checks fill answers; http.c sends them. */
#ifndef SLUICE_ANSWER_H
#define SLUICE_ANSWER_H

#include <stddef.h>

#include "buf.h"

/* The most headers one answer carries: a preflight's five CORS headers, or
 * Location or Retry-After or WWW-Authenticate, Idempotent-Replayed, three
 * RateLimit-* headers, three CORS headers and Connection: close. */
#define ANSWER_MAX_HEADERS 12
#define ANSWER_MAX_VALUE 255
/* Retry-After of a 503 or 429: seconds, as text. */
#define ANSWER_RETRY_AFTER_S "2"

struct answer_header {
    const char *name; /* a string literal */
    char value[ANSWER_MAX_VALUE + 1];
};

/* An answer to send. body is malloc'd (or NULL when out of memory) and
 * belongs to whoever sends it. */
struct answer {
    int status;
    char *body;
    size_t len;
    const char *content_type; /* NULL: no body, no Content-Type (a 204) */
    struct answer_header headers[ANSWER_MAX_HEADERS];
    size_t n_headers;
};

/* answer_header adds the header name (a string literal) with a value made
 * from fmt, or replaces the value of a header of that name already there.
 * Returns -1, adding nothing, when the answer already has
 * ANSWER_MAX_HEADERS headers or the value is longer than ANSWER_MAX_VALUE:
 * the callers' values are bounded, so that is a programming error. */
__attribute__((format(printf, 3, 4))) int answer_header(struct answer *a, const char *name,
                                                        const char *fmt, ...);
/* answer_find returns the value of the header name of a, or NULL. */
const char *answer_find(const struct answer *a, const char *name);

/* answer_error sets a to the API's error document
 * {"error":{"code":..,"message":..}} with status; a 503 or 429 gets a
 * Retry-After. Headers set before are dropped. */
void answer_error(struct answer *a, int status, const char *code, const char *message);
/* answer_text sets a to status with the body taken from b (emptied), or a
 * 500 when b holds nothing. */
void answer_text(struct answer *a, int status, const char *type, struct buf *b);
/* answer_literal sets a to status with a copy of the JSON text json. */
void answer_literal(struct answer *a, int status, const char *json);
/* answer_empty sets a to status without a body (204). */
void answer_empty(struct answer *a, int status);

#endif
