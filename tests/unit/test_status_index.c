/* test_status_index.c: the status index: rendering, the merge rules, tenant
 * isolation, eviction, retention, memory per entry and concurrent access. */
#include <check.h>
#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "id.h"
#include "clock.h"
#include "status_index.h"

#define T0 INT64_C(1795428000123) /* 2026-11-23T10:00:00.123Z */
#define T5 INT64_C(1795428005007) /* 2026-11-23T10:00:05.007Z */
#define OUT_MAX (1 << 20)

static const char alphabet[] = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";

/* make_id writes a distinct valid ID for every n. */
static void make_id(unsigned long n, char out[ID_LEN + 1])
{
    memset(out, '-', ID_LEN);
    out[ID_LEN] = '\0';
    for (int i = ID_LEN - 1; i >= 0 && n > 0; i--, n /= 64)
        out[i] = alphabet[n % 64];
}

static struct status_update upd(const char *id, enum req_state st, int64_t created, int64_t ts,
                                int attempts)
{
    return (struct status_update){.id = id,
                                  .state = st,
                                  .tenant = "acme",
                                  .route = "orders",
                                  .created_ms = created,
                                  .ts_ms = ts,
                                  .attempts = attempts};
}

static void apply_ok(struct status_index *idx, struct status_update u)
{
    ck_assert_int_eq(status_index_apply(idx, &u), 0);
}

/* render parses the status document of id for tenant, or returns NULL. */
static struct json_object *render(struct status_index *idx, const char *id, const char *tenant)
{
    struct buf b;
    buf_init(&b, OUT_MAX);
    int rc = status_index_render(idx, id, tenant, &b);
    struct json_object *o = NULL;
    if (rc == 0) {
        o = json_tokener_parse(b.data);
        ck_assert_msg(o != NULL, "invalid JSON: %s", b.data);
    } else {
        ck_assert_int_eq(rc, -ENOENT);
        ck_assert_uint_eq(b.len, 0);
    }
    buf_free(&b);
    return o;
}

static const char *field(struct json_object *o, const char *key)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, key, &v)) return NULL;
    return json_object_to_json_string_ext(v,
                                          JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

START_TEST(test_render_round_trip)
{
    char id[ID_LEN + 1];
    make_id(1, id);
    struct status_index *idx = status_index_new(10, 3600000);
    apply_ok(idx, upd(id, ST_QUEUED, T0, T0, 0));

    struct json_object *o = render(idx, id, "acme");
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(json_object_get_string(json_object_object_get(o, "id")), id);
    ck_assert_str_eq(field(o, "route"), "\"orders\"");
    ck_assert_str_eq(field(o, "status"), "\"queued\"");
    ck_assert_str_eq(field(o, "attempts"), "0");
    ck_assert_str_eq(field(o, "created_at"), "\"2026-11-23T10:00:00.123Z\"");
    ck_assert_str_eq(field(o, "updated_at"), "\"2026-11-23T10:00:00.123Z\"");
    ck_assert_ptr_null(field(o, "completed_at"));
    ck_assert_ptr_null(field(o, "result"));
    ck_assert_ptr_null(field(o, "error"));
    json_object_put(o);

    const char *result =
        "{\"status\":201,\"headers\":{},\"body\":{\"x\":[1,\"a/b\"]},\"truncated\":false}";
    struct status_update u = upd(id, ST_SUCCEEDED, T0, T5, 2);
    u.result_json = result;
    u.result_len = strlen(result);
    apply_ok(idx, u);
    o = render(idx, id, "acme");
    ck_assert_str_eq(field(o, "status"), "\"succeeded\"");
    ck_assert_str_eq(field(o, "attempts"), "2");
    ck_assert_str_eq(field(o, "created_at"), "\"2026-11-23T10:00:00.123Z\"");
    ck_assert_str_eq(field(o, "updated_at"), "\"2026-11-23T10:00:05.007Z\"");
    ck_assert_str_eq(field(o, "completed_at"), "\"2026-11-23T10:00:05.007Z\"");
    ck_assert_str_eq(field(o, "result"), result);
    ck_assert_ptr_null(field(o, "error"));
    json_object_put(o);
    ck_assert_int_eq(status_index_state(idx, id, "acme"), ST_SUCCEEDED);
    status_index_free(idx);
}
END_TEST

/* A queued request shows its place in its lane and its estimated wait; a
 * worker holding it behind open breakers says why. */
START_TEST(test_queue_position_and_reason)
{
    char id[6][ID_LEN + 1];
    struct status_index *idx = status_index_new(100, 3600000);
    int64_t now = clock_real_ms();
    for (int i = 0; i < 6; i++) {
        make_id((unsigned long)i + 1, id[i]);
        apply_ok(idx, upd(id[i], ST_QUEUED, now, now, 0));
    }
    /* Another route's arrivals are not ahead of anyone in orders. */
    char other[ID_LEN + 1];
    make_id(99, other);
    struct status_update u = upd(other, ST_QUEUED, now, now, 0);
    u.route = "payments";
    apply_ok(idx, u);

    struct json_object *o = render(idx, id[4], "acme");
    ck_assert_str_eq(field(o, "queue_position"), "4");
    ck_assert_str_eq(field(o, "estimated_wait_s"), "null"); /* nothing drained yet */
    json_object_put(o);

    /* Two leave the lane now: 2 per second over the last second. */
    apply_ok(idx, upd(id[0], ST_PROCESSING, now, now, 0));
    apply_ok(idx, upd(id[1], ST_PROCESSING, now, now, 0));
    uint32_t pos;
    double wait;
    ck_assert_int_eq(status_index_position(idx, id[4], "acme", now, &pos, &wait), 0);
    ck_assert_uint_eq(pos, 2);
    ck_assert_double_eq_tol(wait, 1.5, 1e-9); /* (2 ahead + itself) / 2 per s */
    ck_assert_double_eq_tol(status_index_drain_rate(idx, "orders", now), 2.0, 1e-9);
    ck_assert(status_index_drain_rate(idx, "payments", now) == 0);
    ck_assert_int_eq(status_index_position(idx, id[0], "acme", now, &pos, &wait), -ENOENT);
    ck_assert_int_eq(status_index_position(idx, id[4], "globex", now, &pos, &wait), -ENOENT);
    o = render(idx, id[0], "acme");
    ck_assert_ptr_null(field(o, "queue_position")); /* processing: no longer in its lane */
    json_object_put(o);

    /* A worker holds id[2] behind open breakers: queued, with a reason, and
     * no estimate (its lane is not what it waits for). */
    u = upd(id[2], ST_QUEUED, now, now + 1, 0);
    u.reason = "breaker_open";
    apply_ok(idx, u);
    o = render(idx, id[2], "acme");
    ck_assert_str_eq(field(o, "status"), "\"queued\"");
    ck_assert_str_eq(field(o, "reason"), "\"breaker_open\"");
    ck_assert_str_eq(field(o, "estimated_wait_s"), "null");
    json_object_put(o);
    /* The ingress's own "queued" changes nothing; the call starting clears the reason. */
    apply_ok(idx, upd(id[2], ST_QUEUED, now, now + 2, 0));
    o = render(idx, id[2], "acme");
    ck_assert_str_eq(field(o, "reason"), "\"breaker_open\"");
    json_object_put(o);
    apply_ok(idx, upd(id[2], ST_PROCESSING, now, now + 3, 0));
    o = render(idx, id[2], "acme");
    ck_assert_ptr_null(field(o, "reason"));
    json_object_put(o);
    /* An unknown reason (a newer worker's) is shown as none. */
    u = upd(id[3], ST_RETRYING, now, now + 1, 1);
    u.reason = "something_new";
    apply_ok(idx, u);
    o = render(idx, id[3], "acme");
    ck_assert_ptr_null(field(o, "reason"));
    json_object_put(o);
    status_index_free(idx);
}
END_TEST

START_TEST(test_render_escapes_and_epoch)
{
    char id[ID_LEN + 1];
    make_id(2, id);
    struct status_index *idx = status_index_new(10, 0);
    struct status_update u = upd(id, ST_DEAD, 0, 999, 1);
    u.route = "r\"o\\ute\n";
    const char *err = "{\"code\":\"exhausted\",\"message\":\"5 attempts\"}";
    u.error_json = err;
    u.error_len = strlen(err);
    apply_ok(idx, u);
    struct json_object *o = render(idx, id, "acme");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(o, "route")), u.route);
    ck_assert_str_eq(field(o, "created_at"), "\"1970-01-01T00:00:00.000Z\"");
    ck_assert_str_eq(field(o, "completed_at"), "\"1970-01-01T00:00:00.999Z\"");
    ck_assert_str_eq(field(o, "error"), err);
    ck_assert_ptr_null(field(o, "result"));
    json_object_put(o);
    status_index_free(idx);
}
END_TEST

