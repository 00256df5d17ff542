#include "ebpf/syscalls.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "ebpf/common.h"
#include "core/grow.h"
#include "ebpf/syscall_table.h"
#include "bpf/syscalls.h"
#include "syscalls.skel.h"
#include "bpf/tracked.h"

_Static_assert(DN_SC_NR_MAX == DN_SYSCALL_MAX, "bpf/syscalls.h and syscall_table.h disagree");
_Static_assert(DN_EBPF_NCATEGORIES == DN_CAT_COUNT, "ebpf_sample.h and syscall_table.h disagree");

/* A count for a number outside the table (x32 numbers, garbage passed to syscall(2)). */
struct hi_count {
    uint32_t nr;
    uint64_t count;
};

struct hi_vec {
    struct hi_count *items;
    size_t len, cap;
};

struct dn_syscalls {
    struct syscalls_bpf *skel;
    int counts_fd, spill_fd, tracked_fd, prog_fd;
    size_t ncpu;
    uint32_t only_tgid; /* 0: every tracked process */
    int64_t next_fold_ns; /* CLOCK_MONOTONIC: when to fold exited processes' pairs again */

    /* Counts of pairs folded out of the kernel map (processes no longer tracked). */
    uint64_t folded[DN_SYSCALL_MAX];
    struct hi_vec folded_hi;

    /* scratch, kept between snapshots */
    struct dn_map_buf counts, tracked;
    uint64_t *spill_vals;          /* DN_SYSCALL_MAX * ncpu */
    struct dn_sc_key *del_keys;    /* pairs to fold */
    uint64_t *del_sums;
    size_t del_cap;
    struct hi_vec hi;              /* this snapshot's counts for numbers >= DN_SYSCALL_MAX */
};

static int hi_add(struct hi_vec *v, uint32_t nr, uint64_t count)
{
    for (size_t i = 0; i < v->len; i++)
        if (v->items[i].nr == nr) {
            v->items[i].count += count;
            return 0;
        }
    if (dn_grow(&v->items, &v->cap, v->len + 1, sizeof *v->items, 8))
        return -ENOMEM;
    v->items[v->len++] = (struct hi_count){nr, count};
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int dn_syscalls_open(struct dn_syscalls **out, int tracked_map_fd, char *err, size_t errlen)
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
    s->spill_vals = calloc((size_t)DN_SYSCALL_MAX * s->ncpu, sizeof *s->spill_vals);
    if (!s->spill_vals) {
        rc = -ENOMEM;
        snprintf(err, errlen, "out of memory loading the eBPF syscall counter");
        goto fail;
    }
    s->skel = syscalls_bpf__open();
    if (!s->skel) {
        rc = -errno;
        dn_ebpf_explain(err, errlen, "opening the eBPF syscall counter", rc);
        goto fail;
    }
    rc = bpf_map__reuse_fd(s->skel->maps.tracked, tracked_map_fd);
    if (rc) {
        dn_ebpf_explain(err, errlen, "sharing the tracked-process map with the syscall counter",
                        rc);
        goto fail;
    }
    /* Test-only: a tiny pairs map, so tests can fill it and see the spill counts and
     * dropped_events (README, Tests). Never set in normal use. */
    const char *test_max = getenv("DENET_TEST_SC_KEYS_MAX");
    if (test_max && atoi(test_max) > 0)
        bpf_map__set_max_entries(s->skel->maps.counts, (__u32)atoi(test_max));
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
    rc = syscalls_bpf__attach(s->skel);
    if (rc) {
        dn_ebpf_explain(err, errlen, "attaching to the sys_enter tracepoint", rc);
        goto fail;
    }
    s->counts_fd = bpf_map__fd(s->skel->maps.counts);
    s->spill_fd = bpf_map__fd(s->skel->maps.spill);
    s->tracked_fd = bpf_map__fd(s->skel->maps.tracked);
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
    free(s->folded_hi.items);
    free(s->hi.items);
    free(s->counts.keys);
    free(s->counts.vals);
    free(s->tracked.keys);
    free(s->tracked.vals);
    free(s->spill_vals);
    free(s->del_keys);
    free(s->del_sums);
    free(s);
}

void dn_syscalls_exclude_tid(struct dn_syscalls *s, pid_t tid)
{
    __atomic_store_n(&s->skel->bss->excluded_tid, (uint32_t)(tid > 0 ? tid : 0),
                     __ATOMIC_RELAXED);
}

