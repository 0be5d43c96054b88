/* test_auth.c: authentication and route authorization (ingress/auth.c):
 * bearer parsing, API keys, JWT keys (tokens signed here with OpenSSL's
 * HMAC: the tenant and routes claims, the 401 challenge and its reason) and
 * the admin token, and the one rule (and message) for a route a caller may
 * not use or that does not exist. */
#include <check.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "base64.h"

#define ALPHA_SHA "a336d9b1d8b8647875238537ca5087b0ea335afd2032936aecdffc3e4b13f720"
#define BETA_SHA "863d63c0bd3a94bfca84ed2063a7355a226faff82ca50b90158bf183aa1a9e61"
#define ADMIN "admin-token-0123456789"
#define SECRET1 "first-secret-0123456789abcdef-0123456789"
#define SECRET2 "second-secret-0123456789abcdef-012345678"
#define NOW 1800000000LL

static void load(struct cfg *c, bool admin)
{
    char err[256] = "";
    const char *doc =
        admin ? "{\"admin_token\":\"" ADMIN
                "\",\"routes\":{\"echo\":{\"upstreams\":[\"http://h\"]},"
                "\"orders\":{\"upstreams\":[\"http://o\"]}},\"keys\":["
                "{\"id\":\"a\",\"secret_sha256\":\"" ALPHA_SHA "\",\"tenant\":\"ta\","
                "\"routes\":[\"echo\"]},"
                "{\"id\":\"b\",\"secret_sha256\":\"" BETA_SHA "\",\"tenant\":\"tb\","
                "\"routes\":[\"*\"]},"
                "{\"id\":\"j1\",\"type\":\"jwt\",\"alg\":\"HS256\",\"secret\":\"" SECRET1
                "\",\"issuer\":\"idp1\",\"routes_claim\":\"routes\",\"max_priority\":2},"
                "{\"id\":\"j2\",\"type\":\"jwt\",\"alg\":\"HS256\",\"secret\":\"" SECRET2
                "\",\"audience\":\"sluice\",\"tenant_claim\":\"org\",\"routes\":[\"echo\"]}]}"
              : "{\"routes\":{\"echo\":{\"upstreams\":[\"http://h\"]}}}";
    ck_assert_msg(cfg_load_string(c, doc, "test.json", err, sizeof err) == 0, "%s", err);
}

static struct auth *new_auth(const struct cfg *c)
{
    char err[256] = "";
    struct auth *a = auth_new(c, err, sizeof err);
    ck_assert_msg(a != NULL, "%s", err);
    return a;
}

static void b64url_append(struct buf *b, const void *p, size_t n)
{
    struct buf t;
    buf_init(&t, 1 << 20);
    ck_assert_int_eq(base64_append(&t, p, n), 0);
    for (size_t i = 0; i < t.len; i++) {
        char c = t.data[i] == '+' ? '-' : t.data[i] == '/' ? '_' : t.data[i];
        if (c != '=') ck_assert_int_eq(buf_append(b, &c, 1), 0);
    }
    buf_free(&t);
}

/* bearer_jwt returns "Bearer <HS256 token of payload signed with secret>"
 * (caller frees). */
static char *bearer_jwt(const char *payload, const char *secret)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    struct buf b;
    unsigned char mac[64];
    unsigned int n = 0;
    buf_init(&b, 1 << 20);
    ck_assert_int_eq(buf_appends(&b, "Bearer "), 0);
    b64url_append(&b, header, strlen(header));
    ck_assert_int_eq(buf_appends(&b, "."), 0);
    b64url_append(&b, payload, strlen(payload));
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)b.data + 7, b.len - 7, mac,
         &n);
    ck_assert_int_eq(buf_appends(&b, "."), 0);
    b64url_append(&b, mac, n);
    size_t len;
    return buf_take(&b, &len);
}

