/* test_handlers.c: the endpoint table of the ingress (ingress/handlers.c)
 * without a server: handlers see a request through struct request_io, so a
 * fake HTTP layer made of a header list is enough to check how every request
 * is classified, authenticated and refused before its body is read. */
#include <check.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cors.h"
#include "handlers.h"

#define ALPHA_SHA "a336d9b1d8b8647875238537ca5087b0ea335afd2032936aecdffc3e4b13f720"
#define ADMIN "admin-token-0123456789"
#define KEY "Authorization: Bearer alpha-token" /* route echo only */
#define OMEGA_SHA "afca876c6ed8165352ca2e4c2c03a209693d11fd43756ab8acebf2e45c99e508"
#define ADMIN_KEY "Authorization: Bearer omega-token" /* "admin": true */

/* fake is a request with its headers ("Name: value"); it starts with the
 * request so that the io functions can find the headers. */
struct fake {
    struct request r;
    const char *const *headers;
};

static const char *fake_header(const struct request *r, const char *name)
{
    const struct fake *f = (const struct fake *)r;
    size_t n = strlen(name);
    for (size_t i = 0; f->headers[i]; i++)
        if (!strncasecmp(f->headers[i], name, n) && f->headers[i][n] == ':')
            return f->headers[i] + n + 2;
    return NULL;
}

static int fake_walk(const void *src, env_header_fn fn, void *ctx)
{
    const struct fake *f = src;
    for (size_t i = 0; f->headers[i]; i++) {
        const char *colon = strchr(f->headers[i], ':');
        int rc =
            fn(ctx, f->headers[i], (size_t)(colon - f->headers[i]), colon + 2, strlen(colon + 2));
        if (rc) return rc;
    }
    return 0;
}

static const struct request_io FAKE_IO = {fake_header, fake_walk, NULL, NULL};

/* The routes: echo and orders by name only; shop at the edge on any host
 * under /shop (prefix cut), site under /w on the host site.example. Key alpha may
 * use echo and shop. */
#define ROUTES                                                                                     \
    "\"routes\":{\"echo\":{\"upstreams\":[\"http://h\"]},\"orders\":{\"upstreams\":[\"http://"     \
    "o\"]},"                                                                                       \
    "\"shop\":{\"upstreams\":[\"http://s\"],\"paths\":[\"/shop\"],\"strip_path\":true},"           \
    "\"site\":{\"upstreams\":[\"http://"                                                           \
    "w\"],\"hosts\":[\"site.example\"],\"paths\":[\"/w\"]}},\"keys\":[{\"id\":\"a\","              \
    "\"secret_sha256\":\"" ALPHA_SHA "\",\"tenant\":\"ta\",\"routes\":[\"echo\",\"shop\"]},"       \
    "{\"id\":\"o\",\"secret_sha256\":\"" OMEGA_SHA "\",\"tenant\":\"ops\",\"routes\":[\"echo\"],"  \
    "\"admin\":true}],"                                                                            \
    "\"ingress\":{\"cors_origins\":[\"https://app.example\"],\"max_url_bytes\":256,"               \
    "\"max_header_bytes\":1024}"

static void load(struct app *app, bool admin)
{
    char err[256] = "";
    const char *doc = admin ? "{\"admin_token\":\"" ADMIN "\"," ROUTES "}" : "{" ROUTES "}";
    memset(app, 0, sizeof *app);
    ck_assert_msg(cfg_load_string(&app->cfg, doc, "test.json", err, sizeof err) == 0, "%s", err);
    app->auth = auth_new(&app->cfg, err, sizeof err);
    ck_assert_msg(app->auth != NULL, "%s", err);
}

static void unload(struct app *app)
{
    auth_free(app->auth);
    cfg_free(&app->cfg);
}

