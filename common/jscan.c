/* jscan.c: the in-place strict JSON reader (see jscan.h). Every value is
 * checked to the grammar of RFC 8259 as it is read, so a document a caller
 * walks to its end with jscan_done is one json_parse would also accept.
 * json-c, even in strict mode, lets through single quotes, raw control
 * characters in strings, "1.", "-.5" and "-00", replaces a lone surrogate
 * escape and keeps the last of two equal keys; jscan refuses them all, the
 * duplicate keys in jscan_check (the end of this file), which json_parse
 * runs on every document it accepts. */
#include "jscan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* NUMBER_COPY_MAX bounds a number that ends the text, which strtod cannot
 * read in place (nothing stops it); no peer writes longer ones. */
#define NUMBER_COPY_MAX 400

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* refuse records why the read at `at` fails and returns false. Cold: it
 * runs only on bad input, and the reader's hot path must not pay for it. */
__attribute__((cold, noinline)) static bool refuse(struct jscan *s, const char *why, const char *at)
{
    s->why = why;
    s->why_at = at;
    return false;
}

static void skip_ws(struct jscan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

bool jscan_init(struct jscan *s, const char *text, size_t len)
{
    if (!text) text = "", len = 0;
    *s = (struct jscan){.p = text, .end = text + len};
    return !memchr(text, '\0', len) && json_utf8_valid(text, len);
}

char jscan_peek(struct jscan *s)
{
    skip_ws(s);
    return s->p < s->end ? *s->p : '\0';
}

bool jscan_done(struct jscan *s)
{
    skip_ws(s);
    return s->p == s->end;
}

/* enter is jscan_enter, inlined into the reader's own loops. */
__attribute__((always_inline)) static inline bool enter(struct jscan *s, char open)
{
    if (jscan_peek(s) != open || s->depth >= JSON_MAX_DEPTH) return false;
    s->p++;
    s->depth++;
    s->fresh = true;
    return true;
}

bool jscan_enter(struct jscan *s, char open)
{
    return enter(s, open);
}

static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = is_digit(c)            ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* read_escape_u decodes the 4 hex digits after "\u" (and a low surrogate's
 * "\uXXXX" after a high one) into a code point, or returns -1. */
static long read_escape_u(struct jscan *s)
{
    const char *at = s->p - 2;
    if (s->end - s->p < 4 || hex4(s->p) < 0) return refuse(s, "\\u needs 4 hex digits", at), -1;
    long cp = hex4(s->p);
    s->p += 4;
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return refuse(s, "lone surrogate escape (a low surrogate with no high one before it)", at),
               -1;
    if (cp < 0xD800 || cp > 0xDBFF) return cp;
    long lo = s->end - s->p >= 6 && s->p[0] == '\\' && s->p[1] == 'u' ? hex4(s->p + 2) : -1;
    if (lo < 0xDC00 || lo > 0xDFFF)
        return refuse(s, "lone surrogate escape (a high surrogate with no low one after it)", at),
               -1;
    s->p += 6;
    return 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
}

/* A string being decoded: bytes past cap are counted, not stored. */
struct sink {
    char *out;
    size_t cap, n;
    bool nul;
};

static void put(struct sink *k, unsigned char c)
{
    if (k->n + 1 < k->cap) k->out[k->n] = (char)c;
    k->n++;
}

static void put_utf8(struct sink *k, long cp)
{
    if (cp == 0) k->nul = true;
    if (cp < 0x80) {
        put(k, (unsigned char)cp);
    } else if (cp < 0x800) {
        put(k, (unsigned char)(0xC0 | cp >> 6));
        put(k, (unsigned char)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        put(k, (unsigned char)(0xE0 | cp >> 12));
        put(k, (unsigned char)(0x80 | (cp >> 6 & 0x3F)));
        put(k, (unsigned char)(0x80 | (cp & 0x3F)));
    } else {
        put(k, (unsigned char)(0xF0 | cp >> 18));
        put(k, (unsigned char)(0x80 | (cp >> 12 & 0x3F)));
        put(k, (unsigned char)(0x80 | (cp >> 6 & 0x3F)));
        put(k, (unsigned char)(0x80 | (cp & 0x3F)));
    }
}

/* scan_string reads the string at the cursor (its opening quote) into k and
 * NUL-terminates what fits. */
static bool scan_string(struct jscan *s, struct sink *k)
{
    static const char plain[] = "\"\\/bfnrt", decoded[] = "\"\\/\b\f\n\r\t";
    s->p++;
    for (;;) {
        if (s->p == s->end) return false;
        unsigned char c = (unsigned char)*s->p++;
        if (c == '"') break;
        if (c < 0x20) return refuse(s, "raw control character in a string (escape it)", s->p - 1);
        if (c != '\\') {
            put(k, c);
            continue;
        }
        if (s->p == s->end) return false;
        char e = *s->p++;
        const char *at = e ? strchr(plain, e) : NULL;
        long cp = at ? decoded[at - plain] : e == 'u' ? read_escape_u(s) : -1;
        if (cp < 0) return e == 'u' ? false : refuse(s, "invalid escape in a string", s->p - 2);
        put_utf8(k, cp);
    }
    if (k->cap) k->out[k->n < k->cap ? k->n : k->cap - 1] = '\0';
    return true;
}

static const char *digits(const char *p, const char *end)
{
    while (p < end && is_digit(*p))
        p++;
    return p;
}

/* number_finite tells whether the number text [p, end) is within a double's range,
 * as json_parse requires. s_end is the end of the whole text. */
static bool number_finite(const char *p, const char *end, const char *s_end)
{
    char copy[NUMBER_COPY_MAX + 1];
    if (end == s_end) { /* strtod would read on past the text */
        if (end - p > NUMBER_COPY_MAX) return false;
        memcpy(copy, p, (size_t)(end - p));
        copy[end - p] = '\0';
        p = copy;
    }
    return isfinite(strtod(p, NULL));
}

/* scan_number reads the number at the cursor; *integer tells whether it has
 * neither fraction nor exponent. */
static bool scan_number(struct jscan *s, bool *integer)
{
    const char *p = s->p, *end = s->end;
    if (p < end && *p == '-') p++;
    if (p == end || !is_digit(*p))
        return refuse(s,
                      p < end && *p == '.' ? "a number needs a digit before its point"
                                           : "a number needs a digit after its minus sign",
                      s->p);
    p = *p == '0' ? p + 1 : digits(p, end);
    *integer = true;
    if (p < end && *p == '.') {
        const char *d = p + 1;
        if ((p = digits(d, end)) == d)
            return refuse(s, "a number needs a digit after its point", s->p);
        *integer = false;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        const char *d = p + 1 < end && (p[1] == '+' || p[1] == '-') ? p + 2 : p + 1;
        if ((p = digits(d, end)) == d)
            return refuse(s, "a number needs a digit in its exponent", s->p);
        *integer = false;
    }
    /* 15 digits always fit; longer integers and any fraction or exponent may not. */
    if ((!*integer || p - s->p > 15) && !number_finite(s->p, p, end))
        return refuse(s, "number out of range", s->p);
    s->p = p;
    return true;
}

static bool scan_literal(struct jscan *s, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0) return false;
    s->p += n;
    return true;
}

int jscan_next(struct jscan *s, char *key, size_t cap)
{
    char c = jscan_peek(s);
    if (c == (key ? '}' : ']')) {
        s->p++;
        s->depth--;
        s->fresh = false;
        return 0;
    }
    if (!s->fresh) {
        if (c != ',')
            return refuse(s, key ? "expected ',' or '}'" : "expected ',' or ']'", s->p), -1;
        s->p++;
    }
    s->fresh = false;
    if (!key) return 1;
    struct sink k = {.out = key, .cap = cap};
    if (jscan_peek(s) != '"') return refuse(s, "expected a member name in double quotes", s->p), -1;
    if (!scan_string(s, &k)) return -1;
    if (jscan_peek(s) != ':') return refuse(s, "expected ':' after a member name", s->p), -1;
    if (k.n >= cap && cap) key[0] = '\0';
    s->p++;
    return 1;
}

bool jscan_string(struct jscan *s, char *out, size_t cap, size_t *len)
{
    struct sink k = {.out = out, .cap = cap};
    if (jscan_peek(s) != '"' || !scan_string(s, &k)) return false;
    *len = k.n;
    return !k.nul && k.n < cap;
}

bool jscan_int(struct jscan *s, int64_t min, int64_t max, int64_t *out)
{
    char c = jscan_peek(s);
    const char *p = s->p;
    bool integer;
    if ((c != '-' && !is_digit(c)) || !scan_number(s, &integer) || !integer) return false;
    bool neg = *p == '-';
    uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (p += neg; p < s->p; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (limit - d) / 10) return false;
        v = v * 10 + d;
    }
    int64_t x = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    if (x < min || x > max) return false;
    *out = x;
    return true;
}

