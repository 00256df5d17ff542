#include "python/encode_dict.h"

#include "core/env.h"
#include "core/grow.h"

#define DN_PY_MAX_DEPTH 16

struct py_builder {
    PyObject *stack[DN_PY_MAX_DEPTH]; /* borrowed: owned by their parent or by result */
    int depth;
    PyObject *result;
    bool failed;
    struct dn_key_cache *kc;
};

/* A record of dn_key_cache.memo: the Metrics dict made last for one id, kept privately,
 * and the C values it holds. */
struct metrics_memo {
    int64_t id;    /* key */
    uint64_t used; /* the conversion that used it last */
    struct dn_metrics last;
    PyObject *dict;
};

/* The interned Python string for a static C key (borrowed), or NULL on error. */
static PyObject *key_object(struct dn_key_cache *kc, const char *name)
{
    size_t h = ((uintptr_t)name >> 3) & (DN_KEY_CACHE_SLOTS - 1);
    for (size_t i = 0; i < DN_KEY_CACHE_SLOTS; i++, h = (h + 1) & (DN_KEY_CACHE_SLOTS - 1)) {
        if (kc->names[h] == name)
            return kc->keys[h];
        if (!kc->names[h]) {
            PyObject *k = PyUnicode_InternFromString(name);
            if (!k)
                return NULL;
            kc->names[h] = name;
            kc->keys[h] = k;
            return k;
        }
    }
    /* Full (more distinct keys than slots): a fresh string each time, still correct. */
    return NULL;
}

void dn_key_cache_clear(struct dn_key_cache *kc)
{
    for (size_t i = 0; i < DN_KEY_CACHE_SLOTS; i++) {
        Py_CLEAR(kc->keys[i]);
        kc->names[i] = NULL;
    }
    Py_CLEAR(kc->metrics_keys);
    Py_CLEAR(kc->metrics_template);
    for (size_t i = 0; i < DN_VALUE_CACHE_SLOTS; i++) {
        Py_CLEAR(kc->values[i]);
        kc->value_at[i] = NULL;
    }
    for (size_t i = 0; i < kc->memo.cap; i++) {
        struct metrics_memo *mm = kc->memo.slots[i];
        if (mm) {
            Py_XDECREF(mm->dict);
            free(mm);
        }
    }
    dn_htab_free(&kc->memo);
    memset(&kc->memo, 0, sizeof kc->memo);
    free(kc->memo_seq);
    kc->memo_seq = NULL;
    kc->memo_seq_len = kc->memo_seq_cap = kc->memo_pos = 0;
}

int dn_key_cache_traverse(struct dn_key_cache *kc, visitproc visit, void *arg)
{
    for (size_t i = 0; i < DN_KEY_CACHE_SLOTS; i++)
        Py_VISIT(kc->keys[i]);
    Py_VISIT(kc->metrics_keys);
    Py_VISIT(kc->metrics_template);
    for (size_t i = 0; i < DN_VALUE_CACHE_SLOTS; i++)
        Py_VISIT(kc->values[i]);
    for (size_t i = 0; i < kc->memo.cap; i++) {
        struct metrics_memo *mm = kc->memo.slots[i];
        if (mm)
            Py_VISIT(mm->dict);
    }
    return 0;
}

/* Makes kc's Metrics keys and template once. 0, or -1 with an exception set. */
static int metrics_template(struct dn_key_cache *kc)
{
    if (kc->metrics_template)
        return 0;
    PyObject *keys = PyTuple_New((Py_ssize_t)dn_metrics_nfields);
    PyObject *tmpl = PyDict_New();
    if (!keys || !tmpl)
        goto fail;
    for (size_t i = 0; i < dn_metrics_nfields; i++) {
        PyObject *k = PyUnicode_InternFromString(dn_metrics_fields[i].name);
        if (!k)
            goto fail;
        PyTuple_SET_ITEM(keys, (Py_ssize_t)i, k);
        if (PyDict_SetItem(tmpl, k, Py_None) < 0)
            goto fail;
    }
    kc->metrics_keys = keys;
    kc->metrics_template = tmpl;
    return 0;
fail:
    Py_XDECREF(keys);
    Py_XDECREF(tmpl);
    return -1;
}

