/* test_config_edge.c: the configuration of the edge (common/config.c,
 * config_keys.c, config_routes.c): lists (CORS origins) from the file and
 * the environment, the TLS pair, the hosts and path prefixes of routes with
 * their overlap check and matching, and JWT keys, whose secrets never appear
 * in a message. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "jwt.h"

#define HS_SECRET "0123456789abcdef0123456789abcdef-secret"
#define ALPHA_SHA_HEX "a336d9b1d8b8647875238537ca5087b0ea335afd2032936aecdffc3e4b13f720"

static void clear_env(void)
{
    unsetenv("SLUICE_CORS_ORIGINS");
    unsetenv("SLUICE_TLS_CERT_FILE");
    unsetenv("SLUICE_TLS_KEY_FILE");
    unsetenv("SLUICE_KEYS");
    unsetenv("SLUICE_ROUTES");
}

static void load_ok(struct cfg *c, const char *doc)
{
    char err[512] = "";
    ck_assert_msg(cfg_load_string(c, doc, "t.json", err, sizeof err) == 0, "%s: %s", doc, err);
}

/* load_bad loads doc, which must fail with a message holding want. */
static void load_bad(const char *doc, const char *want)
{
    struct cfg c;
    char err[512] = "";
    ck_assert_msg(cfg_load_string(&c, doc, "t.json", err, sizeof err) == -1, "accepted: %s", doc);
    ck_assert_msg(strstr(err, want) != NULL, "message \"%s\" lacks \"%s\"", err, want);
}

START_TEST(test_cors_origins)
{
    struct cfg c;
    load_ok(&c, "{}");
    ck_assert_uint_eq(c.ingress.cors_origins.n, 0);
    ck_assert_int_eq(c.ingress.cors_max_age_s, 600);
    cfg_free(&c);
    load_ok(&c, "{\"ingress\":{\"cors_origins\":[\"https://app.example.com\",\"http://"
                "localhost:3000\",\"*\",\"http://[::1]:8\"]}}");
    ck_assert_uint_eq(c.ingress.cors_origins.n, 4);
    ck_assert_str_eq(c.ingress.cors_origins.v[1], "http://localhost:3000");
    cfg_free(&c);
    setenv("SLUICE_CORS_ORIGINS", " https://a.example , http://b.example:81,,", 1);
    load_ok(&c, "{\"ingress\":{\"cors_origins\":[\"https://c.example\"]}}");
    ck_assert_uint_eq(c.ingress.cors_origins.n, 2);
    ck_assert_str_eq(c.ingress.cors_origins.v[0], "https://a.example");
    ck_assert_str_eq(c.ingress.cors_origins.v[1], "http://b.example:81");
    cfg_free(&c);
    setenv("SLUICE_CORS_ORIGINS", "", 1);
    load_ok(&c, "{\"ingress\":{\"cors_origins\":[\"https://c.example\"]}}");
    ck_assert_uint_eq(c.ingress.cors_origins.n, 0);
    cfg_free(&c);
    unsetenv("SLUICE_CORS_ORIGINS");
    static const char *const bad[] = {
        "\"https://a.example/\"", "\"https://a.example/app\"",    "\"a.example\"",
        "\"ftp://a.example\"",    "\"https://A.example\"",        "\"https://a.example:\"",
        "\"https://\"",           "\"https://a.example:123456\"",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char doc[256];
        snprintf(doc, sizeof doc, "{\"ingress\":{\"cors_origins\":[%s]}}", bad[i]);
        load_bad(doc, "ingress.cors_origins[0]: each item must be origins");
    }
    load_bad("{\"ingress\":{\"cors_origins\":\"https://a.example\"}}",
             "ingress.cors_origins: must be an array of strings");
    setenv("SLUICE_CORS_ORIGINS", "https://ok.example,https://bad.example/", 1);
    load_bad("{}", "SLUICE_CORS_ORIGINS: each item must be");
}
END_TEST

START_TEST(test_tls_pair)
{
    struct cfg c;
    load_ok(&c, "{\"ingress\":{\"tls_cert_file\":\"/etc/c.pem\",\"tls_key_file\":\"/etc/k.pem\"}}");
    ck_assert_str_eq(c.ingress.tls_cert_file, "/etc/c.pem");
    ck_assert_str_eq(c.ingress.tls_key_file, "/etc/k.pem");
    cfg_free(&c);
    load_bad("{\"ingress\":{\"tls_cert_file\":\"/etc/c.pem\"}}",
             "ingress.tls_key_file: must be set too");
    load_bad("{\"ingress\":{\"tls_key_file\":\"/etc/k.pem\"}}",
             "ingress.tls_cert_file: must be set too");
    setenv("SLUICE_TLS_CERT_FILE", "/run/c.pem", 1);
    setenv("SLUICE_TLS_KEY_FILE", "/run/k.pem", 1);
    load_ok(&c, "{}");
    ck_assert_str_eq(c.ingress.tls_key_file, "/run/k.pem");
    cfg_free(&c);
}
END_TEST

