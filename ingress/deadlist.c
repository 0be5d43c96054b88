/* deadlist.c: the dead letters' listing (see deadlist.h). */
#include "deadlist.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "deadletters.h"
#include "config.h"
#include "id.h"
#include "jscan.h"

struct dquery {
    char route[DL_NAME_MAX + 1];
    char tenant[DL_NAME_MAX + 1];
    long limit;
    char after[ID_LEN + 1];
};

struct page {
    const struct dquery *q;
    struct buf *out;
    long shown;
    bool more;
    int rc;
    char last[ID_LEN + 1];
};

static int fail(char message[160], const char *msg)
{
    snprintf(message, 160, "%s", msg);
    return -EINVAL;
}

/* name_param keeps a route or tenant name: printable, no escapes needed. */
static int name_param(char out[DL_NAME_MAX + 1], const char *v, size_t vlen, char message[160],
                      const char *why)
{
    if (!vlen || vlen > DL_NAME_MAX ||
        strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-@:") < vlen)
        return fail(message, why);
    memcpy(out, v, vlen);
    out[vlen] = '\0';
    return 0;
}

static int param(struct dquery *q, const char *name, size_t nlen, const char *v, size_t vlen,
                 char message[160])
{
    if (nlen == 5 && !memcmp(name, "route", 5))
        return name_param(q->route, v, vlen, message, "route: must be a route name");
    if (nlen == 6 && !memcmp(name, "tenant", 6))
        return name_param(q->tenant, v, vlen, message, "tenant: must be a tenant name");
    if (nlen == 5 && !memcmp(name, "limit", 5)) {
        char text[16], *end;
        if (!vlen || vlen >= sizeof text) return fail(message, "limit: must be between 1 and 1000");
        memcpy(text, v, vlen);
        text[vlen] = '\0';
        errno = 0;
        q->limit = strtol(text, &end, 10);
        if (errno || *end || q->limit < 1 || q->limit > DEADLIST_MAX)
            return fail(message, "limit: must be between 1 and 1000");
        return 0;
    }
    if (nlen == 5 && !memcmp(name, "after", 5)) {
        if (vlen != ID_LEN || !id_valid(v, ID_LEN))
            return fail(message, "after: must be the next_after of a previous page");
        memcpy(q->after, v, ID_LEN);
        q->after[ID_LEN] = '\0';
        return 0;
    }
    return fail(message, "unknown query parameter (route, tenant, limit and after are known)");
}

static int parse(const char *query, struct dquery *q, char message[160])
{
    *q = (struct dquery){.limit = DEADLIST_DEFAULT};
    for (const char *p = query; p && *p;) {
        size_t len = strcspn(p, "&");
        const char *eq = memchr(p, '=', len);
        if (!eq) return fail(message, "the query must be name=value pairs joined by &");
        if (len && param(q, p, (size_t)(eq - p), eq + 1, len - (size_t)(eq - p) - 1, message) < 0)
            return -EINVAL;
        p += len + (p[len] == '&');
    }
    return 0;
}

/* error_code reads the "code" of an error document into out ("" if none). */
static void error_code(const char *error, char out[64])
{
    struct jscan s;
    char key[8];
    size_t n;
    out[0] = '\0';
    if (!error || !jscan_init(&s, error, strlen(error)) || !jscan_enter(&s, '{')) return;
    while (jscan_next(&s, key, sizeof key) == 1) {
        if (!strcmp(key, "code")) {
            if (!jscan_string(&s, out, 64, &n)) out[0] = '\0';
            return;
        }
        if (!jscan_value(&s, NULL, NULL)) return;
    }
}

/* last_status reads the backend's HTTP status from a result document, or -1. */
static long last_status(const char *result)
{
    struct jscan s;
    char key[8];
    int64_t status;
    if (!result || !jscan_init(&s, result, strlen(result)) || !jscan_enter(&s, '{')) return -1;
    while (jscan_next(&s, key, sizeof key) == 1) {
        if (!strcmp(key, "status")) return jscan_int(&s, 0, 999, &status) ? (long)status : -1;
        if (!jscan_value(&s, NULL, NULL)) return -1;
    }
    return -1;
}

static int append_item(struct buf *out, const struct status_brief *b)
{
    char code[64], dead_at[32];
    long status = last_status(b->result);
    error_code(b->error, code);
    clock_rfc3339(dead_at, b->updated_ms);
    int rc = buf_appendf(out, "{\"id\":\"%s\",\"tenant\":", b->id);
    if (!rc) rc = buf_append_json_string(out, b->tenant, strlen(b->tenant));
    if (!rc) rc = buf_appends(out, ",\"route\":");
    if (!rc) rc = buf_append_json_string(out, b->route, strlen(b->route));
    if (!rc) rc = buf_appends(out, ",\"reason\":");
    if (!rc)
        rc = code[0] ? buf_append_json_string(out, code, strlen(code)) : buf_appends(out, "null");
    if (!rc)
        rc = status < 0 ? buf_appends(out, ",\"last_status\":null")
                        : buf_appendf(out, ",\"last_status\":%ld", status);
    if (!rc)
        rc = buf_appendf(out, ",\"attempts\":%d,\"replays\":%d,\"dead_at\":\"%s\"", b->attempts,
                         b->replays, dead_at);
    if (!rc && b->error) rc = buf_appendf(out, ",\"error\":%s", b->error);
    return rc ? rc : buf_appends(out, "}");
}

static bool visit(void *arg, const struct status_brief *b)
{
    struct page *p = arg;
    const struct dquery *q = p->q;
    if (b->state != ST_DEAD || b->purged || (q->route[0] && strcmp(q->route, b->route)) ||
        (q->tenant[0] && strcmp(q->tenant, b->tenant)))
        return true;
    if (p->shown == q->limit) {
        p->more = true;
        return false;
    }
    p->rc = buf_appends(p->out, p->shown ? "," : "");
    if (!p->rc) p->rc = append_item(p->out, b);
    memcpy(p->last, b->id, sizeof p->last);
    p->shown++;
    return p->rc == 0;
}

int deadlist_render(struct status_index *idx, const char *query, struct buf *out, char message[160])
{
    struct dquery q;
    if (parse(query, &q, message) < 0) return -EINVAL;
    struct page p = {.q = &q, .out = out};
    int rc = buf_appends(out, "{\"dead\":[");
    if (rc) return rc;
    status_index_scan_all(idx, q.after[0] ? q.after : NULL, visit, &p);
    if (p.rc) return p.rc;
    if (p.more) return buf_appendf(out, "],\"next_after\":\"%s\"}", p.last);
    return buf_appends(out, "],\"next_after\":null}");
}
