/* denet.ProcessMonitor: the Python type. It owns a sampling session (csrc/core/session.c:
 * the command or attached pid, collectors, output file and the native sampler thread)
 * and turns Python arguments into the session's options and its C data into dicts.
 * Every session call may block on the session's lock, so the GIL is released around it;
 * Python objects are built only from copies, outside that lock. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/procfs.h"
#include "core/session.h"
#include "ebpf/ebpf_sample.h"
#include "ebpf/tracked.h"
#include "python/args.h"
#include "python/encode_dict.h"
#include "python/errors.h"
#include "python/module.h"

/* How run() ends a command on Ctrl-C: SIGTERM, then SIGKILL after the grace period
 * (denet/_procgroup.py follows the same policy for the CLI and execute_with_monitoring). */
#define DN_TERM_GRACE_SECS 2.0
#define DN_KILL_WAIT_SECS 5.0

typedef struct MonitorObject_ {
    PyObject_HEAD
    PyObject *weakreflist;
    bool initialized;
    bool stopped; /* stop() was called: the monitor is finished */
    bool quiet;
    struct dn_session s;

    /* registry of live monitors, for stopping them at interpreter exit (GIL guards it) */
    struct MonitorObject_ *reg_prev, *reg_next;
    bool registered;
} MonitorObject;

static MonitorObject *registry_head;

static void registry_add(MonitorObject *m)
{
    if (m->registered)
        return;
    m->reg_prev = NULL;
    m->reg_next = registry_head;
    if (registry_head)
        registry_head->reg_prev = m;
    registry_head = m;
    m->registered = true;
}

static void registry_remove(MonitorObject *m)
{
    if (!m->registered)
        return;
    if (m->reg_prev)
        m->reg_prev->reg_next = m->reg_next;
    else
        registry_head = m->reg_next;
    if (m->reg_next)
        m->reg_next->reg_prev = m->reg_prev;
    m->registered = false;
}

/* The module's cache of dict keys, found from the type (subclasses included). */
static struct dn_key_cache *key_cache(PyObject *self)
{
    PyObject *mod = PyType_GetModuleByDef(Py_TYPE(self), &dn_module_def);
    return &((dn_module_state *)PyModule_GetState(mod))->keys;
}

static int check_init(MonitorObject *m)
{
    if (!m->initialized) {
        PyErr_SetString(PyExc_RuntimeError,
                        "ProcessMonitor is not initialized (did a subclass __init__ forget to "
                        "call super().__init__()?)");
        return -1;
    }
    return 0;
}

/* ---- construction ------------------------------------------------------------------ */

static PyObject *monitor_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)args;
    (void)kwds;
    MonitorObject *m = (MonitorObject *)type->tp_alloc(type, 0);
    if (!m)
        return NULL;
    struct dn_session_opts none = {0};
    dn_session_init(&m->s, &none);
    return (PyObject *)m;
}

/* Keywords shared by the constructor and from_pid, in this order after the first
 * positional argument (cmd or pid). One table, one format, one struct. */
#define COMMON_KWLIST                                                                      \
    "base_interval_ms", "max_interval_ms", "since_process_start", "output_file",           \
        "output_format", "store_in_memory", "quiet", "include_children", "write_metadata", \
        "enable_ebpf", "offcpu", "offcpu_stacks", "gpu", "write_env", "syscalls"
#define COMMON_FORMAT "iipOspppppppOpp"
#define COMMON_ARGS(o)                                                                      \
    &(o).base_ms, &(o).max_ms, &(o).since_process_start, &(o).output_file, &(o).output_format, \
        &(o).store_in_memory, &(o).quiet, &(o).include_children, &(o).write_metadata,        \
        &(o).enable_ebpf, &(o).offcpu, &(o).offcpu_stacks, &(o).gpu, &(o).write_env, &(o).syscalls

struct common_opts {
    int base_ms, max_ms;
    int since_process_start, store_in_memory, quiet, include_children, write_metadata;
    int enable_ebpf, offcpu, offcpu_stacks, syscalls;
    int write_env;
    PyObject *output_file;
    const char *output_format;
    PyObject *gpu; /* None: on when NVML loads; True/False */
};

static const struct common_opts COMMON_DEFAULTS = {
    .base_ms = 100,
    .max_ms = 1000,
    .store_in_memory = 1,
    .include_children = 1,
    .offcpu = 1,
    .offcpu_stacks = 1,
    .syscalls = 1,
    .output_file = Py_None,
    .output_format = "jsonl",
    .gpu = Py_None,
};

/* Where samples go: nothing, a path (*path, a bytes object) or an open descriptor. */
struct output_target {
    PyObject *path;
    int fd;
    enum dn_format fmt;
};

