/* A growable text buffer and the JSON back end of the emitter. */
#ifndef DENET_JSONBUF_H
#define DENET_JSONBUF_H

#include <stdbool.h>
#include <stddef.h>

#include "core/emit.h"

struct dn_buf {
    char *data;
    size_t len, cap;
    bool oom; /* an append failed; the text is incomplete */
};

void dn_buf_append(struct dn_buf *b, const char *s, size_t n);
void dn_buf_puts(struct dn_buf *b, const char *s);
void dn_buf_printf(struct dn_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dn_buf_free(struct dn_buf *b);

/* Appends s as a JSON string literal (quotes included); invalid UTF-8 becomes U+FFFD. */
void dn_buf_json_string(struct dn_buf *b, const char *s);
/* Appends the shortest text that reads back as v (null for NaN and infinities). */
void dn_buf_json_double(struct dn_buf *b, double v);

#define DN_JSON_MAX_DEPTH 16

struct dn_json_writer {
    struct dn_buf *buf;
    int depth;
    bool need_comma[DN_JSON_MAX_DEPTH];
};

/* An emitter that appends compact JSON to buf. */
void dn_json_emitter(struct dn_emitter *e, struct dn_json_writer *w, struct dn_buf *buf);

#endif
