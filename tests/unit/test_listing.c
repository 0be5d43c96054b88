/* test_listing.c: pages of a tenant's requests: newest first by creation
 * time whatever the order they reached the index, filters, the cursor
 * walking every page once, and refusals of malformed queries. */
#include <check.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "listing.h"

#define T0 INT64_C(1795428000000)

static struct status_index *idx;

static void id_of(int n, char out[ID_LEN + 1])
{
    snprintf(out, ID_LEN + 1, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAA%03d", n);
}

static void add(int n, const char *tenant, const char *route, enum req_state st, int64_t created)
{
    char id[ID_LEN + 1];
    id_of(n, id);
    struct status_update u = {.id = id,
                              .state = ST_QUEUED,
                              .tenant = tenant,
                              .route = route,
                              .created_ms = created,
                              .ts_ms = created};
    ck_assert_int_eq(status_index_apply(idx, &u), 0);
    if (st != ST_QUEUED) {
        u.state = st;
        u.ts_ms = created + 1;
        ck_assert_int_eq(status_index_apply(idx, &u), 0);
    }
}

/* Ten acme requests inserted out of creation order, two of globex. */
static void setup(void)
{
    idx = status_index_new(1000, 3600000000);
    static const int order[] = {3, 0, 9, 1, 2, 8, 4, 7, 5, 6};
    for (int i = 0; i < 10; i++) {
        int n = order[i];
        add(n, "acme", n % 2 ? "odd" : "even", n < 5 ? ST_SUCCEEDED : ST_QUEUED, T0 + n * 10);
    }
    add(50, "globex", "even", ST_QUEUED, T0 + 1000);
    add(51, "globex", "even", ST_QUEUED, T0 + 1000);
}

static void teardown(void)
{
    status_index_free(idx);
}

/* page lists query and returns the document (caller puts). */
static struct json_object *page(const char *tenant, const char *query)
{
    struct buf b;
    struct listing_error err;
    buf_init(&b, 1 << 20);
    int rc = listing_render(idx, tenant, query, &b, &err);
    ck_assert_msg(rc == 0, "%s: %d %s", query ? query : "(none)", rc, err.message);
    struct json_object *o = json_tokener_parse(b.data);
    ck_assert_msg(o != NULL, "not JSON: %s", b.data);
    buf_free(&b);
    return o;
}

static int n_items(struct json_object *o)
{
    return (int)json_object_array_length(json_object_object_get(o, "requests"));
}

static const char *item_id(struct json_object *o, int i)
{
    struct json_object *it = json_object_array_get_idx(json_object_object_get(o, "requests"), i);
    return json_object_get_string(json_object_object_get(it, "id"));
}

START_TEST(test_newest_first_and_pages)
{
    /* Walk acme's requests two at a time: 9, 8, ..., 0, each once. */
    char query[128] = "limit=2", want[ID_LEN + 1];
    int seen = 0;
    for (int pages = 0; pages < 10; pages++) {
        struct json_object *o = page("acme", query);
        for (int i = 0; i < n_items(o); i++, seen++) {
            id_of(9 - seen, want);
            ck_assert_str_eq(item_id(o, i), want);
        }
        struct json_object *next = json_object_object_get(o, "next_after");
        if (!next) {
            json_object_put(o);
            break;
        }
        snprintf(query, sizeof query, "limit=2&after=%s", json_object_get_string(next));
        json_object_put(o);
    }
    ck_assert_int_eq(seen, 10);
    /* Default limit, no result in items, other tenants left out. */
    struct json_object *o = page("acme", NULL);
    ck_assert_int_eq(n_items(o), 10);
    struct json_object *it = json_object_array_get_idx(json_object_object_get(o, "requests"), 0);
    ck_assert(!json_object_object_get_ex(it, "result", NULL));
    ck_assert_str_eq(json_object_get_string(json_object_object_get(it, "status")), "queued");
    json_object_put(o);
    o = page("nobody", "");
    ck_assert_int_eq(n_items(o), 0);
    json_object_put(o);
}
END_TEST

START_TEST(test_filters)
{
    struct json_object *o = page("acme", "status=succeeded&route=odd");
    char want[ID_LEN + 1];
    ck_assert_int_eq(n_items(o), 2); /* 3 and 1 */
    id_of(3, want);
    ck_assert_str_eq(item_id(o, 0), want);
    json_object_put(o);
    o = page("acme", "status=queued&limit=1");
    id_of(9, want);
    ck_assert_str_eq(item_id(o, 0), want);
    ck_assert_ptr_nonnull(json_object_object_get(o, "next_after"));
    json_object_put(o);
    /* Same creation time: the ID decides, and the cursor still splits them. */
    o = page("globex", "limit=1");
    id_of(51, want);
    ck_assert_str_eq(item_id(o, 0), want);
    char q[128];
    snprintf(q, sizeof q, "after=%s",
             json_object_get_string(json_object_object_get(o, "next_after")));
    json_object_put(o);
    o = page("globex", q);
    ck_assert_int_eq(n_items(o), 1);
    id_of(50, want);
    ck_assert_str_eq(item_id(o, 0), want);
    json_object_put(o);
}
END_TEST

static const char *const bad[] = {
    "limit=0",           "limit=1001",
    "limit=x",           "limit=",
    "status=done",       "route=a%20b",
    "after=abc",         "after=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.",
    "color=red",         "limit",
    "status=queued&x=1",
};

START_TEST(test_refusals)
{
    struct buf b;
    struct listing_error err;
    buf_init(&b, 1 << 20);
    ck_assert_int_eq(listing_render(idx, "acme", bad[_i], &b, &err), -EINVAL);
    ck_assert_msg(strlen(err.message) > 0, "%s", bad[_i]);
    buf_free(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("listing");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_newest_first_and_pages);
    tcase_add_test(tc, test_filters);
    tcase_add_loop_test(tc, test_refusals, 0, (int)(sizeof bad / sizeof bad[0]));
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
