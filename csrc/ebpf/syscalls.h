/* User side of bpf/syscalls.bpf.c: every system call of the tracked processes, counted
 * per (CPU, syscall number) in the kernel and summed here into the `syscalls` part of a
 * sample.
 *
 * Counts are cumulative since dn_syscalls_open(). The kernel keeps no per-process counts,
 * so processes that exit need no folding, and a snapshot sums a fixed array (mmapped, no
 * system call) whatever the number of processes. Not thread-safe: one caller at a time
 * (the monitor's lock). */
#ifndef DENET_EBPF_SYSCALLS_H
#define DENET_EBPF_SYSCALLS_H

#include <stddef.h>
#include <sys/types.h>

#include "ebpf/ebpf_sample.h"

struct dn_syscalls;

/* Loads and attaches the sys_enter program, filtering on the tracker's maps
 * (dn_tracker_map_fd, dn_tracker_live_map_fd). On failure returns -errno and writes a
 * sentence that says what failed and how to fix it into err. */
int dn_syscalls_open(struct dn_syscalls **out, int tracked_map_fd, int live_map_fd, char *err,
                     size_t errlen);
void dn_syscalls_close(struct dn_syscalls *s);

/* Syscalls of this thread are not counted (0: none excluded). Takes effect at once. */
void dn_syscalls_exclude_tid(struct dn_syscalls *s, pid_t tid);

/* Count only the syscalls of this process, not of its descendants (0: the whole tracked
 * tree). For include_children=False: set it before the process is registered, as counts
 * are not kept per process (what others counted before stays in the totals). */
void dn_syscalls_only_tgid(struct dn_syscalls *s, pid_t tgid);

/* Fills total, by_category, top (ten largest, descending count, ties by number) and
 * dropped of *out and sets has_syscalls; leaves error, cpu_usage and elapsed_secs alone.
 * Returns 0 or -errno (then *out is unchanged). */
int dn_syscalls_snapshot(struct dn_syscalls *s, struct dn_ebpf_sample *out);

#endif
