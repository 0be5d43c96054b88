/* http.c: libmicrohttpd plumbing of the ingress (see http.h): classifying
 * requests, authenticating, reading bodies within the cap, and sending the
 * answers handlers.c decides. */
#include "http.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "daemon.h"
#include "handlers.h"
#include "log.h"

/* A client that keeps sending past the cap is cut off after this many times
 * the cap: enough to answer an honest oversized upload with a 413, not enough
 * to let anyone stream forever. */
#define DISCARD_FACTOR 4

/* libmicrohttpd clears a connection's memory pool for every request, so the
 * pool is sized for headers (up to 32 KiB, like nginx), not for bodies, which
 * live in the request's own buffer. */
#define HTTP_CONNECTION_MEMORY ((size_t)32 * 1024)

struct http_server {
    struct MHD_Daemon *daemon;
    struct app *app;
    MHD_socket quiesced; /* the listening socket after http_quiesce, ours to close */
};

static enum MHD_Result send_answer(struct request *r, struct answer *a)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(a->len, a->body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(a->body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, a->content_type);
    if (a->header_name) MHD_add_response_header(resp, a->header_name, a->header_value);
    enum MHD_Result rc = MHD_queue_response(r->conn, (unsigned)a->status, resp);
    MHD_destroy_response(resp);
    app_count_response(r->app, a->status);
    return rc;
}

static enum MHD_Result send_error(struct request *r, int status, const char *code,
                                  const char *message)
{
    struct answer a = {0};
    answer_error(&a, status, code, message);
    return send_answer(r, &a);
}

static bool path_is(const struct request *r, const char *p)
{
    return r->path_len == strlen(p) && memcmp(r->uri, p, r->path_len) == 0;
}

static bool path_has_prefix(const struct request *r, const char *p)
{
    size_t n = strlen(p);
    return r->path_len >= n && memcmp(r->uri, p, n) == 0;
}

static const struct cfg_key *authenticate(struct request *r)
{
    const char *auth = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) return NULL;
    const char *token = auth + 7;
    while (*token == ' ')
        token++;
    return cfg_key_for_token(&r->app->cfg, token, strlen(token));
}

/* classify_v1 sorts out the /v1 endpoints; returns 0 or queues an error answer. */
static int classify_v1(struct request *r, enum MHD_Result *res)
{
    bool is_get = strcmp(r->method, "GET") == 0;
    static const char routes[] = "/v1/routes/", requests[] = "/v1/requests/";
    if (path_is(r, "/v1/requests")) {
        if (strcmp(r->method, "POST") != 0) goto not_allowed;
        r->ep = EP_SUBMIT;
    } else if (path_has_prefix(r, requests)) {
        if (!is_get) goto not_allowed;
        r->ep = EP_STATUS;
        r->rest = r->uri + sizeof(requests) - 1;
        r->rest_len = r->path_len - (sizeof(requests) - 1);
    } else if (path_has_prefix(r, routes)) {
        const char *name = r->uri + sizeof(routes) - 1, *end = r->uri + r->path_len;
        const char *slash = memchr(name, '/', (size_t)(end - name));
        r->ep = EP_ROUTE;
        r->route = cfg_route_find(&r->app->cfg, name, (size_t)((slash ? slash : end) - name));
        r->rest = slash;
        r->rest_len = slash ? (size_t)(end - slash) : 0;
        if (!r->route) {
            *res = send_error(r, 404, "unknown_route", "no route with this name");
            return -1;
        }
        if (!cfg_key_allows_route(r->key, r->route->name)) {
            *res = send_error(r, 403, "route_forbidden", "this key may not use this route");
            return -1;
        }
    } else {
        *res = send_error(r, 404, "not_found", "no such endpoint");
        return -1;
    }
    return 0;
not_allowed:
    *res = send_error(r, 405, "method_not_allowed", "this endpoint does not take this method");
    return -1;
}

/* classify_admin sorts out the status page and its API; returns 0, 1 when
 * the path is not theirs, or -1 after queueing an error answer. Without an
 * admin_token neither exists, so they answer 404 like any unknown path. */
static int classify_admin(struct request *r, enum MHD_Result *res)
{
    if (!admin_enabled(&r->app->cfg)) return 1;
    if (path_is(r, "/")) {
        r->ep = EP_ADMIN_PAGE;
        return 0;
    }
    if (!path_is(r, "/admin/summary")) return 1;
    const char *auth = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
    if (!admin_authorized(&r->app->cfg, auth)) {
        *res = send_error(r, 401, "unauthorized", "missing or wrong admin token");
        return -1;
    }
    r->ep = EP_ADMIN_SUMMARY;
    return 0;
}

/* classify finds the endpoint and checks what can be checked before the body
 * arrives: the key, the route, the declared size and media type. */
