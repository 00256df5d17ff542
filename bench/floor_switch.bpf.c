// SPDX-License-Identifier: GPL-2.0
/* The floor of any off-CPU profiler built on BPF: an empty program on the sched_switch
 * tracepoint, attached as denet's profiler is (BTF tracepoint, tp_btf). What it costs each
 * context switch is the kernel's price for running a program there at all, which no
 * profiler can go below. bench/offcpu.py holds it attached while the workload runs
 * unmonitored (bench/syscalls.py's Floor). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("tp_btf/sched_switch")
int floor_sched_switch(void *ctx)
{
    return 0;
}
