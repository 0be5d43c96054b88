/* itest_cli.c: the sluice command-line client end to end. It runs the real
 * build/san/sluice as a subprocess against a real stack (or against nothing
 * at all) and checks what a script sees: stdout, stderr and the exit code of
 * every documented outcome, from a request that succeeds to a usage error. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define RUN_TIMEOUT_MS 60000 /* one CLI run, watches included */
#define MAX_ARGS 40
#define MAX_ENV 512
#define FINAL_MS 30000

extern char **environ;

/* ---- running the client ---- */

/* child is a client run in progress. */
struct child {
    pid_t pid;
    int out, err; /* read ends of its stdout and stderr */
    long long start;
};

/* await_output waits until c has written something to its stdout (which
 * cli_finish then reads on from), failing the test after ms. */
static void await_output(const struct child *c, int ms)
{
    struct pollfd fd = {.fd = c->out, .events = POLLIN};
    int rc;
    while ((rc = poll(&fd, 1, ms)) < 0 && errno == EINTR) {
    }
    ck_assert_msg(rc == 1, "the client wrote nothing within %d ms", ms);
}

/* run is what a finished client run left: its exit code (128 + signal when
 * killed), everything it wrote, and how long it took. */
struct run {
    int code;
    char *out, *err;
    long long ms;
};

/* child_env is the test's environment without SLUICE_* (a developer's own
 * SLUICE_URL must not leak in) and without proxies (the stack is on
 * loopback), plus extra (NULL-terminated, may be NULL). */
static void child_env(char *env[MAX_ENV], char *const extra[])
{
    size_t n = 0;
    for (char **e = environ; *e && n < MAX_ENV - 16; e++) {
        const char *eq = strchr(*e, '=');
        size_t name = eq ? (size_t)(eq - *e) : strlen(*e);
        if (strncmp(*e, "SLUICE_", 7) == 0 ||
            (name >= 5 && !strncasecmp(*e + name - 5, "proxy", 5)))
            continue;
        env[n++] = *e;
    }
    for (size_t i = 0; extra && extra[i] && n < MAX_ENV - 1; i++)
        env[n++] = extra[i];
    env[n] = NULL;
}

/* program_start starts path with args (NULL-terminated, without the
 * program), feeding it in on stdin (NULL: /dev/null). */
static struct child program_start(const char *path, const char *in, char *const extra_env[],
                                  char *const args[])
{
    char *argv[MAX_ARGS + 2], *env[MAX_ENV];
    argv[0] = (char *)path;
    size_t n = 0;
    while (args[n]) {
        ck_assert_uint_lt(n, MAX_ARGS);
        argv[n + 1] = args[n];
        n++;
    }
    argv[n + 1] = NULL;
    child_env(env, extra_env);
    int out[2], err[2], inp[2];
    ck_assert_int_eq(pipe(out), 0);
    ck_assert_int_eq(pipe(err), 0);
    ck_assert_int_eq(pipe(inp), 0);
    pid_t parent = getpid();
    pid_t pid = fork();
    ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(126);
        if (dup2(inp[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0) _exit(126);
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
        execve(path, argv, env);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    close(inp[0]);
    /* The inputs are small: they fit the pipe, so writing cannot block. */
    if (in) ck_assert_int_eq(write(inp[1], in, strlen(in)), (ssize_t)strlen(in));
    close(inp[1]);
    return (struct child){.pid = pid, .out = out[0], .err = err[0], .start = h_mono_ms()};
}

/* cli_start starts the client with args (NULL-terminated, without the
 * program), feeding it in on stdin (NULL: /dev/null). */
static struct child cli_start(const char *in, char *const extra_env[], char *const args[])
{
    char path[512];
    snprintf(path, sizeof path, "%s/sluice", h_bin_dir());
    ck_assert_msg(access(path, X_OK) == 0, "%s is missing: run make san first", path);
    return program_start(path, in, extra_env, args);
}

/* drain appends what fd has to *s (len bytes so far); false at EOF. */
static bool drain(int fd, char **s, size_t *len)
{
    char chunk[4096];
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) return true;
    if (n <= 0) return false;
    char *p = realloc(*s, *len + (size_t)n + 1);
    ck_assert_ptr_nonnull(p);
    memcpy(p + *len, chunk, (size_t)n);
    *len += (size_t)n;
    p[*len] = '\0';
    *s = p;
    return true;
}

/* cli_finish collects a run's output until it exits (killing it, and failing
 * the test, past RUN_TIMEOUT_MS) and checks the sanitizers stayed quiet. */
static struct run *cli_finish(struct child c)
{
    struct run *r = calloc(1, sizeof *r);
    ck_assert_ptr_nonnull(r);
    size_t out_len = 0, err_len = 0;
    r->out = calloc(1, 1);
    r->err = calloc(1, 1);
    ck_assert(r->out && r->err);
    struct pollfd fds[2] = {{.fd = c.out, .events = POLLIN}, {.fd = c.err, .events = POLLIN}};
    while (fds[0].fd >= 0 || fds[1].fd >= 0) {
        long long left = c.start + RUN_TIMEOUT_MS - h_mono_ms();
        if (left <= 0) {
            kill(c.pid, SIGKILL);
            waitpid(c.pid, NULL, 0);
            ck_abort_msg("sluice ran longer than %d ms; stdout: %s; stderr: %s", RUN_TIMEOUT_MS,
                         r->out, r->err);
        }
        if (poll(fds, 2, (int)left) < 0 && errno != EINTR)
            ck_abort_msg("poll: %s", strerror(errno));
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !fds[i].revents) continue;
            if (!drain(fds[i].fd, i ? &r->err : &r->out, i ? &err_len : &out_len)) {
                close(fds[i].fd);
                fds[i].fd = -1;
            }
        }
    }
    int status = 0;
    while (waitpid(c.pid, &status, 0) < 0)
        ck_assert_int_eq(errno, EINTR);
    r->ms = h_mono_ms() - c.start;
    r->code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    ck_assert_msg(!strstr(r->err, "Sanitizer") && !strstr(r->err, "runtime error"),
                  "sluice reported a sanitizer error:\n%s", r->err);
    return r;
}

