#include "core/memchar.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/emit.h"
#include "core/sample.h"

#define OPS (e->ops)
#define CTX (e->ctx)

/* ---- PSI --------------------------------------------------------------------------- */

static ssize_t read_text(int fd, char *buf, size_t len)
{
    ssize_t n;
    do {
        n = pread(fd, buf, len - 1, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    buf[n] = '\0';
    return n;
}

/* Where the cgroup v2 hierarchy is mounted (from /proc/self/mountinfo), or -ENOENT. */
static int cgroup2_mount(char *out, size_t len)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return -errno;
    char line[1024];
    int rc = -ENOENT;
    while (fgets(line, sizeof line, f)) {
        char *sep = strstr(line, " - cgroup2 ");
        if (!sep)
            continue;
        /* id parent major:minor root mountpoint ... */
        char *p = line;
        for (int i = 0; i < 4 && p; i++) {
            p = strchr(p, ' ');
            if (p)
                p++;
        }
        if (!p)
            continue;
        char *end = strchr(p, ' ');
        if (!end || (size_t)(end - p) >= len)
            continue;
        memcpy(out, p, (size_t)(end - p));
        out[end - p] = '\0';
        rc = 0;
        break;
    }
    fclose(f);
    return rc;
}

/* The cgroup v2 path of pid ("0::/path" in /proc/PID/cgroup), or -ENOENT. */
static int cgroup2_path(pid_t pid, char *out, size_t len)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cgroup", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    char line[512];
    int rc = -ENOENT;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "0::", 3) != 0)
            continue;
        line[strcspn(line, "\n")] = '\0';
        snprintf(out, len, "%s", line + 3);
        rc = 0;
        break;
    }
    fclose(f);
    return rc;
}

static int parse_psi(const char *buf, double *some, double *full)
{
    const char *s = strstr(buf, "some avg10=");
    if (!s)
        return -EINVAL;
    *some = strtod(s + 11, NULL);
    const char *f = strstr(buf, "full avg10=");
    *full = f ? strtod(f + 11, NULL) : NAN;
    return 0;
}

int dn_psi_open(struct dn_psi *p, pid_t pid, struct dn_capabilities *caps)
{
    char buf[512], mnt[256], cg[512], file[800];
    p->fd = -1;
    caps->psi.system = caps->psi.per_process = false;
    caps->psi.reason[0] = caps->psi.source[0] = '\0';

    int sys_fd = open("/proc/pressure/memory", O_RDONLY | O_CLOEXEC);
    int sys_err = sys_fd < 0 ? errno : 0;
    if (sys_fd >= 0 && read_text(sys_fd, buf, sizeof buf) < 0) {
        sys_err = errno;
        close(sys_fd);
        sys_fd = -1;
    }
    caps->psi.system = sys_fd >= 0;

    const char *why_not_cgroup;
    if (cgroup2_mount(mnt, sizeof mnt) != 0) {
        why_not_cgroup = "no cgroup v2 hierarchy is mounted, and memory.pressure exists in cgroup v2 only";
    } else if (cgroup2_path(pid, cg, sizeof cg) != 0) {
        why_not_cgroup = "the process's cgroup v2 group could not be read";
    } else if (strcmp(cg, "/") == 0) {
        why_not_cgroup = "the process is in the root cgroup, whose pressure is the system's";
    } else {
        snprintf(file, sizeof file, "%s%s/memory.pressure", mnt, cg);
        int fd = open(file, O_RDONLY | O_CLOEXEC);
        if (fd >= 0 && read_text(fd, buf, sizeof buf) >= 0) {
            p->fd = fd;
            caps->psi.per_process = true;
            snprintf(caps->psi.source, sizeof caps->psi.source, "%s", file);
            if (sys_fd >= 0)
                close(sys_fd);
            return 0;
        }
        if (fd >= 0)
            close(fd);
        why_not_cgroup = "its cgroup has no readable memory.pressure";
    }
    if (sys_fd >= 0) {
        p->fd = sys_fd;
        snprintf(caps->psi.source, sizeof caps->psi.source, "/proc/pressure/memory");
        snprintf(caps->psi.reason, sizeof caps->psi.reason,
                 "psi_mem is the whole system's memory pressure (/proc/pressure/memory): %s",
                 why_not_cgroup);
        return 0;
    }
    snprintf(caps->psi.reason, sizeof caps->psi.reason,
             "no memory pressure information: /proc/pressure/memory: %s (a kernel without "
             "CONFIG_PSI, or booted with psi=0: boot with psi=1)",
             strerror(sys_err));
    return -sys_err;
}

