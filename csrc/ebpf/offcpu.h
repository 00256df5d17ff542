/* User side of bpf/offcpu.bpf.c: off-CPU time of the tracked processes, aggregated in
 * the kernel per thread and per (thread, stacks, state, syscall), read once per sample
 * into the `offcpu` part of a sample, symbolized in-process (csrc/symbolize).
 *
 * Totals are cumulative since dn_offcpu_open(). Entries of processes that are no longer
 * tracked are moved out of the kernel maps into tables kept here, so the maps hold live
 * processes only. New user stacks are announced through a ring buffer: the caller
 * polls dn_offcpu_event_fd() and calls dn_offcpu_handle_events(), which reads the
 * process's memory maps while it still lives. Not thread-safe: one caller at a time
 * (the session's lock). */
#ifndef DENET_EBPF_OFFCPU_H
#define DENET_EBPF_OFFCPU_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "ebpf/offcpu_sample.h"

struct dn_offcpu;

/* Loads and attaches the sched_switch program, filtering on the tracker's maps (the
 * `tracked` hash and the `live` bitmap). stacks: also record user and kernel stacks. On
 * failure returns -errno and writes a sentence that says what failed and how to fix it
 * into err. */
int dn_offcpu_open(struct dn_offcpu **out, int tracked_map_fd, int live_map_fd, bool stacks,
                   char *err, size_t errlen);

/* Stops counting: the BPF programs and maps go, the totals, names and frames read so
 * far stay for snapshots and folded output. finish: read the maps and symbolize every
 * stack first (false in a forked child, which must only let go). */
void dn_offcpu_detach(struct dn_offcpu *o, bool finish);
void dn_offcpu_free(struct dn_offcpu *o); /* NULL is fine */

/* Readable when new stacks were announced; -1 once detached. */
int dn_offcpu_event_fd(const struct dn_offcpu *o);
void dn_offcpu_handle_events(struct dn_offcpu *o);

void dn_offcpu_exclude_tid(struct dn_offcpu *o, pid_t tid); /* 0: none */
void dn_offcpu_only_tgid(struct dn_offcpu *o, pid_t tgid);  /* 0: the whole tree */

/* The cumulative figures now (a new reference; the previous one when nothing changed).
 * 0 or -errno. */
int dn_offcpu_snapshot(struct dn_offcpu *o, struct dn_offcpu_sample **out);

/* Every stack in the folded format of flame-graph tools, one line per distinct stack:
 * "process;user frames outermost first;kernel frames_[k] weight", weights in
 * microseconds that sum to the total off-CPU time. *text is malloc'd. 0 or -errno. */
int dn_offcpu_folded(struct dn_offcpu *o, char **text, size_t *len);

#endif