static void run_free(struct run *r)
{
    if (!r) return;
    free(r->out);
    free(r->err);
    free(r);
}

/* collect gathers a NULL-terminated list of arguments after first. */
static void collect(char *args[MAX_ARGS + 1], const char *first, va_list ap)
{
    size_t n = 0;
    for (const char *a = first; a; a = va_arg(ap, const char *)) {
        ck_assert_uint_lt(n, MAX_ARGS);
        args[n++] = (char *)a;
    }
    args[n] = NULL;
}

/* run_plain runs the client with exactly the arguments given (NULL-terminated). */
static struct run *run_plain(const char *first, ...)
{
    char *args[MAX_ARGS + 1];
    va_list ap;
    va_start(ap, first);
    collect(args, first, ap);
    va_end(ap);
    return cli_finish(cli_start(NULL, NULL, args));
}

/* run_with runs the client with stdin in and extra environment. */
static struct run *run_with(const char *in, char *const env[], const char *first, ...)
{
    char *args[MAX_ARGS + 1];
    va_list ap;
    va_start(ap, first);
    collect(args, first, ap);
    va_end(ap);
    return cli_finish(cli_start(in, env, args));
}

/* stack_args prefixes args with the stack's --url and --token. */
static void stack_args(char *args[MAX_ARGS + 1], struct h_stack *s, const char *token,
                       const char *first, va_list ap)
{
    char *rest[MAX_ARGS + 1];
    collect(rest, first, ap);
    args[0] = "--url";
    args[1] = (char *)h_stack_url(s);
    args[2] = "--token";
    args[3] = (char *)token;
    size_t i = 0;
    for (; rest[i]; i++) {
        ck_assert_uint_lt(i + 4, MAX_ARGS);
        args[i + 4] = rest[i];
    }
    args[i + 4] = NULL;
}

/* run_on runs the client against stack s with H_TOKEN. */
static struct run *run_on(struct h_stack *s, const char *first, ...)
{
    char *args[MAX_ARGS + 1];
    va_list ap;
    va_start(ap, first);
    stack_args(args, s, H_TOKEN, first, ap);
    va_end(ap);
    return cli_finish(cli_start(NULL, NULL, args));
}

/* run_token runs the client against stack s with token. */
static struct run *run_token(struct h_stack *s, const char *token, const char *first, ...)
{
    char *args[MAX_ARGS + 1];
    va_list ap;
    va_start(ap, first);
    stack_args(args, s, token, first, ap);
    va_end(ap);
    return cli_finish(cli_start(NULL, NULL, args));
}

/* expect checks the exit code, printing both outputs when it is wrong. */
static void expect(const struct run *r, int code, const char *what)
{
    ck_assert_msg(r->code == code, "%s: exit %d, want %d\nstdout: %s\nstderr: %s", what, r->code,
                  code, r->out, r->err);
}

static void expect_in(const char *haystack, const char *needle, const char *what)
{
    ck_assert_msg(strstr(haystack, needle) != NULL, "%s: \"%s\" not in:\n%s", what, needle,
                  haystack);
}

/* expect_usage checks a usage error: exit 2, nothing on stdout, the hint on stderr. */
static void expect_usage(struct run *r, const char *needle, const char *what)
{
    expect(r, 2, what);
    ck_assert_msg(r->out[0] == '\0', "%s: a usage error printed on stdout: %s", what, r->out);
    expect_in(r->err, needle, what);
    run_free(r);
}

/* expect_api_error checks exit 3 with the API's code and the HTTP status on stderr. */
static void expect_api_error(struct run *r, const char *code, const char *http, const char *what)
{
    expect(r, 3, what);
    expect_in(r->err, code, what);
    expect_in(r->err, http, what);
    run_free(r);
}

/* queued_id checks a human submit ("queued  <id>\n", exit 0, quiet stderr)
 * and returns the id (caller frees); it frees r. */
static char *queued_id(struct run *r, const char *what)
{
    expect(r, 0, what);
    ck_assert_msg(strncmp(r->out, "queued  ", 8) == 0 && strlen(r->out) == 8 + 32 + 1 &&
                      r->out[40] == '\n',
                  "%s: stdout is not \"queued  <id>\": %s", what, r->out);
    ck_assert_msg(r->err[0] == '\0', "%s: stderr is not empty: %s", what, r->err);
    char *id = strndup(r->out + 8, 32);
    ck_assert_ptr_nonnull(id);
    run_free(r);
    return id;
}

/* parse_json parses text and fails the test when it is not JSON. */
static struct json_object *parse_json(const char *text, const char *what)
{
    struct json_tokener *tok = json_tokener_new();
    ck_assert_ptr_nonnull(tok);
    struct json_object *o = json_tokener_parse_ex(tok, text, (int)strlen(text));
    enum json_tokener_error e = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    ck_assert_msg(o && e == json_tokener_success, "%s: not JSON: %s", what, text);
    ck_assert_msg(strspn(text + end, " \n") == strlen(text + end), "%s: more than JSON: %s", what,
                  text);
    return o;
}

/* last_json_line parses the last line of a --json --watch output after
 * checking that every line is one JSON document. */
static struct json_object *last_json_line(const char *out, const char *what)
{
    struct json_object *last = NULL;
    int lines = 0;
    for (const char *line = out; *line;) {
        const char *end = strchr(line, '\n');
        ck_assert_msg(end != NULL, "%s: the output does not end with a newline: %s", what, out);
        char *one = strndup(line, (size_t)(end - line));
        ck_assert_ptr_nonnull(one);
        json_object_put(last);
        last = parse_json(one, what);
        free(one);
        lines++;
        line = end + 1;
    }
    ck_assert_msg(lines > 0, "%s: no output", what);
    return last;
}

/* ---- without a server ---- */

/* Every usage error exits 2 before talking to anyone (the URL has nothing
 * listening, which would exit 4), prints nothing on stdout, and says what is
 * wrong on stderr; --help exits 0 with the usage on stdout. */
