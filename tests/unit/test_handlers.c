/* test_handlers.c: the endpoint table of the ingress (ingress/handlers.c)
 * without a server: handlers see a request through struct request_io, so a
 * fake HTTP layer made of a header list is enough to check how every request
 * is classified, authenticated and refused before its body is read. */
#include <check.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "handlers.h"

#define ALPHA_SHA "a336d9b1d8b8647875238537ca5087b0ea335afd2032936aecdffc3e4b13f720"
#define ADMIN "admin-token-0123456789"
#define KEY "Authorization: Bearer alpha-token" /* route echo only */

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

static const struct request_io FAKE_IO = {fake_header, NULL, NULL, NULL};

static void load(struct app *app, bool admin)
{
    char err[256] = "";
    const char *doc =
        admin ? "{\"admin_token\":\"" ADMIN
                "\",\"routes\":{\"echo\":{\"upstreams\":[\"http://h\"]},"
                "\"orders\":{\"upstreams\":[\"http://o\"]}},\"keys\":[{\"id\":\"a\","
                "\"secret_sha256\":\"" ALPHA_SHA "\",\"tenant\":\"ta\",\"routes\":[\"echo\"]}]}"
              : "{\"routes\":{\"echo\":{\"upstreams\":[\"http://h\"]},"
                "\"orders\":{\"upstreams\":[\"http://o\"]}},\"keys\":[{\"id\":\"a\","
                "\"secret_sha256\":\"" ALPHA_SHA "\",\"tenant\":\"ta\",\"routes\":[\"echo\"]}]}";
    memset(app, 0, sizeof *app);
    ck_assert_msg(cfg_load_string(&app->cfg, doc, "test.json", err, sizeof err) == 0, "%s", err);
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
    {true,
     "GET",
     "/admin/summary",
     {KEY},
     401,
     "unauthorized",
     "missing or wrong admin token",
     NULL,
     NULL},
    {true, "GET", "/admin/summary", {"Authorization: Bearer " ADMIN}, 0, NULL, NULL, NULL, ""},
    {false,
     "POST",
     "/v1/requests",
     {NULL},
     401,
     "unauthorized",
     "missing or unknown bearer token",
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
    cfg_free(&app.cfg);
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
    cfg_free(&app.cfg);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("handlers");
    TCase *tc = tcase_create("handlers");
    tcase_add_loop_test(tc, test_begin, 0, sizeof BEGIN_CASES / sizeof BEGIN_CASES[0]);
    tcase_add_test(tc, test_body_too_large);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
