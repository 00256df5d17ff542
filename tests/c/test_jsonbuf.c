/* The JSON text back end (core/jsonbuf.c) against printf and by hand: numbers formatted
 * without printf give printf's text, strings are escaped as JSON wants, keys escaped once
 * (the writer's key table, the CSV cell form) give the same text as keys escaped every
 * time, and the Metrics fields written in one call the same as field by field. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/emit.h"
#include "core/jsonbuf.h"

#include "check.h"

/* The text denet wrote before doubles were formatted by hand: the reference. */
static void ref_double(char *out, size_t n, double v)
{
    if (!isfinite(v)) {
        snprintf(out, n, "null");
        return;
    }
    snprintf(out, n, "%.15g", v);
    if (strtod(out, NULL) != v)
        snprintf(out, n, "%.17g", v);
    if (!strpbrk(out, ".eEn"))
        strcat(out, ".0");
}

static void check_double(double v)
{
    char want[64];
    ref_double(want, sizeof want, v);
    struct dn_buf b = {0};
    dn_buf_json_double(&b, v);
    CHECK(b.data && !strcmp(b.data, want), "double %a: got %s, printf gives %s", v,
          b.data ? b.data : "(nothing)", want);
    CHECK(!isfinite(v) || strtod(b.data, NULL) == v, "double %a: %s does not read back", v,
          b.data);
    dn_buf_free(&b);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15u;
static uint64_t rnd(void) /* xorshift64* */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Du;
}

static double from_bits(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static void test_doubles(void)
{
    static const double fixed[] = {0.0, -0.0, 1.0, -1.0, 0.1, 0.5, 1.5, 100.0, 12.345, 0.001,
                                   1e-4, 1e-5, 9.9999e-5, 1e-6, 1e-7, 1e-300, 5e-324, 1e15,
                                   1e15 - 1, 1e16, 1e17, 1e22, 1e23, 1.7976931348623157e308,
                                   0.30000000000000004, 0.7999999999999999, 3.3000000000000003,
                                   2.5e-5, 123456789012345.6, 0.011238883, 999999999999999.9,
                                   9.5367431640625e-07, 4503599627370497.5, NAN, INFINITY,
                                   -INFINITY};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        check_double(fixed[i]);
        check_double(-fixed[i]);
    }
    /* either side of each power of ten, where the exponent and the notation change */
    for (int k = -12; k <= 24; k++) {
        double p = pow(10, k);
        for (int j = -3; j <= 3; j++) {
            double v = p;
            for (int s = 0; s < (j < 0 ? -j : j); s++)
                v = nextafter(v, j < 0 ? 0 : INFINITY);
            check_double(v);
        }
    }
    /* exact ties at the 15th and 17th digit: (2^50 + odd) / 4 has 18 digits ending in 5 */
    for (uint64_t i = 0; i < 2000; i++) {
        check_double((double)((UINT64_C(1) << 50) + 2 * i + 1) / 4);
        check_double((double)((UINT64_C(1) << 52) + 2 * i + 1) / 2);
        check_double((double)(2 * i + 1) / 1024);
    }
    for (int i = 0; i < 300000; i++) {
        uint64_t r = rnd();
        /* what samples hold: nanoseconds in seconds, %, ratios, integers */
        check_double((double)(r % 100000000000u) / 1e9);
        check_double(round((double)(r % 10000000u) / 7.0) / 1000.0);
        check_double((double)(r % 1000000u) / (double)(1 + (r >> 40) % 1000000u));
        check_double((double)(r >> 11));
        /* any finite double */
        double v = from_bits(r);
        if (isfinite(v))
            check_double(v);
        /* any double between 1e-7 and 1e18, the range done by hand */
        check_double(from_bits((r & ((UINT64_C(1) << 52) - 1)) |
                               ((uint64_t)(1000 + (r >> 52) % 84) << 52)));
    }
}

static void test_integers(void)
{
    static const uint64_t u[] = {0, 1, 9, 10, 99, 100, 4294967295u, 4294967296u,
                                 9999999999999999999u, 10000000000000000000u, UINT64_MAX};
    char want[32];
    for (int i = -1; i < 200000; i++) {
        uint64_t v = i < (int)(sizeof u / sizeof u[0]) ? (i < 0 ? 12345 : u[i])
                                                        : rnd() >> (rnd() % 64);
        struct dn_buf b = {0};
        dn_buf_u64(&b, v);
        snprintf(want, sizeof want, "%llu", (unsigned long long)v);
        CHECK(!strcmp(b.data, want), "u64 %s: got %s", want, b.data);
        b.len = 0;
        int64_t s = (int64_t)v;
        dn_buf_i64(&b, s);
        snprintf(want, sizeof want, "%lld", (long long)s);
        CHECK(!strcmp(b.data, want), "i64 %s: got %s", want, b.data);
        dn_buf_free(&b);
    }
}

