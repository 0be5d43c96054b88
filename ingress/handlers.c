/* handlers.c: the ingress's endpoints (see handlers.h): one table that says
 * for each path which methods it takes, who may call it and what answers it,
 * then the answers themselves. The submission forms end alike: one
 * envelope builder (envelope.h), one route authorization (auth.h), one
 * client contract and hand-off to the publisher (submit.h), which a batch's
 * items run too (batch.h). */
#include "handlers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin.h"
#include "adminapi.h"
#include "routesapi.h"
#include "auth.h"
#include "batch.h"
#include "clock.h"
#include "cors.h"
#include "guard.h"
#include "id.h"
#include "json.h"
#include "requests.h"
#include "submit.h"

/* refuse is answer_error for handle_begin's refusals. */
static int refuse(struct answer *a, int status, const char *code, const char *message)
{
    answer_error(a, status, code, message);
    return -1;
}

/* refuse_why sends an authentication or authorization refusal; a 401
 * carries its WWW-Authenticate challenge (RFC 6750). */
static int refuse_why(struct answer *a, const struct auth_refusal *why)
{
    answer_error(a, why->status, why->code, why->message);
    if (why->status == 401) (void)answer_header(a, "WWW-Authenticate", "%s", why->challenge);
    return -1;
}

/* answer_limits adds the RateLimit-* headers of info (nothing when not limited). */
void answer_limits(struct answer *a, const struct limit_info *info)
{
    if (!info->limited) return;
    (void)answer_header(a, "RateLimit-Limit", "%ld", info->limit);
    (void)answer_header(a, "RateLimit-Remaining", "%ld", info->remaining);
    (void)answer_header(a, "RateLimit-Reset", "%ld", info->reset_s);
}

/* decorate adds the RateLimit headers to every answer of a limited key
 * that a submission has not already described. */
static void decorate(struct request *r, struct answer *a)
{
    if (!r->who.key || r->sub.limit_known || !r->app->limits) return;
    struct limit_info info;
    limits_peek(r->app->limits, r->who.key, clock_real_ms(), clock_mono_us(), &info);
    answer_limits(a, &info);
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
        answer_error(a, 500, "internal_error", "out of memory");
    else
        answer_text(a, 200, "text/plain; version=0.0.4", &b);
    return false;
}

/* answer_status answers the status of r's request (its id is r->rest). */
static void answer_status(struct request *r, struct answer *a)
{
    char id[ID_LEN + 1];
    memcpy(id, r->rest, ID_LEN);
    id[ID_LEN] = '\0';
    struct buf b;
    buf_init(&b, 64 << 20);
    int rc = readback_render(r->app->readback, r->app->index, id, r->who.tenant, &b);
    /* Until the stream is read up to now, "unknown" may only mean "not read yet". */
    if (rc == -ENOENT && !events_caught_up(r->app->events))
        answer_error(a, 503, "not_ready",
                     "still reading the events stream; this status may exist, retry");
    else if (rc == -ENOENT)
        answer_error(a, 404, "not_found", "no request with this id");
    else if (rc == -EAGAIN) {
        /* Its result left memory and reading it back failed: never the
         * document without it. */
        answer_error(a, 503, "not_ready",
                     "the result could not be read from the events stream; retry");
        (void)answer_header(a, "Retry-After", "%d", 1);
    } else if (rc < 0)
        answer_error(a, 500, "internal_error", "out of memory");
    else
        answer_text(a, 200, "application/json", &b);
    buf_free(&b);
}

/* parse_wait reads the query of a status read, whose one parameter is
 * wait=<whole seconds>, into *wait_s, cut to max_wait_s; 0 without it.
 * Returns -1 with a's 400 when the query is anything else. */
