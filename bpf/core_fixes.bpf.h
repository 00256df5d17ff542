/* Kernel layouts that changed across the kernels denet runs on, read through CO-RE
 * flavours (the ___suffix is dropped when libbpf matches types against the running
 * kernel's BTF), in the manner of libbpf-tools' core_fixes.bpf.h. BPF side only. */
#ifndef DENET_CORE_FIXES_BPF_H
#define DENET_CORE_FIXES_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>

/* Linux 6.2 (f1a7941243c1 "mm: convert mm's rss stats into percpu_counter") turned
 * mm->rss_stat from a struct of atomic counters into an array of percpu_counters. */
struct mm_rss_stat___pre62 {
    atomic_long_t count[NR_MM_COUNTERS];
} __attribute__((preserve_access_index));

struct mm_struct___pre62 {
    struct mm_rss_stat___pre62 rss_stat;
} __attribute__((preserve_access_index));

struct mm_struct___v62 {
    struct percpu_counter rss_stat[NR_MM_COUNTERS];
} __attribute__((preserve_access_index));

static __always_inline __u64 dn_clamp_pages(__s64 v)
{
    return v > 0 ? (__u64)v : 0; /* as get_mm_counter() clamps a transiently negative count */
}

/* BTF programs only (tp_btf, iter): the readers below load fields straight through the
 * kernel's pointers (the verifier checks each against BTF and guards the load), which
 * costs a fraction of a bpf_probe_read_kernel() call each (BPF_CORE_READ).
 *
 * Resident pages of mm: file + anon + shmem (MM_SWAPENTS is not resident), what
 * /proc/PID/statm reports. On >= 6.2 this is the percpu_counter's global count
 * (percpu_counter_read_positive), as statm reads it.
 *
 * Three straight-line reads per layout: a loop over the index with the layout test
 * inside let clang hoist the relocated offset above the test, and the verifier then
 * rejected the poisoned relocation of the absent layout. */
static __always_inline __u64 dn_mm_rss_pages(struct mm_struct *mm)
{
    if (bpf_core_field_exists(((struct mm_struct___v62 *)mm)->rss_stat)) {
        struct mm_struct___v62 *m = (void *)mm;
        return dn_clamp_pages(m->rss_stat[MM_FILEPAGES].count) +
               dn_clamp_pages(m->rss_stat[MM_ANONPAGES].count) +
               dn_clamp_pages(m->rss_stat[MM_SHMEMPAGES].count);
    }
    /* Helper reads here: the 6.1 verifier does not follow a load through the
     * atomic_long_t typedef ("Type 'atomic_long_t' is not a struct"). */
    struct mm_struct___pre62 *m = (void *)mm;
    return dn_clamp_pages(BPF_CORE_READ(m, rss_stat.count[MM_FILEPAGES].counter)) +
           dn_clamp_pages(BPF_CORE_READ(m, rss_stat.count[MM_ANONPAGES].counter)) +
           dn_clamp_pages(BPF_CORE_READ(m, rss_stat.count[MM_SHMEMPAGES].counter));
}

/* Block I/O delay of one thread, from delay accounting (CONFIG_TASK_DELAY_ACCT; the
 * struct is allocated for every task, the time accounted only while the
 * kernel.task_delayacct sysctl is on, which user space checks). 0 without it. */
struct task_struct___delays {
    struct task_delay_info *delays;
} __attribute__((preserve_access_index));

static __always_inline __u64 dn_task_blkio_delay_ns(void *task)
{
    struct task_struct___delays *t = task;

    if (!bpf_core_field_exists(t->delays))
        return 0;
    struct task_delay_info *d = t->delays;
    return d ? d->blkio_delay : 0;
}

/* Whether a thread is on a CPU now: task_struct.on_cpu (CONFIG_SMP; the kernel's own
 * task_sched_runtime() tests it). A thread that is not has its se.sum_exec_runtime up to
 * date, updated when it last left the CPU. Where the field is missing, 1: the caller then
 * reads the CPU time another way. */
struct task_struct___on_cpu {
    int on_cpu;
} __attribute__((preserve_access_index));

static __always_inline __u32 dn_task_on_cpu(void *task)
{
    struct task_struct___on_cpu *t = task;

    if (!bpf_core_field_exists(t->on_cpu))
        return 1;
    return t->on_cpu != 0;
}

#endif
