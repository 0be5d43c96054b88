/* report.h: a worker's report of its live state, from which every ingress
 * replica answers GET /v1/admin/routes for the whole fleet: per route the
 * calls in flight and the calls completed (and failed) per second lately,
 * per upstream the state of the worker's circuit breaker.
 *
 * Every worker publishes one every REPORT_EVERY_MS to the fanout exchange
 * <ns>.reports (worker/reporter.h); every ingress replica reads them
 * through a queue of its own and keeps the latest per worker
 * (ingress/fleet.h). Reports are transient: a lost one is replaced by the
 * next, and a worker not heard from for REPORT_STALE_MS is forgotten.
 *
 * The message is JSON:
 *   {"v":1,"worker":"<host>:<pid>:<random>","seq":N,"bye":false,"routes":{"<route>":
 *    {"in_flight":N,"rate":X,"failure_rate":X,"upstreams":{"<upstream>":
 *     {"state":"open"|"half_open","open_ms":N}}}}}
 * A route with nothing to say (no call in flight, none in the rate window,
 * every breaker closed) is left out, and so is a closed breaker, so an idle
 * worker's report is a few dozen bytes. Routes and upstreams travel by
 * name (an upstream's URL without user and password, report_upstream_name)
 * so that a reader whose configuration differs (a rolling change) matches
 * what it knows and skips the rest. open_ms is how long an open breaker
 * stays open from when the report was made: relative, so the clocks of the
 * worker's and the reader's hosts need not agree. "bye" is a worker's last
 * report, as it stops. */
#ifndef SLUICE_REPORT_H
#define SLUICE_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "breaker.h"
#include "buf.h"
#include "config.h"

#define REPORT_EVERY_MS 1000
#define REPORT_STALE_MS 5000         /* a reader forgets a worker silent this long */
#define REPORT_MAX_BYTES (256 << 10) /* a reader ignores bigger messages */
#define REPORT_WORKER_MAX 128        /* the worker's name, with its NUL */

struct report_upstream {
    enum breaker_state state;
    int64_t open_ms; /* BREAKER_OPEN: until its next probe, from the report's making */
};

struct report_route {
    long in_flight;
    double rate;                 /* calls completed per second lately */
    double failure_rate;         /* of those, failures (for the breaker) per second */
    struct report_upstream *ups; /* cfg's upstreams of the route, in its order */
};

/* A report as the configuration it is read or made with knows it: a route
 * or upstream cfg does not have is not in it. */
struct report {
    char worker[REPORT_WORKER_MAX];
    uint64_t seq;
    bool bye;
    struct report_route *routes; /* cfg->n_routes, in its order */
};

/* report_new makes an empty report for cfg's routes (cfg must outlive it);
 * NULL on ENOMEM. report_free(NULL) is a no-op. */
struct report *report_new(const struct cfg *cfg);
void report_free(const struct cfg *cfg, struct report *r);
/* report_clear empties r: nothing in flight, no rate, every breaker closed. */
void report_clear(const struct cfg *cfg, struct report *r);

/* report_encode appends r as a message to out. 0, or a negative errno. */
__attribute__((warn_unused_result)) int report_encode(const struct cfg *cfg, const struct report *r,
                                                      struct buf *out);
/* report_decode reads a message (len bytes) into r. 0, or -1 when msg is
 * not a report (r is then cleared). */
__attribute__((warn_unused_result)) int report_decode(const struct cfg *cfg, const char *msg,
                                                      size_t len, struct report *r);

/* report_upstream_name writes url without its user and password (the name
 * an upstream has in reports, metrics and the admin API) to out. */
void report_upstream_name(const char *url, char *out, size_t len);

#endif
