/* harness.c: processes, HTTP and stacks for the integration tests (see
 * harness.h). Failures go through ck_abort_msg, which ends the forked test
 * process; the children then die of PR_SET_PDEATHSIG, so nothing lingers. */
#include "harness.h"

#include "json.h"
#include "mq.h"
#include "nodes.h"

#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

extern char **environ;

#define H_BODY_MAX ((size_t)256 << 20)
#define H_TAIL_BYTES 6000

struct h_proc {
    char *name;
    char *log;
    pid_t pid;
    int status; /* wait status, once reaped */
    bool reaped;
    bool overdue;    /* SIGKILLed because SIGTERM was not enough */
    bool on_purpose; /* SIGKILLed by h_proc_kill */
};

struct h_worker {
    struct h_proc *proc;
    int port;
};

struct h_stack {
    char dir[PATH_MAX];
    char ns[32];
    char config_path[PATH_MAX];
    struct json_object *config;
    int ingress_port;
    int backend_port;
    bool tls;            /* the ingress serves HTTPS with cert */
    char cert[PATH_MAX]; /* its self-signed certificate, the CA of h_request */
    char url[64];
    char backend_url[64];
    struct h_proc *backend;
    struct h_proc *ingress;
    struct h_worker workers[H_MAX_WORKERS];
    int n_workers;
};

/* ---- environment and small tools ---- */

static const char *required_env(const char *name)
{
    const char *v = getenv(name);
    ck_assert_msg(v && *v,
                  "%s is not set: run integration tests through scripts/run-tests.sh "
                  "integration (make integration)",
                  name);
    return v;
}

const char *h_amqp_url(void)
{
    return required_env("SLUICE_TEST_AMQP_URL");
}

const char *h_broker_dir(void)
{
    return required_env("SLUICE_TEST_BROKER_DIR");
}

const char *h_bin_dir(void)
{
    const char *v = getenv("SLUICE_TEST_BIN");
    return v && *v ? v : "build/san";
}

int h_free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
    int rc = bind(fd, (struct sockaddr *)&a, sizeof a);
    if (rc == 0) rc = getsockname(fd, (struct sockaddr *)&a, &len);
    int err = errno;
    close(fd);
    ck_assert_msg(rc == 0, "bind to a free port: %s", strerror(err));
    return ntohs(a.sin_port);
}

void h_sha256_hex(const char *s, char out[65])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)s, strlen(s), md);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

long long h_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void h_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    ck_assert_ptr_nonnull(p);
    return p;
}

/* ---- processes ---- */

/* passed_env lists the SLUICE_* variables a test run passes on to every
 * process: SLUICE_QUEUE_TYPE=quorum runs the whole suite in quorum mode. */
static const char *const passed_env[] = {"SLUICE_QUEUE_TYPE", NULL};

/* env_named tells whether entry ("NAME=value") sets a variable of list. */
static bool env_named(const char *entry, const char *const list[])
{
    for (size_t i = 0; list[i]; i++) {
        size_t n = strlen(list[i]);
        if (strncmp(entry, list[i], n) == 0 && entry[n] == '=') return true;
    }
    return false;
}

/* env_in_extra tells whether extra sets the variable that entry sets. */
static bool env_in_extra(const char *entry, char *const extra[])
{
    const char *eq = strchr(entry, '=');
    size_t n = eq ? (size_t)(eq - entry) : strlen(entry);
    for (size_t i = 0; extra && extra[i]; i++)
        if (strncmp(extra[i], entry, n) == 0 && extra[i][n] == '=') return true;
    return false;
}

/* child_env is the test's environment without SLUICE_* (a developer's own
 * settings must not leak into a test's config) except passed_env, plus
 * extra, which wins over an inherited variable of the same name. The strings
 * are borrowed; the caller frees only the array. */
static char **child_env(char *const extra[])
{
    size_t n = 0, k = 0;
    while (environ[n])
        n++;
    while (extra && extra[k])
        k++;
    char **env = calloc(n + k + 1, sizeof *env);
    ck_assert_ptr_nonnull(env);
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        bool sluice = strncmp(environ[i], "SLUICE_", 7) == 0;
        if (sluice && !env_named(environ[i], passed_env)) continue;
        if (!env_in_extra(environ[i], extra)) env[j++] = environ[i];
    }
    for (size_t i = 0; i < k; i++)
        env[j++] = extra[i];
    return env;
}

/* exec_child runs in the forked child, so it makes only async-signal-safe
 * calls. It restores every signal's default before unblocking them: the
 * handlers Check's runner installs kill the whole process group, and a
 * SIGTERM caught by one of them here would take the test down. */
