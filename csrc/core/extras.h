/* The parts of a session added for issue 11, kept apart from session.c: per-process
 * socket bytes (eBPF), perf counters and PSI (memory characterization), the environment
 * record and the capabilities in the metadata. session.c calls these at fixed points;
 * every function with _locked runs under the session's lock. */
#ifndef DENET_EXTRAS_H
#define DENET_EXTRAS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/env.h"
#include "core/memchar.h"
#include "ebpf/sock.h"

struct dn_session;
struct dn_sample;
struct dn_summary;

struct dn_extras {
    struct dn_sock *sock;         /* NULL when not loaded */
    char *sock_error;             /* why not, when eBPF is on; NULL otherwise */
    bool sock_final;              /* sock_totals holds the counts when counting stopped */
    struct dn_sock_counts sock_totals;

    struct dn_perf *perf;         /* NULL without counters */
    bool perf_software;           /* the test mode's software events */
    uint64_t perf_last[DN_PERF_NEVENTS];
    unsigned perf_last_valid;

    struct dn_psi psi;
    double psi_sum;               /* some_avg10 over samples */
    uint64_t psi_n;

    struct dn_env env;
    bool have_env;
};

void dn_extras_init(struct dn_session *s);
void dn_extras_destroy(struct dn_session *s);

/* After the tracker and syscall counter loaded: the socket counter. */
void dn_extras_open_ebpf(struct dn_session *s);
/* eBPF was switched off after all (reason given): the socket counter goes too. */
void dn_extras_ebpf_failed(struct dn_session *s);

/* Whether a command must be held before its exec so that its counters start there. */
bool dn_extras_wants_hold(struct dn_session *s);
/* The process to watch is known (started, held when `held`, or attached). */
void dn_extras_process(struct dn_session *s, pid_t pid, bool held);

/* Whether the kernel accounts block I/O delay now (kernel.task_delayacct=1). */
bool dn_delayacct_on(void);

/* Capabilities and, with write_env, the env record (written before the metadata). */
void dn_extras_begin_locked(struct dn_session *s);

/* Socket bytes, PSI and counter deltas into a sample just collected. */
void dn_extras_sample_locked(struct dn_session *s, struct dn_sample *x);

/* Socket totals and memory characterization into a summary. */
void dn_extras_summary_locked(struct dn_session *s, struct dn_summary *sum);

/* Counting stops (stop(), or a forked child): last counts kept, programs and counters
 * closed. */
void dn_extras_finish_locked(struct dn_session *s);

/* In the child of fork(): the socket counter and perf counters are closed without a
 * read (a read folds, i.e. deletes, entries of the kernel map the parent still uses). */
void dn_extras_after_fork_child(struct dn_session *s);

/* The env record (read now if it was not at the start). Stays valid and unchanged
 * until the session is destroyed. */
const struct dn_env *dn_session_env(struct dn_session *s);

#endif
