/* config_parse.h: what the parts of the configuration loader share
 * (config.c: the scalars and the file; config_keys.c: "keys";
 * config_routes.c: "routes"): where a text came from, messages that name
 * the setting, and readers of JSON members that refuse a bad value with
 * such a message. Internal to those files; everyone else uses config.h. */
#ifndef SLUICE_CONFIG_PARSE_H
#define SLUICE_CONFIG_PARSE_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"

#define CFG_PATH_MAX 256
#define CFG_NAME_MAX 128

/* A cfgp_src says where the text being parsed came from, for messages. */
struct cfgp_src {
    const char *src; /* "config sluice.json", "environment", "environment SLUICE_KEYS" */
    char *err;
    size_t errlen;
};

/* A field is a numeric member of a key or a route. */
enum field_type { F_LONG, F_INT, F_DOUBLE };
struct field {
    const char *name;
    enum field_type type;
    long def, min, max;
    size_t off;
};
#define N_FIELDS(a) (sizeof(a) / sizeof(a)[0])

/* cfgp_fail writes "<src>: <path>: <message>" (path may be NULL) to x's
 * err and returns -1. Callers never put a secret in the message. */
__attribute__((format(printf, 3, 4))) int cfgp_fail(const struct cfgp_src *x, const char *path,
                                                    const char *fmt, ...);
/* cfgp_show renders v as JSON for a message; the text belongs to v. */
const char *cfgp_show(struct json_object *v);
/* cfgp_pathf formats the name of a setting, like "routes.echo.upstreams[0]",
 * into out (CFG_PATH_MAX bytes); names cut short still point the operator there. */
__attribute__((format(printf, 2, 3))) void cfgp_pathf(char *out, const char *fmt, ...);
/* cfgp_join writes "prefix.name" (or name when prefix is "") to out. */
void cfgp_join(char *out, const char *prefix, const char *name);
/* cfgp_range_text words [min, max] to follow "must be ". */
void cfgp_range_text(char *out, size_t len, long min, long max);
/* cfgp_string reads a string value, refusing embedded NULs that C would cut. */
int cfgp_string(const struct cfgp_src *x, const char *path, struct json_object *v,
                const char **out);
/* cfgp_check_members refuses a member of o that is neither in fields nor
 * in names (NULL-terminated). */
int cfgp_check_members(const struct cfgp_src *x, const char *path, struct json_object *o,
                       const struct field *fields, size_t n, const char *const *names);
/* cfgp_load_fields sets every numeric field of base from o, or to its default. */
int cfgp_load_fields(const struct cfgp_src *x, const char *path, struct json_object *o,
                     const struct field *fields, size_t n, void *base);
/* cfgp_member_string reads the required string member name of o, 1..max
 * bytes, into a new copy at *out. */
int cfgp_member_string(const struct cfgp_src *x, const char *path, struct json_object *o,
                       const char *name, size_t max, char **out);
/* cfgp_load_strings copies the non-empty array a of non-empty strings into
 * *out (*n counts what was copied, also on failure, for freeing). */
int cfgp_load_strings(const struct cfgp_src *x, const char *path, struct json_object *a,
                      char ***out, size_t *n);
void cfgp_free_strings(char **v, size_t n);

/* cfgp_load_routes fills c->routes from the object o; cfgp_load_keys fills
 * c->keys from the array a (routes must be loaded first). On failure what
 * was loaded stays in c for cfg_free. */
int cfgp_load_routes(const struct cfgp_src *x, struct cfg *c, struct json_object *o);
int cfgp_load_keys(const struct cfgp_src *x, struct cfg *c, struct json_object *a);
/* cfgp_load_delivery reads route r's signing_secrets, set_headers and
 * remove_headers (config_delivery.c); cfgp_free_delivery frees them,
 * zeroing the keys. */
int cfgp_load_delivery(const struct cfgp_src *x, const char *path, struct json_object *o,
                       struct cfg_route *r);
void cfgp_free_delivery(struct cfg_route *r);
/* cfgp_free_routes and cfgp_free_keys free what the loaders made. */
void cfgp_free_routes(struct cfg *c);
void cfgp_free_keys(struct cfg *c);

#endif
