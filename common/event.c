/* event.c: building and parsing the messages of the events stream (format in
 * event.h). Parsing is strict because every ingress replica feeds its status
 * index from these messages: a malformed event must be refused, not guessed.
 * It reads in place with jscan, since every ingress reads every event. */
#include "event.h"

#include <limits.h>
#include <stdbool.h>
#include <string.h>

#include "id.h"
#include "jscan.h"

static const char *const state_names[] = {
    [ST_QUEUED] = "queued",       [ST_PROCESSING] = "processing", [ST_RETRYING] = "retrying",
    [ST_SUCCEEDED] = "succeeded", [ST_FAILED] = "failed",         [ST_DEAD] = "dead",
    [ST_CANCELLED] = "cancelled",
};
#define N_STATES ((int)(sizeof state_names / sizeof state_names[0]))

/* EVENT_MAX_MS is the last millisecond of year 9999: times are served as
 * RFC 3339 timestamps, whose years have four digits. */
#define EVENT_MAX_MS INT64_C(253402300799999)
#define EVENT_NAME_MAX 128

const char *event_state_name(enum req_state s)
{
    if ((int)s < 0 || (int)s >= N_STATES) return "unknown";
    return state_names[s];
}

int event_state_parse(const char *name)
{
    for (int i = 0; name && i < N_STATES; i++)
        if (strcmp(name, state_names[i]) == 0) return i;
    return -1;
}

int event_begin(struct buf *b)
{
    return buf_appends(b, "{\"v\":1,\"events\":[");
}

static int append_member(struct buf *b, const char *key, const char *s)
{
    int rc = buf_appendf(b, ",\"%s\":", key);
    return rc ? rc : buf_append_json_string(b, s, strlen(s));
}

static int append_raw(struct buf *b, const char *key, const char *json, size_t len)
{
    if (!json) return 0;
    int rc = buf_appendf(b, ",\"%s\":", key);
    return rc ? rc : buf_append(b, json, len);
}

int event_append(struct buf *b, const struct status_update *u)
{
    /* The separator is decided from the buffer itself, so building a message
     * needs no state besides the buffer: only the first event follows '['. */
    bool first = b->len > 0 && b->data[b->len - 1] == '[';
    int rc = buf_appends(b, first ? "{\"id\":" : ",{\"id\":");
    if (!rc) rc = buf_append_json_string(b, u->id, strlen(u->id));
    if (!rc) rc = append_member(b, "state", event_state_name(u->state));
    if (!rc) rc = append_member(b, "tenant", u->tenant);
    if (!rc) rc = append_member(b, "route", u->route);
    if (!rc)
        rc = buf_appendf(b, ",\"created\":%lld,\"ts\":%lld,\"attempts\":%d",
                         (long long)u->created_ms, (long long)u->ts_ms, u->attempts);
    if (!rc) rc = append_raw(b, "result", u->result_json, u->result_len);
    if (!rc) rc = append_raw(b, "error", u->error_json, u->error_len);
    if (!rc && u->reason) rc = append_member(b, "reason", u->reason);
    if (!rc && u->fp) rc = append_member(b, "fp", u->fp);
    if (!rc && u->ck) rc = append_member(b, "ck", u->ck);
    if (!rc && u->erase) rc = buf_appends(b, ",\"erase\":true");
    if (!rc && u->replays > 0) rc = buf_appendf(b, ",\"replays\":%d", u->replays);
    if (!rc && u->purge) rc = buf_appends(b, ",\"purge\":true");
    if (!rc && event_callback_name(u->callback))
        rc = buf_appendf(b, ",\"callback\":\"%s\",\"callback_attempts\":%d",
                         event_callback_name(u->callback), u->callback_attempts);
    if (!rc && u->callback_only) rc = buf_appends(b, ",\"callback_only\":true");
    return rc ? rc : buf_append(b, "}", 1);
}

const char *event_callback_name(int callback)
{
    static const char *const names[] = {
        [CB_PENDING] = "pending", [CB_SUCCEEDED] = "succeeded", [CB_FAILED] = "failed"};
    return callback > CB_NONE && callback <= CB_FAILED ? names[callback] : NULL;
}

/* read_callback reads a callback state name; an unknown one (a newer
 * worker's) reads as none. */
