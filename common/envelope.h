/* envelope.h: the request envelope, the unit sluice queues. Both submission
 * forms build it with one builder, envelope_from_request: the transparent form
 * (/v1/routes/...) from the HTTP request itself, the JSON form (POST
 * /v1/requests) through envelope_from_json, which reads its document into the
 * same request. It travels as one AMQP message whose body is the backend body
 * verbatim (no base64) and whose headers carry the rest, and is rebuilt from
 * that message by the worker (envelope_from_amqp). The builder and the AMQP
 * decoder check every field with the same rules (envelope.c), so whatever the
 * ingress accepts a worker can decode. All strings are owned by the envelope. */
#ifndef SLUICE_ENVELOPE_H
#define SLUICE_ENVELOPE_H

#include <amqp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "id.h"
#include "mq.h"

/* The limits every form and the AMQP decoder share. */
#define ENV_MAX_METHOD 32 /* an HTTP method is a token (RFC 9110) of up to 32 characters */
#define ENV_MAX_HEADERS 64
#define ENV_MAX_HEADER_NAME 255  /* an AMQP table key is a short string (at most 255 bytes) */
#define ENV_MAX_CONTENT_TYPE 255 /* so is the content_type property */
#define ENV_MAX_HEADER_VALUE 8192
#define ENV_MAX_PATH 8192 /* also the query's */
/* A message's properties (every field but the body) travel in one content
 * header frame, at most the frame size sluice negotiates (common/mq.c), less
 * room for the frame's own bytes and the x-death headers the broker adds
 * when a message comes back from a retry queue. */
#define ENV_MAX_PROPERTIES (MQ_FRAME_MAX - 4096)
#define ENV_MAX_REPLAYS 32767  /* EVENT_MAX_REPLAYS */
#define ENV_PRIORITY_DEFAULT 5 /* "normal"; "high" is 9, "low" is 1 */

struct env_header {
    char *name;
    char *value;
};

struct envelope {
    char id[ID_LEN + 1];
    char *route;
    char *method; /* an HTTP token, upper-cased, default "POST" */
    char *path;   /* starts with '/', default "/" */
    char *query;  /* without '?', NULL if none */
    struct env_header *headers;
    size_t n_headers;
    char *content_type; /* NULL if none */
    unsigned char *body;
    size_t body_len;
    int priority;          /* 0..9 */
    char *idempotency_key; /* NULL if none */
    /* NULL, or where the final status document is POSTed (an absolute
     * http(s) URL of at most 2048 printable characters; whether its host is
     * allowed is the ingress's check against the route's callback_hosts). */
    char *callback_url;
    long timeout_ms;  /* 0 = the route's */
    int max_attempts; /* 0 = the route's */
    char *tenant;
    int attempts; /* backend calls already made */
    int replays;  /* times replayed from the dead letters (x-sluice-replays) */
    /* deliveries counts the times a worker took it and lost it (redelivered
     * by the broker), as workers count them (x-sluice-deliveries). */
    int deliveries;
    int64_t created_ms;
    /* The ingress's notes for the "queued" event, never sent to a worker:
     * the idempotency fingerprint and the cache key, "" when none. */
    char fingerprint[33];
    char cache_key[33];
};

/* A validation failure: the HTTP status (400, ...), the API error code and a
 * message for the client. */
struct env_error {
    int status;
    const char *code;
    char message[256];
};

void envelope_init(struct envelope *e);
void envelope_free(struct envelope *e);

/* env_header_fn receives one header (name and value are nlen and vlen bytes,
 * not NUL-terminated); a non-zero return stops the walk. */
typedef int (*env_header_fn)(void *ctx, const char *name, size_t nlen, const char *value,
                             size_t vlen);
/* env_walk_fn calls fn(ctx, ...) for every header of src in order, and
 * returns the first non-zero value fn returned, or 0. */
typedef int (*env_walk_fn)(const void *src, env_header_fn fn, void *ctx);

/* The two submission forms differ in how fields are named in error messages
 * (the JSON field, or the HTTP header that carried it) and in what becomes of
 * a header that may not be forwarded (envelope_header_forwarded): the
 * envelope form names it, so it is refused; the transparent form's request
 * necessarily carries some (Authorization, Host), so they are left out. */
enum env_form {
    ENV_FORM_ENVELOPE,
    ENV_FORM_TRANSPARENT,
};

