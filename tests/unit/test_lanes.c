/* test_lanes.c: the ingress's view of the lanes (ingress/lanes.c): each
 * route's lane name by its limits, the depths polled, the metrics derived
 * from them (backlog in seconds from the drain rate the status index
 * measures, a stand-in value when nothing drains) and the status page's
 * "lanes" member. */
#include <check.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "lanes.h"

static char *ups[] = {"http://a"};

/* sample returns the value of series in the rendered metrics, or -1. */
static double sample(struct metrics *m, const char *series)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    ck_assert_int_eq(metrics_render(m, &b), 0);
    double v = -1;
    const char *p = strstr(b.data, series);
    if (p) v = strtod(p + strlen(series) + 1, NULL);
    buf_free(&b);
    return v;
}

START_TEST(test_names_depths_metrics)
{
    struct cfg_route r[2] = {
        {.name = "open", .upstreams = ups, .n_upstreams = 1},
        {.name = "shaped", .upstreams = ups, .n_upstreams = 1, .rate_per_s = 2.5},
    };
    struct cfg c = {.namespace = "ns", .routes = r, .n_routes = 2};
    struct metrics *m = metrics_new();
    struct status_index *idx = status_index_new(1000, 3600000);
    struct lanes *l = lanes_new(&c, m, idx);
    ck_assert_ptr_nonnull(l);
    ck_assert_str_eq(lanes_name(l, 0), "ns.lane.open");
    ck_assert_str_eq(lanes_name(l, 1), "ns.lane-sac.shaped");
    ck_assert_str_eq(lanes_names(l)[1], "ns.lane-sac.shaped");
    ck_assert_int_eq(lanes_of(l, "shaped"), 1);
    ck_assert_int_eq(lanes_of(l, "nope"), -1);
    ck_assert_uint_eq(lanes_total(l), 0);

    /* Two requests of "open" left the lane just now: 2 per second. */
    int64_t now = clock_real_ms();
    const char *ids[] = {"0000000000000000000000000000000a", "0000000000000000000000000000000b"};
    for (int i = 0; i < 2; i++) {
        struct status_update u = {.id = ids[i],
                                  .state = ST_QUEUED,
                                  .tenant = "t",
                                  .route = "open",
                                  .created_ms = now,
                                  .ts_ms = now};
        ck_assert_int_eq(status_index_apply(idx, &u), 0);
        u.state = ST_PROCESSING;
        ck_assert_int_eq(status_index_apply(idx, &u), 0);
    }
    lanes_set_depth(l, 0, 30, now);
    lanes_set_depth(l, 1, 7, now);
    ck_assert_uint_eq(lanes_total(l), 37);
    ck_assert(sample(m, "sluice_lane_messages{route=\"open\",limited=\"false\"}") == 30);
    ck_assert(sample(m, "sluice_lane_drain_per_second{route=\"open\",limited=\"false\"}") == 2);
    ck_assert(sample(m, "sluice_lane_backlog_seconds{route=\"open\",limited=\"false\"}") == 15);
    /* Requests wait and nothing drains: a day, so that autoscaling scales up. */
    ck_assert(sample(m, "sluice_lane_backlog_seconds{route=\"shaped\",limited=\"true\"}") == 86400);

    struct buf b;
    buf_init(&b, 1 << 20);
    ck_assert_int_eq(buf_appends(&b, "{"), 0);
    ck_assert_int_eq(lanes_render(l, &b, now), 0);
    ck_assert_int_eq(buf_appends(&b, "}"), 0);
    struct json_object *o = json_tokener_parse(b.data);
    ck_assert_msg(o != NULL, "not JSON: %s", b.data);
    struct json_object *lanes = json_object_object_get(o, "lanes");
    ck_assert_int_eq(json_object_array_length(lanes), 2);
    struct json_object *s = json_object_array_get_idx(lanes, 1);
    ck_assert_str_eq(json_object_get_string(json_object_object_get(s, "lane")),
                     "ns.lane-sac.shaped");
    ck_assert(json_object_get_boolean(json_object_object_get(s, "limited")));
    ck_assert_double_eq(json_object_get_double(json_object_object_get(s, "rate_per_s")), 2.5);
    ck_assert_int_eq(json_object_get_int(json_object_object_get(s, "backlog")), 7);
    json_object_put(o);
    buf_free(&b);
    lanes_free(l);
    status_index_free(idx);
    metrics_free(m);
}
END_TEST

static Suite *lanes_suite(void)
{
    Suite *s = suite_create("lanes");
    TCase *tc = tcase_create("lanes");
    tcase_add_test(tc, test_names_depths_metrics);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(lanes_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
