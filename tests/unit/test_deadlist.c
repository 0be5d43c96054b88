/* test_deadlist.c: the dead letters as the ingress sees them: the status
 * index's generations (a replay's outcome replaces "dead", a stale
 * generation is ignored, a purge hides a dead entry of its generation),
 * status_index_scan_all's cursor, the listing's filters and pages
 * (deadlist.c) and the passes' selection (dl_selected). */
#include <check.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deadletters.h"
#include "deadlist.h"
#include "event.h"
#include "id.h"
#include "status_index.h"

#define T0 INT64_C(1795428000123)

static void make_id(unsigned n, char out[ID_LEN + 1])
{
    memset(out, 'A', ID_LEN);
    out[ID_LEN] = '\0';
    snprintf(out + ID_LEN - 6, 7, "%06u", n);
}

static void apply(struct status_index *idx, const char *id, enum req_state st, const char *route,
                  const char *tenant, int64_t ts, int replays)
{
    static const char err[] = "{\"code\":\"retries_exhausted\",\"message\":\"m\"}";
    static const char res[] = "{\"status\":503,\"headers\":{},\"body\":null}";
    struct status_update u = {.id = id,
                              .state = st,
                              .tenant = tenant,
                              .route = route,
                              .created_ms = T0,
                              .ts_ms = ts,
                              .attempts = st == ST_DEAD ? 3 : 0,
                              .replays = replays};
    if (st == ST_DEAD) {
        u.error_json = err, u.error_len = strlen(err);
        u.result_json = res, u.result_len = strlen(res);
    }
    ck_assert_int_eq(status_index_apply(idx, &u), 0);
}

static struct json_object *status(struct status_index *idx, const char *id)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    ck_assert_int_eq(status_index_render(idx, id, "acme", &b), 0);
    struct json_object *o = json_tokener_parse(b.data);
    buf_free(&b);
    ck_assert_ptr_nonnull(o);
    return o;
}

