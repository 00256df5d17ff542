#include "ebpf/procstat.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "procstat.skel.h"

struct dn_procstat {
    struct procstat_bpf *skel;
    struct bpf_link *link;
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
    bpf_link__destroy(p->link);
    procstat_bpf__destroy(p->skel);
    free(p);
}

int dn_procstat_read(struct dn_procstat *p, struct dn_task_rec **buf, size_t *n, size_t *cap)
{
    *n = 0;
    int fd = bpf_iter_create(bpf_link__fd(p->link));
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
