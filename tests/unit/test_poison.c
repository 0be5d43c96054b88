/* test_poison.c: the job of a delivery the worker cannot decode
 * (worker/poison.c). With a readable ID and tenant it is a dead job with the
 * error malformed_message, dead-lettered by nack; without them, nothing. */
#include <check.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "poison.h"

#define NOW 1700000000123LL

struct msg {
    amqp_message_t m;
    amqp_table_entry_t e[8];
    char id[ID_LEN + 1];
};

static void put(struct msg *x, const char *key, const char *value)
{
    amqp_table_t *t = &x->m.properties.headers;
    x->e[t->num_entries++] = (amqp_table_entry_t){
        .key = amqp_cstring_bytes(key),
        .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(value)}};
    x->m.properties._flags |= AMQP_BASIC_HEADERS_FLAG;
}

static void put_i64(struct msg *x, const char *key, int64_t v)
{
    amqp_table_t *t = &x->m.properties.headers;
    x->e[t->num_entries++] = (amqp_table_entry_t){
        .key = amqp_cstring_bytes(key), .value = {.kind = AMQP_FIELD_KIND_I64, .value.i64 = v}};
}

/* msg_new makes a message with a fresh ID, tenant "acme" and route "echo"
 * (and no method: not a valid request). */
static struct msg *msg_new(void)
{
    struct msg *x = calloc(1, sizeof *x);
    ck_assert_int_eq(id_new(x->id, NOW), 0);
    x->m.properties._flags = AMQP_BASIC_MESSAGE_ID_FLAG;
    x->m.properties.message_id = amqp_cstring_bytes(x->id);
    x->m.properties.headers.entries = x->e;
    put(x, "x-sluice-tenant", "acme");
    put(x, "x-sluice-route", "echo");
    return x;
}

START_TEST(test_readable)
{
    struct msg *x = msg_new();
    put_i64(x, "x-sluice-created", NOW - 5000);
    struct job *j = poison_job(&x->m, 42, "x-sluice-method: missing header", NOW);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(j->env.id, x->id);
    ck_assert_str_eq(j->env.tenant, "acme");
    ck_assert_str_eq(j->env.route, "echo");
    ck_assert_int_eq(j->env.created_ms, NOW - 5000);
    ck_assert_uint_eq(j->delivery_tag, 42);
    ck_assert_int_eq(j->state, ST_DEAD);
    ck_assert_int_eq(j->next, NEXT_FINAL);
    ck_assert(j->dead_letter);
    struct json_object *o = json_tokener_parse(j->error_json), *v;
    ck_assert_ptr_nonnull(o);
    ck_assert(json_object_object_get_ex(o, "code", &v));
    ck_assert_str_eq(json_object_get_string(v), "malformed_message");
    ck_assert(json_object_object_get_ex(o, "message", &v));
    ck_assert_ptr_nonnull(strstr(json_object_get_string(v), "x-sluice-method"));
    json_object_put(o);
    job_free(j);
    free(x);
}
END_TEST

START_TEST(test_defaults)
{
    struct msg *x = msg_new();
    x->e[1].value.value.bytes = amqp_cstring_bytes(""); /* an unreadable route */
    struct job *j = poison_job(&x->m, 1, "bad", NOW);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(j->env.route, "");
    ck_assert_int_eq(j->env.created_ms, NOW); /* neither header nor timestamp */
    job_free(j);
    x->m.properties._flags |= AMQP_BASIC_TIMESTAMP_FLAG;
    x->m.properties.timestamp = 1600000000;
    j = poison_job(&x->m, 1, "bad", NOW);
    ck_assert_int_eq(j->env.created_ms, 1600000000000LL);
    job_free(j);
    free(x);
}
END_TEST

START_TEST(test_unreadable)
{
    struct msg *x = msg_new();
    x->m.properties.message_id = amqp_cstring_bytes("not-an-id");
    ck_assert_ptr_null(poison_job(&x->m, 1, "bad", NOW));
    free(x);
    x = msg_new();
    x->m.properties._flags &= ~AMQP_BASIC_MESSAGE_ID_FLAG;
    ck_assert_ptr_null(poison_job(&x->m, 1, "bad", NOW));
    free(x);
    x = msg_new();
    x->m.properties.headers.num_entries = 0; /* no tenant: nobody to tell */
    ck_assert_ptr_null(poison_job(&x->m, 1, "bad", NOW));
    free(x);
    x = msg_new();
    x->e[0].value.value.bytes = (amqp_bytes_t){.len = 3, .bytes = "\xff\xfe\xfd"};
    ck_assert_ptr_null(poison_job(&x->m, 1, "bad", NOW)); /* not UTF-8 */
    free(x);
}
END_TEST

/* Redeliveries are counted by the workers; the limit makes a request dead. */
START_TEST(test_redelivery)
{
    ck_assert_int_eq(poison_redelivery(false, 0, 2), POISON_FRESH);
    ck_assert_int_eq(poison_redelivery(false, 5, 2), POISON_FRESH);
    ck_assert_int_eq(poison_redelivery(true, 0, 2), POISON_COUNT);
    ck_assert_int_eq(poison_redelivery(true, 1, 2), POISON_DEAD);
    ck_assert_int_eq(poison_redelivery(true, 0, 1), POISON_DEAD);
    ck_assert_int_eq(poison_redelivery(true, 18, 20), POISON_COUNT);
    ck_assert_int_eq(poison_redelivery(true, 19, 20), POISON_DEAD);
    /* A quorum queue's x-delivery-count says so too. */
    amqp_table_entry_t e = {.key = amqp_cstring_bytes("x-delivery-count"),
                            .value = {.kind = AMQP_FIELD_KIND_I64, .value.i64 = 1}};
    amqp_basic_properties_t props = {._flags = AMQP_BASIC_HEADERS_FLAG,
                                     .headers = {.num_entries = 1, .entries = &e}};
    ck_assert(poison_again(false, &props));
    e.value.value.i64 = 0;
    ck_assert(!poison_again(false, &props));
    ck_assert(poison_again(true, &props));
    props._flags = 0;
    ck_assert(!poison_again(false, &props));
}
END_TEST

static Suite *poison_suite(void)
{
    Suite *s = suite_create("poison");
    TCase *tc = tcase_create("poison");
    tcase_add_test(tc, test_readable);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_unreadable);
    tcase_add_test(tc, test_redelivery);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(poison_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