static bool read_callback(struct jscan *s, int *out)
{
    char name[16];
    size_t n;
    if (!jscan_string(s, name, sizeof name, &n)) return false;
    *out = CB_NONE;
    for (int i = CB_PENDING; i <= CB_FAILED; i++)
        if (strcmp(name, event_callback_name(i)) == 0) *out = i;
    return true;
}

int event_end(struct buf *b)
{
    return buf_appends(b, "]}");
}

int event_marker(struct buf *b, const char *nonce)
{
    int rc = buf_appends(b, "{\"v\":1,\"marker\":");
    if (!rc) rc = buf_append_json_string(b, nonce, strlen(nonce));
    return rc ? rc : buf_append(b, "}", 1);
}

int event_heartbeat(struct buf *b, const char *instance, int64_t ts_ms)
{
    int rc = buf_appends(b, "{\"v\":1,\"heartbeat\":");
    if (!rc) rc = buf_append_json_string(b, instance, strlen(instance));
    return rc ? rc : buf_appendf(b, ",\"ts\":%lld}", (long long)ts_ms);
}

/* The text of one event's strings: tenant and route names are at most
 * CFG_NAME_MAX (128) bytes, so longer ones are refused as malformed. */
struct event_text {
    char id[ID_LEN + 1];
    char reason[EVENT_REASON_MAX + 1];
    char tenant[EVENT_NAME_MAX + 1];
    char route[EVENT_NAME_MAX + 1];
    char fp[EVENT_TAG_MAX + 1];
    char ck[EVENT_TAG_MAX + 1];
};

/* read_bool reads a JSON boolean. */
static bool read_bool(struct jscan *s, bool *out)
{
    const char *text;
    size_t len;
    if (!jscan_value(s, &text, &len)) return false;
    *out = len == 4 && memcmp(text, "true", 4) == 0;
    return *out || (len == 5 && memcmp(text, "false", 5) == 0);
}

/* read_object reads an optional object member as its text, borrowed from
 * the message: the worker built it, the ingress serves it verbatim. */
static bool read_object(struct jscan *s, const char **text, size_t *len)
{
    return jscan_peek(s) == '{' && jscan_value(s, text, len);
}

/* read_reason reads a reason: a short word of [a-z_], as the status
 * document shows it. */
static bool read_reason(struct jscan *s, char out[EVENT_REASON_MAX + 1], const char **reason)
{
    size_t n;
    if (!jscan_string(s, out, EVENT_REASON_MAX + 1, &n) || n == 0 ||
        strspn(out, "abcdefghijklmnopqrstuvwxyz_") != n)
        return false;
    *reason = out;
    return true;
}

