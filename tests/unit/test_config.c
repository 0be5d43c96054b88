/* test_config.c: the Check suite of config.c. It loads the documented
 * example, a document with every setting changed, every environment override,
 * SLUICE_KEYS/SLUICE_ROUTES, and many bad documents, each of which must be
 * refused with a message naming the offending key. */
#include "config.h"

#include <check.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* SHA-256 of "demo-token", "alpha-token" and "beta-token", from sha256sum. */
#define DEMO_SHA "7c43ef5ae21d43ce2743f770c68e24def1a43ee2f416d2438410c8af7af2ff2c"
#define ALPHA_SHA "a336d9b1d8b8647875238537ca5087b0ea335afd2032936aecdffc3e4b13f720"
#define BETA_SHA "863d63c0bd3a94bfca84ed2063a7355a226faff82ca50b90158bf183aa1a9e61"

static const char *const env_vars[] = {
    "SLUICE_AMQP_URL",
    "SLUICE_NAMESPACE",
    "SLUICE_LOG_LEVEL",
    "SLUICE_QUEUE_TYPE",
    "SLUICE_DELIVERY_LIMIT",
    "SLUICE_ADMIN_TOKEN",
    "SLUICE_LISTEN",
    "SLUICE_THREADS",
    "SLUICE_MAX_BODY_BYTES",
    "SLUICE_STATUS_RETENTION_S",
    "SLUICE_MAX_STATUS_ENTRIES",
    "SLUICE_CONFIRM_TIMEOUT_MS",
    "SLUICE_MAX_CONNECTIONS",
    "SLUICE_CONNECTION_TIMEOUT_S",
    "SLUICE_MAX_WAIT_S",
    "SLUICE_MAX_CONNECTIONS_PER_IP",
    "SLUICE_REQUEST_TIMEOUT_S",
    "SLUICE_MAX_HEADER_BYTES",
    "SLUICE_MAX_URL_BYTES",
    "SLUICE_TLS_CERT_FILE",
    "SLUICE_TLS_KEY_FILE",
    "SLUICE_CORS_ORIGINS",
    "SLUICE_CORS_MAX_AGE_S",
    "SLUICE_ID_SECRET",
    "SLUICE_BATCH_SIZE",
    "SLUICE_BATCH_LINGER_MS",
    "SLUICE_PREFETCH",
    "SLUICE_METRICS_LISTEN",
    "SLUICE_RETRY_HOLD_MAX_MS",
    "SLUICE_RESULT_MAX_BYTES",
    "SLUICE_SHUTDOWN_GRACE_MS",
    "SLUICE_MAX_HOST_CONNECTIONS",
    "SLUICE_KEYS",
    "SLUICE_ROUTES",
};
#define N_ENV_VARS (sizeof env_vars / sizeof env_vars[0])

/* The example of the task brief, verbatim but for the real hash. */
static const char example[] =
    "{\n"
    "  \"amqp_url\": \"amqp://guest:guest@127.0.0.1:5672/\",\n"
    "  \"namespace\": \"sluice\",\n"
    "  \"log_level\": \"info\",\n"
    "  \"ingress\": {\"listen\": \"127.0.0.1:8080\", \"threads\": 2, \"max_body_bytes\": 1048576,\n"
    "              \"status_retention_s\": 86400, \"max_status_entries\": 1000000,\n"
    "              \"confirm_timeout_ms\": 5000, \"max_connections\": 10000, "
    "\"connection_timeout_s\": 30},\n"
    "  \"worker\": {\"batch_size\": 100, \"batch_linger_ms\": 5, \"prefetch\": 200,\n"
    "             \"metrics_listen\": \"127.0.0.1:9091\", \"retry_hold_max_ms\": 1000,\n"
    "             \"result_max_bytes\": 65536, \"shutdown_grace_ms\": 10000, "
    "\"max_host_connections\": 64},\n"
    "  \"keys\": [{\"id\": \"demo\", \"secret_sha256\": \"" DEMO_SHA "\",\n"
    "            \"tenant\": \"demo\", \"rate_per_s\": 0, \"burst\": 0, \"max_priority\": 9, "
    "\"routes\": [\"*\"]}],\n"
    "  \"routes\": {\"echo\": {\"upstreams\": [\"http://127.0.0.1:18080\"], \"timeout_ms\": 5000,\n"
    "             \"max_attempts\": 4, \"backoff_ms\": 100, \"backoff_max_ms\": 10000,\n"
    "             \"rate_per_s\": 0, \"max_in_flight\": 0}}\n"
    "}\n";

/* changed sets every setting to something other than its default. */
static const char changed[] =
    "{\"amqp_url\": \"amqps://u:p@mq.internal:5671/vh\", \"namespace\": \"prod-1.a_b\",\n"
    " \"log_level\": \"debug\", \"queue_type\": \"quorum\", \"delivery_limit\": 5,\n"
    " \"ingress\": {\"listen\": \"[::1]:9000\", \"threads\": 8, \"max_body_bytes\": 4096,\n"
    "   \"status_retention_s\": 3600, \"max_status_entries\": 5000, \"confirm_timeout_ms\": 250,\n"
    "   \"max_connections\": 64, \"connection_timeout_s\": 7},\n"
    " \"worker\": {\"batch_size\": 10, \"batch_linger_ms\": 0, \"prefetch\": 20,\n"
    "   \"metrics_listen\": \"0.0.0.0:0\", \"retry_hold_max_ms\": 0, \"result_max_bytes\": 0,\n"
    "   \"shutdown_grace_ms\": 1, \"max_host_connections\": 2},\n"
    " \"routes\": {\n"
    "   \"echo\": {\"upstreams\": [\"http://a:1/\", \"https://b/prefix//\"], \"timeout_ms\": 1,\n"
    "     \"max_attempts\": 100, \"backoff_ms\": 7, \"backoff_max_ms\": 7, \"rate_per_s\": 2.5,\n"
    "     \"max_in_flight\": 3, \"burst\": 4, \"breaker\": {\"consecutive_failures\": 3,\n"
    "     \"failure_ratio\": 0.5, \"window_s\": 30, \"min_calls\": 6, \"open_ms\": 200,\n"
    "     \"max_open_ms\": 800}},\n"
    "   \"Orders_v2.x-y\": {\"upstreams\": [\"http://orders\"]}},\n"
    " \"keys\": [\n"
    "   {\"id\": \"alpha\", \"secret_sha256\": \"" ALPHA_SHA "\", \"tenant\": \"t-a\",\n"
    "    \"rate_per_s\": 1.5, \"burst\": 10, \"max_priority\": 3, \"routes\": [\"echo\"]},\n"
    "   {\"id\": \"beta\", \"secret_sha256\": \"" BETA_SHA "\", \"tenant\": \"t-b\"}]}\n";

/* clear_env runs in each forked test, so the caller's environment cannot leak in. */
static void clear_env(void)
{
    for (size_t i = 0; i < N_ENV_VARS; i++)
        unsetenv(env_vars[i]);
}

static void assert_zeroed(const struct cfg *c)
{
    static const struct cfg zero;

    ck_assert_msg(!memcmp(c, &zero, sizeof zero), "a failed load left data in struct cfg");
}

/* load_bad loads doc, which must fail, and returns the message in err. */
static void load_bad(const char *doc, char *err, size_t errlen)
{
    struct cfg c;

    ck_assert_msg(cfg_load_string(&c, doc, "bad.json", err, errlen) == -1, "accepted: %s", doc);
    assert_zeroed(&c);
}

static void assert_has(const char *err, const char *want)
{
    ck_assert_msg(strstr(err, want) != NULL, "message \"%s\" lacks \"%s\"", err, want);
}

static long long_at(const struct cfg *c, size_t off)
{
    return *(const long *)((const char *)c + off);
}

static const char *str_at(const struct cfg *c, size_t off)
{
    return *(char *const *)((const char *)c + off);
}

