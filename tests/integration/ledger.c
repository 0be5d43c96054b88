/* ledger.c: the loader thread, its ledger and the reconciliation with the
 * statuses and the backend (see ledger.h). One libcurl multi handle carries
 * the submissions and the readiness probes; settling uses another one in the
 * caller's thread. */
#include "ledger.h"

#include <check.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "harness.h"
#include "json.h"

#define SUBMIT_TIMEOUT_MS 30000L
#define PROBE_TIMEOUT_MS 1000L
#define STATUS_TIMEOUT_MS 10000L
#define STATUS_PARALLEL 16
#define ANSWER_MAX ((size_t)1 << 20)

enum xkind { X_SUBMIT, X_PROBE, X_STATUS };

/* xfer is one HTTP exchange on a multi handle. */
struct xfer {
    CURL *easy;
    enum xkind kind;
    size_t idx; /* entry (submit, status) or ingress (probe) */
    long long sent_ms;
    struct buf answer;
    char body[512];
    char url[256];
    char err[CURL_ERROR_SIZE];
};

/* span is a time an ingress was not ready: [from, to), to 0 while open. */
struct span {
    long long from, to;
};

struct ledger {
    char urls[LEDGER_MAX_INGRESS][128];
    int n_urls;
    char auth[256];
    char route[64], path[128];
    double rate;
    struct curl_slist *post_hdrs, *get_hdrs;
    pthread_t thread;
    atomic_bool stop;
    bool joined;
    pthread_mutex_t lock; /* entries, n, spans */
    struct ledger_entry *entries;
    size_t n, cap;
    char (*keys)[33]; /* the first Idempotency-Key the backend saw for each entry */
    struct span *spans[LEDGER_MAX_INGRESS];
    size_t n_spans[LEDGER_MAX_INGRESS];
    long long last_probe[LEDGER_MAX_INGRESS];
};

long long ledger_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- transfers ---- */

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    return buf_append(arg, p, size * n) == 0 ? size * n : 0;
}

static struct xfer *xfer_new(enum xkind kind, size_t idx, const char *url, struct curl_slist *hdrs,
                             long timeout_ms)
{
    struct xfer *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    x->easy = curl_easy_init();
    if (!x->easy) {
        free(x);
        return NULL;
    }
    x->kind = kind;
    x->idx = idx;
    x->sent_ms = ledger_now_ms();
    buf_init(&x->answer, ANSWER_MAX);
    snprintf(x->url, sizeof x->url, "%s", url);
    curl_easy_setopt(x->easy, CURLOPT_URL, x->url);
    curl_easy_setopt(x->easy, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, &x->answer);
    curl_easy_setopt(x->easy, CURLOPT_ERRORBUFFER, x->err);
    curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
    if (hdrs) curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, hdrs);
    return x;
}

static void xfer_free(struct xfer *x)
{
    if (!x) return;
    curl_easy_cleanup(x->easy);
    buf_free(&x->answer);
    free(x);
}

/* next_done takes one finished transfer off m, with its result and status. */
static struct xfer *next_done(CURLM *m, CURLcode *res, long *code)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m, &left))) {
        if (msg->msg != CURLMSG_DONE) continue;
        CURL *easy = msg->easy_handle;
        *res = msg->data.result;
        struct xfer *x = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
        *code = 0;
        if (*res == CURLE_OK) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, code);
        curl_multi_remove_handle(m, easy);
        return x;
    }
    return NULL;
}

/* json_str returns member key of o when it is a string, else NULL. */
static const char *json_str(struct json_object *o, const char *key)
{
    struct json_object *v;
    if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* ---- the loader thread ---- */

/* add_entry appends a submission, to the ingresses in turn; its index is
 * the sequence number its path carries. */
static long add_entry(struct ledger *l)
{
    pthread_mutex_lock(&l->lock);
    long idx = -1;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        struct ledger_entry *e = realloc(l->entries, cap * sizeof *e);
        if (e) {
            l->entries = e;
            l->cap = cap;
        }
    }
    if (l->n < l->cap) {
        idx = (long)l->n++;
        l->entries[idx] = (struct ledger_entry){
            .sent_ms = ledger_now_ms(), .ingress = (int)(idx % l->n_urls), .code = -1};
    }
    pthread_mutex_unlock(&l->lock);
    return idx;
}

