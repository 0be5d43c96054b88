/* confirms.h: the publisher-confirm tracker of a broker session. Each
 * tracked publish is recorded with its confirm sequence number, the caller's
 * token and its message_id; the broker's basic.ack, basic.nack (either with
 * `multiple`) and basic.return are matched against the records, and every
 * record is reported exactly once: acked, nacked, returned (unroutable) or
 * lost with the connection. Pure bookkeeping, no I/O, so it is tested
 * without a broker (tests/unit/test_confirms.c).
 *
 * Records live in a ring in sequence order; a steady state allocates
 * nothing. Reports run the callback after the record is removed, so a
 * callback may track new publishes. */
#ifndef SLUICE_CONFIRMS_H
#define SLUICE_CONFIRMS_H

#include <amqp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "id.h"

enum confirm_outcome {
    CONFIRM_ACKED,    /* the broker took responsibility for the message */
    CONFIRM_NACKED,   /* the broker refused it */
    CONFIRM_RETURNED, /* unroutable (no queue bound): returned, then acked */
    CONFIRM_LOST,     /* the connection went before the confirm came */
};

typedef void (*confirm_fn)(void *arg, void *token, enum confirm_outcome outcome);

struct confirm_rec {
    uint64_t seq;
    void *token;
    char id[ID_LEN]; /* message_id, when it was an ID */
    bool has_id;
    bool returned;
    bool done;       /* reported (a single ack out of order): skipped */
    int64_t sent_ms; /* when it was published (the caller's clock) */
};

struct confirms {
    struct confirm_rec *ring;
    size_t head, n, cap; /* n records from ring[head], wrapping */
};

void confirms_init(struct confirms *c);
/* confirms_free drops the records without reporting them. */
void confirms_free(struct confirms *c);

/* confirms_add records a publish made at sent_ms; seq must be above every
 * recorded one. message_id may be NULL. Returns 0 or -ENOMEM (then nothing
 * is recorded). */
__attribute__((warn_unused_result)) int confirms_add(struct confirms *c, uint64_t seq, void *token,
                                                     const amqp_bytes_t *message_id,
                                                     int64_t sent_ms);
/* confirms_ack settles tag (and with multiple every earlier record), calling
 * fn once per record: ACKED, or RETURNED if a return named it; NACKED (ok
 * false) wins over nothing but a return. Tags no record has are ignored. */
void confirms_ack(struct confirms *c, uint64_t tag, bool multiple, bool ok, confirm_fn fn,
                  void *arg);
/* confirms_return marks the oldest unsettled record whose message_id is id
 * as returned: the broker sends a basic.return before the ack of the same
 * publish, and the return carries no sequence number. Returns whether a
 * record matched (messages without an ID cannot be matched). */
bool confirms_return(struct confirms *c, amqp_bytes_t id);
/* confirms_lose reports every record LOST, oldest first, and empties c. */
void confirms_lose(struct confirms *c, confirm_fn fn, void *arg);
/* confirms_oldest gives when the oldest record not yet reported was
 * published; false when there is none. */
bool confirms_oldest(const struct confirms *c, int64_t *sent_ms);
/* confirms_pending is the number of records not yet reported. */
size_t confirms_pending(const struct confirms *c);

#endif
