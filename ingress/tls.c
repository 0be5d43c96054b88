/* tls.c: reading the listener's certificate and key (see tls.h). */
#include "tls.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TLS_FILE_MAX (1L << 20)

/* slurp reads path into a new NUL-terminated *out; key, the setting, names
 * it in messages. */
static int slurp(const char *key, const char *path, char **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    long len = -1;
    int rc = -1;
    *out = NULL;
    if (!f || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        snprintf(err, errlen, "%s: cannot read %s: %s", key, path, strerror(errno ? errno : EIO));
        goto out;
    }
    if (len == 0 || len > TLS_FILE_MAX) {
        snprintf(err, errlen, "%s: %s is empty or larger than 1 MiB", key, path);
        goto out;
    }
    *out = malloc((size_t)len + 1);
    if (!*out || fread(*out, 1, (size_t)len, f) != (size_t)len) {
        snprintf(err, errlen, "%s: cannot read %s", key, path);
        goto out;
    }
    (*out)[len] = '\0';
    if (strlen(*out) != (size_t)len || !strstr(*out, "-----BEGIN ")) {
        snprintf(err, errlen, "%s: %s is not a PEM file", key, path);
        goto out;
    }
    rc = 0;
out:
    if (rc < 0 && *out) {
        OPENSSL_cleanse(*out, (size_t)len);
        free(*out);
        *out = NULL;
    }
    if (f) fclose(f);
    return rc;
}

int tls_load(const struct cfg_ingress *cfg, struct tls_files *t, char *err, size_t errlen)
{
    *t = (struct tls_files){0};
    if (slurp("ingress.tls_cert_file", cfg->tls_cert_file, &t->cert, err, errlen) < 0 ||
        slurp("ingress.tls_key_file", cfg->tls_key_file, &t->key, err, errlen) < 0) {
        tls_free(t);
        return -1;
    }
    return 0;
}

void tls_free(struct tls_files *t)
{
    if (t->key) OPENSSL_cleanse(t->key, strlen(t->key));
    free(t->key);
    free(t->cert);
    *t = (struct tls_files){0};
}
