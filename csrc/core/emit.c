#include "core/emit.h"

#include <math.h>

#include "core/memchar.h"
#include "ebpf/ebpf_sample.h"
#include "ebpf/syscall_analysis.h"
#include "ebpf/syscall_table.h"

#define OPS (e->ops)
#define CTX (e->ctx)

void dn_emit_metrics_fields(const struct dn_emitter *e, const struct dn_metrics *m)
{
    for (size_t i = 0; i < dn_metrics_nfields; i++) {
        const struct dn_field *f = &dn_metrics_fields[i];
        switch (f->type) {
        case DN_FIELD_I64:
            OPS->i64(CTX, f->name, dn_field_i64(m, f));
            break;
        case DN_FIELD_U64:
            OPS->u64(CTX, f->name, dn_field_u64(m, f));
            break;
        case DN_FIELD_F64:
            OPS->f64(CTX, f->name, dn_field_f64(m, f));
            break;
        case DN_FIELD_OPT_I64: {
            int64_t v = dn_field_i64(m, f);
            if (v < 0)
                OPS->null(CTX, f->name);
            else
                OPS->i64(CTX, f->name, v);
            break;
        }
        case DN_FIELD_OPT_U64: {
            uint64_t v = dn_field_u64(m, f);
            if (v == DN_U64_NONE)
                OPS->null(CTX, f->name);
            else
                OPS->u64(CTX, f->name, v);
            break;
        }
        case DN_FIELD_OPT_F64: {
            double v = dn_field_f64(m, f);
            if (v != v)
                OPS->null(CTX, f->name);
            else
                OPS->f64(CTX, f->name, v);
            break;
        }
        }
    }
}

static void emit_syscalls(const struct dn_emitter *e, const struct dn_ebpf_sample *x)
{
    OPS->begin_object(CTX, "syscalls");
    OPS->u64(CTX, "total", x->total);
    OPS->begin_object(CTX, "by_category");
    for (int c = 0; c < DN_CAT_COUNT; c++)
        OPS->u64(CTX, dn_category_name((enum dn_syscall_category)c), x->by_category[c]);
    OPS->end_object(CTX);
    OPS->begin_list(CTX, "top_syscalls");
    for (uint32_t i = 0; i < x->ntop; i++) {
        char buf[32];
        OPS->begin_object(CTX, NULL);
        OPS->str(CTX, "name", dn_syscall_name(x->top[i].nr, buf, sizeof buf));
        OPS->u64(CTX, "count", x->top[i].count);
        OPS->end_object(CTX);
    }
    OPS->end_list(CTX);

    struct dn_syscall_analysis a;
    dn_syscall_analyze(x->by_category, x->total, x->cpu_usage, x->elapsed_secs, &a);
    OPS->begin_object(CTX, "analysis");
    OPS->str(CTX, "behavior_classification", a.behavior_classification);
    OPS->f64(CTX, "syscall_rate_per_sec", a.syscall_rate_per_sec);
    OPS->f64(CTX, "io_intensity", a.io_intensity);
    OPS->f64(CTX, "memory_intensity", a.memory_intensity);
    OPS->f64(CTX, "cpu_intensity", a.cpu_intensity);
    OPS->f64(CTX, "network_intensity", a.network_intensity);
    OPS->begin_list(CTX, "bottleneck_indicators");
    for (int i = 0; i < a.n_bottleneck_indicators; i++)
        OPS->str(CTX, NULL, a.bottleneck_indicators[i]);
    OPS->end_list(CTX);
    OPS->begin_object(CTX, "performance_profile");
    OPS->str(CTX, "workload_type", a.workload_type);
    OPS->f64(CTX, "bottleneck_likelihood", a.bottleneck_likelihood);
    OPS->begin_list(CTX, "optimization_hints");
    for (int i = 0; i < a.n_optimization_hints; i++)
        OPS->str(CTX, NULL, a.optimization_hints[i]);
    OPS->end_list(CTX);
    OPS->end_object(CTX);
    OPS->end_object(CTX); /* analysis */
    OPS->end_object(CTX); /* syscalls */
}

static void emit_ebpf(const struct dn_emitter *e, const struct dn_ebpf_sample *x)
{
    OPS->begin_object(CTX, "ebpf");
    if (x->has_syscalls) {
        emit_syscalls(e, x);
        if (x->dropped)
            OPS->u64(CTX, "dropped_events", x->dropped);
    }
    if (x->error)
        OPS->str(CTX, "error", x->error);
    OPS->end_object(CTX);
}

