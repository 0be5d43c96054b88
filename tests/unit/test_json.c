/* test_json.c: unit tests for strict JSON parsing, the UTF-8 validator and
 * error bodies (common/json.c). Every parser input sits at the end of a page
 * followed by a PROT_NONE page, so reading one byte too far crashes the test. */
#include "json.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* guarded_copy maps n bytes ending exactly at an inaccessible page and copies
 * s there. The caller unmaps *map (*maplen bytes). */
static const char *guarded_copy(const void *s, size_t n, void **map, size_t *maplen)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t data_pages = (n + page - 1) / page + 1;
    *maplen = (data_pages + 1) * page;
    char *p = mmap(NULL, *maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(p, MAP_FAILED);
    ck_assert_int_eq(mprotect(p + data_pages * page, page, PROT_NONE), 0);
    char *start = p + data_pages * page - n;
    if (n) memcpy(start, s, n);
    *map = p;
    return start;
}

/* parse runs json_parse on n bytes of s placed before a guard page. */
static struct json_object *parse(const char *s, size_t n, char *why, size_t whylen)
{
    void *map;
    size_t maplen;
    const char *g = guarded_copy(s, n, &map, &maplen);
    struct json_object *o = json_parse(g, n, why, whylen);
    munmap(map, maplen);
    return o;
}

static int utf8_valid(const char *s, size_t n)
{
    void *map;
    size_t maplen;
    const char *g = guarded_copy(s, n, &map, &maplen);
    int ok = json_utf8_valid(g, n);
    munmap(map, maplen);
    return ok;
}

/* expect_refused checks that s (n bytes) is refused with exactly the reason want. */
static void expect_refused(const char *s, size_t n, const char *want)
{
    char why[128] = "";
    struct json_object *o = parse(s, n, why, sizeof why);
    ck_assert_msg(o == NULL, "accepted %.*s", (int)n, s);
    ck_assert_msg(strcmp(why, want) == 0, "%.*s: why '%s', want '%s'", (int)n, s, why, want);
}

#define REFUSED(lit, want) expect_refused(lit, sizeof(lit) - 1, want)

START_TEST(test_valid_documents)
{
    static const char *docs[] = {
        "{}",          "[]",   "0",       "-1.5e3",
        "\"x\"",       "true", "false",   " \t\r\n{ \"a\" : [ ] } \n",
        "\"\\u00e9\"", "1e-2", "[1,2,3]",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        char why[64] = "";
        struct json_object *o = parse(docs[i], strlen(docs[i]), why, sizeof why);
        ck_assert_msg(o != NULL, "refused %s: %s", docs[i], why);
        json_object_put(o);
    }
}
END_TEST

START_TEST(test_values)
{
    static const char doc[] = "{\"a\":[1,{\"b\":null}],\"s\":\"caf\xc3\xa9\",\"n\":42}";
    struct json_object *o = parse(doc, sizeof doc - 1, NULL, 0);
    ck_assert_ptr_nonnull(o);
    struct json_object *v;
    ck_assert(json_object_object_get_ex(o, "n", &v));
    ck_assert_int_eq(json_object_get_int64(v), 42);
    ck_assert(json_object_object_get_ex(o, "s", &v));
    ck_assert_str_eq(json_object_get_string(v), "caf\xc3\xa9");
    ck_assert(json_object_object_get_ex(o, "a", &v));
    ck_assert_uint_eq(json_object_array_length(v), 2);
    json_object_put(o);

    o = parse("7", 1, NULL, 0);
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(json_object_get_int(o), 7);
    json_object_put(o);
}
END_TEST

START_TEST(test_null_document)
{
    REFUSED("null", "null document");
    REFUSED(" null ", "null document");
    struct json_object *o = parse("[null]", 6, NULL, 0);
    ck_assert_ptr_nonnull(o);
    json_object_put(o);
}
END_TEST

START_TEST(test_incomplete)
{
    REFUSED("", "unexpected end of input");
    REFUSED("   ", "unexpected end of input");
    REFUSED("[1,", "unexpected end of input");
    REFUSED("{\"a\":", "unexpected end of input");
    REFUSED("{\"a\"", "unexpected end of input");
    REFUSED("\"abc", "unexpected end of input");
    REFUSED("\"abc\\", "unexpected end of input");
    REFUSED("tru", "unexpected end of input");
    REFUSED("-", "unexpected end of input");
}
END_TEST

START_TEST(test_trailing)
{
    REFUSED("{} x", "trailing characters after the JSON value");
    REFUSED("1 2", "trailing characters after the JSON value");
    REFUSED("[1]]", "trailing characters after the JSON value");
    REFUSED("{}{}", "trailing characters after the JSON value");
    REFUSED("\"a\"\x0b", "trailing characters after the JSON value");
}
END_TEST

START_TEST(test_nul_byte)
{
    REFUSED("{}\0", "NUL byte in input");
    REFUSED("\"a\0b\"", "NUL byte in input");
    REFUSED("\0", "NUL byte in input");
}
END_TEST