bool jscan_value(struct jscan *s, const char **text, size_t *len)
{
    char c = jscan_peek(s), key[1];
    const char *start = s->p;
    struct sink none = {0};
    bool ok, integer;
    int r = -1;
    switch (c) {
    case '{':
    case '[':
        ok = enter(s, c);
        while (ok && (r = jscan_next(s, c == '{' ? key : NULL, sizeof key)) == 1)
            ok = jscan_value(s, NULL, NULL);
        ok = ok && r == 0;
        break;
    case '"':
        ok = scan_string(s, &none);
        break;
    case 't':
        ok = scan_literal(s, "true");
        break;
    case 'f':
        ok = scan_literal(s, "false");
        break;
    case 'n':
        ok = scan_literal(s, "null");
        break;
    default:
        ok = (c == '-' || is_digit(c)) && scan_number(s, &integer);
    }
    if (ok && text) {
        *text = start;
        *len = (size_t)(s->p - start);
    }
    return ok;
}

/* ---- jscan_check: the whole document, with unique keys ---- */

/* A key of an open object: its decoded bytes in the checker's arena and
 * where it stands in the text. */
struct keyref {
    size_t off, len, at;
};

struct checker {
    struct jscan s;
    const char *text;
    char *arena; /* decoded keys of the open objects, innermost last */
    size_t alen, acap;
    struct keyref *keys;
    size_t n, cap;
    const char *why; /* static text, or NULL when dup names the problem */
    size_t at;
    const struct keyref *dup; /* a repeated key, when that is the problem */
};

