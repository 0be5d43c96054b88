/* test_cache.c: cached reads: which submissions share a cache key, and when
 * the key's request may answer a new one (in progress: coalesced;
 * succeeded within the TTL: cached; anything else: queued anew). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"

#define T0 INT64_C(1795428000000)
#define ID_A "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

static const char DOC[] =
    "{\"routes\":{\"r\":{\"upstreams\":[\"http://h\"],\"cache_ttl_s\":10,"
    "\"cache_vary_headers\":[\"Accept\"]},\"plain\":{\"upstreams\":[\"http://h\"]}}}";

static void sample(struct envelope *e, const char *method, const char *accept)
{
    envelope_init(e);
    e->tenant = strdup("acme");
    e->route = strdup("r");
    e->method = strdup(method);
    e->path = strdup("/items/1");
    e->query = strdup("x=1");
    e->n_headers = 2;
    e->headers = calloc(2, sizeof *e->headers);
    e->headers[0] = (struct env_header){strdup("X-Other"), strdup("1")};
    e->headers[1] = (struct env_header){strdup("accept"), strdup(accept)};
}

START_TEST(test_keys)
{
    struct cfg c;
    char err[256], k1[CACHE_KEY_LEN + 1], k2[CACHE_KEY_LEN + 1];
    ck_assert_msg(cfg_load_string(&c, DOC, "t", err, sizeof err) == 0, "%s", err);
    const struct cfg_route *r = cfg_route_find(&c, "r", 1), *plain = cfg_route_find(&c, "plain", 5);
    struct envelope e;
    sample(&e, "GET", "application/json");
    ck_assert(cache_key(r, &e, k1));
    ck_assert_uint_eq(strlen(k1), CACHE_KEY_LEN);
    /* Headers outside the vary list do not matter. */
    e.headers[0].value[0] = '2';
    ck_assert(cache_key(r, &e, k2));
    ck_assert_str_eq(k1, k2);
    /* A vary header (any case), the query, the tenant do. */
    e.headers[1].value[0] = 'A';
    ck_assert(cache_key(r, &e, k2));
    ck_assert_str_ne(k1, k2);
    e.headers[1].value[0] = 'a';
    e.query[2] = '2';
    ck_assert(cache_key(r, &e, k2));
    ck_assert_str_ne(k1, k2);
    e.query[2] = '1';
    e.tenant[0] = 'b';
    ck_assert(cache_key(r, &e, k2));
    ck_assert_str_ne(k1, k2);
    e.tenant[0] = 'a';
    /* Not cacheable: another route, a POST, an idempotency key. */
    ck_assert(!cache_key(plain, &e, k2));
    e.idempotency_key = strdup("k");
    ck_assert(!cache_key(r, &e, k2));
    envelope_free(&e);
    sample(&e, "POST", "x");
    ck_assert(!cache_key(r, &e, k2));
    envelope_free(&e);
    sample(&e, "HEAD", "application/json");
    ck_assert(cache_key(r, &e, k2));
    ck_assert_str_ne(k1, k2); /* HEAD and GET are kept apart */
    envelope_free(&e);
    cfg_free(&c);
}
END_TEST

static void apply(struct status_index *idx, enum req_state st, int64_t ts)
{
    struct status_update u = {
        .id = ID_A, .state = st, .tenant = "acme", .route = "r", .created_ms = T0, .ts_ms = ts};
    ck_assert_int_eq(status_index_apply(idx, &u), 0);
}

START_TEST(test_lookup)
{
    struct cfg c;
    char err[256];
    ck_assert_msg(cfg_load_string(&c, DOC, "t", err, sizeof err) == 0, "%s", err);
    const struct cfg_route *r = cfg_route_find(&c, "r", 1);
    struct status_index *idx = status_index_new(100, 3600000);
    struct cache *cc = cache_new(&c, idx);
    const char *key = "0123456789abcdef0123456789abcdef";
    struct status_brief b;
    ck_assert(!cache_lookup(cc, r, key, "acme", T0, &b));
    cache_note(cc, key, ID_A, "acme", T0);
    ck_assert(!cache_lookup(cc, r, key, "acme", T0, &b)); /* not in the index yet */
    apply(idx, ST_QUEUED, T0);
    ck_assert(cache_lookup(cc, r, key, "acme", T0 + 1, &b));
    ck_assert_str_eq(b.id, ID_A);
    ck_assert_int_eq(b.state, ST_QUEUED);
    ck_assert(!cache_lookup(cc, r, key, "globex", T0 + 1, &b)); /* another tenant's */
    apply(idx, ST_PROCESSING, T0 + 2);
    ck_assert(cache_lookup(cc, r, key, "acme", T0 + 3, &b));
    apply(idx, ST_SUCCEEDED, T0 + 5);
    ck_assert(cache_lookup(cc, r, key, "acme", T0 + 5 + 10000, &b));
    ck_assert_int_eq(b.state, ST_SUCCEEDED);
    ck_assert(!cache_lookup(cc, r, key, "acme", T0 + 5 + 10001, &b)); /* past the TTL */
    /* A failed request never answers from the cache. */
    struct status_index *idx2 = status_index_new(100, 3600000);
    struct cache *c2 = cache_new(&c, idx2);
    cache_note(c2, key, ID_A, "acme", T0);
    apply(idx2, ST_FAILED, T0 + 1);
    ck_assert(!cache_lookup(c2, r, key, "acme", T0 + 2, &b));
    cache_free(c2);
    status_index_free(idx2);
    cache_free(cc);
    status_index_free(idx);
    cfg_free(&c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cache");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_keys);
    tcase_add_test(tc, test_lookup);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