START_TEST(test_bearer)
{
    static const struct {
        const char *header, *token;
    } cases[] = {
        {"Bearer abc", "abc"}, {"bearer abc", "abc"}, {"BEARER   abc", "abc"}, {"Bearer ", ""},
        {"Basic abc", NULL},   {"Bearerabc", NULL},   {"Bearer", NULL},        {"", NULL},
        {" Bearer abc", NULL}, {"Bearer a b", "a b"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = auth_bearer(cases[i].header);
        if (!cases[i].token)
            ck_assert_msg(got == NULL, "\"%s\" gave \"%s\"", cases[i].header, got);
        else
            ck_assert_msg(got && !strcmp(got, cases[i].token), "\"%s\" gave \"%s\"",
                          cases[i].header, got ? got : "(null)");
    }
    ck_assert_ptr_null(auth_bearer(NULL));
}
END_TEST

START_TEST(test_key)
{
    struct cfg c;
    struct principal who;
    struct auth_refusal why;
    load(&c, true);
    struct auth *a = new_auth(&c);
    ck_assert_int_eq(auth_request(a, "Bearer alpha-token", NOW, &who, &why), 0);
    ck_assert_ptr_eq(who.key, &c.keys[0]);
    ck_assert_str_eq(who.tenant, "ta");
    ck_assert(!who.limited);
    ck_assert_int_eq(auth_request(a, "bearer  beta-token", NOW, &who, &why), 0);
    ck_assert_ptr_eq(who.key, &c.keys[1]);
    static const char *const unknown[] = {"Bearer alpha-toke", "Bearer alpha-token2",
                                          "Bearer " ALPHA_SHA, "Bearer " ADMIN};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        ck_assert_int_eq(auth_request(a, unknown[i], NOW, &who, &why), -1);
        ck_assert_int_eq(why.status, 401);
        ck_assert_str_eq(why.code, "unauthorized");
        ck_assert_str_eq(why.challenge,
                         "Bearer error=\"invalid_token\", error_description=\"unknown token\"");
        ck_assert_ptr_null(who.key);
    }
    /* No token at all: a bare challenge (RFC 6750 section 3.1). */
    static const char *const none[] = {NULL, "Basic alpha-token", "Bearer ", "Bearer   "};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
        ck_assert_int_eq(auth_request(a, none[i], NOW, &who, &why), -1);
        ck_assert_int_eq(why.status, 401);
        ck_assert_str_eq(why.challenge, "Bearer");
    }
    auth_free(a);
    cfg_free(&c);
}
END_TEST

/* test_jwt: a token of either JWT key authenticates with the tenant of its
 * claim; a refused one says why, the reason of the key that got furthest. */
START_TEST(test_jwt)
{
    struct cfg c;
    struct principal who;
    struct auth_refusal why;
    char payload[512];
    load(&c, true);
    struct auth *a = new_auth(&c);

    snprintf(payload, sizeof payload, "{\"sub\":\"acme\",\"iss\":\"idp1\",\"exp\":%lld}", NOW + 60);
    char *t = bearer_jwt(payload, SECRET1);
    ck_assert_int_eq(auth_request(a, t, NOW, &who, &why), 0);
    ck_assert_ptr_eq(who.key, &c.keys[2]);
    ck_assert_str_eq(who.tenant, "acme");
    ck_assert(!who.limited);
    ck_assert_int_eq(who.key->max_priority, 2);
    free(t);

    snprintf(payload, sizeof payload,
             "{\"org\":\"globex\",\"aud\":[\"x\",\"sluice\"],\"exp\":%lld}", NOW + 60);
    t = bearer_jwt(payload, SECRET2);
    ck_assert_int_eq(auth_request(a, t, NOW, &who, &why), 0);
    ck_assert_ptr_eq(who.key, &c.keys[3]);
    ck_assert_str_eq(who.tenant, "globex");
    free(t);

    /* Expired: key j1 checked the signature, so its reason is the one given. */
    snprintf(payload, sizeof payload, "{\"sub\":\"acme\",\"iss\":\"idp1\",\"exp\":%lld}",
             NOW - 3600);
    t = bearer_jwt(payload, SECRET1);
    ck_assert_int_eq(auth_request(a, t, NOW, &who, &why), -1);
    ck_assert_int_eq(why.status, 401);
    ck_assert_str_eq(why.challenge, "Bearer error=\"invalid_token\", error_description=\"the "
                                    "token has expired\"");
    ck_assert_ptr_null(who.key);
    free(t);

    /* Signed with neither secret. */
    snprintf(payload, sizeof payload, "{\"sub\":\"acme\",\"exp\":%lld}", NOW + 60);
    t = bearer_jwt(payload, "some-other-secret-0123456789abcdef0123");
    ck_assert_int_eq(auth_request(a, t, NOW, &who, &why), -1);
    ck_assert_str_eq(why.challenge,
                     "Bearer error=\"invalid_token\", error_description=\"bad signature\"");
    free(t);

    /* Two dots but nothing of a token. */
    ck_assert_int_eq(auth_request(a, "Bearer a.b.c", NOW, &who, &why), -1);
    ck_assert_str_eq(why.challenge, "Bearer error=\"invalid_token\", "
                                    "error_description=\"malformed token header\"");
    /* Without JWT keys a JWT is just an unknown token. */
    struct cfg plain;
    load(&plain, false);
    struct auth *pa = new_auth(&plain);
    t = bearer_jwt(payload, SECRET1);
    ck_assert_int_eq(auth_request(pa, t, NOW, &who, &why), -1);
    ck_assert_str_eq(why.challenge, "Bearer error=\"invalid_token\", error_description=\"no key "
                                    "verifies this token\"");
    free(t);
    auth_free(pa);
    cfg_free(&plain);
    auth_free(a);
    cfg_free(&c);
}
END_TEST

