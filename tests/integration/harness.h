/* harness.h: the library of the integration tests. It starts the real
 * binaries (build/san by default) against the private RabbitMQ that
 * scripts/run-tests.sh starts, speaks HTTP to them with libcurl, and fails the
 * running Check test with a readable message (and the tail of the culprit's
 * log) whenever something is not as expected. Tests run from the repository
 * root, one process per test (CK_FORK), single-threaded.
 *
 * Every function that "fails the test" calls ck_abort_msg, so it only
 * returns on success. Processes started here get SIGKILL if the test process
 * dies, so a failed test leaves no stray server behind. */
#ifndef SLUICE_HARNESS_H
#define SLUICE_HARNESS_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#define H_TOKEN "test-token"        /* default key: tenant "acme", every route */
#define H_OTHER_TOKEN "other-token" /* default key: tenant "globex", route "echo" only */
#define H_READY_TIMEOUT_MS 60000
#define H_STOP_TIMEOUT_MS 20000 /* SIGTERM to SIGKILL */
#define H_MAX_WORKERS 16

/* Environment. h_amqp_url and h_broker_dir fail the test when run-tests.sh
 * did not set SLUICE_TEST_AMQP_URL / SLUICE_TEST_BROKER_DIR; h_bin_dir is
 * SLUICE_TEST_BIN or "build/san". Against a cluster (run-tests.sh cluster,
 * see cluster.h) SLUICE_TEST_AMQP_URL lists the nodes' URLs, comma-separated,
 * and there is no SLUICE_TEST_BROKER_DIR. */
const char *h_amqp_url(void);
const char *h_broker_dir(void);
const char *h_bin_dir(void);

/* h_free_port returns a loopback TCP port that was free a moment ago. */
int h_free_port(void);
/* h_sha256_hex writes the lowercase hex SHA-256 of s, as config keys want it. */
void h_sha256_hex(const char *s, char out[65]);
/* h_mono_ms is a monotonic clock for deadlines. */
long long h_mono_ms(void);
void h_sleep_ms(long ms);

/* Processes. */
struct h_proc;
/* h_spawn starts argv[0] with argv (NULL-terminated) and the test's
 * environment minus every SLUICE_* variable but SLUICE_QUEUE_TYPE (so that
 * SLUICE_QUEUE_TYPE=quorum runs a suite in quorum mode) plus env
 * ("NAME=value", NULL-terminated, may be NULL; it wins over an inherited
 * variable of the same name); stdin is /dev/null, stdout and stderr are
 * appended to log. name labels messages. Fails the test if it cannot fork. */
struct h_proc *h_spawn(const char *name, const char *log, char *const argv[], char *const env[]);
pid_t h_proc_pid(const struct h_proc *p);
const char *h_proc_log(const struct h_proc *p);
/* h_proc_running reaps p if it has exited and tells whether it still runs. */
bool h_proc_running(struct h_proc *p);
/* h_proc_term sends SIGTERM; h_proc_wait then waits up to wait_ms for the
 * exit and SIGKILLs p past that. h_proc_stop is both. No-ops once p is reaped. */
void h_proc_term(struct h_proc *p);
void h_proc_wait(struct h_proc *p, int wait_ms);
void h_proc_stop(struct h_proc *p, int wait_ms);
/* h_proc_exit_status is p's exit status once it exited by itself, else -1. */
int h_proc_exit_status(const struct h_proc *p);
/* h_run runs argv to its end (stdout and stderr to log) and returns its
 * exit status (-1 when killed by a signal); fails the test past timeout_ms. */
int h_run(const char *name, const char *log, char *const argv[], int timeout_ms);
/* h_proc_kill sends SIGKILL and reaps: a deliberate crash, not a failure. */
void h_proc_kill(struct h_proc *p);
/* h_proc_clean tells whether p exited by itself with status 0 (sanitizer and
 * leak reports make the status non-zero). */
