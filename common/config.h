/* config.h: the configuration of both binaries, loaded once at start from one
 * JSON file and then read-only. Every scalar has a default, a range and an
 * environment variable that overrides it (SLUICE_AMQP_URL, SLUICE_LISTEN, ...),
 * all declared in one table in config.c from which parsing, validation and the
 * documentation come. A bad file is refused with a message naming the key. */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "breaker.h"
#include "sign.h"

#define CFG_SHA256_LEN 32

/* A list of strings, e.g. the CORS origins; both NULL/0 when empty. */
struct cfg_strings {
    char **v;
    size_t n;
};

/* What a JWT key verifies tokens with and demands of them (jwt.h). */
struct cfg_jwt {
    int alg;               /* enum jwt_alg */
    char *secret;          /* HS256: the shared secret, never logged */
    char *public_key_file; /* RS256, ES256: a PEM public key, read by the ingress at start */
    char *issuer;          /* NULL: iss not checked */
    char *audience;        /* NULL: aud not checked */
    char *tenant_claim;    /* the claim naming the tenant ("sub" by default) */
    char *routes_claim;    /* NULL: tokens name no routes */
    long clock_skew_s;
};

/* A key is an API key (a bearer token known by its SHA-256, with a tenant)
 * or a JWT key (is_jwt: signed tokens whose claim names the tenant). */
struct cfg_key {
    char *id;
    bool is_jwt;
    unsigned char secret_sha256[CFG_SHA256_LEN]; /* API key */
    char *tenant;                                /* API key; NULL for a JWT key */
    struct cfg_jwt jwt;                          /* JWT key */
    double rate_per_s;                           /* submissions per second; 0 = unlimited */
    long burst;                                  /* submissions at once; 0 = max(1, rate_per_s) */
    int max_priority;        /* 0..9: higher requested priorities are lowered to this */
    long max_queued;         /* the tenant's requests not yet final; 0 = unlimited */
    long status_retention_s; /* API keys: 0 = ingress.status_retention_s; never more */
    char **routes;           /* route names allowed ("*": every route); a JWT with a routes
                              * claim may use those of its claim that are also here */
    size_t n_routes;
    bool admin; /* API keys: may use the admin API (/v1/admin/...) */
};

struct cfg_route {
    char *name;
    char **upstreams; /* base URLs, "http://host:port[/prefix]": least calls in flight */
    size_t n_upstreams;
    long timeout_ms;     /* per backend call */
    int max_attempts;    /* backend calls in all, >= 1 */
    long backoff_ms;     /* base of the exponential backoff */
    long backoff_max_ms; /* cap of one delay, and of an honoured Retry-After */
    /* Traffic shaping (docs/architecture.md, "Traffic shaping"): calls per
     * second with a bucket of burst (0: max(1, rate_per_s)), and calls at
     * once, across the whole worker fleet; 0 = unlimited. */
    double rate_per_s;
    long burst;
    long max_in_flight;
    struct breaker_policy breaker; /* per upstream; enabled false: none */
    /* The edge: a request outside /v1 whose Host is one of hosts (any host
     * when there are none) and whose path is one of paths or below it (any
     * path when there are none) is a transparent submission to this route.
     * With neither, only /v1/routes/<name>/... reaches the route. */
    struct cfg_strings hosts; /* lower case, without a port */
    struct cfg_strings paths; /* prefixes: "/" or without a trailing slash */
    bool strip_path;          /* the matched prefix is cut from the path sent on */
    long cache_ttl_s;         /* GET/HEAD answers reused this long; 0 = no cache */
    char **cache_vary;        /* header names that are part of the cache key */
    size_t n_cache_vary;
    /* What every call the route makes carries (config_delivery.c,
     * worker/outbound.h): Standard Webhooks signatures with each key (the
     * first is the current one; more during a rotation), and header changes
     * applied to the client's headers. */
    struct sign_key *signing_keys;
    size_t n_signing_keys;
    struct cfg_strings set_names;  /* set_headers: names, in the file's order */
    struct cfg_strings set_values; /* and their values, same index */
    struct cfg_strings remove_headers;
    /* Batch delivery (worker/batchcall.h): NULL, or the URL that takes up
     * to batch_max of the route's requests in one POST. */
    char *batch_url;
    long batch_max;
    /* Callbacks and results (config_delivery.c, worker/deliver.h): the
     * hosts a request's callback_url may name (lower case, no port; none:
     * callbacks refused), whether those calls may reach loopback, private
     * or link-local addresses, and NULL or the URL that receives each
     * batch's final outcomes. */
    struct cfg_strings callback_hosts;
    bool allow_private_callbacks;
    char *results_url;
};

