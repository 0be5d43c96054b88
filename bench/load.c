/* load.c: build/bench/load, the load generator of `make bench`. It submits
 * envelopes to a running sluice-ingress over keep-alive connections (libcurl
 * multi, at most --connections to the host), either --count N as fast as the
 * connections allow (closed loop), or --rate R for --duration S (open loop:
 * request i starts at t0 + i/R whatever the answers, so a slow ingress shows
 * as latency rather than as a lower offered load). With --wait-final it then
 * polls every accepted ID until its status is final and measures
 * submit->final from the status's completed_at (whole milliseconds, so a
 * figure may read up to 1 ms low).
 *
 * stdout gets one JSON object with the figures (non_202_codes counts requests
 * that got no usable answer under "error"); stderr gets progress. Exit status:
 * 0; 1 when the ingress is unreachable, nothing was accepted, a submission
 * got no usable answer (the JSON is still printed) or the tool itself
 * failed; 2 for a bad command line. */
#include <curl/curl.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "buf.h"
#include "event.h"
#include "id.h"
#include "json.h"

#define PROG "load"
#define URL_MAX 2048
#define MAX_REQUESTS 10000000L
#define MAX_CONNECTIONS 10000L
#define CONNECT_TIMEOUT_MS 5000L
#define SUBMIT_TIMEOUT_MS 30000L
#define POLL_TIMEOUT_MS 10000L
#define ROUND_MIN_US 20000    /* polling rounds start at most this often */
#define PROGRESS_US 1000000   /* a progress line on stderr this often */
#define BODY_MAX (64 * 1024)  /* one envelope */
#define ANSWER_MAX (64 << 20) /* one answer: a status may carry a large result */
#define N_CODES 1000          /* HTTP statuses are three digits; 0 is "no answer" */

struct opts {
    const char *url, *token, *route, *path, *submit_log;
    long connections, count;
    double rate, duration, wait_final;
};

enum slot_kind { SUBMIT, POLL };

/* sub is one submission, from its send to its final status. */
struct sub {
    int64_t send_us;     /* CLOCK_REALTIME just before the handle was added */
    int64_t send_mono;   /* the same instant, monotonic, for latencies */
    int64_t answer_mono; /* when the answer (or the error) came; 0 before */
    int64_t final_us;    /* completed_at in Unix microseconds, once final */
    int status;          /* HTTP status of the submit; 0: no usable answer */
    int state;           /* enum req_state once final, else -1 */
    char id[ID_LEN + 1]; /* from the 202's body */
};

/* slot is one easy handle with its buffers, reused from request to request
 * (the multi handle keeps the connections alive between them). */
struct slot {
    CURL *easy;
    struct buf body;   /* the envelope being sent; curl reads it in place */
    struct buf answer; /* the answer's body */
    enum slot_kind kind;
    size_t sub;
    bool busy; /* added to the multi handle */
    char err[CURL_ERROR_SIZE];
    struct slot *next_free;
};

struct load {
    struct opts o;
    char base[URL_MAX + 1]; /* --url without trailing slashes */
    char submit_url[URL_MAX + 32];
    struct buf prefix; /* the envelope up to the sequence number (see make_prefix) */
    CURLM *multi;
    struct curl_slist *post_hdrs, *get_hdrs;
    struct sub *subs;
    size_t n, started, answered, accepted;
    struct slot **slots; /* every slot, for cleanup */
    size_t n_slots, cap_slots;
    struct slot *free_slots;
    size_t in_flight;
    int64_t t0_mono, next_progress, deadline;
    size_t errors, poll_errors;
    char first_error[CURL_ERROR_SIZE + 64];
    /* Polling: the accepted IDs not yet seen final, walked in rounds. */
    size_t *pending;
    size_t n_pending, cursor, rounds, n_final;
    int64_t round_start;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: load --url http://127.0.0.1:8080 --token T --route R [--path /x]\n"
               "            [--connections 64] (--count N | --rate R --duration S)\n"
               "            [--wait-final S] [--submit-log FILE]\n");
}

