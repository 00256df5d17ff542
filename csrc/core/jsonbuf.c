#include "core/jsonbuf.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool grow(struct dn_buf *b, size_t extra)
{
    if (b->oom)
        return false;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < b->len + extra + 1)
        ncap *= 2;
    char *nd = realloc(b->data, ncap);
    if (!nd) {
        b->oom = true;
        return false;
    }
    b->data = nd;
    b->cap = ncap;
    return true;
}

/* Room for extra more bytes and the terminating NUL; false once out of memory. */
static inline bool reserve(struct dn_buf *b, size_t extra)
{
    if (__builtin_expect(!b->oom && b->len + extra + 1 <= b->cap, 1))
        return true;
    return grow(b, extra);
}

void dn_buf_append(struct dn_buf *b, const char *s, size_t n)
{
    if (!reserve(b, n))
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void dn_buf_puts(struct dn_buf *b, const char *s)
{
    dn_buf_append(b, s, strlen(s));
}

void dn_buf_printf(struct dn_buf *b, const char *fmt, ...)
{
    char small[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        dn_buf_append(b, small, (size_t)n);
        return;
    }
    if (!reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void dn_buf_free(struct dn_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

char *dn_buf_room(struct dn_buf *b, size_t n)
{
    return reserve(b, n) ? b->data + b->len : NULL;
}

void dn_buf_commit(struct dn_buf *b, char *end)
{
    b->len = (size_t)(end - b->data);
    b->data[b->len] = '\0';
}

/* ---- integers ------------------------------------------------------------------------ */

static const char digit_pairs[201] = "00010203040506070809101112131415161718192021222324"
                                     "25262728293031323334353637383940414243444546474849"
                                     "50515253545556575859606162636465666768697071727374"
                                     "75767778798081828384858687888990919293949596979899";

#define U64_DIGITS_MAX 20

static int u64_digits(uint64_t v)
{
    int n = 1;
    for (; v >= 10000; v /= 10000)
        n += 4;
    if (v >= 100) {
        n += 2;
        v /= 100;
    }
    return n + (v >= 10);
}

/* Writes v in decimal at p; returns the end. */
static char *put_u64(char *p, uint64_t v)
{
    char *end = p + u64_digits(v), *q = end;
    while (v > UINT32_MAX) {
        unsigned r = (unsigned)(v % 100);
        v /= 100;
        q -= 2;
        memcpy(q, digit_pairs + 2 * r, 2);
    }
    uint32_t u = (uint32_t)v; /* 32-bit division is cheaper */
    while (u >= 100) {
        unsigned r = u % 100;
        u /= 100;
        q -= 2;
        memcpy(q, digit_pairs + 2 * r, 2);
    }
    if (u >= 10)
        memcpy(q - 2, digit_pairs + 2 * u, 2);
    else
        q[-1] = (char)('0' + u);
    return end;
}

static char *put_i64(char *p, int64_t v)
{
    if (v < 0) {
        *p++ = '-';
        return put_u64(p, (uint64_t)0 - (uint64_t)v);
    }
    return put_u64(p, (uint64_t)v);
}

void dn_buf_u64(struct dn_buf *b, uint64_t v)
{
    char *p = dn_buf_room(b, U64_DIGITS_MAX);
    if (p)
        dn_buf_commit(b, put_u64(p, v));
}

void dn_buf_i64(struct dn_buf *b, int64_t v)
{
    char *p = dn_buf_room(b, U64_DIGITS_MAX + 1);
    if (p)
        dn_buf_commit(b, put_i64(p, v));
}

/* ---- strings ------------------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at s (> 0), or minus the length of its maximal
 * ill-formed part (< 0): the lead byte and the continuation bytes that could still have
 * completed it (Unicode's "maximal subpart", what CPython's decoder replaces with one
 * U+FFFD). The NUL terminator is never a continuation byte. */
static int utf8_seq(const unsigned char *s)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    int n;
    if (c < 0x80)
        return 1;
    if (c < 0xC2) /* a continuation byte, or an overlong two-byte lead */
        return -1;
    if (c < 0xE0) {
        n = 2;
    } else if (c < 0xF0) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c < 0xF5) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else {
        return -1;
    }
    for (int i = 1; i < n; i++) {
        if (s[i] < lo || s[i] > hi)
            return -i;
        lo = 0x80;
        hi = 0xBF;
    }
    return n;
}

/* The string literal; with csv, every quote it holds is doubled (for inside a quoted CSV
 * cell). */
static void json_string(struct dn_buf *b, const char *str, bool csv)
{
    static const char hex[] = "0123456789abcdef";
    static const char named[32] = {['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', ['\f'] = 'f',
                                   ['\r'] = 'r'};
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str);
    /* at most 6 bytes out for each byte in (\u00XX, or \ufffd for an invalid byte) */
    char *p = dn_buf_room(b, 6 * n + 4);
    if (!p)
        return;
    *p++ = '"';
    if (csv)
        *p++ = '"';
    while (*s) {
        unsigned char c = *s;
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            *p++ = (char)c;
            s++;
        } else if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = (char)c;
            if (c == '"' && csv)
                *p++ = '"';
            s++;
        } else if (c < 0x20) {
            *p++ = '\\';
            if (named[c]) {
                *p++ = named[c];
            } else {
                memcpy(p, "u00", 3);
                p[3] = hex[c >> 4];
                p[4] = hex[c & 15];
                p += 5;
            }
            s++;
        } else {
            int k = utf8_seq(s);
            if (k > 0) {
                memcpy(p, s, (size_t)k);
                p += k;
                s += k;
            } else {
                memcpy(p, "\\ufffd", 6);
                p += 6;
                s += -k;
            }
        }
    }
    *p++ = '"';
    if (csv)
        *p++ = '"';
    dn_buf_commit(b, p);
}

