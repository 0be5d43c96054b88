/* event.c: building and parsing the messages of the events stream (format in
 * event.h). Parsing is strict because every ingress replica feeds its status
 * index from these messages: a malformed event must be refused, not guessed. */
#include "event.h"

#include <limits.h>
#include <stdbool.h>
#include <string.h>

#include "id.h"
#include "json.h"

static const char *const state_names[] = {
    [ST_QUEUED] = "queued",       [ST_PROCESSING] = "processing", [ST_RETRYING] = "retrying",
    [ST_SUCCEEDED] = "succeeded", [ST_FAILED] = "failed",         [ST_DEAD] = "dead",
};
#define N_STATES ((int)(sizeof state_names / sizeof state_names[0]))

/* EVENT_MAX_MS is the last millisecond of year 9999: times are served as
 * RFC 3339 timestamps, whose years have four digits. */
#define EVENT_MAX_MS INT64_C(253402300799999)

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
    return rc ? rc : buf_append(b, "}", 1);
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

/* get_string returns the string member key of o, or NULL when it is missing,
 * not a string, or holds a NUL (the update carries plain C strings). */
static const char *get_string(struct json_object *o, const char *key, size_t *len)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    const char *s = json_object_get_string(v);
    size_t n = (size_t)json_object_get_string_len(v);
    if (strlen(s) != n) return NULL;
    if (len) *len = n;
    return s;
}

static bool get_int(struct json_object *o, const char *key, int64_t min, int64_t max, int64_t *out)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
        return false;
    *out = json_object_get_int64(v);
    return *out >= min && *out <= max;
}

/* get_object sets *text to the compact text of the optional object member key
 * (NULL when absent) and returns false when the member is not an object. */
static bool get_object(struct json_object *o, const char *key, const char **text, size_t *len)
{
    struct json_object *v;
    *text = NULL;
    *len = 0;
    if (!json_object_object_get_ex(o, key, &v)) return true;
    if (!json_object_is_type(v, json_type_object)) return false;
    *text = json_object_to_json_string_length(
        v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, len);
    return *text != NULL;
}

static bool decode_event(struct json_object *o, struct status_update *u)
{
    size_t id_len = 0;
    int64_t created, ts, attempts;
    if (!json_object_is_type(o, json_type_object)) return false;
    u->id = get_string(o, "id", &id_len);
    u->tenant = get_string(o, "tenant", NULL);
    u->route = get_string(o, "route", NULL);
    int state = event_state_parse(get_string(o, "state", NULL));
    if (!u->id || !id_valid(u->id, id_len) || !u->tenant || !u->route || state < 0) return false;
    if (!get_int(o, "created", 0, EVENT_MAX_MS, &created) ||
        !get_int(o, "ts", 0, EVENT_MAX_MS, &ts) || !get_int(o, "attempts", 0, INT_MAX, &attempts))
        return false;
    u->state = (enum req_state)state;
    u->created_ms = created;
    u->ts_ms = ts;
    u->attempts = (int)attempts;
    return get_object(o, "result", &u->result_json, &u->result_len) &&
           get_object(o, "error", &u->error_json, &u->error_len);
}

static int parse_events(struct json_object *events, event_update_fn on_update, void *arg)
{
    if (!json_object_is_type(events, json_type_array)) return -1;
    size_t n = json_object_array_length(events);
    for (size_t i = 0; i < n; i++) {
        struct status_update u;
        if (!decode_event(json_object_array_get_idx(events, i), &u)) return -1;
        if (on_update) on_update(arg, &u);
    }
    return n > INT_MAX ? INT_MAX : (int)n;
}

int event_parse(const char *msg, size_t len, event_update_fn on_update, event_marker_fn on_marker,
                void *arg)
{
    int rc = -1;
    int64_t v;
    struct json_object *root = json_parse(msg, len, NULL, 0), *events;
    if (!root || !json_object_is_type(root, json_type_object) || !get_int(root, "v", 1, 1, &v))
        goto out;
    if (json_object_object_get_ex(root, "marker", NULL)) {
        const char *nonce = get_string(root, "marker", NULL);
        if (!nonce) goto out;
        if (on_marker) on_marker(arg, nonce);
        rc = 0;
    } else if (json_object_object_get_ex(root, "events", &events)) {
        rc = parse_events(events, on_update, arg);
    }
out:
    json_object_put(root);
    return rc;
}
