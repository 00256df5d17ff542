/* Readers for one process's /proc files. Files are opened once and re-read with pread:
 * cheap, and a kept fd fails with ESRCH once the process is reaped, so a reused pid is
 * never mistaken for the process we opened. */
#ifndef DENET_PROCFS_H
#define DENET_PROCFS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* Raw counters of one read, absolute (not relative to any baseline). */
struct dn_proc_raw {
    char state;
    pid_t ppid;
    uint64_t cpu_ns;          /* whole thread group, exited threads included */
    uint64_t child_cpu_ns;    /* cutime + cstime: reaped children */
    uint64_t minflt, majflt;
    uint64_t num_threads;
    uint64_t start_ticks;     /* starttime, clock ticks since boot */
    uint64_t vsize_bytes;
    uint64_t rss_pages;
    int64_t processor;
    uint64_t rchar, wchar, read_bytes, write_bytes;
    uint64_t hwm_kb;          /* VmHWM, kernel's high-water mark of RSS */
    bool have_io;             /* /proc/PID/io readable */
    char comm[16];            /* task name: changes when the process execs */
    uint64_t utime_raw, stime_raw; /* user/system CPU time in any one unit (ticks, ns): the
                                    * ratio splits cpu_ns */
    uint64_t nvcsw, nivcsw;   /* voluntary/involuntary context switches of its threads */
    uint64_t blkio_delay_ns;  /* time its threads waited for block I/O (delay accounting) */
};

struct dn_procfs {
    pid_t pid;
    int stat_fd;
    int io_fd;      /* -1 when not permitted */
    int status_fd;
    int children_fd; /* /proc/PID/task/PID/children, -1 if unavailable */
    int statm_fd;
    int schedstat_fd; /* /proc/PID/schedstat (its main thread's run time), -1 if unavailable */
    clockid_t cpu_clock;
    bool cpu_clock_ok;
    bool transient;       /* no descriptors kept: each read opens and closes its file */
    bool io_denied;       /* /proc/PID/io may not be read (another user's process) */
    unsigned stat_ahead_len, io_ahead_len, status_ahead_len; /* how much of stat, io and
                                            * status a read ahead takes (see
                                            * dn_procfs_ahead); 0: unknown */
    uint64_t start_ticks; /* of a transient process: tells it from a later one on its pid */
};

/* Opens the files of pid and keeps them open (keep), or reads it once and keeps none
 * (past the caller's descriptor budget). Returns 0, or -errno (ESRCH when there is no
 * such process, EACCES when it may not be read, EMFILE when no descriptor is left). */
int dn_procfs_open(struct dn_procfs *p, pid_t pid, bool keep);
void dn_procfs_close(struct dn_procfs *p);

/* Texts of stat, io and status that the caller read ahead (NUL-terminated; NULL: none),
 * through the kept descriptors: the first stat_ahead_len, io_ahead_len and
 * status_ahead_len bytes, the fields used up to the space after stat's field 42, up to the
 * end of io's write_bytes line and up to the end of status's nonvoluntary_ctxt_switches
 * line, as long as they were at the last read. Read ahead, the fields that follow are
 * never needed, and a read that fills its buffer completes in io_uring's own call. A
 * text whose fields have grown since, and so stop short, is read again.
 *
 * after_clock: the caller read the CPU clock (the cpu_ns it passes) before these reads.
 * A read through a kept descriptor that succeeds after the clock tells that the pid was
 * not reaped (and so not reused) when the clock was read; without it, status is read
 * again after the clock for that reason. */
struct dn_procfs_ahead {
    const char *stat, *io, *status;
    bool after_clock;
};

/* Reads the counters (stat, io, status; statm only when status has no memory), with
 * VmHWM (hwm_kb) only when want_hwm. cpu_ns: the process's CPU clock as the caller has
 * just read it (dn_procfs_cpu_ns), or NULL to read it here. ahead: texts read ahead, or
 * NULL. Returns 0, -ESRCH when the process is gone (reaped), or -errno. */
