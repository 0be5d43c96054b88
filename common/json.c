/* json.c: the one strict entry point for untrusted JSON, and the API's error
 * bodies. json-c alone accepts overlong UTF-8, NaN and Infinity, and needs
 * help to tell an incomplete document from a bad one, so this wraps it.
 * Even in strict mode it also takes raw control characters in strings, "1.",
 * "-.5", "-00", single quotes and lone surrogate escapes, and keeps the last
 * of two equal keys: every document it accepts is checked again by
 * jscan_check (jscan.h), which refuses them and says where. */
#include "json.h"

#include "buf.h"
#include "jscan.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define JSON_ERROR_BODY_MAX (1 << 20)
#define JSON_STR_(x) #x
#define JSON_STR(x) JSON_STR_(x)
#define JSON_TOO_DEEP "nesting deeper than " JSON_STR(JSON_MAX_DEPTH)

/* json_ws tells whether c is whitespace in the sense of RFC 8259. */
static int json_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* json_check returns why the parsed value o must still be refused, or NULL.
 * depth counts the containers around o. json-c's own depth limit counts a
 * leaf value as a level, so it is set one higher and the exact limit on
 * containers is enforced here. json-c also parses NaN and Infinity, even in
 * strict mode, though no JSON peer could read them back. */
static const char *json_check(struct json_object *o, int depth)
{
    const char *why = NULL;
    switch (json_object_get_type(o)) {
    case json_type_double:
        return isfinite(json_object_get_double(o)) ? NULL : "NaN and Infinity are not JSON";
    case json_type_array:
        if (depth == JSON_MAX_DEPTH) return JSON_TOO_DEEP;
        for (size_t i = 0; i < json_object_array_length(o) && !why; i++)
            why = json_check(json_object_array_get_idx(o, i), depth + 1);
        return why;
    case json_type_object: {
        if (depth == JSON_MAX_DEPTH) return JSON_TOO_DEEP;
        json_object_object_foreach(o, key, val)
        {
            (void)key;
            why = json_check(val, depth + 1);
            if (why) break;
        }
        return why;
    }
    default:
        return NULL;
    }
}

/* json_reason maps a json-c error to the reason the client reads. */
static const char *json_reason(enum json_tokener_error err)
{
    switch (err) {
    case json_tokener_error_depth:
        return JSON_TOO_DEEP;
    case json_tokener_error_parse_utf8_string:
        return "invalid UTF-8";
    default:
        return json_tokener_error_desc(err);
    }
}

/* json_parse_run parses s with tok, signalling the end of input with a NUL so that a
 * document ending in a number or literal completes. Returns the reason for a
 * failure, or NULL with *out set (possibly to NULL for a `null` document). */
static const char *json_parse_run(struct json_tokener *tok, const char *s, size_t len,
                                  struct json_object **out)
{
    *out = json_tokener_parse_ex(tok, s, (int)len);
    enum json_tokener_error err = json_tokener_get_error(tok);
    if (err == json_tokener_continue) {
        /* The bytes so far were a valid prefix, so any failure now is the end. */
        *out = json_tokener_parse_ex(tok, "", 1);
        if (json_tokener_get_error(tok) != json_tokener_success) return "unexpected end of input";
        return NULL;
    }
    if (err != json_tokener_success) return json_reason(err);
    for (size_t i = json_tokener_get_parse_end(tok); i < len; i++)
        if (!json_ws(s[i])) return "trailing characters after the JSON value";
    return NULL;
}

struct json_object *json_parse(const char *s, size_t len, char *why, size_t whylen)
{
    struct json_object *obj = NULL;
    struct json_tokener *tok = NULL;
    const char *reason = NULL;
    char strict[160];

    if (!s) { /* an absent body is an empty one */
        s = "";
        len = 0;
    }
    if (len > INT_MAX) {
        reason = "document too large";
    } else if (memchr(s, '\0', len)) {
        reason = "NUL byte in input";
    } else if (!json_utf8_valid(s, len)) {
        reason = "invalid UTF-8";
    } else if (!(tok = json_tokener_new_ex(JSON_MAX_DEPTH + 1))) {
        reason = "out of memory";
    } else {
        /* Trailing characters are allowed here and refused below, to name them. */
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8 |
                                        JSON_TOKENER_ALLOW_TRAILING_CHARS);
        reason = json_parse_run(tok, s, len, &obj);
        if (!reason && !obj) reason = "null document";
        if (!reason) reason = json_check(obj, 0);
        /* json-c's verdicts and reasons stand where it refuses; what it lets
         * through must still pass the strict reader. */
        if (!reason && !jscan_check(s, len, strict, sizeof strict)) reason = strict;
    }
    if (reason) {
        json_object_put(obj);
        obj = NULL;
        if (why && whylen) snprintf(why, whylen, "%s", reason);
    }
    if (tok) json_tokener_free(tok);
    return obj;
}

/* json_utf8_seq returns the length of the well-formed UTF-8 sequence at s
 * (n > 0 bytes available), or 0. The second-byte bounds exclude overlong
 * forms (E0 80..9F, F0 80..8F), surrogates (ED A0..BF) and values past
 * U+10FFFF (F4 90..BF), as in Unicode's table 3-7. */
static size_t json_utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    if (c < 0xC2 || c > 0xF4) return 0;
    size_t need = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    unsigned char lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
    unsigned char hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
    if (n < need || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < need; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return need;
}

int json_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        /* Eight ASCII bytes at a time: JSON is mostly ASCII, and every events
         * message passes here before it is read. */
        uint64_t w;
        if (len - i >= 8 && (memcpy(&w, p + i, 8), (w & 0x8080808080808080u) == 0)) {
            i += 8;
            continue;
        }
        size_t k = json_utf8_seq(p + i, len - i);
        if (k == 0) return 0;
        i += k;
    }
    return 1;
}

char *json_error_body(const char *code, const char *message)
{
    struct buf b;
    buf_init(&b, JSON_ERROR_BODY_MAX);
    /* Each append frees b on failure, so the first error short-circuits the rest. */
    if (buf_appends(&b, "{\"error\":{\"code\":") ||
        buf_append_json_string(&b, code, strlen(code)) || buf_appends(&b, ",\"message\":") ||
        buf_append_json_string(&b, message, strlen(message)) || buf_appends(&b, "}}"))
        return NULL;
    return buf_take(&b, NULL);
}
