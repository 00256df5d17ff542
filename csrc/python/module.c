/* denet._denet: module definition (multi-phase init, per-module state). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>

#include "core/gpu.h"
#include "core/memchar.h"
#include "ebpf/common.h"
#include "ebpf/sock.h"
#include "ebpf/syscalls.h"
#include "python/encode_dict.h"
#include "python/module.h"
#include "ebpf/syscall_analysis.h"
#include "ebpf/syscall_table.h"
#include "ebpf/tracked.h"

static dn_module_state *get_state(PyObject *m)
{
    return (dn_module_state *)PyModule_GetState(m);
}

PyDoc_STRVAR(ebpf_available_doc,
             "ebpf_available()\n--\n\n"
             "Return (True, '') when the eBPF collectors can be loaded here, else (False, "
             "reason) with\nwhat failed and how to fix it.");

PyObject *dn_py_ebpf_available(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    char err[512] = "";
    struct dn_tracker *t = NULL;
    struct dn_syscalls *sc = NULL;
    int rc;
    /* Loads what enable_ebpf=True loads (the tracker, then the syscall counter that
     * filters on its map), so the answer and the reason are the ones a monitor gets. */
    Py_BEGIN_ALLOW_THREADS
    rc = dn_tracker_open(&t, err, sizeof err);
    if (rc == 0)
        rc = dn_syscalls_open(&sc, dn_tracker_map_fd(t), dn_tracker_live_map_fd(t), err,
                              sizeof err);
    dn_syscalls_close(sc);
    dn_tracker_close(t);
    Py_END_ALLOW_THREADS
    return Py_BuildValue("(Os)", rc == 0 ? Py_True : Py_False, rc == 0 ? "" : err);
}

PyDoc_STRVAR(gpu_available_doc,
             "gpu_available()\n--\n\n"
             "Return (True, '') when NVIDIA GPUs can be monitored here (NVML loads, initialises "
             "and finds\na device), else (False, reason) with what failed and how to fix it. "
             "DENET_NVML_LIBRARY\nnames the library to load instead of libnvidia-ml.so.1.");

static PyObject *py_gpu_available(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    char err[512] = "";
    struct dn_gpu *g = NULL;
    int rc;
    /* What a monitor with gpu=True does, so the answer and the reason are its own. */
    Py_BEGIN_ALLOW_THREADS
    rc = dn_gpu_open(&g, err, sizeof err);
    dn_gpu_close(g);
    Py_END_ALLOW_THREADS
    return Py_BuildValue("(Os)", rc == 0 ? Py_True : Py_False, rc == 0 ? "" : err);
}

PyDoc_STRVAR(sock_available_doc,
             "sock_available()\n--\n\n"
             "Return (True, '') when this kernel has the sock_send_length/sock_recv_length "
             "tracepoints\nthat per-process socket bytes need (Linux 6.5+), else (False, "
             "reason). Loading them\nalso needs what ebpf_available() checks.");

static PyObject *py_sock_available(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    char why[512] = "";
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = dn_sock_probe(why, sizeof why);
    Py_END_ALLOW_THREADS
    return Py_BuildValue("(Os)", rc == 0 ? Py_True : Py_False, rc == 0 ? "" : why);
}

PyDoc_STRVAR(perf_available_doc,
             "perf_available()\n--\n\n"
             "Return (True, note) when hardware performance counters can be opened here, "
             "else (False,\nreason).");

static PyObject *py_perf_available(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    struct dn_capabilities caps = {0};
    bool ok;
    Py_BEGIN_ALLOW_THREADS
    ok = dn_perf_probe(&caps);
    Py_END_ALLOW_THREADS
    return Py_BuildValue("(Os)", ok ? Py_True : Py_False, caps.perf_hw.reason);
}

PyDoc_STRVAR(syscall_name_doc, "syscall_name(nr, /)\n--\n\n"
                               "Name of syscall number nr on this architecture "
                               "(\"syscall_<nr>\" when unknown).");

static PyObject *py_syscall_name(PyObject *module, PyObject *arg)
{
    (void)module;
    long nr = PyLong_AsLong(arg);
    if (nr == -1 && PyErr_Occurred())
        return NULL;
    char buf[32];
    return PyUnicode_FromString(dn_syscall_name(nr, buf, sizeof buf));
}

PyDoc_STRVAR(syscall_category_doc, "syscall_category(nr_or_name, /)\n--\n\n"
                                   "Category of a syscall, by number or name.");