START_TEST(test_invalid_utf8_in_document)
{
    REFUSED("\"\xc0\x80\"", "invalid UTF-8");
    REFUSED("\"\xed\xa0\x80\"", "invalid UTF-8");
    REFUSED("{\"\xff\":1}", "invalid UTF-8");
    REFUSED("\"\xe2\x82\"", "invalid UTF-8");
}
END_TEST

START_TEST(test_syntax_errors)
{
    static const char *bad[] = {"[1,]", "{\"a\":1,}", "{a:1}", "[1 2]", "/* c */ 1", "}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char why[128] = "";
        struct json_object *o = parse(bad[i], strlen(bad[i]), why, sizeof why);
        ck_assert_msg(o == NULL, "accepted %s", bad[i]);
        ck_assert_msg(why[0] != '\0', "no reason for %s", bad[i]);
        ck_assert_str_ne(why, "trailing characters after the JSON value");
    }
}
END_TEST

/* What json-c alone lets through is refused, with the strict reader's reason. */
START_TEST(test_strict)
{
    REFUSED("{\"a\":1,\"a\":2}", "duplicate key \"a\" at offset 7");
    REFUSED("[{\"b\":[{\"k\":1,\"j\":2,\"k\":3}]}]", "duplicate key \"k\" at offset 20");
    REFUSED("\"\\ud800\"",
            "lone surrogate escape (a high surrogate with no low one after it) at offset 1");
    REFUSED("\"\\udc00\"",
            "lone surrogate escape (a low surrogate with no high one before it) at offset 1");
    REFUSED("[\"a\x01\"]", "raw control character in a string (escape it) at offset 3");
    REFUSED("1.", "a number needs a digit after its point at offset 0");
    REFUSED("-.5", "a number needs a digit before its point at offset 0");
    REFUSED("-00", "leading zero in a number at offset 0");
    REFUSED("{'a':1}", "expected a member name in double quotes at offset 1");
    struct json_object *o = parse("{\"a\":{\"a\":1},\"b\":{\"a\":2}}", 25, NULL, 0);
    ck_assert_ptr_nonnull(o);
    json_object_put(o);
}
END_TEST

START_TEST(test_nonfinite)
{
    REFUSED("NaN", "NaN and Infinity are not JSON");
    REFUSED("[1,Infinity]", "NaN and Infinity are not JSON");
    REFUSED("{\"a\":{\"b\":-Infinity}}", "NaN and Infinity are not JSON");
}
END_TEST

/* nested builds depth levels of arrays or objects around 1, or empty arrays
 * when objects is -1 (caller frees). */
static char *nested(int depth, int objects, size_t *n)
{
    size_t cap = (size_t)depth * 6 + 2;
    char *s = malloc(cap);
    ck_assert_ptr_nonnull(s);
    size_t len = 0;
    for (int i = 0; i < depth; i++) {
        const char *open = objects > 0 ? "{\"a\":" : "[";
        memcpy(s + len, open, strlen(open));
        len += strlen(open);
    }
    if (objects >= 0) s[len++] = '1';
    for (int i = 0; i < depth; i++)
        s[len++] = objects > 0 ? '}' : ']';
    *n = len;
    return s;
}

START_TEST(test_depth_limit)
{
    for (int objects = -1; objects <= 1; objects++) {
        size_t n;
        char *s = nested(JSON_MAX_DEPTH, objects, &n);
        struct json_object *o = parse(s, n, NULL, 0);
        ck_assert_ptr_nonnull(o);
        json_object_put(o);
        free(s);

        s = nested(JSON_MAX_DEPTH + 1, objects, &n);
        expect_refused(s, n, "nesting deeper than 32");
        free(s);

        s = nested(10000, objects, &n);
        expect_refused(s, n, "nesting deeper than 32");
        free(s);
    }
}
END_TEST

START_TEST(test_why_optional_and_truncated)
{
    char absent[64] = "";
    ck_assert_ptr_null(json_parse(NULL, 0, absent, sizeof absent));
    ck_assert_str_eq(absent, "unexpected end of input");
    ck_assert_ptr_null(parse("[", 1, NULL, 0));
    char why[5] = "zzzz";
    ck_assert_ptr_null(parse("null", 4, why, sizeof why));
    ck_assert_str_eq(why, "null");
    char untouched[4] = "abc";
    ck_assert_ptr_null(parse("null", 4, untouched, 0));
    ck_assert_str_eq(untouched, "abc");
}
END_TEST

START_TEST(test_large_string)
{
    size_t n = 200000;
    char *s = malloc(n);
    ck_assert_ptr_nonnull(s);
    memset(s, 'a', n);
    s[0] = '"';
    s[n - 1] = '"';
    struct json_object *o = parse(s, n, NULL, 0);
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(json_object_get_string_len(o), (int)n - 2);
    json_object_put(o);
    free(s);
}
END_TEST

