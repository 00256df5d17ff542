#include "tracker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "ebpf_common.h"
#include "procstat.skel.h"
#include "tracked.skel.h"

#include <unistd.h>

struct dn_tracker {
    struct tracked_bpf *skel;
    int map_fd;
    struct procstat_bpf *iter_skel; /* NULL when the kernel lacks task iterators */
    struct bpf_link *iter_link;
};

/* The task iterator is an optimisation: when it cannot load, /proc is read instead. */
static void open_task_iter(struct dn_tracker *t)
{
    struct procstat_bpf *skel = procstat_bpf__open();
    if (!skel)
        return;
    if (bpf_map__reuse_fd(skel->maps.tracked, t->map_fd) || procstat_bpf__load(skel)) {
        procstat_bpf__destroy(skel);
        return;
    }
    t->iter_link = bpf_program__attach_iter(skel->progs.dn_procstat, NULL);
    if (!t->iter_link) {
        procstat_bpf__destroy(skel);
        return;
    }
    t->iter_skel = skel;
}

bool dn_tracker_has_task_iter(const struct dn_tracker *t)
{
    return t->iter_skel != NULL;
}

int dn_tracker_read_tasks(struct dn_tracker *t, struct dn_task_rec **buf, size_t *n,
                          size_t *cap)
{
    *n = 0;
    if (!t->iter_link)
        return -ENOTSUP;
    int fd = bpf_iter_create(bpf_link__fd(t->iter_link));
    if (fd < 0)
        return -errno;
    /* read() may end mid-record (seq_file copies what fits): count bytes. */
    int rc = 0;
    size_t bytes = 0;
    for (;;) {
        if (bytes + sizeof **buf > *cap * sizeof **buf) {
            size_t ncap = *cap ? *cap * 2 : 64;
            struct dn_task_rec *nb = realloc(*buf, ncap * sizeof *nb);
            if (!nb) {
                rc = -ENOMEM;
                break;
            }
            *buf = nb;
            *cap = ncap;
        }
        ssize_t got = read(fd, (char *)*buf + bytes, *cap * sizeof **buf - bytes);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        if (got == 0)
            break;
        bytes += (size_t)got;
    }
    *n = bytes / sizeof **buf;
    close(fd);
    return rc;
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
    if (!getenv("DENET_NO_TASK_ITER"))
        open_task_iter(t);
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
    bpf_link__destroy(t->iter_link);
    procstat_bpf__destroy(t->iter_skel);
    tracked_bpf__destroy(t->skel);
    free(t);
}

int dn_tracker_map_fd(const struct dn_tracker *t)
{
    return t->map_fd;
}

int dn_tracker_add(struct dn_tracker *t, pid_t tgid)
{
    __u32 key = (__u32)tgid;
    struct dn_tracked v = {0};
    /* BPF_NOEXIST: a fork may have registered it already; keep its counters. */
    if (bpf_map_update_elem(t->map_fd, &key, &v, BPF_NOEXIST) && errno != EEXIST)
        return -errno;
    return 0;
}

int dn_tracker_forget(struct dn_tracker *t, pid_t tgid)
{
    __u32 key = (__u32)tgid;
    if (bpf_map_delete_elem(t->map_fd, &key) && errno != ENOENT)
        return -errno;
    return 0;
}

uint64_t dn_tracker_fork_dropped(const struct dn_tracker *t)
{
    return __atomic_load_n(&t->skel->bss->fork_dropped, __ATOMIC_RELAXED);
}

static int grow(struct dn_tracked_entry **buf, size_t *cap, size_t need)
{
    if (*cap >= need)
        return 0;
    size_t ncap = *cap ? *cap : 64;
    while (ncap < need)
        ncap *= 2;
    struct dn_tracked_entry *nb = realloc(*buf, ncap * sizeof *nb);
    if (!nb)
        return -ENOMEM;
    *buf = nb;
    *cap = ncap;
    return 0;
}

/* Slow path for kernels without batch lookups: two syscalls per entry. */
static int snapshot_iter(struct dn_tracker *t, struct dn_tracked_entry **buf, size_t *n,
                         size_t *cap)
{
    __u32 key, next;
    void *prev = NULL;
    *n = 0;
    while (bpf_map_get_next_key(t->map_fd, prev, &next) == 0) {
        int rc = grow(buf, cap, *n + 1);
        if (rc)
            return rc;
        struct dn_tracked_entry *e = &(*buf)[*n];
        if (bpf_map_lookup_elem(t->map_fd, &next, &e->val) == 0) {
            e->tgid = next;
            (*n)++;
        }
        key = next;
        prev = &key;
    }
    return 0;
}

int dn_tracker_snapshot(struct dn_tracker *t, struct dn_tracked_entry **buf, size_t *n,
                        size_t *cap)
{
    /* One batch lookup returns whole hash buckets; keys and values come back in
     * separate arrays. */
    static __thread __u32 *keys;
    static __thread struct dn_tracked *vals;
    static __thread size_t kv_cap;
    size_t want = 256;
    *n = 0;
    for (;;) {
        if (kv_cap < want) {
            __u32 *nk = realloc(keys, want * sizeof *nk);
            if (!nk)
                return -ENOMEM;
            keys = nk;
            struct dn_tracked *nv = realloc(vals, want * sizeof *nv);
            if (!nv)
                return -ENOMEM;
            vals = nv;
            kv_cap = want;
        }
        __u32 in_batch = 0, out_batch = 0;
        bool first = true;
        size_t got = 0;
        int rc = 0;
        for (;;) {
            __u32 count = (__u32)(kv_cap - got);
            if (count == 0) {
                rc = -ENOSPC;
                break;
            }
            int r = bpf_map_lookup_batch(t->map_fd, first ? NULL : &in_batch, &out_batch,
                                         keys + got, vals + got, &count, NULL);
            int e = r ? errno : 0;
            got += count;
            if (r && e == ENOENT)
                break; /* finished */
            if (r) {
                rc = -e;
                break;
            }
            in_batch = out_batch;
            first = false;
        }
        if (rc == -ENOSPC && want < 4 * (size_t)DN_TRACKED_MAX) {
            want *= 4; /* a bucket did not fit: retry with room for more */
            continue;
        }
        if (rc == -EINVAL || rc == -ENOTSUP || rc == -EOPNOTSUPP)
            return snapshot_iter(t, buf, n, cap);
        if (rc)
            return rc;
        int g = grow(buf, cap, got);
        if (g)
            return g;
        for (size_t i = 0; i < got; i++) {
            (*buf)[i].tgid = keys[i];
            (*buf)[i].val = vals[i];
        }
        *n = got;
        return 0;
    }
}
