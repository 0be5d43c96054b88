/* listing.c: pages of a tenant's requests (see listing.h). The cursor is
 * the last item's creation time (8 characters of the ID alphabet, like an
 * ID's time part) followed by its ID: 40 characters that sort nothing and
 * promise nothing but "continue after this one". */
#include "listing.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "id.h"

#define CURSOR_LEN (8 + ID_LEN)

struct query {
    int state; /* -1: any */
    char route[65];
    long limit;
    bool after;
    int64_t after_ms;
    char after_id[ID_LEN + 1];
};

/* A candidate of the page. */
struct item {
    int64_t created_ms;
    char id[ID_LEN + 1];
};

struct page {
    const struct query *q;
    struct item *heap; /* min-heap of the best q->limit + 1 so far */
    size_t n, cap;
};

static int cmp(const struct item *a, int64_t ms, const char *id)
{
    if (a->created_ms != ms) return a->created_ms < ms ? -1 : 1;
    return memcmp(a->id, id, ID_LEN);
}

static bool below(const struct item *a, const struct item *b)
{
    return cmp(a, b->created_ms, b->id) < 0;
}

static void sift_down(struct page *p, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < p->n && below(&p->heap[l], &p->heap[m])) m = l;
        if (r < p->n && below(&p->heap[r], &p->heap[m])) m = r;
        if (m == i) return;
        struct item t = p->heap[i];
        p->heap[i] = p->heap[m];
        p->heap[m] = t;
        i = m;
    }
}

static void sift_up(struct page *p, size_t i)
{
    while (i > 0 && below(&p->heap[i], &p->heap[(i - 1) / 2])) {
        struct item t = p->heap[i];
        p->heap[i] = p->heap[(i - 1) / 2];
        p->heap[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static void visit(void *arg, const struct status_brief *b)
{
    struct page *p = arg;
    const struct query *q = p->q;
    if ((q->state >= 0 && (int)b->state != q->state) || (q->route[0] && strcmp(b->route, q->route)))
        return;
    struct item it = {.created_ms = b->created_ms};
    memcpy(it.id, b->id, ID_LEN + 1);
    if (q->after && cmp(&it, q->after_ms, q->after_id) >= 0) return;
    if (p->n < p->cap) {
        p->heap[p->n++] = it;
        sift_up(p, p->n - 1);
    } else if (below(&p->heap[0], &it)) {
        p->heap[0] = it;
        sift_down(p, 0);
    }
}

static int by_newest(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    return -cmp(x, y->created_ms, y->id);
}

static void cursor_of(const struct item *it, char out[CURSOR_LEN + 1])
{
    unsigned char raw[ID_BYTES] = {0};
    char enc[ID_LEN + 1];
    uint64_t t = it->created_ms < 0 ? 0 : (uint64_t)it->created_ms;
    for (int i = 5; i >= 0; i--, t >>= 8)
        raw[i] = (unsigned char)(t & 0xff);
    id_encode(raw, enc);
    memcpy(out, enc, 8);
    memcpy(out + 8, it->id, ID_LEN + 1);
}

static int fail(struct listing_error *err, const char *msg)
{
    snprintf(err->message, sizeof err->message, "%s", msg);
    return -EINVAL;
}

/* param reads one name=value of the query (value len bytes, undecoded). */
static int param(struct query *q, const char *name, size_t nlen, const char *v, size_t vlen,
                 struct listing_error *err)
{
    char text[64];
    if (vlen >= sizeof text) return fail(err, "a query parameter is too long");
    memcpy(text, v, vlen);
    text[vlen] = '\0';
    if (nlen == 6 && !memcmp(name, "status", 6)) {
        if ((q->state = event_state_parse(text)) < 0)
            return fail(err, "status: must be queued, processing, retrying, succeeded, failed, "
                             "dead or cancelled");
    } else if (nlen == 5 && !memcmp(name, "route", 5)) {
        if (!vlen || vlen > 64 ||
            strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") !=
                vlen)
            return fail(err, "route: must be a route name");
        memcpy(q->route, text, vlen + 1);
    } else if (nlen == 5 && !memcmp(name, "limit", 5)) {
        char *end;
        errno = 0;
        q->limit = strtol(text, &end, 10);
        if (!vlen || errno || *end || q->limit < 1 || q->limit > LISTING_MAX)
            return fail(err, "limit: must be between 1 and 1000");
    } else if (nlen == 5 && !memcmp(name, "after", 5)) {
        if (vlen != CURSOR_LEN || !id_valid(text, ID_LEN) || !id_valid(text + 8, ID_LEN))
            return fail(err, "after: must be the next_after of a previous page");
        q->after = true;
        q->after_ms = id_time_ms(text);
        memcpy(q->after_id, text + 8, ID_LEN + 1);
    } else {
        return fail(err, "unknown query parameter (status, route, limit and after are known)");
    }
    return 0;
}

static int parse(const char *query, struct query *q, struct listing_error *err)
{
    *q = (struct query){.state = -1, .limit = LISTING_DEFAULT};
    for (const char *p = query; p && *p;) {
        size_t len = strcspn(p, "&");
        const char *eq = memchr(p, '=', len);
        if (!eq) return fail(err, "the query must be name=value pairs joined by &");
        if (len && param(q, p, (size_t)(eq - p), eq + 1, len - (size_t)(eq - p) - 1, err) < 0)
            return -EINVAL;
        p += len + (p[len] == '&');
    }
    return 0;
}

static int render(struct status_index *idx, const char *tenant, struct page *p, struct buf *out)
{
    qsort(p->heap, p->n, sizeof *p->heap, by_newest);
    size_t shown = p->n > (size_t)p->q->limit ? (size_t)p->q->limit : p->n;
    int rc = buf_appends(out, "{\"requests\":[");
    bool first = true;
    for (size_t i = 0; !rc && i < shown; i++) {
        size_t mark = out->len;
        rc = buf_appends(out, first ? "" : ",");
        if (!rc) rc = status_index_render_ex(idx, p->heap[i].id, tenant, false, out);
        if (rc == -ENOENT) { /* gone since the scan: left out */
            out->len = mark;
            out->data[mark] = '\0';
            rc = 0;
            continue;
        }
        first = false;
    }
    if (!rc && shown < p->n) {
        char cursor[CURSOR_LEN + 1];
        cursor_of(&p->heap[shown - 1], cursor);
        rc = buf_appendf(out, "],\"next_after\":\"%s\"}", cursor);
    } else if (!rc) {
        rc = buf_appends(out, "],\"next_after\":null}");
    }
    return rc;
}

int listing_render(struct status_index *idx, const char *tenant, const char *query, struct buf *out,
                   struct listing_error *err)
{
    struct query q;
    if (parse(query, &q, err) < 0) return -EINVAL;
    struct page p = {.q = &q, .cap = (size_t)q.limit + 1};
    p.heap = malloc(p.cap * sizeof *p.heap);
    if (!p.heap) return -ENOMEM;
    status_index_scan(idx, tenant, visit, &p);
    int rc = render(idx, tenant, &p, out);
    free(p.heap);
    return rc;
}
