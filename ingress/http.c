/* http.c: the ingress's HTTP server (see http.h), the only file that knows
 * libmicrohttpd. Every request goes one way through it: its target is kept
 * as sent (on_uri); once the headers are in, handlers.c classifies and
 * authenticates it (handle_begin); its body is read within max_body_bytes;
 * handlers.c answers it (handle), now or later from another thread (the
 * publisher's, long-poll's waiters') through suspend and resume; the answer
 * is sent and counted. Beside it,
 * deadline.c cuts requests that do not arrive whole in time, and tls.c
 * reads the listener's certificate when it serves HTTPS. */
#include "http.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "daemon.h"
#include "deadline.h"
#include "handlers.h"
#include "log.h"
#include "tls.h"

/* A client that keeps sending past the cap is cut off after this many times
 * the cap: enough to answer an honest oversized upload with a 413, not enough
 * to let anyone stream forever. */
#define DISCARD_FACTOR 4

/* libmicrohttpd clears a connection's memory pool for every request, so the
 * pool holds the read buffer, the request line and the headers, not bodies,
 * which live in the request's own buffer. It is sized to take a target of
 * max_url_bytes and a header block of max_header_bytes with room to spare
 * (the headers are parsed in place, and the answer's headers come from the
 * pool too), so that handlers.c answers past either limit with the API's
 * 414 or 431. A request past the pool is refused by libmicrohttpd itself
 * (431, its own HTML). After a connection's first request libmicrohttpd
 * zeroes the whole pool, so this is also what a kept-alive connection
 * costs in memory. */
#define HTTP_POOL_SPARE ((size_t)16 * 1024)
/* http_stop waits at most this long for held answers to leave. */
#define HTTP_STOP_GRACE_MS 5000

struct http_server {
    struct MHD_Daemon *daemon;
    struct app *app;
    struct deadline *deadline;
    struct tls_files tls;
    MHD_socket quiesced; /* the listening socket after http_quiesce, ours to close */
    /* Requests that were suspended and are not yet complete: a resumed
     * answer is sent by a server thread later, so http_stop waits for them
     * instead of closing their connections with the answer unsent. */
    pthread_mutex_t lock;
    pthread_cond_t released;
    size_t held;
};

/* exchange is one request with what only this file needs; handlers see the
 * request, which comes first so either converts to the other. */
struct exchange {
    struct request r;
    struct http_server *server;
    struct MHD_Connection *conn;
    struct deadline_conn *dc; /* the connection's deadline, or NULL when not watched */
    bool started;             /* handle_begin has run */
    bool pending;             /* suspended until the handler's answer is in r.answer */
    bool held;                /* counted in server->held */
    size_t discarded;
};

static void hold(struct http_server *s, int d)
{
    pthread_mutex_lock(&s->lock);
    s->held += (size_t)d;
    if (s->held == 0) pthread_cond_broadcast(&s->released);
    pthread_mutex_unlock(&s->lock);
}

static struct exchange *exchange_of(const struct request *r)
{
    return (struct exchange *)r;
}

/* ---- what handlers may ask of a request (struct request_io) ---- */

static const char *header(const struct request *r, const char *name)
{
    return MHD_lookup_connection_value(exchange_of(r)->conn, MHD_HEADER_KIND, name);
}

struct walk {
    env_header_fn fn;
    void *ctx;
    int rc;
};

static enum MHD_Result walk_one(void *cls, enum MHD_ValueKind kind, const char *name,
                                const char *value)
{
    (void)kind;
    struct walk *w = cls;
    if (!value) return MHD_YES;
    w->rc = w->fn(w->ctx, name, strlen(name), value, strlen(value));
    return w->rc ? MHD_NO : MHD_YES;
}

static int walk_headers(const void *src, env_header_fn fn, void *ctx)
{
    struct walk w = {fn, ctx, 0};
    MHD_get_connection_values(exchange_of(src)->conn, MHD_HEADER_KIND, walk_one, &w);
    return w.rc;
}

/* suspend is called by a handler inside on_request, before it hands the
 * request to another thread, so resume can never come first. */
