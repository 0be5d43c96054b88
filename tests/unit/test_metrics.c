/* test_metrics.c: the Prometheus registry: exact exposition text for each
 * kind, label sets, families declared apart, and concurrent updates. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

#define OUT_MAX (1 << 20)

/* expect_render renders m and compares it with the whole expected text. */
static void expect_render(struct metrics *m, const char *want)
{
    struct buf b;
    buf_init(&b, OUT_MAX);
    ck_assert_int_eq(metrics_render(m, &b), 0);
    ck_assert_str_eq(b.data ? b.data : "", want);
    buf_free(&b);
}

START_TEST(test_empty)
{
    struct metrics *m = metrics_new();
    ck_assert_ptr_nonnull(m);
    expect_render(m, "");
    metrics_free(m);
    metrics_free(NULL);
}
END_TEST

START_TEST(test_counter_and_gauge)
{
    struct metrics *m = metrics_new();
    struct metric *c = metrics_counter(m, "sluice_requests_total", "Requests accepted.", NULL);
    struct metric *g = metrics_gauge(m, "sluice_in_flight", "Calls in flight.", NULL);
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_nonnull(g);
    expect_render(m, "# HELP sluice_requests_total Requests accepted.\n"
                     "# TYPE sluice_requests_total counter\n"
                     "sluice_requests_total 0\n"
                     "# HELP sluice_in_flight Calls in flight.\n"
                     "# TYPE sluice_in_flight gauge\n"
                     "sluice_in_flight 0\n");
    metric_add(c, 3);
    metric_add(c, UINT64_C(10000000000));
    metric_set(g, 7);
    metric_gauge_add(g, -10);
    expect_render(m, "# HELP sluice_requests_total Requests accepted.\n"
                     "# TYPE sluice_requests_total counter\n"
                     "sluice_requests_total 10000000003\n"
                     "# HELP sluice_in_flight Calls in flight.\n"
                     "# TYPE sluice_in_flight gauge\n"
                     "sluice_in_flight -3\n");
    metrics_free(m);
}
END_TEST

START_TEST(test_float_gauge)
{
    struct metrics *m = metrics_new();
    struct metric *g = metrics_gauge(m, "sluice_rate", "A rate.", "route=\"a\"");
    ck_assert_ptr_nonnull(g);
    metric_set_float(g, 2.5);
    expect_render(m, "# HELP sluice_rate A rate.\n"
                     "# TYPE sluice_rate gauge\n"
                     "sluice_rate{route=\"a\"} 2.5\n");
    metric_set_float(g, 0.1);
    expect_render(m, "# HELP sluice_rate A rate.\n"
                     "# TYPE sluice_rate gauge\n"
                     "sluice_rate{route=\"a\"} 0.1\n");
    metric_set_float(g, 20);
    expect_render(m, "# HELP sluice_rate A rate.\n"
                     "# TYPE sluice_rate gauge\n"
                     "sluice_rate{route=\"a\"} 20\n");
    metrics_free(m);
}
END_TEST

START_TEST(test_labels_share_family)
{
    char labels[64];
    struct metrics *m = metrics_new();
    snprintf(labels, sizeof labels, "code=\"%d\"", 400);
    struct metric *c400 = metrics_counter(m, "http_errors_total", "Errors.", labels);
    struct metric *up = metrics_gauge(m, "up", "Up.", NULL);
    /* The labels are copied: the caller's buffer may change afterwards. */
    snprintf(labels, sizeof labels, "code=\"%d\"", 503);
    struct metric *c503 = metrics_counter(m, "http_errors_total", "Errors.", labels);
    memset(labels, 0, sizeof labels);
    metric_add(c400, 2);
    metric_add(c503, 1);
    metric_set(up, 1);
    expect_render(m, "# HELP http_errors_total Errors.\n"
                     "# TYPE http_errors_total counter\n"
                     "http_errors_total{code=\"400\"} 2\n"
                     "http_errors_total{code=\"503\"} 1\n"
                     "# HELP up Up.\n"
                     "# TYPE up gauge\n"
                     "up 1\n");
    metrics_free(m);
}
END_TEST

