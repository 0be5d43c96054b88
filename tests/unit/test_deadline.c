/* test_deadline.c: the whole-request deadline (ingress/deadline.c) on real
 * loopback TCP connections, without libmicrohttpd: the test plays the HTTP
 * layer (begun, claim, rearm) and the client. A request still arriving
 * past the timeout is cut with a 408 and the socket shut down; a claimed
 * request, an idle connection and a kept-alive one between requests are
 * not; a request is either claimed or cut, never both. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "deadline.h"

#define TIMEOUT_MS 300 /* the watcher ticks every 100 ms */

static atomic_int cuts;

static void on_cut(void *arg)
{
    (void)arg;
    atomic_fetch_add(&cuts, 1);
}

/* pair connects a client socket to a server one over loopback. */
static void pair(int *client, int *server)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof a;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(l, 0);
    ck_assert_int_eq(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(l, 1), 0);
    ck_assert_int_eq(getsockname(l, (struct sockaddr *)&a, &len), 0);
    *client = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_eq(connect(*client, (struct sockaddr *)&a, sizeof a), 0);
    *server = accept(l, NULL, NULL);
    ck_assert_int_ge(*server, 0);
    close(l);
}

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* cuts_reach waits up to a second for n cuts: the watcher counts a cut
 * after it wrote the 408 the client may already have read. */
static int cuts_reach(int n)
{
    for (int i = 0; i < 100 && atomic_load(&cuts) < n; i++)
        sleep_ms(10);
    return atomic_load(&cuts);
}

/* server_got drains what the client sent, as libmicrohttpd would read it. */
static void server_got(int server)
{
    char b[256];
    while (recv(server, b, sizeof b, MSG_DONTWAIT) > 0) {
    }
}

/* client_answer returns what the client received (static), waiting ms. */
static const char *client_answer(int client, int ms)
{
    static char b[1024];
    size_t got = 0;
    b[0] = '\0';
    struct pollfd p = {client, POLLIN, 0};
    while (poll(&p, 1, ms) > 0) {
        ssize_t n = recv(client, b + got, sizeof b - 1 - got, 0);
        if (n <= 0) break;
        got += (size_t)n;
        b[got] = '\0';
    }
    return b;
}

START_TEST(test_dribble_is_cut)
{
    struct deadline *d = deadline_new(TIMEOUT_MS, true, on_cut, NULL);
    int client, server;
    pair(&client, &server);
    struct deadline_conn *c = deadline_open(d, server);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(deadline_watched(d), 1);
    /* a byte every 50 ms, never idle, never whole, until the cut */
    for (int i = 0; i < 14 && send(client, "G", 1, MSG_NOSIGNAL) == 1; i++) {
        server_got(server);
        sleep_ms(50);
    }
    const char *a = client_answer(client, 500);
    ck_assert_msg(!strncmp(a, "HTTP/1.1 408 Request Timeout\r\n", 30), "%s", a);
    ck_assert_ptr_nonnull(strstr(a, "\"request_timeout\""));
    ck_assert_int_eq(cuts_reach(1), 1);
    ck_assert(!deadline_claim(c)); /* too late to answer it */
    deadline_close(d, c);
    ck_assert_int_eq(deadline_watched(d), 0);
    close(client);
    close(server);
    deadline_free(d);
}
END_TEST

START_TEST(test_claimed_idle_and_kept_alive)
{
    struct deadline *d = deadline_new(TIMEOUT_MS, true, on_cut, NULL);
    int client, server, idle_client, idle_server;
    pair(&client, &server);
    pair(&idle_client, &idle_server);
    struct deadline_conn *c = deadline_open(d, server), *idle = deadline_open(d, idle_server);
    /* a request that arrives and is claimed (whole) is never cut */
    ck_assert_int_eq(send(client, "GET / HTTP/1.1\r\n\r\n", 18, MSG_NOSIGNAL), 18);
    server_got(server);
    deadline_begun(c);
    ck_assert(deadline_claim(c));
    ck_assert(deadline_claim(c)); /* claiming twice is harmless */
    sleep_ms(3 * TIMEOUT_MS);
    /* answered: between requests; waiting longer than the timeout is idling */
    deadline_rearm(c);
    sleep_ms(3 * TIMEOUT_MS);
    ck_assert_str_eq(client_answer(client, 0), "");
    ck_assert_str_eq(client_answer(idle_client, 0), "");
    /* the next request's clock starts with its first byte */
    ck_assert_int_eq(send(client, "GET", 3, MSG_NOSIGNAL), 3);
    server_got(server);
    sleep_ms(TIMEOUT_MS / 2);
    ck_assert(deadline_claim(c));
    ck_assert_int_eq(atomic_load(&cuts), 0);
    /* and a second request that dribbles is cut */
    deadline_rearm(c);
    sleep_ms(250); /* a tick notes what the socket received so far */
    ck_assert_int_eq(send(client, "G", 1, MSG_NOSIGNAL), 1);
    const char *a = client_answer(client, TIMEOUT_MS + 500);
    ck_assert_msg(!strncmp(a, "HTTP/1.1 408", 12), "%s", a);
    ck_assert_int_eq(cuts_reach(1), 1);
    ck_assert_str_eq(client_answer(idle_client, 0), "");
    deadline_close(d, c);
    deadline_close(d, idle);
    close(client);
    close(server);
    close(idle_client);
    close(idle_server);
    deadline_free(d);
}
END_TEST

/* test_tls_cut: without plain HTTP nothing is written, the socket is only
 * shut down. */
START_TEST(test_tls_cut)
{
    struct deadline *d = deadline_new(TIMEOUT_MS, false, NULL, NULL);
    int client, server;
    pair(&client, &server);
    struct deadline_conn *c = deadline_open(d, server);
    ck_assert_int_eq(send(client, "\x16\x03\x01", 3, MSG_NOSIGNAL), 3);
    deadline_begun(c);
    char b[16];
    struct pollfd p = {client, POLLIN, 0};
    ck_assert_int_eq(poll(&p, 1, TIMEOUT_MS + 500), 1);
    ck_assert_int_eq(recv(client, b, sizeof b, 0), 0); /* end of stream, no bytes */
    deadline_close(d, c);
    close(client);
    close(server);
    deadline_free(d);
}
END_TEST

/* test_many: opening and closing in any order keeps the watched set right;
 * freeing with connections still open frees them. */
START_TEST(test_many)
{
    struct deadline *d = deadline_new(TIMEOUT_MS, true, NULL, NULL);
    struct deadline_conn *c[100];
    for (int i = 0; i < 100; i++)
        c[i] = deadline_open(d, -1);
    for (int i = 0; i < 100; i += 3)
        deadline_close(d, c[i]);
    ck_assert_int_eq(deadline_watched(d), 66);
    deadline_close(d, NULL);
    deadline_free(d);
    deadline_free(NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("deadline");
    TCase *tc = tcase_create("deadline");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_dribble_is_cut);
    tcase_add_test(tc, test_claimed_idle_and_kept_alive);
    tcase_add_test(tc, test_tls_cut);
    tcase_add_test(tc, test_many);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
