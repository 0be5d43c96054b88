/* log.c: JSON-lines logging on stderr. Each line is built on the stack and
 * written with one write(2) of at most PIPE_BUF bytes, so lines from
 * concurrent threads never interleave, even when stderr is a pipe. */
#include "log.h"

#include "json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* LOG_LINE_MAX is Linux's PIPE_BUF, the largest write a pipe keeps whole. */
#define LOG_LINE_MAX 4096
#define LOG_TAIL_CUT "\",\"truncated\":true}\n"
#define LOG_TAIL "\"}\n"

enum log_level log_min_level = LOG_INFO;

/* log_component is configuration like log_min_level: written once by
 * log_init before any thread starts, read-only afterwards. */
static char log_component[32] = "sluice";

static const char *const log_names[] = {"debug", "info", "warn", "error"};

struct log_line {
    char buf[LOG_LINE_MAX];
    size_t len;
};

void log_init(const char *component, enum log_level min)
{
    snprintf(log_component, sizeof log_component, "%s", component ? component : "");
    log_min_level = min;
}

int log_level_parse(const char *name)
{
    for (int i = LOG_DEBUG; name && i <= LOG_ERROR; i++)
        if (strcmp(name, log_names[i]) == 0) return i;
    return -1;
}

static void log_put(struct log_line *l, const char *s)
{
    size_t n = strlen(s);
    if (n > LOG_LINE_MAX - l->len) n = LOG_LINE_MAX - l->len;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

/* log_token finds how byte s[0] (of n) appears in a JSON string: sets *out and
 * *outlen and returns the number of input bytes it stands for. Invalid UTF-8
 * becomes U+FFFD so that a line stays valid JSON whatever a caller passes. */
static size_t log_token(const char *s, size_t n, char esc[8], const char **out, size_t *outlen)
{
    unsigned char c = (unsigned char)s[0];
    size_t k = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    *out = esc;
    if (c == '"' || c == '\\') {
        snprintf(esc, 8, "\\%c", c);
    } else if (c == '\n' || c == '\r' || c == '\t') {
        snprintf(esc, 8, "\\%c", c == '\n' ? 'n' : c == '\r' ? 'r' : 't');
    } else if (c < 0x20) {
        snprintf(esc, 8, "\\u%04x", c);
    } else if (c < 0x80 || (k <= n && json_utf8_valid(s, k))) {
        *out = s;
        *outlen = c < 0x80 ? 1 : k;
        return *outlen;
    } else {
        snprintf(esc, 8, "\\ufffd");
    }
    *outlen = strlen(esc);
    return 1;
}

/* log_escape appends s (n bytes) as JSON string content, leaving reserve bytes
 * free; it stops before a token that does not fit. Returns bytes consumed. */
static size_t log_escape(struct log_line *l, const char *s, size_t n, size_t reserve)
{
    size_t i = 0;
    while (i < n) {
        char esc[8];
        const char *out;
        size_t outlen;
        size_t k = log_token(s + i, n - i, esc, &out, &outlen);
        if (l->len + reserve + outlen > LOG_LINE_MAX) break;
        memcpy(l->buf + l->len, out, outlen);
        l->len += outlen;
        i += k;
    }
    return i;
}

/* log_prefix writes everything up to the opening quote of msg. */
static void log_prefix(struct log_line *l, enum log_level level, const char *file, int line)
{
    struct timespec ts;
    struct tm tm;
    char when[32], head[128], src[160];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(head, sizeof head, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"component\":\"", when,
             ts.tv_nsec / 1000000, log_names[level]);
    const char *base = strrchr(file, '/');
    snprintf(src, sizeof src, "%s:%d", base ? base + 1 : file, line);

    log_put(l, head);
    log_escape(l, log_component, strlen(log_component), sizeof LOG_TAIL_CUT - 1);
    log_put(l, "\",\"src\":\"");
    log_escape(l, src, strlen(src), sizeof LOG_TAIL_CUT - 1);
    log_put(l, "\",\"msg\":\"");
}

static void log_emit(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        p += w;
        n -= (size_t)w;
    }
}

void log_write(enum log_level level, const char *file, int line, const char *fmt, ...)
{
    if (level < log_min_level) return;
    if (level > LOG_ERROR) level = LOG_ERROR;
    int saved_errno = errno;
    char msg[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t msglen = n < 0 ? 0 : (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;

    struct log_line l;
    l.len = 0;
    log_prefix(&l, level, file, line);
    bool cut = n >= (int)sizeof msg;
    if (log_escape(&l, msg, msglen, sizeof LOG_TAIL_CUT - 1) < msglen) cut = true;
    log_put(&l, cut ? LOG_TAIL_CUT : LOG_TAIL);
    log_emit(l.buf, l.len);
    errno = saved_errno;
}
