/* test_event.c: the events stream codec: round trips of updates and markers,
 * escaping, and the refusal of malformed messages. */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"

#define ID_A "0123456789ABCDEFGHIJKLMNOPQRSTUV"
#define ID_B "abcdefghijklmnopqrstuvwxyz-_0123"
#define MAX_MSG (1 << 20)

/* A copy of what the parser handed over, since its pointers die after the call. */
struct seen {
    int n;
    char id[4][64];
    int state[4];
    char tenant[4][64];
    char route[4][64];
    long long created[4], ts[4];
    int attempts[4];
    char result[4][256];
    char error[4][256];
    char reason[4][64];
    char fp[4][80], ck[4][80];
    bool erase[4];
    int callback[4], cb_attempts[4];
    bool cb_only[4];
    int markers;
    char nonce[64];
    int beats;
    char instance[64];
    long long beat_ts;
};

static void copy_opt(char *dst, size_t size, const char *src, size_t len)
{
    ck_assert(len < size);
    if (src) {
        memcpy(dst, src, len);
        dst[len] = '\0';
    } else {
        ck_assert_uint_eq(len, 0);
        memcpy(dst, "(none)", 7);
    }
}

static void on_update(void *arg, const struct status_update *u)
{
    struct seen *s = arg;
    ck_assert_int_lt(s->n, 4);
    int i = s->n++;
    snprintf(s->id[i], sizeof s->id[i], "%s", u->id);
    snprintf(s->tenant[i], sizeof s->tenant[i], "%s", u->tenant);
    snprintf(s->route[i], sizeof s->route[i], "%s", u->route);
    s->state[i] = (int)u->state;
    s->created[i] = (long long)u->created_ms;
    s->ts[i] = (long long)u->ts_ms;
    s->attempts[i] = u->attempts;
    copy_opt(s->result[i], sizeof s->result[i], u->result_json, u->result_len);
    copy_opt(s->error[i], sizeof s->error[i], u->error_json, u->error_len);
    snprintf(s->reason[i], sizeof s->reason[i], "%s", u->reason ? u->reason : "(none)");
    snprintf(s->fp[i], sizeof s->fp[i], "%s", u->fp ? u->fp : "(none)");
    snprintf(s->ck[i], sizeof s->ck[i], "%s", u->ck ? u->ck : "(none)");
    s->erase[i] = u->erase;
    s->callback[i] = u->callback;
    s->cb_attempts[i] = u->callback_attempts;
    s->cb_only[i] = u->callback_only;
}

static void on_heartbeat(void *arg, const char *instance, int64_t ts)
{
    struct seen *s = arg;
    s->beats++;
    snprintf(s->instance, sizeof s->instance, "%s", instance);
    s->beat_ts = (long long)ts;
}

static void on_marker(void *arg, const char *nonce)
{
    struct seen *s = arg;
    s->markers++;
    snprintf(s->nonce, sizeof s->nonce, "%s", nonce);
}

static int parse_str(const char *msg, struct seen *s)
{
    memset(s, 0, sizeof *s);
    return event_parse(msg, strlen(msg), on_update, on_marker, s);
}

START_TEST(test_state_names)
{
    for (int i = ST_QUEUED; i <= ST_CANCELLED; i++)
        ck_assert_int_eq(event_state_parse(event_state_name((enum req_state)i)), i);
    ck_assert_str_eq(event_state_name(ST_SUCCEEDED), "succeeded");
    ck_assert_int_eq(event_state_parse("done"), -1);
    ck_assert_int_eq(event_state_parse(""), -1);
    ck_assert_int_eq(event_state_parse(NULL), -1);
    ck_assert(ST_FINAL(ST_DEAD) && ST_FINAL(ST_FAILED) && !ST_FINAL(ST_RETRYING));
    ck_assert(ST_FINAL(ST_CANCELLED));
    ck_assert_str_eq(event_state_name(ST_CANCELLED), "cancelled");
}
END_TEST