static int classify(struct request *r, enum MHD_Result *res)
{
    if (!path_has_prefix(r, "/v1/")) {
        int rc;
        if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0) {
            *res = send_error(r, 405, "method_not_allowed", "use GET");
            return -1;
        }
        if (path_is(r, "/healthz"))
            r->ep = EP_HEALTHZ;
        else if (path_is(r, "/readyz"))
            r->ep = EP_READYZ;
        else if (path_is(r, "/metrics"))
            r->ep = EP_METRICS;
        else if ((rc = classify_admin(r, res)) <= 0)
            return rc;
        else {
            *res = send_error(r, 404, "not_found", "no such endpoint");
            return -1;
        }
        return 0;
    }
    r->key = authenticate(r);
    if (!r->key) {
        *res = send_error(r, 401, "unauthorized", "missing or unknown bearer token");
        return -1;
    }
    if (classify_v1(r, res) < 0) return -1;
    const char *len = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Length");
    if (len) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(len, &end, 10);
        if (errno || *end || n > (unsigned long long)r->app->cfg.ingress.max_body_bytes) {
            *res = send_error(r, 413, "body_too_large", "the body is larger than max_body_bytes");
            return -1;
        }
    }
    const char *ctype = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
    if (r->ep == EP_SUBMIT && ctype && strncasecmp(ctype, "application/json", 16) != 0) {
        *res =
            send_error(r, 415, "unsupported_media_type", "send the envelope as application/json");
        return -1;
    }
    return 0;
}

static enum MHD_Result read_body(struct request *r, const char *data, size_t *size)
{
    size_t n = *size;
    *size = 0;
    if (r->too_large) {
        r->discarded += n;
        return r->discarded > DISCARD_FACTOR * (size_t)r->app->cfg.ingress.max_body_bytes ? MHD_NO
                                                                                          : MHD_YES;
    }
    if (buf_append(&r->body, data, n) < 0) {
        r->too_large = true; /* the buffer is freed; count what else arrives */
        r->discarded = n;
    }
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)cls, (void)url, (void)version;
    struct request *r = *con_cls;
    if (!r) return MHD_NO;
    if (!r->started) {
        enum MHD_Result res = MHD_YES;
        r->started = true;
        r->conn = conn;
        r->method = method;
        /* Only refusals are sent now: libmicrohttpd closes a connection
         * answered before its request was fully read, so answers to good
         * requests wait for the final call and keep the connection alive. */
        return classify(r, &res) < 0 ? res : MHD_YES;
    }
    if (*upload_data_size) return read_body(r, upload_data, upload_data_size);
    struct answer a = {0};
    if (r->ep != EP_SUBMIT && r->ep != EP_ROUTE) {
        handle_get(r, &a);
        return send_answer(r, &a);
    }
    if (r->waiting) {
        handle_published(r, &a);
        return send_answer(r, &a);
    }
    if (r->too_large)
        return send_error(r, 413, "body_too_large", "the body is larger than max_body_bytes");
    if (handle_submit(r, &a)) return MHD_YES;
    return send_answer(r, &a);
}

/* on_uri creates the request context with the raw target: libmicrohttpd
 * hands the handler a decoded path without the query, but the transparent
 * form must forward both exactly as the client sent them. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)conn;
    struct request *r = calloc(1, sizeof(*r));
    if (!r) return NULL;
    r->app = cls;
    r->uri = strdup(uri);
    if (!r->uri) {
        free(r);
        return NULL;
    }
    r->path_len = strcspn(r->uri, "?");
    buf_init(&r->body, (size_t)r->app->cfg.ingress.max_body_bytes);
    return r;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)conn, (void)toe;
    struct request *r = *con_cls;
    if (!r) return;
    buf_free(&r->body);
    free(r->uri);
    free(r);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    log_warn("http: %s", line);
}

struct http_server *http_start(struct app *app, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    if (daemon_parse_addr("ingress.listen", app->cfg.ingress.listen, &ss, err, errlen) < 0)
        return NULL;
    struct http_server *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->app = app;
    s->quiesced = MHD_INVALID_SOCKET;
    unsigned limit = (unsigned)app->cfg.ingress.max_connections;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TURBO |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
                     (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, app, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)app->cfg.ingress.threads, MHD_OPTION_CONNECTION_LIMIT, limit,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, limit, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)app->cfg.ingress.connection_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)128 * 1024, MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_URI_LOG_CALLBACK, on_uri, app,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    if (!s->daemon) {
        snprintf(err, errlen, "cannot listen on %s (address in use, or not this host's?)",
                 app->cfg.ingress.listen);
        free(s);
        return NULL;
    }
    return s;
}

uint16_t http_port(struct http_server *s)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info ? info->port : 0;
}

void http_quiesce(struct http_server *s)
{
    s->quiesced = MHD_quiesce_daemon(s->daemon);
}

void http_stop(struct http_server *s)
{
    if (!s) return;
    MHD_stop_daemon(s->daemon);
    /* libmicrohttpd's threads may use a quiesced socket until they stop. */
    if (s->quiesced != MHD_INVALID_SOCKET) close(s->quiesced);
    free(s);
}