START_TEST(test_defaults)
{
    struct cfg c;
    char err[256] = "";

    ck_assert_int_eq(cfg_load(&c, NULL, err, sizeof err), 0);
    ck_assert_str_eq(c.amqp_url, "amqp://guest:guest@127.0.0.1:5672/");
    ck_assert_str_eq(c.namespace, "sluice");
    ck_assert_str_eq(c.log_level, "info");
    ck_assert_str_eq(c.queue_type, "classic");
    ck_assert_int_eq(c.delivery_limit, 20);
    ck_assert_str_eq(c.admin_token, "");
    ck_assert_str_eq(c.ingress.listen, "127.0.0.1:8080");
    ck_assert_int_eq(c.ingress.threads, 2);
    ck_assert_int_eq(c.ingress.max_body_bytes, 1048576);
    ck_assert_int_eq(c.ingress.status_retention_s, 86400);
    ck_assert_int_eq(c.ingress.max_status_entries, 1000000);
    ck_assert_int_eq(c.ingress.confirm_timeout_ms, 5000);
    ck_assert_int_eq(c.ingress.max_connections, 10000);
    ck_assert_int_eq(c.ingress.connection_timeout_s, 30);
    ck_assert_int_eq(c.worker.batch_size, 100);
    ck_assert_int_eq(c.worker.batch_linger_ms, 5);
    ck_assert_int_eq(c.worker.prefetch, 200);
    ck_assert_str_eq(c.worker.metrics_listen, "127.0.0.1:9091");
    ck_assert_int_eq(c.worker.retry_hold_max_ms, 1000);
    ck_assert_int_eq(c.worker.result_max_bytes, 65536);
    ck_assert_int_eq(c.worker.shutdown_grace_ms, 10000);
    ck_assert_int_eq(c.worker.max_host_connections, 64);
    ck_assert_uint_eq(c.n_keys, 0);
    ck_assert_ptr_null(c.keys);
    ck_assert_uint_eq(c.n_routes, 0);
    ck_assert_ptr_null(c.routes);
    ck_assert_ptr_null(cfg_key_for_token(&c, "demo-token", 10));
    cfg_free(&c);
}
END_TEST

START_TEST(test_empty_document_gives_defaults)
{
    struct cfg c;
    char err[256] = "";

    ck_assert_int_eq(cfg_load_string(&c, " {\n} \n", "empty.json", err, sizeof err), 0);
    ck_assert_int_eq(c.ingress.threads, 2);
    ck_assert_str_eq(c.namespace, "sluice");
    ck_assert_uint_eq(c.n_keys, 0);
    cfg_free(&c);
}
END_TEST

