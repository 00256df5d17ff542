// SPDX-License-Identifier: GPL-2.0
/* A task iterator over the tracked processes: one read() returns, for every thread of
 * the tree, what /proc/PID/stat, io and status would give, without formatting text in
 * the kernel and parsing it back. Used when the tracker is loaded; /proc is the
 * fallback. */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "core_fixes.bpf.h"
#include "procstat.h"
#include "live_map.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* Tasks this program has seen, in the tree or not: user space tells from it about how
 * many tasks a walk of the whole system visits, which decides how large a tree is
 * cheaper to read process by process (csrc/ebpf/procstat.c). Each monitor loads its own
 * program and reads it under its lock, one read at a time: a plain increment. */
__u64 tasks_seen = 0;

SEC("iter/task")
int dn_procstat(struct bpf_iter__task *ctx)
{
    struct seq_file *seq = ctx->meta->seq;
    struct task_struct *t = ctx->task;
    if (!t)
        return 0;
    tasks_seen++;
    __u32 tgid = t->tgid;
    if (!dn_is_live(tgid)) /* a bit test: the walk visits every task of the system */
        return 0;

    struct dn_task_rec r = {};
    r.tgid = tgid;
    r.tid = t->pid;
    /* on_cpu first: read as 0, the runtime read after it is the one the thread left the
     * CPU with (the kernel clears on_cpu after updating it). */
    r.on_cpu = dn_task_on_cpu(t);
    r.runtime_ns = t->se.sum_exec_runtime;
    r.min_flt = t->min_flt;
    r.maj_flt = t->maj_flt;
    r.rchar = t->ioac.rchar;
    r.wchar = t->ioac.wchar;
    r.read_bytes = t->ioac.read_bytes;
    r.write_bytes = t->ioac.write_bytes;
    r.exit_state = t->exit_state;
    r.utime_ns = t->utime;
    r.stime_ns = t->stime;
    r.nvcsw = t->nvcsw;
    r.nivcsw = t->nivcsw;
    r.blkio_delay_ns = dn_task_blkio_delay_ns(t);
    if (t->pid == tgid) {
        struct signal_struct *sig = t->signal;
        r.is_leader = 1;
        r.nr_threads = sig->nr_threads;
        r.dead_runtime_ns = sig->sum_sched_runtime;
        r.dead_min_flt = sig->min_flt;
        r.dead_maj_flt = sig->maj_flt;
        r.dead_rchar = sig->ioac.rchar;
        r.dead_wchar = sig->ioac.wchar;
        r.dead_read_bytes = sig->ioac.read_bytes;
        r.dead_write_bytes = sig->ioac.write_bytes;
        r.child_cpu_ns = sig->cutime + sig->cstime;
        r.dead_utime_ns = sig->utime;
        r.dead_stime_ns = sig->stime;
        r.dead_nvcsw = sig->nvcsw;
        r.dead_nivcsw = sig->nivcsw;
        r.start_boottime_ns = t->start_boottime;
        r.cpu = t->thread_info.cpu;
        r.ppid = t->real_parent->tgid;
        bpf_probe_read_kernel_str(r.comm, sizeof r.comm, t->comm);
        struct mm_struct *mm = t->mm;
        if (mm) {
            r.rss_pages = dn_mm_rss_pages(mm);
            r.total_vm_pages = mm->total_vm;
            r.hiwater_rss_pages = mm->hiwater_rss;
        }
    }
    bpf_seq_write(seq, &r, sizeof r);
    return 0;
}