/* Attaches a new reference to the current container (stealing it). A dynamic key
 * (made at run time) never goes through the cache, which is keyed by address. */
static bool attach_key(struct py_builder *b, const char *key, PyObject *obj, bool dynamic)
{
    if (!obj) {
        b->failed = true;
        return false;
    }
    if (b->depth == 0) {
        Py_XDECREF(b->result);
        b->result = obj;
        return true;
    }
    PyObject *parent = b->stack[b->depth - 1];
    int rc;
    if (PyDict_Check(parent)) {
        PyObject *k = dynamic ? NULL : key_object(b->kc, key);
        if (k) {
            rc = PyDict_SetItem(parent, k, obj);
        } else if (PyErr_Occurred()) {
            rc = -1;
        } else {
            /* not interned (PyDict_SetItemString would): "pid:tid" keys are made once */
            PyObject *fresh = PyUnicode_FromString(key);
            rc = fresh ? PyDict_SetItem(parent, fresh, obj) : -1;
            Py_XDECREF(fresh);
        }
    } else {
        rc = PyList_Append(parent, obj);
    }
    Py_DECREF(obj);
    if (rc < 0)
        b->failed = true;
    return rc == 0;
}

static bool attach(struct py_builder *b, const char *key, PyObject *obj)
{
    return attach_key(b, key, obj, false);
}

static void push_key(struct py_builder *b, const char *key, PyObject *container, bool dynamic)
{
    if (b->failed) {
        Py_XDECREF(container);
        b->depth++; /* keep begin/end balanced */
        return;
    }
    if (!attach_key(b, key, container, dynamic) || b->depth >= DN_PY_MAX_DEPTH) {
        b->failed = true;
        b->depth++;
        return;
    }
    b->stack[b->depth++] = container;
}

static void push(struct py_builder *b, const char *key, PyObject *container)
{
    push_key(b, key, container, false);
}

static void p_begin_object_dyn(void *ctx, const char *key)
{
    push_key(ctx, key, ((struct py_builder *)ctx)->failed ? NULL : PyDict_New(), true);
}

static void p_begin_object(void *ctx, const char *key)
{
    push(ctx, key, ((struct py_builder *)ctx)->failed ? NULL : PyDict_New());
}

static void p_begin_list(void *ctx, const char *key)
{
    push(ctx, key, ((struct py_builder *)ctx)->failed ? NULL : PyList_New(0));
}

static void p_end(void *ctx)
{
    struct py_builder *b = ctx;
    if (b->depth > 0)
        b->depth--;
}

#define VALUE(expr)                                                                           \
    struct py_builder *b = ctx;                                                               \
    if (!b->failed)                                                                           \
        attach(b, key, (expr));

static void p_i64(void *ctx, const char *key, int64_t v)
{
    VALUE(PyLong_FromLongLong(v))
}

static void p_u64(void *ctx, const char *key, uint64_t v)
{
    VALUE(PyLong_FromUnsignedLongLong(v))
}

static void p_f64(void *ctx, const char *key, double v)
{
    VALUE(PyFloat_FromDouble(v))
}

/* The string of text v: the one made for the same address last time when the text
 * there is the same (no new object), else a new one, kept for next time. */
static PyObject *str_value(struct dn_key_cache *kc, const char *v)
{
    size_t len = strlen(v);
    size_t h = ((uintptr_t)v >> 4 ^ (uintptr_t)v >> 14) & (DN_VALUE_CACHE_SLOTS - 1);
    PyObject *c = kc->values[h];
    if (c && kc->value_at[h] == v) {
        Py_ssize_t n;
        const char *u = PyUnicode_AsUTF8AndSize(c, &n);
        if (u && (size_t)n == len && memcmp(u, v, len) == 0)
            return Py_NewRef(c);
        PyErr_Clear(); /* not representable as UTF-8: made anew */
    }
    PyObject *o = PyUnicode_DecodeUTF8(v, (Py_ssize_t)len, "replace");
    if (o) {
        Py_XSETREF(kc->values[h], Py_NewRef(o));
        kc->value_at[h] = v;
    }
    return o;
}

static void p_str(void *ctx, const char *key, const char *v)
{
    VALUE(str_value(b->kc, v))
}

