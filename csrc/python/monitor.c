/* denet.ProcessMonitor: the Python type. It owns the command it started (or a pid it
 * attached to), a collector, an optional output file and eBPF tracker, and a native
 * sampler thread that never touches Python objects. One mutex guards all of that state;
 * Python-facing methods release the GIL while they wait for it or read /proc. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdbool.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/collector.h"
#include "ebpf/common.h"
#include "ebpf/ebpf_sample.h"
#include "ebpf/syscalls.h"
#include "python/encode_dict.h"
#include "python/errors.h"
#include "python/module.h"
#include "core/procfs.h"
#include "core/spawn.h"
#include "ebpf/tracked.h"
#include "core/writer.h"

typedef struct MonitorObject_ {
    PyObject_HEAD
    PyObject *weakreflist;
    bool initialized;

    /* configuration, fixed after __init__ */
    int base_ms, max_ms;
    bool include_children, since_process_start, store_in_memory, quiet, write_metadata;
    bool enable_ebpf;

    /* the process */
    pid_t pid;
    bool owns_child; /* we started it, so we reap it */
    int pidfd;       /* readable once the process has exited */

    /* everything below is guarded by lock */
    pthread_mutex_t lock;
    bool reaped;      /* owned child reaped; status valid */
    int wait_status;
    bool gone;        /* the root has exited: no more samples */
    struct dn_collector *collector;
    struct dn_tracker *tracker;
    struct dn_syscalls *syscalls; /* eBPF syscall counter, NULL when not loaded */
    int64_t syscalls_t0_ns;       /* monotonic time it began counting */
    char *ebpf_error;
    struct dn_writer writer;
    bool writer_closed;
    struct dn_metadata md;
    struct dn_sample_vec samples;
    struct dn_sample latest;
    bool have_latest;

    /* the sampler thread */
    pthread_t thread;
    bool thread_started; /* joinable */
    bool thread_running; /* still sampling */
    bool stop_requested;
    bool stopped;        /* stop() was called: the monitor is finished */
    int wake_fd;         /* eventfd: wakes the sampler for stop() */
    int64_t start_mono_ns;

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
    m->reg_next = (struct MonitorObject_ *)registry_head;
    if (registry_head)
        registry_head->reg_prev = (struct MonitorObject_ *)m;
    registry_head = m;
    m->registered = true;
}

static void registry_remove(MonitorObject *m)
{
    if (!m->registered)
        return;
    MonitorObject *prev = (MonitorObject *)m->reg_prev, *next = (MonitorObject *)m->reg_next;
    if (prev)
        prev->reg_next = (struct MonitorObject_ *)next;
    else
        registry_head = next;
    if (next)
        next->reg_prev = (struct MonitorObject_ *)prev;
    m->registered = false;
}

/* ---- helpers ----------------------------------------------------------------------- */

/* The module's cache of dict keys, found from the type (subclasses included). */
static struct dn_key_cache *key_cache(PyObject *self)
{
    PyObject *mod = PyType_GetModuleByDef(Py_TYPE(self), &dn_module_def);
    return &((dn_module_state *)PyModule_GetState(mod))->keys;
}

static void lock_nogil(MonitorObject *m)
{
    if (pthread_mutex_trylock(&m->lock) == 0)
        return;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&m->lock);
    Py_END_ALLOW_THREADS
}

static void unlock(MonitorObject *m)
{
    pthread_mutex_unlock(&m->lock);
}