/* test_jwt_routes: a routes claim narrows what the key allows: the
 * intersection, and a route the configuration lacks is ignored. */
START_TEST(test_jwt_routes)
{
    struct cfg c;
    struct principal who;
    struct auth_refusal why;
    char payload[512];
    load(&c, true);
    struct auth *a = new_auth(&c);
    snprintf(payload, sizeof payload,
             "{\"sub\":\"acme\",\"iss\":\"idp1\",\"routes\":[\"orders\",\"nosuch\"],\"exp\":%lld}",
             NOW + 60);
    char *t = bearer_jwt(payload, SECRET1);
    ck_assert_int_eq(auth_request(a, t, NOW, &who, &why), 0);
    ck_assert(who.limited);
    ck_assert_uint_eq(who.n_routes, 1);
    ck_assert_ptr_eq(auth_route(a, &who, "orders", 6, &why), &c.routes[1]);
    ck_assert_ptr_null(auth_route(a, &who, "echo", 4, &why));
    ck_assert_int_eq(why.status, 403);
    ck_assert_str_eq(why.message, "this token may not use route \"echo\"");
    free(t);
    /* key j2 allows echo only: a claim for orders gives nothing */
    snprintf(payload, sizeof payload,
             "{\"org\":\"g\",\"aud\":\"sluice\",\"routes\":[\"orders\"],\"exp\":%lld}", NOW + 60);
    t = bearer_jwt(payload, SECRET2);
    ck_assert_int_eq(auth_request(a, t, NOW, &who, &why), 0);
    ck_assert(!who.limited); /* j2 has no routes_claim: the claim is not read */
    ck_assert_ptr_null(auth_route(a, &who, "orders", 6, &why));
    ck_assert_ptr_eq(auth_route(a, &who, "echo", 4, &why), &c.routes[0]);
    free(t);
    /* an empty claim allows nothing */
    snprintf(payload, sizeof payload,
             "{\"sub\":\"acme\",\"iss\":\"idp1\",\"routes\":[],\"exp\":%lld}", NOW + 60);
    t = bearer_jwt(payload, SECRET1);
    ck_assert_int_eq(auth_request(a, t, NOW, &who, &why), 0);
    ck_assert_ptr_null(auth_route(a, &who, "orders", 6, &why));
    ck_assert_ptr_null(auth_route(a, &who, "echo", 4, &why));
    free(t);
    auth_free(a);
    cfg_free(&c);
}
END_TEST

/* test_new: a JWT key whose public key file cannot be read stops the start,
 * naming the key. */
START_TEST(test_new)
{
    struct cfg c;
    char err[256] = "";
    ck_assert_int_eq(cfg_load_string(&c,
                                     "{\"keys\":[{\"id\":\"r\",\"type\":\"jwt\",\"alg\":\"RS256\","
                                     "\"public_key_file\":\"/nonexistent/k.pem\"}]}",
                                     "t.json", err, sizeof err),
                     0);
    ck_assert_ptr_null(auth_new(&c, err, sizeof err));
    ck_assert_msg(
        strstr(err, "keys[0] (\"r\"): cannot read the public key file /nonexistent/k.pem"), "%s",
        err);
    cfg_free(&c);
}
END_TEST