static const struct begin_case {
    bool admin; /* an admin_token is configured */
    const char *method, *target;
    const char *headers[4];
    int status; /* 0: accepted */
    const char *code, *message;
    const char *route, *rest; /* when accepted: the route and what follows the endpoint */
} BEGIN_CASES[] = {
    {false, "GET", "/healthz", {NULL}, 0, NULL, NULL, NULL, ""},
    {false, "HEAD", "/readyz", {NULL}, 0, NULL, NULL, NULL, ""},
    {false, "GET", "/metrics?x", {NULL}, 0, NULL, NULL, NULL, ""},
    {false, "POST", "/healthz", {NULL}, 405, "method_not_allowed", "use GET", NULL, NULL},
    {false, "POST", "/nosuch", {NULL}, 405, "method_not_allowed", "use GET", NULL, NULL},
    {false, "GET", "/nosuch", {NULL}, 404, "not_found", "no such endpoint", NULL, NULL},
    {false, "GET", "/healthz/", {NULL}, 404, "not_found", "no such endpoint", NULL, NULL},
    {false, "GET", "/", {NULL}, 404, "not_found", "no such endpoint", NULL, NULL},
    {true, "GET", "/", {NULL}, 0, NULL, NULL, NULL, ""},
    {false,
     "GET",
     "/admin/summary",
     {"Authorization: Bearer " ADMIN},
     404,
     "not_found",
     NULL,
     NULL,
     NULL},
    {true,
     "GET",
     "/admin/summary",
     {NULL},
     401,
     "unauthorized",
     "missing or wrong admin token",
     NULL,
     NULL},
    /* A key opens the page's summary only when it is an admin key. */
    {true,
     "GET",
     "/admin/summary",
     {KEY},
     403,
     "admin_forbidden",
     "this key may not use the admin API",
     NULL,
     NULL},
    {true, "GET", "/admin/summary", {"Authorization: Bearer " ADMIN}, 0, NULL, NULL, NULL, ""},
    {true, "GET", "/admin/summary", {ADMIN_KEY}, 0, NULL, NULL, NULL, ""},
    {false,
     "POST",
     "/v1/requests",
     {NULL},
     401,
     "unauthorized",
     "missing bearer token",
     NULL,
     NULL},
    {false, "GET", "/v1/nosuch", {NULL}, 401, "unauthorized", NULL, NULL, NULL},
    {false, "GET", "/v1/nosuch", {KEY}, 404, "not_found", "no such endpoint", NULL, NULL},
    {false, "POST", "/v1/requests", {KEY}, 0, NULL, NULL, NULL, ""},
    {false, "GET", "/v1/requests", {KEY}, 0, NULL, NULL, NULL, ""},
    {false,
     "PUT",
     "/v1/requests",
     {KEY},
     405,
     "method_not_allowed",
     "this endpoint does not take this method",
     NULL,
     NULL},
    {false, "DELETE", "/v1/requests/abc", {KEY}, 0, NULL, NULL, NULL, "abc"},
    {false, "DELETE", "/v1/requests/abc/result", {KEY}, 0, NULL, NULL, NULL, "abc/result"},
    {false, "PATCH", "/v1/requests/abc", {KEY}, 405, "method_not_allowed", NULL, NULL, NULL},
    {false, "HEAD", "/v1/requests/abc", {KEY}, 405, "method_not_allowed", NULL, NULL, NULL},
    {false, "GET", "/v1/requests/abc?wait=1", {KEY}, 0, NULL, NULL, NULL, "abc"},
    {false,
     "POST",
     "/v1/requests",
     {KEY, "Content-Type: text/plain"},
     415,
     "unsupported_media_type",
     NULL,
     NULL,
     NULL},
    {false,
     "POST",
     "/v1/requests",
     {KEY, "Content-Type: application/json; charset=utf-8"},
     0,
     NULL,
     NULL,
     NULL,
     ""},
    {false,
     "POST",
     "/v1/requests",
     {KEY, "Content-Length: 1048577"},
     413,
     "body_too_large",
     NULL,
     NULL,
     NULL},
    {false, "POST", "/v1/requests", {KEY, "Content-Length: 1048576"}, 0, NULL, NULL, NULL, ""},
    {false, "GET", "/healthz", {"Content-Length: x"}, 413, "body_too_large", NULL, NULL, NULL},
    {false,
     "PUT",
     "/v1/routes/echo/a/b?q=1",
     {KEY, "Content-Type: text/plain"},
     0,
     NULL,
     NULL,
     "echo",
     "/a/b"},
    {false, "M-SEARCH", "/v1/routes/echo", {KEY}, 0, NULL, NULL, "echo", NULL},
    {false,
     "POST",
     "/v1/routes/orders/x",
     {KEY},
     403,
     "route_forbidden",
     "this key may not use route \"orders\"",
     NULL,
     NULL},
    {false,
     "POST",
     "/v1/routes/nosuch/x",
     {KEY},
     404,
     "unknown_route",
     "no route named \"nosuch\"",
     NULL,
     NULL},
    {false, "POST", "/v1/routes/", {KEY}, 404, "unknown_route", "no route named \"\"", NULL, NULL},
    {false,
     "POST",
     "/v1/routes/echo/x",
     {KEY, "Content-Length: 2000000"},
     413,
     "body_too_large",
     NULL,
     NULL,
     NULL},
    /* The edge: a route's paths or hosts take requests outside /v1. */
    {false, "GET", "/shop/cart?x=1", {KEY}, 0, NULL, NULL, "shop", "/cart"},
    {false, "DELETE", "/shop", {KEY}, 0, NULL, NULL, "shop", ""},
    {false, "POST", "/shop/x", {NULL}, 401, "unauthorized", "missing bearer token", NULL, NULL},
    {false,
     "POST",
     "/shop/x",
     {"Authorization: Bearer nope"},
     401,
     "unauthorized",
     NULL,
     NULL,
     NULL},
    {false, "POST", "/shopx", {KEY}, 405, "method_not_allowed", "use GET", NULL, NULL},
    {false, "GET", "/shopx", {KEY}, 404, "not_found", NULL, NULL, NULL},
    {false,
     "GET",
     "/w/x",
     {KEY, "Host: Site.Example:8080"},
     403,
     "route_forbidden",
     "this key may not use route \"site\"",
     NULL,
     NULL},
    {false, "GET", "/healthz", {"Host: site.example"}, 0, NULL, NULL, NULL, ""},
    /* Framing two parties could read differently is refused (RFC 9112 6.3). */
    {false,
     "POST",
     "/v1/requests",
     {KEY, "Content-Length: 5", "Content-Length: 6"},
     400,
     "bad_framing",
     "two different Content-Length values",
     NULL,
     NULL},
    {false,
     "POST",
     "/v1/requests",
     {KEY, "Content-Length: 5", "Content-Length: 5"},
     0,
     NULL,
     NULL,
     NULL,
     ""},
    {false,
     "POST",
     "/v1/requests",
     {KEY, "Content-Length: 5", "Transfer-Encoding: chunked"},
     400,
     "bad_framing",
     "both Content-Length and Transfer-Encoding",
     NULL,
     NULL},
    {false,
     "POST",
     "/shop/x",
     {KEY, "Transfer-Encoding: gzip, chunked"},
     400,
     "bad_framing",
     NULL,
     NULL,
     NULL},
    {false,
     "POST",
     "/v1/requests",
     {KEY, "Transfer-Encoding: chunked", "Transfer-Encoding: chunked"},
     400,
     "bad_framing",
     NULL,
     NULL,
     NULL},
    {false, "POST", "/v1/requests", {KEY, "Transfer-Encoding: Chunked"}, 0, NULL, NULL, NULL, ""},
    /* Framing is checked before anything else, even the key. */
    {false,
     "GET",
     "/healthz",
     {"Content-Length: 1", "Transfer-Encoding: chunked"},
     400,
     "bad_framing",
     NULL,
     NULL,
     NULL},
};

