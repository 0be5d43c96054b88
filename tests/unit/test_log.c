/* test_log.c: unit tests for JSON-lines logging (common/log.c). stderr is
 * redirected to a pipe in the forked test process and each line is parsed
 * with the strict JSON parser. */
#include "log.h"

#include "buf.h"
#include "json.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* capture is stderr redirected into a pipe; capture_end restores stderr and
 * returns everything written meanwhile (caller frees). */
struct capture {
    int saved;
    int rd;
};

static void capture_start(struct capture *c)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    c->saved = dup(STDERR_FILENO);
    ck_assert_int_ge(c->saved, 0);
    ck_assert_int_ge(dup2(p[1], STDERR_FILENO), 0);
    close(p[1]);
    c->rd = p[0];
}

static void capture_stop_writing(struct capture *c)
{
    ck_assert_int_ge(dup2(c->saved, STDERR_FILENO), 0);
    close(c->saved);
}

static char *capture_read(int fd, size_t *len)
{
    struct buf b;
    buf_init(&b, 16 << 20);
    char chunk[8192];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof chunk)) > 0)
        ck_assert_int_eq(buf_append(&b, chunk, (size_t)n), 0);
    close(fd);
    return buf_take(&b, len);
}

static char *capture_end(struct capture *c, size_t *len)
{
    capture_stop_writing(c);
    return capture_read(c->rd, len);
}

/* parse_line checks that s is exactly one JSON line and returns the object. */
static struct json_object *parse_line(const char *s, size_t len)
{
    ck_assert_uint_gt(len, 0);
    ck_assert_uint_le(len, 4096);
    ck_assert_int_eq(s[len - 1], '\n');
    ck_assert_ptr_eq(memchr(s, '\n', len), s + len - 1);
    char why[128] = "";
    struct json_object *o = json_parse(s, len, why, sizeof why);
    ck_assert_msg(o != NULL, "bad line (%s): %.*s", why, (int)len, s);
    return o;
}

static const char *field(struct json_object *o, const char *name)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, name, &v)) return NULL;
    return json_object_get_string(v);
}

START_TEST(test_fields)
{
    log_init("ingress", LOG_INFO);
    struct capture c;
    capture_start(&c);
    int line = __LINE__ + 1;
    log_warn("hello %s %d /", "wor\"ld\n\t\\", 42);
    size_t len;
    char *s = capture_end(&c, &len);
    struct json_object *o = parse_line(s, len);

    ck_assert_str_eq(field(o, "level"), "warn");
    ck_assert_str_eq(field(o, "component"), "ingress");
    char src[64];
    snprintf(src, sizeof src, "test_log.c:%d", line);
    ck_assert_str_eq(field(o, "src"), src);
    ck_assert_str_eq(field(o, "msg"), "hello wor\"ld\n\t\\ 42 /");
    ck_assert_ptr_null(field(o, "truncated"));
    const char *ts = field(o, "ts");
    ck_assert_uint_eq(strlen(ts), 24); /* 2026-11-23T10:00:00.123Z */
    ck_assert_int_eq(ts[4], '-');
    ck_assert_int_eq(ts[10], 'T');
    ck_assert_int_eq(ts[19], '.');
    ck_assert_int_eq(ts[23], 'Z');
    ck_assert_int_eq(strncmp(s, "{\"ts\":", 6), 0);
    json_object_put(o);
    free(s);
}
END_TEST

START_TEST(test_level_filter)
{
    log_init("worker", LOG_WARN);
    int evaluated = 0;
    struct capture c;
    capture_start(&c);
    log_debug("debug %d", ++evaluated);
    log_info("info %d", ++evaluated);
    log_error("boom %d", 7);
    size_t len;
    char *s = capture_end(&c, &len);
    ck_assert_int_eq(evaluated, 0); /* arguments of disabled lines are not evaluated */
    struct json_object *o = parse_line(s, len);
    ck_assert_str_eq(field(o, "level"), "error");
    ck_assert_str_eq(field(o, "msg"), "boom 7");
    ck_assert_str_eq(field(o, "component"), "worker");
    json_object_put(o);
    free(s);
}
END_TEST

START_TEST(test_direct_call_filtered)
{
    log_init("x", LOG_ERROR);
    struct capture c;
    capture_start(&c);
    log_write(LOG_INFO, "a/b/c.c", 3, "not written");
    size_t len;
    char *s = capture_end(&c, &len);
    ck_assert_uint_eq(len, 0);
    free(s);
}
END_TEST

/* log_one captures a single line for message msg and returns the parsed object. */
static struct json_object *log_one(const char *msg)
{
    log_init("t", LOG_DEBUG);
    struct capture c;
    capture_start(&c);
    log_debug("%s", msg);
    size_t len;
    char *s = capture_end(&c, &len);
    struct json_object *o = parse_line(s, len);
    free(s);
    return o;
}

