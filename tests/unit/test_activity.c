/* test_activity.c: the status page's counters (ingress/activity.c): outcomes
 * per route, the ring of recent failures, queue depths and the accepted rate. */
#include <check.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "activity.h"
#include "id.h"

/* render parses what activity_render writes (members without braces). */
static struct json_object *render(struct activity *a, int64_t mono_ms)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    ck_assert_int_eq(buf_appends(&b, "{"), 0);
    ck_assert_int_eq(activity_render(a, &b, mono_ms), 0);
    ck_assert_int_eq(buf_appends(&b, "}"), 0);
    struct json_object *o = json_tokener_parse(b.data);
    ck_assert_msg(o != NULL, "not JSON: %s", b.data);
    buf_free(&b);
    return o;
}

static struct json_object *at(struct json_object *o, const char *key)
{
    struct json_object *v = NULL;
    ck_assert_msg(json_object_object_get_ex(o, key, &v), "no member %s", key);
    return v;
}

static void note(struct activity *a, const char *route, enum req_state state, const char *error,
                 char id_out[ID_LEN + 1])
{
    char id[ID_LEN + 1];
    ck_assert_int_eq(id_new(id, 1700000000000), 0);
    struct status_update u = {.id = id,
                              .state = state,
                              .tenant = "t",
                              .route = route,
                              .created_ms = 1700000000000,
                              .ts_ms = 1700000000500,
                              .attempts = 1,
                              .error_json = error,
                              .error_len = error ? strlen(error) : 0};
    activity_note(a, &u);
    if (id_out) memcpy(id_out, id, sizeof(id));
}

static long long route_count(struct json_object *doc, const char *route, const char *state)
{
    struct json_object *routes = at(doc, "routes");
    for (size_t i = 0; i < json_object_array_length(routes); i++) {
        struct json_object *r = json_object_array_get_idx(routes, i);
        if (strcmp(json_object_get_string(at(r, "route")), route) == 0)
            return json_object_get_int64(at(r, state));
    }
    return -1;
}

START_TEST(outcomes_per_route)
{
    struct activity *a = activity_new();
    note(a, "orders", ST_SUCCEEDED, NULL, NULL);
    note(a, "orders", ST_SUCCEEDED, NULL, NULL);
    note(a, "orders", ST_FAILED, "{\"code\":\"backend_rejected\",\"message\":\"x\"}", NULL);
    note(a, "mail", ST_DEAD, "{\"code\":\"retries_exhausted\",\"message\":\"x\"}", NULL);
    note(a, "mail", ST_PROCESSING, NULL, NULL); /* not final: ignored */
    struct json_object *doc = render(a, 1000);
    ck_assert_int_eq(route_count(doc, "orders", "succeeded"), 2);
    ck_assert_int_eq(route_count(doc, "orders", "failed"), 1);
    ck_assert_int_eq(route_count(doc, "orders", "dead"), 0);
    ck_assert_int_eq(route_count(doc, "mail", "dead"), 1);
    ck_assert_int_eq(route_count(doc, "mail", "succeeded"), 0);
    json_object_put(doc);
    activity_free(a);
}
END_TEST

START_TEST(recent_failures_newest_first_and_bounded)
{
    struct activity *a = activity_new();
    char last[ID_LEN + 1];
    for (int i = 0; i < ACTIVITY_RECENT_FAILURES + 5; i++)
        note(a, "orders", ST_FAILED, "{\"code\":\"backend_rejected\"}", last);
    note(a, "orders", ST_DEAD, "{\"code\":\"Bad Code!\"}", last); /* not snake_case */
    struct json_object *doc = render(a, 1000);
    struct json_object *f = at(doc, "recent_failures");
    ck_assert_int_eq(json_object_array_length(f), ACTIVITY_RECENT_FAILURES);
    struct json_object *newest = json_object_array_get_idx(f, 0);
    ck_assert_str_eq(json_object_get_string(at(newest, "id")), last);
    ck_assert_str_eq(json_object_get_string(at(newest, "state")), "dead");
    ck_assert_str_eq(json_object_get_string(at(newest, "code")), "unknown");
    ck_assert_str_eq(json_object_get_string(at(json_object_array_get_idx(f, 1), "code")),
                     "backend_rejected");
    ck_assert_str_eq(json_object_get_string(at(newest, "time")), "2023-11-14T22:13:20.500Z");
    json_object_put(doc);
    activity_free(a);
}
END_TEST

START_TEST(queues_unknown_until_polled)
{
    struct activity *a = activity_new();
    struct json_object *doc = render(a, 1000);
    ck_assert(json_object_is_type(at(at(doc, "queues"), "requests"), json_type_null));
    json_object_put(doc);
    activity_set_queue_depth(a, 42, 3, 1700000000000);
    doc = render(a, 2000);
    ck_assert_int_eq(json_object_get_int64(at(at(doc, "queues"), "requests")), 42);
    ck_assert_int_eq(json_object_get_int64(at(at(doc, "queues"), "dead")), 3);
    json_object_put(doc);
    activity_free(a);
}
END_TEST

START_TEST(accepted_rate_over_the_window)
{
    struct activity *a = activity_new();
    struct json_object *doc = render(a, 10000); /* first sample: no rate yet */
    ck_assert(json_object_get_double(at(at(doc, "throughput"), "accepted_per_s")) == 0);
    json_object_put(doc);
    for (int i = 0; i < 300; i++)
        activity_count_response(a, 202);
    activity_count_response(a, 503); /* only 202s are accepted requests */
    doc = render(a, 13000);          /* 300 accepted in 3 s */
    ck_assert_int_eq(json_object_get_int64(at(at(doc, "throughput"), "accepted_total")), 300);
    double rate = json_object_get_double(at(at(doc, "throughput"), "accepted_per_s"));
    ck_assert_msg(rate > 99.9 && rate < 100.1, "rate %f", rate);
    json_object_put(doc);
    activity_free(a);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("activity");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, outcomes_per_route);
    tcase_add_test(tc, recent_failures_newest_first_and_bounded);
    tcase_add_test(tc, queues_unknown_until_polled);
    tcase_add_test(tc, accepted_rate_over_the_window);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