void dn_syscalls_only_tgid(struct dn_syscalls *s, pid_t tgid)
{
    /* In the kernel, so other processes add nothing from now on; in the snapshot, for
     * what they counted before. */
    s->only_tgid = (uint32_t)(tgid > 0 ? tgid : 0);
    __atomic_store_n(&s->skel->bss->only_tgid, s->only_tgid, __ATOMIC_RELAXED);
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

static void fold_one(struct dn_syscalls *s, size_t j)
{
    uint32_t nr = s->del_keys[j].nr;
    if (nr < DN_SYSCALL_MAX)
        s->folded[nr] += s->del_sums[j];
    else
        (void)hi_add(&s->folded_hi, nr, s->del_sums[j]); /* ENOMEM: that count is lost */
}

/* Deletes the pairs of processes that are no longer tracked from the kernel map and adds
 * their counts (read before the delete; no program can add to them any more) to the
 * folded totals. A pair that cannot be deleted stays and is read again next time. */
static void fold(struct dn_syscalls *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        __u32 count = (__u32)(n - i);
        int r = bpf_map_delete_batch(s->counts_fd, s->del_keys + i, &count, NULL);
        if (count > n - i)
            count = (__u32)(n - i);
        for (size_t j = i; j < i + count; j++)
            fold_one(s, j);
        i += count;
        if (r == 0)
            break;
        /* The pair at i failed, or there is no batch delete: that one alone. Gone
         * already (ENOENT) means its count is final too. */
        if (i < n) {
            if (bpf_map_delete_elem(s->counts_fd, &s->del_keys[i]) == 0 || errno == ENOENT)
                fold_one(s, i);
            i++;
        }
    }
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
    const size_t vsz = s->ncpu * sizeof(uint64_t);
    /* Pairs first, tracked processes second: a pair whose process is not tracked any
     * more in the later read had its final count when the pairs were read. */
    int rc = dn_bpf_read_map(s->counts_fd, sizeof(struct dn_sc_key), vsz, DN_SC_KEYS_MAX, &s->counts);
    if (rc)
        return rc;
    /* Folding the pairs of exited processes only keeps the kernel map small (the totals
     * include every pair either way), and a batch read walks every bucket of the tracked
     * map: do it once a second, or sooner when the pairs map is filling up. */
    struct timespec now_ts;
    clock_gettime(CLOCK_MONOTONIC, &now_ts);
    int64_t now = (int64_t)now_ts.tv_sec * 1000000000LL + now_ts.tv_nsec;
    bool do_fold = now >= s->next_fold_ns || s->counts.n > DN_SC_KEYS_MAX / 2;
    if (do_fold) {
        rc = dn_bpf_read_map(s->tracked_fd, sizeof(__u32), sizeof(struct dn_tracked), DN_TRACKED_MAX,
                      &s->tracked);
        if (rc)
            return rc;
        s->next_fold_ns = now + 1000000000LL;
    }
    __u32 *tgids = s->tracked.keys;
    if (do_fold)
        qsort(tgids, s->tracked.n, sizeof *tgids, cmp_u32);

    if (s->del_cap < s->counts.n) {
        struct dn_sc_key *nk = realloc(s->del_keys, s->counts.n * sizeof *nk);
        if (!nk)
            return -ENOMEM;
        s->del_keys = nk;
        uint64_t *ns = realloc(s->del_sums, s->counts.n * sizeof *ns);
        if (!ns)
            return -ENOMEM;
        s->del_sums = ns;
        s->del_cap = s->counts.n;
    }

    uint64_t per_nr[DN_SYSCALL_MAX];
    memcpy(per_nr, s->folded, sizeof per_nr);
    s->hi.len = 0;
    for (size_t i = 0; i < s->folded_hi.len; i++)
        if ((rc = hi_add(&s->hi, s->folded_hi.items[i].nr, s->folded_hi.items[i].count)))
            return rc;

    const struct dn_sc_key *keys = s->counts.keys;
    const uint64_t *vals = s->counts.vals;
    size_t ndel = 0;
    for (size_t i = 0; i < s->counts.n; i++) {
        uint64_t sum = 0;
        bool mine = !s->only_tgid || keys[i].tgid == s->only_tgid;
        for (size_t c = 0; mine && c < s->ncpu; c++)
            sum += vals[i * s->ncpu + c];
        uint32_t nr = keys[i].nr;
        if (nr < DN_SYSCALL_MAX)
            per_nr[nr] += sum;
        else if (mine && (rc = hi_add(&s->hi, nr, sum)))
            return rc;
        if (do_fold &&
            (!mine || !bsearch(&keys[i].tgid, tgids, s->tracked.n, sizeof *tgids, cmp_u32))) {
            /* not ours (deleted, counted nowhere), or final (folded) */
            s->del_keys[ndel] = keys[i];
            s->del_sums[ndel++] = sum;
        }
    }

    if (__atomic_load_n(&s->skel->bss->spill_used, __ATOMIC_RELAXED)) {
        /* Rare: the pairs map was full at some point. */
        __u32 idx[DN_SYSCALL_MAX], out_batch = 0, count = DN_SYSCALL_MAX;
        int r = bpf_map_lookup_batch(s->spill_fd, NULL, &out_batch, idx, s->spill_vals, &count,
                                     NULL);
        if (r && errno != ENOENT) {
            /* no batch lookups on arrays: one at a time */
            for (__u32 i = 0; i < DN_SYSCALL_MAX; i++) {
                idx[i] = i;
                if (bpf_map_lookup_elem(s->spill_fd, &i, s->spill_vals + i * s->ncpu) != 0)
                    memset(s->spill_vals + i * s->ncpu, 0, vsz);
            }
            count = DN_SYSCALL_MAX;
        }
        for (__u32 i = 0; i < count && i < DN_SYSCALL_MAX; i++)
            for (size_t c = 0; c < s->ncpu; c++)
                if (idx[i] < DN_SYSCALL_MAX)
                    per_nr[idx[i]] += s->spill_vals[i * s->ncpu + c];
    }

    if (ndel)
        fold(s, ndel);

    uint64_t total = 0, by_cat[DN_CAT_COUNT] = {0};
    out->ntop = 0;
    for (uint32_t nr = 0; nr < DN_SYSCALL_MAX; nr++) {
        if (!per_nr[nr])
            continue;
        total += per_nr[nr];
        by_cat[dn_syscall_category(nr)] += per_nr[nr];
        top_insert(out, nr, per_nr[nr]);
    }
    for (size_t i = 0; i < s->hi.len; i++) {
        total += s->hi.items[i].count;
        by_cat[DN_CAT_OTHER] += s->hi.items[i].count;
        top_insert(out, s->hi.items[i].nr, s->hi.items[i].count);
    }
    out->has_syscalls = true;
    out->total = total;
    memcpy(out->by_category, by_cat, sizeof by_cat);
    out->dropped = __atomic_load_n(&s->skel->bss->dropped, __ATOMIC_RELAXED) +
                   recursion_misses(s->prog_fd);
    return 0;
}