START_TEST(test_queued_never_overwrites)
{
    char id[ID_LEN + 1];
    make_id(3, id);
    struct status_index *idx = status_index_new(10, 3600000);
    apply_ok(idx, upd(id, ST_PROCESSING, T0, T0 + 10, 1));
    apply_ok(idx, upd(id, ST_QUEUED, T0, T0 + 20, 0));
    ck_assert_int_eq(status_index_state(idx, id, "acme"), ST_PROCESSING);
    struct json_object *o = render(idx, id, "acme");
    ck_assert_str_eq(field(o, "attempts"), "1");
    ck_assert_str_eq(field(o, "updated_at"), "\"2026-11-23T10:00:00.133Z\"");
    json_object_put(o);
    status_index_free(idx);
}
END_TEST

START_TEST(test_final_is_kept)
{
    char id[ID_LEN + 1];
    make_id(4, id);
    const char *r1 = "{\"status\":200}", *r2 = "{\"status\":500}";
    struct status_index *idx = status_index_new(10, 3600000);
    struct status_update u = upd(id, ST_SUCCEEDED, T0, T0 + 100, 1);
    u.result_json = r1;
    u.result_len = strlen(r1);
    apply_ok(idx, u);
    /* A non-final state, even newer and with more attempts, does not replace it. */
    apply_ok(idx, upd(id, ST_RETRYING, T0, T0 + 200, 2));
    ck_assert_int_eq(status_index_state(idx, id, "acme"), ST_SUCCEEDED);
    /* Neither does a later final state: a redelivery must not flip the result. */
    u = upd(id, ST_FAILED, T0, T0 + 300, 3);
    u.result_json = r2;
    u.result_len = strlen(r2);
    apply_ok(idx, u);
    ck_assert_int_eq(status_index_state(idx, id, "acme"), ST_SUCCEEDED);
    struct json_object *o = render(idx, id, "acme");
    ck_assert_str_eq(field(o, "result"), r1);
    ck_assert_str_eq(field(o, "attempts"), "1");
    ck_assert_str_eq(field(o, "completed_at"), "\"2026-11-23T10:00:00.223Z\"");
    json_object_put(o);
    status_index_free(idx);
}
END_TEST

START_TEST(test_attempts_and_order)
{
    char id[ID_LEN + 1];
    make_id(5, id);
    const char *err = "{\"code\":\"http_503\",\"message\":\"x\"}";
    struct status_index *idx = status_index_new(10, 3600000);
    struct status_update u = upd(id, ST_RETRYING, T0, T0 + 300, 3);
    u.error_json = err;
    u.error_len = strlen(err);
    apply_ok(idx, u);
    /* Older and fewer attempts: the state stays, attempts do not decrease. */
    apply_ok(idx, upd(id, ST_PROCESSING, T0, T0 + 200, 2));
    ck_assert_int_eq(status_index_state(idx, id, "acme"), ST_RETRYING);
    /* Newer but fewer attempts: the state moves, attempts do not decrease. */
    apply_ok(idx, upd(id, ST_PROCESSING, T0, T0 + 400, 1));
    ck_assert_int_eq(status_index_state(idx, id, "acme"), ST_PROCESSING);
    struct json_object *o = render(idx, id, "acme");
    ck_assert_str_eq(field(o, "attempts"), "3");
    ck_assert_str_eq(field(o, "updated_at"), "\"2026-11-23T10:00:00.523Z\"");
    ck_assert_ptr_null(field(o, "error"));
    json_object_put(o);
    /* Older stale event with more attempts: attempts grow, state and time stay. */
    apply_ok(idx, upd(id, ST_RETRYING, T0, T0 + 100, 4));
    o = render(idx, id, "acme");
    ck_assert_str_eq(field(o, "status"), "\"processing\"");
    ck_assert_str_eq(field(o, "attempts"), "4");
    ck_assert_str_eq(field(o, "updated_at"), "\"2026-11-23T10:00:00.523Z\"");
    json_object_put(o);
    /* A final state applies even if its clock is behind; updated time never goes back. */
    apply_ok(idx, upd(id, ST_DEAD, T0, T0 + 350, 4));
    o = render(idx, id, "acme");
    ck_assert_str_eq(field(o, "status"), "\"dead\"");
    ck_assert_str_eq(field(o, "completed_at"), "\"2026-11-23T10:00:00.523Z\"");
    json_object_put(o);
    status_index_free(idx);
}
END_TEST

