#include "ebpf/tracked.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/mman.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "core/grow.h"
#include "ebpf/common.h"
#include "ebpf/procstat.h"
#include "tracked.skel.h"

#include <unistd.h>

struct dn_tracker {
    struct tracked_bpf *skel;
    int map_fd;
    int live_fd;                    /* the `live` bitmap (bpf/live_map.bpf.h) */
    uint64_t *live;                 /* ... mmapped: user space sets and clears bits here */
    size_t live_words, live_len;
    struct dn_procstat *iter;       /* NULL when the kernel lacks task iterators */
    int iter_errno;                 /* why iter is NULL: 0 = switched off (DENET_NO_TASK_ITER) */
    struct dn_map_buf scratch;      /* of dn_tracker_snapshot (callers serialise) */
    uint64_t added;                 /* processes registered from user space */
    /* A tree of a few processes is read process by process (dn_tracker_read_tasks):
     * the processes the last read found, while no process joined since. */
    uint32_t *few;
    size_t nfew, few_cap;
    bool few_valid;
    uint64_t few_members;           /* dn_tracker_processes() before that read */
    int64_t walked_ns;              /* CLOCK_MONOTONIC of the last walk */
    int64_t walk_every_ns;          /* WALK_AT_LEAST_NS */
    bool walk_all;                  /* never process by process (DENET_ITER_WALK_ALL) */
    bool no_pid_iter;               /* no per-process iterator: /proc instead (before 6.1) */
    uint64_t per_process_reads, proc_reads;
};

/* Before Linux 6.1 a task iterator cannot be given a process: a tree is read either by
 * the walk or through /proc (the collector's path without the iterator), which costs
 * 2.5 to 5 us a process that slept and about 15 us one that ran, plus one read of the
 * tracker's map, against 0.15 to 0.6 us for each task a walk visits. So /proc while the
 * tree has at most one process for every TASKS_PER_PROC_READ tasks the last walk
 * visited: a walk of 300 tasks, trees of up to four processes; of 3,000, up to 46. */
#define TASKS_PER_PROC_READ 64

/* The system's tasks can come and go while the tree stays as it is: the walk is made
 * again at least this often, to count them (DENET_TEST_WALK_EVERY_MS sets it, for
 * tests). */
#define WALK_AT_LEAST_NS (10 * 1000000000LL)

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

bool dn_tracker_has_task_iter(const struct dn_tracker *t)
{
    return t->iter != NULL;
}

bool dn_tracker_task_iter_status(const struct dn_tracker *t, char *why, size_t len)
{
    if (t->iter) {
        if (len)
            why[0] = '\0';
        return true;
    }
    if (!t->iter_errno)
        snprintf(why, len, "switched off by DENET_NO_TASK_ITER");
    else
        snprintf(why, len, "the BPF task iterator could not be loaded (%s): /proc is read instead",
                 strerror(t->iter_errno));
    return false;
}

/* The processes (their leaders' records) of the read that gave buf[0..n), when they are
 * few enough to be read one by one next time. */
static void remember_few(struct dn_tracker *t, const struct dn_task_rec *buf, size_t n,
                         uint64_t members)
{
    t->nfew = 0;
    t->few_valid = false;
    size_t limit = !t->no_pid_iter ? dn_procstat_pids_limit(t->iter)
                   : (size_t)(dn_procstat_walk_tasks(t->iter) / TASKS_PER_PROC_READ);
    for (size_t i = 0; i < n; i++) {
        if (!buf[i].is_leader)
            continue;
        if (t->nfew == limit)
            return;
        if (dn_grow(&t->few, &t->few_cap, t->nfew + 1, sizeof *t->few, DN_PROCSTAT_PIDS_MIN))
            return;
        t->few[t->nfew++] = buf[i].tgid;
    }
    t->few_valid = t->nfew > 0;
    t->few_members = members;
}