static int parse_number(int c, const char *arg, struct opts *o)
{
    switch (c) {
    case 'c':
        return bench_parse_long(PROG, "--connections", arg, 1, MAX_CONNECTIONS, &o->connections);
    case 'n':
        return bench_parse_long(PROG, "--count", arg, 1, MAX_REQUESTS, &o->count);
    case 'r':
        return bench_parse_double(PROG, "--rate", arg, 0.001, 1e6, &o->rate);
    case 'd':
        return bench_parse_double(PROG, "--duration", arg, 0.001, 86400, &o->duration);
    default:
        return bench_parse_double(PROG, "--wait-final", arg, 0, 86400, &o->wait_final);
    }
}

/* check_opts refuses incomplete or contradictory command lines. */
static int check_opts(const struct opts *o)
{
    const char *why = NULL;
    if (!o->url || !o->token || !o->route)
        why = "--url, --token and --route are required";
    else if (strlen(o->url) > URL_MAX)
        why = "--url is too long";
    else if (o->count > 0 && (o->rate > 0 || o->duration > 0))
        why = "--count cannot be combined with --rate/--duration";
    else if (o->count == 0 && (o->rate == 0 || o->duration == 0))
        why = "give --count N, or --rate R and --duration S";
    else if (o->count == 0 && o->rate * o->duration < 1)
        why = "--rate x --duration is below 1";
    else if (o->count == 0 && o->rate * o->duration > (double)MAX_REQUESTS)
        why = "--rate x --duration is too many requests";
    if (!why) return 0;
    fprintf(stderr, "%s: %s\n", PROG, why);
    usage(stderr);
    return -1;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longs[] = {
        {"url", required_argument, NULL, 'u'},
        {"token", required_argument, NULL, 't'},
        {"route", required_argument, NULL, 'R'},
        {"path", required_argument, NULL, 'p'},
        {"connections", required_argument, NULL, 'c'},
        {"count", required_argument, NULL, 'n'},
        {"rate", required_argument, NULL, 'r'},
        {"duration", required_argument, NULL, 'd'},
        {"wait-final", required_argument, NULL, 'w'},
        {"submit-log", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (struct opts){.path = "/load", .connections = 64};
    int c;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'u':
            o->url = optarg;
            break;
        case 't':
            o->token = optarg;
            break;
        case 'R':
            o->route = optarg;
            break;
        case 'p':
            o->path = optarg;
            break;
        case 'l':
            o->submit_log = optarg;
            break;
        case 'c':
        case 'n':
        case 'r':
        case 'd':
        case 'w':
            if (parse_number(c, optarg, o) < 0) return -1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", PROG, argv[optind]);
        return -1;
    }
    return check_opts(o);
}

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    struct slot *s = arg;
    return buf_append(&s->answer, p, size * n) == 0 ? size * n : 0;
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

/* note_error counts a request that got no usable answer; the first reason is
 * kept for the final message. */
static void note_error(struct load *l, size_t *counter, const char *why)
{
    if (!l->errors && !l->poll_errors) snprintf(l->first_error, sizeof l->first_error, "%s", why);
    (*counter)++;
}

static void slot_free(struct slot *s)
{
    if (!s) return;
    curl_easy_cleanup(s->easy);
    buf_free(&s->body);
    buf_free(&s->answer);
    free(s);
}

static struct slot *slot_new(struct load *l)
{
    struct slot *s = calloc(1, sizeof *s);
    if (!s || !(s->easy = curl_easy_init())) goto err;
    if (l->n_slots == l->cap_slots) {
        size_t cap = l->cap_slots ? 2 * l->cap_slots : 64;
        struct slot **grown = realloc(l->slots, cap * sizeof *grown);
        if (!grown) goto err;
        l->slots = grown;
        l->cap_slots = cap;
    }
    buf_init(&s->body, BODY_MAX);
    buf_init(&s->answer, ANSWER_MAX);
    curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
    curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->easy, CURLOPT_ERRORBUFFER, s->err);
    curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(s->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(s->easy, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    l->slots[l->n_slots++] = s;
    return s;
err:
    if (s) curl_easy_cleanup(s->easy);
    free(s);
    return NULL;
}

static struct slot *slot_get(struct load *l)
{
    struct slot *s = l->free_slots;
    if (!s) return slot_new(l);
    l->free_slots = s->next_free;
    return s;
}

static void slot_put(struct load *l, struct slot *s)
{
    s->next_free = l->free_slots;
    l->free_slots = s;
}

/* slot_start hands a prepared slot to the multi handle; on failure the slot
 * goes back to the free list. */
static int slot_start(struct load *l, struct slot *s)
{
    s->err[0] = '\0';
    buf_reset(&s->answer);
    if (curl_multi_add_handle(l->multi, s->easy) != CURLM_OK) {
        slot_put(l, s);
        return -1;
    }
    s->busy = true;
    l->in_flight++;
    return 0;
}

/* make_prefix builds {"route":R,"path":"P once: the path's JSON string
 * without its closing quote, so each envelope only appends "/<seq>" and the
 * rest. The separator is left out when P already ends with '/'. */
static int make_prefix(struct load *l)
{
    int rc = buf_appends(&l->prefix, "{\"route\":");
    if (!rc) rc = buf_append_json_string(&l->prefix, l->o.route, strlen(l->o.route));
    if (!rc) rc = buf_appends(&l->prefix, ",\"path\":");
    if (!rc) rc = buf_append_json_string(&l->prefix, l->o.path, strlen(l->o.path));
    if (rc) return rc;
    l->prefix.data[--l->prefix.len] = '\0';
    size_t plen = strlen(l->o.path);
    return plen && l->o.path[plen - 1] == '/' ? 0 : buf_appends(&l->prefix, "/");
}

static int start_submit(struct load *l, size_t i)
{
    struct slot *s = slot_get(l);
    if (!s) return -1;
    buf_reset(&s->body);
    int rc = buf_append(&s->body, l->prefix.data, l->prefix.len);
    if (!rc) rc = buf_appendf(&s->body, "%zu\",\"body\":{\"n\":%zu}}", i, i);
    if (rc) {
        slot_put(l, s);
        return -1;
    }
    s->kind = SUBMIT;
    s->sub = i;
    curl_easy_setopt(s->easy, CURLOPT_URL, l->submit_url);
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, l->post_hdrs);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)s->body.len);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, s->body.data);
    curl_easy_setopt(s->easy, CURLOPT_TIMEOUT_MS, SUBMIT_TIMEOUT_MS);
    struct sub *u = &l->subs[i];
    u->send_us = clock_real_us();
    u->send_mono = clock_mono_us();
    return slot_start(l, s);
}

