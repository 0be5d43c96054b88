/* admin.c: the ingress's status page (see admin.h): the page itself, built
 * into the binary from ingress/page.html, and the summary document its
 * script polls. */
#include "admin.h"

#include <string.h>

#include "clock.h"

/* The page is ingress/page.html: plain HTML, CSS and JavaScript, no external
 * assets. The assembler puts it into the binary (.incbin, the path relative
 * to the build's directory, the repository's root; the Makefile rebuilds
 * this file when the page changes), NUL-terminated, so the binary needs no
 * files at run time and the page stays a file a browser and an editor can
 * open. Its script takes the token (or key) from the address (#token=...) or
 * a form, keeps it in sessionStorage, polls /admin/summary and the admin API
 * every 2 s and fills the page with textContent and SVG elements only, so
 * no data is ever parsed as HTML. */
__asm__(".section .rodata\n"
        ".global sluice_admin_page\n"
        ".type sluice_admin_page, @object\n"
        "sluice_admin_page:\n"
        ".incbin \"ingress/page.html\"\n"
        ".byte 0\n"
        ".size sluice_admin_page, . - sluice_admin_page\n"
        ".previous\n");
extern const char sluice_admin_page[];

bool admin_enabled(const struct cfg *cfg)
{
    return cfg->admin_token && cfg->admin_token[0] != '\0';
}

const char *admin_page(void)
{
    return sluice_admin_page;
}

int admin_summary(struct app *app, struct buf *out, int64_t mono_ms)
{
    char now[32];
    clock_rfc3339(now, clock_real_ms());
    int rc = buf_appendf(out, "{\"time\":\"%s\",\"namespace\":", now);
    if (rc == 0) rc = buf_append_json_string(out, app->cfg.namespace, strlen(app->cfg.namespace));
    if (rc == 0)
        rc = buf_appendf(out, ",\"broker_connected\":%s,\"events_caught_up\":%s,",
                         publisher_ready(app->publisher) ? "true" : "false",
                         events_caught_up(app->events) ? "true" : "false");
    if (rc == 0) rc = activity_render(app->activity, out, mono_ms);
    if (rc == 0 && app->lanes) rc = buf_appends(out, ",");
    if (rc == 0 && app->lanes) rc = lanes_render(app->lanes, out, clock_real_ms());
    if (rc == 0) rc = buf_appends(out, "}");
    return rc;
}