#define ROUTE(name, extra) "\"" name "\":{\"upstreams\":[\"http://u\"]" extra "}"

START_TEST(test_edge_routes)
{
    struct cfg c;
    size_t m = 99;
    // clang-format off
    static const char doc[] = "{\"routes\":{"
        ROUTE("api", ",\"hosts\":[\"API.example.com\"],\"paths\":[\"/v2\"]") ","
        ROUTE("shop", ",\"paths\":[\"/shop/\",\"/store\"],\"strip_path\":true") ","
        ROUTE("b", ",\"hosts\":[\"b.example\"],\"paths\":[\"/b\"]") ","
        ROUTE("plain", "") "}}";
    // clang-format on
    load_ok(&c, doc);
    const struct cfg_route *api = cfg_route_find(&c, "api", 3);
    const struct cfg_route *shop = cfg_route_find(&c, "shop", 4);
    const struct cfg_route *b = cfg_route_find(&c, "b", 1);
    ck_assert_str_eq(api->hosts.v[0], "api.example.com");
    ck_assert_str_eq(shop->paths.v[0], "/shop");
    ck_assert(shop->strip_path);
    ck_assert(!api->strip_path);
    ck_assert_ptr_eq(cfg_route_at(&c, "api.example.com", 15, "/v2/y", 5, &m), api);
    ck_assert_uint_eq(m, 3);
    ck_assert_ptr_eq(cfg_route_at(&c, "Api.Example.Com:8443", 20, "/v2", 3, &m), api);
    ck_assert_ptr_null(cfg_route_at(&c, "api.example.com", 15, "/v3", 3, &m));
    ck_assert_ptr_null(cfg_route_at(&c, "other.example", 13, "/v2", 3, &m));
    /* shop takes its paths on any host */
    ck_assert_ptr_eq(cfg_route_at(&c, "api.example.com", 15, "/shop/cart", 10, &m), shop);
    ck_assert_uint_eq(m, 5);
    ck_assert_ptr_eq(cfg_route_at(&c, NULL, 0, "/store", 6, &m), shop);
    ck_assert_uint_eq(m, 6);
    ck_assert_ptr_null(cfg_route_at(&c, "other", 5, "/storex", 7, &m));
    ck_assert_ptr_null(cfg_route_at(&c, "other", 5, "/sho", 4, &m));
    ck_assert_ptr_eq(cfg_route_at(&c, "b.example", 9, "/b/x", 4, &m), b);
    ck_assert_uint_eq(m, 2);
    ck_assert_ptr_null(cfg_route_at(&c, "c.example", 9, "/b/x", 4, &m));
    cfg_free(&c);

    ck_assert(cfg_path_under("/a", "/a", 2));
    ck_assert(cfg_path_under("/a", "/a/b", 4));
    ck_assert(!cfg_path_under("/a", "/ab", 3));
    ck_assert(!cfg_path_under("/a/b", "/a", 2));
    ck_assert(cfg_path_under("/", "/ab", 3));
}
END_TEST

