/* progress.c: the progress bar of the bulk commands (see progress.h). */
#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define BAR_MIN 10
#define BAR_MAX 30

void progress_rate(char *out, size_t cap, double per_s)
{
    /* The thresholds are where the rounding would carry into the next form. */
    if (per_s >= 9950)
        snprintf(out, cap, "%.0fk/s", per_s / 1000);
    else if (per_s >= 999.5)
        snprintf(out, cap, "%.1fk/s", per_s / 1000);
    else if (per_s >= 9.95)
        snprintf(out, cap, "%.0f/s", per_s);
    else
        snprintf(out, cap, "%.1f/s", per_s);
}

/* time_left formats seconds as "42s left", "3m05s left" or "2h10m left". */
static void time_left(char *out, size_t cap, double s)
{
    long n = (long)(s + 0.5);
    if (n < 60)
        snprintf(out, cap, "%lds left", n);
    else if (n < 3600)
        snprintf(out, cap, "%ldm%02lds left", n / 60, n % 60);
    else
        snprintf(out, cap, "%ldh%02ldm left", n / 3600, n % 3600 / 60);
}

/* The fields of the line, in the order they are dropped when the width is
 * short: the bar, the time left, the rate, then the two outcomes (shown
 * lists the order they are printed in). */
enum { P_BAR, P_LEFT, P_RATE, P_FAILED, P_OK, P_COUNT, P_FIELDS };

void progress_line(char *out, size_t cap, const struct progress *p, int64_t now_ms, int width)
{
    char f[P_FIELDS][96] = {{0}};
    long total = p->total > 0 ? p->total : 1;
    long done = p->done < total ? p->done : total;
    double secs = (double)(now_ms - p->start_ms) / 1000.0;
    snprintf(f[P_COUNT], sizeof f[P_COUNT], "%3d%%  %ld/%ld %s", (int)(done * 100 / total), p->done,
             p->total, p->done_label);
    snprintf(f[P_OK], sizeof f[P_OK], "%s %ld", p->ok_label, p->ok);
    snprintf(f[P_FAILED], sizeof f[P_FAILED], "%s %ld", p->failed_label, p->failed);
    if (secs >= 0.5 && p->done > 0) {
        double per_s = (double)p->done / secs;
        progress_rate(f[P_RATE], sizeof f[P_RATE], per_s);
        if (p->done < p->total)
            time_left(f[P_LEFT], sizeof f[P_LEFT], (double)(p->total - p->done) / per_s);
    }
    /* Each field but the first costs two columns of separator. */
    int used = -2, first = P_LEFT;
    for (int i = P_LEFT; i < P_FIELDS; i++)
        used += f[i][0] ? 2 + (int)strlen(f[i]) : 0;
    while (first < P_COUNT && used > width) {
        used -= f[first][0] ? 2 + (int)strlen(f[first]) : 0;
        first++;
    }
    /* What the width leaves goes to the bar, when it can be BAR_MIN wide. */
    int n = first == P_LEFT ? width - used - 4 : 0;
    if (n >= BAR_MIN) {
        if (n > BAR_MAX) n = BAR_MAX;
        int full = (int)(done * n / total);
        f[P_BAR][0] = '[';
        memset(f[P_BAR] + 1, '#', (size_t)full);
        memset(f[P_BAR] + 1 + full, '-', (size_t)(n - full));
        f[P_BAR][n + 1] = ']';
        f[P_BAR][n + 2] = '\0';
        first = P_BAR;
    }
    static const int shown[P_FIELDS] = {P_BAR, P_COUNT, P_OK, P_FAILED, P_RATE, P_LEFT};
    size_t len = 0;
    out[0] = '\0';
    for (int k = 0, i; k < P_FIELDS && len < cap; k++) {
        if ((i = shown[k]) < first || !f[i][0]) continue;
        int w = snprintf(out + len, cap - len, "%s%s", len ? "  " : "", f[i]);
        if (w > 0) len += (size_t)w;
    }
    if (width > 0 && strlen(out) > (size_t)width) out[width] = '\0';
}

void progress_draw(FILE *f, struct progress *p, int64_t now_ms, bool force)
{
    if (!force && now_ms - p->drawn_ms < PROGRESS_EVERY_MS) return;
    char line[512];
    progress_line(line, sizeof line, p, now_ms, progress_width(fileno(f)) - 1);
    /* Back to the line's start, the line, then clear what an older, longer one left. */
    fprintf(f, "\r%s\033[K", line);
    fflush(f);
    p->drawn_ms = now_ms;
}

void progress_end(FILE *f)
{
    fputc('\n', f);
    fflush(f);
}

int progress_width(int fd)
{
    struct winsize ws;
    if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20) return ws.ws_col;
    return 80;
}