static const char *str(struct json_object *o, const char *key)
{
    struct json_object *v;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

static int num(struct json_object *o, const char *key)
{
    struct json_object *v;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_int(v) : -1;
}

START_TEST(test_generations)
{
    struct status_index *idx = status_index_new(100, INT64_C(86400000));
    char id[ID_LEN + 1];
    make_id(1, id);
    apply(idx, id, ST_QUEUED, "r", "acme", T0, 0);
    apply(idx, id, ST_DEAD, "r", "acme", T0 + 10, 0);
    /* Within a generation the first final state stays. */
    apply(idx, id, ST_SUCCEEDED, "r", "acme", T0 + 20, 0);
    struct json_object *o = status(idx, id);
    ck_assert_str_eq(str(o, "status"), "dead");
    ck_assert_int_eq(num(o, "replays"), -1);
    json_object_put(o);
    ck_assert_uint_eq(status_index_open(idx, "acme"), 0);
    /* A replay: queued again, generation 1, fresh attempts, no error. */
    apply(idx, id, ST_QUEUED, "r", "acme", T0 + 30, 1);
    o = status(idx, id);
    ck_assert_str_eq(str(o, "status"), "queued");
    ck_assert_int_eq(num(o, "replays"), 1);
    ck_assert_int_eq(num(o, "attempts"), 0);
    ck_assert_ptr_null(str(o, "error"));
    json_object_put(o);
    ck_assert_uint_eq(status_index_open(idx, "acme"), 1);
    /* A late event of generation 0 is stale. */
    apply(idx, id, ST_DEAD, "r", "acme", T0 + 40, 0);
    o = status(idx, id);
    ck_assert_str_eq(str(o, "status"), "queued");
    json_object_put(o);
    apply(idx, id, ST_SUCCEEDED, "r", "acme", T0 + 50, 1);
    o = status(idx, id);
    ck_assert_str_eq(str(o, "status"), "succeeded");
    ck_assert_int_eq(num(o, "replays"), 1);
    json_object_put(o);
    ck_assert_uint_eq(status_index_open(idx, "acme"), 0);
    status_index_free(idx);
}
END_TEST

/* A worker's events of the replay may come before the replay's own
 * "queued": the newer generation wins either way. */
START_TEST(test_generation_out_of_order)
{
    struct status_index *idx = status_index_new(100, INT64_C(86400000));
    char id[ID_LEN + 1];
    make_id(2, id);
    apply(idx, id, ST_DEAD, "r", "acme", T0 + 10, 0);
    apply(idx, id, ST_SUCCEEDED, "r", "acme", T0 + 50, 1);
    apply(idx, id, ST_QUEUED, "r", "acme", T0 + 30, 1);
    struct json_object *o = status(idx, id);
    ck_assert_str_eq(str(o, "status"), "succeeded");
    ck_assert_int_eq(num(o, "replays"), 1);
    json_object_put(o);
    status_index_free(idx);
}
END_TEST

static long list(struct status_index *idx, const char *query, struct json_object **out)
{
    struct buf b;
    char msg[160];
    buf_init(&b, 1 << 20);
    int rc = deadlist_render(idx, query, &b, msg);
    if (rc < 0) {
        buf_free(&b);
        return rc;
    }
    *out = json_tokener_parse(b.data);
    buf_free(&b);
    ck_assert_ptr_nonnull(*out);
    struct json_object *dead;
    ck_assert(json_object_object_get_ex(*out, "dead", &dead));
    return (long)json_object_array_length(dead);
}

START_TEST(test_listing)
{
    struct status_index *idx = status_index_new(100, INT64_C(86400000));
    char id[ID_LEN + 1];
    for (unsigned i = 0; i < 10; i++) {
        make_id(i, id);
        apply(idx, id, ST_DEAD, i % 2 ? "odd" : "even", i < 5 ? "acme" : "globex", T0 + i, 0);
    }
    make_id(10, id);
    apply(idx, id, ST_SUCCEEDED, "odd", "acme", T0, 0);
    struct json_object *o;
    ck_assert_int_eq(list(idx, NULL, &o), 10);
    struct json_object *first = json_object_array_get_idx(json_object_object_get(o, "dead"), 0);
    make_id(0, id);
    ck_assert_str_eq(str(first, "id"), id);
    ck_assert_str_eq(str(first, "reason"), "retries_exhausted");
    ck_assert_int_eq(num(first, "last_status"), 503);
    ck_assert_int_eq(num(first, "attempts"), 3);
    ck_assert_str_eq(str(first, "dead_at"), "2026-11-23T10:00:00.123Z");
    ck_assert_ptr_null(str(o, "next_after")); /* null */
    json_object_put(o);
    ck_assert_int_eq(list(idx, "route=odd", &o), 5);
    json_object_put(o);
    ck_assert_int_eq(list(idx, "route=odd&tenant=acme", &o), 2);
    json_object_put(o);
    /* Pages of 3, joined by the cursor, see each once. */
    char query[128] = "limit=3";
    long seen = 0, n;
    for (;;) {
        n = list(idx, query, &o);
        seen += n;
        const char *next = str(o, "next_after");
        if (!next) break;
        snprintf(query, sizeof query, "limit=3&after=%s", next);
        json_object_put(o);
    }
    json_object_put(o);
    ck_assert_int_eq(seen, 10);
    /* A purge of generation 0 hides it; a replay of it would not list it. */
    make_id(4, id);
    struct status_update u = {.id = id,
                              .state = ST_DEAD,
                              .tenant = "acme",
                              .route = "even",
                              .created_ms = T0,
                              .ts_ms = T0 + 99,
                              .purge = true};
    ck_assert_int_eq(status_index_apply(idx, &u), 0);
    make_id(6, id);
    apply(idx, id, ST_QUEUED, "even", "globex", T0 + 100, 1);
    ck_assert_int_eq(list(idx, "route=even", &o), 3);
    json_object_put(o);
    ck_assert_int_eq(list(idx, "limit=0", &o), -EINVAL);
    ck_assert_int_eq(list(idx, "after=nope", &o), -EINVAL);
    ck_assert_int_eq(list(idx, "state=dead", &o), -EINVAL);
    status_index_free(idx);
}
END_TEST

START_TEST(test_select)
{
    char a[ID_LEN + 1], b[ID_LEN + 1], c[ID_LEN + 1];
    make_id(3, a), make_id(1, b), make_id(2, c);
    struct dl_select sel = {0};
    sel.ids = calloc(2, sizeof *sel.ids);
    memcpy(sel.ids[0], a, sizeof a);
    memcpy(sel.ids[1], b, sizeof b);
    sel.n_ids = 2;
    dl_select_sort(&sel);
    ck_assert(dl_selected(&sel, a, "r"));
    ck_assert(dl_selected(&sel, b, "r"));
    ck_assert(!dl_selected(&sel, c, "r"));
    ck_assert(!dl_selected(&sel, NULL, NULL));
    free(sel.ids);
    struct dl_select route = {.route = "r"};
    ck_assert(dl_selected(&route, a, "r"));
    ck_assert(!dl_selected(&route, a, "s"));
    ck_assert(!dl_selected(&route, NULL, NULL));
    struct dl_select all = {.all = true};
    ck_assert(dl_selected(&all, NULL, NULL));
}
END_TEST

static void got_update(void *arg, const struct status_update *u)
{
    int *out = arg;
    out[0] = u->replays;
    out[1] = u->purge;
}

START_TEST(test_event_fields)
{
    char id[ID_LEN + 1];
    make_id(7, id);
    struct status_update u = {.id = id,
                              .state = ST_DEAD,
                              .tenant = "t",
                              .route = "r",
                              .created_ms = T0,
                              .ts_ms = T0,
                              .replays = 3,
                              .purge = true};
    struct buf b;
    buf_init(&b, 4096);
    ck_assert_int_eq(event_begin(&b), 0);
    ck_assert_int_eq(event_append(&b, &u), 0);
    ck_assert_int_eq(event_end(&b), 0);
    ck_assert_ptr_nonnull(strstr(b.data, "\"replays\":3,\"purge\":true"));
    int got[2] = {0, 0};
    ck_assert_int_eq(event_parse(b.data, b.len, got_update, NULL, got), 1);
    ck_assert_int_eq(got[0], 3);
    ck_assert_int_eq(got[1], 1);
    buf_free(&b);
}
END_TEST

static Suite *deadlist_suite(void)
{
    Suite *s = suite_create("deadlist");
    TCase *tc = tcase_create("deadlist");
    tcase_add_test(tc, test_generations);
    tcase_add_test(tc, test_generation_out_of_order);
    tcase_add_test(tc, test_listing);
    tcase_add_test(tc, test_select);
    tcase_add_test(tc, test_event_fields);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(deadlist_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