int dn_procfs_read(struct dn_procfs *p, struct dn_proc_raw *out, bool want_hwm,
                   const uint64_t *cpu_ns, const struct dn_procfs_ahead *ahead);

/* Context switches and, with blkio, block I/O delay of every live thread
 * (/proc/PID/task/TID/status, and stat for the delay) into r, for a process with more
 * than one thread: its own files give the main thread's only. Without blkio (the kernel
 * does no delay accounting: the delay is not reported) no thread's stat is read.
 * Returns 0 or -errno; a vanished thread is skipped. */
int dn_procfs_read_threads(struct dn_procfs *p, struct dn_proc_raw *r, bool blkio);

/* The CPU time of the whole thread group in ns (one clock_gettime). Returns 0, -ESRCH
 * when the process is gone, -ENOTSUP when its clock is unavailable. */
int dn_procfs_cpu_ns(struct dn_procfs *p, uint64_t *ns);

/* Refreshes only rss_pages and vsize_bytes of r from /proc/PID/statm (cheap). Meant for
 * a process whose CPU time has not moved since r was read: it has not run, so nothing
 * else in r can have changed, but reclaim can still shrink its memory. Returns 0 or
 * -ESRCH/-errno (-ESRCH also for a process without memory: a zombie). */
int dn_procfs_read_memory(struct dn_procfs *p, struct dn_proc_raw *r);

/* The text of statm (NUL-terminated; its first two fields and the space after them are
 * enough) into rss_pages and vsize_bytes, as dn_procfs_read_memory does. 0, -ESRCH for
 * a process without memory, -EINVAL when the text stops inside them. */
int dn_procfs_parse_statm(const char *buf, struct dn_proc_raw *r);

/* The same two figures from a text of status read ahead (VmSize and VmRSS, statm's
 * figures): 0, or -EINVAL when it stops short of its last line used or has no memory. */
int dn_procfs_parse_status_memory(const char *buf, struct dn_proc_raw *r);

/* The first field of /proc/PID/schedstat (with the space after it): the run time in ns of
 * that one thread (se.sum_exec_runtime, what its CPU clock adds up). 0, or -EINVAL when
 * the text stops inside it. */
int dn_procfs_parse_schedstat(const char *buf, uint64_t *runtime_ns);

/* Resets the kernel's RSS high-water mark of pid to its current RSS (clear_refs 5):
 * allowed for our own processes, or as root. 0 or -errno. */
int dn_procfs_reset_hwm(pid_t pid);

/* Appends the pids of the children of every thread of the process to *pids
 * (grown with realloc). Returns 0 or -errno; a vanished process yields no children. */
int dn_procfs_children(struct dn_procfs *p, uint64_t num_threads, pid_t **pids, size_t *n,
                       size_t *cap);

/* Reads /proc/PID/cmdline joined with spaces into buf and returns 0. When there is no
 * command line (kernel threads, zombies, and a process in the middle of exec, whose new
 * arguments are not set up yet) it gives the comm name and returns 1. -errno on error. */
int dn_procfs_command(pid_t pid, char *buf, size_t len);

/* Clock ticks per second and page size, read once. */
long dn_clk_tck(void);
long dn_page_kb(void);

/* Wall clocks. */
int64_t dn_now_ms(void);          /* CLOCK_REALTIME in ms */
int64_t dn_monotonic_ns(void);
double dn_boottime_secs(void);    /* CLOCK_BOOTTIME */

/* Sum of rx/tx bytes over every interface but lo in /proc/PID/net/dev (the network
 * namespace of PID). fd is kept open by the caller, and the buffer *bufp (*cap bytes,
 * grown as needed, freed by the caller); returns 0 or -errno. */
int dn_netdev_open(pid_t pid);
int dn_netdev_read(int fd, char **bufp, size_t *cap, uint64_t *rx, uint64_t *tx);

/* File descriptors this process may still open under RLIMIT_NOFILE (SIZE_MAX when it is
 * unlimited); *limit gets the limit (SIZE_MAX likewise). */
size_t dn_fds_free(size_t *limit);

#endif
