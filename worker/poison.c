/* poison.c: the job of an undecodable delivery (see poison.h). */
#include "poison.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "mq.h"
#include "results.h"

/* Tenant and route names travel in status events, which refuse names longer
 * than this (common/event.c). */
#define NAME_MAX_BYTES 128

/* read_name copies a header that is text an event can carry: 1..128 bytes
 * of UTF-8 without NUL. NULL if absent or unfit. */
static char *read_name(const amqp_basic_properties_t *props, const char *key)
{
    if (!(props->_flags & AMQP_BASIC_HEADERS_FLAG)) return NULL;
    const amqp_field_value_t *v = mq_header(&props->headers, key);
    if (!v || (v->kind != AMQP_FIELD_KIND_UTF8 && v->kind != AMQP_FIELD_KIND_BYTES)) return NULL;
    const char *s = v->value.bytes.bytes;
    size_t n = v->value.bytes.len;
    if (n < 1 || n > NAME_MAX_BYTES || memchr(s, '\0', n) || !json_utf8_valid(s, n)) return NULL;
    return strndup(s, n);
}

/* read_i64 reads an integer header of the kinds sluice and the broker write. */
static bool read_i64(const amqp_basic_properties_t *props, const char *key, int64_t *out)
{
    if (!(props->_flags & AMQP_BASIC_HEADERS_FLAG)) return false;
    const amqp_field_value_t *v = mq_header(&props->headers, key);
    if (v && v->kind == AMQP_FIELD_KIND_I64)
        *out = v->value.i64;
    else if (v && v->kind == AMQP_FIELD_KIND_I32)
        *out = v->value.i32;
    else
        return false;
    return true;
}

static int64_t created_ms(const amqp_basic_properties_t *props, int64_t now)
{
    int64_t ms;
    if (read_i64(props, "x-sluice-created", &ms) && ms > 0) return ms;
    if ((props->_flags & AMQP_BASIC_TIMESTAMP_FLAG) && props->timestamp > 0 &&
        props->timestamp < (uint64_t)INT64_MAX / 1000)
        return (int64_t)props->timestamp * 1000;
    return now;
}

struct job *poison_job(const amqp_message_t *msg, uint64_t tag, const char *why,
                       int64_t now_real_ms)
{
    const amqp_basic_properties_t *props = &msg->properties;
    const amqp_bytes_t *mid = &props->message_id;
    if (!(props->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) || mid->len != ID_LEN ||
        !id_valid(mid->bytes, mid->len))
        return NULL;
    struct job *job = job_new(tag);
    if (!job) return NULL;
    memcpy(job->env.id, mid->bytes, ID_LEN);
    job->env.id[ID_LEN] = '\0';
    job->env.tenant = read_name(props, "x-sluice-tenant");
    job->env.route = read_name(props, "x-sluice-route");
    if (!job->env.route) job->env.route = strdup("");
    job->env.created_ms = created_ms(props, now_real_ms);
    int64_t attempts = 0;
    if (read_i64(props, "x-sluice-attempts", &attempts) && attempts >= 0 && attempts < 1000000)
        job->env.attempts = (int)attempts;
    char message[320];
    snprintf(message, sizeof(message), "the message is not a valid sluice request: %s", why);
    results_fail(job, "malformed_message", message);
    job->dead_letter = true;
    if (!job->env.tenant || !job->env.route || !job->error_json) {
        job_free(job);
        return NULL;
    }
    return job;
}

enum poison_verdict poison_redelivery(bool redelivered, int deliveries, long limit)
{
    if (!redelivered) return POISON_FRESH;
    return (long)deliveries + 1 >= limit ? POISON_DEAD : POISON_COUNT;
}

bool poison_again(bool redelivered, const amqp_basic_properties_t *props)
{
    if (redelivered) return true;
    if (!(props->_flags & AMQP_BASIC_HEADERS_FLAG)) return false;
    const amqp_field_value_t *v = mq_header(&props->headers, "x-delivery-count");
    if (!v) return false;
    switch (v->kind) {
    case AMQP_FIELD_KIND_I8:
        return v->value.i8 > 0;
    case AMQP_FIELD_KIND_U8:
        return v->value.u8 > 0;
    case AMQP_FIELD_KIND_I16:
        return v->value.i16 > 0;
    case AMQP_FIELD_KIND_U16:
        return v->value.u16 > 0;
    case AMQP_FIELD_KIND_I32:
        return v->value.i32 > 0;
    case AMQP_FIELD_KIND_U32:
        return v->value.u32 > 0;
    case AMQP_FIELD_KIND_I64:
        return v->value.i64 > 0;
    case AMQP_FIELD_KIND_U64:
        return v->value.u64 > 0;
    default:
        return false;
    }
}
