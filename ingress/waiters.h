/* waiters.h: the clients of long-poll (GET /v1/requests/<id>?wait=S) while
 * they wait. A waiter holds no thread: its connection is suspended, and this
 * module keeps it in a table by request ID and in a min-heap by deadline.
 * When a final state of an ID is applied (waiters_wake, from whichever
 * thread applied it) every waiter of that ID becomes due; at its deadline a
 * waiter becomes due as well. One thread of this module calls each due
 * waiter's callback, which renders the status and resumes the connection:
 * the thread that applied the state only looks the ID up and moves a list.
 * Thread-safe (one internal lock). */
#ifndef SLUICE_WAITERS_H
#define SLUICE_WAITERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"

struct waiters;

/* waiter_fn answers one waiter: it is called exactly once per waiter added,
 * on the waiters thread, with final true when the request's final state was
 * applied and false at the deadline or at shutdown. */
typedef void (*waiter_fn)(void *arg, bool final);

/* waiters_new starts the thread; metrics may be NULL (tests). NULL on failure. */
struct waiters *waiters_new(struct metrics *metrics);
/* waiters_drain answers every waiter now and makes waiters_add refuse, then
 * returns once every callback has returned. Call before stopping HTTP. */
void waiters_drain(struct waiters *w);
/* waiters_free drains, stops the thread and frees. NULL is a no-op. */
void waiters_free(struct waiters *w);

/* waiters_add registers a wait for id (ID_LEN characters) until deadline_ms
 * (clock_mono_ms). done(arg, ...) is then called once, from the waiters
 * thread, possibly before waiters_add returns. Returns 0, or -1 when
 * draining or out of memory: then done is never called. */
__attribute__((warn_unused_result)) int waiters_add(struct waiters *w, const char *id,
                                                    int64_t deadline_ms, waiter_fn done, void *arg);
/* waiters_wake makes every waiter of id due (final). Cheap: a lock, a hash
 * lookup and, when someone waits, a list move and a signal. */
void waiters_wake(struct waiters *w, const char *id);
/* waiters_wake_cb is waiters_wake with the shape of status_index_on_final's hook. */
void waiters_wake_cb(void *w, const char *id);
/* waiters_count is the number of waiters not yet answered. */
size_t waiters_count(struct waiters *w);

#endif
