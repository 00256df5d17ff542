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
 * calls each (about 9 us on the development VM), against a walk of 40 us there with
 * warm caches and 0.3 to 0.6 us a task with cold ones (a sample every 100 ms). So for
 * a tree of up to four processes; at eight the walk is cheaper with warm caches. */
#define DN_PROCSTAT_PIDS_MAX 4

/* The records of the threads of processes pids[0..npids) (npids <= DN_PROCSTAT_PIDS_MAX),
 * each through an iterator of its own (made the first time, kept while it is asked
 * for). -EOPNOTSUPP when this kernel has no per-process task iterator (before 6.1):
 * use dn_procstat_read. */
int dn_procstat_read_pids(struct dn_procstat *p, const uint32_t *pids, size_t npids,
                          struct dn_task_rec **buf, size_t *n, size_t *cap);

#endif
