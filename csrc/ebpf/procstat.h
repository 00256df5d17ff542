/* User side of bpf/procstat.bpf.c: a task iterator over the tracked processes, one
 * read() for every thread of the tree. */
#ifndef DENET_EBPF_PROCSTAT_H
#define DENET_EBPF_PROCSTAT_H

#include <stddef.h>

#include "bpf/procstat.h"

struct dn_procstat;

/* Loads the iterator, filtering on the tracker's maps (its bitmap). NULL when this kernel cannot
 * (no task iterators, or the verifier refused): the caller reads /proc instead. */
struct dn_procstat *dn_procstat_open(int tracked_map_fd, int live_map_fd);
void dn_procstat_close(struct dn_procstat *p);

/* One record per thread of every tracked process, into a buffer grown as needed.
 * Returns 0 or -errno. */
int dn_procstat_read(struct dn_procstat *p, struct dn_task_rec **buf, size_t *n, size_t *cap);

#endif