static void p_null(void *ctx, const char *key)
{
    VALUE(Py_NewRef(Py_None))
}

static void p_boolean(void *ctx, const char *key, bool v)
{
    VALUE(PyBool_FromLong(v))
}

static void memo_drop(struct dn_key_cache *kc, struct metrics_memo *mm)
{
    kc->memo_seq_len = 0; /* it may be there */
    dn_htab_del(&kc->memo, &mm->id);
    Py_XDECREF(mm->dict);
    free(mm);
}

/* id's record, made when there is none (NULL: out of memory, no reuse). */
static struct metrics_memo *memo_get(struct dn_key_cache *kc, int64_t id)
{
    if (!kc->memo.ksz)
        dn_htab_init(&kc->memo, sizeof(int64_t));
    size_t pos = kc->memo_pos++;
    struct metrics_memo *mm = pos < kc->memo_seq_len ? kc->memo_seq[pos] : NULL;
    if (!mm || mm->id != id)
        mm = dn_htab_get(&kc->memo, &id);
    if (!mm) {
        if (!(mm = calloc(1, sizeof *mm)))
            return NULL;
        mm->id = id;
        if (dn_htab_put(&kc->memo, mm) != 0) {
            free(mm);
            return NULL;
        }
    }
    if (mm->used != kc->conversions) {
        mm->used = kc->conversions;
        kc->memo_used++;
    }
    if (pos <= kc->memo_seq_len && pos < kc->memo.n + 64 &&
        !dn_grow(&kc->memo_seq, &kc->memo_seq_cap, pos + 1, sizeof *kc->memo_seq, 64)) {
        kc->memo_seq[pos] = mm;
        if (pos == kc->memo_seq_len)
            kc->memo_seq_len++;
    }
    return mm;
}

/* After a conversion: the records it did not use go once they outnumber the used. */
static void memo_sweep(struct dn_key_cache *kc)
{
    if (kc->memo.n <= 2 * kc->memo_used + 64)
        return;
    for (size_t i = 0; i < kc->memo.cap;) {
        struct metrics_memo *mm = kc->memo.slots[i];
        if (mm && mm->used != kc->conversions) {
            memo_drop(kc, mm); /* the table shifts: look at slot i again */
            continue;
        }
        i++;
    }
}

static PyObject *value_object(enum dn_value_kind k, const union dn_value *v)
{
    switch (k) {
    case DN_VALUE_NULL:
        return Py_NewRef(Py_None);
    case DN_VALUE_I64:
        return PyLong_FromLongLong(v->i);
    case DN_VALUE_U64:
        return PyLong_FromUnsignedLongLong(v->u);
    default:
        return PyFloat_FromDouble(v->f);
    }
}

/* The Metrics fields into the current dict. A fresh dict starts as a copy of the one
 * made last time for the same id, then takes the values that changed since (compared
 * in C); the first time, as a copy of the template (every key, set to None), then takes
 * each value that is not null. A dict that already has keys gets them one by one (same
 * keys, same order). */
