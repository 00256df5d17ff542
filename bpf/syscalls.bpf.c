// SPDX-License-Identifier: GPL-2.0
/* Counts every system call of the monitored process tree per (tgid, syscall number).
 *
 * One program on the raw sys_enter tracepoint (BTF-typed, so every number is seen).
 * The first thing it does is look the caller up in the tracker's `tracked` map (shared
 * with tracked.bpf.c through bpf_map__reuse_fd), so every other process on the machine
 * pays one hash lookup and nothing more.
 *
 * Counts are per-CPU: the program runs with preemption disabled, so a plain increment of
 * this CPU's slot can never lose an update, and threads of one process on different CPUs
 * never share a cache line (measured no slower than an atomic add on the null-syscall
 * storm, and it scales with threads). A run the kernel skips (recursion on one CPU,
 * possible only on kernels that run this tracepoint preemptibly) shows up in the
 * program's recursion_misses, which user space reports as dropped. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "syscalls.h"
#include "tracked_map.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* Not preallocated: memory follows the number of (tgid, nr) pairs actually seen. */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __uint(max_entries, DN_SC_KEYS_MAX);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct dn_sc_key);
    __type(value, __u64);
} counts SEC(".maps");

/* Per-number counts of syscalls whose (tgid, nr) pair found `counts` full. */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, DN_SC_NR_MAX);
    __type(key, __u32);
    __type(value, __u64);
} spill SEC(".maps");

/* Set from user space at any time (the skeleton's mmapped .bss). */
__u32 excluded_tid = 0; /* the sampler thread of a monitor that watches its own process */
__u32 only_tgid = 0;    /* count this process only (include_children=False); 0 = all */

/* Written here, read by user space. */
__u32 spill_used = 0;   /* `spill` has counts: user space reads it only then */
__u64 dropped = 0;      /* syscalls not counted at all: map full and nr >= DN_SC_NR_MAX */

SEC("tp_btf/sys_enter")
int BPF_PROG(dn_sys_enter, struct pt_regs *regs, long id)
{
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    struct dn_sc_key key = {.tgid = pid_tgid >> 32, .nr = (__u32)id};

    if (!dn_tracked_live(key.tgid))
        return 0;
    if ((__u32)pid_tgid == *(volatile __u32 *)&excluded_tid)
        return 0;
    __u32 only = *(volatile __u32 *)&only_tgid;
    if (only && key.tgid != only)
        return 0;

    __u64 *v = bpf_map_lookup_elem(&counts, &key);
    if (v) {
        *v += 1;
        return 0;
    }
    /* First call of this number by this process. The update writes 1 into this CPU's
     * slot and 0 into the others; if another CPU inserted the pair first, count in the
     * entry it created. */
    __u64 one = 1;
    if (bpf_map_update_elem(&counts, &key, &one, BPF_NOEXIST) == 0)
        return 0;
    v = bpf_map_lookup_elem(&counts, &key);
    if (v) {
        *v += 1;
        return 0;
    }
    /* The map is full. */
    __u32 nr = key.nr;
    v = nr < DN_SC_NR_MAX ? bpf_map_lookup_elem(&spill, &nr) : 0;
    if (v) {
        *v += 1;
        if (!*(volatile __u32 *)&spill_used)
            spill_used = 1;
    } else {
        __sync_fetch_and_add(&dropped, 1);
    }
    return 0;
}
