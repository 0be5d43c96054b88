/* handlers.c: the answers of the ingress's endpoints (see handlers.h). */
#include "handlers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "clock.h"
#include "envelope.h"
#include "json.h"
#include "log.h"

#define RETRY_AFTER_S "2"

void answer_error(struct answer *a, int status, const char *code, const char *message)
{
    a->status = status;
    a->body = json_error_body(code, message);
    a->len = a->body ? strlen(a->body) : 0;
    a->content_type = "application/json";
    if (status == 503 || status == 429) {
        a->header_name = "Retry-After";
        snprintf(a->header_value, sizeof(a->header_value), "%s", RETRY_AFTER_S);
    }
}

static void answer_text(struct answer *a, int status, const char *type, struct buf *b)
{
    a->status = status;
    a->body = buf_take(b, &a->len);
    a->content_type = type;
    if (!a->body) answer_error(a, 500, "internal", "out of memory");
}

static void answer_literal(struct answer *a, int status, const char *json)
{
    struct buf b;
    buf_init(&b, 4096);
    if (buf_appends(&b, json) < 0) return answer_error(a, 500, "internal", "out of memory");
    answer_text(a, status, "application/json", &b);
}

static void get_ready(struct request *r, struct answer *a)
{
    bool broker = publisher_ready(r->app->publisher);
    bool events = events_caught_up(r->app->events);
    if (broker && events) return answer_literal(a, 200, "{\"status\":\"ready\"}");
    answer_error(a, 503, "not_ready",
                 !broker ? "not connected to the broker"
                         : "still reading the events stream (status index not caught up)");
}

static void get_metrics(struct request *r, struct answer *a)
{
    struct buf b;
    buf_init(&b, 16 << 20);
    if (metrics_render(r->app->metrics, &b) < 0)
        return answer_error(a, 500, "internal", "out of memory");
    answer_text(a, 200, "text/plain; version=0.0.4", &b);
}

static void get_status(struct request *r, struct answer *a)
{
    char id[ID_LEN + 1];
    if (!id_valid(r->rest, r->rest_len))
        return answer_error(a, 404, "not_found", "no request with this id");
    memcpy(id, r->rest, ID_LEN);
    id[ID_LEN] = '\0';
    struct buf b;
    buf_init(&b, 64 << 20);
    int rc = status_index_render(r->app->index, id, r->key->tenant, &b);
    /* Until the stream is read up to now, "unknown" may only mean "not read yet". */
    if (rc == -ENOENT && !events_caught_up(r->app->events))
        return answer_error(a, 503, "not_ready",
                            "still reading the events stream; this status may exist, retry");
    if (rc == -ENOENT) return answer_error(a, 404, "not_found", "no request with this id");
    if (rc < 0) return answer_error(a, 500, "internal", "out of memory");
    answer_text(a, 200, "application/json", &b);
}

/* get_admin_page serves the page; the policy forbids anything not inline in
 * it, so even an injected script could not load more or send data away. */
static void get_admin_page(struct answer *a)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    if (buf_appends(&b, admin_page()) < 0) return answer_error(a, 500, "internal", "out of memory");
    answer_text(a, 200, "text/html; charset=utf-8", &b);
    a->header_name = "Content-Security-Policy";
    snprintf(a->header_value, sizeof(a->header_value), "%s",
             "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
             "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
}

static void get_admin_summary(struct request *r, struct answer *a)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    if (admin_summary(r->app, &b, clock_mono_ms()) < 0)
        return answer_error(a, 500, "internal", "out of memory");
    answer_text(a, 200, "application/json", &b);
    a->header_name = "Cache-Control";
    snprintf(a->header_value, sizeof(a->header_value), "no-store");
}

void handle_get(struct request *r, struct answer *a)
{
    switch (r->ep) {
    case EP_HEALTHZ:
        return answer_literal(a, 200, "{\"status\":\"ok\"}");
    case EP_READYZ:
        return get_ready(r, a);
    case EP_METRICS:
        return get_metrics(r, a);
    case EP_STATUS:
        return get_status(r, a);
    case EP_ADMIN_PAGE:
        return get_admin_page(a);
    case EP_ADMIN_SUMMARY:
        return get_admin_summary(r, a);
    default:
        return answer_error(a, 405, "method_not_allowed", "this endpoint takes a body");
    }
}

struct mhd_walk {
    env_header_fn fn;
    void *ctx;
    int rc;
};

static enum MHD_Result walk_one(void *cls, enum MHD_ValueKind kind, const char *name,
                                const char *value)
{
    (void)kind;
    struct mhd_walk *w = cls;
    if (!value) return MHD_YES;
    w->rc = w->fn(w->ctx, name, strlen(name), value, strlen(value));
    return w->rc ? MHD_NO : MHD_YES;
}

