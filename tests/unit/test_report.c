/* test_report.c: the workers' reports as they travel (common/report.h): a
 * report reads back as written; quiet routes and closed breakers are left
 * out; routes and upstreams travel by name (user and password stripped), so
 * a reader with another configuration takes what it knows; a malformed
 * message is refused and leaves the report empty. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

static char *ups_a[] = {"http://user:secret@a:1", "http://b:2/prefix"};
static char *ups_b[] = {"http://c:3"};

static struct cfg two_routes(struct cfg_route r[2])
{
    r[0] = (struct cfg_route){.name = "orders", .upstreams = ups_a, .n_upstreams = 2};
    r[1] = (struct cfg_route){.name = "billing", .upstreams = ups_b, .n_upstreams = 1};
    return (struct cfg){.routes = r, .n_routes = 2};
}

static char *encode(const struct cfg *c, const struct report *rep)
{
    struct buf b;
    buf_init(&b, 1 << 16);
    ck_assert_int_eq(report_encode(c, rep, &b), 0);
    size_t len;
    return buf_take(&b, &len);
}

START_TEST(test_round_trip)
{
    struct cfg_route r[2];
    struct cfg c = two_routes(r);
    struct report *rep = report_new(&c), *back = report_new(&c);
    snprintf(rep->worker, sizeof rep->worker, "host:42");
    rep->seq = 7;
    rep->routes[0].in_flight = 3;
    rep->routes[0].rate = 2.5;
    rep->routes[0].failure_rate = 0.25;
    rep->routes[0].ups[0] = (struct report_upstream){.state = BREAKER_OPEN, .open_ms = 1500};
    rep->routes[0].ups[1] = (struct report_upstream){.state = BREAKER_HALF_OPEN};
    char *msg = encode(&c, rep);
    /* billing has nothing to say: left out; the password never travels. */
    ck_assert_str_eq(msg, "{\"v\":1,\"worker\":\"host:42\",\"seq\":7,\"bye\":false,\"routes\":{"
                          "\"orders\":{\"in_flight\":3,\"rate\":2.500,\"failure_rate\":0.250,"
                          "\"upstreams\":{\"http://a:1\":{\"state\":\"open\",\"open_ms\":1500},"
                          "\"http://b:2/prefix\":{\"state\":\"half_open\",\"open_ms\":0}}}}}");
    back->routes[1].in_flight = 9; /* overwritten: absent means nothing */
    ck_assert_int_eq(report_decode(&c, msg, strlen(msg), back), 0);
    ck_assert_str_eq(back->worker, "host:42");
    ck_assert_int_eq(back->seq, 7);
    ck_assert(!back->bye);
    ck_assert_int_eq(back->routes[0].in_flight, 3);
    ck_assert_double_eq_tol(back->routes[0].rate, 2.5, 1e-9);
    ck_assert_double_eq_tol(back->routes[0].failure_rate, 0.25, 1e-9);
    ck_assert_int_eq(back->routes[0].ups[0].state, BREAKER_OPEN);
    ck_assert_int_eq(back->routes[0].ups[0].open_ms, 1500);
    ck_assert_int_eq(back->routes[0].ups[1].state, BREAKER_HALF_OPEN);
    ck_assert_int_eq(back->routes[1].in_flight, 0);
    ck_assert_int_eq(back->routes[1].ups[0].state, BREAKER_CLOSED);
    free(msg);

    rep->bye = true; /* a last report says nothing but goodbye */
    msg = encode(&c, rep);
    ck_assert_str_eq(msg, "{\"v\":1,\"worker\":\"host:42\",\"seq\":7,\"bye\":true,\"routes\":{}}");
    ck_assert_int_eq(report_decode(&c, msg, strlen(msg), back), 0);
    ck_assert(back->bye);
    free(msg);
    report_free(&c, rep);
    report_free(&c, back);
}
END_TEST

START_TEST(test_other_configuration)
{
    struct cfg_route r[2];
    struct cfg c = two_routes(r);
    struct report *back = report_new(&c);
    /* A route and an upstream this reader does not have are skipped; an
     * upstream is matched by name, wherever it stands in the list. */
    const char *msg = "{\"v\":1,\"worker\":\"w\",\"seq\":1,\"routes\":{"
                      "\"gone\":{\"in_flight\":5},"
                      "\"orders\":{\"in_flight\":1,\"upstreams\":{"
                      "\"http://z:9\":{\"state\":\"open\",\"open_ms\":10},"
                      "\"http://b:2/prefix\":{\"state\":\"open\",\"open_ms\":20}}}}}";
    ck_assert_int_eq(report_decode(&c, msg, strlen(msg), back), 0);
    ck_assert_int_eq(back->routes[0].in_flight, 1);
    ck_assert_int_eq(back->routes[0].ups[0].state, BREAKER_CLOSED);
    ck_assert_int_eq(back->routes[0].ups[1].state, BREAKER_OPEN);
    ck_assert_int_eq(back->routes[0].ups[1].open_ms, 20);
    report_free(&c, back);
}
END_TEST

START_TEST(test_malformed)
{
    struct cfg_route r[2];
    struct cfg c = two_routes(r);
    struct report *back = report_new(&c);
    const char *bad[] = {
        "",
        "[]",
        "{\"v\":2,\"worker\":\"w\",\"routes\":{}}",
        "{\"v\":1,\"routes\":{}}",
        "{\"v\":1,\"worker\":\"\",\"routes\":{}}",
        "{\"v\":1,\"worker\":\"w\"}",
        "{\"v\":1,\"worker\":\"w\",\"routes\":{\"orders\":{\"in_flight\":-1}}}",
        "{\"v\":1,\"worker\":\"w\",\"routes\":{\"orders\":{\"rate\":\"fast\"}}}",
        "{\"v\":1,\"worker\":\"w\",\"routes\":{\"orders\":{\"upstreams\":[]}}}",
        "{\"v\":1,\"worker\":\"w\",\"routes\":{\"orders\":{\"upstreams\":{\"http://c:3\":"
        "{\"state\":\"ajar\"}}}}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        back->routes[0].in_flight = 4;
        ck_assert_msg(report_decode(&c, bad[i], strlen(bad[i]), back) == -1, "%s", bad[i]);
        ck_assert_int_eq(back->routes[0].in_flight, 0);
    }
    /* A worker's name longer than a report holds. */
    char big[400];
    int n = snprintf(big, sizeof big, "{\"v\":1,\"worker\":\"%0200d\",\"routes\":{}}", 0);
    ck_assert_int_eq(report_decode(&c, big, (size_t)n, back), -1);
    report_free(&c, back);
}
END_TEST

START_TEST(test_upstream_name)
{
    char out[64];
    report_upstream_name("https://u:p@host:8443/x@y", out, sizeof out);
    ck_assert_str_eq(out, "https://host:8443/x@y");
    report_upstream_name("http://host/a@b", out, sizeof out);
    ck_assert_str_eq(out, "http://host/a@b");
}
END_TEST

static Suite *report_suite(void)
{
    Suite *s = suite_create("report");
    TCase *tc = tcase_create("report");
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_other_configuration);
    tcase_add_test(tc, test_malformed);
    tcase_add_test(tc, test_upstream_name);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(report_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
