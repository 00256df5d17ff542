/* A growable text buffer and the JSON back end of the emitter. */
#ifndef DENET_JSONBUF_H
#define DENET_JSONBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
/* Room for n more bytes at the end of the text, or NULL once out of memory; what is
 * written there becomes text with dn_buf_commit(b, end of what was written). */
char *dn_buf_room(struct dn_buf *b, size_t n);
void dn_buf_commit(struct dn_buf *b, char *end);
/* Integers in decimal, without printf. */
void dn_buf_u64(struct dn_buf *b, uint64_t v);
void dn_buf_i64(struct dn_buf *b, int64_t v);

/* Appends s as a JSON string literal (quotes included). Invalid UTF-8 becomes U+FFFD, one
 * for each maximal ill-formed part, as Python's bytes.decode("utf-8", "replace") does. */
void dn_buf_json_string(struct dn_buf *b, const char *s);
/* Appends v as printf's %.15g when that reads back as v, else %.17g, with ".0" added to
 * an integral value (null for NaN and infinities). Formatted by hand, without printf, for
 * the values a sample holds; the same text as snprintf gives. */
void dn_buf_json_double(struct dn_buf *b, double v);

#define DN_JSON_MAX_DEPTH 16
#define DN_JSON_KEY_SLOTS 512 /* a power of two, above the number of distinct static keys */

/* Static keys (the emitter's string literals, known by address) escaped once: a slot
 * holds `,"key":` at text.data + off. A writer keeps one for all its records. */
struct dn_json_keys {
    /* Set before first use: the JSON written with these keys is the inside of a quoted CSV
     * cell, every quote doubled (`,""key"":`). */
    bool csv;
    struct {
        const char *name;
        uint32_t off, len;
    } slots[DN_JSON_KEY_SLOTS];
    struct dn_buf text;
};

void dn_json_keys_free(struct dn_json_keys *k);

struct dn_json_writer {
    struct dn_buf *buf;
    struct dn_json_keys *keys; /* NULL: every key is escaped where it is written */
    bool csv;                  /* keys->csv */
    int depth;
    bool need_comma[DN_JSON_MAX_DEPTH];
};

/* An emitter that appends compact JSON to buf; keys may be NULL. With keys->csv, the JSON
 * comes with its quotes doubled, for inside a quoted CSV cell. */
void dn_json_emitter(struct dn_emitter *e, struct dn_json_writer *w, struct dn_buf *buf,
                     struct dn_json_keys *keys);

#endif