bool h_proc_clean(const struct h_proc *p);
/* h_proc_assert_clean fails the test, printing the tail of the log, unless
 * h_proc_clean(p) or p was killed with h_proc_kill. */
void h_proc_assert_clean(const struct h_proc *p);
void h_proc_print_log_tail(const struct h_proc *p);
/* h_proc_free SIGKILLs p if it still runs, then frees it. NULL is a no-op. */
void h_proc_free(struct h_proc *p);

/* HTTP: one request per call, new connection, 30 s timeout, no proxy. */
struct h_header {
    char *name;
    char *value;
};
struct h_resp {
    long status; /* 0 when there was no answer; err says why */
    char *body;  /* always NUL-terminated */
    size_t len;
    struct h_header *headers;
    size_t n_headers;
    char err[256];
};
/* h_request sends method to url with headers ("Name: value", NULL-terminated,
 * may be NULL) and body (len bytes; NULL for none). Never returns NULL. */
struct h_resp *h_request(const char *method, const char *url, const char *const headers[],
                         const char *body, size_t len);
/* h_request_chunked is h_request with the body sent as Transfer-Encoding:
 * chunked (no Content-Length) in chunks of at most chunk bytes. */
struct h_resp *h_request_chunked(const char *method, const char *url, const char *const headers[],
                                 const char *body, size_t len, size_t chunk);
/* h_set_cacert makes h_request verify https:// with the PEM CA file path
 * (NULL: the system's). */
void h_set_cacert(const char *path);
/* h_resp_header returns the value of the first header called name (any case), or NULL. */
const char *h_resp_header(const struct h_resp *r, const char *name);
/* h_resp_json parses the body; the caller puts the result. NULL if not JSON. */
struct json_object *h_resp_json(const struct h_resp *r);
void h_resp_free(struct h_resp *r);
/* h_wait_http polls GET url every 50 ms until it answers want; fails the test
 * after timeout_ms, or as soon as watch (may be NULL) is no longer running. */
void h_wait_http(const char *url, long want, int timeout_ms, struct h_proc *watch);

/* JSON paths are dotted, with array indexes as numbers: "result.body.path". */
struct json_object *h_json_at(struct json_object *o, const char *path); /* borrowed, or NULL */
/* h_json_str / h_json_int fail the test when path is missing or of another type. */
const char *h_json_str(struct json_object *o, const char *path);
long long h_json_int(struct json_object *o, const char *path);

/* Stacks: a backend, an ingress and workers sharing one config file and a
 * namespace ("t<pid>x<n>") no other stack uses, so tests can share a broker.
 * Files live in h_stack_dir: config.json, backend.log, backend-access.log,
 * ingress.log, worker-<i>.log; the directory is removed by a clean teardown. */
struct h_stack;
/* h_stack_new creates the directory and the default config, and starts the
 * backend so that h_stack_backend_url is known before the test edits routes.
 * Defaults: route "echo" to the backend; keys H_TOKEN (acme, ["*"]) and
 * H_OTHER_TOKEN (globex, ["echo"]). */
struct h_stack *h_stack_new(void);
/* h_stack_set sets the config value at a dotted path ("worker.batch_size",
 * "routes.slow", "keys", "keys.2.rate_per_s") to the JSON text made from
 * fmt; intermediate objects are created, array elements must exist. The file is rewritten before
 * each process start, so a change reaches the processes started after it. */
__attribute__((format(printf, 3, 4))) void h_stack_set(struct h_stack *s, const char *path,
                                                       const char *fmt, ...);
/* h_stack_add_key appends a key; routes_json is a JSON array of route names. */
void h_stack_add_key(struct h_stack *s, const char *id, const char *token, const char *tenant,
                     const char *routes_json);
/* h_stack_write_config writes the config file now and returns its path,
 * for a test that starts processes of its own (itest_soak). */
