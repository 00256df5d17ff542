#include "ebpf/sock.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "bpf/tracked.h"
#include "core/grow.h"
#include "ebpf/common.h"
#include "sock.skel.h"

struct sock_entry {
    uint32_t tgid;
    struct dn_sock_counts c;
};

struct dn_sock {
    struct sock_bpf *skel;
    int counts_fd, tracked_fd;
    size_t ncpu;
    uint32_t only_tgid;
    int64_t next_fold_ns;
    size_t change_slots;
    struct dn_change_gate counted; /* the program's `changes` */
    struct dn_sock_counts folded; /* processes no longer tracked */

    /* the last snapshot, sorted by tgid */
    struct sock_entry *entries;
    size_t n, cap;

    /* scratch */
    struct dn_map_buf counts, tracked;
};

static int probe_rc;
static char probe_why[320];
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;

static void probe(void)
{
    struct btf *btf = btf__load_vmlinux_btf();
    if (!btf) {
        probe_rc = errno ? -errno : -ENOENT;
        snprintf(probe_why, sizeof probe_why,
                 "the kernel's BTF (/sys/kernel/btf/vmlinux) could not be read (%s); "
                 "a kernel with CONFIG_DEBUG_INFO_BTF=y is needed",
                 strerror(-probe_rc));
        return;
    }
    bool send = btf__find_by_name_kind(btf, "btf_trace_sock_send_length", BTF_KIND_TYPEDEF) > 0;
    bool recv = btf__find_by_name_kind(btf, "btf_trace_sock_recv_length", BTF_KIND_TYPEDEF) > 0;
    btf__free(btf);
    probe_rc = send && recv ? 0 : -ENOENT;
    if (probe_rc) {
        struct utsname u;
        snprintf(probe_why, sizeof probe_why,
                 "this kernel (%s) has no sock_send_length/sock_recv_length tracepoints, which "
                 "per-process socket bytes need: they came in Linux 6.5",
                 uname(&u) == 0 ? u.release : "unknown");
    }
}

int dn_sock_probe(char *why, size_t len)
{
    pthread_once(&probe_once, probe); /* monitors may be made from several threads */
    if (probe_rc && why && len)
        snprintf(why, len, "%s", probe_why);
    return probe_rc;
}

int dn_sock_open(struct dn_sock **out, int tracked_map_fd, int live_map_fd, char *err,
                 size_t errlen)
{
    int rc;
    *out = NULL;
    rc = dn_sock_probe(err, errlen);
    if (rc)
        return rc;
    struct dn_sock *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory loading the eBPF socket counter");
        return -ENOMEM;
    }
    int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0) {
        rc = ncpu < 0 ? ncpu : -EINVAL;
        dn_ebpf_explain(err, errlen, "reading the number of possible CPUs", rc);
        goto fail;
    }
    s->ncpu = (size_t)ncpu;
    s->change_slots = s->ncpu > DN_SOCK_CHANGE_SLOTS ? DN_SOCK_CHANGE_SLOTS : s->ncpu;
    s->skel = sock_bpf__open();
    if (!s->skel) {
        rc = -errno;
        dn_ebpf_explain(err, errlen, "opening the eBPF socket counter", rc);
        goto fail;
    }
    rc = dn_ebpf_share_tracker_maps(s->skel->maps.tracked, s->skel->maps.live, tracked_map_fd,
                                    live_map_fd, "the socket counter", err, errlen);
    if (rc)
        goto fail;
    rc = sock_bpf__load(s->skel);
    if (rc) {
        dn_ebpf_explain(err, errlen, "loading the eBPF socket counter", rc);
        goto fail;
    }
    if (!s->skel->bss) {
        rc = -ENOTSUP;
        dn_ebpf_explain(err, errlen, "mapping the socket counter's globals", rc);
        goto fail;
    }
    rc = sock_bpf__attach(s->skel);
    if (rc) {
        dn_ebpf_explain(err, errlen, "attaching to the sock_send_length/sock_recv_length tracepoints",
                        rc);
        goto fail;
    }
    s->counts_fd = bpf_map__fd(s->skel->maps.sock_counts);
    s->tracked_fd = bpf_map__fd(s->skel->maps.tracked);
    *out = s;
    return 0;
fail:
    dn_sock_close(s);
    return rc ? rc : -EINVAL;
}

