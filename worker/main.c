/* main.c: sluice-worker. Loads the configuration, serves /metrics and
 * /healthz on metrics_listen, and runs the consumer until SIGINT/SIGTERM. */
#include <curl/curl.h>
#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "consumer.h"
#include "daemon.h"
#include "log.h"

struct worker {
    struct cfg cfg;
    struct metrics *metrics;
    struct consumer *consumer;
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *type,
                             char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *size, void **con_cls)
{
    (void)version, (void)data, (void)size, (void)con_cls;
    struct worker *w = cls;
    if (strcmp(method, "GET") != 0) return reply(conn, 405, "text/plain", strdup("use GET\n"), 8);
    if (strcmp(url, "/healthz") == 0)
        return reply(conn, 200, "application/json", strdup("{\"status\":\"ok\"}"), 15);
    if (strcmp(url, "/readyz") == 0) {
        bool up = consumer_ready(w->consumer);
        return up ? reply(conn, 200, "application/json", strdup("{\"status\":\"ready\"}"), 18)
                  : reply(conn, 503, "application/json", strdup("{\"status\":\"not_ready\"}"), 22);
    }
    if (strcmp(url, "/metrics") == 0) {
        struct buf b;
        buf_init(&b, 16 << 20);
        if (metrics_render(w->metrics, &b) < 0) return MHD_NO;
        size_t len;
        char *text = buf_take(&b, &len);
        return reply(conn, 200, "text/plain; version=0.0.4", text, len);
    }
    return reply(conn, 404, "text/plain", strdup("not found\n"), 10);
}

static struct MHD_Daemon *start_metrics(struct worker *w, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    if (daemon_parse_addr("worker.metrics_listen", w->cfg.worker.metrics_listen, &ss, err, errlen) <
        0)
        return NULL;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                     (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, w, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_CONNECTION_TIMEOUT, 10u,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_END);
    if (!d)
        snprintf(err, errlen, "worker.metrics_listen: cannot listen on %s (address in use?)",
                 w->cfg.worker.metrics_listen);
    return d;
}

int main(int argc, char **argv)
{
    int rc = 1;
    char err[512];
    struct worker w = {0};
    struct MHD_Daemon *http = NULL;
    const char *path = daemon_config_path(argc, argv, "sluice-worker");
    int sfd = daemon_signal_fd(SFD_NONBLOCK);
    log_init("worker", LOG_INFO);
    if (cfg_load(&w.cfg, path, err, sizeof(err)) < 0) {
        log_error("%s", err);
        fprintf(stderr, "sluice-worker: %s\n", err);
        return 2;
    }
    log_init("worker", (enum log_level)log_level_parse(w.cfg.log_level));
    if (sfd < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("cannot initialise signals or libcurl: %s", strerror(errno));
        goto out;
    }
    w.metrics = metrics_new();
    w.consumer = w.metrics ? consumer_new(&w.cfg, w.metrics) : NULL;
    if (!w.consumer) {
        log_error("out of memory at start");
        goto out;
    }
    http = start_metrics(&w, err, sizeof(err));
    if (!http) {
        log_error("%s", err);
        goto out;
    }
    log_info("metrics on %s, namespace %s", w.cfg.worker.metrics_listen, w.cfg.namespace);
    rc = consumer_run(w.consumer, sfd) == 0 ? 0 : 1;
out:
    if (http) MHD_stop_daemon(http);
    consumer_free(w.consumer);
    metrics_free(w.metrics);
    curl_global_cleanup();
    cfg_free(&w.cfg);
    if (sfd >= 0) close(sfd);
    return rc;
}
