#include "core/sample.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "ebpf/ebpf_sample.h"
#include "core/gpu_sample.h"
#include "core/grow.h"

/* The header before a children array: its extra references (0: one owner) and its
 * capacity in children. */
union children_hdr {
    struct {
        unsigned extra_refs;
        size_t cap;
    };
    max_align_t align;
};

/* The last array freed, kept for the next sample's (its pages are faulted in already).
 * One for the whole process, taken and given with atomic exchanges. */
static union children_hdr *spare;

static size_t array_bytes(size_t cap)
{
    return sizeof(union children_hdr) + cap * sizeof(struct dn_child);
}

static union children_hdr *children_hdr(struct dn_child *c)
{
    return (union children_hdr *)(void *)((char *)c - sizeof(union children_hdr));
}

static union children_hdr *new_array(size_t cap)
{
    union children_hdr *h = __atomic_exchange_n(&spare, NULL, __ATOMIC_ACQ_REL);
    if (h && h->cap < cap) {
        free(h);
        h = NULL;
    }
    if (!h) {
        if (!(h = malloc(array_bytes(cap))))
            return NULL;
        h->cap = cap;
    }
    h->extra_refs = 0;
    return h;
}

int dn_children_grow(struct dn_child **children, size_t *cap, size_t need, size_t first)
{
    if (need <= *cap)
        return 0;
    size_t ncap = dn_grow_cap(*cap, need, first);
    union children_hdr *h = *children ? children_hdr(*children) : NULL;
    if (!h) {
        if (!(h = new_array(ncap)))
            return -ENOMEM;
        *cap = h->cap;
    } else {
        if (!(h = realloc(h, array_bytes(ncap))))
            return -ENOMEM;
        h->cap = *cap = ncap;
    }
    *children = (struct dn_child *)(void *)(h + 1);
    return 0;
}

