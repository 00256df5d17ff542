#include "ebpf/offcpu_analysis.h"

#include <stdio.h>
#include <string.h>

#include "bpf/offcpu.h"

/* x86_64 numbers (csrc/ebpf/syscall_table.c names them). */
enum {
    NR_POLL = 7,
    NR_SELECT = 23,
    NR_NANOSLEEP = 35,
    NR_FUTEX = 202,
    NR_EPOLL_WAIT = 232,
    NR_CLOCK_NANOSLEEP = 230,
    NR_PSELECT6 = 270,
    NR_PPOLL = 271,
    NR_EPOLL_PWAIT = 281,
    NR_EPOLL_PWAIT2 = 441,
    NR_FUTEX_WAITV = 449,
};

enum dn_wait_class dn_wait_classify(int state, int32_t syscall, bool timed)
{
    switch (state) {
    case DN_OC_RUNNING:
        return DN_WAIT_CPU;
    case DN_OC_UNINTERRUPTIBLE:
        return DN_WAIT_IO;
    case DN_OC_INTERRUPTIBLE:
        break;
    default: /* idle waits, stopped, traced, frozen */
        return DN_WAIT_OTHER;
    }
    switch (syscall) {
    case NR_FUTEX:
    case NR_FUTEX_WAITV:
        return DN_WAIT_LOCK;
    case NR_NANOSLEEP:
    case NR_CLOCK_NANOSLEEP:
        return DN_WAIT_SLEEP;
    case NR_POLL:
    case NR_SELECT:
    case NR_PSELECT6:
    case NR_PPOLL:
    case NR_EPOLL_WAIT:
    case NR_EPOLL_PWAIT:
    case NR_EPOLL_PWAIT2:
        return timed ? DN_WAIT_SLEEP : DN_WAIT_OTHER;
    default:
        return DN_WAIT_OTHER;
    }
}

const char *dn_wait_class_name(enum dn_wait_class c)
{
    static const char *names[] = {"io", "lock", "sleep", "cpu", "other"};
    return (unsigned)c < DN_WAIT_NCLASSES ? names[c] : "other";
}

static const char *const HINTS[DN_WAIT_NCLASSES] = {
    [DN_WAIT_IO] = "%.1f%% of off-CPU time is uninterruptible I/O wait: batch small writes, "
                   "avoid a sync per write (O_SYNC/O_DSYNC, fsync), use asynchronous I/O or "
                   "faster storage",
    [DN_WAIT_LOCK] = "%.1f%% of off-CPU time is spent waiting on futexes (mutexes, condition "
                     "variables, joins): shorten critical sections, split hot locks, or hand "
                     "work over in batches",
    [DN_WAIT_SLEEP] = "%.1f%% of off-CPU time is deliberate sleep or timed waits: check "
                      "polling intervals and retry back-offs; waiting on an event wakes at once",
    [DN_WAIT_CPU] = "%.1f%% of off-CPU time is spent runnable, waiting for a CPU: there are "
                    "more runnable threads than cores; reduce parallelism or give the job "
                    "more CPUs",
    [DN_WAIT_OTHER] = "%.1f%% of off-CPU time is in other waits (pipes, sockets, untimed "
                      "polls, child processes): stack_traces show what it waits on",
};

void dn_offcpu_analyze(const uint64_t class_ns[DN_WAIT_NCLASSES], struct dn_offcpu_analysis *a)
{
    memset(a, 0, sizeof *a);
    a->bottleneck_type = "unknown";
    uint64_t total = 0;
    for (int c = 0; c < DN_WAIT_NCLASSES; c++)
        total += class_ns[c];
    if (!total)
        return;
    for (int c = 0; c < DN_WAIT_NCLASSES; c++)
        a->pct[c] = 100.0 * (double)class_ns[c] / (double)total;

    /* The verdict: a diagnosable class with most of the time; the three together with
     * most of it but none alone; else unknown. */
    static const char *const type[] = {
        [DN_WAIT_IO] = "io_blocked", [DN_WAIT_LOCK] = "lock_contention", [DN_WAIT_SLEEP] = "sleep"};
    int best = DN_WAIT_IO;
    for (int c = DN_WAIT_LOCK; c <= DN_WAIT_SLEEP; c++)
        if (a->pct[c] > a->pct[best])
            best = c;
    double diagnosable = a->pct[DN_WAIT_IO] + a->pct[DN_WAIT_LOCK] + a->pct[DN_WAIT_SLEEP];
    if (a->pct[best] >= DN_OFFCPU_DOMINANT_PCT)
        a->bottleneck_type = type[best];
    else if (diagnosable >= DN_OFFCPU_DOMINANT_PCT)
        a->bottleneck_type = "mixed";

    /* Hints for every class with a large share, largest first. */
    int order[DN_WAIT_NCLASSES];
    for (int c = 0; c < DN_WAIT_NCLASSES; c++)
        order[c] = c;
    for (int i = 1; i < DN_WAIT_NCLASSES; i++)
        for (int j = i; j > 0 && a->pct[order[j]] > a->pct[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    for (int i = 0; i < DN_WAIT_NCLASSES; i++) {
        int c = order[i];
        if (a->pct[c] >= DN_OFFCPU_HINT_PCT)
            snprintf(a->hints[a->nhints++], sizeof a->hints[0], HINTS[c], a->pct[c]);
    }
}
