/* backend.c: sluice-backend, a real HTTP server used as the demo backend of
 * `make run`, the backend of the integration tests and of the benchmarks.
 * It echoes what it receives, and a few paths misbehave on purpose (a fixed
 * status, a delay, failures counted per Idempotency-Key, Retry-After) so tests
 * drive the worker's retry logic against real HTTP. It runs one thread per
 * connection, so a delay simply blocks its own connection. It counts the
 * calls it is answering at once and their high-water mark, so that tests
 * of concurrency limits see what a backend sees. */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include "buf.h"

#define BODY_MAX ((size_t)64 << 20)
#define DELAY_MAX_MS 600000L
#define CONNECTION_LIMIT 4096
#define STACK_SIZE ((size_t)512 << 10)
#define FD_WANTED 65536

/* count is one Idempotency-Key and how many requests carried it. */
struct count {
    struct count *next;
    long n;
    char key[];
};

/* counts maps keys to calls; requests without the header count under "". */
struct counts {
    pthread_mutex_t lock;
    struct count **buckets;
    size_t n_buckets; /* a power of two */
    size_t n_keys;
    long requests;      /* every request but the /_ ones */
    long in_flight;     /* of those, being answered now */
    long max_in_flight; /* the most answered at once */
};

struct backend {
    struct counts counts;
    const char *batch_dump; /* directory for the bodies of batch calls, or NULL */
    pthread_mutex_t log_lock;
    FILE *log;    /* access log, or NULL */
    int log_unit; /* 1000 for milliseconds, 1000000 for microseconds */
    long delay_ms;
};

/* req is one request, from its URI to the completion callback. */
struct req {
    char *path;        /* raw, before '?' */
    const char *query; /* points into path's allocation; "" when absent */
    struct buf body;
    bool started;
    bool too_big;
};

struct reply {
    unsigned int status;
    const char *content_type;
    char *body; /* malloc'd */
    size_t len;
    long retry_after_s;   /* < 0: no Retry-After header */
    bool latin1_header;   /* add "X-Latin1: caf\xe9", a header value that is not UTF-8 */
    const char *location; /* NULL, or a Location header (a redirect) */
};

struct opts {
    const char *batch_dump;
    const char *listen;
    const char *log;
    int log_unit;
    long delay_ms;
};

static size_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (size_t)h;
}

static int counts_init(struct counts *c)
{
    c->n_buckets = 1024;
    c->n_keys = 0;
    c->requests = 0;
    c->buckets = calloc(c->n_buckets, sizeof *c->buckets);
    if (!c->buckets) return -1;
    pthread_mutex_init(&c->lock, NULL);
    return 0;
}

static void counts_free(struct counts *c)
{
    for (size_t i = 0; i < c->n_buckets; i++) {
        struct count *e = c->buckets[i];
        while (e) {
            struct count *next = e->next;
            free(e);
            e = next;
        }
    }
    free(c->buckets);
    pthread_mutex_destroy(&c->lock);
}

/* counts_grow doubles the table so chains stay short when a benchmark sends
 * millions of keys; on ENOMEM the old table simply stays. */
