/* Helpers shared by the eBPF loaders. */
#ifndef DENET_EBPF_COMMON_H
#define DENET_EBPF_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Writes "<what> failed: <strerror>; <how to fix>" into buf, the fix chosen from the
 * errno (privilege, missing BTF, kernel support). */
void dn_ebpf_explain(char *buf, size_t len, const char *what, int neg_errno);

/* Routes libbpf's own log to stderr only when DENET_DEBUG_BPF is set. */
void dn_ebpf_init_logging(void);

/* Contents of a map read with batch lookups: n keys and n values, each value being
 * vsz bytes (ncpu u64s for per-CPU maps). Kept between reads to reuse the memory. */
struct dn_map_buf {
    void *keys, *vals;
    size_t cap, n;
};

/* Every entry of a hash map into b. One batch lookup returns whole hash buckets, so a
 * buffer too small for a bucket (ENOSPC) is grown and the read restarted; kernels
 * without batch lookups are read key by key. Returns 0 or -errno. */
int dn_bpf_read_map(int fd, size_t ksz, size_t vsz, size_t max_entries, struct dn_map_buf *b);

/* Deletes the entries of the n keys (ksz bytes each, one after another) from a hash
 * map: one batch call (Linux 5.6+) for them all, else key by key; a key already gone is
 * not an error, and one that cannot be deleted does not keep the others. Returns 0 or
 * the first -errno. */
int dn_bpf_delete_keys(int fd, const void *keys, size_t n, size_t ksz);

/* Maps the first `bytes` of a BPF_F_MMAPABLE array map into memory, whole pages:
 * *out and *len (for munmap). Returns 0, or -errno with "mapping <what> failed: ..." in
 * err. */
int dn_bpf_map_mmap(int fd, size_t bytes, bool writable, const char *what, void **out,
                    size_t *len, char *err, size_t errlen);

/* Whether a map must be read again, told by the per-CPU change counters its program
 * bumps after writing to it (n u64 counters `stride` bytes apart from `first`, one
 * cache line each, each read with acquire): their sum moved since the last time this
 * said yes, or nothing was read yet, or `force`. Saying yes records the sum. Clearing
 * read_once forces the next read. */
struct dn_change_gate {
    uint64_t seen;
    bool read_once;
};
bool dn_change_gate_open(struct dn_change_gate *g, const void *first, size_t stride, size_t n,
                         bool force);

struct bpf_map;

/* Gives a collector's copies of the tracker's maps (`tracked` and the `live` bitmap) the
 * tracker's fds before it loads, so that every program filters on the same processes.
 * On failure returns -errno and writes "sharing the tracked-process maps with <who>
 * failed: ..." into err. */
int dn_ebpf_share_tracker_maps(struct bpf_map *tracked, struct bpf_map *live, int tracked_fd,
                               int live_fd, const char *who, char *err, size_t errlen);

#endif
