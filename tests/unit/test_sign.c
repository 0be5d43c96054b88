/* test_sign.c: unit tests for Standard Webhooks signatures (common/sign.c)
 * and the base64 codec they use (common/base64.c): the scheme's published
 * example, several keys during a rotation, secrets refused without quoting
 * them, and base64 round trips and refusals. */
#include "sign.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"

/* The example of the Standard Webhooks reference libraries' tests. */
#define EX_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define EX_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define EX_TS 1614265330
#define EX_BODY "{\"test\": 2432232314}"
#define EX_SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

START_TEST(test_reference_example)
{
    struct sign_key k;
    char err[128];
    ck_assert_int_eq(sign_key_parse(&k, EX_SECRET, err, sizeof(err)), 0);
    struct buf b;
    buf_init(&b, 4096);
    ck_assert_int_eq(sign_append(&b, &k, 1, EX_ID, EX_TS, EX_BODY, strlen(EX_BODY)), 0);
    ck_assert_str_eq(b.data, EX_SIG);
    buf_free(&b);
}
END_TEST

START_TEST(test_rotation_signs_with_every_key)
{
    struct sign_key k[2];
    char err[128];
    ck_assert_int_eq(sign_key_parse(&k[0], "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", err, 128), 0);
    ck_assert_int_eq(sign_key_parse(&k[1], EX_SECRET, err, 128), 0);
    struct buf b;
    buf_init(&b, 4096);
    ck_assert_int_eq(sign_append(&b, k, 2, EX_ID, EX_TS, EX_BODY, strlen(EX_BODY)), 0);
    const char *space = strchr(b.data, ' ');
    ck_assert_ptr_nonnull(space);
    ck_assert_str_eq(space + 1, EX_SIG);
    ck_assert(strncmp(b.data, "v1,", 3) == 0 && strncmp(b.data, EX_SIG, strlen(EX_SIG)) != 0);
    buf_free(&b);
}
END_TEST

START_TEST(test_body_changes_signature)
{
    struct sign_key k;
    char err[128];
    ck_assert_int_eq(sign_key_parse(&k, EX_SECRET, err, sizeof(err)), 0);
    struct buf a, b;
    buf_init(&a, 4096);
    buf_init(&b, 4096);
    ck_assert_int_eq(sign_append(&a, &k, 1, EX_ID, EX_TS, "{}", 2), 0);
    ck_assert_int_eq(sign_append(&b, &k, 1, EX_ID, EX_TS + 1, "{}", 2), 0);
    ck_assert_str_ne(a.data, b.data);
    buf_reset(&b);
    ck_assert_int_eq(sign_append(&b, &k, 1, EX_ID, EX_TS, "", 0), 0);
    ck_assert_str_ne(a.data, b.data);
    buf_free(&a);
    buf_free(&b);
}
END_TEST

START_TEST(test_bad_secrets)
{
    static const char *const bad[] = {
        NULL,
        "",
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_",
        "whsec_!!!!",
        "whsec_AAAA",
        "whsec_"
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        "AAAAAAAAAAAAAAAAAAAAA",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS="};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct sign_key k;
        char err[128] = "";
        ck_assert_int_eq(sign_key_parse(&k, bad[i], err, sizeof(err)), -1);
        ck_assert(err[0]);
        /* The message never repeats the secret. */
        if (bad[i] && strlen(bad[i]) > 8) ck_assert_ptr_null(strstr(err, bad[i] + 6));
    }
}
END_TEST

START_TEST(test_base64_round_trip)
{
    unsigned char in[300], out[base64_decoded_max(404)];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (unsigned char)(i * 7 + 3);
    for (size_t n = 0; n <= sizeof(in); n++) {
        struct buf b;
        buf_init(&b, 4096);
        ck_assert_int_eq(base64_append(&b, in, n), 0);
        ck_assert_uint_eq(b.len, (n + 2) / 3 * 4);
        size_t len = 0;
        ck_assert_ptr_null(base64_decode(b.data ? b.data : "", b.len, out, &len));
        ck_assert_uint_eq(len, n);
        ck_assert(memcmp(in, out, n) == 0);
        buf_free(&b);
    }
}
END_TEST

START_TEST(test_base64_refusals)
{
    unsigned char out[32];
    size_t len;
    ck_assert_str_eq(base64_decode("ab$d", 4, out, &len), "unexpected character");
    ck_assert_str_eq(base64_decode("ab=", 3, out, &len), "bad padding");
    ck_assert_str_eq(base64_decode("a===", 4, out, &len), "bad padding");
    ck_assert_str_eq(base64_decode("abcde", 5, out, &len), "bad length");
    ck_assert_str_eq(base64_decode("ab==", 4, out, &len), "non-zero trailing bits");
    ck_assert_ptr_null(base64_decode("aQ", 2, out, &len)); /* unpadded */
    ck_assert_uint_eq(len, 1);
    ck_assert_ptr_null(base64_decode("-_8=", 4, out, &len)); /* URL-safe */
    ck_assert_uint_eq(len, 2);
}
END_TEST

static Suite *sign_suite(void)
{
    Suite *s = suite_create("sign");
    TCase *tc = tcase_create("sign");
    tcase_add_test(tc, test_reference_example);
    tcase_add_test(tc, test_rotation_signs_with_every_key);
    tcase_add_test(tc, test_body_changes_signature);
    tcase_add_test(tc, test_bad_secrets);
    suite_add_tcase(s, tc);
    tc = tcase_create("base64");
    tcase_add_test(tc, test_base64_round_trip);
    tcase_add_test(tc, test_base64_refusals);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sign_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
