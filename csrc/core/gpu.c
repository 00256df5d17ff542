/* NVML, loaded with dlopen. The few types and prototypes used are declared here from
 * NVIDIA's nvml.h, so building needs no NVIDIA header or library. */
#include "core/gpu.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/procfs.h" /* dn_monotonic_ns, dn_now_ms */
#include "core/schema.h"

/* ---- the NVML ABI ------------------------------------------------------------------ */

typedef int nvml_ret; /* nvmlReturn_t, an enum */
typedef void *nvml_device; /* nvmlDevice_t, an opaque pointer */

enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_NOT_FOUND = 6,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_MEMORY = 20,
    NVML_TEMPERATURE_GPU = 0, /* nvmlTemperatureSensors_t */
};

struct nvml_utilization { /* nvmlUtilization_t */
    unsigned int gpu, memory;
};

struct nvml_memory { /* nvmlMemory_t */
    unsigned long long total, free, used;
};

struct nvml_process_v1 { /* nvmlProcessInfo_v1_t: the unversioned functions */
    unsigned int pid;
    unsigned long long used_gpu_memory; /* NVML_VALUE_NOT_AVAILABLE (~0ULL): unknown */
};

struct nvml_process_v2 { /* nvmlProcessInfo_v2_t: the _v2 functions */
    unsigned int pid;
    unsigned long long used_gpu_memory;
    unsigned int gpu_instance_id, compute_instance_id;
};

struct nvml_process_util { /* nvmlProcessUtilizationSample_t */
    unsigned int pid;
    unsigned long long timestamp; /* CPU timestamp, µs */
    unsigned int sm_util, mem_util, enc_util, dec_util;
};

_Static_assert(sizeof(struct nvml_process_v1) == 16, "nvmlProcessInfo_v1_t is 16 bytes");
_Static_assert(sizeof(struct nvml_process_v2) == 24, "nvmlProcessInfo_v2_t is 24 bytes");
_Static_assert(sizeof(struct nvml_process_util) == 32, "nvmlProcessUtilizationSample_t is 32 bytes");

/* Process lists are read into a buffer with this many bytes per entry, more than any
 * nvmlProcessInfo layout has had (the short-lived one of CUDA 12.0 was 32), so a driver
 * whose layout differs from the one assumed can never write past the buffer. */
#define DN_PROC_SLOT 48

typedef nvml_ret (*fn_void)(void);
typedef const char *(*fn_error_string)(nvml_ret);
typedef nvml_ret (*fn_count)(unsigned int *);
typedef nvml_ret (*fn_handle)(unsigned int, nvml_device *);
typedef nvml_ret (*fn_name)(nvml_device, char *, unsigned int);
typedef nvml_ret (*fn_utilization)(nvml_device, struct nvml_utilization *);
typedef nvml_ret (*fn_memory)(nvml_device, struct nvml_memory *);
typedef nvml_ret (*fn_temperature)(nvml_device, int, unsigned int *);
typedef nvml_ret (*fn_power)(nvml_device, unsigned int *);
typedef nvml_ret (*fn_processes)(nvml_device, unsigned int *, void *);
typedef nvml_ret (*fn_process_util)(nvml_device, struct nvml_process_util *, unsigned int *,
                                    unsigned long long);

struct process_api {
    fn_processes fn;
    const char *name;
    size_t stride; /* bytes per entry of the layout this entry point writes */
};

struct nvml_api {
    fn_void init, shutdown;
    fn_error_string error_string;
    fn_count count;
    fn_handle handle;
    fn_name name;
    fn_utilization utilization;
    fn_memory memory;
    fn_temperature temperature;
    fn_power power;
    struct process_api compute, graphics;
    fn_process_util process_util;
};

/* ---- state ------------------------------------------------------------------------- */

struct util_seen {
    pid_t pid;
    unsigned int sm, mem;
    unsigned long long ts;
};

