/* results.c: classification of backend answers and the result documents (see results.h). */
#include "results.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backoff.h"
#include "base64.h"
#include "json.h"

enum verdict { V_SUCCEEDED, V_RETRY, V_FAILED };

static enum verdict classify(const struct job *job)
{
    if (job->curl_code != CURLE_OK) {
        bool config_error =
            job->curl_code == CURLE_URL_MALFORMAT || job->curl_code == CURLE_UNSUPPORTED_PROTOCOL;
        return config_error ? V_FAILED : V_RETRY;
    }
    long s = job->http_status;
    if (s >= 200 && s < 300) return V_SUCCEEDED;
    if (s == 408 || s == 429 || s >= 500) return V_RETRY;
    return V_FAILED;
}

/* append_body adds the answer's body as "body" (JSON, embedded as the backend
 * wrote it), "body_text" (UTF-8) or "body_base64" (anything else). */
static int append_body(struct buf *b, const struct job *job)
{
    const char *body = job->resp_body.data ? job->resp_body.data : "";
    size_t len = job->resp_body.len;
    if (!job->truncated && len && job->json_body) {
        struct json_object *o = json_parse(body, len, NULL, 0);
        if (o) {
            json_object_put(o);
            int rc = buf_appends(b, ",\"body\":");
            return rc ? rc : buf_append(b, body, len);
        }
    }
    if (json_utf8_valid(body, len)) {
        int rc = buf_appends(b, ",\"body_text\":");
        return rc ? rc : buf_append_json_string(b, body, len);
    }
    int rc = buf_appends(b, ",\"body_base64\":\"");
    if (rc == 0) rc = base64_append(b, body, len);
    return rc ? rc : buf_append(b, "\"", 1);
}

/* result_doc builds {"status":..,"headers":{..},"body"..,"truncated":..}. */
static char *result_doc(const struct job *job)
{
    struct buf b;
    buf_init(&b, SIZE_MAX / 2);
    int rc = buf_appendf(&b, "{\"status\":%ld,\"headers\":{", job->http_status);
    if (rc == 0 && job->resp_headers.len)
        rc = buf_append(&b, job->resp_headers.data, job->resp_headers.len);
    if (rc == 0) rc = buf_appends(&b, "}");
    if (rc == 0) rc = append_body(&b, job);
    if (rc == 0) rc = buf_appendf(&b, ",\"truncated\":%s}", job->truncated ? "true" : "false");
    return rc == 0 ? buf_take(&b, NULL) : NULL;
}

static char *error_doc(const char *code, const char *message)
{
    struct buf b;
    buf_init(&b, 4096);
    int rc = buf_appends(&b, "{\"code\":");
    if (rc == 0) rc = buf_append_json_string(&b, code, strlen(code));
    if (rc == 0) rc = buf_appends(&b, ",\"message\":");
    if (rc == 0) rc = buf_append_json_string(&b, message, strlen(message));
    if (rc == 0) rc = buf_appends(&b, "}");
    return rc == 0 ? buf_take(&b, NULL) : NULL;
}

static void describe_failure(const struct job *job, char *msg, size_t len, const char **code)
{
    int n = job->env.attempts;
    if (job->curl_code == CURLE_OPERATION_TIMEDOUT) {
        *code = "backend_timeout";
        snprintf(msg, len, "the backend did not answer in time (%d attempt%s)", n,
                 n == 1 ? "" : "s");
    } else if (job->curl_code != CURLE_OK) {
        *code = "backend_unreachable";
        snprintf(msg, len, "%s (%d attempt%s)",
                 job->curl_error[0] ? job->curl_error : curl_easy_strerror(job->curl_code), n,
                 n == 1 ? "" : "s");
    } else {
        *code = "backend_error";
        snprintf(msg, len, "the backend answered %ld (%d attempt%s)", job->http_status, n,
                 n == 1 ? "" : "s");
    }
}

static void replace(char **slot, char *value)
{
    free(*slot);
    *slot = value;
}

void results_settle(struct job *job, const struct cfg *cfg, uint64_t rnd)
{
    const struct cfg_route *r = job->route;
    int max_attempts = r->max_attempts;
    if (job->env.max_attempts > 0 && job->env.max_attempts < max_attempts)
        max_attempts = job->env.max_attempts;
    job->env.attempts++;
    enum verdict v = classify(job);
    replace(&job->result_json, job->http_status ? result_doc(job) : NULL);
    replace(&job->error_json, NULL);
    job->next = NEXT_FINAL;
    if (v == V_SUCCEEDED) {
        job->state = ST_SUCCEEDED;
    } else if (v == V_RETRY && job->env.attempts < max_attempts) {
        /* A backend's Retry-After replaces the jitter, bounded by the cap. */
        long delay = job->retry_after_ms < 0                   ? -1
                     : job->retry_after_ms > r->backoff_max_ms ? r->backoff_max_ms
                                                               : job->retry_after_ms;
        if (delay < 0)
            delay = backoff_delay_ms(r->backoff_ms, r->backoff_max_ms, job->env.attempts, rnd);
        job->state = ST_RETRYING;
        job->delay_ms = delay;
        job->next = delay < cfg->worker.retry_hold_max_ms ? NEXT_HOLD : NEXT_RETRY_QUEUE;
    } else {
        char msg[CURL_ERROR_SIZE + 64];
        const char *code;
        describe_failure(job, msg, sizeof(msg), &code);
        bool answered = job->curl_code == CURLE_OK;
        if (v == V_FAILED) {
            job->state = ST_FAILED;
            if (answered) code = "backend_rejected";
        } else {
            job->state = ST_DEAD;
            if (answered) code = "retries_exhausted";
        }
        replace(&job->error_json, error_doc(code, msg));
    }
    buf_free(&job->resp_body);
    buf_free(&job->resp_headers);
}

void results_fail(struct job *job, const char *code, const char *message)
{
    job->state = ST_DEAD;
    job->next = NEXT_FINAL;
    replace(&job->result_json, NULL);
    replace(&job->error_json, error_doc(code, message));
}

struct status_update results_update(const struct job *job, enum req_state state, int64_t now_ms)
{
    return (struct status_update){
        .id = job->env.id,
        .state = state,
        .tenant = job->env.tenant,
        .route = job->env.route,
        .created_ms = job->env.created_ms,
        .ts_ms = now_ms,
        .attempts = job->env.attempts,
        .replays = job->env.replays,
        .result_json = job->result_json,
        .result_len = job->result_json ? strlen(job->result_json) : 0,
        .error_json = job->error_json,
        .error_len = job->error_json ? strlen(job->error_json) : 0,
        /* A final request with a callback: its delivery is on its way (deliver.h). */
        .callback = ST_FINAL(state) && job->env.callback_url ? CB_PENDING : CB_NONE,
    };
}