START_TEST(test_begin)
{
    const struct begin_case *t = &BEGIN_CASES[_i];
    struct app app;
    load(&app, t->admin);
    struct fake f = {.headers = t->headers};
    struct request *r = &f.r;
    r->app = &app;
    r->io = &FAKE_IO;
    r->method = t->method;
    r->target = t->target;
    r->path_len = strcspn(t->target, "?");
    struct answer a = {0};
    int rc = handle_begin(r, &a);
    if (t->status) {
        ck_assert_msg(rc == -1, "case %d (%s %s) accepted", _i, t->method, t->target);
        ck_assert_int_eq(a.status, t->status);
        ck_assert_ptr_nonnull(a.body);
        struct json_object *o = json_tokener_parse(a.body), *err, *code, *message;
        ck_assert_msg(o && json_object_object_get_ex(o, "error", &err) &&
                          json_object_object_get_ex(err, "code", &code) &&
                          json_object_object_get_ex(err, "message", &message),
                      "case %d: %s", _i, a.body);
        ck_assert_str_eq(json_object_get_string(code), t->code);
        if (t->message) ck_assert_str_eq(json_object_get_string(message), t->message);
        json_object_put(o);
    } else {
        ck_assert_msg(rc == 0, "case %d (%s %s): %s", _i, t->method, t->target, a.body);
        ck_assert_ptr_null(a.body);
        if (t->route)
            ck_assert_str_eq(r->route->name, t->route);
        else
            ck_assert_ptr_null(r->route);
        if (t->rest) {
            ck_assert_uint_eq(r->rest_len, strlen(t->rest));
            ck_assert(!memcmp(r->rest, t->rest, r->rest_len));
        } else {
            ck_assert_ptr_null(r->rest);
        }
    }
    free(a.body);
    unload(&app);
}
END_TEST

