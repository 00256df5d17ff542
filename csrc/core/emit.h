/* One traversal of a sample, summary or metadata record, with two back ends: JSON text
 * (jsonbuf.c, used by the sampler thread for files) and Python objects (encode_dict.c).
 * The shape of every record is therefore written once, here. */
#ifndef DENET_EMIT_H
#define DENET_EMIT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/capabilities.h"
#include "core/collector.h"
#include "core/sample.h"

/* key is NULL for list items and for the top-level value; otherwise a static string
 * (both back ends cache keys by address: the dict one as interned Python strings, the
 * JSON one escaped), except for begin_object_dyn. */
struct dn_emitter_ops {
    void (*begin_object)(void *ctx, const char *key);
    void (*end_object)(void *ctx);
    void (*begin_list)(void *ctx, const char *key);
    void (*end_list)(void *ctx);
    void (*i64)(void *ctx, const char *key, int64_t v);
    void (*u64)(void *ctx, const char *key, uint64_t v);
    void (*f64)(void *ctx, const char *key, double v);
    void (*str)(void *ctx, const char *key, const char *v);
    void (*null)(void *ctx, const char *key);
    void (*boolean)(void *ctx, const char *key, bool v);
    /* begin_object with a key made at run time ("pid:tid"), not a static string */
    void (*begin_object_dyn)(void *ctx, const char *key);
    /* Optional (NULL: one call above for each field): the Metrics fields, in schema order,
     * into the object being written, as dn_emit_metrics_fields() defines them. id says
     * whose they are (a child's pid, or one of DN_METRICS_ID_*), so that a back end may
     * reuse what it made for the same one the last time. */
    void (*metrics)(void *ctx, const struct dn_metrics *m, int64_t id);
};

struct dn_emitter {
    const struct dn_emitter_ops *ops;
    void *ctx;
};

struct dn_metadata {
    pid_t pid;
    char **cmd;      /* NULL-terminated, may be empty for attached processes */
    char *executable;
    int64_t t0_ms;
    struct dn_capabilities caps; /* written when caps.known */
};

/* The kind tag ("kind": "tree"/"sample"/...) is written when tag is true (files). */
/* Ids of Metrics that are not a child's (whose id is its pid). */
#define DN_METRICS_ID_PARENT (-1)
#define DN_METRICS_ID_AGGREGATED (-2)

/* The Metrics fields, in schema order, into the object being written; id as for the
 * `metrics` op. */
void dn_emit_metrics_fields(const struct dn_emitter *e, const struct dn_metrics *m, int64_t id);
/* The children list of a tree sample, as a top-level list. */
void dn_emit_children(const struct dn_emitter *e, const struct dn_sample *s);
void dn_emit_sample(const struct dn_emitter *e, const struct dn_sample *s, bool tag);
void dn_emit_metadata(const struct dn_emitter *e, const struct dn_metadata *md, bool tag);
void dn_emit_summary(const struct dn_emitter *e, const struct dn_summary *s,
                     const struct dn_ebpf_sample *ebpf, bool tag);
/* The summary's `gpu` object on its own, as a top-level value (get_gpu_summary()). */
void dn_emit_gpu_summary(const struct dn_emitter *e, const struct dn_gpu_summary *g);

#endif
