/* nodes.c: the list of broker nodes in amqp_url and the rotation over it
 * (see nodes.h). */
#include "nodes.h"

#include <amqp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool scheme_ok(const char *s, size_t len)
{
    return (len > 7 && strncmp(s, "amqp://", 7) == 0) ||
           (len > 8 && strncmp(s, "amqps://", 8) == 0);
}

/* label_of checks one URL with rabbitmq-c's own parser (the one mq_open
 * uses) and writes "host:port" to label. url is modified, as
 * amqp_parse_url does. */
static int label_of(char *url, char *label, size_t len)
{
    struct amqp_connection_info ci;
    if (amqp_parse_url(url, &ci) != AMQP_STATUS_OK || !ci.host[0]) return -1;
    snprintf(label, len, "%s:%d", ci.host, ci.port);
    return 0;
}

/* add appends the URL of len bytes at s (spaces already trimmed). */
static int add(struct nodes *ns, const char *s, size_t len, char *err, size_t errlen)
{
    size_t i = ns->n;
    if (i == NODES_MAX) {
        snprintf(err, errlen, "more than %d URLs", NODES_MAX);
        return -1;
    }
    if (!len) {
        snprintf(err, errlen, "URL %zu of the list is empty", i + 1);
        return -1;
    }
    if (!scheme_ok(s, len)) {
        snprintf(err, errlen, "URL %zu does not start with amqp:// or amqps://", i + 1);
        return -1;
    }
    char *url = strndup(s, len), *scratch = strndup(s, len);
    bool oom = !url || !scratch;
    int rc = oom ? -1 : label_of(scratch, ns->labels[i], sizeof(ns->labels[i]));
    free(scratch);
    if (rc < 0) {
        free(url);
        if (oom)
            snprintf(err, errlen, "out of memory");
        else
            snprintf(err, errlen, "URL %zu is not a valid AMQP URL", i + 1);
        return -1;
    }
    ns->urls[i] = url;
    ns->n++;
    return 0;
}

static bool blank(char c)
{
    return c == ' ' || c == '\t';
}

int nodes_parse(struct nodes *ns, const char *list, char *err, size_t errlen)
{
    *ns = (struct nodes){0};
    const char *p = list;
    for (;;) {
        size_t len = strcspn(p, ",");
        const char *s = p, *e = p + len;
        while (s < e && blank(*s))
            s++;
        while (e > s && blank(e[-1]))
            e--;
        if (add(ns, s, (size_t)(e - s), err, errlen) < 0) {
            nodes_free(ns);
            return -1;
        }
        if (!p[len]) return 0;
        p += len + 1;
    }
}

bool nodes_valid(const char *list)
{
    struct nodes ns;
    char err[128];
    if (nodes_parse(&ns, list, err, sizeof(err)) < 0) return false;
    nodes_free(&ns);
    return true;
}

void nodes_free(struct nodes *ns)
{
    for (size_t i = 0; i < ns->n; i++)
        free(ns->urls[i]);
    *ns = (struct nodes){0};
}

void nodes_start(struct nodes *ns, uint64_t rnd)
{
    ns->cur = ns->n ? (size_t)(rnd % ns->n) : 0;
}

void nodes_next(struct nodes *ns)
{
    if (ns->n) ns->cur = (ns->cur + 1) % ns->n;
}

const char *nodes_url(const struct nodes *ns)
{
    return ns->n ? ns->urls[ns->cur] : "";
}

const char *nodes_label(const struct nodes *ns)
{
    return ns->n ? ns->labels[ns->cur] : "";
}
