/* guard.c: size and framing checks of every request (see guard.h). */
#include "guard.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* What a walk over the headers finds. */
struct seen {
    size_t bytes;        /* the header block as sent: "Name: value\r\n" per header */
    size_t n_length;     /* Content-Length headers */
    char length[32];     /* the first one's value (longer ones are cut: still unequal) */
    bool lengths_differ; /* another Content-Length with another value */
    size_t n_coding;     /* Transfer-Encoding headers */
    bool coding_chunked; /* the (one) Transfer-Encoding is exactly "chunked" */
};

static bool named(const char *name, size_t n, const char *want)
{
    return n == strlen(want) && strncasecmp(name, want, n) == 0;
}

static int see(void *ctx, const char *name, size_t nlen, const char *value, size_t vlen)
{
    struct seen *s = ctx;
    s->bytes += nlen + vlen + 4;
    if (named(name, nlen, "Content-Length")) {
        if (s->n_length++ == 0)
            snprintf(s->length, sizeof s->length, "%.*s", (int)vlen, value);
        else if (strlen(s->length) != vlen || memcmp(s->length, value, vlen) != 0)
            s->lengths_differ = true;
    } else if (named(name, nlen, "Transfer-Encoding")) {
        s->n_coding++;
        s->coding_chunked = named(value, vlen, "chunked");
    }
    return 0;
}

static int refuse(struct answer *a, int status, const char *code, const char *message)
{
    answer_error(a, status, code, message);
    return -1;
}

/* bad_framing refuses and closes: what follows on the connection cannot be
 * told apart from this request's body. */
static int bad_framing(struct answer *a, const char *message)
{
    answer_error(a, 400, "bad_framing", message);
    (void)answer_header(a, "Connection", "close");
    return -1;
}

int guard_check(const struct cfg_ingress *cfg, size_t target_len, env_walk_fn walk_headers,
                const void *src, struct answer *a)
{
    struct seen s = {0};
    if (target_len > (size_t)cfg->max_url_bytes)
        return refuse(a, 414, "uri_too_long", "the request target is longer than max_url_bytes");
    if (walk_headers) walk_headers(src, see, &s);
    if (s.bytes > (size_t)cfg->max_header_bytes)
        return refuse(a, 431, "headers_too_large",
                      "the request's headers are larger than max_header_bytes");
    if (s.lengths_differ) return bad_framing(a, "two different Content-Length values");
    if (s.n_coding && s.n_length)
        return bad_framing(a, "both Content-Length and Transfer-Encoding");
    if (s.n_coding > 1 || (s.n_coding && !s.coding_chunked))
        return bad_framing(a,
                           "the only transfer coding accepted is one Transfer-Encoding: chunked");
    return 0;
}