static int start_poll(struct load *l, size_t i)
{
    char url[URL_MAX + 64];
    struct slot *s = slot_get(l);
    if (!s) return -1;
    snprintf(url, sizeof url, "%s/v1/requests/%s", l->base, l->subs[i].id);
    s->kind = POLL;
    s->sub = i;
    curl_easy_setopt(s->easy, CURLOPT_URL, url);
    curl_easy_setopt(s->easy, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, l->get_hdrs);
    curl_easy_setopt(s->easy, CURLOPT_TIMEOUT_MS, POLL_TIMEOUT_MS);
    return slot_start(l, s);
}

/* json_member returns the string member key of a parsed answer, or NULL. */
static const char *json_member(struct json_object *o, const char *key)
{
    struct json_object *v;
    if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static void on_submitted(struct load *l, struct slot *s, CURLcode res, long code)
{
    struct sub *u = &l->subs[s->sub];
    u->answer_mono = clock_mono_us();
    l->answered++;
    if (res != CURLE_OK) {
        note_error(l, &l->errors, s->err[0] ? s->err : curl_easy_strerror(res));
        return;
    }
    if (code != 202) {
        u->status = code > 0 && code < N_CODES ? (int)code : 0;
        return;
    }
    struct json_object *o = json_parse(s->answer.data, s->answer.len, NULL, 0);
    const char *id = json_member(o, "id");
    if (id && id_valid(id, strlen(id))) {
        memcpy(u->id, id, ID_LEN + 1);
        u->status = 202;
        l->accepted++;
    } else {
        note_error(l, &l->errors, "a 202 answer without a valid id");
    }
    json_object_put(o);
}

/* on_polled records a final status; anything else is polled again next round. */
static void on_polled(struct load *l, struct slot *s, CURLcode res, long code)
{
    struct sub *u = &l->subs[s->sub];
    if (res != CURLE_OK || code != 200) {
        char why[CURL_ERROR_SIZE + 64];
        snprintf(why, sizeof why, "status poll: %s",
                 res != CURLE_OK ? (s->err[0] ? s->err : curl_easy_strerror(res)) : "not 200");
        note_error(l, &l->poll_errors, why);
        return;
    }
    struct json_object *o = json_parse(s->answer.data, s->answer.len, NULL, 0);
    int state = event_state_parse(json_member(o, "status"));
    const char *completed = json_member(o, "completed_at");
    int64_t ms;
    if (state >= 0 && ST_FINAL(state)) {
        if (completed && bench_rfc3339_ms(completed, &ms) == 0) {
            u->state = state;
            u->final_us = ms * 1000;
            l->n_final++;
        } else {
            note_error(l, &l->poll_errors, "a final status without a valid completed_at");
        }
    }
    json_object_put(o);
}

/* drain takes every finished transfer off the multi handle. */
static void drain(struct load *l)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(l->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        CURL *easy = m->easy_handle;
        CURLcode res = m->data.result; /* m dies with the handle's removal */
        void *p = NULL;
        long code = 0;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &p);
        struct slot *s = p;
        curl_multi_remove_handle(l->multi, easy);
        s->busy = false;
        l->in_flight--;
        if (res == CURLE_OK) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
        if (s->kind == SUBMIT)
            on_submitted(l, s, res, code);
        else
            on_polled(l, s, res, code);
        slot_put(l, s);
    }
}