static int setup_common(MonitorObject *m, const struct common_opts *o, struct output_target *out)
{
    out->path = NULL;
    out->fd = -1;
    if (o->base_ms <= 0) {
        PyErr_Format(PyExc_ValueError, "base_interval_ms must be positive, got %d", o->base_ms);
        return -1;
    }
    if (o->max_ms <= 0) {
        PyErr_Format(PyExc_ValueError, "max_interval_ms must be positive, got %d", o->max_ms);
        return -1;
    }
    if (dn_format_parse(o->output_format, &out->fmt) != 0) {
        PyErr_Format(PyExc_ValueError,
                     "Unknown format: %s; unknown output_format '%s': use \"jsonl\", \"json\" or "
                     "\"csv\"",
                     o->output_format, o->output_format);
        return -1;
    }
    PyObject *f = o->output_file;
    if (f && f != Py_None) {
        if (PyLong_Check(f) && !PyBool_Check(f)) {
            long fd = PyLong_AsLong(f);
            if (fd == -1 && PyErr_Occurred())
                return -1;
            if (fd < 0 || fd > INT_MAX || fcntl((int)fd, F_GETFD) < 0) {
                PyErr_Format(PyExc_ValueError,
                             "output_file=%ld is not an open file descriptor: give a path or "
                             "the fileno() of an open file", fd);
                return -1;
            }
            out->fd = (int)fd;
        } else if (!PyUnicode_FSConverter(f, &out->path)) {
            return -1;
        }
    }
    if (o->enable_ebpf && !o->syscalls && !o->offcpu) {
        PyErr_SetString(PyExc_ValueError,
                        "enable_ebpf=True with syscalls=False and offcpu=False has nothing to "
                        "collect: keep one of them on, or leave enable_ebpf off");
        return -1;
    }
    int gpu = DN_GPU_AUTO;
    if (o->gpu != Py_None) {
        int on = PyObject_IsTrue(o->gpu);
        if (on < 0)
            return -1;
        gpu = on ? DN_GPU_ON : DN_GPU_OFF;
    }
    struct dn_session_opts so = {
        .gpu = gpu,
        .base_ms = o->base_ms,
        .max_ms = o->max_ms,
        .include_children = o->include_children,
        .since_process_start = o->since_process_start,
        .store_in_memory = o->store_in_memory,
        .write_metadata = o->write_metadata,
        .enable_ebpf = o->enable_ebpf,
        .offcpu = o->offcpu,
        .offcpu_stacks = o->offcpu_stacks,
        .syscalls = o->syscalls,
        .write_env = o->write_env,
    };
    m->s.o = so;
    m->quiet = o->quiet;
    return 0;
}

static int open_output(MonitorObject *m, const struct output_target *out)
{
    if (!out->path && out->fd < 0)
        return 0;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = dn_session_open_output(&m->s, out->path ? PyBytes_AS_STRING(out->path) : NULL, out->fd,
                                out->fmt);
    Py_END_ALLOW_THREADS
    if (rc) {
        PyObject *fn = out->path ? PyUnicode_DecodeFSDefault(PyBytes_AS_STRING(out->path)) : NULL;
        dn_raise_errno(rc, "cannot open output_file for writing", NULL, fn);
        Py_XDECREF(fn);
        return -1;
    }
    return 0;
}

/* eBPF off, with the reason: kept in samples, and a RuntimeWarning unless quiet. */
static void warn_ebpf(MonitorObject *m)
{
    if (!m->s.ebpf_error || m->quiet)
        return;
    if (PyErr_WarnFormat(PyExc_RuntimeWarning, 1, "denet: eBPF disabled: %s", m->s.ebpf_error) < 0)
        PyErr_Clear(); /* warnings turned into errors must not stop monitoring */
}

/* GPU monitoring asked for (gpu=True) but off: kept in samples, and a RuntimeWarning
 * unless quiet. With the default (gpu=None) a machine without NVML is not warned about. */
static void warn_gpu(MonitorObject *m)
{
    if (!m->s.gpu_error || m->quiet || m->s.o.gpu != DN_GPU_ON)
        return;
    if (PyErr_WarnFormat(PyExc_RuntimeWarning, 1, "denet: GPU monitoring disabled: %s",
                         m->s.gpu_error) < 0)
        PyErr_Clear();
}

static void open_gpu(MonitorObject *m)
{
    char err[512];
    Py_BEGIN_ALLOW_THREADS
    dn_session_open_gpu(&m->s, err, sizeof err);
    Py_END_ALLOW_THREADS
}

static void open_ebpf(MonitorObject *m)
{
    char err[512];
    Py_BEGIN_ALLOW_THREADS
    dn_session_open_ebpf(&m->s, err, sizeof err);
    Py_END_ALLOW_THREADS
}

/* Our own resident set: a forked child carries it until it execs. */
static uint64_t self_rss_kb(void)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    unsigned long size, resident;
    if (sscanf(buf, "%lu %lu", &size, &resident) != 2)
        return 0;
    return (uint64_t)resident * (uint64_t)dn_page_kb();
}

/* First read of the tree. -1 with ProcessLookupError when the process is already gone. */
static int begin(MonitorObject *m, double t0_boot, uint64_t spawn_rss_kb)
{
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = dn_session_begin(&m->s, t0_boot, spawn_rss_kb);
    Py_END_ALLOW_THREADS
    if (rc == 0)
        return 0;
    if (rc == -ESRCH || rc == -ENOENT) {
        PyErr_Format(PyExc_ProcessLookupError, "process %d exited before monitoring could start",
                     (int)m->s.pid);
    } else {
        char what[96];
        snprintf(what, sizeof what, "cannot read /proc/%d", (int)m->s.pid);
        dn_raise_errno(rc, what, rc == -EACCES ? "monitor your own processes, or run as root" : NULL,
                       NULL);
    }
    return -1;
}

static void finish_init(MonitorObject *m)
{
    warn_ebpf(m);
    warn_gpu(m);
    m->initialized = true;
    registry_add(m);
}

/* A failed __init__ leaves nothing behind, so a second __init__ starts clean. */
static void reset_session(MonitorObject *m)
{
    struct dn_session_opts none = {0};
    Py_BEGIN_ALLOW_THREADS
    dn_session_destroy(&m->s);
    Py_END_ALLOW_THREADS
    dn_session_init(&m->s, &none);
}