void dn_buf_json_string(struct dn_buf *b, const char *s)
{
    json_string(b, s, false);
}

/* ---- doubles ------------------------------------------------------------------------- */

#define DOUBLE_TEXT_MAX 40 /* "-1.7976931348623157e+308" and more */

/* What snprintf gives, the reference for the hand-made text below. Writes at p (room for
 * DOUBLE_TEXT_MAX bytes and a NUL); returns the end. */
static char *put_double_printf(char *p, double v)
{
    snprintf(p, DOUBLE_TEXT_MAX, "%.15g", v);
    if (strtod(p, NULL) != v)
        snprintf(p, DOUBLE_TEXT_MAX, "%.17g", v);
    /* Keep it a float for readers that care (1 -> 1.0). */
    if (!strpbrk(p, ".eEn"))
        strcat(p, ".0");
    return p + strlen(p);
}

#if defined(__SIZEOF_INT128__) && FLT_EVAL_METHOD == 0
#define DN_FAST_DOUBLE 1

__extension__ typedef unsigned __int128 u128;

/* 10^0 .. 10^22, the powers of ten a double holds exactly */
static const double exact_pow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static u128 pow10_u128(int k) /* 0 <= k <= 36 */
{
    static const uint64_t small[19] = {
        1u,           10u,           100u,           1000u,           10000u,
        100000u,      1000000u,      10000000u,      100000000u,      1000000000u,
        10000000000u, 100000000000u, 1000000000000u, 10000000000000u, 100000000000000u,
        1000000000000000u, 10000000000000000u, 100000000000000000u, 1000000000000000000u};
    return k < 19 ? small[k] : (u128)small[18] * small[k - 18];
}

/* Rounds v (finite, > 0) to `digits` (<= 17) significant decimal digits exactly, ties to
 * even as glibc's printf rounds: v ~ *m * 10^(*x10 - digits + 1), with
 * 10^(digits-1) <= *m < 10^digits, so *x10 is the decimal exponent printf's %e shows.
 * False outside the range done here (v < 1e-6 or v >= 1e17 or so). */