START_TEST(test_out_of_order_create)
{
    char id[ID_LEN + 1];
    make_id(6, id);
    struct status_index *idx = status_index_new(10, 3600000);
    apply_ok(idx, upd(id, ST_FAILED, T0, T0 + 50, 1));
    apply_ok(idx, upd(id, ST_QUEUED, T0, T0, 0));
    apply_ok(idx, upd(id, ST_PROCESSING, T0, T0 + 10, 1));
    ck_assert_int_eq(status_index_state(idx, id, "acme"), ST_FAILED);
    ck_assert_uint_eq(status_index_count(idx), 1);
    status_index_free(idx);
}
END_TEST

/* The callback of a final request: pending with its final event, then the
 * worker's progress (callback_only) events; they never touch the state, are
 * ignored for an unknown or not yet final request, and order by calls. */
START_TEST(test_callback)
{
    char id[ID_LEN + 1], other[ID_LEN + 1];
    make_id(40, id);
    make_id(41, other);
    struct status_index *idx = status_index_new(10, 3600000);
    apply_ok(idx, upd(id, ST_QUEUED, T0, T0, 0));
    struct status_update cb = upd(id, ST_SUCCEEDED, T0, T0 + 50, 1);
    cb.callback = CB_FAILED;
    cb.callback_attempts = 1;
    cb.callback_only = true;
    apply_ok(idx, cb); /* not final yet: ignored */
    struct json_object *o = render(idx, id, "acme");
    ck_assert_str_eq(field(o, "status"), "\"queued\"");
    ck_assert_ptr_null(field(o, "callback"));
    json_object_put(o);
    struct status_update fin = upd(id, ST_SUCCEEDED, T0, T0 + 100, 1);
    fin.callback = CB_PENDING;
    apply_ok(idx, fin);
    o = render(idx, id, "acme");
    ck_assert_str_eq(field(o, "callback"), "{\"status\":\"pending\",\"attempts\":0}");
    json_object_put(o);
    cb.callback = CB_PENDING;
    cb.callback_attempts = 1;
    apply_ok(idx, cb);
    cb.callback = CB_SUCCEEDED;
    cb.callback_attempts = 2;
    cb.ts_ms = T0 + 300;
    apply_ok(idx, cb);
    cb.callback = CB_PENDING; /* read late: fewer calls, so stale */
    cb.callback_attempts = 1;
    apply_ok(idx, cb);
    o = render(idx, id, "acme");
    ck_assert_str_eq(field(o, "callback"), "{\"status\":\"succeeded\",\"attempts\":2}");
    ck_assert_str_eq(field(o, "status"), "\"succeeded\"");
    ck_assert_str_eq(field(o, "attempts"), "1");
    json_object_put(o);
    /* A progress event of an unknown request inserts nothing. */
    cb.id = other;
    apply_ok(idx, cb);
    ck_assert_ptr_null(render(idx, other, "acme"));
    /* A request without a callback shows none. */
    apply_ok(idx, upd(other, ST_FAILED, T0, T0 + 100, 1));
    o = render(idx, other, "acme");
    ck_assert_ptr_null(field(o, "callback"));
    json_object_put(o);
    /* A replay starts without one, and queues with a ticket of its own:
     * behind a request queued before it. */
    char ahead[ID_LEN + 1];
    make_id(42, ahead);
    apply_ok(idx, upd(ahead, ST_QUEUED, T0, T0 + 350, 0));
    struct status_update again = upd(id, ST_QUEUED, T0, T0 + 400, 0);
    again.replays = 1;
    again.reason = "replayed";
    apply_ok(idx, again);
    o = render(idx, id, "acme");
    ck_assert_ptr_null(field(o, "callback"));
    ck_assert_str_eq(field(o, "queue_position"), "1");
    json_object_put(o);
    status_index_free(idx);
}
END_TEST

START_TEST(test_tenant_isolation)
{
    char id[ID_LEN + 1], other[ID_LEN + 1];
    make_id(7, id);
    make_id(8, other);
    struct status_index *idx = status_index_new(10, 3600000);
    apply_ok(idx, upd(id, ST_QUEUED, T0, T0, 0));
    struct status_update u = upd(other, ST_QUEUED, T0, T0, 0);
    u.tenant = "globex";
    apply_ok(idx, u);
    ck_assert_ptr_null(render(idx, id, "globex"));
    ck_assert_ptr_null(render(idx, other, "acme"));
    ck_assert_ptr_null(render(idx, id, "acm"));
    ck_assert_ptr_null(render(idx, id, NULL));
    ck_assert_int_eq(status_index_state(idx, id, "globex"), -ENOENT);
    ck_assert_int_eq(status_index_state(idx, other, "globex"), ST_QUEUED);
    ck_assert_int_eq(status_index_state(idx, id, "acme"), ST_QUEUED);
    /* Unknown and malformed IDs are simply not found. */
    char unknown[ID_LEN + 1];
    make_id(9, unknown);
    ck_assert_ptr_null(render(idx, unknown, "acme"));
    char longer[ID_LEN + 2];
    memcpy(longer, id, ID_LEN);
    memcpy(longer + ID_LEN, "x", 2);
    ck_assert_int_eq(status_index_state(idx, longer, "acme"), -ENOENT);
    ck_assert_int_eq(status_index_state(idx, "short", "acme"), -ENOENT);
    ck_assert_int_eq(status_index_state(idx, NULL, "acme"), -ENOENT);
    status_index_free(idx);
}
END_TEST