static void exec_child(pid_t parent, int logfd, char *const argv[], char *const env[])
{
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    for (int sig = 1; sig < NSIG; sig++)
        sigaction(sig, &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(126);
    int in = open("/dev/null", O_RDONLY);
    if (in < 0 || dup2(in, 0) < 0) _exit(126);
    if (logfd >= 0 && (dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)) _exit(126);
    execve(argv[0], argv, env);
    static const char msg[] = "harness: execve failed\n";
    ssize_t ignored = write(2, msg, sizeof msg - 1);
    (void)ignored;
    _exit(127);
}

/* fork_exec starts argv with env and its output on logfd (-1: this
 * process's). Signals stay blocked across fork so that none reaches the child
 * before exec_child has reset the handlers. Returns the pid, or -1 with errno. */
static pid_t fork_exec(char *const argv[], char *const env[], int logfd)
{
    sigset_t all, old;
    sigfillset(&all);
    pid_t parent = getpid();
    fflush(NULL);
    sigprocmask(SIG_SETMASK, &all, &old);
    pid_t pid = fork();
    if (pid == 0) exec_child(parent, logfd, argv, env);
    int err = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    errno = err;
    return pid;
}

struct h_proc *h_spawn(const char *name, const char *log, char *const argv[], char *const env[])
{
    struct h_proc *p = calloc(1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    p->name = xstrdup(name);
    p->log = xstrdup(log);
    ck_assert_msg(access(argv[0], X_OK) == 0, "%s: %s is not executable (%s); build it first", name,
                  argv[0], strerror(errno));
    int logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    ck_assert_msg(logfd >= 0, "%s: open %s: %s", name, log, strerror(errno));
    char **envp = child_env(env);
    p->pid = fork_exec(argv, envp, logfd);
    int err = errno;
    close(logfd);
    free(envp);
    ck_assert_msg(p->pid > 0, "%s: fork: %s", name, strerror(err));
    return p;
}

pid_t h_proc_pid(const struct h_proc *p)
{
    return p->pid;
}

const char *h_proc_log(const struct h_proc *p)
{
    return p->log;
}

static bool reap(struct h_proc *p, int flags)
{
    if (p->reaped) return true;
    pid_t r;
    while ((r = waitpid(p->pid, &p->status, flags)) < 0 && errno == EINTR) {
    }
    if (r == p->pid) p->reaped = true;
    return p->reaped;
}

bool h_proc_running(struct h_proc *p)
{
    return !reap(p, WNOHANG);
}

void h_proc_term(struct h_proc *p)
{
    if (!p->reaped) kill(p->pid, SIGTERM);
}

void h_proc_wait(struct h_proc *p, int wait_ms)
{
    long long deadline = h_mono_ms() + wait_ms;
    while (!reap(p, WNOHANG) && h_mono_ms() < deadline)
        h_sleep_ms(10);
    if (p->reaped) return;
    p->overdue = true;
    kill(p->pid, SIGKILL);
    reap(p, 0);
}

void h_proc_stop(struct h_proc *p, int wait_ms)
{
    h_proc_term(p);
    h_proc_wait(p, wait_ms);
}

void h_proc_kill(struct h_proc *p)
{
    if (p->reaped) return;
    p->on_purpose = true;
    kill(p->pid, SIGKILL);
    reap(p, 0);
}

int h_proc_exit_status(const struct h_proc *p)
{
    return p->reaped && WIFEXITED(p->status) ? WEXITSTATUS(p->status) : -1;
}

int h_run(const char *name, const char *log, char *const argv[], int timeout_ms)
{
    struct h_proc *p = h_spawn(name, log, argv, NULL);
    long long deadline = h_mono_ms() + timeout_ms;
    while (h_proc_running(p) && h_mono_ms() < deadline)
        h_sleep_ms(20);
    ck_assert_msg(!h_proc_running(p), "%s did not finish within %d ms (log %s)", name, timeout_ms,
                  log);
    int rc = h_proc_exit_status(p);
    h_proc_free(p);
    return rc;
}

bool h_proc_clean(const struct h_proc *p)
{
    return p->reaped && !p->overdue && WIFEXITED(p->status) && WEXITSTATUS(p->status) == 0;
}

/* describe words how p ended, for failure messages. */
static void describe(const struct h_proc *p, char *out, size_t len)
{
    if (!p->reaped)
        snprintf(out, len, "%s (pid %d) is still running", p->name, (int)p->pid);
    else if (p->overdue)
        snprintf(out, len, "%s (pid %d) ignored SIGTERM and was killed", p->name, (int)p->pid);
    else if (WIFSIGNALED(p->status))
        snprintf(out, len, "%s (pid %d) died of signal %d", p->name, (int)p->pid,
                 WTERMSIG(p->status));
    else
        snprintf(out, len, "%s (pid %d) exited with status %d", p->name, (int)p->pid,
                 WEXITSTATUS(p->status));
}

void h_proc_print_log_tail(const struct h_proc *p)
{
    FILE *f = fopen(p->log, "r");
    if (!f) {
        fprintf(stderr, "---- %s: no log at %s ----\n", p->name, p->log);
        return;
    }
    char tail[H_TAIL_BYTES + 1];
    if (fseek(f, -(long)H_TAIL_BYTES, SEEK_END) != 0) rewind(f);
    size_t n = fread(tail, 1, H_TAIL_BYTES, f);
    tail[n] = '\0';
    fclose(f);
    fprintf(stderr, "---- tail of %s ----\n%s\n---- end of %s ----\n", p->log, tail, p->log);
}

/* unclean returns true, after printing why and the log tail, when p did not
 * end as h_proc_assert_clean wants. */
static bool unclean(const struct h_proc *p, char *why, size_t len)
{
    if (p->on_purpose || h_proc_clean(p)) return false;
    describe(p, why, len);
    fprintf(stderr, "%s\n", why);
    h_proc_print_log_tail(p);
    return true;
}

void h_proc_assert_clean(const struct h_proc *p)
{
    char why[256];
    if (unclean(p, why, sizeof why)) ck_abort_msg("%s; log %s", why, p->log);
}

void h_proc_free(struct h_proc *p)
{
    if (!p) return;
    if (!p->reaped) h_proc_kill(p);
    free(p->name);
    free(p->log);
    free(p);
}

/* ---- HTTP ---- */

static size_t on_body(char *data, size_t size, size_t n, void *cls)
{
    return buf_append(cls, data, size * n) == 0 ? size * n : 0;
}

static size_t on_header(char *data, size_t size, size_t n, void *cls)
{
    struct h_resp *r = cls;
    size_t len = size * n;
    const char *colon = memchr(data, ':', len);
    if (!colon) return len; /* the status line and the blank line */
    size_t vlen = len - (size_t)(colon + 1 - data);
    const char *v = colon + 1;
    while (vlen && (*v == ' ' || *v == '\t')) {
        v++;
        vlen--;
    }
    while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
        vlen--;
    struct h_header *h = realloc(r->headers, (r->n_headers + 1) * sizeof *h);
    if (!h) return 0;
    r->headers = h;
    h[r->n_headers].name = strndup(data, (size_t)(colon - data));
    h[r->n_headers].value = strndup(v, vlen);
    r->n_headers++;
    return len;
}

static struct curl_slist *header_list(const char *const headers[])
{
    /* An empty Expect stops curl from waiting for 100-continue on large bodies. */
    struct curl_slist *list = curl_slist_append(NULL, "Expect:");
    ck_assert_ptr_nonnull(list);
    for (size_t i = 0; headers && headers[i]; i++) {
        list = curl_slist_append(list, headers[i]);
        ck_assert_ptr_nonnull(list);
    }
    return list;
}

/* chunk_src feeds a body to libcurl in pieces of at most chunk bytes. */
struct chunk_src {
    const char *data;
    size_t len, off, chunk;
};

static size_t chunk_read(char *out, size_t size, size_t n, void *cls)
{
    struct chunk_src *c = cls;
    size_t want = size * n, left = c->len - c->off;
    if (want > c->chunk) want = c->chunk;
    if (want > left) want = left;
    memcpy(out, c->data + c->off, want);
    c->off += want;
    return want;
}

/* cacert verifies https:// URLs (h_set_cacert); NULL: the system's CAs. */
static char *cacert;

void h_set_cacert(const char *path)
{
    free(cacert);
    cacert = path ? strdup(path) : NULL;
}

/* request sends one request; chunk > 0 sends the body chunked. */
static struct h_resp *request(const char *method, const char *url, const char *const headers[],
                              const char *body, size_t len, size_t chunk)
{
    struct h_resp *r = calloc(1, sizeof *r);
    CURL *c = curl_easy_init();
    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_nonnull(c);
    struct curl_slist *list = header_list(headers);
    struct chunk_src src = {.data = body, .len = len, .chunk = chunk};
    struct buf b;
    buf_init(&b, H_BODY_MAX);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->err);
    if (cacert) curl_easy_setopt(c, CURLOPT_CAINFO, cacert);
    if (!strcmp(method, "HEAD")) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body && chunk) {
        list = curl_slist_append(list, "Transfer-Encoding: chunked");
        ck_assert_ptr_nonnull(list);
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, chunk_read);
        curl_easy_setopt(c, CURLOPT_READDATA, &src);
    } else if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    if (rc != CURLE_OK && !r->err[0]) snprintf(r->err, sizeof r->err, "%s", curl_easy_strerror(rc));
    curl_easy_cleanup(c);
    curl_slist_free_all(list);
    r->body = buf_take(&b, &r->len);
    ck_assert_ptr_nonnull(r->body);
    return r;
}

