/* A sampling session, in C only: the monitored process (started or attached), its
 * collector, optional eBPF collectors and output file, the samples kept, and the native
 * sampler thread. One mutex guards all of it; every function here may block on that
 * mutex or on I/O, so callers from Python release the GIL around them. Nothing here
 * touches Python, so tests/c can drive a session directly. */
#ifndef DENET_CORE_SESSION_H
#define DENET_CORE_SESSION_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/collector.h"
#include "core/emit.h"
#include "core/extras.h"
#include "core/sample.h"
#include "core/spawn.h"
#include "core/writer.h"

struct dn_tracker;
struct dn_syscalls;
struct dn_offcpu;
struct dn_ebpf_sample;
struct dn_gpu;

struct dn_session_opts {
    int base_ms, max_ms;
    bool include_children, since_process_start, store_in_memory, write_metadata;
    bool enable_ebpf;
    bool syscalls;      /* with enable_ebpf: system call counts (bpf/syscalls.bpf.c) */
    bool offcpu;        /* with enable_ebpf: off-CPU time (bpf/offcpu.bpf.c) */
    bool offcpu_stacks; /* and its stacks */
    int gpu; /* DN_GPU_OFF, DN_GPU_ON (a failure is reported in samples), DN_GPU_AUTO */
    bool write_env;   /* the env record precedes the metadata in the output file */
};

enum { DN_GPU_OFF = 0, DN_GPU_ON = 1, DN_GPU_AUTO = -1 };

/* What the GPU reads cost the sampler: for benchmarks. */
struct dn_gpu_cost {
    uint64_t reads, total_ns, max_ns;
};

struct dn_session {
    struct dn_session_opts o;

    /* the process */
    pid_t pid;
    bool owns_child; /* we started it, so we reap it */
    int pidfd;       /* readable once the process has exited; -1 on kernels < 5.3 */

    /* everything below is guarded by lock */
    pthread_mutex_t lock;
    bool reaped;     /* owned child reaped; wait_status valid (-1: reaped by someone else) */
    int wait_status;
    bool gone;       /* the root has exited: no more samples */
    struct dn_collector *collector;
    struct dn_tracker *tracker;
    struct dn_syscalls *syscalls; /* eBPF syscall counter, NULL when not loaded */
    int64_t syscalls_t0_ns;       /* monotonic time it began counting */
    struct dn_offcpu *offcpu;     /* off-CPU profiler, NULL when not loaded; after stop()
                                   * detached from the kernel but still readable */
    char *ebpf_error;             /* why eBPF is off, or NULL */
    char *offcpu_error;           /* why the off-CPU profiler alone is off, or NULL */
    struct dn_ebpf_sample *final_ebpf; /* the counts when sampling stopped */
    struct dn_writer writer;
    bool writer_closed;
    int writer_err;               /* the output file's first error (-errno), once closed */
    struct dn_metadata md;        /* md.cmd and md.executable are owned (malloc) */
    struct dn_sample_vec samples;
    struct dn_sample_store store; /* where the samples kept put their children */
    struct dn_sample latest;      /* the last sample, when it is not samples' last item */
    bool have_latest;
    bool latest_in_vec;           /* the last sample is samples' last item (not copied) */

    /* the sampler thread */
    pthread_t thread;
    bool thread_started; /* joinable */
    bool thread_running; /* still sampling */
    bool stop_requested;
    int wake_fd;         /* eventfd: wakes the sampler for stop() */
    int64_t start_mono_ns;

    /* GPU monitoring (NVML), guarded by lock; gpu and gpu_error are set before sampling
     * starts and kept until the session is destroyed. */
    struct dn_gpu *gpu;           /* NULL when off */
    char *gpu_error;              /* why it is off although asked for, or NULL */
    struct dn_gpu_summary gpu_summary;
    struct dn_gpu_cost gpu_cost;
    pid_t *gpu_pids;              /* the pids of the sample being read */
    size_t gpu_pids_cap;

    struct dn_extras ex; /* socket bytes, perf/PSI, env, capabilities (core/extras.c) */
};

/* Zeroes s and sets the options. Never fails. */
void dn_session_init(struct dn_session *s, const struct dn_session_opts *o);

/* Stops the thread, writes the summary, releases everything. An owned command that is
 * still running is left running and handed to a reaper thread, so it never stays a
 * zombie. Safe on a session that was only initialised. */
void dn_session_destroy(struct dn_session *s);

/* The output file, by path or (path == NULL) by a file descriptor that is duplicated.
 * 0 or -errno. */
int dn_session_open_output(struct dn_session *s, const char *path, int fd, enum dn_format fmt);