static PyObject *py_syscall_category(PyObject *module, PyObject *arg)
{
    (void)module;
    long nr;
    if (PyUnicode_Check(arg)) {
        const char *name = PyUnicode_AsUTF8(arg);
        if (!name)
            return NULL;
        nr = dn_syscall_number(name);
        if (nr < 0) {
            PyErr_Format(PyExc_ValueError, "unknown syscall name %R", arg);
            return NULL;
        }
    } else {
        nr = PyLong_AsLong(arg);
        if (nr == -1 && PyErr_Occurred())
            return NULL;
    }
    return PyUnicode_FromString(dn_category_name(dn_syscall_category(nr)));
}

PyDoc_STRVAR(syscall_number_doc, "syscall_number(name, /)\n--\n\n"
                                 "Number of a syscall name on this architecture, or -1.");

static PyObject *py_syscall_number(PyObject *module, PyObject *arg)
{
    (void)module;
    const char *name = PyUnicode_AsUTF8(arg);
    if (!name)
        return NULL;
    return PyLong_FromLong(dn_syscall_number(name));
}

static PyMethodDef module_methods[] = {
    {"ebpf_available", dn_py_ebpf_available, METH_NOARGS, ebpf_available_doc},
    {"gpu_available", py_gpu_available, METH_NOARGS, gpu_available_doc},
    {"sock_available", py_sock_available, METH_NOARGS, sock_available_doc},
    {"perf_available", py_perf_available, METH_NOARGS, perf_available_doc},
    {"syscall_name", py_syscall_name, METH_O, syscall_name_doc},
    {"syscall_category", py_syscall_category, METH_O, syscall_category_doc},
    {"syscall_number", py_syscall_number, METH_O, syscall_number_doc},
    {"_after_fork_child", dn_py_after_fork_child, METH_NOARGS,
     PyDoc_STR("_after_fork_child()\n--\n\nMake the monitors a forked child inherited "
               "inert (registered with os.register_at_fork).")},
    {"_stop_all", dn_py_stop_all, METH_NOARGS,
     PyDoc_STR("_stop_all()\n--\n\nStop every sampling monitor (called at interpreter exit).")},
    {NULL, NULL, 0, NULL},
};

static int module_exec(PyObject *m)
{
    dn_module_state *st = get_state(m);
    dn_ebpf_init_logging();
    st->monitor_type = dn_monitor_type_create(m);
    if (!st->monitor_type)
        return -1;
    if (PyModule_AddType(m, st->monitor_type) < 0)
        return -1;
    PyObject *schema = dn_schema_tuple();
    int rc = schema ? PyModule_AddObjectRef(m, "SCHEMA", schema) : -1;
    Py_XDECREF(schema);
    if (rc < 0)
        return -1;
    PyObject *cats = PyTuple_New(DN_CAT_COUNT);
    if (!cats)
        return -1;
    for (int i = 0; i < DN_CAT_COUNT; i++) {
        PyObject *s = PyUnicode_FromString(dn_category_name((enum dn_syscall_category)i));
        if (!s) {
            Py_DECREF(cats);
            return -1;
        }
        PyTuple_SET_ITEM(cats, i, s);
    }
    rc = PyModule_AddObjectRef(m, "SYSCALL_CATEGORIES", cats);
    Py_DECREF(cats);
    if (rc < 0)
        return -1;
    if (PyModule_AddStringConstant(m, "SYSCALL_ARCH", dn_syscall_arch()) < 0)
        return -1;
    return 0;
}

static int module_traverse(PyObject *m, visitproc visit, void *arg)
{
    Py_VISIT(get_state(m)->monitor_type);
    return dn_key_cache_traverse(&get_state(m)->keys, visit, arg);
}

static int module_clear(PyObject *m)
{
    Py_CLEAR(get_state(m)->monitor_type);
    dn_key_cache_clear(&get_state(m)->keys);
    return 0;
}

static void module_free(void *m)
{
    module_clear((PyObject *)m);
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
#ifdef Py_mod_multiple_interpreters
    /* The registry of live monitors (atexit, fork) is process-wide. */
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
    {0, NULL},
};

PyModuleDef dn_module_def = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "denet._denet",
    .m_doc = "Native core of denet: the ProcessMonitor type, its sampler thread, /proc "
             "readers and eBPF collectors.",
    .m_size = sizeof(dn_module_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC PyInit__denet(void)
{
    return PyModuleDef_Init(&dn_module_def);
}
