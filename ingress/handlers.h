/* handlers.h: what each ingress endpoint answers. http.c classifies the
 * request, checks the key and reads the body; these functions decide the
 * answer. They never block: a submission is handed to the publisher and
 * answered when its confirm arrives. */
#ifndef SLUICE_HANDLERS_H
#define SLUICE_HANDLERS_H

#include <microhttpd.h>
#include <stdbool.h>

#include "app.h"
#include "buf.h"
#include "id.h"

enum endpoint {
    EP_HEALTHZ,
    EP_READYZ,
    EP_METRICS,
    EP_SUBMIT,
    EP_ROUTE,
    EP_STATUS,
    EP_ADMIN_PAGE,    /* GET /: the status page */
    EP_ADMIN_SUMMARY, /* GET /admin/summary: its data */
};

/* One HTTP request in progress; http.c owns it (created by the URI callback,
 * freed when libmicrohttpd reports the request completed). */
struct request {
    struct app *app;
    struct MHD_Connection *conn;
    char *uri;       /* raw request target, owned */
    size_t path_len; /* bytes of uri before '?' */
    const char *method;
    enum endpoint ep;
    const struct cfg_key *key;
    const struct cfg_route *route; /* EP_ROUTE */
    const char *rest;              /* EP_ROUTE: backend path inside uri; EP_STATUS: the id */
    size_t rest_len;
    struct buf body;
    bool started;
    bool too_large;
    size_t discarded;
    bool waiting;   /* suspended until the publisher answers */
    int pub_status; /* the publisher's answer: 202 or 503 */
    char id[ID_LEN + 1];
};

/* An answer to send: the body is malloc'd and handed to libmicrohttpd. */
struct answer {
    int status;
    char *body;
    size_t len;
    const char *content_type;
    const char *header_name; /* one extra header (Location, Retry-After) or NULL */
    char header_value[256];
};

/* answer_error fills a with the API's JSON error document. */
void answer_error(struct answer *a, int status, const char *code, const char *message);

/* handle_get answers the body-less endpoints: health, readiness, metrics,
 * status, and the status page with its summary. */
void handle_get(struct request *r, struct answer *a);
/* handle_submit validates a complete submission and hands it to the publisher.
 * Returns true when the connection must be suspended (the answer comes from
 * handle_published later), false when a is the answer now. */
bool handle_submit(struct request *r, struct answer *a);
/* handle_published turns the publisher's verdict into the 202 or 503 answer. */
void handle_published(struct request *r, struct answer *a);

#endif