struct gpu_device {
    nvml_device handle;
    uint32_t index;
    char name[DN_GPU_NAME_LEN];
    /* NVML's clock, for the utilization window: the wall clock in µs (what drivers use),
     * else the newest sample timestamp it returned and our monotonic time when it did. */
    bool wall_clock;
    unsigned long long anchor_ts;
    uint64_t anchor_ns;
    uint64_t prev_read_ns; /* monotonic time of the previous read, 0 before */
    uint64_t util_call_ns; /* ... and of the last nvmlDeviceGetProcessUtilization call */
    nvml_ret util_rc;      /* what that call returned */
    /* The tree's samples seen in the window: NVML returns only each process's newest,
     * so the ones before it are kept here to take the mean over the window. */
    struct util_seen *seen;
    size_t nseen, seen_cap;
    bool memory_ok, util_ok;      /* this read's per-process figures */
};

/* Running sums of one process on one device while a read is folded. */
struct proc_acc {
    bool listed; /* in a process list: memory is NVML's figure */
    uint64_t sm_sum, mem_sum, n;
};

struct dn_gpu {
    struct nvml_api f;
    uint32_t ndev;
    struct gpu_device *dev;
    unsigned char *pbuf; /* process-list entries, DN_PROC_SLOT bytes each */
    size_t pcap;
    struct nvml_process_util *ubuf;
    size_t ucap;
    pid_t *pids; /* the tree's pids, sorted */
    size_t pids_cap;
    size_t npids;
    struct dn_gpu_proc *procs; /* the read being built */
    struct proc_acc *acc;
    size_t nprocs, procs_cap;
};

/* ---- errors ------------------------------------------------------------------------ */

static const char *nvml_error(const struct dn_gpu *g, nvml_ret r)
{
    const char *s = g->f.error_string ? g->f.error_string(r) : NULL;
    if (s && *s)
        return s;
    switch (r) {
    case 1: return "Uninitialized";
    case 2: return "Invalid Argument";
    case 3: return "Not Supported";
    case 4: return "Insufficient Permissions";
    case 9: return "Driver Not Loaded";
    case 12: return "NVML Shared Library Not Found";
    case 13: return "Function Not Found";
    case 15: return "GPU is lost";
    case 18: return "RM has detected an NVML/RM version mismatch";
    default: return "Unknown Error";
    }
}

static void say(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Notes a failed call in a read's error sentence (the first few; the rest are counted). */
struct read_errors {
    char text[512];
    int n;
};

static void read_error(struct read_errors *e, const struct dn_gpu *g, const char *call,
                       uint32_t index, nvml_ret r)
{
    e->n++;
    size_t len = strlen(e->text);
    if (e->n > 3 || len + 8 >= sizeof e->text)
        return;
    snprintf(e->text + len, sizeof e->text - len, "%s%s on GPU %u failed: %s (NVML error %d)",
             len ? "; " : "", call, index, nvml_error(g, r), r);
}

/* ---- loading ----------------------------------------------------------------------- */

/* The first of names that the library exports, and which one it was. */
static void *find_symbol(void *lib, const char *const *names, const char **which)
{
    for (; *names; names++) {
        void *p = dlsym(lib, *names);
        if (p) {
            if (which)
                *which = *names;
            return p;
        }
    }
    return NULL;
}

#define NAMES(...) ((const char *const[]){__VA_ARGS__, NULL})

static void *load_library(char *err, size_t errlen, const char **path_out)
{
    const char *path = getenv("DENET_NVML_LIBRARY");
    if (!path || !*path)
        path = "libnvidia-ml.so.1";
    *path_out = path;
    /* Never dlclose'd: NVML keeps state of its own, and dlopen of the same file again
     * only takes another reference. */
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *why = dlerror();
        say(err, errlen,
            "cannot load the NVIDIA management library %s (%s): install the NVIDIA driver, "
            "or set DENET_NVML_LIBRARY to the path of libnvidia-ml.so.1",
            path, why ? why : "not found");
    }
    return lib;
}

