/* handlers.c: the ingress's endpoints (see handlers.h): one table that says
 * for each path which methods it takes, who may call it and what answers it,
 * then the answers themselves. The two submission forms end alike: one
 * envelope builder (envelope.h), one route authorization (auth.h), one
 * hand-off to the publisher. */
#include "handlers.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin.h"
#include "auth.h"
#include "clock.h"
#include "id.h"
#include "json.h"
#include "requests.h"
#include "submit.h"

#define RETRY_AFTER_S "2"

/* ---- answers ---- */

void answer_error(struct answer *a, int status, const char *code, const char *message)
{
    a->status = status;
    a->body = json_error_body(code, message);
    a->len = a->body ? strlen(a->body) : 0;
    a->content_type = "application/json";
    a->header_name = NULL;
    a->n_extra = 0;
    if (status == 503 || status == 429) {
        a->header_name = "Retry-After";
        snprintf(a->header_value, sizeof(a->header_value), "%s", RETRY_AFTER_S);
    }
}

void answer_header(struct answer *a, const char *name, const char *fmt, ...)
{
    if (a->n_extra == ANSWER_MAX_EXTRA) return;
    va_list ap;
    va_start(ap, fmt);
    a->extra[a->n_extra].name = name;
    vsnprintf(a->extra[a->n_extra].value, sizeof a->extra[0].value, fmt, ap);
    va_end(ap);
    a->n_extra++;
}

void answer_limits(struct answer *a, const struct limit_info *info)
{
    if (!info->limited) return;
    answer_header(a, "RateLimit-Limit", "%ld", info->limit);
    answer_header(a, "RateLimit-Remaining", "%ld", info->remaining);
    answer_header(a, "RateLimit-Reset", "%ld", info->reset_s);
}

/* decorate adds the RateLimit headers to every answer of a limited key
 * that a submission has not already described. */
static void decorate(struct request *r, struct answer *a)
{
    if (!r->key || r->sub.limit_known || !r->app->limits) return;
    struct limit_info info;
    limits_peek(r->app->limits, r->key, clock_real_ms(), clock_mono_us(), &info);
    answer_limits(a, &info);
}

/* refuse is answer_error for handle_begin's refusals. */
static int refuse(struct answer *a, int status, const char *code, const char *message)
{
    answer_error(a, status, code, message);
    return -1;
}

static void answer_text(struct answer *a, int status, const char *type, struct buf *b)
{
    a->status = status;
    a->body = buf_take(b, &a->len);
    a->content_type = type;
    a->header_name = NULL;
    a->n_extra = 0;
    if (!a->body) answer_error(a, 500, "internal", "out of memory");
}

void answer_json(struct answer *a, int status, struct buf *b)
{
    answer_text(a, status, "application/json", b);
}

static void answer_literal(struct answer *a, int status, const char *json)
{
    struct buf b;
    buf_init(&b, 4096);
    if (buf_appends(&b, json) < 0) return answer_error(a, 500, "internal", "out of memory");
    answer_text(a, status, "application/json", &b);
}

/* ---- reading: health, readiness, metrics, status, the status page ---- */

static bool get_health(struct request *r, struct answer *a)
{
    (void)r;
    answer_literal(a, 200, "{\"status\":\"ok\"}");
    return false;
}

static bool get_ready(struct request *r, struct answer *a)
{
    bool broker = publisher_ready(r->app->publisher);
    bool events = events_caught_up(r->app->events);
    if (broker && events)
        answer_literal(a, 200, "{\"status\":\"ready\"}");
    else
        answer_error(a, 503, "not_ready",
                     !broker ? "not connected to the broker"
                             : "still reading the events stream (status index not caught up)");
    return false;
}

static bool get_metrics(struct request *r, struct answer *a)
{
    struct buf b;
    buf_init(&b, 16 << 20);
    if (metrics_render(r->app->metrics, &b) < 0)
        answer_error(a, 500, "internal", "out of memory");
    else
        answer_text(a, 200, "text/plain; version=0.0.4", &b);
    return false;
}

static bool get_status(struct request *r, struct answer *a)
{
    char id[ID_LEN + 1];
    if (!id_valid(r->rest, r->rest_len)) {
        answer_error(a, 404, "not_found", "no request with this id");
        return false;
    }
    memcpy(id, r->rest, ID_LEN);
    id[ID_LEN] = '\0';
    struct buf b;
    buf_init(&b, 64 << 20);
    int rc = status_index_render(r->app->index, id, r->key->tenant, &b);
    /* Until the stream is read up to now, "unknown" may only mean "not read yet". */
    if (rc == -ENOENT && !events_caught_up(r->app->events))
        answer_error(a, 503, "not_ready",
                     "still reading the events stream; this status may exist, retry");
    else if (rc == -ENOENT)
        answer_error(a, 404, "not_found", "no request with this id");
    else if (rc < 0)
        answer_error(a, 500, "internal", "out of memory");
    else
        answer_text(a, 200, "application/json", &b);
    buf_free(&b);
    return false;
}

/* get_admin_page serves the page; the policy forbids anything not inline in
 * it, so even an injected script could not load more or send data away. */