START_TEST(test_edge_routes_refused)
{
    load_bad("{\"routes\":{" ROUTE("a", ",\"paths\":[\"/api\"]") "," ROUTE(
                 "b", ",\"paths\":[\"/api/v2\"]") "}}",
             "routes.b: its hosts and paths overlap those of routes.a: both match any host, path "
             "/api/v2");
    load_bad("{\"routes\":{" ROUTE("a", ",\"hosts\":[\"x.example\"]") "," ROUTE(
                 "b", ",\"hosts\":[\"y.example\",\"X.example\"],\"paths\":[\"/p\"]") "}}",
             "overlap those of routes.a: both match host x.example, path /p");
    load_bad("{\"routes\":{" ROUTE("a", ",\"paths\":[\"/\"]") "," ROUTE(
                 "b", ",\"hosts\":[\"y.example\"]") "}}",
             "overlap those of routes.a: both match host y.example, path /");
    /* disjoint: accepted */
    struct cfg c;
    // clang-format off
    static const char disjoint[] = "{\"routes\":{"
        ROUTE("a", ",\"hosts\":[\"x.example\"]") ","
        ROUTE("b", ",\"hosts\":[\"y.example\"]") ","
        ROUTE("c", ",\"hosts\":[\"z.example\"],\"paths\":[\"/apix\"]") ","
        ROUTE("d", ",\"hosts\":[\"z.example\"],\"paths\":[\"/api\"]") "}}";
    // clang-format on
    load_ok(&c, disjoint);
    cfg_free(&c);
    load_bad("{\"routes\":{" ROUTE("a", ",\"paths\":[\"/v1/x\"]") "}}",
             "routes.a.paths[0]: must not be under /v1");
    load_bad("{\"routes\":{" ROUTE("a", ",\"paths\":[\"api\"]") "}}",
             "routes.a.paths[0]: must start with /");
    load_bad("{\"routes\":{" ROUTE("a", ",\"paths\":[\"/a/../b\"]") "}}",
             "must not contain . or .. segments");
    load_bad("{\"routes\":{" ROUTE("a", ",\"paths\":[\"/a?b\"]") "}}", "without spaces, ?, #");
    load_bad("{\"routes\":{" ROUTE("a", ",\"hosts\":[\"a.example:80\"]") "}}",
             "routes.a.hosts[0]: must be a host name");
    load_bad("{\"routes\":{" ROUTE("a", ",\"hosts\":[]") "}}",
             "routes.a.hosts: must be a non-empty");
    load_bad("{\"routes\":{" ROUTE("a", ",\"strip_path\":true") "}}",
             "routes.a.strip_path: needs paths");
    load_bad("{\"routes\":{" ROUTE("a", ",\"paths\":[\"/a\"],\"strip_path\":1") "}}",
             "routes.a.strip_path: must be true or false");
}
END_TEST

#define JWT_KEY(extra) "{\"routes\":{" ROUTE("echo", "") "},\"keys\":[" extra "]}"

START_TEST(test_jwt_keys)
{
    struct cfg c;
    load_ok(&c, JWT_KEY("{\"id\":\"j\",\"type\":\"jwt\",\"alg\":\"HS256\",\"secret\":\"" HS_SECRET
                        "\",\"issuer\":\"https://idp\",\"audience\":\"sluice\",\"routes_claim\":"
                        "\"routes\",\"clock_skew_s\":5,\"routes\":[\"echo\"],\"max_priority\":4},"
                        "{\"id\":\"r\",\"type\":\"jwt\",\"alg\":\"RS256\",\"public_key_file\":\"/k."
                        "pem\"},"
                        "{\"id\":\"e\",\"type\":\"jwt\",\"alg\":\"ES256\",\"public_key_file\":\"/k."
                        "pem\",\"tenant_claim\":\"org\"}"));
    ck_assert_uint_eq(c.n_keys, 3);
    ck_assert(c.keys[0].is_jwt);
    ck_assert_int_eq(c.keys[0].jwt.alg, JWT_HS256);
    ck_assert_str_eq(c.keys[0].jwt.secret, HS_SECRET);
    ck_assert_str_eq(c.keys[0].jwt.issuer, "https://idp");
    ck_assert_str_eq(c.keys[0].jwt.audience, "sluice");
    ck_assert_str_eq(c.keys[0].jwt.tenant_claim, "sub");
    ck_assert_str_eq(c.keys[0].jwt.routes_claim, "routes");
    ck_assert_int_eq(c.keys[0].jwt.clock_skew_s, 5);
    ck_assert_int_eq(c.keys[0].max_priority, 4);
    ck_assert_ptr_null(c.keys[0].tenant);
    ck_assert_int_eq(c.keys[1].jwt.alg, JWT_RS256);
    ck_assert_str_eq(c.keys[1].jwt.public_key_file, "/k.pem");
    ck_assert_ptr_null(c.keys[1].jwt.issuer);
    ck_assert_ptr_null(c.keys[1].jwt.routes_claim);
    ck_assert_int_eq(c.keys[1].jwt.clock_skew_s, 60);
    ck_assert_str_eq(c.keys[1].routes[0], "*");
    ck_assert_int_eq(c.keys[2].jwt.alg, JWT_ES256);
    ck_assert_str_eq(c.keys[2].jwt.tenant_claim, "org");
    /* a JWT key is never an API key, whatever the token */
    ck_assert_ptr_null(cfg_key_for_token(&c, "x", 1));
    cfg_free(&c);
    /* an API key may say its type */
    load_ok(&c, JWT_KEY("{\"id\":\"a\",\"type\":\"api_key\",\"secret_sha256\":\"" ALPHA_SHA_HEX
                        "\",\"tenant\":\"t\"}"));
    ck_assert(!c.keys[0].is_jwt);
    cfg_free(&c);
}
END_TEST