static int resolve(struct nvml_api *f, void *lib, const char *path, char *err, size_t errlen)
{
    memset(f, 0, sizeof *f);
    const char *missing = NULL;
#define REQUIRE(field, type, ...)                                                          \
    do {                                                                                   \
        f->field = (type)find_symbol(lib, NAMES(__VA_ARGS__), NULL);                       \
        if (!f->field && !missing)                                                         \
            missing = NAMES(__VA_ARGS__)[0];                                               \
    } while (0)
    REQUIRE(init, fn_void, "nvmlInit_v2", "nvmlInit");
    REQUIRE(shutdown, fn_void, "nvmlShutdown");
    REQUIRE(count, fn_count, "nvmlDeviceGetCount_v2", "nvmlDeviceGetCount");
    REQUIRE(handle, fn_handle, "nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex");
#undef REQUIRE
    if (missing) {
        say(err, errlen,
            "%s has no %s: it is not the NVIDIA management library, or one too old for denet",
            path, missing);
        return -ENOSYS;
    }
    /* The rest may be missing (old drivers): their figures are then null. */
    f->error_string = (fn_error_string)find_symbol(lib, NAMES("nvmlErrorString"), NULL);
    f->name = (fn_name)find_symbol(lib, NAMES("nvmlDeviceGetName"), NULL);
    f->utilization = (fn_utilization)find_symbol(lib, NAMES("nvmlDeviceGetUtilizationRates"), NULL);
    f->memory = (fn_memory)find_symbol(lib, NAMES("nvmlDeviceGetMemoryInfo"), NULL);
    f->temperature = (fn_temperature)find_symbol(lib, NAMES("nvmlDeviceGetTemperature"), NULL);
    f->power = (fn_power)find_symbol(lib, NAMES("nvmlDeviceGetPowerUsage"), NULL);
    f->process_util =
        (fn_process_util)find_symbol(lib, NAMES("nvmlDeviceGetProcessUtilization"), NULL);
    /* The process lists: _v2 writes nvmlProcessInfo_v2_t, whose layout never changed.
     * _v3's nvmlProcessInfo_t gained a field in CUDA 12.0 and lost it again in 12.2, so
     * it is only the fallback; the unversioned one writes the v1 layout. */
    static const struct {
        const char *name;
        size_t stride;
    } compute[] = {{"nvmlDeviceGetComputeRunningProcesses_v2", sizeof(struct nvml_process_v2)},
                   {"nvmlDeviceGetComputeRunningProcesses_v3", sizeof(struct nvml_process_v2)},
                   {"nvmlDeviceGetComputeRunningProcesses", sizeof(struct nvml_process_v1)}},
      graphics[] = {{"nvmlDeviceGetGraphicsRunningProcesses_v2", sizeof(struct nvml_process_v2)},
                    {"nvmlDeviceGetGraphicsRunningProcesses_v3", sizeof(struct nvml_process_v2)},
                    {"nvmlDeviceGetGraphicsRunningProcesses", sizeof(struct nvml_process_v1)}};
    for (size_t i = 0; i < 3 && !f->compute.fn; i++) {
        f->compute.fn = (fn_processes)dlsym(lib, compute[i].name);
        f->compute.name = compute[i].name;
        f->compute.stride = compute[i].stride;
    }
    for (size_t i = 0; i < 3 && !f->graphics.fn; i++) {
        f->graphics.fn = (fn_processes)dlsym(lib, graphics[i].name);
        f->graphics.name = graphics[i].name;
        f->graphics.stride = graphics[i].stride;
    }
    return 0;
}

static void gpu_free(struct dn_gpu *g)
{
    if (!g)
        return;
    for (uint32_t i = 0; g->dev && i < g->ndev; i++)
        free(g->dev[i].seen);
    free(g->dev);
    free(g->pbuf);
    free(g->ubuf);
    free(g->pids);
    free(g->procs);
    free(g->acc);
    free(g);
}

