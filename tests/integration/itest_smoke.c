/* itest_smoke.c: the end-to-end smoke test. One request goes through the
 * real ingress, RabbitMQ, one worker and the test backend, and the test
 * checks what the client sees, what the backend received and that every
 * process exits cleanly (no sanitizer or leak report). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

START_TEST(test_echo_round_trip)
{
    struct h_stack *s = h_stack_new();
    h_stack_start(s, 1);

    char *id = h_submit(s, H_TOKEN,
                        "{\"route\":\"echo\",\"method\":\"POST\",\"path\":\"/hello\","
                        "\"body\":{\"a\":1}}");
    ck_assert_uint_eq(strlen(id), 32);
    struct json_object *st = h_wait_final(s, H_TOKEN, id, 30000);
    ck_assert_str_eq(h_json_str(st, "id"), id);
    ck_assert_str_eq(h_json_str(st, "route"), "echo");
    ck_assert_str_eq(h_json_str(st, "status"), "succeeded");
    ck_assert_int_eq(h_json_int(st, "attempts"), 1);
    ck_assert_int_eq(h_json_int(st, "result.status"), 200);

    /* The result body is the backend's echo of what the worker sent. */
    ck_assert_str_eq(h_json_str(st, "result.body.method"), "POST");
    ck_assert_str_eq(h_json_str(st, "result.body.path"), "/hello");
    ck_assert_str_eq(h_json_str(st, "result.body.headers.idempotency-key"), id);
    struct json_object *sent = json_tokener_parse(h_json_str(st, "result.body.body_text"));
    ck_assert_msg(sent != NULL, "the backend did not receive JSON: %s",
                  h_json_str(st, "result.body.body_text"));
    ck_assert_int_eq(h_json_int(sent, "a"), 1);
    ck_assert_int_eq(json_object_object_length(sent), 1);

    ck_assert_int_eq(h_backend_calls(s, id), 1);

    json_object_put(sent);
    json_object_put(st);
    free(id);
    h_stack_teardown(s);
}
END_TEST

static Suite *smoke_suite(void)
{
    Suite *s = suite_create("smoke");
    TCase *tc = tcase_create("round_trip");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_echo_round_trip);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(smoke_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
