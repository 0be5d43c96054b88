/* itest_edge.c: the ingress at the edge, end to end with the real binaries:
 * JWT bearer tokens made by an independent implementation (PyJWT, through
 * jwt_tokens.py), CORS preflights and headers, routing by host and path,
 * and HTTPS on the listener (curl through libcurl, the CLI, openssl). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define FINAL_MS 30000
#define HS_SECRET "edge-test-hs256-secret-0123456789abcdef"
#define ORIGIN "https://app.example"

/* ---- helpers ---- */

static struct h_resp *call(struct h_stack *s, const char *method, const char *path,
                           const char *token, const char *extra1, const char *extra2,
                           const char *body)
{
    char *url = NULL, auth[9000];
    const char *headers[5] = {NULL};
    size_t n = 0;
    ck_assert_int_gt(asprintf(&url, "%s%s", h_stack_url(s), path), 0);
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        headers[n++] = auth;
    }
    if (body) headers[n++] = "Content-Type: application/json";
    if (extra1) headers[n++] = extra1;
    if (extra2) headers[n++] = extra2;
    struct h_resp *r = h_request(method, url, headers, body, body ? strlen(body) : 0);
    free(url);
    return r;
}

static const char ENVELOPE[] = "{\"route\":\"echo\",\"path\":\"/jwt\",\"body\":{\"a\":1}}";

/* expect_401 checks a refused token: 401, the API's error, and a
 * WWW-Authenticate challenge that names invalid_token and holds reason
 * (NULL: any reason). */
static void expect_401(struct h_resp *r, const char *what, const char *reason)
{
    ck_assert_msg(r->status == 401, "%s: answered %ld: %s", what, r->status, r->body);
    const char *ch = h_resp_header(r, "WWW-Authenticate");
    ck_assert_msg(ch && !strncmp(ch, "Bearer error=\"invalid_token\", error_description=\"", 49),
                  "%s: WWW-Authenticate %s", what, ch ? ch : "(none)");
    if (reason) ck_assert_msg(strstr(ch, reason), "%s: \"%s\" lacks \"%s\"", what, ch, reason);
    ck_assert_ptr_nonnull(strstr(r->body, "\"unauthorized\""));
    h_resp_free(r);
}

/* file_has tells whether the file path contains needle. */
static bool file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "open %s", path);
    static char text[1 << 22];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    return strstr(text, needle) != NULL;
}

/* token_of reads one token of tokens.json (caller frees). */
static char *token_of(struct json_object *tokens, const char *name)
{
    char *t = strdup(h_json_str(tokens, name));
    ck_assert_ptr_nonnull(t);
    return t;
}

/* make_tokens runs jwt_tokens.py into the stack's directory. */
static struct json_object *make_tokens(struct h_stack *s)
{
    char log[1024], path[1024];
    snprintf(log, sizeof log, "%s/jwt_tokens.log", h_stack_dir(s));
    char *argv[] = {"/usr/bin/python3", "tests/integration/jwt_tokens.py", (char *)h_stack_dir(s),
                    HS_SECRET, NULL};
    ck_assert_msg(h_run("jwt_tokens.py", log, argv, 60000) == 0,
                  "jwt_tokens.py failed (python3-jwt installed? scripts/deps.sh); see %s", log);
    snprintf(path, sizeof path, "%s/tokens.json", h_stack_dir(s));
    struct json_object *o = json_object_from_file(path);
    ck_assert_msg(o != NULL, "cannot read %s", path);
    return o;
}

/* ---- JWT ---- */

static void jwt_keys(struct h_stack *s)
{
    const char *dir = h_stack_dir(s);
    h_stack_set(s, "routes.second", "{\"upstreams\":[\"%s\"]}", h_stack_backend_url(s));
    h_stack_set(s, "keys",
                "[{\"id\":\"hs\",\"type\":\"jwt\",\"alg\":\"HS256\",\"secret\":\"" HS_SECRET
                "\",\"issuer\":\"test-idp\",\"audience\":\"sluice\",\"routes_claim\":\"routes\"},"
                "{\"id\":\"rs\",\"type\":\"jwt\",\"alg\":\"RS256\",\"public_key_file\":\"%s/"
                "rsa-pub.pem\",\"issuer\":\"test-idp\",\"audience\":\"sluice\"},"
                "{\"id\":\"es\",\"type\":\"jwt\",\"alg\":\"ES256\",\"public_key_file\":\"%s/"
                "ec-pub.pem\",\"audience\":\"sluice\"}]",
                dir, dir);
    h_stack_add_key(s, "test", H_TOKEN, "acme", "[\"*\"]");
}