#define UTF8(lit) utf8_valid(lit, sizeof(lit) - 1)

START_TEST(test_utf8_valid)
{
    ck_assert(UTF8(""));
    ck_assert(UTF8("plain ascii \x7f"));
    ck_assert(UTF8("\xc2\x80"));
    ck_assert(UTF8("\xdf\xbf"));
    ck_assert(UTF8("\xe0\xa0\x80"));
    ck_assert(UTF8("\xed\x9f\xbf")); /* U+D7FF, just below the surrogates */
    ck_assert(UTF8("\xee\x80\x80")); /* U+E000, just above them */
    ck_assert(UTF8("\xef\xbf\xbf"));
    ck_assert(UTF8("\xf0\x90\x80\x80"));
    ck_assert(UTF8("\xf0\x9f\x98\x80")); /* emoji */
    ck_assert(UTF8("\xf4\x8f\xbf\xbf")); /* U+10FFFF */
    ck_assert(UTF8("a\xe2\x80\xa8z"));
}
END_TEST

START_TEST(test_utf8_invalid)
{
    ck_assert(!UTF8("\xc0\x80"));         /* overlong NUL */
    ck_assert(!UTF8("\xc1\xbf"));         /* overlong */
    ck_assert(!UTF8("\xe0\x80\x80"));     /* overlong */
    ck_assert(!UTF8("\xe0\x9f\xbf"));     /* overlong */
    ck_assert(!UTF8("\xf0\x80\x80\x80")); /* overlong */
    ck_assert(!UTF8("\xf0\x8f\xbf\xbf")); /* overlong */
    ck_assert(!UTF8("\xed\xa0\x80"));     /* U+D800 */
    ck_assert(!UTF8("\xed\xbf\xbf"));     /* U+DFFF */
    ck_assert(!UTF8("\xf4\x90\x80\x80")); /* U+110000 */
    ck_assert(!UTF8("\xf5\x80\x80\x80"));
    ck_assert(!UTF8("\xff"));
    ck_assert(!UTF8("\x80")); /* lone continuation */
    ck_assert(!UTF8("a\xbf"));
    ck_assert(!UTF8("\xc2")); /* truncated */
    ck_assert(!UTF8("\xe0\xa0"));
    ck_assert(!UTF8("\xf0\x9f\x98"));
    ck_assert(!UTF8("ok\xf0\x9f\x98"));
    ck_assert(!UTF8("\xc2\x41")); /* bad continuation */
    ck_assert(!UTF8("\xe2\x28\xa1"));
    ck_assert(!UTF8("\xf0\x9f\x28\x80"));
}
END_TEST

START_TEST(test_error_body)
{
    char *s = json_error_body("invalid_json", "bad \"x\"\n\\ caf\xc3\xa9");
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(s, "{\"error\":{\"code\":\"invalid_json\","
                        "\"message\":\"bad \\\"x\\\"\\n\\\\ caf\xc3\xa9\"}}");
    struct json_object *o = parse(s, strlen(s), NULL, 0);
    ck_assert_ptr_nonnull(o);
    struct json_object *err, *v;
    ck_assert(json_object_object_get_ex(o, "error", &err));
    ck_assert(json_object_object_get_ex(err, "code", &v));
    ck_assert_str_eq(json_object_get_string(v), "invalid_json");
    ck_assert(json_object_object_get_ex(err, "message", &v));
    ck_assert_str_eq(json_object_get_string(v), "bad \"x\"\n\\ caf\xc3\xa9");
    json_object_put(o);
    free(s);
}
END_TEST

START_TEST(test_error_body_empty_message)
{
    char *s = json_error_body("not_found", "");
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(s, "{\"error\":{\"code\":\"not_found\",\"message\":\"\"}}");
    free(s);
}
END_TEST

static Suite *json_suite(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_valid_documents);
    tcase_add_test(tc, test_values);
    tcase_add_test(tc, test_null_document);
    tcase_add_test(tc, test_incomplete);
    tcase_add_test(tc, test_trailing);
    tcase_add_test(tc, test_nul_byte);
    tcase_add_test(tc, test_invalid_utf8_in_document);
    tcase_add_test(tc, test_syntax_errors);
    tcase_add_test(tc, test_nonfinite);
    tcase_add_test(tc, test_strict);
    tcase_add_test(tc, test_depth_limit);
    tcase_add_test(tc, test_why_optional_and_truncated);
    tcase_add_test(tc, test_large_string);
    suite_add_tcase(s, tc);
    tc = tcase_create("utf8");
    tcase_add_test(tc, test_utf8_valid);
    tcase_add_test(tc, test_utf8_invalid);
    suite_add_tcase(s, tc);
    tc = tcase_create("error_body");
    tcase_add_test(tc, test_error_body);
    tcase_add_test(tc, test_error_body_empty_message);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(json_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