static void counts_grow(struct counts *c)
{
    size_t n = c->n_buckets * 2;
    struct count **b = calloc(n, sizeof *b);
    if (!b) return;
    for (size_t i = 0; i < c->n_buckets; i++) {
        struct count *e = c->buckets[i];
        while (e) {
            struct count *next = e->next;
            size_t j = hash(e->key) & (n - 1);
            e->next = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->n_buckets = n;
}

static struct count *counts_find(struct counts *c, const char *key)
{
    struct count *e = c->buckets[hash(key) & (c->n_buckets - 1)];
    while (e && strcmp(e->key, key) != 0)
        e = e->next;
    return e;
}

/* counts_bump records one call with key and returns the key's count including
 * it, or -1 on ENOMEM. */
static long counts_bump(struct counts *c, const char *key)
{
    long n = -1;
    pthread_mutex_lock(&c->lock);
    c->requests++;
    struct count *e = counts_find(c, key);
    if (!e) {
        size_t len = strlen(key);
        e = malloc(sizeof *e + len + 1);
        if (!e) goto out;
        memcpy(e->key, key, len + 1);
        e->n = 0;
        size_t i = hash(key) & (c->n_buckets - 1);
        e->next = c->buckets[i];
        c->buckets[i] = e;
        if (++c->n_keys > c->n_buckets) counts_grow(c);
    }
    n = ++e->n;
out:
    pthread_mutex_unlock(&c->lock);
    return n;
}

static long counts_get(struct counts *c, const char *key)
{
    pthread_mutex_lock(&c->lock);
    const struct count *e = counts_find(c, key);
    long n = e ? e->n : 0;
    pthread_mutex_unlock(&c->lock);
    return n;
}

/* counts_stats writes {"requests":..,"in_flight":..,"max_in_flight":..}
 * into r; with reset, the high-water mark starts again from now. */
static void counts_stats(struct counts *c, struct reply *r, bool reset);

/* counts_enter and counts_leave bracket the answer to one counted call. */
static void counts_enter(struct counts *c)
{
    pthread_mutex_lock(&c->lock);
    if (++c->in_flight > c->max_in_flight) c->max_in_flight = c->in_flight;
    pthread_mutex_unlock(&c->lock);
}

static void counts_leave(struct counts *c)
{
    pthread_mutex_lock(&c->lock);
    c->in_flight--;
    pthread_mutex_unlock(&c->lock);
}

/* now_in returns the Unix time in 1/unit seconds (unit 1000: ms, 1000000: us). */
static int64_t now_in(int unit)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * unit + ts.tv_nsec / (1000000000 / unit);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void access_log(struct backend *b, const char *method, const char *path, const char *key)
{
    if (!b->log) return;
    pthread_mutex_lock(&b->log_lock);
    fprintf(b->log, "%lld %s %s %s\n", (long long)now_in(b->log_unit), method, path,
            key ? key : "-");
    fflush(b->log);
    pthread_mutex_unlock(&b->log_lock);
}

/* number_segment parses the decimal number at the start of s, within
 * [min, max], that must be followed by '/' or the end of the path. It returns
 * 0 and sets *v and *rest (at the '/' or the NUL), or -1. */
static int number_segment(const char *s, long min, long max, long *v, const char **rest)
{
    if (*s < '0' || *s > '9') return -1;
    char *end;
    errno = 0;
    long n = strtol(s, &end, 10);
    if (errno || n < min || n > max || (*end != '\0' && *end != '/')) return -1;
    *v = n;
    *rest = end;
    return 0;
}

static const char *after_prefix(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(path, prefix, n) == 0 ? path + n : NULL;
}

/* reply_json takes the JSON text of o (and puts o) as the reply body. */
static void reply_json(struct reply *r, unsigned int status, struct json_object *o)
{
    size_t len = 0;
    const char *s = o ? json_object_to_json_string_length(
                            o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len)
                      : NULL;
    r->status = status;
    r->content_type = "application/json";
    r->body = s ? strndup(s, len) : NULL;
    r->len = r->body ? len : 0;
    json_object_put(o);
}

static void reply_number(struct reply *r, unsigned int status, const char *name, long n)
{
    struct json_object *o = json_object_new_object();
    if (o) json_object_object_add(o, name, json_object_new_int64(n));
    reply_json(r, status, o);
}

static void reply_error(struct reply *r, unsigned int status, const char *message)
{
    struct json_object *o = json_object_new_object();
    if (o) json_object_object_add(o, "error", json_object_new_string(message));
    reply_json(r, status, o);
}

static void counts_stats(struct counts *c, struct reply *r, bool reset)
{
    struct json_object *o = json_object_new_object();
    pthread_mutex_lock(&c->lock);
    if (o) {
        json_object_object_add(o, "requests", json_object_new_int64(c->requests));
        json_object_object_add(o, "in_flight", json_object_new_int64(c->in_flight));
        json_object_object_add(o, "max_in_flight", json_object_new_int64(c->max_in_flight));
    }
    if (reset) c->max_in_flight = c->in_flight;
    pthread_mutex_unlock(&c->lock);
    reply_json(r, MHD_HTTP_OK, o);
}

static void reply_bytes(struct reply *r, const char *type, const void *p, size_t n)
{
    r->status = MHD_HTTP_OK;
    r->content_type = type;
    r->body = malloc(n);
    if (r->body) memcpy(r->body, p, n);
    r->len = r->body ? n : 0;
}

/* add_header copies one request header into the echo, its name lowercased so
 * tests need not guess the capitalisation a client used. */
static enum MHD_Result add_header(void *cls, enum MHD_ValueKind kind, const char *name,
                                  const char *value)
{
    (void)kind;
    char *lower = strdup(name);
    if (!lower) return MHD_NO;
    for (char *p = lower; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    json_object_object_add(cls, lower, json_object_new_string(value ? value : ""));
    free(lower);
    return MHD_YES;
}

static void reply_echo(struct reply *r, struct MHD_Connection *conn, const char *method,
                       const struct req *q, long calls)
{
    struct json_object *o = json_object_new_object();
    struct json_object *headers = json_object_new_object();
    if (o && headers) {
        MHD_get_connection_values(conn, MHD_HEADER_KIND, add_header, headers);
        json_object_object_add(o, "method", json_object_new_string(method));
        json_object_object_add(o, "path", json_object_new_string(q->path));
        json_object_object_add(o, "query", json_object_new_string(q->query));
        json_object_object_add(o, "headers", headers);
        headers = NULL;
        json_object_object_add(
            o, "body_text",
            json_object_new_string_len(q->body.data ? q->body.data : "", (int)q->body.len));
        json_object_object_add(o, "calls", json_object_new_int64(calls));
    }
    json_object_put(headers);
    reply_json(r, MHD_HTTP_OK, o);
}

/* route_misbehaving handles the paths that fail on purpose; it returns false
 * when path is not one of them (or does not parse), leaving r untouched. */
static bool route_misbehaving(struct reply *r, const char *path, long calls, long *delay)
{
    const char *p, *rest;
    long a, code;
    if ((p = after_prefix(path, "/status/")) && !number_segment(p, 200, 599, &code, &rest) &&
        !*rest) {
        reply_number(r, (unsigned int)code, "status", code);
        return true;
    }
    if ((p = after_prefix(path, "/delay/")) && !number_segment(p, 0, DELAY_MAX_MS, &a, &rest)) {
        *delay += a;
        return false;
    }
    /* /stall/<n>/<ms>: the first n calls (per key) wait ms, then the echo;
     * a receiver that hangs while a test kills its caller. */
    if ((p = after_prefix(path, "/stall/")) && !number_segment(p, 0, LONG_MAX, &a, &rest) &&
        *rest == '/' && !number_segment(rest + 1, 0, DELAY_MAX_MS, &code, &rest)) {
        if (calls <= a) *delay += code;
        return false;
    }
    if ((p = after_prefix(path, "/flaky/")) && !number_segment(p, 0, LONG_MAX, &a, &rest) &&
        *rest == '/' && !number_segment(rest + 1, 200, 599, &code, &rest)) {
        if (calls > a) return false;
        reply_number(r, (unsigned int)code, "status", code);
        return true;
    }
    if ((p = after_prefix(path, "/retry-after/")) && !number_segment(p, 0, 86400, &a, &rest) &&
        calls == 1) {
        reply_number(r, MHD_HTTP_TOO_MANY_REQUESTS, "status", MHD_HTTP_TOO_MANY_REQUESTS);
        r->retry_after_s = a;
        return true;
    }
    return false;
}

/* ---- batch delivery (docs/backends.md): POST /batch ---- */

/* batch_item answers one item of a batch call as a single call to its path
 * would be answered: /status/<code>, /flaky/<n>/<code> (counted per item
 * id), /missing (left out of the answer), else an echo of the item. An item
 * of /delay/<ms> raises *delay to ms: the whole batch call waits that long,
 * as a backend waits for its slowest item, so a test can hold a batch call
 * (and the worker that made it) by one request. */
static struct json_object *batch_item(struct backend *b, struct json_object *item, long *delay)
{
    struct json_object *v, *out = json_object_new_object();
    const char *id = json_object_object_get_ex(item, "id", &v) ? json_object_get_string(v) : "";
    const char *path =
        json_object_object_get_ex(item, "path", &v) ? json_object_get_string(v) : "/";
    const char *p, *rest;
    long calls = counts_bump(&b->counts, id), a, code = 200;
    if (!strcmp(path, "/missing")) {
        json_object_put(out);
        return NULL;
    }
    if ((p = after_prefix(path, "/status/")) && !number_segment(p, 200, 599, &a, &rest)) code = a;
    if ((p = after_prefix(path, "/delay/")) && !number_segment(p, 0, DELAY_MAX_MS, &a, &rest) &&
        a > *delay)
        *delay = a;
    if ((p = after_prefix(path, "/flaky/")) && !number_segment(p, 0, LONG_MAX, &a, &rest) &&
        *rest == '/' && calls <= a && !number_segment(rest + 1, 200, 599, &code, &rest)) {
    }
    json_object_object_add(out, "id", json_object_new_string(id));
    json_object_object_add(out, "status", json_object_new_int((int)code));
    struct json_object *h = json_object_new_object();
    json_object_object_add(h, "Content-Type", json_object_new_string("application/json"));
    json_object_object_add(out, "headers", h);
    struct json_object *echo = json_object_get(item);
    json_object_object_add(echo, "calls", json_object_new_int64(calls));
    json_object_object_add(out, "body", echo);
    return out;
}

static void batch_dump(struct backend *b, struct MHD_Connection *conn, const struct req *q)
{
    const char *id = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "webhook-id");
    char path[PATH_MAX];
    if (!b->batch_dump || !id || strchr(id, '/')) return;
    snprintf(path, sizeof path, "%s/%s.json", b->batch_dump, id);
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(q->body.data ? q->body.data : "", 1, q->body.len, f);
    fclose(f);
    /* and "<webhook-timestamp>\n<webhook-signature>\n<traceparent>" beside it */
    const char *ts = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "webhook-timestamp");
    const char *sig = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "webhook-signature");
    const char *tp = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "traceparent");
    snprintf(path, sizeof path, "%s/%s.sig", b->batch_dump, id);
    if (!ts || !sig || !(f = fopen(path, "w"))) return;
    fprintf(f, "%s\n%s\n%s\n", ts, sig, tp ? tp : "");
    fclose(f);
}

