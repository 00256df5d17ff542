#include "core/session.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/gpu.h"
#include "core/gpu_sample.h"
#include "core/grow.h"
#include "core/procfs.h"
#include "ebpf/common.h"
#include "ebpf/ebpf_sample.h"
#include "ebpf/offcpu.h"
#include "ebpf/syscalls.h"
#include "ebpf/tracked.h"
#include "symbolize/kallsyms.h"

#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif


void dn_session_init(struct dn_session *s, const struct dn_session_opts *o)
{
    memset(s, 0, sizeof *s);
    s->o = *o;
    s->pid = -1;
    s->pidfd = -1;
    s->wake_fd = -1;
    dn_extras_init(s);
    pthread_mutex_init(&s->lock, NULL);
}

/* Whether the root has exited (a zombie counts), without reaping it. */
static bool root_exited(const struct dn_session *s)
{
    if (s->pidfd >= 0) {
        struct pollfd p = {.fd = s->pidfd, .events = POLLIN};
        return poll(&p, 1, 0) > 0;
    }
    /* No pidfd (kernel < 5.3): peek at our own child, or probe a foreign pid. */
    if (s->owns_child) {
        siginfo_t si = {0};
        return waitid(P_PID, (id_t)s->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
               si.si_pid == s->pid;
    }
    return kill(s->pid, 0) < 0 && errno == ESRCH;
}

static int64_t interval_ms(const struct dn_session *s, int64_t elapsed_ns)
{
    /* base for the first second, a linear ramp to max by 10 s, then max. */
    int base = s->o.base_ms, max = s->o.max_ms;
    if (max <= base)
        return base;
    double t = (double)elapsed_ns / 1e9;
    if (t < 1.0)
        return base;
    if (t >= 10.0)
        return max;
    return base + (int64_t)((max - base) * (t - 1.0) / 9.0);
}

/* Reaps the owned child if it has exited (lock held). */
static void reap_locked(struct dn_session *s, bool block)
{
    if (!s->owns_child || s->reaped || s->pid <= 0)
        return;
    int st;
    struct rusage ru;
    pid_t r;
    do {
        r = wait4(s->pid, &st, block ? 0 : WNOHANG, &ru);
    } while (r < 0 && errno == EINTR);
    if (r == s->pid) {
        s->reaped = true;
        s->wait_status = st;
        s->gone = true;
        if (s->collector)
            dn_collector_root_reaped(s->collector, &ru);
    } else if (r < 0 && errno == ECHILD) {
        /* Someone else reaped it (os.wait() in the user's code): no exit status. */
        s->reaped = true;
        s->wait_status = -1;
        s->gone = true;
    }
}

/* The off-CPU part of an eBPF sample, or the reason it is missing. */
static void offcpu_part_locked(struct dn_session *s, struct dn_ebpf_sample *e)
{
    const char *why = s->offcpu_error;
    char err[512];
    if (s->offcpu) {
        if (!s->o.include_children)
            dn_offcpu_only_tgid(s->offcpu, s->pid);
        int rc = dn_offcpu_snapshot(s->offcpu, &e->offcpu);
        if (rc) {
            dn_ebpf_explain(err, sizeof err, "reading the eBPF off-CPU times", rc);
            why = err;
        }
    }
    if (why && !e->error)
        e->error = strdup(why);
}

/* The eBPF part of sample x: cumulative syscall counts of the tree, or the error. */
static struct dn_ebpf_sample *ebpf_part_locked(struct dn_session *s, const struct dn_sample *x)
{
    if (!s->syscalls && !s->offcpu)
        return s->ebpf_error ? dn_ebpf_sample_new_error(s->ebpf_error) : NULL;
    struct dn_ebpf_sample *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    int rc = s->syscalls ? dn_syscalls_snapshot(s->syscalls, e) : 0; /* syscalls=False */
    if (rc) {
        char err[512];
        dn_ebpf_explain(err, sizeof err, "reading the eBPF syscall counts", rc);
        e->error = strdup(err);
    }
    e->cpu_usage = x->tree && x->has_aggregated ? x->aggregated.cpu_usage : x->parent.cpu_usage;
    e->elapsed_secs = (double)(dn_monotonic_ns() - s->syscalls_t0_ns) / 1e9;
    offcpu_part_locked(s, e);
    return e;
}

static void gpu_part_locked(struct dn_session *s, struct dn_sample *x);

/* The last sample taken, or NULL. */
static const struct dn_sample *latest_locked(const struct dn_session *s)
{
    if (s->latest_in_vec)
        return &s->samples.items[s->samples.len - 1];
    return s->have_latest ? &s->latest : NULL;
}

/* Stores a sample taken under the lock: file, memory, latest. Takes ownership. The
 * latest sample is the one kept in memory, or x itself: never a copy (a sample of a
 * large tree is hundreds of KB). */
static void record_locked(struct dn_session *s, struct dn_sample *x)
{
    if (s->o.enable_ebpf)
        x->ebpf = ebpf_part_locked(s, x);
    gpu_part_locked(s, x);
    if (dn_writer_is_open(&s->writer))
        dn_writer_sample(&s->writer, x);
    dn_sample_clear(&s->latest);
    /* Kept: packed against the sample kept before, which keeps its packed form only
     * (when it has one: else its whole array stays). */
    struct dn_sample *prev = s->latest_in_vec ? &s->samples.items[s->samples.len - 1] : NULL;
    s->have_latest = s->latest_in_vec = false;
    if (s->o.store_in_memory && dn_sample_pack(&s->store, x, prev) == 0 && prev &&
        prev->packed && x->packed) {
        dn_children_unref(prev->children);
        prev->children = NULL;
    }
    if (s->o.store_in_memory && dn_sample_vec_push(&s->samples, x) == 0) {
        s->latest_in_vec = true;
    } else {
        s->latest = *x;
        memset(x, 0, sizeof *x);
        s->have_latest = true;
    }
}

/* One collection under the lock. Returns 0, or -ESRCH when the root is gone. */
static int collect_locked(struct dn_session *s, struct dn_sample *out)
{
    if (s->gone || !s->collector)
        return -ESRCH;
    int rc = dn_collector_collect(s->collector, out);
    if (rc == -ESRCH)
        s->gone = true;
    if (rc == 0)
        dn_extras_sample_locked(s, out);
    return rc;
}

/* The eBPF totals for a summary: a fresh snapshot, so syscalls made after the last
 * sample (say, by an attached process that exited in between) still count. */
static struct dn_ebpf_sample *summary_ebpf_locked(struct dn_session *s)
{
    if (s->final_ebpf)
        return dn_ebpf_sample_dup(s->final_ebpf);
    if (s->syscalls || s->offcpu) {
        struct dn_ebpf_sample *e = calloc(1, sizeof *e);
        if (e && (!s->syscalls || dn_syscalls_snapshot(s->syscalls, e) == 0)) {
            offcpu_part_locked(s, e);
            return e;
        }
        dn_ebpf_sample_free(e);
    }
    const struct dn_sample *latest = latest_locked(s);
    return latest && latest->ebpf ? dn_ebpf_sample_dup(latest->ebpf) : NULL;
}

/* The collector's summary plus the session's own parts (GPU). */
static void summary_locked(struct dn_session *s, struct dn_summary *sum)
{
    dn_collector_summary(s->collector, sum);
    dn_extras_summary_locked(s, sum);
    sum->gpu = s->gpu_summary;
    /* The command we started and reaped: its exit code, as run() returns it. */
    int st = s->wait_status;
    if (s->owns_child && s->reaped && st != -1 && (WIFEXITED(st) || WIFSIGNALED(st))) {
        for (size_t i = 0; i < sum->nprocesses; i++) {
            struct dn_proc_row *r = &sum->processes[i];
            if (r->pid != s->pid)
                continue;
            r->exited = true;
            r->have_exit_code = true;
            r->exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
        }
    }
}

static void write_summary_and_close_locked(struct dn_session *s)
{
    if (s->writer_closed)
        return;
    s->writer_closed = true;
    if (dn_writer_is_open(&s->writer)) {
        if (s->collector) {
            struct dn_summary sum;
            summary_locked(s, &sum);
            struct dn_ebpf_sample *e = summary_ebpf_locked(s);
            dn_writer_summary(&s->writer, &sum, e);
            dn_ebpf_sample_free(e);
            dn_summary_clear(&sum);
        }
        s->writer_err = dn_writer_close(&s->writer);
    }
}

/* ---- the sampler thread ------------------------------------------------------------ */

static void *sampler_main(void *arg)
{
    struct dn_session *s = arg;
    /* Signals are for the host program's main thread. */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);

    pthread_mutex_lock(&s->lock);
    if (s->syscalls) /* a monitor watching its own process must not count its sampler */
        dn_syscalls_exclude_tid(s->syscalls, gettid());
    dn_offcpu_exclude_tid(s->offcpu, gettid());
    while (!s->stop_requested && !s->gone) {
        int64_t t_start = dn_monotonic_ns();
        struct dn_sample x;
        if (collect_locked(s, &x) == 0)
            record_locked(s, &x);
        if (s->gone)
            break;
        int64_t deadline = t_start + interval_ms(s, t_start - s->start_mono_ns) * 1000000;
        bool exited = false;
        for (;;) {
            int64_t wait_ms = (deadline - dn_monotonic_ns()) / 1000000;
            if (wait_ms < 0)
                wait_ms = 0;
            /* New off-CPU stacks wake the sampler too: their process's memory maps are
             * read while it lives, even if it exits before the next sample. */
            struct pollfd fds[3];
            int nf = 0, ipid = -1, iev = -1, evfd = dn_offcpu_event_fd(s->offcpu);
            fds[nf++] = (struct pollfd){.fd = s->wake_fd, .events = POLLIN};
            if (s->pidfd >= 0) {
                ipid = nf;
                fds[nf++] = (struct pollfd){.fd = s->pidfd, .events = POLLIN};
            }
            if (evfd >= 0) {
                iev = nf;
                fds[nf++] = (struct pollfd){.fd = evfd, .events = POLLIN};
            }
            pthread_mutex_unlock(&s->lock);
            int n = poll(fds, (nfds_t)nf, (int)wait_ms);
            pthread_mutex_lock(&s->lock);
            if (iev >= 0 && n > 0 && (fds[iev].revents & POLLIN))
                dn_offcpu_handle_events(s->offcpu);
            exited = ipid >= 0 ? n > 0 && (fds[ipid].revents & POLLIN) : root_exited(s);
            bool only_events = n > 0 && !(fds[0].revents & POLLIN) && !exited;
            if (!only_events || s->stop_requested || dn_monotonic_ns() >= deadline)
                break;
        }
        if (exited && !s->stop_requested) {
            /* The root exited. It is a zombie until reaped: one last read gets its final
             * counters, then reaping gets its rusage. */
            if (collect_locked(s, &x) == 0)
                record_locked(s, &x);
            reap_locked(s, true);
            s->gone = true;
        }
    }
    if (s->gone) {
        reap_locked(s, false);
        write_summary_and_close_locked(s);
    }
    if (s->syscalls) /* this tid may be reused by a thread we must count */
        dn_syscalls_exclude_tid(s->syscalls, 0);
    dn_offcpu_exclude_tid(s->offcpu, 0);
    s->thread_running = false;
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static void stop_thread(struct dn_session *s)
{
    if (!s->thread_started)
        return;
    pthread_mutex_lock(&s->lock);
    s->stop_requested = true;
    pthread_mutex_unlock(&s->lock);
    uint64_t one = 1;
    ssize_t w = write(s->wake_fd, &one, sizeof one);
    (void)w;
    pthread_join(s->thread, NULL);
    s->thread_started = false;
}

/* Detaches and closes the eBPF collectors; the collector reads /proc from then on. The
 * off-CPU profiler keeps what it read (finish: after a last read and naming every stack)
 * for the summary and folded output. */
static void close_ebpf_locked(struct dn_session *s, bool finish)
{
    dn_extras_finish_locked(s);
    if (s->collector)
        dn_collector_detach_tracker(s->collector);
    dn_offcpu_detach(s->offcpu, finish);
    dn_syscalls_close(s->syscalls);
    s->syscalls = NULL;
    dn_tracker_close(s->tracker);
    s->tracker = NULL;
}

/* ---- set-up ------------------------------------------------------------------------ */

int dn_session_open_output(struct dn_session *s, const char *path, int fd, enum dn_format fmt)
{
    return path ? dn_writer_open(&s->writer, path, fmt) : dn_writer_open_fd(&s->writer, fd, fmt);
}

/* Free descriptors an optional collector needs before it loads. */
#define DN_OPTIONAL_FDS_MIN 128

bool dn_session_fds_short(const char *what, char *why, size_t n)
{
    size_t limit, free_now = dn_fds_free(&limit);
    if (free_now >= DN_OPTIONAL_FDS_MIN)
        return false;
    snprintf(why, n,
             "%s was not loaded: only %zu file descriptors are free under RLIMIT_NOFILE=%zu, and "
             "the tree's /proc files and the program itself need them; raise the limit "
             "(ulimit -n 1024) to have it",
             what, free_now, limit);
    return true;
}

int dn_session_open_ebpf(struct dn_session *s, char *err, size_t errlen)
{
    /* Kernel frames need /proc/kallsyms: read it while the programs load. */
    if (s->o.offcpu && s->o.offcpu_stacks)
        dn_kallsyms_prefetch();
    int rc = dn_tracker_open(&s->tracker, err, errlen);
    if (rc == 0) {
        /* Syscall counting (unless syscalls=False): filtered on the tracker's map;
         * counts begin now. */
        if (s->o.syscalls)
            rc = dn_syscalls_open(&s->syscalls, dn_tracker_map_fd(s->tracker),
                                  dn_tracker_live_map_fd(s->tracker), err, errlen);
        s->syscalls_t0_ns = dn_monotonic_ns();
        if (rc == 0)
            dn_extras_open_ebpf(s); /* socket bytes: optional (Linux 6.5+) */
    }
    if (rc == 0 && s->o.offcpu) {
        char oerr[512];
        if (dn_session_fds_short("off-CPU profiling", oerr, sizeof oerr)) {
            free(s->offcpu_error);
            s->offcpu_error = strdup(oerr);
        } else if (dn_offcpu_open(&s->offcpu, dn_tracker_map_fd(s->tracker),
                                  dn_tracker_live_map_fd(s->tracker), s->o.offcpu_stacks, oerr,
                                  sizeof oerr) != 0) {
            free(s->offcpu_error);
            s->offcpu_error = strdup(oerr);
        }
        if (!s->offcpu && !s->syscalls) { /* syscalls=False: off-CPU was all there was */
            snprintf(err, errlen, "%s", oerr);
            rc = -ENOTSUP;
        }
    }
    if (rc) {
        free(s->ebpf_error);
        s->ebpf_error = strdup(err);
    }
    return rc;
}

/* A registration the tracker refused: eBPF figures would silently miss the tree, so
 * they are switched off with the reason instead. */
static void tracker_failed(struct dn_session *s, int rc, pid_t pid)
{
    char err[512], what[96];
    snprintf(what, sizeof what, "registering process %d with the eBPF tracker", (int)pid);
    dn_ebpf_explain(err, sizeof err, what, rc);
    free(s->ebpf_error);
    s->ebpf_error = strdup(err);
    dn_extras_ebpf_failed(s);
    dn_syscalls_close(s->syscalls);
    s->syscalls = NULL;
    dn_offcpu_free(s->offcpu);
    s->offcpu = NULL;
    dn_tracker_close(s->tracker);
    s->tracker = NULL;
}

/* include_children=False: the syscall counter keeps no per-process counts, so it must
 * know the root before any process of the tree is registered. */
static void only_root_syscalls(struct dn_session *s, pid_t pid)
{
    if (s->syscalls && !s->o.include_children)
        dn_syscalls_only_tgid(s->syscalls, pid);
}

int dn_session_spawn(struct dn_session *s, const struct dn_spawn_opts *so_in, int *child_errno,
                     enum dn_spawn_stage *stage)
{
    struct dn_spawn_opts so = *so_in;
    /* Held before exec for the tracker, and for perf counters (they start at the exec). */
    so.hold_before_exec = s->tracker != NULL || dn_extras_wants_hold(s);
    struct dn_spawned sp;
    int rc = dn_spawn(&so, &sp, child_errno, stage);
    if (rc != 0)
        return rc;
    only_root_syscalls(s, sp.pid);
    if (s->tracker) {
        /* Registered before exec, so its very first system call is seen. */
        int trc = dn_tracker_add(s->tracker, sp.pid);
        if (trc)
            tracker_failed(s, trc, sp.pid);
    }
    dn_extras_process(s, sp.pid, so.hold_before_exec);
    if (so.hold_before_exec && dn_spawn_release(&sp, child_errno, stage) != 0)
        return 1;
    s->pid = sp.pid;
    s->owns_child = true;
    s->pidfd = (int)syscall(SYS_pidfd_open, sp.pid, 0);
    return 0;
}

int dn_session_attach(struct dn_session *s, pid_t pid)
{
    s->pid = pid;
    s->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (s->pidfd < 0)
        return -errno;
    dn_extras_process(s, pid, false);
    only_root_syscalls(s, pid);
    if (s->tracker) {
        /* Later forks are followed in the kernel; what exists now is registered. */
        int rc = dn_collector_register_tree(s->tracker, pid);
        if (rc)
            tracker_failed(s, rc, pid);
        else if (root_exited(s))
            /* It exited before it was registered (loading eBPF takes a while): its exit
             * hook never saw it, so a process that reuses the pid must not count. */
            dn_tracker_mark_exited(s->tracker, pid, (uint64_t)dn_monotonic_ns());
    }
    return 0;
}

int dn_session_begin(struct dn_session *s, double t0_boot, uint64_t spawn_rss_kb)
{
    struct dn_collector_opts co = {
        .spawn_rss_kb = spawn_rss_kb,
        .root = s->pid,
        .include_children = s->o.include_children,
        .since_process_start = s->o.since_process_start,
        .t0_boot = t0_boot,
        .tracker = s->tracker,
        .pidfd = s->pidfd,
        .blkio_accounted = dn_delayacct_on(),
    };
    int err = 0;
    struct dn_collector *c = dn_collector_new(&co, &err);
    if (!c)
        return err ? err : -ENOMEM;
    pthread_mutex_lock(&s->lock);
    s->collector = c;
    s->md.pid = s->pid;
    s->md.t0_ms = dn_now_ms();
    if (!s->md.executable) {
        char exe[PATH_MAX], link[64];
        snprintf(link, sizeof link, "/proc/%d/exe", (int)s->pid);
        ssize_t n = readlink(link, exe, sizeof exe - 1);
        if (n > 0) {
            exe[n] = '\0';
            s->md.executable = strdup(exe);
        }
    }
    dn_extras_begin_locked(s); /* capabilities, and the env record when asked for */
    if (s->o.write_metadata && dn_writer_is_open(&s->writer))
        dn_writer_metadata(&s->writer, &s->md);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

void dn_session_mark_gone(struct dn_session *s)
{
    pthread_mutex_lock(&s->lock);
    s->gone = true;
    reap_locked(s, true);
    pthread_mutex_unlock(&s->lock);
}

/* ---- running ----------------------------------------------------------------------- */

int dn_session_start(struct dn_session *s)
{
    if (s->thread_started)
        return 0;
    if (s->wake_fd < 0) {
        s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (s->wake_fd < 0)
            return -errno;
    }
    pthread_mutex_lock(&s->lock);
    s->stop_requested = false;
    s->thread_running = true;
    s->start_mono_ns = dn_monotonic_ns();
    int rc = pthread_create(&s->thread, NULL, sampler_main, s);
    if (rc)
        s->thread_running = false;
    pthread_mutex_unlock(&s->lock);
    if (rc)
        return -rc;
    s->thread_started = true;
    return 0;
}

int dn_session_stop(struct dn_session *s)
{
    stop_thread(s);
    pthread_mutex_lock(&s->lock);
    reap_locked(s, false);
    /* A process still running when sampling stops (attached, or a command left running)
     * is read once more, so the totals reach the moment of stop(), not the last tick. */
    if (!s->writer_closed && !s->gone && s->collector && s->start_mono_ns) {
        struct dn_sample x;
        if (collect_locked(s, &x) == 0)
            record_locked(s, &x);
    }
    /* Off-CPU figures freeze first, so the file's summary, get_summary() and the folded
     * stacks all hold the same intervals. */
    dn_offcpu_detach(s->offcpu, true);
    write_summary_and_close_locked(s);
    int rc = s->writer_err;
    s->writer_err = 0; /* reported once */
    /* Counting stops with sampling: the final counts are kept for the summary and the
     * programs detached, so nothing that runs later (a process that takes a pid of the
     * tree, say) can change them. */
    if ((s->syscalls || s->offcpu) && !s->final_ebpf)
        s->final_ebpf = summary_ebpf_locked(s);
    close_ebpf_locked(s, true);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int dn_session_wait_gone(struct dn_session *s, int timeout_ms)
{
    pthread_mutex_lock(&s->lock);
    bool exited = root_exited(s);
    if (exited && !s->thread_running)
        reap_locked(s, true); /* no sampler to do it */
    bool done = s->owns_child ? s->reaped : exited;
    pthread_mutex_unlock(&s->lock);
    if (done || timeout_ms <= 0)
        return done;
    if (exited) {
        /* The sampler reaps within moments of the pidfd firing; poll() would return at
         * once, so give it a breath instead of spinning. */
        usleep(1000);
        return 0;
    }
    struct pollfd p = {.fd = s->pidfd, .events = POLLIN};
    poll(&p, s->pidfd >= 0 ? 1 : 0, timeout_ms);
    return 0;
}

bool dn_session_exit_code(struct dn_session *s, int *code)
{
    pthread_mutex_lock(&s->lock);
    bool known = s->owns_child && s->reaped && s->wait_status != -1;
    int st = s->wait_status;
    pthread_mutex_unlock(&s->lock);
    if (!known)
        return false;
    if (WIFEXITED(st))
        *code = WEXITSTATUS(st);
    else if (WIFSIGNALED(st))
        *code = -WTERMSIG(st);
    else
        return false;
    return true;
}

int dn_session_signal(struct dn_session *s, int sig)
{
    pthread_mutex_lock(&s->lock);
    int rc = 0;
    if (!s->owns_child || s->reaped) {
        rc = -ESRCH;
    } else if (s->pidfd >= 0) {
        /* A pidfd names this process, never a later one with the same pid. */
        if (syscall(SYS_pidfd_send_signal, s->pidfd, sig, NULL, 0) < 0)
            rc = -errno;
    } else if (kill(s->pid, sig) < 0) { /* unreaped, so the pid is still ours */
        rc = -errno;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

bool dn_session_is_running(struct dn_session *s)
{
    pthread_mutex_lock(&s->lock);
    bool running = !s->gone && !s->reaped && !root_exited(s);
    pthread_mutex_unlock(&s->lock);
    return running;
}

int dn_session_sample_once(struct dn_session *s, struct dn_sample *out)
{
    struct dn_sample x;
    pthread_mutex_lock(&s->lock);
    int rc = collect_locked(s, &x);
    if (rc == 0) {
        record_locked(s, &x); /* adds the eBPF part */
        const struct dn_sample *latest = latest_locked(s);
        if (!latest || dn_sample_copy(out, latest) != 0)
            rc = -ENOMEM;
    } else if (rc == -ESRCH) {
        reap_locked(s, false);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void dn_sample_array_free(struct dn_sample *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dn_sample_clear(&v[i]);
    free(v);
}

/* The children of the kept samples v[0..len) made again from their packed forms, in
 * order (each against the one before). */
static int unpack_all(struct dn_sample *v, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        const struct dn_sample *b = i ? &v[i - 1] : NULL;
        int rc = dn_sample_unpack(&v[i], b ? b->children : NULL, b ? b->nchildren : 0);
        if (rc)
            return rc;
    }
    return 0;
}

int dn_session_copy_samples(struct dn_session *s, struct dn_sample **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&s->lock);
    size_t len = s->samples.len;
    struct dn_sample *v = len ? calloc(len, sizeof *v) : NULL;
    int rc = len && !v ? -ENOMEM : 0;
    size_t copied = 0;
    for (; rc == 0 && copied < len; copied++)
        if (dn_sample_copy(&v[copied], &s->samples.items[copied]) != 0)
            rc = -ENOMEM;
    pthread_mutex_unlock(&s->lock);
    /* (unpacked outside the lock: the copies share the packed forms) */
    if (rc == 0)
        rc = unpack_all(v, len);
    if (rc) {
        dn_sample_array_free(v, copied);
        return rc;
    }
    *out = v;
    *n = len;
    return 0;
}

int dn_session_copy_latest(struct dn_session *s, struct dn_sample *out)
{
    pthread_mutex_lock(&s->lock);
    int rc = 0;
    const struct dn_sample *latest = latest_locked(s);
    if (latest)
        rc = dn_sample_copy(out, latest) == 0 ? 1 : -ENOMEM;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void dn_session_clear_samples(struct dn_session *s)
{
    pthread_mutex_lock(&s->lock);
    if (s->latest_in_vec) { /* the latest sample stays */
        struct dn_sample *last = &s->samples.items[--s->samples.len];
        s->latest = *last;
        memset(last, 0, sizeof *last);
        s->latest_in_vec = false;
        s->have_latest = true;
    }
    dn_sample_vec_clear(&s->samples);
    pthread_mutex_unlock(&s->lock);
}

int dn_session_save(struct dn_session *s, const char *path, enum dn_format fmt)
{
    struct dn_writer w;
    int rc = dn_writer_open(&w, path, fmt);
    if (rc)
        return rc;
    pthread_mutex_lock(&s->lock);
    if (s->o.write_env && s->ex.have_env)
        dn_writer_env(&w, &s->ex.env);
    dn_writer_metadata(&w, &s->md);
    /* Each kept sample with its children made again against the one before (two
     * arrays at a time). */
    struct dn_sample prev = {0};
    for (size_t i = 0; rc == 0 && i < s->samples.len; i++) {
        struct dn_sample x;
        if ((rc = dn_sample_copy(&x, &s->samples.items[i])) == 0 &&
            (rc = dn_sample_unpack(&x, prev.children, prev.nchildren)) == 0)
            dn_writer_sample(&w, &x);
        dn_sample_clear(&prev);
        prev = x;
    }
    dn_sample_clear(&prev);
    if (rc == 0 && s->collector) {
        struct dn_summary sum;
        summary_locked(s, &sum);
        struct dn_ebpf_sample *e = summary_ebpf_locked(s);
        dn_writer_summary(&w, &sum, e);
        dn_ebpf_sample_free(e);
        dn_summary_clear(&sum);
    }
    pthread_mutex_unlock(&s->lock);
    int wrc = dn_writer_close(&w);
    return rc ? rc : wrc;
}

void dn_session_summary(struct dn_session *s, struct dn_summary *sum,
                        struct dn_ebpf_sample **ebpf)
{
    pthread_mutex_lock(&s->lock);
    reap_locked(s, false);
    memset(sum, 0, sizeof *sum);
    if (s->collector)
        summary_locked(s, sum);
    *ebpf = summary_ebpf_locked(s);
    pthread_mutex_unlock(&s->lock);
}

int dn_session_offcpu_folded(struct dn_session *s, char **text, size_t *len)
{
    pthread_mutex_lock(&s->lock);
    int rc = s->offcpu ? dn_offcpu_folded(s->offcpu, text, len) : -ENOTSUP;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* ---- teardown ---------------------------------------------------------------------- */

static void *reaper_main(void *arg)
{
    pid_t pid = (pid_t)(intptr_t)arg;
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    return NULL;
}

/* An owned command still running when its session goes away keeps running (as a
 * deleted subprocess.Popen's does) but must not stay a zombie: a detached thread waits
 * for it. */
static void hand_to_reaper(pid_t pid)
{
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&a, 64 * 1024);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* the reaper takes no signals */
    pthread_create(&t, &a, reaper_main, (void *)(intptr_t)pid);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&a);
}

void dn_session_destroy(struct dn_session *s)
{
    stop_thread(s);
    pthread_mutex_lock(&s->lock);
    write_summary_and_close_locked(s);
    reap_locked(s, false);
    if (s->owns_child && !s->reaped && s->pid > 0)
        hand_to_reaper(s->pid);
    pthread_mutex_unlock(&s->lock);
    dn_collector_free(s->collector);
    dn_syscalls_close(s->syscalls);
    dn_offcpu_free(s->offcpu);
    free(s->offcpu_error);
    dn_tracker_close(s->tracker);
    dn_sample_vec_clear(&s->samples);
    dn_sample_clear(&s->latest);
    dn_sample_store_close(&s->store);
    dn_ebpf_sample_free(s->final_ebpf);
    dn_gpu_close(s->gpu);
    free(s->gpu_error);
    free(s->gpu_pids);
    dn_free_strv(s->md.cmd);
    free(s->md.executable);
    free(s->ebpf_error);
    dn_extras_destroy(s);
    if (s->pidfd >= 0)
        close(s->pidfd);
    if (s->wake_fd >= 0)
        close(s->wake_fd);
    pthread_mutex_destroy(&s->lock);
    memset(s, 0, sizeof *s);
    s->pid = -1;
    s->pidfd = -1;
    s->wake_fd = -1;
    dn_extras_init(s);
}

void dn_session_after_fork_child(struct dn_session *s)
{
    /* The sampler thread was not copied and the lock may have been held by it; the
     * command and the output file belong to the parent. */
    pthread_mutex_init(&s->lock, NULL);
    s->thread_started = false;
    s->thread_running = false;
    s->stop_requested = true;
    s->owns_child = false;
    if (!s->writer_closed) {
        s->writer_closed = true;
        dn_writer_abandon(&s->writer); /* no JSON trailer through the parent's offset */
    }
    /* Inherited eBPF programs would stay attached for as long as this child lives. */
    dn_extras_after_fork_child(s);
    close_ebpf_locked(s, false);
    /* NVML's state belongs to the parent: forget it without calling into it. */
    dn_gpu_abandon(s->gpu);
    s->gpu = NULL;
}

/* ---- GPU --------------------------------------------------------------------------- */

int dn_session_open_gpu(struct dn_session *s, char *err, size_t errlen)
{
    if (errlen)
        err[0] = '\0';
    if (s->o.gpu == DN_GPU_OFF)
        return 0;
    int rc = dn_gpu_open(&s->gpu, err, errlen);
    pthread_mutex_lock(&s->lock);
    if (rc) {
        free(s->gpu_error);
        s->gpu_error = strdup(err);
    }
    memset(&s->gpu_summary, 0, sizeof s->gpu_summary);
    s->gpu_summary.present = s->gpu != NULL || s->o.gpu == DN_GPU_ON;
    s->gpu_summary.enabled = s->gpu != NULL;
    s->gpu_summary.device_count = dn_gpu_device_count(s->gpu);
    s->gpu_summary.max_process_util = DN_U64_NONE;
    s->gpu_summary.error = s->gpu_error;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void dn_session_gpu_summary(struct dn_session *s, struct dn_gpu_summary *out,
                            struct dn_gpu_cost *cost)
{
    pthread_mutex_lock(&s->lock);
    *out = s->gpu_summary;
    if (cost)
        *cost = s->gpu_cost;
    pthread_mutex_unlock(&s->lock);
}

/* The GPU part of sample x (lock held), and the GPU figures of each process in its
 * Metrics: null when GPU monitoring is off. Only the tree's own pids are looked up. */
static void gpu_part_locked(struct dn_session *s, struct dn_sample *x)
{
    struct dn_gpu_sample *g = NULL;
    if (s->gpu) {
        size_t n = 0;
        if (dn_grow(&s->gpu_pids, &s->gpu_pids_cap, 1 + x->nchildren, sizeof *s->gpu_pids,
                    64) == 0) {
            s->gpu_pids[n++] = s->pid;
            for (size_t i = 0; i < x->nchildren; i++)
                s->gpu_pids[n++] = x->children[i].pid;
            int64_t t0 = dn_monotonic_ns();
            if (dn_gpu_read(s->gpu, s->gpu_pids, n, &g) != 0)
                g = NULL;
            uint64_t dt = (uint64_t)(dn_monotonic_ns() - t0);
            s->gpu_cost.reads++;
            s->gpu_cost.total_ns += dt;
            if (dt > s->gpu_cost.max_ns)
                s->gpu_cost.max_ns = dt;
        }
        if (!g)
            g = dn_gpu_sample_new_error("out of memory reading the GPU figures");
    } else if (s->o.gpu == DN_GPU_ON && s->gpu_error) {
        g = dn_gpu_sample_new_error(s->gpu_error); /* asked for: say why there are none */
    }
    x->gpu = g;

    uint64_t mem, util;
    dn_gpu_sample_process(g, s->pid, &mem, &util);
    x->parent.gpu_memory_bytes = mem;
    x->parent.gpu_sm_utilization = util;
    for (size_t i = 0; i < x->nchildren; i++) {
        struct dn_metrics *m = &x->children[i].metrics;
        dn_gpu_sample_process(g, x->children[i].pid, &m->gpu_memory_bytes,
                              &m->gpu_sm_utilization);
        mem = dn_u64_add(mem, m->gpu_memory_bytes);
        util = dn_u64_add(util, m->gpu_sm_utilization);
    }
    if (x->has_aggregated) {
        x->aggregated.gpu_memory_bytes = mem;
        x->aggregated.gpu_sm_utilization = util;
    }
    if (s->gpu)
        dn_gpu_summary_add(&s->gpu_summary, g, mem);
}
