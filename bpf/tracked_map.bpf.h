/* The tracked-process map as every BPF object declares it. tracked.bpf.c's copy is the
 * real one; the other objects are given its fd (bpf_map__reuse_fd) before they load, so
 * all programs filter on the same set of processes. BPF side only. */
#ifndef DENET_BPF_TRACKED_MAP_H
#define DENET_BPF_TRACKED_MAP_H

#include "tracked.h"

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, DN_TRACKED_MAX);
    __type(key, __u32);
    __type(value, struct dn_tracked);
} tracked SEC(".maps");

/* The entry of a tracked process that is still alive, or NULL. An entry whose process
 * exited stays until user space collects its final counts; a new process that reuses
 * the pid meanwhile must not be taken for it. */
static __always_inline struct dn_tracked *dn_tracked_live(__u32 tgid)
{
    struct dn_tracked *v = bpf_map_lookup_elem(&tracked, &tgid);
    return v && !v->exit_ns ? v : 0;
}

#endif
