/* watch.c: `sluice status --watch` over many requests (see watch.h). Up to
 * WATCH_PARALLEL long-polls run at once through one curl multi handle, whose
 * connection cache keeps the connections alive between them. When every
 * request still waiting has a connection, each wait lasts WATCH_LONG_S;
 * when they must take turns, WATCH_SHORT_S, so every request is asked about
 * in turn (a final one answers at once either way). Like the single watch,
 * it rides out a short outage of the ingress (no answer, 503, or a 404 for a
 * request it already showed) for up to WATCH_OUTAGE_MS. */
#include "watch.h"

#include <curl/curl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "progress.h"

#define SHOWN_FAILURES 10
#define WATCH_AGAIN_MS 250 /* the least time between two asks about one request */
#define URL_MAX 4096

enum item_state { W_PENDING, W_FINAL, W_UNKNOWN };

struct item {
    const char *id;
    enum item_state state;
    bool in_flight, seen;
    char *last;         /* the latest status document, one line; NULL before any */
    int64_t asked;      /* when the current or last long-poll started */
    int64_t not_before; /* not asked again before (after an outage, a quick answer) */
};

struct slot {
    CURL *h;
    struct item *it; /* NULL while free */
    struct http_answer a;
};

struct watch {
    const struct cli *c;
    bool tty;
    struct item *items;
    size_t n, next, pending;
    struct slot slots[WATCH_PARALLEL];
    CURLM *m;
    struct curl_slist *headers;
    char base[URL_MAX];
    int64_t deadline, last_ok;
    bool outage_noted;
    int fatal; /* the exit code of an answer that ends the watch, or 0 */
    long succeeded, failed, dead, unknown, shown;
    struct progress bar;
};

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct http_answer *a = arg;
    return buf_append(&a->body, data, size * n) == 0 ? size * n : 0;
}

/* start asks about it on slot s. A wait ends a second before the deadline,
 * so a request still not final then has a status to print. */
static int start(struct watch *w, struct slot *s, struct item *it, int64_t now)
{
    long wait = w->pending <= WATCH_PARALLEL ? WATCH_LONG_S : WATCH_SHORT_S;
    long room = w->deadline == INT64_MAX ? wait : (long)((w->deadline - now - 1000) / 1000);
    if (room < wait) wait = room > 0 ? room : 0;
    char url[URL_MAX + 128];
    snprintf(url, sizeof url, "%s/v1/requests/%s?wait=%ld", w->base, it->id, wait);
    http_answer_free(&s->a);
    http_answer_init(&s->a);
    curl_easy_setopt(s->h, CURLOPT_URL, url);
    curl_easy_setopt(s->h, CURLOPT_TIMEOUT_MS, (wait + 30) * 1000L);
    curl_easy_setopt(s->h, CURLOPT_WRITEDATA, &s->a);
    curl_easy_setopt(s->h, CURLOPT_ERRORBUFFER, s->a.err);
    if (curl_multi_add_handle(w->m, s->h) != CURLM_OK) return -1;
    s->it = it;
    it->in_flight = true;
    it->asked = now;
    return 0;
}

/* fill gives every free slot the next request due to be asked about. */
static int fill(struct watch *w, int64_t now)
{
    for (size_t k = 0; k < WATCH_PARALLEL; k++) {
        if (w->slots[k].it) continue;
        struct item *it = NULL;
        for (size_t seen = 0; seen < w->n && !it; seen++) {
            struct item *x = &w->items[w->next];
            w->next = (w->next + 1) % w->n;
            if (x->state == W_PENDING && !x->in_flight && x->not_before <= now) it = x;
        }
        if (!it) return 0;
        if (start(w, &w->slots[k], it, now) < 0) return -1;
    }
    return 0;
}

static const char *str_at(struct json_object *o, const char *k1, const char *k2)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, k1, &v)) return NULL;
    if (k2 && !json_object_object_get_ex(v, k2, &v)) return NULL;
    return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* show reports a request that reached its end: its line when piped, a line
 * for a failure on a terminal. */
static void show(struct watch *w, struct item *it, struct json_object *o, const char *status)
{
    if (!w->tty) {
        printf("%s\n", it->last);
        fflush(stdout);
        return;
    }
    if (!strcmp(status, "succeeded") || w->shown++ >= SHOWN_FAILURES) return;
    const char *code = str_at(o, "error", "code"), *msg = str_at(o, "error", "message");
    fprintf(stderr, "\r\033[K%s  %s  %s%s%s\n", it->id, status, code ? code : "", code ? ": " : "",
            msg ? msg : "");
}