int dn_tracker_read_tasks(struct dn_tracker *t, struct dn_task_rec **buf, size_t *n,
                          size_t *cap)
{
    if (!t->iter) {
        *n = 0;
        return -ENOTSUP;
    }
    /* Walking every task of the system costs 0.15 to 0.6 us a task (hundreds or
     * thousands of them); an iterator over one process costs a few system calls. While
     * no process joined the tree since the last read (the count of tracked processes,
     * read before the read, has not moved) and it had few processes for the tasks of
     * the system (dn_procstat_pids_limit), those are all there are: read them one by
     * one. A process that exited drops out of the set. Where the kernel has no
     * per-process iterator, -EAGAIN says to read the tree through /proc instead. */
    uint64_t members = dn_tracker_processes(t);
    int64_t now = mono_ns();
    if (!t->walk_all && t->few_valid && members == t->few_members &&
        now - t->walked_ns < t->walk_every_ns) {
        if (t->no_pid_iter) {
            t->proc_reads++;
            *n = 0;
            return -EAGAIN;
        }
        int rc = dn_procstat_read_pids(t->iter, t->few, t->nfew, buf, n, cap);
        if (rc == 0) {
            t->per_process_reads++;
            remember_few(t, *buf, *n, members);
            return 0;
        }
        if (rc == -EOPNOTSUPP)
            t->no_pid_iter = true; /* before Linux 6.1 */
        /* else (out of memory, a process gone between two calls): the whole walk */
    }
    int rc = dn_procstat_read(t->iter, buf, n, cap);
    t->walked_ns = now;
    if (rc == 0 && !t->walk_all)
        remember_few(t, *buf, *n, members);
    else
        t->few_valid = false;
    return rc;
}

uint64_t dn_tracker_per_process_reads(const struct dn_tracker *t)
{
    return t->per_process_reads;
}

uint64_t dn_tracker_proc_reads(const struct dn_tracker *t)
{
    return t->proc_reads;
}

uint64_t dn_tracker_walk_tasks(const struct dn_tracker *t)
{
    return t->iter ? dn_procstat_walk_tasks(t->iter) : 0;
}

/* Words of the `live` bitmap for this kernel's pid_max (DENET_TEST_LIVE_WORDS sets it, so
 * that tests can see tgids past it take the `tracked` map's path). */
static size_t live_words(void)
{
    const char *test = getenv("DENET_TEST_LIVE_WORDS");
    if (test && atoi(test) > 0)
        return (size_t)atoi(test);
    long pid_max = 0;
    FILE *f = fopen("/proc/sys/kernel/pid_max", "re");
    if (f) {
        if (fscanf(f, "%ld", &pid_max) != 1)
            pid_max = 0;
        fclose(f);
    }
    size_t words = pid_max > 0 ? ((size_t)pid_max + 63) / 64 : DN_LIVE_WORDS_MAX;
    if (words < DN_LIVE_WORDS_DEFAULT)
        words = DN_LIVE_WORDS_DEFAULT;
    return words > DN_LIVE_WORDS_MAX ? DN_LIVE_WORDS_MAX : words;
}

/* Sets or clears tgid's bit; nothing for a tgid past the bitmap. The kernel writes
 * other bits of the same word at any time: atomic read-modify-writes only. */
static void live_set(struct dn_tracker *t, uint32_t tgid, bool on)
{
    if (!t->live || tgid / 64 >= t->live_words)
        return;
    uint64_t bit = 1ULL << (tgid % 64);
    if (on)
        __atomic_fetch_or(&t->live[tgid / 64], bit, __ATOMIC_SEQ_CST);
    else
        __atomic_fetch_and(&t->live[tgid / 64], ~bit, __ATOMIC_SEQ_CST);
}

int dn_tracker_open(struct dn_tracker **out, char *err, size_t errlen)
{
    int rc;
    struct dn_tracker *t = calloc(1, sizeof *t);
    *out = NULL;
    if (!t) {
        snprintf(err, errlen, "out of memory loading the eBPF process tracker");
        return -ENOMEM;
    }
    t->skel = tracked_bpf__open();
    if (!t->skel) {
        rc = -errno;
        dn_ebpf_explain(err, errlen, "opening the eBPF process tracker", rc);
        goto cleanup;
    }
    /* Test-only: a tiny map, so tests can fill it and see what a full map reports
     * (README, Tests). Never set in normal use. */
    const char *test_max = getenv("DENET_TEST_TRACKED_MAX");
    if (test_max && atoi(test_max) > 0)
        bpf_map__set_max_entries(t->skel->maps.tracked, (__u32)atoi(test_max));
    t->live_words = live_words();
    bpf_map__set_max_entries(t->skel->maps.live, (__u32)t->live_words);
    rc = tracked_bpf__load(t->skel);
    if (rc) {
        dn_ebpf_explain(err, errlen, "loading the eBPF process tracker", rc);
        goto cleanup;
    }
    rc = tracked_bpf__attach(t->skel);
    if (rc) {
        dn_ebpf_explain(err, errlen, "attaching the sched_process_fork/exit tracepoints", rc);
        goto cleanup;
    }
    t->map_fd = bpf_map__fd(t->skel->maps.tracked);
    t->live_fd = bpf_map__fd(t->skel->maps.live);
    void *live;
    rc = dn_bpf_map_mmap(t->live_fd, t->live_words * sizeof(uint64_t), true,
                         "the eBPF process tracker's bitmap", &live, &t->live_len, err, errlen);
    if (rc)
        goto cleanup;
    t->live = live;
    /* The task iterator is an optimisation: when it cannot load, /proc is read instead. */
    if (!getenv("DENET_NO_TASK_ITER")) {
        errno = 0;
        t->iter = dn_procstat_open(t->map_fd, t->live_fd);
        if (!t->iter)
            t->iter_errno = errno ? errno : ENOTSUP;
        t->walk_all = getenv("DENET_ITER_WALK_ALL") != NULL; /* for tests and benches */
        /* as before Linux 6.1, for tests and benches */
        t->no_pid_iter = getenv("DENET_TEST_NO_PID_ITER") != NULL;
        const char *every = getenv("DENET_TEST_WALK_EVERY_MS");
        t->walk_every_ns = every && atol(every) > 0 ? atol(every) * 1000000LL : WALK_AT_LEAST_NS;
    }
    *out = t;
    return 0;

cleanup:
    dn_tracker_close(t);
    return rc ? rc : -EINVAL;
}

