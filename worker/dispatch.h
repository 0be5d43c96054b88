/* dispatch.h: concurrent backend calls through one libcurl multi handle. The
 * multi handle owns the connection cache, so keep-alive connections to the
 * backends survive from one batch to the next. */
#ifndef SLUICE_DISPATCH_H
#define SLUICE_DISPATCH_H

#include "job.h"

struct dispatch;

struct dispatch *dispatch_new(const struct cfg *cfg);
/* dispatch_free aborts calls still running (their jobs stay with their owner). */
void dispatch_free(struct dispatch *d);

/* dispatch_start begins job's call to the upstream the shaper chose
 * (job->call) + path (+ query). Returns 0, or -1 (then job->curl_code says
 * why and the job is not running). */
__attribute__((warn_unused_result)) int dispatch_start(struct dispatch *d, struct job *job);
/* dispatch_abort stops job's call if it runs and releases its handle. */
void dispatch_abort(struct dispatch *d, struct job *job);

/* dispatch_wait waits for call progress or for one of the extra fds (POLLIN),
 * at most timeout_ms, and returns the ready extra fds' revents in extra[i].revents. */
int dispatch_wait(struct dispatch *d, struct curl_waitfd *extra, unsigned n, int timeout_ms);
/* dispatch_run advances calls and calls done(arg, job) for each finished one,
 * with curl_code, http_status and call_seconds set; the job's handle is
 * released before done runs. */
void dispatch_run(struct dispatch *d, void (*done)(void *arg, struct job *job), void *arg);

/* Calls other than a job's own (batch calls, worker/batchcall.h) ride the
 * same multi handle: dispatch_add_call adds easy, whose done(arg, easy,
 * code) runs from dispatch_run when it finishes (easy then removed from the
 * multi handle, still the caller's), or drop(arg) when it is stopped
 * unfinished (dispatch_drop_calls, dispatch_free). Returns 0 or -1 (then
 * neither is called). */
__attribute__((warn_unused_result)) int
dispatch_add_call(struct dispatch *d, CURL *easy, void (*done)(void *arg, CURL *e, CURLcode code),
                  void (*drop)(void *arg), void *arg);
/* dispatch_drop_calls stops every such call (drop runs for each). */
void dispatch_drop_calls(struct dispatch *d);

#endif