/* outage notes an answer the watch rides out, and asks again later. */
static void outage(struct watch *w, struct item *it, int rc, const struct http_answer *a,
                   int64_t now)
{
    if (w->last_ok == 0) { /* the ingress never answered: nothing to ride out */
        w->fatal = cli_fail(w->c, a, rc);
        return;
    }
    if (!w->outage_noted)
        fprintf(stderr, "%ssluice: no status from %s (%s), still watching\n",
                w->tty ? "\r\033[K" : "", w->c->url,
                rc ? a->err : "HTTP 503 or a restarted ingress");
    w->outage_noted = true;
    it->not_before = now + 1000;
}

static void final(struct watch *w, struct item *it, struct json_object *o, const char *status)
{
    it->state = W_FINAL;
    w->pending--;
    if (!strcmp(status, "succeeded"))
        w->succeeded++;
    else if (!strcmp(status, "failed"))
        w->failed++;
    else
        w->dead++;
    show(w, it, o, status);
}

/* answered handles a 200: the request's status. */
static void answered(struct watch *w, struct item *it, const struct http_answer *a, int64_t now)
{
    struct json_object *o = cli_parse_answer(a);
    const char *status = o ? str_at(o, "status", NULL) : NULL;
    if (!status) {
        fprintf(stderr, "sluice: the status answer is not a status: %.200s\n", http_body(a));
        w->fatal = CLI_API;
        json_object_put(o);
        return;
    }
    w->last_ok = now;
    w->outage_noted = false;
    it->seen = true;
    free(it->last);
    it->last = strdup(
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    if (!it->last)
        w->fatal = cli_oom();
    else if (!strcmp(status, "succeeded") || !strcmp(status, "failed") || !strcmp(status, "dead"))
        final(w, it, o, status);
    else /* a wait of 0 near the deadline, or an ingress that cuts waits short */
        it->not_before = it->asked + WATCH_AGAIN_MS;
    json_object_put(o);
}

/* unknown handles a 404 for a request never seen: it has no status. */
static void unknown(struct watch *w, struct item *it, const struct http_answer *a)
{
    it->state = W_UNKNOWN;
    w->pending--;
    w->unknown++;
    if (!w->tty) {
        printf("{\"id\":\"%s\",\"error\":{\"code\":\"not_found\",\"message\":\"no request with "
               "this id\"},\"status\":404}\n",
               it->id);
        fflush(stdout);
    } else if (w->shown++ < SHOWN_FAILURES) {
        fprintf(stderr, "\r\033[K%s  not found (HTTP %ld)\n", it->id, a->status);
    }
}

/* done handles one finished long-poll. */
static void done(struct watch *w, struct slot *s, CURLcode result, int64_t now)
{
    struct item *it = s->it;
    s->it = NULL;
    it->in_flight = false;
    curl_multi_remove_handle(w->m, s->h);
    if (result != CURLE_OK) {
        bool url = result == CURLE_URL_MALFORMAT || result == CURLE_UNSUPPORTED_PROTOCOL;
        if (!s->a.err[0]) snprintf(s->a.err, sizeof s->a.err, "%s", curl_easy_strerror(result));
        if (url) w->fatal = cli_fail(w->c, &s->a, HTTP_ERR_URL);
        if (!url) outage(w, it, HTTP_ERR_TRANSPORT, &s->a, now);
        return;
    }
    curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &s->a.status);
    if (s->a.status == 200)
        answered(w, it, &s->a, now);
    else if (s->a.status == 503 || (s->a.status == 404 && it->seen))
        outage(w, it, 0, &s->a, now);
    else if (s->a.status == 404)
        unknown(w, it, &s->a);
    else
        w->fatal = cli_fail(w->c, &s->a, 0);
}

static void collect(struct watch *w, int64_t now)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(w->m, &left)))
        if (msg->msg == CURLMSG_DONE) {
            struct slot *s;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            done(w, s, msg->data.result, now);
        }
}

/* run watches until every request is settled, the deadline, or a fatal answer. */
static void run(struct watch *w)
{
    int running;
    while (w->pending && !w->fatal) {
        int64_t now = clock_mono_ms();
        if (now >= w->deadline) break;
        if (w->outage_noted && now - w->last_ok > WATCH_OUTAGE_MS) {
            fprintf(stderr, "%ssluice: no status from %s for %d s\n", w->tty ? "\r\033[K" : "",
                    w->c->url, WATCH_OUTAGE_MS / 1000);
            w->fatal = CLI_UNAVAILABLE;
            break;
        }
        if (fill(w, now) < 0) {
            w->fatal = cli_oom();
            break;
        }
        curl_multi_poll(w->m, NULL, 0, 100, NULL);
        curl_multi_perform(w->m, &running);
        collect(w, clock_mono_ms());
        w->bar.done = w->succeeded + w->failed + w->dead + w->unknown;
        w->bar.ok = w->succeeded;
        w->bar.failed = w->failed + w->dead + w->unknown;
        if (w->tty) progress_draw(stdout, &w->bar, clock_mono_ms(), false);
    }
}

