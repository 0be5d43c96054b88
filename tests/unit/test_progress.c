/* test_progress.c: unit tests for the bulk commands' progress line
 * (cli/progress.c): what it shows, the rate and time left, and which fields
 * give way when the terminal is narrow. */
#include "progress.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

/* half is 500 of 1000 requests final after 2 s: 250/s, 2 s left. */
static struct progress half(void)
{
    return (struct progress){.total = 1000,
                             .done = 500,
                             .ok = 490,
                             .failed = 10,
                             .done_label = "final",
                             .ok_label = "succeeded",
                             .failed_label = "failed",
                             .start_ms = 1000};
}

START_TEST(test_full_line)
{
    char out[512];
    struct progress p = half();
    progress_line(out, sizeof out, &p, 3000, 100);
    ck_assert_str_eq(out, "[###############---------------]   50%  500/1000 final  succeeded 490  "
                          "failed 10  250/s  2s left");
    p.done = 1000;
    p.ok = 990;
    progress_line(out, sizeof out, &p, 3000, 100);
    /* No time left once all are done. */
    ck_assert_str_eq(out, "[##############################]  100%  1000/1000 final  succeeded 990  "
                          "failed 10  500/s");
}
END_TEST

/* Before half a second, or with nothing done, there is no rate to show. */
START_TEST(test_no_rate_yet)
{
    char out[512];
    struct progress p = half();
    progress_line(out, sizeof out, &p, 1400, 100);
    ck_assert_ptr_null(strstr(out, "/s"));
    p.done = p.ok = p.failed = 0;
    progress_line(out, sizeof out, &p, 9000, 100);
    ck_assert_str_eq(out,
                     "[------------------------------]    0%  0/1000 final  succeeded 0  failed 0");
}
END_TEST

/* Narrower terminals drop whole fields: the bar, the time left, the rate,
 * then the outcomes; the count stays, cut only when nothing else fits. */
START_TEST(test_narrow)
{
    static const struct {
        int width;
        const char *line;
    } cases[] = {
        {80, "[#######-------]   50%  500/1000 final  succeeded 490  failed 10  250/s  2s left"},
        {65, " 50%  500/1000 final  succeeded 490  failed 10  250/s  2s left"},
        {60, " 50%  500/1000 final  succeeded 490  failed 10  250/s"},
        {50, " 50%  500/1000 final  succeeded 490  failed 10"},
        {40, " 50%  500/1000 final  succeeded 490"},
        {30, " 50%  500/1000 final"},
        {10, " 50%  500/"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[512];
        struct progress p = half();
        progress_line(out, sizeof out, &p, 3000, cases[i].width);
        ck_assert_str_eq(out, cases[i].line);
        ck_assert_int_le((int)strlen(out), cases[i].width);
    }
}
END_TEST

START_TEST(test_time_left)
{
    char out[512];
    struct progress p = half();
    p.total = 200;
    p.done = 1;
    p.start_ms = 0;
    progress_line(out, sizeof out, &p, 1000, 200);
    ck_assert_ptr_nonnull(strstr(out, "  1.0/s  3m19s left"));
    p.total = 36000;
    progress_line(out, sizeof out, &p, 1000, 200);
    ck_assert_ptr_nonnull(strstr(out, "  9h59m left"));
}
END_TEST

START_TEST(test_rate)
{
    static const struct {
        double per_s;
        const char *text;
    } cases[] = {{0, "0.0/s"},      {0.44, "0.4/s"},  {9.96, "10/s"},   {999.4, "999/s"},
                 {999.6, "1.0k/s"}, {12500, "12k/s"}, {9949, "9.9k/s"}, {9951, "10k/s"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[32];
        progress_rate(out, sizeof out, cases[i].per_s);
        ck_assert_str_eq(out, cases[i].text);
    }
}
END_TEST

static Suite *progress_suite(void)
{
    Suite *s = suite_create("progress");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_full_line);
    tcase_add_test(tc, test_no_rate_yet);
    tcase_add_test(tc, test_narrow);
    tcase_add_test(tc, test_time_left);
    tcase_add_test(tc, test_rate);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(progress_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