/* abort_all removes the transfers still in flight (polling's deadline). */
static void abort_all(struct load *l)
{
    for (size_t i = 0; i < l->n_slots; i++) {
        struct slot *s = l->slots[i];
        if (!s->busy) continue;
        curl_multi_remove_handle(l->multi, s->easy);
        s->busy = false;
        l->in_flight--;
        slot_put(l, s);
    }
}

/* A feed function starts what is due at now and lowers *timeout_ms to the
 * next instant something will be due. It returns 1 when its phase is over,
 * 0 to go on, -1 on a failure of the tool itself. */
typedef int (*feed_fn)(struct load *l, int64_t now, int *timeout_ms);

static int feed_submits(struct load *l, int64_t now, int *timeout_ms)
{
    while (l->started < l->n) {
        if (l->o.count > 0) {
            if (l->in_flight >= (size_t)l->o.connections) break;
        } else {
            int64_t due = l->t0_mono + (int64_t)((double)l->started * 1e6 / l->o.rate);
            if (due > now) {
                int wait = (int)ceil((double)(due - now) / 1000.0);
                if (wait < *timeout_ms) *timeout_ms = wait;
                break;
            }
        }
        if (start_submit(l, l->started) < 0) return -1;
        l->started++;
    }
    if (now >= l->next_progress) {
        fprintf(stderr, "%s: %zu/%zu submitted, %zu answered, %zu accepted, %zu in flight\n", PROG,
                l->started, l->n, l->answered, l->accepted, l->in_flight);
        l->next_progress = now + PROGRESS_US;
    }
    return l->started == l->n && l->in_flight == 0;
}

/* next_round forgets the IDs seen final and rewinds the cursor, no sooner
 * than ROUND_MIN_US after the previous round started. Returns 1 when nothing
 * is left to poll. */
static int next_round(struct load *l, int64_t now, int *timeout_ms)
{
    int64_t at = l->round_start + ROUND_MIN_US;
    if (now < at) {
        int wait = (int)ceil((double)(at - now) / 1000.0);
        if (wait < *timeout_ms) *timeout_ms = wait;
        return 0;
    }
    /* Compacting and rewinding go together: the cursor indexes this list. */
    size_t kept = 0;
    for (size_t i = 0; i < l->n_pending; i++)
        if (l->subs[l->pending[i]].state < 0) l->pending[kept++] = l->pending[i];
    l->n_pending = kept;
    if (kept == 0) return 1;
    l->round_start = now;
    l->cursor = 0;
    l->rounds++;
    return 0;
}