static int pidfd_open_(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Whether the root has exited (a zombie counts), without reaping it. */
static bool root_exited(const MonitorObject *m)
{
    if (m->pidfd >= 0) {
        struct pollfd p = {.fd = m->pidfd, .events = POLLIN};
        return poll(&p, 1, 0) > 0;
    }
    /* No pidfd (kernel < 5.3): peek at our own child, or probe a foreign pid. */
    if (m->owns_child) {
        siginfo_t si = {0};
        return waitid(P_PID, (id_t)m->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
               si.si_pid == m->pid;
    }
    return kill(m->pid, 0) < 0 && errno == ESRCH;
}

static int64_t interval_ms(const MonitorObject *m, int64_t elapsed_ns)
{
    /* base for the first second, a linear ramp to max by 10 s, then max. */
    if (m->max_ms <= m->base_ms)
        return m->base_ms;
    double t = (double)elapsed_ns / 1e9;
    if (t < 1.0)
        return m->base_ms;
    if (t >= 10.0)
        return m->max_ms;
    return m->base_ms + (int64_t)((m->max_ms - m->base_ms) * (t - 1.0) / 9.0);
}

/* Reaps the owned child if it has exited (lock held). */
static void reap_locked(MonitorObject *m, bool block)
{
    if (!m->owns_child || m->reaped || m->pid <= 0)
        return;
    int st;
    struct rusage ru;
    pid_t r;
    do {
        r = wait4(m->pid, &st, block ? 0 : WNOHANG, &ru);
    } while (r < 0 && errno == EINTR);
    if (r == m->pid) {
        m->reaped = true;
        m->wait_status = st;
        m->gone = true;
        if (m->collector)
            dn_collector_root_reaped(m->collector, &ru);
    } else if (r < 0 && errno == ECHILD) {
        /* Someone else reaped it (os.wait() in the user's code): no exit status. */
        m->reaped = true;
        m->wait_status = -1;
        m->gone = true;
    }
}

/* The eBPF part of sample s: cumulative syscall counts of the tree, or the error. */
static struct dn_ebpf_sample *ebpf_part_locked(MonitorObject *m, const struct dn_sample *s)
{
    if (!m->syscalls)
        return m->ebpf_error ? dn_ebpf_sample_new_error(m->ebpf_error) : NULL;
    struct dn_ebpf_sample *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    if (!m->include_children)
        dn_syscalls_only_tgid(m->syscalls, m->pid);
    int rc = dn_syscalls_snapshot(m->syscalls, x);
    if (rc) {
        char err[512];
        dn_ebpf_explain(err, sizeof err, "reading the eBPF syscall counts", rc);
        x->error = strdup(err);
    }
    x->cpu_usage = s->tree && s->has_aggregated ? s->aggregated.cpu_usage : s->parent.cpu_usage;
    x->elapsed_secs = (double)(dn_monotonic_ns() - m->syscalls_t0_ns) / 1e9;
    return x;
}

/* Stores a sample taken under the lock: file, latest, memory. Takes ownership. */
static void record_locked(MonitorObject *m, struct dn_sample *s)
{
    if (m->enable_ebpf)
        s->ebpf = ebpf_part_locked(m, s);
    if (dn_writer_is_open(&m->writer))
        dn_writer_sample(&m->writer, s);
    dn_sample_clear(&m->latest);
    m->have_latest = dn_sample_copy(&m->latest, s) == 0;
    if (!m->store_in_memory || dn_sample_vec_push(&m->samples, s) != 0)
        dn_sample_clear(s);
}

/* One collection under the lock. Returns 0, or -ESRCH when the root is gone. */
static int collect_locked(MonitorObject *m, struct dn_sample *out)
{
    if (m->gone || !m->collector)
        return -ESRCH;
    int rc = dn_collector_collect(m->collector, out);
    if (rc == -ESRCH)
        m->gone = true;
    return rc;
}

/* The eBPF totals for a summary: a fresh snapshot, so syscalls made after the last
 * sample (say, by an attached process that exited in between) still count. Caller frees. */
static struct dn_ebpf_sample *summary_ebpf_locked(MonitorObject *m)
{
    if (m->syscalls) {
        struct dn_ebpf_sample *x = calloc(1, sizeof *x);
        if (x && dn_syscalls_snapshot(m->syscalls, x) == 0)
            return x;
        dn_ebpf_sample_free(x);
    }
    return m->have_latest && m->latest.ebpf ? dn_ebpf_sample_dup(m->latest.ebpf) : NULL;
}

static void write_summary_and_close_locked(MonitorObject *m)
{
    if (m->writer_closed)
        return;
    m->writer_closed = true;
    if (dn_writer_is_open(&m->writer)) {
        if (m->collector) {
            struct dn_summary sum;
            dn_collector_summary(m->collector, &sum);
            struct dn_ebpf_sample *x = summary_ebpf_locked(m);
            dn_writer_summary(&m->writer, &sum, x);
            dn_ebpf_sample_free(x);
        }
        dn_writer_close(&m->writer);
    }
}

/* ---- the sampler thread ------------------------------------------------------------ */

static void *sampler_main(void *arg)
{
    MonitorObject *m = arg;
    /* Signals are for the interpreter's main thread. */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);

    pthread_mutex_lock(&m->lock);
    if (m->syscalls) /* a monitor watching its own process must not count its sampler */
        dn_syscalls_exclude_tid(m->syscalls, gettid());
    while (!m->stop_requested && !m->gone) {
        int64_t t_start = dn_monotonic_ns();
        struct dn_sample s;
        if (collect_locked(m, &s) == 0)
            record_locked(m, &s);
        if (m->gone)
            break;
        int64_t wait_ms =
            interval_ms(m, t_start - m->start_mono_ns) - (dn_monotonic_ns() - t_start) / 1000000;
        if (wait_ms < 0)
            wait_ms = 0;
        pthread_mutex_unlock(&m->lock);

        struct pollfd fds[2] = {{.fd = m->wake_fd, .events = POLLIN},
                                {.fd = m->pidfd, .events = POLLIN}};
        int n = poll(fds, m->pidfd >= 0 ? 2 : 1, (int)wait_ms);
        pthread_mutex_lock(&m->lock);
        bool exited = m->pidfd >= 0 ? n > 0 && (fds[1].revents & POLLIN) : root_exited(m);
        if (exited && !m->stop_requested) {
            /* The root exited. It is a zombie until reaped: one last read gets its final
             * counters, then reaping gets its rusage. */
            if (collect_locked(m, &s) == 0)
                record_locked(m, &s);
            reap_locked(m, true);
            m->gone = true;
        }
    }
    if (m->gone) {
        reap_locked(m, false);
        write_summary_and_close_locked(m);
    }
    if (m->syscalls) /* this tid may be reused by a thread we must count */
        dn_syscalls_exclude_tid(m->syscalls, 0);
    m->thread_running = false;
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

/* Stops and joins the sampler thread. Called with the GIL held, lock not held. */
static void stop_thread(MonitorObject *m)
{
    if (!m->thread_started)
        return;
    lock_nogil(m);
    m->stop_requested = true;
    unlock(m);
    uint64_t one = 1;
    ssize_t w = write(m->wake_fd, &one, sizeof one);
    (void)w;
    Py_BEGIN_ALLOW_THREADS
    pthread_join(m->thread, NULL);
    Py_END_ALLOW_THREADS
    m->thread_started = false;
}

/* ---- construction ------------------------------------------------------------------ */

static PyObject *monitor_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)args;
    (void)kwds;
    MonitorObject *m = (MonitorObject *)type->tp_alloc(type, 0);
    if (!m)
        return NULL;
    m->pid = -1;
    m->pidfd = -1;
    m->wake_fd = -1;
    pthread_mutex_init(&m->lock, NULL);
    return (PyObject *)m;
}

