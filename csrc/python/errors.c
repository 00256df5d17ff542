#include "python/errors.h"

#include <errno.h>
#include <string.h>

PyObject *dn_raise_errno(int err, const char *what, const char *hint, PyObject *filename)
{
    if (err < 0)
        err = -err;
    PyObject *msg = hint ? PyUnicode_FromFormat("%s: %s (%s)", what, strerror(err), hint)
                         : PyUnicode_FromFormat("%s: %s", what, strerror(err));
    if (!msg)
        return NULL;
    /* OSError(errno, strerror, filename) picks the subclass from errno. */
    PyObject *args = filename ? Py_BuildValue("(iOO)", err, msg, filename)
                              : Py_BuildValue("(iO)", err, msg);
    Py_DECREF(msg);
    if (!args)
        return NULL;
    PyObject *exc = PyObject_Call(PyExc_OSError, args, NULL);
    Py_DECREF(args);
    if (exc) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}