void dn_children_unref(struct dn_child *children)
{
    if (!children)
        return;
    union children_hdr *h = children_hdr(children);
    if (__atomic_fetch_sub(&h->extra_refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    free(__atomic_exchange_n(&spare, h, __ATOMIC_ACQ_REL)); /* the last reference */
}

void dn_children_drop_spare(void)
{
    free(__atomic_exchange_n(&spare, NULL, __ATOMIC_ACQ_REL));
}

/* ---- packed children of the samples kept ----------------------------------------- */

/* A mapping of the sample store: this header, then packed forms. refs: its packed forms
 * alive, plus one while it is the store's current chunk. */
struct dn_chunk {
    unsigned refs;
    size_t size, used;
};

#define DN_CHUNK_SIZE (512u << 10)
#define FROM_NONE UINT32_MAX /* a child kept whole: the next of recs */

/* A child as the one at `from` in the sample kept before, with this uptime. */
struct dn_packed_ent {
    uint32_t from;
    uint32_t uptime_secs;
};

/* A sample's children as kept: ent[n], then recs[nnew] (the children kept whole, in
 * order). What every child carries the same in a sample (timestamp, the system's
 * network counters) is here once; a child whose own differ is kept whole. */
struct dn_packed {
    unsigned extra_refs;      /* 0: one owner */
    struct dn_chunk *chunk;   /* NULL: malloc'd */
    size_t bytes;
    uint32_t n, nnew;
    int64_t ts_ms;
    uint64_t net_rx_bytes, net_tx_bytes;
    struct dn_packed_ent ent[];
};

/* Where recs start in a packed form of n children. */
static size_t recs_at(uint32_t n)
{
    size_t at = offsetof(struct dn_packed, ent) + n * sizeof(struct dn_packed_ent);
    return (at + _Alignof(struct dn_child) - 1) / _Alignof(struct dn_child) * _Alignof(struct dn_child);
}

static struct dn_child *packed_recs(const struct dn_packed *p)
{
    return (struct dn_child *)(void *)((char *)p + recs_at(p->n));
}

static size_t packed_size(uint32_t n, uint32_t nnew)
{
    return (recs_at(n) + nnew * sizeof(struct dn_child) + 15) & ~(size_t)15;
}

static void chunk_unref(struct dn_chunk *ch)
{
    if (__atomic_sub_fetch(&ch->refs, 1, __ATOMIC_ACQ_REL) == 0)
        munmap(ch, ch->size);
}

/* bytes of the store's current chunk (a new chunk when it is full), or the heap when no
 * chunk can be mapped; NULL without memory. */
static struct dn_packed *packed_alloc(struct dn_sample_store *st, size_t bytes)
{
    size_t head = (sizeof(struct dn_chunk) + 15) & ~(size_t)15;
    struct dn_chunk *ch = st->cur;
    if (!ch || ch->used + bytes > ch->size) {
        size_t size = head + bytes < DN_CHUNK_SIZE ? DN_CHUNK_SIZE : head + bytes;
        void *m = mmap(NULL, size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (m == MAP_FAILED) {
            struct dn_packed *p = malloc(bytes);
            if (p)
                p->chunk = NULL;
            return p;
        }
        if (st->cur)
            chunk_unref(st->cur);
        ch = st->cur = m;
        ch->refs = 1;
        ch->size = size;
        ch->used = head;
    }
    struct dn_packed *p = (struct dn_packed *)(void *)((char *)ch + ch->used);
    ch->used += bytes;
    __atomic_add_fetch(&ch->refs, 1, __ATOMIC_RELAXED);
    p->chunk = ch;
    return p;
}

static void packed_unref(struct dn_packed *p)
{
    if (!p || __atomic_fetch_sub(&p->extra_refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    if (p->chunk)
        chunk_unref(p->chunk);
    else
        free(p);
}

/* Whether child c (of a sample whose shared values p holds) is b (of the sample kept
 * before) but for its uptime. */
static bool same_child(const struct dn_child *c, const struct dn_child *b,
                       const struct dn_packed *p)
{
    if (c->pid != b->pid || c->ppid != b->ppid || c->command != b->command ||
        c->metrics.ts_ms != p->ts_ms || c->metrics.sys_net_rx_bytes != p->net_rx_bytes ||
        c->metrics.sys_net_tx_bytes != p->net_tx_bytes || c->metrics.uptime_secs > UINT32_MAX)
        return false;
    struct dn_metrics m = b->metrics;
    m.ts_ms = c->metrics.ts_ms;
    m.uptime_secs = c->metrics.uptime_secs;
    m.sys_net_rx_bytes = c->metrics.sys_net_rx_bytes;
    m.sys_net_tx_bytes = c->metrics.sys_net_tx_bytes;
    return memcmp(&m, &c->metrics, sizeof m) == 0;
}

int dn_sample_pack(struct dn_sample_store *st, struct dn_sample *s, const struct dn_sample *prev)
{
    if (!s->children || !s->nchildren || s->nchildren > UINT32_MAX - 1)
        return 0; /* nothing to pack (or kept whole) */
    const struct dn_child *c = s->children, *b = prev ? prev->children : NULL;
    size_t n = s->nchildren, nb = b ? prev->nchildren : 0;
    struct dn_packed shared = {
        .ts_ms = c[0].metrics.ts_ms,
        .net_rx_bytes = c[0].metrics.sys_net_rx_bytes,
        .net_tx_bytes = c[0].metrics.sys_net_tx_bytes,
    };
    /* Where each child's process was in the sample before: looked for from where the
     * one before it was, plus one (a tree comes in the same order; a process gone or
     * new shifts the rest), round to the start. */
    if (dn_grow(&st->from, &st->from_cap, n, sizeof *st->from, 64))
        return -ENOMEM;
    uint32_t nnew = 0;
    size_t next = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = nb;
        for (size_t t = 0; t < nb; t++) {
            size_t at = (next + t) % nb;
            if (b[at].pid == c[i].pid) {
                k = at;
                break;
            }
        }
        size_t j = k < nb && same_child(&c[i], &b[k], &shared) ? k : FROM_NONE;
        st->from[i] = (uint32_t)j;
        nnew += j == FROM_NONE;
        if (k < nb)
            next = k + 1 < nb ? k + 1 : 0;
    }
    size_t bytes = packed_size((uint32_t)n, nnew);
    struct dn_packed *p = packed_alloc(st, bytes);
    if (!p)
        return -ENOMEM;
    struct dn_chunk *ch = p->chunk;
    *p = shared;
    p->chunk = ch;
    p->extra_refs = 0;
    p->bytes = bytes;
    p->n = (uint32_t)n;
    p->nnew = nnew;
    struct dn_child *recs = packed_recs(p);
    for (size_t i = 0, k = 0; i < n; i++) {
        p->ent[i] = (struct dn_packed_ent){st->from[i], (uint32_t)c[i].metrics.uptime_secs};
        if (st->from[i] == FROM_NONE)
            recs[k++] = c[i];
    }
    packed_unref(s->packed);
    s->packed = p;
    return 0;
}

int dn_sample_unpack(struct dn_sample *s, const struct dn_child *base, size_t nbase)
{
    const struct dn_packed *p = s->packed;
    if (s->children || !p)
        return 0;
    struct dn_child *out = NULL;
    size_t cap = 0;
    if (dn_children_grow(&out, &cap, p->n, p->n))
        return -ENOMEM;
    const struct dn_child *recs = packed_recs(p);
    for (size_t i = 0, k = 0; i < p->n; i++) {
        uint32_t j = p->ent[i].from;
        if (j == FROM_NONE) {
            out[i] = recs[k++];
            continue;
        }
        if (!base || j >= nbase) { /* not the base it was packed against */
            dn_children_unref(out);
            return -EINVAL;
        }
        out[i] = base[j];
        out[i].metrics.ts_ms = p->ts_ms;
        out[i].metrics.uptime_secs = p->ent[i].uptime_secs;
        out[i].metrics.sys_net_rx_bytes = p->net_rx_bytes;
        out[i].metrics.sys_net_tx_bytes = p->net_tx_bytes;
    }
    s->children = out;
    s->nchildren = p->n;
    return 0;
}

size_t dn_sample_packed_bytes(const struct dn_sample *s)
{
    return s->packed ? s->packed->bytes : 0;
}

void dn_sample_store_close(struct dn_sample_store *st)
{
    if (st->cur)
        chunk_unref(st->cur);
    st->cur = NULL;
    free(st->from);
    st->from = NULL;
    st->from_cap = 0;
    dn_children_drop_spare();
}

void dn_sample_clear(struct dn_sample *s)
{
    dn_children_unref(s->children);
    packed_unref(s->packed);
    dn_ebpf_sample_free(s->ebpf);
    dn_gpu_sample_free(s->gpu);
    memset(s, 0, sizeof *s);
}

int dn_sample_copy(struct dn_sample *dst, const struct dn_sample *src)
{
    *dst = *src;
    dst->ebpf = NULL;
    dst->gpu = NULL;
    if (src->children) /* shared (immutable): one more reference */
        __atomic_fetch_add(&children_hdr(src->children)->extra_refs, 1, __ATOMIC_RELAXED);
    if (src->packed)
        __atomic_fetch_add(&src->packed->extra_refs, 1, __ATOMIC_RELAXED);
    if (src->ebpf && !(dst->ebpf = dn_ebpf_sample_dup(src->ebpf))) {
        dn_sample_clear(dst);
        return -ENOMEM;
    }
    if (src->gpu && !(dst->gpu = dn_gpu_sample_dup(src->gpu))) {
        dn_sample_clear(dst);
        return -ENOMEM;
    }
    return 0;
}

int dn_sample_vec_push(struct dn_sample_vec *v, struct dn_sample *s)
{
    if (dn_grow(&v->items, &v->cap, v->len + 1, sizeof *v->items, 256))
        return -ENOMEM;
    v->items[v->len++] = *s;
    memset(s, 0, sizeof *s);
    return 0;
}

void dn_sample_vec_clear(struct dn_sample_vec *v)
{
    for (size_t i = 0; i < v->len; i++)
        dn_sample_clear(&v->items[i]);
    free(v->items);
    memset(v, 0, sizeof *v);
}