static void free_strv(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        PyMem_RawFree(*p);
    PyMem_RawFree(v);
}

static char *raw_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = PyMem_RawMalloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* A list/tuple of str or path-like into a NULL-terminated argv. */
static char **argv_from_cmd(PyObject *cmd)
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
    char **argv = PyMem_RawCalloc((size_t)n + 1, sizeof *argv);
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
        argv[i] = raw_strdup(s);
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
    free_strv(argv);
    return NULL;
}

/* A mapping into "KEY=VALUE" strings. */
static char **envp_from_mapping(PyObject *env)
{
    PyObject *items = PyMapping_Items(env);
    if (!items) {
        PyErr_SetString(PyExc_TypeError, "env must be a mapping of str to str");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(items);
    char **envp = PyMem_RawCalloc((size_t)n + 1, sizeof *envp);
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
        envp[i] = PyMem_RawMalloc(len);
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
    free_strv(envp);
    return NULL;
}

/* stdout=/stderr=: None (inherit), a path, an int fd, subprocess.DEVNULL (-3),
 * subprocess.STDOUT (-2, stderr only), or an object with fileno(). Returns the fd to
 * dup2 in the child (-1 to inherit) and whether we opened it (*owned). -2 on error. */
static int redirect_fd(PyObject *obj, const char *which, bool *owned)
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

static PyObject *validate_intervals(int base, int max)
{
    if (base <= 0) {
        PyErr_Format(PyExc_ValueError, "base_interval_ms must be positive, got %d", base);
        return NULL;
    }
    if (max <= 0) {
        PyErr_Format(PyExc_ValueError, "max_interval_ms must be positive, got %d", max);
        return NULL;
    }
    return Py_None;
}

/* Options common to the constructor and from_pid. */
struct common_opts {
    int base_ms, max_ms;
    int since_process_start, store_in_memory, quiet, include_children, write_metadata;
    int enable_ebpf;
    PyObject *output_file;
    const char *output_format;
};

static int setup_common(MonitorObject *m, const struct common_opts *o, enum dn_format *fmt,
                        PyObject **output_path)
{
    if (!validate_intervals(o->base_ms, o->max_ms))
        return -1;
    if (dn_format_parse(o->output_format, fmt) != 0) {
        PyErr_Format(PyExc_ValueError,
                     "unknown output_format '%s': use \"jsonl\", \"json\" or \"csv\"",
                     o->output_format);
        return -1;
    }
    *output_path = NULL;
    if (o->output_file && o->output_file != Py_None) {
        if (!PyUnicode_FSConverter(o->output_file, output_path))
            return -1;
    }
    m->base_ms = o->base_ms;
    m->max_ms = o->max_ms;
    m->since_process_start = o->since_process_start;
    m->store_in_memory = o->store_in_memory;
    m->quiet = o->quiet;
    m->include_children = o->include_children;
    m->write_metadata = o->write_metadata;
    m->enable_ebpf = o->enable_ebpf;
    return 0;
}

static int open_output(MonitorObject *m, PyObject *path_bytes, enum dn_format fmt)
{
    if (!path_bytes)
        return 0;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = dn_writer_open(&m->writer, PyBytes_AS_STRING(path_bytes), fmt);
    Py_END_ALLOW_THREADS
    if (rc) {
        PyObject *fn = PyUnicode_DecodeFSDefault(PyBytes_AS_STRING(path_bytes));
        dn_raise_errno(rc, "cannot open output_file for writing", NULL, fn);
        Py_XDECREF(fn);
        return -1;
    }
    return 0;
}

/* eBPF: load the tracker; a failure is reported in samples, never raised. */
static void open_tracker(MonitorObject *m)
{
    char err[512];
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = dn_tracker_open(&m->tracker, err, sizeof err);
    if (rc == 0) {
        /* Syscall counting: filtered on the tracker's map; counts begin now. */
        rc = dn_syscalls_open(&m->syscalls, dn_tracker_map_fd(m->tracker), err, sizeof err);
        m->syscalls_t0_ns = dn_monotonic_ns();
    }
    Py_END_ALLOW_THREADS
    if (rc) {
        m->ebpf_error = raw_strdup(err);
        if (!m->quiet)
            PyErr_WarnFormat(PyExc_RuntimeWarning, 1, "denet: eBPF disabled: %s", err);
        if (PyErr_Occurred())
            PyErr_Clear(); /* warnings turned into errors must not stop monitoring */
    }
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

static int finish_setup(MonitorObject *m, double t0_boot, uint64_t spawn_rss_kb)
{
    struct dn_collector_opts co = {
        .spawn_rss_kb = spawn_rss_kb,
        .root = m->pid,
        .include_children = m->include_children,
        .since_process_start = m->since_process_start,
        .t0_boot = t0_boot,
        .tracker = m->tracker,
    };
    int err = 0;
    struct dn_collector *c;
    Py_BEGIN_ALLOW_THREADS
    c = dn_collector_new(&co, &err);
    Py_END_ALLOW_THREADS
    if (!c) {
        if (err == -ESRCH || err == -ENOENT) {
            PyErr_Format(PyExc_ProcessLookupError,
                         "process %d exited before monitoring could start", (int)m->pid);
        } else {
            char what[96];
            snprintf(what, sizeof what, "cannot read /proc/%d", (int)m->pid);
            dn_raise_errno(err, what,
                           err == -EACCES ? "monitor your own processes, or run as root" : NULL,
                           NULL);
        }
        return -1;
    }
    m->collector = c;
    m->md.pid = m->pid;
    m->md.t0_ms = dn_now_ms();
    if (!m->md.executable) {
        char exe[PATH_MAX], link[64];
        snprintf(link, sizeof link, "/proc/%d/exe", (int)m->pid);
        ssize_t n = readlink(link, exe, sizeof exe - 1);
        if (n > 0) {
            exe[n] = '\0';
            m->md.executable = raw_strdup(exe);
        }
    }
    if (m->write_metadata && dn_writer_is_open(&m->writer))
        dn_writer_metadata(&m->writer, &m->md);
    m->initialized = true;
    registry_add(m);
    return 0;
}

static int monitor_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    MonitorObject *m = (MonitorObject *)self;
    static char *kwlist[] = {"cmd", "base_interval_ms", "max_interval_ms", "since_process_start",
                             "output_file", "output_format", "store_in_memory", "quiet",
                             "include_children", "write_metadata", "enable_ebpf", "stdout",
                             "stderr", "start_new_session", "cwd", "env", NULL};
    PyObject *cmd, *out_stdout = Py_None, *out_stderr = Py_None, *cwd = Py_None, *env = Py_None;
    struct common_opts o = {100, 1000, 0, 1, 0, 1, 0, 0, Py_None, "jsonl"};
    int new_session = 0;
    if (m->initialized) {
        PyErr_SetString(PyExc_RuntimeError, "ProcessMonitor is already initialized");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|iipOsppppp$OOpOO:ProcessMonitor", kwlist,
                                     &cmd, &o.base_ms, &o.max_ms, &o.since_process_start,
                                     &o.output_file, &o.output_format, &o.store_in_memory,
                                     &o.quiet, &o.include_children, &o.write_metadata,
                                     &o.enable_ebpf, &out_stdout, &out_stderr, &new_session, &cwd,
                                     &env))
        return -1;

    int ret = -1;
    char **argv = NULL, **envp = NULL;
    PyObject *out_path = NULL, *cwd_bytes = NULL;
    int fd_out = -1, fd_err = -1;
    bool own_out = false, own_err = false;
    enum dn_format fmt;

    argv = argv_from_cmd(cmd);
    if (!argv)
        goto cleanup;
    if (setup_common(m, &o, &fmt, &out_path) < 0)
        goto cleanup;
    if (env != Py_None && !(envp = envp_from_mapping(env)))
        goto cleanup;
    if (cwd != Py_None && !PyUnicode_FSConverter(cwd, &cwd_bytes))
        goto cleanup;
    if ((fd_out = redirect_fd(out_stdout, "stdout", &own_out)) == -2)
        goto cleanup;
    if ((fd_err = redirect_fd(out_stderr, "stderr", &own_err)) == -2)
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
    if (open_output(m, out_path, fmt) < 0)
        goto cleanup;
    if (m->enable_ebpf)
        open_tracker(m);

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
        .hold_before_exec = m->tracker != NULL,
    };
    struct dn_spawned sp;
    int child_errno = 0;
    enum dn_spawn_stage stage = DN_STAGE_NONE;
    Py_BEGIN_ALLOW_THREADS
    rc = dn_spawn(&so, &sp, &child_errno, &stage);
    if (rc == 0 && m->tracker) {
        /* Registered before exec, so its very first system call is seen. */
        int trc = dn_tracker_add(m->tracker, sp.pid);
        (void)trc;
        rc = dn_spawn_release(&sp, &child_errno, &stage) == 0 ? 0 : 1;
    }
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
    m->pid = sp.pid;
    m->owns_child = true;
    m->pidfd = pidfd_open_(sp.pid);
    m->md.cmd = argv;
    argv = NULL;
    m->md.executable = raw_strdup(exe);
    if (finish_setup(m, t0_boot, spawn_rss_kb) < 0) {
        /* The command runs but cannot be read (it may have exited at once). */
        if (PyErr_ExceptionMatches(PyExc_ProcessLookupError)) {
            /* Exited before the first read: still a valid (finished) monitor. */
            PyErr_Clear();
            Py_BEGIN_ALLOW_THREADS
            pthread_mutex_lock(&m->lock);
            m->gone = true;
            reap_locked(m, true);
            pthread_mutex_unlock(&m->lock);
            Py_END_ALLOW_THREADS
            m->initialized = true;
            registry_add(m);
        } else {
            goto cleanup;
        }
    }
    ret = 0;