START_TEST(test_usage)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", h_free_port());
    const char *id = "-P774n9R9xwHXI8nQxUnt7dU109MrsUQ";

    struct run *r = run_plain(NULL);
    expect(r, 2, "no arguments");
    expect_in(r->err, "usage: sluice", "no arguments");
    run_free(r);
    r = run_plain("--help", NULL);
    expect(r, 0, "--help");
    expect_in(r->out, "Exit codes", "--help");
    expect_in(r->out, "status", "--help");
    run_free(r);
    r = run_plain("submit", "--help", NULL);
    expect(r, 0, "submit --help");
    expect_in(r->out, "--route", "submit --help");
    run_free(r);
    r = run_plain("help", "status", NULL);
    expect(r, 0, "help status");
    expect_in(r->out, "--watch", "help status");
    run_free(r);

    expect_usage(run_plain("--url", url, "frobnicate", NULL), "no command", "unknown command");
    expect_usage(run_plain("--url", url, "--frob", "status", id, NULL), "--frob",
                 "unknown global option");
    expect_usage(run_plain("--url", url, "submit", NULL), "--route", "submit without a route");
    expect_usage(run_plain("--url", url, "submit", "--route", NULL), "needs a value",
                 "--route without its value");
    expect_usage(run_plain("--url", url, "submit", "--route", "echo", "--body", "{bad", NULL),
                 "not JSON", "--body that is not JSON");
    expect_usage(run_plain("--url", url, "submit", "--route", "echo", "--body", "1", "--body-text",
                           "x", NULL),
                 "only one", "two bodies");
    expect_usage(run_plain("--url", url, "submit", "--route", "echo", "--header", "nocolon", NULL),
                 "Name: value", "a header without a colon");
    expect_usage(run_plain("--url", url, "submit", "--route", "echo", "--frob", NULL), "--frob",
                 "unknown submit option");
    expect_usage(run_plain("--url", url, "submit", "--route", "echo", "--body-file",
                           "/nonexistent/body", NULL),
                 "/nonexistent/body", "unreadable --body-file");
    expect_usage(
        run_plain("--url", url, "submit", "--route", "echo", "--max-attempts", "two", NULL),
        "whole number", "--max-attempts two");
    expect_usage(run_plain("--url", url, "status", NULL), "request ID", "status without an ID");
    expect_usage(run_plain("--url", url, "status", "not-an-id", NULL), "not a request ID",
                 "status with a malformed ID");
    expect_usage(run_plain("--url", url, "status", id, "--watch", "--interval", "soon", NULL),
                 "--interval", "--interval soon");
    expect_usage(run_plain("--url", url, "status", "--watch", "--timeout", "-1", id, NULL),
                 "--timeout", "--timeout -1");
    expect_usage(run_plain("--url", url, "send", "GET", NULL), "two arguments",
                 "send without a path");
    expect_usage(run_plain("--url", url, "send", "GET", "/elsewhere", NULL), "ROUTE/PATH",
                 "send to a path outside /v1/routes");
    expect_usage(run_plain("--url", url, "metrics", "extra", NULL), "extra",
                 "metrics with an argument");
    expect_usage(run_plain("--url", "htp://nowhere", "submit", "--route", "echo", NULL),
                 "cannot use the URL", "an unsupported URL scheme");
}
END_TEST

/* Nothing listening: every command exits 4 and says it got no answer, and a
 * watch does not wait for its timeout when the very first poll fails. */
START_TEST(test_unreachable)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", h_free_port());
    const char *id = "-P774n9R9xwHXI8nQxUnt7dU109MrsUQ";
    struct run *runs[] = {
        run_plain("--url", url, "--token", H_TOKEN, "submit", "--route", "echo", NULL),
        run_plain("--url", url, "--token", H_TOKEN, "send", "POST", "echo/x", NULL),
        run_plain("--url", url, "--token", H_TOKEN, "status", id, NULL),
        run_plain("--url", url, "--token", H_TOKEN, "status", id, "--watch", "--timeout", "20",
                  NULL),
        run_plain("--url", url, "metrics", NULL),
        run_plain("--url", "http://127.0.0.1:1", "metrics", "--worker", url, NULL),
    };
    for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
        char what[32];
        snprintf(what, sizeof what, "unreachable run %zu", i);
        expect(runs[i], 4, what);
        expect_in(runs[i]->err, "no answer from", what);
        ck_assert_msg(runs[i]->out[0] == '\0', "%s printed on stdout: %s", what, runs[i]->out);
        ck_assert_msg(runs[i]->ms < 10000, "%s took %lld ms", what, runs[i]->ms);
        run_free(runs[i]);
    }
}
END_TEST

/* ---- against a stack ---- */

/* The envelope form end to end: every option reaches the backend, the
 * watch prints its changes and then the status with the result pretty-
 * printed, and --json gives the API's documents. */
