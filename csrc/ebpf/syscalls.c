#include "ebpf/syscalls.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "ebpf/common.h"
#include "ebpf/syscall_table.h"
#include "bpf/syscalls.h"
#include "syscalls.skel.h"

_Static_assert(DN_SC_NR_MAX == DN_SYSCALL_MAX, "bpf/syscalls.h and syscall_table.h disagree");
_Static_assert(DN_EBPF_NCATEGORIES == DN_CAT_COUNT, "ebpf_sample.h and syscall_table.h disagree");

struct dn_syscalls {
    struct syscalls_bpf *skel;
    int hi_fd, prog_fd;
    size_t ncpu;
    const volatile uint64_t *counts; /* the mmapped `counts`: ncpu rows of DN_SYSCALL_MAX */
    size_t counts_len;
    struct dn_map_buf hi;            /* scratch: the `hi` map's last read */
};

int dn_syscalls_open(struct dn_syscalls **out, int tracked_map_fd, int live_map_fd, char *err,
                     size_t errlen)
{
    int rc;
    *out = NULL;
    struct dn_syscalls *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory loading the eBPF syscall counter");
        return -ENOMEM;
    }
    int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0) {
        rc = ncpu < 0 ? ncpu : -EINVAL;
        dn_ebpf_explain(err, errlen, "reading the number of possible CPUs", rc);
        goto fail;
    }
    s->ncpu = (size_t)ncpu;
    s->skel = syscalls_bpf__open();
    if (!s->skel) {
        rc = -errno;
        dn_ebpf_explain(err, errlen, "opening the eBPF syscall counter", rc);
        goto fail;
    }
    rc = dn_ebpf_share_tracker_maps(s->skel->maps.tracked, s->skel->maps.live, tracked_map_fd,
                                    live_map_fd, "the syscall counter", err, errlen);
    if (rc)
        goto fail;
    bpf_map__set_max_entries(s->skel->maps.counts, (__u32)(s->ncpu * DN_SC_NR_MAX));
    /* Test-only: a tiny map for numbers past the table, so tests can fill it and see
     * dropped_events (README, Tests). Never set in normal use. */
    const char *test_max = getenv("DENET_TEST_SC_KEYS_MAX");
    if (test_max && atoi(test_max) > 0)
        bpf_map__set_max_entries(s->skel->maps.hi, (__u32)atoi(test_max));
    rc = syscalls_bpf__load(s->skel);
    if (rc) {
        dn_ebpf_explain(err, errlen, "loading the eBPF syscall counter", rc);
        goto fail;
    }
    if (!s->skel->bss) {
        /* The kernel cannot mmap global data (before 5.5): no runtime settings. */
        rc = -ENOTSUP;
        dn_ebpf_explain(err, errlen, "mapping the syscall counter's settings", rc);
        goto fail;
    }
    void *counts;
    rc = dn_bpf_map_mmap(bpf_map__fd(s->skel->maps.counts),
                         s->ncpu * DN_SC_NR_MAX * sizeof(uint64_t), false, "the syscall counts",
                         &counts, &s->counts_len, err, errlen);
    if (rc)
        goto fail;
    s->counts = counts;
    rc = syscalls_bpf__attach(s->skel);
    if (rc) {
        dn_ebpf_explain(err, errlen, "attaching to the sys_enter tracepoint", rc);
        goto fail;
    }
    s->hi_fd = bpf_map__fd(s->skel->maps.hi);
    s->prog_fd = bpf_program__fd(s->skel->progs.dn_sys_enter);
    *out = s;
    return 0;

fail:
    dn_syscalls_close(s);
    return rc ? rc : -EINVAL;
}

void dn_syscalls_close(struct dn_syscalls *s)
{
    if (!s)
        return;
    syscalls_bpf__destroy(s->skel);
    if (s->counts)
        munmap((void *)s->counts, s->counts_len);
    free(s->hi.keys);
    free(s->hi.vals);
    free(s);
}

void dn_syscalls_exclude_tid(struct dn_syscalls *s, pid_t tid)
{
    __atomic_store_n(&s->skel->bss->excluded_tid, (uint32_t)(tid > 0 ? tid : 0),
                     __ATOMIC_RELAXED);
}

void dn_syscalls_only_tgid(struct dn_syscalls *s, pid_t tgid)
{
    __atomic_store_n(&s->skel->bss->only_tgid, (uint32_t)(tgid > 0 ? tgid : 0),
                     __ATOMIC_RELAXED);
}

/* The kernel skipped the program (recursion on a CPU): those syscalls were not counted. */
static uint64_t recursion_misses(int prog_fd)
{
    struct bpf_prog_info info;
    __u32 len = sizeof info;
    memset(&info, 0, sizeof info);
    if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) != 0)
        return 0;
    return info.recursion_misses;
}

static bool better(uint64_t ca, uint32_t na, uint64_t cb, uint32_t nb)
{
    return ca > cb || (ca == cb && na < nb);
}

static void top_insert(struct dn_ebpf_sample *out, uint32_t nr, uint64_t count)
{
    if (!count)
        return;
    uint32_t n = out->ntop;
    if (n == DN_EBPF_TOP_SYSCALLS) {
        const struct dn_syscall_count *last = &out->top[n - 1];
        if (!better(count, nr, last->count, last->nr))
            return;
        n--;
    }
    uint32_t i = n;
    while (i > 0 && better(count, nr, out->top[i - 1].count, out->top[i - 1].nr)) {
        out->top[i] = out->top[i - 1];
        i--;
    }
    out->top[i] = (struct dn_syscall_count){nr, count};
    out->ntop = n + 1;
}

int dn_syscalls_snapshot(struct dn_syscalls *s, struct dn_ebpf_sample *out)
{
    /* Numbers past the table: read only once the program has counted one. */
    size_t nhi = 0;
    if (__atomic_load_n(&s->skel->bss->hi_used, __ATOMIC_RELAXED)) {
        int rc = dn_bpf_read_map(s->hi_fd, sizeof(__u32), sizeof(__u64), DN_SC_HI_MAX, &s->hi);
        if (rc)
            return rc;
        nhi = s->hi.n;
    }
    uint64_t per_nr[DN_SYSCALL_MAX] = {0};
    for (size_t c = 0; c < s->ncpu; c++) {
        const volatile uint64_t *row = s->counts + c * DN_SYSCALL_MAX;
        for (size_t nr = 0; nr < DN_SYSCALL_MAX; nr++)
            per_nr[nr] += row[nr];
    }

    uint64_t total = 0, by_cat[DN_CAT_COUNT] = {0};
    out->ntop = 0;
    for (uint32_t nr = 0; nr < DN_SYSCALL_MAX; nr++) {
        if (!per_nr[nr])
            continue;
        total += per_nr[nr];
        by_cat[dn_syscall_category(nr)] += per_nr[nr];
        top_insert(out, nr, per_nr[nr]);
    }
    const __u32 *hi_nr = s->hi.keys;
    const __u64 *hi_count = s->hi.vals;
    for (size_t i = 0; i < nhi; i++) {
        total += hi_count[i];
        by_cat[DN_CAT_OTHER] += hi_count[i];
        top_insert(out, hi_nr[i], hi_count[i]);
    }
    out->has_syscalls = true;
    out->total = total;
    memcpy(out->by_category, by_cat, sizeof by_cat);
    out->dropped = __atomic_load_n(&s->skel->bss->dropped, __ATOMIC_RELAXED) +
                   recursion_misses(s->prog_fd);
    return 0;
}
