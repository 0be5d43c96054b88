/* test_trace.c: unit tests for W3C Trace Context (common/trace.c): the
 * specification's valid and invalid traceparent forms, child spans that keep
 * the trace and flags, new traces, and tracestate limits. */
#include "trace.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#define EX "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static int parse(struct trace *t, const char *s)
{
    return trace_parse(t, s, strlen(s));
}

START_TEST(test_parse_valid)
{
    struct trace t;
    ck_assert_int_eq(parse(&t, EX), 0);
    ck_assert_str_eq(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    ck_assert_str_eq(t.span_id, "00f067aa0ba902b7");
    ck_assert_int_eq(t.flags, 1);
    /* A later version may add fields after the flags. */
    ck_assert_int_eq(parse(&t, "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what"), 0);
    ck_assert_int_eq(t.flags, 0);
}
END_TEST

START_TEST(test_parse_invalid)
{
    static const char *const bad[] = {
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct trace t;
        ck_assert_msg(parse(&t, bad[i]) == -1, "accepted %s", bad[i]);
    }
}
END_TEST

START_TEST(test_child_keeps_trace)
{
    struct trace t;
    char a[TRACEPARENT_LEN + 1], b[TRACEPARENT_LEN + 1], span[TRACE_SPAN_HEX + 1];
    ck_assert_int_eq(parse(&t, EX), 0);
    ck_assert_int_eq(trace_child(&t, a, span), 0);
    ck_assert_int_eq(trace_child(&t, b, NULL), 0);
    ck_assert_uint_eq(strlen(a), TRACEPARENT_LEN);
    ck_assert(strncmp(a, "00-4bf92f3577b34da6a3ce929d0e0e4736-", 36) == 0);
    ck_assert(strcmp(a + 53, "01") == 0);
    ck_assert(strncmp(a + 36, span, TRACE_SPAN_HEX) == 0);
    ck_assert_str_ne(a, b); /* each call its own span */
    struct trace back;
    ck_assert_int_eq(parse(&back, a), 0);
}
END_TEST

START_TEST(test_new_trace)
{
    struct trace t, u;
    ck_assert_int_eq(trace_new(&t), 0);
    ck_assert_int_eq(trace_new(&u), 0);
    ck_assert_str_ne(t.trace_id, u.trace_id);
    char tp[TRACEPARENT_LEN + 1];
    ck_assert_int_eq(trace_child(&t, tp, NULL), 0);
    struct trace back;
    ck_assert_int_eq(parse(&back, tp), 0);
    ck_assert_str_eq(back.trace_id, t.trace_id);
    ck_assert_int_eq(back.flags, 1);
}
END_TEST

START_TEST(test_state)
{
    ck_assert(trace_state_valid("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", 39));
    ck_assert(!trace_state_valid("a=\x01", 3));
    char big[TRACESTATE_MAX + 2];
    memset(big, 'a', sizeof(big));
    ck_assert(!trace_state_valid(big, sizeof(big)));
    ck_assert(trace_state_valid(big, TRACESTATE_MAX));
}
END_TEST

static Suite *trace_suite(void)
{
    Suite *s = suite_create("trace");
    TCase *tc = tcase_create("trace");
    tcase_add_test(tc, test_parse_valid);
    tcase_add_test(tc, test_parse_invalid);
    tcase_add_test(tc, test_child_keeps_trace);
    tcase_add_test(tc, test_new_trace);
    tcase_add_test(tc, test_state);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(trace_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
