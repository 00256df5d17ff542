#include "core/collector.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/grow.h"
#include "core/procfs.h"
#include "core/uring.h"
#include "ebpf/tracked.h"

/* VmHWM is a high-water mark, so reading it now and then loses nothing while the process
 * lives; the spike of a process that dies in between is in the eBPF exit hook's record,
 * or in the root's rusage once it is reaped. */
#define DN_HWM_PERIOD_NS (1000 * 1000000LL)

/* Longest time an idle process goes without a full read of its /proc files. */
#define DN_FULL_READ_PERIOD_NS (1000 * 1000000LL)

/* Longest wait between two reads of the tracked map when the task iterator is in use. */
#define DN_SNAPSHOT_PERIOD_NS (1000 * 1000000LL)

/* An exited tracked process is removed from the BPF map only after this long, so the
 * exit of a thread that was still on its way out is not missed. */
#define DN_EXIT_SETTLE_NS (100 * 1000000LL)

struct dn_proc {
    struct dn_procfs fs;
    const char *command;
    unsigned gen;              /* last collection that read it */
    bool have_prev;
    uint64_t prev_cpu_ns;
    int64_t prev_mono_ns;
    struct dn_proc_raw base;   /* baseline of the relative counters */
    struct dn_metrics last;    /* last metrics read, relative */
    uint64_t last_cpu_ns;
    int64_t next_hwm_ns;       /* when to read VmHWM again */
    char comm[16];             /* task name when command was read */
    pid_t ppid;                /* parent at the last read */
    bool cmd_from_comm;        /* command is the task name: no command line was readable */
    size_t row;                /* its entry in the collector's rows */
    bool absorbed;             /* departed: its parent in the tree reaped it */
    bool hwm_untrusted;        /* predates monitoring and its VmHWM could not be reset */
    bool skip_hwm_once;        /* the first read's VmHWM predates the reset */
    struct dn_proc_raw last_raw; /* last full read, for idle reads */
    bool have_raw;
    int64_t next_full_ns;      /* when a full read is due even if idle */
    pid_t *kids;               /* children found at the last full read */
    size_t nkids, kids_cap;
    bool have_kids;
    int64_t next_kids_ns;
    uint64_t kids_epoch;       /* the collector's fork_epoch when they were read */
    unsigned kids_cached_gen;  /* collection that took them from the list above */
    uint64_t prev_user_ns, prev_sys_ns; /* the last user/system split (never goes back) */
    uint64_t base_user_ns, base_sys_ns; /* the split at the baseline */
    /* Reads ahead in one io_uring call (prefetch) */
    bool idle_last;            /* the last collection found it idle */
    unsigned batch_gen;        /* collection whose prefetch read it */
    size_t batch;              /* its entry in the collector's batch then */
    bool sched_valid;          /* sched_ns was read by the prefetch of collection sched_gen */
    unsigned sched_gen;
    uint64_t sched_ns;         /* its main thread's run time then (schedstat) */
};

/* The buffers of one process's reads ahead (see prefetch): the first fields of statm
 * and of schedstat for a process that was idle, of stat, io and status for one that ran
 * (with its CPU clock, read before them when have_cpu). res: the length read, -errno, or
 * -ENOENT when not read. */
enum { DN_AHEAD_STATM, DN_AHEAD_SCHED, DN_AHEAD_STAT, DN_AHEAD_IO, DN_AHEAD_STATUS, DN_AHEAD_N };
struct dn_batch {
    char statm[48];
    char sched[24];
    char stat[512];
    char io[256];
    char status[4096];
    int res[DN_AHEAD_N];
    bool have_cpu;
    uint64_t cpu_ns;
};

/* Exited tracked processes whose CPU time was counted but whose map entry is kept a
 * little longer (see DN_EXIT_SETTLE_NS). */
struct dn_exited {
    uint32_t tgid;
    uint64_t counted_ns;
};

struct dn_iter_proc {
    pid_t tgid;
    bool cpu_settled;          /* raw.cpu_ns is the process clock's value (see iter_pass) */
    struct dn_proc_raw raw;
};

struct dn_collector {
    struct dn_collector_opts o;
    unsigned gen;

    struct dn_proc **procs; /* sorted by pid */
    size_t nprocs, procs_cap;

    pid_t *queue;
    size_t queue_len, queue_cap;

    int net_fd;
    char *net_buf; /* /proc/PID/net/dev as last read */
    size_t net_cap;
    uint64_t net_rx_base, net_tx_base;
    bool net_have_base;

    /* string pool */
    char **pool;
    size_t pool_cap, pool_len;

    /* tracker state */
    struct dn_tracked_entry *snap;
    size_t snap_len, snap_cap;
    struct dn_exited *exited;
    size_t exited_len, exited_cap;
    uint64_t exited_cpu_ns;

    /* task-iterator state: per-thread records, folded into per-process raw counters */
    struct dn_task_rec *recs;
    size_t recs_len, recs_cap;
    struct dn_iter_proc *iprocs;
    size_t iprocs_len, iprocs_cap;
    bool departed_last;        /* the last collection saw a process leave */
    /* Forks seen through the last pid the kernel gave out (/proc/loadavg): a process
     * that ran keeps its list of children while nothing was forked. */
    int loadavg_fd;            /* -1: not used (unreadable, or /proc of another pid namespace) */
    long last_pid;
    uint64_t fork_epoch;       /* changes whenever last_pid does (or cannot be read) */
    bool always_full;          /* DENET_ALWAYS_FULL_READ: no idle reads (benchmarks) */
    int64_t next_snapshot_ns;

    /* running summary */
    int64_t first_ts_ms, last_ts_ms;
    uint64_t sample_count, max_processes, max_threads, peak_mem_rss_kb;
    double cpu_usage_sum;
    uint64_t net_rx_max, net_tx_max;
    uint64_t departed_disk_read, departed_disk_write, departed_sys_read, departed_sys_write;
    uint64_t total_cpu_ns;     /* held at its maximum: never dips when a child is reaped */
    uint64_t peak_process_rss_kb;
    uint64_t processes_seen;
    uint64_t detached_fork_dropped, detached_processes; /* the tracker's, when detached */

    /* every process the run saw (the summary's `processes`), in order of discovery */
    struct dn_proc_row *rows;
    size_t nrows, rows_cap;

    /* reads ahead through io_uring (prefetch) */
    struct dn_uring *uring;
    bool uring_off;            /* unavailable, failed, or DENET_NO_URING */
    struct dn_batch *batch;
    size_t batch_cap;
    struct dn_uring_read *ops;
    size_t ops_cap;

    /* File descriptors: processes whose /proc files stay open, and how many may. */
    size_t kept, keep_max;
    uint64_t unreadable_now, max_unreadable; /* processes no descriptor could read */

    /* introspection for tests (dn_collector_debug) */
    uint64_t sampled_cpu_ns;   /* total_cpu_ns as sampled, before the rusage floor at reap */
    uint64_t iter_collections; /* collections that read the tree through the task iterator */
    uint64_t peak_minflt, peak_majflt;       /* largest tree totals of one sample */
};

/* ---- string pool ------------------------------------------------------------------- */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
    return h;
}

const char *dn_collector_intern(struct dn_collector *c, const char *s)
{
    if (c->pool_len * 2 >= c->pool_cap) {
        size_t ncap = c->pool_cap ? c->pool_cap * 2 : 256;
        char **np = calloc(ncap, sizeof *np);
        if (!np)
            return NULL;
        for (size_t i = 0; i < c->pool_cap; i++) {
            if (!c->pool[i])
                continue;
            size_t j = hash_str(c->pool[i]) & (ncap - 1);
            while (np[j])
                j = (j + 1) & (ncap - 1);
            np[j] = c->pool[i];
        }
        free(c->pool);
        c->pool = np;
        c->pool_cap = ncap;
    }
    size_t j = hash_str(s) & (c->pool_cap - 1);
    while (c->pool[j]) {
        if (strcmp(c->pool[j], s) == 0)
            return c->pool[j];
        j = (j + 1) & (c->pool_cap - 1);
    }
    c->pool[j] = strdup(s);
    if (!c->pool[j])
        return NULL;
    c->pool_len++;
    return c->pool[j];
}