START_TEST(test_submit_and_watch)
{
    struct h_stack *s = h_stack_new();
    h_stack_start(s, 1);

    char *id = queued_id(run_on(s, "submit", "--route", "echo", "--method", "PATCH", "--path",
                                "/things/42", "--query", "a=1", "--header", "X-Custom: hello there",
                                "--body", "{\"k\":[1,2]}", "--priority", "high",
                                "--idempotency-key", "key-1", "--max-attempts", "2", NULL),
                         "submit");
    struct run *r = run_on(s, "status", id, "--watch", "--interval", "50", "--timeout", "30", NULL);
    expect(r, 0, "status --watch of a request that succeeds");
    ck_assert_msg(r->err[0] == '\0', "status --watch wrote on stderr: %s", r->err);
    expect_in(r->out, "succeeded   attempts 1\n", "the change lines");
    expect_in(r->out, "\nstatus       succeeded\n", "the final status");
    expect_in(r->out, "\nresult       200\n", "the final status");
    expect_in(r->out, "\nbody         JSON\n", "the final status");
    expect_in(r->out, "\n  \"method\": \"PATCH\",\n", "the pretty-printed result body");
    expect_in(r->out, "\"x-custom\": \"hello there\"", "the pretty-printed result body");
    run_free(r);

    /* --json: the API's status document as it is. */
    r = run_on(s, "--json", "status", id, NULL);
    expect(r, 0, "--json status");
    struct json_object *st = parse_json(r->out, "--json status");
    ck_assert_str_eq(h_json_str(st, "id"), id);
    ck_assert_str_eq(h_json_str(st, "route"), "echo");
    ck_assert_str_eq(h_json_str(st, "status"), "succeeded");
    ck_assert_int_eq(h_json_int(st, "attempts"), 1);
    h_json_str(st, "created_at");
    h_json_str(st, "completed_at");
    ck_assert_int_eq(h_json_int(st, "result.status"), 200);
    ck_assert_str_eq(h_json_str(st, "result.body.method"), "PATCH");
    ck_assert_str_eq(h_json_str(st, "result.body.path"), "/things/42");
    ck_assert_str_eq(h_json_str(st, "result.body.query"), "a=1");
    ck_assert_str_eq(h_json_str(st, "result.body.headers.x-custom"), "hello there");
    ck_assert_str_eq(h_json_str(st, "result.body.headers.content-type"), "application/json");
    ck_assert_str_eq(h_json_str(st, "result.body.body_text"), "{\"k\":[1,2]}");
    json_object_put(st);
    run_free(r);
    free(id);

    /* --json submit: the 202 document. */
    r = run_on(s, "submit", "--json", "--route", "echo", "--body-text", "as json", NULL);
    expect(r, 0, "--json submit");
    struct json_object *a = parse_json(r->out, "--json submit");
    id = strdup(h_json_str(a, "id"));
    ck_assert_uint_eq(strlen(id), 32);
    ck_assert_str_eq(h_json_str(a, "status"), "queued");
    char want[64];
    snprintf(want, sizeof want, "/v1/requests/%s", id);
    ck_assert_str_eq(h_json_str(a, "status_url"), want);
    json_object_put(a);
    run_free(r);

    /* A status without --watch exits 0 and a --json watch prints one
     * document per line, the last one final. */
    r = run_on(s, "--json", "status", "--watch", "--interval", "20", "--timeout", "30", id, NULL);
    expect(r, 0, "--json status --watch");
    st = last_json_line(r->out, "--json status --watch");
    ck_assert_str_eq(h_json_str(st, "status"), "succeeded");
    ck_assert_str_eq(h_json_str(st, "result.body.body_text"), "as json");
    json_object_put(st);
    run_free(r);
    free(id);
    h_stack_teardown(s);
}
END_TEST

/* The other ways in: the transparent form, an envelope on stdin with an
 * option overriding it, a body file, $SLUICE_URL and $SLUICE_TOKEN, and
 * both metrics endpoints. */
START_TEST(test_other_forms)
{
    struct h_stack *s = h_stack_new();
    h_stack_start(s, 1);
    const char *ids[3];
    char *owned[3];

    owned[0] = queued_id(run_on(s, "send", "PUT", "echo/items/7?x=1", "--data", "{\"n\":1}",
                                "--header", "Content-Type: application/json", "--priority", "low",
                                "--idempotency-key", "k-7", NULL),
                         "send");
    owned[1] =
        queued_id(run_with("{\"route\":\"echo\",\"path\":\"/from-file\",\"body_text\":\"file\"}",
                           NULL, "--url", h_stack_url(s), "--token", H_TOKEN, "submit",
                           "--envelope", "-", "--path", "/override", NULL),
                  "submit --envelope -");
    char file[512], env_url[600], env_token[64];
    snprintf(file, sizeof file, "%s/body.txt", h_stack_dir(s));
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fputs("line one\nline two\n", f);
    fclose(f);
    snprintf(env_url, sizeof env_url, "SLUICE_URL=%s", h_stack_url(s));
    snprintf(env_token, sizeof env_token, "SLUICE_TOKEN=%s", H_TOKEN);
    char *env[] = {env_url, env_token, NULL};
    owned[2] = queued_id(run_with(NULL, env, "submit", "--route", "echo", "--body-file", file,
                                  "--header", "Content-Type: text/plain", NULL),
                         "submit --body-file with the URL and token from the environment");
    for (int i = 0; i < 3; i++)
        ids[i] = owned[i];
    /* HEAD gets a 202 without a body: the id comes from Location. */
    char *head = queued_id(run_on(s, "send", "HEAD", "echo/probe", NULL), "send HEAD");

    struct json_object *st = h_wait_final(s, H_TOKEN, ids[0], FINAL_MS);
    ck_assert_str_eq(h_json_str(st, "status"), "succeeded");
    ck_assert_str_eq(h_json_str(st, "result.body.method"), "PUT");
    ck_assert_str_eq(h_json_str(st, "result.body.path"), "/items/7");
    ck_assert_str_eq(h_json_str(st, "result.body.query"), "x=1");
    ck_assert_str_eq(h_json_str(st, "result.body.body_text"), "{\"n\":1}");
    ck_assert_str_eq(h_json_str(st, "result.body.headers.content-type"), "application/json");
    ck_assert_msg(h_json_at(st, "result.body.headers.x-priority") == NULL,
                  "X-Priority reached the backend");
    json_object_put(st);
    st = h_wait_final(s, H_TOKEN, ids[1], FINAL_MS);
    ck_assert_str_eq(h_json_str(st, "result.body.path"), "/override");
    ck_assert_str_eq(h_json_str(st, "result.body.body_text"), "file");
    json_object_put(st);
    st = h_wait_final(s, H_TOKEN, ids[2], FINAL_MS);
    ck_assert_str_eq(h_json_str(st, "result.body.body_text"), "line one\nline two\n");
    ck_assert_str_eq(h_json_str(st, "result.body.headers.content-type"), "text/plain");
    json_object_put(st);

    st = h_wait_final(s, H_TOKEN, head, FINAL_MS);
    ck_assert_str_eq(h_json_str(st, "status"), "succeeded");
    ck_assert_int_eq(h_backend_calls(s, head), 1);
    json_object_put(st);
    free(head);

    struct run *r = run_on(s, "metrics", NULL);
    expect(r, 0, "metrics");
    expect_in(r->out, "# TYPE sluice_ingress_", "ingress metrics");
    run_free(r);
    char worker[128];
    h_stack_metrics_url(s, 0, worker, sizeof worker);
    r = run_plain("metrics", "--worker", worker, NULL);
    expect(r, 0, "metrics --worker");
    expect_in(r->out, "# TYPE sluice_worker_", "worker metrics");
    run_free(r);

    for (int i = 0; i < 3; i++)
        free(owned[i]);
    h_stack_teardown(s);
}
END_TEST