int dn_psi_read(struct dn_psi *p, double *some, double *full)
{
    char buf[512];
    if (p->fd < 0)
        return -EBADF;
    ssize_t n = read_text(p->fd, buf, sizeof buf);
    if (n < 0)
        return (int)n;
    return parse_psi(buf, some, full);
}

void dn_psi_close(struct dn_psi *p)
{
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
}

/* ---- perf counters ------------------------------------------------------------------ */

const char *const dn_perf_names[DN_PERF_NEVENTS] = {"cycles", "instructions", "cache_refs",
                                                    "cache_misses", "stalled_backend"};

static const uint64_t hw_config[DN_PERF_NEVENTS] = {
    PERF_COUNT_HW_CPU_CYCLES, PERF_COUNT_HW_INSTRUCTIONS, PERF_COUNT_HW_CACHE_REFERENCES,
    PERF_COUNT_HW_CACHE_MISSES, PERF_COUNT_HW_STALLED_CYCLES_BACKEND};

/* DENET_PERF_SOFTWARE=1, for tests on machines without hardware counters (VMs): software
 * events that exist everywhere stand in, one per key, so that the whole counting path
 * (inherit over the tree, deltas per sample, totals) can be checked against figures
 * known otherwise: cycles counts task-clock ns, instructions context switches,
 * cache_refs minor faults, cache_misses major faults, stalled_backend CPU migrations.
 * The summary's verdict ignores them. */
static const uint64_t sw_config[DN_PERF_NEVENTS] = {
    PERF_COUNT_SW_TASK_CLOCK, PERF_COUNT_SW_CONTEXT_SWITCHES, PERF_COUNT_SW_PAGE_FAULTS_MIN,
    PERF_COUNT_SW_PAGE_FAULTS_MAJ, PERF_COUNT_SW_CPU_MIGRATIONS};

static bool software_mode(void)
{
    const char *v = getenv("DENET_PERF_SOFTWARE");
    return v && v[0] && strcmp(v, "0") != 0;
}

static int perf_event_open(struct perf_event_attr *a, pid_t pid)
{
    return (int)syscall(SYS_perf_event_open, a, pid, -1, -1, PERF_FLAG_FD_CLOEXEC);
}

static void attr_init(struct perf_event_attr *a, bool software, int i, bool exclude_kernel)
{
    memset(a, 0, sizeof *a);
    a->size = sizeof *a;
    a->type = software ? PERF_TYPE_SOFTWARE : PERF_TYPE_HARDWARE;
    a->config = software ? sw_config[i] : hw_config[i];
    a->read_format = PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING;
    a->inherit = 1;
    a->exclude_hv = 1;
    a->exclude_kernel = exclude_kernel;
}

