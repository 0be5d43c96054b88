/* test_auth.c: authentication and route authorization (ingress/auth.c):
 * bearer parsing, API keys and the admin token, and the one rule (and
 * message) for a route a key may not use or that does not exist. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

#define ALPHA_SHA "a336d9b1d8b8647875238537ca5087b0ea335afd2032936aecdffc3e4b13f720"
#define BETA_SHA "863d63c0bd3a94bfca84ed2063a7355a226faff82ca50b90158bf183aa1a9e61"
#define ADMIN "admin-token-0123456789"

static void load(struct cfg *c, bool admin)
{
    char err[256] = "";
    const char *doc = admin ? "{\"admin_token\":\"" ADMIN
                              "\",\"routes\":{\"echo\":{\"upstreams\":[\"http://h\"]},"
                              "\"orders\":{\"upstreams\":[\"http://o\"]}},\"keys\":["
                              "{\"id\":\"a\",\"secret_sha256\":\"" ALPHA_SHA "\",\"tenant\":\"ta\","
                              "\"routes\":[\"echo\"]},"
                              "{\"id\":\"b\",\"secret_sha256\":\"" BETA_SHA "\",\"tenant\":\"tb\","
                              "\"routes\":[\"*\"]}]}"
                            : "{\"routes\":{\"echo\":{\"upstreams\":[\"http://h\"]}}}";
    ck_assert_msg(cfg_load_string(c, doc, "test.json", err, sizeof err) == 0, "%s", err);
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
    load(&c, true);
    ck_assert_ptr_eq(auth_key(&c, "Bearer alpha-token"), &c.keys[0]);
    ck_assert_ptr_eq(auth_key(&c, "bearer  beta-token"), &c.keys[1]);
    ck_assert_ptr_null(auth_key(&c, "Bearer alpha-toke"));
    ck_assert_ptr_null(auth_key(&c, "Bearer alpha-token2"));
    ck_assert_ptr_null(auth_key(&c, "Basic alpha-token"));
    ck_assert_ptr_null(auth_key(&c, "Bearer " ALPHA_SHA));
    ck_assert_ptr_null(auth_key(&c, "Bearer " ADMIN));
    ck_assert_ptr_null(auth_key(&c, NULL));
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
    load(&c, true);
    const struct cfg_key *alpha = &c.keys[0], *beta = &c.keys[1];

    ck_assert_ptr_eq(auth_route(&c, alpha, "echo/x", 4, &why), &c.routes[0]);
    ck_assert_ptr_eq(auth_route(&c, beta, "orders", 6, &why), &c.routes[1]);

    ck_assert_ptr_null(auth_route(&c, alpha, "orders", 6, &why));
    ck_assert_int_eq(why.status, 403);
    ck_assert_str_eq(why.code, "route_forbidden");
    ck_assert_str_eq(why.message, "this key may not use route \"orders\"");

    ck_assert_ptr_null(auth_route(&c, beta, "nosuch", 6, &why));
    ck_assert_int_eq(why.status, 404);
    ck_assert_str_eq(why.code, "unknown_route");
    ck_assert_str_eq(why.message, "no route named \"nosuch\"");
    /* An unknown route is unknown to every key, before any permission. */
    ck_assert_ptr_null(auth_route(&c, alpha, "ech", 3, &why));
    ck_assert_int_eq(why.status, 404);
    ck_assert_ptr_null(auth_route(&c, alpha, "", 0, &why));
    ck_assert_str_eq(why.message, "no route named \"\"");
    /* A name from a request target may hold any byte; the message shows
     * printable ASCII only, and not too much of it. */
    ck_assert_ptr_null(auth_route(&c, beta, "a\xff\"b\n", 5, &why));
    ck_assert_str_eq(why.message, "no route named \"a?\"b?\"");
    char long_name[300];
    memset(long_name, 'n', sizeof long_name);
    ck_assert_ptr_null(auth_route(&c, beta, long_name, sizeof long_name, &why));
    ck_assert_uint_eq(strlen(why.message), strlen("no route named \"\"") + 64 + 3);
    ck_assert_ptr_null(auth_route(&c, NULL, "echo", 4, &why));
    ck_assert_int_eq(why.status, 403);
    cfg_free(&c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("auth");
    tcase_add_test(tc, test_bearer);
    tcase_add_test(tc, test_key);
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
