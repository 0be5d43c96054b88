/* http.h: one HTTP exchange of the sluice command-line client, through a
 * libcurl easy handle. The caller describes the call; the answer comes back
 * with its status, body and the few headers the client reads. */
#ifndef SLUICE_CLI_HTTP_H
#define SLUICE_CLI_HTTP_H

#include <curl/curl.h>
#include <stddef.h>

#include "buf.h"

#define HTTP_MAX_ANSWER ((size_t)256 << 20)
#define HTTP_CONNECT_TIMEOUT_MS 10000L

/* Results of http_call besides 0 (an answer arrived, whatever its status). */
enum {
    HTTP_ERR_TRANSPORT = -1, /* no answer: refused, reset, timed out, DNS... (see err) */
    HTTP_ERR_URL = -2,       /* the URL is malformed or of an unsupported scheme */
    HTTP_ERR_NOMEM = -3,
};

struct http_call {
    const char *method;             /* "GET", "POST", any token */
    const char *url;                /* complete URL */
    const char *token;              /* bearer token; NULL or "" sends none */
    const char *cacert;             /* CA file verifying https://; NULL: the system's */
    const struct curl_slist *extra; /* more "Name: value" headers; may be NULL */
    const char *body;               /* NULL: no body */
    size_t len;
    long timeout_ms; /* whole exchange */
};

struct http_answer {
    long status;        /* 0 when there was no answer */
    struct buf body;    /* the answer's body; read it with http_body */
    char location[512]; /* "" when absent */
    long retry_after_s; /* -1 when absent or not a number of seconds */
    char err[CURL_ERROR_SIZE];
};

void http_answer_init(struct http_answer *a);
/* http_body is the answer's body as a string ("" when there was none). */
static inline const char *http_body(const struct http_answer *a)
{
    return a->body.data ? a->body.data : "";
}
void http_answer_free(struct http_answer *a);
/* http_call performs c and fills a (which must be initialised, and is reset
 * first). Returns 0 when the server answered, or an HTTP_ERR_* code with a
 * reason in a->err. When c has a body and no Content-Type among its extra
 * headers, none is sent (libcurl would otherwise invent one). */
__attribute__((warn_unused_result)) int http_call(const struct http_call *c, struct http_answer *a);

#endif