START_TEST(test_invalid_updates)
{
    char id[ID_LEN + 1];
    make_id(10, id);
    struct status_index *idx = status_index_new(10, 3600000);
    struct status_update u = upd("0123456789ABCDEFGHIJKLMNOPQRST.V", ST_QUEUED, T0, T0, 0);
    ck_assert_int_eq(status_index_apply(idx, &u), -EINVAL);
    u = upd("short", ST_QUEUED, T0, T0, 0);
    ck_assert_int_eq(status_index_apply(idx, &u), -EINVAL);
    u = upd(id, ST_QUEUED, T0, T0, 0);
    u.tenant = NULL;
    ck_assert_int_eq(status_index_apply(idx, &u), -EINVAL);
    u = upd(id, (enum req_state)42, T0, T0, 0);
    ck_assert_int_eq(status_index_apply(idx, &u), -EINVAL);
    ck_assert_uint_eq(status_index_count(idx), 0);
    ck_assert_ptr_null(status_index_new(0, 1000));
    ck_assert_ptr_null(status_index_new(10, -1));
    status_index_free(NULL);
    status_index_free(idx);
}
END_TEST

START_TEST(test_eviction)
{
    char id[ID_LEN + 1];
    struct status_index *idx = status_index_new(4, 3600000);
    for (unsigned long n = 0; n < 6; n++) {
        make_id(n, id);
        apply_ok(idx, upd(id, ST_QUEUED, T0 + (int64_t)n, T0, 0));
        ck_assert_uint_eq(status_index_count(idx), n < 4 ? n + 1 : 4);
    }
    for (unsigned long n = 0; n < 6; n++) {
        make_id(n, id);
        ck_assert_int_eq(status_index_state(idx, id, "acme"), n < 2 ? -ENOENT : ST_QUEUED);
    }
    status_index_free(idx);
}
END_TEST

START_TEST(test_eviction_churn)
{
    /* Growth, wrap-around and many deletions: every entry in the window must
     * stay findable, so backward-shift deletion never breaks a probe chain. */
    enum { MAX = 100, TOTAL = 5000 };
    char id[ID_LEN + 1];
    struct status_index *idx = status_index_new(MAX, 3600000);
    for (unsigned long n = 0; n < TOTAL; n++) {
        make_id(n * 7919, id);
        apply_ok(idx, upd(id, ST_PROCESSING, T0, T0, 1));
        unsigned long first = n + 1 > MAX ? n + 1 - MAX : 0;
        for (unsigned long k = first; k <= n; k += 13) {
            make_id(k * 7919, id);
            ck_assert_int_eq(status_index_state(idx, id, "acme"), ST_PROCESSING);
        }
        if (first > 0) {
            make_id((first - 1) * 7919, id);
            ck_assert_int_eq(status_index_state(idx, id, "acme"), -ENOENT);
        }
    }
    ck_assert_uint_eq(status_index_count(idx), MAX);
    status_index_free(idx);
}
END_TEST

START_TEST(test_retention)
{
    char id[ID_LEN + 1];
    struct status_index *idx = status_index_new(100, 1000);
    for (unsigned long n = 0; n < 10; n++) {
        make_id(n, id);
        apply_ok(idx, upd(id, ST_QUEUED, T0 + (int64_t)n * 100, T0, 0));
    }
    status_index_expire(idx, T0 + 1450); /* drops created < T0 + 450 */
    ck_assert_uint_eq(status_index_count(idx), 5);
    for (unsigned long n = 0; n < 10; n++) {
        make_id(n, id);
        ck_assert_int_eq(status_index_state(idx, id, "acme"), n < 5 ? -ENOENT : ST_QUEUED);
    }
    /* Updates of requests created before the horizon are ignored... */
    make_id(2, id);
    apply_ok(idx, upd(id, ST_SUCCEEDED, T0 + 200, T0 + 1400, 1));
    make_id(50, id);
    apply_ok(idx, upd(id, ST_QUEUED, T0 + 449, T0 + 1400, 0));
    ck_assert_int_eq(status_index_state(idx, id, "acme"), -ENOENT);
    ck_assert_uint_eq(status_index_count(idx), 5);
    /* ...and those at the horizon or later are not. */
    make_id(51, id);
    apply_ok(idx, upd(id, ST_QUEUED, T0 + 450, T0 + 1400, 0));
    ck_assert_int_eq(status_index_state(idx, id, "acme"), ST_QUEUED);
    status_index_expire(idx, T0 + 100000);
    ck_assert_uint_eq(status_index_count(idx), 0);
    status_index_free(idx);
}
END_TEST

START_TEST(test_bytes_text_accounting)
{
    char id[ID_LEN + 1];
    make_id(11, id);
    const char *r = "{\"status\":200,\"body\":\"0123456789\"}";
    struct status_index *idx = status_index_new(1, 3600000);
    size_t empty = status_index_bytes(idx);
    struct status_update u = upd(id, ST_SUCCEEDED, T0, T0, 1);
    u.result_json = r;
    u.result_len = strlen(r);
    apply_ok(idx, u);
    size_t with = status_index_bytes(idx);
    ck_assert_uint_ge(with, empty + strlen(r) + 1);
    /* Evicting the entry gives its result bytes back (the interned strings
     * stay): the result, an empty error, both NULs and malloc's 16 bytes. */
    make_id(12, id);
    apply_ok(idx, upd(id, ST_QUEUED, T0, T0, 0));
    ck_assert_uint_eq(status_index_bytes(idx), with - strlen(r) - 2 - 16);
    status_index_free(idx);
}
END_TEST

START_TEST(test_memory_per_entry)
{
    enum { N = 100000 };
    char id[ID_LEN + 1];
    struct status_index *idx = status_index_new(1000000, INT64_C(86400000));
    size_t before = status_index_bytes(idx);
    for (unsigned long n = 0; n < N; n++) {
        make_id(n, id);
        apply_ok(idx, upd(id, ST_QUEUED, T0 + (int64_t)n, T0 + (int64_t)n, 0));
    }
    ck_assert_uint_eq(status_index_count(idx), N);
    for (unsigned long n = 0; n < N; n++) {
        make_id(n, id);
        ck_assert_int_eq(status_index_state(idx, id, "acme"), ST_QUEUED);
    }
    make_id(N, id);
    ck_assert_int_eq(status_index_state(idx, id, "acme"), -ENOENT);
    size_t bytes = status_index_bytes(idx);
    double per = (double)(bytes - before) / N;
    printf("status_index: %d entries, %zu bytes, %.1f bytes/entry\n", N, bytes, per);
    ck_assert_double_le(per, 300.0);
    status_index_free(idx);
}
END_TEST

enum { CONC_IDS = 500, CONC_ROUNDS = 4 };

struct conc {
    struct status_index *idx;
    int failures;
};