cleanup:
    free_strv(argv);
    free_strv(envp);
    Py_XDECREF(out_path);
    Py_XDECREF(cwd_bytes);
    if (own_out && fd_out >= 0)
        close(fd_out);
    if (own_err && fd_err >= 0 && fd_err != fd_out)
        close(fd_err);
    return ret;
}

static PyObject *monitor_from_pid(PyObject *cls, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"pid", "base_interval_ms", "max_interval_ms", "since_process_start",
                             "output_file", "output_format", "store_in_memory", "quiet",
                             "include_children", "write_metadata", "enable_ebpf", NULL};
    PyObject *pid_obj;
    struct common_opts o = {100, 1000, 0, 1, 0, 1, 0, 0, Py_None, "jsonl"};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|iipOsppppp:from_pid", kwlist, &pid_obj,
                                     &o.base_ms, &o.max_ms, &o.since_process_start,
                                     &o.output_file, &o.output_format, &o.store_in_memory,
                                     &o.quiet, &o.include_children, &o.write_metadata,
                                     &o.enable_ebpf))
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
    enum dn_format fmt;
    PyObject *out_path = NULL;
    if (setup_common(m, &o, &fmt, &out_path) < 0)
        goto fail;
    m->pid = (pid_t)pid;
    m->pidfd = pidfd_open_(m->pid);
    if (m->pidfd < 0) {
        if (errno == ESRCH)
            PyErr_Format(PyExc_ProcessLookupError, "no process with pid %ld", pid);
        else
            dn_raise_errno(errno, "cannot watch the process (pidfd_open)", NULL, NULL);
        goto fail;
    }
    if (open_output(m, out_path, fmt) < 0)
        goto fail;
    m->md.cmd = PyMem_RawCalloc(1, sizeof(char *));
    {
        /* The command line of an attached process, for metadata. */
        char buf[4096];
        int fd;
        char path[64];
        snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
        if (fd >= 0)
            close(fd);
        if (n > 0) {
            buf[n] = '\0';
            size_t count = 0;
            for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1)
                count++;
            char **v = PyMem_RawCalloc(count + 1, sizeof *v);
            if (v) {
                size_t k = 0;
                for (ssize_t i = 0; i < n && k < count; i += (ssize_t)strlen(buf + i) + 1)
                    v[k++] = raw_strdup(buf + i);
                free_strv(m->md.cmd);
                m->md.cmd = v;
            }
        }
    }
    if (m->enable_ebpf) {
        open_tracker(m);
        if (m->tracker) {
            /* Later forks are followed in the kernel; what exists now is registered. */
            dn_tracker_add_tree(m->tracker, m->pid);
        }
    }
    if (finish_setup(m, dn_boottime_secs(), 0) < 0)
        goto fail;
    Py_XDECREF(out_path);
    return (PyObject *)m;
