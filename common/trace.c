/* trace.c: W3C Trace Context parsing and span IDs (see trace.h). */
#include "trace.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

static bool lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

static bool all_zero(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != '0') return false;
    return true;
}

static int hex_byte(const char *s)
{
    unsigned v = 0;
    for (int i = 0; i < 2; i++)
        v = v * 16 + (unsigned)(s[i] <= '9' ? s[i] - '0' : s[i] - 'a' + 10);
    return (int)v;
}

int trace_parse(struct trace *t, const char *s, size_t n)
{
    const size_t base = TRACEPARENT_LEN;
    if (n < base || !lower_hex(s, 2) || memcmp(s, "ff", 2) == 0) return -1;
    bool v00 = memcmp(s, "00", 2) == 0;
    if ((v00 && n != base) || (!v00 && n > base && s[base] != '-')) return -1;
    const char *tid = s + 3, *sid = tid + TRACE_ID_HEX + 1, *flags = sid + TRACE_SPAN_HEX + 1;
    if (s[2] != '-' || tid[TRACE_ID_HEX] != '-' || sid[TRACE_SPAN_HEX] != '-') return -1;
    if (!lower_hex(tid, TRACE_ID_HEX) || all_zero(tid, TRACE_ID_HEX) ||
        !lower_hex(sid, TRACE_SPAN_HEX) || all_zero(sid, TRACE_SPAN_HEX) || !lower_hex(flags, 2))
        return -1;
    memcpy(t->trace_id, tid, TRACE_ID_HEX);
    t->trace_id[TRACE_ID_HEX] = '\0';
    memcpy(t->span_id, sid, TRACE_SPAN_HEX);
    t->span_id[TRACE_SPAN_HEX] = '\0';
    t->flags = (uint8_t)hex_byte(flags);
    return 0;
}

/* random_hex fills out with n random lowercase hex digits and a NUL, never all zeros. */
static int random_hex(char *out, size_t n)
{
    unsigned char raw[TRACE_ID_HEX / 2];
    do {
        if (getrandom(raw, n / 2, 0) != (ssize_t)(n / 2)) return -1;
        for (size_t i = 0; i < n / 2; i++)
            snprintf(out + 2 * i, 3, "%02x", raw[i]);
    } while (all_zero(out, n));
    return 0;
}

int trace_new(struct trace *t)
{
    t->flags = 1;
    return random_hex(t->trace_id, TRACE_ID_HEX) < 0 || random_hex(t->span_id, TRACE_SPAN_HEX) < 0
               ? -1
               : 0;
}

int trace_child(const struct trace *t, char out[TRACEPARENT_LEN + 1], char *span)
{
    char id[TRACE_SPAN_HEX + 1];
    if (random_hex(id, TRACE_SPAN_HEX) < 0) return -1;
    snprintf(out, TRACEPARENT_LEN + 1, "00-%s-%s-%02x", t->trace_id, id, t->flags);
    if (span) memcpy(span, id, sizeof(id));
    return 0;
}

bool trace_state_valid(const char *s, size_t n)
{
    if (n > TRACESTATE_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e) return false;
    return true;
}