START_TEST(test_jwt_keys_refused)
{
    static const struct {
        const char *key, *want;
    } cases[] = {
        {"{\"id\":\"j\",\"type\":\"jwt\",\"alg\":\"none\",\"secret\":\"" HS_SECRET "\"}",
         "keys[0].alg: must be HS256, RS256 or ES256 (got \"none\")"},
        {"{\"id\":\"j\",\"type\":\"jwt\",\"alg\":\"HS256\"}", "keys[0].secret: is required"},
        {"{\"id\":\"j\",\"type\":\"jwt\",\"alg\":\"HS256\",\"secret\":\"short-secret-xyz\"}",
         "keys[0].secret: must be a string of 32..4096 bytes (value not shown)"},
        {"{\"id\":\"j\",\"type\":\"jwt\",\"alg\":\"HS256\",\"secret\":12345}", "(value not shown)"},
        {"{\"id\":\"j\",\"type\":\"jwt\",\"alg\":\"HS256\",\"secret\":\"" HS_SECRET
         "\",\"public_key_file\":\"/k\"}",
         "keys[0].public_key_file: is for RS256 and ES256"},
        {"{\"id\":\"j\",\"type\":\"jwt\",\"alg\":\"RS256\"}",
         "keys[0].public_key_file: is required"},
        {"{\"id\":\"j\",\"type\":\"jwt\",\"alg\":\"ES256\",\"public_key_file\":\"/k\",\"secret\":"
         "\"" HS_SECRET "\"}",
         "keys[0].secret: is for HS256"},
        {"{\"id\":\"j\",\"type\":\"jwt\",\"alg\":\"RS256\",\"public_key_file\":\"/k\",\"tenant\":"
         "\"t\"}",
         "unknown key keys[0].tenant"},
        {"{\"id\":\"j\",\"type\":\"jwt\",\"alg\":\"RS256\",\"public_key_file\":\"/k\","
         "\"clock_skew_s\":3601}",
         "keys[0].clock_skew_s: must be between 0 and 3600"},
        {"{\"id\":\"j\",\"type\":\"jwt\",\"alg\":\"RS256\",\"public_key_file\":\"/k\","
         "\"tenant_claim\":\"\"}",
         "keys[0].tenant_claim: must be 1..64 characters"},
        {"{\"id\":\"j\",\"type\":\"jwt\",\"alg\":\"RS256\",\"public_key_file\":\"/k\",\"routes\":["
         "\"nosuch\"]}",
         "keys[0].routes[0]: unknown route"},
        {"{\"id\":\"j\",\"type\":\"token\"}", "keys[0].type: must be api_key or jwt"},
        {"{\"id\":\"a\",\"secret_sha256\":\"" ALPHA_SHA_HEX
         "\",\"tenant\":\"t\",\"alg\":\"HS256\"}",
         "unknown key keys[0].alg"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char doc[1024];
        struct cfg c;
        char err[512] = "";
        snprintf(doc, sizeof doc, JWT_KEY("%s"), cases[i].key);
        ck_assert_msg(cfg_load_string(&c, doc, "t.json", err, sizeof err) == -1, "accepted: %s",
                      doc);
        ck_assert_msg(strstr(err, cases[i].want) != NULL, "message \"%s\" lacks \"%s\"", err,
                      cases[i].want);
        ck_assert_msg(strstr(err, HS_SECRET) == NULL && strstr(err, "12345") == NULL,
                      "a secret in the message: %s", err);
    }
    /* two JWT keys have no secret_sha256 to collide */
    struct cfg c;
    load_ok(&c, JWT_KEY("{\"id\":\"a\",\"type\":\"jwt\",\"alg\":\"RS256\",\"public_key_file\":\"/"
                        "k\"},{\"id\":\"b\",\"type\":\"jwt\",\"alg\":\"RS256\",\"public_key_file\":"
                        "\"/k\"}"));
    cfg_free(&c);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("config_edge");
    TCase *tc = tcase_create("config_edge");
    tcase_add_checked_fixture(tc, clear_env, NULL);
    tcase_add_test(tc, test_cors_origins);
    tcase_add_test(tc, test_tls_pair);
    tcase_add_test(tc, test_edge_routes);
    tcase_add_test(tc, test_edge_routes_refused);
    tcase_add_test(tc, test_jwt_keys);
    tcase_add_test(tc, test_jwt_keys_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
