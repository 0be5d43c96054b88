/* status.c: `sluice status` (see status.h). --watch of one request polls
 * every --interval, printing each change of status or attempts on the way
 * (watch.c long-polls many requests at once, and shows only their ends); it
 * rides out a short outage of the ingress, since status survives an ingress
 * restart: only the first poll, or an outage longer than WATCH_OUTAGE_MS,
 * ends the watch with "unavailable". */
#include "status.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "id.h"
#include "print.h"
#include "watch.h"

#define INTERVAL_DEFAULT_MS 500
#define INTERVAL_MIN_MS 10
#define INTERVAL_MAX_MS 3600000
#define TIMEOUT_MAX_S (86400L * 365)
#define MAX_IDS 1000000

static const char usage[] =
    "usage: sluice status ID [--watch [--interval MS] [--timeout S]]\n"
    "       sluice status --watch ID... [--ids FILE|-] [--timeout S]\n"
    "\n"
    "Shows a request's status. With --watch, polls until it is succeeded, failed or\n"
    "dead, printing a line at each change and the whole status at the end.\n"
    "With --watch over several IDs (arguments, or --ids with one per line), waits\n"
    "for all with long-poll: on a terminal with a progress bar and a summary, else\n"
    "one JSON line per request (its final status) as each ends.\n"
    "\n"
    "  --watch          poll until the status is final (exit 1 when failed or dead)\n"
    "  --interval MS    time between polls of one request (default 500)\n"
    "  --ids FILE|-     more IDs to watch, one per line\n"
    "  --timeout S      give up after S seconds with exit 5 (default 0: never)\n" CLI_GLOBAL_HELP;

enum { OPT_WATCH = CLI_OPT_COMMAND, OPT_INTERVAL, OPT_TIMEOUT, OPT_IDS };

static const struct option options[] = {
    {"watch", no_argument, NULL, OPT_WATCH},
    {"interval", required_argument, NULL, OPT_INTERVAL},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"ids", required_argument, NULL, OPT_IDS},
    CLI_GLOBAL_OPTIONS,
    {NULL, 0, NULL, 0},
};

struct status_opts {
    const char *id;
    char **ids; /* every ID of the command line, then of --ids */
    size_t n_ids, cap_ids;
    const char *ids_file;
    struct buf ids_text; /* --ids' contents, which ids point into */
    bool watch, help;
    long interval_ms, timeout_s;
};

/* watch is the state of status --watch between polls. */
struct watch {
    const struct cli *c;
    const char *url;
    int64_t deadline;  /* monotonic ms; INT64_MAX without --timeout */
    int64_t last_ok;   /* monotonic ms of the last answer; 0 before the first */
    bool outage_noted; /* the current outage was reported on stderr */
    char last[64];     /* "<status> <attempts>" last printed */
    char state[32];    /* the status last seen, for the timeout message */
    struct http_answer a;
};

static int take(void *opts, int opt, const char *arg)
{
    struct status_opts *o = opts;
    if (opt == OPT_WATCH) {
        o->watch = true;
    } else if (opt == OPT_IDS) {
        o->ids_file = arg;
    } else if (opt == OPT_INTERVAL) {
        if (cli_long(arg, INTERVAL_MIN_MS, INTERVAL_MAX_MS, &o->interval_ms) < 0)
            return cli_usage("status", "--interval wants milliseconds in %d..%d, not \"%s\"",
                             INTERVAL_MIN_MS, INTERVAL_MAX_MS, arg);
    } else if (cli_long(arg, 0, TIMEOUT_MAX_S, &o->timeout_s) < 0) {
        return cli_usage("status", "--timeout wants whole seconds, not \"%s\"", arg);
    }
    return CLI_OK;
}

/* takes_value tells whether the long option name (after "--", without "=")
 * takes its value from the next argument; getopt_long accepts unambiguous
 * prefixes, so a prefix of such an option counts. */
static bool takes_value(const char *name)
{
    size_t n = strlen(name);
    for (const struct option *o = options; o->name && n; o++)
        if (o->has_arg == required_argument && strncmp(o->name, name, n) == 0) return true;
    return false;
}

/* add_id appends id to o's IDs; -1 when out of memory or too many. */
static int add_id(struct status_opts *o, char *id)
{
    if (o->n_ids == o->cap_ids) {
        size_t cap = o->cap_ids ? 2 * o->cap_ids : 16;
        char **more = cap <= MAX_IDS ? realloc(o->ids, cap * sizeof *more) : NULL;
        if (!more) return -1;
        o->ids = more;
        o->cap_ids = cap;
    }
    o->ids[o->n_ids++] = id;
    return 0;
}

