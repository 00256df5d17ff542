/* Turning errno values into the right Python exception, with a message that says what
 * failed and what to do (psutil-style: one small helper module). */
#ifndef DENET_ERRORS_H
#define DENET_ERRORS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Raises OSError subclass chosen from errno (FileNotFoundError, PermissionError,
 * ProcessLookupError, ...) with "<what>: <strerror>" and an optional hint, and the
 * filename attribute when given. Always returns NULL. */
PyObject *dn_raise_errno(int err, const char *what, const char *hint, PyObject *filename);

#endif