static bool decode_event(struct jscan *s, struct status_update *u, struct event_text *t)
{
    char key[24], state[16] = "";
    size_t id_len = 0, n;
    int64_t created = -1, ts = -1, attempts = -1, replays = 0, cb_attempts = 0;
    bool ok = jscan_enter(s, '{');
    int r = -1;
    *u = (struct status_update){0};
    while (ok && (r = jscan_next(s, key, sizeof key)) == 1) {
        if (strcmp(key, "id") == 0)
            ok = jscan_string(s, t->id, sizeof t->id, &id_len) && (u->id = t->id);
        else if (strcmp(key, "state") == 0)
            ok = jscan_string(s, state, sizeof state, &n);
        else if (strcmp(key, "tenant") == 0)
            ok = jscan_string(s, t->tenant, sizeof t->tenant, &n) && (u->tenant = t->tenant);
        else if (strcmp(key, "route") == 0)
            ok = jscan_string(s, t->route, sizeof t->route, &n) && (u->route = t->route);
        else if (strcmp(key, "created") == 0)
            ok = jscan_int(s, 0, EVENT_MAX_MS, &created);
        else if (strcmp(key, "ts") == 0)
            ok = jscan_int(s, 0, EVENT_MAX_MS, &ts);
        else if (strcmp(key, "attempts") == 0)
            ok = jscan_int(s, 0, INT_MAX, &attempts);
        else if (strcmp(key, "result") == 0)
            ok = read_object(s, &u->result_json, &u->result_len);
        else if (strcmp(key, "error") == 0)
            ok = read_object(s, &u->error_json, &u->error_len);
        else if (strcmp(key, "reason") == 0)
            ok = read_reason(s, t->reason, &u->reason);
        else if (strcmp(key, "fp") == 0)
            ok = jscan_string(s, t->fp, sizeof t->fp, &n) && (u->fp = t->fp);
        else if (strcmp(key, "ck") == 0)
            ok = jscan_string(s, t->ck, sizeof t->ck, &n) && (u->ck = t->ck);
        else if (strcmp(key, "erase") == 0)
            ok = read_bool(s, &u->erase);
        else if (strcmp(key, "purge") == 0)
            ok = read_bool(s, &u->purge);
        else if (strcmp(key, "replays") == 0)
            ok = jscan_int(s, 0, EVENT_MAX_REPLAYS, &replays);
        else if (strcmp(key, "callback") == 0)
            ok = read_callback(s, &u->callback);
        else if (strcmp(key, "callback_attempts") == 0)
            ok = jscan_int(s, 0, INT_MAX, &cb_attempts);
        else if (strcmp(key, "callback_only") == 0)
            ok = read_bool(s, &u->callback_only);
        else
            ok = jscan_value(s, NULL, NULL);
    }
    int st = event_state_parse(state);
    if (!ok || r != 0 || !u->id || !id_valid(u->id, id_len) || !u->tenant || !u->route || st < 0 ||
        created < 0 || ts < 0 || attempts < 0)
        return false;
    u->state = (enum req_state)st;
    u->created_ms = created;
    u->ts_ms = ts;
    u->attempts = (int)attempts;
    u->replays = (int)replays;
    u->callback_attempts =
        cb_attempts > EVENT_MAX_CB_ATTEMPTS ? EVENT_MAX_CB_ATTEMPTS : (int)cb_attempts;
    return true;
}

/* parse_events walks the events array at s (already checked as a whole). */
static int parse_events(struct jscan *s, event_update_fn on_update, void *arg)
{
    struct event_text t;
    int n = 0, r;
    if (!jscan_enter(s, '[')) return -1;
    while ((r = jscan_next(s, NULL, 0)) == 1) {
        struct status_update u;
        if (!decode_event(s, &u, &t)) return -1;
        if (on_update) on_update(arg, &u);
        if (n < INT_MAX) n++;
    }
    return r == 0 ? n : -1;
}

int event_parse_all(const char *msg, size_t len, const struct event_sink *sink)
{
    struct jscan s, events;
    char key[16], nonce[EVENT_NAME_MAX + 1], beat[EVENT_NAME_MAX + 1];
    bool ok = jscan_init(&s, msg, len) && jscan_enter(&s, '{'), marker = false, listed = false,
         heartbeat = false;
    int64_t v = 0, ts = -1;
    size_t n;
    int r = -1;
    /* The whole message is checked before any of it is applied. */
    while (ok && (r = jscan_next(&s, key, sizeof key)) == 1) {
        if (strcmp(key, "v") == 0) {
            ok = jscan_int(&s, 1, 1, &v);
        } else if (strcmp(key, "marker") == 0) {
            ok = marker = jscan_string(&s, nonce, sizeof nonce, &n);
        } else if (strcmp(key, "heartbeat") == 0) {
            ok = heartbeat = jscan_string(&s, beat, sizeof beat, &n);
        } else if (strcmp(key, "ts") == 0) {
            ok = jscan_int(&s, 0, EVENT_MAX_MS, &ts);
        } else {
            if (strcmp(key, "events") == 0) events = s, listed = true;
            ok = jscan_value(&s, NULL, NULL);
        }
    }
    if (!ok || r != 0 || !jscan_done(&s) || v != 1 || marker + heartbeat + listed != 1) return -1;
    if (marker) {
        if (sink->on_marker) sink->on_marker(sink->arg, nonce);
        return 0;
    }
    if (heartbeat) {
        if (ts < 0) return -1;
        if (sink->on_heartbeat) sink->on_heartbeat(sink->arg, beat, ts);
        return 0;
    }
    return parse_events(&events, sink->on_update, sink->arg);
}

int event_parse(const char *msg, size_t len, event_update_fn on_update, event_marker_fn on_marker,
                void *arg)
{
    const struct event_sink sink = {arg, on_update, on_marker, NULL};
    return event_parse_all(msg, len, &sink);
}