static int feed_polls(struct load *l, int64_t now, int *timeout_ms)
{
    if (now >= l->deadline) return 1;
    if (l->cursor == l->n_pending && l->in_flight == 0 && next_round(l, now, timeout_ms)) return 1;
    while (l->cursor < l->n_pending && l->in_flight < (size_t)l->o.connections)
        if (start_poll(l, l->pending[l->cursor++]) < 0) return -1;
    int64_t left_ms = (l->deadline - now + 999) / 1000;
    if (left_ms < *timeout_ms) *timeout_ms = (int)left_ms;
    if (now >= l->next_progress) {
        fprintf(stderr, "%s: polling round %zu: %zu/%zu final\n", PROG, l->rounds, l->n_final,
                l->accepted);
        l->next_progress = now + PROGRESS_US;
    }
    return 0;
}

/* run_phase drives the multi handle until feed says the phase is over. */
static int run_phase(struct load *l, feed_fn feed)
{
    l->t0_mono = clock_mono_us();
    l->next_progress = l->t0_mono + PROGRESS_US;
    for (;;) {
        int running = 0, timeout_ms = 1000;
        if (curl_multi_perform(l->multi, &running) != CURLM_OK) return -1;
        drain(l);
        int rc = feed(l, clock_mono_us(), &timeout_ms);
        if (rc != 0) return rc < 0 ? -1 : 0;
        if (curl_multi_poll(l->multi, NULL, 0, timeout_ms, NULL) != CURLM_OK) return -1;
    }
}

static int wait_final(struct load *l)
{
    l->pending = malloc((l->accepted + 1) * sizeof *l->pending);
    if (!l->pending) return -1;
    for (size_t i = 0; i < l->started; i++)
        if (l->subs[i].status == 202) l->pending[l->n_pending++] = i;
    l->round_start = clock_mono_us();
    l->rounds = 1;
    l->deadline = l->round_start + (int64_t)(l->o.wait_final * 1e6);
    int rc = run_phase(l, feed_polls);
    abort_all(l);
    fprintf(stderr, "%s: %zu/%zu final after %zu polling rounds\n", PROG, l->n_final, l->accepted,
            l->rounds);
    return rc;
}

/* preflight makes an unreachable ingress a clear error instead of a run of
 * N failed submissions. */
static int preflight(const struct load *l)
{
    char url[URL_MAX + 16], err[CURL_ERROR_SIZE] = "";
    long code = 0;
    CURL *e = curl_easy_init();
    if (!e) return -1;
    snprintf(url, sizeof url, "%s/healthz", l->base);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, CONNECT_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, err);
    CURLcode res = curl_easy_perform(e);
    if (res == CURLE_OK) curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(e);
    if (res != CURLE_OK) {
        fprintf(stderr, "%s: the ingress at %s is unreachable: %s\n", PROG, l->base,
                err[0] ? err : curl_easy_strerror(res));
        return -1;
    }
    if (code != 200) {
        fprintf(stderr, "%s: %s answered %ld, not 200: is a sluice-ingress listening there?\n",
                PROG, url, code);
        return -1;
    }
    return 0;
}

static int write_submit_log(const struct load *l, FILE *f)
{
    for (size_t i = 0; i < l->started; i++)
        if (l->subs[i].status == 202)
            fprintf(f, "%s %lld\n", l->subs[i].id, (long long)l->subs[i].send_us);
    return fflush(f) == 0 && !ferror(f) ? 0 : -1;
}

/* stats are the figures of the report, gathered in one pass over subs. */
struct stats {
    size_t codes[N_CODES], states[ST_DEAD + 1], n_accept, n_final;
    double *accept_ms, *final_ms;
    int64_t first_send_mono, last_answer_mono, first_send_us, last_final_us;
};

