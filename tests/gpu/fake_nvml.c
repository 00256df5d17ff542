/* A fake libnvidia-ml.so for the test suite: only the functions denet calls, with the
 * ABI of NVIDIA's nvml.h (written out here; no NVIDIA header is needed). Built by
 * tests/test_gpu.py with gcc and loaded through DENET_NVML_LIBRARY.
 *
 * What it reports comes from the text file named by FAKE_NVML_CONFIG (read when
 * nvmlInit is called, and the file re-read at every call, so a test can change the
 * figures while a monitor runs: write a new file and rename it over the old one):
 *
 *   init CODE                      nvmlInit returns CODE (9: driver not loaded)
 *   count_fail CODE                nvmlDeviceGetCount returns CODE
 *   device TOTAL USED UTIL_GPU UTIL_MEM TEMP POWER_MW NAME...   one device (bytes, %, C, mW)
 *   compute DEV PID MEM            a compute process (MEM: bytes, or "na")
 *   graphics DEV PID MEM           a graphics process
 *   util DEV PID SM MEM [AGE_MS]   a process-utilization sample (one per line); without
 *                                  AGE_MS each call stamps it now (oldest line first, 1 µs
 *                                  apart), with it the file's mtime less AGE_MS
 *   clock_offset SECS              timestamps SECS behind the wall clock (a driver whose
 *                                  samples are stamped with another clock)
 *   no_process_util                nvmlDeviceGetProcessUtilization is not supported
 *   fail FUNCTION CODE             FUNCTION returns CODE
 *
 * Calls made before nvmlInit or after the last nvmlShutdown return
 * NVML_ERROR_UNINITIALIZED, as the real library does. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>

#define EXPORT __attribute__((visibility("default")))

typedef int nvmlReturn_t;
typedef struct fake_device *nvmlDevice_t;

enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_NOT_FOUND = 6,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
};

typedef struct {
    unsigned int gpu, memory;
} nvmlUtilization_t;

typedef struct {
    unsigned long long total, free, used;
} nvmlMemory_t;

typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_v2_t;

typedef struct {
    unsigned int pid;
    unsigned long long timeStamp;
    unsigned int smUtil, memUtil, encUtil, decUtil;
} nvmlProcessUtilizationSample_t;

#define MAX_DEVICES 8
#define MAX_PROCS 256
#define MAX_FAILS 16

struct fake_device {
    unsigned long long total, used;
    unsigned int util_gpu, util_mem, temp, power;
    char name[96];
};

struct fake_proc {
    unsigned int dev, pid, sm, mem;
    int age_ms; /* -1: stamped at each call */
    unsigned long long bytes;
    char kind; /* 'C', 'G' or 'U' (utilization sample) */
};

struct config {
    int init_code, count_fail, no_process_util;
    unsigned long long mtime_us, clock_offset_us;
    unsigned int ndev;
    struct fake_device dev[MAX_DEVICES];
    unsigned int nprocs;
    struct fake_proc procs[MAX_PROCS];
    unsigned int nfails;
    struct {
        char fn[64];
        int code;
    } fails[MAX_FAILS];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char config_path[4096];
static struct config cfg;
static struct fake_device handles[MAX_DEVICES]; /* handle i is &handles[i] */
static int initialized;

static void load(void)
{
    memset(&cfg, 0, sizeof cfg);
    FILE *f = config_path[0] ? fopen(config_path, "r") : NULL;
    if (!f)
        return;
    struct stat st;
    if (fstat(fileno(f), &st) == 0)
        cfg.mtime_us = (unsigned long long)st.st_mtim.tv_sec * 1000000ULL +
                       (unsigned long long)st.st_mtim.tv_nsec / 1000ULL;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char word[64], rest[448] = "";
        if (sscanf(line, "%63s %447[^\n]", word, rest) < 1 || word[0] == '#')
            continue;
        if (!strcmp(word, "init")) {
            cfg.init_code = atoi(rest);
        } else if (!strcmp(word, "count_fail")) {
            cfg.count_fail = atoi(rest);
        } else if (!strcmp(word, "clock_offset")) {
            cfg.clock_offset_us = strtoull(rest, NULL, 10) * 1000000ULL;
        } else if (!strcmp(word, "no_process_util")) {
            cfg.no_process_util = 1;
        } else if (!strcmp(word, "device") && cfg.ndev < MAX_DEVICES) {
            struct fake_device *d = &cfg.dev[cfg.ndev];
            int used = 0;
            if (sscanf(rest, "%llu %llu %u %u %u %u %n", &d->total, &d->used, &d->util_gpu,
                       &d->util_mem, &d->temp, &d->power, &used) >= 6) {
                snprintf(d->name, sizeof d->name, "%s", rest + used);
                cfg.ndev++;
            }
        } else if ((!strcmp(word, "compute") || !strcmp(word, "graphics")) &&
                   cfg.nprocs < MAX_PROCS) {
            struct fake_proc *p = &cfg.procs[cfg.nprocs];
            char mem[32];
            if (sscanf(rest, "%u %u %31s", &p->dev, &p->pid, mem) == 3) {
                p->bytes = !strcmp(mem, "na") ? ~0ULL : strtoull(mem, NULL, 10);
                p->kind = word[0] == 'c' ? 'C' : 'G';
                cfg.nprocs++;
            }
        } else if (!strcmp(word, "util") && cfg.nprocs < MAX_PROCS) {
            struct fake_proc *p = &cfg.procs[cfg.nprocs];
            p->age_ms = -1;
            if (sscanf(rest, "%u %u %u %u %d", &p->dev, &p->pid, &p->sm, &p->mem, &p->age_ms) >= 4) {
                p->kind = 'U';
                cfg.nprocs++;
            }
        } else if (!strcmp(word, "fail") && cfg.nfails < MAX_FAILS) {
            if (sscanf(rest, "%63s %d", cfg.fails[cfg.nfails].fn, &cfg.fails[cfg.nfails].code) == 2)
                cfg.nfails++;
        }
    }
    fclose(f);
}