START_TEST(test_example)
{
    static const unsigned char demo[CFG_SHA256_LEN] = {
        0x7c, 0x43, 0xef, 0x5a, 0xe2, 0x1d, 0x43, 0xce, 0x27, 0x43, 0xf7,
        0x70, 0xc6, 0x8e, 0x24, 0xde, 0xf1, 0xa4, 0x3e, 0xe2, 0xf4, 0x16,
        0xd2, 0x43, 0x84, 0x10, 0xc8, 0xaf, 0x7a, 0xf2, 0xff, 0x2c};
    struct cfg c;
    char err[256] = "";

    ck_assert_msg(cfg_load_string(&c, example, "example.json", err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(c.amqp_url, "amqp://guest:guest@127.0.0.1:5672/");
    ck_assert_str_eq(c.namespace, "sluice");
    ck_assert_str_eq(c.log_level, "info");
    ck_assert_str_eq(c.queue_type, "classic");
    ck_assert_int_eq(c.delivery_limit, 20);
    ck_assert_str_eq(c.ingress.listen, "127.0.0.1:8080");
    ck_assert_int_eq(c.ingress.threads, 2);
    ck_assert_int_eq(c.ingress.max_body_bytes, 1048576);
    ck_assert_int_eq(c.ingress.status_retention_s, 86400);
    ck_assert_int_eq(c.ingress.max_status_entries, 1000000);
    ck_assert_int_eq(c.ingress.confirm_timeout_ms, 5000);
    ck_assert_int_eq(c.ingress.max_connections, 10000);
    ck_assert_int_eq(c.ingress.connection_timeout_s, 30);
    ck_assert_int_eq(c.worker.batch_size, 100);
    ck_assert_int_eq(c.worker.batch_linger_ms, 5);
    ck_assert_int_eq(c.worker.prefetch, 200);
    ck_assert_str_eq(c.worker.metrics_listen, "127.0.0.1:9091");
    ck_assert_int_eq(c.worker.retry_hold_max_ms, 1000);
    ck_assert_int_eq(c.worker.result_max_bytes, 65536);
    ck_assert_int_eq(c.worker.shutdown_grace_ms, 10000);
    ck_assert_int_eq(c.worker.max_host_connections, 64);

    ck_assert_uint_eq(c.n_keys, 1);
    ck_assert_str_eq(c.keys[0].id, "demo");
    ck_assert_mem_eq(c.keys[0].secret_sha256, demo, CFG_SHA256_LEN);
    ck_assert_str_eq(c.keys[0].tenant, "demo");
    ck_assert_double_eq(c.keys[0].rate_per_s, 0);
    ck_assert_int_eq(c.keys[0].burst, 0);
    ck_assert_int_eq(c.keys[0].max_priority, 9);
    ck_assert_uint_eq(c.keys[0].n_routes, 1);
    ck_assert_str_eq(c.keys[0].routes[0], "*");

    ck_assert_uint_eq(c.n_routes, 1);
    ck_assert_str_eq(c.routes[0].name, "echo");
    ck_assert_uint_eq(c.routes[0].n_upstreams, 1);
    ck_assert_str_eq(c.routes[0].upstreams[0], "http://127.0.0.1:18080");
    ck_assert_int_eq(c.routes[0].timeout_ms, 5000);
    ck_assert_int_eq(c.routes[0].max_attempts, 4);
    ck_assert_int_eq(c.routes[0].backoff_ms, 100);
    ck_assert_int_eq(c.routes[0].backoff_max_ms, 10000);
    ck_assert_double_eq(c.routes[0].rate_per_s, 0);
    ck_assert_int_eq(c.routes[0].max_in_flight, 0);
    cfg_free(&c);
}
END_TEST

static void assert_changed(const struct cfg *c)
{
    ck_assert_str_eq(c->amqp_url, "amqps://u:p@mq.internal:5671/vh");
    ck_assert_str_eq(c->namespace, "prod-1.a_b");
    ck_assert_str_eq(c->log_level, "debug");
    ck_assert_str_eq(c->queue_type, "quorum");
    ck_assert_int_eq(c->delivery_limit, 5);
    ck_assert_str_eq(c->ingress.listen, "[::1]:9000");
    ck_assert_int_eq(c->ingress.threads, 8);
    ck_assert_int_eq(c->ingress.max_body_bytes, 4096);
    ck_assert_int_eq(c->ingress.status_retention_s, 3600);
    ck_assert_int_eq(c->ingress.max_status_entries, 5000);
    ck_assert_int_eq(c->ingress.confirm_timeout_ms, 250);
    ck_assert_int_eq(c->ingress.max_connections, 64);
    ck_assert_int_eq(c->ingress.connection_timeout_s, 7);
    ck_assert_int_eq(c->worker.batch_size, 10);
    ck_assert_int_eq(c->worker.batch_linger_ms, 0);
    ck_assert_int_eq(c->worker.prefetch, 20);
    ck_assert_str_eq(c->worker.metrics_listen, "0.0.0.0:0");
    ck_assert_int_eq(c->worker.retry_hold_max_ms, 0);
    ck_assert_int_eq(c->worker.result_max_bytes, 0);
    ck_assert_int_eq(c->worker.shutdown_grace_ms, 1);
    ck_assert_int_eq(c->worker.max_host_connections, 2);
}

START_TEST(test_every_setting_changed)
{
    struct cfg c;
    char err[256] = "";
    const struct cfg_route *r;

    ck_assert_msg(cfg_load_string(&c, changed, "changed.json", err, sizeof err) == 0, "%s", err);
    assert_changed(&c);
    ck_assert_uint_eq(c.n_routes, 2);
    r = cfg_route_find(&c, "echo", 4);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(r->n_upstreams, 2);
    ck_assert_str_eq(r->upstreams[0], "http://a:1");
    ck_assert_str_eq(r->upstreams[1], "https://b/prefix");
    ck_assert_int_eq(r->timeout_ms, 1);
    ck_assert_int_eq(r->max_attempts, 100);
    ck_assert_int_eq(r->backoff_ms, 7);
    ck_assert_int_eq(r->backoff_max_ms, 7);
    ck_assert_double_eq(r->rate_per_s, 2.5);
    ck_assert_int_eq(r->max_in_flight, 3);
    ck_assert_int_eq(r->burst, 4);
    ck_assert(cfg_route_limited(r));
    ck_assert(r->breaker.enabled);
    ck_assert_int_eq(r->breaker.consecutive_failures, 3);
    ck_assert_double_eq(r->breaker.failure_ratio, 0.5);
    ck_assert_int_eq(r->breaker.window_s, 30);
    ck_assert_int_eq(r->breaker.min_calls, 6);
    ck_assert_int_eq(r->breaker.open_ms, 200);
    ck_assert_int_eq(r->breaker.max_open_ms, 800);
    r = cfg_route_find(&c, "Orders_v2.x-y", 13);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(r->upstreams[0], "http://orders");
    ck_assert_int_eq(r->timeout_ms, 5000);
    ck_assert_int_eq(r->max_attempts, 4);
    ck_assert_int_eq(r->backoff_ms, 100);
    ck_assert_int_eq(r->backoff_max_ms, 10000);
    ck_assert(!cfg_route_limited(r));
    ck_assert(!r->breaker.enabled);
    ck_assert_int_eq(r->burst, 0);

    ck_assert_uint_eq(c.n_keys, 2);
    ck_assert_str_eq(c.keys[0].id, "alpha");
    ck_assert_str_eq(c.keys[0].tenant, "t-a");
    ck_assert_double_eq(c.keys[0].rate_per_s, 1.5);
    ck_assert_int_eq(c.keys[0].burst, 10);
    ck_assert_int_eq(c.keys[0].max_priority, 3);
    ck_assert_uint_eq(c.keys[0].n_routes, 1);
    ck_assert_str_eq(c.keys[0].routes[0], "echo");
    /* beta left every optional field out. */
    ck_assert_str_eq(c.keys[1].id, "beta");
    ck_assert_double_eq(c.keys[1].rate_per_s, 0);
    ck_assert_int_eq(c.keys[1].burst, 0);
    ck_assert_int_eq(c.keys[1].max_priority, 9);
    ck_assert_uint_eq(c.keys[1].n_routes, 1);
    ck_assert_str_eq(c.keys[1].routes[0], "*");
    cfg_free(&c);
}
END_TEST

/* write_temp writes text (len bytes) to a new file whose name lands in path. */
static void write_temp(char *path, size_t pathlen, const char *text, size_t len)
{
    int fd;

    snprintf(path, pathlen, "/tmp/test_config_XXXXXX");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    ck_assert_int_eq(close(fd), 0);
}

START_TEST(test_load_file)
{
    struct cfg c;
    char path[64], err[256] = "";
    int rc;

    write_temp(path, sizeof path, changed, strlen(changed));
    rc = cfg_load(&c, path, err, sizeof err);
    unlink(path);
    ck_assert_msg(rc == 0, "%s", err);
    assert_changed(&c);
    ck_assert_uint_eq(c.n_keys, 2);
    cfg_free(&c);
}
END_TEST

START_TEST(test_load_file_errors)
{
    static const char nul[] = "{\"namespace\":\"a\"}\0{}";
    static const char syntax[] = "{\n  \"namespace\": \"a\",\n  \"log_level\": }\n";
    struct cfg c;
    char path[64], want[128], err[256] = "";
    int rc;

    ck_assert_int_eq(cfg_load(&c, "/nonexistent/sluice.json", err, sizeof err), -1);
    assert_zeroed(&c);
    assert_has(err, "config /nonexistent/sluice.json: cannot read: No such file");
    ck_assert_int_eq(cfg_load(&c, "/", err, sizeof err), -1);
    assert_has(err, "config /: cannot read");

    write_temp(path, sizeof path, nul, sizeof nul - 1);
    rc = cfg_load(&c, path, err, sizeof err);
    unlink(path);
    ck_assert_int_eq(rc, -1);
    assert_zeroed(&c);
    assert_has(err, "contains a NUL byte");

    write_temp(path, sizeof path, syntax, strlen(syntax));
    rc = cfg_load(&c, path, err, sizeof err);
    unlink(path);
    ck_assert_int_eq(rc, -1);
    snprintf(want, sizeof want, "config %s: line 3, column 16: invalid JSON", path);
    assert_has(err, want);
}
END_TEST

/* An env_case is one environment override and the field it must set. */
struct env_case {
    const char *var, *value;
    size_t off;
    bool is_str;
};

#define ENV_STR(var, value, field)                                                                 \
    {                                                                                              \
        var, value, offsetof(struct cfg, field), true                                              \
    }
#define ENV_LONG(var, value, field)                                                                \
    {                                                                                              \
        var, value, offsetof(struct cfg, field), false                                             \
    }
static const struct env_case env_cases[] = {
    ENV_STR("SLUICE_AMQP_URL", "amqps://u:p@mq:5671/", amqp_url),
    ENV_STR("SLUICE_AMQP_URL", "amqp://u:p@mq-1:5672/, amqp://u:p@mq-2:5672/", amqp_url),
    ENV_STR("SLUICE_NAMESPACE", "staging", namespace),
    ENV_STR("SLUICE_LOG_LEVEL", "error", log_level),
    ENV_STR("SLUICE_QUEUE_TYPE", "quorum", queue_type),
    ENV_LONG("SLUICE_DELIVERY_LIMIT", "1000", delivery_limit),
    ENV_STR("SLUICE_LISTEN", "0.0.0.0:80", ingress.listen),
    ENV_LONG("SLUICE_THREADS", "7", ingress.threads),
    ENV_LONG("SLUICE_MAX_BODY_BYTES", "268435456", ingress.max_body_bytes),
    ENV_LONG("SLUICE_STATUS_RETENTION_S", "60", ingress.status_retention_s),
    ENV_LONG("SLUICE_MAX_STATUS_ENTRIES", "1000", ingress.max_status_entries),
    ENV_LONG("SLUICE_CONFIRM_TIMEOUT_MS", "60000", ingress.confirm_timeout_ms),
    ENV_LONG("SLUICE_MAX_CONNECTIONS", "16", ingress.max_connections),
    ENV_LONG("SLUICE_CONNECTION_TIMEOUT_S", "3600", ingress.connection_timeout_s),
    ENV_LONG("SLUICE_MAX_WAIT_S", "0", ingress.max_wait_s),
    ENV_LONG("SLUICE_BATCH_SIZE", "150", worker.batch_size),
    ENV_LONG("SLUICE_BATCH_LINGER_MS", "0", worker.batch_linger_ms),
    ENV_LONG("SLUICE_PREFETCH", "65535", worker.prefetch),
    ENV_STR("SLUICE_METRICS_LISTEN", "[::]:9999", worker.metrics_listen),
    ENV_LONG("SLUICE_RETRY_HOLD_MAX_MS", "60000", worker.retry_hold_max_ms),
    ENV_LONG("SLUICE_RESULT_MAX_BYTES", "16777216", worker.result_max_bytes),
    ENV_LONG("SLUICE_SHUTDOWN_GRACE_MS", "600000", worker.shutdown_grace_ms),
    ENV_LONG("SLUICE_MAX_HOST_CONNECTIONS", "10000", worker.max_host_connections),
};
#define N_ENV_CASES (sizeof env_cases / sizeof env_cases[0])

static void assert_env_field(const struct cfg *c, const struct env_case *e)
{
    if (e->is_str)
        ck_assert_str_eq(str_at(c, e->off), e->value);
    else
        ck_assert_int_eq(long_at(c, e->off), strtol(e->value, NULL, 10));
}

/* test_env_override sets one variable and loads with no file, then over the
 * example (the environment wins), then over the changed document. */
START_TEST(test_env_override)
{
    const struct env_case *e = &env_cases[_i];
    struct cfg c;
    char err[256] = "";

    ck_assert_int_eq(setenv(e->var, e->value, 1), 0);
    ck_assert_msg(cfg_load(&c, NULL, err, sizeof err) == 0, "%s: %s", e->var, err);
    assert_env_field(&c, e);
    cfg_free(&c);
    ck_assert_msg(cfg_load_string(&c, example, "example.json", err, sizeof err) == 0, "%s", err);
    assert_env_field(&c, e);
    ck_assert_uint_eq(c.n_keys, 1);
    cfg_free(&c);
    if (!strcmp(e->var, "SLUICE_BATCH_SIZE")) return; /* 150 > prefetch 20 of changed */
    ck_assert_msg(cfg_load_string(&c, changed, "changed.json", err, sizeof err) == 0, "%s", err);
    assert_env_field(&c, e);
    cfg_free(&c);
}
END_TEST

/* SECRET marks the secrets in the bad cases below: no message may repeat it. */
#define SECRET "hunter2"

/* A bad_env is an environment value that must be refused with a message
 * holding want. */
struct bad_env {
    const char *var, *value;
    const char *want;
};

static const struct bad_env bad_envs[] = {
    {"SLUICE_THREADS", "x", "environment: SLUICE_THREADS: must be between 1 and 256 (got \"x\")"},
    {"SLUICE_THREADS", "", "SLUICE_THREADS: must be between 1 and 256 (got \"\")"},
    {"SLUICE_THREADS", "12abc", "SLUICE_THREADS: must be between 1 and 256 (got \"12abc\")"},
    {"SLUICE_THREADS", "257", "SLUICE_THREADS: must be between 1 and 256 (got \"257\")"},
    {"SLUICE_THREADS", "0", "SLUICE_THREADS: must be between 1 and 256 (got \"0\")"},
    {"SLUICE_MAX_BODY_BYTES", "99999999999999999999999", "SLUICE_MAX_BODY_BYTES: must be"},
    {"SLUICE_BATCH_LINGER_MS", "-1", "SLUICE_BATCH_LINGER_MS: must be between 0 and 10000"},
    {"SLUICE_NAMESPACE", "Bad Name", "SLUICE_NAMESPACE: must be 1..64 characters"},
    {"SLUICE_LOG_LEVEL", "loud", "SLUICE_LOG_LEVEL: must be debug, info, warn or error"},
    {"SLUICE_QUEUE_TYPE", "mirrored",
     "environment: SLUICE_QUEUE_TYPE: must be classic or quorum (got \"mirrored\")"},
    {"SLUICE_QUEUE_TYPE", "Quorum",
     "SLUICE_QUEUE_TYPE: must be classic or quorum (got \"Quorum\")"},
    {"SLUICE_QUEUE_TYPE", "stream",
     "SLUICE_QUEUE_TYPE: must be classic or quorum (got \"stream\")"},
    {"SLUICE_QUEUE_TYPE", "", "SLUICE_QUEUE_TYPE: must be classic or quorum (got \"\")"},
    {"SLUICE_DELIVERY_LIMIT", "0",
     "environment: SLUICE_DELIVERY_LIMIT: must be between 1 and 1000 (got \"0\")"},
    {"SLUICE_DELIVERY_LIMIT", "1001", "SLUICE_DELIVERY_LIMIT: must be between 1 and 1000"},
    {"SLUICE_DELIVERY_LIMIT", "twenty", "SLUICE_DELIVERY_LIMIT: must be between 1 and 1000"},
    {"SLUICE_ADMIN_TOKEN", "x" SECRET,
     "environment: SLUICE_ADMIN_TOKEN: must be empty, or 16..256 printable ASCII characters "
     "without spaces (value not shown)"},
    {"SLUICE_ADMIN_TOKEN", "a long token with " SECRET " inside",
     "SLUICE_ADMIN_TOKEN: must be empty, or 16..256"},
    {"SLUICE_LISTEN", "8080", "SLUICE_LISTEN: must be host:port"},
    {"SLUICE_METRICS_LISTEN", "h:65536", "SLUICE_METRICS_LISTEN: must be host:port"},
    {"SLUICE_AMQP_URL", "http://u:" SECRET "@mq/",
     "SLUICE_AMQP_URL: must be an AMQP URL (amqp:// or amqps://), or the URLs of one cluster's "
     "nodes separated by commas"},
    {"SLUICE_AMQP_URL", "amqp://u:" SECRET "@mq-1/,http://u:" SECRET "@mq-2/",
     "SLUICE_AMQP_URL: must be an AMQP URL"},
    {"SLUICE_PREFETCH", "50", "worker.prefetch: must be >= worker.batch_size (100) (got 50)"},
    {"SLUICE_KEYS", "not json", "environment SLUICE_KEYS: line 1, column 2: invalid JSON"},
    {"SLUICE_KEYS", "", "environment SLUICE_KEYS: line 1"},
    {"SLUICE_KEYS", "{}", "environment SLUICE_KEYS: must be a JSON array (got {})"},
    {"SLUICE_KEYS", "[{\"id\":\"a\",\"secret_sha256\":\"" ALPHA_SHA "\"}]",
     "environment SLUICE_KEYS: keys[0].tenant: is required"},
    {"SLUICE_ROUTES", "[]", "environment SLUICE_ROUTES: must be a JSON object (got [])"},
    {"SLUICE_ROUTES", "{\"r\":{\"upstreams\":[\"ftp://x\"]}}",
     "environment SLUICE_ROUTES: routes.r.upstreams[0]: must start with http:// or https:// "
     "(got \"ftp://x\")"},
};
#define N_BAD_ENVS (sizeof bad_envs / sizeof bad_envs[0])

START_TEST(test_bad_env)
{
    const struct bad_env *b = &bad_envs[_i];
    struct cfg c;
    char err[512] = "";

    ck_assert_int_eq(setenv(b->var, b->value, 1), 0);
    ck_assert_msg(cfg_load(&c, NULL, err, sizeof err) == -1, "%s=%s accepted", b->var, b->value);
    assert_zeroed(&c);
    assert_has(err, b->want);
    ck_assert_msg(strstr(err, SECRET) == NULL, "message \"%s\" leaks a secret", err);
    /* The same value over a file must be refused the same way. */
    load_bad(example, err, sizeof err);
    assert_has(err, b->want);
}
END_TEST

START_TEST(test_env_lists_replace_file)
{
    struct cfg c;
    char err[256] = "";

    setenv("SLUICE_ROUTES", "{\"orders\":{\"upstreams\":[\"https://orders.internal/api/\"]}}", 1);
    setenv("SLUICE_KEYS",
           "[{\"id\":\"k2\",\"secret_sha256\":\"" ALPHA_SHA "\",\"tenant\":\"t2\","
           "\"routes\":[\"orders\"]}]",
           1);
    ck_assert_msg(cfg_load_string(&c, example, "example.json", err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(c.n_routes, 1);
    ck_assert_str_eq(c.routes[0].name, "orders");
    ck_assert_str_eq(c.routes[0].upstreams[0], "https://orders.internal/api");
    ck_assert_ptr_null(cfg_route_find(&c, "echo", 4));
    ck_assert_uint_eq(c.n_keys, 1);
    ck_assert_str_eq(c.keys[0].id, "k2");
    ck_assert_ptr_null(cfg_key_for_token(&c, "demo-token", 10));
    ck_assert_ptr_eq(cfg_key_for_token(&c, "alpha-token", 11), &c.keys[0]);
    cfg_free(&c);

    /* With no file at all, as in docker-compose. */
    ck_assert_msg(cfg_load(&c, NULL, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(c.n_routes, 1);
    ck_assert_uint_eq(c.n_keys, 1);
    cfg_free(&c);

    setenv("SLUICE_KEYS", "[]", 1);
    ck_assert_msg(cfg_load_string(&c, example, "example.json", err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(c.n_keys, 0);
    cfg_free(&c);
}
END_TEST

START_TEST(test_env_routes_drop_route_of_file_key)
{
    static const char doc[] =
        "{\"routes\":{\"echo\":{\"upstreams\":[\"http://h\"]}},"
        "\"keys\":[{\"id\":\"a\",\"secret_sha256\":\"" ALPHA_SHA "\",\"tenant\":\"t\","
        "\"routes\":[\"echo\"]}]}";
    char err[256] = "";

    setenv("SLUICE_ROUTES", "{\"orders\":{\"upstreams\":[\"http://o\"]}}", 1);
    load_bad(doc, err, sizeof err);
    assert_has(err, "config bad.json: keys[0].routes[0]: unknown route \"echo\"");
}
END_TEST

#define K(extra)                                                                                   \
    "{\"keys\":[{\"id\":\"a\",\"secret_sha256\":\"" ALPHA_SHA "\",\"tenant\":\"t\"" extra "}]}"
#define KR(extra)                                                                                  \
    "{\"routes\":{\"echo\":{\"upstreams\":[\"http://h\"]}},"                                       \
    "\"keys\":[{\"id\":\"a\",\"secret_sha256\":\"" ALPHA_SHA "\",\"tenant\":\"t\"" extra "}]}"
#define R(extra) "{\"routes\":{\"r\":{\"upstreams\":[\"http://h\"]" extra "}}}"
#define UP(list) "{\"routes\":{\"r\":{\"upstreams\":" list "}}}"
#define LONG65 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define LONG129 LONG65 LONG65 /* 130 characters */
#define DEEP8 "[[[[[[[["
#define DEEP40 DEEP8 DEEP8 DEEP8 DEEP8 DEEP8

/* A bad_case is a document that must be refused with a message holding want. */
struct bad_case {
    const char *doc;
    const char *want;
};

static const struct bad_case bad_docs[] = {
    /* syntax and shape */
    {"{\n  \"namespace\": \"a\",\n  \"log_level\": }", "config bad.json: line 3, column 16:"},
    {"{\"namespace\":\"a\",}", "config bad.json: line 1"},
    {"{'namespace':'a'}", "config bad.json: line 1"},
    {"{} x", "config bad.json: line 1, column 4: invalid JSON"},
    {"{\"namespace\":", "config bad.json: line 1, column 14: invalid JSON"},
    {"", "config bad.json: line 1, column 1"},
    {"[]", "config bad.json: must be a JSON object (got [])"},
    {"null", "config bad.json: must be a JSON object"},
    {"{\"namespace\":\"\xff\"}", "config bad.json: line 1"},
    {"{\"keys\":" DEEP40 "}", "config bad.json: line 1"},
    {"{\"namespace\":\"a\\u0000b\"}", "namespace: must not contain a NUL character"},
    /* unknown keys */
    {"{\"amqp_ur\":\"amqp://h\"}", "config bad.json: unknown key amqp_ur"},
    {"{\"threads\":2}", "unknown key threads"},
    {"{\"ingress\":{\"thread\":2}}", "config bad.json: unknown key ingress.thread"},
    {"{\"worker\":{\"batchsize\":2}}", "unknown key worker.batchsize"},
    {"{\"ingress\":5}", "config bad.json: ingress: must be an object (got 5)"},
    /* clustering */
    {"{\"queue_type\":\"quorum \"}",
     "config bad.json: queue_type: must be classic or quorum (got \"quorum \")"},
    {"{\"queue_type\":\"stream\"}", "queue_type: must be classic or quorum (got \"stream\")"},
    {"{\"queue_type\":true}", "config bad.json: queue_type: must be a string (got true)"},
    {"{\"queue_type\":null}", "queue_type: must be a string (got null)"},
    {"{\"delivery_limit\":\"20\"}", "config bad.json: delivery_limit: must be an integer"},
    {"{\"delivery_limit\":2.5}", "delivery_limit: must be an integer (got 2.5)"},
    {"{\"worker\":{\"queue_type\":\"quorum\"}}", "unknown key worker.queue_type"},
    {"{\"worker\":[]}", "worker: must be an object"},
    /* string scalars */
    {"{\"amqp_url\":\"http://u:" SECRET "@h\"}", "amqp_url: must be an AMQP URL (amqp://"},
    {"{\"amqp_url\":\"amqp://u:" SECRET "@h1/,,amqp://u:" SECRET "@h2/\"}",
     "amqp_url: must be an AMQP URL"},
    {"{\"amqp_url\":\"amqp://u:" SECRET "@h1/,\"}", "amqp_url: must be an AMQP URL"},
    {"{\"amqp_url\":\"amqp://u:" SECRET "@h1:99999/\"}", "amqp_url: must be an AMQP URL"},
    {"{\"amqp_url\":5}", "amqp_url: must be a string"},
    {"{\"namespace\":\"\"}", "namespace: must be 1..64 characters"},
    {"{\"namespace\":\"Sluice\"}", "namespace: must be 1..64 characters"},
    {"{\"namespace\":\"-x\"}", "namespace: must be"},
    {"{\"namespace\":\"a b\"}", "namespace: must be"},
    {"{\"namespace\":\"" LONG65 "\"}", "namespace: must be"},
    {"{\"namespace\":true}", "namespace: must be a string (got true)"},
    {"{\"log_level\":\"verbose\"}",
     "log_level: must be debug, info, warn or error (got \"verbose\")"},
    {"{\"log_level\":null}", "log_level: must be a string (got null)"},
    {"{\"ingress\":{\"listen\":\"localhost\"}}", "ingress.listen: must be host:port"},
    {"{\"ingress\":{\"listen\":\"h:70000\"}}", "ingress.listen: must be host:port"},
    {"{\"ingress\":{\"listen\":\"h:123456\"}}", "ingress.listen: must be host:port"},
    {"{\"ingress\":{\"listen\":\"::1:80\"}}", "ingress.listen: must be host:port"},
    {"{\"ingress\":{\"listen\":\"[::1]80\"}}", "ingress.listen: must be host:port"},
    {"{\"ingress\":{\"listen\":\"[]:80\"}}", "ingress.listen: must be host:port"},
    {"{\"ingress\":{\"listen\":\"h:\"}}", "ingress.listen: must be host:port"},
    {"{\"ingress\":{\"listen\":\":80\"}}", "ingress.listen: must be host:port"},
    {"{\"ingress\":{\"listen\":\"h:8o\"}}", "ingress.listen: must be host:port"},
    {"{\"ingress\":{\"listen\":\"h:-1\"}}", "ingress.listen: must be host:port"},
    {"{\"ingress\":{\"listen\":{\"x\":1}}}", "ingress.listen: must be a string"},
    {"{\"worker\":{\"metrics_listen\":\"x\"}}", "worker.metrics_listen: must be host:port"},
    /* integer scalars: types; ranges are in test_scalar_ranges */
    {"{\"ingress\":{\"threads\":\"2\"}}", "ingress.threads: must be an integer (got \"2\")"},
    {"{\"ingress\":{\"threads\":2.5}}", "ingress.threads: must be an integer (got 2.5)"},
    {"{\"ingress\":{\"threads\":null}}", "ingress.threads: must be an integer (got null)"},
    {"{\"ingress\":{\"threads\":99999999999999999999}}", "ingress.threads: must be between 1"},
    {"{\"ingress\":{\"threads\":-99999999999999999999}}", "ingress.threads: must be between 1"},
    {"{\"worker\":{\"prefetch\":50}}",
     "config bad.json: worker.prefetch: must be >= worker.batch_size (100) (got 50)"},
    {"{\"worker\":{\"batch_size\":300}}", "worker.prefetch: must be >= worker.batch_size (300)"},
    /* keys */
    {"{\"keys\":{}}", "keys: must be an array (got {})"},
    {"{\"keys\":[5]}", "keys[0]: must be an object (got 5)"},
    {"{\"keys\":[{\"secret_sha256\":\"" ALPHA_SHA "\",\"tenant\":\"t\"}]}",
     "keys[0].id: is required"},
    {"{\"keys\":[{\"id\":5,\"secret_sha256\":\"" ALPHA_SHA "\",\"tenant\":\"t\"}]}",
     "keys[0].id: must be a string (got 5)"},
    {"{\"keys\":[{\"id\":\"\",\"secret_sha256\":\"" ALPHA_SHA "\",\"tenant\":\"t\"}]}",
     "keys[0].id: must be 1..128 characters (got 0)"},
    {"{\"keys\":[{\"id\":\"a\",\"tenant\":\"t\"}]}", "keys[0].secret_sha256: is required"},
    {"{\"keys\":[{\"id\":\"a\",\"secret_sha256\":\"abc\",\"tenant\":\"t\"}]}",
     "keys[0].secret_sha256: must be 64 hex characters"},
    {"{\"keys\":[{\"id\":\"a\",\"secret_sha256\":\"" ALPHA_SHA "0\",\"tenant\":\"t\"}]}",
     "keys[0].secret_sha256: must be 64 hex characters"},
    {"{\"keys\":[{\"id\":\"a\",\"secret_sha256\":"
     "\"g336d9b1d8b8647875238537ca5087b0ea335afd2032936aecdffc3e4b13f720\",\"tenant\":\"t\"}]}",
     "keys[0].secret_sha256: must be 64 hex characters"},
    {"{\"keys\":[{\"id\":\"a\",\"secret_sha256\":\"" SECRET "-token\",\"tenant\":\"t\"}]}",
     "keys[0].secret_sha256: must be 64 hex characters"},
    {"{\"keys\":[{\"id\":\"a\",\"secret_sha256\":[],\"tenant\":\"t\"}]}",
     "keys[0].secret_sha256: must be a string"},
    {"{\"keys\":[{\"id\":\"a\",\"secret_sha256\":\"" ALPHA_SHA "\"}]}",
     "keys[0].tenant: is required"},
    {K(",\"tenant\":\"\""), "keys[0].tenant: must be 1..128 characters (got 0)"},
    {K(",\"tenant\":\"" LONG129 "\""), "keys[0].tenant: must be 1..128 characters (got 130)"},
    {K(",\"rate_per_s\":-1"), "keys[0].rate_per_s: must be >= 0 (got -1)"},
    {K(",\"rate_per_s\":-0.5"), "keys[0].rate_per_s: must be >= 0 (got -0.5)"},
    {K(",\"rate_per_s\":1e400"), "keys[0].rate_per_s: must be >= 0"},
    {K(",\"rate_per_s\":\"1\""), "keys[0].rate_per_s: must be a number (got \"1\")"},
    {K(",\"burst\":-1"), "keys[0].burst: must be >= 0 (got -1)"},
    {K(",\"burst\":1.5"), "keys[0].burst: must be an integer (got 1.5)"},
    {K(",\"max_priority\":10"), "keys[0].max_priority: must be between 0 and 9 (got 10)"},
    {K(",\"max_priority\":-1"), "keys[0].max_priority: must be between 0 and 9 (got -1)"},
    {K(",\"routes\":[]"), "keys[0].routes: must be a non-empty array of strings"},
    {K(",\"routes\":\"*\""), "keys[0].routes: must be a non-empty array of strings"},
    {K(",\"routes\":[5]"), "keys[0].routes[0]: must be a string (got 5)"},
    {K(",\"routes\":[\"\"]"), "keys[0].routes[0]: must not be empty"},
    {K(",\"routes\":[\"nope\"]"), "keys[0].routes[0]: unknown route \"nope\""},
    {KR(",\"routes\":[\"echo\",\"ech\"]"), "keys[0].routes[1]: unknown route \"ech\""},
    {K(",\"tenent\":\"t\""), "config bad.json: unknown key keys[0].tenent"},
    {K(",\"max_queued\":-1"), "keys[0].max_queued: must be >= 0 (got -1)"},
    {K(",\"admin\":\"yes\""), "keys[0].admin: must be true or false (got \"yes\")"},
    {K(",\"status_retention_s\":86401"),
     "keys[0].status_retention_s: must be at most ingress.status_retention_s (86400) (got 86401)"},
    {K(",\"status_retention_s\":-5"), "keys[0].status_retention_s: must be between 0 and"},
    {"{\"keys\":[{\"id\":\"a\",\"secret_sha256\":\"" ALPHA_SHA "\",\"tenant\":\"t\"},"
     "{\"id\":\"a\",\"secret_sha256\":\"" BETA_SHA "\",\"tenant\":\"t\"}]}",
     "keys[1].id: duplicate id \"a\""},
    {"{\"keys\":[{\"id\":\"a\",\"secret_sha256\":\"" ALPHA_SHA "\",\"tenant\":\"t\"},"
     "{\"id\":\"b\",\"secret_sha256\":\"" ALPHA_SHA "\",\"tenant\":\"t\"}]}",
     "keys[1].secret_sha256: same secret as key \"a\""},
    /* routes */
    {"{\"routes\":[]}", "routes: must be an object of name -> route (got [])"},
    {"{\"routes\":{\"a b\":{\"upstreams\":[\"http://h\"]}}}",
     "routes.a b: a route name must be 1..64 characters of [A-Za-z0-9_.-]"},
    {"{\"routes\":{\"\":{\"upstreams\":[\"http://h\"]}}}", "routes.: a route name must be"},
    {"{\"routes\":{\"" LONG65 "\":{\"upstreams\":[\"http://h\"]}}}", "a route name must be"},
    {"{\"routes\":{\"r\":5}}", "routes.r: must be an object (got 5)"},
    {"{\"routes\":{\"r\":{}}}", "routes.r.upstreams: is required"},
    {UP("[]"), "routes.r.upstreams: must be a non-empty array of strings"},
    {UP("\"http://h\""), "routes.r.upstreams: must be a non-empty array of strings"},
    {UP("[\"ftp://x\"]"),
     "config bad.json: routes.r.upstreams[0]: must start with http:// or https:// (got "
     "\"ftp://x\")"},
    {UP("[\"http://h\",5]"), "routes.r.upstreams[1]: must be a string (got 5)"},
    {UP("[\"http://h\",\"\"]"), "routes.r.upstreams[1]: must not be empty"},
    {UP("[\"http://\"]"), "routes.r.upstreams[0]: must name a host after the scheme"},
    {UP("[\"https:///\"]"), "routes.r.upstreams[0]: must name a host after the scheme"},
    {R(",\"timeout_ms\":0"), "routes.r.timeout_ms: must be between 1 and 600000 (got 0)"},
    {R(",\"timeout_ms\":600001"), "routes.r.timeout_ms: must be between 1 and 600000"},
    {R(",\"timeout_ms\":\"5\""), "routes.r.timeout_ms: must be an integer"},
    {R(",\"max_attempts\":0"), "routes.r.max_attempts: must be between 1 and 100 (got 0)"},
    {R(",\"max_attempts\":101"), "routes.r.max_attempts: must be between 1 and 100 (got 101)"},
    {R(",\"backoff_ms\":0"), "routes.r.backoff_ms: must be between 1 and 3600000 (got 0)"},
    {R(",\"backoff_ms\":3600001"), "routes.r.backoff_ms: must be between 1 and 3600000"},
    {R(",\"backoff_max_ms\":86400001"), "routes.r.backoff_max_ms: must be between 1 and 86400000"},
    {R(",\"backoff_ms\":500,\"backoff_max_ms\":100"),
     "routes.r.backoff_max_ms: must be >= backoff_ms (500) (got 100)"},
    {R(",\"backoff_ms\":20000"), "routes.r.backoff_max_ms: must be >= backoff_ms (20000)"},
    {R(",\"rate_per_s\":-0.5"), "routes.r.rate_per_s: must be between 0 and 1000000 (got -0.5)"},
    {R(",\"rate_per_s\":true"), "routes.r.rate_per_s: must be a number (got true)"},
    {R(",\"max_in_flight\":-1"), "routes.r.max_in_flight: must be between 0 and 1000000 (got -1)"},
    {R(",\"rate_per_s\":1000001"), "routes.r.rate_per_s: must be between 0 and 1000000"},
    {R(",\"burst\":-1"), "routes.r.burst: must be between 0 and 1000000 (got -1)"},
    {R(",\"burst\":2.5"), "routes.r.burst: must be an integer (got 2.5)"},
    {R(",\"breaker\":true"), "routes.r.breaker: must be an object (got true)"},
    {R(",\"breaker\":{}"), "routes.r.breaker: must set consecutive_failures or failure_ratio"},
    {R(",\"breaker\":{\"open_ms\":100}"), "routes.r.breaker: must set consecutive_failures"},
    {R(",\"breaker\":{\"consecutive\":3}"), "unknown key routes.r.breaker.consecutive"},
    {R(",\"breaker\":{\"failure_ratio\":1.5}"),
     "routes.r.breaker.failure_ratio: must be between 0 and 1 (got 1.5)"},
    {R(",\"breaker\":{\"failure_ratio\":0.5,\"window_s\":0}"),
     "routes.r.breaker.window_s: must be between 1 and 3600 (got 0)"},
    {R(",\"breaker\":{\"consecutive_failures\":2,\"open_ms\":5000,\"max_open_ms\":100}"),
     "routes.r.breaker.max_open_ms: must be >= open_ms (5000) (got 100)"},
    {R(",\"upstream\":[]"), "config bad.json: unknown key routes.r.upstream"},
    {R(",\"cache_ttl_s\":-1"), "routes.r.cache_ttl_s: must be between 0 and 86400 (got -1)"},
    {R(",\"cache_ttl_s\":86401"), "routes.r.cache_ttl_s: must be between 0 and 86400"},
    {R(",\"cache_vary_headers\":\"Accept\""),
     "routes.r.cache_vary_headers: must be a non-empty array of strings"},
    {R(",\"cache_vary_headers\":[\"Accept\",\"bad name\"]"),
     "routes.r.cache_vary_headers[1]: must be an HTTP header name (got \"bad name\")"},
    {R(",\"batch_url\":\"ftp://h\""), "routes.r.batch_url: must start with http:// or https://"},
};
#define N_BAD_DOCS (sizeof bad_docs / sizeof bad_docs[0])

START_TEST(test_bad_document)
{
    const struct bad_case *b = &bad_docs[_i];
    char err[512] = "";

    load_bad(b->doc, err, sizeof err);
    ck_assert_msg(!strncmp(err, "config bad.json: ", 17), "message \"%s\" lacks the file", err);
    assert_has(err, b->want);
    ck_assert_msg(strstr(err, SECRET) == NULL, "message \"%s\" leaks a secret", err);
}
END_TEST

/* A range_case is an integer scalar with its bounds; companion keeps
 * worker.prefetch >= worker.batch_size while the other one moves. */
struct range_case {
    const char *section, *name, *env;
    long min, max;
    size_t off;
    const char *companion;
};

#define RANGE(sec, name, env, lo, hi, comp)                                                        \
    {                                                                                              \
#sec, #name, env, lo, hi, offsetof(struct cfg, sec.name), comp                             \
    }
/* TOP_RANGE is a scalar at the top of the document, outside any section. */
#define TOP_RANGE(name, env, lo, hi)                                                               \
    {                                                                                              \
        "", #name, env, lo, hi, offsetof(struct cfg, name), ""                                     \
    }
static const struct range_case ranges[] = {
    RANGE(ingress, threads, "SLUICE_THREADS", 1, 256, ""),
    RANGE(ingress, max_body_bytes, "SLUICE_MAX_BODY_BYTES", 1, 268435456, ""),
    RANGE(ingress, status_retention_s, "SLUICE_STATUS_RETENTION_S", 60, 31536000, ""),
    RANGE(ingress, max_status_entries, "SLUICE_MAX_STATUS_ENTRIES", 1000, 100000000, ""),
    RANGE(ingress, confirm_timeout_ms, "SLUICE_CONFIRM_TIMEOUT_MS", 100, 60000, ""),
    RANGE(ingress, max_connections, "SLUICE_MAX_CONNECTIONS", 16, 1000000, ""),
    RANGE(ingress, connection_timeout_s, "SLUICE_CONNECTION_TIMEOUT_S", 1, 3600, ""),
    RANGE(ingress, max_wait_s, "SLUICE_MAX_WAIT_S", 0, 3600, ""),
    RANGE(worker, batch_size, "SLUICE_BATCH_SIZE", 1, 1000, "\"prefetch\":65535,"),
    RANGE(worker, batch_linger_ms, "SLUICE_BATCH_LINGER_MS", 0, 10000, ""),
    RANGE(worker, prefetch, "SLUICE_PREFETCH", 1, 65535, "\"batch_size\":1,"),
    RANGE(worker, retry_hold_max_ms, "SLUICE_RETRY_HOLD_MAX_MS", 0, 60000, ""),
    RANGE(worker, result_max_bytes, "SLUICE_RESULT_MAX_BYTES", 0, 16777216, ""),
    RANGE(worker, shutdown_grace_ms, "SLUICE_SHUTDOWN_GRACE_MS", 0, 600000, ""),
    RANGE(worker, max_host_connections, "SLUICE_MAX_HOST_CONNECTIONS", 1, 10000, ""),
    TOP_RANGE(delivery_limit, "SLUICE_DELIVERY_LIMIT", 1, 1000),
};
#define N_RANGES (sizeof ranges / sizeof ranges[0])

/* load_value loads {"<section>":{<companion>"<name>":v}}, or {"<name>":v} for
 * a top-level scalar, and returns its result. */
static int load_value(const struct range_case *r, long v, struct cfg *c, char *err, size_t errlen)
{
    char doc[256];

    if (r->section[0])
        snprintf(doc, sizeof doc, "{\"%s\":{%s\"%s\":%ld}}", r->section, r->companion, r->name, v);
    else
        snprintf(doc, sizeof doc, "{\"%s\":%ld}", r->name, v);
    return cfg_load_string(c, doc, "bad.json", err, errlen);
}

START_TEST(test_scalar_ranges)
{
    const struct range_case *r = &ranges[_i];
    const long ok[] = {r->min, r->max}, bad[] = {r->min - 1, r->max + 1};
    struct cfg c;
    char err[512] = "", want[256], value[32];

    for (size_t i = 0; i < 2; i++) {
        ck_assert_msg(load_value(r, ok[i], &c, err, sizeof err) == 0, "%s", err);
        ck_assert_int_eq(long_at(&c, r->off), ok[i]);
        cfg_free(&c);

        ck_assert_int_eq(load_value(r, bad[i], &c, err, sizeof err), -1);
        assert_zeroed(&c);
        snprintf(want, sizeof want,
                 "config bad.json: %s%s%s: must be between %ld and %ld (got %ld)", r->section,
                 r->section[0] ? "." : "", r->name, r->min, r->max, bad[i]);
        assert_has(err, want);

        snprintf(value, sizeof value, "%ld", bad[i]);
        ck_assert_int_eq(setenv(r->env, value, 1), 0);
        ck_assert_int_eq(cfg_load(&c, NULL, err, sizeof err), -1);
        snprintf(want, sizeof want, "environment: %s: must be between %ld and %ld (got \"%ld\")",
                 r->env, r->min, r->max, bad[i]);
        assert_has(err, want);
        unsetenv(r->env);
    }
}
END_TEST

/* The queue type and the delivery limit are independent settings: the
 * limit is kept in classic mode too (where mq ignores it), and the
 * environment overrides each one over a file that sets the other. */
START_TEST(test_queue_type)
{
    struct cfg c;
    char err[256] = "";

    ck_assert_msg(cfg_load_string(&c, "{\"queue_type\":\"quorum\"}", "q.json", err, sizeof err) ==
                      0,
                  "%s", err);
    ck_assert_str_eq(c.queue_type, "quorum");
    ck_assert_int_eq(c.delivery_limit, 20);
    cfg_free(&c);
    ck_assert_msg(cfg_load_string(&c, "{\"delivery_limit\":7}", "d.json", err, sizeof err) == 0,
                  "%s", err);
    ck_assert_str_eq(c.queue_type, "classic");
    ck_assert_int_eq(c.delivery_limit, 7);
    cfg_free(&c);

    ck_assert_int_eq(setenv("SLUICE_DELIVERY_LIMIT", "3", 1), 0);
    ck_assert_msg(cfg_load_string(&c, "{\"queue_type\":\"quorum\",\"delivery_limit\":7}", "qd.json",
                                  err, sizeof err) == 0,
                  "%s", err);
    ck_assert_str_eq(c.queue_type, "quorum");
    ck_assert_int_eq(c.delivery_limit, 3);
    cfg_free(&c);
    ck_assert_int_eq(setenv("SLUICE_QUEUE_TYPE", "classic", 1), 0);
    ck_assert_msg(cfg_load_string(&c, "{\"queue_type\":\"quorum\"}", "q.json", err, sizeof err) ==
                      0,
                  "%s", err);
    ck_assert_str_eq(c.queue_type, "classic");
    ck_assert_int_eq(c.delivery_limit, 3);
    cfg_free(&c);
}
END_TEST

static const char two_keys[] =
    "{\"routes\":{\"echo\":{\"upstreams\":[\"http://e\"]},\"orders\":{\"upstreams\":[\"http://"
    "o\"]}},"
    "\"keys\":[{\"id\":\"alpha\",\"secret_sha256\":\"" ALPHA_SHA "\",\"tenant\":\"a\","
    "\"routes\":[\"echo\"]},"
    "{\"id\":\"beta\",\"secret_sha256\":\"" BETA_SHA "\",\"tenant\":\"b\"}]}";

START_TEST(test_key_for_token)
{
    static const char longer[] = "alpha-token-and-more";
    struct cfg c;
    char err[256] = "";

    ck_assert_msg(cfg_load_string(&c, two_keys, "keys.json", err, sizeof err) == 0, "%s", err);
    ck_assert_ptr_eq(cfg_key_for_token(&c, "alpha-token", 11), &c.keys[0]);
    ck_assert_ptr_eq(cfg_key_for_token(&c, "beta-token", 10), &c.keys[1]);
    ck_assert_ptr_eq(cfg_key_for_token(&c, longer, 11), &c.keys[0]);
    ck_assert_ptr_null(cfg_key_for_token(&c, longer, sizeof longer - 1));
    ck_assert_ptr_null(cfg_key_for_token(&c, "alpha-tokeN", 11));
    ck_assert_ptr_null(cfg_key_for_token(&c, "alpha-toke", 10));
    ck_assert_ptr_null(cfg_key_for_token(&c, "", 0));
    ck_assert_ptr_null(cfg_key_for_token(&c, NULL, 0));
    ck_assert_ptr_null(cfg_key_for_token(&c, ALPHA_SHA, 64));
    cfg_free(&c);
}
END_TEST

/* test_key_near_miss: hashes that differ from the token's only in the last
 * or the first byte must not match, so all 32 bytes are compared. */
START_TEST(test_key_near_miss)
{
    static const char doc[] =
        "{\"keys\":[{\"id\":\"last\",\"tenant\":\"t\",\"secret_sha256\":"
        "\"a336d9b1d8b8647875238537ca5087b0ea335afd2032936aecdffc3e4b13f721\"},"
        "{\"id\":\"first\",\"tenant\":\"t\",\"secret_sha256\":"
        "\"b336d9b1d8b8647875238537ca5087b0ea335afd2032936aecdffc3e4b13f720\"},"
        "{\"id\":\"upper\",\"tenant\":\"t\",\"secret_sha256\":"
        "\"863D63C0BD3A94BFCA84ED2063A7355A226FAFF82CA50B90158BF183AA1A9E61\"}]}";
    struct cfg c;
    char err[256] = "";

    ck_assert_msg(cfg_load_string(&c, doc, "near.json", err, sizeof err) == 0, "%s", err);
    ck_assert_ptr_null(cfg_key_for_token(&c, "alpha-token", 11));
    /* Upper-case hex is accepted. */
    ck_assert_ptr_eq(cfg_key_for_token(&c, "beta-token", 10), &c.keys[2]);
    cfg_free(&c);
}
END_TEST

START_TEST(test_key_allows_route)
{
    struct cfg c;
    char err[256] = "";
    const struct cfg_key *alpha, *beta;

    ck_assert_msg(cfg_load_string(&c, two_keys, "keys.json", err, sizeof err) == 0, "%s", err);
    alpha = cfg_key_for_token(&c, "alpha-token", 11);
    beta = cfg_key_for_token(&c, "beta-token", 10);
    ck_assert_ptr_nonnull(alpha);
    ck_assert_ptr_nonnull(beta);
    ck_assert(cfg_key_allows_route(alpha, "echo"));
    ck_assert(!cfg_key_allows_route(alpha, "orders"));
    ck_assert(!cfg_key_allows_route(alpha, "ech"));
    ck_assert(!cfg_key_allows_route(alpha, "echo2"));
    ck_assert(!cfg_key_allows_route(alpha, ""));
    ck_assert(cfg_key_allows_route(beta, "echo"));
    ck_assert(cfg_key_allows_route(beta, "orders"));
    ck_assert(cfg_key_allows_route(beta, "anything"));
    ck_assert(!cfg_key_allows_route(NULL, "echo"));
    ck_assert(!cfg_key_allows_route(beta, NULL));
    cfg_free(&c);
}
END_TEST

START_TEST(test_route_find)
{
    struct cfg c;
    char err[256] = "";

    ck_assert_msg(cfg_load_string(&c, two_keys, "keys.json", err, sizeof err) == 0, "%s", err);
    ck_assert_ptr_eq(cfg_route_find(&c, "echo/rest", 4), &c.routes[0]);
    ck_assert_ptr_eq(cfg_route_find(&c, "orders", 6), &c.routes[1]);
    ck_assert_ptr_null(cfg_route_find(&c, "ech", 3));
    ck_assert_ptr_null(cfg_route_find(&c, "echoo", 5));
    ck_assert_ptr_null(cfg_route_find(&c, "", 0));
    cfg_free(&c);
}
END_TEST

START_TEST(test_usage)
{
    char *text = NULL;
    size_t len = 0, rows = 0;
    FILE *f = open_memstream(&text, &len);

    ck_assert_ptr_nonnull(f);
    cfg_usage(f);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_msg(!strncmp(text, "| Key | Environment | Default |", 31), "%s", text);
    for (size_t i = 0; i < N_ENV_VARS; i++)
        assert_has(text, env_vars[i]);
    assert_has(text, "| `ingress.threads` | `SLUICE_THREADS` | `2` | between 1 and 256 |");
    assert_has(text, "| `log_level` | `SLUICE_LOG_LEVEL` | `info` | debug, info, warn or error |");
    assert_has(text, "| `queue_type` | `SLUICE_QUEUE_TYPE` | `classic` | classic or quorum |");
    assert_has(text, "| `delivery_limit` | `SLUICE_DELIVERY_LIMIT` | `20` | between 1 and 1000 |");
    for (const char *p = text; (p = strstr(p, "\n| `")) != NULL; p++)
        rows++;
    ck_assert_uint_eq(rows, 33);
    assert_has(text, "| `admin_token` | `SLUICE_ADMIN_TOKEN` | (empty) | empty, or 16..256 ");
    free(text);
}
END_TEST

/* test_admin_token: the status page's token comes from the file or the
 * environment, an empty one turns the page off, and a bad one is refused
 * without being echoed. */
START_TEST(test_admin_token)
{
    struct cfg c;
    char err[512] = "";

    ck_assert_msg(cfg_load_string(&c, "{\"admin_token\":\"0123456789abcdef\"}", "a.json", err,
                                  sizeof err) == 0,
                  "%s", err);
    ck_assert_str_eq(c.admin_token, "0123456789abcdef");
    cfg_free(&c);
    ck_assert_int_eq(setenv("SLUICE_ADMIN_TOKEN", "", 1), 0);
    ck_assert_msg(cfg_load_string(&c, "{\"admin_token\":\"0123456789abcdef\"}", "a.json", err,
                                  sizeof err) == 0,
                  "%s", err);
    ck_assert_str_eq(c.admin_token, "");
    cfg_free(&c);
    ck_assert_int_eq(unsetenv("SLUICE_ADMIN_TOKEN"), 0);
    load_bad("{\"admin_token\":\"" SECRET "\"}", err, sizeof err);
    assert_has(err, "bad.json: admin_token: must be empty, or 16..256");
    ck_assert_msg(strstr(err, SECRET) == NULL, "message \"%s\" leaks the token", err);
    load_bad("{\"admin_token\":12345678901234567}", err, sizeof err);
    assert_has(err, "admin_token: must be a string");
}
END_TEST

/* The contract's settings (docs/api.md): per-key limits and retention, a
 * route's cache, the ID secret; each defaults to off. */
START_TEST(test_contract_settings)
{
    struct cfg c;
    char err[512] = "";
    const char *doc =
        "{\"ingress\":{\"status_retention_s\":3600,\"id_secret\":\"0123456789abcdef-secret\"},"
        "\"routes\":{\"r\":{\"upstreams\":[\"http://h\"],\"cache_ttl_s\":30,"
        "\"cache_vary_headers\":[\"Accept\",\"X-Tenant-Region\"]},\"s\":{\"upstreams\":[\"http://"
        "h\"]}},"
        "\"keys\":[{\"id\":\"a\",\"secret_sha256\":\"" ALPHA_SHA "\",\"tenant\":\"t\","
        "\"rate_per_s\":5,\"burst\":10,\"max_queued\":100,\"status_retention_s\":60,"
        "\"admin\":true}]}";
    ck_assert_msg(cfg_load_string(&c, doc, "ok.json", err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(c.ingress.id_secret, "0123456789abcdef-secret");
    ck_assert_int_eq(c.routes[0].cache_ttl_s, 30);
    ck_assert_uint_eq(c.routes[0].n_cache_vary, 2);
    ck_assert_str_eq(c.routes[0].cache_vary[1], "X-Tenant-Region");
    ck_assert_int_eq(c.routes[1].cache_ttl_s, 0);
    ck_assert_uint_eq(c.routes[1].n_cache_vary, 0);
    ck_assert_int_eq(c.keys[0].max_queued, 100);
    ck_assert_int_eq(c.keys[0].status_retention_s, 60);
    ck_assert(c.keys[0].admin);
    cfg_free(&c);
    ck_assert_int_eq(cfg_load_string(&c, "{}", "ok.json", err, sizeof err), 0);
    ck_assert_str_eq(c.ingress.id_secret, "");
    cfg_free(&c);
    /* The secret is never echoed. */
    ck_assert_int_eq(setenv("SLUICE_ID_SECRET", "short " SECRET, 1), 0);
    ck_assert_int_eq(cfg_load_string(&c, "{}", "bad.json", err, sizeof err), -1);
    assert_has(err, "SLUICE_ID_SECRET: must be empty, or 16..256");
    ck_assert_msg(strstr(err, SECRET) == NULL, "message \"%s\" leaks the secret", err);
}
END_TEST

START_TEST(test_free_and_errors_buffer)
{
    struct cfg c;
    char err[16];

    cfg_free(NULL);
    ck_assert_int_eq(cfg_load(&c, NULL, err, sizeof err), 0);
    cfg_free(&c);
    cfg_free(&c); /* a freed cfg is zeroed, so freeing again is harmless */
    memset(err, 'x', sizeof err);
    ck_assert_int_eq(cfg_load_string(&c, "{\"ingress\":{\"threads\":0}}", "f", err, sizeof err),
                     -1);
    ck_assert_uint_eq(strlen(err), sizeof err - 1);
    ck_assert_int_eq(cfg_load_string(&c, "{\"ingress\":{\"threads\":0}}", "f", NULL, 0), -1);
    assert_zeroed(&c);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");

    tcase_add_checked_fixture(tc, clear_env, NULL);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_empty_document_gives_defaults);
    tcase_add_test(tc, test_example);
    tcase_add_test(tc, test_every_setting_changed);
    tcase_add_test(tc, test_load_file);
    tcase_add_test(tc, test_load_file_errors);
    tcase_add_loop_test(tc, test_env_override, 0, N_ENV_CASES);
    tcase_add_loop_test(tc, test_bad_env, 0, N_BAD_ENVS);
    tcase_add_test(tc, test_env_lists_replace_file);
    tcase_add_test(tc, test_env_routes_drop_route_of_file_key);
    tcase_add_loop_test(tc, test_bad_document, 0, N_BAD_DOCS);
    tcase_add_loop_test(tc, test_scalar_ranges, 0, N_RANGES);
    tcase_add_test(tc, test_queue_type);
    tcase_add_test(tc, test_key_for_token);
    tcase_add_test(tc, test_key_near_miss);
    tcase_add_test(tc, test_key_allows_route);
    tcase_add_test(tc, test_route_find);
    tcase_add_test(tc, test_usage);
    tcase_add_test(tc, test_admin_token);
    tcase_add_test(tc, test_contract_settings);
    tcase_add_test(tc, test_free_and_errors_buffer);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    int failed;

    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
