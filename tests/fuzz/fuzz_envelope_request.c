/* fuzz_envelope_request.c: libFuzzer target of the transparent form's
 * mapper (envelope_from_request): the input is cut at newlines into the
 * request's route, method, path, query, Content-Type, Idempotency-Key,
 * X-Priority and a header block ("Name: value" lines separated by \r), and
 * the rest is the body. Whatever it accepts must survive the trip to an
 * AMQP message and back, or the target aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"

#define FIELDS 8

struct block {
    const char *s;
    size_t n;
};

/* walk calls fn for every "Name: value" line of the header block. */
static int walk(const void *src, env_header_fn fn, void *ctx)
{
    const struct block *b = src;
    const char *p = b->s, *end = b->s + b->n;
    while (p < end) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        if (!eol) eol = end;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon) {
            const char *v = colon + 1;
            while (v < eol && *v == ' ')
                v++;
            int rc = fn(ctx, p, (size_t)(colon - p), v, (size_t)(eol - v));
            if (rc) return rc;
        }
        p = eol + 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct env_text f[FIELDS] = {{0}};
    const char *p = (const char *)data, *end = p + size;
    for (int i = 0; i < FIELDS && p <= end; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) nl = end;
        /* an empty field is an absent one, as a missing header is */
        f[i] = (struct env_text){nl > p ? p : NULL, (size_t)(nl - p)};
        p = nl + 1;
    }
    struct block headers = {f[7].s ? f[7].s : "", f[7].n};
    size_t body_len = p < end ? (size_t)(end - p) : 0;
    char *body = malloc(body_len + 1);
    if (!body) return 0;
    if (body_len) memcpy(body, p, body_len);
    body[body_len] = '\0';
    struct env_request rq = {.form = ENV_FORM_TRANSPARENT,
                             .route = f[0].s ? f[0] : (struct env_text){"r", 1},
                             .method = f[1],
                             .path = f[2],
                             .query = f[3],
                             .content_type = f[4],
                             .idempotency_key = f[5],
                             .priority = f[6],
                             .walk_headers = walk,
                             .headers = &headers,
                             .body = body,
                             .body_len = body_len};
    struct envelope e, back;
    struct env_error err;
    amqp_pool_t pool;
    amqp_basic_properties_t props;
    envelope_init(&e);
    envelope_init(&back);
    init_amqp_pool(&pool, 4096);
    /* what the ingress sets before the publish (handlers.c publish) */
    e.tenant = strdup("fuzz");
    memcpy(e.id, "0123456789ABCDEFGHIJKLMNOPQRSTUV", ID_LEN + 1);
    e.created_ms = 1800000000000;
    if (envelope_from_request(&e, &rq, &err) == 0 && envelope_to_amqp(&e, &pool, &props) == 0) {
        amqp_bytes_t b = {e.body_len, e.body};
        if (envelope_from_amqp(&back, &props, b, &err) != 0) abort();
        if (strcmp(back.method, e.method) || strcmp(back.path, e.path) ||
            back.n_headers != e.n_headers)
            abort();
    }
    empty_amqp_pool(&pool);
    envelope_free(&back);
    envelope_free(&e);
    return 0;
}
