/* json.h: strict JSON parsing and the API's error bodies. Parsing refuses
 * trailing garbage, invalid UTF-8 and nesting deeper than a fixed limit, so
 * hostile input costs bounded work and never crashes a process. */
#ifndef SLUICE_JSON_H
#define SLUICE_JSON_H

#include <json-c/json.h>
#include <stddef.h>

#define JSON_MAX_DEPTH 32

/* json_parse parses exactly one JSON value from s (len bytes, need not be
 * NUL-terminated). Returns a new object the caller puts (json_object_put), or
 * NULL with a short reason in why (why may be NULL). A JSON `null` document is
 * returned as NULL with why = "null document"; s == NULL reads as empty input. */
struct json_object *json_parse(const char *s, size_t len, char *why, size_t whylen);
/* json_utf8_valid tells whether s (len bytes) is well-formed UTF-8 (no overlongs,
 * no surrogates). */
int json_utf8_valid(const char *s, size_t len);
/* json_error_body returns a malloc'd {"error":{"code":..,"message":..}} document
 * (caller frees) or NULL on ENOMEM. code is snake_case ASCII; message any UTF-8. */
char *json_error_body(const char *code, const char *message);

#endif