struct h_resp *h_request(const char *method, const char *url, const char *const headers[],
                         const char *body, size_t len)
{
    return request(method, url, headers, body, len, 0);
}

struct h_resp *h_request_chunked(const char *method, const char *url, const char *const headers[],
                                 const char *body, size_t len, size_t chunk)
{
    return request(method, url, headers, body, len, chunk ? chunk : 1);
}

const char *h_resp_header(const struct h_resp *r, const char *name)
{
    for (size_t i = 0; i < r->n_headers; i++)
        if (r->headers[i].name && !strcasecmp(r->headers[i].name, name)) return r->headers[i].value;
    return NULL;
}

/* parse_whole parses s (NUL-terminated) as exactly one JSON value with the
 * product's own strict parser; the caller puts the result. */
static struct json_object *parse_whole(const char *s)
{
    return json_parse(s, strlen(s), NULL, 0);
}

struct json_object *h_resp_json(const struct h_resp *r)
{
    return strlen(r->body) == r->len ? parse_whole(r->body) : NULL;
}

void h_resp_free(struct h_resp *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n_headers; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->headers);
    free(r->body);
    free(r);
}

void h_wait_http(const char *url, long want, int timeout_ms, struct h_proc *watch)
{
    long long deadline = h_mono_ms() + timeout_ms;
    for (;;) {
        struct h_resp *r = h_request("GET", url, NULL, NULL, 0);
        long got = r->status;
        char last[300];
        snprintf(last, sizeof last, "%ld %s", r->status, r->status ? r->body : r->err);
        h_resp_free(r);
        if (got == want) return;
        if (watch && !h_proc_running(watch)) {
            h_proc_assert_clean(watch);
            ck_abort_msg("%s exited before GET %s answered %ld; log %s", watch->name, url, want,
                         watch->log);
        }
        if (h_mono_ms() > deadline) {
            if (watch) h_proc_print_log_tail(watch);
            ck_abort_msg("GET %s did not answer %ld within %d ms (last: %.200s)", url, want,
                         timeout_ms, last);
        }
        h_sleep_ms(50);
    }
}

/* ---- JSON ---- */

/* segment copies the next dotted segment of *path into seg and advances *path
 * past it; it returns false at the end of the path. */
static bool segment(const char **path, char *seg, size_t len)
{
    if (!**path) return false;
    size_t n = strcspn(*path, ".");
    ck_assert_msg(n > 0 && n < len, "bad JSON path segment in \"%s\"", *path);
    memcpy(seg, *path, n);
    seg[n] = '\0';
    *path += n + ((*path)[n] == '.');
    return true;
}

struct json_object *h_json_at(struct json_object *o, const char *path)
{
    char seg[256];
    while (o && segment(&path, seg, sizeof seg)) {
        char *end;
        long i = strtol(seg, &end, 10);
        if (json_object_is_type(o, json_type_array) && !*end && i >= 0)
            o = json_object_array_get_idx(o, (size_t)i);
        else if (!json_object_object_get_ex(o, seg, &o))
            o = NULL;
    }
    return o;
}

const char *h_json_str(struct json_object *o, const char *path)
{
    struct json_object *v = h_json_at(o, path);
    ck_assert_msg(json_object_is_type(v, json_type_string), "%s is not a string in %s", path,
                  json_object_to_json_string(o));
    return json_object_get_string(v);
}

long long h_json_int(struct json_object *o, const char *path)
{
    struct json_object *v = h_json_at(o, path);
    ck_assert_msg(json_object_is_type(v, json_type_int), "%s is not an integer in %s", path,
                  json_object_to_json_string(o));
    return (long long)json_object_get_int64(v);
}

/* set_at puts v at the dotted path of root, creating objects on the way;
 * a number segment indexes an existing array ("keys.2.rate_per_s"). */