/* env_text is borrowed text of n bytes, not NUL-terminated; s NULL: absent. */
struct env_text {
    const char *s;
    size_t n;
};

/* env_request is what a client asked for, before any check. */
struct env_request {
    enum env_form form;
    struct env_text route;           /* required */
    struct env_text method;          /* absent: POST */
    struct env_text path;            /* absent: "/" */
    struct env_text query;           /* without '?' (one leading '?' is dropped) */
    struct env_text content_type;    /* also taken from no header: headers named so are skipped */
    struct env_text idempotency_key; /* 1..255 printable ASCII */
    struct env_text priority;        /* "0".."9", "high", "normal", "low" */
    struct env_text callback_url;    /* absent: no callback */
    long timeout_ms;                 /* 0: the route's; else 1..600000 (checked by the JSON form) */
    int max_attempts;                /* 0: the route's; else 1..100 (checked by the JSON form) */
    env_walk_fn walk_headers;        /* NULL: no headers */
    const void *headers;             /* what walk_headers walks */
    char *body; /* malloc'd with a NUL after body_len bytes, or NULL; always taken */
    size_t body_len;
    const char *body_type; /* the content type when none is given (NULL: none) */
};

/* envelope_from_request checks every field of rq and, on success, replaces
 * e's request fields with them; e's id, tenant, created_ms and attempts are
 * kept (the tenant counts towards the message's size). rq->body is taken
 * either way (the envelope's on success, freed on failure) and rq->body set
 * to NULL. Returns 0, or -1 with err (400 invalid_request naming the field as
 * the form calls it; 500 on out of memory) and e untouched. */
__attribute__((warn_unused_result)) int
envelope_from_request(struct envelope *e, struct env_request *rq, struct env_error *err);
/* envelope_from_json fills e from a POST /v1/requests body, through
 * envelope_from_request. Returns 0, or -1 with err set (400 invalid_json for
 * unparsable input, 400 invalid_request for a well-formed document that
 * breaks the schema). id/tenant/created_ms are not touched. */
__attribute__((warn_unused_result)) int envelope_from_json(struct envelope *e, const char *json,
                                                           size_t len, struct env_error *err);
/* envelope_idempotency_header takes the Idempotency-Key header (s, n bytes)
 * of an envelope-form submission: e's key when the document named none, or
 * the same key. Returns 0, or -1 with err (400 invalid_request: a bad key,
 * or one that differs from the document's). */
__attribute__((warn_unused_result)) int
envelope_idempotency_header(struct envelope *e, const char *s, size_t n, struct env_error *err);
/* envelope_trace_headers adds the W3C trace context an envelope-form
 * submission carried as HTTP headers (traceparent, tracestate; NULL: none)
 * to e's headers, unless the document's headers name one already; an
 * invalid or oversized one is left out (trace context is advice). Returns 0,
 * or -ENOMEM. */
__attribute__((warn_unused_result)) int
envelope_trace_headers(struct envelope *e, const char *traceparent, const char *tracestate);
/* envelope_parse_priority maps "0".."9", "high", "normal", "low" (s is len
 * bytes) to 0..9; returns -1 if invalid. */
int envelope_parse_priority(const char *s, size_t len);
/* envelope_header_forwarded tells whether a client header may travel to the
 * backend (hop-by-hop, auth and gateway headers never do). */
bool envelope_header_forwarded(const char *name);

/* envelope_to_amqp fills props (headers table, priority, message_id,
 * timestamp, content_type, delivery_mode 2) with memory from pool; the props
 * point into e and pool, so both must outlive the publish. Returns 0 or -ENOMEM. */
__attribute__((warn_unused_result)) int
envelope_to_amqp(const struct envelope *e, amqp_pool_t *pool, amqp_basic_properties_t *props);
/* envelope_amqp_size is the size of e's properties as envelope_to_amqp
 * encodes them, counting the optional numbers as present. */
size_t envelope_amqp_size(const struct envelope *e);
/* envelope_from_amqp rebuilds e from a delivered message (copies everything).
 * Returns 0, or -1 with err when the message is not a sluice envelope. */
__attribute__((warn_unused_result)) int envelope_from_amqp(struct envelope *e,
                                                           const amqp_basic_properties_t *props,
                                                           amqp_bytes_t body,
                                                           struct env_error *err);

#endif
