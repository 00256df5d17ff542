#include "ebpf/procstat.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "core/grow.h"
#include "procstat.skel.h"

/* An iterator over one process's threads (Linux 6.1+), kept while the process is read
 * that way. */
struct pid_link {
    uint32_t pid;
    struct bpf_link *link;
};

struct dn_procstat {
    struct procstat_bpf *skel;
    struct bpf_link *link; /* every task of the system */
    uint64_t walk_tasks;   /* tasks the last walk visited */
    struct pid_link *pids; /* in the order last asked for */
    size_t npids, pids_cap;
    int pid_errno; /* why this kernel gave no per-process iterator (0: not refused) */
};

struct dn_procstat *dn_procstat_open(int tracked_map_fd, int live_map_fd)
{
    struct dn_procstat *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->skel = procstat_bpf__open();
    if (!p->skel)
        goto fail;
    if (bpf_map__reuse_fd(p->skel->maps.tracked, tracked_map_fd) ||
        bpf_map__reuse_fd(p->skel->maps.live, live_map_fd) || procstat_bpf__load(p->skel))
        goto fail;
    p->link = bpf_program__attach_iter(p->skel->progs.dn_procstat, NULL);
    if (!p->link)
        goto fail;
    return p;
fail:
    dn_procstat_close(p);
    return NULL;
}

void dn_procstat_close(struct dn_procstat *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->npids; i++)
        bpf_link__destroy(p->pids[i].link);
    free(p->pids);
    bpf_link__destroy(p->link);
    procstat_bpf__destroy(p->skel);
    free(p);
}

/* Appends what one iterator link gives to buf[*n..]. */
static int read_link(struct bpf_link *link, struct dn_task_rec **buf, size_t *n, size_t *cap)
{
    int fd = bpf_iter_create(bpf_link__fd(link));
    if (fd < 0)
        return -errno;
    /* read() may end mid-record (seq_file copies what fits): count bytes. */
    int rc = 0;
    size_t bytes = *n * sizeof **buf;
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

int dn_procstat_read(struct dn_procstat *p, struct dn_task_rec **buf, size_t *n, size_t *cap)
{
    *n = 0;
    uint64_t seen = p->skel->bss->tasks_seen;
    int rc = read_link(p->link, buf, n, cap);
    if (rc == 0)
        p->walk_tasks = p->skel->bss->tasks_seen - seen;
    return rc;
}

uint64_t dn_procstat_walk_tasks(const struct dn_procstat *p)
{
    return p->walk_tasks;
}

size_t dn_procstat_pids_limit(const struct dn_procstat *p)
{
    uint64_t k = p->walk_tasks / DN_PROCSTAT_TASKS_PER_READ;
    return k < DN_PROCSTAT_PIDS_MIN ? DN_PROCSTAT_PIDS_MIN
           : k > DN_PROCSTAT_PIDS_MAX ? DN_PROCSTAT_PIDS_MAX
                                      : (size_t)k;
}

/* The link that iterates process pid's threads, made the first time (at index i of
 * p->pids, where the links of the pids asked for before i are). */
static struct bpf_link *pid_link(struct dn_procstat *p, size_t i, uint32_t pid, int *err)
{
    /* A tree's processes come in the same order from one read to the next. */
    for (size_t j = i; j < p->npids; j++)
        if (p->pids[j].pid == pid) {
            struct pid_link x = p->pids[i];
            p->pids[i] = p->pids[j];
            p->pids[j] = x;
            return p->pids[i].link;
        }
    if (dn_grow(&p->pids, &p->pids_cap, p->npids + 1, sizeof *p->pids, 8)) {
        *err = -ENOMEM;
        return NULL;
    }
    union bpf_iter_link_info linfo;
    memset(&linfo, 0, sizeof linfo);
    linfo.task.pid = pid;
    LIBBPF_OPTS(bpf_iter_attach_opts, opts, .link_info = &linfo, .link_info_len = sizeof linfo);
    struct bpf_link *l = bpf_program__attach_iter(p->skel->progs.dn_procstat, &opts);
    if (!l) {
        *err = -errno;
        return NULL;
    }
    p->pids[p->npids++] = p->pids[i];
    p->pids[i] = (struct pid_link){.pid = pid, .link = l};
    return l;
}

int dn_procstat_read_pids(struct dn_procstat *p, const uint32_t *pids, size_t npids,
                          struct dn_task_rec **buf, size_t *n, size_t *cap)
{
    *n = 0;
    if (p->pid_errno)
        return -EOPNOTSUPP;
    if (npids > DN_PROCSTAT_PIDS_MAX)
        return -ENOSPC;
    size_t j = 0;
    for (; j < npids; j++) {
        int err = 0;
        struct bpf_link *l = pid_link(p, j, pids[j], &err);
        if (!l) {
            /* Kernels before 6.1 take no parameters for the task iterator. */
            if (err == -EINVAL || err == -EOPNOTSUPP || err == -ENOTSUP || err == -E2BIG) {
                p->pid_errno = -err;
                return -EOPNOTSUPP;
            }
            return err;
        }
        int rc = read_link(l, buf, n, cap);
        if (rc)
            return rc;
    }
    /* The links of processes no longer asked for (now at the end) go. */
    while (p->npids > npids)
        bpf_link__destroy(p->pids[--p->npids].link);
    return 0;
}