/* A body past the cap is answered 413 by the endpoints that take one, and
 * ignored by those that do not; nothing else runs. */
START_TEST(test_body_too_large)
{
    static const char *const key[] = {KEY, NULL};
    static const char *const none[] = {NULL};
    struct app app;
    load(&app, false);
    struct fake f = {.headers = key};
    f.r = (struct request){.app = &app,
                           .io = &FAKE_IO,
                           .method = "POST",
                           .target = "/v1/routes/echo/x",
                           .path_len = 17,
                           .body_too_large = true};
    struct answer a = {0};
    ck_assert_int_eq(handle_begin(&f.r, &a), 0);
    ck_assert(!handle(&f.r, &a));
    ck_assert_int_eq(a.status, 413);
    ck_assert_ptr_nonnull(strstr(a.body, "body_too_large"));
    free(a.body);

    f = (struct fake){.headers = none};
    f.r = (struct request){.app = &app,
                           .io = &FAKE_IO,
                           .method = "GET",
                           .target = "/healthz",
                           .path_len = 8,
                           .body_too_large = true};
    a = (struct answer){0};
    ck_assert_int_eq(handle_begin(&f.r, &a), 0);
    ck_assert(!handle(&f.r, &a));
    ck_assert_int_eq(a.status, 200);
    ck_assert_str_eq(a.content_type, "application/json");
    ck_assert_str_eq(a.body, "{\"status\":\"ok\"}");
    free(a.body);
    unload(&app);
}
END_TEST

/* begin runs handle_begin on a request with headers (NULL-terminated). */
static int begin(struct app *app, struct fake *f, const char *method, const char *target,
                 const char *const *headers, struct answer *a)
{
    *f = (struct fake){.headers = headers};
    f->r = (struct request){.app = app,
                            .io = &FAKE_IO,
                            .method = method,
                            .target = target,
                            .path_len = strcspn(target, "?")};
    *a = (struct answer){0};
    return handle_begin(&f->r, a);
}

/* test_limits: a target past max_url_bytes is 414, a header block past
 * max_header_bytes 431, each with the API's JSON error. */