static void emit_children(const struct dn_emitter *e, const char *key, const struct dn_sample *s)
{
    OPS->begin_list(CTX, key);
    for (size_t i = 0; i < s->nchildren; i++) {
        const struct dn_child *c = &s->children[i];
        OPS->begin_object(CTX, NULL);
        OPS->i64(CTX, "pid", c->pid);
        OPS->i64(CTX, "ppid", c->ppid);
        OPS->str(CTX, "command", c->command ? c->command : "");
        OPS->begin_object(CTX, "metrics");
        dn_emit_metrics_fields(e, &c->metrics);
        OPS->end_object(CTX);
        OPS->end_object(CTX);
    }
    OPS->end_list(CTX);
}

void dn_emit_children(const struct dn_emitter *e, const struct dn_sample *s)
{
    emit_children(e, NULL, s);
}

void dn_emit_sample(const struct dn_emitter *e, const struct dn_sample *s, bool tag)
{
    if (!s->tree) {
        /* Flat sample: the Metrics of the process, plus ebpf when enabled. */
        OPS->begin_object(CTX, NULL);
        if (tag)
            OPS->str(CTX, "kind", "sample");
        dn_emit_metrics_fields(e, &s->parent);
        if (s->ebpf)
            emit_ebpf(e, s->ebpf);
        dn_emit_memchar_sample(e, s);
        OPS->end_object(CTX);
        return;
    }
    OPS->begin_object(CTX, NULL);
    if (tag)
        OPS->str(CTX, "kind", "tree");
    OPS->i64(CTX, "ts_ms", s->ts_ms);
    if (s->has_parent) {
        OPS->begin_object(CTX, "parent");
        dn_emit_metrics_fields(e, &s->parent);
        OPS->end_object(CTX);
    } else {
        OPS->null(CTX, "parent");
    }
    emit_children(e, "children", s);
    if (s->has_aggregated) {
        OPS->begin_object(CTX, "aggregated");
        dn_emit_metrics_fields(e, &s->aggregated);
        OPS->u64(CTX, "process_count", s->process_count);
        if (s->ebpf)
            emit_ebpf(e, s->ebpf);
        dn_emit_memchar_sample(e, s);
        OPS->end_object(CTX);
    } else {
        OPS->null(CTX, "aggregated");
    }
    OPS->end_object(CTX);
}

void dn_emit_metadata(const struct dn_emitter *e, const struct dn_metadata *md, bool tag)
{
    OPS->begin_object(CTX, NULL);
    if (tag)
        OPS->str(CTX, "kind", "metadata");
    OPS->i64(CTX, "pid", md->pid);
    OPS->begin_list(CTX, "cmd");
    for (char **a = md->cmd; a && *a; a++)
        OPS->str(CTX, NULL, *a);
    OPS->end_list(CTX);
    OPS->str(CTX, "executable", md->executable ? md->executable : "");
    OPS->i64(CTX, "t0_ms", md->t0_ms);
    if (md->caps.known)
        dn_emit_capabilities(e, "capabilities", &md->caps);
    OPS->end_object(CTX);
}

static void opt_u64(const struct dn_emitter *e, const char *key, uint64_t v)
{
    if (v == DN_U64_NONE)
        OPS->null(CTX, key);
    else
        OPS->u64(CTX, key, v);
}

static void f64_or_null(const struct dn_emitter *e, const char *key, double v)
{
    if (v == v && !isinf(v))
        OPS->f64(CTX, key, v);
    else
        OPS->null(CTX, key);
}

/* The summary keys of denet HEAD (page-fault peaks, syscall rates and fractions, memory
 * characterization) and the socket byte totals. */