void dn_sock_close(struct dn_sock *s)
{
    if (!s)
        return;
    sock_bpf__destroy(s->skel);
    free(s->entries);
    free(s->counts.keys);
    free(s->counts.vals);
    free(s->tracked.keys);
    free(s->tracked.vals);
    free(s);
}

void dn_sock_only_tgid(struct dn_sock *s, pid_t tgid)
{
    s->only_tgid = (uint32_t)(tgid > 0 ? tgid : 0);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_entry(const void *a, const void *b)
{
    return cmp_u32(&((const struct sock_entry *)a)->tgid, &((const struct sock_entry *)b)->tgid);
}

static void add_counts(struct dn_sock_counts *a, const struct dn_sock_counts *b)
{
    a->rx += b->rx;
    a->tx += b->tx;
    a->rx_lo += b->rx_lo;
    a->tx_lo += b->tx_lo;
    a->rx_unknown += b->rx_unknown;
}

int dn_sock_snapshot(struct dn_sock *s)
{
    const size_t vsz = s->ncpu * sizeof(struct dn_sock_counts);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    bool do_fold = now >= s->next_fold_ns || s->counts.n > DN_SOCK_KEYS_MAX / 2;
    /* Nothing counted since the last read (the counters each CPU bumps after adding did
     * not move): the snapshot is as it was. Read before the map, so that what is added
     * after this read moves them for the next snapshot. */
    if (!dn_change_gate_open(&s->counted, &s->skel->bss->changes[0].n,
                             sizeof s->skel->bss->changes[0], s->change_slots, do_fold))
        return 0;
    /* Counts first, tracked processes second: a process that is not tracked any more in
     * the later read had its final counts in the first. */
    int rc = dn_bpf_read_map(s->counts_fd, sizeof(__u32), vsz, DN_SOCK_KEYS_MAX, &s->counts);
    if (rc)
        return rc;
    do_fold = do_fold || s->counts.n > DN_SOCK_KEYS_MAX / 2;
    if (do_fold) {
        rc = dn_bpf_read_map(s->tracked_fd, sizeof(__u32), sizeof(struct dn_tracked),
                             DN_TRACKED_MAX, &s->tracked);
        if (rc)
            return rc;
        qsort(s->tracked.keys, s->tracked.n, sizeof(__u32), cmp_u32);
        s->next_fold_ns = now + 1000000000LL;
    }
    if (dn_grow(&s->entries, &s->cap, s->counts.n, sizeof *s->entries, 32))
        return -ENOMEM;
    const __u32 *keys = s->counts.keys;
    const struct dn_sock_counts *vals = s->counts.vals;
    size_t n = 0;
    for (size_t i = 0; i < s->counts.n; i++) {
        struct dn_sock_counts sum = {0};
        for (size_t c = 0; c < s->ncpu; c++)
            add_counts(&sum, &vals[i * s->ncpu + c]);
        bool mine = !s->only_tgid || keys[i] == s->only_tgid;
        if (do_fold && !bsearch(&keys[i], s->tracked.keys, s->tracked.n, sizeof(__u32), cmp_u32)) {
            /* final: no program counts for it any more */
            if (bpf_map_delete_elem(s->counts_fd, &keys[i]) == 0 || errno == ENOENT) {
                if (mine)
                    add_counts(&s->folded, &sum);
                continue;
            }
        }
        s->entries[n].tgid = keys[i];
        s->entries[n].c = sum;
        n++;
    }
    if (n) /* qsort wants an array even for none */
        qsort(s->entries, n, sizeof *s->entries, cmp_entry);
    s->n = n;
    return 0;
}

void dn_sock_get(const struct dn_sock *s, pid_t tgid, struct dn_sock_counts *out)
{
    struct sock_entry key = {.tgid = (uint32_t)tgid};
    const struct sock_entry *e = s->n ? bsearch(&key, s->entries, s->n, sizeof key, cmp_entry) : NULL;
    if (e)
        *out = e->c;
    else
        memset(out, 0, sizeof *out);
}

void dn_sock_totals(const struct dn_sock *s, struct dn_sock_counts *out)
{
    *out = s->folded;
    for (size_t i = 0; i < s->n; i++)
        if (!s->only_tgid || s->entries[i].tgid == s->only_tgid)
            add_counts(out, &s->entries[i].c);
}

uint64_t dn_sock_dropped(const struct dn_sock *s)
{
    return __atomic_load_n(&s->skel->bss->dropped, __ATOMIC_RELAXED);
}