static bool round_digits(double v, int digits, uint64_t *m, int *x10)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    int be = (int)(bits >> 52) & 0x7FF;
    if (be == 0) /* subnormal */
        return false;
    uint64_t f = (bits & ((UINT64_C(1) << 52) - 1)) | (UINT64_C(1) << 52);
    int sh = 1075 - be; /* v = f / 2^sh, 2^52 <= f < 2^53 */
    /* 2^(be-1023) <= v < 2^(be-1022), so floor(log10(v)) is x or x + 1, with x the floor
     * of (be - 1023) * log10(2) (log10(2) * 2^32 = 1292913986.08) */
    int64_t t = (int64_t)(be - 1023) * 1292913986;
    int x = (int)(t >= 0 ? t >> 32 : -((-t + 0xFFFFFFFF) >> 32));
    u128 lo = pow10_u128(digits - 1), hi = lo * 10;
    for (int pass = 0; pass < 2; pass++, x++) {
        int k = digits - 1 - x; /* v * 10^k has `digits` integer digits when x is right */
        if (k < 0 || k > 22 || sh >= 128 || sh < -8)
            return false;
        u128 n = (u128)f * pow10_u128(k); /* < 2^53 * 10^22 < 2^127 */
        u128 q, rem = 0, half = 0;
        if (sh <= 0) {
            q = n << -sh;
        } else {
            q = n >> sh;
            rem = n & (((u128)1 << sh) - 1);
            half = (u128)1 << (sh - 1);
        }
        if (q >= hi)
            continue; /* x was one too small */
        if (q < lo)
            return false; /* not reached: x is never too large */
        if (rem > half || (rem == half && sh > 0 && (q & 1)))
            q++;
        if (q == hi) { /* 9.99..95 rounded up to 10.0 */
            q = lo;
            x++;
        }
        *m = (uint64_t)q;
        *x10 = x;
        return true;
    }
    return false;
}

/* Whether m * 10^p (m < 2^53) reads back as v: one correctly rounded operation on two exact
 * doubles gives what strtod gives for the decimal text. */
static bool reads_back(uint64_t m, int p, double v, bool *known)
{
    *known = p >= -22 && p <= 22;
    if (!*known)
        return false;
    return (p < 0 ? (double)m / exact_pow10[-p] : (double)m * exact_pow10[p]) == v;
}

/* printf's %.{digits}g of m * 10^(x - digits + 1), m having exactly `digits` digits, with
 * ".0" added when it shows no fraction or exponent. Returns the end. */
static char *put_g(char *p, uint64_t m, int digits, int x)
{
    char d[U64_DIGITS_MAX];
    char *end = put_u64(d, m);
    int nd = (int)(end - d);
    while (nd > 1 && d[nd - 1] == '0') /* %g drops trailing zeros */
        nd--;
    if (x < -4 || x >= digits) {
        *p++ = d[0];
        if (nd > 1) {
            *p++ = '.';
            memcpy(p, d + 1, (size_t)nd - 1);
            p += nd - 1;
        }
        *p++ = 'e';
        *p++ = x < 0 ? '-' : '+';
        unsigned ax = (unsigned)(x < 0 ? -x : x);
        if (ax < 10)
            *p++ = '0';
        return put_u64(p, ax);
    }
    if (x < 0) {
        *p++ = '0';
        *p++ = '.';
        memset(p, '0', (size_t)(-x - 1));
        p += -x - 1;
        memcpy(p, d, (size_t)nd);
        return p + nd;
    }
    int ip = x + 1; /* digits before the point */
    if (nd <= ip) {
        memcpy(p, d, (size_t)nd);
        memset(p + nd, '0', (size_t)(ip - nd));
        p += ip;
        memcpy(p, ".0", 2);
        return p + 2;
    }
    memcpy(p, d, (size_t)ip);
    p += ip;
    *p++ = '.';
    memcpy(p, d + ip, (size_t)(nd - ip));
    return p + (nd - ip);
}

/* The text of v (finite, non-zero) at p, or NULL where only printf does it. */
static char *put_double_fast(char *p, double v)
{
    double a = fabs(v);
    uint64_t m;
    int x;
    bool known;
    if (!round_digits(a, 15, &m, &x))
        return NULL;
    if (!reads_back(m, x - 14, a, &known)) {
        if (!known || !round_digits(a, 17, &m, &x))
            return NULL;
        if (v < 0)
            *p++ = '-';
        return put_g(p, m, 17, x);
    }
    if (v < 0)
        *p++ = '-';
    return put_g(p, m, 15, x);
}
#endif

