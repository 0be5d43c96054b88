/* envelope_parse.h: what envelope.c shares with its two decoders,
 * envelope_json.c and envelope_amqp.c. Internal to libsluice: the public
 * interface is envelope.h. Each decoder builds into a scratch envelope and
 * only replaces the caller's on success, so a refused input never leaves a
 * half-filled envelope behind. */
#ifndef SLUICE_ENVELOPE_PARSE_H
#define SLUICE_ENVELOPE_PARSE_H

#include <stddef.h>

#include "envelope.h"

#define TIMEOUT_MS_MAX 600000
#define MAX_ATTEMPTS_MAX 100

/* pctx is one parse in progress. status and code say how failures are
 * reported: 400 invalid_request for clients, invalid_message for deliveries. */
struct pctx {
    struct envelope *e;
    struct env_error *err;
    int status;
    const char *code;
    const char *ctype_default; /* set once a body field was seen */
};

typedef int (*set_fn)(struct pctx *c, const char *field, const char *s, size_t n);

/* env_fail records a refusal in c->err (status and code from c) and returns -1. */
__attribute__((format(printf, 2, 3))) int env_fail(struct pctx *c, const char *fmt, ...);
/* env_oom records an out-of-memory failure (500 internal_error) and returns -1. */
int env_oom(struct pctx *c);
/* env_check_header_value returns why a header value is refused, or NULL. */
const char *env_check_header_value(const char *s, size_t n);

/* The setters check one field and store a copy in c->e; -1 (recorded) if refused. */
int env_set_str(struct pctx *c, const char *field, char **dst, const char *s, size_t n,
                const char *(*check)(const char *, size_t));
int env_set_route(struct pctx *c, const char *field, const char *s, size_t n);
int env_set_method(struct pctx *c, const char *field, const char *s, size_t n);
int env_set_path(struct pctx *c, const char *field, const char *s, size_t n);
int env_set_query(struct pctx *c, const char *field, const char *s, size_t n);
int env_set_tenant(struct pctx *c, const char *field, const char *s, size_t n);
int env_set_idem(struct pctx *c, const char *field, const char *s, size_t n);
int env_set_body(struct pctx *c, const void *p, size_t n);
int env_begin_body(struct pctx *c, const char *field, const char *ctype_default);
int env_set_body_text(struct pctx *c, const char *field, const char *s, size_t n);
int env_set_body_base64(struct pctx *c, const char *field, const char *s, size_t n);
int env_add_header(struct pctx *c, const char *name, size_t nlen, const char *value, size_t vlen);

#endif
