/* results.h: what a finished backend call means. It classifies the answer
 * (2xx succeeded; 408, 429, 5xx and transport errors such as a refused
 * connection or a timeout retry; any other answer, and an upstream URL curl
 * cannot use, failed), decides between holding, a retry queue and dead, and
 * writes the result and error objects the status endpoint serves. Tested
 * without a broker in tests/unit/test_results.c. */
#ifndef SLUICE_RESULTS_H
#define SLUICE_RESULTS_H

#include <stdint.h>

#include "job.h"

/* results_settle sets job->state, next, delay_ms, result_json and error_json
 * from the call in job (after dispatch_run), counting it in env.attempts;
 * rnd is a fresh random value for the jitter. Frees the response buffers. */
void results_settle(struct job *job, const struct cfg *cfg, uint64_t rnd);
/* results_fail settles a job that could not be called at all (route gone,
 * call not startable) as dead with the given error code and message. */
void results_fail(struct job *job, const char *code, const char *message);
/* results_update describes job's current state as an event update whose
 * pointers borrow from job. */
struct status_update results_update(const struct job *job, enum req_state state, int64_t now_ms);

#endif