static bool get_admin_page(struct request *r, struct answer *a)
{
    (void)r;
    struct buf b;
    buf_init(&b, 1 << 20);
    if (buf_appends(&b, admin_page()) < 0) {
        answer_error(a, 500, "internal", "out of memory");
        return false;
    }
    answer_text(a, 200, "text/html; charset=utf-8", &b);
    a->header_name = "Content-Security-Policy";
    snprintf(a->header_value, sizeof(a->header_value), "%s",
             "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
             "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
    return false;
}

static bool get_admin_summary(struct request *r, struct answer *a)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    if (admin_summary(r->app, &b, clock_mono_ms()) < 0) {
        answer_error(a, 500, "internal", "out of memory");
        return false;
    }
    answer_text(a, 200, "application/json", &b);
    a->header_name = "Cache-Control";
    snprintf(a->header_value, sizeof(a->header_value), "no-store");
    return false;
}

/* ---- submitting: both forms, then one hand-off ---- */

/* new_envelope starts the envelope of r with its tenant, which counts
 * towards the message's size the builder checks. */
static int new_envelope(struct request *r, struct envelope *env, struct answer *a)
{
    envelope_init(env);
    if ((env->tenant = strdup(r->key->tenant))) return 0;
    answer_error(a, 500, "internal", "out of memory");
    return -1;
}

static bool submit_envelope(struct request *r, struct answer *a)
{
    struct envelope env;
    struct env_error err;
    struct auth_refusal why;
    bool pending = false;
    if (new_envelope(r, &env, a) < 0) goto out;
    const char *key = r->io->header(r, "Idempotency-Key");
    if (envelope_from_json(&env, r->body.data ? r->body.data : "", r->body.len, &err) < 0 ||
        (key && envelope_idempotency_header(&env, key, strlen(key), &err) < 0)) {
        answer_error(a, err.status, err.code, err.message);
        goto out;
    }
    r->route = auth_route(&r->app->cfg, r->key, env.route, strlen(env.route), &why);
    if (!r->route) {
        answer_error(a, why.status, why.code, why.message);
        goto out;
    }
    pending = submit_publish(r, &env, a);
out:
    envelope_free(&env);
    return pending;
}

static struct env_text header_text(const struct request *r, const char *name)
{
    const char *v = r->io->header(r, name);
    return (struct env_text){v, v ? strlen(v) : 0};
}

/* begin_transparent takes the route from /v1/routes/<route>/<path...>
 * before the body is read; the rest of the path goes to the backend. */
static int begin_transparent(struct request *r, struct answer *a)
{
    const char *name = r->rest, *end = r->rest + r->rest_len;
    const char *slash = memchr(name, '/', r->rest_len);
    struct auth_refusal why;
    r->route = auth_route(&r->app->cfg, r->key, name, (size_t)((slash ? slash : end) - name), &why);
    if (!r->route) return refuse(a, why.status, why.code, why.message);
    r->rest = slash;
    r->rest_len = slash ? (size_t)(end - slash) : 0;
    return 0;
}

/* submit_transparent: the request's own method, path, query, headers and
 * body become the envelope; the body buffer is handed over without a copy. */
static bool submit_transparent(struct request *r, struct answer *a)
{
    const char *query = r->target[r->path_len] == '?' ? r->target + r->path_len + 1 : NULL;
    struct env_request rq = {
        .form = ENV_FORM_TRANSPARENT,
        .route = {r->route->name, strlen(r->route->name)},
        .method = {r->method, strlen(r->method)},
        .path = {r->rest, r->rest_len},
        .query = {query, query ? strlen(query) : 0},
        .content_type = header_text(r, "Content-Type"),
        .idempotency_key = header_text(r, "Idempotency-Key"),
        .priority = header_text(r, "X-Priority"),
        .walk_headers = r->io->walk_headers,
        .headers = r,
    };
    struct envelope env;
    struct env_error err;
    bool pending = false;
    if (new_envelope(r, &env, a) < 0) goto out;
    if (r->body.data) rq.body = buf_take(&r->body, &rq.body_len);
    if (envelope_from_request(&env, &rq, &err) < 0) {
        answer_error(a, err.status, err.code, err.message);
        goto out;
    }
    pending = submit_publish(r, &env, a);
out:
    envelope_free(&env);
    return pending;
}

/* ---- the endpoints ---- */

enum methods { M_READ /* GET and HEAD */, M_GET, M_POST, M_DELETE, M_ANY };
enum who { ANYONE, KEY, ADMIN };
enum takes { NO_BODY, JSON_BODY, ANY_BODY };

struct endpoint {
    const char *path;
    bool prefix; /* path is a prefix, and what follows it is r->rest */
    enum methods methods;
    enum who who;     /* KEY for every /v1 path, which handle_begin checks first */
    bool admin;       /* exists only with an admin_token */
    enum takes takes; /* NO_BODY: a body is read and ignored; else 413 past the cap */
    int (*begin)(struct request *r, struct answer *a); /* before the body, or NULL */
    bool (*run)(struct request *r, struct answer *a);  /* true: the answer is pending */
};

