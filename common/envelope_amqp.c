/* envelope_amqp.c: the envelope as an AMQP message and back. The body
 * travels verbatim; the id, priority, creation second and content type as
 * properties; everything else in x-sluice-* headers. envelope_amqp_size
 * tells whether the properties fit in the one frame they travel in. */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope_parse.h"

/* The AMQP header names, indexed so from_amqp can collect them in one pass. */
enum {
    H_ROUTE,
    H_METHOD,
    H_PATH,
    H_QUERY,
    H_TENANT,
    H_IDEM,
    H_ATTEMPTS,
    H_CREATED,
    H_TIMEOUT,
    H_MAX_ATTEMPTS,
    H_HEADERS,
    H_REPLAYS,
    H_DELIVERIES,
    H_CALLBACK,
    H_COUNT
};
static const char *const HNAMES[H_COUNT] = {
    "x-sluice-route",      "x-sluice-method",          "x-sluice-path",     "x-sluice-query",
    "x-sluice-tenant",     "x-sluice-idempotency-key", "x-sluice-attempts", "x-sluice-created",
    "x-sluice-timeout-ms", "x-sluice-max-attempts",    "x-sluice-headers",  "x-sluice-replays",
    "x-sluice-deliveries", "x-sluice-callback-url",
};

static amqp_table_entry_t *put(amqp_table_t *t, int h, uint8_t kind)
{
    amqp_table_entry_t *en = &t->entries[t->num_entries++];
    en->key = amqp_cstring_bytes(HNAMES[h]);
    en->value.kind = kind;
    return en;
}

static void put_str(amqp_table_t *t, int h, const char *s)
{
    put(t, h, AMQP_FIELD_KIND_UTF8)->value.value.bytes = amqp_cstring_bytes(s ? s : "");
}

static int put_headers(amqp_table_t *t, const struct envelope *e, amqp_pool_t *pool)
{
    amqp_table_entry_t *en = amqp_pool_alloc(pool, e->n_headers * sizeof *en);
    if (!en) return -ENOMEM;
    for (size_t i = 0; i < e->n_headers; i++) {
        en[i].key = amqp_cstring_bytes(e->headers[i].name);
        en[i].value.kind = AMQP_FIELD_KIND_UTF8;
        en[i].value.value.bytes = amqp_cstring_bytes(e->headers[i].value);
    }
    amqp_table_t *nested = &put(t, H_HEADERS, AMQP_FIELD_KIND_TABLE)->value.value.table;
    nested->num_entries = (int)e->n_headers;
    nested->entries = en;
    return 0;
}

int envelope_to_amqp(const struct envelope *e, amqp_pool_t *pool, amqp_basic_properties_t *props)
{
    amqp_table_t *t = &props->headers;

    memset(props, 0, sizeof *props);
    if (!(t->entries = amqp_pool_alloc(pool, H_COUNT * sizeof *t->entries))) return -ENOMEM;
    put_str(t, H_ROUTE, e->route);
    put_str(t, H_METHOD, e->method);
    put_str(t, H_PATH, e->path);
    if (e->query) put_str(t, H_QUERY, e->query);
    put_str(t, H_TENANT, e->tenant);
    if (e->idempotency_key) put_str(t, H_IDEM, e->idempotency_key);
    if (e->callback_url) put_str(t, H_CALLBACK, e->callback_url);
    put(t, H_ATTEMPTS, AMQP_FIELD_KIND_I32)->value.value.i32 = e->attempts;
    put(t, H_CREATED, AMQP_FIELD_KIND_I64)->value.value.i64 = e->created_ms;
    if (e->timeout_ms) put(t, H_TIMEOUT, AMQP_FIELD_KIND_I64)->value.value.i64 = e->timeout_ms;
    if (e->max_attempts)
        put(t, H_MAX_ATTEMPTS, AMQP_FIELD_KIND_I32)->value.value.i32 = e->max_attempts;
    if (e->replays) put(t, H_REPLAYS, AMQP_FIELD_KIND_I32)->value.value.i32 = e->replays;
    if (e->deliveries) put(t, H_DELIVERIES, AMQP_FIELD_KIND_I32)->value.value.i32 = e->deliveries;
    if (e->n_headers > 0 && put_headers(t, e, pool) < 0) return -ENOMEM;
    props->_flags = AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_PRIORITY_FLAG |
                    AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                    AMQP_BASIC_APP_ID_FLAG | AMQP_BASIC_HEADERS_FLAG;
    props->message_id = amqp_cstring_bytes(e->id);
    props->priority = (uint8_t)e->priority;
    props->timestamp = e->created_ms > 0 ? (uint64_t)e->created_ms / 1000 : 0;
    props->delivery_mode = AMQP_DELIVERY_PERSISTENT;
    props->app_id = amqp_cstring_bytes("sluice");
    if (e->content_type) {
        props->_flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
        props->content_type = amqp_cstring_bytes(e->content_type);
    }
    return 0;
}

