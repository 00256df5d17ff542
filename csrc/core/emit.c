#include "core/emit.h"

#include <math.h>
#include <stdio.h>

#include "bpf/offcpu.h"
#include "core/gpu_sample.h"
#include "core/memchar.h"
#include "ebpf/ebpf_sample.h"
#include "ebpf/offcpu_analysis.h"
#include "ebpf/offcpu_sample.h"
#include "ebpf/syscall_analysis.h"
#include "ebpf/syscall_table.h"

#define OPS (e->ops)
#define CTX (e->ctx)

/* GPU parts, at the end of this file. */
static void emit_gpu(const struct dn_emitter *e, const struct dn_gpu_sample *g);
static void emit_gpu_summary(const struct dn_emitter *e, const char *key,
                             const struct dn_gpu_summary *g);

void dn_emit_metrics_fields(const struct dn_emitter *e, const struct dn_metrics *m, int64_t id)
{
    if (OPS->metrics) {
        OPS->metrics(CTX, m, id);
        return;
    }
    for (size_t i = 0; i < dn_metrics_nfields; i++) {
        const struct dn_field *f = &dn_metrics_fields[i];
        union dn_value v;
        switch (dn_field_value(m, f, &v)) {
        case DN_VALUE_NULL:
            OPS->null(CTX, f->name);
            break;
        case DN_VALUE_I64:
            OPS->i64(CTX, f->name, v.i);
            break;
        case DN_VALUE_U64:
            OPS->u64(CTX, f->name, v.u);
            break;
        case DN_VALUE_F64:
            OPS->f64(CTX, f->name, v.f);
            break;
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

static double round2(double v)
{
    return round(v * 100.0) / 100.0;
}

static void emit_offcpu_analysis(const struct dn_emitter *e, const char *key,
                                 const struct dn_offcpu_sample *o)
{
    struct dn_offcpu_analysis a;
    dn_offcpu_analyze(o->class_ns, &a);
    OPS->begin_object(CTX, key);
    OPS->str(CTX, "bottleneck_type", a.bottleneck_type);
    OPS->f64(CTX, "io_wait_percentage", round2(a.pct[DN_WAIT_IO]));
    OPS->f64(CTX, "lock_contention_percentage", round2(a.pct[DN_WAIT_LOCK]));
    OPS->f64(CTX, "sleep_percentage", round2(a.pct[DN_WAIT_SLEEP]));
    OPS->f64(CTX, "cpu_wait_percentage", round2(a.pct[DN_WAIT_CPU]));
    OPS->f64(CTX, "other_wait_percentage", round2(a.pct[DN_WAIT_OTHER]));
    OPS->begin_list(CTX, "optimization_hints");
    for (int i = 0; i < a.nhints; i++)
        OPS->str(CTX, NULL, a.hints[i]);
    OPS->end_list(CTX);
    OPS->end_object(CTX);
}

static void emit_frames(const struct dn_emitter *e, const char *key, const struct dn_frame *f,
                        uint32_t n)
{
    OPS->begin_list(CTX, key);
    for (uint32_t i = 0; i < n; i++) {
        OPS->begin_object(CTX, NULL);
        OPS->u64(CTX, "address", f[i].address);
        OPS->str(CTX, "symbol", f[i].symbol);
        if (f[i].source_location)
            OPS->str(CTX, "source_location", f[i].source_location);
        else
            OPS->null(CTX, "source_location");
        OPS->end_object(CTX);
    }
    OPS->end_list(CTX);
}

static const char *state_name(uint32_t state)
{
    switch (state) {
    case DN_OC_RUNNING:
        return "runnable";
    case DN_OC_INTERRUPTIBLE:
        return "interruptible";
    case DN_OC_UNINTERRUPTIBLE:
        return "uninterruptible";
    case DN_OC_IDLE:
        return "idle";
    default:
        return "stopped";
    }
}

static void emit_stack_trace(const struct dn_emitter *e, const struct dn_offcpu_stack *st)
{
    char buf[32];
    OPS->begin_object(CTX, NULL);
    OPS->begin_object(CTX, "event"); /* denet 0.5.0's raw event, as an aggregate */
    OPS->u64(CTX, "pid", st->pid);
    OPS->u64(CTX, "tid", st->tid);
    OPS->u64(CTX, "prev_state", st->state);
    OPS->u64(CTX, "offcpu_time_ns", st->total_ns);
    OPS->i64(CTX, "user_stack_id", st->user_stack_id);
    OPS->i64(CTX, "kernel_stack_id", st->kernel_stack_id);
    OPS->end_object(CTX);
    OPS->u64(CTX, "total_time_ns", st->total_ns);
    OPS->u64(CTX, "count", st->count);
    OPS->str(CTX, "process_name", st->process_name);
    OPS->str(CTX, "thread_name", st->thread_name);
    OPS->str(CTX, "state", state_name(st->state));
    OPS->str(CTX, "wait", dn_wait_class_name(st->wait));
    if (st->syscall >= 0)
        OPS->str(CTX, "syscall", dn_syscall_name(st->syscall, buf, sizeof buf));
    else
        OPS->null(CTX, "syscall");
    OPS->begin_list(CTX, "threads");
    for (uint32_t i = 0; i < st->nthreads; i++) {
        OPS->begin_list(CTX, NULL);
        OPS->u64(CTX, NULL, st->threads[i][0]);
        OPS->u64(CTX, NULL, st->threads[i][1]);
        OPS->end_list(CTX);
    }
    OPS->end_list(CTX);
    emit_frames(e, "user_stack", st->user, st->nuser);
    emit_frames(e, "kernel_stack", st->kernel, st->nkernel);
    if (st->user_stack_error)
        OPS->str(CTX, "user_stack_error", st->user_stack_error);
    if (st->kernel_stack_error)
        OPS->str(CTX, "kernel_stack_error", st->kernel_stack_error);
    OPS->end_object(CTX);
}

static void emit_offcpu(const struct dn_emitter *e, const struct dn_offcpu_sample *o)
{
    OPS->begin_object(CTX, "offcpu");
    OPS->u64(CTX, "total_time_ns", o->total_ns);
    OPS->u64(CTX, "total_events", o->events);
    OPS->u64(CTX, "avg_time_ns", o->events ? o->total_ns / o->events : 0);
    OPS->u64(CTX, "max_time_ns", o->max_ns);
    OPS->u64(CTX, "min_time_ns", o->min_ns);
    OPS->begin_object(CTX, "thread_stats");
    for (size_t i = 0; i < o->nthreads; i++) {
        const struct dn_offcpu_thread *t = &o->threads[i];
        char key[32];
        snprintf(key, sizeof key, "%u:%u", t->pid, t->tid);
        OPS->begin_object_dyn(CTX, key);
        OPS->u64(CTX, "tid", t->tid);
        OPS->u64(CTX, "total_time_ns", t->total_ns);
        OPS->u64(CTX, "count", t->count);
        OPS->u64(CTX, "avg_time_ns", t->count ? t->total_ns / t->count : 0);
        OPS->u64(CTX, "max_time_ns", t->max_ns);
        OPS->u64(CTX, "min_time_ns", t->min_ns);
        OPS->u64(CTX, "pid", t->pid);
        OPS->str(CTX, "thread_name", t->thread_name);
        OPS->str(CTX, "process_name", t->process_name);
        OPS->end_object(CTX);
    }
    OPS->end_object(CTX);
    OPS->begin_list(CTX, "top_blocking_threads");
    for (size_t i = 0; i < o->nthreads && i < 10; i++) {
        const struct dn_offcpu_thread *t = &o->threads[i];
        OPS->begin_object(CTX, NULL);
        OPS->u64(CTX, "tid", t->tid);
        OPS->u64(CTX, "pid", t->pid);
        OPS->f64(CTX, "time_ms", (double)t->total_ns / 1e6);
        OPS->f64(CTX, "percentage",
                 o->total_ns ? round2(100.0 * (double)t->total_ns / (double)o->total_ns) : 0.0);
        OPS->str(CTX, "thread_name", t->thread_name);
        OPS->str(CTX, "process_name", t->process_name);
        OPS->end_object(CTX);
    }
    OPS->end_list(CTX);
    OPS->begin_list(CTX, "bottlenecks");
    for (size_t i = 0; i < o->nbottlenecks; i++)
        OPS->str(CTX, NULL, o->bottlenecks[i]);
    OPS->end_list(CTX);
    if (o->stacks_enabled) {
        OPS->begin_list(CTX, "stack_traces");
        for (size_t i = 0; i < o->nstacks; i++)
            emit_stack_trace(e, &o->stacks[i]);
        OPS->end_list(CTX);
        OPS->begin_object(CTX, "stacks"); /* the heaviest stack */
        const struct dn_offcpu_stack *top = o->nstacks ? &o->stacks[0] : NULL;
        emit_frames(e, "user_stack", top ? top->user : NULL, top ? top->nuser : 0);
        emit_frames(e, "kernel_stack", top ? top->kernel : NULL, top ? top->nkernel : 0);
        OPS->end_object(CTX);
    }
    emit_offcpu_analysis(e, "analysis", o);
    if (o->dropped)
        OPS->u64(CTX, "dropped_events", o->dropped);
    OPS->end_object(CTX);
}

static void emit_ebpf(const struct dn_emitter *e, const struct dn_ebpf_sample *x)
{
    OPS->begin_object(CTX, "ebpf");
    if (x->has_syscalls) {
        emit_syscalls(e, x);
        if (x->dropped)
            OPS->u64(CTX, "dropped_events", x->dropped);
    }
    if (x->offcpu)
        emit_offcpu(e, x->offcpu);
    if (x->error)
        OPS->str(CTX, "error", x->error);
    OPS->end_object(CTX);
}

static void emit_children(const struct dn_emitter *e, const char *key, const struct dn_sample *s)
{
    OPS->begin_list(CTX, key);
    /* (a kept sample's children are made again before it is written: sample.h) */
    for (size_t i = 0; s->children && i < s->nchildren; i++) {
        const struct dn_child *c = &s->children[i];
        OPS->begin_object(CTX, NULL);
        OPS->i64(CTX, "pid", c->pid);
        OPS->i64(CTX, "ppid", c->ppid);
        OPS->str(CTX, "command", c->command ? c->command : "");
        OPS->begin_object(CTX, "metrics");
        dn_emit_metrics_fields(e, &c->metrics, c->pid);
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
        dn_emit_metrics_fields(e, &s->parent, DN_METRICS_ID_PARENT);
        if (s->ebpf)
            emit_ebpf(e, s->ebpf);
        dn_emit_memchar_sample(e, s);
        if (s->gpu)
            emit_gpu(e, s->gpu);
        OPS->end_object(CTX);
        return;
    }
    OPS->begin_object(CTX, NULL);
    if (tag)
        OPS->str(CTX, "kind", "tree");
    OPS->i64(CTX, "ts_ms", s->ts_ms);
    if (s->has_parent) {
        OPS->begin_object(CTX, "parent");
        dn_emit_metrics_fields(e, &s->parent, DN_METRICS_ID_PARENT);
        OPS->end_object(CTX);
    } else {
        OPS->null(CTX, "parent");
    }
    emit_children(e, "children", s);
    if (s->has_aggregated) {
        OPS->begin_object(CTX, "aggregated");
        dn_emit_metrics_fields(e, &s->aggregated, DN_METRICS_ID_AGGREGATED);
        OPS->u64(CTX, "process_count", s->process_count);
        if (s->ebpf)
            emit_ebpf(e, s->ebpf);
        dn_emit_memchar_sample(e, s);
        if (s->gpu)
            emit_gpu(e, s->gpu);
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

/* The summary's `processes`: every process the run saw, heaviest CPU first. */
static void emit_process_rows(const struct dn_emitter *e, const struct dn_summary *s)
{
    OPS->begin_list(CTX, "processes");
    for (size_t i = 0; i < s->nprocesses; i++) {
        const struct dn_proc_row *r = &s->processes[i];
        OPS->begin_object(CTX, NULL);
        OPS->i64(CTX, "pid", r->pid);
        OPS->i64(CTX, "ppid", r->ppid);
        OPS->str(CTX, "command", r->command ? r->command : "");
        OPS->f64(CTX, "cpu_secs", (double)r->cpu_ns / 1e9);
        opt_u64(e, "peak_rss_kb", r->peak_rss_kb ? r->peak_rss_kb : DN_U64_NONE);
        opt_u64(e, "disk_read_bytes", r->disk_read_bytes);
        opt_u64(e, "disk_write_bytes", r->disk_write_bytes);
        opt_u64(e, "syscall_read_bytes", r->syscall_read_bytes);
        opt_u64(e, "syscall_write_bytes", r->syscall_write_bytes);
        OPS->boolean(CTX, "exited", r->exited);
        if (r->have_exit_code)
            OPS->i64(CTX, "exit_code", r->exit_code);
        else
            OPS->null(CTX, "exit_code");
        OPS->end_object(CTX);
    }
    OPS->end_list(CTX);
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
    emit_process_rows(e, s);
    if (ebpf && ebpf->has_syscalls) {
        OPS->u64(CTX, "total_syscalls", ebpf->total);
        OPS->begin_object(CTX, "syscalls_by_category");
        for (int c = 0; c < DN_CAT_COUNT; c++)
            OPS->u64(CTX, dn_category_name((enum dn_syscall_category)c), ebpf->by_category[c]);
        OPS->end_object(CTX);
        if (ebpf->dropped)
            OPS->u64(CTX, "dropped_syscall_events", ebpf->dropped);
    }
    if (s->gpu.present)
        emit_gpu_summary(e, "gpu", &s->gpu);
    if (ebpf && ebpf->offcpu) {
        OPS->f64(CTX, "total_offcpu_time_secs", (double)ebpf->offcpu->total_ns / 1e9);
        emit_offcpu_analysis(e, "offcpu_analysis", ebpf->offcpu);
        if (ebpf->offcpu->dropped)
            OPS->u64(CTX, "dropped_offcpu_events", ebpf->offcpu->dropped);
    }
    emit_summary_more(e, s, ebpf);
    OPS->end_object(CTX);
}

/* ---- GPU ----------------------------------------------------------------------------- */

/* `gpu` as denet 0.5.0 names it (src/gpu/mod.rs), with the device index in each
 * process_data entry and `error` when a call failed. */
static void emit_gpu(const struct dn_emitter *e, const struct dn_gpu_sample *g)
{
    OPS->begin_object(CTX, "gpu");
    OPS->begin_list(CTX, "system_metrics");
    for (uint32_t i = 0; i < g->ndevices; i++) {
        const struct dn_gpu_device *d = &g->devices[i];
        OPS->begin_object(CTX, NULL);
        OPS->u64(CTX, "device_index", d->index);
        OPS->str(CTX, "name", d->name);
        opt_u64(e, "system_utilization_gpu", d->util_gpu);
        opt_u64(e, "system_utilization_memory", d->util_memory);
        opt_u64(e, "memory_total", d->memory_total);
        opt_u64(e, "memory_used", d->memory_used);
        opt_u64(e, "memory_free", d->memory_free);
        opt_u64(e, "temperature", d->temperature);
        opt_u64(e, "power_usage", d->power_mw);
        OPS->end_object(CTX);
    }
    OPS->end_list(CTX);
    OPS->begin_list(CTX, "process_data");
    for (uint32_t i = 0; i < g->nprocs; i++) {
        const struct dn_gpu_proc *p = &g->procs[i];
        OPS->begin_object(CTX, NULL);
        OPS->i64(CTX, "pid", p->pid);
        OPS->u64(CTX, "device_index", p->device_index);
        opt_u64(e, "gpu_utilization", p->gpu_util);
        opt_u64(e, "memory_usage", p->memory);
        opt_u64(e, "memory_utilization_pct", p->memory_util);
        OPS->end_object(CTX);
    }
    OPS->end_list(CTX);
    OPS->boolean(CTX, "has_process_data", g->nprocs > 0);
    OPS->str(CTX, "collection_method", g->enabled ? "nvml" : "none");
    if (g->error)
        OPS->str(CTX, "error", g->error);
    OPS->end_object(CTX);
}

#define DN_GIB (1024.0 * 1024.0 * 1024.0)

/* The summary's `gpu`, as denet 0.5.0 names it; sizes in GiB ("gb" in the names). */
static void emit_gpu_summary(const struct dn_emitter *e, const char *key,
                             const struct dn_gpu_summary *g)
{
    OPS->begin_object(CTX, key);
    OPS->boolean(CTX, "enabled", g->enabled);
    OPS->u64(CTX, "device_count", g->device_count);
    OPS->f64(CTX, "total_memory_gb", (double)g->total_memory / DN_GIB);
    OPS->f64(CTX, "peak_used_memory_gb", (double)g->peak_used_memory / DN_GIB);
    OPS->u64(CTX, "max_system_gpu_utilization",
             g->max_system_util == DN_U64_NONE ? 0 : g->max_system_util);
    opt_u64(e, "max_process_gpu_utilization", g->max_process_util);
    OPS->f64(CTX, "process_memory_usage_gb", (double)g->peak_tree_memory / DN_GIB);
    if (g->error)
        OPS->str(CTX, "error", g->error);
    OPS->end_object(CTX);
}

void dn_emit_gpu_summary(const struct dn_emitter *e, const struct dn_gpu_summary *g)
{
    emit_gpu_summary(e, NULL, g);
}
