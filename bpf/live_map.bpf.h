/* The tracked processes that are alive, as a bitmap indexed by tgid: the filter of
 * programs that run on every system call of the machine. Testing a bit is an array
 * lookup, which the verifier inlines into a few instructions; the `tracked` hash costs a
 * helper call, a hash of the key and a bucket walk.
 *
 * tracked.bpf.c's copy is the real one, shared like `tracked` (bpf_map__reuse_fd).
 * Writers: the fork hook sets a child's bit when it adds the child to `tracked`; the
 * exit hook clears it at group death; user space (csrc/ebpf/tracked.c, through an mmap
 * of the map) sets it when it registers a process and clears it when it finds a
 * registered process already exited. Every write is an atomic OR or AND (Linux 5.12),
 * as neighbouring bits belong to other processes. BPF side only. */
#ifndef DENET_BPF_LIVE_MAP_H
#define DENET_BPF_LIVE_MAP_H

#include "tracked.h"
#include "tracked_map.bpf.h"

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, DN_LIVE_WORDS_DEFAULT);
    __uint(map_flags, BPF_F_MMAPABLE);
    __type(key, __u32);
    __type(value, __u64);
} live SEC(".maps");

/* The word that holds tgid's bit, or NULL when tgid is past the bitmap (pid_max was
 * raised after it was sized): then `tracked` is the only record. */
static __always_inline __u64 *dn_live_word(__u32 tgid)
{
    __u32 w = tgid / 64;
    return bpf_map_lookup_elem(&live, &w);
}

/* Whether tgid's bit is set (false past the bitmap). */
static __always_inline bool dn_live_bit(__u32 tgid)
{
    __u64 *w = dn_live_word(tgid);
    return w && (*w & (1ULL << (tgid % 64)));
}

static __always_inline void dn_live_set(__u32 tgid)
{
    __u64 *w = dn_live_word(tgid);
    if (w)
        __sync_fetch_and_or(w, 1ULL << (tgid % 64));
}

static __always_inline void dn_live_clear(__u32 tgid)
{
    __u64 *w = dn_live_word(tgid);
    if (w && (*w & (1ULL << (tgid % 64)))) /* no locked write for a bit already clear */
        __sync_fetch_and_and(w, ~(1ULL << (tgid % 64)));
}

/* Whether tgid is a tracked process that is alive: its bit, or for a tgid past the
 * bitmap its `tracked` entry. The filter of programs that run for every process. */
static __always_inline bool dn_is_live(__u32 tgid)
{
    __u64 *w = dn_live_word(tgid);
    if (w)
        return *w & (1ULL << (tgid % 64));
    return dn_tracked_live(tgid) != 0;
}

#endif
