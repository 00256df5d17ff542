// SPDX-License-Identifier: GPL-2.0
/* The floor of any syscall counter built on BPF: an empty program on the sys_enter
 * tracepoint, attached as denet's counter is (BTF tracepoint, tp_btf). What it costs each
 * system call is the kernel's price for running a program there at all, which no counter
 * can go below. bench/syscalls.py compiles it with clang (the flags setup.py gives the
 * programs of bpf/) and holds it attached while the workload runs unmonitored. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("tp_btf/sys_enter")
int floor_sys_enter(void *ctx)
{
    return 0;
}