static int start_submit(struct ledger *l, CURLM *m)
{
    long idx = add_entry(l);
    if (idx < 0) return -1;
    char url[192];
    snprintf(url, sizeof url, "%s/v1/requests", l->urls[idx % l->n_urls]);
    struct xfer *x = xfer_new(X_SUBMIT, (size_t)idx, url, l->post_hdrs, SUBMIT_TIMEOUT_MS);
    if (!x) return -1;
    snprintf(x->body, sizeof x->body,
             "{\"route\":\"%s\",\"path\":\"%s/c%ld\",\"body\":{\"seq\":%ld}}", l->route, l->path,
             idx, idx);
    curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, x->body);
    if (curl_multi_add_handle(m, x->easy) != CURLM_OK) {
        xfer_free(x);
        return -1;
    }
    return 0;
}

static int start_probe(struct ledger *l, CURLM *m, int i)
{
    char url[192];
    snprintf(url, sizeof url, "%s/readyz", l->urls[i]);
    struct xfer *x = xfer_new(X_PROBE, (size_t)i, url, NULL, PROBE_TIMEOUT_MS);
    if (!x) return -1;
    if (curl_multi_add_handle(m, x->easy) != CURLM_OK) {
        xfer_free(x);
        return -1;
    }
    return 0;
}

static void on_submitted(struct ledger *l, struct xfer *x, CURLcode res, long code)
{
    char id[33] = "";
    if (res == CURLE_OK && code == 202) {
        struct json_object *o = json_parse(x->answer.data, x->answer.len, NULL, 0);
        const char *v = json_str(o, "id");
        if (v && strlen(v) == 32) memcpy(id, v, 33);
        json_object_put(o);
    }
    pthread_mutex_lock(&l->lock);
    struct ledger_entry *e = &l->entries[x->idx];
    e->answered_ms = ledger_now_ms();
    /* A 202 whose body has no ID is no acceptance the client could use. */
    e->code = res != CURLE_OK ? 0 : code == 202 && !id[0] ? 1 : (int)code;
    memcpy(e->id, id, sizeof id);
    if (res != CURLE_OK)
        snprintf(e->why, sizeof e->why, "%.79s", x->err[0] ? x->err : curl_easy_strerror(res));
    else if (code != 202)
        snprintf(e->why, sizeof e->why, "%.*s", (int)x->answer.len,
                 x->answer.data ? x->answer.data : "");
    pthread_mutex_unlock(&l->lock);
}

static void on_probed(struct ledger *l, struct xfer *x, CURLcode res, long code)
{
    int i = (int)x->idx;
    bool ready = res == CURLE_OK && code == 200;
    pthread_mutex_lock(&l->lock);
    size_t n = l->n_spans[i];
    struct span *open = n && !l->spans[i][n - 1].to ? &l->spans[i][n - 1] : NULL;
    if (ready && open) open->to = x->sent_ms;
    if (!ready && !open) {
        struct span *s = realloc(l->spans[i], (n + 1) * sizeof *s);
        if (s) {
            l->spans[i] = s;
            s[n] = (struct span){.from = x->sent_ms};
            l->n_spans[i]++;
        }
    }
    l->last_probe[i] = x->sent_ms;
    pthread_mutex_unlock(&l->lock);
}

/* loader_turn starts what is due and handles what finished; it returns the
 * number of transfers still running. */
static int loader_turn(struct ledger *l, CURLM *m, long long *next_send, long long *next_probe,
                       bool *probing, int *submits)
{
    long long now = mono_ms();
    double every = 1000.0 / l->rate;
    while (!atomic_load(&l->stop) && *next_send <= now && *submits < LEDGER_IN_FLIGHT) {
        if (start_submit(l, m) == 0) (*submits)++;
        *next_send = (long long)((double)*next_send + every);
    }
    for (int i = 0; i < l->n_urls && !atomic_load(&l->stop); i++) {
        if (probing[i] || now < next_probe[i]) continue;
        if (start_probe(l, m, i) == 0) probing[i] = true;
        next_probe[i] = now + LEDGER_READY_EVERY_MS;
    }
    int running = 0;
    curl_multi_perform(m, &running);
    CURLcode res;
    long code;
    struct xfer *x;
    while ((x = next_done(m, &res, &code))) {
        if (x->kind == X_SUBMIT) {
            on_submitted(l, x, res, code);
            (*submits)--;
        } else {
            on_probed(l, x, res, code);
            probing[x->idx] = false;
        }
        xfer_free(x);
    }
    return running;
}

