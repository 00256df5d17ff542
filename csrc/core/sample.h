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
    struct dn_child *children;
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
 * (the one kept in memory, the latest, the one handed to Python): a reference count sits
 * in a header before its first element, so it comes only from dn_children_grow, which
 * grows it while it is being built (one owner) as dn_grow does. dn_children_unref
 * drops one reference (NULL: nothing), freeing it with the last. */
struct dn_sample_store;
/* A new array (*children NULL) comes from store st when it is not NULL (a sample to be
 * kept is built where it will stay), else from the heap. */
int dn_children_grow(struct dn_child **children, size_t *cap, size_t need, size_t first,
                     struct dn_sample_store *st);
void dn_children_unref(struct dn_child *children);
void dn_children_drop_spare(void); /* frees the array kept for reuse (sample.c) */

/* Where the samples kept in memory (store_in_memory) put their children arrays: pages
 * mapped and faulted in 512 KB at a time, so that keeping a sample does not take a page
 * fault for each page of its array (about 14 µs each on the development VM, over half of
 * a 200-process sample). An array there is freed with its last reference as any other;
 * a chunk is unmapped with its last array. dn_sample_store_keep moves s's children
 * there (left where they are when no chunk can be mapped), or, when they were built
 * there, gives back the room they did not use. */
struct dn_chunk;
struct dn_sample_store {
    struct dn_chunk *cur;
    void *last; /* the array last placed in cur, whose unused end can be given back */
};
void dn_sample_store_keep(struct dn_sample_store *st, struct dn_sample *s);
void dn_sample_store_close(struct dn_sample_store *st);

/* A growable list of samples. */
struct dn_sample_vec {
    struct dn_sample *items;
    size_t len, cap;
};

int dn_sample_vec_push(struct dn_sample_vec *v, struct dn_sample *s); /* takes ownership */
void dn_sample_vec_clear(struct dn_sample_vec *v);

#endif