/* A request that fails and one that dies end a watch with exit 1; a watch
 * that runs out of time exits 5 on time; a plain status exits 0 whatever
 * the state. */
START_TEST(test_failed_dead_timeout)
{
    struct h_stack *s = h_stack_new();
    h_stack_set(s, "routes.once",
                "{\"upstreams\":[\"%s\"],\"timeout_ms\":5000,\"max_attempts\":1,"
                "\"backoff_ms\":10,\"backoff_max_ms\":10}",
                h_stack_backend_url(s));
    h_stack_start(s, 1);

    char *id = queued_id(
        run_on(s, "submit", "--route", "echo", "--method", "GET", "--path", "/status/404", NULL),
        "submit /status/404");
    struct run *r = run_on(s, "status", id, "--watch", "--interval", "50", "--timeout", "30", NULL);
    expect(r, 1, "watch of a failed request");
    expect_in(r->out, "\nstatus       failed\n", "watch of a failed request");
    expect_in(r->out, "\nerror        backend_rejected: ", "watch of a failed request");
    expect_in(r->out, "\nresult       404\n", "watch of a failed request");
    run_free(r);
    free(id);

    id = queued_id(run_on(s, "submit", "--route", "once", "--path", "/status/500", NULL),
                   "submit /status/500 on a route of one attempt");
    r = run_on(s, "--json", "status", id, "--watch", "--interval", "50", "--timeout", "30", NULL);
    expect(r, 1, "watch of a dead request");
    struct json_object *st = last_json_line(r->out, "--json watch of a dead request");
    ck_assert_str_eq(h_json_str(st, "status"), "dead");
    ck_assert_str_eq(h_json_str(st, "error.code"), "retries_exhausted");
    ck_assert_int_eq(h_json_int(st, "result.status"), 500);
    json_object_put(st);
    run_free(r);
    free(id);

    id = queued_id(run_on(s, "submit", "--route", "echo", "--path", "/delay/3000", NULL),
                   "submit /delay/3000");
    r = run_on(s, "status", id, NULL);
    expect(r, 0, "status of a request in progress");
    ck_assert_msg(strstr(r->out, "status       queued\n") ||
                      strstr(r->out, "status       processing\n"),
                  "not in progress: %s", r->out);
    run_free(r);
    r = run_on(s, "status", id, "--watch", "--interval", "50", "--timeout", "1", NULL);
    expect(r, 5, "watch past its timeout");
    expect_in(r->err, "after 1 s", "watch past its timeout");
    ck_assert_msg(r->ms >= 900 && r->ms < 2500, "a 1 s watch took %lld ms", r->ms);
    run_free(r);
    json_object_put(h_wait_final(s, H_TOKEN, id, FINAL_MS));
    free(id);
    h_stack_teardown(s);
}
END_TEST

/* API refusals exit 3 with the API's code and the HTTP status on stderr,
 * and --json puts the API's error document on stdout. */
START_TEST(test_api_errors)
{
    struct h_stack *s = h_stack_new();
    h_stack_start(s, 1);
    char *id = h_submit(s, H_TOKEN, "{\"route\":\"echo\"}");

    expect_api_error(run_token(s, "wrong-token", "submit", "--route", "echo", NULL), "unauthorized",
                     "HTTP 401", "submit with a bad token");
    expect_api_error(run_token(s, "wrong-token", "status", id, NULL), "unauthorized", "HTTP 401",
                     "status with a bad token");
    expect_api_error(run_plain("--url", h_stack_url(s), "submit", "--route", "echo", NULL),
                     "unauthorized", "HTTP 401", "submit without any token");
    expect_api_error(run_on(s, "submit", "--route", "nosuch", NULL), "unknown_route", "HTTP 404",
                     "submit to an unknown route");
    expect_api_error(run_on(s, "send", "POST", "nosuch/x", "--data", "{}", NULL), "unknown_route",
                     "HTTP 404", "send to an unknown route");
    expect_api_error(run_on(s, "submit", "--route", "echo", "--priority", "urgent", NULL),
                     "invalid_request", "HTTP 400", "submit with a bad priority");
    expect_api_error(run_token(s, H_OTHER_TOKEN, "status", id, "--watch", "--timeout", "10", NULL),
                     "not_found", "HTTP 404", "watch of another tenant's request");

    struct run *r = run_on(s, "--json", "submit", "--route", "nosuch", NULL);
    expect(r, 3, "--json submit to an unknown route");
    struct json_object *e = parse_json(r->out, "--json error");
    ck_assert_str_eq(h_json_str(e, "error.code"), "unknown_route");
    ck_assert_uint_gt(strlen(h_json_str(e, "error.message")), 0);
    json_object_put(e);
    run_free(r);

    json_object_put(h_wait_final(s, H_TOKEN, id, FINAL_MS));
    free(id);
    h_stack_teardown(s);
}
END_TEST

/* A watch rides out an ingress that dies and comes back (status survives
 * restarts), noting the outage on stderr; a 503 while the broker is down
 * exits 4 with the API's code and Retry-After. */
