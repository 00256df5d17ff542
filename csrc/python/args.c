#include "python/args.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "python/errors.h"


/* A list/tuple of str or path-like into a NULL-terminated argv. */
char **dn_argv_from_cmd(PyObject *cmd)
{
    if (PyUnicode_Check(cmd) || PyBytes_Check(cmd)) {
        PyErr_SetString(PyExc_TypeError,
                        "cmd must be a list of strings such as ['sleep', '1'], not a single "
                        "string (split it with shlex.split())");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(cmd, "cmd must be a list of strings such as ['sleep', '1']");
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n == 0) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "cmd is empty: give the program and its arguments, "
                                          "e.g. ['python3', 'train.py']");
        return NULL;
    }
    char **argv = calloc((size_t)n + 1, sizeof *argv);
    if (!argv) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *bytes = NULL;
        if (!PyUnicode_Check(item) && !PyBytes_Check(item) &&
            !PyObject_HasAttrString(item, "__fspath__")) {
            PyErr_Format(PyExc_TypeError, "cmd[%zd] must be a string, not %.100s", i,
                         Py_TYPE(item)->tp_name);
            goto fail;
        }
        if (!PyUnicode_FSConverter(item, &bytes))
            goto fail;
        const char *s = PyBytes_AS_STRING(bytes);
        if ((Py_ssize_t)strlen(s) != PyBytes_GET_SIZE(bytes)) {
            Py_DECREF(bytes);
            PyErr_Format(PyExc_ValueError, "cmd[%zd] contains a NUL character", i);
            goto fail;
        }
        argv[i] = strdup(s);
        Py_DECREF(bytes);
        if (!argv[i]) {
            PyErr_NoMemory();
            goto fail;
        }
    }
    Py_DECREF(seq);
    return argv;
fail:
    Py_DECREF(seq);
    dn_free_strv(argv);
    return NULL;
}

/* A mapping into "KEY=VALUE" strings. */
char **dn_envp_from_mapping(PyObject *env)
{
    PyObject *items = PyMapping_Items(env);
    if (!items) {
        PyErr_SetString(PyExc_TypeError, "env must be a mapping of str to str");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(items);
    char **envp = calloc((size_t)n + 1, sizeof *envp);
    if (!envp) {
        Py_DECREF(items);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *k = NULL, *v = NULL;
        PyObject *kv = PyList_GET_ITEM(items, i);
        if (!PyUnicode_FSConverter(PyTuple_GET_ITEM(kv, 0), &k) ||
            !PyUnicode_FSConverter(PyTuple_GET_ITEM(kv, 1), &v)) {
            Py_XDECREF(k);
            goto fail;
        }
        const char *ks = PyBytes_AS_STRING(k), *vs = PyBytes_AS_STRING(v);
        if (!*ks || strchr(ks, '=')) {
            PyErr_Format(PyExc_ValueError, "illegal environment variable name %R",
                         PyTuple_GET_ITEM(kv, 0));
            Py_DECREF(k);
            Py_DECREF(v);
            goto fail;
        }
        size_t len = strlen(ks) + strlen(vs) + 2;
        envp[i] = malloc(len);
        if (envp[i])
            snprintf(envp[i], len, "%s=%s", ks, vs);
        Py_DECREF(k);
        Py_DECREF(v);
        if (!envp[i]) {
            PyErr_NoMemory();
            goto fail;
        }
    }
    Py_DECREF(items);
    return envp;
fail:
    Py_DECREF(items);
    dn_free_strv(envp);
    return NULL;
}

/* stdout=/stderr=: None (inherit), a path, an int fd, subprocess.DEVNULL (-3),
 * subprocess.STDOUT (-2, stderr only), or an object with fileno(). Returns the fd to
 * dup2 in the child (-1 to inherit) and whether we opened it (*owned). -2 on error. */
int dn_redirect_fd(PyObject *obj, const char *which, bool *owned)
{
    *owned = false;
    if (obj == NULL || obj == Py_None)
        return -1;
    if (PyLong_Check(obj)) {
        long v = PyLong_AsLong(obj);
        if (v == -1 && PyErr_Occurred())
            return -2;
        if (v == -3) { /* subprocess.DEVNULL */
            int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
            if (fd < 0) {
                dn_raise_errno(errno, "cannot open /dev/null", NULL, NULL);
                return -2;
            }
            *owned = true;
            return fd;
        }
        if (v == -2 && !strcmp(which, "stderr"))
            return -3; /* STDOUT: resolved by the caller */
        if (v < 0 || v > INT_MAX) {
            PyErr_Format(PyExc_ValueError,
                         "%s=%ld is not supported: use None, a path, an open file, a file "
                         "descriptor or subprocess.DEVNULL (pipes are not supported; use "
                         "denet.execute_with_monitoring for captured output)",
                         which, v);
            return -2;
        }
        if (fcntl((int)v, F_GETFD) < 0) {
            dn_raise_errno(errno, which, "not an open file descriptor", NULL);
            return -2;
        }
        return (int)v;
    }
    if (PyUnicode_Check(obj) || PyBytes_Check(obj) || PyObject_HasAttrString(obj, "__fspath__")) {
        PyObject *bytes = NULL;
        if (!PyUnicode_FSConverter(obj, &bytes))
            return -2;
        int fd;
        Py_BEGIN_ALLOW_THREADS
        fd = open(PyBytes_AS_STRING(bytes), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        Py_END_ALLOW_THREADS
        if (fd < 0) {
            PyObject *fn = PyUnicode_DecodeFSDefault(PyBytes_AS_STRING(bytes));
            char what[64];
            snprintf(what, sizeof what, "cannot open the %s file", which);
            dn_raise_errno(errno, what, NULL, fn);
            Py_XDECREF(fn);
            Py_DECREF(bytes);
            return -2;
        }
        Py_DECREF(bytes);
        *owned = true;
        return fd;
    }
    PyObject *r = PyObject_CallMethod(obj, "fileno", NULL);
    if (!r) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError,
                     "%s must be None, a path, a file descriptor, subprocess.DEVNULL or a file "
                     "object with fileno(), not %.100s",
                     which, Py_TYPE(obj)->tp_name);
        return -2;
    }
    long v = PyLong_AsLong(r);
    Py_DECREF(r);
    if (v == -1 && PyErr_Occurred())
        return -2;
    /* Flush Python-level buffers first so output keeps its order. */
    PyObject *fr = PyObject_CallMethod(obj, "flush", NULL);
    if (fr)
        Py_DECREF(fr);
    else
        PyErr_Clear();
    return (int)v;
}

