/* batch.c: `sluice submit --batch` (see batch.h). The input is read whole,
 * cut into lines, and each line checked to be one strict JSON object (the
 * API would refuse the whole batch for one bad line; here that line alone
 * fails). Lines go out in order, in batches of at most BATCH_ENVELOPES
 * envelopes and BATCH_BYTES bytes; each batch's lines are reported, in
 * order, once its answer is in. Nothing is retried: a request the client
 * retries should carry an idempotency_key. */
#include "batch.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "jscan.h"
#include "progress.h"

#define SHOWN_REFUSALS 10

/* One input line and what became of it. */
struct line {
    long no; /* 1-based line number in the input */
    const char *text;
    size_t len;
    bool valid;                 /* one JSON object: goes into a batch */
    struct json_object *result; /* the API's answer for it, or the local one */
};

struct run {
    const struct cli *c;
    bool tty;
    struct line *lines;
    size_t n;
    struct progress bar;
    long accepted, refused, unavailable;
    int stop;      /* an exit code that ends sending (no answer, unauthorized), or 0 */
    char why[512]; /* why sending stopped */
    long shown;    /* refusals listed on the terminal */
};

/* error_result makes {"error":{"code","message"},"status":status}. */
static struct json_object *error_result(const char *code, const char *message, long status)
{
    struct json_object *o = json_object_new_object(), *e = json_object_new_object();
    if (!o || !e) {
        json_object_put(o);
        json_object_put(e);
        return NULL;
    }
    json_object_object_add(e, "code", json_object_new_string(code));
    json_object_object_add(e, "message", json_object_new_string(message));
    json_object_object_add(o, "error", e);
    json_object_object_add(o, "status", json_object_new_int64(status));
    return o;
}

/* split cuts text into lines, skipping blank ones, and checks each. */
static int split(struct run *r, char *text, size_t len)
{
    size_t cap = 1024;
    r->lines = malloc(cap * sizeof *r->lines);
    long no = 0;
    for (size_t at = 0; r->lines && at < len;) {
        char *nl = memchr(text + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - text) : len;
        struct line l = {.no = ++no, .text = text + at, .len = end - at};
        at = end + 1;
        if (l.len && l.text[l.len - 1] == '\r') l.len--;
        struct jscan s;
        /* Bytes jscan_init refuses (bad UTF-8, NUL) are a bad line, not a blank one. */
        bool bytes_ok = jscan_init(&s, l.text, l.len);
        if (bytes_ok && jscan_done(&s)) continue; /* blank */
        char why[160], msg[200];
        bool strict = jscan_check(l.text, l.len, why, sizeof why);
        l.valid = strict && bytes_ok && jscan_peek(&s) == '{';
        snprintf(msg, sizeof msg, "invalid JSON: %s", why);
        if (!l.valid &&
            !(l.result = error_result("invalid_json",
                                      strict ? "an envelope must be a JSON object" : msg, 400)))
            return -1;
        if (r->n == cap) {
            struct line *more = realloc(r->lines, 2 * cap * sizeof *more);
            if (!more) return -1;
            r->lines = more;
            cap *= 2;
        }
        r->lines[r->n++] = l;
    }
    return r->lines ? 0 : -1;
}

/* body_for builds the batch of lines [from, *to): valid lines until the
 * limits; returns -1 when out of memory. */
static int body_for(const struct run *r, size_t from, size_t *to, struct buf *body)
{
    size_t count = 0, i = from;
    buf_reset(body);
    int rc = buf_appends(body, "{\"requests\":[");
    for (; i < r->n && !rc; i++) {
        const struct line *l = &r->lines[i];
        if (!l->valid) continue;
        if (count == BATCH_ENVELOPES || (count && body->len + l->len + 3 > BATCH_BYTES)) break;
        if (count++) rc = buf_append(body, ",", 1);
        if (!rc) rc = buf_append(body, l->text, l->len);
    }
    *to = i;
    return rc ? rc : buf_appends(body, "]}");
}