const char *h_stack_write_config(struct h_stack *s);
/* h_stack_start starts the ingress and n workers and waits until the
 * ingress's /readyz and every worker's /healthz answer 200. */
void h_stack_start(struct h_stack *s, int n_workers);
/* h_stack_use_tls, before h_stack_start, makes a self-signed certificate
 * (openssl req) for the ingress: it serves HTTPS, h_stack_url is https://
 * and h_request trusts the certificate. */
void h_stack_use_tls(struct h_stack *s);
/* h_stack_cert is that certificate's path, NULL without TLS. */
const char *h_stack_cert(const struct h_stack *s);
/* h_stack_port is the ingress's port. */
int h_stack_port(const struct h_stack *s);
/* h_stack_restart_ingress stops the ingress (asserting a clean exit) and
 * starts it again on the same port, then waits for /readyz. */
void h_stack_restart_ingress(struct h_stack *s);
/* h_stack_kill_ingress SIGKILLs the ingress; h_stack_start_ingress starts it
 * again (same port) and waits for /readyz. */
void h_stack_kill_ingress(struct h_stack *s);
void h_stack_start_ingress(struct h_stack *s);
/* h_stack_add_worker starts one more worker, waits for its /healthz and
 * returns its index. */
int h_stack_add_worker(struct h_stack *s);
void h_stack_kill_worker(struct h_stack *s, int i);
/* h_stack_stop_worker sends SIGTERM and asserts a clean exit. */
void h_stack_stop_worker(struct h_stack *s, int i);
/* h_stack_teardown is the destructor: SIGTERM to every process still
 * running, wait, free everything, then fail the test if any process (other
 * than those killed on purpose) did not exit cleanly. NULL is a no-op. */
void h_stack_teardown(struct h_stack *s);

const char *h_stack_url(const struct h_stack *s);         /* "http://127.0.0.1:<ingress>" */
const char *h_stack_backend_url(const struct h_stack *s); /* "http://127.0.0.1:<backend>" */
const char *h_stack_namespace(const struct h_stack *s);
const char *h_stack_dir(const struct h_stack *s);
/* h_stack_metrics_url writes "http://127.0.0.1:<port>" of worker i to out. */
void h_stack_metrics_url(const struct h_stack *s, int i, char *out, size_t len);
struct h_proc *h_stack_ingress(struct h_stack *s);
struct h_proc *h_stack_worker(struct h_stack *s, int i);

/* The API. h_submit POSTs envelope (JSON text) to /v1/requests with token
 * and returns the id of the 202 answer (caller frees); fails the test on any
 * other answer. */
char *h_submit(struct h_stack *s, const char *token, const char *envelope);
/* h_get_status GETs /v1/requests/<id>; returns the JSON body (caller puts; NULL
 * if not JSON) and the HTTP status in *http (may be NULL). */
struct json_object *h_get_status(struct h_stack *s, const char *token, const char *id, long *http);
/* h_wait_final polls the status every 20 ms until it is succeeded, failed,
 * dead or cancelled and returns it (caller puts); fails the test after timeout_ms. */
struct json_object *h_wait_final(struct h_stack *s, const char *token, const char *id,
                                 int timeout_ms);
/* h_backend_calls asks the backend how many calls carried Idempotency-Key key. */
long h_backend_calls(struct h_stack *s, const char *key);
/* h_backend_access_log opens the backend's access log for reading, one line
 * per call in call order: "<unix_ms> <METHOD> <path> <key>" (caller fcloses). */
FILE *h_backend_access_log(struct h_stack *s);
/* h_backend_requests asks the backend how many requests it served in all. */
long h_backend_requests(struct h_stack *s);
/* h_backend_spawn starts one more sluice-backend for a test of s, on
 * 127.0.0.1:port (0: a free port), logging calls with microseconds to
 * <dir>/<name>-access.log, with extra arguments (NULL-terminated, may be
 * NULL); writes its base URL to url. The test stops it (h_proc_stop, then
 * h_proc_free) before h_stack_teardown. */
