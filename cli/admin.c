/* admin.c: `sluice dead list|replay|purge` and `sluice routes
 * list|pause|resume|set` (see admin.h): each is one call of the admin API,
 * printed as a table, or as the API's JSON with --json. */
#include "admin.h"

#include <stdio.h>
#include <string.h>

static const char dead_usage[] =
    "usage: sluice dead list [--route R] [--tenant T] [--limit N] [--after ID]\n"
    "       sluice dead replay (--all | --route R | ID...)\n"
    "       sluice dead purge (--all | --route R | ID...) --yes\n"
    "\n"
    "Lists the dead requests, sends them back to their route's lane with fresh\n"
    "attempts (replay: their status becomes the replay's outcome), or deletes\n"
    "them for good (purge, which asks for --yes). Needs an admin key.\n" CLI_GLOBAL_HELP;

static const char routes_usage[] =
    "usage: sluice routes list\n"
    "       sluice routes pause ROUTE | resume ROUTE\n"
    "       sluice routes set ROUTE [--rate N] [--max-in-flight N] | set ROUTE --clear\n"
    "\n"
    "Shows every route's state and limits; pauses a route (no worker starts a call\n"
    "of it within 2 s; submissions still queue) or resumes it; overrides its limits\n"
    "fleet-wide until --clear. Needs an admin key.\n" CLI_GLOBAL_HELP;

enum {
    OPT_ROUTE = CLI_OPT_COMMAND,
    OPT_TENANT,
    OPT_LIMIT,
    OPT_AFTER,
    OPT_ALL,
    OPT_YES,
    OPT_RATE,
    OPT_MIF,
    OPT_CLEAR
};

struct opts {
    const char *route, *tenant, *limit, *after, *rate, *mif;
    bool all, yes, clear;
};

static const struct option options[] = {
    {"route", required_argument, NULL, OPT_ROUTE},
    {"tenant", required_argument, NULL, OPT_TENANT},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"after", required_argument, NULL, OPT_AFTER},
    {"all", no_argument, NULL, OPT_ALL},
    {"yes", no_argument, NULL, OPT_YES},
    {"rate", required_argument, NULL, OPT_RATE},
    {"max-in-flight", required_argument, NULL, OPT_MIF},
    {"clear", no_argument, NULL, OPT_CLEAR},
    CLI_GLOBAL_OPTIONS,
    {NULL, 0, NULL, 0},
};

static int take(void *arg, int opt, const char *v)
{
    struct opts *o = arg;
    switch (opt) {
    case OPT_ROUTE:
        o->route = v;
        break;
    case OPT_TENANT:
        o->tenant = v;
        break;
    case OPT_LIMIT:
        o->limit = v;
        break;
    case OPT_AFTER:
        o->after = v;
        break;
    case OPT_ALL:
        o->all = true;
        break;
    case OPT_YES:
        o->yes = true;
        break;
    case OPT_RATE:
        o->rate = v;
        break;
    case OPT_MIF:
        o->mif = v;
        break;
    default:
        o->clear = true;
        break;
    }
    return CLI_OK;
}

/* call makes one call of the admin API; 0 with the parsed answer (caller
 * puts) when it is 200, else the exit code (reported). */
static int call(const struct cli *c, const char *method, const char *path, const char *body,
                struct json_object **out)
{
    struct buf url;
    struct http_answer a;
    struct curl_slist *extra = NULL;
    int rc;
    buf_init(&url, 1 << 20);
    http_answer_init(&a);
    *out = NULL;
    if (cli_url(c, path, &url) < 0 ||
        (body && !(extra = curl_slist_append(NULL, "Content-Type: application/json")))) {
        rc = cli_oom();
        goto out;
    }
    struct http_call hc = {.method = method,
                           .url = url.data,
                           .token = c->token,
                           .cacert = c->cacert,
                           .extra = extra,
                           .body = body,
                           .len = body ? strlen(body) : 0,
                           .timeout_ms = CLI_CALL_TIMEOUT_MS};
    rc = http_call(&hc, &a);
    if (rc || a.status != 200 || !(*out = cli_parse_answer(&a))) {
        if (!rc && a.status == 200) a.status = 502; /* not JSON: makes no sense */
        rc = cli_fail(c, &a, rc);
        goto out;
    }
    if (c->json) cli_print_body(&a);
out:
    curl_slist_free_all(extra);
    http_answer_free(&a);
    buf_free(&url);
    return rc;
}