/* reply_batch answers {"requests":[...]} with {"results":[...]}; with
 * ?fail_first=N the first N batch calls answer 503 whole (with
 * &retry_after=S, with a Retry-After of S seconds). */
static void reply_batch(struct backend *b, struct MHD_Connection *conn, const struct req *q,
                        struct reply *r)
{
    struct json_object *doc = json_tokener_parse(q->body.data ? q->body.data : ""), *reqs;
    const char *fail = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "fail_first");
    const char *ra = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "retry_after");
    long n_fail = 0, retry_after = -1, calls = counts_bump(&b->counts, "batch-calls"), delay = 0;
    const char *rest;
    char size[32];
    if (fail && number_segment(fail, 0, 1000000, &n_fail, &rest)) n_fail = 0;
    if (ra && number_segment(ra, 0, 86400, &retry_after, &rest)) retry_after = -1;
    batch_dump(b, conn, q);
    if (!doc || !json_object_object_get_ex(doc, "requests", &reqs) ||
        !json_object_is_type(reqs, json_type_array)) {
        reply_error(r, MHD_HTTP_BAD_REQUEST, "not a batch");
    } else if (calls <= n_fail) {
        reply_number(r, MHD_HTTP_SERVICE_UNAVAILABLE, "status", 503);
        r->retry_after_s = retry_after;
    } else {
        struct json_object *out = json_object_new_object(), *results = json_object_new_array();
        size_t n = json_object_array_length(reqs);
        for (size_t i = 0; i < n; i++) {
            struct json_object *item = batch_item(b, json_object_array_get_idx(reqs, i), &delay);
            if (item) json_object_array_add(results, item);
        }
        json_object_object_add(out, "results", results);
        reply_json(r, MHD_HTTP_OK, out);
    }
    snprintf(size, sizeof size, "items=%zu",
             doc && json_object_object_get_ex(doc, "requests", &reqs)
                 ? json_object_array_length(reqs)
                 : 0);
    access_log(b, "POST", "/batch", size);
    json_object_put(doc);
    sleep_ms(b->delay_ms + delay);
}