static int monitor_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    MonitorObject *m = (MonitorObject *)self;
    static char *kwlist[] = {"cmd", COMMON_KWLIST, "stdout", "stderr", "start_new_session", "cwd",
                             "env", NULL};
    PyObject *cmd, *out_stdout = Py_None, *out_stderr = Py_None, *cwd = Py_None, *env = Py_None;
    struct common_opts o = COMMON_DEFAULTS;
    int new_session = 0;
    if (m->initialized) {
        PyErr_SetString(PyExc_RuntimeError, "ProcessMonitor is already initialized");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|" COMMON_FORMAT "$OOpOO:ProcessMonitor",
                                     kwlist, &cmd, COMMON_ARGS(o), &out_stdout, &out_stderr,
                                     &new_session, &cwd, &env))
        return -1;

    int ret = -1;
    char **argv = NULL, **envp = NULL;
    PyObject *cwd_bytes = NULL;
    struct output_target out = {.fd = -1};
    int fd_out = -1, fd_err = -1;
    bool own_out = false, own_err = false;

    argv = dn_argv_from_cmd(cmd);
    if (!argv)
        goto cleanup;
    if (setup_common(m, &o, &out) < 0)
        goto cleanup;
    if (env != Py_None && !(envp = dn_envp_from_mapping(env)))
        goto cleanup;
    if (cwd != Py_None && !PyUnicode_FSConverter(cwd, &cwd_bytes))
        goto cleanup;
    if ((fd_out = dn_redirect_fd(out_stdout, "stdout", &own_out)) == -2)
        goto cleanup;
    if ((fd_err = dn_redirect_fd(out_stderr, "stderr", &own_err)) == -2)
        goto cleanup;
    if (fd_err == -3)
        fd_err = fd_out >= 0 ? fd_out : 1;

    char exe[PATH_MAX];
    int rc = dn_resolve_executable(argv[0], envp, exe, sizeof exe);
    if (rc) {
        PyObject *fn = PyUnicode_DecodeFSDefault(argv[0]);
        dn_raise_errno(rc, "cannot run the command",
                       rc == -ENOENT ? "no such program on PATH" : NULL, fn);
        Py_XDECREF(fn);
        goto cleanup;
    }
    if (open_output(m, &out) < 0)
        goto cleanup;
    if (m->s.o.enable_ebpf)
        open_ebpf(m);
    open_gpu(m);

    double t0_boot = dn_boottime_secs();
    uint64_t spawn_rss_kb = self_rss_kb();
    struct dn_spawn_opts so = {
        .path = exe,
        .argv = argv,
        .envp = envp,
        .cwd = cwd_bytes ? PyBytes_AS_STRING(cwd_bytes) : NULL,
        .stdout_fd = fd_out,
        .stderr_fd = fd_err,
        .new_session = new_session,
    };
    int child_errno = 0;
    enum dn_spawn_stage stage = DN_STAGE_NONE;
    Py_BEGIN_ALLOW_THREADS
    rc = dn_session_spawn(&m->s, &so, &child_errno, &stage);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        dn_raise_errno(rc, "cannot start the command (fork failed)", NULL, NULL);
        goto cleanup;
    }
    if (rc == 1) {
        PyObject *fn = PyUnicode_DecodeFSDefault(stage == DN_STAGE_CHDIR && cwd_bytes
                                                     ? PyBytes_AS_STRING(cwd_bytes)
                                                     : exe);
        dn_raise_errno(child_errno,
                       stage == DN_STAGE_CHDIR ? "cannot change to the working directory cwd"
                       : stage == DN_STAGE_EXEC ? "cannot execute the command"
                                                : "cannot set up the command's stdout/stderr",
                       NULL, fn);
        Py_XDECREF(fn);
        goto cleanup;
    }
    m->s.md.cmd = argv;
    argv = NULL;
    m->s.md.executable = strdup(exe);
    if (begin(m, t0_boot, spawn_rss_kb) < 0) {
        if (!PyErr_ExceptionMatches(PyExc_ProcessLookupError))
            goto cleanup;
        /* Exited before the first read: still a valid (finished) monitor. */
        PyErr_Clear();
        Py_BEGIN_ALLOW_THREADS
        dn_session_mark_gone(&m->s);
        Py_END_ALLOW_THREADS
    }
    finish_init(m);
    ret = 0;

cleanup:
    if (ret < 0)
        reset_session(m);
    dn_free_strv(argv);
    dn_free_strv(envp);
    Py_XDECREF(out.path);
    Py_XDECREF(cwd_bytes);
    if (own_out && fd_out >= 0)
        close(fd_out);
    if (own_err && fd_err >= 0 && fd_err != fd_out)
        close(fd_err);
    return ret;
}

/* The command line of an attached process, for metadata: NULL-terminated, maybe empty. */
static char **attached_cmdline(pid_t pid)
{
    char buf[4096], path[64];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0)
        close(fd);
    size_t count = 0;
    if (n > 0) {
        buf[n] = '\0';
        for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1)
            count++;
    }
    char **v = calloc(count + 1, sizeof *v);
    if (!v)
        return NULL;
    size_t k = 0;
    for (ssize_t i = 0; n > 0 && i < n && k < count; i += (ssize_t)strlen(buf + i) + 1) {
        if (!(v[k++] = strdup(buf + i))) {
            dn_free_strv(v);
            return NULL;
        }
    }
    return v;
}

static PyObject *monitor_from_pid(PyObject *cls, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"pid", COMMON_KWLIST, NULL};
    PyObject *pid_obj;
    struct common_opts o = COMMON_DEFAULTS;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|" COMMON_FORMAT ":from_pid", kwlist, &pid_obj,
                                     COMMON_ARGS(o)))
        return NULL;
    if (!PyLong_Check(pid_obj) || PyBool_Check(pid_obj)) {
        PyErr_Format(PyExc_TypeError, "pid must be an int, not %.100s", Py_TYPE(pid_obj)->tp_name);
        return NULL;
    }
    long pid = PyLong_AsLong(pid_obj);
    if (pid == -1 && PyErr_Occurred())
        return NULL;
    if (pid <= 0 || pid > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "pid must be a positive process id, got %ld", pid);
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)cls;
    MonitorObject *m = (MonitorObject *)type->tp_new(type, NULL, NULL);
    if (!m)
        return NULL;
    struct output_target out = {.fd = -1};
    if (setup_common(m, &o, &out) < 0)
        goto fail;
    if (m->s.o.enable_ebpf)
        open_ebpf(m);
    open_gpu(m);
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = dn_session_attach(&m->s, (pid_t)pid);
    Py_END_ALLOW_THREADS
    if (rc) {
        if (rc == -ESRCH)
            PyErr_Format(PyExc_ProcessLookupError, "no process with pid %ld", pid);
        else
            dn_raise_errno(rc, "cannot watch the process (pidfd_open)", NULL, NULL);
        goto fail;
    }
    if (open_output(m, &out) < 0)
        goto fail;
    if (!(m->s.md.cmd = attached_cmdline((pid_t)pid))) {
        PyErr_NoMemory();
        goto fail;
    }
    if (begin(m, dn_boottime_secs(), 0) < 0)
        goto fail;
    finish_init(m);
    Py_XDECREF(out.path);
    return (PyObject *)m;
