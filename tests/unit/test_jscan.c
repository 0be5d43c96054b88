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

/* json_c_lenient tells whether s holds something json_parse lets through
 * though RFC 8259 does not (json-c's strict mode still takes single quotes,
 * raw control characters in strings, "1.", "-.5" and "-00"), or a lone surrogate escape,
 * which json-c replaces and jscan refuses. */
static bool json_c_lenient(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char prev = i ? s[i - 1] : ' ', before = i > 1 ? s[i - 2] : ' ';
        bool in_number = (prev >= '0' && prev <= '9') || strchr(".eE+", prev) ||
                         (prev == '-' && (before == 'e' || before == 'E'));
        if (c == '0' && !in_number && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9')
            return true; /* "-00" */
        if (c == '\'' || (c < 0x20 && !strchr(" \t\n\r", c))) return true;
        if (c == '.' &&
            (i + 1 == n || s[i + 1] < '0' || s[i + 1] > '9' || prev < '0' || prev > '9'))
            return true; /* "1." and "-.5" */
        if (c == '\\' && i + 3 < n && s[i + 1] == 'u' && (s[i + 2] == 'd' || s[i + 2] == 'D') &&
            strchr("89abcdefABCDEF", s[i + 3]))
            return true;
    }
    return false;
}

/* check_same: jscan never accepts what json_parse refuses, and refuses only
 * what RFC 8259 does. */
static void check_same(const char *s, size_t n)
{
    bool want = json_c_accepts(s, n), got = jscan_accepts(s, n);
    if (want && !got && json_c_lenient(s, n)) return;
    ck_assert_msg(want == got, "json_parse %s, jscan %s: [%.*s]", want ? "accepts" : "refuses",
                  got ? "accepts" : "refuses", (int)n, s);
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

static Suite *jscan_suite(void)
{
    Suite *s = suite_create("jscan");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_documents, 0, sizeof documents / sizeof documents[0]);
    tcase_add_test(tc, test_depth);
    tcase_add_test(tc, test_stricter_than_json_c);
    tcase_add_test(tc, test_random_documents);
    tcase_add_test(tc, test_walk_object);
    tcase_add_test(tc, test_strings_refused);
    tcase_add_test(tc, test_ints);
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
