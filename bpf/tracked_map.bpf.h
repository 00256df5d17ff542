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

#endif
