/* requests.h: the endpoints on requests already submitted, besides their
 * status (handlers.c): the listing, GET /v1/requests (listing.h), and
 * DELETE /v1/requests/<id> (a cancel) and DELETE /v1/requests/<id>/result
 * (an erasure), which the control thread carries out (control.h). */
#ifndef SLUICE_REQUESTS_H
#define SLUICE_REQUESTS_H

#include <stdbool.h>

#include "handlers.h"

/* Endpoint functions of handlers.c's table (see handlers.h). */
bool requests_list(struct request *r, struct answer *a);
bool requests_delete(struct request *r, struct answer *a);

#endif