static void *loader_main(void *arg)
{
    struct ledger *l = arg;
    CURLM *m = curl_multi_init();
    if (!m) return NULL;
    long long next_send = mono_ms(), next_probe[LEDGER_MAX_INGRESS] = {0};
    bool probing[LEDGER_MAX_INGRESS] = {false};
    int submits = 0;
    for (;;) {
        int running = loader_turn(l, m, &next_send, next_probe, probing, &submits);
        bool probes = false;
        for (int i = 0; i < l->n_urls; i++)
            probes |= probing[i];
        if (atomic_load(&l->stop) && !submits && !probes) break;
        long long wait = next_send - mono_ms();
        if (wait > LEDGER_READY_EVERY_MS) wait = LEDGER_READY_EVERY_MS;
        if (wait < 1 || atomic_load(&l->stop)) wait = running ? 10 : 1;
        curl_multi_poll(m, NULL, 0, (int)wait, NULL);
    }
    curl_multi_cleanup(m);
    return NULL;
}

struct ledger *ledger_start(const char *const urls[], int n_urls, const char *token,
                            const char *route, const char *path, double rate)
{
    ck_assert_int_ge(n_urls, 1);
    ck_assert_int_le(n_urls, LEDGER_MAX_INGRESS);
    struct ledger *l = calloc(1, sizeof *l);
    ck_assert_ptr_nonnull(l);
    for (int i = 0; i < n_urls; i++)
        snprintf(l->urls[i], sizeof l->urls[i], "%s", urls[i]);
    l->n_urls = n_urls;
    l->rate = rate;
    snprintf(l->route, sizeof l->route, "%s", route);
    snprintf(l->path, sizeof l->path, "%s", path);
    snprintf(l->auth, sizeof l->auth, "Authorization: Bearer %s", token);
    l->post_hdrs = curl_slist_append(NULL, l->auth);
    l->post_hdrs = curl_slist_append(l->post_hdrs, "Content-Type: application/json");
    l->post_hdrs = curl_slist_append(l->post_hdrs, "Expect:");
    l->get_hdrs = curl_slist_append(NULL, l->auth);
    ck_assert_ptr_nonnull(l->post_hdrs);
    ck_assert_ptr_nonnull(l->get_hdrs);
    pthread_mutex_init(&l->lock, NULL);
    atomic_init(&l->stop, false);
    ck_assert_int_eq(pthread_create(&l->thread, NULL, loader_main, l), 0);
    return l;
}

void ledger_stop(struct ledger *l)
{
    if (l->joined) return;
    atomic_store(&l->stop, true);
    pthread_join(l->thread, NULL);
    l->joined = true;
}

void ledger_free(struct ledger *l)
{
    if (!l) return;
    ledger_stop(l);
    curl_slist_free_all(l->post_hdrs);
    curl_slist_free_all(l->get_hdrs);
    for (int i = 0; i < LEDGER_MAX_INGRESS; i++)
        free(l->spans[i]);
    free(l->entries);
    free(l->keys);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

struct ledger_entry *ledger_copy(struct ledger *l, size_t *n)
{
    pthread_mutex_lock(&l->lock);
    struct ledger_entry *c = malloc((l->n + 1) * sizeof *c);
    if (c && l->n) memcpy(c, l->entries, l->n * sizeof *c);
    *n = l->n;
    pthread_mutex_unlock(&l->lock);
    ck_assert_ptr_nonnull(c);
    return c;
}

long long ledger_not_ready_ms(struct ledger *l, int i, long long from_ms)
{
    long long longest = 0;
    pthread_mutex_lock(&l->lock);
    for (size_t k = 0; k < l->n_spans[i]; k++) {
        const struct span *s = &l->spans[i][k];
        long long to = s->to ? s->to : l->last_probe[i];
        if (to <= from_ms) continue;
        long long from = s->from > from_ms ? s->from : from_ms;
        if (to - from > longest) longest = to - from;
    }
    pthread_mutex_unlock(&l->lock);
    return longest;
}

/* ---- settling: every accepted ID polled until final ---- */

long long ledger_time_ms(const char *s)
{
    int year, mon, day, hour, min, sec, ms, used = 0;
    if (!s || strlen(s) < 24 || s[23] != 'Z' ||
        sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%n", &year, &mon, &day, &hour, &min, &sec, &ms,
               &used) != 7 ||
        used != 23)
        return -1;
    struct tm tm = {.tm_year = year - 1900,
                    .tm_mon = mon - 1,
                    .tm_mday = day,
                    .tm_hour = hour,
                    .tm_min = min,
                    .tm_sec = sec};
    return (long long)timegm(&tm) * 1000 + ms;
}

static bool final_state(const char *s)
{
    return !strcmp(s, "succeeded") || !strcmp(s, "failed") || !strcmp(s, "dead");
}

