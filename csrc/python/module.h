/* Module state shared by the C files of denet._denet. */
#ifndef DENET_MODULE_H
#define DENET_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "python/encode_dict.h"

typedef struct {
    PyTypeObject *monitor_type;
    struct dn_key_cache keys; /* Python strings of the dict keys */
} dn_module_state;

extern PyModuleDef dn_module_def;

/* Creates the ProcessMonitor heap type for module m. */
PyTypeObject *dn_monitor_type_create(PyObject *m);

/* ebpf_available(): (bool, reason) — defined in module.c */
PyObject *dn_py_ebpf_available(PyObject *module, PyObject *unused);

/* _stop_all(): stops every sampling monitor (registered with atexit). */
PyObject *dn_py_stop_all(PyObject *module, PyObject *unused);
/* _after_fork_child(): makes the monitors inherited by a forked child inert. */
PyObject *dn_py_after_fork_child(PyObject *module, PyObject *unused);

#endif