START_TEST(test_limits)
{
    struct app app;
    struct fake f;
    struct answer a;
    char target[300], big[1100];
    static const char *const key[] = {KEY, NULL};
    load(&app, false);
    memset(target, 'a', sizeof target);
    memcpy(target, "/v1/requests/", 13);
    target[256] = '\0'; /* exactly max_url_bytes */
    ck_assert_int_eq(begin(&app, &f, "GET", target, key, &a), 0);
    target[256] = 'a';
    target[257] = '\0';
    ck_assert_int_eq(begin(&app, &f, "GET", target, key, &a), -1);
    ck_assert_int_eq(a.status, 414);
    ck_assert_ptr_nonnull(strstr(a.body, "\"uri_too_long\""));
    free(a.body);
    /* "Authorization: Bearer alpha-token\r\n" is 35 bytes, "X-Big: \r\n" 9:
     * fill makes the block exactly max_header_bytes. */
    size_t fill = 1024 - 35 - 9;
    memset(big, 'v', sizeof big);
    memcpy(big, "X-Big: ", 7);
    big[7 + fill] = '\0';
    const char *const fits[] = {KEY, big, NULL};
    ck_assert_int_eq(begin(&app, &f, "GET", "/v1/requests/x", fits, &a), 0);
    big[7 + fill] = 'v';
    big[8 + fill] = '\0';
    ck_assert_int_eq(begin(&app, &f, "GET", "/v1/requests/x", fits, &a), -1);
    ck_assert_int_eq(a.status, 431);
    ck_assert_ptr_nonnull(strstr(a.body, "\"headers_too_large\""));
    free(a.body);
    unload(&app);
}
END_TEST

/* test_headers: a framing refusal closes the connection; a 401 says how to
 * authenticate (RFC 6750). */
START_TEST(test_headers)
{
    struct app app;
    struct fake f;
    struct answer a;
    load(&app, true);
    static const char *const smuggle[] = {"Content-Length: 1", "Content-Length: 2", NULL};
    ck_assert_int_eq(begin(&app, &f, "POST", "/v1/requests", smuggle, &a), -1);
    ck_assert_str_eq(answer_find(&a, "Connection"), "close");
    free(a.body);
    static const char *const none[] = {NULL};
    ck_assert_int_eq(begin(&app, &f, "GET", "/v1/requests/x", none, &a), -1);
    ck_assert_int_eq(a.status, 401);
    ck_assert_str_eq(answer_find(&a, "WWW-Authenticate"), "Bearer");
    ck_assert_ptr_null(answer_find(&a, "Connection"));
    free(a.body);
    static const char *const wrong[] = {"Authorization: Bearer wrong", NULL};
    ck_assert_int_eq(begin(&app, &f, "GET", "/v1/requests/x", wrong, &a), -1);
    ck_assert_str_eq(answer_find(&a, "WWW-Authenticate"),
                     "Bearer error=\"invalid_token\", error_description=\"unknown token\"");
    free(a.body);
    ck_assert_int_eq(begin(&app, &f, "GET", "/admin/summary", wrong, &a), -1);
    ck_assert_int_eq(a.status, 401);
    ck_assert_ptr_nonnull(strstr(answer_find(&a, "WWW-Authenticate"), "invalid_token"));
    free(a.body);
    unload(&app);
}
END_TEST

/* test_cors: a preflight from an allowed origin is answered before any key
 * is asked for; answers to it carry the CORS headers; other origins get
 * none, and without cors_origins nothing changes. */