static void on_status(struct ledger *l, struct xfer *x, CURLcode res, long code)
{
    if (res != CURLE_OK || code != 200) return;
    struct json_object *o = json_parse(x->answer.data, x->answer.len, NULL, 0);
    const char *st = json_str(o, "status");
    struct ledger_entry *e = &l->entries[x->idx];
    if (st) snprintf(e->state, sizeof e->state, "%s", st);
    long long ms = st && final_state(st) ? ledger_time_ms(json_str(o, "completed_at")) : -1;
    if (ms > 0) e->final_ms = ms;
    json_object_put(o);
}

/* settle_round polls every accepted entry not yet final once; it returns
 * how many are still not final. */
static size_t settle_round(struct ledger *l, CURLM *m, const char *url)
{
    size_t next = 0, pending = 0;
    int running = 0;
    for (;;) {
        while (running < STATUS_PARALLEL && next < l->n) {
            struct ledger_entry *e = &l->entries[next];
            size_t idx = next++;
            if (e->code != 202 || e->final_ms) continue;
            char u[256];
            snprintf(u, sizeof u, "%s/v1/requests/%s", url, e->id);
            struct xfer *x = xfer_new(X_STATUS, idx, u, l->get_hdrs, STATUS_TIMEOUT_MS);
            ck_assert_ptr_nonnull(x);
            ck_assert_int_eq(curl_multi_add_handle(m, x->easy), CURLM_OK);
            running++;
        }
        if (!running) break;
        int still = 0;
        curl_multi_perform(m, &still);
        CURLcode res;
        long code;
        struct xfer *x;
        while ((x = next_done(m, &res, &code))) {
            on_status(l, x, res, code);
            pending += !l->entries[x->idx].final_ms;
            running--;
            xfer_free(x);
        }
        if (running) curl_multi_poll(m, NULL, 0, 50, NULL);
    }
    return pending;
}

void ledger_settle(struct ledger *l, const char *url, const char *token, int timeout_ms)
{
    (void)token; /* the loader's Authorization header serves */
    ck_assert_msg(l->joined, "ledger_settle before ledger_stop");
    CURLM *m = curl_multi_init();
    ck_assert_ptr_nonnull(m);
    long long deadline = mono_ms() + timeout_ms;
    while (settle_round(l, m, url) && mono_ms() < deadline)
        h_sleep_ms(200);
    curl_multi_cleanup(m);
}

/* ---- the backend's access log ---- */

/* entry_of returns the entry a call's path names ("<path>/c<seq>"), or NULL. */
static struct ledger_entry *entry_of(struct ledger *l, const char *path, size_t *idx)
{
    size_t plen = strlen(l->path);
    if (strncmp(path, l->path, plen) != 0 || strncmp(path + plen, "/c", 2) != 0) return NULL;
    char *end;
    unsigned long long seq = strtoull(path + plen + 2, &end, 10);
    if (*end || end == path + plen + 2 || seq >= l->n) return NULL;
    *idx = (size_t)seq;
    return &l->entries[seq];
}

void ledger_reconcile(struct ledger *l, const char *access_log)
{
    ck_assert_msg(l->joined, "ledger_reconcile before ledger_stop");
    free(l->keys);
    l->keys = calloc(l->n + 1, sizeof *l->keys);
    ck_assert_ptr_nonnull(l->keys);
    FILE *f = fopen(access_log, "r");
    ck_assert_msg(f != NULL, "cannot open %s", access_log);
    char line[2048], method[16], path[1024], key[128];
    long long ms;
    while (fgets(line, sizeof line, f)) {
        size_t idx;
        struct ledger_entry *e;
        if (sscanf(line, "%lld %15s %1023s %127s", &ms, method, path, key) != 4 ||
            !(e = entry_of(l, path, &idx)))
            continue;
        if (!e->calls++ || ms < e->first_call_ms) e->first_call_ms = ms;
        if (!l->keys[idx][0]) snprintf(l->keys[idx], sizeof l->keys[idx], "%.32s", key);
        if (strcmp(key, l->keys[idx]) != 0 || (e->id[0] && strcmp(key, e->id) != 0))
            e->key_mismatch = true;
    }
    fclose(f);
}

/* ---- totals ---- */

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* gap finds the longest stretch between two 202 answers (or the first
 * submission and the first 202). */
