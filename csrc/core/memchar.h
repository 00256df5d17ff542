/* Memory characterization: memory pressure (PSI) and CPU performance counters of the
 * tree (perf_event_open with inherit), per sample, and the run's verdict
 * (memory-bound, cpu-bound, mixed) in the summary. */
#ifndef DENET_MEMCHAR_H
#define DENET_MEMCHAR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/capabilities.h"

struct dn_emitter;
struct dn_sample;

/* ---- PSI --------------------------------------------------------------------------- */

struct dn_psi {
    int fd;           /* memory.pressure of the process's cgroup, or /proc/pressure/memory */
};

/* Finds the memory.pressure to read for pid (its cgroup v2 group where it has its own,
 * else the system's) and fills caps->psi. Returns 0, or -errno when PSI is unavailable
 * (the reason is in caps->psi.reason; p->fd is -1). */
int dn_psi_open(struct dn_psi *p, pid_t pid, struct dn_capabilities *caps);
int dn_psi_read(struct dn_psi *p, double *some_avg10, double *full_avg10); /* 0 / -errno */
void dn_psi_close(struct dn_psi *p);

/* ---- perf counters ------------------------------------------------------------------ */

/* Counter order in every array below. */
enum { DN_PERF_CYCLES, DN_PERF_INSTRUCTIONS, DN_PERF_CACHE_REFS, DN_PERF_CACHE_MISSES,
       DN_PERF_STALLED_BACKEND };
extern const char *const dn_perf_names[DN_PERF_NEVENTS];

struct dn_perf {
    int fd[DN_PERF_NEVENTS];        /* -1: that counter did not open */
    bool software;                  /* test mode: software events stand in (see memchar.c) */
};

/* Whether hardware counters can be opened here; fills caps->perf_hw.reason when not.
 * Cached. */
bool dn_perf_probe(struct dn_capabilities *caps);

/* Opens the counters on pid and every process it forks from now on (inherit). With
 * held, pid has not exec'd yet: counting starts at its exec. Fills caps->perf_hw.
 * Returns NULL when no counter opened. */
struct dn_perf *dn_perf_open(pid_t pid, bool held, struct dn_capabilities *caps);
void dn_perf_close(struct dn_perf *p);

/* Cumulative counts (scaled when the kernel multiplexed them); bit i of *valid says
 * whether vals[i] was read. */
void dn_perf_read(struct dn_perf *p, uint64_t vals[DN_PERF_NEVENTS], unsigned *valid);

/* ---- sample and summary parts -------------------------------------------------------- */

/* psi_mem and perf of a sample, into the object being written (aggregated, or the flat
 * sample). */
void dn_emit_memchar_sample(const struct dn_emitter *e, const struct dn_sample *s);

/* The run's figures, from the whole-run counter totals and the PSI samples. NaN where
 * unknown. verdict is a static string. */
struct dn_memchar {
    double mean_ipc, llc_miss_rate, backend_stall_ratio, psi_some_fraction;
    const char *verdict;
};
void dn_memchar_compute(const uint64_t totals[DN_PERF_NEVENTS], unsigned valid, double psi_sum,
                        uint64_t psi_n, struct dn_memchar *out);

#endif
