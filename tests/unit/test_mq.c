/* test_mq.c: what mq_publish refuses before writing anything (common/mq.c,
 * mq_props_fit): properties AMQP cannot carry. rabbitmq-c 0.11 writes the
 * publish method first, so a refusal after that point would leave half a
 * message on the wire and cost the connection; and it writes a table key's
 * length as one byte without checking, so a 256-byte header name would go
 * out corrupt. Envelopes are encoded with the real envelope_to_amqp. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "mq.h"

#define FRAME 131072

static char room[FRAME];

static int fit(const struct envelope *e)
{
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    amqp_basic_properties_t props;
    ck_assert_int_eq(envelope_to_amqp(e, &pool, &props), 0);
    int rc = mq_props_fit(&props, (amqp_bytes_t){.len = mq_props_room(FRAME), .bytes = room});
    empty_amqp_pool(&pool);
    return rc;
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void base(struct envelope *e)
{
    envelope_init(e);
    e->route = strdup("echo");
    e->method = strdup("POST");
    e->path = strdup("/x");
    e->tenant = strdup("acme");
    ck_assert_int_eq(id_new(e->id, 1700000000000), 0);
}

static void add_header(struct envelope *e, char *name, char *value)
{
    e->headers = realloc(e->headers, (e->n_headers + 1) * sizeof *e->headers);
    e->headers[e->n_headers++] = (struct env_header){.name = name, .value = value};
}

START_TEST(test_ordinary)
{
    struct envelope e;
    base(&e);
    e.content_type = repeat('a', 255);
    add_header(&e, repeat('h', 255), strdup("v"));
    ck_assert_int_eq(fit(&e), 0);
    envelope_free(&e);
}
END_TEST

START_TEST(test_long_content_type)
{
    struct envelope e;
    base(&e);
    e.content_type = repeat('a', 300);
    ck_assert_int_lt(fit(&e), 0);
    envelope_free(&e);
}
END_TEST

START_TEST(test_long_header_name)
{
    struct envelope e;
    base(&e);
    add_header(&e, strdup("X-A"), strdup("1"));
    add_header(&e, repeat('h', 256), strdup("v")); /* nested in x-sluice-headers */
    ck_assert_int_eq(fit(&e), AMQP_STATUS_INVALID_PARAMETER);
    envelope_free(&e);
}
END_TEST

START_TEST(test_bigger_than_a_frame)
{
    struct envelope e;
    base(&e);
    for (int i = 0; i < 20; i++) {
        char name[32];
        snprintf(name, sizeof name, "X-Big-%d", i);
        add_header(&e, strdup(name), repeat('v', 8192));
    }
    ck_assert_int_lt(fit(&e), 0);
    envelope_free(&e);
}
END_TEST

static Suite *mq_suite(void)
{
    Suite *s = suite_create("mq");
    TCase *tc = tcase_create("props_fit");
    tcase_add_test(tc, test_ordinary);
    tcase_add_test(tc, test_long_content_type);
    tcase_add_test(tc, test_long_header_name);
    tcase_add_test(tc, test_bigger_than_a_frame);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(mq_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
