#include "core/procfs.h"
#include "core/grow.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

long dn_clk_tck(void)
{
    static long tck;
    if (!tck) {
        long v = sysconf(_SC_CLK_TCK);
        tck = v > 0 ? v : 100;
    }
    return tck;
}

long dn_page_kb(void)
{
    static long kb;
    if (!kb) {
        long v = sysconf(_SC_PAGESIZE);
        kb = v > 0 ? v / 1024 : 4;
    }
    return kb;
}

int64_t dn_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t dn_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

double dn_boottime_secs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int open_proc_file_flags(pid_t pid, const char *name, int flags)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, name);
    return open(path, O_RDONLY | O_CLOEXEC | flags);
}

static int open_proc_file(pid_t pid, const char *name)
{
    return open_proc_file_flags(pid, name, 0);
}

static ssize_t read_all(int fd, char *buf, size_t len);
static int parse_stat(const char *buf, struct dn_proc_raw *r, unsigned *end42);

int dn_procfs_open(struct dn_procfs *p, pid_t pid, bool keep)
{
    memset(p, 0, sizeof *p);
    p->pid = pid;
    p->io_fd = p->status_fd = p->children_fd = p->statm_fd = p->schedstat_fd = -1;
    /* O_NONBLOCK on the files that are read ahead through io_uring (collector.c,
     * prefetch): io_uring then reads them in the submitting call instead of handing them
     * to a kernel worker thread. A /proc file ignores the flag otherwise. */
    p->stat_fd = open_proc_file_flags(pid, "stat", O_NONBLOCK);
    if (p->stat_fd < 0)
        return errno == ENOENT ? -ESRCH : -errno;
    if (clock_getcpuclockid(pid, &p->cpu_clock) == 0)
        p->cpu_clock_ok = true;
    if (!keep) {
        /* Past the descriptor budget: each read opens and closes its file. The start
         * time read now tells this process from a later one that reuses its pid. */
        char buf[2048];
        struct dn_proc_raw r;
        ssize_t n = read_all(p->stat_fd, buf, sizeof buf);
        close(p->stat_fd);
        p->stat_fd = -1;
        if (n <= 0)
            return -ESRCH;
        int rc = parse_stat(buf, &r, NULL);
        if (rc)
            return rc;
        p->transient = true;
        p->start_ticks = r.start_ticks;
        return 0;
    }
    p->io_fd = open_proc_file_flags(pid, "io", O_NONBLOCK);
    p->io_denied = p->io_fd < 0 && (errno == EACCES || errno == EPERM);
    p->status_fd = open_proc_file_flags(pid, "status", O_NONBLOCK);
    p->statm_fd = open_proc_file_flags(pid, "statm", O_NONBLOCK);
    p->schedstat_fd = open_proc_file_flags(pid, "schedstat", O_NONBLOCK);
    char name[48];
    snprintf(name, sizeof name, "task/%d/children", (int)pid);
    p->children_fd = open_proc_file(pid, name);
    return 0;
}

void dn_procfs_close(struct dn_procfs *p)
{
    int *fds[] = {&p->stat_fd,     &p->io_fd,    &p->status_fd,
                  &p->children_fd, &p->statm_fd, &p->schedstat_fd};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
        if (*fds[i] >= 0)
            close(*fds[i]);
        *fds[i] = -1;
    }
}

/* pread the whole (small) file into buf, NUL-terminated. */
static ssize_t read_all(int fd, char *buf, size_t len)
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

/* A file of the process: through its kept descriptor, or opened, read and closed when
 * the process is transient (one descriptor at a time, never held). -ENOENT when the file
 * is not available (not kept, e.g. io without permission). */
static ssize_t read_file(const struct dn_procfs *p, int kept_fd, const char *name, char *buf,
                         size_t len)
{
    if (kept_fd >= 0)
        return read_all(kept_fd, buf, len);
    if (!p->transient)
        return -ENOENT;
    int fd = open_proc_file(p->pid, name);
    if (fd < 0)
        return -errno;
    ssize_t n = read_all(fd, buf, len);
    close(fd);
    return n;
}

