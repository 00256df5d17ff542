/* Python arguments into C: the command, the environment, stdout/stderr targets.
 * Memory returned is malloc'd, so a C-only session can own and free it. */
#ifndef DENET_PYTHON_ARGS_H
#define DENET_PYTHON_ARGS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdbool.h>

#include "core/spawn.h" /* dn_free_strv */

/* A list/tuple of str or path-like into a NULL-terminated argv; NULL with an exception. */
char **dn_argv_from_cmd(PyObject *cmd);

/* A mapping into "KEY=VALUE" strings; NULL with an exception. */
char **dn_envp_from_mapping(PyObject *env);

/* stdout=/stderr=: None (inherit), a path, an int fd, subprocess.DEVNULL (-3),
 * subprocess.STDOUT (-2, stderr only: returns -3), or an object with fileno(). Returns
 * the fd to dup2 in the child (-1 to inherit) and whether it was opened here (*owned);
 * -2 with an exception. */
int dn_redirect_fd(PyObject *obj, const char *which, bool *owned);

#endif
