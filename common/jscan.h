/* jscan.h: a strict JSON reader that walks a document in place. It exists for
 * the events stream: every ingress reads every event, and building a json-c
 * tree per message cost more than all the rest of the events thread's work
 * (docs/performance.md). It allocates nothing: values are checked as they are
 * read, strings are decoded into the caller's buffer, and any value can be
 * taken whole as text. Its rules are json_parse's (json.h), RFC 8259 only:
 * well-formed UTF-8, no NUL byte, finite numbers, containers nested at most
 * JSON_MAX_DEPTH deep; it refuses the few things json-c lets through (see
 * jscan.c). Nothing is owned: a jscan borrows the text it reads.
 *
 * A reader enters a container, then calls jscan_next for each member or
 * element and reads its value (jscan_string, jscan_int, jscan_value, or a
 * nested jscan_enter) before the next call; jscan_next returns 0 at the
 * container's end. A copy of a struct jscan is a saved position. */
#ifndef SLUICE_JSCAN_H
#define SLUICE_JSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct jscan {
    const char *p, *end;
    int depth;  /* containers open around the cursor */
    bool fresh; /* just entered a container: no comma before the next item */
    /* Set when a read fails on something RFC 8259 forbids, to say what
     * (static text) and where; left alone on success, so reading costs
     * nothing more. NULL why: only "unexpected" input is known. */
    const char *why, *why_at;
};

/* jscan_init checks the bytes of text (UTF-8, no NUL) and puts the cursor at
 * its start; false when they are bad. */
bool jscan_init(struct jscan *s, const char *text, size_t len);
/* jscan_enter consumes the '{' or '[' (open) that starts the next value;
 * false when the value is something else or would nest too deep. */
bool jscan_enter(struct jscan *s, char open);
/* jscan_next steps to the next item of the innermost container, which is an
 * object when key is not NULL: it decodes the member's key into key (cap
 * bytes; a key that does not fit reads as "") and consumes the colon. It
 * returns 1 when there is an item, 0 at the container's end (consumed), -1
 * on malformed input. */
int jscan_next(struct jscan *s, char *key, size_t cap);
/* jscan_string decodes the next value, which must be a string without NUL,
 * into out (cap bytes, NUL-terminated) and sets *len; false otherwise or when
 * it does not fit. */
bool jscan_string(struct jscan *s, char *out, size_t cap, size_t *len);
/* jscan_int reads the next value, which must be an integer (no fraction or
 * exponent) within [min, max]. */
bool jscan_int(struct jscan *s, int64_t min, int64_t max, int64_t *out);
/* jscan_value checks and skips the next value, whatever it is, and points
 * *text at its text (*len bytes) when text is not NULL. */
bool jscan_value(struct jscan *s, const char **text, size_t *len);
/* jscan_peek returns the first character of the next value, or 0 at the end. */
char jscan_peek(struct jscan *s);
/* jscan_done tells whether only whitespace remains. */
bool jscan_done(struct jscan *s);

/* jscan_check walks the whole of text (len bytes) as one JSON document and
 * tells whether it is strict RFC 8259 with unique member names at every
 * depth; when it is not, why gets the problem and its byte offset, as in
 * "duplicate key \"route\" at offset 31". Unlike the rest of jscan it
 * allocates (the keys of the objects it is in), so it is the gate of
 * untrusted documents (json_parse), not the events stream's reader. */
bool jscan_check(const char *text, size_t len, char *why, size_t whylen);

#endif
