/* ledger.h: a steady load of submissions and the ledger of every answer,
 * for the cluster suites (itest_cluster, itest_soak).
 *
 * A loader thread submits one request every 1/rate seconds (open loop: a
 * slow answer does not delay the next submission; at most LEDGER_IN_FLIGHT
 * wait at once) to the ingress URLs in turn, with the route and a path of
 * its own per submission ("<path>/c<seq>"), so that the backend's access log
 * ties every call to its submission whatever Idempotency-Key it carried. It
 * records each answer: the HTTP status (0: no answer, e.g. an ingress that
 * was killed), the ID of a 202, and when it was sent and answered. It also
 * asks each ingress's /readyz every LEDGER_READY_EVERY_MS and keeps when
 * each was not ready.
 *
 * The thread never calls Check: the test reads the ledger (ledger_copy)
 * while it runs, stops it, settles it (every accepted ID polled until final)
 * and reconciles it with the backend's access log into totals, which
 * ledger_print writes and ledger_check_totals asserts. Times are Unix
 * milliseconds, like the statuses' completed_at and the access log. */
#ifndef SLUICE_LEDGER_H
#define SLUICE_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define LEDGER_IN_FLIGHT 64
#define LEDGER_READY_EVERY_MS 100
#define LEDGER_MAX_INGRESS 4

/* ledger_entry is one submission. */
struct ledger_entry {
    long long sent_ms, answered_ms; /* answered_ms 0 until answered */
    int ingress;                    /* index into the URLs */
    int code;                       /* HTTP status; 0: no answer; -1: not answered yet */
    char id[33];                    /* of a 202, else "" */
    char why[80];                   /* the start of another answer's body, or curl's error */
    /* Filled by ledger_settle and ledger_reconcile: */
    char state[16];     /* the last status seen ("succeeded", ...), "" if none */
    long long final_ms; /* completed_at once final, else 0 */
    long calls;         /* backend calls for this submission */
    long long first_call_ms;
    bool key_mismatch; /* a call carried another Idempotency-Key than the others or the ID */
};

struct ledger;

/* ledger_start starts the loader thread; urls (at most LEDGER_MAX_INGRESS,
 * "http://127.0.0.1:<port>") and the strings are copied. Fails the test if
 * the thread cannot start. */
struct ledger *ledger_start(const char *const urls[], int n_urls, const char *token,
                            const char *route, const char *path, double rate);
/* ledger_stop stops submitting, waits for the answers still due and joins
 * the thread. Idempotent. */
void ledger_stop(struct ledger *l);
void ledger_free(struct ledger *l);

/* ledger_copy returns a copy of the entries so far (caller frees) and their
 * number in *n; safe while the thread runs. */
struct ledger_entry *ledger_copy(struct ledger *l, size_t *n);
/* ledger_not_ready_ms is the longest time ingress i answered /readyz with
 * anything but 200 (or not at all) after from_ms, in milliseconds; a span
 * still open at the last probe counts up to it. */
long long ledger_not_ready_ms(struct ledger *l, int i, long long from_ms);

/* ledger_settle polls the status of every accepted submission through url
 * until it is final or timeout_ms passed; it records each one's state. */
void ledger_settle(struct ledger *l, const char *url, const char *token, int timeout_ms);
/* ledger_reconcile reads the backend's access log and records each
 * submission's calls (after ledger_stop). */
void ledger_reconcile(struct ledger *l, const char *access_log);

struct ledger_totals {
    size_t sent, accepted, unavailable, no_answer, other; /* answers: 202, 503, none, any other */
    size_t succeeded;                                     /* accepted and succeeded */
    size_t lost;              /* accepted but not succeeded, or never called */
    size_t duplicates;        /* calls beyond the first, over all submissions */
    size_t dup_requests;      /* submissions called more than once */
    size_t key_mismatch;      /* submissions whose calls carried different keys */
    size_t unaccepted_called; /* not answered 202 but called (a 503 or lost answer after the broker
                                 took it) */
    long long max_gap_ms, gap_from_ms; /* longest stretch without a 202 answer, and its start */
    long long first_ms, last_ms;       /* first submission, last answer */
};
void ledger_totals(struct ledger *l, struct ledger_totals *t);
/* ledger_print writes the totals as one line of JSON headed by title. */
void ledger_print(FILE *f, const char *title, const struct ledger_totals *t);
/* ledger_check_totals fails the test if a submission got an answer other
 * than 202 or 503 while allow_no_answer is false, or any accepted one was
 * lost, or a duplicate carried another key. */
void ledger_check_totals(const struct ledger_totals *t, bool allow_no_answer);
/* ledger_write writes every entry, one line each, to path (for a post-mortem). */
void ledger_write(struct ledger *l, const char *path);

/* ledger_now_ms is the Unix time in milliseconds. */
long long ledger_now_ms(void);
/* ledger_time_ms reads an RFC 3339 time with milliseconds
 * ("2026-11-23T10:00:00.123Z", as statuses and logs write it) as Unix
 * milliseconds; -1 if it is not one. */
long long ledger_time_ms(const char *s);

#endif