START_TEST(test_outages)
{
    struct h_stack *s = h_stack_new();
    h_stack_start(s, 1);

    char *id = queued_id(run_on(s, "submit", "--route", "echo", "--path", "/delay/2500", NULL),
                         "submit /delay/2500");
    char *args[] = {"--url",   (char *)h_stack_url(s), "--token", H_TOKEN,     "status", id,
                    "--watch", "--interval",           "100",     "--timeout", "60",     NULL};
    struct child watcher = cli_start(NULL, NULL, args);
    /* Only an outage after a first answer is ridden out: the kill waits for
     * the watch's first line, which a loaded machine may take a while to print. */
    await_output(&watcher, 30000);
    h_stack_kill_ingress(s);
    h_sleep_ms(700);
    h_stack_start_ingress(s);
    struct run *r = cli_finish(watcher);
    expect(r, 0, "a watch across an ingress restart");
    expect_in(r->out, "\nstatus       succeeded\n", "a watch across an ingress restart");
    expect_in(r->err, "still watching", "a watch across an ingress restart");
    run_free(r);
    free(id);

    /* The assertions come after the broker is back, so a failure cannot
     * leave it stopped for the suites that follow. */
    char ready[128];
    snprintf(ready, sizeof ready, "%s/readyz", h_stack_url(s));
    h_broker_pause();
    h_wait_http(ready, 503, 30000, h_stack_ingress(s));
    r = run_on(s, "submit", "--route", "echo", NULL);
    h_broker_resume();
    h_wait_http(ready, 200, 60000, h_stack_ingress(s));
    expect(r, 4, "submit while the broker is down");
    expect_in(r->err, "broker_unavailable", "submit while the broker is down");
    expect_in(r->err, "HTTP 503, retry after", "submit while the broker is down");
    run_free(r);
    h_stack_teardown(s);
}
END_TEST

/* ---- bulk: submit --batch and status --watch over many IDs ---- */

/* lines_of splits out into its lines (caller frees the array and lines). */
static char **lines_of(const char *out, size_t *n)
{
    char **lines = NULL;
    *n = 0;
    for (const char *p = out; *p;) {
        const char *end = strchr(p, '\n');
        ck_assert_msg(end, "the output does not end with a newline: %s", out);
        lines = realloc(lines, (*n + 1) * sizeof *lines);
        ck_assert_ptr_nonnull(lines);
        lines[(*n)++] = strndup(p, (size_t)(end - p));
        p = end + 1;
    }
    return lines;
}

static void lines_free(char **lines, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
}

/* refusal is the answer expected for one line of a --batch input. */
struct refusal {
    long line;
    const char *code;
    long status;
};

/* batch_lines checks a piped submit --batch output: want_lines JSON lines
 * in input order, the lines of bad refused as said, every other one queued.
 * Returns the IDs in order (ids_free), *n_ids their count. */