/* How often each function was called (fake_nvml_calls). */
#define MAX_COUNTED 32
static struct {
    const char *fn;
    int n;
} counted[MAX_COUNTED];

static void count_call(const char *fn)
{
    for (int i = 0; i < MAX_COUNTED; i++) {
        if (!counted[i].fn)
            counted[i].fn = fn;
        if (!strcmp(counted[i].fn, fn)) {
            counted[i].n++;
            return;
        }
    }
}

/* Every call: counted, the file again, then the configured failure of this function. */
static int enter(const char *fn)
{
    pthread_mutex_lock(&lock);
    count_call(fn);
    if (!initialized) {
        pthread_mutex_unlock(&lock);
        return NVML_ERROR_UNINITIALIZED;
    }
    load();
    for (unsigned int i = 0; i < cfg.nfails; i++) {
        if (!strcmp(cfg.fails[i].fn, fn)) {
            int code = cfg.fails[i].code;
            pthread_mutex_unlock(&lock);
            return code;
        }
    }
    return NVML_SUCCESS; /* lock held: leave() releases it */
}

static void leave(void)
{
    pthread_mutex_unlock(&lock);
}

static const struct fake_device *device(nvmlDevice_t h)
{
    if (h < handles || h >= handles + MAX_DEVICES)
        return NULL;
    unsigned int i = (unsigned int)(h - handles);
    return i < cfg.ndev ? &cfg.dev[i] : NULL;
}

#define ENTER(fn)                                                                          \
    do {                                                                                   \
        int rc_ = enter(fn);                                                               \
        if (rc_)                                                                           \
            return rc_;                                                                    \
    } while (0)

EXPORT nvmlReturn_t nvmlInit_v2(void)
{
    pthread_mutex_lock(&lock);
    const char *p = getenv("FAKE_NVML_CONFIG");
    snprintf(config_path, sizeof config_path, "%s", p ? p : "");
    load();
    int code = cfg.init_code;
    if (!code)
        initialized++;
    pthread_mutex_unlock(&lock);
    return code;
}

EXPORT nvmlReturn_t nvmlShutdown(void)
{
    pthread_mutex_lock(&lock);
    int rc = initialized ? NVML_SUCCESS : NVML_ERROR_UNINITIALIZED;
    if (initialized)
        initialized--;
    pthread_mutex_unlock(&lock);
    return rc;
}

EXPORT const char *nvmlErrorString(nvmlReturn_t r)
{
    switch (r) {
    case 0: return "Success";
    case 1: return "Uninitialized";
    case 2: return "Invalid Argument";
    case 3: return "Not Supported";
    case 4: return "Insufficient Permissions";
    case 9: return "Driver Not Loaded";
    case 15: return "GPU is lost";
    default: return "Unknown Error";
    }
}

EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *n)
{
    ENTER("nvmlDeviceGetCount_v2");
    int rc = cfg.count_fail;
    if (!rc)
        *n = cfg.ndev;
    leave();
    return rc;
}

EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *h)
{
    ENTER("nvmlDeviceGetHandleByIndex_v2");
    int rc = i < cfg.ndev ? NVML_SUCCESS : NVML_ERROR_INVALID_ARGUMENT;
    if (!rc)
        *h = &handles[i];
    leave();
    return rc;
}

EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t h, char *name, unsigned int len)
{
    ENTER("nvmlDeviceGetName");
    const struct fake_device *d = device(h);
    if (d)
        snprintf(name, len, "%s", d->name);
    leave();
    return d ? NVML_SUCCESS : NVML_ERROR_INVALID_ARGUMENT;
}

EXPORT nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t h, nvmlUtilization_t *u)
{
    ENTER("nvmlDeviceGetUtilizationRates");
    const struct fake_device *d = device(h);
    if (d) {
        u->gpu = d->util_gpu;
        u->memory = d->util_mem;
    }
    leave();
    return d ? NVML_SUCCESS : NVML_ERROR_INVALID_ARGUMENT;
}

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t h, nvmlMemory_t *m)
{
    ENTER("nvmlDeviceGetMemoryInfo");
    const struct fake_device *d = device(h);
    if (d) {
        m->total = d->total;
        m->used = d->used;
        m->free = d->total - d->used;
    }
    leave();
    return d ? NVML_SUCCESS : NVML_ERROR_INVALID_ARGUMENT;
}