static void suspend(struct request *r)
{
    struct exchange *x = exchange_of(r);
    x->pending = true;
    if (!x->held) hold(x->server, 1);
    x->held = true;
    MHD_suspend_connection(x->conn);
}

static void resume(struct request *r)
{
    MHD_resume_connection(exchange_of(r)->conn);
}

static const struct request_io IO = {header, walk_headers, suspend, resume};

/* ---- the request's way through ---- */

/* send_answer queues a (whose body libmicrohttpd takes) and counts it. */
static enum MHD_Result send_answer(struct exchange *x, struct answer *a)
{
    /* A request the deadline cut is no longer ours to answer. */
    if (!deadline_claim(x->dc)) {
        free(a->body);
        a->body = NULL;
        return MHD_NO;
    }
    handle_end(&x->r, a);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(a->len, a->body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(a->body);
        a->body = NULL;
        return MHD_NO;
    }
    a->body = NULL;
    if (a->content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, a->content_type);
    for (size_t i = 0; i < a->n_headers; i++)
        MHD_add_response_header(resp, a->headers[i].name, a->headers[i].value);
    enum MHD_Result rc = MHD_queue_response(x->conn, (unsigned)a->status, resp);
    MHD_destroy_response(resp);
    app_count_response(x->r.app, a->status);
    return rc;
}

static enum MHD_Result read_body(struct exchange *x, const char *data, size_t *size)
{
    struct request *r = &x->r;
    size_t n = *size;
    *size = 0;
    if (r->body_too_large) {
        x->discarded += n;
        return x->discarded > DISCARD_FACTOR * (size_t)r->app->cfg.ingress.max_body_bytes ? MHD_NO
                                                                                          : MHD_YES;
    }
    if (buf_append(&r->body, data, n) < 0) {
        r->body_too_large = true; /* the buffer is freed; count what else arrives */
        x->discarded = n;
    }
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)cls, (void)url, (void)version;
    struct exchange *x = *con_cls;
    struct answer a = {0};
    if (!x) return MHD_NO;
    if (!x->started) {
        x->started = true;
        x->conn = conn;
        x->r.method = method;
        /* Only refusals are sent now: libmicrohttpd closes a connection
         * answered before its request was fully read, so answers to good
         * requests wait for the final call and keep the connection alive. */
        return handle_begin(&x->r, &a) < 0 ? send_answer(x, &a) : MHD_YES;
    }
    if (*upload_data_size) return read_body(x, upload_data, upload_data_size);
    if (x->pending) {
        x->pending = false;
        return send_answer(x, &x->r.answer);
    }
    /* The request is whole: its deadline no longer runs (it may have just
     * been cut, then the connection is closing). */
    if (!deadline_claim(x->dc)) return MHD_NO;
    return handle(&x->r, &a) ? MHD_YES : send_answer(x, &a);
}

/* on_uri creates the request with the raw target: libmicrohttpd hands
 * on_request a decoded path without the query, but the transparent form
 * must forward both exactly as the client sent them. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct deadline_conn *dc = ci ? ci->socket_context : NULL;
    deadline_begun(dc);
    struct exchange *x = calloc(1, sizeof(*x));
    char *target = strdup(uri);
    if (!x || !target) {
        free(x);
        free(target);
        return NULL;
    }
    struct http_server *s = cls;
    x->server = s;
    x->dc = dc;
    x->r.app = s->app;
    x->r.io = &IO;
    x->r.target = target;
    x->r.path_len = strcspn(target, "?");
    buf_init(&x->r.body, (size_t)x->r.app->cfg.ingress.max_body_bytes);
    return x;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)conn, (void)toe;
    struct exchange *x = *con_cls;
    if (!x) return;
    if (x->held) hold(x->server, -1);
    deadline_rearm(x->dc);
    buf_free(&x->r.body);
    free(x->r.answer.body);
    free((char *)x->r.target);
    free(x);
    *con_cls = NULL;
}

/* on_connection starts and stops watching a connection's deadline; the
 * stop comes before libmicrohttpd closes the socket. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct http_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context = ci ? deadline_open(s->deadline, ci->connect_fd) : NULL;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        deadline_close(s->deadline, *socket_context);
        *socket_context = NULL;
    }
}

static void count_408(void *arg)
{
    app_count_response(arg, 408);
}

/* on_mhd_log logs libmicrohttpd's messages; a client gone mid-request (or
 * cut by its deadline) is ordinary, and a slow-client attack would flood
 * the log with it, so that one is debug. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    if (strstr(line, "connection closure") || strstr(line, "Connection socket is closed"))
        log_debug("http: %s", line);
    else
        log_warn("http: %s", line);
}

/* ---- the server ---- */