/* Whether descriptors are too short for an optional eBPF collector (off-CPU, socket
 * counter: a dozen each), which would leave the tree's /proc files and the host program
 * without any. When short, why says so and how to fix it. */
bool dn_session_fds_short(const char *what, char *why, size_t n);

/* Loads the eBPF tracker, syscall counter and (o.offcpu) off-CPU profiler. On failure
 * returns -errno, keeps the reason in s->ebpf_error (reported in samples) and copies it
 * into err. An off-CPU profiler that cannot load leaves the rest on, with its reason in
 * s->offcpu_error. */
int dn_session_open_ebpf(struct dn_session *s, char *err, size_t errlen);

/* Loads NVML when s->o.gpu asks for it (DN_GPU_ON or DN_GPU_AUTO). Returns 0, or
 * -errno with the reason kept in s->gpu_error and copied into err; monitoring goes on
 * without GPU figures either way. */
int dn_session_open_gpu(struct dn_session *s, char *err, size_t errlen);

/* The GPU summary so far and what the reads cost (copies made under the lock). */
void dn_session_gpu_summary(struct dn_session *s, struct dn_gpu_summary *out,
                            struct dn_gpu_cost *cost);

/* Starts the command (registered with the tracker before it execs when eBPF is on).
 * Returns 0, -errno when fork failed, 1 with child_errno and stage set when the child could
 * not exec. A tracker that refuses the command switches eBPF off with the reason in
 * ebpf_error rather than silently missing the tree. */
int dn_session_spawn(struct dn_session *s, const struct dn_spawn_opts *so, int *child_errno,
                     enum dn_spawn_stage *stage);

/* Attaches to a running process (pidfd) and registers it with the tracker. 0 or -errno. */
int dn_session_attach(struct dn_session *s, pid_t pid);

/* Creates the collector (first read of the tree) and writes the metadata line.
 * Returns 0 or -errno (-ESRCH: the process is already gone). */
int dn_session_begin(struct dn_session *s, double t0_boot, uint64_t spawn_rss_kb);

/* The started command exited before its first read: reap it, the session is finished. */
void dn_session_mark_gone(struct dn_session *s);

/* Starts the sampler thread (no-op while it runs). 0 or -errno. */
int dn_session_start(struct dn_session *s);

/* Stops and joins the sampler thread, reaps an exited command, writes the summary and
 * closes the output file. Returns 0, or the output file's first error (-errno): a full
 * disk is reported once, here. */
int dn_session_stop(struct dn_session *s);

/* Waits up to timeout_ms for the root to be gone (reaped when we own it). Returns 1 when
 * it is, 0 when not yet. */
int dn_session_wait_gone(struct dn_session *s, int timeout_ms);

/* Whether an exit code is known (owned command, reaped): code as in subprocess. */
bool dn_session_exit_code(struct dn_session *s, int *code);

/* Signals the owned command through its pidfd, so a recycled pid is never hit.
 * 0, -ESRCH when it has exited, or -errno. */
int dn_session_signal(struct dn_session *s, int sig);

bool dn_session_is_running(struct dn_session *s);

/* Takes a sample now (stored and written like the sampler's) and copies it into *out.
 * Returns 0, -ESRCH when the process is gone, -ENOMEM. */
int dn_session_sample_once(struct dn_session *s, struct dn_sample *out);

/* Deep copies made under the lock, so the caller can build Python objects outside it.
 * dn_session_copy_latest returns 1 with a copy, 0 when there is none, -ENOMEM. */
int dn_session_copy_samples(struct dn_session *s, struct dn_sample **out, size_t *n);
int dn_session_copy_latest(struct dn_session *s, struct dn_sample *out);
void dn_session_clear_samples(struct dn_session *s);
void dn_sample_array_free(struct dn_sample *v, size_t n);

/* Writes metadata, the kept samples and the summary to path. 0 or -errno. */
int dn_session_save(struct dn_session *s, const char *path, enum dn_format fmt);

/* The summary so far, with a fresh eBPF snapshot (*ebpf: caller frees, may be NULL;
 * sum: caller calls dn_summary_clear). */
void dn_session_summary(struct dn_session *s, struct dn_summary *sum,
                        struct dn_ebpf_sample **ebpf);

/* Off-CPU stacks in the folded format of flame-graph tools (ebpf/offcpu.h). *text is
 * malloc'd. 0, -ENOTSUP when the off-CPU profiler is off, or -errno. */
int dn_session_offcpu_folded(struct dn_session *s, char **text, size_t *len);

/* In the child of fork(): no thread, a fresh lock, the parent's command and output file
 * left alone, inherited BPF programs and maps closed. The session stays readable. */
void dn_session_after_fork_child(struct dn_session *s);

#endif