static void gather(const struct load *l, struct stats *st)
{
    st->first_send_mono = st->first_send_us = INT64_MAX;
    st->last_answer_mono = st->last_final_us = INT64_MIN;
    for (size_t i = 0; i < l->started; i++) {
        const struct sub *u = &l->subs[i];
        if (u->send_mono < st->first_send_mono) st->first_send_mono = u->send_mono;
        if (u->send_us < st->first_send_us) st->first_send_us = u->send_us;
        if (u->answer_mono > st->last_answer_mono) st->last_answer_mono = u->answer_mono;
        if (u->status != 202) {
            st->codes[u->status]++;
            continue;
        }
        st->accept_ms[st->n_accept++] = (double)(u->answer_mono - u->send_mono) / 1000.0;
        if (u->state < 0) continue;
        st->states[u->state]++;
        st->final_ms[st->n_final++] = (double)(u->final_us - u->send_us) / 1000.0;
        if (u->final_us > st->last_final_us) st->last_final_us = u->final_us;
    }
}

static double ratio(double a, double b)
{
    return b > 0 ? a / b : 0;
}

static int append_codes(struct buf *b, const size_t *codes)
{
    int rc = buf_appends(b, "\"non_202_codes\":{");
    bool first = true;
    for (int c = 0; c < N_CODES && !rc; c++) {
        if (!codes[c]) continue;
        if (c == 0)
            rc = buf_appendf(b, "%s\"error\":%zu", first ? "" : ",", codes[c]);
        else
            rc = buf_appendf(b, "%s\"%d\":%zu", first ? "" : ",", c, codes[c]);
        first = false;
    }
    return rc ? rc : buf_appends(b, "}");
}

static int append_final(struct buf *b, const struct load *l, struct stats *st)
{
    double secs = st->n_final ? (double)(st->last_final_us - st->first_send_us) / 1e6 : 0;
    int rc = buf_appendf(b,
                         ",\"final\":%zu,\"not_final\":%zu,\"states\":{\"succeeded\":%zu,"
                         "\"failed\":%zu,\"dead\":%zu},\"complete_seconds\":%.3f,"
                         "\"completion_rate\":%.1f,\"submit_to_final_ms\":",
                         st->n_final, l->accepted - st->n_final, st->states[ST_SUCCEEDED],
                         st->states[ST_FAILED], st->states[ST_DEAD], secs,
                         ratio((double)st->n_final, secs));
    return rc ? rc : bench_append_percentiles(b, st->final_ms, st->n_final, false);
}

static int report(const struct load *l, struct buf *b)
{
    int rc = -1;
    struct stats *st = calloc(1, sizeof *st);
    if (!st) return -1;
    st->accept_ms = malloc((l->accepted + 1) * sizeof(double));
    st->final_ms = malloc((l->accepted + 1) * sizeof(double));
    if (!st->accept_ms || !st->final_ms) goto out;
    gather(l, st);
    double secs = l->started ? (double)(st->last_answer_mono - st->first_send_mono) / 1e6 : 0;
    rc = buf_appendf(b, "{\"submitted\":%zu,\"accepted\":%zu,\"non_202\":%zu,", l->started,
                     l->accepted, l->started - l->accepted);
    if (!rc) rc = append_codes(b, st->codes);
    if (!rc)
        rc = buf_appendf(b, ",\"submit_seconds\":%.3f,\"accept_rate\":%.1f,\"accept_latency_ms\":",
                         secs, ratio((double)l->accepted, secs));
    if (!rc) rc = bench_append_percentiles(b, st->accept_ms, st->n_accept, true);
    if (!rc && l->o.wait_final > 0) rc = append_final(b, l, st);
    if (!rc) rc = buf_appends(b, "}\n");
out:
    free(st->accept_ms);
    free(st->final_ms);
    free(st);
    return rc;
}

static int append_header(struct curl_slist **list, const char *h)
{
    struct curl_slist *grown = curl_slist_append(*list, h);
    if (!grown) return -1;
    *list = grown;
    return 0;
}

static int make_headers(struct load *l)
{
    struct buf auth;
    buf_init(&auth, 1 << 16);
    int rc = buf_appendf(&auth, "Authorization: Bearer %s", l->o.token);
    if (!rc) rc = append_header(&l->get_hdrs, auth.data);
    if (!rc) rc = append_header(&l->post_hdrs, auth.data);
    if (!rc) rc = append_header(&l->post_hdrs, "Content-Type: application/json");
    if (!rc) rc = append_header(&l->post_hdrs, "Expect:"); /* no 100-continue round trip */
    buf_free(&auth);
    return rc;
}