START_TEST(test_round_trip)
{
    const char *result = "{\"status\":200,\"headers\":{\"a\":\"b\"},\"body\":[1,2.5,\"x/y\"]}";
    const char *error = "{\"code\":\"timeout\",\"message\":\"no answer\"}";
    struct status_update u[3] = {
        {ID_A, ST_QUEUED, "acme", "orders", 1000,  1000, 0,     NULL, 0, NULL,
         0,    NULL,      NULL,   NULL,     false, 0,    false, 0,    0, false},
        {ID_B,          ST_RETRYING,    "t2", "r",  2000,  2500, 1,     NULL, 0, error,
         strlen(error), "breaker_open", NULL, NULL, false, 0,    false, 0,    0, false},
        {ID_A,  ST_SUCCEEDED,  "acme", "orders", 1000, 3000,  2, result, strlen(result),
         error, strlen(error), NULL,   NULL,     NULL, false, 0, false,  0,
         0,     false},
    };
    struct buf b;
    buf_init(&b, MAX_MSG);
    ck_assert_int_eq(event_begin(&b), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(event_append(&b, &u[i]), 0);
    ck_assert_int_eq(event_end(&b), 0);

    struct seen s;
    ck_assert_int_eq(parse_str(b.data, &s), 3);
    ck_assert_int_eq(s.n, 3);
    ck_assert_int_eq(s.markers, 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_str_eq(s.id[i], u[i].id);
        ck_assert_int_eq(s.state[i], (int)u[i].state);
        ck_assert_str_eq(s.tenant[i], u[i].tenant);
        ck_assert_str_eq(s.route[i], u[i].route);
        ck_assert_int_eq(s.created[i], u[i].created_ms);
        ck_assert_int_eq(s.ts[i], u[i].ts_ms);
        ck_assert_int_eq(s.attempts[i], u[i].attempts);
    }
    ck_assert_str_eq(s.result[0], "(none)");
    ck_assert_str_eq(s.error[0], "(none)");
    ck_assert_str_eq(s.result[1], "(none)");
    ck_assert_str_eq(s.error[1], error);
    ck_assert_str_eq(s.result[2], result);
    ck_assert_str_eq(s.error[2], error);
    ck_assert_str_eq(s.reason[0], "(none)");
    ck_assert_str_eq(s.reason[1], "breaker_open");
    ck_assert_str_eq(s.reason[2], "(none)");
    buf_free(&b);
}
END_TEST

START_TEST(test_tags_round_trip)
{
    /* The fingerprint and cache key of a queued event and an erasure survive the codec;
     * an event without them reads as none. */
    struct status_update u[3] = {
        {ID_A, ST_QUEUED, "acme", "orders", 1000,  1000, 0,     NULL, 0, NULL,
         0,    NULL,      NULL,   NULL,     false, 0,    false, 0,    0, false},
        {ID_B, ST_QUEUED, "acme", "orders", 1000,  1000, 0,     NULL, 0, NULL,
         0,    NULL,      NULL,   NULL,     false, 0,    false, 0,    0, false},
        {ID_A, ST_SUCCEEDED, "acme", "orders", 1000,  3000, 1,     NULL, 0, NULL,
         0,    NULL,         NULL,   NULL,     false, 0,    false, 0,    0, false},
    };
    u[0].fp = "fp-0123456789abcdef";
    u[0].ck = "ck-x";
    u[2].erase = true;
    struct buf b;
    buf_init(&b, MAX_MSG);
    ck_assert_int_eq(event_begin(&b), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(event_append(&b, &u[i]), 0);
    ck_assert_int_eq(event_end(&b), 0);
    struct seen s;
    ck_assert_int_eq(parse_str(b.data, &s), 3);
    ck_assert_str_eq(s.fp[0], "fp-0123456789abcdef");
    ck_assert_str_eq(s.ck[0], "ck-x");
    ck_assert(!s.erase[0] && !s.erase[1] && s.erase[2]);
    ck_assert_str_eq(s.fp[1], "(none)");
    ck_assert_str_eq(s.ck[2], "(none)");
    buf_free(&b);
}
END_TEST

START_TEST(test_callback_round_trip)
{
    /* A final event with a pending callback, a progress event, and one
     * without: each reads back as sent; an unknown callback state (a newer
     * worker's) reads as none, and a huge count is clamped. */
    struct status_update u[3] = {
        {.id = ID_A,
         .state = ST_SUCCEEDED,
         .tenant = "acme",
         .route = "orders",
         .created_ms = 1000,
         .ts_ms = 2000,
         .attempts = 1,
         .callback = CB_PENDING},
        {.id = ID_A,
         .state = ST_SUCCEEDED,
         .tenant = "acme",
         .route = "orders",
         .created_ms = 1000,
         .ts_ms = 3000,
         .attempts = 1,
         .callback = CB_FAILED,
         .callback_attempts = 3,
         .callback_only = true},
        {.id = ID_B,
         .state = ST_FAILED,
         .tenant = "acme",
         .route = "orders",
         .created_ms = 1000,
         .ts_ms = 3000,
         .attempts = 1},
    };
    struct buf b;
    buf_init(&b, MAX_MSG);
    ck_assert_int_eq(event_begin(&b), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(event_append(&b, &u[i]), 0);
    ck_assert_int_eq(event_end(&b), 0);
    ck_assert_ptr_nonnull(strstr(b.data, "\"callback\":\"pending\",\"callback_attempts\":0"));
    struct seen s;
    ck_assert_int_eq(parse_str(b.data, &s), 3);
    ck_assert_int_eq(s.callback[0], CB_PENDING);
    ck_assert(!s.cb_only[0]);
    ck_assert_int_eq(s.callback[1], CB_FAILED);
    ck_assert_int_eq(s.cb_attempts[1], 3);
    ck_assert(s.cb_only[1]);
    ck_assert_int_eq(s.callback[2], CB_NONE);
    ck_assert_int_eq(parse_str("{\"v\":1,\"events\":[{\"id\":\"" ID_A "\",\"state\":\"failed\","
                               "\"tenant\":\"t\",\"route\":\"r\",\"created\":1,\"ts\":2,"
                               "\"attempts\":1,\"callback\":\"later\",\"callback_attempts\":999}]}",
                               &s),
                     1);
    ck_assert_int_eq(s.callback[0], CB_NONE);
    ck_assert_int_eq(s.cb_attempts[0], EVENT_MAX_CB_ATTEMPTS);
    buf_free(&b);
}
END_TEST

START_TEST(test_heartbeat)
{
    struct buf b;
    buf_init(&b, MAX_MSG);
    ck_assert_int_eq(event_heartbeat(&b, "replica-1", 1234567), 0);
    struct seen s;
    memset(&s, 0, sizeof s);
    const struct event_sink sink = {&s, on_update, on_marker, on_heartbeat};
    ck_assert_int_eq(event_parse_all(b.data, b.len, &sink), 0);
    ck_assert_int_eq(s.beats, 1);
    ck_assert_str_eq(s.instance, "replica-1");
    ck_assert_int_eq(s.beat_ts, 1234567);
    ck_assert_int_eq(s.n + s.markers, 0);
    /* event_parse, which has no heartbeat callback, skips them. */
    ck_assert_int_eq(parse_str(b.data, &s), 0);
    ck_assert_int_eq(s.n + s.markers + s.beats, 0);
    buf_free(&b);
}
END_TEST

START_TEST(test_empty_batch)
{
    struct buf b;
    buf_init(&b, MAX_MSG);
    ck_assert_int_eq(event_begin(&b), 0);
    ck_assert_int_eq(event_end(&b), 0);
    ck_assert_str_eq(b.data, "{\"v\":1,\"events\":[]}");
    struct seen s;
    ck_assert_int_eq(parse_str(b.data, &s), 0);
    ck_assert_int_eq(s.n + s.markers, 0);
    buf_free(&b);
}
END_TEST

START_TEST(test_marker)
{
    struct buf b;
    buf_init(&b, MAX_MSG);
    ck_assert_int_eq(event_marker(&b, "nonce-42 \"q\""), 0);
    struct seen s;
    ck_assert_int_eq(parse_str(b.data, &s), 0);
    ck_assert_int_eq(s.markers, 1);
    ck_assert_int_eq(s.n, 0);
    ck_assert_str_eq(s.nonce, "nonce-42 \"q\"");
    buf_free(&b);
    /* NULL callbacks are allowed: the caller may want only one kind. */
    const char *m = "{\"v\":1,\"marker\":\"x\"}";
    ck_assert_int_eq(event_parse(m, strlen(m), NULL, NULL, NULL), 0);
}
END_TEST

START_TEST(test_escapes)
{
    const char *tenant = "t\"en\\ant\n\x01/é";
    const char *route = "r\toute\u2028";
    struct status_update u = {.id = ID_A,
                              .state = ST_FAILED,
                              .tenant = tenant,
                              .route = route,
                              .created_ms = 5,
                              .ts_ms = 6,
                              .attempts = 7};
    struct buf b;
    buf_init(&b, MAX_MSG);
    ck_assert_int_eq(event_begin(&b), 0);
    ck_assert_int_eq(event_append(&b, &u), 0);
    ck_assert_int_eq(event_end(&b), 0);
    struct seen s;
    ck_assert_int_eq(parse_str(b.data, &s), 1);
    ck_assert_str_eq(s.tenant[0], tenant);
    ck_assert_str_eq(s.route[0], route);
    ck_assert_int_eq(s.state[0], ST_FAILED);
    buf_free(&b);
}
END_TEST

START_TEST(test_result_passed_verbatim)
{
    /* The parser hands results on as their text in the message, spacing and all. */
    const char *m = "{\"v\":1,\"events\":[{\"id\":\"" ID_A "\",\"state\":\"dead\",\"tenant\":\"t\","
                    "\"route\":\"r\",\"created\":1,\"ts\":2,\"attempts\":3,"
                    "\"result\": { \"body\" : \"a/b\" , \"n\" : [ 1 , 2 ] },\"extra\":true}]}";
    struct seen s;
    ck_assert_int_eq(parse_str(m, &s), 1);
    ck_assert_str_eq(s.result[0], "{ \"body\" : \"a/b\" , \"n\" : [ 1 , 2 ] }");
    ck_assert_str_eq(s.error[0], "(none)");
    ck_assert_int_eq(s.state[0], ST_DEAD);
}
END_TEST

#define EV_OK "{\"id\":\"" ID_A "\",\"state\":\"queued\",\"tenant\":\"t\",\"route\":\"r\","
#define EV_TAIL "\"created\":1,\"ts\":2,\"attempts\":0}"

static const char *const malformed[] = {
    "",
    "not json",
    "null",
    "[]",
    "{\"v\":1,\"events\":[" EV_OK EV_TAIL "]} trailing",
    "{\"v\":2,\"events\":[]}",
    "{\"v\":\"1\",\"events\":[]}",
    "{\"v\":1.0,\"events\":[]}",
    "{\"events\":[]}",
    "{\"v\":1}",
    "{\"v\":1,\"events\":{}}",
    "{\"v\":1,\"marker\":5}",
    "{\"v\":2,\"marker\":\"x\"}",
    "{\"v\":1,\"events\":[5]}",
    /* bad ids: short, long, outside the alphabet */
    "{\"v\":1,\"events\":[{\"id\":\"0123456789ABCDEFGHIJKLMNOPQRSTU\",\"state\":\"queued\","
    "\"tenant\":\"t\",\"route\":\"r\"," EV_TAIL "]}",
    "{\"v\":1,\"events\":[{\"id\":\"" ID_A "W\",\"state\":\"queued\","
    "\"tenant\":\"t\",\"route\":\"r\"," EV_TAIL "]}",
    "{\"v\":1,\"events\":[{\"id\":\"0123456789ABCDEFGHIJKLMNOPQRST.V\",\"state\":\"queued\","
    "\"tenant\":\"t\",\"route\":\"r\"," EV_TAIL "]}",
    "{\"v\":1,\"events\":[{\"id\":\"0123456789ABCDEFGHIJKLMNOPQRST\\u0000V\",\"state\":\"queued\","
    "\"tenant\":\"t\",\"route\":\"r\"," EV_TAIL "]}",
    /* unknown state, wrong types, missing fields */
    "{\"v\":1,\"events\":[{\"id\":\"" ID_A "\",\"state\":\"done\","
    "\"tenant\":\"t\",\"route\":\"r\"," EV_TAIL "]}",
    "{\"v\":1,\"events\":[{\"id\":\"" ID_A "\",\"state\":1,"
    "\"tenant\":\"t\",\"route\":\"r\"," EV_TAIL "]}",
    "{\"v\":1,\"events\":[{\"id\":\"" ID_A "\",\"state\":\"queued\",\"route\":\"r\"," EV_TAIL "]}",
    "{\"v\":1,\"events\":[{\"id\":\"" ID_A "\",\"state\":\"queued\",\"tenant\":\"t\"," EV_TAIL "]}",
    "{\"v\":1,\"events\":[{\"state\":\"queued\",\"tenant\":\"t\",\"route\":\"r\"," EV_TAIL "]}",
    "{\"v\":1,\"events\":[" EV_OK "\"ts\":2,\"attempts\":0}]}",
    "{\"v\":1,\"events\":[" EV_OK "\"created\":1,\"attempts\":0}]}",
    "{\"v\":1,\"events\":[" EV_OK "\"created\":1,\"ts\":2}]}",
    "{\"v\":1,\"events\":[" EV_OK "\"created\":1,\"ts\":2,\"attempts\":-1}]}",
    "{\"v\":1,\"events\":[" EV_OK "\"created\":1,\"ts\":2,\"attempts\":1.5}]}",
    "{\"v\":1,\"events\":[" EV_OK "\"created\":1,\"ts\":2,\"attempts\":99999999999}]}",
    "{\"v\":1,\"events\":[" EV_OK "\"created\":\"1\",\"ts\":2,\"attempts\":0}]}",
    "{\"v\":1,\"events\":[" EV_OK "\"created\":-1,\"ts\":2,\"attempts\":0}]}",
    "{\"v\":1,\"events\":[" EV_OK "\"created\":1,\"ts\":99999999999999999999,\"attempts\":0}]}",
    "{\"v\":1,\"events\":[{\"id\":\"" ID_A
    "\",\"state\":\"queued\",\"tenant\":null,\"route\":\"r\","
    "\"created\":1,\"ts\":2,\"attempts\":0}]}",
    "{\"v\":1,\"events\":[{\"id\":\"" ID_A "\",\"state\":\"queued\",\"tenant\":\"a\\u0000b\","
    "\"route\":\"r\",\"created\":1,\"ts\":2,\"attempts\":0}]}",
    "{\"v\":1,\"events\":[" EV_OK "\"created\":1,\"ts\":2,\"attempts\":0,\"result\":[1]}]}",
    "{\"v\":1,\"events\":[" EV_OK "\"created\":1,\"ts\":2,\"attempts\":0,\"error\":\"x\"}]}",
    "{\"v\":1,\"events\":[" EV_OK "\"created\":1,\"ts\":2,\"attempts\":0,\"result\":null}]}",
    /* reasons: a short word of [a-z_] */
    "{\"v\":1,\"events\":[" EV_OK "\"created\":1,\"ts\":2,\"attempts\":0,\"reason\":5}]}",
    "{\"v\":1,\"events\":[" EV_OK "\"created\":1,\"ts\":2,\"attempts\":0,\"reason\":\"\"}]}",
    "{\"v\":1,\"events\":[" EV_OK "\"created\":1,\"ts\":2,\"attempts\":0,\"reason\":\"Open\"}]}",
    "{\"v\":1,\"events\":[" EV_OK "\"created\":1,\"ts\":2,\"attempts\":0,"
    "\"reason\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}]}",
    /* tags: an erase that is not a boolean, a fingerprint that is too long or not a string */
    "{\"v\":1,\"events\":[" EV_OK "\"created\":1,\"ts\":2,\"attempts\":0,\"erase\":1}]}",
    "{\"v\":1,\"events\":[" EV_OK "\"created\":1,\"ts\":2,\"attempts\":0,\"fp\":5}]}",
    "{\"v\":1,\"events\":[" EV_OK "\"created\":1,\"ts\":2,\"attempts\":0,\"ck\":\""
    "0123456789012345678901234567890123456789012345678901234567890123456789\"}]}",
    /* heartbeats without a time, with a bad one; two kinds in one message */
    "{\"v\":1,\"heartbeat\":\"r\"}",
    "{\"v\":1,\"heartbeat\":\"r\",\"ts\":-1}",
    "{\"v\":1,\"heartbeat\":7,\"ts\":1}",
    "{\"v\":1,\"marker\":\"x\",\"heartbeat\":\"r\",\"ts\":1}",
    "{\"v\":1,\"marker\":\"x\",\"events\":[]}",
};

START_TEST(test_malformed)
{
    const char *m = malformed[_i];
    struct seen s;
    memset(&s, 0, sizeof s);
    ck_assert_msg(event_parse(m, strlen(m), on_update, on_marker, &s) == -1, "accepted: %s", m);
    ck_assert_int_eq(s.n, 0);
    ck_assert_int_eq(s.markers, 0);
}
END_TEST

START_TEST(test_malformed_after_good)
{
    /* A bad event fails the message; the good one before it may have been passed on. */
    const char *m = "{\"v\":1,\"events\":[" EV_OK EV_TAIL "," EV_OK "\"created\":1}]}";
    struct seen s;
    ck_assert_int_eq(parse_str(m, &s), -1);
    ck_assert_int_le(s.n, 1);
    /* The well-formed prefix alone parses. */
    const char *good = "{\"v\":1,\"events\":[" EV_OK EV_TAIL "]}";
    ck_assert_int_eq(parse_str(good, &s), 1);
    ck_assert_str_eq(s.id[0], ID_A);
}
END_TEST

START_TEST(test_not_nul_terminated)
{
    /* The parser honours len: a valid message followed by junk bytes is read alone. */
    char m[128];
    const char *good = "{\"v\":1,\"marker\":\"n\"}";
    size_t n = strlen(good);
    memcpy(m, good, n);
    memcpy(m + n, "GARBAGE", 8);
    struct seen s;
    memset(&s, 0, sizeof s);
    ck_assert_int_eq(event_parse(m, n, on_update, on_marker, &s), 0);
    ck_assert_int_eq(s.markers, 1);
    ck_assert_int_eq(event_parse(m, n + 3, on_update, on_marker, &s), -1);
}
END_TEST

START_TEST(test_buf_cap)
{
    /* An append past the buffer cap reports the buf error. */
    struct status_update u = {
        .id = ID_A, .state = ST_QUEUED, .tenant = "t", .route = "r", .created_ms = 1, .ts_ms = 1};
    struct buf b;
    buf_init(&b, 40);
    ck_assert_int_eq(event_begin(&b), 0);
    ck_assert_int_lt(event_append(&b, &u), 0);
    buf_free(&b);
}
END_TEST

static Suite *event_suite(void)
{
    Suite *s = suite_create("event");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_state_names);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_tags_round_trip);
    tcase_add_test(tc, test_heartbeat);
    tcase_add_test(tc, test_empty_batch);
    tcase_add_test(tc, test_marker);
    tcase_add_test(tc, test_escapes);
    tcase_add_test(tc, test_result_passed_verbatim);
    tcase_add_loop_test(tc, test_malformed, 0, (int)(sizeof malformed / sizeof malformed[0]));
    tcase_add_test(tc, test_malformed_after_good);
    tcase_add_test(tc, test_not_nul_terminated);
    tcase_add_test(tc, test_buf_cap);
    tcase_add_test(tc, test_callback_round_trip);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(event_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
