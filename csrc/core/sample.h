/* Samples as C data: the sampler thread builds these without touching Python; they become
 * dicts (encode_dict.c) or JSON/CSV text (writer.c) only when asked for. */
#ifndef DENET_SAMPLE_H
#define DENET_SAMPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/schema.h"

struct dn_child {
    pid_t pid;
    pid_t ppid;          /* its parent, so the tree's shape survives flattening */
    const char *command; /* interned, owned by the collector's string pool */
    struct dn_metrics metrics;
};

/* eBPF part of a sample; filled by the eBPF collectors when enabled. */
struct dn_ebpf_sample;
/* GPU part of a sample (core/gpu_sample.h); filled when GPU monitoring is on. */
struct dn_gpu_sample;

struct dn_sample {
    int64_t ts_ms;
    bool tree;                /* tree sample (parent/children/aggregated) or flat Metrics */
    bool has_parent;
    struct dn_metrics parent; /* the monitored process; the whole sample when !tree */
    size_t nchildren;
    struct dn_child *children;  /* NULL in a kept sample but the latest: see packed */
    struct dn_packed *packed;   /* the children as kept in memory (dn_sample_pack), or NULL */
    bool has_aggregated;
    struct dn_metrics aggregated;
    uint64_t process_count;
    struct dn_ebpf_sample *ebpf; /* NULL unless eBPF is enabled */
    struct dn_gpu_sample *gpu;   /* NULL unless GPU monitoring is on (or asked for) */
    /* Memory characterization of the tree (aggregated; the flat sample itself). */
    bool has_psi;
    double psi_some_avg10, psi_full_avg10;
    unsigned perf_valid;         /* bit i: perf[i] known; 0: no perf part */
    uint64_t perf[5];            /* counter deltas since the previous sample (DN_PERF_*) */
};

void dn_sample_clear(struct dn_sample *s);            /* frees owned memory, zeroes */
/* A copy of src: its children and off-CPU part are shared with src (immutable once the
 * sample is taken, they are reference counted), the rest copied. 0 or -ENOMEM. */
int dn_sample_copy(struct dn_sample *dst, const struct dn_sample *src);

/* A sample's children array (dn_sample.children) is shared by the copies of the sample
 * (the latest, the one handed to Python): a reference count sits in a header before its
 * first element, so it comes only from dn_children_grow, which grows it while it is
 * being built (one owner) as dn_grow does. dn_children_unref drops one reference (NULL:
 * nothing), freeing it with the last; the last array freed is kept for the next one
 * (its pages faulted in already: a fresh 45 KB array costs ten page faults, about 14 us
 * each on the development VM). */
int dn_children_grow(struct dn_child **children, size_t *cap, size_t need, size_t first);
void dn_children_unref(struct dn_child *children);
void dn_children_drop_spare(void); /* frees the array kept for reuse (sample.c) */

/* The samples kept in memory (store_in_memory) keep their children packed: each child
 * that is as it was in the sample kept before (a process that slept: only its
 * timestamp and uptime moved, and the system's network counters, which every child
 * carries) as the place it had there and its uptime, 8 bytes; only the others whole
 * (224 bytes). An idle tree of 200 processes keeps 1.6 KB a sample instead of 45 KB.
 * The latest sample keeps its whole array too, the others only the packed form, from
 * which the whole arrays are made again in order, first to last (dn_sample_unpack).
 * Packed forms go into pages mapped and faulted in 512 KB at a time (a page fault
 * costs about 14 us on the development VM), shared by copies with a reference count
 * like children arrays; a chunk is unmapped with its last packed form. */
struct dn_chunk;
struct dn_packed;
struct dn_sample_store {
    struct dn_chunk *cur;
    uint32_t *from; /* dn_sample_pack's scratch */
    size_t from_cap;
};
/* Packs s->children into s->packed, against prev's children (prev NULL, or without a
 * whole array: every child whole). 0 or -ENOMEM (s is then kept unpacked: whole). */
int dn_sample_pack(struct dn_sample_store *st, struct dn_sample *s, const struct dn_sample *prev);
/* Makes s->children again from s->packed against base (the children of the sample kept
 * before s, made again first; ignored when s was packed against none). 0, -ENOMEM, or
 * -EINVAL when base cannot be the one it was packed against.
 * Nothing to do when s has its array. */
int dn_sample_unpack(struct dn_sample *s, const struct dn_child *base, size_t nbase);
/* Bytes s->packed takes (0: none), for tests. */
size_t dn_sample_packed_bytes(const struct dn_sample *s);
void dn_sample_store_close(struct dn_sample_store *st);

/* A growable list of samples. */
struct dn_sample_vec {
    struct dn_sample *items;
    size_t len, cap;
};

int dn_sample_vec_push(struct dn_sample_vec *v, struct dn_sample *s); /* takes ownership */
void dn_sample_vec_clear(struct dn_sample_vec *v);

#endif