/* start_daemon starts libmicrohttpd with every limit of the configuration,
 * over TLS when s->tls holds a certificate. */
static struct MHD_Daemon *start_daemon(struct http_server *s, const struct sockaddr_storage *ss)
{
    const struct cfg_ingress *in = &s->app->cfg.ingress;
    size_t pool = (size_t)in->max_url_bytes + (size_t)in->max_header_bytes + HTTP_POOL_SPARE;
    unsigned per_ip =
        (unsigned)(in->max_connections_per_ip < in->max_connections ? in->max_connections_per_ip
                                                                    : in->max_connections);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TURBO |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
                     (ss->ss_family == AF_INET6 ? MHD_USE_IPv6 : 0) |
                     (s->tls.cert ? MHD_USE_TLS : 0);
    /* Options that only TLS takes go last, after an early end without it. */
    return MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s->app, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)ss, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)in->threads, MHD_OPTION_CONNECTION_LIMIT, (unsigned)in->max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)in->connection_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
        s->tls.cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, s->tls.cert,
        MHD_OPTION_HTTPS_MEM_KEY, s->tls.key, MHD_OPTION_HTTPS_PRIORITIES, TLS_PRIORITIES,
        MHD_OPTION_END);
}

struct http_server *http_start(struct app *app, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    const struct cfg_ingress *in = &app->cfg.ingress;
    if (daemon_parse_addr("ingress.listen", in->listen, &ss, err, errlen) < 0) return NULL;
    struct http_server *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->app = app;
    s->quiesced = MHD_INVALID_SOCKET;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->released, &ca);
    pthread_condattr_destroy(&ca);
    bool tls = in->tls_cert_file[0] != '\0';
    if (tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        snprintf(err, errlen, "ingress.tls_cert_file: this libmicrohttpd was built without TLS");
        goto err;
    }
    if (tls && tls_load(in, &s->tls, err, errlen) < 0) goto err;
    s->deadline = deadline_new(in->request_timeout_s * 1000, !tls, count_408, app);
    if (!s->deadline) {
        snprintf(err, errlen, "cannot start the request deadline thread");
        goto err;
    }
    s->daemon = start_daemon(s, &ss);
    if (!s->daemon) {
        snprintf(err, errlen,
                 tls ? "cannot listen on %s (address in use, not this host's, or the "
                       "certificate and key do not make a TLS pair?)"
                     : "cannot listen on %s (address in use, or not this host's?)",
                 in->listen);
        goto err;
    }
    return s;
err:
    deadline_free(s->deadline);
    tls_free(&s->tls);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->released);
    free(s);
    return NULL;
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
    /* Answers resumed just before (the publisher's, long-poll's) are still
     * to be written by the server threads. */
    struct timespec until = clock_mono_timespec(clock_mono_ms() + HTTP_STOP_GRACE_MS);
    pthread_mutex_lock(&s->lock);
    while (s->held && pthread_cond_timedwait(&s->released, &s->lock, &until) == 0) {
    }
    if (s->held) log_warn("http: stopping with %zu answers unsent", s->held);
    pthread_mutex_unlock(&s->lock);
    MHD_stop_daemon(s->daemon);
    /* libmicrohttpd's threads may use a quiesced socket until they stop. */
    if (s->quiesced != MHD_INVALID_SOCKET) close(s->quiesced);
    deadline_free(s->deadline); /* after the daemon: every connection is closed */
    tls_free(&s->tls);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->released);
    free(s);
}
