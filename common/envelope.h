/* envelope.h: the request envelope, the unit sluice queues. It is built from
 * the JSON form (POST /v1/requests) or the transparent form (/v1/routes/...),
 * travels as one AMQP message whose body is the backend body verbatim (no
 * base64) and whose headers carry the rest, and is rebuilt from that message
 * by the worker. All strings are owned by the envelope. */
#ifndef SLUICE_ENVELOPE_H
#define SLUICE_ENVELOPE_H

#include <amqp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "id.h"

#define ENV_MAX_HEADERS 64
#define ENV_MAX_HEADER_NAME 256
#define ENV_MAX_HEADER_VALUE 8192
#define ENV_MAX_PATH 8192
#define ENV_PRIORITY_DEFAULT 5 /* "normal"; "high" is 9, "low" is 1 */

struct env_header {
    char *name;
    char *value;
};

struct envelope {
    char id[ID_LEN + 1];
    char *route;
    char *method; /* upper-case token, default "POST" */
    char *path;   /* starts with '/', default "/" */
    char *query;  /* without '?', NULL if none */
    struct env_header *headers;
    size_t n_headers;
    char *content_type; /* NULL if none */
    unsigned char *body;
    size_t body_len;
    int priority;          /* 0..9 */
    char *idempotency_key; /* NULL if none */
    long timeout_ms;       /* 0 = the route's */
    int max_attempts;      /* 0 = the route's */
    char *tenant;
    int attempts; /* backend calls already made */
    int64_t created_ms;
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

/* envelope_from_json fills e from a POST /v1/requests body. Returns 0, or -1
 * with err set (400 invalid_json for unparsable input, 400 invalid_request for
 * a well-formed document that breaks the schema). id/tenant/created_ms are not
 * touched. */
__attribute__((warn_unused_result)) int envelope_from_json(struct envelope *e, const char *json,
                                                           size_t len, struct env_error *err);
/* envelope_parse_priority maps "0".."9", "high", "normal", "low" (s is len
 * bytes) to 0..9; returns -1 if invalid. */
int envelope_parse_priority(const char *s, size_t len);
/* envelope_header_forwarded tells whether a client header may travel to the
 * backend (hop-by-hop, auth and gateway headers never do). */
bool envelope_header_forwarded(const char *name);
/* envelope_add_header appends a header copy; -1 with err past the limits. */
__attribute__((warn_unused_result)) int
envelope_add_header(struct envelope *e, const char *name, const char *value, struct env_error *err);

/* envelope_to_amqp fills props (headers table, priority, message_id,
 * timestamp, content_type, delivery_mode 2) with memory from pool; the props
 * point into e and pool, so both must outlive the publish. Returns 0 or -ENOMEM. */
__attribute__((warn_unused_result)) int
envelope_to_amqp(const struct envelope *e, amqp_pool_t *pool, amqp_basic_properties_t *props);
/* envelope_from_amqp rebuilds e from a delivered message (copies everything).
 * Returns 0, or -1 with err when the message is not a sluice envelope. */
__attribute__((warn_unused_result)) int envelope_from_amqp(struct envelope *e,
                                                           const amqp_basic_properties_t *props,
                                                           amqp_bytes_t body,
                                                           struct env_error *err);

#endif
