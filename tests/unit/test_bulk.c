/* test_bulk.c: the batch document and answer (ingress/bulk.c): which
 * documents are taken apart into envelope texts and which are refused
 * whole, and the answer's order, items and overall status. */
#include "bulk.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

static int split(struct bulk *b, const char *doc, struct env_error *err)
{
    return bulk_split(b, doc, strlen(doc), err);
}

START_TEST(test_split)
{
    struct bulk *b = bulk_new();
    struct env_error err;
    const char *doc =
        " {\"requests\" : [ {\"route\":\"a\"}, 5 ,{\"route\":\"b\",\"body\":[1,{}]}]} ";
    ck_assert_int_eq(split(b, doc, &err), 0);
    ck_assert_uint_eq(b->n, 3);
    ck_assert_int_eq(strncmp(b->items[0].text, "{\"route\":\"a\"}", b->items[0].len), 0);
    ck_assert_uint_eq(b->items[0].len, 13);
    ck_assert_int_eq(strncmp(b->items[1].text, "5", b->items[1].len), 0);
    ck_assert_int_eq(
        strncmp(b->items[2].text, "{\"route\":\"b\",\"body\":[1,{}]}", b->items[2].len), 0);
    bulk_free(b);
}
END_TEST

static const struct {
    const char *doc, *code, *message;
} REFUSED[] = {
    {"", "invalid_json", "invalid JSON: unexpected end of input"},
    {"{\"requests\":[{\"route\":\"a\",\"route\":\"b\"}]}", "invalid_json",
     "invalid JSON: duplicate key \"route\" at offset 26"},
    {"{\"requests\":[{\"route\":\"\\ud800\"}]}", "invalid_json", "lone surrogate"},
    {"[{\"route\":\"a\"}]", "invalid_json", "the batch must be a JSON object"},
    {"{}", "invalid_request", "requests: is required"},
    {"{\"requests\":[]}", "invalid_request", "1..100 envelopes (it is empty)"},
    {"{\"requests\":{}}", "invalid_request", "requests: must be an array of 1..100 envelopes"},
    {"{\"requests\":[{}],\"extra\":1}", "invalid_request", "extra: unknown field"},
};

START_TEST(test_refused)
{
    struct bulk *b = bulk_new();
    struct env_error err;
    ck_assert_int_eq(split(b, REFUSED[_i].doc, &err), -1);
    ck_assert_int_eq(err.status, 400);
    ck_assert_str_eq(err.code, REFUSED[_i].code);
    ck_assert_msg(strstr(err.message, REFUSED[_i].message), "%s: \"%s\" lacks \"%s\"",
                  REFUSED[_i].doc, err.message, REFUSED[_i].message);
    bulk_free(b);
}
END_TEST

/* doc_of makes {"requests":[{"route":"r"}, ... n times]} (caller frees). */
static char *doc_of(size_t n)
{
    size_t cap = 32 + n * 16, len = 0;
    char *doc = malloc(cap);
    ck_assert_ptr_nonnull(doc);
    len += (size_t)snprintf(doc, cap, "{\"requests\":[");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(doc + len, cap - len, "%s{\"route\":\"r\"}", i ? "," : "");
    snprintf(doc + len, cap - len, "]}");
    return doc;
}

START_TEST(test_limit)
{
    struct bulk *b = bulk_new();
    struct env_error err;
    char *doc = doc_of(BULK_MAX);
    ck_assert_int_eq(split(b, doc, &err), 0);
    ck_assert_uint_eq(b->n, BULK_MAX);
    free(doc);
    bulk_free(b);
    b = bulk_new();
    doc = doc_of(BULK_MAX + 1);
    ck_assert_int_eq(split(b, doc, &err), -1);
    ck_assert_str_eq(err.code, "invalid_request");
    ck_assert_ptr_nonnull(strstr(err.message, "1..100 envelopes"));
    free(doc);
    bulk_free(b);
}
END_TEST

