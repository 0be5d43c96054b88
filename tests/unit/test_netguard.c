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
#include <sys/wait.h>
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

/* listener opens a loopback listening socket and writes its port. */
static int listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof in;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&in, sizeof in), 0);
    ck_assert_int_eq(listen(fd, 4), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&in, &len), 0);
    *port = ntohs(in.sin_port);
    return fd;
}

/* eased_call makes a CONNECT_ONLY call with netguard_easy's options. */
static CURLcode eased_call(int port, bool allow_private)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 5000L);
    ck_assert_int_eq(netguard_easy(e, allow_private), 0);
    CURLcode rc = curl_easy_perform(e);
    curl_easy_cleanup(e);
    return rc;
}

/* An environment proxy (here one that refuses every connection) is not used:
 * the plain call goes to the proxy and fails, the eased one connects to the
 * host itself, and the guard still applies when private addresses are not
 * allowed. */
START_TEST(test_easy_no_proxy)
{
    int port;
    int fd = listener(&port);
    setenv("http_proxy", "http://127.0.0.1:1", 1);
    setenv("all_proxy", "http://127.0.0.1:1", 1);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 5000L);
    ck_assert_int_ne(curl_easy_perform(e), CURLE_OK);
    curl_easy_cleanup(e);
    ck_assert_int_eq(eased_call(port, true), CURLE_OK);
    ck_assert_int_eq(eased_call(port, false), CURLE_COULDNT_CONNECT);
    close(fd);
}
END_TEST

/* A redirect is answered, never followed, even when the caller had asked
 * curl to follow: the answer is the 302 itself (following it would fail to
 * connect to port 1). */
START_TEST(test_easy_no_redirect)
{
    int port;
    int fd = listener(&port);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int c = accept(fd, NULL, NULL);
        char buf[2048];
        ssize_t n = read(c, buf, sizeof buf);
        (void)n;
        static const char ans[] = "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/x\r\n"
                                  "Content-Length: 0\r\nConnection: close\r\n\r\n";
        ssize_t w = write(c, ans, sizeof ans - 1);
        (void)w;
        close(c);
        _exit(0);
    }
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    ck_assert_int_eq(netguard_easy(e, true), 0);
    ck_assert_int_eq(curl_easy_perform(e), CURLE_OK);
    long code = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    ck_assert_int_eq(code, 302);
    curl_easy_cleanup(e);
    int st;
    waitpid(pid, &st, 0);
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
    tcase_add_test(tc, test_easy_no_proxy);
    tcase_add_test(tc, test_easy_no_redirect);
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