static int parse_wait(const struct request *r, struct answer *a, long *wait_s)
{
    const char *q = r->target + r->path_len, *end = q + strlen(q);
    *wait_s = 0;
    if (*q != '?' || q + 1 == end) return 0;
    q++;
    if (strncmp(q, "wait=", 5) != 0 || strchr(q, '&')) {
        answer_error(a, 400, "invalid_request",
                     "the only query parameter of a status read is wait=<seconds>");
        return -1;
    }
    char *stop;
    errno = 0;
    long v = q[5] >= '0' && q[5] <= '9' ? strtol(q + 5, &stop, 10) : -1;
    if (v < 0 || errno || *stop) {
        answer_error(a, 400, "invalid_request", "wait: must be whole seconds (0 or more)");
        return -1;
    }
    *wait_s = v < r->app->cfg.ingress.max_wait_s ? v : r->app->cfg.ingress.max_wait_s;
    return 0;
}

/* on_waited answers a long-poll on the waiters thread: the request became
 * final, or its time is up, or the ingress is stopping. */
static void on_waited(void *arg, bool final)
{
    (void) final;
    struct request *r = arg;
    answer_status(r, &r->answer);
    r->io->resume(r);
}

/* wait_final suspends r until its request is final or wait_s have passed.
 * Returns false, to answer now, when the request is final already or
 * unknown (404, or 503 before the stream is read). */
static bool wait_final(struct request *r, long wait_s)
{
    char id[ID_LEN + 1];
    memcpy(id, r->rest, ID_LEN);
    id[ID_LEN] = '\0';
    int state = status_index_state(r->app->index, id, r->who.tenant);
    if (state < 0 || ST_FINAL(state)) return false;
    r->io->suspend(r);
    if (waiters_add(r->app->waiters, id, clock_mono_ms() + wait_s * 1000, on_waited, r) < 0) {
        on_waited(r, false); /* stopping (or out of memory): the status as it is */
        return true;
    }
    /* A final state applied between the first look and waiters_add woke
     * nobody: look again, now that the waiter is in place. */
    state = status_index_state(r->app->index, id, r->who.tenant);
    if (state < 0 || ST_FINAL(state)) waiters_wake(r->app->waiters, id);
    return true;
}

static bool get_status(struct request *r, struct answer *a)
{
    long wait_s;
    if (!id_valid(r->rest, r->rest_len)) {
        answer_error(a, 404, "not_found", "no request with this id");
        return false;
    }
    if (parse_wait(r, a, &wait_s) < 0) return false;
    if (wait_s > 0 && wait_final(r, wait_s)) return true;
    answer_status(r, a);
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
        answer_error(a, 500, "internal_error", "out of memory");
        return false;
    }
    answer_text(a, 200, "text/html; charset=utf-8", &b);
    (void)answer_header(a, "Content-Security-Policy", "%s",
                        "default-src 'none'; script-src 'unsafe-inline'; style-src "
                        "'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action "
                        "'none'; frame-ancestors 'none'");
    return false;
}

static bool get_admin_summary(struct request *r, struct answer *a)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    if (admin_summary(r->app, &b, clock_mono_ms()) < 0) {
        answer_error(a, 500, "internal_error", "out of memory");
        return false;
    }
    answer_text(a, 200, "application/json", &b);
    (void)answer_header(a, "Cache-Control", "no-store");
    return false;
}

/* ---- submitting: both forms, then one hand-off ---- */

/* new_envelope starts the envelope of r with its tenant, which counts
 * towards the message's size the builder checks. */
static int new_envelope(struct request *r, struct envelope *env, struct answer *a)
{
    envelope_init(env);
    if ((env->tenant = strdup(r->who.tenant))) return 0;
    answer_error(a, 500, "internal_error", "out of memory");
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
    if (envelope_trace_headers(&env, r->io->header(r, "traceparent"),
                               r->io->header(r, "tracestate")) < 0) {
        answer_error(a, 500, "internal_error", "out of memory");
        goto out;
    }
    r->route = auth_route(r->app->auth, &r->who, env.route, strlen(env.route), &why);
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
    r->route =
        auth_route(r->app->auth, &r->who, name, (size_t)((slash ? slash : end) - name), &why);
    if (!r->route) return refuse_why(a, &why);
    r->rest = slash;
    r->rest_len = slash ? (size_t)(end - slash) : 0;
    return 0;
}

/* begin_edge authorizes the route a request outside /v1 reached by its
 * host and path (find_edge); the path, cut of the route's prefix when
 * strip_path is set, goes to the backend. */
