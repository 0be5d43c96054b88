/* http.h: the ingress's HTTP server, on libmicrohttpd's internal epoll thread
 * pool: the layer above the handlers (handlers.h) and the only one that knows
 * libmicrohttpd. It keeps each request's target as sent, reads its body
 * within max_body_bytes, lets the handlers classify and answer it, holds the
 * connection (suspended) while an answer is pending, and sends the answer. */
#ifndef SLUICE_HTTP_H
#define SLUICE_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "app.h"

struct http_server;

/* http_start listens on app->cfg.ingress.listen. NULL with err on failure. */
struct http_server *http_start(struct app *app, char *err, size_t errlen);
/* http_port is the bound port (useful when the configured port is 0). */
uint16_t http_port(struct http_server *s);
/* http_quiesce stops accepting new connections; requests in progress go on. */
void http_quiesce(struct http_server *s);
/* http_stop closes every connection and frees. Call publisher_drain first so
 * no connection is still suspended. */
void http_stop(struct http_server *s);

#endif