static void check_string(const char *in, const char *want)
{
    struct dn_buf b = {0};
    dn_buf_json_string(&b, in);
    CHECK(b.data && !strcmp(b.data, want), "string: got %s, want %s", b.data, want);
    dn_buf_free(&b);
}

static void test_strings(void)
{
    check_string("", "\"\"");
    check_string("sleep 600", "\"sleep 600\"");
    check_string("a\"b\\c", "\"a\\\"b\\\\c\"");
    check_string("\b\t\n\f\r\x01\x1f\x7f", "\"\\b\\t\\n\\f\\r\\u0001\\u001f\x7f\"");
    check_string("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
    /* ill-formed UTF-8: one U+FFFD for each maximal part, as Python's decoder gives */
    check_string("\xff", "\"\\ufffd\"");
    check_string("a\x80\x80z", "\"a\\ufffd\\ufffdz\"");
    check_string("\xe2\x82z", "\"\\ufffdz\"");          /* truncated 3-byte sequence */
    check_string("\xe2\x82", "\"\\ufffd\"");            /* ... at the end */
    check_string("\xf0\x9f\x98z", "\"\\ufffdz\"");      /* truncated 4-byte sequence */
    check_string("\xc0\xaf", "\"\\ufffd\\ufffd\"");     /* overlong */
    check_string("\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\""); /* overlong, 3 bytes */
    check_string("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""); /* surrogate */
    check_string("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* > U+10FFFF */
    check_string("\xf5\x80", "\"\\ufffd\\ufffd\"");
    check_string("\xc3", "\"\\ufffd\"");
}

/* One record through the emitter: every kind of value, static keys that need escaping and
 * a dynamic key. */
static void emit_record(const struct dn_emitter *e, const char *dyn)
{
    const struct dn_emitter_ops *o = e->ops;
    o->begin_object(e->ctx, NULL);
    o->str(e->ctx, "kind", "tree");
    o->i64(e->ctx, "ts_ms", 1795689941650);
    o->i64(e->ctx, "neg", -42);
    o->u64(e->ctx, "big", UINT64_MAX);
    o->f64(e->ctx, "cpu_usage", 12.345);
    o->f64(e->ctx, "nan", NAN);
    o->null(e->ctx, "none");
    o->boolean(e->ctx, "yes", true);
    o->str(e->ctx, "quote\"d \\key\n", "a \"quoted\" value");
    o->begin_list(e->ctx, "children");
    for (int i = 0; i < 3; i++) {
        o->begin_object(e->ctx, NULL);
        o->i64(e->ctx, "pid", 100 + i);
        o->str(e->ctx, "command", "sh -c \"echo hi\"");
        o->end_object(e->ctx);
    }
    o->u64(e->ctx, NULL, 7);
    o->end_list(e->ctx);
    o->begin_object_dyn(e->ctx, dyn);
    o->u64(e->ctx, "tid", 5);
    o->end_object(e->ctx);
    o->end_object(e->ctx);
}

static void test_emitter_keys(void)
{
    const char *want =
        "{\"kind\":\"tree\",\"ts_ms\":1795689941650,\"neg\":-42,\"big\":18446744073709551615,"
        "\"cpu_usage\":12.345,\"nan\":null,\"none\":null,\"yes\":true,"
        "\"quote\\\"d \\\\key\\n\":\"a \\\"quoted\\\" value\",\"children\":["
        "{\"pid\":100,\"command\":\"sh -c \\\"echo hi\\\"\"},"
        "{\"pid\":101,\"command\":\"sh -c \\\"echo hi\\\"\"},"
        "{\"pid\":102,\"command\":\"sh -c \\\"echo hi\\\"\"},7],"
        "\"1:\\\"2\":{\"tid\":5}}";
    struct dn_json_keys keys, csv_keys;
    memset(&keys, 0, sizeof keys);
    memset(&csv_keys, 0, sizeof csv_keys);
    csv_keys.csv = true;
    char dyn[16];
    for (int round = 0; round < 3; round++) { /* the key table filled, then reused */
        struct dn_buf b = {0}, c = {0}, u = {0};
        struct dn_emitter e;
        struct dn_json_writer w;
        snprintf(dyn, sizeof dyn, "%d:\"%d", 1, 2); /* a key made at run time */
        dn_json_emitter(&e, &w, &b, &keys);
        emit_record(&e, dyn);
        CHECK(!strcmp(b.data, want), "round %d, key table: got %s", round, b.data);
        dn_json_emitter(&e, &w, &u, NULL);
        emit_record(&e, dyn);
        CHECK(!strcmp(u.data, want), "round %d, no key table: got %s", round, u.data);
        /* the CSV cell form: the same text with every quote doubled */
        dn_json_emitter(&e, &w, &c, &csv_keys);
        emit_record(&e, dyn);
        struct dn_buf d = {0};
        for (const char *p = want; *p; p++)
            dn_buf_append(&d, *p == '"' ? "\"\"" : p, *p == '"' ? 2 : 1);
        CHECK(!strcmp(c.data, d.data), "round %d, CSV form: got %s", round, c.data);
        dn_buf_free(&b);
        dn_buf_free(&c);
        dn_buf_free(&u);
        dn_buf_free(&d);
    }
    dn_json_keys_free(&keys);
    dn_json_keys_free(&csv_keys);
}

/* Random Metrics: every field, unknown ones (None) among them. */
static void random_metrics(struct dn_metrics *m)
{
    memset(m, 0, sizeof *m);
    for (size_t i = 0; i < dn_metrics_nfields; i++) {
        const struct dn_field *f = &dn_metrics_fields[i];
        char *at = (char *)m + f->offset;
        uint64_t r = rnd();
        bool none = r % 5 == 0;
        int64_t s = (int64_t)(rnd() >> (r % 64)) * (r % 3 ? 1 : -1);
        uint64_t u = rnd() >> (r % 64);
        double d = r % 4 == 0 ? (double)(rnd() % 100000000000u) / 1e9
                   : r % 4 == 1 ? round((double)(rnd() % 10000000u) / 7.0) / 1000.0
                   : r % 4 == 2 ? from_bits(rnd())
                                : 0.0;
        switch (f->type) {
        case DN_FIELD_I64:
            memcpy(at, &s, sizeof s);
            break;
        case DN_FIELD_OPT_I64:
            s = none ? -1 : (s < 0 ? -s : s);
            memcpy(at, &s, sizeof s);
            break;
        case DN_FIELD_U64:
        case DN_FIELD_OPT_U64:
            u = none && f->type == DN_FIELD_OPT_U64 ? DN_U64_NONE : u;
            memcpy(at, &u, sizeof u);
            break;
        case DN_FIELD_F64:
        case DN_FIELD_OPT_F64:
            d = none ? NAN : d;
            memcpy(at, &d, sizeof d);
            break;
        }
    }
}

/* The Metrics object as printf would write it: the reference. */
static void ref_metrics(struct dn_buf *b, const struct dn_metrics *m)
{
    char v[64];
    dn_buf_append(b, "{", 1);
    for (size_t i = 0; i < dn_metrics_nfields; i++) {
        const struct dn_field *f = &dn_metrics_fields[i];
        union dn_value x;
        switch (dn_field_value(m, f, &x)) {
        case DN_VALUE_NULL:
            snprintf(v, sizeof v, "null");
            break;
        case DN_VALUE_I64:
            snprintf(v, sizeof v, "%lld", (long long)x.i);
            break;
        case DN_VALUE_U64:
            snprintf(v, sizeof v, "%llu", (unsigned long long)x.u);
            break;
        case DN_VALUE_F64:
            ref_double(v, sizeof v, x.f);
            break;
        }
        dn_buf_printf(b, "%s\"%s\":%s", i ? "," : "", f->name, v);
    }
    dn_buf_append(b, "}", 1);
}

static void test_metrics_fields(void)
{
    struct dn_json_keys keys;
    memset(&keys, 0, sizeof keys);
    for (int i = 0; i < 20000; i++) {
        struct dn_metrics m;
        random_metrics(&m);
        struct dn_buf one = {0}, each = {0}, want = {0};
        struct dn_emitter e;
        struct dn_json_writer w;
        /* in one call, keys from the table */
        dn_json_emitter(&e, &w, &one, &keys);
        e.ops->begin_object(e.ctx, NULL);
        dn_emit_metrics_fields(&e, &m, DN_METRICS_ID_PARENT);
        e.ops->end_object(e.ctx);
        /* field by field, each key escaped */
        dn_json_emitter(&e, &w, &each, NULL);
        struct dn_emitter_ops by_field = *e.ops;
        by_field.metrics = NULL;
        e.ops = &by_field;
        e.ops->begin_object(e.ctx, NULL);
        dn_emit_metrics_fields(&e, &m, DN_METRICS_ID_PARENT);
        e.ops->end_object(e.ctx);
        ref_metrics(&want, &m);
        CHECK(!strcmp(one.data, want.data), "metrics in one call: %s\nprintf: %s", one.data,
              want.data);
        CHECK(!strcmp(each.data, want.data), "metrics field by field: %s\nprintf: %s",
              each.data, want.data);
        dn_buf_free(&one);
        dn_buf_free(&each);
        dn_buf_free(&want);
    }
    dn_json_keys_free(&keys);
}

int main(void)
{
    test_integers();
    test_strings();
    test_doubles();
    test_emitter_keys();
    test_metrics_fields();
    printf("test_jsonbuf: %d checks, %d failures\n", checks, failures);
    return failures != 0;
}