static void route(struct backend *b, struct MHD_Connection *conn, const char *method,
                  const struct req *q, long calls, struct reply *r)
{
    static const unsigned char binary[] = {0x00, 0xff, 0x00, 0xfe};
    long delay = 0;
    if (q->too_big) {
        reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "body too large");
    } else if (!strcmp(q->path, "/_stats")) {
        counts_stats(&b->counts, r, strstr(q->query, "reset") != NULL);
    } else if (!strcmp(q->path, "/_calls")) {
        const char *key = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "key");
        if (key)
            reply_number(r, MHD_HTTP_OK, "calls", counts_get(&b->counts, key));
        else
            reply_error(r, MHD_HTTP_BAD_REQUEST, "missing ?key=");
    } else if (!strcmp(q->path, "/batch") && !strcmp(method, "POST")) {
        reply_batch(b, conn, q, r);
        return;
    } else if (!strcmp(q->path, "/text")) {
        reply_bytes(r, "text/plain", "plain text", 10);
    } else if (!strcmp(q->path, "/binary")) {
        reply_bytes(r, "application/octet-stream", binary, sizeof binary);
    } else if (!strcmp(q->path, "/raw")) {
        /* The request's body and type come back as they are: a test makes
         * the backend answer exactly the bytes it wants. */
        const char *type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
        reply_bytes(r, type ? type : "application/octet-stream", q->body.data ? q->body.data : "",
                    q->body.len);
    } else if (!strcmp(q->path, "/redirect")) {
        reply_number(r, MHD_HTTP_FOUND, "status", MHD_HTTP_FOUND);
        r->location = "/redirected";
    } else if (!strcmp(q->path, "/latin1-header")) {
        reply_bytes(r, "text/plain", "latin1", 6);
        r->latin1_header = true;
    } else if (!route_misbehaving(r, q->path, calls, &delay)) {
        reply_echo(r, conn, method, q, calls);
    }
    sleep_ms(b->delay_ms + delay);
}

