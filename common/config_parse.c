/* config_parse.c: readers of JSON members for the configuration loader
 * (see config_parse.h), each refusing a bad value with a message that names
 * the setting. */
#include "config_parse.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((format(printf, 3, 4))) int cfgp_fail(const struct cfgp_src *x, const char *path,
                                                    const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (x->err && x->errlen > 0) {
        if (path)
            snprintf(x->err, x->errlen, "%s: %s: %s", x->src, path, msg);
        else
            snprintf(x->err, x->errlen, "%s: %s", x->src, msg);
    }
    return -1;
}

/* show renders v as JSON for a message; the text belongs to v. */
const char *cfgp_show(struct json_object *v)
{
    return json_object_to_json_string_ext(v,
                                          JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* pathf formats the name of a setting, like "routes.echo.upstreams[0]", into
 * out (CFG_PATH_MAX bytes); names cut short still point the operator there. */
__attribute__((format(printf, 2, 3))) void cfgp_pathf(char *out, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(out, CFG_PATH_MAX, fmt, ap);
    va_end(ap);
}

void cfgp_join(char *out, const char *prefix, const char *name)
{
    cfgp_pathf(out, "%s%s%s", prefix, prefix[0] ? "." : "", name);
}

void cfgp_range_text(char *out, size_t len, long min, long max)
{
    if (max == LONG_MAX)
        snprintf(out, len, ">= %ld", min);
    else
        snprintf(out, len, "between %ld and %ld", min, max);
}

/* json_string reads a string value, refusing embedded NULs that C would cut. */
int cfgp_string(const struct cfgp_src *x, const char *path, struct json_object *v, const char **out)
{
    if (!json_object_is_type(v, json_type_string))
        return cfgp_fail(x, path, "must be a string (got %.80s)", cfgp_show(v));
    *out = json_object_get_string(v);
    if (strlen(*out) != (size_t)json_object_get_string_len(v))
        return cfgp_fail(x, path, "must not contain a NUL character");
    return 0;
}

/* check_members refuses a member of o that is neither in fields nor in names. */
int cfgp_check_members(const struct cfgp_src *x, const char *path, struct json_object *o,
                       const struct field *fields, size_t n, const char *const *names)
{
    json_object_object_foreach(o, name, v)
    {
        bool known = false;
        (void)v;
        for (size_t i = 0; i < n && !known; i++)
            known = !strcmp(fields[i].name, name);
        for (size_t i = 0; names[i] && !known; i++)
            known = !strcmp(names[i], name);
        if (!known) return cfgp_fail(x, NULL, "unknown key %s.%s", path, name);
    }
    return 0;
}

/* store sets field f of base to n, or to d for a double field. */
static void store(const struct field *f, void *base, int64_t n, double d)
{
    char *p = (char *)base + f->off;

    if (f->type == F_DOUBLE)
        *(double *)p = d;
    else if (f->type == F_INT)
        *(int *)p = (int)n;
    else
        *(long *)p = (long)n;
}

static int load_field(const struct cfgp_src *x, const char *path, struct json_object *v,
                      const struct field *f, void *base)
{
    char range[64];
    bool is_int = json_object_is_type(v, json_type_int);
    int64_t n = json_object_get_int64(v);
    double d = json_object_get_double(v);

    if (!is_int && (f->type != F_DOUBLE || !json_object_is_type(v, json_type_double)))
        return cfgp_fail(x, path, "must be %s (got %.80s)",
                         f->type == F_DOUBLE ? "a number" : "an integer", cfgp_show(v));
    if (is_int ? n < f->min || n > f->max : !(d >= (double)f->min && d <= (double)f->max)) {
        cfgp_range_text(range, sizeof range, f->min, f->max);
        return cfgp_fail(x, path, "must be %s (got %.80s)", range, cfgp_show(v));
    }
    store(f, base, n, d);
    return 0;
}

/* load_fields sets every numeric field of base from o, or to its default. */
int cfgp_load_fields(const struct cfgp_src *x, const char *path, struct json_object *o,
                     const struct field *fields, size_t n, void *base)
{
    char p[CFG_PATH_MAX];
    struct json_object *v;

    for (size_t i = 0; i < n; i++) {
        const struct field *f = &fields[i];
        if (!json_object_object_get_ex(o, f->name, &v)) {
            store(f, base, f->def, (double)f->def);
            continue;
        }
        cfgp_join(p, path, f->name);
        if (load_field(x, p, v, f, base) < 0) return -1;
    }
    return 0;
}

/* member_string reads the required string member name of o, 1..max bytes,
 * into a new copy at *out. */
int cfgp_member_string(const struct cfgp_src *x, const char *path, struct json_object *o,
                       const char *name, size_t max, char **out)
{
    char p[CFG_PATH_MAX];
    struct json_object *v;
    const char *s;
    size_t n;

    cfgp_join(p, path, name);
    if (!json_object_object_get_ex(o, name, &v)) return cfgp_fail(x, p, "is required");
    if (cfgp_string(x, p, v, &s) < 0) return -1;
    n = strlen(s);
    if (n < 1 || n > max) return cfgp_fail(x, p, "must be 1..%zu characters (got %zu)", max, n);
    *out = strdup(s);
    return *out ? 0 : cfgp_fail(x, p, "out of memory");
}

/* load_strings copies the non-empty array a of non-empty strings into *out. */
int cfgp_load_strings(const struct cfgp_src *x, const char *path, struct json_object *a,
                      char ***out, size_t *n)
{
    char p[CFG_PATH_MAX];
    size_t len;
    const char *s;

    if (!json_object_is_type(a, json_type_array) || json_object_array_length(a) == 0)
        return cfgp_fail(x, path, "must be a non-empty array of strings (got %.80s)", cfgp_show(a));
    len = json_object_array_length(a);
    *out = calloc(len, sizeof **out);
    if (!*out) return cfgp_fail(x, path, "out of memory");
    for (size_t i = 0; i < len; i++) {
        cfgp_pathf(p, "%s[%zu]", path, i);
        if (cfgp_string(x, p, json_object_array_get_idx(a, i), &s) < 0) return -1;
        if (!s[0]) return cfgp_fail(x, p, "must not be empty");
        (*out)[i] = strdup(s);
        if (!(*out)[i]) return cfgp_fail(x, p, "out of memory");
        (*n)++;
    }
    return 0;
}

void cfgp_free_strings(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}