struct h_proc *h_backend_spawn(struct h_stack *s, const char *name, int port,
                               const char *const extra[], char *url, size_t len);
/* h_backend_stat GETs <url>/_stats and returns member key: "requests",
 * "in_flight" or "max_in_flight" (the most calls it answered at once); with
 * reset, the high-water mark then starts again from the calls in flight. */
long h_backend_stat(const char *url, const char *key, bool reset);
/* h_stack_open opens the file name of the stack's directory for reading
 * (caller fcloses); fails the test if it cannot. */
FILE *h_stack_open(struct h_stack *s, const char *name);
/* h_cli runs `sluice --url URL --token token args...` (args NULL-terminated;
 * url NULL: the stack's ingress) to its end, with its stdout and stderr in
 * the stack's file out (made afresh), and returns its exit status. */
int h_cli(struct h_stack *s, const char *out, const char *url, const char *token,
          const char *const args[]);
/* h_file_has tells whether a line of the stack's file name contains needle. */
bool h_file_has(struct h_stack *s, const char *name, const char *needle);
/* h_log_has tells whether a line of the stack's log name (ingress.log,
 * worker-0.log: JSON lines) has a "msg" that contains needle and also (NULL:
 * anything), compared after JSON unescaping (a quote is written as a quote). */
bool h_log_has(struct h_stack *s, const char *name, const char *needle, const char *also);
/* h_expect_logged fails the test unless the stack's log name has, for each
 * pair of want (NULL-terminated), a line with both (h_log_has); it names
 * every missing pair, not only the first. */
void h_expect_logged(struct h_stack *s, const char *name, const char *const want[]);

/* h_queue_messages returns the ready messages of queue "<namespace>.<suffix>"
 * (asked with the product's own mq_queue_stats), or -1 if it does not exist. */
long h_queue_messages(struct h_stack *s, const char *suffix);

/* h_queue_arguments returns the arguments of queue "<namespace>.<suffix>" as
 * `rabbitmqctl list_queues` prints them, e.g. [{"x-queue-version",2}]
 * (caller frees), or NULL when the broker has no such queue. */
char *h_queue_arguments(struct h_stack *s, const char *suffix);

/* Raw sockets, for what libcurl will not send. h_dial connects to a
 * loopback port; h_send_all sends the string p whole. */
int h_dial(int port);
void h_send_all(int fd, const char *p);
/* h_read_answer reads into out (len bytes, NUL-terminated) one answer: its
 * head and the Content-Length bytes of body that follow, waiting at most ms.
 * Returns 0 when read, 1 when the peer closed first (out holds what came),
 * -1 when ms passed or on a receive error. */
int h_read_answer(int fd, char *out, size_t len, int ms);
/* h_closed_within reads and drops what arrives on fd until the peer closes
 * it (true) or ms pass (false). */
bool h_closed_within(int fd, int ms);

/* h_quorum_mode tells whether the suite runs with SLUICE_QUEUE_TYPE=quorum. */
bool h_quorum_mode(void);

/* Broker control through scripts/broker.sh pause|resume SLUICE_TEST_BROKER_DIR. */
/* h_broker_beam_pid returns the pid of the test broker's Erlang VM. */
pid_t h_broker_beam_pid(void);
void h_broker_pause(void);
void h_broker_resume(void);
/* h_broker_freeze stops the broker's Erlang VM (SIGSTOP): connections stay
 * open and nothing is confirmed. A guard process thaws it after guard_ms
 * whatever happens to the test; h_broker_thaw thaws it now and ends the
 * guard. */
pid_t h_broker_freeze(long guard_ms);
void h_broker_thaw(pid_t guard);
/* h_start_replica starts one more ingress of s on a free port (same config,
 * log ingress-<n>.log), waits for its /readyz and writes its base URL. */
struct h_proc *h_start_replica(struct h_stack *s, int n, char *url, size_t len);

#endif