/* The JSON text of v at p (room for DOUBLE_TEXT_MAX bytes); returns the end. */
static char *put_double(char *p, double v)
{
    if (!isfinite(v)) {
        memcpy(p, "null", 4);
        return p + 4;
    }
    if (v == 0) {
        if (signbit(v))
            *p++ = '-';
        memcpy(p, "0.0", 3);
        return p + 3;
    }
#ifdef DN_FAST_DOUBLE
    char *end = put_double_fast(p, v);
    if (end)
        return end;
#endif
    return put_double_printf(p, v);
}

void dn_buf_json_double(struct dn_buf *b, double v)
{
    char *p = dn_buf_room(b, DOUBLE_TEXT_MAX);
    if (p)
        dn_buf_commit(b, put_double(p, v));
}

/* ---- the emitter back end ---------------------------------------------------------- */

void dn_json_keys_free(struct dn_json_keys *k)
{
    dn_buf_free(&k->text);
    memset(k->slots, 0, sizeof k->slots);
}

/* Keys up to this long (comma, quotes and colon included) are copied as one block of this
 * size, which the compiler inlines; what is copied past the key lies past the end of the
 * text, where the value goes. */
#define KEY_COPY 48

static size_t key_slot(const char *name)
{
    return (size_t)(((uintptr_t)name * UINT64_C(0x9E3779B97F4A7C15)) >> 32) &
           (DN_JSON_KEY_SLOTS - 1);
}

/* `,"key":` for a static key that is not in its first slot: found further on, or escaped
 * into the table; NULL when the table is full or out of memory (then the caller escapes
 * the key itself). */
static __attribute__((noinline)) const char *add_key(struct dn_json_keys *k, const char *name,
                                                     size_t *len)
{
    size_t h = key_slot(name);
    for (size_t i = 0; i < DN_JSON_KEY_SLOTS; i++, h = (h + 1) & (DN_JSON_KEY_SLOTS - 1)) {
        if (k->slots[h].name == name) {
            *len = k->slots[h].len;
            return k->text.data + k->slots[h].off;
        }
        if (!k->slots[h].name) {
            size_t off = k->text.len;
            dn_buf_append(&k->text, ",", 1);
            json_string(&k->text, name, k->csv);
            dn_buf_append(&k->text, ":", 1);
            /* readable slack after the last key: item() copies KEY_COPY bytes at once */
            reserve(&k->text, KEY_COPY + 1);
            if (k->text.oom || k->text.len > UINT32_MAX) {
                k->text.oom = false;
                k->text.len = off;
                return NULL;
            }
            k->slots[h].name = name;
            k->slots[h].off = (uint32_t)off;
            k->slots[h].len = (uint32_t)(k->text.len - off);
            *len = k->slots[h].len;
            return k->text.data + off;
        }
    }
    return NULL;
}

/* `,"key":` for a static key, escaped the first time it is seen (see add_key). */
static inline const char *cached_key(struct dn_json_keys *k, const char *name, size_t *len)
{
    size_t h = key_slot(name);
    if (__builtin_expect(k->slots[h].name == name, 1)) {
        *len = k->slots[h].len;
        return k->text.data + k->slots[h].off;
    }
    return add_key(k, name, len);
}

/* The comma before an item and its key, if any; then room for `extra` bytes of its value,
 * or NULL once out of memory. A static key comes from the writer's table. */
static inline __attribute__((always_inline)) char *item(struct dn_json_writer *w,
                                                        const char *key, bool dyn,
                                                        size_t extra)
{
    bool comma = false;
    if (w->depth > 0) {
        comma = w->need_comma[w->depth];
        w->need_comma[w->depth] = true;
    }
    struct dn_buf *b = w->buf;
    size_t klen = 0;
    const char *k = key && !dyn && w->keys ? cached_key(w->keys, key, &klen) : NULL;
    if (k) {
        if (!comma) {
            k++;
            klen--;
        }
        char *p = dn_buf_room(b, (klen > KEY_COPY ? klen : KEY_COPY) + extra);
        if (!p)
            return NULL;
        if (klen <= KEY_COPY)
            memcpy(p, k, KEY_COPY);
        else
            memcpy(p, k, klen);
        dn_buf_commit(b, p + klen);
        return b->data + b->len;
    }
    if (comma)
        dn_buf_append(b, ",", 1);
    if (key) {
        json_string(b, key, w->csv);
        dn_buf_append(b, ":", 1);
    }
    return dn_buf_room(b, extra);
}

