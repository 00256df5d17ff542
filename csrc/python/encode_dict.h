/* The Python back end of the emitter: samples, summaries and metadata become dicts. */
#ifndef DENET_ENCODE_DICT_H
#define DENET_ENCODE_DICT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "core/emit.h"
#include "core/htab.h"

/* Dict keys are static C strings; their Python strings are made once and kept here
 * (in the module state), keyed by address. */
#define DN_KEY_CACHE_SLOTS 512
#define DN_VALUE_CACHE_SLOTS 1024

struct metrics_memo;

struct dn_key_cache {
    const char *names[DN_KEY_CACHE_SLOTS];
    PyObject *keys[DN_KEY_CACHE_SLOTS];
    /* The Metrics fields' keys (a tuple, in schema order) and a dict of them all set to
     * None: a Metrics dict starts as a copy of it, whose key table is cloned at once
     * instead of growing (and being rebuilt) three times as its 26 keys go in. */
    PyObject *metrics_keys;
    PyObject *metrics_template;
    /* String values by the address of their C text (commands, thread and process names
     * come from the collectors' interned strings, the same address sample after sample):
     * reused when the text there is still the same, checked byte for byte. */
    const char *value_at[DN_VALUE_CACHE_SLOTS];
    PyObject *values[DN_VALUE_CACHE_SLOTS];
    /* The Metrics dict made last for each id (a child's pid, the parent, the aggregate),
     * kept privately with the C values it holds: the next one for the same id is a copy
     * of it (its key table cloned at once), with only the values that changed made and
     * set. A process that slept since has only its timestamp to change. Records not used
     * by a conversion are dropped once they outnumber the used ones. */
    struct dn_htab memo; /* struct metrics_memo, by id */
    uint64_t conversions; /* sample conversions so far */
    size_t memo_used;     /* records the current conversion used */
    /* The records in the order the last conversions asked for them (a tree's processes
     * come in the same order sample after sample): the one at the same place is tried
     * before the table. Emptied whenever a record is dropped. */
    struct metrics_memo **memo_seq;
    size_t memo_seq_len, memo_seq_cap, memo_pos;
};

void dn_key_cache_clear(struct dn_key_cache *kc);
int dn_key_cache_traverse(struct dn_key_cache *kc, visitproc visit, void *arg);

PyObject *dn_sample_to_dict(struct dn_key_cache *kc, const struct dn_sample *s);
PyObject *dn_summary_to_dict(struct dn_key_cache *kc, const struct dn_summary *s,
                             const struct dn_ebpf_sample *ebpf);
PyObject *dn_gpu_summary_to_dict(struct dn_key_cache *kc, const struct dn_gpu_summary *g);
PyObject *dn_metadata_to_dict(struct dn_key_cache *kc, const struct dn_metadata *md);
struct dn_env;
PyObject *dn_env_to_dict(struct dn_key_cache *kc, const struct dn_env *env);
/* SCHEMA: a tuple of {"name", "unit", "type", "description"} dicts. */
PyObject *dn_schema_tuple(void);

#endif