fail:
    Py_XDECREF(out_path);
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
    stop_thread(m);
    pthread_mutex_lock(&m->lock);
    write_summary_and_close_locked(m);
    reap_locked(m, false);
    pthread_mutex_unlock(&m->lock);
    dn_collector_free(m->collector);
    dn_syscalls_close(m->syscalls);
    dn_tracker_close(m->tracker);
    dn_sample_vec_clear(&m->samples);
    dn_sample_clear(&m->latest);
    free_strv(m->md.cmd);
    PyMem_RawFree(m->md.executable);
    PyMem_RawFree(m->ebpf_error);
    if (m->pidfd >= 0)
        close(m->pidfd);
    if (m->wake_fd >= 0)
        close(m->wake_fd);
    pthread_mutex_destroy(&m->lock);
    tp->tp_free(self);
    Py_DECREF(tp);
}

/* ---- methods ----------------------------------------------------------------------- */

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
    if (m->thread_started)
        Py_RETURN_NONE; /* already sampling */
    if (m->wake_fd < 0) {
        m->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (m->wake_fd < 0)
            return dn_raise_errno(errno, "cannot create the sampler's eventfd", NULL, NULL);
    }
    lock_nogil(m);
    m->stop_requested = false;
    m->thread_running = true;
    m->start_mono_ns = dn_monotonic_ns();
    int rc = pthread_create(&m->thread, NULL, sampler_main, m);
    if (rc)
        m->thread_running = false;
    unlock(m);
    if (rc)
        return dn_raise_errno(rc, "cannot start the sampler thread", NULL, NULL);
    m->thread_started = true;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(stop_doc, "stop($self, /)\n--\n\n"
                       "Stop sampling, write the summary line to output_file and close it. The "
                       "command itself is\nnot signalled.");