static const char *skip_field(const char *s)
{
    while (*s && *s != ' ')
        s++;
    while (*s == ' ')
        s++;
    return s;
}

static uint64_t parse_u64(const char **sp)
{
    const char *s = *sp;
    uint64_t v = 0;
    while (*s >= '0' && *s <= '9')
        v = v * 10 + (uint64_t)(*s++ - '0');
    *sp = s;
    return v;
}

static int64_t parse_i64(const char **sp)
{
    bool neg = false;
    if (**sp == '-') {
        neg = true;
        (*sp)++;
    }
    int64_t v = (int64_t)parse_u64(sp);
    return neg ? -v : v;
}

/* /proc/PID/stat: the comm field may hold spaces and parentheses, so fields are counted
 * from the last ')'. *end42 (if not NULL): the length of the text up to the space after
 * field 42, the last one used; 0 when field 42 does not end in a space there. */
static int parse_stat(const char *buf, struct dn_proc_raw *r, unsigned *end42)
{
    if (end42)
        *end42 = 0;
    const char *s = strrchr(buf, ')');
    const char *open_paren = strchr(buf, '(');
    if (!s || s[1] != ' ' || !open_paren || open_paren > s)
        return -EINVAL;
    size_t clen = (size_t)(s - open_paren - 1);
    if (clen >= sizeof r->comm)
        clen = sizeof r->comm - 1;
    memcpy(r->comm, open_paren + 1, clen);
    r->comm[clen] = '\0';
    s += 2;
    uint64_t f[53] = {0};
    int64_t processor = -1;
    for (int field = 3; field <= 42 && *s; field++) { /* 42 (delayacct_blkio_ticks) is the last used */
        if (field == 3) {
            r->state = *s;
            s = skip_field(s);
            continue;
        }
        if (field == 39) {
            processor = parse_i64(&s);
        } else if (*s == '-') {
            f[field] = (uint64_t)parse_i64(&s);
        } else {
            f[field] = parse_u64(&s);
        }
        if (field == 42 && end42 && *s == ' ')
            *end42 = (unsigned)(s + 1 - buf);
        s = skip_field(s);
    }
    uint64_t tck = (uint64_t)dn_clk_tck();
    r->ppid = (pid_t)f[4];
    r->minflt = f[10];
    r->majflt = f[12];
    r->cpu_ns = (f[14] + f[15]) * (1000000000ULL / tck); /* replaced by the clock below */
    r->child_cpu_ns = (f[16] + f[17]) * (1000000000ULL / tck);
    r->num_threads = f[20];
    r->start_ticks = f[22];
    r->vsize_bytes = f[23];
    r->rss_pages = f[24];
    r->processor = processor;
    r->utime_raw = f[14];
    r->stime_raw = f[15];
    r->blkio_delay_ns = f[42] * (1000000000ULL / tck); /* the main thread's */
    return 0;
}

/* Value after "key:" on its own line, or 0 when absent. */
static uint64_t find_kv(const char *buf, const char *key)
{
    const char *s = strstr(buf, key);
    if (!s)
        return 0;
    s += strlen(key);
    while (*s == ' ' || *s == '\t')
        s++;
    return parse_u64(&s);
}

/* The fields of /proc/PID/status (or task/TID/status) that denet uses, in one pass over
 * its lines (the text is about 1.4 KB). */
struct dn_status {
    uint64_t vm_size_kb, vm_rss_kb, vm_hwm_kb, nvcsw, nivcsw;
    bool have_mem; /* VmSize and VmRSS were there: the process has memory */
};

static bool take_kv(const char *line, const char *key, size_t klen, uint64_t *v)
{
    if (memcmp(line, key, klen) != 0)
        return false;
    const char *s = line + klen;
    while (*s == ' ' || *s == '\t')
        s++;
    *v = parse_u64(&s);
    return true;
}