void dn_tracker_close(struct dn_tracker *t)
{
    if (!t)
        return;
    dn_procstat_close(t->iter);
    if (t->live)
        munmap(t->live, t->live_len);
    tracked_bpf__destroy(t->skel);
    free(t->scratch.keys);
    free(t->scratch.vals);
    free(t->few);
    free(t);
}

int dn_tracker_map_fd(const struct dn_tracker *t)
{
    return t->map_fd;
}

int dn_tracker_live_map_fd(const struct dn_tracker *t)
{
    return t->live_fd;
}

int dn_tracker_add(struct dn_tracker *t, pid_t tgid)
{
    __u32 key = (__u32)tgid;
    struct dn_tracked v = {0};
    /* BPF_NOEXIST: a fork may have registered it already; keep its counters. */
    if (bpf_map_update_elem(t->map_fd, &key, &v, BPF_NOEXIST)) {
        if (errno != EEXIST)
            return -errno;
        return 0;
    }
    live_set(t, key, true);
    t->added++;
    return 0;
}

int dn_tracker_mark_exited(struct dn_tracker *t, pid_t tgid, uint64_t mono_ns)
{
    __u32 key = (__u32)tgid;
    struct dn_tracked v;
    if (bpf_map_lookup_elem(t->map_fd, &key, &v) != 0)
        return errno == ENOENT ? 0 : -errno;
    if (v.exit_ns)
        return 0; /* the exit hook saw it */
    v.exit_ns = mono_ns;
    if (bpf_map_update_elem(t->map_fd, &key, &v, BPF_EXIST) != 0)
        return errno == ENOENT ? 0 : -errno;
    live_set(t, key, false);
    return 0;
}

int dn_tracker_forget(struct dn_tracker *t, pid_t tgid)
{
    __u32 key = (__u32)tgid;
    if (bpf_map_delete_elem(t->map_fd, &key) && errno != ENOENT)
        return -errno;
    return 0;
}

uint64_t dn_tracker_processes(const struct dn_tracker *t)
{
    return t->added + __atomic_load_n(&t->skel->bss->forks_tracked, __ATOMIC_RELAXED);
}

uint64_t dn_tracker_fork_dropped(const struct dn_tracker *t)
{
    return __atomic_load_n(&t->skel->bss->fork_dropped, __ATOMIC_RELAXED);
}

int dn_tracker_snapshot(struct dn_tracker *t, struct dn_tracked_entry **buf, size_t *n,
                        size_t *cap)
{
    *n = 0;
    int rc = dn_bpf_read_map(t->map_fd, sizeof(__u32), sizeof(struct dn_tracked), DN_TRACKED_MAX,
                             &t->scratch);
    if (rc)
        return rc;
    if (*cap < t->scratch.n) {
        struct dn_tracked_entry *nb = realloc(*buf, t->scratch.n * sizeof *nb);
        if (!nb)
            return -ENOMEM;
        *buf = nb;
        *cap = t->scratch.n;
    }
    const __u32 *keys = t->scratch.keys;
    const struct dn_tracked *vals = t->scratch.vals;
    for (size_t i = 0; i < t->scratch.n; i++) {
        (*buf)[i].tgid = keys[i];
        (*buf)[i].val = vals[i];
    }
    *n = t->scratch.n;
    return 0;
}