static enum MHD_Result respond(struct MHD_Connection *conn, struct reply *r)
{
    struct MHD_Response *resp =
        r->body ? MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!resp) {
        free(r->body);
        return MHD_NO;
    }
    enum MHD_Result rc = MHD_add_response_header(resp, "Content-Type", r->content_type);
    char secs[24];
    snprintf(secs, sizeof secs, "%ld", r->retry_after_s);
    if (rc == MHD_YES && r->retry_after_s >= 0)
        rc = MHD_add_response_header(resp, "Retry-After", secs);
    if (rc == MHD_YES && r->location) rc = MHD_add_response_header(resp, "Location", r->location);
    if (rc == MHD_YES && r->latin1_header)
        rc = MHD_add_response_header(resp, "X-Latin1", "caf\xe9");
    if (rc == MHD_YES) rc = MHD_queue_response(conn, r->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **ctx)
{
    (void)url;
    (void)version;
    struct backend *b = cls;
    struct req *q = *ctx;
    if (!q) return MHD_NO;
    if (!q->started) {
        q->started = true;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        if (!q->too_big && buf_append(&q->body, upload_data, *upload_size) != 0) q->too_big = true;
        *upload_size = 0;
        return MHD_YES;
    }
    const char *key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Idempotency-Key");
    /* A call without a key (a callback or results delivery) counts under its
     * webhook-id, which its retries keep. */
    if (!key) key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "webhook-id");
    /* The /_ paths are the tests' questions, not traffic: they count nowhere. */
    bool counted = strncmp(q->path, "/_", 2) != 0;
    long calls = counted ? counts_bump(&b->counts, key ? key : "") : 0;
    if (calls < 0) return MHD_NO;
    access_log(b, method, q->path, key);
    struct reply r = {.retry_after_s = -1};
    /* With --batch-dump, every signed call's body is kept, not only batches'. */
    if (counted && strcmp(q->path, "/batch") != 0) batch_dump(b, conn, q);
    if (counted) counts_enter(&b->counts);
    route(b, conn, method, q, calls, &r);
    if (counted) counts_leave(&b->counts);
    return respond(conn, &r);
}

/* on_uri runs first for every request and sees the request target before
 * libmicrohttpd decodes it, so the echo shows the raw path and query. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)conn;
    struct req *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    q->path = strdup(uri);
    if (!q->path) {
        free(q);
        return NULL;
    }
    char *mark = strchr(q->path, '?');
    q->query = mark ? mark + 1 : "";
    if (mark) *mark = '\0';
    buf_init(&q->body, BODY_MAX);
    return q;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **ctx,
                         enum MHD_RequestTerminationCode why)
{
    (void)cls;
    (void)conn;
    (void)why;
    struct req *q = *ctx;
    if (!q) return;
    buf_free(&q->body);
    free(q->path);
    free(q);
    *ctx = NULL;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: sluice-backend [--listen HOST:PORT] [--log FILE | --log-us FILE] "
            "[--delay-ms N]\n"
            "  --listen    address to serve (default 127.0.0.1:18080; port 0 picks one)\n"
            "  --log       access log: \"<unix_ms> <METHOD> <path> <idempotency-key|->\"\n"
            "  --log-us    the same with microseconds (for latency benchmarks)\n"
            "  --delay-ms  added to every answer (0..%ld)\n"
            "  --batch-dump DIR  writes the body of each signed call to DIR/<webhook-id>.json\n",
            DELAY_MAX_MS);
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {{"listen", required_argument, NULL, 'l'},
                                             {"log", required_argument, NULL, 'o'},
                                             {"log-us", required_argument, NULL, 'u'},
                                             {"delay-ms", required_argument, NULL, 'd'},
                                             {"batch-dump", required_argument, NULL, 'b'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int c;
    const char *rest;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'l') {
            o->listen = optarg;
        } else if (c == 'b') {
            o->batch_dump = optarg;
        } else if (c == 'o' || c == 'u') {
            o->log = optarg;
            o->log_unit = c == 'u' ? 1000000 : 1000;
        } else if (c == 'd' && !number_segment(optarg, 0, DELAY_MAX_MS, &o->delay_ms, &rest) &&
                   !*rest) {
            continue;
        } else {
            usage(c == 'h' ? stdout : stderr);
            return c == 'h' ? 1 : 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    return 0;
}

/* resolve splits "host:port" or "[v6]:port" and resolves it numerically. It
 * writes the host (without brackets) to host and returns the address list
 * (caller frees with freeaddrinfo) or NULL. */
