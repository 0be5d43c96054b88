/* deadline.h: the whole-request deadline of the ingress. A request must
 * arrive whole (request line, headers, body) within request_timeout_s of its
 * first byte. libmicrohttpd 0.9.75's connection timeout only measures
 * inactivity, so a client sending a byte a second holds a connection (and
 * its memory) for ever, and its access handler is not even called until the
 * headers are complete. So one thread watches every connection: it learns
 * that a request began from the kernel's count of bytes received on the
 * socket (TCP_INFO), or from the HTTP layer when the request line is parsed,
 * and cuts a request still arriving past its deadline: a 408 written on the
 * socket (plain HTTP only: nothing else writes while a request is being
 * read), then shutdown(2), which makes libmicrohttpd close the connection
 * as if the client had. The HTTP layer claims a request (stopping its clock)
 * before it answers it, so the watcher never writes into an answer.
 *
 * Nothing here knows libmicrohttpd; http.c calls these from its callbacks. */
#ifndef SLUICE_DEADLINE_H
#define SLUICE_DEADLINE_H

#include <stdbool.h>
#include <stdint.h>

struct deadline;
struct deadline_conn;

/* deadline_new starts the watcher: requests get timeout_ms; plain says a
 * 408 may be written on the socket (false under TLS, where only the TLS
 * layer may write). on_cut(arg) runs on the watcher thread for each request
 * cut (for counting). NULL when the thread cannot start. */
struct deadline *deadline_new(long timeout_ms, bool plain, void (*on_cut)(void *arg), void *arg);
/* deadline_free stops the watcher and frees it; connections still open are
 * no longer watched and must not be used after. NULL is a no-op. */
void deadline_free(struct deadline *d);

/* deadline_open watches the connection on socket fd from its accept; NULL
 * when out of memory (the connection then has the idle timeout only). */
struct deadline_conn *deadline_open(struct deadline *d, int fd);
/* deadline_close stops watching c and frees it; call it before the socket
 * is closed, so the watcher never touches a socket number reused since. */
void deadline_close(struct deadline *d, struct deadline_conn *c);

/* deadline_begun: the HTTP layer saw a request begin (its request line);
 * its clock starts now unless the watcher saw its first bytes earlier. */
void deadline_begun(struct deadline_conn *c);
/* deadline_claim stops the clock of c's request, before the HTTP layer
 * answers it (it is whole, or refused early). false when the watcher has
 * cut it already: then the connection is closing and must not be answered. */
bool deadline_claim(struct deadline_conn *c);
/* deadline_rearm: c's request was answered; the next one's clock starts
 * with its first byte. */
void deadline_rearm(struct deadline_conn *c);

/* deadline_watched returns how many connections d watches (for tests). */
long deadline_watched(struct deadline *d);

#endif