static PyObject *monitor_stop(PyObject *self, PyObject *unused)
{
    (void)unused;
    MonitorObject *m = (MonitorObject *)self;
    if (check_init(m) < 0)
        return NULL;
    stop_thread(m);
    lock_nogil(m);
    reap_locked(m, false);
    write_summary_and_close_locked(m);
    unlock(m);
    m->stopped = true;
    Py_RETURN_NONE;
}

static PyObject *exit_code_locked(MonitorObject *m)
{
    if (!m->owns_child || !m->reaped || m->wait_status == -1)
        Py_RETURN_NONE;
    int st = m->wait_status;
    if (WIFEXITED(st))
        return PyLong_FromLong(WEXITSTATUS(st));
    if (WIFSIGNALED(st))
        return PyLong_FromLong(-WTERMSIG(st));
    Py_RETURN_NONE;
}

/* Waits until the root is gone. Returns 1 when it is, 0 on timeout, -1 with an exception
 * (KeyboardInterrupt) set. timeout < 0: forever. */
static int wait_gone(MonitorObject *m, double timeout)
{
    double deadline = timeout >= 0 ? dn_boottime_secs() + timeout : 0;
    for (;;) {
        lock_nogil(m);
        bool exited = root_exited(m);
        if (exited && !m->thread_running)
            reap_locked(m, true); /* no sampler to do it */
        bool done = m->owns_child ? m->reaped : exited;
        unlock(m);
        if (done)
            return 1;
        double slice = 0.1;
        if (timeout >= 0) {
            double left = deadline - dn_boottime_secs();
            if (left <= 0)
                return 0;
            if (left < slice)
                slice = left;
        }
        Py_BEGIN_ALLOW_THREADS
        struct pollfd p = {.fd = m->pidfd, .events = POLLIN};
        poll(&p, m->pidfd >= 0 ? 1 : 0, (int)(slice * 1000) + 1);
        Py_END_ALLOW_THREADS
        /* After the pidfd fired, the sampler reaps within moments; poll() returns at once
         * then, so give it a breath instead of spinning. */
        if (root_exited(m)) {
            Py_BEGIN_ALLOW_THREADS
            usleep(1000);
            Py_END_ALLOW_THREADS
        }
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
        if (timeout < 0 || timeout != timeout) {
            PyErr_SetString(PyExc_ValueError, "timeout must be None or a non-negative number");
            return NULL;
        }
    }
    int r = wait_gone(m, timeout);
    if (r < 0)
        return NULL;
    if (r == 0)
        Py_RETURN_NONE;
    lock_nogil(m);
    PyObject *code = exit_code_locked(m);
    unlock(m);
    return code;
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
        if (m->owns_child) {
            lock_nogil(m);
            bool alive = !m->reaped;
            unlock(m);
            if (alive) {
                kill(m->pid, SIGTERM);
                if (wait_gone(m, 2.0) == 0) {
                    kill(m->pid, SIGKILL);
                    wait_gone(m, 5.0);
                }
                PyErr_Clear();
            }
        }
        r = monitor_stop(self, NULL);
        Py_XDECREF(r);
        PyErr_Restore(et, ev, tb);
        return NULL;
    }
    r = monitor_stop(self, NULL);
    if (!r)
        return NULL;
    Py_DECREF(r);
    lock_nogil(m);
    PyObject *code = exit_code_locked(m);
    unlock(m);
    return code;
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
    struct dn_sample s, copy;
    int rc;
    bool have = false;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&m->lock);
    rc = collect_locked(m, &s);
    if (rc == 0) {
        record_locked(m, &s); /* adds the eBPF part */
        have = m->have_latest && dn_sample_copy(&copy, &m->latest) == 0;
    } else if (rc == -ESRCH) {
        reap_locked(m, false);
    }
    pthread_mutex_unlock(&m->lock);
    Py_END_ALLOW_THREADS
    if (rc == -ENOMEM || (rc == 0 && !have))
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
    lock_nogil(m);
    bool running = !m->gone && !m->reaped && !root_exited(m);
    unlock(m);
    return PyBool_FromLong(running);
}