static void *writer(void *arg)
{
    struct conc *c = arg;
    char id[ID_LEN + 1];
    for (int round = 0; round < CONC_ROUNDS; round++) {
        for (unsigned long n = 0; n < CONC_IDS; n++) {
            make_id(n, id);
            enum req_state st = round == CONC_ROUNDS - 1 ? ST_SUCCEEDED : ST_PROCESSING;
            struct status_update u = upd(id, st, T0, T0 + round, round + 1);
            const char *r = "{\"status\":200}";
            u.result_json = st == ST_SUCCEEDED ? r : NULL;
            u.result_len = strlen(r);
            if (status_index_apply(c->idx, &u) != 0) c->failures++;
        }
    }
    return NULL;
}

static void *reader(void *arg)
{
    struct conc *c = arg;
    char id[ID_LEN + 1];
    struct buf b;
    buf_init(&b, OUT_MAX);
    for (int i = 0; i < CONC_IDS * CONC_ROUNDS; i++) {
        make_id((unsigned long)i % CONC_IDS, id);
        int rc = status_index_render(c->idx, id, "acme", &b);
        if (rc != 0 && rc != -ENOENT) c->failures++;
        int st = status_index_state(c->idx, id, "acme");
        if (st != -ENOENT && (st < ST_PROCESSING || st > ST_SUCCEEDED)) c->failures++;
        if (status_index_count(c->idx) > CONC_IDS) c->failures++;
        buf_reset(&b);
    }
    buf_free(&b);
    return NULL;
}

/* The final hook: told once per request, when its first final state applies,
 * whether the entry existed or the final state created it. */
static char finals[8][ID_LEN + 1];
static int n_finals;
static void on_final(void *arg, const char *id)
{
    ck_assert_ptr_eq(arg, finals);
    ck_assert_int_lt(n_finals, 8);
    memcpy(finals[n_finals++], id, ID_LEN + 1);
}

START_TEST(test_final_hook)
{
    struct status_index *idx = status_index_new(100, 3600000);
    char a[ID_LEN + 1], b[ID_LEN + 1];
    make_id(1, a);
    make_id(2, b);
    status_index_on_final(idx, on_final, finals);
    apply_ok(idx, upd(a, ST_QUEUED, T0, T0, 0));
    apply_ok(idx, upd(a, ST_PROCESSING, T0, T0 + 1, 0));
    ck_assert_int_eq(n_finals, 0);
    apply_ok(idx, upd(a, ST_SUCCEEDED, T0, T0 + 2, 1));
    ck_assert_int_eq(n_finals, 1);
    ck_assert_str_eq(finals[0], a);
    apply_ok(idx, upd(a, ST_FAILED, T0, T0 + 3, 2)); /* a redelivery: kept as it was */
    apply_ok(idx, upd(b, ST_DEAD, T0, T0 + 2, 3));   /* final before anything else */
    ck_assert_int_eq(n_finals, 2);
    ck_assert_str_eq(finals[1], b);
    status_index_free(idx);
}
END_TEST

