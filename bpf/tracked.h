/* Shared by tracked.bpf.c and csrc/tracker.c: the set of monitored processes (tgids).
 * Other collectors reuse this map to filter events in the kernel. */
#ifndef DENET_BPF_TRACKED_H
#define DENET_BPF_TRACKED_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Processes followed at once: a tree larger than this is reported through
 * fork_dropped rather than silently truncated. */
#define DN_TRACKED_MAX 8192

/* The `live` bitmap (bpf/live_map.bpf.h): bit (tgid % 64) of word (tgid / 64) is set while
 * tgid is tracked and alive. Sized at load from kernel.pid_max (user space sets
 * max_entries); PID_MAX_LIMIT (4194304 on 64-bit kernels) needs 65536 words, 512 KiB. */
#define DN_LIVE_WORDS_DEFAULT 512u /* pid_max 32768 */
#define DN_LIVE_WORDS_MAX 65536u

/* dn_tracked.flags: exec_maxrss_pages is known (set at a fork or exec seen in the kernel). */
#define DN_TRACKED_EXEC_MAXRSS 1u

struct dn_tracked {
    __u64 exited_cpu_ns;  /* final runtime of this process's threads that exited while tracked */
    __u64 exit_ns;        /* bpf_ktime_get_ns() when its last thread exited; 0 while alive */
    __u64 hiwater_pages;  /* peak RSS of its memory at exit (kernel high-water mark); 0: unknown */
    __u64 exec_maxrss_pages; /* signal->maxrss at its last exec: the images it replaced */
    __u32 parent_tgid;    /* who forked it (0 when registered from user space) */
    __u32 flags;          /* DN_TRACKED_* */
};

#endif
