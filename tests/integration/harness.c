/* harness.c: processes, HTTP and stacks for the integration tests (see
 * harness.h). Failures go through ck_abort_msg, which ends the forked test
 * process; the children then die of PR_SET_PDEATHSIG, so nothing lingers. */
#include "harness.h"

#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
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
    int status;     /* wait status, once reaped */
    bool reaped;
    bool overdue;   /* SIGKILLed because SIGTERM was not enough */
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
    ck_assert_msg(v && *v, "%s is not set: run integration tests through scripts/run-tests.sh "
                           "integration (make integration)", name);
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

/* child_env is the test's environment without SLUICE_* (a developer's own
 * settings must not leak into a test's config) plus extra. The strings are
 * borrowed; the caller frees only the array. */
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
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "SLUICE_", 7) != 0) env[j++] = environ[i];
    for (size_t i = 0; i < k; i++)
        env[j++] = extra[i];
    return env;
}

/* exec_child runs in the forked child and only makes async-signal-safe calls. */
static void exec_child(pid_t parent, int logfd, char *const argv[], char *const env[])
{
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    sigaction(SIGTERM, &dfl, NULL);
    sigaction(SIGINT, &dfl, NULL);
    sigaction(SIGPIPE, &dfl, NULL);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(126);
    int in = open("/dev/null", O_RDONLY);
    if (in < 0 || dup2(in, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0) _exit(126);
    execve(argv[0], argv, env);
    static const char msg[] = "harness: execve failed\n";
    ssize_t ignored = write(2, msg, sizeof msg - 1);
    (void)ignored;
    _exit(127);
}

struct h_proc *h_spawn(const char *name, const char *log, char *const argv[], char *const env[])
{
    struct h_proc *p = calloc(1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    p->name = xstrdup(name);
    p->log = xstrdup(log);
    ck_assert_msg(access(argv[0], X_OK) == 0, "%s: %s is not executable (%s); build it first",
                  name, argv[0], strerror(errno));
    int logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    ck_assert_msg(logfd >= 0, "%s: open %s: %s", name, log, strerror(errno));
    char **envp = child_env(env);
    pid_t parent = getpid();
    fflush(NULL);
    p->pid = fork();
    if (p->pid == 0) exec_child(parent, logfd, argv, envp);
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

struct h_resp *h_request(const char *method, const char *url, const char *const headers[],
                         const char *body, size_t len)
{
    struct h_resp *r = calloc(1, sizeof *r);
    CURL *c = curl_easy_init();
    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_nonnull(c);
    struct curl_slist *list = header_list(headers);
    struct buf b;
    buf_init(&b, H_BODY_MAX);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->err);
    if (!strcmp(method, "HEAD")) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    if (rc != CURLE_OK && !r->err[0]) snprintf(r->err, sizeof r->err, "%s", curl_easy_strerror(rc));
    curl_easy_cleanup(c);
    curl_slist_free_all(list);
    r->body = buf_take(&b, &r->len);
    ck_assert_ptr_nonnull(r->body);
    return r;
}

const char *h_resp_header(const struct h_resp *r, const char *name)
{
    for (size_t i = 0; i < r->n_headers; i++)
        if (r->headers[i].name && !strcasecmp(r->headers[i].name, name)) return r->headers[i].value;
    return NULL;
}

struct json_object *h_resp_json(const struct h_resp *r)
{
    struct json_tokener *t = json_tokener_new();
    ck_assert_ptr_nonnull(t);
    struct json_object *o = json_tokener_parse_ex(t, r->body, (int)r->len);
    if (o && t->char_offset != (int)r->len) {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(t);
    return o;
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

/* set_at puts v at the dotted path of root, creating objects on the way. */
static void set_at(struct json_object *root, const char *path, struct json_object *v)
{
    char seg[256];
    const char *p = path;
    struct json_object *o = root;
    ck_assert_msg(segment(&p, seg, sizeof seg), "empty config path");
    while (*p) {
        struct json_object *next;
        if (!json_object_object_get_ex(o, seg, &next)) {
            next = json_object_new_object();
            json_object_object_add(o, seg, next);
        }
        ck_assert_msg(json_object_is_type(next, json_type_object), "%s: %s is not an object",
                      path, seg);
        o = next;
        segment(&p, seg, sizeof seg);
    }
    json_object_object_add(o, seg, v);
}