static bool check_value(struct checker *c);

/* fail records a problem at `at` (in the text) unless the reader already
 * named a more precise one; it returns false. */
static bool fail(struct checker *c, const char *why, const char *at)
{
    if (c->s.why) {
        why = c->s.why;
        at = c->s.why_at;
    }
    if (at == c->s.end || (!c->s.why && c->s.p == c->s.end)) {
        why = "unexpected end of input";
        at = c->s.end;
    }
    c->why = why;
    c->at = (size_t)(at - c->text);
    return false;
}

/* too_deep: check_value saw the container open, so jscan_enter refused it
 * for its depth. */
static bool too_deep(struct checker *c)
{
    return fail(c, "nesting deeper than 32", c->s.p);
}

static bool reserve(void **p, size_t *cap, size_t want, size_t size)
{
    if (want <= *cap) return true;
    size_t n = *cap ? *cap : 64;
    while (n < want)
        n *= 2;
    void *q = realloc(*p, n * size);
    if (!q) return false;
    *p = q;
    *cap = n;
    return true;
}

/* keep decodes the key that ends at the cursor (its text starts at the first
 * quote from `from`) into the arena. */
static bool keep_key(struct checker *c, const char *from)
{
    const char *q = memchr(from, '"', (size_t)(c->s.p - from));
    size_t raw = (size_t)(c->s.p - q); /* decoded keys are never longer */
    if (!reserve((void **)&c->arena, &c->acap, c->alen + raw + 1, 1) ||
        !reserve((void **)&c->keys, &c->cap, c->n + 1, sizeof *c->keys))
        return fail(c, "out of memory", q);
    struct jscan t = {.p = q, .end = c->s.end};
    struct sink k = {.out = c->arena + c->alen, .cap = raw + 1};
    scan_string(&t, &k); /* jscan_next has read it already */
    c->keys[c->n++] = (struct keyref){.off = c->alen, .len = k.n, .at = (size_t)(q - c->text)};
    c->alen += k.n;
    return true;
}

