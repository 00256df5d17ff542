/* Shared by procstat.bpf.c and csrc/tracker.c: one record per thread of a tracked
 * process, written by a BPF task iterator in a single read() for the whole tree. */
#ifndef DENET_BPF_PROCSTAT_H
#define DENET_BPF_PROCSTAT_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

struct dn_task_rec {
    __u32 tgid;
    __u32 tid;
    __u64 runtime_ns;   /* this thread's se.sum_exec_runtime */
    __u64 min_flt, maj_flt;
    __u64 rchar, wchar, read_bytes, write_bytes;
    __u64 utime_ns, stime_ns;    /* this thread's tick-sampled user/system time */
    __u64 nvcsw, nivcsw;         /* its voluntary/involuntary context switches */
    __u64 blkio_delay_ns;        /* its block I/O delay (delays->blkio_delay; 0 without) */
    /* process-wide values, filled on the thread-group leader's record only */
    __u32 is_leader;
    __u32 nr_threads;
    __u64 dead_runtime_ns;       /* signal->sum_sched_runtime: threads that exited */
    __u64 dead_min_flt, dead_maj_flt;
    __u64 dead_rchar, dead_wchar, dead_read_bytes, dead_write_bytes;
    __u64 child_cpu_ns;          /* signal->cutime + cstime */
    __u64 dead_utime_ns, dead_stime_ns; /* signal->utime, stime: threads that exited */
    __u64 dead_nvcsw, dead_nivcsw;      /* signal->nvcsw, nivcsw */
    __u64 rss_pages, total_vm_pages, hiwater_rss_pages;
    __u64 start_boottime_ns;
    __s32 cpu;
    __u32 ppid;
    __s32 exit_state;
    __u32 on_cpu;                /* this thread is on a CPU now (task->on_cpu); 1 where
                                  * the kernel lacks the field */
    char comm[16];               /* task name (the leader's): changes at exec */
};

#endif