START_TEST(test_concurrent)
{
    struct conc w = {status_index_new(CONC_IDS, 3600000), 0};
    struct conc r[3] = {{w.idx, 0}, {w.idx, 0}, {w.idx, 0}};
    pthread_t tw, tr[3];
    ck_assert_int_eq(pthread_create(&tw, NULL, writer, &w), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(pthread_create(&tr[i], NULL, reader, &r[i]), 0);
    pthread_join(tw, NULL);
    for (int i = 0; i < 3; i++) {
        pthread_join(tr[i], NULL);
        ck_assert_int_eq(r[i].failures, 0);
    }
    ck_assert_int_eq(w.failures, 0);
    ck_assert_uint_eq(status_index_count(w.idx), CONC_IDS);
    char id[ID_LEN + 1];
    for (unsigned long n = 0; n < CONC_IDS; n++) {
        make_id(n, id);
        ck_assert_int_eq(status_index_state(w.idx, id, "acme"), ST_SUCCEEDED);
    }
    status_index_free(w.idx);
}
END_TEST

START_TEST(test_cancelled_is_final)
{
    /* A cancelled request keeps that state: a late "processing" or outcome
     * of a duplicate never flips it. */
    char id[ID_LEN + 1];
    make_id(7, id);
    struct status_index *idx = status_index_new(10, 3600000);
    apply_ok(idx, upd(id, ST_QUEUED, T0, T0, 0));
    ck_assert_uint_eq(status_index_open(idx, "acme"), 1);
    apply_ok(idx, upd(id, ST_CANCELLED, T0, T0 + 5, 0));
    ck_assert_uint_eq(status_index_open(idx, "acme"), 0);
    apply_ok(idx, upd(id, ST_PROCESSING, T0, T0 + 9, 0));
    apply_ok(idx, upd(id, ST_SUCCEEDED, T0, T0 + 10, 1));
    struct json_object *o = render(idx, id, "acme");
    ck_assert_str_eq(field(o, "status"), "\"cancelled\"");
    ck_assert_ptr_nonnull(field(o, "completed_at"));
    json_object_put(o);
    ck_assert_uint_eq(status_index_open(idx, "acme"), 0);
    status_index_free(idx);
}
END_TEST

START_TEST(test_erase)
{
    char id[ID_LEN + 1], other[ID_LEN + 1];
    make_id(8, id);
    make_id(9, other);
    const char *result = "{\"status\":200,\"body\":\"secret\"}";
    struct status_index *idx = status_index_new(10, 3600000);
    struct status_update u = upd(id, ST_SUCCEEDED, T0, T0 + 3, 1);
    u.result_json = result;
    u.result_len = strlen(result);
    apply_ok(idx, u);
    size_t before = status_index_bytes(idx);
    /* Another tenant's erasure of the same ID does nothing. */
    struct status_update e = upd(id, ST_SUCCEEDED, T0, T0 + 4, 1);
    e.erase = true;
    e.tenant = "globex";
    apply_ok(idx, e);
    struct json_object *o = render(idx, id, "acme");
    ck_assert_ptr_nonnull(field(o, "result"));
    json_object_put(o);
    e.tenant = "acme";
    apply_ok(idx, e);
    o = render(idx, id, "acme");
    ck_assert_ptr_null(field(o, "result"));
    ck_assert_str_eq(field(o, "erased"), "true");
    ck_assert_str_eq(field(o, "status"), "\"succeeded\"");
    ck_assert_str_eq(field(o, "attempts"), "1");
    json_object_put(o);
    ck_assert_uint_lt(status_index_bytes(idx), before);
    /* An erasure never creates an entry, nor touches a request not final. */
    struct status_update ghost = upd(other, ST_SUCCEEDED, T0, T0, 1);
    ghost.erase = true;
    apply_ok(idx, ghost);
    ck_assert_ptr_null(render(idx, other, "acme"));
    apply_ok(idx, upd(other, ST_QUEUED, T0, T0, 0));
    apply_ok(idx, ghost);
    o = render(idx, other, "acme");
    ck_assert_str_eq(field(o, "status"), "\"queued\"");
    ck_assert_ptr_null(field(o, "erased"));
    json_object_put(o);
    status_index_free(idx);
}
END_TEST

START_TEST(test_open_counts)
{
    /* Open counts follow inserts, final states, eviction and other tenants. */
    char id[ID_LEN + 1];
    struct status_index *idx = status_index_new(4, 3600000);
    for (int i = 0; i < 3; i++) {
        make_id(100 + (unsigned long)i, id);
        apply_ok(idx, upd(id, ST_QUEUED, T0 + i, T0 + i, 0));
    }
    make_id(200, id);
    struct status_update g = upd(id, ST_QUEUED, T0, T0, 0);
    g.tenant = "globex";
    apply_ok(idx, g);
    ck_assert_uint_eq(status_index_open(idx, "acme"), 3);
    ck_assert_uint_eq(status_index_open(idx, "globex"), 1);
    ck_assert_uint_eq(status_index_open(idx, "nobody"), 0);
    make_id(100, id);
    apply_ok(idx, upd(id, ST_FAILED, T0, T0 + 1, 1));
    ck_assert_uint_eq(status_index_open(idx, "acme"), 2);
    /* A fifth entry evicts the oldest (the failed one): nothing changes;
     * a sixth evicts an open one. */
    make_id(300, id);
    apply_ok(idx, upd(id, ST_SUCCEEDED, T0 + 9, T0 + 9, 1));
    ck_assert_uint_eq(status_index_open(idx, "acme"), 2);
    make_id(301, id);
    apply_ok(idx, upd(id, ST_SUCCEEDED, T0 + 9, T0 + 9, 1));
    ck_assert_uint_eq(status_index_open(idx, "acme"), 1);
    status_index_free(idx);
}
END_TEST

START_TEST(test_tenant_retention)
{
    /* A tenant's shorter retention drops its entries early, wherever they
     * are in the ring, and ignores its older updates; others keep theirs.
     * A dropped ID can come back and is found again. */
    char a1[ID_LEN + 1], a2[ID_LEN + 1], g1[ID_LEN + 1];
    make_id(11, a1);
    make_id(12, a2);
    make_id(13, g1);
    struct status_index *idx = status_index_new(100, 3600000);
    ck_assert_int_eq(status_index_set_retention(idx, "acme", 60000), 0);
    ck_assert_int_eq(status_index_set_retention(idx, "globex", 7200000), 0); /* longer: ignored */
    struct status_update g = upd(g1, ST_QUEUED, T0, T0, 0);
    g.tenant = "globex";
    apply_ok(idx, g);
    apply_ok(idx, upd(a1, ST_QUEUED, T0 + 1, T0 + 1, 0));
    apply_ok(idx, upd(a2, ST_QUEUED, T0 + 50000, T0 + 50000, 0));
    status_index_expire(idx, T0 + 61000);
    ck_assert_ptr_null(render(idx, a1, "acme"));
    struct json_object *o = render(idx, a2, "acme");
    ck_assert_ptr_nonnull(o);
    json_object_put(o);
    o = render(idx, g1, "globex");
    ck_assert_ptr_nonnull(o);
    json_object_put(o);
    ck_assert_uint_eq(status_index_open(idx, "acme"), 1);
    /* An update of the dropped request is older than acme's horizon: ignored. */
    apply_ok(idx, upd(a1, ST_SUCCEEDED, T0 + 1, T0 + 62000, 1));
    ck_assert_ptr_null(render(idx, a1, "acme"));
    /* A request created inside the horizon with the same ID is a new entry
     * and stays findable while the dropped slot waits for the head. */
    apply_ok(idx, upd(a1, ST_QUEUED, T0 + 60500, T0 + 60500, 0));
    status_index_expire(idx, T0 + 61000);
    o = render(idx, a1, "acme");
    ck_assert_ptr_nonnull(o);
    json_object_put(o);
    ck_assert_int_eq(status_index_set_retention(idx, "acme", -1), -EINVAL);
    status_index_free(idx);
}
END_TEST

struct scanned {
    int n;
    char ids[8][ID_LEN + 1];
    int states[8];
};

static void on_visit(void *arg, const struct status_brief *b)
{
    struct scanned *s = arg;
    ck_assert_int_lt(s->n, 8);
    memcpy(s->ids[s->n], b->id, ID_LEN + 1);
    s->states[s->n++] = (int)b->state;
    ck_assert_str_eq(b->route, "orders");
}

START_TEST(test_scan_and_brief)
{
    char id[3][ID_LEN + 1];
    struct status_index *idx = status_index_new(10, 3600000);
    for (int i = 0; i < 3; i++) {
        make_id(20 + (unsigned long)i, id[i]);
        struct status_update u = upd(id[i], ST_QUEUED, T0 + i, T0 + i, 0);
        if (i == 1) u.tenant = "globex";
        apply_ok(idx, u);
    }
    apply_ok(idx, upd(id[2], ST_RETRYING, T0 + 2, T0 + 8, 2));
    struct scanned s = {0};
    status_index_scan(idx, "acme", on_visit, &s);
    ck_assert_int_eq(s.n, 2);
    ck_assert_str_eq(s.ids[0], id[0]);
    ck_assert_str_eq(s.ids[1], id[2]);
    ck_assert_int_eq(s.states[1], ST_RETRYING);
    struct status_brief b;
    ck_assert_int_eq(status_index_brief(idx, id[2], "acme", &b), 0);
    ck_assert_int_eq(b.attempts, 2);
    ck_assert_int_eq(b.created_ms, T0 + 2);
    ck_assert_int_eq(b.updated_ms, T0 + 8);
    ck_assert_int_eq(status_index_brief(idx, id[1], "acme", &b), -ENOENT);
    s.n = 0;
    status_index_scan(idx, "nobody", on_visit, &s);
    ck_assert_int_eq(s.n, 0);
    status_index_free(idx);
}
END_TEST

/* result_upd is a succeeded update of id whose result is n bytes of JSON. */
static struct status_update result_upd(const char *id, char *body, size_t n)
{
    memset(body, 'x', n);
    memcpy(body, "{\"b\":\"", 6);
    memcpy(body + n - 2, "\"}", 2);
    body[n] = '\0';
    struct status_update u = upd(id, ST_SUCCEEDED, T0, T5, 1);
    u.result_json = body;
    u.result_len = n;
    return u;
}

/* render_rc renders id and returns the code, with the offset of a result let go. */
static int render_rc(struct status_index *idx, const char *id, int64_t *offset, struct buf *b)
{
    buf_reset(b);
    return status_index_render_at(idx, id, "acme", b, offset);
}

START_TEST(test_max_bytes_oldest_first)
{
    enum { N = 5, SIZE = 1000 };
    char ids[N][ID_LEN + 1], body[SIZE + 1];
    struct status_index *idx = status_index_new(100, 3600000);
    status_index_set_max_bytes(idx, 3 * SIZE);
    for (int i = 0; i < N; i++) {
        make_id(100 + (unsigned long)i, ids[i]);
        struct status_update u = result_upd(ids[i], body, SIZE);
        ck_assert_int_eq(status_index_apply_at(idx, &u, 700 + i), 0);
    }
    struct status_text_stats st;
    status_index_text_stats(idx, &st);
    ck_assert_uint_le(st.held, 3 * SIZE);
    ck_assert_uint_eq(st.held, 3 * SIZE);
    ck_assert_uint_eq(st.spilled, 2);
    struct buf b;
    buf_init(&b, OUT_MAX);
    int64_t offset = -1;
    /* The two oldest left memory: their offsets, nothing rendered. */
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(render_rc(idx, ids[i], &offset, &b), -EAGAIN);
        ck_assert_int_eq(offset, 700 + i);
        ck_assert_uint_eq(b.len, 0);
    }
    for (int i = 2; i < N; i++) {
        ck_assert_int_eq(render_rc(idx, ids[i], &offset, &b), 0);
        ck_assert_ptr_nonnull(strstr(b.data, "\"result\":{\"b\":\"xxx"));
    }
    /* Rendered with what was read back from its offset, and only that one. */
    buf_reset(&b);
    ck_assert_int_eq(status_index_render_with(idx, ids[0], "acme", 700, "{\"back\":1}", &b), 0);
    ck_assert_ptr_nonnull(strstr(b.data, "\"result\":{\"back\":1}"));
    ck_assert_ptr_nonnull(strstr(b.data, "\"status\":\"succeeded\""));
    buf_reset(&b);
    ck_assert_int_eq(status_index_render_with(idx, ids[0], "acme", 701, "{\"back\":1}", &b),
                     -EAGAIN);
    ck_assert_int_eq(status_index_render_with(idx, ids[0], "other", 700, "{}", &b), -ENOENT);
    /* Entries stay: the count bounds them, not the bytes. */
    ck_assert_uint_eq(status_index_count(idx), N);
    /* Raising the bound keeps what is out out; lowering it lets more go. */
    status_index_set_max_bytes(idx, SIZE);
    status_index_text_stats(idx, &st);
    ck_assert_uint_eq(st.spilled, 4);
    ck_assert_int_eq(render_rc(idx, ids[3], &offset, &b), -EAGAIN);
    ck_assert_int_eq(render_rc(idx, ids[4], &offset, &b), 0);
    buf_free(&b);
    status_index_free(idx);
}
END_TEST