static void parse_status(const char *buf, struct dn_status *st)
{
#define TAKE(key, field) take_kv(line, key, sizeof key - 1, &st->field)
    memset(st, 0, sizeof *st);
    unsigned mem = 0;
    for (const char *line = buf; *line;) {
        switch (line[0]) {
        case 'V': /* VmPeak VmSize VmLck VmPin VmHWM VmRSS ... */
            if (line[1] == 'm') {
                if (TAKE("VmSize:", vm_size_kb))
                    mem |= 1;
                else if (TAKE("VmRSS:", vm_rss_kb))
                    mem |= 2;
                else
                    TAKE("VmHWM:", vm_hwm_kb);
            }
            break;
        case 'v':
            TAKE("voluntary_ctxt_switches:", nvcsw);
            break;
        case 'n':
            TAKE("nonvoluntary_ctxt_switches:", nivcsw);
            break;
        }
        const char *nl = strchr(line, '\n');
        if (!nl)
            break;
        line = nl + 1;
    }
    st->have_mem = mem == 3;
#undef TAKE
}

/* The length of text buf up to the end of the line that starts with key (after a
 * newline), or 0 when that line is not there whole. */
static unsigned line_end(const char *buf, const char *key)
{
    const char *s = strstr(buf, key);
    const char *nl = s ? strchr(s + 1, '\n') : NULL;
    return nl ? (unsigned)(nl + 1 - buf) : 0;
}

/* /proc/PID/io up to the end of its write_bytes line (the last one used). */
static unsigned io_end(const char *buf)
{
    return line_end(buf, "\nwrite_bytes:");
}

/* /proc/PID/status up to the end of its nonvoluntary_ctxt_switches line (the last one
 * used, and the file's last). */
static unsigned status_end(const char *buf)
{
    return line_end(buf, "\nnonvoluntary_ctxt_switches:");
}

/* status's memory (VmSize, VmRSS: statm's figures) into r; false when it has none. */
static bool status_memory(const struct dn_status *st, struct dn_proc_raw *r)
{
    if (!st->have_mem || st->vm_size_kb == 0)
        return false;
    r->vsize_bytes = st->vm_size_kb * 1024;
    r->rss_pages = st->vm_rss_kb / (uint64_t)dn_page_kb();
    return true;
}

static void parse_io(const char *buf, struct dn_proc_raw *r)
{
    r->rchar = find_kv(buf, "rchar:");
    r->wchar = find_kv(buf, "wchar:");
    r->read_bytes = find_kv(buf, "\nread_bytes:");
    r->write_bytes = find_kv(buf, "\nwrite_bytes:");
    r->have_io = true;
}

