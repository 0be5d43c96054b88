/* job.c: making and freeing jobs and batches (see job.h). */
#include "job.h"

#include <stdlib.h>

struct job *job_new(uint64_t delivery_tag)
{
    struct job *job = calloc(1, sizeof(*job));
    if (!job) return NULL;
    envelope_init(&job->env);
    job->delivery_tag = delivery_tag;
    return job;
}

void job_free(struct job *job)
{
    if (!job) return;
    envelope_free(&job->env);
    buf_free(&job->resp_body);
    buf_free(&job->resp_headers);
    free(job->result_json);
    free(job->error_json);
    free(job);
}

int batch_push(struct batch *b, struct job *job)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        struct job **jobs = realloc(b->jobs, cap * sizeof(*jobs));
        if (!jobs) return -1;
        b->jobs = jobs;
        b->cap = cap;
    }
    b->jobs[b->n++] = job;
    job->batch = b;
    return 0;
}

void batch_free(struct batch *b)
{
    if (!b) return;
    for (size_t i = 0; i < b->n; i++)
        job_free(b->jobs[i]);
    free(b->jobs);
    free(b);
}
