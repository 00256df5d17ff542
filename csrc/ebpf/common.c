#include "ebpf/common.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

void dn_ebpf_explain(char *buf, size_t len, const char *what, int neg_errno)
{
    int e = neg_errno < 0 ? -neg_errno : neg_errno;
    const char *fix;
    if (e == EPERM || e == EACCES)
        fix = geteuid() == 0
                  ? "the kernel refused BPF to root (lockdown or a seccomp policy?); check "
                    "kernel.unprivileged_bpf_disabled and the container's capabilities"
                  : "run as root or grant CAP_BPF and CAP_PERFMON (for example: sudo setcap "
                    "cap_bpf,cap_perfmon+ep on the Python interpreter)";
    else if (e == ENOENT || e == ESRCH)
        fix = "the kernel lacks BTF or the tracepoint; a kernel with "
              "CONFIG_DEBUG_INFO_BTF=y (/sys/kernel/btf/vmlinux) is needed";
    else if (e == ENOTSUP || e == EOPNOTSUPP || e == EINVAL)
        fix = "the kernel refused a BPF program: it lacks BTF tracepoints (tp_btf; Linux "
              "5.5 or newer with CONFIG_DEBUG_INFO_BTF=y is needed), or its verifier "
              "rejected the program (set DENET_DEBUG_BPF=1 to see the verifier's log, and "
              "report it with the kernel version)";
    else if (e == ENOMEM || e == E2BIG)
        fix = "raise the locked-memory limit (ulimit -l) or free memory";
    else
        fix = "set DENET_DEBUG_BPF=1 to see libbpf's log";
    snprintf(buf, len, "%s failed: %s; %s", what, strerror(e), fix);
}

static int print_fn(enum libbpf_print_level level, const char *fmt, va_list args)
{
    static int enabled = -1;
    if (enabled < 0)
        enabled = getenv("DENET_DEBUG_BPF") != NULL;
    if (!enabled || level == LIBBPF_DEBUG)
        return 0;
    return vfprintf(stderr, fmt, args);
}

void dn_ebpf_init_logging(void)
{
    libbpf_set_print(print_fn);
}

static int buf_reserve(struct dn_map_buf *b, size_t ksz, size_t vsz, size_t want)
{
    if (b->cap >= want)
        return 0;
    void *nk = realloc(b->keys, want * ksz);
    if (!nk)
        return -ENOMEM;
    b->keys = nk;
    void *nv = realloc(b->vals, want * vsz);
    if (!nv)
        return -ENOMEM;
    b->vals = nv;
    b->cap = want;
    return 0;
}

int dn_bpf_delete_keys(int fd, const void *keys, size_t n, size_t ksz)
{
    const char *k = keys;
    static int batch_ok = 1; /* cleared for good when the kernel has no batch delete */
    while (n > 0 && __atomic_load_n(&batch_ok, __ATOMIC_RELAXED)) {
        __u32 count = n > UINT32_MAX ? UINT32_MAX : (__u32)n;
        int r = bpf_map_delete_batch(fd, k, &count, NULL);
        int e = r ? errno : 0;
        if (count > n)
            count = (__u32)n;
        k += (size_t)count * ksz;
        n -= count;
        if (!r)
            continue;
        if (e != ENOENT) {
            if ((e == EINVAL || e == ENOTSUP || e == EOPNOTSUPP) && count == 0)
                __atomic_store_n(&batch_ok, 0, __ATOMIC_RELAXED);
            break; /* the rest key by key below */
        }
        k += ksz; /* the key it stopped at was gone already */
        n--;
    }
    int rc = 0;
    for (; n > 0; n--, k += ksz) /* each tried, whatever the others gave */
        if (bpf_map_delete_elem(fd, k) && errno != ENOENT && !rc)
            rc = -errno;
    return rc;
}

/* Slow path for kernels without batch operations: two syscalls per entry. */
static int read_map_iter(int fd, size_t ksz, size_t vsz, struct dn_map_buf *b)
{
    uint64_t prev_key[8], next_key[8]; /* keys here are at most 64 bytes */
    void *prev = NULL;
    if (ksz > sizeof next_key)
        return -EINVAL;
    b->n = 0;
    while (bpf_map_get_next_key(fd, prev, next_key) == 0) {
        int rc = buf_reserve(b, ksz, vsz, b->n + 1 > b->cap ? b->cap * 2 + 64 : b->cap);
        if (rc)
            return rc;
        void *k = (char *)b->keys + b->n * ksz, *v = (char *)b->vals + b->n * vsz;
        memcpy(k, next_key, ksz);
        if (bpf_map_lookup_elem(fd, k, v) == 0)
            b->n++;
        else if (errno != ENOENT)
            return -errno;
        memcpy(prev_key, next_key, ksz);
        prev = prev_key;
    }
    return errno == ENOENT ? 0 : -errno;
}

int dn_bpf_read_map(int fd, size_t ksz, size_t vsz, size_t max_entries, struct dn_map_buf *b)
{
    size_t want = b->cap ? b->cap : 256;
    for (;;) {
        int rc = buf_reserve(b, ksz, vsz, want);
        if (rc)
            return rc;
        uint64_t in_batch = 0, out_batch = 0; /* a bucket index for hash maps */
        bool first = true;
        size_t got = 0;
        rc = 0;
        for (;;) {
            __u32 count = (__u32)(b->cap - got);
            if (count == 0) {
                rc = -ENOSPC;
                break;
            }
            int r = bpf_map_lookup_batch(fd, first ? NULL : &in_batch, &out_batch,
                                         (char *)b->keys + got * ksz,
                                         (char *)b->vals + got * vsz, &count, NULL);
            int e = r ? errno : 0;
            got += count;
            if (r && e == ENOENT)
                break; /* the whole map was read */
            if (r) {
                rc = -e;
                break;
            }
            in_batch = out_batch;
            first = false;
        }
        if (rc == -ENOSPC && want < 2 * max_entries) {
            want *= 4;
            continue;
        }
        if (rc == -EINVAL || rc == -ENOTSUP || rc == -EOPNOTSUPP)
            return read_map_iter(fd, ksz, vsz, b);
        if (rc)
            return rc;
        b->n = got;
        return 0;
    }
}

bool dn_change_gate_open(struct dn_change_gate *g, const void *first, size_t stride, size_t n,
                         bool force)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += __atomic_load_n((const uint64_t *)((const char *)first + i * stride),
                               __ATOMIC_ACQUIRE);
    if (g->read_once && sum == g->seen && !force)
        return false;
    g->seen = sum;
    g->read_once = true;
    return true;
}

int dn_ebpf_share_tracker_maps(struct bpf_map *tracked, struct bpf_map *live, int tracked_fd,
                               int live_fd, const char *who, char *err, size_t errlen)
{
    int rc = bpf_map__reuse_fd(tracked, tracked_fd);
    if (rc == 0)
        rc = bpf_map__reuse_fd(live, live_fd);
    if (rc) {
        char what[128];
        snprintf(what, sizeof what, "sharing the tracked-process maps with %s", who);
        dn_ebpf_explain(err, errlen, what, rc);
    }
    return rc;
}

int dn_bpf_map_mmap(int fd, size_t bytes, bool writable, const char *what, void **out,
                    size_t *len, char *err, size_t errlen)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t n = (bytes + page - 1) / page * page;
    void *m = mmap(NULL, n, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        int rc = -errno;
        char buf[128];
        snprintf(buf, sizeof buf, "mapping %s", what);
        dn_ebpf_explain(err, errlen, buf, rc);
        return rc;
    }
    *out = m;
    *len = n;
    return 0;
}