static int setup(struct watch *w, char *const ids[])
{
    struct buf auth;
    buf_init(&auth, 64 << 10);
    size_t n = strlen(w->c->url);
    while (n && w->c->url[n - 1] == '/')
        n--;
    if (n >= URL_MAX) return -1;
    memcpy(w->base, w->c->url, n);
    w->base[n] = '\0';
    bool ok = (w->items = calloc(w->n, sizeof *w->items)) && (w->m = curl_multi_init());
    if (ok && w->c->token && *w->c->token)
        ok = buf_appendf(&auth, "Authorization: Bearer %s", w->c->token) == 0 &&
             (w->headers = curl_slist_append(NULL, auth.data));
    buf_free(&auth);
    for (size_t i = 0; ok && i < w->n; i++)
        w->items[i].id = ids[i];
    for (size_t k = 0; ok && k < WATCH_PARALLEL; k++) {
        struct slot *s = &w->slots[k];
        http_answer_init(&s->a);
        if (!(ok = (s->h = curl_easy_init()) != NULL)) break;
        curl_easy_setopt(s->h, CURLOPT_PROTOCOLS_STR, "http,https");
        if (w->c->cacert) curl_easy_setopt(s->h, CURLOPT_CAINFO, w->c->cacert);
        curl_easy_setopt(s->h, CURLOPT_HTTPHEADER, w->headers);
        curl_easy_setopt(s->h, CURLOPT_USERAGENT, "sluice-cli/1");
        curl_easy_setopt(s->h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(s->h, CURLOPT_CONNECTTIMEOUT_MS, HTTP_CONNECT_TIMEOUT_MS);
        curl_easy_setopt(s->h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(s->h, CURLOPT_PRIVATE, s);
    }
    return ok ? 0 : -1;
}

static void teardown(struct watch *w)
{
    for (size_t k = 0; k < WATCH_PARALLEL; k++) {
        struct slot *s = &w->slots[k];
        if (s->it && w->m) curl_multi_remove_handle(w->m, s->h);
        if (s->h) curl_easy_cleanup(s->h);
        http_answer_free(&s->a);
    }
    if (w->m) curl_multi_cleanup(w->m);
    curl_slist_free_all(w->headers);
    for (size_t i = 0; w->items && i < w->n; i++)
        free(w->items[i].last);
    free(w->items);
}

/* finish reports what is left at the end and returns the exit code. */
static int finish(struct watch *w, long timeout_s)
{
    if (w->tty) {
        progress_draw(stdout, &w->bar, clock_mono_ms(), true);
        progress_end(stdout);
        printf("%zu requests: %ld succeeded, %ld failed, %ld dead, %ld not found, %zu not final "
               "in %.1f s\n",
               w->n, w->succeeded, w->failed, w->dead, w->unknown, w->pending,
               (double)(clock_mono_ms() - w->bar.start_ms) / 1000.0);
    }
    /* Piped, each request has its line: the last status of those not final,
     * or an error for one never answered in time. */
    for (size_t i = 0; !w->tty && !w->fatal && i < w->n; i++) {
        const struct item *it = &w->items[i];
        if (it->state != W_PENDING) continue;
        if (it->last)
            printf("%s\n", it->last);
        else
            printf("{\"id\":\"%s\",\"error\":{\"code\":\"no_status\",\"message\":\"no status "
                   "before --timeout\"},\"status\":0}\n",
                   it->id);
    }
    if (w->pending && !w->fatal)
        fprintf(stderr, "sluice: %zu of %zu requests still not final after %ld s\n", w->pending,
                w->n, timeout_s);
    return w->fatal              ? w->fatal
           : w->unknown          ? CLI_API
           : w->pending          ? CLI_TIMEOUT
           : w->failed + w->dead ? CLI_FINAL_FAILED
                                 : CLI_OK;
}

int watch_many(const struct cli *c, char *const ids[], size_t n, long timeout_s)
{
    struct watch w = {.c = c, .n = n, .pending = n, .deadline = INT64_MAX};
    w.tty = isatty(STDOUT_FILENO) && !c->json;
    int64_t start = clock_mono_ms();
    if (timeout_s > 0) w.deadline = start + timeout_s * 1000;
    w.bar = (struct progress){.total = (long)n,
                              .done_label = "final",
                              .ok_label = "succeeded",
                              .failed_label = "failed",
                              .start_ms = start};
    int rc;
    if (setup(&w, ids) < 0) {
        rc = cli_oom();
    } else {
        if (w.tty) progress_draw(stdout, &w.bar, start, true);
        run(&w);
        rc = finish(&w, timeout_s);
    }
    teardown(&w);
    return rc;
}
