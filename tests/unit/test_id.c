/* test_id.c: unit tests for tracking IDs (common/id.c): format, ordering by
 * time, uniqueness within a millisecond, time round trip, validation, and a
 * real getrandom(2) failure injected with a seccomp filter. */
#include "id.h"

#include <check.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

static const char alphabet[] = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";

START_TEST(test_format)
{
    ck_assert_uint_eq(strlen(alphabet), 64);
    for (size_t i = 1; i < 64; i++)
        ck_assert_int_lt(alphabet[i - 1], alphabet[i]);
    for (int i = 0; i < 1000; i++) {
        char id[ID_LEN + 1];
        ck_assert_int_eq(id_new(id, 1700000000000 + i), 0);
        ck_assert_uint_eq(strlen(id), ID_LEN);
        ck_assert_uint_eq(strspn(id, alphabet), ID_LEN);
        ck_assert(id_valid(id, strlen(id)));
    }
}
END_TEST

START_TEST(test_sorts_by_time)
{
    static const int64_t times[] = {
        0,
        1,
        2,
        63,
        64,
        255,
        256,
        65535,
        65536,
        1700000000000,
        1700000000001,
        1700000000064,
        1800000000000,
        (INT64_C(1) << 47),
        (INT64_C(1) << 48) - 2,
        (INT64_C(1) << 48) - 1,
    };
    char prev[ID_LEN + 1];
    ck_assert_int_eq(id_new(prev, times[0]), 0);
    for (size_t i = 1; i < sizeof times / sizeof times[0]; i++) {
        char id[ID_LEN + 1];
        ck_assert_int_eq(id_new(id, times[i]), 0);
        ck_assert_msg(strcmp(prev, id) < 0, "%s !< %s at t=%lld", prev, id, (long long)times[i]);
        memcpy(prev, id, sizeof id);
    }
}
END_TEST

static int cmp_ids(const void *a, const void *b)
{
    return strcmp(a, b);
}

START_TEST(test_same_ms_unique)
{
    enum { N = 2000 };
    char(*ids)[ID_LEN + 1] = malloc(N * sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(id_new(ids[i], 1700000000000), 0);
        ck_assert_int_eq(memcmp(ids[i], ids[0], 8), 0);
        ck_assert_int_eq(id_time_ms(ids[i]), 1700000000000);
    }
    qsort(ids, N, sizeof *ids, cmp_ids);
    for (int i = 1; i < N; i++)
        ck_assert_str_ne(ids[i - 1], ids[i]);
    free(ids);
}
END_TEST

START_TEST(test_time_round_trip)
{
    static const int64_t times[] = {
        0, 1, 63, 64, 1234567890123, 1700000000000, (INT64_C(1) << 48) - 1};
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        char id[ID_LEN + 1];
        ck_assert_int_eq(id_new(id, times[i]), 0);
        ck_assert_int_eq(id_time_ms(id), times[i]);
    }
    char id[ID_LEN + 1];
    ck_assert_int_eq(id_new(id, 0), 0);
    ck_assert_int_eq(strncmp(id, "--------", 8), 0);
    ck_assert_int_eq(id_new(id, (INT64_C(1) << 48) - 1), 0);
    ck_assert_int_eq(strncmp(id, "zzzzzzzz", 8), 0);
}
END_TEST

START_TEST(test_time_clamped)
{
    char id[ID_LEN + 1];
    ck_assert_int_eq(id_new(id, -5), 0);
    ck_assert_int_eq(id_time_ms(id), 0);
    ck_assert_int_eq(id_new(id, INT64_C(1) << 48), 0);
    ck_assert_int_eq(id_time_ms(id), (INT64_C(1) << 48) - 1);
    ck_assert_int_eq(id_new(id, INT64_MAX), 0);
    ck_assert_int_eq(id_time_ms(id), (INT64_C(1) << 48) - 1);
}
END_TEST

START_TEST(test_valid_rejects)
{
    char id[ID_LEN + 1];
    ck_assert_int_eq(id_new(id, 1700000000000), 0);
    ck_assert(id_valid(id, ID_LEN));
    ck_assert(!id_valid(id, ID_LEN - 1));
    ck_assert(!id_valid(id, 0));
    ck_assert(!id_valid(NULL, ID_LEN));

    char longer[ID_LEN + 2];
    memcpy(longer, id, ID_LEN);
    longer[ID_LEN] = 'A';
    longer[ID_LEN + 1] = '\0';
    ck_assert(!id_valid(longer, ID_LEN + 1));
    ck_assert(id_valid(longer, ID_LEN)); /* a prefix of a longer string, not NUL-terminated */

    static const char bad[] = {'+', '/', '=', ' ', '\0', '.', '~', '\x80', '\xff'};
    for (size_t i = 0; i < sizeof bad; i++) {
        for (size_t pos = 0; pos < ID_LEN; pos += ID_LEN - 1) {
            char copy[ID_LEN + 1];
            memcpy(copy, id, sizeof copy);
            copy[pos] = bad[i];
            ck_assert_msg(!id_valid(copy, ID_LEN), "accepted byte 0x%02x at %zu",
                          (unsigned char)bad[i], pos);
        }
    }
    ck_assert(id_valid("--------------------------------", ID_LEN));
    ck_assert(id_valid("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", ID_LEN));
}
END_TEST

START_TEST(test_time_of_invalid)
{
    ck_assert_int_eq(id_time_ms("abc"), -1);
    ck_assert_int_eq(id_time_ms("+AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), -1);
    ck_assert_int_eq(id_time_ms("-------0"), 1);
}
END_TEST

/* deny_getrandom makes every later getrandom(2) in this (forked) process fail
 * with ENOSYS, as on a kernel without the call. */
static void deny_getrandom(void)
{
    struct sock_filter insns[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getrandom, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof insns / sizeof insns[0], .filter = insns};
    ck_assert_int_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
    ck_assert_int_eq(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0);
}

START_TEST(test_random_failure)
{
    deny_getrandom();
    char id[ID_LEN + 1] = "untouched";
    ck_assert_int_eq(id_new(id, 1700000000000), -EIO);
    ck_assert_str_eq(id, "untouched");
}
END_TEST

static Suite *id_suite(void)
{
    Suite *s = suite_create("id");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_format);
    tcase_add_test(tc, test_sorts_by_time);
    tcase_add_test(tc, test_same_ms_unique);
    tcase_add_test(tc, test_time_round_trip);
    tcase_add_test(tc, test_time_clamped);
    tcase_add_test(tc, test_valid_rejects);
    tcase_add_test(tc, test_time_of_invalid);
    tcase_add_test(tc, test_random_failure);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(id_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
