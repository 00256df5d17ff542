/* Shared by syscalls.bpf.c and csrc/ebpf_syscalls.c: the layout of the syscall counts. */
#ifndef DENET_BPF_SYSCALLS_H
#define DENET_BPF_SYSCALLS_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* (tgid, nr) pairs counted at once. A process uses a few dozen distinct syscalls, so this
 * holds a few hundred live processes; user space folds the pairs of processes that
 * exited into per-number totals and deletes them, and a pair that finds the map full is
 * counted in `spill` (per number) instead, so totals stay exact either way. */
#define DN_SC_KEYS_MAX 16384

/* Numbers below this have a slot in `spill` (must equal DN_SYSCALL_MAX of
 * csrc/syscall_table.h; checked there at compile time). */
#define DN_SC_NR_MAX 512

struct dn_sc_key {
    __u32 tgid;
    __u32 nr;
};

#endif
