/* test_netguard.c: unit tests for the internal-address check of outbound
 * safety (worker/netguard.c): IPv4 and IPv6 ranges, mapped forms, and a real
 * curl call refused at connect time while the same call without the guard
 * connects (to a listening loopback socket). */
#include "netguard.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool internal4(const char *s)
{
    struct sockaddr_in in = {.sin_family = AF_INET};
    ck_assert_int_eq(inet_pton(AF_INET, s, &in.sin_addr), 1);
    return netguard_internal((struct sockaddr *)&in, sizeof in);
}

static bool internal6(const char *s)
{
    struct sockaddr_in6 in = {.sin6_family = AF_INET6};
    ck_assert_int_eq(inet_pton(AF_INET6, s, &in.sin6_addr), 1);
    return netguard_internal((struct sockaddr *)&in, sizeof in);
}

START_TEST(test_ipv4)
{
    const char *in[] = {"127.0.0.1",      "127.255.1.2", "10.1.2.3",        "172.16.0.1",
                        "172.31.255.255", "192.168.1.1", "169.254.169.254", "100.64.0.1",
                        "0.0.0.0",        "224.0.0.1",   "255.255.255.255", "198.18.0.1"};
    const char *out[] = {"8.8.8.8",     "172.32.0.1", "172.15.255.255", "192.169.0.1",
                         "100.128.0.1", "1.1.1.1",    "169.255.0.1",    "223.255.255.255"};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++)
        ck_assert_msg(internal4(in[i]), "%s not internal", in[i]);
    for (size_t i = 0; i < sizeof out / sizeof out[0]; i++)
        ck_assert_msg(!internal4(out[i]), "%s internal", out[i]);
}
END_TEST

START_TEST(test_ipv6)
{
    const char *in[] = {"::1",
                        "::",
                        "fe80::1",
                        "fc00::1",
                        "fd12:3456::1",
                        "ff02::1",
                        "::ffff:127.0.0.1",
                        "::ffff:10.0.0.1",
                        "64:ff9b::a9fe:a9fe",
                        "::127.0.0.1"};
    const char *out[] = {"2001:4860:4860::8888", "::ffff:8.8.8.8", "2606:4700::1111",
                         "64:ff9b::808:808"};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++)
        ck_assert_msg(internal6(in[i]), "%s not internal", in[i]);
    for (size_t i = 0; i < sizeof out / sizeof out[0]; i++)
        ck_assert_msg(!internal6(out[i]), "%s internal", out[i]);
    struct sockaddr sa = {.sa_family = AF_UNIX};
    ck_assert(netguard_internal(&sa, sizeof sa));
}
END_TEST

/* call connects to a listening loopback port, with or without the guard. */
static CURLcode call(int port, bool guarded)
{
    char url[64];
    snprintf(url, sizeof url, "http://localhost:%d/", port);
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 5000L);
    if (guarded) curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, netguard_opensocket);
    CURLcode rc = curl_easy_perform(e);
    curl_easy_cleanup(e);
    return rc;
}

START_TEST(test_curl_refused_at_connect)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof in;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&in, sizeof in), 0);
    ck_assert_int_eq(listen(fd, 4), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&in, &len), 0);
    int port = ntohs(in.sin_port);
    ck_assert_int_eq(call(port, false), CURLE_OK);
    ck_assert_int_eq(call(port, true), CURLE_COULDNT_CONNECT);
    close(fd);
}
END_TEST

static Suite *netguard_suite(void)
{
    Suite *s = suite_create("netguard");
    TCase *tc = tcase_create("netguard");
    tcase_add_test(tc, test_ipv4);
    tcase_add_test(tc, test_ipv6);
    tcase_add_test(tc, test_curl_refused_at_connect);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(netguard_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
