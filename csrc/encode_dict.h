/* The Python back end of the emitter: samples, summaries and metadata become dicts. */
#ifndef DENET_ENCODE_DICT_H
#define DENET_ENCODE_DICT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "emit.h"

PyObject *dn_sample_to_dict(const struct dn_sample *s);
PyObject *dn_summary_to_dict(const struct dn_summary *s, const struct dn_ebpf_sample *ebpf);
PyObject *dn_metadata_to_dict(const struct dn_metadata *md);
/* SCHEMA: a tuple of {"name", "unit", "type", "description"} dicts. */
PyObject *dn_schema_tuple(void);

#endif
