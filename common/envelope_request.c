/* envelope_request.c: the one builder of envelopes from clients (see
 * envelope.h). The transparent form hands it the HTTP request's own method,
 * path, query and headers; the envelope form hands it what its JSON document
 * names (envelope_json.c). Every field goes through the setters the AMQP
 * decoder uses (envelope.c), so the ingress refuses exactly what a worker
 * could not decode, instead of accepting a request no worker can deliver. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "envelope_parse.h"
#include "trace.h"

/* How each form names the fields whose name differs; the others ("route",
 * "method", "path", "query", "headers") are named the same in both. */
static const struct {
    const char *content_type, *idempotency_key, *priority, *callback_url;
} NAMES[] = {
    [ENV_FORM_ENVELOPE] = {"headers.Content-Type", "idempotency_key", "priority", "callback_url"},
    [ENV_FORM_TRANSPARENT] = {"Content-Type", "Idempotency-Key", "X-Priority", "X-Callback-Url"},
};

/* walk is the context of the header walk: the parse and the form. */
struct walk {
    struct pctx c;
    enum env_form form;
};

static int add_header(void *ctx, const char *name, size_t nlen, const char *value, size_t vlen)
{
    struct walk *w = ctx;
    /* Content-Type travels as the message's content_type, from its own field. */
    if (nlen == 12 && strncasecmp(name, "Content-Type", 12) == 0) return 0;
    if (!env_header_forwarded(name, nlen)) {
        if (w->form == ENV_FORM_TRANSPARENT) return 0;
        return env_fail(&w->c, "headers.%.*s: this header may not be forwarded", (int)nlen, name);
    }
    return env_add_header(&w->c, name, nlen, value, vlen);
}

/* set_text runs set on t, or on dflt when t is absent (nothing if both are). */
static int set_text(struct pctx *c, set_fn set, const char *field, struct env_text t,
                    const char *dflt)
{
    if (!t.s) t = (struct env_text){dflt, dflt ? strlen(dflt) : 0};
    return t.s ? set(c, field, t.s, t.n) : 0;
}

static int fill(struct walk *w, const struct env_request *rq)
{
    struct pctx *c = &w->c;
    if (!rq->route.s) return env_fail(c, "route: is required");
    if (set_text(c, env_set_route, "route", rq->route, NULL) < 0 ||
        set_text(c, env_set_method, "method", rq->method, "POST") < 0 ||
        set_text(c, env_set_path, "path", rq->path, "/") < 0 ||
        set_text(c, env_set_query, "query", rq->query, NULL) < 0 ||
        set_text(c, env_set_idem, NAMES[w->form].idempotency_key, rq->idempotency_key, NULL) < 0 ||
        set_text(c, env_set_priority, NAMES[w->form].priority, rq->priority, NULL) < 0 ||
        set_text(c, env_set_callback, NAMES[w->form].callback_url, rq->callback_url, NULL) < 0 ||
        set_text(c, env_set_content_type, NAMES[w->form].content_type, rq->content_type,
                 rq->body_type) < 0)
        return -1;
    if (rq->walk_headers && rq->walk_headers(rq->headers, add_header, w) != 0) return -1;
    c->e->timeout_ms = rq->timeout_ms;
    c->e->max_attempts = rq->max_attempts;
    return 0;
}

int envelope_from_request(struct envelope *e, struct env_request *rq, struct env_error *err)
{
    struct envelope tmp;
    struct walk w = {{&tmp, err, 400, "invalid_request"}, rq->form};
    char *body = rq->body;
    int rc = -1;

    rq->body = NULL;
    envelope_init(&tmp);
    if (fill(&w, rq) < 0) goto out;
    /* The tenant is borrowed for the size check, and kept on success. */
    tmp.tenant = e->tenant;
    size_t size = envelope_amqp_size(&tmp);
    tmp.tenant = NULL;
    if (size > ENV_MAX_PROPERTIES) {
        env_fail(&w.c,
                 "headers: the method, path, query and headers take %zu bytes as message "
                 "properties; at most %d fit (one AMQP frame)",
                 size, ENV_MAX_PROPERTIES);
        goto out;
    }
    /* An empty body is NULL, the same as after an AMQP round trip. */
    if (rq->body_len > 0) {
        tmp.body = (unsigned char *)body;
        tmp.body_len = rq->body_len;
        body = NULL;
    }
    memcpy(tmp.id, e->id, sizeof tmp.id);
    tmp.tenant = e->tenant;
    tmp.created_ms = e->created_ms;
    tmp.attempts = e->attempts;
    e->tenant = NULL;
    envelope_free(e);
    *e = tmp;
    envelope_init(&tmp);
    rc = 0;
out:
    free(body);
    envelope_free(&tmp);
    return rc;
}

int envelope_idempotency_header(struct envelope *e, const char *s, size_t n, struct env_error *err)
{
    struct pctx c = {e, err, 400, "invalid_request"};
    if (!e->idempotency_key) return env_set_idem(&c, "Idempotency-Key", s, n);
    if (strlen(e->idempotency_key) == n && !memcmp(e->idempotency_key, s, n)) return 0;
    return env_fail(&c, "Idempotency-Key: differs from the envelope's idempotency_key");
}

/* has_header tells whether e carries a header called name (any case). */
static bool has_header(const struct envelope *e, const char *name)
{
    for (size_t i = 0; i < e->n_headers; i++)
        if (strcasecmp(e->headers[i].name, name) == 0) return true;
    return false;
}

static int push_header(struct envelope *e, const char *name, const char *value)
{
    struct env_header *h = realloc(e->headers, (e->n_headers + 1) * sizeof *h);
    if (!h) return -1;
    e->headers = h;
    h[e->n_headers].name = strdup(name);
    h[e->n_headers].value = strdup(value);
    if (!h[e->n_headers].name || !h[e->n_headers].value) {
        free(h[e->n_headers].name);
        free(h[e->n_headers].value);
        return -1;
    }
    e->n_headers++;
    return 0;
}

int envelope_trace_headers(struct envelope *e, const char *traceparent, const char *tracestate)
{
    struct trace t;
    if (!traceparent || has_header(e, "traceparent") ||
        trace_parse(&t, traceparent, strlen(traceparent)) < 0)
        return 0;
    bool state = tracestate && trace_state_valid(tracestate, strlen(tracestate)) &&
                 !has_header(e, "tracestate");
    /* Trace context is advice (W3C): one that does not fit is dropped. */
    if (e->n_headers + 2 > ENV_MAX_HEADERS ||
        envelope_amqp_size(e) + TRACEPARENT_LEN + TRACESTATE_MAX + 64 > ENV_MAX_PROPERTIES)
        return 0;
    if (push_header(e, "traceparent", traceparent) < 0) return -ENOMEM;
    if (state && push_header(e, "tracestate", tracestate) < 0) return -ENOMEM;
    return 0;
}
