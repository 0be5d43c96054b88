/* test_buf.c: unit tests for the capped buffer (common/buf.c): growth, the
 * hard cap, the free-on-error rule, ownership hand-over and JSON escaping. */
#include "buf.h"

#include <check.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The ENOMEM test asks for an impossible allocation; ASan must return NULL
 * instead of aborting, as the C library would. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}

/* json_escaped runs buf_append_json_string on n bytes and returns the result (caller frees). */
static char *json_escaped(const char *s, size_t n)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    ck_assert_int_eq(buf_append_json_string(&b, s, n), 0);
    return buf_take(&b, NULL);
}

START_TEST(test_take_empty)
{
    struct buf b;
    buf_init(&b, 100);
    size_t len = 99;
    char *s = buf_take(&b, &len);
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(s, "");
    ck_assert_uint_eq(len, 0);
    free(s);
    ck_assert_int_eq(buf_appends(&b, "again"), 0);
    ck_assert_str_eq(b.data, "again");
    buf_free(&b);
}
END_TEST

START_TEST(test_append_and_take)
{
    struct buf b;
    buf_init(&b, 100);
    ck_assert_int_eq(buf_append(&b, "ab\0cd", 5), 0);
    ck_assert_int_eq(buf_appends(&b, "ef"), 0);
    ck_assert_int_eq(buf_append(&b, NULL, 0), 0);
    ck_assert_uint_eq(b.len, 7);
    ck_assert_int_eq(memcmp(b.data, "ab\0cdef", 8), 0);
    size_t len = 0;
    char *s = buf_take(&b, &len);
    ck_assert_uint_eq(len, 7);
    ck_assert_int_eq(memcmp(s, "ab\0cdef", 8), 0);
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_uint_eq(b.max, 100);
    free(s);
}
END_TEST

START_TEST(test_growth_doubles)
{
    struct buf b;
    buf_init(&b, 10000);
    char chunk[40];
    memset(chunk, 'x', sizeof chunk);
    size_t prev = 0;
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(buf_append(&b, chunk, sizeof chunk), 0);
        ck_assert_uint_gt(b.cap, b.len);
        if (b.cap != prev && prev != 0) ck_assert_uint_eq(b.cap, prev * 2);
        prev = b.cap;
    }
    ck_assert_uint_eq(b.len, 4000);
    ck_assert_uint_eq(b.cap, 4096);
    ck_assert_uint_eq(strlen(b.data), 4000);
    buf_free(&b);
}
END_TEST

START_TEST(test_cap_is_hard_limit)
{
    struct buf b;
    buf_init(&b, 10);
    ck_assert_int_eq(buf_appends(&b, "0123456789"), 0);
    ck_assert_uint_le(b.cap, 11);
    ck_assert_int_eq(buf_append(&b, "x", 1), -E2BIG);
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_uint_eq(b.cap, 0);
    /* Still usable after the error, with the same cap. */
    ck_assert_int_eq(buf_appends(&b, "abc"), 0);
    ck_assert_str_eq(b.data, "abc");
    ck_assert_int_eq(buf_appends(&b, "12345678"), -E2BIG);
    ck_assert_ptr_null(b.data);
    buf_free(&b);
}
END_TEST

START_TEST(test_zero_max)
{
    struct buf b;
    buf_init(&b, 0);
    ck_assert_int_eq(buf_append(&b, "", 0), 0);
    ck_assert_int_eq(buf_append(&b, "a", 1), -E2BIG);
    ck_assert_int_eq(buf_appendf(&b, "%d", 1), -E2BIG);
    size_t len = 1;
    char *s = buf_take(&b, &len);
    ck_assert_str_eq(s, "");
    ck_assert_uint_eq(len, 0);
    free(s);
}
END_TEST

START_TEST(test_enomem)
{
    struct buf b;
    buf_init(&b, SIZE_MAX);
    ck_assert_int_eq(buf_appends(&b, "abc"), 0);
    /* The pointer is never read: growing fails first. */
    ck_assert_int_eq(buf_append(&b, "x", SIZE_MAX / 4), -ENOMEM);
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_int_eq(buf_append(&b, "x", SIZE_MAX), -E2BIG);
    ck_assert_int_eq(buf_appends(&b, "ok"), 0);
    ck_assert_str_eq(b.data, "ok");
    buf_free(&b);
}
END_TEST

START_TEST(test_appendf)
{
    struct buf b;
    buf_init(&b, 1000);
    ck_assert_int_eq(buf_appendf(&b, "%s=%d", "a", 1), 0);
    ck_assert_int_eq(buf_appendf(&b, "%s", ""), 0);
    ck_assert_int_eq(buf_appendf(&b, ",%0100d", 7), 0); /* forces growth */
    ck_assert_uint_eq(b.len, 3 + 101);
    ck_assert_uint_eq(strlen(b.data), b.len);
    ck_assert_int_eq(strncmp(b.data, "a=1,000", 7), 0);
    ck_assert_int_eq(b.data[b.len - 1], '7');
    ck_assert_int_eq(buf_appendf(&b, "%0900d", 1), -E2BIG);
    ck_assert_ptr_null(b.data);
    ck_assert_int_eq(buf_appendf(&b, "%ld", -5L), 0);
    ck_assert_str_eq(b.data, "-5");
    buf_free(&b);
}
END_TEST

