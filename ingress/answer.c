/* answer.c: building the ingress's HTTP answers (see answer.h). */
#include "answer.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json.h"

int answer_header(struct answer *a, const char *name, const char *fmt, ...)
{
    char value[ANSWER_MAX_VALUE + 2];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(value, sizeof value, fmt, ap);
    va_end(ap);
    if (n < 0 || n > ANSWER_MAX_VALUE) return -1;
    size_t i = 0;
    while (i < a->n_headers && strcasecmp(a->headers[i].name, name) != 0)
        i++;
    if (i == ANSWER_MAX_HEADERS) return -1;
    if (i == a->n_headers) a->n_headers++;
    a->headers[i].name = name;
    memcpy(a->headers[i].value, value, (size_t)n + 1);
    return 0;
}

const char *answer_find(const struct answer *a, const char *name)
{
    for (size_t i = 0; i < a->n_headers; i++)
        if (strcasecmp(a->headers[i].name, name) == 0) return a->headers[i].value;
    return NULL;
}

void answer_error(struct answer *a, int status, const char *code, const char *message)
{
    a->status = status;
    a->body = json_error_body(code, message);
    a->len = a->body ? strlen(a->body) : 0;
    a->content_type = "application/json";
    a->n_headers = 0;
    if (status == 503 || status == 429) (void)answer_header(a, "Retry-After", ANSWER_RETRY_AFTER_S);
}

void answer_text(struct answer *a, int status, const char *type, struct buf *b)
{
    a->status = status;
    a->body = buf_take(b, &a->len);
    a->content_type = type;
    a->n_headers = 0;
    if (!a->body) answer_error(a, 500, "internal_error", "out of memory");
}

void answer_literal(struct answer *a, int status, const char *json)
{
    struct buf b;
    buf_init(&b, 4096);
    if (buf_appends(&b, json) < 0) return answer_error(a, 500, "internal_error", "out of memory");
    answer_text(a, status, "application/json", &b);
}

void answer_empty(struct answer *a, int status)
{
    a->status = status;
    a->body = NULL;
    a->len = 0;
    a->content_type = NULL;
    a->n_headers = 0;
}