/* The encoded sizes AMQP 0-9-1 gives: a short string has a 1-byte length, a
 * long string a 4-byte one; a table entry is a short string key, a kind byte
 * and the value. */
#define SHORTSTR(n) (1 + (n))
#define LONGSTR(n) (4 + (n))
#define ENTRY(h, value) (SHORTSTR(strlen(HNAMES[h])) + 1 + (value))

static size_t opt_len(const char *s)
{
    return s ? strlen(s) : 0;
}

size_t envelope_amqp_size(const struct envelope *e)
{
    /* flags, message_id, priority, timestamp, delivery_mode, app_id, the
     * headers table's length, content_type */
    size_t n = 2 + SHORTSTR(ID_LEN) + 1 + 8 + 1 + SHORTSTR(strlen("sluice")) + 4 +
               (e->content_type ? SHORTSTR(strlen(e->content_type)) : 0);
    n += ENTRY(H_ROUTE, LONGSTR(opt_len(e->route))) + ENTRY(H_METHOD, LONGSTR(opt_len(e->method))) +
         ENTRY(H_PATH, LONGSTR(opt_len(e->path))) + ENTRY(H_TENANT, LONGSTR(opt_len(e->tenant)));
    if (e->query) n += ENTRY(H_QUERY, LONGSTR(strlen(e->query)));
    if (e->idempotency_key) n += ENTRY(H_IDEM, LONGSTR(strlen(e->idempotency_key)));
    if (e->callback_url) n += ENTRY(H_CALLBACK, LONGSTR(strlen(e->callback_url)));
    n +=
        ENTRY(H_ATTEMPTS, 4) + ENTRY(H_CREATED, 8) + ENTRY(H_TIMEOUT, 8) + ENTRY(H_MAX_ATTEMPTS, 4);
    n += ENTRY(H_REPLAYS, 4) + ENTRY(H_DELIVERIES, 4);
    if (e->n_headers > 0) n += ENTRY(H_HEADERS, 4);
    for (size_t i = 0; i < e->n_headers; i++)
        n += SHORTSTR(strlen(e->headers[i].name)) + 1 + LONGSTR(strlen(e->headers[i].value));
    return n;
}

/* field_int reads any integer kind, since the broker or a shovel may
 * re-encode what we sent; *out keeps its default when the header is absent. */
static int field_int(struct pctx *c, const amqp_field_value_t *v, int h, int64_t lo, int64_t hi,
                     int64_t *out)
{
    int64_t x = 0;
    if (!v) return 0;
    switch (v->kind) {
    case AMQP_FIELD_KIND_I8:
        x = v->value.i8;
        break;
    case AMQP_FIELD_KIND_U8:
        x = v->value.u8;
        break;
    case AMQP_FIELD_KIND_I16:
        x = v->value.i16;
        break;
    case AMQP_FIELD_KIND_U16:
        x = v->value.u16;
        break;
    case AMQP_FIELD_KIND_I32:
        x = v->value.i32;
        break;
    case AMQP_FIELD_KIND_U32:
        x = v->value.u32;
        break;
    case AMQP_FIELD_KIND_I64:
        x = v->value.i64;
        break;
    case AMQP_FIELD_KIND_U64:
        if (v->value.u64 > INT64_MAX) return env_fail(c, "%s: out of range", HNAMES[h]);
        x = (int64_t)v->value.u64;
        break;
    default:
        return env_fail(c, "%s: must be an integer", HNAMES[h]);
    }
    if (x < lo || x > hi) return env_fail(c, "%s: out of range", HNAMES[h]);
    *out = x;
    return 0;
}

static bool field_is_text(const amqp_field_value_t *v)
{
    return v->kind == AMQP_FIELD_KIND_UTF8 || v->kind == AMQP_FIELD_KIND_BYTES;
}

static int amqp_strings(struct pctx *c, const amqp_field_value_t *const *f)
{
    static const struct {
        int h;
        bool required;
        set_fn set;
    } fields[] = {
        {H_ROUTE, true, env_set_route},        {H_METHOD, true, env_set_method},
        {H_PATH, true, env_set_path},          {H_QUERY, false, env_set_query},
        {H_TENANT, true, env_set_tenant},      {H_IDEM, false, env_set_idem},
        {H_CALLBACK, false, env_set_callback},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const amqp_field_value_t *v = f[fields[i].h];
        const char *name = HNAMES[fields[i].h];
        if (!v && fields[i].required) return env_fail(c, "%s: missing header", name);
        if (v && !field_is_text(v)) return env_fail(c, "%s: must be a string", name);
        if (v && fields[i].set(c, name, v->value.bytes.bytes, v->value.bytes.len) < 0) return -1;
    }
    return 0;
}