static int paranoid(void)
{
    char buf[32];
    int fd = open("/proc/sys/kernel/perf_event_paranoid", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 99;
    ssize_t n = read_text(fd, buf, sizeof buf);
    close(fd);
    return n > 0 ? atoi(buf) : 99;
}

static bool pmu_present(void)
{
    return access("/sys/bus/event_source/devices/cpu", F_OK) == 0 ||
           access("/sys/bus/event_source/devices/cpu_core", F_OK) == 0 ||
           access("/sys/bus/event_source/devices/armv8_pmuv3_0", F_OK) == 0;
}

static int probe_state; /* 0: hardware counters open; -errno */
static bool probe_exclude_kernel;
static char probe_reason[DN_CAP_REASON];
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;

static void probe(void)
{
    struct perf_event_attr a;
    attr_init(&a, false, DN_PERF_CYCLES, false);
    a.disabled = 1;
    int fd = perf_event_open(&a, 0);
    if (fd < 0 && (errno == EACCES || errno == EPERM)) {
        attr_init(&a, false, DN_PERF_CYCLES, true); /* user mode only */
        a.disabled = 1;
        fd = perf_event_open(&a, 0);
        probe_exclude_kernel = fd >= 0;
    }
    int e = fd < 0 ? errno : 0;
    if (fd >= 0) {
        close(fd);
        probe_state = 0;
        if (probe_exclude_kernel)
            snprintf(probe_reason, sizeof probe_reason,
                     "counting user mode only: kernel.perf_event_paranoid=%d keeps the kernel's "
                     "share from unprivileged users (run as root, or sysctl "
                     "kernel.perf_event_paranoid=1)",
                     paranoid());
        return;
    }
    probe_state = -e;
    if (e == EACCES || e == EPERM)
        snprintf(probe_reason, sizeof probe_reason,
                 "perf_event_open(cycles) was refused (%s) with kernel.perf_event_paranoid=%d: "
                 "run as root or with CAP_PERFMON, or lower it: sysctl "
                 "kernel.perf_event_paranoid=1",
                 strerror(e), paranoid());
    else if (!pmu_present())
        snprintf(probe_reason, sizeof probe_reason,
                 "this machine exposes no hardware performance counters: no CPU PMU in "
                 "/sys/bus/event_source/devices (a virtual machine without a virtual "
                 "PMU?); perf_event_open(cycles) failed: %s",
                 strerror(e));
    else
        snprintf(probe_reason, sizeof probe_reason,
                 "the CPU's PMU does not count cycles: perf_event_open(cycles) failed: %s",
                 strerror(e));
}

bool dn_perf_probe(struct dn_capabilities *caps)
{
    pthread_once(&probe_once, probe); /* monitors may be made from several threads */
    if (caps) {
        caps->perf_hw.available = probe_state == 0;
        snprintf(caps->perf_hw.reason, sizeof caps->perf_hw.reason, "%s", probe_reason);
    }
    return probe_state == 0;
}

struct dn_perf *dn_perf_open(pid_t pid, bool held, struct dn_capabilities *caps)
{
    bool sw = software_mode();
    if (!sw && !dn_perf_probe(caps))
        return NULL;
    struct dn_perf *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->software = sw;
    int opened = 0, first_err = 0;
    caps->perf_hw.nevents = 0;
    for (int i = 0; i < DN_PERF_NEVENTS; i++) {
        struct perf_event_attr a;
        attr_init(&a, sw, i, !sw && probe_exclude_kernel);
        a.disabled = held;
        a.enable_on_exec = held;
        p->fd[i] = perf_event_open(&a, pid);
        if (p->fd[i] >= 0) {
            opened++;
            caps->perf_hw.events[caps->perf_hw.nevents++] = dn_perf_names[i];
        } else if (!first_err) {
            first_err = errno;
        }
    }
    if (sw) {
        caps->perf_hw.available = false;
        snprintf(caps->perf_hw.reason, sizeof caps->perf_hw.reason,
                 "test mode (DENET_PERF_SOFTWARE): software events stand in for the hardware "
                 "counters (cycles = task-clock ns, instructions = context switches, cache_refs "
                 "= minor faults, cache_misses = major faults, stalled_backend = migrations)");
    } else if (opened < DN_PERF_NEVENTS && opened > 0) {
        size_t len = strlen(caps->perf_hw.reason);
        snprintf(caps->perf_hw.reason + len, sizeof caps->perf_hw.reason - len,
                 "%sthe CPU does not count every event (null in perf): %s",
                 len ? "; " : "", strerror(first_err));
    }
    if (!opened) {
        caps->perf_hw.available = false;
        if (!sw)
            snprintf(caps->perf_hw.reason, sizeof caps->perf_hw.reason,
                     "perf_event_open on process %d failed: %s", (int)pid, strerror(first_err));
        dn_perf_close(p);
        return NULL;
    }
    return p;
}

void dn_perf_close(struct dn_perf *p)
{
    if (!p)
        return;
    for (int i = 0; i < DN_PERF_NEVENTS; i++)
        if (p->fd[i] > 0)
            close(p->fd[i]);
    free(p);
}

void dn_perf_read(struct dn_perf *p, uint64_t vals[DN_PERF_NEVENTS], unsigned *valid)
{
    *valid = 0;
    for (int i = 0; i < DN_PERF_NEVENTS; i++) {
        vals[i] = 0;
        if (p->fd[i] < 0)
            continue;
        uint64_t v[3]; /* value, time enabled, time running */
        if (read(p->fd[i], v, sizeof v) != (ssize_t)sizeof v)
            continue;
        if (v[2] == 0 && v[1] != 0)
            continue; /* enabled but never on a counter: unknown */
        vals[i] = v[2] && v[2] < v[1] ? (uint64_t)((double)v[0] * (double)v[1] / (double)v[2])
                                      : v[0];
        *valid |= 1u << i;
    }
}

/* ---- sample and summary parts -------------------------------------------------------- */

void dn_emit_memchar_sample(const struct dn_emitter *e, const struct dn_sample *s)
{
    if (s->has_psi) {
        OPS->begin_object(CTX, "psi_mem");
        OPS->f64(CTX, "some_avg10", s->psi_some_avg10);
        if (s->psi_full_avg10 == s->psi_full_avg10)
            OPS->f64(CTX, "full_avg10", s->psi_full_avg10);
        else
            OPS->null(CTX, "full_avg10");
        OPS->end_object(CTX);
    }
    if (s->perf_valid) {
        OPS->begin_object(CTX, "perf");
        for (int i = 0; i < DN_PERF_NEVENTS; i++) {
            if (s->perf_valid & (1u << i))
                OPS->u64(CTX, dn_perf_names[i], s->perf[i]);
            else
                OPS->null(CTX, dn_perf_names[i]);
        }
        OPS->end_object(CTX);
    }
}

void dn_memchar_compute(const uint64_t t[DN_PERF_NEVENTS], unsigned valid, double psi_sum,
                        uint64_t psi_n, struct dn_memchar *out)
{
    bool cyc = (valid & (1u << DN_PERF_CYCLES)) && t[DN_PERF_CYCLES] > 0;
    out->mean_ipc = cyc && (valid & (1u << DN_PERF_INSTRUCTIONS))
                        ? (double)t[DN_PERF_INSTRUCTIONS] / (double)t[DN_PERF_CYCLES]
                        : NAN;
    out->llc_miss_rate = (valid & (1u << DN_PERF_CACHE_REFS)) &&
                                 (valid & (1u << DN_PERF_CACHE_MISSES)) && t[DN_PERF_CACHE_REFS] > 0
                             ? (double)t[DN_PERF_CACHE_MISSES] / (double)t[DN_PERF_CACHE_REFS]
                             : NAN;
    out->backend_stall_ratio = cyc && (valid & (1u << DN_PERF_STALLED_BACKEND))
                                   ? (double)t[DN_PERF_STALLED_BACKEND] / (double)t[DN_PERF_CYCLES]
                                   : NAN;
    out->psi_some_fraction = psi_n ? psi_sum / (double)psi_n / 100.0 : NAN;

    /* denet's rules, in its order; the counters decide first, PSI after. */
    double ipc = out->mean_ipc, stall = out->backend_stall_ratio, psi = out->psi_some_fraction;
    bool counters = ipc == ipc && stall == stall;
    if (counters && stall > 0.5 && ipc < 1.0)
        out->verdict = "memory-bound";
    else if (counters && stall < 0.2 && ipc > 1.5)
        out->verdict = "cpu-bound";
    else if (psi == psi && psi > 0.5)
        out->verdict = "memory-bound";
    else if (counters)
        out->verdict = "mixed";
    else
        out->verdict = "insufficient-data";
}
