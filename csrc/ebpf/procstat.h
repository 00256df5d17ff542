/* User side of bpf/procstat.bpf.c: a task iterator over the tracked processes, one
 * read() for every thread of the tree. */
#ifndef DENET_EBPF_PROCSTAT_H
#define DENET_EBPF_PROCSTAT_H

#include <stddef.h>
#include <stdint.h>

#include "bpf/procstat.h"

struct dn_procstat;

/* Loads the iterator, filtering on the tracker's maps (its bitmap). NULL when this kernel cannot
 * (no task iterators, or the verifier refused): the caller reads /proc instead. */
struct dn_procstat *dn_procstat_open(int tracked_map_fd, int live_map_fd);
void dn_procstat_close(struct dn_procstat *p);

/* One record per thread of every tracked process, into a buffer grown as needed.
 * Returns 0 or -errno. */
int dn_procstat_read(struct dn_procstat *p, struct dn_task_rec **buf, size_t *n, size_t *cap);

/* Processes read one by one instead of walking every task of the system: four system
 * calls each, about 12 us on the development VM, against 0.3 to 0.6 us for each task a
 * walk visits (in the tree or not; cold caches at a sample every 100 ms, 0.15 warm).
 * With 300 tasks on the system the two are even at about eight processes; with 3,300
 * a walk costs 1.8 ms, and a tree of 32 processes read one by one 0.5 ms. So a tree
 * is read process by process when it has at most one process for every
 * DN_PROCSTAT_TASKS_PER_READ tasks the last walk visited, and always up to
 * DN_PROCSTAT_PIDS_MIN processes; never more than DN_PROCSTAT_PIDS_MAX (each keeps a
 * descriptor open). */
#define DN_PROCSTAT_PIDS_MIN 4
#define DN_PROCSTAT_PIDS_MAX 128
#define DN_PROCSTAT_TASKS_PER_READ 32

/* How many processes may be read one by one (the rule above), from the tasks the last
 * walk visited. */
size_t dn_procstat_pids_limit(const struct dn_procstat *p);
uint64_t dn_procstat_walk_tasks(const struct dn_procstat *p); /* tasks the last walk visited */

/* The records of the threads of processes pids[0..npids) (npids <=
 * dn_procstat_pids_limit), each through an iterator of its own (made the first time,
 * kept while it is asked for). -EOPNOTSUPP when this kernel has no per-process task
 * iterator (before 6.1): use dn_procstat_read. */
int dn_procstat_read_pids(struct dn_procstat *p, const uint32_t *pids, size_t npids,
                          struct dn_task_rec **buf, size_t *n, size_t *cap);

#endif