static PyObject *monitor_get_pid(PyObject *self, PyObject *unused)
{
    (void)unused;
    MonitorObject *m = (MonitorObject *)self;
    if (check_init(m) < 0)
        return NULL;
    return PyLong_FromLong(m->pid);
}

static PyObject *monitor_get_metadata(PyObject *self, PyObject *unused)
{
    (void)unused;
    MonitorObject *m = (MonitorObject *)self;
    if (check_init(m) < 0)
        return NULL;
    return dn_metadata_to_dict(key_cache(self), &m->md);
}

static PyObject *monitor_get_samples(PyObject *self, PyObject *unused)
{
    (void)unused;
    MonitorObject *m = (MonitorObject *)self;
    if (check_init(m) < 0)
        return NULL;
    struct dn_key_cache *kc = key_cache(self);
    lock_nogil(m);
    PyObject *list = PyList_New((Py_ssize_t)m->samples.len);
    for (size_t i = 0; list && i < m->samples.len; i++) {
        PyObject *d = dn_sample_to_dict(kc, &m->samples.items[i]);
        if (!d) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, d);
    }
    unlock(m);
    return list;
}

static PyObject *monitor_latest_sample(PyObject *self, PyObject *unused)
{
    (void)unused;
    MonitorObject *m = (MonitorObject *)self;
    if (check_init(m) < 0)
        return NULL;
    lock_nogil(m);
    PyObject *d = m->have_latest ? dn_sample_to_dict(key_cache(self), &m->latest)
                                 : Py_NewRef(Py_None);
    unlock(m);
    return d;
}