int dn_procfs_read(struct dn_procfs *p, struct dn_proc_raw *r, bool want_hwm,
                   const uint64_t *cpu_ns, const struct dn_procfs_ahead *ahead)
{
    char buf[4096];
    memset(r, 0, sizeof *r);
    r->processor = -1;

    /* The CPU clock is read first (or was, by the caller): if a read through a kept
     * descriptor still succeeds after it (stat, or status when stat was read ahead
     * before the clock), the pid was not reaped (and so not reused) when the clock was
     * read. */
    uint64_t clock_ns = 0;
    bool clock_ok = cpu_ns ? (clock_ns = *cpu_ns, true) : dn_procfs_cpu_ns(p, &clock_ns) == 0;

    /* Text read ahead holds up to field 42: it is used when field 42 is there whole. */
    unsigned end42 = 0;
    bool stat_ahead = ahead && ahead->stat && parse_stat(ahead->stat, r, &end42) == 0 && end42;
    if (!stat_ahead) {
        memset(r, 0, sizeof *r);
        r->processor = -1;
        ssize_t n = read_file(p, p->stat_fd, "stat", buf, sizeof buf);
        if (n < 0)
            return (int)n == -ENOENT ? -ESRCH : (int)n;
        if (n == 0)
            return -ESRCH;
        int rc = parse_stat(buf, r, &end42);
        if (rc)
            return rc;
    }
    p->stat_ahead_len = end42;
    if (p->transient && r->start_ticks != p->start_ticks)
        return -ESRCH; /* the pid now names another process */
    if (clock_ok)
        r->cpu_ns = clock_ns;

    /* io needs ptrace-read permission. Refused: the counters are unknown (null) and
     * the rest is still reported. Failed otherwise: the process went away between the
     * two reads, and is reported gone rather than with made-up I/O. Read ahead: used
     * when it ends with its write_bytes line whole. */
    if (ahead && ahead->io && io_end(ahead->io) == strlen(ahead->io)) {
        parse_io(ahead->io, r);
    } else {
        ssize_t n = p->io_denied ? -EACCES : read_file(p, p->io_fd, "io", buf, sizeof buf);
        if (n > 0) {
            parse_io(buf, r);
            p->io_ahead_len = io_end(buf);
        } else if (n == -EACCES || n == -EPERM) {
            p->io_denied = true;
        } else {
            return -ESRCH;
        }
    }
    /* status: context switches (of the main thread: dn_procfs_read_threads sums the
     * others), VmHWM when asked for, and memory. Memory is not taken from stat, whose RSS
     * is the approximate value of the kernel's per-CPU counters: status's VmRSS and
     * VmSize are statm's figures, read by the same code in every kernel (task_mem and
     * task_statm, both get_mm_counter_sum() since 6.16 and 6.12.39), which psutil and
     * top read. statm is read only when status gives no memory. */
    struct dn_status st;
    const char *status = NULL;
    unsigned end = ahead && ahead->after_clock && ahead->status ? status_end(ahead->status) : 0;
    if (end) {
        status = ahead->status;
    } else if (read_file(p, p->status_fd, "status", buf, sizeof buf) > 0) {
        status = buf;
        end = status_end(buf);
    }
    if (status) {
        p->status_ahead_len = end;
        parse_status(status, &st);
        r->nvcsw = st.nvcsw;
        r->nivcsw = st.nivcsw;
        if (want_hwm)
            r->hwm_kb = st.vm_hwm_kb;
    } else if (stat_ahead && !ahead->after_clock) {
        return -ESRCH; /* nothing tells that the clock was this process's */
    } else {
        st.have_mem = false;
    }
    if (!status_memory(&st, r))
        dn_procfs_read_memory(p, r);
    return 0;
}

int dn_procfs_read_threads(struct dn_procfs *p, struct dn_proc_raw *r, bool blkio)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)p->pid);
    DIR *d = opendir(path);
    if (!d)
        return errno == ENOENT ? -ESRCH : -errno;
    uint64_t nv = 0, niv = 0, blkio_ticks = 0;
    struct dirent *e;
    char buf[4096];
    while ((e = readdir(d))) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        /* relative to the task directory: the kernel walks two names, not five */
        char fpath[300];
        snprintf(fpath, sizeof fpath, "%s/status", e->d_name);
        int fd = openat(dirfd(d), fpath, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue; /* exited meanwhile */
        ssize_t n = read_all(fd, buf, sizeof buf);
        close(fd);
        if (n <= 0)
            continue;
        struct dn_status st;
        parse_status(buf, &st);
        nv += st.nvcsw;
        niv += st.nivcsw;
        if (!blkio)
            continue;
        snprintf(fpath, sizeof fpath, "%s/stat", e->d_name);
        fd = openat(dirfd(d), fpath, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        n = read_all(fd, buf, sizeof buf);
        close(fd);
        struct dn_proc_raw t;
        if (n > 0 && parse_stat(buf, &t, NULL) == 0)
            blkio_ticks += t.blkio_delay_ns / (1000000000ULL / (uint64_t)dn_clk_tck());
    }
    closedir(d);
    r->nvcsw = nv;
    r->nivcsw = niv;
    if (blkio)
        r->blkio_delay_ns = blkio_ticks * (1000000000ULL / (uint64_t)dn_clk_tck());
    return 0;
}