static struct addrinfo *resolve(const char *listen, char *host, size_t hostlen)
{
    const char *colon = strrchr(listen, ':');
    long port;
    const char *rest;
    if (!colon || number_segment(colon + 1, 0, 65535, &port, &rest) || *rest) return NULL;
    size_t n = (size_t)(colon - listen);
    if (n >= 2 && listen[0] == '[' && listen[n - 1] == ']') {
        listen++;
        n -= 2;
    }
    if (n == 0 || n >= hostlen) return NULL;
    memcpy(host, listen, n);
    host[n] = '\0';
    struct addrinfo hints = {.ai_flags = AI_NUMERICSERV, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    return getaddrinfo(host, colon + 1, &hints, &ai) == 0 ? ai : NULL;
}

/* raise_fd_limit lets 4096 connections in without the default soft limit of
 * 1024 descriptors refusing them. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    rlim_t want = rl.rlim_max < FD_WANTED ? rl.rlim_max : FD_WANTED;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = want;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static struct MHD_Daemon *start(struct backend *b, const struct addrinfo *ai)
{
    /* Poll, not select: select cannot watch descriptors past 1023. */
    unsigned int flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD |
                         MHD_USE_ERROR_LOG | (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    return MHD_start_daemon(flags, 0, NULL, NULL, on_request, b, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL, MHD_OPTION_NOTIFY_COMPLETED,
                            on_completed, NULL, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned int)CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned int)120, MHD_OPTION_THREAD_STACK_SIZE, STACK_SIZE,
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int)1024, MHD_OPTION_END);
}

/* block_signals makes SIGINT/SIGTERM wait for sigwait in main; every MHD
 * thread inherits the mask. The defaults are restored first because a shell
 * starts background jobs with SIGINT ignored. */
static void block_signals(sigset_t *set)
{
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, set, NULL);
}

int main(int argc, char **argv)
{
    struct opts o = {.listen = "127.0.0.1:18080", .log_unit = 1000};
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc == 1 ? 0 : 2;

    rc = 1;
    struct backend b = {.delay_ms = o.delay_ms, .log_unit = o.log_unit, .batch_dump = o.batch_dump};
    struct MHD_Daemon *d = NULL;
    char host[256];
    struct addrinfo *ai = resolve(o.listen, host, sizeof host);
    pthread_mutex_init(&b.log_lock, NULL);
    if (counts_init(&b.counts) != 0) {
        fprintf(stderr, "sluice-backend: out of memory\n");
        goto out;
    }
    if (!ai) {
        fprintf(stderr, "sluice-backend: --listen %s: want HOST:PORT\n", o.listen);
        goto out;
    }
    if (o.log && !(b.log = fopen(o.log, "a"))) {
        fprintf(stderr, "sluice-backend: --log %s: %s\n", o.log, strerror(errno));
        goto out;
    }
    sigset_t set;
    block_signals(&set);
    raise_fd_limit();
    if (!(d = start(&b, ai))) {
        fprintf(stderr, "sluice-backend: cannot listen on %s\n", o.listen);
        goto out;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    bool v6 = ai->ai_family == AF_INET6;
    printf("listening on %s%s%s:%u\n", v6 ? "[" : "", host, v6 ? "]" : "",
           info ? (unsigned int)info->port : 0U);
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    rc = 0;
out:
    if (d) MHD_stop_daemon(d);
    if (ai) freeaddrinfo(ai);
    if (b.log) fclose(b.log);
    if (b.counts.buckets) counts_free(&b.counts);
    pthread_mutex_destroy(&b.log_lock);
    return rc;
}
