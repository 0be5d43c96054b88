/* print.h: the human output of the sluice command-line client: an accepted
 * request, a status as aligned fields with the result body pretty-printed,
 * and the one-line changes of status --watch. (--json output is the API's
 * own JSON and does not come through here.) */
#ifndef SLUICE_CLI_PRINT_H
#define SLUICE_CLI_PRINT_H

#include <json-c/json.h>
#include <stdio.h>

/* print_accepted writes "queued  <id>" for a 202 answer's document; returns
 * -1 (nothing written) when the document has no id. */
int print_accepted(FILE *out, struct json_object *answer);
/* print_status writes a status document: one "label  value" line per field,
 * then the result body (JSON indented, text as is, bytes as base64). */
void print_status(FILE *out, struct json_object *status);
/* print_change writes one line for status --watch: updated_at, status and
 * attempts. */
void print_change(FILE *out, struct json_object *status);
/* print_str returns the string at key of o, or NULL when it is absent or
 * not a string. */
const char *print_str(struct json_object *o, const char *key);

#endif
