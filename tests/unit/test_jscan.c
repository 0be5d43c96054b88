/* test_jscan.c: unit tests for the in-place JSON reader (common/jscan.c). Its
 * verdicts are checked against json_parse's, on a table of documents and on
 * random documents and mutations of them. Inputs are copied into exactly
 * sized heap blocks, so AddressSanitizer catches a read one byte too far. */
#include "jscan.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* exact copies s into a block of exactly n bytes (caller frees). */
static char *exact(const char *s, size_t n)
{
    char *p = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(p);
    memcpy(p, s, n);
    return p;
}

/* jscan_accepts tells whether jscan reads s as exactly one JSON value. */
static bool jscan_accepts(const char *s, size_t n)
{
    char *p = exact(s, n);
    struct jscan sc;
    bool ok = jscan_init(&sc, p, n) && jscan_value(&sc, NULL, NULL) && jscan_done(&sc);
    free(p);
    return ok;
}

static bool json_c_accepts(const char *s, size_t n)
{
    char why[128] = "";
    struct json_object *o = json_parse(s, n, why, sizeof why);
    json_object_put(o);
    return o || strcmp(why, "null document") == 0;
}

/* jscan_check_accepts is jscan_check's verdict, with its reason in why. */
static bool jscan_check_accepts(const char *s, size_t n, char *why, size_t whylen)
{
    char *p = exact(s, n);
    bool ok = jscan_check(p, n, why, whylen);
    free(p);
    return ok;
}

/* check_same: json_parse refuses exactly what jscan_check refuses (it gates
 * json-c's verdict with it, so jscan_check must never accept what json-c
 * refuses), and the plain walk the events stream uses refuses the same
 * documents but for duplicate keys, which only jscan_check looks for. */
static void check_same(const char *s, size_t n)
{
    char why[160] = "";
    bool want = json_c_accepts(s, n), strict = jscan_check_accepts(s, n, why, sizeof why);
    bool walk = jscan_accepts(s, n);
    ck_assert_msg(want == strict, "json_parse %s, jscan_check %s: [%.*s]",
                  want ? "accepts" : "refuses", strict ? "accepts" : "refuses", (int)n, s);
    ck_assert_msg(strict || why[0], "jscan_check refused [%.*s] without a reason", (int)n, s);
    if (walk && !strict)
        ck_assert_msg(strncmp(why, "duplicate key", 13) == 0,
                      "the walk accepts [%.*s], jscan_check refuses it: %s", (int)n, s, why);
    else
        ck_assert_msg(walk == strict, "the walk %s, jscan_check %s: [%.*s]",
                      walk ? "accepts" : "refuses", strict ? "accepts" : "refuses", (int)n, s);
}

static const char *const documents[] = {
    "{}",
    "[]",
    "0",
    "-0",
    "1",
    "-1",
    "1.5",
    "-1.5e10",
    "1E+2",
    "1e-2",
    "true",
    "false",
    "null",
    "\"\"",
    "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"",
    "\"\\u00e9\\u20AC\\ud83d\\ude00\"",
    "\"caf\xc3\xa9\"",
    " {\"a\" : [1, 2, {\"b\": null}] } ",
    "[[[[[]]]]]",
    "{\"a\":1,\"a\":2}",
    "123456789012345678",
    "1e308",
    "1e400",
    "-1e400",
    "1e-400",
    "99999999999999999999",
    "0.0000000000000000000000000001",
    "01",
    "1.",
    ".5",
    "1e",
    "1e+",
    "+1",
    "-",
    "--1",
    "0x10",
    "NaN",
    "Infinity",
    "-Infinity",
    "tru",
    "nul",
    "falsey",
    "[1,]",
    "[,1]",
    "[1 2]",
    "{\"a\"}",
    "{\"a\":}",
    "{,}",
    "{\"a\":1,}",
    "{1:2}",
    "{'a':1}",
    "[1]]",
    "[",
    "]",
    "{",
    "\"abc",
    "\"a\x01\"",
    "\"\\x\"",
    "\"\\u12\"",
    "\"\\u12G4\"",
    "\"\xc3\"",
    "\"\xe0\x80\x80\"",
    "\"\xed\xa0\x80\"",
    "[] []",
    "1 2",
    "",
    " ",
    "\"\\u0000\"",
    "{\"\\u0000\":1}",
    "[\"\\ud800\\udc00\"]",
};

START_TEST(test_documents)
{
    const char *d = documents[_i];
    check_same(d, strlen(d));
}
END_TEST

