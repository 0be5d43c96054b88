/* test_envelope.c: the envelope codec. JSON inputs sit at the end of a page
 * followed by a PROT_NONE page, so any read past the given length crashes;
 * AMQP properties are built in memory, no broker needed. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_framing.h>

#include "envelope.h"
#include "json.h"

#define TEST_ID "0123456789ABCDEFGHIJabcdefghij-_"

/* guarded_from_json runs envelope_from_json on a copy of json (n bytes)
 * that ends right before an inaccessible page. */
static int guarded_from_json(struct envelope *e, const char *json, size_t n, struct env_error *err)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t pages = (n + pg - 1) / pg;
    size_t maplen = (pages + 1) * pg;
    char *map = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    ck_assert_ptr_ne(map, MAP_FAILED);
    ck_assert_int_eq(mprotect(map + pages * pg, pg, PROT_NONE), 0);
    char *p = map + pages * pg - n;
    memcpy(p, json, n);
    int rc = envelope_from_json(e, p, n, err);
    ck_assert_int_eq(munmap(map, maplen), 0);
    return rc;
}

static int parse(struct envelope *e, const char *json, struct env_error *err)
{
    return guarded_from_json(e, json, strlen(json), err);
}

/* repeat returns a malloc'd string: prefix, n copies of unit, suffix. */
static char *repeat(const char *prefix, const char *unit, size_t n, const char *suffix)
{
    size_t lp = strlen(prefix), lu = strlen(unit), ls = strlen(suffix);
    char *s = malloc(lp + lu * n + ls + 1);
    ck_assert_ptr_nonnull(s);
    memcpy(s, prefix, lp);
    for (size_t i = 0; i < n; i++)
        memcpy(s + lp + i * lu, unit, lu);
    memcpy(s + lp + lu * n, suffix, ls + 1);
    return s;
}

START_TEST(test_all_fields)
{
    struct envelope e;
    struct env_error err;
    const char *doc = "{\"route\":\"orders.v2_x-y\",\"method\":\"patch\",\"path\":\"/orders/42\","
                      "\"query\":\"?a=1&b=2\",\"headers\":{\"X-B\":\"2\",\"content-type\":"
                      "\"application/vnd.x+json\",\"X-A\":\"\",\"Cookie\":\"c=1\"},"
                      "\"body\":{\"a\":[1,2.5,null],\"b\":\"x/y\"},\"priority\":\"high\","
                      "\"idempotency_key\":\"key 1~\",\"timeout_ms\":600000,\"max_attempts\":100}";

    envelope_init(&e);
    ck_assert_int_eq(parse(&e, doc, &err), 0);
    ck_assert_str_eq(e.route, "orders.v2_x-y");
    ck_assert_str_eq(e.method, "PATCH");
    ck_assert_str_eq(e.path, "/orders/42");
    ck_assert_str_eq(e.query, "a=1&b=2");
    ck_assert_uint_eq(e.n_headers, 3);
    ck_assert_str_eq(e.headers[0].name, "X-B");
    ck_assert_str_eq(e.headers[0].value, "2");
    ck_assert_str_eq(e.headers[1].name, "X-A");
    ck_assert_str_eq(e.headers[1].value, "");
    ck_assert_str_eq(e.headers[2].name, "Cookie");
    ck_assert_str_eq(e.content_type, "application/vnd.x+json");
    ck_assert_uint_eq(e.body_len, strlen("{\"a\":[1,2.5,null],\"b\":\"x/y\"}"));
    ck_assert_str_eq((char *)e.body, "{\"a\":[1,2.5,null],\"b\":\"x/y\"}");
    ck_assert_int_eq(e.priority, 9);
    ck_assert_str_eq(e.idempotency_key, "key 1~");
    ck_assert_int_eq(e.timeout_ms, 600000);
    ck_assert_int_eq(e.max_attempts, 100);
    envelope_free(&e);
}
END_TEST

START_TEST(test_defaults)
{
    struct envelope e;
    struct env_error err;

    envelope_init(&e);
    ck_assert_int_eq(parse(&e, " {\"route\":\"r\"} ", &err), 0);
    ck_assert_str_eq(e.route, "r");
    ck_assert_str_eq(e.method, "POST");
    ck_assert_str_eq(e.path, "/");
    ck_assert_ptr_null(e.query);
    ck_assert_uint_eq(e.n_headers, 0);
    ck_assert_ptr_null(e.content_type);
    ck_assert_ptr_null(e.body);
    ck_assert_uint_eq(e.body_len, 0);
    ck_assert_int_eq(e.priority, ENV_PRIORITY_DEFAULT);
    ck_assert_ptr_null(e.idempotency_key);
    ck_assert_int_eq(e.timeout_ms, 0);
    ck_assert_int_eq(e.max_attempts, 0);
    envelope_free(&e);

    /* A bare '?' is no query at all. */
    envelope_init(&e);
    ck_assert_int_eq(parse(&e, "{\"route\":\"r\",\"query\":\"?\"}", &err), 0);
    ck_assert_ptr_null(e.query);
    envelope_free(&e);
}
END_TEST

/* from_json leaves the ingress-owned identity alone, and a refused document
 * leaves the envelope exactly as it was. */
START_TEST(test_identity_and_failure_keep_state)
{
    struct envelope e;
    struct env_error err;

    envelope_init(&e);
    memcpy(e.id, TEST_ID, sizeof e.id);
    e.tenant = strdup("acme");
    e.created_ms = 1700000000123;
    e.attempts = 2;
    ck_assert_int_eq(parse(&e, "{\"route\":\"old\",\"body_text\":\"x\"}", &err), 0);
    ck_assert_int_eq(parse(&e, "{\"route\":\"new\",\"priority\":10}", &err), -1);
    ck_assert_str_eq(e.route, "old");
    ck_assert_str_eq((char *)e.body, "x");
    ck_assert_int_eq(parse(&e, "{\"route\":\"new\"}", &err), 0);
    ck_assert_str_eq(e.route, "new");
    ck_assert_ptr_null(e.body);
    ck_assert_ptr_null(e.content_type);
    ck_assert_str_eq(e.id, TEST_ID);
    ck_assert_str_eq(e.tenant, "acme");
    ck_assert_int_eq(e.created_ms, 1700000000123);
    ck_assert_int_eq(e.attempts, 2);
    envelope_free(&e);
}
END_TEST