EXPORT nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t h, int sensor, unsigned int *t)
{
    ENTER("nvmlDeviceGetTemperature");
    const struct fake_device *d = device(h);
    if (d && sensor == 0)
        *t = d->temp;
    leave();
    return d && sensor == 0 ? NVML_SUCCESS : NVML_ERROR_INVALID_ARGUMENT;
}

EXPORT nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t h, unsigned int *p)
{
    ENTER("nvmlDeviceGetPowerUsage");
    const struct fake_device *d = device(h);
    if (d)
        *p = d->power;
    leave();
    return d ? NVML_SUCCESS : NVML_ERROR_INVALID_ARGUMENT;
}

static nvmlReturn_t processes(const char *fn, char kind, nvmlDevice_t h, unsigned int *count,
                              nvmlProcessInfo_v2_t *infos)
{
    ENTER(fn);
    const struct fake_device *d = device(h);
    if (!d || !count) {
        leave();
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    unsigned int dev = (unsigned int)(h - handles), n = 0;
    for (unsigned int i = 0; i < cfg.nprocs; i++)
        if (cfg.procs[i].kind == kind && cfg.procs[i].dev == dev)
            n++;
    if (n > *count || (n && !infos)) {
        *count = n;
        leave();
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    unsigned int k = 0;
    for (unsigned int i = 0; i < cfg.nprocs; i++) {
        const struct fake_proc *p = &cfg.procs[i];
        if (p->kind != kind || p->dev != dev)
            continue;
        infos[k].pid = p->pid;
        infos[k].usedGpuMemory = p->bytes;
        infos[k].gpuInstanceId = infos[k].computeInstanceId = 0xFFFFFFFFu;
        k++;
    }
    *count = n;
    leave();
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t h, unsigned int *count,
                                                            nvmlProcessInfo_v2_t *infos)
{
    return processes("nvmlDeviceGetComputeRunningProcesses_v2", 'C', h, count, infos);
}

EXPORT nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v2(nvmlDevice_t h, unsigned int *count,
                                                             nvmlProcessInfo_v2_t *infos)
{
    return processes("nvmlDeviceGetGraphicsRunningProcesses_v2", 'G', h, count, infos);
}

EXPORT nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t h,
                                                    nvmlProcessUtilizationSample_t *samples,
                                                    unsigned int *count,
                                                    unsigned long long last_seen)
{
    ENTER("nvmlDeviceGetProcessUtilization");
    const struct fake_device *d = device(h);
    if (!d || !count) {
        leave();
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    if (cfg.no_process_util) {
        leave();
        return NVML_ERROR_NOT_SUPPORTED;
    }
    struct timeval tv;
    gettimeofday(&tv, NULL);
    unsigned long long now = (unsigned long long)tv.tv_sec * 1000000ULL + (unsigned long long)tv.tv_usec;
    unsigned int dev = (unsigned int)(h - handles), total = 0, n = 0;
    for (unsigned int i = 0; i < cfg.nprocs; i++)
        if (cfg.procs[i].kind == 'U' && cfg.procs[i].dev == dev)
            total++;
    unsigned int k = 0;
    for (unsigned int i = 0; i < cfg.nprocs; i++) {
        const struct fake_proc *p = &cfg.procs[i];
        if (p->kind != 'U' || p->dev != dev)
            continue;
        unsigned long long ts = p->age_ms >= 0 ? cfg.mtime_us - (unsigned long long)p->age_ms * 1000ULL
                                               : now - (total - 1 - k);
        k++;
        ts -= cfg.clock_offset_us;
        if (ts <= last_seen)
            continue;
        if (samples && n < *count) {
            samples[n].pid = p->pid;
            samples[n].timeStamp = ts;
            samples[n].smUtil = p->sm;
            samples[n].memUtil = p->mem;
            samples[n].encUtil = samples[n].decUtil = 0;
        }
        n++;
    }
    leave();
    if (!n) {
        *count = 0;
        return NVML_ERROR_NOT_FOUND;
    }
    if (!samples || n > *count) {
        *count = n;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    *count = n;
    return NVML_SUCCESS;
}

/* Not NVML: how many times FN was called since the library was loaded. */
EXPORT int fake_nvml_calls(const char *fn)
{
    pthread_mutex_lock(&lock);
    int n = 0;
    for (int i = 0; i < MAX_COUNTED && counted[i].fn; i++)
        if (!strcmp(counted[i].fn, fn))
            n = counted[i].n;
    pthread_mutex_unlock(&lock);
    return n;
}

/* Not NVML: how many nvmlInit calls are not yet matched by nvmlShutdown (the tests
 * check that every monitor shuts NVML down). */
EXPORT int fake_nvml_init_count(void)
{
    pthread_mutex_lock(&lock);
    int n = initialized;
    pthread_mutex_unlock(&lock);
    return n;
}