/* ---- process table ----------------------------------------------------------------- */

static size_t proc_index(const struct dn_collector *c, pid_t pid, bool *found)
{
    size_t lo = 0, hi = c->nprocs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        pid_t p = c->procs[mid]->fs.pid;
        if (p == pid) {
            *found = true;
            return mid;
        }
        if (p < pid)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static struct dn_proc *proc_find(const struct dn_collector *c, pid_t pid)
{
    bool found;
    size_t i = proc_index(c, pid, &found);
    return found ? c->procs[i] : NULL;
}

/* Opens pid and reads its first counters. Returns NULL when it cannot be read. */
static struct dn_proc *proc_open(struct dn_collector *c, pid_t pid, int *err)
{
    bool found;
    size_t at = proc_index(c, pid, &found);
    if (found)
        return c->procs[at];
    if (dn_grow(&c->procs, &c->procs_cap, c->nprocs + 1, sizeof *c->procs, 32)) {
        *err = -ENOMEM;
        return NULL;
    }
    struct dn_proc *p = calloc(1, sizeof *p);
    if (!p) {
        *err = -ENOMEM;
        return NULL;
    }
    bool keep = c->kept < c->keep_max;
    int rc = dn_procfs_open(&p->fs, pid, keep);
    if (rc == -EMFILE || rc == -ENFILE) /* someone else took the descriptors: read and close */
        rc = dn_procfs_open(&p->fs, pid, keep = false);
    if (rc) {
        free(p);
        if (rc == -EMFILE || rc == -ENFILE)
            c->unreadable_now++;
        *err = rc;
        return NULL;
    }
    c->kept += keep;
    char cmd[1024];
    int crc = dn_procfs_command(pid, cmd, sizeof cmd);
    if (crc < 0)
        cmd[0] = '\0';
    p->cmd_from_comm = crc != 0;
    p->command = dn_collector_intern(c, cmd);
    if (!p->command) {
        dn_procfs_close(&p->fs);
        free(p);
        *err = -ENOMEM;
        return NULL;
    }
    if (dn_grow(&c->rows, &c->rows_cap, c->nrows + 1, sizeof *c->rows, 32)) {
        dn_procfs_close(&p->fs);
        free(p);
        *err = -ENOMEM;
        return NULL;
    }
    p->row = c->nrows++;
    c->rows[p->row] = (struct dn_proc_row){.pid = pid, .command = p->command};
    memmove(&c->procs[at + 1], &c->procs[at], (c->nprocs - at) * sizeof *c->procs);
    c->procs[at] = p;
    c->nprocs++;
    c->processes_seen++;
    *err = 0;
    return p;
}

static void proc_free(struct dn_collector *c, struct dn_proc *p)
{
    if (!p->fs.transient)
        c->kept--;
    dn_procfs_close(&p->fs);
    free(p->kids);
    free(p);
}

static inline uint64_t sub_sat(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

/* The user/system split of rtime ns in the ratio ut:st, as the kernel's cputime_adjust()
 * does for /proc/PID/stat and getrusage: all user when there is no system time, never
 * below the previous split of the same process (a split read from coarser ticks may
 * move back and forth). */
static void split_cpu(uint64_t rtime, uint64_t ut, uint64_t st, uint64_t prev_user,
                      uint64_t prev_sys, uint64_t *user, uint64_t *sys)
{
    uint64_t s;
    if (st == 0)
        s = 0;
    else if (ut == 0)
        s = rtime;
    else
        s = (uint64_t)((unsigned __int128)st * rtime / ((unsigned __int128)ut + st));
    if (s < prev_sys)
        s = prev_sys;
    if (s > rtime)
        s = rtime;
    uint64_t u = rtime - s;
    if (u < prev_user) {
        u = prev_user <= rtime ? prev_user : rtime;
        s = rtime - u;
    }
    *user = u;
    *sys = s;
}

/* Turns one raw read into relative Metrics and updates the process's history. */
static void proc_update(struct dn_collector *c, struct dn_proc *p, const struct dn_proc_raw *r,
                        int64_t mono_ns, int64_t now_ms, double boot_secs)
{
    /* A child found between its fork and its exec showed its parent's command line; the
     * task name changes at exec, and then the command is read again. */
    /* One read in the middle of an exec finds no command line yet: it is read again
     * until there is one (a live process that has one never loses it). */
    if ((strcmp(p->comm, r->comm) != 0 && p->comm[0]) || (p->cmd_from_comm && r->state != 'Z')) {
        char cmd[1024];
        int crc = dn_procfs_command(p->fs.pid, cmd, sizeof cmd);
        if (crc == 0 || (crc == 1 && !p->cmd_from_comm)) {
            const char *interned = dn_collector_intern(c, cmd);
            if (interned) {
                p->command = interned;
                p->cmd_from_comm = crc == 1;
            }
        }
    }
    if (strcmp(p->comm, r->comm) != 0)
        memcpy(p->comm, r->comm, sizeof p->comm);
    if (!p->have_prev) {
        /* A process that started after monitoring began is counted from zero: all of its
         * work happened under observation. */
        double start_secs = (double)r->start_ticks / (double)dn_clk_tck();
        bool started_before = start_secs + 1.0 / (double)dn_clk_tck() < c->o.t0_boot;
        if (!c->o.since_process_start && started_before) {
            p->base = *r;
            /* Its high-water mark covers its whole life: reset it to the current RSS so
             * the peak is the watched interval's. Where that is not allowed (another
             * user's process), only the RSS read while watching counts. */
            p->hwm_untrusted = dn_procfs_reset_hwm(p->fs.pid) != 0;
            p->skip_hwm_once = true;
            split_cpu(r->cpu_ns, r->utime_raw, r->stime_raw, 0, 0, &p->base_user_ns,
                      &p->base_sys_ns);
            p->prev_user_ns = p->base_user_ns;
            p->prev_sys_ns = p->base_sys_ns;
        } else {
            memset(&p->base, 0, sizeof p->base);
            p->base_user_ns = p->base_sys_ns = 0;
        }
    }
    struct dn_metrics *m = &p->last;
    double uptime = boot_secs - (double)r->start_ticks / (double)dn_clk_tck();
    if (uptime < 0)
        uptime = 0;
    m->ts_ms = now_ms;
    if (p->have_prev && mono_ns > p->prev_mono_ns) {
        uint64_t dcpu = sub_sat(r->cpu_ns, p->prev_cpu_ns);
        m->cpu_usage = (double)dcpu * 100.0 / (double)(mono_ns - p->prev_mono_ns);
    } else {
        /* First read: the average since the process started. */
        m->cpu_usage = uptime > 0.001 ? (double)r->cpu_ns / 1e9 / uptime * 100.0 : 0.0;
    }
    m->cpu_usage = (double)(int64_t)(m->cpu_usage * 1000.0 + 0.5) / 1000.0;
    /* A process on its way out (past exit_mm, or a zombie) has no memory left: its last
     * live values stand, so a chart of the run does not end in a drop to zero that never
     * happened. A live process always has some virtual memory. */
    bool exiting = (r->state == 'Z' || r->vsize_bytes == 0) && p->have_prev;
    if (!exiting) {
        m->mem_rss_kb = r->rss_pages * (uint64_t)dn_page_kb();
        m->mem_vms_kb = r->vsize_bytes / 1024;
        m->thread_count = r->num_threads;
    }
    if (r->have_io) {
        m->disk_read_bytes = sub_sat(r->read_bytes, p->base.read_bytes);
        m->disk_write_bytes = sub_sat(r->write_bytes, p->base.write_bytes);
        m->syscall_read_bytes = sub_sat(r->rchar, p->base.rchar);
        m->syscall_write_bytes = sub_sat(r->wchar, p->base.wchar);
    } else { /* not permitted: unknown, never a 0 that reads as "no I/O" */
        m->disk_read_bytes = m->disk_write_bytes = DN_U64_NONE;
        m->syscall_read_bytes = m->syscall_write_bytes = DN_U64_NONE;
    }
    m->page_faults_cached = sub_sat(r->minflt, p->base.minflt);
    m->page_faults_disk = sub_sat(r->majflt, p->base.majflt);
    m->uptime_secs = (uint64_t)uptime;
    m->cpu_core = r->processor;
    p->ppid = r->ppid;
    uint64_t user_ns, sys_ns;
    split_cpu(r->cpu_ns, r->utime_raw, r->stime_raw, p->prev_user_ns, p->prev_sys_ns, &user_ns,
              &sys_ns);
    p->prev_user_ns = user_ns;
    p->prev_sys_ns = sys_ns;
    m->cpu_user_secs = (double)sub_sat(user_ns, p->base_user_ns) / 1e9;
    m->cpu_system_secs = (double)sub_sat(sys_ns, p->base_sys_ns) / 1e9;
    m->ctx_switches_voluntary = sub_sat(r->nvcsw, p->base.nvcsw);
    m->ctx_switches_involuntary = sub_sat(r->nivcsw, p->base.nivcsw);
    m->blkio_delay_secs = c->o.blkio_accounted
                              ? (double)sub_sat(r->blkio_delay_ns, p->base.blkio_delay_ns) / 1e9
                              : NAN;
    /* Filled in by the session from its eBPF socket counter, when it has one. */
    m->sock_rx_bytes = m->sock_tx_bytes = DN_U64_NONE;
    m->sock_rx_bytes_remote = m->sock_tx_bytes_remote = DN_U64_NONE;
    p->prev_cpu_ns = r->cpu_ns;
    p->prev_mono_ns = mono_ns;
    p->have_prev = true;
    p->last_cpu_ns = r->cpu_ns;
    uint64_t peak = r->hwm_kb && !p->hwm_untrusted && !p->skip_hwm_once ? r->hwm_kb
                                                                        : m->mem_rss_kb;
    p->skip_hwm_once = false;
    struct dn_proc_row *row = &c->rows[p->row];
    row->ppid = r->ppid;
    row->command = p->command;
    uint64_t cpu = sub_sat(r->cpu_ns, p->base.cpu_ns);
    if (cpu > row->cpu_ns)
        row->cpu_ns = cpu;
    if (peak > row->peak_rss_kb)
        row->peak_rss_kb = peak;
    row->disk_read_bytes = m->disk_read_bytes;
    row->disk_write_bytes = m->disk_write_bytes;
    row->syscall_read_bytes = m->syscall_read_bytes;
    row->syscall_write_bytes = m->syscall_write_bytes;
    if (peak > c->peak_process_rss_kb)
        c->peak_process_rss_kb = peak;
}

/* ---- construction ------------------------------------------------------------------ */

/* Each process read through /proc keeps DN_FDS_PER_PROC descriptors open. They come out
 * of the host program's own limit, so at most half of what is free now is used, and a
 * quarter of the limit (at least 32) always stays free for the host; processes past
 * that are read by opening and closing their files at each sample. */
#define DN_FDS_PER_PROC 6

static size_t keep_budget(void)
{
    size_t limit, free_now = dn_fds_free(&limit);
    if (free_now == SIZE_MAX)
        return SIZE_MAX / DN_FDS_PER_PROC;
    size_t reserve = limit / 4 > 32 ? limit / 4 : 32;
    if (free_now <= reserve)
        return 0;
    return (free_now - reserve) / 2 / DN_FDS_PER_PROC;
}

/* /proc/loadavg, whose last field is the last pid given out in our pid namespace: only
 * when /proc is that namespace's (it shows our own pid as ours). */
static int open_loadavg(void)
{
    char self[32];
    ssize_t n = readlink("/proc/self", self, sizeof self - 1);
    if (n <= 0)
        return -1;
    self[n] = '\0';
    if (strtol(self, NULL, 10) != (long)getpid())
        return -1;
    return open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
}

/* Moves fork_epoch on when a process (or thread) was created since the last call. */
static void read_last_pid(struct dn_collector *c)
{
    char buf[128];
    ssize_t n = c->loadavg_fd >= 0 ? pread(c->loadavg_fd, buf, sizeof buf - 1, 0) : -1;
    const char *sp = NULL;
    if (n > 0) {
        buf[n] = '\0';
        sp = strrchr(buf, ' ');
    }
    long last = sp ? strtol(sp + 1, NULL, 10) : -1;
    if (last < 0 || last != c->last_pid)
        c->fork_epoch++;
    c->last_pid = last;
}

struct dn_collector *dn_collector_new(const struct dn_collector_opts *o, int *err)
{
    struct dn_collector *c = calloc(1, sizeof *c);
    if (!c) {
        *err = -ENOMEM;
        return NULL;
    }
    c->o = *o;
    c->net_fd = -1;
    c->loadavg_fd = open_loadavg();
    c->keep_max = keep_budget();
    c->always_full = getenv("DENET_ALWAYS_FULL_READ") != NULL;
    c->uring_off = getenv("DENET_NO_URING") != NULL;
    c->first_ts_ms = -1;
    int rc = 0;
    struct dn_proc *root = proc_open(c, o->root, &rc);
    if (!root) {
        *err = rc;
        dn_collector_free(c);
        return NULL;
    }
    int nfd = dn_netdev_open(o->root);
    c->net_fd = nfd >= 0 ? nfd : -1;
    *err = 0;
    return c;
}

void dn_collector_free(struct dn_collector *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nprocs; i++)
        proc_free(c, c->procs[i]);
    free(c->procs);
    free(c->queue);
    if (c->net_fd >= 0)
        close(c->net_fd);
    free(c->net_buf);
    if (c->loadavg_fd >= 0)
        close(c->loadavg_fd);
    for (size_t i = 0; i < c->pool_cap; i++)
        free(c->pool[i]);
    free(c->pool);
    free(c->snap);
    free(c->rows);
    free(c->exited);
    free(c->recs);
    free(c->iprocs);
    dn_uring_close(c->uring);
    free(c->batch);
    free(c->ops);
    free(c);
}

/* ---- collection -------------------------------------------------------------------- */

static int queue_push(struct dn_collector *c, pid_t pid)
{
    int rc = dn_grow(&c->queue, &c->queue_cap, c->queue_len + 1, sizeof *c->queue, 64);
    if (rc)
        return rc;
    c->queue[c->queue_len++] = pid;
    return 0;
}

static struct dn_exited *exited_find(struct dn_collector *c, uint32_t tgid)
{
    for (size_t i = 0; i < c->exited_len; i++)
        if (c->exited[i].tgid == tgid)
            return &c->exited[i];
    return NULL;
}

/* Reads the BPF map: live tracked processes go to the queue; the CPU time of exited ones
 * is added to the total once (and again if a late thread adds to it). Returns the CPU
 * time of exited processes counted so far. */
static int tracker_pass(struct dn_collector *c, int64_t mono_ns, bool queue_live)
{
    int rc = dn_tracker_snapshot(c->o.tracker, &c->snap, &c->snap_len, &c->snap_cap);
    if (rc)
        return rc;
    for (size_t i = 0; i < c->snap_len; i++) {
        const struct dn_tracked_entry *e = &c->snap[i];
        if (!e->val.exit_ns) {
            if (queue_live && (pid_t)e->tgid != c->o.root && (rc = queue_push(c, (pid_t)e->tgid)))
                return rc;
            continue;
        }
        struct dn_exited *x = exited_find(c, e->tgid);
        if (!x) {
            if (dn_grow(&c->exited, &c->exited_cap, c->exited_len + 1, sizeof *c->exited, 32))
                return -ENOMEM;
            x = &c->exited[c->exited_len++];
            x->tgid = e->tgid;
            x->counted_ns = 0;
        }
        /* Threads that exited before the process was tracked are only in our last read
         * of its clock; the larger of the two is the better lower bound. */
        uint64_t final_ns = e->val.exited_cpu_ns;
        struct dn_proc *p = proc_find(c, (pid_t)e->tgid);
        if (p && p->last_cpu_ns > final_ns)
            final_ns = p->last_cpu_ns;
        if (p) /* only what it did while watched */
            final_ns = sub_sat(final_ns, p->base.cpu_ns);
        uint64_t peak_kb = e->val.hiwater_pages * (uint64_t)dn_page_kb();
        if (p && p->hwm_untrusted)
            peak_kb = 0;
        if (p) {
            struct dn_proc_row *row = &c->rows[p->row];
            row->exited = true;
            if (final_ns > row->cpu_ns)
                row->cpu_ns = final_ns;
            if (peak_kb > row->peak_rss_kb)
                row->peak_rss_kb = peak_kb;
        }
        if (peak_kb > c->peak_process_rss_kb)
            c->peak_process_rss_kb = peak_kb;
        if (final_ns > x->counted_ns) {
            c->exited_cpu_ns += final_ns - x->counted_ns;
            x->counted_ns = final_ns;
        }
        if (mono_ns - (int64_t)e->val.exit_ns > DN_EXIT_SETTLE_NS) {
            dn_tracker_forget(c->o.tracker, (pid_t)e->tgid);
            *x = c->exited[--c->exited_len];
        }
    }
    return 0;
}

static bool tracked_exited(const struct dn_collector *c, pid_t pid)
{
    for (size_t i = 0; i < c->exited_len; i++)
        if ((pid_t)c->exited[i].tgid == pid)
            return true;
    return false;
}

static void add_metrics(struct dn_metrics *sum, const struct dn_metrics *m)
{
    sum->cpu_usage += m->cpu_usage;
    sum->mem_rss_kb += m->mem_rss_kb;
    sum->mem_vms_kb += m->mem_vms_kb;
    sum->disk_read_bytes = dn_u64_add(sum->disk_read_bytes, m->disk_read_bytes);
    sum->disk_write_bytes = dn_u64_add(sum->disk_write_bytes, m->disk_write_bytes);
    sum->syscall_read_bytes = dn_u64_add(sum->syscall_read_bytes, m->syscall_read_bytes);
    sum->syscall_write_bytes = dn_u64_add(sum->syscall_write_bytes, m->syscall_write_bytes);
    sum->page_faults_cached += m->page_faults_cached;
    sum->page_faults_disk += m->page_faults_disk;
    sum->thread_count += m->thread_count;
    sum->sock_rx_bytes = dn_u64_add(sum->sock_rx_bytes, m->sock_rx_bytes);
    sum->sock_tx_bytes = dn_u64_add(sum->sock_tx_bytes, m->sock_tx_bytes);
    sum->sock_rx_bytes_remote = dn_u64_add(sum->sock_rx_bytes_remote, m->sock_rx_bytes_remote);
    sum->sock_tx_bytes_remote = dn_u64_add(sum->sock_tx_bytes_remote, m->sock_tx_bytes_remote);
    sum->cpu_user_secs += m->cpu_user_secs;
    sum->cpu_system_secs += m->cpu_system_secs;
    sum->ctx_switches_voluntary += m->ctx_switches_voluntary;
    sum->ctx_switches_involuntary += m->ctx_switches_involuntary;
    sum->blkio_delay_secs += m->blkio_delay_secs; /* NaN (unknown) stays NaN */
}

/* Processes not read in this collection have exited: keep what they did. */
static void sweep_departed(struct dn_collector *c)
{
    /* A child reaped by a parent that is still in the tree has its I/O added to that
     * parent's counters by the kernel (wait_task_zombie folds it into the parent's
     * signal I/O, which /proc/PID/io and the iterator include): keeping its last
     * reading as well would count it twice. Only a process reaped by someone outside
     * the tree (an orphan's reaper) keeps its last reading here. Decided before the
     * table is compacted, while proc_find still works. */
    for (size_t i = 0; i < c->nprocs; i++) {
        struct dn_proc *p = c->procs[i];
        if (p->gen == c->gen)
            continue;
        const struct dn_proc *parent = p->ppid > 0 ? proc_find(c, p->ppid) : NULL;
        p->absorbed = parent && parent->gen == c->gen;
    }
    size_t w = 0;
    c->departed_last = false;
    for (size_t i = 0; i < c->nprocs; i++) {
        struct dn_proc *p = c->procs[i];
        if (p->gen == c->gen) {
            c->procs[w++] = p;
            continue;
        }
        if (!p->absorbed) {
            c->departed_disk_read = dn_u64_add(c->departed_disk_read, p->last.disk_read_bytes);
            c->departed_disk_write =
                dn_u64_add(c->departed_disk_write, p->last.disk_write_bytes);
            c->departed_sys_read = dn_u64_add(c->departed_sys_read, p->last.syscall_read_bytes);
            c->departed_sys_write =
                dn_u64_add(c->departed_sys_write, p->last.syscall_write_bytes);
        }
        c->departed_last = true;
        c->rows[p->row].exited = true;
        proc_free(c, p);
    }
    c->nprocs = w;
}

/* What is worth reading ahead for p: the files of an idle read when it was idle at the
 * last collection (1), those of a full read when it ran or one is due (2), or none (0). */
static int ahead_kind(const struct dn_collector *c, const struct dn_proc *p, int64_t t)
{
    if (p->fs.transient || !p->have_raw)
        return 0;
    if (!c->always_full && p->idle_last && t < p->next_full_ns)
        return p->fs.statm_fd >= 0 ? 1 : 0;
    return p->fs.stat_ahead_len > 0 && p->fs.stat_fd >= 0 ? 2 : 0;
}

/* Takes the result of one read ahead: the text, NUL-terminated. */
static int take_read(const struct dn_uring_read *op)
{
    if (op->res <= 0)
        return op->res < 0 ? op->res : -ESRCH;
    op->buf[op->res] = '\0';
    return op->res;
}

static unsigned digits(uint64_t v)
{
    unsigned n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

static void ahead(struct dn_collector *c, size_t *k, struct dn_batch *b, int slot, int fd,
                  unsigned len, char *buf, size_t size)
{
    if (fd < 0 || len == 0 || len >= size)
        return;
    b->res[slot] = -EINPROGRESS;
    c->ops[(*k)++] = (struct dn_uring_read){fd, len, buf, 0};
}

static void uring_off(struct dn_collector *c)
{
    dn_uring_close(c->uring);
    c->uring = NULL;
    c->uring_off = true;
}

/* Reads ahead, for every process of the table, the files its read in this collection
 * will most likely need, all in one io_uring call instead of a system call each:
 *
 * - for a process that was idle: statm (memory, which reclaim can change while a
 *   process sleeps) and, single-threaded, schedstat (its thread's run time, which is
 *   then all its CPU clock counts: read_procfs needs no clock when it has not moved);
 * - for one that ran: its CPU clock first, then stat, io and status. A read through a
 *   kept descriptor that succeeds after the clock tells that the pid was not reaped, so
 *   not reused, when the clock was read (see dn_procfs_ahead).
 *
 * Each read asks only for the fields used, as long as they were last time with what
 * ends them ("size resident ", "runtime ", stat to field 42, io to write_bytes), always
 * no more than the file holds: io_uring completes a read that fills its buffer in the
 * call itself (the files are opened O_NONBLOCK, else each read would go to a kernel
 * worker thread), where a shorter one reads the file a second time to find its end. A
 * field that has grown a digit is seen cut short, and that file is read again the
 * ordinary way. */
static void prefetch(struct dn_collector *c, int64_t t)
{
    if (c->uring_off)
        return;
    size_t n = 0;
    for (size_t i = 0; i < c->nprocs; i++)
        n += ahead_kind(c, c->procs[i], t) != 0;
    if (n == 0)
        return;
    if (!c->uring) {
        int err;
        c->uring = dn_uring_open(256, &err);
        if (!c->uring) {
            c->uring_off = true;
            return;
        }
    }
    if (dn_grow(&c->batch, &c->batch_cap, n, sizeof *c->batch, 32) ||
        dn_grow(&c->ops, &c->ops_cap, 3 * n, sizeof *c->ops, 64))
        return;
    size_t k = 0, j = 0;
    for (size_t i = 0; i < c->nprocs; i++) {
        struct dn_proc *p = c->procs[i];
        int kind = ahead_kind(c, p, t);
        if (!kind)
            continue;
        struct dn_batch *b = &c->batch[j];
        p->batch = j++;
        p->batch_gen = c->gen;
        for (int s = 0; s < DN_AHEAD_N; s++)
            b->res[s] = -ENOENT;
        b->have_cpu = false;
        if (kind == 1) {
            uint64_t size_pages = p->last_raw.vsize_bytes / 1024 / (uint64_t)dn_page_kb();
            ahead(c, &k, b, DN_AHEAD_STATM, p->fs.statm_fd,
                  digits(size_pages) + digits(p->last_raw.rss_pages) + 2, b->statm,
                  sizeof b->statm);
            /* Its thread's run time is at most the process's CPU time, and the same once
             * the first schedstat has been read. */
            if (p->last_raw.num_threads == 1)
                ahead(c, &k, b, DN_AHEAD_SCHED, p->fs.schedstat_fd,
                      digits(p->sched_valid ? p->sched_ns : p->last_raw.cpu_ns) + 1, b->sched,
                      sizeof b->sched);
        } else {
            b->have_cpu = dn_procfs_cpu_ns(&p->fs, &b->cpu_ns) == 0;
            ahead(c, &k, b, DN_AHEAD_STAT, p->fs.stat_fd, p->fs.stat_ahead_len, b->stat,
                  sizeof b->stat);
            if (b->have_cpu)
                ahead(c, &k, b, DN_AHEAD_STATUS, p->fs.status_fd, p->fs.status_ahead_len,
                      b->status, sizeof b->status);
            if (!p->fs.io_denied)
                ahead(c, &k, b, DN_AHEAD_IO, p->fs.io_fd, p->fs.io_ahead_len, b->io,
                      sizeof b->io);
        }
    }
    if (dn_uring_read_all(c->uring, c->ops, k) != 0) {
        /* Never again: reads may still be queued in it. The sample goes on without. */
        uring_off(c);
        for (size_t i = 0; i < c->nprocs; i++)
            c->procs[i]->batch_gen = c->gen - 1;
        return;
    }
    size_t nops = k, unsupported = 0;
    k = 0;
    for (size_t i = 0; i < c->nprocs && k < nops; i++) {
        struct dn_proc *p = c->procs[i];
        if (p->batch_gen != c->gen)
            continue;
        struct dn_batch *b = &c->batch[p->batch];
        for (int s = 0; s < DN_AHEAD_N; s++) {
            if (b->res[s] != -EINPROGRESS)
                continue;
            b->res[s] = take_read(&c->ops[k++]);
            unsupported += b->res[s] == -EINVAL || b->res[s] == -EOPNOTSUPP;
        }
    }
    if (nops && unsupported == nops) /* a kernel whose io_uring cannot read these files */
        uring_off(c);
}

/* Reads a process through /proc. A process whose CPU clock has not moved since the last
 * read has not run, so its counters, threads and children cannot have changed: only its
 * memory is read again (reclaim can shrink it), from statm, at a quarter of the cost.
 * A full read still happens at least every DN_FULL_READ_PERIOD_NS. Returns 1 for such
 * an idle read, 0 for a full one, -1 when the process is gone.
 *
 * With a read ahead (prefetch), statm comes from it, and a single-threaded process
 * whose schedstat run time is the one the previous collection's prefetch read has not
 * run since then, nor since its last full read, which came after that prefetch: its
 * clock is not read either. A full read takes stat and io from it. */
static int read_procfs(const struct dn_collector *c, struct dn_proc *p, struct dn_proc_raw *raw,
                       int64_t t)
{
    const struct dn_batch *b = p->batch_gen == c->gen ? &c->batch[p->batch] : NULL;
    uint64_t sched = 0;
    bool have_sched = b && b->res[DN_AHEAD_SCHED] > 0 &&
                      dn_procfs_parse_schedstat(b->sched, &sched) == 0 &&
                      sched != 0; /* 0: schedstat without scheduler statistics */
    bool sched_idle = have_sched && p->sched_valid && p->sched_gen == c->gen - 1 &&
                      sched == p->sched_ns;
    p->sched_valid = have_sched;
    p->sched_gen = c->gen;
    p->sched_ns = sched;
    /* The clock read ahead, before the texts read ahead, or read now. */
    bool clock_ahead = b && b->have_cpu;
    uint64_t ns = clock_ahead ? b->cpu_ns : 0;
    bool have_ns = clock_ahead;
    if (!c->always_full && p->have_raw && t < p->next_full_ns &&
        (sched_idle ||
         ((have_ns = have_ns || dn_procfs_cpu_ns(&p->fs, &ns) == 0) &&
          ns == p->last_raw.cpu_ns))) {
        *raw = p->last_raw;
        int mrc = -EINVAL;
        if (b && b->res[DN_AHEAD_STATM] > 0)
            mrc = dn_procfs_parse_statm(b->statm, raw);
        else if (clock_ahead && b->res[DN_AHEAD_STATUS] > 0) /* ran last time, not since */
            mrc = dn_procfs_parse_status_memory(b->status, raw);
        if (mrc == -EINVAL) /* not prefetched, or a field grew a digit */
            mrc = dn_procfs_read_memory(&p->fs, raw);
        if (mrc == 0) {
            p->last_raw = *raw;
            p->idle_last = true;
            return 1;
        }
    }
    p->idle_last = false;
    bool want_hwm = t >= p->next_hwm_ns;
    struct dn_procfs_ahead ah = {b && b->res[DN_AHEAD_STAT] > 0 ? b->stat : NULL,
                                 b && b->res[DN_AHEAD_IO] > 0 ? b->io : NULL,
                                 b && b->res[DN_AHEAD_STATUS] > 0 ? b->status : NULL,
                                 clock_ahead};
    if (dn_procfs_read(&p->fs, raw, want_hwm, have_ns ? &ns : NULL,
                       ah.stat || ah.io || ah.status ? &ah : NULL) != 0)
        return -1;
    if (raw->num_threads > 1)
        /* its own files give the main thread's */
        dn_procfs_read_threads(&p->fs, raw, c->o.blkio_accounted);
    if (want_hwm)
        p->next_hwm_ns = t + DN_HWM_PERIOD_NS;
    p->last_raw = *raw;
    p->have_raw = true;
    p->next_full_ns = t + DN_FULL_READ_PERIOD_NS;
    return 0;
}

/* Reads p's children into the queue and keeps the list. */
static int read_children(struct dn_collector *c, struct dn_proc *p, uint64_t num_threads,
                         int64_t t)
{
    size_t start = c->queue_len;
    int rc = dn_procfs_children(&p->fs, num_threads, &c->queue, &c->queue_len, &c->queue_cap);
    if (rc)
        return rc;
    size_t n = c->queue_len - start;
    if (dn_grow(&p->kids, &p->kids_cap, n, sizeof *p->kids, 8))
        return -ENOMEM;
    if (n)
        memcpy(p->kids, c->queue + start, n * sizeof *p->kids);
    p->nkids = n;
    p->have_kids = true;
    p->kids_epoch = c->fork_epoch;
    /* Re-read now and then anyway: a subreaper adopts orphans without running. */
    p->next_kids_ns = t + DN_FULL_READ_PERIOD_NS;
    return 0;
}

/* Queues the children of p: read from /proc, or the list read before when p cannot have
 * forked since: it has not run, or nothing on the machine was forked (fork_epoch). A
 * child can also come by adoption, when its parent exits: repair_walk sees to that. */
static int find_children(struct dn_collector *c, struct dn_proc *p, const struct dn_proc_raw *raw,
                         int idle, int64_t t)
{
    if (p->have_kids && t < p->next_kids_ns &&
        (idle == 1 || (c->loadavg_fd >= 0 && p->kids_epoch == c->fork_epoch))) {
        p->kids_cached_gen = c->gen;
        /* Only children still in the table: their kept files belong to the process that
         * was read, so a pid reused since (by anyone) is never opened from this list. */
        for (size_t i = 0; i < p->nkids; i++) {
            if (!proc_find(c, p->kids[i]))
                continue;
            int rc = queue_push(c, p->kids[i]);
            if (rc)
                return rc;
        }
        return 0;
    }
    return read_children(c, p, raw->num_threads, t);
}

/* After the walk: a process of the table that it did not reach has exited, or was
 * adopted (by the nearest subreaper above its exited parent, which need not run for
 * that) into a list taken from the cache. Re-reads the lists that came from the cache
 * of every reached ancestor of such a process, by the parents last read, and queues
 * what they hold. */
static int repair_walk(struct dn_collector *c, int64_t t)
{
    for (size_t i = 0; i < c->nprocs; i++) {
        const struct dn_proc *p = c->procs[i];
        if (p->gen == c->gen)
            continue;
        struct dn_proc *a = p->ppid > 0 ? proc_find(c, p->ppid) : NULL;
        for (size_t steps = 0; a && steps < c->nprocs; steps++) {
            if (a->gen == c->gen && a->kids_cached_gen == c->gen) {
                a->kids_cached_gen = 0;
                int rc = read_children(c, a, a->last_raw.num_threads, t);
                if (rc)
                    return rc;
            }
            a = a->ppid > 0 ? proc_find(c, a->ppid) : NULL;
        }
    }
    return 0;
}

static int cmp_rec(const void *a, const void *b)
{
    const struct dn_task_rec *x = a, *y = b;
    if (x->tgid != y->tgid)
        return x->tgid < y->tgid ? -1 : 1;
    return (int)y->is_leader - (int)x->is_leader; /* leader first */
}

/* One read of the BPF task iterator, folded per process the way /proc folds a thread
 * group: the counters of exited threads (signal_struct) plus those of live threads. */
static int iter_pass(struct dn_collector *c)
{
    int rc = dn_tracker_read_tasks(c->o.tracker, &c->recs, &c->recs_len, &c->recs_cap);
    if (rc)
        return rc;
    /* The walk goes by thread id, so a tree of single-threaded processes comes sorted. */
    bool sorted = true;
    for (size_t i = 1; i < c->recs_len && sorted; i++)
        sorted = cmp_rec(&c->recs[i - 1], &c->recs[i]) <= 0;
    if (!sorted)
        qsort(c->recs, c->recs_len, sizeof *c->recs, cmp_rec);
    c->iprocs_len = 0;
    uint64_t tck = (uint64_t)dn_clk_tck();
    uint64_t page_kb = (uint64_t)dn_page_kb();
    for (size_t i = 0; i < c->recs_len;) {
        const struct dn_task_rec *lead = &c->recs[i];
        size_t j = i;
        while (j < c->recs_len && c->recs[j].tgid == lead->tgid)
            j++;
        if (!lead->is_leader) { /* leader not seen in this pass: skip the process */
            i = j;
            continue;
        }
        if (dn_grow(&c->iprocs, &c->iprocs_cap, c->iprocs_len + 1, sizeof *c->iprocs, 32))
            return -ENOMEM;
        struct dn_iter_proc *ip = &c->iprocs[c->iprocs_len++];
        struct dn_proc_raw *r = &ip->raw;
        memset(r, 0, sizeof *r);
        ip->tgid = (pid_t)lead->tgid;
        r->cpu_ns = lead->dead_runtime_ns;
        r->minflt = lead->dead_min_flt;
        r->majflt = lead->dead_maj_flt;
        r->rchar = lead->dead_rchar;
        r->wchar = lead->dead_wchar;
        r->read_bytes = lead->dead_read_bytes;
        r->write_bytes = lead->dead_write_bytes;
        r->utime_raw = lead->dead_utime_ns;
        r->stime_raw = lead->dead_stime_ns;
        r->nvcsw = lead->dead_nvcsw;
        r->nivcsw = lead->dead_nivcsw;
        bool on_cpu = false;
        for (size_t k = i; k < j; k++) {
            const struct dn_task_rec *t = &c->recs[k];
            on_cpu |= t->on_cpu != 0;
            r->utime_raw += t->utime_ns;
            r->stime_raw += t->stime_ns;
            r->nvcsw += t->nvcsw;
            r->nivcsw += t->nivcsw;
            r->blkio_delay_ns += t->blkio_delay_ns;
            r->cpu_ns += t->runtime_ns;
            r->minflt += t->min_flt;
            r->majflt += t->maj_flt;
            r->rchar += t->rchar;
            r->wchar += t->wchar;
            r->read_bytes += t->read_bytes;
            r->write_bytes += t->write_bytes;
        }
        r->state = lead->exit_state ? 'Z' : 'R';
        r->ppid = (pid_t)lead->ppid;
        r->child_cpu_ns = lead->child_cpu_ns;
        r->num_threads = lead->nr_threads;
        r->start_ticks = lead->start_boottime_ns / (1000000000ULL / tck);
        r->vsize_bytes = lead->total_vm_pages * page_kb * 1024;
        r->rss_pages = lead->rss_pages;
        r->processor = lead->cpu;
        uint64_t hw = lead->hiwater_rss_pages > lead->rss_pages ? lead->hiwater_rss_pages
                                                                 : lead->rss_pages;
        r->hwm_kb = hw * page_kb;
        r->have_io = true;
        /* The process clock (clock_gettime on the process's CPU clock) adds up the same
         * per-thread se.sum_exec_runtime and the signal's sum_sched_runtime, under the
         * signal's lock. A thread off the CPU has its sum up to date, so when none of the
         * threads is on a CPU and the records are all the live threads (none exited or
         * started during the walk, which would count it twice or not at all), the sum
         * above is what the clock would give, and the clock is not read. */
        ip->cpu_settled = !on_cpu && (uint64_t)(j - i) == lead->nr_threads;
        memcpy(r->comm, lead->comm, sizeof r->comm);
        r->comm[sizeof r->comm - 1] = '\0';
        i = j;
    }
    return 0;
}

static const struct dn_iter_proc *iter_find(const struct dn_collector *c, pid_t tgid)
{
    size_t lo = 0, hi = c->iprocs_len;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c->iprocs[mid].tgid == tgid)
            return &c->iprocs[mid];
        if (c->iprocs[mid].tgid < tgid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int dn_collector_collect(struct dn_collector *c, struct dn_sample *out)
{
    int rc = 0;
    memset(out, 0, sizeof *out);
    out->tree = c->o.include_children;
    c->gen++;
    int64_t now_ms = dn_now_ms();
    double boot = dn_boottime_secs();
    int64_t mono = dn_monotonic_ns();

    uint64_t rx = 0, tx = 0;
    if (c->net_fd >= 0 && dn_netdev_read(c->net_fd, &c->net_buf, &c->net_cap, &rx, &tx) == 0) {
        if (!c->net_have_base) {
            c->net_rx_base = c->o.since_process_start ? 0 : rx;
            c->net_tx_base = c->o.since_process_start ? 0 : tx;
            c->net_have_base = true;
        }
        rx = sub_sat(rx, c->net_rx_base);
        tx = sub_sat(tx, c->net_tx_base);
    }

    c->queue_len = 0;
    c->unreadable_now = 0;
    if ((rc = queue_push(c, c->o.root)))
        return rc;
    bool use_tracker = c->o.tracker && c->o.include_children;
    bool use_iter = use_tracker && dn_tracker_has_task_iter(c->o.tracker) && iter_pass(c) == 0;
    int64_t iter_t = use_iter ? dn_monotonic_ns() : 0;
    /* With the task iterator the live tree is known without the map; the map (whose batch
     * read walks every bucket) is then read for exits only when a process left the tree,
     * the root is exiting, or a second has passed. */
    bool root_exiting = use_iter && (!iter_find(c, c->o.root) ||
                                     iter_find(c, c->o.root)->raw.state == 'Z');
    if (use_tracker && (!use_iter || c->departed_last || root_exiting ||
                        mono >= c->next_snapshot_ns)) {
        if ((rc = tracker_pass(c, mono, !use_iter))) {
            use_tracker = use_iter = false; /* map unreadable: walk /proc */
        } else {
            c->next_snapshot_ns = mono + DN_SNAPSHOT_PERIOD_NS;
        }
    }
    if (!use_iter)
        prefetch(c, mono);
    if (c->o.include_children && !use_tracker)
        read_last_pid(c);
    if (use_iter) {
        /* A zombie child's CPU time is in the exit hook's record (its exit is in the map):
         * read as a live process it would be counted twice. */
        for (size_t i = 0; i < c->iprocs_len; i++)
            if (c->iprocs[i].tgid != c->o.root && c->iprocs[i].raw.state != 'Z' &&
                (rc = queue_push(c, c->iprocs[i].tgid)))
                return rc;
    }

    size_t nchildren = 0, children_cap = 0;
    struct dn_child *children = NULL;
    struct dn_metrics agg = {0};
    uint64_t live_cpu_ns = 0;
    bool root_ok = false;

    size_t qi = 0;
walk:
    for (; qi < c->queue_len; qi++) {
        pid_t pid = c->queue[qi];
        /* An exited tracked process is counted through the map, not read again. The root
         * is still read once as a zombie for its final counters, but not added twice. */
        bool exited = use_tracker && tracked_exited(c, pid);
        if (exited && qi > 0)
            continue;
        struct dn_proc *p = proc_find(c, pid);
        if (!p) {
            int err = 0;
            p = proc_open(c, pid, &err);
            if (!p) {
                if (err == -ENOMEM) {
                    rc = err;
                    goto fail;
                }
                continue;
            }
        } else if (p->gen == c->gen) {
            continue; /* already read in this pass */
        }
        struct dn_proc_raw raw;
        int idle = 0;
        const struct dn_iter_proc *ir = use_iter ? iter_find(c, pid) : NULL;
        if (use_iter && !ir && qi > 0)
            continue; /* gone: swept below */
        /* The time of the figures: the iterator's read for what it gave whole (one
         * clock read a sample instead of one a process), else now. */
        int64_t t = ir && ir->cpu_settled ? iter_t : dn_monotonic_ns();
        if (ir) {
            raw = ir->raw;
            /* The iterator reads the kernel's approximate RSS counters (per-CPU deltas
             * not folded in): a process that just started can show 0 while it has
             * memory. statm has the exact sum. */
            if (raw.rss_pages == 0 && raw.vsize_bytes > 0)
                dn_procfs_read_memory(&p->fs, &raw);
            /* A process with a thread on a CPU: CPU time from the process clock, read
             * now, after the walk, as the /proc path reads it. (The clock does not add
             * the current slice of a thread running on another CPU either: the kernel
             * updates that thread's sum at its next tick or switch.) */
            struct timespec ts;
            if (!ir->cpu_settled && p->fs.cpu_clock_ok && clock_gettime(p->fs.cpu_clock, &ts) == 0)
                raw.cpu_ns = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
        } else {
            /* Also the root when the iterator did not return it: a zombie (its entry is
             * closed) or a task some kernels' iterators skip (pid 1 in this VM). */
            idle = read_procfs(c, p, &raw, t);
            if (idle < 0)
                continue; /* gone: swept below */
        }
        p->gen = c->gen;
        proc_update(c, p, &raw, t, now_ms, boot);
        p->last.sys_net_rx_bytes = rx;
        p->last.sys_net_tx_bytes = tx;
        /* Only the work done while watched: proc_update set the baseline of a process
         * that predates monitoring (zero unless since_process_start). A zombie child's
         * final CPU time is counted through the map, also when the map pass that just
         * forgot it came after this pass's iterator read. */
        if (!exited && !(use_tracker && qi > 0 && raw.state == 'Z'))
            live_cpu_ns += sub_sat(raw.cpu_ns, p->base.cpu_ns) +
                           (use_tracker ? 0 : sub_sat(raw.child_cpu_ns, p->base.child_cpu_ns));

        if (qi == 0) {
            root_ok = true;
            out->has_parent = true;
            out->parent = p->last;
        } else {
            /* sized at once for the processes known (no copies as it grows) */
            if ((rc = dn_children_grow(&children, &children_cap, nchildren + 1,
                                       c->nprocs > 8 ? c->nprocs : 8)))
                goto fail;
            children[nchildren].pid = pid;
            children[nchildren].ppid = raw.ppid;
            children[nchildren].command = p->command;
            children[nchildren].metrics = p->last;
            nchildren++;
        }
        add_metrics(&agg, &p->last);

        if (c->o.include_children && !use_tracker && (rc = find_children(c, p, &raw, idle, t)))
            goto fail;
    }
    if (c->o.include_children && !use_tracker) {
        size_t walked = c->queue_len;
        if ((rc = repair_walk(c, dn_monotonic_ns())))
            goto fail;
        if (c->queue_len > walked)
            goto walk; /* what the lists read again hold */
    }
    sweep_departed(c);

    if (!root_ok) {
        dn_children_unref(children);
        memset(out, 0, sizeof *out);
        return -ESRCH;
    }

    out->ts_ms = now_ms;
    out->nchildren = nchildren;
    out->children = children;
    if (out->tree) {
        agg.ts_ms = now_ms;
        agg.sys_net_rx_bytes = rx;
        agg.sys_net_tx_bytes = tx;
        agg.uptime_secs = out->parent.uptime_secs;
        agg.cpu_core = out->parent.cpu_core;
        agg.cpu_usage = (double)(int64_t)(agg.cpu_usage * 1000.0 + 0.5) / 1000.0;
        out->has_aggregated = true;
        out->aggregated = agg;
        out->process_count = 1 + nchildren;
    } else {
        out->ts_ms = out->parent.ts_ms;
    }

    /* Running summary. */
    const struct dn_metrics *whole = out->tree ? &out->aggregated : &out->parent;
    if (c->first_ts_ms < 0)
        c->first_ts_ms = now_ms;
    c->last_ts_ms = now_ms;
    c->sample_count++;
    if (c->unreadable_now > c->max_unreadable)
        c->max_unreadable = c->unreadable_now;
    uint64_t nproc = out->tree ? out->process_count : 1;
    if (nproc > c->max_processes)
        c->max_processes = nproc;
    if (whole->thread_count > c->max_threads)
        c->max_threads = whole->thread_count;
    if (whole->mem_rss_kb > c->peak_mem_rss_kb)
        c->peak_mem_rss_kb = whole->mem_rss_kb;
    if (whole->page_faults_cached > c->peak_minflt)
        c->peak_minflt = whole->page_faults_cached;
    if (whole->page_faults_disk > c->peak_majflt)
        c->peak_majflt = whole->page_faults_disk;
    c->cpu_usage_sum += whole->cpu_usage;
    if (rx > c->net_rx_max)
        c->net_rx_max = rx;
    if (tx > c->net_tx_max)
        c->net_tx_max = tx;
    uint64_t total_cpu = live_cpu_ns + (use_tracker ? c->exited_cpu_ns : 0);
    if (total_cpu > c->total_cpu_ns)
        c->total_cpu_ns = total_cpu;
    if (total_cpu > c->sampled_cpu_ns)
        c->sampled_cpu_ns = total_cpu;
    if (use_iter)
        c->iter_collections++;
    return 0;

fail:
    dn_children_unref(children);
    memset(out, 0, sizeof *out);
    return rc;
}

void dn_collector_root_reaped(struct dn_collector *c, const struct rusage *ru)
{
    uint64_t ns = ((uint64_t)ru->ru_utime.tv_sec + (uint64_t)ru->ru_stime.tv_sec) * 1000000000ULL +
                  ((uint64_t)ru->ru_utime.tv_usec + (uint64_t)ru->ru_stime.tv_usec) * 1000ULL;
    /* rusage covers the root and every descendant it waited for: a lower bound that
     * the tracker's total (orphans included) can only exceed. */
    if (ns > c->total_cpu_ns)
        c->total_cpu_ns = ns;
    /* ru_maxrss is max(root, every descendant it waited for), but the root's own share
     * includes the image it was forked from (exec records the old mm's high-water mark),
     * i.e. our interpreter's RSS. Only a value clearly above that is the tree's own. */
    uint64_t maxrss = (uint64_t)ru->ru_maxrss;
    uint64_t polluted = c->o.spawn_rss_kb + c->o.spawn_rss_kb / 50 + 2048;
    if (maxrss > polluted && maxrss > c->peak_process_rss_kb)
        c->peak_process_rss_kb = maxrss;
}

static int cmp_row_cpu(const void *a, const void *b)
{
    const struct dn_proc_row *x = a, *y = b;
    if (x->cpu_ns != y->cpu_ns)
        return x->cpu_ns > y->cpu_ns ? -1 : 1;
    return x->pid < y->pid ? -1 : x->pid > y->pid;
}

void dn_summary_clear(struct dn_summary *s)
{
    free(s->processes);
    s->processes = NULL;
    s->nprocesses = 0;
}

void dn_collector_summary(const struct dn_collector *c, struct dn_summary *s)
{
    memset(s, 0, sizeof *s);
    /* A copy: the summary is turned into a dict outside the session's lock. Without
     * memory the table is left out, never the totals. */
    if (c->nrows && (s->processes = malloc(c->nrows * sizeof *s->processes))) {
        memcpy(s->processes, c->rows, c->nrows * sizeof *s->processes);
        s->nprocesses = c->nrows;
        qsort(s->processes, s->nprocesses, sizeof *s->processes, cmp_row_cpu);
    }
    s->sample_count = c->sample_count;
    if (c->sample_count) {
        s->total_time_secs = (double)(c->last_ts_ms - c->first_ts_ms) / 1000.0;
        s->avg_cpu_usage = c->cpu_usage_sum / (double)c->sample_count;
    }
    s->max_processes = c->max_processes;
    s->max_threads = c->max_threads;
    s->peak_mem_rss_kb = c->peak_mem_rss_kb;
    s->total_sys_net_rx_bytes = c->net_rx_max;
    s->total_sys_net_tx_bytes = c->net_tx_max;
    s->total_disk_read_bytes = c->departed_disk_read;
    s->total_disk_write_bytes = c->departed_disk_write;
    s->total_syscall_read_bytes = c->departed_sys_read;
    s->total_syscall_write_bytes = c->departed_sys_write;
    for (size_t i = 0; i < c->nprocs; i++) {
        const struct dn_metrics *m = &c->procs[i]->last;
        s->total_disk_read_bytes = dn_u64_add(s->total_disk_read_bytes, m->disk_read_bytes);
        s->total_disk_write_bytes = dn_u64_add(s->total_disk_write_bytes, m->disk_write_bytes);
        s->total_syscall_read_bytes = dn_u64_add(s->total_syscall_read_bytes, m->syscall_read_bytes);
        s->total_syscall_write_bytes =
            dn_u64_add(s->total_syscall_write_bytes, m->syscall_write_bytes);
    }
    s->total_cpu_time_secs = (double)c->total_cpu_ns / 1e9;
    s->peak_process_rss_kb = c->peak_process_rss_kb;
    s->processes_seen = c->processes_seen;
    s->processes_unreadable = c->max_unreadable;
    s->peak_page_faults_cached = c->peak_minflt;
    s->peak_page_faults_disk = c->peak_majflt;
    uint64_t dropped = c->detached_fork_dropped, tracked = c->detached_processes;
    if (c->o.tracker) {
        dropped = dn_tracker_fork_dropped(c->o.tracker);
        tracked = dn_tracker_processes(c->o.tracker);
    }
    s->tracker_fork_dropped = dropped;
    /* The kernel saw every fork, including children that lived between samples. */
    if (c->o.include_children && tracked > s->processes_seen)
        s->processes_seen = tracked;
}

void dn_collector_debug(const struct dn_collector *c, struct dn_collector_debug *out)
{
    out->sampled_cpu_ns = c->sampled_cpu_ns;
    out->collections = c->sample_count;
    out->iter_collections = c->iter_collections;
}

void dn_collector_detach_tracker(struct dn_collector *c)
{
    if (!c->o.tracker)
        return;
    c->detached_fork_dropped = dn_tracker_fork_dropped(c->o.tracker);
    c->detached_processes = dn_tracker_processes(c->o.tracker);
    c->o.tracker = NULL;
}

/* Adds pid's children (of every thread) to the list. */
static void push_children(pid_t pid, pid_t **pids, size_t *n, size_t *cap)
{
    struct dn_procfs pf;
    if (dn_procfs_open(&pf, pid, false) != 0)
        return;
    struct dn_proc_raw r;
    if (dn_procfs_read(&pf, &r, false, NULL, NULL) == 0)
        dn_procfs_children(&pf, r.num_threads, pids, n, cap);
    dn_procfs_close(&pf);
}

/* Registers one running process. One that had already exited (a zombie, or gone) when
 * it was added saw its exit hook run before it was tracked: its entry is closed at once
 * (see dn_tracker_mark_exited). One that exits after the add is closed by the hook. */
static int register_one(struct dn_tracker *t, pid_t pid)
{
    int rc = dn_tracker_add(t, pid);
    if (rc)
        return rc;
    struct dn_procfs pf;
    struct dn_proc_raw r;
    bool alive = dn_procfs_open(&pf, pid, false) == 0 &&
                 dn_procfs_read(&pf, &r, false, NULL, NULL) == 0 && r.state != 'Z' &&
                 r.state != 'X';
    dn_procfs_close(&pf);
    return alive ? 0 : dn_tracker_mark_exited(t, pid, (uint64_t)dn_monotonic_ns());
}

int dn_collector_register_tree(struct dn_tracker *t, pid_t root)
{
    int rc = register_one(t, root);
    if (rc)
        return rc;
    pid_t *pids = NULL;
    size_t n = 0, cap = 0;
    /* Twice: a process that forked while the first walk read its parent is registered
     * by the second (from then on the kernel follows its forks). */
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        n = 0;
        push_children(root, &pids, &n, &cap);
        for (size_t i = 0; i < n && rc == 0; i++) {
            rc = register_one(t, pids[i]);
            push_children(pids[i], &pids, &n, &cap);
        }
    }
    free(pids);
    return rc;
}