static int begin_edge(struct request *r, struct answer *a)
{
    struct auth_refusal why;
    if (auth_may_use(r->app->auth, &r->who, r->route)) return 0;
    why = (struct auth_refusal){.status = 403, .code = "route_forbidden"};
    snprintf(why.message, sizeof why.message, "this %s may not use route \"%s\"",
             r->who.limited ? "token" : "key", r->route->name);
    return refuse_why(a, &why);
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
        .callback_url = header_text(r, "X-Callback-Url"),
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

/* preflight answers a CORS preflight from an allowed origin, if r is one. */
static bool preflight(struct request *r, struct answer *a)
{
    const struct request_io *io = r->io;
    return cors_preflight(&r->app->cfg.ingress, r->method, io->header(r, "Origin"),
                          io->header(r, "Access-Control-Request-Method"),
                          io->header(r, "Access-Control-Request-Headers"), a);
}

static bool run_preflight(struct request *r, struct answer *a)
{
    if (!preflight(r, a)) answer_error(a, 500, "internal_error", "not a preflight");
    return false;
}

/* ---- the endpoints ---- */

enum methods { M_READ /* GET and HEAD */, M_GET, M_POST, M_DELETE, M_ANY };
/* ADMIN: the status page's admin token; ADMIN_KEY: an API key with
 * "admin": true, or that token (the page calls the admin API with it). */
enum who { ANYONE, KEY, ADMIN, ADMIN_KEY };
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

/* EDGE is the endpoint of a request outside /v1 that a route's hosts and
 * paths take (cfg_route_at): a transparent submission to that route. */
static const struct endpoint EDGE = {"",    true,     M_ANY,      KEY,
                                     false, ANY_BODY, begin_edge, submit_transparent};

/* PREFLIGHT is the endpoint of a CORS preflight from an allowed origin,
 * whatever its path: answered without a key, once the request is read, so
 * that the connection stays open for the call that follows (libmicrohttpd
 * closes a connection answered before its request was read). */
static const struct endpoint PREFLIGHT = {"",    false,   M_ANY, ANYONE,
                                          false, NO_BODY, NULL,  run_preflight};

static const struct endpoint ENDPOINTS[] = {
    {"/healthz", false, M_READ, ANYONE, false, NO_BODY, NULL, get_health},
    {"/readyz", false, M_READ, ANYONE, false, NO_BODY, NULL, get_ready},
    {"/metrics", false, M_READ, ANYONE, false, NO_BODY, NULL, get_metrics},
    {"/", false, M_READ, ANYONE, true, NO_BODY, NULL, get_admin_page},
    {"/admin/summary", false, M_READ, ADMIN, true, NO_BODY, NULL, get_admin_summary},
    {"/v1/requests", false, M_POST, KEY, false, JSON_BODY, NULL, submit_envelope},
    {"/v1/requests", false, M_GET, KEY, false, NO_BODY, NULL, requests_list},
    {"/v1/requests:batch", false, M_POST, KEY, false, JSON_BODY, NULL, batch_submit},
    {"/v1/requests/", true, M_GET, KEY, false, NO_BODY, NULL, get_status},
    {"/v1/requests/", true, M_DELETE, KEY, false, NO_BODY, NULL, requests_delete},
    {"/v1/routes/", true, M_ANY, KEY, false, ANY_BODY, begin_transparent, submit_transparent},
    {"/v1/admin/dead", false, M_GET, ADMIN_KEY, false, NO_BODY, NULL, admin_dead_list},
    {"/v1/admin/dead:replay", false, M_POST, ADMIN_KEY, false, JSON_BODY, NULL, admin_dead_replay},
    {"/v1/admin/dead:purge", false, M_POST, ADMIN_KEY, false, JSON_BODY, NULL, admin_dead_purge},
    {"/v1/admin/routes", false, M_GET, ADMIN_KEY, false, NO_BODY, NULL, admin_routes_list},
    {"/v1/admin/history", false, M_GET, ADMIN_KEY, false, NO_BODY, NULL, admin_history},
    {"/v1/admin/routes/", true, M_ANY, ADMIN_KEY, false, JSON_BODY, NULL, admin_route_change},
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

/* find_edge returns EDGE when a route's hosts and paths take r, with
 * r->route and r->rest (the path to send on) set; else NULL. */
static const struct endpoint *find_edge(struct request *r)
{
    size_t matched = 0;
    const char *host = r->io->header(r, "Host");
    r->route =
        cfg_route_at(&r->app->cfg, host, host ? strlen(host) : 0, r->target, r->path_len, &matched);
    if (!r->route) return NULL;
    bool strip = r->route->strip_path;
    r->rest = r->target + (strip ? matched : 0);
    r->rest_len = r->path_len - (strip ? matched : 0);
    return &EDGE;
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

/* authenticate finds who sent r, from its bearer token. */
static int authenticate(struct request *r, struct answer *a)
{
    struct auth_refusal why;
    if (auth_request(r->app->auth, r->io->header(r, "Authorization"), clock_real_ms() / 1000,
                     &r->who, &why) < 0)
        return refuse_why(a, &why);
    return 0;
}

/* admin_key lets an API key with "admin": true in where the admin token is
 * asked for (the status page's summary: the page takes either); another
 * key is refused 403, anything else 401 as a wrong token is. */
static int admin_key(struct request *r, struct answer *a)
{
    struct auth_refusal why;
    const char *authorization = r->io->header(r, "Authorization");
    if (auth_request(r->app->auth, authorization, clock_real_ms() / 1000, &r->who, &why) < 0) {
        auth_admin_refusal(authorization, &why);
        return refuse_why(a, &why);
    }
    if (!r->who.key || !r->who.key->admin)
        return refuse(a, 403, "admin_forbidden", "this key may not use the admin API");
    return 0;
}

int handle_begin(struct request *r, struct answer *a)
{
    const struct cfg *cfg = &r->app->cfg;
    bool v1 = path_starts(r, "/v1/", 4);
    if (guard_check(&cfg->ingress, strlen(r->target), r->io->walk_headers, r, a) < 0) return -1;
    struct answer probe = {0};
    if (preflight(r, &probe)) {
        r->ep = &PREFLIGHT;
        return 0;
    }
    /* Inside /v1 the key comes first: without one, nothing about paths or
     * routes is told. The admin API also takes the status page's token. */
    bool admin_token =
        path_starts(r, "/v1/admin/", 10) && auth_admin(cfg, r->io->header(r, "Authorization"));
    if (v1 && !admin_token && authenticate(r, a) < 0) return -1;
    r->ep = find(r);
    if (!r->ep && !v1) r->ep = find_edge(r);
    /* Outside /v1 and the routes' paths everything is read-only. */
    if (!r->ep && !v1 && !method_ok(M_READ, r->method))
        return refuse(a, 405, "method_not_allowed", "use GET");
    if (!r->ep) return refuse(a, 404, "not_found", "no such endpoint");
    if (!method_ok(r->ep->methods, r->method))
        return refuse(a, 405, "method_not_allowed",
                      v1 ? "this endpoint does not take this method" : "use GET");
    if (r->ep == &EDGE && authenticate(r, a) < 0) return -1;
    if (r->ep->who == ADMIN && !auth_admin(cfg, r->io->header(r, "Authorization")) &&
        admin_key(r, a) < 0)
        return -1;
    if (r->ep->who == ADMIN_KEY && !admin_token && !(r->who.key && r->who.key->admin))
        return refuse(a, 403, "admin_forbidden", "this key may not use the admin API");
    if (r->ep->who != ADMIN_KEY && admin_token && !r->who.key)
        return refuse(a, 404, "not_found", "no such endpoint");
    if (r->ep->begin && r->ep->begin(r, a) < 0) return -1;
    return body_checks(r, a);
}

void handle_end(struct request *r, struct answer *a)
{
    decorate(r, a);
    cors_decorate(&r->app->cfg.ingress, r->io->header(r, "Origin"), a);
}

bool handle(struct request *r, struct answer *a)
{
    if (r->ep->takes != NO_BODY && r->body_too_large) {
        answer_error(a, 413, "body_too_large", "the body is larger than max_body_bytes");
        return false;
    }
    return r->ep->run(r, a);
}
