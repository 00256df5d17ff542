/* Shared by syscalls.bpf.c and csrc/ebpf/syscalls.c: the layout of the syscall counts. */
#ifndef DENET_BPF_SYSCALLS_H
#define DENET_BPF_SYSCALLS_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Numbers below this have a counter per CPU in `counts` (must equal DN_SYSCALL_MAX of
 * csrc/syscall_table.h; checked there at compile time). */
#define DN_SC_NR_MAX 512

/* Distinct numbers >= DN_SC_NR_MAX counted (in `hi`); a call of one more is dropped. */
#define DN_SC_HI_MAX 1024

#endif