/* take_results gives each valid line of [from, to) its item of the answer's
 * results; false when the answer has no matching results. */
static bool take_results(struct run *r, size_t from, size_t to, struct json_object *answer)
{
    struct json_object *results;
    size_t k = 0, valid = 0;
    for (size_t i = from; i < to; i++)
        valid += r->lines[i].valid;
    if (!answer || !json_object_object_get_ex(answer, "results", &results) ||
        !json_object_is_type(results, json_type_array) ||
        json_object_array_length(results) != valid)
        return false;
    for (size_t j = 0; j < valid; j++)
        if (!json_object_is_type(json_object_array_get_idx(results, j), json_type_object))
            return false;
    for (size_t i = from; i < to; i++)
        if (r->lines[i].valid)
            r->lines[i].result = json_object_get(json_object_array_get_idx(results, k++));
    return true;
}

/* fail_all gives every valid line of [from, to) the same error. */
static void fail_all(struct run *r, size_t from, size_t to, const char *code, const char *message,
                     long status)
{
    for (size_t i = from; i < to; i++)
        if (r->lines[i].valid) r->lines[i].result = error_result(code, message, status);
}

/* answer_of records what a batch's answer says about each of its lines. */
static void answer_of(struct run *r, size_t from, size_t to, int rc, const struct http_answer *a)
{
    struct json_object *o = rc == 0 ? cli_parse_answer(a) : NULL, *e;
    if (rc == 0 && take_results(r, from, to, o)) goto out;
    if (rc) {
        snprintf(r->why, sizeof r->why, "no answer from %s: %s", r->c->url, a->err);
        fail_all(r, from, to, "no_answer", r->why, 0);
        r->stop = rc == HTTP_ERR_URL ? CLI_USAGE : CLI_UNAVAILABLE;
        goto out;
    }
    const char *code = "unexpected_answer", *message = "the answer is not the API's";
    if (o && json_object_object_get_ex(o, "error", &e)) {
        struct json_object *v;
        if (json_object_object_get_ex(e, "code", &v)) code = json_object_get_string(v);
        if (json_object_object_get_ex(e, "message", &v)) message = json_object_get_string(v);
    }
    fail_all(r, from, to, code, message, a->status);
    if (a->status == 401) {
        snprintf(r->why, sizeof r->why, "%s: %s (HTTP 401)", code, message);
        r->stop = CLI_API;
    }
out:
    json_object_put(o);
}

static long status_of(struct json_object *result)
{
    struct json_object *v;
    if (!json_object_object_get_ex(result, "status", &v)) return 0;
    return json_object_is_type(v, json_type_int) ? (long)json_object_get_int64(v) : 202;
}

/* report prints (piped) or counts (terminal) the lines of [from, to). */
static void report(struct run *r, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        struct line *l = &r->lines[i];
        long status = l->result ? status_of(l->result) : 0;
        /* A result is an object: its members follow "line" in the printed one. */
        const char *text =
            l->result ? json_object_to_json_string_ext(
                            l->result, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
                      : "{\"error\":{\"code\":\"no_result\",\"message\":\"out of memory\"}}";
        if (status == 202)
            r->accepted++;
        else if (status >= 500 || status == 0)
            r->unavailable++;
        else
            r->refused++;
        r->bar.done++;
        r->bar.ok = r->accepted;
        r->bar.failed = r->refused + r->unavailable;
        if (!r->tty) {
            printf("{\"line\":%ld,%s\n", l->no, text + 1);
        } else if (status != 202 && r->shown < SHOWN_REFUSALS) {
            struct json_object *e, *m;
            json_object_object_get_ex(l->result, "error", &e);
            json_object_object_get_ex(e, "message", &m);
            fprintf(stderr, "\r\033[Kline %ld: %ld %s\n", l->no, status,
                    m ? json_object_get_string(m) : text);
            r->shown++;
        }
    }
    fflush(stdout);
}