int dn_gpu_open(struct dn_gpu **out, char *err, size_t errlen)
{
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    const char *path;
    void *lib = load_library(err, errlen, &path);
    if (!lib)
        return -ENOENT;
    struct dn_gpu *g = calloc(1, sizeof *g);
    if (!g) {
        say(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int rc = resolve(&g->f, lib, path, err, errlen);
    if (rc) {
        gpu_free(g);
        return rc;
    }
    nvml_ret r = g->f.init();
    if (r != NVML_SUCCESS) {
        say(err, errlen,
            "nvmlInit failed: %s (NVML error %d): is the NVIDIA kernel driver loaded, and "
            "may this user open /dev/nvidia*? `nvidia-smi` says",
            nvml_error(g, r), r);
        gpu_free(g);
        return -EIO;
    }
    unsigned int n = 0;
    r = g->f.count(&n);
    if (r != NVML_SUCCESS || n == 0) {
        if (r != NVML_SUCCESS)
            say(err, errlen, "nvmlDeviceGetCount failed: %s (NVML error %d)", nvml_error(g, r), r);
        else
            say(err, errlen, "NVML found no NVIDIA GPU on this machine");
        g->f.shutdown();
        gpu_free(g);
        return r != NVML_SUCCESS ? -EIO : -ENODEV;
    }
    g->dev = calloc(n, sizeof *g->dev);
    if (!g->dev) {
        g->f.shutdown();
        gpu_free(g);
        say(err, errlen, "out of memory");
        return -ENOMEM;
    }
    /* A device that cannot be opened (another container's, say) is left out, as
     * nvidia-smi does; with none left there is nothing to monitor. */
    nvml_ret first_fail = NVML_SUCCESS;
    for (unsigned int i = 0; i < n; i++) {
        struct gpu_device *d = &g->dev[g->ndev];
        r = g->f.handle(i, &d->handle);
        if (r != NVML_SUCCESS) {
            if (first_fail == NVML_SUCCESS)
                first_fail = r;
            continue;
        }
        d->index = i;
        if (!g->f.name || g->f.name(d->handle, d->name, sizeof d->name) != NVML_SUCCESS)
            snprintf(d->name, sizeof d->name, "GPU %u", i);
        d->name[sizeof d->name - 1] = '\0';
        g->ndev++;
    }
    if (!g->ndev) {
        say(err, errlen, "nvmlDeviceGetHandleByIndex failed for all %u GPUs: %s (NVML error %d)",
            n, nvml_error(g, first_fail), first_fail);
        g->f.shutdown();
        gpu_free(g);
        return -EIO;
    }
    *out = g;
    return 0;
}

void dn_gpu_close(struct dn_gpu *g)
{
    if (!g)
        return;
    g->f.shutdown(); /* NVML counts init/shutdown pairs: other users stay initialised */
    gpu_free(g);
}

void dn_gpu_abandon(struct dn_gpu *g)
{
    gpu_free(g);
}

uint32_t dn_gpu_device_count(const struct dn_gpu *g)
{
    return g ? g->ndev : 0;
}

/* ---- reading ----------------------------------------------------------------------- */

static int cmp_pid(const void *a, const void *b)
{
    pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
    return x < y ? -1 : x > y;
}

static bool in_tree(const struct dn_gpu *g, unsigned int pid)
{
    pid_t key = (pid_t)pid;
    return g->npids && bsearch(&key, g->pids, g->npids, sizeof *g->pids, cmp_pid);
}

/* The entry of (pid, device) in the read being built, added if new; SIZE_MAX (and *oom)
 * when out of memory. */
static size_t find_proc(struct dn_gpu *g, pid_t pid, uint32_t index, bool *oom)
{
    for (size_t i = 0; i < g->nprocs; i++)
        if (g->procs[i].pid == pid && g->procs[i].device_index == index)
            return i;
    if (g->nprocs == g->procs_cap) {
        size_t ncap = g->procs_cap ? g->procs_cap * 2 : 16;
        struct dn_gpu_proc *p = realloc(g->procs, ncap * sizeof *p);
        if (!p) {
            *oom = true;
            return SIZE_MAX;
        }
        g->procs = p;
        struct proc_acc *a = realloc(g->acc, ncap * sizeof *a);
        if (!a) {
            *oom = true;
            return SIZE_MAX;
        }
        g->acc = a;
        g->procs_cap = ncap;
    }
    size_t i = g->nprocs++;
    memset(&g->procs[i], 0, sizeof g->procs[i]);
    memset(&g->acc[i], 0, sizeof g->acc[i]);
    g->procs[i].pid = pid;
    g->procs[i].device_index = index;
    g->procs[i].memory = DN_U64_NONE;
    return i;
}

/* Calls a process-list function with a buffer that grows until the list fits. */
static nvml_ret list_processes(struct dn_gpu *g, const struct process_api *api, nvml_device h,
                               unsigned int *n)
{
    for (int attempt = 0; attempt < 6; attempt++) {
        if (!g->pcap) {
            unsigned char *b = malloc(32 * DN_PROC_SLOT);
            if (!b)
                return NVML_ERROR_MEMORY;
            g->pbuf = b;
            g->pcap = 32;
        }
        unsigned int count = (unsigned int)g->pcap;
        nvml_ret r = api->fn(h, &count, g->pbuf);
        if (r == NVML_SUCCESS) {
            *n = count <= g->pcap ? count : (unsigned int)g->pcap;
            return r;
        }
        if (r != NVML_ERROR_INSUFFICIENT_SIZE)
            return r;
        /* Processes may start between two calls: leave some room. */
        size_t want = count > g->pcap ? (size_t)count + 16 : g->pcap * 2;
        if (want > 1u << 20)
            return r;
        unsigned char *b = realloc(g->pbuf, want * DN_PROC_SLOT);
        if (!b)
            return NVML_ERROR_MEMORY;
        g->pbuf = b;
        g->pcap = want;
    }
    return NVML_ERROR_INSUFFICIENT_SIZE;
}

/* Folds one process list of device d into the read: memory of the tree's processes. A
 * process with both a compute and a graphics context is one process: the larger figure
 * (NVML gives the same one in both lists). */
static nvml_ret fold_list(struct dn_gpu *g, const struct process_api *api, struct gpu_device *d,
                          bool *oom)
{
    unsigned int n = 0;
    nvml_ret r = list_processes(g, api, d->handle, &n);
    if (r != NVML_SUCCESS)
        return r;
    for (unsigned int k = 0; k < n; k++) {
        const unsigned char *e = g->pbuf + (size_t)k * api->stride;
        unsigned int pid;
        unsigned long long mem;
        memcpy(&pid, e + offsetof(struct nvml_process_v1, pid), sizeof pid);
        memcpy(&mem, e + offsetof(struct nvml_process_v1, used_gpu_memory), sizeof mem);
        if (!in_tree(g, pid))
            continue;
        size_t i = find_proc(g, (pid_t)pid, d->index, oom);
        if (i == SIZE_MAX)
            return NVML_ERROR_MEMORY;
        uint64_t *m = &g->procs[i].memory;
        if (!g->acc[i].listed || *m == DN_U64_NONE || (mem != DN_U64_NONE && mem > *m))
            *m = mem; /* NVML_VALUE_NOT_AVAILABLE is ~0ULL, which is DN_U64_NONE */
        g->acc[i].listed = true;
    }
    return NVML_SUCCESS;
}

/* The utilization window: at least a second (NVML's per-process samples come about
 * every 200 ms for a busy process, but not at every read: a process as busy as another
 * can go a second without one), and at least the time since the previous read, so
 * that no sample is skipped at long intervals. */
#define UTIL_WINDOW_MIN_US 1000000ULL
/* nvmlDeviceGetProcessUtilization costs 1.6 ms on an H100 (every other call of a read
 * together about 80 µs): it is called at most this often, and only while a process of
 * the tree holds a context on the device (one that holds none runs nothing there). */
#define UTIL_CALL_EVERY_NS 250000000ULL
#define UTIL_SEEN_MAX 65536

/* Adds the tree's samples of one NVML call that are new (a sample is returned by every
 * call until a newer one replaces it). */
static nvml_ret remember_samples(struct dn_gpu *g, struct gpu_device *d, unsigned int n,
                                 unsigned long long since)
{
    for (unsigned int k = 0; k < n; k++) {
        const struct nvml_process_util *u = &g->ubuf[k];
        if (u->timestamp <= since || !in_tree(g, u->pid))
            continue;
        bool known = false;
        for (size_t j = 0; j < d->nseen && !known; j++)
            known = d->seen[j].pid == (pid_t)u->pid && d->seen[j].ts == u->timestamp;
        if (known)
            continue;
        if (d->nseen == d->seen_cap) {
            if (d->seen_cap >= UTIL_SEEN_MAX)
                return NVML_SUCCESS; /* thousands of GPU processes in one tree: enough */
            size_t ncap = d->seen_cap ? d->seen_cap * 2 : 32;
            struct util_seen *p = realloc(d->seen, ncap * sizeof *p);
            if (!p)
                return NVML_ERROR_MEMORY;
            d->seen = p;
            d->seen_cap = ncap;
        }
        d->seen[d->nseen++] = (struct util_seen){(pid_t)u->pid, u->sm_util, u->mem_util, u->timestamp};
    }
    return NVML_SUCCESS;
}

/* Folds, per process of the tree, the mean of its utilization samples of the window
 * that ends now. NVML stamps samples in µs of the wall clock; should a driver use
 * another clock, "now" on it is the newest timestamp it returned, advanced by the time
 * elapsed since. A process with no sample in the window had none worth reporting
 * ("one sample per process that had some non-zero utilization"): 0. on_gpu: a process
 * of the tree holds a context on d, or the lists could not say. */
static nvml_ret fold_utilization(struct dn_gpu *g, struct gpu_device *d, bool on_gpu, bool *oom)
{
    uint64_t now = (uint64_t)dn_monotonic_ns();
    unsigned long long wall = (unsigned long long)dn_now_ms() * 1000ULL;
    unsigned long long window = UTIL_WINDOW_MIN_US;
    if (d->prev_read_ns && (now - d->prev_read_ns) / 1000 > window)
        window = (now - d->prev_read_ns) / 1000;
    d->prev_read_ns = now;
    unsigned long long est_now = d->wall_clock ? wall
                                 : d->anchor_ts ? d->anchor_ts + (now - d->anchor_ns) / 1000 : 0;
    unsigned long long since = est_now > window ? est_now - window : 0;

    if (on_gpu && (!d->util_call_ns || now - d->util_call_ns >= UTIL_CALL_EVERY_NS)) {
        d->util_call_ns = now;
        unsigned int n = 0;
        nvml_ret r = NVML_ERROR_INSUFFICIENT_SIZE;
        for (int attempt = 0; attempt < 6 && r == NVML_ERROR_INSUFFICIENT_SIZE; attempt++) {
            if (attempt > 0 || !g->ucap) {
                size_t want = n > g->ucap ? (size_t)n + 16 : (g->ucap ? g->ucap * 2 : 64);
                if (want > 1u << 20)
                    break;
                struct nvml_process_util *b = realloc(g->ubuf, want * sizeof *b);
                if (!b)
                    return NVML_ERROR_MEMORY;
                g->ubuf = b;
                g->ucap = want;
            }
            n = (unsigned int)g->ucap;
            r = g->f.process_util(d->handle, g->ubuf, &n, since);
        }
        if (r == NVML_ERROR_NOT_FOUND) { /* no sample in the window: nothing ran */
            r = NVML_SUCCESS;
            n = 0;
        }
        d->util_rc = r;
        if (r != NVML_SUCCESS)
            return r;
        if (n > g->ucap)
            n = (unsigned int)g->ucap;
        unsigned long long newest = 0;
        for (unsigned int k = 0; k < n; k++)
            if (g->ubuf[k].timestamp > newest)
                newest = g->ubuf[k].timestamp;
        if (n && !d->anchor_ts && newest + 86400000000ULL > wall && newest < wall + 60000000ULL)
            d->wall_clock = true; /* the first samples are within a day of the wall clock */
        if (d->wall_clock) {
            est_now = wall;
        } else if (n && newest >= est_now) { /* the first samples, or NVML's clock ran ahead */
            d->anchor_ts = est_now = newest;
            d->anchor_ns = now;
        }
        since = est_now > window ? est_now - window : 0; /* the first call asked for all */
        nvml_ret rr = remember_samples(g, d, n, since);
        if (rr != NVML_SUCCESS)
            return rr;
    } else if (d->util_rc != NVML_SUCCESS) {
        return d->util_rc; /* not called this time: what the last call said */
    }

    size_t keep = 0;
    for (size_t j = 0; j < d->nseen; j++) {
        const struct util_seen *u = &d->seen[j];
        if (u->ts <= since || !in_tree(g, (unsigned int)u->pid))
            continue; /* out of the window, or the process left the tree */
        d->seen[keep++] = *u;
        size_t i = find_proc(g, u->pid, d->index, oom);
        if (i == SIZE_MAX)
            return NVML_ERROR_MEMORY;
        struct proc_acc *a = &g->acc[i];
        a->sm_sum += u->sm;
        a->mem_sum += u->mem;
        a->n++;
    }
    d->nseen = keep;
    return NVML_SUCCESS;
}

/* A device-wide call; a function the library lacks reads as not supported. */
#define READ_FIGURE(fn, ...) ((fn) ? (fn)(__VA_ARGS__) : NVML_ERROR_NOT_SUPPORTED)

/* The device-wide figures: null when not supported, null and an error otherwise. */
static void device_figures(const struct dn_gpu *g, const struct gpu_device *d,
                           struct dn_gpu_device *o, struct read_errors *errs)
{
    o->index = d->index;
    memcpy(o->name, d->name, sizeof o->name);
    o->util_gpu = o->util_memory = o->memory_total = o->memory_used = o->memory_free =
        o->temperature = o->power_mw = DN_U64_NONE;

    struct nvml_utilization u;
    nvml_ret r = READ_FIGURE(g->f.utilization, d->handle, &u);
    if (r == NVML_SUCCESS) {
        o->util_gpu = u.gpu;
        o->util_memory = u.memory;
    } else if (r != NVML_ERROR_NOT_SUPPORTED) {
        read_error(errs, g, "nvmlDeviceGetUtilizationRates", d->index, r);
    }
    struct nvml_memory m;
    r = READ_FIGURE(g->f.memory, d->handle, &m);
    if (r == NVML_SUCCESS) {
        o->memory_total = m.total;
        o->memory_used = m.used;
        o->memory_free = m.free;
    } else if (r != NVML_ERROR_NOT_SUPPORTED) {
        read_error(errs, g, "nvmlDeviceGetMemoryInfo", d->index, r);
    }
    unsigned int v;
    r = READ_FIGURE(g->f.temperature, d->handle, NVML_TEMPERATURE_GPU, &v);
    if (r == NVML_SUCCESS)
        o->temperature = v;
    else if (r != NVML_ERROR_NOT_SUPPORTED)
        read_error(errs, g, "nvmlDeviceGetTemperature", d->index, r);
    r = READ_FIGURE(g->f.power, d->handle, &v);
    if (r == NVML_SUCCESS)
        o->power_mw = v;
    else if (r != NVML_ERROR_NOT_SUPPORTED)
        read_error(errs, g, "nvmlDeviceGetPowerUsage", d->index, r);
}

static int cmp_proc(const void *a, const void *b)
{
    const struct dn_gpu_proc *x = a, *y = b;
    if (x->device_index != y->device_index)
        return x->device_index < y->device_index ? -1 : 1;
    return x->pid < y->pid ? -1 : x->pid > y->pid;
}

static uint64_t mean(uint64_t sum, uint64_t n)
{
    return n ? (sum + n / 2) / n : 0;
}

int dn_gpu_read(struct dn_gpu *g, const pid_t *pids, size_t npids, struct dn_gpu_sample **out)
{
    *out = NULL;
    struct dn_gpu_sample *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->enabled = true;
    s->devices = calloc(g->ndev, sizeof *s->devices);
    if (!s->devices)
        goto oom;
    s->ndevices = g->ndev;
    if (npids > g->pids_cap) {
        pid_t *p = realloc(g->pids, npids * sizeof *p);
        if (!p)
            goto oom;
        g->pids = p;
        g->pids_cap = npids;
    }
    if (npids)
        memcpy(g->pids, pids, npids * sizeof *pids);
    g->npids = npids;
    qsort(g->pids, npids, sizeof *g->pids, cmp_pid);
    g->nprocs = 0;

    struct read_errors errs = {.n = 0};
    bool oom = false;
    s->memory_known = s->util_known = true;
    for (uint32_t i = 0; i < g->ndev; i++) {
        struct gpu_device *d = &g->dev[i];
        device_figures(g, d, &s->devices[i], &errs);

        /* Memory of the tree's processes: compute and graphics contexts. */
        nvml_ret rc = g->f.compute.fn ? fold_list(g, &g->f.compute, d, &oom)
                                      : NVML_ERROR_NOT_SUPPORTED;
        nvml_ret rg = g->f.graphics.fn ? fold_list(g, &g->f.graphics, d, &oom)
                                       : NVML_ERROR_NOT_SUPPORTED;
        if (oom)
            goto oom;
        if (rc != NVML_SUCCESS && rc != NVML_ERROR_NOT_SUPPORTED)
            read_error(&errs, g, g->f.compute.name, d->index, rc);
        if (rg != NVML_SUCCESS && rg != NVML_ERROR_NOT_SUPPORTED)
            read_error(&errs, g, g->f.graphics.name, d->index, rg);
        /* Both lists are needed to know a process holds no memory; a list the device
         * does not support has nothing in it. */
        d->memory_ok = (rc == NVML_SUCCESS || rg == NVML_SUCCESS) &&
                       (rc == NVML_SUCCESS || rc == NVML_ERROR_NOT_SUPPORTED) &&
                       (rg == NVML_SUCCESS || rg == NVML_ERROR_NOT_SUPPORTED);

        /* SM and memory utilization of the tree's processes over the last second. */
        bool on_gpu = !d->memory_ok;
        for (size_t k = 0; k < g->nprocs && !on_gpu; k++)
            on_gpu = g->procs[k].device_index == d->index && g->acc[k].listed;
        nvml_ret ru = g->f.process_util ? fold_utilization(g, d, on_gpu, &oom)
                                        : NVML_ERROR_NOT_SUPPORTED;
        if (oom)
            goto oom;
        if (ru != NVML_SUCCESS && ru != NVML_ERROR_NOT_SUPPORTED)
            read_error(&errs, g, "nvmlDeviceGetProcessUtilization", d->index, ru);
        d->util_ok = ru == NVML_SUCCESS;
        s->memory_known &= d->memory_ok;
        s->util_known &= d->util_ok;
    }

    for (size_t k = 0; k < g->nprocs; k++) {
        struct dn_gpu_proc *p = &g->procs[k];
        const struct proc_acc *a = &g->acc[k];
        const struct gpu_device *d = NULL;
        for (uint32_t i = 0; i < g->ndev && !d; i++)
            if (g->dev[i].index == p->device_index)
                d = &g->dev[i];
        if (!d || !d->memory_ok) /* a list could not be read: a part may be missing */
            p->memory = DN_U64_NONE;
        else if (!a->listed) /* in no list: it holds no memory there */
            p->memory = 0;
        p->gpu_util = d && d->util_ok ? mean(a->sm_sum, a->n) : DN_U64_NONE;
        p->memory_util = d && d->util_ok ? mean(a->mem_sum, a->n) : DN_U64_NONE;
    }
    if (g->nprocs) {
        qsort(g->procs, g->nprocs, sizeof *g->procs, cmp_proc);
        s->procs = malloc(g->nprocs * sizeof *s->procs);
        if (!s->procs)
            goto oom;
        memcpy(s->procs, g->procs, g->nprocs * sizeof *s->procs);
        s->nprocs = (uint32_t)g->nprocs;
    }
    if (errs.n) {
        if (errs.n > 3) {
            size_t len = strlen(errs.text);
            snprintf(errs.text + len, sizeof errs.text - len, "; %d more failed calls",
                     errs.n - 3);
        }
        if (!(s->error = strdup(errs.text)))
            goto oom;
    }
    *out = s;
    return 0;
oom:
    dn_gpu_sample_free(s);
    return -ENOMEM;
}