START_TEST(test_depth)
{
    char doc[200];
    for (int n = 30; n <= 34; n++) {
        memset(doc, '[', (size_t)n);
        memset(doc + n, ']', (size_t)n);
        check_same(doc, 2 * (size_t)n);
    }
    /* An empty object nested inside arrays counts as a level too. */
    memset(doc, '[', 32);
    memcpy(doc + 32, "{}", 2);
    memset(doc + 34, ']', 32);
    ck_assert(!jscan_accepts(doc, 66));
    ck_assert(jscan_accepts(doc + 1, 64));
}
END_TEST

/* What json_parse lets through and RFC 8259 does not, jscan refuses. */
START_TEST(test_stricter_than_json_c)
{
    static const char *const cases[] = {"\"a\x01\"", "\"a\x1f\"", "{'a':1}",    "1.",
                                        "-.5",       "-00",       "\"\\ud800\""};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_msg(!jscan_accepts(cases[i], strlen(cases[i])), "accepted %s", cases[i]);
    ck_assert(!jscan_accepts("\"a\0b\"", 5));
    ck_assert(!jscan_accepts("[1]\0", 4));
}
END_TEST

/* ---- random documents ---- */

struct gen {
    uint64_t state;
    char buf[4096];
    size_t n;
};

static unsigned pick(struct gen *g, unsigned n)
{
    g->state ^= g->state << 13;
    g->state ^= g->state >> 7;
    g->state ^= g->state << 17;
    return (unsigned)(g->state % n);
}

static void emit(struct gen *g, const char *s)
{
    size_t k = strlen(s);
    if (g->n + k < sizeof g->buf) memcpy(g->buf + g->n, s, k), g->n += k;
}

static void gen_value(struct gen *g, int depth)
{
    static const char *const atoms[] = {
        "0",
        "-7",
        "12.5e3",
        "1E-9",
        "123456789012",
        "true",
        "false",
        "null",
        "\"\"",
        "\"x\"",
        "\"\\n\\u00e9\"",
        "\"\xc3\xa9t\xc3\xa9\"",
        "\"\\ud83d\\ude00\"",
        "-0.0",
    };
    static const char *const spaces[] = {"", "", " ", "\n\t"};
    unsigned kind = depth > 5 ? 2 : pick(g, 4);
    emit(g, spaces[pick(g, 4)]);
    if (kind == 0 || kind == 1) {
        bool obj = kind == 0;
        emit(g, obj ? "{" : "[");
        unsigned n = pick(g, 4);
        for (unsigned i = 0; i < n; i++) {
            if (i) emit(g, ",");
            if (obj) emit(g, pick(g, 2) ? "\"k\":" : "\"key\\t\" : ");
            gen_value(g, depth + 1);
        }
        emit(g, obj ? "}" : "]");
    } else {
        emit(g, atoms[pick(g, sizeof atoms / sizeof atoms[0])]);
    }
    emit(g, spaces[pick(g, 4)]);
}

/* mutate damages the document once: a byte changed, removed or cut off. */
static void mutate(struct gen *g)
{
    static const char bytes[] = "{}[],:\"\\ -+.eE0u1ntfa\x80\xc3";
    if (g->n == 0) return;
    size_t at = pick(g, (unsigned)g->n);
    switch (pick(g, 3)) {
    case 0:
        g->buf[at] = bytes[pick(g, sizeof bytes - 1)];
        break;
    case 1:
        memmove(g->buf + at, g->buf + at + 1, g->n - at - 1);
        g->n--;
        break;
    default:
        g->n = at;
    }
}

START_TEST(test_random_documents)
{
    struct gen g = {.state = 0x9E3779B97F4A7C15u};
    size_t accepted = 0, refused = 0;
    for (int i = 0; i < 20000; i++) {
        g.n = 0;
        gen_value(&g, 0);
        if (i % 2) mutate(&g);
        check_same(g.buf, g.n);
        if (jscan_accepts(g.buf, g.n))
            accepted++;
        else
            refused++;
    }
    /* Both verdicts must have been exercised for the comparison to mean anything. */
    ck_assert_uint_gt(accepted, 5000);
    ck_assert_uint_gt(refused, 2000);
}
END_TEST

/* ---- reading values ---- */