static void set_at(struct json_object *root, const char *path, struct json_object *v)
{
    char seg[256];
    const char *p = path;
    struct json_object *o = root;
    ck_assert_msg(segment(&p, seg, sizeof seg), "empty config path");
    while (*p) {
        struct json_object *next;
        char *end;
        long i = strtol(seg, &end, 10);
        if (json_object_is_type(o, json_type_array) && !*end && i >= 0) {
            next = json_object_array_get_idx(o, (size_t)i);
            ck_assert_msg(next != NULL, "%s: no element %ld", path, i);
        } else if (!json_object_object_get_ex(o, seg, &next)) {
            next = json_object_new_object();
            json_object_object_add(o, seg, next);
        }
        ck_assert_msg(json_object_is_type(next, json_type_object) ||
                          json_object_is_type(next, json_type_array),
                      "%s: %s is not an object", path, seg);
        o = next;
        segment(&p, seg, sizeof seg);
    }
    ck_assert_msg(json_object_is_type(o, json_type_object), "%s: cannot set in an array", path);
    json_object_object_add(o, seg, v);
}

/* ---- stacks ---- */

/* CONFIG_TEMPLATE is the default config: amqp_url (a JSON string), the
 * namespace and the backend URL fill it; listen ports are set at start. */
#define CONFIG_TEMPLATE                                                                            \
    "{\"amqp_url\":%s,\"namespace\":\"%s\",\"log_level\":\"info\","                                \
    "\"ingress\":{\"listen\":\"127.0.0.1:0\",\"threads\":2,\"max_body_bytes\":1048576,"            \
    "\"status_retention_s\":86400,\"max_status_entries\":1000000,\"confirm_timeout_ms\":5000},"    \
    "\"worker\":{\"batch_size\":100,\"batch_linger_ms\":5,\"prefetch\":200,"                       \
    "\"metrics_listen\":\"127.0.0.1:0\",\"retry_hold_max_ms\":1000},\"keys\":[],"                  \
    "\"routes\":{\"echo\":{\"upstreams\":[\"%s\"],\"timeout_ms\":5000,\"max_attempts\":4,"         \
    "\"backoff_ms\":100,\"backoff_max_ms\":10000}}}"

/* pathf formats a file name and fails the test rather than truncate it. */
__attribute__((format(printf, 3, 4))) static void pathf(char *out, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, len, fmt, ap);
    va_end(ap);
    ck_assert_msg(n >= 0 && (size_t)n < len, "path too long: %s...", out);
}