static const char *str(struct json_object *o, const char *key)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
        return "-";
    return json_object_get_string(v);
}

static int dead_list(const struct cli *c, const struct opts *o)
{
    struct buf path;
    struct json_object *doc, *items;
    buf_init(&path, 4096);
    int rc = buf_appends(&path, "/v1/admin/dead?limit=") ||
             buf_appends(&path, o->limit ? o->limit : "100");
    if (!rc && o->route) rc = buf_appendf(&path, "&route=%s", o->route);
    if (!rc && o->tenant) rc = buf_appendf(&path, "&tenant=%s", o->tenant);
    if (!rc && o->after) rc = buf_appendf(&path, "&after=%s", o->after);
    rc = rc ? cli_oom() : call(c, "GET", path.data, NULL, &doc);
    buf_free(&path);
    if (rc) return rc;
    if (!c->json && json_object_object_get_ex(doc, "dead", &items)) {
        for (size_t i = 0; i < json_object_array_length(items); i++) {
            struct json_object *d = json_object_array_get_idx(items, i);
            printf("%s  %s  %s  %s  status %s  attempts %s  replays %s  %s\n", str(d, "id"),
                   str(d, "tenant"), str(d, "route"), str(d, "reason"), str(d, "last_status"),
                   str(d, "attempts"), str(d, "replays"), str(d, "dead_at"));
        }
        if (strcmp(str(doc, "next_after"), "-"))
            printf("more: --after %s\n", str(doc, "next_after"));
    }
    json_object_put(doc);
    return CLI_OK;
}

/* selector builds {"all":true}, {"route":..} or {"ids":[..]}. */
static int selector(const struct opts *o, int argc, char *argv[], struct buf *body)
{
    if (o->all + (o->route != NULL) + (argc > 0) != 1) return -1;
    if (o->all) return buf_appends(body, "{\"all\":true}") ? -2 : 0;
    if (o->route) {
        int rc = buf_appends(body, "{\"route\":");
        if (!rc) rc = buf_append_json_string(body, o->route, strlen(o->route));
        return rc || buf_appends(body, "}") ? -2 : 0;
    }
    int rc = buf_appends(body, "{\"ids\":[");
    for (int i = 0; !rc && i < argc; i++) {
        if (i) rc = buf_appends(body, ",");
        if (!rc) rc = buf_append_json_string(body, argv[i], strlen(argv[i]));
    }
    return rc || buf_appends(body, "]}") ? -2 : 0;
}

static int dead_pass(const struct cli *c, const struct opts *o, const char *verb, int argc,
                     char *argv[])
{
    struct buf body;
    struct json_object *doc, *n;
    buf_init(&body, 16 << 20);
    int sel = selector(o, argc, argv, &body);
    int rc = sel == -1   ? cli_usage("dead", "give exactly one of --all, --route R or IDs")
             : sel == -2 ? cli_oom()
                         : CLI_OK;
    if (!rc && !strcmp(verb, "purge") && !o->yes)
        rc = cli_usage("dead", "purge deletes requests for good: add --yes");
    char path[64];
    snprintf(path, sizeof path, "/v1/admin/dead:%s", verb);
    if (!rc) rc = call(c, "POST", path, body.data, &doc);
    buf_free(&body);
    if (rc) return rc;
    const char *key = !strcmp(verb, "replay") ? "replayed" : "purged";
    if (!c->json && json_object_object_get_ex(doc, key, &n))
        printf("%s %s\n", key, json_object_get_string(n));
    json_object_put(doc);
    return CLI_OK;
}

int dead_main(struct cli *c, int argc, char *argv[])
{
    struct opts o = {0};
    bool help = false;
    int rc = cli_getopt(c, "dead", argc, argv, options, OPT_ROUTE, OPT_YES, take, &o, &help);
    if (rc == CLI_OK && help) fputs(dead_usage, stdout);
    if (rc != CLI_OK || help) return rc;
    if (optind >= argc) return cli_usage("dead", "say list, replay or purge");
    const char *sub = argv[optind];
    int rest = argc - optind - 1;
    if (!strcmp(sub, "list") && !rest) return dead_list(c, &o);
    if (!strcmp(sub, "replay") || !strcmp(sub, "purge"))
        return dead_pass(c, &o, sub, rest, argv + optind + 1);
    return cli_usage("dead", "say list, replay or purge");
}

/* print_breakers prints a line for each upstream whose breaker some worker
 * does not see closed. */