static void p_metrics(void *ctx, const struct dn_metrics *m, int64_t id)
{
    struct py_builder *b = ctx;
    if (b->failed)
        return;
    PyObject *cur = b->depth > 0 ? b->stack[b->depth - 1] : NULL;
    bool fresh = cur && PyDict_CheckExact(cur) && PyDict_GET_SIZE(cur) == 0;
    if (!fresh) {
        for (size_t i = 0; i < dn_metrics_nfields && !b->failed; i++) {
            union dn_value v;
            enum dn_value_kind k = dn_field_value(m, &dn_metrics_fields[i], &v);
            attach(b, dn_metrics_fields[i].name, value_object(k, &v));
        }
        return;
    }
    if (metrics_template(b->kc) < 0) {
        b->failed = true;
        return;
    }
    struct metrics_memo *mm = memo_get(b->kc, id);
    bool reuse = mm && mm->dict;
    if (PyDict_Update(cur, reuse ? mm->dict : b->kc->metrics_template) < 0) {
        b->failed = true;
        return;
    }
    for (size_t i = 0; i < dn_metrics_nfields; i++) {
        const struct dn_field *f = &dn_metrics_fields[i];
        union dn_value v = {0}, was = {0};
        enum dn_value_kind k = dn_field_value(m, f, &v);
        if (reuse) {
            if (dn_field_value(&mm->last, f, &was) == k && !memcmp(&v, &was, sizeof v))
                continue; /* unchanged: the copy has it */
        } else if (k == DN_VALUE_NULL) {
            continue; /* None already */
        }
        PyObject *key = PyTuple_GET_ITEM(b->kc->metrics_keys, (Py_ssize_t)i);
        PyObject *obj = value_object(k, &v);
        bool ok = obj && PyDict_SetItem(cur, key, obj) == 0 &&
                  (!reuse || PyDict_SetItem(mm->dict, key, obj) == 0);
        Py_XDECREF(obj);
        if (!ok) {
            if (mm)
                memo_drop(b->kc, mm); /* it may no longer hold mm->last */
            b->failed = true;
            return;
        }
    }
    if (!mm)
        return;
    if (!reuse && !(mm->dict = PyDict_Copy(cur))) {
        memo_drop(b->kc, mm);
        b->failed = true;
        return;
    }
    memcpy(&mm->last, m, sizeof *m);
}

static const struct dn_emitter_ops py_ops = {
    p_begin_object, p_end, p_begin_list, p_end, p_i64, p_u64, p_f64, p_str, p_null, p_boolean,
    p_begin_object_dyn, p_metrics,
};

static PyObject *finish(struct py_builder *b)
{
    if (b->failed) {
        Py_XDECREF(b->result);
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_MemoryError, "out of memory converting a sample to a dict");
        return NULL;
    }
    return b->result;
}

PyObject *dn_sample_to_dict(struct dn_key_cache *kc, const struct dn_sample *s)
{
    struct py_builder b = {.kc = kc};
    struct dn_emitter e = {&py_ops, &b};
    kc->conversions++;
    kc->memo_used = 0;
    kc->memo_pos = 0;
    dn_emit_sample(&e, s, false);
    memo_sweep(kc);
    return finish(&b);
}

PyObject *dn_summary_to_dict(struct dn_key_cache *kc, const struct dn_summary *s,
                             const struct dn_ebpf_sample *ebpf)
{
    struct py_builder b = {.kc = kc};
    struct dn_emitter e = {&py_ops, &b};
    dn_emit_summary(&e, s, ebpf, false);
    return finish(&b);
}

PyObject *dn_gpu_summary_to_dict(struct dn_key_cache *kc, const struct dn_gpu_summary *g)
{
    struct py_builder b = {.kc = kc};
    struct dn_emitter e = {&py_ops, &b};
    dn_emit_gpu_summary(&e, g);
    return finish(&b);
}

PyObject *dn_metadata_to_dict(struct dn_key_cache *kc, const struct dn_metadata *md)
{
    struct py_builder b = {.kc = kc};
    struct dn_emitter e = {&py_ops, &b};
    dn_emit_metadata(&e, md, false);
    return finish(&b);
}

PyObject *dn_env_to_dict(struct dn_key_cache *kc, const struct dn_env *env)
{
    struct py_builder b = {.kc = kc};
    struct dn_emitter e = {&py_ops, &b};
    dn_emit_env(&e, env, false);
    return finish(&b);
}

PyObject *dn_schema_tuple(void)
{
    static const char *type_names[] = {
        [DN_FIELD_I64] = "int", [DN_FIELD_U64] = "int", [DN_FIELD_F64] = "float",
        [DN_FIELD_OPT_I64] = "int|None", [DN_FIELD_OPT_U64] = "int|None",
        [DN_FIELD_OPT_F64] = "float|None"};
    PyObject *t = PyTuple_New((Py_ssize_t)dn_metrics_nfields);
    if (!t)
        return NULL;
    for (size_t i = 0; i < dn_metrics_nfields; i++) {
        const struct dn_field *f = &dn_metrics_fields[i];
        PyObject *d = Py_BuildValue("{s:s,s:s,s:s,s:s}", "name", f->name, "unit", f->unit, "type",
                                    type_names[f->type], "description", f->description);
        if (!d) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, (Py_ssize_t)i, d);
    }
    return t;
}