START_TEST(test_walk_object)
{
    const char *doc =
        " {\"s\":\"a\\u00e9\\n\",\"i\":-42,\"o\":{ \"x\" : [1,2] },\"long_key_name\":1} ";
    char *p = exact(doc, strlen(doc));
    struct jscan s;
    char key[8], str[16];
    size_t n;
    int64_t v;
    const char *text;
    ck_assert(jscan_init(&s, p, strlen(doc)));
    ck_assert(jscan_enter(&s, '{'));
    ck_assert_int_eq(jscan_next(&s, key, sizeof key), 1);
    ck_assert_str_eq(key, "s");
    ck_assert(jscan_string(&s, str, sizeof str, &n));
    ck_assert_str_eq(str, "a\xc3\xa9\n");
    ck_assert_uint_eq(n, 4);
    ck_assert_int_eq(jscan_next(&s, key, sizeof key), 1);
    ck_assert_str_eq(key, "i");
    ck_assert(jscan_int(&s, -100, 100, &v));
    ck_assert_int_eq(v, -42);
    ck_assert_int_eq(jscan_next(&s, key, sizeof key), 1);
    ck_assert_str_eq(key, "o");
    ck_assert(jscan_value(&s, &text, &n));
    ck_assert_uint_eq(n, 15);
    ck_assert(strncmp(text, "{ \"x\" : [1,2] }", n) == 0);
    ck_assert_int_eq(jscan_next(&s, key, sizeof key), 1);
    ck_assert_str_eq(key, ""); /* too long for key[8] */
    ck_assert(jscan_value(&s, NULL, NULL));
    ck_assert_int_eq(jscan_next(&s, key, sizeof key), 0);
    ck_assert(jscan_done(&s));
    free(p);
}
END_TEST

START_TEST(test_strings_refused)
{
    const char *cases[] = {"\"a\\u0000b\"", "\"0123456789\"", "5", "[\"a\"]"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *p = exact(cases[i], strlen(cases[i]));
        struct jscan s;
        char out[8];
        size_t n;
        ck_assert(jscan_init(&s, p, strlen(cases[i])));
        ck_assert_msg(!jscan_string(&s, out, sizeof out, &n), "read %s", cases[i]);
        free(p);
    }
}
END_TEST

