/* admin.h: the status page of the ingress. GET / serves a static HTML page
 * (no data in it) whose script polls GET /admin/summary with the admin token
 * (checked by auth.c). Both exist only when admin_token is configured; the
 * handlers answer 404 otherwise, so nothing is exposed by default. */
#ifndef SLUICE_ADMIN_H
#define SLUICE_ADMIN_H

#include <stdbool.h>

#include "app.h"
#include "buf.h"

/* admin_enabled tells whether the page is configured (admin_token not empty). */
bool admin_enabled(const struct cfg *cfg);
/* admin_page returns the page (a static string, never freed). */
const char *admin_page(void);
/* admin_summary appends the JSON document of /admin/summary to out at
 * monotonic time mono_ms. Returns 0 or a buf error. */
__attribute__((warn_unused_result)) int admin_summary(struct app *app, struct buf *out,
                                                      int64_t mono_ms);

#endif