START_TEST(test_help_escaped)
{
    struct metrics *m = metrics_new();
    ck_assert_ptr_nonnull(metrics_counter(m, "x_total", "a\\b\nc \"q\"", NULL));
    expect_render(m, "# HELP x_total a\\\\b\\nc \"q\"\n"
                     "# TYPE x_total counter\n"
                     "x_total 0\n");
    metrics_free(m);
}
END_TEST

START_TEST(test_histogram)
{
    static const double bounds[] = {0.005, 0.1, 1, 2.5};
    struct metrics *m = metrics_new();
    struct metric *h =
        metrics_histogram(m, "latency_seconds", "Latency.", "route=\"orders\"", bounds, 4);
    ck_assert_ptr_nonnull(h);
    metric_observe(h, 0.001);
    metric_observe(h, 0.005); /* le is inclusive */
    metric_observe(h, 0.5);
    metric_observe(h, 2.0);
    metric_observe(h, 100);
    expect_render(m, "# HELP latency_seconds Latency.\n"
                     "# TYPE latency_seconds histogram\n"
                     "latency_seconds_bucket{route=\"orders\",le=\"0.005\"} 2\n"
                     "latency_seconds_bucket{route=\"orders\",le=\"0.1\"} 2\n"
                     "latency_seconds_bucket{route=\"orders\",le=\"1\"} 3\n"
                     "latency_seconds_bucket{route=\"orders\",le=\"2.5\"} 4\n"
                     "latency_seconds_bucket{route=\"orders\",le=\"+Inf\"} 5\n"
                     "latency_seconds_sum{route=\"orders\"} 102.506\n"
                     "latency_seconds_count{route=\"orders\"} 5\n");
    metrics_free(m);
}
END_TEST

START_TEST(test_histogram_unlabelled_and_empty)
{
    static const double bounds[] = {10};
    struct metrics *m = metrics_new();
    struct metric *h = metrics_histogram(m, "batch_size", "Batch sizes.", NULL, bounds, 1);
    struct metric *none = metrics_histogram(m, "n", "No bounds.", NULL, NULL, 0);
    ck_assert_ptr_nonnull(h);
    ck_assert_ptr_nonnull(none);
    ck_assert_ptr_null(metrics_histogram(m, "bad", "Negative.", NULL, bounds, -1));
    metric_observe(h, 11);
    metric_observe(none, -1.5);
    expect_render(m, "# HELP batch_size Batch sizes.\n"
                     "# TYPE batch_size histogram\n"
                     "batch_size_bucket{le=\"10\"} 0\n"
                     "batch_size_bucket{le=\"+Inf\"} 1\n"
                     "batch_size_sum 11\n"
                     "batch_size_count 1\n"
                     "# HELP n No bounds.\n"
                     "# TYPE n histogram\n"
                     "n_bucket{le=\"+Inf\"} 1\n"
                     "n_sum -1.5\n"
                     "n_count 1\n");
    metrics_free(m);
}
END_TEST

START_TEST(test_number_format)
{
    /* Numbers render as the shortest text that reads back exactly. */
    static const double bounds[] = {0.3, 1234.5, 1e20};
    struct metrics *m = metrics_new();
    struct metric *h = metrics_histogram(m, "f", "F.", NULL, bounds, 3);
    metric_observe(h, 0.1);
    metric_observe(h, 0.2);
    expect_render(m, "# HELP f F.\n"
                     "# TYPE f histogram\n"
                     "f_bucket{le=\"0.3\"} 2\n"
                     "f_bucket{le=\"1234.5\"} 2\n"
                     "f_bucket{le=\"1e+20\"} 2\n"
                     "f_bucket{le=\"+Inf\"} 2\n"
                     "f_sum 0.30000000000000004\n"
                     "f_count 2\n");
    metrics_free(m);
}
END_TEST

