/* test_outbound.c: unit tests for the headers of a call (worker/outbound.c)
 * and the route settings behind them (common/config_delivery.c): the order
 * of forwarded, removed, set and sluice's own headers, the signature
 * against the Standard Webhooks example, rotation, the trace of a request
 * with and without a client's traceparent, and refused settings (a secret
 * never quoted in the message). */
#include "outbound.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#define EX_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define EX_SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
#define OTHER_SECRET "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

static struct cfg cfg;

static const struct cfg_route *load(const char *route_json)
{
    char doc[4096], err[512];
    snprintf(doc, sizeof doc, "{\"routes\":{\"r\":%s}}", route_json);
    ck_assert_msg(cfg_load_string(&cfg, doc, "t.json", err, sizeof err) == 0, "%s", err);
    return cfg_route_find(&cfg, "r", 1);
}

static void refused(const char *route_json, const char *want, const char *never)
{
    char doc[4096], err[512];
    snprintf(doc, sizeof doc, "{\"routes\":{\"r\":%s}}", route_json);
    ck_assert_int_eq(cfg_load_string(&cfg, doc, "t.json", err, sizeof err), -1);
    ck_assert_msg(strstr(err, want), "message: %s", err);
    if (never) ck_assert_msg(!strstr(err, never), "message quotes a secret: %s", err);
}

/* lines renders a header list as "a: b|c: d|". */
static char *lines(const struct curl_slist *l)
{
    static char out[8192];
    out[0] = '\0';
    for (; l; l = l->next) {
        strncat(out, l->data, sizeof out - strlen(out) - 2);
        strncat(out, "|", sizeof out - strlen(out) - 1);
    }
    return out;
}

static const char *value_of(const struct curl_slist *l, const char *name)
{
    size_t n = strlen(name);
    for (; l; l = l->next)
        if (!strncasecmp(l->data, name, n) && l->data[n] == ':') return l->data + n + 2;
    return NULL;
}

START_TEST(test_order_remove_set)
{
    const struct cfg_route *r =
        load("{\"upstreams\":[\"http://b\"],"
             "\"set_headers\":{\"X-Env\":\"prod\",\"User-Agent\":\"sluice\"},"
             "\"remove_headers\":[\"cookie\",\"Content-Type\"]}");
    struct env_header h[] = {
        {"Cookie", "a=b"},         {"user-agent", "curl"},          {"X-Keep", "1"},
        {"traceparent", "forged"}, {"webhook-signature", "forged"}, {"Idempotency-Key", "forged"}};
    struct trace t = {
        .trace_id = "4bf92f3577b34da6a3ce929d0e0e4736", .span_id = "00f067aa0ba902b7", .flags = 1};
    struct outbound_call c = {.route = r,
                              .headers = h,
                              .n_headers = 6,
                              .content_type = "application/json",
                              .idempotency_key = "ID1",
                              .trace = &t,
                              .tracestate = "k=v",
                              .msg_id = "ID1",
                              .body = "{}",
                              .body_len = 2,
                              .now_s = 1614265330};
    struct curl_slist *l = NULL;
    char span[TRACE_SPAN_HEX + 1];
    ck_assert_int_eq(outbound_headers(&c, &l, span), 0);
    char want[256];
    snprintf(want, sizeof want,
             "X-Keep: 1|X-Env: prod|User-Agent: sluice|Idempotency-Key: ID1|"
             "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-%s-01|tracestate: k=v|",
             span);
    ck_assert_str_eq(lines(l), want);
    ck_assert_str_ne(span, t.span_id);
    curl_slist_free_all(l);
    cfg_free(&cfg);
}
END_TEST

