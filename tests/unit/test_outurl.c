/* test_outurl.c: unit tests for the allowlist check of client-named URLs
 * (common/outurl.c): listed hosts in any case, with a port, path and query;
 * and the refusals: other hosts (a listed name as a subdomain or a prefix,
 * user info that hides the real host), schemes other than http(s),
 * relative URLs, unprintable characters, overlong URLs, an empty list. */
#include "outurl.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static char *LIST[] = {"hooks.example.com", "127.0.0.1", "[::1]"};
static const struct cfg_strings HOSTS = {LIST, 3};

START_TEST(test_allowed)
{
    const char *ok[] = {"https://hooks.example.com/cb", "http://hooks.example.com:8080/cb?x=1#f",
                        "HTTPS://Hooks.Example.COM/cb", "https://hooks.example.com./cb",
                        "http://127.0.0.1:9/x",         "http://[::1]:9/x"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        ck_assert_msg(outurl_refusal(ok[i], &HOSTS) == NULL, "%s refused: %s", ok[i],
                      outurl_refusal(ok[i], &HOSTS));
}
END_TEST

START_TEST(test_refused)
{
    const char *bad[] = {"https://evil.example.net/cb",
                         "https://x.hooks.example.com/cb",
                         "https://hooks.example.com.evil.net/cb",
                         "https://hooks.example.com@evil.net/cb",
                         "https://user:pw@hooks.example.com/cb",
                         "https://evil.net\\@hooks.example.com/cb",
                         "ftp://hooks.example.com/cb",
                         "file:///etc/passwd",
                         "gopher://127.0.0.1:9/x",
                         "//hooks.example.com/cb",
                         "hooks.example.com/cb",
                         "/cb",
                         "",
                         "https://hooks.example.com/a b",
                         "https://hooks.example.com/\x01",
                         "http://127.0.0.2/x",
                         "http://2130706434/x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(outurl_refusal(bad[i], &HOSTS) != NULL, "%s allowed", bad[i]);
}
END_TEST

START_TEST(test_limits)
{
    static const struct cfg_strings none = {NULL, 0};
    ck_assert_ptr_nonnull(outurl_refusal("https://hooks.example.com/cb", &none));
    char url[OUTURL_MAX + 2];
    const char *head = "https://hooks.example.com/";
    size_t h = strlen(head);
    memcpy(url, head, h);
    memset(url + h, 'a', sizeof url - 1 - h);
    url[OUTURL_MAX] = '\0';
    ck_assert_ptr_null(outurl_refusal(url, &HOSTS));
    url[OUTURL_MAX] = 'a';
    url[OUTURL_MAX + 1] = '\0';
    ck_assert_ptr_nonnull(outurl_refusal(url, &HOSTS));
}
END_TEST

static Suite *outurl_suite(void)
{
    Suite *s = suite_create("outurl");
    TCase *tc = tcase_create("outurl");
    tcase_add_test(tc, test_allowed);
    tcase_add_test(tc, test_refused);
    tcase_add_test(tc, test_limits);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(outurl_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