/* render runs bulk_render over items with the given statuses (0 ends). */
static struct json_object *render(const int *statuses, int *status)
{
    struct bulk *b = bulk_new();
    struct buf out;
    buf_init(&out, 1 << 20);
    for (; statuses[b->n]; b->n++) {
        struct bulk_item *it = &b->items[b->n];
        if (statuses[b->n] == 202) {
            char doc[160];
            struct answer a = {0};
            snprintf(doc, sizeof doc,
                     "{\"id\":\"-P77-JEamh1cGyWBMKDa1FT6xIQqt%03zu\",\"status\":\"queued\","
                     "\"status_url\":\"/v1/requests/-P77-JEamh1cGyWBMKDa1FT6xIQqt%03zu\"}",
                     b->n, b->n);
            answer_literal(&a, 202, doc);
            bulk_item_answer(it, &a, b->n == 3);
        } else if (statuses[b->n] == 429) {
            struct answer a = {0};
            answer_error(&a, 429, "rate_limited", "slow down");
            (void)answer_header(&a, "Retry-After", "7");
            bulk_item_answer(it, &a, false);
        } else {
            bulk_item_fail(it, statuses[b->n], "some_code", "a \"quoted\" message");
        }
    }
    long retry_after_s;
    ck_assert_int_eq(bulk_render(b, &out, status, &retry_after_s), 0);
    if (*status == 429) ck_assert_int_eq(retry_after_s, 7);
    struct json_object *o = json_parse(out.data, out.len, NULL, 0);
    ck_assert_msg(o != NULL, "not JSON: %s", out.data);
    buf_free(&out);
    bulk_free(b);
    return o;
}

START_TEST(test_render)
{
    int status;
    struct json_object *o = render((const int[]){400, 202, 503, 202, 0}, &status);
    ck_assert_int_eq(status, 202);
    struct json_object *results = json_object_object_get(o, "results");
    ck_assert_uint_eq(json_object_array_length(results), 4);
    struct json_object *first = json_object_array_get_idx(results, 0);
    ck_assert_int_eq(json_object_get_int(json_object_object_get(first, "status")), 400);
    struct json_object *error = json_object_object_get(first, "error");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(error, "code")), "some_code");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(error, "message")),
                     "a \"quoted\" message");
    struct json_object *second = json_object_array_get_idx(results, 1);
    ck_assert_str_eq(json_object_get_string(json_object_object_get(second, "id")),
                     "-P77-JEamh1cGyWBMKDa1FT6xIQqt001");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(second, "status")), "queued");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(second, "status_url")),
                     "/v1/requests/-P77-JEamh1cGyWBMKDa1FT6xIQqt001");
    ck_assert_ptr_null(json_object_object_get(second, "replayed"));
    struct json_object *fourth = json_object_array_get_idx(results, 3);
    ck_assert(json_object_get_boolean(json_object_object_get(fourth, "replayed")));
    json_object_put(o);
    /* An error answer of the contract keeps its document, with its status. */
    o = render((const int[]){429, 400, 0}, &status);
    ck_assert_int_eq(status, 429);
    first = json_object_array_get_idx(json_object_object_get(o, "results"), 0);
    ck_assert_int_eq(json_object_get_int(json_object_object_get(first, "status")), 429);
    error = json_object_object_get(first, "error");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(error, "code")), "rate_limited");
    json_object_put(o);
    /* Nothing accepted: the first error's status is the answer's. */
    o = render((const int[]){403, 400, 503, 0}, &status);
    ck_assert_int_eq(status, 403);
    json_object_put(o);
    o = render((const int[]){503, 503, 0}, &status);
    ck_assert_int_eq(status, 503);
    json_object_put(o);
}
END_TEST

static Suite *bulk_suite(void)
{
    Suite *s = suite_create("bulk");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_split);
    tcase_add_loop_test(tc, test_refused, 0, sizeof REFUSED / sizeof REFUSED[0]);
    tcase_add_test(tc, test_limit);
    tcase_add_test(tc, test_render);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(bulk_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