START_TEST(test_histogram_cumulative)
{
    static const double bounds[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    struct metrics *m = metrics_new();
    struct metric *h = metrics_histogram(m, "h", "H.", NULL, bounds, 9);
    for (int v = 0; v < 100; v++)
        metric_observe(h, v / 10.0);
    struct buf b;
    buf_init(&b, OUT_MAX);
    ck_assert_int_eq(metrics_render(m, &b), 0);
    /* Every bucket line holds at least the count of the one before it. */
    long prev = -1, bucket_lines = 0;
    for (char *line = strstr(b.data, "h_bucket"); line; line = strstr(line + 1, "h_bucket")) {
        char *end;
        long n = strtol(strchr(line, ' ') + 1, &end, 10);
        ck_assert_int_eq(*end, '\n');
        ck_assert_int_ge(n, prev);
        prev = n;
        bucket_lines++;
    }
    ck_assert_int_eq(bucket_lines, 10);
    ck_assert_int_eq(prev, 100);
    ck_assert_ptr_nonnull(strstr(b.data, "h_bucket{le=\"1\"} 11\n"));
    ck_assert_ptr_nonnull(strstr(b.data, "h_bucket{le=\"5\"} 51\n"));
    ck_assert_ptr_nonnull(strstr(b.data, "h_count 100\n"));
    buf_free(&b);
    metrics_free(m);
}
END_TEST

START_TEST(test_render_error)
{
    struct metrics *m = metrics_new();
    ck_assert_ptr_nonnull(metrics_counter(m, "a_long_metric_name_total", "Help text.", NULL));
    struct buf b;
    buf_init(&b, 16);
    ck_assert_int_lt(metrics_render(m, &b), 0);
    ck_assert_uint_eq(b.len, 0);
    buf_free(&b);
    metrics_free(m);
}
END_TEST

enum { THREADS = 4, PER_THREAD = 100000 };

struct shared {
    struct metric *c, *g, *h;
};

static void *hammer(void *arg)
{
    struct shared *s = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        metric_add(s->c, 1);
        metric_gauge_add(s->g, i % 2 ? 1 : -1);
        metric_observe(s->h, i % 2 ? 0.25 : 4.0);
    }
    return NULL;
}

START_TEST(test_concurrent)
{
    static const double bounds[] = {1};
    struct metrics *m = metrics_new();
    struct shared s = {
        metrics_counter(m, "c_total", "C.", NULL),
        metrics_gauge(m, "g", "G.", NULL),
        metrics_histogram(m, "h", "H.", NULL, bounds, 1),
    };
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, hammer, &s), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    /* 0.25 and 4.0 are exact in binary, so the sum is exact: 200000 * 4.25. */
    expect_render(m, "# HELP c_total C.\n"
                     "# TYPE c_total counter\n"
                     "c_total 400000\n"
                     "# HELP g G.\n"
                     "# TYPE g gauge\n"
                     "g 0\n"
                     "# HELP h H.\n"
                     "# TYPE h histogram\n"
                     "h_bucket{le=\"1\"} 200000\n"
                     "h_bucket{le=\"+Inf\"} 400000\n"
                     "h_sum 850000\n"
                     "h_count 400000\n");
    metrics_free(m);
}
END_TEST

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_counter_and_gauge);
    tcase_add_test(tc, test_float_gauge);
    tcase_add_test(tc, test_labels_share_family);
    tcase_add_test(tc, test_help_escaped);
    tcase_add_test(tc, test_histogram);
    tcase_add_test(tc, test_histogram_unlabelled_and_empty);
    tcase_add_test(tc, test_number_format);
    tcase_add_test(tc, test_histogram_cumulative);
    tcase_add_test(tc, test_render_error);
    tcase_add_test(tc, test_concurrent);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(metrics_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
