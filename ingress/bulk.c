/* bulk.c: a batch submission's document and answer (see bulk.h). The
 * document is checked whole by the strict reader first (jscan_check), so an
 * item's text, handed on to the envelope builder, is well-formed JSON; an
 * item that is not an object is that item's error, not the batch's. */
#include "bulk.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jscan.h"

struct bulk *bulk_new(void)
{
    struct bulk *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    for (size_t i = 0; i < BULK_MAX; i++)
        envelope_init(&b->items[i].env);
    return b;
}

void bulk_free(struct bulk *b)
{
    if (!b) return;
    for (size_t i = 0; i < BULK_MAX; i++) {
        envelope_free(&b->items[i].env);
        free(b->items[i].doc);
    }
    free(b);
}

__attribute__((format(printf, 3, 4))) static int split_fail(struct env_error *err, const char *code,
                                                            const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err->status = 400;
    err->code = code;
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

#define SHAPE "requests: must be an array of 1..100 envelopes"

/* read_requests reads the array at the cursor into b's items. */
static int read_requests(struct bulk *b, struct jscan *s, struct env_error *err)
{
    int r;
    if (!jscan_enter(s, '[')) return split_fail(err, "invalid_request", SHAPE);
    while ((r = jscan_next(s, NULL, 0)) == 1) {
        if (b->n == BULK_MAX)
            return split_fail(err, "invalid_request", SHAPE " (send more in further batches)");
        struct bulk_item *it = &b->items[b->n++];
        if (!jscan_value(s, &it->text, &it->len)) break; /* checked already */
    }
    if (r < 0 || r == 1) return split_fail(err, "invalid_json", "invalid JSON");
    return b->n ? 0 : split_fail(err, "invalid_request", SHAPE " (it is empty)");
}

int bulk_split(struct bulk *b, const char *body, size_t len, struct env_error *err)
{
    char why[160], key[16];
    struct jscan s;
    bool seen = false;
    int r;
    if (!jscan_check(body, len, why, sizeof why))
        return split_fail(err, "invalid_json", "invalid JSON: %s", why);
    if (!jscan_init(&s, body, len) || !jscan_enter(&s, '{'))
        return split_fail(err, "invalid_json", "%s", "the batch must be a JSON object");
    while ((r = jscan_next(&s, key, sizeof key)) == 1) {
        if (strcmp(key, "requests") != 0)
            return split_fail(err, "invalid_request",
                              "%s: unknown field (a batch has only requests)",
                              key[0] ? key : "a long name");
        if (read_requests(b, &s, err) < 0) return -1;
        seen = true;
    }
    if (r < 0) return split_fail(err, "invalid_json", "%s", "invalid JSON");
    return seen ? 0 : split_fail(err, "invalid_request", "%s", "requests: is required");
}

/* decided records doc (malloc'd, or NULL when out of memory) as it's result. */
static void decided(struct bulk_item *it, int status, char *doc)
{
    free(it->doc);
    it->status = doc ? status : 500;
    it->doc = doc ? doc
                  : strdup("{\"error\":{\"code\":\"internal_error\",\"message\":\"out of "
                           "memory\"},\"status\":500}");
}

void bulk_item_fail(struct bulk_item *it, int status, const char *code, const char *message)
{
    struct buf out;
    buf_init(&out, 4096);
    int rc = buf_appends(&out, "{\"error\":{\"code\":");
    if (!rc) rc = buf_append_json_string(&out, code, strlen(code));
    if (!rc) rc = buf_appends(&out, ",\"message\":");
    if (!rc) rc = buf_append_json_string(&out, message, strlen(message));
    if (!rc) rc = buf_appendf(&out, "},\"status\":%d}", status);
    decided(it, status, rc ? NULL : buf_take(&out, NULL));
    buf_free(&out);
    it->retry_after_s = status == 503 || status == 429 ? strtol(ANSWER_RETRY_AFTER_S, NULL, 10) : 0;
}

void bulk_item_answer(struct bulk_item *it, struct answer *a, bool replayed)
{
    const char *ra = answer_find(a, "Retry-After");
    struct buf out;
    buf_init(&out, 1 << 16);
    /* Both kinds of body are one JSON object: the item's extra member goes
     * before its closing brace. */
    int rc = !a->body || a->len < 2 || a->body[a->len - 1] != '}' ? -1 : 0;
    if (!rc) rc = buf_append(&out, a->body, a->len - 1);
    if (!rc && a->status / 100 != 2)
        rc = buf_appendf(&out, ",\"status\":%d}", a->status);
    else if (!rc)
        rc = buf_appends(&out, replayed ? ",\"replayed\":true}" : "}");
    decided(it, a->status, rc ? NULL : buf_take(&out, NULL));
    buf_free(&out);
    it->retry_after_s = ra ? strtol(ra, NULL, 10) : 0;
    free(a->body);
    a->body = NULL;
}

int bulk_render(const struct bulk *b, struct buf *out, int *status, long *retry_after_s)
{
    int rc = buf_appends(out, "{\"results\":[");
    *status = 0;
    *retry_after_s = 0;
    for (size_t i = 0; i < b->n && !rc; i++) {
        const struct bulk_item *it = &b->items[i];
        if (i) rc = buf_append(out, ",", 1);
        if (!rc) rc = buf_appends(out, it->doc);
        if (it->status == 202 || !*status) *status = it->status;
        if (it->retry_after_s > *retry_after_s) *retry_after_s = it->retry_after_s;
    }
    return rc ? rc : buf_appends(out, "]}");
}