static PyObject *monitor_clear_samples(PyObject *self, PyObject *unused)
{
    (void)unused;
    MonitorObject *m = (MonitorObject *)self;
    if (check_init(m) < 0)
        return NULL;
    lock_nogil(m);
    dn_sample_vec_clear(&m->samples);
    unlock(m);
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
        PyErr_Format(PyExc_ValueError, "unknown format '%s': use \"jsonl\", \"json\" or \"csv\"",
                     format);
        return NULL;
    }
    struct dn_writer w;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = dn_writer_open(&w, PyBytes_AS_STRING(path), fmt);
    if (rc == 0) {
        pthread_mutex_lock(&m->lock);
        dn_writer_metadata(&w, &m->md);
        for (size_t i = 0; i < m->samples.len; i++)
            dn_writer_sample(&w, &m->samples.items[i]);
        if (m->collector) {
            struct dn_summary sum;
            dn_collector_summary(m->collector, &sum);
            struct dn_ebpf_sample *x = summary_ebpf_locked(m);
            dn_writer_summary(&w, &sum, x);
            dn_ebpf_sample_free(x);
        }
        pthread_mutex_unlock(&m->lock);
        rc = dn_writer_close(&w);
    }
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
    lock_nogil(m);
    reap_locked(m, false);
    struct dn_summary sum = {0};
    if (m->collector)
        dn_collector_summary(m->collector, &sum);
    struct dn_ebpf_sample *x = summary_ebpf_locked(m);
    PyObject *d = dn_summary_to_dict(key_cache(self), &sum, x);
    dn_ebpf_sample_free(x);
    unlock(m);
    return d;
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
    return PyUnicode_FromFormat("<%s pid=%d %s%s>", Py_TYPE(self)->tp_name, (int)m->pid,
                                m->gone ? "exited" : "running",
                                m->thread_started ? ", sampling" : "");
}

static PyObject *monitor_get_ebpf_error(PyObject *self, void *closure)
{
    (void)closure;
    MonitorObject *m = (MonitorObject *)self;
    if (!m->ebpf_error)
        Py_RETURN_NONE;
    return PyUnicode_FromString(m->ebpf_error);
}

static PyMethodDef monitor_methods[] = {
    {"from_pid", (PyCFunction)(void (*)(void))monitor_from_pid,
     METH_VARARGS | METH_KEYWORDS | METH_CLASS,
     PyDoc_STR("from_pid(pid, base_interval_ms=100, max_interval_ms=1000, "
               "since_process_start=False, output_file=None, output_format='jsonl', "
               "store_in_memory=True, quiet=False, include_children=True, "
               "write_metadata=False, enable_ebpf=False)\n--\n\n"
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
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(monitor_doc,
             "ProcessMonitor(cmd, base_interval_ms=100, max_interval_ms=1000, "
             "since_process_start=False,\n               output_file=None, "
             "output_format='jsonl', store_in_memory=True, quiet=False,\n               "
             "include_children=True, write_metadata=False, enable_ebpf=False, *,\n"
             "               stdout=None, stderr=None, start_new_session=False, cwd=None, "
             "env=None)\n--\n\n"
             "Start cmd (a list of strings) and monitor its process tree with a native "
             "sampler thread.\n\n"
             "Raises FileNotFoundError/PermissionError when cmd cannot be executed, "
             "ValueError for an\nempty cmd, bad intervals or an unknown output_format, and "
             "OSError when output_file\ncannot be written. stdout/stderr: None (inherit), a "
             "path, an open file, a file\ndescriptor, or subprocess.DEVNULL.");

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
    for (MonitorObject *m = registry_head; m; m = (MonitorObject *)m->reg_next)
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
    /* In the child of os.fork(): the sampler threads were not copied, a lock may have
     * been held by one of them, and the command and output files belong to the parent.
     * Each monitor is left readable but finished, so nothing joins a thread that does
     * not exist, waits on a lock nobody will release, or writes the parent's summary. */
    for (MonitorObject *m = registry_head; m; m = (MonitorObject *)m->reg_next) {
        pthread_mutex_init(&m->lock, NULL);
        m->thread_started = false;
        m->thread_running = false;
        m->stop_requested = true;
        m->stopped = true;
        m->owns_child = false;
        if (!m->writer_closed) {
            m->writer_closed = true;
            dn_writer_close(&m->writer); /* flushed after every record: writes nothing */
        }
    }
    Py_RETURN_NONE;
}