START_TEST(test_signature_reference_and_rotation)
{
    const struct cfg_route *r =
        load("{\"upstreams\":[\"http://b\"],\"signing_secrets\":[\"" EX_SECRET "\"]}");
    const char *body = "{\"test\": 2432232314}";
    struct outbound_call c = {.route = r,
                              .msg_id = "msg_p5jXN8AQM9LWM0D4loKWxJek",
                              .body = body,
                              .body_len = strlen(body),
                              .now_s = 1614265330};
    struct curl_slist *l = NULL;
    ck_assert_int_eq(outbound_headers(&c, &l, NULL), 0);
    ck_assert_str_eq(value_of(l, "webhook-id"), "msg_p5jXN8AQM9LWM0D4loKWxJek");
    ck_assert_str_eq(value_of(l, "webhook-timestamp"), "1614265330");
    ck_assert_str_eq(value_of(l, "webhook-signature"), EX_SIG);
    curl_slist_free_all(l);
    cfg_free(&cfg);

    /* During a rotation the new secret comes first, the old one still signs. */
    r = load("{\"upstreams\":[\"http://b\"],\"signing_secrets\":[\"" OTHER_SECRET "\",\"" EX_SECRET
             "\"]}");
    c.route = r;
    l = NULL;
    ck_assert_int_eq(outbound_headers(&c, &l, NULL), 0);
    const char *sig = value_of(l, "webhook-signature");
    ck_assert_ptr_nonnull(strstr(sig, " " EX_SIG));
    ck_assert_int_eq(strncmp(sig, "v1,", 3), 0);
    ck_assert_ptr_eq(strstr(sig, EX_SIG), sig + strlen(sig) - strlen(EX_SIG));
    curl_slist_free_all(l);
    cfg_free(&cfg);
}
END_TEST

START_TEST(test_unsigned_route_has_no_webhook_headers)
{
    const struct cfg_route *r = load("{\"upstreams\":[\"http://b\"]}");
    struct outbound_call c = {.route = r, .msg_id = "x", .body = "", .now_s = 1};
    struct curl_slist *l = NULL;
    ck_assert_int_eq(outbound_headers(&c, &l, NULL), 0);
    ck_assert_ptr_null(value_of(l, "webhook-signature"));
    ck_assert_ptr_null(value_of(l, "traceparent"));
    curl_slist_free_all(l);
    cfg_free(&cfg);
}
END_TEST

