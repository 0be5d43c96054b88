/* envelope_parse.h: what envelope.c shares with the builder of both
 * submission forms (envelope_request.c, which envelope_json.c feeds) and the
 * AMQP decoder (envelope_amqp.c). Internal to libsluice: the public interface
 * is envelope.h. Each builds into a scratch envelope and only replaces the
 * caller's on success, so a refused input never leaves a half-filled envelope
 * behind. */
#ifndef SLUICE_ENVELOPE_PARSE_H
#define SLUICE_ENVELOPE_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#include "envelope.h"

#define TIMEOUT_MS_MAX 600000
#define MAX_ATTEMPTS_MAX 100
#define PRIORITY_RULE "must be 0..9 or high, normal, low"

/* pctx is one parse in progress. status and code say how failures are
 * reported: 400 invalid_request for clients, invalid_message for deliveries. */
struct pctx {
    struct envelope *e;
    struct env_error *err;
    int status;
    const char *code;
};

typedef int (*set_fn)(struct pctx *c, const char *field, const char *s, size_t n);

/* env_fail records a refusal in c->err (status and code from c) and returns -1. */
__attribute__((format(printf, 2, 3))) int env_fail(struct pctx *c, const char *fmt, ...);
/* env_oom records an out-of-memory failure (500 internal_error) and returns -1. */
int env_oom(struct pctx *c);
/* env_header_forwarded is envelope_header_forwarded for a name of n bytes. */
bool env_header_forwarded(const char *name, size_t n);

/* The setters check one field and store a copy in c->e; -1 (recorded) if refused. */
int env_set_route(struct pctx *c, const char *field, const char *s, size_t n);
int env_set_method(struct pctx *c, const char *field, const char *s, size_t n);
int env_set_path(struct pctx *c, const char *field, const char *s, size_t n);
int env_set_query(struct pctx *c, const char *field, const char *s, size_t n);
int env_set_tenant(struct pctx *c, const char *field, const char *s, size_t n);
int env_set_idem(struct pctx *c, const char *field, const char *s, size_t n);
int env_set_callback(struct pctx *c, const char *field, const char *s, size_t n);
int env_set_content_type(struct pctx *c, const char *field, const char *s, size_t n);
int env_set_priority(struct pctx *c, const char *field, const char *s, size_t n);
int env_set_body(struct pctx *c, const void *p, size_t n);
int env_add_header(struct pctx *c, const char *name, size_t nlen, const char *value, size_t vlen);

/* env_base64_decode decodes s (n chars, either alphabet) into a malloc'd
 * buffer with a NUL after its *outlen bytes. Returns NULL with *problem set
 * for bad input, or NULL with *problem NULL when out of memory. */
unsigned char *env_base64_decode(const char *s, size_t n, size_t *outlen, const char **problem);

#endif