/* pick_ids takes the request IDs out of argv before getopt sees them. IDs
 * use an alphabet in ASCII order that starts with '-', so today's IDs all
 * start with '-' and getopt would take them for options. The values of
 * options that take one are skipped, and "--" ends the search. */
static int pick_ids(struct status_opts *o, int *argc, char *argv[])
{
    for (int i = 1; i < *argc;) {
        char *a = argv[i];
        if (strcmp(a, "--") == 0) break;
        if (a[0] == '-' && a[1] == '-' && !strchr(a, '=') && takes_value(a + 2)) {
            i += 2;
            continue;
        }
        if (!id_valid(a, strlen(a))) {
            i++;
            continue;
        }
        if (add_id(o, a) < 0) return -1;
        /* argv[*argc] is NULL and moves down with the rest. */
        memmove(&argv[i], &argv[i + 1], (size_t)(*argc - i) * sizeof *argv);
        (*argc)--;
    }
    return 0;
}

/* read_ids adds the IDs of --ids, one per line (blank lines skipped). */
static int read_ids(struct status_opts *o)
{
    buf_init(&o->ids_text, CLI_MAX_INPUT);
    if (cli_read_file(o->ids_file, &o->ids_text) < 0 || buf_append(&o->ids_text, "", 1) < 0)
        return CLI_USAGE;
    char *p = o->ids_text.data;
    for (long no = 1; *p; no++) {
        char *nl = strchr(p, '\n'), *end = nl ? nl : p + strlen(p);
        while (end > p && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
            end--;
        char *next = nl ? nl + 1 : end;
        *end = '\0';
        if (*p && !id_valid(p, strlen(p)))
            return cli_usage("status", "line %ld of %s is not a request ID: \"%.64s\"", no,
                             o->ids_file, p);
        if (*p && add_id(o, p) < 0) return cli_oom();
        p = next;
    }
    return CLI_OK;
}

static int parse(struct cli *c, struct status_opts *o, int argc, char *argv[])
{
    if (pick_ids(o, &argc, argv) < 0) return cli_oom();
    int rc = cli_getopt(c, "status", argc, argv, options, OPT_WATCH, OPT_IDS, take, o, &o->help);
    if (rc != CLI_OK || o->help) return rc;
    /* After "--", pick_ids did not look. */
    for (; optind < argc && id_valid(argv[optind], strlen(argv[optind])); optind++)
        if (add_id(o, argv[optind]) < 0) return cli_oom();
    if (optind < argc)
        return cli_usage("status", "\"%s\" is not a request ID (%d characters of -0-9A-Z_a-z)",
                         argv[optind], ID_LEN);
    if (o->ids_file && (rc = read_ids(o)) != CLI_OK) return rc;
    if (o->n_ids == 0) return cli_usage("status", "wants a request ID");
    if ((o->n_ids > 1 || o->ids_file) && !o->watch)
        return cli_usage("status", "several requests are shown with --watch only");
    o->id = o->ids[0];
    return CLI_OK;
}

static int fetch(const struct cli *c, const char *url, long timeout_ms, struct http_answer *a)
{
    struct http_call call = {.method = "GET",
                             .url = url,
                             .token = c->token,
                             .cacert = c->cacert,
                             .timeout_ms = timeout_ms};
    return http_call(&call, a);
}

/* answer_json parses a 200 answer, reporting a body that is not JSON. */
static struct json_object *answer_json(const struct http_answer *a)
{
    struct json_object *o = cli_parse_answer(a);
    if (!o || !print_str(o, "status"))
        fprintf(stderr, "sluice: the status answer is not a status: %.200s\n", http_body(a));
    if (o && !print_str(o, "status")) {
        json_object_put(o);
        o = NULL;
    }
    return o;
}

static int show_once(const struct cli *c, const char *url)
{
    struct http_answer a;
    http_answer_init(&a);
    int rc = fetch(c, url, CLI_CALL_TIMEOUT_MS, &a);
    struct json_object *o = NULL;
    if (rc || a.status != 200) {
        rc = cli_fail(c, &a, rc);
    } else if (c->json) {
        cli_print_body(&a);
    } else if ((o = answer_json(&a))) {
        print_status(stdout, o);
    } else {
        rc = CLI_API;
    }
    json_object_put(o);
    http_answer_free(&a);
    return rc;
}

static bool is_final(const char *status)
{
    return !strcmp(status, "succeeded") || !strcmp(status, "failed") || !strcmp(status, "dead");
}

/* observe prints a polled status if it changed; it returns the exit code
 * once the status is final, or -1 to keep watching. */
static int observe(struct watch *w)
{
    struct json_object *o = answer_json(&w->a);
    if (!o) return CLI_API;
    const char *status = print_str(o, "status");
    struct json_object *attempts = NULL;
    json_object_object_get_ex(o, "attempts", &attempts);
    char now[sizeof w->last];
    snprintf(now, sizeof now, "%s %d", status, attempts ? json_object_get_int(attempts) : -1);
    if (strcmp(now, w->last) != 0) {
        if (w->c->json)
            cli_print_body(&w->a);
        else
            print_change(stdout, o);
        memcpy(w->last, now, sizeof now);
    }
    snprintf(w->state, sizeof w->state, "%s", status);
    int rc = -1;
    if (is_final(status)) {
        if (!w->c->json) {
            putchar('\n');
            print_status(stdout, o);
        }
        rc = strcmp(status, "succeeded") == 0 ? CLI_OK : CLI_FINAL_FAILED;
    }
    fflush(stdout);
    json_object_put(o);
    return rc;
}

/* outage handles a poll without a usable answer (no answer, 503, or a 404
 * for a request already seen, which a restarted ingress answers until it has
 * read the events stream again): it returns the exit code when the watch
 * must end, or -1 to poll again. */
static int outage(struct watch *w, int rc, int64_t now)
{
    if (now >= w->deadline) return -1; /* the caller reports the timeout */
    if (w->last_ok == 0 || now - w->last_ok > WATCH_OUTAGE_MS) return cli_fail(w->c, &w->a, rc);
    if (!w->outage_noted && rc)
        fprintf(stderr, "sluice: no status from %s (%s), still watching\n", w->c->url, w->a.err);
    else if (!w->outage_noted)
        fprintf(stderr, "sluice: no status from %s (HTTP %ld), still watching\n", w->c->url,
                w->a.status);
    w->outage_noted = true;
    return -1;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* poll_once makes one poll; the exit code when the watch ends, else -1. */
static int poll_once(struct watch *w)
{
    int64_t left = w->deadline - clock_mono_ms();
    long timeout = left < CLI_CALL_TIMEOUT_MS ? (long)(left > 1 ? left : 1) : CLI_CALL_TIMEOUT_MS;
    int rc = fetch(w->c, w->url, timeout, &w->a);
    int64_t now = clock_mono_ms();
    bool seen = w->last_ok != 0;
    if (rc == HTTP_ERR_TRANSPORT ||
        (rc == 0 && (w->a.status == 503 || (seen && w->a.status == 404))))
        return outage(w, rc, now);
    if (rc || w->a.status != 200) return cli_fail(w->c, &w->a, rc);
    w->last_ok = now;
    w->outage_noted = false;
    return observe(w);
}

static int watch(const struct cli *c, const struct status_opts *o, const char *url)
{
    struct watch w = {.c = c, .url = url, .deadline = INT64_MAX};
    int64_t start = clock_mono_ms();
    if (o->timeout_s > 0) w.deadline = start + o->timeout_s * 1000;
    http_answer_init(&w.a);
    int rc;
    while ((rc = poll_once(&w)) < 0) {
        int64_t now = clock_mono_ms();
        if (now >= w.deadline) {
            fprintf(stderr, "sluice: %s is still %s after %ld s\n", o->id,
                    w.state[0] ? w.state : "unknown", o->timeout_s);
            rc = CLI_TIMEOUT;
            break;
        }
        int64_t left = w.deadline - now;
        sleep_ms(left < o->interval_ms ? left : o->interval_ms);
    }
    http_answer_free(&w.a);
    return rc;
}

int status_main(struct cli *c, int argc, char *argv[])
{
    struct status_opts o = {.interval_ms = INTERVAL_DEFAULT_MS};
    struct buf url;
    buf_init(&url, 1 << 20);
    int rc = parse(c, &o, argc, argv);
    if (rc == CLI_OK && o.help) fputs(usage, stdout);
    if (rc != CLI_OK || o.help) goto out;
    if (cli_url(c, "/v1/requests/", &url) < 0 || buf_appends(&url, o.id) < 0) {
        rc = cli_oom();
        goto out;
    }
    if (o.n_ids > 1 || o.ids_file)
        rc = watch_many(c, o.ids, o.n_ids, o.timeout_s);
    else
        rc = o.watch ? watch(c, &o, url.data) : show_once(c, url.data);
out:
    buf_free(&url);
    buf_free(&o.ids_text);
    free(o.ids);
    return rc;
}
