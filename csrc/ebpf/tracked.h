/* User side of bpf/tracked.bpf.c: load, register processes, snapshot and prune. It also
 * owns the task iterator (ebpf/procstat.c), which filters on its map. */
#ifndef DENET_TRACKER_H
#define DENET_TRACKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ebpf/procstat.h"
#include "bpf/tracked.h"

struct dn_tracker;

struct dn_tracked_entry {
    uint32_t tgid;
    struct dn_tracked val;
};

/* Loads and attaches the programs. On failure returns -errno and writes a sentence that
 * says what failed and how to fix it into err. */
int dn_tracker_open(struct dn_tracker **out, char *err, size_t errlen);
void dn_tracker_close(struct dn_tracker *t);

int dn_tracker_map_fd(const struct dn_tracker *t);
/* The bitmap of live tracked tgids (bpf/live_map.bpf.h), for bpf_map__reuse_fd. */
int dn_tracker_live_map_fd(const struct dn_tracker *t);
int dn_tracker_add(struct dn_tracker *t, pid_t tgid);      /* 0 or -errno */
int dn_tracker_forget(struct dn_tracker *t, pid_t tgid);   /* 0 or -errno */
/* A registered process that had already exited (its exit hook ran before it was in the
 * map): marks its entry exited at mono_ns, so a process that reuses its pid is never
 * taken for it. 0 or -errno. */
int dn_tracker_mark_exited(struct dn_tracker *t, pid_t tgid, uint64_t mono_ns);
uint64_t dn_tracker_fork_dropped(const struct dn_tracker *t);
/* Processes the map has followed: registered from user space plus forks followed in the
 * kernel, however short-lived. */
uint64_t dn_tracker_processes(const struct dn_tracker *t);

/* Every entry of the map, into a buffer grown as needed. Returns 0 or -errno. */
int dn_tracker_snapshot(struct dn_tracker *t, struct dn_tracked_entry **buf, size_t *n,
                        size_t *cap);

/* Whether the task iterator (bpf/procstat.bpf.c) loaded: then one read gives every
 * tracked thread's counters and /proc need not be read per process. */
bool dn_tracker_has_task_iter(const struct dn_tracker *t);

/* The same, and when it is not in use, why (a sentence into why). */
bool dn_tracker_task_iter_status(const struct dn_tracker *t, char *why, size_t len);

/* One record per thread of every tracked process, into a buffer grown as needed.
 * Returns 0, -ENOTSUP without the iterator, -EAGAIN when the tree is cheaper read
 * through /proc this time (a kernel without per-process iterators, a tree small for
 * the tasks of the system), or -errno. */
int dn_tracker_read_tasks(struct dn_tracker *t, struct dn_task_rec **buf, size_t *n,
                          size_t *cap);

/* How many of those reads went process by process (a tree of a few processes, none
 * joined since the read before; Linux 6.1+), not over every task of the system. */
uint64_t dn_tracker_per_process_reads(const struct dn_tracker *t);
/* Reads that told the collector to read the tree through /proc instead (-EAGAIN). */
uint64_t dn_tracker_proc_reads(const struct dn_tracker *t);
/* Tasks of the system the last walk of the task iterator visited (0: none yet). */
uint64_t dn_tracker_walk_tasks(const struct dn_tracker *t);

#endif