/* test_dir is the directory of this test process: with CK_FORK one per test. */
static void test_dir(char *out, size_t len)
{
    const char *tmp = getenv("TMPDIR");
    pathf(out, len, "%s/sluice-itest-%d", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    ck_assert_msg(mkdir(out, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", out, strerror(errno));
}

/* make_dir claims the first free "t<pid>x<n>" under the test directory; the
 * name is the namespace too, so the counter lives in the file system. */
static void make_dir(struct h_stack *s)
{
    char base[PATH_MAX - 64];
    test_dir(base, sizeof base);
    for (int n = 1; n < 10000; n++) {
        snprintf(s->ns, sizeof s->ns, "t%dx%d", (int)getpid(), n);
        pathf(s->dir, sizeof s->dir, "%s/%s", base, s->ns);
        if (mkdir(s->dir, 0755) == 0) break;
        ck_assert_msg(errno == EEXIST, "mkdir %s: %s", s->dir, strerror(errno));
    }
    pathf(s->config_path, sizeof s->config_path, "%s/config.json", s->dir);
}

static void bin_path(char *out, size_t len, const char *name)
{
    pathf(out, len, "%s/%s", h_bin_dir(), name);
}

static bool port_taken(const struct h_stack *s, int port)
{
    bool taken = port == s->ingress_port || port == s->backend_port;
    for (int i = 0; i < s->n_workers; i++)
        taken = taken || port == s->workers[i].port;
    return taken;
}

/* fresh_port avoids handing one port to two processes of a stack, which
 * successive h_free_port calls may otherwise do. */
static int fresh_port(const struct h_stack *s)
{
    int port;
    do
        port = h_free_port();
    while (port_taken(s, port));
    return port;
}

static void start_backend(struct h_stack *s)
{
    char bin[PATH_MAX], listen[32], access_log[PATH_MAX], log[PATH_MAX], url[96];
    s->backend_port = fresh_port(s);
    bin_path(bin, sizeof bin, "sluice-backend");
    snprintf(listen, sizeof listen, "127.0.0.1:%d", s->backend_port);
    pathf(access_log, sizeof access_log, "%s/backend-access.log", s->dir);
    pathf(log, sizeof log, "%s/backend.log", s->dir);
    char *argv[] = {bin, "--listen", listen, "--log", access_log, NULL};
    s->backend = h_spawn("backend", log, argv, NULL);
    snprintf(s->backend_url, sizeof s->backend_url, "http://%s", listen);
    snprintf(url, sizeof url, "%s/_stats", s->backend_url);
    h_wait_http(url, 200, 10000, s->backend);
}

static void default_config(struct h_stack *s)
{
    struct json_object *amqp = json_object_new_string(h_amqp_url());
    char *text = NULL;
    int n =
        snprintf(NULL, 0, CONFIG_TEMPLATE, json_object_to_json_string(amqp), s->ns, s->backend_url);
    ck_assert_int_ge(n, 0);
    text = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(text);
    snprintf(text, (size_t)n + 1, CONFIG_TEMPLATE, json_object_to_json_string(amqp), s->ns,
             s->backend_url);
    s->config = json_tokener_parse(text);
    ck_assert_msg(s->config != NULL, "default config does not parse: %s", text);
    free(text);
    json_object_put(amqp);
    /* SLUICE_TEST_LOG_LEVEL=debug keeps every call's and settlement's line
     * in the logs a failed test leaves behind. */
    const char *level = getenv("SLUICE_TEST_LOG_LEVEL");
    if (level && *level)
        json_object_object_add(s->config, "log_level", json_object_new_string(level));
    h_stack_add_key(s, "test", H_TOKEN, "acme", "[\"*\"]");
    h_stack_add_key(s, "other", H_OTHER_TOKEN, "globex", "[\"echo\"]");
}

struct h_stack *h_stack_new(void)
{
    h_amqp_url(); /* a single broker (SLUICE_TEST_BROKER_DIR) or a cluster's nodes */
    struct h_stack *s = calloc(1, sizeof *s);
    ck_assert_ptr_nonnull(s);
    make_dir(s);
    start_backend(s);
    default_config(s);
    return s;
}

static struct json_object *parse_text(const char *text)
{
    struct json_object *o = parse_whole(text);
    ck_assert_msg(o != NULL, "not one JSON value: %s", text);
    return o;
}

void h_stack_set(struct h_stack *s, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    ck_assert_int_ge(n, 0);
    char *text = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(text);
    va_start(ap, fmt);
    vsnprintf(text, (size_t)n + 1, fmt, ap);
    va_end(ap);
    set_at(s->config, path, parse_text(text));
    free(text);
}

void h_stack_add_key(struct h_stack *s, const char *id, const char *token, const char *tenant,
                     const char *routes_json)
{
    char hex[65];
    h_sha256_hex(token, hex);
    struct json_object *keys, *k = json_object_new_object();
    ck_assert_ptr_nonnull(k);
    json_object_object_add(k, "id", json_object_new_string(id));
    json_object_object_add(k, "secret_sha256", json_object_new_string(hex));
    json_object_object_add(k, "tenant", json_object_new_string(tenant));
    json_object_object_add(k, "max_priority", json_object_new_int(9));
    json_object_object_add(k, "routes", parse_text(routes_json));
    if (!json_object_object_get_ex(s->config, "keys", &keys)) {
        keys = json_object_new_array();
        json_object_object_add(s->config, "keys", keys);
    }
    ck_assert_msg(json_object_is_type(keys, json_type_array), "config keys is not an array");
    json_object_array_add(keys, k);
}

/* write_config replaces the config file whole (a new file renamed over it):
 * a process started just before may still be reading the previous one, and
 * rewriting in place let it read an empty file. */
static void write_config(const struct h_stack *s)
{
    char tmp[PATH_MAX];
    pathf(tmp, sizeof tmp, "%s.new", s->config_path);
    ck_assert_msg(json_object_to_file_ext(tmp, s->config, JSON_C_TO_STRING_PRETTY) == 0,
                  "write %s: %s", tmp, json_util_get_last_err());
    ck_assert_msg(rename(tmp, s->config_path) == 0, "rename %s: %s", tmp, strerror(errno));
}

const char *h_stack_write_config(struct h_stack *s)
{
    write_config(s);
    return s->config_path;
}

void h_stack_start_ingress(struct h_stack *s)
{
    ck_assert_msg(!s->ingress || !h_proc_running(s->ingress), "the ingress is already running");
    h_proc_free(s->ingress);
    s->ingress = NULL;
    char bin[PATH_MAX], log[PATH_MAX], url[96];
    bin_path(bin, sizeof bin, "sluice-ingress");
    pathf(log, sizeof log, "%s/ingress.log", s->dir);
    write_config(s);
    char *argv[] = {bin, "--config", s->config_path, NULL};
    s->ingress = h_spawn("ingress", log, argv, NULL);
    snprintf(url, sizeof url, "%s/readyz", s->url);
    h_wait_http(url, 200, H_READY_TIMEOUT_MS, s->ingress);
}

static int spawn_worker(struct h_stack *s)
{
    ck_assert_int_lt(s->n_workers, H_MAX_WORKERS);
    int i = s->n_workers;
    char bin[PATH_MAX], log[PATH_MAX], name[32], env_listen[64];
    s->workers[i].port = fresh_port(s);
    s->n_workers++;
    bin_path(bin, sizeof bin, "sluice-worker");
    pathf(log, sizeof log, "%s/worker-%d.log", s->dir, i);
    snprintf(name, sizeof name, "worker-%d", i);
    snprintf(env_listen, sizeof env_listen, "SLUICE_METRICS_LISTEN=127.0.0.1:%d",
             s->workers[i].port);
    write_config(s);
    char *argv[] = {bin, "--config", s->config_path, NULL};
    char *env[] = {env_listen, NULL};
    s->workers[i].proc = h_spawn(name, log, argv, env);
    return i;
}

static void wait_worker(struct h_stack *s, int i)
{
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", s->workers[i].port);
    h_wait_http(url, 200, H_READY_TIMEOUT_MS, s->workers[i].proc);
}

void h_stack_start(struct h_stack *s, int n_workers)
{
    ck_assert_msg(!s->ingress, "h_stack_start called twice");
    s->ingress_port = fresh_port(s);
    snprintf(s->url, sizeof s->url, "%s://127.0.0.1:%d", s->tls ? "https" : "http",
             s->ingress_port);
    h_stack_set(s, "ingress.listen", "\"127.0.0.1:%d\"", s->ingress_port);
    int first = s->n_workers;
    for (int i = 0; i < n_workers; i++)
        spawn_worker(s);
    h_stack_start_ingress(s);
    for (int i = first; i < s->n_workers; i++)
        wait_worker(s, i);
}

void h_stack_use_tls(struct h_stack *s)
{
    char key[PATH_MAX], log[PATH_MAX];
    pathf(s->cert, sizeof s->cert, "%s/tls-cert.pem", s->dir);
    pathf(key, sizeof key, "%s/tls-key.pem", s->dir);
    pathf(log, sizeof log, "%s/openssl.log", s->dir);
    char *argv[] = {"/usr/bin/openssl",
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=localhost",
                    "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout",
                    key,
                    "-out",
                    s->cert,
                    NULL};
    ck_assert_msg(h_run("openssl", log, argv, 30000) == 0, "openssl req failed; see %s", log);
    h_stack_set(s, "ingress.tls_cert_file", "\"%s\"", s->cert);
    h_stack_set(s, "ingress.tls_key_file", "\"%s\"", key);
    h_set_cacert(s->cert);
    s->tls = true;
}

const char *h_stack_cert(const struct h_stack *s)
{
    return s->tls ? s->cert : NULL;
}

int h_stack_port(const struct h_stack *s)
{
    return s->ingress_port;
}

void h_stack_restart_ingress(struct h_stack *s)
{
    ck_assert_ptr_nonnull(s->ingress);
    h_proc_stop(s->ingress, H_STOP_TIMEOUT_MS);
    h_proc_assert_clean(s->ingress);
    h_stack_start_ingress(s);
}

void h_stack_kill_ingress(struct h_stack *s)
{
    ck_assert_ptr_nonnull(s->ingress);
    h_proc_kill(s->ingress);
}

int h_stack_add_worker(struct h_stack *s)
{
    int i = spawn_worker(s);
    wait_worker(s, i);
    return i;
}

void h_stack_kill_worker(struct h_stack *s, int i)
{
    h_proc_kill(h_stack_worker(s, i));
}

void h_stack_stop_worker(struct h_stack *s, int i)
{
    struct h_proc *p = h_stack_worker(s, i);
    h_proc_stop(p, H_STOP_TIMEOUT_MS);
    h_proc_assert_clean(p);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* stop_all stops the gateway processes, then the backend (so workers finish
 * their calls), and counts those that did not exit cleanly; first says why. */
static int stop_all(struct h_stack *s, char *first, size_t len)
{
    struct h_proc *procs[H_MAX_WORKERS + 2];
    int n = 0, bad = 0;
    for (int i = 0; i < s->n_workers; i++)
        procs[n++] = s->workers[i].proc;
    if (s->ingress) procs[n++] = s->ingress;
    for (int i = 0; i < n; i++)
        h_proc_term(procs[i]);
    for (int i = 0; i < n; i++)
        h_proc_wait(procs[i], H_STOP_TIMEOUT_MS);
    if (s->backend) {
        procs[n++] = s->backend;
        h_proc_stop(s->backend, H_STOP_TIMEOUT_MS);
    }
    for (int i = 0; i < n; i++) {
        char why[256];
        if (unclean(procs[i], why, sizeof why) && !bad++) snprintf(first, len, "%s", why);
    }
    return bad;
}

void h_stack_teardown(struct h_stack *s)
{
    if (!s) return;
    char first[256] = "", dir[PATH_MAX];
    int bad = stop_all(s, first, sizeof first);
    snprintf(dir, sizeof dir, "%s", s->dir);
    for (int i = 0; i < s->n_workers; i++)
        h_proc_free(s->workers[i].proc);
    h_proc_free(s->ingress);
    h_proc_free(s->backend);
    json_object_put(s->config);
    free(s);
    if (!bad && !getenv("SLUICE_KEEP_LOGS")) {
        nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        *strrchr(dir, '/') = '\0';
        rmdir(dir); /* fails harmlessly while other stacks of this test keep files */
    }
    ck_assert_msg(!bad, "%d process(es) did not exit cleanly, first: %s; logs kept in %s", bad,
                  first, dir);
}

const char *h_stack_url(const struct h_stack *s)
{
    return s->url;
}

const char *h_stack_backend_url(const struct h_stack *s)
{
    return s->backend_url;
}

const char *h_stack_namespace(const struct h_stack *s)
{
    return s->ns;
}

const char *h_stack_dir(const struct h_stack *s)
{
    return s->dir;
}

FILE *h_backend_access_log(struct h_stack *s)
{
    char path[4096];
    pathf(path, sizeof path, "%s/backend-access.log", s->dir);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    return f;
}

void h_stack_metrics_url(const struct h_stack *s, int i, char *out, size_t len)
{
    ck_assert_msg(i >= 0 && i < s->n_workers, "no worker %d", i);
    snprintf(out, len, "http://127.0.0.1:%d", s->workers[i].port);
}

struct h_proc *h_stack_ingress(struct h_stack *s)
{
    ck_assert_ptr_nonnull(s->ingress);
    return s->ingress;
}

struct h_proc *h_stack_worker(struct h_stack *s, int i)
{
    ck_assert_msg(i >= 0 && i < s->n_workers, "no worker %d", i);
    return s->workers[i].proc;
}

/* ---- the API and the backend ---- */

static struct h_resp *api(struct h_stack *s, const char *method, const char *token,
                          const char *path, const char *body)
{
    char auth[9000], url[512]; /* a JWT (RS256) is longer than an API key */
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    snprintf(url, sizeof url, "%s%s", s->url, path);
    const char *headers[] = {auth, "Content-Type: application/json", NULL};
    return h_request(method, url, headers, body, body ? strlen(body) : 0);
}

char *h_submit(struct h_stack *s, const char *token, const char *envelope)
{
    struct h_resp *r = api(s, "POST", token, "/v1/requests", envelope);
    ck_assert_msg(r->status == 202, "POST /v1/requests answered %ld%s%s: %.500s", r->status,
                  r->err[0] ? " " : "", r->err, r->body);
    struct json_object *o = h_resp_json(r);
    ck_assert_msg(o != NULL, "the 202 body is not JSON: %.500s", r->body);
    char *id = xstrdup(h_json_str(o, "id"));
    json_object_put(o);
    h_resp_free(r);
    return id;
}

struct json_object *h_get_status(struct h_stack *s, const char *token, const char *id, long *http)
{
    char path[256];
    snprintf(path, sizeof path, "/v1/requests/%s", id);
    struct h_resp *r = api(s, "GET", token, path, NULL);
    struct json_object *o = h_resp_json(r);
    if (http) *http = r->status;
    h_resp_free(r);
    return o;
}

static bool is_final(struct json_object *st)
{
    struct json_object *v = h_json_at(st, "status");
    const char *s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
    return !strcmp(s, "succeeded") || !strcmp(s, "failed") || !strcmp(s, "dead") ||
           !strcmp(s, "cancelled");
}

struct json_object *h_wait_final(struct h_stack *s, const char *token, const char *id,
                                 int timeout_ms)
{
    long long deadline = h_mono_ms() + timeout_ms;
    for (;;) {
        long http = 0;
        struct json_object *st = h_get_status(s, token, id, &http);
        if (http == 200 && is_final(st)) return st;
        if (h_mono_ms() > deadline) {
            char last[600];
            snprintf(last, sizeof last, "%s", st ? json_object_to_json_string(st) : "(no JSON)");
            json_object_put(st);
            ck_abort_msg("request %s not final within %d ms; last answer %ld: %s", id, timeout_ms,
                         http, last);
        }
        json_object_put(st);
        h_sleep_ms(20);
    }
}

/* backend_count GETs a counter document of the backend and returns member key. */
static long backend_count(struct h_stack *s, const char *path, const char *key)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", s->backend_url, path);
    struct h_resp *r = h_request("GET", url, NULL, NULL, 0);
    struct json_object *o = h_resp_json(r);
    ck_assert_msg(r->status == 200 && o, "GET %s answered %ld: %.300s", url, r->status, r->body);
    long n = (long)h_json_int(o, key);
    json_object_put(o);
    h_resp_free(r);
    return n;
}

long h_backend_calls(struct h_stack *s, const char *key)
{
    char *esc = curl_easy_escape(NULL, key, 0);
    ck_assert_ptr_nonnull(esc);
    char path[256];
    snprintf(path, sizeof path, "/_calls?key=%s", esc);
    curl_free(esc);
    return backend_count(s, path, "calls");
}

long h_backend_requests(struct h_stack *s)
{
    return backend_count(s, "/_stats", "requests");
}

struct h_proc *h_backend_spawn(struct h_stack *s, const char *name, int port,
                               const char *const extra[], char *url, size_t len)
{
    char bin[PATH_MAX], listen[32], access_log[PATH_MAX], log[PATH_MAX], stats[96];
    char *argv[16] = {bin, "--listen", listen, "--log-us", access_log};
    size_t n = 5;
    bin_path(bin, sizeof bin, "sluice-backend");
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port ? port : fresh_port(s));
    pathf(access_log, sizeof access_log, "%s/%s-access.log", s->dir, name);
    pathf(log, sizeof log, "%s/%s.log", s->dir, name);
    for (; extra && *extra && n < 15; extra++)
        argv[n++] = (char *)*extra;
    argv[n] = NULL;
    struct h_proc *p = h_spawn(name, log, argv, NULL);
    snprintf(url, len, "http://%s", listen);
    snprintf(stats, sizeof stats, "%s/_stats", url);
    h_wait_http(stats, 200, 10000, p);
    return p;
}

long h_backend_stat(const char *url, const char *key, bool reset)
{
    char u[512];
    snprintf(u, sizeof u, "%s/_stats%s", url, reset ? "?reset=1" : "");
    struct h_resp *r = h_request("GET", u, NULL, NULL, 0);
    struct json_object *o = h_resp_json(r);
    ck_assert_msg(r->status == 200 && o, "GET %s answered %ld: %.300s", u, r->status, r->body);
    long n = (long)h_json_int(o, key);
    json_object_put(o);
    h_resp_free(r);
    return n;
}

FILE *h_stack_open(struct h_stack *s, const char *name)
{
    char path[PATH_MAX];
    pathf(path, sizeof path, "%s/%s", s->dir, name);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s: %s", path, strerror(errno));
    return f;
}

int h_cli(struct h_stack *s, const char *out, const char *url, const char *token,
          const char *const args[])
{
    char bin[PATH_MAX], log[PATH_MAX];
    char *argv[32];
    size_t n = 0;
    pathf(bin, sizeof bin, "%s/sluice", h_bin_dir());
    pathf(log, sizeof log, "%s/%s", s->dir, out);
    /* A fresh file: the caller reads this run's output alone. */
    FILE *f = fopen(log, "w");
    ck_assert_msg(f != NULL, "cannot create %s: %s", log, strerror(errno));
    fclose(f);
    argv[n++] = bin;
    argv[n++] = "--url";
    argv[n++] = (char *)(url ? url : s->url);
    argv[n++] = "--token";
    argv[n++] = (char *)token;
    for (size_t i = 0; args[i]; i++) {
        ck_assert_msg(n < sizeof argv / sizeof argv[0] - 1, "h_cli: too many arguments");
        argv[n++] = (char *)args[i];
    }
    argv[n] = NULL;
    return h_run("sluice", log, argv, 30000);
}

bool h_file_has(struct h_stack *s, const char *name, const char *needle)
{
    FILE *f = h_stack_open(s, name);
    char line[8192];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

bool h_log_has(struct h_stack *s, const char *name, const char *needle, const char *also)
{
    FILE *f = h_stack_open(s, name);
    char line[16384];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        /* The logs are JSON lines: the message is compared unescaped. */
        struct json_object *o = json_tokener_parse(line), *msg;
        found = o && json_object_object_get_ex(o, "msg", &msg) &&
                strstr(json_object_get_string(msg), needle) != NULL &&
                (!also || strstr(json_object_get_string(msg), also) != NULL);
        json_object_put(o);
    }
    fclose(f);
    return found;
}

void h_expect_logged(struct h_stack *s, const char *name, const char *const want[])
{
    char missing[2048] = "";
    for (size_t i = 0; want[i]; i += 2)
        if (!h_log_has(s, name, want[i], want[i + 1]))
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), " [%s ... %s]",
                     want[i], want[i + 1]);
    ck_assert_msg(!missing[0], "%s lacks:%s", name, missing);
}

