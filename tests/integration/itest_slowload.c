/* itest_slowload.c: the ingress under slow clients, on loopback and bounded
 * in time. 5,000 idle connections and 1,000 that send a header byte per
 * second stay open while a well-behaved client submits and polls for 6 s:
 * its p99 must stay under 100 ms. The ingress's memory growth per idle
 * connection (never used, and kept alive after one request) and per
 * dribbling one is measured from its RSS and printed (the figures of
 * docs/operations.md come from a run with SLUICE_TEST_BIN=build).
 *
 * The test raises its own file descriptor limit (soft to hard, inherited by
 * the ingress it starts) and so changes nothing on the machine. */
#include <check.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define IDLE 5000
#define SLOW 1000
#define KEPT 1000 /* idle after one request: libmicrohttpd has zeroed their pools */
#define CLIENT_MS 6000
#define MAX_CALLS 100000
#define P99_MAX_MS 100.0

/* raise_fd_limit lifts the soft limit to the hard one; the test needs two
 * descriptors per connection (its end and the ingress's). */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = rl.rlim_max;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    ck_assert_msg(rl.rlim_cur >= IDLE + SLOW + KEPT + 1000,
                  "the hard file descriptor limit (%llu) is below the %d this test needs "
                  "(ulimit -Hn)",
                  (unsigned long long)rl.rlim_cur, IDLE + SLOW + KEPT + 1000);
}

/* rss_kib reads the resident set of pid. */
static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
    fclose(f);
    return kib;
}

/* open_many opens n connections to port, a batch at a time (the listen
 * backlog is 1,024), and waits until the server has taken them. */
static void open_many(int port, int *fds, int n)
{
    for (int i = 0; i < n; i++) {
        fds[i] = h_dial(port);
        if (i % 250 == 249) h_sleep_ms(20);
    }
    h_sleep_ms(1000);
}

/* The well-behaved client: submit, then poll the status, for CLIENT_MS. */
struct client {
    struct h_stack *s;
    double ms[MAX_CALLS];
    int n;
    atomic_int failures;
    char first_failure[512];
};

static double since(long long t0)
{
    return (double)(h_mono_ms() - t0);
}

static void *run_client(void *arg)
{
    struct client *c = arg;
    char url[256], status_url[512];
    const char *headers[] = {"Authorization: Bearer " H_TOKEN, "Content-Type: application/json",
                             NULL};
    static const char env[] = "{\"route\":\"echo\",\"path\":\"/slowload\"}";
    snprintf(url, sizeof url, "%s/v1/requests", h_stack_url(c->s));
    long long end = h_mono_ms() + CLIENT_MS;
    while (h_mono_ms() < end && c->n + 2 <= MAX_CALLS) {
        long long t0 = h_mono_ms();
        struct h_resp *r = h_request("POST", url, headers, env, strlen(env));
        c->ms[c->n++] = since(t0);
        struct json_object *o = r->status == 202 ? h_resp_json(r) : NULL, *id = NULL;
        if (!o || !json_object_object_get_ex(o, "id", &id)) {
            if (atomic_fetch_add(&c->failures, 1) == 0)
                snprintf(c->first_failure, sizeof c->first_failure, "POST: %ld %.200s %.100s",
                         r->status, r->err, r->body);
        } else {
            snprintf(status_url, sizeof status_url, "%s/%s", url, json_object_get_string(id));
            t0 = h_mono_ms();
            struct h_resp *g = h_request("GET", status_url, headers, NULL, 0);
            c->ms[c->n++] = since(t0);
            if (g->status != 200 && atomic_fetch_add(&c->failures, 1) == 0)
                snprintf(c->first_failure, sizeof c->first_failure, "GET: %ld %.200s", g->status,
                         g->err);
            h_resp_free(g);
        }
        json_object_put(o);
        h_resp_free(r);
    }
    return NULL;
}

/* still_open tells whether the server has not closed fd. */
static bool still_open(int fd)
{
    char b;
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, 0) == 0 || recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* dribble sends every slow connection one more header byte, and checks it
 * is still open. */
static void dribble(const int *fds, int n)
{
    for (int i = 0; i < n; i++)
        ck_assert_msg(send(fds[i], "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1,
                      "slow connection %d was closed", i);
}

START_TEST(test_slow_clients)
{
    static int idle[IDLE], slow[SLOW], kept[KEPT];
    char buf[4096];
    static struct client c;
    raise_fd_limit();
    struct h_stack *s = h_stack_new();
    h_stack_set(s, "ingress.request_timeout_s", "120");
    h_stack_set(s, "ingress.connection_timeout_s", "120");
    h_stack_set(s, "ingress.max_connections_per_ip", "10000");
    h_stack_start(s, 1);
    pid_t pid = h_proc_pid(h_stack_ingress(s));
    free(h_submit(s, H_TOKEN, "{\"route\":\"echo\"}"));
    h_sleep_ms(500);

    long rss0 = rss_kib(pid);
    open_many(h_stack_port(s), idle, IDLE);
    long rss1 = rss_kib(pid);
    open_many(h_stack_port(s), kept, KEPT);
    for (int i = 0; i < KEPT; i++) {
        h_send_all(kept[i], "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        ck_assert_int_eq(h_read_answer(kept[i], buf, sizeof buf, 10000), 0);
    }
    h_sleep_ms(500);
    long rss_kept = rss_kib(pid);
    open_many(h_stack_port(s), slow, SLOW);
    for (int i = 0; i < SLOW; i++)
        h_send_all(slow[i], "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    c.s = s;
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, run_client, &c), 0);
    for (long long next = h_mono_ms() + 1000, end = h_mono_ms() + CLIENT_MS; h_mono_ms() < end;
         next += 1000) {
        while (h_mono_ms() < next)
            h_sleep_ms(10);
        dribble(slow, SLOW);
    }
    pthread_join(t, NULL);
    long rss2 = rss_kib(pid);

    qsort(c.ms, (size_t)c.n, sizeof c.ms[0], by_value);
    double p50 = c.ms[c.n / 2], p99 = c.ms[c.n * 99 / 100], max = c.ms[c.n - 1];
    printf("slowload: %d idle + %d kept-alive + %d slow connections; the client made %d calls "
           "in %d s: p50 %.1f ms, p99 %.1f ms, max %.1f ms; ingress RSS %ld KiB before, +%.1f "
           "KiB per idle connection, +%.1f per kept-alive one, +%.1f per slow one (%s)\n",
           IDLE, KEPT, SLOW, c.n, CLIENT_MS / 1000, p50, p99, max, rss0,
           (double)(rss1 - rss0) / IDLE, (double)(rss_kept - rss1) / KEPT,
           (double)(rss2 - rss_kept) / SLOW, h_bin_dir());
    ck_assert_msg(c.failures == 0, "%d failed calls; the first: %s", (int)c.failures,
                  c.first_failure);
    ck_assert_msg(c.n >= 100, "only %d calls in %d s", c.n, CLIENT_MS / 1000);
    ck_assert_msg(p99 < P99_MAX_MS, "p99 %.1f ms (limit %.0f)", p99, P99_MAX_MS);
    for (int i = 0; i < IDLE; i++)
        ck_assert_msg(still_open(idle[i]), "idle connection %d was closed", i);
    for (int i = 0; i < IDLE; i++)
        close(idle[i]);
    for (int i = 0; i < SLOW; i++)
        close(slow[i]);
    for (int i = 0; i < KEPT; i++)
        close(kept[i]);
    h_stack_teardown(s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("slowload");
    TCase *tc = tcase_create("slowload");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_slow_clients);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
