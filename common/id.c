/* id.c: tracking IDs that sort by creation time as plain strings. The
 * alphabet is in ASCII order and the bytes are encoded big-endian, so string
 * order is byte order, and the leading 48-bit timestamp decides it. */
#include "id.h"

#include <errno.h>
#include <sys/random.h>

#define ID_TIME_BYTES 6
#define ID_TIME_MAX ((INT64_C(1) << 48) - 1)

static const char id_alphabet[] =
    "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";

/* id_digit returns the 6-bit value of c, or -1 when c is not in the alphabet. */
static int id_digit(char c)
{
    if (c == '-') return 0;
    if (c >= '0' && c <= '9') return 1 + (c - '0');
    if (c >= 'A' && c <= 'Z') return 11 + (c - 'A');
    if (c == '_') return 37;
    if (c >= 'a' && c <= 'z') return 38 + (c - 'a');
    return -1;
}

/* id_random fills p with n bytes from the kernel, retrying on EINTR and on
 * the short reads getrandom may return when interrupted. */
static int id_random(unsigned char *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(p + got, n - got, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -EIO;
        got += (size_t)r;
    }
    return 0;
}

int id_new(char out[ID_LEN + 1], int64_t now_ms)
{
    unsigned char raw[ID_BYTES];
    int rc = id_random(raw + ID_TIME_BYTES, ID_BYTES - ID_TIME_BYTES);
    if (rc) return rc;

    /* A time outside 48 bits is clamped rather than wrapped, so order holds. */
    uint64_t t = now_ms < 0 ? 0 : now_ms > ID_TIME_MAX ? (uint64_t)ID_TIME_MAX : (uint64_t)now_ms;
    for (int i = ID_TIME_BYTES - 1; i >= 0; i--) {
        raw[i] = (unsigned char)(t & 0xFF);
        t >>= 8;
    }
    id_encode(raw, out);
    return 0;
}

void id_encode(const unsigned char raw[ID_BYTES], char out[ID_LEN + 1])
{
    for (size_t i = 0, o = 0; i < ID_BYTES; i += 3, o += 4) {
        uint32_t v = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
        out[o] = id_alphabet[v >> 18 & 63];
        out[o + 1] = id_alphabet[v >> 12 & 63];
        out[o + 2] = id_alphabet[v >> 6 & 63];
        out[o + 3] = id_alphabet[v & 63];
    }
    out[ID_LEN] = '\0';
}

bool id_valid(const char *s, size_t len)
{
    if (!s || len != ID_LEN) return false;
    for (size_t i = 0; i < len; i++)
        if (id_digit(s[i]) < 0) return false;
    return true;
}

int64_t id_time_ms(const char *id)
{
    /* The 6 time bytes are exactly the first 8 characters (48 bits). */
    int64_t t = 0;
    for (int i = 0; i < 8; i++) {
        int d = id_digit(id[i]);
        if (d < 0) return -1;
        t = t << 6 | d;
    }
    return t;
}