START_TEST(test_max_bytes_accounting)
{
    enum { SIZE = 500 };
    char a[ID_LEN + 1], c[ID_LEN + 1], body[SIZE + 1];
    make_id(201, a);
    make_id(202, c);
    struct status_index *idx = status_index_new(100, 3600000);
    status_index_set_max_bytes(idx, SIZE);
    /* Without a known offset a result cannot be read back: it stays, uncounted. */
    struct status_update u = result_upd(a, body, SIZE);
    apply_ok(idx, u);
    struct status_text_stats st;
    status_index_text_stats(idx, &st);
    ck_assert_uint_eq(st.held, 0);
    ck_assert_uint_eq(st.text_bytes, SIZE + 2 + 16);
    /* An error stays in memory with its result let go. */
    u = result_upd(c, body, SIZE);
    u.state = ST_FAILED;
    u.error_json = "{\"code\":\"upstream_4xx\",\"message\":\"m\"}";
    u.error_len = strlen(u.error_json);
    ck_assert_int_eq(status_index_apply_at(idx, &u, 9), 0);
    status_index_text_stats(idx, &st);
    ck_assert_uint_eq(st.held, SIZE);
    status_index_set_max_bytes(idx, SIZE - 1);
    status_index_text_stats(idx, &st);
    ck_assert_uint_eq(st.held, 0);
    ck_assert_uint_eq(st.spilled, 1);
    ck_assert_uint_eq(st.text_bytes, SIZE + 2 + 16 + 1 + strlen(u.error_json) + 1 + 16);
    struct buf b;
    buf_init(&b, OUT_MAX);
    ck_assert_int_eq(status_index_render_ex(idx, c, "acme", false, &b), 0);
    ck_assert_ptr_nonnull(strstr(b.data, "\"error\":{\"code\":\"upstream_4xx\""));
    buf_reset(&b);
    ck_assert_int_eq(status_index_render_with(idx, c, "acme", 9, "{\"r\":2}", &b), 0);
    ck_assert_ptr_nonnull(strstr(b.data, "\"result\":{\"r\":2},\"error\":{\"code\""));
    /* Evicting the entries gives everything back. */
    status_index_expire(idx, T0 + 3600001);
    status_index_text_stats(idx, &st);
    ck_assert_uint_eq(st.text_bytes, 0);
    ck_assert_uint_eq(st.held, 0);
    buf_free(&b);
    status_index_free(idx);
}
END_TEST