int dn_procfs_cpu_ns(struct dn_procfs *p, uint64_t *ns)
{
    struct timespec ts;
    if (!p->cpu_clock_ok)
        return -ENOTSUP;
    if (clock_gettime(p->cpu_clock, &ts) != 0)
        return -ESRCH;
    *ns = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
    return 0;
}

int dn_procfs_parse_statm(const char *buf, struct dn_proc_raw *r)
{
    const char *s = buf;
    uint64_t size_pages = parse_u64(&s);
    if (*s != ' ')
        return -EINVAL;
    s++;
    uint64_t resident = parse_u64(&s);
    if (*s != ' ' && *s != '\n')
        return -EINVAL; /* cut short */
    if (size_pages == 0) /* no memory at all: a zombie, whose state needs a full read */
        return -ESRCH;
    r->vsize_bytes = size_pages * (uint64_t)dn_page_kb() * 1024;
    r->rss_pages = resident;
    return 0;
}

int dn_procfs_parse_status_memory(const char *buf, struct dn_proc_raw *r)
{
    struct dn_status st;
    if (!status_end(buf)) /* cut short */
        return -EINVAL;
    parse_status(buf, &st);
    return status_memory(&st, r) ? 0 : -EINVAL;
}

int dn_procfs_read_memory(struct dn_procfs *p, struct dn_proc_raw *r)
{
    char buf[256];
    if (p->statm_fd < 0 && !p->transient)
        return -ENOTSUP;
    ssize_t n = read_file(p, p->statm_fd, "statm", buf, sizeof buf);
    if (n < 0)
        return (int)n == -ENOENT ? -ESRCH : (int)n;
    if (n == 0)
        return -ESRCH;
    return dn_procfs_parse_statm(buf, r);
}

int dn_procfs_parse_schedstat(const char *buf, uint64_t *runtime_ns)
{
    const char *s = buf;
    if (*s < '0' || *s > '9')
        return -EINVAL;
    *runtime_ns = parse_u64(&s);
    return *s == ' ' ? 0 : -EINVAL;
}

static int push_pid(pid_t pid, pid_t **pids, size_t *n, size_t *cap)
{
    if (dn_grow(pids, cap, *n + 1, sizeof **pids, 64))
        return -ENOMEM;
    (*pids)[(*n)++] = pid;
    return 0;
}

static int parse_pid_list(const char *buf, pid_t **pids, size_t *n, size_t *cap)
{
    const char *s = buf;
    while (*s) {
        while (*s == ' ' || *s == '\n')
            s++;
        if (!isdigit((unsigned char)*s))
            break;
        int rc = push_pid((pid_t)parse_u64(&s), pids, n, cap);
        if (rc)
            return rc;
    }
    return 0;
}

static int read_children_fd(int fd, pid_t **pids, size_t *n, size_t *cap)
{
    char stackbuf[4096];
    ssize_t got = read_all(fd, stackbuf, sizeof stackbuf);
    if (got < 0)
        return 0; /* vanished */
    if ((size_t)got < sizeof stackbuf - 1)
        return parse_pid_list(stackbuf, pids, n, cap);
    /* More children than fit on the stack: grow a heap buffer. */
    size_t len = sizeof stackbuf * 4;
    for (;;) {
        char *big = malloc(len);
        if (!big)
            return -ENOMEM;
        got = read_all(fd, big, len);
        if (got >= 0 && (size_t)got < len - 1) {
            int rc = parse_pid_list(big, pids, n, cap);
            free(big);
            return rc;
        }
        free(big);
        if (got < 0)
            return 0;
        len *= 4;
    }
}