static char **batch_lines(const char *out, size_t want_lines, const struct refusal *bad,
                          size_t n_bad, size_t *n_ids)
{
    size_t n;
    char **lines = lines_of(out, &n);
    ck_assert_uint_eq(n, want_lines);
    char **ids = calloc(n, sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    *n_ids = 0;
    long prev = 0;
    for (size_t i = 0; i < n; i++) {
        struct json_object *o = parse_json(lines[i], "a --batch line");
        long no = (long)h_json_int(o, "line");
        ck_assert_msg(no > prev, "lines out of order: %ld after %ld", no, prev);
        prev = no;
        const struct refusal *r = NULL;
        for (size_t k = 0; k < n_bad; k++)
            if (bad[k].line == no) r = &bad[k];
        if (r) {
            ck_assert_msg(!strcmp(h_json_str(o, "error.code"), r->code) &&
                              h_json_int(o, "status") == r->status,
                          "line %ld: want %s (%ld): %s", no, r->code, r->status, lines[i]);
        } else {
            ck_assert_msg(!strcmp(h_json_str(o, "status"), "queued"), "line %ld: %s", no, lines[i]);
            ids[(*n_ids)++] = strdup(h_json_str(o, "id"));
        }
        json_object_put(o);
    }
    lines_free(lines, n);
    return ids;
}

/* watch_lines checks a piped status --watch output: exactly one JSON line
 * for each of ids, the status of each in want (NULL: any). Returns how many
 * say "failed". */
static long watch_lines(const char *out, char *const ids[], size_t n_ids, const char *want)
{
    size_t n;
    char **lines = lines_of(out, &n);
    ck_assert_uint_eq(n, n_ids);
    bool *seen = calloc(n_ids, sizeof *seen);
    ck_assert_ptr_nonnull(seen);
    long failed = 0;
    for (size_t i = 0; i < n; i++) {
        struct json_object *o = parse_json(lines[i], "a --watch line");
        const char *id = h_json_str(o, "id"), *st = h_json_str(o, "status");
        size_t k = 0;
        while (k < n_ids && strcmp(ids[k], id) != 0)
            k++;
        ck_assert_msg(k < n_ids && !seen[k], "a line for no watched id, or twice: %s", lines[i]);
        seen[k] = true;
        failed += strcmp(st, "failed") == 0;
        ck_assert_msg(!want || !strcmp(st, want), "want %s: %s", want, lines[i]);
        json_object_put(o);
    }
    free(seen);
    lines_free(lines, n);
    return failed;
}

static void ids_free(char **ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

/* write_file writes text to dir/name and puts its path in path. */
static void write_file(const char *dir, const char *name, const char *text, char path[512])
{
    snprintf(path, 512, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
}

/* Piped, submit --batch prints one JSON line per envelope (its line number
 * and the API's answer for it), from stdin or a file, and status --watch over
 * many IDs one line per request (its final status), nothing else; exit codes
 * say the worst. 149 accepted out of one input proves the batches were cut:
 * the API takes at most 100 per call. */
START_TEST(test_bulk_piped)
{
    struct h_stack *s = h_stack_new();
    h_stack_start(s, 1);
    /* 155 lines: two blank, four bad ones (unknown route, duplicate key, not
     * an object, not UTF-8), and one that fails at the backend (line 7). */
    size_t cap = 64 * 1024, len = 0;
    char *in = malloc(cap);
    ck_assert_ptr_nonnull(in);
    in[0] = '\0';
    for (int i = 1; i <= 155; i++) {
        const char *line = i == 3     ? "{\"route\":\"nope\"}"
                           : i == 4   ? ""
                           : i == 5   ? "{\"route\":\"echo\",\"route\":\"echo\"}"
                           : i == 6   ? "[1,2]"
                           : i == 8   ? "{\"route\":\"echo\",\"path\":\"/\xff\"}"
                           : i == 120 ? "   "
                                      : NULL;
        if (line)
            len += (size_t)snprintf(in + len, cap - len, "%s\n", line);
        else
            len +=
                (size_t)snprintf(in + len, cap - len, "{\"route\":\"echo\",\"path\":\"/%s%d\"}\n",
                                 i == 7 ? "status/404?" : "n", i);
    }
    struct run *r = run_with(in, NULL, "--url", h_stack_url(s), "--token", H_TOKEN, "submit",
                             "--batch", "-", NULL);
    expect(r, 3, "submit --batch from stdin with refused envelopes");
    ck_assert_msg(r->err[0] == '\0', "submit --batch piped wrote on stderr: %s", r->err);
    const struct refusal bad[] = {{3, "unknown_route", 404},
                                  {5, "invalid_json", 400},
                                  {6, "invalid_json", 400},
                                  {8, "invalid_json", 400}};
    size_t n_ids;
    char **ids = batch_lines(r->out, 153, bad, 4, &n_ids);
    ck_assert_uint_eq(n_ids, 149);
    run_free(r);

    /* The same from a file, all good this time: exit 0. */
    len = 0;
    for (int i = 1; i <= 120; i++)
        len += (size_t)snprintf(in + len, cap - len, "{\"route\":\"echo\",\"path\":\"/f%d\"}\n", i);
    char path[512];
    write_file(h_stack_dir(s), "in.jsonl", in, path);
    r = run_on(s, "submit", "--batch", path, NULL);
    expect(r, 0, "submit --batch from a file");
    ck_assert_msg(r->err[0] == '\0', "submit --batch piped wrote on stderr: %s", r->err);
    size_t n_file;
    char **file_ids = batch_lines(r->out, 120, NULL, 0, &n_file);
    ck_assert_uint_eq(n_file, 120);
    run_free(r);

    /* Watch the stdin ones (the first, /status/404?7, fails): IDs in
     * arguments and in a file, one status line each, exit 1. */
    len = 0;
    for (size_t i = 2; i < n_ids; i++)
        len += (size_t)snprintf(in + len, cap - len, "%s\n\n", ids[i]);
    write_file(h_stack_dir(s), "ids.txt", in, path);
    r = run_on(s, "status", "--watch", ids[0], ids[1], "--ids", path, "--timeout", "50", NULL);
    expect(r, 1, "status --watch over 149 requests, one failed");
    ck_assert_msg(r->err[0] == '\0', "status --watch piped wrote on stderr: %s", r->err);
    ck_assert_int_eq(watch_lines(r->out, ids, n_ids, NULL), 1);
    run_free(r);

    /* The file's ones, IDs on stdin: all succeeded, exit 0. */
    len = 0;
    for (size_t i = 0; i < n_file; i++)
        len += (size_t)snprintf(in + len, cap - len, "%s\n", file_ids[i]);
    r = run_with(in, NULL, "--url", h_stack_url(s), "--token", H_TOKEN, "status", "--watch",
                 "--ids", "-", NULL);
    expect(r, 0, "status --watch --ids - over 120 requests");
    ck_assert_msg(r->err[0] == '\0', "status --watch piped wrote on stderr: %s", r->err);
    watch_lines(r->out, file_ids, n_file, "succeeded");
    run_free(r);
    free(in);

    /* One still running at --timeout: its line has its last status, exit 5. */
    char *slow[2] = {h_submit(s, H_TOKEN, "{\"route\":\"echo\",\"path\":\"/delay/6000\"}"),
                     file_ids[0]};
    r = run_on(s, "status", "--watch", slow[0], slow[1], "--timeout", "2", NULL);
    expect(r, 5, "status --watch reaching --timeout");
    ck_assert_int_eq(watch_lines(r->out, slow, 2, NULL), 0);
    ck_assert_msg(strstr(r->out, "\"status\":\"queued\"") ||
                      strstr(r->out, "\"status\":\"processing\""),
                  "no line for the request still running: %s", r->out);
    expect_in(r->err, "1 of 2 requests still not final after 2 s", "the timeout");
    run_free(r);
    free(slow[0]);

    /* An unknown ID among them: its line says 404, the exit code 3. */
    r = run_on(s, "status", "--watch", ids[1], "-P77-JEamh1cGyWBMKDa1FT6xIQqtSvk", NULL);
    expect(r, 3, "status --watch with an unknown id");
    expect_in(r->out, "\"status\":404", "the unknown id's line");
    run_free(r);
    ids_free(ids, n_ids);
    ids_free(file_ids, n_file);
    h_stack_teardown(s);
}
END_TEST

/* Over HTTPS the bulk forms verify the ingress with --cacert, as the
 * single ones do; without it they get no answer (exit 4). */
START_TEST(test_bulk_tls)
{
    struct h_stack *s = h_stack_new();
    h_stack_use_tls(s);
    h_stack_start(s, 1);
    const char *ca = h_stack_cert(s);
    const char in[] =
        "{\"route\":\"echo\",\"path\":\"/t1\"}\n{\"route\":\"echo\",\"path\":\"/t2\"}\n";
    struct run *r = run_with(in, NULL, "--url", h_stack_url(s), "--cacert", ca, "--token", H_TOKEN,
                             "submit", "--batch", "-", NULL);
    expect(r, 0, "submit --batch over TLS");
    size_t n_ids;
    char **ids = batch_lines(r->out, 2, NULL, 0, &n_ids);
    run_free(r);
    r = run_on(s, "--cacert", ca, "status", "--watch", ids[0], ids[1], "--timeout", "50", NULL);
    expect(r, 0, "status --watch over TLS");
    watch_lines(r->out, ids, n_ids, "succeeded");
    run_free(r);
    r = run_with(in, NULL, "--url", h_stack_url(s), "--token", H_TOKEN, "submit", "--batch", "-",
                 NULL);
    expect(r, 4, "submit --batch over TLS without --cacert");
    run_free(r);
    r = run_on(s, "status", "--watch", ids[0], ids[1], NULL);
    expect(r, 4, "status --watch over TLS without --cacert");
    run_free(r);
    ids_free(ids, n_ids);
    h_stack_teardown(s);
}
END_TEST

/* pty_run runs "sluice ARGS" on a terminal (script(1) gives it a pty),
 * against stack s; stdout is what the terminal showed. */
static struct run *pty_run(struct h_stack *s, const char *args)
{
    char cmd[2048], url[600], token[300];
    snprintf(cmd, sizeof cmd, "%s/sluice %s", h_bin_dir(), args);
    snprintf(url, sizeof url, "SLUICE_URL=%s", h_stack_url(s));
    snprintf(token, sizeof token, "SLUICE_TOKEN=%s", H_TOKEN);
    char *env[] = {url, token, NULL};
    char *argv[] = {"-qec", cmd, "/dev/null", NULL};
    ck_assert_msg(access("/usr/bin/script", X_OK) == 0, "script(1) is missing (bsdutils)");
    return cli_finish(program_start("/usr/bin/script", NULL, env, argv));
}

/* On a terminal: a progress bar redrawn in place and a summary. */
START_TEST(test_bulk_terminal)
{
    struct h_stack *s = h_stack_new();
    h_stack_start(s, 1);
    char path[512], args[1024];
    snprintf(path, sizeof path, "%s/in.jsonl", h_stack_dir(s));
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 30; i++)
        fprintf(f, "{\"route\":\"%s\"}\n", i == 4 ? "nope" : "echo");
    fclose(f);
    snprintf(args, sizeof args, "submit --batch %s", path);
    struct run *r = pty_run(s, args);
    expect(r, 3, "submit --batch on a terminal");
    expect_in(r->out, "\r[", "the progress bar");
    expect_in(r->out, "]  100%  30/30 done  accepted 29  failed 1", "the last bar");
    expect_in(r->out, "line 5: 404 no route named", "the refusal");
    expect_in(r->out, "30 envelopes: 29 accepted, 1 refused, 0 not queued", "the summary");
    ck_assert_msg(!strstr(r->out, "\"id\""), "JSON lines on a terminal: %s", r->out);
    run_free(r);

    /* Watch the 29 accepted ones on a terminal: IDs from a piped run. */
    r = run_with(NULL, NULL, "--url", h_stack_url(s), "--token", H_TOKEN, "submit", "--batch", path,
                 NULL);
    snprintf(path, sizeof path, "%s/ids.txt", h_stack_dir(s));
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    size_t n;
    char **lines = lines_of(r->out, &n);
    for (size_t i = 0; i < n; i++)
        if (strstr(lines[i], "\"id\":\"")) fprintf(f, "%.32s\n", strstr(lines[i], "\"id\":\"") + 6);
    fclose(f);
    lines_free(lines, n);
    run_free(r);
    snprintf(args, sizeof args, "status --watch --ids %s --timeout 50", path);
    r = pty_run(s, args);
    expect(r, 0, "status --watch on a terminal");
    expect_in(r->out, "]  100%  29/29 final  succeeded 29  failed 0", "the last bar");
    expect_in(r->out, "29 requests: 29 succeeded, 0 failed, 0 dead, 0 not found, 0 not final",
              "the summary");
    run_free(r);
    h_stack_teardown(s);
}
END_TEST

/* What the bulk forms refuse before sending, and a server that is not there. */
START_TEST(test_bulk_refusals)
{
    expect_usage(run_plain("submit", "--batch", "-", "--route", "echo", NULL),
                 "--batch takes whole envelopes", "--batch with --route");
    expect_usage(run_plain("status", "-P77-JEamh1cGyWBMKDa1FT6xIQqtSvk",
                           "-P77-JEamh1cGyWBMKDa1FT6xIQqtSvl", NULL),
                 "several requests are shown with --watch only", "two ids without --watch");
    char path[] = "/tmp/sluice-itest-ids-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    const char text[] = "-P77-JEamh1cGyWBMKDa1FT6xIQqtSvk\nnot-an-id\n";
    ck_assert_int_eq(write(fd, text, sizeof text - 1), (ssize_t)sizeof text - 1);
    close(fd);
    expect_usage(run_plain("status", "--watch", "--ids", path, NULL), "line 2 of",
                 "a bad line in --ids");
    unlink(path);
    expect_usage(run_plain("submit", "--batch", "/nonexistent/x.jsonl", NULL), "cannot open",
                 "a missing --batch file");

    /* Nobody listening: the first batch has no answer, the rest is not sent. */
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", h_free_port());
    size_t cap = 32 * 1024, len = 0;
    char *in = malloc(cap);
    for (int i = 0; i < 150; i++)
        len += (size_t)snprintf(in + len, cap - len, "{\"route\":\"echo\"}\n");
    struct run *r = run_with(in, NULL, "--url", url, "submit", "--batch", "-", NULL);
    free(in);
    expect(r, 4, "submit --batch with no server");
    expect_in(r->err, "stopped sending: no answer from", "submit --batch with no server");
    size_t n;
    char **lines = lines_of(r->out, &n);
    ck_assert_uint_eq(n, 150);
    for (size_t i = 0; i < n; i++)
        expect_in(lines[i], i < 100 ? "\"no_answer\"" : "\"not_sent\"", "a batch's lines");
    lines_free(lines, n);
    run_free(r);
}
END_TEST

static Suite *cli_suite(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("cli");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_usage);
    tcase_add_test(tc, test_unreachable);
    tcase_add_test(tc, test_submit_and_watch);
    tcase_add_test(tc, test_other_forms);
    tcase_add_test(tc, test_failed_dead_timeout);
    tcase_add_test(tc, test_api_errors);
    tcase_add_test(tc, test_outages);
    tcase_add_test(tc, test_bulk_piped);
    tcase_add_test(tc, test_bulk_terminal);
    tcase_add_test(tc, test_bulk_refusals);
    tcase_add_test(tc, test_bulk_tls);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cli_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