struct cfg_ingress {
    char *listen; /* "host:port" */
    long threads;
    long max_body_bytes;
    long status_retention_s;
    long max_status_entries;
    long max_status_bytes;   /* results beyond it are read back from the events stream */
    long confirm_timeout_ms; /* a publish unconfirmed this long answers 503 */
    long max_connections;
    long max_connections_per_ip;
    long connection_timeout_s; /* a connection idle this long is closed */
    /* HMAC key deriving the tracking ID of a request with an idempotency
     * key; empty: derived from the namespace (ingress/idempotency.h) */
    char *id_secret;
    long max_wait_s;        /* the longest long-poll wait (GET ...?wait=S) */
    long request_timeout_s; /* a request must arrive whole within this */
    long max_header_bytes;  /* 431 beyond it */
    long max_url_bytes;     /* 414 beyond it */
    char *tls_cert_file;    /* "" (both): plain HTTP */
    char *tls_key_file;
    struct cfg_strings cors_origins; /* empty: no CORS */
    long cors_max_age_s;
};

struct cfg_worker {
    long batch_size;
    long batch_linger_ms;
    long prefetch;
    char *metrics_listen; /* "host:port" */
    /* retries due sooner are held in the worker, later ones go to a retry queue */
    long retry_hold_max_ms;
    /* backend answer bytes kept in the status; the rest is cut (truncated) */
    long result_max_bytes;
    long shutdown_grace_ms; /* SIGTERM waits this long for calls in flight */
    long max_host_connections;
};

struct cfg {
    char *amqp_url;
    char *namespace; /* prefix of every exchange and queue */
    char *log_level; /* debug, info, warn, error */
    /* "classic" or "quorum": the type of the requests, dead and retry queues
     * (see docs/clustering.md); the events queue is always a stream. */
    char *queue_type;
    /* quorum only: returns of an unacked message to the queue (a consumer died,
     * a requeue) before the broker dead-letters it: limit + 1 deliveries */
    long delivery_limit;
    /* bearer token of the ingress's status page (GET /, /admin/summary);
     * empty: the page is off and both answer 404 */
    char *admin_token;
    struct cfg_ingress ingress;
    struct cfg_worker worker;
    struct cfg_key *keys;
    size_t n_keys;
    struct cfg_route *routes;
    size_t n_routes;
};

/* cfg_load reads path (NULL: defaults only), applies SLUICE_* environment
 * overrides from envp-style getenv, and validates. Returns 0, or -1 with an
 * operator-facing message in err ("config sluice.json: ingress.threads: must be
 * between 1 and 256 (got 0)"). On failure *c holds nothing to free. */
__attribute__((warn_unused_result)) int cfg_load(struct cfg *c, const char *path, char *err,
                                                 size_t errlen);
/* cfg_load_string is cfg_load for a JSON document in memory (name is used in messages). */
__attribute__((warn_unused_result)) int cfg_load_string(struct cfg *c, const char *json,
                                                        const char *name, char *err, size_t errlen);
/* cfg_free releases everything c holds and zeroes it; cfg_free(NULL) is a no-op. */
void cfg_free(struct cfg *c);

/* cfg_route_find returns the route named name (len bytes), or NULL. */
const struct cfg_route *cfg_route_find(const struct cfg *c, const char *name, size_t len);
/* cfg_header_reserved tells whether a header (name, n bytes) is one sluice
 * writes itself on every call (Idempotency-Key, traceparent, tracestate,
 * webhook-*) or HTTP's framing, which set_headers and remove_headers may
 * not name. */
bool cfg_header_reserved(const char *name, size_t n);
/* cfg_path_under tells whether path (len bytes) is prefix or below it: prefix
 * followed by '/' (a whole segment: "/api" takes "/api/x", not "/apix");
 * the prefix "/" takes every path. */
bool cfg_path_under(const char *prefix, const char *path, size_t len);
/* cfg_route_at returns the route a request outside /v1 reaches at the edge,
 * from its Host header (host_len bytes, port ignored; may be NULL) and its
 * path, or NULL; *matched is then the length of the path prefix that
 * matched (0 for "/" or a route without paths). Routes never overlap
 * (refused at load), so at most one matches. */
const struct cfg_route *cfg_route_at(const struct cfg *c, const char *host, size_t host_len,
                                     const char *path, size_t path_len, size_t *matched);
/* cfg_route_limited tells whether r has a rate or concurrency limit, which
 * its lane then enforces with a single active consumer (common/topology.h). */
bool cfg_route_limited(const struct cfg_route *r);
/* cfg_key_for_token hashes the bearer token with SHA-256 and returns the API
 * key whose secret_sha256 matches, comparing every key in constant time; NULL if none. */
const struct cfg_key *cfg_key_for_token(const struct cfg *c, const char *token, size_t len);
/* cfg_tenant_retention_s is how long tenant's statuses are kept: the
 * shortest status_retention_s of its API keys, else ingress.status_retention_s
 * (JWT keys have none). */
long cfg_tenant_retention_s(const struct cfg *c, const char *tenant);
/* cfg_key_allows_route tells whether key may use the route named name. */
bool cfg_key_allows_route(const struct cfg_key *key, const char *name);

/* cfg_usage writes the table of scalar keys (key, env var, default, range, meaning)
 * as Markdown to f; docs/operations.md includes its output. */
void cfg_usage(FILE *f);

#endif