/* open_any connects to the first node of SLUICE_TEST_AMQP_URL that answers
 * (a cluster suite may have one down). */
static struct mq *open_any(void)
{
    struct nodes ns;
    char err[512] = "";
    struct mq *mq = NULL;
    ck_assert_msg(nodes_parse(&ns, h_amqp_url(), err, sizeof err) == 0, "%s", err);
    for (size_t i = 0; i < ns.n && !mq; i++, nodes_next(&ns))
        if (mq_open(&mq, nodes_url(&ns), "sluice-itest", 5000, err, sizeof err) < 0) mq = NULL;
    nodes_free(&ns);
    ck_assert_msg(mq != NULL, "cannot reach the broker: %s", err);
    return mq;
}

long h_queue_messages(struct h_stack *s, const char *suffix)
{
    char queue[256];
    struct mq *mq = open_any();
    uint32_t messages = 0, consumers = 0;
    snprintf(queue, sizeof queue, "%s.%s", s->ns, suffix);
    long n = mq_queue_stats(mq, queue, &messages, &consumers) == 0 ? (long)messages : -1;
    mq_close(mq);
    return n;
}

/* broker_sh runs scripts/broker.sh VERB <broker dir> [ARGS...] to completion,
 * its standard output to out_fd (-1: inherited), and fails the test unless
 * it exits 0. */
