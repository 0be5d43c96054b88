/* print.c: the human output of the sluice command-line client (see
 * print.h). Labels are padded to one width so a status reads as a table and
 * stays easy to grep and cut. */
#include "print.h"

#include <stdarg.h>
#include <stdbool.h>
#include <string.h>

#define LABEL_WIDTH 13 /* "completed_at" and a space */
#define PRETTY (JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE)
#define PLAIN (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* The scalar fields of a status, in the order they are shown. */
static const char *const scalar_fields[] = {
    "id", "route", "status", "attempts", "created_at", "updated_at", "completed_at",
};

const char *print_str(struct json_object *o, const char *key)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* member returns o's member key unless it is absent or null. */
static struct json_object *member(struct json_object *o, const char *key)
{
    struct json_object *v = NULL;
    json_object_object_get_ex(o, key, &v);
    return v;
}

/* text is how a value reads in a field: strings bare, the rest as JSON. */
static const char *text(struct json_object *v)
{
    return json_object_is_type(v, json_type_string) ? json_object_get_string(v)
                                                    : json_object_to_json_string_ext(v, PLAIN);
}

__attribute__((format(printf, 3, 4))) static void field(FILE *out, const char *label,
                                                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(out, "%-*s", LABEL_WIDTH, label);
    vfprintf(out, fmt, ap);
    fputc('\n', out);
    va_end(ap);
}

int print_accepted(FILE *out, struct json_object *answer)
{
    const char *id = print_str(answer, "id");
    const char *status = print_str(answer, "status");
    if (!id) return -1;
    fprintf(out, "%s  %s\n", status ? status : "queued", id);
    return 0;
}

static void print_error(FILE *out, struct json_object *error)
{
    const char *code = print_str(error, "code"), *message = print_str(error, "message");
    if (code || message)
        field(out, "error", "%s%s%s", code ? code : "", code && message ? ": " : "",
              message ? message : "");
    else
        field(out, "error", "%s", text(error));
}

/* print_result writes the result's fields and returns its body (borrowed,
 * NULL when there is nothing to show below the fields). */
static struct json_object *print_result(FILE *out, struct json_object *result, int *kind)
{
    struct json_object *v = member(result, "status");
    struct json_object *truncated = member(result, "truncated");
    bool cut = truncated && json_object_get_boolean(truncated);
    field(out, "result", "%s%s", v ? text(v) : "?", cut ? " (truncated)" : "");
    const char *label = "headers";
    struct json_object *headers = member(result, "headers");
    if (headers && json_object_is_type(headers, json_type_object)) {
        json_object_object_foreach(headers, name, value)
        {
            field(out, label, "%s: %s", name, text(value));
            label = "";
        }
    }
    static const char *const bodies[] = {"body", "body_text", "body_base64"};
    static const char *const kinds[] = {"JSON", "text", "base64"};
    for (int i = 0; i < 3; i++) {
        v = member(result, bodies[i]);
        if (!v) continue;
        bool empty = i > 0 && json_object_get_string_len(v) == 0;
        field(out, "body", "%s", empty ? "(empty)" : kinds[i]);
        *kind = i;
        return empty ? NULL : v;
    }
    return NULL;
}

void print_status(FILE *out, struct json_object *status)
{
    for (size_t i = 0; i < sizeof scalar_fields / sizeof *scalar_fields; i++) {
        struct json_object *v = member(status, scalar_fields[i]);
        if (v) field(out, scalar_fields[i], "%s", text(v));
    }
    struct json_object *error = member(status, "error");
    if (error) print_error(out, error);
    struct json_object *result = member(status, "result"), *body = NULL;
    int kind = 0;
    if (result && json_object_is_type(result, json_type_object))
        body = print_result(out, result, &kind);
    if (!body) return;
    /* JSON is indented; text and base64 are shown as they are. */
    const char *s = kind == 0 ? json_object_to_json_string_ext(body, PRETTY) : text(body);
    size_t len = strlen(s);
    fprintf(out, "\n%s%s", s, len && s[len - 1] == '\n' ? "" : "\n");
}

void print_change(FILE *out, struct json_object *status)
{
    const char *updated = print_str(status, "updated_at");
    const char *name = print_str(status, "status");
    struct json_object *attempts = member(status, "attempts");
    fprintf(out, "%-24s  %-10s  attempts %s\n", updated ? updated : "-", name ? name : "?",
            attempts ? text(attempts) : "?");
}
