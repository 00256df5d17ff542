/* Syscall-pattern analysis: a C port of denet 0.5.0's generate_syscall_analysis
 * (same thresholds, rule order and strings). No allocation: every string in the
 * result points to static storage. */
#ifndef DENET_SYSCALL_ANALYSIS_H
#define DENET_SYSCALL_ANALYSIS_H

#include <stdint.h>

#include "ebpf/syscall_table.h"

#define DN_MAX_BOTTLENECK_INDICATORS 8   /* at most 6 rules can fire */
#define DN_MAX_OPTIMIZATION_HINTS 4      /* at most 3 per behavior */

struct dn_syscall_analysis {
    /* "io_bound", "cpu_bound", "memory_bound", "network_bound", "mixed", "unknown" */
    const char *behavior_classification;
    double syscall_rate_per_sec;
    double io_intensity;         /* file_io / total */
    double memory_intensity;     /* memory / total */
    double cpu_intensity;        /* process / total: the reference's CPU proxy */
    double network_intensity;    /* network / total */
    const char *bottleneck_indicators[DN_MAX_BOTTLENECK_INDICATORS];
    int n_bottleneck_indicators;
    /* performance_profile */
    const char *workload_type;
    double bottleneck_likelihood;
    const char *optimization_hints[DN_MAX_OPTIMIZATION_HINTS];
    int n_optimization_hints;
};

/* by_category: counts indexed by enum dn_syscall_category (NULL = all zero);
 * total: all syscalls counted; cpu_usage_percent: top convention (100 = one core);
 * elapsed_seconds: the window the counts cover. Fewer than 1 syscall or less than
 * 0.1 s (or a NaN elapsed) gives "unknown" / "insufficient_data" with zeros. */
void dn_syscall_analyze(const uint64_t by_category[DN_CAT_COUNT], uint64_t total,
                        double cpu_usage_percent, double elapsed_seconds,
                        struct dn_syscall_analysis *out);

#endif /* DENET_SYSCALL_ANALYSIS_H */