static int amqp_numbers(struct pctx *c, const amqp_field_value_t *const *f, int64_t created)
{
    struct envelope *e = c->e;
    int64_t attempts = 0, timeout = 0, max = 0, replays = 0, deliveries = 0;

    if (field_int(c, f[H_ATTEMPTS], H_ATTEMPTS, 0, INT_MAX, &attempts) < 0 ||
        field_int(c, f[H_REPLAYS], H_REPLAYS, 0, ENV_MAX_REPLAYS, &replays) < 0 ||
        field_int(c, f[H_DELIVERIES], H_DELIVERIES, 0, INT_MAX, &deliveries) < 0 ||
        field_int(c, f[H_CREATED], H_CREATED, INT64_MIN, INT64_MAX, &created) < 0 ||
        field_int(c, f[H_TIMEOUT], H_TIMEOUT, 0, TIMEOUT_MS_MAX, &timeout) < 0 ||
        field_int(c, f[H_MAX_ATTEMPTS], H_MAX_ATTEMPTS, 0, MAX_ATTEMPTS_MAX, &max) < 0)
        return -1;
    e->attempts = (int)attempts;
    e->created_ms = created;
    e->timeout_ms = (long)timeout;
    e->max_attempts = (int)max;
    e->replays = (int)replays;
    e->deliveries = (int)deliveries;
    return 0;
}

static int amqp_headers(struct pctx *c, const amqp_field_value_t *v)
{
    if (!v) return 0;
    if (v->kind != AMQP_FIELD_KIND_TABLE)
        return env_fail(c, "%s: must be a table", HNAMES[H_HEADERS]);
    for (int i = 0; i < v->value.table.num_entries; i++) {
        const amqp_table_entry_t *en = &v->value.table.entries[i];
        if (!field_is_text(&en->value))
            return env_fail(c, "%s: values must be strings", HNAMES[H_HEADERS]);
        if (env_add_header(c, en->key.bytes, en->key.len, en->value.value.bytes.bytes,
                           en->value.value.bytes.len) < 0)
            return -1;
    }
    return 0;
}

/* find_headers indexes the sluice headers; others (x-death, ...) are
 * ignored because the broker adds them. */
static void find_headers(const amqp_table_t *t, const amqp_field_value_t **f)
{
    for (int i = 0; i < t->num_entries; i++) {
        const amqp_bytes_t *key = &t->entries[i].key;
        for (int h = 0; h < H_COUNT; h++)
            if (key->len == strlen(HNAMES[h]) && memcmp(key->bytes, HNAMES[h], key->len) == 0)
                f[h] = &t->entries[i].value;
    }
}

/* amqp_fill reads everything but the ID. Without x-sluice-created, the
 * second-resolution timestamp property is the best creation time left. */
static int amqp_fill(struct pctx *c, const amqp_basic_properties_t *props, amqp_bytes_t body)
{
    const amqp_field_value_t *f[H_COUNT] = {0};
    bool has_ts =
        (props->_flags & AMQP_BASIC_TIMESTAMP_FLAG) && props->timestamp <= INT64_MAX / 1000;
    int64_t created = has_ts ? (int64_t)props->timestamp * 1000 : 0;

    if (props->_flags & AMQP_BASIC_HEADERS_FLAG) find_headers(&props->headers, f);
    if (amqp_strings(c, f) < 0 || amqp_numbers(c, f, created) < 0 ||
        amqp_headers(c, f[H_HEADERS]) < 0)
        return -1;
    if ((props->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG) &&
        env_set_content_type(c, "content_type", props->content_type.bytes,
                             props->content_type.len) < 0)
        return -1;
    if (props->_flags & AMQP_BASIC_PRIORITY_FLAG)
        c->e->priority = props->priority > 9 ? 9 : props->priority;
    return env_set_body(c, body.bytes, body.len);
}

int envelope_from_amqp(struct envelope *e, const amqp_basic_properties_t *props, amqp_bytes_t body,
                       struct env_error *err)
{
    struct envelope tmp;
    struct pctx c = {&tmp, err, 0, "invalid_message"};
    const amqp_bytes_t *mid = &props->message_id;
    int rc = -1;

    envelope_init(&tmp);
    if (!(props->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) || mid->len != ID_LEN ||
        !id_valid(mid->bytes, mid->len)) {
        env_fail(&c, "message_id: missing or not a sluice ID");
        goto out;
    }
    memcpy(tmp.id, mid->bytes, ID_LEN);
    if (amqp_fill(&c, props, body) < 0) goto out;
    envelope_free(e);
    *e = tmp;
    envelope_init(&tmp);
    rc = 0;
out:
    envelope_free(&tmp);
    return rc;
}