static const struct endpoint ENDPOINTS[] = {
    {"/healthz", false, M_READ, ANYONE, false, NO_BODY, NULL, get_health},
    {"/readyz", false, M_READ, ANYONE, false, NO_BODY, NULL, get_ready},
    {"/metrics", false, M_READ, ANYONE, false, NO_BODY, NULL, get_metrics},
    {"/", false, M_READ, ANYONE, true, NO_BODY, NULL, get_admin_page},
    {"/admin/summary", false, M_READ, ADMIN, true, NO_BODY, NULL, get_admin_summary},
    {"/v1/requests", false, M_POST, KEY, false, JSON_BODY, NULL, submit_envelope},
    {"/v1/requests", false, M_GET, KEY, false, NO_BODY, NULL, requests_list},
    {"/v1/requests/", true, M_GET, KEY, false, NO_BODY, NULL, get_status},
    {"/v1/requests/", true, M_DELETE, KEY, false, NO_BODY, NULL, requests_delete},
    {"/v1/routes/", true, M_ANY, KEY, false, ANY_BODY, begin_transparent, submit_transparent},
};

static bool path_starts(const struct request *r, const char *p, size_t n)
{
    return r->path_len >= n && memcmp(r->target, p, n) == 0;
}

static bool method_ok(enum methods m, const char *method)
{
    switch (m) {
    case M_READ:
        return !strcmp(method, "GET") || !strcmp(method, "HEAD");
    case M_GET:
        return !strcmp(method, "GET");
    case M_POST:
        return !strcmp(method, "POST");
    case M_DELETE:
        return !strcmp(method, "DELETE");
    default:
        return true;
    }
}

/* find returns the endpoint of r's path that takes r's method, else the
 * path's first (which then refuses the method), or NULL; it sets r->rest
 * for a prefix. */
static const struct endpoint *find(struct request *r)
{
    bool admin = admin_enabled(&r->app->cfg);
    const struct endpoint *first = NULL;
    for (size_t i = 0; i < sizeof ENDPOINTS / sizeof ENDPOINTS[0]; i++) {
        const struct endpoint *ep = &ENDPOINTS[i];
        size_t n = strlen(ep->path);
        if ((ep->admin && !admin) || !path_starts(r, ep->path, n) ||
            (!ep->prefix && r->path_len != n))
            continue;
        if (first && strcmp(first->path, ep->path) != 0) break;
        if (!first) first = ep;
        if (method_ok(ep->methods, r->method)) {
            first = ep;
            break;
        }
    }
    if (first) {
        r->rest = r->target + strlen(first->path);
        r->rest_len = r->path_len - strlen(first->path);
    }
    return first;
}

/* body_checks refuses, before reading it, a body declared larger than the
 * cap, and an envelope that says it is not JSON. */
static int body_checks(struct request *r, struct answer *a)
{
    const char *len = r->io->header(r, "Content-Length");
    if (len) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(len, &end, 10);
        if (errno || *end || n > (unsigned long long)r->app->cfg.ingress.max_body_bytes)
            return refuse(a, 413, "body_too_large", "the body is larger than max_body_bytes");
    }
    const char *ctype = r->io->header(r, "Content-Type");
    if (r->ep->takes == JSON_BODY && ctype && strncasecmp(ctype, "application/json", 16) != 0)
        return refuse(a, 415, "unsupported_media_type", "send the envelope as application/json");
    return 0;
}

static int begin(struct request *r, struct answer *a)
{
    const struct cfg *cfg = &r->app->cfg;
    bool v1 = path_starts(r, "/v1/", 4);
    /* Outside /v1 everything is read-only, whatever the path. */
    if (!v1 && !method_ok(M_READ, r->method))
        return refuse(a, 405, "method_not_allowed", "use GET");
    /* Inside /v1 the key comes first: without one, nothing about paths or
     * routes is told. */
    if (v1 && !(r->key = auth_key(cfg, r->io->header(r, "Authorization"))))
        return refuse(a, 401, "unauthorized", "missing or unknown bearer token");
    if (!(r->ep = find(r))) return refuse(a, 404, "not_found", "no such endpoint");
    if (!method_ok(r->ep->methods, r->method))
        return refuse(a, 405, "method_not_allowed", "this endpoint does not take this method");
    if (r->ep->who == ADMIN && !auth_admin(cfg, r->io->header(r, "Authorization")))
        return refuse(a, 401, "unauthorized", "missing or wrong admin token");
    if (r->ep->begin && r->ep->begin(r, a) < 0) return -1;
    return body_checks(r, a);
}

int handle_begin(struct request *r, struct answer *a)
{
    if (begin(r, a) == 0) return 0;
    decorate(r, a);
    return -1;
}

bool handle(struct request *r, struct answer *a)
{
    if (r->ep->takes != NO_BODY && r->body_too_large) {
        answer_error(a, 413, "body_too_large", "the body is larger than max_body_bytes");
    } else if (r->ep->run(r, a)) {
        return true;
    }
    decorate(r, a);
    return false;
}