static void gap(struct ledger *l, struct ledger_totals *t)
{
    long long *at = malloc((l->n + 1) * sizeof *at);
    ck_assert_ptr_nonnull(at);
    size_t k = 0;
    for (size_t i = 0; i < l->n; i++)
        if (l->entries[i].code == 202) at[k++] = l->entries[i].answered_ms;
    qsort(at, k, sizeof *at, cmp_ll);
    long long prev = t->first_ms;
    for (size_t i = 0; i < k; i++) {
        if (at[i] - prev > t->max_gap_ms) {
            t->max_gap_ms = at[i] - prev;
            t->gap_from_ms = prev;
        }
        prev = at[i];
    }
    free(at);
}

/* print_lost names the first accepted submissions that were not settled
 * as succeeded, so a failed run can be followed in the logs it leaves. */
static void print_lost(const struct ledger *l)
{
    int shown = 0;
    for (size_t i = 0; i < l->n && shown < 20; i++) {
        const struct ledger_entry *e = &l->entries[i];
        if (e->code != 202 || (!strcmp(e->state, "succeeded") && e->calls > 0)) continue;
        fprintf(stderr,
                "ledger: lost #%zu %s: sent %lld, 202 from ingress %d at %lld, status %s, "
                "%ld backend calls (first at %lld)\n",
                i, e->id, e->sent_ms, e->ingress, e->answered_ms, e->state[0] ? e->state : "-",
                e->calls, e->first_call_ms);
        shown++;
    }
}

void ledger_totals(struct ledger *l, struct ledger_totals *t)
{
    *t = (struct ledger_totals){.first_ms = l->n ? l->entries[0].sent_ms : 0};
    for (size_t i = 0; i < l->n; i++) {
        const struct ledger_entry *e = &l->entries[i];
        t->sent++;
        if (e->answered_ms > t->last_ms) t->last_ms = e->answered_ms;
        if (e->code == 202)
            t->accepted++;
        else if (e->code == 503)
            t->unavailable++;
        else if (e->code == 0)
            t->no_answer++;
        else
            t->other++;
        if (e->code == 202 && !strcmp(e->state, "succeeded") && e->calls > 0)
            t->succeeded++;
        else if (e->code == 202)
            t->lost++;
        if (e->code != 202 && e->calls > 0) t->unaccepted_called++;
        if (e->calls > 1) {
            t->dup_requests++;
            t->duplicates += (size_t)(e->calls - 1);
        }
        t->key_mismatch += e->key_mismatch;
    }
    gap(l, t);
    if (t->lost) print_lost(l);
}

void ledger_print(FILE *f, const char *title, const struct ledger_totals *t)
{
    fprintf(f,
            "%s: {\"sent\":%zu,\"accepted\":%zu,\"unavailable_503\":%zu,\"no_answer\":%zu,"
            "\"other\":%zu,\"succeeded\":%zu,\"lost\":%zu,\"duplicate_calls\":%zu,"
            "\"duplicated_requests\":%zu,\"key_mismatch\":%zu,\"called_without_202\":%zu,"
            "\"longest_without_202_s\":%.2f,\"seconds\":%.1f}\n",
            title, t->sent, t->accepted, t->unavailable, t->no_answer, t->other, t->succeeded,
            t->lost, t->duplicates, t->dup_requests, t->key_mismatch, t->unaccepted_called,
            (double)t->max_gap_ms / 1000.0, (double)(t->last_ms - t->first_ms) / 1000.0);
    fflush(f);
}

void ledger_check_totals(const struct ledger_totals *t, bool allow_no_answer)
{
    ck_assert_msg(t->accepted > 0, "nothing was accepted");
    ck_assert_msg(t->other == 0, "%zu submissions got an answer other than 202 or 503", t->other);
    ck_assert_msg(allow_no_answer || t->no_answer == 0, "%zu submissions got no answer",
                  t->no_answer);
    ck_assert_msg(t->lost == 0, "%zu accepted requests were lost (not succeeded or never called)",
                  t->lost);
    ck_assert_msg(t->key_mismatch == 0, "%zu requests were called with different Idempotency-Keys",
                  t->key_mismatch);
}

void ledger_write(struct ledger *l, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) return;
    fprintf(f,
            "# seq sent_ms answered_ms ingress code id state final_ms calls first_call_ms why\n");
    for (size_t i = 0; i < l->n; i++) {
        const struct ledger_entry *e = &l->entries[i];
        fprintf(f, "%zu %lld %lld %d %d %s %s %lld %ld %lld %s\n", i, e->sent_ms, e->answered_ms,
                e->ingress, e->code, e->id[0] ? e->id : "-", e->state[0] ? e->state : "-",
                e->final_ms, e->calls, e->first_call_ms, e->why);
    }
    fclose(f);
}
