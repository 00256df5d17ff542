/* What each data source could do for this monitor, and why not where it could not:
 * the metadata record's "capabilities". A reason is one sentence a person can act on. */
#ifndef DENET_CAPABILITIES_H
#define DENET_CAPABILITIES_H

#include <stdbool.h>

struct dn_emitter;

#define DN_CAP_REASON 384
#define DN_PERF_NEVENTS 5

struct dn_cap {
    bool available;
    char reason[DN_CAP_REASON]; /* "" when there is nothing to say */
};

struct dn_capabilities {
    bool known;                  /* filled (when the session began) */
    struct dn_cap ebpf;          /* the eBPF collectors (syscalls, tracker, task iterator) */
    struct dn_cap sock;          /* per-process socket bytes (eBPF, Linux 6.5+) */
    struct dn_cap gpu;
    struct dn_cap delayacct;     /* blkio_delay_secs */
    struct {
        bool system, per_process;
        char reason[DN_CAP_REASON];
        char source[800];        /* the memory.pressure file read for psi_mem, "" if none */
    } psi;
    struct {
        bool available;
        const char *events[DN_PERF_NEVENTS]; /* names of the counters that opened */
        int nevents;
        char reason[DN_CAP_REASON];
    } perf_hw;
};

/* {"ebpf": {...}, "sock": {...}, "psi": {...}, "perf_hw": {...}, "gpu": {...},
 * "delayacct": {...}} under key. */
void dn_emit_capabilities(const struct dn_emitter *e, const char *key,
                          const struct dn_capabilities *c);

/* Sets c to available, or to unavailable for the reason given (printf format). */
void dn_cap_set(struct dn_cap *c, bool available, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
