/* admin.c: the ingress's status page (see admin.h): the page itself, kept
 * here as one C string so the binary needs no files at run time, and the
 * summary document its script polls. */
#include "admin.h"

#include <string.h>

#include "clock.h"

/* The page: plain HTML, CSS and JavaScript, no external assets. Its script
 * takes the token from the address (#token=...) or a form, keeps it in
 * sessionStorage, polls /admin/summary every 2 s and fills the page with
 * textContent only, so no data is ever parsed as HTML. */
static const char page[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"en\">\n"
    "<head>\n"
    "<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<meta name=\"referrer\" content=\"no-referrer\">\n"
    "<title>sluice status</title>\n"
    "<style>\n"
    "body { font: 15px/1.4 system-ui, sans-serif; margin: 1.5em auto; max-width: 60em; padding: 0 "
    "1em; color: #222; }\n"
    "h1 { font-size: 1.4em; margin: 0 0 .5em; }\n"
    "h2 { font-size: 1.1em; margin: 1.5em 0 .4em; }\n"
    "table { border-collapse: collapse; width: 100%; }\n"
    "th, td { text-align: left; padding: .25em .6em; border-bottom: 1px solid #ddd; }\n"
    "td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }\n"
    ".tiles { display: flex; gap: 1em; flex-wrap: wrap; }\n"
    ".tile { border: 1px solid #ddd; border-radius: 6px; padding: .5em 1em; min-width: 10em; }\n"
    ".tile b { display: block; font-size: 1.6em; }\n"
    ".ok { color: #176f2c; } .bad { color: #b00020; } .muted { color: #777; }\n"
    "code { font-size: .9em; }\n"
    "</style>\n"
    "</head>\n"
    "<body>\n"
    "<h1>sluice ingress <span id=\"state\" class=\"muted\">starting</span></h1>\n"
    "<form id=\"login\" hidden>\n"
    "<p id=\"login-why\">This page needs the admin token.</p>\n"
    "<input id=\"token\" type=\"password\" autocomplete=\"off\" placeholder=\"admin token\" "
    "size=\"40\">\n"
    "<button type=\"submit\">Show status</button>\n"
    "</form>\n"
    "<main id=\"main\" hidden>\n"
    "<div class=\"tiles\">\n"
    "<div class=\"tile\">accepted/s<b id=\"rate\">-</b><span class=\"muted\" "
    "id=\"accepted\"></span></div>\n"
    "<div class=\"tile\">requests queue<b id=\"q-requests\">-</b></div>\n"
    "<div class=\"tile\">dead queue<b id=\"q-dead\">-</b></div>\n"
    "<div class=\"tile\">broker<b id=\"broker\">-</b><span class=\"muted\" "
    "id=\"events\"></span></div>\n"
    "</div>\n"
    "<h2>Lanes</h2>\n"
    "<table><thead><tr><th>route</th><th>limits</th><th class=\"n\">backlog</th><th "
    "class=\"n\">drain/s</th><th class=\"n\">backlog s</th></tr></thead>\n"
    "<tbody id=\"lanes\"></tbody></table>\n"
    "<h2>Outcomes per route</h2>\n"
    "<table><thead><tr><th>route</th><th class=\"n\">succeeded</th><th class=\"n\">failed</th><th "
    "class=\"n\">dead</th></tr></thead>\n"
    "<tbody id=\"routes\"></tbody></table>\n"
    "<h2>Recent failures</h2>\n"
    "<table><thead><tr><th>time</th><th>id</th><th>route</th><th>state</th><th>error</th></tr></"
    "thead>\n"
    "<tbody id=\"failures\"></tbody></table>\n"
    "<p class=\"muted\" id=\"updated\"></p>\n"
    "</main>\n"
    "<script>\n"
    "'use strict';\n"
    "(function () {\n"
    "  var KEY = 'sluice-admin-token', PERIOD_MS = 2000, timer = null;\n"
    "  function $(id) { return document.getElementById(id); }\n"
    "  function text(id, value) { $(id).textContent = value; }\n"
    "  function setState(value, cls) { text('state', value); $('state').className = cls; }\n"
    "  // A token handed over in the address (#token=...) moves to sessionStorage\n"
    "  // and leaves the address bar, history and any copied link.\n"
    "  function takeTokenFromAddress() {\n"
    "    var m = /(?:^#|&)token=([^&]*)/.exec(location.hash);\n"
    "    if (!m) return;\n"
    "    sessionStorage.setItem(KEY, decodeURIComponent(m[1]));\n"
    "    history.replaceState(null, '', location.pathname + location.search);\n"
    "  }\n"
    "  function row(cells) {\n"
    "    var tr = document.createElement('tr');\n"
    "    cells.forEach(function (c) {\n"
    "      var td = document.createElement('td');\n"
    "      if (typeof c === 'number') td.className = 'n';\n"
    "      td.textContent = String(c);\n"
    "      tr.appendChild(td);\n"
    "    });\n"
    "    return tr;\n"
    "  }\n"
    "  function fill(id, rows, empty) {\n"
    "    if (rows.length === 0) {\n"
    "      var tr = document.createElement('tr'), td = document.createElement('td');\n"
    "      td.colSpan = 5; td.className = 'muted'; td.textContent = empty;\n"
    "      tr.appendChild(td); rows = [tr];\n"
    "    }\n"
    "    $(id).replaceChildren.apply($(id), rows);\n"
    "  }\n"
    "  function depth(n) { return n === null ? '-' : String(n); }\n"
    "  function render(d) {\n"
    "    text('rate', d.throughput.accepted_per_s.toFixed(2));\n"
    "    text('accepted', d.throughput.accepted_total + ' accepted');\n"
    "    text('q-requests', depth(d.queues.requests));\n"
    "    text('q-dead', depth(d.queues.dead));\n"
    "    text('broker', d.broker_connected ? 'connected' : 'down');\n"
    "    $('broker').className = d.broker_connected ? 'ok' : 'bad';\n"
    "    text('events', d.events_caught_up ? 'events caught up' : 'events catching up');\n"
    "    fill('lanes', (d.lanes || []).map(function (l) {\n"
    "      var lim = [];\n"
    "      if (l.rate_per_s > 0) lim.push(l.rate_per_s + '/s');\n"
    "      if (l.max_in_flight > 0) lim.push(l.max_in_flight + ' at once');\n"
    "      return row([l.route, lim.length ? lim.join(', ') : 'none', l.backlog === null ? '-' : "
    "l.backlog,\n"
    "                  l.drain_per_s, l.backlog_s === null ? '-' : l.backlog_s]);\n"
    "    }), 'no routes');\n"
    "    fill('routes', d.routes.map(function (r) {\n"
    "      return row([r.route, r.succeeded, r.failed, r.dead]);\n"
    "    }), 'no finished requests yet');\n"
    "    fill('failures', d.recent_failures.map(function (f) {\n"
    "      return row([f.time, f.id, f.route, f.state, f.code]);\n"
    "    }), 'no failures');\n"
    "    text('updated', 'updated ' + new Date().toLocaleTimeString());\n"
    "    setState('live', 'ok');\n"
    "  }\n"
    "  function showLogin(why) {\n"
    "    $('main').hidden = true;\n"
    "    $('login').hidden = false;\n"
    "    text('login-why', why);\n"
    "  }\n"
    "  function schedule() { clearTimeout(timer); timer = setTimeout(poll, PERIOD_MS); }\n"
    "  function poll() {\n"
    "    var token = sessionStorage.getItem(KEY);\n"
    "    if (!token) { setState('locked', 'muted'); return showLogin('This page needs the admin "
    "token.'); }\n"
    "    fetch('/admin/summary', { headers: { 'Authorization': 'Bearer ' + token }, cache: "
    "'no-store' })\n"
    "      .then(function (r) {\n"
    "        if (r.status === 401) {\n"
    "          sessionStorage.removeItem(KEY);\n"
    "          setState('unauthorized', 'bad');\n"
    "          showLogin('The token was refused; enter the admin token.');\n"
    "          return null;\n"
    "        }\n"
    "        if (!r.ok) throw new Error('HTTP ' + r.status);\n"
    "        return r.json().then(function (d) {\n"
    "          $('login').hidden = true; $('main').hidden = false;\n"
    "          render(d);\n"
    "          schedule();\n"
    "        });\n"
    "      })\n"
    "      .catch(function (e) { setState('disconnected (' + e.message + ')', 'bad'); schedule(); "
    "});\n"
    "  }\n"
    "  $('login').addEventListener('submit', function (ev) {\n"
    "    ev.preventDefault();\n"
    "    sessionStorage.setItem(KEY, $('token').value);\n"
    "    $('token').value = '';\n"
    "    poll();\n"
    "  });\n"
    "  takeTokenFromAddress();\n"
    "  poll();\n"
    "})();\n"
    "</script>\n"
    "</body>\n"
    "</html>\n";

bool admin_enabled(const struct cfg *cfg)
{
    return cfg->admin_token && cfg->admin_token[0] != '\0';
}

const char *admin_page(void)
{
    return page;
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