int dn_procfs_children(struct dn_procfs *p, uint64_t num_threads, pid_t **pids, size_t *n,
                       size_t *cap)
{
    if (num_threads <= 1 && p->children_fd >= 0)
        return read_children_fd(p->children_fd, pids, n, cap);
    if (num_threads <= 1 && p->transient) {
        char name[48];
        snprintf(name, sizeof name, "task/%d/children", (int)p->pid);
        int fd = open_proc_file(p->pid, name);
        if (fd < 0)
            return 0; /* vanished */
        int rc = read_children_fd(fd, pids, n, cap);
        close(fd);
        return rc;
    }

    /* Children forked by other threads are listed under those threads. */
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)p->pid);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d))) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        char cpath[320];
        snprintf(cpath, sizeof cpath, "/proc/%d/task/%s/children", (int)p->pid, e->d_name);
        int fd = open(cpath, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        rc = read_children_fd(fd, pids, n, cap);
        close(fd);
    }
    closedir(d);
    return rc;
}

int dn_procfs_command(pid_t pid, char *buf, size_t len)
{
    if (len == 0)
        return -EINVAL;
    buf[0] = '\0';
    int fd = open_proc_file(pid, "cmdline");
    ssize_t n = -1;
    if (fd >= 0) {
        n = read(fd, buf, len - 1);
        close(fd);
    }
    if (n > 0) {
        buf[n] = '\0';
        while (n > 0 && buf[n - 1] == '\0')
            n--;
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] == '\0')
                buf[i] = ' ';
        buf[n] = '\0';
        return 0;
    }
    fd = open_proc_file(pid, "comm");
    if (fd < 0)
        return errno == ENOENT ? -ESRCH : -errno;
    n = read(fd, buf, len - 1);
    close(fd);
    if (n <= 0)
        return -ESRCH;
    buf[n] = '\0';
    if (buf[n - 1] == '\n')
        buf[n - 1] = '\0';
    return 1;
}

int dn_netdev_open(pid_t pid)
{
    int fd = open_proc_file(pid, "net/dev");
    if (fd < 0)
        fd = open("/proc/net/dev", O_RDONLY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int dn_netdev_read(int fd, char **bufp, size_t *cap, uint64_t *rx, uint64_t *tx)
{
    /* The whole file, however many interfaces (a host of containers has a pair of veth
     * for each, 130 bytes a line): read to its end into a buffer that grows. */
    *rx = *tx = 0;
    size_t n = 0;
    if (lseek(fd, 0, SEEK_SET) < 0)
        return -errno;
    for (;;) {
        if (dn_grow(bufp, cap, n + 2, 1, 4096))
            return -ENOMEM;
        ssize_t got = read(fd, *bufp + n, *cap - 1 - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return -errno;
        if (got == 0)
            break;
        n += (size_t)got;
    }
    char *buf = *bufp;
    buf[n] = '\0';
    /* Two header lines, then "  iface: rx_bytes packets ... (8 rx cols) tx_bytes ...". */
    const char *line = buf;
    for (int i = 0; i < 2 && line; i++) {
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    while (line && *line) {
        const char *colon = strchr(line, ':');
        const char *eol = strchr(line, '\n');
        if (!colon || (eol && colon > eol))
            break;
        const char *name = line;
        while (*name == ' ')
            name++;
        bool is_lo = (colon - name == 2 && name[0] == 'l' && name[1] == 'o');
        const char *s = colon + 1;
        uint64_t cols[9];
        for (int c = 0; c < 9; c++) {
            while (*s == ' ')
                s++;
            cols[c] = parse_u64(&s);
        }
        if (!is_lo) {
            *rx += cols[0];
            *tx += cols[8];
        }
        line = eol ? eol + 1 : NULL;
    }
    return 0;
}

int dn_procfs_reset_hwm(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/clear_refs", (int)pid);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = write(fd, "5", 1) == 1 ? 0 : -errno;
    close(fd);
    return rc;
}

size_t dn_fds_free(size_t *limit)
{
    struct rlimit rl;
    *limit = SIZE_MAX;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return SIZE_MAX;
    size_t open_now = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        while (readdir(d))
            open_now++;
        closedir(d);
    }
    *limit = (size_t)rl.rlim_cur;
    return *limit > open_now ? *limit - open_now : 0;
}
