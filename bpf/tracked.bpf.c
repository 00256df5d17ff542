// SPDX-License-Identifier: GPL-2.0
/* The tracked-process map: user space registers the root, the kernel adds every process
 * a tracked process forks (before the child first runs), and records each tracked
 * process's CPU time as its threads exit, so work of children that exit between two
 * samples, or after being orphaned, is never lost. */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "core_fixes.bpf.h"
#include "live_map.bpf.h"

#define EEXIST 17 /* errno values are not in vmlinux.h */

char LICENSE[] SEC("license") = "GPL";

/* Forks not followed because the map was full, and forks followed. */
__u64 fork_dropped = 0;
__u64 forks_tracked = 0;

SEC("tp_btf/sched_process_fork")
int BPF_PROG(dn_fork, struct task_struct *parent, struct task_struct *child)
{
    __u32 ptgid = parent->tgid;
    __u32 ctgid = child->tgid;

    if (ptgid == ctgid) /* a new thread, not a new process */
        return 0;
    if (!dn_tracked_live(ptgid))
        return 0;
    /* A new process starts with signal->maxrss = 0 (copy_signal zeroes it). */
    struct dn_tracked v = {.parent_tgid = ptgid, .flags = DN_TRACKED_EXEC_MAXRSS};
    /* An entry left by an exited process whose pid is now reused (not yet pruned by
     * user space) is replaced: the new process is alive. */
    struct dn_tracked *old = bpf_map_lookup_elem(&tracked, &ctgid);
    __u64 flags = old && old->exit_ns ? BPF_EXIST : BPF_NOEXIST;
    long rc = bpf_map_update_elem(&tracked, &ctgid, &v, flags);
    if (rc == 0) {
        dn_live_set(ctgid);
        __sync_fetch_and_add(&forks_tracked, 1);
    } else if (rc != -EEXIST) {
        /* Not followed: the map is full (-E2BIG, or another error some kernels give
         * for it). -EEXIST means it is tracked already. */
        __sync_fetch_and_add(&fork_dropped, 1);
    }
    return 0;
}

/* exec_mmap() folds the high-water mark of the image being replaced into
 * signal->maxrss (for a vforked child, that is its parent's). Remember how far it was
 * raised that way, so that the exit hook can tell the new image's own peak from it. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(dn_exec, struct task_struct *p)
{
    struct dn_tracked *v = dn_tracked_live(p->tgid);
    if (!v)
        return 0;
    v->exec_maxrss_pages = BPF_CORE_READ(p, signal, maxrss);
    v->flags |= DN_TRACKED_EXEC_MAXRSS;
    return 0;
}

/* Runs in the context of every exiting thread. The argument list changed across kernels
 * (6.16 added group_dead), so only the task is read and group death is taken from
 * signal->live, which do_exit() decrements before this tracepoint. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(dn_exit, struct task_struct *p)
{
    __u32 tgid = p->tgid;
    struct dn_tracked *v = dn_tracked_live(tgid);
    if (!v) {
        /* Not in `tracked` (any more), yet its bit may be set: user space deleted the
         * entry of a live process (a pid reused between its read and its delete). The
         * bit must not outlive the process, or the next owner of the pid is counted. */
        if (dn_live_bit(tgid) && BPF_CORE_READ(p, signal, live.counter) == 0)
            dn_live_clear(tgid);
        return 0;
    }
    __sync_fetch_and_add(&v->exited_cpu_ns, p->se.sum_exec_runtime);
    if (BPF_CORE_READ(p, signal, live.counter) != 0)
        return 0;
    /* Group death: no thread of it makes another system call. */
    dn_live_clear(tgid);
    /* Group death: this process's exact peak RSS, which rusage cannot give cleanly (it
     * also holds the pre-exec image of the forker). */
    __u64 peak = 0;
    struct mm_struct *mm = p->mm;
    if (mm) {
        /* Linux >= 6.16: the tracepoint precedes exit_mm(), the memory is attached. */
        __u64 rss = dn_mm_rss_pages(mm);
        __u64 hw = BPF_CORE_READ(mm, hiwater_rss);
        peak = hw > rss ? hw : rss;
    } else if (v->flags & DN_TRACKED_EXEC_MAXRSS) {
        /* Before 6.16 it follows exit_mm(). do_exit() stored max(hiwater_rss, rss) of the
         * memory in signal->maxrss (pages) just before; that maximum also holds the images
         * replaced by exec, so it is this image's own peak only when it rose past them.
         * Otherwise the peak stays unknown (0) and samples give it. */
        __u64 maxrss = BPF_CORE_READ(p, signal, maxrss);
        if (maxrss > v->exec_maxrss_pages)
            peak = maxrss;
    }
    v->hiwater_pages = peak;
    v->exit_ns = bpf_ktime_get_ns();
    return 0;
}