fail:
    Py_XDECREF(out.path);
    Py_DECREF(m);
    return NULL;
}

static void monitor_dealloc(PyObject *self)
{
    MonitorObject *m = (MonitorObject *)self;
    PyTypeObject *tp = Py_TYPE(self);
    if (m->weakreflist)
        PyObject_ClearWeakRefs(self);
    registry_remove(m);
    Py_BEGIN_ALLOW_THREADS
    dn_session_destroy(&m->s);
    Py_END_ALLOW_THREADS
    tp->tp_free(self);
    Py_DECREF(tp);
}

/* ---- methods ----------------------------------------------------------------------- */

PyDoc_STRVAR(start_doc, "start($self, /)\n--\n\n"
                        "Start the native sampling thread and return at once. Samples are taken "
                        "every base_interval_ms,\nramping to max_interval_ms after 10 s.");

static PyObject *monitor_start(PyObject *self, PyObject *unused)
{
    (void)unused;
    MonitorObject *m = (MonitorObject *)self;
    if (check_init(m) < 0)
        return NULL;
    if (m->stopped) {
        PyErr_SetString(PyExc_RuntimeError,
                        "this monitor was stopped; create a new ProcessMonitor to monitor again");
        return NULL;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = dn_session_start(&m->s);
    Py_END_ALLOW_THREADS
    if (rc)
        return dn_raise_errno(rc, "cannot start the sampler thread", NULL, NULL);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(stop_doc, "stop($self, /)\n--\n\n"
                       "Stop sampling, write the summary line to output_file and close it. The "
                       "command itself is\nnot signalled. Raises OSError when output_file could "
                       "not be written completely\n(a full disk): the samples in memory stay "
                       "valid.");

static PyObject *monitor_stop(PyObject *self, PyObject *unused)
{
    (void)unused;
    MonitorObject *m = (MonitorObject *)self;
    if (check_init(m) < 0)
        return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = dn_session_stop(&m->s);
    Py_END_ALLOW_THREADS
    m->stopped = true;
    if (rc)
        return dn_raise_errno(rc, "writing output_file failed; the file is incomplete",
                              rc == -ENOSPC ? "free disk space or write elsewhere" : NULL, NULL);
    Py_RETURN_NONE;
}

static PyObject *exit_code(MonitorObject *m)
{
    int code;
    bool known;
    Py_BEGIN_ALLOW_THREADS
    known = dn_session_exit_code(&m->s, &code);
    Py_END_ALLOW_THREADS
    if (!known)
        Py_RETURN_NONE;
    return PyLong_FromLong(code);
}

/* Waits until the root is gone. Returns 1 when it is, 0 on timeout, -1 with an exception
 * (KeyboardInterrupt) set. timeout < 0: forever. */
static int wait_gone(MonitorObject *m, double timeout)
{
    double deadline = timeout >= 0 ? dn_boottime_secs() + timeout : 0;
    for (;;) {
        double slice = 0.1;
        if (timeout >= 0) {
            double left = deadline - dn_boottime_secs();
            if (left < slice)
                slice = left > 0 ? left : 0;
        }
        int done;
        Py_BEGIN_ALLOW_THREADS
        done = dn_session_wait_gone(&m->s, (int)(slice * 1000) + (slice > 0));
        Py_END_ALLOW_THREADS
        if (done)
            return 1;
        if (timeout >= 0 && dn_boottime_secs() >= deadline)
            return 0;
        if (PyErr_CheckSignals() < 0)
            return -1;
    }
}

PyDoc_STRVAR(wait_doc,
             "wait($self, /, timeout=None)\n--\n\n"
             "Wait for the process to exit and return its exit code (negative signal number "
             "if it was\nkilled, as in subprocess). Returns None on timeout, and for processes "
             "attached with\nfrom_pid (their exit status belongs to their parent).");

static PyObject *monitor_wait(PyObject *self, PyObject *args, PyObject *kwds)
{
    MonitorObject *m = (MonitorObject *)self;
    static char *kwlist[] = {"timeout", NULL};
    PyObject *timeout_obj = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:wait", kwlist, &timeout_obj))
        return NULL;
    if (check_init(m) < 0)
        return NULL;
    double timeout = -1;
    if (timeout_obj != Py_None) {
        timeout = PyFloat_AsDouble(timeout_obj);
        if (timeout == -1 && PyErr_Occurred())
            return NULL;
        if (timeout < 0 || isnan(timeout)) {
            PyErr_SetString(PyExc_ValueError, "timeout must be None or a non-negative number");
            return NULL;
        }
    }
    int r = wait_gone(m, timeout);
    if (r < 0)
        return NULL;
    if (r == 0)
        Py_RETURN_NONE;
    return exit_code(m);
}

PyDoc_STRVAR(run_doc,
             "run($self, /)\n--\n\n"
             "Start sampling, wait for the process to exit, stop, and return the exit code. "
             "The GIL is\nreleased while waiting. Ctrl-C (KeyboardInterrupt) terminates a "
             "command this monitor\nstarted (SIGTERM, then SIGKILL after 2 s), stops "
             "sampling and re-raises.");

static PyObject *monitor_run(PyObject *self, PyObject *unused)
{
    MonitorObject *m = (MonitorObject *)self;
    PyObject *r = monitor_start(self, unused);
    if (!r)
        return NULL;
    Py_DECREF(r);
    int w = wait_gone(m, -1);
    if (w < 0) {
        PyObject *et, *ev, *tb;
        PyErr_Fetch(&et, &ev, &tb);
        /* Signalled through the pidfd: a command reaped meanwhile answers ESRCH, and no
         * other process that took its pid is ever hit. */
        if (dn_session_signal(&m->s, SIGTERM) == 0 && wait_gone(m, DN_TERM_GRACE_SECS) == 0) {
            dn_session_signal(&m->s, SIGKILL);
            wait_gone(m, DN_KILL_WAIT_SECS);
        }
        PyErr_Clear();
        r = monitor_stop(self, NULL);
        Py_XDECREF(r);
        PyErr_Clear();
        PyErr_Restore(et, ev, tb);
        return NULL;
    }
    r = monitor_stop(self, NULL);
    if (!r)
        return NULL;
    Py_DECREF(r);
    return exit_code(m);
}

PyDoc_STRVAR(sample_once_doc,
             "sample_once($self, /)\n--\n\n"
             "Take one sample now and return it as a dict, or None when the process is gone. "
             "The sample\nis also stored and written like the sampler's.");

static PyObject *monitor_sample_once(PyObject *self, PyObject *unused)
{
    (void)unused;
    MonitorObject *m = (MonitorObject *)self;
    if (check_init(m) < 0)
        return NULL;
    struct dn_sample copy;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = dn_session_sample_once(&m->s, &copy);
    Py_END_ALLOW_THREADS
    if (rc == -ENOMEM)
        return PyErr_NoMemory();
    if (rc != 0)
        Py_RETURN_NONE;
    PyObject *d = dn_sample_to_dict(key_cache(self), &copy);
    dn_sample_clear(&copy);
    return d;
}

PyDoc_STRVAR(is_running_doc, "is_running($self, /)\n--\n\n"
                             "True while the monitored process has not exited.");

static PyObject *monitor_is_running(PyObject *self, PyObject *unused)
{
    (void)unused;
    MonitorObject *m = (MonitorObject *)self;
    if (check_init(m) < 0)
        return NULL;
    bool running;
    Py_BEGIN_ALLOW_THREADS
    running = dn_session_is_running(&m->s);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(running);
}

static PyObject *monitor_get_pid(PyObject *self, PyObject *unused)
{
    (void)unused;
    MonitorObject *m = (MonitorObject *)self;
    if (check_init(m) < 0)
        return NULL;
    return PyLong_FromLong(m->s.pid);
}

static PyObject *monitor_get_metadata(PyObject *self, PyObject *unused)
{
    (void)unused;
    MonitorObject *m = (MonitorObject *)self;
    if (check_init(m) < 0)
        return NULL;
    /* Fixed once the session began: read without the lock. */
    return dn_metadata_to_dict(key_cache(self), &m->s.md);
}

PyDoc_STRVAR(get_env_doc,
             "get_env($self, /)\n--\n\n"
             "The run's environment as a dict (the \"env\" record): host, kernel, CPU "
             "topology (lscpu),\nNUMA, the monitored process's CPU affinity and cgroup, "
             "cgroup_limits, CPU governor and\nfrequency, THP and SMT. Read when monitoring "
             "began with write_env=True, else now.");

static PyObject *monitor_get_env(PyObject *self, PyObject *unused)
{
    (void)unused;
    MonitorObject *m = (MonitorObject *)self;
    if (check_init(m) < 0)
        return NULL;
    const struct dn_env *env;
    Py_BEGIN_ALLOW_THREADS
    env = dn_session_env(&m->s);
    Py_END_ALLOW_THREADS
    /* Never changes once read: built without the lock. */
    return dn_env_to_dict(key_cache(self), env);
}

static PyObject *monitor_get_samples(PyObject *self, PyObject *unused)
{
    (void)unused;
    MonitorObject *m = (MonitorObject *)self;
    if (check_init(m) < 0)
        return NULL;
    struct dn_sample *v;
    size_t n;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = dn_session_copy_samples(&m->s, &v, &n);
    Py_END_ALLOW_THREADS
    if (rc)
        return PyErr_NoMemory();
    struct dn_key_cache *kc = key_cache(self);
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        PyObject *d = dn_sample_to_dict(kc, &v[i]);
        if (!d) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, d);
    }
    Py_BEGIN_ALLOW_THREADS
    dn_sample_array_free(v, n);
    Py_END_ALLOW_THREADS
    return list;
}