START_TEST(test_ints)
{
    static const struct {
        const char *text;
        bool ok;
        int64_t v;
    } cases[] = {
        {"9223372036854775807", true, INT64_MAX},
        {"-9223372036854775808", true, INT64_MIN},
        {"9223372036854775808", false, 0},
        {"-9223372036854775809", false, 0},
        {"0", true, 0},
        {"-0", true, 0},
        {"1.0", false, 0},
        {"1e2", false, 0},
        {"\"1\"", false, 0},
        {"01", true, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *p = exact(cases[i].text, strlen(cases[i].text));
        struct jscan s;
        int64_t v = -1;
        ck_assert(jscan_init(&s, p, strlen(cases[i].text)));
        ck_assert_msg(jscan_int(&s, INT64_MIN, INT64_MAX, &v) == cases[i].ok, "%s", cases[i].text);
        if (cases[i].ok) ck_assert_int_eq(v, cases[i].v);
        free(p);
    }
    /* "01" reads as 0 and leaves "1": the document as a whole is not done. */
    struct jscan s;
    int64_t v;
    ck_assert(jscan_init(&s, "01", 2));
    ck_assert(jscan_int(&s, 0, 10, &v));
    ck_assert(!jscan_done(&s));
    ck_assert(jscan_init(&s, "11", 2));
    ck_assert(!jscan_int(&s, 0, 10, &v)); /* out of range */
}
END_TEST

/* jscan_check names each problem json-c lets through, and where it is. */
START_TEST(test_check_reasons)
{
    static const struct {
        const char *doc, *why;
    } cases[] = {
        {"{\"a\":\"x\x01y\"}", "raw control character in a string (escape it) at offset 7"},
        {"[\"\t\"]", "raw control character in a string (escape it) at offset 2"},
        {"[1.]", "a number needs a digit after its point at offset 1"},
        {"1.", "a number needs a digit after its point at offset 0"},
        {"[-.5]", "a number needs a digit before its point at offset 1"},
        {"-00", "leading zero in a number at offset 0"},
        {"{\"a\":[01]}", "leading zero in a number at offset 6"},
        {"[1e]", "a number needs a digit in its exponent at offset 1"},
        {"{\"route\":\"a\",\"route\":\"b\"}", "duplicate key \"route\" at offset 13"},
        {"{\"a\":{\"b\":1,\"c\":{\"d\":[{\"x\":1,\"y\":2,\"x\":3}]}}}",
         "duplicate key \"x\" at offset 35"},
        {"{\"a\":1,\"\\u0061\":2}", "duplicate key \"a\" at offset 7"},
        {"\"\\ud800\"",
         "lone surrogate escape (a high surrogate with no low one after it) at offset 1"},
        {"\"\\udc00\"",
         "lone surrogate escape (a low surrogate with no high one before it) at offset 1"},
        {"\"\\ud800\\u0041\"",
         "lone surrogate escape (a high surrogate with no low one after it) at offset 1"},
        {"\"\\ud800x\"",
         "lone surrogate escape (a high surrogate with no low one after it) at offset 1"},
        {"{'a':1}", "expected a member name in double quotes at offset 1"},
        {"['a']", "strings take double quotes at offset 1"},
        {"\"\\x\"", "invalid escape in a string at offset 1"},
        {"\"\\u12G4\"", "\\u needs 4 hex digits at offset 1"},
        {"[1,]", "expected a value at offset 3"},
        {"[1 2]", "expected ',' or ']' at offset 3"},
        {"{\"a\" 1}", "expected ':' after a member name at offset 5"},
        {"[1", "unexpected end of input"},
        {"", "unexpected end of input"},
        {"\"abc", "unexpected end of input"},
        {"{} x", "trailing characters after the JSON value at offset 3"},
        {"[\"\xc3\"]", "invalid UTF-8"},
        {"1e400", "number out of range at offset 0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char why[160] = "";
        bool ok = jscan_check_accepts(cases[i].doc, strlen(cases[i].doc), why, sizeof why);
        ck_assert_msg(!ok, "accepted %s", cases[i].doc);
        ck_assert_msg(strcmp(why, cases[i].why) == 0, "%s: \"%s\", want \"%s\"", cases[i].doc, why,
                      cases[i].why);
    }
    const char nested[] = "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]";
    char why[160] = "";
    ck_assert(!jscan_check_accepts(nested, strlen(nested), why, sizeof why));
    ck_assert_str_eq(why, "nesting deeper than 32 at offset 32");
}
END_TEST

/* Keys repeat only within one object; equal keys of sibling or nested
 * objects are fine, and so are many distinct keys. */
START_TEST(test_check_keys)
{
    const char *ok[] = {
        "{\"a\":{\"a\":{\"a\":1}},\"b\":[{\"a\":1},{\"a\":2}]}",
        "{\"ab\":1,\"a\":2,\"b\":3,\"\":4,\"ba\":5}",
        "{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x81\":2}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char why[160] = "";
        ck_assert_msg(jscan_check_accepts(ok[i], strlen(ok[i]), why, sizeof why), "%s: %s", ok[i],
                      why);
    }
    /* 5000 distinct keys, then the same with the first one repeated last. */
    size_t cap = 5000 * 16 + 64, n = 0;
    char *doc = malloc(cap);
    ck_assert_ptr_nonnull(doc);
    doc[n++] = '{';
    for (int i = 0; i < 5000; i++)
        n += (size_t)snprintf(doc + n, cap - n, "%s\"k%d\":%d", i ? "," : "", i, i);
    doc[n] = '}';
    char why[160] = "";
    ck_assert_msg(jscan_check_accepts(doc, n + 1, why, sizeof why), "%s", why);
    n += (size_t)snprintf(doc + n, cap - n, ",\"k0\":1}");
    ck_assert(!jscan_check_accepts(doc, n, why, sizeof why));
    const char *prefix = "duplicate key \"k0\" at offset ";
    ck_assert_msg(strncmp(why, prefix, strlen(prefix)) == 0, "%s", why);
    /* A long repeated key is named, cut to 64 bytes. */
    char lng[400];
    memset(lng, 'x', sizeof lng);
    n = (size_t)snprintf(doc, cap, "{\"%.300s\":1,\"%.300s\":2}", lng, lng);
    ck_assert(!jscan_check_accepts(doc, n, why, sizeof why));
    ck_assert_uint_eq(strspn(why + 15, "x"), 64);
    free(doc);
}
END_TEST

static Suite *jscan_suite(void)
{
    Suite *s = suite_create("jscan");
    TCase *tc = tcase_create("core");
    /* 20,000 random documents through three readers under the sanitizers,
     * on a shared machine: Check's default of 4 s is too tight. */
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_documents, 0, sizeof documents / sizeof documents[0]);
    tcase_add_test(tc, test_depth);
    tcase_add_test(tc, test_stricter_than_json_c);
    tcase_add_test(tc, test_random_documents);
    tcase_add_test(tc, test_walk_object);
    tcase_add_test(tc, test_strings_refused);
    tcase_add_test(tc, test_ints);
    tcase_add_test(tc, test_check_reasons);
    tcase_add_test(tc, test_check_keys);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(jscan_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