/* test_jwt: HS256, RS256 and ES256 tokens authenticate with the tenant of
 * their sub claim; expired, not yet valid, of another audience or issuer,
 * without exp, badly signed, alg none and the algorithm-confusion token are
 * refused with the reason in WWW-Authenticate; a routes claim narrows the
 * routes; the secret never reaches the log. */
START_TEST(test_jwt)
{
    struct h_stack *s = h_stack_new();
    struct json_object *tokens = make_tokens(s);
    jwt_keys(s);
    h_stack_start(s, 1);

    static const char *const good[] = {"hs256", "rs256", "es256", "aud_list"};
    char *ids[4];
    for (size_t i = 0; i < 4; i++) {
        char *t = token_of(tokens, good[i]);
        ids[i] = h_submit(s, t, ENVELOPE);
        long http = 0;
        struct json_object *st = h_get_status(s, t, ids[i], &http);
        ck_assert_msg(http == 200, "%s: its own request answered %ld", good[i], http);
        json_object_put(st);
        free(t);
    }
    /* The tenant is the sub claim: the API key's tenant (acme) sees none of them. */
    long http = 0;
    json_object_put(h_get_status(s, H_TOKEN, ids[1], &http));
    ck_assert_int_eq(http, 404);
    char *es = token_of(tokens, "es256");
    struct json_object *st = h_wait_final(s, es, ids[2], FINAL_MS);
    ck_assert_str_eq(h_json_str(st, "status"), "succeeded");
    json_object_put(st);
    /* An RS256 token's request is not the ES256 tenant's. */
    json_object_put(h_get_status(s, es, ids[1], &http));
    ck_assert_int_eq(http, 404);
    free(es);
    /* The transparent form takes a JWT too. */
    char *hs = token_of(tokens, "hs256");
    struct h_resp *r = call(s, "PUT", "/v1/routes/echo/jwt-put", hs, NULL, NULL, "{}");
    ck_assert_msg(r->status == 202, "transparent: %ld %s", r->status, r->body);
    h_resp_free(r);

    static const struct {
        const char *name, *reason;
    } bad[] = {
        {"expired", "the token has expired"},
        {"not_yet", "not valid yet"},
        {"wrong_aud", "audience"},
        {"wrong_iss", "issuer"},
        {"no_exp", "no expiry"},
        {"wrong_secret", "bad signature"},
        {"none", NULL},
        {"confusion", NULL},
        {"rs256_forged", "bad signature"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *t = token_of(tokens, bad[i].name);
        expect_401(call(s, "POST", "/v1/requests", t, NULL, NULL, ENVELOPE), bad[i].name,
                   bad[i].reason);
        free(t);
    }
    r = call(s, "POST", "/v1/requests", NULL, NULL, NULL, ENVELOPE);
    ck_assert_int_eq(r->status, 401);
    ck_assert_str_eq(h_resp_header(r, "WWW-Authenticate"), "Bearer");
    h_resp_free(r);

    /* routes claim ["echo"] on a key that allows every route: echo only. */
    char *limited = token_of(tokens, "routes_echo");
    free(h_submit(s, limited, ENVELOPE));
    r = call(s, "POST", "/v1/requests", limited, NULL, NULL, "{\"route\":\"second\"}");
    ck_assert_msg(r->status == 403 && strstr(r->body, "route_forbidden"), "%ld %s", r->status,
                  r->body);
    h_resp_free(r);
    free(limited);
    free(hs);

    for (size_t i = 0; i < 4; i++)
        free(ids[i]);
    json_object_put(tokens);
    h_stack_teardown(s);
}
END_TEST

/* test_jwt_secret_not_logged: at debug level, neither the HS256 secret nor
 * a token reaches the ingress's log. */
START_TEST(test_jwt_secret_not_logged)
{
    struct h_stack *s = h_stack_new();
    struct json_object *tokens = make_tokens(s);
    jwt_keys(s);
    h_stack_set(s, "log_level", "\"debug\"");
    h_stack_start(s, 0);
    char *hs = token_of(tokens, "hs256");
    free(h_submit(s, hs, ENVELOPE));
    char *bad = token_of(tokens, "wrong_secret");
    h_resp_free(call(s, "POST", "/v1/requests", bad, NULL, NULL, ENVELOPE));
    char log[1024];
    snprintf(log, sizeof log, "%s/ingress.log", h_stack_dir(s));
    ck_assert_msg(!file_has(log, HS_SECRET), "the HS256 secret is in %s", log);
    ck_assert_msg(!file_has(log, hs), "a token is in %s", log);
    free(bad);
    free(hs);
    json_object_put(tokens);
    h_stack_teardown(s);
}
END_TEST

/* ---- CORS and the edge ---- */

static void edge_routes(struct h_stack *s)
{
    const char *b = h_stack_backend_url(s);
    h_stack_set(s, "ingress.cors_origins", "[\"" ORIGIN "\"]");
    h_stack_set(s, "routes.shop",
                "{\"upstreams\":[\"%s\"],\"paths\":[\"/shop\"],\"strip_path\":true}", b);
    h_stack_set(s, "routes.api",
                "{\"upstreams\":[\"%s\"],\"hosts\":[\"api.example\"],"
                "\"paths\":[\"/v2\"]}",
                b);
}

/* test_cors: a preflight from the allowed origin is answered 204 without a
 * key, on a connection that stays open; answers to that origin carry the
 * CORS headers, even refusals; another origin gets none. */
START_TEST(test_cors)
{
    struct h_stack *s = h_stack_new();
    edge_routes(s);
    h_stack_start(s, 0);
    char buf[8192];
    int fd = h_dial(h_stack_port(s));
    h_send_all(fd, "OPTIONS /v1/requests HTTP/1.1\r\nHost: x\r\nOrigin: " ORIGIN
                   "\r\nAccess-Control-Request-Method: POST\r\n"
                   "Access-Control-Request-Headers: authorization, content-type\r\n\r\n");
    h_read_answer(fd, buf, sizeof buf, 5000);
    ck_assert_msg(!strncmp(buf, "HTTP/1.1 204", 12), "preflight: %s", buf);
    ck_assert_msg(strcasestr(buf, "\r\nAccess-Control-Allow-Origin: " ORIGIN "\r\n"), "%s", buf);
    ck_assert_msg(strcasestr(buf, "\r\nAccess-Control-Allow-Methods: GET, HEAD, POST"), "%s", buf);
    ck_assert_msg(strcasestr(buf, "\r\nAccess-Control-Allow-Headers: authorization, content-type"),
                  "%s", buf);
    ck_assert_msg(strcasestr(buf, "\r\nAccess-Control-Max-Age: 600\r\n"), "%s", buf);
    ck_assert_msg(!strcasestr(buf, "Connection: close"), "the preflight closed: %s", buf);
    /* the same connection takes the next request */
    h_send_all(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    h_read_answer(fd, buf, sizeof buf, 5000);
    ck_assert_msg(!strncmp(buf, "HTTP/1.1 200", 12), "after the preflight: %s", buf);
    close(fd);

    struct h_resp *r = call(s, "POST", "/v1/requests", H_TOKEN, "Origin: " ORIGIN, NULL, ENVELOPE);
    ck_assert_int_eq(r->status, 202);
    ck_assert_str_eq(h_resp_header(r, "Access-Control-Allow-Origin"), ORIGIN);
    ck_assert_ptr_nonnull(strstr(h_resp_header(r, "Access-Control-Expose-Headers"), "Location"));
    ck_assert_ptr_nonnull(strstr(h_resp_header(r, "Vary"), "Origin"));
    h_resp_free(r);
    r = call(s, "POST", "/v1/requests", NULL, "Origin: " ORIGIN, NULL, ENVELOPE);
    ck_assert_int_eq(r->status, 401);
    ck_assert_str_eq(h_resp_header(r, "Access-Control-Allow-Origin"), ORIGIN);
    h_resp_free(r);
    r = call(s, "POST", "/v1/requests", H_TOKEN, "Origin: https://evil.example", NULL, ENVELOPE);
    ck_assert_int_eq(r->status, 202);
    ck_assert_ptr_null(h_resp_header(r, "Access-Control-Allow-Origin"));
    ck_assert_ptr_null(h_resp_header(r, "Access-Control-Expose-Headers"));
    h_resp_free(r);
    r = call(s, "OPTIONS", "/v1/requests", NULL, "Origin: https://evil.example",
             "Access-Control-Request-Method: POST", NULL);
    ck_assert_int_eq(r->status, 401);
    ck_assert_ptr_null(h_resp_header(r, "Access-Control-Allow-Origin"));
    h_resp_free(r);
    h_stack_teardown(s);
}
END_TEST

/* test_edge_routes: requests outside /v1 reach a route by path (prefix cut)
 * or by host; the API's own paths keep their meaning. */
START_TEST(test_edge_routes)
{
    struct h_stack *s = h_stack_new();
    edge_routes(s);
    h_stack_start(s, 1);
    struct h_resp *r = call(s, "PUT", "/shop/items/7?x=1", H_TOKEN, NULL, NULL, "{\"n\":7}");
    ck_assert_msg(r->status == 202, "PUT /shop/items/7: %ld %s", r->status, r->body);
    struct json_object *o = h_resp_json(r);
    char *id = strdup(h_json_str(o, "id"));
    json_object_put(o);
    h_resp_free(r);
    struct json_object *st = h_wait_final(s, H_TOKEN, id, FINAL_MS);
    ck_assert_str_eq(h_json_str(st, "status"), "succeeded");
    ck_assert_str_eq(h_json_str(st, "route"), "shop");
    ck_assert_str_eq(h_json_str(st, "result.body.method"), "PUT");
    ck_assert_str_eq(h_json_str(st, "result.body.path"), "/items/7");
    ck_assert_str_eq(h_json_str(st, "result.body.query"), "x=1");
    json_object_put(st);
    free(id);

    r = call(s, "GET", "/v2/things", H_TOKEN, "Host: API.example:443", NULL, NULL);
    ck_assert_msg(r->status == 202, "GET /v2/things on api.example: %ld %s", r->status, r->body);
    o = h_resp_json(r);
    id = strdup(h_json_str(o, "id"));
    json_object_put(o);
    h_resp_free(r);
    st = h_wait_final(s, H_TOKEN, id, FINAL_MS);
    ck_assert_str_eq(h_json_str(st, "route"), "api");
    ck_assert_str_eq(h_json_str(st, "result.body.path"), "/v2/things");
    json_object_put(st);
    free(id);

    r = call(s, "GET", "/v2/things", H_TOKEN, "Host: other.example", NULL, NULL);
    ck_assert_int_eq(r->status, 404);
    h_resp_free(r);
    r = call(s, "POST", "/shop/x", NULL, NULL, NULL, "{}");
    ck_assert_int_eq(r->status, 401);
    ck_assert_str_eq(h_resp_header(r, "WWW-Authenticate"), "Bearer");
    h_resp_free(r);
    r = call(s, "POST", "/shop/x", H_OTHER_TOKEN, NULL, NULL, "{}");
    ck_assert_msg(r->status == 403 && strstr(r->body, "route_forbidden"), "%ld %s", r->status,
                  r->body);
    h_resp_free(r);
    r = call(s, "GET", "/healthz", NULL, "Host: api.example", NULL, NULL);
    ck_assert_int_eq(r->status, 200);
    h_resp_free(r);
    h_stack_teardown(s);
}
END_TEST

/* test_overlap_refused: two routes a request could both match stop the
 * start, with a message naming both. */
START_TEST(test_overlap_refused)
{
    struct h_stack *s = h_stack_new();
    char cfg[1024], log[1024], bin[1024];
    snprintf(cfg, sizeof cfg, "%s/overlap.json", h_stack_dir(s));
    snprintf(log, sizeof log, "%s/overlap.log", h_stack_dir(s));
    snprintf(bin, sizeof bin, "%s/sluice-ingress", h_bin_dir());
    FILE *f = fopen(cfg, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "{\"routes\":{\"catalog\":{\"upstreams\":[\"http://a\"],\"paths\":[\"/api\"]},"
               "\"billing\":{\"upstreams\":[\"http://b\"],\"paths\":[\"/api/billing\"]}}}");
    fclose(f);
    char *argv[] = {bin, "--config", cfg, NULL};
    ck_assert_int_eq(h_run("ingress", log, argv, 30000), 2);
    ck_assert_msg(file_has(log, "routes.billing") && file_has(log, "routes.catalog"),
                  "the message does not name both routes; see %s", log);
    h_stack_teardown(s);
}
END_TEST

/* ---- TLS ---- */

/* openssl_client runs openssl s_client with version (-tls1_1, ...) and
 * tells whether the handshake succeeded. */
static bool openssl_client(struct h_stack *s, const char *version)
{
    char connect[64], log[1024];
    snprintf(connect, sizeof connect, "127.0.0.1:%d", h_stack_port(s));
    snprintf(log, sizeof log, "%s/s_client%s.log", h_stack_dir(s), version);
    /* SECLEVEL=0 lets the client offer TLS 1.1 at all: the refusal must be
     * the server's. */
    char *argv[] = {"/usr/bin/openssl",
                    "s_client",
                    "-connect",
                    connect,
                    (char *)version,
                    "-cipher",
                    "DEFAULT:@SECLEVEL=0",
                    "-CAfile",
                    (char *)h_stack_cert(s),
                    NULL};
    int rc = h_run("s_client", log, argv, 30000);
    bool cipher = file_has(log, "Cipher is ") && !file_has(log, "Cipher is (NONE)");
    return rc == 0 && cipher;
}

/* test_tls: the listener serves HTTPS (TLS 1.2 and 1.3, not 1.1); libcurl
 * and the CLI verify it with the certificate as CA; plain HTTP gets no
 * answer. */
START_TEST(test_tls)
{
    struct h_stack *s = h_stack_new();
    h_stack_use_tls(s);
    h_stack_start(s, 1);
    ck_assert_int_eq(strncmp(h_stack_url(s), "https://", 8), 0);
    char *id = h_submit(s, H_TOKEN, ENVELOPE);
    struct json_object *st = h_wait_final(s, H_TOKEN, id, FINAL_MS);
    ck_assert_str_eq(h_json_str(st, "status"), "succeeded");
    json_object_put(st);
    free(id);

    char bin[1024], log[1024];
    snprintf(bin, sizeof bin, "%s/sluice", h_bin_dir());
    snprintf(log, sizeof log, "%s/cli.log", h_stack_dir(s));
    char *with_ca[] = {bin,
                       "--url",
                       (char *)h_stack_url(s),
                       "--cacert",
                       (char *)h_stack_cert(s),
                       "--token",
                       H_TOKEN,
                       "submit",
                       "--route",
                       "echo",
                       "--path",
                       "/cli",
                       NULL};
    ck_assert_msg(h_run("sluice", log, with_ca, 60000) == 0, "the CLI over TLS failed; see %s",
                  log);
    char *without[] = {bin,       "--url", (char *)h_stack_url(s),
                       "--token", H_TOKEN, "submit",
                       "--route", "echo",  NULL};
    ck_assert_int_eq(h_run("sluice", log, without, 60000), 4); /* unverified: no answer */

    ck_assert_msg(openssl_client(s, "-tls1_3"), "TLS 1.3 refused");
    ck_assert_msg(openssl_client(s, "-tls1_2"), "TLS 1.2 refused");
    ck_assert_msg(!openssl_client(s, "-tls1_1"), "TLS 1.1 accepted");

    char plain[96];
    snprintf(plain, sizeof plain, "http://127.0.0.1:%d/healthz", h_stack_port(s));
    struct h_resp *r = h_request("GET", plain, NULL, NULL, 0);
    ck_assert_msg(r->status == 0, "plain HTTP answered %ld", r->status);
    h_resp_free(r);
    h_stack_teardown(s);
}
END_TEST

static Suite *edge_suite(void)
{
    Suite *s = suite_create("edge");
    TCase *tc = tcase_create("edge");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_jwt);
    tcase_add_test(tc, test_jwt_secret_not_logged);
    tcase_add_test(tc, test_cors);
    tcase_add_test(tc, test_edge_routes);
    tcase_add_test(tc, test_overlap_refused);
    tcase_add_test(tc, test_tls);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(edge_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