static void broker_sh(const char *verb, const char *const *args, int out_fd)
{
    char script[] = "scripts/broker.sh", v[16], dir[PATH_MAX];
    char *argv[16] = {script, v, dir};
    int n = 3;
    snprintf(v, sizeof v, "%s", verb);
    snprintf(dir, sizeof dir, "%s", h_broker_dir());
    for (; args && *args && n < 15; args++)
        argv[n++] = (char *)*args;
    argv[n] = NULL;
    pid_t pid = fork_exec(argv, environ, out_fd);
    ck_assert_msg(pid > 0, "fork: %s", strerror(errno));
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "scripts/broker.sh %s %s failed (wait status %d)", verb, dir, status);
}

char *h_queue_arguments(struct h_stack *s, const char *suffix)
{
    static const char *const list[] = {"list_queues", "--no-table-headers", "name", "arguments",
                                       NULL};
    char out[PATH_MAX], prefix[256], line[4096];
    pathf(out, sizeof out, "%s/list_queues.out", s->dir);
    snprintf(prefix, sizeof prefix, "%s.%s\t", s->ns, suffix);
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ck_assert_msg(fd >= 0, "open %s: %s", out, strerror(errno));
    broker_sh("ctl", list, fd);
    close(fd);
    FILE *f = fopen(out, "r");
    ck_assert_msg(f != NULL, "open %s: %s", out, strerror(errno));
    char *args = NULL;
    while (!args && fgets(line, sizeof line, f)) {
        if (strncmp(line, prefix, strlen(prefix)) != 0) continue;
        line[strcspn(line, "\n")] = '\0';
        args = xstrdup(line + strlen(prefix));
    }
    fclose(f);
    return args;
}

