/* Reads a process tree into one sample, without threads or Python: the sampler thread and
 * sample_once() both call it under the session's lock. It also keeps the running
 * summary, including work of processes that exited between samples. */
#ifndef DENET_COLLECTOR_H
#define DENET_COLLECTOR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "core/gpu_sample.h"
#include "core/sample.h"

struct dn_tracker;

struct dn_collector_opts {
    pid_t root;
    bool include_children;
    bool since_process_start;
    double t0_boot;             /* CLOCK_BOOTTIME when monitoring began */
    struct dn_tracker *tracker; /* optional: BPF tracked-process map */
    uint64_t spawn_rss_kb;      /* RSS of the process that forked the root (see root_reaped) */
    int pidfd;                  /* the root's pidfd, or -1: says whether it still lives */
    bool blkio_accounted;       /* the kernel does delay accounting: blkio_delay_secs known */
};

/* Summary parts the collector does not know (eBPF socket totals, perf counters, PSI):
 * the session fills them; emit.c writes them. */
struct dn_summary_ext {
    bool sock;                          /* socket totals known (eBPF sock programs loaded) */
    uint64_t sock_rx, sock_tx, sock_rx_remote, sock_tx_remote;
    bool have_memchar;                  /* memory_characterization */
    double mean_ipc, llc_miss_rate, backend_stall_ratio, psi_some_fraction; /* NaN: unknown */
    const char *verdict;
};

/* One process the run saw, for the summary's `processes` table: what it did while
 * watched (the same baselines as the totals). */
struct dn_proc_row {
    pid_t pid, ppid;
    const char *command;         /* interned, owned by the collector */
    uint64_t cpu_ns;
    uint64_t peak_rss_kb;
    uint64_t disk_read_bytes, disk_write_bytes;       /* DN_U64_NONE: not readable */
    uint64_t syscall_read_bytes, syscall_write_bytes; /* DN_U64_NONE: not readable */
    bool exited;
    bool have_exit_code;         /* known for the command we started */
    int exit_code;               /* as in subprocess: negative = killed by that signal */
};

struct dn_summary {
    double total_time_secs;
    uint64_t sample_count;
    uint64_t max_processes;
    uint64_t max_threads;
    uint64_t total_disk_read_bytes;
    uint64_t total_disk_write_bytes;
    uint64_t total_syscall_read_bytes;
    uint64_t total_syscall_write_bytes;
    uint64_t total_sys_net_rx_bytes;
    uint64_t total_sys_net_tx_bytes;
    uint64_t peak_mem_rss_kb;
    double avg_cpu_usage;
    double total_cpu_time_secs;
    uint64_t peak_process_rss_kb;
    uint64_t processes_seen;    /* distinct processes the tree has had */
    uint64_t tracker_fork_dropped;
    uint64_t processes_unreadable; /* most processes of one sample that no descriptor could read */
    struct dn_gpu_summary gpu;  /* filled by the session (not the collector); present: written */
    struct dn_proc_row *processes; /* malloc'd copy, heaviest CPU first: dn_summary_clear */
    size_t nprocesses;
    uint64_t peak_page_faults_cached; /* largest tree total of one sample */
    uint64_t peak_page_faults_disk;
    struct dn_summary_ext ext;  /* filled by the session (socket totals, memory) */
};

/* Frees what dn_collector_summary allocated in s. */
void dn_summary_clear(struct dn_summary *s);

struct dn_collector;

/* Returns NULL with *err = -errno: -ESRCH when the root does not exist, -EACCES when it
 * may not be read, -ENOMEM. */
struct dn_collector *dn_collector_new(const struct dn_collector_opts *o, int *err);
void dn_collector_free(struct dn_collector *c);

/* One sample of the tree into *out (cleared first). Returns 0, -ESRCH when the root is
 * gone (out is then empty), or -ENOMEM. */
int dn_collector_collect(struct dn_collector *c, struct dn_sample *out);

/* The root was reaped by us: its rusage covers itself and every descendant it waited for. */
void dn_collector_root_reaped(struct dn_collector *c, const struct rusage *ru);

void dn_collector_summary(const struct dn_collector *c, struct dn_summary *out);

/* Introspection for tests: what a summary cannot show. */
struct dn_collector_debug {
    uint64_t sampled_cpu_ns;   /* CPU total from the samples alone, before the reaped root's
                                * rusage floor (dn_collector_root_reaped) */
    uint64_t collections;      /* samples taken */
    uint64_t iter_collections; /* of which read the tree through the BPF task iterator */
};
void dn_collector_debug(const struct dn_collector *c, struct dn_collector_debug *out);

/* Registers a running process and every descendant it has now with the eBPF tracker
 * (the /proc walk lives here: the eBPF side never reads /proc). 0 or -errno. */
int dn_collector_register_tree(struct dn_tracker *t, pid_t root);

/* Stops using the tracker (it is about to be closed): its last counts are kept for the
 * summary and the tree is read through /proc from now on. */
void dn_collector_detach_tracker(struct dn_collector *c);

/* Interns a string for the lifetime of the collector (child commands in samples). */
const char *dn_collector_intern(struct dn_collector *c, const char *s);

#endif
