/* main.c: sluice-ingress. Loads the configuration, starts the status index,
 * the events reader, the publisher and the HTTP server, then waits for
 * SIGINT/SIGTERM and shuts down in the order that loses nothing: stop
 * accepting, let pending publishes be answered, then stop. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "app.h"
#include "clock.h"
#include "id.h"
#include "daemon.h"
#include "http.h"
#include "log.h"

static void wait_for_signal(int sfd)
{
    struct signalfd_siginfo si;
    while (read(sfd, &si, sizeof(si)) < 0 && errno == EINTR) {
    }
    log_info("received %s: shutting down", strsignal((int)si.ssi_signo));
}

/* set_retentions gives the index each tenant's shorter retention. */
static int set_retentions(struct app *app)
{
    for (size_t i = 0; i < app->cfg.n_keys; i++) {
        const char *tenant = app->cfg.keys[i].tenant;
        if (app->cfg.keys[i].is_jwt) continue;
        long r = cfg_tenant_retention_s(&app->cfg, tenant);
        if (status_index_set_retention(app->index, tenant, (int64_t)r * 1000) < 0) return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int rc = 1;
    char err[512];
    struct app app = {0};
    struct http_server *http = NULL;
    const char *path = daemon_config_path(argc, argv, "sluice-ingress");
    int sfd = daemon_signal_fd(0);
    log_init("ingress", LOG_INFO);
    if (cfg_load(&app.cfg, path, err, sizeof(err)) < 0) {
        log_error("%s", err);
        fprintf(stderr, "sluice-ingress: %s\n", err);
        return 2;
    }
    log_init("ingress", (enum log_level)log_level_parse(app.cfg.log_level));
    if (sfd < 0) {
        log_error("cannot set up signal handling: %s", strerror(errno));
        goto out;
    }
    app.auth = auth_new(&app.cfg, err, sizeof err);
    if (!app.auth) {
        log_error("%s", err);
        fprintf(stderr, "sluice-ingress: %s\n", err);
        rc = 2;
        goto out;
    }
    app.metrics = metrics_new();
    app.activity = activity_new();
    app.index = status_index_new((size_t)app.cfg.ingress.max_status_entries,
                                 app.cfg.ingress.status_retention_s * 1000);
    app.idem = idem_new(&app.cfg);
    app.cache = app.index ? cache_new(&app.cfg, app.index) : NULL;
    app.waiters = app.metrics ? waiters_new(app.metrics) : NULL;
    if (app.index) status_index_set_max_bytes(app.index, (size_t)app.cfg.ingress.max_status_bytes);
    if (!app.metrics || !app.index || !app.activity || !app.idem || !app.cache || !app.waiters ||
        app_declare_metrics(&app) < 0 || set_retentions(&app) < 0) {
        log_error("out of memory at start");
        goto out;
    }
    /* Whoever applies a request's final state wakes its long-poll waiters. */
    status_index_on_final(app.index, waiters_wake_cb, app.waiters);
    /* A fresh id per process start: the events reader skips what this very
     * process published, but after a restart it must read everything again. */
    char instance[ID_LEN + 1];
    if (id_new(instance, clock_real_ms()) < 0) {
        log_error("cannot read the OS random source");
        goto out;
    }
    app.limits = limits_new(&app.cfg, app.index, app.metrics, instance);
    if (!app.limits) {
        log_error("out of memory at start");
        goto out;
    }
    /* The events thread's tick reads the lanes and the history: both exist
     * before it starts. */
    app.lanes = lanes_new(&app.cfg, app.metrics, app.index);
    if (!app.lanes || app_history_new(&app) < 0) {
        log_error("out of memory at start");
        goto out;
    }
    app.events =
        events_new(&app.cfg, app.metrics, app.index, app.activity, instance, &app_observer, &app);
    app.publisher = app.lanes ? publisher_new(&app.cfg, app.metrics, app.index, app.activity,
                                              app.lanes, instance)
                              : NULL;
    app.control = control_new(&app.cfg, app.metrics, app.index, instance);
    app.dead = deadletters_new(&app.cfg);
    app.routectl = routectl_new(&app.cfg, "sluice-ingress-admin");
    app.fleet = fleet_new(&app.cfg, FLEET_MAX_WORKERS, REPORT_STALE_MS);
    app.reports = app.fleet ? reports_new(&app.cfg, app.fleet) : NULL;
    app.readback = readback_new(&app.cfg, app.metrics);
    if (!app.events || !app.publisher || !app.control || !app.dead || !app.routectl ||
        !app.reports || !app.readback) {
        log_error("cannot start the broker threads (out of memory?)");
        goto out;
    }
    http = http_start(&app, err, sizeof(err));
    if (!http) {
        log_error("%s", err);
        goto out;
    }
    log_info("listening on %s (port %u), namespace %s, status page %s", app.cfg.ingress.listen,
             (unsigned)http_port(http), app.cfg.namespace,
             app.cfg.admin_token[0] ? "on at /" : "off (no admin_token)");
    wait_for_signal(sfd);
    http_quiesce(http);
    publisher_drain(app.publisher);
    rc = 0;
out:
    /* Suspended connections never time out: every long-poll waiter is
     * answered (its current status) before the server stops. */
    if (app.waiters) waiters_drain(app.waiters);
    /* Cancels and erasures in flight are answered before HTTP stops. */
    if (app.control) control_drain(app.control);
    deadletters_drain(app.dead);
    http_stop(http);
    readback_free(app.readback);
    control_free(app.control);
    deadletters_free(app.dead);
    routectl_free(app.routectl);
    reports_free(app.reports);
    fleet_free(app.fleet);
    publisher_free(app.publisher);
    events_free(app.events);
    waiters_free(app.waiters);
    lanes_free(app.lanes);
    history_free(app.history);
    limits_free(app.limits);
    cache_free(app.cache);
    idem_free(app.idem);
    status_index_free(app.index);
    activity_free(app.activity);
    metrics_free(app.metrics);
    auth_free(app.auth);
    cfg_free(&app.cfg);
    if (sfd >= 0) close(sfd);
    return rc;
}