static int key_cmp(const void *a, const void *b, void *arena)
{
    const struct keyref *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    int d = memcmp((char *)arena + x->off, (char *)arena + y->off, x->len);
    if (d) return d;
    return x->at < y->at ? -1 : x->at > y->at;
}

/* unique checks the keys from the object's first (first) for repeats: sorted,
 * equal keys are neighbours in text order, and the earliest second
 * occurrence is the one reported. */
static bool unique(struct checker *c, size_t first)
{
    size_t n = c->n - first;
    if (n < 2) return true; /* c->keys may be NULL yet: an object without keys */
    struct keyref *k = c->keys + first;
    const struct keyref *dup = NULL;
    qsort_r(k, n, sizeof *k, key_cmp, c->arena);
    for (size_t i = 1; i < n; i++)
        if (k[i - 1].len == k[i].len &&
            memcmp(c->arena + k[i - 1].off, c->arena + k[i].off, k[i].len) == 0 &&
            (!dup || k[i].at < dup->at))
            dup = &k[i];
    if (!dup) return true;
    c->dup = dup;
    c->at = dup->at;
    return false;
}

static bool check_object(struct checker *c)
{
    size_t first = c->n, alen = c->alen;
    char none[1];
    int r;
    if (!jscan_enter(&c->s, '{')) return too_deep(c);
    for (;;) {
        const char *from = c->s.p;
        if ((r = jscan_next(&c->s, none, sizeof none)) != 1) break;
        if (!keep_key(c, from) || !check_value(c)) return false;
    }
    if (r < 0) return fail(c, "unexpected character", c->s.p);
    if (!unique(c, first)) return false;
    c->n = first;
    c->alen = alen;
    return true;
}

static bool check_array(struct checker *c)
{
    int r;
    if (!jscan_enter(&c->s, '[')) return too_deep(c);
    while ((r = jscan_next(&c->s, NULL, 0)) == 1)
        if (!check_value(c)) return false;
    return r == 0 || fail(c, "unexpected character", c->s.p);
}

static bool check_value(struct checker *c)
{
    char ch = jscan_peek(&c->s);
    const char *start = c->s.p;
    if (ch == '{') return check_object(c);
    if (ch == '[') return check_array(c);
    if (!jscan_value(&c->s, NULL, NULL))
        return fail(c,
                    ch == '\'' ? "strings take double quotes"
                    : ch == '}' || ch == ']' || ch == ',' || ch == ':' ? "expected a value"
                                                                       : "unexpected character",
                    start);
    /* The reader stops after "0": a digit right after it is a leading zero. */
    if ((ch == '-' || is_digit(ch)) && c->s.p < c->s.end && is_digit(*c->s.p))
        return fail(c, "leading zero in a number", start);
    return true;
}

/* utf8_cut returns at most max bytes of s (n bytes) that end on a character boundary. */
static int utf8_cut(const char *s, size_t n, size_t max)
{
    if (n <= max) return (int)n;
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
        max--;
    return (int)max;
}

bool jscan_check(const char *text, size_t len, char *why, size_t whylen)
{
    struct checker c = {.text = text ? text : ""};
    bool ok = jscan_init(&c.s, text, len);
    if (!ok && why && whylen)
        snprintf(why, whylen, "%s",
                 memchr(c.text, '\0', len) ? "NUL byte in input" : "invalid UTF-8");
    if (ok)
        ok = check_value(&c) &&
             (jscan_done(&c.s) || fail(&c, "trailing characters after the JSON value", c.s.p));
    if (!ok && why && whylen && (c.dup || c.why)) {
        if (c.dup)
            snprintf(why, whylen, "duplicate key \"%.*s\" at offset %zu",
                     utf8_cut(c.arena + c.dup->off, c.dup->len, 64), c.arena + c.dup->off, c.at);
        else if (c.at == len)
            snprintf(why, whylen, "%s", c.why);
        else
            snprintf(why, whylen, "%s at offset %zu", c.why, c.at);
    }
    free(c.arena);
    free(c.keys);
    return ok;
}
