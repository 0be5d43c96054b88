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

#define CFG_SHA256_LEN 32

struct cfg_key {
    char *id;
    unsigned char secret_sha256[CFG_SHA256_LEN];
    char *tenant;
    double rate_per_s; /* 0 = unlimited */
    long burst;        /* 0 = unlimited */
    int max_priority;  /* 0..9: higher requested priorities are lowered to this */
    char **routes;     /* route names allowed; "*" allows every route */
    size_t n_routes;
};

struct cfg_route {
    char *name;
    char **upstreams; /* base URLs, "http://host:port[/prefix]", used round-robin */
    size_t n_upstreams;
    long timeout_ms;     /* per backend call */
    int max_attempts;    /* backend calls in all, >= 1 */
    long backoff_ms;     /* base of the exponential backoff */
    long backoff_max_ms; /* cap of one delay, and of an honoured Retry-After */
    double rate_per_s;   /* 0 = unlimited (enforced in a later release) */
    long max_in_flight;  /* 0 = unlimited (enforced in a later release) */
};

struct cfg_ingress {
    char *listen; /* "host:port" */
    long threads;
    long max_body_bytes;
    long status_retention_s;
    long max_status_entries;
    long confirm_timeout_ms; /* a publish unconfirmed this long answers 503 */
    long max_connections;
    long connection_timeout_s; /* idle or slow clients are closed after this */
    long max_wait_s;           /* the longest long-poll wait (GET ...?wait=S) */
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
/* cfg_key_for_token hashes the bearer token with SHA-256 and returns the key
 * whose secret_sha256 matches, comparing every key in constant time; NULL if none. */
const struct cfg_key *cfg_key_for_token(const struct cfg *c, const char *token, size_t len);
/* cfg_key_allows_route tells whether key may use the route named name. */
bool cfg_key_allows_route(const struct cfg_key *key, const char *name);

/* cfg_usage writes the table of scalar keys (key, env var, default, range, meaning)
 * as Markdown to f; docs/operations.md includes its output. */
void cfg_usage(FILE *f);

#endif
