/* handlers.h: the ingress's endpoints, below the HTTP layer. http.c, the
 * only file that knows libmicrohttpd, turns each request into a struct
 * request and calls, in this order:
 *
 *   handle_begin  once the headers are in: finds the endpoint, authenticates
 *                 the key (auth.h) and checks what can be checked before the
 *                 body (the route of a transparent request, the declared
 *                 length, the media type);
 *   handle        once the body is read (within max_body_bytes);
 *   handle_end    on every answer just before it is sent, whoever made it
 *                 (adds the CORS headers).
 *
 * Each returns the answer to send, or, for a submission, "pending": the
 * handler has called r->io->suspend and handed the envelope to the
 * publisher, and calls r->io->resume (from a publisher thread) once
 * r->answer holds the 202 or the 503. Handlers never block. */
#ifndef SLUICE_HANDLERS_H
#define SLUICE_HANDLERS_H

#include <stdbool.h>
#include <stddef.h>

#include "answer.h"
#include "app.h"
#include "auth.h"
#include "buf.h"
#include "envelope.h"
#include "id.h"

struct request;

/* What the HTTP layer offers handlers, as functions, so that handlers need
 * not know the server. */
struct request_io {
    /* header returns the value of the first header called name (any case), or NULL. */
    const char *(*header)(const struct request *r, const char *name);
    /* walk_headers walks every header of the request (src is the request). */
    env_walk_fn walk_headers;
    /* suspend holds the connection open without an answer, until resume;
     * resume may be called from any thread, once, after r->answer is set. */
    void (*suspend)(struct request *r);
    void (*resume)(struct request *r);
};

struct endpoint; /* handlers.c's table entry */

/* One request, as the HTTP layer parsed it. The HTTP layer owns it and
 * everything in it, and frees it once the request is answered. */
struct request {
    /* Set by the HTTP layer before handle_begin. */
    struct app *app;
    const struct request_io *io;
    const char *method;
    const char *target; /* the raw request target, path and query, as sent */
    size_t path_len;    /* bytes of target before '?' */
    /* Read by the HTTP layer before handle: a request body is kept in full
     * up to max_body_bytes, past which the rest is counted and dropped. */
    struct buf body;
    bool body_too_large;
    /* Set by handle_begin. */
    const struct endpoint *ep;
    struct principal who;          /* who sent a /v1 or edge request (auth.h) */
    const struct cfg_route *route; /* a transparent request's route */
    const char *rest;              /* in target: the backend path or the status id */
    size_t rest_len;
    /* A pending answer, set before r->io->resume. */
    struct answer answer;
    char id[ID_LEN + 1]; /* a submission's tracking ID, once it has one */
};

/* handle_begin classifies r and checks what precedes the body. Returns 0 to
 * go on reading the body, or -1 with a, a refusal to send now. */
__attribute__((warn_unused_result)) int handle_begin(struct request *r, struct answer *a);
/* handle_end completes a, the answer about to be sent for r. */
void handle_end(struct request *r, struct answer *a);
/* handle answers r once its body is read: false with a, the answer to send
 * now, or true when the answer is pending (see the top of this file). */
__attribute__((warn_unused_result)) bool handle(struct request *r, struct answer *a);

#endif