static void push(struct dn_json_writer *w, char open)
{
    if (w->depth + 1 < DN_JSON_MAX_DEPTH)
        w->depth++;
    w->need_comma[w->depth] = false;
    char *p = dn_buf_room(w->buf, 1);
    if (p) {
        *p = open;
        dn_buf_commit(w->buf, p + 1);
    }
}

static void pop(struct dn_json_writer *w, char close)
{
    dn_buf_append(w->buf, &close, 1);
    if (w->depth > 0)
        w->depth--;
}

static void j_begin_object(void *ctx, const char *key)
{
    struct dn_json_writer *w = ctx;
    item(w, key, false, 0);
    push(w, '{');
}

static void j_begin_object_dyn(void *ctx, const char *key)
{
    struct dn_json_writer *w = ctx;
    item(w, key, true, 0);
    push(w, '{');
}

static void j_end_object(void *ctx)
{
    pop(ctx, '}');
}

static void j_begin_list(void *ctx, const char *key)
{
    struct dn_json_writer *w = ctx;
    item(w, key, false, 0);
    push(w, '[');
}

static void j_end_list(void *ctx)
{
    pop(ctx, ']');
}

static void j_i64(void *ctx, const char *key, int64_t v)
{
    struct dn_json_writer *w = ctx;
    char *p = item(w, key, false, U64_DIGITS_MAX + 1);
    if (p)
        dn_buf_commit(w->buf, put_i64(p, v));
}

static void j_u64(void *ctx, const char *key, uint64_t v)
{
    struct dn_json_writer *w = ctx;
    char *p = item(w, key, false, U64_DIGITS_MAX);
    if (p)
        dn_buf_commit(w->buf, put_u64(p, v));
}

static void j_f64(void *ctx, const char *key, double v)
{
    struct dn_json_writer *w = ctx;
    char *p = item(w, key, false, DOUBLE_TEXT_MAX);
    if (p)
        dn_buf_commit(w->buf, put_double(p, v));
}

/* The Metrics fields, in one call rather than one for each field. */
static void j_metrics(void *ctx, const struct dn_metrics *m, int64_t id)
{
    (void)id; /* text is written afresh each time */
    struct dn_json_writer *w = ctx;
    for (size_t i = 0; i < dn_metrics_nfields; i++) {
        const struct dn_field *f = &dn_metrics_fields[i];
        char *p = item(w, f->name, false, DOUBLE_TEXT_MAX); /* the longest value */
        if (!p)
            return;
        union dn_value v;
        switch (dn_field_value(m, f, &v)) {
        case DN_VALUE_NULL:
            memcpy(p, "null", 4);
            p += 4;
            break;
        case DN_VALUE_I64:
            p = put_i64(p, v.i);
            break;
        case DN_VALUE_U64:
            p = put_u64(p, v.u);
            break;
        case DN_VALUE_F64:
            p = put_double(p, v.f);
            break;
        }
        dn_buf_commit(w->buf, p);
    }
}

static void j_str(void *ctx, const char *key, const char *v)
{
    struct dn_json_writer *w = ctx;
    if (item(w, key, false, 0))
        json_string(w->buf, v, w->csv);
}

static void j_null(void *ctx, const char *key)
{
    struct dn_json_writer *w = ctx;
    if (item(w, key, false, 0))
        dn_buf_append(w->buf, "null", 4);
}

static void j_boolean(void *ctx, const char *key, bool v)
{
    struct dn_json_writer *w = ctx;
    if (item(w, key, false, 0))
        dn_buf_puts(w->buf, v ? "true" : "false");
}

static const struct dn_emitter_ops json_ops = {
    j_begin_object, j_end_object, j_begin_list, j_end_list, j_i64, j_u64, j_f64, j_str, j_null,
    j_boolean,
    j_begin_object_dyn,
    j_metrics,
};

void dn_json_emitter(struct dn_emitter *e, struct dn_json_writer *w, struct dn_buf *buf,
                     struct dn_json_keys *keys)
{
    memset(w, 0, sizeof *w);
    w->buf = buf;
    w->keys = keys;
    w->csv = keys && keys->csv;
    e->ops = &json_ops;
    e->ctx = w;
}
