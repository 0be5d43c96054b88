/* jscan.c: the in-place strict JSON reader (see jscan.h). Every value is
 * checked to the grammar of RFC 8259 as it is read, so a document a caller
 * walks to its end with jscan_done is one json_parse would also accept. The
 * reverse does not quite hold: json-c, even in strict mode, lets through
 * single quotes, raw control characters in strings, "1.", "-.5" and "-00",
 * and replaces a lone surrogate escape; jscan refuses them all. */
#include "jscan.h"

#include <math.h>
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

bool jscan_enter(struct jscan *s, char open)
{
    if (jscan_peek(s) != open || s->depth >= JSON_MAX_DEPTH) return false;
    s->p++;
    s->depth++;
    s->fresh = true;
    return true;
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
    if (s->end - s->p < 4) return -1;
    long cp = hex4(s->p);
    s->p += 4;
    if (cp >= 0xDC00 && cp <= 0xDFFF) return -1;
    if (cp < 0xD800 || cp > 0xDBFF) return cp;
    if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u') return -1;
    long lo = hex4(s->p + 2);
    if (lo < 0xDC00 || lo > 0xDFFF) return -1;
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
        if (c < 0x20) return false;
        if (c != '\\') {
            put(k, c);
            continue;
        }
        if (s->p == s->end) return false;
        char e = *s->p++;
        const char *at = e ? strchr(plain, e) : NULL;
        long cp = at ? decoded[at - plain] : e == 'u' ? read_escape_u(s) : -1;
        if (cp < 0) return false;
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
    if (p == end || !is_digit(*p)) return false;
    p = *p == '0' ? p + 1 : digits(p, end);
    *integer = true;
    if (p < end && *p == '.') {
        const char *d = p + 1;
        if ((p = digits(d, end)) == d) return false;
        *integer = false;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        const char *d = p + 1 < end && (p[1] == '+' || p[1] == '-') ? p + 2 : p + 1;
        if ((p = digits(d, end)) == d) return false;
        *integer = false;
    }
    /* 15 digits always fit; longer integers and any fraction or exponent may not. */
    if ((!*integer || p - s->p > 15) && !number_finite(s->p, p, end)) return false;
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
        if (c != ',') return -1;
        s->p++;
    }
    s->fresh = false;
    if (!key) return 1;
    struct sink k = {.out = key, .cap = cap};
    if (jscan_peek(s) != '"' || !scan_string(s, &k) || jscan_peek(s) != ':') return -1;
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
        ok = jscan_enter(s, c);
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