START_TEST(test_long_line_cut)
{
    static const char fill[] = {'a', '"', '\x01'};
    for (size_t f = 0; f < sizeof fill; f++) {
        char *msg = malloc(10001);
        ck_assert_ptr_nonnull(msg);
        memset(msg, fill[f], 10000);
        msg[10000] = '\0';
        struct json_object *o = log_one(msg);
        const char *got = field(o, "msg");
        ck_assert_uint_gt(strlen(got), 500);
        ck_assert_int_eq(strncmp(got, msg, strlen(got)), 0);
        ck_assert_str_eq(field(o, "truncated"), "true");
        json_object_put(o);
        free(msg);
    }
}
END_TEST

START_TEST(test_just_fits)
{
    /* Long enough to be cut by the 4 KiB line limit but not by the message buffer. */
    char msg[3900];
    memset(msg, 'b', sizeof msg - 1);
    msg[sizeof msg - 1] = '\0';
    struct json_object *o = log_one(msg);
    ck_assert_str_eq(field(o, "msg"), msg);
    ck_assert_ptr_null(field(o, "truncated"));
    json_object_put(o);
}
END_TEST

START_TEST(test_utf8_kept_valid)
{
    /* 3000 two-byte characters: the cut must not split one. */
    char *msg = malloc(6001);
    ck_assert_ptr_nonnull(msg);
    for (int i = 0; i < 3000; i++)
        memcpy(msg + 2 * i, "\xc3\xa9", 2);
    msg[6000] = '\0';
    struct json_object *o = log_one(msg);
    ck_assert_str_eq(field(o, "truncated"), "true");
    ck_assert_uint_eq(strlen(field(o, "msg")) % 2, 0);
    json_object_put(o);
    free(msg);

    o = log_one("bad \xff\xc0\x80 ok \xf0\x9f\x98\x80 end \xe2\x82");
    ck_assert_str_eq(field(o, "msg"), "bad \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd ok "
                                      "\xf0\x9f\x98\x80 end \xef\xbf\xbd\xef\xbf\xbd");
    json_object_put(o);
}
END_TEST

START_TEST(test_errno_preserved)
{
    log_init("t", LOG_INFO);
    struct capture c;
    capture_start(&c);
    errno = EAGAIN;
    log_info("x");
    ck_assert_int_eq(errno, EAGAIN);
    size_t len;
    free(capture_end(&c, &len));
}
END_TEST

START_TEST(test_level_parse)
{
    ck_assert_int_eq(log_level_parse("debug"), LOG_DEBUG);
    ck_assert_int_eq(log_level_parse("info"), LOG_INFO);
    ck_assert_int_eq(log_level_parse("warn"), LOG_WARN);
    ck_assert_int_eq(log_level_parse("error"), LOG_ERROR);
    ck_assert_int_eq(log_level_parse("warning"), -1);
    ck_assert_int_eq(log_level_parse("INFO"), -1);
    ck_assert_int_eq(log_level_parse(""), -1);
    ck_assert_int_eq(log_level_parse(NULL), -1);
}
END_TEST

enum { THREADS = 4, LINES = 50 };

static void *log_many(void *arg)
{
    char msg[3801];
    memset(msg, 'A' + (int)(size_t)arg, sizeof msg - 1);
    msg[sizeof msg - 1] = '\0';
    for (int i = 0; i < LINES; i++)
        log_info("%s", msg);
    return NULL;
}

/* Long lines from several threads must come out whole, one per line. */
START_TEST(test_threads_do_not_interleave)
{
    log_init("t", LOG_INFO);
    struct capture c;
    capture_start(&c);
    pthread_t th[THREADS];
    for (size_t i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, log_many, (void *)i), 0);
    /* The writers fill the pipe long before they finish, so read while they run. */
    int rd = c.rd;
    size_t len = 0;
    struct buf all;
    buf_init(&all, 16 << 20);
    char chunk[8192];
    int lines = 0;
    while (lines < THREADS * LINES) {
        ssize_t n = read(rd, chunk, sizeof chunk);
        ck_assert_int_gt(n, 0);
        ck_assert_int_eq(buf_append(&all, chunk, (size_t)n), 0);
        for (ssize_t i = 0; i < n; i++)
            lines += chunk[i] == '\n';
    }
    for (size_t i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    capture_stop_writing(&c);
    close(rd);
    char *s = buf_take(&all, &len);
    for (char *p = s; p < s + len;) {
        char *nl = memchr(p, '\n', (size_t)(s + len - p));
        ck_assert_ptr_nonnull(nl);
        struct json_object *o = parse_line(p, (size_t)(nl + 1 - p));
        const char *m = field(o, "msg");
        ck_assert_uint_eq(strlen(m), 3800);
        ck_assert_uint_eq(strspn(m, (char[]){m[0], '\0'}), 3800);
        json_object_put(o);
        p = nl + 1;
    }
    free(s);
}
END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_fields);
    tcase_add_test(tc, test_level_filter);
    tcase_add_test(tc, test_direct_call_filtered);
    tcase_add_test(tc, test_long_line_cut);
    tcase_add_test(tc, test_just_fits);
    tcase_add_test(tc, test_utf8_kept_valid);
    tcase_add_test(tc, test_errno_preserved);
    tcase_add_test(tc, test_level_parse);
    tcase_add_test(tc, test_threads_do_not_interleave);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(log_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