static int post(const struct run *r, const struct buf *body, const char *url, struct http_answer *a)
{
    char json_type[] = "Content-Type: application/json";
    struct curl_slist ctype = {.data = json_type, .next = NULL};
    struct http_call call = {.method = "POST",
                             .url = url,
                             .token = r->c->token,
                             .cacert = r->c->cacert,
                             .extra = &ctype,
                             .body = body->data,
                             .len = body->len,
                             .timeout_ms = CLI_CALL_TIMEOUT_MS};
    return http_call(&call, a);
}

static void summary(struct run *r)
{
    double secs = (double)(clock_mono_ms() - r->bar.start_ms) / 1000.0;
    char rate[32];
    progress_rate(rate, sizeof rate, secs > 0 ? (double)r->bar.done / secs : 0);
    printf("%zu envelopes: %ld accepted, %ld refused, %ld not queued (server unavailable) in "
           "%.1f s (%s)\n",
           r->n, r->accepted, r->refused, r->unavailable, secs, rate);
    if (r->refused + r->unavailable > r->shown)
        printf("%ld more not accepted: pipe the output (or use --json) for one JSON line per "
               "envelope\n",
               r->refused + r->unavailable - r->shown);
    if (r->stop) fprintf(stderr, "sluice: stopped sending: %s\n", r->why);
}

/* send_all sends the lines in batches, reporting each batch's lines. */
static int send_all(struct run *r)
{
    struct buf body, url;
    struct http_answer a;
    buf_init(&body, CLI_MAX_INPUT);
    buf_init(&url, 1 << 20);
    http_answer_init(&a);
    int rc = cli_url(r->c, "/v1/requests:batch", &url);
    for (size_t from = 0, to; !rc && from < r->n; from = to) {
        if ((rc = body_for(r, from, &to, &body))) break;
        bool any = false;
        for (size_t i = from; i < to; i++)
            any |= r->lines[i].valid;
        if (any && r->stop)
            fail_all(r, from, to, "not_sent", r->why, 0);
        else if (any)
            answer_of(r, from, to, post(r, &body, url.data, &a), &a);
        report(r, from, to);
        if (r->tty) progress_draw(stdout, &r->bar, clock_mono_ms(), false);
    }
    http_answer_free(&a);
    buf_free(&url);
    buf_free(&body);
    return rc ? cli_oom() : CLI_OK;
}

int batch_submit(const struct cli *c, const char *path)
{
    struct buf text;
    struct run r = {.c = c, .tty = isatty(STDOUT_FILENO) && !c->json};
    buf_init(&text, CLI_MAX_INPUT);
    int rc = CLI_USAGE;
    if (cli_read_file(path, &text) < 0) goto out;
    rc = CLI_UNAVAILABLE;
    if (split(&r, text.data ? text.data : "", text.len) < 0) {
        rc = cli_oom();
        goto out;
    }
    r.bar = (struct progress){.total = (long)r.n,
                              .done_label = "done",
                              .ok_label = "accepted",
                              .failed_label = "failed",
                              .start_ms = clock_mono_ms()};
    if (r.tty) progress_draw(stdout, &r.bar, r.bar.start_ms, true);
    rc = send_all(&r);
    if (r.tty) {
        progress_draw(stdout, &r.bar, clock_mono_ms(), true);
        progress_end(stdout);
        summary(&r);
    } else if (r.stop) {
        fprintf(stderr, "sluice: stopped sending: %s\n", r.why);
    }
    if (rc == CLI_OK)
        rc = r.stop ? r.stop : r.unavailable ? CLI_UNAVAILABLE : r.refused ? CLI_API : CLI_OK;
out:
    for (size_t i = 0; i < r.n; i++)
        json_object_put(r.lines[i].result);
    free(r.lines);
    buf_free(&text);
    return rc;
}
