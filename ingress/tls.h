/* tls.h: the listener's certificate and key (ingress.tls_cert_file,
 * tls_key_file), read into memory once at start for libmicrohttpd's TLS
 * (GnuTLS in Debian's build). The key is secret: never logged, wiped when
 * freed. */
#ifndef SLUICE_TLS_H
#define SLUICE_TLS_H

#include <stddef.h>

#include "config.h"

/* TLS 1.2 and 1.3 only, GnuTLS's default ciphers of those. */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

struct tls_files {
    char *cert; /* PEM, NUL-terminated */
    char *key;
};

/* tls_load reads both files of cfg into t. Returns 0, or -1 with err
 * naming the file and the problem (never its contents). */
__attribute__((warn_unused_result)) int tls_load(const struct cfg_ingress *cfg, struct tls_files *t,
                                                 char *err, size_t errlen);
/* tls_free wipes the key and frees both. */
void tls_free(struct tls_files *t);

#endif