START_TEST(test_cors)
{
    struct app app;
    struct fake f;
    struct answer a;
    load(&app, false);
    static const char *const pre[] = {
        "Origin: https://app.example", "Access-Control-Request-Method: POST",
        "Access-Control-Request-Headers: authorization, content-type", NULL};
    ck_assert_int_eq(begin(&app, &f, "OPTIONS", "/v1/requests", pre, &a), 0);
    ck_assert(!handle(&f.r, &a));
    ck_assert_int_eq(a.status, 204);
    ck_assert_ptr_null(a.body);
    ck_assert_ptr_null(a.content_type);
    ck_assert_str_eq(answer_find(&a, "Access-Control-Allow-Origin"), "https://app.example");
    ck_assert_str_eq(answer_find(&a, "Access-Control-Allow-Methods"),
                     "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
    ck_assert_str_eq(answer_find(&a, "Access-Control-Allow-Headers"),
                     "authorization, content-type");
    ck_assert_str_eq(answer_find(&a, "Access-Control-Max-Age"), "600");
    ck_assert_ptr_nonnull(strstr(answer_find(&a, "Vary"), "Origin"));
    handle_end(&f.r, &a);
    ck_assert_ptr_null(answer_find(&a, "Access-Control-Expose-Headers"));

    /* a preflight from another origin is an ordinary OPTIONS: no key, 401 */
    static const char *const other[] = {"Origin: https://evil.example",
                                        "Access-Control-Request-Method: POST", NULL};
    ck_assert_int_eq(begin(&app, &f, "OPTIONS", "/v1/requests", other, &a), -1);
    ck_assert_int_eq(a.status, 401);
    handle_end(&f.r, &a);
    ck_assert_ptr_null(answer_find(&a, "Access-Control-Allow-Origin"));
    ck_assert_str_eq(answer_find(&a, "Vary"), "Origin");
    free(a.body);

    /* an answer to the allowed origin, even a refusal, carries the headers */
    static const char *const call[] = {"Origin: https://app.example", NULL};
    ck_assert_int_eq(begin(&app, &f, "GET", "/v1/requests/x", call, &a), -1);
    handle_end(&f.r, &a);
    ck_assert_str_eq(answer_find(&a, "Access-Control-Allow-Origin"), "https://app.example");
    ck_assert_str_eq(answer_find(&a, "Access-Control-Expose-Headers"),
                     "Location, Retry-After, RateLimit-Limit, RateLimit-Remaining, "
                     "RateLimit-Reset, Idempotent-Replayed");
    ck_assert_ptr_nonnull(answer_find(&a, "WWW-Authenticate"));
    free(a.body);

    /* "null" (a sandboxed page, a file) is never an allowed origin; "*"
     * allows any other, echoed back, if it is fit to echo */
    struct cfg_ingress star = {0};
    char *any[] = {"*"};
    star.cors_origins = (struct cfg_strings){any, 1};
    ck_assert(!cors_allowed(&star, "null"));
    ck_assert(!cors_allowed(&star, NULL));
    ck_assert(!cors_allowed(&star, "https://a.example\x01"));
    ck_assert(cors_allowed(&star, "https://a.example"));
    ck_assert(!cors_allowed(&app.cfg.ingress, "https://app.example.evil"));
    /* requested headers that are no list of names are not echoed */
    struct answer pa = {0};
    ck_assert(cors_preflight(&star, "OPTIONS", "https://a.example", "PUT", "x-a, b\"c", &pa));
    ck_assert_str_eq(answer_find(&pa, "Access-Control-Allow-Headers"), CORS_HEADERS);
    ck_assert(!cors_preflight(&star, "GET", "https://a.example", "PUT", NULL, &pa));
    ck_assert(!cors_preflight(&star, "OPTIONS", "https://a.example", NULL, NULL, &pa));
    unload(&app);

    /* without cors_origins: no preflight, no CORS header, no Vary */
    char err[256];
    memset(&app, 0, sizeof app);
    ck_assert_int_eq(cfg_load_string(&app.cfg, "{}", "t", err, sizeof err), 0);
    app.auth = auth_new(&app.cfg, err, sizeof err);
    ck_assert_int_eq(begin(&app, &f, "OPTIONS", "/healthz", pre, &a), -1);
    ck_assert_int_eq(a.status, 405);
    handle_end(&f.r, &a);
    ck_assert_uint_eq(a.n_headers, 0);
    free(a.body);
    unload(&app);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("handlers");
    TCase *tc = tcase_create("handlers");
    tcase_add_loop_test(tc, test_begin, 0, sizeof BEGIN_CASES / sizeof BEGIN_CASES[0]);
    tcase_add_test(tc, test_body_too_large);
    tcase_add_test(tc, test_limits);
    tcase_add_test(tc, test_headers);
    tcase_add_test(tc, test_cors);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