START_TEST(test_trace_from_client_or_derived)
{
    struct envelope e;
    envelope_init(&e);
    memcpy(e.id, "AAAAAAAAAAAAAAAAAAAAAAAAAA", 27);
    struct env_header h[] = {
        {"tracestate", "v=1"},
        {"Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}};
    e.headers = h;
    e.n_headers = 2;
    struct trace t, t2;
    const char *state;
    outbound_trace(&e, &t, &state);
    ck_assert_str_eq(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    ck_assert_str_eq(state, "v=1");

    /* Without a (valid) one: derived from the ID, the same every time. */
    h[1].value = "00-zz";
    outbound_trace(&e, &t, &state);
    ck_assert_ptr_null(state);
    e.n_headers = 0;
    outbound_trace(&e, &t2, &state);
    ck_assert_str_eq(t.trace_id, t2.trace_id);
    ck_assert_str_ne(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    ck_assert_uint_eq(strlen(t.trace_id), 32);
    char tp[TRACEPARENT_LEN + 1];
    ck_assert_int_eq(trace_child(&t, tp, NULL), 0);
    struct trace back;
    ck_assert_int_eq(trace_parse(&back, tp, strlen(tp)), 0);
    e.id[0] = 'B';
    outbound_trace(&e, &t2, &state);
    ck_assert_str_ne(t.trace_id, t2.trace_id);
    e.headers = NULL;
    envelope_free(&e);
}
END_TEST

START_TEST(test_refused_settings)
{
    refused("{\"upstreams\":[\"http://b\"],\"signing_secrets\":[\"whsec_c2hvcnQ=\"]}",
            "routes.r.signing_secrets[0]", "c2hvcnQ");
    refused("{\"upstreams\":[\"http://b\"],\"signing_secrets\":\"" EX_SECRET "\"}",
            "signing_secrets", "MfKQ9r8");
    refused("{\"upstreams\":[\"http://b\"],\"signing_secrets\":[\"nope_MfKQ9r8GKYqrTwjU\"]}",
            "whsec_", "MfKQ9r8");
    refused("{\"upstreams\":[\"http://b\"],\"set_headers\":{\"traceparent\":\"x\"}}",
            "written by sluice", NULL);
    refused("{\"upstreams\":[\"http://b\"],\"set_headers\":{\"X-A\":\"a\\nb\"}}",
            "control characters", NULL);
    refused("{\"upstreams\":[\"http://b\"],\"set_headers\":{\"X A\":\"a\"}}", "header name", NULL);
    refused("{\"upstreams\":[\"http://b\"],\"remove_headers\":[\"Idempotency-Key\"]}",
            "written by sluice", NULL);
    refused("{\"upstreams\":[\"http://b\"],\"remove_headers\":[\"webhook-id\"]}",
            "written by sluice", NULL);
    refused("{\"upstreams\":[\"http://b\"],\"batch_url\":\"ftp://b/batch\"}", "http://", NULL);
    refused("{\"upstreams\":[\"http://b\"],\"batch_max\":0}", "between 1 and 1000", NULL);
    refused("{\"upstreams\":[\"http://b\"],\"batch_max\":1001}", "between 1 and 1000", NULL);
    const struct cfg_route *r = load("{\"upstreams\":[\"http://b\"],\"batch_url\":\"http://b/x\"}");
    ck_assert_str_eq(r->batch_url, "http://b/x");
    ck_assert_int_eq(r->batch_max, 100);
    ck_assert_uint_eq(r->callback_hosts.n, 0);
    ck_assert(!r->allow_private_callbacks);
    ck_assert_ptr_null(r->results_url);
    cfg_free(&cfg);
}
END_TEST

START_TEST(test_callback_settings)
{
    refused("{\"upstreams\":[\"http://b\"],\"callback_hosts\":\"a.example\"}",
            "routes.r.callback_hosts: must be a non-empty array", NULL);
    refused("{\"upstreams\":[\"http://b\"],\"callback_hosts\":[\"a.example:80\"]}",
            "routes.r.callback_hosts[0]: must be a host name", NULL);
    refused("{\"upstreams\":[\"http://b\"],\"allow_private_callbacks\":1}",
            "routes.r.allow_private_callbacks: must be true or false", NULL);
    refused("{\"upstreams\":[\"http://b\"],\"results_url\":\"/relative\"}",
            "routes.r.results_url: must start with http://", NULL);
    const struct cfg_route *r =
        load("{\"upstreams\":[\"http://b\"],\"callback_hosts\":[\"Hooks.Example\",\"127.0.0.1\"],"
             "\"allow_private_callbacks\":true,\"results_url\":\"https://r.example/in\"}");
    ck_assert_uint_eq(r->callback_hosts.n, 2);
    ck_assert_str_eq(r->callback_hosts.v[0], "hooks.example");
    ck_assert_str_eq(r->callback_hosts.v[1], "127.0.0.1");
    ck_assert(r->allow_private_callbacks);
    ck_assert_str_eq(r->results_url, "https://r.example/in");
    cfg_free(&cfg);
}
END_TEST

static Suite *outbound_suite(void)
{
    Suite *s = suite_create("outbound");
    TCase *tc = tcase_create("outbound");
    tcase_add_test(tc, test_order_remove_set);
    tcase_add_test(tc, test_signature_reference_and_rotation);
    tcase_add_test(tc, test_unsigned_route_has_no_webhook_headers);
    tcase_add_test(tc, test_trace_from_client_or_derived);
    tcase_add_test(tc, test_refused_settings);
    tcase_add_test(tc, test_callback_settings);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(outbound_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