static int load_init(struct load *l, const struct opts *o)
{
    *l = (struct load){.o = *o};
    snprintf(l->base, sizeof l->base, "%s", o->url);
    size_t len = strlen(l->base);
    while (len > 0 && l->base[len - 1] == '/')
        l->base[--len] = '\0';
    snprintf(l->submit_url, sizeof l->submit_url, "%s/v1/requests", l->base);
    buf_init(&l->prefix, BODY_MAX);
    l->n = o->count > 0 ? (size_t)o->count : (size_t)floor(o->rate * o->duration);
    l->subs = calloc(l->n, sizeof *l->subs);
    if (!l->subs || !(l->multi = curl_multi_init())) return -1;
    for (size_t i = 0; i < l->n; i++)
        l->subs[i].state = -1;
    curl_multi_setopt(l->multi, CURLMOPT_MAX_HOST_CONNECTIONS, o->connections);
    curl_multi_setopt(l->multi, CURLMOPT_MAXCONNECTS, o->connections);
    return make_prefix(l) || make_headers(l) ? -1 : 0;
}

static void load_free(struct load *l)
{
    for (size_t i = 0; i < l->n_slots; i++) {
        if (l->slots[i]->busy) curl_multi_remove_handle(l->multi, l->slots[i]->easy);
        slot_free(l->slots[i]);
    }
    free(l->slots);
    curl_multi_cleanup(l->multi);
    curl_slist_free_all(l->post_hdrs);
    curl_slist_free_all(l->get_hdrs);
    buf_free(&l->prefix);
    free(l->subs);
    free(l->pending);
}

/* run performs the whole measurement and prints the report; the return
 * value is the exit status. */
static int run(struct load *l, FILE *log)
{
    struct buf out;
    buf_init(&out, 1 << 20);
    int rc = 1;
    if (preflight(l) < 0) goto out;
    fprintf(stderr, "%s: submitting %zu envelopes to %s over %ld connections\n", PROG, l->n,
            l->submit_url, l->o.connections);
    if (run_phase(l, feed_submits) < 0) {
        fprintf(stderr, "%s: submitting failed (out of memory or a libcurl error)\n", PROG);
        goto out;
    }
    if (l->errors)
        fprintf(stderr, "%s: %zu submissions got no usable answer; the first: %s\n", PROG,
                l->errors, l->first_error);
    if (log && write_submit_log(l, log) < 0) {
        fprintf(stderr, "%s: writing --submit-log %s failed\n", PROG, l->o.submit_log);
        goto out;
    }
    if (l->o.wait_final > 0 && wait_final(l) < 0) {
        fprintf(stderr, "%s: polling failed (out of memory or a libcurl error)\n", PROG);
        goto out;
    }
    if (l->poll_errors) fprintf(stderr, "%s: %zu status polls failed\n", PROG, l->poll_errors);
    if (report(l, &out) < 0) {
        fprintf(stderr, "%s: out of memory building the report\n", PROG);
        goto out;
    }
    fwrite(out.data, 1, out.len, stdout);
    /* Figures from a run where the ingress vanished are printed but not
     * trusted: the exit status says so. */
    rc = l->accepted == 0 || l->errors ? 1 : 0;
    if (l->accepted == 0) fprintf(stderr, "%s: no submission was accepted\n", PROG);
out:
    buf_free(&out);
    return rc;
}

int main(int argc, char **argv)
{
    struct opts o;
    struct load l;
    FILE *log = NULL;
    int rc = 1;
    if (parse_opts(argc, argv, &o) < 0) return 2;
    if (o.submit_log && !(log = fopen(o.submit_log, "w"))) {
        perror(o.submit_log);
        return 1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "%s: libcurl failed to initialise\n", PROG);
        goto out;
    }
    if (load_init(&l, &o) < 0)
        fprintf(stderr, "%s: out of memory\n", PROG);
    else
        rc = run(&l, log);
    load_free(&l);
    curl_global_cleanup();
out:
    if (log && fclose(log) != 0 && rc == 0) {
        perror(o.submit_log);
        rc = 1;
    }
    return rc;
}
