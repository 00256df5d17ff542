/* Port of the reference's generate_syscall_analysis; see syscall_analysis.h.
 * Thresholds are strict comparisons exactly as in the reference: a value equal to
 * a threshold does not trigger its rule. */
#include "ebpf/syscall_analysis.h"

#include <string.h>

enum behavior { B_IO, B_CPU, B_MEMORY, B_NETWORK, B_MIXED, B_UNKNOWN };

/* The reference's PerformanceProfile for each behavior, as data. */
static const struct {
    const char *classification;   /* ProcessBehavior in snake_case */
    const char *workload_type;
    double likelihood;
    const char *hints[DN_MAX_OPTIMIZATION_HINTS];
} profiles[] = {
    [B_IO] = {"io_bound", "file_io_intensive", 0.8,
              {"Consider I/O optimization strategies", "Use async I/O or batching",
               "Check for excessive file operations"}},
    [B_CPU] = {"cpu_bound", "cpu_intensive", 0.7,
               {"CPU optimization opportunities", "Consider parallel processing",
                "Profile for algorithmic improvements"}},
    [B_MEMORY] = {"memory_bound", "memory_intensive", 0.75,
                  {"Memory allocation optimization needed", "Consider memory pooling",
                   "Check for memory leaks"}},
    [B_NETWORK] = {"network_bound", "network_intensive", 0.8,
                   {"Network optimization opportunities", "Consider connection pooling",
                    "Optimize network protocols"}},
    [B_MIXED] = {"mixed", "mixed_workload", 0.5,
                 {"Mixed workload - profile individual components",
                  "Consider workload separation"}},
    [B_UNKNOWN] = {"unknown", "unknown", 0.0, {NULL}},
};

/* First matching rule wins, in the reference's order: I/O before network before
 * memory before CPU before mixed. */
static enum behavior classify(double io, double memory, double network, double cpu_usage,
                              double rate)
{
    if (io > 0.6 && rate > 100.0)
        return B_IO;
    if (network > 0.4)
        return B_NETWORK;
    if (memory > 0.3)
        return B_MEMORY;
    if (rate < 50.0 && cpu_usage > 50.0)   /* few syscalls, busy CPU */
        return B_CPU;
    if (io > 0.2 && memory > 0.1)
        return B_MIXED;
    return B_UNKNOWN;
}

static void add_indicator(struct dn_syscall_analysis *out, const char *s)
{
    if (out->n_bottleneck_indicators < DN_MAX_BOTTLENECK_INDICATORS)
        out->bottleneck_indicators[out->n_bottleneck_indicators++] = s;
}

/* Absolute counts, not intensities, as in the reference: the rules look at the
 * raw numbers of calls in the window. */
static void detect(struct dn_syscall_analysis *out, double file_io, double memory,
                   double network, double rate, double cpu_usage)
{
    if (file_io > 500.0)
        add_indicator(out, "high_file_io");
    if (rate > 1000.0)
        add_indicator(out, "very_high_syscall_rate");
    if (memory > 100.0)
        add_indicator(out, "frequent_memory_management");
    if (network > 200.0)
        add_indicator(out, "high_network_activity");
    if (cpu_usage > 80.0 && rate < 100.0)
        add_indicator(out, "cpu_intensive");
    if (file_io > 300.0 && memory > 50.0)
        add_indicator(out, "io_memory_contention");
}

static void set_profile(struct dn_syscall_analysis *out, enum behavior b)
{
    out->behavior_classification = profiles[b].classification;
    out->workload_type = profiles[b].workload_type;
    out->bottleneck_likelihood = profiles[b].likelihood;
    out->n_optimization_hints = 0;
    for (int i = 0; i < DN_MAX_OPTIMIZATION_HINTS && profiles[b].hints[i]; i++)
        out->optimization_hints[out->n_optimization_hints++] = profiles[b].hints[i];
}

void dn_syscall_analyze(const uint64_t by_category[DN_CAT_COUNT], uint64_t total,
                        double cpu_usage_percent, double elapsed_seconds,
                        struct dn_syscall_analysis *out)
{
    if (out == NULL)
        return;
    memset(out, 0, sizeof *out);

    double t = (double)total;
    /* !(>= 0.1) rather than (< 0.1) so a NaN window is also insufficient data
     * instead of a NaN rate that JSON cannot carry. */
    if (t < 1.0 || !(elapsed_seconds >= 0.1)) {
        out->behavior_classification = "unknown";
        out->workload_type = "insufficient_data";
        return;
    }

    double file_io = 0, memory = 0, network = 0, process = 0;
    if (by_category) {
        file_io = (double)by_category[DN_CAT_FILE_IO];
        memory = (double)by_category[DN_CAT_MEMORY];
        network = (double)by_category[DN_CAT_NETWORK];
        process = (double)by_category[DN_CAT_PROCESS];
    }

    out->io_intensity = file_io / t;
    out->memory_intensity = memory / t;
    out->network_intensity = network / t;
    out->cpu_intensity = process / t;   /* process syscalls stand in for CPU */
    out->syscall_rate_per_sec = t / elapsed_seconds;

    enum behavior b = classify(out->io_intensity, out->memory_intensity,
                               out->network_intensity, cpu_usage_percent,
                               out->syscall_rate_per_sec);
    detect(out, file_io, memory, network, out->syscall_rate_per_sec, cpu_usage_percent);
    set_profile(out, b);
}