static int walk_headers(const void *src, env_header_fn fn, void *ctx)
{
    struct mhd_walk w = {fn, ctx, 0};
    MHD_get_connection_values((struct MHD_Connection *)src, MHD_HEADER_KIND, walk_one, &w);
    return w.rc;
}

static struct env_text header_text(struct request *r, const char *name)
{
    const char *v = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
    return (struct env_text){v, v ? strlen(v) : 0};
}

/* from_transparent builds the envelope of /v1/routes/<route>/<path>: the
 * request's own method, path, query, headers and body. */
static int from_transparent(struct request *r, struct envelope *env, struct env_error *err)
{
    const char *query = r->uri[r->path_len] == '?' ? r->uri + r->path_len + 1 : NULL;
    struct env_request rq = {
        .form = ENV_FORM_TRANSPARENT,
        .route = {r->route->name, strlen(r->route->name)},
        .method = {r->method, strlen(r->method)},
        .path = {r->rest, r->rest_len},
        .query = {query, query ? strlen(query) : 0},
        .content_type = header_text(r, "Content-Type"),
        .idempotency_key = header_text(r, "Idempotency-Key"),
        .priority = header_text(r, "X-Priority"),
        .walk_headers = walk_headers,
        .headers = r->conn,
    };
    /* The body buffer becomes the envelope's body as it is, without a copy. */
    if (r->body.data && !(rq.body = buf_take(&r->body, &rq.body_len))) {
        *err = (struct env_error){.status = 500, .code = "internal"};
        snprintf(err->message, sizeof(err->message), "out of memory");
        return -1;
    }
    return envelope_from_request(env, &rq, err);
}

static int from_envelope(struct request *r, struct envelope *env, struct env_error *err)
{
    if (envelope_from_json(env, r->body.data ? r->body.data : "", r->body.len, err) < 0) return -1;
    r->route = cfg_route_find(&r->app->cfg, env->route, strlen(env->route));
    if (!r->route) {
        *err = (struct env_error){.status = 404, .code = "unknown_route"};
        snprintf(err->message, sizeof(err->message), "no route named \"%s\"", env->route);
        return -1;
    }
    if (!cfg_key_allows_route(r->key, r->route->name)) {
        *err = (struct env_error){.status = 403, .code = "route_forbidden"};
        snprintf(err->message, sizeof(err->message), "this key may not use route \"%s\"",
                 env->route);
        return -1;
    }
    return 0;
}

static void on_published(void *arg, int status)
{
    struct request *r = arg;
    r->pub_status = status;
    MHD_resume_connection(r->conn);
}

bool handle_submit(struct request *r, struct answer *a)
{
    bool suspended = false;
    struct envelope env;
    struct env_error err;
    envelope_init(&env);
    int rc = r->ep == EP_ROUTE ? from_transparent(r, &env, &err) : from_envelope(r, &env, &err);
    if (rc < 0) {
        answer_error(a, err.status, err.code, err.message);
        goto out;
    }
    env.tenant = strdup(r->key->tenant);
    env.created_ms = clock_real_ms();
    if (env.priority > r->key->max_priority) env.priority = r->key->max_priority;
    if (!env.tenant || id_new(env.id, env.created_ms) < 0) {
        answer_error(a, 500, "internal", "cannot make a tracking id");
        goto out;
    }
    memcpy(r->id, env.id, sizeof(r->id));
    if (!publisher_ready(r->app->publisher)) {
        answer_error(a, 503, "broker_unavailable",
                     "the message broker is unavailable; nothing was queued, retry later");
        goto out;
    }
    MHD_suspend_connection(r->conn);
    r->waiting = suspended = true;
    if (publisher_submit(r->app->publisher, &env, on_published, r) < 0) on_published(r, 503);
out:
    envelope_free(&env);
    return suspended;
}

void handle_published(struct request *r, struct answer *a)
{
    if (r->pub_status != 202)
        return answer_error(
            a, 503, "broker_unavailable",
            "the broker did not confirm the request (down, refused or too slow); retry later");
    struct buf b;
    buf_init(&b, 512);
    if (buf_appendf(&b, "{\"id\":\"%s\",\"status\":\"queued\",\"status_url\":\"/v1/requests/%s\"}",
                    r->id, r->id) < 0)
        return answer_error(a, 500, "internal", "out of memory");
    answer_text(a, 202, "application/json", &b);
    a->header_name = "Location";
    snprintf(a->header_value, sizeof(a->header_value), "/v1/requests/%s", r->id);
}