START_TEST(test_appendf_exact_fit)
{
    struct buf b;
    buf_init(&b, 1000);
    ck_assert_int_eq(buf_appendf(&b, "%062d", 0), 0); /* 62 + NUL: room left for one byte */
    ck_assert_uint_eq(b.cap, 64);
    ck_assert_int_eq(buf_appendf(&b, "%c", 'z'), 0);
    ck_assert_uint_eq(b.cap, 64);
    ck_assert_int_eq(buf_appendf(&b, "%c", 'y'), 0);
    ck_assert_uint_eq(b.cap, 128);
    ck_assert_uint_eq(b.len, 64);
    ck_assert_str_eq(b.data + 62, "zy");
    buf_free(&b);
}
END_TEST

START_TEST(test_reset_and_free)
{
    struct buf b;
    buf_init(&b, 100);
    ck_assert_int_eq(buf_appends(&b, "hello"), 0);
    char *before = b.data;
    buf_reset(&b);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_ptr_eq(b.data, before);
    ck_assert_str_eq(b.data, "");
    ck_assert_int_eq(buf_appends(&b, "x"), 0);
    ck_assert_str_eq(b.data, "x");
    buf_free(&b);
    ck_assert_ptr_null(b.data);
    buf_free(&b);
    buf_free(NULL);
    buf_reset(&b);
    ck_assert_uint_eq(b.len, 0);
}
END_TEST

START_TEST(test_json_escapes)
{
    static const struct {
        const char *in;
        size_t n;
        const char *out;
    } cases[] = {
        {"", 0, "\"\""},
        {"plain", 5, "\"plain\""},
        {"a\"b\\c", 5, "\"a\\\"b\\\\c\""},
        {"\n\r\t\b\f", 5, "\"\\n\\r\\t\\b\\f\""},
        {"\x01\x1f", 2, "\"\\u0001\\u001f\""},
        {"a\0b", 3, "\"a\\u0000b\""},
        {"/</script>", 10, "\"/</script>\""},
        {"\x7f ~", 3, "\"\x7f ~\""},
        {"\xe2\x80\xa8\xe2\x80\xa9", 6, "\"\xe2\x80\xa8\xe2\x80\xa9\""},
        {"caf\xc3\xa9 \xf0\x9f\x98\x80", 10, "\"caf\xc3\xa9 \xf0\x9f\x98\x80\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = json_escaped(cases[i].in, cases[i].n);
        ck_assert_msg(strcmp(s, cases[i].out) == 0, "case %zu: got %s", i, s);
        free(s);
    }
}
END_TEST

/* Every byte below 0x80 must survive a round trip through a real JSON parser. */
START_TEST(test_json_round_trip)
{
    char in[128];
    for (int i = 0; i < 128; i++)
        in[i] = (char)i;
    char *s = json_escaped(in, sizeof in);
    struct json_object *o = json_tokener_parse(s);
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(json_object_get_string_len(o), 128);
    ck_assert_int_eq(memcmp(json_object_get_string(o), in, 128), 0);
    json_object_put(o);
    free(s);
}
END_TEST

START_TEST(test_json_string_cap)
{
    struct buf b;
    buf_init(&b, 8);
    ck_assert_int_eq(buf_append_json_string(&b, "abcdef", 6), 0);
    ck_assert_str_eq(b.data, "\"abcdef\"");
    buf_reset(&b);
    ck_assert_int_eq(buf_append_json_string(&b, "abc\n\n", 5), -E2BIG);
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_int_eq(buf_append_json_string(&b, "abcdefg", 7), -E2BIG);
    ck_assert_ptr_null(b.data);
    buf_free(&b);
}
END_TEST

static Suite *buf_suite(void)
{
    Suite *s = suite_create("buf");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_take_empty);
    tcase_add_test(tc, test_append_and_take);
    tcase_add_test(tc, test_growth_doubles);
    tcase_add_test(tc, test_cap_is_hard_limit);
    tcase_add_test(tc, test_zero_max);
    tcase_add_test(tc, test_enomem);
    tcase_add_test(tc, test_appendf);
    tcase_add_test(tc, test_appendf_exact_fit);
    tcase_add_test(tc, test_reset_and_free);
    tcase_add_test(tc, test_json_escapes);
    tcase_add_test(tc, test_json_round_trip);
    tcase_add_test(tc, test_json_string_cap);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(buf_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