START_TEST(test_admin)
{
    struct cfg c;
    load(&c, true);
    ck_assert(auth_admin(&c, "Bearer " ADMIN));
    ck_assert(auth_admin(&c, "bearer " ADMIN));
    ck_assert(!auth_admin(&c, "Bearer " ADMIN "x"));
    ck_assert(!auth_admin(&c, "Bearer admin-token-012345678"));
    ck_assert(!auth_admin(&c, "Bearer alpha-token"));
    ck_assert(!auth_admin(&c, "Bearer "));
    ck_assert(!auth_admin(&c, ADMIN));
    ck_assert(!auth_admin(&c, NULL));
    struct auth_refusal why;
    auth_admin_refusal(NULL, &why);
    ck_assert_str_eq(why.challenge, "Bearer");
    auth_admin_refusal("Bearer x", &why);
    ck_assert_int_eq(why.status, 401);
    ck_assert_str_eq(why.challenge,
                     "Bearer error=\"invalid_token\", error_description=\"wrong admin token\"");
    cfg_free(&c);
    /* Without an admin token nothing is the admin token, not even nothing. */
    load(&c, false);
    ck_assert(!auth_admin(&c, "Bearer "));
    ck_assert(!auth_admin(&c, "Bearer x"));
    cfg_free(&c);
}
END_TEST

START_TEST(test_route)
{
    struct cfg c;
    struct auth_refusal why;
    struct principal alpha, beta, nobody = {0};
    load(&c, true);
    struct auth *a = new_auth(&c);
    ck_assert_int_eq(auth_request(a, "Bearer alpha-token", NOW, &alpha, &why), 0);
    ck_assert_int_eq(auth_request(a, "Bearer beta-token", NOW, &beta, &why), 0);

    ck_assert_ptr_eq(auth_route(a, &alpha, "echo/x", 4, &why), &c.routes[0]);
    ck_assert_ptr_eq(auth_route(a, &beta, "orders", 6, &why), &c.routes[1]);

    ck_assert_ptr_null(auth_route(a, &alpha, "orders", 6, &why));
    ck_assert_int_eq(why.status, 403);
    ck_assert_str_eq(why.code, "route_forbidden");
    ck_assert_str_eq(why.message, "this key may not use route \"orders\"");

    ck_assert_ptr_null(auth_route(a, &beta, "nosuch", 6, &why));
    ck_assert_int_eq(why.status, 404);
    ck_assert_str_eq(why.code, "unknown_route");
    ck_assert_str_eq(why.message, "no route named \"nosuch\"");
    /* An unknown route is unknown to every key, before any permission. */
    ck_assert_ptr_null(auth_route(a, &alpha, "ech", 3, &why));
    ck_assert_int_eq(why.status, 404);
    ck_assert_ptr_null(auth_route(a, &alpha, "", 0, &why));
    ck_assert_str_eq(why.message, "no route named \"\"");
    /* A name from a request target may hold any byte; the message shows
     * printable ASCII only, and not too much of it. */
    ck_assert_ptr_null(auth_route(a, &beta, "a\xff\"b\n", 5, &why));
    ck_assert_str_eq(why.message, "no route named \"a?\"b?\"");
    char long_name[300];
    memset(long_name, 'n', sizeof long_name);
    ck_assert_ptr_null(auth_route(a, &beta, long_name, sizeof long_name, &why));
    ck_assert_uint_eq(strlen(why.message), strlen("no route named \"\"") + 64 + 3);
    ck_assert_ptr_null(auth_route(a, &nobody, "echo", 4, &why));
    ck_assert_int_eq(why.status, 403);
    ck_assert(auth_may_use(a, &beta, &c.routes[1]));
    ck_assert(!auth_may_use(a, &alpha, &c.routes[1]));
    auth_free(a);
    cfg_free(&c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("auth");
    tcase_add_test(tc, test_bearer);
    tcase_add_test(tc, test_key);
    tcase_add_test(tc, test_jwt);
    tcase_add_test(tc, test_jwt_routes);
    tcase_add_test(tc, test_new);
    tcase_add_test(tc, test_admin);
    tcase_add_test(tc, test_route);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