static void emit_summary_more(const struct dn_emitter *e, const struct dn_summary *s,
                              const struct dn_ebpf_sample *ebpf)
{
    OPS->u64(CTX, "peak_page_faults_cached", s->peak_page_faults_cached);
    OPS->u64(CTX, "peak_page_faults_disk", s->peak_page_faults_disk);
    const struct dn_summary_ext *x = &s->ext;
    opt_u64(e, "total_sock_rx_bytes", x->sock ? x->sock_rx : DN_U64_NONE);
    opt_u64(e, "total_sock_tx_bytes", x->sock ? x->sock_tx : DN_U64_NONE);
    opt_u64(e, "total_sock_rx_bytes_remote", x->sock ? x->sock_rx_remote : DN_U64_NONE);
    opt_u64(e, "total_sock_tx_bytes_remote", x->sock ? x->sock_tx_remote : DN_U64_NONE);
    if (ebpf && ebpf->has_syscalls) {
        double t = (double)ebpf->total;
        OPS->begin_object(CTX, "syscalls");
        f64_or_null(e, "avg_syscall_rate_per_sec",
                    s->total_time_secs > 0 ? t / s->total_time_secs : NAN);
        f64_or_null(e, "avg_io_syscall_fraction",
                    t > 0 ? (double)ebpf->by_category[DN_CAT_FILE_IO] / t : NAN);
        f64_or_null(e, "avg_memory_syscall_fraction",
                    t > 0 ? (double)ebpf->by_category[DN_CAT_MEMORY] / t : NAN);
        /* process syscalls stand in for CPU, as in the analysis engine */
        f64_or_null(e, "avg_cpu_syscall_fraction",
                    t > 0 ? (double)ebpf->by_category[DN_CAT_PROCESS] / t : NAN);
        f64_or_null(e, "avg_network_syscall_fraction",
                    t > 0 ? (double)ebpf->by_category[DN_CAT_NETWORK] / t : NAN);
        OPS->end_object(CTX);
    }
    if (x->have_memchar) {
        OPS->begin_object(CTX, "memory_characterization");
        f64_or_null(e, "mean_ipc", x->mean_ipc);
        f64_or_null(e, "llc_miss_rate", x->llc_miss_rate);
        f64_or_null(e, "backend_stall_ratio", x->backend_stall_ratio);
        f64_or_null(e, "psi_some_fraction", x->psi_some_fraction);
        OPS->str(CTX, "verdict", x->verdict ? x->verdict : "insufficient-data");
        OPS->end_object(CTX);
    }
}

void dn_emit_summary(const struct dn_emitter *e, const struct dn_summary *s,
                     const struct dn_ebpf_sample *ebpf, bool tag)
{
    OPS->begin_object(CTX, NULL);
    if (tag)
        OPS->str(CTX, "kind", "summary");
    OPS->f64(CTX, "total_time_secs", s->total_time_secs);
    OPS->u64(CTX, "sample_count", s->sample_count);
    OPS->u64(CTX, "max_processes", s->max_processes);
    OPS->u64(CTX, "max_threads", s->max_threads);
    opt_u64(e, "total_disk_read_bytes", s->total_disk_read_bytes);
    opt_u64(e, "total_disk_write_bytes", s->total_disk_write_bytes);
    opt_u64(e, "total_syscall_read_bytes", s->total_syscall_read_bytes);
    opt_u64(e, "total_syscall_write_bytes", s->total_syscall_write_bytes);
    OPS->u64(CTX, "total_sys_net_rx_bytes", s->total_sys_net_rx_bytes);
    OPS->u64(CTX, "total_sys_net_tx_bytes", s->total_sys_net_tx_bytes);
    opt_u64(e, "peak_mem_rss_kb", s->peak_mem_rss_kb ? s->peak_mem_rss_kb : DN_U64_NONE);
    OPS->f64(CTX, "avg_cpu_usage", s->avg_cpu_usage);
    OPS->f64(CTX, "total_cpu_time_secs", s->total_cpu_time_secs);
    /* 0: no live read and a high-water mark the kernel mixed with the image the command
     * was started from (a command that exits before its first read, without eBPF).
     * Unknown, so null: a process never has 0 resident. */
    opt_u64(e, "peak_process_rss_kb", s->peak_process_rss_kb ? s->peak_process_rss_kb : DN_U64_NONE);
    OPS->u64(CTX, "processes_seen", s->processes_seen);
    if (s->tracker_fork_dropped) /* the tracked map was full: these were not followed */
        OPS->u64(CTX, "untracked_forks", s->tracker_fork_dropped);
    if (s->processes_unreadable) /* out of file descriptors: missing from some samples */
        OPS->u64(CTX, "processes_unreadable", s->processes_unreadable);
    if (ebpf && ebpf->has_syscalls) {
        OPS->u64(CTX, "total_syscalls", ebpf->total);
        OPS->begin_object(CTX, "syscalls_by_category");
        for (int c = 0; c < DN_CAT_COUNT; c++)
            OPS->u64(CTX, dn_category_name((enum dn_syscall_category)c), ebpf->by_category[c]);
        OPS->end_object(CTX);
        if (ebpf->dropped)
            OPS->u64(CTX, "dropped_syscall_events", ebpf->dropped);
    }
    emit_summary_more(e, s, ebpf);
    OPS->end_object(CTX);
}
