/* progress.h: the progress bar of the sluice client's bulk commands (submit
 * --batch, status --watch over many IDs) on a terminal, and the rate and
 * time left it shows. Rendering is a pure function of the counts and the
 * clock, so it is tested alone; drawing redraws one line in place, at most
 * every PROGRESS_EVERY_MS. */
#ifndef SLUICE_CLI_PROGRESS_H
#define SLUICE_CLI_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PROGRESS_EVERY_MS 100

/* progress counts a bulk command's requests; the labels are string literals. */
struct progress {
    long total;      /* requests in all */
    long done;       /* requests with an outcome (ok + failed + other outcomes) */
    long ok, failed; /* the two outcomes the bar names */
    const char *done_label, *ok_label, *failed_label; /* "final", "succeeded", "failed" */
    int64_t start_ms;                                 /* clock_mono_ms() at the start */
    int64_t drawn_ms;                                 /* the last draw, for the throttle */
};

/* progress_line writes one line (no newline) of at most width columns into
 * out (cap bytes): a bar, the percentage, done/total, the two outcomes, the
 * rate and the time left, e.g.
 *   [##########----------]   50%  500/1000 final  succeeded 490  failed 10  250/s  2s left
 * Whole fields that do not fit the width are left out: the bar, the time
 * left, the rate, then the two outcomes; the count is cut only when it alone
 * is too wide. */
void progress_line(char *out, size_t cap, const struct progress *p, int64_t now_ms, int width);
/* progress_draw redraws the line on f (a terminal) if PROGRESS_EVERY_MS have
 * passed since the last draw, or always when force. */
void progress_draw(FILE *f, struct progress *p, int64_t now_ms, bool force);
/* progress_end ends the line drawn on f. */
void progress_end(FILE *f);
/* progress_width is the terminal's width on fd, or 80. */
int progress_width(int fd);
/* progress_rate formats a rate per second, e.g. "0.4/s", "950/s", "12k/s". */
void progress_rate(char *out, size_t cap, double per_s);

#endif