static const struct bad_doc {
    const char *json;
    const char *code;
    const char *msg;
} BAD_DOCS[] = {
    {"", "invalid_json", "invalid JSON"},
    {"{", "invalid_json", "invalid JSON"},
    {"{\"route\":\"r\"} x", "invalid_json", "invalid JSON"},
    {"{\"route\":\"r\",}", "invalid_json", "invalid JSON"},
    {"{\"route\":\"\xff\"}", "invalid_json", "invalid JSON"},
    {"null", "invalid_json", "invalid JSON"},
    {"[1]", "invalid_json", "JSON object"},
    {"\"route\"", "invalid_json", "JSON object"},
    /* json-c lets these through; the strict reader does not (issue 11). */
    {"{\"route\":\"a\",\"route\":\"b\"}", "invalid_json",
     "invalid JSON: duplicate key \"route\" at offset 13"},
    {"{\"route\":\"r\",\"body\":{\"x\":{\"y\":1,\"y\":2}}}", "invalid_json",
     "duplicate key \"y\" at offset 32"},
    {"{\"route\":\"r\",\"body\":\"\\ud800\"}", "invalid_json", "lone surrogate escape"},
    {"{\"route\":\"r\",\"body_text\":\"a\\udc00\"}", "invalid_json", "lone surrogate escape"},
    {"{\"route\":\"r\",\"body\":1.}", "invalid_json", "a digit after its point at offset 20"},
    {"{\"route\":\"r\",\"body\":-.5}", "invalid_json", "a digit before its point"},
    {"{\"route\":\"r\",\"body\":-00}", "invalid_json", "leading zero in a number"},
    {"{\"route\":\"r\",\"path\":\"/a\tb\"}", "invalid_json", "raw control character"},
    {"{}", "invalid_request", "route: is required"},
    {"{\"route\":\"r\",\"colour\":1}", "invalid_request", "colour: unknown field"},
    {"{\"route\":\"r\",\"Route\":\"r\"}", "invalid_request", "Route: unknown field"},
    {"{\"route\":\"\"}", "invalid_request", "route: must be 1..64"},
    {"{\"route\":\"a b\"}", "invalid_request", "route: must be 1..64"},
    {"{\"route\":\"a/b\"}", "invalid_request", "route: must be 1..64"},
    {"{\"route\":5}", "invalid_request", "route: must be a string"},
    {"{\"route\":null}", "invalid_request", "route: must be a string"},
    {"{\"route\":\"r\",\"method\":\"\"}", "invalid_request",
     "method: must be an HTTP token of 1..32 characters"},
    {"{\"route\":\"r\",\"method\":\"GE T\"}", "invalid_request", "method: must be an HTTP token"},
    {"{\"route\":\"r\",\"method\":\"ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG\"}", "invalid_request",
     "method: must be"},
    {"{\"route\":\"r\",\"method\":[\"GET\"]}", "invalid_request", "method: must be a string"},
    {"{\"route\":\"r\",\"path\":\"orders\"}", "invalid_request", "path: must start with '/'"},
    {"{\"route\":\"r\",\"path\":\"\"}", "invalid_request", "path: must start with '/'"},
    {"{\"route\":\"r\",\"path\":\"/a b\"}", "invalid_request", "path: must not contain spaces"},
    {"{\"route\":\"r\",\"path\":\"/a#b\"}", "invalid_request", "path: must not contain"},
    {"{\"route\":\"r\",\"path\":\"/a\\tb\"}", "invalid_request", "path: must not contain"},
    {"{\"route\":\"r\",\"path\":\"/a\\u0000b\"}", "invalid_request", "path: must not contain"},
    {"{\"route\":\"r\",\"path\":\"/a\\u007f\"}", "invalid_request", "path: must not contain"},
    {"{\"route\":\"r\",\"query\":\"a b\"}", "invalid_request", "query: must not contain"},
    {"{\"route\":\"r\",\"query\":\"?a#b\"}", "invalid_request", "query: must not contain"},
    {"{\"route\":\"r\",\"headers\":[]}", "invalid_request", "headers: must be an object"},
    {"{\"route\":\"r\",\"headers\":{\"X-A\":1}}", "invalid_request",
     "headers.X-A: must be a string"},
    {"{\"route\":\"r\",\"headers\":{\"X-A\":null}}", "invalid_request", "headers.X-A: must be"},
    {"{\"route\":\"r\",\"headers\":{\"Host\":\"h\"}}", "invalid_request",
     "headers.Host: this header may not be forwarded"},
    {"{\"route\":\"r\",\"headers\":{\"authorization\":\"x\"}}", "invalid_request",
     "headers.authorization: this header may not"},
    {"{\"route\":\"r\",\"headers\":{\"X-Sluice-Tenant\":\"t\"}}", "invalid_request",
     "headers.X-Sluice-Tenant: this header"},
    {"{\"route\":\"r\",\"headers\":{\"X A\":\"b\"}}", "invalid_request",
     "headers: invalid header name \"X A\""},
    {"{\"route\":\"r\",\"headers\":{\"\":\"b\"}}", "invalid_request", "invalid header name"},
    {"{\"route\":\"r\",\"headers\":{\"X-\\u00e9\":\"b\"}}", "invalid_request",
     "invalid header name"},
    {"{\"route\":\"r\",\"headers\":{\"X-A\":\"a\\r\\nX-B: c\"}}", "invalid_request",
     "headers.X-A: must not contain CR, LF or NUL"},
    {"{\"route\":\"r\",\"headers\":{\"X-A\":\"a\\nb\"}}", "invalid_request",
     "headers.X-A: must not"},
    {"{\"route\":\"r\",\"headers\":{\"X-A\":\"a\\u0000b\"}}", "invalid_request",
     "headers.X-A: must not"},
    {"{\"route\":\"r\",\"headers\":{\"Content-Type\":\"a\\rb\"}}", "invalid_request",
     "headers.Content-Type: must not contain CR"},
    {"{\"route\":\"r\",\"body\":1,\"body_text\":\"x\"}", "invalid_request",
     "body_text: only one of body, body_text and body_base64"},
    {"{\"route\":\"r\",\"body_base64\":\"\",\"body\":null}", "invalid_request",
     "body: only one of"},
    {"{\"route\":\"r\",\"body_text\":\"\",\"body_base64\":\"\"}", "invalid_request",
     "body_base64: only one of"},
    {"{\"route\":\"r\",\"body_text\":5}", "invalid_request", "body_text: must be a string"},
    {"{\"route\":\"r\",\"body_base64\":{}}", "invalid_request", "body_base64: must be a string"},
    {"{\"route\":\"r\",\"body_base64\":\"A\"}", "invalid_request",
     "body_base64: invalid base64 (bad length)"},
    {"{\"route\":\"r\",\"body_base64\":\"AAAAA\"}", "invalid_request", "(bad length)"},
    {"{\"route\":\"r\",\"body_base64\":\"AB=\"}", "invalid_request", "(bad padding)"},
    {"{\"route\":\"r\",\"body_base64\":\"A===\"}", "invalid_request", "(bad padding)"},
    {"{\"route\":\"r\",\"body_base64\":\"====\"}", "invalid_request", "(bad padding)"},
    {"{\"route\":\"r\",\"body_base64\":\"=\"}", "invalid_request", "(bad padding)"},
    {"{\"route\":\"r\",\"body_base64\":\"A=A=\"}", "invalid_request", "(unexpected character)"},
    {"{\"route\":\"r\",\"body_base64\":\"AA==AA==\"}", "invalid_request", "(unexpected character)"},
    {"{\"route\":\"r\",\"body_base64\":\"QUJD REVG\"}", "invalid_request",
     "(unexpected character)"},
    {"{\"route\":\"r\",\"body_base64\":\"QUJD\\nREVG\"}", "invalid_request", "(unexpected char"},
    {"{\"route\":\"r\",\"body_base64\":\"QUJD*EVG\"}", "invalid_request", "(unexpected character)"},
    {"{\"route\":\"r\",\"body_base64\":\"QR==\"}", "invalid_request", "(non-zero trailing bits)"},
    {"{\"route\":\"r\",\"body_base64\":\"QUJ\"}", "invalid_request", "(non-zero trailing bits)"},
    {"{\"route\":\"r\",\"priority\":10}", "invalid_request",
     "priority: must be 0..9 or high, normal, low"},
    {"{\"route\":\"r\",\"priority\":-1}", "invalid_request", "priority: must be 0..9"},
    {"{\"route\":\"r\",\"priority\":1.5}", "invalid_request", "priority: must be 0..9"},
    {"{\"route\":\"r\",\"priority\":5.0}", "invalid_request", "priority: must be 0..9"},
    {"{\"route\":\"r\",\"priority\":true}", "invalid_request", "priority: must be 0..9"},
    {"{\"route\":\"r\",\"priority\":\"urgent\"}", "invalid_request", "priority: must be 0..9"},
    {"{\"route\":\"r\",\"priority\":\"\"}", "invalid_request", "priority: must be 0..9"},
    {"{\"route\":\"r\",\"priority\":null}", "invalid_request", "priority: must be 0..9"},
    {"{\"route\":\"r\",\"idempotency_key\":\"\"}", "invalid_request",
     "idempotency_key: must be 1..255 printable ASCII"},
    {"{\"route\":\"r\",\"idempotency_key\":\"a\\u0001\"}", "invalid_request", "idempotency_key:"},
    {"{\"route\":\"r\",\"idempotency_key\":\"caf\\u00e9\"}", "invalid_request", "idempotency_key:"},
    {"{\"route\":\"r\",\"idempotency_key\":7}", "invalid_request",
     "idempotency_key: must be a str"},
    {"{\"route\":\"r\",\"callback_url\":\"http://a b\"}", "invalid_request",
     "callback_url: must be an http:// or https:// URL"},
    {"{\"route\":\"r\",\"callback_url\":5}", "invalid_request", "callback_url: must be a str"},
    {"{\"route\":\"r\",\"headers\":{\"X-Callback-Url\":\"http://h/\"}}", "invalid_request",
     "headers.X-Callback-Url: this header may not be forwarded"},
    {"{\"route\":\"r\",\"timeout_ms\":0}", "invalid_request",
     "timeout_ms: must be an integer 1..600000"},
    {"{\"route\":\"r\",\"timeout_ms\":600001}", "invalid_request",
     "timeout_ms: must be an integer"},
    {"{\"route\":\"r\",\"timeout_ms\":1.5}", "invalid_request", "timeout_ms: must be an integer"},
    {"{\"route\":\"r\",\"timeout_ms\":1e3}", "invalid_request", "timeout_ms: must be an integer"},
    {"{\"route\":\"r\",\"timeout_ms\":\"100\"}", "invalid_request", "timeout_ms: must be an int"},
    {"{\"route\":\"r\",\"timeout_ms\":true}", "invalid_request", "timeout_ms: must be an integer"},
    {"{\"route\":\"r\",\"max_attempts\":0}", "invalid_request",
     "max_attempts: must be an integer 1..100"},
    {"{\"route\":\"r\",\"max_attempts\":-3}", "invalid_request", "max_attempts: must be"},
    {"{\"route\":\"r\",\"max_attempts\":101}", "invalid_request", "max_attempts: must be"},
    {"{\"route\":\"r\",\"max_attempts\":4294967297}", "invalid_request", "max_attempts: must be"},
    {"{\"route\":\"r\",\"max_attempts\":99999999999999999999}", "invalid_request",
     "max_attempts: must be"},
    {"{\"route\":\"r\",\"max_attempts\":-99999999999999999999}", "invalid_request",
     "max_attempts: must be"},
    {"{\"route\":\"r\",\"max_attempts\":false}", "invalid_request", "max_attempts: must be"},
};

START_TEST(test_bad_document)
{
    const struct bad_doc *d = &BAD_DOCS[_i];
    struct envelope e;
    struct env_error err;

    envelope_init(&e);
    memset(&err, 0, sizeof err);
    ck_assert_msg(parse(&e, d->json, &err) == -1, "accepted: %s", d->json);
    ck_assert_int_eq(err.status, 400);
    ck_assert_ptr_nonnull(err.code);
    ck_assert_str_eq(err.code, d->code);
    ck_assert_msg(strstr(err.message, d->msg), "%s: message \"%s\" lacks \"%s\"", d->json,
                  err.message, d->msg);
    ck_assert_ptr_null(e.route);
    envelope_free(&e);
}
END_TEST

