/* The sample schema: one table of Metrics fields (name, unit, type, offset, meaning)
 * that the dict encoder, the JSON/CSV writers and the docs all read. */
#ifndef DENET_SCHEMA_H
#define DENET_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

/* One process's metrics at one instant (the `Metrics` table of README's Samples section). */
struct dn_metrics {
    int64_t ts_ms;                 /* ms since epoch */
    double cpu_usage;              /* %, 100 = one core */
    uint64_t mem_rss_kb;
    uint64_t mem_vms_kb;
    uint64_t disk_read_bytes;
    uint64_t disk_write_bytes;
    uint64_t syscall_read_bytes;
    uint64_t syscall_write_bytes;
    uint64_t page_faults_cached;
    uint64_t page_faults_disk;
    uint64_t sys_net_rx_bytes;
    uint64_t sys_net_tx_bytes;
    uint64_t thread_count;
    uint64_t uptime_secs;
    int64_t cpu_core;              /* -1 = unknown (None) */
    uint64_t gpu_memory_bytes;     /* GPU memory held (NVML); DN_U64_NONE without a GPU */
    uint64_t gpu_sm_utilization;   /* %, SM use over all devices; DN_U64_NONE without a GPU */
    /* This process's own INET socket traffic (eBPF); DN_U64_NONE without it. */
    uint64_t sock_rx_bytes;
    uint64_t sock_tx_bytes;
    uint64_t sock_rx_bytes_remote;
    uint64_t sock_tx_bytes_remote;
    /* What /usr/bin/time -v and pidstat show. */
    double cpu_user_secs;
    double cpu_system_secs;
    uint64_t ctx_switches_voluntary;
    uint64_t ctx_switches_involuntary;
    double blkio_delay_secs;       /* NaN = unknown (no delay accounting) */
};

enum dn_field_type {
    DN_FIELD_I64,   /* signed integer */
    DN_FIELD_U64,   /* unsigned integer */
    DN_FIELD_F64,   /* float */
    DN_FIELD_OPT_I64, /* integer, negative means None/null */
    DN_FIELD_OPT_U64, /* unsigned integer, DN_U64_NONE means None/null: could not be read */
    DN_FIELD_OPT_F64  /* float, NaN means None/null: could not be read */
};

/* A counter that could not be read (say, /proc/PID/io of another user's process): null
 * in every output, never a 0 that looks like a measurement. */
#define DN_U64_NONE UINT64_MAX

/* a + b where either may be DN_U64_NONE: a sum with an unknown part is unknown. */
static inline uint64_t dn_u64_add(uint64_t a, uint64_t b)
{
    return a == DN_U64_NONE || b == DN_U64_NONE ? DN_U64_NONE : a + b;
}

struct dn_field {
    const char *name;
    const char *unit;
    enum dn_field_type type;
    size_t offset;
    const char *description;
};

extern const struct dn_field dn_metrics_fields[];
extern const size_t dn_metrics_nfields;

/* Typed accessors so encoders never repeat the offset arithmetic. */
static inline int64_t dn_field_i64(const struct dn_metrics *m, const struct dn_field *f)
{
    return *(const int64_t *)((const char *)m + f->offset);
}
static inline uint64_t dn_field_u64(const struct dn_metrics *m, const struct dn_field *f)
{
    return *(const uint64_t *)((const char *)m + f->offset);
}
static inline double dn_field_f64(const struct dn_metrics *m, const struct dn_field *f)
{
    return *(const double *)((const char *)m + f->offset);
}

/* What field f of m holds: its value in *v, or DN_VALUE_NULL when it is unknown (None in
 * a dict, null in JSON, an empty CSV cell). Every encoder goes through this. */
enum dn_value_kind { DN_VALUE_NULL, DN_VALUE_I64, DN_VALUE_U64, DN_VALUE_F64 };
union dn_value {
    int64_t i;
    uint64_t u;
    double f;
};

static inline enum dn_value_kind dn_field_value(const struct dn_metrics *m,
                                                const struct dn_field *f, union dn_value *v)
{
    switch (f->type) {
    case DN_FIELD_I64:
        v->i = dn_field_i64(m, f);
        return DN_VALUE_I64;
    case DN_FIELD_U64:
        v->u = dn_field_u64(m, f);
        return DN_VALUE_U64;
    case DN_FIELD_F64:
        v->f = dn_field_f64(m, f);
        return DN_VALUE_F64;
    case DN_FIELD_OPT_I64:
        v->i = dn_field_i64(m, f);
        return v->i < 0 ? DN_VALUE_NULL : DN_VALUE_I64;
    case DN_FIELD_OPT_U64:
        v->u = dn_field_u64(m, f);
        return v->u == DN_U64_NONE ? DN_VALUE_NULL : DN_VALUE_U64;
    case DN_FIELD_OPT_F64:
        v->f = dn_field_f64(m, f);
        return v->f != v->f ? DN_VALUE_NULL : DN_VALUE_F64;
    }
    return DN_VALUE_NULL;
}

#endif