static void print_breakers(struct json_object *fleet)
{
    struct json_object *ups;
    if (!json_object_object_get_ex(fleet, "upstreams", &ups) ||
        !json_object_is_type(ups, json_type_array))
        return;
    for (size_t i = 0; i < json_object_array_length(ups); i++) {
        struct json_object *u = json_object_array_get_idx(ups, i);
        if (!strcmp(str(u, "breaker"), "closed")) continue;
        printf("  breaker %s %s (open in %s workers, half-open in %s) until %s\n",
               str(u, "upstream"), str(u, "breaker"), str(u, "workers_open"),
               str(u, "workers_half_open"), str(u, "open_until"));
    }
}

static void print_route(struct json_object *r)
{
    struct json_object *eff, *fleet = NULL;
    json_object_object_get_ex(r, "effective", &eff);
    json_object_object_get_ex(r, "fleet", &fleet);
    printf("%-20s %-8s rate %s/s  max_in_flight %s  backlog %s  drain %s/s  in_flight %s  "
           "done %s/s  workers %s\n",
           str(r, "name"), str(r, "state"), str(eff, "rate_per_s"), str(eff, "max_in_flight"),
           str(r, "backlog"), str(r, "drain_per_s"), str(fleet, "in_flight"),
           str(fleet, "completed_per_s"), str(fleet, "workers"));
    print_breakers(fleet);
}

/* route_change makes one change of route and prints its new state. */
static int route_change(const struct cli *c, const char *method, const char *route,
                        const char *suffix, const char *body)
{
    struct buf path;
    struct json_object *doc;
    buf_init(&path, 4096);
    int rc = buf_appendf(&path, "/v1/admin/routes/%s%s", route, suffix)
                 ? cli_oom()
                 : call(c, method, path.data, body, &doc);
    buf_free(&path);
    if (rc) return rc;
    if (!c->json) print_route(doc);
    json_object_put(doc);
    return CLI_OK;
}

static int routes_set(const struct cli *c, const struct opts *o, const char *route)
{
    long n;
    char body[128];
    if (o->clear) {
        if (o->rate || o->mif) return cli_usage("routes", "--clear takes no limits");
        return route_change(c, "DELETE", route, "/override", NULL);
    }
    if (!o->rate && !o->mif) return cli_usage("routes", "give --rate, --max-in-flight or --clear");
    if (o->mif && cli_long(o->mif, 1, 1000000, &n) < 0)
        return cli_usage("routes", "--max-in-flight: a whole number of at least 1");
    if (o->rate && strspn(o->rate, "0123456789.") != strlen(o->rate))
        return cli_usage("routes", "--rate: a number of calls per second");
    snprintf(body, sizeof body, "{%s%s%s%s%s}", o->rate ? "\"rate_per_s\":" : "",
             o->rate ? o->rate : "", o->rate && o->mif ? "," : "",
             o->mif ? "\"max_in_flight\":" : "", o->mif ? o->mif : "");
    return route_change(c, "PATCH", route, "", body);
}

int routes_main(struct cli *c, int argc, char *argv[])
{
    struct opts o = {0};
    bool help = false;
    int rc = cli_getopt(c, "routes", argc, argv, options, OPT_RATE, OPT_CLEAR, take, &o, &help);
    if (rc == CLI_OK && help) fputs(routes_usage, stdout);
    if (rc != CLI_OK || help) return rc;
    const char *sub = optind < argc ? argv[optind] : "";
    const char *route = optind + 1 < argc ? argv[optind + 1] : NULL;
    bool one = optind + 2 == argc;
    if (!strcmp(sub, "list") && optind + 1 == argc) {
        struct json_object *doc, *routes;
        if ((rc = call(c, "GET", "/v1/admin/routes", NULL, &doc))) return rc;
        if (!c->json && json_object_object_get_ex(doc, "routes", &routes))
            for (size_t i = 0; i < json_object_array_length(routes); i++)
                print_route(json_object_array_get_idx(routes, i));
        json_object_put(doc);
        return CLI_OK;
    }
    if (!strcmp(sub, "pause") && one) return route_change(c, "POST", route, ":pause", NULL);
    if (!strcmp(sub, "resume") && one) return route_change(c, "POST", route, ":resume", NULL);
    if (!strcmp(sub, "set") && one) return routes_set(c, &o, route);
    return cli_usage("routes", "say list, pause ROUTE, resume ROUTE or set ROUTE");
}
