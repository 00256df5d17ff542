// SPDX-License-Identifier: GPL-2.0
/* Counts every system call of the monitored process tree per syscall number.
 *
 * One program on the raw sys_enter tracepoint (BTF-typed, so every number is seen). It
 * runs for every system call of the machine, so what it does before it knows the caller
 * is one of ours is the whole cost for everyone else: one bit test in the `live` bitmap
 * (bpf/live_map.bpf.h), an array lookup the verifier inlines, shared with tracked.bpf.c
 * through bpf_map__reuse_fd. Only a tgid past the bitmap (pid_max raised after it was
 * sized) is looked up in the `tracked` hash.
 *
 * Counts are per (CPU, number): one array of DN_SC_NR_MAX counters per possible CPU, so
 * the program increments this CPU's counter of the number with a plain add (it runs
 * with migration disabled, and the kernel never runs it twice at once on one CPU; a run
 * it skips for that reason shows up in the program's recursion_misses, which user space
 * reports as dropped), and threads on different CPUs never share a cache line. The
 * array is mmapped by user space, which sums it without a system call. Nothing is per
 * process: what a process counted stays in the tree's counters when it exits, and the
 * cost of reading them does not grow with the processes of the tree.
 *
 * Numbers past the array (x32 numbers, garbage passed to syscall(2)) are counted in a
 * small hash by number; a number that finds it full is counted in `dropped`. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "syscalls.h"
#include "live_map.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* counts[cpu * DN_SC_NR_MAX + nr]. User space sets max_entries to the number of possible
 * CPUs times DN_SC_NR_MAX before loading. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, DN_SC_NR_MAX);
    __uint(map_flags, BPF_F_MMAPABLE);
    __type(key, __u32);
    __type(value, __u64);
} counts SEC(".maps");

/* Counts of numbers >= DN_SC_NR_MAX. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, DN_SC_HI_MAX);
    __type(key, __u32);
    __type(value, __u64);
} hi SEC(".maps");

/* Set from user space at any time (the skeleton's mmapped .bss). */
__u32 excluded_tid = 0; /* the sampler thread of a monitor that watches its own process */
__u32 only_tgid = 0;    /* count this process only (include_children=False); 0 = all */

/* Written here, read by user space. */
__u32 hi_used = 0;      /* `hi` has counts: user space reads it only then */
__u64 dropped = 0;      /* syscalls not counted at all */

static __always_inline void count_hi(__u32 nr)
{
    __u64 *v = bpf_map_lookup_elem(&hi, &nr);
    if (!v) {
        __u64 zero = 0;
        /* Another CPU may insert it first (EEXIST): count in its entry. */
        bpf_map_update_elem(&hi, &nr, &zero, BPF_NOEXIST);
        v = bpf_map_lookup_elem(&hi, &nr);
    }
    if (v) {
        __sync_fetch_and_add(v, 1);
        if (!*(volatile __u32 *)&hi_used)
            hi_used = 1;
    } else {
        __sync_fetch_and_add(&dropped, 1); /* `hi` is full */
    }
}

SEC("tp_btf/sys_enter")
int BPF_PROG(dn_sys_enter, struct pt_regs *regs, long id)
{
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    __u32 tgid = pid_tgid >> 32;

    if (!dn_is_live(tgid))
        return 0;
    if ((__u32)pid_tgid == *(volatile __u32 *)&excluded_tid)
        return 0;
    __u32 only = *(volatile __u32 *)&only_tgid;
    if (only && tgid != only)
        return 0;

    __u32 nr = (__u32)id;
    if (nr >= DN_SC_NR_MAX) {
        count_hi(nr);
        return 0;
    }
    __u32 i = bpf_get_smp_processor_id() * DN_SC_NR_MAX + nr;
    __u64 *v = bpf_map_lookup_elem(&counts, &i);
    if (v)
        *v += 1;
    else
        __sync_fetch_and_add(&dropped, 1); /* a CPU past the possible ones: cannot happen */
    return 0;
}