static PyObject *monitor_latest_sample(PyObject *self, PyObject *unused)
{
    (void)unused;
    MonitorObject *m = (MonitorObject *)self;
    if (check_init(m) < 0)
        return NULL;
    struct dn_sample copy;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = dn_session_copy_latest(&m->s, &copy);
    Py_END_ALLOW_THREADS
    if (rc < 0)
        return PyErr_NoMemory();
    if (rc == 0)
        Py_RETURN_NONE;
    PyObject *d = dn_sample_to_dict(key_cache(self), &copy);
    dn_sample_clear(&copy);
    return d;
}

static PyObject *monitor_clear_samples(PyObject *self, PyObject *unused)
{
    (void)unused;
    MonitorObject *m = (MonitorObject *)self;
    if (check_init(m) < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    dn_session_clear_samples(&m->s);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

PyDoc_STRVAR(save_samples_doc,
             "save_samples($self, /, path, format='jsonl')\n--\n\n"
             "Write the samples kept in memory to path as \"jsonl\" (metadata line, one line "
             "a sample with\na \"kind\" tag, summary line), \"json\" (one array) or \"csv\" "
             "(schema columns, dotted for tree\nsamples).");

static PyObject *monitor_save_samples(PyObject *self, PyObject *args, PyObject *kwds)
{
    MonitorObject *m = (MonitorObject *)self;
    static char *kwlist[] = {"path", "format", NULL};
    PyObject *path;
    const char *format = "jsonl";
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&|s:save_samples", kwlist,
                                     PyUnicode_FSConverter, &path, &format))
        return NULL;
    if (check_init(m) < 0) {
        Py_DECREF(path);
        return NULL;
    }
    enum dn_format fmt;
    if (dn_format_parse(format, &fmt)) {
        Py_DECREF(path);
        PyErr_Format(PyExc_ValueError,
                     "Unknown format: %s; unknown format '%s': use \"jsonl\", \"json\" or \"csv\"",
                     format, format);
        return NULL;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = dn_session_save(&m->s, PyBytes_AS_STRING(path), fmt);
    Py_END_ALLOW_THREADS
    if (rc) {
        PyObject *fn = PyUnicode_DecodeFSDefault(PyBytes_AS_STRING(path));
        dn_raise_errno(rc, "cannot write the samples file", NULL, fn);
        Py_XDECREF(fn);
        Py_DECREF(path);
        return NULL;
    }
    Py_DECREF(path);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(get_summary_doc,
             "get_summary($self, /)\n--\n\n"
             "Summary of the run so far: totals that include processes that exited between "
             "samples\n(total_cpu_time_secs, disk and syscall bytes), peaks "
             "(peak_process_rss_kb is the kernel's\nhigh-water mark), averages.");

static PyObject *monitor_get_summary(PyObject *self, PyObject *unused)
{
    (void)unused;
    MonitorObject *m = (MonitorObject *)self;
    if (check_init(m) < 0)
        return NULL;
    struct dn_summary sum;
    struct dn_ebpf_sample *x;
    Py_BEGIN_ALLOW_THREADS
    dn_session_summary(&m->s, &sum, &x);
    Py_END_ALLOW_THREADS
    PyObject *d = dn_summary_to_dict(key_cache(self), &sum, x);
    dn_ebpf_sample_free(x);
    dn_summary_clear(&sum);
    return d;
}

PyDoc_STRVAR(is_gpu_enabled_doc,
             "is_gpu_enabled($self, /)\n--\n\n"
             "True when this monitor reads NVIDIA GPUs through NVML (gpu=True or the default, "
             "with the\ndriver present); gpu_error says why not.");

static PyObject *monitor_is_gpu_enabled(PyObject *self, PyObject *unused)
{
    (void)unused;
    MonitorObject *m = (MonitorObject *)self;
    if (check_init(m) < 0)
        return NULL;
    /* Set before sampling starts, cleared only after fork (under the GIL). */
    return PyBool_FromLong(m->s.gpu != NULL);
}

static PyObject *monitor_gpu_device_count(PyObject *self, PyObject *unused)
{
    (void)unused;
    MonitorObject *m = (MonitorObject *)self;
    if (check_init(m) < 0)
        return NULL;
    struct dn_gpu_summary g;
    Py_BEGIN_ALLOW_THREADS
    dn_session_gpu_summary(&m->s, &g, NULL);
    Py_END_ALLOW_THREADS
    return PyLong_FromUnsignedLong(g.enabled ? g.device_count : 0);
}

PyDoc_STRVAR(get_gpu_summary_doc,
             "get_gpu_summary($self, /)\n--\n\n"
             "The GPU summary so far: {\"enabled\", \"device_count\", \"total_memory_gb\", "
             "\"peak_used_memory_gb\",\n\"max_system_gpu_utilization\", "
             "\"max_process_gpu_utilization\", \"process_memory_usage_gb\"}, plus\n"
             "\"error\" when GPU monitoring is off for a reason. Sizes in GiB.");

static PyObject *monitor_get_gpu_summary(PyObject *self, PyObject *unused)
{
    (void)unused;
    MonitorObject *m = (MonitorObject *)self;
    if (check_init(m) < 0)
        return NULL;
    struct dn_gpu_summary g;
    Py_BEGIN_ALLOW_THREADS
    dn_session_gpu_summary(&m->s, &g, NULL);
    Py_END_ALLOW_THREADS
    if (!g.present) { /* gpu=False, or no NVML with the default: the empty summary */
        const char *error = g.error;
        memset(&g, 0, sizeof g);
        g.max_process_util = DN_U64_NONE;
        g.error = error;
    }
    return dn_gpu_summary_to_dict(key_cache(self), &g);
}

static PyObject *monitor_gpu_read_cost(PyObject *self, PyObject *unused)
{
    (void)unused;
    MonitorObject *m = (MonitorObject *)self;
    if (check_init(m) < 0)
        return NULL;
    struct dn_gpu_summary g;
    struct dn_gpu_cost c;
    Py_BEGIN_ALLOW_THREADS
    dn_session_gpu_summary(&m->s, &g, &c);
    Py_END_ALLOW_THREADS
    return Py_BuildValue("{s:K,s:K,s:K}", "reads", (unsigned long long)c.reads, "total_ns",
                         (unsigned long long)c.total_ns, "max_ns", (unsigned long long)c.max_ns);
}

PyDoc_STRVAR(offcpu_folded_doc,
             "offcpu_folded($self, /)\n--\n\n"
             "Off-CPU stacks in the folded format of flame-graph tools, one line per "
             "distinct stack:\n\"process;user frames;kernel frames_[k] weight\", outermost "
             "frame first, weights in microseconds\nthat sum to the total off-CPU time. "
             "Raises RuntimeError when off-CPU profiling is off\n(it needs enable_ebpf=True "
             "and root).");

static PyObject *monitor_offcpu_folded(PyObject *self, PyObject *unused)
{
    (void)unused;
    MonitorObject *m = (MonitorObject *)self;
    if (check_init(m) < 0)
        return NULL;
    char *text = NULL;
    size_t len = 0;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = dn_session_offcpu_folded(&m->s, &text, &len);
    Py_END_ALLOW_THREADS
    if (rc == -ENOTSUP) {
        const char *why = m->s.offcpu_error   ? m->s.offcpu_error
                          : m->s.ebpf_error   ? m->s.ebpf_error
                          : !m->s.o.enable_ebpf ? "pass enable_ebpf=True (needs root)"
                                                : "it was turned off with offcpu=False";
        PyErr_Format(PyExc_RuntimeError, "off-CPU profiling is off: %s", why);
        return NULL;
    }
    if (rc == -ENOMEM)
        return PyErr_NoMemory();
    if (rc)
        return dn_raise_errno(rc, "reading the off-CPU stacks failed", NULL, NULL);
    PyObject *r = PyUnicode_DecodeUTF8(text, (Py_ssize_t)len, "replace");
    free(text);
    return r;
}

static PyObject *monitor_enter(PyObject *self, PyObject *unused)
{
    (void)unused;
    MonitorObject *m = (MonitorObject *)self;
    if (check_init(m) < 0)
        return NULL;
    if (!m->stopped) {
        PyObject *r = monitor_start(self, NULL);
        if (!r)
            return NULL;
        Py_DECREF(r);
    }
    return Py_NewRef(self);
}

static PyObject *monitor_exit(PyObject *self, PyObject *args)
{
    (void)args;
    PyObject *r = monitor_stop(self, NULL);
    if (!r)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_FALSE;
}

static PyObject *monitor_repr(PyObject *self)
{
    MonitorObject *m = (MonitorObject *)self;
    if (!m->initialized)
        return PyUnicode_FromFormat("<%s (uninitialized)>", Py_TYPE(self)->tp_name);
    bool running;
    Py_BEGIN_ALLOW_THREADS
    running = dn_session_is_running(&m->s);
    Py_END_ALLOW_THREADS
    return PyUnicode_FromFormat("<%s pid=%d %s%s>", Py_TYPE(self)->tp_name, (int)m->s.pid,
                                running ? "running" : "exited",
                                m->s.thread_started ? ", sampling" : "");
}

static PyObject *monitor_get_ebpf_error(PyObject *self, void *closure)
{
    (void)closure;
    MonitorObject *m = (MonitorObject *)self;
    if (!m->s.ebpf_error)
        Py_RETURN_NONE;
    return PyUnicode_FromString(m->s.ebpf_error);
}

static PyObject *monitor_get_gpu_error(PyObject *self, void *closure)
{
    (void)closure;
    MonitorObject *m = (MonitorObject *)self;
    if (!m->s.gpu_error)
        Py_RETURN_NONE;
    return PyUnicode_FromString(m->s.gpu_error);
}

/* Introspection for tests: what the collector did that no sample or summary shows. It
 * reads the session's collector and tracker under the session's lock. */
PyDoc_STRVAR(debug_doc,
             "_debug($self, /)\n--\n\n"
             "For tests; not a stable API. A dict: sampled_cpu_time_secs (the CPU total from "
             "the samples\nalone, before the reaped command's rusage floor), samples_collected, "
             "task_iter_collections\n(samples read through the BPF task iterator), "
             "task_iter_per_process (of those\nreads, how many read the tree process by "
             "process instead of walking every task), task_iter_proc_instead (samples read "
             "through\n/proc instead: no per-process iterator before Linux 6.1), "
             "task_iter_walk_tasks (the tasks\nof the system the last walk visited), task_iter "
             "(whether the loaded eBPF tracker\nhas the task iterator; None without a tracker) "
             "and task_iter_error (why not, or None).");

static PyObject *monitor_debug(PyObject *self, PyObject *unused)
{
    (void)unused;
    MonitorObject *m = (MonitorObject *)self;
    if (check_init(m) < 0)
        return NULL;
    struct dn_collector_debug d = {0};
    int iter = -1; /* no tracker */
    unsigned long long per_process = 0, proc_instead = 0, walk_tasks = 0;
    char why[256] = "";
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&m->s.lock);
    if (m->s.collector)
        dn_collector_debug(m->s.collector, &d);
    if (m->s.tracker) {
        iter = dn_tracker_task_iter_status(m->s.tracker, why, sizeof why);
        per_process = dn_tracker_per_process_reads(m->s.tracker);
        proc_instead = dn_tracker_proc_reads(m->s.tracker);
        walk_tasks = dn_tracker_walk_tasks(m->s.tracker);
    }
    pthread_mutex_unlock(&m->s.lock);
    Py_END_ALLOW_THREADS
    PyObject *has_iter = iter < 0 ? Py_None : iter ? Py_True : Py_False;
    return Py_BuildValue("{s:d,s:K,s:K,s:K,s:K,s:K,s:O,s:z}", "sampled_cpu_time_secs",
                         (double)d.sampled_cpu_ns / 1e9, "samples_collected",
                         (unsigned long long)d.collections, "task_iter_collections",
                         (unsigned long long)d.iter_collections, "task_iter_per_process",
                         per_process, "task_iter_proc_instead", proc_instead,
                         "task_iter_walk_tasks", walk_tasks, "task_iter", has_iter,
                         "task_iter_error", iter == 0 ? why : NULL);
}

static PyMethodDef monitor_methods[] = {
    {"from_pid", (PyCFunction)(void (*)(void))monitor_from_pid,
     METH_VARARGS | METH_KEYWORDS | METH_CLASS,
     PyDoc_STR("from_pid(pid, base_interval_ms=100, max_interval_ms=1000, "
               "since_process_start=False, output_file=None, output_format='jsonl', "
               "store_in_memory=True, quiet=False, include_children=True, "
               "write_metadata=False, enable_ebpf=False, offcpu=True, offcpu_stacks=True, "
               "gpu=None, write_env=False, syscalls=True)\n--\n\n"
               "Monitor a process that is already running. Raises ProcessLookupError when "
               "there is no\nsuch process and PermissionError when it may not be read.")},
    {"start", monitor_start, METH_NOARGS, start_doc},
    {"stop", monitor_stop, METH_NOARGS, stop_doc},
    {"wait", (PyCFunction)(void (*)(void))monitor_wait, METH_VARARGS | METH_KEYWORDS, wait_doc},
    {"run", monitor_run, METH_NOARGS, run_doc},
    {"sample_once", monitor_sample_once, METH_NOARGS, sample_once_doc},
    {"is_running", monitor_is_running, METH_NOARGS, is_running_doc},
    {"get_pid", monitor_get_pid, METH_NOARGS, PyDoc_STR("get_pid($self, /)\n--\n\nThe pid.")},
    {"get_metadata", monitor_get_metadata, METH_NOARGS,
     PyDoc_STR("get_metadata($self, /)\n--\n\n{\"pid\", \"cmd\", \"executable\", \"t0_ms\"}.")},
    {"get_env", monitor_get_env, METH_NOARGS, get_env_doc},
    {"get_samples", monitor_get_samples, METH_NOARGS,
     PyDoc_STR("get_samples($self, /)\n--\n\nThe samples kept in memory, as a list of dicts.")},
    {"latest_sample", monitor_latest_sample, METH_NOARGS,
     PyDoc_STR("latest_sample($self, /)\n--\n\nThe most recent sample (kept even with "
               "store_in_memory=False), or None.")},
    {"clear_samples", monitor_clear_samples, METH_NOARGS,
     PyDoc_STR("clear_samples($self, /)\n--\n\nForget the samples kept in memory (the summary "
               "is kept).")},
    {"save_samples", (PyCFunction)(void (*)(void))monitor_save_samples,
     METH_VARARGS | METH_KEYWORDS, save_samples_doc},
    {"get_summary", monitor_get_summary, METH_NOARGS, get_summary_doc},
    {"is_gpu_enabled", monitor_is_gpu_enabled, METH_NOARGS, is_gpu_enabled_doc},
    {"gpu_device_count", monitor_gpu_device_count, METH_NOARGS,
     PyDoc_STR("gpu_device_count($self, /)\n--\n\nNVIDIA GPUs this monitor reads (0 when GPU "
               "monitoring is off).")},
    {"get_gpu_summary", monitor_get_gpu_summary, METH_NOARGS, get_gpu_summary_doc},
    {"_gpu_read_cost", monitor_gpu_read_cost, METH_NOARGS,
     PyDoc_STR("_gpu_read_cost($self, /)\n--\n\n{\"reads\", \"total_ns\", \"max_ns\"}: what "
               "the GPU reads cost the sampler\n(bench/gpu_check.py).")},
    {"_debug", monitor_debug, METH_NOARGS, debug_doc},
    {"offcpu_folded", monitor_offcpu_folded, METH_NOARGS, offcpu_folded_doc},
    {"__enter__", monitor_enter, METH_NOARGS, NULL},
    {"__exit__", monitor_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef monitor_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(MonitorObject, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef monitor_getset[] = {
    {"ebpf_error", monitor_get_ebpf_error, NULL,
     PyDoc_STR("Why eBPF collection is unavailable for this monitor, or None."), NULL},
    {"gpu_error", monitor_get_gpu_error, NULL,
     PyDoc_STR("Why GPU monitoring is off for this monitor (gpu=True or the default), or "
               "None."), NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(monitor_doc,
             "ProcessMonitor(cmd, base_interval_ms=100, max_interval_ms=1000, "
             "since_process_start=False,\n               output_file=None, "
             "output_format='jsonl', store_in_memory=True, quiet=False,\n               "
             "include_children=True, write_metadata=False, enable_ebpf=False,\n"
             "               offcpu=True, offcpu_stacks=True, gpu=None, write_env=False,\n"
             "               syscalls=True, *,\n"
             "               stdout=None, stderr=None, start_new_session=False, cwd=None, "
             "env=None)\n--\n\n"
             "Start cmd (a list of strings) and monitor its process tree with a native "
             "sampler thread.\n\n"
             "Raises FileNotFoundError/PermissionError when cmd cannot be executed, "
             "ValueError for an\nempty cmd, bad intervals or an unknown output_format, and "
             "OSError when output_file\ncannot be written. stdout/stderr: None (inherit), a "
             "path, an open file, a file\ndescriptor, or subprocess.DEVNULL. gpu: True/False "
             "turns NVIDIA GPU monitoring (NVML)\non/off; None (the default) turns it on when "
             "the driver's library loads.");

static PyType_Slot monitor_slots[] = {
    {Py_tp_new, monitor_new},
    {Py_tp_init, monitor_init},
    {Py_tp_dealloc, monitor_dealloc},
    {Py_tp_repr, monitor_repr},
    {Py_tp_methods, monitor_methods},
    {Py_tp_members, monitor_members},
    {Py_tp_getset, monitor_getset},
    {Py_tp_doc, (void *)monitor_doc},
    {0, NULL},
};

static PyType_Spec monitor_spec = {
    .name = "denet._denet.ProcessMonitor",
    .basicsize = sizeof(MonitorObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .slots = monitor_slots,
};

PyTypeObject *dn_monitor_type_create(PyObject *module)
{
    return (PyTypeObject *)PyType_FromModuleAndSpec(module, &monitor_spec, NULL);
}

PyObject *dn_py_stop_all(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    /* Stopping may run Python code (warnings), so walk a snapshot of strong references. */
    PyObject *list = PyList_New(0);
    if (!list)
        return NULL;
    for (MonitorObject *m = registry_head; m; m = m->reg_next)
        if (PyList_Append(list, (PyObject *)m) < 0) {
            Py_DECREF(list);
            return NULL;
        }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
        PyObject *r = monitor_stop(PyList_GET_ITEM(list, i), NULL);
        if (!r)
            PyErr_Clear();
        Py_XDECREF(r);
    }
    Py_DECREF(list);
    Py_RETURN_NONE;
}

PyObject *dn_py_after_fork_child(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    /* In the child of os.fork(): each monitor is left readable but finished, so nothing
     * joins a thread that does not exist, waits on a lock nobody will release, writes
     * the parent's file, or keeps the parent's eBPF programs attached. */
    for (MonitorObject *m = registry_head; m; m = m->reg_next) {
        dn_session_after_fork_child(&m->s);
        m->stopped = true;
    }
    Py_RETURN_NONE;
}
