/* Off-CPU classification and verdict (README: "Off-CPU time"). Pure functions, tested
 * from tests/c without BPF. */
#ifndef DENET_EBPF_OFFCPU_ANALYSIS_H
#define DENET_EBPF_OFFCPU_ANALYSIS_H

#include <stdbool.h>
#include <stdint.h>

#include "ebpf/offcpu_sample.h"

/* A class's share of all off-CPU time that makes it the verdict, and the share of the
 * three diagnosable classes together below which the verdict is "unknown". */
#define DN_OFFCPU_DOMINANT_PCT 50.0
/* A class gets an optimization hint from this share of all off-CPU time. */
#define DN_OFFCPU_HINT_PCT 20.0

/* The class of an interval from the state it left the CPU in (enum dn_oc_state), the
 * system call it was blocked in (x86_64 number, -1 none) and whether that call was a
 * poll/select/epoll wait with a finite timeout. */
enum dn_wait_class dn_wait_classify(int state, int32_t syscall, bool timed);

/* "io", "lock", "sleep", "cpu", "other". */
const char *dn_wait_class_name(enum dn_wait_class c);

#define DN_OFFCPU_MAX_HINTS DN_WAIT_NCLASSES

struct dn_offcpu_analysis {
    const char *bottleneck_type; /* io_blocked, lock_contention, sleep, mixed, unknown */
    double pct[DN_WAIT_NCLASSES]; /* shares of all off-CPU time, 0..100 */
    int nhints;
    char hints[DN_OFFCPU_MAX_HINTS][256];
};

void dn_offcpu_analyze(const uint64_t class_ns[DN_WAIT_NCLASSES], struct dn_offcpu_analysis *a);

#endif
