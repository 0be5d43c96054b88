/* outbound.c: the headers of every call the worker makes (see outbound.h). */
#include "outbound.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "sign.h"

static bool named(const char *name, const struct cfg_strings *list)
{
    for (size_t i = 0; i < list->n; i++)
        if (strcasecmp(name, list->v[i]) == 0) return true;
    return false;
}

static int add(struct curl_slist **list, const char *name, const char *value)
{
    struct buf line;
    buf_init(&line, ENV_MAX_HEADER_NAME + ENV_MAX_HEADER_VALUE + 4);
    int rc = buf_appendf(&line, "%s: %s", name, value);
    struct curl_slist *l = rc == 0 ? curl_slist_append(*list, line.data) : NULL;
    buf_free(&line);
    if (!l) return -1;
    *list = l;
    return 0;
}

/* passes tells whether a client's header survives steps 1-3's filter. */
static bool passes(const struct cfg_route *r, const char *name)
{
    if (cfg_header_reserved(name, strlen(name))) return false;
    return !r || (!named(name, &r->remove_headers) && !named(name, &r->set_names));
}

static int client_headers(const struct outbound_call *c, struct curl_slist **list)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < c->n_headers; i++)
        if (passes(c->route, c->headers[i].name))
            rc = add(list, c->headers[i].name, c->headers[i].value);
    if (rc == 0 && c->content_type && passes(c->route, "Content-Type"))
        rc = add(list, "Content-Type", c->content_type);
    for (size_t i = 0; rc == 0 && c->route && i < c->route->set_names.n; i++)
        rc = add(list, c->route->set_names.v[i], c->route->set_values.v[i]);
    return rc;
}

static int signature(const struct outbound_call *c, struct curl_slist **list)
{
    const struct cfg_route *r = c->route;
    char ts[24];
    struct buf sig;
    if (!r || !r->n_signing_keys || c->no_signature) return 0;
    snprintf(ts, sizeof ts, "%lld", (long long)c->now_s);
    buf_init(&sig, 64 * r->n_signing_keys + 16);
    int rc = sign_append(&sig, r->signing_keys, r->n_signing_keys, c->msg_id, c->now_s, c->body,
                         c->body_len);
    if (rc == 0) rc = add(list, "webhook-id", c->msg_id);
    if (rc == 0) rc = add(list, "webhook-timestamp", ts);
    if (rc == 0) rc = add(list, "webhook-signature", sig.data);
    buf_free(&sig);
    return rc < 0 ? -1 : 0;
}

int outbound_headers(const struct outbound_call *c, struct curl_slist **list,
                     char span[TRACE_SPAN_HEX + 1])
{
    char tp[TRACEPARENT_LEN + 1];
    int rc = client_headers(c, list);
    if (rc == 0 && c->idempotency_key) rc = add(list, "Idempotency-Key", c->idempotency_key);
    if (rc == 0 && c->trace) {
        rc = trace_child(c->trace, tp, span);
        if (rc == 0) rc = add(list, "traceparent", tp);
        if (rc == 0 && c->tracestate) rc = add(list, "tracestate", c->tracestate);
    }
    if (rc == 0) rc = signature(c, list);
    return rc;
}

/* derive makes the trace sluice starts for a request without one: the same
 * for every attempt on every worker, since it depends on the tracking ID only. */
static void derive(const char *id, struct trace *t)
{
    static const char salt[] = "sluice trace ";
    unsigned char md[32];
    unsigned int len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
              EVP_DigestUpdate(ctx, salt, sizeof salt - 1) &&
              EVP_DigestUpdate(ctx, id, strlen(id)) && EVP_DigestFinal_ex(ctx, md, &len);
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        if (trace_new(t) == 0) return;
        memset(md, 0x5a, sizeof md); /* neither OpenSSL nor getrandom: still a valid ID */
    }
    md[0] |= 1; /* never all zeros, which W3C forbids */
    md[16] |= 1;
    for (size_t i = 0; i < TRACE_ID_HEX / 2; i++)
        snprintf(t->trace_id + 2 * i, 3, "%02x", md[i]);
    for (size_t i = 0; i < TRACE_SPAN_HEX / 2; i++)
        snprintf(t->span_id + 2 * i, 3, "%02x", md[16 + i]);
    t->flags = 1;
}

void outbound_trace(const struct envelope *e, struct trace *t, const char **tracestate)
{
    bool found = false;
    *tracestate = NULL;
    for (size_t i = 0; i < e->n_headers; i++) {
        const char *name = e->headers[i].name, *value = e->headers[i].value;
        if (!found && strcasecmp(name, "traceparent") == 0)
            found = trace_parse(t, value, strlen(value)) == 0;
        else if (!*tracestate && strcasecmp(name, "tracestate") == 0 &&
                 trace_state_valid(value, strlen(value)))
            *tracestate = value;
    }
    if (!found) {
        derive(e->id, t);
        *tracestate = NULL; /* a tracestate belongs to the client's traceparent */
    }
}
