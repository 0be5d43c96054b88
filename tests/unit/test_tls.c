/* test_tls.c: reading the listener's certificate and key (ingress/tls.c):
 * both read whole; a missing, empty or non-PEM file is refused naming the
 * setting and the path, never quoting the contents. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tls.h"

#define KEY_TEXT                                                                                   \
    "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n"

/* file writes text to a new temporary file and returns its path (static
 * per slot). */
static const char *file(int slot, const char *text)
{
    static char paths[2][64];
    snprintf(paths[slot], sizeof paths[slot], "/tmp/test_tls_%d_XXXXXX", slot);
    int fd = mkstemp(paths[slot]);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return paths[slot];
}

START_TEST(test_load)
{
    struct cfg_ingress in = {0};
    struct tls_files t;
    char err[256];
    in.tls_cert_file =
        (char *)file(0, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    in.tls_key_file = (char *)file(1, KEY_TEXT);
    ck_assert_int_eq(tls_load(&in, &t, err, sizeof err), 0);
    ck_assert_ptr_nonnull(strstr(t.cert, "BEGIN CERTIFICATE"));
    ck_assert_str_eq(t.key, KEY_TEXT);
    tls_free(&t);
    ck_assert_ptr_null(t.key);
    unlink(in.tls_key_file);
    ck_assert_int_eq(tls_load(&in, &t, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "ingress.tls_key_file: cannot read ") && strstr(err, in.tls_key_file),
                  "%s", err);
    in.tls_key_file = (char *)file(1, "secret-key-bytes, not PEM\n");
    ck_assert_int_eq(tls_load(&in, &t, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "is not a PEM file") && !strstr(err, "secret-key-bytes"), "%s", err);
    ck_assert_ptr_null(t.cert);
    unlink(in.tls_key_file);
    in.tls_key_file = (char *)file(1, "");
    ck_assert_int_eq(tls_load(&in, &t, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "is empty"));
    unlink(in.tls_key_file);
    unlink(in.tls_cert_file);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tls");
    TCase *tc = tcase_create("tls");
    tcase_add_test(tc, test_load);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
