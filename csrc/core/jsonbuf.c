#include "core/jsonbuf.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool reserve(struct dn_buf *b, size_t extra)
{
    if (b->oom)
        return false;
    if (b->len + extra + 1 <= b->cap)
        return true;
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

/* Length of the valid UTF-8 sequence at s, or 0. */
static size_t utf8_len(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    size_t n;
    uint32_t cp;
    if ((s[0] & 0xE0) == 0xC0) {
        n = 2;
        cp = s[0] & 0x1F;
    } else if ((s[0] & 0xF0) == 0xE0) {
        n = 3;
        cp = s[0] & 0x0F;
    } else if ((s[0] & 0xF8) == 0xF0) {
        n = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

void dn_buf_json_string(struct dn_buf *b, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    dn_buf_append(b, "\"", 1);
    while (*s) {
        const unsigned char *run = s;
        while (*s >= 0x20 && *s < 0x80 && *s != '"' && *s != '\\')
            s++;
        if (s > run)
            dn_buf_append(b, (const char *)run, (size_t)(s - run));
        if (!*s)
            break;
        if (*s == '"' || *s == '\\') {
            char esc[2] = {'\\', (char)*s};
            dn_buf_append(b, esc, 2);
            s++;
        } else if (*s < 0x20) {
            static const char *named[] = {[8] = "\\b", [9] = "\\t", [10] = "\\n", [12] = "\\f",
                                          [13] = "\\r"};
            if (*s < sizeof named / sizeof named[0] && named[*s])
                dn_buf_puts(b, named[*s]);
            else
                dn_buf_printf(b, "\\u%04x", *s);
            s++;
        } else {
            size_t n = utf8_len(s);
            if (n) {
                dn_buf_append(b, (const char *)s, n);
                s += n;
            } else {
                dn_buf_puts(b, "\\ufffd");
                s++;
            }
        }
    }
    dn_buf_append(b, "\"", 1);
}

void dn_buf_json_double(struct dn_buf *b, double v)
{
    if (!isfinite(v)) {
        dn_buf_puts(b, "null");
        return;
    }
    char tmp[40];
    snprintf(tmp, sizeof tmp, "%.15g", v);
    if (strtod(tmp, NULL) != v)
        snprintf(tmp, sizeof tmp, "%.17g", v);
    /* Keep it a float for readers that care (1 -> 1.0). */
    if (!strpbrk(tmp, ".eEn"))
        strcat(tmp, ".0");
    dn_buf_puts(b, tmp);
}

/* ---- the emitter back end ---------------------------------------------------------- */

static void prefix(struct dn_json_writer *w, const char *key)
{
    if (w->depth > 0) {
        if (w->need_comma[w->depth])
            dn_buf_append(w->buf, ",", 1);
        w->need_comma[w->depth] = true;
    }
    if (key) {
        dn_buf_json_string(w->buf, key);
        dn_buf_append(w->buf, ":", 1);
    }
}

static void push(struct dn_json_writer *w, const char *open)
{
    dn_buf_puts(w->buf, open);
    if (w->depth + 1 < DN_JSON_MAX_DEPTH)
        w->depth++;
    w->need_comma[w->depth] = false;
}

static void j_begin_object(void *ctx, const char *key)
{
    struct dn_json_writer *w = ctx;
    prefix(w, key);
    push(w, "{");
}

static void j_end_object(void *ctx)
{
    struct dn_json_writer *w = ctx;
    dn_buf_append(w->buf, "}", 1);
    if (w->depth > 0)
        w->depth--;
}

static void j_begin_list(void *ctx, const char *key)
{
    struct dn_json_writer *w = ctx;
    prefix(w, key);
    push(w, "[");
}

static void j_end_list(void *ctx)
{
    struct dn_json_writer *w = ctx;
    dn_buf_append(w->buf, "]", 1);
    if (w->depth > 0)
        w->depth--;
}

static void j_i64(void *ctx, const char *key, int64_t v)
{
    struct dn_json_writer *w = ctx;
    prefix(w, key);
    dn_buf_printf(w->buf, "%" PRId64, v);
}

static void j_u64(void *ctx, const char *key, uint64_t v)
{
    struct dn_json_writer *w = ctx;
    prefix(w, key);
    dn_buf_printf(w->buf, "%" PRIu64, v);
}

static void j_f64(void *ctx, const char *key, double v)
{
    struct dn_json_writer *w = ctx;
    prefix(w, key);
    dn_buf_json_double(w->buf, v);
}

static void j_str(void *ctx, const char *key, const char *v)
{
    struct dn_json_writer *w = ctx;
    prefix(w, key);
    dn_buf_json_string(w->buf, v);
}

static void j_null(void *ctx, const char *key)
{
    struct dn_json_writer *w = ctx;
    prefix(w, key);
    dn_buf_puts(w->buf, "null");
}

static void j_boolean(void *ctx, const char *key, bool v)
{
    struct dn_json_writer *w = ctx;
    prefix(w, key);
    dn_buf_puts(w->buf, v ? "true" : "false");
}

static const struct dn_emitter_ops json_ops = {
    j_begin_object, j_end_object, j_begin_list, j_end_list, j_i64, j_u64, j_f64, j_str, j_null,
    j_boolean,
};

void dn_json_emitter(struct dn_emitter *e, struct dn_json_writer *w, struct dn_buf *buf)
{
    memset(w, 0, sizeof *w);
    w->buf = buf;
    e->ops = &json_ops;
    e->ctx = w;
}