bool h_quorum_mode(void)
{
    const char *t = getenv("SLUICE_QUEUE_TYPE");
    return t && strcmp(t, "quorum") == 0;
}

void h_broker_pause(void)
{
    broker_sh("pause", NULL, -1);
}

void h_broker_resume(void)
{
    broker_sh("resume", NULL, -1);
}

/* ---- raw sockets ---- */

int h_dial(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
    ck_assert_msg(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect to port %d: %s", port,
                  strerror(errno));
    return fd;
}

void h_send_all(int fd, const char *p)
{
    size_t n = strlen(p);
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        ck_assert_msg(w > 0, "send: %s", w < 0 ? strerror(errno) : "nothing sent");
        p += w;
        n -= (size_t)w;
    }
}

int h_read_answer(int fd, char *out, size_t len, int ms)
{
    size_t got = 0;
    long long deadline = h_mono_ms() + ms;
    out[0] = '\0';
    while (h_mono_ms() < deadline && got < len - 1) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) continue;
        ssize_t n = recv(fd, out + got, len - 1 - got, 0);
        if (n <= 0) return n == 0 ? 1 : -1;
        got += (size_t)n;
        out[got] = '\0';
        const char *end = strstr(out, "\r\n\r\n");
        const char *cl = strcasestr(out, "\r\nContent-Length: ");
        if (end && (!cl || cl > end || got >= (size_t)(end + 4 - out) + strtoul(cl + 18, NULL, 10)))
            return 0;
    }
    return -1;
}

bool h_closed_within(int fd, int ms)
{
    char b[4096];
    long long deadline = h_mono_ms() + ms;
    while (h_mono_ms() < deadline) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) continue;
        ssize_t n = recv(fd, b, sizeof b, 0);
        if (n <= 0) return true;
    }
    return false;
}

/* h_broker_beam_pid finds the Erlang VM of the test broker: the child of the
 * rabbitmq-server script whose pid broker.sh keeps in server.pid. */
pid_t h_broker_beam_pid(void)
{
    char path[4096], comm[64];
    snprintf(path, sizeof path, "%s/server.pid", h_broker_dir());
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "no %s", path);
    int server = 0, beam = 0;
    ck_assert_int_eq(fscanf(f, "%d", &server), 1);
    fclose(f);
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", server, server);
    f = fopen(path, "r");
    ck_assert_msg(f != NULL, "no %s", path);
    ck_assert_int_eq(fscanf(f, "%d", &beam), 1);
    fclose(f);
    snprintf(path, sizeof path, "/proc/%d/comm", beam);
    f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(comm, sizeof comm, f));
    fclose(f);
    ck_assert_msg(!strncmp(comm, "beam", 4), "child %d of the broker is %s", beam, comm);
    return beam;
}

static pid_t frozen_beam;

pid_t h_broker_freeze(long guard_ms)
{
    frozen_beam = h_broker_beam_pid();
    fflush(NULL);
    pid_t g = fork();
    ck_assert_int_ge(g, 0);
    if (g == 0) {
        h_sleep_ms(guard_ms);
        kill(frozen_beam, SIGCONT);
        _exit(0);
    }
    ck_assert_int_eq(kill(frozen_beam, SIGSTOP), 0);
    return g;
}

void h_broker_thaw(pid_t guard)
{
    kill(frozen_beam, SIGCONT);
    kill(guard, SIGKILL);
    waitpid(guard, NULL, 0);
}

struct h_proc *h_start_replica(struct h_stack *s, int n, char *url, size_t len)
{
    char bin[PATH_MAX], config[PATH_MAX], log[PATH_MAX], listen[64], ready[128], name[32];
    int port = fresh_port(s);
    bin_path(bin, sizeof bin, "sluice-ingress");
    pathf(config, sizeof config, "%s/config.json", s->dir);
    pathf(log, sizeof log, "%s/ingress-%d.log", s->dir, n);
    snprintf(listen, sizeof listen, "SLUICE_LISTEN=127.0.0.1:%d", port);
    snprintf(name, sizeof name, "ingress-%d", n);
    write_config(s);
    char *argv[] = {bin, "--config", config, NULL};
    char *env[] = {listen, NULL};
    struct h_proc *p = h_spawn(name, log, argv, env);
    snprintf(url, len, "http://127.0.0.1:%d", port);
    snprintf(ready, sizeof ready, "%s/readyz", url);
    h_wait_http(ready, 200, H_READY_TIMEOUT_MS, p);
    return p;
}