START_TEST(test_max_bytes_erased_wins)
{
    enum { SIZE = 300 };
    char a[ID_LEN + 1], c[ID_LEN + 1], body[SIZE + 1];
    make_id(301, a);
    make_id(302, c);
    struct status_index *idx = status_index_new(100, 3600000);
    status_index_set_max_bytes(idx, SIZE);
    struct status_update u = result_upd(a, body, SIZE);
    ck_assert_int_eq(status_index_apply_at(idx, &u, 40), 0);
    u = result_upd(c, body, SIZE);
    ck_assert_int_eq(status_index_apply_at(idx, &u, 41), 0);
    struct buf b;
    buf_init(&b, OUT_MAX);
    int64_t offset;
    ck_assert_int_eq(render_rc(idx, a, &offset, &b), -EAGAIN);
    /* The erasure comes after the read started: what was read back is dropped. */
    struct status_update er = upd(a, ST_SUCCEEDED, T0, T5, 1);
    er.erase = true;
    ck_assert_int_eq(status_index_apply_at(idx, &er, 42), 0);
    buf_reset(&b);
    ck_assert_int_eq(status_index_render_with(idx, a, "acme", 40, "{\"secret\":1}", &b), 0);
    ck_assert_ptr_null(strstr(b.data, "secret"));
    ck_assert_ptr_nonnull(strstr(b.data, "\"erased\":true"));
    /* And it never asks for a read-back again. */
    ck_assert_int_eq(render_rc(idx, a, &offset, &b), 0);
    ck_assert_ptr_null(strstr(b.data, "\"result\""));
    buf_free(&b);
    status_index_free(idx);
}
END_TEST

START_TEST(test_max_bytes_late_result_is_oldest)
{
    enum { SIZE = 400 };
    char a[ID_LEN + 1], c[ID_LEN + 1], d[ID_LEN + 1], body[SIZE + 1];
    make_id(401, a);
    make_id(402, c);
    make_id(403, d);
    struct status_index *idx = status_index_new(100, 3600000);
    status_index_set_max_bytes(idx, 2 * SIZE);
    apply_ok(idx, upd(a, ST_QUEUED, T0, T0, 0));
    struct status_update u = result_upd(c, body, SIZE);
    ck_assert_int_eq(status_index_apply_at(idx, &u, 1), 0);
    u = result_upd(d, body, SIZE);
    ck_assert_int_eq(status_index_apply_at(idx, &u, 2), 0);
    /* a arrived first, so its result, coming last, is the first to go. */
    u = result_upd(a, body, SIZE);
    ck_assert_int_eq(status_index_apply_at(idx, &u, 3), 0);
    struct buf b;
    buf_init(&b, OUT_MAX);
    int64_t offset;
    ck_assert_int_eq(render_rc(idx, a, &offset, &b), -EAGAIN);
    ck_assert_int_eq(offset, 3);
    ck_assert_int_eq(render_rc(idx, c, &offset, &b), 0);
    ck_assert_int_eq(render_rc(idx, d, &offset, &b), 0);
    buf_free(&b);
    status_index_free(idx);
}
END_TEST

START_TEST(test_max_bytes_replay_forgets_offset)
{
    enum { SIZE = 300 };
    char a[ID_LEN + 1], c[ID_LEN + 1], body[SIZE + 1];
    make_id(501, a);
    make_id(502, c);
    struct status_index *idx = status_index_new(100, 3600000);
    status_index_set_max_bytes(idx, SIZE);
    struct status_update u = result_upd(a, body, SIZE);
    u.state = ST_DEAD;
    ck_assert_int_eq(status_index_apply_at(idx, &u, 50), 0);
    u = result_upd(c, body, SIZE);
    ck_assert_int_eq(status_index_apply_at(idx, &u, 51), 0);
    struct buf b;
    buf_init(&b, OUT_MAX);
    int64_t offset;
    ck_assert_int_eq(render_rc(idx, a, &offset, &b), -EAGAIN);
    ck_assert_int_eq(offset, 50);
    /* Replayed: the dead outcome on the stream is no longer its status. */
    struct status_update r = upd(a, ST_QUEUED, T0, T5 + 1, 0);
    r.replays = 1;
    ck_assert_int_eq(status_index_apply_at(idx, &r, 52), 0);
    ck_assert_int_eq(render_rc(idx, a, &offset, &b), 0);
    ck_assert_ptr_null(strstr(b.data, "\"result\""));
    ck_assert_ptr_nonnull(strstr(b.data, "\"status\":\"queued\""));
    ck_assert_ptr_nonnull(strstr(b.data, "\"replays\":1"));
    /* Its new outcome is the one read back once it leaves memory. */
    u = result_upd(a, body, SIZE);
    u.ts_ms = T5 + 2;
    u.replays = 1;
    ck_assert_int_eq(status_index_apply_at(idx, &u, 60), 0);
    status_index_set_max_bytes(idx, 1);
    ck_assert_int_eq(render_rc(idx, a, &offset, &b), -EAGAIN);
    ck_assert_int_eq(offset, 60);
    buf_free(&b);
    status_index_free(idx);
}
END_TEST

static Suite *status_index_suite(void)
{
    Suite *s = suite_create("status_index");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_render_round_trip);
    tcase_add_test(tc, test_render_escapes_and_epoch);
    tcase_add_test(tc, test_queue_position_and_reason);
    tcase_add_test(tc, test_queued_never_overwrites);
    tcase_add_test(tc, test_final_is_kept);
    tcase_add_test(tc, test_attempts_and_order);
    tcase_add_test(tc, test_out_of_order_create);
    tcase_add_test(tc, test_tenant_isolation);
    tcase_add_test(tc, test_invalid_updates);
    tcase_add_test(tc, test_eviction);
    tcase_add_test(tc, test_eviction_churn);
    tcase_add_test(tc, test_retention);
    tcase_add_test(tc, test_bytes_text_accounting);
    tcase_add_test(tc, test_memory_per_entry);
    tcase_add_test(tc, test_concurrent);
    tcase_add_test(tc, test_cancelled_is_final);
    tcase_add_test(tc, test_erase);
    tcase_add_test(tc, test_open_counts);
    tcase_add_test(tc, test_tenant_retention);
    tcase_add_test(tc, test_scan_and_brief);
    tcase_add_test(tc, test_final_hook);
    tcase_add_test(tc, test_max_bytes_oldest_first);
    tcase_add_test(tc, test_max_bytes_accounting);
    tcase_add_test(tc, test_max_bytes_replay_forgets_offset);
    tcase_add_test(tc, test_max_bytes_erased_wins);
    tcase_add_test(tc, test_max_bytes_late_result_is_oldest);
    tcase_add_test(tc, test_callback);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(status_index_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