/* Documents too long to write out: limits at their edge and one past. */
START_TEST(test_limits)
{
    struct {
        char *json;
        int rc;
        const char *msg;
    } cases[] = {
        {repeat("{\"route\":\"", "r", 64, "\"}"), 0, NULL},
        {repeat("{\"route\":\"", "r", 65, "\"}"), -1, "route: must be 1..64"},
        {repeat("{\"route\":\"r\",\"method\":\"", "g", ENV_MAX_METHOD, "\"}"), 0, NULL},
        {repeat("{\"route\":\"r\",\"method\":\"", "g", ENV_MAX_METHOD + 1, "\"}"), -1,
         "method: must be an HTTP token"},
        {repeat("{\"route\":\"r\",\"path\":\"/", "p", ENV_MAX_PATH - 1, "\"}"), 0, NULL},
        {repeat("{\"route\":\"r\",\"path\":\"/", "p", ENV_MAX_PATH, "\"}"), -1,
         "path: must be at most 8192 bytes"},
        {repeat("{\"route\":\"r\",\"query\":\"?", "q", ENV_MAX_PATH, "\"}"), 0, NULL},
        {repeat("{\"route\":\"r\",\"query\":\"", "q", ENV_MAX_PATH + 1, "\"}"), -1,
         "query: must be at most 8192 bytes"},
        {repeat("{\"route\":\"r\",\"idempotency_key\":\"", "k", 255, "\"}"), 0, NULL},
        {repeat("{\"route\":\"r\",\"idempotency_key\":\"", "k", 256, "\"}"), -1,
         "idempotency_key: must be 1..255"},
        {repeat("{\"route\":\"r\",\"headers\":{\"X-A\":\"", "v", ENV_MAX_HEADER_VALUE, "\"}}"), 0,
         NULL},
        {repeat("{\"route\":\"r\",\"headers\":{\"X-A\":\"", "v", ENV_MAX_HEADER_VALUE + 1, "\"}}"),
         -1, "headers.X-A: must be at most 8192 bytes"},
        {repeat("{\"route\":\"r\",\"headers\":{\"content-type\":\"", "c", ENV_MAX_CONTENT_TYPE,
                "\"}}"),
         0, NULL},
        {repeat("{\"route\":\"r\",\"headers\":{\"content-type\":\"", "c", ENV_MAX_CONTENT_TYPE + 1,
                "\"}}"),
         -1, "headers.Content-Type: must be at most 255 bytes"},
        {repeat("{\"route\":\"r\",\"headers\":{\"", "n", ENV_MAX_HEADER_NAME, "\":\"v\"}}"), 0,
         NULL},
        {repeat("{\"route\":\"r\",\"headers\":{\"", "n", ENV_MAX_HEADER_NAME + 1, "\":\"v\"}}"), -1,
         "headers: invalid header name"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct envelope e;
        struct env_error err;
        envelope_init(&e);
        int rc = parse(&e, cases[i].json, &err);
        ck_assert_msg(rc == cases[i].rc, "case %zu: rc %d", i, rc);
        if (rc < 0)
            ck_assert_msg(strstr(err.message, cases[i].msg), "case %zu: %s", i, err.message);
        envelope_free(&e);
        free(cases[i].json);
    }
}
END_TEST

static char *headers_doc(int n)
{
    char *doc = malloc(32 + (size_t)n * 16);
    size_t off = (size_t)snprintf(doc, 32, "{\"route\":\"r\",\"headers\":{");
    ck_assert_ptr_nonnull(doc);
    for (int i = 0; i < n; i++)
        off += (size_t)snprintf(doc + off, 16, "%s\"X-%d\":\"v\"", i ? "," : "", i);
    snprintf(doc + off, 4, "}}");
    return doc;
}

START_TEST(test_header_count)
{
    struct envelope e;
    struct env_error err;
    char *ok = headers_doc(ENV_MAX_HEADERS), *bad = headers_doc(ENV_MAX_HEADERS + 1);

    envelope_init(&e);
    ck_assert_int_eq(parse(&e, ok, &err), 0);
    ck_assert_uint_eq(e.n_headers, ENV_MAX_HEADERS);
    ck_assert_str_eq(e.headers[ENV_MAX_HEADERS - 1].name, "X-63");
    ck_assert_int_eq(parse(&e, bad, &err), -1);
    ck_assert_str_eq(err.message, "headers: at most 64 headers are allowed");
    envelope_free(&e);
    free(ok);
    free(bad);
}
END_TEST

/* A message built from a long multi-byte name is cut on a character boundary. */
START_TEST(test_message_truncated_on_utf8_boundary)
{
    for (size_t n = 150; n < 154; n++) {
        char *doc = repeat("{\"route\":\"r\",\"x", "\xe2\x82\xac", n, "\":1}");
        struct envelope e;
        struct env_error err;
        envelope_init(&e);
        ck_assert_int_eq(parse(&e, doc, &err), -1);
        ck_assert_uint_ge(strlen(err.message), sizeof err.message - 4);
        ck_assert(json_utf8_valid(err.message, strlen(err.message)));
        envelope_free(&e);
        free(doc);
    }
}
END_TEST

START_TEST(test_priority_values)
{
    static const struct {
        const char *json;
        int priority;
    } cases[] = {
        {"{\"route\":\"r\",\"priority\":0}", 0},
        {"{\"route\":\"r\",\"priority\":9}", 9},
        {"{\"route\":\"r\",\"priority\":\"low\"}", 1},
        {"{\"route\":\"r\",\"priority\":\"normal\"}", 5},
        {"{\"route\":\"r\",\"priority\":\"7\"}", 7},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct envelope e;
        struct env_error err;
        envelope_init(&e);
        ck_assert_int_eq(parse(&e, cases[i].json, &err), 0);
        ck_assert_int_eq(e.priority, cases[i].priority);
        envelope_free(&e);
    }
}
END_TEST

START_TEST(test_parse_priority)
{
    for (int i = 0; i <= 9; i++) {
        char s[2] = {(char)('0' + i), 'x'};
        ck_assert_int_eq(envelope_parse_priority(s, 1), i);
    }
    ck_assert_int_eq(envelope_parse_priority("high", 4), 9);
    ck_assert_int_eq(envelope_parse_priority("HIGH", 4), 9);
    ck_assert_int_eq(envelope_parse_priority("normal", 6), 5);
    ck_assert_int_eq(envelope_parse_priority("low", 3), 1);
    ck_assert_int_eq(envelope_parse_priority("high", 3), -1);
    ck_assert_int_eq(envelope_parse_priority("lowest", 6), -1);
    ck_assert_int_eq(envelope_parse_priority("10", 2), -1);
    ck_assert_int_eq(envelope_parse_priority("-1", 2), -1);
    ck_assert_int_eq(envelope_parse_priority(" 5", 2), -1);
    ck_assert_int_eq(envelope_parse_priority("5", 0), -1);
    ck_assert_int_eq(envelope_parse_priority(NULL, 0), -1);
}
END_TEST

START_TEST(test_header_forwarded)
{
    static const char *const blocked[] = {
        "Authorization",   "proxy-authorization", "HOST",       "Content-Length",  "connection",
        "Keep-Alive",      "Transfer-Encoding",   "te",         "Trailer",         "Upgrade",
        "Expect",          "Proxy-Connection",    "x-priority", "Idempotency-Key", "X-Sluice-",
        "x-sluice-tenant",
    };
    static const char *const allowed[] = {
        "Cookie",   "Content-Type", "Accept",         "X-A", "TE2", "Hosts",
        "X-Sluice", "X-Sluicer",    "Authorization2",
    };
    for (size_t i = 0; i < sizeof blocked / sizeof blocked[0]; i++)
        ck_assert_msg(!envelope_header_forwarded(blocked[i]), "%s forwarded", blocked[i]);
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
        ck_assert_msg(envelope_header_forwarded(allowed[i]), "%s blocked", allowed[i]);
    ck_assert(!envelope_header_forwarded(NULL));
}
END_TEST

START_TEST(test_body_json)
{
    static const struct {
        const char *body;
        const char *stored;
    } cases[] = {
        {"null", "null"},
        {"false", "false"},
        {"1.5", "1.5"},
        {"-7", "-7"},
        {"[ ]", "[]"},
        {"\"a/b\\u00e9\"", "\"a/b\xc3\xa9\""},
        {"{ \"k\" : [ true , { } ] }", "{\"k\":[true,{}]}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char doc[128];
        struct envelope e;
        struct env_error err;
        snprintf(doc, sizeof doc, "{\"route\":\"r\",\"body\":%s}", cases[i].body);
        envelope_init(&e);
        ck_assert_msg(parse(&e, doc, &err) == 0, "%s: %s", doc, err.message);
        ck_assert_uint_eq(e.body_len, strlen(cases[i].stored));
        ck_assert_mem_eq(e.body, cases[i].stored, e.body_len);
        ck_assert_str_eq(e.content_type, "application/json");
        envelope_free(&e);
    }
}
END_TEST

START_TEST(test_body_text)
{
    struct envelope e;
    struct env_error err;

    envelope_init(&e);
    ck_assert_int_eq(parse(&e, "{\"route\":\"r\",\"body_text\":\"a\\u0000\\\"b\\u20ac\"}", &err),
                     0);
    ck_assert_uint_eq(e.body_len, 7);
    ck_assert_mem_eq(e.body, "a\0\"b\xe2\x82\xac", 7);
    ck_assert_str_eq(e.content_type, "text/plain; charset=utf-8");
    ck_assert_int_eq(parse(&e, "{\"route\":\"r\",\"body_text\":\"\"}", &err), 0);
    ck_assert_ptr_null(e.body);
    ck_assert_uint_eq(e.body_len, 0);
    ck_assert_str_eq(e.content_type, "text/plain; charset=utf-8");
    /* An explicit Content-Type wins over the default, in either order. */
    ck_assert_int_eq(parse(&e,
                           "{\"headers\":{\"CONTENT-TYPE\":\"text/csv\"},\"body_text\":\"a,b\","
                           "\"route\":\"r\"}",
                           &err),
                     0);
    ck_assert_str_eq(e.content_type, "text/csv");
    ck_assert_uint_eq(e.n_headers, 0);
    envelope_free(&e);
}
END_TEST

static const struct b64_case {
    const char *in;
    const char *out;
    size_t len;
} B64_CASES[] = {
    {"", "", 0},
    {"AA==", "\0", 1},
    {"AA", "\0", 1},
    {"AAA=", "\0\0", 2},
    {"AAA", "\0\0", 2},
    {"AAAA", "\0\0\0", 3},
    {"aGVsbG8=", "hello", 5},
    {"aGVsbG8", "hello", 5},
    {"aGVsbG8h", "hello!", 6},
    {"/+8A", "\xff\xef\0", 3},
    {"_-8A", "\xff\xef\0", 3},
    {"AAECAwD/", "\0\1\2\3\0\xff", 6},
    {"AAECAwD_", "\0\1\2\3\0\xff", 6},
};

START_TEST(test_body_base64)
{
    const struct b64_case *t = &B64_CASES[_i];
    char doc[128];
    struct envelope e;
    struct env_error err;

    snprintf(doc, sizeof doc, "{\"route\":\"r\",\"body_base64\":\"%s\"}", t->in);
    envelope_init(&e);
    ck_assert_msg(parse(&e, doc, &err) == 0, "%s: %s", t->in, err.message);
    ck_assert_uint_eq(e.body_len, t->len);
    if (t->len)
        ck_assert_mem_eq(e.body, t->out, t->len);
    else
        ck_assert_ptr_null(e.body);
    ck_assert_str_eq(e.content_type, "application/octet-stream");
    envelope_free(&e);
}
END_TEST

/* ---- the builder both submission forms end in ---- */

/* expand returns a malloc'd copy of s in which one "{c*N}" stands for N
 * copies of c, so the table below can say "/{p*9000}"; NULL stays NULL. */
static char *expand(const char *s)
{
    if (!s) return NULL;
    const char *open = strstr(s, "{"), *star = open ? strchr(open, '*') : NULL;
    if (!open || !star || star != open + 2) return strdup(s);
    char *end;
    size_t n = (size_t)strtoul(star + 1, &end, 10);
    ck_assert_int_eq(*end, '}');
    char unit[2] = {open[1], '\0'}, *head = strndup(s, (size_t)(open - s));
    char *out = repeat(head, unit, n, end + 1);
    free(head);
    return out;
}

/* A request as the transparent form gets it: "Name: value" header lines. */
struct req_case {
    enum env_form form;
    const char *method, *path, *query, *ctype, *idem, *prio;
    const char *headers[4];
    const char *msg; /* the refusal's message starts so; NULL: accepted */
};

static const struct req_case REQ_CASES[] = {
#define T ENV_FORM_TRANSPARENT
#define E ENV_FORM_ENVELOPE
    {T, "GET", "/x", "a=1", NULL, NULL, NULL, {NULL}, NULL},
    {T, "M-SEARCH", "/", NULL, NULL, NULL, NULL, {NULL}, NULL},
    {T, "{A*21}", "/", NULL, NULL, NULL, NULL, {NULL}, NULL},
    {T, "{A*32}", "/", NULL, NULL, NULL, NULL, {NULL}, NULL},
    {T, "x!#$%&'*+-.^_`|~9", "/", NULL, NULL, NULL, NULL, {NULL}, NULL},
    {T, "{A*33}", "/", NULL, NULL, NULL, NULL, {NULL}, "method: must be an HTTP token"},
    {T, "", "/", NULL, NULL, NULL, NULL, {NULL}, "method: must be an HTTP token"},
    {T, "GET/", "/", NULL, NULL, NULL, NULL, {NULL}, "method: must be"},
    {T, "GE\"T", "/", NULL, NULL, NULL, NULL, {NULL}, "method: must be"},
    {T, "G\xc3\x89T", "/", NULL, NULL, NULL, NULL, {NULL}, "method: must be"},
    {T, "POST", "/a#b", NULL, NULL, NULL, NULL, {NULL}, "path: must not contain"},
    {T, "POST", "/{p*8191}", NULL, NULL, NULL, NULL, {NULL}, NULL},
    {T, "POST", "/{p*8192}", NULL, NULL, NULL, NULL, {NULL}, "path: must be at most 8192 bytes"},
    {T, "POST", "/{p*9000}", NULL, NULL, NULL, NULL, {NULL}, "path: must be at most 8192 bytes"},
    {T, "POST", "x", NULL, NULL, NULL, NULL, {NULL}, "path: must start with '/'"},
    {T, "GET", "/..", NULL, NULL, NULL, NULL, {NULL}, "path: must not contain dot segments"},
    {T, "GET", "/.", NULL, NULL, NULL, NULL, {NULL}, "path: must not contain dot segments"},
    {T, "GET", "/../x", NULL, NULL, NULL, NULL, {NULL}, "path: must not contain dot segments"},
    {T, "GET", "/./x", NULL, NULL, NULL, NULL, {NULL}, "path: must not contain dot segments"},
    {T, "GET", "/x/..", NULL, NULL, NULL, NULL, {NULL}, "path: must not contain dot segments"},
    {T, "GET", "/x/.", NULL, NULL, NULL, NULL, {NULL}, "path: must not contain dot segments"},
    {T, "GET", "/x/../../y", NULL, NULL, NULL, NULL, {NULL}, "path: must not contain dot segments"},
    {T, "GET", "/x/./y", NULL, NULL, NULL, NULL, {NULL}, "path: must not contain dot segments"},
    {T, "GET", "/%2e%2e/x", NULL, NULL, NULL, NULL, {NULL}, "path: must not contain dot segments"},
    {T, "GET", "/%2E%2e/x", NULL, NULL, NULL, NULL, {NULL}, "path: must not contain dot segments"},
    {T, "GET", "/.%2e/x", NULL, NULL, NULL, NULL, {NULL}, "path: must not contain dot segments"},
    {T, "GET", "/%2e./x", NULL, NULL, NULL, NULL, {NULL}, "path: must not contain dot segments"},
    {T, "GET", "/%2e/x", NULL, NULL, NULL, NULL, {NULL}, "path: must not contain dot segments"},
    {T, "GET", "/%2E", NULL, NULL, NULL, NULL, {NULL}, "path: must not contain dot segments"},
    {T, "GET", "/x/%2e%2E", NULL, NULL, NULL, NULL, {NULL}, "path: must not contain dot segments"},
    {T, "GET", "/..%2fx", NULL, NULL, NULL, NULL, {NULL}, "path: must not contain dot segments"},
    {T, "GET", "/..%2Fx", NULL, NULL, NULL, NULL, {NULL}, "path: must not contain dot segments"},
    {T, "GET", "/..%5cx", NULL, NULL, NULL, NULL, {NULL}, "path: must not contain dot segments"},
    {T, "GET", "/..%5Cx", NULL, NULL, NULL, NULL, {NULL}, "path: must not contain dot segments"},
    {T, "GET", "/..\\x", NULL, NULL, NULL, NULL, {NULL}, "path: must not contain dot segments"},
    {T, "GET", "/x\\..\\y", NULL, NULL, NULL, NULL, {NULL}, "path: must not contain dot segments"},
    {T,
     "GET",
     "/x%2f..%2fy",
     NULL,
     NULL,
     NULL,
     NULL,
     {NULL},
     "path: must not contain dot segments"},
    {T, "GET", "/..;/x", NULL, NULL, NULL, NULL, {NULL}, "path: must not contain dot segments"},
    {T, "GET", "/.;x", NULL, NULL, NULL, NULL, {NULL}, "path: must not contain dot segments"},
    {T, "GET", "/x/..;", NULL, NULL, NULL, NULL, {NULL}, "path: must not contain dot segments"},
    {T, "GET", "//../x", NULL, NULL, NULL, NULL, {NULL}, "path: must not contain dot segments"},
    {T, "GET", "/x//./y", NULL, NULL, NULL, NULL, {NULL}, "path: must not contain dot segments"},
    {E,
     "GET",
     "/x/%2e%2e/y",
     NULL,
     NULL,
     NULL,
     NULL,
     {NULL},
     "path: must not contain dot segments"},
    {T, "GET", "/...", "..", NULL, NULL, NULL, {NULL}, NULL},
    {T, "GET", "/.../x", "..", NULL, NULL, NULL, {NULL}, NULL},
    {T, "GET", "/a..b", "..", NULL, NULL, NULL, {NULL}, NULL},
    {T, "GET", "/..a", "..", NULL, NULL, NULL, {NULL}, NULL},
    {T, "GET", "/a..", "..", NULL, NULL, NULL, {NULL}, NULL},
    {T, "GET", "/.well-known/x", "..", NULL, NULL, NULL, {NULL}, NULL},
    {T, "GET", "/%2e%2e%2e", "..", NULL, NULL, NULL, {NULL}, NULL},
    {T, "GET", "/x.%2e.y", "..", NULL, NULL, NULL, {NULL}, NULL},
    {T, "GET", "/%2ex", "..", NULL, NULL, NULL, {NULL}, NULL},
    {T, "GET", "/x%2e", "..", NULL, NULL, NULL, {NULL}, NULL},
    {T, "GET", "/x/.a/b.", "..", NULL, NULL, NULL, {NULL}, NULL},
    {T, "GET", "/%2", "..", NULL, NULL, NULL, {NULL}, NULL},
    {T, "GET", "/%2e%2", "..", NULL, NULL, NULL, {NULL}, NULL},
    {T, "GET", "/%", "..", NULL, NULL, NULL, {NULL}, NULL},
    {T, "GET", "/x;/..y", "..", NULL, NULL, NULL, {NULL}, NULL},
    {T, "GET", "/a%2e%2e", "..", NULL, NULL, NULL, {NULL}, NULL},
    {T, "POST", "/", "{q*8192}", NULL, NULL, NULL, {NULL}, NULL},
    {T, "POST", "/", "{q*9000}", NULL, NULL, NULL, {NULL}, "query: must be at most 8192 bytes"},
    {T, "POST", "/", "a#b", NULL, NULL, NULL, {NULL}, "query: must not contain"},
    {T, "POST", "/", NULL, NULL, "{k*255}", NULL, {NULL}, NULL},
    {T,
     "POST",
     "/",
     NULL,
     NULL,
     "{k*256}",
     NULL,
     {NULL},
     "Idempotency-Key: must be 1..255 printable ASCII"},
    {T, "POST", "/", NULL, NULL, "caf\xc3\xa9", NULL, {NULL}, "Idempotency-Key: must be 1..255"},
    {T, "POST", "/", NULL, NULL, "", NULL, {NULL}, "Idempotency-Key: must be 1..255"},
    {E, "POST", "/", NULL, NULL, "{k*256}", NULL, {NULL}, "idempotency_key: must be 1..255"},
    {T, "POST", "/", NULL, NULL, NULL, "HIGH", {NULL}, NULL},
    {T, "POST", "/", NULL, NULL, NULL, "urgent", {NULL}, "X-Priority: must be 0..9"},
    {E, "POST", "/", NULL, NULL, NULL, "10", {NULL}, "priority: must be 0..9"},
    {T, "POST", "/", NULL, "a\rb", NULL, NULL, {NULL}, "Content-Type: must not contain CR"},
    {E, "POST", "/", NULL, "a\rb", NULL, NULL, {NULL}, "headers.Content-Type: must not contain"},
    {T, "POST", "/", NULL, "{c*255}", NULL, NULL, {NULL}, NULL},
    {T,
     "POST",
     "/",
     NULL,
     "{c*256}",
     NULL,
     NULL,
     {NULL},
     "Content-Type: must be at most 255 bytes"},
    {T,
     "POST",
     "/",
     NULL,
     "{c*300}",
     NULL,
     NULL,
     {NULL},
     "Content-Type: must be at most 255 bytes"},
    {E, "POST", "/", NULL, "{c*300}", NULL, NULL, {NULL}, "headers.Content-Type: must be at most"},
    {T, "POST", "/", NULL, NULL, NULL, NULL, {"{n*255}: v"}, NULL},
    {T, "POST", "/", NULL, NULL, NULL, NULL, {"{n*256}: v"}, "headers: invalid header name \"nnn"},
    {E, "POST", "/", NULL, NULL, NULL, NULL, {"{n*256}: v"}, "headers: invalid header name"},
    {T,
     "POST",
     "/",
     NULL,
     NULL,
     NULL,
     NULL,
     {"X\xc3\xa9: v"},
     "headers: invalid header name \"X??\""},
    {T, "POST", "/", NULL, NULL, NULL, NULL, {"X A: v"}, "headers: invalid header name \"X A\""},
    {T, "POST", "/", NULL, NULL, NULL, NULL, {"X-A: a\nb"}, "headers.X-A: must not contain"},
    {T,
     "POST",
     "/",
     NULL,
     NULL,
     NULL,
     NULL,
     {"Authorization: Bearer t", "X-Sluice-Tenant: t"},
     NULL},
    {E,
     "POST",
     "/",
     NULL,
     NULL,
     NULL,
     NULL,
     {"Authorization: Bearer t"},
     "headers.Authorization: this header may not be forwarded"},
#undef T
#undef E
};

/* walk_lines walks a NULL-terminated array of "Name: value" lines. */
static int walk_lines(const void *src, env_header_fn fn, void *ctx)
{
    const char *const *lines = src;
    for (size_t i = 0; lines[i]; i++) {
        const char *colon = strstr(lines[i], ": ");
        ck_assert_ptr_nonnull(colon);
        int rc = fn(ctx, lines[i], (size_t)(colon - lines[i]), colon + 2, strlen(colon + 2));
        if (rc) return rc;
    }
    return 0;
}

static struct env_text text(const char *s)
{
    return (struct env_text){s, s ? strlen(s) : 0};
}

/* decodable builds the message that a request (x: method, path, query,
 * content type, idempotency key; header lines) would make if nothing were
 * checked, and tells whether a worker's decoder takes it. */
static bool decodable(char *const *x, const char *const *lines)
{
    struct envelope e, back;
    struct env_error err;
    amqp_pool_t pool;
    amqp_basic_properties_t props;
    envelope_init(&e);
    memcpy(e.id, TEST_ID, sizeof e.id);
    e.route = strdup("r");
    e.tenant = strdup("t");
    e.method = strdup(x[0]);
    e.path = strdup(x[1]);
    e.query = x[2] ? strdup(x[2]) : NULL;
    e.content_type = x[3] ? strdup(x[3]) : NULL;
    e.idempotency_key = x[4] ? strdup(x[4]) : NULL;
    e.headers = calloc(4, sizeof *e.headers);
    for (size_t i = 0; lines[i]; i++) {
        const char *colon = strstr(lines[i], ": ");
        char *name = strndup(lines[i], (size_t)(colon - lines[i]));
        if (!envelope_header_forwarded(name)) {
            free(name);
            continue;
        }
        e.headers[e.n_headers].name = name;
        e.headers[e.n_headers++].value = strdup(colon + 2);
    }
    init_amqp_pool(&pool, 4096);
    ck_assert_int_eq(envelope_to_amqp(&e, &pool, &props), 0);
    envelope_init(&back);
    int rc = envelope_from_amqp(&back, &props, (amqp_bytes_t){0, NULL}, &err);
    empty_amqp_pool(&pool);
    envelope_free(&back);
    envelope_free(&e);
    return rc == 0;
}

/* Each request is accepted or refused with a message naming the field as
 * its form calls it; and the builder refuses exactly what a worker could not
 * decode (the priority travels as a number, so it is the builder's alone). */
START_TEST(test_request)
{
    const struct req_case *t = &REQ_CASES[_i];
    char *x[] = {expand(t->method),     expand(t->path),       expand(t->query),
                 expand(t->ctype),      expand(t->idem),       expand(t->headers[0]),
                 expand(t->headers[1]), expand(t->headers[2]), NULL};
    const char *lines[] = {x[5], x[6], x[7], NULL};
    struct env_request rq = {
        .form = t->form,
        .route = text("r"),
        .method = text(x[0]),
        .path = text(x[1]),
        .query = text(x[2]),
        .content_type = text(x[3]),
        .idempotency_key = text(x[4]),
        .priority = text(t->prio),
        .walk_headers = walk_lines,
        .headers = lines,
        .body = strdup("body"),
        .body_len = 4,
    };
    struct envelope e;
    struct env_error err = {0};
    envelope_init(&e);
    int rc = envelope_from_request(&e, &rq, &err);
    ck_assert_ptr_null(rq.body);
    if (t->msg) {
        ck_assert_msg(rc == -1, "case %d accepted", _i);
        ck_assert_int_eq(err.status, 400);
        ck_assert_str_eq(err.code, "invalid_request");
        ck_assert_msg(strncmp(err.message, t->msg, strlen(t->msg)) == 0,
                      "case %d: \"%s\" does not start with \"%s\"", _i, err.message, t->msg);
        ck_assert_ptr_null(e.route);
    } else {
        ck_assert_msg(rc == 0, "case %d refused: %s", _i, err.message);
        ck_assert_str_eq(e.route, "r");
        ck_assert_uint_eq(strlen(e.method), strlen(x[0]));
        ck_assert_str_eq(e.path, x[1]);
        ck_assert_str_eq((char *)e.body, "body");
        ck_assert_uint_eq(e.body_len, 4);
    }
    if (!t->prio && t->form == ENV_FORM_TRANSPARENT)
        ck_assert_msg(decodable(x, lines) == (rc == 0), "case %d: the builder says %d", _i, rc);
    envelope_free(&e);
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++)
        free(x[i]);
}
END_TEST

/* The transparent form: the method is upper-cased, headers that may not be
 * forwarded are left out, Content-Type, Idempotency-Key and X-Priority come
 * from their fields, and the identity the ingress gave is kept. */
START_TEST(test_request_fields)
{
    static const char *const lines[] = {"Accept: */*",
                                        "Authorization: Bearer t",
                                        "Content-Type: text/plain",
                                        "Idempotency-Key: k",
                                        "X-Priority: low",
                                        "X-A: a",
                                        "X-Callback-Url: https://h/cb",
                                        NULL};
    struct env_request rq = {
        .form = ENV_FORM_TRANSPARENT,
        .route = text("orders"),
        .method = text("m-search"),
        .path = {"/a/bXXX", 4},
        .query = text("?q=1"),
        .content_type = text("text/plain"),
        .idempotency_key = text("k"),
        .priority = text("low"),
        .callback_url = text("https://h/cb"),
        .walk_headers = walk_lines,
        .headers = lines,
    };
    struct envelope e;
    struct env_error err;
    envelope_init(&e);
    memcpy(e.id, TEST_ID, sizeof e.id);
    e.tenant = strdup("acme");
    e.created_ms = 17;
    ck_assert_int_eq(envelope_from_request(&e, &rq, &err), 0);
    ck_assert_str_eq(e.method, "M-SEARCH");
    ck_assert_str_eq(e.path, "/a/b");
    ck_assert_str_eq(e.query, "q=1");
    ck_assert_str_eq(e.content_type, "text/plain");
    ck_assert_str_eq(e.idempotency_key, "k");
    ck_assert_int_eq(e.priority, 1);
    ck_assert_str_eq(e.callback_url, "https://h/cb");
    ck_assert_uint_eq(e.n_headers, 2);
    ck_assert_str_eq(e.headers[0].name, "Accept");
    ck_assert_str_eq(e.headers[1].name, "X-A");
    ck_assert_ptr_null(e.body);
    ck_assert_str_eq(e.id, TEST_ID);
    ck_assert_str_eq(e.tenant, "acme");
    ck_assert_int_eq(e.created_ms, 17);

    /* Defaults: POST and "/"; an empty body is NULL; a refusal keeps e. */
    struct env_request bare = {
        .form = ENV_FORM_TRANSPARENT, .route = text("r"), .body = strdup(""), .body_len = 0};
    ck_assert_int_eq(envelope_from_request(&e, &bare, &err), 0);
    ck_assert_str_eq(e.method, "POST");
    ck_assert_str_eq(e.path, "/");
    ck_assert_ptr_null(e.query);
    ck_assert_ptr_null(e.body);
    ck_assert_uint_eq(e.n_headers, 0);
    ck_assert_str_eq(e.tenant, "acme");
    struct env_request none = {.form = ENV_FORM_TRANSPARENT, .body = strdup("x"), .body_len = 1};
    ck_assert_int_eq(envelope_from_request(&e, &none, &err), -1);
    ck_assert_str_eq(err.message, "route: is required");
    ck_assert_str_eq(e.route, "r");
    envelope_free(&e);
}
END_TEST

/* size_lines makes n header lines "X-<i>: <8192 v>" (caller frees each). */
static void size_lines(const char **lines, int n)
{
    for (int i = 0; i < n; i++) {
        char head[16];
        snprintf(head, sizeof head, "X-%02d: ", i);
        lines[i] = repeat(head, "v", ENV_MAX_HEADER_VALUE, "");
    }
    lines[n] = NULL;
}

/* Properties that would not fit in one AMQP frame are refused (rabbitmq-c
 * would refuse the publish, and the broker connection with it), while the
 * largest that fit encode within the frame. envelope_amqp_size is the size
 * rabbitmq-c encodes. */
START_TEST(test_request_size)
{
    const char *lines[ENV_MAX_HEADERS + 1];
    struct envelope e;
    struct env_error err;
    amqp_pool_t pool;
    amqp_basic_properties_t props;
    static char frame[MQ_FRAME_MAX];

    for (int n = 15; n <= 16; n++) {
        size_lines(lines, n);
        struct env_request rq = {.form = ENV_FORM_ENVELOPE,
                                 .route = text("r"),
                                 .idempotency_key = text("k"),
                                 .query = text("a=1"),
                                 .content_type = text("text/plain"),
                                 .walk_headers = walk_lines,
                                 .headers = lines};
        envelope_init(&e);
        memcpy(e.id, TEST_ID, sizeof e.id);
        e.tenant = strdup("acme");
        int rc = envelope_from_request(&e, &rq, &err);
        if (n == 16) {
            ck_assert_int_eq(rc, -1);
            ck_assert_msg(
                strncmp(err.message, "headers: the method, path, query and headers take ", 50) == 0,
                "%s", err.message);
        } else {
            ck_assert_msg(rc == 0, "%s", err.message);
            e.timeout_ms = 1;
            e.max_attempts = 1;
            e.replays = 1;
            e.deliveries = 1;
            init_amqp_pool(&pool, 4096);
            ck_assert_int_eq(envelope_to_amqp(&e, &pool, &props), 0);
            int len = amqp_encode_properties(AMQP_BASIC_CLASS, &props,
                                             (amqp_bytes_t){ENV_MAX_PROPERTIES, frame});
            ck_assert_int_gt(len, 0);
            ck_assert_uint_eq((size_t)len, envelope_amqp_size(&e));
            empty_amqp_pool(&pool);
        }
        envelope_free(&e);
        for (int i = 0; i < n; i++)
            free((char *)lines[i]);
    }
}
END_TEST

/* The header count limit holds in the transparent form too. */
START_TEST(test_request_header_count)
{
    const char *lines[ENV_MAX_HEADERS + 2] = {NULL};
    for (int i = 0; i <= ENV_MAX_HEADERS; i++)
        lines[i] = "X-Fill: v";
    struct env_request rq = {.form = ENV_FORM_TRANSPARENT,
                             .route = text("r"),
                             .walk_headers = walk_lines,
                             .headers = lines};
    struct envelope e;
    struct env_error err;
    envelope_init(&e);
    ck_assert_int_eq(envelope_from_request(&e, &rq, &err), -1);
    ck_assert_str_eq(err.message, "headers: at most 64 headers are allowed");
    lines[ENV_MAX_HEADERS] = NULL;
    ck_assert_int_eq(envelope_from_request(&e, &rq, &err), 0);
    ck_assert_uint_eq(e.n_headers, ENV_MAX_HEADERS);
    envelope_free(&e);
}
END_TEST

START_TEST(test_free)
{
    struct envelope e;

    envelope_free(NULL);
    envelope_init(&e);
    envelope_free(&e);
    envelope_free(&e);
    ck_assert_ptr_null(e.route);
    ck_assert_int_eq(e.priority, ENV_PRIORITY_DEFAULT);
}
END_TEST

static const amqp_table_entry_t *find_entry(const amqp_table_t *t, const char *key)
{
    for (int i = 0; i < t->num_entries; i++)
        if (t->entries[i].key.len == strlen(key) &&
            memcmp(t->entries[i].key.bytes, key, strlen(key)) == 0)
            return &t->entries[i];
    return NULL;
}

/* value_of finds a header in props built by envelope_to_amqp, to corrupt it. */
static amqp_field_value_t *value_of(amqp_basic_properties_t *props, const char *key)
{
    const amqp_table_entry_t *en = find_entry(&props->headers, key);
    ck_assert_ptr_nonnull(en);
    return &props->headers.entries[en - props->headers.entries].value;
}

static amqp_field_value_t str_value(uint8_t kind, const char *s)
{
    amqp_field_value_t v = {.kind = kind};
    v.value.bytes = amqp_cstring_bytes(s);
    return v;
}

static void remove_entry(amqp_table_t *t, const char *key)
{
    const amqp_table_entry_t *en = find_entry(t, key);
    ck_assert_ptr_nonnull(en);
    int i = (int)(en - t->entries);
    memmove(&t->entries[i], &t->entries[i + 1], (size_t)(t->num_entries - i - 1) * sizeof *en);
    t->num_entries--;
}

static void assert_bytes(amqp_bytes_t b, const char *s)
{
    ck_assert_uint_eq(b.len, strlen(s));
    ck_assert_mem_eq(b.bytes, s, b.len);
}

static void assert_str_or_null(const char *a, const char *b)
{
    if (!a || !b)
        ck_assert_ptr_eq(a, b);
    else
        ck_assert_str_eq(a, b);
}

static void assert_same(const struct envelope *a, const struct envelope *b)
{
    ck_assert_str_eq(a->id, b->id);
    assert_str_or_null(a->route, b->route);
    assert_str_or_null(a->method, b->method);
    assert_str_or_null(a->path, b->path);
    assert_str_or_null(a->query, b->query);
    ck_assert_uint_eq(a->n_headers, b->n_headers);
    for (size_t i = 0; i < a->n_headers; i++) {
        ck_assert_str_eq(a->headers[i].name, b->headers[i].name);
        ck_assert_str_eq(a->headers[i].value, b->headers[i].value);
    }
    assert_str_or_null(a->content_type, b->content_type);
    ck_assert_uint_eq(a->body_len, b->body_len);
    if (a->body_len)
        ck_assert_mem_eq(a->body, b->body, a->body_len);
    else
        ck_assert_ptr_eq(a->body, b->body);
    ck_assert_int_eq(a->priority, b->priority);
    assert_str_or_null(a->idempotency_key, b->idempotency_key);
    assert_str_or_null(a->callback_url, b->callback_url);
    ck_assert_int_eq(a->timeout_ms, b->timeout_ms);
    ck_assert_int_eq(a->max_attempts, b->max_attempts);
    assert_str_or_null(a->tenant, b->tenant);
    ck_assert_int_eq(a->attempts, b->attempts);
    ck_assert_int_eq(a->created_ms, b->created_ms);
}

/* full_envelope fills e with every field set, binary body included. */
static void full_envelope(struct envelope *e)
{
    struct env_error err;
    const char *doc =
        "{\"route\":\"orders\",\"method\":\"put\",\"path\":\"/o/1\",\"query\":\"x=%20\","
        "\"headers\":{\"X-B\":\"b\",\"X-A\":\"a\",\"Content-Type\":\"image/png\"},"
        "\"body_base64\":\"AAEAAv8A\",\"priority\":3,\"idempotency_key\":\"k-1\","
        "\"timeout_ms\":2500,\"max_attempts\":7,\"callback_url\":\"https://h.example/cb?x=1\"}";
    envelope_init(e);
    ck_assert_int_eq(parse(e, doc, &err), 0);
    memcpy(e->id, TEST_ID, sizeof e->id);
    e->tenant = strdup("acme");
    e->attempts = 4;
    e->created_ms = 1700000000999;
}

START_TEST(test_amqp_round_trip)
{
    struct envelope e, back;
    struct env_error err;
    amqp_pool_t pool;
    amqp_basic_properties_t props;

    full_envelope(&e);
    init_amqp_pool(&pool, 4096);
    ck_assert_int_eq(envelope_to_amqp(&e, &pool, &props), 0);
    ck_assert_uint_eq(props._flags, AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_PRIORITY_FLAG |
                                        AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                                        AMQP_BASIC_APP_ID_FLAG | AMQP_BASIC_HEADERS_FLAG |
                                        AMQP_BASIC_CONTENT_TYPE_FLAG);
    assert_bytes(props.message_id, TEST_ID);
    assert_bytes(props.app_id, "sluice");
    assert_bytes(props.content_type, "image/png");
    ck_assert_uint_eq(props.priority, 3);
    ck_assert_uint_eq(props.delivery_mode, 2);
    ck_assert_uint_eq(props.timestamp, 1700000000);
    ck_assert_int_eq(props.headers.num_entries, 12);
    assert_bytes(find_entry(&props.headers, "x-sluice-callback-url")->value.value.bytes,
                 "https://h.example/cb?x=1");
    ck_assert_uint_eq(find_entry(&props.headers, "x-sluice-route")->value.kind,
                      AMQP_FIELD_KIND_UTF8);
    assert_bytes(find_entry(&props.headers, "x-sluice-query")->value.value.bytes, "x=%20");
    ck_assert_uint_eq(find_entry(&props.headers, "x-sluice-attempts")->value.kind,
                      AMQP_FIELD_KIND_I32);
    ck_assert_uint_eq(find_entry(&props.headers, "x-sluice-created")->value.kind,
                      AMQP_FIELD_KIND_I64);
    ck_assert_int_eq(find_entry(&props.headers, "x-sluice-created")->value.value.i64,
                     1700000000999);
    ck_assert_uint_eq(find_entry(&props.headers, "x-sluice-timeout-ms")->value.kind,
                      AMQP_FIELD_KIND_I64);
    ck_assert_uint_eq(find_entry(&props.headers, "x-sluice-max-attempts")->value.kind,
                      AMQP_FIELD_KIND_I32);
    const amqp_table_entry_t *h = find_entry(&props.headers, "x-sluice-headers");
    ck_assert_uint_eq(h->value.kind, AMQP_FIELD_KIND_TABLE);
    ck_assert_int_eq(h->value.value.table.num_entries, 2);
    assert_bytes(h->value.value.table.entries[0].key, "X-B");
    assert_bytes(h->value.value.table.entries[1].value.value.bytes, "a");

    envelope_init(&back);
    ck_assert_int_eq(envelope_from_amqp(&back, &props, (amqp_bytes_t){e.body_len, e.body}, &err),
                     0);
    empty_amqp_pool(&pool);
    ck_assert_uint_eq(back.body_len, 6);
    ck_assert_mem_eq(back.body, "\0\1\0\2\xff\0", 6);
    ck_assert_str_eq(back.callback_url, "https://h.example/cb?x=1");
    assert_same(&e, &back);
    envelope_free(&back);
    envelope_free(&e);
}
END_TEST

/* Optional fields that are unset do not travel, and come back unset. */
START_TEST(test_amqp_minimal)
{
    struct envelope e, back;
    struct env_error err;
    amqp_pool_t pool;
    amqp_basic_properties_t props;

    envelope_init(&e);
    ck_assert_int_eq(parse(&e, "{\"route\":\"r\"}", &err), 0);
    memcpy(e.id, TEST_ID, sizeof e.id);
    e.tenant = strdup("t");
    init_amqp_pool(&pool, 4096);
    ck_assert_int_eq(envelope_to_amqp(&e, &pool, &props), 0);
    ck_assert_uint_eq(props._flags & AMQP_BASIC_CONTENT_TYPE_FLAG, 0);
    ck_assert_int_eq(props.headers.num_entries, 6);
    ck_assert_ptr_null(find_entry(&props.headers, "x-sluice-query"));
    ck_assert_ptr_null(find_entry(&props.headers, "x-sluice-headers"));
    ck_assert_ptr_null(find_entry(&props.headers, "x-sluice-timeout-ms"));
    envelope_init(&back);
    ck_assert_int_eq(envelope_from_amqp(&back, &props, (amqp_bytes_t){0, NULL}, &err), 0);
    assert_same(&e, &back);
    empty_amqp_pool(&pool);
    envelope_free(&back);
    envelope_free(&e);
}
END_TEST

/* A replayed request's generation travels as x-sluice-replays (absent when 0). */
START_TEST(test_amqp_replays)
{
    struct envelope e, back;
    struct env_error err;
    amqp_pool_t pool;
    amqp_basic_properties_t props;

    envelope_init(&e);
    ck_assert_int_eq(parse(&e, "{\"route\":\"r\"}", &err), 0);
    memcpy(e.id, TEST_ID, sizeof e.id);
    e.tenant = strdup("t");
    e.replays = 2;
    e.deliveries = 3;
    init_amqp_pool(&pool, 4096);
    ck_assert_int_eq(envelope_to_amqp(&e, &pool, &props), 0);
    ck_assert_int_eq(find_entry(&props.headers, "x-sluice-replays")->value.value.i32, 2);
    envelope_init(&back);
    ck_assert_int_eq(envelope_from_amqp(&back, &props, (amqp_bytes_t){0, NULL}, &err), 0);
    ck_assert_int_eq(back.replays, 2);
    ck_assert_int_eq(back.deliveries, 3);
    envelope_free(&back);
    value_of(&props, "x-sluice-replays")->value.i32 = -1;
    envelope_init(&back);
    ck_assert_int_eq(envelope_from_amqp(&back, &props, (amqp_bytes_t){0, NULL}, &err), -1);
    empty_amqp_pool(&pool);
    envelope_free(&back);
    envelope_free(&e);
}
END_TEST

static const struct amqp_bad {
    const char *remove;     /* header to drop */
    amqp_flags_t clear;     /* property flags to clear */
    const char *message_id; /* replacement message_id */
    const char *msg;
} AMQP_BAD[] = {
    {"x-sluice-route", 0, NULL, "x-sluice-route: missing header"},
    {"x-sluice-method", 0, NULL, "x-sluice-method: missing header"},
    {"x-sluice-path", 0, NULL, "x-sluice-path: missing header"},
    {"x-sluice-tenant", 0, NULL, "x-sluice-tenant: missing header"},
    {NULL, AMQP_BASIC_HEADERS_FLAG, NULL, "x-sluice-route: missing header"},
    {NULL, AMQP_BASIC_MESSAGE_ID_FLAG, NULL, "message_id: missing or not a sluice ID"},
    {NULL, 0, "short", "message_id: missing or not a sluice ID"},
    {NULL, 0, "0123456789ABCDEFGHIJabcdefghij-!", "message_id:"},
};

/* A failed from_amqp leaves the target envelope as it was. */
START_TEST(test_amqp_missing)
{
    const struct amqp_bad *t = &AMQP_BAD[_i];
    struct envelope e, target;
    struct env_error err;
    amqp_pool_t pool;
    amqp_basic_properties_t props;

    full_envelope(&e);
    init_amqp_pool(&pool, 4096);
    ck_assert_int_eq(envelope_to_amqp(&e, &pool, &props), 0);
    if (t->remove) remove_entry(&props.headers, t->remove);
    props._flags &= ~t->clear;
    if (t->message_id) props.message_id = amqp_cstring_bytes(t->message_id);
    envelope_init(&target);
    target.route = strdup("keep");
    ck_assert_int_eq(envelope_from_amqp(&target, &props, (amqp_bytes_t){0, NULL}, &err), -1);
    ck_assert_int_eq(err.status, 0);
    ck_assert_str_eq(err.code, "invalid_message");
    ck_assert_msg(strstr(err.message, t->msg), "\"%s\" lacks \"%s\"", err.message, t->msg);
    ck_assert_str_eq(target.route, "keep");
    empty_amqp_pool(&pool);
    envelope_free(&target);
    envelope_free(&e);
}
END_TEST

static amqp_table_entry_t entry_str(const char *key, uint8_t kind, const char *s)
{
    return (amqp_table_entry_t){.key = amqp_cstring_bytes(key), .value = str_value(kind, s)};
}

static amqp_table_entry_t entry_kind(const char *key, uint8_t kind)
{
    amqp_table_entry_t en = {.key = amqp_cstring_bytes(key)};
    en.value.kind = kind;
    return en;
}

/* What another client, a shovel or the broker may hand back: BYTES for
 * strings, narrower or unsigned integers, extra headers, no x-sluice-created. */
START_TEST(test_amqp_lenient)
{
    amqp_table_entry_t nested[] = {entry_str("Accept", AMQP_FIELD_KIND_BYTES, "*/*")};
    amqp_table_entry_t en[] = {
        entry_kind("x-death", AMQP_FIELD_KIND_ARRAY),
        entry_str("x-sluice-route", AMQP_FIELD_KIND_BYTES, "orders"),
        entry_str("x-first-death-queue", AMQP_FIELD_KIND_UTF8, "q"),
        entry_str("x-sluice-method", AMQP_FIELD_KIND_UTF8, "delete"),
        entry_str("x-sluice-path", AMQP_FIELD_KIND_BYTES, "/o"),
        entry_str("x-sluice-query", AMQP_FIELD_KIND_UTF8, ""),
        entry_str("x-sluice-tenant", AMQP_FIELD_KIND_UTF8, "acme"),
        entry_kind("x-sluice-attempts", AMQP_FIELD_KIND_I16),
        entry_kind("x-sluice-timeout-ms", AMQP_FIELD_KIND_U16),
        entry_kind("x-sluice-max-attempts", AMQP_FIELD_KIND_U64),
        entry_kind("x-sluice-headers", AMQP_FIELD_KIND_TABLE),
    };
    amqp_basic_properties_t props = {
        ._flags = AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_TIMESTAMP_FLAG |
                  AMQP_BASIC_PRIORITY_FLAG,
        .message_id = amqp_cstring_bytes(TEST_ID),
        .timestamp = 1700000000,
        .priority = 200,
        .headers = {(int)(sizeof en / sizeof en[0]), en},
    };
    struct envelope e;
    struct env_error err;

    en[7].value.value.i16 = 3;
    en[8].value.value.u16 = 60000;
    en[9].value.value.u64 = 9;
    en[10].value.value.table = (amqp_table_t){1, nested};
    envelope_init(&e);
    ck_assert_msg(envelope_from_amqp(&e, &props, amqp_cstring_bytes("body"), &err) == 0, "%s",
                  err.message);
    ck_assert_str_eq(e.id, TEST_ID);
    ck_assert_str_eq(e.route, "orders");
    ck_assert_str_eq(e.method, "DELETE");
    ck_assert_str_eq(e.path, "/o");
    ck_assert_ptr_null(e.query);
    ck_assert_str_eq(e.tenant, "acme");
    ck_assert_int_eq(e.attempts, 3);
    ck_assert_int_eq(e.timeout_ms, 60000);
    ck_assert_int_eq(e.max_attempts, 9);
    ck_assert_int_eq(e.created_ms, 1700000000000);
    ck_assert_int_eq(e.priority, 9);
    ck_assert_uint_eq(e.n_headers, 1);
    ck_assert_str_eq(e.headers[0].name, "Accept");
    ck_assert_str_eq(e.headers[0].value, "*/*");
    ck_assert_ptr_null(e.content_type);
    ck_assert_uint_eq(e.body_len, 4);
    ck_assert_str_eq((char *)e.body, "body");
    envelope_free(&e);
}
END_TEST

/* Values of the wrong kind or out of range are refused, naming the header. */
START_TEST(test_amqp_bad_values)
{
    struct envelope e, target;
    struct env_error err;
    amqp_pool_t pool;
    amqp_basic_properties_t props;
    amqp_table_entry_t bad_nested[] = {entry_kind("X-A", AMQP_FIELD_KIND_I32),
                                       entry_str("X A", AMQP_FIELD_KIND_UTF8, "v"),
                                       entry_str("X-A", AMQP_FIELD_KIND_UTF8, "a\r\nb")};
    const char *msgs[] = {
        "x-sluice-attempts: must be an integer",    "x-sluice-attempts: out of range",
        "x-sluice-created: out of range",           "x-sluice-max-attempts: out of range",
        "x-sluice-route: must be a string",         "x-sluice-path: must start with '/'",
        "x-sluice-method: must be an HTTP token",   "x-sluice-headers: must be a table",
        "x-sluice-headers: values must be strings", "headers: invalid header name \"X A\"",
        "headers.X-A: must not contain CR",         "x-sluice-route: must be 1..64",
    };

    full_envelope(&e);
    for (int i = 0; i < (int)(sizeof msgs / sizeof msgs[0]); i++) {
        init_amqp_pool(&pool, 4096);
        ck_assert_int_eq(envelope_to_amqp(&e, &pool, &props), 0);
        switch (i) {
        case 0:
            *value_of(&props, "x-sluice-attempts") = str_value(AMQP_FIELD_KIND_UTF8, "3");
            break;
        case 1:
            value_of(&props, "x-sluice-attempts")->value.i32 = -1;
            break;
        case 2:
            value_of(&props, "x-sluice-created")->kind = AMQP_FIELD_KIND_U64;
            value_of(&props, "x-sluice-created")->value.u64 = UINT64_MAX;
            break;
        case 3:
            value_of(&props, "x-sluice-max-attempts")->value.i32 = 101;
            break;
        case 4:
            value_of(&props, "x-sluice-route")->kind = AMQP_FIELD_KIND_I32;
            break;
        case 5:
            value_of(&props, "x-sluice-path")->value.bytes = amqp_cstring_bytes("o/1");
            break;
        case 6:
            value_of(&props, "x-sluice-method")->value.bytes = (amqp_bytes_t){4, "GE\0T"};
            break;
        case 7:
            *value_of(&props, "x-sluice-headers") = str_value(AMQP_FIELD_KIND_UTF8, "X-A: b");
            break;
        case 8:
        case 9:
        case 10:
            value_of(&props, "x-sluice-headers")->value.table =
                (amqp_table_t){1, &bad_nested[i - 8]};
            break;
        default:
            value_of(&props, "x-sluice-route")->value.bytes = amqp_cstring_bytes("");
            break;
        }
        envelope_init(&target);
        ck_assert_msg(envelope_from_amqp(&target, &props, (amqp_bytes_t){0, NULL}, &err) == -1,
                      "case %d accepted", i);
        ck_assert_str_eq(err.code, "invalid_message");
        ck_assert_msg(strstr(err.message, msgs[i]), "case %d: \"%s\"", i, err.message);
        ck_assert_ptr_null(target.route);
        envelope_free(&target);
        empty_amqp_pool(&pool);
    }
    envelope_free(&e);
}
END_TEST

/* from_amqp replaces what the envelope held (ASan's leak check would see
 * anything dropped rather than freed). */
START_TEST(test_amqp_replaces)
{
    struct envelope e, target;
    struct env_error err;
    amqp_pool_t pool;
    amqp_basic_properties_t props;

    full_envelope(&e);
    full_envelope(&target);
    free(target.route);
    target.route = strdup("other");
    init_amqp_pool(&pool, 4096);
    ck_assert_int_eq(envelope_to_amqp(&e, &pool, &props), 0);
    ck_assert_int_eq(envelope_from_amqp(&target, &props, (amqp_bytes_t){e.body_len, e.body}, &err),
                     0);
    assert_same(&e, &target);
    empty_amqp_pool(&pool);
    envelope_free(&target);
    envelope_free(&e);
}
END_TEST

START_TEST(test_idempotency_header)
{
    /* The envelope form takes the key from the header too; with both, they must agree. */
    struct envelope e;
    struct env_error err;
    envelope_init(&e);
    ck_assert_int_eq(envelope_from_json(&e, "{\"route\":\"r\"}", 13, &err), 0);
    ck_assert_int_eq(envelope_idempotency_header(&e, "k-1", 3, &err), 0);
    ck_assert_str_eq(e.idempotency_key, "k-1");
    ck_assert_int_eq(envelope_idempotency_header(&e, "k-1", 3, &err), 0);
    ck_assert_int_eq(envelope_idempotency_header(&e, "k-2", 3, &err), -1);
    ck_assert_int_eq(err.status, 400);
    ck_assert_str_eq(err.code, "invalid_request");
    ck_assert_str_eq(e.idempotency_key, "k-1");
    envelope_free(&e);
    envelope_init(&e);
    ck_assert_int_eq(envelope_idempotency_header(&e, "bad\x01", 4, &err), -1);
    ck_assert_msg(strstr(err.message, "Idempotency-Key") != NULL, "%s", err.message);
    ck_assert_ptr_null(e.idempotency_key);
    envelope_free(&e);
}
END_TEST

/* An envelope-form submission's traceparent header joins its headers,
 * unless the document names one; an invalid one is left out. */
START_TEST(test_trace_headers)
{
    static const char tp[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    struct envelope e;
    struct env_error err;
    envelope_init(&e);
    const char *doc = "{\"route\":\"r\",\"headers\":{\"X-A\":\"1\"}}";
    ck_assert_int_eq(envelope_from_json(&e, doc, strlen(doc), &err), 0);
    ck_assert_int_eq(envelope_trace_headers(&e, "00-bad", "a=b"), 0);
    ck_assert_uint_eq(e.n_headers, 1);
    ck_assert_int_eq(envelope_trace_headers(&e, tp, "a=b"), 0);
    ck_assert_uint_eq(e.n_headers, 3);
    ck_assert_str_eq(e.headers[1].name, "traceparent");
    ck_assert_str_eq(e.headers[1].value, tp);
    ck_assert_str_eq(e.headers[2].value, "a=b");
    envelope_free(&e);

    envelope_init(&e);
    doc = "{\"route\":\"r\",\"headers\":{\"Traceparent\":\"00-x\"}}";
    ck_assert_int_eq(envelope_from_json(&e, doc, strlen(doc), &err), 0);
    ck_assert_int_eq(envelope_trace_headers(&e, tp, NULL), 0);
    ck_assert_uint_eq(e.n_headers, 1); /* the document's own wins */
    envelope_free(&e);
}
END_TEST

static Suite *envelope_suite(void)
{
    Suite *s = suite_create("envelope");
    TCase *json = tcase_create("json");
    TCase *amqp = tcase_create("amqp");
    TCase *request = tcase_create("request");

    tcase_add_test(json, test_all_fields);
    tcase_add_test(json, test_defaults);
    tcase_add_test(json, test_identity_and_failure_keep_state);
    tcase_add_loop_test(json, test_bad_document, 0, sizeof BAD_DOCS / sizeof BAD_DOCS[0]);
    tcase_add_test(json, test_limits);
    tcase_add_test(json, test_header_count);
    tcase_add_test(json, test_message_truncated_on_utf8_boundary);
    tcase_add_test(json, test_priority_values);
    tcase_add_test(json, test_parse_priority);
    tcase_add_test(json, test_header_forwarded);
    tcase_add_test(json, test_body_json);
    tcase_add_test(json, test_body_text);
    tcase_add_loop_test(json, test_body_base64, 0, sizeof B64_CASES / sizeof B64_CASES[0]);
    tcase_add_test(json, test_free);
    tcase_add_test(json, test_idempotency_header);
    suite_add_tcase(s, json);
    tcase_add_loop_test(request, test_request, 0, sizeof REQ_CASES / sizeof REQ_CASES[0]);
    tcase_add_test(request, test_request_fields);
    tcase_add_test(request, test_request_header_count);
    tcase_add_test(request, test_request_size);
    suite_add_tcase(s, request);
    tcase_add_test(amqp, test_amqp_round_trip);
    tcase_add_test(amqp, test_amqp_minimal);
    tcase_add_loop_test(amqp, test_amqp_missing, 0, sizeof AMQP_BAD / sizeof AMQP_BAD[0]);
    tcase_add_test(amqp, test_amqp_lenient);
    tcase_add_test(amqp, test_amqp_bad_values);
    tcase_add_test(amqp, test_amqp_replaces);
    tcase_add_test(amqp, test_amqp_replays);
    tcase_add_test(amqp, test_trace_headers);
    suite_add_tcase(s, amqp);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(envelope_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
